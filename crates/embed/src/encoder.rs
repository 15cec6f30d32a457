//! The BERT forward pass with int8 products ([`crate::int8::Linear8`]) and f32
//! everywhere else (embeddings, attention, layer norm, GELU, pooling). Sequences of a
//! batch are not padded: their tokens are stacked as rows for the products, and
//! attention runs per sequence, so a short input never pays for a long neighbour.

use crate::attention;
use crate::int8::{Linear8, Quantized};
use crate::simd::{self, Level, Pass};
use candle_core::Tensor;
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct};

/// Layer-norm parameters.
#[derive(Debug)]
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

/// One transformer layer.
#[derive(Debug)]
struct Layer {
    /// Query, key and value in one product (`3·hidden` outputs).
    qkv: Linear8,
    attention_out: Linear8,
    attention_norm: Norm,
    up: Linear8,
    down: Linear8,
    output_norm: Norm,
}

/// A BERT encoder whose dense products run in int8.
#[derive(Debug)]
pub(crate) struct Int8Bert {
    level: Level,
    hidden: usize,
    heads: usize,
    eps: f32,
    /// `vocab × hidden`.
    words: Vec<f32>,
    /// `positions × hidden`.
    positions: Vec<f32>,
    /// Token type 0 (every input here is one segment).
    segment: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
}

/// Buffers reused across layers of one forward pass.
#[derive(Default)]
struct Scratch {
    quantized: Quantized,
    qkv: Vec<f32>,
    context: Vec<f32>,
    projected: Vec<f32>,
    up: Vec<f32>,
    attention: attention::Buffers,
}

fn flat(t: Tensor) -> candle_core::Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

