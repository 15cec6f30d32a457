//! `learned`: a router trained offline (`switchyard train router`) predicts, from the
//! request's embedding and text, how well the route's strong and weak candidates
//! would answer; the strong one answers when its predicted gain over the weak one is
//! above the threshold (`margin`, or the gain that sent `share` of the router's
//! training prompts to the strong model). The select phase fills each candidate's
//! prediction; this file decides. When only one of the two fits, it answers; when the
//! request has no prediction (no embedding), the strong one answers, so that quality
//! is never lost to a missing signal.

use super::{Candidate, SelectRequest, Selected, Selection, fitting};
use switchyard_policy::LearnedConfig;

impl Selection for LearnedConfig {
    fn name(&self) -> &'static str {
        "learned"
    }

    fn select(&self, candidates: &[Candidate<'_>], request: &SelectRequest) -> Option<Selected> {
        let find = |name: &str| fitting(candidates, request).find(|(_, c)| c.name == name);
        let (strong, weak) = (find(&self.strong), find(&self.weak));
        match (strong, weak) {
            (Some((s, sc)), Some((w, wc))) => {
                let threshold = self.threshold();
                let Some(gain) = sc.predicted.zip(wc.predicted).map(|(a, b)| a - b) else {
                    return Some(Selected {
                        candidate: s,
                        reason:
                            "no prediction (the request has no embedding): the strong candidate"
                                .to_owned(),
                    });
                };
                let (candidate, verdict) = if gain > threshold {
                    (s, "above")
                } else {
                    (w, "at or below")
                };
                Some(Selected {
                    candidate,
                    reason: format!(
                        "predicted gain {gain:.3} of `{}` over `{}` (scores {:.3} and {:.3}) is {verdict} the threshold {threshold:.3}",
                        self.strong,
                        self.weak,
                        sc.predicted.unwrap_or_default(),
                        wc.predicted.unwrap_or_default()
                    ),
                })
            }
            (Some((i, _)), None) | (None, Some((i, _))) => Some(Selected {
                candidate: i,
                reason:
                    "the only one of the router's two candidates whose pools can hold the request"
                        .to_owned(),
            }),
            (None, None) => {
                let (i, c) = fitting(candidates, request).next()?;
                Some(Selected {
                    candidate: i,
                    reason: format!(
                        "neither router candidate can hold the request: `{}`, the first that can",
                        c.name
                    ),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{candidate, request};
    use super::*;

    fn config(margin: f64) -> LearnedConfig {
        LearnedConfig {
            router: None,
            strong: "big".into(),
            weak: "small".into(),
            share: None,
            margin: Some(margin),
            file: None,
        }
    }

    #[test]
    fn the_strong_candidate_answers_only_above_the_margin() {
        let mut big = candidate("big", 32_768, None, None, 0.0);
        let mut small = candidate("small", 4096, None, None, 0.0);
        let other = candidate("other", 65_536, None, None, 0.0);
        big.predicted = Some(0.9);
        small.predicted = Some(0.8);
        let candidates = [other, small, big];
        let pick = |margin: f64, tokens: u32| {
            config(margin)
                .select(&candidates, &request(tokens))
                .map(|s| s.candidate)
        };
        assert_eq!(pick(0.05, 100), Some(2), "gain 0.1 > 0.05");
        assert_eq!(pick(0.2, 100), Some(1), "gain 0.1 ≤ 0.2");
        assert_eq!(pick(0.2, 8000), Some(2), "small cannot hold it");
        assert_eq!(pick(0.2, 40_000), Some(0), "only other can");
        assert_eq!(pick(0.2, 100_000), None);
        let mut unpredicted = candidates.clone();
        unpredicted[2].predicted = None;
        let s = config(0.2).select(&unpredicted, &request(100)).unwrap();
        assert_eq!(s.candidate, 2);
        assert!(s.reason.contains("no embedding"));
    }
}
