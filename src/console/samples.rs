//! The console's charts: a ring of per-second samples of the gateway's own metrics.
//!
//! An owned background task ([`run`], started and aborted by the admin port) renders the
//! metrics registry every [`SAMPLE_INTERVAL`], reads the few families the console charts out
//! of the Prometheus text, and keeps the difference from the previous reading: calls and
//! errors per second, p50/p99 of call latency and of the gateway's overhead (interpolated in
//! the histogram buckets, as Prometheus' `histogram_quantile` does), and the retries,
//! failovers and hedges of that second. The last [`RING_LEN`] samples (ten minutes) are kept.
//! Reading the registry rather than hooking the call path keeps the console off the hot path:
//! the calls pay nothing for it. A backend that renders no text (an embedder's own) leaves
//! the ring empty.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use serde::Serialize;

use crate::metrics::{Recorder, names};

/// How often the registry is sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Samples kept: ten minutes at one a second.
pub const RING_LEN: usize = 600;

/// One interval of traffic.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Sample {
    /// End of the interval, in milliseconds since the Unix epoch.
    pub t_ms: u64,
    /// Finished calls per second.
    pub requests_per_sec: f64,
    /// Finished calls with a code other than OK, per second.
    pub errors_per_sec: f64,
    /// Median call latency in milliseconds; `None` without calls.
    pub latency_p50_ms: Option<f64>,
    /// 99th percentile call latency in milliseconds.
    pub latency_p99_ms: Option<f64>,
    /// Median gateway overhead (total minus upstream time) in milliseconds.
    pub overhead_p50_ms: Option<f64>,
    /// 99th percentile gateway overhead in milliseconds.
    pub overhead_p99_ms: Option<f64>,
    /// Attempts retried on the same target in the interval.
    pub retries: f64,
    /// Moves to the next target in the interval.
    pub failovers: f64,
    /// Hedged requests sent in the interval.
    pub hedges: f64,
}

/// Retries, failovers and hedges of one route and provider since the gateway started.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Resilience {
    /// The route label.
    pub route: String,
    /// The provider label.
    pub provider: String,
    /// Attempts retried on the same target.
    pub retries: f64,
    /// Moves from this provider's target to the next.
    pub failovers: f64,
    /// Hedged requests sent.
    pub hedges: f64,
}

/// What the console's `/api/metrics` serves.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Series {
    /// Seconds between samples.
    pub interval_secs: u64,
    /// Oldest first.
    pub samples: Vec<Sample>,
    /// Totals since start, by route and provider.
    pub resilience: Vec<Resilience>,
    /// Calls finished since start.
    pub requests_total: f64,
    /// Of them, not OK.
    pub errors_total: f64,
}

/// The ring, shared between the sampling task and the admin port's answers.
#[derive(Debug, Default)]
pub struct Ring {
    inner: Mutex<(VecDeque<Sample>, Reading)>,
}

impl Ring {
    /// The samples and totals kept now.
    pub fn series(&self) -> Series {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (samples, last) = &*inner;
        Series {
            interval_secs: SAMPLE_INTERVAL.as_secs(),
            samples: samples.iter().cloned().collect(),
            resilience: last
                .resilience
                .iter()
                .map(|((route, provider), r)| Resilience {
                    route: route.clone(),
                    provider: provider.clone(),
                    retries: r[0],
                    failovers: r[1],
                    hedges: r[2],
                })
                .collect(),
            requests_total: last.requests,
            errors_total: last.errors,
        }
    }

    /// Takes in a new reading: the first only sets the baseline.
    fn push(&self, reading: Reading, first: bool, at: SystemTime) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (samples, last) = &mut *inner;
        if !first {
            let mut sample = reading.since(last, SAMPLE_INTERVAL);
            sample.t_ms = at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            if samples.len() == RING_LEN {
                samples.pop_front();
            }
            samples.push_back(sample);
        }
        *last = reading;
    }
}

/// Samples `metrics` into `ring` every [`SAMPLE_INTERVAL`], for as long as it runs (the admin
/// port owns the task and aborts it when it stops).
pub async fn run(metrics: Recorder, ring: Arc<Ring>) {
    let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = true;
    loop {
        tick.tick().await;
        let Some(text) = metrics.render() else { return };
        ring.push(Reading::parse(&text), first, SystemTime::now());
        first = false;
    }
}

/// Cumulative histogram buckets summed over every series of one family: upper bound →
/// count, `+Inf` last.
#[derive(Clone, Debug, Default, PartialEq)]
struct Buckets(Vec<(f64, f64)>);

