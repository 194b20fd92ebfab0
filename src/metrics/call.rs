//! What a finished call records, and under which labels: the one definition both ways of
//! recording it use — sample by sample through [`Metrics`]'s methods ([`emit`], the trait's
//! default), or through the handles [`super::FacadeMetrics`] keeps together per call series.

use std::time::Duration;

use tonic::Code;

use super::{FrontDoor, Method, Metrics, code_name, labels, names};

/// What a finished call emits, in one piece: see [`Recorder::call_finished`].
#[derive(Clone, Copy, Debug)]
pub struct CallSignals<'a> {
    /// How it came in.
    pub front_door: FrontDoor,
    /// What it was.
    pub method: Method,
    /// Its route's label, [`labels::NONE`] when it never got one.
    pub route: &'a str,
    /// The provider that answered or was tried last, [`labels::NONE`] when none was.
    pub provider: &'a str,
    /// How it ended.
    pub code: Code,
    /// From arrival to end.
    pub total: Duration,
    /// Time spent on the upstream, when an attempt was sent.
    pub upstream: Option<Duration>,
    /// The gateway's own time.
    pub overhead: Duration,
    /// Time to the first content of a stream.
    pub first_token: Option<Duration>,
    /// The tokens the call's answer reported.
    pub tokens: Option<Tokens>,
    /// Whether it was a stream that relayed.
    pub streamed: bool,
}

/// A call's tokens by kind, as `ai_service_tokens_total` counts them: cache reads and writes
/// are part of the input, reasoning part of the output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Prompt tokens, all of them.
    pub input: u32,
    /// Generated tokens, all of them.
    pub output: u32,
    /// Of the input, read from the provider's prompt cache.
    pub cache_read: u32,
    /// Of the input, written to the provider's prompt cache.
    pub cache_write: u32,
    /// Of the output, spent on reasoning.
    pub reasoning: u32,
}

/// A label pair of a sample.
type Pair<'a> = (&'static str, &'a str);

/// The label sets of a finished call's samples, one per metric.
pub(super) struct CallLabels<'a> {
    /// `requests_total`: door, method, route, provider, code.
    pub with_code: [Pair<'a>; 5],
    /// `request_duration_seconds`: door, method, route, provider.
    pub call: [Pair<'a>; 4],
    /// `upstream_duration_seconds`: method, provider.
    pub upstream: [Pair<'a>; 2],
    /// `overhead_seconds` and `requests_in_flight`: method.
    pub method: [Pair<'a>; 1],
    /// `time_to_first_token_seconds`, and with a type `tokens_total`: route, provider.
    pub by_target: [Pair<'a>; 2],
}

impl<'a> CallLabels<'a> {
    /// `tokens_total`'s labels for tokens of `kind`.
    pub fn tokens(&self, kind: &'static str) -> [Pair<'a>; 3] {
        let [route, provider] = self.by_target;
        [route, provider, (labels::TYPE, kind)]
    }
}

impl<'a> CallSignals<'a> {
    /// The labels of its samples.
    pub(super) fn labels(&self) -> CallLabels<'a> {
        let (door, method) = (self.front_door.as_str(), self.method.as_str());
        let call = [
            (labels::FRONT_DOOR, door),
            (labels::METHOD, method),
            (labels::ROUTE, self.route),
            (labels::PROVIDER, self.provider),
        ];
        CallLabels {
            with_code: [call[0], call[1], call[2], call[3], (labels::CODE, code_name(self.code))],
            call,
            upstream: [(labels::METHOD, method), (labels::PROVIDER, self.provider)],
            method: [(labels::METHOD, method)],
            by_target: [(labels::ROUTE, self.route), (labels::PROVIDER, self.provider)],
        }
    }
}

/// Records a finished call sample by sample: [`Metrics::call_finished`]'s default.
pub(super) fn emit<M: Metrics + ?Sized>(m: &M, s: &CallSignals<'_>) {
    let l = s.labels();
    m.counter(names::REQUESTS_TOTAL, &l.with_code, 1);
    m.timing(names::REQUEST_DURATION_SECONDS, &l.call, s.total);
    if let Some(upstream) = s.upstream {
        m.timing(names::UPSTREAM_DURATION_SECONDS, &l.upstream, upstream);
    }
    m.timing(names::OVERHEAD_SECONDS, &l.method, s.overhead);
    if let Some(t) = s.tokens {
        m.counter(names::TOKENS_TOTAL, &l.tokens("input"), t.input.into());
        m.counter(names::TOKENS_TOTAL, &l.tokens("output"), t.output.into());
    }
    m.gauge_add(names::REQUESTS_IN_FLIGHT, &l.method, -1.0);
    emit_rest(m, s, &l);
}

/// The samples only some calls have, sample by sample: the time to first token, the parts of
/// the tokens a provider reports (only when it reports them: no series of zeros for providers
/// and routes that never do), the streams gauge.
pub(super) fn emit_rest<M: Metrics + ?Sized>(m: &M, s: &CallSignals<'_>, l: &CallLabels<'_>) {
    if let Some(ttft) = s.first_token {
        m.timing(names::TIME_TO_FIRST_TOKEN_SECONDS, &l.by_target, ttft);
    }
    if let Some(t) = s.tokens {
        for (kind, count) in [
            ("cache_read", t.cache_read),
            ("cache_write", t.cache_write),
            ("reasoning", t.reasoning),
        ] {
            if count > 0 {
                m.counter(names::TOKENS_TOTAL, &l.tokens(kind), count.into());
            }
        }
    }
    if s.streamed {
        m.gauge_add(names::STREAMS_IN_FLIGHT, &[], -1.0);
    }
}
