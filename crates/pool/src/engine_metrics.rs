//! What an engine says about itself: vLLM's gauges scraped from its `/metrics`.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// Gauges read from one engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct EngineLoad {
    /// `vllm:num_requests_running` (summed over the engine's models).
    pub running: f64,
    /// `vllm:num_requests_waiting`.
    pub waiting: f64,
    /// `vllm:kv_cache_usage_perc` (or the older `vllm:gpu_cache_usage_perc`), a fraction.
    pub kv_usage: f64,
}

/// Parses Prometheus text for vLLM's gauges; `None` when none of them is present.
pub fn parse(text: &str) -> Option<EngineLoad> {
    let mut load = EngineLoad::default();
    let mut seen = false;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((name_and_labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = name_and_labels.split('{').next().unwrap_or("");
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        match name {
            "vllm:num_requests_running" => load.running += value,
            "vllm:num_requests_waiting" => load.waiting += value,
            "vllm:kv_cache_usage_perc" | "vllm:gpu_cache_usage_perc" => {
                load.kv_usage = load.kv_usage.max(value);
            }
            _ => continue,
        }
        seen = true;
    }
    seen.then_some(load)
}

/// The last scrape of an engine, readable lock-free.
#[derive(Debug, Default)]
pub struct EngineGauges {
    running: AtomicU64,
    waiting: AtomicU64,
    kv_usage: AtomicU64,
    valid_until_ms: AtomicU64,
}

impl EngineGauges {
    /// Stores a scrape taken at `now_ms`, trusted for `fresh_ms`.
    pub fn store(&self, load: EngineLoad, now_ms: u64, fresh_ms: u64) {
        self.running
            .store(load.running.to_bits(), Ordering::Relaxed);
        self.waiting
            .store(load.waiting.to_bits(), Ordering::Relaxed);
        self.kv_usage
            .store(load.kv_usage.to_bits(), Ordering::Relaxed);
        self.valid_until_ms
            .store(now_ms.saturating_add(fresh_ms), Ordering::Relaxed);
    }

    /// The last scrape, if it is still fresh at `now_ms`.
    pub fn get(&self, now_ms: u64) -> Option<EngineLoad> {
        (now_ms < self.valid_until_ms.load(Ordering::Relaxed)).then(|| EngineLoad {
            running: f64::from_bits(self.running.load(Ordering::Relaxed)),
            waiting: f64::from_bits(self.waiting.load(Ordering::Relaxed)),
            kv_usage: f64::from_bits(self.kv_usage.load(Ordering::Relaxed)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vllm_gauges_and_ignores_the_rest() {
        let text = "# HELP x\n# TYPE vllm:num_requests_running gauge\n\
            vllm:num_requests_running{model_name=\"a\"} 3\n\
            vllm:num_requests_running{model_name=\"b\"} 2\n\
            vllm:num_requests_waiting{model_name=\"a\"} 7\n\
            vllm:gpu_cache_usage_perc{model_name=\"a\"} 0.42\n\
            process_cpu_seconds_total 12.5\n";
        let load = parse(text).unwrap();
        assert_eq!(
            load,
            EngineLoad {
                running: 5.0,
                waiting: 7.0,
                kv_usage: 0.42
            }
        );
        assert_eq!(parse("up 1\n"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn a_stale_scrape_is_not_used() {
        let g = EngineGauges::default();
        assert_eq!(g.get(0), None);
        g.store(
            EngineLoad {
                running: 1.0,
                waiting: 2.0,
                kv_usage: 0.5,
            },
            100,
            50,
        );
        assert_eq!(g.get(120).unwrap().waiting, 2.0);
        assert_eq!(g.get(150), None);
    }
}
