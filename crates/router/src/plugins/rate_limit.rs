//! `rate_limit`: requests and tokens per period for each caller, header value (a
//! tenant), route, or everyone, as token buckets in the shared state (so replicas on
//! one server share them): a bucket holds `limit` and refills at `limit` per `per`,
//! so bursts up to the limit pass and the sustained rate is the limit per period.
//!
//! A request takes one from the requests bucket and its prompt plus output cap from
//! the tokens bucket before it is forwarded; what it did not use (its usage, once
//! reported, below what it took, or all of it when it never reached the upstream) is
//! given back when it ends. A request that does not fit gets 429 with `retry-after`
//! (when enough will have refilled); every answer carries the `x-ratelimit-limit-*`,
//! `x-ratelimit-remaining-*` and `x-ratelimit-reset-*` headers of each limit.

use super::owner::{FailMode, Kind, Owner, Period, Rules, Scope, Unowned, refusal};
use super::{
    Context, Flow, Hooks, Observation, Plugin, PluginError, Reads, RequestInfo, State,
    UpstreamRequest,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::Arc;
use switchyard_state::{Bucket, BucketShape, Refused, SharedState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Whose limit: `caller`, `header`, `route`, or `global`.
    scope: Scope,
    /// The header naming the owner (scope `header`).
    #[serde(default)]
    header: Option<String>,
    /// Requests per period.
    #[serde(default)]
    requests: Option<Rate>,
    /// Tokens (prompt and output cap) per period.
    #[serde(default)]
    tokens: Option<Rate>,
    /// A request with no owner: `refuse` (default, 403) or `allow`.
    #[serde(default)]
    unowned: Unowned,
    /// The shared state cannot be reached: `open` (default) or `closed` (503).
    #[serde(default)]
    on_state_error: FailMode,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rate {
    /// How many per period (and the burst).
    limit: u64,
    /// The period: `second`, `minute`, `hour`, `day`, or seconds.
    per: Period,
}

/// One limit: its bucket's shape and its headers' suffix.
#[derive(Debug, Clone, Copy)]
struct Limit {
    /// `requests` or `tokens`.
    what: &'static str,
    shape: BucketShape,
}

#[derive(Debug)]
struct RateLimit {
    owner: Owner,
    requests: Option<Limit>,
    tokens: Option<Limit>,
    state: Arc<dyn SharedState>,
}

/// Builds the plugin from its options.
pub fn build(
    options: &Map<String, Value>,
    context: &Context<'_>,
) -> Result<Box<dyn Plugin>, String> {
    let o: Options = super::options(options)?;
    if o.requests.is_none() && o.tokens.is_none() {
        return Err("set requests: {limit, per}, tokens: {limit, per}, or both".to_owned());
    }
    let limit = |what: &'static str, rate: Option<Rate>| -> Result<Option<Limit>, String> {
        let Some(rate) = rate else { return Ok(None) };
        if rate.limit == 0 {
            return Err(format!("{what}.limit: 0 refuses everything"));
        }
        let per = rate.per.duration(&format!("{what}.per"))?;
        Ok(Some(Limit {
            what,
            shape: BucketShape {
                capacity: rate.limit as f64,
                per_second: rate.limit as f64 / per.as_secs_f64(),
            },
        }))
    };
    Ok(Box::new(RateLimit {
        owner: Owner::new(
            o.scope,
            o.header,
            Rules {
                unowned: o.unowned,
                on_state_error: o.on_state_error,
                kind: Kind::RateLimit,
            },
            context,
        )?,
        requests: limit("requests", o.requests)?,
        tokens: limit("tokens", o.tokens)?,
        state: context
            .state
            .cloned()
            .ok_or("no shared state to keep the limits in")?,
    }))
}

/// One request's standing with the limits.
#[derive(Debug, Default)]
struct Taken {
    /// The buckets' keys and what was taken from each (to give back).
    requests: Option<String>,
    tokens: Option<(String, f64)>,
    /// Per limit: its headers' values (limit, remaining, reset in ms).
    headers: Vec<(&'static str, u64, u64, u64)>,
    /// When refused: seconds until the request would fit.
    retry_after_s: Option<u64>,
}

/// A reset time as OpenAI writes it: `20ms`, `1.5s`, `6m0s`.
fn reset(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms}ms"),
        1000..60_000 => {
            let s = ms as f64 / 1000.0;
            format!("{}s", (s * 10.0).round() / 10.0)
        }
        _ => {
            let s = ms.div_ceil(1000);
            format!("{}m{}s", s / 60, s % 60)
        }
    }
}

impl RateLimit {
    fn header(limit: Limit, bucket: &Bucket) -> (&'static str, u64, u64, u64) {
        (
            limit.what,
            limit.shape.capacity as u64,
            bucket.remaining.max(0.0).floor() as u64,
            bucket.full_in_ms,
        )
    }
}

impl Plugin for RateLimit {
    fn hooks(&self) -> Hooks {
        Hooks {
            request: true,
            response_headers: true,
            observe: true,
            ..Hooks::default()
        }
    }

    fn reads(&self) -> Reads {
        self.owner.reads()
    }

