//! A linear softmax head over sentence embeddings: the learned part of the domain
//! signal, trained by `switchyard train domain` and shipped as a small JSON artifact.
//!
//! Training is multinomial logistic regression with an L2 penalty, fitted by full-batch
//! Adam; it is deterministic (no random draws), so the same data gives the same head.
//! Rows are split into training and held-out sets by a hash of their text
//! ([`holdout`]), so an evaluation can score a shipped head only on rows it never saw.

use serde::{Deserialize, Serialize};
use switchyard_wire::hash::{fnv1a, mix64};

/// Whether a text belongs to the held-out share `percent` (0–100) of a data set.
pub fn holdout(text: &str, percent: u32) -> bool {
    mix64(fnv1a(text.as_bytes(), 0)) % 100 < u64::from(percent)
}

/// How a head was trained.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Passes over the training rows.
    pub epochs: usize,
    /// Adam step size.
    pub learning_rate: f32,
    /// L2 penalty on the weights.
    pub l2: f32,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 400,
            learning_rate: 0.05,
            l2: 1e-4,
        }
    }
}

/// A trained linear head: `softmax(W·x + b)` over `labels`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearHead {
    /// The embedding model whose vectors it reads (its folder name).
    pub model: String,
    /// The vectors' length.
    pub dimension: usize,
    /// The classes, in output order.
    pub labels: Vec<String>,
    /// Row-major `labels × dimension` weights.
    pub weights: Vec<f32>,
    /// One bias per label.
    pub bias: Vec<f32>,
    /// The share (percent) of the data set held out of training by [`holdout`].
    pub holdout_percent: u32,
    /// How it was trained.
    pub options: TrainOptions,
}

/// A prediction: the winning label's index, its probability, and every probability.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Index into [`LinearHead::labels`].
    pub label: usize,
    /// Its probability.
    pub probability: f32,
    /// Every label's probability.
    pub probabilities: Vec<f32>,
}

fn softmax_into(logits: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for z in logits.iter_mut() {
        *z = (*z - max).exp();
        sum += *z;
    }
    for z in logits.iter_mut() {
        *z /= sum;
    }
}

impl LinearHead {
    /// Fits a head to `(vector, label index)` rows.
    pub fn train(
        model: &str,
        labels: Vec<String>,
        rows: &[(Vec<f32>, usize)],
        holdout_percent: u32,
        options: TrainOptions,
    ) -> Result<LinearHead, String> {
        let k = labels.len();
        if k < 2 {
            return Err(format!("need at least two labels, found {k}"));
        }
        let d = rows.first().map(|r| r.0.len()).ok_or("no training rows")?;
        if let Some((i, _)) = rows
            .iter()
            .enumerate()
            .find(|(_, r)| r.0.len() != d || r.1 >= k)
        {
            return Err(format!("training row {i} has the wrong length or label"));
        }
        let n = rows.len() as f32;
        let mut w = vec![0.0f32; k * d];
        let mut b = vec![0.0f32; k];
        let (mut mw, mut vw) = (vec![0.0f32; k * d], vec![0.0f32; k * d]);
        let (mut mb, mut vb) = (vec![0.0f32; k], vec![0.0f32; k]);
        let (beta1, beta2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let mut gw = vec![0.0f32; k * d];
        let mut gb = vec![0.0f32; k];
        let mut p = vec![0.0f32; k];
        for epoch in 1..=options.epochs {
            gw.iter_mut().for_each(|g| *g = 0.0);
            gb.iter_mut().for_each(|g| *g = 0.0);
            for (x, y) in rows {
                for (c, pc) in p.iter_mut().enumerate() {
                    *pc = b[c] + dot(&w[c * d..(c + 1) * d], x);
                }
                softmax_into(&mut p);
                p[*y] -= 1.0;
                for (c, err) in p.iter().enumerate() {
                    gb[c] += err;
                    for (g, xi) in gw[c * d..(c + 1) * d].iter_mut().zip(x) {
                        *g += err * xi;
                    }
                }
            }
            let t = i32::try_from(epoch).unwrap_or(i32::MAX);
            let (c1, c2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
            let step = |param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], l2: f32| {
                for i in 0..param.len() {
                    let g = grad[i] / n + l2 * param[i];
                    m[i] = beta1 * m[i] + (1.0 - beta1) * g;
                    v[i] = beta2 * v[i] + (1.0 - beta2) * g * g;
                    param[i] -= options.learning_rate * (m[i] / c1) / ((v[i] / c2).sqrt() + eps);
                }
            };
            step(&mut w, &gw, &mut mw, &mut vw, options.l2);
            step(&mut b, &gb, &mut mb, &mut vb, 0.0);
        }
        Ok(LinearHead {
            model: model.to_owned(),
            dimension: d,
            labels,
            weights: w.iter().map(|x| round6(*x)).collect(),
            bias: b.iter().map(|x| round6(*x)).collect(),
            holdout_percent,
            options,
        })
    }

    /// Checks the shapes after loading.
    pub fn validate(&self) -> Result<(), String> {
        let k = self.labels.len();
        if k < 2 {
            return Err(format!("a head needs at least two labels, found {k}"));
        }
        if self.weights.len() != k * self.dimension || self.bias.len() != k {
            return Err(format!(
                "weights ({}) and bias ({}) do not fit {k} labels × {} dimensions",
                self.weights.len(),
                self.bias.len(),
                self.dimension
            ));
        }
        if self
            .weights
            .iter()
            .chain(&self.bias)
            .any(|x| !x.is_finite())
        {
            return Err("a weight is not a finite number".to_owned());
        }
        Ok(())
    }

    /// The index of a label.
    pub fn label_index(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == label)
    }

