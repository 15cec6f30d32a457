//! Routers learned from outcome data: given a prompt's embedding, each model's chance
//! of answering it well. The data is a JSONL file of prompts with, per model, whether
//! it answered correctly (or a score in [0, 1]); routing sends a prompt to the strong
//! model when the predicted gain (strong − weak) is high.
//!
//! Learners, all predicting per-model success from what training rows say:
//! - `ridge`: a ridge regression of each model's score on the embedding (a linear
//!   probability model), solved exactly;
//! - `knn`: the mean score of the `k` most similar training prompts (cosine);
//! - `prior`: the mean score of the training rows in the same group (a category or
//!   subject column of the data; a live router has only predicted categories);
//! - an ensemble averages learners' predictions.
//!
//! [`Curve`] scores a router on labelled rows: the accuracy as the share of prompts
//! sent to the strong model grows, APGR (the average share of the weak–strong gap
//! recovered), and the strong share needed to reach 95% of the strong model's
//! accuracy, with bootstrap intervals.

use serde::{Deserialize, Serialize};
use std::path::Path;
use switchyard_wire::hash::{fnv1a, mix64};

/// Fields a prompt may be under.
pub const PROMPT_FIELDS: [&str; 3] = ["prompt", "text", "question"];

/// One labelled row.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeRow {
    /// Its id (the `id` field, else a hash of the prompt), for splits and reports.
    pub id: String,
    /// The prompt.
    pub text: String,
    /// The `category` field, when present.
    pub category: Option<String>,
    /// The `subject` field, when present.
    pub subject: Option<String>,
    /// Per model (in [`OutcomeData::models`] order), its score in [0, 1].
    pub scores: Vec<f64>,
}

/// A labelled outcome file.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeData {
    /// The models, as the file names them (sorted).
    pub models: Vec<String>,
    /// The rows.
    pub rows: Vec<OutcomeRow>,
}

impl OutcomeData {
    /// Each model's mean score.
    pub fn accuracy(&self) -> Vec<f64> {
        let n = self.rows.len().max(1) as f64;
        (0..self.models.len())
            .map(|m| self.rows.iter().map(|r| r.scores[m]).sum::<f64>() / n)
            .collect()
    }

    /// The index of a model by name.
    pub fn model(&self, name: &str) -> Option<usize> {
        self.models.iter().position(|m| m == name)
    }
}

/// Reads an outcome file: JSONL, one object per line with a prompt (`prompt`, `text`
/// or `question`) and `correct` (or `scores`): an object from model name to a boolean
/// or a number in [0, 1]. Every row must name the same models. Errors name the file
/// and line.
pub fn read_outcomes(path: &Path) -> Result<OutcomeData, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_outcomes(&text).map_err(|(line, e)| format!("{}:{line}: {e}", path.display()))
}

/// [`read_outcomes`] on text already read; errors carry the line.
pub fn parse_outcomes(text: &str) -> Result<OutcomeData, (usize, String)> {
    let mut models: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for (line, value) in crate::dataset::parse_jsonl(text)? {
        let fail = |e: String| (line, e);
        let prompt = PROMPT_FIELDS
            .iter()
            .find_map(|f| value.get(*f).and_then(|v| v.as_str()))
            .ok_or_else(|| {
                fail(format!(
                    "no prompt: a row needs one of {} as a string",
                    PROMPT_FIELDS.join(", ")
                ))
            })?;
        let outcomes = ["correct", "scores"]
            .iter()
            .find_map(|f| value.get(*f).and_then(|v| v.as_object()))
            .ok_or_else(|| {
                fail("no `correct` (or `scores`): an object from model name to true/false or a score in [0, 1]".into())
            })?;
        let mut names: Vec<String> = outcomes.keys().cloned().collect();
        names.sort();
        if names.len() < 2 {
            return Err(fail(format!(
                "`correct` names {} model(s); routing needs at least two",
                names.len()
            )));
        }
        match &models {
            None => models = Some(names.clone()),
            Some(known) if *known != names => {
                return Err(fail(format!(
                    "`correct` names {names:?}, but the first row names {known:?}; every row must name the same models"
                )));
            }
            Some(_) => {}
        }
        let mut scores = Vec::with_capacity(names.len());
        for name in &names {
            let score = match &outcomes[name] {
                serde_json::Value::Bool(b) => f64::from(u8::from(*b)),
                v => match v.as_f64() {
                    Some(s) if (0.0..=1.0).contains(&s) => s,
                    _ => {
                        return Err(fail(format!(
                            "`{name}`: {v} is not true, false or a score in [0, 1]"
                        )));
                    }
                },
            };
            scores.push(score);
        }
        let field = |f: &str| value.get(f).and_then(|v| v.as_str()).map(str::to_owned);
        rows.push(OutcomeRow {
            id: field("id").unwrap_or_else(|| format!("{:016x}", fnv1a(prompt.as_bytes(), 0))),
            text: prompt.to_owned(),
            category: field("category"),
            subject: field("subject"),
            scores,
        });
    }
    let Some(models) = models else {
        return Err((1, "the file has no rows".into()));
    };
    Ok(OutcomeData { models, rows })
}

