//! Scores for evaluating signals against labelled data: binary counts with
//! precision, recall, F1 and false-positive rate, multi-class accuracy and macro-F1,
//! and latency percentiles.

use serde::Serialize;
use switchyard_wire::stats::nearest_rank;

/// Counts of a binary detector against labels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Binary {
    /// Flagged and positive.
    pub tp: u64,
    /// Flagged but negative.
    pub fp: u64,
    /// Missed positives.
    pub fn_: u64,
    /// Correctly left alone.
    pub tn: u64,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

impl Binary {
    /// Counts one verdict.
    pub fn add(&mut self, predicted: bool, actual: bool) {
        match (predicted, actual) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, true) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }

    /// Share of flags that were right (0 when nothing was flagged).
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// Share of positives flagged.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    /// Share of negatives flagged.
    pub fn false_positive_rate(&self) -> f64 {
        ratio(self.fp, self.fp + self.tn)
    }

    /// Share of verdicts that were right.
    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.tp + self.fp + self.fn_ + self.tn)
    }
}

/// A multi-class confusion matrix over `labels`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Confusion {
    /// The classes.
    pub labels: Vec<String>,
    /// `counts[actual][predicted]`.
    pub counts: Vec<Vec<u64>>,
}

impl Confusion {
    /// An empty matrix.
    pub fn new(labels: Vec<String>) -> Confusion {
        let k = labels.len();
        Confusion {
            labels,
            counts: vec![vec![0; k]; k],
        }
    }

    /// Counts one prediction.
    pub fn add(&mut self, actual: usize, predicted: usize) {
        if let Some(cell) = self
            .counts
            .get_mut(actual)
            .and_then(|r| r.get_mut(predicted))
        {
            *cell += 1;
        }
    }

    /// Rows counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Share of rows predicted right.
    pub fn accuracy(&self) -> f64 {
        let right: u64 = (0..self.labels.len()).map(|i| self.counts[i][i]).sum();
        ratio(right, self.total())
    }

    /// One class against the rest.
    pub fn class(&self, c: usize) -> Binary {
        let k = self.labels.len();
        let tp = self.counts[c][c];
        let fn_: u64 = (0..k).filter(|p| *p != c).map(|p| self.counts[c][p]).sum();
        let fp: u64 = (0..k).filter(|a| *a != c).map(|a| self.counts[a][c]).sum();
        Binary {
            tp,
            fp,
            fn_,
            tn: self.total() - tp - fn_ - fp,
        }
    }

    /// Mean F1 over the classes that occur (as actual or predicted).
    pub fn macro_f1(&self) -> f64 {
        let present: Vec<f64> = (0..self.labels.len())
            .map(|c| self.class(c))
            .filter(|b| b.tp + b.fp + b.fn_ > 0)
            .map(|b| b.f1())
            .collect();
        if present.is_empty() {
            0.0
        } else {
            present.iter().sum::<f64>() / present.len() as f64
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Largest.
    pub max_us: f64,
}

impl Latency {
    /// Percentiles (nearest rank) of durations in nanoseconds.
    pub fn of(ns: Vec<u64>) -> Latency {
        let mut us: Vec<f64> = ns.iter().map(|n| *n as f64 / 1_000.0).collect();
        let mut at = |p: f64| nearest_rank(&mut us, p).unwrap_or(0.0);
        Latency {
            p50_us: at(50.0),
            p90_us: at(90.0),
            p99_us: at(99.0),
            max_us: at(100.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_scores() {
        let mut b = Binary::default();
        for (p, a) in [
            (true, true),
            (true, true),
            (true, false),
            (false, true),
            (false, false),
        ] {
            b.add(p, a);
        }
        assert_eq!((b.tp, b.fp, b.fn_, b.tn), (2, 1, 1, 1));
        assert!((b.precision() - 2.0 / 3.0).abs() < 1e-12);
        assert!((b.recall() - 2.0 / 3.0).abs() < 1e-12);
        assert!((b.f1() - 2.0 / 3.0).abs() < 1e-12);
        assert!((b.false_positive_rate() - 0.5).abs() < 1e-12);
        assert!((b.accuracy() - 0.6).abs() < 1e-12);
        assert_eq!(Binary::default().f1(), 0.0);
    }

    #[test]
    fn confusion_accuracy_and_macro_f1() {
        let mut c = Confusion::new(vec!["a".into(), "b".into(), "c".into()]);
        for (a, p) in [(0, 0), (0, 0), (0, 1), (1, 1), (2, 2), (2, 0)] {
            c.add(a, p);
        }
        assert_eq!(c.total(), 6);
        assert!((c.accuracy() - 4.0 / 6.0).abs() < 1e-12);
        let a = c.class(0);
        assert_eq!((a.tp, a.fp, a.fn_, a.tn), (2, 1, 1, 2));
        // F1: a = 2/3, b = 2/3, c = 2/3.
        assert!((c.macro_f1() - 2.0 / 3.0).abs() < 1e-12);
        c.add(9, 0);
        assert_eq!(c.total(), 6, "out-of-range labels are ignored");
    }

    #[test]
    fn latency_percentiles_by_nearest_rank() {
        let l = Latency::of((1..=100).map(|i| i * 1_000).collect());
        assert_eq!(
            (l.p50_us, l.p90_us, l.p99_us, l.max_us),
            (50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(Latency::of(vec![]).p50_us, 0.0);
    }
}
