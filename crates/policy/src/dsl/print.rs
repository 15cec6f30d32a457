//! Configuration tree → canonical DSL text.

use super::SECTIONS;
use super::tree::{Node, Value, quote};
use crate::condition::{Measure, Test};
use std::fmt::Write as _;
use switchyard_workload::SignalFamily;

/// Lines longer than this are broken into one entry per line.
const WIDTH: usize = 88;

/// Prints a configuration tree as DSL. Fails on shapes the DSL cannot write (only
/// trees that are not valid configurations have them).
pub fn print(root: &Node) -> Result<String, String> {
    let entries = root.entries().ok_or("a configuration is a map")?;
    let mut out = Out::default();
    let get = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    for (key, _) in entries {
        let known = SECTIONS.iter().any(|(k, _)| k == key)
            || [
                "models",
                "pools",
                "routes",
                "default_route",
                "recipes",
                "constraints",
                "plugins",
                "tests",
            ]
            .contains(&key.as_str());
        if !known {
            return Err(format!("`{key}` has no DSL form"));
        }
    }
    for (key, word) in SECTIONS {
        if key == "signals" {
            continue;
        }
        if let Some(node) = get(key) {
            out.statement(node, &format!("{word} {}", block(node, 0)?));
        }
    }
    for model in get("models").and_then(Node::items).unwrap_or_default() {
        let (name, rest) = split_name(model)?;
        let text = if rest.is_empty() {
            format!("MODEL {}", name_text(name))
        } else {
            format!(
                "MODEL {} {}",
                name_text(name),
                entries_block(&rest, &model.after, 0)?
            )
        };
        out.statement(model, &text);
    }
    for pool in get("pools").and_then(Node::items).unwrap_or_default() {
        let (name, rest) = split_name(pool)?;
        let text = format!(
            "POOL {} {}",
            name_text(name),
            entries_block(&rest, &pool.after, 0)?
        );
        out.statement(pool, &text);
    }
    if let Some(signals) = get("signals") {
        let entries = signals.entries().ok_or("`signals` is a map")?;
        let settings: Vec<(String, Node)> = entries
            .iter()
            .filter(|(k, _)| SignalFamily::from_name(k).is_none())
            .cloned()
            .collect();
        if !settings.is_empty() || !signals.after.is_empty() || !signals.before.is_empty() {
            let mut holder = Node::new(Value::Map(settings.clone()));
            holder.before.clone_from(&signals.before);
            let text = format!("SIGNALS {}", entries_block(&settings, &signals.after, 0)?);
            out.statement(&holder, &text);
        }
        for family in SignalFamily::ALL {
            let Some((_, list)) = entries.iter().find(|(k, _)| k == family.name()) else {
                continue;
            };
            for signal in list.items().ok_or("a signal family holds a list")? {
                let (name, rest) = split_name(signal)?;
                let mut text = format!("SIGNAL {} {}", family.name(), name_text(name));
                if !rest.is_empty() || !signal.after.is_empty() {
                    text.push(' ');
                    text.push_str(&entries_block(&rest, &signal.after, 0)?);
                }
                out.statement(signal, &text);
            }
        }
    }
    for route in get("routes").and_then(Node::items).unwrap_or_default() {
        let (name, rest) = split_name(route)?;
        let mut head = format!("ROUTE {}", name_text(name));
        let body: Vec<(String, Node)> = rest
            .iter()
            .filter(|(k, _)| k != "description")
            .cloned()
            .collect();
        if let Some((_, description)) = rest.iter().find(|(k, _)| k == "description") {
            let _ = write!(head, " (description = {})", value(description, 0)?);
        }
        out.statement(route, &route_text(&head, &body, &route.after)?);
    }
    if let Some(default) = get("default_route") {
        let entries = default.entries().ok_or("`default_route` is a map")?;
        let mut head = "DEFAULT ROUTE".to_owned();
        if let Some((_, name)) = entries.iter().find(|(k, _)| k == "name") {
            let _ = write!(
                head,
                " {}",
                name_text(name.as_str().ok_or("a name is a string")?)
            );
        }
        let body: Vec<(String, Node)> = entries
            .iter()
            .filter(|(k, _)| k != "name")
            .cloned()
            .collect();
        out.statement(default, &route_text(&head, &body, &default.after)?);
    }
    for recipe in get("recipes").and_then(Node::items).unwrap_or_default() {
        let (name, rest) = split_name(recipe)?;
        let text = format!(
            "RECIPE {} {}",
            name_text(name),
            entries_block(&rest, &recipe.after, 0)?
        );
        out.statement(recipe, &text);
    }
    for constraint in get("constraints").and_then(Node::items).unwrap_or_default() {
        let (name, rest) = split_name(constraint)?;
        let mut head = format!("CONSTRAINT {}", name_text(name));
        if let Some((_, description)) = rest.iter().find(|(k, _)| k == "description") {
            let _ = write!(head, " (description = {})", value(description, 0)?);
        }
        let body: Vec<(String, Node)> = rest
            .into_iter()
            .filter(|(k, _)| k != "description")
            .collect();
        let order = ["when", "routes", "models", "pools", "max_cost"];
        let text = statements(
            ("constraint", &head),
            &body,
            &order,
            &constraint.after,
            |key, node| {
                Ok(match key {
                    "when" => format!("WHEN {}", expr(node)?),
                    "routes" => format!("ROUTES {}", names(node, "routes")?),
                    "models" => format!("MODELS {}", value(node, 1)?),
                    "pools" => format!("POOLS {}", value(node, 1)?),
                    _ => format!("MAX_COST {}", value(node, 1)?),
                })
            },
        )?;
        out.statement(constraint, &text);
    }
    for plugin in get("plugins").and_then(Node::items).unwrap_or_default() {
        let (name, rest) = split_name(plugin)?;
        let kind = rest
            .iter()
            .find(|(k, _)| k == "type")
            .and_then(|(_, v)| v.as_str())
            .ok_or("a plugin needs a `type` string")?;
        let options: Vec<(String, Node)> =
            rest.iter().filter(|(k, _)| k != "type").cloned().collect();
        let mut text = format!("PLUGIN {} {}", name_text(name), name_text(kind));
        if !options.is_empty() || !plugin.after.is_empty() {
            text.push(' ');
            text.push_str(&entries_block(&options, &plugin.after, 0)?);
        }
        out.statement(plugin, &text);
    }
    for test in get("tests").and_then(Node::items).unwrap_or_default() {
        let (name, rest) = split_name(test)?;
        let mut text = format!("TEST {} {{\n", name_text(name));
        let cases = rest
            .iter()
            .find(|(k, _)| k == "cases")
            .map(|(_, v)| v)
            .ok_or("a test needs `cases`")?;
        if rest.len() != 1 {
            return Err("a test has a name and cases only".to_owned());
        }
        for case in cases.items().ok_or("`cases` is a list")? {
            comments(&mut text, &case.before, 1);
            let prompt = case
                .get("prompt")
                .and_then(Node::as_str)
                .ok_or("a case needs a `prompt` string")?;
            let route = case
                .get("route")
                .and_then(Node::as_str)
                .ok_or("a case needs a `route` string")?;
            if case.entries().map_or(0, <[_]>::len) != 2 {
                return Err("a test case has a prompt and a route only".to_owned());
            }
            let _ = writeln!(text, "  {} -> {}", quote(prompt), name_text(route));
        }
        comments(&mut text, &cases.after, 1);
        text.push('}');
        out.statement(test, &text);
    }
    let mut text = out.text;
    if !root.after.is_empty() {
        text.push('\n');
        comments(&mut text, &root.after, 0);
    }
    Ok(text)
}

