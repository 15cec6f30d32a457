//! `commitments`: what a route's answers must do and must not do, checked on what
//! comes back, with the actions of `response_guard` (annotate, redact, replace; a
//! stream held back and ended with a terminal error event).
//!
//! A behaviour is recognized by patterns (found where they are: a stream is checked
//! before the text reaches the client, and `redact` masks them) and, with
//! `signals.model`, by the similarity of the answer to exemplars (judged on the whole
//! answer, once it is finished: cut into pieces of about 300 characters, at most 8,
//! each embedded; the most similar piece counts). Built in:
//!
//! - `reveal_system_prompt` (must not): an answer that says what its instructions are
//!   ("my system prompt is", "here are my instructions"), or repeats `leak_words`
//!   (8) consecutive words of the request's system messages;
//! - `give_medical_dosage` (must not): an amount of a drug with a dosing schedule or
//!   an instruction to take it ("take 400 mg every 6 hours");
//! - `cite_sources` (must): a link, a numbered reference, a DOI, a "Sources:" line,
//!   "according to …" or an (Author, year) citation;
//! - `include_disclaimer` (must): "not medical advice", "consult a doctor", and the
//!   like.
//!
//! More are defined under `behaviours` by patterns, exemplars or both. A `must` that
//! the finished answer lacks, and a `must_not` found by similarity, concern the whole
//! answer: `redact` cannot mask them and annotates; `replace` replaces the answer (a
//! stream is ended with a terminal error event when its last choice finishes). Every
//! finding is counted per route (`switchyard_guard_findings_total{route, check}`,
//! `check` = `must_not:NAME` or `must:NAME`) and logged, never its text.

use super::response_guard::{Action, ResponseGuard};
use super::{Context, Plugin};
use regex::Regex;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use switchyard_wire::ChatRequest;
use switchyard_workload::worker::EmbedWorkers;

/// A behaviour defined in the options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BehaviourOptions {
    /// Regular expressions (case-insensitive) that show it.
    #[serde(default)]
    patterns: Vec<String>,
    /// Sentences that show it, compared by meaning (needs `signals.model`).
    #[serde(default)]
    exemplars: Vec<String>,
    /// Least cosine similarity of a piece of the answer to an exemplar.
    #[serde(default = "default_threshold")]
    threshold: f32,
}

fn default_threshold() -> f32 {
    0.75
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Behaviours the answer must not show.
    #[serde(default)]
    must_not: Vec<String>,
    /// Behaviours the answer must show.
    #[serde(default)]
    must: Vec<String>,
    /// Behaviours beyond the built-in ones.
    #[serde(default)]
    behaviours: BTreeMap<String, BehaviourOptions>,
    /// Consecutive words of the system messages that make a leak.
    #[serde(default = "default_leak_words")]
    leak_words: usize,
    /// What to do on a finding (default `annotate`).
    #[serde(default = "annotate")]
    action: Action,
    /// The answer given instead (`replace`).
    #[serde(default = "withheld")]
    message: String,
    /// Characters of each streamed choice held back before they are sent.
    #[serde(default = "window")]
    hold_back: usize,
}

fn default_leak_words() -> usize {
    8
}
fn annotate() -> Action {
    Action::Annotate
}
fn withheld() -> String {
    "The answer was withheld by policy.".to_owned()
}
fn window() -> usize {
    64
}

