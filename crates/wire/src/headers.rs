//! Header and body-field names of Switchyard's own protocol, shared by the gateway,
//! the upstream client and the simulated engine.

/// A client's session identity.
pub const SESSION: &str = "x-session-id";
/// Milliseconds a request is still wanted: from the client, and on to the upstream.
pub const REQUEST_TIMEOUT_MS: &str = "x-request-timeout-ms";
/// KV-cache retention priority (0–255; higher is kept longer).
pub const KV_RETENTION_PRIORITY: &str = "x-kv-retention-priority";
/// KV-cache retention time to live, in milliseconds.
pub const KV_RETENTION_TTL_MS: &str = "x-kv-retention-ttl-ms";
/// Body field carrying the same hint: `{"priority": …, "ttl_ms": …}`.
pub const KV_RETENTION_FIELD: &str = "kv_retention";

/// Headers of an upstream call that the gateway sets itself; a plugin's headers with
/// these names are not sent.
pub const GATEWAY_REQUEST_HEADERS: [&str; 10] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "authorization",
    "x-request-id",
    REQUEST_TIMEOUT_MS,
    KV_RETENTION_PRIORITY,
    KV_RETENTION_TTL_MS,
];
