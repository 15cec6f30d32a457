//! Checking a configuration across sections and compiling its routes.

use crate::checker::{Analysis, Finding};
use crate::condition::{Condition, Measure, Test};
use crate::config::{AlgorithmConfig, CandidateConfig, CandidateOptions, Config};
use crate::diagnostics::{ConfigError, Diagnostic, Severity};
use serde_saphyr::{Location, Spanned};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use switchyard_workload::{SignalEngine, SignalFamily, SignalId, Signals};

/// One boolean fact about a request that a condition reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Atom {
    /// The signal holds by its own rule.
    Holds(SignalId),
    /// The signal's value or confidence passes a test.
    Test(SignalId, Test),
    /// The signal reports this categorical outcome: an index into
    /// [`Policy::labels`].
    Label(SignalId, u32),
}

impl Atom {
    /// The signal it reads.
    pub fn signal(self) -> SignalId {
        match self {
            Atom::Holds(id) | Atom::Test(id, _) | Atom::Label(id, _) => id,
        }
    }

    /// Whether it holds for `signals`; `labels` are the policy's ([`Policy::labels`]).
    #[inline]
    pub fn holds(self, signals: &Signals, labels: &[String]) -> bool {
        match self {
            Atom::Holds(id) => signals.matched(id),
            Atom::Test(..) | Atom::Label(..) => self.read(signals, labels).0,
        }
    }

    /// Whether it holds for `signals`, and how sure that is: the signal's confidence,
    /// except for a test on the confidence itself, which is exact (1). A signal that
    /// was not computed fails every test.
    pub fn read(self, signals: &Signals, labels: &[String]) -> (bool, f64) {
        let Some(value) = signals.get(self.signal()) else {
            return (false, 0.0);
        };
        match self {
            Atom::Holds(_) => (value.matched, value.confidence),
            Atom::Label(_, at) => (
                value.label.is_some() && value.label.as_ref() == labels.get(at as usize),
                value.confidence,
            ),
            Atom::Test(..) if value.error.is_some() => (false, 0.0),
            Atom::Test(_, test) => match test.measure {
                Measure::Value => (test.passes(value.value), value.confidence),
                Measure::Confidence => (test.passes(value.confidence), 1.0),
            },
        }
    }
}

/// A condition whose atoms are dense signal ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// Every sub-expression holds.
    All(Vec<Expr>),
    /// At least one sub-expression holds.
    Any(Vec<Expr>),
    /// The sub-expression does not hold.
    Not(Box<Expr>),
    /// This atom holds.
    Atom(Atom),
}

impl Expr {
    /// Evaluates the expression with `holds` telling whether each atom holds.
    pub fn eval(&self, holds: &impl Fn(Atom) -> bool) -> bool {
        match self {
            Expr::All(items) => items.iter().all(|e| e.eval(holds)),
            Expr::Any(items) => items.iter().any(|e| e.eval(holds)),
            Expr::Not(inner) => !inner.eval(holds),
            Expr::Atom(atom) => holds(*atom),
        }
    }

    /// Evaluates the expression with how sure it is of the outcome, given each
    /// atom's outcome and certainty (see [`Atom::read`]). The certainty of an outcome
    /// is that of the weakest evidence it needs:
    ///
    /// - `AND` that holds: the least sure of its parts (all were needed); that fails:
    ///   the surest of its failing parts (one suffices);
    /// - `OR` that holds: the surest of its holding parts; that fails: the least sure
    ///   of its parts;
    /// - `NOT`: the same certainty as its part, the outcome flipped.
    ///
    /// An empty `AND` holds and an empty `OR` fails, both with certainty 1.
    pub fn confidence(&self, read: &impl Fn(Atom) -> (bool, f64)) -> (bool, f64) {
        match self {
            Expr::All(items) => fold_certainty(items, read, true),
            Expr::Any(items) => fold_certainty(items, read, false),
            Expr::Not(inner) => {
                let (holds, sure) = inner.confidence(read);
                (!holds, sure)
            }
            Expr::Atom(atom) => read(*atom),
        }
    }

    /// Adds the atoms the expression reads to `out`.
    pub(crate) fn atoms(&self, out: &mut BTreeSet<Atom>) {
        match self {
            Expr::All(items) | Expr::Any(items) => items.iter().for_each(|e| e.atoms(out)),
            Expr::Not(inner) => inner.atoms(out),
            Expr::Atom(atom) => {
                out.insert(*atom);
            }
        }
    }
}

/// `AND` (`all` = true) or `OR` over parts with certainties: the deciding parts are
/// those whose outcome equals the combined one when it is the "short-circuit" value
/// (a failing part of an AND, a holding part of an OR): then the surest of them;
/// otherwise every part was needed: the least sure of all.
fn fold_certainty(items: &[Expr], read: &impl Fn(Atom) -> (bool, f64), all: bool) -> (bool, f64) {
    let mut needed = 1.0f64;
    let mut short: Option<f64> = None;
    for item in items {
        let (holds, sure) = item.confidence(read);
        if holds != all {
            short = Some(short.map_or(sure, |s| s.max(sure)));
        } else {
            needed = needed.min(sure);
        }
    }
    match short {
        Some(sure) => (!all, sure),
        None => (all, needed),
    }
}

