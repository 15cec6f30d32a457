//! The selection trait and the registry of algorithms.

mod static_order;

use serde::Serialize;
use switchyard_policy::AlgorithmConfig;

pub use static_order::StaticOrder;

/// One candidate model as selection sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate<'a> {
    /// Index of the model in the configuration.
    pub model: usize,
    /// Its name.
    pub name: &'a str,
    /// The largest context window among its pools, in tokens.
    pub max_context: u32,
}

/// The outcome of selection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Selected {
    /// Index into the candidate list.
    pub candidate: usize,
    /// Why, in words, for the explain trace.
    pub reason: String,
}

/// A way of choosing one candidate.
pub trait Selection: Send + Sync {
    /// The algorithm's configuration name.
    fn name(&self) -> &'static str;
    /// Chooses a candidate for a request needing `tokens` tokens of context, or `None`
    /// when no candidate can take it.
    fn select(&self, candidates: &[Candidate<'_>], tokens: u32) -> Option<Selected>;
}

/// The algorithm configured as `config`.
pub fn algorithm(config: AlgorithmConfig) -> &'static dyn Selection {
    match config {
        AlgorithmConfig::Static => &StaticOrder,
    }
}
