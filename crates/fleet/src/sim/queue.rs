//! The global event queue: one pending time per actor (each instance's next step end,
//! each arrival source's next arrival) in an indexed binary heap, so that rescheduling
//! an actor replaces its entry instead of leaving a stale one behind. Every operation
//! is O(log n) in the number of actors; ties are broken by actor id, so a run is
//! deterministic.

/// An indexed min-heap of `(time, actor)`.
#[derive(Debug, Clone)]
pub(crate) struct EventQueue {
    /// Heap of actor ids, ordered by `time[actor]`, then id.
    heap: Vec<u32>,
    /// Position of each actor in `heap`, or `NONE`.
    position: Vec<u32>,
    /// Pending time of each actor (meaningful while it is in the heap).
    time: Vec<f64>,
}

const NONE: u32 = u32::MAX;

impl EventQueue {
    /// A queue for actors `0..actors`, none pending.
    pub(crate) fn new(actors: usize) -> EventQueue {
        EventQueue {
            heap: Vec::with_capacity(actors),
            position: vec![NONE; actors],
            time: vec![f64::INFINITY; actors],
        }
    }

    /// The earliest pending `(time, actor)`.
    #[cfg(test)]
    pub(crate) fn peek(&self) -> Option<(f64, u32)> {
        self.heap.first().map(|&a| (self.time[a as usize], a))
    }

    /// Removes and returns the earliest pending `(time, actor)`.
    pub(crate) fn pop(&mut self) -> Option<(f64, u32)> {
        let top = *self.heap.first()?;
        self.remove(top);
        Some((self.time[top as usize], top))
    }

    /// Sets (or replaces) the pending time of `actor`.
    pub(crate) fn schedule(&mut self, actor: u32, at: f64) {
        let a = actor as usize;
        self.time[a] = at;
        let pos = self.position[a];
        if pos == NONE {
            self.heap.push(actor);
            let last = self.heap.len() - 1;
            self.position[a] = last as u32;
            self.sift_up(last);
        } else {
            self.sift_up(pos as usize);
            self.sift_down(self.position[a] as usize);
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
        self.position[self.heap[pos] as usize] = pos as u32;
        self.heap.pop();
        self.position[actor as usize] = NONE;
        if pos < self.heap.len() {
            let moved = self.heap[pos];
            self.sift_up(pos);
            self.sift_down(self.position[moved as usize] as usize);
        }
    }

    /// Whether `actor` has a pending time.
    #[cfg(test)]
    pub(crate) fn is_scheduled(&self, actor: u32) -> bool {
        self.position[actor as usize] != NONE
    }

    fn less(&self, a: u32, b: u32) -> bool {
        let (ta, tb) = (self.time[a as usize], self.time[b as usize]);
        ta < tb || (ta == tb && a < b)
    }

    fn sift_up(&mut self, mut pos: usize) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if !self.less(self.heap[pos], self.heap[parent]) {
                break;
            }
            self.swap(pos, parent);
            pos = parent;
        }
    }

    fn sift_down(&mut self, mut pos: usize) {
        let n = self.heap.len();
        loop {
            let left = 2 * pos + 1;
            if left >= n {
                break;
            }
            let right = left + 1;
            let child = if right < n && self.less(self.heap[right], self.heap[left]) {
                right
            } else {
                left
            };
            if !self.less(self.heap[child], self.heap[pos]) {
                break;
            }
            self.swap(pos, child);
            pos = child;
        }
    }

    fn swap(&mut self, i: usize, j: usize) {
        self.heap.swap(i, j);
        self.position[self.heap[i] as usize] = i as u32;
        self.position[self.heap[j] as usize] = j as u32;
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
