//! What the checker knows about signals beyond their names: which cannot hold
//! together and which imply others. Each fact comes from the signals' definitions:
//!
//! - **ranges** on one measured quantity (`context` on prompt tokens, `structure` on
//!   each feature): the quantity takes one value, so the line is cut at every bound
//!   into regions, exactly one region holds, and a signal holds exactly when the
//!   region is inside its range (0–4K and 8K–32K are exclusive; 0–8K implies 0–32K;
//!   0–4K, 4K–8K and 8K+ cover every request);
//! - **partitions**: a request has one top domain (for domain signals without a
//!   probability threshold: exactly when the top category is one of theirs), one
//!   detected language (a language signal holds only if it is one of its languages;
//!   low confidence may leave every one false), one difficulty level per exemplar set
//!   (`complexity`);
//! - **implications**: a PII signal counting a subset of another's kinds (same scope
//!   and score floor) implies it; a keyword signal holding on any of a subset of
//!   another's terms (both `any`, counted, read alike) implies it.

use crate::compile::Atom;
use crate::condition::{Measure, Test};
use std::collections::{BTreeMap, BTreeSet};
use switchyard_workload::keyword::{KeywordSignalConfig, Operator, Scoring};
use switchyard_workload::pii::PiiKind;
use switchyard_workload::{SignalEngine, SignalFamily, SignalId, SignalsConfig};

/// One quantity or choice that takes exactly one of its regions per request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Facet {
    /// What it measures, for witnesses (`prompt tokens`, `top domain`).
    pub what: String,
    /// Its regions, as shown in a witness (`[4096, 8192)`, `law`).
    pub regions: Vec<String>,
    /// Signals tied to it: the regions they cover, and whether they hold exactly
    /// there (`true`) or only possibly there (`false`: holding implies one of them).
    pub members: Vec<(Atom, Vec<usize>, bool)>,
}

/// Everything known: facets and implications between signals.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Facts {
    /// Facets with at least one used signal.
    pub facets: Vec<Facet>,
    /// `(a, b)`: whenever `a` holds, `b` does.
    pub implications: Vec<(Atom, Atom)>,
    /// Other clauses over atoms: one of these holds (`true`) or fails (`false`).
    pub clauses: Vec<Vec<(Atom, bool)>>,
    /// Facets tied to the signals they are computed from (projection scores).
    pub links: Vec<super::projections::Link>,
}

