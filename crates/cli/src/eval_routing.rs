//! `switchyard eval routing`: does routing pay on this data? A labelled outcome file
//! (prompts with, per model, whether it answered correctly) is routed between its
//! weak and strong model by several routers, each scored by its cost–quality curve:
//! the share of prompts sent to the strong model against the accuracy reached.
//!
//! The learners are trained and scored by k-fold cross-validation split by question
//! (every row is scored by a router that never saw it): `ridge` (per-model linear
//! probability on the embedding) at a few penalties, `knn` (mean outcome of the k
//! most similar prompts) at a few k, and their ensemble. Beside them, on the same
//! rows: random, the category and subject priors (mean outcome per group in the
//! training folds, when the file has those columns) and the oracle. A router file
//! (`--router`) is scored as it is, on every row.

use crate::train::{ModelArgs, embed_all};
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use switchyard_engine::quality::{Skill, judge};
use switchyard_fleet::plan::svg::{Mark, Series, chart};
use switchyard_workload::outcome_router::{
    CurveReport, Mlp, MlpOptions, OutcomeData, Ridge, RouterFile, curve, fold, mean_prediction,
    nearest, normalized, read_outcomes, router_input, text_features,
};
use switchyard_workload::switchyard_embed::Embedder;

/// Arguments of `eval routing`.
#[derive(Args)]
pub struct RoutingArgs {
    /// The labelled outcome file: JSON lines with a prompt (`prompt`, `text` or
    /// `question`) and `correct` (model name → true/false or a score in [0, 1]);
    /// optional `id`, `category`, `subject`.
    #[arg(long)]
    pub data: PathBuf,
    /// A router to score as it is: a router file (`switchyard train router`), or a
    /// policy (`.yaml`, `.yml`, `.sy`), each row's prompt routed through it as
    /// `switchyard route` would (one point: the share it sends to the strong model and
    /// the accuracy of the models it picks).
    #[arg(long)]
    pub router: Option<PathBuf>,
    /// The strong model (default: the most accurate in the file).
    #[arg(long)]
    pub strong: Option<String>,
    /// The weak model (default: the least accurate).
    #[arg(long)]
    pub weak: Option<String>,
    /// Cross-validation folds.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Bootstrap resamples for the 95% intervals.
    #[arg(long, default_value_t = 1000)]
    pub resamples: usize,
    /// Seeds the bootstrap and the order of ties.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The embedding model.
    #[command(flatten)]
    pub embedding: ModelArgs,
    /// Where embeddings are kept between runs.
    #[arg(long, default_value = ".cache/embeddings")]
    pub cache_dir: PathBuf,
    /// Writes the curves, the figures and per-row scores as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Writes the curves as an SVG chart here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Confidence cascades to score beside the routers, one per κ given: the weak
    /// model answers every prompt with the calibrated confidence of a simulated engine
    /// (`switchyard engine --answers`, Beta(κμ, κ(1−μ)), μ its accuracy here), and the
    /// least confident answers go on to the strong model. `--cascade` with no value
    /// for none.
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "2,4,8")]
    pub cascade: Vec<f64>,
}

/// One router's result.
#[derive(Debug, Serialize)]
pub struct RouterResult {
    /// Its name.
    pub name: String,
    /// How it was scored (`5-fold cross-validation`, `in-sample`, …).
    pub scored: String,
    /// Its curve and figures.
    #[serde(flatten)]
    pub report: CurveReport,
}

/// The JSON report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The router under evaluation: the `--router` file when given, else the learner
    /// `train router` ships, cross-validated.
    pub router: String,
    /// Its strong share at 95% of the strong model's accuracy.
    pub strong_share_at_95: f64,
    /// Its APGR.
    pub apgr: f64,
    /// Rows scored.
    pub rows: usize,
    /// The strong and weak models and their accuracies.
    pub strong: (String, f64),
    /// The weak model and its accuracy.
    pub weak: (String, f64),
    /// Every router, the one under evaluation first.
    pub routers: Vec<RouterResult>,
    /// Per row: its id and the evaluated router's gain.
    pub scores: Vec<(String, f64)>,
}

