//! One instance in simulated time, stepped many iterations at once.
//!
//! The iteration model is [`crate::Batch`]'s: an iteration costs `W + H·S/8192` where
//! `S` is the context held by every running sequence, spends the prefill chunk on
//! prompts in admission order, and gives every prefilled sequence one token. Between
//! two changes of the running set (a prompt finishing its prefill, a sequence
//! finishing, an admission) the batch is the same every iteration and `S` grows by
//! the same amount `g`, so `k` iterations take
//! `T(k) = k·W + a·(k·S₀ + g·k(k−1)/2)` with `a = H/8192`: one event covers them
//! all. An arrival that can join mid-way cuts the step at the end of the iteration in
//! progress (the smallest `k` with `T(k)` past the arrival), as a real engine admits
//! at the next iteration.
//!
//! KV blocks of 16 tokens are taken on demand: a sequence is admitted with blocks for
//! its prompt and first token (and only while 1% of the cache stays free), and takes
//! a block each time its context crosses a multiple of 16. Decoding sequences are
//! counted by the phase of that crossing (16 classes), so the blocks a step needs are
//! known without touching each sequence. When the next iteration would need more
//! blocks than are free, the newest sequence is preempted (recompute: it returns to
//! the head of the queue with its generated tokens added to its prompt). The oldest
//! running sequence is never preempted, so some sequence always progresses, and a
//! request preempted more than `max_preemptions` times is dropped.

use crate::gpu::{GpuProfile, KV_BLOCK_TOKENS};
use crate::power::PowerProfile;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

/// One request as the simulator tracks it (compact: 40 bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Job {
    /// Arrival, in ms of simulated time.
    pub arrival_ms: f64,
    /// First admission into a batch (NaN before).
    pub admitted_ms: f64,
    /// First token (NaN before).
    pub first_token_ms: f64,
    /// Prompt tokens.
    pub prompt: u32,
    /// Output tokens the request generates in all.
    pub output: u32,
    /// Tokens generated so far (by earlier runs, before a preemption; all of them
    /// once completed). A run re-prefills `prompt + emitted` (recompute).
    pub emitted: u32,
    /// Times preempted.
    pub preemptions: u16,
    /// Counted in the report: it arrived after the warm-up.
    pub measured: bool,
}

#[derive(Debug, Clone, Copy)]
struct Running {
    job: Job,
    /// Admission order: prefill order, and newest-first preemption.
    order: u64,
    prefilled: u32,
    /// Iteration whose end gave the first token of this run (`u64::MAX` while prefilling).
    decode_start: u64,
    /// Phase class of block crossings while decoding.
    class: u8,
}

#[derive(Debug, Clone, Copy)]
struct Step {
    start_ms: f64,
    end_ms: f64,
    iterations: u64,
    sum0: f64,
    growth: f64,
    /// The front prompt takes the whole chunk every iteration without finishing.
    prefill: bool,
    /// A single iteration run sequence by sequence (prompts finish, the chunk spills).
    general: bool,
}

/// What happened to a job leaving an instance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Exit {
    /// All tokens generated, at this time.
    Completed(f64),
    /// Preempted too often, dropped at this time.
    Dropped(f64),
}

/// One simulated instance.
#[derive(Debug, Clone)]
pub(crate) struct Instance {
    w_ms: f64,
    a_ms: f64,
    chunk: u32,
    kv_blocks: u64,
    watermark: u64,
    slots: u32,
    max_preemptions: u16,
    max_wait_ms: f64,
    /// Watts of the whole instance by batch size (shared by a pool's instances).
    watts: Arc<[f64]>,

    iter: u64,
    next_order: u64,
    sum_ctx: f64,
    n_dec: u32,
    blocks_used: u64,
    classes: [u32; 16],
    slab: Vec<Running>,
    free: Vec<u32>,
    live: u32,
    prefill: VecDeque<u32>,
    finish: BinaryHeap<Reverse<(u64, u32)>>,
    waiting: VecDeque<Job>,
    step: Option<Step>,

    /// Jobs that left during the last operation, drained by the simulator.
    pub(crate) exits: Vec<(Job, Exit)>,
    /// Milliseconds spent running iterations.
    pub(crate) busy_ms: f64,
    /// Sequence-milliseconds of running sequences (slot occupancy).
    pub(crate) occupancy_ms: f64,
    /// Energy drawn while running iterations, in joules.
    pub(crate) busy_energy_j: f64,
    /// Preemptions so far.
    pub(crate) preemptions: u64,
}

