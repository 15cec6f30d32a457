//! The planner: its analytical sizes hold up in simulation, the search finds what the
//! grid offers, and a day re-planned hourly costs less than one plan for the peak.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use switchyard_fleet::plan::{self, Sample, parse_plan, scenario_of, search, svg};
use switchyard_fleet::sim::simulate;

fn spec(extra: &str) -> plan::spec::Resolved {
    let text = format!(
        "seed: 2
workload:
  rate: 300
  mix: [{{cdf: azure, output_fraction: 0.2}}]
ttft_p99_ms: 500
verify_requests: 60000
{extra}"
    );
    parse_plan(&text, "plan.yaml", Path::new(".")).unwrap()
}

#[test]
fn the_analytical_plan_meets_the_slo_in_simulation_and_one_fewer_instance_is_worse() {
    let s = spec("gpus: [h100]\n");
    let result = plan::plan(&s).unwrap();
    let best = &result.best;
    assert!(
        result.verified.iter().any(|v| v.meets_slo),
        "{:?}",
        result.verified
    );
    let sim = simulate(scenario_of(&s, best, 300.0)).unwrap();
    assert_eq!(sim.fleet.completed, sim.arrivals);
    assert!(sim.fleet.ttft_ms.p99 <= 500.0, "{:?}", sim.fleet.ttft_ms);
    // Predicted and simulated utilization of the busiest pool agree within a few points.
    let (planned, simulated) = best
        .pools
        .iter()
        .zip(&sim.pools)
        .map(|(p, r)| (p.sizing.utilization, r.utilization))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap();
    assert!(
        (planned - simulated).abs() < 0.08,
        "planned {planned}, simulated {simulated}"
    );
    // Shrinking the largest pool by a third runs it hotter in simulation.
    let mut smaller = best.clone();
    let largest = smaller
        .pools
        .iter_mut()
        .max_by_key(|p| p.sizing.instances)
        .unwrap();
    largest.sizing.instances = largest.sizing.instances * 2 / 3;
    let hot = simulate(scenario_of(&s, &smaller, 300.0)).unwrap();
    assert!(hot.fleet.utilization > sim.fleet.utilization);
    assert!(hot.fleet.ttft_ms.p99 > sim.fleet.ttft_ms.p99);
}

#[test]
fn the_search_covers_the_grid_ranks_by_cost_and_respects_availability() {
    let s = spec("gpus: [a100, h100]\nboundaries: [2K, 4K, 8K]\ngammas: [1, 1.5]\n");
    let sample = Sample::new(&s.mix);
    let all = search(&s, &sample, 300.0);
    assert!(all.windows(2).all(|w| w[0].score <= w[1].score));
    let boundaries: std::collections::BTreeSet<u32> = all.iter().map(|c| c.boundary).collect();
    // The grid, its halfway points, and one pool at the longest request.
    for b in [2048, 3072, 4096, 6144, 8192, 16384] {
        assert!(boundaries.contains(&b), "{b} missing from {boundaries:?}");
    }
    assert!(all.iter().any(|c| c.pools.len() == 1));
    assert!(all.iter().all(|c| c.ttft_p99_ms <= 500.0));
    // Two H100s at most: every plan must use A100s for the rest, and costs more.
    let limited = spec(
        "gpus: [a100, {gpu: h100, available: 2}]\nboundaries: [2K, 4K, 8K]\ngammas: [1, 1.5]\n",
    );
    let few = search(&limited, &sample, 300.0);
    for c in &few {
        for p in &c.pools {
            assert!(p.gpu != "h100" || p.sizing.instances <= 2, "{c:?}");
        }
    }
    assert!(few[0].cost_per_hour >= all[0].cost_per_hour);
}

#[test]
fn energy_objective_trades_cost_for_watts() {
    let cost = search(
        &spec("gpus: [a10g, a100, h100]\n"),
        &Sample::new(&spec("").mix),
        300.0,
    );
    let energy_spec = spec("gpus: [a10g, a100, h100]\nobjective: energy\n");
    let energy = search(&energy_spec, &Sample::new(&energy_spec.mix), 300.0);
    assert!(energy[0].watts <= cost[0].watts);
    assert!(energy[0].cost_per_hour >= cost[0].cost_per_hour);
}

