//! `tool_permissions`: which tools a caller may have the model use, by role.
//!
//! Rules name roles (from verified tokens or trusted headers; `*` is everyone, callers
//! without an identity included) and the tool names they `allow` and `deny`, as globs
//! (`search_*`). A tool is permitted when a rule of one of the caller's roles allows it
//! and none denies it; nothing is permitted by default. In mode `strip`, forbidden tools
//! are removed from the request before it leaves (and with them a `tool_choice` naming
//! one); in mode `block`, a request offering one is refused (403). In both, an answer
//! whose tool calls name a forbidden tool (the model may call a tool it was never
//! offered) is refused: a whole answer becomes a 403 error, and a stream ends with a
//! terminal error event before the call's first delta reaches the client. Every action
//! is counted and logged with the roles and the tool.

use super::{
    CheckContext, ChunkFlow, Context, Flow, Hooks, LocalAnswer, Plugin, PluginError, Reads,
    RequestInfo, State, UpstreamRequest, Warning,
};
use regex::RegexSet;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// `strip` (default) or `block`.
    #[serde(default)]
    mode: Mode,
    /// Per role, the tools allowed and denied.
    rules: Vec<RuleOptions>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Mode {
    #[default]
    Strip,
    Block,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleOptions {
    /// The roles it applies to (`*`: everyone).
    roles: Vec<String>,
    /// Tool-name globs it allows.
    #[serde(default)]
    allow: Vec<String>,
    /// Tool-name globs it denies (over any rule's allow).
    #[serde(default)]
    deny: Vec<String>,
}

#[derive(Debug)]
struct Rule {
    roles: Vec<String>,
    allow: RegexSet,
    deny: RegexSet,
    /// The globs as written, for the checker.
    allow_globs: Vec<String>,
    deny_globs: Vec<String>,
}

#[derive(Debug)]
struct ToolPermissions {
    name: String,
    mode: Mode,
    rules: Vec<Rule>,
}

/// A glob (`*` any run, `?` one character) as an anchored pattern.
fn glob(pattern: &str) -> String {
    let mut out = String::from("^");
    for c in pattern.chars() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out.push('$');
    out
}

fn globs(field: &str, patterns: &[String]) -> Result<RegexSet, String> {
    if let Some(bad) = patterns.iter().find(|p| p.trim().is_empty()) {
        return Err(format!("{field}: an empty tool pattern `{bad}`"));
    }
    RegexSet::new(patterns.iter().map(|p| glob(p))).map_err(|e| format!("{field}: {e}"))
}

/// Builds the plugin from its options.
pub fn build(
    options: &Map<String, Value>,
    context: &Context<'_>,
) -> Result<Box<dyn Plugin>, String> {
    let o: Options = super::options(options)?;
    if o.rules.is_empty() {
        return Err("rules: at least one {roles, allow, deny}".to_owned());
    }
    let mut rules = Vec::new();
    for (i, r) in o.rules.into_iter().enumerate() {
        if r.roles.is_empty() {
            return Err(format!("rules[{i}].roles: name roles, or `*` for everyone"));
        }
        if r.allow.is_empty() && r.deny.is_empty() {
            return Err(format!("rules[{i}]: allow or deny some tools"));
        }
        rules.push(Rule {
            roles: r.roles,
            allow: globs(&format!("rules[{i}].allow"), &r.allow)?,
            deny: globs(&format!("rules[{i}].deny"), &r.deny)?,
            allow_globs: r.allow,
            deny_globs: r.deny,
        });
    }
    Ok(Box::new(ToolPermissions {
        name: context.name.to_owned(),
        mode: o.mode,
        rules,
    }))
}

/// Whether glob `d` matches every name glob `p` matches. Sound, not complete: true
/// only when certain (`d` matches `p` read as a string, where `d`'s `*` takes any run
/// of `p`'s symbols, wildcards included, and `d`'s `?` one symbol that is not `*`).
fn covers(d: &str, p: &str) -> bool {
    let (d, p): (Vec<char>, Vec<char>) = (d.chars().collect(), p.chars().collect());
    // m[j]: d's first i symbols cover p's first j (row i, rolled).
    let mut m = vec![false; p.len() + 1];
    m[0] = true;
    for &c in &d {
        let mut next = vec![false; p.len() + 1];
        for j in 0..=p.len() {
            next[j] = match c {
                '*' => m[j] || (j > 0 && next[j - 1]),
                '?' => j > 0 && p[j - 1] != '*' && m[j - 1],
                c => j > 0 && p[j - 1] == c && m[j - 1],
            };
        }
        m = next;
    }
    m[p.len()]
}

/// A tool name glob `p` matches (wildcards filled in).
fn example(p: &str) -> String {
    if p.chars().all(|c| c == '*') {
        return "any_tool".to_owned();
    }
    p.chars()
        .map(|c| if c == '*' || c == '?' { 'x' } else { c })
        .collect()
}

/// The name of an offered tool (`{type: function, function: {name}}`, or a legacy
/// `functions` entry `{name}`).
fn offered_name(tool: &Value) -> Option<&str> {
    tool.pointer("/function/name")
        .or_else(|| tool.get("name"))
        .and_then(Value::as_str)
}

/// The tool names a message or streamed delta calls.
fn called_names(message: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|call| call.pointer("/function/name").and_then(Value::as_str))
        .collect();
    if let Some(name) = message
        .pointer("/function_call/name")
        .and_then(Value::as_str)
    {
        names.push(name);
    }
    names
}

