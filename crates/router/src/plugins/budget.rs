//! `budget`: a limit on tokens or dollars per window, for each caller, each value of a
//! header (a tenant, a session), each route, or everyone, that holds under concurrency
//! and across replicas.
//!
//! Before a request is forwarded, its cost is **reserved** on the budget's counter in
//! the shared state: the prompt plus the answer it may produce (the client's
//! `max_tokens` times `n`, else the expected length), priced at the chosen model's
//! prices for a dollar budget. The reservation is atomic (on the server, when the state
//! is on one), so concurrent requests cannot all pass on the same remaining amount; a
//! request that does not fit gets 429 with `retry-after` (the end of the window). When
//! the request is over, the reservation is **settled** with the usage the upstream
//! reported; an answer that began but reported no usage (a stream the client left, a
//! broken stream) keeps its whole reservation, and one that never began costs nothing.
//! So the budget is passed by at most what answers used beyond their reservations,
//! none when clients set `max_tokens`.
//!
//! Graduated response, as the budget runs down and before refusal, each step on its
//! own threshold (a share of the budget left, read once per request in the govern
//! phase, before a model is chosen):
//! - `shape`: answers are capped at `shape.max_tokens` (and reserved as such);
//! - `compress`: the prompt is compressed to `compress.ratio` of its tokens (the
//!   gateway's prompt compression: older turns and tool results shortened first);
//! - `downgrade`: only the route's cheapest candidates for the request (by price) are
//!   left to select from.
//!
//! Every answer says what is left in `x-switchyard-budget-remaining`, and the steps
//! taken in `x-switchyard-budget-steps`; the trace names them too.

