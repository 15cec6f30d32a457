//! The in-process cache: exact keys in a hash map, question vectors per partition:
//! scanned while the partition is small, in its own HNSW graph (usearch) once it is
//! large. Bounded by entries and bytes with least-recently-used eviction.

use super::{CacheStore, CachedAnswer, Hit, Key};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use switchyard_wire::hash::{FNV_OFFSET, fnv1a};

/// A partition with more vectors than this gets its own graph (a scan of fewer costs
/// less than a graph walk); one that falls to half of it goes back to scans.
const SCAN_AT_MOST: usize = 256;

/// Neighbours asked of a graph per search (the best live one is then checked against
/// the threshold).
const GRAPH_NEIGHBOURS: usize = 8;

/// Bytes booked per entry besides its texts and vector (maps, the graph's links).
const ENTRY_OVERHEAD: usize = 256;

/// The in-process cache backend.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    max_entries: usize,
    max_bytes: usize,
}

struct Inner {
    entries: HashMap<u64, Entry>,
    /// (partition, question hash) → entry id.
    exact: HashMap<(u64, u64), u64>,
    /// The entries with a vector, per partition.
    partitions: HashMap<u64, Part>,
    /// Last use → entry id, oldest first.
    lru: BTreeMap<u64, u64>,
    tick: u64,
    next_id: u64,
    bytes: usize,
    /// The length of every vector: the first one's.
    dimensions: Option<usize>,
}

/// The vectors of one partition.
#[derive(Default)]
struct Part {
    members: HashSet<u64>,
    /// Made when the partition outgrows scans.
    graph: Option<Graph>,
}