/// The fold (of `folds`) a row falls in, by a hash of its id: the same question is
/// always in the same fold.
pub fn fold(id: &str, folds: usize) -> usize {
    (mix64(fnv1a(id.as_bytes(), 7)) % folds.max(1) as u64) as usize
}

/// A ridge regression of each model's score on the embedding (bias unpenalized).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ridge {
    /// Per model: the weights of the dimensions, then the bias.
    pub weights: Vec<Vec<f32>>,
}

impl Ridge {
    /// Whether it has no weights (a router file of another learner).
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// Fits on `xs` (rows of one dimension) and per-row per-model `ys`, with penalty
    /// `l2` (times the row count).
    pub fn fit(xs: &[&[f32]], ys: &[&[f64]], l2: f64) -> Result<Ridge, String> {
        let n = xs.len();
        let d = xs.first().map_or(0, |x| x.len());
        if n == 0 || d == 0 {
            return Err("no training rows".into());
        }
        let m = ys.first().map_or(0, |y| y.len());
        let p = d + 1;
        // The normal equations: A = XᵀX + λI (not on the bias), B = XᵀY.
        let mut a = vec![0.0f64; p * p];
        let mut b = vec![0.0f64; p * m];
        let mut row = vec![0.0f64; p];
        for (x, y) in xs.iter().zip(ys) {
            if x.len() != d {
                return Err(format!("a vector has {} dimensions, not {d}", x.len()));
            }
            for (r, v) in row.iter_mut().zip(x.iter()) {
                *r = f64::from(*v);
            }
            row[d] = 1.0;
            for i in 0..p {
                let ri = row[i];
                if ri == 0.0 {
                    continue;
                }
                let line = &mut a[i * p..i * p + p];
                for (j, cell) in line.iter_mut().enumerate().skip(i) {
                    *cell += ri * row[j];
                }
                for k in 0..m {
                    b[i * m + k] += ri * y[k];
                }
            }
        }
        for i in 0..p {
            for j in 0..i {
                a[i * p + j] = a[j * p + i];
            }
            if i < d {
                a[i * p + i] += l2 * n as f64;
            } else {
                a[i * p + i] += 1e-9 * n as f64;
            }
        }
        let l = cholesky(&mut a, p)?;
        let weights = (0..m)
            .map(|k| {
                let rhs: Vec<f64> = (0..p).map(|i| b[i * m + k]).collect();
                solve(l, p, &rhs).into_iter().map(|w| w as f32).collect()
            })
            .collect();
        Ok(Ridge { weights })
    }

    /// Each model's predicted score for a vector.
    pub fn predict(&self, x: &[f32]) -> Vec<f64> {
        self.weights
            .iter()
            .map(|w| {
                let d = w.len() - 1;
                let dot: f32 = w[..d].iter().zip(x).map(|(a, b)| a * b).sum();
                f64::from(dot + w[d])
            })
            .collect()
    }
}

/// The mean of several perceptrons' predictions.
pub fn mean_prediction(nets: &[Mlp], x: &[f32]) -> Vec<f64> {
    let mut sum: Vec<f64> = Vec::new();
    for net in nets {
        let p = net.predict(x);
        if sum.is_empty() {
            sum = p;
        } else {
            sum.iter_mut().zip(p).for_each(|(s, v)| *s += v);
        }
    }
    let n = nets.len().max(1) as f64;
    sum.into_iter().map(|s| s / n).collect()
}

/// A small multilayer perceptron head: one hidden layer (ReLU), one sigmoid output
/// per model, fitted by Adam on the binary cross-entropy of each model's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mlp {
    /// Hidden weights, `hidden × (inputs + 1)` (the last column is the bias).
    pub w1: Vec<Vec<f32>>,
    /// Output weights, `models × (hidden + 1)`.
    pub w2: Vec<Vec<f32>>,
}

/// How an [`Mlp`] is fitted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MlpOptions {
    /// Hidden units.
    pub hidden: usize,
    /// Adam steps (batches of 64 rows, the rows reshuffled at each pass over them), so
    /// the training length does not depend on how many rows there are.
    pub steps: usize,
    /// Adam's step size.
    pub rate: f32,
    /// L2 penalty on the weights (not the biases).
    pub l2: f32,
    /// Seeds the initial weights and the order of rows.
    pub seed: u64,
}

