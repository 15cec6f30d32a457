//! Drives a [`Batch`] in real time: one task, one iteration at a time.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use switchyard_fleet::{Admission, Batch, GpuProfile, SeqId};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What a request hears from the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenEvent {
    /// Token `index` (0 = first) was generated.
    Token(u32),
    /// The last token was generated.
    Finished,
}

pub(crate) struct Submit {
    pub prompt: u32,
    /// Prompt tokens already in the prefix cache.
    pub cached: u32,
    pub output: u32,
    pub events: mpsc::UnboundedSender<TokenEvent>,
}

/// Live gauges, read by `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Gauges {
    pub running: AtomicU64,
    pub waiting: AtomicU64,
    kv_usage_bits: AtomicU64,
    pub iterations: AtomicU64,
    pub generated_tokens: AtomicU64,
}

impl Gauges {
    pub fn kv_usage(&self) -> f64 {
        f64::from_bits(self.kv_usage_bits.load(Ordering::Relaxed))
    }

    fn set(&self, batch: &Batch) {
        self.running
            .store(batch.running() as u64, Ordering::Relaxed);
        self.waiting
            .store(batch.waiting() as u64, Ordering::Relaxed);
        self.kv_usage_bits
            .store(batch.kv_usage().to_bits(), Ordering::Relaxed);
    }
}

/// Starts the scheduler task; requests are submitted through the returned sender.
pub(crate) fn start(
    profile: GpuProfile,
    context_window: u32,
    gauges: Arc<Gauges>,
) -> mpsc::UnboundedSender<Submit> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(Batch::new(profile, context_window), rx, gauges));
    tx
}

async fn run(mut batch: Batch, mut inbox: mpsc::UnboundedReceiver<Submit>, gauges: Arc<Gauges>) {
    let mut listeners: HashMap<SeqId, mpsc::UnboundedSender<TokenEvent>> = HashMap::new();
    let mut next_id = 0u64;
    let mut clock = Instant::now();
    let mut admit = |batch: &mut Batch, submit: Submit, listeners: &mut HashMap<_, _>| {
        let id = SeqId(next_id);
        next_id += 1;
        if batch.admit_cached(id, submit.prompt, submit.cached, submit.output) == Admission::Queued
        {
            listeners.insert(id, submit.events);
        }
        // A refused sequence drops its sender: the request sees the channel close.
    };
    loop {
        if batch.is_idle() {
            match inbox.recv().await {
                Some(submit) => admit(&mut batch, submit, &mut listeners),
                None => return,
            }
            clock = Instant::now();
        }
        while let Ok(submit) = inbox.try_recv() {
            admit(&mut batch, submit, &mut listeners);
        }
        let Some(iteration) = batch.step() else {
            continue;
        };
        gauges.set(&batch);
        gauges.iterations.fetch_add(1, Ordering::Relaxed);
        clock += Duration::from_secs_f64(iteration.duration_ms / 1000.0);
        let now = Instant::now();
        if clock > now {
            tokio::time::sleep_until(clock).await;
        } else if now - clock > Duration::from_millis(50) {
            // Fell far behind (a paused process): do not burst to catch up.
            clock = now;
        }
        gauges
            .generated_tokens
            .fetch_add(iteration.tokens.len() as u64, Ordering::Relaxed);
        for (id, index) in iteration.tokens {
            let gone = listeners
                .get(&id)
                .is_none_or(|l| l.send(TokenEvent::Token(index)).is_err());
            if gone {
                listeners.remove(&id);
                batch.abort(id);
            }
        }
        for id in iteration.finished {
            if let Some(listener) = listeners.remove(&id) {
                let _ = listener.send(TokenEvent::Finished);
            }
        }
        gauges.set(&batch);
    }
}
