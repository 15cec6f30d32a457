//! `static`: the first candidate, in the order listed, that can hold the request.

use super::{Candidate, SelectRequest, Selected, Selection};

/// Picks candidates in configuration order, skipping those whose pools are too small.
#[derive(Debug, Clone, Copy, Default)]
pub struct StaticOrder;

impl Selection for StaticOrder {
    fn name(&self) -> &'static str {
        "static"
    }

    fn select(&self, candidates: &[Candidate<'_>], request: &SelectRequest) -> Option<Selected> {
        let tokens = request.tokens;
        let index = candidates.iter().position(|c| c.fits(tokens))?;
        let reason = if index == 0 {
            "first candidate".to_owned()
        } else {
            format!(
                "first candidate whose context window holds {tokens} tokens (skipped {})",
                candidates[..index]
                    .iter()
                    .map(|c| format!("{}: {} max", c.name, c.max_context))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Some(Selected {
            candidate: index,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{candidate, request};
    use super::*;

    #[test]
    fn skips_candidates_too_small_for_the_request() {
        let candidates = [
            candidate("small", 4096, None, None, 0.0),
            candidate("big", 131_072, None, None, 0.0),
        ];
        let pick = |t| StaticOrder.select(&candidates, &request(t));
        assert_eq!(pick(1000).unwrap().candidate, 0);
        let s = pick(10_000).unwrap();
        assert_eq!(s.candidate, 1);
        assert!(s.reason.contains("small: 4096 max"), "{}", s.reason);
        assert!(pick(200_000).is_none());
        assert!(StaticOrder.select(&[], &request(1)).is_none());
    }
}
