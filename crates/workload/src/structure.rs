//! Structure signals: the shape of the conversation as a number, in a range.
//!
//! Features: `messages`, `user_turns`, `non_user_turns`, `assistant_turns`,
//! `system_turns`, `tool_results` (turns with role `tool`), `tool_calls` (calls the
//! assistant turns make), `tool_cycles` (assistant turns with tool calls answered by a
//! tool result), `tools_defined`, `non_text_parts` (images, audio, files), `images`,
//! `active_tool_loop` (1 when the latest turn is a tool result, so the model is
//! mid-loop), `session` (1 when the request names a session, a mid-session
//! continuation). Text features read the last user turn (within the scan window):
//! `regex_matches` (matches of `pattern`), `sequence` (1 when the terms of one of
//! `sequences` appear in order, case folded) and `keyword_density` (occurrences of
//! `keywords`, case folded, per whitespace-separated word). The signal holds when the
//! feature's value is in `[min, max)`.

use crate::signals::{
    BuildContext, FamilyConfig, Request, Signal, SignalFamily, SignalKey, SignalValue,
};
use serde::{Deserialize, Serialize};
use switchyard_wire::Conversation;

/// What a structure signal measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// Every turn.
    Messages,
    /// Turns with role `user`.
    UserTurns,
    /// Turns with any other role.
    NonUserTurns,
    /// Turns with role `assistant`.
    AssistantTurns,
    /// Turns with role `system` or `developer`.
    SystemTurns,
    /// Turns with role `tool`.
    ToolResults,
    /// Tool calls made by assistant turns.
    ToolCalls,
    /// Assistant turns with tool calls that a tool result follows.
    ToolCycles,
    /// Tools the request defines.
    ToolsDefined,
    /// Content parts that are not text.
    NonTextParts,
    /// Image content parts.
    Images,
    /// 1 when the latest turn is a tool result.
    ActiveToolLoop,
    /// 1 when the request names a session.
    Session,
    /// Matches of `pattern` in the last user turn.
    RegexMatches,
    /// 1 when one of `sequences` appears in order in the last user turn.
    Sequence,
    /// Occurrences of `keywords` per word of the last user turn.
    KeywordDensity,
}

impl Feature {
    fn measure(self, c: &Conversation) -> f64 {
        let count = |roles: &[&str]| {
            c.turns
                .iter()
                .filter(|t| roles.contains(&t.role.as_str()))
                .count() as f64
        };
        match self {
            Feature::Messages => c.turns.len() as f64,
            Feature::UserTurns => count(&["user"]),
            Feature::NonUserTurns => c.turns.len() as f64 - count(&["user"]),
            Feature::AssistantTurns => count(&["assistant"]),
            Feature::SystemTurns => count(&["system", "developer"]),
            Feature::ToolResults => count(&["tool", "function"]),
            Feature::ToolCalls => c
                .turns
                .iter()
                .filter(|t| t.role == "assistant")
                .map(|t| t.tool_calls)
                .sum::<usize>() as f64,
            Feature::ToolCycles => c
                .turns
                .windows(2)
                .filter(|w| {
                    w[0].role == "assistant"
                        && w[0].tool_calls > 0
                        && (w[1].role == "tool" || w[1].role == "function")
                })
                .count() as f64,
            Feature::ToolsDefined => c.tools_defined as f64,
            Feature::NonTextParts => c.turns.iter().map(|t| t.non_text_parts).sum::<usize>() as f64,
            Feature::Images => c.turns.iter().map(|t| t.images).sum::<usize>() as f64,
            Feature::ActiveToolLoop => f64::from(u8::from(
                c.turns
                    .last()
                    .is_some_and(|t| t.role == "tool" || t.role == "function"),
            )),
            Feature::Session => f64::from(u8::from(c.session_id.is_some())),
            // Measured from the text, by the signal's matcher.
            Feature::RegexMatches | Feature::Sequence | Feature::KeywordDensity => 0.0,
        }
    }
}

