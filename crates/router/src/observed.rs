//! Latencies observed per model, for selection by latency: the most recent
//! observations of time to first token and time per output token, kept in rings.

use std::sync::Mutex;
use switchyard_wire::stats::nearest_rank;

/// How many recent observations a ring keeps.
pub const WINDOW: usize = 512;

#[derive(Debug, Default)]
struct Ring {
    values: Vec<f64>,
    next: usize,
    total: u64,
}

impl Ring {
    fn push(&mut self, v: f64) {
        if self.values.len() < WINDOW {
            self.values.push(v);
        } else {
            self.values[self.next] = v;
        }
        self.next = (self.next + 1) % WINDOW;
        self.total += 1;
    }

    /// Nearest-rank percentile `p` (in (0, 100]) of the kept values.
    fn percentile(&self, p: f64) -> Option<f64> {
        nearest_rank(&mut self.values.clone(), p)
    }
}

/// Observed latencies of one model.
#[derive(Debug, Default)]
pub struct ModelLatency {
    ttft: Mutex<Ring>,
    tpot: Mutex<Ring>,
}

/// Which latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Time to first token, milliseconds.
    Ttft,
    /// Time per output token after the first, milliseconds.
    Tpot,
}

impl ModelLatency {
    fn ring(&self, metric: Metric) -> &Mutex<Ring> {
        match metric {
            Metric::Ttft => &self.ttft,
            Metric::Tpot => &self.tpot,
        }
    }

    /// Records one observation in milliseconds (non-finite values are ignored).
    pub fn observe(&self, metric: Metric, ms: f64) {
        if ms.is_finite()
            && ms >= 0.0
            && let Ok(mut ring) = self.ring(metric).lock()
        {
            ring.push(ms);
        }
    }

    /// Observations so far (all time).
    pub fn samples(&self, metric: Metric) -> u64 {
        self.ring(metric).lock().map_or(0, |r| r.total)
    }

    /// Percentile `p` of the recent observations.
    pub fn percentile(&self, metric: Metric, p: f64) -> Option<f64> {
        self.ring(metric).lock().ok()?.percentile(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_the_recent_window() {
        let m = ModelLatency::default();
        assert_eq!(m.percentile(Metric::Ttft, 50.0), None);
        for i in 1..=100 {
            m.observe(Metric::Ttft, f64::from(i));
        }
        m.observe(Metric::Ttft, f64::NAN);
        assert_eq!(m.samples(Metric::Ttft), 100);
        assert_eq!(m.percentile(Metric::Ttft, 50.0), Some(50.0));
        assert_eq!(m.percentile(Metric::Ttft, 90.0), Some(90.0));
        assert_eq!(m.samples(Metric::Tpot), 0);
        // Old values leave the window.
        for _ in 0..WINDOW {
            m.observe(Metric::Ttft, 1000.0);
        }
        assert_eq!(m.percentile(Metric::Ttft, 1.0), Some(1000.0));
    }
}
