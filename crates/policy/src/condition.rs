//! Route conditions: boolean trees over signal atoms, as written in YAML.
//!
//! A condition is a map with exactly one key: `all` or `any` (a list of
//! conditions), `not` (one condition), or a signal family (`keyword`, `context`, …)
//! whose value names a signal of that family (`{keyword: code}`: the signal holds),
//! or is a map with the name and one numeric test on the signal's value or confidence
//! (`{complexity: {name: difficulty, value: ">= 0.7"}}`).

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;
use switchyard_workload::SignalFamily;

/// A condition tree.
#[derive(Debug, Clone)]
pub enum Condition {
    /// Every sub-condition holds (true when empty).
    All(Vec<Condition>),
    /// At least one sub-condition holds (false when empty).
    Any(Vec<Condition>),
    /// The sub-condition does not hold.
    Not(Box<Condition>),
    /// A named signal of a family holds (or, with a test, its value passes it).
    Signal {
        /// The family.
        family: SignalFamily,
        /// The signal's name, with where it was written.
        name: Spanned<String>,
        /// A numeric test on the signal's value or confidence instead of its own
        /// match rule.
        test: Option<Test>,
        /// A categorical outcome the signal must report instead (`law` for a domain
        /// signal's top category, `deu` for a language).
        label: Option<String>,
    },
}

/// What a numeric test reads of a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Measure {
    /// Its value (hits, tokens, similarity, difficulty…).
    Value,
    /// How sure its extractor is, in [0, 1].
    Confidence,
}

impl Measure {
    /// The configuration name.
    pub fn name(self) -> &'static str {
        match self {
            Measure::Value => "value",
            Measure::Confidence => "confidence",
        }
    }
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cmp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Cmp {
    /// Every comparison with its symbol, longest symbols first (for parsing).
    pub const ALL: [(Cmp, &'static str); 4] = [
        (Cmp::Le, "<="),
        (Cmp::Ge, ">="),
        (Cmp::Lt, "<"),
        (Cmp::Gt, ">"),
    ];

    /// The symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        }
    }
}

/// A numeric test on one measure of a signal: `value >= 0.7`.
#[derive(Debug, Clone, Copy)]
pub struct Test {
    /// What is compared.
    pub measure: Measure,
    /// How.
    pub cmp: Cmp,
    /// With what (finite).
    pub bound: f64,
}

impl Test {
    /// Whether `x` passes.
    pub fn passes(&self, x: f64) -> bool {
        match self.cmp {
            Cmp::Lt => x < self.bound,
            Cmp::Le => x <= self.bound,
            Cmp::Gt => x > self.bound,
            Cmp::Ge => x >= self.bound,
        }
    }

    /// Parses `">= 0.7"` (the comparison, then a finite number).
    pub fn parse(measure: Measure, text: &str) -> Result<Test, String> {
        let text = text.trim();
        let Some((cmp, rest)) = Cmp::ALL
            .iter()
            .find_map(|(cmp, symbol)| text.strip_prefix(symbol).map(|rest| (*cmp, rest)))
        else {
            return Err(format!(
                "`{text}` is not a test: write a comparison (<, <=, >, >=) and a number, e.g. \">= 0.7\""
            ));
        };
        let bound: f64 = rest
            .trim()
            .parse()
            .map_err(|_| format!("`{}` in `{text}` is not a number", rest.trim()))?;
        if !bound.is_finite() {
            return Err(format!("`{text}`: the bound must be a finite number"));
        }
        Ok(Test {
            measure,
            cmp,
            bound,
        })
    }

    fn key(&self) -> (Measure, Cmp, u64) {
        (self.measure, self.cmp, self.bound.to_bits())
    }
}

impl PartialEq for Test {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Test {}
impl std::hash::Hash for Test {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}
impl PartialOrd for Test {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Test {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.measure, self.cmp)
            .cmp(&(other.measure, other.cmp))
            .then(self.bound.total_cmp(&other.bound))
    }
}

impl fmt::Display for Test {
    /// As written after an atom: ` >= 0.7` or `.confidence >= 0.9`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.measure == Measure::Confidence {
            f.write_str(".confidence")?;
        }
        write!(f, " {} {}", self.cmp.symbol(), self.bound)
    }
}

/// What a family key maps to: a signal name, or a name with a test or a label.
struct AtomSpec {
    name: String,
    test: Option<Test>,
    label: Option<String>,
}

