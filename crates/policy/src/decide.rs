//! The decide phase: from signals to a route.
//!
//! Routes are in evaluation order: tiered routes first (lower tiers first), then the
//! rest; within a tier priority descending, then name. Under the `priority` strategy
//! the first route that matches wins, unless another route of the same tier and
//! priority matches too, when the more confident match wins (ties: the name). Under
//! `confidence` the most confident match of the first tier with a match wins (ties:
//! priority, then name). The confidence of a condition is defined by
//! [`Expr::confidence`]: how sure the signals it needed were.
//!
//! [`Expr::confidence`]: crate::Expr::confidence

use crate::compile::{CompiledRoute, Policy};
use crate::config::DecisionStrategy;
use serde::Serialize;
use switchyard_workload::Signals;

/// The route a request takes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Decision {
    /// Index into [`Policy::routes`].
    pub route: usize,
    /// Whether the route's condition matched (false when the default route was taken).
    pub matched: bool,
    /// How sure the match is, in [0, 1] (for the default route: how sure it is that
    /// no route matched).
    pub confidence: f64,
}

/// How one route fared, for the explain trace.
#[derive(Debug, Clone, Serialize)]
pub struct RouteTrace {
    /// The route.
    pub name: String,
    /// Its priority.
    pub priority: i32,
    /// Its condition as written.
    pub condition: String,
    /// Whether it matched.
    pub matched: bool,
    /// How sure that outcome is.
    pub confidence: f64,
}

/// A matched route as the decision.
fn decided((route, confidence): (usize, f64)) -> Decision {
    Decision {
        route,
        matched: true,
        confidence,
    }
}

impl Policy {
    /// Whether a route matches, and how surely (`None` for the default route).
    fn outcome(&self, route: &CompiledRoute, signals: &Signals) -> Option<(bool, f64)> {
        route
            .expr
            .as_ref()
            .map(|expr| expr.confidence(&|atom| atom.read(signals, self.labels())))
    }

    /// Picks a route of the main scope (the one `server.route_aliases` pick) by the
    /// configured strategy; the default route when none matches; `None` when none
    /// matches and there is no default.
    pub fn decide(&self, signals: &Signals) -> Option<Decision> {
        self.decide_in(0, signals)
    }

    /// The same within one scope (a recipe): only its routes and its default compete,
    /// under its strategy.
    pub fn decide_in(&self, scope: usize, signals: &Signals) -> Option<Decision> {
        let scope = self.scopes().get(scope)?;
        let routes = self.routes().get(scope.range.clone())?;
        let offset = |d: Decision| Decision {
            route: d.route + scope.range.start,
            ..d
        };
        let decision = match scope.strategy {
            DecisionStrategy::Priority => self.decide_by_priority(routes, signals),
            DecisionStrategy::Confidence => self.decide_by_confidence(routes, signals),
            DecisionStrategy::Tiered => self.decide_by_tiers(routes, signals),
        };
        decision.map(offset)
    }

    /// Routes are in order of tier (none counting as 0), then priority, then name, so
    /// one pass keeps both answers: the surest match of the lowest tier (which wins
    /// once a tiered route matches) and the first match with the surest of its
    /// priority (which wins while only untiered routes match).
    fn decide_by_tiers(&self, routes: &[CompiledRoute], signals: &Signals) -> Option<Decision> {
        let mut tiered_match = false;
        // (index, confidence): by tier, then confidence; by priority, then confidence.
        let mut by_tier: Option<(usize, f64)> = None;
        let mut by_priority: Option<(usize, f64)> = None;
        for (index, route) in routes.iter().enumerate() {
            let sure = match self.outcome(route, signals) {
                Some((true, sure)) => sure,
                Some((false, _)) => continue,
                None => {
                    return match (tiered_match, by_tier, by_priority) {
                        (true, Some(best), _) | (false, _, Some(best)) => Some(decided(best)),
                        _ => Some(self.fallback(routes, index, signals)),
                    };
                }
            };
            tiered_match |= route.tier.is_some();
            let tier = route.tier.unwrap_or(0);
            if by_tier.is_none_or(|(b, s)| tier == routes[b].tier.unwrap_or(0) && sure > s) {
                by_tier = Some((index, sure));
            }
            if by_priority.is_none_or(|(b, s)| route.priority == routes[b].priority && sure > s) {
                by_priority = Some((index, sure));
            }
        }
        match (tiered_match, by_tier, by_priority) {
            (true, Some(best), _) | (false, _, Some(best)) => Some(decided(best)),
            _ => None,
        }
    }

