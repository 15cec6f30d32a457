//! The configuration as a plain tree: what the DSL and YAML both describe. Maps keep
//! their key order; every node remembers where it was written in the DSL, so that
//! the YAML made from it can point errors back there.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt::{self, Write as _};

/// A position in the DSL text (1-based; 0 when the node did not come from it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pos {
    /// Line.
    pub line: u64,
    /// Column.
    pub column: u64,
}

/// A value with where it was written.
#[derive(Debug, Clone)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Where.
    pub pos: Pos,
    /// Comment lines written before it (without `#`).
    pub before: Vec<String>,
    /// Comment lines written inside it after its last entry (maps, lists, blocks).
    pub after: Vec<String>,
}

/// A configuration value.
#[derive(Debug, Clone)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as canonical text (`42`, `0.7`, `1e21`).
    Num(String),
    /// A string.
    Str(String),
    /// A list.
    List(Vec<Node>),
    /// A map, in written order.
    Map(Vec<(String, Node)>),
}

impl PartialEq for Node {
    /// Equal values, wherever they were written; maps compare as sets of entries.
    fn eq(&self, other: &Self) -> bool {
        match (&self.value, &other.value) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Num(a), Value::Num(b)) | (Value::Str(a), Value::Str(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .all(|(k, v)| b.iter().any(|(k2, v2)| k == k2 && v == v2))
            }
            _ => false,
        }
    }
}

impl Node {
    /// A node written at `pos`.
    pub fn at(value: Value, pos: Pos) -> Node {
        Node {
            value,
            pos,
            before: Vec::new(),
            after: Vec::new(),
        }
    }

    /// A block or list closed at `pos`, with the comments written before its end.
    pub fn closed(value: Value, pos: Pos, after: Vec<String>) -> Node {
        Node {
            after,
            ..Node::at(value, pos)
        }
    }

    /// A node that was not written anywhere.
    pub fn new(value: Value) -> Node {
        Node::at(value, Pos::default())
    }

    /// A string node.
    pub fn str(text: impl Into<String>, pos: Pos) -> Node {
        Node::at(Value::Str(text.into()), pos)
    }

