//! The exact-match response cache: a complete answer kept under the hash of the request that
//! produced it ([`key`]), for a TTL, in memory ([`memory`]) or in the Redis server shared by
//! the replicas ([`crate::redis_store`]).
//!
//! Where it sits in the request flow: the call pipeline ([`crate::call`]) admits a call and
//! resolves its route, then asks [`CallCache::new`] what the cache may do for it. That depends
//! on the route (`cache.enabled`, `routes[i].cache`) and on the caller's [`HEADER`] header
//! ([`CacheMode`]): `default` reads through, `bypass` neither reads nor writes, `refresh`
//! skips the read and writes the fresh answer. A hit answers a unary call with the stored
//! answer, and a stream with a replay of the stored events (the same deltas, then usage, then
//! finish), whatever the front door. A miss goes upstream; a unary answer is stored before it
//! is returned, a stream is stored once it ended with its finish event, never when it failed
//! or was cut off. Entries are the domain answer in a compact protobuf encoding of their own.
//!
//! The cache never fails a call: a Redis error counts in `ai_service_cache_errors_total`,
//! logs a rate-limited warning, and the call goes on as a miss.

pub mod key;
pub mod memory;

use std::{collections::HashMap, sync::Arc, time::Duration};

use bytes::Bytes;
use futures::{Stream, StreamExt};

pub use key::CacheKey;
pub use memory::MemoryStore;