impl Mlp {
    /// Fits the head to rows `xs` with outcomes `ys` (scores in [0, 1] per model).
    pub fn fit(xs: &[&[f32]], ys: &[&[f64]], o: MlpOptions) -> Result<Mlp, String> {
        let n = xs.len();
        let d = xs.first().map_or(0, |x| x.len());
        let m = ys.first().map_or(0, |y| y.len());
        if n == 0 || d == 0 || m == 0 || o.hidden == 0 || o.steps == 0 {
            return Err("no training rows, hidden units or steps".into());
        }
        let mut state = o.seed ^ 0x3a1f_5eed;
        let mut next = || {
            state = mix64(state.wrapping_add(0x9E37_79B9_7F4A_7C15));
            (state >> 11) as f32 / (1u64 << 53) as f32
        };
        let scale1 = (2.0 / d as f32).sqrt();
        let scale2 = (2.0 / o.hidden as f32).sqrt();
        let mut w1: Vec<Vec<f32>> = (0..o.hidden)
            .map(|_| {
                let mut row: Vec<f32> = (0..d).map(|_| (next() * 2.0 - 1.0) * scale1).collect();
                row.push(0.0);
                row
            })
            .collect();
        let mut w2: Vec<Vec<f32>> = (0..m)
            .map(|_| {
                let mut row: Vec<f32> = (0..o.hidden)
                    .map(|_| (next() * 2.0 - 1.0) * scale2)
                    .collect();
                row.push(0.0);
                row
            })
            .collect();
        let zeros =
            |w: &Vec<Vec<f32>>| -> Vec<Vec<f32>> { w.iter().map(|r| vec![0.0; r.len()]).collect() };
        let (mut m1, mut v1, mut m2, mut v2) = (zeros(&w1), zeros(&w1), zeros(&w2), zeros(&w2));
        let (mut g1, mut g2) = (zeros(&w1), zeros(&w2));
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let batch = 64usize;
        let mut order: Vec<usize> = (0..n).collect();
        let mut step = 0i32;
        let mut hidden = vec![0.0f32; o.hidden];
        let mut dh = vec![0.0f32; o.hidden];
        let mut steps_left = o.steps;
        while steps_left > 0 {
            for i in (1..n).rev() {
                let j = (next() * (i + 1) as f32) as usize % (i + 1);
                order.swap(i, j);
            }
            for chunk in order.chunks(batch) {
                if steps_left == 0 {
                    break;
                }
                steps_left -= 1;
                g1.iter_mut()
                    .for_each(|r| r.iter_mut().for_each(|g| *g = 0.0));
                g2.iter_mut()
                    .for_each(|r| r.iter_mut().for_each(|g| *g = 0.0));
                for &r in chunk {
                    let x = xs[r];
                    for (h, w) in hidden.iter_mut().zip(&w1) {
                        let z: f32 = w[..d].iter().zip(x).map(|(a, b)| a * b).sum::<f32>() + w[d];
                        *h = z.max(0.0);
                    }
                    dh.iter_mut().for_each(|v| *v = 0.0);
                    for (k, w) in w2.iter().enumerate() {
                        let z: f32 = w[..o.hidden]
                            .iter()
                            .zip(&hidden)
                            .map(|(a, b)| a * b)
                            .sum::<f32>()
                            + w[o.hidden];
                        let p = 1.0 / (1.0 + (-z).exp());
                        let err = p - ys[r][k] as f32;
                        for (g, h) in g2[k].iter_mut().zip(&hidden) {
                            *g += err * h;
                        }
                        g2[k][o.hidden] += err;
                        for (dv, wv) in dh.iter_mut().zip(&w[..o.hidden]) {
                            *dv += err * wv;
                        }
                    }
                    for ((g, dv), h) in g1.iter_mut().zip(&dh).zip(&hidden) {
                        if *h <= 0.0 || *dv == 0.0 {
                            continue;
                        }
                        for (gi, xi) in g.iter_mut().zip(x) {
                            *gi += dv * xi;
                        }
                        g[d] += dv;
                    }
                }
                step += 1;
                let size = chunk.len() as f32;
                let (c1, c2) = (1.0 - b1.powi(step), 1.0 - b2.powi(step));
                let adam = |w: &mut Vec<Vec<f32>>,
                            g: &Vec<Vec<f32>>,
                            m: &mut Vec<Vec<f32>>,
                            v: &mut Vec<Vec<f32>>| {
                    for (((wr, gr), mr), vr) in w.iter_mut().zip(g).zip(m).zip(v) {
                        let last = wr.len() - 1;
                        for (i, (((wi, gi), mi), vi)) in wr
                            .iter_mut()
                            .zip(gr)
                            .zip(mr.iter_mut())
                            .zip(vr.iter_mut())
                            .enumerate()
                        {
                            let decay = if i == last { 0.0 } else { o.l2 * *wi };
                            let grad = gi / size + decay;
                            *mi = b1 * *mi + (1.0 - b1) * grad;
                            *vi = b2 * *vi + (1.0 - b2) * grad * grad;
                            *wi -= o.rate * (*mi / c1) / ((*vi / c2).sqrt() + eps);
                        }
                    }
                };
                adam(&mut w1, &g1, &mut m1, &mut v1);
                adam(&mut w2, &g2, &mut m2, &mut v2);
            }
        }
        Ok(Mlp { w1, w2 })
    }

