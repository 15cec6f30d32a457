//! `switchyard eval cache`: a prompt file replayed through the semantic cache's
//! in-memory store, once per similarity threshold, so that a threshold can be picked
//! on one's own traffic.
//!
//! Each row is `{"prompt": …, "group": …}`: prompts of one group ask for the same
//! answer (a question and its paraphrases); any other pair does not. In file order,
//! each prompt is looked up (exact question first, then by meaning at the threshold)
//! and, on a miss, stored with its group as its answer. A hit whose stored group is
//! not the prompt's own is a **false hit**: a client would have been given another
//! question's answer.

use crate::train::{ModelArgs, embed_all};
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use serde::Serialize;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;
use switchyard_router::cache::{CacheStore, CachedAnswer, Key, MemoryStore, normalized};
use switchyard_workload::dataset::read_jsonl;

/// Arguments of `eval cache`.
#[derive(Args)]
pub struct CacheArgs {
    /// The prompt file (JSON lines with `prompt` and `group`);
    /// `scripts/cache-replay.py` makes one from the shared data.
    #[arg(long)]
    pub data: PathBuf,
    /// Similarity thresholds to replay at.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.8,0.85,0.9,0.92,0.95,0.97,0.99"
    )]
    pub thresholds: Vec<f32>,
    /// The embedding model.
    #[command(flatten)]
    pub embedding: ModelArgs,
    /// Where embeddings are kept between runs.
    #[arg(long, default_value = ".cache/embeddings")]
    pub cache_dir: PathBuf,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// One threshold's replay.
#[derive(Debug, Serialize, PartialEq)]
pub struct Replay {
    /// The similarity threshold.
    pub threshold: f32,
    /// Prompts answered from the cache, of all prompts.
    pub hit_rate: f64,
    /// Hits that served another group's answer, of all hits.
    pub false_hit_rate: f64,
    /// Prompts whose group was asked before that were answered (rightly) from the
    /// cache, of those prompts.
    pub repeat_recall: f64,
    /// Counts behind the rates.
    pub hits: usize,
    /// Wrong hits.
    pub false_hits: usize,
    /// Prompts whose group was asked before.
    pub repeats: usize,
}

/// Replays `rows` (question, group, vector) at `threshold`.
pub fn replay(rows: &[(String, String, Vec<f32>)], threshold: f32) -> Replay {
    let store = MemoryStore::new(rows.len().max(1), usize::MAX);
    let ttl = Duration::from_secs(u64::from(u32::MAX));
    let mut seen: HashSet<&str> = HashSet::new();
    let (mut hits, mut false_hits, mut repeats, mut right_repeats) = (0, 0, 0, 0);
    for (question, group, vector) in rows {
        let repeat = !seen.insert(group.as_str());
        repeats += usize::from(repeat);
        let key = Key {
            partition: 0,
            question,
            vector: Some(vector),
        };
        match store.lookup(&key, Some(threshold)) {
            Some(hit) => {
                hits += 1;
                if hit.answer.text == *group {
                    right_repeats += usize::from(repeat);
                } else {
                    false_hits += 1;
                }
            }
            None => {
                let answer = CachedAnswer {
                    text: group.clone(),
                    usage: None,
                };
                store.insert(&key, answer, ttl);
            }
        }
    }
    let share = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Replay {
        threshold,
        hit_rate: share(hits, rows.len()),
        false_hit_rate: share(false_hits, hits),
        repeat_recall: share(right_repeats, repeats),
        hits,
        false_hits,
        repeats,
    }
}

/// Runs `eval cache`.
pub fn run(args: &CacheArgs) -> Result<()> {
    if let Some(t) = args.thresholds.iter().find(|t| !(**t > 0.0 && **t <= 1.0)) {
        bail!("--thresholds: {t} is not in (0, 1]");
    }
    let rows = read_jsonl(&args.data).map_err(|e| anyhow!("{e}"))?;
    let mut prompts = Vec::with_capacity(rows.len());
    for (line, row) in &rows {
        let at = || format!("{}:{line}", args.data.display());
        let prompt = row
            .get("prompt")
            .and_then(|p| p.as_str())
            .ok_or_else(|| anyhow!("{}: no string `prompt`", at()))?;
        let group = match row.get("group") {
            Some(serde_json::Value::String(g)) => g.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => bail!(
                "{}: no `group` (a string or number shared by prompts that ask for the same answer)",
                at()
            ),
        };
        prompts.push((normalized(prompt), group));
    }
    if prompts.is_empty() {
        bail!("{}: no rows", args.data.display());
    }
    let embedder = args.embedding.load()?;
    let texts: Vec<&str> = prompts.iter().map(|(p, _)| p.as_str()).collect();
    let vectors = embed_all(&embedder, &args.cache_dir, &texts)?;
    let rows: Vec<(String, String, Vec<f32>)> = prompts
        .into_iter()
        .zip(vectors)
        .map(|((p, g), v)| (p, g, v))
        .collect();
    let groups: HashSet<&str> = rows.iter().map(|(_, g, _)| g.as_str()).collect();
    println!(
        "{}: {} prompts in {} groups, replayed in file order",
        args.data.display(),
        rows.len(),
        groups.len()
    );
    println!("threshold  hit rate  false-hit rate  repeats answered  (hits, false hits, repeats)");
    let mut results = Vec::new();
    for &threshold in &args.thresholds {
        let r = replay(&rows, threshold);
        println!(
            "{:>9.3}  {:>7.1}%  {:>13.2}%  {:>15.1}%  ({}, {}, {})",
            r.threshold,
            100.0 * r.hit_rate,
            100.0 * r.false_hit_rate,
            100.0 * r.repeat_recall,
            r.hits,
            r.false_hits,
            r.repeats
        );
        results.push(r);
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&results)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(q: &str, g: &str, v: &[f32]) -> (String, String, Vec<f32>) {
        (q.to_owned(), g.to_owned(), v.to_vec())
    }

    #[test]
    fn hits_false_hits_and_repeats_are_counted_per_threshold() {
        let rows = vec![
            row("capital of france", "a", &[1.0, 0.0, 0.0]),
            row("france capital city", "a", &[0.96, 0.28, 0.0]),
            row("capital of spain", "b", &[0.9, 0.0, 0.436]),
            row("capital of france", "a", &[1.0, 0.0, 0.0]),
        ];
        // Strict: only the exact repeat hits.
        let strict = replay(&rows, 0.99);
        assert_eq!((strict.hits, strict.false_hits, strict.repeats), (1, 0, 2));
        assert_eq!(strict.repeat_recall, 0.5);
        // Loose: the paraphrase hits rightly, and Spain takes France's answer.
        let loose = replay(&rows, 0.85);
        assert_eq!((loose.hits, loose.false_hits), (3, 1));
        assert_eq!(loose.repeat_recall, 1.0);
        assert!((loose.false_hit_rate - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(loose.hit_rate, 0.75);
    }
}
