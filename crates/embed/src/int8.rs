//! A linear layer with 7-bit weights and 8-bit activations: weights are quantized
//! once, per output row, symmetrically to [−63, 63]; each input row is quantized when
//! it arrives, asymmetrically to [0, 255] over its own range (zero included). The
//! product runs in integers and is scaled back to f32 with the bias added.
//!
//! Why 7-bit weights: the AVX-512 kernel multiplies u8 by i8 and adds pairs in 16
//! bits (`vpmaddubsw`) before widening; 2 · 255 · 63 fits in an i16, so nothing
//! saturates and the result is exact, the same as the portable loop gives.

use crate::simd::{self, Level};
use archmage::X64V4xToken;
use std::arch::x86_64::__m512i;

/// Rows are processed in blocks of this many.
const ROWS: usize = 4;
/// Output columns per block (two vectors of 16 i32).
const COLUMNS: usize = 32;
/// Inputs summed per i32 lane in one step.
const GROUP: usize = 4;
/// Largest quantized weight.
const WEIGHT_MAX: f32 = 63.0;
/// Largest quantized activation.
const ACTIVATION_MAX: f32 = 255.0;

/// `y = x · Wᵀ + b` with `W` quantized.
#[derive(Debug, Clone)]
pub(crate) struct Linear8 {
    /// Output features.
    outputs: usize,
    /// Input features.
    inputs: usize,
    /// `inputs` rounded up to a multiple of [`GROUP`].
    stride: usize,
    /// Quantized weights packed for the kernel: per block of [`COLUMNS`] outputs, per
    /// group of [`GROUP`] inputs, the block's columns × the group's inputs (zero
    /// padding past `outputs` and `inputs`).
    packed: Vec<i8>,
    /// Per output block: each column's f32 value of one quantum, the sum of its
    /// quantized weights (for the activations' zero point) and its bias (zero past
    /// `outputs`), so the epilogue works on whole blocks.
    epilogue: Vec<Epilogue>,
}

/// Per-column constants of one output block.
#[derive(Debug, Clone)]
struct Epilogue {
    scales: [f32; COLUMNS],
    sums: [i32; COLUMNS],
    bias: [f32; COLUMNS],
}

/// Quantized input rows, reused across calls to avoid allocating per layer.
#[derive(Debug, Default)]
pub(crate) struct Quantized {
    bytes: Vec<u8>,
    /// Per row: (scale, zero point).
    params: Vec<(f32, i32)>,
}

impl Linear8 {
    /// Quantizes `weight` (`outputs × inputs`, row-major, as stored by PyTorch).
    pub(crate) fn new(weight: &[f32], bias: Vec<f32>, outputs: usize, inputs: usize) -> Self {
        let stride = inputs.div_ceil(GROUP) * GROUP;
        let blocks = outputs.div_ceil(COLUMNS);
        let mut packed = vec![0i8; blocks * COLUMNS * stride];
        let empty = Epilogue {
            scales: [0.0; COLUMNS],
            sums: [0; COLUMNS],
            bias: [0.0; COLUMNS],
        };
        let mut epilogue = vec![empty; blocks];
        for (c, row) in weight.chunks_exact(inputs).enumerate() {
            let max = row.iter().fold(0.0f32, |m, w| m.max(w.abs()));
            let scale = if max > 0.0 { max / WEIGHT_MAX } else { 1.0 };
            let mut sum = 0i32;
            let (block, column) = (c / COLUMNS, c % COLUMNS);
            for (k, w) in row.iter().enumerate() {
                let q = (w / scale).round().clamp(-WEIGHT_MAX, WEIGHT_MAX) as i8;
                let (group, within) = (k / GROUP, k % GROUP);
                let at =
                    block * COLUMNS * stride + group * COLUMNS * GROUP + column * GROUP + within;
                packed[at] = q;
                sum += i32::from(q);
            }
            let block = &mut epilogue[block];
            block.scales[column] = scale;
            block.sums[column] = sum;
            block.bias[column] = bias.get(c).copied().unwrap_or(0.0);
        }
        Linear8 {
            outputs,
            inputs,
            stride,
            packed,
            epilogue,
        }
    }

