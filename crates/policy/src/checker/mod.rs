//! The checker: what a compiled policy does for every possible request, proved
//! rather than guessed from shared signal names. One route or a pair is a small
//! binary decision diagram (biodivine-lib-bdd); questions over many routes at once
//! (can this route win over all earlier ones, can a request match none) go to a CDCL
//! SAT solver ([`sat`]), since a union of many conditions can blow a diagram up.
//!
//! Each signal a route references is a boolean variable; what is known about signals
//! ([`facts`]: ranges on one quantity, one top domain, implications between PII
//! signals) constrains which assignments are possible requests. Routes are taken in
//! evaluation order (priority, then name). For every route the checker decides:
//!
//! - **dead**: no possible request matches it;
//! - **shadowed**: every request that matches it matches an earlier route;
//! - **overlap**: it and an earlier route can match the same request (the earlier
//!   wins; a warning when priorities are equal, so that confidence and then the name
//!   order decide); under the `confidence` strategy any overlap is a note that the
//!   more confident match wins, and no route is reported shadowed, since confidence
//!   is not a property of the signals' truth values;
//! - **gap** (once): a possible request matches no route and there is no default.
//!
//! Each finding but "dead" carries a witness: an assignment of the signals involved
//! (and the region of each quantity, such as the prompt-token range) that shows it.

mod facts;
mod projections;
mod sat;

use crate::compile::{Atom, Expr, Policy};
use crate::config::DecisionStrategy;
use biodivine_lib_bdd::{Bdd, BddValuation, BddVariable, BddVariableSet};
use facts::Facts;
use serde::Serialize;
use std::collections::BTreeSet;

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The route's condition holds for no possible request.
    Dead,
    /// Every request the route matches is taken by an earlier route.
    Shadowed,
    /// Two routes can match one request; the earlier one wins by priority.
    Overlap,
    /// Two routes of equal priority can match one request; the name order decides.
    Tie,
    /// A request can match no route, and there is no default route.
    Gap,
    /// The solver failed on a question (never taken as an answer either way).
    Undecided,
    /// A constraint refuses every request of a route that it covers (no candidate
    /// of the route meets it).
    Refused,
    /// A constraint covers no possible request.
    Idle,
}

impl FindingKind {
    /// Whether `check` reports it as a warning (else as a note).
    pub fn is_warning(self) -> bool {
        !matches!(self, FindingKind::Overlap)
    }
}

/// A concrete request shape that shows a finding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Witness {
    /// Signals that hold (`keyword("code")`).
    pub holds: Vec<String>,
    /// Signals that do not hold.
    pub fails: Vec<String>,
    /// The region of each constrained quantity (`prompt tokens in [4096, 8192)`).
    pub facts: Vec<String>,
}

impl std::fmt::Display for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self.holds.clone();
        parts.extend(self.fails.iter().map(|s| format!("not {s}")));
        parts.extend(self.facts.iter().cloned());
        if parts.is_empty() {
            write!(f, "any request")
        } else {
            write!(f, "{}", parts.join(", "))
        }
    }
}

/// One thing the checker proved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Its kind.
    pub kind: FindingKind,
    /// The routes concerned: the one at fault first (or the loser of an overlap).
    pub routes: Vec<String>,
    /// What it means.
    pub message: String,
    /// A request that shows it.
    pub witness: Option<Witness>,
    /// The constraint concerned, for constraint findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
}

/// The checker's result.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Analysis {
    /// Findings in route order.
    pub findings: Vec<Finding>,
    /// Signals referenced by routes (the boolean variables).
    pub signals: usize,
    /// Variables in all, with the regions of constrained quantities.
    pub variables: usize,
}

/// The policy as diagrams.
struct Encoding {
    vars: BddVariableSet,
    /// Atom variables, sorted by atom.
    atoms: Vec<(Atom, BddVariable)>,
    /// Per facet: its region variables.
    regions: Vec<Vec<BddVariable>>,
    facts: Facts,
    /// Possible requests.
    possible: Bdd,
    /// The same as clauses, for the solver.
    clauses: sat::Cnf,
}