/// How the confidence cascades' names start.
const CASCADE: &str = "cascade on the weak model's confidence ";

/// The learner `train router` ships and its parameters.
pub const SHIPPED: Learner = Learner::Mlp {
    hidden: 32,
    steps: 528,
    l2: 0.001,
    seeds: 5,
};

/// The learners cross-validated.
pub const LEARNERS: [Learner; 8] = [
    Learner::Ridge { l2: 0.001 },
    Learner::Ridge { l2: 0.01 },
    Learner::RidgeText { l2: 0.01 },
    Learner::Knn { k: 50 },
    Learner::Knn { k: 100 },
    Learner::KnnText { k: 50, weight: 0.5 },
    Learner::KnnText {
        k: 100,
        weight: 1.0,
    },
    SHIPPED,
];

/// The ensembles scored (the mean of their learners' predicted gains).
pub const ENSEMBLES: [&[Learner]; 2] = [
    &[Learner::Knn { k: 50 }, Learner::RidgeText { l2: 0.01 }],
    &[
        Learner::Knn { k: 50 },
        Learner::Knn { k: 100 },
        Learner::RidgeText { l2: 0.01 },
        Learner::Ridge { l2: 0.01 },
    ],
];

/// A learner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Learner {
    /// Ridge regression with this penalty.
    Ridge {
        /// The penalty.
        l2: f64,
    },
    /// k nearest neighbours.
    Knn {
        /// How many.
        k: usize,
    },
    /// k nearest neighbours on the embedding and weighted surface features.
    KnnText {
        /// How many.
        k: usize,
        /// The features' weight.
        weight: f32,
    },
    /// Ridge regression on the embedding and surface features of the text.
    RidgeText {
        /// The penalty.
        l2: f64,
    },
    /// One-hidden-layer perceptrons on the embedding and surface features, one per
    /// seed, their predictions averaged.
    Mlp {
        /// Hidden units.
        hidden: usize,
        /// Adam steps (batches of 64).
        steps: usize,
        /// L2 penalty.
        l2: f32,
        /// Nets averaged (each from its own initial weights and row order).
        seeds: u64,
    },
}

impl Learner {
    /// Its name in reports.
    pub fn name(&self) -> String {
        match self {
            Learner::Ridge { l2 } => format!("ridge (l2 {l2})"),
            Learner::Knn { k } => format!("knn (k {k})"),
            Learner::RidgeText { l2 } => format!("ridge + text features (l2 {l2})"),
            Learner::KnnText { k, weight } => {
                format!("knn + text features (k {k}, weight {weight})")
            }
            Learner::Mlp {
                hidden,
                steps,
                l2,
                seeds,
            } => format!(
                "mlp + text features ({hidden} hidden, {steps} steps, l2 {l2}, {seeds} seeds)"
            ),
        }
    }
}

/// Embeds every prompt (through the cache); the embedder gives unit vectors.
pub fn vectors(data: &OutcomeData, embedder: &Embedder, cache_dir: &Path) -> Result<Vec<Vec<f32>>> {
    let texts: Vec<&str> = data.rows.iter().map(|r| r.text.as_str()).collect();
    embed_all(embedder, cache_dir, &texts)
}

