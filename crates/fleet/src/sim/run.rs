//! The simulation loop: one global event queue over instances and arrival sources.
//!
//! An event is either an instance's step ending (its iterations applied, finished
//! requests let out, queued ones admitted, the next step planned) or a source's next
//! arrival (routed to a pool, dispatched to an instance or queued). Each costs
//! O(log n) in the queue plus O(log n) in the pool's load tree; per-request state
//! lives only while the request is in the fleet, and statistics stream into
//! histograms, so memory does not grow with the number of completed requests.

use super::arrivals::{SourceStream, UNNAMED};
use super::instance::{Exit, Instance, Job};
use super::queue::EventQueue;
use super::report::{Little, Report, Window};
use super::spec::{Dispatch, RoutingPolicy, Scenario, SloSpec, SpecError};
use super::stats::{DropReason, Recorder, Rejection, micros};
use std::collections::VecDeque;

/// How often, in arrivals, the progress callback is told.
const PROGRESS_EVERY: u64 = 1 << 16;

/// Min-load tournament tree over a pool's instances (ties to the lowest index).
#[derive(Debug, Clone)]
struct LoadTree {
    size: usize,
    /// `(load, instance)` per node; leaves at `size..`.
    nodes: Vec<(u32, u32)>,
}

impl LoadTree {
    fn new(n: usize) -> LoadTree {
        let size = n.next_power_of_two();
        let mut nodes = vec![(u32::MAX, u32::MAX); 2 * size];
        for i in 0..n {
            nodes[size + i] = (0, i as u32);
        }
        for i in (1..size).rev() {
            nodes[i] = nodes[2 * i].min(nodes[2 * i + 1]);
        }
        LoadTree { size, nodes }
    }

    fn set(&mut self, i: usize, load: u32) {
        let mut pos = self.size + i;
        if self.nodes[pos].0 == load {
            return;
        }
        self.nodes[pos].0 = load;
        while pos > 1 {
            pos /= 2;
            let min = self.nodes[2 * pos].min(self.nodes[2 * pos + 1]);
            if self.nodes[pos] == min {
                // Nothing above changes either.
                break;
            }
            self.nodes[pos] = min;
        }
    }

    /// `(load, instance)` of the least-loaded instance.
    fn min(&self) -> (u32, usize) {
        let (load, i) = self.nodes[1];
        (load, i as usize)
    }
}

#[derive(Debug, Clone)]
struct PoolState {
    first: usize,
    tree: LoadTree,
    central: VecDeque<Job>,
    in_system: u32,
    slots: u32,
    local_bound: u32,
    recorder: Recorder,
}

/// Counts a request leaving the fleet: its latencies when it completed, why when it
/// was dropped, its time in the fleet either way (a warm-up request only leaves).
fn record_exit(
    state: &mut PoolState,
    measured_in_system: &mut u64,
    slo: &SloSpec,
    job: Job,
    exit: Exit,
) {
    let rec = &mut state.recorder;
    state.in_system -= 1;
    if !job.measured {
        return;
    }
    *measured_in_system -= 1;
    match exit {
        Exit::Completed(at) => {
            let e2e = at - job.arrival_ms;
            let ttft = job.first_token_ms - job.arrival_ms;
            let tpot = if job.emitted > 1 {
                (at - job.first_token_ms) / f64::from(job.emitted - 1)
            } else {
                0.0
            };
            rec.completed += 1;
            rec.sojourn_ms += e2e;
            rec.prompt_tokens += u64::from(job.prompt);
            rec.output_tokens += u64::from(job.emitted);
            rec.e2e.saturating_record(micros(e2e));
            rec.ttft.saturating_record(micros(ttft));
            rec.wait
                .saturating_record(micros(job.admitted_ms - job.arrival_ms));
            if job.emitted > 1 {
                rec.tpot.saturating_record(micros(tpot));
            }
            let met = slo.ttft_ms.is_none_or(|s| ttft <= s)
                && slo.tpot_ms.is_none_or(|s| tpot <= s)
                && slo.e2e_ms.is_none_or(|s| e2e <= s);
            rec.slo_met += u64::from(met);
        }
        Exit::Dropped(at) => {
            let why = if job.admitted_ms.is_nan() {
                DropReason::QueueTimeout
            } else {
                DropReason::Preempted
            };
            rec.dropped[why as usize] += 1;
            rec.sojourn_ms += at - job.arrival_ms;
        }
    }
}