#[derive(Default)]
struct Out {
    text: String,
}

impl Out {
    fn statement(&mut self, node: &Node, text: &str) {
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        comments(&mut self.text, &node.before, 0);
        self.text.push_str(text);
        self.text.push('\n');
    }
}

fn comments(out: &mut String, lines: &[String], level: usize) {
    for line in lines {
        let _ = writeln!(out, "{}#{line}", "  ".repeat(level));
    }
}

/// A map's entries.
type Entries = Vec<(String, Node)>;

/// The name entry of a named block, and the rest.
fn split_name(node: &Node) -> Result<(&str, Entries), String> {
    let entries = node.entries().ok_or("expected a map with `name`")?;
    let name = entries
        .iter()
        .find(|(k, _)| k == "name")
        .and_then(|(_, v)| v.as_str())
        .ok_or("expected a map with a `name` string")?;
    let rest = entries
        .iter()
        .filter(|(k, _)| k != "name")
        .cloned()
        .collect();
    Ok((name, rest))
}

/// `ROUTE x { PRIORITY … }`
fn route_text(head: &str, body: &[(String, Node)], after: &[String]) -> Result<String, String> {
    let order = [
        "recipe",
        "priority",
        "tier",
        "when",
        "models",
        "algorithm",
        "compress",
        "lossy_translation",
        "retry_broken",
        "sticky",
        "shadow",
        "plugins",
    ];
    statements(("route", head), body, &order, after, |key, node| {
        Ok(match key {
            "priority" => format!("PRIORITY {}", value(node, 1)?),
            "tier" => format!("TIER {}", value(node, 1)?),
            "when" => format!("WHEN {}", expr(node)?),
            "models" => format!("MODEL {}", candidates(node)?),
            "algorithm" => format!("ALGORITHM {}", algorithm(node)?),
            "plugins" => format!("PLUGIN {}", names(node, "plugins")?),
            "sticky" => format!("STICKY {}", block(node, 1)?),
            "shadow" => format!("SHADOW {}", block(node, 1)?),
            "recipe" => format!(
                "RECIPE {}",
                name_text(node.as_str().ok_or("`recipe` is a name")?)
            ),
            "lossy_translation" => format!("LOSSY_TRANSLATION {}", value(node, 1)?),
            "retry_broken" => format!("RETRY_BROKEN {}", value(node, 1)?),
            _ => format!("COMPRESS {}", value(node, 1)?),
        })
    })
}

