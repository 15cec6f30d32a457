//! Projections: signals derived from other signals instead of the request.
//!
//! - `weighted_sum`: a score, the sum of weighted terms, one per input signal (its
//!   match as a number, its confidence when it holds, or its raw value); weights may
//!   be negative.
//! - `threshold_bands`: named bands cut on another projection's score; the first
//!   band that holds is the signal's label (`projection("difficulty", "hard")`), and
//!   its confidence is 1, or with `calibration.slope` a sigmoid of the score's
//!   distance to the band's nearest edge (0.5 on the edge).
//! - `partition`: one winner among member signals that exclude each other: the
//!   member that holds with the highest confidence (`temperature` set: the highest
//!   softmax share of the members' confidences), else the `default` member; the
//!   winner's name is the label.
//!
//! The engine computes a projection after the signals it reads (which it computes
//! whenever the projection is needed), so a projection costs a few additions.

use crate::signals::{
    BuildContext, FamilyConfig, Request, Signal, SignalFamily, SignalKey, SignalValue,
};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// How a projection is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectionMethod {
    /// A score: the sum of weighted input terms.
    WeightedSum,
    /// Named bands over another projection's score.
    ThresholdBands,
    /// One winner among member signals.
    Partition,
}

/// What a term of a weighted sum reads of its input signal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputRead {
    /// `match` when the input holds, else `miss` (default).
    #[default]
    Match,
    /// The input's confidence when it holds, else 0.
    Confidence,
    /// The input's value (hits, tokens, similarity, another projection's score).
    Value,
}

/// One term of a weighted sum.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectionInput {
    /// The input signal as `family.name` (`keyword.urgent`, `projection.risk`).
    pub signal: String,
    /// The input counts as holding only when it reports this label (a difficulty
    /// level, a domain, a band).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The term's weight (negative weights lower the score).
    pub weight: f64,
    /// What is read (default `match`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub read: InputRead,
    /// Under `read: match`, the number when the input holds (default 1).
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub on_match: Option<f64>,
    /// Under `read: match`, the number when it does not (default 0).
    #[serde(default, rename = "miss", skip_serializing_if = "Option::is_none")]
    pub on_miss: Option<f64>,
}

fn is_default<T: Default + PartialEq>(x: &T) -> bool {
    *x == T::default()
}

/// One named band: the bounds its score must meet (at least one).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BandConfig {
    /// The band's name, as routes test it.
    pub name: String,
    /// Greater than.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt: Option<f64>,
    /// At least.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gte: Option<f64>,
    /// Less than.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<f64>,
    /// At most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lte: Option<f64>,
}

/// How sure a band is, by the score's distance to its edges.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationConfig {
    /// The sigmoid's slope: confidence = 1 / (1 + e^(−slope · distance)).
    pub slope: f64,
}

/// A projection's definition.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectionSignalConfig {
    /// The signal's name, as routes refer to it.
    pub name: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How it is computed.
    pub method: ProjectionMethod,
    /// `weighted_sum`: its terms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<ProjectionInput>,
    /// `threshold_bands`: the projection whose score the bands cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `threshold_bands`: the bands, the first that holds winning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bands: Vec<BandConfig>,
    /// `threshold_bands`: confidence by distance to the band's edges (default: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<CalibrationConfig>,
    /// `partition`: the member signals as `family.name`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    /// `partition`: the member that wins when none holds (`family.name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// `partition`: rank by softmax shares at this temperature instead of raw
    /// confidence (the winner's confidence is its share).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
}

/// Parses `family.name` (names may hold dots; families do not).
pub fn parse_signal_ref(text: &str) -> Result<SignalKey, String> {
    let (family, name) = text.split_once('.').ok_or_else(|| {
        format!("`{text}` does not name a signal: write family.name, e.g. keyword.urgent")
    })?;
    let family = SignalFamily::from_name(family).ok_or_else(|| {
        let names: Vec<&str> = SignalFamily::ALL.iter().map(|f| f.name()).collect();
        let hint = switchyard_wire::typos::suggest(family, names.iter().copied())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        format!("`{family}` in `{text}` is not a signal family{hint}")
    })?;
    if name.is_empty() {
        return Err(format!("`{text}` has no signal name after the family"));
    }
    Ok(SignalKey {
        family,
        name: name.to_owned(),
    })
}

