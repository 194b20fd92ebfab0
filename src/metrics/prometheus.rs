//! A small Prometheus registry: atomics per series, rendered in the text exposition format
//! (version 0.0.4) for the admin port's `/metrics`.
//!
//! Hand-written rather than built on the `metrics` crates because the gateway's label sets
//! are few and fixed: recording a sample is a hash of its labels, a read lock and one atomic
//! add, with no allocation once the series exists. Families of the [`super::CATALOGUE`] are
//! created up front with their help text and buckets, so histograms always render as
//! histograms; a name outside it is registered on first use (histograms then get
//! [`super::LATENCY_BUCKETS`]).

use std::{
    collections::HashMap,
    fmt::Write as _,
    hash::{BuildHasherDefault, Hash, Hasher},
    sync::{
        RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use super::{CATALOGUE, Kind, LATENCY_BUCKETS, Labels, MetricDef, Metrics};

/// The content type of [`PrometheusMetrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A Prometheus registry implementing [`Metrics`].
#[derive(Debug)]
pub struct PrometheusMetrics {
    known: FnvMap<&'static str, Family>,
    /// Families outside the catalogue, registered on first use.
    other: RwLock<FnvMap<&'static str, Family>>,
}

impl Default for PrometheusMetrics {
    fn default() -> Self {
        PrometheusMetrics::new()
    }
}

impl PrometheusMetrics {
    /// An empty registry knowing every metric of the catalogue.
    pub fn new() -> Self {
        let known = CATALOGUE.iter().map(|def| (def.name, Family::new(*def))).collect();
        PrometheusMetrics { known, other: RwLock::new(FnvMap::default()) }
    }

    /// Everything recorded, in the Prometheus text format; families without samples are left
    /// out.
    pub fn render_text(&self) -> String {
        let mut out = String::with_capacity(4096);
        let mut families: Vec<&Family> = self.known.values().collect();
        let other = self.other.read().unwrap_or_else(|e| e.into_inner());
        families.extend(other.values());
        families.sort_by_key(|f| f.def.name);
        for family in families {
            family.render(&mut out);
        }
        out
    }

    fn with_family(&self, name: &'static str, kind: Kind, f: impl FnOnce(&Family)) {
        if let Some(family) = self.known.get(name) {
            return f(family);
        }
        {
            let other = self.other.read().unwrap_or_else(|e| e.into_inner());
            if let Some(family) = other.get(name) {
                return f(family);
            }
        }
        let mut other = self.other.write().unwrap_or_else(|e| e.into_inner());
        let buckets = if kind == Kind::Histogram { LATENCY_BUCKETS } else { &[] };
        let family = other
            .entry(name)
            .or_insert_with(|| Family::new(MetricDef { name, kind, help: "", buckets }));
        f(family);
    }
}

impl Metrics for PrometheusMetrics {
    fn counter(&self, name: &'static str, labels: Labels<'_>, value: u64) {
        self.with_family(name, Kind::Counter, |f| {
            f.with_series(labels, |s| match s {
                Value::Counter(c) => {
                    c.fetch_add(value, Ordering::Relaxed);
                }
                _ => kind_mismatch(name),
            });
        });
    }

    fn gauge_set(&self, name: &'static str, labels: Labels<'_>, value: f64) {
        self.with_family(name, Kind::Gauge, |f| {
            f.with_series(labels, |s| match s {
                Value::Gauge(g) => g.store(value.to_bits(), Ordering::Relaxed),
                _ => kind_mismatch(name),
            });
        });
    }

    fn gauge_add(&self, name: &'static str, labels: Labels<'_>, delta: f64) {
        self.with_family(name, Kind::Gauge, |f| {
            f.with_series(labels, |s| match s {
                Value::Gauge(g) => add_f64(g, delta),
                _ => kind_mismatch(name),
            });
        });
    }

    fn histogram(&self, name: &'static str, labels: Labels<'_>, value: f64) {
        self.with_family(name, Kind::Histogram, |f| {
            let bounds = f.def.buckets;
            f.with_series(labels, |s| match s {
                Value::Histogram { buckets, count, sum } => {
                    // Bucket `i` holds observations in (bounds[i-1], bounds[i]]; the last one
                    // is +Inf. Rendering accumulates them.
                    let i = bounds.partition_point(|b| *b < value);
                    if let Some(bucket) = buckets.get(i) {
                        bucket.fetch_add(1, Ordering::Relaxed);
                    }
                    add_f64(sum, value);
                    count.fetch_add(1, Ordering::Relaxed);
                }
                _ => kind_mismatch(name),
            });
        });
    }

    fn render(&self) -> Option<String> {
        Some(self.render_text())
    }
}

fn kind_mismatch(name: &str) {
    tracing::debug!(metric = name, "metric recorded with the wrong kind; dropped");
}

fn add_f64(cell: &AtomicU64, delta: f64) {
    let _ = cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
        Some((f64::from_bits(bits) + delta).to_bits())
    });
}

