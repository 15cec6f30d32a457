//! Plugin definitions in the configuration (`plugins:`), and the checks that tie
//! routes to them. What a plugin does, and the options of each type, belong to the
//! `router` crate's plugin registry; this module only owns the schema every plugin
//! shares (name, type, failure rule, scope) and the references to plugins.

use crate::config::{Config, RouteConfig};
use crate::diagnostics::Diagnostic;
use serde::Deserialize;
use serde_json::{Map, Value};
use serde_saphyr::{Location, Spanned};
use std::collections::HashMap;

/// What happens when a plugin fails (returns an error or panics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginOnError {
    /// The request fails with HTTP 500 naming the plugin (the default).
    #[default]
    Fail,
    /// The plugin is skipped for this request and the chain goes on.
    Skip,
}

/// One plugin definition: `{name, type, on_error, global, ...options}`.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    /// Its name, referenced by routes (`plugins: [name]`).
    pub name: String,
    /// Its type: one of the registry's plugin types (`system_prompt`, `headers`, …).
    pub kind: String,
    /// On failure: `fail` (default) or `skip`.
    pub on_error: PluginOnError,
    /// Runs for every request, client-named models included, before the route's
    /// plugins (default false: only on the routes that list it).
    pub global: bool,
    /// The type's own options: every other key of the definition.
    pub options: Map<String, Value>,
    /// Where the definition is written.
    pub at: Location,
}

impl<'de> Deserialize<'de> for PluginConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let spanned: Spanned<Value> = Spanned::deserialize(d)?;
        let Value::Object(mut map) = spanned.value else {
            return Err(D::Error::custom(
                "a plugin is a map with `name`, `type` and the type's options",
            ));
        };
        let mut text = |key: &str| -> Result<Option<String>, D::Error> {
            match map.remove(key) {
                None => Ok(None),
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s)),
                Some(other) => Err(D::Error::custom(format!(
                    "plugin `{key}` must be a non-empty string, not {other}"
                ))),
            }
        };
        let name = text("name")?.ok_or_else(|| D::Error::custom("a plugin needs `name`"))?;
        let kind = text("type")?.ok_or_else(|| {
            D::Error::custom(format!(
                "plugin `{name}` needs `type` (system_prompt, headers, params, reasoning, local_answer)"
            ))
        })?;
        let on_error = match text("on_error")?.as_deref() {
            None | Some("fail") => PluginOnError::Fail,
            Some("skip") => PluginOnError::Skip,
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "plugin `{name}`: on_error `{other}` is not `fail` or `skip`"
                )));
            }
        };
        let global = match map.remove("global") {
            None => false,
            Some(Value::Bool(b)) => b,
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "plugin `{name}`: global must be true or false, not {other}"
                )));
            }
        };
        Ok(PluginConfig {
            name,
            kind,
            on_error,
            global,
            options: map,
            at: spanned.referenced,
        })
    }
}

/// The plugin chains the configuration sets up, as indexes into [`Config::plugins`].
#[derive(Debug, Clone, Default)]
pub struct PluginChains {
    /// Global plugins, in definition order.
    pub global: Vec<usize>,
    /// Per route of [`Config::routes`] (same order): its own plugins, in its order.
    pub routes: Vec<Vec<usize>>,
    /// The default route's.
    pub default_route: Vec<usize>,
    /// Per recipe of [`Config::recipes`] (same order): its default route's.
    pub recipe_defaults: Vec<Vec<usize>>,
}

/// Checks plugin definitions (unique names) and every route's references to them
/// (defined, not global, not listed twice), and resolves the chains.
pub fn check_plugins(config: &Config, found: &mut Vec<Diagnostic>) -> PluginChains {
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (i, p) in config.plugins.iter().enumerate() {
        if by_name.insert(&p.name, i).is_some() {
            found.push(Diagnostic::error(
                &p.at,
                format!("plugins[{i}].name"),
                format!("plugin `{}` is defined twice", p.name),
            ));
        }
    }
    let mut known: Vec<&str> = by_name.keys().copied().collect();
    known.sort_unstable();
    let mut resolve = |names: &[Spanned<String>], path: &str| -> Vec<usize> {
        let mut chain = Vec::new();
        for (j, name) in names.iter().enumerate() {
            let path = format!("{path}.plugins[{j}]");
            let Some(&index) = by_name.get(name.value.as_str()) else {
                found.push(Diagnostic::unknown(
                    "plugin",
                    name,
                    path,
                    known.iter().copied(),
                ));
                continue;
            };
            if config.plugins[index].global {
                found.push(
                    Diagnostic::error(
                        &name.referenced,
                        path,
                        format!(
                            "plugin `{}` is global: it already runs on every route",
                            name.value
                        ),
                    )
                    .with_help(
                        "remove it from the route, or drop `global: true` from its definition",
                    ),
                );
            } else if chain.contains(&index) {
                found.push(Diagnostic::error(
                    &name.referenced,
                    path,
                    format!("plugin `{}` is listed twice", name.value),
                ));
            } else {
                chain.push(index);
            }
        }
        chain
    };
    let routes = config
        .routes
        .iter()
        .enumerate()
        .map(|(i, r): (usize, &RouteConfig)| resolve(&r.plugins, &format!("routes[{i}]")))
        .collect();
    let default_route = config
        .default_route
        .as_ref()
        .map(|d| resolve(&d.plugins, "default_route"))
        .unwrap_or_default();
    let recipe_defaults = config
        .recipes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.default_route
                .as_ref()
                .map(|d| resolve(&d.plugins, &format!("recipes[{i}].default_route")))
                .unwrap_or_default()
        })
        .collect();
    let global = config
        .plugins
        .iter()
        .enumerate()
        .filter(|(_, p)| p.global)
        .map(|(i, _)| i)
        .collect();
    PluginChains {
        global,
        routes,
        default_route,
        recipe_defaults,
    }
}