/// A band as a closed or open interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    /// Lower bound and whether it is included.
    pub low: (f64, bool),
    /// Upper bound and whether it is included.
    pub high: (f64, bool),
}

impl Band {
    /// Whether `x` lies in the band.
    pub fn contains(&self, x: f64) -> bool {
        let above = if self.low.1 {
            x >= self.low.0
        } else {
            x > self.low.0
        };
        let below = if self.high.1 {
            x <= self.high.0
        } else {
            x < self.high.0
        };
        above && below
    }

    /// Distance from `x` (inside) to the nearest finite edge.
    fn depth(&self, x: f64) -> f64 {
        let to_low = x - self.low.0;
        let to_high = self.high.0 - x;
        to_low.min(to_high)
    }

    fn from_config(band: &BandConfig) -> Result<Band, String> {
        let finite = |v: Option<f64>, key: &str| match v {
            Some(x) if !x.is_finite() => Err(format!(
                "band `{}`: `{key}` must be a finite number",
                band.name
            )),
            _ => Ok(v),
        };
        let (gt, gte) = (finite(band.gt, "gt")?, finite(band.gte, "gte")?);
        let (lt, lte) = (finite(band.lt, "lt")?, finite(band.lte, "lte")?);
        if gt.is_some() && gte.is_some() || lt.is_some() && lte.is_some() {
            return Err(format!(
                "band `{}`: set one lower bound (gt or gte) and one upper bound (lt or lte)",
                band.name
            ));
        }
        let low = gt
            .map(|x| (x, false))
            .or(gte.map(|x| (x, true)))
            .unwrap_or((f64::NEG_INFINITY, false));
        let high = lt
            .map(|x| (x, false))
            .or(lte.map(|x| (x, true)))
            .unwrap_or((f64::INFINITY, false));
        if low.0 == f64::NEG_INFINITY && high.0 == f64::INFINITY {
            return Err(format!(
                "band `{}` has no bound: set gt, gte, lt or lte",
                band.name
            ));
        }
        let empty = low.0 > high.0 || (low.0 == high.0 && !(low.1 && high.1));
        if empty {
            return Err(format!("band `{}` holds for no score", band.name));
        }
        Ok(Band { low, high })
    }
}

/// One weighted-sum term, its input resolved by position.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    /// Its weight.
    pub weight: f64,
    /// What it reads.
    pub read: InputRead,
    /// The input's required label, if any.
    pub label: Option<String>,
    /// `read: match`: the numbers when the input holds and when it does not.
    pub on_match: f64,
    /// See `on_match`.
    pub on_miss: f64,
}

impl Term {
    /// Whether the input holds for this term.
    pub fn holds(&self, input: &SignalValue) -> bool {
        input.matched
            && self
                .label
                .as_ref()
                .is_none_or(|l| input.label.as_ref() == Some(l))
    }

    /// The term's number (before its weight) for an input value (`None`: not
    /// computed, which counts as not holding).
    pub fn reading(&self, input: Option<&SignalValue>) -> f64 {
        let holds = input.is_some_and(|v| self.holds(v));
        match self.read {
            InputRead::Match if holds => self.on_match,
            InputRead::Match => self.on_miss,
            // A holding input with no confidence counts as sure.
            InputRead::Confidence => match input {
                Some(v) if holds && v.confidence > 0.0 => v.confidence,
                Some(_) if holds => 1.0,
                _ => 0.0,
            },
            InputRead::Value => input.map_or(0.0, |v| v.value),
        }
    }
}

/// How a projection computes, with its inputs resolved by position in
/// [`Signal::reads`].
#[derive(Debug, Clone, PartialEq)]
pub enum Projection {
    /// A score: one term per input.
    Sum(Vec<Term>),
    /// Bands over the score of the one input, first match winning.
    Bands {
        /// Names and intervals, in order.
        bands: Vec<(String, Band)>,
        /// Calibration slope, if any.
        slope: Option<f64>,
    },
    /// One winner among the inputs (the members), by name.
    Partition {
        /// Member names, in input order.
        names: Vec<String>,
        /// The default member's position.
        default: usize,
        /// Softmax temperature, if any.
        temperature: Option<f64>,
    },
}

