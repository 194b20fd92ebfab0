//! The gateway's signals through the `metrics` facade: [`FacadeMetrics`] implements
//! [`Metrics`] on any `metrics::Recorder`, so everything the gateway emits reaches that
//! recorder as ordinary `metrics` counters, gauges and histograms.
//!
//! Handles are registered once per series (name and label values) and kept: recording a
//! sample is a hash of its labels, a read lock and the recorder's own update, with no
//! allocation once the series exists. A finished call's usual samples (seven series) are kept
//! together per call series ([`CallHandles`]): one look-up a call instead of one a sample.
//! The recorder is one the caller holds, not the global
//! one, so several gateways in one process keep their series apart; [`GlobalRecorder`] is
//! there for an embedder that wants the globally installed recorder instead.
//! [`super::PrometheusMetrics`] is this adapter over `metrics-exporter-prometheus`.

use std::{
    collections::HashMap,
    fmt,
    hash::{BuildHasherDefault, Hasher},
    sync::RwLock,
};

use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, SharedString, Unit,
};

use super::{
    CATALOGUE, CallSignals, FrontDoor, Kind, Labels, Method, Metrics,
    call::{self, CallLabels},
    definition, names,
};

/// Where the gateway's handles say they come from; exporters may ignore it.
const METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// A [`Metrics`] backend emitting to a `metrics` recorder.
///
/// On creation it describes every metric of [`CATALOGUE`] to the recorder (help text, and the
/// unit `seconds` for the latency histograms); bucket bounds are the recorder's business (see
/// [`super::PrometheusMetrics`]).
pub struct FacadeMetrics<R> {
    recorder: R,
    /// Label values registered with every backslash doubled, for an exporter whose escaping
    /// takes `\\` and `\"` as already escaped (see [`super::PrometheusMetrics`]).
    double_backslashes: bool,
    table: RwLock<Table>,
    /// The handles of finished calls' samples, by [`CallKey::hash`]; a collision shares the
    /// vector.
    calls: RwLock<HashMap<u64, Vec<CallHandles>, BuildHasherDefault<Prehashed>>>,
}

/// The registered series, and the kind each name was first registered as (a name keeps one
/// kind; a sample of another kind is dropped rather than registered twice).
#[derive(Default)]
struct Table {
    /// Series by the hash of their name and labels; a collision shares the vector.
    series: HashMap<u64, Vec<Series>, BuildHasherDefault<Prehashed>>,
    kinds: HashMap<&'static str, Kind>,
}