/// Out-of-fold predictions of a learner: per row, per model.
pub fn cross_validate(
    learner: Learner,
    data: &OutcomeData,
    vectors: &[Vec<f32>],
    folds: usize,
) -> Result<Vec<Vec<f64>>> {
    let n = data.rows.len();
    let mut out = vec![Vec::new(); n];
    let fold_of: Vec<usize> = data.rows.iter().map(|r| fold(&r.id, folds)).collect();
    for f in 0..folds {
        let train: Vec<usize> = (0..n).filter(|&i| fold_of[i] != f).collect();
        let xs: Vec<&[f32]> = train.iter().map(|&i| vectors[i].as_slice()).collect();
        let ys: Vec<&[f64]> = train
            .iter()
            .map(|&i| data.rows[i].scores.as_slice())
            .collect();
        match learner {
            Learner::Ridge { l2 } => {
                let ridge = Ridge::fit(&xs, &ys, l2).map_err(|e| anyhow!("{e}"))?;
                for i in (0..n).filter(|&i| fold_of[i] == f) {
                    out[i] = ridge.predict(&vectors[i]);
                }
            }
            Learner::Knn { k } => {
                for i in (0..n).filter(|&i| fold_of[i] == f) {
                    out[i] = mean_of(&nearest(&vectors[i], &xs, k), &ys);
                }
            }
            Learner::KnnText { k, weight } => {
                let with = |i: usize| -> Vec<f32> {
                    let mut v = vectors[i].clone();
                    v.extend(text_features(&data.rows[i].text).iter().map(|f| f * weight));
                    normalized(&v)
                };
                let rows: Vec<Vec<f32>> = train.iter().map(|&i| with(i)).collect();
                let xs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
                for i in (0..n).filter(|&i| fold_of[i] == f) {
                    out[i] = mean_of(&nearest(&with(i), &xs, k), &ys);
                }
            }
            Learner::Mlp {
                hidden,
                steps,
                l2,
                seeds,
            } => {
                let with = |i: usize| router_input(&vectors[i], &data.rows[i].text, true);
                let rows: Vec<Vec<f32>> = train.iter().map(|&i| with(i)).collect();
                let xs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
                let nets = (0..seeds)
                    .map(|seed| {
                        let options = MlpOptions {
                            hidden,
                            steps,
                            rate: 0.001,
                            l2,
                            seed: seed * 1000 + f as u64,
                        };
                        Mlp::fit(&xs, &ys, options).map_err(|e| anyhow!("{e}"))
                    })
                    .collect::<Result<Vec<Mlp>>>()?;
                for i in (0..n).filter(|&i| fold_of[i] == f) {
                    out[i] = mean_prediction(&nets, &with(i));
                }
            }
            Learner::RidgeText { l2 } => {
                let with = |i: usize| router_input(&vectors[i], &data.rows[i].text, true);
                let rows: Vec<Vec<f32>> = train.iter().map(|&i| with(i)).collect();
                let xs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
                let ridge = Ridge::fit(&xs, &ys, l2).map_err(|e| anyhow!("{e}"))?;
                for i in (0..n).filter(|&i| fold_of[i] == f) {
                    out[i] = ridge.predict(&with(i));
                }
            }
        }
    }
    Ok(out)
}

fn mean_of(indexes: &[usize], ys: &[&[f64]]) -> Vec<f64> {
    let m = ys.first().map_or(0, |y| y.len());
    let mut sum = vec![0.0; m];
    for &i in indexes {
        for (s, y) in sum.iter_mut().zip(ys[i]) {
            *s += y;
        }
    }
    let n = indexes.len().max(1) as f64;
    sum.into_iter().map(|s| s / n).collect()
}

/// Out-of-fold per-group means (a prior by category or subject).
fn group_prior(
    data: &OutcomeData,
    group: impl Fn(usize) -> Option<String>,
    folds: usize,
) -> Option<Vec<Vec<f64>>> {
    let n = data.rows.len();
    let m = data.models.len();
    if (0..n).any(|i| group(i).is_none()) {
        return None;
    }
    let fold_of: Vec<usize> = data.rows.iter().map(|r| fold(&r.id, folds)).collect();
    let mut out = vec![Vec::new(); n];
    for f in 0..folds {
        let mut sums: HashMap<String, (Vec<f64>, f64)> = HashMap::new();
        let mut all = (vec![0.0; m], 0.0);
        for i in (0..n).filter(|&i| fold_of[i] != f) {
            let entry = sums
                .entry(group(i).unwrap_or_default())
                .or_insert_with(|| (vec![0.0; m], 0.0));
            for (k, s) in data.rows[i].scores.iter().enumerate() {
                entry.0[k] += s;
                all.0[k] += s;
            }
            entry.1 += 1.0;
            all.1 += 1.0;
        }
        for i in (0..n).filter(|&i| fold_of[i] == f) {
            let (sum, count) = sums.get(&group(i).unwrap_or_default()).unwrap_or(&all);
            out[i] = sum.iter().map(|s| s / count.max(1.0)).collect();
        }
    }
    Some(out)
}