use super::owner::{FailMode, Kind, Owner, Period, Rules, Scope, Unowned, refusal};
use super::{
    CheckContext, CheckRoute, Context, Flow, Hooks, Observation, Plugin, PluginError, Reads,
    RequestInfo, State, Steer, UpstreamRequest, Warning,
};
use http::{HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use switchyard_state::{Refused, Reservation, SharedState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Whose budget: `caller` (the verified caller), `header` (the value of `header`,
    /// such as a tenant or session id), `route`, or `global`.
    scope: Scope,
    /// The header naming the budget's owner (scope `header`).
    #[serde(default)]
    header: Option<String>,
    /// Tokens per window (prompt and answer).
    #[serde(default)]
    tokens: Option<u64>,
    /// Dollars per window, at the models' prices.
    #[serde(default)]
    dollars: Option<f64>,
    /// The window: `minute`, `hour`, `day`, or a number of seconds.
    window: Period,
    /// Cap answers when little is left.
    #[serde(default)]
    shape: Option<Shape>,
    /// Compress prompts when little is left.
    #[serde(default)]
    compress: Option<Compress>,
    /// Choose among the cheapest candidates when little is left.
    #[serde(default)]
    downgrade: Option<Downgrade>,
    /// A request with no owner (no verified caller, no header): `refuse` (default,
    /// 403) or `allow` (it is not counted).
    #[serde(default)]
    unowned: Unowned,
    /// When the shared state cannot be reached: `open` (default: serve, uncounted) or
    /// `closed` (503).
    #[serde(default)]
    on_state_error: FailMode,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct Shape {
    /// The share of the budget left below which answers are capped, in (0, 1).
    below: f64,
    /// The cap.
    max_tokens: u32,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct Compress {
    /// The share of the budget left below which prompts are compressed, in (0, 1).
    below: f64,
    /// The share of its tokens a prompt is compressed to, in (0, 1).
    ratio: f64,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct Downgrade {
    /// The share of the budget left below which only the cheapest candidates are
    /// left, in (0, 1).
    below: f64,
}

/// What the budget counts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    Tokens,
    /// Counted in millionths of a dollar.
    Dollars,
}

/// Millionths of a dollar per dollar.
const MICRO: f64 = 1e6;

#[derive(Debug)]
struct Budget {
    owner: Owner,
    unit: Unit,
    /// In tokens, or millionths of a dollar.
    limit: u64,
    window: Duration,
    shape: Option<Shape>,
    compress: Option<Compress>,
    downgrade: Option<Downgrade>,
    state: Arc<dyn SharedState>,
}

/// Builds the plugin from its options.
pub fn build(
    options: &Map<String, Value>,
    context: &Context<'_>,
) -> Result<Box<dyn Plugin>, String> {
    let o: Options = super::options(options)?;
    let (unit, limit) = match (o.tokens, o.dollars) {
        (Some(_), Some(_)) => return Err("set tokens or dollars, not both".to_owned()),
        (None, None) => return Err("set a limit: tokens: N or dollars: N".to_owned()),
        (Some(0), None) => return Err("tokens: a budget of 0 refuses everything".to_owned()),
        (Some(tokens), None) => (Unit::Tokens, tokens),
        (None, Some(d)) if d.is_finite() && d > 0.0 && d < 1e12 => {
            (Unit::Dollars, (d * MICRO).round() as u64)
        }
        (None, Some(d)) => return Err(format!("dollars: {d} is not a positive amount")),
    };
    if unit == Unit::Dollars {
        let unpriced: Vec<&str> = context
            .models
            .iter()
            .zip(context.prices)
            .filter(|(_, p)| p.is_none())
            .map(|(m, _)| *m)
            .collect();
        if !unpriced.is_empty() {
            return Err(format!(
                "a dollar budget needs every model's price; none for {} (add price: {{input, output}})",
                unpriced.join(", ")
            ));
        }
    }
    let window = o.window.duration("window")?;
    let owner = Owner::new(
        o.scope,
        o.header,
        Rules {
            unowned: o.unowned,
            on_state_error: o.on_state_error,
            kind: Kind::Budget,
        },
        context,
    )?;
    if let Some(shape) = o.shape
        && (!(shape.below > 0.0 && shape.below < 1.0) || shape.max_tokens == 0)
    {
        return Err(
            "shape: below is a share of the budget in (0, 1) and max_tokens at least 1".to_owned(),
        );
    }
    let share = |x: f64| x > 0.0 && x < 1.0;
    if let Some(c) = o.compress
        && !(share(c.below) && share(c.ratio))
    {
        return Err(
            "compress: below is a share of the budget and ratio a share of the prompt, both in (0, 1)"
                .to_owned(),
        );
    }
    if let Some(d) = o.downgrade
        && !share(d.below)
    {
        return Err("downgrade: below is a share of the budget in (0, 1)".to_owned());
    }
    let state = context
        .state
        .cloned()
        .ok_or("no shared state to keep the budget in")?;
    Ok(Box::new(Budget {
        owner,
        unit,
        limit,
        window,
        shape: o.shape,
        compress: o.compress,
        downgrade: o.downgrade,
        state,
    }))
}

/// A step of the graduated response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Shape,
    Compress,
    Downgrade,
}

impl Step {
    /// As the options, headers and trace name it.
    fn name(self) -> &'static str {
        match self {
            Step::Shape => "shape",
            Step::Compress => "compress",
            Step::Downgrade => "downgrade",
        }
    }

    /// Its `result` in `switchyard_budget_requests_total`.
    fn counted(self) -> &'static str {
        match self {
            Step::Shape => "shaped",
            Step::Compress => "compressed",
            Step::Downgrade => "downgraded",
        }
    }
}

/// One request's standing with the budget.
#[derive(Debug, Default)]
struct Held {
    /// The share of the budget left, as read in the govern phase.
    left: Option<f64>,
    /// The steps taken.
    steps: Vec<Step>,
    /// What was reserved, to settle.
    reservation: Option<Reservation>,
    /// Left after the reservation (in the budget's unit).
    remaining: Option<u64>,
    /// When refused: seconds until the window ends.
    retry_after_s: Option<u64>,
}

/// Steps as the header and trace list them: `compress, downgrade, shape`.
fn steps(taken: &[Step]) -> String {
    taken
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The request's standing, made when first needed.
fn held(state: &mut State) -> &mut Held {
    super::state_of(state)
}

impl Budget {
    /// The cost of `prompt` and `output` tokens at `price` (dollars per million
    /// tokens, input and output), in the unit.
    fn priced(&self, price: Option<(f64, f64)>, prompt: u64, output: u64) -> u64 {
        match self.unit {
            Unit::Tokens => prompt.saturating_add(output),
            Unit::Dollars => {
                let (input, out) = price.unwrap_or((0.0, 0.0));
                // Dollars per million tokens times tokens is millionths of a dollar.
                (prompt as f64 * input + output as f64 * out).ceil() as u64
            }
        }
    }

    /// The cost of `prompt` and `output` tokens on the chosen model, in the unit.
    fn cost(&self, info: &RequestInfo<'_>, prompt: u64, output: u64) -> u64 {
        self.priced(info.price, prompt, output)
    }

    /// What `prompt` and `output` tokens cost at best on a route (the cheapest
    /// candidate), and which candidate that is.
    fn least<'a>(
        &self,
        route: &CheckRoute<'a>,
        prompt: u64,
        output: u64,
    ) -> Option<(u64, &'a str)> {
        route
            .candidates
            .iter()
            .map(|&(name, price)| (self.priced(price, prompt, output), name))
            .min()
    }

    /// The share of the budget left when `used` is spent.
    fn left(&self, used: u64) -> f64 {
        self.limit.saturating_sub(used) as f64 / self.limit as f64
    }

    fn render(&self, amount: u64) -> String {
        match self.unit {
            Unit::Tokens => format!("{amount} tokens"),
            Unit::Dollars => format!("${:.6}", amount as f64 / MICRO),
        }
    }
}

impl Plugin for Budget {
    fn check(&self, context: &CheckContext<'_>) -> Vec<Warning> {
        let mut found = Vec::new();
        let expected = u64::from(context.expected_output_tokens);
        for route in &context.routes {
            // A request that sets no max_tokens is reserved at the expected length.
            if let Some((need, model)) = self.least(route, 1, expected)
                && need > self.limit
            {
                found.push(Warning {
                    message: format!(
                        "on route `{}`, every request without max_tokens is refused: it is reserved {expected} answer tokens, at least {} (on `{model}`), more than the whole budget of {}",
                        route.name,
                        self.render(need),
                        self.render(self.limit)
                    ),
                    witness: format!(
                        "a one-token prompt without max_tokens on route `{}`",
                        route.name
                    ),
                    help: Some(
                        "raise the budget, or lower server.expected_output_tokens".to_owned(),
                    ),
                });
            }
            if self.downgrade.is_some() {
                let prices: Vec<Option<(f64, f64)>> =
                    route.candidates.iter().map(|&(_, p)| p).collect();
                let why = if prices.len() < 2 {
                    Some("it has one candidate".to_owned())
                } else if prices.iter().all(Option::is_none) {
                    Some("none of its candidates has a price".to_owned())
                } else if prices.iter().all(|p| *p == prices[0]) {
                    Some("its candidates have the same price".to_owned())
                } else {
                    None
                };
                if let Some(why) = why {
                    let names: Vec<&str> = route.candidates.iter().map(|&(n, _)| n).collect();
                    found.push(Warning {
                        message: format!(
                            "step `downgrade` never changes the model on route `{}`: {why}",
                            route.name
                        ),
                        witness: format!(
                            "a request on route `{}` with the budget nearly spent still has candidates {}",
                            route.name,
                            names.join(", ")
                        ),
                        help: Some(
                            "give the route a cheaper candidate with a price, or drop downgrade"
                                .to_owned(),
                        ),
                    });
                }
            }
        }
        // A step whose threshold is below the smallest request's cost starts only when
        // nothing fits any more.
        let smallest = context
            .routes
            .iter()
            .filter_map(|r| self.least(r, 1, 1))
            .min();
        let steps = [
            (Step::Shape, self.shape.map(|s| s.below)),
            (Step::Compress, self.compress.map(|c| c.below)),
            (Step::Downgrade, self.downgrade.map(|d| d.below)),
        ];
        for (step, below) in steps {
            let step = step.name();
            let (Some(below), Some((need, model))) = (below, smallest) else {
                continue;
            };
            let starts = (below * self.limit as f64).ceil() as u64;
            if starts <= need {
                found.push(Warning {
                    message: format!(
                        "step `{step}` can never take effect: it starts below {} left, and the smallest request costs {} (on `{model}`), so by then nothing fits",
                        self.render(starts),
                        self.render(need)
                    ),
                    witness: format!(
                        "with {} left, a one-token prompt asking for one token is refused",
                        self.render(starts.saturating_sub(1))
                    ),
                    help: Some(format!("raise {step}.below")),
                });
            }
        }
        found
    }

    fn hooks(&self) -> Hooks {
        Hooks {
            govern: self.compress.is_some() || self.downgrade.is_some(),
            request: true,
            response_headers: true,
            observe: true,
            ..Hooks::default()
        }
    }

    fn reads(&self) -> Reads {
        self.owner.reads()
    }

    fn on_govern(&self, info: &RequestInfo<'_>, state: &mut State) -> Result<Steer, PluginError> {
        // No owner, or no state: the request hook refuses or lets it pass, and counts.
        let Some(key) = self.owner.key("budget", info) else {
            return Ok(Steer::default());
        };
        let Ok(used) = self.state.counter(&key) else {
            return Ok(Steer::default());
        };
        let left = self.left(used);
        let held = held(state);
        held.left = Some(left);
        let mut steer = Steer::default();
        if let Some(c) = self.compress
            && left < c.below
        {
            steer.compress = Some(c.ratio);
            held.steps.push(Step::Compress);
        }
        if let Some(d) = self.downgrade
            && left < d.below
        {
            steer.downgrade = true;
            held.steps.push(Step::Downgrade);
        }
        if !steer.is_empty() {
            steer.why = Some(format!(
                "{:.1}% of budget `{}` left",
                left * 100.0,
                self.owner.name
            ));
        }
        Ok(steer)
    }

    fn on_request(
        &self,
        info: &RequestInfo<'_>,
        upstream: &mut UpstreamRequest<'_>,
        state: &mut State,
    ) -> Result<Flow, PluginError> {
        if info.dry_run {
            return Ok(Flow::Continue);
        }
        let Some(key) = self.owner.key("budget", info) else {
            return Ok(self.owner.no_owner());
        };
        let held = held(state);
        // Counted here, not in govern: a dry run takes its steps but is not counted.
        for step in &held.steps {
            self.owner.count(step.counted());
        }
        let mut output = info.output_tokens;
        if let Some(shape) = self.shape {
            // Read in the govern phase when a step there needed it; else now.
            let left = match held.left {
                Some(left) => left,
                None => match self.state.counter(&key) {
                    Ok(used) => self.left(used),
                    Err(e) => return Ok(self.owner.state_failed(&e)),
                },
            };
            if left < shape.below {
                upstream.body.cap_output(shape.max_tokens);
                output = output.min(u64::from(shape.max_tokens));
                held.steps.push(Step::Shape);
                self.owner.count(Step::Shape.counted());
            }
        }
        let amount = self.cost(info, info.prompt_tokens, output);
        match self.state.reserve(&key, amount, self.limit, self.window) {
            Ok(reservation) => {
                held.remaining = Some(self.limit.saturating_sub(reservation.used));
                held.reservation = Some(reservation);
                self.owner.count("reserved");
                Ok(Flow::Continue)
            }
            Err(Refused::Exhausted {
                used,
                retry_after_ms,
                ..
            }) => {
                self.owner.count("refused");
                let never = amount > self.limit;
                held.remaining = Some(self.limit.saturating_sub(used));
                held.retry_after_s = (!never).then(|| retry_after_ms.div_ceil(1000).max(1));
                let message = if never {
                    format!(
                        "budget `{}` is {} per window; this request alone needs {} (lower max_tokens or shorten the prompt)",
                        self.owner.name,
                        self.render(self.limit),
                        self.render(amount)
                    )
                } else {
                    format!(
                        "budget `{}`: {} of {} used in this window; this request needs {}; retry in {} s",
                        self.owner.name,
                        self.render(used),
                        self.render(self.limit),
                        self.render(amount),
                        retry_after_ms.div_ceil(1000).max(1)
                    )
                };
                Ok(refusal(429, "budget_exhausted", message))
            }
            Err(e) => Ok(self.owner.state_failed(&e)),
        }
    }

    fn on_response_headers(
        &self,
        _info: &RequestInfo<'_>,
        _status: u16,
        headers: &mut HeaderMap,
        state: &mut State,
    ) -> Result<(), PluginError> {
        let Some(held) = state.as_ref().and_then(|s| s.downcast_ref::<Held>()) else {
            return Ok(());
        };
        if let Some(remaining) = held.remaining {
            let text = match self.unit {
                Unit::Tokens => remaining.to_string(),
                Unit::Dollars => format!("{:.6}", remaining as f64 / MICRO),
            };
            if let Ok(value) = HeaderValue::from_str(&text) {
                headers.insert("x-switchyard-budget-remaining", value);
            }
        }
        if let Some(seconds) = held.retry_after_s {
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if !held.steps.is_empty()
            && let Ok(value) = HeaderValue::from_str(&steps(&held.steps))
        {
            headers.insert("x-switchyard-budget-steps", value);
        }
        Ok(())
    }

    fn explain(&self, state: &State) -> Option<String> {
        let held = state.as_ref()?.downcast_ref::<Held>()?;
        (!held.steps.is_empty()).then(|| format!("steps: {}", steps(&held.steps)))
    }

    fn on_observe(&self, info: &RequestInfo<'_>, outcome: &Observation<'_>, state: &mut State) {
        let Some(reservation) = state
            .as_mut()
            .and_then(|s| s.downcast_mut::<Held>())
            .and_then(|held| held.reservation.take())
        else {
            return;
        };
        let used = match outcome.usage {
            Some(usage) => self.cost(info, usage.prompt_tokens, usage.completion_tokens),
            // Without a usage report, an answer that began keeps its reservation.
            None if outcome.answer_began() => reservation.amount,
            None => 0,
        };
        self.state.settle(reservation, used);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use switchyard_state::{InProcess, Limits, ManualClock};
    // (CheckContext and CheckRoute come with super::*.)
    use switchyard_wire::{ChatRequest, Usage};

    fn info<'a>(caller: Option<&'a str>, prompt: u64, output: u64) -> RequestInfo<'a> {
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
            price: Some((1.0, 2.0)),
        }
    }

    fn budget(options: Value) -> (Box<dyn Plugin>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::default());
        let state: Arc<dyn SharedState> =
            Arc::new(InProcess::new(clock.clone(), Limits::default()));
        let context = Context {
            models: &["m"],
            prices: &[Some((1.0, 2.0))],
            identity: true,
            name: "b",
            state: Some(&state),
            ..Context::default()
        };
        (
            build(options.as_object().unwrap(), &context).unwrap(),
            clock,
        )
    }

    /// Runs a request through the hooks: its flow, headers, and (when forwarded) the
    /// settlement with `usage`.
    fn run(
        plugin: &dyn Plugin,
        info: &RequestInfo<'_>,
        usage: Option<Usage>,
    ) -> (Flow, HeaderMap, ChatRequest) {
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
        let forwarded = matches!(flow, Flow::Continue);
        plugin.on_observe(
            info,
            &Observation {
                status: if forwarded { 200 } else { 429 },
                outcome: "ok",
                phase: if forwarded { "forward" } else { "plugins" },
                usage,
                latency: Duration::ZERO,
            },
            &mut state,
        );
        (flow, out, body)
    }

    fn status(flow: &Flow) -> u16 {
        match flow {
            Flow::Continue => 200,
            Flow::Answer(a) => a.status,
        }
    }

    #[test]
    fn reservations_refuse_what_does_not_fit_and_settle_to_the_real_usage() {
        let (b, clock) = budget(json!({"scope": "caller", "tokens": 1000, "window": "minute"}));
        let alice = info(Some("alice"), 100, 500);
        // 600 held, then settled to the 300 really used.
        let (flow, headers, _) = run(&*b, &alice, Some(Usage::new(100, 200)));
        assert_eq!(status(&flow), 200);
        assert_eq!(headers["x-switchyard-budget-remaining"], "400");
        let (flow, _, _) = run(&*b, &alice, Some(Usage::new(100, 500)));
        assert_eq!(status(&flow), 200, "300 used, 600 fits");
        let (flow, headers, _) = run(&*b, &alice, None);
        let Flow::Answer(answer) = &flow else {
            panic!()
        };
        assert_eq!(answer.status, 429);
        assert!(
            answer.message.contains("900 tokens of 1000 tokens used"),
            "{}",
            answer.message
        );
        assert_eq!(headers[http::header::RETRY_AFTER], "60");
        // Another caller has a budget of its own; a new window starts over.
        assert_eq!(status(&run(&*b, &info(Some("bob"), 100, 500), None).0), 200);
        clock.set(60_000);
        assert_eq!(status(&run(&*b, &alice, None).0), 200);
        // More than the whole budget can never fit: no retry-after.
        let (flow, headers, _) = run(&*b, &info(Some("carol"), 100, 5000), None);
        assert_eq!(status(&flow), 429);
        assert!(!headers.contains_key(http::header::RETRY_AFTER));
    }

    #[test]
    fn an_answer_without_usage_keeps_its_reservation_and_a_refusal_costs_nothing() {
        let (b, _) = budget(json!({"scope": "global", "tokens": 1000, "window": 60}));
        let any = info(None, 100, 400);
        run(&*b, &any, None); // began, no usage: 500 kept
        let (flow, headers, _) = run(&*b, &any, None);
        assert_eq!(status(&flow), 200);
        assert_eq!(headers["x-switchyard-budget-remaining"], "0");
        assert_eq!(status(&run(&*b, &any, None).0), 429);
    }

    #[test]
    fn little_left_caps_answers_before_refusing() {
        let (b, _) = budget(json!({"scope": "caller", "tokens": 1000, "window": "hour",
                                   "shape": {"below": 0.5, "max_tokens": 50}}));
        let alice = info(Some("alice"), 100, 400);
        let (_, _, body) = run(&*b, &alice, Some(Usage::new(100, 500)));
        assert_eq!(body.max_tokens, None, "plenty left: not capped");
        let (flow, headers, body) = run(&*b, &alice, None);
        assert_eq!(status(&flow), 200);
        assert_eq!(body.max_tokens, Some(50), "under half left: capped");
        assert_eq!(
            headers["x-switchyard-budget-remaining"], "250",
            "100 + 50 held"
        );
    }

    #[test]
    fn govern_asks_for_compression_then_a_downgrade_as_the_budget_runs_down() {
        let (b, _) = budget(json!({"scope": "caller", "tokens": 1000, "window": "hour",
                                   "compress": {"below": 0.5, "ratio": 0.25},
                                   "downgrade": {"below": 0.2}}));
        assert!(b.hooks().govern);
        let alice = info(Some("alice"), 100, 300);
        let govern = |state: &mut State| b.on_govern(&alice, state).unwrap();
        let mut state: State = None;
        assert_eq!(govern(&mut state), Steer::default(), "all of it left");
        // 400 used: 60% left.
        run(&*b, &alice, Some(Usage::new(100, 300)));
        assert!(govern(&mut None).is_empty());
        // 800 used: 20% left is not below 20%; 801 is.
        run(&*b, &alice, Some(Usage::new(100, 300)));
        let steer = govern(&mut None);
        assert_eq!((steer.downgrade, steer.compress), (false, Some(0.25)));
        assert_eq!(steer.why.as_deref(), Some("20.0% of budget `b` left"));
        run(&*b, &info(Some("alice"), 1, 0), Some(Usage::new(1, 0)));
        let mut state: State = None;
        let steer = govern(&mut state);
        assert_eq!((steer.downgrade, steer.compress), (true, Some(0.25)));
        // The request hook reports the steps, and does not read the counter again.
        let small = info(Some("alice"), 10, 10);
        let mut body: ChatRequest =
            serde_json::from_value(json!({"model": "m", "messages": []})).unwrap();
        let flow = b
            .on_request(
                &small,
                &mut UpstreamRequest {
                    body: &mut body,
                    headers: &mut HeaderMap::new(),
                },
                &mut state,
            )
            .unwrap();
        assert_eq!(status(&flow), 200);
        let mut headers = HeaderMap::new();
        b.on_response_headers(&small, 200, &mut headers, &mut state)
            .unwrap();
        assert_eq!(headers["x-switchyard-budget-steps"], "compress, downgrade");
        assert_eq!(headers["x-switchyard-budget-remaining"], "179");
        assert_eq!(
            b.explain(&state).as_deref(),
            Some("steps: compress, downgrade")
        );
        // Without those steps there is no govern hook.
        let (plain, _) = budget(json!({"scope": "caller", "tokens": 1000, "window": "hour",
                                       "shape": {"below": 0.5, "max_tokens": 9}}));
        assert!(!plain.hooks().govern);
    }

    #[test]
    fn the_checker_finds_steps_that_never_take_effect_and_budgets_too_small() {
        let route = |name: &'static str, candidates: Vec<(&'static str, Option<(f64, f64)>)>| {
            super::super::CheckRoute { name, candidates }
        };
        let context = CheckContext {
            routes: vec![
                route("one", vec![("m", Some((1.0, 2.0)))]),
                route(
                    "two",
                    vec![("m", Some((1.0, 2.0))), ("n", Some((0.5, 1.0)))],
                ),
            ],
            expected_output_tokens: 512,
        };
        let messages = |options: Value| -> Vec<String> {
            budget(options)
                .0
                .check(&context)
                .into_iter()
                .map(|w| format!("{} / {}", w.message, w.witness))
                .collect()
        };
        // Fine: nothing to say.
        assert!(
            messages(json!({"scope": "caller", "tokens": 10000, "window": "day",
                            "shape": {"below": 0.5, "max_tokens": 9}}))
            .is_empty()
        );
        let found = messages(json!({"scope": "caller", "tokens": 10000, "window": "day",
                                    "downgrade": {"below": 0.1}}));
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with(
                "step `downgrade` never changes the model on route `one`: it has one candidate"
            ),
            "{found:?}"
        );
        // Under 2 tokens left (0.0001 of 10,000 is 1): nothing fits by then.
        let found = messages(json!({"scope": "caller", "tokens": 10000, "window": "day",
                                    "shape": {"below": 0.0001, "max_tokens": 9}}));
        assert_eq!(
            found,
            [
                "step `shape` can never take effect: it starts below 1 tokens left, and the smallest request costs 2 tokens (on `m`), so by then nothing fits / with 0 tokens left, a one-token prompt asking for one token is refused"
            ]
        );
        assert_eq!(
            messages(json!({"scope": "caller", "tokens": 10000, "window": "day",
                            "shape": {"below": 0.0002, "max_tokens": 9}}))
            .len(),
            1,
            "below 2 tokens left, 1 is left at most: still nothing fits"
        );
        assert!(
            messages(json!({"scope": "caller", "tokens": 10000, "window": "day",
                            "shape": {"below": 0.0003, "max_tokens": 9}}))
            .is_empty(),
            "below 3 tokens left, 2 may be: the smallest request fits"
        );
        // A budget smaller than a request without max_tokens, on each route.
        let found = messages(json!({"scope": "caller", "tokens": 500, "window": "day"}));
        assert_eq!(found.len(), 2);
        assert!(found[1].starts_with("on route `two`, every request without max_tokens is refused: it is reserved 512 answer tokens, at least 513 tokens"));
        // In dollars, the cheapest candidate counts: 1 × $0.5/M + 512 × $1/M = $0.000513.
        let found = messages(json!({"scope": "caller", "dollars": 0.0006, "window": "day"}));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("route `one`") && found[0].contains("$0.001025"),
            "{found:?}"
        );
    }

    #[test]
    fn dollar_budgets_price_at_the_models_prices() {
        let (b, _) = budget(json!({"scope": "caller", "dollars": 0.01, "window": "day"}));
        // 1,000 prompt tokens at $1/M and 2,000 out at $2/M: $0.005 each.
        let alice = info(Some("alice"), 1000, 2000);
        let (_, headers, _) = run(&*b, &alice, Some(Usage::new(1000, 2000)));
        assert_eq!(headers["x-switchyard-budget-remaining"], "0.005000");
        assert_eq!(status(&run(&*b, &alice, None).0), 200);
        assert_eq!(status(&run(&*b, &alice, None).0), 429);
    }

    #[test]
    fn requests_without_an_owner_are_refused_unless_allowed_and_dry_runs_take_nothing() {
        let (b, _) = budget(json!({"scope": "caller", "tokens": 1000, "window": "minute"}));
        let (flow, _, _) = run(&*b, &info(None, 1, 1), None);
        assert_eq!(status(&flow), 403);
        let dry = RequestInfo {
            dry_run: true,
            ..info(Some("alice"), 600, 0)
        };
        for _ in 0..3 {
            assert_eq!(status(&run(&*b, &dry, None).0), 200);
        }
        assert_eq!(status(&run(&*b, &info(Some("alice"), 600, 0), None).0), 200);
        let (open, _) = budget(
            json!({"scope": "caller", "tokens": 1000, "window": "minute", "unowned": "allow"}),
        );
        assert_eq!(status(&run(&*open, &info(None, 1, 1), None).0), 200);
    }

    #[test]
    fn bad_options_are_errors() {
        let state: Arc<dyn SharedState> = Arc::new(InProcess::new(
            Arc::new(ManualClock::default()),
            Limits::default(),
        ));
        let context = Context {
            models: &["m", "free"],
            prices: &[Some((1.0, 2.0)), None],
            identity: false,
            state: Some(&state),
            ..Context::default()
        };
        for (options, words) in [
            (
                json!({"scope": "global", "window": "minute"}),
                "set a limit",
            ),
            (
                json!({"scope": "global", "tokens": 1, "dollars": 1, "window": "day"}),
                "not both",
            ),
            (
                json!({"scope": "global", "dollars": 1, "window": "day"}),
                "none for free",
            ),
            (
                json!({"scope": "global", "tokens": 5, "window": 0.5}),
                "not in [1, 31 days]",
            ),
            (
                json!({"scope": "header", "tokens": 5, "window": "day"}),
                "needs `header:`",
            ),
            (
                json!({"scope": "caller", "tokens": 5, "window": "day"}),
                "signals.identity",
            ),
            (
                json!({"scope": "global", "tokens": 5, "window": "week"}),
                "did not match",
            ),
            (
                json!({"scope": "global", "tokens": 5, "window": "day",
                    "shape": {"below": 1.5, "max_tokens": 5}}),
                "in (0, 1)",
            ),
            (
                json!({"scope": "global", "tokens": 5, "window": "day", "limit": 5}),
                "unknown option",
            ),
            (
                json!({"scope": "global", "tokens": 5, "window": "day",
                    "compress": {"below": 0.5, "ratio": 1.0}}),
                "both in (0, 1)",
            ),
            (
                json!({"scope": "global", "tokens": 5, "window": "day",
                    "downgrade": {"below": 0}}),
                "downgrade: below",
            ),
        ] {
            let error = build(options.as_object().unwrap(), &context).unwrap_err();
            assert!(error.contains(words), "{options}: {error}");
        }
    }
}
