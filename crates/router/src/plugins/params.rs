//! `params`: defaults and caps on request parameters, for every model or some.

use super::{Context, Flow, ModelFilter, Plugin, PluginError, RequestInfo, State, UpstreamRequest};
use serde::Deserialize;
use serde_json::{Map, Value};
use switchyard_wire::StreamOptions;

/// Fields of the Chat Completions API (and the reasoning switches the gateway sends);
/// `drop_unknown` removes every other.
const KNOWN: [&str; 33] = [
    "model",
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "n",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "user",
    "seed",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning_effort",
    "modalities",
    "audio",
    "prediction",
    "service_tier",
    "store",
    "metadata",
    "verbosity",
    "functions",
    "function_call",
    "chat_template_kwargs",
    "thinking",
];

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct Range {
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Only requests answered by these models (default: every model).
    #[serde(default)]
    models: Vec<String>,
    /// The most tokens an answer may have: a larger or missing cap is set to this.
    #[serde(default)]
    max_tokens: Option<u32>,
    /// The range `temperature` is clamped into (when the client sends one).
    #[serde(default)]
    temperature: Option<Range>,
    /// Streamed answers end with a usage chunk, asked for or not.
    #[serde(default)]
    stream_usage: bool,
    /// Fields the Chat Completions API does not define are removed.
    #[serde(default)]
    drop_unknown: bool,
    /// Fields set when the client did not send them.
    #[serde(default)]
    defaults: Map<String, Value>,
}

#[derive(Debug)]
struct Params {
    models: ModelFilter,
    o: Options,
}

/// Builds the plugin from its options.
pub fn build(
    options: &Map<String, Value>,
    context: &Context<'_>,
) -> Result<Box<dyn Plugin>, String> {
    let mut o: Options = super::options(options)?;
    let models = ModelFilter::checked(std::mem::take(&mut o.models), context)?;
    if o.max_tokens == Some(0) {
        return Err("max_tokens: a cap of 0 leaves no answer".to_owned());
    }
    if let Some(Range { min, max }) = o.temperature {
        let (lo, hi) = (min.unwrap_or(0.0), max.unwrap_or(2.0));
        if !(lo.is_finite() && hi.is_finite() && lo <= hi && lo >= 0.0) {
            return Err(format!(
                "temperature: the range [{lo}, {hi}] is empty or negative"
            ));
        }
    }
    for key in o.defaults.keys() {
        if ["model", "messages", "stream", "kv_retention"].contains(&key.as_str()) {
            return Err(format!(
                "defaults: `{key}` is not a parameter a plugin may set"
            ));
        }
    }
    Ok(Box::new(Params { models, o }))
}

impl Plugin for Params {
    fn on_request(
        &self,
        info: &RequestInfo<'_>,
        upstream: &mut UpstreamRequest<'_>,
        _state: &mut State,
    ) -> Result<Flow, PluginError> {
        let o = &self.o;
        if !self.models.applies(info.model) {
            return Ok(Flow::Continue);
        }
        let body = &mut *upstream.body;
        for (key, value) in &o.defaults {
            let sent = match key.as_str() {
                "max_tokens" => body.max_tokens.is_some(),
                "max_completion_tokens" => body.max_completion_tokens.is_some(),
                "stream_options" => body.stream_options.is_some(),
                _ => body.extra.contains_key(key),
            };
            if !sent {
                set(body, key, value.clone())?;
            }
        }
        if let Some(cap) = o.max_tokens {
            body.cap_output(cap);
        }
        if let (Some(range), Some(t)) = (
            o.temperature,
            body.extra.get("temperature").and_then(Value::as_f64),
        ) {
            let clamped = t
                .max(range.min.unwrap_or(f64::MIN))
                .min(range.max.unwrap_or(f64::MAX));
            if clamped != t {
                body.extra
                    .insert("temperature".to_owned(), Value::from(clamped));
            }
        }
        if o.stream_usage && body.is_stream() {
            body.stream_options
                .get_or_insert_with(StreamOptions::default)
                .include_usage = Some(true);
        }
        if o.drop_unknown {
            body.extra.retain(|key, _| KNOWN.contains(&key.as_str()));
        }
        Ok(Flow::Continue)
    }
}

/// Sets a typed or free field from a default.
fn set(
    body: &mut switchyard_wire::ChatRequest,
    key: &str,
    value: Value,
) -> Result<(), PluginError> {
    let bad = |e: serde_json::Error| PluginError::new(format!("defaults.{key}: {e}"));
    match key {
        "max_tokens" => body.max_tokens = serde_json::from_value(value).map_err(bad)?,
        "max_completion_tokens" => {
            body.max_completion_tokens = serde_json::from_value(value).map_err(bad)?
        }
        "stream_options" => body.stream_options = serde_json::from_value(value).map_err(bad)?,
        _ => {
            body.extra.insert(key.to_owned(), value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use serde_json::json;

    fn run(options: Value, model: &str, request: Value) -> Value {
        let context = Context {
            models: &["small", "big"],
            ..Context::default()
        };
        let plugin = build(options.as_object().unwrap(), &context).unwrap();
        let mut body: switchyard_wire::ChatRequest = serde_json::from_value(request).unwrap();
        let mut headers = HeaderMap::new();
        let info = RequestInfo {
            request_id: "r",
            route: "r",
            model,
            family: None,
            stream: body.is_stream(),
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
        plugin.on_request(&info, &mut upstream, &mut None).unwrap();
        serde_json::to_value(&body).unwrap()
    }

    #[test]
    fn caps_clamps_defaults_and_drops() {
        let request = json!({"model": "m", "messages": [], "max_tokens": 5000, "temperature": 1.7,
                             "stream": true, "vendor_knob": 1, "top_p": 0.5});
        let options = json!({"max_tokens": 1024, "temperature": {"max": 1.0}, "stream_usage": true,
                             "drop_unknown": true, "defaults": {"top_p": 0.9, "seed": 7}});
        let got = run(options.clone(), "small", request.clone());
        assert_eq!(got["max_tokens"], 1024);
        assert_eq!(got["temperature"], 1.0);
        assert_eq!(got["stream_options"]["include_usage"], true);
        assert_eq!(got["top_p"], 0.5, "a client's value is kept");
        assert_eq!(got["seed"], 7);
        assert!(got.get("vendor_knob").is_none());
        let uncapped = run(
            json!({"max_tokens": 100}),
            "small",
            json!({"model": "m", "messages": []}),
        );
        assert_eq!(uncapped["max_tokens"], 100, "a missing cap is set");
        let other = run(
            json!({"models": ["big"], "max_tokens": 10}),
            "small",
            request,
        );
        assert_eq!(other["max_tokens"], 5000, "only the listed models");
    }

    #[test]
    fn bad_options_are_named() {
        let context = Context {
            models: &["small"],
            ..Context::default()
        };
        for (options, words) in [
            (json!({"models": ["smal"]}), "did you mean `small`"),
            (json!({"max_tokens": 0}), "leaves no answer"),
            (json!({"temperature": {"min": 2, "max": 1}}), "empty"),
            (json!({"defaults": {"model": "x"}}), "`model`"),
            (json!({"max_token": 5}), "did you mean `max_tokens`"),
        ] {
            let e = build(options.as_object().unwrap(), &context).unwrap_err();
            assert!(e.contains(words), "{options}: {e}");
        }
    }
}
