use super::*;
use crate::Policy;
use proptest::prelude::*;

const SAMPLE: &str = r#"# The fleet.
MODEL "coder-7b" { price: { input: 0.2, output: 0.4 }, quality: 0.7, tags: [small] }
MODEL big { quality: 0.9, price: { input: 3, output: 15 } }

POOL coder { model: "coder-7b", context_window: 16K, endpoints: [{ url: "http://127.0.0.1:9001" }] }
POOL large {
  model: big
  context_window: 128K
  # two replicas
  endpoints: [{ url: "http://127.0.0.1:9002" }, { url: "http://127.0.0.1:9003" }]
}

SIGNAL keyword code { keywords: [python, rust, compile] }
SIGNAL keyword urgent { keywords: [asap] }
SIGNAL context long { min: 8K }

DECISION { strategy: priority }

// Code goes to the coder unless it is long.
ROUTE coding (description = "code \"questions\"") {
  PRIORITY 50
  WHEN keyword("code") AND NOT context("long")
  MODEL "coder-7b" (reasoning = true, effort = "high"), "big"
  ALGORITHM cost { min_quality: 0.5 }
  RETRY_BROKEN true
}

ROUTE rush {
  PRIORITY 10
  WHEN keyword("urgent") OR keyword("code") >= 2 AND context("long")
  MODEL "big" (lora = "big-rush"), "coder-7b" STICKY { escalate_only: true }
}

DEFAULT ROUTE fallback { MODEL "big" SHADOW { model: "coder-7b", share: 0.1 } PLUGIN house }

TEST smoke {
  "how do I compile rust" -> coding
  "hello" -> fallback
}

CONSTRAINT code_small (description = "code stays on small models") {
  WHEN keyword("code")
  ROUTES coding, rush
  MODELS { tags: [small] }
  MAX_COST 0.5
}

# Plugins: one for every request, one the default route lists.
PLUGIN caps params { global: true, max_tokens: 512 }
PLUGIN house system_prompt { text: "You answer on route {{route}}.", mode: append }
"#;

#[test]
fn the_dsl_compiles_to_the_same_model_as_yaml() {
    let config = parse_dsl(SAMPLE).unwrap_or_else(|e| panic!("{e}"));
    let policy = Policy::compile(config).unwrap_or_else(|e| panic!("{e}"));
    let coding = policy.routes().iter().find(|r| r.name == "coding").unwrap();
    assert_eq!(coding.priority, 50);
    assert_eq!(coding.description.as_deref(), Some("code \"questions\""));
    assert_eq!(
        coding.condition,
        "(keyword(\"code\") AND NOT context(\"long\"))"
    );
    assert_eq!(coding.options[0].reasoning, Some(true));
    assert_eq!(coding.options[0].effort, Some(crate::Effort::High));
    assert_eq!(coding.algorithm.name(), "cost");
    assert!(coding.retry_broken);
    let rush = policy.routes().iter().find(|r| r.name == "rush").unwrap();
    assert_eq!(
        rush.condition, "(keyword(\"urgent\") OR (keyword(\"code\") >= 2 AND context(\"long\")))",
        "AND binds tighter than OR"
    );
    assert_eq!(rush.options[0].lora.as_deref(), Some("big-rush"));
    assert!(!rush.retry_broken, "off unless the route says so");
    assert!(rush.sticky.is_some_and(|s| s.escalate_only));
    let shadow = policy.routes().last().and_then(|r| r.shadow.as_ref());
    assert_eq!(
        shadow.map(|s| (s.model.as_str(), s.share)),
        Some(("coder-7b", 0.1))
    );
    assert_eq!(policy.config.pools[0].context_window.0, 16 * 1024);
    assert_eq!(policy.config.tests[0].cases.len(), 2);
    let c = &policy.constraints[0];
    assert_eq!((c.name.as_str(), c.max_cost), ("code_small", Some(0.5)));
    assert_eq!(c.models, Some(vec![0]), "coder-7b is the small one");
    assert_eq!(c.routes.as_ref().map(Vec::len), Some(2));
    let fallback = policy.routes().last().unwrap();
    assert_eq!(
        (fallback.name.as_str(), &fallback.plugins),
        ("fallback", &vec![1])
    );
    assert_eq!(policy.global_plugins, [0]);
    let house = &policy.config.plugins[1];
    assert_eq!(
        (house.name.as_str(), house.kind.as_str()),
        ("house", "system_prompt")
    );
    assert_eq!(house.options["mode"], "append");

    // The YAML it compiles to is the same configuration.
    let yaml = to_yaml(SAMPLE).unwrap();
    let again = Policy::compile(crate::parse_config(&yaml).unwrap()).unwrap();
    assert_eq!(again.routes().len(), policy.routes().len());
    for (a, b) in again.routes().iter().zip(policy.routes()) {
        assert_eq!(
            (&a.name, &a.condition, &a.candidates),
            (&b.name, &b.condition, &b.candidates)
        );
        assert_eq!(a.options, b.options);
        assert_eq!(a.sticky, b.sticky);
        assert_eq!(a.shadow, b.shadow);
    }
}

