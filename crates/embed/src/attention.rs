//! Self-attention of one sequence in f32, blocked so that each loaded key or value
//! vector serves four queries: scores for 4 queries × 32 keys and context for
//! 4 queries × 32 dimensions stay in eight registers while the inner dimension runs
//! (eight independent sums hide the multiply-add latency that four could not).

use crate::simd::{self, Level};
use std::arch::x86_64::__m512;

/// Queries per block.
const QUERIES: usize = 4;
/// Keys (or head dimensions) per block: two 512-bit vectors of f32.
const WIDTH: usize = 32;

/// Buffers reused across heads, layers and calls.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    /// One head's keys transposed: `dim` rows × `WIDTH`-padded key count.
    keys: Vec<f32>,
    /// One head's values: rows × `WIDTH`-padded `dim`, packed so the query blocks
    /// reread them from the nearest cache (in place, a row apart, they would not).
    values: Vec<f32>,
    /// Scores (then unnormalized probabilities) of one block of queries.
    scores: Vec<f32>,
}

/// Multi-head self-attention: `qkv` holds `n` rows of `[q | k | v]` (`3·hidden`
/// wide); the heads' outputs go into `context` (`n` rows × `hidden`).
#[inline(always)]
pub(crate) fn attend(
    level: Level,
    qkv: &[f32],
    context: &mut [f32],
    hidden: usize,
    heads: usize,
    b: &mut Buffers,
) {
    let simd = match level {
        Level::Avx512(simd, _) => Some(simd),
        Level::Avx2(_) | Level::Baseline => None,
    };
    let n = qkv.len() / (3 * hidden);
    let dim = hidden / heads;
    let scale = 1.0 / (dim as f32).sqrt();
    let n_pad = n.div_ceil(WIDTH) * WIDTH;
    let dim_pad = dim.div_ceil(WIDTH) * WIDTH;
    let stride = 3 * hidden;
    // A query row in place in `qkv`.
    let query = |i: usize, q0: usize| &qkv[i * stride + q0..i * stride + q0 + dim];
    for head in 0..heads {
        let (q0, k0, v0) = (head * dim, hidden + head * dim, 2 * hidden + head * dim);
        b.keys.clear();
        b.keys.resize(dim * n_pad, 0.0);
        b.values.clear();
        b.values.resize(n * dim_pad, 0.0);
        for (j, row) in qkv.chunks_exact(stride).enumerate() {
            for (t, k) in row[k0..k0 + dim].iter().enumerate() {
                b.keys[t * n_pad + j] = *k;
            }
            b.values[j * dim_pad..j * dim_pad + dim].copy_from_slice(&row[v0..v0 + dim]);
        }
        b.scores.clear();
        b.scores.resize(QUERIES * n_pad, 0.0);
        for i0 in (0..n).step_by(QUERIES) {
            // Past the last query, a block repeats it (those rows are not written).
            let weights: [&[f32]; QUERIES] =
                std::array::from_fn(|r| query((i0 + r).min(n - 1), q0));
            for j0 in (0..n_pad).step_by(WIDTH) {
                // keys[t][j0..j0 + WIDTH] for each t: a strided column of vectors.
                let keys = Strided {
                    data: &b.keys[j0..],
                    stride: n_pad,
                };
                let acc = match simd {
                    Some(simd) => block_avx512(simd, weights, keys),
                    None => block_portable(weights, keys),
                };
                for (r, acc) in acc.into_iter().enumerate() {
                    store(&mut b.scores[r * n_pad + j0..], acc);
                }
            }
            // The scale goes into the exponent and the normalization into the
            // context: probabilities are never written out.
            let rows = QUERIES.min(n - i0);
            let mut inverse = [0.0f32; QUERIES];
            for (r, inverse) in inverse.iter_mut().enumerate().take(rows) {
                *inverse = simd::exp_scaled(&mut b.scores[r * n_pad..r * n_pad + n], scale);
            }
            for d0 in (0..dim_pad).step_by(WIDTH) {
                let values = Strided {
                    data: &b.values[d0..],
                    stride: dim_pad,
                };
                let weights: [&[f32]; QUERIES] =
                    std::array::from_fn(|r| &b.scores[r * n_pad..r * n_pad + n]);
                let acc = match simd {
                    Some(simd) => block_avx512(simd, weights, values),
                    None => block_portable(weights, values),
                };
                let width = WIDTH.min(dim - d0);
                for (r, (acc, inverse)) in acc.iter().zip(inverse).enumerate().take(rows) {
                    let at = (i0 + r) * hidden + head * dim + d0;
                    for (c, a) in context[at..at + width].iter_mut().zip(acc) {
                        *c = a * inverse;
                    }
                }
            }
        }
    }
}

/// Writes one block row at the start of `out` (whole vectors, no copy call).
#[inline(always)]
fn store(out: &mut [f32], acc: [f32; WIDTH]) {
    if let Some(out) = out.first_chunk_mut::<WIDTH>() {
        *out = acc;
    }
}

/// Vectors of [`WIDTH`] floats at `data[i * stride..]`.
#[derive(Clone, Copy)]
struct Strided<'a> {
    data: &'a [f32],
    stride: usize,
}

