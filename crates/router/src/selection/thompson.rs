//! `thompson`: Thompson sampling over outcomes. Each fitting candidate's arm (route,
//! model and bucket) has a Beta posterior: a prior worth `prior_strength` outcomes
//! centred on the model's configured `quality` (0.5 without one), plus the arm's
//! discounted sums of scores and of their complements. One draw per candidate; the
//! highest draw, less `cost_weight` times its cost scaled by the costliest
//! candidate's, wins. Candidates that answer well are drawn high more often; the
//! others are still tried now and then, as much as their posterior's spread allows.

use super::{Candidate, SelectRequest, Selected, Selection, fitting, relative_costs};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Beta, Distribution};
use switchyard_policy::ThompsonConfig;

/// The prior's mean for a model without `quality`.
const UNKNOWN_QUALITY: f64 = 0.5;

/// SplitMix64's finalizer: spreads a counter over all 64 bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The Beta posterior's parameters for a candidate.
fn posterior(config: &ThompsonConfig, c: &Candidate<'_>) -> (f64, f64) {
    let q = c.quality.unwrap_or(UNKNOWN_QUALITY).clamp(0.01, 0.99);
    (
        q * config.prior_strength + c.outcomes.good,
        (1.0 - q) * config.prior_strength + c.outcomes.bad,
    )
}

