//! Signals that contrast the request's embedding with two sets of exemplars: the
//! similarity to the nearest exemplar of one side minus that of the other.
//!
//! - `fact_check`: does the request seek verifiable facts (dates, figures, who did
//!   what), as opposed to creative, opinion, coding or arithmetic requests?
//! - `complexity`: easy, medium or hard, from hard-versus-easy exemplars plus
//!   structural cues (length, enumerated requirements, proofs and derivations, code
//!   and formulas); its value is a difficulty in [0, 1].
//! - `preference`: exemplars of what a caller prefers (and optionally of the
//!   opposite), for routes such as "wants a terse answer" or "asks for code only".
//!
//! Built-in exemplars are used when a definition lists none; vectors are cached on
//! disk like every exemplar's.

use crate::embedding::ExemplarCache;
use crate::signals::{
    BuildContext, FamilyConfig, Request, Signal, SignalFamily, SignalKey, SignalValue,
};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;
use switchyard_embed::{Embedder, cosine};

/// Exemplar texts with their vectors.
#[derive(Debug)]
pub struct Exemplars(Vec<(String, Vec<f32>)>);

impl Exemplars {
    /// Embeds `texts` (through the cache); `what` names them in errors.
    pub fn embed(
        texts: &[String],
        what: &str,
        embedder: &Embedder,
        cache: &ExemplarCache,
    ) -> Result<Exemplars, String> {
        if texts.is_empty() || texts.iter().any(|t| t.trim().is_empty()) {
            return Err(format!("`{what}` needs at least one non-empty sentence"));
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = cache.vectors(embedder, &refs, |_| {})?;
        Ok(Exemplars(texts.iter().cloned().zip(vectors).collect()))
    }

    /// The mean similarity over the exemplars.
    pub fn mean(&self, query: &[f32]) -> f32 {
        let sum: f32 = self.0.iter().map(|(_, v)| cosine(query, v)).sum();
        sum / self.0.len().max(1) as f32
    }

    /// The most similar exemplar: its similarity and text.
    pub fn nearest(&self, query: &[f32]) -> (f32, &str) {
        self.0
            .iter()
            .map(|(t, v)| (cosine(query, v), t.as_str()))
            .fold(
                (f32::NEG_INFINITY, ""),
                |a, b| if b.0 > a.0 { b } else { a },
            )
    }
}

/// Exemplars of one side and, optionally, of the other: the request's similarity to
/// the nearest of the first minus that to the nearest of the second.
#[derive(Debug)]
pub struct Contrast {
    yes: Exemplars,
    no: Option<Exemplars>,
}

/// A contrast's verdict on one vector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Margin<'a> {
    /// Nearest `yes` similarity minus nearest `no` similarity (0 without `no`).
    pub score: f64,
    /// The nearest `yes` exemplar: similarity and text.
    pub yes: (f32, &'a str),
    /// The nearest `no` exemplar, if there is a `no` side.
    pub no: Option<(f32, &'a str)>,
}

impl Margin<'_> {
    /// "margin 0.123: factual "…" 0.512, other "…" 0.389".
    pub fn describe(&self, yes: &str, no: &str) -> String {
        match self.no {
            Some((sim, text)) => format!(
                "margin {:.3}: {yes} \"{}\" {:.3}, {no} \"{}\" {sim:.3}",
                self.score,
                short(self.yes.1),
                self.yes.0,
                short(text)
            ),
            None => format!("{:.3}; nearest \"{}\"", self.score, short(self.yes.1)),
        }
    }

    /// Confidence of a threshold decision: 0.5 at the threshold, 1 at 0.2 from it.
    pub fn confidence(&self, threshold: f64) -> f64 {
        (0.5 + (self.score - threshold).abs() * 2.5).min(1.0)
    }
}

impl Contrast {
    /// Embeds both sides; `names` label them in errors.
    pub fn build(
        yes: &[String],
        no: Option<&[String]>,
        names: (&str, &str),
        (embedder, cache): (&Embedder, &ExemplarCache),
    ) -> Result<Contrast, String> {
        Ok(Contrast {
            yes: Exemplars::embed(yes, names.0, embedder, cache)?,
            no: no
                .map(|n| Exemplars::embed(n, names.1, embedder, cache))
                .transpose()?,
        })
    }

