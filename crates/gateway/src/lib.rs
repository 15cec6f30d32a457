//! The gateway: HTTP in, the request pipeline, HTTP out.
//!
//! This crate owns the OpenAI-compatible server (`/v1/chat/completions`,
//! `/v1/models`, `/v1/route`, `/healthz`, `/readyz`, `/metrics`), the wiring of the
//! request phases (ingress → characterize → decide → select → place → forward →
//! observe), the explain headers and trace, Prometheus metrics and the JSONL decision
//! log. Each phase's logic lives in its own crate; this one only connects them.

pub mod decision_log;
pub mod ingress;
pub mod metrics;
pub mod pipeline;
pub mod respond;
pub mod runtime;
pub mod server;

pub use decision_log::{DecisionLog, DecisionRecord};
pub use pipeline::{Plan, plan};
pub use runtime::{Runtime, RuntimeError};
pub use server::{Gateway, Live, router};