impl Encoding {
    fn new(policy: &Policy) -> Result<Encoding, String> {
        let used: BTreeSet<Atom> = policy.atoms().iter().copied().collect();
        // Projections are computed from other signals: those are variables too.
        let used = projections::inputs(&policy.signals, &used);
        let facts = Facts::gather(
            (&policy.config.signals, &policy.signals),
            &used,
            policy.labels(),
        );
        let region_count: usize = facts.facets.iter().map(|f| f.regions.len()).sum();
        let total = used.len() + region_count;
        let count = u16::try_from(total)
            .map_err(|_| format!("{total} variables are more than the 65,535 it handles"))?;
        let vars = BddVariableSet::new_anonymous(count);
        let all = vars.variables();
        // Sorted (from the set), so lookups can search.
        let atoms: Vec<(Atom, BddVariable)> =
            used.iter().copied().zip(all.iter().copied()).collect();
        let mut next = used.len();
        let mut regions = Vec::new();
        for facet in &facts.facets {
            regions.push(all[next..next + facet.regions.len()].to_vec());
            next += facet.regions.len();
        }
        let mut clauses = fact_clauses(&facts, &atoms, &regions, total);
        // The facts are written once, as clauses; the diagram is their conjunction.
        let mut possible = clauses.clauses.iter().fold(vars.mk_true(), |acc, clause| {
            let any = clause.iter().fold(vars.mk_false(), |any, &literal| {
                let var = BddVariable::from_index(literal.unsigned_abs() as usize - 1);
                any.or(&vars.mk_literal(var, literal > 0))
            });
            acc.and(&any)
        });
        // Links are diagrams; the solver gets them as gates (one per node).
        for link in &facts.links {
            possible = possible.and(&link_bdd(&vars, link, &atoms, &regions[link.facet]));
            link_clauses(&mut clauses, link, &atoms, &regions[link.facet]);
        }
        Ok(Encoding {
            vars,
            atoms,
            regions,
            facts,
            possible,
            clauses,
        })
    }

    /// Whether a possible request matches `must` and none of `must_not`; a model if so.
    fn solve(&self, must: Option<&Expr>, must_not: &[&Expr]) -> Result<Option<Vec<bool>>, String> {
        let mut cnf = self.clauses.clone();
        let var = |id| sat_literal(&self.atoms, id);
        if let Some(expr) = must {
            let l = cnf.literal(expr, &var);
            cnf.clauses.push(vec![l]);
        }
        for expr in must_not {
            let l = cnf.literal(expr, &var);
            cnf.clauses.push(vec![-l]);
        }
        sat::solve(&cnf.clauses, usize::from(self.vars.num_vars()))
    }

    fn atom(&self, atom: Atom) -> Bdd {
        match variable(&self.atoms, atom) {
            Some(var) => self.vars.mk_var(var),
            // Not referenced by any route: unconstrained, never asked.
            None => self.vars.mk_false(),
        }
    }

    fn expr(&self, expr: &Expr) -> Bdd {
        match expr {
            Expr::All(items) => items
                .iter()
                .fold(self.vars.mk_true(), |acc, e| acc.and(&self.expr(e))),
            Expr::Any(items) => items
                .iter()
                .fold(self.vars.mk_false(), |acc, e| acc.or(&self.expr(e))),
            Expr::Not(inner) => self.expr(inner).not(),
            Expr::Atom(id) => self.atom(*id),
        }
    }

    /// A witness from a member of `set`, naming the signals of `exprs`.
    fn witness(&self, policy: &Policy, set: &Bdd, exprs: &[&Expr]) -> Option<Witness> {
        let valuation: BddValuation = set.sat_witness()?;
        Some(self.witness_of(policy, &|v| valuation[v], exprs))
    }

