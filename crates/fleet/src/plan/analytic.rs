//! The analytical pool model: how many instances a pool needs for a request stream.
//!
//! A pool of `N` instances with `n` slots each serves requests from `c = N·n` slots. A
//! request holds a slot for `k` iterations: `⌈prompt/chunk⌉` of prefill and `output`
//! of decode. An iteration's length depends on how full the batch is: with `j`
//! requests in service it takes `t(j) = W + h·j/N` where `h = H·L/8192` (`L` the
//! time-averaged context). The pool is a birth–death chain on the requests in it
//! (`Occupancy`), which gives the mean batch, the probability of waiting and the mean
//! wait; the wait is scaled by Allen–Cunneen's `(1 + cv²)/2` and its tail taken as
//! exponential at the full pool's drain rate. Prefill is also a throughput limit: an
//! instance prefills at most `chunk` prompt tokens per iteration. P99 TTFT is the P99
//! wait, the prefill queue, and the P99 prompt's prefill iterations at the mean batch.

use super::GpuOption;
use serde::Serialize;

/// The requests one pool serves, summarized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolLoad {
    /// Requests per second.
    pub rate: f64,
    /// Mean prompt tokens.
    pub mean_prompt: f64,
    /// Mean output tokens.
    pub mean_output: f64,
    /// 99th-percentile prompt tokens.
    pub p99_prompt: f64,
    /// Mean square of prompt tokens (the prefill queue's second moment).
    pub mean_square_prompt: f64,
    /// Mean context a running sequence holds, averaged over time: prompt plus half the
    /// output, each request weighted by the iterations it runs.
    pub mean_context: f64,
    /// Mean and mean square of iterations per request, per prefill chunk size.
    pub iterations: IterationMoments,
}

/// Moments of iterations per request (for the GPU's prefill chunk).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct IterationMoments {
    /// E[k].
    pub mean: f64,
    /// E[k²].
    pub mean_square: f64,
}

/// One pool sized: instances and what the model predicts for it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sizing {
    /// Instances.
    pub instances: u32,
    /// Slots per instance.
    pub slots: u32,
    /// Running sequences per instance (mean).
    pub batch: f64,
    /// Slot occupancy.
    pub utilization: f64,
    /// Iteration time at that batch, ms.
    pub iteration_ms: f64,
    /// Predicted P99 TTFT, ms.
    pub ttft_p99_ms: f64,
    /// Predicted mean wait for a slot, ms.
    pub mean_wait_ms: f64,
    /// Power of the pool, watts.
    pub watts: f64,
    /// Output tokens per second per watt.
    pub tokens_per_watt: f64,
}