/// `a, b, "c"`: a list of names.
fn names(node: &Node, what: &str) -> Result<String, String> {
    let names: Result<Vec<String>, String> = node
        .items()
        .ok_or_else(|| format!("`{what}` is a list"))?
        .iter()
        .map(|n| {
            n.as_str()
                .map(name_text)
                .ok_or_else(|| format!("each of `{what}` is a name"))
        })
        .collect();
    Ok(names?.join(", "))
}

/// `head { STATEMENT … }`: the entries of `body` as keyword statements, in `order`,
/// each rendered by `line`; an entry with no place in `order` has no DSL form.
fn statements(
    (what, head): (&str, &str),
    body: &[(String, Node)],
    order: &[&str],
    after: &[String],
    line: impl Fn(&str, &Node) -> Result<String, String>,
) -> Result<String, String> {
    if let Some((key, _)) = body.iter().find(|(k, _)| !order.contains(&k.as_str())) {
        return Err(format!("{what} key `{key}` has no DSL form"));
    }
    let mut text = format!("{head} {{\n");
    for &key in order {
        let Some((_, node)) = body.iter().find(|(k, _)| k == key) else {
            continue;
        };
        comments(&mut text, &node.before, 1);
        let _ = writeln!(text, "  {}", line(key, node)?);
    }
    comments(&mut text, after, 1);
    text.push('}');
    Ok(text)
}

fn candidates(node: &Node) -> Result<String, String> {
    let mut parts = Vec::new();
    for item in node.items().ok_or("`models` is a list")? {
        match &item.value {
            Value::Str(name) => parts.push(quote(name)),
            Value::Map(_) => {
                let (name, options) = split_name(item)?;
                if options.is_empty() {
                    parts.push(quote(name));
                    continue;
                }
                let options: Result<Vec<String>, String> = options
                    .iter()
                    .map(|(k, v)| Ok(format!("{} = {}", key_text(k), value(v, 1)?)))
                    .collect();
                parts.push(format!("{} ({})", quote(name), options?.join(", ")));
            }
            _ => return Err("a candidate is a model name or a map with `name`".to_owned()),
        }
    }
    Ok(parts.join(", "))
}

fn algorithm(node: &Node) -> Result<String, String> {
    match &node.value {
        Value::Str(name) => Ok(name_text(name)),
        Value::Map(entries) => {
            let name = node
                .get("type")
                .and_then(Node::as_str)
                .ok_or("an algorithm map needs `type`")?;
            let rest: Vec<(String, Node)> = entries
                .iter()
                .filter(|(k, _)| k != "type")
                .cloned()
                .collect();
            if rest.is_empty() {
                Ok(name_text(name))
            } else {
                Ok(format!(
                    "{} {}",
                    name_text(name),
                    entries_block(&rest, &node.after, 1)?
                ))
            }
        }
        _ => Err("an algorithm is a name or a map with `type`".to_owned()),
    }
}