struct Series {
    name: &'static str,
    labels: Box<[(&'static str, Box<str>)]>,
    handle: Handle,
}

#[derive(Clone)]
enum Handle {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

impl Handle {
    fn kind(&self) -> Kind {
        match self {
            Handle::Counter(_) => Kind::Counter,
            Handle::Gauge(_) => Kind::Gauge,
            Handle::Histogram(_) => Kind::Histogram,
        }
    }
}

impl<R: Recorder + Send + Sync + 'static> FacadeMetrics<R> {
    /// An adapter registering on `recorder`, which is told the help text of every metric of
    /// the catalogue.
    pub fn new(recorder: R) -> Self {
        for def in CATALOGUE {
            let name = KeyName::from_const_str(def.name);
            let help = SharedString::const_str(def.help);
            match def.kind {
                Kind::Counter => recorder.describe_counter(name, None, help),
                Kind::Gauge => recorder.describe_gauge(name, None, help),
                Kind::Histogram => recorder.describe_histogram(name, Some(Unit::Seconds), help),
            }
        }
        FacadeMetrics {
            recorder,
            double_backslashes: false,
            table: RwLock::default(),
            calls: RwLock::default(),
        }
    }

    /// Registers label values with their backslashes doubled; see the field's docs.
    pub(super) fn doubling_backslashes(mut self) -> Self {
        self.double_backslashes = true;
        self
    }

    /// The recorder the handles are registered on.
    pub fn recorder(&self) -> &R {
        &self.recorder
    }

    /// Runs `f` on the handle of the series `name`/`labels`, registering it on first use.
    /// A sample whose kind differs from the name's is dropped.
    fn with_handle(
        &self,
        name: &'static str,
        labels: Labels<'_>,
        kind: Kind,
        f: impl FnOnce(&Handle),
    ) {
        let hash = series_hash(name, labels);
        let matches = |s: &&Series| {
            same(s.name, name)
                && s.labels.len() == labels.len()
                && s.labels
                    .iter()
                    .zip(labels)
                    .all(|((k1, v1), (k2, v2))| same(k1, k2) && same(v1, v2))
        };
        {
            let table = self.table.read().unwrap_or_else(|e| e.into_inner());
            if let Some(series) = table.series.get(&hash).and_then(|v| v.iter().find(matches)) {
                return apply(series, kind, f);
            }
        }
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        if let Some(series) = table.series.get(&hash).and_then(|v| v.iter().find(matches)) {
            return apply(series, kind, f);
        }
        let known = definition(name).map(|d| d.kind);
        let name_kind = *table.kinds.entry(name).or_insert(known.unwrap_or(kind));
        if name_kind != kind {
            return kind_mismatch(name);
        }
        let key = Key::from_parts(
            name,
            labels.iter().map(|(k, v)| Label::new(*k, self.label_value(v))).collect::<Vec<_>>(),
        );
        let handle = match kind {
            Kind::Counter => Handle::Counter(self.recorder.register_counter(&key, &METADATA)),
            Kind::Gauge => Handle::Gauge(self.recorder.register_gauge(&key, &METADATA)),
            Kind::Histogram => Handle::Histogram(self.recorder.register_histogram(&key, &METADATA)),
        };
        let series = Series {
            name,
            labels: labels.iter().map(|(k, v)| (*k, Box::from(*v))).collect(),
            handle,
        };
        f(&series.handle);
        table.series.entry(hash).or_default().push(series);
    }

    /// The handle of the series `name`/`labels` (registered on first use); `None` when the
    /// name has another kind.
    fn handle(&self, name: &'static str, labels: Labels<'_>, kind: Kind) -> Option<Handle> {
        let mut handle = None;
        self.with_handle(name, labels, kind, |h| handle = Some(h.clone()));
        handle
    }

    /// The handles of the usual samples of calls like `s`, registered as one sample at a time
    /// would register them: only the series such a call records.
    fn call_handles(&self, s: &CallSignals<'_>, l: &CallLabels<'_>) -> Option<CallHandles> {
        let counter = |name: &'static str, labels: Labels<'_>| match self.handle(
            name,
            labels,
            Kind::Counter,
        )? {
            Handle::Counter(c) => Some(c),
            _ => None,
        };
        let histogram = |name: &'static str, labels: Labels<'_>| match self.handle(
            name,
            labels,
            Kind::Histogram,
        )? {
            Handle::Histogram(h) => Some(h),
            _ => None,
        };
        let upstream = match s.upstream {
            Some(_) => Some(histogram(names::UPSTREAM_DURATION_SECONDS, &l.upstream)?),
            None => None,
        };
        let tokens = match s.tokens {
            Some(_) => Some([
                counter(names::TOKENS_TOTAL, &l.tokens("input"))?,
                counter(names::TOKENS_TOTAL, &l.tokens("output"))?,
            ]),
            None => None,
        };
        let Handle::Gauge(in_flight) =
            self.handle(names::REQUESTS_IN_FLIGHT, &l.method, Kind::Gauge)?
        else {
            return None;
        };
        Some(CallHandles {
            key: CallKey::of(s).owned(),
            requests: counter(names::REQUESTS_TOTAL, &l.with_code)?,
            duration: histogram(names::REQUEST_DURATION_SECONDS, &l.call)?,
            upstream,
            overhead: histogram(names::OVERHEAD_SECONDS, &l.method)?,
            tokens,
            in_flight,
        })
    }

    fn label_value(&self, value: &str) -> String {
        if self.double_backslashes { value.replace('\\', "\\\\") } else { value.to_owned() }
    }
}

/// String equality that skips the byte comparison when both are the same static string (names
/// and label keys are constants: the common case on every sample).
#[inline]
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && (std::ptr::eq(a.as_ptr(), b.as_ptr()) || a == b)
}

fn apply(series: &Series, kind: Kind, f: impl FnOnce(&Handle)) {
    if series.handle.kind() == kind {
        f(&series.handle);
    } else {
        kind_mismatch(series.name);
    }
}

fn kind_mismatch(name: &str) {
    tracing::debug!(metric = name, "metric recorded with the wrong kind; dropped");
}

/// What tells one call series from another: the labels of a call's usual samples, and which
/// of them it records (a call without an upstream or tokens registers no series for them).
#[derive(Clone, Copy, PartialEq, Eq)]
struct CallKey<S> {
    front_door: FrontDoor,
    method: Method,
    code: tonic::Code,
    upstream: bool,
    tokens: bool,
    route: S,
    provider: S,
}

impl<'a> CallKey<&'a str> {
    fn of(s: &CallSignals<'a>) -> Self {
        CallKey {
            front_door: s.front_door,
            method: s.method,
            code: s.code,
            upstream: s.upstream.is_some(),
            tokens: s.tokens.is_some(),
            route: s.route,
            provider: s.provider,
        }
    }

