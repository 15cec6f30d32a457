//! Text with `{{route}}` and `{{model}}` in it, checked when the plugin is built.

use super::RequestInfo;

/// The names a template may use.
const NAMES: [&str; 3] = ["route", "model", "request_id"];

/// A checked template.
#[derive(Debug, Clone)]
pub struct Template {
    text: String,
    /// Whether it has any `{{…}}` (plain text is used as it is).
    fills: bool,
}

impl Template {
    /// Checks that every `{{name}}` is known and every `{{` closes.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut rest = text;
        let mut fills = false;
        while let Some(open) = rest.find("{{") {
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("`{{{{` without `}}}}` in {text:?}"))?;
            let name = after[..close].trim();
            if !NAMES.contains(&name) {
                let hint = switchyard_wire::typos::suggest(name, NAMES)
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                return Err(format!(
                    "unknown template name `{{{{{name}}}}}`{hint} (known: {})",
                    NAMES.join(", ")
                ));
            }
            fills = true;
            rest = &after[close + 2..];
        }
        Ok(Template {
            text: text.to_owned(),
            fills,
        })
    }

    /// The text for one request.
    pub fn render(&self, info: &RequestInfo<'_>) -> String {
        if !self.fills {
            return self.text.clone();
        }
        let mut out = String::with_capacity(self.text.len() + 32);
        let mut rest = self.text.as_str();
        while let Some(open) = rest.find("{{") {
            out.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                break;
            };
            out.push_str(match after[..close].trim() {
                "route" => info.route,
                "model" => info.model,
                _ => info.request_id,
            });
            rest = &after[close + 2..];
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_known_names_and_refuses_unknown_ones() {
        let info = RequestInfo {
            request_id: "r1",
            route: "coding",
            model: "coder",
            family: None,
            stream: false,
            dry_run: false,
            embedding: None,
            caller: None,
            roles: &[],
            headers: &[],
            embedder: None,
            prompt_tokens: 0,
            output_tokens: 0,
            price: None,
        };
        let t = Template::parse("Route {{ route }} on {{model}}.").unwrap();
        assert_eq!(t.render(&info), "Route coding on coder.");
        assert_eq!(Template::parse("plain").unwrap().render(&info), "plain");
        let e = Template::parse("{{modle}}").unwrap_err();
        assert!(e.contains("did you mean `model`"), "{e}");
        assert!(Template::parse("{{route").is_err());
    }
}
