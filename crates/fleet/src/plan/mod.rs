//! The fleet planner: the cheapest (or most efficient) fleet that meets a TTFT SLO.
//!
//! The workload (one CDF or a weighted mix, split into prompt and output) is sampled
//! once at evenly spaced quantiles. A candidate is a boundary B, a compression factor
//! γ and a GPU for each pool: requests of at most B tokens go to the short pool,
//! those up to γ·B are compressed into it, the rest go to a long pool whose window
//! holds the longest request (B at the longest request means one pool). Each pool is
//! sized analytically ([`analytic`]); candidates are ranked by the objective (cost,
//! energy or a weighted mix), and the best are verified by simulation. A day of
//! hourly rates gets a plan per hour, compared with one static plan for the peak.
//! Disaggregated prefill/decode pools are sized side by side.

pub mod analytic;
mod disaggregated;
pub mod spec;
pub mod svg;

pub use disaggregated::{Disaggregated, disaggregated};
pub use spec::{PlanSpec, load_plan, parse_plan};

use crate::gpu::GpuProfile;
use crate::power::PowerProfile;
use crate::sim::spec::{
    ArrivalSpec, LengthModel, Pool, RoutingPolicy, RoutingSpec, Scenario, SloSpec, Source,
};
use crate::workload::LengthCdf;
use analytic::{IterationMoments, PoolLoad, Sizing, size};
use serde::Serialize;

/// Quantile samples of the workload.
const SAMPLES: usize = 20_000;

/// Fewest simulated arrivals per instance when a candidate is verified.
const VERIFY_PER_INSTANCE: u64 = 2_000;
/// Arrivals per instance simulated before verification measures.
const VERIFY_WARMUP_PER_INSTANCE: u64 = 500;

/// One GPU option for a pool.
#[derive(Debug, Clone)]
pub struct GpuOption {
    /// Its name.
    pub name: String,
    /// Instance profile.
    pub profile: GpuProfile,
    /// Per-GPU power curve.
    pub power: PowerProfile,
    /// GPUs per instance.
    pub gpus: u32,
    /// Dollars per instance-hour.
    pub price: f64,
    /// Most instances to be had (node availability).
    pub available: u32,
}

/// A sampled request: `(total, output)` tokens.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Prompt and output tokens, sorted by total.
    pub requests: Vec<(u32, u32)>,
    /// The longest request.
    pub longest: u32,
}

impl Sample {
    /// Samples a mix of `(cdf, weight, output_fraction)` at evenly spaced quantiles
    /// (stratified per component, so the mix is reproduced exactly).
    pub fn new(mix: &[(LengthCdf, f64, f64)]) -> Sample {
        let total_weight: f64 = mix.iter().map(|m| m.1).sum();
        let mut requests = Vec::with_capacity(SAMPLES + mix.len());
        for (cdf, weight, fraction) in mix {
            let n = ((SAMPLES as f64) * weight / total_weight).round().max(1.0) as usize;
            for i in 0..n {
                let total = cdf.quantile((i as f64 + 0.5) / n as f64).max(2);
                let output = ((f64::from(total) * fraction).round() as u32).clamp(1, total - 1);
                requests.push((total - output, output));
            }
        }
        requests.sort_by_key(|(p, o)| (p + o, *o));
        let longest = mix.iter().map(|m| m.0.max_tokens()).max().unwrap_or(1);
        Sample { requests, longest }
    }

