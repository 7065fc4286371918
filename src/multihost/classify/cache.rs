//! Classifications remembered per connection: by static query id (Diesel's `QueryId`,
//! never re-rendered) and by SQL text for everything else (`sql_query`, boxed queries, raw
//! SQL), so a statement seen before costs a hash of its text, not a re-scan.
//!
//! The text side is bounded: at most [`MAX_TEXTS`] texts and [`MAX_BYTES`] bytes of text
//! per connection, texts longer than [`MAX_TEXT`] are not kept, and the oldest text is
//! dropped first. A text is kept the second time it is seen (the first time only its key
//! is noted, in a ring of [`MAX_SEEN`] keys), so unique SQL (literals inlined) costs no
//! copy and never pushes out the texts that do repeat.
//!
//! The key of a text up to [`FULL_HASH`] bytes is a hash of all of it; of a longer text, a
//! hash of its length, its first and last bytes and words sampled across it, so that
//! finding a 20 KB text costs one comparison with the text kept, not a hash of every byte.
//! A hit is always confirmed by comparing the whole text; texts whose keys collide share a
//! bucket of at most [`MAX_PER_KEY`].

use std::any::TypeId;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use super::{classify_for, Classification};
use crate::BackendKind;

/// Texts kept per connection.
pub(crate) const MAX_TEXTS: usize = 256;
/// Bytes of text kept per connection.
pub(crate) const MAX_BYTES: usize = 1 << 20;
/// Longer texts are classified every time.
pub(crate) const MAX_TEXT: usize = 64 << 10;
/// Keys of texts seen once, remembered for admitting them the second time.
pub(crate) const MAX_SEEN: usize = 1024;
/// Texts up to this length are keyed by a hash of every byte.
pub(crate) const FULL_HASH: usize = 1024;
/// Texts kept per key (more only when keys collide).
pub(crate) const MAX_PER_KEY: usize = 4;

/// Hashes a `TypeId` by taking its bits as they are: it already is a hash.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
    fn write_u128(&mut self, n: u128) {
        self.0 ^= (n as u64) ^ ((n >> 64) as u64);
    }
}

