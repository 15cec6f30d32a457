//! `system_prompt`: inserts, replaces or appends to the system message.

use super::template::Template;
use super::{Context, Flow, Plugin, PluginError, RequestInfo, State, UpstreamRequest};
use serde::Deserialize;
use serde_json::{Map, Value};
use switchyard_wire::{Message, MessageContent};

/// Where the text goes.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Mode {
    /// A new system message before everything the client sent (default).
    #[default]
    Insert,
    /// The client's system and developer messages are dropped; this one stands first.
    Replace,
    /// Added to the end of the client's first system message (inserted when it has none).
    Append,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// The text; `{{route}}`, `{{model}}` and `{{request_id}}` are filled in.
    text: String,
    /// `insert`, `replace` or `append`.
    #[serde(default)]
    mode: Mode,
}

#[derive(Debug)]
struct SystemPrompt {
    text: Template,
    mode: Mode,
}

/// Builds the plugin from its options.
pub fn build(
    options: &Map<String, Value>,
    _context: &Context<'_>,
) -> Result<Box<dyn Plugin>, String> {
    let o: Options = super::options(options)?;
    Ok(Box::new(SystemPrompt {
        text: Template::parse(&o.text)?,
        mode: o.mode,
    }))
}

fn system(text: String) -> Message {
    Message {
        role: "system".to_owned(),
        content: Some(MessageContent::Text(text)),
        extra: Map::new(),
    }
}

impl Plugin for SystemPrompt {
    fn on_request(
        &self,
        info: &RequestInfo<'_>,
        upstream: &mut UpstreamRequest<'_>,
        _state: &mut State,
    ) -> Result<Flow, PluginError> {
        let text = self.text.render(info);
        let messages = &mut upstream.body.messages;
        match self.mode {
            Mode::Insert => messages.insert(0, system(text)),
            Mode::Replace => {
                messages.retain(|m| m.role != "system" && m.role != "developer");
                messages.insert(0, system(text));
            }
            Mode::Append => match messages.iter_mut().find(|m| m.role == "system") {
                Some(first) => {
                    let mut joined = first
                        .content
                        .as_ref()
                        .map(MessageContent::text)
                        .unwrap_or_default();
                    if !joined.is_empty() {
                        joined.push_str("\n\n");
                    }
                    joined.push_str(&text);
                    first.content = Some(MessageContent::Text(joined));
                }
                None => messages.insert(0, system(text)),
            },
        }
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use serde_json::json;

    fn run(options: Value, messages: Value) -> Vec<(String, String)> {
        let plugin = build(options.as_object().unwrap(), &Context::default()).unwrap();
        let mut body: switchyard_wire::ChatRequest =
            serde_json::from_value(json!({"model": "m", "messages": messages})).unwrap();
        let mut headers = HeaderMap::new();
        let info = RequestInfo {
            request_id: "r",
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
        let mut upstream = UpstreamRequest {
            body: &mut body,
            headers: &mut headers,
        };
        assert_eq!(
            plugin.on_request(&info, &mut upstream, &mut None).unwrap(),
            Flow::Continue
        );
        body.messages
            .iter()
            .map(|m| {
                (
                    m.role.clone(),
                    m.content
                        .as_ref()
                        .map(MessageContent::text)
                        .unwrap_or_default(),
                )
            })
            .collect()
    }

    fn pair(role: &str, text: &str) -> (String, String) {
        (role.to_owned(), text.to_owned())
    }

    #[test]
    fn inserts_replaces_and_appends() {
        let sent =
            json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]);
        let got = run(json!({"text": "Route {{route}}."}), sent.clone());
        assert_eq!(
            got,
            [
                pair("system", "Route coding."),
                pair("system", "be brief"),
                pair("user", "hi")
            ]
        );
        let got = run(
            json!({"text": "House rules", "mode": "replace"}),
            sent.clone(),
        );
        assert_eq!(got, [pair("system", "House rules"), pair("user", "hi")]);
        let got = run(json!({"text": "Model {{model}}", "mode": "append"}), sent);
        assert_eq!(
            got,
            [
                pair("system", "be brief\n\nModel coder"),
                pair("user", "hi")
            ]
        );
        let got = run(
            json!({"text": "x", "mode": "append"}),
            json!([{"role": "user", "content": "hi"}]),
        );
        assert_eq!(got, [pair("system", "x"), pair("user", "hi")]);
    }

    #[test]
    fn bad_options_are_named() {
        let e = build(
            json!({"txt": "x"}).as_object().unwrap(),
            &Context::default(),
        )
        .unwrap_err();
        assert!(
            e.contains("`txt`") && e.contains("did you mean `text`"),
            "{e}"
        );
        let e = build(
            json!({"text": "x", "mode": "prepend"}).as_object().unwrap(),
            &Context::default(),
        )
        .unwrap_err();
        assert!(e.contains("prepend"), "{e}");
    }
}