    /// Output features.
    pub(crate) fn outputs(&self) -> usize {
        self.outputs
    }

    /// `out = x · Wᵀ + b` for the rows of `x` (`rows × inputs`); `out` is
    /// `rows × outputs`. Inlined into the caller's vectorized context
    /// ([`Level::vectorize`]); with `Level::Avx512` the kernel is AVX-512 VNNI when the
    /// CPU has it, else AVX-512BW.
    #[inline(always)]
    pub(crate) fn forward(&self, level: Level, x: &[f32], out: &mut [f32], q: &mut Quantized) {
        let rows = x.len() / self.inputs;
        self.quantize(level, x, rows, q);
        let s = self.stride;
        let n = self.outputs;
        let groups = s / GROUP;
        for r0 in (0..rows).step_by(ROWS) {
            let a: [&[u8]; ROWS] =
                std::array::from_fn(|i| &q.bytes[(r0 + i) * s..(r0 + i + 1) * s]);
            if let Level::Avx512(_, Some(vnni)) = level {
                let params = std::array::from_fn(|i| q.params.get(r0 + i).copied());
                let live = ROWS.min(rows - r0);
                rows_vnni(vnni, self, a, params, &mut out[r0 * n..(r0 + live) * n]);
                continue;
            }
            for (b, (packed, e)) in self
                .packed
                .chunks_exact(COLUMNS * s)
                .zip(&self.epilogue)
                .enumerate()
            {
                let sums = match level {
                    Level::Avx512(simd, _) => block_avx512(simd, a, packed, groups),
                    Level::Avx2(_) | Level::Baseline => block_portable(a, packed, groups),
                };
                let c0 = b * COLUMNS;
                let width = COLUMNS.min(n - c0);
                for (i, sums) in sums.iter().enumerate().take(rows - r0) {
                    let (scale, zero) = q.params[r0 + i];
                    // Straight into the output (a copy through a local array cost a
                    // memmove call per 128 bytes).
                    let at = (r0 + i) * n + c0;
                    let columns = sums.iter().zip(&e.sums).zip(&e.scales).zip(&e.bias);
                    for (o, (((sum, weights), unit), bias)) in
                        out[at..at + width].iter_mut().zip(columns)
                    {
                        let exact = sum - zero * weights;
                        *o = (exact as f32).mul_add(scale * unit, *bias);
                    }
                }
            }
        }
    }

    #[inline(always)]
    fn quantize(&self, level: Level, x: &[f32], rows: usize, q: &mut Quantized) {
        let padded = rows.div_ceil(ROWS) * ROWS;
        q.bytes.clear();
        q.bytes.resize(padded * self.stride, 0);
        q.params.clear();
        for (row, bytes) in x
            .chunks_exact(self.inputs)
            .zip(q.bytes.chunks_exact_mut(self.stride))
        {
            let (min, max) = simd::range_with_zero_at(level, row);
            let scale = if max > min {
                (max - min) / ACTIVATION_MAX
            } else {
                1.0
            };
            let inv = 1.0 / scale;
            let zero = (-min * inv).round().clamp(0.0, ACTIVATION_MAX);
            let done = match level {
                Level::Avx512(simd, _) => bytes_avx512(simd, row, bytes, inv, zero),
                Level::Avx2(_) | Level::Baseline => 0,
            };
            for (v, b) in row.iter().zip(bytes.iter_mut()).skip(done) {
                // Rounded through the float's mantissa (1.5 · 2^23): a float-to-int
                // cast would keep this loop scalar.
                let clamped = v.mul_add(inv, zero).clamp(0.0, ACTIVATION_MAX);
                *b = (clamped + 12_582_912.0).to_bits().wrapping_sub(0x4B40_0000) as u8;
            }
            q.params.push((scale, zero as i32));
        }
    }
}

