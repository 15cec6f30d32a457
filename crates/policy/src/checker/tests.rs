use super::*;
use crate::parse_config;
use proptest::prelude::*;

const FLEET: &str = "\
models: [{name: m}]
pools: [{name: p, model: m, context_window: 128K, endpoints: [{url: 'http://127.0.0.1:1'}]}]
";

fn policy(rest: &str) -> Policy {
    let yaml = format!("{FLEET}{rest}");
    match parse_config(&yaml) {
        Ok(config) => match Policy::compile(config) {
            Ok(policy) => policy,
            Err(e) => panic!("{e}\n{yaml}"),
        },
        Err(e) => panic!("{e}\n{yaml}"),
    }
}

fn kinds(analysis: &Analysis) -> Vec<(FindingKind, Vec<String>)> {
    analysis
        .findings
        .iter()
        .map(|f| (f.kind, f.routes.clone()))
        .collect()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn overlap_shadowed_dead_and_gap_are_found_with_witnesses() {
    let p = policy(
        "\
signals:
  keyword:
    - {name: code, keywords: [python, rust]}
    - {name: python, keywords: [python]}
    - {name: urgent, keywords: [asap]}
  context:
    - {name: short, max: 4K}
    - {name: medium, min: 4K, max: 32K}
    - {name: long, min: 32K}
routes:
  - {name: urgent, priority: 30, when: {keyword: urgent}, models: [m]}
  - {name: coding, priority: 20, when: {keyword: code}, models: [m]}
  - {name: python_code, priority: 10, when: {all: [{keyword: python}, {keyword: code}]}, models: [m]}
  - {name: impossible, priority: 5, when: {all: [{context: short}, {context: long}]}, models: [m]}
  - {name: sized, priority: 1, when: {any: [{context: short}, {context: medium}]}, models: [m]}
",
    );
    let a = p.analyze();
    let found = kinds(&a);
    assert!(
        found.contains(&(FindingKind::Overlap, names(&["coding", "urgent"]))),
        "{found:?}"
    );
    assert!(
        found.contains(&(
            FindingKind::Shadowed,
            names(&["python_code", "urgent", "coding"])
        )),
        "{found:?}"
    );
    assert!(
        found.contains(&(FindingKind::Dead, names(&["impossible"]))),
        "{found:?}"
    );
    let gap = a
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::Gap)
        .expect("a gap");
    let witness = gap.witness.as_ref().expect("a witness");
    // The only requests no route takes: long prompts without the keywords.
    assert_eq!(
        witness.facts,
        vec!["prompt tokens in [32768, ∞)".to_owned()]
    );
    assert!(
        witness.holds.contains(&"context(\"long\")".to_owned()),
        "{witness}"
    );
    for keyword in ["keyword(\"code\")", "keyword(\"urgent\")"] {
        assert!(witness.fails.contains(&keyword.to_owned()), "{witness}");
    }
    let overlap = a
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::Overlap)
        .expect("an overlap");
    let w = overlap.witness.as_ref().expect("a witness");
    assert!(
        w.holds.contains(&"keyword(\"code\")".to_owned())
            && w.holds.contains(&"keyword(\"urgent\")".to_owned())
    );
    // Exclusive ranges never overlap: `sized` and `impossible` are not reported together.
    assert!(
        !found
            .iter()
            .any(|(k, r)| *k == FindingKind::Overlap && r.contains(&"impossible".to_owned()))
    );
}

#[test]
fn equal_priorities_that_overlap_are_ties_and_a_default_closes_every_gap() {
    let p = policy(
        "\
signals:
  keyword:
    - {name: a, keywords: [alpha]}
    - {name: b, keywords: [beta]}
routes:
  - {name: first, priority: 1, when: {keyword: a}, models: [m]}
  - {name: second, priority: 1, when: {keyword: b}, models: [m]}
default_route: {models: [m]}
",
    );
    let found = kinds(&p.analyze());
    assert_eq!(found, vec![(FindingKind::Tie, names(&["second", "first"]))]);
}