fn blocks_for(tokens: u32) -> u64 {
    u64::from(tokens.div_ceil(KV_BLOCK_TOKENS))
}

impl Instance {
    /// Forgets the usage so far (busy time, occupancy, energy, preemptions): the
    /// report's window starts now.
    pub(crate) fn reset_usage(&mut self) {
        self.busy_ms = 0.0;
        self.occupancy_ms = 0.0;
        self.busy_energy_j = 0.0;
        self.preemptions = 0;
    }

    /// The slots an instance of `profile` runs at `context_window`, or `max_seqs`
    /// (above the window's count, sequences share the KV cache on demand and may be
    /// preempted).
    pub(crate) fn slots_for(
        profile: &GpuProfile,
        context_window: u32,
        max_seqs: Option<u32>,
    ) -> u32 {
        max_seqs
            .unwrap_or_else(|| profile.slots(context_window))
            .max(1)
    }

    /// Power of an instance of `gpus` GPUs by batch size, from 0 to `slots`.
    pub(crate) fn watts_table(power: &PowerProfile, gpus: u32, slots: u32) -> Arc<[f64]> {
        (0..=slots as usize)
            .map(|b| power.watts(b) * f64::from(gpus.max(1)))
            .collect()
    }

    /// An idle instance with `watts` from [`Instance::watts_table`].
    pub(crate) fn new(
        profile: &GpuProfile,
        watts: Arc<[f64]>,
        context_window: u32,
        max_seqs: Option<u32>,
        max_preemptions: u16,
    ) -> Instance {
        let kv_blocks = u64::from(profile.kv_blocks);
        Instance {
            w_ms: profile.w_ms,
            a_ms: profile.h_ms / 8192.0,
            chunk: profile.prefill_chunk.max(1),
            kv_blocks,
            watermark: kv_blocks / 100,
            slots: max_seqs
                .unwrap_or_else(|| profile.slots(context_window))
                .max(1),
            max_preemptions,
            max_wait_ms: f64::INFINITY,
            watts,
            iter: 0,
            next_order: 0,
            sum_ctx: 0.0,
            n_dec: 0,
            blocks_used: 0,
            classes: [0; 16],
            slab: Vec::new(),
            free: Vec::new(),
            live: 0,
            prefill: VecDeque::new(),
            finish: BinaryHeap::new(),
            waiting: VecDeque::new(),
            step: None,
            exits: Vec::new(),
            busy_ms: 0.0,
            occupancy_ms: 0.0,
            busy_energy_j: 0.0,
            preemptions: 0,
        }
    }

    /// Drops requests not admitted within `ms` of their arrival (checked at admission).
    pub(crate) fn set_max_wait(&mut self, ms: f64) {
        self.max_wait_ms = ms;
    }

    /// Queues a job without starting anything (the caller calls [`Instance::begin`]).
    pub(crate) fn push(&mut self, job: Job) {
        self.waiting.push_back(job);
    }

    /// Concurrent sequences.
    pub(crate) fn slots(&self) -> u32 {
        self.slots
    }

    /// Running plus waiting sequences.
    pub(crate) fn load(&self) -> u32 {
        self.live + self.waiting.len() as u32
    }

    /// Whether a step is in progress.
    pub(crate) fn is_busy(&self) -> bool {
        self.step.is_some()
    }

    /// KV blocks in use (for tests: zero when idle).
    #[cfg(test)]
    pub(crate) fn blocks_used(&self) -> u64 {
        self.blocks_used
    }

    /// Power draw of the instance with nothing running, in watts.
    pub(crate) fn idle_watts(&self) -> f64 {
        self.watts[0]
    }

    /// Queues a job at `now`. Returns the new end of the current step when it changed
    /// (the instance was idle, or the job can join at the next iteration).
    pub(crate) fn enqueue(&mut self, job: Job, now: f64) -> Option<f64> {
        self.waiting.push_back(job);
        match self.step {
            None => self.begin(now),
            Some(_) if self.admissible() => self.cut(now),
            Some(_) => None,
        }
    }