/// The quantization loop of [`Linear8::quantize`] with AVX-512, a register a step,
/// the same bytes (`vcvtps2dq` rounds to nearest even, as the mantissa trick does);
/// returns how many it wrote, the whole vectors (the caller does the rest).
#[inline(always)]
fn bytes_avx512(simd: pulp::x86::V4, row: &[f32], bytes: &mut [u8], inv: f32, zero: f32) -> usize {
    let f = simd.avx512f;
    let (inv, zero) = (f._mm512_set1_ps(inv), f._mm512_set1_ps(zero));
    let (low, high) = (f._mm512_setzero_ps(), f._mm512_set1_ps(ACTIVATION_MAX));
    let (values, _) = row.as_chunks::<{ simd::WIDE }>();
    let (out, _) = bytes.as_chunks_mut::<{ simd::WIDE }>();
    for (v, b) in values.iter().zip(out.iter_mut()) {
        let v = f._mm512_fmadd_ps(pulp::bytemuck::cast(*v), inv, zero);
        let v = f._mm512_min_ps(f._mm512_max_ps(v, low), high);
        *b = pulp::bytemuck::cast(f._mm512_cvtepi32_epi8(f._mm512_cvtps_epi32(v)));
    }
    values.len().min(out.len()) * simd::WIDE
}

/// Sums of four activation rows against one packed block of 32 columns, portable:
/// what the AVX-512 kernel computes, exactly.
#[inline(always)]
fn block_portable(a: [&[u8]; ROWS], packed: &[i8], groups: usize) -> [[i32; COLUMNS]; ROWS] {
    let mut acc = [[0i32; COLUMNS]; ROWS];
    for g in 0..groups {
        let w = &packed[g * COLUMNS * GROUP..(g + 1) * COLUMNS * GROUP];
        for (r, acc) in acc.iter_mut().enumerate() {
            let x = &a[r][g * GROUP..(g + 1) * GROUP];
            for (c, acc) in acc.iter_mut().enumerate() {
                let w = &w[c * GROUP..(c + 1) * GROUP];
                *acc += x
                    .iter()
                    .zip(w)
                    .map(|(&x, &w)| i32::from(x) * i32::from(w))
                    .sum::<i32>();
            }
        }
    }
    acc
}

/// The same with AVX-512BW: per group, the four activation bytes of a row are
/// broadcast and multiplied with 2 × 16 columns' four weights (`vpmaddubsw`, then
/// `vpmaddwd` by ones to widen), 4 rows × 32 columns of i32 sums in 8 registers.
#[inline(always)]
fn block_avx512(
    simd: pulp::x86::V4,
    a: [&[u8]; ROWS],
    packed: &[i8],
    groups: usize,
) -> [[i32; COLUMNS]; ROWS] {
    const { assert!(ROWS == 4) };
    let (f, bw) = (simd.avx512f, simd.avx512bw);
    let ones = f._mm512_set1_epi16(1);
    let zero = f._mm512_setzero_si512();
    let mut acc = [[zero; 2]; ROWS];
    // Zipped iterators rather than indexes: no bounds checks in the loop.
    let [r0, r1, r2, r3] = a.map(|row| row.as_chunks::<GROUP>().0);
    for ((((w, x0), x1), x2), x3) in steps(packed, groups).zip(r0).zip(r1).zip(r2).zip(r3) {
        let [w0, w1]: [__m512i; 2] = pulp::bytemuck::cast(*w);
        for (acc, x) in acc.iter_mut().zip([x0, x1, x2, x3]) {
            let x = f._mm512_set1_epi32(i32::from_le_bytes(*x));
            acc[0] = f._mm512_add_epi32(
                acc[0],
                bw._mm512_madd_epi16(bw._mm512_maddubs_epi16(x, w0), ones),
            );
            acc[1] = f._mm512_add_epi32(
                acc[1],
                bw._mm512_madd_epi16(bw._mm512_maddubs_epi16(x, w1), ones),
            );
        }
    }
    acc.map(pulp::bytemuck::cast)
}

/// The packed weights of one block, a step (one group of inputs, 32 columns × 4
/// weights) at a time.
#[inline(always)]
fn steps(packed: &[i8], groups: usize) -> impl Iterator<Item = &[i8; COLUMNS * GROUP]> {
    packed
        .as_chunks::<{ COLUMNS * GROUP }>()
        .0
        .iter()
        .take(groups)
}

