//! What a run reports, per pool and for the fleet: latency percentiles, counts of
//! every outcome, utilization, throughput, cost, energy and SLO attainment; as a
//! table, JSON or CSV.

use super::instance::Instance;
use super::spec::Scenario;
use super::stats::{Percentiles, Recorder, round3};

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}
use serde::Serialize;
use std::fmt::Write as _;

/// One pool's (or the fleet's) results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolReport {
    /// Pool name (`fleet` for the whole).
    pub name: String,
    /// GPU (`mixed` for a fleet of several).
    pub gpu: String,
    /// Instances.
    pub instances: u32,
    /// GPUs.
    pub gpus: u32,
    /// Boundary B (largest request routed here), in tokens.
    pub max_tokens: u32,
    /// Requests routed here (or turned away here).
    pub arrivals: u64,
    /// Requests that generated all their tokens.
    pub completed: u64,
    /// Rejected at arrival: longer than every boundary.
    pub rejected_too_long: u64,
    /// Rejected at arrival: the queue was full.
    pub rejected_queue_full: u64,
    /// Rejected at arrival: no pool serves the model (or the trace's pool is unknown).
    pub rejected_no_pool: u64,
    /// Dropped: waited past `max_queue_wait_s`.
    pub dropped_queue_timeout: u64,
    /// Dropped: preempted more than `max_preemptions` times.
    pub dropped_preempted: u64,
    /// Requests compressed to fit (the `compress` policy).
    pub compressed: u64,
    /// Preemptions.
    pub preemptions: u64,
    /// Time to first token, ms.
    pub ttft_ms: Percentiles,
    /// Time per output token after the first, ms.
    pub tpot_ms: Percentiles,
    /// End-to-end latency, ms.
    pub e2e_ms: Percentiles,
    /// Wait from arrival to first admission into a batch, ms.
    pub queue_wait_ms: Percentiles,
    /// Share of completed requests that waited at all before admission.
    pub waited_share: f64,
    /// Slot occupancy: running sequences over slots, averaged over time.
    pub utilization: f64,
    /// Share of time instances were running iterations.
    pub busy: f64,
    /// Completed requests per second.
    pub throughput_rps: f64,
    /// Output tokens per second.
    pub output_tokens_per_s: f64,
    /// Prompt plus output tokens per second.
    pub tokens_per_s: f64,
    /// Dollars per hour.
    pub cost_per_hour: f64,
    /// Dollars per million tokens (prompt plus output) completed.
    pub usd_per_million_tokens: f64,
    /// Mean power, in watts.
    pub watts: f64,
    /// Output tokens per second per watt (tokens per joule).
    pub tokens_per_watt: f64,
    /// Share of arrivals that completed within every SLO bound (rejected and dropped
    /// requests count as misses); `None` when nothing arrived.
    pub slo_attainment: Option<f64>,
}

/// Little's law, `L = λ·W`, measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Little {
    /// Time-averaged requests in the fleet.
    pub l: f64,
    /// Arrival rate, per second.
    pub lambda_per_s: f64,
    /// Mean time in the fleet, in seconds (0 for rejected requests).
    pub w_s: f64,
    /// |L − λW| / L.
    pub relative_error: f64,
}

impl Little {
    pub(crate) fn new(area_ms: f64, elapsed_ms: f64, arrivals: u64, sojourn_ms: f64) -> Little {
        let seconds = elapsed_ms / 1000.0;
        let l = if seconds > 0.0 {
            area_ms / elapsed_ms
        } else {
            0.0
        };
        let lambda = if seconds > 0.0 {
            arrivals as f64 / seconds
        } else {
            0.0
        };
        let w = if arrivals > 0 {
            sojourn_ms / 1000.0 / arrivals as f64
        } else {
            0.0
        };
        let relative_error = if l > 0.0 {
            (l - lambda * w).abs() / l
        } else {
            0.0
        };
        Little {
            l,
            lambda_per_s: lambda,
            w_s: w,
            relative_error,
        }
    }
}

/// The results of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Simulated time until the fleet drained, in seconds (warm-up included).
    pub simulated_s: f64,
    /// Arrivals measured (after the warm-up).
    pub arrivals: u64,
    /// Arrivals simulated first and left out of every figure.
    pub warmup_requests: u64,
    /// When the warm-up ended, in seconds of simulated time: rates, utilization and
    /// energy are over the time after it.
    pub warmup_s: f64,
    /// Every pool.
    pub pools: Vec<PoolReport>,
    /// The whole fleet.
    pub fleet: PoolReport,
    /// Little's law check.
    pub little: Little,
}

/// The part of a run a report counts: from the end of the warm-up (0 without one)
/// until the fleet drained.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub from_ms: f64,
    pub to_ms: f64,
    /// Arrivals before `from_ms`, left out.
    pub warmup_requests: u64,
}

struct Usage {
    busy_ms: f64,
    occupancy_ms: f64,
    energy_j: f64,
    slots: f64,
    preemptions: u64,
}

