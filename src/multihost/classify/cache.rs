//! Classifications remembered per connection: by static query id (Diesel's `QueryId`,
//! never re-rendered) and by SQL text for everything else (`sql_query`, boxed queries, raw
//! SQL), so a statement seen before costs a hash of its text, not a re-scan.
//!
//! The text side is bounded: at most [`MAX_TEXTS`] texts and [`MAX_BYTES`] bytes of text
//! per connection, texts longer than [`MAX_TEXT`] are not kept, and the oldest text is
//! dropped first. Unique SQL (literals inlined) therefore never grows it without bound.

use std::any::TypeId;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use super::{classify_for, Classification};
use crate::BackendKind;

/// Texts kept per connection.
pub(crate) const MAX_TEXTS: usize = 256;
/// Bytes of text kept per connection.
pub(crate) const MAX_BYTES: usize = 1 << 20;
/// Longer texts are classified every time.
pub(crate) const MAX_TEXT: usize = 64 << 10;

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

/// A fast non-cryptographic hash of a whole text (the text is compared in full on a hit,
/// so collisions only cost a comparison): four independent lanes of eight bytes each, so
/// that the multiplications overlap, then a final mix.
fn text_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let word = |chunk: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        u64::from_le_bytes(w)
    };
    let mut lanes = [
        bytes.len() as u64,
        0x9e37_79b9_7f4a_7c15,
        0xc2b2_ae3d_27d4_eb4f,
        0x1656_67b1_9e37_79f9,
    ];
    let mut blocks = bytes.chunks_exact(32);
    for block in &mut blocks {
        for (lane, chunk) in lanes.iter_mut().zip(block.chunks_exact(8)) {
            *lane = (lane.rotate_left(5) ^ word(chunk)).wrapping_mul(K);
        }
    }
    let mut h =
        lanes[0] ^ lanes[1].rotate_left(17) ^ lanes[2].rotate_left(31) ^ lanes[3].rotate_left(47);
    let mut rest = blocks.remainder().chunks_exact(8);
    for chunk in &mut rest {
        h = (h.rotate_left(5) ^ word(chunk)).wrapping_mul(K);
    }
    let mut tail = [0u8; 8];
    tail[..rest.remainder().len()].copy_from_slice(rest.remainder());
    h = (h.rotate_left(5) ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    // Final mix so that the low bits (the hash table's buckets) depend on every input bit.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// The texts of one hash, with their classifications.
type TextEntries = Vec<(Box<str>, Classification)>;

/// The classifications one connection has made.
#[derive(Default)]
pub(crate) struct ClassCache {
    by_id: HashMap<TypeId, Classification, BuildHasherDefault<IdHasher>>,
    by_text: HashMap<u64, TextEntries, BuildHasherDefault<PassThrough>>,
    /// Text hashes in insertion order, for dropping the oldest.
    order: VecDeque<u64>,
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
        let hash = text_hash(sql.as_bytes());
        if let Some(entries) = self.by_text.get(&hash) {
            if let Some((_, class)) = entries.iter().find(|(text, _)| &**text == sql) {
                return *class;
            }
        }
        let class = classify_for(backend, sql, extra);
        self.insert(hash, sql, class);
        class
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
        assert_eq!(cache.text_usage(), (1, sql.len()));
        assert_eq!(cache.classify_text(BackendKind::Postgres, &sql, &[]), first);
        assert_eq!(cache.text_usage(), (1, sql.len()));
        // Same hash bucket or not, a different text is classified for itself.
        assert!(
            !cache
                .classify_text(BackendKind::Postgres, "INSERT INTO t VALUES (1)", &[])
                .read_only
        );
        assert_eq!(cache.text_usage().0, 2);
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
