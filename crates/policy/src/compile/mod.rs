//! Checking a configuration across sections and compiling its routes: the policy
//! and its routes here; conditions in `expr`, constraints in `constraints`, the
//! checks across sections in `validate`.

use crate::checker::{Analysis, Finding};
use crate::condition::{Condition, Measure, Test};
use crate::config::{AlgorithmConfig, CandidateConfig, CandidateOptions, Config};
use crate::diagnostics::{ConfigError, Diagnostic, Severity};
use serde_saphyr::{Location, Spanned};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use switchyard_workload::{SignalEngine, SignalFamily, SignalId, Signals};

mod constraints;
mod expr;
mod validate;

pub use constraints::{CompiledConstraint, Refusal};
pub use expr::{Atom, Expr};

use constraints::compile_constraints;
use expr::Conditions;
use validate::{
    check_algorithm, check_models_and_pools, check_recipes, check_tests, resolve_models,
    with_candidate_weights,
};

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
    /// Whether what a provider's API cannot carry is left out rather than refused.
    pub lossy_translation: bool,
    /// Whether a whole answer broken off after its headers is tried on another endpoint.
    pub retry_broken: bool,
    /// Session stickiness, when configured.
    pub sticky: Option<crate::config::StickyConfig>,
    /// Shadow evaluation, when configured.
    pub shadow: Option<crate::config::ShadowConfig>,
    /// Its own plugins, as indexes into [`Config::plugins`], in order (the global
    /// ones, [`Policy::global_plugins`], run before them).
    pub plugins: Vec<usize>,
    /// The named policy it belongs to: an index into [`Policy::scopes`] (0: the one
    /// `server.route_aliases` pick).
    pub scope: usize,
}

impl CompiledRoute {
    /// The options of a candidate model (by index into [`Config::models`]).
    pub fn options_for(&self, model: usize) -> Option<&CandidateOptions> {
        let at = self.candidates.iter().position(|&m| m == model)?;
        self.options.get(at)
    }
}

/// A named policy of a configuration: its routes (a contiguous range of
/// [`Policy::routes`], its default route last), how it decides, and the signals its
/// routes read. Scope 0 is the one `server.route_aliases` pick; each recipe follows.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The recipe's name (`None` for scope 0).
    pub name: Option<String>,
    /// The model names that pick it.
    pub aliases: Vec<String>,
    /// Its routes in [`Policy::routes`].
    pub range: std::ops::Range<usize>,
    /// Whether its last route is a default route.
    pub has_default: bool,
    /// How it decides.
    pub strategy: crate::config::DecisionStrategy,
    /// The signals its routes and the constraints read.
    pub needed: Vec<SignalId>,
}

/// A checked configuration with its routes compiled, ready to decide.
#[derive(Debug)]
pub struct Policy {
    /// The configuration it was compiled from.
    pub config: Config,
    /// Its signals.
    pub signals: SignalEngine,
    /// Routes by scope, each scope's in evaluation order (tier, priority descending,
    /// then name) with its default last.
    routes: Vec<CompiledRoute>,
    scopes: Vec<Scope>,
    atoms: Vec<Atom>,
    direct_needed: Vec<SignalId>,
    /// The labels conditions test, indexed by [`Atom::Label`].
    labels: Vec<String>,
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
        let (signals, unbuilt) = match SignalEngine::build(&config.signals) {
            Ok(engine) => (engine, false),
            Err(e) => {
                found.push(Diagnostic::error(
                    &Location::UNKNOWN,
                    format!("signals.{}[{}]", e.family, e.index),
                    format!("`{}`: {}", e.name, e.reason),
                ));
                (SignalEngine::default(), true)
            }
        };

