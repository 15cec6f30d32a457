//! Signals: the leaf types every family shares (`signal`), the request as signals
//! see it (`request`), the family table and the configuration it defines (`table`),
//! and the engine that builds and runs them (`engine`).

use crate::authz::{Authenticator, Identity, IdentityConfig};
use crate::embedding::{EmbeddingModelConfig, ExemplarCache};
use crate::head::{LinearHead, Prediction};
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
pub use request::{DEFAULT_SCAN_WINDOW, Request, windowed};
pub use signal::{
    DomainPrediction, EmbeddingWait, OnError, Signal, SignalId, SignalKey, SignalLimit,
    SignalValue, Signals,
};
pub(crate) use table::{BuildContext, FamilyConfig};
pub use table::{SignalConfigError, SignalFamily, SignalsConfig};
