//! Streaming statistics: what a run measured, in constant memory. Latencies go into
//! fixed-size HDR histograms (3 significant digits, in microseconds, up to 2^40 µs);
//! counts and sums are exact.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Why a request was turned away at arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// Longer than every pool's boundary.
    TooLong = 0,
    /// The pool's queue was full.
    QueueFull = 1,
    /// No pool serves its model (or the pool a trace names).
    NoPool = 2,
}

/// Why an admitted or queued request was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// Waited past the pool's `max_queue_wait_s`.
    QueueTimeout = 0,
    /// Preempted more than the pool's limit.
    Preempted = 1,
}

/// Latency samples and counts of one pool (or the fleet).
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    pub ttft: Histogram<u64>,
    pub tpot: Histogram<u64>,
    pub e2e: Histogram<u64>,
    pub wait: Histogram<u64>,
    pub arrivals: u64,
    pub completed: u64,
    pub rejected: [u64; 3],
    pub dropped: [u64; 2],
    pub compressed: u64,
    pub slo_met: u64,
    pub prompt_tokens: u64,
    pub output_tokens: u64,
    pub sojourn_ms: f64,
}

/// Largest latency recorded exactly: 2^40 µs, about 12.7 days; longer ones saturate.
const MAX_MICROS: u64 = 1 << 40;

// Building fails only for bounds out of order or more than 5 significant digits;
// these are constants within range.
#[allow(clippy::expect_used)]
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("constant bounds are valid")
}

pub(crate) fn micros(ms: f64) -> u64 {
    (ms * 1000.0).round().max(0.0) as u64
}

impl Recorder {
    pub(crate) fn new() -> Recorder {
        Recorder {
            ttft: histogram(),
            tpot: histogram(),
            e2e: histogram(),
            wait: histogram(),
            arrivals: 0,
            completed: 0,
            rejected: [0; 3],
            dropped: [0; 2],
            compressed: 0,
            slo_met: 0,
            prompt_tokens: 0,
            output_tokens: 0,
            sojourn_ms: 0.0,
        }
    }

    /// Adds another recorder's samples and counts.
    pub(crate) fn merge(&mut self, other: &Recorder) {
        for (mine, theirs) in [
            (&mut self.ttft, &other.ttft),
            (&mut self.tpot, &other.tpot),
            (&mut self.e2e, &other.e2e),
            (&mut self.wait, &other.wait),
        ] {
            // Auto-resizing histograms of the same precision always add.
            mine.add(theirs).ok();
        }
        self.arrivals += other.arrivals;
        self.completed += other.completed;
        for i in 0..3 {
            self.rejected[i] += other.rejected[i];
        }
        for i in 0..2 {
            self.dropped[i] += other.dropped[i];
        }
        self.compressed += other.compressed;
        self.slo_met += other.slo_met;
        self.prompt_tokens += other.prompt_tokens;
        self.output_tokens += other.output_tokens;
        self.sojourn_ms += other.sojourn_ms;
    }
}

/// P50, P90 and P99 of a latency, in milliseconds, and its mean.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    pub(crate) fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles {
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                mean: 0.0,
            };
        }
        let ms = |q: f64| round3(h.value_at_quantile(q) as f64 / 1000.0);
        Percentiles {
            p50: ms(0.5),
            p90: ms(0.9),
            p99: ms(0.99),
            mean: round3(h.mean() / 1000.0),
        }
    }
}

/// Rounds to three decimals (reports stay readable and byte-stable).
pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
