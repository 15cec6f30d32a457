//! `reasoning`: turns a model's thinking on or off, and sets its effort, with the
//! switch its family reads. [`apply`] is also how a route's candidate options
//! (`reasoning`, `effort`) reach the request.

use super::{Context, Flow, ModelFilter, Plugin, PluginError, RequestInfo, State, UpstreamRequest};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use switchyard_policy::{Effort, ModelFamily};
use switchyard_wire::ChatRequest;

/// What to ask of a model's thinking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reasoning {
    /// Thinking on or off (absent: as the client asked).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// How hard to think: `low`, `medium`, `high`.
    #[serde(default)]
    pub effort: Option<Effort>,
    /// Tokens of thinking allowed (the `anthropic` family; default by effort).
    #[serde(default)]
    pub budget_tokens: Option<u32>,
}

/// Sets `key` in `chat_template_kwargs`, keeping what the client put there.
fn template_kwarg(request: &mut ChatRequest, key: &str, on: bool) {
    let kwargs = request
        .extra
        .entry("chat_template_kwargs")
        .or_insert_with(|| json!({}));
    if !kwargs.is_object() {
        *kwargs = json!({});
    }
    if let Some(map) = kwargs.as_object_mut() {
        map.insert(key.to_owned(), Value::Bool(on));
    }
}

fn effort_field(request: &mut ChatRequest, effort: &str) {
    request.extra.insert(
        "reasoning_effort".to_owned(),
        Value::String(effort.to_owned()),
    );
}

/// Writes `setting` into the request with `family`'s switch; a model of no family
/// gets `chat_template_kwargs.enable_thinking` and `reasoning_effort`. What the route
/// or plugin says replaces what the client sent.
pub fn apply(family: Option<ModelFamily>, setting: Reasoning, request: &mut ChatRequest) {
    match family {
        None => {
            if let Some(on) = setting.enabled {
                template_kwarg(request, "enable_thinking", on);
            }
            if let Some(effort) = setting.effort {
                effort_field(request, effort.name());
            }
        }
        Some(ModelFamily::Qwen3) => {
            if let Some(on) = setting.enabled.or(setting.effort.map(|_| true)) {
                template_kwarg(request, "enable_thinking", on);
            }
        }
        Some(ModelFamily::Deepseek) => {
            if let Some(on) = setting.enabled.or(setting.effort.map(|_| true)) {
                template_kwarg(request, "thinking", on);
            }
        }
        Some(ModelFamily::Openai) => match (setting.enabled, setting.effort) {
            (Some(false), _) => effort_field(request, "minimal"),
            (_, Some(effort)) => effort_field(request, effort.name()),
            _ => {}
        },
        Some(ModelFamily::Anthropic) => {
            let on = setting.enabled.or(setting.effort.map(|_| true));
            let value = match on {
                Some(false) => json!({"type": "disabled"}),
                Some(true) => {
                    let budget = setting.budget_tokens.unwrap_or(match setting.effort {
                        Some(Effort::Low) => 1024,
                        Some(Effort::High) => 16_384,
                        Some(Effort::Medium) | None => 4096,
                    });
                    json!({"type": "enabled", "budget_tokens": budget})
                }
                None => return,
            };
            request.extra.insert("thinking".to_owned(), value);
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Only requests answered by these models (default: every model).
    #[serde(default)]
    models: Vec<String>,
    /// Thinking on or off.
    #[serde(default)]
    enabled: Option<bool>,
    /// `low`, `medium` or `high`.
    #[serde(default)]
    effort: Option<Effort>,
    /// Tokens of thinking allowed (the `anthropic` family).
    #[serde(default)]
    budget_tokens: Option<u32>,
}

#[derive(Debug)]
struct ReasoningPlugin {
    models: ModelFilter,
    setting: Reasoning,
}

/// Builds the plugin from its options.
pub fn build(
    options: &Map<String, Value>,
    context: &Context<'_>,
) -> Result<Box<dyn Plugin>, String> {
    let o: Options = super::options(options)?;
    let setting = Reasoning {
        enabled: o.enabled,
        effort: o.effort,
        budget_tokens: o.budget_tokens,
    };
    if setting == Reasoning::default() {
        return Err("changes nothing: give `enabled`, `effort` or `budget_tokens`".to_owned());
    }
    Ok(Box::new(ReasoningPlugin {
        models: ModelFilter::checked(o.models, context)?,
        setting,
    }))
}

impl Plugin for ReasoningPlugin {
    fn on_request(
        &self,
        info: &RequestInfo<'_>,
        upstream: &mut UpstreamRequest<'_>,
        _state: &mut State,
    ) -> Result<Flow, PluginError> {
        if self.models.applies(info.model) {
            apply(info.family, self.setting, upstream.body);
        }
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shaped(family: Option<ModelFamily>, setting: Reasoning) -> Value {
        let mut request: ChatRequest = serde_json::from_value(json!({
            "model": "m", "messages": [], "chat_template_kwargs": {"custom": 1}
        }))
        .unwrap();
        apply(family, setting, &mut request);
        serde_json::to_value(&request).unwrap()
    }

    #[test]
    fn each_family_gets_its_own_switch() {
        let on_high = Reasoning {
            enabled: Some(true),
            effort: Some(Effort::High),
            budget_tokens: None,
        };
        let off = Reasoning {
            enabled: Some(false),
            ..Reasoning::default()
        };
        let v = shaped(None, on_high);
        assert_eq!(
            v["chat_template_kwargs"],
            json!({"custom": 1, "enable_thinking": true})
        );
        assert_eq!(v["reasoning_effort"], "high");
        let v = shaped(Some(ModelFamily::Qwen3), off);
        assert_eq!(v["chat_template_kwargs"]["enable_thinking"], false);
        assert!(v.get("reasoning_effort").is_none());
        let v = shaped(Some(ModelFamily::Deepseek), on_high);
        assert_eq!(
            v["chat_template_kwargs"],
            json!({"custom": 1, "thinking": true})
        );
        assert_eq!(
            shaped(Some(ModelFamily::Openai), off)["reasoning_effort"],
            "minimal"
        );
        assert_eq!(
            shaped(Some(ModelFamily::Openai), on_high)["reasoning_effort"],
            "high"
        );
        let v = shaped(Some(ModelFamily::Anthropic), on_high);
        assert_eq!(
            v["thinking"],
            json!({"type": "enabled", "budget_tokens": 16384})
        );
        assert_eq!(
            shaped(Some(ModelFamily::Anthropic), off)["thinking"],
            json!({"type": "disabled"})
        );
        assert_eq!(
            shaped(Some(ModelFamily::Openai), Reasoning::default())["reasoning_effort"],
            Value::Null
        );
    }

    #[test]
    fn a_plugin_that_changes_nothing_is_refused() {
        let e = build(&Map::new(), &Context::default()).unwrap_err();
        assert!(e.contains("changes nothing"), "{e}");
        let e = build(
            json!({"effort": "extreme"}).as_object().unwrap(),
            &Context::default(),
        )
        .unwrap_err();
        assert!(e.contains("extreme"), "{e}");
    }
}