impl Report {
    pub(crate) fn build<'a>(
        scenario: &Scenario,
        instances: &[Instance],
        instance_pool: &[u16],
        recorders: impl Iterator<Item = &'a Recorder>,
        fleet: &Recorder,
        window: Window,
        little: Little,
    ) -> Report {
        let elapsed_ms = window.to_ms - window.from_ms;
        let mut usage: Vec<Usage> = scenario
            .pools
            .iter()
            .map(|_| Usage {
                busy_ms: 0.0,
                occupancy_ms: 0.0,
                energy_j: 0.0,
                slots: 0.0,
                preemptions: 0,
            })
            .collect();
        for (inst, &p) in instances.iter().zip(instance_pool) {
            let u = &mut usage[p as usize];
            u.busy_ms += inst.busy_ms;
            u.occupancy_ms += inst.occupancy_ms;
            let idle_ms = (elapsed_ms - inst.busy_ms).max(0.0);
            u.energy_j += inst.busy_energy_j + inst.idle_watts() * idle_ms / 1000.0;
            u.slots += f64::from(inst.slots());
            u.preemptions += inst.preemptions;
        }
        let pools: Vec<PoolReport> = scenario
            .pools
            .iter()
            .zip(recorders)
            .zip(&usage)
            .map(|((pool, rec), u)| {
                let shape = Shape {
                    name: pool.name.clone(),
                    gpu: pool.gpu_name.clone(),
                    instances: pool.instances,
                    gpus: pool.instances * pool.gpus,
                    max_tokens: pool.max_tokens,
                    cost_per_hour: pool.cost_per_hour * f64::from(pool.instances),
                };
                pool_report(shape, rec, u, elapsed_ms)
            })
            .collect();
        let total = Usage {
            busy_ms: usage.iter().map(|u| u.busy_ms).sum(),
            occupancy_ms: usage.iter().map(|u| u.occupancy_ms).sum(),
            energy_j: usage.iter().map(|u| u.energy_j).sum(),
            slots: usage.iter().map(|u| u.slots).sum(),
            preemptions: usage.iter().map(|u| u.preemptions).sum(),
        };
        let gpus: Vec<&str> = scenario.pools.iter().map(|p| p.gpu_name.as_str()).collect();
        let shape = Shape {
            name: "fleet".into(),
            gpu: if gpus.windows(2).all(|w| w[0] == w[1]) {
                gpus[0].to_owned()
            } else {
                "mixed".into()
            },
            instances: pools.iter().map(|p| p.instances).sum(),
            gpus: pools.iter().map(|p| p.gpus).sum(),
            max_tokens: pools.iter().map(|p| p.max_tokens).max().unwrap_or(0),
            cost_per_hour: pools.iter().map(|p| p.cost_per_hour).sum(),
        };
        let fleet = pool_report(shape, fleet, &total, elapsed_ms);
        Report {
            seed: scenario.seed,
            simulated_s: round3(window.to_ms / 1000.0),
            arrivals: fleet.arrivals,
            warmup_requests: window.warmup_requests,
            warmup_s: round3(window.from_ms / 1000.0),
            pools,
            fleet,
            little,
        }
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// One CSV row per pool, then the fleet.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "pool,gpu,instances,gpus,max_tokens,arrivals,completed,rejected,dropped,preemptions,compressed,\
ttft_p50_ms,ttft_p90_ms,ttft_p99_ms,tpot_p50_ms,tpot_p90_ms,tpot_p99_ms,e2e_p50_ms,e2e_p90_ms,e2e_p99_ms,\
wait_p50_ms,wait_p90_ms,wait_p99_ms,utilization,busy,throughput_rps,output_tokens_per_s,tokens_per_s,\
cost_per_hour,usd_per_million_tokens,watts,tokens_per_watt,slo_attainment\n",
        );
        for p in self.pools.iter().chain(std::iter::once(&self.fleet)) {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                p.name,
                p.gpu,
                p.instances,
                p.gpus,
                p.max_tokens,
                p.arrivals,
                p.completed,
                p.rejected_too_long + p.rejected_queue_full + p.rejected_no_pool,
                p.dropped_queue_timeout + p.dropped_preempted,
                p.preemptions,
                p.compressed,
                p.ttft_ms.p50,
                p.ttft_ms.p90,
                p.ttft_ms.p99,
                p.tpot_ms.p50,
                p.tpot_ms.p90,
                p.tpot_ms.p99,
                p.e2e_ms.p50,
                p.e2e_ms.p90,
                p.e2e_ms.p99,
                p.queue_wait_ms.p50,
                p.queue_wait_ms.p90,
                p.queue_wait_ms.p99,
                p.utilization,
                p.busy,
                p.throughput_rps,
                p.output_tokens_per_s,
                p.tokens_per_s,
                p.cost_per_hour,
                p.usd_per_million_tokens,
                p.watts,
                p.tokens_per_watt,
                p.slo_attainment.map_or_else(String::new, |a| a.to_string()),
            );
        }
        out
    }

    /// A table for a terminal.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let rows = || self.pools.iter().chain(std::iter::once(&self.fleet));
        let name_width = rows()
            .map(|p| p.name.chars().count())
            .max()
            .unwrap_or(4)
            .max(4);
        let gpu_width = rows()
            .map(|p| p.gpu.chars().count())
            .max()
            .unwrap_or(3)
            .max(3);
        let _ = writeln!(
            out,
            "{:<name_width$} {:>gpu_width$} {:>5} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>6} {:>9} {:>8} {:>8} {:>7} {:>6}",
            "pool",
            "gpu",
            "inst",
            "done",
            "rej+drop",
            "TTFT p50",
            "TTFT p99",
            "TPOT p99",
            "E2E p99",
            "util",
            "tok/s",
            "$/h",
            "$/Mtok",
            "tok/W",
            "SLO"
        );
        for p in rows() {
            let lost = p.rejected_too_long
                + p.rejected_queue_full
                + p.rejected_no_pool
                + p.dropped_queue_timeout
                + p.dropped_preempted;
            let _ = writeln!(
                out,
                "{:<name_width$} {:>gpu_width$} {:>5} {:>9} {:>9} {:>7.1}ms {:>7.1}ms {:>6.1}ms {:>7.0}ms {:>5.1}% {:>9.0} {:>8.2} {:>8.3} {:>7.2} {:>6}",
                p.name,
                p.gpu,
                p.instances,
                p.completed,
                lost,
                p.ttft_ms.p50,
                p.ttft_ms.p99,
                p.tpot_ms.p99,
                p.e2e_ms.p99,
                p.utilization * 100.0,
                p.tokens_per_s,
                p.cost_per_hour,
                p.usd_per_million_tokens,
                p.tokens_per_watt,
                p.slo_attainment
                    .map_or_else(|| "-".to_owned(), |a| format!("{:.1}%", a * 100.0)),
            );
        }
        if self.warmup_requests > 0 {
            let _ = writeln!(
                out,
                "warm-up: the first {} arrivals ({:.1} s) are not counted",
                self.warmup_requests, self.warmup_s
            );
        }
        let _ = writeln!(
            out,
            "simulated {:.1} s, {} arrivals; Little's law: L = {:.3}, λW = {:.3} (error {:.2e})",
            self.simulated_s,
            self.arrivals,
            self.little.l,
            self.little.lambda_per_s * self.little.w_s,
            self.little.relative_error
        );
        out
    }
}

