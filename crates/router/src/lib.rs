//! The select phase: which of a route's candidate models answers.
//!
//! Each selection algorithm is one file implementing [`Selection`], registered in
//! [`algorithm`]. Algorithms see candidates with what the pool layer knows about them
//! (whether any pool of the model can hold the request) and never place requests
//! themselves.

pub mod observed;
pub mod selection;

pub use observed::{Metric, ModelLatency};
pub use selection::{Candidate, SelectRequest, Selected, Selection, algorithm};
