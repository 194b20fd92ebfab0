//! The built-in backend: the gateway's signals through the `metrics` facade into
//! `metrics-exporter-prometheus`, rendered in the Prometheus text format (version 0.0.4) for
//! the admin port's `/metrics`.
//!
//! The exporter's recorder is built here, not installed globally: each gateway keeps its own
//! series, so several can run in one process. Every histogram of the [`super::CATALOGUE`]
//! gets its explicit buckets (a name outside it gets [`super::LATENCY_BUCKETS`]); without
//! them the exporter would render summaries.
//!
//! The exporter keeps histogram samples in a lock-free queue per series and sorts them into
//! buckets later, at a render or an upkeep. So that the queues stay short between scrapes (or
//! with no scraper at all), [`PrometheusMetrics::new`] called inside a tokio runtime starts an
//! upkeep task every [`UPKEEP_INTERVAL`], owned by the backend and aborted when it is dropped
//! (that is, with the last clone of the gateway holding it). Outside a runtime, call
//! [`PrometheusMetrics::run_upkeep`] yourself.

use std::time::Duration;

use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use super::{CATALOGUE, LATENCY_BUCKETS, Labels, Metrics, facade::FacadeMetrics};

/// The content type of [`PrometheusMetrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often the upkeep task sorts queued histogram samples into their buckets. At 30,000
/// calls a second and three histogram samples a call, about half a megabyte waits in the
/// queues between two upkeeps.
pub const UPKEEP_INTERVAL: Duration = Duration::from_millis(250);

/// A Prometheus registry implementing [`Metrics`].
#[derive(Debug)]
pub struct PrometheusMetrics {
    facade: FacadeMetrics<PrometheusRecorder>,
    handle: PrometheusHandle,
    _upkeep: Option<Upkeep>,
}

impl Default for PrometheusMetrics {
    fn default() -> Self {
        PrometheusMetrics::new()
    }
}

impl PrometheusMetrics {
    /// An empty registry knowing every metric of the catalogue; see the module docs for its
    /// upkeep task.
    pub fn new() -> Self {
        let recorder = match builder() {
            Ok(builder) => builder.build_recorder(),
            Err(error) => {
                // Only empty bucket lists fail, and the catalogue has none.
                tracing::error!(%error, "histogram buckets refused; histograms render as summaries");
                PrometheusBuilder::new().build_recorder()
            }
        };
        let handle = recorder.handle();
        // The exporter's label escaping reads `\\` and `\"` as already escaped; doubled
        // backslashes come out right.
        let facade = FacadeMetrics::new(recorder).doubling_backslashes();
        let upkeep = tokio::runtime::Handle::try_current()
            .ok()
            .map(|runtime| Upkeep(runtime.spawn(upkeep(handle.clone()))));
        PrometheusMetrics { facade, handle, _upkeep: upkeep }
    }

    /// Everything recorded, in the Prometheus text format; families without samples are left
    /// out.
    pub fn render_text(&self) -> String {
        self.handle.render()
    }

    /// Sorts queued histogram samples into their buckets (the upkeep task does this
    /// periodically; rendering does it too).
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The exporter's handle, e.g. to render elsewhere.
    pub fn handle(&self) -> &PrometheusHandle {
        &self.handle
    }
}

/// The exporter's builder with the catalogue's buckets (and [`LATENCY_BUCKETS`] for other
/// histograms). An embedder that installs its own Prometheus exporter and hands it to
/// [`crate::Gateway::with_metrics_recorder`] starts from this, or the gateway's histograms
/// render as summaries.
///
/// # Errors
///
/// Never for the catalogue (the exporter refuses only empty bucket lists).
pub fn builder() -> Result<PrometheusBuilder, metrics_exporter_prometheus::BuildError> {
    let mut builder = PrometheusBuilder::new().set_buckets(LATENCY_BUCKETS)?;
    for def in CATALOGUE.iter().filter(|d| !d.buckets.is_empty()) {
        builder =
            builder.set_buckets_for_metric(Matcher::Full(def.name.to_owned()), def.buckets)?;
    }
    Ok(builder)
}

async fn upkeep(handle: PrometheusHandle) {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}

/// The upkeep task, aborted when the registry is dropped.
#[derive(Debug)]
struct Upkeep(tokio::task::JoinHandle<()>);

impl Drop for Upkeep {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Metrics for PrometheusMetrics {
    fn counter(&self, name: &'static str, labels: Labels<'_>, value: u64) {
        self.facade.counter(name, labels, value);
    }

