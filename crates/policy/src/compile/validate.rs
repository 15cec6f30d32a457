//! Checks across sections: models and pools, candidate lists and algorithms, tests.

use super::*;

pub(super) fn check_models_and_pools(
    config: &Config,
    found: &mut Vec<Diagnostic>,
) -> HashMap<String, usize> {
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
            if endpoint.prompt_cache_key && endpoint.provider == crate::config::Provider::Anthropic
            {
                found.push(
                    Diagnostic::error(
                        &url.referenced,
                        format!("{path}.endpoints[{j}].prompt_cache_key"),
                        "is OpenAI's field: an anthropic endpoint gets the client's cache \
                         breakpoints themselves",
                    )
                    .with_help("remove prompt_cache_key, or use it on an openai or azure endpoint"),
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
    if let Some(admin) = &config.server.admin_listen {
        match admin.value.parse::<SocketAddr>() {
            Err(e) => found.push(
                Diagnostic::error(
                    &admin.referenced,
                    "server.admin_listen",
                    format!("`{}` is not an address: {e}", admin.value),
                )
                .with_help("write host:port, e.g. 127.0.0.1:9090"),
            ),
            Ok(addr)
                if addr.port() != 0
                    && config.server.listen.value.parse::<SocketAddr>().ok() == Some(addr) =>
            {
                found.push(
                    Diagnostic::error(
                        &admin.referenced,
                        "server.admin_listen",
                        format!("`{}` is `server.listen` too", admin.value),
                    )
                    .with_help("give the operator's endpoints their own port, e.g. 127.0.0.1:9090"),
                );
            }
            Ok(_) => {}
        }
    }
    validate_state(&config.state, found);
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
    if !(0.0..=1.0).contains(&config.health.panic_threshold) {
        found.push(Diagnostic::error(
            &Location::UNKNOWN,
            "health.panic_threshold",
            format!(
                "{} is not a share in [0, 1] (0 turns panic off)",
                config.health.panic_threshold
            ),
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
    let implicit = &config.outcomes.implicit;
    for (name, score) in [
        ("ok", implicit.ok),
        ("truncated", implicit.truncated),
        ("failed", implicit.failed),
        ("complained", implicit.complained),
        ("slow", implicit.slow),
    ] {
        if !(0.0..=1.0).contains(&score) {
            found.push(Diagnostic::error(
                &Location::UNKNOWN,
                format!("outcomes.implicit.{name}"),
                format!("{score} is not a score in [0, 1]"),
            ));
        }
    }
    if let Some(ms) = implicit.slow_after_ms
        && !(ms.is_finite() && ms > 0.0)
    {
        found.push(Diagnostic::error(
            &Location::UNKNOWN,
            "outcomes.implicit.slow_after_ms",
            format!("{ms} is not a number of milliseconds above 0"),
        ));
    }
    if !(config.outcomes.elo_k.is_finite() && config.outcomes.elo_k > 0.0) {
        found.push(Diagnostic::error(
            &Location::UNKNOWN,
            "outcomes.elo_k",
            format!("{} is not above 0", config.outcomes.elo_k),
        ));
    }
    let reputation = &config.outcomes.reputation;
    if reputation.window == 0
        || reputation.min_history < 2
        || reputation.history < reputation.min_history
    {
        found.push(Diagnostic::error(
            &Location::UNKNOWN,
            "outcomes.reputation",
            format!(
                "window {} must be at least 1, min_history {} at least 2, history {} at least min_history",
                reputation.window, reputation.min_history, reputation.history
            ),
        ));
    }
    if !(0.0..=1.0).contains(&reputation.low_score) {
        found.push(Diagnostic::error(
            &Location::UNKNOWN,
            "outcomes.reputation.low_score",
            format!("{} is not a score in [0, 1]", reputation.low_score),
        ));
    }
    if config.outcomes.capacity > 10_000_000 {
        found.push(
            Diagnostic::error(
                &Location::UNKNOWN,
                "outcomes.capacity",
                format!(
                    "{} answers is too many to remember",
                    config.outcomes.capacity
                ),
            )
            .with_help("at most 10,000,000 (each takes about 200 bytes)"),
        );
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

/// Every test case names a route that exists.
pub(super) fn check_tests(config: &Config, routes: &[CompiledRoute], found: &mut Vec<Diagnostic>) {
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
pub(super) fn check_algorithm(
    algorithm: &AlgorithmConfig,
    candidates: &[CandidateConfig],
    models: &[crate::config::ModelConfig],
    (at, path): (&Location, &str),
    found: &mut Vec<Diagnostic>,
) {
    let model = |name: &str| models.iter().find(|m| m.name.value == name);
    let mut error = |message: String| found.push(Diagnostic::error(at, path, message));
    // `what`: `name` is not a candidate (with the nearest candidate's name), if so.
    let not_candidate = |what: &str, name: &str| -> Option<String> {
        if candidates.iter().any(|c| c.name.value == name) {
            return None;
        }
        let names: Vec<&str> = candidates.iter().map(|c| c.name.value.as_str()).collect();
        let hint = switchyard_wire::typos::suggest(name, names.iter().copied())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        Some(format!(
            "{what}: `{name}` is not a candidate of this route{hint}"
        ))
    };
    let (needs_price, needs_quality) = match algorithm {
        AlgorithmConfig::Static => (false, false),
        AlgorithmConfig::Weighted(w) => {
            for (name, weight) in &w.weights {
                if let Some(message) = not_candidate("weights", name) {
                    error(message);
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
        AlgorithmConfig::Thompson(t) => {
            if !(t.cost_weight.is_finite() && t.cost_weight >= 0.0) {
                error(format!("cost_weight {} is not 0 or more", t.cost_weight));
            }
            if !(t.discount > 0.0 && t.discount <= 1.0) {
                error(format!(
                    "discount {} is not in (0, 1] (1 never forgets)",
                    t.discount
                ));
            }
            if !(t.prior_strength.is_finite() && t.prior_strength > 0.0) {
                error(format!(
                    "prior_strength {} is not above 0",
                    t.prior_strength
                ));
            }
            (t.cost_weight > 0.0, false)
        }
        AlgorithmConfig::Elo(e) => {
            if !(e.cost_weight.is_finite() && e.cost_weight >= 0.0) {
                error(format!("cost_weight {} is not 0 or more", e.cost_weight));
            }
            (e.cost_weight > 0.0, false)
        }
        AlgorithmConfig::Cascade(c) => {
            if !(c.min_confidence > 0.0 && c.min_confidence <= 1.0) {
                error(format!(
                    "min_confidence {} is not in (0, 1]",
                    c.min_confidence
                ));
            }
            if c.ttft_budget_ms
                .is_some_and(|b| !(b.is_finite() && b > 0.0))
            {
                error(format!(
                    "ttft_budget_ms {} is not above 0",
                    c.ttft_budget_ms.unwrap_or_default()
                ));
            }
            if !(c.saturated_at.is_finite() && c.saturated_at > 0.0) {
                error(format!("saturated_at {} is not above 0", c.saturated_at));
            }
            if candidates.len() < 2 {
                error("a cascade needs at least two candidates to escalate between".to_owned());
            }
            if let crate::config::ConfidenceCheck::Verifier(name) = &c.check
                && model(name).is_none()
            {
                let hint = switchyard_wire::typos::suggest(
                    name,
                    models.iter().map(|m| m.name.value.as_str()),
                )
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
                error(format!(
                    "check: verifier `{name}` is not a configured model{hint}"
                ));
            }
            (false, false)
        }
        AlgorithmConfig::Learned(l) => {
            for (role, name) in [("strong", &l.strong), ("weak", &l.weak)] {
                if let Some(message) = not_candidate(role, name) {
                    error(message);
                }
            }
            if l.strong == l.weak {
                error(format!("strong and weak are both `{}`", l.strong));
            }
            match (l.share, l.margin) {
                (Some(_), Some(_)) => error("give `share` or `margin`, not both".to_owned()),
                (Some(share), None) if !(0.0..=1.0).contains(&share) => {
                    error(format!("share {share} is not in [0, 1]"));
                }
                (None, Some(margin)) if !margin.is_finite() => {
                    error(format!("margin {margin} is not a number"));
                }
                _ => {}
            }
            (false, false)
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

/// The algorithm with the candidates' own weights merged in (for `weighted`) and its
/// router file loaded (for `learned`); a weight given twice is an error, a weight
/// under another algorithm one too, and so is a router file that cannot be read.
pub(super) fn with_candidate_weights(
    algorithm: &AlgorithmConfig,
    candidates: &[CandidateConfig],
    (at, path): (&Location, &str),
    found: &mut Vec<Diagnostic>,
) -> AlgorithmConfig {
    let mut merged = algorithm.clone();
    if let AlgorithmConfig::Learned(l) = &mut merged {
        match switchyard_workload::outcome_router::read_router(l.router.as_deref()) {
            Ok(file) => l.file = Some(std::sync::Arc::new(file)),
            Err(e) => found.push(
                Diagnostic::error(at, path.replace(".models", ".algorithm.router"), e)
                    .with_help("`switchyard train router` writes router files"),
            ),
        }
    }
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

pub(super) fn resolve_models(
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

/// Checks the recipes: unique names, at least one alias each, and no alias that is
/// also a model, a `server.route_aliases` entry or another recipe's. Returns each
/// recipe's index by name.
pub(super) fn check_recipes<'c>(
    config: &'c Config,
    models: &HashMap<String, usize>,
    found: &mut Vec<Diagnostic>,
) -> HashMap<&'c str, usize> {
    let mut by_name = HashMap::new();
    let mut aliases: HashMap<&str, String> = config
        .server
        .route_aliases
        .iter()
        .map(|a| (a.as_str(), "a server.route_aliases entry".to_owned()))
        .collect();
    for (i, recipe) in config.recipes.iter().enumerate() {
        let path = format!("recipes[{i}]");
        if by_name.insert(recipe.name.value.as_str(), i).is_some() {
            found.push(Diagnostic::error(
                &recipe.name.referenced,
                format!("{path}.name"),
                format!("recipe `{}` is defined twice", recipe.name.value),
            ));
        }
        if recipe.aliases.is_empty() {
            found.push(
                Diagnostic::error(
                    &recipe.name.referenced,
                    format!("{path}.aliases"),
                    format!(
                        "recipe `{}` has no alias: no request can pick it",
                        recipe.name.value
                    ),
                )
                .with_help("add `aliases: [a model name clients send]`"),
            );
        }
        for (j, alias) in recipe.aliases.iter().enumerate() {
            let taken = if models.contains_key(&alias.value) {
                Some("a configured model".to_owned())
            } else {
                aliases.get(alias.value.as_str()).cloned()
            };
            if let Some(owner) = taken {
                found.push(Diagnostic::error(
                    &alias.referenced,
                    format!("{path}.aliases[{j}]"),
                    format!("alias `{}` is already {owner}", alias.value),
                ));
            } else {
                aliases.insert(
                    alias.value.as_str(),
                    format!("an alias of recipe `{}`", recipe.name.value),
                );
            }
        }
    }
    by_name
}

fn validate_state(state: &crate::config::StateConfig, found: &mut Vec<Diagnostic>) {
    use crate::config::StateBackend;
    let mut error = |field: &str, message: String, help: &str| {
        found.push(
            Diagnostic::error(&Location::UNKNOWN, format!("state.{field}"), message)
                .with_help(help.to_owned()),
        );
    };
    match (state.backend, &state.url) {
        (StateBackend::InProcess, Some(_)) => error(
            "url",
            "is set but the backend is in_process".to_owned(),
            "set `backend: valkey` (or redis) to use the server, or remove the url",
        ),
        (StateBackend::Redis | StateBackend::Valkey, None) => error(
            "url",
            format!("is required with backend {}", state.backend.name()),
            "e.g. url: redis://127.0.0.1:6379/0",
        ),
        (StateBackend::Redis | StateBackend::Valkey, Some(url))
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) =>
        {
            error(
                "url",
                "is not a redis:// or rediss:// URL".to_owned(),
                "write redis://[user:password@]host:port[/db]",
            )
        }
        _ => {}
    }
    if !(1..=60_000).contains(&state.timeout_ms) {
        error(
            "timeout_ms",
            format!("{} is not in [1, 60000]", state.timeout_ms),
            "a deadline per operation; 100 suits a server on the same network",
        );
    }
    if state.pause_ms > 600_000 {
        error(
            "pause_ms",
            format!("{} is above 600000", state.pause_ms),
            "a pause of about a second retries soon without waiting on a dead server",
        );
    }
}
