//! The simulation file: pools, routing, workload, SLO. Parsed strictly (unknown keys
//! are errors with their line), then checked and resolved into a [`Scenario`].

use crate::gpu::{GpuKind, GpuProfile};
use crate::power::PowerProfile;
use crate::roofline::{self, ModelSpec};
use crate::workload::LengthCdf;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use switchyard_wire::TokenCount;
use switchyard_wire::typos::{strip_location, suggest, unknown_field};

/// A fleet simulation, as written in its YAML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSpec {
    /// Seed of every random draw; the same seed gives the same report, byte for byte.
    #[serde(default)]
    pub seed: u64,
    /// Arrivals to simulate (all sources together); the fleet then drains.
    #[serde(default)]
    pub requests: Option<u64>,
    /// Or: stop arrivals after this many seconds of simulated time.
    #[serde(default)]
    pub duration_s: Option<f64>,
    /// The first arrivals, simulated but left out of every figure of the report, so
    /// that it reads the fleet in steady state rather than filling from empty.
    #[serde(default)]
    pub warmup_requests: u64,
    /// Latency objectives; a request meets the SLO when it completes within all of them.
    #[serde(default)]
    pub slo: SloSpec,
    /// How requests are spread over pools.
    #[serde(default)]
    pub routing: RoutingSpec,
    /// The pools.
    pub pools: Vec<PoolSpec>,
    /// The arrival sources.
    pub workload: Vec<SourceSpec>,
}

/// Latency objectives.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    /// Time to first token, in ms.
    #[serde(default)]
    pub ttft_ms: Option<f64>,
    /// Time per output token after the first, in ms.
    #[serde(default)]
    pub tpot_ms: Option<f64>,
    /// End-to-end latency, in ms.
    #[serde(default)]
    pub e2e_ms: Option<f64>,
}

/// Fleet-level routing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingSpec {
    /// The policy.
    #[serde(default)]
    pub policy: RoutingPolicy,
    /// `compress`: requests up to γ·B tokens are compressed to fit the pool of
    /// boundary B instead of going to a larger pool (γ ≥ 1).
    #[serde(default)]
    pub gamma: Option<f64>,
    /// `spillover`: queued requests in a pool at which new ones go to the next larger pool.
    #[serde(default)]
    pub spill_at: Option<u32>,
}

/// Fleet-level routing policies.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RoutingPolicy {
    /// The smallest pool whose boundary holds the request (length threshold).
    #[default]
    Length,
    /// Length threshold, compressing requests just over a boundary (B, γ).
    Compress,
    /// Length threshold, spilling to the next pool that fits when a pool's queue is long.
    Spillover,
    /// The pool that fits with the least load per slot.
    LeastLoaded,
    /// The least-loaded pool that serves the request's model.
    ByModel,
    /// The pool named by each trace row (a decision log's `pool`).
    Replay,
}

/// The GPU of a pool's instances.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum GpuSpec {
    /// A calibrated GPU: `a10g`, `a100`, `h100`.
    Calibrated(String),
    /// A roofline profile from hardware and model specs.
    Roofline {
        /// `a10g`, `a100`, `h100`, `h200` or `b200`.
        hardware: String,
        /// `llama-3.1-8b` or `llama-3.1-70b`.
        model: String,
        /// Tensor-parallel degree (GPUs per instance).
        #[serde(default = "one")]
        tp: u32,
    },
}

fn one() -> u32 {
    1
}

/// How a pool hands requests to its instances.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Dispatch {
    /// One pool queue; a request goes to the least-loaded instance with a free slot,
    /// else waits in the pool queue until a slot frees.
    #[default]
    Central,
    /// Each request goes at once to the instance with the fewest running plus waiting
    /// sequences, and waits there.
    Shortest,
}

