//! The Router's moving half: which of a route's candidate models answers (select),
//! and the plugins that guard and transform a request and its answer.
//!
//! Each selection algorithm is one file implementing [`Selection`], registered in
//! [`algorithm`]. Algorithms see candidates with what the pool layer knows about them
//! (whether any pool of the model can hold the request) and never place requests
//! themselves. Each plugin type is one file implementing [`plugins::Plugin`],
//! registered in [`plugins::REGISTRY`]; the semantic cache's backends are in
//! [`cache`]. This crate does not decide routes (`policy`)
//! or place and forward requests (`pool`).

pub mod cache;
pub mod observed;
pub mod outcomes;
pub mod plugins;
pub mod reputation;
pub mod selection;
pub mod shadow;
pub mod sticky;

pub use observed::{Metric, ModelLatency};
pub use outcomes::{Answer, ArmStats, Implicit, Outcomes};
pub use selection::{Candidate, SelectRequest, Selected, Selection, algorithm};
