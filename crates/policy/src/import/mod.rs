//! `switchyard import vllm-sr`: policies of vLLM Semantic Router, in its DSL or its
//! YAML (`routing.signals`, `routing.decisions`), converted to this project's DSL.
//!
//! What maps is converted: signals of the families both know (their fields renamed),
//! routes with priority, condition, candidate models and their options, decision
//! trees (each branch a route whose condition excludes the earlier branches, in
//! descending priority), model cards, endpoints, the decision strategy, the default
//! model, tiers, projections (`projections`), recipes with their entry points
//! (`recipes`: named policies picked by model name) and TEST blocks. Every construct
//! that does not map (plugins, algorithms without a counterpart, unknown fields) is
//! reported with its line and why; a route whose condition reads a signal that did
//! not map is left out rather than changed.

use crate::diagnostics::{ConfigError, Diagnostic};
use crate::dsl::tree::{Node, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

mod projections;

/// Named values, in written order.
type Fields = Vec<(String, Node)>;

/// Something in the source that was not converted, or was converted with a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportNote {
    /// Its line in the source (0 when unknown).
    pub line: u64,
    /// What it is (`PROJECTION score difficulty`, `route cheap: PLUGIN cache`).
    pub construct: String,
    /// Why it was dropped or what was done instead.
    pub reason: String,
}

impl fmt::Display for ImportNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: ", self.line)?;
        }
        write!(f, "{}: {}", self.construct, self.reason)
    }
}

/// A converted policy.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The policy in this project's DSL.
    pub dsl: String,
    /// What did not map, in source order.
    pub notes: Vec<ImportNote>,
}

/// A condition as the source wrote it.
#[derive(Debug, Clone)]
enum Cond {
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Not(Box<Cond>),
    Atom {
        family: String,
        name: String,
        /// Fields written inside the reference (`domain("x", threshold: 0.5)`).
        fields: bool,
        line: u64,
    },
}

#[derive(Debug, Clone)]
struct Candidate {
    model: String,
    options: Fields,
    line: u64,
}

#[derive(Debug, Clone, Default)]
struct Route {
    name: String,
    description: Option<String>,
    priority: i64,
    tier: Option<String>,
    when: Option<Cond>,
    models: Vec<Candidate>,
    /// (type, fields, line)
    algorithm: Option<Card>,
    line: u64,
    /// The recipe it belongs to (none: the top-level profile).
    recipe: Option<String>,
}

/// One of their recipes (a named routing profile).
#[derive(Debug, Clone)]
struct Recipe {
    name: String,
    description: Option<String>,
    /// Its `ROUTING { strategy }`, with the line.
    strategy: Option<(String, u64)>,
    line: u64,
}

/// A signal as written: family, name, fields, line.
type Signal = (String, String, Fields, u64);

/// A model card: name, fields, line.
type Card = (String, Fields, u64);