#[test]
fn ranges_partitions_and_implications_are_known() {
    let p = policy(
        "\
signals:
  context:
    - {name: short, max: 4K}
    - {name: medium, min: 4K, max: 32K}
    - {name: long, min: 32K}
    - {name: small, max: 8K}
  language:
    - {name: english, languages: [eng]}
    - {name: german, languages: [deu]}
  pii:
    - {name: email, types: [email]}
    - {name: any_pii}
routes:
  - {name: short_not_small, priority: 9, when: {all: [{context: short}, {not: {context: small}}]}, models: [m]}
  - {name: two_languages, priority: 8, when: {all: [{language: english}, {language: german}]}, models: [m]}
  - {name: email_without_pii, priority: 7, when: {all: [{pii: email}, {not: {pii: any_pii}}]}, models: [m]}
  - {name: every_size, priority: 1, when: {any: [{context: short}, {context: medium}, {context: long}]}, models: [m]}
",
    );
    let a = p.analyze();
    let dead: Vec<&str> = a
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::Dead)
        .map(|f| f.routes[0].as_str())
        .collect();
    assert_eq!(
        dead,
        vec!["short_not_small", "two_languages", "email_without_pii"]
    );
    assert!(
        !a.findings.iter().any(|f| f.kind == FindingKind::Gap),
        "every size is covered: {:?}",
        a.findings
    );
    // Neither language is a possible request too (another language, or low confidence).
    let p = policy(
        "\
signals:
  language:
    - {name: english, languages: [eng]}
routes:
  - {name: english, priority: 1, when: {language: english}, models: [m]}
",
    );
    let gap = p
        .analyze()
        .findings
        .into_iter()
        .find(|f| f.kind == FindingKind::Gap)
        .expect("a gap");
    assert_eq!(
        gap.witness.expect("witness").fails,
        vec!["language(\"english\")".to_owned()]
    );
}

/// A random condition over keyword signals `k0..k{atoms}`, as YAML: each atom is the
/// signal holding or, for `k0` and `k1`, a test on its value against 1, 2 or 3, or,
/// for the last signal, its label being `a` or `b`.
fn condition(atoms: usize) -> impl Strategy<Value = String> {
    let tested = atoms.min(2);
    let leaf = prop_oneof![
        3 => (0..atoms).prop_map(|i| format!("{{keyword: k{i}}}")),
        1 => (0..tested, prop::sample::select(vec!["<", "<=", ">", ">="]), 1..=3u8)
            .prop_map(|(i, cmp, bound)| format!("{{keyword: {{name: k{i}, value: '{cmp} {bound}'}}}}")),
        1 => prop::sample::select(vec!["a", "b"])
            .prop_map(move |l| format!("{{keyword: {{name: k{}, label: {l}}}}}", atoms - 1)),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|c| format!("{{not: {c}}}")),
            prop::collection::vec(inner.clone(), 1..=3)
                .prop_map(|cs| format!("{{all: [{}]}}", cs.join(", "))),
            prop::collection::vec(inner, 1..=3)
                .prop_map(|cs| format!("{{any: [{}]}}", cs.join(", "))),
        ]
    })
}

fn random_policy() -> impl Strategy<Value = String> {
    (1usize..=8).prop_flat_map(|atoms| {
        (
            prop::collection::vec((condition(atoms), 0i32..3), 1..=6),
            any::<bool>(),
        )
            .prop_map(move |(routes, default)| {
                let mut yaml = String::from("signals:\n  keyword:\n");
                for i in 0..atoms {
                    yaml.push_str(&format!("    - {{name: k{i}, keywords: [w{i}]}}\n"));
                }
                yaml.push_str("routes:\n");
                for (i, (when, priority)) in routes.iter().enumerate() {
                    yaml.push_str(&format!(
                        "  - {{name: r{i}, priority: {priority}, when: {when}, models: [m]}}\n"
                    ));
                }
                if default {
                    yaml.push_str("default_route: {models: [m]}\n");
                }
                yaml
            })
    })
}

/// What brute force saw over every assignment: which routes can match, which can
/// win (match first), which pairs (later, earlier) can match together, and whether a
/// request can match none.
struct Verdicts {
    can_match: Vec<bool>,
    can_win: Vec<bool>,
    both: std::collections::BTreeSet<(usize, usize)>,
    unrouted: bool,
}