    fn hash(&self) -> u64 {
        let mut h = WordHash(0);
        h.word(
            (self.front_door as u64)
                | (self.method as u64) << 8
                | (self.code as u64) << 16
                | u64::from(self.upstream) << 48
                | u64::from(self.tokens) << 56,
        );
        h.str(self.route);
        h.str(self.provider);
        h.finish()
    }

    fn owned(self) -> CallKey<Box<str>> {
        CallKey {
            front_door: self.front_door,
            method: self.method,
            code: self.code,
            upstream: self.upstream,
            tokens: self.tokens,
            route: self.route.into(),
            provider: self.provider.into(),
        }
    }
}

impl CallKey<Box<str>> {
    fn is(&self, other: &CallKey<&str>) -> bool {
        (self.front_door, self.method, self.code, self.upstream, self.tokens)
            == (other.front_door, other.method, other.code, other.upstream, other.tokens)
            && *self.route == *other.route
            && *self.provider == *other.provider
    }
}

/// The handles a finished call of one series records to, every sample [`call::emit`] records
/// but the rare ones ([`call::emit_rest`]).
struct CallHandles {
    key: CallKey<Box<str>>,
    requests: Counter,
    duration: Histogram,
    upstream: Option<Histogram>,
    overhead: Histogram,
    /// Input, output.
    tokens: Option<[Counter; 2]>,
    in_flight: Gauge,
}

impl CallHandles {
    fn record(&self, s: &CallSignals<'_>) {
        self.requests.increment(1);
        self.duration.record(s.total.as_secs_f64());
        if let (Some(h), Some(upstream)) = (&self.upstream, s.upstream) {
            h.record(upstream.as_secs_f64());
        }
        self.overhead.record(s.overhead.as_secs_f64());
        if let (Some([input, output]), Some(t)) = (&self.tokens, s.tokens) {
            input.increment(t.input.into());
            output.increment(t.output.into());
        }
        self.in_flight.decrement(1.0);
    }
}

impl<R: Recorder + Send + Sync + 'static> Metrics for FacadeMetrics<R> {
    fn call_finished(&self, s: &CallSignals<'_>) {
        let key = CallKey::of(s);
        let hash = key.hash();
        let l = s.labels();
        let recorded = {
            let calls = self.calls.read().unwrap_or_else(|e| e.into_inner());
            let handles = calls.get(&hash).and_then(|v| v.iter().find(|h| h.key.is(&key)));
            handles.map(|h| h.record(s)).is_some()
        };
        if !recorded {
            let Some(handles) = self.call_handles(s, &l) else {
                // A name of the wrong kind (never for the catalogue's): sample by sample.
                return call::emit(self, s);
            };
            handles.record(s);
            let mut calls = self.calls.write().unwrap_or_else(|e| e.into_inner());
            let same = calls.entry(hash).or_default();
            // Another thread may have added them meanwhile; the handles are the same.
            if !same.iter().any(|h| h.key.is(&key)) {
                same.push(handles);
            }
        }
        call::emit_rest(self, s, &l);
    }