/// A structure signal.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StructureSignalConfig {
    /// The signal's name, as routes refer to it.
    pub name: String,
    /// What to measure.
    pub feature: Feature,
    /// Lowest value that matches (inclusive, default 1).
    #[serde(default = "one")]
    pub min: f64,
    /// Value from which it no longer matches (default: no bound).
    #[serde(default)]
    pub max: Option<f64>,
    /// `regex_matches`: the pattern (Rust `regex` syntax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// `sequence`: lists of terms, each to appear in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sequences: Vec<Vec<String>>,
    /// `keyword_density`: the words or phrases counted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
}

fn one() -> f64 {
    1.0
}

impl StructureSignalConfig {
    /// The quantity it ranges over: its feature, and for a text feature what it
    /// searches for (two patterns count two different things).
    pub fn quantity(&self) -> String {
        let feature = serde_json::to_value(self.feature)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{:?}", self.feature));
        match self.feature {
            Feature::RegexMatches => format!("{feature} {:?}", self.pattern),
            Feature::Sequence => format!("{feature} {:?}", self.sequences),
            Feature::KeywordDensity => format!("{feature} {:?}", self.keywords),
            _ => feature,
        }
    }
}

/// Matches when the feature's value is in `[min, max)`.
#[derive(Debug)]
pub struct StructureSignal {
    key: SignalKey,
    feature: Feature,
    min: f64,
    max: f64,
    text: Option<TextMatcher>,
}

/// What a text feature looks for.
#[derive(Debug)]
enum TextMatcher {
    Regex(regex::Regex),
    /// Each sequence's terms, lowercased.
    Sequences(Vec<Vec<String>>),
    Keywords(aho_corasick::AhoCorasick),
}

impl TextMatcher {
    /// Linear in the text: one regex pass; one forward search per term; one
    /// automaton pass.
    fn measure(&self, text: &str) -> f64 {
        match self {
            TextMatcher::Regex(regex) => regex.find_iter(text).count() as f64,
            TextMatcher::Sequences(sequences) => {
                let folded = text.to_lowercase();
                let in_order = |terms: &Vec<String>| {
                    let mut from = 0;
                    terms
                        .iter()
                        .all(|term| match folded[from..].find(term.as_str()) {
                            Some(at) => {
                                from += at + term.len();
                                true
                            }
                            None => false,
                        })
                };
                f64::from(u8::from(sequences.iter().any(in_order)))
            }
            TextMatcher::Keywords(automaton) => {
                let words = text.split_whitespace().count();
                if words == 0 {
                    return 0.0;
                }
                automaton.find_iter(text).count() as f64 / words as f64
            }
        }
    }
}

impl StructureSignal {
    /// Builds the signal, refusing empty ranges and text features without (or
    /// conversation features with) what they search for.
    pub fn new(config: &StructureSignalConfig) -> Result<Self, String> {
        let max = config.max.unwrap_or(f64::INFINITY);
        if config.min.is_nan() || max.is_nan() || config.min >= max {
            return Err(format!("the range [{}, {max}) is empty", config.min));
        }
        let text = match config.feature {
            Feature::RegexMatches => {
                let pattern = config
                    .pattern
                    .as_deref()
                    .ok_or("`regex_matches` needs a `pattern`")?;
                let regex = regex::RegexBuilder::new(pattern)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| format!("pattern does not compile: {e}"))?;
                Some(TextMatcher::Regex(regex))
            }
            Feature::Sequence => {
                let sequences: Vec<Vec<String>> = config
                    .sequences
                    .iter()
                    .map(|terms| {
                        terms
                            .iter()
                            .map(|t| t.to_lowercase())
                            .filter(|t| !t.is_empty())
                            .collect::<Vec<_>>()
                    })
                    .filter(|terms| !terms.is_empty())
                    .collect();
                if sequences.is_empty() {
                    return Err("`sequence` needs `sequences`, lists of terms".to_owned());
                }
                Some(TextMatcher::Sequences(sequences))
            }
            Feature::KeywordDensity => {
                if config.keywords.iter().all(String::is_empty) {
                    return Err("`keyword_density` needs `keywords`".to_owned());
                }
                let automaton = aho_corasick::AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                    .build(config.keywords.iter().filter(|k| !k.is_empty()))
                    .map_err(|e| e.to_string())?;
                Some(TextMatcher::Keywords(automaton))
            }
            _ => {
                if config.pattern.is_some()
                    || !config.sequences.is_empty()
                    || !config.keywords.is_empty()
                {
                    return Err(
                        "`pattern`, `sequences` and `keywords` go with the text features \
                         regex_matches, sequence and keyword_density"
                            .to_owned(),
                    );
                }
                None
            }
        };
        Ok(StructureSignal {
            key: SignalKey {
                family: SignalFamily::Structure,
                name: config.name.clone(),
            },
            feature: config.feature,
            min: config.min,
            max,
            text,
        })
    }
}