/// One metric and all its series.
#[derive(Debug)]
struct Family {
    def: MetricDef,
    /// Series by the hash of their labels; a collision shares the vector.
    series: RwLock<FnvMap<u64, Vec<Series>>>,
}

#[derive(Debug)]
struct Series {
    labels: Vec<(&'static str, String)>,
    value: Value,
}

#[derive(Debug)]
enum Value {
    Counter(AtomicU64),
    /// An f64's bits.
    Gauge(AtomicU64),
    Histogram {
        /// Per bucket, not cumulative; one more than the bounds, for +Inf.
        buckets: Box<[AtomicU64]>,
        count: AtomicU64,
        /// An f64's bits.
        sum: AtomicU64,
    },
}

impl Family {
    fn new(def: MetricDef) -> Self {
        Family { def, series: RwLock::new(FnvMap::default()) }
    }

    fn new_value(&self) -> Value {
        match self.def.kind {
            Kind::Counter => Value::Counter(AtomicU64::new(0)),
            Kind::Gauge => Value::Gauge(AtomicU64::new(0f64.to_bits())),
            Kind::Histogram => Value::Histogram {
                buckets: (0..=self.def.buckets.len()).map(|_| AtomicU64::new(0)).collect(),
                count: AtomicU64::new(0),
                sum: AtomicU64::new(0f64.to_bits()),
            },
        }
    }

    /// Runs `f` on the series of `labels`, creating it on first use.
    fn with_series(&self, labels: Labels<'_>, f: impl FnOnce(&Value)) {
        let hash = hash_labels(labels);
        let matches = |s: &&Series| {
            s.labels.len() == labels.len()
                && s.labels.iter().zip(labels).all(|((k1, v1), (k2, v2))| k1 == k2 && v1 == v2)
        };
        {
            let series = self.series.read().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = series.get(&hash).and_then(|v| v.iter().find(matches)) {
                return f(&s.value);
            }
        }
        let mut series = self.series.write().unwrap_or_else(|e| e.into_inner());
        let slot = series.entry(hash).or_default();
        if let Some(s) = slot.iter().find(matches) {
            return f(&s.value);
        }
        let created = Series {
            labels: labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
            value: self.new_value(),
        };
        f(&created.value);
        slot.push(created);
    }

