//! Keyword signals: does the request mention any of a list of words or phrases?

use crate::signals::{Request, Signal, SignalFamily, SignalKey, SignalValue};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use serde::{Deserialize, Serialize};

/// Which text of the request a keyword signal reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The latest user turn (the default: what is being asked now).
    #[default]
    LastUser,
    /// Every user turn.
    User,
    /// Every turn, system and assistant included.
    All,
}

/// A keyword list.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeywordSignalConfig {
    /// The signal's name, as routes refer to it.
    pub name: String,
    /// Words or phrases; any one of them matches.
    pub keywords: Vec<String>,
    /// Match case exactly (default: false, ASCII case is folded).
    #[serde(default)]
    pub case_sensitive: bool,
    /// Only match whole words: no letter or digit may touch either end (default: true).
    #[serde(default = "yes")]
    pub word_boundary: bool,
    /// Which text to search (default: `last_user`).
    #[serde(default)]
    pub scope: Scope,
}

fn yes() -> bool {
    true
}

impl KeywordSignalConfig {
    /// A keyword list with the defaults.
    pub fn new(name: &str, keywords: &[&str]) -> Self {
        KeywordSignalConfig {
            name: name.to_owned(),
            keywords: keywords.iter().map(|k| (*k).to_owned()).collect(),
            case_sensitive: false,
            word_boundary: true,
            scope: Scope::LastUser,
        }
    }
}

/// Matches when any keyword occurs in the scoped text.
#[derive(Debug)]
pub struct KeywordSignal {
    key: SignalKey,
    matcher: AhoCorasick,
    keywords: Vec<String>,
    word_boundary: bool,
    scope: Scope,
}

impl KeywordSignal {
    /// Compiles the keyword list.
    pub fn new(config: &KeywordSignalConfig) -> Result<Self, String> {
        if config.keywords.is_empty() {
            return Err("`keywords` is empty: list at least one".to_owned());
        }
        if let Some(i) = config.keywords.iter().position(|k| k.trim().is_empty()) {
            return Err(format!("keywords[{i}] is blank"));
        }
        let matcher = AhoCorasickBuilder::new()
            .ascii_case_insensitive(!config.case_sensitive)
            .match_kind(MatchKind::Standard)
            .build(&config.keywords)
            .map_err(|e| format!("cannot compile the keyword list: {e}"))?;
        Ok(KeywordSignal {
            key: SignalKey {
                family: SignalFamily::Keyword,
                name: config.name.clone(),
            },
            matcher,
            keywords: config.keywords.clone(),
            word_boundary: config.word_boundary,
            scope: config.scope,
        })
    }

    /// The first keyword found in `text` and how many occurrences there are.
    fn scan(&self, text: &str) -> (usize, Option<usize>) {
        let mut hits = 0;
        let mut first = None;
        for m in self.matcher.find_overlapping_iter(text) {
            if self.word_boundary
                && !(boundary_before(text, m.start()) && boundary_after(text, m.end()))
            {
                continue;
            }
            hits += 1;
            first.get_or_insert(m.pattern().as_usize());
        }
        (hits, first)
    }
}

fn is_word_char(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// Whether no word character touches `start` from the left. Matches of UTF-8 keywords
/// in UTF-8 text fall on character boundaries, so the slice is O(1).
fn boundary_before(text: &str, start: usize) -> bool {
    !is_word_char(text.get(..start).and_then(|s| s.chars().next_back()))
}

fn boundary_after(text: &str, end: usize) -> bool {
    !is_word_char(text.get(end..).and_then(|s| s.chars().next()))
}

impl Signal for KeywordSignal {
    fn key(&self) -> &SignalKey {
        &self.key
    }

    fn evaluate(&self, request: &Request<'_>) -> SignalValue {
        let conversation = request.conversation;
        let mut hits = 0;
        let mut first = None;
        let mut add = |text: &str| {
            let (h, f) = self.scan(text);
            hits += h;
            if first.is_none() {
                first = f;
            }
        };
        match self.scope {
            Scope::LastUser => add(conversation.last_user_text()),
            Scope::User => conversation.user_texts().for_each(&mut add),
            Scope::All => conversation.turns.iter().for_each(|t| add(&t.text)),
        }
        SignalValue {
            matched: hits > 0,
            value: hits as f64,
            confidence: 1.0,
            evidence: first.map(|i| self.keywords[i].clone()),
            cost_ns: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_wire::Conversation;

    fn eval(config: &KeywordSignalConfig, prompt: &str) -> SignalValue {
        KeywordSignal::new(config).unwrap().evaluate(&Request::new(
            &Conversation::from_prompt("auto", prompt),
            None,
        ))
    }

    #[test]
    fn matches_whole_words_ignoring_ascii_case() {
        let c = KeywordSignalConfig::new("code", &["python", "stack trace"]);
        let v = eval(&c, "Here is my Python STACK TRACE");
        assert!(v.matched);
        assert_eq!(v.value, 2.0);
        assert_eq!(v.evidence.as_deref(), Some("python"));
        assert!(!eval(&c, "pythonic idioms").matched);
        assert!(!eval(&c, "").matched);
        assert!(eval(&c, "(python)").matched);
        assert!(!eval(&c, "épython").matched);
    }

    #[test]
    fn boundary_and_case_can_be_turned_off() {
        let mut c = KeywordSignalConfig::new("code", &["SQL"]);
        c.case_sensitive = true;
        assert!(!eval(&c, "sql query").matched);
        assert!(eval(&c, "SQL query").matched);
        c.word_boundary = false;
        assert!(eval(&c, "MySQLdb").matched);
    }

    #[test]
    fn scope_selects_turns() {
        let req: switchyard_wire::ChatRequest = serde_json::from_str(
            r#"{"model":"auto","messages":[{"role":"system","content":"you know rust"},
               {"role":"user","content":"rust?"},{"role":"user","content":"thanks"}]}"#,
        )
        .unwrap();
        let conv = Conversation::from_chat(&req, None);
        let mut c = KeywordSignalConfig::new("k", &["rust"]);
        let run = |c: &KeywordSignalConfig| {
            KeywordSignal::new(c)
                .unwrap()
                .evaluate(&Request::new(&conv, None))
                .value
        };
        assert_eq!(run(&c), 0.0);
        c.scope = Scope::User;
        assert_eq!(run(&c), 1.0);
        c.scope = Scope::All;
        assert_eq!(run(&c), 2.0);
    }

    #[test]
    fn empty_lists_are_refused() {
        assert!(KeywordSignal::new(&KeywordSignalConfig::new("k", &[])).is_err());
        assert!(KeywordSignal::new(&KeywordSignalConfig::new("k", &[" "])).is_err());
    }
}
