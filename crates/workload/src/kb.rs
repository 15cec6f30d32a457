//! Knowledge-base signals: labels, each with exemplar sentences (from a local file in
//! vLLM Semantic Router's `labels.json` shape, or inline), compared with the request's
//! embedding. The best label is the signal's label; a signal targets one label or a
//! group of labels, and holds when its target is the best match (`match: best`) or
//! close enough (`match: threshold`).

use crate::contrast::Exemplars;
use crate::signals::{
    BuildContext, FamilyConfig, Request, Signal, SignalFamily, SignalKey, SignalValue,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What a knowledge-base signal holds for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KbTargetKind {
    /// One label.
    Label,
    /// Any label of a group.
    Group,
}

/// The label or group a signal targets.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KbTarget {
    /// A label or a group.
    pub kind: KbTargetKind,
    /// Its name.
    pub value: String,
}

/// When the target counts as matched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KbMatch {
    /// The target is the request's best label (or the group of it), at or above its
    /// threshold (default).
    #[default]
    Best,
    /// The target's similarity is at or above its threshold, whichever is best.
    Threshold,
}

/// A knowledge-base signal.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KbSignalConfig {
    /// The signal's name, as routes refer to it.
    pub name: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A JSON file of labels: `{"labels": {"name": {"exemplars": ["…"]}}}` (the shape
    /// of vLLM Semantic Router's `labels.json`), read at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<PathBuf>,
    /// Labels and their exemplar sentences, inline (with or instead of `source`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, Vec<String>>,
    /// Groups of labels, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, Vec<String>>,
    /// The label or group it holds for.
    pub target: KbTarget,
    /// `best` (default) or `threshold`.
    #[serde(default, rename = "match")]
    pub matching: KbMatch,
    /// Least similarity for a label to count (default 0.5).
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Per-label thresholds that replace `threshold`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub label_thresholds: BTreeMap<String, f64>,
}

fn default_threshold() -> f64 {
    0.5
}

/// Their manifest: labels with exemplars.
#[derive(Debug, Deserialize)]
struct Manifest {
    labels: BTreeMap<String, ManifestLabel>,
}

#[derive(Debug, Deserialize)]
struct ManifestLabel {
    exemplars: Vec<String>,
}

/// A built knowledge-base signal.
#[derive(Debug)]
pub struct KbSignal {
    key: SignalKey,
    /// Labels in name order, with their exemplars and thresholds.
    labels: Vec<(String, Exemplars, f64)>,
    /// The labels (indexes) the signal holds for.
    target: Vec<usize>,
    matching: KbMatch,
    target_name: String,
}

/// Reads the labels of a config: its file, then its inline ones (which may add to
/// or replace the file's).
fn labels_of(config: &KbSignalConfig) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut labels: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(path) = &config.source {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("source {}: {e}", path.display()))?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
            format!(
                "source {}: {e} (expected {{\"labels\": {{\"name\": {{\"exemplars\": [...]}}}}}})",
                path.display()
            )
        })?;
        for (name, label) in manifest.labels {
            labels.insert(name, label.exemplars);
        }
    }
    for (name, exemplars) in &config.labels {
        labels.insert(name.clone(), exemplars.clone());
    }
    if labels.is_empty() {
        return Err("no labels: give `source` (a labels file) or `labels`".to_owned());
    }
    Ok(labels)
}

impl KbSignal {
    /// Builds the signal, embedding every label's exemplars (through the cache).
    pub(crate) fn new(
        config: &KbSignalConfig,
        context: &BuildContext<'_>,
    ) -> Result<KbSignal, String> {
        let (embedder, cache) = context.require_model()?;
        let labels = labels_of(config)?;
        let check = |x: f64, what: &str| {
            if (-1.0..=1.0).contains(&x) {
                Ok(())
            } else {
                Err(format!("{what} {x} is not a cosine in [-1, 1]"))
            }
        };
        check(config.threshold, "threshold")?;
        for (label, t) in &config.label_thresholds {
            if !labels.contains_key(label) {
                return Err(format!(
                    "label_thresholds names `{label}`, which is not a label"
                ));
            }
            check(*t, &format!("label_thresholds.{label}"))?;
        }
        for (group, members) in &config.groups {
            if let Some(m) = members.iter().find(|m| !labels.contains_key(*m)) {
                return Err(format!("group `{group}` names `{m}`, which is not a label"));
            }
        }
        let names: Vec<&String> = labels.keys().collect();
        let target: Vec<usize> = match config.target.kind {
            KbTargetKind::Label => names
                .iter()
                .position(|n| **n == config.target.value)
                .map(|i| vec![i])
                .ok_or_else(|| format!("target label `{}` is not a label", config.target.value))?,
            KbTargetKind::Group => {
                let members = config.groups.get(&config.target.value).ok_or_else(|| {
                    format!("target group `{}` is not a group", config.target.value)
                })?;
                names
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| members.contains(n))
                    .map(|(i, _)| i)
                    .collect()
            }
        };
        let mut built = Vec::with_capacity(labels.len());
        for (name, exemplars) in &labels {
            let vectors = Exemplars::embed(exemplars, &format!("labels.{name}"), embedder, cache)?;
            let threshold = config
                .label_thresholds
                .get(name)
                .copied()
                .unwrap_or(config.threshold);
            built.push((name.clone(), vectors, threshold));
        }
        Ok(KbSignal {
            key: SignalKey {
                family: SignalFamily::Kb,
                name: config.name.clone(),
            },
            labels: built,
            target,
            matching: config.matching,
            target_name: config.target.value.clone(),
        })
    }
}

