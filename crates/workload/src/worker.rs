//! Embedding workers: dedicated threads that run the model, so that a request's
//! cheap signals run while its embedding is computed, a signal can stop waiting at its
//! deadline, and concurrent requests can share one forward pass.
//!
//! A worker takes one job, then whatever else is already queued (up to `max_batch`),
//! and embeds them together. The queue is bounded: when it is full a request gets an
//! error at once (its signals' `on_error` rule decides) instead of waiting behind it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use switchyard_embed::Embedder;

/// The answer to one embedding job.
pub type Reply = Result<Vec<f32>, String>;

struct Job {
    text: String,
    reply: Sender<Reply>,
    wanted: Arc<AtomicBool>,
}

/// A queued embedding. Dropping it unanswered withdraws the job: a worker that has
/// not started it skips it.
#[derive(Debug)]
pub struct Ticket {
    rx: Receiver<Reply>,
    wanted: Arc<AtomicBool>,
}

impl Ticket {
    /// Waits for the vector, until `deadline` at most (`None`: as long as it takes). A
    /// deadline already past is missed even if the vector happens to be ready, so a
    /// zero timeout means the same on a fast machine as on a slow one.
    pub fn wait(self, deadline: Option<Instant>) -> Reply {
        let waited = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => self.rx.recv_timeout(left),
                _ => Err(RecvTimeoutError::Timeout),
            },
            None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match waited {
            Ok(reply) => reply,
            Err(RecvTimeoutError::Timeout) => Err("the embedding missed the deadline".to_owned()),
            Err(RecvTimeoutError::Disconnected) => Err("the embedding workers stopped".to_owned()),
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.wanted.store(false, Ordering::Relaxed);
    }
}

/// A pool of embedding threads over one model; a clone is another handle on the same
/// threads.
#[derive(Debug, Clone)]
pub struct EmbedWorkers {
    queue: SyncSender<Job>,
}

impl EmbedWorkers {
    /// Starts `threads` workers that batch up to `max_batch` queued texts, with room for
    /// `queue` waiting texts. The threads end when the pool and all its clones are dropped.
    pub fn start(
        embedder: Arc<Embedder>,
        threads: usize,
        max_batch: usize,
        queue: usize,
    ) -> Result<EmbedWorkers, String> {
        if threads == 0 || max_batch == 0 || queue == 0 {
            return Err("threads, max_batch and queue must each be at least 1".to_owned());
        }
        let (tx, rx) = mpsc::sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let embedder = Arc::clone(&embedder);
            std::thread::Builder::new()
                .name(format!("switchyard-embed-{i}"))
                .spawn(move || work(&embedder, &rx, max_batch))
                .map_err(|e| format!("cannot start an embedding thread: {e}"))?;
        }
        Ok(EmbedWorkers { queue: tx })
    }

    /// Queues `text`; the ticket yields its vector. A full queue answers at once
    /// with an error.
    pub fn submit(&self, text: &str) -> Ticket {
        let (reply, rx) = mpsc::channel();
        let wanted = Arc::new(AtomicBool::new(true));
        let job = Job {
            text: text.to_owned(),
            reply,
            wanted: Arc::clone(&wanted),
        };
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => {
                let _ = job.reply.send(Err(
                    "the embedding queue is full (signals.model.queue)".to_owned()
                ));
            }
            Err(TrySendError::Disconnected(job)) => {
                let _ = job
                    .reply
                    .send(Err("the embedding workers stopped".to_owned()));
            }
        }
        Ticket { rx, wanted }
    }
}

fn work(embedder: &Embedder, rx: &Mutex<Receiver<Job>>, max_batch: usize) {
    loop {
        let jobs = {
            let Ok(rx) = rx.lock() else { return };
            let Ok(first) = rx.recv() else { return };
            let mut jobs = vec![first];
            while jobs.len() < max_batch {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            jobs
        };
        // Requests that stopped waiting (a deadline passed) are not worth a pass.
        let jobs: Vec<Job> = jobs
            .into_iter()
            .filter(|j| j.wanted.load(Ordering::Relaxed))
            .collect();
        if jobs.is_empty() {
            continue;
        }
        let texts: Vec<&str> = jobs.iter().map(|j| j.text.as_str()).collect();
        match embedder.embed_batch(&texts) {
            Ok(vectors) => {
                for (job, vector) in jobs.iter().zip(vectors) {
                    let _ = job.reply.send(Ok(vector));
                }
            }
            Err(e) => {
                for job in &jobs {
                    let _ = job.reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn model() -> Option<Arc<Embedder>> {
        let dir = std::env::var("SWITCHYARD_MODEL_DIR").ok()?;
        Embedder::load(std::path::Path::new(&dir), Default::default())
            .ok()
            .map(Arc::new)
    }

    #[test]
    fn bad_sizes_are_refused() {
        let Some(embedder) = model() else { return };
        assert!(EmbedWorkers::start(embedder, 0, 8, 8).is_err());
    }

    #[test]
    fn batches_answer_each_request_and_a_full_queue_fails_fast() {
        let Some(embedder) = model() else { return };
        let workers = EmbedWorkers::start(Arc::clone(&embedder), 1, 8, 2).unwrap();
        let alone = embedder.embed("a recipe for bread").unwrap();
        let tickets: Vec<Ticket> = (0..12)
            .map(|_| workers.submit("a recipe for bread"))
            .collect();
        let replies: Vec<Reply> = tickets.into_iter().map(|t| t.wait(None)).collect();
        let full = replies
            .iter()
            .filter(|r| r.as_ref().is_err_and(|e| e.contains("full")))
            .count();
        assert!(full > 0, "a queue of 2 overflows with 12 at once");
        for v in replies.iter().flatten() {
            let cos: f32 = v.iter().zip(&alone).map(|(a, b)| a * b).sum();
            assert!(cos > 0.999, "{cos}");
        }
        // A reply that is ready is returned even past the deadline, so keep the worker
        // busy with a long input (a full window, milliseconds) before asking.
        let busy = workers.submit(&"a long report on quarterly revenue ".repeat(400));
        let late = workers
            .submit("x")
            .wait(Some(Instant::now() + Duration::from_nanos(1)));
        assert!(late.is_err_and(|e| e.contains("deadline")));
        assert!(busy.wait(None).is_ok());
    }
}
