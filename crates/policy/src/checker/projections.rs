//! What the checker knows about projections.
//!
//! - **Scores** (`weighted_sum`): every atom that reads a score (the score itself
//!   holding (> 0), a test on its value, the bands cut on it and their union) is a
//!   region set of one number, so the score is a facet like a token count: the line
//!   is cut at every bound into points and the open intervals between them. The
//!   score's inputs decide which regions are possible: for each assignment of its
//!   input signals the score lies in an interval (a term reading a match adds one
//!   number; one reading a confidence adds anything in (0, weight] when its input
//!   holds, 0 otherwise), and only the regions that interval meets are possible.
//!   That link is a decision diagram over the inputs, built once per score with the
//!   assignments that reach the same interval shared; a score whose inputs have more
//!   than [`MAX_STATES`] distinct partial intervals, or that reads an input's value or
//!   label, is left unlinked (its regions all possible: the checker then proves less,
//!   never something false).
//! - **Partitions**: the winner is a member that holds, or the default when none
//!   does; a member that holds alone wins.

use super::facts::{Facet, Facts, Region};
use crate::compile::Atom;
use crate::condition::{Measure, Test};
use std::collections::{BTreeSet, HashMap};
use switchyard_workload::projection::{Band, InputRead, Projection, Term};
use switchyard_workload::{SignalEngine, SignalId};

/// The most distinct (input, partial interval) states one score's link may take.
pub(crate) const MAX_STATES: usize = 20_000;

/// A link between input atoms and a facet's regions: a decision diagram whose
/// leaves list the regions possible under the assignment that reaches them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Link {
    /// The facet (index into [`Facts::facets`]).
    pub facet: usize,
    /// Nodes.
    pub nodes: Vec<LinkNode>,
    /// The root's index.
    pub root: usize,
}

/// One node of a [`Link`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum LinkNode {
    /// The regions possible here.
    Leaf(Vec<usize>),
    /// Branch on an atom: the node when it holds, and when it does not.
    Branch(Atom, usize, usize),
}

/// The atoms the checker must also reason about because projections the routes
/// read are computed from them: the inputs of scores and the members of partitions.
pub(crate) fn inputs(engine: &SignalEngine, used: &BTreeSet<Atom>) -> BTreeSet<Atom> {
    let mut all = used.clone();
    let mut pending: Vec<SignalId> = used.iter().map(|a| a.signal()).collect();
    let mut seen = BTreeSet::new();
    while let Some(id) = pending.pop() {
        if !seen.insert(id) {
            continue;
        }
        let reads = engine.inputs(id);
        match engine.projection(id) {
            Some(Projection::Sum(terms)) if linkable(terms, engine, &reads) => {
                for &input in &reads {
                    all.insert(Atom::Holds(input));
                    pending.push(input);
                }
            }
            Some(Projection::Bands { .. }) => pending.extend(reads),
            Some(Projection::Partition { .. }) => {
                for &input in &reads {
                    all.insert(Atom::Holds(input));
                    pending.push(input);
                }
            }
            _ => {}
        }
    }
    all
}

/// Whether a score's terms can be linked to their inputs: each reads the match or
/// the confidence of a signal, without a label.
fn linkable(terms: &[Term], engine: &SignalEngine, reads: &[SignalId]) -> bool {
    terms.len() == reads.len()
        && terms.iter().zip(reads).all(|(t, id)| {
            t.label.is_none() && t.read != InputRead::Value && engine.key(*id).is_some()
        })
}

/// An interval of scores with open or closed ends.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    lo: f64,
    lo_closed: bool,
    hi: f64,
    hi_closed: bool,
}

impl Span {
    fn point(x: f64) -> Span {
        Span {
            lo: x,
            lo_closed: true,
            hi: x,
            hi_closed: true,
        }
    }

    fn plus(self, other: Span) -> Span {
        Span {
            lo: self.lo + other.lo,
            lo_closed: self.lo_closed && other.lo_closed,
            hi: self.hi + other.hi,
            hi_closed: self.hi_closed && other.hi_closed,
        }
    }

    /// What a term adds when its input holds or not.
    fn of(term: &Term, holds: bool) -> Span {
        match (term.read, holds) {
            (InputRead::Match, true) => Span::point(term.weight * term.on_match),
            (InputRead::Match, false) => Span::point(term.weight * term.on_miss),
            // A holding input's confidence lies in (0, 1].
            (InputRead::Confidence, true) if term.weight > 0.0 => Span {
                lo: 0.0,
                lo_closed: false,
                hi: term.weight,
                hi_closed: true,
            },
            (InputRead::Confidence, true) if term.weight < 0.0 => Span {
                lo: term.weight,
                lo_closed: true,
                hi: 0.0,
                hi_closed: false,
            },
            _ => Span::point(0.0),
        }
    }