/// Runs `eval routing`.
pub fn run(args: &RoutingArgs) -> Result<()> {
    if args.folds < 2 {
        bail!("--folds {}: at least 2", args.folds);
    }
    let data = read_outcomes(&args.data).map_err(|e| anyhow!("{e}"))?;
    let (strong, weak) = pick_models(&data, args.strong.as_deref(), args.weak.as_deref())?;
    let accuracy = data.accuracy();
    let s: Vec<f64> = data.rows.iter().map(|r| r.scores[strong]).collect();
    let w: Vec<f64> = data.rows.iter().map(|r| r.scores[weak]).collect();
    let gain = |p: &[Vec<f64>]| -> Vec<f64> { p.iter().map(|p| p[strong] - p[weak]).collect() };
    let score = |name: String, scored: &str, g: &[f64]| RouterResult {
        name,
        scored: scored.to_owned(),
        report: curve(g, &s, &w, args.resamples, args.seed),
    };
    let cv = format!("{}-fold cross-validation", args.folds);
    let vectors = vectors(&data, &args.embedding.load()?, &args.cache_dir)?;
    let mut results = Vec::new();
    // The router under evaluation: its index in `results` and its gains.
    let mut evaluated: Option<(usize, Vec<f64>)> = None;
    let policy_point = match &args.router {
        Some(path) if is_policy(path) => Some(policy_router(path, &data, (strong, weak))?),
        _ => None,
    };
    if let Some(path) = args.router.as_ref().filter(|_| policy_point.is_none()) {
        let file = read_router(path)?;
        let gains = vectors
            .iter()
            .zip(&data.rows)
            .map(|(v, row)| router_gain(&file, &data, (v, &row.text), strong, weak))
            .collect::<Result<Vec<f64>>>()?;
        let name = format!("router file {}", path.display());
        results.push(score(
            name,
            "as trained (in-sample if trained on this file)",
            &gains,
        ));
        evaluated = Some((0, gains));
    }
    let mut predictions: Vec<(Learner, Vec<Vec<f64>>)> = Vec::new();
    for learner in LEARNERS {
        eprintln!("cross-validating {}", learner.name());
        let p = cross_validate(learner, &data, &vectors, args.folds)?;
        let g = gain(&p);
        if learner == SHIPPED && evaluated.is_none() {
            results.push(score(format!("{} (shipped)", learner.name()), &cv, &g));
            evaluated = Some((results.len() - 1, g));
        } else {
            results.push(score(learner.name(), &cv, &g));
        }
        predictions.push((learner, p));
    }
    let pick = |l: Learner| predictions.iter().find(|(x, _)| *x == l).map(|(_, p)| p);
    for parts in ENSEMBLES {
        let gains: Vec<Vec<f64>> = parts
            .iter()
            .filter_map(|l| pick(*l))
            .map(|p| gain(p))
            .collect();
        let mean: Vec<f64> = (0..data.rows.len())
            .map(|i| gains.iter().map(|g| g[i]).sum::<f64>() / gains.len().max(1) as f64)
            .collect();
        let name = parts
            .iter()
            .map(Learner::name)
            .collect::<Vec<_>>()
            .join(" + ");
        results.push(score(format!("ensemble: {name}"), &cv, &mean));
    }
    let n = data.rows.len();
    results.push(score("random".into(), "a random order", &vec![0.0; n]));
    if let Some(p) = group_prior(&data, |i| data.rows[i].category.clone(), args.folds) {
        results.push(score("category prior".into(), &cv, &gain(&p)));
    }
    if let Some(p) = group_prior(&data, |i| data.rows[i].subject.clone(), args.folds) {
        results.push(score(
            "subject prior (labels a live router never has)".into(),
            &cv,
            &gain(&p),
        ));
    }
    for &kappa in &args.cascade {
        let skill = Skill {
            accuracy: accuracy[weak].clamp(0.01, 0.99),
            concentration: kappa,
        };
        skill
            .validate()
            .map_err(|e| anyhow!("--cascade {kappa}: {e}"))?;
        let confidence = cascade_confidence(&data, weak, skill);
        let escalate: Vec<f64> = confidence.iter().map(|c| -c).collect();
        let right: Vec<bool> = w.iter().map(|x| *x >= 0.5).collect();
        results.push(score(
            format!(
                "{CASCADE}(κ {kappa}, AUROC {:.3})",
                auroc(&confidence, &right)
            ),
            "simulated calibrated logprobs; the weak model also answers every escalated prompt",
            &escalate,
        ));
    }
    let oracle: Vec<f64> = s.iter().zip(&w).map(|(a, b)| a - b).collect();
    results.push(score("oracle".into(), "knows the answers", &oracle));
    if let (Some(path), Some((report, gains))) = (&args.router, policy_point) {
        results.push(RouterResult {
            name: format!("policy {}", path.display()),
            scored: "each prompt routed through the policy (one point)".to_owned(),
            report,
        });
        evaluated = Some((results.len() - 1, gains));
    }
    let (index, gains) = evaluated.unwrap_or((results.len() - 1, oracle));
    let first = results.remove(index);
    results.insert(0, first);
    let name = results[0].name.clone();
    print_table(&data, (strong, weak), &accuracy, &results);
    let report = Report {
        router: name,
        strong_share_at_95: results[0].report.strong_share_at_95,
        apgr: results[0].report.apgr,
        rows: n,
        strong: (data.models[strong].clone(), accuracy[strong]),
        weak: (data.models[weak].clone(), accuracy[weak]),
        scores: data.rows.iter().map(|r| r.id.clone()).zip(gains).collect(),
        routers: results,
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        std::fs::write(path, plot(&report))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Whether a `--router` path names a policy rather than a router file.
fn is_policy(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "sy")
    )
}

