//! `switchyard eval signals`: labelled data through the signal engine, scored.
//!
//! - domain: the held-out rows of the MMLU set (the head's own split, so nothing it
//!   trained on is scored), 14-way accuracy and macro-F1;
//! - jailbreak: prompt-injection attacks and their benign look-alikes, jailbreak
//!   templates filled with harmful requests, and benign MMLU and MT-Bench prompts;
//! - pii: the presidio-evaluator templates filled with its synthetic identities and
//!   generated numbers, exact spans kept, scored per type; and MMLU prompts for false
//!   positives.

use crate::train::progress;
use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use switchyard_wire::Conversation;
use switchyard_workload::dataset::{read_jsonl, read_labelled};
use switchyard_workload::domain::{DomainSignalConfig, read_head};
use switchyard_workload::embedding::EmbeddingModelConfig;
use switchyard_workload::head::holdout;
use switchyard_workload::jailbreak::JailbreakSignalConfig;
use switchyard_workload::metrics::{Binary, Confusion, Latency};
use switchyard_workload::pii::{PiiKind, find_pii, iban_valid, luhn_valid};
use switchyard_workload::{SignalEngine, SignalFamily, SignalsConfig};

/// What to evaluate.
#[derive(Subcommand)]
pub enum EvalCommand {
    /// Score signals against labelled data (needs the shared data folder).
    Signals(SignalsArgs),
    /// Replay a prompt file through the semantic cache: hit and false-hit rates per
    /// similarity threshold.
    Cache(crate::eval_cache::CacheArgs),
    /// Route a labelled outcome file between its weak and strong model: the
    /// cost–quality curve, APGR and the strong share at 95% of the strong model's
    /// accuracy, for learned routers (cross-validated) and baselines.
    Routing(crate::eval_routing::RoutingArgs),
}

/// A part of the signal evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Part {
    /// Domain classification.
    Domain,
    /// Jailbreak and prompt injection.
    Jailbreak,
    /// PII recognizers.
    Pii,
}