impl Int8Bert {
    /// Reads the weights of a BERT checkpoint (with or without a `bert.` prefix) and
    /// quantizes its dense layers.
    pub(crate) fn load(vb: &VarBuilder, config: &Config) -> candle_core::Result<Int8Bert> {
        if config.hidden_act != HiddenAct::Gelu {
            candle_core::bail!("the int8 encoder runs GELU (erf) models; use precision f32");
        }
        let h = config.hidden_size;
        let heads = config.num_attention_heads;
        if heads == 0 || !h.is_multiple_of(heads) {
            candle_core::bail!("hidden_size {h} is not a multiple of {heads} heads");
        }
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb.clone()
        };
        let get = |name: &str, shape: &[usize]| flat(vb.get(shape, name)?);
        let norm = |prefix: &str| -> candle_core::Result<Norm> {
            Ok(Norm {
                gamma: get(&format!("{prefix}.weight"), &[h])?,
                beta: get(&format!("{prefix}.bias"), &[h])?,
            })
        };
        let linear =
            |prefix: &str, outputs: usize, inputs: usize| -> candle_core::Result<Linear8> {
                let w = get(&format!("{prefix}.weight"), &[outputs, inputs])?;
                let b = get(&format!("{prefix}.bias"), &[outputs])?;
                Ok(Linear8::new(&w, b, outputs, inputs))
            };
        let inter = config.intermediate_size;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let mut qkv_w = Vec::with_capacity(3 * h * h);
            let mut qkv_b = Vec::with_capacity(3 * h);
            for part in ["query", "key", "value"] {
                qkv_w.extend(get(&format!("{p}.attention.self.{part}.weight"), &[h, h])?);
                qkv_b.extend(get(&format!("{p}.attention.self.{part}.bias"), &[h])?);
            }
            layers.push(Layer {
                qkv: Linear8::new(&qkv_w, qkv_b, 3 * h, h),
                attention_out: linear(&format!("{p}.attention.output.dense"), h, h)?,
                attention_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                up: linear(&format!("{p}.intermediate.dense"), inter, h)?,
                down: linear(&format!("{p}.output.dense"), h, inter)?,
                output_norm: norm(&format!("{p}.output.LayerNorm"))?,
            });
        }
        let segment = get(
            "embeddings.token_type_embeddings.weight",
            &[config.type_vocab_size, h],
        )?;
        Ok(Int8Bert {
            level: Level::detect(),
            hidden: h,
            heads,
            eps: config.layer_norm_eps as f32,
            words: get("embeddings.word_embeddings.weight", &[config.vocab_size, h])?,
            positions: get(
                "embeddings.position_embeddings.weight",
                &[config.max_position_embeddings, h],
            )?,
            segment: segment[..h].to_vec(),
            embedding_norm: norm("embeddings.LayerNorm")?,
            layers,
        })
    }

    /// The instruction set the products run with.
    pub(crate) fn level(&self) -> &'static str {
        self.level.name()
    }

    /// Mean-pooled, L2-normalized vectors of token-id sequences (each non-empty and
    /// within the position count, which the caller's window guarantees).
    pub(crate) fn embed(&self, sequences: &[Vec<u32>]) -> Vec<Vec<f32>> {
        self.level.vectorize(Forward {
            model: self,
            sequences,
        })
    }

    #[inline(always)]
    fn forward(&self, level: Level, sequences: &[Vec<u32>]) -> Vec<Vec<f32>> {
        let h = self.hidden;
        let total: usize = sequences.iter().map(Vec::len).sum();
        let mut x = vec![0.0f32; total * h];
        let vocab = self.words.len() / h;
        let mut row = 0;
        for sequence in sequences {
            for (position, &id) in sequence.iter().enumerate() {
                // An id past the table (a tokenizer that does not fit the model) reads
                // the unknown-ish row 0 rather than panicking.
                let id = if (id as usize) < vocab {
                    id as usize
                } else {
                    0
                };
                let out = &mut x[row * h..(row + 1) * h];
                let word = &self.words[id * h..(id + 1) * h];
                let pos = &self.positions[position * h..(position + 1) * h];
                for (((o, w), p), s) in out.iter_mut().zip(word).zip(pos).zip(&self.segment) {
                    *o = w + p + s;
                }
                row += 1;
            }
        }
        let mut scratch = Scratch::default();
        for row in x.chunks_exact_mut(h) {
            simd::norm_at(
                level,
                row,
                &self.embedding_norm.gamma,
                &self.embedding_norm.beta,
                self.eps,
            );
        }
        for layer in &self.layers {
            self.layer(level, layer, sequences, &mut x, &mut scratch);
        }
        let mut out = Vec::with_capacity(sequences.len());
        let mut start = 0;
        for sequence in sequences {
            let rows = &x[start * h..(start + sequence.len()) * h];
            start += sequence.len();
            let mut mean = vec![0.0f32; h];
            for row in rows.chunks_exact(h) {
                for (m, v) in mean.iter_mut().zip(row) {
                    *m += v;
                }
            }
            let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                mean.iter_mut().for_each(|v| *v /= norm);
            }
            out.push(mean);
        }
        out
    }

    #[inline(always)]
    fn layer(
        &self,
        level: Level,
        layer: &Layer,
        sequences: &[Vec<u32>],
        x: &mut [f32],
        s: &mut Scratch,
    ) {
        let h = self.hidden;
        let rows = x.len() / h;
        s.qkv.resize(rows * 3 * h, 0.0);
        layer.qkv.forward(level, x, &mut s.qkv, &mut s.quantized);
        s.context.resize(rows * h, 0.0);
        let mut start = 0;
        for sequence in sequences {
            let rows = start..start + sequence.len();
            attention::attend(
                level,
                &s.qkv[rows.start * 3 * h..rows.end * 3 * h],
                &mut s.context[rows.start * h..rows.end * h],
                h,
                self.heads,
                &mut s.attention,
            );
            start = rows.end;
        }
        s.projected.resize(rows * h, 0.0);
        layer
            .attention_out
            .forward(level, &s.context, &mut s.projected, &mut s.quantized);
        // Into `x` directly (the sum is the same either way round): no copy back.
        let norm = &layer.attention_norm;
        for (x, p) in x.chunks_exact_mut(h).zip(s.projected.chunks_exact(h)) {
            simd::add_norm_at(level, x, p, &norm.gamma, &norm.beta, self.eps);
        }
        s.up.resize(rows * layer.up.outputs(), 0.0);
        layer.up.forward(level, x, &mut s.up, &mut s.quantized);
        simd::gelu(&mut s.up);
        layer
            .down
            .forward(level, &s.up, &mut s.projected, &mut s.quantized);
        let norm = &layer.output_norm;
        for (x, p) in x.chunks_exact_mut(h).zip(s.projected.chunks_exact(h)) {
            simd::add_norm_at(level, x, p, &norm.gamma, &norm.beta, self.eps);
        }
    }
}

/// One forward pass, run at the encoder's [`Level`].
struct Forward<'a> {
    model: &'a Int8Bert,
    sequences: &'a [Vec<u32>],
}

impl Pass for Forward<'_> {
    type Output = Vec<Vec<f32>>;

    #[inline(always)]
    fn run(self, level: Level) -> Vec<Vec<f32>> {
        self.model.forward(level, self.sequences)
    }
}
