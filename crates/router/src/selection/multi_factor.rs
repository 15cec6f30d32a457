//! `multi_factor`: hard ceilings first (observed p90 TTFT, estimated cost per
//! request), then the highest weighted score of quality (higher better), latency,
//! cost and load (lower better), each scaled to [0, 1] across the candidates left.
//! A candidate with no latency observations scores as the best observed one.

use super::{Candidate, SelectRequest, Selected, Selection, fitting};
use crate::observed::Metric;
use switchyard_policy::MultiFactorConfig;

/// Scales `x` to [0, 1] between `lo` and `hi` (0 when they are equal).
fn scaled(x: f64, lo: f64, hi: f64) -> f64 {
    if hi > lo { (x - lo) / (hi - lo) } else { 0.0 }
}

impl Selection for MultiFactorConfig {
    fn name(&self) -> &'static str {
        "multi_factor"
    }

    fn select(&self, candidates: &[Candidate<'_>], request: &SelectRequest) -> Option<Selected> {
        struct Row {
            index: usize,
            quality: f64,
            ttft: Option<f64>,
            cost: f64,
            load: f64,
        }
        let rows: Vec<Row> = fitting(candidates, request)
            .map(|(index, c)| Row {
                index,
                quality: c.quality.unwrap_or(0.0),
                ttft: c.observed(Metric::Ttft, 90.0).0,
                cost: if c.price.is_some() {
                    c.cost(request)
                } else {
                    0.0
                },
                load: c.load,
            })
            .filter(|r| {
                self.max_ttft_ms
                    .is_none_or(|m| r.ttft.is_none_or(|t| t <= m))
                    && self.max_cost.is_none_or(|m| r.cost <= m)
            })
            .collect();
        let range = |f: &dyn Fn(&Row) -> Option<f64>| {
            rows.iter()
                .filter_map(f)
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
                    (lo.min(x), hi.max(x))
                })
        };
        let q = range(&|r| Some(r.quality));
        let t = range(&|r| r.ttft);
        let c = range(&|r| Some(r.cost));
        let l = range(&|r| Some(r.load));
        let w = &self.weights;
        let score = |r: &Row| {
            w.quality * scaled(r.quality, q.0, q.1)
                - w.latency * r.ttft.map_or(0.0, |x| scaled(x, t.0, t.1))
                - w.cost * scaled(r.cost, c.0, c.1)
                - w.load * scaled(r.load, l.0, l.1)
        };
        let best = rows
            .iter()
            .map(|r| (r, score(r)))
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.index.cmp(&a.0.index)))?;
        let (r, s) = best;
        Some(Selected {
            candidate: r.index,
            reason: format!(
                "best score {s:.3} of {} after ceilings (quality {:.2}, p90 TTFT {}, ${:.6}, load {:.1})",
                rows.len(),
                r.quality,
                r.ttft
                    .map_or_else(|| "unobserved".to_owned(), |t| format!("{t:.0} ms")),
                r.cost,
                r.load
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{candidate, request};
    use super::*;
    use crate::observed::ModelLatency;
    use switchyard_policy::FactorWeights;

    #[test]
    fn ceilings_prune_then_weights_decide() {
        let (slow, quick) = (ModelLatency::default(), ModelLatency::default());
        for _ in 0..10 {
            slow.observe(Metric::Ttft, 2000.0);
            quick.observe(Metric::Ttft, 100.0);
        }
        let mut big = candidate("big", 32_768, Some((3.0, 15.0)), Some(0.9), 4.0);
        big.latency = Some(&slow);
        let mut small = candidate("small", 8192, Some((0.1, 0.2)), Some(0.6), 0.0);
        small.latency = Some(&quick);
        let candidates = [big, small];
        let quality_only = MultiFactorConfig::default();
        assert_eq!(
            quality_only
                .select(&candidates, &request(1000))
                .unwrap()
                .candidate,
            0
        );
        let balanced = MultiFactorConfig {
            weights: FactorWeights {
                quality: 1.0,
                latency: 1.0,
                cost: 1.0,
                load: 0.0,
            },
            ..MultiFactorConfig::default()
        };
        assert_eq!(
            balanced
                .select(&candidates, &request(1000))
                .unwrap()
                .candidate,
            1
        );
        let ceiling = MultiFactorConfig {
            max_ttft_ms: Some(500.0),
            ..MultiFactorConfig::default()
        };
        let s = ceiling.select(&candidates, &request(1000)).unwrap();
        assert_eq!(s.candidate, 1, "big is pruned by its TTFT");
        assert!(
            ceiling.select(&candidates, &request(20_000)).is_none(),
            "only big fits, and it is pruned"
        );
        let cheap = MultiFactorConfig {
            max_cost: Some(0.001),
            ..MultiFactorConfig::default()
        };
        assert_eq!(
            cheap.select(&candidates, &request(1000)).unwrap().candidate,
            1
        );
    }
}
