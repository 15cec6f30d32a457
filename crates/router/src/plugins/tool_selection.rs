//! `tool_selection`: when a request offers more than `max_tools` tools, only the `keep`
//! most relevant to the conversation go to the model: those whose description is most
//! similar (by embedding) to the last user turn. Tools the conversation already used
//! (named in earlier assistant tool calls) and a tool the client forces with
//! `tool_choice` are always kept. Descriptions are embedded once and cached. If an
//! embedding is not ready in time, every tool is kept. The explain trace says what was
//! kept.

use super::{
    Context, Flow, Hooks, Plugin, PluginError, Reads, RequestInfo, State, UpstreamRequest,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Requests offering more tools than this are trimmed (default 16).
    #[serde(default = "sixteen")]
    max_tools: usize,
    /// How many tools a trimmed request keeps (default `max_tools`).
    #[serde(default)]
    keep: Option<usize>,
    /// How long to wait for embeddings, in milliseconds (default 200).
    #[serde(default = "two_hundred")]
    wait_ms: u64,
}

fn sixteen() -> usize {
    16
}

fn two_hundred() -> u64 {
    200
}

/// Tool descriptions embedded, at most this many (the cache starts over when full).
const CACHED: usize = 4096;

/// A request offering more tools than this keeps them all, unranked: the embedding
/// workers are shared, and one request must not hold them for hundreds of texts.
const MAX_RANKED: usize = 128;

/// Bytes of a tool's description that are embedded (the model reads 128 tokens).
const DESCRIPTION_BYTES: usize = 1024;

#[derive(Debug)]
struct ToolSelection {
    max_tools: usize,
    keep: usize,
    wait: Duration,
    /// Embeddings of tool descriptions, by the description's hash.
    cache: Mutex<HashMap<u64, Arc<[f32]>>>,
}

/// Builds the plugin from its options.
pub fn build(
    options: &Map<String, Value>,
    context: &Context<'_>,
) -> Result<Box<dyn Plugin>, String> {
    let o: Options = super::options(options)?;
    if !context.embedding_model {
        return Err(
            "ranks tools by embedding: configure signals.model (scripts/fetch-model.sh installs the default)"
                .to_owned(),
        );
    }
    let keep = o.keep.unwrap_or(o.max_tools);
    if keep == 0 || keep > o.max_tools {
        return Err(format!(
            "keep {keep} must be at least 1 and at most max_tools ({})",
            o.max_tools
        ));
    }
    Ok(Box::new(ToolSelection {
        max_tools: o.max_tools,
        keep,
        wait: Duration::from_millis(o.wait_ms),
        cache: Mutex::new(HashMap::new()),
    }))
}

/// A tool's name, and the text it is ranked by (name, description, parameter names).
fn describe(tool: &Value) -> (String, String) {
    let function = tool.get("function").unwrap_or(tool);
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut text = name.replace('_', " ");
    if let Some(d) = function.get("description").and_then(Value::as_str) {
        text.push_str(": ");
        let mut end = d.len().min(DESCRIPTION_BYTES);
        while !d.is_char_boundary(end) {
            end -= 1;
        }
        text.push_str(&d[..end]);
    }
    if let Some(properties) = function
        .pointer("/parameters/properties")
        .and_then(Value::as_object)
    {
        let names: Vec<&str> = properties.keys().map(String::as_str).collect();
        text.push_str(" (");
        text.push_str(&names.join(", "));
        text.push(')');
    }
    (name, text)
}

/// What the plugin did, for the trace.
#[derive(Debug)]
struct Kept(String);

impl ToolSelection {
    /// The embeddings of `texts`, from the cache or the workers (None when one is not
    /// ready by `deadline`).
    fn vectors(
        &self,
        texts: &[&str],
        workers: &switchyard_workload::worker::EmbedWorkers,
        deadline: Instant,
    ) -> Option<Vec<Arc<[f32]>>> {
        let hashes: Vec<u64> = texts
            .iter()
            .map(|t| switchyard_wire::hash::fnv1a(t.as_bytes(), switchyard_wire::hash::FNV_OFFSET))
            .collect();
        let mut found: Vec<Option<Arc<[f32]>>> = {
            let cache = self.cache.lock().ok()?;
            hashes.iter().map(|h| cache.get(h).cloned()).collect()
        };
        let tickets: Vec<(usize, _)> = found
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_none())
            .map(|(i, _)| (i, workers.submit(texts[i])))
            .collect();
        for (i, ticket) in tickets {
            let vector: Arc<[f32]> = ticket.wait(Some(deadline)).ok()?.into();
            if let Ok(mut cache) = self.cache.lock() {
                if cache.len() >= CACHED {
                    cache.clear();
                }
                cache.insert(hashes[i], Arc::clone(&vector));
            }
            found[i] = Some(vector);
        }
        found.into_iter().collect()
    }
}

impl Plugin for ToolSelection {
    fn reads(&self) -> Reads {
        Reads {
            embedding: Some(self.wait),
            embedder: true,
            ..Reads::default()
        }
    }