#[test]
fn fmt_is_canonical_idempotent_and_keeps_comments() {
    let once = format(SAMPLE).unwrap();
    assert_eq!(format(&once).unwrap(), once, "idempotent");
    for comment in [
        "# The fleet.",
        "# two replicas",
        "# Code goes to the coder unless it is long.",
    ] {
        assert!(once.contains(comment), "{comment} kept:\n{once}");
    }
    assert!(
        once.contains("  WHEN keyword(\"code\") AND NOT context(\"long\")\n"),
        "{once}"
    );
    assert!(
        once.contains("MODEL \"coder-7b\" (reasoning = true, effort = high), \"big\""),
        "{once}"
    );
    assert!(once.contains("SIGNAL context long { min: 8K }"), "{once}");
    // Messy spacing and optional commas give the same text.
    let messy = SAMPLE
        .replace("PRIORITY 50", "PRIORITY   50")
        .replace(", quality: 0.7,", " quality: 0.7 ");
    assert_eq!(format(&messy).unwrap(), once);
}

#[test]
fn dsl_and_yaml_round_trip_without_loss() {
    let yaml = to_yaml(SAMPLE).unwrap();
    let dsl = from_yaml(&yaml).unwrap();
    let without_comments: String = format(SAMPLE)
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    // Blank lines between statements are the printer's; compare the statements.
    let squeeze = |t: &str| {
        t.lines()
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(squeeze(&dsl), squeeze(&without_comments));
    assert!(canonical(&yaml_tree(&yaml).unwrap()) == canonical(&parse_tree(&dsl).unwrap()));
    // A YAML file written by hand: the same tree after DSL and back.
    let hand = "\
models: [{name: m, tags: [a, 'b c']}]
pools: [{name: p, model: m, context_window: 4K, endpoints: [{url: 'http://127.0.0.1:1', weight: 2}]}]
signals:
  keyword: [{name: k, keywords: ['x y', z]}]
  limits: {default: {timeout_ms: 50}}
routes:
  - name: r
    when: {all: [{keyword: k}, {any: [{not: {keyword: k}}]}, {keyword: {name: k, confidence: '>0.5'}}]}
    models: [{name: m, weight: 3}]
    algorithm: {type: weighted, seed: 7}
server: {listen: '127.0.0.1:9999'}
";
    let dsl = from_yaml(hand).unwrap();
    let back = to_yaml(&dsl).unwrap_or_else(|e| panic!("{e}\n{dsl}"));
    assert!(
        canonical(&yaml_tree(hand).unwrap()) == canonical(&yaml_tree(&back).unwrap()),
        "{dsl}\n{back}"
    );
    assert!(
        dsl.contains(
            "WHEN keyword(\"k\") AND NOT keyword(\"k\") AND keyword(\"k\").confidence > 0.5"
        ),
        "{dsl}"
    );
}

fn first_error(text: &str) -> crate::Diagnostic {
    let err = parse_dsl(text)
        .and_then(Policy::compile)
        .map(|_| ())
        .unwrap_err();
    err.diagnostics[0].clone()
}

#[test]
fn errors_point_at_the_dsl_with_the_text_and_a_suggestion() {
    let d = first_error(&SAMPLE.replace("keyword(\"urgent\")", "keyword(\"urgnt\")"));
    assert!(d.message.contains("unknown keyword signal `urgnt`"), "{d}");
    assert_eq!((d.line, d.column), (30, 16), "{d}");
    assert_eq!(d.help.as_deref(), Some("did you mean `urgent`?"));
    let shown = d.to_string();
    assert!(
        shown.contains("30 |   WHEN keyword(\"urgnt\") OR"),
        "{shown}"
    );

    let d = first_error(&SAMPLE.replace("quality: 0.9,", "qualty: 0.9,"));
    assert!(d.message.contains("qualty"), "{d}");
    assert_eq!(d.line, 3, "{d}");
    assert_eq!(d.help.as_deref(), Some("did you mean `quality`?"), "{d}");

    let d = first_error(&SAMPLE.replace("ROUTE rush", "ROUET rush"));
    assert_eq!(
        (d.line, d.column, d.help.as_deref()),
        (28, 1, Some("did you mean `ROUTE`?")),
        "{d}"
    );
    let d = first_error(&SAMPLE.replace("keyword(\"urgent\")", "keywrd(\"urgent\")"));
    assert_eq!(d.help.as_deref(), Some("did you mean `keyword`?"), "{d}");
    let d = first_error(&SAMPLE.replace("PLUGIN house }", "PLUGIN huose }"));
    assert!(d.message.contains("unknown plugin `huose`"), "{d}");
    assert_eq!(
        (d.line, d.help.as_deref()),
        (34, Some("did you mean `house`?")),
        "{d}"
    );
    let d = first_error(&SAMPLE.replace(
        "PLUGIN caps params {",
        "PLUGIN caps params { on_error: retry,",
    ));
    assert!(d.message.contains("on_error `retry`"), "{d}");
    assert_eq!(d.line, 49, "{d}");
    let d = first_error(&SAMPLE.replace("\"hello\" -> fallback", "\"hello\" -> fallbak"));
    assert!(d.message.contains("unknown route `fallbak`"), "{d}");
    assert_eq!(d.line, 38, "{d}");
    let d = first_error(
        &SAMPLE
            .replace("(effort = \"high\")", "(effort = \"extreme\")")
            .replace("effort = \"high\"", "effort = \"extreme\""),
    );
    assert!(d.message.contains("extreme"), "{d}");
    assert_eq!(d.line, 23, "{d}");
    for (broken, says) in [
        (
            "ROUTE x { WHEN keyword(\"code\") AND }",
            "expected a condition",
        ),
        (
            "ROUTE x { WHEN (keyword(\"code\") }",
            "to close the parenthesis",
        ),
        ("MODEL m { quality: \"unclosed }", "not closed"),
        ("ROUTE x { PRIORITY 1 PRIORITY 2 }", "written twice"),
        ("ROUTE x { PLUGIN cache {} }", "expected a route statement"),
        ("TEST t { hello -> x }", "quoted prompt"),
        (
            "ROUTE x { WHEN keyword(\"a\").value > 1 }",
            "only `.confidence`",
        ),
        ("7up { }", "starts like a number"),
        (
            &format!("ROUTE x {{ WHEN {}keyword(\"a\") }}", "(".repeat(100_000)),
            "levels deep",
        ),
        (
            &format!("SERVER {{ a: {} }}", "[".repeat(100_000)),
            "levels deep",
        ),
        (
            &format!(
                "ROUTE x {{ WHEN {}keyword(\"a\") }}",
                "NOT ".repeat(100_000)
            ),
            "levels deep",
        ),
    ] {
        let err = parse_tree(broken).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains(says), "{broken}: {err}");
    }
}