    /// The margin of `query`.
    pub fn margin(&self, query: &[f32]) -> Margin<'_> {
        let yes = self.yes.nearest(query);
        let no = self.no.as_ref().map(|n| n.nearest(query));
        Margin {
            score: f64::from(yes.0 - no.map_or(0.0, |n| n.0)),
            yes,
            no,
        }
    }
}

/// Evaluates with the request's embedding, or reports why there is none.
fn with_vector(request: &Request<'_>, judge: impl FnOnce(&[f32]) -> SignalValue) -> SignalValue {
    match request.embedding() {
        Ok(v) => judge(v),
        Err(e) => SignalValue::failed(format!("no embedding: {e}")),
    }
}

fn owned(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|s| (*s).to_owned()).collect()
}

/// The model-backed part every contrast signal shares.
type Model<'a> = Option<(&'a Embedder, &'a ExemplarCache)>;

fn need_model<'a>(
    model: Model<'a>,
    family: &str,
) -> Result<(&'a Embedder, &'a ExemplarCache), String> {
    model.ok_or_else(|| format!("{family} signals need signals.model"))
}

fn short(text: &str) -> String {
    text.chars().take(60).collect()
}

/// Factual requests used when a `fact_check` signal lists none.
pub const DEFAULT_FACTUAL: &[&str] = &[
    "When did the Berlin Wall fall?",
    "What is the capital of Australia?",
    "Who wrote One Hundred Years of Solitude?",
    "How many people live in Tokyo?",
    "What year was the first iPhone released?",
    "Which element has the atomic number 26?",
    "Is it true that the Great Wall of China is visible from space?",
    "What is the boiling point of water in Fahrenheit?",
    "Who won the Nobel Prize in Physics in 2019?",
    "What are the known side effects of ibuprofen?",
    "How tall is Mount Kilimanjaro?",
    "What did the Treaty of Versailles require of Germany?",
];

/// Other requests used when a `fact_check` signal lists none.
pub const DEFAULT_NON_FACTUAL: &[&str] = &[
    "Write a poem about autumn leaves.",
    "What do you think about working from home?",
    "Help me brainstorm names for my bakery.",
    "Write a Python function that reverses a string.",
    "Solve 2x + 3 = 11.",
    "Rewrite this paragraph to sound more formal.",
    "Tell me a joke about cats.",
    "Plan a weekly workout schedule for a beginner.",
    "Should I learn the guitar or the piano first?",
    "Translate good morning into Spanish.",
    "Summarize this email in two sentences.",
    "Imagine a world where the moon is made of glass and describe a day there.",
];

/// A fact-check signal.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FactCheckSignalConfig {
    /// The signal's name, as routes refer to it.
    pub name: String,
    /// Margin of the nearest factual over the nearest other exemplar (default 0.05).
    #[serde(default = "default_margin")]
    pub threshold: f64,
    /// Requests that seek facts (default: a built-in set).
    #[serde(default)]
    pub factual: Option<Vec<String>>,
    /// Requests that do not (default: a built-in set).
    #[serde(default)]
    pub other: Option<Vec<String>>,
}

fn default_margin() -> f64 {
    0.05
}

/// Holds when the request is nearer factual questions than other requests.
#[derive(Debug)]
pub struct FactCheckSignal {
    key: SignalKey,
    threshold: f64,
    contrast: Contrast,
}

impl FactCheckSignal {
    /// Builds the signal, embedding its exemplars.
    pub fn new(config: &FactCheckSignalConfig, model: Model<'_>) -> Result<Self, String> {
        let model = need_model(model, "fact_check")?;
        let factual = config
            .factual
            .clone()
            .unwrap_or_else(|| owned(DEFAULT_FACTUAL));
        let other = config
            .other
            .clone()
            .unwrap_or_else(|| owned(DEFAULT_NON_FACTUAL));
        Ok(FactCheckSignal {
            key: SignalKey {
                family: SignalFamily::FactCheck,
                name: config.name.clone(),
            },
            threshold: config.threshold,
            contrast: Contrast::build(&factual, Some(&other), ("factual", "other"), model)?,
        })
    }
}

impl Signal for FactCheckSignal {
    fn key(&self) -> &SignalKey {
        &self.key
    }

    fn uses_model(&self) -> bool {
        true
    }