/// A signal of ours: family, name, fields.
type Ours = (&'static str, String, Fields);

/// A test case: prompt, expected route, line.
type Case = (String, String, u64);

/// Everything read from a source, before conversion.
#[derive(Debug, Default)]
struct Source {
    /// (family as written, name, fields, line)
    signals: Vec<Signal>,
    routes: Vec<Route>,
    /// (name, fields, line)
    models: Vec<Card>,
    /// (model, endpoint URL, line)
    endpoints: Vec<(String, String, u64)>,
    /// (name, cases as (prompt, route, line))
    tests: Vec<(String, Vec<Case>)>,
    strategy: Option<(String, u64)>,
    default_model: Option<String>,
    /// Projections: (kind, name, fields, line).
    projections: Vec<projections::Written>,
    /// Their recipes other than `default`, in order.
    recipes: Vec<Recipe>,
    /// Entry points: (model names, recipe, line).
    entrypoints: Vec<(Vec<String>, String, u64)>,
    /// Their knowledge bases by name (`knowledge_bases`, `global.model_catalog.kbs`).
    knowledge_bases: BTreeMap<String, Node>,
}

/// Converts a vLLM Semantic Router policy (DSL or YAML) to this project's DSL.
pub fn import_vllm_sr(text: &str) -> Result<Imported, ConfigError> {
    import_vllm_sr_with_probes(text, None)
}

/// Converts a policy, with its probes (read by [`read_probes`]) as a `TEST` block, so
/// that `check --run-tests` shows at once which of their expectations hold.
pub fn import_vllm_sr_with_probes(
    text: &str,
    probes: Option<Probes>,
) -> Result<Imported, ConfigError> {
    let mut notes = Vec::new();
    let mut source = if looks_like_dsl(text) {
        read_dsl(text, &mut notes)?
    } else {
        read_yaml(text, &mut notes)?
    };
    if let Some(probes) = probes {
        notes.extend(probes.notes);
        source.tests.push((probes.name, probes.cases));
    }
    let tree = convert(source, &mut notes);
    let dsl = crate::dsl::print_tree(&tree)?;
    notes.sort_by_key(|n| n.line);
    Ok(Imported { dsl, notes })
}

const THEIR_STATEMENTS: [&str; 10] = [
    "SIGNAL",
    "ROUTE",
    "MODEL",
    "PLUGIN",
    "TEST",
    "PROJECTION",
    "DECISION_TREE",
    "ROUTING",
    "ENTRYPOINT",
    "RECIPE",
];

fn looks_like_dsl(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .and_then(|l| l.split_whitespace().next())
        .is_some_and(|w| THEIR_STATEMENTS.contains(&w))
}

fn error(line: u64, message: impl Into<String>) -> ConfigError {
    let mut d = Diagnostic::error(&serde_saphyr::Location::UNKNOWN, "", message);
    d.line = line;
    ConfigError::from(d)
}

fn note(
    notes: &mut Vec<ImportNote>,
    line: u64,
    construct: impl Into<String>,
    reason: impl Into<String>,
) {
    notes.push(ImportNote {
        line,
        construct: construct.into(),
        reason: reason.into(),
    });
}

// ---------------------------------------------------------------- their DSL

mod dsl_reader {
    use super::*;
    use crate::dsl::lex::Tok;
    use crate::dsl::parse::{Parser, SyntaxError};

    /// Their statements over the DSL's own token reader: values, names and blocks are
    /// written alike, so those are read by it.
    pub(super) struct Reader {
        p: Parser,
        /// Conditions open around the current token.
        depth: usize,
    }

    /// The deepest nesting of conditions read (deeper input is an error, not a stack
    /// overflow; values have the reader's own limit).
    const MAX_DEPTH: usize = 128;

    type R<T> = Result<T, ConfigError>;

    fn failed(e: SyntaxError) -> ConfigError {
        ConfigError::from(e.diagnostic())
    }

    impl Reader {
        pub(super) fn new(text: &str) -> R<Reader> {
            Ok(Reader {
                p: Parser::new(text, true).map_err(failed)?,
                depth: 0,
            })
        }

        pub(super) fn peek(&mut self) -> Option<&Tok> {
            self.p.peek().map(|(t, _)| t)
        }

        pub(super) fn line(&mut self) -> u64 {
            self.p.pos().line
        }

        pub(super) fn next(&mut self) -> Option<Tok> {
            self.p.next().map(|(t, _)| t)
        }

        pub(super) fn is(&mut self, p: &str) -> bool {
            self.p.is_punct(p)
        }

        pub(super) fn is_word(&mut self, w: &str) -> bool {
            self.p.is_word(w)
        }

        pub(super) fn eat(&mut self, p: &str) -> bool {
            self.p.eat_punct(p)
        }

        pub(super) fn expect(&mut self, p: &str) -> R<()> {
            self.p.expect_punct(p, "here").map(|_| ()).map_err(failed)
        }

        pub(super) fn name(&mut self) -> R<String> {
            let node = self.p.name("a name").map_err(failed)?;
            Ok(node.as_str().unwrap_or_default().to_owned())
        }

        /// `{ key: value … }`
        pub(super) fn fields(&mut self) -> R<Fields> {
            let block = self.p.block().map_err(failed)?;
            Ok(match block.value {
                Value::Map(entries) => entries,
                _ => Vec::new(),
            })
        }

        pub(super) fn value(&mut self) -> R<Node> {
            self.p.value().map_err(failed)
        }

        /// Reads with `read` one level deeper, refusing input nested past [`MAX_DEPTH`].
        fn nested<T>(&mut self, read: fn(&mut Self) -> R<T>) -> R<T> {
            if self.depth >= MAX_DEPTH {
                return Err(error(
                    self.line(),
                    format!("nested more than {MAX_DEPTH} levels deep"),
                ));
            }
            self.depth += 1;
            let result = read(self);
            self.depth -= 1;
            result
        }

        /// Skips a balanced `{ … }` (for constructs that are reported, not read).
        pub(super) fn skip_block(&mut self) -> R<()> {
            let line = self.line();
            self.expect("{")?;
            let mut depth = 1;
            while depth > 0 {
                match self.next() {
                    Some(Tok::Punct("{")) => depth += 1,
                    Some(Tok::Punct("}")) => depth -= 1,
                    Some(_) => {}
                    None => return Err(error(line, "this block is not closed")),
                }
            }
            Ok(())
        }

        pub(super) fn or_expr(&mut self) -> R<Cond> {
            self.joined("OR", Self::and_expr, Cond::Any)
        }

        fn and_expr(&mut self) -> R<Cond> {
            self.joined("AND", Self::factor, Cond::All)
        }

        /// Parts read by `part`, joined by `word` into `group` (one part alone is itself).
        fn joined(
            &mut self,
            word: &str,
            part: fn(&mut Self) -> R<Cond>,
            group: fn(Vec<Cond>) -> Cond,
        ) -> R<Cond> {
            let mut items = vec![part(self)?];
            while self.is_word(word) {
                self.next();
                items.push(part(self)?);
            }
            Ok(if items.len() == 1 {
                items.remove(0)
            } else {
                group(items)
            })
        }

        fn factor(&mut self) -> R<Cond> {
            self.nested(Self::plain_factor)
        }

        fn plain_factor(&mut self) -> R<Cond> {
            let line = self.line();
            if self.is_word("NOT") {
                self.next();
                return Ok(Cond::Not(Box::new(self.factor()?)));
            }
            if self.eat("(") {
                let inner = self.or_expr()?;
                self.expect(")")?;
                return Ok(inner);
            }
            let family = self.name()?;
            self.expect("(")?;
            let name = self.name()?;
            // Fields inside the reference are not part of a plain atom.
            let mut fields = false;
            while !self.eat(")") {
                if self.next().is_none() {
                    return Err(error(line, "this signal reference is not closed"));
                }
                fields = true;
            }
            Ok(Cond::Atom {
                family,
                name,
                fields,
                line,
            })
        }
    }
}

fn read_dsl(text: &str, notes: &mut Vec<ImportNote>) -> Result<Source, ConfigError> {
    let mut r = dsl_reader::Reader::new(text)?;
    let mut source = Source::default();
    let mut trees = 0i64;
    read_statements(&mut r, &mut source, notes, (None, &mut trees))?;
    Ok(source)
}

/// Reads statements into `source` until the end of the file, or, inside a recipe,
/// until the `}` that closes it; routes read inside a recipe belong to it.
fn read_statements(
    r: &mut dsl_reader::Reader,
    source: &mut Source,
    notes: &mut Vec<ImportNote>,
    (recipe, trees): (Option<&str>, &mut i64),
) -> Result<(), ConfigError> {
    use crate::dsl::lex::Tok;
    loop {
        if recipe.is_some() && r.eat("}") {
            return Ok(());
        }
        let Some(tok) = r.next() else {
            return match recipe {
                Some(name) => Err(error(
                    r.line(),
                    format!("RECIPE {name} is not closed: add `}}`"),
                )),
                None => Ok(()),
            };
        };
        let line = r.line();
        let Tok::Ident(word) = tok else {
            return Err(error(
                line,
                format!("expected a statement, found {}", tok.describe()),
            ));
        };
        let routes_before = source.routes.len();
        match word.as_str() {
            "SIGNAL" => {
                let family = r.name()?;
                let name = r.name()?;
                let fields = if r.is("{") { r.fields()? } else { Vec::new() };
                source.signals.push((family, name, fields, line));
            }
            "MODEL" => {
                let name = r.name()?;
                let fields = if r.is("{") { r.fields()? } else { Vec::new() };
                source.models.push((name, fields, line));
            }
            "ROUTE" => {
                let mut route = Route {
                    name: r.name()?,
                    line,
                    ..Route::default()
                };
                if r.eat("(") {
                    while !r.eat(")") {
                        let key = r.name()?;
                        r.expect("=")?;
                        let value = r.value()?;
                        match (key.as_str(), value.as_str()) {
                            ("description", Some(d)) => route.description = Some(d.to_owned()),
                            _ => note(
                                notes,
                                line,
                                format!("route {}: option `{key}`", route.name),
                                "no counterpart; dropped",
                            ),
                        }
                        r.eat(",");
                    }
                }
                route_body(r, &mut route, notes)?;
                source.routes.push(route);
            }
            "DECISION_TREE" => {
                let tree = r.name()?;
                r.expect("{")?;
                let base = 1_000_000 - *trees * 1_000;
                *trees += 1;
                let mut earlier: Vec<Cond> = Vec::new();
                let mut branch = 0i64;
                loop {
                    let at = r.line();
                    let condition = if r.is_word("IF") {
                        r.next();
                        Some(r.or_expr()?)
                    } else if r.is_word("ELSE") {
                        r.next();
                        if r.is_word("IF") {
                            r.next();
                            Some(r.or_expr()?)
                        } else {
                            None
                        }
                    } else {
                        return Err(error(at, "expected IF, ELSE IF or ELSE in DECISION_TREE"));
                    };
                    let mut route = Route {
                        name: format!("{tree}__branch_{:02}", branch + 1),
                        priority: base - branch,
                        line: at,
                        ..Route::default()
                    };
                    route_body(r, &mut route, notes)?;
                    let mut parts: Vec<Cond> = condition.iter().cloned().collect();
                    parts.extend(earlier.iter().map(|c| Cond::Not(Box::new(c.clone()))));
                    route.when = Some(match parts.len() {
                        1 => parts.remove(0),
                        _ => Cond::All(parts),
                    });
                    let last = condition.is_none();
                    if let Some(c) = condition {
                        earlier.push(c);
                    }
                    source.routes.push(route);
                    branch += 1;
                    if last {
                        break;
                    }
                }
                r.expect("}")?;
            }
            "TEST" => {
                let name = r.name()?;
                r.expect("{")?;
                let mut cases = Vec::new();
                while !r.eat("}") {
                    let at = r.line();
                    let prompt = match r.next() {
                        Some(Tok::Str(s)) => s,
                        _ => return Err(error(at, "expected a quoted query in TEST")),
                    };
                    r.expect("->")?;
                    cases.push((prompt, r.name()?, at));
                }
                source.tests.push((name, cases));
            }
            "ROUTING" => {
                for (key, value) in r.fields()? {
                    match (key.as_str(), value.as_str()) {
                        ("strategy", Some(s)) if recipe.is_some() => {
                            if let Some(own) = source
                                .recipes
                                .iter_mut()
                                .find(|x| Some(x.name.as_str()) == recipe)
                            {
                                own.strategy = Some((s.to_owned(), line));
                            }
                        }
                        ("strategy", Some(s)) => source.strategy = Some((s.to_owned(), line)),
                        _ => note(
                            notes,
                            line,
                            format!("ROUTING {key}"),
                            "no counterpart; dropped",
                        ),
                    }
                }
            }
            "PROJECTION" => {
                let kind = r.name()?;
                let name = r.name()?;
                let fields = if r.is("{") { r.fields()? } else { Vec::new() };
                source.projections.push((kind, name, fields, line));
            }
            "PLUGIN" => {
                let name = r.name()?;
                let kind = if r.is("{") { String::new() } else { r.name()? };
                r.skip_block()?;
                note(
                    notes,
                    line,
                    format!("PLUGIN {name} {kind}").trim_end().to_owned(),
                    "their plugins are not converted; dropped (write ours with PLUGIN: docs/plugins.md)",
                );
            }
            "ENTRYPOINT" => {
                // `ENTRYPOINT [name] { model_names: [...], recipe: "x" }`
                if !r.is("{") {
                    r.name()?;
                }
                let fields = r.fields()?;
                let get = |k: &str| fields.iter().find(|(key, _)| key == k).map(|(_, v)| v);
                let names = get("model_names").map(strings).unwrap_or_default();
                match get("recipe").and_then(Node::as_str) {
                    Some(target) if !names.is_empty() => {
                        source.entrypoints.push((names, target.to_owned(), line));
                    }
                    _ => note(
                        notes,
                        line,
                        "ENTRYPOINT",
                        "an entry point needs `model_names` and `recipe`; dropped",
                    ),
                }
            }
            "RECIPE" if recipe.is_some() => {
                return Err(error(line, "a RECIPE cannot hold another RECIPE"));
            }
            "RECIPE" => {
                let name = r.name()?;
                let mut description = None;
                if r.eat("(") {
                    while !r.eat(")") {
                        let key = r.name()?;
                        r.expect("=")?;
                        let value = r.value()?;
                        if key == "description" {
                            description = value.as_str().map(str::to_owned);
                        }
                        r.eat(",");
                    }
                }
                r.expect("{")?;
                // Their `default` recipe is the top-level profile.
                let own = (name != "default").then_some(name.as_str());
                if let Some(own) = own {
                    source.recipes.push(Recipe {
                        name: own.to_owned(),
                        description,
                        strategy: None,
                        line,
                    });
                }
                read_statements(r, source, notes, (own, &mut *trees))?;
            }
            other => {
                return Err(error(
                    line,
                    format!(
                        "unknown statement `{other}` (expected {})",
                        THEIR_STATEMENTS.join(", ")
                    ),
                ));
            }
        }
        if let Some(own) = recipe {
            for route in &mut source.routes[routes_before..] {
                route.recipe.get_or_insert_with(|| own.to_owned());
            }
        }
    }
}

fn route_body(
    r: &mut dsl_reader::Reader,
    route: &mut Route,
    notes: &mut Vec<ImportNote>,
) -> Result<(), ConfigError> {
    use crate::dsl::lex::Tok;
    r.expect("{")?;
    while !r.eat("}") {
        let line = r.line();
        let word = r.name()?;
        let what = |s: &str| format!("route {}: {s}", route.name);
        match word.as_str() {
            "PRIORITY" => {
                route.priority = match r.next() {
                    Some(Tok::Num(n, None)) => n
                        .parse()
                        .map_err(|_| error(line, "PRIORITY takes a whole number"))?,
                    _ => return Err(error(line, "PRIORITY takes a whole number")),
                };
            }
            "TIER" => {
                let tier = r.value()?;
                match &tier.value {
                    Value::Num(n) if n.parse::<u32>().is_ok() => route.tier = Some(n.clone()),
                    _ => note(
                        notes,
                        line,
                        what("TIER"),
                        "a tier is a whole number of 0 or more; dropped",
                    ),
                }
            }
            "NAME" => route.name = r.name()?,
            "DESCRIPTION" => route.description = Some(r.name()?),
            "WHEN" => route.when = Some(r.or_expr()?),
            "MODEL" => loop {
                let at = r.line();
                let model = r.name()?;
                let mut options = Vec::new();
                if r.eat("(") {
                    while !r.eat(")") {
                        let key = r.name()?;
                        r.expect("=")?;
                        options.push((key, r.value()?));
                        r.eat(",");
                    }
                }
                route.models.push(Candidate {
                    model,
                    options,
                    line: at,
                });
                if !r.eat(",") {
                    break;
                }
            },
            "ALGORITHM" => {
                let kind = r.name()?;
                let fields = if r.is("{") { r.fields()? } else { Vec::new() };
                route.algorithm = Some((kind, fields, line));
            }
            "PLUGIN" => {
                let name = r.name()?;
                if r.is("{") {
                    r.skip_block()?;
                }
                note(
                    notes,
                    line,
                    what(&format!("PLUGIN {name}")),
                    "their plugins are not converted; dropped (write ours with PLUGIN: docs/plugins.md)",
                );
            }
            "ACTION" => {
                let kind = r.name()?;
                let destination = r.name()?;
                note(
                    notes,
                    line,
                    what(&format!("ACTION {kind} {destination}")),
                    "actions have no counterpart; dropped",
                );
            }
            "EMIT" => {
                let kind = r.name()?;
                r.skip_block()?;
                note(
                    notes,
                    line,
                    what(&format!("EMIT {kind}")),
                    "KV retention hints are set per server (RETENTION), not per route; dropped",
                );
            }
            "FOR" => {
                while !r.is("{") && r.peek().is_some() {
                    r.next();
                }
                r.skip_block()?;
                note(
                    notes,
                    line,
                    what("FOR … IN"),
                    "candidate iteration has no counterpart; dropped",
                );
            }
            other => return Err(error(line, format!("unknown route statement `{other}`"))),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- their YAML

fn read_yaml(text: &str, notes: &mut Vec<ImportNote>) -> Result<Source, ConfigError> {
    let root: Node = serde_saphyr::from_str(text).map_err(|e| {
        let line = e.location().map_or(0, |l| l.line());
        error(
            line,
            format!(
                "not a vLLM Semantic Router DSL or YAML file: {}",
                e.without_snippet()
            ),
        )
    })?;
    let mut source = Source::default();
    let routing = root.get("routing").unwrap_or(&root);
    let recipes = root
        .get("recipes")
        .and_then(Node::items)
        .unwrap_or_default();
    if routing.get("signals").is_none() && routing.get("decisions").is_none() && recipes.is_empty()
    {
        return Err(error(
            0,
            "no `routing.signals`, `routing.decisions` or `recipes` found: is this a vLLM Semantic Router configuration?",
        ));
    }
    read_profile(routing, &mut source, notes, None);
    for recipe in recipes {
        let Some(name) = recipe.get("name").and_then(Node::as_str) else {
            note(
                notes,
                recipe.pos.line,
                "recipes[]",
                "a recipe without a name; dropped",
            );
            continue;
        };
        // Their `default` recipe is the top-level profile.
        let own = (name != "default").then_some(name);
        if let Some(own) = own {
            source.recipes.push(Recipe {
                name: own.to_owned(),
                description: recipe
                    .get("description")
                    .and_then(Node::as_str)
                    .map(str::to_owned),
                strategy: recipe
                    .get("routing")
                    .and_then(|r| r.get("strategy"))
                    .and_then(|n| n.as_str().map(|s| (s.to_owned(), n.pos.line))),
                line: recipe.pos.line,
            });
        }
        if let Some(profile) = recipe.get("routing") {
            read_profile(profile, &mut source, notes, own);
        }
    }
    for entrypoint in root
        .get("entrypoints")
        .and_then(Node::items)
        .unwrap_or_default()
    {
        let names = entrypoint
            .get("model_names")
            .map(strings)
            .unwrap_or_default();
        match entrypoint.get("recipe").and_then(Node::as_str) {
            Some(target) if !names.is_empty() => {
                source
                    .entrypoints
                    .push((names, target.to_owned(), entrypoint.pos.line));
            }
            _ => note(
                notes,
                entrypoint.pos.line,
                "entrypoints[]",
                "an entry point needs `model_names` and `recipe` (conditional `rules` have no counterpart); dropped",
            ),
        }
    }
    if let Some(strategy) = routing.get("strategy").and_then(Node::as_str) {
        source.strategy = Some((
            strategy.to_owned(),
            routing.get("strategy").map_or(0, |n| n.pos.line),
        ));
    }
    let global = root.get("global");
    for list in [
        root.get("knowledge_bases"),
        global.and_then(|g| g.get("knowledge_bases")),
        global
            .and_then(|g| g.get("model_catalog"))
            .and_then(|c| c.get("kbs")),
    ]
    .into_iter()
    .flatten()
    {
        for kb in list.items().unwrap_or_default() {
            if let Some(name) = kb.get("name").and_then(Node::as_str) {
                source.knowledge_bases.insert(name.to_owned(), kb.clone());
            }
        }
    }
    read_providers(&root, routing, &mut source);
    Ok(source)
}

/// A map item's `name` (empty when it has none) and its other fields; `None` for an
/// item that is not a map.
fn named(item: &Node) -> Option<(&str, Fields)> {
    let entries = item.entries()?;
    let name = item.get("name").and_then(Node::as_str).unwrap_or_default();
    let fields = entries
        .iter()
        .filter(|(k, _)| k != "name")
        .cloned()
        .collect();
    Some((name, fields))
}

/// One routing profile (the top-level `routing`, or a recipe's): its signals,
/// projections and decisions; decisions read inside a recipe belong to it.
fn read_profile(
    routing: &Node,
    source: &mut Source,
    notes: &mut Vec<ImportNote>,
    recipe: Option<&str>,
) {
    if let Some(signals) = routing.get("signals").and_then(Node::entries) {
        for (family, list) in signals {
            for item in list.items().unwrap_or_default() {
                let Some((name, fields)) = named(item) else {
                    continue;
                };
                source
                    .signals
                    .push((family.clone(), name.to_owned(), fields, item.pos.line));
            }
        }
    }
    if let Some(projections) = routing.get("projections").and_then(Node::entries) {
        for (kind, list) in projections {
            let singular = match kind.as_str() {
                "scores" => "score",
                "mappings" => "mapping",
                "partitions" => "partition",
                other => other,
            };
            for item in list.items().unwrap_or_default() {
                let (name, fields) = named(item).unwrap_or_default();
                let name = if name.is_empty() { "?" } else { name };
                source.projections.push((
                    singular.to_owned(),
                    name.to_owned(),
                    fields,
                    item.pos.line,
                ));
            }
        }
    }
    for decision in routing
        .get("decisions")
        .and_then(Node::items)
        .unwrap_or_default()
    {
        let line = decision.pos.line;
        let mut route = Route {
            name: decision
                .get("name")
                .and_then(Node::as_str)
                .unwrap_or("unnamed")
                .to_owned(),
            description: decision
                .get("description")
                .and_then(Node::as_str)
                .map(str::to_owned),
            priority: decision
                .get("priority")
                .and_then(|p| match &p.value {
                    Value::Num(n) => n.parse().ok(),
                    _ => None,
                })
                .unwrap_or(0),
            line,
            recipe: recipe.map(str::to_owned),
            ..Route::default()
        };
        route.when = decision.get("rules").map(|rules| yaml_rule(rules, notes));
        for m in decision
            .get("modelRefs")
            .and_then(Node::items)
            .unwrap_or_default()
        {
            let Some(model) = m.get("model").and_then(Node::as_str) else {
                continue;
            };
            let options = m
                .entries()
                .unwrap_or_default()
                .iter()
                .filter(|(k, _)| k != "model")
                .map(|(k, v)| {
                    let key = match k.as_str() {
                        "use_reasoning" => "reasoning",
                        "reasoning_effort" => "effort",
                        "lora_name" => "lora",
                        other => other,
                    };
                    (key.to_owned(), v.clone())
                })
                .collect();
            route.models.push(Candidate {
                model: model.to_owned(),
                options,
                line: m.pos.line,
            });
        }
        if let Some(algorithm) = decision.get("algorithm") {
            let kind = algorithm
                .get("type")
                .and_then(Node::as_str)
                .unwrap_or("static")
                .to_owned();
            let fields = algorithm
                .get(&kind)
                .and_then(Node::entries)
                .map(<[_]>::to_vec)
                .unwrap_or_default();
            route.algorithm = Some((kind, fields, algorithm.pos.line));
        }
        for plugin in decision
            .get("plugins")
            .and_then(Node::items)
            .unwrap_or_default()
        {
            let kind = plugin.get("type").and_then(Node::as_str).unwrap_or("?");
            note(
                notes,
                plugin.pos.line,
                format!("decision {}: plugin {kind}", route.name),
                "their plugins are not converted; dropped (write ours with PLUGIN: docs/plugins.md)",
            );
        }
        if let Some(tier) = decision.get("tier") {
            match &tier.value {
                Value::Num(n) if n.parse::<u32>().is_ok() => route.tier = Some(n.clone()),
                _ => note(
                    notes,
                    tier.pos.line,
                    format!("decision {}: tier", route.name),
                    "a tier is a whole number of 0 or more; dropped",
                ),
            }
        }
        source.routes.push(route);
    }
}

/// Models, endpoints and the default model: `providers` and `routing.modelCards`.
fn read_providers(root: &Node, routing: &Node, source: &mut Source) {
    let providers = root.get("providers");
    for model in providers
        .and_then(|p| p.get("models"))
        .and_then(Node::items)
        .unwrap_or_default()
    {
        let Some(name) = model.get("name").and_then(Node::as_str) else {
            continue;
        };
        let mut fields: Fields = Vec::new();
        if let Some(upstream) = model.get("provider_model_id") {
            fields.push(("upstream_name".to_owned(), upstream.clone()));
        }
        if let Some(pricing) = model.get("pricing") {
            fields.push(("pricing".to_owned(), pricing.clone()));
        }
        for backend in model
            .get("backend_refs")
            .and_then(Node::items)
            .unwrap_or_default()
        {
            if let Some(endpoint) = backend.get("endpoint").and_then(Node::as_str) {
                source
                    .endpoints
                    .push((name.to_owned(), endpoint.to_owned(), backend.pos.line));
            }
        }
        source
            .models
            .push((name.to_owned(), fields, model.pos.line));
    }
    for card in routing
        .get("modelCards")
        .and_then(Node::items)
        .unwrap_or_default()
    {
        if let Some((name, fields)) = named(card).filter(|(n, _)| !n.is_empty()) {
            source.models.push((name.to_owned(), fields, card.pos.line));
        }
    }
    source.default_model = providers
        .and_then(|p| p.get("defaults"))
        .and_then(|d| d.get("default_model"))
        .or_else(|| root.get("default_model"))
        .and_then(Node::as_str)
        .map(str::to_owned);
}

fn yaml_rule(node: &Node, notes: &mut Vec<ImportNote>) -> Cond {
    if let (Some(family), Some(name)) = (
        node.get("type").and_then(Node::as_str),
        node.get("name").and_then(Node::as_str),
    ) {
        return Cond::Atom {
            family: family.to_owned(),
            name: name.to_owned(),
            fields: false,
            line: node.pos.line,
        };
    }
    let operator = node
        .get("operator")
        .and_then(Node::as_str)
        .unwrap_or("AND")
        .to_ascii_uppercase();
    let parts: Vec<Cond> = node
        .get("conditions")
        .and_then(Node::items)
        .unwrap_or_default()
        .iter()
        .map(|c| yaml_rule(c, notes))
        .collect();
    match operator.as_str() {
        "OR" => Cond::Any(parts),
        "NOT" => match parts.len() {
            1 => Cond::Not(Box::new(
                parts.into_iter().next().unwrap_or(Cond::All(Vec::new())),
            )),
            // Their NOT is unary: over none or several conditions it never matches.
            n => {
                note(
                    notes,
                    node.pos.line,
                    format!("rule NOT over {n} conditions"),
                    "translated as never holding, as their engine evaluates it (NOT takes exactly one condition); `check` reports a route it makes dead",
                );
                Cond::Any(Vec::new())
            }
        },
        "AND" => Cond::All(parts),
        other => {
            note(
                notes,
                node.pos.line,
                format!("rule operator {other}"),
                "read as AND",
            );
            Cond::All(parts)
        }
    }
}

// ---------------------------------------------------------------- conversion

/// Their family names (DSL singular, YAML plural) → ours.
fn family(theirs: &str) -> Option<&'static str> {
    Some(match theirs {
        "keyword" | "keywords" => "keyword",
        "embedding" | "embeddings" => "embedding",
        "domain" | "domains" | "categories" => "domain",
        "fact_check" | "fact_checks" => "fact_check",
        "user_feedback" | "user_feedbacks" => "user_feedback",
        "preference" | "preferences" => "preference",
        "language" | "languages" => "language",
        "context" | "contexts" => "context",
        "conversation" | "conversations" | "structure" | "structures" => "structure",
        "complexity" => "complexity",
        "reask" | "reasks" => "reask",
        "jailbreak" | "jailbreaks" => "jailbreak",
        "pii" => "pii",
        "authz" | "role_bindings" => "authz",
        "kb" => "kb",
        _ => return None,
    })
}

/// Their conversation feature (`{source: {type, role}, type: count | exists}`) as our
/// structure feature.
fn conversation_feature(feature: &Node) -> Option<&'static str> {
    let source = feature.get("source")?;
    let role = source.get("role").and_then(Node::as_str);
    match feature.get("type").and_then(Node::as_str) {
        Some("count" | "exists") | None => {}
        Some(_) => return None,
    }
    Some(match (source.get("type").and_then(Node::as_str)?, role) {
        ("message", None) => "messages",
        ("message", Some("user")) => "user_turns",
        ("message", Some("non_user")) => "non_user_turns",
        ("message", Some("assistant")) => "assistant_turns",
        ("message", Some("system" | "developer")) => "system_turns",
        ("message", Some("tool")) => "tool_results",
        ("tool_definition", _) => "tools_defined",
        ("assistant_tool_call", _) => "tool_calls",
        ("assistant_tool_cycle", _) => "tool_cycles",
        ("active_tool_loop", _) => "active_tool_loop",
        ("image_content", _) => "images",
        _ => return None,
    })
}

/// Their text structure feature as our fields: `{source: {type: regex, pattern}, type:
/// exists | count}`, `{source: {type: sequence, sequences}}`, `{source: {type:
/// keyword_set, keywords}, type: density}`.
fn text_feature(feature: &Node) -> Option<Fields> {
    let source = feature.get("source")?;
    let kind = feature.get("type").and_then(Node::as_str);
    Some(match (source.get("type").and_then(Node::as_str)?, kind) {
        ("regex", Some("exists" | "count") | None) => vec![
            ("feature".to_owned(), s("regex_matches")),
            ("pattern".to_owned(), source.get("pattern")?.clone()),
        ],
        ("sequence", Some("sequence") | None) => vec![
            ("feature".to_owned(), s("sequence")),
            ("sequences".to_owned(), source.get("sequences")?.clone()),
        ],
        ("keyword_set", Some("density")) => vec![
            ("feature".to_owned(), s("keyword_density")),
            ("keywords".to_owned(), source.get("keywords")?.clone()),
        ],
        _ => return None,
    })
}

/// A number as a node, written as a whole number when it is one.
fn number_node(value: f64) -> Node {
    Node::new(Value::Num(if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        value.to_string()
    }))
}

/// Their predicate (`gte`, `gt`, `lte`, `lt`, together or alone) as our half-open
/// `[min, max)`: over whole numbers for counts, else over reals (a strict bound taken
/// as the next float).
fn range_of(predicate: &Node, whole: bool) -> Option<(f64, Option<f64>)> {
    let bound = |key: &str| -> Option<Option<f64>> {
        match predicate.get(key).map(|n| &n.value) {
            None => Some(None),
            Some(Value::Num(n)) => n
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map(Some),
            Some(_) => None,
        }
    };
    let above = |v: f64| if whole { v.floor() + 1.0 } else { v.next_up() };
    let mut min = 0.0f64;
    let mut max: Option<f64> = None;
    let mut cap = |m: f64| max = Some(max.map_or(m, |old: f64| old.min(m)));
    if let Some(v) = bound("gte")? {
        min = min.max(if whole { v.ceil() } else { v });
    }
    if let Some(v) = bound("gt")? {
        min = min.max(above(v));
    }
    if let Some(v) = bound("lte")? {
        cap(above(v));
    }
    if let Some(v) = bound("lt")? {
        cap(if whole { v.ceil() } else { v });
    }
    predicate
        .entries()?
        .iter()
        .all(|(k, _)| matches!(k.as_str(), "gte" | "gt" | "lte" | "lt"))
        .then_some((min, max))
}

/// ISO 639-1 → 639-3 for the languages the detector knows.
fn language_code(code: &str) -> Option<&'static str> {
    Some(match code {
        "en" => "eng",
        "es" => "spa",
        "fr" => "fra",
        "de" => "deu",
        "it" => "ita",
        "pt" => "por",
        "nl" => "nld",
        "ru" => "rus",
        "zh" => "cmn",
        "ja" => "jpn",
        "ko" => "kor",
        "ar" => "ara",
        _ => return None,
    })
}