    fn counter(&self, name: &'static str, labels: Labels<'_>, value: u64) {
        self.with_handle(name, labels, Kind::Counter, |h| {
            if let Handle::Counter(c) = h {
                c.increment(value);
            }
        });
    }

    fn gauge_set(&self, name: &'static str, labels: Labels<'_>, value: f64) {
        self.with_handle(name, labels, Kind::Gauge, |h| {
            if let Handle::Gauge(g) = h {
                g.set(value);
            }
        });
    }

    fn gauge_add(&self, name: &'static str, labels: Labels<'_>, delta: f64) {
        self.with_handle(name, labels, Kind::Gauge, |h| {
            if let Handle::Gauge(g) = h {
                g.increment(delta);
            }
        });
    }

    fn histogram(&self, name: &'static str, labels: Labels<'_>, value: f64) {
        self.with_handle(name, labels, Kind::Histogram, |h| {
            if let Handle::Histogram(hist) = h {
                hist.record(value);
            }
        });
    }
}

impl<R> fmt::Debug for FacadeMetrics<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let series = self.table.try_read().map(|t| t.series.values().map(Vec::len).sum::<usize>());
        f.debug_struct("FacadeMetrics")
            .field("recorder", &std::any::type_name::<R>())
            .field("series", &series.ok())
            .finish_non_exhaustive()
    }
}

/// The recorder the `metrics` macros would use at the moment a series is first recorded: the
/// thread's local recorder if one is set, else the globally installed one, else none (the
/// series is then dropped for good). Install the global recorder before building the gateway,
/// so the catalogue's descriptions reach it too.
#[derive(Clone, Copy, Debug, Default)]
pub struct GlobalRecorder;

impl Recorder for GlobalRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        metrics::with_recorder(|r| r.describe_counter(key, unit, description));
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        metrics::with_recorder(|r| r.describe_gauge(key, unit, description));
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        metrics::with_recorder(|r| r.describe_histogram(key, unit, description));
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        metrics::with_recorder(|r| r.register_counter(key, metadata))
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        metrics::with_recorder(|r| r.register_gauge(key, metadata))
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        metrics::with_recorder(|r| r.register_histogram(key, metadata))
    }
}

/// A hash of a series' name and labels. The name and the label keys are `&'static str`
/// constants: they are hashed by address, the label values by content, eight bytes at a step
/// (FNV's byte-at-a-time chain over every string showed in the profile). Should one constant
/// have two addresses, its series is registered once under each, on the same exporter handle:
/// lookups compare contents, so this costs an entry, never a wrong match. Values are ones the
/// process chose itself (config names, fixed sets), so no keyed hash is needed.
fn series_hash(name: &'static str, labels: Labels<'_>) -> u64 {
    let mut h = WordHash(0);
    h.word(name.as_ptr() as u64);
    for (k, v) in labels {
        h.word(k.as_ptr() as u64);
        h.str(v);
    }
    h.finish()
}

#[derive(Clone, Copy)]
struct WordHash(u64);

impl WordHash {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;

    fn word(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(Self::K);
    }