/// Routes every row's prompt through a policy (the dry run of `POST /v1/route`): the
/// point it reaches (as a one-point curve: its strong share and accuracy; its strong
/// share at 95% is that share when the accuracy reaches 95% of the strong model's,
/// else 1; its APGR the share of the weak–strong gap it recovers), and per row 1 when
/// it picked the strong model, else 0. A prompt the policy refuses, or sends to a
/// model the file has no outcomes for, is an error naming the row.
fn policy_router(
    path: &Path,
    data: &OutcomeData,
    (strong, weak): (usize, usize),
) -> Result<(CurveReport, Vec<f64>)> {
    let policy = crate::compile(path)?;
    let runtime = switchyard_gateway::Runtime::new(policy)?;
    let mut correct = 0.0;
    let mut picks = Vec::with_capacity(data.rows.len());
    for (i, row) in data.rows.iter().enumerate() {
        let (headers, body) = switchyard_gateway::dry_run::prompt_request("auto", &row.text, None);
        let x = switchyard_gateway::dry_run::dry_exchange(&runtime, &headers, body);
        if let Some(refusal) = &x.refusal {
            bail!(
                "row {} (`{}`): the policy refuses it in {}: {}",
                i + 1,
                row.id,
                refusal.phase.name(),
                refusal.error.message
            );
        }
        let model = x.model_name(&runtime);
        let column = data.model(model).ok_or_else(|| {
            anyhow!(
                "row {} (`{}`): the policy picks `{model}`, and {} has no outcomes for it (it has {})",
                i + 1,
                row.id,
                path.display(),
                data.models.join(", ")
            )
        })?;
        correct += row.scores[column];
        picks.push(if column == strong { 1.0 } else { 0.0 });
    }
    let n = data.rows.len().max(1) as f64;
    let accuracy = correct / n;
    let share = picks.iter().sum::<f64>() / n;
    let acc = data.accuracy();
    let gap = acc[strong] - acc[weak];
    let reaches = accuracy >= 0.95 * acc[strong];
    let pgr = if gap.abs() > f64::EPSILON {
        (accuracy - acc[weak]) / gap
    } else {
        0.0
    };
    let report = CurveReport {
        strong_share_at_95: if reaches { share } else { 1.0 },
        strong_share_at_95_ci: [f64::NAN; 2],
        apgr: pgr,
        apgr_ci: [f64::NAN; 2],
        curve: vec![[share, accuracy]],
    };
    Ok((report, picks))
}