    /// Ends the current step: applies its iterations and lets finished jobs out (into
    /// [`Instance::exits`]). Call [`Instance::begin`] next.
    pub(crate) fn end_step(&mut self) {
        let Some(step) = self.step.take() else {
            return;
        };
        let duration = step.end_ms - step.start_ms;
        let running = self.live as usize;
        self.busy_ms += duration;
        self.occupancy_ms += running as f64 * duration;
        let watts = self.watts[running.min(self.watts.len() - 1)];
        self.busy_energy_j += watts * duration / 1000.0;
        self.blocks_used += self.blocks_needed(self.iter, step.iterations);
        if step.general {
            self.general_iteration(step.end_ms);
        } else {
            self.sum_ctx += step.growth * step.iterations as f64;
            if step.prefill
                && let Some(&front) = self.prefill.front()
            {
                self.slab[front as usize].prefilled += self.chunk * step.iterations as u32;
            }
        }
        self.iter += step.iterations;
        while let Some(&Reverse((at, id))) = self.finish.peek() {
            if at >= self.iter {
                break;
            }
            self.finish.pop();
            self.complete_decoding(id, step.end_ms);
        }
    }

    /// Admits what fits and plans the next step from `now`. Returns its end, or `None`
    /// when the instance is idle.
    pub(crate) fn begin(&mut self, now: f64) -> Option<f64> {
        self.admit(now);
        loop {
            if self.live == 0 {
                self.step = None;
                return None;
            }
            let free = self.kv_blocks.saturating_sub(self.blocks_used);
            let kv_limit = self.iterations_fitting(free);
            if kv_limit > 0 {
                return Some(self.plan(now, kv_limit));
            }
            self.preempt_newest(now);
        }
    }

    fn plan(&mut self, now: f64, kv_limit: u64) -> f64 {
        let decode_limit = self
            .finish
            .peek()
            .map_or(u64::MAX, |Reverse((at, _))| at - self.iter + 1);
        let mut step = Step {
            start_ms: now,
            end_ms: now,
            iterations: 1,
            sum0: self.sum_ctx,
            growth: f64::from(self.n_dec),
            prefill: false,
            general: false,
        };
        if let Some(&front) = self.prefill.front() {
            let seq = &self.slab[front as usize];
            let left = seq.job.context() - seq.prefilled;
            let whole_chunks = u64::from((left - 1) / self.chunk);
            if whole_chunks >= 1 {
                step.iterations = whole_chunks.min(decode_limit).min(kv_limit);
                step.growth += f64::from(self.chunk);
                step.prefill = true;
            } else {
                step.general = true;
            }
        } else {
            step.iterations = decode_limit.min(kv_limit);
        }
        step.end_ms = now + self.duration(&step, step.iterations);
        self.step = Some(step);
        step.end_ms
    }

    /// Time `k` iterations of `step` take: `k·W + a·(k·S₀ + g·k(k−1)/2)`.
    fn duration(&self, step: &Step, k: u64) -> f64 {
        let k = k as f64;
        k * self.w_ms + self.a_ms * (k * step.sum0 + step.growth * k * (k - 1.0) / 2.0)
    }

    /// Shortens the current step to end with the iteration in progress at `now`.
    fn cut(&mut self, now: f64) -> Option<f64> {
        let step = self.step?;
        if step.general || step.iterations <= 1 {
            return None;
        }
        let elapsed = now - step.start_ms;
        // Smallest k with T(k) ≥ elapsed: solve the quadratic, then settle rounding.
        let a = self.a_ms * step.growth / 2.0;
        let b = self.w_ms + self.a_ms * step.sum0 - a;
        let guess = if a > 0.0 {
            (-b + (b * b + 4.0 * a * elapsed).sqrt()) / (2.0 * a)
        } else {
            elapsed / b
        };
        let mut k = (guess.ceil().max(1.0) as u64).min(step.iterations);
        while k > 1 && self.duration(&step, k - 1) >= elapsed {
            k -= 1;
        }
        while k < step.iterations && self.duration(&step, k) < elapsed {
            k += 1;
        }
        if k >= step.iterations {
            return None;
        }
        let end = step.start_ms + self.duration(&step, k);
        self.step = Some(Step {
            iterations: k,
            end_ms: end,
            ..step
        });
        Some(end)
    }

    /// Whether the head of the queue could join the batch now.
    fn admissible(&self) -> bool {
        self.live < self.slots
            && self
                .waiting
                .front()
                .is_some_and(|job| self.fits(blocks_for(job.context() + 1)))
    }

    fn fits(&self, blocks: u64) -> bool {
        let reserve = if self.live == 0 { 0 } else { self.watermark };
        self.blocks_used + blocks + reserve <= self.kv_blocks
    }

