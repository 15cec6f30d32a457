//! Streamed answers through the plugins' stream hooks: the upstream's events are cut
//! into single events, each goes through the chain, and what the chain lets through
//! goes to the client. `[DONE]` and terminal error events are never held back: before
//! them, every plugin is told the stream ends and may release what it holds.

use crate::exchange::Exchange;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use switchyard_router::plugins::{Chain, ChunkResult};
use switchyard_wire::{ApiError, ErrorKind, SseParser};

/// The chain while a stream runs, shared by the stream and the task that observes it.
#[derive(Debug, Default)]
struct Shared {
    chain: Chain,
    /// Set when a plugin ended the stream (the message of its terminal event).
    ended: Option<String>,
}

/// A handle to take the chain back once the stream is over.
#[derive(Debug)]
pub struct Hooked(Arc<Mutex<Shared>>);

impl Hooked {
    /// Moves the chain back into the exchange (for observe); returns the message of
    /// the terminal event when a plugin ended the stream.
    pub fn reclaim(self, x: &mut Exchange) -> Option<String> {
        let mut shared = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        x.plugins = std::mem::take(&mut shared.chain);
        shared.ended.take()
    }
}

struct State {
    upstream: BoxStream<'static, Bytes>,
    parser: SseParser,
    shared: Arc<Mutex<Shared>>,
    ready: VecDeque<Bytes>,
    over: bool,
}

/// Wraps the upstream events with the exchange's stream hooks; the chain moves into
/// the stream until [`Hooked::reclaim`].
pub fn with_stream_hooks(
    x: &mut Exchange,
    upstream: BoxStream<'static, Bytes>,
) -> (BoxStream<'static, Bytes>, Hooked) {
    let shared = Arc::new(Mutex::new(Shared {
        chain: std::mem::take(&mut x.plugins),
        ended: None,
    }));
    let state = State {
        upstream,
        parser: SseParser::new(),
        shared: Arc::clone(&shared),
        ready: VecDeque::new(),
        over: false,
    };
    let events = futures_util::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(next) = state.ready.pop_front() {
                return Some((next, state));
            }
            if state.over {
                return None;
            }
            match state.upstream.next().await {
                Some(bytes) => state.take(&bytes),
                None => state.close(),
            }
        }
    });
    (Box::pin(events), Hooked(shared))
}

impl State {
    fn take(&mut self, bytes: &[u8]) {
        self.parser.push(bytes);
        while let Some(event) = self.parser.next_event() {
            if self.over {
                return;
            }
            let terminal_error = event.data.contains("\"error\"")
                && serde_json::from_str::<serde_json::Value>(&event.data)
                    .is_ok_and(|v| v.get("error").is_some());
            let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
            if event.is_done() || terminal_error {
                let released = shared.chain.on_stream_end(event.is_done());
                drop(shared);
                self.emit(released, Some(event.raw));
                self.over = true;
                return;
            }
            // A plugin that embeds the answer does so when a choice finishes: that
            // event's hooks run off the async workers.
            let passed = if shared.chain.embeds() && event.data.contains("\"finish_reason\":\"") {
                let chain = &mut shared.chain;
                crate::pipeline::off_the_async_workers(|| chain.on_chunk(event.data))
            } else {
                shared.chain.on_chunk(event.data)
            };
            drop(shared);
            self.emit(passed, None);
        }
    }

    /// The upstream ended without `[DONE]` or an error event: the stream still ends
    /// with a terminal event.
    fn close(&mut self) {
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let released = shared.chain.on_stream_end(false);
        drop(shared);
        let error = ApiError::new(
            ErrorKind::Upstream,
            "the stream ended before it was complete",
        );
        self.emit(released, Some(error.sse_event()));
        self.over = true;
    }

    /// Queues what the chain let through, then `last`; a plugin's end replaces `last`
    /// with its terminal error event and stops the stream.
    fn emit(&mut self, result: ChunkResult, last: Option<Bytes>) {
        for data in result.events {
            self.ready
                .push_back(Bytes::from(format!("data: {data}\n\n")));
        }
        if let Some(message) = result.end {
            let error = ApiError::new(ErrorKind::PluginFailed, message.clone());
            self.ready.push_back(error.sse_event());
            self.shared
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .ended = Some(message);
            self.over = true;
            return;
        }
        if let Some(last) = last {
            self.ready.push_back(last);
        }
    }
}