    fn gauge_set(&self, name: &'static str, labels: Labels<'_>, value: f64) {
        self.facade.gauge_set(name, labels, value);
    }

    fn gauge_add(&self, name: &'static str, labels: Labels<'_>, delta: f64) {
        self.facade.gauge_add(name, labels, delta);
    }

    fn histogram(&self, name: &'static str, labels: Labels<'_>, value: f64) {
        self.facade.histogram(name, labels, value);
    }

    fn call_finished(&self, s: &super::CallSignals<'_>) {
        self.facade.call_finished(s);
    }

    fn render(&self) -> Option<String> {
        Some(self.render_text())
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
        assert!(text.contains(
            "# HELP ai_service_requests_total Finished calls by front door, method, route, provider and gRPC code.\n"
        ));
        assert!(text.contains("ai_service_requests_total{route=\"fast\",code=\"OK\"} 3\n"));
        assert!(text.contains("ai_service_requests_total{route=\"a\\\"b\",code=\"OK\"} 1\n"));
        assert!(text.contains("ai_service_requests_in_flight{method=\"Chat\"} 1\n"));
        assert!(text.contains("# TYPE ai_service_overhead_seconds histogram\n"));
        let bucket =
            |le: &str| format!("ai_service_overhead_seconds_bucket{{method=\"Chat\",le=\"{le}\"}}");
        assert!(text.contains(&format!("{} 0\n", bucket("0.00001"))), "{text}");
        assert!(text.contains(&format!("{} 0\n", bucket("0.000025"))), "{text}");
        assert!(text.contains(&format!("{} 1\n", bucket("0.00005"))));
        assert!(text.contains(&format!("{} 1\n", bucket("0.1"))));
        assert!(text.contains(&format!("{} 2\n", bucket("+Inf"))));
        assert!(text.contains("ai_service_overhead_seconds_count{method=\"Chat\"} 2\n"));
        assert!(text.contains("ai_service_overhead_seconds_sum{method=\"Chat\"} 7.00003\n"));
        // Families without samples are left out.
        assert!(!text.contains("ai_service_hedges_total"));
        // A second render shows the same samples (rendering drains the queues, not the
        // buckets).
        assert_eq!(
            m.render_text().lines().filter(|l| l.starts_with("ai_service_overhead")).count(),
            text.lines().filter(|l| l.starts_with("ai_service_overhead")).count()
        );
        assert!(m.render_text().contains("ai_service_overhead_seconds_count{method=\"Chat\"} 2\n"));
    }

    /// Forwards single samples only: finished calls take `Metrics::call_finished`'s default,
    /// one sample at a time.
    #[derive(Debug)]
    struct PerSample(PrometheusMetrics);

    impl Metrics for PerSample {
        fn counter(&self, name: &'static str, labels: Labels<'_>, value: u64) {
            self.0.counter(name, labels, value);
        }
        fn gauge_set(&self, name: &'static str, labels: Labels<'_>, value: f64) {
            self.0.gauge_set(name, labels, value);
        }
        fn gauge_add(&self, name: &'static str, labels: Labels<'_>, delta: f64) {
            self.0.gauge_add(name, labels, delta);
        }
        fn histogram(&self, name: &'static str, labels: Labels<'_>, value: f64) {
            self.0.histogram(name, labels, value);
        }
    }