impl Facts {
    /// The facts about the signals in `used`.
    pub(crate) fn gather(
        (config, engine): (&SignalsConfig, &SignalEngine),
        used: &BTreeSet<Atom>,
        label_text: &[String],
    ) -> Facts {
        let id = |family, name: &str| {
            engine
                .lookup(family, name)
                .map(Atom::Holds)
                .filter(|atom| used.contains(atom))
        };
        let mut facts = Facts::default();

        let context: Vec<_> = config
            .context
            .iter()
            .filter_map(|c| {
                let hi = c.max.map_or(f64::INFINITY, |m| f64::from(m.0));
                Some((
                    id(SignalFamily::Context, &c.name)?,
                    f64::from(c.min.map_or(0, |m| m.0)),
                    hi,
                ))
            })
            .collect();
        facts.push_ranges("prompt tokens", &context);
        let mut by_feature: BTreeMap<String, Vec<(Atom, f64, f64)>> = BTreeMap::new();
        for c in &config.structure {
            if let Some(signal) = id(SignalFamily::Structure, &c.name) {
                by_feature.entry(c.quantity()).or_default().push((
                    signal,
                    c.min,
                    c.max.unwrap_or(f64::INFINITY),
                ));
            }
        }
        for (feature, ranges) in by_feature {
            facts.push_ranges(&format!("structure {feature}"), &ranges);
        }

        if let Some(labels) = engine.domain_labels() {
            let members: Vec<_> = config
                .domain
                .iter()
                .filter(|c| c.threshold <= 0.0)
                .filter_map(|c| {
                    let categories = if c.categories.is_empty() {
                        std::slice::from_ref(&c.name)
                    } else {
                        c.categories.as_slice()
                    };
                    let regions = labels
                        .iter()
                        .enumerate()
                        .filter(|(_, l)| categories.contains(l))
                        .map(|(i, _)| i)
                        .collect();
                    Some((id(SignalFamily::Domain, &c.name)?, regions, true))
                })
                .collect();
            facts.push_facet("top domain", labels.to_vec(), members);
        }

        let mut languages: Vec<String> = config
            .language
            .iter()
            .flat_map(|c| c.languages.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let members: Vec<_> = config
            .language
            .iter()
            .filter_map(|c| {
                let regions = languages
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| c.languages.contains(l))
                    .map(|(i, _)| i)
                    .collect();
                Some((id(SignalFamily::Language, &c.name)?, regions, false))
            })
            .collect();
        languages.push("another language".to_owned());
        facts.push_facet("language", languages, members);

        let mut by_exemplars: BTreeMap<String, Vec<(Atom, Vec<usize>, bool)>> = BTreeMap::new();
        for c in &config.complexity {
            if let Some(signal) = id(SignalFamily::Complexity, &c.name) {
                let level = c.level as usize;
                let key = format!("{:?}/{:?}", c.hard, c.easy);
                by_exemplars
                    .entry(key)
                    .or_default()
                    .push((signal, vec![level], true));
            }
        }
        for (_, members) in by_exemplars {
            let levels = ["easy", "medium", "hard"].map(str::to_owned).to_vec();
            facts.push_facet("difficulty", levels, members);
        }

        let kinds = |types: &Option<Vec<PiiKind>>, allow: &[PiiKind]| -> Vec<PiiKind> {
            let counted = types.as_deref().unwrap_or(&PiiKind::ALL);
            counted
                .iter()
                .copied()
                .filter(|k| !allow.contains(k))
                .collect()
        };
        for a in &config.pii {
            for b in &config.pii {
                let (Some(ia), Some(ib)) = (
                    id(SignalFamily::Pii, &a.name),
                    id(SignalFamily::Pii, &b.name),
                ) else {
                    continue;
                };
                let same_reading = format!("{:?}", a.scope) == format!("{:?}", b.scope)
                    && a.min_score == b.min_score;
                let (ka, kb) = (kinds(&a.types, &a.allow), kinds(&b.types, &b.allow));
                if ia != ib && same_reading && ka.iter().all(|k| kb.contains(k)) {
                    facts.implications.push((ia, ib));
                }
            }
        }

        // A keyword signal holding on any of its terms implies one holding on any of
        // a superset of them, read the same way.
        let plain = |k: &KeywordSignalConfig| {
            k.operator == Operator::Any
                && k.scoring == Scoring::Count
                && !(k.keywords.is_empty() && k.regexes.is_empty())
        };
        for a in config.keyword.iter().filter(|k| plain(k)) {
            for b in config.keyword.iter().filter(|k| plain(k)) {
                let (Some(ia), Some(ib)) = (
                    id(SignalFamily::Keyword, &a.name),
                    id(SignalFamily::Keyword, &b.name),
                ) else {
                    continue;
                };
                let same_reading = a.case_sensitive == b.case_sensitive
                    && a.word_boundary == b.word_boundary
                    && a.scope == b.scope
                    && a.fuzzy == b.fuzzy;
                let same = |x: &String, y: &String| {
                    x == y || (!a.case_sensitive && x.eq_ignore_ascii_case(y))
                };
                let subset = a
                    .keywords
                    .iter()
                    .all(|k| b.keywords.iter().any(|x| same(k, x)))
                    && a.regexes.iter().all(|r| b.regexes.contains(r));
                if ia != ib && same_reading && subset {
                    facts.implications.push((ia, ib));
                }
            }
        }

        // A signal reports at most one label: the labels routes test are exclusive.
        let mut labels: BTreeMap<SignalId, Vec<u32>> = BTreeMap::new();
        for atom in used {
            if let Atom::Label(signal, key) = atom {
                labels.entry(*signal).or_default().push(*key);
            }
        }
        for (signal, keys) in labels {
            let name = engine
                .key(signal)
                .map_or_else(|| format!("signal {}", signal.0), ToString::to_string);
            let mut regions: Vec<String> = keys
                .iter()
                .map(|&k| {
                    label_text
                        .get(k as usize)
                        .cloned()
                        .unwrap_or_else(|| format!("#{k}"))
                })
                .collect();
            regions.push("another label or none".to_owned());
            let members = keys
                .iter()
                .enumerate()
                .map(|(i, key)| (Atom::Label(signal, *key), vec![i], true))
                .collect();
            facts.push_facet(&format!("label of {name}"), regions, members);
        }

        let mut tests: BTreeMap<(SignalId, Measure), Vec<Test>> = BTreeMap::new();
        for atom in used {
            if let Atom::Test(signal, test) = atom {
                tests
                    .entry((*signal, test.measure))
                    .or_default()
                    .push(*test);
            }
        }
        for ((signal, measure), tests) in tests {
            let name = engine
                .key(signal)
                .map_or_else(|| format!("signal {}", signal.0), ToString::to_string);
            if engine.projection(signal).is_none() {
                facts.push_tests(&format!("{} of {name}", measure.name()), signal, &tests);
            }
        }
        super::projections::gather(engine, used, label_text, &mut facts);
        facts
    }

