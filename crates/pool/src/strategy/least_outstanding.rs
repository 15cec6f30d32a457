//! `least_outstanding`: the candidate with the fewest requests in flight.

use super::{EndpointStrategy, PlaceRequest};
use crate::endpoint::Endpoint;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Fewest requests in flight; ties go round robin so idle endpoints share the work.
#[derive(Debug, Default)]
pub struct LeastOutstanding {
    next: AtomicUsize,
}

impl LeastOutstanding {
    /// The index of the least loaded candidate, scanning from a rotating start.
    pub fn least_loaded(&self, candidates: &[&Arc<Endpoint>], now_ms: u64) -> usize {
        let n = candidates.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut best = start;
        let mut best_load = usize::MAX;
        for k in 0..n {
            let i = (start + k) % n;
            let load = candidates[i].load(now_ms);
            if load < best_load {
                best = i;
                best_load = load;
            }
        }
        best
    }
}

impl EndpointStrategy for LeastOutstanding {
    fn name(&self) -> &'static str {
        "least_outstanding"
    }

    fn pick(&self, candidates: &[&Arc<Endpoint>], _: &PlaceRequest, now_ms: u64) -> usize {
        self.least_loaded(candidates, now_ms)
    }
}
