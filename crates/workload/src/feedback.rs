//! Feedback signals: does the latest user turn say the previous answer missed?
//!
//! `user_feedback` reads the latest user turn, when an assistant turn precedes it, for
//! English phrasings of three complaints: `wrong` (the answer is incorrect or does not
//! work), `unclear` (the user did not understand it) and `not_wanted` (it answered
//! something else). `reask` compares the latest user turn with the earlier ones by the
//! overlap of their word sets (Jaccard), which catches a question asked again in other
//! words around the same terms; it needs no model.

use crate::signals::{
    BuildContext, FamilyConfig, Request, Signal, SignalFamily, SignalKey, SignalValue,
};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::LazyLock;

/// What the user says of the previous answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Complaint {
    /// It is incorrect or does not work.
    Wrong,
    /// It was not understood.
    Unclear,
    /// It answered something else.
    NotWanted,
}

impl Complaint {
    const ALL: [Complaint; 3] = [Complaint::Wrong, Complaint::Unclear, Complaint::NotWanted];

    fn name(self) -> &'static str {
        match self {
            Complaint::Wrong => "wrong",
            Complaint::Unclear => "unclear",
            Complaint::NotWanted => "not_wanted",
        }
    }
}

// Constant patterns: a failure to compile is a bug every test catches.
#[allow(clippy::expect_used)]
static PATTERNS: LazyLock<Vec<(Complaint, Regex)>> = LazyLock::new(|| {
    let re = |p: &str| Regex::new(&format!("(?i){p}")).expect("a valid built-in pattern");
    vec![
        (
            Complaint::Wrong,
            re(
                r"\b(that'?s|this is|it'?s|you'?re|you are|that was|answer is)\s+(wrong|incorrect|not (right|correct|true))\b",
            ),
        ),
        (
            Complaint::Wrong,
            re(
                r"\b(doesn'?t|does not|didn'?t|did not|still (doesn'?t|does not)) (work|compile|run|help)\b",
            ),
        ),
        (
            Complaint::Wrong,
            re(
                r"\b(you (made|have) (a|an) (mistake|error)|still (broken|failing|crashes|the same error)|same error)\b",
            ),
        ),
        (Complaint::Wrong, re(r"^\s*(no|nope|wrong)[,.!]")),
        (
            Complaint::Unclear,
            re(
                r"\b(i (don'?t|do not|still don'?t) (understand|get it|follow)|what do you mean|(that'?s|this is) (confusing|unclear)|makes no sense)\b",
            ),
        ),
        (
            Complaint::Unclear,
            re(
                r"\b(can|could) you (explain|clarify|rephrase|simplify)\b|\b(explain|say) (that|it) (again|more simply|differently)\b",
            ),
        ),
        (
            Complaint::NotWanted,
            re(
                r"\b(that'?s|this is|it'?s) not what i (asked|wanted|meant|need(ed)?)\b|\bnot what i (asked|wanted|meant)\b",
            ),
        ),
        (
            Complaint::NotWanted,
            re(
                r"\b(i (meant|asked for|wanted)|what i (meant|wanted) (was|is))\b|\bi didn'?t ask (for|about)\b",
            ),
        ),
        (
            Complaint::NotWanted,
            re(r"\b(try again|answer (my|the) (actual )?question|you (ignored|missed) (my|the))\b"),
        ),
    ]
});

/// A user-feedback signal.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserFeedbackSignalConfig {
    /// The signal's name, as routes refer to it.
    pub name: String,
    /// Complaints that count (default: all three).
    #[serde(default)]
    pub complaints: Option<Vec<Complaint>>,
}

/// Matches when the latest user turn complains about the answer before it.
#[derive(Debug)]
pub struct UserFeedbackSignal {
    key: SignalKey,
    complaints: Vec<Complaint>,
}

impl UserFeedbackSignal {
    /// Builds the signal.
    pub fn new(config: &UserFeedbackSignalConfig) -> Result<Self, String> {
        let complaints = config
            .complaints
            .clone()
            .unwrap_or_else(|| Complaint::ALL.to_vec());
        if complaints.is_empty() {
            return Err("`complaints` is empty: list wrong, unclear or not_wanted".to_owned());
        }
        Ok(UserFeedbackSignal {
            key: SignalKey {
                family: SignalFamily::UserFeedback,
                name: config.name.clone(),
            },
            complaints,
        })
    }
}

