//! Prometheus metrics: one recorder per process, rendered at `/metrics`.

use crate::phase::Phase;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;
use switchyard_workload::{SignalEngine, SignalId, SignalValue};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// How often queued histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(1);

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
            // Histogram samples queue until they are folded into buckets: fold them
            // every second, so memory stays bounded whether or not anyone scrapes.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".to_owned())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                })
                .ok()?;
            Some(handle)
        })
        .as_ref()
}

/// Handles of the per-request metrics, made once per runtime so that a request pays
/// no registry lookup for them.
#[derive(Debug, Clone)]
pub struct RequestMetrics {
    phases: [metrics::Histogram; 9],
    /// Per signal, indexed by `SignalId`: its cost and its failures.
    signals: Vec<(metrics::Histogram, metrics::Counter)>,
    plugin_failures: metrics::Counter,
    embedding_wait: metrics::Histogram,
    overhead: metrics::Histogram,
    /// Per model of the policy, by index, and last for requests that chose none.
    models: Vec<ModelMetrics>,
    /// `switchyard_requests_total` by its labels, registered on a label set's first
    /// request: a registry lookup (hashing and comparing five labels, three of them
    /// copied) was a few per cent of a forwarded request's work. The label values are
    /// the policy's names, so the sets are bounded; [`MAX_REQUEST_SERIES`] caps them
    /// anyway.
    requests: Arc<RwLock<hashbrown::HashMap<RequestLabels, metrics::Counter>>>,
}

/// The most `switchyard_requests_total` handles kept; past it a new label set is
/// counted through the registry, as before.
const MAX_REQUEST_SERIES: usize = 65_536;

/// The labels of `switchyard_requests_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RequestLabels {
    route: String,
    model: String,
    endpoint: String,
    outcome: &'static str,
    phase: Phase,
}

/// The same labels, borrowed from the request: the same fields in the same order, so
/// that both hash alike (the test checks a lookup).
#[derive(Debug, Clone, Copy, Hash)]
pub struct Requested<'a> {
    /// `route`.
    pub route: &'a str,
    /// `model`.
    pub model: &'a str,
    /// `endpoint`.
    pub endpoint: &'a str,
    /// `outcome`.
    pub outcome: &'static str,
    /// `phase`: the phase the answer came from.
    pub phase: Phase,
}

impl hashbrown::Equivalent<RequestLabels> for Requested<'_> {
    fn equivalent(&self, key: &RequestLabels) -> bool {
        self.route == key.route
            && self.model == key.model
            && self.endpoint == key.endpoint
            && self.outcome == key.outcome
            && self.phase == key.phase
    }
}

/// The per-model series a request records.
#[derive(Debug, Clone)]
pub struct ModelMetrics {
    /// `switchyard_request_duration_seconds{model}`.
    pub duration: metrics::Histogram,
    /// `switchyard_ttft_seconds{model}`.
    pub ttft: metrics::Histogram,
    /// `switchyard_tokens_total{model, kind="prompt"}`.
    pub prompt_tokens: metrics::Counter,
    /// `switchyard_tokens_total{model, kind="completion"}`.
    pub completion_tokens: metrics::Counter,
    /// `switchyard_tokens_total{model, kind="cached_prompt"}`: prompt tokens the
    /// upstream read from its prompt cache.
    pub cached_tokens: metrics::Counter,
}

impl ModelMetrics {
    fn new(model: &str) -> ModelMetrics {
        let model = model.to_owned();
        ModelMetrics {
            duration: metrics::histogram!("switchyard_request_duration_seconds", "model" => model.clone()),
            ttft: metrics::histogram!("switchyard_ttft_seconds", "model" => model.clone()),
            prompt_tokens: metrics::counter!("switchyard_tokens_total", "model" => model.clone(), "kind" => "prompt"),
            completion_tokens: metrics::counter!("switchyard_tokens_total", "model" => model.clone(), "kind" => "completion"),
            cached_tokens: metrics::counter!("switchyard_tokens_total", "model" => model, "kind" => "cached_prompt"),
        }
    }
}

impl RequestMetrics {
    /// Registers the handles for a policy's signals and models (installing the
    /// recorder first, so they are live).
    pub fn new(signals: &SignalEngine, models: &[&str]) -> RequestMetrics {
        let _ = handle();
        RequestMetrics {
            overhead: metrics::histogram!("switchyard_overhead_seconds"),
            models: models
                .iter()
                .copied()
                .chain(std::iter::once(""))
                .map(ModelMetrics::new)
                .collect(),
            phases: Phase::ALL
                .map(|p| metrics::histogram!("switchyard_phase_seconds", "phase" => p.name())),
            signals: (0..signals.len())
                .map(|i| {
                    let label = signals.label(SignalId(i)).to_owned();
                    (
                        metrics::histogram!("switchyard_signal_seconds", "signal" => label.clone()),
                        metrics::counter!("switchyard_signal_errors_total", "signal" => label),
                    )
                })
                .collect(),
            plugin_failures: metrics::counter!("switchyard_plugin_failures_total"),
            embedding_wait: metrics::histogram!("switchyard_embedding_wait_seconds"),
            requests: Arc::default(),
        }
    }