    fn admit(&mut self, now: f64) {
        while self.live < self.slots {
            let Some(job) = self.waiting.front() else {
                break;
            };
            if job.admitted_ms.is_nan() && now - job.arrival_ms > self.max_wait_ms {
                let job = *job;
                self.waiting.pop_front();
                self.exits.push((job, Exit::Dropped(now)));
                continue;
            }
            let blocks = blocks_for(job.context() + 1);
            if !self.fits(blocks) {
                break;
            }
            let Some(mut job) = self.waiting.pop_front() else {
                break;
            };
            if job.admitted_ms.is_nan() {
                job.admitted_ms = now;
            }
            self.blocks_used += blocks;
            let running = Running {
                job,
                order: self.next_order,
                prefilled: 0,
                decode_start: u64::MAX,
                class: 0,
            };
            self.next_order += 1;
            let id = match self.free.pop() {
                Some(id) => {
                    self.slab[id as usize] = running;
                    id
                }
                None => {
                    self.slab.push(running);
                    (self.slab.len() - 1) as u32
                }
            };
            self.live += 1;
            self.prefill.push_back(id);
        }
    }

    /// One iteration run sequence by sequence: the chunk goes to prompts in order,
    /// and every prompt it finishes gives its first token.
    fn general_iteration(&mut self, end_ms: f64) {
        let decoding = self.n_dec;
        let mut budget = self.chunk;
        while budget > 0 {
            let Some(&id) = self.prefill.front() else {
                break;
            };
            let seq = &mut self.slab[id as usize];
            let take = budget.min(seq.job.context() - seq.prefilled);
            seq.prefilled += take;
            budget -= take;
            self.sum_ctx += f64::from(take);
            if seq.prefilled < seq.job.context() {
                break;
            }
            self.prefill.pop_front();
            self.start_decoding(id, end_ms);
        }
        self.sum_ctx += f64::from(decoding);
    }

    /// A prompt finished its prefill in iteration `self.iter`, which gave its first token.
    fn start_decoding(&mut self, id: u32, end_ms: f64) {
        let j = self.iter;
        let seq = &mut self.slab[id as usize];
        if seq.job.first_token_ms.is_nan() {
            seq.job.first_token_ms = end_ms;
        }
        seq.decode_start = j;
        self.sum_ctx += 1.0;
        let context = seq.job.context();
        let remaining = seq.job.remaining();
        if remaining <= 1 {
            let job = seq.job;
            self.sum_ctx -= f64::from(context + 1);
            self.blocks_used -= blocks_for(context + 1);
            self.release(id);
            self.exits.push((finished(job), Exit::Completed(end_ms)));
            return;
        }
        // Block crossings happen in iterations i > j with (context − j + i) ≡ 0 (mod 16).
        let class = ((u64::from(context) % 16 + 16 - j % 16) % 16) as u8;
        seq.class = class;
        self.classes[class as usize] += 1;
        self.n_dec += 1;
        self.finish
            .push(Reverse((j + u64::from(remaining) - 1, id)));
    }

    fn complete_decoding(&mut self, id: u32, end_ms: f64) {
        let seq = self.slab[id as usize];
        self.leave_decoding(&seq, seq.job.remaining());
        self.release(id);
        self.exits
            .push((finished(seq.job), Exit::Completed(end_ms)));
    }

    fn leave_decoding(&mut self, seq: &Running, generated: u32) {
        let tokens = seq.job.context() + generated;
        self.sum_ctx -= f64::from(tokens);
        self.blocks_used -= blocks_for(tokens);
        self.classes[seq.class as usize] -= 1;
        self.n_dec -= 1;
    }

    fn release(&mut self, id: u32) {
        self.live -= 1;
        self.free.push(id);
    }

    /// Blocks that iterations `[from, from + k)` take for crossings.
    fn blocks_needed(&self, from: u64, k: u64) -> u64 {
        if self.n_dec == 0 || k == 0 {
            return 0;
        }
        let mut total = u64::from(self.n_dec) * (k / 16);
        for offset in 0..k % 16 {
            total += u64::from(self.classes[crossing_class(from + offset)]);
        }
        total
    }

    /// The most iterations from now whose crossings fit in `free` blocks.
    fn iterations_fitting(&self, free: u64) -> u64 {
        if self.n_dec == 0 {
            return u64::MAX;
        }
        let periods = free / u64::from(self.n_dec);
        let mut left = free - periods * u64::from(self.n_dec);
        let mut k = periods * 16;
        for offset in 0..16 {
            let need = u64::from(self.classes[crossing_class(self.iter + offset)]);
            if need > left {
                break;
            }
            left -= need;
            k += 1;
        }
        k
    }

