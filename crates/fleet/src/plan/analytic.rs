//! The analytical pool model: how many instances a pool needs for a request stream.
//!
//! A pool of `N` instances with `n` slots each is an M/G/c queue with `c = N·n`
//! servers, a slot being a server. A request holds its slot for `k` iterations:
//! `⌈prompt/chunk⌉` of prefill and `output` of decode. An iteration's length depends
//! on how full the batch is: with `b` sequences running per instance at a mean
//! context `L`, it takes `t(b) = W + h·b` where `h = H·L/8192`. By Little's law
//! `b = λ·E[k]·t(b)/N`, so `b = λ·E[k]·W / (N − λ·E[k]·h)`; the service time is
//! then `S = k·t(b)` with mean `E[k]·t(b)` and squared coefficient of variation
//! `Var[k]/E[k]²`. The wait follows Erlang-C with the Allen–Cunneen correction, its
//! tail taken as exponential (`P(W > x) = C·e^{−x/θ}`, `θ = E[W]/C`). Prefill is also
//! a throughput limit: an instance prefills at most `chunk` prompt tokens per
//! iteration, so `N ≥ λ·E[prompt]·t(b)/chunk`. P99 TTFT is the P99 wait plus the P99
//! prompt's prefill iterations (and one for its first token) at `t(b)`.

use super::GpuOption;
use crate::erlang::erlang_c;
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
    /// Mean context a running sequence holds, averaged over time: prompt plus half the
    /// output, each request weighted by the iterations it runs.
    pub mean_context: f64,
    /// Mean and mean square of iterations per request, per prefill chunk size.
    pub iterations: IterationMoments,
}

/// Moments of iterations per request for a given chunk size.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct IterationMoments {
    /// Chunk the moments were computed for.
    pub chunk: u32,
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
    let work = load.rate / 1000.0 * m.mean; // iterations started per ms, fleet-wide
    let denominator = n - work * h;
    if denominator <= 0.0 {
        return None;
    }
    let batch = work * profile.w_ms / denominator;
    if batch >= f64::from(slots) {
        return None;
    }
    let iteration_ms = profile.w_ms + h * batch;
    // Prefill throughput: chunk tokens per iteration per instance.
    let prefill_share = load.rate / 1000.0 * load.mean_prompt * iteration_ms
        / (n * f64::from(profile.prefill_chunk));
    if prefill_share >= 1.0 {
        return None;
    }
    let servers = instances.saturating_mul(slots);
    let service_ms = m.mean * iteration_ms;
    let offered = load.rate / 1000.0 * service_ms;
    let cv2 = (m.mean_square / (m.mean * m.mean) - 1.0).max(0.0);
    let waits = erlang_c_large(servers, offered);
    let mean_wait_ms = if offered >= f64::from(servers) {
        return None;
    } else {
        waits * service_ms / (f64::from(servers) - offered) * (1.0 + cv2) / 2.0
    };
    // Prefill queueing behind other prompts: the M/D/1-like wait of the chunk budget.
    let prefill_wait_ms = iteration_ms * prefill_share / (2.0 * (1.0 - prefill_share));
    let p99_wait = if waits > 0.01 && mean_wait_ms > 0.0 {
        mean_wait_ms / waits * (waits / 0.01).ln()
    } else {
        0.0
    };
    let prefill_iterations = (load.p99_prompt / f64::from(profile.prefill_chunk))
        .ceil()
        .max(1.0);
    let ttft_p99_ms = p99_wait + prefill_wait_ms + prefill_iterations * iteration_ms;
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

/// Erlang C, exact up to 2,000 servers and by the Halfin–Whitt approximation beyond
/// (`C ≈ 1 / (1 + β·Φ(β)/φ(β))`, `β = (c − a)/√a`), accurate in the many-server regime.
pub fn erlang_c_large(c: u32, a: f64) -> f64 {
    if c <= 2000 || a >= f64::from(c) {
        return erlang_c(c, a);
    }
    let beta = (f64::from(c) - a) / a.sqrt();
    if beta > 8.0 {
        return 0.0;
    }
    let phi = (-beta * beta / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let cdf = 0.5 * erfc(-beta / std::f64::consts::SQRT_2);
    1.0 / (1.0 + beta * cdf / phi)
}

/// Complementary error function (Numerical Recipes' Chebyshev fit, |error| < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;
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
            mean_context: 900.0,
            iterations: IterationMoments {
                chunk: 1024,
                mean: 201.0,
                mean_square: 201.0 * 201.0 * 1.5,
            },
        }
    }

    #[test]
    fn halfin_whitt_joins_the_exact_formula() {
        for (c, a) in [(2000u32, 1950.0), (2000, 1900.0), (2000, 1990.0)] {
            let exact = erlang_c(c, a);
            let beta = (f64::from(c) - a) / a.sqrt();
            let phi = (-beta * beta / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let hw = 1.0 / (1.0 + beta * 0.5 * erfc(-beta / std::f64::consts::SQRT_2) / phi);
            assert!((hw - exact).abs() < 0.02, "c {c} a {a}: {hw} vs {exact}");
        }
        assert!((erfc(0.0) - 1.0).abs() < 1e-7);
        assert!((erfc(1.0) - 0.157_299_2).abs() < 1e-6);
        assert!((erfc(-1.0) - 1.842_700_8).abs() < 1e-6);
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