/// The same with AVX-512 VNNI, for a whole block of rows against every column
/// block, epilogue included: `vpdpbusd` multiplies the four activation bytes by each
/// column's four weights and adds them into the i32 sum in one instruction, with no
/// 16-bit step (so exact whatever the weights), half the instructions of
/// [`block_avx512`]. The sums go from registers straight to the output (the same
/// operations, in the same order, as the other paths' epilogue), and one call covers
/// every column block: a call per block and the sums' round trip through memory made
/// the 384-input products 4–5% slower. Compiled apart with the VNNI features
/// (`archmage` checks the token and makes the call). `params` are the rows' (scale,
/// zero point), `None` past the last row; `out` holds the rows that exist.
#[archmage::arcane]
fn rows_vnni(
    _token: X64V4xToken,
    layer: &Linear8,
    a: [&[u8]; ROWS],
    params: [Option<(f32, i32)>; ROWS],
    out: &mut [f32],
) {
    use std::arch::x86_64::{
        __m512, _mm512_cvtepi32_ps, _mm512_dpbusd_epi32, _mm512_fmadd_ps, _mm512_mul_ps,
        _mm512_mullo_epi32, _mm512_set1_epi32, _mm512_set1_ps, _mm512_setzero_si512,
        _mm512_sub_epi32,
    };
    const { assert!(ROWS == 4 && COLUMNS == 32) };
    let n = layer.outputs;
    let groups = layer.stride / GROUP;
    let [r0, r1, r2, r3] = a.map(|row| row.as_chunks::<GROUP>().0);
    let blocks = layer.packed.chunks_exact(COLUMNS * layer.stride);
    for (b, (packed, e)) in blocks.zip(&layer.epilogue).enumerate() {
        let zero = _mm512_setzero_si512();
        let mut acc = [[zero; 2]; ROWS];
        for ((((w, x0), x1), x2), x3) in steps(packed, groups).zip(r0).zip(r1).zip(r2).zip(r3) {
            let [w0, w1]: [__m512i; 2] = pulp::bytemuck::cast(*w);
            for (acc, x) in acc.iter_mut().zip([x0, x1, x2, x3]) {
                let x = _mm512_set1_epi32(i32::from_le_bytes(*x));
                acc[0] = _mm512_dpbusd_epi32(acc[0], x, w0);
                acc[1] = _mm512_dpbusd_epi32(acc[1], x, w1);
            }
        }
        let sums: [__m512i; 2] = pulp::bytemuck::cast(e.sums);
        let units: [__m512; 2] = pulp::bytemuck::cast(e.scales);
        let bias: [__m512; 2] = pulp::bytemuck::cast(e.bias);
        let c0 = b * COLUMNS;
        let width = COLUMNS.min(n - c0);
        for (r, (acc, params)) in acc.iter().zip(params).enumerate() {
            let Some((scale, zero)) = params else { break };
            let (scale, zero) = (_mm512_set1_ps(scale), _mm512_set1_epi32(zero));
            let column = |i: usize| {
                let exact = _mm512_sub_epi32(acc[i], _mm512_mullo_epi32(zero, sums[i]));
                let step = _mm512_mul_ps(scale, units[i]);
                _mm512_fmadd_ps(_mm512_cvtepi32_ps(exact), step, bias[i])
            };
            let at = r * n + c0;
            if width == COLUMNS {
                // Two vector stores. (Any form that also handled a partial block here,
                // or wrote a `[f32; 32]`, became one `memcpy` call per block row, with
                // the sums spilled around it: about 0.2 ms of a 128-token pass.)
                if let Some(whole) = out.get_mut(at..at + COLUMNS) {
                    let (low, high) = whole.split_at_mut(COLUMNS / 2);
                    for (half, i) in [low, high].into_iter().zip(0..) {
                        if let Some(half) = half.first_chunk_mut::<{ COLUMNS / 2 }>() {
                            *half = pulp::bytemuck::cast(column(i));
                        }
                    }
                }
            } else {
                let values: [f32; COLUMNS] = pulp::bytemuck::cast([column(0), column(1)]);
                copy_part(&mut out[at..at + width], &values);
            }
        }
    }
}

