//! The in-memory cache backend: one replica's answers, bounded by entries and bytes.
//!
//! Eviction is least-recently-used: a read refreshes an entry's place. When an insert takes
//! the cache past either bound, the least recently used entries go until it fits (counted in
//! `ai_service_cache_evictions_total`); expired entries are dropped when read. An answer
//! larger than the whole byte bound is not kept. Times are tokio's, so tests can pause them.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Mutex, PoisonError},
    time::Duration,
};

use bytes::Bytes;
use tokio::time::Instant;

use super::key::CacheKey;

/// Per-entry bookkeeping counted against `max_bytes` besides the value itself.
const ENTRY_OVERHEAD: u64 = 96;

#[derive(Debug)]
struct Slot {
    value: Bytes,
    expires: Instant,
    used: u64,
}

#[derive(Debug, Default)]
struct Lru {
    slots: HashMap<CacheKey, Slot>,
    /// Last use → key, oldest first.
    order: BTreeMap<u64, CacheKey>,
    clock: u64,
    bytes: u64,
}

impl Lru {
    fn remove(&mut self, key: &CacheKey) {
        if let Some(slot) = self.slots.remove(key) {
            self.order.remove(&slot.used);
            self.bytes = self.bytes.saturating_sub(cost(&slot.value));
        }
    }
}

fn cost(value: &Bytes) -> u64 {
    u64::try_from(value.len()).unwrap_or(u64::MAX).saturating_add(ENTRY_OVERHEAD)
}

/// The in-memory backend.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Lru>,
    max_entries: usize,
    max_bytes: u64,
}

impl MemoryStore {
    /// An empty store holding at most `max_entries` answers and `max_bytes` bytes.
    pub fn new(max_entries: usize, max_bytes: u64) -> Self {
        MemoryStore { inner: Mutex::new(Lru::default()), max_entries, max_bytes }
    }

    /// The live value under `key`, refreshing its place in the eviction order.
    pub fn get(&self, key: &CacheKey) -> Option<Bytes> {
        let now = Instant::now();
        let mut lru = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let lru = &mut *lru;
        let expired = lru.slots.get(key)?.expires <= now;
        if expired {
            lru.remove(key);
            return None;
        }
        lru.clock += 1;
        let clock = lru.clock;
        let slot = lru.slots.get_mut(key)?;
        lru.order.remove(&slot.used);
        slot.used = clock;
        lru.order.insert(clock, *key);
        Some(slot.value.clone())
    }

    /// Stores `value` under `key` for `ttl`; returns how many other entries were evicted.
    pub fn put(&self, key: CacheKey, value: Bytes, ttl: Duration) -> u64 {
        let size = cost(&value);
        if size > self.max_bytes {
            return 0;
        }
        let mut lru = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        lru.remove(&key);
        let mut evicted = 0;
        while lru.slots.len() >= self.max_entries || lru.bytes.saturating_add(size) > self.max_bytes
        {
            let Some((_, oldest)) = lru.order.pop_first() else { break };
            lru.remove(&oldest);
            evicted += 1;
        }
        lru.clock += 1;
        let used = lru.clock;
        lru.order.insert(used, key);
        lru.bytes = lru.bytes.saturating_add(size);
        lru.slots.insert(key, Slot { value, expires: Instant::now() + ttl, used });
        evicted
    }

    /// Entries held, expired ones not yet dropped included.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).slots.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> CacheKey {
        CacheKey([n; 32])
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_their_ttl() {
        let store = MemoryStore::new(10, 1 << 20);
        store.put(key(1), Bytes::from_static(b"a"), Duration::from_secs(60));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(store.get(&key(1)).as_deref(), Some(&b"a"[..]));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(store.get(&key(1)), None);
        assert!(store.is_empty(), "an expired entry is dropped when read");
    }

    #[tokio::test]
    async fn the_least_recently_used_entry_goes_first() {
        let store = MemoryStore::new(2, 1 << 20);
        let ttl = Duration::from_secs(60);
        store.put(key(1), Bytes::from_static(b"1"), ttl);
        store.put(key(2), Bytes::from_static(b"2"), ttl);
        assert!(store.get(&key(1)).is_some()); // 2 is now the least recently used
        assert_eq!(store.put(key(3), Bytes::from_static(b"3"), ttl), 1);
        assert!(store.get(&key(2)).is_none());
        assert!(store.get(&key(1)).is_some() && store.get(&key(3)).is_some());
    }

    #[tokio::test]
    async fn the_byte_bound_holds() {
        let value = Bytes::from(vec![0u8; 1000]);
        let store = MemoryStore::new(100, 3 * (1000 + ENTRY_OVERHEAD));
        let ttl = Duration::from_secs(60);
        let evicted: u64 = (0..5).map(|n| store.put(key(n), value.clone(), ttl)).sum();
        assert_eq!((store.len(), evicted), (3, 2));
        assert!(store.get(&key(0)).is_none() && store.get(&key(4)).is_some());
        let huge = Bytes::from(vec![0u8; 10_000]);
        assert_eq!(store.put(key(9), huge, ttl), 0, "too big to keep, and evicts nothing");
        assert!(store.get(&key(9)).is_none());
        assert_eq!(store.len(), 3);
    }

    #[tokio::test]
    async fn replacing_an_entry_does_not_count_twice() {
        let store = MemoryStore::new(1, 1 << 20);
        let ttl = Duration::from_secs(60);
        store.put(key(1), Bytes::from_static(b"old"), ttl);
        assert_eq!(store.put(key(1), Bytes::from_static(b"new"), ttl), 0);
        assert_eq!(store.get(&key(1)).as_deref(), Some(&b"new"[..]));
    }
}
