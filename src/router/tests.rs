//! Router behaviour against scripted providers: failover order, retries, deadlines,
//! cancellation, hedging and streams, with paused time where timing matters.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU32, Ordering},
};

use futures::{StreamExt, stream};
use tokio::time::Instant;
use tonic::Code;

use super::*;
use crate::chat::{ChatEvent, ChatRequest, ChatResponse, FinishReason, Message, Role, Usage};
use crate::provider::{ChatStream, Provider, ProviderError, ProviderErrorKind};

/// What a scripted provider does on every call.
#[derive(Clone, Debug)]
enum Act {
    Answer,
    Fail(ProviderErrorKind),
    RateLimit(Duration),
    /// Rate limits calls for this upstream model, answers the others.
    RateLimitModel(&'static str, Duration),
    /// A stream that fails after its first content event.
    CutAfterFirstToken,
}

#[derive(Debug)]
struct Scripted {
    name: String,
    act: Act,
    delay: Duration,
    log: Arc<Mutex<Vec<String>>>,
    cancelled: Arc<AtomicU32>,
}

/// Counts a call as cancelled unless it was disarmed by finishing.
struct DropFlag(Option<Arc<AtomicU32>>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Scripted {
    async fn begin(&self, model: &str) -> Result<(), ProviderError> {
        self.log.lock().unwrap().push(self.name.clone());
        let mut flag = DropFlag(Some(self.cancelled.clone()));
        tokio::time::sleep(self.delay).await;
        flag.0 = None;
        match &self.act {
            Act::Answer | Act::CutAfterFirstToken => Ok(()),
            Act::RateLimitModel(limited, _) if *limited != model => Ok(()),
            Act::Fail(kind) => {
                Err(ProviderError::new(&self.name, *kind, "scripted failure").with_status(503))
            }
            Act::RateLimit(after) | Act::RateLimitModel(_, after) => {
                Err(ProviderError::new(&self.name, ProviderErrorKind::RateLimited, "slow down")
                    .with_retry_after(*after))
            }
        }
    }
}

#[async_trait::async_trait]
impl Provider for Scripted {
    fn name(&self) -> &str {
        &self.name
    }

    fn system(&self) -> &'static str {
        "scripted"
    }

    async fn chat(
        &self,
        model: &str,
        _request: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        self.begin(model).await?;
        Ok(ChatResponse {
            id: "x".into(),
            provider_model: model.into(),
            message: Message::text(Role::Assistant, self.name.clone()),
            finish_reason: FinishReason::Stop,
            usage: Usage::default(),
        })
    }

    async fn stream(
        &self,
        model: &str,
        _request: &ChatRequest,
    ) -> Result<ChatStream, ProviderError> {
        self.begin(model).await?;
        let name = self.name.clone();
        let mut events = vec![Ok(ChatEvent::ContentDelta(name.clone()))];
        if let Act::CutAfterFirstToken = self.act {
            events.push(Err(ProviderError::new(&name, ProviderErrorKind::StreamCut, "cut")));
        } else {
            events.push(Ok(ChatEvent::Finish {
                reason: FinishReason::Stop,
                id: "x".into(),
                provider_model: model.into(),
            }));
        }
        Ok(Box::pin(stream::iter(events)))
    }
}

struct Harness {
    log: Arc<Mutex<Vec<String>>>,
    cancelled: Arc<AtomicU32>,
    policy: Arc<HealthPolicy>,
}

impl Harness {
    fn new() -> Self {
        Harness {
            log: Arc::default(),
            cancelled: Arc::default(),
            policy: Arc::new(HealthPolicy {
                eject_after: 100,
                breaker_min_calls: 50,
                ..HealthPolicy::default()
            }),
        }
    }

    fn endpoint(&self, name: &str, act: Act, delay: Duration) -> Arc<Endpoint> {
        let provider = Arc::new(Scripted {
            name: name.into(),
            act,
            delay,
            log: self.log.clone(),
            cancelled: self.cancelled.clone(),
        });
        Arc::new(Endpoint::new(name, 1, provider, self.policy.clone()))
    }

    fn target(&self, provider: &str, endpoints: Vec<Arc<Endpoint>>) -> Target {
        Target {
            provider: provider.into(),
            model: "m".into(),
            pool: Pool::new(Strategy::RoundRobin, endpoints),
        }
    }

