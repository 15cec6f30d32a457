//! The canonical, dialect-neutral view of a request.

use crate::chat::ChatRequest;
use crate::hash::{FNV_OFFSET, fnv1a};
use crate::tokens::estimate_tokens;
use serde::Serialize;
use serde_json::Value;

/// One turn of a conversation, reduced to what signals read.
#[derive(Debug, Clone, Serialize)]
pub struct Turn {
    /// The speaker's role as sent (`system`, `user`, `assistant`, `tool`, …).
    pub role: String,
    /// The text of the turn (text parts joined).
    pub text: String,
    /// Parts that are not text (images, audio, files).
    pub non_text_parts: usize,
    /// Of those, images (`image_url` and `input_image` parts).
    pub images: usize,
    /// Tool calls the turn makes (an assistant's `tool_calls`, or a legacy
    /// `function_call`).
    pub tool_calls: usize,
}

/// Prompt tokens one image counts for: vision encoders spend hundreds to thousands
/// of tokens on an image; this is the count vLLM Semantic Router uses, so context
/// ranges read near their edges agree.
pub const IMAGE_TOKENS: u32 = 8_192;

/// Tokens a JSON value takes in a prompt, estimated from its text.
fn json_tokens(value: &Value) -> u32 {
    serde_json::to_string(value).map_or(0, |text| estimate_tokens(&text))
}

/// What the router knows about a request once its dialect is parsed away.
#[derive(Debug, Clone, Serialize)]
pub struct Conversation {
    /// The model the client asked for.
    pub requested_model: String,
    /// The turns, in order.
    pub turns: Vec<Turn>,
    /// How many tools the request defines.
    pub tools_defined: usize,
    /// Whether the answer is streamed.
    pub stream: bool,
    /// The client's cap on generated tokens, if any.
    pub output_cap: Option<u32>,
    /// Answers asked for (`n`, default 1): each generates its own output.
    pub answers: u32,
    /// Session identity, when the client sent one (`x-session-id` header or `user` field).
    pub session_id: Option<String>,
    /// Estimated prompt tokens over every turn, with [`Conversation::extra_tokens`].
    pub prompt_tokens: u32,
    /// Prompt tokens that are not turn text: tool definitions and the arguments of
    /// earlier tool calls (estimated from their JSON), and [`IMAGE_TOKENS`] per image.
    pub extra_tokens: u32,
    /// Named values signals may read: `metadata:KEY` from the request's `metadata`
    /// object, and `header:NAME` for the headers a policy asks for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<(String, String)>,
}