/// A random name: plain, or needing quotes.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_-]{0,6}[a-z0-9]",
        "[A-Za-z0-9 _.é\"\\\\/-]{1,10}",
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[ -~]{0,20}", "\\PC{0,12}", "[a-z\\n\\t\"\\\\]{0,8}"]
}

fn num() -> impl Strategy<Value = Node> {
    prop_oneof![
        any::<i32>().prop_map(|i| Node::new(Value::Num(i.to_string()))),
        (-1e6f64..1e6).prop_map(|x| Node::new(Value::Num(tree::number_text(x)))),
    ]
}

fn s(text: &str) -> Node {
    Node::new(Value::Str(text.to_owned()))
}

fn map(entries: Vec<(&str, Node)>) -> Node {
    Node::new(Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    ))
}

fn list(items: Vec<Node>) -> Node {
    Node::new(Value::List(items))
}

/// A random value for a block (what MODEL / SIGNALS blocks may hold).
fn value() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        num(),
        text().prop_map(|t| s(&t)),
        any::<bool>().prop_map(|b| Node::new(Value::Bool(b))),
        Just(Node::new(Value::Null)),
        (1u32..64, prop::sample::select(vec!["K", "M"])).prop_map(|(n, u)| s(&format!("{n}{u}"))),
    ];
    leaf.prop_recursive(2, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(list),
            prop::collection::vec(("[a-z_]{1,6}|[A-Z ]{1,4}", inner), 0..3).prop_map(|es| {
                let mut seen = std::collections::BTreeSet::new();
                Node::new(Value::Map(
                    es.into_iter()
                        .filter(|(k, _)| seen.insert(k.clone()))
                        .collect(),
                ))
            }),
        ]
    })
}