impl Signal for StructureSignal {
    fn key(&self) -> &SignalKey {
        &self.key
    }

    fn evaluate(&self, request: &Request<'_>) -> SignalValue {
        let value = match &self.text {
            Some(matcher) => matcher.measure(request.scan_text()),
            None => self.feature.measure(request.conversation),
        };
        SignalValue {
            matched: value >= self.min && value < self.max,
            value,
            confidence: 1.0,
            evidence: None,
            label: None,
            cost_ns: 0,
            error: None,
        }
    }
}

impl FamilyConfig for StructureSignalConfig {
    type Signal = StructureSignal;

    fn name(&self) -> &str {
        &self.name
    }

    fn build(&self, _: &BuildContext<'_>) -> Result<StructureSignal, String> {
        StructureSignal::new(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_wire::ChatRequest;

    fn conversation(json: &str) -> Conversation {
        let request: ChatRequest = serde_json::from_str(json).unwrap();
        Conversation::from_chat(&request, None)
    }

    fn measure(feature: Feature, c: &Conversation) -> f64 {
        let s = StructureSignal::new(&text_config(feature)).unwrap();
        s.evaluate(&Request::new(c, None)).value
    }

    #[test]
    fn measures_roles_tools_and_modalities() {
        let c = conversation(
            r#"{"model": "auto", "user": "u-1",
                "tools": [{"type": "function", "function": {"name": "search", "parameters": {}}}],
                "messages": [
                  {"role": "system", "content": "be brief"},
                  {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                               {"type": "image_url", "image_url": {"url": "data:,"}}]},
                  {"role": "assistant", "content": null, "tool_calls": [{"id": "1", "type": "function", "function": {"name": "search", "arguments": "{}"}}]},
                  {"role": "tool", "tool_call_id": "1", "content": "a cat"}
                ]}"#,
        );
        assert_eq!(measure(Feature::Messages, &c), 4.0);
        assert_eq!(measure(Feature::UserTurns, &c), 1.0);
        assert_eq!(measure(Feature::SystemTurns, &c), 1.0);
        assert_eq!(measure(Feature::ToolResults, &c), 1.0);
        assert_eq!(measure(Feature::ToolsDefined, &c), 1.0);
        assert_eq!(measure(Feature::NonTextParts, &c), 1.0);
        assert_eq!(measure(Feature::Images, &c), 1.0);
        assert_eq!(measure(Feature::NonUserTurns, &c), 3.0);
        assert_eq!(measure(Feature::ToolCalls, &c), 1.0);
        assert_eq!(measure(Feature::ToolCycles, &c), 1.0);
        assert_eq!(measure(Feature::ActiveToolLoop, &c), 1.0);
        assert_eq!(measure(Feature::Session, &c), 1.0);
        let plain = Conversation::from_prompt("auto", "hi");
        assert_eq!(measure(Feature::ActiveToolLoop, &plain), 0.0);
        assert_eq!(measure(Feature::Session, &plain), 0.0);
    }