    /// Rounded, so that sums reached in different orders meet.
    fn key(self) -> SpanKey {
        let r = |x: f64| (x * 1e9).round() as i64;
        (r(self.lo), self.lo_closed, r(self.hi), self.hi_closed)
    }

    /// Whether the span meets a region (`(value inside, is a point)`, with the
    /// region's bounds for open intervals).
    fn meets(self, region: &Region) -> bool {
        let inside = |x: f64| {
            (x > self.lo || (self.lo_closed && x == self.lo))
                && (x < self.hi || (self.hi_closed && x == self.hi))
        };
        match *region {
            Region::Point(c) => inside(c),
            Region::Open(a, b) => {
                if self.lo == self.hi {
                    inside(self.lo) && self.lo > a && self.lo < b
                } else {
                    self.lo < b && self.hi > a
                }
            }
        }
    }
}

/// A span rounded to 1e-9 with its ends' closedness.
type SpanKey = (i64, bool, i64, bool);

/// A predicate on a score, from an atom.
enum Predicate {
    Positive,
    Test(Test),
    Band(Vec<Band>, usize),
    AnyBand(Vec<Band>),
    Always(bool),
}

impl Predicate {
    fn holds(&self, x: f64) -> bool {
        match self {
            Predicate::Positive => x > 0.0,
            Predicate::Test(t) => t.passes(x),
            // First hit: in this band and in no earlier one.
            Predicate::Band(bands, k) => {
                bands[*k].contains(x) && !bands[..*k].iter().any(|b| b.contains(x))
            }
            Predicate::AnyBand(bands) => bands.iter().any(|b| b.contains(x)),
            Predicate::Always(v) => *v,
        }
    }

    fn bounds(&self) -> Vec<f64> {
        match self {
            Predicate::Positive => vec![0.0],
            Predicate::Test(t) => vec![t.bound],
            Predicate::Band(bands, _) | Predicate::AnyBand(bands) => bands
                .iter()
                .flat_map(|b| [b.low.0, b.high.0])
                .filter(|x| x.is_finite())
                .collect(),
            Predicate::Always(_) => Vec::new(),
        }
    }
}

/// Adds a facet per score that used atoms read, linked to its inputs where it can
/// be, and the partition rules.
pub(crate) fn gather(
    engine: &SignalEngine,
    used: &BTreeSet<Atom>,
    labels: &[String],
    facts: &mut Facts,
) {
    // Predicates per score.
    let mut by_score: Vec<(SignalId, Vec<(Atom, Predicate)>)> = Vec::new();
    let mut add = |score: SignalId, atom: Atom, p: Predicate| match by_score
        .iter_mut()
        .find(|(s, _)| *s == score)
    {
        Some((_, list)) => list.push((atom, p)),
        None => by_score.push((score, vec![(atom, p)])),
    };
    for &atom in used {
        let id = atom.signal();
        match engine.projection(id) {
            Some(Projection::Sum(_)) => match atom {
                Atom::Holds(_) => add(id, atom, Predicate::Positive),
                Atom::Test(_, t) if t.measure == Measure::Value => {
                    add(id, atom, Predicate::Test(t));
                }
                // A score is always sure.
                Atom::Test(_, t) => add(id, atom, Predicate::Always(t.passes(1.0))),
                Atom::Label(..) => add(id, atom, Predicate::Always(false)),
            },
            Some(Projection::Bands { bands, .. }) => {
                let Some(&source) = engine.inputs(id).first() else {
                    continue;
                };
                if !matches!(engine.projection(source), Some(Projection::Sum(_))) {
                    continue;
                }
                let cut: Vec<Band> = bands.iter().map(|(_, b)| *b).collect();
                match atom {
                    Atom::Holds(_) => add(source, atom, Predicate::AnyBand(cut)),
                    Atom::Label(_, at) => {
                        let text = labels.get(at as usize);
                        match bands.iter().position(|(n, _)| Some(n) == text) {
                            Some(k) => add(source, atom, Predicate::Band(cut, k)),
                            None => add(source, atom, Predicate::Always(false)),
                        }
                    }
                    Atom::Test(_, t) if t.measure == Measure::Value => {
                        add(source, atom, Predicate::Test(t));
                    }
                    // A calibrated confidence: not modelled (free).
                    Atom::Test(..) => {}
                }
            }
            Some(Projection::Partition { names, default, .. }) => {
                partition_rules(engine, id, names, *default, atom, labels, facts);
            }
            None => {}
        }
    }
    for (score, predicates) in by_score {
        let regions = Region::cut(predicates.iter().flat_map(|(_, p)| p.bounds()).collect());
        let members = predicates
            .iter()
            .map(|(atom, p)| {
                let inside = regions
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| p.holds(r.sample()))
                    .map(|(i, _)| i)
                    .collect();
                (*atom, inside, true)
            })
            .collect();
        let name = engine
            .key(score)
            .map_or_else(|| format!("signal {}", score.0), ToString::to_string);
        let facet = facts.facets.len();
        facts.facets.push(Facet {
            what: format!("score of {name}"),
            regions: regions.iter().map(|r| r.name()).collect(),
            members,
        });
        if let Some(Projection::Sum(terms)) = engine.projection(score) {
            let reads = engine.inputs(score);
            if linkable(terms, engine, &reads)
                && let Some((nodes, root)) = link(terms, &reads, &regions)
            {
                facts.links.push(Link { facet, nodes, root });
            }
        }
    }
}

