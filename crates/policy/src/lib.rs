//! The Router's static half: configuration, routes over signals, decisions.
//!
//! This crate owns the configuration schema ([`Config`]) and its strict YAML loading
//! (unknown keys are errors with the file, line, column and the nearest valid key),
//! the compilation of routes into a [`Policy`] whose conditions point at dense signal
//! ids, and [`Policy::decide`], which turns a request's [`Signals`] into a
//! [`Decision`]. It does not compute signals (the `workload` crate does), pick a model
//! among candidates (`router`) or place requests (`pool`).
//!
//! [`Signals`]: switchyard_workload::Signals

pub mod checker;
pub mod compile;
pub mod condition;
pub mod config;
pub mod decide;
pub mod diagnostics;
pub mod dsl;
pub mod import;
pub mod load;
pub mod plugins;

pub use checker::{Analysis, Finding, FindingKind, Witness};
pub use compile::{Atom, CompiledConstraint, CompiledRoute, Expr, Policy, Refusal};
pub use condition::{Cmp, Condition, Measure, Test};
pub use config::{
    AlgorithmConfig, CandidateConfig, CandidateOptions, CascadeConfig, CheckEndsEjection,
    ConfidenceCheck, Config, ConstraintConfig, CostConfig, DecisionConfig, DecisionStrategy,
    DefaultRouteConfig, Effort, EloConfig, EndpointConfig, FactorWeights, HealthConfig,
    ImplicitScores, LatencyConfig, LatencyMetric, LearnedConfig, ModelConfig, ModelFamily,
    MultiFactorConfig, OutcomeBucket, OutcomesConfig, PoolConfig, Price, Provider,
    ReputationConfig, RetentionConfig, RouteConfig, ServerConfig, ShadowConfig, ShadowJudge,
    StickyConfig, StrategyConfig, TagRule, TestCaseConfig, TestConfig, ThompsonConfig,
    UpstreamConfig, WeightedConfig,
};
pub use decide::{Decision, RouteTrace};
pub use diagnostics::{ConfigError, Diagnostic, Severity, suggest};
pub use load::{load_config, parse_config};
pub use plugins::{PluginChains, PluginConfig, PluginOnError};

/// The most pools a configuration may have when a constraint restricts pools (the
/// size of the gateway's per-request set of allowed pools).
pub const POOL_SET_CAPACITY: usize = 256;