    /// Each model's predicted probability of a good outcome for `x`.
    pub fn predict(&self, x: &[f32]) -> Vec<f64> {
        let hidden: Vec<f32> = self
            .w1
            .iter()
            .map(|w| {
                let d = w.len() - 1;
                (w[..d].iter().zip(x).map(|(a, b)| a * b).sum::<f32>() + w[d]).max(0.0)
            })
            .collect();
        self.w2
            .iter()
            .map(|w| {
                let h = w.len() - 1;
                let z = w[..h].iter().zip(&hidden).map(|(a, b)| a * b).sum::<f32>() + w[h];
                f64::from(1.0 / (1.0 + (-z).exp()))
            })
            .collect()
    }
}

/// In-place Cholesky factor (lower triangle) of a symmetric positive definite matrix.
fn cholesky(a: &mut [f64], p: usize) -> Result<&[f64], String> {
    for j in 0..p {
        let mut d = a[j * p + j];
        for k in 0..j {
            d -= a[j * p + k] * a[j * p + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return Err("the normal equations are singular; raise the penalty".into());
        }
        let d = d.sqrt();
        a[j * p + j] = d;
        for i in j + 1..p {
            let mut s = a[i * p + j];
            for k in 0..j {
                s -= a[i * p + k] * a[j * p + k];
            }
            a[i * p + j] = s / d;
        }
    }
    Ok(a)
}

/// Solves L Lᵀ x = b.
fn solve(l: &[f64], p: usize, b: &[f64]) -> Vec<f64> {
    let mut y = b.to_vec();
    for i in 0..p {
        let mut s = y[i];
        for k in 0..i {
            s -= l[i * p + k] * y[k];
        }
        y[i] = s / l[i * p + i];
    }
    for i in (0..p).rev() {
        let mut s = y[i];
        for k in i + 1..p {
            s -= l[k * p + i] * y[k];
        }
        y[i] = s / l[i * p + i];
    }
    y
}

/// Unit length (left alone when zero).
pub fn normalized(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter().map(|x| x / norm).collect()
    } else {
        v.to_vec()
    }
}

/// The indexes of the `k` training vectors most similar to `x` (dot product of unit
/// vectors), most similar first.
pub fn nearest(x: &[f32], train: &[&[f32]], k: usize) -> Vec<usize> {
    let mut sims: Vec<(f32, usize)> = train
        .iter()
        .enumerate()
        .map(|(i, t)| (t.iter().zip(x).map(|(a, b)| a * b).sum(), i))
        .collect();
    let k = k.min(sims.len());
    if k == 0 {
        return Vec::new();
    }
    sims.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
    sims.truncate(k);
    sims.sort_by(|a, b| b.0.total_cmp(&a.0));
    sims.into_iter().map(|(_, i)| i).collect()
}

/// What a ridge router reads of a prompt: its embedding (unit length, as the
/// embedder gives it), then, `with_text`, its [`text_features`]. Training and serving
/// both build it here.
pub fn router_input(embedding: &[f32], text: &str, with_text: bool) -> Vec<f32> {
    let mut x = Vec::with_capacity(embedding.len() + TEXT_FEATURES);
    x.extend_from_slice(embedding);
    if with_text {
        x.extend(text_features(text));
    }
    x
}

/// How many surface features [`text_features`] gives.
pub const TEXT_FEATURES: usize = 6;

/// Surface features of a prompt that speak to difficulty rather than topic: its
/// length, digits, symbols of arithmetic, lines, and negated questions.
pub fn text_features(text: &str) -> Vec<f32> {
    // The last 4 KiB are enough to tell a question's form; the work stays bounded.
    let mut start = text.len().saturating_sub(4096);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let text = &text[start..];
    let chars = text.chars().count().max(1) as f32;
    let count = |f: &dyn Fn(char) -> bool| text.chars().filter(|c| f(*c)).count() as f32;
    let digits = count(&|c| c.is_ascii_digit());
    let symbols = count(&|c| matches!(c, '=' | '+' | '^' | '*' | '/' | '(' | ')' | '<' | '>'));
    let lines = text.lines().count() as f32;
    let negated = ["EXCEPT", " NOT ", "LEAST", "FALSE"]
        .iter()
        .filter(|w| text.contains(**w))
        .count() as f32;
    vec![
        (1.0 + chars).ln() / 8.0,
        digits / chars * 4.0,
        symbols / chars * 8.0,
        (lines / 10.0).min(2.0),
        negated / 2.0,
        f32::from(u8::from(digits > 0.0)),
    ]
}

