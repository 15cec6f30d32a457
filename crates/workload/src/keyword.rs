//! Keyword signals: does the request mention any (or all, or none) of a list of words,
//! phrases and regular expressions?
//!
//! Keywords are matched in one pass (Aho–Corasick, ASCII case folded unless
//! `case_sensitive`, whole words unless `word_boundary: false`), regexes one by one.
//! With `fuzzy: n`, single-word keywords of five or more characters also match words
//! within `n` edits (Levenshtein), which catches typos such as "segmantation"; it
//! costs a comparison per word and keyword of similar length.

use crate::signals::{Request, Signal, SignalFamily, SignalKey, SignalValue};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::{Regex, RegexBuilder};
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
    /// How the terms combine: `any` (default, OR), `all` (AND) or `none` (NOR).
    #[serde(default)]
    pub operator: Operator,
    /// Regular expressions (Rust `regex` syntax), terms like the keywords.
    #[serde(default)]
    pub regexes: Vec<String>,
    /// Edits allowed when matching single-word keywords of 5+ characters (default 0).
    #[serde(default)]
    pub fuzzy: u8,
}

/// How a keyword signal's terms combine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    /// Any term occurs.
    #[default]
    Any,
    /// Every term occurs.
    All,
    /// No term occurs.
    None,
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
            operator: Operator::Any,
            regexes: Vec::new(),
            fuzzy: 0,
        }
    }
}

/// Matches when any keyword occurs in the scoped text.
#[derive(Debug)]
pub struct KeywordSignal {
    key: SignalKey,
    matcher: AhoCorasick,
    keywords: Vec<String>,
    regexes: Vec<Regex>,
    /// Lower-cased single-word keywords eligible for fuzzy matching, by keyword index.
    fuzzy_words: Vec<(usize, String)>,
    fuzzy: usize,
    word_boundary: bool,
    scope: Scope,
    operator: Operator,
}

impl KeywordSignal {
    /// Compiles the keyword list.
    pub fn new(config: &KeywordSignalConfig) -> Result<Self, String> {
        if config.keywords.is_empty() && config.regexes.is_empty() {
            return Err("`keywords` is empty: list at least one (or a regex)".to_owned());
        }
        let mut regexes = Vec::with_capacity(config.regexes.len());
        for (i, pattern) in config.regexes.iter().enumerate() {
            let compiled = RegexBuilder::new(pattern)
                .case_insensitive(!config.case_sensitive)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| format!("regexes[{i}] does not compile: {e}"))?;
            regexes.push(compiled);
        }
        let fuzzy_words = if config.fuzzy == 0 {
            Vec::new()
        } else {
            config
                .keywords
                .iter()
                .enumerate()
                .filter(|(_, k)| k.chars().count() >= 5 && k.chars().all(char::is_alphanumeric))
                .map(|(i, k)| (i, k.to_lowercase()))
                .collect()
        };
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
            regexes,
            fuzzy_words,
            fuzzy: usize::from(config.fuzzy),
            word_boundary: config.word_boundary,
            scope: config.scope,
            operator: config.operator,
        })
    }

    /// How many terms there are (keywords, then regexes).
    fn terms(&self) -> usize {
        self.keywords.len() + self.regexes.len()
    }

    fn term_name(&self, i: usize) -> String {
        match self.keywords.get(i) {
            Some(k) => k.clone(),
            None => format!("/{}/", self.regexes[i - self.keywords.len()].as_str()),
        }
    }

    /// Marks the terms found in `text` and returns how many occurrences there are.
    fn scan(&self, text: &str, found: &mut [bool], first: &mut Option<usize>) -> usize {
        let mut hits = 0;
        let mut mark = |i: usize, found: &mut [bool]| {
            found[i] = true;
            first.get_or_insert(i);
        };
        if !self.keywords.is_empty() {
            for m in self.matcher.find_overlapping_iter(text) {
                if self.word_boundary
                    && !(boundary_before(text, m.start()) && boundary_after(text, m.end()))
                {
                    continue;
                }
                hits += 1;
                mark(m.pattern().as_usize(), found);
            }
        }
        for (i, regex) in self.regexes.iter().enumerate() {
            let n = regex.find_iter(text).count();
            if n > 0 {
                hits += n;
                mark(self.keywords.len() + i, found);
            }
        }
        if !self.fuzzy_words.is_empty() {
            for word in text
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| w.len() >= 4)
            {
                let word = word.to_lowercase();
                let length = word.chars().count();
                for (i, keyword) in &self.fuzzy_words {
                    if found[*i] || keyword.chars().count().abs_diff(length) > self.fuzzy {
                        continue;
                    }
                    if strsim::levenshtein(&word, keyword) <= self.fuzzy {
                        hits += 1;
                        mark(*i, found);
                    }
                }
            }
        }
        hits
    }
}

