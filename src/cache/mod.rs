//! The exact-match response cache: a complete answer kept under the hash of the request that
//! produced it ([`key`]), for a TTL, in memory ([`memory`]) or in the Redis server shared by
//! the replicas ([`crate::redis_store`]).
//!
//! Where it sits in the request flow: the chat handler validates a call and resolves its
//! route, then asks [`CallCache::new`] what the cache may do for it. That depends on the
//! route (`cache.enabled`, `routes[i].cache`) and on the caller's [`HEADER`] metadata
//! ([`CacheMode`]): `default` reads through, `bypass` neither reads nor writes, `refresh`
//! skips the read and writes the fresh answer. A hit answers a `Chat` call with the stored
//! response, and a `StreamChat` call with a replay of the stored events (the same deltas,
//! then usage, then finish). A miss goes upstream; a unary answer is stored before it is
//! returned, a stream is stored once it ended with its finish event, never when it failed
//! or was cut off.
//!
//! The cache never fails a call: a Redis error counts in `ai_service_cache_errors_total`,
//! logs a rate-limited warning, and the call goes on as a miss.

pub mod key;
pub mod memory;

use std::{collections::HashMap, sync::Arc, time::Duration};

use bytes::Bytes;
use futures::StreamExt;
use prost::Message as _;

pub use key::CacheKey;
pub use memory::MemoryStore;

use crate::{
    chat::ChatRequest,
    config::{Backend, Config, RouteCache},
    error::Error,
    metrics::{Recorder, rpc::RpcRecord},
    proto::v1 as pb,
    redis_store::RedisStore,
    router::Route,
    service::EventStream,
};

/// The request metadata that chooses a call's [`CacheMode`].
pub const HEADER: &str = "x-ai-cache";

/// What the cache may do for one call, chosen by the caller's [`HEADER`] metadata.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CacheMode {
    /// Read through: answer from the cache when it can, store the answer when it cannot.
    #[default]
    Default,
    /// Neither read nor write.
    Bypass,
    /// Skip the read; store the fresh answer.
    Refresh,
}

impl CacheMode {
    /// The mode the caller asked for; an unknown value is INVALID_ARGUMENT naming the header.
    pub fn from_metadata(metadata: &tonic::metadata::MetadataMap) -> Result<CacheMode, Error> {
        let Some(value) = metadata.get(HEADER) else { return Ok(CacheMode::Default) };
        match value.to_str().map(str::trim) {
            Ok("default") => Ok(CacheMode::Default),
            Ok("bypass") => Ok(CacheMode::Bypass),
            Ok("refresh") => Ok(CacheMode::Refresh),
            _ => Err(Error::invalid(
                HEADER,
                format!("unknown value {value:?}; use default, bypass or refresh"),
            )),
        }
    }
}

/// A stored answer: the complete response and, when it was streamed, the delta events in the
/// order they were relayed, so a replay has the same shape as the original stream. Stored as
/// protobuf bytes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CachedAnswer {
    /// The answer as `Chat` returns it.
    #[prost(message, optional, tag = "1")]
    pub response: Option<pb::ChatResponse>,
    /// Content and tool-call delta events, when the answer was streamed.
    #[prost(message, repeated, tag = "2")]
    pub deltas: Vec<pb::StreamChatResponse>,
}

impl CachedAnswer {
    /// The response a `Chat` hit returns.
    pub fn into_response(self) -> pb::ChatResponse {
        self.response.unwrap_or_default()
    }

