//! Incremental server-sent-events framing.
//!
//! Upstream bytes arrive in arbitrary pieces; [`SseParser`] cuts them into whole
//! events without copying more than one partial event, so each event can be passed
//! to the client the moment its last byte arrives.

use bytes::{Bytes, BytesMut};

/// One whole event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The event exactly as received, including its terminating blank line.
    pub raw: Bytes,
    /// The `data:` lines joined by `\n` (empty when the event had none).
    pub data: String,
}

impl SseEvent {
    /// Whether this is the `[DONE]` sentinel that ends an OpenAI stream.
    pub fn is_done(&self) -> bool {
        self.data.trim() == "[DONE]"
    }
}

/// Cuts a byte stream into events.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: BytesMut,
    /// Bytes of `buffer` already searched for a blank line without finding one, so a
    /// long event arriving in many pieces is searched once, not once per piece.
    searched: usize,
}

impl SseParser {
    /// A parser with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds received bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// Takes the next whole event out of the buffer, if one is complete.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        // A boundary may begin up to two bytes before where the last search stopped.
        let from = self.searched.saturating_sub(2);
        let Some((end, sep)) = find_boundary(&self.buffer, from) else {
            self.searched = self.buffer.len();
            return None;
        };
        self.searched = 0;
        let raw = self.buffer.split_to(end + sep).freeze();
        let body = &raw[..end];
        let mut data = String::new();
        for line in body.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(rest) = line.strip_prefix(b"data:") {
                let rest = rest.strip_prefix(b" ").unwrap_or(rest);
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(&String::from_utf8_lossy(rest));
            }
        }
        Some(SseEvent { raw, data })
    }

    /// Bytes received that do not yet form a whole event.
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }
}

/// Finds the first blank line at or after `from`: returns the end of the event body
/// and the separator length.
fn find_boundary(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' {
            if buf[i + 1] == b'\n' {
                return Some((i, 2));
            }
            if buf[i + 1] == b'\r' && buf.get(i + 2) == Some(&b'\n') {
                return Some((i, 3));
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let stream = b"data: {\"a\":1}\n\ndata: line1\ndata: line2\r\n\r\ndata: [DONE]\n\n";
        for cut in 1..stream.len() {
            let mut p = SseParser::new();
            let mut out = Vec::new();
            p.push(&stream[..cut]);
            while let Some(e) = p.next_event() {
                out.push(e);
            }
            p.push(&stream[cut..]);
            while let Some(e) = p.next_event() {
                out.push(e);
            }
            assert_eq!(out.len(), 3, "cut at {cut}");
            assert_eq!(out[0].data, "{\"a\":1}");
            assert_eq!(out[1].data, "line1\nline2");
            assert!(out[2].is_done());
            let joined: Vec<u8> = out.iter().flat_map(|e| e.raw.to_vec()).collect();
            assert_eq!(joined, stream.to_vec());
            assert_eq!(p.pending(), 0);
        }
    }

    #[test]
    fn incomplete_event_stays_pending() {
        let mut p = SseParser::new();
        p.push(b"data: partial");
        assert!(p.next_event().is_none());
        assert_eq!(p.pending(), 13);
    }
}
