//! The fleet simulator: how pools of GPU instances serve a workload under a routing
//! policy, in simulated time.
//!
//! [`spec`] reads the simulation file into a [`Scenario`]; [`Simulation`] runs it on
//! one global event queue and returns a [`Report`]. The instance model is the
//! iteration model of [`crate::Batch`] (continuous batching, chunked prefill, KV
//! blocks of 16 tokens), stepped many iterations per event, with preemption when an
//! overcommitted KV cache runs out. Every request ends completed, rejected or
//! dropped, and each is counted.

mod arrivals;
mod instance;
mod queue;
mod report;
mod run;
pub mod spec;
mod stats;

pub use report::{Little, PoolReport, Report};
pub use run::Simulation;
pub use spec::{Scenario, SpecError, load_scenario, parse_scenario};
pub use stats::Percentiles;

/// Runs a scenario to the end with no progress reporting.
pub fn simulate(scenario: Scenario) -> Result<Report, SpecError> {
    Ok(Simulation::new(scenario)?.run(&mut |_, _| {}))
}