impl Signal for KbSignal {
    fn key(&self) -> &SignalKey {
        &self.key
    }

    fn uses_model(&self) -> bool {
        true
    }

    fn evaluate(&self, request: &Request<'_>) -> SignalValue {
        let query = match request.embedding() {
            Ok(v) => v,
            Err(e) => return SignalValue::failed(format!("no embedding: {e}")),
        };
        // Each label's similarity: its nearest exemplar.
        let mut best: Option<(usize, f64)> = None;
        let mut target: Option<(usize, f64)> = None;
        for (i, (_, exemplars, _)) in self.labels.iter().enumerate() {
            let similarity = f64::from(exemplars.nearest(query).0);
            if best.is_none_or(|(_, b)| similarity > b) {
                best = Some((i, similarity));
            }
            if self.target.contains(&i) && target.is_none_or(|(_, t)| similarity > t) {
                target = Some((i, similarity));
            }
        }
        let (Some((best, best_similarity)), Some((nearest, similarity))) = (best, target) else {
            return SignalValue::failed("no label to compare".to_owned());
        };
        let passes = similarity >= self.labels[nearest].2;
        let matched = passes
            && match self.matching {
                KbMatch::Best => self.target.contains(&best),
                KbMatch::Threshold => true,
            };
        let best_name = &self.labels[best].0;
        SignalValue {
            matched,
            value: similarity,
            confidence: similarity.clamp(0.0, 1.0),
            evidence: Some(format!(
                "{}: {similarity:.3}; best label {best_name} ({best_similarity:.3})",
                self.target_name
            )),
            label: (best_similarity >= self.labels[best].2).then(|| best_name.clone()),
            ..SignalValue::absent(1.0)
        }
    }

    fn outcomes(&self) -> Option<Vec<String>> {
        Some(self.labels.iter().map(|(n, _, _)| n.clone()).collect())
    }
}

impl FamilyConfig for KbSignalConfig {
    type Signal = KbSignal;

    fn name(&self) -> &str {
        &self.name
    }

    fn needs_model(&self) -> bool {
        true
    }

