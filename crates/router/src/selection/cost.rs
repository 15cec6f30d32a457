//! `cost`: the cheapest candidate, for this request's prompt and expected answer,
//! among those whose quality meets the floor; when none does, the best of them.

use super::{Candidate, SelectRequest, Selected, Selection, fitting};
use switchyard_policy::CostConfig;

impl Selection for CostConfig {
    fn name(&self) -> &'static str {
        "cost"
    }

    fn select(&self, candidates: &[Candidate<'_>], request: &SelectRequest) -> Option<Selected> {
        let quality = |c: &Candidate<'_>| c.quality.unwrap_or(0.0);
        let cheapest = fitting(candidates, request)
            .filter(|(_, c)| quality(c) >= self.min_quality)
            .min_by(|a, b| a.1.cost(request).total_cmp(&b.1.cost(request)));
        if let Some((i, c)) = cheapest {
            return Some(Selected {
                candidate: i,
                reason: format!(
                    "cheapest with quality ≥ {}: ${:.6} for {} + {} tokens",
                    self.min_quality,
                    c.cost(request),
                    request.prompt_tokens,
                    request.output_tokens
                ),
            });
        }
        let (i, c) = fitting(candidates, request)
            .max_by(|a, b| quality(a.1).total_cmp(&quality(b.1)).then(b.0.cmp(&a.0)))?;
        Some(Selected {
            candidate: i,
            reason: format!(
                "no candidate reaches quality {}; the best is {} ({})",
                self.min_quality,
                c.name,
                quality(c)
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{candidate, request};
    use super::*;

    #[test]
    fn cheapest_above_the_floor() {
        let candidates = [
            candidate("big", 32_768, Some((3.0, 15.0)), Some(0.9), 0.0),
            candidate("mid", 8192, Some((0.5, 1.5)), Some(0.75), 0.0),
            candidate("small", 8192, Some((0.1, 0.2)), Some(0.5), 0.0),
        ];
        let pick = |floor, tokens| {
            CostConfig { min_quality: floor }
                .select(&candidates, &request(tokens))
                .unwrap()
        };
        assert_eq!(pick(0.0, 1000).candidate, 2);
        assert_eq!(pick(0.7, 1000).candidate, 1);
        assert_eq!(pick(0.7, 20_000).candidate, 0, "mid cannot hold 20K");
        let s = pick(0.95, 1000);
        assert_eq!(s.candidate, 0);
        assert!(s.reason.contains("no candidate reaches"), "{}", s.reason);
        assert!(
            CostConfig { min_quality: 0.0 }
                .select(&candidates, &request(100_000))
                .is_none()
        );
    }
}
