//! The attempt loop of a [`Route`], whatever the operation: a chat answer, a stream primed
//! up to its first content event, or embeddings. Each runs the same loop ([`Route::run`]):
//! the rules in the [module docs](super) (retries with back-off, failover along the chain,
//! hedging, the deadline) and the signals every attempt leaves (endpoint health, metrics, the
//! call's trail, an attempt span with export on). An operation only says what one attempt
//! does with a target's adapter.

use std::{fmt, future::poll_fn, task::Poll, time::Duration};

use futures::{StreamExt, future::BoxFuture};
use tokio::time::Instant;
use tracing::Instrument;

use super::{Endpoint, Outcome, Route, Served, Target, endpoint};
use crate::{
    call::CallContext,
    chat::{ChatEvent, ChatRequest, ChatResponse},
    embed::{EmbedRequest, Embeddings},
    error::{AttemptFailure, Error},
    provider::{ChatStream, ProviderError, ProviderErrorKind, SharedProvider},
    telemetry::spans::{self, Attempt, Trigger},
};

/// A stream that has produced its first events: the call is committed to it.
pub struct Primed {
    /// The events read so far, the first content event (or finish) last.
    pub head: Vec<ChatEvent>,
    /// The rest of the stream.
    pub rest: ChatStream,
}

impl fmt::Debug for Primed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Primed").field("head", &self.head).finish_non_exhaustive()
    }
}

/// The attempts in flight: one, or a few while hedges race the first. Each wake-up of the
/// call polls them all, and the first to finish is taken out.
///
/// Not a `FuturesUnordered`: after polling every future it holds without one finishing, it
/// wakes its task again at once (its rule against starving other tasks), so a call with one
/// attempt was polled twice each time its upstream woke it, the second time for nothing.
struct InFlight<'a, O> {
    attempts: Vec<BoxFuture<'a, O>>,
}

impl<O> Default for InFlight<'_, O> {
    fn default() -> Self {
        InFlight { attempts: Vec::new() }
    }
}

impl<'a, O> InFlight<'a, O> {
    fn push(&mut self, attempt: BoxFuture<'a, O>) {
        self.attempts.push(attempt);
    }

    fn len(&self) -> usize {
        self.attempts.len()
    }

    fn is_empty(&self) -> bool {
        self.attempts.is_empty()
    }