/// A route ready to evaluate.
#[derive(Debug, Clone)]
pub struct CompiledRoute {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// Its priority.
    pub priority: i32,
    /// Its tier (`None`: after every tiered route).
    pub tier: Option<u32>,
    /// Its condition (`None` for the default route).
    pub expr: Option<Expr>,
    /// The condition as written, for traces.
    pub condition: String,
    /// Candidate models, as indexes into [`Config::models`], in order of preference.
    pub candidates: Vec<usize>,
    /// Per candidate (same order): what changes in the request when it is chosen.
    pub options: Vec<CandidateOptions>,
    /// How one candidate is chosen.
    pub algorithm: AlgorithmConfig,
    /// Whether its requests may be compressed to fit a smaller pool.
    pub compress: bool,
    /// Its own plugins, as indexes into [`Config::plugins`], in order (the global
    /// ones, [`Policy::global_plugins`], run before them).
    pub plugins: Vec<usize>,
}

impl CompiledRoute {
    /// The options of a candidate model (by index into [`Config::models`]).
    pub fn options_for(&self, model: usize) -> Option<&CandidateOptions> {
        let at = self.candidates.iter().position(|&m| m == model)?;
        self.options.get(at)
    }
}

/// A governance rule ready to enforce.
#[derive(Debug, Clone)]
pub struct CompiledConstraint {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// The requests it covers (`None`: every request).
    pub expr: Option<Expr>,
    /// The routes it covers, as indexes into [`Policy::routes`] (`None`: every route
    /// and client-named models).
    pub routes: Option<Vec<usize>>,
    /// The models allowed, as indexes into [`Config::models`] (`None`: any).
    pub models: Option<Vec<usize>>,
    /// The pools allowed, as indexes into [`Config::pools`] (`None`: any).
    pub pools: Option<Vec<usize>>,
    /// The models with at least one allowed pool (`None`: any).
    pooled: Option<Vec<usize>>,
    /// The cost ceiling per request, in dollars.
    pub max_cost: Option<f64>,
}

/// Why a constraint turns a candidate model away.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Refusal {
    /// The model carries none of the allowed tags.
    Untagged,
    /// None of the model's pools carries an allowed tag.
    NoAllowedPool,
    /// The model's estimated cost for the request is over the ceiling (infinite
    /// when it has no price).
    Cost(f64),
}

impl CompiledConstraint {
    /// Why it turns `model` away for a request of `prompt` and `output` tokens, if
    /// it does; the gateway and the checker both ask this.
    pub fn refusal(
        &self,
        config: &Config,
        model: usize,
        (prompt, output): (u32, u32),
    ) -> Option<Refusal> {
        if self.models.as_ref().is_some_and(|ok| !ok.contains(&model)) {
            return Some(Refusal::Untagged);
        }
        if self.pooled.as_ref().is_some_and(|ok| !ok.contains(&model)) {
            return Some(Refusal::NoAllowedPool);
        }
        let ceiling = self.max_cost?;
        let cost = config
            .models
            .get(model)
            .and_then(|m| m.price)
            .map_or(f64::INFINITY, |price| price.cost(prompt, output));
        (cost > ceiling).then_some(Refusal::Cost(cost))
    }

    /// A refusal in words: "`big` lacks an allowed tag".
    pub fn explain(
        &self,
        config: &Config,
        model: usize,
        refusal: Refusal,
        (prompt, output): (u32, u32),
    ) -> String {
        let name = config
            .models
            .get(model)
            .map_or("?", |m| m.name.value.as_str());
        match refusal {
            Refusal::Untagged => format!("`{name}` lacks an allowed tag"),
            Refusal::NoAllowedPool => format!("`{name}` has no pool with an allowed tag"),
            Refusal::Cost(cost) => format!(
                "`{name}` costs ${cost:.4} for {prompt} prompt and {output} answer tokens, over ${}",
                self.max_cost.unwrap_or(0.0)
            ),
        }
    }

    /// Whether it covers a request decided to `route` (`None`: a client-named model)
    /// with these signals; `labels` are the policy's.
    pub fn covers(&self, route: Option<usize>, signals: &Signals, labels: &[String]) -> bool {
        let in_scope = match (&self.routes, route) {
            (None, _) => true,
            (Some(routes), Some(r)) => routes.contains(&r),
            (Some(_), None) => false,
        };
        in_scope
            && self
                .expr
                .as_ref()
                .is_none_or(|e| e.eval(&|atom| atom.holds(signals, labels)))
    }
}

/// A checked configuration with its routes compiled, ready to decide.
#[derive(Debug)]
pub struct Policy {
    /// The configuration it was compiled from.
    pub config: Config,
    /// Its signals.
    pub signals: SignalEngine,
    /// Routes in evaluation order (priority descending, then name); the default last.
    routes: Vec<CompiledRoute>,
    has_default: bool,
    atoms: Vec<Atom>,
    direct_needed: Vec<SignalId>,
    /// The labels conditions test, indexed by [`Atom::Label`].
    labels: Vec<String>,
    needed: Vec<SignalId>,
    models: HashMap<String, usize>,
    /// Governance rules.
    pub constraints: Vec<CompiledConstraint>,
    /// Plugins that run on every request, as indexes into [`Config::plugins`].
    pub global_plugins: Vec<usize>,
    /// Warnings found while compiling, the checker's among them.
    pub warnings: Vec<Diagnostic>,
    /// What the checker proved about the routes (overlaps, shadowed and dead routes,
    /// gaps), with witnesses.
    pub analysis: Analysis,
}