    /// The entry `key` of a map.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The entries, if a map.
    pub fn entries(&self) -> Option<&[(String, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The items, if a list.
    pub fn items(&self) -> Option<&[Node]> {
        match &self.value {
            Value::List(items) => Some(items),
            _ => None,
        }
    }
}

/// Canonical text of a number read as `f64`: integers without a fraction stay
/// integers only when they were written so; others print their shortest form.
pub fn number_text(x: f64) -> String {
    format!("{x:?}")
}

impl<'de> Deserialize<'de> for Node {
    /// Reads a value with where it was written (YAML lines, for reports about an
    /// imported file).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned: serde_saphyr::Spanned<Bare> =
            serde_saphyr::Spanned::deserialize(deserializer)?;
        let mut node = spanned.value.0;
        node.pos = Pos {
            line: spanned.referenced.line(),
            column: spanned.referenced.column(),
        };
        Ok(node)
    }
}

/// A node read without its position (its children have theirs).
struct Bare(Node);

impl<'de> Deserialize<'de> for Bare {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a configuration value")
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::new(Value::Null))
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::new(Value::Null))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Bare::deserialize(d).map(|b| b.0)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::new(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::new(Value::Num(v.to_string())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                Ok(Node::new(Value::Num(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
                if !v.is_finite() {
                    return Err(E::custom(format!("{v} is not a finite number")));
                }
                Ok(Node::new(Value::Num(number_text(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::new(Value::Str(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Node::new(Value::List(items)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries: Vec<(String, Node)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format!("duplicate key `{key}`")));
                    }
                    entries.push((key, map.next_value()?));
                }
                Ok(Node::new(Value::Map(entries)))
            }
        }
        deserializer.deserialize_any(NodeVisitor).map(Bare)
    }
}

/// Where a configuration's YAML came from: the text the user wrote, and for YAML
/// made from DSL, the DSL position of each YAML line.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    /// The text as written (YAML or DSL), for quoting offending lines.
    pub text: String,
    /// Per YAML line (index 0 is line 1): the DSL position of what it holds; `None`
    /// when the text is the YAML itself.
    lines: Option<Vec<Pos>>,
}

impl SourceMap {
    /// The source of a configuration read from YAML as written.
    pub fn yaml(text: &str) -> SourceMap {
        SourceMap {
            text: text.to_owned(),
            lines: None,
        }
    }

    /// Where a YAML line and column were written, if anywhere.
    pub fn locate(&self, line: u64, column: u64) -> Option<Pos> {
        let Some(lines) = &self.lines else {
            return (line > 0).then_some(Pos { line, column });
        };
        let index = usize::try_from(line.checked_sub(1)?).ok()?;
        let pos = *lines.get(index)?;
        (pos.line > 0).then_some(pos)
    }
}

/// Writes a tree as block-style YAML (strings always quoted), with its source map.
pub fn to_yaml(root: &Node) -> (String, SourceMap) {
    let mut out = Emitter::default();
    match &root.value {
        Value::Map(entries) => out.map(entries, 0),
        _ => out.line(root.pos, &scalar(root)),
    }
    (
        out.text,
        SourceMap {
            text: String::new(),
            lines: Some(out.lines),
        },
    )
}

#[derive(Default)]
struct Emitter {
    text: String,
    lines: Vec<Pos>,
}

impl Emitter {
    fn line(&mut self, pos: Pos, text: &str) {
        self.text.push_str(text);
        self.text.push('\n');
        self.lines.push(pos);
    }

    fn map(&mut self, entries: &[(String, Node)], indent: usize) {
        let pad = " ".repeat(indent);
        for (key, node) in entries {
            for comment in &node.before {
                self.line(Pos::default(), &format!("{pad}#{comment}"));
            }
            let key = quote(key);
            if is_block(node) {
                self.line(node.pos, &format!("{pad}{key}:"));
                self.block(node, indent + 2);
            } else {
                self.line(node.pos, &format!("{pad}{key}: {}", scalar(node)));
            }
        }
    }

    fn block(&mut self, node: &Node, indent: usize) {
        let pad = " ".repeat(indent);
        match &node.value {
            Value::Map(entries) => self.map(entries, indent),
            Value::List(items) => {
                for item in items {
                    match &item.value {
                        Value::Map(entries) if !entries.is_empty() => {
                            // The first entry shares the dash's line.
                            let start = self.text.len();
                            self.map(entries, indent + 2);
                            let first = &mut self.text[start..];
                            let dashed = format!("{pad}- {}", &first[indent + 2..]);
                            self.text.truncate(start);
                            self.text.push_str(&dashed);
                        }
                        _ if is_block(item) => {
                            self.line(item.pos, &format!("{pad}-"));
                            self.block(item, indent + 2);
                        }
                        _ => self.line(item.pos, &format!("{pad}- {}", scalar(item))),
                    }
                }
            }
            _ => self.line(node.pos, &format!("{pad}{}", scalar(node))),
        }
    }
}

/// Whether a node is written on lines of its own (a non-empty map or a list holding
/// maps or lists).
fn is_block(node: &Node) -> bool {
    match &node.value {
        Value::Map(entries) => !entries.is_empty(),
        Value::List(items) => items
            .iter()
            .any(|i| matches!(i.value, Value::Map(_) | Value::List(_))),
        _ => false,
    }
}

/// A node in flow style.
fn scalar(node: &Node) -> String {
    match &node.value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Num(n) => n.clone(),
        Value::Str(s) => quote(s),
        Value::List(items) => {
            let parts: Vec<String> = items.iter().map(scalar).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Map(entries) => {
            let mut text = String::from("{");
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    text.push_str(", ");
                }
                let _ = write!(text, "{}: {}", quote(k), scalar(v));
            }
            text.push('}');
            text
        }
    }
}

/// A double-quoted string (JSON escapes are valid YAML).
pub fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}