impl Conversation {
    /// Builds the canonical view of an OpenAI chat request.
    pub fn from_chat(request: &ChatRequest, session_header: Option<&str>) -> Self {
        let turns: Vec<Turn> = request
            .messages
            .iter()
            .map(|m| {
                let (text, non_text_parts, images) = match &m.content {
                    Some(c) => (c.text(), c.non_text_parts(), c.images()),
                    None => (String::new(), 0, 0),
                };
                let tool_calls = m
                    .extra
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
                    + usize::from(m.extra.get("function_call").is_some_and(Value::is_object));
                Turn {
                    role: m.role.clone(),
                    text,
                    non_text_parts,
                    images,
                    tool_calls,
                }
            })
            .collect();
        let tools = request.extra.get("tools").and_then(Value::as_array);
        let tools_defined = tools.map_or(0, Vec::len);
        // What the model reads besides turn text: the tool schemas, the arguments of
        // earlier tool calls, and the images.
        let images: usize = turns.iter().map(|t| t.images).sum();
        let extra_tokens = request
            .messages
            .iter()
            .filter_map(|m| {
                m.extra
                    .get("tool_calls")
                    .or_else(|| m.extra.get("function_call"))
            })
            .chain(tools.into_iter().flatten())
            .map(json_tokens)
            .fold(0u32, u32::saturating_add)
            .saturating_add(
                u32::try_from(images)
                    .unwrap_or(u32::MAX)
                    .saturating_mul(IMAGE_TOKENS),
            );
        let prompt_tokens = turns
            .iter()
            // Each message carries a few framing tokens in chat templates.
            .map(|t| estimate_tokens(&t.text).saturating_add(4))
            .fold(extra_tokens, u32::saturating_add);
        let session_id = session_header.map(str::to_owned).or_else(|| {
            request
                .extra
                .get("user")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        let attributes = request
            .extra
            .get("metadata")
            .and_then(Value::as_object)
            .map(|entries| {
                entries
                    .iter()
                    .map(|(k, v)| {
                        let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                        (format!("metadata:{k}"), text)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Conversation {
            requested_model: request.model.clone(),
            turns,
            tools_defined,
            stream: request.is_stream(),
            output_cap: request.output_cap(),
            answers: request.answers(),
            session_id,
            prompt_tokens,
            extra_tokens,
            attributes,
        }
    }

    /// Builds a one-turn conversation from a bare prompt (dry runs, benchmarks).
    pub fn from_prompt(model: &str, prompt: &str) -> Self {
        Conversation {
            requested_model: model.to_owned(),
            turns: vec![Turn {
                role: "user".to_owned(),
                text: prompt.to_owned(),
                non_text_parts: 0,
                images: 0,
                tool_calls: 0,
            }],
            tools_defined: 0,
            stream: false,
            output_cap: None,
            answers: 1,
            session_id: None,
            prompt_tokens: estimate_tokens(prompt).saturating_add(4),
            extra_tokens: 0,
            attributes: Vec::new(),
        }
    }

    /// The value of an attribute (`metadata:KEY` or `header:name`), if present.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Records a request header a signal reads (the name is lower-cased).
    pub fn attach_header(&mut self, name: &str, value: &str) {
        self.attributes.push((
            format!("header:{}", name.to_ascii_lowercase()),
            value.to_owned(),
        ));
    }

    /// The text of the latest user turn, or "" when there is none.
    pub fn last_user_text(&self) -> &str {
        self.turns
            .iter()
            .rev()
            .find(|t| t.role == "user")
            .map_or("", |t| t.text.as_str())
    }

    /// A stable hash of the session identity, when there is one.
    pub fn session_hash(&self) -> Option<u64> {
        self.session_id
            .as_deref()
            .map(|s| fnv1a(s.as_bytes(), FNV_OFFSET))
    }

    /// A stable hash of the leading messages (system and developer turns up to and
    /// including the first user turn, at most 4 KiB of their text): requests that share
    /// it share a KV-cache prefix. `None` for a conversation with no turns.
    pub fn prefix_fingerprint(&self) -> Option<u64> {
        const LIMIT: usize = 4096;
        if self.turns.is_empty() {
            return None;
        }
        let mut hash = FNV_OFFSET;
        let mut taken = 0;
        for turn in &self.turns {
            let text = turn.text.as_bytes();
            let take = text.len().min(LIMIT - taken);
            hash = fnv1a(turn.role.as_bytes(), hash);
            hash = fnv1a(&text[..take], hash);
            taken += take;
            if turn.role == "user" || taken >= LIMIT {
                break;
            }
        }
        Some(hash)
    }

    /// Iterates over the texts of every user turn.
    pub fn user_texts(&self) -> impl Iterator<Item = &str> {
        self.turns
            .iter()
            .filter(|t| t.role == "user")
            .map(|t| t.text.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_last_user_turn_tools_and_session() {
        let req: ChatRequest = serde_json::from_str(
            r#"{"model":"auto","user":"u-1","tools":[{},{}],"max_tokens":7,
                "messages":[{"role":"system","content":"be brief"},
                            {"role":"user","content":"first"},
                            {"role":"assistant","content":"ok"},
                            {"role":"user","content":[{"type":"text","text":"second"}]}]}"#,
        )
        .unwrap();
        let c = Conversation::from_chat(&req, None);
        assert_eq!(c.last_user_text(), "second");
        assert_eq!(c.user_texts().count(), 2);
        assert_eq!(c.tools_defined, 2);
        assert_eq!(c.session_id.as_deref(), Some("u-1"));
        assert_eq!(c.output_cap, Some(7));
        let header = Conversation::from_chat(&req, Some("s-9"));
        assert_eq!(header.session_id.as_deref(), Some("s-9"));
        assert!(c.prompt_tokens >= 16);
    }

    #[test]
    fn tool_schemas_tool_call_arguments_and_images_count_as_prompt_tokens() {
        let chat = |body: &str| -> Conversation {
            let req: ChatRequest = serde_json::from_str(body).unwrap();
            Conversation::from_chat(&req, None)
        };
        let plain =
            chat(r#"{"model":"m","messages":[{"role":"user","content":"what is the weather"}]}"#);
        assert_eq!(plain.extra_tokens, 0);
        let schema = r#"{"type":"function","function":{"name":"get_weather","description":"Current weather for a city, in Celsius","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}"#;
        let with_tool = chat(&format!(
            r#"{{"model":"m","tools":[{schema}],"messages":[{{"role":"user","content":"what is the weather"}}]}}"#
        ));
        let schema_tokens = estimate_tokens(schema);
        assert!(schema_tokens > 20, "{schema_tokens}");
        assert_eq!(with_tool.extra_tokens, schema_tokens);
        assert_eq!(with_tool.prompt_tokens, plain.prompt_tokens + schema_tokens);
        // An earlier call's arguments are read by the model too.
        let call = r#"[{"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Lisbon\"}"}}]"#;
        let after_call = chat(&format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"what is the weather"}},{{"role":"assistant","content":null,"tool_calls":{call}}},{{"role":"tool","tool_call_id":"c1","content":"21"}}]}}"#
        ));
        let call_tokens = estimate_tokens(
            &serde_json::to_string(&serde_json::from_str::<Value>(call).unwrap()).unwrap(),
        );
        assert_eq!(after_call.extra_tokens, call_tokens);
        let image = chat(
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"what is this"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]}"#,
        );
        assert_eq!(image.extra_tokens, 2 * IMAGE_TOKENS);
        assert!(image.prompt_tokens > 2 * IMAGE_TOKENS);
    }

    #[test]
    fn prefix_fingerprint_covers_the_system_prompt_and_first_user_turn_only() {
        let chat = |turns: &str| -> Conversation {
            let req: ChatRequest =
                serde_json::from_str(&format!(r#"{{"model":"auto","messages":[{turns}]}}"#))
                    .unwrap();
            Conversation::from_chat(&req, None)
        };
        let sys = r#"{"role":"system","content":"you are a pirate"}"#;
        let first = r#"{"role":"user","content":"ahoy"}"#;
        let later = r#"{"role":"assistant","content":"arr"},{"role":"user","content":"more"}"#;
        let a = chat(&format!("{sys},{first}"));
        let b = chat(&format!("{sys},{first},{later}"));
        let c = chat(&format!(
            r#"{{"role":"system","content":"you are a poet"}},{first}"#
        ));
        assert_eq!(a.prefix_fingerprint(), b.prefix_fingerprint());
        assert_ne!(a.prefix_fingerprint(), c.prefix_fingerprint());
        assert_eq!(a.session_hash(), None);
        let d = Conversation::from_chat(
            &serde_json::from_str(r#"{"model":"m","user":"u","messages":[]}"#).unwrap(),
            None,
        );
        assert_eq!(d.prefix_fingerprint(), None);
        assert!(d.session_hash().is_some());
    }
}
