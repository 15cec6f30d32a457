//! Whole simulations checked against queueing theory, the iteration model and the
//! run's own bookkeeping.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use switchyard_fleet::erlang::{erlang_c, mmc_mean_wait};
use switchyard_fleet::sim::spec::{ArrivalSpec, LengthModel, Pool, RoutingSpec, SloSpec, Source};
use switchyard_fleet::sim::{Report, Scenario, parse_scenario, simulate};
use switchyard_fleet::{GpuKind, GpuProfile};

fn pool(name: &str, profile: GpuProfile, instances: u32, window: u32) -> Pool {
    Pool {
        max_queue: u32::MAX,
        ..Pool::new(name, profile, GpuKind::H100.power(), instances, window)
    }
}

fn poisson(rate: f64, lengths: LengthModel) -> Source {
    Source {
        name: "s".into(),
        arrival: ArrivalSpec::Poisson { rate },
        lengths: vec![(1.0, lengths)],
        model: None,
    }
}

fn scenario(pools: Vec<Pool>, sources: Vec<Source>, requests: u64) -> Scenario {
    Scenario {
        seed: 11,
        requests: Some(requests),
        duration_ms: None,
        warmup_requests: 0,
        slo: SloSpec::default(),
        routing: RoutingSpec::default(),
        pools,
        sources,
    }
}

/// M/M/c in the iteration model: `c` instances of one slot, one-token prompts and
/// geometric outputs of mean 1,000 at 1 ms per iteration (exponential service of mean
/// 1 s, cv² = 0.999), offered `a` erlangs, for `requests` arrivals.
fn mmc(c: u32, a: f64, requests: u64) -> Scenario {
    let profile = GpuProfile {
        name: "mmc",
        w_ms: 1.0,
        h_ms: 0.0,
        prefill_chunk: 512,
        max_slots: 1,
        kv_blocks: 1 << 20,
    };
    let mut p = pool("mmc", profile, c, 1 << 20);
    p.max_seqs = Some(1);
    let lengths = LengthModel::Fixed {
        prompt: 1,
        output: None,
        output_mean: Some(1000.0),
    };
    scenario(vec![p], vec![poisson(a, lengths)], requests)
}

/// Every arrival is accounted for, and L = λW.
fn check_books(r: &Report) {
    let f = &r.fleet;
    let lost = f.rejected_too_long
        + f.rejected_queue_full
        + f.rejected_no_pool
        + f.dropped_queue_timeout
        + f.dropped_preempted;
    assert_eq!(f.completed + lost, r.arrivals, "no request lost silently");
    assert!(
        r.little.relative_error < 1e-9,
        "Little's law: {:?}",
        r.little
    );
}

#[test]
fn mmc_waits_match_erlang_c() {
    let c = 4;
    for (rho, requests) in [(0.5, 1_000_000), (0.8, 2_000_000), (0.9, 2_000_000)] {
        let s = mmc(c, rho * f64::from(c), requests);
        let r = simulate(s).unwrap();
        check_books(&r);
        let a = rho * f64::from(c);
        let want_wait_ms = mmc_mean_wait(c, a, 1.0) * 1000.0;
        let got_wait_ms = r.fleet.queue_wait_ms.mean;
        let wait_error = (got_wait_ms - want_wait_ms).abs() / want_wait_ms;
        // P(wait > 0) from the share of waits at the histogram's zero.
        let want_p = erlang_c(c, a);
        let got_p = r.fleet.waited_share;
        let p_error = (got_p - want_p).abs() / want_p;
        println!(
            "ρ {rho}: wait {got_wait_ms:.1} vs {want_wait_ms:.1} ms ({wait_error:.4}), P(wait) {got_p:.4} vs {want_p:.4} ({p_error:.4})"
        );
        assert!(
            wait_error < 0.03,
            "ρ {rho}: mean wait {got_wait_ms} vs Erlang-C {want_wait_ms}"
        );
        assert!(
            p_error < 0.03,
            "ρ {rho}: P(wait) {got_p} vs Erlang-C {want_p}"
        );
        assert!(
            (r.fleet.utilization - rho).abs() < 0.01,
            "{}",
            r.fleet.utilization
        );
    }
}

