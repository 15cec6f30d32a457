//! Stable, fast, non-cryptographic hashes of request content, shared by the router
//! (sessions, prefixes, affinity) and the simulated engine (prefix cache, text).

/// The FNV-1a starting state.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Continues an FNV-1a hash over `bytes` from `state` (start with [`FNV_OFFSET`]).
pub fn fnv1a(bytes: &[u8], mut state: u64) -> u64 {
    for b in bytes {
        state ^= u64::from(*b);
        state = state.wrapping_mul(0x0100_0000_01b3);
    }
    state
}

/// The splitmix64 finalizer: spreads the bits of `x` well.
pub fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The step splitmix64 adds to its state per draw.
pub const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_chains_and_mix_spreads() {
        assert_eq!(
            fnv1a(b"ab", FNV_OFFSET),
            fnv1a(b"b", fnv1a(b"a", FNV_OFFSET))
        );
        assert_ne!(fnv1a(b"ab", FNV_OFFSET), fnv1a(b"ba", FNV_OFFSET));
        // Neighbouring inputs land far apart.
        assert!((mix64(1) ^ mix64(2)).count_ones() > 16);
        assert_eq!(mix64(0), 0);
    }
}