    /// A witness from an assignment, naming the signals of `exprs`.
    fn witness_of(
        &self,
        policy: &Policy,
        value: &dyn Fn(BddVariable) -> bool,
        exprs: &[&Expr],
    ) -> Witness {
        let mut shown = BTreeSet::new();
        for e in exprs {
            e.atoms(&mut shown);
        }
        let mut witness = Witness::default();
        for (atom, var) in &self.atoms {
            if !shown.contains(atom) {
                continue;
            }
            let name = policy.atom_name(*atom);
            if value(*var) {
                witness.holds.push(name);
            } else {
                witness.fails.push(name);
            }
        }
        for (facet, regions) in self.facts.facets.iter().zip(&self.regions) {
            let relevant = facet.members.iter().any(|(s, _, _)| shown.contains(s));
            if let Some(r) = regions.iter().position(|v| value(*v)).filter(|_| relevant) {
                witness
                    .facts
                    .push(format!("{} {}", facet.what, in_region(&facet.regions[r])));
            }
        }
        witness
    }
}

/// The variable of an atom referenced by some route.
fn variable(atoms: &[(Atom, BddVariable)], atom: Atom) -> Option<BddVariable> {
    let at = atoms.binary_search_by_key(&atom, |(a, _)| *a).ok()?;
    Some(atoms[at].1)
}

/// The same as a solver literal (variable `i` is `i + 1`).
fn sat_literal(atoms: &[(Atom, BddVariable)], atom: Atom) -> Option<i32> {
    variable(atoms, atom).and_then(|v| i32::try_from(v.to_index() + 1).ok())
}

/// The facts as clauses: per facet, exactly one region; a member holds only in its
/// regions (and, when exact, in all of them); implications between signals.
fn fact_clauses(
    facts: &Facts,
    atoms: &[(Atom, BddVariable)],
    regions: &[Vec<BddVariable>],
    total: usize,
) -> sat::Cnf {
    let mut cnf = sat::Cnf::new(total);
    let lit = |v: BddVariable| i32::try_from(v.to_index() + 1).unwrap_or(i32::MAX);
    for (facet, regions) in facts.facets.iter().zip(regions) {
        cnf.clauses.push(regions.iter().map(|&v| lit(v)).collect());
        for (i, &a) in regions.iter().enumerate() {
            for &b in &regions[i + 1..] {
                cnf.clauses.push(vec![-lit(a), -lit(b)]);
            }
        }
        for (signal, covered, exact) in &facet.members {
            let Some(atom) = sat_literal(atoms, *signal) else {
                continue;
            };
            let mut clause = vec![-atom];
            clause.extend(covered.iter().map(|&r| lit(regions[r])));
            cnf.clauses.push(clause);
            if *exact {
                for &r in covered {
                    cnf.clauses.push(vec![-lit(regions[r]), atom]);
                }
            }
        }
    }
    for clause in &facts.clauses {
        let literals: Option<Vec<i32>> = clause
            .iter()
            .map(|&(atom, holds)| sat_literal(atoms, atom).map(|l| if holds { l } else { -l }))
            .collect();
        if let Some(literals) = literals {
            cnf.clauses.push(literals);
        }
    }
    for (a, b) in &facts.implications {
        if let (Some(a), Some(b)) = (sat_literal(atoms, *a), sat_literal(atoms, *b)) {
            cnf.clauses.push(vec![-a, b]);
        }
    }
    cnf
}

/// A projection's link as a diagram: at a branch, the atom's value picks the side;
/// at a leaf, one of the listed regions holds.
fn link_bdd(
    vars: &BddVariableSet,
    link: &projections::Link,
    atoms: &[(Atom, BddVariable)],
    regions: &[BddVariable],
) -> Bdd {
    let mut built: Vec<Option<Bdd>> = vec![None; link.nodes.len()];
    // Children are built before their parents: a node's index is past its children's.
    for (i, node) in link.nodes.iter().enumerate() {
        let bdd = match node {
            projections::LinkNode::Leaf(possible) => possible
                .iter()
                .fold(vars.mk_false(), |acc, &r| acc.or(&vars.mk_var(regions[r]))),
            projections::LinkNode::Branch(atom, holds, fails) => {
                let (Some(Some(h)), Some(Some(f))) = (built.get(*holds), built.get(*fails)) else {
                    return vars.mk_true();
                };
                match variable(atoms, *atom) {
                    Some(v) => {
                        let x = vars.mk_var(v);
                        x.and(h).or(&x.not().and(f))
                    }
                    None => h.or(f),
                }
            }
        };
        built[i] = Some(bdd);
    }
    built
        .get(link.root)
        .cloned()
        .flatten()
        .unwrap_or_else(|| vars.mk_true())
}