impl Verdicts {
    fn new(routes: usize) -> Verdicts {
        Verdicts {
            can_match: vec![false; routes],
            can_win: vec![false; routes],
            both: std::collections::BTreeSet::new(),
            unrouted: false,
        }
    }

    /// Records one assignment's matching routes, in evaluation order.
    fn record(&mut self, matching: &[usize]) {
        for &i in matching {
            self.can_match[i] = true;
        }
        match matching.first() {
            Some(&winner) => self.can_win[winner] = true,
            None => self.unrouted = true,
        }
        for (x, &i) in matching.iter().enumerate() {
            for &j in &matching[x + 1..] {
                self.both.insert((j, i));
            }
        }
    }
}

/// Whether `witness` (signals named as holding; every other one not) satisfies `expr`.
fn holds_under(p: &Policy, expr: &Expr, witness: &Witness) -> bool {
    expr.eval(&|atom| witness.holds.contains(&p.atom_name(atom)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn verdicts_agree_with_every_assignment(yaml in random_policy()) {
        let p = policy(&yaml);
        let a = p.analyze();
        let plain: Vec<Atom> = p.atoms().iter().copied().filter(|a| matches!(a, Atom::Holds(_))).collect();
        let tested: Vec<switchyard_workload::SignalId> = p
            .atoms()
            .iter()
            .filter_map(|a| match a { Atom::Test(s, _) => Some(*s), _ => None })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        // Values on both sides of, and at, every bound the tests use (1, 2, 3).
        let points = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5];
        // The labelled signal reports `a`, `b` or neither.
        let label_of = |text: &str| p.labels().iter().position(|l| l == text).map(|at| at as u32);
        let labels = [label_of("a"), label_of("b"), None];
        let routes: Vec<(usize, &Expr)> = p
            .routes()
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.expr.as_ref().map(|e| (i, e)))
            .collect();
        let mut seen = Verdicts::new(p.routes().len());
        let assignments = (0u32..(1 << plain.len()))
            .flat_map(|b| (0..points.len().pow(tested.len() as u32)).map(move |v| (b, v)))
            .flat_map(|(b, v)| labels.iter().map(move |l| (b, v, *l)));
        for (bits, values, label) in assignments {
            let holds = |atom: Atom| match atom {
                // A label no condition tests reads as none.
                Atom::Label(_, at) => label == Some(at),
                Atom::Holds(_) => plain.iter().position(|a| *a == atom).is_some_and(|i| bits & (1 << i) != 0),
                Atom::Test(s, test) => {
                    let at = tested.iter().position(|t| *t == s).unwrap_or(0);
                    test.passes(points[values / points.len().pow(at as u32) % points.len()])
                }
            };
            let matching: Vec<usize> = routes.iter().filter(|(_, e)| e.eval(&holds)).map(|(i, _)| *i).collect();
            seen.record(&matching);
        }
        let Verdicts { can_match, can_win, both, unrouted } = seen;
        let name = |i: usize| p.routes()[i].name.clone();
        for &(i, expr) in &routes {
            let dead = a.findings.iter().any(|f| f.kind == FindingKind::Dead && f.routes[0] == name(i));
            prop_assert_eq!(dead, !can_match[i], "dead {}", name(i));
            let shadowed = a.findings.iter().find(|f| f.kind == FindingKind::Shadowed && f.routes[0] == name(i));
            prop_assert_eq!(shadowed.is_some(), can_match[i] && !can_win[i], "shadowed {}", name(i));
            if let Some(w) = shadowed.and_then(|f| f.witness.as_ref()) {
                prop_assert!(holds_under(&p, expr, w), "shadow witness matches the route");
            }
        }
        for &(later, _) in &routes {
            for &(earlier, _) in &routes {
                let reported = a.findings.iter().find(|f| {
                    matches!(f.kind, FindingKind::Overlap | FindingKind::Tie)
                        && f.routes == vec![name(later), name(earlier)]
                });
                prop_assert_eq!(reported.is_some(), both.contains(&(later, earlier)), "overlap {} {}", name(later), name(earlier));
                if let Some(f) = reported {
                    let tie = p.routes()[later].priority == p.routes()[earlier].priority;
                    prop_assert_eq!(f.kind == FindingKind::Tie, tie);
                    let w = f.witness.as_ref().expect("overlaps have witnesses");
                    for i in [later, earlier] {
                        let expr = p.routes()[i].expr.as_ref().expect("a condition");
                        prop_assert!(holds_under(&p, expr, w), "overlap witness matches {}", name(i));
                    }
                }
            }
        }
        let gap = a.findings.iter().find(|f| f.kind == FindingKind::Gap);
        prop_assert_eq!(gap.is_some(), unrouted && !p.has_default());
        if let Some(w) = gap.and_then(|f| f.witness.as_ref()) {
            for &(_, expr) in &routes {
                prop_assert!(!holds_under(&p, expr, w), "the gap witness matches no route");
            }
        }
    }
}