/// The state of a pool of `instances` under `load`, or `None` when it cannot keep up.
pub fn evaluate(gpu: &GpuOption, window: u32, load: &PoolLoad, instances: u32) -> Option<Sizing> {
    let (profile, power, gpus) = (&gpu.profile, &gpu.power, gpu.gpus);
    let slots = profile.slots(window);
    let n = f64::from(instances);
    let m = &load.iterations;
    let h = profile.h_ms * load.mean_context / 8192.0;
    let occupancy = Occupancy {
        arrivals: load.rate / 1000.0,
        mean_iterations: m.mean,
        w_ms: profile.w_ms,
        h_per_instance: h / n,
        servers: instances.saturating_mul(slots),
    }
    .solve()?;
    let batch = occupancy.busy / n;
    let iteration_ms = profile.w_ms + h * batch;
    // Prefill throughput: chunk tokens per iteration per instance.
    let prefill_share = load.rate / 1000.0 * load.mean_prompt * iteration_ms
        / (n * f64::from(profile.prefill_chunk));
    if prefill_share >= 1.0 {
        return None;
    }
    let cv2 = (m.mean_square / (m.mean * m.mean) - 1.0).max(0.0);
    let correction = (1.0 + cv2) / 2.0;
    let mean_wait_ms = occupancy.mean_wait_ms * correction;
    // The wait for a slot: none with probability 1 − P(wait), else exponential at the
    // full pool's drain rate, stretched by the service variability.
    let slot_wait = WaitTail {
        busy: occupancy.waits.min(1.0),
        mean_if_busy_ms: correction / occupancy.drain_per_ms,
    };
    // Prefill queueing behind other prompts on the same instance: an M/G/1 queue on
    // the chunk budget (FIFO by admission), whose service is a prompt's
    // prompt/chunk iterations. Pollaczek–Khinchine gives its mean wait from the
    // prompts' second moment; its tail is taken as exponential with P(wait) = ρ.
    let chunk = f64::from(profile.prefill_chunk);
    let per_instance = load.rate / 1000.0 / n;
    let service_second_moment = load.mean_square_prompt / (chunk * chunk) * iteration_ms.powi(2);
    let prefill_wait_ms = per_instance * service_second_moment / (2.0 * (1.0 - prefill_share));
    let prefill_wait = WaitTail {
        busy: prefill_share,
        mean_if_busy_ms: if prefill_share > 0.0 {
            prefill_wait_ms / prefill_share
        } else {
            0.0
        },
    };
    // P99 TTFT: the P99 of both waits together, then the P99 prompt's own prefill:
    // its iterations at the pool's mean batch, each also reading the context the
    // prompt has prefilled so far (a chunk more every iteration).
    let prefill_iterations = (load.p99_prompt / chunk).ceil().max(1.0);
    let own_context_ms =
        profile.h_ms / 8192.0 * chunk * prefill_iterations * (prefill_iterations - 1.0) / 2.0;
    // A request joins the batch only when the iteration in progress ends: a residual
    // wait, uniform over an iteration, whenever its instance is running anything
    // (taken as Poisson in the batch size: P = 1 − e^(−batch)). Its P99 is added.
    let running = 1.0 - (-batch).exp();
    let residual_p99_ms = if running > 0.01 {
        iteration_ms * (1.0 - 0.01 / running)
    } else {
        0.0
    };
    let ttft_p99_ms = slot_wait.p99_with(&prefill_wait)
        + residual_p99_ms
        + prefill_iterations * iteration_ms
        + own_context_ms;
    let watts = n * power.watts(batch.round().max(1.0) as usize) * f64::from(gpus);
    let tokens_per_s = load.rate * load.mean_output;
    Some(Sizing {
        instances,
        slots,
        batch,
        utilization: batch / f64::from(slots),
        iteration_ms,
        ttft_p99_ms,
        mean_wait_ms: mean_wait_ms + prefill_wait_ms,
        watts,
        tokens_per_watt: tokens_per_s / watts,
    })
}

/// A wait that is zero with probability `1 − busy`, else exponential with mean
/// `mean_if_busy_ms`.
#[derive(Debug, Clone, Copy)]
struct WaitTail {
    busy: f64,
    mean_if_busy_ms: f64,
}

impl WaitTail {
    /// `P(W > t)`.
    fn exceeds(&self, t: f64) -> f64 {
        if self.busy <= 0.0 || self.mean_if_busy_ms <= 0.0 {
            return 0.0;
        }
        self.busy * (-t / self.mean_if_busy_ms).exp()
    }

    /// The 99th percentile of the sum of this wait and `other`, independent: the sum is
    /// zero, one exponential, or the two in a row (hypoexponential), so its tail is in
    /// closed form and the percentile is found by bisection.
    fn p99_with(&self, other: &WaitTail) -> f64 {
        let (a, b) = (self, other);
        let both = |t: f64| {
            if a.busy <= 0.0
                || b.busy <= 0.0
                || a.mean_if_busy_ms <= 0.0
                || b.mean_if_busy_ms <= 0.0
            {
                return 0.0;
            }
            let (ra, rb) = (1.0 / a.mean_if_busy_ms, 1.0 / b.mean_if_busy_ms);
            let tail = if (ra - rb).abs() < 1e-12 * ra.max(rb) {
                (1.0 + ra * t) * (-ra * t).exp()
            } else {
                (rb * (-ra * t).exp() - ra * (-rb * t).exp()) / (rb - ra)
            };
            a.busy * b.busy * tail
        };
        let exceeds = |t: f64| {
            a.exceeds(t) * (1.0 - b.busy.clamp(0.0, 1.0))
                + b.exceeds(t) * (1.0 - a.busy.clamp(0.0, 1.0))
                + both(t)
        };
        if exceeds(0.0) <= 0.01 {
            return 0.0;
        }
        let mut high = (a.mean_if_busy_ms + b.mean_if_busy_ms).max(1.0);
        while exceeds(high) > 0.01 {
            high *= 2.0;
        }
        let mut low = 0.0;
        for _ in 0..60 {
            let mid = (low + high) / 2.0;
            if exceeds(mid) > 0.01 {
                low = mid;
            } else {
                high = mid;
            }
        }
        high
    }
}

