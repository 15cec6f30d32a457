//! GPU profiles computed from hardware and model specs (a roofline), for GPUs and
//! models without calibrated constants, H200 and B200 among them.
//!
//! Decoding is memory-bound: each iteration reads the weights once (W) and each
//! sequence's KV cache (H per 8,192 tokens of context), at the instance's memory
//! bandwidth. So `W = weight bytes / bandwidth` and `H = 8192 · KV bytes per token /
//! bandwidth`, with bandwidth and memory summed over the tensor-parallel group. The KV
//! capacity is what memory is left after the weights, at a 90% memory budget. The
//! prefill chunk is the number of prompt tokens whose compute (2 FLOPs per parameter
//! per token, at 50% of peak) takes about 32 ms, rounded to a multiple of 256 (at
//! least 256); for an 8B model on an H100 that is the calibrated 1,024. For
//! Llama-3.1-8B in BF16 on one H100 the roofline gives H = 0.32 ms, the calibrated
//! value, and W = 4.8 ms against the calibrated 4.

use crate::gpu::{GpuProfile, KV_BLOCK_TOKENS};
use crate::power::PowerProfile;
use serde::Serialize;

/// One GPU's hardware.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Hardware {
    /// Its name.
    pub name: &'static str,
    /// Memory, in GB.
    pub memory_gb: f64,
    /// Memory bandwidth, in TB/s.
    pub bandwidth_tbps: f64,
    /// Dense FP16/BF16 tensor throughput, in TFLOP/s.
    pub fp16_tflops: f64,
    /// Board power, in watts.
    pub tdp_w: f64,
    /// On-demand cloud price of one GPU, in dollars per hour (a representative list
    /// price; override it per pool with `cost_per_hour`).
    pub price_per_hour: f64,
}

impl Hardware {
    /// A power curve for a GPU without calibrated constants: idle at 43% and a full
    /// batch at 86% of board power, the H100's calibrated shares (300 W and 600 W of
    /// 700 W), on the H100's curve shape.
    pub fn estimated_power(&self) -> PowerProfile {
        PowerProfile {
            idle_w: 0.43 * self.tdp_w,
            nominal_w: 0.86 * self.tdp_w,
            k: 1.0,
            x0: 4.2,
        }
    }
}

/// Published specs (SXM parts where there is a choice).
pub const HARDWARE: [Hardware; 5] = [
    Hardware {
        name: "a10g",
        memory_gb: 24.0,
        bandwidth_tbps: 0.6,
        fp16_tflops: 125.0,
        tdp_w: 300.0,
        price_per_hour: 1.01,
    },
    Hardware {
        name: "a100",
        memory_gb: 80.0,
        bandwidth_tbps: 2.039,
        fp16_tflops: 312.0,
        tdp_w: 400.0,
        price_per_hour: 1.79,
    },
    Hardware {
        name: "h100",
        memory_gb: 80.0,
        bandwidth_tbps: 3.35,
        fp16_tflops: 989.0,
        tdp_w: 700.0,
        price_per_hour: 2.99,
    },
    Hardware {
        name: "h200",
        memory_gb: 141.0,
        bandwidth_tbps: 4.8,
        fp16_tflops: 989.0,
        tdp_w: 700.0,
        price_per_hour: 3.79,
    },
    Hardware {
        name: "b200",
        memory_gb: 192.0,
        bandwidth_tbps: 8.0,
        fp16_tflops: 2250.0,
        tdp_w: 1000.0,
        price_per_hour: 5.99,
    },
];

/// A model's shape.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ModelSpec {
    /// Its name.
    pub name: &'static str,
    /// Parameters, in billions.
    pub params_b: f64,
    /// Transformer layers.
    pub layers: u32,
    /// Key/value heads (fewer than attention heads with grouped-query attention).
    pub kv_heads: u32,
    /// Dimension of one head.
    pub head_dim: u32,
    /// Bytes per weight and per KV element (2 for FP16/BF16, 1 for FP8).
    pub dtype_bytes: f64,
}

/// Llama-3.1-8B in BF16.
pub const LLAMA_8B: ModelSpec = ModelSpec {
    name: "llama-3.1-8b",
    params_b: 8.03,
    layers: 32,
    kv_heads: 8,
    head_dim: 128,
    dtype_bytes: 2.0,
};

/// Llama-3.1-70B in BF16.
pub const LLAMA_70B: ModelSpec = ModelSpec {
    name: "llama-3.1-70b",
    params_b: 70.6,
    layers: 80,
    kv_heads: 8,
    head_dim: 128,
    dtype_bytes: 2.0,
};

/// Why a model cannot run on an instance.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "{model} needs {needed_gb:.0} GB of weights but {gpus} × {hardware} have {budget_gb:.0} GB to give"
)]
pub struct DoesNotFit {
    /// The model.
    pub model: &'static str,
    /// The GPU.
    pub hardware: &'static str,
    /// Tensor-parallel degree.
    pub gpus: u32,
    /// Weight memory needed.
    pub needed_gb: f64,
    /// Memory budget of the instance.
    pub budget_gb: f64,
}

