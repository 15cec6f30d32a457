//! The explain trace: one entry per phase the request reached, in phase order, as
//! returned by `POST /v1/route` and `switchyard route`.

use crate::exchange::Exchange;
use crate::phase::Phase;
use crate::runtime::Runtime;
use serde::Serialize;
use serde_json::{Map, Value, json};

/// The explain trace: the phases' entries as fields, so they serialize in phase
/// order. A phase the request did not reach has none.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Trace {
    /// The model the client asked for.
    pub requested_model: String,
    /// ingress: the request as parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Value>,
    /// characterize: the signals, the shared embedding's wait, the domain prediction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub characterize: Option<Value>,
    /// decide: the route, and every route's outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decide: Option<Value>,
    /// govern: the constraints that covered the request, the candidates left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub govern: Option<Value>,
    /// select: the model and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub select: Option<Value>,
    /// place: the pool and endpoint, compression, retention.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub place: Option<Value>,
    /// plugins: the chain in order, a local answer, the upstream request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugins: Option<Value>,
    /// Why the request was refused: the error body, its phase and status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// Router time so far, in microseconds.
    pub overhead_us: u64,
}

impl Trace {
    fn slot(&mut self, phase: Phase) -> Option<&mut Option<Value>> {
        match phase {
            Phase::Ingress => Some(&mut self.ingress),
            Phase::Characterize => Some(&mut self.characterize),
            Phase::Decide => Some(&mut self.decide),
            Phase::Govern => Some(&mut self.govern),
            Phase::Select => Some(&mut self.select),
            Phase::Place => Some(&mut self.place),
            Phase::Plugins => Some(&mut self.plugins),
            Phase::Forward | Phase::Observe => None,
        }
    }
}