/// One pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    /// Its name.
    pub name: String,
    /// The GPU of its instances.
    pub gpu: GpuSpec,
    /// Instances.
    pub instances: u32,
    /// Context window of the served model (prompt plus output must fit).
    pub context_window: TokenCount,
    /// Boundary B: the longest request (prompt plus output) routed here by length;
    /// default: the context window.
    #[serde(default)]
    pub max_tokens: Option<TokenCount>,
    /// The model served (for `by_model` routing and traces that name models).
    #[serde(default)]
    pub model: Option<String>,
    /// Queueing discipline.
    #[serde(default)]
    pub dispatch: Dispatch,
    /// Most requests waiting in the pool before new ones are rejected (default 10,000
    /// or 512 per instance, whichever is more, so a large pool is not capped at the
    /// queue of a small one).
    #[serde(default)]
    pub max_queue: Option<u32>,
    /// A request that waited longer than this for its first admission is dropped.
    #[serde(default)]
    pub max_queue_wait_s: Option<f64>,
    /// Concurrent sequences per instance (default: what the KV cache holds at the full
    /// window; more overcommits the cache and may preempt).
    #[serde(default)]
    pub max_seqs: Option<u32>,
    /// Preemptions after which a request is dropped (default 8).
    #[serde(default = "default_max_preemptions")]
    pub max_preemptions: u16,
    /// Price of one instance per hour, in dollars (default: the GPU's price × GPUs).
    #[serde(default)]
    pub cost_per_hour: Option<f64>,
}

/// The queue bound of a pool of `instances` when none is given.
fn default_max_queue(instances: u32) -> u32 {
    instances.saturating_mul(512).max(10_000)
}

fn default_max_preemptions() -> u16 {
    8
}

/// One arrival source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Its name.
    pub name: String,
    /// When requests arrive.
    pub arrival: ArrivalSpec,
    /// Request lengths: one or more distributions drawn by weight (not with `trace`).
    #[serde(default)]
    pub lengths: Vec<LengthSpec>,
    /// The model every request of this source asks for.
    #[serde(default)]
    pub model: Option<String>,
}

/// An arrival process.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ArrivalSpec {
    /// Poisson arrivals.
    Poisson {
        /// Requests per second.
        rate: f64,
    },
    /// Poisson arrivals whose rate follows a daily curve: `rates` in equal segments
    /// of `period_s` (24 values for hourly rates), repeating.
    Diurnal {
        /// Requests per second in each segment.
        rates: Vec<f64>,
        /// Length of the whole curve, in seconds (default 86,400).
        #[serde(default = "day")]
        period_s: f64,
    },
    /// Bursts: a Markov-modulated Poisson process cycling through states, each with its
    /// rate and an exponential dwell time of mean `dwell_s`.
    Mmpp {
        /// Requests per second in each state.
        rates: Vec<f64>,
        /// Mean time in each state, in seconds.
        dwell_s: Vec<f64>,
    },
    /// Replay of a trace: CSV (`arrival_s,prompt_tokens,output_tokens[,model][,pool]`),
    /// JSON Lines with those fields, or a Switchyard decision log.
    Trace {
        /// The file (relative to the simulation file).
        path: PathBuf,
        /// Time compression: 2 replays twice as fast.
        #[serde(default = "one_f")]
        speed: f64,
    },
}

fn day() -> f64 {
    86_400.0
}

fn one_f() -> f64 {
    1.0
}

/// One length distribution of a source.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LengthSpec {
    /// Prompt-plus-output CDF: `azure`, `lmsys`, `agent_heavy`, or a JSON file.
    #[serde(default)]
    pub cdf: Option<String>,
    /// With `cdf`: share of each request's tokens that is output (default 0.2).
    #[serde(default)]
    pub output_fraction: Option<f64>,
    /// Without `cdf`: a fixed prompt length.
    #[serde(default)]
    pub prompt_tokens: Option<u32>,
    /// Without `cdf`: a fixed output length.
    #[serde(default)]
    pub output_tokens: Option<u32>,
    /// Without `cdf`: geometric output lengths of this mean (exponential service).
    #[serde(default)]
    pub output_mean: Option<f64>,
    /// Weight among the source's distributions (default 1).
    #[serde(default = "one_f")]
    pub weight: f64,
}

/// A resolved pool.
#[derive(Debug, Clone)]
pub struct Pool {
    /// Its name.
    pub name: String,
    /// Instance profile.
    pub profile: GpuProfile,
    /// Per-GPU power curve.
    pub power: PowerProfile,
    /// GPUs per instance.
    pub gpus: u32,
    /// The GPU's name.
    pub gpu_name: String,
    /// Instances.
    pub instances: u32,
    /// Context window.
    pub context_window: u32,
    /// Boundary B.
    pub max_tokens: u32,
    /// Served model.
    pub model: Option<String>,
    /// Queueing discipline.
    pub dispatch: Dispatch,
    /// Queue bound.
    pub max_queue: u32,
    /// Queue deadline, in ms.
    pub max_queue_wait_ms: Option<f64>,
    /// Slot override.
    pub max_seqs: Option<u32>,
    /// Preemption limit.
    pub max_preemptions: u16,
    /// Dollars per instance-hour.
    pub cost_per_hour: f64,
}