impl Buckets {
    fn add(&mut self, le: f64, count: f64) {
        match self.0.iter_mut().find(|(bound, _)| *bound == le) {
            Some((_, total)) => *total += count,
            None => {
                self.0.push((le, count));
                self.0.sort_by(|a, b| a.0.total_cmp(&b.0));
            }
        }
    }

    /// These counts minus `earlier`'s, bucket by bucket (a series that was not there counts
    /// from zero).
    fn since(&self, earlier: &Buckets) -> Buckets {
        Buckets(
            self.0
                .iter()
                .map(|&(le, count)| {
                    let before = earlier.0.iter().find(|(b, _)| *b == le).map_or(0.0, |(_, c)| *c);
                    (le, (count - before).max(0.0))
                })
                .collect(),
        )
    }

    /// The `q` quantile in seconds, interpolated linearly within its bucket; `None` without
    /// observations. One that falls in the `+Inf` bucket is reported as the highest bound.
    fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.0.last().map(|(_, c)| *c).filter(|c| *c > 0.0)?;
        let rank = q * total;
        let (mut lower, mut below) = (0.0, 0.0);
        for &(le, count) in &self.0 {
            if count >= rank {
                if le.is_infinite() {
                    return Some(lower);
                }
                let within = count - below;
                let share = if within > 0.0 { (rank - below) / within } else { 1.0 };
                return Some(lower + (le - lower) * share);
            }
            (lower, below) = (le, count);
        }
        Some(lower)
    }
}

/// The families the console charts, read from one rendering of the registry.
#[derive(Clone, Debug, Default, PartialEq)]
struct Reading {
    requests: f64,
    errors: f64,
    latency: Buckets,
    overhead: Buckets,
    /// (route, provider) → [retries, failovers, hedges].
    resilience: BTreeMap<(String, String), [f64; 3]>,
}

impl Reading {
    fn parse(text: &str) -> Reading {
        let mut reading = Reading::default();
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let Some((name, labels, value)) = sample_line(line) else { continue };
            let label = |key: &str| labels.get(key).cloned().unwrap_or_default();
            let le = || labels.get("le").and_then(|le| parse_value(le));
            let mut resilience = |slot: usize| {
                reading.resilience.entry((label("route"), label("provider"))).or_default()[slot] +=
                    value;
            };
            match name {
                names::REQUESTS_TOTAL => {
                    reading.requests += value;
                    if labels.get("code").is_some_and(|c| c != "OK") {
                        reading.errors += value;
                    }
                }
                names::RETRIES_TOTAL => resilience(0),
                names::FAILOVERS_TOTAL => resilience(1),
                names::HEDGES_TOTAL => resilience(2),
                _ if name.strip_suffix("_bucket") == Some(names::REQUEST_DURATION_SECONDS) => {
                    if let Some(le) = le() {
                        reading.latency.add(le, value);
                    }
                }
                _ if name.strip_suffix("_bucket") == Some(names::OVERHEAD_SECONDS) => {
                    if let Some(le) = le() {
                        reading.overhead.add(le, value);
                    }
                }
                _ => {}
            }
        }
        reading
    }

    /// What happened between `earlier` and this reading, `interval` apart.
    fn since(&self, earlier: &Reading, interval: Duration) -> Sample {
        let secs = interval.as_secs_f64().max(f64::EPSILON);
        let latency = self.latency.since(&earlier.latency);
        let overhead = self.overhead.since(&earlier.overhead);
        let ms = |s: Option<f64>| s.map(|s| (s * 1e6).round() / 1e3);
        let mut moved = [0.0; 3];
        for (key, now) in &self.resilience {
            let before = earlier.resilience.get(key).copied().unwrap_or_default();
            for (slot, total) in moved.iter_mut().enumerate() {
                *total += (now[slot] - before[slot]).max(0.0);
            }
        }
        Sample {
            t_ms: 0,
            requests_per_sec: (self.requests - earlier.requests).max(0.0) / secs,
            errors_per_sec: (self.errors - earlier.errors).max(0.0) / secs,
            latency_p50_ms: ms(latency.quantile(0.5)),
            latency_p99_ms: ms(latency.quantile(0.99)),
            overhead_p50_ms: ms(overhead.quantile(0.5)),
            overhead_p99_ms: ms(overhead.quantile(0.99)),
            retries: moved[0],
            failovers: moved[1],
            hedges: moved[2],
        }
    }
}

