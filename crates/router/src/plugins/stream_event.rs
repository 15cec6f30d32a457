//! Writing stream events of a plugin's own (text it held back and releases at the
//! end) in the shape of the stream's events.

use serde_json::{Map, Value, json};

/// What identifies a stream's events (`id`, `object`, `created`, `model`), learnt from
/// its first event.
#[derive(Debug, Default)]
pub(super) struct StreamTemplate(Option<Map<String, Value>>);

impl StreamTemplate {
    /// Whether an event was seen.
    pub(super) fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// Learns the identifying fields from `chunk`, when none were learnt yet.
    pub(super) fn learn(&mut self, chunk: &Value) {
        if self.0.is_none()
            && let Some(object) = chunk.as_object()
        {
            let keep = ["id", "object", "created", "model"];
            self.0 = Some(
                object
                    .iter()
                    .filter(|(k, _)| keep.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            );
        }
    }

    /// An event carrying `delta` for choice `index`, as JSON text.
    pub(super) fn event(&self, index: u64, delta: Value) -> String {
        let mut event = self.0.clone().unwrap_or_default();
        event.insert(
            "choices".to_owned(),
            json!([{"index": index, "delta": delta, "finish_reason": null}]),
        );
        Value::Object(event).to_string()
    }
}
