//! Prometheus metrics: one recorder per process, rendered at `/metrics`.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder on first use; returns the handle that renders it.
/// `None` when another recorder was installed first (metrics then go there).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5,
                    1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                ])
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    metrics::describe_counter!(
        "switchyard_requests_total",
        "Chat requests by route, model, endpoint and outcome"
    );
    metrics::describe_histogram!(
        "switchyard_overhead_seconds",
        "Router time before the upstream call (ingress to placement)"
    );
    metrics::describe_histogram!(
        "switchyard_ttft_seconds",
        "Time from request arrival to the first streamed event or the response headers"
    );
    metrics::describe_histogram!(
        "switchyard_request_duration_seconds",
        "Time from request arrival to the last byte"
    );
    metrics::describe_histogram!(
        "switchyard_signal_seconds",
        "Time to compute each signal (the first to use the embedding waits for it)"
    );
    metrics::describe_counter!(
        "switchyard_signal_errors_total",
        "Signals that failed or missed their deadline; their on_error rule decided"
    );
    metrics::describe_counter!(
        "switchyard_tokens_total",
        "Prompt and completion tokens by model, as reported upstream"
    );
    metrics::describe_gauge!(
        "switchyard_endpoint_in_flight",
        "Requests in flight per endpoint"
    );
    metrics::describe_gauge!(
        "switchyard_endpoint_available",
        "1 when the endpoint is in rotation, 0 when ejected or failing its checks"
    );
    metrics::describe_gauge!(
        "switchyard_endpoint_ttft_ewma_seconds",
        "Peak-EWMA of the endpoint's time to first token"
    );
    metrics::describe_gauge!(
        "switchyard_endpoint_engine_waiting",
        "Requests waiting in the engine's own queue (scraped)"
    );
    metrics::describe_gauge!(
        "switchyard_endpoint_engine_kv_usage",
        "The engine's KV-cache usage, a fraction (scraped)"
    );
}