impl Policy {
    /// Checks `config` across sections and compiles it. All errors are reported at once.
    pub fn compile(config: Config) -> Result<Policy, ConfigError> {
        let mut found = Vec::new();
        let models = check_models_and_pools(&config, &mut found);
        let signals = match SignalEngine::build(&config.signals) {
            Ok(engine) => engine,
            Err(e) => {
                found.push(Diagnostic::error(
                    &Location::UNKNOWN,
                    format!("signals.{}[{}]", e.family, e.index),
                    format!("`{}`: {}", e.name, e.reason),
                ));
                SignalEngine::default()
            }
        };

        let mut conditions = Conditions {
            signals: &signals,
            labels: Vec::new(),
        };
        let mut chains = crate::plugins::check_plugins(&config, &mut found);
        let mut routes = Vec::new();
        let mut route_names: HashMap<&str, ()> = HashMap::new();
        for (i, route) in config.routes.iter().enumerate() {
            let path = format!("routes[{i}]");
            if route_names.insert(&route.name.value, ()).is_some() {
                found.push(Diagnostic::error(
                    &route.name.referenced,
                    format!("{path}.name"),
                    format!("route `{}` is defined twice", route.name.value),
                ));
            }
            let expr = conditions.compile(&route.when, &format!("{path}.when"), &mut found);
            let (candidates, options) = resolve_models(
                &route.models,
                &models,
                &format!("{path}.models"),
                &mut found,
            );
            let algorithm = with_candidate_weights(
                &route.algorithm,
                &route.models,
                (&route.name.referenced, &format!("{path}.models")),
                &mut found,
            );
            check_algorithm(
                &algorithm,
                &route.models,
                &config.models,
                (&route.name.referenced, &format!("{path}.algorithm")),
                &mut found,
            );
            routes.push(CompiledRoute {
                name: route.name.value.clone(),
                description: route.description.clone(),
                priority: route.priority,
                tier: route.tier,
                expr: Some(expr),
                condition: route.when.to_string(),
                candidates,
                options,
                algorithm,
                compress: route.compress,
                plugins: chains
                    .routes
                    .get_mut(i)
                    .map(std::mem::take)
                    .unwrap_or_default(),
            });
        }
        routes.sort_by(|a, b| {
            a.tier
                .unwrap_or(u32::MAX)
                .cmp(&b.tier.unwrap_or(u32::MAX))
                .then_with(|| b.priority.cmp(&a.priority))
                .then_with(|| a.name.cmp(&b.name))
        });
        let has_default = config.default_route.is_some();
        if let Some(default) = &config.default_route {
            if route_names.contains_key(default.name.as_str()) {
                found.push(Diagnostic::error(
                    &Location::UNKNOWN,
                    "default_route.name",
                    format!("`{}` is also the name of a route; rename one", default.name),
                ));
            }
            let (candidates, options) =
                resolve_models(&default.models, &models, "default_route.models", &mut found);
            let algorithm = with_candidate_weights(
                &default.algorithm,
                &default.models,
                (&Location::UNKNOWN, "default_route.models"),
                &mut found,
            );
            check_algorithm(
                &algorithm,
                &default.models,
                &config.models,
                (&Location::UNKNOWN, "default_route.algorithm"),
                &mut found,
            );
            routes.push(CompiledRoute {
                name: default.name.clone(),
                description: Some("taken when no other route matches".to_owned()),
                priority: i32::MIN,
                tier: None,
                expr: None,
                condition: "otherwise".to_owned(),
                candidates,
                options,
                algorithm,
                compress: default.compress,
                plugins: std::mem::take(&mut chains.default_route),
            });
        }

        let constraints = compile_constraints(&config, &routes, &mut conditions, &mut found);
        let labels = conditions.labels;
        let mut atoms = BTreeSet::new();
        for expr in routes
            .iter()
            .filter_map(|r| r.expr.as_ref())
            .chain(constraints.iter().filter_map(|c| c.expr.as_ref()))
        {
            expr.atoms(&mut atoms);
        }
        let needed: BTreeSet<SignalId> = atoms.iter().map(|a| a.signal()).collect();
        let mut direct = BTreeSet::new();
        for c in constraints.iter().filter(|c| c.routes.is_none()) {
            c.expr.iter().for_each(|e| e.atoms(&mut direct));
        }
        let direct_needed: BTreeSet<SignalId> = direct.iter().map(|a| a.signal()).collect();
        let mut warnings = Vec::new();
        for family in SignalFamily::ALL {
            for name in signals.names(family) {
                let used = signals
                    .lookup(family, name)
                    .is_some_and(|id| needed.contains(&id));
                if !used {
                    warnings.push(Diagnostic::warning(
                        &Location::UNKNOWN,
                        format!("signals.{}", family.name()),
                        format!("signal `{name}` is defined but no route uses it"),
                    ));
                }
            }
        }
        if routes.is_empty() {
            found.push(
                Diagnostic::error(
                    &Location::UNKNOWN,
                    "routes",
                    "no route and no default_route",
                )
                .with_help("add `default_route: {models: [...]}` so `auto` requests have a home"),
            );
        }

        check_tests(&config, &routes, &mut found);

        found.retain(|d| d.severity == Severity::Error);
        if !found.is_empty() {
            found.extend(warnings);
            if let Some(map) = &config.source {
                found.iter_mut().for_each(|d| crate::dsl::relocate(map, d));
            }
            return Err(ConfigError { diagnostics: found });
        }
        let mut policy = Policy {
            config,
            signals,
            routes,
            has_default,
            atoms: atoms.into_iter().collect(),
            direct_needed: direct_needed.into_iter().collect(),
            labels,
            needed: needed.into_iter().collect(),
            constraints,
            global_plugins: chains.global,
            models,
            warnings,
            analysis: Analysis::default(),
        };
        policy.analysis = policy.analyze();
        let checked: Vec<Diagnostic> = policy
            .analysis
            .findings
            .iter()
            .filter(|f| f.kind.is_warning())
            .map(|f| policy.diagnostic(f))
            .collect();
        // The checker's come relocated from `diagnostic`; the rest are moved here.
        if let Some(map) = &policy.config.source {
            policy
                .warnings
                .iter_mut()
                .for_each(|d| crate::dsl::relocate(map, d));
        }
        policy.warnings.extend(checked);
        Ok(policy)
    }

