//! The encoder: tokenizer and BERT weights loaded from a folder, run with candle.

use crate::encoder::Int8Bert;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use tokenizers::Tokenizer;

/// Tokens embedded per input by default: with int8 products and AVX-512 VNNI on one
/// core, 64 tokens take about 4.3 ms and a full window of 128 about 10 ms, however
/// long the input.
pub const DEFAULT_MAX_TOKENS: usize = 128;

/// How the encoder treats its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbedderOptions {
    /// Most tokens embedded per input (special tokens included); longer inputs keep
    /// their head and tail (see [`Embedder::window`]). At most the model's position
    /// count.
    pub max_tokens: usize,
    /// The arithmetic of the dense products.
    pub precision: Precision,
}

impl Default for EmbedderOptions {
    fn default() -> Self {
        EmbedderOptions {
            max_tokens: DEFAULT_MAX_TOKENS,
            precision: Precision::default(),
        }
    }
}

/// The arithmetic of the encoder's dense products.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Weights in 7 bits per output row, activations in 8 bits per token, sums in
    /// 32-bit integers; attention, norms and pooling in f32. About three times as
    /// fast as `f32` on one core; a sentence's vector stays within a cosine of 0.997
    /// of the f32 one.
    #[default]
    Int8,
    /// Every product in f32 (candle): the reference numbers.
    F32,
}

impl Precision {
    /// The name used in configuration files and cache folders.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Int8 => "int8",
            Precision::F32 => "f32",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Precision, String> {
        [Precision::Int8, Precision::F32]
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown precision {s:?}: use int8 or f32"))
    }
}

/// The forward pass in use.
enum Encoder {
    F32(BertModel),
    Int8(Int8Bert),
}

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A file is missing or unreadable.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The model or tokenizer failed on an input.
    #[error("embedding failed: {0}")]
    Run(String),
}

fn run_error(e: impl std::fmt::Display) -> EmbedError {
    EmbedError::Run(e.to_string())
}

/// A loaded sentence encoder.
pub struct Embedder {
    encoder: Encoder,
    tokenizer: Tokenizer,
    device: Device,
    max_tokens: usize,
    dimension: usize,
    name: String,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("name", &self.name)
            .field("dimension", &self.dimension)
            .field("max_tokens", &self.max_tokens)
            .field("precision", &self.precision())
            .finish()
    }
}

