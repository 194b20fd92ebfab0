//! The hash maps the call path looks things up in on every call — prices, routes, endpoints'
//! cool-downs, rate-limit windows and budgets — hash with foldhash instead of the standard
//! library's SipHash: a few tens of instructions for a short name instead of ~150.
//!
//! `quality` foldhash with a seed drawn per process: callers choose some of the keys (model
//! names, client ids), so the hash stays unpredictable from outside, as SipHash's is.

/// The hasher of [`FastMap`].
pub type FastHasher = foldhash::quality::RandomState;

/// A `HashMap` hashed with [`FastHasher`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastHasher>;