    /// A checker finding as a diagnostic at its first route's name.
    pub fn diagnostic(&self, finding: &Finding) -> Diagnostic {
        let route = finding.routes.first().and_then(|name| {
            self.config
                .routes
                .iter()
                .position(|r| &r.name.value == name)
                .map(|i| (i, &self.config.routes[i]))
        });
        let constraint = finding.constraint.as_ref().and_then(|name| {
            self.config
                .constraints
                .iter()
                .position(|c| &c.name.value == name)
                .map(|i| (i, &self.config.constraints[i]))
        });
        let (location, path) = match (constraint, route) {
            (Some((i, c)), _) => (c.name.referenced, format!("constraints[{i}]")),
            (None, Some((i, r))) => (r.name.referenced, format!("routes[{i}].when")),
            (None, None) => (Location::UNKNOWN, "routes".to_owned()),
        };
        let mut diagnostic = if finding.kind.is_warning() {
            Diagnostic::warning(&location, path, finding.message.clone())
        } else {
            Diagnostic::note(&location, path, finding.message.clone())
        };
        if let Some(witness) = &finding.witness {
            diagnostic = diagnostic.with_help(format!("for example: {witness}"));
        }
        if let Some(map) = &self.config.source {
            crate::dsl::relocate(map, &mut diagnostic);
        }
        diagnostic
    }

    /// Routes in evaluation order; the default route, if any, is last.
    pub fn routes(&self) -> &[CompiledRoute] {
        &self.routes
    }

    /// The route at an index of [`Policy::routes`].
    pub fn route(&self, index: usize) -> Option<&CompiledRoute> {
        self.routes.get(index)
    }

    /// Whether a default route exists.
    pub fn has_default(&self) -> bool {
        self.has_default
    }

    /// The signals requests that name a model need: those the conditions of the
    /// constraints covering them read (often none).
    pub fn direct_signals(&self) -> &[SignalId] {
        &self.direct_needed
    }

    /// The labels conditions test, indexed by [`Atom::Label`].
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The atoms routes read, sorted.
    pub fn atoms(&self) -> &[Atom] {
        &self.atoms
    }

    /// An atom as written in a condition: `keyword("code")`, `complexity("hard") >= 0.7`.
    pub fn atom_name(&self, atom: Atom) -> String {
        let signal = atom.signal();
        let key = self
            .signals
            .key(signal)
            .map_or_else(|| format!("signal {}", signal.0), ToString::to_string);
        match atom {
            Atom::Holds(_) => key,
            Atom::Test(_, test) => format!("{key}{test}"),
            Atom::Label(_, label) => {
                let text = self.labels.get(label as usize).map_or("?", String::as_str);
                match key.strip_suffix(')') {
                    Some(open) => format!("{open}, \"{text}\")"),
                    None => key,
                }
            }
        }
    }

    /// The signals some route references: the only ones worth computing.
    pub fn needed_signals(&self) -> &[SignalId] {
        &self.needed
    }

    /// The index of a configured model by name.
    pub fn model_index(&self, name: &str) -> Option<usize> {
        self.models.get(name).copied()
    }

    /// Whether `model` is a routing alias such as `auto`.
    pub fn is_route_alias(&self, model: &str) -> bool {
        self.config.server.route_aliases.iter().any(|a| a == model)
    }
}