/// One sample line of the text format: `name{key="value",...} value [timestamp]`.
fn sample_line(line: &str) -> Option<(&str, HashMap<String, String>, f64)> {
    let line = line.trim();
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = &line[..name_end];
    let mut labels = HashMap::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut key = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '}' => {
                    end = Some(i + 1);
                    break;
                }
                ',' | ' ' => {}
                '=' => {
                    // The value: a quoted string with `\\`, `\"` and `\n` escapes.
                    if chars.next().map(|(_, c)| c) != Some('"') {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                other => key.push(other),
            }
        }
        rest = &body[end?..];
    }
    let value = parse_value(rest.split_whitespace().next()?)?;
    Some((name, labels, value))
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = r#"# TYPE ai_service_requests_total counter
ai_service_requests_total{front_door="grpc",method="Chat",route="a",provider="p",code="OK"} 10
ai_service_requests_total{front_door="grpc",method="Chat",route="a",provider="p",code="UNAVAILABLE"} 1
ai_service_retries_total{route="a",provider="p"} 2
ai_service_request_duration_seconds_bucket{front_door="grpc",method="Chat",route="a",provider="p",le="0.01"} 5
ai_service_request_duration_seconds_bucket{front_door="grpc",method="Chat",route="a",provider="p",le="0.1"} 11
ai_service_request_duration_seconds_bucket{front_door="grpc",method="Chat",route="a",provider="p",le="+Inf"} 11
"#;

    const AFTER: &str = r#"ai_service_requests_total{front_door="grpc",method="Chat",route="a",provider="p",code="OK"} 18
ai_service_requests_total{front_door="grpc",method="Chat",route="a",provider="p",code="UNAVAILABLE"} 3
ai_service_requests_total{front_door="openai",method="Chat",route="we\"ird,}",provider="p",code="OK"} 2
ai_service_retries_total{route="a",provider="p"} 5
ai_service_failovers_total{route="a",provider="p"} 1
ai_service_hedges_total{route="b",provider="q"} 4
ai_service_request_duration_seconds_bucket{front_door="grpc",method="Chat",route="a",provider="p",le="0.01"} 5
ai_service_request_duration_seconds_bucket{front_door="grpc",method="Chat",route="a",provider="p",le="0.1"} 21
ai_service_request_duration_seconds_bucket{front_door="grpc",method="Chat",route="a",provider="p",le="+Inf"} 21
ai_service_request_duration_seconds_bucket{front_door="openai",method="Chat",route="c",provider="p",le="0.01"} 0
ai_service_request_duration_seconds_bucket{front_door="openai",method="Chat",route="c",provider="p",le="0.1"} 0
ai_service_request_duration_seconds_bucket{front_door="openai",method="Chat",route="c",provider="p",le="+Inf"} 2
ai_service_overhead_seconds_bucket{method="Chat",le="0.001"} 12
ai_service_overhead_seconds_bucket{method="Chat",le="+Inf"} 12
"#;

    #[test]
    fn a_sample_is_the_difference_of_two_readings() {
        let sample = Reading::parse(AFTER).since(&Reading::parse(BEFORE), Duration::from_secs(2));
        assert_eq!(sample.requests_per_sec, 6.0, "12 calls in 2 s, escaped labels included");
        assert_eq!(sample.errors_per_sec, 1.0);
        assert_eq!((sample.retries, sample.failovers, sample.hedges), (3.0, 1.0, 4.0));
        // 12 new observations: 10 in (0.01, 0.1], 2 above 0.1. The median is the 6th, 6/10
        // of the way into the bucket; the 99th percentile lies in +Inf: its lower bound.
        assert_eq!(sample.latency_p50_ms, Some(64.0));
        assert_eq!(sample.latency_p99_ms, Some(100.0));
        assert_eq!(sample.overhead_p50_ms, Some(0.5));
    }

    #[test]
    fn no_calls_no_percentiles() {
        let reading = Reading::parse(BEFORE);
        let sample = reading.since(&reading, SAMPLE_INTERVAL);
        assert_eq!(sample.requests_per_sec, 0.0);
        assert_eq!(sample.latency_p50_ms, None);
        assert_eq!(sample.overhead_p99_ms, None);
    }

    #[test]
    fn the_ring_keeps_the_last_ten_minutes() {
        let ring = Ring::default();
        ring.push(Reading::parse(BEFORE), true, SystemTime::now());
        assert!(ring.series().samples.is_empty(), "the first reading is the baseline");
        for _ in 0..RING_LEN + 5 {
            ring.push(Reading::parse(AFTER), false, SystemTime::now());
        }
        let series = ring.series();
        assert_eq!(series.samples.len(), RING_LEN);
        assert_eq!(series.requests_total, 23.0);
        assert_eq!(series.errors_total, 3.0);
        let a = series.resilience.iter().find(|r| r.route == "a").unwrap();
        assert_eq!((a.retries, a.failovers, a.hedges), (5.0, 1.0, 0.0));
    }
}
