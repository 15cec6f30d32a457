//! Continuous batching on one instance, without a clock.
//!
//! A [`Batch`] holds the running sequences (at most `slots`, each holding KV blocks
//! for its prompt and output) and a FIFO of waiting ones. [`Batch::step`] runs one
//! iteration: admit waiting sequences while slots and KV blocks allow, spend the
//! prefill chunk on prompts in arrival order, give every fully prefilled sequence one
//! decoded token, and report how long the iteration took under the profile. A
//! sequence's first token comes out of the iteration that finishes its prefill, so
//! TTFT = queueing + prefill iterations, as on a real engine.

use crate::gpu::GpuProfile;
use std::collections::VecDeque;

/// Identifies a sequence within one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeqId(pub u64);

/// Why a sequence could not be admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Queued; it will run when a slot frees.
    Queued,
    /// Prompt plus output exceed the context window.
    TooLong {
        /// Prompt plus requested output tokens.
        tokens: u32,
        /// The instance's context window.
        context_window: u32,
    },
}

#[derive(Debug, Clone)]
struct Seq {
    id: SeqId,
    prompt: u32,
    prefilled: u32,
    output: u32,
    generated: u32,
    blocks: u32,
}

impl Seq {
    fn context(&self) -> u32 {
        self.prefilled + self.generated
    }
}

/// What one iteration did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Iteration {
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// Sequences in the batch during the iteration.
    pub running: usize,
    /// Sequences that emitted one token at its end, with that token's index (0 = first).
    pub tokens: Vec<(SeqId, u32)>,
    /// Sequences that emitted their last token and left the batch.
    pub finished: Vec<SeqId>,
}

/// One instance's running and waiting sequences.
#[derive(Debug, Clone)]
pub struct Batch {
    profile: GpuProfile,
    context_window: u32,
    slots: usize,
    kv_blocks_used: u32,
    running: Vec<Seq>,
    waiting: VecDeque<Seq>,
}

impl Batch {
    /// An idle instance with `profile` serving a `context_window`-token model.
    pub fn new(profile: GpuProfile, context_window: u32) -> Self {
        let slots = profile.slots(context_window) as usize;
        Batch {
            profile,
            context_window,
            slots,
            kv_blocks_used: 0,
            running: Vec::with_capacity(slots),
            waiting: VecDeque::new(),
        }
    }

    /// Queues a sequence of `prompt` tokens that will generate `output` tokens (≥ 1).
    pub fn admit(&mut self, id: SeqId, prompt: u32, output: u32) -> Admission {
        self.admit_cached(id, prompt, 0, output)
    }

    /// Queues a sequence whose first `cached` prompt tokens are already in the KV cache
    /// (a prefix-cache hit): only the rest is prefilled. At least one prompt token is
    /// always computed.
    pub fn admit_cached(&mut self, id: SeqId, prompt: u32, cached: u32, output: u32) -> Admission {
        let output = output.max(1);
        let tokens = prompt.saturating_add(output);
        if tokens > self.context_window {
            return Admission::TooLong {
                tokens,
                context_window: self.context_window,
            };
        }
        self.waiting.push_back(Seq {
            id,
            prompt,
            prefilled: cached.min(prompt.saturating_sub(1)),
            output,
            generated: 0,
            blocks: GpuProfile::blocks_for(tokens),
        });
        Admission::Queued
    }

    /// Removes a sequence wherever it is (the client went away). Returns whether it was found.
    pub fn abort(&mut self, id: SeqId) -> bool {
        if let Some(pos) = self.running.iter().position(|s| s.id == id) {
            let seq = self.running.swap_remove(pos);
            self.kv_blocks_used -= seq.blocks;
            // Keep arrival order for prefill fairness.
            self.running.sort_by_key(|s| s.id);
            return true;
        }
        if let Some(pos) = self.waiting.iter().position(|s| s.id == id) {
            self.waiting.remove(pos);
            return true;
        }
        false
    }