fn check_models_and_pools(config: &Config, found: &mut Vec<Diagnostic>) -> HashMap<String, usize> {
    let mut models = HashMap::new();
    if config.models.is_empty() {
        found.push(Diagnostic::error(
            &Location::UNKNOWN,
            "models",
            "no model is configured",
        ));
    }
    for (i, m) in config.models.iter().enumerate() {
        if m.quality.is_some_and(|q| !(0.0..=1.0).contains(&q)) {
            found.push(Diagnostic::error(
                &m.name.referenced,
                format!("models[{i}].quality"),
                "quality is a score in [0, 1]",
            ));
        }
        if m.price.is_some_and(|p| {
            !(p.input >= 0.0 && p.output >= 0.0 && p.input.is_finite() && p.output.is_finite())
        }) {
            found.push(Diagnostic::error(
                &m.name.referenced,
                format!("models[{i}].price"),
                "prices are dollars per million tokens, 0 or more",
            ));
        }
        if models.insert(m.name.value.clone(), i).is_some() {
            found.push(Diagnostic::error(
                &m.name.referenced,
                format!("models[{i}].name"),
                format!("model `{}` is defined twice", m.name.value),
            ));
        }
        if config.server.route_aliases.contains(&m.name.value) {
            found.push(Diagnostic::error(
                &m.name.referenced,
                format!("models[{i}].name"),
                format!(
                    "`{}` is a routing alias (server.route_aliases)",
                    m.name.value
                ),
            ));
        }
    }
    let model_names: Vec<&str> = config
        .models
        .iter()
        .map(|m| m.name.value.as_str())
        .collect();
    let mut served = vec![false; config.models.len()];
    let mut pool_names = HashMap::new();
    let mut endpoint_names = HashMap::new();
    for (i, pool) in config.pools.iter().enumerate() {
        let path = format!("pools[{i}]");
        if pool_names.insert(pool.name.value.as_str(), ()).is_some() {
            found.push(Diagnostic::error(
                &pool.name.referenced,
                format!("{path}.name"),
                format!("pool `{}` is defined twice", pool.name.value),
            ));
        }
        match models.get(&pool.model.value) {
            Some(&m) => served[m] = true,
            None => found.push(Diagnostic::unknown(
                "model",
                &pool.model,
                format!("{path}.model"),
                model_names.iter().copied(),
            )),
        }
        if pool.context_window.0 == 0 {
            found.push(Diagnostic::error(
                &pool.name.referenced,
                format!("{path}.context_window"),
                "the context window must be above 0",
            ));
        }
        if pool.endpoints.is_empty() {
            found.push(Diagnostic::error(
                &pool.name.referenced,
                format!("{path}.endpoints"),
                format!("pool `{}` has no endpoint", pool.name.value),
            ));
        }
        if !(pool.compression_factor >= 1.0 && pool.compression_factor <= 16.0) {
            found.push(Diagnostic::error(
                &pool.name.referenced,
                format!("{path}.compression_factor"),
                format!(
                    "{} must be between 1 (none) and 16",
                    pool.compression_factor
                ),
            ));
        }
        if !(pool.affinity_load_factor >= 1.0 && pool.affinity_load_factor.is_finite()) {
            found.push(Diagnostic::error(
                &pool.name.referenced,
                format!("{path}.affinity_load_factor"),
                format!(
                    "{} must be a number of at least 1",
                    pool.affinity_load_factor
                ),
            ));
        }
        for (j, endpoint) in pool.endpoints.iter().enumerate() {
            let url = &endpoint.url;
            if endpoint.weight == 0 {
                found.push(Diagnostic::error(
                    &url.referenced,
                    format!("{path}.endpoints[{j}].weight"),
                    "must be at least 1 (remove the endpoint to send it nothing)",
                ));
            }
            if !(url.value.starts_with("http://") || url.value.starts_with("https://")) {
                found.push(
                    Diagnostic::error(
                        &url.referenced,
                        format!("{path}.endpoints[{j}].url"),
                        format!("`{}` is not an http:// or https:// URL", url.value),
                    )
                    .with_help("write the base URL, e.g. http://10.0.0.5:8000"),
                );
            }
            let name = endpoint
                .name
                .clone()
                .unwrap_or_else(|| format!("{}-{j}", pool.name.value));
            if endpoint_names.insert(name.clone(), ()).is_some() {
                found.push(Diagnostic::error(
                    &url.referenced,
                    format!("{path}.endpoints[{j}].name"),
                    format!("endpoint name `{name}` is used twice"),
                ));
            }
        }
    }
    for (i, m) in config.models.iter().enumerate() {
        if !served[i] {
            found.push(
                Diagnostic::error(
                    &m.name.referenced,
                    format!("models[{i}]"),
                    format!("model `{}` is served by no pool", m.name.value),
                )
                .with_help(format!("add a pool with `model: {}`", m.name.value)),
            );
        }
    }
    if let Err(e) = config.server.listen.value.parse::<SocketAddr>() {
        found.push(
            Diagnostic::error(
                &config.server.listen.referenced,
                "server.listen",
                format!("`{}` is not an address: {e}", config.server.listen.value),
            )
            .with_help("write host:port, e.g. 127.0.0.1:8080 or 0.0.0.0:8080"),
        );
    }
    if config.upstream.max_attempts == 0 {
        found.push(Diagnostic::error(
            &Location::UNKNOWN,
            "upstream.max_attempts",
            "must be at least 1 (1 means no retry)",
        ));
    }
    if config.health.eject_after_failures == 0 {
        found.push(Diagnostic::error(
            &Location::UNKNOWN,
            "health.eject_after_failures",
            "must be at least 1",
        ));
    }
    if config.health.base_ejection_ms > config.health.max_ejection_ms {
        found.push(Diagnostic::error(
            &Location::UNKNOWN,
            "health.base_ejection_ms",
            "is above health.max_ejection_ms",
        ));
    }
    if !config.health.check_path.starts_with('/') {
        found.push(Diagnostic::error(
            &Location::UNKNOWN,
            "health.check_path",
            format!("`{}` must start with /", config.health.check_path),
        ));
    }
    let percentile = config.server.output_percentile;
    if !(percentile > 0.0 && percentile <= 1.0) {
        found.push(Diagnostic::error(
            &Location::UNKNOWN,
            "server.output_percentile",
            format!("{percentile} is not in (0, 1]: write e.g. 0.75 for P75"),
        ));
    }
    if config.retention.min_ttl_ms > config.retention.max_ttl_ms {
        found.push(Diagnostic::error(
            &Location::UNKNOWN,
            "retention.min_ttl_ms",
            "is above retention.max_ttl_ms",
        ));
    }
    if config.server.worker_threads == Some(0) {
        found.push(Diagnostic::error(
            &Location::UNKNOWN,
            "server.worker_threads",
            "must be at least 1 (or left out for one per core)",
        ));
    }
    if config.server.max_body_bytes == 0 {
        found.push(Diagnostic::error(
            &Location::UNKNOWN,
            "server.max_body_bytes",
            "must be above 0",
        ));
    }
    models
}