impl Pool {
    /// A pool of `instances` instances of `profile` (one GPU each) with every other
    /// setting at its default: boundary at the window, central dispatch, the default
    /// queue bound and preemption limit, no model, no price.
    pub fn new(
        name: impl Into<String>,
        profile: GpuProfile,
        power: PowerProfile,
        instances: u32,
        context_window: u32,
    ) -> Pool {
        Pool {
            name: name.into(),
            profile,
            power,
            gpus: 1,
            gpu_name: profile.name.to_owned(),
            instances,
            context_window,
            max_tokens: context_window,
            model: None,
            dispatch: Dispatch::Central,
            max_queue: default_max_queue(instances),
            max_queue_wait_ms: None,
            max_seqs: None,
            max_preemptions: default_max_preemptions(),
            cost_per_hour: 0.0,
        }
    }
}

/// A resolved length distribution.
#[derive(Debug, Clone, PartialEq)]
pub enum LengthModel {
    /// Total from a CDF, split by an output fraction.
    Cdf {
        /// The CDF.
        cdf: LengthCdf,
        /// Share of output.
        output_fraction: f64,
    },
    /// Fixed prompt, fixed or geometric output.
    Fixed {
        /// Prompt tokens.
        prompt: u32,
        /// Fixed output tokens, or
        output: Option<u32>,
        /// geometric output of this mean.
        output_mean: Option<f64>,
    },
}

/// A resolved source.
#[derive(Debug, Clone)]
pub struct Source {
    /// Its name.
    pub name: String,
    /// Arrival process (trace paths resolved).
    pub arrival: ArrivalSpec,
    /// Distributions with cumulative weights.
    pub lengths: Vec<(f64, LengthModel)>,
    /// Model asked for.
    pub model: Option<String>,
}

/// A checked simulation.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Seed.
    pub seed: u64,
    /// Arrival cap.
    pub requests: Option<u64>,
    /// Arrival horizon, in ms.
    pub duration_ms: Option<f64>,
    /// Arrivals simulated before measuring (counted in `requests`).
    pub warmup_requests: u64,
    /// SLO.
    pub slo: SloSpec,
    /// Routing.
    pub routing: RoutingSpec,
    /// Pools, in file order.
    pub pools: Vec<Pool>,
    /// Sources.
    pub sources: Vec<Source>,
}

/// A problem with a simulation file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}{}: {message}{}", line.map(|l| format!(":{l}")).unwrap_or_default(), help.as_ref().map(|h| format!("\n  help: {h}")).unwrap_or_default())]
pub struct SpecError {
    /// The file.
    pub file: String,
    /// The line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub help: Option<String>,
}

impl SpecError {
    /// A file that could not be read.
    pub fn unreadable(file: &str, error: &std::io::Error, what: &str, help: &str) -> SpecError {
        SpecError {
            file: file.to_owned(),
            line: None,
            message: format!("cannot read {what}: {error}"),
            help: Some(help.to_owned()),
        }
    }

    fn new(file: &str, message: impl Into<String>, help: impl Into<String>) -> SpecError {
        SpecError {
            file: file.to_owned(),
            line: None,
            message: message.into(),
            help: Some(help.into()),
        }
    }
}

/// A YAML error as a [`SpecError`]: its line, the message without the location, and a
/// "did you mean" for an unknown key (else a pointer to `docs`).
pub fn yaml_error(err: &serde_saphyr::Error, file: &str, docs: &str) -> SpecError {
    let message = strip_location(&err.without_snippet().to_string());
    let help = match unknown_field(&message) {
        Some((wrong, expected)) => match suggest(&wrong, expected.iter().map(String::as_str)) {
            Some(best) => format!("did you mean `{best}`?"),
            None => format!("expected one of: {}", expected.join(", ")),
        },
        None => format!("see {docs} for every field"),
    };
    let message = match message.split_once(", expected") {
        Some((head, _)) if message.starts_with("unknown field") => head.to_owned(),
        _ => message,
    };
    SpecError {
        file: file.to_owned(),
        line: err.location().map(|l| l.line() as usize),
        message,
        help: Some(help),
    }
}