/// Whether an assistant turn comes before the last user turn.
fn answered_before(request: &Request<'_>) -> bool {
    let turns = &request.conversation.turns;
    let last_user = turns.iter().rposition(|t| t.role == "user");
    last_user.is_some_and(|i| turns[..i].iter().any(|t| t.role == "assistant"))
}

impl Signal for UserFeedbackSignal {
    fn key(&self) -> &SignalKey {
        &self.key
    }

    fn evaluate(&self, request: &Request<'_>) -> SignalValue {
        let miss = SignalValue::absent(1.0);
        if !answered_before(request) {
            return miss;
        }
        let text = request.conversation.last_user_text();
        // Complaints come first in a turn; a long turn's tail is new material.
        let mut end = text.len().min(600);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let head = &text[..end];
        for (complaint, pattern) in PATTERNS.iter() {
            if !self.complaints.contains(complaint) {
                continue;
            }
            if let Some(m) = pattern.find(head) {
                return SignalValue {
                    matched: true,
                    value: 1.0,
                    confidence: 0.8,
                    evidence: Some(format!("{}: \"{}\"", complaint.name(), m.as_str().trim())),
                    label: None,
                    cost_ns: 0,
                    error: None,
                };
            }
        }
        miss
    }
}

/// A re-ask signal.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReaskSignalConfig {
    /// The signal's name, as routes refer to it.
    pub name: String,
    /// Similarity with an earlier user turn at which it holds (default 0.5): word-set
    /// overlap, or with `method: semantic` the cosine of the two turns' embeddings.
    #[serde(default = "half")]
    pub threshold: f64,
    /// Earlier user turns compared, latest first (default 3; at most 8 when semantic).
    #[serde(default = "three")]
    pub lookback: usize,
    /// `words` (default: shared words, microseconds) or `semantic` (the embedding
    /// model: the last turn's shared embedding, and one more per earlier turn compared,
    /// stopping at the first repeat).
    #[serde(default)]
    pub method: ReaskMethod,
}

/// How a re-ask is recognized.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReaskMethod {
    /// Jaccard overlap of the turns' words of three or more characters.
    #[default]
    Words,
    /// Cosine similarity of the turns' embeddings.
    Semantic,
}

/// Most earlier turns a semantic re-ask embeds per request.
const SEMANTIC_LOOKBACK_MAX: usize = 8;

fn half() -> f64 {
    0.5
}

fn three() -> usize {
    3
}

/// Matches when the latest user turn repeats an earlier one.
#[derive(Debug)]
pub struct ReaskSignal {
    key: SignalKey,
    threshold: f64,
    lookback: usize,
    method: ReaskMethod,
}

impl ReaskSignal {
    /// Builds the signal.
    pub fn new(config: &ReaskSignalConfig) -> Result<Self, String> {
        if !(config.threshold > 0.0 && config.threshold <= 1.0) {
            return Err(format!("threshold {} is not in (0, 1]", config.threshold));
        }
        if config.lookback == 0 {
            return Err("lookback is 0: compare with at least one earlier turn".to_owned());
        }
        if config.method == ReaskMethod::Semantic && config.lookback > SEMANTIC_LOOKBACK_MAX {
            return Err(format!(
                "lookback {} with method semantic: each earlier turn costs an embedding; use at most {SEMANTIC_LOOKBACK_MAX}",
                config.lookback
            ));
        }
        Ok(ReaskSignal {
            key: SignalKey {
                family: SignalFamily::Reask,
                name: config.name.clone(),
            },
            threshold: config.threshold,
            lookback: config.lookback,
            method: config.method,
        })
    }
}

/// Lower-cased words of three or more characters (short function words say little).
fn words(text: &str) -> HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
        .collect()
}

fn jaccard(a: &HashSet<String>, b: &HashSet<String>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(b).count() as f64 / union as f64
}

