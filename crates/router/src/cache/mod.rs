//! Where the semantic cache keeps answers: one trait, one file per backend.
//!
//! An entry is found in two ways. Its **exact** key hashes the question (the last
//! user turn, whitespace collapsed) within its **partition**: the scope's owner (one
//! caller, one tenant, or everyone), the route and model, and everything else the
//! answer depends on (earlier turns, system prompt, sampling parameters, tools). Its
//! **vector** (the question's embedding) is matched by cosine similarity, only among
//! entries of the same partition: a hit for one tenant is never served to another,
//! and a question asked after a different conversation is a different question.

mod memory;
mod postgres;

pub use memory::MemoryStore;
pub use postgres::{PostgresConfig, PostgresStore};

use std::sync::Arc;
use std::time::Duration;
use switchyard_wire::Usage;

/// A question as the cache keys it: its words, whitespace collapsed to one space.
pub fn normalized(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// An answer kept in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedAnswer {
    /// The assistant's text.
    pub text: String,
    /// The usage the answer cost when it was made.
    pub usage: Option<Usage>,
}

/// How a request is looked up and stored.
#[derive(Debug, Clone, Copy)]
pub struct Key<'a> {
    /// The scope's owner, the route, the model and the conversation but its last user
    /// turn, hashed.
    pub partition: u64,
    /// The question (the last user turn, normalized).
    pub question: &'a str,
    /// The question's embedding, when the request has one.
    pub vector: Option<&'a [f32]>,
}

/// A cached answer found for a request.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The answer.
    pub answer: Arc<CachedAnswer>,
    /// Cosine similarity of the questions (1 for an exact hit).
    pub similarity: f32,
    /// Found by its exact key.
    pub exact: bool,
    /// The entry, for [`CacheStore::remove`] (never reused for another entry).
    pub id: u64,
}

/// A cache backend.
pub trait CacheStore: Send + Sync + std::fmt::Debug {
    /// The answer stored for this question in this partition, or else for the most
    /// similar question at or above `threshold` (when `key` has a vector and
    /// `threshold` is some). Expired entries are never returned.
    fn lookup(&self, key: &Key<'_>, threshold: Option<f32>) -> Option<Hit>;

    /// Stores an answer for `ttl`, evicting the least recently used entries to stay
    /// within the store's bounds. An answer too large for the store is not kept.
    fn insert(&self, key: &Key<'_>, answer: CachedAnswer, ttl: Duration);

    /// Drops entry `id` (a [`Hit::id`]), if it is still held.
    fn remove(&self, id: u64);

    /// Entries held (expired ones not yet dropped included).
    fn len(&self) -> usize;

    /// Whether the store holds nothing.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