    fn preempt_newest(&mut self, now: f64) {
        let oldest = self
            .slab_live()
            .map(|(_, s)| s.order)
            .min()
            .unwrap_or(u64::MAX);
        let victim = self
            .slab_live()
            .filter(|(_, s)| s.order != oldest || self.live == 1)
            .max_by_key(|(_, s)| s.order)
            .map(|(id, _)| id);
        let Some(id) = victim else {
            return;
        };
        let seq = self.slab[id as usize];
        let mut job = seq.job;
        if seq.decode_start == u64::MAX {
            self.sum_ctx -= f64::from(seq.prefilled);
            self.blocks_used -= blocks_for(job.context() + 1);
            self.prefill.retain(|&p| p != id);
        } else {
            let generated = (self.iter - seq.decode_start) as u32;
            self.leave_decoding(&seq, generated);
            self.finish.retain(|Reverse((_, f))| *f != id);
            job.emitted += generated;
        }
        self.release(id);
        self.preemptions += 1;
        job.preemptions = job.preemptions.saturating_add(1);
        // A lone sequence that does not fit cannot progress: drop it, as the
        // preemption limit would.
        if job.preemptions > self.max_preemptions || self.live == 0 {
            self.exits.push((job, Exit::Dropped(now)));
        } else {
            self.waiting.push_front(job);
        }
    }

    fn slab_live(&self) -> impl Iterator<Item = (u32, &Running)> {
        let prefilling = self.prefill.iter().map(|&id| (id, &self.slab[id as usize]));
        let decoding = self
            .finish
            .iter()
            .map(|Reverse((_, id))| (*id, &self.slab[*id as usize]));
        prefilling.chain(decoding)
    }
}

/// The class whose sequences cross a block boundary in iteration `i`.
fn crossing_class(i: u64) -> usize {
    ((16 - i % 16) % 16) as usize
}

fn finished(mut job: Job) -> Job {
    job.emitted = job.output;
    job
}

impl Job {
    /// Tokens a run prefills: the prompt and what earlier runs generated.
    fn context(&self) -> u32 {
        self.prompt + self.emitted
    }

    /// Tokens still to generate.
    fn remaining(&self) -> u32 {
        self.output - self.emitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Batch, SeqId};
    use crate::gpu::GpuKind;

    fn instance(
        profile: &GpuProfile,
        kind: GpuKind,
        window: u32,
        max_seqs: Option<u32>,
        max_preemptions: u16,
    ) -> Instance {
        let slots = Instance::slots_for(profile, window, max_seqs);
        let watts = Instance::watts_table(&kind.power(), 1, slots);
        Instance::new(profile, watts, window, max_seqs, max_preemptions)
    }

    fn job(arrival_ms: f64, prompt: u32, output: u32) -> Job {
        Job {
            arrival_ms,
            admitted_ms: f64::NAN,
            first_token_ms: f64::NAN,
            prompt,
            output,
            emitted: 0,
            preemptions: 0,
            measured: true,
        }
    }

    /// Runs an instance until idle: (completion time, first token time, emitted) per job.
    fn drain(inst: &mut Instance, mut end: Option<f64>) -> Vec<(f64, f64, u32)> {
        let mut out = Vec::new();
        while let Some(t) = end {
            inst.end_step();
            for (job, exit) in inst.exits.drain(..) {
                if let Exit::Completed(at) = exit {
                    out.push((at, job.first_token_ms, job.emitted));
                }
            }
            end = inst.begin(t);
        }
        out
    }