/// A router file: a learner's parameters, the embedding it reads, and where it came
/// from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouterFile {
    /// The file format (1).
    pub format: u32,
    /// The embedding model's name.
    pub embedding: String,
    /// Its dimension.
    pub dimension: usize,
    /// Its products' arithmetic (`int8` or `f32`).
    pub precision: String,
    /// Tokens embedded per text.
    pub max_tokens: usize,
    /// The learner (`ridge`; `ridge+text` with [`text_features`] after the
    /// embedding; `mlp+text`, perceptrons on the same inputs).
    pub learner: String,
    /// The models of the training data, in the learner's order.
    pub models: Vec<String>,
    /// The strong model (routing sends prompts to it when the gain is high).
    pub strong: String,
    /// The weak model.
    pub weak: String,
    /// The ridge regression (learners `ridge`, `ridge+text`).
    #[serde(default, skip_serializing_if = "Ridge::is_empty")]
    pub ridge: Ridge,
    /// The perceptrons whose predictions are averaged (learner `mlp+text`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mlps: Vec<Mlp>,
    /// The sha256 of the training data.
    pub data_sha256: String,
    /// Gain thresholds by the strong share they give on the training data: entry `i`
    /// is the gain above which `i`% of the training prompts went to the strong model.
    pub thresholds: Vec<f64>,
}

/// The shipped router: trained on the shared MMLU set (GPT-4 strong, Mixtral weak);
/// its provenance is `assets/mmlu-router.md`.
pub const DEFAULT_ROUTER: &str = include_str!("../assets/mmlu-router.json");

/// Reads a router file from `path`, or the shipped one, and checks it.
pub fn read_router(path: Option<&Path>) -> Result<RouterFile, String> {
    let (json, origin) = match path {
        Some(p) => (
            std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?,
            p.display().to_string(),
        ),
        None => (DEFAULT_ROUTER.to_owned(), "the shipped router".to_owned()),
    };
    let file: RouterFile =
        serde_json::from_str(&json).map_err(|e| format!("{origin}: not a router file: {e}"))?;
    file.validate().map_err(|e| format!("{origin}: {e}"))?;
    Ok(file)
}

/// Learners a router file may hold.
pub const FILE_LEARNERS: [&str; 3] = ["ridge", "ridge+text", "mlp+text"];

impl RouterFile {
    /// Checks that the file is whole: a known learner and weights of the right size
    /// for its models.
    pub fn validate(&self) -> Result<(), String> {
        if self.format != 1 {
            return Err(format!("format {} is not 1", self.format));
        }
        if !FILE_LEARNERS.contains(&self.learner.as_str()) {
            return Err(format!(
                "learner `{}` is not one of {}",
                self.learner,
                FILE_LEARNERS.join(", ")
            ));
        }
        let inputs = self.dimension
            + 1
            + if self.learner == "ridge" {
                0
            } else {
                TEXT_FEATURES
            };
        if self.learner == "mlp+text" {
            let fits = |m: &Mlp| {
                let hidden = m.w1.len();
                hidden > 0
                    && m.w1.iter().all(|w| w.len() == inputs)
                    && m.w2.len() == self.models.len()
                    && m.w2.iter().all(|w| w.len() == hidden + 1)
            };
            if self.mlps.is_empty() || !self.mlps.iter().all(fits) {
                return Err(format!(
                    "the perceptrons do not read {inputs} inputs into {} outputs",
                    self.models.len()
                ));
            }
        } else if self.ridge.weights.len() != self.models.len()
            || self.ridge.weights.iter().any(|w| w.len() != inputs)
        {
            return Err(format!(
                "the weights are not {} rows of {inputs}",
                self.models.len()
            ));
        }
        for m in [&self.strong, &self.weak] {
            if !self.models.contains(m) {
                return Err(format!("`{m}` is not among its models {:?}", self.models));
            }
        }
        Ok(())
    }

    /// Checks that the router reads the vectors of this embedding model: its name,
    /// dimension, precision and tokens per text (vectors of another model or
    /// precision would give meaningless predictions).
    pub fn check_embedder(
        &self,
        name: &str,
        dimension: usize,
        precision: &str,
        max_tokens: usize,
    ) -> Result<(), String> {
        if self.embedding != name
            || self.dimension != dimension
            || self.precision != precision
            || self.max_tokens != max_tokens
        {
            return Err(format!(
                "the router was trained on `{}` vectors ({} dimensions, {} products, {} tokens per text) but signals.model is `{name}` ({dimension} dimensions, {precision} products, {max_tokens} tokens); retrain it with `switchyard train router` on this model",
                self.embedding, self.dimension, self.precision, self.max_tokens
            ));
        }
        Ok(())
    }

