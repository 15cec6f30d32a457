//! Domain signals: which subject the request is about, from a linear head over its
//! embedding ([`crate::head::LinearHead`]).
//!
//! The head runs once per request, whatever the number of domain signals. A signal
//! names one or more of the head's categories; it holds when the most probable
//! category is among them and their summed probability reaches its threshold. So
//! single-category signals are mutually exclusive: one domain per request.
//!
//! The default head (`assets/domain-head.json`, 14 MMLU categories over
//! all-MiniLM-L6-v2) is built by `switchyard train domain`; its provenance is
//! `assets/domain-head.md`.

use crate::head::{LinearHead, Prediction};
use crate::signals::{
    BuildContext, FamilyConfig, Request, Signal, SignalFamily, SignalKey, SignalValue,
};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The shipped head's JSON.
pub const DEFAULT_HEAD: &str = include_str!("../assets/domain-head.json");

/// Reads a head from `path`, or the shipped one, and checks its shapes.
pub fn read_head(path: Option<&Path>) -> Result<LinearHead, String> {
    let (json, origin) = match path {
        Some(p) => (
            std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?,
            p.display().to_string(),
        ),
        None => (
            DEFAULT_HEAD.to_owned(),
            "the built-in domain head".to_owned(),
        ),
    };
    let head: LinearHead =
        serde_json::from_str(&json).map_err(|e| format!("{origin}: not a domain head: {e}"))?;
    head.validate().map_err(|e| format!("{origin}: {e}"))?;
    Ok(head)
}

/// [`read_head`], checked to read `model`'s vectors.
pub fn load_head(path: Option<&Path>, model: &str, dimension: usize) -> Result<LinearHead, String> {
    let head = read_head(path)?;
    if head.dimension != dimension || head.model != model {
        let origin = path.map_or_else(
            || "the built-in domain head".to_owned(),
            |p| p.display().to_string(),
        );
        return Err(format!(
            "{origin} reads {}-dimensional vectors of `{}`, but the model is `{model}` ({dimension}); train a head for it with `switchyard train domain`",
            head.dimension, head.model
        ));
    }
    Ok(head)
}

/// One domain signal.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DomainSignalConfig {
    /// The signal's name, as routes refer to it.
    pub name: String,
    /// The head's categories it stands for (default: its name).
    #[serde(default)]
    pub categories: Vec<String>,
    /// Least summed probability of those categories (default 0: the top category
    /// decides alone).
    #[serde(default)]
    pub threshold: f64,
}

/// Matches when the request's most probable domain is one of its categories.
#[derive(Debug)]
pub struct DomainSignal {
    key: SignalKey,
    categories: Vec<usize>,
    threshold: f64,
}

impl DomainSignal {
    /// Builds the signal against a head's categories.
    pub fn new(config: &DomainSignalConfig, head: &LinearHead) -> Result<Self, String> {
        let names = if config.categories.is_empty() {
            std::slice::from_ref(&config.name)
        } else {
            config.categories.as_slice()
        };
        let mut categories = Vec::with_capacity(names.len());
        for name in names {
            let index = head.label_index(name).ok_or_else(|| {
                let labels: Vec<&str> = head.labels.iter().map(String::as_str).collect();
                let hint = switchyard_wire::typos::suggest(name, labels.iter().copied())
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                format!(
                    "`{name}` is not a category of the domain head{hint}; it has {}",
                    labels.join(", ")
                )
            })?;
            categories.push(index);
        }
        if !(0.0..=1.0).contains(&config.threshold) {
            return Err(format!(
                "threshold {} is not a probability in [0, 1]",
                config.threshold
            ));
        }
        Ok(DomainSignal {
            key: SignalKey {
                family: SignalFamily::Domain,
                name: config.name.clone(),
            },
            categories,
            threshold: config.threshold,
        })
    }