    /// The load of the requests in `range` (by index), compressed to `compress_to`
    /// total tokens where given, at `rate` requests per second for the whole sample.
    fn load(
        &self,
        range: std::ops::Range<usize>,
        compress_to: Option<u32>,
        rate: f64,
        chunk: u32,
    ) -> Option<PoolLoad> {
        let slice = &self.requests[range];
        if slice.is_empty() {
            return None;
        }
        let n = slice.len() as f64;
        let (mut prompt, mut output, mut k, mut k2, mut context) = (0.0, 0.0, 0.0, 0.0, 0.0);
        let mut prompt2 = 0.0;
        let mut prompts = Vec::with_capacity(slice.len());
        for &(p, o) in slice {
            let p = compress_to.map_or(p, |b| b.saturating_sub(o).clamp(1, p));
            let iterations = f64::from(p.div_ceil(chunk) + o);
            prompt += f64::from(p);
            prompt2 += f64::from(p) * f64::from(p);
            output += f64::from(o);
            k += iterations;
            k2 += iterations * iterations;
            // Time-averaged context: each request counts for the iterations it runs.
            context += iterations * (f64::from(p) + f64::from(o) / 2.0);
            prompts.push(p);
        }
        let p99_prompt = p99(prompts);
        Some(PoolLoad {
            rate: rate * n / self.requests.len() as f64,
            mean_prompt: prompt / n,
            mean_output: output / n,
            p99_prompt,
            mean_square_prompt: prompt2 / n,
            mean_context: context / k,
            iterations: IterationMoments {
                mean: k / n,
                mean_square: k2 / n,
            },
        })
    }

    /// Index of the first request longer than `tokens`.
    fn split(&self, tokens: f64) -> usize {
        self.requests
            .partition_point(|(p, o)| f64::from(p + o) <= tokens)
    }
}

/// The 99th percentile of some sampled token counts (0 for none). The sample's points
/// stand at evenly spaced quantiles, `(i + ½)/n`, so the percentile is interpolated
/// between the two points around it: in a sparse tail (a pool that takes only the
/// longest requests holds few points) the next point up can be far away.
pub(crate) fn p99(mut values: Vec<u32>) -> f64 {
    values.sort_unstable();
    let Some(&last) = values.last() else {
        return 0.0;
    };
    let at = (values.len() as f64 * 0.99 - 0.5).max(0.0);
    let below = at.floor() as usize;
    let Some(&next) = values.get(below + 1) else {
        return f64::from(last);
    };
    let low = f64::from(values[below]);
    low + (f64::from(next) - low) * (at - below as f64)
}

/// One sized pool of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedPool {
    /// `short` or `long`.
    pub role: String,
    /// The GPU.
    pub gpu: String,
    /// Index of the GPU among the plan's options.
    #[serde(skip)]
    pub option: usize,
    /// Context window, tokens.
    pub context_window: u32,
    /// Share of requests it serves.
    pub share: f64,
    /// Requests per second.
    pub rate: f64,
    /// The sizing.
    pub sizing: Sizing,
    /// Dollars per hour.
    pub cost_per_hour: f64,
}

/// One candidate fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// Boundary B, tokens (the longest request: one pool).
    pub boundary: u32,
    /// Compression factor γ.
    pub gamma: f64,
    /// Its pools.
    pub pools: Vec<PlannedPool>,
    /// Dollars per hour.
    pub cost_per_hour: f64,
    /// Watts.
    pub watts: f64,
    /// Output tokens per second per watt.
    pub tokens_per_watt: f64,
    /// Predicted P99 TTFT over the fleet (the worse pool), ms.
    pub ttft_p99_ms: f64,
    /// The objective's value (lower is better).
    pub score: f64,
}

/// What simulation said of a candidate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    /// Boundary of the candidate verified.
    pub boundary: u32,
    /// γ of the candidate verified.
    pub gamma: f64,
    /// Simulated P99 TTFT of the slowest pool, ms.
    pub ttft_p99_ms: f64,
    /// Simulated share of requests within the SLO.
    pub slo_attainment: f64,
    /// Simulated tokens per watt.
    pub tokens_per_watt: f64,
    /// Whether the simulated P99 TTFT meets the SLO.
    pub meets_slo: bool,
    /// Arrivals measured.
    pub requests: u64,
    /// Arrivals simulated first and not measured.
    pub warmup_requests: u64,
}

/// The plan for one hour of a day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HourPlan {
    /// Hour (0–23).
    pub hour: usize,
    /// Requests per second.
    pub rate: f64,
    /// Boundary chosen.
    pub boundary: u32,
    /// γ chosen.
    pub gamma: f64,
    /// Instances per pool (short, long).
    pub instances: Vec<u32>,
    /// Dollars per hour.
    pub cost_per_hour: f64,
}