    /// The events a `StreamChat` hit replays: the stored deltas (or, for an answer stored by
    /// `Chat`, its text as one delta and each tool call as one delta), then usage, then finish.
    pub fn replay(self) -> Vec<pb::StreamChatResponse> {
        use pb::stream_chat_response::Event;
        let wrap = |event| pb::StreamChatResponse { event: Some(event) };
        let response = self.response.unwrap_or_default();
        let message = response.message.unwrap_or_default();
        let mut events = self.deltas;
        if events.is_empty() {
            let text: String = message
                .content
                .iter()
                .filter_map(|p| match &p.part {
                    Some(pb::content_part::Part::Text(t)) => Some(t.as_str()),
                    _ => None,
                })
                .collect();
            if !text.is_empty() {
                events.push(wrap(Event::ContentDelta(pb::ContentDelta { text })));
            }
            for (index, call) in message.tool_calls.into_iter().enumerate() {
                events.push(wrap(Event::ToolCallDelta(pb::ToolCallDelta {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    id: call.id,
                    name: call.name,
                    arguments_delta: call.arguments_json,
                })));
            }
        }
        events.push(wrap(Event::Usage(response.usage.unwrap_or_default())));
        events.push(wrap(Event::Finish(pb::Finish {
            reason: response.finish_reason,
            id: response.id,
            model: response.model,
            provider: response.provider,
            provider_model: response.provider_model,
        })));
        events
    }
}

/// Assembles a [`CachedAnswer`] from the events of a relayed stream.
#[derive(Debug, Default)]
struct StreamAssembly {
    deltas: Vec<pb::StreamChatResponse>,
    text: String,
    /// Tool calls by index: id, name, arguments.
    calls: std::collections::BTreeMap<u32, pb::ToolCall>,
    usage: Option<pb::Usage>,
    finish: Option<pb::Finish>,
}

impl StreamAssembly {
    fn observe(&mut self, event: &pb::StreamChatResponse) {
        use pb::stream_chat_response::Event;
        match &event.event {
            Some(Event::ContentDelta(d)) => {
                self.text.push_str(&d.text);
                self.deltas.push(event.clone());
            }
            Some(Event::ToolCallDelta(d)) => {
                let call = self.calls.entry(d.index).or_default();
                if !d.id.is_empty() {
                    call.id.clone_from(&d.id);
                }
                if !d.name.is_empty() {
                    call.name.clone_from(&d.name);
                }
                call.arguments_json.push_str(&d.arguments_delta);
                self.deltas.push(event.clone());
            }
            Some(Event::Usage(u)) => self.usage = Some(*u),
            Some(Event::Finish(f)) => self.finish = Some(f.clone()),
            None => {}
        }
    }

    /// The answer, when the stream reached its finish event.
    fn finish(self) -> Option<CachedAnswer> {
        let finish = self.finish?;
        let content = if self.text.is_empty() {
            Vec::new()
        } else {
            vec![pb::ContentPart { part: Some(pb::content_part::Part::Text(self.text)) }]
        };
        let message = pb::Message {
            role: pb::Role::Assistant as i32,
            content,
            tool_calls: self.calls.into_values().collect(),
            ..Default::default()
        };
        Some(CachedAnswer {
            response: Some(pb::ChatResponse {
                id: finish.id,
                model: finish.model,
                provider: finish.provider,
                provider_model: finish.provider_model,
                message: Some(message),
                finish_reason: finish.reason,
                usage: self.usage,
            }),
            deltas: self.deltas,
        })
    }
}

/// Where answers are kept.
#[derive(Debug)]
enum Store {
    Memory(MemoryStore),
    Redis(RedisStore),
}

/// The response cache of a gateway; shared by every call.
#[derive(Debug)]
pub struct ResponseCache {
    store: Store,
    /// Configured routes by name; passthrough routes take `default`.
    routes: HashMap<String, RouteCache>,
    default: RouteCache,
    metrics: Recorder,
}

