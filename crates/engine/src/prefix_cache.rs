//! The engine's prefix cache: KV of finished conversations, kept for their next turn.
//!
//! When an answer finishes, the KV of its whole conversation (prompt and answer) stays
//! in the cache under a hash of the turns. A request whose turns, all but the last,
//! hash to a cached entry skips prefilling those tokens. The cache holds a bounded
//! number of tokens; to make room it evicts, in order: entries with no retention hint
//! or an expired one, least recently used first; then retained entries, lowest priority
//! first, then least recently used. A router's retention hint (headers
//! `x-kv-retention-priority` and `x-kv-retention-ttl-ms`, or the body field
//! `kv_retention: {priority, ttl_ms}`) so protects a session's prefix through a pause
//! between turns.

use std::collections::HashMap;
use switchyard_wire::hash::{FNV_OFFSET, fnv1a};

/// A router's request to keep a conversation's KV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Higher is evicted later.
    pub priority: u8,
    /// How long the hint holds, in milliseconds.
    pub ttl_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    tokens: u32,
    last_used_ms: u64,
    retain_until_ms: u64,
    priority: u8,
}

/// The cache.
#[derive(Debug)]
pub struct PrefixCache {
    capacity: u64,
    held: u64,
    entries: HashMap<u64, Entry>,
    /// Prompt tokens looked up.
    pub queried_tokens: u64,
    /// Prompt tokens found cached.
    pub hit_tokens: u64,
}

impl PrefixCache {
    /// A cache holding at most `capacity` tokens (0 turns it off).
    pub fn new(capacity: u64) -> Self {
        PrefixCache {
            capacity,
            held: 0,
            entries: HashMap::new(),
            queried_tokens: 0,
            hit_tokens: 0,
        }
    }

    /// Looks up the prefix of a request of `prompt` tokens; returns the tokens cached.
    pub fn lookup(&mut self, prefix: u64, prompt: u32, now_ms: u64) -> u32 {
        self.queried_tokens += u64::from(prompt);
        let Some(entry) = self.entries.get_mut(&prefix) else {
            return 0;
        };
        entry.last_used_ms = now_ms;
        let hit = entry.tokens.min(prompt);
        self.hit_tokens += u64::from(hit);
        hit
    }

    /// Stores a finished conversation of `tokens` tokens.
    pub fn insert(&mut self, key: u64, tokens: u32, retention: Option<Retention>, now_ms: u64) {
        if u64::from(tokens) > self.capacity {
            return;
        }
        if let Some(old) = self.entries.remove(&key) {
            self.held -= u64::from(old.tokens);
        }
        let (priority, retain_until_ms) =
            retention.map_or((0, 0), |r| (r.priority, now_ms.saturating_add(r.ttl_ms)));
        while self.held + u64::from(tokens) > self.capacity {
            let victim = self
                .entries
                .iter()
                .min_by_key(|(_, e)| {
                    let retained = e.retain_until_ms > now_ms;
                    (
                        retained,
                        if retained { e.priority } else { 0 },
                        e.last_used_ms,
                    )
                })
                .map(|(k, _)| *k);
            let Some(victim) = victim else { break };
            if let Some(e) = self.entries.remove(&victim) {
                self.held -= u64::from(e.tokens);
            }
        }
        self.held += u64::from(tokens);
        self.entries.insert(
            key,
            Entry {
                tokens,
                last_used_ms: now_ms,
                retain_until_ms,
                priority,
            },
        );
    }

    /// Tokens held.
    pub fn held(&self) -> u64 {
        self.held
    }
}

/// Hashes conversation turns (role and text), continuing from `state`.
pub fn hash_turn(state: u64, role: &str, text: &str) -> u64 {
    // Separators keep ("us", "erhi") apart from ("user", "hi").
    let state = fnv1a(role.as_bytes(), state);
    let state = fnv1a(&[0xff], state);
    let state = fnv1a(text.as_bytes(), state);
    fnv1a(&[0xfe], state)
}

/// The starting state of [`hash_turn`].
pub const HASH_START: u64 = FNV_OFFSET;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_the_previous_turn_and_counts_tokens() {
        let mut c = PrefixCache::new(10_000);
        assert_eq!(c.lookup(1, 500, 0), 0);
        c.insert(1, 400, None, 0);
        assert_eq!(c.lookup(1, 500, 1), 400);
        assert_eq!(c.lookup(1, 300, 2), 300, "never more than the prompt");
        assert_eq!((c.queried_tokens, c.hit_tokens), (1300, 700));
    }

    #[test]
    fn evicts_unretained_lru_first_then_lowest_priority() {
        let mut c = PrefixCache::new(1000);
        let keep = Some(Retention {
            priority: 5,
            ttl_ms: 1000,
        });
        c.insert(1, 400, keep, 0);
        c.insert(2, 300, None, 1);
        c.insert(3, 300, None, 2);
        c.lookup(2, 1, 3); // 2 is now more recent than 3
        c.insert(4, 300, None, 4); // evicts 3 (unretained, least recent)
        assert_eq!(c.lookup(3, 10, 5), 0);
        assert_eq!(c.lookup(2, 10, 5), 10);
        assert_eq!(c.lookup(1, 10, 5), 10, "retained");
        // After the hint expires, the entry is as evictable as any.
        c.insert(5, 700, None, 2000);
        assert_eq!(c.lookup(1, 10, 2001), 0);
        assert!(c.held() <= 1000);
        c.insert(6, 5000, None, 2002);
        assert_eq!(
            c.lookup(6, 10, 2003),
            0,
            "larger than the cache: not stored"
        );
    }

    #[test]
    fn turn_hashes_chain() {
        let a = hash_turn(HASH_START, "user", "hi");
        assert_eq!(a, hash_turn(HASH_START, "user", "hi"));
        assert_ne!(a, hash_turn(HASH_START, "user", "hi!"));
        assert_ne!(
            hash_turn(a, "assistant", "x"),
            hash_turn(HASH_START, "assistant", "x")
        );
        assert_ne!(
            hash_turn(HASH_START, "us", "erhi"),
            a,
            "role and text are separated"
        );
    }
}
