//! The vectors the cache benches store: 384 dimensions (the default embedding's),
//! drawn uniformly or in 1,000 topics (each a random centre plus noise, members at
//! cosine about 0.9 of each other, as questions on one subject are).

use switchyard_wire::hash::{GOLDEN_GAMMA, mix64};

pub const DIMS: usize = 384;

/// A vector drawn uniformly from `seed`.
pub fn vector(seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..DIMS)
        .map(|_| {
            state = mix64(state.wrapping_add(GOLDEN_GAMMA));
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// Entry `i`'s vector: uniform, or its topic's centre plus noise.
pub fn entry(i: usize, clustered: bool) -> Vec<f32> {
    if !clustered {
        return vector(i as u64);
    }
    let centre = vector(1 << 40 | (i % 1_000) as u64);
    let noise = vector(i as u64);
    centre
        .iter()
        .zip(&noise)
        .map(|(c, n)| c + 0.35 * n)
        .collect()
}
