//! Keyword signals: does the request mention any (or all, or none) of a list of words,
//! phrases and regular expressions?
//!
//! Keywords are matched in one pass (Aho–Corasick, whole words unless
//! `word_boundary: false`), regexes one by one. Case is folded unless
//! `case_sensitive`: ASCII folding in place, and when a keyword has non-ASCII letters
//! (Ä, Σ, Ж) the text is lower-cased by Unicode rules first (simple folding: `ß` does
//! not match `ss`). With `fuzzy: n`, single-word keywords of five or more characters
//! also match words within `n` edits (Levenshtein), which catches typos such as
//! "segmantation"; it costs a comparison per word and keyword of similar length.
//!
//! With `scoring: bm25` the signal holds when the BM25 relevance of the text to the
//! keywords reaches `bm25.threshold`: each keyword's occurrences count with
//! saturation (`k1`) and relative to the text's length in words (`b`, `avg_words`),
//! weighted by `weights` (default 1), so one mention in a short question counts more
//! than one in a long document.

use crate::signals::{
    BuildContext, FamilyConfig, Request, Signal, SignalFamily, SignalKey, SignalValue,
};
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
    /// Words or phrases, terms combined by `operator` (none when the signal has only
    /// `regexes`).
    #[serde(default)]
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
    /// `count` (default: the operator over terms present) or `bm25` (a relevance score
    /// against `bm25.threshold`).
    #[serde(default)]
    pub scoring: Scoring,
    /// BM25 parameters, with `scoring: bm25`.
    #[serde(default)]
    pub bm25: Bm25Config,
    /// Per-keyword weights under BM25 (default 1 each), like inverse document
    /// frequencies: rarer, more telling words weigh more.
    #[serde(default)]
    pub weights: std::collections::BTreeMap<String, f64>,
}

/// How a keyword signal decides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scoring {
    /// The operator over the terms present.
    #[default]
    Count,
    /// BM25 relevance at or above a threshold.
    Bm25,
}

/// BM25 parameters.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Bm25Config {
    /// Term-frequency saturation (default 1.2).
    #[serde(default = "default_k1")]
    pub k1: f64,
    /// Length normalization, 0 (none) to 1 (full) (default 0.75).
    #[serde(default = "default_b")]
    pub b: f64,
    /// The typical text length in words (default 64).
    #[serde(default = "default_avg_words")]
    pub avg_words: f64,
    /// Score at or above which the signal holds (default 1.0: about one weighted
    /// mention in a text of typical length).
    #[serde(default = "default_bm25_threshold")]
    pub threshold: f64,
}

impl Default for Bm25Config {
    fn default() -> Self {
        Bm25Config {
            k1: default_k1(),
            b: default_b(),
            avg_words: default_avg_words(),
            threshold: default_bm25_threshold(),
        }
    }
}

fn default_k1() -> f64 {
    1.2
}

fn default_b() -> f64 {
    0.75
}

fn default_avg_words() -> f64 {
    64.0
}