    fn decide_by_priority(&self, routes: &[CompiledRoute], signals: &Signals) -> Option<Decision> {
        let holds = |atom: crate::Atom| atom.holds(signals, self.labels());
        for (index, route) in routes.iter().enumerate() {
            match &route.expr {
                Some(expr) if expr.eval(&holds) => {
                    let mut best = (index, self.outcome(route, signals).map_or(1.0, |o| o.1));
                    for (other, peer) in routes.iter().enumerate().skip(index + 1) {
                        if peer.priority != route.priority
                            || peer.tier != route.tier
                            || peer.expr.is_none()
                        {
                            break;
                        }
                        if let Some((true, sure)) = self.outcome(peer, signals)
                            && sure > best.1
                        {
                            best = (other, sure);
                        }
                    }
                    return Some(Decision {
                        route: best.0,
                        matched: true,
                        confidence: best.1,
                    });
                }
                Some(_) => {}
                None => return Some(self.fallback(routes, index, signals)),
            }
        }
        None
    }

    fn decide_by_confidence(
        &self,
        routes: &[CompiledRoute],
        signals: &Signals,
    ) -> Option<Decision> {
        let mut best: Option<(usize, f64)> = None;
        for (index, route) in routes.iter().enumerate() {
            // A match in an earlier tier wins: later tiers are not compared.
            if let Some((at, confidence)) = best
                && route.tier != routes[at].tier
            {
                return Some(Decision {
                    route: at,
                    matched: true,
                    confidence,
                });
            }
            match self.outcome(route, signals) {
                Some((true, sure)) => {
                    if best.is_none_or(|(_, b)| sure > b) {
                        best = Some((index, sure));
                    }
                }
                Some((false, _)) => {}
                None => {
                    return Some(match best {
                        Some((route, confidence)) => Decision {
                            route,
                            matched: true,
                            confidence,
                        },
                        None => self.fallback(routes, index, signals),
                    });
                }
            }
        }
        best.map(|(route, confidence)| Decision {
            route,
            matched: true,
            confidence,
        })
    }

    /// The default route at `index`, as sure as the surest failure is weakest: every
    /// route had to fail.
    fn fallback(&self, routes: &[CompiledRoute], index: usize, signals: &Signals) -> Decision {
        let confidence = routes
            .iter()
            .filter_map(|r| self.outcome(r, signals))
            .map(|(_, sure)| sure)
            .fold(1.0, f64::min);
        Decision {
            route: index,
            matched: false,
            confidence,
        }
    }

    /// Evaluates every route of the main scope (not only up to the winner), for the
    /// explain trace.
    pub fn explain(&self, signals: &Signals) -> Vec<RouteTrace> {
        self.explain_in(0, signals)
    }