struct Shape {
    name: String,
    gpu: String,
    instances: u32,
    gpus: u32,
    max_tokens: u32,
    cost_per_hour: f64,
}

fn pool_report(shape: Shape, rec: &Recorder, u: &Usage, elapsed_ms: f64) -> PoolReport {
    let seconds = (elapsed_ms / 1000.0).max(f64::MIN_POSITIVE);
    let hours = seconds / 3600.0;
    let tokens = (rec.prompt_tokens + rec.output_tokens) as f64;
    let cost = shape.cost_per_hour * hours;
    let instances = f64::from(shape.instances.max(1));
    PoolReport {
        name: shape.name,
        gpu: shape.gpu,
        instances: shape.instances,
        gpus: shape.gpus,
        max_tokens: shape.max_tokens,
        arrivals: rec.arrivals,
        completed: rec.completed,
        rejected_too_long: rec.rejected[0],
        rejected_queue_full: rec.rejected[1],
        rejected_no_pool: rec.rejected[2],
        dropped_queue_timeout: rec.dropped[0],
        dropped_preempted: rec.dropped[1],
        compressed: rec.compressed,
        preemptions: u.preemptions,
        ttft_ms: Percentiles::of(&rec.ttft),
        tpot_ms: Percentiles::of(&rec.tpot),
        e2e_ms: Percentiles::of(&rec.e2e),
        queue_wait_ms: Percentiles::of(&rec.wait),
        waited_share: if rec.wait.is_empty() {
            0.0
        } else {
            round6(1.0 - rec.wait.count_between(0, 0) as f64 / rec.wait.len() as f64)
        },
        utilization: round3(if u.slots > 0.0 {
            u.occupancy_ms / (u.slots * elapsed_ms.max(f64::MIN_POSITIVE))
        } else {
            0.0
        }),
        busy: round3(u.busy_ms / (instances * elapsed_ms.max(f64::MIN_POSITIVE))),
        throughput_rps: round3(rec.completed as f64 / seconds),
        output_tokens_per_s: round3(rec.output_tokens as f64 / seconds),
        tokens_per_s: round3(tokens / seconds),
        cost_per_hour: round3(shape.cost_per_hour),
        usd_per_million_tokens: round3(if tokens > 0.0 {
            cost / tokens * 1e6
        } else {
            0.0
        }),
        watts: round3(u.energy_j / seconds),
        tokens_per_watt: round3(if u.energy_j > 0.0 {
            rec.output_tokens as f64 / u.energy_j
        } else {
            0.0
        }),
        slo_attainment: (rec.arrivals > 0)
            .then(|| round3(rec.slo_met as f64 / rec.arrivals as f64)),
    }
}
