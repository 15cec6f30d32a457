//! Deterministic generated text.

use switchyard_wire::hash::{FNV_OFFSET, GOLDEN_GAMMA, fnv1a, mix64};

const WORDS: [&str; 64] = [
    "the",
    "router",
    "sends",
    "each",
    "request",
    "to",
    "a",
    "pool",
    "of",
    "engines",
    "that",
    "serve",
    "tokens",
    "with",
    "low",
    "latency",
    "and",
    "high",
    "throughput",
    "while",
    "the",
    "policy",
    "checks",
    "signals",
    "such",
    "as",
    "keywords",
    "context",
    "length",
    "domain",
    "language",
    "so",
    "every",
    "answer",
    "comes",
    "from",
    "the",
    "right",
    "model",
    "at",
    "the",
    "right",
    "cost",
    "batching",
    "keeps",
    "GPUs",
    "busy",
    "prefill",
    "fills",
    "the",
    "cache",
    "decode",
    "streams",
    "words",
    "one",
    "by",
    "one",
    "until",
    "done",
    "quickly",
    "safely",
    "fairly",
    "today",
    "here",
];

/// A stable 64-bit hash of a prompt (FNV-1a, then mixed).
pub fn prompt_hash(prompt: &str) -> u64 {
    mix64(fnv1a(prompt.as_bytes(), FNV_OFFSET))
}

/// One splitmix64 step from `x`.
fn mix(x: u64) -> u64 {
    mix64(x.wrapping_add(GOLDEN_GAMMA))
}

/// The text of token `index` of the answer to the prompt with hash `seed`.
pub fn token_text(seed: u64, index: u32) -> &'static str {
    let i = (mix(seed ^ u64::from(index).wrapping_mul(0x2545_F491_4F6C_DD1D)) % WORDS.len() as u64)
        as usize;
    WORDS[i]
}

/// How many tokens the answer to a prompt has: between half and one and a half times
/// `mean`, fixed by the prompt.
pub fn output_length(seed: u64, mean: u32) -> u32 {
    let mean = u64::from(mean.max(1));
    let low = (mean / 2).max(1);
    let span = mean + 1;
    u32::try_from(low + mix(seed.rotate_left(17)) % span).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_prompt_same_answer() {
        let a = prompt_hash("hello");
        assert_eq!(a, prompt_hash("hello"));
        assert_ne!(a, prompt_hash("hello!"));
        let words: Vec<_> = (0..8).map(|i| token_text(a, i)).collect();
        assert_eq!(words, (0..8).map(|i| token_text(a, i)).collect::<Vec<_>>());
        assert!(words.iter().collect::<std::collections::HashSet<_>>().len() > 2);
    }

    #[test]
    fn lengths_stay_within_half_and_one_and_a_half_of_the_mean() {
        for i in 0..1000u64 {
            let n = output_length(mix(i), 100);
            assert!((50..=150).contains(&n), "{n}");
        }
        assert!(output_length(1, 0) >= 1);
    }
}
