//! Output-length prediction: how many tokens an answer will need, per route and model,
//! learned from the answers seen.
//!
//! Placement needs prompt plus output tokens to pick a pool, but a request without
//! `max_tokens` does not say how long its answer will be. Until a (route, model) has
//! [`MIN_SAMPLES`] answers, the configured default stands. Then its answers' chosen
//! percentile (P75 by default) does. Once it has `regression_after` answers over
//! more than one prompt length, a least-squares line of completion against prompt
//! tokens, plus the same percentile of its residuals, gives a per-prompt estimate.

use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

/// Answers kept per (route, model).
pub const WINDOW: usize = 512;
/// Answers needed before the percentile replaces the default.
pub const MIN_SAMPLES: usize = 16;

/// Which route and model an answer belongs to (`None` route: the client named the model).
pub type PredictKey = (Option<usize>, usize);

/// An output-length estimate and what it rests on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prediction {
    /// Tokens to plan for.
    pub tokens: u32,
    /// `default`, `percentile` or `regression`.
    pub basis: &'static str,
    /// Answers behind it.
    pub samples: usize,
}

#[derive(Debug, Default)]
struct Window {
    samples: VecDeque<(f64, f64)>,
    /// Answers recorded since the last fit.
    unfitted: usize,
    /// Scratch space for the fit's order statistics (no allocation per fit).
    scratch: Vec<f64>,
    /// The percentile of completions.
    quantile: f64,
    /// Intercept, slope and residual percentile, when the regression applies.
    line: Option<(f64, f64, f64)>,
    max: f64,
}

/// Output-length estimates for every (route, model).
#[derive(Debug)]
pub struct OutputPredictor {
    percentile: f64,
    regression_after: usize,
    default_tokens: u32,
    windows: Mutex<HashMap<PredictKey, Window>>,
}

fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let rank = ((values.len() - 1) as f64 * q).round() as usize;
    let (_, v, _) = values.select_nth_unstable_by(rank.min(values.len() - 1), f64::total_cmp);
    *v
}