/// A fleet simulation ready to run.
pub struct Simulation {
    scenario: Scenario,
    instances: Vec<Instance>,
    instance_pool: Vec<u16>,
    pools: Vec<PoolState>,
    /// Pool indices by boundary, smallest first.
    by_boundary: Vec<usize>,
    sources: Vec<SourceStream>,
    /// Per source: its names mapped to pool indices (for replay).
    source_pools: Vec<Vec<Option<usize>>>,
    pending: Vec<Option<super::arrivals::Arrival>>,
    queue: EventQueue,
    arrivals: u64,
    /// Requests in the fleet that the report counts (arrived after the warm-up).
    measured_in_system: u64,
    /// Time integral of measured requests in the fleet, in request-ms.
    area: f64,
    last_ms: f64,
    /// When the first measured request arrived (`None` during the warm-up).
    measured_from_ms: Option<f64>,
    stopped: bool,
}

impl Simulation {
    /// Builds the fleet and opens the sources (reading traces).
    pub fn new(scenario: Scenario) -> Result<Simulation, SpecError> {
        let mut instances = Vec::new();
        let mut instance_pool = Vec::new();
        let mut pools = Vec::with_capacity(scenario.pools.len());
        for (p, pool) in scenario.pools.iter().enumerate() {
            let first = instances.len();
            let slots = Instance::slots_for(&pool.profile, pool.context_window, pool.max_seqs);
            let watts = Instance::watts_table(&pool.power, pool.gpus, slots);
            for _ in 0..pool.instances {
                let mut inst = Instance::new(
                    &pool.profile,
                    watts.clone(),
                    pool.context_window,
                    pool.max_seqs,
                    pool.max_preemptions,
                );
                if let Some(w) = pool.max_queue_wait_ms {
                    inst.set_max_wait(w);
                }
                instances.push(inst);
                instance_pool.push(p as u16);
            }
            let slots_each = instances[first].slots();
            pools.push(PoolState {
                first,
                tree: LoadTree::new(pool.instances as usize),
                central: VecDeque::new(),
                in_system: 0,
                slots: slots_each.saturating_mul(pool.instances),
                local_bound: slots_each.saturating_add(pool.max_queue.div_ceil(pool.instances)),
                recorder: Recorder::new(),
            });
        }
        let mut by_boundary: Vec<usize> = (0..scenario.pools.len()).collect();
        by_boundary.sort_by_key(|&p| (scenario.pools[p].max_tokens, p));
        let mut sources = Vec::with_capacity(scenario.sources.len());
        let mut source_pools = Vec::with_capacity(scenario.sources.len());
        for (i, s) in scenario.sources.iter().enumerate() {
            let stream = SourceStream::new(s, i, scenario.seed)?;
            source_pools.push(
                stream
                    .names
                    .iter()
                    .map(|n| scenario.pools.iter().position(|p| p.name == *n))
                    .collect(),
            );
            sources.push(stream);
        }
        let actors = instances.len() + sources.len();
        let cold = scenario.warmup_requests == 0;
        Ok(Simulation {
            pending: vec![None; sources.len()],
            scenario,
            queue: EventQueue::new(actors),
            instances,
            instance_pool,
            pools,
            by_boundary,
            sources,
            source_pools,
            arrivals: 0,
            measured_in_system: 0,
            area: 0.0,
            last_ms: 0.0,
            // Without a warm-up the window starts at time zero.
            measured_from_ms: cold.then_some(0.0),
            stopped: false,
        })
    }

    /// Runs to the end (the arrival cap or horizon, then until the fleet drains),
    /// telling `progress` the arrivals so far and the cap, now and then.
    pub fn run(mut self, progress: &mut dyn FnMut(u64, Option<u64>)) -> Report {
        let n = self.instances.len();
        for s in 0..self.sources.len() {
            self.schedule_source(s);
        }
        // Each handler reschedules or removes its actor, which is at the top.
        while let Some((now, actor)) = self.queue.peek() {
            self.area += self.measured_in_system as f64 * (now - self.last_ms);
            self.last_ms = now;
            let actor = actor as usize;
            if actor < n {
                self.step_end(actor, now);
            } else {
                self.arrive(actor - n, now);
                if self.arrivals.is_multiple_of(PROGRESS_EVERY) {
                    progress(self.arrivals, self.scenario.requests);
                }
            }
        }
        progress(self.arrivals, self.scenario.requests);
        self.report()
    }