/// A condition tree as an expression.
pub(super) fn expr(node: &Node) -> Result<String, String> {
    expr_text(&super::canonical_condition(node))
}

/// A canonical condition (no group of one) as an expression.
fn expr_text(node: &Node) -> Result<String, String> {
    let [(key, inner)] = node.entries().ok_or("a condition is a map")? else {
        return Err("a condition has exactly one key".to_owned());
    };
    match key.as_str() {
        "all" | "any" => {
            let items = inner.items().ok_or("`all` and `any` hold lists")?;
            let all = key == "all";
            match items {
                [] => Ok(if all { "TRUE" } else { "FALSE" }.to_owned()),
                [single] => expr_text(single),
                _ => {
                    let parts: Result<Vec<String>, String> = items
                        .iter()
                        .map(|item| {
                            let text = expr_text(item)?;
                            let group = item
                                .entries()
                                .and_then(|e| e.first())
                                .map(|(k, v)| (k.as_str(), v.items().map_or(0, <[_]>::len)));
                            // Nested groups keep their parentheses (so the tree stays
                            // the same); OR inside AND needs them anyway.
                            let needs = match group {
                                Some(("any", n)) => n > 1,
                                Some(("all", n)) => all && n > 1,
                                _ => false,
                            };
                            Ok(if needs { format!("({text})") } else { text })
                        })
                        .collect();
                    Ok(parts?.join(if all { " AND " } else { " OR " }))
                }
            }
        }
        "not" => {
            let text = expr_text(inner)?;
            let group = inner
                .entries()
                .and_then(|e| e.first())
                .map(|(k, v)| (k.as_str(), v.items().map_or(0, <[_]>::len)));
            Ok(match group {
                Some(("all" | "any", n)) if n > 1 => format!("NOT ({text})"),
                _ => format!("NOT {text}"),
            })
        }
        family => {
            if SignalFamily::from_name(family).is_none() {
                return Err(format!("unknown condition `{family}`"));
            }
            match &inner.value {
                Value::Str(name) => Ok(format!("{family}({})", quote(name))),
                Value::Map(entries) => {
                    let name = inner
                        .get("name")
                        .and_then(Node::as_str)
                        .ok_or("a signal test needs `name`")?;
                    let [_, (measure, bound)] = entries.as_slice() else {
                        return Err("a signal test has a name and one comparison".to_owned());
                    };
                    let measure = match measure.as_str() {
                        "value" => Measure::Value,
                        "confidence" => Measure::Confidence,
                        "label" => {
                            let label = bound.as_str().ok_or("a label is a string")?;
                            return Ok(format!("{family}({}, {})", quote(name), quote(label)));
                        }
                        other => return Err(format!("unknown test key `{other}`")),
                    };
                    let test = Test::parse(
                        measure,
                        bound
                            .as_str()
                            .ok_or("a test is a string such as \">= 0.7\"")?,
                    )?;
                    Ok(format!("{family}({}){test}", quote(name)))
                }
                _ => Err("an atom names a signal".to_owned()),
            }
        }
    }
}

/// A map's entries as a block: on one line when short and without comments.
fn entries_block(
    entries: &[(String, Node)],
    after: &[String],
    level: usize,
) -> Result<String, String> {
    let parts: Result<Vec<String>, String> = entries
        .iter()
        .map(|(k, v)| Ok(format!("{}: {}", key_text(k), value(v, level + 1)?)))
        .collect();
    let parts = parts?;
    let before: Vec<&[String]> = entries.iter().map(|(_, v)| v.before.as_slice()).collect();
    let one_line = if parts.is_empty() {
        "{}".to_owned()
    } else {
        format!("{{ {} }}", parts.join(", "))
    };
    if fits(&one_line, &before, after, level) {
        return Ok(one_line);
    }
    Ok(one_per_line(("{", "}", ""), &parts, &before, after, level))
}

/// Whether a one-line form is kept: no comment inside, no line break, and short.
fn fits(one_line: &str, before: &[&[String]], after: &[String], level: usize) -> bool {
    uncommented(before, after)
        && !one_line.contains('\n')
        && one_line.len() + 2 * level + 24 <= WIDTH
}