#[test]
fn a_day_replanned_hourly_costs_less_than_a_static_peak_plan() {
    let text = "seed: 1
workload:
  rate: [40, 30, 30, 60, 150, 300, 320, 250, 120, 80, 60, 50]
  mix:
    - {cdf: lmsys, weight: 3}
    - {cdf: agent_heavy, weight: 1, output_fraction: 0.1}
ttft_p99_ms: 1000
gpus: [a100, h100]
verify_requests: 0
";
    let s = parse_plan(text, "day.yaml", Path::new(".")).unwrap();
    let result = plan::plan(&s).unwrap();
    assert_eq!(result.hours.len(), 12);
    assert!(result.follow_day_cost < result.static_day_cost);
    let quiet: u32 = result.hours[1].instances.iter().sum();
    let busy: u32 = result.hours[6].instances.iter().sum();
    assert!(busy > quiet, "{busy} vs {quiet}");
    let d = result.disaggregated.expect("a disaggregated fleet");
    assert!(d.prefill.sizing.instances > 0 && d.decode.sizing.instances > 0);
    let day = svg::day(&result.hours);
    assert!(
        day.starts_with("<svg") && day.contains("polyline") && day.trim_end().ends_with("</svg>")
    );
    let front = svg::pareto(&result.candidates, &result.best);
    assert!(
        front.contains("Pareto front")
            && front.matches("<circle").count() > result.candidates.len()
    );
}

#[test]
fn impossible_slos_and_bad_files_are_explained() {
    let s = spec("gpus: [a10g]\n").clone();
    let mut tight = s.clone();
    tight.ttft_p99_ms = 1.0;
    let err = plan::plan(&tight).unwrap_err();
    assert!(err.to_string().contains("no fleet"), "{err}");
    let err = parse_plan(
        "workload: {rate: 5, mix: []}\nttft_p99_ms: 5\n",
        "p.yaml",
        Path::new("."),
    )
    .unwrap_err();
    assert!(err.to_string().contains("mix"), "{err}");
    let err = parse_plan(
        "workload: {rate: 5, mix: [{cdf: azure}]}\nttft_p99_ms: 5\nobjectiv: cost\n",
        "p.yaml",
        Path::new("."),
    )
    .unwrap_err();
    assert_eq!(err.line, Some(3), "{err}");
}

#[test]
fn verification_goes_to_distinct_fleets_with_arrivals_sized_to_them() {
    let s = spec("gpus: [h100, a100]\nverify_top: 4\n");
    let result = plan::plan(&s).unwrap();
    let fleet_of = |boundary: u32, gamma: f64| {
        let c = result
            .candidates
            .iter()
            .find(|c| c.boundary == boundary && c.gamma == gamma)
            .unwrap();
        c.pools
            .iter()
            .map(|p| (p.gpu.clone(), p.sizing.instances))
            .collect::<Vec<_>>()
    };
    let fleets: Vec<_> = result
        .verified
        .iter()
        .map(|v| fleet_of(v.boundary, v.gamma))
        .collect();
    assert!(fleets.len() >= 2, "{fleets:?}");
    for (i, a) in fleets.iter().enumerate() {
        for b in &fleets[i + 1..] {
            assert_ne!(a, b, "the same fleet verified twice");
        }
    }
    // The candidates do hold repeats (adjacent boundaries, the same instances), so the
    // filter had something to do.
    let all: Vec<_> = result
        .candidates
        .iter()
        .take(12)
        .map(|c| fleet_of(c.boundary, c.gamma))
        .collect();
    let distinct = all
        .iter()
        .enumerate()
        .filter(|(i, f)| !all[..*i].contains(f))
        .count();
    assert!(distinct < all.len(), "no repeated fleet among {all:?}");
    // Among the four best-ranked candidates alone a fleet repeats: verifying the top
    // four as ranked would have spent the budget twice on it.
    let top = &all[..4];
    assert!(
        top.iter().enumerate().any(|(i, f)| top[..i].contains(f)),
        "{top:?}"
    );
    // Every candidate can hold the workload's longest request, even where the sample
    // held nothing above its boundary.
    let longest = Sample::new(&s.mix).longest;
    for c in &result.candidates {
        assert!(
            c.pools.iter().any(|p| p.context_window >= longest),
            "B {} leaves nowhere for requests up to {longest} tokens",
            c.boundary
        );
    }
    // 1,000 requested, but at least 2,000 per instance are measured, after a warm-up
    // of 500 per instance.
    let mut few = s.clone();
    few.verify_requests = 1000;
    let scenario = scenario_of(&few, &result.best, 300.0);
    let instances: u64 = result
        .best
        .pools
        .iter()
        .map(|p| u64::from(p.sizing.instances))
        .sum();
    assert_eq!(scenario.requests, Some(2_500 * instances));
    assert_eq!(scenario.warmup_requests, 500 * instances);
}

