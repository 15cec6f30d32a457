//! A fast token estimate for text, used where no tokenizer is configured.
//!
//! BPE tokenizers of current chat models average about four characters of English
//! per token, one token per CJK character, and split long words and digit runs.
//! The estimate counts, per run of the same character class, `ceil(len / 4)` for
//! letters, `ceil(len / 3)` for digits, one per punctuation or symbol character and
//! one per non-Latin-script character. It is linear in the input and allocates
//! nothing. It is an estimate: placement adds headroom for it.

/// What a character counts as.
#[derive(PartialEq, Clone, Copy)]
enum Class {
    /// Ends a run, costs nothing.
    Space,
    /// Latin letters: a run costs one token per four.
    Letter,
    /// Digits: a run costs one token per three.
    Digit,
    /// Punctuation, symbols and characters of other scripts: one token each.
    Single,
}

/// The class of every ASCII byte, looked up rather than tested (most text is ASCII).
const ASCII: [Class; 128] = {
    let mut table = [Class::Single; 128];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        table[b] = if c.is_ascii_alphabetic() {
            Class::Letter
        } else if c.is_ascii_digit() {
            Class::Digit
        } else if matches!(c, b' ' | b'\t'..=b'\r') {
            Class::Space
        } else {
            Class::Single
        };
        b += 1;
    }
    table
};

fn class_of(ch: char) -> Class {
    if ch.is_ascii_alphabetic() || (ch.is_alphabetic() && (ch as u32) < 0x0250) {
        Class::Letter
    } else if ch.is_ascii_digit() {
        Class::Digit
    } else if ch.is_whitespace() {
        Class::Space
    } else {
        Class::Single
    }
}

/// Tokens so far, and the run of letters or digits still open.
struct Runs {
    tokens: u64,
    run: Class,
    len: u64,
}

impl Runs {
    const fn new() -> Runs {
        Runs {
            tokens: 0,
            run: Class::Space,
            len: 0,
        }
    }

    /// Closes the open run: what it costs.
    fn close(&mut self) {
        self.tokens += match self.run {
            Class::Space | Class::Single => 0,
            Class::Letter => self.len.div_ceil(4),
            Class::Digit => self.len.div_ceil(3),
        };
        self.run = Class::Space;
        self.len = 0;
    }

    fn push(&mut self, class: Class) {
        if class == Class::Single {
            self.close();
            self.tokens += 1;
            return;
        }
        if class != self.run {
            self.close();
            self.run = class;
        }
        self.len += 1;
    }

    fn total(mut self) -> u32 {
        self.close();
        u32::try_from(self.tokens).unwrap_or(u32::MAX)
    }
}

/// Estimates how many tokens `text` takes.
pub fn estimate_tokens(text: &str) -> u32 {
    let bytes = text.as_bytes();
    let mut runs = Runs::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let class = if b < 0x80 {
            i += 1;
            ASCII[usize::from(b)]
        } else {
            let ch = text[i..].chars().next().unwrap_or(' ');
            i += ch.len_utf8();
            class_of(ch)
        };
        runs.push(class);
    }
    runs.total()
}

#[cfg(test)]
mod tests {
    use super::estimate_tokens;

    /// The estimate with every character decoded and classified by `class_of`: what
    /// the byte-level reading must agree with.
    fn by_chars(text: &str) -> u32 {
        let mut runs = super::Runs::new();
        for ch in text.chars() {
            runs.push(super::class_of(ch));
        }
        runs.total()
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(2000))]
        #[test]
        fn bytes_and_characters_agree(text in "(?s).{0,200}", ascii in "[ -~\t\n\r\x0b\x0c]{0,200}") {
            proptest::prop_assert_eq!(estimate_tokens(&text), by_chars(&text));
            proptest::prop_assert_eq!(estimate_tokens(&ascii), by_chars(&ascii));
            let mixed = format!("{ascii}{text}é 42x\u{3000}{ascii}");
            proptest::prop_assert_eq!(estimate_tokens(&mixed), by_chars(&mixed));
        }
    }

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
