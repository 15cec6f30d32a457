//! The upstream request's fields the gateway itself sets, in one place: the model's
//! upstream name (or LoRA adapter) and the route's candidate options before plugins
//! run; the retention field and the usage chunk of streams after them, so that no
//! plugin or client can set those.

use crate::exchange::Exchange;
use crate::runtime::Runtime;
use switchyard_router::plugins::reasoning::{self, Reasoning};
use switchyard_wire::StreamOptions;
use switchyard_wire::headers::KV_RETENTION_FIELD;

/// The chosen model's upstream name and the route's options for that candidate: a
/// LoRA adapter is asked for by its name; thinking and effort go through the model
/// family's switch ([`reasoning::apply`]), replacing what the client sent.
pub fn for_candidate(runtime: &Runtime, x: &mut Exchange) {
    let Some(selected) = &x.selected else {
        return;
    };
    let Some(model) = runtime.policy.config.models.get(selected.model) else {
        return;
    };
    x.request.model = model.upstream_name().to_owned();
    let options = x
        .route(runtime)
        .and_then(|route| route.options_for(selected.model));
    if let Some(options) = options {
        if let Some(adapter) = &options.lora {
            x.request.model.clone_from(adapter);
        }
        let setting = Reasoning {
            enabled: options.reasoning,
            effort: options.effort,
            budget_tokens: None,
        };
        reasoning::apply(model.family, setting, &mut x.request);
    }
}

/// The gateway's own protocol fields: a client's `kv_retention` is dropped and the
/// planned hint is written when `retention.body_field` is on; a streamed request
/// always asks for usage (the log and metrics need real token counts), and the
/// usage-only chunk is hidden from a client that did not ask for it.
pub fn gateway_fields(runtime: &Runtime, x: &mut Exchange) {
    x.request.extra.remove(KV_RETENTION_FIELD);
    let hint = x.placed.as_ref().and_then(|p| p.retention);
    if let (Some(hint), true) = (hint, runtime.policy.config.retention.body_field) {
        x.request.extra.insert(
            KV_RETENTION_FIELD.to_owned(),
            serde_json::json!({"priority": hint.priority, "ttl_ms": hint.ttl_ms}),
        );
    }
    x.hide_usage = x.conversation.stream && !x.request.wants_stream_usage();
    if x.hide_usage {
        x.request
            .stream_options
            .get_or_insert_with(StreamOptions::default)
            .include_usage = Some(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use switchyard_policy::Effort;
    use switchyard_router::plugins::reasoning::apply;

    #[test]
    fn candidate_options_shape_the_upstream_request() {
        let mut request: switchyard_wire::ChatRequest = serde_json::from_value(json!({
            "model": "qwen3-8b",
            "messages": [{"role": "user", "content": "hi"}],
            "chat_template_kwargs": {"custom": 1, "enable_thinking": false},
            "reasoning_effort": "low",
        }))
        .unwrap_or_else(|e| unreachable!("{e}"));
        let setting = Reasoning {
            enabled: Some(true),
            effort: Some(Effort::High),
            budget_tokens: None,
        };
        apply(None, setting, &mut request);
        let sent = serde_json::to_value(&request).unwrap_or_default();
        assert_eq!(
            sent["chat_template_kwargs"],
            json!({"custom": 1, "enable_thinking": true})
        );
        assert_eq!(sent["reasoning_effort"], "high");
        let mut plain = request.clone();
        apply(None, Reasoning::default(), &mut plain);
        assert_eq!(
            serde_json::to_value(&plain).unwrap_or_default(),
            sent,
            "no options, no change"
        );
    }
}