/// The pool as a birth–death chain on the number of requests `j` in it. Requests
/// arrive at λ; with `j` in service (at most `c`, one per slot) each instance runs a
/// batch of `j/N` and an iteration takes `t(j) = W + h·j/N`, so requests leave at
/// `μ_j = min(j, c) / (E[k]·t(min(j, c)))`: the pool slows down as it fills, which a
/// fixed-rate M/M/c misses. The stationary weights are
/// `log w_j = Σ_{i≤j} log(λ·E[k]·t(i)/i)`, the sum of `log t(i)` taken in closed form
/// (midpoint rule) and `log j!` by Stirling's series, so one evaluation costs
/// O(√mode) terms around the mode plus a geometric tail beyond `c`.
struct Occupancy {
    arrivals: f64,
    mean_iterations: f64,
    w_ms: f64,
    h_per_instance: f64,
    servers: u32,
}

struct OccupancyResult {
    /// Mean requests in service (busy slots).
    busy: f64,
    /// Probability an arrival finds every slot busy.
    waits: f64,
    /// Mean wait for a slot, ms (exponential service).
    mean_wait_ms: f64,
    /// Rate at which the queue drains when every slot is busy, per ms (μ_c − λ).
    drain_per_ms: f64,
}

impl Occupancy {
    /// `Σ_{i=1..j} log t(i)`, by the midpoint rule on `∫ log(W + h·x) dx`.
    fn log_t_sum(&self, j: f64) -> f64 {
        let (w, h) = (self.w_ms, self.h_per_instance);
        if h <= 0.0 {
            return j * w.ln();
        }
        let antiderivative = |x: f64| {
            let y = w + h * x;
            (y * y.ln() - y) / h
        };
        antiderivative(j + 0.5) - antiderivative(0.5)
    }

    fn log_weight(&self, j: f64) -> f64 {
        j * (self.arrivals * self.mean_iterations).ln() + self.log_t_sum(j) - ln_factorial(j)
    }

    fn solve(&self) -> Option<OccupancyResult> {
        let c = f64::from(self.servers.max(1));
        let t_full = self.w_ms + self.h_per_instance * c;
        let full_rate = c / (self.mean_iterations * t_full);
        if self.arrivals >= full_rate {
            return None;
        }
        let ratio = self.arrivals / full_rate;
        // The mode: where λ·E[k]·t(j) = j.
        let load = self.arrivals * self.mean_iterations;
        let mode = if 1.0 - load * self.h_per_instance > 0.0 {
            (load * self.w_ms / (1.0 - load * self.h_per_instance)).min(c)
        } else {
            c
        };
        let spread = 12.0 * mode.max(1.0).sqrt() + 30.0;
        let low = (mode - spread).max(0.0).floor() as u64;
        let high = ((mode + spread).min(c)).ceil() as u64;
        let peak = self.log_weight(mode.floor());
        let (mut total, mut busy) = (0.0, 0.0);
        for j in low..=high {
            let j = j as f64;
            let weight = (self.log_weight(j) - peak).exp();
            total += weight;
            busy += j * weight;
        }
        // Beyond c the chain is geometric with ratio λ/μ_c; `high == c` when the window
        // reaches it, else the tail is negligible.
        let (mut tail, mut queued) = (0.0, 0.0);
        if high as f64 >= c {
            let at_c = (self.log_weight(c) - peak).exp();
            tail = at_c / (1.0 - ratio);
            queued = at_c * ratio / ((1.0 - ratio) * (1.0 - ratio));
            // `total` already holds w_c once; add the states above it.
            total += at_c * ratio / (1.0 - ratio);
            busy += c * at_c * ratio / (1.0 - ratio);
        }
        Some(OccupancyResult {
            busy: busy / total,
            waits: tail / total,
            mean_wait_ms: queued / total / self.arrivals,
            drain_per_ms: full_rate - self.arrivals,
        })
    }
}

/// `ln j!`: exact below 16, Stirling's series above.
fn ln_factorial(j: f64) -> f64 {
    if j < 16.0 {
        return (2..=(j as u32)).map(|i| f64::from(i).ln()).sum();
    }
    j * j.ln() - j + 0.5 * (2.0 * std::f64::consts::PI * j).ln() + 1.0 / (12.0 * j)
        - 1.0 / (360.0 * j * j * j)
}