fn condition() -> impl Strategy<Value = Node> {
    let families: Vec<&'static str> = switchyard_workload::SignalFamily::ALL
        .iter()
        .map(|f| f.name())
        .collect();
    let atom = (
        prop::sample::select(families),
        name(),
        prop::option::of((
            any::<bool>(),
            prop::sample::select(vec!["<", "<=", ">", ">="]),
            -100i32..100,
        )),
    )
        .prop_map(|(family, n, test)| match test {
            None if n.len() % 3 == 0 => map(vec![(
                family,
                map(vec![("name", s(&n)), ("label", s(&n.to_uppercase()))]),
            )]),
            None => map(vec![(family, s(&n))]),
            Some((confidence, cmp, bound)) => map(vec![(
                family,
                map(vec![
                    ("name", s(&n)),
                    (
                        if confidence { "confidence" } else { "value" },
                        s(&format!("{cmp} {}", f64::from(bound) / 10.0)),
                    ),
                ]),
            )]),
        });
    atom.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|c| map(vec![("not", c)])),
            prop::collection::vec(inner.clone(), 0..4).prop_map(|cs| map(vec![("all", list(cs))])),
            prop::collection::vec(inner, 0..4).prop_map(|cs| map(vec![("any", list(cs))])),
        ]
    })
}

fn candidate() -> impl Strategy<Value = Node> {
    (
        name(),
        prop::option::of(any::<bool>()),
        prop::option::of(1u32..9),
        prop::option::of(text()),
    )
        .prop_map(|(n, reasoning, weight, lora)| {
            let mut entries = vec![("name", s(&n))];
            if let Some(r) = reasoning {
                entries.push(("reasoning", Node::new(Value::Bool(r))));
            }
            if let Some(w) = weight {
                entries.push(("weight", Node::new(Value::Num(w.to_string()))));
            }
            if let Some(l) = lora {
                entries.push(("lora", s(&l)));
            }
            if entries.len() == 1 {
                s(&n)
            } else {
                map(entries)
            }
        })
}

fn route() -> impl Strategy<Value = Node> {
    (
        name(),
        prop::option::of(text()),
        any::<i32>(),
        condition(),
        prop::collection::vec(candidate(), 1..3),
        prop::option::of(prop_oneof![
            Just(s("static")),
            value().prop_map(|v| map(vec![("type", s("cost")), ("params", v)])),
        ]),
        (
            prop::option::of(any::<bool>()),
            prop::option::of(0u32..5),
            prop::option::of(name()),
        ),
    )
        .prop_map(
            |(n, description, priority, when, models, algorithm, (compress, tier, recipe))| {
                let mut entries = vec![("name", s(&n))];
                if let Some(r) = recipe {
                    entries.push(("recipe", s(&r)));
                }
                if let Some(d) = description {
                    entries.push(("description", s(&d)));
                }
                entries.push(("priority", Node::new(Value::Num(priority.to_string()))));
                if let Some(t) = tier {
                    entries.push(("tier", Node::new(Value::Num(t.to_string()))));
                }
                entries.push(("when", when));
                entries.push(("models", list(models)));
                if let Some(a) = algorithm {
                    entries.push(("algorithm", a));
                }
                if let Some(c) = compress {
                    entries.push(("compress", Node::new(Value::Bool(c))));
                }
                map(entries)
            },
        )
}

fn constraint() -> impl Strategy<Value = Node> {
    (
        name(),
        prop::option::of(text()),
        prop::option::of(condition()),
        prop::collection::vec(name(), 0..3),
        prop::option::of(prop::collection::vec(name(), 1..3)),
        prop::option::of(num()),
    )
        .prop_map(|(n, description, when, routes, tags, max_cost)| {
            let mut entries = vec![("name", s(&n))];
            if let Some(d) = description {
                entries.push(("description", s(&d)));
            }
            if let Some(w) = when {
                entries.push(("when", w));
            }
            if !routes.is_empty() {
                entries.push(("routes", list(routes.iter().map(|r| s(r)).collect())));
            }
            if let Some(tags) = tags {
                entries.push((
                    "models",
                    map(vec![("tags", list(tags.iter().map(|t| s(t)).collect()))]),
                ));
            }
            if let Some(m) = max_cost {
                entries.push(("max_cost", m));
            }
            map(entries)
        })
}