    /// Runs one iteration; `None` when there is nothing to run.
    pub fn step(&mut self) -> Option<Iteration> {
        self.admit_waiting();
        if self.running.is_empty() {
            return None;
        }
        let running = self.running.len();
        let mean_len = self
            .running
            .iter()
            .map(|s| f64::from(s.context()))
            .sum::<f64>()
            / running as f64;
        let duration_ms = self.profile.iteration_ms(running, mean_len);

        let mut budget = self.profile.prefill_chunk;
        let mut tokens = Vec::with_capacity(running);
        for seq in &mut self.running {
            if seq.prefilled < seq.prompt {
                if budget == 0 {
                    continue;
                }
                let take = budget.min(seq.prompt - seq.prefilled);
                seq.prefilled += take;
                budget -= take;
                if seq.prefilled < seq.prompt {
                    continue;
                }
            }
            tokens.push((seq.id, seq.generated));
            seq.generated += 1;
        }
        let mut finished = Vec::new();
        let mut freed = 0;
        self.running.retain(|s| {
            if s.generated >= s.output {
                finished.push(s.id);
                freed += s.blocks;
                false
            } else {
                true
            }
        });
        self.kv_blocks_used -= freed;
        Some(Iteration {
            duration_ms,
            running,
            tokens,
            finished,
        })
    }

    fn admit_waiting(&mut self) {
        while self.running.len() < self.slots {
            let Some(front) = self.waiting.front() else {
                break;
            };
            if self.kv_blocks_used + front.blocks > self.profile.kv_blocks {
                break;
            }
            if let Some(seq) = self.waiting.pop_front() {
                self.kv_blocks_used += seq.blocks;
                self.running.push(seq);
            }
        }
    }

    /// Sequences in the batch.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Sequences waiting for a slot.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Concurrent sequences this instance runs.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Fraction of KV blocks held by running sequences, in [0, 1].
    pub fn kv_usage(&self) -> f64 {
        f64::from(self.kv_blocks_used) / f64::from(self.profile.kv_blocks.max(1))
    }