/// The trace of an exchange. A refused request's trace ends at the refusing phase,
/// whose entry (and the top-level `error`) says why.
pub fn trace(runtime: &Runtime, x: &Exchange) -> Trace {
    let mut out = Trace {
        requested_model: x.conversation.requested_model.clone(),
        ..Trace::default()
    };
    for phase in Phase::ALL {
        let Some(spent) = x.timings.get(phase) else {
            continue;
        };
        let mut entry = match entry(runtime, x, phase) {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        entry.insert("elapsed_us".to_owned(), json!(spent.as_secs_f64() * 1e6));
        if let Some(refusal) = x.refusal.as_ref().filter(|r| r.phase == phase) {
            entry.insert("error".to_owned(), refusal.error.body()["error"].clone());
        }
        if let Some(slot) = out.slot(phase) {
            *slot = Some(Value::Object(entry));
        }
    }
    if let Some(refusal) = &x.refusal {
        let mut error = refusal.error.body()["error"].clone();
        error["phase"] = json!(refusal.phase.name());
        error["status"] = json!(refusal.error.kind.status());
        out.error = Some(error);
    }
    out.overhead_us = u64::try_from(x.started.elapsed().as_micros()).unwrap_or(u64::MAX);
    out
}

fn entry(runtime: &Runtime, x: &Exchange, phase: Phase) -> Value {
    let policy = &runtime.policy;
    let model_names = |models: &[usize]| -> Vec<&str> {
        models
            .iter()
            .filter_map(|&m| policy.config.models.get(m))
            .map(|m| m.name.value.as_str())
            .collect()
    };
    let route = x.route(runtime);
    match phase {
        Phase::Ingress => {
            let c = &x.conversation;
            json!({
                "turns": c.turns.len(),
                "prompt_tokens": c.prompt_tokens,
                "tokens_counted_by": if runtime.counter.is_exact() { "tokenizer" } else { "estimate" },
                "tools_defined": c.tools_defined,
                "stream": c.stream,
                "output_cap": c.output_cap,
                "answers": c.answers,
                "session_id": c.session_id,
            })
        }
        Phase::Characterize => {
            let signals: Vec<Value> = x
                .signals
                .iter()
                .map(|(id, v)| {
                    json!({
                        "signal": policy.signals.key(id).map(ToString::to_string),
                        "matched": v.matched,
                        "value": v.value,
                        "confidence": v.confidence,
                        "label": v.label,
                        "evidence": v.evidence,
                        "error": v.error,
                        "cost_us": v.cost_ns as f64 / 1000.0,
                    })
                })
                .collect();
            let domain = x.signals.domain.as_ref().map(|d| {
                let probabilities: Map<String, Value> = d
                    .probabilities
                    .iter()
                    .map(|(label, p)| (label.clone(), json!(p)))
                    .collect();
                json!({"label": d.label, "probabilities": probabilities})
            });
            let embedding = x
                .signals
                .embedding
                .as_ref()
                .map(|e| json!({"wait_us": e.wait_ns as f64 / 1000.0, "error": e.error}));
            json!({"signals": signals, "embedding": embedding, "domain": domain})
        }
        Phase::Decide => {
            let Some(routed) = &x.routed else {
                return json!({});
            };
            let routes = if let Some(route) = route {
                serde_json::to_value(policy.explain_in(route.scope, &x.signals))
                    .unwrap_or(Value::Null)
            } else {
                Value::Array(Vec::new())
            };
            let recipe = route.and_then(|r| policy.scopes().get(r.scope)?.name.clone());
            json!({
                "route": routed.name,
                "recipe": recipe,
                "matched": routed.matched,
                "confidence": routed.confidence,
                "priority": route.map(|r| r.priority),
                "condition": route.map(|r| r.condition.clone()),
                "candidates": model_names(&routed.candidates),
                "routes": routes,
            })
        }
        Phase::Govern => x.governed.as_ref().map_or_else(
            || json!({}),
            |g| {
                let mut out =
                    json!({"constraints": g.applied, "candidates": model_names(&g.models)});
                if !g.steered.is_empty() {
                    out["plugins"] = g
                        .steered
                        .iter()
                        .map(|(plugin, s)| {
                            json!({"plugin": plugin, "downgrade": s.downgrade,
                                   "compress": s.compress, "why": s.why})
                        })
                        .collect();
                }
                if let Some(before) = &g.downgraded_from {
                    out["downgraded_from"] = json!(model_names(before));
                }
                if let Some(result) = &g.compression {
                    out["compression"] = match result {
                        Ok(done) => json!(done),
                        Err(short) => json!({"failed": short.to_string()}),
                    };
                }
                out
            },
        ),
        Phase::Select => x.selected.as_ref().map_or_else(
            || json!({}),
            |s| {
                let mut out = json!({
                    "algorithm": s.algorithm,
                    "candidates": x.governed.as_ref().map(|g| model_names(&g.models)),
                    "model": x.model_name(runtime),
                    "reason": s.reason,
                });
                if let Some(bucket) = &s.bucket {
                    out["bucket"] = json!(bucket);
                }
                if !s.demoted.is_empty() {
                    out["demoted"] = json!(s.demoted);
                }
                if !s.escalate_to.is_empty() {
                    out["escalate_to"] = json!(model_names(&s.escalate_to));
                }
                if let Some(sticky) = &s.sticky {
                    out["sticky"] = json!(sticky);
                }
                out
            },
        ),
        Phase::Place => x.placed.as_ref().map_or_else(
            || json!({}),
            |p| {
                let pool = runtime.pools.all().get(p.placement.pool);
                json!({
                    "pool": pool.map(|p| p.name.as_str()),
                    "gpu": pool.and_then(|p| p.gpu).map(|g| g.name()),
                    "context_window": p.placement.context_window,
                    "tokens_needed": p.placement.request.tokens,
                    "output_tokens": p.output,
                    "retention": p.retention,
                    "compression": p.compress_to.map(|target| json!({
                        "target_prompt_tokens": target,
                        "result": match &p.compression {
                            Some(Ok(c)) => json!(c),
                            Some(Err(e)) => json!({"failed": e.to_string()}),
                            None => Value::Null,
                        },
                    })),
                    "strategy": p.placement.strategy,
                    "endpoint": p.placement.endpoint.name,
                    "endpoint_in_flight": p.placement.in_flight,
                    "panic": p.placement.panic,
                })
            },
        ),
        Phase::Plugins => {
            let chain: Vec<Value> = x.plugins.runs().map(|r| json!(r)).collect();
            let headers: Map<String, Value> = x
                .upstream_headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        json!(v.to_str().unwrap_or("(binary)")),
                    )
                })
                .collect();
            json!({
                "chain": chain,
                "answered": x.local.as_ref().map(|a| json!({"status": a.status, "message": a.message, "code": a.code})),
                "upstream": {"model": x.request.model, "headers": headers, "messages": x.request.messages.len()},
            })
        }
        Phase::Forward | Phase::Observe => json!({}),
    }
}