    fn hooks(&self) -> Hooks {
        Hooks::REQUEST
    }

    fn explain(&self, state: &State) -> Option<String> {
        state
            .as_ref()
            .and_then(|s| s.downcast_ref::<Kept>())
            .map(|k| k.0.clone())
    }

    fn on_request(
        &self,
        info: &RequestInfo<'_>,
        upstream: &mut UpstreamRequest<'_>,
        state: &mut State,
    ) -> Result<Flow, PluginError> {
        let body = &mut *upstream.body;
        let offered = match body.extra.get("tools") {
            Some(Value::Array(tools)) if tools.len() > self.max_tools => tools.len(),
            _ => return Ok(Flow::Continue),
        };
        // Always kept: tools the conversation used, and the one the client forces.
        let mut pinned: HashSet<String> = body
            .messages
            .iter()
            .filter(|m| m.role == "assistant")
            .filter_map(|m| m.extra.get("tool_calls").and_then(Value::as_array))
            .flatten()
            .filter_map(|c| c.pointer("/function/name").and_then(Value::as_str))
            .map(str::to_owned)
            .collect();
        if let Some(forced) = body
            .extra
            .get("tool_choice")
            .and_then(|c| c.pointer("/function/name"))
            .and_then(Value::as_str)
        {
            pinned.insert(forced.to_owned());
        }
        let Some(Value::Array(tools)) = body.extra.get_mut("tools") else {
            return Ok(Flow::Continue);
        };
        let keep_all = |state: &mut State, why: &str| {
            *state = Some(Box::new(Kept(format!("kept all {offered} tools ({why})"))));
            Ok(Flow::Continue)
        };
        if offered > MAX_RANKED {
            return keep_all(state, &format!("more than {MAX_RANKED} to rank"));
        }
        let described: Vec<(String, String)> = tools.iter().map(describe).collect();
        let (Some(query), Some(workers)) = (info.embedding, info.embedder) else {
            return keep_all(state, "the request's embedding is not ready");
        };
        let texts: Vec<&str> = described.iter().map(|(_, t)| t.as_str()).collect();
        let Some(vectors) = self.vectors(&texts, workers, Instant::now() + self.wait) else {
            return keep_all(state, "tool embeddings not ready in time");
        };
        let mut ranked: Vec<(usize, f32)> = vectors
            .iter()
            .enumerate()
            .filter(|(i, _)| !pinned.contains(&described[*i].0))
            .map(|(i, v)| (i, switchyard_embed::cosine(query, v)))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let pinned_here = described.iter().filter(|(n, _)| pinned.contains(n)).count();
        let room = self.keep.saturating_sub(pinned_here);
        let mut chosen: HashSet<usize> = ranked.iter().take(room).map(|(i, _)| *i).collect();
        chosen.extend(
            described
                .iter()
                .enumerate()
                .filter(|(_, (n, _))| pinned.contains(n))
                .map(|(i, _)| i),
        );
        let mut index = 0;
        tools.retain(|_| {
            let keep = chosen.contains(&index);
            index += 1;
            keep
        });
        let names: Vec<&str> = described
            .iter()
            .enumerate()
            .filter(|(i, _)| chosen.contains(i))
            .map(|(_, (n, _))| n.as_str())
            .collect();
        metrics::counter!("switchyard_tool_selection_dropped_total")
            .increment((offered - names.len()) as u64);
        *state = Some(Box::new(Kept(format!(
            "kept {} of {offered} tools: {}",
            names.len(),
            names.join(", ")
        ))));
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_tool_is_ranked_by_its_name_description_and_parameters() {
        let (name, text) = describe(&json!({"type": "function", "function": {
            "name": "get_weather", "description": "Forecast for a city",
            "parameters": {"type": "object", "properties": {"city": {}, "day": {}}}}}));
        assert_eq!(name, "get_weather");
        assert_eq!(text, "get weather: Forecast for a city (city, day)");
    }

    #[test]
    fn a_long_description_is_cut_at_a_character_boundary() {
        let long = "é".repeat(DESCRIPTION_BYTES);
        let (_, text) = describe(&json!({"function": {"name": "t", "description": long}}));
        assert_eq!(text.len(), "t: ".len() + DESCRIPTION_BYTES);
    }

    #[test]
    fn options_are_checked() {
        let with_model = Context {
            embedding_model: true,
            ..Context::default()
        };
        for (options, context, words) in [
            (json!({}), Context::default(), "signals.model"),
            (
                json!({"max_tools": 4, "keep": 5}),
                with_model,
                "at most max_tools",
            ),
            (json!({"keep": 0}), with_model, "at least 1"),
            (json!({"top": 3}), with_model, "unknown option"),
        ] {
            let error = build(options.as_object().unwrap(), &context).unwrap_err();
            assert!(error.contains(words), "{options}: {error}");
        }
        assert!(
            build(
                json!({"max_tools": 8, "keep": 4}).as_object().unwrap(),
                &with_model
            )
            .is_ok()
        );
    }
}
