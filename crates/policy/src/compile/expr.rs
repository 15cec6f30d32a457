//! Conditions compiled to expressions over atoms (signal facts, value and
//! confidence tests, labels), and their evaluation with a confidence.

use super::*;

/// One boolean fact about a request that a condition reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Atom {
    /// The signal holds by its own rule.
    Holds(SignalId),
    /// The signal's value or confidence passes a test.
    Test(SignalId, Test),
    /// The signal reports this categorical outcome: an index into
    /// [`Policy::labels`].
    Label(SignalId, u32),
}

impl Atom {
    /// The signal it reads.
    pub fn signal(self) -> SignalId {
        match self {
            Atom::Holds(id) | Atom::Test(id, _) | Atom::Label(id, _) => id,
        }
    }

    /// Whether it holds for `signals`; `labels` are the policy's ([`Policy::labels`]).
    #[inline]
    pub fn holds(self, signals: &Signals, labels: &[String]) -> bool {
        match self {
            Atom::Holds(id) => signals.matched(id),
            Atom::Test(..) | Atom::Label(..) => self.read(signals, labels).0,
        }
    }

    /// Whether it holds for `signals`, and how sure that is: the signal's confidence,
    /// except for a test on the confidence itself, which is exact (1). A signal that
    /// was not computed fails every test.
    pub fn read(self, signals: &Signals, labels: &[String]) -> (bool, f64) {
        let Some(value) = signals.get(self.signal()) else {
            return (false, 0.0);
        };
        match self {
            Atom::Holds(_) => (value.matched, value.confidence),
            Atom::Label(_, at) => (
                value.label.is_some() && value.label.as_ref() == labels.get(at as usize),
                value.confidence,
            ),
            Atom::Test(..) if value.error.is_some() => (false, 0.0),
            Atom::Test(_, test) => match test.measure {
                Measure::Value => (test.passes(value.value), value.confidence),
                Measure::Confidence => (test.passes(value.confidence), 1.0),
            },
        }
    }
}

/// A condition whose atoms are dense signal ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// Every sub-expression holds.
    All(Vec<Expr>),
    /// At least one sub-expression holds.
    Any(Vec<Expr>),
    /// The sub-expression does not hold.
    Not(Box<Expr>),
    /// This atom holds.
    Atom(Atom),
}

impl Expr {
    /// Evaluates the expression with `holds` telling whether each atom holds.
    pub fn eval(&self, holds: &impl Fn(Atom) -> bool) -> bool {
        match self {
            Expr::All(items) => items.iter().all(|e| e.eval(holds)),
            Expr::Any(items) => items.iter().any(|e| e.eval(holds)),
            Expr::Not(inner) => !inner.eval(holds),
            Expr::Atom(atom) => holds(*atom),
        }
    }

    /// Evaluates the expression with how sure it is of the outcome, given each
    /// atom's outcome and certainty (see [`Atom::read`]). The certainty of an outcome
    /// is that of the weakest evidence it needs:
    ///
    /// - `AND` that holds: the least sure of its parts (all were needed); that fails:
    ///   the surest of its failing parts (one suffices);
    /// - `OR` that holds: the surest of its holding parts; that fails: the least sure
    ///   of its parts;
    /// - `NOT`: the same certainty as its part, the outcome flipped.
    ///
    /// An empty `AND` holds and an empty `OR` fails, both with certainty 1.
    pub fn confidence(&self, read: &impl Fn(Atom) -> (bool, f64)) -> (bool, f64) {
        match self {
            Expr::All(items) => fold_certainty(items, read, true),
            Expr::Any(items) => fold_certainty(items, read, false),
            Expr::Not(inner) => {
                let (holds, sure) = inner.confidence(read);
                (!holds, sure)
            }
            Expr::Atom(atom) => read(*atom),
        }
    }

    /// Adds the atoms the expression reads to `out`.
    pub(crate) fn atoms(&self, out: &mut BTreeSet<Atom>) {
        match self {
            Expr::All(items) | Expr::Any(items) => items.iter().for_each(|e| e.atoms(out)),
            Expr::Not(inner) => inner.atoms(out),
            Expr::Atom(atom) => {
                out.insert(*atom);
            }
        }
    }
}