/// The built-in CDFs by name.
pub fn builtin_cdf(name: &str) -> Option<LengthCdf> {
    let text = match name {
        "azure" => include_str!("../../data/azure.json"),
        "lmsys" => include_str!("../../data/lmsys.json"),
        "agent_heavy" => include_str!("../../data/agent_heavy.json"),
        _ => return None,
    };
    LengthCdf::from_json(text).ok()
}

/// Reads and checks a simulation file.
pub fn load_scenario(path: &Path) -> Result<Scenario, SpecError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| SpecError::unreadable(&file, &e, "the file", "pass an existing YAML file"))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse_scenario(&text, &file, base)
}

/// Parses and checks simulation text; `file` names it in errors and `base` resolves
/// relative paths.
pub fn parse_scenario(text: &str, file: &str, base: &Path) -> Result<Scenario, SpecError> {
    let spec: FleetSpec =
        serde_saphyr::from_str(text).map_err(|err| yaml_error(&err, file, "docs/fleet.md"))?;
    resolve(spec, file, base)
}

/// Checks a parsed spec and resolves names and paths.
pub fn resolve(spec: FleetSpec, file: &str, base: &Path) -> Result<Scenario, SpecError> {
    let err = |message: String, help: &str| SpecError::new(file, message, help);
    if spec.requests.is_none() && spec.duration_s.is_none() {
        let traces = spec
            .workload
            .iter()
            .all(|s| matches!(s.arrival, ArrivalSpec::Trace { .. }));
        if !traces {
            return Err(err(
                "the simulation has no end".into(),
                "set `requests` (arrivals to simulate) or `duration_s`",
            ));
        }
    }
    if let Some(r) = spec.requests
        && spec.warmup_requests >= r
    {
        return Err(err(
            format!(
                "warmup_requests ({}) leaves nothing to measure of requests ({r})",
                spec.warmup_requests
            ),
            "warm-up arrivals are part of `requests`: make `requests` larger",
        ));
    }
    if let Some(d) = spec.duration_s
        && !(d.is_finite() && d > 0.0)
    {
        return Err(err(
            format!("duration_s is {d}"),
            "use a positive number of seconds",
        ));
    }
    if spec.pools.is_empty() {
        return Err(err(
            "no pools".into(),
            "add at least one pool under `pools`",
        ));
    }
    if spec.workload.is_empty() {
        return Err(err(
            "no workload".into(),
            "add at least one source under `workload`",
        ));
    }
    let mut pools = Vec::with_capacity(spec.pools.len());
    for p in &spec.pools {
        if pools.iter().any(|q: &Pool| q.name == p.name) {
            return Err(err(
                format!("pool `{}` is defined twice", p.name),
                "give every pool its own name",
            ));
        }
        pools.push(
            resolve_pool(p)
                .map_err(|m| err(format!("pool `{}`: {m}", p.name), "see docs/fleet.md#pools"))?,
        );
    }
    let routing = spec.routing.clone();
    match routing.policy {
        RoutingPolicy::Compress => match routing.gamma {
            Some(g) if g.is_finite() && g >= 1.0 => {}
            _ => {
                return Err(err(
                    "routing `compress` needs `gamma` ≥ 1".into(),
                    "e.g. gamma: 1.5",
                ));
            }
        },
        RoutingPolicy::Spillover if routing.spill_at.is_none() => {
            return Err(err(
                "routing `spillover` needs `spill_at`".into(),
                "e.g. spill_at: 32 (queued requests)",
            ));
        }
        RoutingPolicy::ByModel if pools.iter().any(|p| p.model.is_none()) => {
            return Err(err(
                "routing `by_model` needs a `model` on every pool".into(),
                "add `model: NAME` to each pool",
            ));
        }
        _ => {}
    }
    let mut sources = Vec::with_capacity(spec.workload.len());
    for s in &spec.workload {
        sources.push(resolve_source(s, base).map_err(|m| {
            err(
                format!("source `{}`: {m}", s.name),
                "see docs/fleet.md#workload",
            )
        })?);
    }
    if sources.len() > usize::from(u16::MAX) {
        return Err(err("too many sources".into(), "use at most 65,535"));
    }
    Ok(Scenario {
        seed: spec.seed,
        requests: spec.requests,
        duration_ms: spec.duration_s.map(|s| s * 1000.0),
        warmup_requests: spec.warmup_requests,
        slo: spec.slo,
        routing,
        pools,
        sources,
    })
}