impl ResponseCache {
    /// The cache `config` describes, or `None` when no route caches. `redis` is the shared
    /// connection, required for the Redis backend (without it, the cache is off).
    pub fn from_config(
        config: &Config,
        redis: Option<&RedisStore>,
        metrics: Recorder,
    ) -> Option<Arc<ResponseCache>> {
        let cache = &config.cache;
        let any_route = cache.enabled || config.routes.iter().any(|r| r.cache.enabled);
        if !any_route {
            return None;
        }
        let store = match (cache.backend, redis) {
            (Backend::Memory, _) => {
                Store::Memory(MemoryStore::new(cache.max_entries, cache.max_bytes))
            }
            (Backend::Redis, Some(redis)) => Store::Redis(redis.clone()),
            (Backend::Redis, None) => {
                tracing::error!(
                    "cache.backend is redis but no Redis connection could be made; the cache is off"
                );
                return None;
            }
        };
        Some(Arc::new(ResponseCache {
            store,
            routes: config.routes.iter().map(|r| (r.name.clone(), r.cache)).collect(),
            default: RouteCache { enabled: cache.enabled, ttl: cache.ttl },
            metrics,
        }))
    }

    /// The in-memory store, when that is the backend (for tests and introspection).
    pub fn memory(&self) -> Option<&MemoryStore> {
        match &self.store {
            Store::Memory(m) => Some(m),
            Store::Redis(_) => None,
        }
    }

    fn policy(&self, route: &Route) -> RouteCache {
        if route.configured {
            self.routes.get(&route.name).copied().unwrap_or(self.default)
        } else {
            self.default
        }
    }

    /// The answer stored under `key`; errors and unreadable entries count as misses.
    async fn get(&self, key: &CacheKey) -> Option<CachedAnswer> {
        let bytes = match &self.store {
            Store::Memory(m) => m.get(key)?,
            Store::Redis(redis) => {
                let command = redis::Cmd::get(redis.key(&format!("cache:{}", key.hex())));
                match redis.query::<Option<Vec<u8>>>(&command).await {
                    Ok(value) => Bytes::from(value?),
                    Err(e) => {
                        self.metrics.cache_error("get");
                        redis.warn("response cache read failed", &e);
                        return None;
                    }
                }
            }
        };
        match CachedAnswer::decode(bytes) {
            Ok(answer) => Some(answer),
            Err(e) => {
                self.metrics.cache_error("get");
                tracing::warn!(error = %e, "unreadable cache entry; treating it as a miss");
                None
            }
        }
    }

    async fn put(&self, key: CacheKey, answer: &CachedAnswer, ttl: Duration) {
        let bytes = answer.encode_to_vec();
        match &self.store {
            Store::Memory(m) => {
                let evicted = m.put(key, Bytes::from(bytes), ttl);
                if evicted > 0 {
                    self.metrics.cache_evictions(evicted);
                }
            }
            Store::Redis(redis) => {
                let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                let mut command = redis::cmd("SET");
                command
                    .arg(redis.key(&format!("cache:{}", key.hex())))
                    .arg(bytes)
                    .arg("PX")
                    .arg(ttl_ms);
                if let Err(e) = redis.query::<()>(&command).await {
                    self.metrics.cache_error("set");
                    redis.warn("response cache write failed", &e);
                }
            }
        }
    }
}

/// What the cache does for one call: built by the handler after routing, consulted before
/// the upstream call, given the answer after it. A no-op when the route does not cache or the
/// caller bypassed it.
#[derive(Debug)]
pub struct CallCache {
    plan: Option<Plan>,
}

#[derive(Debug)]
struct Plan {
    cache: Arc<ResponseCache>,
    key: CacheKey,
    ttl: Duration,
    read: bool,
}

impl CallCache {
    /// The plan for `request` on `route` under `mode`.
    pub fn new(
        cache: Option<&Arc<ResponseCache>>,
        route: &Route,
        request: &ChatRequest,
        mode: CacheMode,
    ) -> CallCache {
        let plan = cache.and_then(|cache| {
            let policy = cache.policy(route);
            if !policy.enabled || mode == CacheMode::Bypass {
                return None;
            }
            Some(Plan {
                cache: cache.clone(),
                key: CacheKey::of(&route.name, request),
                ttl: policy.ttl,
                read: mode == CacheMode::Default,
            })
        });
        CallCache { plan }
    }

