//! `local_answer`: the gateway answers by itself (maintenance, a closed route). A 200
//! is an assistant message, streamed when the client asked for a stream; any other
//! status is a JSON error with the configured code.

use super::template::Template;
use super::{Context, Flow, LocalAnswer, Plugin, PluginError, RequestInfo, State, UpstreamRequest};
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// The HTTP status (default 503).
    #[serde(default = "default_status")]
    status: u16,
    /// The assistant's text (200) or the error message; `{{route}}` and `{{model}}`
    /// are filled in.
    message: String,
    /// The error code of a non-200 answer (default `local_answer`).
    #[serde(default = "default_code")]
    code: String,
}

fn default_status() -> u16 {
    503
}

fn default_code() -> String {
    "local_answer".to_owned()
}

#[derive(Debug)]
struct Local {
    status: u16,
    message: Template,
    code: String,
}

/// Builds the plugin from its options.
pub fn build(
    options: &Map<String, Value>,
    _context: &Context<'_>,
) -> Result<Box<dyn Plugin>, String> {
    let o: Options = super::options(options)?;
    if !(o.status == 200 || (400..=599).contains(&o.status)) {
        return Err(format!(
            "status {} is neither 200 (an answer) nor an error status (400–599)",
            o.status
        ));
    }
    Ok(Box::new(Local {
        status: o.status,
        message: Template::parse(&o.message)?,
        code: o.code,
    }))
}

impl Plugin for Local {
    fn on_request(
        &self,
        info: &RequestInfo<'_>,
        _upstream: &mut UpstreamRequest<'_>,
        _state: &mut State,
    ) -> Result<Flow, PluginError> {
        Ok(Flow::Answer(LocalAnswer::new(
            self.status,
            &self.code,
            self.message.render(info),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_are_checked() {
        for status in [100, 204, 302, 600] {
            let e = build(
                json!({"status": status, "message": "x"})
                    .as_object()
                    .unwrap(),
                &Context::default(),
            )
            .unwrap_err();
            assert!(e.contains("neither 200"), "{status}: {e}");
        }
        assert!(
            build(
                json!({"message": "down"}).as_object().unwrap(),
                &Context::default()
            )
            .is_ok()
        );
        assert!(build(json!({}).as_object().unwrap(), &Context::default()).is_err());
    }
}
