//! Reading configuration mistakes: the nearest valid name to a typo, and the parts of
//! a YAML deserializer's message (the unknown key and the keys it expected).

/// The candidate closest to `wrong`, if one is close enough to be a likely typo.
pub fn suggest<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wrong_lower = wrong.to_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(&wrong_lower, &c.to_lowercase()),
                c,
            )
        })
        .filter(|(distance, c)| {
            let limit = (c.chars().count().max(wrong.chars().count()) / 3).max(1);
            *distance <= limit
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

/// Drops a trailing " at line L column C" that some messages carry; the diagnostic
/// reports the location itself.
pub fn strip_location(message: &str) -> String {
    let first = message.lines().next().unwrap_or(message).trim();
    match first.rfind(" at line ") {
        Some(i) => first[..i].to_owned(),
        None => first.to_owned(),
    }
}

/// Reads serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a`",
/// "expected `a` or `b`").
pub fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.split("unknown field `").nth(1)?;
    let (wrong, rest) = rest.split_once('`')?;
    let expected_part = rest.split("expected").nth(1)?;
    let expected_part = expected_part.trim().trim_start_matches("one of").trim();
    let expected = expected_part
        .split([','])
        .flat_map(|part| part.split("` or `"))
        .map(|name| name.trim().trim_matches('`').to_owned())
        .filter(|name| !name.is_empty())
        .collect::<Vec<_>>();
    Some((wrong.to_owned(), expected))
}
