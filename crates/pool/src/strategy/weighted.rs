//! `weighted`: smooth weighted round robin over the candidates' weights.

use super::{EndpointStrategy, PlaceRequest};
use crate::endpoint::Endpoint;
use std::sync::{Arc, Mutex, PoisonError};

/// Smooth weighted round robin: each pick adds every candidate's weight to its running
/// score, takes the highest, and subtracts the total from the winner. Over any window,
/// picks follow the weights and are spread out, not bunched.
#[derive(Debug, Default)]
pub struct Weighted {
    /// Running score per endpoint, by its index in the pool.
    current: Mutex<Vec<i64>>,
}

impl EndpointStrategy for Weighted {
    fn name(&self) -> &'static str {
        "weighted"
    }

    fn pick(&self, candidates: &[&Arc<Endpoint>], _: &PlaceRequest, _: u64) -> usize {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let mut total = 0i64;
        let mut best = 0;
        let mut best_score = i64::MIN;
        for (i, e) in candidates.iter().enumerate() {
            if e.index >= current.len() {
                current.resize(e.index + 1, 0);
            }
            let weight = i64::from(e.weight);
            total += weight;
            let score = &mut current[e.index];
            *score += weight;
            if *score > best_score {
                best = i;
                best_score = *score;
            }
        }
        current[candidates[best].index] -= total;
        best
    }
}