/// Checks and compiles the constraints: their conditions, the routes they name, and
/// that what they allow exists (a tag no model carries would refuse every request
/// they cover).
fn compile_constraints(
    config: &Config,
    routes: &[CompiledRoute],
    conditions: &mut Conditions<'_>,
    found: &mut Vec<Diagnostic>,
) -> Vec<CompiledConstraint> {
    let mut out = Vec::new();
    let mut names = HashMap::new();
    let route_names: Vec<&str> = routes.iter().map(|r| r.name.as_str()).collect();
    for (i, c) in config.constraints.iter().enumerate() {
        let path = format!("constraints[{i}]");
        let at = &c.name.referenced;
        if names.insert(c.name.value.as_str(), ()).is_some() {
            found.push(Diagnostic::error(
                at,
                format!("{path}.name"),
                format!("constraint `{}` is defined twice", c.name.value),
            ));
        }
        if c.models.is_none() && c.pools.is_none() && c.max_cost.is_none() {
            found.push(
                Diagnostic::error(
                    at,
                    &path,
                    format!("constraint `{}` restricts nothing", c.name.value),
                )
                .with_help("give it `models: {tags: [...]}`, `pools: {tags: [...]}` or `max_cost`"),
            );
        }
        let expr = c
            .when
            .as_ref()
            .map(|w| conditions.compile(w, &format!("{path}.when"), found));
        let scope = (!c.routes.is_empty()).then(|| {
            c.routes
                .iter()
                .enumerate()
                .filter_map(
                    |(j, name)| match route_names.iter().position(|r| *r == name.value) {
                        Some(index) => Some(index),
                        None => {
                            found.push(Diagnostic::unknown(
                                "route",
                                name,
                                format!("{path}.routes[{j}]"),
                                route_names.iter().copied(),
                            ));
                            None
                        }
                    },
                )
                .collect::<Vec<usize>>()
        });
        let tagged = |rule: &Option<crate::config::TagRule>,
                      what: &str,
                      all: Vec<(usize, &[String])>,
                      found: &mut Vec<Diagnostic>| {
            let rule = rule.as_ref()?;
            if rule.tags.is_empty() {
                found.push(Diagnostic::error(
                    at,
                    format!("{path}.{what}.tags"),
                    "list at least one tag",
                ));
            }
            let allowed: Vec<usize> = all
                .iter()
                .filter(|(_, tags)| tags.iter().any(|t| rule.tags.contains(t)))
                .map(|(i, _)| *i)
                .collect();
            if allowed.is_empty() && !rule.tags.is_empty() {
                found.push(
                    Diagnostic::error(
                        at,
                        format!("{path}.{what}"),
                        format!(
                            "constraint `{}` allows only {what} tagged {}, but none is: every request it covers would be refused",
                            c.name.value,
                            rule.tags.join(" or ")
                        ),
                    )
                    .with_help(format!("add `tags: [{}]` to the {what} that may serve them", rule.tags[0])),
                );
            }
            Some(allowed)
        };
        let allowed_models = tagged(
            &c.models,
            "models",
            config
                .models
                .iter()
                .enumerate()
                .map(|(i, m)| (i, m.tags.as_slice()))
                .collect(),
            found,
        );
        let allowed_pools = tagged(
            &c.pools,
            "pools",
            config
                .pools
                .iter()
                .enumerate()
                .map(|(i, p)| (i, p.tags.as_slice()))
                .collect(),
            found,
        );
        if c.pools.is_some() && config.pools.len() > crate::POOL_SET_CAPACITY {
            found.push(Diagnostic::error(
                at,
                format!("{path}.pools"),
                format!(
                    "pool constraints handle up to {} pools; this configuration has {}",
                    crate::POOL_SET_CAPACITY,
                    config.pools.len()
                ),
            ));
        }
        if let Some(ceiling) = c.max_cost {
            if !(ceiling.is_finite() && ceiling > 0.0) {
                found.push(Diagnostic::error(
                    at,
                    format!("{path}.max_cost"),
                    "a cost ceiling is a number of dollars above 0",
                ));
            }
            // Every model it may cover needs a price: the candidates of its routes,
            // or, covering client-named models too, every model.
            let covered: Vec<usize> = match &scope {
                Some(indexes) => {
                    let mut ms: Vec<usize> = indexes
                        .iter()
                        .filter_map(|&i| routes.get(i))
                        .flat_map(|r| r.candidates.iter().copied())
                        .collect();
                    ms.sort_unstable();
                    ms.dedup();
                    ms
                }
                None => (0..config.models.len()).collect(),
            };
            for m in covered {
                let model = &config.models[m];
                if model.price.is_none() {
                    found.push(Diagnostic::error(
                        at,
                        format!("{path}.max_cost"),
                        format!(
                            "constraint `{}` caps the cost of requests, but model `{}`, which may answer them, has no `price`",
                            c.name.value, model.name.value
                        ),
                    ));
                }
            }
        }
        let pooled = allowed_pools.as_ref().map(|pools| {
            let mut models: Vec<usize> = pools
                .iter()
                .filter_map(|&p| {
                    let served = &config.pools[p].model.value;
                    config.models.iter().position(|m| &m.name.value == served)
                })
                .collect();
            models.sort_unstable();
            models.dedup();
            models
        });
        out.push(CompiledConstraint {
            name: c.name.value.clone(),
            description: c.description.clone(),
            expr,
            routes: scope,
            models: allowed_models,
            pools: allowed_pools,
            pooled,
            max_cost: c.max_cost,
        });
    }
    out
}