    /// The bytes, and their length, so `("ab", "c")` and `("a", "bc")` differ.
    fn str(&mut self, s: &str) {
        let bytes = s.as_bytes();
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.word(le_u64(chunk));
        }
        let rest = chunks.remainder().len();
        let tail = if rest == 0 {
            0
        } else if bytes.len() >= 8 {
            // The last eight bytes, overlapping the last whole word: one load, no loop.
            le_u64(&bytes[bytes.len() - 8..])
        } else if rest >= 4 {
            (u64::from(le_u32(&bytes[rest - 4..])) << 32) | u64::from(le_u32(bytes))
        } else {
            u64::from(bytes[0])
                | (u64::from(bytes[rest / 2]) << 8)
                | (u64::from(bytes[rest - 1]) << 16)
        };
        self.word(tail ^ ((bytes.len() as u64) << 56));
    }

    fn finish(self) -> u64 {
        // The multiply leaves the low bits weak; the map indexes by them.
        let h = self.0 ^ (self.0 >> 32);
        h.wrapping_mul(Self::K) ^ (h >> 29)
    }
}

/// The first eight bytes of `b` (at least eight long) as a little-endian word.
fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// The first four bytes of `b` (at least four long) as a little-endian word.
fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// The hasher of a map keyed by [`series_hash`]: the key is already a hash.
#[derive(Clone, Copy, Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; anything else is folded in byte by byte.
        for b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use metrics::{CounterFn, GaugeFn, HistogramFn};

    use super::*;
    use crate::metrics::names;

    /// A recorder that counts registrations and keeps every handle's updates.
    #[derive(Default)]
    struct Log {
        registered: Mutex<Vec<String>>,
        described: Mutex<Vec<(String, Option<Unit>)>>,
        updates: Arc<Mutex<Vec<(String, f64)>>>,
    }

    struct Cell(String, Arc<Mutex<Vec<(String, f64)>>>);

    impl Cell {
        fn push(&self, value: f64) {
            self.1.lock().unwrap().push((self.0.clone(), value));
        }
    }

    impl CounterFn for Cell {
        #[allow(clippy::cast_precision_loss)]
        fn increment(&self, value: u64) {
            self.push(value as f64);
        }
        fn absolute(&self, _: u64) {}
    }

    impl GaugeFn for Cell {
        fn increment(&self, value: f64) {
            self.push(value);
        }
        fn decrement(&self, value: f64) {
            self.push(-value);
        }
        fn set(&self, value: f64) {
            self.push(value);
        }
    }

    impl HistogramFn for Cell {
        fn record(&self, value: f64) {
            self.push(value);
        }
    }

    impl Log {
        fn cell(&self, kind: &str, key: &Key) -> Arc<Cell> {
            let labels: Vec<String> =
                key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            let id = format!("{kind} {}{{{}}}", key.name(), labels.join(","));
            self.registered.lock().unwrap().push(id.clone());
            Arc::new(Cell(id, self.updates.clone()))
        }
    }

    impl Recorder for Log {
        fn describe_counter(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
            self.described.lock().unwrap().push((key.as_str().to_owned(), unit));
        }
        fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
            self.described.lock().unwrap().push((key.as_str().to_owned(), unit));
        }
        fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
            self.described.lock().unwrap().push((key.as_str().to_owned(), unit));
        }
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(self.cell("counter", key))
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(self.cell("gauge", key))
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(self.cell("histogram", key))
        }
    }

    #[test]
    fn each_series_is_registered_once_and_its_handle_reused() {
        let m = FacadeMetrics::new(Log::default());
        let fast = [("route", "fast"), ("code", "OK")];
        m.counter(names::REQUESTS_TOTAL, &fast, 1);
        m.counter(names::REQUESTS_TOTAL, &fast, 2);
        // Values are matched by content, wherever they live.
        let route = String::from("fast");
        m.counter(names::REQUESTS_TOTAL, &[("route", route.as_str()), ("code", "OK")], 4);
        m.counter(names::REQUESTS_TOTAL, &[("route", "slow"), ("code", "OK")], 1);
        // Same bytes, split differently: another series.
        m.counter(names::REQUESTS_TOTAL, &[("route", "fas"), ("code", "tOK")], 1);
        m.gauge_add(names::REQUESTS_IN_FLIGHT, &[("method", "Chat")], 1.0);
        m.gauge_add(names::REQUESTS_IN_FLIGHT, &[("method", "Chat")], -1.0);
        m.histogram(names::OVERHEAD_SECONDS, &[("method", "Chat")], 0.25);
        m.timing(names::OVERHEAD_SECONDS, &[("method", "Chat")], std::time::Duration::ZERO);

        let log = m.recorder();
        assert_eq!(
            *log.registered.lock().unwrap(),
            [
                "counter ai_service_requests_total{route=fast,code=OK}",
                "counter ai_service_requests_total{route=slow,code=OK}",
                "counter ai_service_requests_total{route=fas,code=tOK}",
                "gauge ai_service_requests_in_flight{method=Chat}",
                "histogram ai_service_overhead_seconds{method=Chat}",
            ]
        );
        let updates = log.updates.lock().unwrap();
        let values: Vec<f64> = updates.iter().map(|(_, v)| *v).collect();
        assert_eq!(values, [1.0, 2.0, 4.0, 1.0, 1.0, 1.0, -1.0, 0.25, 0.0]);
    }

    #[test]
    fn the_catalogue_is_described_and_latencies_are_in_seconds() {
        let m = FacadeMetrics::new(Log::default());
        let described = m.recorder().described.lock().unwrap();
        assert_eq!(described.len(), CATALOGUE.len());
        assert!(
            described.contains(&(names::TIME_TO_FIRST_TOKEN_SECONDS.into(), Some(Unit::Seconds)))
        );
        assert!(described.contains(&(names::REQUESTS_TOTAL.into(), None)));
    }

    #[test]
    fn a_sample_of_the_wrong_kind_is_dropped() {
        let m = FacadeMetrics::new(Log::default());
        // A catalogue name keeps its catalogue kind, even for a series not seen yet.
        m.gauge_set(names::REQUESTS_TOTAL, &[("route", "fast")], 1.0);
        m.counter(names::REQUESTS_TOTAL, &[("route", "fast")], 1);
        m.histogram(names::REQUESTS_TOTAL, &[("route", "fast")], 1.0);
        // A name outside it keeps the kind of its first sample.
        m.histogram("embedder_custom", &[], 1.0);
        m.counter("embedder_custom", &[("a", "b")], 1);
        assert_eq!(
            *m.recorder().registered.lock().unwrap(),
            ["counter ai_service_requests_total{route=fast}", "histogram embedder_custom{}"]
        );
    }

    #[test]
    fn label_values_reach_the_recorder_as_given_unless_asked_to_double_backslashes() {
        let plain = FacadeMetrics::new(Log::default());
        plain.counter("c", &[("k", r"a\b")], 1);
        assert_eq!(*plain.recorder().registered.lock().unwrap(), [r"counter c{k=a\b}"]);
        let doubled = FacadeMetrics::new(Log::default()).doubling_backslashes();
        doubled.counter("c", &[("k", r"a\b")], 1);
        doubled.counter("c", &[("k", r"a\b")], 1);
        assert_eq!(*doubled.recorder().registered.lock().unwrap(), [r"counter c{k=a\\b}"]);
    }

    #[test]
    fn the_global_recorder_is_the_one_the_macros_use() {
        let log = Log::default();
        metrics::with_local_recorder(&log, || {
            let m = FacadeMetrics::new(GlobalRecorder);
            m.counter(names::HEDGES_TOTAL, &[("route", "r"), ("provider", "p")], 3);
        });
        assert_eq!(
            *log.registered.lock().unwrap(),
            ["counter ai_service_hedges_total{route=r,provider=p}"]
        );
        assert_eq!(log.described.lock().unwrap().len(), CATALOGUE.len());
        assert_eq!(log.updates.lock().unwrap()[0].1, 3.0);
    }
}