    /// Each model's predicted score for a prompt and its embedding (of the router's
    /// model).
    pub fn predict(&self, embedding: &[f32], text: &str) -> Result<Vec<f64>, String> {
        if embedding.len() != self.dimension {
            return Err(format!(
                "the embedding has {} dimensions; the router reads {} ({})",
                embedding.len(),
                self.dimension,
                self.embedding
            ));
        }
        let x = router_input(embedding, text, self.learner != "ridge");
        if self.learner == "mlp+text" {
            return Ok(mean_prediction(&self.mlps, &x));
        }
        Ok(self.ridge.predict(&x))
    }

    /// The predicted gain of the strong model over the weak one.
    pub fn gain(&self, embedding: &[f32], text: &str) -> Result<f64, String> {
        let p = self.predict(embedding, text)?;
        let at = |name: &str| {
            self.models
                .iter()
                .position(|m| m == name)
                .and_then(|i| p.get(i).copied())
                .ok_or_else(|| format!("the router has no model `{name}`"))
        };
        Ok(at(&self.strong)? - at(&self.weak)?)
    }
}

/// A router's cost–quality curve on labelled rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurveReport {
    /// The share of prompts sent to the strong model at the cheapest point whose
    /// accuracy reaches 95% of the strong model's (1 when none does).
    pub strong_share_at_95: f64,
    /// Its bootstrap 95% interval.
    pub strong_share_at_95_ci: [f64; 2],
    /// The average share of the weak–strong accuracy gap recovered, over strong shares
    /// from 0 to 1.
    pub apgr: f64,
    /// Its bootstrap 95% interval.
    pub apgr_ci: [f64; 2],
    /// (strong share, accuracy), every percent.
    pub curve: Vec<[f64; 2]>,
}

/// Scores a router: `gain[i]` its score for row `i` (higher goes to the strong model
/// first), `strong[i]` and `weak[i]` the two models' scores on it.
pub fn curve(
    gain: &[f64],
    strong: &[f64],
    weak: &[f64],
    resamples: usize,
    seed: u64,
) -> CurveReport {
    let n = gain.len();
    // Order by gain, ties by a hash of the position (a random order fixed by seed).
    let mut order: Vec<usize> = (0..n).collect();
    let tie = |i: usize| mix64(seed ^ mix64(i as u64 + 1));
    order.sort_by(|&a, &b| gain[b].total_cmp(&gain[a]).then(tie(a).cmp(&tie(b))));
    let ones = vec![1.0; n];
    let (share, apgr, points) = walk(&order, strong, weak, &ones, true);
    let mut shares = Vec::with_capacity(resamples);
    let mut apgrs = Vec::with_capacity(resamples);
    let mut state = seed ^ 0x5eed;
    let mut counts = vec![0.0f64; n];
    for _ in 0..resamples {
        counts.iter_mut().for_each(|c| *c = 0.0);
        for _ in 0..n {
            state = mix64(state.wrapping_add(0x9e37_79b9_7f4a_7c15));
            counts[(state % n.max(1) as u64) as usize] += 1.0;
        }
        let (s, a, _) = walk(&order, strong, weak, &counts, false);
        shares.push(s);
        apgrs.push(a);
    }
    CurveReport {
        strong_share_at_95: share,
        strong_share_at_95_ci: interval(&mut shares, share),
        apgr,
        apgr_ci: interval(&mut apgrs, apgr),
        curve: points,
    }
}

