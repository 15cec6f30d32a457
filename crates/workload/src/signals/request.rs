//! One request as signals see it, with what they compute once and share.

use super::*;
use std::borrow::Cow;

/// Bytes of one text that scanning signals read by default: 64 KiB.
pub const DEFAULT_SCAN_WINDOW: usize = 64 * 1024;

/// `text` if it fits in `window` bytes, else its first and last halves joined by a
/// newline (each cut on a character boundary): attacks and keywords placed after a
/// long filler are still seen, and no scan reads more than `window` bytes of a text.
pub fn windowed(text: &str, window: usize) -> Cow<'_, str> {
    if text.len() <= window {
        return Cow::Borrowed(text);
    }
    let mut head = window / 2;
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - window / 2;
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    let mut out = String::with_capacity(head + 1 + text.len() - tail);
    out.push_str(&text[..head]);
    out.push('\n');
    out.push_str(&text[tail..]);
    Cow::Owned(out)
}

/// One request as signals see it: the conversation, and what is computed from it once
/// and shared by the signals that need it (the embedding of the last user turn).
pub struct Request<'a> {
    /// The conversation.
    pub conversation: &'a Conversation,
    embedder: Option<&'a Embedder>,
    embedding: OnceCell<Result<Vec<f32>, String>>,
    pending: RefCell<Option<(Ticket, Option<Instant>)>>,
    /// The workers and the deadline that other embeddings of this request go through.
    model_route: Cell<Option<(&'a EmbedWorkers, Option<Instant>)>>,
    head: Option<&'a LinearHead>,
    domain: OnceCell<Result<Prediction, String>>,
    pii: OnceCell<Vec<crate::pii::Finding>>,
    authenticator: Option<&'a Authenticator>,
    identity: OnceCell<Identity>,
    scan_window: usize,
    scan_text: OnceCell<Cow<'a, str>>,
    state: Option<&'a dyn switchyard_state::SharedState>,
}

