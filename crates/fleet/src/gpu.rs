//! Calibrated GPU profiles and the iteration-latency model.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Tokens per KV-cache block.
pub const KV_BLOCK_TOKENS: u32 = 16;

/// The GPU types with calibrated constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuKind {
    /// NVIDIA A10G (24 GB).
    A10g,
    /// NVIDIA A100 (80 GB).
    A100,
    /// NVIDIA H100 (80 GB).
    H100,
}

impl GpuKind {
    /// Every calibrated kind, in order of speed.
    pub const ALL: [GpuKind; 3] = [GpuKind::A10g, GpuKind::A100, GpuKind::H100];

    /// The calibrated profile of this kind.
    pub fn profile(self) -> GpuProfile {
        match self {
            GpuKind::A10g => GpuProfile {
                name: self.name(),
                w_ms: 12.0,
                h_ms: 0.90,
                prefill_chunk: 256,
                max_slots: 64,
                kv_blocks: 32_768,
            },
            GpuKind::A100 => GpuProfile {
                name: self.name(),
                w_ms: 8.0,
                h_ms: 0.65,
                prefill_chunk: 512,
                max_slots: 128,
                kv_blocks: 65_536,
            },
            GpuKind::H100 => GpuProfile {
                name: self.name(),
                w_ms: 4.0,
                h_ms: 0.32,
                prefill_chunk: 1024,
                max_slots: 256,
                kv_blocks: 65_536,
            },
        }
    }

    /// The lowercase name used in configuration and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            GpuKind::A10g => "a10g",
            GpuKind::A100 => "a100",
            GpuKind::H100 => "h100",
        }
    }

    /// Parses a lowercase name.
    pub fn from_name(name: &str) -> Option<GpuKind> {
        GpuKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for GpuKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Constants of one GPU instance serving one model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GpuProfile {
    /// Which GPU (and, for roofline profiles, which model and parallelism).
    pub name: &'static str,
    /// Fixed cost of one iteration (weights read), in milliseconds.
    pub w_ms: f64,
    /// Cost per sequence per 8192 tokens of its context (KV read), in milliseconds.
    pub h_ms: f64,
    /// Prompt tokens prefilled per iteration (chunked prefill).
    pub prefill_chunk: u32,
    /// Concurrent sequences at an 8K context window.
    pub max_slots: u32,
    /// KV-cache capacity in blocks of [`KV_BLOCK_TOKENS`] tokens.
    pub kv_blocks: u32,
}

impl GpuProfile {
    /// Latency of one iteration with `running` sequences of mean context `mean_len` tokens.
    pub fn iteration_ms(&self, running: usize, mean_len: f64) -> f64 {
        self.w_ms + self.h_ms * (mean_len / 8192.0) * running as f64
    }

    /// Concurrent sequences at a context window:
    /// `min(max_slots·8192/context_window, kv_blocks/⌈context_window/16⌉)`, at least 1.
    pub fn slots(&self, context_window: u32) -> u32 {
        let window = u64::from(context_window.max(1));
        let by_compute = u64::from(self.max_slots) * 8192 / window;
        let by_memory = u64::from(self.kv_blocks) / window.div_ceil(u64::from(KV_BLOCK_TOKENS));
        u32::try_from(by_compute.min(by_memory).max(1)).unwrap_or(u32::MAX)
    }

    /// KV blocks a sequence of `tokens` tokens occupies.
    pub fn blocks_for(tokens: u32) -> u32 {
        tokens.div_ceil(KV_BLOCK_TOKENS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_compute_and_memory_bounds() {
        let h100 = GpuKind::H100.profile();
        assert_eq!(h100.slots(4096), 256);
        assert_eq!(h100.slots(65_536), 16);
        let a10g = GpuKind::A10g.profile();
        assert_eq!(a10g.slots(8192), 64);
        assert_eq!(a10g.slots(32_768), 16);
        assert_eq!(a10g.slots(1_000_000), 1);
    }

    #[test]
    fn iteration_latency_is_w_plus_h_per_sequence_context() {
        let a100 = GpuKind::A100.profile();
        assert!((a100.iteration_ms(0, 0.0) - 8.0).abs() < 1e-9);
        assert!((a100.iteration_ms(10, 8192.0) - (8.0 + 6.5)).abs() < 1e-9);
        assert!((a100.iteration_ms(4, 4096.0) - (8.0 + 0.65 * 0.5 * 4.0)).abs() < 1e-9);
    }

    #[test]
    fn names_round_trip() {
        for k in GpuKind::ALL {
            assert_eq!(GpuKind::from_name(k.name()), Some(k));
        }
        assert_eq!(GpuKind::from_name("H100"), Some(GpuKind::H100));
        assert_eq!(GpuKind::from_name("tpu"), None);
    }
}