#[test]
fn one_instance_saturates_at_the_iteration_model_capacity() {
    // Decode-only requests far beyond capacity: 128 slots of an A100 at 8K, each
    // sequence 1 prompt token and 512 output tokens, so the mean context is about 257
    // and an iteration takes W + H·(257/8192)·128. Throughput is 128 tokens per
    // iteration, not 128 times the one-sequence rate.
    let profile = GpuKind::A100.profile();
    let p = pool("one", profile, 1, 8192);
    let lengths = LengthModel::Fixed {
        prompt: 1,
        output: Some(512),
        output_mean: None,
    };
    let r = simulate(scenario(vec![p], vec![poisson(200.0, lengths)], 20_000)).unwrap();
    check_books(&r);
    let iteration_s = profile.iteration_ms(128, 257.0) / 1000.0;
    let capacity = 128.0 / iteration_s;
    let got = r.fleet.output_tokens_per_s;
    assert!(
        (got - capacity).abs() / capacity < 0.03,
        "{got} tokens/s vs {capacity}"
    );
    assert!(r.fleet.utilization > 0.97, "{}", r.fleet.utilization);
}

fn two_pools(yaml_routing: &str) -> String {
    format!(
        "seed: 5
requests: 20000
slo: {{ttft_ms: 2000}}
routing: {yaml_routing}
pools:
  - name: short
    gpu: h100
    instances: 4
    context_window: 8K
  - name: long
    gpu: h100
    instances: 2
    context_window: 64K
workload:
  - name: agents
    arrival: {{poisson: {{rate: 20}}}}
    lengths: [{{cdf: agent_heavy, output_fraction: 0.1}}]
"
    )
}

fn run_yaml(text: &str) -> Report {
    let s = parse_scenario(text, "test.yaml", Path::new(".")).unwrap();
    simulate(s).unwrap()
}

#[test]
fn length_routing_splits_at_the_boundary_and_compression_moves_the_borderline() {
    let plain = run_yaml(&two_pools("{policy: length}"));
    check_books(&plain);
    let (short, long) = (&plain.pools[0], &plain.pools[1]);
    // About 74% of agent_heavy is at most 8K.
    let share = short.arrivals as f64 / plain.arrivals as f64;
    assert!((share - 0.74).abs() < 0.02, "{share}");
    assert_eq!(short.compressed + long.compressed, 0);
    let compressed = run_yaml(&two_pools("{policy: compress, gamma: 1.5}"));
    check_books(&compressed);
    // Up to 12K (85%) now fits the short pool, compressed.
    let share = compressed.pools[0].arrivals as f64 / compressed.arrivals as f64;
    assert!((share - 0.852).abs() < 0.02, "{share}");
    assert!(compressed.pools[0].compressed > 0);
    assert!(compressed.pools[1].arrivals < long.arrivals);
}

#[test]
fn spillover_moves_load_when_the_short_pool_queues() {
    let text = two_pools("{policy: spillover, spill_at: 1}")
        .replace("rate: 20", "rate: 1500")
        .replace("cdf: agent_heavy", "cdf: lmsys");
    let r = run_yaml(&text);
    check_books(&r);
    assert!(
        r.pools[1].arrivals > 0,
        "some short requests spill to the long pool"
    );
    let plain = run_yaml(&text.replace("{policy: spillover, spill_at: 1}", "{policy: length}"));
    assert!(r.pools[1].arrivals > plain.pools[1].arrivals);
}

#[test]
fn the_same_seed_gives_the_same_report_byte_for_byte() {
    let text = two_pools("{policy: least_loaded}");
    let a = run_yaml(&text).to_json();
    let b = run_yaml(&text).to_json();
    assert_eq!(a, b);
    let c = run_yaml(&text.replace("seed: 5", "seed: 6")).to_json();
    assert_ne!(a, c);
}

#[test]
fn bounded_queues_reject_and_deadlines_drop_and_both_are_counted() {
    let text = two_pools("{policy: length}")
        .replace("rate: 20", "rate: 400")
        .replace(
            "context_window: 8K\n",
            "context_window: 8K\n    max_queue: 50\n",
        )
        .replace(
            "context_window: 64K\n",
            "context_window: 64K\n    max_queue_wait_s: 2\n",
        );
    let r = run_yaml(&text);
    check_books(&r);
    assert!(r.pools[0].rejected_queue_full > 0, "{:?}", r.pools[0]);
    assert!(r.pools[1].dropped_queue_timeout > 0, "{:?}", r.pools[1]);
    assert!(r.fleet.slo_attainment.is_some_and(|a| a < 1.0));
}

