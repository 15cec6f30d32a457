//! Their projections (`PROJECTION score | mapping | partition`, or YAML
//! `routing.projections.{scores, mappings, partitions}`) as our `projection` signals.
//!
//! - A score's inputs become terms over our signals (`family.name`): `value_source:
//!   confidence` reads the confidence, `raw` the value, and the default (binary) the
//!   match with their `match`/`miss` numbers; `complexity("x:hard")` inputs read our
//!   per-level signal `x_hard`; `projection` inputs read another score's value, or a
//!   band's confidence; a `kb_metric` input (a `group_margin`) reads two `kb`
//!   signals, one per group, made for it. An input that did not convert drops the
//!   score, with a note, rather than changing its sum.
//! - A `threshold_bands` mapping becomes bands over its source score (calibration
//!   kept as a slope); a `multi_emit` mapping, whose bands may hold together,
//!   becomes one single-band projection per output.
//! - A partition keeps its members (as `domain.x` or `embedding.x`), default and
//!   temperature (`softmax_exclusive`); routes reading a member are rewritten to
//!   read the partition's winner, as their engine does.

use super::{Fields, ImportNote, list, note, s};
use crate::dsl::tree::{Node, Value};
use std::collections::{BTreeMap, BTreeSet};

/// A projection as written: kind (`score`, `mapping`, `partition`), name, fields, line.
pub(super) type Written = (String, String, Fields, u64);

/// What conditions need to know about converted projections.
#[derive(Debug, Default)]
pub(super) struct Converted {
    /// Band (their output name) → the projection that reports it.
    pub bands: BTreeMap<String, String>,
    /// (our family, member name) → the partition whose winner replaces it.
    pub members: BTreeMap<(String, String), String>,
}

fn number(node: &Node) -> Option<f64> {
    match &node.value {
        Value::Num(n) => n.parse::<f64>().ok().filter(|v| v.is_finite()),
        _ => None,
    }
}

fn num_node(x: f64) -> Node {
    super::number_node(x)
}

fn map(entries: Vec<(&str, Node)>) -> Node {
    Node::new(Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    ))
}

/// The complexity levels projection inputs read (`x:hard`), so that their per-level
/// signals are converted.
pub(super) fn complexity_levels(written: &[Written], out: &mut BTreeSet<String>) {
    for (_, _, fields, _) in written {
        for (key, value) in fields {
            if key != "inputs" {
                continue;
            }
            for input in value.items().unwrap_or_default() {
                if input.get("type").and_then(Node::as_str) == Some("complexity")
                    && let Some(name) = input.get("name").and_then(Node::as_str)
                {
                    out.insert(name.to_owned());
                }
            }
        }
    }
}