    fn evaluate(&self, request: &Request<'_>) -> SignalValue {
        with_vector(request, |query| {
            let m = self.contrast.margin(query);
            SignalValue {
                matched: m.score >= self.threshold,
                value: m.score,
                confidence: m.confidence(self.threshold),
                evidence: Some(m.describe("factual", "other")),
                label: None,
                cost_ns: 0,
                error: None,
            }
        })
    }
}

/// A difficulty level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Difficulty below 0.4.
    Easy,
    /// Between.
    Medium,
    /// Difficulty of 0.6 or more.
    Hard,
}

impl Level {
    /// The level of a difficulty in [0, 1].
    pub fn of(difficulty: f64) -> Level {
        if difficulty >= 0.6 {
            Level::Hard
        } else if difficulty < 0.4 {
            Level::Easy
        } else {
            Level::Medium
        }
    }

    fn name(self) -> &'static str {
        match self {
            Level::Easy => "easy",
            Level::Medium => "medium",
            Level::Hard => "hard",
        }
    }
}

/// Hard requests used when a `complexity` signal lists none.
pub const DEFAULT_HARD: &[&str] = &[
    "Prove that there are infinitely many primes of the form 4k+3.",
    "Design a Byzantine fault tolerant consensus protocol and analyze its message complexity.",
    "Derive the posterior of a Gaussian process with a squared-exponential kernel.",
    "Analyze the constitutional implications of this statute under the commerce clause, citing precedent.",
    "Optimize this query over a billion-row table and explain the trade-offs of each plan.",
    "Compare three lock-free queue designs and their memory-ordering requirements.",
    "Given these constraints, find the minimum-cost schedule and prove that it is optimal.",
    "Explain the interactions of warfarin with other drugs in a patient with renal failure.",
];

/// Easy requests used when a `complexity` signal lists none.
pub const DEFAULT_EASY: &[&str] = &[
    "What is 2 + 2?",
    "Say hello in French.",
    "What color is the sky?",
    "Give me a synonym for happy.",
    "What day comes after Monday?",
    "How do you spell necessary?",
    "Tell me a fun fact about cats.",
    "Convert 10 centimetres to millimetres.",
];

/// A complexity signal.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ComplexitySignalConfig {
    /// The signal's name, as routes refer to it.
    pub name: String,
    /// The level at which it holds (default `hard`).
    #[serde(default = "default_level")]
    pub level: Level,
    /// Hard requests (default: a built-in set).
    #[serde(default)]
    pub hard: Option<Vec<String>>,
    /// Easy requests (default: a built-in set).
    #[serde(default)]
    pub easy: Option<Vec<String>>,
}

fn default_level() -> Level {
    Level::Hard
}

/// Cues of demanding requests, each adding to the difficulty.
static CUES: LazyLock<Vec<(Regex, f64, &'static str)>> = LazyLock::new(|| {
    [
        (
            r"(?i)\b(prove|proof|derive|derivation|formally|rigorous(ly)?)\b",
            0.08,
            "proof",
        ),
        (
            r"(?i)\b(optimi[sz]e|trade-?offs?|complexity|asymptotic|scalab\w+)\b",
            0.05,
            "analysis",
        ),
        (r"(?i)\bstep[- ]by[- ]step\b|\bin detail\b", 0.04, "detail"),
        (r"```|\bfn |\bdef |\bclass |#include", 0.04, "code"),
        (r"[∑∫∂√≤≥≠∀∃]|\\(frac|sum|int|partial)\b", 0.05, "formula"),
        (r"(?m)^\s*(\d+[.)]|[-*•])\s+\S", 0.0, "list"),
    ]
    .into_iter()
    .filter_map(|(p, w, n)| Regex::new(p).ok().map(|r| (r, w, n)))
    .collect()
});

/// Structural difficulty of a text: the cues it shows and their summed weight.
pub fn structural(text: &str, tokens: u32) -> (f64, Vec<&'static str>) {
    let mut bonus = 0.0;
    let mut seen = Vec::new();
    for (re, weight, name) in CUES.iter() {
        if *name == "list" {
            if re.find_iter(text).count() >= 3 {
                bonus += 0.05;
                seen.push("requirements");
            }
        } else if re.is_match(text) {
            bonus += weight;
            seen.push(*name);
        }
    }
    if tokens > 600 {
        bonus += 0.05;
        seen.push("long");
    }
    (bonus, seen)
}

/// Holds when the request's difficulty level is the configured one.
#[derive(Debug)]
pub struct ComplexitySignal {
    key: SignalKey,
    level: Level,
    contrast: Contrast,
}