    #[test]
    fn tool_calls_count_each_call_and_a_cycle_needs_its_result() {
        let c = conversation(
            r#"{"model": "auto", "messages": [
                  {"role": "user", "content": "weather in two cities"},
                  {"role": "assistant", "content": null, "tool_calls": [
                     {"id": "1", "type": "function", "function": {"name": "w", "arguments": "{}"}},
                     {"id": "2", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
                  {"role": "tool", "tool_call_id": "1", "content": "sun"},
                  {"role": "tool", "tool_call_id": "2", "content": "rain"},
                  {"role": "assistant", "content": "sun and rain"},
                  {"role": "user", "content": "and tomorrow?"},
                  {"role": "assistant", "content": null, "tool_calls": [
                     {"id": "3", "type": "function", "function": {"name": "w", "arguments": "{}"}}]}
                ]}"#,
        );
        assert_eq!(measure(Feature::ToolCalls, &c), 3.0);
        // The last call has no result yet: one completed cycle.
        assert_eq!(measure(Feature::ToolCycles, &c), 1.0);
        assert_eq!(measure(Feature::Images, &c), 0.0);
        assert_eq!(measure(Feature::NonUserTurns, &c), 5.0);
    }

    #[test]
    fn ranges_are_half_open_and_checked() {
        let deep = StructureSignal::new(&StructureSignalConfig {
            name: "deep".into(),
            feature: Feature::Messages,
            min: 2.0,
            max: Some(4.0),
            ..text_config(Feature::Messages)
        })
        .unwrap();
        let turns = |n: usize| {
            let messages: Vec<String> = (0..n)
                .map(|i| format!(r#"{{"role": "user", "content": "turn {i}"}}"#))
                .collect();
            conversation(&format!(
                r#"{{"model": "auto", "messages": [{}]}}"#,
                messages.join(",")
            ))
        };
        let holds = |n| deep.evaluate(&Request::new(&turns(n), None)).matched;
        assert!(!holds(1) && holds(2) && holds(3) && !holds(4));
        let empty = StructureSignalConfig {
            name: "e".into(),
            feature: Feature::Messages,
            min: 3.0,
            max: Some(3.0),
            ..text_config(Feature::Messages)
        };
        assert!(StructureSignal::new(&empty).unwrap_err().contains("empty"));
    }

    fn text_config(feature: Feature) -> StructureSignalConfig {
        StructureSignalConfig {
            name: "t".into(),
            feature,
            min: 1.0,
            max: None,
            pattern: None,
            sequences: Vec::new(),
            keywords: Vec::new(),
        }
    }

    fn text_value(config: &StructureSignalConfig, prompt: &str) -> f64 {
        let c = Conversation::from_prompt("auto", prompt);
        StructureSignal::new(config)
            .unwrap()
            .evaluate(&Request::new(&c, None))
            .value
    }

    #[test]
    fn text_features_count_patterns_find_sequences_and_measure_density() {
        let steps = StructureSignalConfig {
            pattern: Some(r"(?m)^\s*\d+\.\s+".into()),
            ..text_config(Feature::RegexMatches)
        };
        assert_eq!(
            text_value(&steps, "plan:\n1. read\n2. write\n 3. test"),
            3.0
        );
        assert_eq!(text_value(&steps, "version 1.2 is out"), 0.0);
        let ordered = StructureSignalConfig {
            sequences: vec![
                vec!["First".into(), "then".into()],
                vec!["plan".into(), "execute".into(), "verify".into()],
            ],
            ..text_config(Feature::Sequence)
        };
        assert_eq!(text_value(&ordered, "first build it, then ship it"), 1.0);
        assert_eq!(text_value(&ordered, "then build it, first ship it"), 0.0);
        assert_eq!(text_value(&ordered, "Plan it, execute, and verify"), 1.0);
        let dense = StructureSignalConfig {
            keywords: vec!["must".into(), "at most".into(), "within".into()],
            ..text_config(Feature::KeywordDensity)
        };
        // 3 hits over 11 words.
        let value = text_value(
            &dense,
            "It MUST fit within budget and take at most two days",
        );
        assert!((value - 3.0 / 11.0).abs() < 1e-9, "{value}");
        assert_eq!(text_value(&dense, ""), 0.0);
        // Each text feature needs its field, and no other feature takes one.
        for (config, wants) in [
            (text_config(Feature::RegexMatches), "pattern"),
            (text_config(Feature::Sequence), "sequences"),
            (text_config(Feature::KeywordDensity), "keywords"),
            (
                StructureSignalConfig {
                    keywords: vec!["x".into()],
                    ..text_config(Feature::Messages)
                },
                "text features",
            ),
            (
                StructureSignalConfig {
                    pattern: Some("(".into()),
                    ..text_config(Feature::RegexMatches)
                },
                "does not compile",
            ),
        ] {
            let error = StructureSignal::new(&config).unwrap_err();
            assert!(error.contains(wants), "{error}");
        }
    }
}
