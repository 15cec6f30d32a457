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
        let tiled = match simd {
            Some(simd) => transpose_keys_avx512(simd, qkv, stride, k0, dim, &mut b.keys, n_pad),
            None => (0, 0),
        };
        for (j, row) in qkv.chunks_exact(stride).enumerate() {
            // What the tiles did not cover: the keys past the last whole tile, and
            // the dimensions past the last whole tile of the others.
            let from = if j < tiled.0 { tiled.1 } else { 0 };
            for (t, k) in row[k0..k0 + dim].iter().enumerate().skip(from) {
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
            let inverse = match simd {
                Some(simd) => exp_block_avx512(simd, &mut b.scores, n, scale),
                None => {
                    let mut inverse = [0.0f32; QUERIES];
                    for (r, inverse) in inverse.iter_mut().enumerate().take(rows) {
                        let row = &mut b.scores[r * n_pad..r * n_pad + n];
                        *inverse = simd::exp_scaled(row, scale);
                    }
                    inverse
                }
            };
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

/// The side of a transposed tile: one register of floats.
const TILE: usize = simd::WIDE;

/// One head's keys (`dim` columns from `k0` of each `stride`-wide row of `qkv`)
/// transposed into `keys` (`dim` rows × `n_pad`) a 16 × 16 tile at a time, in
/// registers: one element at a time, the scattered stores cost 9% of attention.
/// Returns how far the tiles reached, (keys, dimensions); the caller does the rest.
#[inline(always)]
fn transpose_keys_avx512(
    simd: pulp::x86::V4,
    qkv: &[f32],
    stride: usize,
    k0: usize,
    dim: usize,
    keys: &mut [f32],
    n_pad: usize,
) -> (usize, usize) {
    let n = qkv.len() / stride;
    let (rows, columns) = (n / TILE * TILE, dim / TILE * TILE);
    let zero = simd.avx512f._mm512_setzero_ps();
    for j0 in (0..rows).step_by(TILE) {
        for t0 in (0..columns).step_by(TILE) {
            let mut tile = [zero; TILE];
            for (i, v) in tile.iter_mut().enumerate() {
                let at = (j0 + i) * stride + k0 + t0;
                if let Some(row) = qkv.get(at..).and_then(<[f32]>::first_chunk::<TILE>) {
                    *v = pulp::bytemuck::cast(*row);
                }
            }
            for (i, v) in transpose16(simd, tile).into_iter().enumerate() {
                let at = (t0 + i) * n_pad + j0;
                if let Some(out) = keys
                    .get_mut(at..)
                    .and_then(<[f32]>::first_chunk_mut::<TILE>)
                {
                    *out = pulp::bytemuck::cast(v);
                }
            }
        }
    }
    (rows, columns)
}

/// The 16 × 16 transpose of `r` (row `i` becomes column `i`): pairs interleaved at
/// 32 bits, then 64, then lanes of 128 bits twice, 64 shuffles in all. Plain loops:
/// in `array::from_fn` closures the intrinsics were compiled apart, as calls.
#[inline(always)]
fn transpose16(simd: pulp::x86::V4, r: [__m512; TILE]) -> [__m512; TILE] {
    let f = simd.avx512f;
    let mut t = r;
    for i in (0..TILE).step_by(2) {
        t[i] = f._mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = f._mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    // 64-bit interleaves of (0, 2) and (1, 3) within each group of four.
    let mut u = t;
    for base in (0..TILE).step_by(4) {
        for half in 0..2 {
            let a = f._mm512_castps_pd(t[base + half]);
            let b = f._mm512_castps_pd(t[base + half + 2]);
            u[base + 2 * half] = f._mm512_castpd_ps(f._mm512_unpacklo_pd(a, b));
            u[base + 2 * half + 1] = f._mm512_castpd_ps(f._mm512_unpackhi_pd(a, b));
        }
    }
    // 128-bit lanes: groups (0..4, 4..8) and (8..12, 12..16), then (0..8, 8..16).
    let mut v = u;
    for base in [0, 8] {
        for i in 0..4 {
            let (a, b) = (u[base + i], u[base + i + 4]);
            v[base + i] = f._mm512_shuffle_f32x4::<0x88>(a, b);
            v[base + i + 4] = f._mm512_shuffle_f32x4::<0xdd>(a, b);
        }
    }
    let mut out = v;
    for i in 0..8 {
        out[i] = f._mm512_shuffle_f32x4::<0x88>(v[i], v[i + 8]);
        out[i + 8] = f._mm512_shuffle_f32x4::<0xdd>(v[i], v[i + 8]);
    }
    out
}

/// 2^x − 1 over x for x in [−1/2, 1/2], lowest power first: a degree-5 polynomial
/// fitted for the least largest relative error (1.5e-7 evaluated in f32).
#[expect(
    clippy::approx_constant,
    reason = "a fitted coefficient, near ln 2 but not it"
)]
const POW2: [f32; 5] = [
    0.693_147,
    0.240_222_42,
    5.550_733_6e-2,
    9.671_513e-3,
    1.326_472_4e-3,
];

/// [`simd::exp_scaled`] on a block's four score rows (`scores`, each `n` scores
/// padded to `WIDTH`; the padding is overwritten; past the last query a row repeats
/// it), with AVX-512: e^y as 2^t, t = y·log₂e, split into its nearest integer k and
/// the rest, `vscalefps` doing the 2^k (0 far below range). The four rows go through
/// each step together: one row at a time, each waited on its own chain of maxima,
/// horizontal reductions and sums (attention per layer 0.291 against 0.281 ms).
/// Constants stay in registers; the generic loop re-broadcast them per row.
#[inline(always)]
fn exp_block_avx512(
    simd: pulp::x86::V4,
    scores: &mut [f32],
    n: usize,
    scale: f32,
) -> [f32; QUERIES] {
    const { assert!(QUERIES == 4) };
    let f = simd.avx512f;
    let n_pad = scores.len() / QUERIES;
    let mut rows = scores.chunks_exact_mut(n_pad);
    let (Some(r0), Some(r1), Some(r2), Some(r3)) =
        (rows.next(), rows.next(), rows.next(), rows.next())
    else {
        return [0.0; QUERIES];
    };
    let mut block = [r0, r1, r2, r3];
    for row in &mut block {
        // Below any score: never the maximum, its exponential 0 (through the clamp
        // below), and no lane needs masking.
        row[n..].fill(f32::NEG_INFINITY);
    }
    let [r0, r1, r2, r3] = block.map(|row| row.as_chunks_mut::<{ simd::WIDE }>().0);
    let mut top = [f._mm512_set1_ps(f32::NEG_INFINITY); QUERIES];
    for (((c0, c1), c2), c3) in r0.iter().zip(r1.iter()).zip(r2.iter()).zip(r3.iter()) {
        for (t, c) in top.iter_mut().zip([c0, c1, c2, c3]) {
            *t = f._mm512_max_ps(*t, pulp::bytemuck::cast(*c));
        }
    }
    let slope = scale * std::f32::consts::LOG2_E;
    let mut shift = [f._mm512_setzero_ps(); QUERIES];
    for (s, t) in shift.iter_mut().zip(top) {
        *s = f._mm512_set1_ps(-f._mm512_reduce_max_ps(t) * slope);
    }
    let slope = f._mm512_set1_ps(slope);
    let mut coefficients = [f._mm512_setzero_ps(); 5];
    for (v, c) in coefficients.iter_mut().zip(POW2) {
        *v = f._mm512_set1_ps(c);
    }
    let one = f._mm512_set1_ps(1.0);
    // 2^−200 is 0 in f32. Unclamped, the padding's t − k would be −∞ − −∞.
    let lowest = f._mm512_set1_ps(-200.0);
    let mut sum = [f._mm512_setzero_ps(); QUERIES];
    let chunks = r0
        .iter_mut()
        .zip(r1.iter_mut())
        .zip(r2.iter_mut())
        .zip(r3.iter_mut());
    for (((c0, c1), c2), c3) in chunks {
        for ((c, sum), shift) in [c0, c1, c2, c3].into_iter().zip(&mut sum).zip(shift) {
            let t = f._mm512_fmadd_ps(pulp::bytemuck::cast(*c), slope, shift);
            let t = f._mm512_max_ps(t, lowest);
            // Round to nearest, exceptions suppressed.
            let k = f._mm512_roundscale_ps::<0x08>(t);
            let x = f._mm512_sub_ps(t, k);
            let mut p = coefficients[4];
            for &c in coefficients[..4].iter().rev() {
                p = f._mm512_fmadd_ps(p, x, c);
            }
            let e = f._mm512_scalef_ps(f._mm512_fmadd_ps(p, x, one), k);
            *c = pulp::bytemuck::cast(e);
            *sum = f._mm512_add_ps(*sum, e);
        }
    }
    let mut inverse = [0.0f32; QUERIES];
    for (i, s) in inverse.iter_mut().zip(sum) {
        *i = 1.0 / f._mm512_reduce_add_ps(s);
    }
    inverse
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
        // Sizes that are not multiples of the blocks (7 tokens, head dimension 20), tiles
        // with a remainder of dimensions and of keys (40 tokens, dimension 20), and
        // several blocks of keys, queries and head dimensions (130 tokens, dimension 64).
        for (n, hidden, heads) in [
            (7, 40, 2),
            (1, 40, 2),
            (33, 64, 2),
            (40, 40, 2),
            (130, 128, 2),
        ] {
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

    /// The polynomial of [`exp_block_avx512`], evaluated the same way.
    fn pow2(x: f32) -> f32 {
        let p = POW2[..4]
            .iter()
            .rev()
            .fold(POW2[4], |p, &c| p.mul_add(x, c));
        p.mul_add(x, 1.0)
    }

    #[test]
    fn the_softmax_polynomial_is_accurate_to_f32() {
        let worst = (-5000..=5000)
            .map(|i| {
                let x = i as f32 / 10_000.0;
                let want = 2f64.powf(f64::from(x));
                ((f64::from(pow2(x)) - want) / want).abs()
            })
            .fold(0.0, f64::max);
        assert!(worst < 2e-7, "2^x relative error {worst}");
    }

    #[test]
    fn the_vector_softmax_matches_the_generic_one() {
        // Four rows of 45 scores padded to 64 (the padding is overwritten and
        // ignored), spread wide enough that some exponentials are far below the
        // largest, and each row shifted so that no two share a maximum.
        let (n, n_pad) = (45, 64);
        let row = |r: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * 17 + r * 5) % 29) as f32 * 3.1 - 14.0 * (r + 1) as f32)
                .collect()
        };
        let Level::Avx512(simd, _) = Level::detect() else {
            eprintln!("skipped: no AVX-512 on this CPU");
            return;
        };
        // And a scale above 1/log₂e (a head of one or two dimensions), where the
        // padding's exponent is clamped from −∞ rather than only rounded.
        for scale in [0.25, 4.0] {
            softmax_block_case(simd, n, n_pad, &row, scale);
        }
    }

    fn softmax_block_case(
        simd: pulp::x86::V4,
        n: usize,
        n_pad: usize,
        row: &dyn Fn(usize) -> Vec<f32>,
        scale: f32,
    ) {
        let mut block = vec![7.0f32; QUERIES * n_pad];
        for r in 0..QUERIES {
            block[r * n_pad..r * n_pad + n].copy_from_slice(&row(r));
        }
        let got = exp_block_avx512(simd, &mut block, n, scale);
        for (r, got) in got.into_iter().enumerate() {
            let mut generic = row(r);
            let inverse = simd::exp_scaled(&mut generic, scale);
            let exps = &block[r * n_pad..(r + 1) * n_pad];
            // The probabilities, normalized: the rounding of the shift (the largest
            // score times the scale) multiplies a row's exponentials and their sum
            // alike. Relative to the largest, the smallest are good to about 1e-6 of
            // themselves (the exponent is rounded as an f32).
            for (a, b) in exps.iter().zip(&generic) {
                let (a, b) = (a * got, b * inverse);
                assert!(
                    (a - b).abs() <= 1e-6 * b + 1e-9,
                    "scale {scale}, row {r}: {a} vs {b}"
                );
            }
            assert!(
                exps[n..].iter().all(|&p| p == 0.0),
                "padding weighs nothing (scale {scale})"
            );
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