/// Converts projections into `families["projection"]`, adding their names to
/// `known`; partitions first, then scores, then mappings.
pub(super) fn convert(
    (written, knowledge_bases): (&[Written], &BTreeMap<String, Node>),
    known: &mut BTreeSet<(String, String)>,
    families: &mut BTreeMap<&'static str, Vec<Node>>,
    notes: &mut Vec<ImportNote>,
) -> Converted {
    let mut out = Converted::default();
    let field = |fields: &Fields, key: &str| {
        fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    // Output band → (mapping, its source score), for inputs reading a band.
    let mut band_sources: BTreeMap<String, String> = BTreeMap::new();
    for (kind, name, fields, _) in written {
        if kind == "mapping" {
            for output in field(fields, "outputs")
                .as_ref()
                .and_then(Node::items)
                .unwrap_or_default()
            {
                if let Some(band) = output.get("name").and_then(Node::as_str) {
                    band_sources.insert(band.to_owned(), name.clone());
                }
            }
        }
    }
    let mut projections: Vec<Node> = Vec::new();
    // `kb` signals made for `kb_metric` inputs, by name.
    let mut kb_signals: BTreeMap<String, Node> = BTreeMap::new();
    for pass in ["partition", "score", "mapping"] {
        for (kind, name, fields, line) in written.iter().filter(|w| w.0 == pass) {
            let what = format!("PROJECTION {kind} {name}");
            let converted = match kind.as_str() {
                "partition" => partition(name, fields, known, &mut out),
                "score" => score(
                    name,
                    fields,
                    (known, &band_sources),
                    (knowledge_bases, &mut kb_signals),
                ),
                "mapping" => mapping(name, fields, known, &mut out, notes, *line),
                other => Err(format!("`{other}` projections have no counterpart")),
            };
            match converted {
                Ok(nodes) => {
                    for node in nodes {
                        if let Some(n) = node.get("name").and_then(Node::as_str) {
                            known.insert(("projection".to_owned(), n.to_owned()));
                        }
                        projections.push(node);
                    }
                }
                Err(reason) => note(
                    notes,
                    *line,
                    what,
                    format!("{reason}; dropped, and routes reading it are left out"),
                ),
            }
        }
    }
    if !projections.is_empty() {
        families
            .entry("projection")
            .or_default()
            .extend(projections);
    }
    for (name, node) in kb_signals {
        known.insert(("kb".to_owned(), name));
        families.entry("kb").or_default().push(node);
    }
    out
}

/// Their `kb_metric` input (a `group_margin` metric: the positive group's score less
/// the negative group's) as two terms over `kb` signals that read each group's
/// similarity, made once per knowledge base and group.
fn kb_metric_terms(
    input: &Node,
    weight: f64,
    knowledge_bases: &BTreeMap<String, Node>,
    kb_signals: &mut BTreeMap<String, Node>,
) -> Result<Vec<Node>, String> {
    let base = input.get("kb").and_then(Node::as_str).unwrap_or_default();
    let metric = input
        .get("metric")
        .and_then(Node::as_str)
        .unwrap_or_default();
    let definition = knowledge_bases.get(base).ok_or_else(|| {
        format!("kb_metric input: knowledge base `{base}` is not defined in this file")
    })?;
    let spec = definition
        .get("metrics")
        .and_then(Node::items)
        .unwrap_or_default()
        .iter()
        .find(|m| m.get("name").and_then(Node::as_str) == Some(metric))
        .ok_or_else(|| format!("kb_metric input: `{base}` has no metric `{metric}`"))?;
    if spec.get("type").and_then(Node::as_str) != Some("group_margin") {
        return Err(format!(
            "kb_metric `{metric}`: only group_margin metrics have a counterpart"
        ));
    }
    let fields = super::kb_fields(definition)
        .ok_or_else(|| format!("kb_metric input: `{base}` names no source.path"))?;
    let mut terms = Vec::new();
    for (key, sign) in [("positive_group", 1.0), ("negative_group", -1.0)] {
        let group = spec
            .get(key)
            .and_then(Node::as_str)
            .ok_or_else(|| format!("kb_metric `{metric}` has no {key}"))?;
        let name = format!("{base}__{group}");
        kb_signals.entry(name.clone()).or_insert_with(|| {
            let mut entries: Fields = vec![("name".to_owned(), s(&name))];
            entries.extend(fields.iter().cloned());
            entries.push((
                "target".to_owned(),
                map(vec![("kind", s("group")), ("value", s(group))]),
            ));
            entries.push(("match".to_owned(), s("threshold")));
            Node::new(Value::Map(entries))
        });
        terms.push(map(vec![
            ("signal", s(&format!("kb.{name}"))),
            ("weight", num_node(sign * weight)),
            ("read", s("value")),
        ]));
    }
    Ok(terms)
}

/// Their input `type` + `name` as our `family.name`, if that signal converted.
fn our_signal(
    theirs: &str,
    name: &str,
    known: &BTreeSet<(String, String)>,
) -> Result<String, String> {
    let ours = super::family(theirs).ok_or_else(|| {
        format!("input {theirs}(\"{name}\"): the `{theirs}` family has no counterpart")
    })?;
    let name = match (ours, name.split_once(':')) {
        ("complexity", Some((set, level))) => format!("{set}_{level}"),
        _ => name.to_owned(),
    };
    if known.contains(&(ours.to_owned(), name.clone())) {
        Ok(format!("{ours}.{name}"))
    } else {
        Err(format!("input {theirs}(\"{name}\") did not convert"))
    }
}

fn score(
    name: &str,
    fields: &Fields,
    (known, band_sources): (&BTreeSet<(String, String)>, &BTreeMap<String, String>),
    (knowledge_bases, kb_signals): (&BTreeMap<String, Node>, &mut BTreeMap<String, Node>),
) -> Result<Vec<Node>, String> {
    let get = |key: &str| fields.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    match get("method").and_then(Node::as_str) {
        Some("weighted_sum") | None => {}
        Some(other) => return Err(format!("method `{other}` has no counterpart")),
    }
    let mut inputs = Vec::new();
    for input in get("inputs").and_then(Node::items).unwrap_or_default() {
        let theirs = input.get("type").and_then(Node::as_str).unwrap_or_default();
        let input_name = input.get("name").and_then(Node::as_str).unwrap_or_default();
        let weight = input
            .get("weight")
            .and_then(number)
            .ok_or_else(|| format!("input {theirs}(\"{input_name}\") has no numeric weight"))?;
        let source = input
            .get("value_source")
            .and_then(Node::as_str)
            .unwrap_or("");
        let mut entries: Vec<(&str, Node)> = Vec::new();
        if theirs == "projection" {
            match source {
                "" | "score" => {
                    entries.push(("signal", s(&format!("projection.{input_name}"))));
                    entries.push(("weight", num_node(weight)));
                    entries.push(("read", s("value")));
                }
                "confidence" => {
                    let mapping = band_sources.get(input_name).ok_or_else(|| {
                        format!("input projection(\"{input_name}\") names no band")
                    })?;
                    entries.push(("signal", s(&format!("projection.{mapping}"))));
                    entries.push(("label", s(input_name)));
                    entries.push(("weight", num_node(weight)));
                    entries.push(("read", s("confidence")));
                }
                other => return Err(format!("value_source `{other}` has no counterpart")),
            }
            inputs.push(map(entries));
            continue;
        }
        if theirs == "kb_metric" {
            inputs.extend(kb_metric_terms(input, weight, knowledge_bases, kb_signals)?);
            continue;
        }
        entries.push(("signal", s(&our_signal(theirs, input_name, known)?)));
        entries.push(("weight", num_node(weight)));
        match source {
            "confidence" => entries.push(("read", s("confidence"))),
            "raw" => entries.push(("read", s("value"))),
            "" | "binary" => {
                for (theirs_key, ours) in [("match", "match"), ("miss", "miss")] {
                    let default = if ours == "match" { 1.0 } else { 0.0 };
                    if let Some(x) = input.get(theirs_key).and_then(number)
                        && x != default
                    {
                        entries.push((ours, num_node(x)));
                    }
                }
            }
            other => return Err(format!("value_source `{other}` has no counterpart")),
        }
        inputs.push(map(entries));
    }
    if inputs.is_empty() {
        return Err("a score without inputs".to_owned());
    }
    Ok(vec![map(vec![
        ("name", s(name)),
        ("method", s("weighted_sum")),
        ("inputs", list(inputs)),
    ])])
}

/// Their output's bounds, as written (`lt`, `lte`, `gt`, `gte`).
fn band(output: &Node) -> Result<Node, String> {
    let name = output
        .get("name")
        .and_then(Node::as_str)
        .ok_or("an output without a name")?;
    let mut entries = vec![("name", s(name))];
    for key in ["gt", "gte", "lt", "lte"] {
        if let Some(v) = output.get(key) {
            let x = number(v).ok_or_else(|| format!("output `{name}`: `{key}` is not a number"))?;
            entries.push((key, num_node(x)));
        }
    }
    Ok(map(entries))
}

fn mapping(
    name: &str,
    fields: &Fields,
    known: &BTreeSet<(String, String)>,
    out: &mut Converted,
    notes: &mut Vec<ImportNote>,
    line: u64,
) -> Result<Vec<Node>, String> {
    let get = |key: &str| fields.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let source = get("source")
        .and_then(Node::as_str)
        .ok_or("a mapping without `source`")?;
    if !known.contains(&("projection".to_owned(), source.to_owned())) {
        return Err(format!("its source score `{source}` did not convert"));
    }
    let outputs = get("outputs").and_then(Node::items).unwrap_or_default();
    if outputs.is_empty() {
        return Err("a mapping without outputs".to_owned());
    }
    let calibration = match get("calibration") {
        None => None,
        Some(c) => {
            match c.get("method").and_then(Node::as_str) {
                None | Some("sigmoid_distance") => {}
                Some(other) => return Err(format!("calibration `{other}` has no counterpart")),
            }
            let slope = c.get("slope").and_then(number).unwrap_or(1.0);
            note(
                notes,
                line,
                format!("PROJECTION mapping {name} calibration"),
                "translated: a band's confidence is 1 / (1 + e^(−slope · distance to its nearest edge)); which band holds is unchanged",
            );
            Some(map(vec![("slope", num_node(slope))]))
        }
    };
    let bands: Vec<Node> = outputs.iter().map(band).collect::<Result<_, _>>()?;
    let projection = |name: &str, bands: Vec<Node>| {
        let mut entries = vec![
            ("name", s(name)),
            ("method", s("threshold_bands")),
            ("source", s(source)),
            ("bands", list(bands)),
        ];
        if let Some(c) = &calibration {
            entries.push(("calibration", c.clone()));
        }
        map(entries)
    };
    match get("method").and_then(Node::as_str) {
        None | Some("threshold_bands") => {
            for b in &bands {
                if let Some(n) = b.get("name").and_then(Node::as_str) {
                    out.bands.insert(n.to_owned(), name.to_owned());
                }
            }
            Ok(vec![projection(name, bands)])
        }
        // Every band that holds is emitted: each is its own projection.
        Some("multi_emit") => {
            note(
                notes,
                line,
                format!("PROJECTION mapping {name}"),
                format!(
                    "translated: multi_emit bands may hold together, so each is its own single-band projection `{name}__<band>`"
                ),
            );
            Ok(bands
                .into_iter()
                .filter_map(|b| {
                    let band = b.get("name").and_then(Node::as_str)?.to_owned();
                    let own = format!("{name}__{band}");
                    out.bands.insert(band, own.clone());
                    Some(projection(&own, vec![b]))
                })
                .collect())
        }
        Some(other) => Err(format!("method `{other}` has no counterpart")),
    }
}

fn partition(
    name: &str,
    fields: &Fields,
    known: &BTreeSet<(String, String)>,
    out: &mut Converted,
) -> Result<Vec<Node>, String> {
    let get = |key: &str| fields.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let temperature = match get("semantics").and_then(Node::as_str) {
        Some("exclusive") | None => None,
        Some("softmax_exclusive") => Some(
            get("temperature")
                .and_then(number)
                .filter(|t| *t > 0.0)
                .ok_or("softmax_exclusive needs a positive temperature")?,
        ),
        Some(other) => return Err(format!("semantics `{other}` has no counterpart")),
    };
    let mut members = Vec::new();
    let mut keys = Vec::new();
    for member in get("members").and_then(Node::items).unwrap_or_default() {
        let m = member.as_str().ok_or("a member that is not a name")?;
        let family = ["domain", "embedding"]
            .into_iter()
            .find(|f| known.contains(&((*f).to_owned(), m.to_owned())))
            .ok_or_else(|| format!("member `{m}` is not a converted domain or embedding signal"))?;
        members.push(s(&format!("{family}.{m}")));
        keys.push((family.to_owned(), m.to_owned()));
    }
    let default = get("default")
        .and_then(Node::as_str)
        .ok_or("a partition without `default`")?;
    let default = keys
        .iter()
        .find(|(_, m)| m == default)
        .map(|(f, m)| format!("{f}.{m}"))
        .ok_or_else(|| format!("default `{default}` is not a member"))?;
    for key in keys {
        out.members.insert(key, name.to_owned());
    }
    let mut entries = vec![
        ("name", s(name)),
        ("method", s("partition")),
        ("members", list(members)),
        ("default", s(&default)),
    ];
    if let Some(t) = temperature {
        entries.push(("temperature", num_node(t)));
    }
    Ok(vec![map(entries)])
}