/// A random projection: a weighted sum, threshold bands (maybe calibrated) or a
/// partition, shaped as the schema wants it.
fn projection() -> impl Strategy<Value = Node> {
    let number = |x: f64| Node::new(Value::Num(tree::number_text(x)));
    let input = (
        "[a-z]{1,6}\\.[a-z_]{1,8}",
        -10i32..10,
        prop::sample::select(vec!["match", "confidence", "value"]),
        prop::option::of(name()),
    )
        .prop_map(move |(signal, weight, read, label)| {
            let mut entries = vec![
                ("signal", s(&signal)),
                ("weight", number(f64::from(weight) / 4.0)),
                ("read", s(read)),
            ];
            if let Some(l) = label {
                entries.push(("label", s(&l)));
            }
            map(entries)
        });
    let band = (
        name(),
        prop::sample::select(vec!["gt", "gte"]),
        prop::sample::select(vec!["lt", "lte"]),
        -8i32..8,
        1i32..8,
    )
        .prop_map(move |(n, lo, hi, at, width)| {
            map(vec![
                ("name", s(&n)),
                (lo, number(f64::from(at) / 4.0)),
                (hi, number(f64::from(at + width) / 4.0)),
            ])
        });
    (
        name(),
        prop::collection::vec(input, 1..4),
        prop::collection::vec(band, 1..4),
        prop::option::of(1u32..20),
        prop::collection::vec("[a-z]{1,6}\\.[a-z_]{1,8}", 2..4),
        0usize..3,
    )
        .prop_map(move |(n, inputs, bands, slope, members, kind)| match kind {
            0 => map(vec![
                ("name", s(&n)),
                ("method", s("weighted_sum")),
                ("inputs", list(inputs)),
            ]),
            1 => {
                let mut entries = vec![
                    ("name", s(&n)),
                    ("method", s("threshold_bands")),
                    ("source", s("score")),
                    ("bands", list(bands)),
                ];
                if let Some(k) = slope {
                    entries.push(("calibration", map(vec![("slope", number(f64::from(k)))])));
                }
                map(entries)
            }
            _ => map(vec![
                ("name", s(&n)),
                ("method", s("partition")),
                ("members", list(members.iter().map(|m| s(m)).collect())),
                ("default", s(&members[0])),
            ]),
        })
}