    /// The signal's verdict on a prediction.
    pub fn judge(&self, prediction: &Prediction, labels: &[String]) -> SignalValue {
        let mass: f64 = self
            .categories
            .iter()
            .map(|c| f64::from(prediction.probabilities[*c]))
            .sum();
        let top = &labels[prediction.label];
        SignalValue {
            matched: self.categories.contains(&prediction.label) && mass >= self.threshold,
            value: mass,
            confidence: mass.clamp(0.0, 1.0),
            evidence: Some(format!("{top} ({:.2})", prediction.probability)),
            label: Some(top.clone()),
            cost_ns: 0,
            error: None,
        }
    }
}

impl Signal for DomainSignal {
    fn key(&self) -> &SignalKey {
        &self.key
    }

    fn uses_model(&self) -> bool {
        true
    }

    fn evaluate(&self, request: &Request<'_>) -> SignalValue {
        match request.domain() {
            Ok((prediction, labels)) => self.judge(prediction, labels),
            Err(e) => SignalValue::failed(format!("no domain: {e}")),
        }
    }
}

impl FamilyConfig for DomainSignalConfig {
    type Signal = DomainSignal;

    fn name(&self) -> &str {
        &self.name
    }

    fn needs_model(&self) -> bool {
        true
    }

    fn build(&self, context: &BuildContext<'_>) -> Result<DomainSignal, String> {
        let head = context.domain_head()?;
        DomainSignal::new(self, &head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> LinearHead {
        let shipped: LinearHead = serde_json::from_str(DEFAULT_HEAD).unwrap();
        shipped.validate().unwrap();
        shipped
    }

    fn prediction(head: &LinearHead, label: &str, p: f32) -> Prediction {
        let k = head.labels.len();
        let index = head.label_index(label).unwrap();
        let rest = (1.0 - p) / (k - 1) as f32;
        let mut probabilities = vec![rest; k];
        probabilities[index] = p;
        Prediction {
            label: index,
            probability: p,
            probabilities,
        }
    }

    #[test]
    fn the_shipped_head_has_the_fourteen_categories() {
        let head = head();
        assert_eq!(head.labels.len(), 14);
        for c in ["math", "law", "computer_science", "health", "other"] {
            assert!(head.label_index(c).is_some(), "{c}");
        }
        assert_eq!(head.model, "all-MiniLM-L6-v2");
        assert!(load_head(None, "all-MiniLM-L6-v2", 384).is_ok());
        let err = load_head(None, "bge-small", 384).unwrap_err();
        assert!(err.contains("train a head"), "{err}");
    }

    #[test]
    fn one_category_or_several_and_a_threshold() {
        let head = head();
        let math = DomainSignal::new(
            &DomainSignalConfig {
                name: "math".into(),
                categories: vec![],
                threshold: 0.0,
            },
            &head,
        )
        .unwrap();
        let stem = DomainSignal::new(
            &DomainSignalConfig {
                name: "stem".into(),
                categories: vec!["math".into(), "physics".into(), "computer_science".into()],
                threshold: 0.6,
            },
            &head,
        )
        .unwrap();
        let sure = prediction(&head, "math", 0.9);
        assert!(math.judge(&sure, &head.labels).matched);
        assert!(stem.judge(&sure, &head.labels).matched);
        let unsure = prediction(&head, "physics", 0.3);
        assert!(!math.judge(&unsure, &head.labels).matched);
        let v = stem.judge(&unsure, &head.labels);
        assert!(!v.matched && v.value < 0.6, "{v:?}");
        let law = prediction(&head, "law", 0.5);
        assert!(!stem.judge(&law, &head.labels).matched);
        assert!(
            math.judge(&law, &head.labels)
                .evidence
                .unwrap()
                .contains("law")
        );
    }

    #[test]
    fn unknown_categories_get_a_suggestion() {
        let err = DomainSignal::new(
            &DomainSignalConfig {
                name: "maths".into(),
                categories: vec![],
                threshold: 0.0,
            },
            &head(),
        )
        .unwrap_err();
        assert!(err.contains("did you mean `math`"), "{err}");
        let bad = DomainSignal::new(
            &DomainSignalConfig {
                name: "math".into(),
                categories: vec![],
                threshold: 2.0,
            },
            &head(),
        );
        assert!(bad.unwrap_err().contains("probability"));
    }
}
