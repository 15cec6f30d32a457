//! Structure signals: the shape of the conversation as a number, in a range.
//!
//! Features: `messages`, `user_turns`, `non_user_turns`, `assistant_turns`,
//! `system_turns`, `tool_results` (turns with role `tool`), `tool_calls` (calls the
//! assistant turns make), `tool_cycles` (assistant turns with tool calls answered by a
//! tool result), `tools_defined`, `non_text_parts` (images, audio, files), `images`,
//! `active_tool_loop` (1 when the latest turn is a tool result, so the model is
//! mid-loop), `session` (1 when the request names a session, a mid-session
//! continuation). The signal holds when the feature's value is in `[min, max)`.

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
}

fn one() -> f64 {
    1.0
}

/// Matches when the feature's value is in `[min, max)`.
#[derive(Debug)]
pub struct StructureSignal {
    key: SignalKey,
    feature: Feature,
    min: f64,
    max: f64,
}

impl StructureSignal {
    /// Builds the signal, refusing empty ranges.
    pub fn new(config: &StructureSignalConfig) -> Result<Self, String> {
        let max = config.max.unwrap_or(f64::INFINITY);
        if config.min.is_nan() || max.is_nan() || config.min >= max {
            return Err(format!("the range [{}, {max}) is empty", config.min));
        }
        Ok(StructureSignal {
            key: SignalKey {
                family: SignalFamily::Structure,
                name: config.name.clone(),
            },
            feature: config.feature,
            min: config.min,
            max,
        })
    }
}

impl Signal for StructureSignal {
    fn key(&self) -> &SignalKey {
        &self.key
    }

    fn evaluate(&self, request: &Request<'_>) -> SignalValue {
        let value = self.feature.measure(request.conversation);
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
        let s = StructureSignal::new(&StructureSignalConfig {
            name: "s".into(),
            feature,
            min: 1.0,
            max: None,
        })
        .unwrap();
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
        };
        assert!(StructureSignal::new(&empty).unwrap_err().contains("empty"));
    }
}