    fn schedule_source(&mut self, s: usize) {
        let next = if self.stopped {
            None
        } else {
            self.sources[s].next_arrival()
        };
        let past_horizon =
            |a: &super::arrivals::Arrival| self.scenario.duration_ms.is_some_and(|d| a.at_ms > d);
        match next {
            Some(a) if !past_horizon(&a) => {
                self.queue
                    .schedule((self.instances.len() + s) as u32, a.at_ms);
                self.pending[s] = Some(a);
            }
            _ => {
                self.pending[s] = None;
                self.queue.remove((self.instances.len() + s) as u32);
            }
        }
    }

    fn arrive(&mut self, s: usize, now: f64) {
        let Some(arrival) = self.pending[s].take() else {
            self.queue.remove((self.instances.len() + s) as u32);
            return;
        };
        self.arrivals += 1;
        if self
            .scenario
            .requests
            .is_some_and(|cap| self.arrivals >= cap)
        {
            self.stopped = true;
            for other in 0..self.sources.len() {
                self.queue.remove((self.instances.len() + other) as u32);
                self.pending[other] = None;
            }
        }
        let measured = self.arrivals > self.scenario.warmup_requests;
        if measured && self.measured_from_ms.is_none() {
            // The warm-up is over: usage counts from here, like the requests.
            self.measured_from_ms = Some(now);
            for inst in &mut self.instances {
                inst.reset_usage();
            }
        }
        let mut job = Job {
            arrival_ms: now,
            admitted_ms: f64::NAN,
            first_token_ms: f64::NAN,
            prompt: arrival.prompt,
            output: arrival.output,
            emitted: 0,
            preemptions: 0,
            measured,
        };
        match self.route(s, &arrival) {
            Ok((p, prompt)) => {
                let compressed = prompt != job.prompt;
                job.prompt = prompt;
                if measured {
                    let rec = &mut self.pools[p].recorder;
                    rec.arrivals += 1;
                    rec.compressed += u64::from(compressed);
                }
                self.dispatch(p, job, now);
            }
            Err((p, why)) => {
                if measured {
                    let rec = &mut self.pools[p].recorder;
                    rec.arrivals += 1;
                    rec.rejected[why as usize] += 1;
                }
            }
        }
        self.schedule_source(s);
    }

    /// Picks a pool: `Ok((pool, prompt tokens after any compression))`, or the
    /// rejection and the pool it is counted against.
    fn route(
        &self,
        s: usize,
        a: &super::arrivals::Arrival,
    ) -> Result<(usize, u32), (usize, Rejection)> {
        let pools = &self.scenario.pools;
        let names = &self.sources[s].names;
        let model = (a.model != UNNAMED).then(|| names[a.model as usize].as_str());
        let serves = |p: usize| match (model, &pools[p].model) {
            (Some(m), Some(pm)) => m == pm,
            _ => true,
        };
        let total = u64::from(a.prompt) + u64::from(a.output);
        let fits = |p: usize| serves(p) && total <= u64::from(pools[p].max_tokens);
        let largest = *self.by_boundary.last().unwrap_or(&0);
        let load =
            |p: usize| f64::from(self.pools[p].in_system) / f64::from(self.pools[p].slots.max(1));
        let least_loaded = |candidates: &mut dyn Iterator<Item = usize>| {
            candidates.min_by(|x, y| load(*x).total_cmp(&load(*y)).then(x.cmp(y)))
        };
        let policy = self.scenario.routing.policy;
        if policy == RoutingPolicy::Replay && a.pool != UNNAMED {
            return match self.source_pools[s][a.pool as usize] {
                Some(p) if total <= u64::from(pools[p].context_window) => Ok((p, a.prompt)),
                Some(p) => Err((p, Rejection::TooLong)),
                None => Err((largest, Rejection::NoPool)),
            };
        }
        if model.is_some() && !(0..pools.len()).any(serves) {
            return Err((largest, Rejection::NoPool));
        }
        let first_fit = self.by_boundary.iter().copied().find(|&p| fits(p));
        let chosen = match policy {
            RoutingPolicy::Length | RoutingPolicy::Replay => first_fit,
            RoutingPolicy::Compress => {
                let gamma = self.scenario.routing.gamma.unwrap_or(1.0);
                for &p in &self.by_boundary {
                    if !serves(p) {
                        continue;
                    }
                    let b = u64::from(pools[p].max_tokens);
                    if total <= b {
                        return Ok((p, a.prompt));
                    }
                    if (total as f64) <= gamma * b as f64 && u64::from(a.output) < b {
                        return Ok((p, (b - u64::from(a.output)) as u32));
                    }
                }
                None
            }
            RoutingPolicy::Spillover => {
                let spill_at = self.scenario.routing.spill_at.unwrap_or(u32::MAX);
                let mut fitting = self.by_boundary.iter().copied().filter(|&p| fits(p));
                let mut chosen = fitting.next();
                while let Some(p) = chosen {
                    let queued = self.pools[p].in_system.saturating_sub(self.pools[p].slots);
                    if queued < spill_at {
                        break;
                    }
                    match fitting.next() {
                        Some(next) => chosen = Some(next),
                        None => break,
                    }
                }
                chosen
            }
            RoutingPolicy::LeastLoaded | RoutingPolicy::ByModel => {
                if policy == RoutingPolicy::ByModel && model.is_none() {
                    return Err((largest, Rejection::NoPool));
                }
                least_loaded(&mut (0..pools.len()).filter(|&p| fits(p)))
            }
        };
        match chosen {
            Some(p) => Ok((p, a.prompt)),
            None => Err((largest, Rejection::TooLong)),
        }
    }