impl ToolPermissions {
    /// The rules that apply to a caller with `roles`.
    fn applying<'a>(&'a self, roles: &[String]) -> Vec<&'a Rule> {
        self.rules
            .iter()
            .filter(|rule| {
                rule.roles
                    .iter()
                    .any(|r| r == "*" || roles.iter().any(|mine| mine == r))
            })
            .collect()
    }

    /// Whether the rules that apply to a caller permit `tool`.
    fn permits(rules: &[&Rule], tool: &str) -> bool {
        rules.iter().any(|r| r.allow.is_match(tool)) && !rules.iter().any(|r| r.deny.is_match(tool))
    }

    /// Counts an action on `tools` and logs it once, with the first few names (the
    /// names are the client's: a request offering thousands writes one line).
    fn count(&self, action: &'static str, roles: &[String], tools: &[String]) {
        metrics::counter!("switchyard_tool_permissions_total",
            "plugin" => self.name.clone(), "action" => action)
        .increment(tools.len() as u64);
        const NAMED: usize = 8;
        let mut named = tools[..tools.len().min(NAMED)].join(", ");
        if tools.len() > NAMED {
            named.push_str(&format!(" and {} more", tools.len() - NAMED));
        }
        tracing::info!(plugin = %self.name, action, roles = %roles.join(","), tools = %named,
            "tool permission");
    }

    fn refusal(&self, roles: &[String], tool: &str, called: bool) -> LocalAnswer {
        let whose = if roles.is_empty() {
            "a caller without roles".to_owned()
        } else {
            format!("roles {}", roles.join(", "))
        };
        let message = if called {
            format!("the model called tool `{tool}`, which is not permitted for {whose}")
        } else {
            format!("tool `{tool}` is not permitted for {whose}")
        };
        LocalAnswer::new(403, "tool_forbidden", message)
    }
}

impl ToolPermissions {
    /// The deny (rule index and glob) that applies to every caller with one of
    /// `roles` (a `*` rule: every caller) and matches every name `allow` matches.
    fn shadowing(&self, roles: &[String], allow: &str) -> Option<(usize, &str)> {
        let everyone = roles.iter().any(|r| r == "*");
        let applies = |rule: &Rule| {
            rule.roles.iter().any(|r| r == "*")
                || (!everyone && roles.iter().all(|mine| rule.roles.contains(mine)))
        };
        self.rules.iter().enumerate().find_map(|(i, rule)| {
            if !applies(rule) {
                return None;
            }
            let d = rule.deny_globs.iter().find(|d| covers(d, allow))?;
            Some((i, d.as_str()))
        })
    }
}

