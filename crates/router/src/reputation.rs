//! Reputation: per (model, domain), the failure rate of its answers and the share of
//! low scores among those rated, over windows of `window` outcomes, with a drift
//! alarm when a closed window's rate lies beyond 3σ of the windows before it.
//!
//! σ is the larger of the history's standard deviation and the binomial spread of a
//! window at the history's mean (√(p(1−p)/window), at least 1/(2·window)), so a
//! model that never failed before does not alarm at its first failure. Each closed
//! window joins the history (at most `history` kept), so a lasting change becomes
//! the new normal and the alarm clears. Only a rise is an alarm that demotes; a fall
//! is reported as drift too.

use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use switchyard_policy::ReputationConfig;

/// (model, domain) pairs tracked at most.
pub const MAX_KEYS: usize = 4096;

/// Which rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rate {
    /// Upstream errors, timeouts, stalls and cut streams, of all answers.
    Failures,
    /// Scores under `low_score`, of the answers rated (feedback, complaints).
    LowScores,
}

impl Rate {
    /// Its name in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Rate::Failures => "failures",
            Rate::LowScores => "low_scores",
        }
    }
}

/// A drift found when a window closed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drift {
    /// The model.
    pub model: String,
    /// The domain (empty when the request had no domain prediction).
    pub domain: String,
    /// Which rate.
    pub rate: Rate,
    /// The closed window's rate.
    pub now: f64,
    /// The history's mean.
    pub mean: f64,
    /// The σ it was judged by.
    pub sigma: f64,
    /// Whether the rate rose (an alarm that demotes) or fell.
    pub rose: bool,
}

/// One rate's windows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Windows {
    /// Outcomes in the open window.
    pub count: u32,
    /// Bad ones among them.
    pub bad: u32,
    /// Rates of the closed windows, oldest first.
    pub history: VecDeque<f64>,
    /// The last closed window rose beyond 3σ.
    pub alarm: bool,
}

impl Windows {
    /// Counts one outcome; when it closes a window, judges it.
    fn add(&mut self, bad: bool, config: &ReputationConfig) -> Option<(f64, f64, f64, bool)> {
        self.count += 1;
        self.bad += u32::from(bad);
        let window = config.window.max(1);
        if self.count < window {
            return None;
        }
        let rate = f64::from(self.bad) / f64::from(window);
        (self.count, self.bad) = (0, 0);
        let mut drift = None;
        let n = self.history.len();
        if n >= config.min_history.max(2) {
            let mean = self.history.iter().sum::<f64>() / n as f64;
            let var = self.history.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            let binomial = (mean * (1.0 - mean) / f64::from(window))
                .sqrt()
                .max(0.5 / f64::from(window));
            let sigma = var.sqrt().max(binomial);
            let rose = rate > mean + 3.0 * sigma;
            let fell = rate < mean - 3.0 * sigma;
            self.alarm = rose;
            if rose || fell {
                drift = Some((rate, mean, sigma, rose));
            }
        }
        self.history.push_back(rate);
        while self.history.len() > config.history.max(1) {
            self.history.pop_front();
        }
        drift
    }
}

/// One (model, domain).
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The model.
    pub model: String,
    /// The domain.
    pub domain: String,
    /// Its failure rate's windows.
    pub failures: Windows,
    /// Its low-score share's windows.
    pub low_scores: Windows,
}

impl Entry {
    /// Whether either rate is under an alarm.
    pub fn alarmed(&self) -> bool {
        self.failures.alarm || self.low_scores.alarm
    }
}

/// Every (model, domain) tracked.
#[derive(Debug, Default)]
pub struct Reputation {
    entries: Vec<Entry>,
    index: HashMap<u64, usize>,
    /// Entries under an alarm of either rate.
    alarmed: usize,
}

fn key(model: &str, domain: &str) -> u64 {
    let mut h = DefaultHasher::new();
    (model, domain).hash(&mut h);
    h.finish()
}