        let mut conditions = Conditions {
            signals: &signals,
            labels: Vec::new(),
            unbuilt,
        };
        let mut chains = crate::plugins::check_plugins(&config, &mut found);
        let recipes = check_recipes(&config, &models, &mut found);
        let mut routes = Vec::new();
        let mut route_names: HashMap<&str, ()> = HashMap::new();
        for (i, route) in config.routes.iter().enumerate() {
            let path = format!("routes[{i}]");
            let scope = match &route.recipe {
                None => 0,
                Some(name) => match recipes.get(name.value.as_str()) {
                    Some(&at) => at + 1,
                    None => {
                        found.push(Diagnostic::unknown(
                            "recipe",
                            name,
                            format!("{path}.recipe"),
                            config.recipes.iter().map(|r| r.name.value.as_str()),
                        ));
                        0
                    }
                },
            };
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
            check_sticky(
                route.sticky.as_ref(),
                (&route.name.referenced, &format!("{path}.sticky")),
                &mut found,
            );
            check_shadow(
                route.shadow.as_ref(),
                &config,
                (&route.name.referenced, &format!("{path}.shadow")),
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
                lossy_translation: route.lossy_translation,
                retry_broken: route.retry_broken,
                sticky: route.sticky,
                shadow: route.shadow.clone(),
                plugins: chains
                    .routes
                    .get_mut(i)
                    .map(std::mem::take)
                    .unwrap_or_default(),
                scope,
            });
        }
        // Each scope: its routes in order, then its default route (with where it is
        // configured, for errors). Ranges and signals are filled in below.
        let scope =
            |name: Option<&str>, aliases: Vec<String>, strategy, default: Option<&_>| Scope {
                name: name.map(str::to_owned),
                aliases,
                range: 0..0,
                has_default: default.is_some(),
                strategy,
                needed: Vec::new(),
            };
        let mut scopes: Vec<Scope> = Vec::with_capacity(config.recipes.len() + 1);
        let mut defaults: Vec<(Option<&crate::config::DefaultRouteConfig>, String)> = Vec::new();
        scopes.push(scope(
            None,
            config.server.route_aliases.clone(),
            config.decision.strategy,
            config.default_route.as_ref(),
        ));
        defaults.push((config.default_route.as_ref(), "default_route".to_owned()));
        for (i, r) in config.recipes.iter().enumerate() {
            scopes.push(scope(
                Some(r.name.value.as_str()),
                r.aliases.iter().map(|a| a.value.clone()).collect(),
                r.strategy.unwrap_or(config.decision.strategy),
                r.default_route.as_ref(),
            ));
            defaults.push((
                r.default_route.as_ref(),
                format!("recipes[{i}].default_route"),
            ));
        }
        routes.sort_by(|a, b| {
            let strategy = scopes[a.scope].strategy;
            a.scope
                .cmp(&b.scope)
                .then_with(|| strategy.tier_rank(a.tier).cmp(&strategy.tier_rank(b.tier)))
                .then_with(|| b.priority.cmp(&a.priority))
                .then_with(|| a.name.cmp(&b.name))
        });
        let mut ordered: Vec<CompiledRoute> = Vec::with_capacity(routes.len() + scopes.len());
        let mut pending = routes.into_iter().peekable();
        let mut default_names: BTreeSet<String> = BTreeSet::new();
        for (index, (scope, (default, path))) in scopes.iter_mut().zip(&defaults).enumerate() {
            let start = ordered.len();
            while let Some(route) = pending.next_if(|r| r.scope == index) {
                ordered.push(route);
            }
            if let Some(default) = default {
                if route_names.contains_key(default.name.as_str())
                    || !default_names.insert(default.name.clone())
                {
                    found.push(Diagnostic::error(
                        &Location::UNKNOWN,
                        format!("{path}.name"),
                        format!(
                            "`{}` is also the name of another route; rename one",
                            default.name
                        ),
                    ));
                }
                let (candidates, options) = resolve_models(
                    &default.models,
                    &models,
                    &format!("{path}.models"),
                    &mut found,
                );
                let algorithm = with_candidate_weights(
                    &default.algorithm,
                    &default.models,
                    (&Location::UNKNOWN, &format!("{path}.models")),
                    &mut found,
                );
                check_algorithm(
                    &algorithm,
                    &default.models,
                    &config.models,
                    (&Location::UNKNOWN, &format!("{path}.algorithm")),
                    &mut found,
                );
                check_sticky(
                    default.sticky.as_ref(),
                    (&Location::UNKNOWN, &format!("{path}.sticky")),
                    &mut found,
                );
                check_shadow(
                    default.shadow.as_ref(),
                    &config,
                    (&Location::UNKNOWN, &format!("{path}.shadow")),
                    &mut found,
                );
                let plugins = if index == 0 {
                    std::mem::take(&mut chains.default_route)
                } else {
                    chains
                        .recipe_defaults
                        .get_mut(index - 1)
                        .map(std::mem::take)
                        .unwrap_or_default()
                };
                ordered.push(CompiledRoute {
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
                    lossy_translation: default.lossy_translation,
                    retry_broken: default.retry_broken,
                    sticky: default.sticky,
                    shadow: default.shadow.clone(),
                    plugins,
                    scope: index,
                });
            }
            scope.range = start..ordered.len();
        }
        let routes = ordered;

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
        let mut constraint_atoms = BTreeSet::new();
        for c in &constraints {
            c.expr.iter().for_each(|e| e.atoms(&mut constraint_atoms));
        }
        for scope in &mut scopes {
            let mut own = constraint_atoms.clone();
            for route in &routes[scope.range.clone()] {
                route.expr.iter().for_each(|e| e.atoms(&mut own));
            }
            let ids: BTreeSet<SignalId> = own.iter().map(|a| a.signal()).collect();
            scope.needed = ids.into_iter().collect();
        }
        // Signals read only by projections are used too.
        let read: BTreeSet<SignalId> = signals
            .computed(&needed.iter().copied().collect::<Vec<_>>())
            .into_iter()
            .collect();
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
                    .is_some_and(|id| read.contains(&id));
                if !used {
                    warnings.push(Diagnostic::warning(
                        &Location::UNKNOWN,
                        format!("signals.{}", family.name()),
                        format!("signal `{name}` is defined but no route uses it"),
                    ));
                }
            }
        }
        if routes.iter().all(|r| r.scope != 0) && config.recipes.is_empty() {
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
            scopes,
            atoms: atoms.into_iter().collect(),
            direct_needed: direct_needed.into_iter().collect(),
            labels,
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

    /// Whether the main scope (scope 0) has a default route.
    pub fn has_default(&self) -> bool {
        self.scopes.first().is_some_and(|s| s.has_default)
    }

    /// The named policies: scope 0 (`server.route_aliases`), then each recipe.
    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }

    /// The scope a requested model name picks, if it is a routing alias.
    pub fn scope_of(&self, model: &str) -> Option<usize> {
        self.scopes
            .iter()
            .position(|s| s.aliases.iter().any(|a| a == model))
    }

    /// The signals a scope's routes (and the constraints) read.
    pub fn needed_in(&self, scope: usize) -> &[SignalId] {
        self.scopes.get(scope).map_or(&[], |s| s.needed.as_slice())
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

    /// The signals the main scope's routes (and the constraints) read: the only ones
    /// worth computing for its requests ([`Policy::needed_in`] for a recipe's).
    pub fn needed_signals(&self) -> &[SignalId] {
        self.needed_in(0)
    }

    /// The index of a configured model by name.
    pub fn model_index(&self, name: &str) -> Option<usize> {
        self.models.get(name).copied()
    }

    /// Whether `model` is a routing alias such as `auto`, or a recipe's.
    pub fn is_route_alias(&self, model: &str) -> bool {
        self.scope_of(model).is_some()
    }
}