/// The built-in behaviours: name, patterns, whether it reads the system prompt.
const BUILT_IN: &[(&str, &[&str], bool)] = &[
    (
        "reveal_system_prompt",
        &[
            r"\bmy (system prompt|system message|system instructions|initial instructions|hidden instructions|original instructions|instructions)\b[^.\n]{0,30}\b(is|are|says|say|reads|read|was|were|states|tells? me)\b",
            r"\b(here (is|are)|below (is|are)|these are|this is)\s+my\s+(full\s+|complete\s+|exact\s+)?(system prompt|system message|instructions|initial instructions|guidelines|configuration)\b",
            r"\bi (was|have been|am) (instructed|told|programmed|configured) (to|not to)\b",
        ],
        true,
    ),
    (
        "give_medical_dosage",
        &[
            r"\b(take|taking|dose|dosage|dosing|administer|give|prescribe|inject)\b[^.\n]{0,40}\b\d+(?:[.,]\d+)?\s?(mg|mcg|µg|g|ml|iu|units?|tablets?|pills?|capsules?|drops|puffs)\b",
            r"\b\d+(?:[.,]\d+)?\s?(mg|mcg|µg|ml|iu|units?|tablets?|pills?|capsules?)\b[^.\n]{0,40}\b(every \d+(\s?-\s?\d+)? hours?|(once|twice|three times|\d+ times) (a|per|each) (day|week)|daily|per day|a day|at bedtime)\b",
        ],
        false,
    ),
    (
        "cite_sources",
        &[
            r"https?://\S+|\[\d+\]|\bdoi:\s*10\.|\b(sources?|references?|citations?|bibliography)\s*:|\baccording to\s+(the\s+)?\w+|\(\w[\w-]*(?: et al\.)?,? (?:19|20)\d\d\)",
        ],
        false,
    ),
    (
        "include_disclaimer",
        &[
            r"\bnot (a substitute for |intended as |meant as )?(medical|legal|financial|professional) advice\b|\bconsult (a|an|your) (doctor|physician|pharmacist|lawyer|attorney|financial advisor|professional|healthcare provider|specialist)\b|\bi am not a (doctor|lawyer|financial advisor)\b|\bi'm not a (doctor|lawyer|financial advisor)\b",
        ],
        false,
    ),
];

/// Answers are compared with exemplars piece by piece: pieces of about this many
/// characters, at most [`MAX_PIECES`].
const PIECE_CHARS: usize = 300;
const MAX_PIECES: usize = 8;
/// How long the embeddings of a finished answer may take.
const EMBED_WAIT: Duration = Duration::from_secs(2);

/// One behaviour, built.
#[derive(Debug)]
pub(super) struct Behaviour {
    pub(super) name: String,
    patterns: Option<Regex>,
    system_leak: bool,
    exemplars: Vec<String>,
    threshold: f32,
    /// The exemplars' embeddings, made on first use.
    vectors: OnceLock<Vec<Vec<f32>>>,
}

/// The commitments of a route, built.
#[derive(Debug)]
pub(super) struct Commitments {
    pub(super) must_not: Vec<Behaviour>,
    pub(super) must: Vec<Behaviour>,
    leak_words: usize,
}

/// A span of the answer that shows a behaviour.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Span {
    pub(super) check: String,
    pub(super) start: usize,
    pub(super) end: usize,
}

/// The word windows of a request's system messages, hashed (lower-cased words).
#[derive(Debug, Default)]
pub(super) struct Shingles(HashSet<u64>);

/// Words (letters and digits) of `text` with their byte spans.
fn words(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let rest = text.get(at..)?;
        let start = at + rest.find(char::is_alphanumeric)?;
        let len = text[start..]
            .find(|c: char| !c.is_alphanumeric())
            .unwrap_or(text.len() - start);
        at = start + len;
        Some((start, start + len))
    })
}

fn window_hash<'a>(words: impl Iterator<Item = &'a str>) -> u64 {
    let mut h = switchyard_wire::hash::FNV_OFFSET;
    for w in words {
        for c in w.chars().flat_map(char::to_lowercase) {
            let mut buf = [0u8; 4];
            h = switchyard_wire::hash::fnv1a(c.encode_utf8(&mut buf).as_bytes(), h);
        }
        h = switchyard_wire::hash::fnv1a(b" ", h);
    }
    h
}

/// Most words of the system messages kept for the leak check (their first ones).
const MAX_SYSTEM_WORDS: usize = 20_000;

impl Commitments {
    /// The windows of `leak_words` words of a request's system messages, when a
    /// behaviour reads them.
    pub(super) fn shingles(&self, request: &ChatRequest) -> Shingles {
        let reads = self.must_not.iter().any(|b| b.system_leak);
        if !reads {
            return Shingles::default();
        }
        let mut set = HashSet::new();
        for m in request
            .messages
            .iter()
            .filter(|m| m.role == "system" || m.role == "developer")
        {
            let text = m.content.as_ref().map(|c| c.text()).unwrap_or_default();
            let spans: Vec<(usize, usize)> = words(&text).take(MAX_SYSTEM_WORDS).collect();
            for w in spans.windows(self.leak_words) {
                set.insert(window_hash(w.iter().map(|&(s, e)| &text[s..e])));
            }
        }
        Shingles(set)
    }

