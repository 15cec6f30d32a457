//! The policy DSL: the same configuration as the YAML file, written as statements.
//!
//! ```text
//! MODEL "coder-7b" { price: { input: 0.2, output: 0.4 }, quality: 0.7 }
//! POOL coder { model: "coder-7b", context_window: 16K, endpoints: [{ url: "http://10.0.0.5:8000" }] }
//! SIGNAL keyword code { keywords: [python, rust] }
//! ROUTE coding (description = "code questions") {
//!   PRIORITY 50
//!   WHEN keyword("code") AND NOT context("long")
//!   MODEL "coder-7b" (reasoning = true, effort = "high"), "chat-8b"
//!   ALGORITHM cost { min_quality: 0.7 }
//! }
//! DEFAULT ROUTE { MODEL "chat-8b" }
//! CONSTRAINT on_prem { WHEN pii("personal") POOLS { tags: [on-prem] } }
//! PLUGIN house system_prompt { text: "You answer on route {{route}}.", global: true }
//! TEST smoke { "how do I compile rust" -> coding }
//! ```
//!
//! Both forms become one tree ([`tree::Node`]); DSL text is parsed into it, YAML is
//! written from it with a map of which DSL line each YAML line came from, and the
//! strict YAML loader reads that, so both forms share one schema and one set of
//! checks, and errors point at the DSL. Printing a tree gives canonical DSL: `fmt`
//! is print ∘ parse, and YAML → DSL is print ∘ read.

pub(crate) mod lex;
pub(crate) mod parse;
mod print;
pub mod tree;

use crate::condition::{Measure, Test};
use crate::config::Config;
use crate::diagnostics::{ConfigError, Diagnostic};
use crate::load::parse_config;
pub use parse::SyntaxError;
pub use tree::{Node, Pos, SourceMap, Value};

/// Block statements and the configuration section each fills.
pub(crate) const SECTIONS: [(&str, &str); 7] = [
    ("server", "SERVER"),
    ("upstream", "UPSTREAM"),
    ("state", "STATE"),
    ("health", "HEALTH"),
    ("retention", "RETENTION"),
    ("decision", "DECISION"),
    ("signals", "SIGNALS"),
];

/// Every top-level statement keyword.
pub(crate) const STATEMENTS: [&str; 16] = [
    "SERVER",
    "UPSTREAM",
    "STATE",
    "HEALTH",
    "RETENTION",
    "DECISION",
    "SIGNALS",
    "MODEL",
    "POOL",
    "SIGNAL",
    "ROUTE",
    "DEFAULT",
    "RECIPE",
    "CONSTRAINT",
    "PLUGIN",
    "TEST",
];

/// Whether a file's text is DSL rather than YAML, by its name (`.sy`).
pub fn is_dsl_path(path: &std::path::Path) -> bool {
    path.extension().is_some_and(|e| e == "sy")
}

/// Parses DSL text into its tree.
pub fn parse_tree(text: &str) -> Result<Node, ConfigError> {
    parse::parse(text).map_err(|e| ConfigError::from(e.diagnostic()).with_source(text))
}

/// Reads YAML configuration text (checked against the schema first) into its tree.
pub fn yaml_tree(text: &str) -> Result<Node, ConfigError> {
    parse_config(text).map_err(|e| e.with_source(text))?;
    serde_saphyr::from_str::<Node>(text).map_err(|e| {
        ConfigError::from(Diagnostic::error(
            &serde_saphyr::Location::UNKNOWN,
            "",
            e.to_string(),
        ))
    })
}

/// Parses DSL text into a configuration; errors point at the DSL.
pub fn parse_dsl(text: &str) -> Result<Config, ConfigError> {
    read(text).map(|(config, _)| config)
}

/// DSL text as a configuration and the YAML it was read from.
fn read(text: &str) -> Result<(Config, String), ConfigError> {
    let tree = parse_tree(text)?;
    let (yaml, mut map) = tree::to_yaml(&tree);
    map.text = text.to_owned();
    match parse_config(&yaml) {
        Ok(mut config) => {
            config.source = Some(map);
            Ok((config, yaml))
        }
        Err(mut e) => {
            for d in &mut e.diagnostics {
                relocate(&map, d);
            }
            Err(e)
        }
    }
}