#[test]
fn value_tests_on_one_signal_are_ranges_of_one_number() {
    let rest = "\
signals:
  keyword: [{name: k, keywords: [w]}]
routes:
  - {name: many, priority: 2, when: {keyword: {name: k, value: '>= 2'}}, models: [m]}
  - {name: lots, priority: 1, when: {keyword: {name: k, value: '> 3'}}, models: [m]}
  - {name: none, priority: 0, when: {keyword: {name: k, value: '< 1'}}, models: [m]}
  - {name: sure, priority: 0, when: {keyword: {name: k, confidence: '> 1'}}, models: [m]}
";
    let p = policy(rest);
    let found = kinds(&p.analyze());
    assert!(
        found.contains(&(FindingKind::Shadowed, names(&["lots", "many"]))),
        "{found:?}"
    );
    assert!(
        found.contains(&(FindingKind::Dead, names(&["sure"]))),
        "confidence ≤ 1: {found:?}"
    );
    assert!(
        !found
            .iter()
            .any(|(_, r)| r.contains(&"none".to_owned()) && r.len() > 1),
        "below 1 and at least 2 never meet: {found:?}"
    );
    let gap = p
        .analyze()
        .findings
        .into_iter()
        .find(|f| f.kind == FindingKind::Gap)
        .expect("values in [1, 2) match no route");
    let witness = gap.witness.expect("witness").to_string();
    assert!(witness.contains("value of keyword(\"k\") "), "{witness}");
    assert!(
        witness.contains("= 1") || witness.contains("in (1, 2)"),
        "{witness}"
    );
    // Under the confidence strategy a narrower route can still win: not shadowed.
    let p = policy(&format!("{rest}decision: {{strategy: confidence}}\n"));
    let found = kinds(&p.analyze());
    assert!(
        !found.iter().any(|(k, _)| *k == FindingKind::Shadowed),
        "{found:?}"
    );
    assert!(
        found.contains(&(FindingKind::Overlap, names(&["lots", "many"]))),
        "{found:?}"
    );
}

const GOVERNED: &str = "\
models:
  - {name: small, tags: [small], price: {input: 0.1, output: 0.2}}
  - {name: large, price: {input: 10, output: 30}}
pools:
  - {name: cloud, model: large, context_window: 32K, endpoints: [{url: 'http://127.0.0.1:1'}]}
  - {name: local, model: small, context_window: 8K, tags: [on-prem], endpoints: [{url: 'http://127.0.0.1:2'}]}
signals:
  keyword:
    - {name: secret, keywords: [password]}
    - {name: code, keywords: [python]}
  authz:
    - {name: guest, roles: [guest]}
  identity:
    trusted_headers: {subject: x-user, roles: x-roles, trusted_proxies: [127.0.0.1]}
routes:
  - {name: coding, priority: 10, when: {keyword: code}, models: [large]}
  - {name: chat, priority: 0, when: {not: {keyword: code}}, models: [large, small]}
constraints:
  - {name: secrets_stay_home, when: {keyword: secret}, pools: {tags: [on-prem]}}
  - {name: guests_small, when: {authz: guest}, models: {tags: [small]}}
  - {name: cheap_chat, routes: [chat], max_cost: 0.05}