    /// Spans of `text` that show a must-not behaviour by its patterns, or repeat
    /// the system messages.
    pub(super) fn spans(&self, text: &str, system: &Shingles) -> Vec<Span> {
        let mut found = Vec::new();
        for b in &self.must_not {
            let check = format!("must_not:{}", b.name);
            if let Some(re) = &b.patterns {
                found.extend(re.find_iter(text).map(|m| Span {
                    check: check.clone(),
                    start: m.start(),
                    end: m.end(),
                }));
            }
            if b.system_leak && !system.0.is_empty() {
                let spans: Vec<(usize, usize)> = words(text).collect();
                for w in spans.windows(self.leak_words) {
                    if system
                        .0
                        .contains(&window_hash(w.iter().map(|&(s, e)| &text[s..e])))
                        && let (Some(first), Some(last)) = (w.first(), w.last())
                    {
                        found.push(Span {
                            check: check.clone(),
                            start: first.0,
                            end: last.1,
                        });
                    }
                }
            }
        }
        found
    }

    /// Whether any behaviour compares the answer with exemplars.
    pub(super) fn embeds(&self) -> bool {
        self.must_not
            .iter()
            .chain(&self.must)
            .any(|b| !b.exemplars.is_empty())
    }

    /// What the finished answer `text` breaks as a whole: a `must` it lacks, a
    /// `must_not` it shows by meaning. `shown` are the checks its spans already
    /// fired. An embedding that fails is logged and counts as no match.
    pub(super) fn whole(
        &self,
        text: &str,
        shown: &HashSet<String>,
        embedder: Option<&EmbedWorkers>,
    ) -> Vec<String> {
        let pieces = std::cell::OnceCell::new();
        let similar = |b: &Behaviour| -> bool {
            let Some(workers) = embedder.filter(|_| !b.exemplars.is_empty()) else {
                return false;
            };
            let deadline = Some(Instant::now() + EMBED_WAIT);
            let exemplars = b.vectors.get_or_init(|| {
                let tickets: Vec<_> = b.exemplars.iter().map(|e| workers.submit(e)).collect();
                tickets
                    .into_iter()
                    .filter_map(|t| t.wait(deadline).ok())
                    .collect()
            });
            let pieces: &Vec<Vec<f32>> = pieces.get_or_init(|| {
                let tickets: Vec<_> = split(text).map(|p| workers.submit(p)).collect();
                tickets
                    .into_iter()
                    .filter_map(|t| match t.wait(deadline) {
                        Ok(v) => Some(v),
                        Err(e) => {
                            tracing::debug!(error = %e, "commitments: a piece of the answer was not embedded");
                            None
                        }
                    })
                    .collect()
            });
            pieces.iter().any(|p| {
                exemplars
                    .iter()
                    .any(|e| switchyard_embed::cosine(p, e) >= b.threshold)
            })
        };
        let mut broken = Vec::new();
        for b in &self.must {
            let check = format!("must:{}", b.name);
            let by_pattern = b.patterns.as_ref().is_some_and(|re| re.is_match(text));
            if !by_pattern && !similar(b) {
                broken.push(check);
            }
        }
        for b in &self.must_not {
            let check = format!("must_not:{}", b.name);
            if !shown.contains(&check) && similar(b) {
                broken.push(check);
            }
        }
        broken
    }
}

/// `text` in pieces of about [`PIECE_CHARS`] characters, cut after a sentence or a
/// line where one is near, at most [`MAX_PIECES`].
fn split(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text.trim();
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let limit = rest
            .char_indices()
            .nth(PIECE_CHARS)
            .map_or(rest.len(), |(i, _)| i);
        let cut = if limit == rest.len() {
            limit
        } else {
            rest[..limit]
                .rfind(['.', '!', '?', '\n'])
                .filter(|&i| i > limit / 2)
                .map_or(limit, |i| i + 1)
        };
        let (piece, tail) = rest.split_at(cut);
        rest = tail.trim_start();
        Some(piece)
    })
    .take(MAX_PIECES)
}