impl Selection for ThompsonConfig {
    fn name(&self) -> &'static str {
        "thompson"
    }

    fn select(&self, candidates: &[Candidate<'_>], request: &SelectRequest) -> Option<Selected> {
        let mut rng = SmallRng::seed_from_u64(mix(self.seed ^ mix(request.draw)));
        let fit: Vec<(usize, &Candidate<'_>)> = fitting(candidates, request).collect();
        let costs = relative_costs(&fit, request);
        let mut best: Option<(usize, f64, f64, f64)> = None;
        for (&(index, c), cost) in fit.iter().zip(costs) {
            let (a, b) = posterior(self, c);
            let theta = Beta::new(a, b).map_or(a / (a + b), |beta| beta.sample(&mut rng));
            let score = theta - self.cost_weight * cost;
            if best.is_none_or(|(_, s, _, _)| score > s) {
                best = Some((index, score, theta, a / (a + b)));
            }
        }
        let (index, score, theta, mean) = best?;
        let c = &candidates[index];
        Some(Selected {
            candidate: index,
            reason: format!(
                "best draw of {}: {theta:.3} (posterior mean {mean:.3} after {} outcomes){}",
                fit.len(),
                c.outcomes.outcomes,
                if self.cost_weight > 0.0 {
                    format!(", {score:.3} after cost")
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
    use crate::outcomes::ArmStats;
    use rand::Rng;

    /// Plays `rounds` requests against models that answer well with probabilities
    /// `truth`, feeding each outcome back; returns how often each was chosen in the
    /// last `tail` rounds.
    fn play(config: &ThompsonConfig, truth: &[f64], rounds: usize, tail: usize) -> Vec<usize> {
        let mut arms = vec![ArmStats::default(); truth.len()];
        let mut world = SmallRng::seed_from_u64(42);
        let mut chosen = vec![0; truth.len()];
        let names = ["a", "b", "c", "d"];
        for round in 0..rounds {
            let candidates: Vec<Candidate<'_>> = truth
                .iter()
                .enumerate()
                .map(|(i, _)| {
                    let mut c = candidate(names[i], 8192, Some((1.0, 1.0)), Some(0.5), 0.0);
                    c.outcomes = arms[i];
                    c
                })
                .collect();
            let mut r = request(100);
            r.draw = round as u64;
            let pick = config.select(&candidates, &r).unwrap().candidate;
            let score = if world.random::<f64>() < truth[pick] {
                1.0
            } else {
                0.0
            };
            let arm = &mut arms[pick];
            arm.good = arm.good * config.discount + score;
            arm.bad = arm.bad * config.discount + (1.0 - score);
            arm.outcomes += 1;
            if round >= rounds - tail {
                chosen[pick] += 1;
            }
        }
        chosen
    }

    #[test]
    fn finds_the_better_model_within_200_requests() {
        let config = ThompsonConfig {
            discount: 1.0,
            ..ThompsonConfig::default()
        };
        // 0.9 against 0.6 and 0.5: after 200 requests, the next 100 go mostly to the best.
        let chosen = play(&config, &[0.6, 0.9, 0.5], 300, 100);
        assert!(chosen[1] >= 85, "{chosen:?}");
    }

    #[test]
    fn a_change_of_quality_is_relearned_with_discounting() {
        let config = ThompsonConfig::default();
        let mut arms = [
            ArmStats {
                good: 180.0,
                bad: 20.0,
                outcomes: 200,
                ..ArmStats::default()
            },
            ArmStats {
                good: 20.0,
                bad: 20.0,
                outcomes: 40,
                ..ArmStats::default()
            },
        ];
        let mut world = SmallRng::seed_from_u64(7);
        // Model a was good (0.9) and now fails; model b answers well at 0.8.
        let truth = [0.1, 0.8];
        let mut late = [0usize; 2];
        for round in 0..400 {
            let candidates: Vec<Candidate<'_>> = ["a", "b"]
                .iter()
                .zip(&arms)
                .map(|(n, s)| {
                    let mut c = candidate(n, 8192, None, None, 0.0);
                    c.outcomes = *s;
                    c
                })
                .collect();
            let mut r = request(100);
            r.draw = round;
            let pick = config.select(&candidates, &r).unwrap().candidate;
            let score = f64::from(u8::from(world.random::<f64>() < truth[pick]));
            let arm = &mut arms[pick];
            arm.good = arm.good * config.discount + score;
            arm.bad = arm.bad * config.discount + (1.0 - score);
            arm.outcomes += 1;
            if round >= 300 {
                late[pick] += 1;
            }
        }
        assert!(late[1] >= 90, "{late:?}");
    }

    #[test]
    fn cost_weight_prefers_the_cheap_model_when_quality_is_close() {
        let mut cheap = candidate("cheap", 8192, Some((0.1, 0.1)), None, 0.0);
        let mut dear = candidate("dear", 8192, Some((10.0, 10.0)), None, 0.0);
        cheap.outcomes = ArmStats {
            good: 880.0,
            bad: 120.0,
            outcomes: 1000,
            ..ArmStats::default()
        };
        dear.outcomes = ArmStats {
            good: 900.0,
            bad: 100.0,
            outcomes: 1000,
            ..ArmStats::default()
        };
        let candidates = [dear, cheap];
        let count = |config: &ThompsonConfig| {
            (0..200)
                .filter(|&i| {
                    let mut r = request(100);
                    r.draw = i;
                    config.select(&candidates, &r).unwrap().candidate == 1
                })
                .count()
        };
        let plain = ThompsonConfig::default();
        let frugal = ThompsonConfig {
            cost_weight: 0.1,
            ..ThompsonConfig::default()
        };
        assert!(
            count(&plain) < 60,
            "without a cost term the better one wins"
        );
        assert_eq!(
            count(&frugal),
            200,
            "2 points of quality are worth less than 0.1"
        );
    }

    #[test]
    fn the_prior_follows_quality_and_only_fitting_candidates_are_drawn() {
        let good = candidate("good", 4096, None, Some(0.95), 0.0);
        let poor = candidate("poor", 32_768, None, Some(0.05), 0.0);
        let candidates = [poor, good];
        let config = ThompsonConfig {
            prior_strength: 50.0,
            ..ThompsonConfig::default()
        };
        for i in 0..50 {
            let mut r = request(100);
            r.draw = i;
            assert_eq!(config.select(&candidates, &r).unwrap().candidate, 1);
        }
        let mut long = request(10_000);
        long.draw = 1;
        assert_eq!(config.select(&candidates, &long).unwrap().candidate, 0);
        assert!(config.select(&candidates, &request(100_000)).is_none());
    }
}
