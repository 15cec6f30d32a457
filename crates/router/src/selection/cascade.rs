//! `cascade`: the cheapest candidate answers first, and an answer whose confidence
//! (read from its token logprobs) falls short goes on to the next candidate. Select
//! picks the first step; the gateway's forward phase runs the rest ([`ladder`],
//! [`confidence`]).
//!
//! Pool-aware: when the first step's predicted time to first token breaks the
//! route's budget while the last step's pools are idle, the cheap steps are skipped.

use super::{Candidate, SelectRequest, Selected, Selection, fitting};
use switchyard_policy::{CascadeConfig, ConfidenceCheck};

/// The steps of a cascade: the candidates that fit, cheapest first by configured
/// price (those without a price after the priced ones), ties in the route's order.
pub fn ladder(candidates: &[Candidate<'_>], request: &SelectRequest) -> Vec<usize> {
    let mut steps: Vec<(usize, f64)> = fitting(candidates, request)
        .map(|(i, c)| (i, c.cost(request)))
        .collect();
    steps.sort_by(|a, b| a.1.total_cmp(&b.1));
    steps.into_iter().map(|(i, _)| i).collect()
}

/// A whole answer's confidence: from its first choice's token logprobs (OpenAI's
/// `choices[0].logprobs.content[*].logprob`), exp of their mean or of their lowest; or
/// whether its first two choices agree (self-consistency). `None` when the answer
/// carries neither, and for a verifier (the gateway asks it).
pub fn confidence(check: &ConfidenceCheck, answer: &serde_json::Value) -> Option<f64> {
    let text = |i: usize| {
        answer
            .get("choices")?
            .get(i)?
            .get("message")?
            .get("content")?
            .as_str()
            .map(crate::shadow::normalized)
    };
    match check {
        ConfidenceCheck::SelfConsistency => {
            return Some(if text(0)? == text(1)? { 1.0 } else { 0.0 });
        }
        ConfidenceCheck::Verifier(_) => return None,
        ConfidenceCheck::MeanLogprob | ConfidenceCheck::MinLogprob => {}
    }
    let tokens = answer
        .get("choices")?
        .get(0)?
        .get("logprobs")?
        .get("content")?
        .as_array()?;
    let logprobs = tokens
        .iter()
        .filter_map(|t| t.get("logprob")?.as_f64())
        .filter(|l| l.is_finite());
    let (count, sum, low) = logprobs.fold((0usize, 0.0, 0.0_f64), |(n, s, m), l| {
        (n + 1, s + l, m.min(l))
    });
    if count == 0 {
        return None;
    }
    let value = match check {
        ConfidenceCheck::MeanLogprob => sum / count as f64,
        _ => low,
    };
    Some(value.min(0.0).exp())
}

/// A model's pools count as idle below one request in flight per endpoint.
const IDLE_BELOW: f64 = 1.0;

impl Selection for CascadeConfig {
    fn name(&self) -> &'static str {
        "cascade"
    }

    fn select(&self, candidates: &[Candidate<'_>], request: &SelectRequest) -> Option<Selected> {
        let steps = ladder(candidates, request);
        let (&first, &last) = (steps.first()?, steps.last()?);
        let (cheap, strong) = (&candidates[first], &candidates[last]);
        if let (Some(budget), Some(ttft), true) =
            (self.ttft_budget_ms, cheap.ttft_ms, first != last)
            && ttft > budget
            && strong.load < IDLE_BELOW
        {
            return Some(Selected {
                candidate: last,
                reason: format!(
                    "cascade skipped: {} is predicted to take {ttft:.0} ms to the first token, \
                     over the route's {budget:.0} ms, and {}'s pools are idle",
                    cheap.name, strong.name
                ),
            });
        }
        let then: Vec<&str> = steps[1..].iter().map(|&i| candidates[i].name).collect();
        let reason = if then.is_empty() {
            format!("cascade: {} is the only candidate that fits", cheap.name)
        } else {
            format!(
                "cascade: {} first, then {} while confidence < {}",
                cheap.name,
                then.join(", then "),
                self.min_confidence
            )
        };
        Some(Selected {
            candidate: first,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{candidate, request};
    use super::*;
    use serde_json::json;

    #[test]
    fn cheapest_first_unpriced_last_and_only_what_fits() {
        let candidates = [
            candidate("big", 32_768, Some((3.0, 15.0)), None, 0.0),
            candidate("free", 32_768, None, None, 0.0),
            candidate("small", 8192, Some((0.1, 0.2)), None, 0.0),
        ];
        assert_eq!(ladder(&candidates, &request(1000)), vec![2, 0, 1]);
        assert_eq!(ladder(&candidates, &request(20_000)), vec![0, 1]);
        let s = CascadeConfig::default()
            .select(&candidates, &request(1000))
            .unwrap();
        assert_eq!(s.candidate, 2);
        assert!(
            s.reason.contains("small first, then big, then free"),
            "{}",
            s.reason
        );
    }

    #[test]
    fn skips_the_cheap_step_when_it_is_slow_and_the_strong_pool_idle() {
        let mut candidates = [
            candidate("small", 8192, Some((0.1, 0.2)), None, 0.0),
            candidate("big", 8192, Some((3.0, 15.0)), None, 0.0),
        ];
        let config = CascadeConfig {
            ttft_budget_ms: Some(500.0),
            ..CascadeConfig::default()
        };
        let pick = |c: &[Candidate<'_>]| config.select(c, &request(1000)).unwrap();
        assert_eq!(pick(&candidates).candidate, 0, "no prediction yet");
        candidates[0].ttft_ms = Some(400.0);
        assert_eq!(pick(&candidates).candidate, 0, "within budget");
        candidates[0].ttft_ms = Some(900.0);
        let skipped = pick(&candidates);
        assert_eq!(skipped.candidate, 1);
        assert!(skipped.reason.contains("900 ms"), "{}", skipped.reason);
        candidates[1].load = 3.0;
        assert_eq!(pick(&candidates).candidate, 0, "the strong pool is busy");
    }

    #[test]
    fn confidence_reads_the_mean_or_lowest_logprob() {
        let answer = json!({"choices": [{"logprobs": {"content": [
            {"token": "a", "logprob": -0.1}, {"token": "b", "logprob": -0.5},
        ]}}]});
        let mean = confidence(&ConfidenceCheck::MeanLogprob, &answer).unwrap();
        assert!((mean - (-0.3f64).exp()).abs() < 1e-12);
        let low = confidence(&ConfidenceCheck::MinLogprob, &answer).unwrap();
        assert!((low - (-0.5f64).exp()).abs() < 1e-12);
        assert_eq!(
            confidence(&ConfidenceCheck::MeanLogprob, &json!({"choices": [{}]})),
            None
        );
        let empty = json!({"choices": [{"logprobs": {"content": []}}]});
        assert_eq!(confidence(&ConfidenceCheck::MeanLogprob, &empty), None);
        // Self-consistency: the first two choices agree or not.
        let two = |a: &str, b: &str| json!({"choices": [{"message": {"content": a}}, {"message": {"content": b}}]});
        let sc = ConfidenceCheck::SelfConsistency;
        assert_eq!(confidence(&sc, &two("Paris ", "paris")), Some(1.0));
        assert_eq!(confidence(&sc, &two("Paris", "Lyon")), Some(0.0));
        assert_eq!(confidence(&sc, &answer), None, "one choice");
    }
}
