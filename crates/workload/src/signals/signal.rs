//! The leaf types: what a signal is, what it says about one request, and what the
//! signals of one request say together.

use super::*;

impl SignalFamily {
    /// Parses a configuration name.
    pub fn from_name(name: &str) -> Option<SignalFamily> {
        SignalFamily::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// A signal's family and name, as routes refer to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct SignalKey {
    /// Its family.
    pub family: SignalFamily,
    /// Its configured name.
    pub name: String,
}

impl fmt::Display for SignalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(\"{}\")", self.family.name(), self.name)
    }
}

/// Dense index of a signal within one [`SignalEngine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct SignalId(pub usize);

/// What one signal says about one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignalValue {
    /// Whether the signal holds.
    pub matched: bool,
    /// Its numeric value (hits, tokens, similarity…).
    pub value: f64,
    /// How sure the extractor is, in [0, 1].
    pub confidence: f64,
    /// What it saw, for the explain trace (the keyword found, the token count…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// Its categorical outcome, for signals that have one: the top domain, the
    /// detected language, the difficulty level, the header or metadata value. Routes
    /// can test it: `domain("subject", "law")`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Time spent computing it, in nanoseconds.
    pub cost_ns: u64,
    /// Why it could not be computed (a missing model, a deadline); its `on_error`
    /// rule then decided `matched`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl SignalValue {
    /// Does not hold, with value 0 and no evidence, as sure as `confidence`.
    pub fn absent(confidence: f64) -> SignalValue {
        SignalValue {
            matched: false,
            value: 0.0,
            confidence,
            evidence: None,
            label: None,
            cost_ns: 0,
            error: None,
        }
    }

    /// A value that could not be computed.
    pub fn failed(error: String) -> SignalValue {
        SignalValue {
            error: Some(error),
            ..SignalValue::absent(0.0)
        }
    }
}

/// What a signal that fails (or misses its deadline) counts as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Not matched (the default): routes that need it are not taken.
    #[default]
    NotMatched,
    /// Matched, with confidence 0: fail closed for guard signals.
    Matched,
    /// The request fails (HTTP 503 naming the signal).
    Fail,
}

/// A signal's deadline and failure rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SignalLimit {
    /// Milliseconds from the start of characterization after which the signal's
    /// result is no longer waited for (default: none).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// What a failure counts as (default `not_matched`).
    #[serde(default)]
    pub on_error: Option<OnError>,
}

/// One signal extractor.
pub trait Signal: Send + Sync + fmt::Debug {
    /// Which signal this is.
    fn key(&self) -> &SignalKey;
    /// Evaluates the signal on a request; `cost_ns` is filled in by the engine (the
    /// first signal to use a shared computation, such as the embedding, pays for it).
    fn evaluate(&self, request: &Request<'_>) -> SignalValue;
    /// Whether evaluating may run the embedding model (milliseconds, not microseconds).
    fn uses_model(&self) -> bool {
        false
    }
    /// The request header it reads (lower-case), if any: the gateway copies only the
    /// headers some signal reads into the request's view.
    fn header(&self) -> Option<&str> {
        None
    }
    /// For a signal derived from others (a projection): the signals it reads. The
    /// engine computes them first, whenever it is needed, and then calls
    /// [`Signal::derive`] instead of [`Signal::evaluate`].
    fn reads(&self) -> &[SignalKey] {
        &[]
    }
    /// Computes a derived signal from the values of the signals it reads (in
    /// [`Signal::reads`] order; `None`: not computed), for `request`.
    fn derive(&self, _request: &Request<'_>, _inputs: &[Option<&SignalValue>]) -> SignalValue {
        SignalValue::failed("this signal is not derived from others".to_owned())
    }
    /// Whether it learns across requests ([`Signal::record`] does something).
    fn learns(&self) -> bool {
        false
    }
    /// For a signal that learns across requests: records what a request that was
    /// served (not a dry run) showed, from the values of the signals it reads, in the
    /// shared state. Called once the request is over.
    fn record(
        &self,
        _inputs: &[Option<&SignalValue>],
        _caller: Option<&str>,
        _state: &dyn switchyard_state::SharedState,
    ) -> Result<(), String> {
        Ok(())
    }
    /// The labels it can report, when they are known from its definition (a
    /// projection's bands or members), so routes testing another are refused.
    fn outcomes(&self) -> Option<Vec<String>> {
        None
    }
    /// Its definition, when it is a projection (for the checker).
    fn projection(&self) -> Option<&crate::projection::Projection> {
        None
    }
}

/// The wait for a request's shared embedding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmbeddingWait {
    /// How long the signals waited for it (it starts before the signals that need no
    /// model run), in nanoseconds.
    pub wait_ns: u64,
    /// Why there is none (no model, a missed deadline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The domain classifier's prediction, shared by every domain signal of a request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainPrediction {
    /// The most probable category.
    pub label: String,
    /// Every category's probability, most probable first.
    pub probabilities: Vec<(String, f32)>,
}

/// The signals computed for one request, indexed by [`SignalId`], and what they
/// shared (the embedding, the domain prediction).
#[derive(Debug, Clone, Default)]
pub struct Signals {
    pub(super) values: Vec<Option<SignalValue>>,
    pub(super) failure: Option<(SignalId, String)>,
    /// The wait for the shared embedding, when a signal read it.
    pub embedding: Option<EmbeddingWait>,
    /// The shared embedding (of the last user turn), when it was computed.
    pub vector: Option<Arc<[f32]>>,
    /// The caller's identity, when a signal established it.
    pub identity: Option<Identity>,
    /// The domain prediction, when a domain signal asked for it.
    pub domain: Option<DomainPrediction>,
}

impl Signals {
    /// The first signal that failed under an `on_error: fail` rule, and why.
    pub fn failure(&self) -> Option<(SignalId, &str)> {
        self.failure.as_ref().map(|(id, e)| (*id, e.as_str()))
    }

    /// The value of a signal, if it was computed.
    pub fn get(&self, id: SignalId) -> Option<&SignalValue> {
        self.values.get(id.0).and_then(Option::as_ref)
    }

    /// Whether a signal was computed and holds.
    pub fn matched(&self, id: SignalId) -> bool {
        self.get(id).is_some_and(|v| v.matched)
    }

    /// Iterates over the computed signals.
    pub fn iter(&self) -> impl Iterator<Item = (SignalId, &SignalValue)> {
        self.values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.as_ref().map(|v| (SignalId(i), v)))
    }
}