fn model_spec(name: &str) -> Option<&'static ModelSpec> {
    [&roofline::LLAMA_8B, &roofline::LLAMA_70B]
        .into_iter()
        .find(|m| m.name.eq_ignore_ascii_case(name))
}

/// Resolves a GPU spec: (profile, per-GPU power, GPUs, name, price per instance-hour).
pub fn resolve_gpu(gpu: &GpuSpec) -> Result<(GpuProfile, PowerProfile, u32, String, f64), String> {
    match gpu {
        GpuSpec::Calibrated(name) => {
            let kind = GpuKind::from_name(name).ok_or_else(|| {
                format!("unknown GPU `{name}` (calibrated: a10g, a100, h100; for h200 or b200 write {{hardware, model, tp}})")
            })?;
            let price = roofline::hardware(kind.name()).map_or(0.0, |h| h.price_per_hour);
            Ok((
                kind.profile(),
                kind.power(),
                1,
                kind.name().to_owned(),
                price,
            ))
        }
        GpuSpec::Roofline {
            hardware,
            model,
            tp,
        } => {
            let hw = roofline::hardware(hardware).ok_or_else(|| {
                format!("unknown hardware `{hardware}` (a10g, a100, h100, h200, b200)")
            })?;
            let m = model_spec(model)
                .ok_or_else(|| format!("unknown model `{model}` (llama-3.1-8b, llama-3.1-70b)"))?;
            if *tp == 0 || *tp > 64 {
                return Err(format!("tp is {tp}; use 1 to 64"));
            }
            let profile = roofline::roofline(hw, m, *tp).map_err(|e| e.to_string())?;
            let power =
                GpuKind::from_name(hw.name).map_or_else(|| hw.estimated_power(), GpuKind::power);
            Ok((
                profile,
                power,
                *tp,
                if *tp == 1 {
                    format!("{}/{}", hw.name, m.name)
                } else {
                    format!("{}x{}/{}", tp, hw.name, m.name)
                },
                hw.price_per_hour * f64::from(*tp),
            ))
        }
    }
}

fn resolve_pool(p: &PoolSpec) -> Result<Pool, String> {
    let (profile, power, gpus, gpu_name, price) = resolve_gpu(&p.gpu)?;
    if p.instances == 0 {
        return Err("has no instances".into());
    }
    let window = p.context_window.0;
    if window < 16 {
        return Err(format!("context_window {window} is too small"));
    }
    if u64::from(window).div_ceil(16) > u64::from(profile.kv_blocks) {
        return Err(format!(
            "a {window}-token window does not fit the instance's KV cache"
        ));
    }
    let max_tokens = p.max_tokens.map_or(window, |t| t.0);
    if max_tokens == 0 || max_tokens > window {
        return Err(format!(
            "max_tokens {max_tokens} must be between 1 and the window {window}"
        ));
    }
    if let Some(w) = p.max_queue_wait_s
        && !(w.is_finite() && w > 0.0)
    {
        return Err(format!("max_queue_wait_s is {w}"));
    }
    if p.max_seqs == Some(0) {
        return Err("max_seqs is 0".into());
    }
    let cost = p.cost_per_hour.unwrap_or(price);
    if !(cost.is_finite() && cost >= 0.0) {
        return Err(format!("cost_per_hour is {cost}"));
    }
    Ok(Pool {
        name: p.name.clone(),
        profile,
        power,
        gpus,
        gpu_name,
        instances: p.instances,
        context_window: window,
        max_tokens,
        model: p.model.clone(),
        dispatch: p.dispatch,
        max_queue: p
            .max_queue
            .unwrap_or_else(|| default_max_queue(p.instances)),
        max_queue_wait_ms: p.max_queue_wait_s.map(|s| s * 1000.0),
        max_seqs: p.max_seqs,
        max_preemptions: p.max_preemptions,
        cost_per_hour: cost,
    })
}