#[test]
fn overcommitted_pools_preempt_and_still_account_for_everything() {
    let text = two_pools("{policy: length}")
        .replace("rate: 20", "rate: 10")
        .replace("output_fraction: 0.1", "output_fraction: 0.6")
        .replace(
            "context_window: 64K\n",
            "context_window: 64K\n    max_seqs: 128\n    max_preemptions: 2\n",
        );
    let r = run_yaml(&text);
    check_books(&r);
    assert!(r.pools[1].preemptions > 0, "{:?}", r.pools[1]);
}

#[test]
fn replay_follows_the_pools_a_decision_log_names() {
    let dir = std::env::temp_dir().join(format!("sy-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut log = String::new();
    for i in 0..300u64 {
        let pool = if i % 3 == 0 { "long" } else { "short" };
        log.push_str(&format!(
            "{{\"ts_ms\":{},\"pool\":\"{pool}\",\"model\":\"m\",\"prompt_tokens\":{},\"completion_tokens\":50}}\n",
            1_700_000_000_000u64 + i * 100,
            100 + i
        ));
    }
    log.push_str(
        "{\"ts_ms\":1700000040000,\"pool\":\"gone\",\"prompt_tokens\":5,\"completion_tokens\":5}\n",
    );
    std::fs::write(dir.join("decisions.jsonl"), log).unwrap();
    let text = "seed: 1
routing: {policy: replay}
pools:
  - {name: short, gpu: a100, instances: 2, context_window: 8K}
  - {name: long, gpu: h100, instances: 1, context_window: 32K}
workload:
  - name: log
    arrival: {trace: {path: decisions.jsonl}}
";
    let s = parse_scenario(text, "replay.yaml", &dir).unwrap();
    let r = simulate(s).unwrap();
    check_books(&r);
    assert_eq!(r.arrivals, 301);
    assert_eq!(r.pools[0].completed, 200);
    assert_eq!(r.pools[1].completed, 100);
    assert_eq!(r.fleet.rejected_no_pool, 1);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_files_name_the_line_and_the_fix() {
    let err = parse_scenario(
        "requests: 5\npools: []\nworkload: []\nbogus: 1\n",
        "f.yaml",
        Path::new("."),
    )
    .unwrap_err();
    assert_eq!(err.line, Some(4), "{err}");
    assert!(err.to_string().contains("bogus"), "{err}");
    let err =
        parse_scenario(&two_pools("{policy: compress}"), "f.yaml", Path::new(".")).unwrap_err();
    assert!(err.to_string().contains("gamma"), "{err}");
    let err = parse_scenario(
        &two_pools("{policy: length}").replace("gpu: h100", "gpu: tpu"),
        "f.yaml",
        Path::new("."),
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown GPU `tpu`"), "{err}");
    let err = parse_scenario(
        &two_pools("{policy: length}").replace("requests: 20000\n", ""),
        "f.yaml",
        Path::new("."),
    )
    .unwrap_err();
    assert!(err.to_string().contains("no end"), "{err}");
}

#[test]
fn by_model_routing_keeps_each_model_on_its_pools() {
    let text = "seed: 4
requests: 6000
routing: {policy: by_model}
pools:
  - {name: small-a, model: small, gpu: a10g, instances: 2, context_window: 8K}
  - {name: small-b, model: small, gpu: a100, instances: 2, context_window: 8K}
  - {name: big, model: big, gpu: h100, instances: 2, context_window: 16K}
workload:
  - {name: chat, model: small, arrival: {poisson: {rate: 30}}, lengths: [{cdf: lmsys}]}
  - {name: code, model: big, arrival: {mmpp: {rates: [5, 50], dwell_s: [20, 2]}}, lengths: [{cdf: azure}]}
  - {name: stray, model: huge, arrival: {poisson: {rate: 1}}, lengths: [{prompt_tokens: 10, output_tokens: 5}]}
";
    let r = run_yaml(text);
    check_books(&r);
    let (a, b, big) = (&r.pools[0], &r.pools[1], &r.pools[2]);
    assert!(
        a.completed > 0 && b.completed > 0,
        "least loaded spreads the small model"
    );
    assert!(big.completed > 0);
    assert_eq!(
        r.fleet.rejected_no_pool,
        r.fleet.arrivals - r.fleet.completed - r.fleet.rejected_too_long
    );
    assert!(
        r.fleet.rejected_no_pool > 0,
        "the model no pool serves is rejected"
    );
}

#[test]
fn slots_of_several_instances_pool_into_one_mmc_queue() {
    // 2 instances × 64 slots with a constant iteration time behave as M/M/128.
    let profile = GpuProfile {
        name: "flat",
        w_ms: 1.0,
        h_ms: 0.0,
        prefill_chunk: 512,
        max_slots: 64,
        kv_blocks: 1 << 24,
    };
    let (c, rho) = (128u32, 0.9);
    let mut p = pool("flat", profile, 2, 8192);
    p.max_seqs = Some(64);
    let lengths = LengthModel::Fixed {
        prompt: 1,
        output: None,
        output_mean: Some(1000.0),
    };
    let r = simulate(scenario(
        vec![p],
        vec![poisson(rho * f64::from(c), lengths)],
        400_000,
    ))
    .unwrap();
    check_books(&r);
    let a = rho * f64::from(c);
    // A request that finds a free slot still joins at the end of the iteration in
    // progress: half an iteration (0.5 ms) on average, for the 1 − C that find one.
    let waits = erlang_c(c, a);
    let want_ms = mmc_mean_wait(c, a, 1.0) * 1000.0 + 0.5 * (1.0 - waits);
    let got_ms = r.fleet.queue_wait_ms.mean;
    assert!(
        (got_ms - want_ms).abs() / want_ms < 0.03,
        "mean wait {got_ms} ms vs {want_ms}"
    );
    assert!(
        (r.fleet.utilization - rho).abs() < 0.01,
        "{}",
        r.fleet.utilization
    );
}

#[test]
fn a_warm_up_leaves_out_the_start_from_empty() {
    // M/M/4 at ρ 0.9, 500 measured arrivals, averaged over 200 seeds: starting from an
    // empty fleet the mean wait reads well under Erlang-C's steady state; after a
    // warm-up of 1,000 arrivals it reads the steady state.
    let c = 4;
    let a = 0.9 * f64::from(c);
    let want = mmc_mean_wait(c, a, 1.0) * 1000.0;
    let mean_wait = |warmup: u64| {
        let seeds = 200u32;
        let mut sum = 0.0;
        for seed in 0..u64::from(seeds) {
            let mut s = mmc(c, a, 500 + warmup);
            s.seed = seed;
            s.warmup_requests = warmup;
            let r = simulate(s).unwrap();
            check_books(&r);
            assert_eq!((r.arrivals, r.warmup_requests), (500, warmup));
            assert_eq!(r.warmup_s > 0.0, warmup > 0, "{}", r.warmup_s);
            assert!(r.simulated_s > r.warmup_s);
            sum += r.fleet.queue_wait_ms.mean;
        }
        sum / f64::from(seeds) / want
    };
    let cold = mean_wait(0);
    let warm = mean_wait(1000);
    println!("mean wait over Erlang-C: cold {cold:.3}, warmed up {warm:.3}");
    assert!(cold < 0.85, "{cold}");
    assert!((warm - 1.0).abs() < 0.05, "{warm}");
}

#[test]
fn a_warm_up_is_shown_and_must_leave_something_to_measure() {
    let text = |warmup: u64| {
        format!(
            "requests: 2000
warmup_requests: {warmup}
pools: [{{name: p, gpu: a100, instances: 2, context_window: 8K}}]
workload:
  - name: s
    arrival: {{poisson: {{rate: 20}}}}
    lengths: [{{cdf: azure, output_fraction: 0.2}}]
"
        )
    };
    let r = run_yaml(&text(500));
    check_books(&r);
    assert_eq!((r.arrivals, r.warmup_requests), (1500, 500));
    assert!(
        r.to_table().contains("the first 500 arrivals"),
        "{}",
        r.to_table()
    );
    let err = parse_scenario(&text(2000), "f.yaml", Path::new(".")).unwrap_err();
    assert!(
        err.to_string()
            .contains("warmup_requests (2000) leaves nothing"),
        "{err}"
    );
}
