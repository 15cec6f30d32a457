//! The official OpenAI Python SDK against the gateway, streaming and not.
//!
//! Needs `SWITCHYARD_PYTHON`: a Python with the `openai` package (`scripts/test.sh`
//! installs one into `.venv`). With `SWITCHYARD_REQUIRE_SDK=1` (set by the test
//! script) a missing interpreter fails the test instead of skipping it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

mod harness;

use harness::{DEFAULT_UPSTREAM, stack};
use switchyard_engine::Faults;

#[tokio::test]
async fn the_openai_sdk_works_against_the_gateway() {
    let s = stack("", DEFAULT_UPSTREAM).await;
    // Short requests naming `chat` land on the short pool: cut its streams after two
    // tokens. The script's routed requests mention code, so they land on `coder`.
    s.chat_short.set_faults(Faults {
        drop_after_tokens: Some(2),
        ..Faults::default()
    });
    let Some(seen) = harness::sdk_script("openai_client.py", s.gateway.url()).await else {
        return;
    };
    assert_eq!(seen["route"], "coding", "{seen}");
    assert_eq!(seen["usage"]["completion_tokens"], 12, "{seen}");
    assert_eq!(seen["finish_reason"], "length");
    assert!(!seen["text"].as_str().unwrap().is_empty());
    assert_eq!(seen["not_found"], 404);
    assert_eq!(seen["models"], serde_json::json!(["auto", "coder", "chat"]));
    assert_eq!(seen["cut_error"], "APIError", "{seen}");
    assert_eq!(seen["stream_pieces"], 9, "{seen}");
    assert_eq!(seen["stream_usage"]["completion_tokens"], 9, "{seen}");
}