";

fn governed(yaml: &str) -> Result<Policy, String> {
    let config = parse_config(yaml).map_err(|e| e.to_string())?;
    Policy::compile(config).map_err(|e| e.to_string())
}

#[test]
fn constraints_are_checked_against_the_routes_that_can_meet_them() {
    let p = governed(GOVERNED).unwrap();
    let refused: Vec<&Finding> = p
        .analysis
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::Refused)
        .collect();
    // `coding` only has `large`: neither on-prem nor small, so secrets and guests
    // that take it are refused; `chat` still has `small`.
    let about = |c: &str| {
        refused
            .iter()
            .find(|f| f.constraint.as_deref() == Some(c))
            .unwrap_or_else(|| panic!("no refusal for {c}: {:#?}", p.analysis.findings))
    };
    let secrets = about("secrets_stay_home");
    assert_eq!(secrets.routes, names(&["coding"]));
    let w = secrets.witness.as_ref().expect("a witness");
    assert!(
        w.holds.contains(&"keyword(\"secret\")".to_owned())
            && w.holds.contains(&"keyword(\"code\")".to_owned()),
        "{w}"
    );
    assert!(
        secrets
            .message
            .contains("`large` has no pool with an allowed tag"),
        "{}",
        secrets.message
    );
    assert_eq!(about("guests_small").routes, names(&["coding"]));
    assert!(
        !refused.iter().any(|f| f.routes == names(&["chat"])),
        "{refused:#?}"
    );
    // The warning points at the constraint.
    let d = p.diagnostic(secrets);
    assert_eq!(d.path, "constraints[0]");
    assert_eq!(d.line, 19);

    // A ceiling no candidate of the route meets, for the expected answer.
    let pricey = GOVERNED.replace("max_cost: 0.05", "max_cost: 0.00001");
    let p = governed(&pricey).unwrap();
    let f = p
        .analysis
        .findings
        .iter()
        .find(|f| f.constraint.as_deref() == Some("cheap_chat"))
        .expect("refused");
    assert!(f.message.contains("over $0.00001"), "{}", f.message);

    // A condition no request meets: the constraint is idle.
    let idle = GOVERNED.replace(
        "when: {keyword: secret}",
        "when: {all: [{keyword: code}, {not: {keyword: code}}]}",
    );
    let p = governed(&idle).unwrap();
    assert!(p.analysis.findings.iter().any(
        |f| f.kind == FindingKind::Idle && f.constraint.as_deref() == Some("secrets_stay_home")
    ));
}

#[test]
fn constraints_that_cannot_hold_are_errors() {
    for (change, says) in [
        (
            ("tags: [on-prem]}}", "tags: [onprem]}}"),
            "allows only pools tagged onprem, but none is",
        ),
        (
            ("routes: [chat]", "routes: [chatt]"),
            "did you mean `chat`?",
        ),
        (
            (
                "{name: large, price: {input: 10, output: 30}}",
                "{name: large}",
            ),
            "model `large`, which may answer them, has no `price`",
        ),
        (("max_cost: 0.05", "max_cost: -1"), "above 0"),
        (
            ("pools: {tags: [on-prem]}", "description: nothing"),
            "restricts nothing",
        ),
        (
            ("when: {authz: guest}", "when: {authz: guests}"),
            "unknown authz signal `guests`",
        ),
    ] {
        let err = governed(&GOVERNED.replace(change.0, change.1))
            .map(|_| ())
            .unwrap_err();
        assert!(err.contains(says), "{change:?}: {err}");
    }
}

