//! The Workload dimension: what each request is, as signals.
//!
//! This crate owns the signal families (their configuration and their extractors),
//! the [`Signals`] a request yields, and [`SignalEngine::characterize`], which
//! computes only the signals a policy references. It does not decide routes (the
//! `policy` crate reads [`Signals`]) and does not know about HTTP.
//!
//! Adding a family is one file (its definition type implementing the crate's
//! `FamilyConfig`, its signal implementing [`Signal`], declared with `pub mod`) plus
//! one line in the family table, `signals/table.rs`: the table defines
//! [`SignalFamily`], the family's list in [`SignalsConfig`] and its place in
//! [`SignalEngine::build`]; the policy language, its printer and the checker read
//! families from [`SignalFamily::ALL`].

pub mod authz;
pub mod context;
pub mod contrast;
pub mod counter;
pub mod dataset;
pub mod domain;
pub mod embedding;
pub mod feedback;
pub mod head;
pub mod jailbreak;
pub mod kb;
pub mod keyword;
pub mod language;
pub mod metadata;
pub mod metrics;
pub mod outcome_router;
pub mod pii;
pub mod projection;
pub mod reputation;
pub mod risk;
pub mod signals;
pub mod structure;
pub mod worker;

pub use counter::TokenCounter;
pub use signals::{
    DomainPrediction, EmbeddingWait, OnError, Request, Signal, SignalEngine, SignalFamily,
    SignalId, SignalKey, SignalLimit, SignalValue, Signals, SignalsConfig,
};
pub use switchyard_embed;
pub use switchyard_wire::TokenCount;