    /// The same for the routes of one scope.
    pub fn explain_in(&self, scope: usize, signals: &Signals) -> Vec<RouteTrace> {
        let range = self.scopes().get(scope).map_or(0..0, |s| s.range.clone());
        self.routes()
            .get(range)
            .unwrap_or_default()
            .iter()
            .filter_map(|route| {
                self.outcome(route, signals)
                    .map(|(matched, confidence)| RouteTrace {
                        name: route.name.clone(),
                        priority: route.priority,
                        condition: route.condition.clone(),
                        matched,
                        confidence,
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::{Policy, parse_config};
    use switchyard_wire::Conversation;

    const POLICY: &str = "\
models:
  - name: coder
  - name: big
  - name: small
pools:
  - {name: p1, model: coder, context_window: 8K, endpoints: [{url: 'http://127.0.0.1:1'}]}
  - {name: p2, model: big, context_window: 128K, endpoints: [{url: 'http://127.0.0.1:2'}]}
  - {name: p3, model: small, context_window: 4K, endpoints: [{url: 'http://127.0.0.1:3'}]}
signals:
  keyword:
    - name: code
      keywords: [python, rust, compile]
    - name: urgent
      keywords: [asap]
  context:
    - name: long
      min: 2K
routes:
  - name: coding
    priority: 10
    when: {all: [{keyword: code}, {not: {context: long}}]}
    models: [coder]
  - name: long_context
    priority: 20
    when: {any: [{context: long}, {keyword: urgent}]}
    models: [big, coder]
default_route:
  models: [small]
";

    fn decide(policy: &Policy, prompt: &str) -> String {
        let conv = Conversation::from_prompt("auto", prompt);
        let signals = policy.signals.characterize(&conv, policy.needed_signals());
        let d = policy.decide(&signals).unwrap();
        policy.route(d.route).unwrap().name.clone()
    }

    #[test]
    fn priority_then_default() {
        let policy = Policy::compile(parse_config(POLICY).unwrap()).unwrap();
        assert!(policy.warnings.is_empty(), "{:?}", policy.warnings);
        assert_eq!(decide(&policy, "how do I compile rust"), "coding");
        assert_eq!(decide(&policy, "hello there"), "default");
        assert_eq!(decide(&policy, "asap please"), "long_context");
        let long_code = format!("python {}", "word ".repeat(3000));
        assert_eq!(decide(&policy, &long_code), "long_context");
        assert_eq!(policy.routes()[0].name, "long_context");
        assert_eq!(policy.routes()[0].candidates, vec![1, 0]);
    }

    #[test]
    fn explain_lists_every_route() {
        let policy = Policy::compile(parse_config(POLICY).unwrap()).unwrap();
        let conv = Conversation::from_prompt("auto", "rust asap");
        let signals = policy.signals.characterize(&conv, policy.needed_signals());
        let trace = policy.explain(&signals);
        assert_eq!(trace.len(), 2);
        assert!(trace.iter().all(|t| t.matched));
        assert_eq!(
            trace[1].condition,
            "(keyword(\"code\") AND NOT context(\"long\"))"
        );
    }

    #[test]
    fn each_recipe_decides_among_its_own_routes_with_its_own_default_and_strategy() {
        let text = format!(
            "{POLICY}recipes:
  - name: careful
    aliases: [careful, team/careful]
    strategy: confidence
    default_route: {{name: careful_default, models: [big]}}
  - name: bare
    aliases: [bare]
"
        )
        .replace(
            "routes:\n",
            "routes:
  - {name: careful_code, recipe: careful, priority: 1, when: {keyword: code}, models: [big]}
  - {name: careful_urgent, recipe: careful, priority: 9, when: {keyword: urgent}, models: [coder]}
  - {name: bare_code, recipe: bare, when: {keyword: code}, models: [small]}
",
        );
        let policy =
            Policy::compile(parse_config(&text).unwrap()).unwrap_or_else(|e| panic!("{e}"));
        let careful = policy.scope_of("team/careful").unwrap();
        assert_eq!(policy.scope_of("careful"), Some(careful));
        assert_eq!(policy.scope_of("auto"), Some(0));
        let bare = policy.scope_of("bare").unwrap();
        let take = |scope: usize, prompt: &str| {
            let conv = Conversation::from_prompt("auto", prompt);
            let signals = policy.signals.characterize(&conv, policy.needed_in(scope));
            policy
                .decide_in(scope, &signals)
                .map(|d| policy.route(d.route).unwrap().name.clone())
        };
        // The main scope never takes a recipe's route, nor a recipe the main one's.
        assert_eq!(take(0, "compile rust").as_deref(), Some("coding"));
        assert_eq!(
            take(careful, "compile rust").as_deref(),
            Some("careful_code")
        );
        assert_eq!(take(careful, "hello").as_deref(), Some("careful_default"));
        assert_eq!(take(0, "hello").as_deref(), Some("default"));
        // Without a default, a recipe's unmatched request has no route.
        assert_eq!(take(bare, "hello"), None);
        assert_eq!(take(bare, "python").as_deref(), Some("bare_code"));
        // A recipe's requests compute only the signals its routes read.
        let context = policy
            .signals
            .lookup(switchyard_workload::SignalFamily::Context, "long")
            .unwrap();
        assert!(!policy.needed_in(bare).contains(&context));
        assert!(policy.needed_in(0).contains(&context));
        let explained: Vec<String> = {
            let conv = Conversation::from_prompt("auto", "rust asap");
            let signals = policy
                .signals
                .characterize(&conv, policy.needed_in(careful));
            policy
                .explain_in(careful, &signals)
                .into_iter()
                .map(|t| t.name)
                .collect()
        };
        assert_eq!(explained, vec!["careful_urgent", "careful_code"]);
        // The gap of the recipe without a default is its own finding.
        assert!(
            policy
                .warnings
                .iter()
                .any(|w| w.message.contains("no route of recipe `bare`")),
            "{:?}",
            policy.warnings
        );
    }

    #[test]
    fn recipes_are_refused_when_their_names_or_aliases_clash() {
        let bad = format!(
            "{POLICY}recipes:
  - {{name: r, aliases: [auto]}}
  - {{name: r, aliases: [coder]}}
  - {{name: s, aliases: []}}
  - {{name: t, aliases: [x], default_route: {{name: default, models: [big]}}}}
"
        )
        .replace(
            "routes:\n",
            "routes:\n  - {name: stray, recipe: rr, when: {keyword: code}, models: [big]}\n",
        );
        let err = Policy::compile(parse_config(&bad).unwrap())
            .unwrap_err()
            .to_string();
        for expected in [
            "alias `auto` is already a server.route_aliases entry",
            "alias `coder` is already a configured model",
            "recipe `r` is defined twice",
            "recipe `s` has no alias",
            "`default` is also the name of another route",
            "unknown recipe `rr`",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in {err}");
        }
    }

    #[test]
    fn a_signal_that_fails_to_build_is_the_only_error_reported() {
        // The unknown category is the error; the keyword signals the routes read are
        // defined, and are not reported unknown because the engine did not build.
        let text = POLICY.replace(
            "  context:\n",
            "  domain:\n    - {name: maths, categories: [not_a_category]}\n  context:\n",
        );
        let err = Policy::compile(parse_config(&text).unwrap()).unwrap_err();
        let errors: Vec<&str> = err
            .diagnostics
            .iter()
            .filter(|d| d.severity == crate::Severity::Error)
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("maths"), "{errors:?}");
    }

    #[test]
    fn no_default_means_no_decision() {
        let text = POLICY.split("default_route").next().unwrap();
        let policy = Policy::compile(parse_config(text).unwrap()).unwrap();
        let conv = Conversation::from_prompt("auto", "hello");
        let signals = policy.signals.characterize(&conv, policy.needed_signals());
        assert!(policy.decide(&signals).is_none());
    }

    #[test]
    fn cross_references_are_checked_with_suggestions() {
        let text = POLICY
            .replace("models: [coder]", "models: [codr]")
            .replace("{keyword: urgent}", "{keyword: urgnt}")
            .replace("model: small,", "model: tiny,");
        let err = Policy::compile(parse_config(&text).unwrap()).unwrap_err();
        let all = err.to_string();
        assert!(
            all.contains("unknown model `codr`") && all.contains("did you mean `coder`?"),
            "{all}"
        );
        assert!(
            all.contains("unknown keyword signal `urgnt`") && all.contains("`urgent`"),
            "{all}"
        );
        assert!(all.contains("unknown model `tiny`"), "{all}");
        assert!(all.contains("model `small` is served by no pool"), "{all}");
        let line_of_codr = err
            .diagnostics
            .iter()
            .find(|d| d.message.contains("codr"))
            .unwrap()
            .line;
        assert_eq!(line_of_codr, 22);
    }

    #[test]
    fn unused_signal_is_a_warning() {
        let text = POLICY.replace("{keyword: urgent}", "{context: long}");
        let policy = Policy::compile(parse_config(&text).unwrap()).unwrap();
        assert_eq!(policy.warnings.len(), 1);
        assert!(policy.warnings[0].message.contains("`urgent`"));
    }

    const STRATEGIES: &str = "\
models: [{name: m}]
pools: [{name: p, model: m, context_window: 8K, endpoints: [{url: 'http://127.0.0.1:1'}]}]
signals:
  keyword:
    - {name: legal, keywords: [contract], scoring: bm25}
    - {name: hello, keywords: [hello]}
  complexity: []
routes:
  - {name: a_legal, priority: LEGAL, when: {keyword: legal}, models: [m]}
  - {name: b_greet, priority: 0, when: {keyword: hello}, models: [m]}
  - {name: c_count, priority: -5, when: {keyword: {name: hello, value: '>= 2'}}, models: [m]}
";

    fn pick(yaml: &str, prompt: &str) -> (String, f64) {
        let policy = Policy::compile(parse_config(yaml).unwrap()).unwrap();
        let conv = Conversation::from_prompt("auto", prompt);
        let signals = policy.signals.characterize(&conv, policy.needed_signals());
        let d = policy.decide(&signals).unwrap();
        (policy.route(d.route).unwrap().name.clone(), d.confidence)
    }

    #[test]
    fn the_tiered_strategy_ranks_untiered_routes_as_tier_0_once_a_tiered_route_matches() {
        // a_legal: priority 10, confidence 0.83 on "contract"; b_greet: priority 0,
        // sure; c_count (two hellos): priority -5, tier 1.
        let tiered = format!(
            "{}decision: {{strategy: tiered}}\n",
            STRATEGIES
                .replace("LEGAL", "10")
                .replace("priority: -5,", "priority: -5, tier: 1,")
        );
        // No tiered route matches: priority decides, as under `priority`.
        assert_eq!(pick(&tiered, "hello contract").0, "a_legal");
        // c_count (tier 1) matches: the untiered routes rank as tier 0 and win over
        // it, the surer first: b_greet over a_legal despite its priority.
        assert_eq!(pick(&tiered, "hello hello contract").0, "b_greet");
        assert_eq!(pick(&tiered, "hello hello").0, "b_greet");
        // Under `priority` the tiered route would come first.
        let by_priority = tiered.replace("strategy: tiered", "strategy: priority");
        assert_eq!(pick(&by_priority, "hello hello contract").0, "c_count");
        // The checker ranks the untiered routes first under `tiered`.
        let policy = Policy::compile(parse_config(&tiered).unwrap()).unwrap();
        assert_eq!(policy.routes()[2].name, "c_count", "tier 1 after tier 0");
        let overlap = policy
            .analysis
            .findings
            .iter()
            .find(|f| f.routes.contains(&"c_count".to_owned()))
            .unwrap();
        assert!(
            overlap
                .message
                .contains("no tier (tier 0) comes before tier 1"),
            "{}",
            overlap.message
        );
    }

    #[test]
    fn priority_ties_go_to_confidence_and_the_confidence_strategy_ignores_priority() {
        // BM25 over two words scores the one hit at 1.66 against a threshold of 1:
        // matched, with confidence 1.66 / 2 = 0.83; the plain keyword is sure (1).
        let higher = STRATEGIES.replace("LEGAL", "10");
        let (route, sure) = pick(&higher, "hello contract");
        assert_eq!(route, "a_legal");
        assert!((0.8..0.86).contains(&sure), "{sure}");
        let tied = STRATEGIES.replace("LEGAL", "0");
        assert_eq!(pick(&tied, "hello contract"), ("b_greet".to_owned(), 1.0));
        assert_eq!(pick(&tied, "contract").0, "a_legal", "alone it still wins");
        let by_confidence = format!("{higher}decision: {{strategy: confidence}}\n");
        assert_eq!(
            pick(&by_confidence, "hello contract"),
            ("b_greet".to_owned(), 1.0)
        );
        assert_eq!(pick(&by_confidence, "contract").0, "a_legal");
        // Equal confidence: priority decides (b_greet 0 over c_count -5).
        assert_eq!(pick(&by_confidence, "hello hello").0, "b_greet");
    }

    #[test]
    fn value_tests_read_the_signal_value() {
        let yaml = STRATEGIES
            .replace("LEGAL", "10")
            .replace("priority: -5", "priority: 5");
        assert_eq!(pick(&yaml, "hello hello").0, "c_count");
        assert_eq!(pick(&yaml, "hello").0, "b_greet");
        let err = parse_config(&yaml.replace("'>= 2'", "'about 2'"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a test"), "{err}");
        let err = parse_config(&yaml.replace("value: '>= 2'", "valeu: '>= 2'"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("did you mean `value`?"), "{err}");
    }

    #[test]
    fn confidence_of_and_or_not_is_that_of_the_deciding_evidence() {
        use crate::{Atom, Expr};
        use switchyard_workload::SignalId;
        // Atom i holds when i is even, with certainty (i + 1) / 10.
        let read = |atom: Atom| {
            let i = atom.signal().0;
            (i.is_multiple_of(2), (i as f64 + 1.0) / 10.0)
        };
        let a = |i| Expr::Atom(Atom::Holds(SignalId(i)));
        let and = |xs: Vec<Expr>| Expr::All(xs);
        let or = |xs: Vec<Expr>| Expr::Any(xs);
        let not = |x| Expr::Not(Box::new(x));
        // AND that holds: its least sure part; that fails: its surest failing part.
        assert_eq!(and(vec![a(0), a(2), a(4)]).confidence(&read), (true, 0.1));
        assert_eq!(and(vec![a(0), a(1), a(3)]).confidence(&read), (false, 0.4));
        // OR that holds: its surest holding part; that fails: its least sure part.
        assert_eq!(or(vec![a(1), a(2), a(4)]).confidence(&read), (true, 0.5));
        assert_eq!(or(vec![a(5), a(1), a(3)]).confidence(&read), (false, 0.2));
        // NOT keeps the certainty and flips the outcome.
        assert_eq!(not(a(1)).confidence(&read), (true, 0.2));
        assert_eq!(
            and(vec![not(a(1)), or(vec![a(4), a(3)])]).confidence(&read),
            (true, 0.2)
        );
        assert_eq!(and(vec![]).confidence(&read), (true, 1.0));
        assert_eq!(or(vec![]).confidence(&read), (false, 1.0));
    }

    #[test]
    fn an_earlier_tier_wins_over_priority_and_confidence() {
        // `c_count` (hello twice) in tier 1 beats `b_greet`, sure and of higher
        // priority, under both strategies; without a match in tier 1 the rest compete.
        let tiered = STRATEGIES
            .replace("LEGAL", "10")
            .replace("priority: -5,", "priority: -5, tier: 1,");
        assert_eq!(pick(&tiered, "hello hello").0, "c_count");
        assert_eq!(pick(&tiered, "hello").0, "b_greet");
        let by_confidence = format!("{tiered}decision: {{strategy: confidence}}\n");
        assert_eq!(pick(&by_confidence, "hello hello contract").0, "c_count");
        assert_eq!(pick(&by_confidence, "hello contract").0, "b_greet");
        let policy = Policy::compile(parse_config(&tiered).unwrap()).unwrap();
        assert_eq!(
            policy.routes()[0].name,
            "c_count",
            "tiered routes are tried first"
        );
        let overlap = policy
            .analysis
            .findings
            .iter()
            .find(|f| f.routes == ["b_greet", "c_count"])
            .expect("an overlap");
        assert!(
            overlap.message.contains("its tier 1 comes before no tier"),
            "{}",
            overlap.message
        );
    }

    #[test]
    fn label_atoms_read_the_categorical_outcome() {
        let yaml = "\
models: [{name: m}]
pools: [{name: p, model: m, context_window: 8K, endpoints: [{url: 'http://127.0.0.1:1'}]}]
signals:
  metadata:
    - {name: tier, key: 'header:x-tier'}
routes:
  - {name: gold, when: {metadata: {name: tier, label: gold}}, models: [m]}
  - {name: silver, when: {metadata: {name: tier, label: silver}}, models: [m]}
default_route: {models: [m]}
";
        let policy = Policy::compile(parse_config(yaml).unwrap()).unwrap();
        let route = |tier: Option<&str>| {
            let mut conv = Conversation::from_prompt("auto", "hello");
            if let Some(t) = tier {
                conv.attach_header("X-Tier", t);
            }
            let signals = policy.signals.characterize(&conv, policy.needed_signals());
            let d = policy.decide(&signals).unwrap();
            policy.route(d.route).unwrap().name.clone()
        };
        assert_eq!(route(Some("gold")), "gold");
        assert_eq!(route(Some("silver")), "silver");
        assert_eq!(route(Some("bronze")), "default");
        assert_eq!(route(None), "default");
        // One label at a time: the two routes never overlap, and nothing is shadowed.
        assert!(
            policy.analysis.findings.is_empty(),
            "{:?}",
            policy.analysis.findings
        );
        assert_eq!(policy.routes()[0].condition, "metadata(\"tier\", \"gold\")");
        let both = yaml.replace("label: silver", "label: gold");
        let policy = Policy::compile(parse_config(&both).unwrap()).unwrap();
        let shadowed = policy
            .analysis
            .findings
            .iter()
            .find(|f| f.kind == crate::FindingKind::Shadowed)
            .expect("the same label twice shadows");
        let w = shadowed.witness.as_ref().unwrap();
        assert!(
            w.facts
                .iter()
                .any(|f| f.contains("label of metadata(\"tier\") is gold")),
            "{w}"
        );
    }
}
