//! Tokens of the DSL.

use super::tree::Pos;

/// A token.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A name or keyword: letters, digits, `_`, `-`, `.` (not first).
    Ident(String),
    /// A double-quoted string, unescaped.
    Str(String),
    /// A number as written; `suffix` is `K` or `M` when it counts tokens.
    Num(String, Option<char>),
    /// Punctuation: `{ } ( ) [ ] , : = . -> < <= > >=`.
    Punct(&'static str),
    /// A comment (`#` or `//` to the end of the line), without its marker.
    Comment(String),
}

impl Tok {
    /// How it reads in an error.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Str(s) => format!("the string \"{s}\""),
            Tok::Num(n, suffix) => format!(
                "the number {n}{}",
                suffix.map(String::from).unwrap_or_default()
            ),
            Tok::Punct(p) => format!("`{p}`"),
            Tok::Comment(_) => "a comment".to_owned(),
        }
    }
}

const PUNCT: [&str; 15] = [
    "->", "<=", ">=", "{", "}", "(", ")", "[", "]", ",", ":", "=", ".", "<", ">",
];

/// Splits `text` into tokens with their positions; `#` and `//` start comments. With
/// `foreign`, the vLLM Semantic Router dialect: names may hold `/`, `//` is not a
/// comment, and `→` is an arrow.
pub fn lex(text: &str, foreign: bool) -> Result<Vec<(Tok, Pos)>, (Pos, String)> {
    let is_name_char = |c: char| is_name_char(c) || (foreign && c == '/');
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let (mut i, mut line, mut column) = (0usize, 1u64, 1u64);
    while i < chars.len() {
        let c = chars[i];
        let pos = Pos { line, column };
        let advance = |n: usize, i: &mut usize, column: &mut u64| {
            *i += n;
            *column += n as u64;
        };
        if c == '\n' {
            i += 1;
            line += 1;
            column = 1;
        } else if c.is_whitespace() {
            advance(1, &mut i, &mut column);
        } else if foreign && c == '→' {
            out.push((Tok::Punct("->"), pos));
            advance(1, &mut i, &mut column);
        } else if c == '#' || (!foreign && c == '/' && chars.get(i + 1) == Some(&'/')) {
            let start = i + if c == '#' { 1 } else { 2 };
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            let body: String = chars[start.min(i)..i].iter().collect();
            out.push((Tok::Comment(body.trim_end().to_owned()), pos));
        } else if c == '"' {
            let mut s = String::new();
            let mut j = i + 1;
            loop {
                match chars.get(j) {
                    None | Some('\n') => {
                        return Err((
                            pos,
                            "this string is not closed: add `\"` before the line ends".to_owned(),
                        ));
                    }
                    Some('"') => break,
                    Some('\\') => {
                        let escaped = match chars.get(j + 1) {
                            Some('n') => '\n',
                            Some('t') => '\t',
                            Some('r') => '\r',
                            Some('b') => '\u{8}',
                            Some('f') => '\u{c}',
                            Some('/') => '/',
                            Some('"') => '"',
                            Some('\\') => '\\',
                            Some('u') => {
                                let hex: String = chars.iter().skip(j + 2).take(4).collect();
                                let code =
                                    u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                                match code {
                                    Some(ch) => {
                                        s.push(ch);
                                        j += 6;
                                        continue;
                                    }
                                    None => {
                                        return Err((
                                            pos,
                                            format!(
                                                "`\\u{hex}` is not a character: write four hex digits"
                                            ),
                                        ));
                                    }
                                }
                            }
                            other => {
                                return Err((
                                    pos,
                                    format!(
                                        "unknown escape `\\{}` in a string: use \\n, \\t, \\r, \\\", \\\\ or \\uXXXX",
                                        other.copied().unwrap_or(' ')
                                    ),
                                ));
                            }
                        };
                        s.push(escaped);
                        j += 2;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        j += 1;
                    }
                }
            }
            out.push((Tok::Str(s), pos));
            advance(j + 1 - i, &mut i, &mut column);
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let mut j = i + 1;
            while chars.get(j).is_some_and(|d| d.is_ascii_digit()) {
                j += 1;
            }
            if chars.get(j) == Some(&'.') && chars.get(j + 1).is_some_and(char::is_ascii_digit) {
                j += 1;
                while chars.get(j).is_some_and(char::is_ascii_digit) {
                    j += 1;
                }
            }
            if matches!(chars.get(j), Some('e' | 'E'))
                && chars
                    .get(j + 1)
                    .is_some_and(|d| d.is_ascii_digit() || *d == '-' || *d == '+')
            {
                j += 2;
                while chars.get(j).is_some_and(char::is_ascii_digit) {
                    j += 1;
                }
            }
            let number: String = chars[i..j].iter().collect();
            let mut suffix = None;
            if let Some(s @ ('K' | 'M' | 'k' | 'm')) = chars.get(j).copied()
                && !chars.get(j + 1).is_some_and(|n| is_name_char(*n))
            {
                suffix = Some(s.to_ascii_uppercase());
                j += 1;
            }
            if chars.get(j).is_some_and(|n| is_name_char(*n)) {
                let word: String = chars[i..]
                    .iter()
                    .take_while(|n| is_name_char(**n))
                    .collect();
                return Err((
                    pos,
                    format!(
                        "`{word}` starts like a number: quote a name that starts with a digit (\"{word}\")"
                    ),
                ));
            }
            out.push((Tok::Num(number, suffix), pos));
            advance(j - i, &mut i, &mut column);
        } else if c.is_alphabetic() || c == '_' {
            let mut j = i + 1;
            while chars.get(j).is_some_and(|n| is_name_char(*n)) {
                j += 1;
            }
            // A name does not end with `.` or `-` (so `x.confidence` after `)` and
            // `a -> b` lex as intended).
            while j > i + 1 && matches!(chars[j - 1], '.' | '-') {
                j -= 1;
            }
            out.push((Tok::Ident(chars[i..j].iter().collect()), pos));
            advance(j - i, &mut i, &mut column);
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            match PUNCT.iter().find(|p| rest.starts_with(**p)) {
                Some(p) => {
                    out.push((Tok::Punct(p), pos));
                    advance(p.len(), &mut i, &mut column);
                }
                None => return Err((pos, format!("unexpected character `{c}`"))),
            }
        }
    }
    Ok(out)
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.')
}