impl Plugin for ToolPermissions {
    fn check(&self, context: &CheckContext<'_>) -> Vec<Warning> {
        let mut found = Vec::new();
        // An allow that a deny of the same callers covers never permits a tool.
        let mut roles_left_with_nothing: Vec<&str> = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let mut live = false;
            for allow in &rule.allow_globs {
                match self.shadowing(&rule.roles, allow) {
                    Some((j, deny)) => found.push(Warning {
                        message: format!(
                            "rules[{i}].allow `{allow}` never permits a tool: rules[{j}].deny `{deny}` denies every name it matches for roles {}",
                            rule.roles.join(", ")
                        ),
                        witness: format!(
                            "a caller with role `{}` offering tool `{}` has it {}",
                            rule.roles[0],
                            example(allow),
                            if self.mode == Mode::Block { "refused" } else { "stripped" }
                        ),
                        help: Some(format!(
                            "narrow `{deny}`, or drop `{allow}` if the deny is meant"
                        )),
                    }),
                    None => live = true,
                }
            }
            if !live && !rule.allow_globs.is_empty() {
                roles_left_with_nothing.extend(rule.roles.iter().map(String::as_str));
            }
        }
        // In block mode, a role whose every allow is dead is refused any tool.
        roles_left_with_nothing.sort_unstable();
        roles_left_with_nothing.dedup();
        if self.mode == Mode::Block && !context.routes.is_empty() {
            for role in roles_left_with_nothing {
                let who = if role == "*" {
                    "a caller with no role".to_owned()
                } else {
                    format!("a caller whose only role is `{role}`")
                };
                let permitted = self
                    .applying(&[role.to_owned()])
                    .iter()
                    .flat_map(|r| &r.allow_globs)
                    .any(|a| self.shadowing(&[role.to_owned()], a).is_none());
                if permitted {
                    continue;
                }
                let routes: Vec<&str> = context.routes.iter().map(|r| r.name).collect();
                found.push(Warning {
                    message: format!(
                        "in block mode, every request from {who} that offers a tool is refused on route{} {}",
                        if routes.len() == 1 { "" } else { "s" },
                        routes.join(", ")
                    ),
                    witness: format!("{who} asking route `{}` with any tool", routes[0]),
                    help: Some(
                        "allow the role some tool, or use mode: strip to send its requests without tools"
                            .to_owned(),
                    ),
                });
            }
        }
        found
    }

    fn hooks(&self) -> Hooks {
        Hooks {
            request: true,
            response: true,
            stream: true,
            ..Hooks::default()
        }
    }

    fn reads(&self) -> Reads {
        Reads {
            caller: true,
            ..Reads::default()
        }
    }

    fn on_request(
        &self,
        info: &RequestInfo<'_>,
        upstream: &mut UpstreamRequest<'_>,
        _state: &mut State,
    ) -> Result<Flow, PluginError> {
        let rules = self.applying(info.roles);
        let extra = &mut upstream.body.extra;
        let mut stripped = Vec::new();
        for field in ["tools", "functions"] {
            let Some(Value::Array(tools)) = extra.get_mut(field) else {
                continue;
            };
            let mut kept = Vec::with_capacity(tools.len());
            for tool in tools.drain(..) {
                let name = offered_name(&tool).unwrap_or_default().to_owned();
                if ToolPermissions::permits(&rules, &name) {
                    kept.push(tool);
                    continue;
                }
                if self.mode == Mode::Block {
                    self.count("blocked", info.roles, std::slice::from_ref(&name));
                    return Ok(Flow::Answer(self.refusal(info.roles, &name, false)));
                }
                stripped.push(name);
            }
            if kept.is_empty() {
                extra.remove(field);
            } else {
                *tools = kept;
            }
        }
        if !stripped.is_empty() {
            self.count("stripped", info.roles, &stripped);
            // A choice naming a stripped tool (or any choice, when none is left) goes.
            let offered = extra.contains_key("tools") || extra.contains_key("functions");
            for field in ["tool_choice", "function_call"] {
                let named = extra.get(field).and_then(|c| {
                    c.pointer("/function/name")
                        .or_else(|| c.get("name"))
                        .and_then(Value::as_str)
                });
                if !offered || named.is_some_and(|n| stripped.iter().any(|s| s == n)) {
                    extra.remove(field);
                }
            }
            if !offered {
                extra.remove("parallel_tool_calls");
            }
        }
        Ok(Flow::Continue)
    }

    fn on_response(
        &self,
        info: &RequestInfo<'_>,
        body: &mut Value,
        _state: &mut State,
    ) -> Result<Flow, PluginError> {
        let Some(choices) = body.get("choices").and_then(Value::as_array) else {
            return Ok(Flow::Continue);
        };
        let rules = self.applying(info.roles);
        for choice in choices {
            let Some(message) = choice.get("message") else {
                continue;
            };
            if let Some(tool) = called_names(message)
                .into_iter()
                .find(|t| !ToolPermissions::permits(&rules, t))
            {
                self.count("refused_call", info.roles, &[tool.to_owned()]);
                return Ok(Flow::Answer(self.refusal(info.roles, tool, true)));
            }
        }
        Ok(Flow::Continue)
    }

    fn on_response_chunk(
        &self,
        info: &RequestInfo<'_>,
        event: String,
        out: &mut Vec<String>,
        _state: &mut State,
    ) -> Result<ChunkFlow, PluginError> {
        // A call's name comes in its first delta; events without one pass unparsed.
        if !(event.contains("\"tool_calls\"") || event.contains("\"function_call\"")) {
            out.push(event);
            return Ok(ChunkFlow::Continue);
        }
        let Ok(chunk) = serde_json::from_str::<Value>(&event) else {
            out.push(event);
            return Ok(ChunkFlow::Continue);
        };
        let rules = self.applying(info.roles);
        let forbidden = chunk
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|choice| choice.get("delta"))
            .flat_map(called_names)
            .find(|t| !ToolPermissions::permits(&rules, t))
            .map(str::to_owned);
        match forbidden {
            Some(tool) => {
                self.count("refused_call", info.roles, std::slice::from_ref(&tool));
                Ok(ChunkFlow::End(
                    self.refusal(info.roles, &tool, true).message,
                ))
            }
            None => {
                out.push(event);
                Ok(ChunkFlow::Continue)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use serde_json::json;
    use switchyard_wire::ChatRequest;

    fn plugin(mode: &str) -> Box<dyn Plugin> {
        let options = json!({"mode": mode, "rules": [
            {"roles": ["admin"], "allow": ["*"]},
            {"roles": ["support"], "allow": ["search_*", "get_order"], "deny": ["search_private*"]},
            {"roles": ["*"], "allow": ["search_docs"]},
        ]});
        build(
            options.as_object().unwrap(),
            &Context {
                name: "tools",
                ..Context::default()
            },
        )
        .unwrap()
    }

    fn info(roles: &[String]) -> RequestInfo<'_> {
        RequestInfo {
            request_id: "r",
            route: "r",
            model: "m",
            family: None,
            stream: true,
            dry_run: false,
            embedding: None,
            caller: Some("someone"),
            roles,
            headers: &[],
            embedder: None,
            prompt_tokens: 0,
            output_tokens: 0,
            price: None,
        }
    }

    fn tools(names: &[&str]) -> Value {
        Value::Array(
            names
                .iter()
                .map(|n| json!({"type": "function", "function": {"name": n, "parameters": {}}}))
                .collect(),
        )
    }

    fn request(p: &dyn Plugin, roles: &[String], body: Value) -> (Flow, ChatRequest) {
        let mut body: ChatRequest = serde_json::from_value(body).unwrap();
        let flow = p
            .on_request(
                &info(roles),
                &mut UpstreamRequest {
                    body: &mut body,
                    headers: &mut HeaderMap::new(),
                },
                &mut None,
            )
            .unwrap();
        (flow, body)
    }

    fn names(body: &ChatRequest) -> Vec<String> {
        body.extra
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| offered_name(t).map(str::to_owned))
            .collect()
    }

    #[test]
    fn roles_allow_and_deny_by_glob() {
        let p = plugin("strip");
        let support = ["support".to_owned()];
        let all = [
            "search_docs",
            "search_private_notes",
            "get_order",
            "delete_user",
        ];
        let (_, body) = request(
            &*p,
            &support,
            json!({"model": "m", "messages": [], "tools": tools(&all), "tool_choice": "auto"}),
        );
        assert_eq!(names(&body), ["search_docs", "get_order"]);
        assert_eq!(
            body.extra["tool_choice"], "auto",
            "it names no stripped tool"
        );
        let (_, body) = request(
            &*p,
            &["admin".to_owned()],
            json!({"model": "m", "messages": [], "tools": tools(&all)}),
        );
        assert_eq!(names(&body).len(), 4);
        // No roles: only what everyone may use. A choice naming a stripped tool goes.
        let (_, body) = request(
            &*p,
            &[],
            json!({"model": "m", "messages": [], "tools": tools(&all),
                   "tool_choice": {"type": "function", "function": {"name": "get_order"}}}),
        );
        assert_eq!(names(&body), ["search_docs"]);
        assert!(!body.extra.contains_key("tool_choice"));
        // Nothing left: tools, choice and parallel calls go.
        let (_, body) = request(
            &*p,
            &[],
            json!({"model": "m", "messages": [], "tools": tools(&["delete_user"]),
                   "tool_choice": "required", "parallel_tool_calls": true}),
        );
        assert!(body.extra.is_empty(), "{:?}", body.extra);
    }

    #[test]
    fn block_refuses_the_request_and_forbidden_calls_are_refused_in_answers() {
        let p = plugin("block");
        let support = ["support".to_owned()];
        let (flow, _) = request(
            &*p,
            &support,
            json!({"model": "m", "messages": [], "tools": tools(&["search_docs", "delete_user"])}),
        );
        let Flow::Answer(refusal) = flow else {
            panic!()
        };
        assert_eq!(
            (refusal.status, refusal.code.as_str()),
            (403, "tool_forbidden")
        );
        assert!(refusal.message.contains("`delete_user`") && refusal.message.contains("support"));

        let mut whole = json!({"choices": [{"index": 0, "message": {"role": "assistant",
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "delete_user", "arguments": "{}"}}]}}]});
        let Flow::Answer(refusal) = p
            .on_response(&info(&support), &mut whole, &mut None)
            .unwrap()
        else {
            panic!()
        };
        assert!(
            refusal
                .message
                .contains("the model called tool `delete_user`")
        );
        let mut fine = json!({"choices": [{"index": 0, "message": {"role": "assistant",
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "get_order", "arguments": "{}"}}]}}]});
        assert!(matches!(
            p.on_response(&info(&support), &mut fine, &mut None)
                .unwrap(),
            Flow::Continue
        ));

        let delta = |name: &str| {
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c",
                "type": "function", "function": {"name": name, "arguments": ""}}]}}]})
            .to_string()
        };
        let mut out = Vec::new();
        let flow = p
            .on_response_chunk(&info(&support), delta("get_order"), &mut out, &mut None)
            .unwrap();
        assert_eq!((flow, out.len()), (ChunkFlow::Continue, 1));
        let args = json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0,
            "function": {"arguments": "{\"id\": 1}"}}]}}]})
        .to_string();
        p.on_response_chunk(&info(&support), args, &mut out, &mut None)
            .unwrap();
        let flow = p
            .on_response_chunk(&info(&support), delta("delete_user"), &mut out, &mut None)
            .unwrap();
        assert!(matches!(flow, ChunkFlow::End(m) if m.contains("delete_user")));
        assert_eq!(
            out.len(),
            2,
            "the forbidden call's delta was not let through"
        );
    }

    #[test]
    fn a_deny_covers_an_allow_only_when_it_matches_every_name() {
        for (d, p, expected) in [
            ("*", "anything_*", true),
            ("search*", "search_*", true),
            ("search*", "search_docs", true),
            ("search_?ocs", "search_docs", true),
            ("search_?ocs", "search_*", false),
            ("search_docs", "search_*", false),
            ("*_docs", "search_*", false),
            ("s*s", "s*_docs", true),
            ("a?c", "a?c", true),
            ("a?c", "a*c", false),
            ("abc", "abd", false),
        ] {
            assert_eq!(covers(d, p), expected, "{d} covers {p}");
            // Sound: a claim of cover holds on the example name.
            if expected {
                assert!(
                    RegexSet::new([glob(d)]).unwrap().is_match(&example(p)),
                    "{d} {p}"
                );
            }
        }
        assert_eq!(example("search_*"), "search_x");
        assert_eq!(example("**"), "any_tool");
    }

    #[test]
    fn the_checker_finds_allows_a_deny_covers_and_roles_refused_every_tool() {
        let build = |mode: &str, rules: Value| {
            super::build(
                json!({"mode": mode, "rules": rules}).as_object().unwrap(),
                &Context::default(),
            )
            .unwrap()
        };
        let context = CheckContext {
            routes: vec![super::super::CheckRoute {
                name: "agents",
                candidates: vec![("m", None)],
            }],
            expected_output_tokens: 512,
        };
        let rules = json!([
            {"roles": ["intern"], "allow": ["search_*"]},
            {"roles": ["intern", "support"], "deny": ["search*"]},
            {"roles": ["support"], "allow": ["search_docs", "get_*"]},
        ]);
        let found = build("block", rules.clone()).check(&context);
        let messages: Vec<&str> = found.iter().map(|w| w.message.as_str()).collect();
        assert_eq!(found.len(), 3, "{messages:#?}");
        assert!(messages[0].starts_with(
            "rules[0].allow `search_*` never permits a tool: rules[1].deny `search*`"
        ));
        assert_eq!(
            found[0].witness,
            "a caller with role `intern` offering tool `search_x` has it refused"
        );
        assert!(messages[1].starts_with("rules[2].allow `search_docs` never permits"));
        // Interns are permitted nothing: in block mode, every tool request is refused.
        assert_eq!(
            messages[2],
            "in block mode, every request from a caller whose only role is `intern` that offers a tool is refused on route agents"
        );
        // Support keeps get_*; in strip mode nobody is refused outright.
        let stripped = build("strip", rules).check(&context);
        assert_eq!(stripped.len(), 2);
        assert!(stripped[0].witness.ends_with("has it stripped"));
        // A deny for one of two roles does not cover the other's allow.
        let fine = build(
            "block",
            json!([{"roles": ["a", "b"], "allow": ["x_*"]}, {"roles": ["a"], "deny": ["x_*"]}]),
        );
        assert!(fine.check(&context).is_empty());
        // Everyone's allow is covered only by a deny for everyone.
        let dead = build(
            "block",
            json!([{"roles": ["*"], "allow": ["x"]}, {"roles": ["*"], "deny": ["*"]}]),
        );
        let found = dead.check(&context);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[1].message.contains("a caller with no role"));
    }

    #[test]
    fn bad_rules_are_errors() {
        for (options, words) in [
            (json!({"rules": []}), "at least one"),
            (
                json!({"rules": [{"roles": [], "allow": ["a"]}]}),
                "rules[0].roles",
            ),
            (json!({"rules": [{"roles": ["x"]}]}), "allow or deny"),
            (
                json!({"rules": [{"roles": ["x"], "allow": [""]}]}),
                "empty tool pattern",
            ),
            (
                json!({"mode": "warn", "rules": [{"roles": ["x"], "allow": ["a"]}]}),
                "unknown variant",
            ),
        ] {
            let error = build(options.as_object().unwrap(), &Context::default()).unwrap_err();
            assert!(error.contains(words), "{options}: {error}");
        }
    }
}
