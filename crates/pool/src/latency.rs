//! Peak-EWMA latency of an endpoint, from the router's own observations.

use std::sync::atomic::{AtomicU64, Ordering};

/// How fast old samples fade, in milliseconds (the EWMA's time constant).
const TAU_MS: f64 = 10_000.0;

/// A latency estimate that jumps up to any slower sample at once (peak) and decays
/// toward faster ones with time constant [`TAU_MS`], so an endpoint that turns slow is
/// avoided immediately and one that recovers wins traffic back gradually.
#[derive(Debug, Default)]
pub struct LatencyEwma {
    /// The estimate in milliseconds as f64 bits; 0 means no sample yet.
    bits: AtomicU64,
    stamp_ms: AtomicU64,
}

impl LatencyEwma {
    /// Adds a sample (milliseconds) taken at `now_ms`.
    pub fn observe(&self, sample_ms: f64, now_ms: u64) {
        if !(sample_ms.is_finite() && sample_ms >= 0.0) {
            return;
        }
        let sample = sample_ms.max(f64::MIN_POSITIVE);
        let next = match self.estimate(now_ms) {
            None => sample,
            Some(previous) if sample > previous => sample,
            Some(previous) => {
                let elapsed = now_ms.saturating_sub(self.stamp_ms.load(Ordering::Relaxed)) as f64;
                let keep = (-elapsed / TAU_MS).exp();
                previous * keep + sample * (1.0 - keep)
            }
        };
        self.bits.store(next.to_bits(), Ordering::Relaxed);
        self.stamp_ms.store(now_ms, Ordering::Relaxed);
    }

    /// The estimate in milliseconds, or `None` before the first sample.
    pub fn estimate(&self, _now_ms: u64) -> Option<f64> {
        let value = f64::from_bits(self.bits.load(Ordering::Relaxed));
        (value > 0.0).then_some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_to_peaks_and_decays_toward_faster_samples() {
        let l = LatencyEwma::default();
        assert_eq!(l.estimate(0), None);
        l.observe(10.0, 0);
        assert_eq!(l.estimate(0), Some(10.0));
        l.observe(100.0, 1);
        assert_eq!(
            l.estimate(1),
            Some(100.0),
            "a slower sample is taken at once"
        );
        l.observe(10.0, 2);
        assert!(
            l.estimate(2).unwrap() > 99.0,
            "a faster one barely moves it right away"
        );
        l.observe(10.0, 30_002);
        let later = l.estimate(30_002).unwrap();
        assert!(
            later < 20.0,
            "after three time constants it is close: {later}"
        );
        l.observe(f64::NAN, 30_003);
        assert_eq!(l.estimate(30_003), Some(later));
    }
}
