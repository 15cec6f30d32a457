//! The global event queue: one pending time per actor (each instance's next step end,
//! each arrival source's next arrival) in an indexed binary heap, so that rescheduling
//! an actor replaces its entry instead of leaving a stale one behind. The heap holds
//! `(time, actor)` pairs inline, so comparisons touch no other memory. Every operation
//! is O(log n) in the number of actors; ties are broken by actor id, so a run is
//! deterministic. The usual step is to [`EventQueue::peek`] the earliest actor, handle
//! it, and reschedule (or remove) it in place: one sift instead of a pop and a push.

/// Children per heap node. A 4-ary heap (half as deep) measured 3% slower here.
const ARITY: usize = 2;

/// An indexed min-heap of `(time, actor)`.
#[derive(Debug, Clone)]
pub(crate) struct EventQueue {
    heap: Vec<(f64, u32)>,
    /// Position of each actor in `heap`, or `NONE`.
    position: Vec<u32>,
}

const NONE: u32 = u32::MAX;

fn less(a: (f64, u32), b: (f64, u32)) -> bool {
    a.0 < b.0 || (a.0 == b.0 && a.1 < b.1)
}

impl EventQueue {
    /// A queue for actors `0..actors`, none pending.
    pub(crate) fn new(actors: usize) -> EventQueue {
        EventQueue {
            heap: Vec::with_capacity(actors),
            position: vec![NONE; actors],
        }
    }

    /// The earliest pending `(time, actor)`.
    pub(crate) fn peek(&self) -> Option<(f64, u32)> {
        self.heap.first().copied()
    }

    /// Removes and returns the earliest pending `(time, actor)`.
    #[cfg(test)]
    pub(crate) fn pop(&mut self) -> Option<(f64, u32)> {
        let top = self.peek()?;
        self.remove(top.1);
        Some(top)
    }

    /// Sets (or replaces) the pending time of `actor`.
    pub(crate) fn schedule(&mut self, actor: u32, at: f64) {
        let pos = self.position[actor as usize];
        if pos == NONE {
            self.heap.push((at, actor));
            let last = self.heap.len() - 1;
            self.position[actor as usize] = last as u32;
            self.sift_up(last);
        } else {
            let pos = pos as usize;
            let earlier = at < self.heap[pos].0;
            self.heap[pos].0 = at;
            if earlier {
                self.sift_up(pos);
            } else {
                self.sift_down(pos);
            }
        }
    }

    /// Forgets any pending time of `actor`.
    pub(crate) fn remove(&mut self, actor: u32) {
        let pos = self.position[actor as usize];
        if pos == NONE {
            return;
        }
        let pos = pos as usize;
        let last = self.heap.len() - 1;
        self.heap.swap(pos, last);
        self.position[self.heap[pos].1 as usize] = pos as u32;
        self.heap.pop();
        self.position[actor as usize] = NONE;
        if pos < self.heap.len() {
            let moved = self.heap[pos].1;
            self.sift_up(pos);
            self.sift_down(self.position[moved as usize] as usize);
        }
    }

    /// Whether `actor` has a pending time.
    #[cfg(test)]
    pub(crate) fn is_scheduled(&self, actor: u32) -> bool {
        self.position[actor as usize] != NONE
    }

    fn sift_up(&mut self, mut pos: usize) {
        let item = self.heap[pos];
        while pos > 0 {
            let parent = (pos - 1) / ARITY;
            if !less(item, self.heap[parent]) {
                break;
            }
            self.heap[pos] = self.heap[parent];
            self.position[self.heap[pos].1 as usize] = pos as u32;
            pos = parent;
        }
        self.heap[pos] = item;
        self.position[item.1 as usize] = pos as u32;
    }

    fn sift_down(&mut self, mut pos: usize) {
        let n = self.heap.len();
        let item = self.heap[pos];
        loop {
            let first = ARITY * pos + 1;
            if first >= n {
                break;
            }
            let mut child = first;
            for c in first + 1..(first + ARITY).min(n) {
                if less(self.heap[c], self.heap[child]) {
                    child = c;
                }
            }
            if !less(self.heap[child], item) {
                break;
            }
            self.heap[pos] = self.heap[child];
            self.position[self.heap[pos].1 as usize] = pos as u32;
            pos = child;
        }
        self.heap[pos] = item;
        self.position[item.1 as usize] = pos as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::SmallRng};

    #[test]
    fn pops_in_time_order_with_rescheduling_and_removal() {
        let mut rng = SmallRng::seed_from_u64(3);
        let n = 200;
        let mut q = EventQueue::new(n);
        let mut expected = vec![None; n];
        for _ in 0..5_000 {
            let actor = rng.random_range(0..n);
            match rng.random_range(0..3) {
                0 | 1 => {
                    let t = f64::from(rng.random_range(0..1000u32));
                    q.schedule(actor as u32, t);
                    expected[actor] = Some(t);
                }
                _ => {
                    q.remove(actor as u32);
                    expected[actor] = None;
                }
            }
            assert_eq!(q.is_scheduled(actor as u32), expected[actor].is_some());
        }
        let mut reference: Vec<(f64, u32)> = expected
            .iter()
            .enumerate()
            .filter_map(|(a, t)| t.map(|t| (t, a as u32)))
            .collect();
        reference.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        assert_eq!(q.peek(), reference.first().copied());
        let mut popped = Vec::new();
        while let Some(e) = q.pop() {
            popped.push(e);
        }
        assert_eq!(popped, reference);
    }
}
