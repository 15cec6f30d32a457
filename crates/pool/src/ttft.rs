//! An endpoint's time to first token against prompt length, learned from the
//! router's own observations.
//!
//! A least-squares line through the last [`WINDOW`] (prompt tokens, TTFT) samples:
//! the slope is the endpoint's prefill cost per token (its inverse, the prefill rate),
//! the intercept the delay every request sees (queueing plus one iteration). The fit is
//! recomputed when a sample arrives and read lock-free when placing.

use serde::Serialize;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Samples in the sliding window.
pub const WINDOW: usize = 128;
/// Samples needed, over at least two prompt lengths, before the fit is used.
pub const MIN_SAMPLES: usize = 8;

/// A fitted TTFT line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TtftFit {
    /// Samples behind it.
    pub samples: usize,
    /// The delay every request sees, in milliseconds (intercept, at least 0).
    pub queue_ms: f64,
    /// Prefill cost per prompt token, in milliseconds (slope, at least 0).
    pub ms_per_token: f64,
}

impl TtftFit {
    /// Predicted TTFT for a prompt, in milliseconds.
    pub fn predict(&self, prompt_tokens: u32) -> f64 {
        self.queue_ms + self.ms_per_token * f64::from(prompt_tokens)
    }

    /// Prompt tokens prefilled per second (infinite when the slope is 0).
    pub fn prefill_tokens_per_s(&self) -> f64 {
        1000.0 / self.ms_per_token
    }
}

/// The sliding window and its current fit.
#[derive(Debug, Default)]
pub struct TtftModel {
    window: Mutex<VecDeque<(f64, f64)>>,
    samples: AtomicU64,
    queue_bits: AtomicU64,
    slope_bits: AtomicU64,
}

impl TtftModel {
    /// Adds a sample and refits.
    pub fn observe(&self, prompt_tokens: u32, ttft_ms: f64) {
        if !(ttft_ms.is_finite() && ttft_ms >= 0.0) {
            return;
        }
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        if window.len() == WINDOW {
            window.pop_front();
        }
        window.push_back((f64::from(prompt_tokens), ttft_ms));
        let n = window.len() as f64;
        let (sx, sy) = window
            .iter()
            .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
        let (mx, my) = (sx / n, sy / n);
        let (sxx, sxy) = window.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
            (a + (x - mx) * (x - mx), b + (x - mx) * (y - my))
        });
        let samples = if window.len() >= MIN_SAMPLES && sxx > 0.0 {
            window.len()
        } else {
            0
        };
        let slope = if sxx > 0.0 { (sxy / sxx).max(0.0) } else { 0.0 };
        let queue = (my - slope * mx).max(0.0);
        self.queue_bits.store(queue.to_bits(), Ordering::Relaxed);
        self.slope_bits.store(slope.to_bits(), Ordering::Relaxed);
        self.samples.store(samples as u64, Ordering::Relaxed);
    }

    /// The current fit, once there are enough samples over more than one prompt length.
    pub fn fit(&self) -> Option<TtftFit> {
        let samples = self.samples.load(Ordering::Relaxed) as usize;
        (samples > 0).then(|| TtftFit {
            samples,
            queue_ms: f64::from_bits(self.queue_bits.load(Ordering::Relaxed)),
            ms_per_token: f64::from_bits(self.slope_bits.load(Ordering::Relaxed)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_queueing_delay_and_prefill_rate() {
        let m = TtftModel::default();
        // 20 ms of queueing, 0.25 ms per token (4,000 tokens/s), a little noise.
        for i in 0..200u32 {
            let tokens = 100 + (i * 37) % 4000;
            let noise = f64::from(i % 5) - 2.0;
            m.observe(tokens, 20.0 + 0.25 * f64::from(tokens) + noise);
        }
        let fit = m.fit().unwrap();
        assert_eq!(fit.samples, WINDOW);
        assert!((fit.queue_ms - 20.0).abs() < 2.0, "{fit:?}");
        assert!(
            (fit.prefill_tokens_per_s() - 4000.0).abs() < 100.0,
            "{fit:?}"
        );
        assert!((fit.predict(2000) - 520.0).abs() < 5.0);
    }

    #[test]
    fn needs_enough_samples_of_different_lengths() {
        let m = TtftModel::default();
        for _ in 0..20 {
            m.observe(500, 30.0);
        }
        assert_eq!(m.fit(), None, "one prompt length gives no slope");
        for i in 0..3 {
            m.observe(1000 + i, 60.0);
        }
        assert!(m.fit().is_some());
        m.observe(10, f64::NAN);
        assert_eq!(m.fit().unwrap().samples, 23);
    }
}
