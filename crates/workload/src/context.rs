//! Context-length signals: does the request's prompt fall in a token range?

use crate::signals::{
    BuildContext, FamilyConfig, Request, Signal, SignalFamily, SignalKey, SignalValue,
};
use serde::{Deserialize, Serialize};
use switchyard_wire::TokenCount;

/// A context-length range. `min` is inclusive, `max` exclusive, so ranges such as
/// `0–4K` and `4K–32K` partition requests without overlap.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ContextSignalConfig {
    /// The signal's name, as routes refer to it.
    pub name: String,
    /// Lowest prompt size that matches (default: 0).
    #[serde(default)]
    pub min: Option<TokenCount>,
    /// Prompt size from which it no longer matches (default: no bound).
    #[serde(default)]
    pub max: Option<TokenCount>,
}

/// Matches when the prompt's estimated tokens fall in `[min, max)`.
#[derive(Debug)]
pub struct ContextSignal {
    key: SignalKey,
    min: u32,
    max: u32,
}

impl ContextSignal {
    /// Builds the signal, refusing empty ranges.
    pub fn new(config: &ContextSignalConfig) -> Result<Self, String> {
        let min = config.min.map_or(0, |t| t.0);
        let max = config.max.map_or(u32::MAX, |t| t.0);
        if config.min.is_none() && config.max.is_none() {
            return Err("set `min`, `max` or both".to_owned());
        }
        if min >= max {
            return Err(format!(
                "the range [{}, {}) is empty: `min` must be below `max`",
                TokenCount(min),
                TokenCount(max)
            ));
        }
        Ok(ContextSignal {
            key: SignalKey {
                family: SignalFamily::Context,
                name: config.name.clone(),
            },
            min,
            max,
        })
    }
}

impl Signal for ContextSignal {
    fn key(&self) -> &SignalKey {
        &self.key
    }

    fn evaluate(&self, request: &Request<'_>) -> SignalValue {
        let conversation = request.conversation;
        let tokens = conversation.prompt_tokens;
        SignalValue {
            matched: tokens >= self.min && tokens < self.max,
            value: f64::from(tokens),
            confidence: 1.0,
            evidence: Some(format!("{tokens} tokens")),
            label: None,
            cost_ns: 0,
            error: None,
        }
    }
}

impl FamilyConfig for ContextSignalConfig {
    type Signal = ContextSignal;

    fn name(&self) -> &str {
        &self.name
    }

    fn build(&self, _: &BuildContext<'_>) -> Result<ContextSignal, String> {
        ContextSignal::new(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_wire::Conversation;

    fn signal(min: Option<u32>, max: Option<u32>) -> Result<ContextSignal, String> {
        ContextSignal::new(&ContextSignalConfig {
            name: "c".into(),
            min: min.map(TokenCount),
            max: max.map(TokenCount),
        })
    }

    #[test]
    fn range_is_half_open() {
        let s = signal(Some(10), Some(20)).unwrap();
        let mut conv = Conversation::from_prompt("auto", "");
        for (tokens, expected) in [(9, false), (10, true), (19, true), (20, false)] {
            conv.prompt_tokens = tokens;
            assert_eq!(
                s.evaluate(&Request::new(&conv, None)).matched,
                expected,
                "{tokens}"
            );
        }
    }

    #[test]
    fn empty_ranges_are_refused() {
        assert!(signal(Some(20), Some(20)).is_err());
        assert!(signal(None, None).is_err());
        assert!(signal(None, Some(1)).is_ok());
    }
}
