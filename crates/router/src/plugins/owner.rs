//! Whose count a request goes on, for the plugins that count per owner in the shared
//! state (`budget`, `rate_limit`): the verified caller, the value of a header (a
//! tenant, a session), the route, or everyone.

use super::{Context, Flow, LocalAnswer, Reads, RequestInfo};
use serde::Deserialize;
use switchyard_state::Refused;

/// Which plugin counts: names its metric, codes and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Budget,
    RateLimit,
}

impl Kind {
    /// As messages say it.
    fn said(self) -> &'static str {
        match self {
            Kind::Budget => "budget",
            Kind::RateLimit => "rate limit",
        }
    }

    /// The prefix of its error codes.
    fn code(self) -> &'static str {
        match self {
            Kind::Budget => "budget",
            Kind::RateLimit => "rate_limit",
        }
    }
}

/// An answer of the gateway's own: an error with this status, code and message.
pub(super) fn refusal(status: u16, code: &str, message: String) -> Flow {
    Flow::Answer(LocalAnswer::new(status, code, message))
}

/// The owner kinds, as written in `scope:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Scope {
    Caller,
    Header,
    Route,
    Global,
}

/// A plugin's owner rule, checked against the configuration, with what a request
/// without an owner, or met by a failing state, does.
#[derive(Debug, Clone)]
pub(super) struct Owner {
    scope: Scope,
    header: Option<String>,
    unowned: Unowned,
    on_state_error: FailMode,
    kind: Kind,
    /// The plugin's name: its counters are its own.
    pub(super) name: String,
}

/// The options every counting plugin shares.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rules {
    pub(super) unowned: Unowned,
    pub(super) on_state_error: FailMode,
    pub(super) kind: Kind,
}

impl Owner {
    /// The rule of `scope` (and `header`, for scope header), refused when the
    /// configuration cannot give it (a caller scope without verified callers).
    pub(super) fn new(
        scope: Scope,
        header: Option<String>,
        rules: Rules,
        context: &Context<'_>,
    ) -> Result<Owner, String> {
        let header = match (scope, header) {
            (Scope::Header, Some(h)) if !h.trim().is_empty() => Some(h.trim().to_ascii_lowercase()),
            (Scope::Header, _) => {
                return Err("scope header needs `header:` (e.g. x-tenant-id)".to_owned());
            }
            (_, Some(_)) => return Err("header: only with scope: header".to_owned()),
            (_, None) => None,
        };
        if scope == Scope::Caller && !context.identity {
            return Err(
                "scope caller needs verified callers: configure signals.identity".to_owned(),
            );
        }
        Ok(Owner {
            scope,
            header,
            unowned: rules.unowned,
            on_state_error: rules.on_state_error,
            kind: rules.kind,
            name: context.name.to_owned(),
        })
    }

    /// Counts a request's result in the plugin's metric.
    pub(super) fn count(&self, result: &'static str) {
        match self.kind {
            Kind::Budget => metrics::counter!("switchyard_budget_requests_total",
                "budget" => self.name.clone(), "result" => result)
            .increment(1),
            Kind::RateLimit => metrics::counter!("switchyard_rate_limit_requests_total",
                "limit" => self.name.clone(), "result" => result)
            .increment(1),
        }
    }

    /// A request without an owner: served uncounted, or refused (403), as configured.
    pub(super) fn no_owner(&self) -> Flow {
        if self.unowned == Unowned::Allow {
            self.count("unowned");
            return Flow::Continue;
        }
        self.count("refused");
        refusal(
            403,
            &format!("{}_owner_missing", self.kind.code()),
            format!(
                "{} `{}` is kept per owner: the request needs {}",
                self.kind.said(),
                self.name,
                self.missing()
            ),
        )
    }

    /// The state failed: served uncounted, or refused (503), as configured.
    pub(super) fn state_failed(&self, error: &Refused) -> Flow {
        tracing::warn!(plugin = %self.name, %error,
            "{} not checked: the shared state failed", self.kind.said());
        match self.on_state_error {
            FailMode::Open => {
                self.count("unchecked");
                Flow::Continue
            }
            FailMode::Closed => {
                self.count("unavailable");
                refusal(
                    503,
                    &format!("{}_unavailable", self.kind.code()),
                    format!(
                        "{} `{}` cannot be checked right now; retry shortly",
                        self.kind.said(),
                        self.name
                    ),
                )
            }
        }
    }

    /// The key of the request's owner's `counter` (a name within the plugin), or None
    /// when the request has no owner. The owner is hashed: a long or odd value costs
    /// the store nothing more.
    pub(super) fn key(&self, counter: &str, info: &RequestInfo<'_>) -> Option<String> {
        let owner = match self.scope {
            Scope::Caller => info.caller?,
            Scope::Header => info.header(self.header.as_deref()?)?,
            Scope::Route => info.route,
            Scope::Global => "",
        };
        let hash =
            switchyard_wire::hash::fnv1a(owner.as_bytes(), switchyard_wire::hash::FNV_OFFSET);
        Some(format!("{counter}:{}:{hash:016x}", self.name))
    }

    /// What the plugin reads to find the owner.
    pub(super) fn reads(&self) -> Reads {
        Reads {
            caller: self.scope == Scope::Caller,
            headers: self.header.iter().cloned().collect(),
            state: true,
            ..Reads::default()
        }
    }

    /// What a request without an owner lacks, for its refusal.
    fn missing(&self) -> String {
        match self.scope {
            Scope::Caller => "a verified caller".to_owned(),
            _ => format!(
                "the `{}` header",
                self.header.as_deref().unwrap_or_default()
            ),
        }
    }
}

/// A period: `second`, `minute`, `hour`, `day`, or a number of seconds.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub(super) enum Period {
    Named(NamedPeriod),
    Seconds(f64),
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum NamedPeriod {
    Second,
    Minute,
    Hour,
    Day,
}

impl Period {
    /// Its length; `field` names it in the error of a length out of [1 s, 31 days].
    pub(super) fn duration(self, field: &str) -> Result<std::time::Duration, String> {
        let seconds = match self {
            Period::Named(NamedPeriod::Second) => 1.0,
            Period::Named(NamedPeriod::Minute) => 60.0,
            Period::Named(NamedPeriod::Hour) => 3600.0,
            Period::Named(NamedPeriod::Day) => 86_400.0,
            Period::Seconds(s) => s,
        };
        if seconds.is_finite() && (1.0..=31.0 * 86_400.0).contains(&seconds) {
            Ok(std::time::Duration::from_secs_f64(seconds))
        } else {
            Err(format!(
                "{field}: {seconds} seconds is not in [1, 31 days]; or write second, minute, hour, day"
            ))
        }
    }
}

/// What a request with no owner does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Unowned {
    /// Refused (403).
    #[default]
    Refuse,
    /// Served, not counted.
    Allow,
}

/// What a request does when the shared state cannot be reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum FailMode {
    /// Served, not counted.
    #[default]
    Open,
    /// Refused (503).
    Closed,
}
