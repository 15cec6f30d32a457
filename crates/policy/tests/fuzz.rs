//! Fuzzing the policy front ends on stable Rust: the DSL parser (and `fmt`), the YAML
//! loader, and compiling what they accept, fed valid policies with random edits and
//! random token soup. Any panic is a bug; every refusal must name a line inside the
//! text (or none). `FUZZ_CASES` raises the case count (`scripts/fuzz.sh`).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use proptest::test_runner::Config;
use switchyard_policy::{ConfigError, Policy, dsl, parse_config};

const DSL_SEEDS: &[&str] = &[
    include_str!("../../../examples/demo.sy"),
    r#"SIGNAL keyword code { keywords: ["python", "rust"] }
SIGNAL context long { min: 6K }
SIGNAL pii personal { types: [email, phone] }
SIGNAL jailbreak attack { contrast: false }
MODEL m { description: "x" }
MODEL n
POOL p { model: m, context_window: 8K, endpoints: [{ url: "http://127.0.0.1:9" }] }
POOL q { model: n, context_window: 32K, endpoints: [{ url: "http://127.0.0.1:10" }] }
ROUTE attack { PRIORITY 30 WHEN jailbreak("attack") MODEL "n" }
ROUTE code { PRIORITY 10 WHEN keyword("code") AND NOT context("long") MODEL "m", "n" }
ROUTE private { PRIORITY 20 WHEN pii("personal") OR context("long") MODEL "n" }
DEFAULT ROUTE { MODEL "m" }
TEST t {
  "fix my python" -> code
  "mail me at a@b.co" -> private
}
"#,
];

const YAML_SEEDS: &[&str] = &[
    include_str!("../../../examples/minimal.yaml"),
    include_str!("../../../examples/keywords.yaml"),
];

/// Words and marks the two languages are made of, for insertions.
const TOKENS: &[&str] = &[
    "SIGNAL",
    "ROUTE",
    "MODEL",
    "POOL",
    "DEFAULT",
    "TEST",
    "PLUGIN",
    "CONSTRAINT",
    "RECIPE",
    "WHEN",
    "AND",
    "OR",
    "NOT",
    "PRIORITY",
    "EXPECT",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    ":",
    ",",
    "\"",
    "'",
    "#",
    "\n",
    "  ",
    "- ",
    "&a",
    "*a",
    "!!str",
    "|",
    ">",
    "?",
    "8K",
    "1e309",
    "-1",
    "18446744073709551616",
    "0.5",
    "NaN",
    "null",
    "~",
    "true",
    "keyword",
    "context",
    "embedding",
    "domain",
    "pii",
    "jailbreak",
    "models:",
    "pools:",
    "routes:",
    "signals:",
    "\u{0}",
    "\u{feff}",
    "é",
    "🦀",
    "\\",
    "\\u{",
    "${x}",
    "<<: *a",
];

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Duplicate(usize, usize),
    Insert(usize, usize),
    Byte(usize, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(a, n)| Edit::Delete(a, n)),
        (any::<usize>(), 1usize..80).prop_map(|(a, n)| Edit::Duplicate(a, n)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, t)| Edit::Insert(a, t)),
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Edit::Byte(a, b)),
    ]
}

/// `seed` with `edits` applied (positions taken modulo the length, cut to characters).
fn mutate(seed: &str, edits: &[Edit]) -> String {
    let mut text = seed.to_owned();
    let at = |text: &str, i: usize| {
        if text.is_empty() {
            return 0;
        }
        let mut i = i % (text.len() + 1);
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    for e in edits {
        match *e {
            Edit::Delete(a, n) => {
                let a = at(&text, a);
                let b = at(&text, a + n.min(text.len() - a));
                text.replace_range(a..b.max(a), "");
            }
            Edit::Duplicate(a, n) => {
                let a = at(&text, a);
                let b = at(&text, a + n.min(text.len() - a)).max(a);
                let piece = text[a..b].to_owned();
                text.insert_str(b, &piece);
            }
            Edit::Insert(a, t) => {
                let a = at(&text, a);
                text.insert_str(a, TOKENS[t % TOKENS.len()]);
            }
            Edit::Byte(a, b) => {
                let a = at(&text, a);
                let b = char::from(b.min(0x7f));
                text.insert(a, b);
            }
        }
    }
    text
}

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(96)
}

/// A refusal points inside the text it refused, or nowhere.
fn points_inside(error: &ConfigError, text: &str) -> Result<(), TestCaseError> {
    let lines = u64::try_from(text.lines().count()).unwrap_or(u64::MAX) + 2;
    for d in &error.diagnostics {
        prop_assert!(
            d.line <= lines,
            "diagnostic at line {} of a {lines}-line text: {}",
            d.line,
            d.message
        );
    }
    Ok(())
}

/// Compiles an accepted configuration unless it needs the embedding model (loading it
/// takes seconds and is not what is fuzzed here).
fn compile(config: switchyard_policy::Config) {
    if config.signals.model.is_none() {
        let _ = Policy::compile(config);
    }
}

proptest! {
    #![proptest_config(Config { cases: cases(), failure_persistence: None, ..Config::default() })]

    #[test]
    fn the_dsl_parser_never_panics_on_edited_policies(
        seed in 0..DSL_SEEDS.len(),
        edits in proptest::collection::vec(edit(), 1..6),
    ) {
        let text = mutate(DSL_SEEDS[seed], &edits);
        match dsl::parse_dsl(&text) {
            Ok(config) => compile(config),
            Err(e) => points_inside(&e, &text)?,
        }
        if let Ok(formatted) = dsl::format(&text) {
            // What fmt prints parses, and prints the same again.
            let again = dsl::format(&formatted);
            prop_assert!(again.is_ok(), "fmt output does not parse: {again:?}\n{formatted}");
            prop_assert_eq!(again.unwrap(), formatted);
        }
    }

    #[test]
    fn the_dsl_parser_never_panics_on_token_soup(
        tokens in proptest::collection::vec(0..TOKENS.len(), 0..60),
    ) {
        let text: String = tokens.iter().map(|t| TOKENS[*t]).collect::<Vec<_>>().join(" ");
        if let Err(e) = dsl::parse_dsl(&text) {
            points_inside(&e, &text)?;
        }
    }

    #[test]
    fn the_yaml_loader_never_panics_on_edited_configurations(
        seed in 0..YAML_SEEDS.len(),
        edits in proptest::collection::vec(edit(), 1..6),
    ) {
        let text = mutate(YAML_SEEDS[seed], &edits);
        match parse_config(&text) {
            Ok(config) => compile(config),
            Err(e) => points_inside(&e, &text)?,
        }
        let _ = dsl::from_yaml(&text);
    }

    #[test]
    fn the_yaml_loader_never_panics_on_arbitrary_text(text in "\\PC{0,300}") {
        let _ = parse_config(&text);
    }
}
