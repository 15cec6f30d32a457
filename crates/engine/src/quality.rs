//! Whether an answer is right, how sure the engine is of it, and the token logprobs
//! that say so: deterministic for a prompt, and calibrated by construction.
//!
//! An engine has a [`Skill`]: its accuracy μ and a concentration κ. For each prompt
//! its confidence c is drawn from Beta(κμ, κ(1−μ)) and the answer is right with
//! probability c, so P(right | c) = c: the confidence is calibrated, and κ sets how
//! much it tells apart (small κ spreads c towards 0 and 1). When the answer is known
//! (an answer key from a labelled outcome file), c is drawn from the posterior given
//! it, Beta(κμ + 1, κ(1−μ)) for a right answer and Beta(κμ, κ(1−μ) + 1) for a wrong
//! one: the same joint law, conditioned on the label. The token logprobs average
//! exactly ln c, so a reader's mean-logprob confidence, exp(mean logprob), is c.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};
use switchyard_wire::hash::{GOLDEN_GAMMA, mix64};

/// How often an engine is right and how well its confidence separates right from
/// wrong.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Skill {
    /// The share of its answers that are right, in (0, 1).
    pub accuracy: f64,
    /// κ, above 0: the confidence's Beta is Beta(κμ, κ(1−μ)). At κ = 2 and μ = ½ the
    /// confidence is uniform and ranks a right answer above a wrong one 83% of the
    /// time (AUROC); larger κ tells them apart less.
    pub concentration: f64,
}

impl Default for Skill {
    fn default() -> Self {
        Skill {
            accuracy: 0.7,
            concentration: 4.0,
        }
    }
}

impl Skill {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.accuracy > 0.0 && self.accuracy < 1.0) {
            return Err(format!("accuracy {} is not in (0, 1)", self.accuracy));
        }
        if !(self.concentration.is_finite() && self.concentration > 0.0) {
            return Err(format!(
                "concentration {} is not above 0",
                self.concentration
            ));
        }
        Ok(())
    }
}

/// Whether an answer is right and the engine's confidence in it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Verdict {
    /// The answer is right.
    pub correct: bool,
    /// The engine's calibrated confidence, in (0, 1).
    pub confidence: f64,
}

/// Salt of the confidence draw, so it is independent of the text and length draws.
const CONFIDENCE_SALT: u64 = 0x5eed_c0af_1de7_ce00;

/// The verdict on the answer to the prompt with hash `seed`: drawn from the skill, or
/// conditioned on `known` when an answer key says whether the answer is right.
pub fn judge(seed: u64, skill: Skill, known: Option<bool>) -> Verdict {
    let mut rng = StdRng::seed_from_u64(mix64(seed ^ CONFIDENCE_SALT));
    let mu = skill.accuracy.clamp(1e-6, 1.0 - 1e-6);
    let kappa = skill.concentration.max(1e-6);
    let (a, b) = (kappa * mu, kappa * (1.0 - mu));
    let (a, b) = match known {
        Some(true) => (a + 1.0, b),
        Some(false) => (a, b + 1.0),
        None => (a, b),
    };
    let confidence = Beta::new(a, b)
        .map_or(mu, |beta| beta.sample(&mut rng))
        .clamp(1e-6, 1.0 - 1e-6);
    let correct = match known {
        Some(known) => known,
        None => unit(mix64(seed.wrapping_add(GOLDEN_GAMMA) ^ CONFIDENCE_SALT)) < confidence,
    };
    Verdict {
        correct,
        confidence,
    }
}

/// Salt of the texts of wrong answers.
const WRONG_SALT: u64 = 0x0bad_a115_3e75_0001;

