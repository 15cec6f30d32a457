//! The selection trait and the registry of algorithms: one file each.

mod cascade;
mod cost;
mod elo;
mod latency;
mod learned;
mod multi_factor;
mod static_order;
mod thompson;
mod weighted;

use crate::observed::{Metric, ModelLatency};
use crate::outcomes::ArmStats;
use serde::Serialize;
use switchyard_policy::{AlgorithmConfig, Price};

pub use cascade::{confidence, ladder};
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
    /// Its price, when configured.
    pub price: Option<Price>,
    /// Its quality score, when configured.
    pub quality: Option<f64>,
    /// Requests in flight per endpoint of its pools.
    pub load: f64,
    /// Latencies observed on it.
    #[serde(skip)]
    pub latency: Option<&'a ModelLatency>,
    /// What its arm has learned of outcomes (filled for algorithms that learn).
    pub outcomes: ArmStats,
    /// Its score as a learned router predicts it for this request (filled for
    /// `learned`, for the candidates playing the router's models).
    pub predicted: Option<f64>,
    /// Its predicted time to first token for this request's prompt, in milliseconds
    /// (filled for `cascade`, when its endpoints have answered before).
    pub ttft_ms: Option<f64>,
}

impl Candidate<'_> {
    /// Whether its pools can hold a request needing `tokens` of context.
    pub fn fits(&self, tokens: u32) -> bool {
        self.max_context >= tokens
    }

    /// Estimated dollars for the request (infinite without a price).
    pub fn cost(&self, request: &SelectRequest) -> f64 {
        self.price.map_or(f64::INFINITY, |p| {
            p.cost(request.prompt_tokens, request.output_tokens)
        })
    }

    /// Observed percentile `p` of `metric`, and how many observations there were.
    pub fn observed(&self, metric: Metric, p: f64) -> (Option<f64>, u64) {
        self.latency
            .map_or((None, 0), |l| (l.percentile(metric, p), l.samples(metric)))
    }
}

/// What selection knows of the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SelectRequest {
    /// Context the request needs (prompt plus at least one answer token).
    pub tokens: u32,
    /// Prompt tokens, for cost.
    pub prompt_tokens: u32,
    /// Expected answer tokens, for cost.
    pub output_tokens: u32,
    /// A stable hash of the conversation's start, for sticky random choices.
    pub hash: u64,
    /// A number fresh for each request, for random draws that must differ.
    pub draw: u64,
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
    /// Chooses a candidate for the request, or `None` when none can take it (none
    /// fits, or the algorithm's ceilings prune them all).
    fn select(&self, candidates: &[Candidate<'_>], request: &SelectRequest) -> Option<Selected>;
}

/// The algorithm configured as `config`.
pub fn algorithm(config: &AlgorithmConfig) -> &dyn Selection {
    match config {
        AlgorithmConfig::Static => &StaticOrder,
        AlgorithmConfig::Weighted(w) => w,
        AlgorithmConfig::Cost(c) => c,
        AlgorithmConfig::Latency(l) => l,
        AlgorithmConfig::MultiFactor(m) => m,
        AlgorithmConfig::Thompson(t) => t,
        AlgorithmConfig::Learned(l) => l,
        AlgorithmConfig::Elo(e) => e,
        AlgorithmConfig::Cascade(c) => c,
    }
}

/// The candidates that fit, with their indexes.
fn fitting<'c, 'a>(
    candidates: &'c [Candidate<'a>],
    request: &SelectRequest,
) -> impl Iterator<Item = (usize, &'c Candidate<'a>)> {
    candidates
        .iter()
        .enumerate()
        .filter(move |(_, c)| c.fits(request.tokens))
}

/// A candidate's cost as a share of the costliest fitting candidate's, in [0, 1]
/// (0 without prices): the cost term the learning algorithms weigh.
fn relative_costs(fit: &[(usize, &Candidate<'_>)], request: &SelectRequest) -> Vec<f64> {
    let costs: Vec<f64> = fit.iter().map(|(_, c)| c.cost(request)).collect();
    let top = costs
        .iter()
        .copied()
        .filter(|c| c.is_finite())
        .fold(0.0_f64, f64::max);
    costs
        .into_iter()
        .map(|c| {
            if top > 0.0 && c.is_finite() {
                c / top
            } else {
                0.0
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A candidate with a window, a price (in, out), a quality and a load.
    pub fn candidate(
        name: &'static str,
        window: u32,
        price: Option<(f64, f64)>,
        quality: Option<f64>,
        load: f64,
    ) -> Candidate<'static> {
        Candidate {
            model: 0,
            name,
            max_context: window,
            price: price.map(|(input, output)| Price { input, output }),
            quality,
            load,
            latency: None,
            outcomes: ArmStats::default(),
            predicted: None,
            ttft_ms: None,
        }
    }

    pub fn request(tokens: u32) -> SelectRequest {
        SelectRequest {
            tokens,
            prompt_tokens: tokens,
            output_tokens: 200,
            hash: 7,
            draw: 0,
        }
    }
}