/// Whether no comment is written among items or before the end.
fn uncommented(before: &[&[String]], after: &[String]) -> bool {
    after.is_empty() && before.iter().all(|b| b.is_empty())
}

/// `open`, each part on its own line after its comments (with `comma` after all but
/// the last), the comments before the end, `close`.
fn one_per_line(
    (open, close, comma): (&str, &str, &str),
    parts: &[String],
    before: &[&[String]],
    after: &[String],
    level: usize,
) -> String {
    let pad = "  ".repeat(level + 1);
    let mut text = format!("{open}\n");
    for (i, (part, lines)) in parts.iter().zip(before).enumerate() {
        comments(&mut text, lines, level + 1);
        let comma = if i + 1 < parts.len() { comma } else { "" };
        let _ = writeln!(text, "{pad}{part}{comma}");
    }
    comments(&mut text, after, level + 1);
    let _ = write!(text, "{}{close}", "  ".repeat(level));
    text
}

fn block(node: &Node, level: usize) -> Result<String, String> {
    entries_block(node.entries().ok_or("expected a map")?, &node.after, level)
}

/// A value at nesting `level` (for the indentation of blocks it opens).
fn value(node: &Node, level: usize) -> Result<String, String> {
    Ok(match &node.value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Num(n) => n.clone(),
        Value::Str(s) => string_text(s),
        Value::Map(entries) => entries_block(entries, &node.after, level)?,
        Value::List(items) => {
            let parts: Result<Vec<String>, String> =
                items.iter().map(|i| value(i, level + 1)).collect();
            let parts = parts?;
            let before: Vec<&[String]> = items.iter().map(|i| i.before.as_slice()).collect();
            let one_line = format!("[{}]", parts.join(", "));
            let short_scalars = items
                .iter()
                .all(|i| !matches!(i.value, Value::List(_) | Value::Map(_)))
                && parts.iter().all(|p| p.len() <= 24);
            if fits(&one_line, &before, &node.after, level) {
                one_line
            } else if uncommented(&before, &node.after) && short_scalars {
                filled(&parts, level)
            } else {
                one_per_line(("[", "]", ","), &parts, &before, &node.after, level)
            }
        }
    })
}

/// Short list items filling lines of at most [`WIDTH`].
fn filled(parts: &[String], level: usize) -> String {
    let pad = "  ".repeat(level + 1);
    let mut lines: Vec<String> = vec![String::new()];
    for part in parts {
        let last = lines.last().map_or(0, String::len);
        if last > 0 && pad.len() + last + part.len() + 2 > WIDTH {
            lines.push(String::new());
        }
        if let Some(line) = lines.last_mut() {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(part);
            line.push(',');
        }
    }
    if let Some(line) = lines.last_mut() {
        line.pop();
    }
    let mut text = "[\n".to_owned();
    for line in lines {
        let _ = writeln!(text, "{pad}{line}");
    }
    let _ = write!(text, "{}]", "  ".repeat(level));
    text
}

/// A string value: bare when it is a lowercase word or a token count (`8K`).
fn string_text(s: &str) -> String {
    let word = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'))
        && !s.ends_with(['-', '.'])
        && !["true", "false", "null"].contains(&s);
    if word || is_token_count(s) {
        s.to_owned()
    } else {
        quote(s)
    }
}

/// `8K`, `1.5M`: what the lexer reads back as a string with a suffix.
fn is_token_count(s: &str) -> bool {
    let Some(number) = s.strip_suffix('K').or_else(|| s.strip_suffix('M')) else {
        return false;
    };
    let mut parts = number.splitn(2, '.');
    let whole = parts.next().unwrap_or_default();
    let fraction = parts.next();
    let digits = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_digit());
    digits(whole) && fraction.is_none_or(digits) && (whole == "0" || !whole.starts_with('0'))
}

/// A map key: bare when a word, else quoted.
fn key_text(k: &str) -> String {
    let word = k
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if word { k.to_owned() } else { quote(k) }
}

/// A name after a statement keyword: bare when the lexer reads it back whole.
fn name_text(name: &str) -> String {
    let first = name.chars().next();
    let bare = first.is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.ends_with(['-', '.'])
        && name != name.to_ascii_uppercase()
        && !["true", "false", "null"].contains(&name);
    if bare { name.to_owned() } else { quote(name) }
}
