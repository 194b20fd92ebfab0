//! Rate limits per client: in memory for one replica, in Redis for the fleet (two limiters on
//! one Redis admit N in total, not 2N), `RetryInfo` on refusal, and failing open when Redis is
//! down.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::{sync::Arc, time::Duration};

use crate::common::redis::{RedisServer, metric};
use ai_service::{
    Config, Error,
    limits::{LimitPolicy, RateLimiter},
    metrics::{PrometheusMetrics, Recorder},
    redis_store::RedisStore,
};
use tonic::Code;
use tonic_types::StatusExt;

fn recorder() -> (Recorder, Arc<PrometheusMetrics>) {
    let prometheus = Arc::new(PrometheusMetrics::new());
    (Recorder::new(prometheus.clone()), prometheus)
}

fn redis_limiter(redis: &RedisServer, prefix: &str, metrics: Recorder) -> RateLimiter {
    let yaml = format!(
        "limits: {{backend: redis}}\nredis: {{url: '{}', key_prefix: '{prefix}', command_timeout: 2s}}",
        redis.url()
    );
    let config = Config::from_yaml(&yaml, std::iter::empty()).unwrap();
    RateLimiter::from_config(
        &config,
        Some(&RedisStore::new(config.redis.as_ref().unwrap()).unwrap()),
        metrics,
    )
}

const FIVE_A_MINUTE: LimitPolicy =
    LimitPolicy { requests_per_minute: Some(5), tokens_per_minute: None };

#[tokio::test]
async fn a_memory_limit_refuses_with_retry_info() {
    let (metrics, prometheus) = recorder();
    let limiter = RateLimiter::memory(metrics);
    for _ in 0..5 {
        limiter.check_request("client-a", &FIVE_A_MINUTE).await.unwrap();
    }
    let refusal = limiter.check_request("client-a", &FIVE_A_MINUTE).await.unwrap_err();
    assert!(refusal.after <= Duration::from_secs(60) && refusal.after > Duration::ZERO);
    limiter.check_request("client-b", &FIVE_A_MINUTE).await.unwrap();

    let status = tonic::Status::from(Error::from(refusal));
    assert_eq!(status.code(), Code::ResourceExhausted);
    let details = status.get_error_details();
    assert_eq!(details.error_info().unwrap().reason, "RATE_LIMITED");
    assert_eq!(details.retry_info().unwrap().retry_delay, Some(refusal.after));
    let text = prometheus.render_text();
    assert_eq!(metric(&text, r#"ai_service_rate_limited_total{limit="requests"}"#), 1.0, "{text}");
}

#[tokio::test]
async fn two_limiters_on_one_redis_admit_n_in_total() {
    let redis = RedisServer::start();
    let a = redis_limiter(&redis, "fleet:", recorder().0);
    let b = redis_limiter(&redis, "fleet:", recorder().0);
    let mut admitted = 0;
    for i in 0..20 {
        let limiter = if i % 2 == 0 { &a } else { &b };
        if limiter.check_request("client-a", &FIVE_A_MINUTE).await.is_ok() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 5, "a limit of 5 per minute holds across both replicas");
    let refusal = b.check_request("client-a", &FIVE_A_MINUTE).await.unwrap_err();
    assert_eq!(refusal.limit, "requests");
    assert!(refusal.after > Duration::ZERO && refusal.after <= Duration::from_secs(60));
    a.check_request("client-b", &FIVE_A_MINUTE).await.unwrap();
}

#[tokio::test]
async fn tokens_spent_through_one_limiter_refuse_through_the_other() {
    let redis = RedisServer::start();
    let a = redis_limiter(&redis, "fleet:", recorder().0);
    let b = redis_limiter(&redis, "fleet:", recorder().0);
    let policy = LimitPolicy { requests_per_minute: None, tokens_per_minute: Some(1000) };
    a.check_request("c", &policy).await.unwrap();
    a.add_tokens("c", 600, &policy).await;
    b.check_request("c", &policy).await.unwrap();
    b.add_tokens("c", 600, &policy).await;
    assert_eq!(a.check_request("c", &policy).await.unwrap_err().limit, "tokens");
    assert_eq!(b.check_request("c", &policy).await.unwrap_err().limit, "tokens");
}

#[tokio::test]
async fn a_redis_that_is_down_lets_calls_through_and_counts_errors() {
    let mut redis = RedisServer::start();
    let (metrics, prometheus) = recorder();
    let limiter = redis_limiter(&redis, "down:", metrics);
    limiter.check_request("c", &FIVE_A_MINUTE).await.unwrap();
    redis.kill();
    for _ in 0..10 {
        limiter.check_request("c", &FIVE_A_MINUTE).await.expect("fails open");
    }
    let errors = metric(
        &prometheus.render_text(),
        r#"ai_service_rate_limit_errors_total{operation="check"}"#,
    );
    assert_eq!(errors, 10.0);

    // Back again: counting resumes (a fresh, empty Redis) once the connection is re-made.
    redis.restart();
    let mut refused = false;
    for _ in 0..50 {
        if limiter.check_request("c", &FIVE_A_MINUTE).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the limit applies again once Redis is back");
}
