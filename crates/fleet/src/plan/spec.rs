//! The planning file: workload, SLO, GPU options, search grid, objective.

use super::{Candidate, GpuOption, PlannedPool};
use crate::sim::spec::{GpuSpec, SpecError, builtin_cdf, resolve_gpu, yaml_error};
use crate::workload::LengthCdf;
use serde::Deserialize;
use std::path::Path;
use switchyard_wire::TokenCount;

/// A plan request, as written in its YAML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSpec {
    /// Seed of the verifying simulations.
    #[serde(default)]
    pub seed: u64,
    /// The workload.
    pub workload: PlanWorkload,
    /// The SLO: P99 time to first token, ms.
    pub ttft_p99_ms: f64,
    /// Highest slot occupancy a plan may run at (default 0.85).
    #[serde(default = "default_utilization")]
    pub max_utilization: f64,
    /// GPU options (default: a10g, a100, h100).
    #[serde(default = "default_gpus")]
    pub gpus: Vec<GpuChoice>,
    /// Boundaries B to try (default: 1K to 32K in powers of two); halfway points
    /// between neighbours and one pool (B = the longest request) are added.
    #[serde(default = "default_boundaries")]
    pub boundaries: Vec<TokenCount>,
    /// Compression factors γ to try (default 1, 1.25, 1.5, 2).
    #[serde(default = "default_gammas")]
    pub gammas: Vec<f64>,
    /// What to minimize.
    #[serde(default)]
    pub objective: ObjectiveSpec,
    /// Simulated requests to verify each of the best candidates (0: no verification).
    #[serde(default = "default_verify")]
    pub verify_requests: u64,
    /// How many of the best candidates to verify.
    #[serde(default = "default_top")]
    pub verify_top: usize,
    /// Verification simulates at this multiple of the peak rate: 1.2 checks that the
    /// plan still meets the SLO through a 20% surge.
    #[serde(default = "default_headroom")]
    pub verify_headroom: f64,
}

/// The workload to plan for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanWorkload {
    /// Requests per second; a list of 24 plans each hour of a day.
    pub rate: Rates,
    /// Length distributions and their weights.
    pub mix: Vec<MixEntry>,
}

/// One rate, or one per hour.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Rates {
    /// Constant.
    One(f64),
    /// Hourly.
    Hourly(Vec<f64>),
}

/// One length distribution of the mix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixEntry {
    /// `azure`, `lmsys`, `agent_heavy`, or a JSON file.
    pub cdf: String,
    /// Weight (default 1).
    #[serde(default = "one")]
    pub weight: f64,
    /// Share of output tokens (default 0.2).
    #[serde(default = "fraction")]
    pub output_fraction: f64,
}

/// A GPU option.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum GpuChoice {
    /// A name (calibrated GPU).
    Name(String),
    /// A GPU with limits.
    Detailed {
        /// The GPU.
        gpu: GpuSpec,
        /// Most instances available (default unlimited).
        #[serde(default)]
        available: Option<u32>,
        /// Dollars per instance-hour (default: the GPU's price).
        #[serde(default)]
        cost_per_hour: Option<f64>,
    },
}

/// What the planner minimizes: `cost`, `energy`, or a weighted sum
/// `cost × $/h + energy × kW`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum ObjectiveSpec {
    /// `cost` or `energy`.
    Named(String),
    /// Weights.
    Weighted {
        /// Weight of dollars per hour.
        cost: f64,
        /// Weight of kilowatts (dollars you count per kWh).
        energy: f64,
    },
}

impl Default for ObjectiveSpec {
    fn default() -> Self {
        ObjectiveSpec::Named("cost".into())
    }
}

/// Weights of the objective.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Objective {
    /// Per dollar-hour.
    pub cost: f64,
    /// Per kW.
    pub energy: f64,
}

impl Objective {
    /// A candidate's score (lower is better).
    pub fn score(&self, c: &Candidate) -> f64 {
        self.cost * c.cost_per_hour + self.energy * c.watts / 1000.0
    }

    /// A pool's score.
    pub fn pool_score(&self, p: &PlannedPool) -> f64 {
        self.cost * p.cost_per_hour + self.energy * p.sizing.watts / 1000.0
    }
}

/// A checked plan request.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Seed.
    pub seed: u64,
    /// Rates (one, or per hour).
    pub rates: Vec<f64>,
    /// `(cdf, weight, output fraction)`.
    pub mix: Vec<(LengthCdf, f64, f64)>,
    /// Mix names, for plots.
    pub mix_names: Vec<String>,
    /// SLO.
    pub ttft_p99_ms: f64,
    /// Utilization cap.
    pub max_utilization: f64,
    /// GPU options.
    pub gpus: Vec<GpuOption>,
    /// Boundaries.
    pub boundaries: Vec<u32>,
    /// γ values.
    pub gammas: Vec<f64>,
    /// Objective.
    pub objective: Objective,
    /// Verification size.
    pub verify_requests: u64,
    /// Candidates verified.
    pub verify_top: usize,
    /// Multiple of the peak rate verification simulates.
    pub verify_headroom: f64,
}

fn default_headroom() -> f64 {
    1.0
}
fn default_utilization() -> f64 {
    0.85
}
fn default_gpus() -> Vec<GpuChoice> {
    ["a10g", "a100", "h100"]
        .iter()
        .map(|n| GpuChoice::Name((*n).into()))
        .collect()
}
fn default_boundaries() -> Vec<TokenCount> {
    (10..=15).map(|s| TokenCount(1 << s)).collect()
}
fn default_gammas() -> Vec<f64> {
    vec![1.0, 1.25, 1.5, 2.0]
}
fn default_verify() -> u64 {
    100_000
}
fn default_top() -> usize {
    3
}
fn one() -> f64 {
    1.0
}
fn fraction() -> f64 {
    0.2
}