fn interval(values: &mut [f64], point: f64) -> [f64; 2] {
    if values.is_empty() {
        return [point, point];
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    [at(0.025), at(0.975)]
}

/// Walks rows in routing order with weights: (share at 95%, APGR, curve points).
fn walk(
    order: &[usize],
    strong: &[f64],
    weak: &[f64],
    weight: &[f64],
    points: bool,
) -> (f64, f64, Vec<[f64; 2]>) {
    let total: f64 = order.iter().map(|&i| weight[i]).sum();
    if total <= 0.0 {
        return (1.0, 0.0, Vec::new());
    }
    let acc_strong = order.iter().map(|&i| weight[i] * strong[i]).sum::<f64>() / total;
    let acc_weak = order.iter().map(|&i| weight[i] * weak[i]).sum::<f64>() / total;
    let gap = acc_strong - acc_weak;
    let target = 0.95 * acc_strong;
    let mut correct = acc_weak * total;
    let mut sent = 0.0;
    let mut share_at = if acc_weak >= target { Some(0.0) } else { None };
    let mut area = 0.0;
    let pgr = |acc: f64| {
        if gap.abs() > 1e-12 {
            (acc - acc_weak) / gap
        } else {
            1.0
        }
    };
    let mut previous = pgr(acc_weak);
    let mut curve = vec![[0.0, acc_weak]];
    let mut next_point = 0.01;
    for &i in order {
        let w = weight[i];
        if w == 0.0 {
            continue;
        }
        correct += w * (strong[i] - weak[i]);
        sent += w;
        let acc = correct / total;
        let now = pgr(acc);
        area += (previous + now) / 2.0 * (w / total);
        previous = now;
        let share = sent / total;
        if share_at.is_none() && acc >= target - 1e-12 {
            share_at = Some(share);
        }
        if points && share + 1e-12 >= next_point {
            curve.push([share, acc]);
            next_point = ((share * 100.0 + 1e-9).floor() + 1.0) / 100.0;
        }
    }
    if points && curve.last().is_some_and(|p| p[0] < 1.0 - 1e-12) {
        curve.push([1.0, correct / total]);
    }
    (share_at.unwrap_or(1.0), area, curve)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_files_are_read_and_faults_located() {
        let text = concat!(
            "{\"id\":\"q1\",\"prompt\":\"a\",\"category\":\"law\",\"correct\":{\"weak\":false,\"strong\":true}}\n",
            "\n",
            "{\"question\":\"b\",\"scores\":{\"strong\":0.5,\"weak\":1}}\n"
        );
        let data = parse_outcomes(text).unwrap();
        assert_eq!(data.models, ["strong", "weak"]);
        assert_eq!(data.rows[0].scores, [1.0, 0.0]);
        assert_eq!(data.rows[0].category.as_deref(), Some("law"));
        assert_eq!(data.rows[1].scores, [0.5, 1.0]);
        assert_eq!(data.accuracy(), [0.75, 0.5]);
        for (bad, line, what) in [
            ("{\"correct\":{\"a\":true,\"b\":false}}", 1, "no prompt"),
            ("{\"prompt\":\"x\"}", 1, "no `correct`"),
            (
                "{\"prompt\":\"x\",\"correct\":{\"a\":true}}",
                1,
                "at least two",
            ),
            (
                "{\"prompt\":\"x\",\"correct\":{\"a\":true,\"b\":1}}\n{\"prompt\":\"y\",\"correct\":{\"a\":true,\"c\":1}}",
                2,
                "same models",
            ),
            (
                "{\"prompt\":\"x\",\"correct\":{\"a\":2,\"b\":1}}",
                1,
                "score in [0, 1]",
            ),
            ("", 1, "no rows"),
            ("{", 1, "not JSON"),
        ] {
            let (at, e) = parse_outcomes(bad).unwrap_err();
            assert_eq!(at, line, "{bad}: {e}");
            assert!(e.contains(what), "{bad}: {e}");
        }
    }

    #[test]
    fn ridge_recovers_a_linear_rule() {
        // y0 = 0.5 + 0.3·x0 − 0.2·x1, y1 = 1 − y0, exactly.
        let mut state = 1u64;
        let mut next = || {
            state = mix64(state + 1);
            (state % 2000) as f32 / 1000.0 - 1.0
        };
        let xs: Vec<Vec<f32>> = (0..400).map(|_| vec![next(), next(), next()]).collect();
        let ys: Vec<Vec<f64>> = xs
            .iter()
            .map(|x| {
                let y = 0.5 + 0.3 * f64::from(x[0]) - 0.2 * f64::from(x[1]);
                vec![y, 1.0 - y]
            })
            .collect();
        let xr: Vec<&[f32]> = xs.iter().map(Vec::as_slice).collect();
        let yr: Vec<&[f64]> = ys.iter().map(Vec::as_slice).collect();
        let ridge = Ridge::fit(&xr, &yr, 1e-9).unwrap();
        let p = ridge.predict(&[0.5, 0.5, 0.9]);
        assert!((p[0] - 0.55).abs() < 1e-3, "{p:?}");
        assert!((p[1] - 0.45).abs() < 1e-3, "{p:?}");
        // A heavy penalty pulls the weights to zero: the prediction is the mean.
        let flat = Ridge::fit(&xr, &yr, 1e6).unwrap();
        let mean = ys.iter().map(|y| y[0]).sum::<f64>() / 400.0;
        assert!((flat.predict(&[0.5, 0.5, 0.9])[0] - mean).abs() < 1e-2);
        assert!(Ridge::fit(&[], &[], 1.0).is_err());
    }

    #[test]
    fn a_perceptron_learns_a_nonlinear_outcome() {
        // Model 0 is right exactly when the two inputs have the same sign (XOR-like):
        // no linear model can tell; a small perceptron can.
        let mut state = 7u64;
        let mut next = || {
            state = mix64(state.wrapping_add(0x9E37_79B9_7F4A_7C15));
            (state >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
        };
        let xs: Vec<Vec<f32>> = (0..800).map(|_| vec![next(), next()]).collect();
        let ys: Vec<Vec<f64>> = xs
            .iter()
            .map(|x| vec![if x[0] * x[1] > 0.0 { 1.0 } else { 0.0 }, 0.5])
            .collect();
        let xr: Vec<&[f32]> = xs.iter().map(Vec::as_slice).collect();
        let yr: Vec<&[f64]> = ys.iter().map(Vec::as_slice).collect();
        let options = MlpOptions {
            hidden: 16,
            steps: 3000,
            rate: 0.01,
            l2: 0.0,
            seed: 1,
        };
        let net = Mlp::fit(&xr, &yr, options).unwrap();
        let right = xs
            .iter()
            .zip(&ys)
            .filter(|(x, y)| (net.predict(x)[0] > 0.5) == (y[0] > 0.5))
            .count();
        assert!(right > 720, "{right} of 800");
        let p = net.predict(&[0.5, 0.5]);
        assert!(
            p[1] > 0.3 && p[1] < 0.7,
            "a constant outcome is learned as such: {p:?}"
        );
        assert_eq!(
            net,
            Mlp::fit(&xr, &yr, options).unwrap(),
            "deterministic by seed"
        );
        let zero = MlpOptions {
            steps: 0,
            ..options
        };
        assert!(Mlp::fit(&xr, &yr, zero).is_err());
    }

    #[test]
    fn the_shipped_router_loads_and_refuses_other_vectors() {
        let r = read_router(None).unwrap();
        assert_eq!(r.learner, "mlp+text");
        assert_eq!(r.mlps.len(), 5);
        assert_eq!(r.thresholds.len(), 101);
        assert!(
            r.thresholds.windows(2).all(|w| w[0] >= w[1]),
            "thresholds fall with the share"
        );
        r.check_embedder(&r.embedding, r.dimension, &r.precision, r.max_tokens)
            .unwrap();
        let e = r
            .check_embedder(&r.embedding, r.dimension, "f32", r.max_tokens)
            .unwrap_err();
        assert!(e.contains("retrain"), "{e}");
        assert!(r.check_embedder("other-model", 768, "int8", 128).is_err());
        assert!(r.gain(&vec![0.1; r.dimension], "What is 2 + 2?").is_ok());
        assert!(r.gain(&[0.1; 3], "x").unwrap_err().contains("dimensions"));
        let mut broken = r.clone();
        broken.mlps[0].w1[0].pop();
        assert!(broken.validate().is_err());
        let mut broken = r.clone();
        broken.mlps.clear();
        assert!(broken.validate().is_err(), "an mlp learner without nets");
        broken = r;
        broken.learner = "forest".into();
        assert!(broken.validate().unwrap_err().contains("forest"));
    }

    #[test]
    fn nearest_finds_the_most_similar() {
        let train: Vec<Vec<f32>> = vec![
            normalized(&[1.0, 0.0]),
            normalized(&[0.0, 1.0]),
            normalized(&[1.0, 1.0]),
        ];
        let refs: Vec<&[f32]> = train.iter().map(Vec::as_slice).collect();
        assert_eq!(nearest(&normalized(&[1.0, 0.2]), &refs, 2), [0, 2]);
        assert_eq!(nearest(&[0.0, 1.0], &refs, 10).len(), 3);
    }

    #[test]
    fn the_oracle_the_reverse_and_random_orders_score_as_they_should() {
        // 10 rows: strong right on 8, weak on 5; strong helps on rows 0..4, hurts on 9.
        let strong = [1., 1., 1., 1., 1., 1., 1., 1., 0., 0.];
        let weak = [0., 0., 0., 0., 1., 1., 1., 1., 1., 0.];
        let oracle: Vec<f64> = strong.iter().zip(&weak).map(|(s, w)| s - w).collect();
        let best = curve(&oracle, &strong, &weak, 200, 1);
        // 0.95 × 0.8 = 0.76: weak (0.5) + 3 gains = 0.8 at 30%; 0.7 at 20%.
        assert!((best.strong_share_at_95 - 0.3).abs() < 1e-9, "{best:?}");
        // Sending the row where strong hurts first makes things worse before better.
        let reverse: Vec<f64> = oracle.iter().map(|g| -g).collect();
        let worst = curve(&reverse, &strong, &weak, 0, 1);
        assert!(
            worst.apgr < 0.5 && best.apgr > 1.0,
            "{} {}",
            worst.apgr,
            best.apgr
        );
        assert_eq!(worst.strong_share_at_95, 1.0);
        assert!(best.strong_share_at_95_ci[0] <= best.strong_share_at_95_ci[1]);
        assert_eq!(best.curve.first(), Some(&[0.0, 0.5]));
        assert_eq!(best.curve.last().map(|p| p[1]), Some(0.8));
        // Equal gains everywhere: a random order, APGR near 1/2 on many rows.
        let n = 20_000;
        let s: Vec<f64> = (0..n).map(|i| f64::from(u8::from(i % 5 != 0))).collect();
        let w: Vec<f64> = (0..n).map(|i| f64::from(u8::from(i % 3 == 0))).collect();
        let flat = curve(&vec![0.0; n], &s, &w, 0, 9);
        assert!((flat.apgr - 0.5).abs() < 0.02, "{}", flat.apgr);
    }
}