/// The planner's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The best candidate (after verification).
    pub best: Candidate,
    /// Every feasible candidate, best first.
    pub candidates: Vec<Candidate>,
    /// Simulation of the best few.
    pub verified: Vec<Verification>,
    /// Whether `best` met the SLO in simulation: `None` without verification,
    /// `Some(false)` when no verified candidate did (`best` is then the analytical
    /// best, unproven).
    pub best_verified: Option<bool>,
    /// Disaggregated prefill/decode at the peak rate, for comparison.
    pub disaggregated: Option<Disaggregated>,
    /// A plan per hour when the workload has hourly rates.
    pub hours: Vec<HourPlan>,
    /// Cost of a day with one static plan for the peak.
    pub static_day_cost: f64,
    /// Cost of a day re-planned every hour.
    pub follow_day_cost: f64,
    /// Wall time of the analytical search, ms.
    pub search_ms: f64,
}

/// A problem that leaves no plan.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

/// Plans `spec`: search, verification, day, disaggregated comparison.
pub fn plan(spec: &spec::Resolved) -> Result<Plan, PlanError> {
    let started = std::time::Instant::now();
    let sample = Sample::new(&spec.mix);
    let peak = spec.rates.iter().copied().fold(0.0, f64::max);
    let candidates = search(spec, &sample, peak);
    let search_ms = started.elapsed().as_secs_f64() * 1000.0;
    if candidates.is_empty() {
        return Err(PlanError(format!(
            "no fleet of the GPUs given meets a P99 TTFT of {} ms at {peak} requests/s within the availability limits",
            spec.ttft_p99_ms
        )));
    }
    let mut verified = Vec::new();
    let mut best = candidates[0].clone();
    let mut best_verified = None;
    if spec.verify_requests > 0 {
        let mut chosen = None;
        // The budget goes to distinct fleets: candidates that differ only in where the
        // boundary sits (the same GPUs and instance counts) are the same hardware,
        // and the best-ranked of them stands for the rest.
        let mut seen: Vec<Vec<(usize, u32)>> = Vec::new();
        let distinct = candidates.iter().filter(|c| {
            let fleet: Vec<(usize, u32)> = c
                .pools
                .iter()
                .map(|p| (p.option, p.sizing.instances))
                .collect();
            if seen.contains(&fleet) {
                return false;
            }
            seen.push(fleet);
            true
        });
        for c in distinct.take(spec.verify_top.max(1)) {
            let v = verify(spec, c, peak * spec.verify_headroom);
            if v.meets_slo && chosen.is_none() {
                chosen = Some(c.clone());
            }
            verified.push(v);
        }
        best_verified = Some(chosen.is_some());
        if let Some(c) = chosen {
            best = c;
        }
    }
    let mut hours = Vec::new();
    let (mut static_day_cost, mut follow_day_cost) = (0.0, 0.0);
    if spec.rates.len() > 1 {
        for (hour, &rate) in spec.rates.iter().enumerate() {
            let best_hour = search(spec, &sample, rate).into_iter().next();
            let Some(c) = best_hour else {
                return Err(PlanError(format!(
                    "hour {hour}: no fleet meets the SLO at {rate} requests/s"
                )));
            };
            follow_day_cost += c.cost_per_hour;
            hours.push(HourPlan {
                hour,
                rate,
                boundary: c.boundary,
                gamma: c.gamma,
                instances: c.pools.iter().map(|p| p.sizing.instances).collect(),
                cost_per_hour: c.cost_per_hour,
            });
        }
        static_day_cost = best.cost_per_hour * spec.rates.len() as f64;
    }
    let disaggregated = disaggregated(spec, &sample, peak);
    Ok(Plan {
        best,
        candidates,
        verified,
        best_verified,
        disaggregated,
        hours,
        static_day_cost,
        follow_day_cost,
        search_ms,
    })
}