impl<'a> Request<'a> {
    /// A request whose embedding, if asked for, comes from `embedder`.
    pub fn new(conversation: &'a Conversation, embedder: Option<&'a Embedder>) -> Request<'a> {
        Request {
            conversation,
            embedder,
            embedding: OnceCell::new(),
            pending: RefCell::new(None),
            model_route: Cell::new(None),
            head: None,
            domain: OnceCell::new(),
            pii: OnceCell::new(),
            authenticator: None,
            identity: OnceCell::new(),
            scan_window: DEFAULT_SCAN_WINDOW,
            scan_text: OnceCell::new(),
            state: None,
        }
    }

    /// The same request, reading what earlier requests left in `state` (a caller's
    /// reputation).
    pub fn with_state(mut self, state: &'a dyn switchyard_state::SharedState) -> Request<'a> {
        self.state = Some(state);
        self
    }

    /// The shared state signals read, when the request has one.
    pub fn state(&self) -> Option<&'a dyn switchyard_state::SharedState> {
        self.state
    }

    /// The same request, its scanning signals reading at most `window` bytes of each
    /// text (see [`windowed`]).
    pub fn with_scan_window(mut self, window: usize) -> Request<'a> {
        self.scan_window = window;
        self
    }

    /// The last user turn as scanning signals read it: within the scan window.
    pub fn scan_text(&self) -> &str {
        self.scan_text
            .get_or_init(|| windowed(self.conversation.last_user_text(), self.scan_window))
    }

    /// The user turns, oldest first, each within the scan window.
    pub fn scan_user_texts(&self) -> impl Iterator<Item = Cow<'a, str>> + '_ {
        let window = self.scan_window;
        self.conversation
            .user_texts()
            .map(move |t| windowed(t, window))
    }

    /// Every turn's text, each within the scan window.
    pub fn scan_all_texts(&self) -> impl Iterator<Item = Cow<'a, str>> + '_ {
        let window = self.scan_window;
        self.conversation
            .turns
            .iter()
            .map(move |t| windowed(&t.text, window))
    }

    /// Starts the embedding on `workers` now; [`Request::embedding`] waits for it,
    /// until `deadline` at most.
    pub fn prefetch(&self, workers: &'a EmbedWorkers, deadline: Option<Instant>) {
        let ticket = workers.submit(self.conversation.last_user_text());
        *self.pending.borrow_mut() = Some((ticket, deadline));
        self.model_route.set(Some((workers, deadline)));
    }

    /// The same request, classified into domains by `head` when asked.
    pub fn with_domain_head(mut self, head: Option<&'a LinearHead>) -> Request<'a> {
        self.head = head;
        self
    }

    /// The domain prediction for the last user turn and the head's labels, computed
    /// on first use from the shared embedding.
    pub fn domain(&self) -> Result<(&Prediction, &[String]), &str> {
        let head = self.head.ok_or("no domain head is loaded")?;
        self.domain
            .get_or_init(|| {
                let vector = self.embedding().map_err(str::to_owned)?;
                Ok(head.predict(vector))
            })
            .as_ref()
            .map(|p| (p, head.labels.as_slice()))
            .map_err(String::as_str)
    }

    /// The embedding of the last user turn, computed on first use.
    pub fn embedding(&self) -> Result<&[f32], &str> {
        self.embedding
            .get_or_init(|| {
                if let Some((ticket, deadline)) = self.pending.borrow_mut().take() {
                    return ticket.wait(deadline);
                }
                match self.embedder {
                    Some(e) => e
                        .embed(self.conversation.last_user_text())
                        .map_err(|e| e.to_string()),
                    None => Err("no embedding model is configured (signals.model)".to_owned()),
                }
            })
            .as_ref()
            .map(Vec::as_slice)
            .map_err(String::as_str)
    }

    /// The embedding of the last user turn, when a signal computed it.
    pub fn embedding_if_computed(&self) -> Option<Arc<[f32]>> {
        self.embedding
            .get()?
            .as_ref()
            .ok()
            .map(|v| Arc::from(v.as_slice()))
    }

    /// The caller's identity, when a signal established it.
    pub fn identity_if_computed(&self) -> Option<Identity> {
        self.identity.get().cloned()
    }

    /// The domain prediction, when a signal asked for it.
    pub fn domain_if_computed(&self) -> Option<DomainPrediction> {
        let prediction = self.domain.get()?.as_ref().ok()?;
        let labels = &self.head?.labels;
        let mut probabilities: Vec<(String, f32)> = labels
            .iter()
            .cloned()
            .zip(prediction.probabilities.iter().copied())
            .collect();
        probabilities.sort_by(|a, b| b.1.total_cmp(&a.1));
        Some(DomainPrediction {
            label: labels.get(prediction.label).cloned().unwrap_or_default(),
            probabilities,
        })
    }

    /// The embedding of another text of this request (such as all its user turns),
    /// not kept: through the workers and under the request's deadline when the
    /// embedding was prefetched, else computed here.
    pub fn embedding_of(&self, text: &str) -> Result<Vec<f32>, String> {
        if let Some((workers, deadline)) = self.model_route.get() {
            return workers.submit(text).wait(deadline);
        }
        match self.embedder {
            Some(e) => e.embed(text).map_err(|e| e.to_string()),
            None => Err("no embedding model is configured (signals.model)".to_owned()),
        }
    }

    /// The same request, its caller established by `authenticator` when asked.
    pub fn with_authenticator(mut self, authenticator: Option<&'a Authenticator>) -> Request<'a> {
        self.authenticator = authenticator;
        self
    }

    /// The caller, established once from the request's headers and peer address.
    pub fn identity(&self) -> &Identity {
        self.identity.get_or_init(|| match self.authenticator {
            Some(a) => a.identify(|k| self.conversation.attribute(k).map(str::to_owned)),
            None => Identity {
                source: "no signals.identity is configured".to_owned(),
                ..Identity::default()
            },
        })
    }

    /// The PII found in the last user turn (every kind and score), computed once.
    pub fn pii_findings(&self) -> &[crate::pii::Finding] {
        self.pii
            .get_or_init(|| crate::pii::find_pii(self.scan_text()))
    }

    /// Whether the embedding was computed.
    pub fn embedded(&self) -> bool {
        self.embedding.get().is_some()
    }
}
