//! Embedding workers: dedicated threads that run the model, so that a request's
//! cheap signals run while its embedding is computed, a signal can stop waiting at its
//! deadline, and concurrent requests can share one forward pass.
//!
//! A worker takes one job, then whatever else is already queued (up to `max_batch`),
//! and embeds them together. The queue is bounded: when it is full a request gets an
//! error at once (its signals' `on_error` rule decides) instead of waiting behind it.

use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use switchyard_embed::Embedder;

/// The answer to one embedding job.
pub type Reply = Result<Vec<f32>, String>;

struct Job {
    text: String,
    reply: Sender<Reply>,
}

/// A pool of embedding threads over one model.
#[derive(Debug)]
pub struct EmbedWorkers {
    queue: SyncSender<Job>,
    threads: usize,
    max_batch: usize,
}

impl EmbedWorkers {
    /// Starts `threads` workers that batch up to `max_batch` queued texts, with room for
    /// `queue` waiting texts. The threads end when the pool is dropped.
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
        Ok(EmbedWorkers {
            queue: tx,
            threads,
            max_batch,
        })
    }

    /// Queues `text`; the receiver yields its vector. A full queue answers at once
    /// with an error.
    pub fn submit(&self, text: &str) -> Receiver<Reply> {
        let (reply, rx) = mpsc::channel();
        let job = Job {
            text: text.to_owned(),
            reply,
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
        rx
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Most texts embedded in one pass.
    pub fn max_batch(&self) -> usize {
        self.max_batch
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