    /// Whether nothing is running or waiting.
    pub fn is_idle(&self) -> bool {
        self.running.is_empty() && self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::GpuKind;

    type Times = Vec<(SeqId, f64)>;

    /// Runs until idle: the clock, first-token times and finish times.
    fn run_to_completion(batch: &mut Batch) -> (f64, Times, Times) {
        let mut clock = 0.0;
        let mut first = Vec::new();
        let mut done = Vec::new();
        while let Some(it) = batch.step() {
            clock += it.duration_ms;
            for (id, index) in it.tokens {
                if index == 0 {
                    first.push((id, clock));
                }
            }
            for id in it.finished {
                done.push((id, clock));
            }
        }
        (clock, first, done)
    }

    #[test]
    fn ttft_counts_prefill_chunks() {
        let profile = GpuKind::A10g.profile();
        let mut batch = Batch::new(profile, 8192);
        // 1000 prompt tokens at 256 per iteration: four iterations to the first token.
        assert_eq!(batch.admit(SeqId(1), 1000, 3), Admission::Queued);
        let (_, first, done) = run_to_completion(&mut batch);
        assert_eq!(first.len(), 1);
        // Each iteration costs by the context held when it starts.
        let expected: f64 = [0.0, 256.0, 512.0, 768.0]
            .iter()
            .map(|len| profile.iteration_ms(1, *len))
            .sum();
        assert!(
            (first[0].1 - expected).abs() < 1e-9,
            "{} vs {expected}",
            first[0].1
        );
        assert_eq!(done.len(), 1);
        assert!(batch.is_idle());
    }

    #[test]
    fn a_cached_prefix_skips_its_prefill() {
        let profile = GpuKind::A10g.profile();
        let ttft = |cached| {
            let mut batch = Batch::new(profile, 8192);
            batch.admit_cached(SeqId(1), 3000, cached, 2);
            run_to_completion(&mut batch).1[0].1
        };
        let cold = ttft(0);
        let warm = ttft(2900);
        // 3,000 tokens take 12 chunks of 256; with 2,900 cached, one chunk remains.
        assert!(cold > 11.0 * profile.w_ms, "{cold}");
        assert!(warm < 2.0 * profile.w_ms + 5.0, "{warm}");
        let whole = ttft(5000);
        assert!(
            whole < 2.0 * profile.w_ms + 5.0,
            "one token is still computed: {whole}"
        );
    }

    #[test]
    fn waiting_sequences_queue_behind_full_slots() {
        let profile = GpuKind::H100.profile();
        let mut batch = Batch::new(profile, 65_536);
        assert_eq!(batch.slots(), 16);
        for i in 0..20 {
            batch.admit(SeqId(i), 10, 100);
        }
        let it = batch.step().unwrap();
        assert_eq!(it.running, 16);
        assert_eq!(batch.waiting(), 4);
        assert!(batch.kv_usage() > 0.0);
        let (_, _, done) = run_to_completion(&mut batch);
        assert_eq!(done.len(), 20);
        assert_eq!(batch.kv_usage(), 0.0);
    }

    #[test]
    fn too_long_is_refused_and_abort_frees_the_slot() {
        let mut batch = Batch::new(GpuKind::A100.profile(), 4096);
        assert!(matches!(
            batch.admit(SeqId(1), 4000, 200),
            Admission::TooLong { .. }
        ));
        batch.admit(SeqId(2), 10, 50);
        batch.step();
        assert_eq!(batch.running(), 1);
        assert!(batch.abort(SeqId(2)));
        assert!(!batch.abort(SeqId(2)));
        assert!(batch.is_idle());
        assert_eq!(batch.kv_usage(), 0.0);
    }

    #[test]
    fn one_instance_saturates_at_the_capacity_the_iteration_model_implies() {
        // Fill every slot with decode-only work: throughput is slots tokens per iteration,
        // and an iteration costs W + H·(L/8192)·slots, not 1/slots of it.
        let profile = GpuKind::A100.profile();
        let mut batch = Batch::new(profile, 8192);
        let slots = batch.slots() as u64;
        for i in 0..slots * 3 {
            batch.admit(SeqId(i), 1, 64);
        }
        let (clock, _, done) = run_to_completion(&mut batch);
        assert_eq!(done.len() as u64, slots * 3);
        let tokens = (slots * 3 * 64) as f64;
        let rate = tokens / (clock / 1000.0);
        let bound = slots as f64 / (profile.w_ms / 1000.0);
        assert!(rate < bound, "rate {rate} exceeds the W-only bound {bound}");
        assert!(rate > bound * 0.5, "rate {rate} far below {bound}");
    }

    proptest::proptest! {
        #[test]
        fn every_admitted_sequence_finishes_with_its_tokens(
            seqs in proptest::collection::vec((1u32..3000, 1u32..40), 1..60)
        ) {
            let mut batch = Batch::new(GpuKind::A10g.profile(), 4096);
            for (i, (p, o)) in seqs.iter().enumerate() {
                batch.admit(SeqId(i as u64), *p, *o);
            }
            let mut counts = vec![0u32; seqs.len()];
            let mut finished = 0;
            while let Some(it) = batch.step() {
                proptest::prop_assert!(it.running <= batch.slots());
                for (id, index) in it.tokens {
                    proptest::prop_assert_eq!(index, counts[id.0 as usize]);
                    counts[id.0 as usize] += 1;
                }
                finished += it.finished.len();
            }
            proptest::prop_assert_eq!(finished, seqs.len());
            for (i, (_, o)) in seqs.iter().enumerate() {
                proptest::prop_assert_eq!(counts[i], *o);
            }
        }
    }
}
