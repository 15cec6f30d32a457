//! `switchyard train`: fit learned heads from labelled data.

use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use switchyard_workload::dataset::read_labelled;
use switchyard_workload::embedding::ExemplarCache;
use switchyard_workload::head::{LinearHead, TrainOptions, holdout};
use switchyard_workload::metrics::Confusion;
use switchyard_workload::switchyard_embed::{
    DEFAULT_MAX_TOKENS, Embedder, EmbedderOptions, Precision,
};

/// What to train.
#[derive(Subcommand)]
pub enum TrainCommand {
    /// Fit the domain head: a linear classifier over embeddings, from labelled JSONL.
    Domain(DomainArgs),
    /// Fit a learned router from an outcome file (prompts with, per model, whether it
    /// answered correctly), for the `learned` selection algorithm.
    Router(RouterArgs),
}

/// Arguments of `train router`.
#[derive(Args)]
pub struct RouterArgs {
    /// The outcome file (see `eval routing --data`).
    #[arg(long)]
    pub data: PathBuf,
    /// The strong model (default: the most accurate in the file).
    #[arg(long)]
    pub strong: Option<String>,
    /// The weak model (default: the least accurate).
    #[arg(long)]
    pub weak: Option<String>,
    /// The learner: `mlp+text` (perceptrons on the embedding and surface features,
    /// averaged), `ridge+text` (ridge regression on the same) or `ridge` (on the
    /// embedding alone).
    #[arg(long, default_value = "mlp+text")]
    pub learner: String,
    /// The L2 penalty (default 0.001 for `mlp+text`, 0.01 for the ridge learners).
    #[arg(long)]
    pub l2: Option<f64>,
    /// `mlp+text`: hidden units per perceptron.
    #[arg(long, default_value_t = 32)]
    pub hidden: usize,
    /// `mlp+text`: Adam steps (batches of 64 rows) per perceptron.
    #[arg(long, default_value_t = 528)]
    pub steps: usize,
    /// `mlp+text`: perceptrons averaged, each from its own seed.
    #[arg(long, default_value_t = 5)]
    pub seeds: u64,
    /// Folds of the cross-validation whose figures go in the provenance.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// The embedding model.
    #[command(flatten)]
    pub embedding: ModelArgs,
    /// Where vectors of the data are cached.
    #[arg(long, default_value = ".cache/embeddings")]
    pub cache_dir: PathBuf,
    /// The router file to write; its provenance goes beside it (`.md`).
    #[arg(long, short, default_value = "router.json")]
    pub out: PathBuf,
}

/// Arguments of `train domain`.
#[derive(Args)]
pub struct DomainArgs {
    /// Labelled JSONL: one object per line with a text (`text`, `prompt` or
    /// `question`) and a label (`label`, `category` or `domain`).
    #[arg(long)]
    pub data: PathBuf,
    /// The text field, when not one of the defaults.
    #[arg(long)]
    pub text_field: Option<String>,
    /// The label field, when not one of the defaults.
    #[arg(long)]
    pub label_field: Option<String>,
    /// The embedding model.
    #[command(flatten)]
    pub embedding: ModelArgs,
    /// Where vectors of the data are cached.
    #[arg(long, default_value = ".cache/embeddings")]
    pub cache_dir: PathBuf,
    /// The head to write; its provenance goes beside it (`.md`).
    #[arg(long, short, default_value = "domain-head.json")]
    pub out: PathBuf,
    /// Percent of rows held out of training (chosen by a hash of the text) and scored.
    #[arg(long, default_value_t = 20)]
    pub holdout: u32,
    /// Passes over the training rows.
    #[arg(long, default_value_t = TrainOptions::default().epochs)]
    pub epochs: usize,
    /// L2 penalty on the weights.
    #[arg(long, default_value_t = TrainOptions::default().l2)]
    pub l2: f32,
}

/// The embedding model on the command line, shared by `train` and `eval`.
#[derive(Args)]
pub struct ModelArgs {
    /// The embedding model's folder.
    #[arg(long, default_value = ".cache/models/all-MiniLM-L6-v2")]
    pub model: PathBuf,
    /// Most tokens embedded per text.
    #[arg(long, default_value_t = DEFAULT_MAX_TOKENS)]
    pub max_tokens: usize,
    /// The arithmetic of the model's products: int8 or f32.
    #[arg(long, default_value = "int8")]
    pub precision: Precision,
}