/// The weak model's confidence per row, as a simulated engine with `skill` and the
/// file's answers for that model gives it (the same function the engine serves).
pub fn cascade_confidence(data: &OutcomeData, weak: usize, skill: Skill) -> Vec<f64> {
    data.rows
        .iter()
        .map(|row| {
            let known = row.scores[weak] >= 0.5;
            judge(switchyard_engine::answer_key(&row.text), skill, Some(known)).confidence
        })
        .collect()
}

/// The probability that a right answer's confidence is above a wrong one's (ties
/// count half).
pub fn auroc(confidence: &[f64], right: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..confidence.len()).collect();
    order.sort_by(|&a, &b| confidence[a].total_cmp(&confidence[b]));
    // Sum of the right answers' ranks (1-based, ties averaged).
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && confidence[order[j + 1]] == confidence[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += order[i..=j].iter().filter(|&&k| right[k]).count() as f64 * rank;
        i = j + 1;
    }
    let positives = right.iter().filter(|r| **r).count() as f64;
    let negatives = right.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return 0.5;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// An answer key for a simulated engine: whether `column`'s model answered each
/// prompt of an outcome file right (a score of ½ or more), by [`answer_key`].
///
/// [`answer_key`]: switchyard_engine::answer_key
pub fn answer_key(path: &Path, column: &str) -> Result<HashMap<u64, bool>> {
    let data = read_outcomes(path).map_err(|e| anyhow!("--answers: {e}"))?;
    let model = data.model(column).ok_or_else(|| {
        anyhow!(
            "--answers {}: no model `{column}` in it (it has {}); name one with --answers-model",
            path.display(),
            data.models.join(", ")
        )
    })?;
    Ok(data
        .rows
        .iter()
        .map(|r| {
            (
                switchyard_engine::answer_key(&r.text),
                r.scores[model] >= 0.5,
            )
        })
        .collect())
}

/// The gain a router file predicts for a row.
fn router_gain(
    file: &RouterFile,
    data: &OutcomeData,
    (vector, text): (&[f32], &str),
    strong: usize,
    weak: usize,
) -> Result<f64> {
    let p = file.predict(vector, text).map_err(|e| anyhow!("{e}"))?;
    let at = |i: usize| {
        let name = &data.models[i];
        file.models
            .iter()
            .position(|m| m == name)
            .map(|j| p[j])
            .ok_or_else(|| {
                anyhow!(
                    "the router file has no model `{name}` (it has {:?})",
                    file.models
                )
            })
    };
    Ok(at(strong)? - at(weak)?)
}

/// Reads a router file.
pub fn read_router(path: &Path) -> Result<RouterFile> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let file: RouterFile = serde_json::from_str(&text)
        .map_err(|e| anyhow!("{}: not a router file: {e}", path.display()))?;
    file.validate()
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(file)
}