/// `AND` (`all` = true) or `OR` over parts with certainties: the deciding parts are
/// those whose outcome equals the combined one when it is the "short-circuit" value
/// (a failing part of an AND, a holding part of an OR): then the surest of them;
/// otherwise every part was needed: the least sure of all.
fn fold_certainty(items: &[Expr], read: &impl Fn(Atom) -> (bool, f64), all: bool) -> (bool, f64) {
    let mut needed = 1.0f64;
    let mut short: Option<f64> = None;
    for item in items {
        let (holds, sure) = item.confidence(read);
        if holds != all {
            short = Some(short.map_or(sure, |s| s.max(sure)));
        } else {
            needed = needed.min(sure);
        }
    }
    match short {
        Some(sure) => (!all, sure),
        None => (all, needed),
    }
}

/// Compiles conditions, collecting the labels they test (each text once).
pub(super) struct Conditions<'a> {
    pub(super) signals: &'a SignalEngine,
    pub(super) labels: Vec<String>,
    /// The signals could not be built (an error already says why): references are
    /// not checked against an empty engine, which would call every signal unknown.
    pub(super) unbuilt: bool,
}

impl Conditions<'_> {
    pub(super) fn compile(
        &mut self,
        condition: &Condition,
        path: &str,
        found: &mut Vec<Diagnostic>,
    ) -> Expr {
        let signals = self.signals;
        match condition {
            Condition::All(items) => Expr::All(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, c)| self.compile(c, &format!("{path}.all[{i}]"), found))
                    .collect(),
            ),
            Condition::Any(items) => Expr::Any(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, c)| self.compile(c, &format!("{path}.any[{i}]"), found))
                    .collect(),
            ),
            Condition::Not(inner) => {
                Expr::Not(Box::new(self.compile(inner, &format!("{path}.not"), found)))
            }
            Condition::Signal {
                family,
                name,
                test,
                label,
            } => match signals.lookup(*family, &name.value) {
                Some(id) => {
                    if let (None, Some(label)) = (test, label)
                        && let Some(outcomes) = signals.outcomes(id)
                        && !outcomes.contains(label)
                    {
                        found.push(
                            Diagnostic::error(
                                &name.referenced,
                                format!("{path}.{}", family.name()),
                                format!(
                                    "{}(\"{}\") never reports `{label}`",
                                    family.name(),
                                    name.value
                                ),
                            )
                            .suggesting(label, outcomes.iter().map(String::as_str)),
                        );
                        return Expr::Any(Vec::new());
                    }
                    Expr::Atom(match (test, label) {
                        (Some(test), _) => Atom::Test(id, *test),
                        (None, Some(label)) => Atom::Label(id, self.label(label)),
                        (None, None) => Atom::Holds(id),
                    })
                }
                // `projection("band")`: a band or partition member named alone, when
                // exactly one projection reports it (as their recipes write it).
                None if *family == SignalFamily::Projection
                    && test.is_none()
                    && label.is_none()
                    && let Some(id) = self.band_owner(&name.value) =>
                {
                    Expr::Atom(Atom::Label(id, self.label(&name.value)))
                }
                None if self.unbuilt => Expr::Any(Vec::new()),
                None => {
                    let defined = signals.names(*family);
                    let help_when_none = format!(
                        "define it under `signals.{}` with `name: {}`",
                        family.name(),
                        name.value
                    );
                    let mut d = Diagnostic::error(
                        &name.referenced,
                        format!("{path}.{}", family.name()),
                        format!("unknown {} signal `{}`", family.name(), name.value),
                    );
                    d = if defined.is_empty() {
                        d.with_help(help_when_none)
                    } else {
                        d.suggesting(&name.value, defined)
                    };
                    found.push(d);
                    // Never true: an unknown atom must not make a route match.
                    Expr::Any(Vec::new())
                }
            },
        }
    }

    /// The one projection that reports `band` as a label, if exactly one does.
    fn band_owner(&self, band: &str) -> Option<SignalId> {
        let mut owners = self
            .signals
            .names(SignalFamily::Projection)
            .into_iter()
            .filter_map(|n| self.signals.lookup(SignalFamily::Projection, n))
            .filter(|&id| {
                self.signals
                    .outcomes(id)
                    .is_some_and(|o| o.iter().any(|l| l == band))
            });
        let first = owners.next()?;
        owners.next().is_none().then_some(first)
    }

    /// The index of a label's text, added when new.
    fn label(&mut self, text: &str) -> u32 {
        match self.labels.iter().position(|l| l == text) {
            Some(at) => at as u32,
            None => {
                self.labels.push(text.to_owned());
                (self.labels.len() - 1) as u32
            }
        }
    }
}