/// The same link as clauses: a gate per node, implying its node's meaning, and the
/// root asserted.
fn link_clauses(
    cnf: &mut sat::Cnf,
    link: &projections::Link,
    atoms: &[(Atom, BddVariable)],
    regions: &[BddVariable],
) {
    let lit = |v: BddVariable| i32::try_from(v.to_index() + 1).unwrap_or(i32::MAX);
    let gates: Vec<i32> = link.nodes.iter().map(|_| cnf.fresh()).collect();
    for (node, &gate) in link.nodes.iter().zip(&gates) {
        match node {
            projections::LinkNode::Leaf(possible) => {
                let mut clause = vec![-gate];
                clause.extend(possible.iter().map(|&r| lit(regions[r])));
                cnf.clauses.push(clause);
            }
            projections::LinkNode::Branch(atom, holds, fails) => {
                let (h, f) = (gates[*holds], gates[*fails]);
                match sat_literal(atoms, *atom) {
                    Some(a) => {
                        cnf.clauses.push(vec![-gate, -a, h]);
                        cnf.clauses.push(vec![-gate, a, f]);
                    }
                    None => cnf.clauses.push(vec![-gate, h, f]),
                }
            }
        }
    }
    cnf.clauses.push(vec![gates[link.root]]);
}

fn in_region(region: &str) -> String {
    if region.starts_with('[') {
        format!("in {region}")
    } else if region.starts_with("in ") || region.starts_with("= ") {
        region.to_owned()
    } else {
        format!("is {region}")
    }
}