impl ComplexitySignal {
    /// Builds the signal, embedding its exemplars.
    pub fn new(config: &ComplexitySignalConfig, model: Model<'_>) -> Result<Self, String> {
        let model = need_model(model, "complexity")?;
        let hard = config.hard.clone().unwrap_or_else(|| owned(DEFAULT_HARD));
        let easy = config.easy.clone().unwrap_or_else(|| owned(DEFAULT_EASY));
        Ok(ComplexitySignal {
            key: SignalKey {
                family: SignalFamily::Complexity,
                name: config.name.clone(),
            },
            level: config.level,
            contrast: Contrast::build(&hard, Some(&easy), ("hard", "easy"), model)?,
        })
    }
}

impl Signal for ComplexitySignal {
    fn key(&self) -> &SignalKey {
        &self.key
    }

    fn uses_model(&self) -> bool {
        true
    }

    fn evaluate(&self, request: &Request<'_>) -> SignalValue {
        with_vector(request, |query| {
            let m = self.contrast.margin(query);
            let text = request.scan_text();
            let (bonus, cues) = structural(text, request.conversation.prompt_tokens);
            // A margin of ±0.2 spans the scale; cues push towards hard.
            let difficulty = (0.5 + 2.5 * m.score + bonus).clamp(0.0, 1.0);
            let level = Level::of(difficulty);
            let edge = if difficulty >= 0.5 { 0.6 } else { 0.4 };
            SignalValue {
                matched: level == self.level,
                value: difficulty,
                confidence: (0.5 + (difficulty - edge).abs() * 2.5).min(1.0),
                evidence: Some(format!(
                    "{} ({difficulty:.2}; {}{}{})",
                    level.name(),
                    m.describe("hard", "easy"),
                    if cues.is_empty() { "" } else { "; cues: " },
                    cues.join(", ")
                )),
                label: Some(level.name().to_owned()),
                cost_ns: 0,
                error: None,
            }
        })
    }
}

/// A preference signal.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PreferenceSignalConfig {
    /// The signal's name, as routes refer to it.
    pub name: String,
    /// Requests that express the preference.
    pub prefer: Vec<String>,
    /// Requests that express the opposite (optional): the score is then a margin.
    #[serde(default)]
    pub versus: Vec<String>,
    /// Score at or above which it holds (default 0.5; with `versus`, a margin: try 0.05).
    #[serde(default = "default_preference")]
    pub threshold: f64,
}

fn default_preference() -> f64 {
    0.5
}

/// Holds when the request is near the preferred exemplars (and nearer than the others).
#[derive(Debug)]
pub struct PreferenceSignal {
    key: SignalKey,
    threshold: f64,
    contrast: Contrast,
}

impl PreferenceSignal {
    /// Builds the signal, embedding its exemplars.
    pub fn new(config: &PreferenceSignalConfig, model: Model<'_>) -> Result<Self, String> {
        let model = need_model(model, "preference")?;
        let versus = (!config.versus.is_empty()).then_some(config.versus.as_slice());
        Ok(PreferenceSignal {
            key: SignalKey {
                family: SignalFamily::Preference,
                name: config.name.clone(),
            },
            threshold: config.threshold,
            contrast: Contrast::build(&config.prefer, versus, ("prefer", "versus"), model)?,
        })
    }
}

impl Signal for PreferenceSignal {
    fn key(&self) -> &SignalKey {
        &self.key
    }

    fn uses_model(&self) -> bool {
        true
    }

    fn evaluate(&self, request: &Request<'_>) -> SignalValue {
        with_vector(request, |query| {
            let m = self.contrast.margin(query);
            SignalValue {
                matched: m.score >= self.threshold,
                value: m.score,
                confidence: m.score.clamp(0.0, 1.0),
                evidence: Some(m.describe("prefer", "versus")),
                label: None,
                cost_ns: 0,
                error: None,
            }
        })
    }
}

impl FamilyConfig for FactCheckSignalConfig {
    type Signal = FactCheckSignal;

    fn name(&self) -> &str {
        &self.name
    }

    fn needs_model(&self) -> bool {
        true
    }

    fn build(&self, context: &BuildContext<'_>) -> Result<FactCheckSignal, String> {
        FactCheckSignal::new(self, context.model())
    }
}

impl FamilyConfig for ComplexitySignalConfig {
    type Signal = ComplexitySignal;

