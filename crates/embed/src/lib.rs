//! Sentence embeddings on the CPU.
//!
//! This crate owns loading a BERT-family encoder from a local folder
//! (`config.json`, `tokenizer.json`, `model.safetensors`), turning text into one
//! L2-normalized vector (mean pooling over the attention mask, as
//! sentence-transformers does), and cosine similarity. Two forward passes: its own
//! with int8 products (the default, [`Precision::Int8`]: `int8` holds the quantized
//! layer and its kernels, `attention` the blocked f32 attention, `simd` the run-time
//! dispatch and vector math) and candle's in f32 ([`Precision::F32`]). It fetches nothing: the default
//! model (all-MiniLM-L6-v2) is installed by `scripts/fetch-model.sh`. It knows nothing
//! of signals or routing; the `workload` crate builds signals on it.
//!
//! The shipped `tokenizer.json` pads and truncates to 128 tokens; both are turned off
//! here, and long inputs follow one documented rule instead ([`Embedder::window`]):
//! an input over `max_tokens` keeps its first `max_tokens − tail` tokens and its last
//! `tail` tokens (`tail = max_tokens/4`), so the question at the end of a long prompt
//! still counts, and the cost is bounded whatever the prompt's length.

mod attention;
mod encoder;
mod int8;
mod model;
mod simd;

pub use model::{DEFAULT_MAX_TOKENS, EmbedError, Embedder, EmbedderOptions, Precision, strip_art};

/// Cosine similarity of two vectors (the dot product when both are normalized).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na.sqrt() * nb.sqrt())
}

#[cfg(test)]
mod tests {
    use super::cosine;

    #[test]
    fn cosine_is_scale_free_and_bounded() {
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 3.0]).abs() < 1e-6);
        assert!((cosine(&[1.0, 1.0], &[-1.0, -1.0]) + 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }
}