impl Reputation {
    /// The entry of (model, domain), made when new (none past [`MAX_KEYS`]).
    pub fn entry(&mut self, model: &str, domain: Option<&str>) -> Option<usize> {
        let domain = domain.unwrap_or("");
        let k = key(model, domain);
        if let Some(&i) = self.index.get(&k) {
            return Some(i);
        }
        if self.entries.len() >= MAX_KEYS {
            return None;
        }
        self.entries.push(Entry {
            model: model.to_owned(),
            domain: domain.to_owned(),
            failures: Windows::default(),
            low_scores: Windows::default(),
        });
        self.index.insert(k, self.entries.len() - 1);
        Some(self.entries.len() - 1)
    }

    /// Counts an outcome of entry `i`; returns the drift when a window closed on one.
    pub fn add(
        &mut self,
        i: usize,
        rate: Rate,
        bad: bool,
        config: &ReputationConfig,
    ) -> Option<Drift> {
        let e = self.entries.get_mut(i)?;
        let was = e.alarmed();
        let windows = match rate {
            Rate::Failures => &mut e.failures,
            Rate::LowScores => &mut e.low_scores,
        };
        let judged = windows.add(bad, config);
        match (was, e.alarmed()) {
            (false, true) => self.alarmed += 1,
            (true, false) => self.alarmed -= 1,
            _ => {}
        }
        let (now, mean, sigma, rose) = judged?;
        Some(Drift {
            model: e.model.clone(),
            domain: e.domain.clone(),
            rate,
            now,
            mean,
            sigma,
            rose,
        })
    }

    /// Whether (model, domain) is under an alarm of either rate.
    pub fn alarmed(&self, model: &str, domain: Option<&str>) -> bool {
        self.index
            .get(&key(model, domain.unwrap_or("")))
            .and_then(|&i| self.entries.get(i))
            .is_some_and(Entry::alarmed)
    }

    /// How many (model, domain) are under an alarm.
    pub fn alarms(&self) -> usize {
        self.alarmed
    }

    /// Every entry.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ReputationConfig {
        ReputationConfig {
            window: 50,
            history: 20,
            min_history: 5,
            low_score: 0.5,
            demote: true,
        }
    }

    #[test]
    fn a_rise_beyond_three_sigma_alarms_and_a_lasting_one_clears() {
        let c = config();
        let mut r = Reputation::default();
        let i = r.entry("m", Some("law")).unwrap();
        let mut state = 3u64;
        let mut next = || {
            state = switchyard_wire::hash::mix64(state);
            (state % 1000) as f64 / 1000.0
        };
        // 2% failures for 10 windows: no alarm.
        for _ in 0..500 {
            let bad = next() < 0.02;
            assert!(r.add(i, Rate::Failures, bad, &c).is_none_or(|d| !d.rose));
        }
        assert!(!r.alarmed("m", Some("law")));
        // Then 30%: the first window that closes alarms.
        let mut alarm = None;
        for n in 0..50 {
            if let Some(d) = r.add(i, Rate::Failures, next() < 0.3, &c) {
                alarm = Some((n, d));
            }
        }
        let (n, d) = alarm.expect("drift found");
        assert_eq!(n, 49, "at the window's end");
        assert!(d.rose && d.now > d.mean + 3.0 * d.sigma, "{d:?}");
        assert!(r.alarmed("m", Some("law")));
        assert_eq!(r.alarms(), 1);
        assert!(!r.alarmed("m", None), "another domain");
        // Lasting, it becomes the new normal.
        for _ in 0..(50 * 20) {
            r.add(i, Rate::Failures, next() < 0.3, &c);
        }
        assert!(!r.alarmed("m", Some("law")));
        assert_eq!(r.alarms(), 0);
    }

    #[test]
    fn a_first_failure_after_none_is_no_alarm_and_keys_are_bounded() {
        let c = config();
        let mut r = Reputation::default();
        let i = r.entry("m", None).unwrap();
        for _ in 0..(50 * 6) {
            r.add(i, Rate::LowScores, false, &c);
        }
        for n in 0..50 {
            let d = r.add(i, Rate::LowScores, n == 0, &c);
            assert!(d.is_none(), "{d:?}");
        }
        for k in 0..(MAX_KEYS + 10) {
            r.entry(&format!("m{k}"), None);
        }
        assert_eq!(r.entries().len(), MAX_KEYS);
    }
}