    /// The stored answer, when the call may read the cache and it holds one. Records the hit
    /// or miss on `rpc`.
    pub async fn lookup(&self, rpc: &mut RpcRecord) -> Option<CachedAnswer> {
        let plan = self.plan.as_ref().filter(|p| p.read)?;
        let found = plan.cache.get(&plan.key).await;
        rpc.cache_lookup(found.is_some());
        found
    }

    /// Stores a `Chat` answer.
    pub async fn store(&self, response: &pb::ChatResponse) {
        if let Some(plan) = &self.plan {
            let answer = CachedAnswer { response: Some(response.clone()), deltas: Vec::new() };
            plan.cache.put(plan.key, &answer, plan.ttl).await;
        }
    }

    /// A cached answer as a `StreamChat` stream.
    pub fn replay(answer: CachedAnswer) -> EventStream {
        Box::pin(futures::stream::iter(answer.replay().into_iter().map(Ok)))
    }

    /// Relays `stream` unchanged and stores its answer once it ended cleanly after its finish
    /// event; a stream that fails or is dropped early stores nothing.
    pub fn record(self, mut stream: EventStream) -> EventStream {
        let Some(plan) = self.plan else { return stream };
        Box::pin(async_stream::stream! {
            let mut assembly = StreamAssembly::default();
            while let Some(item) = stream.next().await {
                match &item {
                    Ok(event) => assembly.observe(event),
                    Err(_) => {
                        yield item;
                        return;
                    }
                }
                yield item;
            }
            if let Some(answer) = assembly.finish() {
                plan.cache.put(plan.key, &answer, plan.ttl).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_chooses_the_mode() {
        let mut md = tonic::metadata::MetadataMap::new();
        assert_eq!(CacheMode::from_metadata(&md).unwrap(), CacheMode::Default);
        for (value, mode) in [
            ("default", CacheMode::Default),
            ("bypass", CacheMode::Bypass),
            ("refresh", CacheMode::Refresh),
        ] {
            md.insert(HEADER, value.parse().unwrap());
            assert_eq!(CacheMode::from_metadata(&md).unwrap(), mode);
        }
        md.insert(HEADER, "sometimes".parse().unwrap());
        let status = tonic::Status::from(CacheMode::from_metadata(&md).unwrap_err());
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains(HEADER), "{}", status.message());
    }

    #[test]
    fn a_unary_answer_replays_as_a_stream() {
        use pb::stream_chat_response::Event;
        let answer = CachedAnswer {
            response: Some(pb::ChatResponse {
                id: "id".into(),
                model: "r".into(),
                provider: "p".into(),
                provider_model: "m".into(),
                message: Some(pb::Message {
                    content: vec![pb::ContentPart {
                        part: Some(pb::content_part::Part::Text("hi".into())),
                    }],
                    tool_calls: vec![pb::ToolCall {
                        id: "c".into(),
                        name: "t".into(),
                        arguments_json: "{}".into(),
                    }],
                    ..Default::default()
                }),
                finish_reason: pb::FinishReason::ToolCalls as i32,
                usage: Some(pb::Usage {
                    input_tokens: 1,
                    output_tokens: 2,
                    total_tokens: 3,
                    ..Default::default()
                }),
            }),
            deltas: Vec::new(),
        };
        let events: Vec<_> = answer.replay().into_iter().filter_map(|e| e.event).collect();
        assert!(matches!(&events[0], Event::ContentDelta(d) if d.text == "hi"));
        assert!(
            matches!(&events[1], Event::ToolCallDelta(d) if d.id == "c" && d.arguments_delta == "{}")
        );
        assert!(matches!(&events[2], Event::Usage(u) if u.total_tokens == 3));
        assert!(matches!(&events[3], Event::Finish(f) if f.id == "id" && f.provider == "p"));
    }
}
