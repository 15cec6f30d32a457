//! Prompt compression: fit a long conversation into a smaller context window.
//!
//! Deterministic and conservative. The system and developer messages and the latest
//! turns (the last user message and the two messages before it) are never touched.
//! Tool results in between are shortened first (they are the usual bulk of an agent's
//! history), then other messages in between, oldest first. A shortened message keeps
//! its head and tail and says what was cut: `[… N tokens removed …]`. Only plain-text
//! contents are shortened; a conversation that cannot reach the target is left whole.

use serde::Serialize;
use switchyard_wire::{ChatRequest, MessageContent};

/// Tokens a message costs beyond its text (chat template framing).
const FRAMING: u32 = 4;
/// Tokens a shortened message keeps at each end.
const KEEP_EACH_END: u32 = 48;
/// Messages at the end that are never shortened.
const PROTECTED_TAIL: usize = 3;

/// One message that was shortened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cut {
    /// Its index in `messages`.
    pub message: usize,
    /// Its role.
    pub role: String,
    /// Tokens removed from it.
    pub tokens_removed: u32,
}

/// What compression did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Compression {
    /// Prompt tokens before.
    pub original_tokens: u32,
    /// Prompt tokens after.
    pub tokens: u32,
    /// The messages shortened.
    pub cuts: Vec<Cut>,
}

/// Why a conversation could not be compressed enough.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("the conversation can come down to {reachable} tokens, not {target}")]
pub struct CannotCompress {
    /// Prompt tokens it could reach.
    pub reachable: u32,
    /// Prompt tokens wanted.
    pub target: u32,
}

/// Counts the tokens of a text.
pub type Count<'a> = &'a dyn Fn(&str) -> u32;

fn message_tokens(content: Option<&MessageContent>, count: Count<'_>) -> u32 {
    content.map_or(0, |c| count(&c.text())) + FRAMING
}

/// Keeps about `keep` tokens' worth of characters at each end.
fn shorten(text: &str, keep: u32, count: Count<'_>) -> (String, u32) {
    let total = count(text);
    if total <= 2 * keep + 16 {
        return (text.to_owned(), 0);
    }
    // Estimate ~4 characters per token, then move to character boundaries.
    let chars: Vec<char> = text.chars().collect();
    let per = (chars.len() as f64 / f64::from(total)).max(1.0);
    let keep_chars = ((f64::from(keep) * per) as usize).min(chars.len() / 2);
    let head: String = chars[..keep_chars].iter().collect();
    let tail: String = chars[chars.len() - keep_chars..].iter().collect();
    let removed = total.saturating_sub(count(&head) + count(&tail));
    let marker = format!("\n[… {removed} tokens removed …]\n");
    let shortened = format!("{head}{marker}{tail}");
    let new_total = count(&shortened);
    (shortened, total.saturating_sub(new_total))
}