/// A projection signal.
#[derive(Debug)]
pub struct ProjectionSignal {
    key: SignalKey,
    reads: Vec<SignalKey>,
    projection: Projection,
}

impl ProjectionSignal {
    /// Checks a definition.
    pub fn new(config: &ProjectionSignalConfig) -> Result<ProjectionSignal, String> {
        let key = SignalKey {
            family: SignalFamily::Projection,
            name: config.name.clone(),
        };
        let unused = |field: &str, set: bool| {
            if set {
                Err(format!(
                    "`{field}` does not apply to method {}",
                    method_name(config.method)
                ))
            } else {
                Ok(())
            }
        };
        let (reads, projection) =
            match config.method {
                ProjectionMethod::WeightedSum => {
                    unused("source", config.source.is_some())?;
                    unused("bands", !config.bands.is_empty())?;
                    unused("calibration", config.calibration.is_some())?;
                    unused("members", !config.members.is_empty())?;
                    unused("default", config.default.is_some())?;
                    unused("temperature", config.temperature.is_some())?;
                    if config.inputs.is_empty() {
                        return Err("a weighted sum needs at least one input".to_owned());
                    }
                    let mut reads = Vec::new();
                    let mut terms = Vec::new();
                    for (i, input) in config.inputs.iter().enumerate() {
                        let at = |e: String| format!("inputs[{i}]: {e}");
                        reads.push(parse_signal_ref(&input.signal).map_err(at)?);
                        let numbers = [Some(input.weight), input.on_match, input.on_miss];
                        if numbers.iter().flatten().any(|x| !x.is_finite()) {
                            return Err(at("weights and numbers must be finite".to_owned()));
                        }
                        if input.read != InputRead::Match
                            && (input.on_match.is_some() || input.on_miss.is_some())
                        {
                            return Err(at(
                                "`match` and `miss` apply only to `read: match`".to_owned()
                            ));
                        }
                        terms.push(Term {
                            weight: input.weight,
                            read: input.read,
                            label: input.label.clone(),
                            on_match: input.on_match.unwrap_or(1.0),
                            on_miss: input.on_miss.unwrap_or(0.0),
                        });
                    }
                    (reads, Projection::Sum(terms))
                }
                ProjectionMethod::ThresholdBands => {
                    unused("inputs", !config.inputs.is_empty())?;
                    unused("members", !config.members.is_empty())?;
                    unused("default", config.default.is_some())?;
                    unused("temperature", config.temperature.is_some())?;
                    let source = config.source.as_ref().ok_or(
                        "threshold bands need `source`: the projection whose score they cut",
                    )?;
                    if config.bands.is_empty() {
                        return Err("threshold bands need at least one band".to_owned());
                    }
                    let mut bands: Vec<(String, Band)> = Vec::new();
                    for band in &config.bands {
                        if bands.iter().any(|(n, _)| *n == band.name) {
                            return Err(format!("band `{}` is defined twice", band.name));
                        }
                        bands.push((band.name.clone(), Band::from_config(band)?));
                    }
                    let slope = match config.calibration {
                        Some(c) if !(c.slope.is_finite() && c.slope > 0.0) => {
                            return Err("calibration.slope must be a positive number".to_owned());
                        }
                        c => c.map(|c| c.slope),
                    };
                    let source = SignalKey {
                        family: SignalFamily::Projection,
                        name: source.clone(),
                    };
                    (vec![source], Projection::Bands { bands, slope })
                }
                ProjectionMethod::Partition => {
                    unused("inputs", !config.inputs.is_empty())?;
                    unused("source", config.source.is_some())?;
                    unused("bands", !config.bands.is_empty())?;
                    unused("calibration", config.calibration.is_some())?;
                    if config.members.len() < 2 {
                        return Err("a partition needs at least two members".to_owned());
                    }
                    let reads = config
                        .members
                        .iter()
                        .map(|m| parse_signal_ref(m))
                        .collect::<Result<Vec<_>, _>>()?;
                    let mut names: Vec<String> = Vec::new();
                    for key in &reads {
                        if names.contains(&key.name) {
                            return Err(format!("two members are named `{}`", key.name));
                        }
                        names.push(key.name.clone());
                    }
                    let default = config.default.as_ref().ok_or(
                        "a partition needs `default`: the member that wins when none holds",
                    )?;
                    let default = config
                        .members
                        .iter()
                        .position(|m| m == default)
                        .ok_or_else(|| format!("default `{default}` is not one of the members"))?;
                    if let Some(t) = config.temperature
                        && !(t.is_finite() && t > 0.0)
                    {
                        return Err("temperature must be a positive number".to_owned());
                    }
                    (
                        reads,
                        Projection::Partition {
                            names,
                            default,
                            temperature: config.temperature,
                        },
                    )
                }
            };
        Ok(ProjectionSignal {
            key,
            reads,
            projection,
        })
    }
}