impl Policy {
    /// Proves what the routes do: dead, shadowed and overlapping routes, and gaps.
    pub fn analyze(&self) -> Analysis {
        let encoding = match Encoding::new(self) {
            Ok(encoding) => encoding,
            Err(reason) => {
                return Analysis {
                    findings: vec![Finding {
                        kind: FindingKind::Undecided,
                        routes: Vec::new(),
                        message: format!("the checker could not encode the policy: {reason}"),
                        witness: None,
                        constraint: None,
                    }],
                    ..Analysis::default()
                };
            }
        };
        let possible = &encoding.possible;
        let mut findings = Vec::new();
        let mut undecided = Vec::new();
        let routes = self.routes();
        // Each named policy is checked on its own: its routes never compete with
        // another's.
        for scope in self.scopes() {
            // (route index, its condition as a diagram) for routes evaluated so far.
            let mut earlier: Vec<(usize, Bdd)> = Vec::new();
            // Under `tiered` a route without a tier ranks as tier 0, and within a tier the
            // more confident match may win (untiered routes compare by priority only while
            // no tiered route matches: "either may win" covers both).
            let strategy = scope.strategy;
            let by_confidence = matches!(
                strategy,
                DecisionStrategy::Confidence | DecisionStrategy::Tiered
            );
            let rank = |tier| strategy.tier_rank(tier);
            for (index, route) in routes
                .iter()
                .enumerate()
                .take(scope.range.end)
                .skip(scope.range.start)
            {
                let Some(expr) = &route.expr else { continue };
                let matches = encoding.expr(expr).and(possible);
                if matches.is_false() {
                    findings.push(Finding {
                        kind: FindingKind::Dead,
                        routes: vec![route.name.clone()],
                        message: format!(
                            "route `{}` can never match: no request satisfies its condition `{}`",
                            route.name, route.condition
                        ),
                        witness: None,
                        constraint: None,
                    });
                    continue;
                }
                let mut overlapping = Vec::new();
                for (other, condition) in &earlier {
                    let both = matches.and(condition);
                    if both.is_false() {
                        continue;
                    }
                    let winner = &routes[*other];
                    let tier = |t: Option<u32>| match t {
                        Some(t) => format!("tier {t}"),
                        None if rank(None) == 0 => "no tier (tier 0)".to_owned(),
                        None => "no tier".to_owned(),
                    };
                    let (kind, how) = if rank(winner.tier) != rank(route.tier) {
                        (
                            FindingKind::Overlap,
                            format!(
                                "its {} comes before {}",
                                tier(winner.tier),
                                tier(route.tier)
                            ),
                        )
                    } else if by_confidence {
                        (
                            FindingKind::Overlap,
                            "the more confident match wins (then the higher priority)".to_owned(),
                        )
                    } else if winner.priority == route.priority {
                        (
                            FindingKind::Tie,
                            format!(
                                "both have priority {}, so the more confident match wins, and when \
                             both are as sure, the name order decides",
                                route.priority
                            ),
                        )
                    } else {
                        (
                            FindingKind::Overlap,
                            format!(
                                "its priority {} is above {}",
                                winner.priority, route.priority
                            ),
                        )
                    };
                    let exprs: Vec<&Expr> = [winner.expr.as_ref(), Some(expr)]
                        .into_iter()
                        .flatten()
                        .collect();
                    let wins = if by_confidence && rank(winner.tier) == rank(route.tier) {
                        "either may win".to_owned()
                    } else {
                        format!("`{}` wins", winner.name)
                    };
                    findings.push(Finding {
                        kind,
                        routes: vec![route.name.clone(), winner.name.clone()],
                        message: format!(
                            "routes `{}` and `{}` can match the same request; {wins}: {how}",
                            winner.name, route.name
                        ),
                        witness: encoding.witness(self, &both, &exprs),
                        constraint: None,
                    });
                    overlapping.push(*other);
                }
                // Under the confidence strategy only an earlier tier's match always wins.
                overlapping.retain(|i| !by_confidence || rank(routes[*i].tier) != rank(route.tier));
                let earlier_exprs: Vec<&Expr> = overlapping
                    .iter()
                    .filter_map(|i| routes[*i].expr.as_ref())
                    .collect();
                let can_win = earlier_exprs.is_empty()
                    || match encoding.solve(Some(expr), &earlier_exprs) {
                        Ok(model) => model.is_some(),
                        Err(reason) => {
                            undecided.push(format!("whether `{}` can win: {reason}", route.name));
                            true
                        }
                    };
                if !can_win {
                    let names: Vec<String> = overlapping
                        .iter()
                        .map(|i| format!("`{}`", routes[*i].name))
                        .collect();
                    let mut exprs: Vec<&Expr> = overlapping
                        .iter()
                        .filter_map(|i| routes[*i].expr.as_ref())
                        .collect();
                    exprs.push(expr);
                    findings.push(Finding {
                    kind: FindingKind::Shadowed,
                    routes: std::iter::once(route.name.clone())
                        .chain(overlapping.iter().map(|i| routes[*i].name.clone()))
                        .collect(),
                    message: format!(
                        "route `{}` never wins: every request it matches is taken first by an earlier route ({})",
                        route.name,
                        names.join(", ")
                    ),
                    witness: encoding.witness(self, &matches, &exprs),
                    constraint: None,
                });
                }
                earlier.push((index, matches));
            }
            let of_recipe = scope
                .name
                .as_ref()
                .map(|n| format!(" of recipe `{n}`"))
                .unwrap_or_default();
            if !scope.has_default {
                let exprs: Vec<&Expr> = routes[scope.range.clone()]
                    .iter()
                    .filter_map(|r| r.expr.as_ref())
                    .collect();
                match encoding.solve(None, &exprs) {
                    Ok(Some(model)) => {
                        let value =
                            |v: BddVariable| model.get(v.to_index()).copied().unwrap_or(false);
                        findings.push(Finding {
                            kind: FindingKind::Gap,
                            routes: Vec::new(),
                            message: format!(
                                "a request can match no route{of_recipe}, and there is no default \
                             route: it gets an error"
                            ),
                            witness: Some(encoding.witness_of(self, &value, &exprs)),
                            constraint: None,
                        });
                    }
                    Ok(None) => {}
                    Err(reason) => {
                        undecided.push(format!(
                            "whether a request can match no route{of_recipe}: {reason}"
                        ));
                    }
                }
            }
        }
        self.check_constraints(&encoding, &mut findings, &mut undecided);
        for question in undecided {
            findings.push(Finding {
                kind: FindingKind::Undecided,
                routes: Vec::new(),
                message: format!("the checker could not decide {question}"),
                witness: None,
                constraint: None,
            });
        }
        Analysis {
            findings,
            signals: encoding.atoms.len(),
            variables: usize::from(encoding.vars.num_vars()),
        }
    }
}