/// Shortens `request` until its prompt is at most `target` tokens as `count` counts
/// them, or leaves it whole and says how far it could get.
pub fn compress(
    request: &mut ChatRequest,
    target: u32,
    count: Count<'_>,
) -> Result<Compression, CannotCompress> {
    let costs: Vec<u32> = request
        .messages
        .iter()
        .map(|m| message_tokens(m.content.as_ref(), count))
        .collect();
    let original: u32 = costs.iter().sum();
    if original <= target {
        return Ok(Compression {
            original_tokens: original,
            tokens: original,
            cuts: Vec::new(),
        });
    }
    let n = request.messages.len();
    let protected_from = n.saturating_sub(PROTECTED_TAIL);
    let eligible = |i: usize| {
        let m = &request.messages[i];
        i < protected_from
            && m.role != "system"
            && m.role != "developer"
            && matches!(m.content, Some(MessageContent::Text(_)))
    };
    // Tool results first, then the rest; oldest first within each.
    let mut order: Vec<usize> = (0..n).filter(|&i| eligible(i)).collect();
    order.sort_by_key(|&i| (request.messages[i].role != "tool", i));

    let mut plan = Vec::new();
    let mut total = original;
    for &i in &order {
        if total <= target {
            break;
        }
        let Some(MessageContent::Text(text)) = &request.messages[i].content else {
            continue;
        };
        let (shortened, saved) = shorten(text, KEEP_EACH_END, count);
        if saved > 0 {
            total -= saved;
            plan.push((i, shortened, saved));
        }
    }
    if total > target {
        return Err(CannotCompress {
            reachable: total,
            target,
        });
    }
    let mut cuts = Vec::new();
    for (i, shortened, saved) in plan {
        let message = &mut request.messages[i];
        message.content = Some(MessageContent::Text(shortened));
        cuts.push(Cut {
            message: i,
            role: message.role.clone(),
            tokens_removed: saved,
        });
    }
    cuts.sort_by_key(|c| c.message);
    Ok(Compression {
        original_tokens: original,
        tokens: total,
        cuts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use switchyard_wire::tokens::estimate_tokens;

    const EST: Count<'static> = &estimate_tokens;

    fn request(messages: serde_json::Value) -> ChatRequest {
        serde_json::from_value(json!({"model": "m", "messages": messages})).unwrap()
    }

    fn agent_history() -> ChatRequest {
        let log = "line of build output with warnings and file paths ".repeat(400);
        request(json!([
            {"role": "system", "content": "You are a build assistant."},
            {"role": "user", "content": "Build the project."},
            {"role": "assistant", "content": "Running the build."},
            {"role": "tool", "tool_call_id": "a", "content": log},
            {"role": "assistant", "content": "It failed; rerunning with logs."},
            {"role": "tool", "tool_call_id": "b", "content": log},
            {"role": "assistant", "content": "Here is the error summary."},
            {"role": "user", "content": "Fix it please."}
        ]))
    }

    #[test]
    fn shortens_old_tool_results_first_and_keeps_the_ends() {
        let mut r = agent_history();
        let before = r.clone();
        let original: u32 = r
            .messages
            .iter()
            .map(|m| message_tokens(m.content.as_ref(), EST))
            .sum();
        let target = original - 3000;
        let c = compress(&mut r, target, EST).unwrap();
        assert!(c.tokens <= target && c.original_tokens == original, "{c:?}");
        assert_eq!(c.cuts.len(), 1, "one tool result was enough: {c:?}");
        assert_eq!((c.cuts[0].message, c.cuts[0].role.as_str()), (3, "tool"));
        let text = r.messages[3].content.as_ref().unwrap().text();
        assert!(text.contains("tokens removed"), "{text}");
        assert!(text.starts_with("line of build output"));
        for i in [0, 1, 2, 4, 5, 6, 7] {
            assert_eq!(
                r.messages[i].content.as_ref().unwrap().text(),
                before.messages[i].content.as_ref().unwrap().text(),
                "message {i}"
            );
        }
        assert_eq!(
            r.messages[3].extra["tool_call_id"], "a",
            "other fields are kept"
        );
        // Same input, same output.
        let mut again = before.clone();
        compress(&mut again, target, EST).unwrap();
        assert_eq!(
            serde_json::to_value(&again).unwrap(),
            serde_json::to_value(&r).unwrap()
        );
    }

    #[test]
    fn an_impossible_target_leaves_the_request_whole() {
        let mut r = agent_history();
        let before = serde_json::to_value(&r).unwrap();
        let err = compress(&mut r, 50, EST).unwrap_err();
        assert!(err.reachable > 50);
        assert_eq!(serde_json::to_value(&r).unwrap(), before);
        // The latest turns are never cut: a huge last message cannot be compressed.
        let mut single = request(json!([{"role": "user", "content": "word ".repeat(5000)}]));
        assert!(compress(&mut single, 100, EST).is_err());
    }
}
