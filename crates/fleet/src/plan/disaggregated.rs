//! Disaggregated prefill and decode pools, sized for comparison with colocated ones.
//!
//! Prefill instances run only prompts: an iteration prefills `chunk` tokens at
//! `t = W + H·(p̄/2)/8192` (the context attended, on average half the prompt), so an
//! instance is a server whose service time is `⌈prompt/chunk⌉·t`. Its TTFT is the
//! wait (Erlang-C with the Allen–Cunneen correction), the prefill itself, and the KV
//! transfer to a decode instance, taken at 50 GB/s for 128 KiB per token (an 8B
//! model in BF16). Decode instances hold the whole window and run only outputs,
//! sized like any pool with no prefill. Both pools take the GPU that scores best.

use super::analytic::{IterationMoments, PoolLoad, size};
use super::spec::Resolved;
use super::{PlannedPool, Sample, p99};
use crate::erlang::mmc_wait_quantile;
use serde::Serialize;

/// Bytes of KV per token moved from prefill to decode.
const KV_BYTES_PER_TOKEN: f64 = 131_072.0;
/// Interconnect between the pools, bytes per ms.
const LINK_BYTES_PER_MS: f64 = 50e9 / 1000.0;

/// A disaggregated fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Disaggregated {
    /// The prefill pool.
    pub prefill: PlannedPool,
    /// The decode pool.
    pub decode: PlannedPool,
    /// Dollars per hour.
    pub cost_per_hour: f64,
    /// Watts.
    pub watts: f64,
    /// Predicted P99 TTFT, ms.
    pub ttft_p99_ms: f64,
}

/// Sizes a disaggregated fleet at `rate`, or `None` when no GPU option can.
pub fn disaggregated(spec: &Resolved, sample: &Sample, rate: f64) -> Option<Disaggregated> {
    let n = sample.requests.len() as f64;
    let mean_prompt = sample.requests.iter().map(|r| f64::from(r.0)).sum::<f64>() / n;
    let mean_output = sample.requests.iter().map(|r| f64::from(r.1)).sum::<f64>() / n;
    let p99_prompt = p99(sample.requests.iter().map(|r| r.0).collect());
    let transfer_ms = p99_prompt * KV_BYTES_PER_TOKEN / LINK_BYTES_PER_MS;

    let mut best_prefill: Option<(PlannedPool, f64)> = None;
    for (option, gpu) in spec.gpus.iter().enumerate() {
        let chunk = f64::from(gpu.profile.prefill_chunk);
        let t = gpu.profile.w_ms + gpu.profile.h_ms * (mean_prompt / 2.0) / 8192.0;
        let iterations: Vec<f64> = sample
            .requests
            .iter()
            .map(|r| (f64::from(r.0) / chunk).ceil())
            .collect();
        let k = iterations.iter().sum::<f64>() / n;
        let k2 = iterations.iter().map(|x| x * x).sum::<f64>() / n;
        let cv2 = (k2 / (k * k) - 1.0).max(0.0);
        let service = k * t;
        let offered = rate / 1000.0 * service;
        let p99_prefill = (p99_prompt / chunk).ceil() * t;
        if p99_prefill + transfer_ms > spec.ttft_p99_ms {
            // The longest prompts miss the SLO on this GPU with no wait at all.
            continue;
        }
        let mut instances = ((offered / spec.max_utilization).ceil() as u32).max(1);
        let ttft = loop {
            if instances > gpu.available {
                break None;
            }
            // Allen–Cunneen scales the M/M/c wait, its quantiles included.
            let p99_wait = mmc_wait_quantile(instances, offered, service, 0.99) * (1.0 + cv2) / 2.0;
            let ttft = p99_wait + p99_prefill + transfer_ms;
            if ttft <= spec.ttft_p99_ms {
                break Some(ttft);
            }
            instances += 1;
        };
        let Some(ttft) = ttft else { continue };
        let utilization = offered / f64::from(instances);
        let watts = f64::from(instances) * gpu.power.watts(1) * f64::from(gpu.gpus);
        let pool = PlannedPool {
            role: "prefill".into(),
            gpu: gpu.name.clone(),
            option,
            context_window: sample.longest,
            share: 1.0,
            rate,
            cost_per_hour: gpu.price * f64::from(instances),
            sizing: super::analytic::Sizing {
                instances,
                slots: 1,
                batch: utilization,
                utilization,
                iteration_ms: t,
                ttft_p99_ms: ttft,
                mean_wait_ms: 0.0,
                watts,
                tokens_per_watt: 0.0,
            },
        };
        if best_prefill
            .as_ref()
            .is_none_or(|(b, _)| spec.objective.pool_score(&pool) < spec.objective.pool_score(b))
        {
            best_prefill = Some((pool, ttft));
        }
    }
    let (prefill, prefill_ttft) = best_prefill?;

    // A decoding sequence's context, averaged over the iterations it runs.
    let decode_context = sample
        .requests
        .iter()
        .map(|&(p, o)| f64::from(o) * (f64::from(p) + f64::from(o) / 2.0))
        .sum::<f64>()
        / sample.requests.iter().map(|r| f64::from(r.1)).sum::<f64>();
    let mut best_decode: Option<PlannedPool> = None;
    for (option, gpu) in spec.gpus.iter().enumerate() {
        if u64::from(sample.longest).div_ceil(16) > u64::from(gpu.profile.kv_blocks) {
            continue;
        }
        let outputs: Vec<f64> = sample.requests.iter().map(|r| f64::from(r.1)).collect();
        let load = PoolLoad {
            rate,
            mean_prompt: 0.0,
            mean_output,
            p99_prompt: 0.0,
            mean_square_prompt: 0.0,
            mean_context: decode_context,
            iterations: IterationMoments {
                mean: mean_output,
                mean_square: outputs.iter().map(|o| o * o).sum::<f64>() / n,
            },
        };
        // The decode pool's wait for a slot comes out of what prefill leaves of the SLO.
        let budget = (spec.ttft_p99_ms - prefill_ttft).max(1.0);
        let Some(sizing) = size(gpu, sample.longest, &load, budget, spec.max_utilization) else {
            continue;
        };
        let pool = PlannedPool {
            role: "decode".into(),
            gpu: gpu.name.clone(),
            option,
            context_window: sample.longest,
            share: 1.0,
            rate,
            cost_per_hour: gpu.price * f64::from(sizing.instances),
            sizing,
        };
        if best_decode
            .as_ref()
            .is_none_or(|b| spec.objective.pool_score(&pool) < spec.objective.pool_score(b))
        {
            best_decode = Some(pool);
        }
    }
    let decode = best_decode?;
    Some(Disaggregated {
        cost_per_hour: prefill.cost_per_hour + decode.cost_per_hour,
        watts: prefill.sizing.watts + decode.sizing.watts,
        ttft_p99_ms: prefill_ttft + decode.sizing.mean_wait_ms,
        prefill,
        decode,
    })
}