impl<'de> Deserialize<'de> for AtomSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpecVisitor;
        impl<'de> Visitor<'de> for SpecVisitor {
            type Value = AtomSpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a signal name, or a map with `name` and one test (`value` or `confidence`)",
                )
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<AtomSpec, E> {
                Ok(AtomSpec {
                    name: v.to_owned(),
                    test: None,
                    label: None,
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AtomSpec, A::Error> {
                let mut name = None;
                let mut test: Option<Test> = None;
                let mut label: Option<String> = None;
                while let Some(key) = map.next_key::<String>()? {
                    let measure = match key.as_str() {
                        "name" => {
                            name = Some(map.next_value::<String>()?);
                            continue;
                        }
                        "label" => {
                            label = Some(map.next_value::<String>()?);
                            continue;
                        }
                        "value" => Measure::Value,
                        "confidence" => Measure::Confidence,
                        other => {
                            let hint = crate::diagnostics::suggest(
                                other,
                                ["name", "value", "confidence", "label"],
                            )
                            .map(|s| format!("did you mean `{s}`? "))
                            .unwrap_or_default();
                            return Err(de::Error::custom(format!(
                                "unknown key `{other}` in a signal test: {hint}expected name, value, confidence or label"
                            )));
                        }
                    };
                    if test.is_some() {
                        return Err(de::Error::custom(
                            "a signal test has one comparison: write two atoms under `all` for a range",
                        ));
                    }
                    let text = map.next_value::<String>()?;
                    test = Some(Test::parse(measure, &text).map_err(de::Error::custom)?);
                }
                let name = name.ok_or_else(|| de::Error::custom("a signal test needs `name`"))?;
                if test.is_some() && label.is_some() {
                    return Err(de::Error::custom(format!(
                        "the atom of `{name}` has both a label and a test: write two atoms under `all`"
                    )));
                }
                if test.is_none() && label.is_none() {
                    return Err(de::Error::custom(format!(
                        "the test of `{name}` names no comparison: add `value: \">= 0.5\"`, \
                         `confidence: ...` or `label: ...`, or write the name alone"
                    )));
                }
                Ok(AtomSpec { name, test, label })
            }
        }
        deserializer.deserialize_any(SpecVisitor)
    }
}

const OPERATORS: [&str; 3] = ["all", "any", "not"];

fn valid_keys() -> Vec<&'static str> {
    OPERATORS
        .into_iter()
        .chain(SignalFamily::ALL.iter().map(|f| f.name()))
        .collect()
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ConditionVisitor;
        impl<'de> Visitor<'de> for ConditionVisitor {
            type Value = Condition;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "a condition: a map with one key among {}",
                    valid_keys().join(", ")
                )
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Condition, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(de::Error::custom(format!(
                        "empty condition: write one of {}",
                        valid_keys().join(", ")
                    )));
                };
                let condition = match key.as_str() {
                    "all" => Condition::All(map.next_value()?),
                    "any" => Condition::Any(map.next_value()?),
                    "not" => Condition::Not(Box::new(map.next_value()?)),
                    other => match SignalFamily::from_name(other) {
                        Some(family) => {
                            let spec: Spanned<AtomSpec> = map.next_value()?;
                            Condition::Signal {
                                family,
                                name: Spanned::new(spec.value.name, spec.referenced, spec.defined),
                                test: spec.value.test,
                                label: spec.value.label,
                            }
                        }
                        None => {
                            let keys = valid_keys();
                            let hint = crate::diagnostics::suggest(other, keys.iter().copied())
                                .map(|s| format!("did you mean `{s}`? "))
                                .unwrap_or_default();
                            return Err(de::Error::custom(format!(
                                "unknown condition `{other}`: {hint}expected one of {}",
                                keys.join(", ")
                            )));
                        }
                    },
                };
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format!(
                        "a condition has exactly one key, but `{key}` is followed by `{extra}`: \
                         wrap several conditions in `all: [...]` or `any: [...]`"
                    )));
                }
                Ok(condition)
            }
        }
        deserializer.deserialize_map(ConditionVisitor)
    }
}

impl Condition {
    /// Visits every signal atom of the tree with the path to it.
    pub fn for_each_atom<'a>(
        &'a self,
        path: &str,
        visit: &mut dyn FnMut(&str, SignalFamily, &'a Spanned<String>),
    ) {
        match self {
            Condition::All(items) | Condition::Any(items) => {
                let op = if matches!(self, Condition::All(_)) {
                    "all"
                } else {
                    "any"
                };
                for (i, c) in items.iter().enumerate() {
                    c.for_each_atom(&format!("{path}.{op}[{i}]"), visit);
                }
            }
            Condition::Not(inner) => inner.for_each_atom(&format!("{path}.not"), visit),
            Condition::Signal { family, name, .. } => {
                visit(&format!("{path}.{}", family.name()), *family, name);
            }
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, items: &[Condition], op: &str| {
            if items.is_empty() {
                return f.write_str(if op == " AND " { "TRUE" } else { "FALSE" });
            }
            f.write_str("(")?;
            for (i, c) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(op)?;
                }
                write!(f, "{c}")?;
            }
            f.write_str(")")
        };
        match self {
            Condition::All(items) => list(f, items, " AND "),
            Condition::Any(items) => list(f, items, " OR "),
            Condition::Not(inner) => write!(f, "NOT {inner}"),
            Condition::Signal {
                family,
                name,
                test,
                label,
            } => {
                write!(f, "{}(\"{}\"", family.name(), name.value)?;
                if let Some(label) = label {
                    write!(f, ", \"{label}\"")?;
                }
                f.write_str(")")?;
                match test {
                    Some(test) => write!(f, "{test}"),
                    None => Ok(()),
                }
            }
        }
    }
}