/// Every feasible candidate at `rate`, best first.
pub fn search(spec: &spec::Resolved, sample: &Sample, rate: f64) -> Vec<Candidate> {
    let longest = sample.longest;
    let mut boundaries: Vec<u32> = spec
        .boundaries
        .iter()
        .copied()
        .filter(|b| *b < longest)
        .collect();
    boundaries.push(longest);
    // Halfway points between neighbouring grid boundaries.
    let grid = boundaries.clone();
    for pair in grid.windows(2) {
        let mid = (pair[0] + pair[1]) / 2;
        if mid > pair[0] && mid < pair[1] {
            boundaries.push(mid);
        }
    }
    boundaries.sort_unstable();
    boundaries.dedup();
    let mut out = Vec::new();
    let evaluate = |b: u32, out: &mut Vec<Candidate>| {
        let gammas: &[f64] = if b >= longest { &[1.0] } else { &spec.gammas };
        for &gamma in gammas {
            if let Some(c) = candidate(spec, sample, rate, b, gamma) {
                out.push(c);
            }
        }
    };
    for &b in &boundaries {
        evaluate(b, &mut out);
    }
    // Refine around the best: midpoints to its neighbours, on a 256-token grid,
    // until they meet.
    for _ in 0..4 {
        let Some(best) = out
            .iter()
            .min_by(|a, b| a.score.total_cmp(&b.score))
            .map(|c| c.boundary)
        else {
            break;
        };
        let below = boundaries.iter().copied().filter(|b| *b < best).max();
        let above = boundaries.iter().copied().filter(|b| *b > best).min();
        let mut added = false;
        for neighbour in [below, above].into_iter().flatten() {
            let mid = (best + neighbour) / 2 / 256 * 256;
            if mid > best.min(neighbour) && mid < best.max(neighbour) && !boundaries.contains(&mid)
            {
                boundaries.push(mid);
                evaluate(mid, &mut out);
                added = true;
            }
        }
        if !added {
            break;
        }
    }
    out.sort_by(|a, b| {
        a.score
            .total_cmp(&b.score)
            .then(a.boundary.cmp(&b.boundary))
    });
    out
}

/// What each pool of a candidate serves: its role, its window, and the ranges of the
/// sample it takes (compressed to the window where given).
type Parts = Vec<(std::ops::Range<usize>, Option<u32>)>;

