//! Active health checks: a background task probes every endpoint.

use crate::endpoint::{Endpoint, HealthJudge, Pools};
use crate::engine_metrics::parse;
use std::sync::{Arc, Weak};
use std::time::Duration;
use switchyard_policy::HealthConfig;

/// Starts probing every endpoint of `pools` every `check_interval_ms` at
/// `check_path`: an answer below 500 keeps (or brings) the endpoint in rotation, as far
/// as checks go; anything else (refused, timed out, 5xx) takes it out until a check
/// passes. A passing check ends a passive ejection as `check_ends_ejection` says
/// (see [`crate::health`]).
/// With `scrape_metrics`, the same tick reads each endpoint's `/metrics` for vLLM's
/// gauges, trusted for three intervals. The task ends when the endpoints are dropped
/// (the runtime that owns them is gone). Does nothing when the interval is 0.
pub fn spawn_health_checks(pools: &Pools, config: &HealthConfig) {
    if config.check_interval_ms == 0 {
        return;
    }
    let endpoints: Vec<Weak<Endpoint>> = pools.endpoints().map(Arc::downgrade).collect();
    let interval = Duration::from_millis(config.check_interval_ms);
    let timeout = Duration::from_millis(config.check_timeout_ms);
    let path = config.check_path.clone();
    let scrape = config.scrape_metrics;
    let judge = pools.judge();
    let fresh_ms = config.check_interval_ms.saturating_mul(3);
    let Ok(client) = reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(timeout)
        .build()
    else {
        tracing::error!("cannot build the health check client; active checks are off");
        return;
    };
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let live: Vec<Arc<Endpoint>> = endpoints.iter().filter_map(Weak::upgrade).collect();
            if live.is_empty() {
                return;
            }
            let probes = live.iter().map(|e| async {
                probe(&client, e, &path, &judge).await;
                if scrape {
                    scrape_metrics(&client, e, judge.now_ms(), fresh_ms).await;
                }
            });
            futures_util::future::join_all(probes).await;
        }
    });
}

async fn probe(client: &reqwest::Client, endpoint: &Endpoint, path: &str, judge: &HealthJudge) {
    let url = format!("{}{path}", endpoint.base_url);
    let alive = client
        .get(&url)
        .send()
        .await
        .is_ok_and(|r| !r.status().is_server_error());
    let was_down = endpoint.health.snapshot(0).check_failed;
    if !alive && !was_down {
        tracing::warn!(endpoint = %endpoint.name, url = %endpoint.shown_url, path, "health check failed");
    }
    judge.checked(endpoint, alive);
}

async fn scrape_metrics(client: &reqwest::Client, endpoint: &Endpoint, now_ms: u64, fresh_ms: u64) {
    let url = format!("{}/metrics", endpoint.base_url);
    let Ok(response) = client.get(&url).send().await else {
        return;
    };
    if !response.status().is_success() {
        return;
    }
    if let Some(load) = response.text().await.ok().as_deref().and_then(parse) {
        endpoint.engine.store(load, now_ms, fresh_ms);
    }
}
