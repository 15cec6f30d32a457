//! Labelled JSONL, as trainers and evaluations read it: one object per line with a
//! text and a label.

use std::path::Path;

/// One labelled row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledRow {
    /// The text.
    pub text: String,
    /// Its label.
    pub label: String,
    /// Its line in the file (1-based).
    pub line: usize,
}

/// Fields tried, in order, when none is named.
pub const TEXT_FIELDS: [&str; 3] = ["text", "prompt", "question"];
/// Fields tried, in order, when none is named.
pub const LABEL_FIELDS: [&str; 3] = ["label", "category", "domain"];

/// Reads `path`: each non-blank line a JSON object whose `text_field` (or the first of
/// [`TEXT_FIELDS`] present) is a string and whose `label_field` (or the first of
/// [`LABEL_FIELDS`]) is a string. Errors name the file and line.
pub fn read_labelled(
    path: &Path,
    text_field: Option<&str>,
    label_field: Option<&str>,
) -> Result<Vec<LabelledRow>, String> {
    let content = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_labelled(&content, text_field, label_field)
        .map_err(|(line, reason)| format!("{}:{line}: {reason}", path.display()))
}

/// Every non-blank line of a JSONL file as JSON, with its line number; errors name
/// the file and line.
pub fn read_jsonl(path: &Path) -> Result<Vec<(usize, serde_json::Value)>, String> {
    let content = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_jsonl(&content).map_err(|(line, reason)| format!("{}:{line}: {reason}", path.display()))
}

/// [`read_jsonl`] on text already read; errors carry the line.
pub fn parse_jsonl(content: &str) -> Result<Vec<(usize, serde_json::Value)>, (usize, String)> {
    content
        .lines()
        .enumerate()
        .filter(|(_, raw)| !raw.trim().is_empty())
        .map(|(i, raw)| {
            serde_json::from_str(raw)
                .map(|v| (i + 1, v))
                .map_err(|e| (i + 1, format!("not JSON: {e}")))
        })
        .collect()
}

/// [`read_labelled`] on text already read; errors carry the line.
pub fn parse_labelled(
    content: &str,
    text_field: Option<&str>,
    label_field: Option<&str>,
) -> Result<Vec<LabelledRow>, (usize, String)> {
    let mut rows = Vec::new();
    for (line, value) in parse_jsonl(content)? {
        let object = value
            .as_object()
            .ok_or((line, "expected a JSON object".to_owned()))?;
        let field = |named: Option<&str>, candidates: &[&str], what: &str| {
            let names: Vec<&str> = named.map_or_else(|| candidates.to_vec(), |n| vec![n]);
            names
                .iter()
                .find_map(|n| object.get(*n).map(|v| (*n, v)))
                .ok_or_else(|| {
                    (
                        line,
                        format!(
                            "no {what} field: expected one of {} (name another with --{what}-field)",
                            names.join(", ")
                        ),
                    )
                })
                .and_then(|(n, v)| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| (line, format!("`{n}` is not a string")))
                })
        };
        let text = field(text_field, &TEXT_FIELDS, "text")?;
        let label = field(label_field, &LABEL_FIELDS, "label")?;
        if text.trim().is_empty() {
            return Err((line, "the text is empty".to_owned()));
        }
        rows.push(LabelledRow { text, label, line });
    }
    if rows.is_empty() {
        return Err((1, "no rows".to_owned()));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_either_field_name_and_skips_blank_lines() {
        let rows = parse_labelled(
            "{\"prompt\":\"a\",\"category\":\"x\"}\n\n{\"text\":\"b\",\"label\":\"y\"}\n",
            None,
            None,
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[1].text.as_str(), rows[1].label.as_str(), rows[1].line),
            ("b", "y", 3)
        );
        let named = parse_labelled("{\"q\":\"a\",\"c\":\"x\"}", Some("q"), Some("c")).unwrap();
        assert_eq!(named[0].label, "x");
    }

    #[test]
    fn errors_name_the_line_and_the_fix() {
        let (line, reason) = parse_labelled(
            "{\"text\":\"a\",\"label\":\"x\"}\n{\"text\":\"b\"}",
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(line, 2);
        assert!(reason.contains("--label-field"), "{reason}");
        assert_eq!(parse_labelled("[1]", None, None).unwrap_err().0, 1);
        assert!(
            parse_labelled("{\"text\":1,\"label\":\"x\"}", None, None)
                .unwrap_err()
                .1
                .contains("not a string")
        );
        assert!(
            parse_labelled("{oops", None, None)
                .unwrap_err()
                .1
                .contains("not JSON")
        );
        assert!(parse_labelled("", None, None).is_err());
    }
}
