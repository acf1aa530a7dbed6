//! The one-round-trip cache: after a successful accept the acceptors have promised the
//! proposer's next ballot, so the next change of the key may skip prepare. A cached ballot
//! is handed out once (taken, never copied), and the cache is bounded in bytes (Gryadka's
//! grew without limit).

use lru::LruCache;

use crate::ballot::Ballot;

/// The one-round-trip cache: per key, the ballot the acceptors promised us after our last
/// successful accept and the state then chosen; least recently used first out, bounded in
/// bytes.
pub(super) struct LeaderCache {
    entries: LruCache<String, (Ballot, Option<String>)>,
    bytes: usize,
    budget: usize,
}

/// Bytes an entry costs beyond its key and state (ballot, LRU links, allocation headers).
const CACHE_ENTRY_OVERHEAD: usize = 128;

impl LeaderCache {
    pub(super) fn new(budget: usize) -> Self {
        LeaderCache {
            entries: LruCache::unbounded(),
            bytes: 0,
            budget,
        }
    }

    /// Bytes the cache holds now.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    fn cost(key: &str, state: &Option<String>) -> usize {
        key.len() + state.as_ref().map_or(0, String::len) + CACHE_ENTRY_OVERHEAD
    }

    /// Takes the key's entry out: a cached ballot is used at most once.
    pub(super) fn take(&mut self, key: &str) -> Option<(Ballot, Option<String>)> {
        let entry = self.entries.pop(key)?;
        self.bytes -= Self::cost(key, &entry.1);
        Some(entry)
    }

    pub(super) fn put(&mut self, key: &str, ballot: Ballot, state: Option<String>) {
        self.take(key);
        let cost = Self::cost(key, &state);
        if cost > self.budget {
            return;
        }
        self.bytes += cost;
        self.entries.put(key.to_string(), (ballot, state));
        while self.bytes > self.budget {
            let Some((k, (_, s))) = self.entries.pop_lru() else {
                break;
            };
            self.bytes -= Self::cost(&k, &s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_bounded_in_bytes_and_hands_a_ballot_out_once() {
        let mut cache = LeaderCache {
            entries: LruCache::unbounded(),
            bytes: 0,
            budget: 1000,
        };
        let b = Ballot::new(1, 1, 1);
        for i in 0..20 {
            cache.put(&format!("k{i}"), b, Some("x".repeat(200)));
            assert!(cache.bytes <= 1000, "{} bytes", cache.bytes);
        }
        assert_eq!(cache.entries.len(), 3);
        assert!(cache.take("k19").is_some());
        assert!(cache.take("k19").is_none());
        cache.put("huge", b, Some("x".repeat(2000)));
        assert!(cache.take("huge").is_none());
    }
}