impl Embedder {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path, options: EmbedderOptions) -> Result<Embedder, EmbedError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|e| EmbedError::File {
                path: path.clone(),
                reason: format!("{e} (scripts/fetch-model.sh installs the default model)"),
            })
        };
        let file_error = |name: &str, reason: String| EmbedError::File {
            path: dir.join(name),
            reason,
        };
        let config: Config = serde_json::from_slice(&read("config.json")?)
            .map_err(|e| file_error("config.json", format!("not a BERT config: {e}")))?;
        let mut tokenizer = Tokenizer::from_bytes(read("tokenizer.json")?)
            .map_err(|e| file_error("tokenizer.json", e.to_string()))?;
        // The shipped file pads and truncates to 128; windows are applied here instead.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| file_error("tokenizer.json", e.to_string()))?;
        // Before reading and quantizing the weights: a bad window fails at once.
        let positions = config.max_position_embeddings;
        if options.max_tokens < 8 || options.max_tokens > positions {
            return Err(file_error(
                "config.json",
                format!(
                    "max_tokens {} must be between 8 and the model's {positions} positions",
                    options.max_tokens
                ),
            ));
        }
        let device = Device::Cpu;
        let weights = read("model.safetensors")?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|e| file_error("model.safetensors", e.to_string()))?;
        let fit_error = |e: candle_core::Error| {
            file_error(
                "model.safetensors",
                format!("does not fit config.json: {e}"),
            )
        };
        let encoder = match options.precision {
            Precision::F32 => Encoder::F32(BertModel::load(vb, &config).map_err(fit_error)?),
            Precision::Int8 => Encoder::Int8(Int8Bert::load(&vb, &config).map_err(fit_error)?),
        };
        Ok(Embedder {
            encoder,
            tokenizer,
            device,
            max_tokens: options.max_tokens,
            dimension: config.hidden_size,
            name: dir.file_name().map_or_else(
                || dir.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
        })
    }

    /// Length of the vectors.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// The model's name (its folder's name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Most tokens embedded per input.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The arithmetic of the dense products.
    pub fn precision(&self) -> Precision {
        match self.encoder {
            Encoder::F32(_) => Precision::F32,
            Encoder::Int8(_) => Precision::Int8,
        }
    }

    /// What the vectors depend on besides the text: model, precision (with the
    /// revision of its arithmetic) and window: a folder name for cached vectors.
    pub fn cache_key(&self) -> String {
        let precision = match self.precision() {
            // Bump when the int8 arithmetic changes, so no cache serves old vectors.
            Precision::Int8 => "int8.1",
            Precision::F32 => "f32",
        };
        format!("{}-{precision}-{}", self.name, self.max_tokens)
    }

    /// The instruction set the int8 products use (`f32` for the f32 encoder).
    pub fn instruction_set(&self) -> &'static str {
        match &self.encoder {
            Encoder::F32(_) => "f32",
            Encoder::Int8(model) => model.level(),
        }
    }

    /// The token ids embedded for an input of `ids` (special tokens included): all of
    /// them when they fit, else the first `max − max/4` and the last `max/4`, the
    /// final `[SEP]` kept last.
    pub fn window(ids: &[u32], max: usize) -> Vec<u32> {
        if ids.len() <= max {
            return ids.to_vec();
        }
        let tail = max / 4;
        let mut out = Vec::with_capacity(max);
        out.extend_from_slice(&ids[..max - tail]);
        out.extend_from_slice(&ids[ids.len() - tail..]);
        out
    }

    /// The token ids of `text`, special tokens included. A text far longer than the
    /// window (over 32 bytes per window token) is tokenized only where the window can
    /// reach: its first 16 and last 8 bytes per window token, so a 1 MB input costs
    /// what a 10 KB one does.
    fn ids(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        let text = strip_art(text);
        let text = text.as_ref();
        let head_bytes = 16 * self.max_tokens;
        let tail_bytes = 8 * self.max_tokens;
        let encode = |t: &str| {
            self.tokenizer
                .encode(t, true)
                .map(|e| e.get_ids().to_vec())
                .map_err(run_error)
        };
        if text.len() <= 32 * self.max_tokens {
            return encode(text);
        }
        let mut head_end = head_bytes;
        while !text.is_char_boundary(head_end) {
            head_end -= 1;
        }
        let mut tail_start = text.len() - tail_bytes;
        while !text.is_char_boundary(tail_start) {
            tail_start += 1;
        }
        let head = encode(&text[..head_end])?;
        let tail = encode(&text[tail_start..])?;
        // [CLS] head… (its [SEP] dropped) …tail [SEP] (its [CLS] dropped).
        let mut ids = head[..head.len().saturating_sub(1)].to_vec();
        ids.extend_from_slice(tail.get(1..).unwrap_or_default());
        Ok(ids)
    }

    /// How many tokens of `text` the model reads: its window, special tokens included.
    pub fn tokens(&self, text: &str) -> Result<usize, EmbedError> {
        Ok(self.ids(text)?.len().min(self.max_tokens))
    }

    /// The normalized embedding of one text.
    pub fn embed(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let mut out = self.embed_batch(&[text])?;
        out.pop().ok_or_else(|| EmbedError::Run("no output".into()))
    }

    /// Normalized embeddings of several texts, run as one padded batch.
    pub fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let mut rows = Vec::with_capacity(texts.len());
        for text in texts {
            rows.push(Embedder::window(&self.ids(text)?, self.max_tokens));
        }
        // A tokenizer always adds [CLS] and [SEP]; guard against one that does not
        // (no tokens would pool to a zero or NaN vector).
        if let Some(i) = rows.iter().position(Vec::is_empty) {
            return Err(EmbedError::Run(format!("input {i} has no tokens")));
        }
        match &self.encoder {
            Encoder::Int8(model) => Ok(model.embed(&rows)),
            Encoder::F32(model) => self.embed_f32(model, &rows),
        }
    }

    /// Candle's f32 forward pass over `rows`, padded to the longest.
    fn embed_f32(&self, model: &BertModel, rows: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let width = rows.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let mut ids = Vec::with_capacity(rows.len() * width);
        let mut mask = Vec::with_capacity(rows.len() * width);
        for row in rows {
            ids.extend_from_slice(row);
            ids.extend(std::iter::repeat_n(0u32, width - row.len()));
            mask.extend(std::iter::repeat_n(1u32, row.len()));
            mask.extend(std::iter::repeat_n(0u32, width - row.len()));
        }
        let shape = (rows.len(), width);
        let ids = Tensor::from_vec(ids, shape, &self.device).map_err(run_error)?;
        let mask = Tensor::from_vec(mask, shape, &self.device).map_err(run_error)?;
        let types = ids.zeros_like().map_err(run_error)?;
        let hidden = model
            .forward(&ids, &types, Some(&mask))
            .map_err(run_error)?;
        // Mean over real tokens only: padding must not dilute the vector.
        let mask = mask
            .to_dtype(DType::F32)
            .map_err(run_error)?
            .unsqueeze(2)
            .map_err(run_error)?;
        let summed = hidden
            .broadcast_mul(&mask)
            .and_then(|t| t.sum(1))
            .map_err(run_error)?;
        let counts = mask.sum(1).map_err(run_error)?;
        let mean = summed.broadcast_div(&counts).map_err(run_error)?;
        let norms = mean
            .sqr()
            .and_then(|t| t.sum_keepdim(1))
            .and_then(|t| t.sqrt())
            .map_err(run_error)?;
        let normalized = mean.broadcast_div(&norms).map_err(run_error)?;
        normalized.to_vec2::<f32>().map_err(run_error)
    }
}

/// The text without box-drawing, block and shape characters (banner art), whose
/// tokens would fill the window and hide the words; the text itself when it has none.
pub fn strip_art(text: &str) -> Cow<'_, str> {
    let art = |c: char| ('\u{2500}'..='\u{25FF}').contains(&c);
    if !text.contains(art) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if art(c) || c.is_whitespace() {
            if !space && !out.is_empty() {
                out.push(' ');
            }
            space = true;
        } else {
            out.push(c);
            space = false;
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::{Cow, Embedder, strip_art};

    #[test]
    fn banner_art_is_dropped_and_plain_text_is_not_copied() {
        assert_eq!(strip_art("╔══╗\n║ hi  there ║\n╚══╝"), "hi there ");
        assert!(matches!(strip_art("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn long_inputs_keep_head_and_tail() {
        let ids: Vec<u32> = (0..1000).collect();
        let w = Embedder::window(&ids, 256);
        assert_eq!(w.len(), 256);
        assert_eq!(&w[..192], &ids[..192]);
        assert_eq!(&w[192..], &ids[1000 - 64..]);
        assert_eq!(*w.last().unwrap(), 999, "the closing token stays last");
        assert_eq!(Embedder::window(&ids[..10], 256), ids[..10].to_vec());
    }
}