/// The strong and weak models: named, else the most and least accurate.
pub fn pick_models(
    data: &OutcomeData,
    strong: Option<&str>,
    weak: Option<&str>,
) -> Result<(usize, usize)> {
    let accuracy = data.accuracy();
    let find = |name: &str, flag: &str| {
        data.model(name).ok_or_else(|| {
            anyhow!(
                "{flag} {name}: the file has no such model (it has {})",
                data.models.join(", ")
            )
        })
    };
    let by_accuracy = |best: bool| {
        (0..data.models.len())
            .max_by(|&a, &b| {
                let o = accuracy[a].total_cmp(&accuracy[b]);
                if best { o } else { o.reverse() }
            })
            .unwrap_or(0)
    };
    let strong = strong.map_or_else(|| Ok(by_accuracy(true)), |n| find(n, "--strong"))?;
    let weak = weak.map_or_else(|| Ok(by_accuracy(false)), |n| find(n, "--weak"))?;
    if strong == weak {
        bail!(
            "the strong and weak model are both `{}`",
            data.models[strong]
        );
    }
    Ok((strong, weak))
}

fn print_table(
    data: &OutcomeData,
    (strong, weak): (usize, usize),
    accuracy: &[f64],
    results: &[RouterResult],
) {
    println!(
        "{} rows; strong `{}` {:.1}% correct, weak `{}` {:.1}%; 95% of strong = {:.1}%",
        data.rows.len(),
        data.models[strong],
        accuracy[strong] * 100.0,
        data.models[weak],
        accuracy[weak] * 100.0,
        accuracy[strong] * 95.0
    );
    println!(
        "\n| router | scored by | strong share at 95% [95% CI] | APGR [95% CI] |\n|---|---|---|---|"
    );
    for r in results {
        let c = &r.report;
        if let [[share, acc]] = c.curve[..] {
            // A policy: one point.
            println!(
                "| {} | {} | sends {:.1}% to the strong model at {:.1}% accuracy{} | PGR {:.3} at its point |",
                r.name,
                r.scored,
                share * 100.0,
                acc * 100.0,
                if acc >= 0.95 * accuracy[strong] {
                    " (reaches 95%)"
                } else {
                    " (below 95%)"
                },
                c.apgr
            );
            continue;
        }
        println!(
            "| {} | {} | {:.1}% [{:.1}, {:.1}] | {:.3} [{:.3}, {:.3}] |",
            r.name,
            r.scored,
            c.strong_share_at_95 * 100.0,
            c.strong_share_at_95_ci[0] * 100.0,
            c.strong_share_at_95_ci[1] * 100.0,
            c.apgr,
            c.apgr_ci[0],
            c.apgr_ci[1]
        );
    }
}

fn plot(report: &Report) -> String {
    let series: Vec<Series> = report
        .routers
        .iter()
        .filter(|r| {
            r.name.contains("shipped")
                || r.name.starts_with("router file")
                || r.name.starts_with("knn (k 50)")
                || r.name.starts_with("ensemble: knn (k 50) + ridge + text")
                || r.name.contains("prior")
                || r.name == "random"
                || r.name == "oracle"
                || r.name.starts_with(CASCADE)
                || r.name.starts_with("policy ")
        })
        .map(|r| Series {
            name: r
                .name
                .replace(CASCADE, "cascade ")
                .chars()
                .take(28)
                .collect(),
            points: r
                .report
                .curve
                .iter()
                .map(|p| (p[0] * 100.0, p[1] * 100.0))
                .collect(),
            mark: if r.report.curve.len() == 1 {
                Mark::Dots
            } else {
                Mark::Line
            },
        })
        .collect();
    let mut title = String::new();
    let _ = write!(
        title,
        "Accuracy vs share sent to {} ({} rows)",
        report.strong.0, report.rows
    );
    chart(
        &title,
        "strong-model share (%)",
        "accuracy (%)",
        &series,
        false,
    )
}
