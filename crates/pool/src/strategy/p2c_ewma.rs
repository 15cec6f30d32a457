//! `p2c_ewma`: the better of two random candidates by peak-EWMA latency and load.

use super::{EndpointStrategy, PlaceRequest};
use crate::endpoint::Endpoint;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use switchyard_wire::hash::{GOLDEN_GAMMA, mix64};

/// Power of two choices: draw two distinct candidates, keep the one whose peak-EWMA
/// latency times (requests in flight + 1) is lower. Endpoints with no latency sample
/// yet cost as little as the fastest seen, so new endpoints get tried.
#[derive(Debug)]
pub struct P2cEwma {
    state: AtomicU64,
}

impl P2cEwma {
    /// A strategy whose random draws follow `seed`.
    pub fn new(seed: u64) -> Self {
        P2cEwma {
            state: AtomicU64::new(seed),
        }
    }

    fn next_random(&self) -> u64 {
        // splitmix64 over an atomic counter: lock-free, deterministic for a seed.
        let state = self.state.fetch_add(GOLDEN_GAMMA, Ordering::Relaxed);
        mix64(state.wrapping_add(GOLDEN_GAMMA))
    }
}

impl EndpointStrategy for P2cEwma {
    fn name(&self) -> &'static str {
        "p2c_ewma"
    }

    fn pick(&self, candidates: &[&Arc<Endpoint>], _: &PlaceRequest, now_ms: u64) -> usize {
        let n = candidates.len();
        if n == 1 {
            return 0;
        }
        let r = self.next_random();
        let a = (r % n as u64) as usize;
        let b = (a + 1 + ((r >> 32) % (n as u64 - 1)) as usize) % n;
        let floor = candidates
            .iter()
            .filter_map(|e| e.latency.estimate(now_ms))
            .fold(f64::INFINITY, f64::min);
        let floor = if floor.is_finite() { floor } else { 1.0 };
        let cost = |e: &Endpoint| {
            e.latency.estimate(now_ms).unwrap_or(floor) * (e.load(now_ms) as f64 + 1.0)
        };
        if cost(candidates[b]) < cost(candidates[a]) {
            b
        } else {
            a
        }
    }
}
