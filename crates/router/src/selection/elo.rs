//! `elo`: the candidate with the best Elo rating, from pairwise preferences (`POST
//! /v1/feedback` with `preferred_over`: one answer was better than another, of any
//! route; the ratings are the models'), less `cost_weight` × 400 points × its cost scaled by
//! the costliest candidate's. Unrated candidates stand at 1500; ties go to the higher
//! configured `quality`, then to the order listed. Ratings do not explore: the
//! comparisons come from traffic split by other means (shadow requests, A/B tests).

use super::{Candidate, SelectRequest, Selected, Selection, fitting, relative_costs};
use switchyard_policy::EloConfig;

impl Selection for EloConfig {
    fn name(&self) -> &'static str {
        "elo"
    }

    fn select(&self, candidates: &[Candidate<'_>], request: &SelectRequest) -> Option<Selected> {
        let fit: Vec<(usize, &Candidate<'_>)> = fitting(candidates, request).collect();
        let costs = relative_costs(&fit, request);
        let scores: Vec<f64> = fit
            .iter()
            .zip(&costs)
            .map(|((_, c), cost)| c.outcomes.elo - self.cost_weight * 400.0 * cost)
            .collect();
        let best = (0..fit.len()).max_by(|&x, &y| {
            let ((i, a), (j, b)) = (fit[x], fit[y]);
            scores[x]
                .total_cmp(&scores[y])
                .then(
                    a.quality
                        .unwrap_or(0.0)
                        .total_cmp(&b.quality.unwrap_or(0.0)),
                )
                .then(j.cmp(&i))
        })?;
        let (index, c) = fit[best];
        Some(Selected {
            candidate: index,
            reason: format!(
                "best rating of {}: {:.0} after {} comparisons{}",
                fit.len(),
                1500.0 + c.outcomes.elo,
                c.outcomes.games,
                if self.cost_weight > 0.0 {
                    format!(", {:.0} after cost", 1500.0 + scores[best])
                } else {
                    String::new()
                }
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{candidate, request};
    use super::*;

    #[test]
    fn the_best_rating_wins_ties_go_to_quality_then_order_and_cost_counts() {
        let mut a = candidate("a", 8192, Some((1.0, 1.0)), Some(0.6), 0.0);
        let mut b = candidate("b", 8192, Some((10.0, 10.0)), Some(0.9), 0.0);
        let c = candidate("c", 100, None, Some(0.99), 0.0);
        let pick = |config: &EloConfig, cs: &[Candidate<'_>]| {
            config.select(cs, &request(1000)).unwrap().candidate
        };
        let plain = EloConfig::default();
        assert_eq!(
            pick(&plain, &[a.clone(), b.clone(), c.clone()]),
            1,
            "unrated: quality"
        );
        a.outcomes.elo = 40.0;
        b.outcomes.elo = -40.0;
        assert_eq!(pick(&plain, &[a.clone(), b.clone(), c.clone()]), 0);
        b.outcomes.elo = 100.0;
        assert_eq!(pick(&plain, &[a.clone(), b.clone()]), 1);
        // 60 points behind, but a costs a tenth: with cost_weight 0.25 (100 points for
        // the costliest price) a wins.
        let frugal = EloConfig { cost_weight: 0.25 };
        assert_eq!(pick(&frugal, &[a, b]), 0);
    }
}