impl Signal for ReaskSignal {
    fn key(&self) -> &SignalKey {
        &self.key
    }

    fn uses_model(&self) -> bool {
        self.method == ReaskMethod::Semantic
    }

    fn evaluate(&self, request: &Request<'_>) -> SignalValue {
        let users: Vec<_> = request.scan_user_texts().collect();
        let Some((last, earlier)) = users.split_last().filter(|(_, e)| !e.is_empty()) else {
            return SignalValue::absent(1.0);
        };
        let recent = earlier.iter().rev().take(self.lookback);
        let best = match self.method {
            ReaskMethod::Words => {
                let current = words(last);
                recent
                    .enumerate()
                    .map(|(back, t)| (jaccard(&current, &words(t)), back + 1))
                    .max_by(|a, b| a.0.total_cmp(&b.0))
            }
            ReaskMethod::Semantic => {
                let current = match request.embedding() {
                    Ok(v) => v,
                    Err(e) => return SignalValue::failed(e.to_owned()),
                };
                let mut best: Option<(f64, usize)> = None;
                for (back, turn) in recent.enumerate() {
                    let vector = match request.embedding_of(turn) {
                        Ok(v) => v,
                        Err(e) => return SignalValue::failed(e),
                    };
                    let score = f64::from(switchyard_embed::cosine(current, &vector));
                    if best.is_none_or(|(b, _)| score > b) {
                        best = Some((score, back + 1));
                    }
                    if score >= self.threshold {
                        break;
                    }
                }
                best
            }
        };
        let (score, back) = best.unwrap_or((0.0, 0));
        SignalValue {
            matched: score >= self.threshold,
            value: score,
            confidence: 1.0,
            evidence: (back > 0).then(|| format!("{score:.2} with the user turn {back} back")),
            label: None,
            cost_ns: 0,
            error: None,
        }
    }
}

impl FamilyConfig for UserFeedbackSignalConfig {
    type Signal = UserFeedbackSignal;

    fn name(&self) -> &str {
        &self.name
    }

    fn build(&self, _: &BuildContext<'_>) -> Result<UserFeedbackSignal, String> {
        UserFeedbackSignal::new(self)
    }
}

impl FamilyConfig for ReaskSignalConfig {
    type Signal = ReaskSignal;

    fn name(&self) -> &str {
        &self.name
    }

    fn needs_model(&self) -> bool {
        self.method == ReaskMethod::Semantic
    }