/// A route's `sticky` rates are numbers of 0 or more.
fn check_sticky(
    sticky: Option<&crate::config::StickyConfig>,
    (at, path): (&Location, &str),
    found: &mut Vec<Diagnostic>,
) {
    let Some(sticky) = sticky else { return };
    for (name, rate) in [
        ("quality_ms", sticky.quality_ms),
        ("dollar_ms", sticky.dollar_ms),
    ] {
        if !(rate.is_finite() && rate >= 0.0) {
            found.push(Diagnostic::error(
                at,
                path,
                format!("{name} {rate} is not a number of 0 or more"),
            ));
        }
    }
}

/// A route's `shadow`: its model and judge are configured models with pools; its
/// share, concurrency and budget are in range; a budget needs a price.
fn check_shadow(
    shadow: Option<&crate::config::ShadowConfig>,
    config: &crate::config::Config,
    (at, path): (&Location, &str),
    found: &mut Vec<Diagnostic>,
) {
    let Some(shadow) = shadow else { return };
    let mut error = |message: String| found.push(Diagnostic::error(at, path, message));
    let model = |name: &str| config.models.iter().find(|m| m.name.value == name);
    let served = |name: &str| config.pools.iter().any(|p| p.model.value == name);
    let names = || config.models.iter().map(|m| m.name.value.as_str());
    let mut known = |what: &str, name: &str| {
        if model(name).is_none() {
            let hint = switchyard_wire::typos::suggest(name, names())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            error(format!("{what}: `{name}` is not a configured model{hint}"));
        } else if !served(name) {
            error(format!("{what}: model `{name}` has no pool"));
        }
    };
    known("model", &shadow.model);
    if let crate::config::ShadowJudge::Model(judge) = &shadow.judge {
        known("judge", judge);
    }
    if !(0.0..=1.0).contains(&shadow.share) {
        error(format!("share {} is not in [0, 1]", shadow.share));
    }
    if shadow.max_concurrent == 0 {
        error("max_concurrent is 0: nothing would ever be shadowed".to_owned());
    }
    if let Some(budget) = shadow.budget_per_hour {
        if !(budget.is_finite() && budget >= 0.0) {
            error(format!("budget_per_hour {budget} is not 0 or more"));
        }
        if model(&shadow.model).is_some_and(|m| m.price.is_none()) {
            error(format!(
                "budget_per_hour needs a price, and model `{}` has none",
                shadow.model
            ));
        }
    }
}
