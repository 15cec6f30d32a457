//! Vector loops for the int8 encoder: one dispatch that runs a closure compiled for
//! the widest instruction set this CPU has (checked once, at run time), and the
//! element-wise math (exp, erf, layer norm, softmax's exponentials) written so the
//! compiler turns it into vector code there. No `unsafe` here: `pulp` proves the
//! features are present.

/// Proof that the CPU has AVX-512 VNNI (with the rest of x86-64-v4x: Ice Lake, Zen 4
/// and later), checked at run time: the int8 kernel's one-instruction u8 × i8 dot
/// product (`vpdpbusd`), called through `archmage`, which keeps the `unsafe` of the
/// call out of this crate.
pub(crate) type Vnni = archmage::X64V4xToken;

/// The instruction sets a closure can be compiled for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Level {
    /// AVX-512 (F and BW), with VNNI for the int8 products when the CPU has it.
    Avx512(pulp::x86::V4, Option<Vnni>),
    /// AVX2 and FMA.
    Avx2(pulp::x86::V3),
    /// Whatever the binary was built for.
    Baseline,
}

impl Level {
    /// The best level this CPU supports.
    pub(crate) fn detect() -> Level {
        if let Some(simd) = pulp::x86::V4::try_new() {
            Level::Avx512(simd, <Vnni as archmage::SimdToken>::summon())
        } else if let Some(simd) = pulp::x86::V3::try_new() {
            Level::Avx2(simd)
        } else {
            Level::Baseline
        }
    }

    /// A name for logs and benchmarks.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Level::Avx512(_, Some(_)) => "avx512-vnni",
            Level::Avx512(_, None) => "avx512",
            Level::Avx2(_) => "avx2",
            Level::Baseline => "baseline",
        }
    }

    /// The same level with the int8 products on AVX-512BW, as on a CPU without VNNI.
    #[cfg(test)]
    pub(crate) fn without_vnni(self) -> Level {
        match self {
            Level::Avx512(simd, _) => Level::Avx512(simd, None),
            other => other,
        }
    }

    /// Runs `pass` compiled for this level: everything it calls must be
    /// `#[inline(always)]` for the features to reach its loops (a function left out of
    /// line is compiled for the baseline instead).
    #[inline(always)]
    pub(crate) fn vectorize<P: Pass>(self, pass: P) -> P::Output {
        match self {
            Level::Avx512(simd, _) => simd.vectorize(Job(pass, self)),
            Level::Avx2(simd) => simd.vectorize(Job(pass, self)),
            Level::Baseline => pass.run(self),
        }
    }
}

/// A computation to run at one [`Level`].
pub(crate) trait Pass {
    /// What it returns.
    type Output;
    /// Runs it; `level` says which kernels may be used.
    fn run(self, level: Level) -> Self::Output;
}

/// A pass with its level, as pulp runs it.
struct Job<P>(P, Level);

impl<P: Pass> pulp::NullaryFnOnce for Job<P> {
    type Output = P::Output;

    #[inline(always)]
    fn call(self) -> P::Output {
        self.0.run(self.1)
    }
}

/// e^x for x ≤ 0 or moderate x, vectorizable: 2^n · p(r) with r in [−ln2/2, ln2/2]
/// (relative error about 2e-7); inputs below −87 give 0.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    // Cody–Waite split of ln 2 keeps r exact enough.
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.987_569_1e-4f32;
    let p = p.mul_add(r, 1.398_199_9e-3);
    let p = p.mul_add(r, 8.333_452e-3);
    let p = p.mul_add(r, 4.166_579_6e-2);
    let p = p.mul_add(r, 0.166_666_65);
    let p = p.mul_add(r, 0.5);
    let p = (p * r).mul_add(r, r) + 1.0;
    // 2^n without a float-to-int cast (Rust's saturating cast keeps the loop scalar):
    // adding 1.5 · 2^23 puts the integer n in the low mantissa bits.
    let shifted = (n + 12_582_912.0).to_bits().wrapping_sub(0x4B40_0000);
    p * f32::from_bits(shifted.wrapping_add(127) << 23)
}

/// erf(x) as a rational function of x over [−4, 4] (odd degree 13 over even degree
/// 8; beyond, erf is ±1 in f32), vectorizable: ten multiply-adds, two multiplies and
/// one division, where Abramowitz–Stegun 7.1.26 also needs an exponential. Largest
/// absolute error 2.4e-7 over [−20, 20] (2.7e-7 for the form it replaced); GELU over
/// 128 × 1536 values takes 0.062 instead of 0.104 ms. Coefficients as in Eigen's
/// float `erf`.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = (-2.726_142_3e-10f32).mul_add(x2, 2.770_681_4e-8);
    let p = p.mul_add(x2, -2.101_024e-6);
    let p = p.mul_add(x2, -5.692_506_4e-5);
    let p = p.mul_add(x2, -7.349_906_3e-4);
    let p = p.mul_add(x2, -2.954_6e-3);
    let p = p.mul_add(x2, -1.609_603_3e-2);
    let q = (-1.456_607_2e-5f32).mul_add(x2, -2.133_740_6e-4);
    let q = q.mul_add(x2, -1.682_827e-3);
    let q = q.mul_add(x2, -7.373_329e-3);
    let q = q.mul_add(x2, -1.426_474e-2);
    x * p / q
}