    #[test]
    fn a_finished_call_records_the_same_through_its_kept_handles_as_sample_by_sample() {
        use crate::metrics::{CallSignals, FrontDoor, Method, Recorder, Tokens};
        use std::time::Duration;
        let kept = std::sync::Arc::new(PrometheusMetrics::new());
        let single = std::sync::Arc::new(PerSample(PrometheusMetrics::new()));
        let ms = Duration::from_millis;
        let ok = CallSignals {
            front_door: FrontDoor::Grpc,
            method: Method::Chat,
            route: "fast",
            provider: "openai",
            code: tonic::Code::Ok,
            total: ms(12),
            upstream: Some(ms(10)),
            overhead: ms(2),
            first_token: None,
            tokens: Some(Tokens { input: 9, output: 6, ..Tokens::default() }),
            streamed: false,
        };
        let calls = [
            ok,
            ok,
            // Another provider of the same route, the same provider on another route.
            CallSignals { provider: "anthropic", total: ms(40), ..ok },
            CallSignals { route: "fas", provider: "topenai", ..ok },
            // Refused before any upstream: no upstream or token series of its own.
            CallSignals {
                code: tonic::Code::Unauthenticated,
                route: "none",
                provider: "none",
                upstream: None,
                tokens: None,
                ..ok
            },
            CallSignals { code: tonic::Code::Unavailable, tokens: None, ..ok },
            // A stream, with the parts of its tokens a provider reports.
            CallSignals {
                front_door: FrontDoor::OpenAi,
                method: Method::StreamChat,
                first_token: Some(ms(3)),
                tokens: Some(Tokens {
                    input: 9,
                    output: 20,
                    cache_read: 4,
                    cache_write: 0,
                    reasoning: 7,
                }),
                streamed: true,
                ..ok
            },
            ok,
        ];
        for sink in [Recorder::new(kept.clone()), Recorder::new(single.clone())] {
            for call in &calls {
                sink.call_started(call.method);
                if call.streamed {
                    sink.stream_started();
                }
                sink.call_finished(call);
            }
        }
        // The exporter lists series in its maps' order: compared as sets of lines.
        let lines = |text: String| {
            let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
            lines.sort();
            lines
        };
        let text = kept.render_text();
        assert_eq!(lines(text.clone()), lines(single.0.render_text()));
        assert!(text.contains("ai_service_requests_total{front_door=\"grpc\",method=\"Chat\",route=\"fast\",provider=\"openai\",code=\"OK\"} 3\n"), "{text}");
        assert!(
            text.contains(
                "ai_service_tokens_total{route=\"fast\",provider=\"openai\",type=\"reasoning\"} 7\n"
            ),
            "{text}"
        );
        assert!(!text.contains("provider=\"none\",type="), "{text}");
        assert!(
            !text.contains(
                "ai_service_upstream_duration_seconds_count{method=\"Chat\",provider=\"none\"}"
            ),
            "{text}"
        );
        assert!(text.contains("ai_service_requests_in_flight{method=\"Chat\"} 0\n"), "{text}");
    }

    #[test]
    fn every_catalogue_histogram_has_its_buckets() {
        let m = PrometheusMetrics::new();
        for def in CATALOGUE.iter().filter(|d| !d.buckets.is_empty()) {
            m.histogram(def.name, &[], 0.0);
        }
        m.run_upkeep();
        let text = m.render_text();
        for def in CATALOGUE.iter().filter(|d| !d.buckets.is_empty()) {
            assert!(text.contains(&format!("# TYPE {} histogram\n", def.name)), "{text}");
            let les: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with(&format!("{}_bucket{{", def.name)))
                .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next())
                .collect();
            let expected: Vec<String> = def
                .buckets
                .iter()
                .map(f64::to_string)
                .chain(std::iter::once("+Inf".to_owned()))
                .collect();
            assert_eq!(les, expected, "{}", def.name);
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let m = PrometheusMetrics::new();
        for value in [r"back\slash", r"two\\slashes", r#"slash\"quote"#, "new\nline", r"end\"] {
            m.counter(names::CACHE_HITS_TOTAL, &[("route", value)], 1);
        }
        let text = m.render_text();
        for escaped in [
            r#"route="back\\slash""#,
            r#"route="two\\\\slashes""#,
            r#"route="slash\\\"quote""#,
            r#"route="new\nline""#,
            r#"route="end\\""#,
        ] {
            assert!(
                text.contains(&format!("ai_service_cache_hits_total{{{escaped}}} 1\n")),
                "{escaped} in\n{text}"
            );
        }
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

    #[test]
    fn two_registries_keep_their_series_apart() {
        let (a, b) = (PrometheusMetrics::new(), PrometheusMetrics::new());
        a.counter(names::HEDGES_TOTAL, &[], 1);
        assert!(a.render_text().contains("ai_service_hedges_total 1\n"));
        assert!(!b.render_text().contains("ai_service_hedges_total"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_upkeep_task_runs_until_the_registry_is_dropped() {
        let m = PrometheusMetrics::new();
        let task = m._upkeep.as_ref().map(|u| u.0.abort_handle()).unwrap();
        m.histogram(names::OVERHEAD_SECONDS, &[], 0.001);
        tokio::time::sleep(UPKEEP_INTERVAL * 2).await;
        assert!(!task.is_finished());
        drop(m);
        tokio::task::yield_now().await;
        assert!(task.is_finished());
    }
}
