//! DSL text → configuration tree.

use super::lex::{Tok, lex};
use super::tree::{Node, Pos, Value, number_text};
use super::{SECTIONS, STATEMENTS};
use crate::condition::{Cmp, Measure, Test};
use crate::diagnostics::{Diagnostic, suggest};
use switchyard_workload::SignalFamily;

/// A syntax error: where, what, and a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where.
    pub pos: Pos,
    /// What.
    pub message: String,
    /// What to write instead.
    pub help: Option<String>,
}

impl SyntaxError {
    fn new(pos: Pos, message: impl Into<String>) -> Self {
        SyntaxError {
            pos,
            message: message.into(),
            help: None,
        }
    }

    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// As a diagnostic.
    pub fn diagnostic(&self) -> Diagnostic {
        Diagnostic {
            severity: crate::Severity::Error,
            file: None,
            line: self.pos.line,
            column: self.pos.column,
            path: String::new(),
            message: self.message.clone(),
            help: self.help.clone(),
            snippet: None,
        }
    }
}

type Parsed<T> = Result<T, SyntaxError>;

const ROUTE_STATEMENTS: [&str; 12] = [
    "PRIORITY",
    "TIER",
    "WHEN",
    "MODEL",
    "ALGORITHM",
    "COMPRESS",
    "LOSSY_TRANSLATION",
    "RETRY_BROKEN",
    "STICKY",
    "SHADOW",
    "PLUGIN",
    "RECIPE",
];

/// Parses DSL text into the configuration tree YAML would give.
pub fn parse(text: &str) -> Parsed<Node> {
    Parser::new(text, false)?.file()
}

/// Reads tokens of this DSL or (`foreign`) of vLLM Semantic Router's, whose values,
/// names and blocks are written the same way; the importer reads its statements.
pub(crate) struct Parser {
    tokens: Vec<(Tok, Pos)>,
    at: usize,
    end: Pos,
    /// Comments read but not yet attached to a node.
    pending: Vec<String>,
    /// Values and conditions open around the current token.
    depth: usize,
}

/// The deepest nesting of values or conditions read (deeper input is an error, not a
/// stack overflow).
const MAX_DEPTH: usize = 128;

/// The pieces of a file before they become one tree.
#[derive(Default)]
struct File {
    sections: Vec<(String, Node)>,
    models: Vec<Node>,
    pools: Vec<Node>,
    signal_settings: Option<Node>,
    signals: Vec<(SignalFamily, Vec<Node>)>,
    routes: Vec<Node>,
    default_route: Option<Node>,
    recipes: Vec<Node>,
    constraints: Vec<Node>,
    plugins: Vec<Node>,
    tests: Vec<Node>,
}

impl Parser {
    pub(crate) fn new(text: &str, foreign: bool) -> Parsed<Parser> {
        let tokens = lex(text, foreign).map_err(|(pos, message)| SyntaxError::new(pos, message))?;
        let end = tokens
            .last()
            .map_or(Pos { line: 1, column: 1 }, |(_, p)| *p);
        Ok(Parser {
            tokens,
            at: 0,
            end,
            pending: Vec::new(),
            depth: 0,
        })
    }

    /// The next token that is not a comment (comments are collected).
    pub(crate) fn peek(&mut self) -> Option<&(Tok, Pos)> {
        while let Some((Tok::Comment(c), _)) = self.tokens.get(self.at) {
            self.pending.push(c.clone());
            self.at += 1;
        }
        self.tokens.get(self.at)
    }

    pub(crate) fn pos(&mut self) -> Pos {
        let end = self.end;
        self.peek().map_or(end, |(_, p)| *p)
    }

    pub(crate) fn next(&mut self) -> Option<(Tok, Pos)> {
        self.peek()?;
        self.at += 1;
        self.tokens.get(self.at - 1).cloned()
    }

    fn comments(&mut self) -> Vec<String> {
        self.peek();
        std::mem::take(&mut self.pending)
    }