    /// The next attempt to finish; `None` at once when none is in flight.
    async fn next(&mut self) -> Option<O> {
        poll_fn(|cx| {
            if self.attempts.is_empty() {
                return Poll::Ready(None);
            }
            for i in 0..self.attempts.len() {
                if let Poll::Ready(done) = self.attempts[i].as_mut().poll(cx) {
                    drop(self.attempts.swap_remove(i));
                    return Poll::Ready(Some(done));
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// A launched attempt's result, with what is needed to record it.
struct Finished<T> {
    guard: endpoint::AttemptGuard,
    target: usize,
    result: Result<T, ProviderError>,
    latency: Duration,
}

/// An endpoint claimed for the next attempt.
struct Candidate {
    target: usize,
    endpoint: usize,
    guard: endpoint::AttemptGuard,
}

/// Which endpoints a call may still try, target by target.
struct Plan {
    current: usize,
    tried: Vec<Vec<usize>>,
}

impl Plan {
    fn new(targets: usize) -> Self {
        Plan { current: 0, tried: vec![Vec::new(); targets] }
    }

    /// The next endpoint to try: another one of the current target, then the targets after
    /// it in order. `avoid` skips a target (a hedge goes to a different one). When every
    /// endpoint was tried, they may be tried again.
    fn next(
        &mut self,
        targets: &[Target],
        now: Instant,
        avoid: Option<usize>,
    ) -> Option<Candidate> {
        for round in 0..2 {
            if round == 1 {
                // Every endpoint was tried: start the chain over from its first target.
                self.tried.iter_mut().for_each(Vec::clear);
                if avoid.is_none() {
                    self.current = 0;
                }
            }
            for k in 0..targets.len() {
                let t = (self.current + k) % targets.len();
                if Some(t) == avoid {
                    continue;
                }
                let Target { pool, model, .. } = &targets[t];
                while let Some(i) = pool.pick(now, &self.tried[t], model) {
                    self.tried[t].push(i);
                    if let Some(guard) = pool.endpoints()[i].acquire(now, model) {
                        if avoid.is_none() {
                            self.current = t;
                        }
                        return Some(Candidate { target: t, endpoint: i, guard });
                    }
                }
            }
        }
        None
    }
}

impl Route {
    /// One complete answer, by the attempt rules of this module.
    pub async fn chat(
        &self,
        request: &ChatRequest,
        deadline: Instant,
    ) -> Result<Served<ChatResponse>, Error> {
        self.run(deadline, |target| target_call(target, request)).await
    }

    /// A stream, committed at its first content event.
    pub async fn stream(
        &self,
        request: &ChatRequest,
        deadline: Instant,
    ) -> Result<Served<Primed>, Error> {
        self.run(deadline, |target| target_stream(target, request)).await
    }

    /// The embeddings of `request`'s inputs, by the same attempt rules as a chat answer.
    pub async fn embed(
        &self,
        request: &EmbedRequest,
        deadline: Instant,
    ) -> Result<Served<Embeddings>, Error> {
        self.run_operation(spans::EMBEDDINGS, deadline, |target| target_embed(target, request))
            .await
    }

    /// Runs a chat operation (`attempt` on each target tried) by this module's rules.
    async fn run<'a, T, F>(&'a self, deadline: Instant, attempt: F) -> Result<Served<T>, Error>
    where
        T: Send + 'a,
        F: Fn((&'a Target, &'a SharedProvider)) -> BoxFuture<'a, Result<T, ProviderError>>,
    {
        self.run_operation(spans::CHAT, deadline, attempt).await
    }

    /// The attempt loop: `attempt` is what one attempt does with a target's adapter;
    /// `operation` names it in attempt spans (`gen_ai.operation.name`).
    async fn run_operation<'a, T, F>(
        &'a self,
        operation: &'static str,
        deadline: Instant,
        attempt: F,
    ) -> Result<Served<T>, Error>
    where
        T: Send + 'a,
        F: Fn((&'a Target, &'a SharedProvider)) -> BoxFuture<'a, Result<T, ProviderError>>,
    {
        let max_attempts = self.max_retries.saturating_add(1);
        let mut plan = Plan::new(self.targets.len());
        let mut failures: Vec<AttemptFailure> = Vec::new();
        let mut in_flight: InFlight<'a, Finished<T>> = InFlight::default();
        let mut launched = 0u32;
        let mut hedged = false;
        let mut retry_at: Option<Instant> = None;
        let mut last_failed: Option<usize> = None;
        // The `ErrorInfo` reason of the last failure, for the next attempt's span.
        let mut last_reason: &'static str = "";
        let started = Instant::now();

        // The call's trail, so its record names where it went even if it ends mid-attempt.
        let call = CallContext::current();
        let launch = |c: Candidate, number: u32, trigger: Trigger| -> BoxFuture<'a, Finished<T>> {
            let target = &self.targets[c.target];
            let endpoint = &target.pool.endpoints()[c.endpoint];
            if let Some(call) = &call {
                call.attempt_sent(&target.provider, &endpoint.name);
            }
            // With trace export on, the attempt runs in its own span (see telemetry::spans).
            let span = spans::exporting().then(|| {
                spans::attempt_span(&Attempt {
                    operation,
                    provider: &target.provider,
                    system: endpoint.provider.system(),
                    endpoint: &endpoint.name,
                    model: &target.model,
                    number,
                    trigger,
                })
            });
            // The endpoint's adapter is bound to its address and key.
            let call = attempt((target, &endpoint.provider));
            let attempt = async move {
                let begun = Instant::now();
                let result = call.await;
                Finished { guard: c.guard, target: c.target, result, latency: begun.elapsed() }
            };
            match span {
                None => Box::pin(attempt),
                Some(span) => Box::pin(async move {
                    let done = attempt.instrument(span.span().clone()).await;
                    span.end(done.result.as_ref().err());
                    done
                }),
            }
        };

        match plan.next(&self.targets, started, None) {
            Some(candidate) => {
                in_flight.push(launch(candidate, 1, Trigger::First));
                launched += 1;
            }
            None => return Err(self.exhausted(failures, true)),
        }

        loop {
            let hedge_at = match self.hedge_delay {
                Some(delay)
                    if !hedged
                        && in_flight.len() == 1
                        && launched < max_attempts
                        && retry_at.is_none() =>
                {
                    Some(started + delay)
                }
                _ => None,
            };
            // The attempts first (`biased`): a finished one is taken without the timers being
            // polled, and without select!'s random draw; the timers are looked at whenever no
            // attempt has finished.
            tokio::select! {
                biased;
                Some(done) = in_flight.next() => {
                    let target = &self.targets[done.target];
                    match done.result {
                        Ok(value) => {
                            let endpoint = done.guard.endpoint().clone();
                            done.guard.finish(Outcome::Success { latency: done.latency });
                            self.observe(target, &endpoint, "ok");
                            return Ok(Served {
                                value,
                                provider: target.provider.clone(),
                                model: target.model.clone(),
                                endpoint,
                                attempts: launched,
                            });
                        }
                        Err(err) => {
                            let failed_endpoint = done.guard.endpoint().clone();
                            let endpoint = failed_endpoint.name.clone();
                            done.guard.finish(Outcome::of_error(&err));
                            if err.kind == ProviderErrorKind::Unsupported {
                                // Refused by the adapter before anything was sent: no upstream
                                // attempt. It ends the call (it is not retryable).
                                if let Some(call) = &call {
                                    call.attempt_refused_locally(&target.provider);
                                }
                            } else {
                                self.observe(target, &failed_endpoint, err.kind.reason());
                            }
                            last_failed = Some(done.target);
                            last_reason = err.kind.reason();
                            tracing::warn!(
                                route = %self.name, provider = %target.provider, model = %target.model,
                                endpoint = %endpoint, kind = err.kind.reason(), error = %err.message,
                                "attempt failed"
                            );
                            if !err.is_retryable() {
                                return Err(err.into());
                            }
                            failures.push(AttemptFailure {
                                provider: target.provider.clone(),
                                model: target.model.clone(),
                                endpoint,
                                error: err,
                            });
                            if in_flight.is_empty() {
                                if launched >= max_attempts {
                                    return Err(self.exhausted(failures, false));
                                }
                                let at = Instant::now() + self.backoff.delay(launched);
                                if at >= deadline {
                                    return Err(self.exhausted(failures, false));
                                }
                                retry_at = Some(at);
                            }
                        }
                    }
                }
                () = sleep_until_opt(retry_at), if retry_at.is_some() => {
                    retry_at = None;
                    match plan.next(&self.targets, Instant::now(), None) {
                        Some(candidate) => {
                            self.observe_next(last_failed, candidate.target);
                            let trigger = if last_failed == Some(candidate.target) {
                                Trigger::Retry(last_reason)
                            } else {
                                Trigger::Failover(last_reason)
                            };
                            in_flight.push(launch(candidate, launched + 1, trigger));
                            launched += 1;
                        }
                        None => return Err(self.exhausted(failures, true)),
                    }
                }
                () = sleep_until_opt(hedge_at), if hedge_at.is_some() => {
                    hedged = true;
                    if let Some(candidate) = plan.next(&self.targets, Instant::now(), Some(plan.current)) {
                        tracing::info!(route = %self.name, provider = %self.targets[candidate.target].provider, "hedging");
                        self.metrics.hedge(&self.label(), &self.targets[candidate.target].provider);
                        in_flight.push(launch(candidate, launched + 1, Trigger::Hedge));
                        launched += 1;
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    // Dropping `in_flight` cancels every attempt still running.
                    return Err(Error::DeadlineExceeded(format!(
                        "no answer from route {:?} within the deadline after {launched} attempt(s)",
                        self.name
                    )));
                }
            }
        }
    }

    /// Emits an attempt's outcome and the health of the endpoint it ran on.
    fn observe(&self, target: &Target, endpoint: &Endpoint, outcome: &str) {
        let m = &self.metrics;
        m.upstream_attempt(&target.provider, outcome);
        endpoint.report_health(Instant::now(), |available, breaker| {
            m.endpoint_health(&target.provider, &endpoint.name, available);
            m.breaker_state(&target.provider, &endpoint.name, breaker);
        });
    }

    /// Emits a retry (same target as the last failure) or a failover (another target).
    fn observe_next(&self, failed: Option<usize>, next: usize) {
        let route = self.label();
        if let Some(failed) = failed {
            let provider = &self.targets[failed].provider;
            if failed == next {
                self.metrics.retry(&route, provider);
            } else {
                self.metrics.failover(&route, provider);
            }
        }
    }

    fn exhausted(&self, failures: Vec<AttemptFailure>, no_endpoint: bool) -> Error {
        let cooling_for = if no_endpoint { self.cooling_for(Instant::now()) } else { None };
        Error::Exhausted { route: self.name.clone(), attempts: failures, no_endpoint, cooling_for }
    }

    /// When every endpoint of the route is cooling down after a rate limit of its target's
    /// upstream model, the shortest wait.
    fn cooling_for(&self, now: Instant) -> Option<Duration> {
        let waits: Option<Vec<Duration>> = self
            .targets
            .iter()
            .flat_map(|t| t.pool.endpoints().iter().map(|e| e.cooling_for(now, &t.model)))
            .collect();
        waits?.into_iter().min()
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn target_call<'a>(
    (target, provider): (&'a Target, &'a SharedProvider),
    request: &'a ChatRequest,
) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
    Box::pin(provider.chat(&target.model, request))
}

fn target_embed<'a>(
    (target, provider): (&'a Target, &'a SharedProvider),
    request: &'a EmbedRequest,
) -> BoxFuture<'a, Result<Embeddings, ProviderError>> {
    Box::pin(provider.embed(&target.model, request))
}

fn target_stream<'a>(
    (target, provider): (&'a Target, &'a SharedProvider),
    request: &'a ChatRequest,
) -> BoxFuture<'a, Result<Primed, ProviderError>> {
    Box::pin(async move {
        let mut stream = provider.stream(&target.model, request).await?;
        let mut head = Vec::new();
        loop {
            match stream.next().await {
                Some(Ok(event)) => {
                    let commits = matches!(
                        event,
                        ChatEvent::ContentDelta(_)
                            | ChatEvent::ToolCallDelta(_)
                            | ChatEvent::Finish { .. }
                    );
                    head.push(event);
                    if commits {
                        // The attempt's span (with export on) lasts as long as its stream.
                        return Ok(Primed { head, rest: spans::in_attempt_span(stream) });
                    }
                }
                Some(Err(err)) => return Err(err),
                None => {
                    return Err(ProviderError::new(
                        provider.name(),
                        ProviderErrorKind::StreamCut,
                        "the stream ended before its first event",
                    ));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::{
        pin::pin,
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        task::{Context, Wake, Waker},
    };

    use futures::FutureExt;

    use super::*;

    /// A waker counting its wakes.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_pending_attempt_does_not_wake_its_call_again() {
        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut in_flight: InFlight<'_, u32> = InFlight::default();
        in_flight.push(futures::future::pending().boxed());
        for _ in 0..3 {
            assert!(pin!(in_flight.next()).poll(&mut cx).is_pending());
        }
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0, "no wake-up but the upstream's");
        assert_eq!(in_flight.len(), 1);
    }

    #[test]
    fn the_first_to_finish_is_taken_out_and_the_others_stay() {
        let waker = Waker::from(Arc::new(Wakes::default()));
        let mut cx = Context::from_waker(&waker);
        let mut in_flight: InFlight<'_, u32> = InFlight::default();
        assert_eq!(pin!(in_flight.next()).poll(&mut cx), Poll::Ready(None), "none in flight");
        in_flight.push(futures::future::pending().boxed());
        in_flight.push(async { 2 }.boxed());
        in_flight.push(async { 3 }.boxed());
        assert_eq!(pin!(in_flight.next()).poll(&mut cx), Poll::Ready(Some(2)));
        assert_eq!(pin!(in_flight.next()).poll(&mut cx), Poll::Ready(Some(3)));
        assert_eq!(in_flight.len(), 1);
        assert!(!in_flight.is_empty());
        assert!(pin!(in_flight.next()).poll(&mut cx).is_pending());
    }
}