/// The fewest instances (up to the GPU's availability) that meet `ttft_p99_ms` at
/// utilization at most `max_utilization`; `None` if even all of them do not.
pub fn size(
    gpu: &GpuOption,
    window: u32,
    load: &PoolLoad,
    ttft_p99_ms: f64,
    max_utilization: f64,
) -> Option<Sizing> {
    let limit = gpu.available;
    if load.rate <= 0.0 {
        return None;
    }
    let ok = |n: u32| {
        evaluate(gpu, window, load, n)
            .filter(|s| s.ttft_p99_ms <= ttft_p99_ms && s.utilization <= max_utilization)
    };
    // Find a feasible upper bound by doubling, then bisect: feasibility is monotone
    // in N (more instances, smaller batches, shorter iterations and waits).
    let mut high = 1u32;
    while ok(high).is_none() {
        if high >= limit {
            return None;
        }
        high = high.saturating_mul(2).min(limit);
    }
    let mut low = high / 2;
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if ok(mid).is_some() {
            high = mid;
        } else {
            low = mid;
        }
    }
    ok(high)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::erlang::erlang_c;
    use crate::gpu::GpuKind;

    fn h100() -> GpuOption {
        GpuOption {
            name: "h100".into(),
            profile: GpuKind::H100.profile(),
            power: GpuKind::H100.power(),
            gpus: 1,
            price: 3.0,
            available: 10_000,
        }
    }

    fn load(rate: f64) -> PoolLoad {
        PoolLoad {
            rate,
            mean_prompt: 800.0,
            mean_output: 200.0,
            p99_prompt: 3000.0,
            mean_square_prompt: 800.0 * 800.0 * 2.0,
            mean_context: 900.0,
            iterations: IterationMoments {
                mean: 201.0,
                mean_square: 201.0 * 201.0 * 1.5,
            },
        }
    }

    #[test]
    fn with_a_constant_iteration_the_chain_is_erlang_c() {
        for (c, a) in [(4u32, 3.2), (128, 115.0), (3000, 2900.0)] {
            let chain = Occupancy {
                arrivals: a / 1000.0,
                mean_iterations: 1000.0,
                w_ms: 1.0,
                h_per_instance: 0.0,
                servers: c,
            }
            .solve()
            .unwrap();
            let want = erlang_c(c, a);
            assert!(
                (chain.waits - want).abs() < 1e-3 * want.max(0.01),
                "c {c}: {} vs {want}",
                chain.waits
            );
            let wait = crate::erlang::mmc_mean_wait(c, a, 1000.0);
            assert!(
                (chain.mean_wait_ms - wait).abs() / wait < 1e-3,
                "{} vs {wait}",
                chain.mean_wait_ms
            );
            assert!((chain.busy - a).abs() / a < 1e-3, "{} vs {a}", chain.busy);
        }
        assert!(
            (ln_factorial(20.0) - (1..=20).map(|i| f64::from(i).ln()).sum::<f64>()).abs() < 1e-9
        );
    }

    #[test]
    fn a_pool_that_slows_as_it_fills_waits_more_than_erlang_c_says() {
        // Iterations three times slower at a full batch than an empty one.
        let chain = |h: f64| {
            Occupancy {
                arrivals: 0.09,
                mean_iterations: 1000.0,
                w_ms: 1.0,
                h_per_instance: h,
                servers: 128,
            }
            .solve()
        };
        let flat = chain(0.0).unwrap();
        let slowing = chain(0.002).unwrap();
        assert!(slowing.busy > flat.busy && slowing.waits > flat.waits);
        assert!(chain(0.02).is_none(), "beyond the full-batch throughput");
    }

    #[test]
    fn more_load_needs_more_instances_and_a_tighter_slo_too() {
        let gpu = h100();
        let sized = |rate, slo| size(&gpu, 4096, &load(rate), slo, 0.85).unwrap();
        let base = sized(100.0, 1000.0);
        assert!(sized(400.0, 1000.0).instances > base.instances);
        assert!(sized(100.0, 150.0).instances >= base.instances);
        assert!(base.ttft_p99_ms <= 1000.0 && base.utilization <= 0.85);
        // One fewer instance misses a bound or cannot keep up.
        let fewer = evaluate(&gpu, 4096, &load(100.0), base.instances - 1);
        assert!(fewer.is_none_or(|s| s.ttft_p99_ms > 1000.0 || s.utilization > 0.85));
    }
}
