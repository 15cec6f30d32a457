//! Shadow evaluation's books: per route, how many requests were shadowed or skipped,
//! what the comparisons found, and what each side cost; the concurrency and hourly
//! budget gates.

use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// (route, model, shadow model) kept at most; further ones are not tallied.
pub const MAX_TALLIES: usize = 4096;

/// What a comparison found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Exact match: the texts agree.
    Agreed,
    /// Exact match: they do not.
    Disagreed,
    /// The judge preferred the client's answer.
    ModelPreferred,
    /// The judge preferred the shadow's.
    ShadowPreferred,
    /// The judge called it even.
    Tie,
    /// The judge's answer was neither A, B nor TIE.
    Unjudged,
    /// The shadow (or the judge) failed.
    Failed,
}

/// One (route, model, shadow model)'s tallies.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tally {
    /// The route.
    pub route: String,
    /// The model that answered the client.
    pub model: String,
    /// The shadow model.
    pub shadow: String,
    /// Requests shadowed.
    pub shadowed: u64,
    /// Sampled requests skipped: too many shadows in flight.
    pub skipped_busy: u64,
    /// Sampled requests skipped: the hour's budget was spent.
    pub skipped_budget: u64,
    /// Comparisons by verdict.
    pub agreed: u64,
    /// Exact match disagreements.
    pub disagreed: u64,
    /// Judge preferred the client's answer.
    pub model_preferred: u64,
    /// Judge preferred the shadow's.
    pub shadow_preferred: u64,
    /// Judge called it even.
    pub ties: u64,
    /// Judge answers that could not be read.
    pub unjudged: u64,
    /// Shadows (or judges) that failed.
    pub failed: u64,
    /// What the client's answers cost, in dollars (0 without a price).
    pub model_dollars: f64,
    /// What the shadow answers cost.
    pub shadow_dollars: f64,
}

impl Tally {
    /// The shadow's cost less the client's, over the compared requests: what the
    /// route saves against always using the shadow model (negative: it spends more).
    pub fn savings(&self) -> f64 {
        self.shadow_dollars - self.model_dollars
    }
}

#[derive(Debug, Default)]
struct Budget {
    hour: u64,
    spent: f64,
}

/// The books, kept across reloads.
#[derive(Debug, Default)]
pub struct ShadowBook {
    tallies: Mutex<HashMap<(String, String, String), Tally>>,
    budgets: Mutex<HashMap<String, Budget>>,
    in_flight: Mutex<HashMap<String, Arc<AtomicUsize>>>,
}