/// Every test case names a route that exists.
fn check_tests(config: &Config, routes: &[CompiledRoute], found: &mut Vec<Diagnostic>) {
    let names: Vec<&str> = routes.iter().map(|r| r.name.as_str()).collect();
    let mut seen = HashMap::new();
    for (i, test) in config.tests.iter().enumerate() {
        if seen.insert(test.name.value.as_str(), ()).is_some() {
            found.push(Diagnostic::error(
                &test.name.referenced,
                format!("tests[{i}].name"),
                format!("test `{}` is defined twice", test.name.value),
            ));
        }
        if test.cases.is_empty() {
            found.push(Diagnostic::error(
                &test.name.referenced,
                format!("tests[{i}].cases"),
                format!("test `{}` has no case", test.name.value),
            ));
        }
        for (j, case) in test.cases.iter().enumerate() {
            if !names.contains(&case.route.value.as_str()) {
                found.push(Diagnostic::unknown(
                    "route",
                    &case.route,
                    format!("tests[{i}].cases[{j}].route"),
                    names.iter().copied(),
                ));
            }
        }
    }
}

/// Checks a selection algorithm against the route's candidates: weights name
/// candidates, and what an algorithm compares (price, quality) is configured.
fn check_algorithm(
    algorithm: &AlgorithmConfig,
    candidates: &[CandidateConfig],
    models: &[crate::config::ModelConfig],
    (at, path): (&Location, &str),
    found: &mut Vec<Diagnostic>,
) {
    let model = |name: &str| models.iter().find(|m| m.name.value == name);
    let mut error = |message: String| found.push(Diagnostic::error(at, path, message));
    let (needs_price, needs_quality) = match algorithm {
        AlgorithmConfig::Static => (false, false),
        AlgorithmConfig::Weighted(w) => {
            for (name, weight) in &w.weights {
                if !candidates.iter().any(|c| &c.name.value == name) {
                    let names: Vec<&str> =
                        candidates.iter().map(|c| c.name.value.as_str()).collect();
                    let hint = switchyard_wire::typos::suggest(name, names.iter().copied())
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                    error(format!(
                        "weights: `{name}` is not a candidate of this route{hint}"
                    ));
                }
                if !(weight.is_finite() && *weight >= 0.0) {
                    error(format!(
                        "weights: `{name}` has weight {weight}; use 0 or more"
                    ));
                }
            }
            (false, false)
        }
        AlgorithmConfig::Cost(c) => {
            if !(0.0..=1.0).contains(&c.min_quality) {
                error(format!("min_quality {} is not in [0, 1]", c.min_quality));
            }
            (true, c.min_quality > 0.0)
        }
        AlgorithmConfig::Latency(l) => {
            if !(l.percentile > 0.0 && l.percentile <= 100.0) {
                error(format!("percentile {} is not in (0, 100]", l.percentile));
            }
            (false, false)
        }
        AlgorithmConfig::MultiFactor(m) => {
            let w = &m.weights;
            if [w.quality, w.latency, w.cost, w.load]
                .iter()
                .any(|x| !(x.is_finite() && *x >= 0.0))
            {
                error("weights are 0 or more".to_owned());
            }
            (w.cost > 0.0 || m.max_cost.is_some(), w.quality > 0.0)
        }
    };
    for c in candidates.iter().map(|c| &c.name) {
        let Some(m) = model(&c.value) else { continue };
        if needs_price && m.price.is_none() {
            error(format!(
                "`{}` selection compares prices, but model `{}` has no `price`",
                algorithm.name(),
                c.value
            ));
        }
        if needs_quality && m.quality.is_none() {
            error(format!(
                "`{}` selection compares quality, but model `{}` has no `quality`",
                algorithm.name(),
                c.value
            ));
        }
    }
}