fn pii_kind(theirs: &str) -> Option<&'static str> {
    Some(match theirs.to_ascii_uppercase().as_str() {
        "EMAIL_ADDRESS" | "EMAIL" => "email",
        "PHONE_NUMBER" | "PHONE" => "phone",
        "CREDIT_CARD" => "credit_card",
        "IBAN_CODE" | "IBAN" => "iban",
        "US_SSN" | "SSN" => "ssn",
        "IP_ADDRESS" => "ip_address",
        "API_KEY" | "SECRET" => "api_key",
        _ => return None,
    })
}

fn s(text: &str) -> Node {
    Node::new(Value::Str(text.to_owned()))
}

fn list(items: Vec<Node>) -> Node {
    Node::new(Value::List(items))
}

fn strings(node: &Node) -> Vec<String> {
    node.items()
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect()
}

/// One of their signals as ours: (our family, our fields), or why not.
fn signal(
    (family_name, name, fields, line): (&str, &str, &[(String, Node)], u64),
    (levels, knowledge_bases): (&BTreeSet<String>, &BTreeMap<String, Node>),
    notes: &mut Vec<ImportNote>,
) -> Vec<Ours> {
    if family_name == "kb" {
        return kb_signal((name, fields, line), knowledge_bases, notes)
            .into_iter()
            .collect();
    }
    let Some(ours) = family(family_name) else {
        note(
            notes,
            line,
            format!("signal {family_name} {name}"),
            format!(
                "the `{family_name}` family has no counterpart that reads requests the same way; routes reading it are left out"
            ),
        );
        return Vec::new();
    };
    let mut out: Fields = Vec::new();
    let mut dropped = Vec::new();
    let field = |k: &str| fields.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    for (key, value) in fields {
        let kept = match (ours, key.as_str()) {
            (_, "description") => true,
            ("keyword", "keywords") => {
                let regex = field("method").and_then(Node::as_str) == Some("regex");
                out.push((
                    if regex { "regexes" } else { "keywords" }.to_owned(),
                    value.clone(),
                ));
                true
            }
            ("keyword", "operator") => {
                let op = match value.as_str().map(str::to_ascii_uppercase).as_deref() {
                    Some("AND" | "ALL") => Some("all"),
                    Some("OR" | "ANY") => Some("any"),
                    Some("NOR" | "NONE") => Some("none"),
                    _ => None,
                };
                if let Some(op) = op {
                    out.push(("operator".to_owned(), s(op)));
                }
                op.is_some()
            }
            ("keyword", "case_sensitive") => {
                out.push((key.clone(), value.clone()));
                true
            }
            ("keyword", "method") => match value.as_str() {
                Some("bm25") => {
                    out.push(("scoring".to_owned(), s("bm25")));
                    true
                }
                Some("regex") => true,
                _ => false,
            },
            ("keyword", "bm25_threshold") => {
                out.push((
                    "bm25".to_owned(),
                    Node::new(Value::Map(vec![("threshold".to_owned(), value.clone())])),
                ));
                true
            }
            ("keyword", "fuzzy_match") => true,
            ("keyword", "fuzzy_threshold") => {
                if field("fuzzy_match").is_some_and(|v| matches!(v.value, Value::Bool(true))) {
                    out.push(("fuzzy".to_owned(), value.clone()));
                }
                true
            }
            ("embedding", "candidates") => {
                out.push(("exemplars".to_owned(), value.clone()));
                true
            }
            // Similarity thresholds: the same quantity, from another embedding model.
            ("embedding" | "fact_check" | "preference", "threshold") => {
                out.push((key.clone(), value.clone()));
                note(
                    notes,
                    line,
                    format!("signal {family_name} {name}: threshold"),
                    "kept, but flagged: it is a cosine similarity tuned for their embedding model, and here similarities come from signals.model (all-MiniLM-L6-v2 by default); recalibrate it on your prompts (`switchyard route` shows each similarity)",
                );
                true
            }
            // Their contrastive jailbreak threshold is a margin, as ours is; their
            // classifier's is a probability, which has no counterpart here.
            ("jailbreak", "threshold")
                if field("method").and_then(Node::as_str) == Some("contrastive") =>
            {
                out.push((key.clone(), value.clone()));
                note(
                    notes,
                    line,
                    format!("signal jailbreak {name}: threshold"),
                    "kept: a contrastive margin here too, but flagged: the margins come from signals.model; recalibrate on your prompts",
                );
                true
            }
            ("jailbreak", "threshold") => {
                note(
                    notes,
                    line,
                    format!("signal jailbreak {name}: threshold"),
                    "not copied: theirs is a classifier probability, ours a contrastive margin (default 0.1); the default is used",
                );
                true
            }
            ("jailbreak", "method") => matches!(value.as_str(), Some("contrastive" | "classifier")),
            ("jailbreak", "jailbreak_patterns") => {
                out.push(("attacks".to_owned(), value.clone()));
                true
            }
            ("jailbreak", "benign_patterns") => {
                out.push(("benign".to_owned(), value.clone()));
                true
            }
            ("jailbreak", "include_history") => {
                out.push((key.clone(), value.clone()));
                true
            }
            ("domain", "threshold") => {
                out.push((key.clone(), value.clone()));
                note(
                    notes,
                    line,
                    format!("signal domain {name}: threshold"),
                    "kept as the least probability of its categories, but flagged: probabilities here come from the domain head over signals.model, not their classifier; recalibrate, or remove it to let the top category decide",
                );
                true
            }
            ("embedding", "aggregation_method") => match value.as_str() {
                Some(m @ ("max" | "mean")) => {
                    out.push(("aggregate".to_owned(), s(m)));
                    true
                }
                _ => false,
            },
            ("domain", "mmlu_categories") => {
                let categories: Vec<Node> = strings(value)
                    .iter()
                    .map(|c| s(&c.replace(' ', "_")))
                    .collect();
                out.push(("categories".to_owned(), list(categories)));
                true
            }
            ("context", "min_tokens" | "max_tokens") => {
                out.push((key.trim_end_matches("_tokens").to_owned(), value.clone()));
                true
            }
            ("pii", "pii_types_allowed") => {
                let kinds: Vec<Node> = strings(value)
                    .iter()
                    .filter_map(|k| pii_kind(k))
                    .map(s)
                    .collect();
                out.push(("allow".to_owned(), list(kinds)));
                true
            }
            ("pii", "threshold") => {
                out.push(("min_score".to_owned(), value.clone()));
                note(
                    notes,
                    line,
                    format!("signal pii {name}: threshold"),
                    "translated to min_score, the least score of a finding; flagged: scores here come from validated patterns (a checksum-valid card scores higher than a bare digit run), not a token classifier",
                );
                true
            }
            ("preference", "examples") => {
                out.push(("prefer".to_owned(), value.clone()));
                true
            }
            ("authz", "role") => {
                out.push(("roles".to_owned(), list(vec![value.clone()])));
                true
            }
            ("complexity", "hard" | "easy") => {
                let candidates = value
                    .get("candidates")
                    .cloned()
                    .unwrap_or_else(|| value.clone());
                out.push((key.clone(), candidates));
                true
            }
            ("complexity", "threshold") => {
                note(
                    notes,
                    line,
                    format!("signal complexity {name}: threshold"),
                    "not copied: theirs is a margin between their hard and easy exemplars; ours places a difficulty score (exemplar contrast and text cues) in fixed levels (easy < 0.4 ≤ medium < 0.6 ≤ hard)",
                );
                true
            }
            ("reask", "threshold") => {
                out.push((key.clone(), value.clone()));
                true
            }
            ("reask", "lookback_turns") => {
                out.push(("lookback".to_owned(), value.clone()));
                true
            }
            ("structure", "feature") if family_name.starts_with("conversation") => {
                match conversation_feature(value) {
                    Some(feature) => {
                        out.push(("feature".to_owned(), s(feature)));
                        true
                    }
                    None => false,
                }
            }
            ("structure", "feature") => match text_feature(value) {
                Some(fields) => {
                    out.extend(fields);
                    true
                }
                None => false,
            },
            ("structure", "predicate") => {
                // Counts are whole numbers; a density is not.
                let density = field("feature")
                    .and_then(|f| f.get("type"))
                    .and_then(Node::as_str)
                    == Some("density");
                match range_of(value, !density) {
                    Some((min, max)) => {
                        out.retain(|(k, _)| k != "min" && k != "max");
                        out.push(("min".to_owned(), number_node(min)));
                        if let Some(max) = max {
                            out.push(("max".to_owned(), number_node(max)));
                        }
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        };
        if !kept {
            dropped.push((key.clone(), value.pos.line));
        }
    }
    if let Some((_, at)) = dropped.first() {
        let keys: Vec<&str> = dropped.iter().map(|(k, _)| k.as_str()).collect();
        note(
            notes,
            if *at > 0 { *at } else { line },
            format!("signal {family_name} {name}"),
            format!("field(s) {} have no counterpart; dropped", keys.join(", ")),
        );
    }
    match ours {
        // Theirs compares the turns' embeddings: ours with `method: semantic`.
        "reask" => out.push(("method".to_owned(), s("semantic"))),
        // Their category names are MMLU's, with spaces (`computer science`); the head's
        // are written with underscores. A signal without a category list stands for the
        // category of its name.
        "domain" if !out.iter().any(|(k, _)| k == "categories") => {
            let category = name.trim().to_lowercase().replace(' ', "_");
            if category != name {
                out.push(("categories".to_owned(), list(vec![s(&category)])));
            }
        }
        "language" => match language_code(name) {
            Some(code) => out.push(("languages".to_owned(), list(vec![s(code)]))),
            None => {
                note(
                    notes,
                    line,
                    format!("signal language {name}"),
                    "not a language the detector knows; left out",
                );
                return Vec::new();
            }
        },
        "user_feedback" => {
            let complaint = match name {
                "wrong_answer" => "wrong",
                "need_clarification" => "unclear",
                "want_different" => "not_wanted",
                _ => {
                    note(
                        notes,
                        line,
                        format!("signal user_feedback {name}"),
                        "only wrong_answer, need_clarification and want_different have counterparts; left out",
                    );
                    return Vec::new();
                }
            };
            out.push(("complaints".to_owned(), list(vec![s(complaint)])));
        }
        "complexity" => {
            // One of ours per level that routes read (`name:level`).
            return ["easy", "medium", "hard"]
                .into_iter()
                .filter(|level| levels.contains(&format!("{name}:{level}")))
                .map(|level| {
                    let mut fields = out.clone();
                    fields.push(("level".to_owned(), s(level)));
                    ("complexity", format!("{name}_{level}"), fields)
                })
                .collect();
        }
        _ => {}
    }
    out.retain(|(k, _)| k != "description");
    vec![(ours, name.to_owned(), out)]
}

fn convert(source: Source, notes: &mut Vec<ImportNote>) -> Node {
    let mut root: Fields = Vec::new();
    // Their tiers: once a matching route has a tier, routes without one count as tier
    // 0 (so they come first), and within a tier the more confident match wins before
    // priority: the `tiered` strategy.
    let first_tier = source
        .routes
        .iter()
        .find(|r| r.tier.is_some() && r.recipe.is_none())
        .map(|r| r.line);
    if let Some(line) = first_tier {
        note(
            notes,
            line,
            "TIER",
            "translated: the `tiered` strategy ranks as theirs do (once a tiered route \
             matches, routes without a tier count as tier 0, and within a tier the more \
             confident match wins before priority; with no tiered match, priority decides)",
        );
        root.push((
            "decision".to_owned(),
            Node::new(Value::Map(vec![("strategy".to_owned(), s("tiered"))])),
        ));
    }
    if let Some((strategy, line)) = &source.strategy {
        match strategy.as_str() {
            _ if first_tier.is_some() => {}
            "priority" | "confidence" => root.push((
                "decision".to_owned(),
                Node::new(Value::Map(vec![("strategy".to_owned(), s(strategy))])),
            )),
            other => note(
                notes,
                *line,
                format!("strategy {other}"),
                "only priority and confidence have counterparts; priority is used",
            ),
        }
    }

    // Signals.
    let mut families: BTreeMap<&'static str, Vec<Node>> = BTreeMap::new();
    let mut known: BTreeSet<(String, String)> = BTreeSet::new();
    let mut levels = BTreeSet::new();
    for route in &source.routes {
        if let Some(c) = &route.when {
            complexity_levels(c, &mut levels);
        }
    }
    projections::complexity_levels(&source.projections, &mut levels);
    // Their signal registry is one namespace across recipes: a signal written again
    // the same way is one signal.
    let mut written: BTreeMap<(&str, &str), &Fields> = BTreeMap::new();
    for (family_name, name, fields, line) in &source.signals {
        match written.get(&(family_name.as_str(), name.as_str())) {
            Some(first) if *first == fields => continue,
            Some(_) => {
                note(
                    notes,
                    *line,
                    format!("signal {family_name} {name}"),
                    "defined again with other fields (their registry is global); the first definition is kept",
                );
                continue;
            }
            None => {
                written.insert((family_name, name), fields);
            }
        }
        for (ours, our_name, fields) in signal(
            (family_name, name, fields, *line),
            (&levels, &source.knowledge_bases),
            notes,
        ) {
            known.insert((ours.to_owned(), our_name.clone()));
            let mut entries = vec![("name".to_owned(), s(&our_name))];
            entries.extend(fields);
            families
                .entry(ours)
                .or_default()
                .push(Node::new(Value::Map(entries)));
        }
    }

    let derived = projections::convert(
        (&source.projections, &source.knowledge_bases),
        &mut known,
        &mut families,
        notes,
    );

    // Routes.
    let mut routes: Vec<Node> = Vec::new();
    let mut route_names: BTreeSet<String> = BTreeSet::new();
    let mut kept_models: Vec<String> = Vec::new();
    for route in &source.routes {
        let when = match &route.when {
            Some(c) => match condition(c, (&known, &derived), notes, &route.name) {
                Some(node) => node,
                None => {
                    note(
                        notes,
                        route.line,
                        format!("route {}", route.name),
                        "left out: its condition reads a signal that did not convert",
                    );
                    continue;
                }
            },
            None => Node::new(Value::Map(vec![("all".to_owned(), list(Vec::new()))])),
        };
        if route.models.is_empty() {
            note(
                notes,
                route.line,
                format!("route {}", route.name),
                "left out: it names no model",
            );
            continue;
        }
        route_names.insert(route.name.clone());
        kept_models.extend(route.models.iter().map(|c| c.model.clone()));
        let mut entries = vec![("name".to_owned(), s(&route.name))];
        if let Some(d) = &route.description {
            entries.push(("description".to_owned(), s(d)));
        }
        entries.push((
            "priority".to_owned(),
            Node::new(Value::Num(route.priority.to_string())),
        ));
        if let Some(tier) = &route.tier {
            entries.push(("tier".to_owned(), Node::new(Value::Num(tier.clone()))));
        }
        entries.push(("when".to_owned(), when));
        if let Some(recipe) = &route.recipe {
            entries.push(("recipe".to_owned(), s(recipe)));
        }
        let candidates = route
            .models
            .iter()
            .map(|c| candidate(c, &route.name, notes))
            .collect();
        entries.push(("models".to_owned(), list(candidates)));
        if let Some((kind, fields, at)) = &route.algorithm {
            match kind.as_str() {
                "static" => {}
                "latency" | "latency_aware" => entries.push(("algorithm".to_owned(), s("latency"))),
                "multi_factor" => {
                    entries.push((
                        "algorithm".to_owned(),
                        multi_factor(fields, &route.name, *at, notes),
                    ));
                }
                other => note(
                    notes,
                    *at,
                    format!("route {}: ALGORITHM {other}", route.name),
                    "no counterpart; static (the first candidate that fits) is used",
                ),
            }
            if kind == "latency_aware" && !fields.is_empty() {
                note(
                    notes,
                    *at,
                    format!("route {}: ALGORITHM latency_aware fields", route.name),
                    "dropped; latency compares the observed p90 TTFT",
                );
            }
        }
        routes.push(Node::new(Value::Map(entries)));
    }
    // Models and pools.
    let mut models: Vec<Node> = Vec::new();
    let mut model_names: BTreeSet<String> = BTreeSet::new();
    // Context windows given on model cards, for the pools of their endpoints.
    let mut windows: BTreeMap<String, String> = BTreeMap::new();
    // A model described twice (a provider entry and a card) is one model: its fields
    // are merged, the first mention of a field kept.
    let mut merged: Vec<Card> = Vec::new();
    for (name, fields, line) in &source.models {
        match merged.iter_mut().find(|(n, _, _)| n == name) {
            Some((_, known, _)) => {
                for (k, v) in fields {
                    if !known.iter().any(|(x, _)| x == k) {
                        known.push((k.clone(), v.clone()));
                    }
                }
            }
            None => merged.push((name.clone(), fields.clone(), *line)),
        }
    }
    for (name, fields, line) in &merged {
        model_names.insert(name.clone());
        let mut entries = vec![("name".to_owned(), s(name))];
        let mut dropped = Vec::new();
        for (key, value) in fields {
            match key.as_str() {
                "description" | "upstream_name" => entries.push((key.clone(), value.clone())),
                "quality_score" => entries.push(("quality".to_owned(), value.clone())),
                "tags" => entries.push((key.clone(), value.clone())),
                "context_window_size" => match &value.value {
                    Value::Num(n) if n.parse::<u32>().is_ok() => {
                        windows.insert(name.clone(), n.clone());
                    }
                    _ => dropped.push(key.clone()),
                },
                "pricing" => {
                    let number = |k: &str| value.get(k).cloned();
                    let input = number("prompt_per_1m").or_else(|| number("prompt"));
                    let output = number("completion_per_1m").or_else(|| number("completion"));
                    match (input, output) {
                        (Some(i), Some(o)) => entries.push((
                            "price".to_owned(),
                            Node::new(Value::Map(vec![
                                ("input".to_owned(), i),
                                ("output".to_owned(), o),
                            ])),
                        )),
                        _ => dropped.push("pricing".to_owned()),
                    }
                }
                other => dropped.push(other.to_owned()),
            }
        }
        if !dropped.is_empty() {
            let at = fields
                .iter()
                .find(|(k, _)| dropped.contains(k))
                .map_or(
                    *line,
                    |(_, v)| if v.pos.line > 0 { v.pos.line } else { *line },
                );
            note(
                notes,
                at,
                format!("MODEL {name}"),
                format!(
                    "field(s) {} have no counterpart; dropped",
                    dropped.join(", ")
                ),
            );
        }
        models.push(Node::new(Value::Map(entries)));
    }
    let mut referenced: Vec<String> = kept_models;
    if let Some(default) = &source.default_model {
        referenced.push(default.clone());
    }
    for name in &referenced {
        if model_names.insert(name.clone()) {
            models.push(Node::new(Value::Map(vec![("name".to_owned(), s(name))])));
        }
    }
    let mut pools: Vec<Node> = Vec::new();
    let mut guessed = false;
    for (i, (model, url, _)) in source.endpoints.iter().enumerate() {
        let window = match windows.get(model) {
            Some(n) => Node::new(Value::Num(n.clone())),
            None => {
                guessed = true;
                s("32K")
            }
        };
        let url = if url.starts_with("http://") || url.starts_with("https://") {
            url.clone()
        } else {
            format!("http://{url}")
        };
        pools.push(Node::new(Value::Map(vec![
            ("name".to_owned(), s(&format!("{model}-{}", i + 1))),
            ("model".to_owned(), s(model)),
            ("context_window".to_owned(), window),
            (
                "endpoints".to_owned(),
                list(vec![Node::new(Value::Map(vec![(
                    "url".to_owned(),
                    s(&url),
                )]))]),
            ),
        ])));
    }
    if guessed {
        note(
            notes,
            source.endpoints[0].2,
            "pools",
            "a model's context window is not in the source (context_window_size): its pools are given 32K; set the real one",
        );
    }
    let served: BTreeSet<&str> = source
        .endpoints
        .iter()
        .map(|(m, _, _)| m.as_str())
        .collect();
    for name in &model_names {
        if !served.contains(name.as_str()) {
            note(
                notes,
                0,
                format!("model {name}"),
                "no endpoint in the source: add a POOL for it before serving",
            );
        }
    }
    root.push(("models".to_owned(), list(models)));
    root.push(("pools".to_owned(), list(pools)));

    let mut signals: Fields = Vec::new();
    for (family, items) in families {
        signals.push((family.to_owned(), list(items)));
    }
    if !signals.is_empty() {
        root.push(("signals".to_owned(), Node::new(Value::Map(signals))));
    }
    if !routes.is_empty() {
        root.push(("routes".to_owned(), list(routes)));
    }
    if let Some(default) = &source.default_model {
        root.push((
            "default_route".to_owned(),
            Node::new(Value::Map(vec![(
                "models".to_owned(),
                list(vec![s(default)]),
            )])),
        ));
        route_names.insert("default".to_owned());
    }
    let (recipes, main_aliases) = recipes(&source, notes);
    if !recipes.is_empty() {
        root.push(("recipes".to_owned(), list(recipes)));
    }
    if !main_aliases.is_empty() {
        let mut aliases = vec![s("auto")];
        aliases.extend(main_aliases.iter().map(|a| s(a)));
        root.push((
            "server".to_owned(),
            Node::new(Value::Map(vec![(
                "route_aliases".to_owned(),
                list(aliases),
            )])),
        ));
    }
    let mut tests = Vec::new();
    for (name, cases) in &source.tests {
        let kept: Vec<Node> = cases
            .iter()
            .filter(|(_, route, line)| {
                let known = route_names.contains(route);
                if !known {
                    note(
                        notes,
                        *line,
                        format!("TEST {name}: -> {route}"),
                        "the route did not convert; case left out",
                    );
                }
                known
            })
            .map(|(prompt, route, _)| {
                Node::new(Value::Map(vec![
                    ("prompt".to_owned(), s(prompt)),
                    ("route".to_owned(), s(route)),
                ]))
            })
            .collect();
        if !kept.is_empty() {
            tests.push(Node::new(Value::Map(vec![
                ("name".to_owned(), s(name)),
                ("cases".to_owned(), list(kept)),
            ])));
        }
    }
    if !tests.is_empty() {
        root.push(("tests".to_owned(), list(tests)));
    }
    Node::new(Value::Map(root))
}

/// Their recipes as ours: aliases from the entry points that name them (or, with a
/// note, the recipe's own name), the `tiered` strategy when a route of theirs has a
/// tier, else their strategy. Also the model names entry points give the top-level
/// profile (`default`), which become routing aliases of the main scope.
fn recipes(source: &Source, notes: &mut Vec<ImportNote>) -> (Vec<Node>, Vec<String>) {
    let mut main_aliases = Vec::new();
    for (names, target, line) in &source.entrypoints {
        if target == "default" {
            main_aliases.extend(names.iter().filter(|n| *n != "auto").cloned());
        } else if !source.recipes.iter().any(|r| &r.name == target) {
            note(
                notes,
                *line,
                format!("entry point -> {target}"),
                "names no recipe of the source; dropped",
            );
        }
    }
    let mut out = Vec::new();
    for recipe in &source.recipes {
        let mut aliases: Vec<String> = source
            .entrypoints
            .iter()
            .filter(|(_, target, _)| *target == recipe.name)
            .flat_map(|(names, _, _)| names.iter().cloned())
            .collect();
        if aliases.is_empty() {
            note(
                notes,
                recipe.line,
                format!("RECIPE {}", recipe.name),
                "no entry point names it: requests pick it by its own name as the model",
            );
            aliases.push(recipe.name.clone());
        }
        let mut entries = vec![("name".to_owned(), s(&recipe.name))];
        if let Some(d) = &recipe.description {
            entries.push(("description".to_owned(), s(d)));
        }
        entries.push((
            "aliases".to_owned(),
            list(aliases.iter().map(|a| s(a)).collect()),
        ));
        let tiered = source
            .routes
            .iter()
            .any(|r| r.tier.is_some() && r.recipe.as_deref() == Some(recipe.name.as_str()));
        let strategy = if tiered {
            Some("tiered")
        } else {
            match recipe
                .strategy
                .as_ref()
                .map(|(st, line)| (st.as_str(), *line))
            {
                Some((st @ ("priority" | "confidence"), _)) => Some(st),
                Some((other, line)) => {
                    note(
                        notes,
                        line,
                        format!("RECIPE {}: strategy {other}", recipe.name),
                        "only priority and confidence have counterparts; priority is used",
                    );
                    None
                }
                None => None,
            }
        };
        if let Some(st) = strategy {
            entries.push(("strategy".to_owned(), s(st)));
        }
        out.push(Node::new(Value::Map(entries)));
    }
    (out, main_aliases)
}

/// Most copies of a probe's query (`repeat`) put in one prompt.
const PROBE_REPEAT_MAX: u64 = 1000;

/// Their probe file, read: the test it becomes, and what did not convert.
#[derive(Debug, Clone)]
pub struct Probes {
    name: String,
    cases: Vec<Case>,
    notes: Vec<ImportNote>,
}

/// Reads their probe file as one test: `name` and `decisions: [{id,
/// expected_decision, variants: [{id, query, repeat}]}]`; a query with `repeat: N` is
/// written N times. Errors carry the probe file's line.
pub fn read_probes(text: &str) -> Result<Probes, ConfigError> {
    let mut notes = Vec::new();
    let root: Node = serde_saphyr::from_str(text).map_err(|e| {
        let line = e.location().map_or(0, |l| l.line());
        error(
            line,
            format!("probes: not a YAML file: {}", e.without_snippet()),
        )
    })?;
    let decisions = root.get("decisions").and_then(Node::items).ok_or_else(|| {
        error(
            0,
            "probes: no `decisions` list: is this a vLLM Semantic Router probes file?",
        )
    })?;
    let name: String = root
        .get("name")
        .and_then(Node::as_str)
        .unwrap_or("recipe")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let mut cases = Vec::new();
    for decision in decisions {
        let id = decision.get("id").and_then(Node::as_str).unwrap_or("?");
        let Some(expected) = decision
            .get("expected_decision")
            .or_else(|| decision.get("id"))
            .and_then(Node::as_str)
        else {
            note(
                &mut notes,
                0,
                format!("probes: decision {id}"),
                "no expected_decision; left out",
            );
            continue;
        };
        for variant in decision
            .get("variants")
            .and_then(Node::items)
            .unwrap_or_default()
        {
            let variant_id = variant.get("id").and_then(Node::as_str).unwrap_or("?");
            let Some(query) = variant.get("query").and_then(Node::as_str) else {
                note(
                    &mut notes,
                    0,
                    format!("probes: {id}/{variant_id}"),
                    "no query (only plain-text queries convert); left out",
                );
                continue;
            };
            let repeat = match variant.get("repeat").map(|n| &n.value) {
                Some(Value::Num(n)) => n.parse::<u64>().unwrap_or(1).clamp(1, PROBE_REPEAT_MAX),
                _ => 1,
            };
            let prompt = vec![query; usize::try_from(repeat).unwrap_or(1)].join(" ");
            cases.push((prompt, expected.to_owned(), 0));
        }
    }
    Ok(Probes {
        name: format!("{name}_probes"),
        cases,
        notes,
    })
}

/// The `name:level` complexity references of a condition.
/// Their `SIGNAL kb` over a knowledge base defined in the same file: our `kb` signal
/// reading the same labels file, with its groups and thresholds.
fn kb_signal(
    (name, fields, line): (&str, &[(String, Node)], u64),
    knowledge_bases: &BTreeMap<String, Node>,
    notes: &mut Vec<ImportNote>,
) -> Option<Ours> {
    let field = |k: &str| fields.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    let base = field("kb").and_then(Node::as_str).unwrap_or_default();
    let Some(definition) = knowledge_bases.get(base) else {
        note(
            notes,
            line,
            format!("signal kb {name}"),
            format!(
                "its knowledge base `{base}` is not defined in this file; write `SIGNAL kb {name} {{ source: \"…/labels.json\", target: …, groups: … }}` by hand; routes reading it are left out"
            ),
        );
        return None;
    };
    let mut out: Fields = Vec::new();
    if let Some(d) = field("description") {
        out.push(("description".to_owned(), d.clone()));
    }
    match kb_fields(definition) {
        Some(fields) => out.extend(fields),
        None => {
            note(
                notes,
                line,
                format!("signal kb {name}"),
                format!("knowledge base `{base}` names no source.path; left out"),
            );
            return None;
        }
    }
    match field("target") {
        Some(target) => out.push(("target".to_owned(), target.clone())),
        None => {
            note(
                notes,
                line,
                format!("signal kb {name}"),
                "no target; left out",
            );
            return None;
        }
    }
    if let Some(m) = field("match") {
        out.push(("match".to_owned(), m.clone()));
    }
    note(
        notes,
        line,
        format!("signal kb {name}"),
        "converted; its labels file is read from the path as written (relative to where switchyard runs), and similarities come from signals.model: recalibrate the threshold",
    );
    Some(("kb", name.to_owned(), out))
}

/// What our `kb` signals take from their knowledge-base definition: the labels file
/// (`source.path` + `manifest`), groups and thresholds; `None` without a path.
fn kb_fields(definition: &Node) -> Option<Fields> {
    let source = definition.get("source");
    let dir = source.and_then(|s| s.get("path")).and_then(Node::as_str)?;
    let manifest = source
        .and_then(|s| s.get("manifest"))
        .and_then(Node::as_str)
        .unwrap_or("labels.json");
    let mut out = vec![(
        "source".to_owned(),
        s(&format!("{}/{manifest}", dir.trim_end_matches('/'))),
    )];
    for key in ["groups", "label_thresholds", "threshold"] {
        if let Some(v) = definition.get(key) {
            out.push((key.to_owned(), v.clone()));
        }
    }
    Some(out)
}

fn complexity_levels(c: &Cond, out: &mut BTreeSet<String>) {
    match c {
        Cond::All(items) | Cond::Any(items) => items.iter().for_each(|i| complexity_levels(i, out)),
        Cond::Not(inner) => complexity_levels(inner, out),
        Cond::Atom { family, name, .. } => {
            if family == "complexity" {
                out.insert(name.clone());
            }
        }
    }
}

fn candidate(c: &Candidate, route: &str, notes: &mut Vec<ImportNote>) -> Node {
    let mut entries = vec![("name".to_owned(), s(&c.model))];
    for (key, value) in &c.options {
        match key.as_str() {
            "reasoning" | "lora" => entries.push((key.clone(), value.clone())),
            "effort" => match value.as_str() {
                Some(e @ ("low" | "medium" | "high")) => entries.push((key.clone(), s(e))),
                _ => note(
                    notes,
                    c.line,
                    format!("route {route}: {} effort", c.model),
                    "only low, medium and high have counterparts; dropped",
                ),
            },
            "weight" => match &value.value {
                Value::Num(n) if n.parse::<u32>().is_ok() => {
                    entries.push((key.clone(), value.clone()))
                }
                _ => note(
                    notes,
                    c.line,
                    format!("route {route}: {} weight", c.model),
                    "weights are whole numbers here; dropped",
                ),
            },
            other => note(
                notes,
                c.line,
                format!("route {route}: {} option `{other}`", c.model),
                "no counterpart; dropped",
            ),
        }
    }
    if entries.len() == 1 {
        s(&c.model)
    } else {
        Node::new(Value::Map(entries))
    }
}

/// A condition in our tree form; `None` when it reads something that did not map.
fn condition(
    c: &Cond,
    (known, derived): (&BTreeSet<(String, String)>, &projections::Converted),
    notes: &mut Vec<ImportNote>,
    route: &str,
) -> Option<Node> {
    let known_all = (known, derived);
    let group =
        |key: &str, items: Vec<Node>| Node::new(Value::Map(vec![(key.to_owned(), list(items))]));
    Some(match c {
        Cond::All(items) => group(
            "all",
            items
                .iter()
                .map(|i| condition(i, known_all, notes, route))
                .collect::<Option<_>>()?,
        ),
        Cond::Any(items) => group(
            "any",
            items
                .iter()
                .map(|i| condition(i, known_all, notes, route))
                .collect::<Option<_>>()?,
        ),
        Cond::Not(inner) => Node::new(Value::Map(vec![(
            "not".to_owned(),
            condition(inner, known_all, notes, route)?,
        )])),
        Cond::Atom {
            family: f,
            name,
            fields,
            line,
        } => {
            // `projection("band")`: the band of the projection that reports it.
            if f == "projection" {
                let Some(owner) = derived.bands.get(name) else {
                    note(
                        notes,
                        *line,
                        format!("route {route}: projection(\"{name}\")"),
                        "no converted projection reports this band",
                    );
                    return None;
                };
                return Some(label_atom("projection", owner, name));
            }
            let Some(ours) = family(f) else {
                note(
                    notes,
                    *line,
                    format!("route {route}: {f}(\"{name}\")"),
                    format!("the `{f}` family has no counterpart"),
                );
                return None;
            };
            // A partition member reads the partition's winner.
            if let Some(partition) = derived.members.get(&(ours.to_owned(), name.clone())) {
                return Some(label_atom("projection", partition, name));
            }
            if *fields {
                note(
                    notes,
                    *line,
                    format!("route {route}: {f}(\"{name}\", …)"),
                    "fields inside a signal reference have no counterpart; the signal's own rule is used",
                );
            }
            // `complexity("x:hard")` reads one level of one exemplar set.
            let name = match (ours, name.split_once(':')) {
                ("complexity", Some((set, level))) => format!("{set}_{level}"),
                _ => name.clone(),
            };
            if !known.contains(&(ours.to_owned(), name.clone())) {
                note(
                    notes,
                    *line,
                    format!("route {route}: {f}(\"{name}\")"),
                    "no such signal converted",
                );
                return None;
            }
            Node::new(Value::Map(vec![(ours.to_owned(), s(&name))]))
        }
    })
}

/// Their `multi_factor` algorithm as ours: the same four weights (quality, latency,
/// cost, load; each factor scaled to [0, 1] across the candidates); their candidate
/// minimum and fallback have no counterpart (ours always falls back to the first
/// candidate that fits).
fn multi_factor(fields: &Fields, route: &str, line: u64, notes: &mut Vec<ImportNote>) -> Node {
    let mut weights: Fields = Vec::new();
    let mut dropped: Vec<&str> = Vec::new();
    for (key, value) in fields {
        match key.as_str() {
            "weights" => {
                for (factor, weight) in value.entries().unwrap_or_default() {
                    let number = matches!(&weight.value, Value::Num(n) if n.parse::<f64>().is_ok_and(|x| x >= 0.0));
                    if matches!(factor.as_str(), "quality" | "latency" | "cost" | "load") && number
                    {
                        weights.push((factor.clone(), weight.clone()));
                    } else {
                        dropped.push("a weight other than quality, latency, cost or load");
                    }
                }
            }
            "minimum_candidates" | "on_no_candidates" => dropped.push(key.as_str()),
            _ => dropped.push(key.as_str()),
        }
    }
    // Our quality weight defaults to 1: a source that leaves it out means 0.
    if !weights.iter().any(|(k, _)| k == "quality") {
        weights.push(("quality".to_owned(), Node::new(Value::Num("0".to_owned()))));
    }
    if !dropped.is_empty() {
        note(
            notes,
            line,
            format!("route {route}: ALGORITHM multi_factor"),
            format!(
                "converted with its weights; {} dropped (the first candidate that fits is the fallback)",
                dropped.join(", ")
            ),
        );
    }
    Node::new(Value::Map(vec![
        ("type".to_owned(), s("multi_factor")),
        ("weights".to_owned(), Node::new(Value::Map(weights))),
    ]))
}

/// `{family: {name, label}}`: the signal reports this label.
fn label_atom(family: &str, name: &str, label: &str) -> Node {
    Node::new(Value::Map(vec![(
        family.to_owned(),
        Node::new(Value::Map(vec![
            ("name".to_owned(), s(name)),
            ("label".to_owned(), s(label)),
        ])),
    )]))
}

#[cfg(test)]
mod tests;