/// Builds the plugin from its options.
pub fn build(
    options: &Map<String, Value>,
    context: &Context<'_>,
) -> Result<Box<dyn Plugin>, String> {
    let o: Options = super::options(options)?;
    if o.must.is_empty() && o.must_not.is_empty() {
        return Err("nothing to check: list behaviours under `must_not` or `must`".to_owned());
    }
    if !(3..=64).contains(&o.leak_words) {
        return Err(format!("leak_words {} is not in 3..=64", o.leak_words));
    }
    if !(1..=4096).contains(&o.hold_back) {
        return Err(format!("hold_back {} is not in 1..=4096", o.hold_back));
    }
    for name in o.behaviours.keys() {
        if BUILT_IN.iter().any(|(b, _, _)| b == name) {
            return Err(format!(
                "behaviours: `{name}` is built in; give yours another name"
            ));
        }
    }
    let known: Vec<&str> = BUILT_IN
        .iter()
        .map(|(n, _, _)| *n)
        .chain(o.behaviours.keys().map(String::as_str))
        .collect();
    let behaviour = |name: &String| -> Result<Behaviour, String> {
        if let Some((_, patterns, system_leak)) = BUILT_IN.iter().find(|(n, _, _)| n == name) {
            return Ok(Behaviour {
                name: name.clone(),
                patterns: Some(compile(patterns).map_err(|e| format!("{name}: {e}"))?),
                system_leak: *system_leak,
                exemplars: Vec::new(),
                threshold: 1.0,
                vectors: OnceLock::new(),
            });
        }
        let Some(b) = o.behaviours.get(name) else {
            let hint = switchyard_wire::typos::suggest(name, known.iter().copied())
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_else(|| format!("; known: {}", known.join(", ")));
            return Err(format!("unknown behaviour `{name}`{hint}"));
        };
        if b.patterns.is_empty() && b.exemplars.is_empty() {
            return Err(format!(
                "behaviours.{name}: give `patterns`, `exemplars` or both"
            ));
        }
        if !b.exemplars.is_empty() && !context.embedding_model {
            return Err(format!(
                "behaviours.{name}: exemplars are compared by meaning, which needs signals.model (scripts/fetch-model.sh installs the default)"
            ));
        }
        if !(b.threshold > 0.0 && b.threshold <= 1.0) {
            return Err(format!(
                "behaviours.{name}: threshold {} is not in (0, 1]",
                b.threshold
            ));
        }
        let patterns: Vec<&str> = b.patterns.iter().map(String::as_str).collect();
        Ok(Behaviour {
            name: name.clone(),
            patterns: if patterns.is_empty() {
                None
            } else {
                Some(compile(&patterns).map_err(|e| format!("behaviours.{name}: {e}"))?)
            },
            system_leak: false,
            exemplars: b.exemplars.clone(),
            threshold: b.threshold,
            vectors: OnceLock::new(),
        })
    };
    let commitments = Commitments {
        must_not: o.must_not.iter().map(behaviour).collect::<Result<_, _>>()?,
        must: o.must.iter().map(behaviour).collect::<Result<_, _>>()?,
        leak_words: o.leak_words,
    };
    Ok(Box::new(ResponseGuard::for_commitments(
        commitments,
        o.action,
        o.message,
        o.hold_back,
    )))
}