    fn build(&self, context: &BuildContext<'_>) -> Result<KbSignal, String> {
        KbSignal::new(self, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedding::EmbeddingModelConfig;
    use crate::signals::{SignalEngine, SignalsConfig};
    use switchyard_wire::Conversation;

    fn model_dir() -> Option<PathBuf> {
        let dir = std::env::var("SWITCHYARD_MODEL_DIR").ok();
        if dir.is_none() {
            eprintln!("skipped: SWITCHYARD_MODEL_DIR is not set");
        }
        dir.map(PathBuf::from)
    }

    fn signal(
        name: &str,
        target: (KbTargetKind, &str),
        matching: KbMatch,
        source: &Path,
    ) -> KbSignalConfig {
        KbSignalConfig {
            name: name.into(),
            description: None,
            source: Some(source.to_path_buf()),
            labels: BTreeMap::from([(
                "billing".into(),
                vec![
                    "Why was my card charged twice?".into(),
                    "I need a refund for my invoice".into(),
                ],
            )]),
            groups: BTreeMap::from([(
                "private".into(),
                vec!["proprietary_code".into(), "customer_records".into()],
            )]),
            target: KbTarget {
                kind: target.0,
                value: target.1.into(),
            },
            matching,
            threshold: 0.3,
            label_thresholds: BTreeMap::new(),
        }
    }

    use std::path::Path;

    #[test]
    fn the_best_label_is_reported_and_targets_match_by_label_or_group() {
        let Some(dir) = model_dir() else { return };
        let root = std::env::temp_dir().join(format!("sy-kb-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        // Their manifest shape: labels with descriptions and exemplars.
        let manifest = root.join("labels.json");
        std::fs::write(
            &manifest,
            r#"{"version": "1", "labels": {
                "proprietary_code": {"description": "our code", "exemplars": [
                    "Review this function from our internal monorepo",
                    "Debug the private service in our company codebase"]},
                "customer_records": {"exemplars": [
                    "Summarize this spreadsheet of customer addresses and phone numbers"]},
                "generic_coding": {"exemplars": [
                    "How do I reverse a linked list in Python?",
                    "Explain what a closure is in JavaScript"]}}}"#,
        )
        .unwrap();
        let config = SignalsConfig {
            model: Some(EmbeddingModelConfig {
                cache_dir: root.join("cache"),
                ..EmbeddingModelConfig::at(&dir)
            }),
            kb: vec![
                signal(
                    "private",
                    (KbTargetKind::Group, "private"),
                    KbMatch::Best,
                    &manifest,
                ),
                signal(
                    "generic",
                    (KbTargetKind::Label, "generic_coding"),
                    KbMatch::Best,
                    &manifest,
                ),
                signal(
                    "near_billing",
                    (KbTargetKind::Label, "billing"),
                    KbMatch::Threshold,
                    &manifest,
                ),
            ],
            projection: vec![serde_json::from_str(
                r#"{"name": "privacy", "method": "weighted_sum", "inputs": [{"signal": "kb.private", "weight": 1, "read": "value"}]}"#,
            )
            .unwrap()],
            keyword: vec![crate::keyword::KeywordSignalConfig::new("code", &["rust"])],
            ..SignalsConfig::default()
        };
        let engine = SignalEngine::build(&config).unwrap();
        let id = |n: &str| engine.lookup(SignalFamily::Kb, n).unwrap();
        // A projection runs the model through the kb signal it reads; a keyword does not.
        let privacy = engine.lookup(SignalFamily::Projection, "privacy").unwrap();
        let code = engine.lookup(SignalFamily::Keyword, "code").unwrap();
        assert!(engine.needs_embedding(&[privacy]));
        assert!(!engine.needs_embedding(&[code]));
        assert_eq!(engine.computed(&[privacy]), vec![id("private"), privacy]);
        let ask = |prompt: &str| {
            engine.characterize(
                &Conversation::from_prompt("auto", prompt),
                &[id("private"), id("generic"), id("near_billing")],
            )
        };
        let s = ask("Can you review this code from our internal monorepo for bugs?");
        let private = s.get(id("private")).unwrap();
        assert!(private.matched, "{private:?}");
        assert_eq!(private.label.as_deref(), Some("proprietary_code"));
        assert!(!s.matched(id("generic")));
        let s = ask("How do I reverse a string in Python?");
        assert!(s.matched(id("generic")), "{:?}", s.get(id("generic")));
        assert!(!s.matched(id("private")), "{:?}", s.get(id("private")));
        // `threshold` holds when close enough, whichever label is best.
        let s = ask("My card was charged twice for one invoice, can I get a refund?");
        assert!(
            s.matched(id("near_billing")),
            "{:?}",
            s.get(id("near_billing"))
        );
        assert_eq!(
            engine.outcomes(id("generic")).unwrap(),
            vec![
                "billing",
                "customer_records",
                "generic_coding",
                "proprietary_code"
            ]
        );
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn bad_definitions_name_the_problem() {
        let Some(dir) = model_dir() else { return };
        let root = std::env::temp_dir().join(format!("sy-kb-bad-{}", std::process::id()));
        let build = |kb: KbSignalConfig| {
            SignalEngine::build(&SignalsConfig {
                model: Some(EmbeddingModelConfig {
                    cache_dir: root.join("cache"),
                    ..EmbeddingModelConfig::at(&dir)
                }),
                kb: vec![kb],
                ..SignalsConfig::default()
            })
            .unwrap_err()
            .to_string()
        };
        let missing = root.join("nope.json");
        let e = build(signal(
            "a",
            (KbTargetKind::Label, "billing"),
            KbMatch::Best,
            &missing,
        ));
        assert!(e.contains("nope.json"), "{e}");
        let mut no_file = signal(
            "a",
            (KbTargetKind::Label, "shipping"),
            KbMatch::Best,
            &missing,
        );
        no_file.source = None;
        let e = build(no_file.clone());
        assert!(
            e.contains("group `private` names `proprietary_code`"),
            "{e}"
        );
        no_file.groups.clear();
        let e = build(no_file);
        assert!(e.contains("target label `shipping`"), "{e}");
    }
}