/// One shadow in flight on a route; dropping it frees its place.
#[derive(Debug)]
pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ShadowBook {
    fn tally<T>(&self, key: (&str, &str, &str), f: impl FnOnce(&mut Tally) -> T) -> Option<T> {
        let mut tallies = self.tallies.lock().unwrap_or_else(PoisonError::into_inner);
        let owned = (key.0.to_owned(), key.1.to_owned(), key.2.to_owned());
        if !tallies.contains_key(&owned) && tallies.len() >= MAX_TALLIES {
            return None;
        }
        let tally = tallies.entry(owned).or_insert_with(|| Tally {
            route: key.0.to_owned(),
            model: key.1.to_owned(),
            shadow: key.2.to_owned(),
            ..Tally::default()
        });
        Some(f(tally))
    }

    /// A place for one more shadow on `route`, when fewer than `max` are in flight and
    /// the hour's spending is under `budget` (when there is one); the skip is counted
    /// otherwise.
    pub fn admit(
        &self,
        (route, model, shadow): (&str, &str, &str),
        max: usize,
        budget: Option<f64>,
        now_ms: u64,
    ) -> Option<Slot> {
        if let Some(budget) = budget {
            let hour = now_ms / 3_600_000;
            let mut budgets = self.budgets.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = budgets.entry(route.to_owned()).or_default();
            if entry.hour != hour {
                *entry = Budget { hour, spent: 0.0 };
            }
            if entry.spent >= budget {
                drop(budgets);
                self.tally((route, model, shadow), |t| t.skipped_budget += 1);
                return None;
            }
        }
        let counter = {
            let mut in_flight = self
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            Arc::clone(in_flight.entry(route.to_owned()).or_default())
        };
        let admitted = counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            self.tally((route, model, shadow), |t| t.skipped_busy += 1);
            return None;
        }
        Some(Slot(counter))
    }

    /// Records a shadowed request: what the comparison found and what each side cost
    /// (the shadow's cost also counts toward the route's hourly budget).
    pub fn record(
        &self,
        (route, model, shadow): (&str, &str, &str),
        verdict: Verdict,
        (model_dollars, shadow_dollars): (f64, f64),
        now_ms: u64,
    ) {
        {
            let mut budgets = self.budgets.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = budgets.entry(route.to_owned()).or_default();
            let hour = now_ms / 3_600_000;
            if entry.hour != hour {
                *entry = Budget { hour, spent: 0.0 };
            }
            entry.spent += shadow_dollars;
        }
        self.tally((route, model, shadow), |t| {
            t.shadowed += 1;
            t.model_dollars += model_dollars;
            t.shadow_dollars += shadow_dollars;
            match verdict {
                Verdict::Agreed => t.agreed += 1,
                Verdict::Disagreed => t.disagreed += 1,
                Verdict::ModelPreferred => t.model_preferred += 1,
                Verdict::ShadowPreferred => t.shadow_preferred += 1,
                Verdict::Tie => t.ties += 1,
                Verdict::Unjudged => t.unjudged += 1,
                Verdict::Failed => t.failed += 1,
            }
        });
    }

    /// Every tally, by route, model and shadow.
    pub fn snapshot(&self) -> Vec<Tally> {
        let tallies = self.tallies.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<Tally> = tallies.values().cloned().collect();
        out.sort_by(|a, b| (&a.route, &a.model, &a.shadow).cmp(&(&b.route, &b.model, &b.shadow)));
        out
    }
}

/// A text as exact match compares it: trimmed, lower case, runs of white space as one
/// space.
pub fn normalized(text: &str) -> String {
    text.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first word of a model's short reply, in upper case ("" when it starts with
/// neither a letter nor a digit).
pub fn first_word(reply: &str) -> String {
    reply
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric())
        .collect::<String>()
        .to_uppercase()
}

/// What a judge model said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    /// The first answer shown (A) is better.
    First,
    /// The second (B).
    Second,
    /// Neither.
    Tie,
}

/// Reads a judge model's reply: its first word, `A`, `B` or `TIE` (any case); `None`
/// for anything else.
pub fn judged(reply: &str) -> Option<Judgement> {
    match first_word(reply).as_str() {
        "A" => Some(Judgement::First),
        "B" => Some(Judgement::Second),
        "TIE" => Some(Judgement::Tie),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_and_budget_gate_and_are_counted() {
        let book = ShadowBook::default();
        let key = ("r", "small", "big");
        let first = book.admit(key, 2, None, 0);
        let second = book.admit(key, 2, None, 0);
        assert!(first.is_some() && second.is_some());
        assert!(book.admit(key, 2, None, 0).is_none(), "two in flight");
        drop(first);
        assert!(book.admit(key, 2, None, 0).is_some(), "a place freed");
        // A budget of 1 dollar an hour: spent, then skipped until the hour turns.
        book.record(key, Verdict::Agreed, (0.1, 1.5), 1000);
        assert!(book.admit(key, 9, Some(1.0), 2000).is_none());
        assert!(book.admit(key, 9, Some(1.0), 3_600_000 + 1).is_some());
        let t = &book.snapshot()[0];
        assert_eq!(
            (t.skipped_busy, t.skipped_budget, t.shadowed, t.agreed),
            (1, 1, 1, 1)
        );
        assert!((t.savings() - 1.4).abs() < 1e-12);
    }

    #[test]
    fn judges_and_texts_are_read_strictly() {
        assert_eq!(judged(" A."), Some(Judgement::First));
        assert_eq!(judged("b"), Some(Judgement::Second));
        assert_eq!(judged("Tie: both fine"), Some(Judgement::Tie));
        assert_eq!(judged("Answer A"), None);
        assert_eq!(judged(""), None);
        assert_eq!(
            normalized("  Paris\n is  THE capital "),
            "paris is the capital"
        );
    }
}