/// A key that already is a hash.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = text_hash(bytes);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The high and low halves of a full 64 × 64-bit product, folded: every input bit reaches
/// every output bit.
fn fold(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// A fast non-cryptographic hash of a whole text (the text is compared in full on a hit,
/// so collisions only cost a comparison): three independent lanes fold 16 bytes each per
/// step, so that the multiplications overlap, then the rest and the length are folded in.
fn text_hash(bytes: &[u8]) -> u64 {
    const P: [u64; 4] = [
        0x2d35_8dcc_aa6c_78a5,
        0x8bb8_4b93_962e_acc9,
        0x4b33_a62e_d433_d4a3,
        0x4d5a_2da5_1de1_aa47,
    ];
    let word = |chunk: &[u8]| {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        u64::from_le_bytes(w)
    };
    let mut lanes = [P[0] ^ bytes.len() as u64, P[1], P[2]];
    let mut blocks = bytes.chunks_exact(48);
    for block in &mut blocks {
        for (k, lane) in lanes.iter_mut().enumerate() {
            let pair = &block[16 * k..16 * k + 16];
            *lane = fold(word(&pair[..8]) ^ P[k + 1], word(&pair[8..]) ^ *lane);
        }
    }
    let mut h = lanes[0] ^ lanes[1] ^ lanes[2];
    let mut pairs = blocks.remainder().chunks(16);
    for pair in &mut pairs {
        let (a, b) = pair.split_at(pair.len().min(8));
        h = fold(word(a) ^ P[1], word(b) ^ h);
    }
    fold(h ^ P[3], (bytes.len() as u64) ^ P[0])
}

/// The key of a text: a hash of all of it up to [`FULL_HASH`] bytes; beyond, of its length,
/// its first and last 256 bytes and 64 eight-byte words spread evenly between them.
fn text_key(bytes: &[u8]) -> u64 {
    const EDGE: usize = 256;
    const SAMPLES: usize = 64;
    if bytes.len() <= FULL_HASH {
        return text_hash(bytes);
    }
    let mut sample = [0u8; 2 * EDGE + 8 * SAMPLES];
    sample[..EDGE].copy_from_slice(&bytes[..EDGE]);
    sample[EDGE..2 * EDGE].copy_from_slice(&bytes[bytes.len() - EDGE..]);
    let middle = &bytes[EDGE..bytes.len() - EDGE];
    let stride = middle.len().saturating_sub(8) / SAMPLES;
    for k in 0..SAMPLES {
        let at = (k * stride).min(middle.len().saturating_sub(8));
        let word = middle.get(at..at + 8).unwrap_or_default();
        sample[2 * EDGE + 8 * k..][..word.len()].copy_from_slice(word);
    }
    text_hash(&sample) ^ (bytes.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The texts of one hash, with their classifications.
type TextEntries = Vec<(Box<str>, Classification)>;

/// The classifications one connection has made.
#[derive(Default)]
pub(crate) struct ClassCache {
    by_id: HashMap<TypeId, Classification, BuildHasherDefault<IdHasher>>,
    /// The SQL of queries with a static id that are safe to cache (Diesel's own rule for
    /// keying a prepared statement by type: their SQL is the same every time), for the
    /// async shell, which sends a rendering.
    #[cfg(feature = "async")]
    sql_by_id: HashMap<TypeId, std::sync::Arc<str>, BuildHasherDefault<IdHasher>>,
    by_text: HashMap<u64, TextEntries, BuildHasherDefault<PassThrough>>,
    /// Text hashes in insertion order, for dropping the oldest.
    order: VecDeque<u64>,
    /// Keys of texts seen once and not kept, oldest first.
    seen: VecDeque<u64>,
    /// The same keys, for looking them up.
    seen_set: HashSet<u64, BuildHasherDefault<PassThrough>>,
    texts: usize,
    bytes: usize,
}

impl std::fmt::Debug for ClassCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClassCache")
            .field("ids", &self.by_id.len())
            .field("texts", &self.texts)
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl ClassCache {
    /// The classification of a query with a static id, if made before.
    pub(crate) fn by_id(&self, id: TypeId) -> Option<Classification> {
        self.by_id.get(&id).copied()
    }

    pub(crate) fn remember_id(&mut self, id: TypeId, class: Classification) {
        self.by_id.insert(id, class);
    }

    /// The SQL remembered for a static query id (see [`remember_sql`](Self::remember_sql)).
    #[cfg(feature = "async")]
    pub(crate) fn sql_by_id(&self, id: TypeId) -> Option<std::sync::Arc<str>> {
        self.sql_by_id.get(&id).cloned()
    }

    /// Remembers the SQL of a query with a static id that is safe to cache.
    #[cfg(feature = "async")]
    pub(crate) fn remember_sql(&mut self, id: TypeId, sql: std::sync::Arc<str>) {
        self.sql_by_id.insert(id, sql);
    }

    /// Classifies `sql`, from memory when this text was classified before.
    pub(crate) fn classify_text(
        &mut self,
        backend: BackendKind,
        sql: &str,
        extra: &[String],
    ) -> Classification {
        if sql.len() > MAX_TEXT {
            return classify_for(backend, sql, extra);
        }
        let key = text_key(sql.as_bytes());
        let kept = match self.by_text.get(&key) {
            Some(entries) => {
                if let Some((_, class)) = entries.iter().find(|(text, _)| &**text == sql) {
                    return *class;
                }
                entries.len()
            }
            None => 0,
        };
        let class = classify_for(backend, sql, extra);
        if kept < MAX_PER_KEY && self.seen_before(key) {
            self.insert(key, sql, class);
        }
        class
    }

    /// Whether a text with this key was seen (and not kept) before; notes it if not.
    fn seen_before(&mut self, key: u64) -> bool {
        if self.seen_set.remove(&key) {
            return true;
        }
        if self.seen.len() >= MAX_SEEN {
            if let Some(oldest) = self.seen.pop_front() {
                self.seen_set.remove(&oldest);
            }
        }
        // A key already admitted and dropped from the ring meanwhile is harmless: it only
        // lets a text in on its next sighting.
        self.seen.push_back(key);
        self.seen_set.insert(key);
        false
    }

    fn insert(&mut self, hash: u64, sql: &str, class: Classification) {
        while self.texts >= MAX_TEXTS || self.bytes + sql.len() > MAX_BYTES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(entries) = self.by_text.get_mut(&oldest) {
                if !entries.is_empty() {
                    let (text, _) = entries.remove(0);
                    self.texts -= 1;
                    self.bytes -= text.len();
                }
                if entries.is_empty() {
                    self.by_text.remove(&oldest);
                }
            }
        }
        self.by_text
            .entry(hash)
            .or_default()
            .push((sql.into(), class));
        self.order.push_back(hash);
        self.texts += 1;
        self.bytes += sql.len();
    }

    /// Texts and bytes kept (for tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn text_usage(&self) -> (usize, usize) {
        (self.texts, self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_seen_before_is_not_classified_again() {
        let mut cache = ClassCache::default();
        let sql = format!("SELECT {} FROM t", "a, ".repeat(5000) + "b");
        let first = cache.classify_text(BackendKind::Postgres, &sql, &[]);
        assert!(first.read_only);
        // Kept the second time it is seen.
        assert_eq!(cache.text_usage(), (0, 0));
        assert_eq!(cache.classify_text(BackendKind::Postgres, &sql, &[]), first);
        assert_eq!(cache.text_usage(), (1, sql.len()));
        assert_eq!(cache.classify_text(BackendKind::Postgres, &sql, &[]), first);
        assert_eq!(cache.text_usage(), (1, sql.len()));
        // Same hash bucket or not, a different text is classified for itself.
        for _ in 0..2 {
            assert!(
                !cache
                    .classify_text(BackendKind::Postgres, "INSERT INTO t VALUES (1)", &[])
                    .read_only
            );
        }
        assert_eq!(cache.text_usage().0, 2);
    }

    #[test]
    fn texts_seen_once_are_not_kept() {
        let mut cache = ClassCache::default();
        for i in 0..3 * MAX_SEEN {
            cache.classify_text(BackendKind::Postgres, &format!("SELECT {i}"), &[]);
        }
        assert_eq!(cache.text_usage(), (0, 0));
        assert!(cache.seen.len() <= MAX_SEEN && cache.seen_set.len() <= MAX_SEEN);
    }

    #[test]
    fn long_texts_that_share_a_key_are_told_apart() {
        // 20 KB texts that differ in one byte the sampled key does not look at: the same
        // key, told apart by the comparison, at most MAX_PER_KEY kept.
        let base = format!("SELECT a FROM t WHERE x IN ({}0)", "1, ".repeat(7000));
        let key = text_key(base.as_bytes());
        let mut cache = ClassCache::default();
        let mut texts = Vec::new();
        for i in 0..(2 * MAX_PER_KEY) {
            let mut bytes = base.clone().into_bytes();
            // Byte 1000 + 3 i is a digit in the list, not sampled for this length.
            let at = (1000..).step_by(3).find(|&at| {
                let mut probe = bytes.clone();
                probe[at] = b'2';
                text_key(&probe) == key && bytes[at] == b'1'
            });
            let at = at.expect("an unsampled byte") + 3 * i;
            bytes[at] = b'2';
            let text = String::from_utf8(bytes).expect("ASCII");
            assert_eq!(text_key(text.as_bytes()), key, "text {i}");
            texts.push(text);
        }
        let write = texts[0].replace("SELECT a", "SELECT nextval('s'), a");
        for _ in 0..2 {
            for text in &texts {
                assert!(
                    cache
                        .classify_text(BackendKind::Postgres, text, &[])
                        .read_only
                );
            }
        }
        assert_eq!(cache.text_usage().0, MAX_PER_KEY);
        // A hit needs the whole text to match.
        assert!(
            !cache
                .classify_text(BackendKind::Postgres, &write, &[])
                .read_only
        );
    }

    #[test]
    fn unique_texts_never_grow_it_past_its_bounds() {
        let mut cache = ClassCache::default();
        for i in 0..10_000 {
            let sql = format!(
                "SELECT * FROM t WHERE id = {i} /* {} */",
                "x".repeat(i % 3000)
            );
            cache.classify_text(BackendKind::Postgres, &sql, &[]);
            let (texts, bytes) = cache.text_usage();
            assert!(
                texts <= MAX_TEXTS && bytes <= MAX_BYTES,
                "{texts} texts, {bytes} bytes"
            );
        }
        // Too long to keep, still classified.
        let huge = format!("UPDATE t SET a = '{}'", "y".repeat(MAX_TEXT));
        let before = cache.text_usage();
        assert!(
            !cache
                .classify_text(BackendKind::Postgres, &huge, &[])
                .read_only
        );
        assert_eq!(cache.text_usage(), before);
    }

    #[test]
    fn the_hash_spreads_texts_that_differ_in_one_byte() {
        // Long enough to go through the four lanes, the eight-byte rest and the tail.
        let base = "SELECT * FROM t WHERE id = 1 AND name = 'some longer text' -- x".to_string();
        let mut seen = std::collections::HashSet::new();
        for i in 0..base.len() {
            let mut bytes = base.clone().into_bytes();
            bytes[i] ^= 1;
            assert!(seen.insert(text_hash(&bytes)));
        }
        assert_ne!(text_hash(b""), text_hash(b"\0"));
    }
}