impl OutputPredictor {
    /// A predictor answering `default_tokens` until it has seen enough.
    pub fn new(percentile: f64, regression_after: usize, default_tokens: u32) -> Self {
        OutputPredictor {
            percentile: percentile.clamp(0.0, 1.0),
            regression_after: regression_after.max(MIN_SAMPLES),
            default_tokens,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// The estimate for a request of `prompt_tokens` on `key`.
    pub fn predict(&self, key: PredictKey, prompt_tokens: u32) -> Prediction {
        let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(w) = windows.get(&key).filter(|w| w.samples.len() >= MIN_SAMPLES) else {
            return Prediction {
                tokens: self.default_tokens,
                basis: "default",
                samples: windows.get(&key).map_or(0, |w| w.samples.len()),
            };
        };
        let (estimate, basis) = match w.line {
            Some((a, b, margin)) => (a + b * f64::from(prompt_tokens) + margin, "regression"),
            None => (w.quantile, "percentile"),
        };
        Prediction {
            tokens: estimate.clamp(1.0, w.max.max(1.0)).round() as u32,
            basis,
            samples: w.samples.len(),
        }
    }

    /// Records an answer of `completion_tokens` to a prompt of `prompt_tokens`. The
    /// estimate is refitted when the answers since the last fit are at least
    /// [`REFIT_SHARE`] of the window: on every answer while a window is young, every
    /// 16th of a full one, so an answer costs O(1) amortized under the lock rather than
    /// two order statistics and a regression over the whole window.
    pub fn observe(&self, key: PredictKey, prompt_tokens: u32, completion_tokens: u32) {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let w = windows.entry(key).or_default();
        if w.samples.len() == WINDOW {
            w.samples.pop_front();
        }
        w.samples
            .push_back((f64::from(prompt_tokens), f64::from(completion_tokens)));
        w.unfitted += 1;
        let crossed = w.samples.len() == MIN_SAMPLES || w.samples.len() == self.regression_after;
        if crossed || w.unfitted * REFIT_SHARE >= w.samples.len() {
            w.fit(self.percentile, self.regression_after);
        }
    }
}

/// A window is refitted once the answers since its last fit are 1/`REFIT_SHARE` of it.
pub const REFIT_SHARE: usize = 32;

impl Window {
    /// The percentile, the largest answer and, with enough answers, the regression line.
    fn fit(&mut self, percentile: f64, regression_after: usize) {
        self.unfitted = 0;
        let mut ys = std::mem::take(&mut self.scratch);
        ys.clear();
        ys.extend(self.samples.iter().map(|s| s.1));
        self.max = ys.iter().copied().fold(0.0, f64::max);
        self.quantile = quantile(&mut ys, percentile);
        self.line = None;
        let n = self.samples.len() as f64;
        if self.samples.len() >= regression_after {
            let (sx, sy) = self
                .samples
                .iter()
                .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
            let (mx, my) = (sx / n, sy / n);
            let (sxx, sxy) = self.samples.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
                (a + (x - mx) * (x - mx), b + (x - mx) * (y - my))
            });
            if sxx > 0.0 {
                let slope = sxy / sxx;
                let intercept = my - slope * mx;
                ys.clear();
                ys.extend(
                    self.samples
                        .iter()
                        .map(|(x, y)| y - (intercept + slope * x)),
                );
                let margin = quantile(&mut ys, percentile);
                self.line = Some((intercept, slope, margin));
            }
        }
        self.scratch = ys;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_then_percentile_then_regression() {
        let p = OutputPredictor::new(0.75, 64, 512);
        let key = (Some(0), 1);
        assert_eq!(p.predict(key, 100).basis, "default");
        assert_eq!(p.predict(key, 100).tokens, 512);
        // Answers of 100..=199 tokens regardless of prompt: P75 ≈ 175.
        for i in 0..20u32 {
            p.observe(key, 50, 100 + (i * 5) % 100);
        }
        let pct = p.predict(key, 50);
        assert_eq!(pct.basis, "percentile");
        assert!((170..=180).contains(&pct.tokens), "{pct:?}");
        // Other keys are untouched.
        assert_eq!(p.predict((None, 1), 50).basis, "default");

        // Summaries: the answer is a fifth of the prompt, ± 10.
        let key = (Some(2), 0);
        for i in 0..200u32 {
            let prompt = 500 + (i * 97) % 5000;
            let noise = (i % 21) as i64 - 10;
            p.observe(key, prompt, (i64::from(prompt / 5) + noise) as u32);
        }
        let short = p.predict(key, 1000);
        let long = p.predict(key, 5000);
        assert_eq!(short.basis, "regression");
        assert!((200..=215).contains(&short.tokens), "{short:?}");
        assert!((1000..=1015).contains(&long.tokens), "{long:?}");
        // Never more than the longest answer seen.
        assert!(p.predict(key, 100_000).tokens <= 1000 + 10 + 100);
    }

    #[test]
    fn a_full_window_follows_a_shift_within_a_refit() {
        let p = OutputPredictor::new(0.75, usize::MAX, 512);
        let key = (Some(0), 0);
        for _ in 0..WINDOW {
            p.observe(key, 50, 100);
        }
        assert_eq!(p.predict(key, 50).tokens, 100);
        // Answers grow tenfold: once more than a quarter of the window is long, P75 is
        // long, at most WINDOW / REFIT_SHARE answers late.
        let mut switched = None;
        for i in 1..=WINDOW {
            p.observe(key, 50, 1000);
            if switched.is_none() && p.predict(key, 50).tokens == 1000 {
                switched = Some(i);
            }
        }
        let due = WINDOW / 4 + 1;
        let switched = switched.expect("the estimate follows the new answers");
        assert!(
            (due..=due + WINDOW / REFIT_SHARE).contains(&switched),
            "switched after {switched} answers"
        );
        assert_eq!(p.predict(key, 50).samples, WINDOW);
    }
}
