//! The relay of a committed upstream stream to the front door, with the ordering every front
//! door promises: deltas, then exactly one usage event (estimated when the provider gave
//! none), then finish. A provider stream that ends without its finish event ends with
//! UNAVAILABLE (`UPSTREAM_STREAM_CUT`), never cleanly; the deadline ends it with
//! DEADLINE_EXCEEDED, the end of the shutdown grace period with UNAVAILABLE. A failure after
//! the commit also counts against the endpoint's health, for the stream's upstream model.
//!
//! The relay also bills the stream ([`super::bill`]): once its usage event has gone out, the
//! finish carries what the call cost and what its key has left after the charge. (One layer
//! for both: every event of a stream passes through each layer's poll.)

use futures::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::bill::Biller;
use crate::{
    chat::{ChatEvent, ChatRequest, Finish, ReplyEvent, Usage},
    error::Error,
    provider::{ProviderError, ProviderErrorKind, estimate_tokens, estimate_usage},
    router::{Outcome, Primed, Served},
};

/// A stream of a call's reply events, as the pipeline hands it to a front door: the response
/// cache's [`Events`](crate::cache::Events), which it records and replays.
pub use crate::cache::Events as ReplyStream;

/// Relays `served` for the route named `route`, until it ends, `deadline` passes or `stop` is
/// cancelled, its finish billed by `biller`; see the module docs.
pub fn relay(
    served: Served<Primed>,
    request: &ChatRequest,
    route: String,
    deadline: Instant,
    stop: CancellationToken,
    biller: Biller,
) -> ReplyStream {
    let estimate = estimate_usage(request, 0);
    let Served { value: Primed { head, mut rest }, provider, model, endpoint, .. } = served;
    let mut head = head.into_iter();
    Box::pin(async_stream::stream! {
        let mut usage: Option<Usage> = None;
        let mut output_bytes = 0usize;
        // One timer and one cancellation waiter for the stream's life, registered once, not
        // made and dropped again for every event.
        let expiry = tokio::time::sleep_until(deadline);
        let stopped = stop.cancelled_owned();
        tokio::pin!(expiry, stopped);
        loop {
            let item = match head.next() {
                Some(event) => Some(Ok(event)),
                // The upstream first: a chunk that is ready goes out without the timer and
                // the cancellation being polled (and without select!'s random draw); both
                // are looked at whenever the upstream has nothing ready, which a network
                // stream reaches at every read (and tokio's budget forces).
                None => tokio::select! {
                    biased;
                    item = rest.next() => item,
                    () = &mut expiry => {
                        yield Err(Error::DeadlineExceeded("the stream did not finish within the deadline".into()));
                        return;
                    }
                    () = &mut stopped => {
                        yield Err(Error::Stopped);
                        return;
                    }
                },
            };
            let Some(item) = item else { break };
            match item {
                Ok(ChatEvent::ContentDelta(text)) => {
                    output_bytes += text.len();
                    yield Ok(ReplyEvent::ContentDelta(text));
                }
                Ok(ChatEvent::ReasoningDelta(delta)) => {
                    output_bytes += delta.text.len();
                    yield Ok(ReplyEvent::ReasoningDelta(delta));
                }
                Ok(ChatEvent::ToolCallDelta(delta)) => {
                    output_bytes += delta.arguments.len();
                    yield Ok(ReplyEvent::ToolCallDelta(delta));
                }
                Ok(ChatEvent::Usage(u)) => usage = Some(u),
                Ok(ChatEvent::Finish { reason, id, provider_model }) => {
                    let usage = usage.unwrap_or(Usage {
                        output_tokens: estimate_tokens(output_bytes),
                        ..estimate
                    });
                    yield Ok(ReplyEvent::Usage(usage));
                    let bill = biller.bill(&usage, &provider_model).await;
                    yield Ok(ReplyEvent::Finish(Box::new(Finish {
                        reason,
                        id,
                        route,
                        provider,
                        provider_model,
                        bill,
                    })));
                    return;
                }
                Err(err) => {
                    endpoint.report(&model, Outcome::of_error(&err));
                    yield Err(Error::from(err));
                    return;
                }
            }
        }
        endpoint.report(&model, Outcome::Failure);
        let cut = ProviderError::new(provider, ProviderErrorKind::StreamCut, "the stream ended before its finish event");
        yield Err(Error::from(cut));
    })
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use futures::stream;
    use tonic::Code;

    use super::*;
    use crate::chat::{self, FinishReason};

    fn served(events: Vec<Result<ChatEvent, ProviderError>>) -> Served<Primed> {
        let provider = Arc::new(crate::provider::EchoProvider::new("p", Duration::ZERO));
        let policy = Arc::new(crate::config::HealthPolicy::default());
        Served {
            value: Primed { head: Vec::new(), rest: Box::pin(stream::iter(events)) },
            provider: "p".into(),
            model: "m".into(),
            endpoint: Arc::new(crate::router::Endpoint::new("e", 1, provider, policy)),
            attempts: 1,
        }
    }

    /// An anonymous call's biller, with no prices: its bill is empty.
    fn biller() -> Biller {
        let admission = crate::call::Admission::new(&crate::config::Limits::default(), None, None);
        Biller::new(Arc::default(), admission, None, "p".into(), "m".into())
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    fn request() -> ChatRequest {
        ChatRequest {
            messages: vec![chat::Message::text(chat::Role::User, "12345678")],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_stream_cut_before_finish_ends_with_unavailable() {
        let upstream = served(vec![Ok(ChatEvent::ContentDelta("par".into()))]);
        let out: Vec<_> =
            relay(upstream, &request(), "r".into(), far(), CancellationToken::new(), biller())
                .collect()
                .await;
        assert_eq!(out.len(), 2);
        assert!(out[0].is_ok());
        let error = out[1].as_ref().unwrap_err();
        assert_eq!(error.code(), Code::Unavailable);
        assert!(error.to_string().contains("before its finish event"));
    }

    #[tokio::test]
    async fn missing_usage_is_estimated_and_comes_before_finish() {
        let upstream = served(vec![
            Ok(ChatEvent::ContentDelta("abcd".into())),
            Ok(ChatEvent::Finish {
                reason: FinishReason::Stop,
                id: "x".into(),
                provider_model: "m".into(),
            }),
        ]);
        let out: Vec<_> =
            relay(upstream, &request(), "r".into(), far(), CancellationToken::new(), biller())
                .map(Result::unwrap)
                .collect()
                .await;
        match &out[1] {
            ReplyEvent::Usage(u) => {
                assert!(u.estimated);
                assert_eq!((u.input_tokens, u.output_tokens), (2, 1));
            }
            other => panic!("expected usage, got {other:?}"),
        }
        assert!(matches!(&out[2], ReplyEvent::Finish(f) if f.route == "r" && f.provider == "p"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_past_its_deadline_ends_with_deadline_exceeded() {
        let mut upstream = served(Vec::new());
        upstream.value.rest = Box::pin(stream::pending());
        upstream.value.head = vec![ChatEvent::ContentDelta("first".into())];
        let deadline = Instant::now() + Duration::from_secs(2);
        let out: Vec<_> =
            relay(upstream, &request(), "r".into(), deadline, CancellationToken::new(), biller())
                .collect()
                .await;
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].as_ref().unwrap_err().code(), Code::DeadlineExceeded);
    }
}
