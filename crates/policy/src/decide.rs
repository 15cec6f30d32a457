//! The decide phase: from signals to a route.

use crate::compile::Policy;
use serde::Serialize;
use switchyard_workload::Signals;

/// The route a request takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Index into [`Policy::routes`].
    pub route: usize,
    /// Whether the route's condition matched (false when the default route was taken).
    pub matched: bool,
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
}

impl Policy {
    /// Picks the first route, in priority order, whose condition holds; the default route
    /// when none does; `None` when none does and there is no default.
    pub fn decide(&self, signals: &Signals) -> Option<Decision> {
        let holds = |id| signals.matched(id);
        for (index, route) in self.routes().iter().enumerate() {
            match &route.expr {
                Some(expr) if expr.eval(&holds) => {
                    return Some(Decision {
                        route: index,
                        matched: true,
                    });
                }
                Some(_) => {}
                None => {
                    return Some(Decision {
                        route: index,
                        matched: false,
                    });
                }
            }
        }
        None
    }

    /// Evaluates every route (not only up to the winner), for the explain trace.
    pub fn explain(&self, signals: &Signals) -> Vec<RouteTrace> {
        let holds = |id| signals.matched(id);
        self.routes()
            .iter()
            .filter_map(|route| {
                route.expr.as_ref().map(|expr| RouteTrace {
                    name: route.name.clone(),
                    priority: route.priority,
                    condition: route.condition.clone(),
                    matched: expr.eval(&holds),
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
}