impl ModelArgs {
    /// Loads the model.
    pub fn load(&self) -> Result<Embedder> {
        let options = EmbedderOptions {
            max_tokens: self.max_tokens,
            precision: self.precision,
        };
        Embedder::load(&self.model, options).map_err(|e| {
            anyhow!("--model: {e}\n  help: scripts/fetch-model.sh installs the default model")
        })
    }
}

/// Runs a `train` command.
pub fn run(command: TrainCommand) -> Result<()> {
    match command {
        TrainCommand::Domain(args) => domain(&args),
        TrainCommand::Router(args) => router(&args),
    }
}

/// What the provenance says the learner is.
fn describe(args: &RouterArgs, l2: f64) -> String {
    const FEATURES: &str = " and six surface features of the prompt (length, digits, \
                            arithmetic symbols, lines, negated questions)";
    match args.learner.as_str() {
        "mlp+text" => format!(
            "the mean of {} perceptrons (one hidden layer of {} ReLU units, a sigmoid per \
             model) on the unit embedding{FEATURES}, each fitted by {} Adam steps (step size \
             0.001, batches of 64) on the binary cross-entropy of each model's correctness, \
             L2 {l2}, from its own seed",
            args.seeds, args.hidden, args.steps
        ),
        "ridge+text" => format!(
            "ridge regression of each model's correctness on the unit embedding{FEATURES}, \
             L2 {l2} (bias unpenalized), solved exactly"
        ),
        _ => format!(
            "ridge regression of each model's correctness on the unit embedding, L2 {l2} \
             (bias unpenalized), solved exactly"
        ),
    }
}