/// GELU with the exact (erf) form, in place.
#[inline(always)]
pub(crate) fn gelu(xs: &mut [f32]) {
    // A plain loop: over chunks of 16, LLVM vectorized this erf across the chunks
    // instead, with gathers and scatters, and the whole pass got 0.7 ms slower.
    for x in xs.iter_mut() {
        *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// Lanes for reductions: floating-point sums are not reassociated by the compiler,
/// so a sum kept in this many independent lanes is what lets it use vectors.
const LANES: usize = 16;

/// `xs` folded by `step` into [`LANES`] independent accumulators (the remainder into
/// the first), which `combine` then joins: the one shape of every reduction here.
#[inline(always)]
fn reduce(
    xs: &[f32],
    init: f32,
    step: impl Fn(f32, f32) -> f32,
    combine: impl Fn(f32, f32) -> f32,
) -> f32 {
    let mut lanes = [init; LANES];
    let chunks = xs.chunks_exact(LANES);
    for &x in chunks.remainder() {
        lanes[0] = step(lanes[0], x);
    }
    for chunk in chunks {
        for l in 0..LANES {
            lanes[l] = step(lanes[l], chunk[l]);
        }
    }
    fold(lanes, combine)
}

/// The lanes joined pairwise, halves onto halves: four dependent steps of vector
/// shuffles instead of a chain of fifteen scalar ones (which cost as much as the
/// vector work on a 128-wide row).
#[inline(always)]
fn fold(mut lanes: [f32; LANES], combine: impl Fn(f32, f32) -> f32) -> f32 {
    let mut width = LANES / 2;
    while width > 0 {
        let (low, high) = lanes.split_at_mut(width);
        for (a, b) in low.iter_mut().zip(high.iter()) {
            *a = combine(*a, *b);
        }
        width /= 2;
    }
    lanes[0]
}

// Selects rather than `f32::min`/`max`, whose NaN rules cost extra work per lane.
#[inline(always)]
fn larger(a: f32, b: f32) -> f32 {
    if b > a { b } else { a }
}

#[inline(always)]
fn smaller(a: f32, b: f32) -> f32 {
    if b < a { b } else { a }
}

/// The sum of `xs`.
#[inline(always)]
pub(crate) fn sum(xs: &[f32]) -> f32 {
    reduce(xs, 0.0, |a, x| a + x, |a, b| a + b)
}

/// The smallest and largest of `xs` and zero.
#[inline(always)]
pub(crate) fn range_with_zero(xs: &[f32]) -> (f32, f32) {
    (
        reduce(xs, 0.0, smaller, smaller),
        reduce(xs, 0.0, larger, larger),
    )
}

/// Softmax of `scale · xs` without its division, in place: `xs` becomes
/// `exp(scale · (x − max))` and the sum's inverse is returned (`scale` > 0).
#[inline(always)]
pub(crate) fn exp_scaled(xs: &mut [f32], scale: f32) -> f32 {
    let max = reduce(xs, f32::NEG_INFINITY, larger, larger);
    let shift = -max * scale;
    let mut lanes = [0.0f32; LANES];
    let mut chunks = xs.chunks_exact_mut(LANES);
    for chunk in chunks.by_ref() {
        for (x, lane) in chunk.iter_mut().zip(lanes.iter_mut()) {
            *x = exp(x.mul_add(scale, shift));
            *lane += *x;
        }
    }
    for x in chunks.into_remainder() {
        *x = exp(x.mul_add(scale, shift));
        lanes[0] += *x;
    }
    1.0 / fold(lanes, |a, b| a + b)
}

/// `x = layer_norm(x + residual)` over one row.
#[inline(always)]
pub(crate) fn add_norm(x: &mut [f32], residual: &[f32], gamma: &[f32], beta: &[f32], eps: f32) {
    for (x, r) in x.iter_mut().zip(residual) {
        *x += r;
    }
    norm(x, gamma, beta, eps);
}

/// Layer norm of one row, in place.
#[inline(always)]
pub(crate) fn norm(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = x.len() as f32;
    let mean = sum(x) / n;
    for v in x.iter_mut() {
        *v -= mean;
    }
    let var = reduce(x, 0.0, |a, v| v.mul_add(v, a), |a, b| a + b) / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((x, g), b) in x.iter_mut().zip(gamma).zip(beta) {
        *x = *x * inv * g + b;
    }
}

/// Floats in one AVX-512 register: the step of every loop written with AVX-512
/// intrinsics here, in attention and in quantization.
pub(crate) const WIDE: usize = 16;

/// [`range_with_zero`] at `level`: with AVX-512, one `vminps` and one `vmaxps` per 16
/// floats (the generic reduction came out as a mix of scalar, 128- and 256-bit
/// steps).
#[inline(always)]
pub(crate) fn range_with_zero_at(level: Level, xs: &[f32]) -> (f32, f32) {
    let Level::Avx512(simd, _) = level else {
        return range_with_zero(xs);
    };
    let f = simd.avx512f;
    let (chunks, rest) = xs.as_chunks::<WIDE>();
    let (mut low, mut high) = (f._mm512_setzero_ps(), f._mm512_setzero_ps());
    for c in chunks {
        let v = pulp::bytemuck::cast(*c);
        // The new value first: as with `smaller` and `larger`, a NaN is skipped.
        low = f._mm512_min_ps(v, low);
        high = f._mm512_max_ps(v, high);
    }
    let (mut low, mut high) = (f._mm512_reduce_min_ps(low), f._mm512_reduce_max_ps(high));
    for &x in rest {
        low = smaller(low, x);
        high = larger(high, x);
    }
    (low, high)
}

/// [`add_norm`] at `level`.
#[inline(always)]
pub(crate) fn add_norm_at(
    level: Level,
    x: &mut [f32],
    residual: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    match level {
        Level::Avx512(simd, _) => norm_avx512(simd, x, Some(residual), gamma, beta, eps),
        _ => add_norm(x, residual, gamma, beta, eps),
    }
}

/// [`norm`] at `level`.
#[inline(always)]
pub(crate) fn norm_at(level: Level, x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    match level {
        Level::Avx512(simd, _) => norm_avx512(simd, x, None, gamma, beta, eps),
        _ => norm(x, gamma, beta, eps),
    }
}

/// Layer norm of `x` (plus `residual`, if any) with AVX-512: the same three passes
/// as [`norm`] (mean, centred variance, scale), each a register at a time (the
/// generic sums came out in 128-bit steps).
#[inline(always)]
fn norm_avx512(
    simd: pulp::x86::V4,
    x: &mut [f32],
    residual: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    let f = simd.avx512f;
    if let Some(residual) = residual {
        let (chunks, rest) = x.as_chunks_mut::<WIDE>();
        let (added, tail) = residual.as_chunks::<WIDE>();
        for (c, r) in chunks.iter_mut().zip(added) {
            let sum = f._mm512_add_ps(pulp::bytemuck::cast(*c), pulp::bytemuck::cast(*r));
            *c = pulp::bytemuck::cast(sum);
        }
        for (x, r) in rest.iter_mut().zip(tail) {
            *x += r;
        }
    }
    let n = x.len() as f32;
    let (chunks, rest) = x.as_chunks_mut::<WIDE>();
    let mut total = f._mm512_setzero_ps();
    for c in chunks.iter() {
        total = f._mm512_add_ps(total, pulp::bytemuck::cast(*c));
    }
    let mean = (f._mm512_reduce_add_ps(total) + rest.iter().sum::<f32>()) / n;
    let centre = f._mm512_set1_ps(mean);
    let mut squares = f._mm512_setzero_ps();
    for c in chunks.iter_mut() {
        let v = f._mm512_sub_ps(pulp::bytemuck::cast(*c), centre);
        squares = f._mm512_fmadd_ps(v, v, squares);
        *c = pulp::bytemuck::cast(v);
    }
    let mut tail = 0.0f32;
    for v in rest.iter_mut() {
        *v -= mean;
        tail = v.mul_add(*v, tail);
    }
    let var = (f._mm512_reduce_add_ps(squares) + tail) / n;
    let inv = 1.0 / (var + eps).sqrt();
    let scale = f._mm512_set1_ps(inv);
    let (gammas, gamma_rest) = gamma.as_chunks::<WIDE>();
    let (betas, beta_rest) = beta.as_chunks::<WIDE>();
    for ((c, g), b) in chunks.iter_mut().zip(gammas).zip(betas) {
        let v = f._mm512_mul_ps(pulp::bytemuck::cast(*c), scale);
        let v = f._mm512_fmadd_ps(v, pulp::bytemuck::cast(*g), pulp::bytemuck::cast(*b));
        *c = pulp::bytemuck::cast(v);
    }
    for ((x, g), b) in rest.iter_mut().zip(gamma_rest).zip(beta_rest) {
        *x = *x * inv * g + b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_reductions_match_plain_ones() {
        let xs: Vec<f32> = (0..37).map(|i| (i as f32 - 20.0) * 0.25).collect();
        assert!((sum(&xs) - xs.iter().sum::<f32>()).abs() < 1e-4);
        assert_eq!(range_with_zero(&xs), (-5.0, 4.0));
        assert_eq!(
            range_with_zero(&[1.0, 2.0]),
            (0.0, 2.0),
            "zero is always in range"
        );
        assert_eq!(range_with_zero(&[]), (0.0, 0.0));
    }

    #[test]
    fn the_vector_norms_and_ranges_match_the_generic_ones() {
        // 37 values: two whole registers and a remainder of five.
        let x: Vec<f32> = (0..37)
            .map(|i| ((i * 13 % 23) as f32 - 9.0) * 0.7)
            .collect();
        let residual: Vec<f32> = (0..37).map(|i| (i % 5) as f32 * 0.3 - 0.4).collect();
        let gamma: Vec<f32> = (0..37).map(|i| 1.0 + (i % 3) as f32 * 0.1).collect();
        let beta: Vec<f32> = (0..37).map(|i| (i % 4) as f32 * 0.05).collect();
        let level = Level::detect();
        let close = |a: &[f32], b: &[f32]| {
            for (a, b) in a.iter().zip(b) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b} ({})", level.name());
            }
        };
        let (mut fast, mut plain) = (x.clone(), x.clone());
        norm_at(level, &mut fast, &gamma, &beta, 1e-12);
        norm(&mut plain, &gamma, &beta, 1e-12);
        close(&fast, &plain);
        let (mut fast, mut plain) = (x.clone(), x.clone());
        add_norm_at(level, &mut fast, &residual, &gamma, &beta, 1e-12);
        add_norm(&mut plain, &residual, &gamma, &beta, 1e-12);
        close(&fast, &plain);
        // Extremes in the remainder and in a register, both signs.
        let mut y = x.clone();
        y[3] = -40.0;
        y[35] = 50.0;
        assert_eq!(range_with_zero_at(level, &y), (-40.0, 50.0));
        assert_eq!(range_with_zero_at(level, &y), range_with_zero(&y));
        assert_eq!(range_with_zero_at(level, &[2.0; 20]), (0.0, 2.0));
    }

    #[test]
    fn exp_and_erf_match_the_standard_library() {
        let mut worst_exp = 0.0f32;
        let mut worst_erf = 0.0f32;
        for i in -2000..=2000 {
            let x = i as f32 / 100.0;
            worst_exp = worst_exp.max(((exp(x) - x.exp()) / x.exp()).abs());
            // std has no erf: integrate the Gaussian instead.
            let reference = erf_reference(f64::from(x)) as f32;
            worst_erf = worst_erf.max((erf(x) - reference).abs());
        }
        assert!(worst_exp < 1e-6, "exp relative error {worst_exp}");
        assert!(worst_erf < 3e-7, "erf absolute error {worst_erf}");
        assert!(
            exp(-1000.0) < 1e-37,
            "far below the range gives (almost) zero"
        );
    }

    /// erf by Simpson's rule on 2/√π e^(−t²), fine enough for 1e-9.
    fn erf_reference(x: f64) -> f64 {
        let steps = 20_000;
        let h = x / f64::from(steps);
        let f = |t: f64| (-t * t).exp();
        let mut sum = f(0.0) + f(x);
        for i in 1..steps {
            let w = if i % 2 == 1 { 4.0 } else { 2.0 };
            sum += w * f(f64::from(i) * h);
        }
        sum * h / 3.0 * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn softmax_sums_to_one_and_norm_centres() {
        // 37 values: whole lanes and a remainder; scaled by a half.
        let raw: Vec<f32> = (0..37).map(|i| (i % 11) as f32 - 4.0).collect();
        let mut row = raw.clone();
        row[36] = -100.0;
        let inverse = exp_scaled(&mut row, 0.5);
        let probabilities: Vec<f32> = row.iter().map(|x| x * inverse).collect();
        assert!((probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let max = raw.iter().take(36).fold(f32::MIN, |m, &x| m.max(x));
        let sum: f32 = raw.iter().take(36).map(|x| (0.5 * (x - max)).exp()).sum();
        for (p, x) in probabilities.iter().zip(&raw).take(36) {
            assert!((p - (0.5 * (x - max)).exp() / sum).abs() < 1e-6);
        }
        assert!(probabilities[36] < 1e-20);
        let mut x = vec![1.0, 2.0, 3.0, 4.0];
        norm(&mut x, &[1.0; 4], &[0.5; 4], 1e-12);
        assert!((x.iter().sum::<f32>() / 4.0 - 0.5).abs() < 1e-6);
        assert!((x[3] - x[0] - 2.0 * 1.5 / 1.25f32.sqrt()).abs() < 1e-5);
    }
}