    fn name(&self) -> &str {
        &self.name
    }

    fn needs_model(&self) -> bool {
        true
    }

    fn build(&self, context: &BuildContext<'_>) -> Result<ComplexitySignal, String> {
        ComplexitySignal::new(self, context.model())
    }
}

impl FamilyConfig for PreferenceSignalConfig {
    type Signal = PreferenceSignal;

    fn name(&self) -> &str {
        &self.name
    }

    fn needs_model(&self) -> bool {
        true
    }

    fn build(&self, context: &BuildContext<'_>) -> Result<PreferenceSignal, String> {
        PreferenceSignal::new(self, context.model())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::{SignalEngine, SignalsConfig};
    use switchyard_wire::Conversation;

    #[test]
    fn levels_split_the_difficulty_scale() {
        assert_eq!(Level::of(0.1), Level::Easy);
        assert_eq!(Level::of(0.5), Level::Medium);
        assert_eq!(Level::of(0.6), Level::Hard);
        assert!(Level::Easy < Level::Hard);
    }

    #[test]
    fn structural_cues_add_difficulty() {
        let (plain, none) = structural("what is the capital of France?", 8);
        assert_eq!(plain, 0.0);
        assert!(none.is_empty());
        let text =
            "Prove the bound step by step.\n1. use induction\n2. bound the sum ∑\n3. conclude";
        let (bonus, cues) = structural(text, 900);
        for cue in ["proof", "detail", "formula", "requirements", "long"] {
            assert!(cues.contains(&cue), "{cue}: {cues:?}");
        }
        assert!(bonus > 0.2, "{bonus}");
    }

    #[test]
    fn without_a_model_they_are_refused() {
        let config = FactCheckSignalConfig {
            name: "facts".into(),
            threshold: 0.05,
            factual: None,
            other: None,
        };
        assert!(
            FactCheckSignal::new(&config, None)
                .unwrap_err()
                .contains("signals.model")
        );
    }

    fn model_dir() -> Option<std::path::PathBuf> {
        std::env::var("SWITCHYARD_MODEL_DIR").ok().map(Into::into)
    }

    #[test]
    fn facts_complexity_and_preferences_with_the_model() {
        let Some(dir) = model_dir() else { return };
        let cache = std::env::temp_dir().join(format!("sy-contrast-{}", std::process::id()));
        let config: SignalsConfig = serde_json::from_value(serde_json::json!({
            "model": {"path": dir, "cache_dir": cache},
            "fact_check": [{"name": "facts"}],
            "complexity": [{"name": "hard"}, {"name": "easy", "level": "easy"}],
            "preference": [{
                "name": "terse",
                "prefer": ["just give me the answer, no explanation", "one word answer please"],
                "versus": ["explain in detail with examples", "walk me through every step"],
                "threshold": 0.05
            }]
        }))
        .unwrap();
        let engine = SignalEngine::build(&config).unwrap();
        let id = |f, n| engine.lookup(f, n).unwrap();
        let (facts, hard, easy, terse) = (
            id(SignalFamily::FactCheck, "facts"),
            id(SignalFamily::Complexity, "hard"),
            id(SignalFamily::Complexity, "easy"),
            id(SignalFamily::Preference, "terse"),
        );
        let all = [facts, hard, easy, terse];
        let ask = |p: &str| engine.characterize(&Conversation::from_prompt("auto", p), &all);
        let q = ask("In which year did the French Revolution begin?");
        assert!(q.matched(facts), "{:?}", q.get(facts));
        let poem = ask("Write a limerick about a sleepy dog");
        assert!(!poem.matched(facts), "{:?}", poem.get(facts));
        let proof = ask(
            "Prove rigorously that every bounded monotone sequence of reals converges, step by step.",
        );
        assert!(proof.matched(hard), "{:?}", proof.get(hard));
        let trivial = ask("What is 3 + 4?");
        assert!(trivial.matched(easy), "{:?}", trivial.get(easy));
        assert!(trivial.get(hard).unwrap().value < proof.get(hard).unwrap().value);
        let short = ask("Capital of Peru? Just the answer, no explanation.");
        assert!(short.matched(terse), "{:?}", short.get(terse));
        let long = ask("Explain in detail, with examples, how TCP congestion control works.");
        assert!(!long.matched(terse), "{:?}", long.get(terse));
        let _ = std::fs::remove_dir_all(&cache);
    }
}
