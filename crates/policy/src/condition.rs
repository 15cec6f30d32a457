//! Route conditions: boolean trees over signal atoms, as written in YAML.
//!
//! A condition is a map with exactly one key: `all` or `any` (a list of
//! conditions), `not` (one condition), or a signal family (`keyword`, `context`, …)
//! whose value names a signal of that family.

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
    /// A named signal of a family holds.
    Signal {
        /// The family.
        family: SignalFamily,
        /// The signal's name, with where it was written.
        name: Spanned<String>,
    },
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
                        Some(family) => Condition::Signal {
                            family,
                            name: map.next_value()?,
                        },
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
            Condition::Signal { family, name } => {
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
            Condition::Signal { family, name } => {
                write!(f, "{}(\"{}\")", family.name(), name.value)
            }
        }
    }
}