#[test]
fn constraints_decide_which_candidates_and_pools_a_request_may_use() {
    use switchyard_wire::Conversation;
    let p = governed(GOVERNED).unwrap();
    let signals = |prompt: &str| {
        p.signals.characterize(
            &Conversation::from_prompt("auto", prompt),
            p.needed_signals(),
        )
    };
    let chat = p.routes().iter().position(|r| r.name == "chat");
    let covering = |prompt: &str, route| -> Vec<String> {
        let s = signals(prompt);
        p.constraints
            .iter()
            .filter(|c| c.covers(route, &s, p.labels()))
            .map(|c| c.name.clone())
            .collect()
    };
    assert_eq!(
        covering("my password is hunter2", chat),
        vec!["secrets_stay_home", "cheap_chat"]
    );
    assert_eq!(covering("hello", chat), vec!["cheap_chat"]);
    assert!(covering("hello", None).is_empty(), "scoped to chat");
    assert_eq!(
        covering("password", None),
        vec!["secrets_stay_home"],
        "unscoped rules cover named models"
    );
    // Named models need only the signal of the unscoped constraint that reads one.
    let secret = p
        .signals
        .lookup(switchyard_workload::SignalFamily::Keyword, "secret");
    let guest = p
        .signals
        .lookup(switchyard_workload::SignalFamily::Authz, "guest");
    assert_eq!(p.direct_signals().len(), 2, "secret and guest");
    assert!(
        p.direct_signals()
            .iter()
            .all(|s| Some(*s) == secret || Some(*s) == guest)
    );
}

#[test]
fn a_keyword_list_inside_another_implies_it() {
    let rest = "\
signals:
  keyword:
    - {name: code, keywords: [python, Rust, compile]}
    - {name: python, keywords: [python, rust]}
    - {name: exact, keywords: [python], case_sensitive: true}
    - {name: all_of, keywords: [python], operator: all}
routes:
  - {name: coding, priority: 2, when: {keyword: code}, models: [m]}
  - {name: py, priority: 1, when: {keyword: python}, models: [m]}
  - {name: exact_py, priority: 1, when: {keyword: exact}, models: [m]}
  - {name: all_py, priority: 0, when: {keyword: all_of}, models: [m]}
default_route: {models: [m]}
";
    let found = kinds(&policy(rest).analyze());
    assert!(
        found
            .iter()
            .any(|(k, r)| *k == FindingKind::Shadowed && r[0] == "py"),
        "{found:?}"
    );
    // Read differently (case-sensitive), or combined with `all`: no implication claimed.
    assert!(
        !found
            .iter()
            .any(|(k, r)| *k == FindingKind::Shadowed && r[0] == "exact_py"),
        "{found:?}"
    );
    assert!(
        !found
            .iter()
            .any(|(k, r)| *k == FindingKind::Shadowed && r[0] == "all_py"),
        "{found:?}"
    );
}

#[test]
fn text_structure_ranges_are_one_quantity_only_for_the_same_pattern() {
    // Two patterns count two different things: "some steps" and "no questions" can
    // hold together. The same pattern counted twice is one quantity: "some steps" and
    // "no steps" cannot.
    let p = policy(
        "\
signals:
  structure:
    - {name: steps, feature: regex_matches, pattern: '(?m)^\\d+\\.'}
    - {name: no_questions, feature: regex_matches, pattern: '\\?', min: 0, max: 1}
    - {name: no_steps, feature: regex_matches, pattern: '(?m)^\\d+\\.', min: 0, max: 1}
routes:
  - {name: plan, priority: 2, when: {all: [{structure: steps}, {structure: no_questions}]}, models: [m]}
  - {name: never, priority: 1, when: {all: [{structure: steps}, {structure: no_steps}]}, models: [m]}
",
    );
    let analysis = p.analyze();
    let dead: Vec<&str> = analysis
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::Dead)
        .map(|f| f.routes[0].as_str())
        .collect();
    assert_eq!(dead, vec!["never"]);
}