    /// Tests on one measure of one signal: the measure takes one value, so the line
    /// is cut at every bound into points and the open intervals between them, and each
    /// test holds exactly on the regions whose values pass it. A confidence lies in
    /// [0, 1], so regions outside are left out.
    fn push_tests(&mut self, what: &str, signal: SignalId, tests: &[Test]) {
        let mut cuts: Vec<f64> = tests.iter().map(|t| t.bound).collect();
        let confidence = tests.iter().any(|t| t.measure == Measure::Confidence);
        if confidence {
            cuts.extend([0.0, 1.0]);
        }
        let mut regions = Region::cut(cuts);
        if confidence {
            regions.retain(|r| (0.0..=1.0).contains(&r.sample()));
        }
        let members = tests
            .iter()
            .map(|t| {
                let passing = regions
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| t.passes(r.sample()))
                    .map(|(i, _)| i)
                    .collect();
                (Atom::Test(signal, *t), passing, true)
            })
            .collect();
        let names = regions.iter().map(|r| r.name()).collect();
        self.push_facet(what, names, members);
    }

    /// Signals that hold on `[lo, hi)` of one quantity that is at least 0.
    fn push_ranges(&mut self, what: &str, ranges: &[(Atom, f64, f64)]) {
        let mut cuts: Vec<f64> = vec![0.0];
        for &(_, lo, hi) in ranges {
            cuts.extend([lo, hi].into_iter().filter(|v| v.is_finite() && *v > 0.0));
        }
        cuts.sort_by(f64::total_cmp);
        cuts.dedup();
        let regions: Vec<(f64, f64)> = cuts
            .iter()
            .enumerate()
            .map(|(i, &lo)| (lo, cuts.get(i + 1).copied().unwrap_or(f64::INFINITY)))
            .collect();
        let members = ranges
            .iter()
            .map(|&(signal, lo, hi)| {
                let inside = regions
                    .iter()
                    .enumerate()
                    .filter(|(_, (a, b))| *a >= lo && *b <= hi)
                    .map(|(i, _)| i)
                    .collect();
                (signal, inside, true)
            })
            .collect();
        let names = regions
            .iter()
            .map(|(a, b)| {
                if b.is_finite() {
                    format!("[{a}, {b})")
                } else {
                    format!("[{a}, ∞)")
                }
            })
            .collect();
        self.push_facet(what, names, members);
    }

    fn push_facet(
        &mut self,
        what: &str,
        regions: Vec<String>,
        members: Vec<(Atom, Vec<usize>, bool)>,
    ) {
        if !members.is_empty() {
            self.facets.push(Facet {
                what: what.to_owned(),
                regions,
                members,
            });
        }
    }
}

/// A region of a line of one number cut at some bounds: a bound itself, or the open
/// interval between two neighbouring bounds (or past the outermost ones).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Region {
    /// Exactly this value.
    Point(f64),
    /// Strictly between these (either may be infinite).
    Open(f64, f64),
}

impl Region {
    /// The line cut at every one of `cuts`: points and the open intervals between
    /// them, in order.
    pub(crate) fn cut(mut cuts: Vec<f64>) -> Vec<Region> {
        cuts.sort_by(f64::total_cmp);
        cuts.dedup();
        let mut regions = Vec::with_capacity(2 * cuts.len() + 1);
        let mut below = f64::NEG_INFINITY;
        for &c in &cuts {
            regions.push(Region::Open(below, c));
            regions.push(Region::Point(c));
            below = c;
        }
        regions.push(Region::Open(below, f64::INFINITY));
        regions
    }

    /// A value inside: every predicate cut at these bounds holds on all of the region
    /// or none of it, so this one value decides.
    pub(crate) fn sample(self) -> f64 {
        match self {
            Region::Point(c) => c,
            Region::Open(a, b) if a.is_infinite() && b.is_infinite() => 0.0,
            Region::Open(a, b) if a.is_infinite() => b - 1.0,
            Region::Open(a, b) if b.is_infinite() => a + 1.0,
            Region::Open(a, b) => (a + b) / 2.0,
        }
    }

    /// As a witness shows it: `= 0.5`, `in (-∞, 0.2)`.
    pub(crate) fn name(self) -> String {
        let show = |x: f64| match x {
            f64::NEG_INFINITY => "-∞".to_owned(),
            f64::INFINITY => "∞".to_owned(),
            x => x.to_string(),
        };
        match self {
            Region::Point(c) => format!("= {c}"),
            Region::Open(a, b) => format!("in ({}, {})", show(a), show(b)),
        }
    }
}