    pub(crate) fn is_punct(&mut self, p: &str) -> bool {
        matches!(self.peek(), Some((Tok::Punct(q), _)) if *q == p)
    }

    pub(crate) fn eat_punct(&mut self, p: &str) -> bool {
        let found = self.is_punct(p);
        if found {
            self.at += 1;
        }
        found
    }

    pub(crate) fn expect_punct(&mut self, p: &str, what: &str) -> Parsed<Pos> {
        let pos = self.pos();
        match self.next() {
            Some((Tok::Punct(q), pos)) if q == p => Ok(pos),
            Some((tok, pos)) => Err(SyntaxError::new(
                pos,
                format!("expected `{p}` {what}, found {}", tok.describe()),
            )),
            None => Err(SyntaxError::new(
                pos,
                format!("expected `{p}` {what}, but the file ends"),
            )),
        }
    }

    pub(crate) fn is_word(&mut self, word: &str) -> bool {
        matches!(self.peek(), Some((Tok::Ident(w), _)) if w == word)
    }

    /// A name: an identifier or a string.
    pub(crate) fn name(&mut self, what: &str) -> Parsed<Node> {
        let pos = self.pos();
        match self.next() {
            Some((Tok::Ident(s) | Tok::Str(s), pos)) => Ok(Node::str(s, pos)),
            Some((tok, pos)) => Err(SyntaxError::new(
                pos,
                format!("expected {what}, found {}", tok.describe()),
            )
            .help("write a name, or a quoted string for names with other characters")),
            None => Err(SyntaxError::new(
                pos,
                format!("expected {what}, but the file ends"),
            )),
        }
    }

    fn file(&mut self) -> Parsed<Node> {
        let mut file = File::default();
        loop {
            let before = self.comments();
            let Some((tok, pos)) = self.next() else {
                let root = file.into_tree(before);
                return Ok(root);
            };
            let Tok::Ident(word) = tok else {
                return Err(SyntaxError::new(
                    pos,
                    format!("expected a statement, found {}", tok.describe()),
                )
                .help(format!("statements start with {}", STATEMENTS.join(", "))));
            };
            if let Some(node) = self.statement(&word, pos, &mut file)? {
                node.before = before;
            }
        }
    }

