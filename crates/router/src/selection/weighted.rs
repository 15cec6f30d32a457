//! `weighted`: random by weight, decided by a hash of the conversation's start so
//! that a retry or a later turn goes to the same model, while conversations overall
//! split by the weights.

use super::{Candidate, SelectRequest, Selected, Selection, fitting};
use switchyard_policy::WeightedConfig;
use switchyard_wire::hash::mix64;

impl Selection for WeightedConfig {
    fn name(&self) -> &'static str {
        "weighted"
    }

    fn select(&self, candidates: &[Candidate<'_>], request: &SelectRequest) -> Option<Selected> {
        let weight = |c: &Candidate<'_>| self.weights.get(c.name).copied().unwrap_or(1.0);
        let open: Vec<(usize, f64)> = fitting(candidates, request)
            .map(|(i, c)| (i, weight(c)))
            .filter(|(_, w)| *w > 0.0)
            .collect();
        let total: f64 = open.iter().map(|(_, w)| w).sum();
        if open.is_empty() || total <= 0.0 {
            return None;
        }
        // A uniform draw in [0, total) from the request hash and the seed.
        let draw = (mix64(request.hash ^ self.seed) >> 11) as f64 / (1u64 << 53) as f64 * total;
        let mut acc = 0.0;
        let mut chosen = open[open.len() - 1];
        for &(i, w) in &open {
            acc += w;
            if draw < acc {
                chosen = (i, w);
                break;
            }
        }
        Some(Selected {
            candidate: chosen.0,
            reason: format!(
                "weighted draw: {} has weight {} of {total}",
                candidates[chosen.0].name, chosen.1
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{candidate, request};
    use super::*;

    #[test]
    fn splits_by_weight_and_sticks_per_request() {
        let candidates = [
            candidate("a", 8192, None, None, 0.0),
            candidate("b", 8192, None, None, 0.0),
            candidate("tiny", 100, None, None, 0.0),
        ];
        let config = WeightedConfig {
            weights: [("a".to_owned(), 3.0), ("b".to_owned(), 1.0)].into(),
            seed: 1,
        };
        let mut counts = [0usize; 3];
        for hash in 0..20_000u64 {
            let r = SelectRequest {
                hash,
                ..request(500)
            };
            counts[config.select(&candidates, &r).unwrap().candidate] += 1;
        }
        assert_eq!(counts[2], 0, "tiny cannot hold 500 tokens");
        let share = counts[0] as f64 / 20_000.0;
        assert!((share - 0.75).abs() < 0.02, "{share}");
        let r = request(500);
        assert_eq!(
            config.select(&candidates, &r),
            config.select(&candidates, &r)
        );
        let zero = WeightedConfig {
            weights: [("a".to_owned(), 0.0), ("b".to_owned(), 0.0)].into(),
            seed: 0,
        };
        assert!(zero.select(&candidates, &r).is_none());
    }
}