fn method_name(method: ProjectionMethod) -> &'static str {
    match method {
        ProjectionMethod::WeightedSum => "weighted_sum",
        ProjectionMethod::ThresholdBands => "threshold_bands",
        ProjectionMethod::Partition => "partition",
    }
}

impl Projection {
    /// Computes the projection from its inputs' values and keys (in
    /// [`Signal::reads`] order).
    pub fn derive(&self, inputs: &[Option<&SignalValue>], keys: &[SignalKey]) -> SignalValue {
        match self {
            Projection::Sum(terms) => {
                let mut score = 0.0;
                // The terms that count, as `0.5 keyword("hard")`.
                let mut evidence = String::new();
                for (i, (term, input)) in terms.iter().zip(inputs).enumerate() {
                    let part = term.weight * term.reading(*input);
                    if part != 0.0 {
                        score += part;
                        let sign = if evidence.is_empty() { "" } else { " + " };
                        let _ = write!(evidence, "{sign}{part:.3}");
                        if let Some(key) = keys.get(i) {
                            let _ = write!(evidence, " {key}");
                        }
                    }
                }
                SignalValue {
                    matched: score > 0.0,
                    value: score,
                    confidence: 1.0,
                    evidence: (!evidence.is_empty()).then_some(evidence),
                    ..SignalValue::absent(1.0)
                }
            }
            Projection::Bands { bands, slope } => {
                let Some(Some(source)) = inputs.first() else {
                    return SignalValue::failed("its source score was not computed".to_owned());
                };
                let score = source.value;
                match bands.iter().find(|(_, b)| b.contains(score)) {
                    Some((name, band)) => SignalValue {
                        matched: true,
                        value: score,
                        confidence: slope
                            .map_or(1.0, |k| 1.0 / (1.0 + (-k * band.depth(score)).exp())),
                        evidence: Some(format!("score {score:.3}")),
                        label: Some(name.clone()),
                        ..SignalValue::absent(1.0)
                    },
                    None => SignalValue {
                        value: score,
                        evidence: Some(format!("score {score:.3} is in no band")),
                        ..SignalValue::absent(1.0)
                    },
                }
            }
            Projection::Partition {
                names,
                default,
                temperature,
            } => {
                let confidence = |i: usize| match inputs.get(i).copied().flatten() {
                    Some(v) if v.matched => v.confidence,
                    _ => 0.0,
                };
                let holding =
                    |i: usize| inputs.get(i).copied().flatten().is_some_and(|v| v.matched);
                let best =
                    (0..names.len())
                        .filter(|&i| holding(i))
                        .fold(None::<usize>, |best, i| match best {
                            Some(b) if confidence(b) >= confidence(i) => Some(b),
                            _ => Some(i),
                        });
                let (winner, sure) = match (best, temperature) {
                    (Some(w), None) => (w, confidence(w)),
                    (Some(w), Some(t)) => {
                        let top = confidence(w);
                        let total: f64 = (0..names.len())
                            .map(|i| ((confidence(i) - top) / t).exp())
                            .sum();
                        (w, 1.0 / total)
                    }
                    (None, _) => {
                        let surest = (0..names.len())
                            .filter_map(|i| inputs.get(i).copied().flatten())
                            .map(|v| v.confidence)
                            .fold(0.0, f64::max);
                        (*default, 1.0 - surest.min(1.0))
                    }
                };
                SignalValue {
                    matched: true,
                    value: sure,
                    confidence: sure,
                    evidence: Some(if best.is_some() {
                        format!("{} holds most surely", names[winner])
                    } else {
                        "no member holds: the default".to_owned()
                    }),
                    label: Some(names[winner].clone()),
                    ..SignalValue::absent(1.0)
                }
            }
        }
    }