/// Share of memory vLLM-style engines use (the rest is activations and runtime).
const MEMORY_BUDGET: f64 = 0.9;
/// Share of peak compute prefill reaches.
const PREFILL_EFFICIENCY: f64 = 0.5;
/// Compute time one prefill chunk is sized to, in seconds.
const PREFILL_CHUNK_S: f64 = 0.032;
/// Concurrent sequences an engine schedules at most (vLLM's default).
const MAX_SEQUENCES: u32 = 256;

/// KV-cache bytes one token takes (keys and values, every layer).
pub fn kv_bytes_per_token(model: &ModelSpec) -> f64 {
    2.0 * f64::from(model.layers)
        * f64::from(model.kv_heads)
        * f64::from(model.head_dim)
        * model.dtype_bytes
}

/// The profile of `model` on `tp` GPUs of `hardware` (tensor parallel).
pub fn roofline(hardware: &Hardware, model: &ModelSpec, tp: u32) -> Result<GpuProfile, DoesNotFit> {
    let tp = tp.max(1);
    let gpus = f64::from(tp);
    let bandwidth = hardware.bandwidth_tbps * 1e12 * gpus;
    let weights = model.params_b * 1e9 * model.dtype_bytes;
    let budget = hardware.memory_gb * 1e9 * gpus * MEMORY_BUDGET;
    if weights >= budget {
        return Err(DoesNotFit {
            model: model.name,
            hardware: hardware.name,
            gpus: tp,
            needed_gb: weights / 1e9,
            budget_gb: budget / 1e9,
        });
    }
    let per_token = kv_bytes_per_token(model);
    let w_ms = weights / bandwidth * 1000.0;
    let h_ms = 8192.0 * per_token / bandwidth * 1000.0;
    let flops = hardware.fp16_tflops * 1e12 * gpus * PREFILL_EFFICIENCY;
    let chunk = PREFILL_CHUNK_S * flops / (2.0 * model.params_b * 1e9);
    let prefill_chunk = ((chunk / 256.0).round() as u32 * 256).max(256);
    let kv_blocks = ((budget - weights) / (f64::from(KV_BLOCK_TOKENS) * per_token)) as u32;
    Ok(GpuProfile {
        name: hardware.name,
        w_ms,
        h_ms,
        prefill_chunk,
        max_slots: MAX_SEQUENCES,
        kv_blocks,
    })
}

/// The hardware of a name, if listed.
pub fn hardware(name: &str) -> Option<&'static Hardware> {
    HARDWARE.iter().find(|h| h.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(gpu: &str, model: &ModelSpec, tp: u32) -> GpuProfile {
        roofline(hardware(gpu).unwrap(), model, tp).unwrap()
    }

    #[test]
    fn llama_8b_on_an_h100_matches_the_calibrated_kv_cost() {
        let p = profile("h100", &LLAMA_8B, 1);
        assert!((p.h_ms - 0.32).abs() < 0.01, "{p:?}");
        assert!((p.w_ms - 4.8).abs() < 0.1, "{p:?}");
        assert_eq!(kv_bytes_per_token(&LLAMA_8B), 131_072.0);
        assert_eq!(p.prefill_chunk, 1024, "{p:?}");
        assert_eq!(profile("a10g", &LLAMA_8B, 1).prefill_chunk, 256);
    }

    #[test]
    fn tensor_parallelism_splits_reads_and_pools_memory() {
        let one = profile("h100", &LLAMA_8B, 1);
        let two = profile("h100", &LLAMA_8B, 2);
        assert!((two.w_ms - one.w_ms / 2.0).abs() < 1e-9);
        assert!((two.h_ms - one.h_ms / 2.0).abs() < 1e-9);
        assert!(
            two.kv_blocks > 2 * one.kv_blocks,
            "weights are paid once: {one:?} {two:?}"
        );
    }

    #[test]
    fn newer_gpus_read_faster_and_hold_more() {
        let h100 = profile("h100", &LLAMA_70B, 4);
        let h200 = profile("h200", &LLAMA_70B, 4);
        let b200 = profile("b200", &LLAMA_70B, 4);
        assert!(h200.w_ms < h100.w_ms && b200.w_ms < h200.w_ms);
        assert!(h200.kv_blocks > h100.kv_blocks && b200.kv_blocks > h200.kv_blocks);
        // A 64K window on the B200 group holds far more sequences than on H100s.
        assert!(b200.slots(65_536) > h100.slots(65_536));
    }

    #[test]
    fn a_model_too_big_for_the_instance_is_refused() {
        let err = roofline(hardware("a10g").unwrap(), &LLAMA_70B, 1).unwrap_err();
        assert!(
            err.to_string().contains("llama-3.1-70b needs 141 GB"),
            "{err}"
        );
        assert!(roofline(hardware("h100").unwrap(), &LLAMA_70B, 2).is_ok());
        assert!(hardware("B200").is_some() && hardware("tpu").is_none());
    }
}
