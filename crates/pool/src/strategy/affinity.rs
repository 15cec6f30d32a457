//! `session_affinity` and `prefix_affinity`: rendezvous hashing with a load bound.

use super::{EndpointStrategy, LeastOutstanding, PlaceRequest};
use crate::endpoint::Endpoint;
use std::sync::Arc;
use switchyard_wire::hash::mix64;

/// Which key binds requests to endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AffinityKey {
    /// The session identity.
    Session,
    /// The leading messages.
    Prefix,
}

/// Sends requests with the same key to the same endpoint: the candidate with the
/// highest hash of (key, endpoint id), so adding or losing an endpoint moves only the
/// keys that were on it. When that endpoint holds more than `load_factor` times the
/// candidates' mean in-flight requests (plus one), or the request has no key, the
/// least loaded candidate takes it instead.
#[derive(Debug)]
pub struct Affinity {
    key: AffinityKey,
    load_factor: f64,
    fallback: LeastOutstanding,
}

impl Affinity {
    /// An affinity strategy on `key`.
    pub fn new(key: AffinityKey, load_factor: f64) -> Self {
        Affinity {
            key,
            load_factor,
            fallback: LeastOutstanding::default(),
        }
    }
}

impl EndpointStrategy for Affinity {
    fn name(&self) -> &'static str {
        match self.key {
            AffinityKey::Session => "session_affinity",
            AffinityKey::Prefix => "prefix_affinity",
        }
    }

    fn pick(&self, candidates: &[&Arc<Endpoint>], request: &PlaceRequest, now_ms: u64) -> usize {
        let key = match self.key {
            AffinityKey::Session => request.session,
            AffinityKey::Prefix => request.prefix,
        };
        let Some(key) = key else {
            return self.fallback.least_loaded(candidates, now_ms);
        };
        let mut best = 0;
        let mut best_score = 0;
        let mut total = 0usize;
        for (i, e) in candidates.iter().enumerate() {
            total += e.load(now_ms);
            let score = mix64(key ^ e.affinity_seed);
            if score >= best_score {
                best = i;
                best_score = score;
            }
        }
        let mean = total as f64 / candidates.len() as f64;
        let bound = self.load_factor * mean + 1.0;
        if candidates[best].load(now_ms) as f64 > bound {
            return self.fallback.least_loaded(candidates, now_ms);
        }
        best
    }
}