fn default_bm25_threshold() -> f64 {
    1.0
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
            scoring: Scoring::Count,
            bm25: Bm25Config::default(),
            weights: std::collections::BTreeMap::new(),
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
    /// Lower-case the text by Unicode rules before matching (a keyword is non-ASCII
    /// and case is folded).
    unicode_fold: bool,
    /// BM25 parameters and per-term weights, when scoring by BM25.
    bm25: Option<(Bm25Config, Vec<f64>)>,
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
        let unicode_fold = !config.case_sensitive && config.keywords.iter().any(|k| !k.is_ascii());
        let patterns: Vec<String> = if unicode_fold {
            config.keywords.iter().map(|k| k.to_lowercase()).collect()
        } else {
            config.keywords.clone()
        };
        let matcher = AhoCorasickBuilder::new()
            .ascii_case_insensitive(!config.case_sensitive)
            .match_kind(MatchKind::Standard)
            .build(&patterns)
            .map_err(|e| format!("cannot compile the keyword list: {e}"))?;
        let bm25 = match config.scoring {
            Scoring::Count => None,
            Scoring::Bm25 => {
                let p = config.bm25;
                if config.operator != Operator::Any {
                    return Err(
                        "`scoring: bm25` scores every term: leave `operator` at `any`".to_owned(),
                    );
                }
                if !(p.k1 >= 0.0 && (0.0..=1.0).contains(&p.b) && p.avg_words > 0.0) {
                    return Err(format!(
                        "bm25: k1 {} must be ≥ 0, b {} in [0, 1], avg_words {} above 0",
                        p.k1, p.b, p.avg_words
                    ));
                }
                if let Some(unknown) = config.weights.keys().find(|k| !config.keywords.contains(k))
                {
                    return Err(format!("weights: `{unknown}` is not one of the keywords"));
                }
                let mut weights: Vec<f64> = config
                    .keywords
                    .iter()
                    .map(|k| config.weights.get(k).copied().unwrap_or(1.0))
                    .collect();
                weights.extend(std::iter::repeat_n(1.0, config.regexes.len()));
                Some((p, weights))
            }
        };
        if bm25.is_none() && !config.weights.is_empty() {
            return Err("`weights` apply only with `scoring: bm25`".to_owned());
        }
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
            unicode_fold,
            bm25,
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

    /// Counts each term's occurrences in `text`; returns how many there are in all and
    /// the text's length in words.
    fn scan(&self, text: &str, found: &mut [u32], first: &mut Option<usize>) -> (usize, usize) {
        let folded;
        let text = if self.unicode_fold {
            folded = text.to_lowercase();
            folded.as_str()
        } else {
            text
        };
        let mut hits = 0;
        let mut mark = |i: usize, n: u32, found: &mut [u32]| {
            found[i] += n;
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
                mark(m.pattern().as_usize(), 1, found);
            }
        }
        for (i, regex) in self.regexes.iter().enumerate() {
            let n = regex.find_iter(text).count();
            if n > 0 {
                hits += n;
                mark(
                    self.keywords.len() + i,
                    u32::try_from(n).unwrap_or(u32::MAX),
                    found,
                );
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
                    if found[*i] > 0 || keyword.chars().count().abs_diff(length) > self.fuzzy {
                        continue;
                    }
                    if strsim::levenshtein(&word, keyword) <= self.fuzzy {
                        hits += 1;
                        mark(*i, 1, found);
                    }
                }
            }
        }
        let words = if self.bm25.is_some() {
            text.split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .count()
        } else {
            0
        };
        (hits, words)
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
        let mut found = vec![0u32; self.terms()];
        let mut first = None;
        let (mut hits, mut words) = (0, 0);
        let mut add = |text: &str| {
            let (h, w) = self.scan(text, &mut found, &mut first);
            hits += h;
            words += w;
        };
        match self.scope {
            Scope::LastUser => add(request.scan_text()),
            Scope::User => request.scan_user_texts().for_each(|t| add(&t)),
            Scope::All => request.scan_all_texts().for_each(|t| add(&t)),
        }
        let present = found.iter().filter(|f| **f > 0).count();
        if let Some((p, weights)) = &self.bm25 {
            let norm = p.k1 * (1.0 - p.b + p.b * words as f64 / p.avg_words);
            let score: f64 = found
                .iter()
                .zip(weights)
                .filter(|(tf, _)| **tf > 0)
                .map(|(tf, w)| {
                    let tf = f64::from(*tf);
                    w * tf * (p.k1 + 1.0) / (tf + norm)
                })
                .sum();
            return SignalValue {
                matched: score >= p.threshold,
                value: score,
                confidence: (score / (2.0 * p.threshold.max(f64::EPSILON))).min(1.0),
                evidence: Some(format!(
                    "bm25 {score:.2} over {words} words; {present} terms{}",
                    first
                        .map(|i| format!(", first {}", self.term_name(i)))
                        .unwrap_or_default()
                )),
                label: None,
                cost_ns: 0,
                error: None,
            };
        }
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
            label: None,
            cost_ns: 0,
            error: None,
        }
    }
}

impl FamilyConfig for KeywordSignalConfig {
    type Signal = KeywordSignal;

    fn name(&self) -> &str {
        &self.name
    }

    fn build(&self, _: &BuildContext<'_>) -> Result<KeywordSignal, String> {
        KeywordSignal::new(self)
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
    fn unicode_case_is_folded_for_non_ascii_keywords() {
        let c = KeywordSignalConfig::new("de", &["Übersetzung", "ΣΟΦΊΑ", "жизнь"]);
        assert!(eval(&c, "Bitte eine ÜBERSETZUNG ins Deutsche").matched);
        assert!(eval(&c, "η σοφία των αρχαίων").matched);
        assert!(eval(&c, "ЖИЗНЬ прекрасна").matched);
        assert!(!eval(&c, "übersetzungen").matched, "whole words still");
        let mut exact = c.clone();
        exact.case_sensitive = true;
        assert!(!eval(&exact, "ÜBERSETZUNG").matched);
        assert!(eval(&exact, "Übersetzung").matched);
    }

    #[test]
    fn bm25_saturates_repeats_and_normalizes_length() {
        let mut c = KeywordSignalConfig::new("legal", &["contract", "liability", "plaintiff"]);
        c.scoring = Scoring::Bm25;
        c.weights.insert("plaintiff".into(), 2.0);
        let short = eval(&c, "Is this contract valid?");
        assert!(short.matched, "{short:?}");
        let long_text = format!("{} contract", "word ".repeat(600));
        let long = eval(&c, &long_text);
        assert!(!long.matched && long.value < short.value, "{long:?}");
        let repeated = eval(&c, "contract contract contract contract");
        let once = eval(&c, "contract and more");
        assert!(repeated.value > once.value);
        assert!(repeated.value < 4.0 * once.value, "saturation");
        let weighted = eval(&c, "the plaintiff and more");
        assert!(weighted.value > once.value * 1.5);
        assert!(weighted.evidence.unwrap().starts_with("bm25"));
        let mut bad = c.clone();
        bad.operator = Operator::All;
        assert!(KeywordSignal::new(&bad).unwrap_err().contains("operator"));
        let mut bad = c.clone();
        bad.weights.insert("tort".into(), 1.0);
        assert!(KeywordSignal::new(&bad).unwrap_err().contains("`tort`"));
        let mut bad = c.clone();
        bad.bm25.b = 2.0;
        assert!(KeywordSignal::new(&bad).is_err());
        let mut bad = KeywordSignalConfig::new("x", &["a"]);
        bad.weights.insert("a".into(), 1.0);
        assert!(KeywordSignal::new(&bad).unwrap_err().contains("only with"));
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