    fn on_request(
        &self,
        info: &RequestInfo<'_>,
        _upstream: &mut UpstreamRequest<'_>,
        state: &mut State,
    ) -> Result<Flow, PluginError> {
        if info.dry_run {
            return Ok(Flow::Continue);
        }
        let (Some(requests_key), Some(tokens_key)) = (
            self.owner.key("rate:requests", info),
            self.owner.key("rate:tokens", info),
        ) else {
            return Ok(self.owner.no_owner());
        };
        let mut taken = Taken::default();
        let refused = |taken: &mut Taken, limit: Limit, retry_after_ms: u64, amount: f64| {
            self.owner.count("refused");
            let never = amount > limit.shape.capacity;
            let seconds = retry_after_ms.div_ceil(1000).max(1);
            taken.retry_after_s = (!never).then_some(seconds);
            let message = if never {
                format!(
                    "rate limit `{}`: this request needs {amount} {} and at most {} fit per period",
                    self.owner.name, limit.what, limit.shape.capacity
                )
            } else {
                format!(
                    "rate limit `{}` on {} reached; retry in {seconds} s",
                    self.owner.name, limit.what
                )
            };
            refusal(429, "rate_limit_exceeded", message)
        };
        if let Some(limit) = self.requests {
            match self.state.take(&requests_key, 1.0, limit.shape) {
                Ok(bucket) => {
                    taken.requests = Some(requests_key.clone());
                    taken.headers.push(RateLimit::header(limit, &bucket));
                }
                Err(Refused::Exhausted { retry_after_ms, .. }) => {
                    let flow = refused(&mut taken, limit, retry_after_ms, 1.0);
                    *state = Some(Box::new(taken));
                    return Ok(flow);
                }
                Err(e) => return Ok(self.owner.state_failed(&e)),
            }
        }
        if let Some(limit) = self.tokens {
            let amount = info.prompt_tokens.saturating_add(info.output_tokens) as f64;
            match self.state.take(&tokens_key, amount, limit.shape) {
                Ok(bucket) => {
                    taken.tokens = Some((tokens_key, amount));
                    taken.headers.push(RateLimit::header(limit, &bucket));
                }
                Err(error) => {
                    // The request is not served: its request token goes back.
                    if let (Some(key), Some(requests)) = (taken.requests.take(), self.requests) {
                        let _ = self.state.give_back(&key, 1.0, requests.shape);
                    }
                    let flow = match error {
                        Refused::Exhausted { retry_after_ms, .. } => {
                            refused(&mut taken, limit, retry_after_ms, amount)
                        }
                        other => self.owner.state_failed(&other),
                    };
                    *state = Some(Box::new(taken));
                    return Ok(flow);
                }
            }
        }
        self.owner.count("admitted");
        *state = Some(Box::new(taken));
        Ok(Flow::Continue)
    }

