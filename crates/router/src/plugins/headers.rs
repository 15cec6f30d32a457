//! `headers`: sets and removes headers on the upstream request and on the client's
//! response. Headers the gateway owns (framing, request ids, deadlines, retention,
//! credentials, `x-switchyard-*`) cannot be named.

use super::{Context, Flow, Hooks, Plugin, PluginError, RequestInfo, State, UpstreamRequest};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use switchyard_wire::headers::GATEWAY_REQUEST_HEADERS;

/// Headers of the client's response the gateway sets itself (and `x-switchyard-*`).
const GATEWAY_RESPONSE: [&str; 5] = [
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "x-request-id",
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Edits {
    /// Headers to set (replacing any value already there).
    #[serde(default)]
    set: BTreeMap<String, String>,
    /// Headers to remove.
    #[serde(default)]
    remove: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Edits to the upstream request's headers.
    #[serde(default)]
    request: Edits,
    /// Edits to the client's response headers.
    #[serde(default)]
    response: Edits,
}

#[derive(Debug, Default)]
struct Checked {
    set: Vec<(HeaderName, HeaderValue)>,
    remove: Vec<HeaderName>,
}

impl Checked {
    fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
    }
}

#[derive(Debug)]
struct Headers {
    request: Checked,
    response: Checked,
}

fn check(edits: Edits, side: &str, owned: &[&str]) -> Result<Checked, String> {
    let name = |raw: &str| -> Result<HeaderName, String> {
        let name = HeaderName::from_bytes(raw.trim().as_bytes())
            .map_err(|_| format!("{side}: `{raw}` is not a valid header name"))?;
        let owned_here = owned.contains(&name.as_str())
            || (side == "response" && name.as_str().starts_with("x-switchyard-"));
        if owned_here {
            return Err(format!(
                "{side}: `{name}` is set by the gateway itself and cannot be changed by a plugin"
            ));
        }
        Ok(name)
    };
    let mut checked = Checked::default();
    for (raw, value) in edits.set {
        let value = HeaderValue::from_str(&value)
            .map_err(|_| format!("{side}: the value of `{raw}` is not a valid header value"))?;
        checked.set.push((name(&raw)?, value));
    }
    for raw in edits.remove {
        checked.remove.push(name(&raw)?);
    }
    Ok(checked)
}

/// Builds the plugin from its options.
pub fn build(
    options: &Map<String, Value>,
    _context: &Context<'_>,
) -> Result<Box<dyn Plugin>, String> {
    let o: Options = super::options(options)?;
    let plugin = Headers {
        request: check(o.request, "request", &GATEWAY_REQUEST_HEADERS)?,
        response: check(o.response, "response", &GATEWAY_RESPONSE)?,
    };
    if plugin.request.set.is_empty()
        && plugin.request.remove.is_empty()
        && plugin.response.set.is_empty()
        && plugin.response.remove.is_empty()
    {
        return Err(
            "sets and removes nothing: give `request` or `response` with `set` or `remove`"
                .to_owned(),
        );
    }
    Ok(Box::new(plugin))
}

impl Plugin for Headers {
    fn hooks(&self) -> Hooks {
        Hooks {
            request: true,
            response_headers: true,
            ..Hooks::default()
        }
    }

    fn on_request(
        &self,
        _info: &RequestInfo<'_>,
        upstream: &mut UpstreamRequest<'_>,
        _state: &mut State,
    ) -> Result<Flow, PluginError> {
        self.request.apply(upstream.headers);
        Ok(Flow::Continue)
    }

    fn on_response_headers(
        &self,
        _info: &RequestInfo<'_>,
        _status: u16,
        headers: &mut HeaderMap,
        _state: &mut State,
    ) -> Result<(), PluginError> {
        self.response.apply(headers);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gateway_headers_cannot_be_named() {
        for (options, words) in [
            (
                json!({"request": {"set": {"x-request-id": "1"}}}),
                "x-request-id",
            ),
            (
                json!({"request": {"remove": ["Authorization"]}}),
                "authorization",
            ),
            (
                json!({"response": {"set": {"x-switchyard-route": "fake"}}}),
                "x-switchyard-route",
            ),
            (
                json!({"request": {"set": {"bad header": "1"}}}),
                "not a valid header name",
            ),
            (
                json!({"request": {"set": {"x-a": "line\nbreak"}}}),
                "not a valid header value",
            ),
            (json!({}), "sets and removes nothing"),
            (json!({"reqest": {}}), "did you mean `request`"),
        ] {
            let e = build(options.as_object().unwrap(), &Context::default()).unwrap_err();
            assert!(e.contains(words), "{options}: {e}");
        }
    }

    #[test]
    fn edits_apply_in_order_remove_then_set() {
        let plugin = build(
            json!({"response": {"set": {"x-tenant": "acme"}, "remove": ["cache-control"]}})
                .as_object()
                .unwrap(),
            &Context::default(),
        )
        .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("cache-control", HeaderValue::from_static("no-cache"));
        let info = RequestInfo {
            request_id: "r",
            route: "r",
            model: "m",
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
        plugin
            .on_response_headers(&info, 200, &mut headers, &mut None)
            .unwrap();
        assert_eq!(headers.get("x-tenant").unwrap(), "acme");
        assert!(headers.get("cache-control").is_none());
    }
}