use crate::{
    chat::{
        Answer, Bill, ChatRequest, ContentPart, Finish, FinishReason, Message, Reasoning,
        ReasoningDelta, ReplyEvent, Role, ToolCall, ToolCallDelta, Usage,
    },
    config::{Backend, Config, RouteCache},
    embed::{EmbedRequest, Embedded},
    error::Error,
    metrics::Recorder,
    redis_store::RedisStore,
    router::Route,
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
    pub fn from_headers(headers: &http::HeaderMap) -> Result<CacheMode, Error> {
        static NAME: http::HeaderName = http::HeaderName::from_static(HEADER);
        let Some(value) = headers.get(&NAME) else { return Ok(CacheMode::Default) };
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

/// A stored answer: the complete answer and, when it was streamed, the delta events in the
/// order they were relayed, so a replay has the same shape as the original stream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CachedAnswer {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    route: String,
    #[prost(string, tag = "3")]
    provider: String,
    #[prost(string, tag = "4")]
    provider_model: String,
    /// The message's text.
    #[prost(string, tag = "5")]
    text: String,
    #[prost(message, repeated, tag = "6")]
    tool_calls: Vec<StoredToolCall>,
    /// [`FinishReason`] as [`reason_code`] numbers it.
    #[prost(int32, tag = "7")]
    finish_reason: i32,
    #[prost(message, optional, tag = "8")]
    usage: Option<StoredUsage>,
    /// Content and tool-call delta events, when the answer was streamed.
    #[prost(message, repeated, tag = "9")]
    deltas: Vec<StoredDelta>,
    /// The message's reasoning parts, which come before its text.
    #[prost(message, repeated, tag = "10")]
    reasoning: Vec<StoredReasoning>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StoredReasoning {
    #[prost(string, tag = "1")]
    text: String,
    #[prost(string, optional, tag = "2")]
    signature: Option<String>,
    #[prost(string, optional, tag = "3")]
    redacted_data: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StoredToolCall {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(string, tag = "3")]
    arguments: String,
    #[prost(string, optional, tag = "4")]
    signature: Option<String>,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
struct StoredUsage {
    #[prost(uint32, tag = "1")]
    input_tokens: u32,
    #[prost(uint32, tag = "2")]
    output_tokens: u32,
    #[prost(uint32, tag = "3")]
    cached_input_tokens: u32,
    #[prost(bool, tag = "4")]
    estimated: bool,
    #[prost(uint32, tag = "5")]
    cache_write_input_tokens: u32,
    #[prost(uint32, tag = "6")]
    reasoning_tokens: u32,
}

/// A content delta (no `tool_index`, not `reasoning`), a reasoning delta, or a tool-call
/// delta.
#[derive(Clone, PartialEq, prost::Message)]
struct StoredDelta {
    #[prost(uint32, optional, tag = "1")]
    tool_index: Option<u32>,
    /// The text, the reasoning text, or the piece of the tool call's arguments.
    #[prost(string, tag = "2")]
    text: String,
    #[prost(string, optional, tag = "3")]
    id: Option<String>,
    #[prost(string, optional, tag = "4")]
    name: Option<String>,
    #[prost(bool, tag = "5")]
    reasoning: bool,
    /// A reasoning delta's or a tool-call delta's signature.
    #[prost(string, optional, tag = "6")]
    signature: Option<String>,
    #[prost(string, optional, tag = "7")]
    redacted_data: Option<String>,
}

impl StoredDelta {
    fn event(&self) -> ReplyEvent {
        match self.tool_index {
            Some(index) => ReplyEvent::ToolCallDelta(ToolCallDelta {
                index,
                id: self.id.clone(),
                name: self.name.clone(),
                arguments: self.text.clone(),
                signature: self.signature.clone(),
            }),
            None if self.reasoning => ReplyEvent::ReasoningDelta(ReasoningDelta {
                text: self.text.clone(),
                signature: self.signature.clone(),
                redacted_data: self.redacted_data.clone(),
            }),
            None => ReplyEvent::ContentDelta(self.text.clone()),
        }
    }
}

fn reason_code(reason: FinishReason) -> i32 {
    match reason {
        FinishReason::Stop => 1,
        FinishReason::Length => 2,
        FinishReason::ToolCalls => 3,
        FinishReason::ContentFilter => 4,
        FinishReason::Other => 5,
    }
}

fn reason_of(code: i32) -> FinishReason {
    match code {
        1 => FinishReason::Stop,
        2 => FinishReason::Length,
        3 => FinishReason::ToolCalls,
        4 => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

impl From<StoredUsage> for Usage {
    fn from(u: StoredUsage) -> Usage {
        Usage {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cached_input_tokens: u.cached_input_tokens,
            cache_write_input_tokens: u.cache_write_input_tokens,
            reasoning_tokens: u.reasoning_tokens,
            estimated: u.estimated,
        }
    }
}

impl From<Usage> for StoredUsage {
    fn from(u: Usage) -> StoredUsage {
        StoredUsage {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cached_input_tokens: u.cached_input_tokens,
            cache_write_input_tokens: u.cache_write_input_tokens,
            reasoning_tokens: u.reasoning_tokens,
            estimated: u.estimated,
        }
    }
}

impl CachedAnswer {
    /// The answer to keep for `answer`, with its stream's deltas when it was streamed.
    fn of(answer: &Answer, deltas: Vec<StoredDelta>) -> CachedAnswer {
        let text: String = answer
            .message
            .content
            .iter()
            .filter_map(|p| match p {
                ContentPart::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        let reasoning = answer
            .message
            .content
            .iter()
            .filter_map(|p| match p {
                ContentPart::Reasoning(r) => Some(StoredReasoning {
                    text: r.text.clone(),
                    signature: r.signature.clone(),
                    redacted_data: r.redacted_data.clone(),
                }),
                _ => None,
            })
            .collect();
        CachedAnswer {
            id: answer.id.clone(),
            route: answer.route.clone(),
            provider: answer.provider.clone(),
            provider_model: answer.provider_model.clone(),
            text,
            tool_calls: answer
                .message
                .tool_calls
                .iter()
                .map(|c| StoredToolCall {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    arguments: c.arguments.clone(),
                    signature: c.signature.clone(),
                })
                .collect(),
            finish_reason: reason_code(answer.finish_reason),
            usage: Some(answer.usage.into()),
            deltas,
            reasoning,
        }
    }

    /// The answer a unary hit returns.
    pub fn into_answer(self) -> Answer {
        let mut message = Message::text(Role::Assistant, self.text);
        if matches!(message.content.first(), Some(ContentPart::Text(t)) if t.is_empty()) {
            message.content.clear();
        }
        let reasoning = self.reasoning.into_iter().map(|r| {
            ContentPart::Reasoning(Reasoning {
                text: r.text,
                signature: r.signature,
                redacted_data: r.redacted_data,
            })
        });
        message.content.splice(0..0, reasoning);
        message.tool_calls = self
            .tool_calls
            .into_iter()
            .map(|c| ToolCall {
                id: c.id,
                name: c.name,
                arguments: c.arguments,
                signature: c.signature,
            })
            .collect();
        Answer {
            id: self.id,
            route: self.route,
            provider: self.provider,
            provider_model: self.provider_model,
            message,
            finish_reason: reason_of(self.finish_reason),
            usage: self.usage.map(Usage::from).unwrap_or_default(),
            bill: Bill::default(),
        }
    }

    /// The events a streamed hit replays: the stored deltas (or, for an answer stored by a
    /// unary call, its text as one delta and each tool call as one delta), then usage, then
    /// finish.
    pub fn replay(self) -> Vec<ReplyEvent> {
        let mut events: Vec<ReplyEvent> = self.deltas.iter().map(StoredDelta::event).collect();
        if events.is_empty() {
            for r in &self.reasoning {
                events.push(ReplyEvent::ReasoningDelta(ReasoningDelta {
                    text: r.text.clone(),
                    signature: r.signature.clone(),
                    redacted_data: r.redacted_data.clone(),
                }));
            }
            if !self.text.is_empty() {
                events.push(ReplyEvent::ContentDelta(self.text.clone()));
            }
            for (index, call) in self.tool_calls.iter().enumerate() {
                events.push(ReplyEvent::ToolCallDelta(ToolCallDelta {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    id: Some(call.id.clone()),
                    name: Some(call.name.clone()),
                    arguments: call.arguments.clone(),
                    signature: call.signature.clone(),
                }));
            }
        }
        events.push(ReplyEvent::Usage(self.usage.map(Usage::from).unwrap_or_default()));
        events.push(ReplyEvent::Finish(Box::new(Finish {
            reason: reason_of(self.finish_reason),
            id: self.id,
            route: self.route,
            provider: self.provider,
            provider_model: self.provider_model,
            bill: Bill::default(),
        })));
        events
    }
}

/// Assembles a [`CachedAnswer`] from the events of a relayed stream.
#[derive(Debug, Default)]
struct StreamAssembly {
    deltas: Vec<StoredDelta>,
    text: String,
    reasoning: Vec<Reasoning>,
    /// Tool calls by index.
    calls: std::collections::BTreeMap<u32, ToolCall>,
    usage: Option<Usage>,
    finish: Option<Finish>,
}

impl StreamAssembly {
    fn observe(&mut self, event: &ReplyEvent) {
        match event {
            ReplyEvent::ContentDelta(text) => {
                self.text.push_str(text);
                self.deltas.push(StoredDelta { text: text.clone(), ..Default::default() });
            }
            ReplyEvent::ReasoningDelta(d) => {
                crate::chat::fold_reasoning(&mut self.reasoning, d);
                self.deltas.push(StoredDelta {
                    reasoning: true,
                    text: d.text.clone(),
                    signature: d.signature.clone(),
                    redacted_data: d.redacted_data.clone(),
                    ..Default::default()
                });
            }
            ReplyEvent::ToolCallDelta(d) => {
                let call = self.calls.entry(d.index).or_insert_with(|| ToolCall {
                    id: String::new(),
                    name: String::new(),
                    arguments: String::new(),
                    signature: None,
                });
                if d.signature.is_some() {
                    call.signature.clone_from(&d.signature);
                }
                if let Some(id) = &d.id {
                    call.id.clone_from(id);
                }
                if let Some(name) = &d.name {
                    call.name.clone_from(name);
                }
                call.arguments.push_str(&d.arguments);
                self.deltas.push(StoredDelta {
                    tool_index: Some(d.index),
                    text: d.arguments.clone(),
                    id: d.id.clone(),
                    name: d.name.clone(),
                    signature: d.signature.clone(),
                    ..Default::default()
                });
            }
            ReplyEvent::Usage(u) => self.usage = Some(*u),
            ReplyEvent::Finish(f) => self.finish = Some(Finish::clone(f)),
        }
    }

    /// The answer, when the stream reached its finish event.
    fn finish(self) -> Option<CachedAnswer> {
        let finish = self.finish?;
        let mut message = Message::text(Role::Assistant, self.text);
        if matches!(message.content.first(), Some(ContentPart::Text(t)) if t.is_empty()) {
            message.content.clear();
        }
        message.content.splice(0..0, self.reasoning.into_iter().map(ContentPart::Reasoning));
        message.tool_calls = self.calls.into_values().collect();
        let answer = Answer {
            id: finish.id,
            route: finish.route,
            provider: finish.provider,
            provider_model: finish.provider_model,
            message,
            finish_reason: finish.reason,
            usage: self.usage.unwrap_or_default(),
            bill: Bill::default(),
        };
        Some(CachedAnswer::of(&answer, self.deltas))
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

    /// The entry stored under `key`; errors and unreadable entries count as misses.
    async fn get<T: prost::Message + Default>(&self, key: &CacheKey) -> Option<T> {
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
        match T::decode(bytes) {
            Ok(entry) => Some(entry),
            Err(e) => {
                self.metrics.cache_error("get");
                tracing::warn!(error = %e, "unreadable cache entry; treating it as a miss");
                None
            }
        }
    }

    async fn put(&self, key: CacheKey, entry: &impl prost::Message, ttl: Duration) {
        let bytes = entry.encode_to_vec();
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

/// What the cache does for one call: built by the pipeline after routing, consulted before
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
        CallCache::planned(cache, route, mode, || CacheKey::of(&route.name, request))
    }

    /// The plan for the embeddings `request` on `route` under `mode`: the same route policy
    /// and caller header as a chat call, under a key of its own kind.
    pub fn for_embeddings(
        cache: Option<&Arc<ResponseCache>>,
        route: &Route,
        request: &EmbedRequest,
        mode: CacheMode,
    ) -> CallCache {
        CallCache::planned(cache, route, mode, || CacheKey::of_embeddings(&route.name, request))
    }

    fn planned(
        cache: Option<&Arc<ResponseCache>>,
        route: &Route,
        mode: CacheMode,
        key: impl FnOnce() -> CacheKey,
    ) -> CallCache {
        let plan = cache.and_then(|cache| {
            let policy = cache.policy(route);
            if !policy.enabled || mode == CacheMode::Bypass {
                return None;
            }
            Some(Plan {
                cache: cache.clone(),
                key: key(),
                ttl: policy.ttl,
                read: mode == CacheMode::Default,
            })
        });
        CallCache { plan }
    }

    /// The stored entry, when the call may read the cache and it holds one: a chat
    /// [`CachedAnswer`] or [`CachedEmbeddings`], whichever the call's key was made for.
    pub async fn lookup<T: prost::Message + Default>(&self) -> Lookup<T> {
        let Some(plan) = self.plan.as_ref().filter(|p| p.read) else { return Lookup::Skipped };
        match plan.cache.get(&plan.key).await {
            Some(entry) => Lookup::Hit(entry),
            None => Lookup::Miss,
        }
    }

    /// Stores an `Embed` answer.
    pub async fn store_embeddings(&self, answer: &Embedded) {
        if let Some(plan) = &self.plan {
            plan.cache.put(plan.key, &CachedEmbeddings::of(answer), plan.ttl).await;
        }
    }

    /// Stores a unary answer.
    pub async fn store(&self, answer: &Answer) {
        if let Some(plan) = &self.plan {
            plan.cache.put(plan.key, &CachedAnswer::of(answer, Vec::new()), plan.ttl).await;
        }
    }

    /// Relays `stream` unchanged and stores its answer once it ended cleanly after its finish
    /// event; a stream that fails or is dropped early stores nothing. A call that does not
    /// cache gets its stream back as it was: no layer (nor allocation) that only passes every
    /// event on.
    pub fn record(self, mut stream: Events) -> Events {
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

/// A stream of a call's reply events: what the pipeline hands a front door (its
/// `ReplyStream`), and what a call that caches records.
pub type Events = std::pin::Pin<Box<dyn Stream<Item = Result<ReplyEvent, Error>> + Send>>;

/// What a cache lookup found.
#[derive(Debug)]
pub enum Lookup<T = CachedAnswer> {
    /// The call may not read the cache (off, `bypass`, `refresh`).
    Skipped,
    /// Nothing stored.
    Miss,
    /// The stored entry.
    Hit(T),
}

/// A stored `Embed` answer: the vectors as numbers (the caller's encoding is only how they
/// travel, so it is no part of the key), where they came from, and their usage.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CachedEmbeddings {
    #[prost(string, tag = "1")]
    route: String,
    #[prost(string, tag = "2")]
    provider: String,
    #[prost(string, tag = "3")]
    provider_model: String,
    #[prost(message, repeated, tag = "4")]
    vectors: Vec<StoredVector>,
    #[prost(message, optional, tag = "5")]
    usage: Option<StoredUsage>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StoredVector {
    #[prost(float, repeated, tag = "1")]
    values: Vec<f32>,
}

impl CachedEmbeddings {
    fn of(answer: &Embedded) -> CachedEmbeddings {
        CachedEmbeddings {
            route: answer.route.clone(),
            provider: answer.provider.clone(),
            provider_model: answer.provider_model.clone(),
            vectors: answer.vectors.iter().map(|v| StoredVector { values: v.clone() }).collect(),
            usage: Some(answer.usage.into()),
        }
    }

    /// The answer a hit returns.
    pub fn into_embedded(self) -> Embedded {
        Embedded {
            route: self.route,
            provider: self.provider,
            provider_model: self.provider_model,
            vectors: self.vectors.into_iter().map(|v| v.values).collect(),
            usage: self.usage.map(Usage::from).unwrap_or_default(),
            bill: Bill::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn the_header_chooses_the_mode() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(CacheMode::from_headers(&headers).unwrap(), CacheMode::Default);
        for (value, mode) in [
            ("default", CacheMode::Default),
            ("bypass", CacheMode::Bypass),
            ("refresh", CacheMode::Refresh),
        ] {
            headers.insert(HEADER, value.parse().unwrap());
            assert_eq!(CacheMode::from_headers(&headers).unwrap(), mode);
        }
        headers.insert(HEADER, "sometimes".parse().unwrap());
        let error = CacheMode::from_headers(&headers).unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
        assert!(error.to_string().contains(HEADER), "{error}");
    }

    #[test]
    fn embeddings_round_trip_through_their_encoding() {
        let answer = Embedded {
            route: "r".into(),
            provider: "p".into(),
            provider_model: "m".into(),
            vectors: vec![vec![0.25, -1.5], vec![3.0, 0.0]],
            usage: Usage { input_tokens: 4, estimated: true, ..Default::default() },
            bill: Bill::default(),
        };
        let bytes = CachedEmbeddings::of(&answer).encode_to_vec();
        assert_eq!(CachedEmbeddings::decode(bytes.as_slice()).unwrap().into_embedded(), answer);
    }

    #[test]
    fn a_unary_answer_replays_as_a_stream() {
        let mut message = Message::text(Role::Assistant, "hi");
        message.tool_calls = vec![ToolCall {
            id: "c".into(),
            name: "t".into(),
            arguments: "{}".into(),
            signature: None,
        }];
        let answer = Answer {
            id: "id".into(),
            route: "r".into(),
            provider: "p".into(),
            provider_model: "m".into(),
            message,
            finish_reason: FinishReason::ToolCalls,
            usage: Usage { input_tokens: 1, output_tokens: 2, ..Default::default() },
            bill: Bill::default(),
        };
        let stored =
            CachedAnswer::decode(CachedAnswer::of(&answer, Vec::new()).encode_to_vec().as_slice())
                .unwrap();
        assert_eq!(stored.clone().into_answer(), answer);
        let events = stored.replay();
        assert!(matches!(&events[0], ReplyEvent::ContentDelta(t) if t == "hi"));
        assert!(
            matches!(&events[1], ReplyEvent::ToolCallDelta(d) if d.id.as_deref() == Some("c") && d.arguments == "{}")
        );
        assert!(matches!(&events[2], ReplyEvent::Usage(u) if u.total_tokens() == 3));
        assert!(matches!(&events[3], ReplyEvent::Finish(f) if f.id == "id" && f.provider == "p"));
    }
}