struct Graph {
    index: usearch::Index,
    /// Vectors removed from it since it was built (usearch keeps their slots).
    removed: usize,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("entries", &self.entries.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

struct Entry {
    partition: u64,
    question_hash: u64,
    question: Box<str>,
    /// Unit length.
    vector: Option<Box<[f32]>>,
    answer: Arc<CachedAnswer>,
    expires: Instant,
    tick: u64,
    bytes: usize,
}

impl MemoryStore {
    /// A store of at most `max_entries` entries and about `max_bytes` bytes.
    pub fn new(max_entries: usize, max_bytes: usize) -> MemoryStore {
        MemoryStore {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                exact: HashMap::new(),
                partitions: HashMap::new(),
                lru: BTreeMap::new(),
                tick: 0,
                next_id: 0,
                bytes: 0,
                dimensions: None,
            }),
            max_entries: max_entries.max(1),
            max_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic under the lock leaves maps that are still consistent enough to read.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes booked for the entries held.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

fn question_hash(question: &str) -> u64 {
    fnv1a(question.as_bytes(), FNV_OFFSET)
}

/// `v` scaled to unit length (`None` for a zero or non-finite vector).
fn unit(v: &[f32]) -> Option<Box<[f32]>> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    (norm.is_finite() && norm > 0.0).then(|| v.iter().map(|x| x / norm).collect())
}

/// A vector's signs, one bit per dimension (what the graph keeps).
fn bits(v: &[f32]) -> Vec<usearch::b1x8> {
    let mut out = vec![usearch::b1x8(0); v.len().div_ceil(8)];
    for (i, x) in v.iter().enumerate() {
        if *x > 0.0 {
            out[i / 8].0 |= 1 << (i % 8);
        }
    }
    out
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl Graph {
    /// A graph of `vectors` (unit length: inner product is cosine similarity).
    fn build<'a>(
        dimensions: usize,
        vectors: impl ExactSizeIterator<Item = (u64, &'a [f32])>,
    ) -> Option<Graph> {
        let options = usearch::IndexOptions {
            dimensions,
            // The graph keeps each vector's signs, one bit per dimension, and walks by
            // Hamming distance (a near copy of a question differs in few signs); the
            // nearest it finds are scored again on the exact vectors.
            metric: usearch::MetricKind::Hamming,
            quantization: usearch::ScalarKind::B1,
            ..Default::default()
        };
        let index = usearch::Index::new(&options).ok()?;
        index.reserve((vectors.len() * 2).max(64)).ok()?;
        for (id, v) in vectors {
            index.add(id, bits(v).as_slice()).ok()?;
        }
        Some(Graph { index, removed: 0 })
    }

    fn add(&self, id: u64, vector: &[f32]) -> bool {
        let index = &self.index;
        if index.size() + 1 > index.capacity() && index.reserve(index.capacity() * 2).is_err() {
            return false;
        }
        index.add(id, bits(vector).as_slice()).is_ok()
    }
}

impl Part {
    /// Adds a member; builds the graph when the partition outgrows scans.
    fn add(&mut self, id: u64, vector: &[f32], entries: &HashMap<u64, Entry>) -> bool {
        match &mut self.graph {
            Some(graph) if !graph.add(id, vector) => return false,
            Some(_) => {}
            None if self.members.len() + 1 > SCAN_AT_MOST => {
                let vectors: Vec<(u64, &[f32])> = self
                    .members
                    .iter()
                    .filter_map(|m| Some((*m, entries.get(m)?.vector.as_deref()?)))
                    .chain([(id, vector)])
                    .collect();
                self.graph = Graph::build(vector.len(), vectors.into_iter());
                if self.graph.is_none() {
                    return false;
                }
            }
            None => {}
        }
        self.members.insert(id);
        true
    }

    /// Removes a member; rebuilds the graph once removed slots outnumber live ones,
    /// and drops it when the partition is small again.
    fn remove(&mut self, id: u64, entries: &HashMap<u64, Entry>) {
        self.members.remove(&id);
        let Some(graph) = &mut self.graph else {
            return;
        };
        if graph.index.remove(id).is_ok() {
            graph.removed += 1;
        }
        if self.members.len() < SCAN_AT_MOST / 2 {
            self.graph = None;
        } else if graph.removed > self.members.len() {
            let dimensions = graph.index.dimensions();
            let vectors: Vec<(u64, &[f32])> = self
                .members
                .iter()
                .filter_map(|m| Some((*m, entries.get(m)?.vector.as_deref()?)))
                .collect();
            self.graph = Graph::build(dimensions, vectors.into_iter());
        }
    }
}

impl Inner {
    fn touch(&mut self, id: u64) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(entry) = self.entries.get_mut(&id) {
            self.lru.remove(&entry.tick);
            entry.tick = tick;
            self.lru.insert(tick, id);
        }
    }

    fn remove(&mut self, id: u64) {
        let Some(entry) = self.entries.remove(&id) else {
            return;
        };
        self.exact.remove(&(entry.partition, entry.question_hash));
        self.lru.remove(&entry.tick);
        self.bytes -= entry.bytes;
        if entry.vector.is_some()
            && let Some(part) = self.partitions.get_mut(&entry.partition)
        {
            part.remove(id, &self.entries);
            if part.members.is_empty() {
                self.partitions.remove(&entry.partition);
            }
        }
    }

    /// The most similar live question of `partition` to `query` (unit length).
    fn nearest(&self, partition: u64, query: &[f32], now: Instant) -> Option<(u64, f32)> {
        let part = self.partitions.get(&partition)?;
        let live = |id: &u64| self.entries.get(id).filter(|e| e.expires > now);
        match &part.graph {
            None => part
                .members
                .iter()
                .filter_map(|id| Some((*id, dot(live(id)?.vector.as_deref()?, query))))
                .max_by(|a, b| a.1.total_cmp(&b.1)),
            Some(graph) => {
                let found = graph
                    .index
                    .search(bits(query).as_slice(), GRAPH_NEIGHBOURS)
                    .ok()?;
                found
                    .keys
                    .iter()
                    .filter_map(|id| Some((*id, dot(live(id)?.vector.as_deref()?, query))))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
            }
        }
    }
}

impl CacheStore for MemoryStore {
    fn lookup(&self, key: &Key<'_>, threshold: Option<f32>) -> Option<Hit> {
        let now = Instant::now();
        let mut inner = self.lock();
        let hash = question_hash(key.question);
        if let Some(&id) = inner.exact.get(&(key.partition, hash)) {
            match inner.entries.get(&id) {
                Some(e) if e.expires <= now => inner.remove(id),
                // A hash collision is not a hit.
                Some(e) if &*e.question == key.question => {
                    let answer = Arc::clone(&e.answer);
                    inner.touch(id);
                    return Some(Hit {
                        answer,
                        similarity: 1.0,
                        exact: true,
                        id,
                    });
                }
                _ => {}
            }
        }
        let threshold = threshold?;
        let query = unit(key.vector?)?;
        let (id, similarity) = inner.nearest(key.partition, &query, now)?;
        if similarity < threshold {
            return None;
        }
        let answer = Arc::clone(&inner.entries.get(&id)?.answer);
        inner.touch(id);
        Some(Hit {
            answer,
            similarity,
            exact: false,
            id,
        })
    }

    fn insert(&self, key: &Key<'_>, answer: CachedAnswer, ttl: Duration) {
        let vector = key.vector.and_then(unit);
        let bytes = ENTRY_OVERHEAD
            + key.question.len()
            + answer.text.len()
            + vector.as_ref().map_or(0, |v| v.len() * 4);
        if bytes > self.max_bytes {
            return;
        }
        let now = Instant::now();
        let hash = question_hash(key.question);
        let mut inner = self.lock();
        if let Some(&old) = inner.exact.get(&(key.partition, hash)) {
            inner.remove(old);
        }
        while inner.entries.len() >= self.max_entries || inner.bytes + bytes > self.max_bytes {
            let Some((_, &oldest)) = inner.lru.iter().next() else {
                break;
            };
            inner.remove(oldest);
        }
        inner.next_id += 1;
        let id = inner.next_id;
        let vector = match vector {
            Some(v) if *inner.dimensions.get_or_insert(v.len()) == v.len() => {
                let Inner {
                    partitions,
                    entries,
                    ..
                } = &mut *inner;
                let part = partitions.entry(key.partition).or_default();
                part.add(id, &v, entries).then_some(v)
            }
            _ => None,
        };
        inner.tick += 1;
        let tick = inner.tick;
        inner.lru.insert(tick, id);
        inner.exact.insert((key.partition, hash), id);
        inner.bytes += bytes;
        inner.entries.insert(
            id,
            Entry {
                partition: key.partition,
                question_hash: hash,
                question: key.question.into(),
                vector,
                answer: Arc::new(answer),
                expires: now + ttl,
                tick,
                bytes,
            },
        );
    }

    fn remove(&self, id: u64) {
        self.lock().remove(id);
    }

    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &str) -> CachedAnswer {
        CachedAnswer {
            text: text.to_owned(),
            usage: None,
        }
    }

    fn key<'a>(partition: u64, question: &'a str, vector: Option<&'a [f32]>) -> Key<'a> {
        Key {
            partition,
            question,
            vector,
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn exact_and_semantic_hits_stay_in_their_partition() {
        let store = MemoryStore::new(100, 1 << 20);
        store.insert(
            &key(1, "capital of France?", Some(&[1.0, 0.0, 0.0])),
            answer("Paris"),
            HOUR,
        );
        let exact = store
            .lookup(&key(1, "capital of France?", None), None)
            .unwrap();
        assert!(exact.exact);
        assert_eq!(exact.answer.text, "Paris");
        // Another partition (tenant, route, conversation) never sees it.
        assert!(
            store
                .lookup(
                    &key(2, "capital of France?", Some(&[1.0, 0.0, 0.0])),
                    Some(0.5)
                )
                .is_none()
        );
        // A near vector hits at a threshold it meets, not above.
        let near = [0.95, 0.3122, 0.0];
        let hit = store
            .lookup(&key(1, "France's capital?", Some(&near)), Some(0.9))
            .unwrap();
        assert!(!hit.exact);
        assert!((hit.similarity - 0.95).abs() < 1e-3, "{}", hit.similarity);
        assert!(
            store
                .lookup(&key(1, "France's capital?", Some(&near)), Some(0.96))
                .is_none()
        );
        // Without a threshold only exact keys hit.
        assert!(
            store
                .lookup(&key(1, "France's capital?", Some(&near)), None)
                .is_none()
        );
        // An orthogonal question misses.
        assert!(
            store
                .lookup(&key(1, "other", Some(&[0.0, 1.0, 0.0])), Some(0.5))
                .is_none()
        );
        // A removed entry is found neither way; removing it again is harmless.
        store.remove(hit.id);
        store.remove(hit.id);
        assert!(
            store
                .lookup(&key(1, "capital of France?", None), None)
                .is_none()
        );
        assert!(
            store
                .lookup(&key(1, "France's capital?", Some(&near)), Some(0.9))
                .is_none()
        );
        assert!(store.is_empty());
        assert_eq!(store.bytes(), 0);
    }

    #[test]
    fn entries_expire() {
        let store = MemoryStore::new(100, 1 << 20);
        store.insert(&key(1, "q", Some(&[1.0, 0.0])), answer("a"), Duration::ZERO);
        assert!(
            store
                .lookup(&key(1, "q", Some(&[1.0, 0.0])), Some(0.5))
                .is_none()
        );
        store.insert(&key(1, "q", Some(&[1.0, 0.0])), answer("b"), HOUR);
        assert_eq!(
            store.lookup(&key(1, "q", None), None).unwrap().answer.text,
            "b"
        );
        assert_eq!(store.len(), 1, "a new answer replaces the old one");
    }

    #[test]
    fn the_least_recently_used_go_first_by_count_and_by_bytes() {
        let store = MemoryStore::new(3, 1 << 20);
        for q in ["a", "b", "c"] {
            store.insert(&key(1, q, None), answer(q), HOUR);
        }
        assert!(store.lookup(&key(1, "a", None), None).is_some());
        store.insert(&key(1, "d", None), answer("d"), HOUR);
        assert!(
            store.lookup(&key(1, "b", None), None).is_none(),
            "b was least recently used"
        );
        for q in ["a", "c", "d"] {
            assert!(store.lookup(&key(1, q, None), None).is_some(), "{q}");
        }
        // Bytes: room for two entries of 1,000 characters.
        let store = MemoryStore::new(100, 2 * (ENTRY_OVERHEAD + 1001) + 10);
        let long = "x".repeat(1000);
        for q in ["a", "b", "c"] {
            store.insert(&key(1, q, None), answer(&long), HOUR);
        }
        assert_eq!(store.len(), 2);
        assert!(store.bytes() <= 2 * (ENTRY_OVERHEAD + 1001) + 10);
        assert!(store.lookup(&key(1, "a", None), None).is_none());
        // An answer larger than the whole store is not kept, and evicts nothing.
        store.insert(&key(1, "huge", None), answer(&"y".repeat(10_000)), HOUR);
        assert_eq!(store.len(), 2);
    }

    /// Deterministic pseudo-random unit vectors.
    fn vectors(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                (0..dims)
                    .map(|_| {
                        state = switchyard_wire::hash::mix64(
                            state.wrapping_add(switchyard_wire::hash::GOLDEN_GAMMA),
                        );
                        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn large_partitions_are_searched_through_the_graph_and_churn_stays_bounded() {
        let store = MemoryStore::new(2_000, usize::MAX);
        let vs = vectors(6_000, 32, 7);
        for (i, v) in vs.iter().enumerate() {
            // Two partitions, interleaved: each has its own graph.
            store.insert(
                &key((i % 2) as u64, &format!("q{i}"), Some(v)),
                answer(&format!("a{i}")),
                HOUR,
            );
        }
        assert_eq!(store.len(), 2_000);
        let inner = store.lock();
        for part in inner.partitions.values() {
            let graph = part.graph.as_ref().unwrap();
            let live = graph.index.size() - graph.removed;
            assert_eq!(live, part.members.len());
            assert!(
                graph.index.capacity() <= 4_096,
                "the graph is rebuilt, not grown forever: {}",
                graph.index.capacity()
            );
        }
        drop(inner);
        // Each of the last entries is found by its own vector, in its own partition
        // (1,000 per partition: past the exact scan).
        for (i, v) in vs.iter().enumerate().skip(5_900) {
            let hit = store
                .lookup(&key((i % 2) as u64, "another wording", Some(v)), Some(0.99))
                .unwrap_or_else(|| panic!("entry {i} not found"));
            assert_eq!(hit.answer.text, format!("a{i}"));
            assert!(
                store
                    .lookup(
                        &key(((i + 1) % 2) as u64, "another wording", Some(v)),
                        Some(0.99)
                    )
                    .is_none()
            );
        }
    }
}