fn router(args: &RouterArgs) -> Result<()> {
    use crate::eval_routing::{Learner, cross_validate, pick_models};
    use switchyard_workload::outcome_router::{
        Mlp, MlpOptions, Ridge, RouterFile, curve, mean_prediction, read_outcomes, router_input,
    };
    let mlp = args.learner == "mlp+text";
    let l2 = args.l2.unwrap_or(if mlp { 0.001 } else { 0.01 });
    let learner = match args.learner.as_str() {
        "ridge" => Learner::Ridge { l2 },
        "ridge+text" => Learner::RidgeText { l2 },
        "mlp+text" => Learner::Mlp {
            hidden: args.hidden,
            steps: args.steps,
            l2: l2 as f32,
            seeds: args.seeds,
        },
        other => anyhow::bail!("--learner {other}: use mlp+text, ridge+text or ridge"),
    };
    if !(l2.is_finite() && l2 > 0.0) {
        anyhow::bail!("--l2 {l2}: must be above 0");
    }
    if mlp && (args.hidden == 0 || args.steps == 0 || args.seeds == 0) {
        anyhow::bail!("--hidden, --steps and --seeds must be above 0");
    }
    if args.folds < 2 {
        anyhow::bail!("--folds {}: at least 2", args.folds);
    }
    let data = read_outcomes(&args.data).map_err(|e| anyhow!("{e}"))?;
    let (strong, weak) = pick_models(&data, args.strong.as_deref(), args.weak.as_deref())?;
    let bytes = std::fs::read(&args.data).with_context(|| args.data.display().to_string())?;
    let digest = format!("{:x}", Sha256::digest(&bytes));
    let embedder = args.embedding.load()?;
    let vectors = crate::eval_routing::vectors(&data, &embedder, &args.cache_dir)?;
    let with_text = args.learner != "ridge";
    let inputs: Vec<Vec<f32>> = vectors
        .iter()
        .zip(&data.rows)
        .map(|(v, r)| router_input(v, &r.text, with_text))
        .collect();
    let xs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
    let ys: Vec<&[f64]> = data.rows.iter().map(|r| r.scores.as_slice()).collect();
    let started = std::time::Instant::now();
    let (ridge, mlps) = if mlp {
        let nets = (0..args.seeds)
            .map(|seed| {
                let options = MlpOptions {
                    hidden: args.hidden,
                    steps: args.steps,
                    rate: 0.001,
                    l2: l2 as f32,
                    seed: seed * 1000,
                };
                Mlp::fit(&xs, &ys, options).map_err(|e| anyhow!("{e}"))
            })
            .collect::<Result<Vec<Mlp>>>()?;
        (Ridge::default(), nets)
    } else {
        (
            Ridge::fit(&xs, &ys, l2).map_err(|e| anyhow!("{e}"))?,
            Vec::new(),
        )
    };
    let seconds = started.elapsed().as_secs_f64();
    let mut gains: Vec<f64> = xs
        .iter()
        .map(|x| {
            let p = if mlp {
                mean_prediction(&mlps, x)
            } else {
                ridge.predict(x)
            };
            p[strong] - p[weak]
        })
        .collect();
    gains.sort_by(|a, b| b.total_cmp(a));
    let thresholds: Vec<f64> = (0..=100)
        .map(|i| {
            let at = (gains.len() * i / 100).min(gains.len().saturating_sub(1));
            // Above every gain: no training prompt went to the strong model.
            if i == 0 { gains[0] + 1.0 } else { gains[at] }
        })
        .collect();
    let file = RouterFile {
        format: 1,
        embedding: embedder.name().to_owned(),
        dimension: embedder.dimension(),
        precision: embedder.precision().name().to_owned(),
        max_tokens: embedder.max_tokens(),
        learner: args.learner.clone(),
        models: data.models.clone(),
        strong: data.models[strong].clone(),
        weak: data.models[weak].clone(),
        ridge,
        mlps,
        data_sha256: digest.clone(),
        thresholds,
    };
    file.validate().map_err(|e| anyhow!("{e}"))?;
    // Cross-validated figures of the same recipe, for the provenance.
    let p = cross_validate(learner, &data, &vectors, args.folds)?;
    let g: Vec<f64> = p.iter().map(|p| p[strong] - p[weak]).collect();
    let s: Vec<f64> = data.rows.iter().map(|r| r.scores[strong]).collect();
    let w: Vec<f64> = data.rows.iter().map(|r| r.scores[weak]).collect();
    let report = curve(&g, &s, &w, 1000, 1);
    std::fs::write(&args.out, format!("{}\n", serde_json::to_string(&file)?))
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let accuracy = data.accuracy();
    let md = format!(
        "# Learned router provenance\n\n\
         Written by `switchyard train router`; do not edit by hand.\n\n\
         - command: `{}`\n\
         - data: `{}` ({} rows), sha256 `{digest}`\n\
         - models: strong `{}` ({:.1}% correct), weak `{}` ({:.1}%)\n\
         - embedding model: `{}` ({} dimensions, {} tokens per text, {} products)\n\
         - learner: `{}`: {}\n\
         - {}-fold cross-validation split by question (`outcome_router::fold`): strong share at 95% of the strong model's accuracy {:.1}% [95% CI {:.1}, {:.1}], APGR {:.3} [{:.3}, {:.3}] (1,000 bootstrap resamples)\n\
         - fitted in {seconds:.1} s\n",
        std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        args.data.file_name().map_or_else(
            || args.data.display().to_string(),
            |n| n.to_string_lossy().into_owned()
        ),
        data.rows.len(),
        data.models[strong],
        accuracy[strong] * 100.0,
        data.models[weak],
        accuracy[weak] * 100.0,
        embedder.name(),
        embedder.dimension(),
        embedder.max_tokens(),
        embedder.precision().name(),
        args.learner,
        describe(args, l2),
        args.folds,
        report.strong_share_at_95 * 100.0,
        report.strong_share_at_95_ci[0] * 100.0,
        report.strong_share_at_95_ci[1] * 100.0,
        report.apgr,
        report.apgr_ci[0],
        report.apgr_ci[1],
    );
    let provenance = args.out.with_extension("md");
    std::fs::write(&provenance, md)
        .with_context(|| format!("cannot write {}", provenance.display()))?;
    println!(
        "wrote {} and {}: cross-validated strong share at 95% {:.1}%, APGR {:.3}",
        args.out.display(),
        provenance.display(),
        report.strong_share_at_95 * 100.0,
        report.apgr
    );
    Ok(())
}

/// A progress bar on standard error.
pub fn progress(total: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{what} [{{bar:30}}] {{pos}}/{{len}} {{per_sec}} eta {{eta}}"
    )) {
        bar.set_style(style);
    }
    bar
}