/// The algorithm with the candidates' own weights merged in (for `weighted`); a
/// weight given twice is an error, a weight under another algorithm one too.
fn with_candidate_weights(
    algorithm: &AlgorithmConfig,
    candidates: &[CandidateConfig],
    (at, path): (&Location, &str),
    found: &mut Vec<Diagnostic>,
) -> AlgorithmConfig {
    let mut merged = algorithm.clone();
    for c in candidates {
        let Some(weight) = c.options.weight else {
            continue;
        };
        match &mut merged {
            AlgorithmConfig::Weighted(w) => {
                if w.weights.contains_key(&c.name.value) {
                    found.push(Diagnostic::error(
                        &c.name.referenced,
                        path,
                        format!(
                            "`{}` has a weight both here and in the algorithm's `weights`; keep one",
                            c.name.value
                        ),
                    ));
                }
                w.weights.insert(c.name.value.clone(), f64::from(weight));
            }
            other => found.push(
                Diagnostic::error(
                    at,
                    path,
                    format!(
                        "`{}` has a weight, but the `{}` algorithm does not use weights",
                        c.name.value,
                        other.name()
                    ),
                )
                .with_help("use `ALGORITHM weighted` (algorithm: weighted), or drop the weight"),
            ),
        }
    }
    merged
}

fn resolve_models(
    candidates: &[CandidateConfig],
    models: &HashMap<String, usize>,
    path: &str,
    found: &mut Vec<Diagnostic>,
) -> (Vec<usize>, Vec<CandidateOptions>) {
    let names: Vec<&Spanned<String>> = candidates.iter().map(|c| &c.name).collect();
    if names.is_empty() {
        found.push(Diagnostic::error(
            &Location::UNKNOWN,
            path,
            "list at least one model",
        ));
    }
    let mut known: Vec<&str> = models.keys().map(String::as_str).collect();
    known.sort_unstable();
    names
        .iter()
        .zip(candidates)
        .enumerate()
        .filter_map(|(i, (name, c))| match models.get(&name.value) {
            Some(&index) => Some((index, c.options.clone())),
            None => {
                found.push(Diagnostic::unknown(
                    "model",
                    name,
                    format!("{path}[{i}]"),
                    known.iter().copied(),
                ));
                None
            }
        })
        .unzip()
}

/// Compiles conditions, collecting the labels they test (each text once).
struct Conditions<'a> {
    signals: &'a SignalEngine,
    labels: Vec<String>,
}

impl Conditions<'_> {
    fn compile(&mut self, condition: &Condition, path: &str, found: &mut Vec<Diagnostic>) -> Expr {
        let signals = self.signals;
        match condition {
            Condition::All(items) => Expr::All(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, c)| self.compile(c, &format!("{path}.all[{i}]"), found))
                    .collect(),
            ),
            Condition::Any(items) => Expr::Any(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, c)| self.compile(c, &format!("{path}.any[{i}]"), found))
                    .collect(),
            ),
            Condition::Not(inner) => {
                Expr::Not(Box::new(self.compile(inner, &format!("{path}.not"), found)))
            }
            Condition::Signal {
                family,
                name,
                test,
                label,
            } => match signals.lookup(*family, &name.value) {
                Some(id) => Expr::Atom(match (test, label) {
                    (Some(test), _) => Atom::Test(id, *test),
                    (None, Some(label)) => Atom::Label(id, self.label(label)),
                    (None, None) => Atom::Holds(id),
                }),
                None => {
                    let defined = signals.names(*family);
                    let help_when_none = format!(
                        "define it under `signals.{}` with `name: {}`",
                        family.name(),
                        name.value
                    );
                    let mut d = Diagnostic::error(
                        &name.referenced,
                        format!("{path}.{}", family.name()),
                        format!("unknown {} signal `{}`", family.name(), name.value),
                    );
                    d = if defined.is_empty() {
                        d.with_help(help_when_none)
                    } else {
                        d.suggesting(&name.value, defined)
                    };
                    found.push(d);
                    // Never true: an unknown atom must not make a route match.
                    Expr::Any(Vec::new())
                }
            },
        }
    }

    /// The index of a label's text, added when new.
    fn label(&mut self, text: &str) -> u32 {
        match self.labels.iter().position(|l| l == text) {
            Some(at) => at as u32,
            None => {
                self.labels.push(text.to_owned());
                (self.labels.len() - 1) as u32
            }
        }
    }
}