/// Reads and checks a planning file.
pub fn load_plan(path: &Path) -> Result<Resolved, SpecError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| SpecError::unreadable(&file, &e, "the file", "pass an existing YAML file"))?;
    parse_plan(&text, &file, path.parent().unwrap_or(Path::new(".")))
}

/// Parses and checks planning text.
pub fn parse_plan(text: &str, file: &str, base: &Path) -> Result<Resolved, SpecError> {
    let fail = |line: Option<usize>, message: String, help: &str| SpecError {
        file: file.to_owned(),
        line,
        message,
        help: Some(help.to_owned()),
    };
    let spec: PlanSpec = serde_saphyr::from_str(text)
        .map_err(|err| yaml_error(&err, file, "docs/fleet.md#planning"))?;
    let check = |ok: bool, message: String, help: &str| {
        if ok {
            Ok(())
        } else {
            Err(fail(None, message, help))
        }
    };
    let rates = match spec.workload.rate {
        Rates::One(r) => vec![r],
        Rates::Hourly(r) => r,
    };
    check(
        !rates.is_empty() && rates.iter().all(|r| r.is_finite() && *r > 0.0),
        format!("workload.rate {rates:?}"),
        "give positive requests per second",
    )?;
    check(
        spec.ttft_p99_ms.is_finite() && spec.ttft_p99_ms > 0.0,
        format!("ttft_p99_ms is {}", spec.ttft_p99_ms),
        "e.g. ttft_p99_ms: 500",
    )?;
    check(
        spec.max_utilization > 0.0 && spec.max_utilization <= 1.0,
        format!("max_utilization is {}", spec.max_utilization),
        "a share in (0, 1]",
    )?;
    check(
        spec.verify_headroom.is_finite() && (1.0..=10.0).contains(&spec.verify_headroom),
        format!("verify_headroom is {}", spec.verify_headroom),
        "a multiple of the peak rate from 1 to 10, e.g. 1.2 for a 20% surge",
    )?;
    check(
        !spec.workload.mix.is_empty(),
        "workload.mix is empty".into(),
        "e.g. mix: [{cdf: azure}]",
    )?;
    let mut mix = Vec::new();
    let mut mix_names = Vec::new();
    for m in &spec.workload.mix {
        let cdf = match builtin_cdf(&m.cdf) {
            Some(c) => c,
            None => {
                let path = base.join(&m.cdf);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    fail(
                        None,
                        format!("cdf `{}` is neither built in nor readable: {e}", m.cdf),
                        "azure, lmsys, agent_heavy, or a JSON file",
                    )
                })?;
                LengthCdf::from_json(&text).map_err(|e| {
                    fail(
                        None,
                        format!("{}: {e}", path.display()),
                        "a list of [tokens, fraction]",
                    )
                })?
            }
        };
        check(
            m.weight.is_finite() && m.weight > 0.0,
            format!("weight {}", m.weight),
            "a positive weight",
        )?;
        check(
            m.output_fraction > 0.0 && m.output_fraction < 1.0,
            format!("output_fraction {}", m.output_fraction),
            "a share in (0, 1)",
        )?;
        mix.push((cdf, m.weight, m.output_fraction));
        mix_names.push(m.cdf.clone());
    }
    let mut gpus = Vec::new();
    for g in &spec.gpus {
        let (gpu, available, cost) = match g {
            GpuChoice::Name(n) => (GpuSpec::Calibrated(n.clone()), None, None),
            GpuChoice::Detailed {
                gpu,
                available,
                cost_per_hour,
            } => (gpu.clone(), *available, *cost_per_hour),
        };
        let (profile, power, count, name, price) =
            resolve_gpu(&gpu).map_err(|m| fail(None, m, "see docs/fleet.md#pools"))?;
        gpus.push(GpuOption {
            name,
            profile,
            power,
            gpus: count,
            price: cost.unwrap_or(price),
            available: available.unwrap_or(100_000),
        });
    }
    check(!gpus.is_empty(), "no gpus".into(), "e.g. gpus: [h100]")?;
    check(
        spec.gammas.iter().all(|g| g.is_finite() && *g >= 1.0),
        format!("gammas {:?}", spec.gammas),
        "each γ ≥ 1",
    )?;
    let objective = match &spec.objective {
        ObjectiveSpec::Named(n) if n == "cost" => Objective {
            cost: 1.0,
            energy: 0.0,
        },
        ObjectiveSpec::Named(n) if n == "energy" => Objective {
            cost: 0.0,
            energy: 1.0,
        },
        ObjectiveSpec::Named(n) => {
            return Err(fail(
                None,
                format!("unknown objective `{n}`"),
                "cost, energy, or {cost: W, energy: W}",
            ));
        }
        ObjectiveSpec::Weighted { cost, energy } => {
            check(
                *cost >= 0.0 && *energy >= 0.0 && cost + energy > 0.0,
                "objective weights".into(),
                "non-negative, not both 0",
            )?;
            Objective {
                cost: *cost,
                energy: *energy,
            }
        }
    };
    let mut gammas = spec.gammas.clone();
    if gammas.is_empty() {
        gammas.push(1.0);
    }
    Ok(Resolved {
        seed: spec.seed,
        rates,
        mix,
        mix_names,
        ttft_p99_ms: spec.ttft_p99_ms,
        max_utilization: spec.max_utilization,
        gpus,
        boundaries: spec
            .boundaries
            .iter()
            .map(|b| b.0)
            .filter(|b| *b >= 16)
            .collect(),
        gammas,
        objective,
        verify_requests: spec.verify_requests,
        verify_top: spec.verify_top,
        verify_headroom: spec.verify_headroom,
    })
}
