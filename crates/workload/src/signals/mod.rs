//! Signals: the leaf types every family shares (`signal`), the request as signals
//! see it (`request`), the configuration by family (`table`), and the engine that
//! builds and runs them (`engine`).

use crate::authz::{Authenticator, AuthzSignal, AuthzSignalConfig, Identity, IdentityConfig};
use crate::context::{ContextSignal, ContextSignalConfig};
use crate::contrast::{
    ComplexitySignal, ComplexitySignalConfig, FactCheckSignal, FactCheckSignalConfig,
    PreferenceSignal, PreferenceSignalConfig,
};
use crate::domain::{DomainSignal, DomainSignalConfig};
use crate::embedding::{
    EmbeddingModelConfig, EmbeddingSignal, EmbeddingSignalConfig, ExemplarCache,
};
use crate::feedback::{
    ReaskSignal, ReaskSignalConfig, UserFeedbackSignal, UserFeedbackSignalConfig,
};
use crate::head::{LinearHead, Prediction};
use crate::jailbreak::{JailbreakSignal, JailbreakSignalConfig};
use crate::keyword::{KeywordSignal, KeywordSignalConfig};
use crate::language::{LanguageSignal, LanguageSignalConfig};
use crate::metadata::{MetadataSignal, MetadataSignalConfig};
use crate::pii::{PiiSignal, PiiSignalConfig};
use crate::structure::{StructureSignal, StructureSignalConfig};
use crate::worker::{EmbedWorkers, Ticket};
use serde::{Deserialize, Serialize};
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_embed::{Embedder, EmbedderOptions};
use switchyard_wire::Conversation;

mod engine;
mod request;
mod signal;
mod table;

pub use engine::SignalEngine;
pub use request::Request;
pub use signal::{
    DomainPrediction, EmbeddingWait, OnError, Signal, SignalFamily, SignalId, SignalKey,
    SignalLimit, SignalValue, Signals,
};
pub use table::{SignalConfigError, SignalsConfig};