    /// Reads one statement after its keyword into `file`; returns the node it stored,
    /// for the comments written before it.
    fn statement<'f>(
        &mut self,
        word: &str,
        pos: Pos,
        file: &'f mut File,
    ) -> Parsed<Option<&'f mut Node>> {
        if let Some((key, _)) = SECTIONS.iter().find(|(_, w)| *w == word) {
            let block = self.block()?;
            if file.sections.iter().any(|(k, _)| k == key)
                || (*key == "signals" && file.signal_settings.is_some())
            {
                return Err(SyntaxError::new(pos, format!("`{word}` is written twice"))
                    .help("merge the two blocks into one"));
            }
            if *key == "signals" {
                file.signal_settings = Some(block);
                return Ok(file.signal_settings.as_mut());
            }
            file.sections.push(((*key).to_owned(), block));
            return Ok(file.sections.last_mut().map(|(_, n)| n));
        }
        match word {
            "MODEL" | "POOL" | "RECIPE" => {
                let name = self.name(&format!("the {} name", word.to_lowercase()))?;
                let mut node = if self.is_punct("{") || word != "MODEL" {
                    self.block()?
                } else {
                    Node::at(Value::Map(Vec::new()), pos)
                };
                prepend_name(&mut node, name)?;
                let list = match word {
                    "MODEL" => &mut file.models,
                    "POOL" => &mut file.pools,
                    _ => &mut file.recipes,
                };
                list.push(node);
                Ok(list.last_mut())
            }
            "SIGNAL" => {
                let family_node = self.name("a signal family")?;
                let family_name = family_node.as_str().unwrap_or_default().to_owned();
                let Some(family) = SignalFamily::from_name(&family_name) else {
                    let names: Vec<&str> = SignalFamily::ALL.iter().map(|f| f.name()).collect();
                    return Err(family_error(&family_name, family_node.pos, &names));
                };
                let name = self.name("the signal name")?;
                let mut node = if self.is_punct("{") {
                    self.block()?
                } else {
                    Node::at(Value::Map(Vec::new()), pos)
                };
                prepend_name(&mut node, name)?;
                node.pos = pos;
                let at = match file.signals.iter().position(|(f, _)| *f == family) {
                    Some(at) => at,
                    None => {
                        file.signals.push((family, Vec::new()));
                        file.signals.len() - 1
                    }
                };
                file.signals[at].1.push(node);
                Ok(file.signals[at].1.last_mut())
            }
            "ROUTE" => {
                let entries = self.named_head("route")?;
                let mut node = self.route_body(entries, pos)?;
                node.pos = pos;
                file.routes.push(node);
                Ok(file.routes.last_mut())
            }
            "DEFAULT" => {
                if !self.is_word("ROUTE") {
                    let found = self.pos();
                    return Err(SyntaxError::new(found, "expected `ROUTE` after `DEFAULT`"));
                }
                self.next();
                let mut entries = Vec::new();
                if !self.is_punct("{") {
                    entries.push(("name".to_owned(), self.name("the default route's name")?));
                }
                if file.default_route.is_some() {
                    return Err(SyntaxError::new(pos, "`DEFAULT ROUTE` is written twice"));
                }
                let mut node = self.route_body(entries, pos)?;
                node.pos = pos;
                file.default_route = Some(node);
                Ok(file.default_route.as_mut())
            }
            "CONSTRAINT" => {
                let entries = self.named_head("constraint")?;
                let node = self.constraint_body(entries, pos)?;
                file.constraints.push(node);
                Ok(file.constraints.last_mut())
            }
            "PLUGIN" => {
                // `PLUGIN name type { options }`: a definition, as `{name, type, …}`.
                let name = self.name("the plugin name")?;
                let kind = self.name(
                    "the plugin type (system_prompt, headers, params, reasoning, local_answer)",
                )?;
                let mut node = if self.is_punct("{") {
                    self.block()?
                } else {
                    Node::at(Value::Map(Vec::new()), pos)
                };
                prepend_key(&mut node, "type", kind)?;
                prepend_name(&mut node, name)?;
                node.pos = pos;
                file.plugins.push(node);
                Ok(file.plugins.last_mut())
            }
            "TEST" => {
                let name = self.name("the test name")?;
                let node = self.test(name, pos)?;
                file.tests.push(node);
                Ok(file.tests.last_mut())
            }
            other => {
                let mut all: Vec<&str> = STATEMENTS.to_vec();
                all.extend(ROUTE_STATEMENTS);
                let error = SyntaxError::new(pos, format!("unknown statement `{other}`"));
                Err(match suggest(other, STATEMENTS.iter().copied()) {
                    Some(s) => error.help(format!("did you mean `{s}`?")),
                    None if ROUTE_STATEMENTS.contains(&other) => {
                        error.help(format!("`{other}` belongs inside a ROUTE {{ … }} body"))
                    }
                    None => error.help(format!("statements are {}", STATEMENTS.join(", "))),
                })
            }
        }
    }

    /// `name (description = "…")` after ROUTE or CONSTRAINT, as the first entries of
    /// its map.
    fn named_head(&mut self, what: &str) -> Parsed<Vec<(String, Node)>> {
        let name = self.name(&format!("the {what} name"))?;
        let mut entries = vec![("name".to_owned(), name)];
        if self.is_punct("(") {
            for (key, value) in self.options(what)? {
                if key != "description" {
                    return Err(SyntaxError::new(
                        value.pos,
                        format!("unknown {what} option `{key}`"),
                    )
                    .help(format!(
                        "a {what} takes (description = \"…\"); write the rest in its body"
                    )));
                }
                entries.push((key, value));
            }
        }
        Ok(entries)
    }

    /// `{ key: value … }`
    pub(crate) fn block(&mut self) -> Parsed<Node> {
        let pos = self.expect_punct("{", "to open a block")?;
        let mut entries: Vec<(String, Node)> = Vec::new();
        loop {
            let before = self.comments();
            if self.eat_punct("}") {
                return Ok(Node::closed(Value::Map(entries), pos, before));
            }
            let key = self.name("a key or `}`")?;
            let key_text = key.as_str().unwrap_or_default().to_owned();
            if entries.iter().any(|(k, _)| *k == key_text) {
                return Err(SyntaxError::new(
                    key.pos,
                    format!("`{key_text}` is written twice in this block"),
                ));
            }
            self.expect_punct(":", &format!("after `{key_text}`"))?;
            let mut value = self.value()?;
            value.before = before;
            entries.push((key_text, value));
            self.eat_punct(",");
        }
    }

    /// `( key = value, … )`
    fn options(&mut self, what: &str) -> Parsed<Vec<(String, Node)>> {
        self.expect_punct("(", &format!("to open the {what}'s options"))?;
        let mut out: Vec<(String, Node)> = Vec::new();
        while !self.eat_punct(")") {
            let key = self.name("an option name or `)`")?;
            let key_text = key.as_str().unwrap_or_default().to_owned();
            self.expect_punct("=", &format!("after the option `{key_text}`"))?;
            let value = self.value()?;
            if out.iter().any(|(k, _)| *k == key_text) {
                return Err(SyntaxError::new(
                    key.pos,
                    format!("option `{key_text}` is written twice"),
                ));
            }
            out.push((key_text, value));
            self.eat_punct(",");
        }
        Ok(out)
    }

    pub(crate) fn value(&mut self) -> Parsed<Node> {
        self.nested(Self::plain_value)
    }

    /// Reads with `read` one level deeper, refusing input nested past [`MAX_DEPTH`].
    fn nested(&mut self, read: fn(&mut Self) -> Parsed<Node>) -> Parsed<Node> {
        if self.depth >= MAX_DEPTH {
            let at = self.pos();
            return Err(SyntaxError::new(
                at,
                format!("nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        self.depth += 1;
        let result = read(self);
        self.depth -= 1;
        result
    }

    fn plain_value(&mut self) -> Parsed<Node> {
        let pos = self.pos();
        if self.is_punct("{") {
            return self.block();
        }
        match self.next() {
            Some((Tok::Str(s), pos)) => Ok(Node::str(s, pos)),
            Some((Tok::Num(n, suffix), pos)) => Ok(number(&n, suffix, pos)),
            Some((Tok::Ident(w), pos)) => Ok(Node::at(
                match w.as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    "null" => Value::Null,
                    _ => Value::Str(w),
                },
                pos,
            )),
            Some((Tok::Punct("["), pos)) => {
                let mut items = Vec::new();
                loop {
                    let before = self.comments();
                    if self.eat_punct("]") {
                        return Ok(Node::closed(Value::List(items), pos, before));
                    }
                    let mut item = self.value()?;
                    item.before = before;
                    items.push(item);
                    self.eat_punct(",");
                }
            }
            Some((tok, pos)) => Err(SyntaxError::new(
                pos,
                format!("expected a value, found {}", tok.describe()),
            )
            .help("values are strings, numbers, true/false, [lists] and { key: value } maps")),
            None => Err(SyntaxError::new(pos, "expected a value, but the file ends")),
        }
    }

    /// A body of keyword statements, `{ WORD … WORD … }`, for a `what` (route,
    /// constraint) whose statements are `words`; `statement` reads one after its word
    /// and names the key it fills (`None`: not a statement of this body).
    fn statement_body(
        &mut self,
        (what, words): (&str, &[&str]),
        mut entries: Vec<(String, Node)>,
        pos: Pos,
        statement: impl Fn(&mut Parser, &str, Pos) -> Parsed<Option<(&'static str, Node)>>,
    ) -> Parsed<Node> {
        self.expect_punct("{", &format!("to open the {what}'s body"))?;
        loop {
            let before = self.comments();
            if self.eat_punct("}") {
                return Ok(Node::closed(Value::Map(entries), pos, before));
            }
            let word_pos = self.pos();
            let listed = format!("{what} statements are {}", words.join(", "));
            let word = match self.next() {
                Some((Tok::Ident(w), _)) => w,
                Some((tok, p)) => {
                    return Err(SyntaxError::new(
                        p,
                        format!("expected a {what} statement, found {}", tok.describe()),
                    )
                    .help(listed));
                }
                None => {
                    return Err(SyntaxError::new(
                        word_pos,
                        format!("the {what}'s body is not closed: add `}}`"),
                    ));
                }
            };
            let Some((key, mut value)) = statement(self, &word, word_pos)? else {
                let error =
                    SyntaxError::new(word_pos, format!("unknown {what} statement `{word}`"));
                return Err(match suggest(&word, words.iter().copied()) {
                    Some(s) => error.help(format!("did you mean `{s}`?")),
                    None => error.help(listed),
                });
            };
            if entries.iter().any(|(k, _)| k == key) {
                return Err(SyntaxError::new(
                    word_pos,
                    format!("`{word}` is written twice in this {what}"),
                ));
            }
            value.before = before;
            entries.push((key.to_owned(), value));
        }
    }

    /// `{ PRIORITY n  TIER n  WHEN expr  MODEL a, b  ALGORITHM x {…}  COMPRESS b
    /// STICKY {…}  SHADOW {…} }`
    fn route_body(&mut self, entries: Vec<(String, Node)>, pos: Pos) -> Parsed<Node> {
        let body = ("route", &ROUTE_STATEMENTS[..]);
        self.statement_body(body, entries, pos, |p, word, at| {
            Ok(Some(match word {
                "PRIORITY" => {
                    let value = p.value()?;
                    if !matches!(value.value, Value::Num(_)) {
                        return Err(SyntaxError::new(value.pos, "PRIORITY takes a whole number"));
                    }
                    ("priority", value)
                }
                "TIER" => {
                    let value = p.value()?;
                    if !matches!(&value.value, Value::Num(n) if n.parse::<u32>().is_ok()) {
                        return Err(SyntaxError::new(
                            value.pos,
                            "TIER takes a whole number of 0 or more",
                        ));
                    }
                    ("tier", value)
                }
                "WHEN" => ("when", p.or_expr()?),
                "MODEL" => ("models", p.candidates(at)?),
                "ALGORITHM" => ("algorithm", p.algorithm()?),
                "COMPRESS" => ("compress", p.value()?),
                "LOSSY_TRANSLATION" => ("lossy_translation", p.value()?),
                "RETRY_BROKEN" => ("retry_broken", p.value()?),
                "STICKY" => ("sticky", p.block()?),
                "SHADOW" => ("shadow", p.block()?),
                "PLUGIN" => ("plugins", p.names("a plugin name", at)?),
                "RECIPE" => ("recipe", p.name("the recipe the route belongs to")?),
                _ => return Ok(None),
            }))
        })
    }

    /// `{ WHEN expr  ROUTES a, b  MODELS {…}  POOLS {…}  MAX_COST n }`
    fn constraint_body(&mut self, entries: Vec<(String, Node)>, pos: Pos) -> Parsed<Node> {
        const WORDS: [&str; 5] = ["WHEN", "ROUTES", "MODELS", "POOLS", "MAX_COST"];
        self.statement_body(("constraint", &WORDS), entries, pos, |p, word, at| {
            Ok(Some(match word {
                "WHEN" => ("when", p.or_expr()?),
                "ROUTES" => ("routes", p.names("a route name", at)?),
                "MODELS" => ("models", p.block()?),
                "POOLS" => ("pools", p.block()?),
                "MAX_COST" => ("max_cost", p.value()?),
                _ => return Ok(None),
            }))
        })
    }

    /// `a, b, "c"`: a list of names.
    fn names(&mut self, what: &str, pos: Pos) -> Parsed<Node> {
        let mut names = vec![self.name(what)?];
        while self.eat_punct(",") {
            names.push(self.name(what)?);
        }
        Ok(Node::at(Value::List(names), pos))
    }

    /// `"a" (reasoning = true), "b"`
    fn candidates(&mut self, pos: Pos) -> Parsed<Node> {
        let mut items = Vec::new();
        loop {
            let name = self.name("a model name")?;
            if self.is_punct("(") {
                let mut entries = vec![("name".to_owned(), name.clone())];
                entries.extend(self.options("candidate")?);
                items.push(Node::at(Value::Map(entries), name.pos));
            } else {
                items.push(name);
            }
            if !self.eat_punct(",") {
                return Ok(Node::at(Value::List(items), pos));
            }
        }
    }

    /// `cost { min_quality: 0.7 }` or `static`
    fn algorithm(&mut self) -> Parsed<Node> {
        let name = self.name("an algorithm name")?;
        if !self.is_punct("{") {
            return Ok(name);
        }
        let mut block = self.block()?;
        prepend_key(&mut block, "type", name)?;
        Ok(block)
    }

    /// `TEST name { "prompt" -> route … }`
    fn test(&mut self, name: Node, pos: Pos) -> Parsed<Node> {
        self.expect_punct("{", "to open the test's cases")?;
        let mut cases = Vec::new();
        loop {
            let before = self.comments();
            if self.eat_punct("}") {
                let list = Node::closed(Value::List(cases), pos, before);
                return Ok(Node::at(
                    Value::Map(vec![("name".to_owned(), name), ("cases".to_owned(), list)]),
                    pos,
                ));
            }
            let prompt_pos = self.pos();
            let prompt = match self.next() {
                Some((Tok::Str(s), p)) => Node::str(s, p),
                Some((tok, p)) => {
                    return Err(SyntaxError::new(
                        p,
                        format!("expected a quoted prompt, found {}", tok.describe()),
                    )
                    .help("a test case is \"prompt\" -> route_name"));
                }
                None => {
                    return Err(SyntaxError::new(
                        prompt_pos,
                        "the test is not closed: add `}`",
                    ));
                }
            };
            self.expect_punct("->", "between the prompt and its route")?;
            let route = self.name("the route the prompt should take")?;
            let mut case = Node::at(
                Value::Map(vec![
                    ("prompt".to_owned(), prompt),
                    ("route".to_owned(), route),
                ]),
                prompt_pos,
            );
            case.before = before;
            cases.push(case);
            self.eat_punct(",");
        }
    }

    fn or_expr(&mut self) -> Parsed<Node> {
        self.joined(("OR", "any"), Self::and_expr)
    }

    fn and_expr(&mut self) -> Parsed<Node> {
        self.joined(("AND", "all"), Self::not_expr)
    }

    /// Parts read by `part` and joined by `word` into a `key` group; one part alone is
    /// itself.
    fn joined(
        &mut self,
        (word, key): (&str, &str),
        part: fn(&mut Self) -> Parsed<Node>,
    ) -> Parsed<Node> {
        let first = part(self)?;
        if !self.is_word(word) {
            return Ok(first);
        }
        let pos = first.pos;
        let mut items = vec![first];
        while self.is_word(word) {
            self.next();
            items.push(part(self)?);
        }
        Ok(op(key, Node::at(Value::List(items), pos)))
    }

    fn not_expr(&mut self) -> Parsed<Node> {
        self.nested(Self::plain_not_expr)
    }

    fn plain_not_expr(&mut self) -> Parsed<Node> {
        if self.is_word("NOT") {
            let pos = self.pos();
            self.next();
            let mut inner = self.not_expr()?;
            inner.pos = if inner.pos.line == 0 { pos } else { inner.pos };
            let mut node = op("not", inner);
            node.pos = pos;
            return Ok(node);
        }
        self.primary()
    }

    fn primary(&mut self) -> Parsed<Node> {
        let pos = self.pos();
        match self.next() {
            Some((Tok::Punct("("), _)) => {
                let inner = self.or_expr()?;
                self.expect_punct(")", "to close the parenthesis")?;
                Ok(inner)
            }
            Some((Tok::Ident(w), p)) if w == "TRUE" || w == "FALSE" => {
                let key = if w == "TRUE" { "all" } else { "any" };
                let mut node = op(key, Node::at(Value::List(Vec::new()), p));
                node.pos = p;
                Ok(node)
            }
            Some((Tok::Ident(family_name), p)) => self.atom(family_name, p),
            Some((tok, p)) => Err(SyntaxError::new(
                p,
                format!("expected a condition, found {}", tok.describe()),
            )
            .help("conditions are family(\"name\") atoms joined by AND, OR, NOT and parentheses")),
            None => Err(SyntaxError::new(
                pos,
                "expected a condition, but the file ends",
            )),
        }
    }

    /// `family("name")`, optionally `.confidence`, optionally a comparison.
    fn atom(&mut self, family_name: String, pos: Pos) -> Parsed<Node> {
        let Some(family) = SignalFamily::from_name(&family_name) else {
            let names: Vec<&str> = SignalFamily::ALL.iter().map(|f| f.name()).collect();
            return Err(family_error(&family_name, pos, &names));
        };
        self.expect_punct(
            "(",
            &format!("after `{family_name}`: write {family_name}(\"name\")"),
        )?;
        let name = self.name("the signal name")?;
        if self.eat_punct(",") {
            // `family("name", "label")`: the signal reports this categorical outcome.
            let label = self.name("a label (the outcome the signal must report)")?;
            self.expect_punct(")", "after the label")?;
            let node = Node::at(
                Value::Map(vec![("name".to_owned(), name), ("label".to_owned(), label)]),
                pos,
            );
            return Ok(Node::at(
                Value::Map(vec![(family.name().to_owned(), node)]),
                pos,
            ));
        }
        self.expect_punct(")", "after the signal name")?;
        let mut measure = Measure::Value;
        if self.eat_punct(".") {
            let field = self.name("`confidence` after `.`")?;
            if field.as_str() != Some("confidence") {
                return Err(
                    SyntaxError::new(field.pos, "only `.confidence` can follow an atom")
                        .help("compare the value directly: family(\"name\") >= 0.7"),
                );
            }
            measure = Measure::Confidence;
        }
        let cmp = Cmp::ALL
            .iter()
            .find(|(_, symbol)| self.is_punct(symbol))
            .map(|(c, _)| *c);
        let node = match cmp {
            None if measure == Measure::Confidence => {
                let at = self.pos();
                return Err(SyntaxError::new(
                    at,
                    "`.confidence` needs a comparison, e.g. `.confidence >= 0.9`",
                ));
            }
            None => name,
            Some(cmp) => {
                self.next();
                let bound_pos = self.pos();
                let bound = match self.next() {
                    Some((Tok::Num(n, suffix), _)) => {
                        let scale = match suffix {
                            Some('K') => 1024.0,
                            Some('M') => 1024.0 * 1024.0,
                            _ => 1.0,
                        };
                        n.parse::<f64>().map(|x| x * scale).ok()
                    }
                    _ => None,
                };
                let Some(bound) = bound.filter(|b| b.is_finite()) else {
                    return Err(SyntaxError::new(
                        bound_pos,
                        format!("expected a number after `{}`", cmp.symbol()),
                    ));
                };
                let test = Test {
                    measure,
                    cmp,
                    bound,
                };
                let text = format!("{} {}", test.cmp.symbol(), test.bound);
                Node::at(
                    Value::Map(vec![
                        ("name".to_owned(), name),
                        (measure.name().to_owned(), Node::str(text, bound_pos)),
                    ]),
                    pos,
                )
            }
        };
        let mut atom = Node::at(Value::Map(vec![(family.name().to_owned(), node)]), pos);
        atom.pos = pos;
        Ok(atom)
    }
}

impl File {
    fn into_tree(self, trailing: Vec<String>) -> Node {
        let mut root: Vec<(String, Node)> = Vec::new();
        let order = [
            "server",
            "upstream",
            "state",
            "health",
            "retention",
            "decision",
        ];
        for key in order {
            if let Some((_, node)) = self.sections.iter().find(|(k, _)| k == key) {
                root.push((key.to_owned(), node.clone()));
            }
        }
        let list = |items: Vec<Node>| Node::new(Value::List(items));
        root.push(("models".to_owned(), list(self.models)));
        root.push(("pools".to_owned(), list(self.pools)));
        if self.signal_settings.is_some() || !self.signals.is_empty() {
            let mut signals = self
                .signal_settings
                .unwrap_or_else(|| Node::new(Value::Map(Vec::new())));
            if let Value::Map(entries) = &mut signals.value {
                let mut families = self.signals;
                families.sort_by_key(|(f, _)| *f);
                for (family, items) in families {
                    entries.push((family.name().to_owned(), list(items)));
                }
            }
            root.push(("signals".to_owned(), signals));
        }
        if !self.routes.is_empty() {
            root.push(("routes".to_owned(), list(self.routes)));
        }
        if let Some(default) = self.default_route {
            root.push(("default_route".to_owned(), default));
        }
        if !self.recipes.is_empty() {
            root.push(("recipes".to_owned(), list(self.recipes)));
        }
        if !self.constraints.is_empty() {
            root.push(("constraints".to_owned(), list(self.constraints)));
        }
        if !self.plugins.is_empty() {
            root.push(("plugins".to_owned(), list(self.plugins)));
        }
        if !self.tests.is_empty() {
            root.push(("tests".to_owned(), list(self.tests)));
        }
        let mut node = Node::new(Value::Map(root));
        node.after = trailing;
        node
    }
}

fn op(key: &str, inner: Node) -> Node {
    let pos = inner.pos;
    Node::at(Value::Map(vec![(key.to_owned(), inner)]), pos)
}

fn number(text: &str, suffix: Option<char>, pos: Pos) -> Node {
    if let Some(suffix) = suffix {
        return Node::str(format!("{text}{suffix}"), pos);
    }
    let canonical = if let Ok(i) = text.parse::<i64>() {
        i.to_string()
    } else if let Ok(u) = text.parse::<u64>() {
        u.to_string()
    } else {
        text.parse::<f64>()
            .map_or_else(|_| text.to_owned(), number_text)
    };
    Node::at(Value::Num(canonical), pos)
}

fn prepend_key(node: &mut Node, key: &str, value: Node) -> Parsed<()> {
    let pos = node.pos;
    let Value::Map(entries) = &mut node.value else {
        return Err(SyntaxError::new(pos, "expected a block"));
    };
    if let Some((_, given)) = entries.iter().find(|(k, _)| k == key) {
        return Err(SyntaxError::new(
            given.pos,
            format!("`{key}` is already given before the block"),
        )
        .help(format!("remove `{key}` from the block")));
    }
    entries.insert(0, (key.to_owned(), value));
    Ok(())
}

fn prepend_name(node: &mut Node, name: Node) -> Parsed<()> {
    prepend_key(node, "name", name)
}

fn family_error(name: &str, pos: Pos, names: &[&str]) -> SyntaxError {
    let error = SyntaxError::new(pos, format!("unknown signal family `{name}`"));
    match suggest(name, names.iter().copied()) {
        Some(s) => error.help(format!("did you mean `{s}`?")),
        None => error.help(format!("families are {}", names.join(", "))),
    }
}