    /// One request answered, in `switchyard_requests_total`.
    pub fn request(&self, labels: Requested<'_>) {
        if let Ok(known) = self.requests.read()
            && let Some(counter) = known.get(&labels)
        {
            counter.increment(1);
            return;
        }
        let counter = metrics::counter!("switchyard_requests_total",
            "route" => labels.route.to_owned(), "model" => labels.model.to_owned(),
            "endpoint" => labels.endpoint.to_owned(), "outcome" => labels.outcome,
            "phase" => labels.phase.name());
        counter.increment(1);
        if let Ok(mut known) = self.requests.write()
            && known.len() < MAX_REQUEST_SERIES
        {
            let key = RequestLabels {
                route: labels.route.to_owned(),
                model: labels.model.to_owned(),
                endpoint: labels.endpoint.to_owned(),
                outcome: labels.outcome,
                phase: labels.phase,
            };
            known.insert(key, counter);
        }
    }

    /// Time spent in a phase.
    pub fn phase(&self, phase: Phase, spent: Duration) {
        if let Some(h) = self.phases.get(phase as usize) {
            h.record(spent.as_secs_f64());
        }
    }

    /// A signal's cost, and its failure.
    pub fn signal(&self, id: SignalId, value: &SignalValue) {
        if let Some((seconds, errors)) = self.signals.get(id.0) {
            seconds.record(value.cost_ns as f64 / 1e9);
            if value.error.is_some() {
                errors.increment(1);
            }
        }
    }

    /// The series of the model at `index` in the policy (`None`: no model chosen).
    pub fn model(&self, index: Option<usize>) -> &ModelMetrics {
        let last = self.models.len() - 1;
        &self.models[index.map_or(last, |i| i.min(last))]
    }

    /// Router time before the upstream call of a forwarded request.
    pub fn overhead(&self, spent: Duration) {
        self.overhead.record(spent.as_secs_f64());
    }

    /// The wait for a request's shared embedding.
    pub fn embedding_wait(&self, wait_ns: u64) {
        self.embedding_wait.record(wait_ns as f64 / 1e9);
    }

    /// A request failed by a plugin.
    pub fn plugin_failure(&self) {
        self.plugin_failures.increment(1);
    }
}

fn describe() {
    metrics::describe_histogram!(
        "switchyard_phase_seconds",
        "Time spent in each phase of a request (ingress, characterize, decide, govern, select, place, plugins, forward, observe)"
    );
    metrics::describe_histogram!(
        "switchyard_embedding_wait_seconds",
        "Wait for a request's shared embedding, before the signals that read it"
    );
    metrics::describe_counter!(
        "switchyard_plugin_failures_total",
        "Requests failed by a plugin under on_error: fail"
    );
    metrics::describe_counter!(
        "switchyard_plugin_errors_total",
        "Plugin hooks that failed or panicked, by plugin and hook (skipped or not)"
    );
    metrics::describe_counter!(
        "switchyard_requests_total",
        "Chat requests by route, model, endpoint, outcome and the phase that answered"
    );
    metrics::describe_histogram!(
        "switchyard_overhead_seconds",
        "Router time before the upstream call (ingress through plugins)"
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
        "Time to compute each signal (the wait for the shared embedding is not in it)"
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

#[cfg(test)]
mod tests {
    use super::*;

    fn count(rendered: &str, route: &str, outcome: &str) -> Option<u64> {
        let prefix = "switchyard_requests_total{";
        rendered
            .lines()
            .filter(|line| line.starts_with(prefix))
            .filter(|line| line.contains(&format!("route=\"{route}\"")))
            .find(|line| line.contains(&format!("outcome=\"{outcome}\"")))
            .and_then(|line| line.rsplit(' ').next()?.parse().ok())
    }

    #[test]
    fn request_counts_are_kept_per_label_set_and_reach_the_exporter() {
        let signals = SignalEngine::build(&Default::default()).unwrap();
        let metrics = RequestMetrics::new(&signals, &["m"]);
        let labels = |outcome| Requested {
            route: "counted-route",
            model: "m",
            endpoint: "e0",
            outcome,
            phase: Phase::Forward,
        };
        for _ in 0..3 {
            metrics.request(labels("ok"));
        }
        metrics.request(labels("upstream_error"));
        // The borrowed labels find the kept handle: a hash that differed would miss
        // every time (and re-register, counting right), which the length cannot show.
        assert!(
            metrics
                .requests
                .read()
                .unwrap()
                .get(&labels("ok"))
                .is_some(),
            "the request's labels hash as the kept ones do"
        );
        assert_eq!(
            metrics.requests.read().unwrap().len(),
            2,
            "one handle per label set"
        );
        let rendered = handle().unwrap().render();
        assert_eq!(
            count(&rendered, "counted-route", "ok"),
            Some(3),
            "{rendered}"
        );
        assert_eq!(count(&rendered, "counted-route", "upstream_error"), Some(1));
    }
}