/// The decision diagram from a score's inputs to its possible regions, or `None`
/// past [`MAX_STATES`].
fn link(terms: &[Term], reads: &[SignalId], regions: &[Region]) -> Option<(Vec<LinkNode>, usize)> {
    // Distinct inputs, each with the spans its terms add when it holds and not.
    let mut inputs: Vec<(SignalId, Span, Span)> = Vec::new();
    for (term, &id) in terms.iter().zip(reads) {
        let (on, off) = (Span::of(term, true), Span::of(term, false));
        match inputs.iter_mut().find(|(i, _, _)| *i == id) {
            Some((_, a, b)) => {
                *a = a.plus(on);
                *b = b.plus(off);
            }
            None => inputs.push((id, on, off)),
        }
    }
    struct Builder<'a> {
        inputs: &'a [(SignalId, Span, Span)],
        regions: &'a [Region],
        nodes: Vec<LinkNode>,
        interned: HashMap<LinkNode, usize>,
        memo: HashMap<(usize, SpanKey), usize>,
    }
    impl Builder<'_> {
        fn node(&mut self, node: LinkNode) -> usize {
            if let Some(&at) = self.interned.get(&node) {
                return at;
            }
            self.nodes.push(node.clone());
            self.interned.insert(node, self.nodes.len() - 1);
            self.nodes.len() - 1
        }

        fn build(&mut self, i: usize, span: Span) -> Option<usize> {
            if let Some(&at) = self.memo.get(&(i, span.key())) {
                return Some(at);
            }
            if self.memo.len() > MAX_STATES {
                return None;
            }
            let at = match self.inputs.get(i) {
                None => {
                    let possible = (0..self.regions.len())
                        .filter(|&r| span.meets(&self.regions[r]))
                        .collect();
                    self.node(LinkNode::Leaf(possible))
                }
                Some(&(id, on, off)) => {
                    let holds = self.build(i + 1, span.plus(on))?;
                    let fails = self.build(i + 1, span.plus(off))?;
                    if holds == fails {
                        holds
                    } else {
                        self.node(LinkNode::Branch(Atom::Holds(id), holds, fails))
                    }
                }
            };
            self.memo.insert((i, span.key()), at);
            Some(at)
        }
    }
    let mut builder = Builder {
        inputs: &inputs,
        regions,
        nodes: Vec::new(),
        interned: HashMap::new(),
        memo: HashMap::new(),
    };
    let root = builder.build(0, Span::point(0.0))?;
    Some((builder.nodes, root))
}

/// A partition label atom: its member holds, or it is the default and none does;
/// a member that holds alone wins.
fn partition_rules(
    engine: &SignalEngine,
    id: SignalId,
    names: &[String],
    default: usize,
    atom: Atom,
    labels: &[String],
    facts: &mut Facts,
) {
    let Atom::Label(_, at) = atom else { return };
    let members: Vec<Atom> = engine.inputs(id).into_iter().map(Atom::Holds).collect();
    let Some(m) = labels
        .get(at as usize)
        .and_then(|text| names.iter().position(|n| n == text))
    else {
        return;
    };
    let Some(&member) = members.get(m) else {
        return;
    };
    if m == default {
        // Wins only if it holds or none does; wins when none does.
        for (j, &other) in members.iter().enumerate() {
            if j != m {
                facts
                    .clauses
                    .push(vec![(atom, false), (member, true), (other, false)]);
            }
        }
        let mut none: Vec<(Atom, bool)> = members.iter().map(|&x| (x, true)).collect();
        none.push((atom, true));
        facts.clauses.push(none);
    } else {
        facts.clauses.push(vec![(atom, false), (member, true)]);
    }
    // Holding alone, it wins.
    let mut alone: Vec<(Atom, bool)> = vec![(member, false)];
    alone.extend(
        members
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != m)
            .map(|(_, &x)| (x, true)),
    );
    alone.push((atom, true));
    facts.clauses.push(alone);
}