    fn calls(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

fn route(targets: Vec<Target>, max_retries: u32, hedge_delay: Option<Duration>) -> Route {
    Route {
        name: "r".into(),
        aliases: Vec::new(),
        targets,
        configured: true,
        max_retries,
        hedge_delay,
        backoff: Backoff { base: Duration::from_millis(50), max: Duration::from_secs(1) },
        metrics: crate::metrics::Recorder::default(),
    }
}

fn request() -> ChatRequest {
    ChatRequest {
        model: "r".into(),
        messages: vec![Message::text(Role::User, "hi")],
        ..Default::default()
    }
}

fn in_secs(s: u64) -> Instant {
    Instant::now() + Duration::from_secs(s)
}

const FAST: Duration = Duration::from_millis(10);

#[tokio::test(start_paused = true)]
async fn fails_over_to_the_next_endpoint_then_the_next_target() {
    let h = Harness::new();
    let r = route(
        vec![
            h.target(
                "openai",
                vec![
                    h.endpoint("oa-east", Act::Fail(ProviderErrorKind::Server), FAST),
                    h.endpoint("oa-west", Act::Fail(ProviderErrorKind::Connect), FAST),
                ],
            ),
            h.target("anthropic", vec![h.endpoint("anthropic", Act::Answer, FAST)]),
            h.target("groq", vec![h.endpoint("groq", Act::Answer, FAST)]),
        ],
        3,
        None,
    );
    let served = r.chat(&request(), in_secs(30)).await.unwrap();
    assert_eq!(served.provider, "anthropic");
    assert_eq!(served.attempts, 3);
    assert_eq!(h.calls(), ["oa-east", "oa-west", "anthropic"]);
}

#[tokio::test(start_paused = true)]
async fn never_fails_over_on_the_callers_mistake() {
    let h = Harness::new();
    let r = route(
        vec![
            h.target(
                "openai",
                vec![h.endpoint("openai", Act::Fail(ProviderErrorKind::Rejected), FAST)],
            ),
            h.target("anthropic", vec![h.endpoint("anthropic", Act::Answer, FAST)]),
        ],
        3,
        None,
    );
    let err = r.chat(&request(), in_secs(30)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(h.calls(), ["openai"]);
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_max_retries_listing_every_attempt() {
    let h = Harness::new();
    let r = route(
        vec![
            h.target("a", vec![h.endpoint("a1", Act::Fail(ProviderErrorKind::Server), FAST)]),
            h.target("b", vec![h.endpoint("b1", Act::Fail(ProviderErrorKind::Timeout), FAST)]),
        ],
        2,
        None,
    );
    let err = r.chat(&request(), in_secs(30)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(h.calls(), ["a1", "b1", "a1"], "3 attempts, then the chain starts over");
    let status = tonic::Status::from(err);
    let text = status.message().to_owned();
    assert!(text.contains("a/m@a1: UPSTREAM_SERVER_ERROR (HTTP 503)"), "{text}");
    assert!(text.contains("b/m@b1: UPSTREAM_TIMEOUT"), "{text}");
    use tonic_types::StatusExt;
    let info = status.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.reason, "UPSTREAM_SERVER_ERROR", "the last attempt's reason");
    assert_eq!(info.metadata["attempts"], "3");
}

#[tokio::test(start_paused = true)]
async fn all_rate_limited_is_resource_exhausted_with_retry_info() {
    let h = Harness::new();
    let r = route(
        vec![
            h.target("a", vec![h.endpoint("a1", Act::RateLimit(Duration::from_secs(20)), FAST)]),
            h.target("b", vec![h.endpoint("b1", Act::RateLimit(Duration::from_secs(8)), FAST)]),
        ],
        3,
        None,
    );
    let err = r.chat(&request(), in_secs(30)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    // Both endpoints cool down after their 429, so no third attempt can be made.
    assert_eq!(h.calls(), ["a1", "b1"]);
    use tonic_types::StatusExt;
    let status = tonic::Status::from(err);
    // The shortest wait left: b1's 8 s, less the time since its 429.
    let delay = status.get_error_details().retry_info().unwrap().retry_delay.unwrap();
    assert!(delay <= Duration::from_secs(8) && delay > Duration::from_millis(7900), "{delay:?}");
}

#[tokio::test(start_paused = true)]
async fn the_deadline_ends_the_call_promptly_and_cancels_the_attempt() {
    let h = Harness::new();
    let r = route(
        vec![h.target("slow", vec![h.endpoint("slow", Act::Answer, Duration::from_secs(60))])],
        3,
        None,
    );
    let started = Instant::now();
    let err = r.chat(&request(), in_secs(2)).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(h.cancelled.load(Ordering::SeqCst), 1, "the upstream call was dropped");
}

#[tokio::test(start_paused = true)]
async fn retries_stop_when_the_next_backoff_would_pass_the_deadline() {
    let h = Harness::new();
    let r = route(
        vec![h.target(
            "a",
            vec![h.endpoint(
                "a1",
                Act::Fail(ProviderErrorKind::Server),
                Duration::from_millis(400),
            )],
        )],
        10,
        None,
    );
    let started = Instant::now();
    let err = r.chat(&request(), Instant::now() + Duration::from_millis(1000)).await.unwrap_err();
    assert!(started.elapsed() <= Duration::from_millis(1000));
    assert!(matches!(err.code(), Code::Unavailable | Code::DeadlineExceeded), "{err}");
    assert!(h.calls().len() <= 3, "{:?}", h.calls());
}

#[tokio::test(start_paused = true)]
async fn hedging_takes_the_faster_target_and_cancels_the_slower() {
    let h = Harness::new();
    let r = route(
        vec![
            h.target("slow", vec![h.endpoint("slow", Act::Answer, Duration::from_secs(5))]),
            h.target("fast", vec![h.endpoint("fast", Act::Answer, Duration::from_millis(100))]),
        ],
        3,
        Some(Duration::from_millis(200)),
    );
    let started = Instant::now();
    let served = r.chat(&request(), in_secs(30)).await.unwrap();
    assert_eq!(served.provider, "fast");
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    assert_eq!(h.calls(), ["slow", "fast"]);
    assert_eq!(h.cancelled.load(Ordering::SeqCst), 1, "the slow attempt was dropped");
}

#[tokio::test(start_paused = true)]
async fn no_hedge_when_the_first_attempt_answers_in_time() {
    let h = Harness::new();
    let r = route(
        vec![
            h.target("a", vec![h.endpoint("a", Act::Answer, Duration::from_millis(50))]),
            h.target("b", vec![h.endpoint("b", Act::Answer, FAST)]),
        ],
        3,
        Some(Duration::from_millis(200)),
    );
    assert_eq!(r.chat(&request(), in_secs(30)).await.unwrap().provider, "a");
    assert_eq!(h.calls(), ["a"]);
}

#[tokio::test(start_paused = true)]
async fn streams_fail_over_only_before_the_first_token() {
    let h = Harness::new();
    // Fails while opening: the next target serves the stream.
    let r = route(
        vec![
            h.target("a", vec![h.endpoint("a", Act::Fail(ProviderErrorKind::Server), FAST)]),
            h.target("b", vec![h.endpoint("b", Act::Answer, FAST)]),
        ],
        3,
        None,
    );
    let served = r.stream(&request(), in_secs(30)).await.unwrap();
    assert_eq!(served.provider, "b");
    assert_eq!(served.value.head, [ChatEvent::ContentDelta("b".into())]);

    // Fails after its first token: committed, the error reaches the caller, no failover.
    let h = Harness::new();
    let r = route(
        vec![
            h.target("a", vec![h.endpoint("a", Act::CutAfterFirstToken, FAST)]),
            h.target("b", vec![h.endpoint("b", Act::Answer, FAST)]),
        ],
        3,
        None,
    );
    let mut served = r.stream(&request(), in_secs(30)).await.unwrap();
    assert_eq!(served.provider, "a");
    let next = served.value.rest.next().await.unwrap();
    assert_eq!(next.unwrap_err().kind, ProviderErrorKind::StreamCut);
    assert_eq!(h.calls(), ["a"]);
}

#[tokio::test(start_paused = true)]
async fn an_ejected_endpoint_is_skipped_until_its_cooldown_ends() {
    let mut h = Harness::new();
    h.policy = Arc::new(HealthPolicy { eject_after: 1, ..HealthPolicy::default() });
    let bad = h.endpoint("bad", Act::Fail(ProviderErrorKind::Server), FAST);
    let good = h.endpoint("good", Act::Answer, FAST);
    let r = route(vec![h.target("p", vec![bad.clone(), good])], 3, None);
    r.chat(&request(), in_secs(30)).await.unwrap();
    for _ in 0..5 {
        assert_eq!(r.chat(&request(), in_secs(30)).await.unwrap().endpoint.name, "good");
    }
    assert_eq!(h.calls().iter().filter(|c| *c == "bad").count(), 1, "ejected after one failure");
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(bad.breaker_state(Instant::now()), BreakerState::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn no_endpoint_available_is_unavailable_at_once() {
    let mut h = Harness::new();
    h.policy = Arc::new(HealthPolicy { eject_after: 1, ..HealthPolicy::default() });
    let r = route(
        vec![h.target("p", vec![h.endpoint("only", Act::Fail(ProviderErrorKind::Server), FAST)])],
        0,
        None,
    );
    assert!(r.chat(&request(), in_secs(30)).await.is_err());
    assert!(!r.is_available(Instant::now()));
    let err = r.chat(&request(), in_secs(30)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.to_string().contains("no endpoint available"), "{err}");
}

#[tokio::test]
async fn concurrent_calls_all_get_an_answer() {
    let h = Harness::new();
    let r = Arc::new(route(
        vec![
            h.target(
                "a",
                vec![
                    h.endpoint(
                        "a1",
                        Act::Fail(ProviderErrorKind::Server),
                        Duration::from_millis(1),
                    ),
                    h.endpoint("a2", Act::Answer, Duration::from_millis(1)),
                ],
            ),
            h.target("b", vec![h.endpoint("b1", Act::Answer, Duration::from_millis(1))]),
        ],
        3,
        Some(Duration::from_millis(5)),
    ));
    let calls = (0..500).map(|_| {
        let r = r.clone();
        tokio::spawn(async move { r.chat(&request(), in_secs(30)).await.map(|s| s.provider) })
    });
    let results = futures::future::join_all(calls).await;
    assert_eq!(results.len(), 500);
    for result in results {
        assert!(result.unwrap().is_ok());
    }
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_cools_only_that_model_on_a_shared_endpoint() {
    let h = Harness::new();
    // One endpoint shared by two routes, as a provider's default endpoint is.
    let shared = h.endpoint("shared", Act::RateLimitModel("a", Duration::from_secs(30)), FAST);
    let target = |model: &str| Target {
        provider: "p".into(),
        model: model.into(),
        pool: Pool::new(Strategy::Health, vec![shared.clone()]),
    };
    let (route_a, route_b) = (route(vec![target("a")], 3, None), route(vec![target("b")], 3, None));

    let err = route_a.chat(&request(), in_secs(60)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(h.calls(), ["shared"], "the 429 leaves nothing else to try for a");
    assert!(!route_a.is_available(Instant::now()));
    assert!(route_b.is_available(Instant::now()));

    let served = route_b.chat(&request(), in_secs(60)).await.unwrap();
    assert_eq!((served.model.as_str(), served.attempts), ("b", 1));

    tokio::time::advance(Duration::from_secs(10)).await;
    let err = route_a.chat(&request(), in_secs(60)).await.unwrap_err();
    assert_eq!(h.calls(), ["shared", "shared"], "a is refused without reaching the upstream");
    assert!(matches!(&err, Error::Exhausted { attempts, .. } if attempts.is_empty()), "{err}");
    assert_eq!(err.reason(), "UPSTREAM_RATE_LIMITED");
    use tonic_types::StatusExt;
    let status = tonic::Status::from(err);
    assert_eq!(status.code(), Code::ResourceExhausted);
    let delay = status.get_error_details().retry_info().unwrap().retry_delay.unwrap();
    // What is left of a's 30 s, less the few milliseconds the calls took.
    assert!(delay <= Duration::from_secs(20) && delay > Duration::from_millis(19_800), "{delay:?}");
}

#[test]
fn passthrough_routes_are_labelled_by_provider() {
    let config = crate::Config::from_yaml(
        "providers: {local: {kind: echo}}\nroutes: [{name: fast, aliases: [quick], targets: [{provider: local, model: m}]}]",
        std::iter::empty(),
    )
    .unwrap();
    let router = Router::from_config(&config);
    for (asked, label) in
        [("fast", "fast"), ("quick", "fast"), ("local/any-model-at-all", "local/*")]
    {
        let route = router.resolve(asked).unwrap();
        assert_eq!(route.label(), label, "asked {asked}");
    }
}