    fn on_response_headers(
        &self,
        _info: &RequestInfo<'_>,
        _status: u16,
        headers: &mut HeaderMap,
        state: &mut State,
    ) -> Result<(), PluginError> {
        let Some(taken) = state.as_ref().and_then(|s| s.downcast_ref::<Taken>()) else {
            return Ok(());
        };
        for &(what, limit, remaining, reset_ms) in &taken.headers {
            for (name, value) in [
                (format!("x-ratelimit-limit-{what}"), limit.to_string()),
                (
                    format!("x-ratelimit-remaining-{what}"),
                    remaining.to_string(),
                ),
                (format!("x-ratelimit-reset-{what}"), reset(reset_ms)),
            ] {
                if let (Ok(name), Ok(value)) =
                    (HeaderName::try_from(name), HeaderValue::from_str(&value))
                {
                    headers.insert(name, value);
                }
            }
        }
        if let Some(seconds) = taken.retry_after_s {
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        Ok(())
    }

    fn on_observe(&self, _info: &RequestInfo<'_>, outcome: &Observation<'_>, state: &mut State) {
        let (Some(taken), Some(limit)) = (
            state.as_mut().and_then(|s| s.downcast_mut::<Taken>()),
            self.tokens,
        ) else {
            return;
        };
        let Some((key, amount)) = taken.tokens.take() else {
            return;
        };
        let used = match outcome.usage {
            Some(usage) => usage.prompt_tokens.saturating_add(usage.completion_tokens) as f64,
            None if outcome.answer_began() => amount,
            None => 0.0,
        };
        if used < amount {
            let _ = self.state.give_back(&key, amount - used, limit.shape);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;
    use switchyard_state::{InProcess, Limits, ManualClock};
    use switchyard_wire::{ChatRequest, Usage};

    fn info(caller: Option<&str>, prompt: u64, output: u64) -> RequestInfo<'_> {
        RequestInfo {
            request_id: "r",
            route: "r",
            model: "m",
            family: None,
            stream: false,
            dry_run: false,
            embedding: None,
            caller,
            roles: &[],
            headers: &[],
            embedder: None,
            prompt_tokens: prompt,
            output_tokens: output,
            price: None,
        }
    }

    fn limiter(options: Value) -> (Box<dyn Plugin>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::default());
        let state: Arc<dyn SharedState> =
            Arc::new(InProcess::new(clock.clone(), Limits::default()));
        let context = Context {
            models: &["m"],
            identity: true,
            name: "rl",
            state: Some(&state),
            ..Context::default()
        };
        (
            build(options.as_object().unwrap(), &context).unwrap(),
            clock,
        )
    }

    fn run(plugin: &dyn Plugin, info: &RequestInfo<'_>, usage: Option<Usage>) -> (u16, HeaderMap) {
        let mut body: ChatRequest =
            serde_json::from_value(json!({"model": "m", "messages": []})).unwrap();
        let mut headers = HeaderMap::new();
        let mut state: State = None;
        let flow = plugin
            .on_request(
                info,
                &mut UpstreamRequest {
                    body: &mut body,
                    headers: &mut headers,
                },
                &mut state,
            )
            .unwrap();
        let mut out = HeaderMap::new();
        plugin
            .on_response_headers(info, 200, &mut out, &mut state)
            .unwrap();
        let status = match flow {
            Flow::Continue => 200,
            Flow::Answer(a) => a.status,
        };
        plugin.on_observe(
            info,
            &Observation {
                status,
                outcome: "ok",
                phase: if status == 200 { "forward" } else { "plugins" },
                usage,
                latency: Duration::ZERO,
            },
            &mut state,
        );
        (status, out)
    }

    #[test]
    fn requests_pass_in_bursts_up_to_the_limit_then_at_its_rate() {
        let (rl, clock) =
            limiter(json!({"scope": "caller", "requests": {"limit": 3, "per": "minute"}}));
        let alice = info(Some("alice"), 10, 10);
        for left in [2, 1, 0] {
            let (status, headers) = run(&*rl, &alice, None);
            assert_eq!(status, 200);
            assert_eq!(headers["x-ratelimit-limit-requests"], "3");
            assert_eq!(headers["x-ratelimit-remaining-requests"], left.to_string());
        }
        let (status, headers) = run(&*rl, &alice, None);
        assert_eq!(status, 429);
        assert_eq!(
            headers[http::header::RETRY_AFTER],
            "20",
            "one request per 20 s"
        );
        assert_eq!(
            run(&*rl, &info(Some("bob"), 1, 1), None).0,
            200,
            "bob's own"
        );
        clock.set(20_000);
        let (status, headers) = run(&*rl, &alice, None);
        assert_eq!(status, 200);
        assert_eq!(headers["x-ratelimit-reset-requests"], "1m0s");
    }

    #[test]
    fn tokens_taken_beyond_the_usage_come_back_and_a_refusal_returns_its_request() {
        let (rl, _) = limiter(json!({"scope": "global",
            "requests": {"limit": 10, "per": "minute"}, "tokens": {"limit": 1000, "per": "hour"}}));
        // 100 + 500 taken, 150 used: 450 come back.
        let (status, headers) = run(&*rl, &info(None, 100, 500), Some(Usage::new(100, 50)));
        assert_eq!(status, 200);
        assert_eq!(headers["x-ratelimit-remaining-tokens"], "400");
        let (status, headers) = run(&*rl, &info(None, 100, 700), None);
        assert_eq!(status, 200, "850 left after the give-back");
        assert_eq!(headers["x-ratelimit-remaining-tokens"], "50");
        let (status, headers) = run(&*rl, &info(None, 100, 100), None);
        assert_eq!(status, 429);
        assert!(headers.contains_key(http::header::RETRY_AFTER));
        // The refused request's request token came back: 10 - 2 served = 8 left.
        let (_, headers) = run(&*rl, &info(None, 1, 0), None);
        assert_eq!(headers["x-ratelimit-remaining-requests"], "7");
        // Larger than the bucket: never fits, no retry-after.
        let (status, headers) = run(&*rl, &info(None, 1000, 1000), None);
        assert_eq!(status, 429);
        assert!(!headers.contains_key(http::header::RETRY_AFTER));
    }

    #[test]
    fn resets_read_as_openai_writes_them_and_bad_options_are_errors() {
        assert_eq!(reset(20), "20ms");
        assert_eq!(reset(1500), "1.5s");
        assert_eq!(reset(360_000), "6m0s");
        let state: Arc<dyn SharedState> = Arc::new(InProcess::new(
            Arc::new(ManualClock::default()),
            Limits::default(),
        ));
        let context = Context {
            state: Some(&state),
            ..Context::default()
        };
        for (options, words) in [
            (json!({"scope": "global"}), "set requests"),
            (
                json!({"scope": "global", "requests": {"limit": 0, "per": "second"}}),
                "refuses everything",
            ),
            (
                json!({"scope": "global", "tokens": {"limit": 5, "per": 0}}),
                "tokens.per",
            ),
            (
                json!({"scope": "caller", "requests": {"limit": 5, "per": "second"}}),
                "signals.identity",
            ),
            (
                json!({"scope": "header", "requests": {"limit": 5, "per": "second"}}),
                "needs `header:`",
            ),
        ] {
            let error = build(options.as_object().unwrap(), &context).unwrap_err();
            assert!(error.contains(words), "{options}: {error}");
        }
    }
}