#[test]
fn the_predicted_p99_is_never_optimistic_and_stays_close_across_load_levels() {
    // Prefill-heavy workloads (short answers to long prompts) and a chat one, each at
    // the planner's size and at 1.2 and 1.5 times it: the analytical P99 TTFT must not
    // promise less than simulation delivers, nor overstate it by more than 1.7 times.
    for (cdf, fraction, gpu, rate) in [
        ("azure", 0.2, "a100", 200.0),
        ("lmsys", 0.5, "a100", 100.0),
        ("agent_heavy", 0.1, "h100", 50.0),
    ] {
        let text = format!(
            "seed: 1
workload: {{rate: {rate}, mix: [{{cdf: {cdf}, output_fraction: {fraction}}}]}}
ttft_p99_ms: 500
gpus: [{gpu}]
verify_requests: 0
gammas: [1]
boundaries: []
"
        );
        let s = parse_plan(&text, "plan.yaml", Path::new(".")).unwrap();
        let sample = Sample::new(&s.mix);
        let planned = plan::plan(&s).unwrap().best;
        for factor in [1.0, 1.2, 1.5] {
            let mut c = planned.clone();
            for p in &mut c.pools {
                p.sizing.instances = (f64::from(p.sizing.instances) * factor).round() as u32;
            }
            let predicted = plan::predict(&s, &sample, &c, rate);
            let simulated = simulate(scenario_of(&s, &c, rate)).unwrap();
            for (p, sim) in predicted.iter().zip(&simulated.pools) {
                let p = p.expect("a larger pool stays feasible").ttft_p99_ms;
                let ratio = p / sim.ttft_ms.p99;
                println!(
                    "RATIO {cdf} x{factor}: {p:.0} / {:.0} = {ratio:.2}",
                    sim.ttft_ms.p99
                );
                assert!(
                    (1.0..=1.7).contains(&ratio),
                    "{cdf} on {gpu} ×{factor}: predicted {p:.0} ms, simulated {:.0} ms",
                    sim.ttft_ms.p99
                );
            }
        }
    }
}

#[test]
fn two_pool_fleets_compressed_or_not_are_never_predicted_optimistically() {
    // A tight SLO (120 ms on A100) that a long pool's own prefill nearly fills: its
    // P99 prompt, read between the sparse tail's sample points, the wait for the
    // iteration in progress, and the prompt's growing context all count. Every pool's
    // prediction must hold in simulation and stay within 1.7 times of it.
    for (boundary, gamma) in [(3584, 2.0), (3840, 1.0), (4096, 1.5)] {
        let text = format!(
            "seed: 1
workload: {{rate: 150, mix: [{{cdf: azure, output_fraction: 0.2}}]}}
ttft_p99_ms: 120
gpus: [a100]
verify_requests: 0
gammas: [{gamma}]
boundaries: [{boundary}]
"
        );
        let s = parse_plan(&text, "plan.yaml", Path::new(".")).unwrap();
        let sample = Sample::new(&s.mix);
        let planned = plan::plan(&s).unwrap().best;
        assert_eq!(planned.pools.len(), 2, "{planned:?}");
        let predicted = plan::predict(&s, &sample, &planned, 150.0);
        let simulated = simulate(scenario_of(&s, &planned, 150.0)).unwrap();
        for (p, sim) in predicted.iter().zip(&simulated.pools) {
            let p = p.unwrap().ttft_p99_ms;
            let ratio = p / sim.ttft_ms.p99;
            println!(
                "B {boundary} γ {gamma} {} ×{}: predicted {p:.1} ms, simulated {:.1} ms ({ratio:.2})",
                sim.name, sim.instances, sim.ttft_ms.p99
            );
            assert!(
                (1.0..=1.7).contains(&ratio),
                "B {boundary} γ {gamma} {}: predicted {p:.1} ms, simulated {:.1} ms",
                sim.name,
                sim.ttft_ms.p99
            );
        }
    }
}