/// The first `out.len()` of `values` into `out`, out of line: the last block of an
/// output count that is not a multiple of [`COLUMNS`].
#[cold]
#[inline(never)]
fn copy_part(out: &mut [f32], values: &[f32; COLUMNS]) {
    out.copy_from_slice(&values[..out.len()]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::Pass;

    struct Product<'a> {
        layer: &'a Linear8,
        x: &'a [f32],
        out: &'a mut [f32],
    }

    impl Pass for Product<'_> {
        type Output = ();
        #[inline(always)]
        fn run(self, level: Level) {
            self.layer
                .forward(level, self.x, self.out, &mut Quantized::default());
        }
    }

    /// `layer` applied to `x` at `level`.
    fn product(layer: &Linear8, x: &[f32], level: Level) -> Vec<f32> {
        let mut out = vec![0.0; x.len() / layer.inputs * layer.outputs];
        level.vectorize(Product {
            layer,
            x,
            out: &mut out,
        });
        out
    }

    fn reference(x: &[f32], w: &[f32], b: &[f32], n: usize, k: usize) -> Vec<f32> {
        x.chunks_exact(k)
            .flat_map(|row| {
                (0..n).map(move |c| {
                    row.iter()
                        .zip(&w[c * k..(c + 1) * k])
                        .map(|(a, b)| a * b)
                        .sum::<f32>()
                        + b[c]
                })
            })
            .collect()
    }

    #[test]
    fn the_integer_product_is_close_to_the_float_one_and_the_same_at_every_level() {
        // Odd sizes: padding in rows, columns and the inner dimension.
        let (rows, n, k) = (7, 41, 150);
        let x: Vec<f32> = (0..rows * k)
            .map(|i| ((i * 37 % 101) as f32 - 40.0) / 17.0)
            .collect();
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) / 300.0)
            .collect();
        let b: Vec<f32> = (0..n).map(|i| i as f32 / 10.0).collect();
        let want = reference(&x, &w, &b, n, k);
        let layer = Linear8::new(&w, b.clone(), n, k);
        let run = |level: Level| product(&layer, &x, level);
        let fast = run(Level::detect());
        let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for (got, want) in fast.iter().zip(&want) {
            assert!((got - want).abs() < 0.02 * scale, "{got} vs {want}");
        }
        assert_eq!(
            fast,
            run(Level::Baseline),
            "integer sums are exact on every path"
        );
        assert_eq!(
            fast,
            run(Level::detect().without_vnni()),
            "VNNI and AVX-512BW give the same sums"
        );
    }

    #[test]
    fn extreme_values_do_not_saturate() {
        // Activations at 255 next to each other (a row of one positive value) against
        // weights at ±63 of one sign in pairs: the largest pair sums, 2 · 255 · 63.
        // With 8-bit weights these would saturate the kernel's 16-bit pair sums.
        let k = 64;
        let w: Vec<f32> = (0..32 * k)
            .map(|i| if (i / 2) % 3 == 0 { -1.0 } else { 1.0 })
            .collect();
        let mut x = vec![5.0f32; 4 * k];
        for (i, v) in x[k..2 * k].iter_mut().enumerate() {
            *v = if i % 2 == 0 { 5.0 } else { -1.0 };
        }
        let layer = Linear8::new(&w, vec![0.0; 32], 32, k);
        let want = reference(&x, &w, &[0.0; 32], 32, k);
        let run = |level: Level| product(&layer, &x, level);
        let fast = run(Level::detect());
        for (got, want) in fast.iter().zip(&want) {
            assert!(
                (got - want).abs() < 0.05 * want.abs().max(1.0),
                "{got} vs {want}"
            );
        }
        assert_eq!(fast, run(Level::Baseline), "no saturation on the fast path");
        assert_eq!(
            fast,
            run(Level::detect().without_vnni()),
            "nor without VNNI"
        );
    }

    #[test]
    fn a_constant_row_and_a_zero_weight_row_do_not_divide_by_zero() {
        let layer = Linear8::new(&[0.0; 8], vec![1.0, 2.0], 2, 4);
        assert_eq!(product(&layer, &[3.0; 4], Level::detect()), vec![1.0, 2.0]);
    }
}
