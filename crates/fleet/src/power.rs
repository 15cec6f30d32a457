//! Power draw against batch size, and the tokens per watt it implies.
//!
//! `P(b) = P_idle + (P_nom − P_idle) / (1 + exp(−k·(log2 b − x0)))`: a GPU idles at
//! `P_idle` and approaches `P_nom` as the batch fills, along a logistic curve in
//! log2 of the batch. Tokens per watt at a context window come from the iteration
//! model: with every slot decoding at a mean context of half the window, an iteration
//! produces one token per slot.

use crate::gpu::{GpuKind, GpuProfile};
use serde::Serialize;

/// The power curve of one GPU type.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PowerProfile {
    /// Draw with nothing running, in watts.
    pub idle_w: f64,
    /// Draw at a full batch, in watts.
    pub nominal_w: f64,
    /// Steepness of the curve.
    pub k: f64,
    /// log2 of the batch at the curve's midpoint.
    pub x0: f64,
}

impl GpuKind {
    /// The calibrated power curve of this GPU.
    pub fn power(self) -> PowerProfile {
        match self {
            GpuKind::A10g => PowerProfile {
                idle_w: 75.0,
                nominal_w: 120.0,
                k: 0.7,
                x0: 3.0,
            },
            GpuKind::A100 => PowerProfile {
                idle_w: 175.0,
                nominal_w: 385.0,
                k: 1.0,
                x0: 2.5,
            },
            GpuKind::H100 => PowerProfile {
                idle_w: 300.0,
                nominal_w: 600.0,
                k: 1.0,
                x0: 4.2,
            },
        }
    }
}

impl PowerProfile {
    /// Draw with `batch` sequences running, in watts.
    pub fn watts(&self, batch: usize) -> f64 {
        if batch == 0 {
            return self.idle_w;
        }
        let x = (batch as f64).log2();
        self.idle_w + (self.nominal_w - self.idle_w) / (1.0 + (-self.k * (x - self.x0)).exp())
    }
}

/// Decode throughput and efficiency of one instance with every slot busy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Efficiency {
    /// Concurrent sequences.
    pub slots: u32,
    /// Tokens per second.
    pub tokens_per_s: f64,
    /// Watts drawn.
    pub watts: f64,
    /// Tokens per joule (tokens per second per watt).
    pub tokens_per_watt: f64,
}

/// The efficiency of a GPU serving a `context_window`-token model at a full batch,
/// every sequence at a mean context of half the window.
pub fn efficiency(gpu: &GpuProfile, power: &PowerProfile, context_window: u32) -> Efficiency {
    let slots = gpu.slots(context_window);
    let iteration_s = gpu.iteration_ms(slots as usize, f64::from(context_window) / 2.0) / 1000.0;
    let tokens_per_s = f64::from(slots) / iteration_s;
    let watts = power.watts(slots as usize);
    Efficiency {
        slots,
        tokens_per_s,
        watts,
        tokens_per_watt: tokens_per_s / watts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_over_window_law_on_the_h100() {
        let h100 = GpuKind::H100;
        let long = efficiency(&h100.profile(), &h100.power(), 65_536);
        assert_eq!(long.slots, 16);
        assert!((long.tokens_per_watt - 1.50).abs() < 0.015, "{long:?}");
        let short = efficiency(&h100.profile(), &h100.power(), 4096);
        assert_eq!(short.slots, 256);
        assert!((short.tokens_per_watt - 17.6).abs() < 0.18, "{short:?}");
    }

    #[test]
    fn power_rises_from_idle_to_nominal_with_the_batch() {
        for kind in GpuKind::ALL {
            let p = kind.power();
            assert_eq!(p.watts(0), p.idle_w);
            let mut last = p.idle_w;
            for b in [1, 2, 4, 8, 16, 64, 256, 4096] {
                let w = p.watts(b);
                assert!(w >= last && w < p.nominal_w, "{kind}: {b} → {w}");
                last = w;
            }
            assert!(p.watts(1 << 20) > p.nominal_w - 1.0);
        }
        // A10G midpoint: log2 b = x0 = 3 → halfway.
        assert!((GpuKind::A10g.power().watts(8) - 97.5).abs() < 1e-9);
    }
}