/// The seed an answer's words are drawn from: a right answer's words are the same in
/// every sample (the prompt's own seed); each wrong sample's differ (`sample` 0 is the
/// first answer, 1… the further ones of `n`).
pub fn text_seed(seed: u64, correct: bool, sample: u32) -> u64 {
    if correct {
        seed
    } else {
        mix64(seed ^ WRONG_SALT ^ u64::from(sample).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}

/// Whether a further sample (`sample` ≥ 1, at a temperature above 0) of an answer
/// whose confidence is `confidence` lands on the right answer: with that probability,
/// independently per sample. Two samples agree exactly when both are right, so
/// agreement is a confidence signal (self-consistency).
pub fn sample_right(seed: u64, confidence: f64, sample: u32) -> bool {
    unit(mix64(
        seed ^ CONFIDENCE_SALT ^ u64::from(sample).wrapping_mul(0xD6E8_FEB8_6659_FD93),
    )) < confidence
}

/// A number in [0, 1) from a hash.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The logprob of token `index` of an answer of `length` tokens whose confidence is
/// `confidence`. Tokens pair up (weights ½ + u and 1½ − u) and an odd last token has
/// weight 1, so the logprobs of the whole answer average exactly ln(confidence); every
/// one is at most 0.
pub fn token_logprob(seed: u64, confidence: f64, index: u32, length: u32) -> f64 {
    let base = confidence.clamp(1e-6, 1.0).ln();
    let pair = index / 2;
    let weight = if !length.is_multiple_of(2) && index + 1 == length {
        1.0
    } else {
        let u = unit(mix64(
            seed ^ u64::from(pair).wrapping_mul(0x9E6C_63D0_676A_9A99),
        ));
        if index.is_multiple_of(2) {
            0.5 + u
        } else {
            1.5 - u
        }
    };
    base * weight
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds(n: u64) -> impl Iterator<Item = u64> {
        (0..n).map(|i| mix64(i.wrapping_mul(0x1234_5678_9abc_def1)))
    }

    #[test]
    fn confidence_is_calibrated_and_accuracy_is_the_skill() {
        let skill = Skill {
            accuracy: 0.6,
            concentration: 2.0,
        };
        let verdicts: Vec<Verdict> = seeds(20_000).map(|s| judge(s, skill, None)).collect();
        let right = verdicts.iter().filter(|v| v.correct).count() as f64 / 20_000.0;
        assert!((right - 0.6).abs() < 0.02, "accuracy {right}");
        // Within each confidence decile, the share right is about the decile's middle.
        for decile in 1..9 {
            let low = f64::from(decile) / 10.0;
            let inside: Vec<&Verdict> = verdicts
                .iter()
                .filter(|v| v.confidence >= low && v.confidence < low + 0.1)
                .collect();
            let share = inside.iter().filter(|v| v.correct).count() as f64 / inside.len() as f64;
            assert!(
                (share - (low + 0.05)).abs() < 0.06,
                "decile {low}: {share} of {} right",
                inside.len()
            );
        }
    }

    #[test]
    fn a_known_answer_keeps_the_label_and_moves_the_confidence() {
        let skill = Skill::default();
        let mean = |known| {
            seeds(5000)
                .map(|s| {
                    let v = judge(s, skill, Some(known));
                    assert_eq!(v.correct, known);
                    v.confidence
                })
                .sum::<f64>()
                / 5000.0
        };
        let (right, wrong) = (mean(true), mean(false));
        // Beta(κμ+1, κ(1−μ)) has mean (κμ+1)/(κ+1) = 3.8/5; the wrong one 2.8/5.
        assert!((right - 0.76).abs() < 0.01, "{right}");
        assert!((wrong - 0.56).abs() < 0.01, "{wrong}");
        assert_eq!(
            judge(9, skill, None),
            judge(9, skill, None),
            "deterministic"
        );
    }

    #[test]
    fn logprobs_average_the_log_confidence() {
        for length in [1u32, 2, 7, 64] {
            let sum: f64 = (0..length)
                .map(|i| {
                    let l = token_logprob(42, 0.8, i, length);
                    assert!(l <= 0.0);
                    l
                })
                .sum();
            let mean = sum / f64::from(length);
            assert!((mean - 0.8f64.ln()).abs() < 1e-12, "{length}: {mean}");
        }
        assert!(token_logprob(1, 0.8, 0, 4) != token_logprob(1, 0.8, 2, 4));
    }
}