/// Arguments of `eval signals`.
#[derive(Args)]
pub struct SignalsArgs {
    /// The data folder (`mmlu/`, `mtbench/`, `safety/`); default `$SWITCHYARD_DATA`,
    /// else `../shared/data`.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The PII templates and identities (`scripts/fetch-eval-data.sh` installs them).
    #[arg(long, default_value = ".cache/eval/presidio")]
    pub pii_data: PathBuf,
    /// The embedding model.
    #[command(flatten)]
    pub embedding: crate::train::ModelArgs,
    /// A domain head to score instead of the built-in one.
    #[arg(long)]
    pub head: Option<PathBuf>,
    /// The jailbreak signal's contrast threshold.
    #[arg(long, default_value_t = 0.1)]
    pub jailbreak_threshold: f64,
    /// The jailbreak signal's least similarity to an attack exemplar.
    #[arg(long, default_value_t = 0.35)]
    pub jailbreak_min_similarity: f64,
    /// Fills of each PII template.
    #[arg(long, default_value_t = 10)]
    pub fills: usize,
    /// Misses listed per kind (false positives, false negatives), from the refining
    /// half only.
    #[arg(long, default_value_t = 20)]
    pub misses: usize,
    /// List misses with their whole text, not its first 200 characters.
    #[arg(long)]
    pub whole_text: bool,
    /// Parts to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Part>,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Runs an `eval` command.
pub fn run(command: EvalCommand) -> Result<()> {
    match command {
        EvalCommand::Signals(args) => signals(&args),
        EvalCommand::Cache(args) => crate::eval_cache::run(&args),
        EvalCommand::Routing(args) => crate::eval_routing::run(&args),
    }
}

#[derive(Serialize, Default)]
struct Report {
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<DomainReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jailbreak: Option<JailbreakReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pii: Option<PiiReport>,
}

fn data_dir(args: &SignalsArgs) -> Result<PathBuf> {
    let dir = args
        .data
        .clone()
        .or_else(|| std::env::var_os("SWITCHYARD_DATA").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("../shared/data"));
    if !dir.join("mmlu/dev.jsonl").is_file() {
        bail!(
            "{}: no mmlu/dev.jsonl: the evaluation needs the shared data folder (--data DIR or SWITCHYARD_DATA)",
            dir.display()
        );
    }
    Ok(dir)
}

fn signals(args: &SignalsArgs) -> Result<()> {
    let dir = data_dir(args)?;
    let wanted = |p: Part| args.only.is_empty() || args.only.contains(&p);
    let mut report = Report::default();
    if wanted(Part::Domain) {
        report.domain = Some(domain(args, &dir)?);
    }
    if wanted(Part::Jailbreak) {
        report.jailbreak = Some(jailbreak(args, &dir)?);
    }
    if wanted(Part::Pii) {
        report.pii = Some(pii(args, &dir)?);
    }
    print(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn model_config(args: &SignalsArgs) -> EmbeddingModelConfig {
    // One request at a time: no batching, so latencies are those of one request.
    EmbeddingModelConfig {
        max_tokens: args.embedding.max_tokens,
        precision: args.embedding.precision,
        domain_head: args.head.clone(),
        max_batch: 1,
        ..EmbeddingModelConfig::at(&args.embedding.model)
    }
}

fn build(config: &SignalsConfig) -> Result<Arc<SignalEngine>> {
    SignalEngine::build(config)
        .map(Arc::new)
        .map_err(|e| anyhow!("{e}"))
}

fn total_ns(signals: &switchyard_workload::Signals) -> u64 {
    signals.iter().map(|(_, v)| v.cost_ns).sum()
}

#[derive(Serialize)]
struct DomainReport {
    rows: usize,
    held_out_percent: u32,
    accuracy: f64,
    macro_f1: f64,
    per_label: BTreeMap<String, Scores>,
    latency: Latency,
}

#[derive(Serialize)]
struct Scores {
    n: u64,
    precision: f64,
    recall: f64,
    f1: f64,
}

impl Scores {
    fn of(b: &Binary) -> Scores {
        Scores {
            n: b.tp + b.fn_,
            precision: b.precision(),
            recall: b.recall(),
            f1: b.f1(),
        }
    }
}

fn domain(args: &SignalsArgs, dir: &Path) -> Result<DomainReport> {
    // The labels only: building the engine loads the model and checks the head fits it.
    let head = read_head(args.head.as_deref()).map_err(|e| anyhow!("{e}"))?;
    if head.holdout_percent == 0 {
        bail!(
            "the head was trained on every row (--holdout 0): there is nothing held out to score"
        );
    }
    let rows: Vec<_> = read_labelled(&dir.join("mmlu/dev.jsonl"), None, None)
        .map_err(|e| anyhow!("{e}"))?
        .into_iter()
        .filter(|r| holdout(&r.text, head.holdout_percent))
        .collect();
    let config = SignalsConfig {
        model: Some(model_config(args)),
        domain: head
            .labels
            .iter()
            .map(|l| DomainSignalConfig {
                name: l.clone(),
                categories: vec![],
                threshold: 0.0,
            })
            .collect(),
        ..SignalsConfig::default()
    };
    let engine = build(&config)?;
    let ids: Vec<_> = head
        .labels
        .iter()
        .filter_map(|l| engine.lookup(SignalFamily::Domain, l))
        .collect();
    let mut confusion = Confusion::new(head.labels.clone());
    let mut ns = Vec::with_capacity(rows.len());
    let bar = progress(rows.len(), "domain");
    for row in &rows {
        let conversation = Conversation::from_prompt("auto", &row.text);
        let signals = engine.characterize(&conversation, &ids);
        ns.push(total_ns(&signals));
        let predicted = ids.iter().position(|id| signals.matched(*id));
        if let (Some(actual), Some(predicted)) = (head.label_index(&row.label), predicted) {
            confusion.add(actual, predicted);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(DomainReport {
        rows: rows.len(),
        held_out_percent: head.holdout_percent,
        accuracy: confusion.accuracy(),
        macro_f1: confusion.macro_f1(),
        per_label: head
            .labels
            .iter()
            .enumerate()
            .map(|(c, l)| (l.clone(), Scores::of(&confusion.class(c))))
            .collect(),
        latency: Latency::of(ns),
    })
}

#[derive(Serialize)]
struct JailbreakReport {
    threshold: f64,
    min_similarity: f64,
    overall: BinaryReport,
    /// The half of the cases chosen by `head::holdout(text, 50)`: the patterns and
    /// exemplars were refined looking only at misses of the other half.
    held_out_half: BinaryReport,
    /// Share flagged per subset (recall for attacks, false-positive rate for benign).
    subsets: BTreeMap<String, Subset>,
    benign_false_positive_rate: f64,
    look_alike_false_positive_rate: f64,
    by_pattern: u64,
    by_contrast: u64,
    latency: Latency,
    /// Share flagged per class of the hand-written probes (`data/jailbreak-classes.jsonl`):
    /// persona set-ups, dual answers, instruction resets and non-English personas
    /// (attacks); bare phrases with no one addressed and law and security exam
    /// questions (benign). Written with the patterns in view: a regression check of
    /// the classes, not a held-out figure.
    classes: BTreeMap<String, Subset>,
    /// Up to `--misses` wrong verdicts of each kind from the development half, with
    /// the signal's evidence.
    false_positives: Vec<Miss>,
    false_negatives: Vec<Miss>,
}

/// The hand-written probes of the jailbreak signal's known miss classes.
const JAILBREAK_CLASSES: &str = include_str!("../data/jailbreak-classes.jsonl");

#[derive(Serialize)]
struct Miss {
    subset: String,
    text: String,
    evidence: String,
}

fn miss(subset: &str, text: &str, evidence: Option<&str>) -> Miss {
    Miss {
        subset: subset.to_owned(),
        text: text.chars().take(200).collect(),
        evidence: evidence.unwrap_or_default().to_owned(),
    }
}

#[derive(Serialize)]
struct BinaryReport {
    counts: Binary,
    precision: f64,
    recall: f64,
    f1: f64,
    accuracy: f64,
}

impl BinaryReport {
    fn of(b: Binary) -> BinaryReport {
        BinaryReport {
            counts: b,
            precision: b.precision(),
            recall: b.recall(),
            f1: b.f1(),
            accuracy: b.accuracy(),
        }
    }
}

#[derive(Serialize, Default)]
struct Subset {
    attack: bool,
    n: u64,
    flagged: u64,
    rate: f64,
}

fn jsonl(path: &Path) -> Result<Vec<serde_json::Value>> {
    let rows = read_jsonl(path).map_err(|e| anyhow!("{e}"))?;
    Ok(rows.into_iter().map(|(_, v)| v).collect())
}

fn field<'a>(v: &'a serde_json::Value, name: &str) -> &'a str {
    v.get(name).and_then(|x| x.as_str()).unwrap_or("")
}

/// `template` with each `{{ name }}` slot replaced by what `slot` appends to the text
/// so far (it sees the slot's trimmed name).
fn fill_slots(template: &str, mut slot: impl FnMut(&str, &mut String)) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        out.push_str(&rest[..start]);
        slot(rest[start + 2..start + len].trim(), &mut out);
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// A template with every `{{ parameter }}` replaced by `request` and template-engine
/// markers removed.
pub fn fill_template(template: &str, request: &str) -> String {
    let text = template
        .replace("{% raw %}", "")
        .replace("{% endraw %}", "");
    fill_slots(&text, |_, out| out.push_str(request))
}

fn jailbreak(args: &SignalsArgs, dir: &Path) -> Result<JailbreakReport> {
    let safety = dir.join("safety");
    let mut cases: Vec<(String, &'static str, bool)> = Vec::new();
    for row in jsonl(&safety.join("prompt_injection.jsonl"))? {
        let attack = field(&row, "label") == "malicious";
        let subset = if attack {
            "injection"
        } else {
            "injection look-alikes"
        };
        cases.push((field(&row, "text").to_owned(), subset, attack));
    }
    let harmful: Vec<String> = jsonl(&safety.join("harmful_requests.jsonl"))?
        .iter()
        .map(|r| field(r, "text").to_owned())
        .collect();
    if harmful.is_empty() {
        bail!("{}: no harmful requests", safety.display());
    }
    for (i, row) in jsonl(&safety.join("jailbreak_templates.jsonl"))?
        .iter()
        .enumerate()
    {
        let request = &harmful[(i * 7) % harmful.len()];
        cases.push((
            fill_template(field(row, "template"), request),
            "jailbreak templates",
            true,
        ));
    }
    for row in jsonl(&dir.join("mtbench/questions.jsonl"))? {
        for turn in row
            .get("turns")
            .and_then(|t| t.as_array())
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str())
        {
            cases.push((turn.to_owned(), "mt-bench", false));
        }
    }
    for (i, row) in read_labelled(&dir.join("mmlu/dev.jsonl"), None, None)
        .map_err(|e| anyhow!("{e}"))?
        .into_iter()
        .enumerate()
    {
        if i % 7 == 0 {
            cases.push((row.text, "mmlu", false));
        }
    }
    let config = SignalsConfig {
        model: Some(model_config(args)),
        jailbreak: vec![JailbreakSignalConfig {
            threshold: args.jailbreak_threshold,
            min_similarity: args.jailbreak_min_similarity,
            ..JailbreakSignalConfig::new("attack")
        }],
        ..SignalsConfig::default()
    };
    let engine = build(&config)?;
    let id = engine
        .lookup(SignalFamily::Jailbreak, "attack")
        .ok_or_else(|| anyhow!("the jailbreak signal was not built"))?;
    let (mut overall, mut held_out_half) = (Binary::default(), Binary::default());
    let mut subsets: BTreeMap<String, Subset> = BTreeMap::new();
    let (mut benign, mut look_alike) = (Binary::default(), Binary::default());
    let (mut by_pattern, mut by_contrast) = (0, 0);
    let mut ns = Vec::with_capacity(cases.len());
    let (mut false_positives, mut false_negatives) = (Vec::new(), Vec::new());
    let bar = progress(cases.len(), "jailbreak");
    for (text, subset, attack) in &cases {
        let signals = engine.characterize(&Conversation::from_prompt("auto", text), &[id]);
        ns.push(total_ns(&signals));
        let value = signals.get(id);
        let flagged = value.is_some_and(|v| v.matched);
        if flagged {
            let pattern = value
                .and_then(|v| v.evidence.as_deref())
                .is_some_and(|e| e.contains("pattern"));
            if pattern {
                by_pattern += 1;
            } else {
                by_contrast += 1;
            }
        }
        overall.add(flagged, *attack);
        let held_out = holdout(text, 50);
        if held_out {
            held_out_half.add(flagged, *attack);
        }
        let evidence = value.and_then(|v| v.evidence.as_deref());
        let shown = |m: Miss| Miss {
            text: if args.whole_text {
                text.clone()
            } else {
                m.text
            },
            ..m
        };
        if flagged && !attack && !held_out && false_positives.len() < args.misses {
            false_positives.push(shown(miss(subset, text, evidence)));
        }
        if !flagged && *attack && !held_out && false_negatives.len() < args.misses {
            false_negatives.push(shown(miss(subset, text, evidence)));
        }
        match *subset {
            "mmlu" | "mt-bench" => benign.add(flagged, false),
            "injection look-alikes" => look_alike.add(flagged, false),
            _ => {}
        }
        let s = subsets.entry((*subset).to_owned()).or_default();
        s.attack = *attack;
        s.n += 1;
        s.flagged += u64::from(flagged);
        bar.inc(1);
    }
    bar.finish_and_clear();
    for s in subsets.values_mut() {
        s.rate = s.flagged as f64 / s.n.max(1) as f64;
    }
    let mut classes: BTreeMap<String, Subset> = BTreeMap::new();
    for (i, line) in JAILBREAK_CLASSES.lines().enumerate() {
        let row: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| anyhow!("data/jailbreak-classes.jsonl:{}: {e}", i + 1))?;
        let attack = row.get("attack").and_then(serde_json::Value::as_bool) == Some(true);
        let text = field(&row, "text");
        let signals = engine.characterize(&Conversation::from_prompt("auto", text), &[id]);
        let flagged = signals.get(id).is_some_and(|v| v.matched);
        let c = classes.entry(field(&row, "class").to_owned()).or_default();
        c.attack = attack;
        c.n += 1;
        c.flagged += u64::from(flagged);
    }
    for c in classes.values_mut() {
        c.rate = c.flagged as f64 / c.n.max(1) as f64;
    }
    Ok(JailbreakReport {
        threshold: args.jailbreak_threshold,
        min_similarity: args.jailbreak_min_similarity,
        overall: BinaryReport::of(overall),
        held_out_half: BinaryReport::of(held_out_half),
        subsets,
        classes,
        benign_false_positive_rate: benign.false_positive_rate(),
        look_alike_false_positive_rate: look_alike.false_positive_rate(),
        by_pattern,
        by_contrast,
        latency: Latency::of(ns),
        false_positives,
        false_negatives,
    })
}

#[derive(Serialize)]
struct PiiReport {
    sentences: usize,
    per_type: BTreeMap<String, BinaryReport>,
    mmlu_prompts: usize,
    mmlu_prompts_flagged: usize,
    latency: Latency,
    /// Up to 20 wrong findings and 20 missed values: type, value, sentence.
    false_positives: Vec<(String, String, String)>,
    false_negatives: Vec<(String, String, String)>,
}

/// A filled template: its text and the exact spans of the values put in.
#[derive(Debug, Clone, PartialEq)]
pub struct Filled {
    /// The sentence.
    pub text: String,
    /// `(kind, start, end)` byte spans of the recognizable values.
    pub spans: Vec<(PiiKind, usize, usize)>,
}

/// A card number: `prefix`, random digits, and the check digit `pii::luhn_valid`
/// accepts.
fn luhn_complete(prefix: &str, len: usize, rng: &mut StdRng) -> String {
    let mut digits: Vec<u8> = prefix.bytes().map(|b| b - b'0').collect();
    while digits.len() < len - 1 {
        digits.push(rng.random_range(0..10));
    }
    digits.push(0);
    for check in 0..10 {
        digits[len - 1] = check;
        if luhn_valid(&digits) {
            break;
        }
    }
    digits.iter().map(|d| char::from(b'0' + d)).collect()
}

fn card(rng: &mut StdRng) -> String {
    let (prefix, len) = match rng.random_range(0..4) {
        0 => ("4", 16),
        1 => ("5", 16),
        2 => ("37", 15),
        _ => ("6011", 16),
    };
    let prefix = if prefix == "5" {
        format!("5{}", rng.random_range(1..6))
    } else {
        prefix.to_owned()
    };
    let number = luhn_complete(&prefix, len, rng);
    match rng.random_range(0..3) {
        0 => number,
        sep => {
            let sep = if sep == 1 { " " } else { "-" };
            let groups: Vec<&str> = if len == 15 {
                vec![&number[..4], &number[4..10], &number[10..]]
            } else {
                (0..4).map(|g| &number[g * 4..g * 4 + 4]).collect()
            };
            groups.join(sep)
        }
    }
}

fn ssn(rng: &mut StdRng) -> String {
    let area = loop {
        let a = rng.random_range(1..900);
        if a != 666 {
            break a;
        }
    };
    format!(
        "{area:03}-{:02}-{:04}",
        rng.random_range(1..100),
        rng.random_range(1..10_000)
    )
}

fn iban(rng: &mut StdRng) -> String {
    let (country, len) = [("DE", 22), ("GB", 22), ("FR", 27), ("NL", 18)][rng.random_range(0..4)];
    let bban: String = (0..len - 4)
        .map(|i| {
            if (country == "GB" || country == "NL") && i < 4 {
                char::from(b'A' + rng.random_range(0..26u8))
            } else {
                char::from(b'0' + rng.random_range(0..10u8))
            }
        })
        .collect();
    // The check digits `pii::iban_valid` accepts.
    (2..=98)
        .map(|check| format!("{country}{check:02}{bban}"))
        .find(|iban| iban_valid(iban))
        .unwrap_or_default()
}

/// Fills `templates` `fills` times each from `people` (rows of the identities CSV as
/// column → value), deterministically from `seed`.
pub fn fill_pii_templates(
    templates: &[String],
    people: &[BTreeMap<String, String>],
    fills: usize,
    seed: u64,
) -> Vec<Filled> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    if people.is_empty() {
        return out;
    }
    for template in templates {
        for _ in 0..fills {
            let person = &people[rng.random_range(0..people.len())];
            let get = |k: &str| person.get(k).cloned().unwrap_or_default();
            let template = template.replace("\\n", "\n");
            let mut spans = Vec::new();
            let text = fill_slots(&template, |name, out| {
                let (value, kind) = match name {
                    "credit_card_number" => (card(&mut rng), Some(PiiKind::CreditCard)),
                    "email" => (get("EmailAddress"), Some(PiiKind::Email)),
                    "phone_number" => {
                        let national = get("TelephoneNumber");
                        let value = if rng.random_bool(0.5) {
                            format!("+{} {national}", get("TelephoneCountryCode"))
                        } else {
                            national
                        };
                        (value, Some(PiiKind::Phone))
                    }
                    "ssn" => (ssn(&mut rng), Some(PiiKind::Ssn)),
                    "iban" => (iban(&mut rng), Some(PiiKind::Iban)),
                    "ip_address" => (
                        format!(
                            "{}.{}.{}.{}",
                            rng.random_range(1..224),
                            rng.random_range(0..256),
                            rng.random_range(0..256),
                            rng.random_range(1..255)
                        ),
                        Some(PiiKind::IpAddress),
                    ),
                    "person" | "name" => (format!("{} {}", get("GivenName"), get("Surname")), None),
                    n if n.starts_with("first_name") || n.starts_with("name_") => {
                        (get("GivenName"), None)
                    }
                    n if n.starts_with("last_name") => (get("Surname"), None),
                    n if n.starts_with("prefix") => (get("Title"), None),
                    "address" => (
                        format!(
                            "{}, {}, {} {}",
                            get("StreetAddress"),
                            get("City"),
                            get("State"),
                            get("ZipCode")
                        ),
                        None,
                    ),
                    "street_name" => (get("StreetAddress"), None),
                    "building_number" => (rng.random_range(1..400).to_string(), None),
                    "secondary_address" => (format!("Apt. {}", rng.random_range(1..999)), None),
                    "city" => (get("City"), None),
                    "country" => (get("CountryFull"), None),
                    "postcode" | "zipcode" => (get("ZipCode"), None),
                    "state_abbr" => (get("State"), None),
                    "organization" => (get("Company"), None),
                    "job" => (get("Occupation"), None),
                    "url" => (format!("https://www.{}", get("Domain")), None),
                    "age" => (get("Age"), None),
                    "date_of_birth" | "date_time" => (get("Birthday"), None),
                    "year" => (rng.random_range(1950..2025).to_string(), None),
                    "day_of_week" => ("Tuesday".to_owned(), None),
                    "us_driver_license" => {
                        (format!("D{:07}", rng.random_range(0..10_000_000)), None)
                    }
                    n if n.starts_with("nation") => (get("CountryFull"), None),
                    _ => (get("Surname"), None),
                };
                let begin = out.len();
                out.push_str(&value);
                if let Some(kind) = kind {
                    spans.push((kind, begin, out.len()));
                }
            });
            let filled = Filled { text, spans };
            out.push(filled);
        }
    }
    out
}

fn pii(args: &SignalsArgs, dir: &Path) -> Result<PiiReport> {
    let folder = &args.pii_data;
    let templates_path = folder.join("templates.txt");
    let templates: Vec<String> = std::fs::read_to_string(&templates_path)
        .with_context(|| {
            format!(
                "{}: run scripts/fetch-eval-data.sh to install the PII templates",
                templates_path.display()
            )
        })?
        .lines()
        .map(|l| l.trim_start_matches('\u{feff}').trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    let people_path = folder.join("FakeNameGenerator.com_3000.csv");
    let mut reader =
        csv::Reader::from_path(&people_path).with_context(|| people_path.display().to_string())?;
    let headers: Vec<String> = reader
        .headers()?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_owned())
        .collect();
    let mut people = Vec::new();
    for record in reader.records() {
        let record = record.with_context(|| people_path.display().to_string())?;
        people.push(
            headers
                .iter()
                .cloned()
                .zip(record.iter().map(str::to_owned))
                .collect::<BTreeMap<_, _>>(),
        );
    }
    let filled = fill_pii_templates(&templates, &people, args.fills, 7);
    let min_score = 0.5;
    let mut per_type: BTreeMap<PiiKind, Binary> = BTreeMap::new();
    let (mut false_positives, mut false_negatives) = (Vec::new(), Vec::new());
    let mut ns = Vec::with_capacity(filled.len());
    for sample in &filled {
        let started = std::time::Instant::now();
        let found: Vec<_> = find_pii(&sample.text)
            .into_iter()
            .filter(|f| f.score >= min_score)
            .collect();
        ns.push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
        let overlaps = |a: (usize, usize), b: (usize, usize)| a.0 < b.1 && b.0 < a.1;
        for (kind, start, end) in &sample.spans {
            let hit = found
                .iter()
                .any(|f| f.kind == *kind && overlaps((f.start, f.end), (*start, *end)));
            per_type.entry(*kind).or_default().add(hit, true);
            if !hit && false_negatives.len() < 20 {
                false_negatives.push((
                    kind.name().to_owned(),
                    sample.text[*start..*end].to_owned(),
                    sample.text.clone(),
                ));
            }
        }
        for f in &found {
            let right = sample
                .spans
                .iter()
                .any(|(k, s, e)| *k == f.kind && overlaps((f.start, f.end), (*s, *e)));
            if !right {
                per_type.entry(f.kind).or_default().add(true, false);
                if false_positives.len() < 20 {
                    false_positives.push((
                        f.kind.name().to_owned(),
                        sample.text[f.start..f.end].to_owned(),
                        sample.text.clone(),
                    ));
                }
            }
        }
    }
    let mmlu =
        read_labelled(&dir.join("mmlu/dev.jsonl"), None, None).map_err(|e| anyhow!("{e}"))?;
    let flagged = mmlu
        .iter()
        .filter(|r| find_pii(&r.text).iter().any(|f| f.score >= min_score))
        .count();
    Ok(PiiReport {
        sentences: filled.len(),
        per_type: per_type
            .into_iter()
            .map(|(k, b)| (k.name().to_owned(), BinaryReport::of(b)))
            .collect(),
        mmlu_prompts: mmlu.len(),
        mmlu_prompts_flagged: flagged,
        latency: Latency::of(ns),
        false_positives,
        false_negatives,
    })
}

fn print(report: &Report) {
    if let Some(d) = &report.domain {
        println!(
            "domain: {} held-out rows ({}% split): accuracy {:.1}%, macro-F1 {:.3}; latency p50 {:.1} ms, p99 {:.1} ms",
            d.rows,
            d.held_out_percent,
            100.0 * d.accuracy,
            d.macro_f1,
            d.latency.p50_us / 1e3,
            d.latency.p99_us / 1e3
        );
        println!(
            "  {:<18} {:>5} {:>9} {:>7} {:>6}",
            "label", "n", "precision", "recall", "F1"
        );
        for (label, s) in &d.per_label {
            println!(
                "  {label:<18} {:>5} {:>9.3} {:>7.3} {:>6.3}",
                s.n, s.precision, s.recall, s.f1
            );
        }
    }
    if let Some(j) = &report.jailbreak {
        let o = &j.overall;
        println!(
            "jailbreak (threshold {}, min similarity {}): precision {:.3}, recall {:.3}, F1 {:.3}, accuracy {:.3} (held-out half: F1 {:.3}); benign FPR {:.2}%, look-alike FPR {:.1}%; flagged by pattern {}, by contrast {}; latency p50 {:.2} ms, p99 {:.1} ms",
            j.threshold,
            j.min_similarity,
            o.precision,
            o.recall,
            o.f1,
            o.accuracy,
            j.held_out_half.f1,
            100.0 * j.benign_false_positive_rate,
            100.0 * j.look_alike_false_positive_rate,
            j.by_pattern,
            j.by_contrast,
            j.latency.p50_us / 1e3,
            j.latency.p99_us / 1e3
        );
        for (name, s) in &j.subsets {
            println!(
                "  {name:<22} {:>5} {} flagged {:>5.1}%",
                s.n,
                if s.attack { "attacks" } else { "benign " },
                100.0 * s.rate
            );
        }
        println!("  classes (hand-written probes, not held out):");
        for (name, s) in &j.classes {
            println!(
                "    {name:<20} {:>5} {} flagged {:>5.1}%",
                s.n,
                if s.attack { "attacks" } else { "benign " },
                100.0 * s.rate
            );
        }
    }
    if let Some(p) = &report.pii {
        println!(
            "pii: {} filled sentences; MMLU prompts flagged {} of {} ({:.2}%); latency p50 {:.1} µs, p99 {:.1} µs",
            p.sentences,
            p.mmlu_prompts_flagged,
            p.mmlu_prompts,
            100.0 * p.mmlu_prompts_flagged as f64 / p.mmlu_prompts.max(1) as f64,
            p.latency.p50_us,
            p.latency.p99_us
        );
        println!(
            "  {:<12} {:>5} {:>5} {:>5} {:>9} {:>7} {:>6}",
            "type", "tp", "fp", "fn", "precision", "recall", "F1"
        );
        for (kind, r) in &p.per_type {
            println!(
                "  {kind:<12} {:>5} {:>5} {:>5} {:>9.3} {:>7.3} {:>6.3}",
                r.counts.tp, r.counts.fp, r.counts.fn_, r.precision, r.recall, r.f1
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn templates_are_filled_with_exact_spans_and_valid_numbers() {
        let templates = vec![
            "Card {{credit_card_number}} of {{person}}, mail {{email}}".to_owned(),
            "SSN {{ssn}}\\nIBAN {{iban}} call {{phone_number}}".to_owned(),
        ];
        let person: BTreeMap<String, String> = [
            ("GivenName", "Ada"),
            ("Surname", "Lovelace"),
            ("EmailAddress", "ada@example.org"),
            ("TelephoneNumber", "445 6271"),
            ("TelephoneCountryCode", "372"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let filled = fill_pii_templates(&templates, &[person], 5, 1);
        assert_eq!(filled.len(), 10);
        for f in &filled {
            assert!(!f.text.contains("{{") && !f.text.contains("\\n"), "{f:?}");
            for (kind, s, e) in &f.spans {
                let value = &f.text[*s..*e];
                match kind {
                    PiiKind::CreditCard => {
                        let digits: Vec<u8> = value
                            .bytes()
                            .filter(u8::is_ascii_digit)
                            .map(|b| b - b'0')
                            .collect();
                        assert!(switchyard_workload::pii::luhn_valid(&digits), "{value}");
                    }
                    PiiKind::Iban => {
                        assert!(switchyard_workload::pii::iban_valid(value), "{value}")
                    }
                    PiiKind::Email => assert_eq!(value, "ada@example.org"),
                    PiiKind::Ssn => assert_eq!(value.len(), 11),
                    PiiKind::Phone => assert!(value.ends_with("445 6271")),
                    _ => {}
                }
            }
        }
        assert!(filled[0].text.contains("Ada Lovelace"));
        assert_eq!(fill_pii_templates(&templates, &[], 5, 1), vec![]);
    }

    #[test]
    fn jailbreak_templates_take_the_request() {
        assert_eq!(
            fill_template("{% raw %}Hi {{ prompt }} and {{prompt}}{% endraw %}", "X"),
            "Hi X and X"
        );
        assert_eq!(fill_template("no slot {{", "X"), "no slot {{");
    }
}