fn policy_tree() -> impl Strategy<Value = Node> {
    (
        prop::collection::vec((name(), value()), 0..3),
        (
            prop::collection::vec((name(), value()), 1..3),
            prop::collection::vec(projection(), 0..3),
        ),
        prop::collection::vec(route(), 0..4),
        prop::option::of(prop::collection::vec(candidate(), 1..3)),
        prop::collection::vec(
            (name(), prop::collection::vec((text(), name()), 1..3)),
            0..2,
        ),
        prop::option::of(value()),
        (
            prop::collection::vec(constraint(), 0..3),
            prop::collection::vec(
                (
                    name(),
                    prop::collection::vec(name(), 1..3),
                    prop::option::of(text()),
                    prop::option::of(prop::collection::vec(candidate(), 1..3)),
                ),
                0..3,
            ),
        ),
    )
        .prop_map(
            |(
                models,
                (signals, projections),
                routes,
                default,
                tests,
                server,
                (constraints, recipes),
            )| {
                let named = |(n, v): (String, Node)| {
                    let mut entries = vec![("name".to_owned(), s(&n))];
                    if let Value::Map(rest) = v.value {
                        entries.extend(rest.into_iter().filter(|(k, _)| k != "name"));
                    }
                    Node::new(Value::Map(entries))
                };
                let mut root = Vec::new();
                if let Some(Node {
                    value: Value::Map(server),
                    ..
                }) = server
                {
                    root.push(("server", Node::new(Value::Map(server))));
                }
                root.push(("models", list(models.into_iter().map(named).collect())));
                root.push(("pools", list(Vec::new())));
                let mut families =
                    vec![("keyword", list(signals.into_iter().map(named).collect()))];
                if !projections.is_empty() {
                    families.push(("projection", list(projections)));
                }
                root.push(("signals", map(families)));
                if !routes.is_empty() {
                    root.push(("routes", list(routes)));
                }
                if let Some(models) = default {
                    root.push(("default_route", map(vec![("models", list(models))])));
                }
                if !recipes.is_empty() {
                    let recipes = recipes
                        .into_iter()
                        .map(|(n, aliases, description, default)| {
                            let mut entries = vec![("name", s(&n))];
                            if let Some(d) = description {
                                entries.push(("description", s(&d)));
                            }
                            entries.push(("aliases", list(aliases.iter().map(|a| s(a)).collect())));
                            if let Some(models) = default {
                                entries
                                    .push(("default_route", map(vec![("models", list(models))])));
                            }
                            map(entries)
                        })
                        .collect();
                    root.push(("recipes", list(recipes)));
                }
                if !constraints.is_empty() {
                    root.push(("constraints", list(constraints)));
                }
                if !tests.is_empty() {
                    let tests = tests
                        .into_iter()
                        .map(|(n, cases)| {
                            let cases = cases
                                .into_iter()
                                .map(|(prompt, route)| {
                                    map(vec![("prompt", s(&prompt)), ("route", s(&route))])
                                })
                                .collect();
                            map(vec![("name", s(&n)), ("cases", list(cases))])
                        })
                        .collect();
                    root.push(("tests", list(tests)));
                }
                map(root)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn print_then_parse_is_the_identity(tree in policy_tree()) {
        let printed = print_tree(&tree).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let parsed = parse_tree(&printed).map_err(|e| TestCaseError::fail(format!("{e}\n{printed}")))?;
        prop_assert!(parsed == canonical(&tree), "{printed}");
        prop_assert_eq!(print_tree(&parsed).map_err(|e| TestCaseError::fail(e.to_string()))?, printed);
    }
}

#[test]
fn no_comment_is_lost_wherever_it_is_written() {
    let text = r#"MODEL m { quality: 0.5 # c1
  # c2
} # c3
POOL p { model: m, context_window: 4K, endpoints: [ # c4
  { url: "http://127.0.0.1:1" } # c5
] }
SIGNAL keyword k { keywords: [a] }
ROUTE r {
  WHEN keyword("k") # c6
    AND NOT keyword("k") # c7
  MODEL "m" (weight = 2, # c8
    reasoning = true)
  ALGORITHM weighted
  # c9
}
TEST t { "x" -> r # c10
}
# c11
"#;
    let once = format(text).unwrap();
    for i in 1..=11 {
        assert!(once.contains(&format!("# c{i}\n")), "c{i} lost:\n{once}");
    }
    assert_eq!(format(&once).unwrap(), once, "idempotent:\n{once}");
    assert!(parse_dsl(&once).and_then(crate::Policy::compile).is_ok());
}

#[test]
fn yaml_trees_know_their_lines() {
    let tree = yaml_tree("models:\n  - name: m\npools:\n  - {name: p, model: m, context_window: 4K, endpoints: [{url: 'http://127.0.0.1:1'}]}\n").unwrap();
    let pool = &tree.get("pools").unwrap().items().unwrap()[0];
    assert_eq!(pool.get("model").unwrap().pos.line, 4);
    assert_eq!(
        tree.get("models").unwrap().items().unwrap()[0]
            .get("name")
            .unwrap()
            .pos,
        Pos {
            line: 2,
            column: 11
        }
    );
}

#[test]
fn checker_warnings_point_at_the_dsl_statement() {
    let text = format!(
        "{SAMPLE}\nROUTE again {{\n  PRIORITY 1\n  WHEN keyword(\"code\") AND NOT context(\"long\")\n  MODEL \"big\"\n}}\n"
    );
    let policy = Policy::compile(parse_dsl(&text).unwrap()).unwrap();
    let shadowed = policy
        .warnings
        .iter()
        .find(|w| w.message.contains("`again` never wins"))
        .unwrap_or_else(|| panic!("{:?}", policy.warnings));
    let line = text.lines().position(|l| l == "ROUTE again {").unwrap() as u64 + 1;
    assert_eq!((shadowed.line, shadowed.column), (line, 7), "{shadowed}");
    assert_eq!(shadowed.snippet.as_deref(), Some("ROUTE again {"));
}