fn roles(sample: &Sample, boundary: u32, gamma: f64) -> [(&'static str, u32, Parts); 2] {
    let short_end = sample.split(f64::from(boundary));
    let compressed_end = sample.split(f64::from(boundary) * gamma).max(short_end);
    let total = sample.requests.len();
    [
        (
            "short",
            boundary,
            vec![
                (0..short_end, None),
                (short_end..compressed_end, Some(boundary)),
            ],
        ),
        ("long", sample.longest, vec![(compressed_end..total, None)]),
    ]
}

/// What the analytical model predicts for each pool of `c` at its instance counts (for
/// comparing the model with simulation at loads the search did not pick).
pub fn predict(
    spec: &spec::Resolved,
    sample: &Sample,
    c: &Candidate,
    rate: f64,
) -> Vec<Option<Sizing>> {
    let roles = roles(sample, c.boundary, c.gamma);
    c.pools
        .iter()
        .map(|p| {
            let gpu = spec.gpus.get(p.option)?;
            let (_, window, parts) = roles.iter().find(|(role, _, _)| *role == p.role)?;
            let load = merged_load(sample, parts, rate, gpu.profile.prefill_chunk)?;
            analytic::evaluate(gpu, *window, &load, p.sizing.instances)
        })
        .collect()
}

fn candidate(
    spec: &spec::Resolved,
    sample: &Sample,
    rate: f64,
    boundary: u32,
    gamma: f64,
) -> Option<Candidate> {
    let total = sample.requests.len();
    let mut pools = Vec::new();
    for (role, window, parts) in roles(sample, boundary, gamma) {
        let count: usize = parts.iter().map(|(r, _)| r.len()).sum();
        if count == 0 {
            if window > boundary {
                // The sample holds nothing above B, but the workload does (its longest
                // request is longer): a fleet without the long pool would reject them.
                return None;
            }
            continue;
        }
        // The best GPU for this pool under the objective.
        let mut best: Option<PlannedPool> = None;
        for (option, gpu) in spec.gpus.iter().enumerate() {
            let load = merged_load(sample, &parts, rate, gpu.profile.prefill_chunk)?;
            if u64::from(window).div_ceil(16) > u64::from(gpu.profile.kv_blocks) {
                continue;
            }
            let Some(sizing) = size(gpu, window, &load, spec.ttft_p99_ms, spec.max_utilization)
            else {
                continue;
            };
            let pool = PlannedPool {
                role: role.into(),
                gpu: gpu.name.clone(),
                option,
                context_window: window,
                share: count as f64 / total as f64,
                rate: load.rate,
                cost_per_hour: gpu.price * f64::from(sizing.instances),
                sizing,
            };
            let better = best
                .as_ref()
                .is_none_or(|b| spec.objective.pool_score(&pool) < spec.objective.pool_score(b));
            if better {
                best = Some(pool);
            }
        }
        pools.push(best?);
    }
    let cost: f64 = pools.iter().map(|p| p.cost_per_hour).sum();
    let watts: f64 = pools.iter().map(|p| p.sizing.watts).sum();
    let tokens: f64 = pools
        .iter()
        .map(|p| p.sizing.tokens_per_watt * p.sizing.watts)
        .sum();
    let ttft = pools
        .iter()
        .map(|p| p.sizing.ttft_p99_ms)
        .fold(0.0, f64::max);
    let mut c = Candidate {
        boundary,
        gamma,
        pools,
        cost_per_hour: cost,
        watts,
        tokens_per_watt: if watts > 0.0 { tokens / watts } else { 0.0 },
        ttft_p99_ms: ttft,
        score: 0.0,
    };
    c.score = spec.objective.score(&c);
    Some(c)
}

fn merged_load(
    sample: &Sample,
    parts: &[(std::ops::Range<usize>, Option<u32>)],
    rate: f64,
    chunk: u32,
) -> Option<PoolLoad> {
    let loads: Vec<PoolLoad> = parts
        .iter()
        .filter_map(|(r, c)| sample.load(r.clone(), *c, rate, chunk))
        .collect();
    let total: f64 = loads.iter().map(|l| l.rate).sum();
    if total <= 0.0 {
        return None;
    }
    let w = |f: &dyn Fn(&PoolLoad) -> f64| loads.iter().map(|l| l.rate / total * f(l)).sum::<f64>();
    Some(PoolLoad {
        rate: total,
        mean_prompt: w(&|l| l.mean_prompt),
        mean_output: w(&|l| l.mean_output),
        p99_prompt: loads.iter().map(|l| l.p99_prompt).fold(0.0, f64::max),
        mean_square_prompt: w(&|l| l.mean_square_prompt),
        mean_context: loads
            .iter()
            .map(|l| l.rate * l.iterations.mean * l.mean_context)
            .sum::<f64>()
            / loads
                .iter()
                .map(|l| l.rate * l.iterations.mean)
                .sum::<f64>(),
        iterations: IterationMoments {
            mean: w(&|l| l.iterations.mean),
            mean_square: w(&|l| l.iterations.mean_square),
        },
    })
}

/// Simulates a candidate at `rate` and compares its P99 TTFT with the SLO.
pub fn verify(spec: &spec::Resolved, c: &Candidate, rate: f64) -> Verification {
    let scenario = scenario_of(spec, c, rate);
    let warmup_requests = scenario.warmup_requests;
    let requests = scenario
        .requests
        .unwrap_or(0)
        .saturating_sub(warmup_requests);
    let report = crate::sim::simulate(scenario);
    match report {
        Ok(r) => {
            // Every pool must meet the SLO: a fleet-wide P99 would hide a small pool.
            let worst = r.pools.iter().map(|p| p.ttft_ms.p99).fold(0.0, f64::max);
            Verification {
                boundary: c.boundary,
                gamma: c.gamma,
                ttft_p99_ms: worst,
                slo_attainment: r.fleet.slo_attainment.unwrap_or(0.0),
                tokens_per_watt: r.fleet.tokens_per_watt,
                meets_slo: worst <= spec.ttft_p99_ms && r.fleet.completed == r.arrivals,
                requests: r.arrivals,
                warmup_requests: r.warmup_requests,
            }
        }
        Err(_) => Verification {
            boundary: c.boundary,
            gamma: c.gamma,
            ttft_p99_ms: f64::INFINITY,
            slo_attainment: 0.0,
            tokens_per_watt: 0.0,
            meets_slo: false,
            requests,
            warmup_requests,
        },
    }
}

/// The simulation of a candidate: its pools behind length (or compress) routing.
pub fn scenario_of(spec: &spec::Resolved, c: &Candidate, rate: f64) -> Scenario {
    let pools = c
        .pools
        .iter()
        .filter_map(|p| {
            let gpu = spec.gpus.get(p.option)?;
            Some(Pool {
                gpus: gpu.gpus,
                gpu_name: gpu.name.clone(),
                max_queue: u32::MAX,
                cost_per_hour: gpu.price,
                ..Pool::new(
                    p.role.clone(),
                    gpu.profile,
                    gpu.power,
                    p.sizing.instances,
                    p.context_window,
                )
            })
        })
        .collect();
    let total_weight: f64 = spec.mix.iter().map(|m| m.1).sum();
    let mut cumulative = 0.0;
    let lengths = spec
        .mix
        .iter()
        .map(|(cdf, weight, fraction)| {
            cumulative += weight / total_weight;
            (
                cumulative,
                LengthModel::Cdf {
                    cdf: cdf.clone(),
                    output_fraction: *fraction,
                },
            )
        })
        .collect();
    // At least 2,000 measured arrivals per instance, after a warm-up of 500 per
    // instance (and a tenth of the measured ones): the fleet starts empty, and its
    // first requests find short queues.
    let instances: u64 = c.pools.iter().map(|p| u64::from(p.sizing.instances)).sum();
    let measured = spec
        .verify_requests
        .max(instances.saturating_mul(VERIFY_PER_INSTANCE));
    let warmup = instances
        .saturating_mul(VERIFY_WARMUP_PER_INSTANCE)
        .max(measured / 10);
    Scenario {
        seed: spec.seed,
        requests: Some(measured.saturating_add(warmup)),
        duration_ms: None,
        warmup_requests: warmup,
        slo: SloSpec {
            ttft_ms: Some(spec.ttft_p99_ms),
            tpot_ms: None,
            e2e_ms: None,
        },
        routing: RoutingSpec {
            policy: if c.gamma > 1.0 {
                RoutingPolicy::Compress
            } else {
                RoutingPolicy::Length
            },
            gamma: Some(c.gamma),
            spill_at: None,
        },
        pools,
        sources: vec![Source {
            name: "plan".into(),
            arrival: ArrivalSpec::Poisson { rate },
            lengths,
            model: None,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::p99;

    #[test]
    fn the_p99_of_a_sample_is_read_between_its_quantile_points() {
        assert_eq!(p99(Vec::new()), 0.0);
        assert_eq!(p99(vec![7]), 7.0);
        // 100 points at quantiles (i + ½)/100: the 99th percentile lies at point 98.5.
        let hundred: Vec<u32> = (1..=100).collect();
        assert!((p99(hundred) - 99.5).abs() < 1e-9);
        // A sparse tail: the last of 121 points far above the rest. The percentile sits
        // between them, not on the lower one.
        let mut tail: Vec<u32> = (0..120).map(|i| 6000 + i).collect();
        tail.push(10_766);
        let got = p99(tail);
        assert!(got > 6200.0 && got < 10_766.0, "{got}");
    }
}
