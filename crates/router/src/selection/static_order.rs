//! `static`: the first candidate, in the order listed, that can hold the request.

use super::{Candidate, Selected, Selection};

/// Picks candidates in configuration order, skipping those whose pools are too small.
#[derive(Debug, Clone, Copy, Default)]
pub struct StaticOrder;

impl Selection for StaticOrder {
    fn name(&self) -> &'static str {
        "static"
    }

    fn select(&self, candidates: &[Candidate<'_>], tokens: u32) -> Option<Selected> {
        let index = candidates.iter().position(|c| c.max_context >= tokens)?;
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
    use super::*;

    #[test]
    fn skips_candidates_too_small_for_the_request() {
        let candidates = [
            Candidate {
                model: 0,
                name: "small",
                max_context: 4096,
            },
            Candidate {
                model: 1,
                name: "big",
                max_context: 131_072,
            },
        ];
        assert_eq!(StaticOrder.select(&candidates, 1000).unwrap().candidate, 0);
        let s = StaticOrder.select(&candidates, 10_000).unwrap();
        assert_eq!(s.candidate, 1);
        assert!(s.reason.contains("small: 4096 max"), "{}", s.reason);
        assert!(StaticOrder.select(&candidates, 200_000).is_none());
        assert!(StaticOrder.select(&[], 1).is_none());
    }
}