/// One case-insensitive regex of alternatives.
fn compile(patterns: &[&str]) -> Result<Regex, regex::Error> {
    let alternatives: Vec<String> = patterns.iter().map(|p| format!("(?:{p})")).collect();
    Regex::new(&format!("(?i){}", alternatives.join("|")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commitments(options: Value) -> Commitments {
        let o: Options = super::super::options(options.as_object().unwrap()).unwrap();
        let built = |names: &[String]| {
            names
                .iter()
                .map(|n| {
                    let (_, patterns, leak) = BUILT_IN.iter().find(|(b, _, _)| b == n).unwrap();
                    Behaviour {
                        name: n.clone(),
                        patterns: Some(compile(patterns).unwrap()),
                        system_leak: *leak,
                        exemplars: Vec::new(),
                        threshold: 1.0,
                        vectors: OnceLock::new(),
                    }
                })
                .collect()
        };
        Commitments {
            must_not: built(&o.must_not),
            must: built(&o.must),
            leak_words: o.leak_words,
        }
    }

    fn request(system: &str) -> ChatRequest {
        serde_json::from_value(serde_json::json!({"model": "m", "messages": [
            {"role": "system", "content": system}, {"role": "user", "content": "hi"}]}))
        .unwrap()
    }

    #[test]
    fn a_leak_is_found_where_the_system_prompt_is_repeated_and_only_there() {
        let c = commitments(serde_json::json!({"must_not": ["reveal_system_prompt"]}));
        let system = "You are Ledger, the billing assistant of Acme. Never discuss refunds above 500 dollars without a manager.";
        let s = c.shingles(&request(system));
        let leak = "Sure! I follow this: never discuss REFUNDS above 500 dollars without a manager, as told.";
        let spans = c.spans(leak, &s);
        assert!(!spans.is_empty());
        let (start, end) = (spans[0].start, spans.last().unwrap().end);
        assert_eq!(
            &leak[start..end],
            "never discuss REFUNDS above 500 dollars without a manager"
        );
        // Seven words in a row are not a leak; ordinary answers are not either.
        assert!(
            c.spans("We never discuss refunds above 500 dollars here.", &s)
                .is_empty()
        );
        assert!(c.spans("Your invoice is attached.", &s).is_empty());
        // Saying what its instructions are is a reveal, whatever the words.
        assert_eq!(
            c.spans("Here are my instructions: be nice.", &Shingles::default())[0].check,
            "must_not:reveal_system_prompt"
        );
        assert!(
            c.spans("A system prompt is the first message a model gets.", &s)
                .is_empty()
        );
    }

    #[test]
    fn dosages_and_missing_sources_and_disclaimers_are_found() {
        let c = commitments(serde_json::json!({
            "must_not": ["give_medical_dosage"], "must": ["cite_sources", "include_disclaimer"]}));
        let none = Shingles::default();
        for dosage in [
            "Take 400 mg of ibuprofen every 6 hours.",
            "The usual dose is 2 tablets twice a day.",
            "Adults: 500mg daily with food.",
        ] {
            assert!(!c.spans(dosage, &none).is_empty(), "{dosage}");
        }
        for fine in [
            "Ibuprofen is a nonsteroidal anti-inflammatory drug.",
            "The bottle holds 200 ml.",
            "Take the second exit after 300 m.",
        ] {
            assert!(c.spans(fine, &none).is_empty(), "{fine}");
        }
        let shown = HashSet::new();
        assert_eq!(
            c.whole("Paris is the capital of France.", &shown, None),
            ["must:cite_sources", "must:include_disclaimer"]
        );
        assert_eq!(
            c.whole(
                "According to WHO data [1], rest helps. This is not medical advice.",
                &shown,
                None
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            c.whole(
                "See https://example.org. Consult your doctor.",
                &shown,
                None
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn answers_are_cut_into_bounded_pieces() {
        let text = "One sentence here. ".repeat(200);
        let pieces: Vec<&str> = split(&text).collect();
        assert_eq!(pieces.len(), MAX_PIECES);
        assert!(
            pieces
                .iter()
                .all(|p| p.len() <= PIECE_CHARS + 4 && p.ends_with('.'))
        );
        assert_eq!(split("short").collect::<Vec<_>>(), ["short"]);
        assert_eq!(split("  ").count(), 0);
    }

    #[test]
    fn bad_options_are_refused_with_the_reason() {
        let err = |o: Value| build(o.as_object().unwrap(), &Context::default()).unwrap_err();
        assert!(err(serde_json::json!({})).contains("nothing to check"));
        assert!(
            err(serde_json::json!({"must_not": ["reveal_sytem_prompt"]}))
                .contains("reveal_system_prompt")
        );
        assert!(
            err(serde_json::json!({"must": ["tone"], "behaviours": {"tone": {"exemplars": ["Dear customer"]}}}))
                .contains("signals.model")
        );
        assert!(
            err(serde_json::json!({"must": ["tone"], "behaviours": {"tone": {}}}))
                .contains("patterns")
        );
        assert!(
            err(serde_json::json!({"must": ["cite_sources"], "behaviours": {"cite_sources": {"patterns": ["x"]}}}))
                .contains("built in")
        );
        assert!(
            err(serde_json::json!({"must": ["cite_sources"], "leak_words": 1}))
                .contains("leak_words")
        );
    }
}