/// A character that continues a word. Scripts written without spaces between words
/// (Chinese, Japanese, Thai; Korean attaches particles) have no boundaries to test, so
/// their characters never block a match.
fn is_word_char(c: Option<char>) -> bool {
    c.is_some_and(|c| (c.is_alphanumeric() || c == '_') && !unspaced_script(c))
}

fn unspaced_script(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0E7F // Thai
        | 0x3040..=0x30FF // Hiragana, Katakana
        | 0x3400..=0x4DBF // CJK extension A
        | 0x4E00..=0x9FFF // CJK unified ideographs
        | 0xAC00..=0xD7AF // Hangul syllables
        | 0xF900..=0xFAFF) // CJK compatibility ideographs
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
        let mut found = vec![false; self.terms()];
        let mut first = None;
        let mut hits = 0;
        let mut add = |text: &str| hits += self.scan(text, &mut found, &mut first);
        match self.scope {
            Scope::LastUser => add(conversation.last_user_text()),
            Scope::User => conversation.user_texts().for_each(&mut add),
            Scope::All => conversation.turns.iter().for_each(|t| add(&t.text)),
        }
        let present = found.iter().filter(|f| **f).count();
        let matched = match self.operator {
            Operator::Any => present > 0,
            Operator::All => present == found.len(),
            Operator::None => present == 0,
        };
        let evidence = match (self.operator, first) {
            (Operator::All, _) => Some(format!("{present} of {} terms", found.len())),
            (_, Some(i)) => Some(self.term_name(i)),
            (_, None) => None,
        };
        SignalValue {
            matched,
            value: hits as f64,
            confidence: 1.0,
            evidence,
            cost_ns: 0,
            error: None,
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
    fn operators_regexes_and_fuzzy_matching() {
        let mut c = KeywordSignalConfig::new("k", &["invoice", "refund"]);
        c.operator = Operator::All;
        assert!(!eval(&c, "where is my invoice?").matched);
        let v = eval(&c, "refund the invoice please");
        assert!(
            v.matched && v.evidence.as_deref() == Some("2 of 2 terms"),
            "{v:?}"
        );
        c.operator = Operator::None;
        assert!(eval(&c, "hello there").matched);
        assert!(!eval(&c, "refund now").matched);

        let mut r = KeywordSignalConfig::new("ticket", &[]);
        r.regexes = vec![r"\bJIRA-\d+\b".into()];
        let v = eval(&r, "see jira-1234 and JIRA-77");
        assert!(v.matched && v.value == 2.0, "{v:?}");
        assert_eq!(v.evidence.as_deref(), Some(r"/\bJIRA-\d+\b/"));
        r.case_sensitive = true;
        assert_eq!(eval(&r, "see jira-1234 and JIRA-77").value, 1.0);
        r.regexes = vec!["(unclosed".into()];
        assert!(KeywordSignal::new(&r).unwrap_err().contains("regexes[0]"));

        let mut f = KeywordSignalConfig::new("crash", &["segmentation", "fault"]);
        assert!(!eval(&f, "a segmantation falt").matched);
        f.fuzzy = 1;
        let v = eval(&f, "a Segmantation falt");
        assert!(
            v.matched && v.evidence.as_deref() == Some("segmentation"),
            "{v:?}"
        );
        assert!(!eval(&f, "a sedimentation").matched, "two edits away");
    }

    #[test]
    fn multilingual_keywords_match_on_word_boundaries() {
        let c = KeywordSignalConfig::new("k", &["数据库", "größe", "ошибка"]);
        assert!(
            eval(&c, "这个数据库很慢").matched,
            "no spaces to need in Chinese"
        );
        assert!(!eval(&c, "这个数据很慢").matched);
        assert!(eval(&c, "Die Größe stimmt nicht: größe").matched);
        assert!(eval(&c, "какая ошибка?").matched);
        assert!(
            !eval(&c, "ошибками").matched,
            "a longer word is not the keyword"
        );
    }

    #[test]
    fn empty_lists_are_refused() {
        assert!(KeywordSignal::new(&KeywordSignalConfig::new("k", &[])).is_err());
        assert!(KeywordSignal::new(&KeywordSignalConfig::new("k", &[" "])).is_err());
    }
}