    fn dispatch(&mut self, p: usize, job: Job, now: f64) {
        let pool = &self.scenario.pools[p];
        let state = &mut self.pools[p];
        let (load, i) = state.tree.min();
        let slots = self.instances[state.first + i].slots();
        let to_instance = match pool.dispatch {
            Dispatch::Central => load < slots,
            Dispatch::Shortest => load < state.local_bound,
        };
        if !to_instance
            && (pool.dispatch == Dispatch::Shortest
                || state.central.len() >= pool.max_queue as usize)
        {
            if job.measured {
                state.recorder.rejected[Rejection::QueueFull as usize] += 1;
            }
            return;
        }
        state.in_system += 1;
        self.measured_in_system += u64::from(job.measured);
        if to_instance {
            let index = state.first + i;
            let inst = &mut self.instances[index];
            let end = inst.enqueue(job, now);
            self.after_change(index, end);
        } else {
            state.central.push_back(job);
        }
    }

    fn step_end(&mut self, index: usize, now: f64) {
        self.instances[index].end_step();
        let p = self.instance_pool[index] as usize;
        let deadline = self.scenario.pools[p].max_queue_wait_ms;
        let slo = &self.scenario.slo;
        let state = &mut self.pools[p];
        let inst = &mut self.instances[index];
        while inst.load() < inst.slots() {
            let Some(job) = state.central.pop_front() else {
                break;
            };
            if deadline.is_some_and(|d| now - job.arrival_ms > d) {
                record_exit(
                    state,
                    &mut self.measured_in_system,
                    slo,
                    job,
                    Exit::Dropped(now),
                );
                continue;
            }
            inst.push(job);
        }
        let end = inst.begin(now);
        self.after_change(index, end);
    }

    /// Schedules the instance's new step end (if any), records who left, updates load.
    fn after_change(&mut self, index: usize, end: Option<f64>) {
        if let Some(end) = end {
            self.queue.schedule(index as u32, end);
        } else if !self.instances[index].is_busy() {
            self.queue.remove(index as u32);
        }
        let p = self.instance_pool[index] as usize;
        let slo = &self.scenario.slo;
        let state = &mut self.pools[p];
        let inst = &mut self.instances[index];
        for (job, exit) in inst.exits.drain(..) {
            record_exit(state, &mut self.measured_in_system, slo, job, exit);
        }
        state.tree.set(index - state.first, inst.load());
    }

    fn report(self) -> Report {
        // The report's window: from the first measured arrival until the fleet drained.
        let mut fleet = Recorder::new();
        for p in &self.pools {
            fleet.merge(&p.recorder);
        }
        let window = Window {
            from_ms: self.measured_from_ms.unwrap_or(self.last_ms),
            to_ms: self.last_ms,
            warmup_requests: self.arrivals - fleet.arrivals,
        };
        let little = Little::new(
            self.area,
            window.to_ms - window.from_ms,
            fleet.arrivals,
            fleet.sojourn_ms,
        );
        Report::build(
            &self.scenario,
            &self.instances,
            &self.instance_pool,
            self.pools.iter().map(|p| &p.recorder),
            &fleet,
            window,
            little,
        )
    }
}