    fn render(&self, out: &mut String) {
        let series = self.series.read().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<&Series> = series.values().flatten().collect();
        if all.is_empty() {
            return;
        }
        all.sort_by(|a, b| a.labels.cmp(&b.labels));
        let name = self.def.name;
        if !self.def.help.is_empty() {
            let _ = writeln!(out, "# HELP {name} {}", self.def.help);
        }
        let kind = match self.def.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for s in all {
            match &s.value {
                Value::Counter(c) => {
                    sample(out, name, "", &s.labels, None, &c.load(Ordering::Relaxed).to_string());
                }
                Value::Gauge(g) => {
                    let v = f64::from_bits(g.load(Ordering::Relaxed));
                    sample(out, name, "", &s.labels, None, &number(v));
                }
                Value::Histogram { buckets, count, sum } => {
                    let mut cumulative = 0u64;
                    for (i, bucket) in buckets.iter().enumerate() {
                        cumulative += bucket.load(Ordering::Relaxed);
                        let le = self
                            .def
                            .buckets
                            .get(i)
                            .map_or_else(|| "+Inf".to_owned(), |b| number(*b));
                        sample(out, name, "_bucket", &s.labels, Some(&le), &cumulative.to_string());
                    }
                    let total = f64::from_bits(sum.load(Ordering::Relaxed));
                    sample(out, name, "_sum", &s.labels, None, &number(total));
                    let n = count.load(Ordering::Relaxed).to_string();
                    sample(out, name, "_count", &s.labels, None, &n);
                }
            }
        }
    }
}

/// Maps keyed by metric names and label hashes: short keys the process chose itself, so a
/// fast non-keyed hash is enough (SipHash, the default, showed in the per-call profile).
type FnvMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// 64-bit FNV-1a.
#[derive(Clone, Copy, Debug)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

fn hash_labels(labels: Labels<'_>) -> u64 {
    let mut h = Fnv::default();
    for (k, v) in labels {
        k.hash(&mut h);
        v.hash(&mut h);
    }
    h.finish()
}

fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&'static str, String)],
    le: Option<&str>,
    value: &str,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        let pairs = labels.iter().map(|(k, v)| (*k, v.as_str())).chain(le.map(|le| ("le", le)));
        for (k, v) in pairs {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(k);
            out.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".to_owned() } else { "-Inf".to_owned() }
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::names;

    #[test]
    fn counters_gauges_and_histograms_render_in_the_text_format() {
        let m = PrometheusMetrics::new();
        let labels = [("route", "fast"), ("code", "OK")];
        m.counter(names::REQUESTS_TOTAL, &labels, 1);
        m.counter(names::REQUESTS_TOTAL, &labels, 2);
        m.counter(names::REQUESTS_TOTAL, &[("route", "a\"b"), ("code", "OK")], 1);
        m.gauge_add(names::REQUESTS_IN_FLIGHT, &[("method", "Chat")], 1.0);
        m.gauge_add(names::REQUESTS_IN_FLIGHT, &[("method", "Chat")], 1.0);
        m.gauge_add(names::REQUESTS_IN_FLIGHT, &[("method", "Chat")], -1.0);
        m.histogram(names::OVERHEAD_SECONDS, &[("method", "Chat")], 0.000_03);
        m.histogram(names::OVERHEAD_SECONDS, &[("method", "Chat")], 7.0);
        let text = m.render_text();

        assert!(text.contains("# TYPE ai_service_requests_total counter\n"), "{text}");
        assert!(text.contains("ai_service_requests_total{route=\"fast\",code=\"OK\"} 3\n"));
        assert!(text.contains("ai_service_requests_total{route=\"a\\\"b\",code=\"OK\"} 1\n"));
        assert!(text.contains("ai_service_requests_in_flight{method=\"Chat\"} 1\n"));
        assert!(text.contains("# TYPE ai_service_overhead_seconds histogram\n"));
        let bucket =
            |le: &str| format!("ai_service_overhead_seconds_bucket{{method=\"Chat\",le=\"{le}\"}}");
        assert!(text.contains(&format!("{} 0\n", bucket("0.000025"))), "{text}");
        assert!(text.contains(&format!("{} 1\n", bucket("0.00005"))));
        assert!(text.contains(&format!("{} 1\n", bucket("0.1"))));
        assert!(text.contains(&format!("{} 2\n", bucket("+Inf"))));
        assert!(text.contains("ai_service_overhead_seconds_count{method=\"Chat\"} 2\n"));
        assert!(text.contains("ai_service_overhead_seconds_sum{method=\"Chat\"} 7.00003\n"));
        // Families without samples are left out.
        assert!(!text.contains("ai_service_hedges_total"));
    }

    #[test]
    fn unknown_names_register_on_first_use() {
        let m = PrometheusMetrics::new();
        m.histogram("embedder_custom_seconds", &[], 0.2);
        m.counter("embedder_custom_total", &[], 4);
        let text = m.render_text();
        assert!(text.contains("# TYPE embedder_custom_seconds histogram\n"));
        assert!(text.contains("embedder_custom_seconds_bucket{le=\"0.25\"} 1\n"));
        assert!(text.contains("embedder_custom_total 4\n"));
    }
}
