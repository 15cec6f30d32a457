//! A fast token estimate for text, used where no tokenizer is configured.
//!
//! BPE tokenizers of current chat models average about four characters of English
//! per token, one token per CJK character, and split long words and digit runs.
//! The estimate counts, per run of the same character class, `ceil(len / 4)` for
//! letters, `ceil(len / 3)` for digits, one per punctuation or symbol character and
//! one per non-Latin-script character. It is linear in the input and allocates
//! nothing. It is an estimate: placement adds headroom for it.

/// Estimates how many tokens `text` takes.
pub fn estimate_tokens(text: &str) -> u32 {
    #[derive(PartialEq, Clone, Copy)]
    enum Class {
        Space,
        Letter,
        Digit,
    }
    let mut tokens: u64 = 0;
    let mut run_len: u64 = 0;
    let mut run = Class::Space;
    let close = |run: Class, len: u64| -> u64 {
        match run {
            Class::Space => 0,
            Class::Letter => len.div_ceil(4),
            Class::Digit => len.div_ceil(3),
        }
    };
    for ch in text.chars() {
        let class = if ch.is_ascii_alphabetic() || (ch.is_alphabetic() && (ch as u32) < 0x0250) {
            Class::Letter
        } else if ch.is_ascii_digit() {
            Class::Digit
        } else if ch.is_whitespace() {
            Class::Space
        } else {
            // Punctuation, symbols and characters of other scripts: one token each.
            tokens += close(run, run_len) + 1;
            run = Class::Space;
            run_len = 0;
            continue;
        };
        if class != run {
            tokens += close(run, run_len);
            run = class;
            run_len = 0;
        }
        run_len += 1;
    }
    tokens += close(run, run_len);
    u32::try_from(tokens).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::estimate_tokens;

    #[test]
    fn english_is_about_four_characters_a_token() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("hello world"), 4);
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(100);
        let per_char = text.len() as f64 / f64::from(estimate_tokens(&text));
        assert!((3.0..5.5).contains(&per_char), "{per_char}");
    }

    #[test]
    fn cjk_and_digits_cost_more() {
        assert_eq!(estimate_tokens("你好世界"), 4);
        assert_eq!(estimate_tokens("123456"), 2);
        assert_eq!(estimate_tokens("a,b"), 3);
    }
}
