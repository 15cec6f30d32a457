//! Embedding signals: how close the request is to exemplar sentences.
//!
//! The request's last user turn is embedded once per request, however many embedding
//! signals the policy references ([`crate::Request::embedding`]); each signal compares
//! it with its exemplars by cosine and aggregates by `max` (the nearest exemplar) or
//! `mean`. Exemplar vectors are computed when the configuration is built and kept on
//! disk, keyed by the model, its window and the text, so a restart embeds nothing it
//! has seen.

use crate::contrast::Exemplars;
use crate::signals::{
    BuildContext, FamilyConfig, Request, Signal, SignalFamily, SignalKey, SignalValue,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use switchyard_embed::{Embedder, Precision};
use switchyard_wire::hash::fnv1a;

/// The embedding model shared by every embedding-based signal.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingModelConfig {
    /// A folder with `config.json`, `tokenizer.json` and `model.safetensors` (a
    /// BERT-family model; `scripts/fetch-model.sh` installs all-MiniLM-L6-v2 into
    /// `.cache/models/all-MiniLM-L6-v2`).
    pub path: PathBuf,
    /// Most tokens embedded per request; longer ones keep head and tail (default 128).
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    /// The arithmetic of the model's dense products: `int8` (default; about three
    /// times as fast on one core) or `f32` (the reference numbers).
    #[serde(default)]
    pub precision: Precision,
    /// Where exemplar vectors are kept (default `.cache/embeddings`).
    #[serde(default = "default_cache")]
    pub cache_dir: PathBuf,
    /// The domain head (a `switchyard train domain` output); default: the built-in
    /// 14-category head for all-MiniLM-L6-v2.
    #[serde(default)]
    pub domain_head: Option<PathBuf>,
    /// Threads running the model (default 1: on small machines one thread with the
    /// whole core beats two sharing it).
    #[serde(default = "one")]
    pub threads: usize,
    /// Most queued requests embedded in one forward pass (default 8).
    #[serde(default = "eight")]
    pub max_batch: usize,
    /// Requests that may wait for a worker; beyond it signals fail at once (default 256).
    #[serde(default = "queue")]
    pub queue: usize,
}

impl EmbeddingModelConfig {
    /// The model in `path` with every default.
    pub fn at(path: &Path) -> EmbeddingModelConfig {
        EmbeddingModelConfig {
            path: path.to_path_buf(),
            max_tokens: default_max_tokens(),
            precision: Precision::default(),
            cache_dir: default_cache(),
            domain_head: None,
            threads: one(),
            max_batch: eight(),
            queue: queue(),
        }
    }
}

fn one() -> usize {
    1
}

fn eight() -> usize {
    8
}

fn queue() -> usize {
    256
}

fn default_max_tokens() -> usize {
    switchyard_embed::DEFAULT_MAX_TOKENS
}

fn default_cache() -> PathBuf {
    PathBuf::from(".cache/embeddings")
}

/// How a signal combines its exemplars' similarities.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// The most similar exemplar.
    #[default]
    Max,
    /// The mean over exemplars.
    Mean,
}

/// One embedding signal.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingSignalConfig {
    /// The signal's name, as routes refer to it.
    pub name: String,
    /// Sentences typical of what the signal should match.
    pub exemplars: Vec<String>,
    /// Similarity at or above which the signal holds (default 0.5).
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// `max` (default) or `mean`.
    #[serde(default)]
    pub aggregate: Aggregate,
}

fn default_threshold() -> f64 {
    0.5
}

/// Matches when the request is close enough to the exemplars.
#[derive(Debug)]
pub struct EmbeddingSignal {
    key: SignalKey,
    exemplars: Exemplars,
    threshold: f64,
    aggregate: Aggregate,
}

/// Exemplar vectors on disk: `DIR/<model>-<precision>-<window>/<hash of the
/// text>.f32`, raw little-endian floats.
#[derive(Debug, Clone)]
pub struct ExemplarCache {
    dir: PathBuf,
}