    /// The labels it can report (bands or member names), if any.
    pub fn outcomes(&self) -> Option<Vec<String>> {
        match self {
            Projection::Sum(_) => None,
            Projection::Bands { bands, .. } => Some(bands.iter().map(|(n, _)| n.clone()).collect()),
            Projection::Partition { names, .. } => Some(names.clone()),
        }
    }
}

impl Signal for ProjectionSignal {
    fn key(&self) -> &SignalKey {
        &self.key
    }

    /// A projection reads no request: the engine computes it with [`Signal::derive`].
    fn evaluate(&self, _: &Request<'_>) -> SignalValue {
        SignalValue::failed("a projection is computed from the signals it reads".to_owned())
    }

    fn reads(&self) -> &[SignalKey] {
        &self.reads
    }

    fn derive(&self, _: &Request<'_>, inputs: &[Option<&SignalValue>]) -> SignalValue {
        self.projection.derive(inputs, &self.reads)
    }

    fn outcomes(&self) -> Option<Vec<String>> {
        self.projection.outcomes()
    }

    fn projection(&self) -> Option<&Projection> {
        Some(&self.projection)
    }
}

impl FamilyConfig for ProjectionSignalConfig {
    type Signal = ProjectionSignal;

    fn name(&self) -> &str {
        &self.name
    }

    fn build(&self, _: &BuildContext<'_>) -> Result<ProjectionSignal, String> {
        ProjectionSignal::new(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyword::KeywordSignalConfig;
    use crate::signals::{SignalEngine, SignalsConfig};
    use switchyard_wire::Conversation;

    fn config(projections: &str) -> SignalsConfig {
        let mut c: SignalsConfig = serde_json::from_str(projections).unwrap();
        c.keyword = vec![
            KeywordSignalConfig::new("simple", &["briefly", "quick"]),
            KeywordSignalConfig::new("hard", &["prove", "derive", "architecture"]),
            KeywordSignalConfig::new("math", &["integral", "prove"]),
            KeywordSignalConfig::new("law", &["contract"]),
        ];
        c
    }

    const BANDS: &str = r#"{"projection": [
        {"name": "difficulty", "method": "weighted_sum", "inputs": [
            {"signal": "keyword.simple", "weight": -0.3},
            {"signal": "keyword.hard", "weight": 0.5, "read": "confidence"},
            {"signal": "keyword.math", "weight": 0.25, "match": 1, "miss": -0.1}]},
        {"name": "level", "method": "threshold_bands", "source": "difficulty", "bands": [
            {"name": "easy", "lt": 0.2},
            {"name": "medium", "gte": 0.2, "lt": 0.6},
            {"name": "hard", "gte": 0.6}]},
        {"name": "topic", "method": "partition",
         "members": ["keyword.math", "keyword.law", "keyword.simple"],
         "default": "keyword.simple"}]}"#;

    fn run(engine: &SignalEngine, name: &str, prompt: &str) -> SignalValue {
        let id = engine.lookup(SignalFamily::Projection, name).unwrap();
        let conv = Conversation::from_prompt("auto", prompt);
        let signals = engine.characterize(&conv, &[id]);
        signals.get(id).unwrap().clone()
    }

