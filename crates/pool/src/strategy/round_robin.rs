//! `round_robin`: each candidate in turn.

use super::{EndpointStrategy, PlaceRequest};
use crate::endpoint::Endpoint;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Takes candidates in turn.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl EndpointStrategy for RoundRobin {
    fn name(&self) -> &'static str {
        "round_robin"
    }

    fn pick(&self, candidates: &[&Arc<Endpoint>], _: &PlaceRequest, _: u64) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % candidates.len()
    }
}