    #[test]
    fn macro_steps_match_the_iteration_by_iteration_batch() {
        // The same jobs, all present at time 0, through Batch (one iteration at a
        // time) and through Instance (many at once): same first-token and finish times.
        let profile = GpuKind::A10g.profile();
        let jobs = [
            (3000, 40),
            (10, 200),
            (700, 1),
            (256, 17),
            (5000, 90),
            (1, 300),
        ];
        let mut batch = Batch::new(profile, 8192);
        for (i, (p, o)) in jobs.iter().enumerate() {
            batch.admit(SeqId(i as u64), *p, *o);
        }
        let mut clock = 0.0;
        let mut first = vec![0.0; jobs.len()];
        let mut done = vec![0.0; jobs.len()];
        while let Some(it) = batch.step() {
            clock += it.duration_ms;
            for (id, index) in it.tokens {
                if index == 0 {
                    first[id.0 as usize] = clock;
                }
            }
            for id in it.finished {
                done[id.0 as usize] = clock;
            }
        }
        let mut inst = instance(&profile, GpuKind::A10g, 8192, None, 8);
        inst.waiting
            .extend(jobs.iter().map(|(p, o)| job(0.0, *p, *o)));
        let start = inst.begin(0.0);
        let mut results = drain(&mut inst, start);
        assert_eq!(results.len(), jobs.len());
        results.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut expected: Vec<(f64, f64)> = done.iter().copied().zip(first).collect();
        expected.sort_by(|a, b| a.0.total_cmp(&b.0));
        for ((at, first, _), (want_at, want_first)) in results.iter().zip(&expected) {
            assert!((at - want_at).abs() < 1e-6, "{at} vs {want_at}");
            assert!((first - want_first).abs() < 1e-6, "{first} vs {want_first}");
        }
        assert_eq!(inst.blocks_used(), 0);
        assert!(inst.sum_ctx.abs() < 1e-6);
    }

    #[test]
    fn an_arrival_joins_at_the_end_of_the_iteration_in_progress() {
        let profile = GpuKind::H100.profile();
        let mut inst = instance(&profile, GpuKind::H100, 8192, None, 8);
        // One iteration prefills the one-token prompt and gives the first token; the
        // next step runs the 999 others at once.
        let first = inst.enqueue(job(0.0, 1, 1000), 0.0).unwrap();
        assert!((first - profile.w_ms).abs() < 0.01, "{first}");
        inst.end_step();
        let end = inst.begin(first).unwrap();
        assert!(
            end > first + 999.0 * profile.w_ms,
            "one step to the end: {end}"
        );
        // 10.5 iterations in, a second job arrives: the step is cut after the 11th.
        let now = first + 10.5 * profile.w_ms;
        let cut = inst.enqueue(job(now, 1, 1), now).unwrap();
        let mut expected = first;
        for i in 0..11 {
            expected += profile.iteration_ms(1, 2.0 + f64::from(i));
        }
        assert!((cut - expected).abs() < 1e-9, "{cut} vs {expected}");
        let done = drain(&mut inst, Some(cut));
        assert_eq!(done.len(), 2);
        // The short job's first token is the end of its one iteration after the cut.
        let short = done.iter().find(|d| d.2 == 1).unwrap();
        assert!(
            short.1 > cut && short.1 < cut + profile.w_ms + 1.0,
            "{short:?} {cut} {done:?}"
        );
    }

    #[test]
    fn overcommitted_kv_preempts_the_newest_and_everything_still_finishes() {
        // 64 sequences allowed where the cache holds about 8 of their full lengths.
        let mut profile = GpuKind::A100.profile();
        profile.kv_blocks = 8 * 4096 / 16;
        let mut inst = instance(&profile, GpuKind::A100, 4096, Some(64), 50);
        for _ in 0..40 {
            inst.waiting.push_back(job(0.0, 100, 3900));
        }
        let start = inst.begin(0.0);
        let done = drain(&mut inst, start);
        assert_eq!(done.len(), 40);
        assert!(
            done.iter().all(|d| d.2 == 3900),
            "every token generated once"
        );
        assert!(inst.preemptions > 0);
        assert_eq!(inst.blocks_used(), 0);
        assert_eq!(inst.live, 0);
    }

    #[test]
    fn the_preemption_limit_drops_instead_of_livelocking() {
        let mut profile = GpuKind::A100.profile();
        profile.kv_blocks = 2 * 4096 / 16;
        let mut inst = instance(&profile, GpuKind::A100, 4096, Some(64), 0);
        for _ in 0..10 {
            inst.waiting.push_back(job(0.0, 100, 3900));
        }
        let mut end = inst.begin(0.0);
        let (mut completed, mut dropped) = (0, 0);
        while let Some(t) = end {
            inst.end_step();
            end = inst.begin(t);
            for (_, exit) in inst.exits.drain(..) {
                match exit {
                    Exit::Completed(_) => completed += 1,
                    Exit::Dropped(_) => dropped += 1,
                }
            }
        }
        assert_eq!(completed + dropped, 10);
        assert!(dropped > 0 && completed > 0, "{completed} {dropped}");
    }
}
