//! Metadata signals: values of named request headers and of the request's `metadata`
//! object.
//!
//! A signal reads one key, `header:NAME` (case-insensitive name) or `metadata:KEY`,
//! and holds when the value is present and, if given, equals one of `values` or
//! matches `pattern`. Only the headers some signal names are copied into the
//! request's view ([`crate::SignalEngine::header_names`]). Headers are whatever the
//! client sent: route on them for convenience, not for trust (caller identity needs
//! a verified token).

use crate::signals::{
    BuildContext, FamilyConfig, Request, Signal, SignalFamily, SignalKey, SignalValue,
};
use regex::Regex;
use serde::{Deserialize, Serialize};

/// A metadata signal.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataSignalConfig {
    /// The signal's name, as routes refer to it.
    pub name: String,
    /// `header:NAME` or `metadata:KEY`.
    pub key: String,
    /// Values that match (exact); without `values` or `pattern`, presence matches.
    #[serde(default)]
    pub values: Vec<String>,
    /// A regular expression the value must match.
    #[serde(default)]
    pub pattern: Option<String>,
}

/// Matches on a header's or a metadata entry's value.
#[derive(Debug)]
pub struct MetadataSignal {
    key: SignalKey,
    attribute: String,
    values: Vec<String>,
    pattern: Option<Regex>,
}

/// The attribute a key names: `header:name` (lower-cased) or `metadata:KEY`.
fn attribute(key: &str) -> Option<String> {
    match key.split_once(':') {
        Some(("header", name)) if !name.trim().is_empty() => {
            Some(format!("header:{}", name.trim().to_ascii_lowercase()))
        }
        Some(("metadata", key)) if !key.is_empty() => Some(format!("metadata:{key}")),
        _ => None,
    }
}

impl MetadataSignal {
    /// Builds the signal, checking the key's form and the pattern.
    pub fn new(config: &MetadataSignalConfig) -> Result<Self, String> {
        let attribute = attribute(&config.key).ok_or_else(|| {
            format!(
                "key `{}` is not `header:NAME` or `metadata:KEY`",
                config.key
            )
        })?;
        let pattern = config
            .pattern
            .as_deref()
            .map(Regex::new)
            .transpose()
            .map_err(|e| format!("pattern does not compile: {e}"))?;
        Ok(MetadataSignal {
            key: SignalKey {
                family: SignalFamily::Metadata,
                name: config.name.clone(),
            },
            attribute,
            values: config.values.clone(),
            pattern,
        })
    }
}

impl Signal for MetadataSignal {
    fn key(&self) -> &SignalKey {
        &self.key
    }

    fn header(&self) -> Option<&str> {
        self.attribute.strip_prefix("header:")
    }

    fn evaluate(&self, request: &Request<'_>) -> SignalValue {
        let value = request.conversation.attribute(&self.attribute);
        let matched = value.is_some_and(|v| {
            let listed = self.values.is_empty() || self.values.iter().any(|x| x == v);
            let patterned = self.pattern.as_ref().is_none_or(|p| p.is_match(v));
            listed && patterned
        });
        SignalValue {
            matched,
            value: f64::from(u8::from(matched)),
            confidence: 1.0,
            evidence: value.map(|v| format!("{} = {}", self.attribute, truncate(v, 64))),
            label: value.map(str::to_owned),
            cost_ns: 0,
            error: None,
        }
    }
}

fn truncate(v: &str, max: usize) -> &str {
    let mut end = v.len().min(max);
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    &v[..end]
}

impl FamilyConfig for MetadataSignalConfig {
    type Signal = MetadataSignal;

    fn name(&self) -> &str {
        &self.name
    }

    fn build(&self, _: &BuildContext<'_>) -> Result<MetadataSignal, String> {
        MetadataSignal::new(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_wire::{ChatRequest, Conversation};

    fn config(key: &str, values: &[&str], pattern: Option<&str>) -> MetadataSignalConfig {
        MetadataSignalConfig {
            name: "m".into(),
            key: key.into(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
            pattern: pattern.map(str::to_owned),
        }
    }

    #[test]
    fn reads_metadata_and_attached_headers() {
        let request: ChatRequest = serde_json::from_str(
            r#"{"model": "auto", "messages": [{"role": "user", "content": "hi"}],
                "metadata": {"tier": "gold", "retries": 3}}"#,
        )
        .unwrap();
        let mut c = Conversation::from_chat(&request, None);
        c.attach_header("X-Tenant", "acme-eu");
        let eval = |cfg: &MetadataSignalConfig| {
            MetadataSignal::new(cfg)
                .unwrap()
                .evaluate(&Request::new(&c, None))
        };
        assert!(eval(&config("metadata:tier", &["gold", "platinum"], None)).matched);
        assert!(!eval(&config("metadata:tier", &["silver"], None)).matched);
        assert!(
            eval(&config("metadata:retries", &["3"], None)).matched,
            "non-strings compare as JSON text"
        );
        assert!(eval(&config("header:x-tenant", &[], Some(r"^acme-"))).matched);
        let v = eval(&config("header:X-TENANT", &[], None));
        assert!(
            v.matched && v.evidence.as_deref() == Some("header:x-tenant = acme-eu"),
            "{v:?}"
        );
        assert!(!eval(&config("header:x-missing", &[], None)).matched);
    }

    #[test]
    fn bad_keys_and_patterns_are_refused() {
        assert!(
            MetadataSignal::new(&config("tier", &[], None))
                .unwrap_err()
                .contains("header:NAME")
        );
        assert!(MetadataSignal::new(&config("header:", &[], None)).is_err());
        assert!(
            MetadataSignal::new(&config("metadata:tier", &[], Some("(")))
                .unwrap_err()
                .contains("pattern")
        );
        let header = |key| MetadataSignal::new(&config(key, &[], None)).unwrap();
        assert_eq!(header("header: X-A ").header(), Some("x-a"));
        assert_eq!(header("metadata:x-a").header(), None);
    }
}