    #[test]
    fn sums_band_and_partition_from_inputs_computed_on_demand() {
        let engine = SignalEngine::build(&config(BANDS)).unwrap();
        // Only the bands are asked for: the score and its inputs are computed too.
        let v = run(&engine, "level", "derive the integral");
        assert_eq!(v.label.as_deref(), Some("hard"), "{v:?}");
        assert!((v.value - 0.75).abs() < 1e-9, "0.5·1 + 0.25 = {}", v.value);
        let v = run(&engine, "level", "briefly, what is a contract");
        // -0.3 (simple) + 0.25 · -0.1 (math misses)
        assert!((v.value + 0.325).abs() < 1e-9, "{v:?}");
        assert_eq!(v.label.as_deref(), Some("easy"));
        let v = run(&engine, "level", "an integral please");
        assert_eq!(v.label.as_deref(), Some("medium"), "{v:?}");
        assert_eq!(v.confidence, 1.0);
        let score = run(&engine, "difficulty", "hello");
        assert!(
            (score.value + 0.025).abs() < 1e-9 && !score.matched,
            "{score:?}"
        );

        let v = run(&engine, "topic", "a contract");
        assert_eq!(v.label.as_deref(), Some("law"));
        let v = run(&engine, "topic", "nothing here");
        assert_eq!(v.label.as_deref(), Some("simple"), "the default: {v:?}");
        assert_eq!(
            engine.outcomes(engine.lookup(SignalFamily::Projection, "level").unwrap()),
            Some(vec!["easy".into(), "medium".into(), "hard".into()])
        );
    }

    #[test]
    fn calibration_is_a_sigmoid_of_the_distance_to_the_nearest_edge() {
        let bands = Projection::Bands {
            bands: vec![(
                "low".into(),
                Band::from_config(&BandConfig {
                    name: "low".into(),
                    gt: None,
                    gte: Some(0.0),
                    lt: Some(1.0),
                    lte: None,
                })
                .unwrap(),
            )],
            slope: Some(4.0),
        };
        let at = |score: f64| {
            let source = SignalValue {
                value: score,
                ..SignalValue::absent(1.0)
            };
            bands.derive(&[Some(&source)], &[])
        };
        assert!((at(0.0).confidence - 0.5).abs() < 1e-12);
        assert!((at(0.5).confidence - 1.0 / (1.0 + (-2.0f64).exp())).abs() < 1e-12);
        assert!(at(0.9).confidence < at(0.5).confidence);
        assert!(!at(1.0).matched && at(1.0).label.is_none());
    }

    #[test]
    fn bad_definitions_are_refused_with_the_reason() {
        let refused = |text: &str| SignalEngine::build(&config(text)).unwrap_err().to_string();
        let e = refused(
            r#"{"projection": [{"name": "s", "method": "weighted_sum", "inputs": [{"signal": "keyword.simpel", "weight": 1}]}]}"#,
        );
        assert!(e.contains("keyword.simple"), "{e}");
        let e = refused(
            r#"{"projection": [{"name": "s", "method": "weighted_sum", "inputs": [{"signal": "keywrd.simple", "weight": 1}]}]}"#,
        );
        assert!(e.contains("did you mean `keyword`"), "{e}");
        let e = refused(
            r#"{"projection": [{"name": "a", "method": "weighted_sum", "inputs": [{"signal": "projection.b", "weight": 1}]}, {"name": "b", "method": "weighted_sum", "inputs": [{"signal": "projection.a", "weight": 1}]}]}"#,
        );
        assert!(e.contains("cycle"), "{e}");
        let e = refused(
            r#"{"projection": [{"name": "b", "method": "threshold_bands", "source": "x", "bands": [{"name": "lo", "gte": 1, "lt": 1}]}]}"#,
        );
        assert!(e.contains("holds for no score"), "{e}");
        let e = refused(
            r#"{"projection": [{"name": "b", "method": "threshold_bands", "source": "x", "bands": [{"name": "lo"}]}]}"#,
        );
        assert!(e.contains("no bound"), "{e}");
        let e = refused(
            r#"{"projection": [{"name": "p", "method": "partition", "members": ["keyword.math", "keyword.law"], "default": "keyword.hard"}]}"#,
        );
        assert!(e.contains("not one of the members"), "{e}");
        let e = refused(
            r#"{"projection": [{"name": "s", "method": "weighted_sum", "bands": [{"name": "x", "lt": 1}], "inputs": [{"signal": "keyword.law", "weight": 1}]}]}"#,
        );
        assert!(e.contains("`bands` does not apply"), "{e}");
        let e = refused(
            r#"{"projection": [{"name": "s", "method": "weighted_sum", "inputs": [{"signal": "keyword.law", "weight": 1, "read": "confidence", "miss": 1}]}]}"#,
        );
        assert!(e.contains("only to `read: match`"), "{e}");
    }
}
