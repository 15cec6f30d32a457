//! Governance rules compiled: what each covers, what it allows, and why it refuses a
//! candidate.

use super::*;

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

/// Checks and compiles the constraints: their conditions, the routes they name, and
/// that what they allow exists (a tag no model carries would refuse every request
/// they cover).
pub(super) fn compile_constraints(
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