/// A random policy over keyword signals `k0..k{n}`, a weighted sum `s` of them and
/// bands `b` cut on it; conditions read the keywords, the bands, the score holding
/// and a test on the score.
fn random_projection_policy() -> impl Strategy<Value = String> {
    let weight = prop::sample::select(vec![-1.0f64, -0.5, 0.5, 1.0]);
    let read = prop::sample::select(vec!["match", "confidence", "miss"]);
    let cut = prop::sample::select(vec![-1.0f64, -0.5, 0.0, 0.5, 1.0, 1.5]);
    let band = (cut.clone(), cut, any::<bool>(), any::<bool>()).prop_filter_map(
        "an empty band",
        |(a, b, lo_closed, hi_closed)| {
            let (lo, hi) = (a.min(b), a.max(b));
            (lo < hi).then(|| {
                let lo_key = if lo_closed { "gte" } else { "gt" };
                let hi_key = if hi_closed { "lte" } else { "lt" };
                format!("{lo_key}: {lo}, {hi_key}: {hi}")
            })
        },
    );
    (2usize..=3).prop_flat_map(move |n| {
        let leaf = prop_oneof![
            2 => (0..n).prop_map(|i| format!("{{keyword: k{i}}}")),
            3 => (0..3usize).prop_map(|j| format!("{{projection: {{name: b, label: b{j}}}}}")),
            1 => Just("{projection: s}".to_owned()),
            1 => Just("{projection: {name: s, value: '>= 0.5'}}".to_owned()),
        ];
        let condition = leaf.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                inner.clone().prop_map(|c| format!("{{not: {c}}}")),
                prop::collection::vec(inner.clone(), 1..=3)
                    .prop_map(|cs| format!("{{all: [{}]}}", cs.join(", "))),
                prop::collection::vec(inner, 1..=3)
                    .prop_map(|cs| format!("{{any: [{}]}}", cs.join(", "))),
            ]
        });
        (
            prop::collection::vec((weight.clone(), read.clone()), n),
            prop::collection::vec(band.clone(), 3),
            prop::collection::vec((condition, 0i32..3), 1..=5),
        )
            .prop_map(move |(terms, bands, routes)| {
                let mut yaml = String::from("signals:\n  keyword:\n");
                for i in 0..n {
                    yaml.push_str(&format!("    - {{name: k{i}, keywords: [w{i}]}}\n"));
                }
                yaml.push_str(
                    "  projection:\n    - name: s\n      method: weighted_sum\n      inputs:\n",
                );
                for (i, (w, read)) in terms.iter().enumerate() {
                    let how = match *read {
                        "miss" => "match: 1, miss: -1".to_owned(),
                        r => format!("read: {r}"),
                    };
                    yaml.push_str(&format!(
                        "        - {{signal: keyword.k{i}, weight: {w}, {how}}}\n"
                    ));
                }
                yaml.push_str(
                    "    - name: b\n      method: threshold_bands\n      source: s\n      bands:\n",
                );
                for (j, band) in bands.iter().enumerate() {
                    yaml.push_str(&format!("        - {{name: b{j}, {band}}}\n"));
                }
                yaml.push_str("routes:\n");
                for (i, (when, priority)) in routes.iter().enumerate() {
                    yaml.push_str(&format!(
                        "  - {{name: r{i}, priority: {priority}, when: {when}, models: [m]}}\n"
                    ));
                }
                yaml.push_str("default_route: {models: [m]}\n");
                yaml
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// Dead, shadowed and overlapping routes over projections, as the checker proves
    /// them, against every assignment of the keywords with confidences on a grid fine
    /// enough to reach every region the bands cut (bounds are multiples of 0.5,
    /// weights ±0.5 or ±1, confidences multiples of 1/8).
    #[test]
    fn projection_verdicts_agree_with_brute_force(yaml in random_projection_policy()) {
        use switchyard_workload::{SignalFamily, SignalValue};
        let p = policy(&yaml);
        let a = p.analyze();
        let engine = &p.signals;
        let keywords: Vec<_> = (0..3)
            .filter_map(|i| engine.lookup(SignalFamily::Keyword, &format!("k{i}")))
            .collect();
        let s = engine.lookup(SignalFamily::Projection, "s").expect("the score");
        let b = engine.lookup(SignalFamily::Projection, "b").expect("the bands");
        let (sum, bands) = (engine.projection(s).expect("a sum"), engine.projection(b).expect("bands"));
        let grid: Vec<f64> = (1..=8).map(|k| f64::from(k) / 8.0).collect();
        let routes: Vec<(usize, &Expr)> = p
            .routes()
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.expr.as_ref().map(|e| (i, e)))
            .collect();
        let mut seen = Verdicts::new(p.routes().len());
        let n = keywords.len();
        for bits in 0u32..(1 << n) {
            let holding: Vec<usize> = (0..n).filter(|i| bits & (1 << i) != 0).collect();
            for choice in 0..grid.len().pow(holding.len() as u32) {
                let mut values: Vec<SignalValue> = (0..n)
                    .map(|i| SignalValue { matched: bits & (1 << i) != 0, ..SignalValue::absent(1.0) })
                    .collect();
                for (k, &i) in holding.iter().enumerate() {
                    values[i].confidence = grid[choice / grid.len().pow(k as u32) % grid.len()];
                }
                let inputs: Vec<Option<&SignalValue>> = values.iter().map(Some).collect();
                let score = sum.derive(&inputs, &[]);
                let band = bands.derive(&[Some(&score)], &[]);
                let holds = |atom: Atom| match atom {
                    Atom::Holds(id) if id == s => score.matched,
                    Atom::Holds(id) if id == b => band.matched,
                    Atom::Holds(id) => keywords.iter().position(|k| *k == id).is_some_and(|i| values[i].matched),
                    Atom::Test(_, test) => test.passes(score.value),
                    Atom::Label(_, at) => band.label.as_ref() == p.labels().get(at as usize),
                };
                let matching: Vec<usize> = routes.iter().filter(|(_, e)| e.eval(&holds)).map(|(i, _)| *i).collect();
                seen.record(&matching);
            }
        }
        let Verdicts { can_match, can_win, both, .. } = seen;
        let name = |i: usize| p.routes()[i].name.clone();
        for &(i, _) in &routes {
            let dead = a.findings.iter().any(|f| f.kind == FindingKind::Dead && f.routes[0] == name(i));
            prop_assert_eq!(dead, !can_match[i], "dead {}\n{}", name(i), yaml);
            let shadowed = a.findings.iter().any(|f| f.kind == FindingKind::Shadowed && f.routes[0] == name(i));
            prop_assert_eq!(shadowed, can_match[i] && !can_win[i], "shadowed {}\n{}", name(i), yaml);
        }
        for &(later, _) in &routes {
            for &(earlier, _) in &routes {
                let reported = a.findings.iter().any(|f| {
                    matches!(f.kind, FindingKind::Overlap | FindingKind::Tie)
                        && f.routes == vec![name(later), name(earlier)]
                });
                prop_assert_eq!(reported, both.contains(&(later, earlier)), "overlap {} {}\n{}", name(later), name(earlier), yaml);
            }
        }
    }
}