/// Embeds texts through the on-disk cache, with a progress bar.
pub fn embed_all(embedder: &Embedder, cache_dir: &Path, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
    let cache = ExemplarCache::new(cache_dir, embedder);
    let bar = progress(texts.len(), "embedding");
    let vectors = cache
        .vectors(embedder, texts, |done| bar.set_position(done as u64))
        .map_err(|e| anyhow!("embedding failed: {e}"))?;
    bar.finish_and_clear();
    Ok(vectors)
}

fn domain(args: &DomainArgs) -> Result<()> {
    if args.holdout >= 100 {
        anyhow::bail!("--holdout {}: must be below 100 (percent)", args.holdout);
    }
    let rows = read_labelled(
        &args.data,
        args.text_field.as_deref(),
        args.label_field.as_deref(),
    )
    .map_err(|e| anyhow!("{e}"))?;
    let bytes = std::fs::read(&args.data).with_context(|| args.data.display().to_string())?;
    let digest = format!("{:x}", Sha256::digest(&bytes));
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &rows {
        *counts.entry(r.label.as_str()).or_default() += 1;
    }
    let labels: Vec<String> = counts.keys().map(|l| (*l).to_owned()).collect();
    let index = |label: &str| labels.iter().position(|l| l == label).unwrap_or(0);
    let embedder = args.embedding.load()?;
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let vectors = embed_all(&embedder, &args.cache_dir, &texts)?;
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (row, vector) in rows.iter().zip(vectors) {
        let example = (vector, index(&row.label));
        if holdout(&row.text, args.holdout) {
            test.push(example);
        } else {
            train.push(example);
        }
    }
    let options = TrainOptions {
        epochs: args.epochs,
        l2: args.l2,
        ..TrainOptions::default()
    };
    let started = std::time::Instant::now();
    let head = LinearHead::train(
        embedder.name(),
        labels.clone(),
        &train,
        args.holdout,
        options,
    )
    .map_err(|e| anyhow!("{e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let mut confusion = Confusion::new(labels.clone());
    for (x, y) in &test {
        confusion.add(*y, head.predict(x).label);
    }
    let json = serde_json::to_string(&head)?;
    std::fs::write(&args.out, format!("{json}\n"))
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let provenance = args.out.with_extension("md");
    let mut md = format!(
        "# Domain head provenance\n\n\
         Written by `switchyard train domain`; do not edit by hand.\n\n\
         - command: `{}`\n\
         - data: `{}` ({} rows), sha256 `{digest}`\n\
         - embedding model: `{}` ({} dimensions, {} tokens per text, {} products)\n\
         - head: linear softmax over {} labels; {} epochs of full-batch Adam, L2 {}\n\
         - split: rows whose text hashes into the lowest {}% (`head::holdout`) are held out: {} trained, {} held out\n\
         - held-out accuracy {:.4}, macro-F1 {:.4}\n\
         - fitted in {seconds:.1} s\n\n\
         | label | rows | held-out precision | recall | F1 |\n|---|---|---|---|---|\n",
        std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        args.data.file_name().map_or_else(
            || args.data.display().to_string(),
            |n| n.to_string_lossy().into_owned()
        ),
        rows.len(),
        embedder.name(),
        embedder.dimension(),
        embedder.max_tokens(),
        embedder.precision().name(),
        labels.len(),
        options.epochs,
        options.l2,
        args.holdout,
        train.len(),
        test.len(),
        confusion.accuracy(),
        confusion.macro_f1(),
    );
    for (c, label) in labels.iter().enumerate() {
        let b = confusion.class(c);
        md.push_str(&format!(
            "| {label} | {} | {:.3} | {:.3} | {:.3} |\n",
            counts.get(label.as_str()).copied().unwrap_or(0),
            b.precision(),
            b.recall(),
            b.f1()
        ));
    }
    std::fs::write(&provenance, md)
        .with_context(|| format!("cannot write {}", provenance.display()))?;
    println!(
        "domain head: {} labels, {} trained, {} held out: accuracy {:.1}%, macro-F1 {:.3}\nwrote {} and {}",
        labels.len(),
        train.len(),
        test.len(),
        100.0 * confusion.accuracy(),
        confusion.macro_f1(),
        args.out.display(),
        provenance.display()
    );
    Ok(())
}