/// Moves a diagnostic from the YAML a configuration was read from to where it was
/// written (the DSL line, for YAML made from DSL), and quotes that line.
pub fn relocate(map: &SourceMap, d: &mut Diagnostic) {
    if let Some(pos) = map.locate(d.line, d.column) {
        d.line = pos.line;
        d.column = pos.column;
        d.snippet = None;
        d.attach_source(&map.text);
    } else if d.line > 0 {
        // A line of its own in the YAML (a key with a block under it): no DSL origin.
        d.line = 0;
        d.column = 0;
        d.snippet = None;
    }
}

/// Canonical DSL text of DSL text (`switchyard fmt`).
pub fn format(text: &str) -> Result<String, ConfigError> {
    let tree = parse_tree(text)?;
    print_tree(&tree)
}

/// DSL text as YAML (`switchyard compile`); the configuration is checked first.
pub fn to_yaml(text: &str) -> Result<String, ConfigError> {
    read(text).map(|(_, yaml)| yaml)
}

/// YAML text as canonical DSL (`switchyard compile` of a YAML file).
pub fn from_yaml(text: &str) -> Result<String, ConfigError> {
    print_tree(&yaml_tree(text)?)
}

/// Canonical DSL text of a tree.
pub fn print_tree(tree: &Node) -> Result<String, ConfigError> {
    print::print(tree).map_err(|e| {
        ConfigError::from(Diagnostic::error(
            &serde_saphyr::Location::UNKNOWN,
            "",
            format!("this configuration has no DSL form: {e}"),
        ))
    })
}

/// A condition with no group of one (a group of one is its member) and every test
/// in canonical text (`>= 0.7`).
pub fn canonical_condition(node: &Node) -> Node {
    let Some([(key, inner)]) = node.entries() else {
        return node.clone();
    };
    let rebuilt = |value: Node| Node::at(Value::Map(vec![(key.clone(), value)]), node.pos);
    match key.as_str() {
        "all" | "any" => match inner.items() {
            Some([single]) => canonical_condition(single),
            Some(items) => {
                let items = items.iter().map(canonical_condition).collect();
                rebuilt(Node::at(Value::List(items), inner.pos))
            }
            None => node.clone(),
        },
        "not" => rebuilt(canonical_condition(inner)),
        _ => match inner.entries() {
            Some([(n, name), (m, bound)]) if n == "name" => {
                let measure = if m == "confidence" {
                    Measure::Confidence
                } else {
                    Measure::Value
                };
                match bound.as_str().map(|b| Test::parse(measure, b)) {
                    Some(Ok(test)) => {
                        let text = format!("{} {}", test.cmp.symbol(), test.bound);
                        rebuilt(Node::at(
                            Value::Map(vec![
                                (n.clone(), name.clone()),
                                (m.clone(), Node::str(text, bound.pos)),
                            ]),
                            inner.pos,
                        ))
                    }
                    _ => node.clone(),
                }
            }
            _ => node.clone(),
        },
    }
}

/// The tree in the form printing then parsing gives back: canonical conditions,
/// `{type: x}` as `x`, a candidate `{name: x}` as `x`, comments dropped.
pub fn canonical(node: &Node) -> Node {
    fn walk(node: &Node, path: &[&str]) -> Node {
        let here = path.last().copied().unwrap_or_default();
        let mut out = match &node.value {
            Value::Map(_) if here == "when" => {
                return walk(&canonical_condition(node), &["condition"]);
            }
            Value::Map(entries) if here == "algorithm" && entries.len() == 1 => {
                match node.get("type") {
                    Some(t) => t.clone(),
                    None => node.clone(),
                }
            }
            Value::Map(entries)
                if path.len() > 2 && path.ends_with(&["models", "[]"]) && entries.len() == 1 =>
            {
                match node.get("name") {
                    Some(n) if n.as_str().is_some() => n.clone(),
                    _ => node.clone(),
                }
            }
            Value::Map(entries) => Node::at(
                Value::Map(
                    entries
                        .iter()
                        .map(|(k, v)| {
                            let mut deeper = path.to_vec();
                            deeper.push(k);
                            (k.clone(), walk(v, &deeper))
                        })
                        .collect(),
                ),
                node.pos,
            ),
            Value::List(items) => {
                let mut deeper = path.to_vec();
                deeper.push("[]");
                Node::at(
                    Value::List(items.iter().map(|i| walk(i, &deeper)).collect()),
                    node.pos,
                )
            }
            _ => node.clone(),
        };
        out.before.clear();
        out.after.clear();
        out
    }
    walk(node, &[])
}

#[cfg(test)]
mod tests;