impl ExemplarCache {
    /// The cache of `embedder`'s vectors under `root`.
    pub fn new(root: &Path, embedder: &Embedder) -> ExemplarCache {
        ExemplarCache {
            dir: root.join(embedder.cache_key()),
        }
    }

    fn path(&self, text: &str) -> PathBuf {
        self.dir
            .join(format!("{:016x}.f32", fnv1a(text.as_bytes(), 0)))
    }

    /// The vectors of many texts: cached ones read back, the rest embedded in batches
    /// of similar length (little padding) and kept. `progress` is told how many are
    /// done after each batch.
    pub fn vectors(
        &self,
        embedder: &Embedder,
        texts: &[&str],
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>, String> {
        let mut out: Vec<Option<Vec<f32>>> = texts.iter().map(|t| self.read(embedder, t)).collect();
        let mut missing: Vec<usize> = (0..texts.len()).filter(|i| out[*i].is_none()).collect();
        let mut done = texts.len() - missing.len();
        progress(done);
        missing.sort_by_key(|i| texts[*i].len());
        let writable = std::fs::create_dir_all(&self.dir).is_ok();
        for batch in missing.chunks(8) {
            let chunk: Vec<&str> = batch.iter().map(|i| texts[*i]).collect();
            let vectors = embedder.embed_batch(&chunk).map_err(|e| e.to_string())?;
            for (i, vector) in batch.iter().zip(vectors) {
                if writable {
                    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                    let _ = std::fs::write(self.path(texts[*i]), bytes);
                }
                out[*i] = Some(vector);
            }
            done += batch.len();
            progress(done);
        }
        Ok(out.into_iter().flatten().collect())
    }

    fn read(&self, embedder: &Embedder, text: &str) -> Option<Vec<f32>> {
        let bytes = std::fs::read(self.path(text)).ok()?;
        (bytes.len() == 4 * embedder.dimension()).then(|| {
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
    }
}

impl EmbeddingSignal {
    /// Builds the signal, embedding its exemplars (through the cache).
    pub fn new(
        config: &EmbeddingSignalConfig,
        embedder: &Embedder,
        cache: &ExemplarCache,
    ) -> Result<Self, String> {
        if config.exemplars.is_empty() {
            return Err("give at least one exemplar sentence".to_owned());
        }
        if !(-1.0..=1.0).contains(&config.threshold) {
            return Err(format!(
                "threshold {} is not a cosine in [-1, 1]",
                config.threshold
            ));
        }
        let exemplars = Exemplars::embed(&config.exemplars, "exemplars", embedder, cache)?;
        Ok(EmbeddingSignal {
            key: SignalKey {
                family: SignalFamily::Embedding,
                name: config.name.clone(),
            },
            exemplars,
            threshold: config.threshold,
            aggregate: config.aggregate,
        })
    }
}

impl Signal for EmbeddingSignal {
    fn key(&self) -> &SignalKey {
        &self.key
    }

    fn uses_model(&self) -> bool {
        true
    }

    fn evaluate(&self, request: &Request<'_>) -> SignalValue {
        let query = match request.embedding() {
            Ok(v) => v,
            Err(e) => return SignalValue::failed(format!("no embedding: {e}")),
        };
        let (nearest, text) = self.exemplars.nearest(query);
        let score = match self.aggregate {
            Aggregate::Max => f64::from(nearest),
            Aggregate::Mean => f64::from(self.exemplars.mean(query)),
        };
        SignalValue {
            matched: score >= self.threshold,
            value: score,
            confidence: score.clamp(0.0, 1.0),
            evidence: Some(format!("{score:.3}; nearest: \"{text}\" ({nearest:.3})")),
            label: None,
            cost_ns: 0,
            error: None,
        }
    }
}

impl FamilyConfig for EmbeddingSignalConfig {
    type Signal = EmbeddingSignal;

    fn name(&self) -> &str {
        &self.name
    }

    fn needs_model(&self) -> bool {
        true
    }

    fn build(&self, context: &BuildContext<'_>) -> Result<EmbeddingSignal, String> {
        let (embedder, cache) = context.require_model()?;
        EmbeddingSignal::new(self, embedder, cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::{SignalEngine, SignalFamily, SignalsConfig};
    use switchyard_embed::EmbedderOptions;
    use switchyard_wire::Conversation;

    fn model_dir() -> Option<PathBuf> {
        let dir = std::env::var("SWITCHYARD_MODEL_DIR").ok();
        if dir.is_none() {
            eprintln!("skipped: SWITCHYARD_MODEL_DIR is not set");
        }
        dir.map(PathBuf::from)
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sy-embed-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn coding(aggregate: Aggregate) -> EmbeddingSignalConfig {
        EmbeddingSignalConfig {
            name: "coding".into(),
            exemplars: vec![
                "My program crashes with a segmentation fault".into(),
                "How do I fix this compiler error in my code?".into(),
                "Write a function that parses JSON".into(),
            ],
            threshold: 0.45,
            aggregate,
        }
    }

    fn config(dir: &Path, cache: &Path, signals: Vec<EmbeddingSignalConfig>) -> SignalsConfig {
        SignalsConfig {
            model: Some(EmbeddingModelConfig {
                cache_dir: cache.to_path_buf(),
                ..EmbeddingModelConfig::at(dir)
            }),
            embedding: signals,
            ..SignalsConfig::default()
        }
    }

    #[test]
    fn matches_requests_near_its_exemplars_only() {
        let Some(dir) = model_dir() else { return };
        let cache = temp_dir("match");
        let mut mean = coding(Aggregate::Mean);
        mean.name = "coding_mean".into();
        let engine =
            SignalEngine::build(&config(&dir, &cache, vec![coding(Aggregate::Max), mean])).unwrap();
        let max_id = engine.lookup(SignalFamily::Embedding, "coding").unwrap();
        let mean_id = engine
            .lookup(SignalFamily::Embedding, "coding_mean")
            .unwrap();
        let ask = |prompt: &str| {
            engine.characterize(
                &Conversation::from_prompt("auto", prompt),
                &[max_id, mean_id],
            )
        };
        let code = ask("my C code segfaults when I free the list twice, why?");
        let bread = ask("what is a good recipe for banana bread?");
        let (max, mean) = (code.get(max_id).unwrap(), code.get(mean_id).unwrap());
        assert!(max.matched, "{max:?}");
        assert!(
            max.evidence
                .as_deref()
                .unwrap()
                .contains("segmentation fault"),
            "{max:?}"
        );
        assert!(mean.value <= max.value);
        assert!(!bread.matched(max_id), "{:?}", bread.get(max_id));
        assert!(bread.get(max_id).unwrap().value < 0.2);
        assert!(engine.needs_embedding(&[max_id]));
        let _ = std::fs::remove_dir_all(&cache);
    }

    #[test]
    fn one_embedding_per_request_shared_by_every_signal() {
        let Some(dir) = model_dir() else { return };
        let embedder = Embedder::load(&dir, EmbedderOptions::default()).unwrap();
        let conversation = Conversation::from_prompt("auto", "fix my rust borrow checker error");
        let request = Request::new(&conversation, Some(&embedder));
        assert!(!request.embedded());
        let first = request.embedding().unwrap().as_ptr();
        let second = request.embedding().unwrap().as_ptr();
        assert!(request.embedded());
        assert_eq!(first, second, "the vector is computed once and reused");
        let none = Request::new(&conversation, None);
        assert!(none.embedding().unwrap_err().contains("signals.model"));
    }

    #[test]
    fn the_embedding_runs_on_the_workers_and_obeys_deadlines() {
        let Some(dir) = model_dir() else { return };
        let cache = temp_dir("deadline");
        let mut c = config(&dir, &cache, vec![coding(Aggregate::Max)]);
        let engine = SignalEngine::build(&c).unwrap();
        let id = engine.lookup(SignalFamily::Embedding, "coding").unwrap();
        let conv = Conversation::from_prompt("auto", "my C code segfaults, why?");
        let on_time = engine.characterize(&conv, &[id]);
        assert!(on_time.matched(id), "{:?}", on_time.get(id));
        // Concurrent requests share the workers and all get their own answer.
        let engine = std::sync::Arc::new(engine);
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let engine = std::sync::Arc::clone(&engine);
                std::thread::spawn(move || {
                    let prompt = if i % 2 == 0 {
                        "fix this compiler error in my code"
                    } else {
                        "a recipe for banana bread"
                    };
                    let conv = Conversation::from_prompt("auto", prompt);
                    (i, engine.characterize(&conv, &[id]).matched(id))
                })
            })
            .collect();
        for h in handles {
            let (i, matched) = h.join().unwrap();
            assert_eq!(matched, i % 2 == 0, "request {i}");
        }
        c.limits.insert(
            "embedding.coding".into(),
            crate::SignalLimit {
                timeout_ms: Some(0),
                on_error: Some(crate::OnError::Matched),
            },
        );
        let engine = SignalEngine::build(&c).unwrap();
        let late = engine.characterize(
            &Conversation::from_prompt("auto", "a recipe for banana bread"),
            &[id],
        );
        let v = late.get(id).unwrap();
        assert!(v.matched && v.error.is_some(), "{v:?}");
        let _ = std::fs::remove_dir_all(&cache);
    }

    #[test]
    fn exemplar_vectors_are_read_back_from_the_cache() {
        let Some(dir) = model_dir() else { return };
        let cache_root = temp_dir("cache");
        let embedder = Embedder::load(&dir, EmbedderOptions::default()).unwrap();
        let cache = ExemplarCache::new(&cache_root, &embedder);
        let signal = coding(Aggregate::Max);
        EmbeddingSignal::new(&signal, &embedder, &cache).unwrap();
        let files = std::fs::read_dir(&cache.dir).unwrap().count();
        assert_eq!(files, 3);
        // Replace one exemplar's cached vector with that of an unrelated sentence: the
        // next build reads it, so that sentence now matches.
        let bread = embedder
            .embed("what is a good recipe for banana bread?")
            .unwrap();
        let bytes: Vec<u8> = bread.iter().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(cache.path(&signal.exemplars[0]), bytes).unwrap();
        let rebuilt = EmbeddingSignal::new(&signal, &embedder, &cache).unwrap();
        let conversation =
            Conversation::from_prompt("auto", "what is a good recipe for banana bread?");
        let value = rebuilt.evaluate(&Request::new(&conversation, Some(&embedder)));
        assert!(value.value > 0.99, "{value:?}");
        let _ = std::fs::remove_dir_all(&cache_root);
    }

    #[test]
    fn bad_definitions_are_refused_with_the_reason() {
        let missing = SignalsConfig {
            embedding: vec![coding(Aggregate::Max)],
            ..SignalsConfig::default()
        };
        let err = SignalEngine::build(&missing).unwrap_err();
        assert!(err.reason.contains("signals.model"), "{err}");
        let nowhere = config(
            Path::new("/nonexistent/model"),
            Path::new("/tmp"),
            vec![coding(Aggregate::Max)],
        );
        let err = SignalEngine::build(&nowhere).unwrap_err();
        assert!(
            err.reason.contains("/nonexistent/model/config.json"),
            "{err}"
        );
        let Some(dir) = model_dir() else { return };
        let cache = temp_dir("bad");
        for (bad, why) in [
            (
                EmbeddingSignalConfig {
                    exemplars: vec![],
                    ..coding(Aggregate::Max)
                },
                "at least one exemplar",
            ),
            (
                EmbeddingSignalConfig {
                    threshold: 1.5,
                    ..coding(Aggregate::Max)
                },
                "not a cosine",
            ),
            (
                EmbeddingSignalConfig {
                    exemplars: vec!["  ".into()],
                    ..coding(Aggregate::Max)
                },
                "empty",
            ),
        ] {
            let err = SignalEngine::build(&config(&dir, &cache, vec![bad])).unwrap_err();
            assert!(err.reason.contains(why), "{err}");
        }
        let _ = std::fs::remove_dir_all(&cache);
    }
}