#[test]
fn a_partition_winner_holds_or_is_the_default_of_none() {
    let p = policy(
        "signals:
  keyword:
    - {name: math, keywords: [integral]}
    - {name: law, keywords: [contract]}
  projection:
    - {name: topic, method: partition, members: [keyword.math, keyword.law], default: keyword.law}
routes:
  - {name: law_without_law, priority: 9, when: {all: [{projection: {name: topic, label: law}}, {not: {keyword: law}}, {keyword: math}]}, models: [m]}
  - {name: math_alone, priority: 8, when: {all: [{keyword: math}, {not: {keyword: law}}]}, models: [m]}
  - {name: math_won, priority: 7, when: {projection: {name: topic, label: math}}, models: [m]}
  - {name: nothing, priority: 6, when: {all: [{not: {keyword: math}}, {not: {keyword: law}}, {not: {projection: {name: topic, label: law}}}]}, models: [m]}
default_route: {models: [m]}
",
    );
    let found = kinds(&p.analysis);
    // The default cannot win while another member holds and it does not.
    assert!(
        found.contains(&(FindingKind::Dead, names(&["law_without_law"]))),
        "{found:?}"
    );
    // With no member holding, the default wins: `nothing` is dead.
    assert!(
        found.contains(&(FindingKind::Dead, names(&["nothing"]))),
        "{found:?}"
    );
    // Math holding with law may still win (by confidence): not shadowed.
    assert!(
        !found
            .iter()
            .any(|(k, r)| *k == FindingKind::Shadowed && r[0] == "math_won"),
        "{found:?}"
    );
}
