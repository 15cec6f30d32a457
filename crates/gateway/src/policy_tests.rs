//! A policy's TEST cases, run through the real phases (signals, decide, govern,
//! select, place) as dry runs: `switchyard check --run-tests`, and a reload with
//! `server.reload_runs_tests` before it swaps the policy in.

use crate::dry_run::{dry_exchange, prompt_request};
use crate::runtime::Runtime;

/// One case that took another route than its TEST says.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseFailure {
    /// The TEST block's name.
    pub test: String,
    /// The prompt.
    pub prompt: String,
    /// The route it should take.
    pub expected: String,
    /// What happened: the route taken, or `(error in PHASE: …)`.
    pub got: String,
    /// Where the case is written (line, column), when known.
    pub at: Option<(u64, u64)>,
    /// Every route whose condition matched, with its confidence.
    pub matching: Vec<(String, f64)>,
}

impl std::fmt::Display for CaseFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some((line, column)) = self.at {
            write!(f, ":{line}:{column}")?;
        }
        write!(
            f,
            ": FAIL test `{}`: {:?} took `{}`, expected `{}`\n  routes matching: ",
            self.test, self.prompt, self.got, self.expected
        )?;
        if self.matching.is_empty() {
            return write!(f, "none");
        }
        let shown: Vec<String> = self
            .matching
            .iter()
            .map(|(name, confidence)| format!("{name} ({confidence:.2})"))
            .collect();
        write!(f, "{}", shown.join(", "))
    }
}

/// What running a policy's TEST cases found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TestReport {
    /// Cases that took their route.
    pub passed: usize,
    /// Cases that did not.
    pub failed: Vec<CaseFailure>,
}

/// Runs every TEST case of the runtime's policy as a request for the first alias of
/// the expected route's scope (`auto`, or its recipe's) would run, stopping before
/// forward.
pub fn run(runtime: &Runtime) -> TestReport {
    let policy = &runtime.policy;
    let config = &policy.config;
    let mut report = TestReport::default();
    for test in &config.tests {
        for case in &test.cases {
            let scope = policy
                .routes()
                .iter()
                .find(|r| r.name == case.route.value)
                .map_or(0, |r| r.scope);
            let alias = policy
                .scopes()
                .get(scope)
                .and_then(|s| s.aliases.first())
                .map_or("auto", String::as_str);
            let (headers, body) = prompt_request(alias, &case.prompt, None);
            let x = dry_exchange(runtime, &headers, body);
            let got = match (&x.refusal, &x.routed) {
                (Some(r), _) => format!("(error in {}: {})", r.phase.name(), r.error.message),
                (None, Some(routed)) => routed.name.clone(),
                (None, None) => "(no route)".to_owned(),
            };
            if got == case.route.value {
                report.passed += 1;
                continue;
            }
            let at = config
                .source
                .as_ref()
                .and_then(|s| {
                    s.locate(case.route.referenced.line(), case.route.referenced.column())
                })
                .map(|p| (p.line, p.column));
            let matching = policy
                .explain_in(scope, &x.signals)
                .into_iter()
                .filter(|t| t.matched)
                .map(|t| (t.name, t.confidence))
                .collect();
            report.failed.push(CaseFailure {
                test: test.name.value.clone(),
                prompt: case.prompt.clone(),
                expected: case.route.value.clone(),
                got,
                at,
                matching,
            });
        }
    }
    report
}