    fn build(&self, _: &BuildContext<'_>) -> Result<ReaskSignal, String> {
        ReaskSignal::new(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_wire::{ChatRequest, Conversation};

    fn chat(turns: &[(&str, &str)]) -> Conversation {
        let messages: Vec<String> = turns
            .iter()
            .map(|(role, text)| {
                format!(
                    r#"{{"role": "{role}", "content": {}}}"#,
                    serde_json::to_string(text).unwrap()
                )
            })
            .collect();
        let request: ChatRequest = serde_json::from_str(&format!(
            r#"{{"model": "auto", "messages": [{}]}}"#,
            messages.join(",")
        ))
        .unwrap();
        Conversation::from_chat(&request, None)
    }

    fn feedback(complaints: Option<Vec<Complaint>>, turns: &[(&str, &str)]) -> SignalValue {
        let s = UserFeedbackSignal::new(&UserFeedbackSignalConfig {
            name: "f".into(),
            complaints,
        })
        .unwrap();
        s.evaluate(&Request::new(&chat(turns), None))
    }

    #[test]
    fn complaints_after_an_answer_are_recognized() {
        let q = ("user", "How do I reverse a list in Python?");
        let a = ("assistant", "Use list.reverse().");
        for (reply, label) in [
            ("That's wrong, it returns None.", "wrong"),
            ("It still doesn't work", "wrong"),
            ("No, that gives the same error", "wrong"),
            ("I don't understand what you mean by in place", "unclear"),
            ("Could you explain it more simply?", "unclear"),
            (
                "That's not what I asked. I wanted a new list.",
                "not_wanted",
            ),
            (
                "I meant reversed order without changing the original",
                "not_wanted",
            ),
        ] {
            let v = feedback(None, &[q, a, ("user", reply)]);
            assert!(v.matched, "{reply}");
            assert!(
                v.evidence.as_deref().unwrap().starts_with(label),
                "{reply}: {v:?}"
            );
        }
        for reply in [
            "Thanks, that works!",
            "Great. Now how do I sort it?",
            "What is the difference between a list and a tuple?",
        ] {
            assert!(!feedback(None, &[q, a, ("user", reply)]).matched, "{reply}");
        }
        // Without an answer before it there is nothing to complain about.
        assert!(!feedback(None, &[("user", "That's wrong, isn't it?")]).matched);
        // Only the complaints asked for count.
        let only_unclear = Some(vec![Complaint::Unclear]);
        assert!(!feedback(only_unclear, &[q, a, ("user", "That's wrong.")]).matched);
    }

    #[test]
    fn reask_compares_with_earlier_user_turns() {
        let s = ReaskSignal::new(&ReaskSignalConfig {
            name: "r".into(),
            threshold: 0.5,
            lookback: 3,
            method: ReaskMethod::Words,
        })
        .unwrap();
        let eval = |turns: &[(&str, &str)]| s.evaluate(&Request::new(&chat(turns), None));
        let again = eval(&[
            ("user", "How do I merge two dictionaries in Python?"),
            ("assistant", "Use the | operator."),
            ("user", "how to merge two python dictionaries?"),
        ]);
        assert!(again.matched, "{again:?}");
        let new_topic = eval(&[
            ("user", "How do I merge two dictionaries in Python?"),
            ("assistant", "Use the | operator."),
            ("user", "And how do I read a CSV file?"),
        ]);
        assert!(!new_topic.matched, "{new_topic:?}");
        assert!(!eval(&[("user", "hello")]).matched);
        assert!(
            ReaskSignal::new(&ReaskSignalConfig {
                name: "r".into(),
                threshold: 0.0,
                lookback: 3,
                method: ReaskMethod::Words,
            })
            .is_err()
        );
        let too_far = ReaskSignal::new(&ReaskSignalConfig {
            name: "r".into(),
            threshold: 0.8,
            lookback: 9,
            method: ReaskMethod::Semantic,
        });
        assert!(too_far.unwrap_err().contains("at most 8"));
    }

    #[test]
    fn a_semantic_reask_finds_a_paraphrase_that_shares_few_words() {
        // Needs the model (scripts/test.sh sets SWITCHYARD_MODEL_DIR).
        let Ok(dir) = std::env::var("SWITCHYARD_MODEL_DIR") else {
            return;
        };
        let cache = std::env::temp_dir().join(format!("sy-reask-{}", std::process::id()));
        let config: crate::SignalsConfig = serde_json::from_value(serde_json::json!({
            "model": {"path": dir, "cache_dir": cache},
            "reask": [
                {"name": "same_words", "threshold": 0.5, "lookback": 1},
                {"name": "same_meaning", "threshold": 0.75, "lookback": 1, "method": "semantic"}
            ]
        }))
        .unwrap();
        let engine = crate::SignalEngine::build(&config).unwrap();
        let words = engine.lookup(SignalFamily::Reask, "same_words").unwrap();
        let meaning = engine.lookup(SignalFamily::Reask, "same_meaning").unwrap();
        let ask = |turns: &[(&str, &str)]| engine.characterize(&chat(turns), &[words, meaning]);
        let paraphrase = ask(&[
            ("user", "How can I combine two Python dicts into one?"),
            ("assistant", "Use the | operator."),
            (
                "user",
                "What's the way to merge a pair of dictionaries in Python?",
            ),
        ]);
        assert!(!paraphrase.matched(words), "{:?}", paraphrase.get(words));
        assert!(paraphrase.matched(meaning), "{:?}", paraphrase.get(meaning));
        let other = ask(&[
            ("user", "How can I combine two Python dicts into one?"),
            ("assistant", "Use the | operator."),
            ("user", "Recommend a good hiking trail near Denver."),
        ]);
        assert!(!other.matched(meaning), "{:?}", other.get(meaning));
        let _ = std::fs::remove_dir_all(&cache);
    }
}
