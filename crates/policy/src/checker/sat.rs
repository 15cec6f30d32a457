//! Clauses for the questions about many routes at once ("can this route win over
//! every earlier one?", "can a request match none?"): a union of many conditions can
//! make a decision diagram explode, while a CDCL solver (splr) answers such
//! queries over a Tseitin encoding in milliseconds.
//!
//! Variable `i + 1` is the diagram variable of index `i` (signals, then regions);
//! gates for sub-expressions are numbered after them.

use crate::compile::Atom;
use crate::compile::Expr;

/// A clause set under construction.
#[derive(Debug, Clone)]
pub(crate) struct Cnf {
    pub clauses: Vec<Vec<i32>>,
    next: i32,
}

impl Cnf {
    /// Clauses over `variables` named variables (1-based), none yet.
    pub(crate) fn new(variables: usize) -> Cnf {
        Cnf {
            clauses: Vec::new(),
            next: i32::try_from(variables).unwrap_or(i32::MAX - 1) + 1,
        }
    }

    pub(crate) fn fresh(&mut self) -> i32 {
        let v = self.next;
        self.next += 1;
        v
    }

    /// A literal equivalent to `expr`, with the clauses that define it added.
    pub(crate) fn literal(&mut self, expr: &Expr, var: &impl Fn(Atom) -> Option<i32>) -> i32 {
        match expr {
            Expr::Atom(atom) => match var(*atom) {
                Some(v) => v,
                None => {
                    let never = self.fresh();
                    self.clauses.push(vec![-never]);
                    never
                }
            },
            Expr::Not(inner) => -self.literal(inner, var),
            Expr::All(items) | Expr::Any(items) => {
                let parts: Vec<i32> = items.iter().map(|e| self.literal(e, var)).collect();
                let gate = self.fresh();
                let all = matches!(expr, Expr::All(_));
                // all: gate → each part, and all parts → gate; any: the duals.
                let sign = if all { 1 } else { -1 };
                for &p in &parts {
                    self.clauses.push(vec![-sign * gate, sign * p]);
                }
                let mut closing: Vec<i32> = parts.iter().map(|&p| -sign * p).collect();
                closing.push(sign * gate);
                self.clauses.push(closing);
                gate
            }
        }
    }
}

/// A model of the clauses (`value[i]` for variable `i + 1`), `Ok(None)` when there is
/// none, or the solver's failure (never taken as a proof).
pub(crate) fn solve(clauses: &[Vec<i32>], variables: usize) -> Result<Option<Vec<bool>>, String> {
    let mut value = vec![false; variables];
    if clauses.is_empty() {
        return Ok(Some(value));
    }
    match splr::Certificate::try_from(clauses.to_vec()) {
        Ok(splr::Certificate::SAT(model)) => {
            for literal in model {
                let index = literal.unsigned_abs() as usize;
                if literal > 0 && index >= 1 && index <= variables {
                    value[index - 1] = true;
                }
            }
            Ok(Some(value))
        }
        Ok(splr::Certificate::UNSAT) => Ok(None),
        Err(e) => Err(format!("the SAT solver failed: {e:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_workload::SignalId;

    #[test]
    fn gates_follow_their_expressions() {
        let var = |atom: Atom| Some(i32::try_from(atom.signal().0).unwrap_or(0) + 1);
        let a = Expr::Atom(Atom::Holds(SignalId(0)));
        let b = Expr::Atom(Atom::Holds(SignalId(1)));
        // a ∧ ¬a is unsatisfiable; a ∨ b with ¬a forces b.
        let mut cnf = Cnf::new(2);
        let contradiction = cnf.literal(
            &Expr::All(vec![a.clone(), Expr::Not(Box::new(a.clone()))]),
            &var,
        );
        cnf.clauses.push(vec![contradiction]);
        assert_eq!(solve(&cnf.clauses, 2), Ok(None));
        let mut cnf = Cnf::new(2);
        let either = cnf.literal(&Expr::Any(vec![a, b]), &var);
        cnf.clauses.push(vec![either]);
        cnf.clauses.push(vec![-1]);
        assert_eq!(solve(&cnf.clauses, 2), Ok(Some(vec![false, true])));
    }
}