impl<'a> Strided<'a> {
    /// The first `count` vectors, in order (fewer if `data` ends first).
    #[inline(always)]
    fn iter(self, count: usize) -> impl Iterator<Item = &'a [f32; WIDTH]> {
        self.data
            .chunks(self.stride)
            .take(count)
            .map_while(<[f32]>::first_chunk::<WIDTH>)
    }
}

/// `acc[r] = Σ_i weights[r][i] · vectors[i]` for the block's queries `r`: the shape
/// of both attention products (scores: weights are query components and vectors key
/// columns; context: weights are probabilities and vectors value rows). Zipped
/// iterators rather than indexes: no bounds checks in the loop.
#[inline(always)]
fn block_portable(weights: [&[f32]; QUERIES], vectors: Strided<'_>) -> [[f32; WIDTH]; QUERIES] {
    let mut acc = [[0.0f32; WIDTH]; QUERIES];
    let [w0, w1, w2, w3] = weights;
    let count = w0.len();
    for ((((v, w0), w1), w2), w3) in vectors.iter(count).zip(w0).zip(w1).zip(w2).zip(w3) {
        for (acc, w) in acc.iter_mut().zip([w0, w1, w2, w3]) {
            for (a, v) in acc.iter_mut().zip(v) {
                *a = w.mul_add(*v, *a);
            }
        }
    }
    acc
}

/// The same with AVX-512: two registers per query, the weight broadcast once for
/// both.
#[inline(always)]
fn block_avx512(
    simd: pulp::x86::V4,
    weights: [&[f32]; QUERIES],
    vectors: Strided<'_>,
) -> [[f32; WIDTH]; QUERIES] {
    const { assert!(QUERIES == 4 && WIDTH == 32) };
    let f = simd.avx512f;
    let zero = f._mm512_setzero_ps();
    let mut acc = [[zero; 2]; QUERIES];
    let [w0, w1, w2, w3] = weights;
    let count = w0.len();
    for ((((v, w0), w1), w2), w3) in vectors.iter(count).zip(w0).zip(w1).zip(w2).zip(w3) {
        let [lo, hi]: [__m512; 2] = pulp::bytemuck::cast(*v);
        for (acc, w) in acc.iter_mut().zip([w0, w1, w2, w3]) {
            let w = f._mm512_set1_ps(*w);
            acc[0] = f._mm512_fmadd_ps(w, lo, acc[0]);
            acc[1] = f._mm512_fmadd_ps(w, hi, acc[1]);
        }
    }
    acc.map(pulp::bytemuck::cast)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attention written the plain way.
    fn reference(qkv: &[f32], hidden: usize, heads: usize) -> Vec<f32> {
        let n = qkv.len() / (3 * hidden);
        let dim = hidden / heads;
        let at = |row: usize, col: usize| qkv[row * 3 * hidden + col];
        let mut out = vec![0.0; n * hidden];
        for head in 0..heads {
            for i in 0..n {
                let mut scores: Vec<f64> = (0..n)
                    .map(|j| {
                        (0..dim)
                            .map(|t| {
                                f64::from(at(i, head * dim + t))
                                    * f64::from(at(j, hidden + head * dim + t))
                            })
                            .sum::<f64>()
                            / (dim as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                scores.iter_mut().for_each(|s| *s = (*s - max).exp());
                let sum: f64 = scores.iter().sum();
                for t in 0..dim {
                    let v: f64 = (0..n)
                        .map(|j| scores[j] / sum * f64::from(at(j, 2 * hidden + head * dim + t)))
                        .sum();
                    out[i * hidden + head * dim + t] = v as f32;
                }
            }
        }
        out
    }

    #[test]
    fn blocked_attention_matches_the_plain_computation() {
        // Sizes that are not multiples of the blocks (7 tokens, head dimension 20), and
        // several blocks of keys, queries and head dimensions (130 tokens, dimension 64).
        for (n, hidden, heads) in [(7, 40, 2), (1, 40, 2), (33, 64, 2), (130, 128, 2)] {
            let qkv: Vec<f32> = (0..n * 3 * hidden)
                .map(|i| ((i * 29 % 83) as f32 - 41.0) / 20.0)
                .collect();
            let mut out = vec![f32::NAN; n * hidden];
            for level in [Level::detect(), Level::Baseline] {
                level.vectorize(Run {
                    qkv: &qkv,
                    out: &mut out,
                    hidden,
                    heads,
                });
                for (got, want) in out.iter().zip(reference(&qkv, hidden, heads)) {
                    assert!(
                        (got - want).abs() < 1e-4,
                        "{} n={n}: {got} vs {want}",
                        level.name()
                    );
                }
            }
        }
    }

    struct Run<'a> {
        qkv: &'a [f32],
        out: &'a mut [f32],
        hidden: usize,
        heads: usize,
    }

    impl crate::simd::Pass for Run<'_> {
        type Output = ();
        #[inline(always)]
        fn run(self, level: Level) {
            attend(
                level,
                self.qkv,
                self.out,
                self.hidden,
                self.heads,
                &mut Buffers::default(),
            );
        }
    }
}