fn positive(values: &[f64], what: &str, allow_zero: bool) -> Result<(), String> {
    if values.is_empty() {
        return Err(format!("{what} is empty"));
    }
    for v in values {
        if !v.is_finite() || *v < 0.0 || (!allow_zero && *v == 0.0) {
            return Err(format!("{what} has {v}"));
        }
    }
    Ok(())
}

fn resolve_source(s: &SourceSpec, base: &Path) -> Result<Source, String> {
    let arrival = match &s.arrival {
        ArrivalSpec::Poisson { rate } => {
            positive(&[*rate], "rate", false)?;
            s.arrival.clone()
        }
        ArrivalSpec::Diurnal { rates, period_s } => {
            positive(rates, "rates", true)?;
            positive(&[*period_s], "period_s", false)?;
            if rates.iter().all(|r| *r == 0.0) {
                return Err("every rate is 0".into());
            }
            s.arrival.clone()
        }
        ArrivalSpec::Mmpp { rates, dwell_s } => {
            positive(rates, "rates", true)?;
            positive(dwell_s, "dwell_s", false)?;
            if rates.len() != dwell_s.len() {
                return Err(format!(
                    "{} rates but {} dwell times",
                    rates.len(),
                    dwell_s.len()
                ));
            }
            if rates.iter().all(|r| *r == 0.0) {
                return Err("every rate is 0".into());
            }
            s.arrival.clone()
        }
        ArrivalSpec::Trace { path, speed } => {
            positive(&[*speed], "speed", false)?;
            if !s.lengths.is_empty() {
                return Err("a trace gives its own lengths; remove `lengths`".into());
            }
            ArrivalSpec::Trace {
                path: base.join(path),
                speed: *speed,
            }
        }
    };
    let trace = matches!(arrival, ArrivalSpec::Trace { .. });
    if !trace && s.lengths.is_empty() {
        return Err("has no `lengths` (e.g. `lengths: [{cdf: azure}]`)".into());
    }
    let mut lengths = Vec::with_capacity(s.lengths.len());
    let mut cumulative = 0.0;
    for l in &s.lengths {
        positive(&[l.weight], "weight", false)?;
        cumulative += l.weight;
        lengths.push((cumulative, resolve_lengths(l, base)?));
    }
    Ok(Source {
        name: s.name.clone(),
        arrival,
        lengths,
        model: s.model.clone(),
    })
}

fn resolve_lengths(l: &LengthSpec, base: &Path) -> Result<LengthModel, String> {
    match &l.cdf {
        Some(name) => {
            if l.prompt_tokens.is_some() || l.output_tokens.is_some() || l.output_mean.is_some() {
                return Err(
                    "`cdf` gives total lengths; drop prompt_tokens/output_tokens/output_mean"
                        .into(),
                );
            }
            let cdf = match builtin_cdf(name) {
                Some(cdf) => cdf,
                None => {
                    let path = base.join(name);
                    let text = std::fs::read_to_string(&path).map_err(|e| {
                        format!("cdf `{name}` is neither built in (azure, lmsys, agent_heavy) nor a readable file: {e}")
                    })?;
                    LengthCdf::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))?
                }
            };
            let output_fraction = l.output_fraction.unwrap_or(0.2);
            if !(output_fraction > 0.0 && output_fraction < 1.0) {
                return Err(format!(
                    "output_fraction is {output_fraction}; use a share in (0, 1)"
                ));
            }
            Ok(LengthModel::Cdf {
                cdf,
                output_fraction,
            })
        }
        None => {
            let prompt = l
                .prompt_tokens
                .ok_or("give `cdf`, or `prompt_tokens` with `output_tokens` or `output_mean`")?;
            if l.output_fraction.is_some() {
                return Err("output_fraction goes with `cdf`".into());
            }
            match (l.output_tokens, l.output_mean) {
                (Some(0), _) => return Err("output_tokens is 0".into()),
                (Some(_), None) => {}
                (None, Some(m)) if m.is_finite() && m >= 1.0 => {}
                (None, Some(m)) => return Err(format!("output_mean is {m}; use ≥ 1")),
                _ => return Err("give exactly one of output_tokens and output_mean".into()),
            }
            Ok(LengthModel::Fixed {
                prompt: prompt.max(1),
                output: l.output_tokens,
                output_mean: l.output_mean,
            })
        }
    }
}