impl Policy {
    /// For each constraint: whether it covers any possible request, and for each
    /// route it covers, whether a request that takes the route and that it covers
    /// can be answered at all (some candidate allowed, with an allowed pool, and not
    /// over the cost ceiling for the expected answer).
    fn check_constraints(
        &self,
        encoding: &Encoding,
        findings: &mut Vec<Finding>,
        undecided: &mut Vec<String>,
    ) {
        let routes = self.routes();
        let output = self.config.server.expected_output_tokens;
        for c in &self.constraints {
            if let Some(expr) = &c.expr {
                match encoding.solve(Some(expr), &[]) {
                    Ok(None) => {
                        findings.push(Finding {
                            kind: FindingKind::Idle,
                            routes: Vec::new(),
                            message: format!(
                                "constraint `{}` never applies: no request satisfies its condition",
                                c.name
                            ),
                            witness: None,
                            constraint: Some(c.name.clone()),
                        });
                        continue;
                    }
                    Ok(Some(_)) => {}
                    Err(reason) => {
                        undecided
                            .push(format!("whether constraint `{}` applies: {reason}", c.name));
                        continue;
                    }
                }
            }
            for (index, route) in routes.iter().enumerate() {
                if c.routes.as_ref().is_some_and(|r| !r.contains(&index)) {
                    continue;
                }
                // The cheapest request: a one-token prompt and the expected answer.
                let tokens = (1, output);
                let refusals: Vec<String> = route
                    .candidates
                    .iter()
                    .map_while(|&m| {
                        let refusal = c.refusal(&self.config, m, tokens)?;
                        Some(c.explain(&self.config, m, refusal, tokens))
                    })
                    .collect();
                if refusals.len() < route.candidates.len() {
                    continue;
                }
                // Can a request take this route while the constraint covers it?
                let mut must: Vec<Expr> = Vec::new();
                must.extend(route.expr.clone());
                must.extend(c.expr.clone());
                let must = Expr::All(must);
                // The routes that take a request first: every earlier one of its
                // scope, or under the confidence strategy those of earlier tiers.
                let Some(scope) = self.scopes().get(route.scope) else {
                    continue;
                };
                let strategy = scope.strategy;
                let by_confidence = matches!(
                    strategy,
                    DecisionStrategy::Confidence | DecisionStrategy::Tiered
                );
                let earlier: Vec<&Expr> = if route.expr.is_some() {
                    routes[scope.range.start..index]
                        .iter()
                        .filter(|r| {
                            !by_confidence
                                || strategy.tier_rank(r.tier) != strategy.tier_rank(route.tier)
                        })
                        .filter_map(|r| r.expr.as_ref())
                        .collect()
                } else {
                    routes[scope.range.clone()]
                        .iter()
                        .filter_map(|r| r.expr.as_ref())
                        .collect()
                };
                match encoding.solve(Some(&must), &earlier) {
                    Ok(Some(model)) => {
                        let value =
                            |v: BddVariable| model.get(v.to_index()).copied().unwrap_or(false);
                        let why = refusals.join("; ");
                        findings.push(Finding {
                            kind: FindingKind::Refused,
                            routes: vec![route.name.clone()],
                            message: format!(
                                "constraint `{}` refuses every request that takes route `{}` and that it covers: {why}",
                                c.name, route.name
                            ),
                            witness: Some(encoding.witness_of(self, &value, &[&must])),
                            constraint: Some(c.name.clone()),
                        });
                    }
                    Ok(None) => {}
                    Err(reason) => undecided.push(format!(
                        "whether constraint `{}` meets route `{}`: {reason}",
                        c.name, route.name
                    )),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
