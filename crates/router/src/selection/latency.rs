//! `latency`: the lowest observed percentile of TTFT or TPOT. A candidate with fewer
//! observations than `cold_start` goes first (in listed order), so every candidate
//! gets measured before the comparison is trusted.

use super::{Candidate, SelectRequest, Selected, Selection, fitting};
use crate::observed::Metric;
use switchyard_policy::{LatencyConfig, LatencyMetric};

impl Selection for LatencyConfig {
    fn name(&self) -> &'static str {
        "latency"
    }

    fn select(&self, candidates: &[Candidate<'_>], request: &SelectRequest) -> Option<Selected> {
        let metric = match self.metric {
            LatencyMetric::Ttft => Metric::Ttft,
            LatencyMetric::Tpot => Metric::Tpot,
        };
        let label = match metric {
            Metric::Ttft => "TTFT",
            Metric::Tpot => "TPOT",
        };
        let seen: Vec<(usize, Option<f64>, u64)> = fitting(candidates, request)
            .map(|(i, c): (usize, &Candidate<'_>)| {
                let (value, samples) = c.observed(metric, self.percentile);
                (i, value, samples)
            })
            .collect();
        if let Some(&(i, _, samples)) = seen
            .iter()
            .find(|(_, v, n)| v.is_none() || *n < u64::from(self.cold_start))
        {
            return Some(Selected {
                candidate: i,
                reason: format!(
                    "cold start: {} has {samples} of {} {label} observations",
                    candidates[i].name, self.cold_start
                ),
            });
        }
        let (i, value, _) = seen
            .iter()
            .filter_map(|(i, v, n)| v.map(|v| (*i, v, *n)))
            .min_by(|a, b| a.1.total_cmp(&b.1))?;
        Some(Selected {
            candidate: i,
            reason: format!("lowest p{} {label}: {value:.1} ms", self.percentile),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{candidate, request};
    use super::*;
    use crate::observed::ModelLatency;

    #[test]
    fn measures_everyone_then_picks_the_fastest() {
        let (slow, fast) = (ModelLatency::default(), ModelLatency::default());
        let config = LatencyConfig {
            metric: LatencyMetric::Ttft,
            percentile: 90.0,
            cold_start: 5,
        };
        let candidates = |slow, fast| {
            let mut a = candidate("slow", 8192, None, None, 0.0);
            a.latency = Some(slow);
            let mut b = candidate("fast", 8192, None, None, 0.0);
            b.latency = Some(fast);
            [a, b]
        };
        let s = config
            .select(&candidates(&slow, &fast), &request(100))
            .unwrap();
        assert_eq!(s.candidate, 0);
        assert!(s.reason.contains("cold start"), "{}", s.reason);
        for _ in 0..5 {
            slow.observe(Metric::Ttft, 400.0);
        }
        let s = config
            .select(&candidates(&slow, &fast), &request(100))
            .unwrap();
        assert_eq!(s.candidate, 1, "fast has no observations yet");
        for i in 0..5 {
            fast.observe(Metric::Ttft, 50.0 + f64::from(i));
        }
        let s = config
            .select(&candidates(&slow, &fast), &request(100))
            .unwrap();
        assert_eq!(s.candidate, 1);
        assert!(s.reason.contains("p90 TTFT"), "{}", s.reason);
        let tpot = LatencyConfig {
            metric: LatencyMetric::Tpot,
            ..config
        };
        assert!(
            tpot.select(&candidates(&slow, &fast), &request(100))
                .unwrap()
                .reason
                .contains("cold")
        );
    }
}