    /// Classifies one vector (of length [`LinearHead::dimension`]).
    pub fn predict(&self, x: &[f32]) -> Prediction {
        let d = self.dimension;
        let mut p: Vec<f32> = (0..self.labels.len())
            .map(|c| self.bias[c] + dot(&self.weights[c * d..(c + 1) * d], x))
            .collect();
        softmax_into(&mut p);
        let (label, probability) =
            p.iter()
                .copied()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, q)| {
                    if q > best.1 { (i, q) } else { best }
                });
        Prediction {
            label,
            probability,
            probabilities: p,
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Six significant digits: the artifact stays small and diffs stay readable.
fn round6(x: f32) -> f32 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let digits = 5 - x.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits);
    ((f64::from(x) * scale).round() / scale) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs() -> Vec<(Vec<f32>, usize)> {
        // Three clusters on the axes of a 4-d space, with deterministic jitter.
        let mut rows = Vec::new();
        for i in 0..90usize {
            let class = i % 3;
            let jitter = |j: usize| ((i * 7 + j * 13) % 11) as f32 / 40.0 - 0.12;
            let mut x: Vec<f32> = (0..4).map(jitter).collect();
            x[class] += 1.0;
            rows.push((x, class));
        }
        rows
    }

    fn labels() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    #[test]
    fn separable_clusters_are_learned() {
        let head = LinearHead::train("m", labels(), &blobs(), 0, TrainOptions::default()).unwrap();
        head.validate().unwrap();
        for (x, y) in blobs() {
            let p = head.predict(&x);
            assert_eq!(p.label, y);
            assert!(p.probability > 0.5, "{p:?}");
            let total: f32 = p.probabilities.iter().sum();
            assert!((total - 1.0).abs() < 1e-5);
        }
        assert_eq!(head.label_index("c"), Some(2));
    }

    #[test]
    fn training_is_deterministic_and_round_trips_through_json() {
        let a = LinearHead::train("m", labels(), &blobs(), 20, TrainOptions::default()).unwrap();
        let b = LinearHead::train("m", labels(), &blobs(), 20, TrainOptions::default()).unwrap();
        assert_eq!(a, b);
        let json = serde_json::to_string(&a).unwrap();
        let back: LinearHead = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn bad_rows_and_shapes_are_refused() {
        let mut rows = blobs();
        rows[5].1 = 9;
        assert!(LinearHead::train("m", labels(), &rows, 0, TrainOptions::default()).is_err());
        assert!(
            LinearHead::train("m", vec!["a".into()], &blobs(), 0, TrainOptions::default()).is_err()
        );
        assert!(LinearHead::train("m", labels(), &[], 0, TrainOptions::default()).is_err());
        let mut head =
            LinearHead::train("m", labels(), &blobs(), 0, TrainOptions::default()).unwrap();
        head.bias.pop();
        assert!(head.validate().is_err());
    }

    #[test]
    fn holdout_is_stable_and_near_its_share() {
        let held = (0..10_000)
            .filter(|i| holdout(&format!("question {i}"), 20))
            .count();
        assert!((1_800..2_200).contains(&held), "{held}");
        assert_eq!(holdout("same text", 20), holdout("same text", 20));
        assert!(!holdout("anything", 0));
    }

    #[test]
    fn rounding_keeps_six_digits() {
        assert_eq!(round6(0.123_456_78), 0.123_457);
        assert_eq!(round6(-12_345.678), -12_345.7);
        assert_eq!(round6(0.0), 0.0);
    }
}
