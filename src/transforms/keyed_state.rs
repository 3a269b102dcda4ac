//! Per-key state that lives for a fixed time from when it was opened, with
//! a cap on the number of keys: the memory model of `throttle` (a window per
//! key) and `dedupe` (a sighting per key).
//!
//! Both transforms see keys they cannot predict (a pattern id, a message),
//! so state must stay bounded however many keys arrive. Entries leave in
//! three ways: their time is up (`ttl` after they were opened), the cap is
//! reached and the entry is first in the eviction order, or the owner
//! removes them.
//!
//! The eviction order is the order entries were opened, moved by
//! [`KeyedState::touch`] for callers that want least-recently-used
//! eviction (each entry remembers when it was opened and last used, which
//! is all it takes to rebuild the order after a restart:
//! [`KeyedState::restore`]). Because every entry lives for the same `ttl`, a caller that
//! never touches also gets its entries in expiry order, which is what lets
//! `throttle` close windows with one timer on [`KeyedState::next_expiry`]
//! instead of scanning every key. The order is a queue with lazy deletion
//! (a touch appends a new position and leaves the old one stale), compacted
//! when stale positions outnumber live ones, so every operation is O(1)
//! amortized.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

/// The state of many keys, each opened at a known time.
#[derive(Debug)]
pub struct KeyedState<V> {
    entries: HashMap<String, Slot<V>>,
    /// Positions in eviction order; a position whose stamp differs from its
    /// entry's is stale.
    order: VecDeque<(u64, String)>,
    ttl: Option<Duration>,
    capacity: usize,
    next_stamp: u64,
}

#[derive(Debug)]
struct Slot<V> {
    value: V,
    opened: Instant,
    /// When it was opened or last touched.
    used: Instant,
    stamp: u64,
}

/// A live entry, read for saving it.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry<'a, V> {
    /// Its state.
    pub value: &'a V,
    /// When it was opened (its time counts from there).
    pub opened: Instant,
    /// When it was opened or last touched (its place in the eviction order).
    pub used: Instant,
}

/// An entry to put back, as [`KeyedState::restore`] takes it.
#[derive(Debug)]
pub struct Restored<V> {
    /// Its key.
    pub key: String,
    /// Its state.
    pub value: V,
    /// When it was opened.
    pub opened: Instant,
    /// When it was last used.
    pub used: Instant,
}

/// An entry taken out of the state (expired or evicted).
#[derive(Debug, PartialEq, Eq)]
pub struct Removed<V> {
    /// Its key.
    pub key: String,
    /// Its state.
    pub value: V,
    /// When it was opened.
    pub opened: Instant,
}

impl<V> KeyedState<V> {
    /// State whose entries live `ttl` (forever when `None`), for at most
    /// `capacity` keys (at least one).
    pub fn new(ttl: Option<Duration>, capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            ttl,
            capacity: capacity.max(1),
            next_stamp: 0,
        }
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The state of `key`, unless it is absent or its time is up at `now`
    /// (an expired entry counts as absent even before it is removed).
    pub fn get_mut(&mut self, key: &str, now: Instant) -> Option<&mut V> {
        let ttl = self.ttl;
        self.entries
            .get_mut(key)
            .filter(|slot| !expired(ttl, slot.opened, now))
            .map(|slot| &mut slot.value)
    }

    /// Opens `key` at `now` with `value`, and returns the entry this pushed
    /// out, if any: the key's previous state (normally expired: a live one
    /// is updated through [`Self::get_mut`] instead), or, when the cap was
    /// reached, the first key in eviction order.
    pub fn insert(&mut self, key: String, value: V, now: Instant) -> Option<Removed<V>> {
        let stamp = self.stamp();
        self.order.push_back((stamp, key.clone()));
        let slot = Slot {
            value,
            opened: now,
            used: now,
            stamp,
        };
        let pushed_out = match self.entries.insert(key.clone(), slot) {
            Some(previous) => Some(Removed {
                key,
                value: previous.value,
                opened: previous.opened,
            }),
            None if self.entries.len() > self.capacity => self.pop_front_if(|_| true),
            None => None,
        };
        self.compact();
        pushed_out
    }

    /// Moves `key` to the back of the eviction order (least-recently-used
    /// eviction), as used at `now`. Its time still counts from when it was
    /// opened. Callers that touch should not rely on [`Self::pop_expired`]
    /// or [`Self::next_expiry`], which look at the front of the eviction
    /// order only, but sweep with [`Self::remove_expired`];
    /// [`Self::get_mut`] never returns an expired entry either way.
    pub fn touch(&mut self, key: &str, now: Instant) {
        let stamp = self.stamp();
        let Some(slot) = self.entries.get_mut(key) else {
            return;
        };
        slot.stamp = stamp;
        slot.used = now;
        self.order.push_back((stamp, key.to_string()));
        self.compact();
    }

    /// Removes and returns the first entry in eviction order if its time is
    /// up at `now`. For callers that never touch, calling this until it
    /// returns `None` removes exactly the expired entries, oldest first.
    pub fn pop_expired(&mut self, now: Instant) -> Option<Removed<V>> {
        let ttl = self.ttl;
        self.pop_front_if(|slot| expired(ttl, slot.opened, now))
    }

    /// When the first entry in eviction order expires (`None` when empty or
    /// when entries never expire).
    pub fn next_expiry(&mut self) -> Option<Instant> {
        let ttl = self.ttl?;
        self.skip_stale();
        let (_, key) = self.order.front()?;
        self.entries.get(key).map(|slot| slot.opened + ttl)
    }

    /// Removes every entry whose time is up at `now`, whatever its place in
    /// the eviction order: O(number of keys), for callers that touch (see
    /// [`Self::touch`]) and so cannot pop expired entries from the front.
    pub fn remove_expired(&mut self, now: Instant) -> Vec<String> {
        let Some(ttl) = self.ttl else {
            return Vec::new();
        };
        let mut removed = Vec::new();
        self.entries.retain(|key, slot| {
            let keep = !expired(Some(ttl), slot.opened, now);
            if !keep {
                removed.push(key.clone());
            }
            keep
        });
        self.compact();
        removed
    }

    /// The entry of `key`, expired or not (for saving it: whoever loads it
    /// judges its time).
    pub fn entry(&self, key: &str) -> Option<Entry<'_, V>> {
        self.entries.get(key).map(|slot| Entry {
            value: &slot.value,
            opened: slot.opened,
            used: slot.used,
        })
    }

    /// Every entry with its key and opening time, in eviction order, for
    /// changing them all (at shutdown).
    pub fn entries_mut(&mut self) -> Vec<(&str, &mut V, Instant)> {
        let mut all: Vec<_> = self.entries.iter_mut().collect();
        all.sort_unstable_by_key(|(_, slot)| slot.stamp);
        all.into_iter()
            .map(|(key, slot)| (key.as_str(), &mut slot.value, slot.opened))
            .collect()
    }

    /// Puts back entries saved by an earlier run, least recently used first
    /// (so the eviction order is as it was), and returns those the cap
    /// pushed out (the least recently used, when the cap is now lower than
    /// what was saved).
    pub fn restore(&mut self, mut entries: Vec<Restored<V>>) -> Vec<Removed<V>> {
        entries.sort_by_key(|entry| entry.used);
        let mut pushed_out = Vec::new();
        for Restored {
            key,
            value,
            opened,
            used,
        } in entries
        {
            pushed_out.extend(self.insert(key.clone(), value, opened));
            if let Some(slot) = self.entries.get_mut(&key) {
                slot.used = used;
            }
        }
        pushed_out
    }

    /// Removes `key` (its position in the order goes stale).
    pub fn remove(&mut self, key: &str) -> Option<V> {
        let slot = self.entries.remove(key)?;
        self.compact();
        Some(slot.value)
    }

    fn stamp(&mut self) -> u64 {
        self.next_stamp += 1;
        self.next_stamp
    }

    /// Drops stale positions at the front of the order.
    fn skip_stale(&mut self) {
        while let Some((stamp, key)) = self.order.front() {
            match self.entries.get(key) {
                Some(slot) if slot.stamp == *stamp => return,
                _ => {
                    self.order.pop_front();
                }
            }
        }
    }

    fn pop_front_if(&mut self, pop: impl Fn(&Slot<V>) -> bool) -> Option<Removed<V>> {
        self.skip_stale();
        let (_, key) = self.order.front()?;
        if !pop(self.entries.get(key)?) {
            return None;
        }
        let (_, key) = self.order.pop_front()?;
        let slot = self.entries.remove(&key)?;
        Some(Removed {
            key,
            value: slot.value,
            opened: slot.opened,
        })
    }

    /// Rebuilds the order without stale positions once they outnumber the
    /// live ones, so a hot key that is touched forever costs no memory.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.entries.len() + 16 {
            let entries = &self.entries;
            self.order
                .retain(|(stamp, key)| entries.get(key).is_some_and(|slot| slot.stamp == *stamp));
        }
    }
}

fn expired(ttl: Option<Duration>, opened: Instant, now: Instant) -> bool {
    ttl.is_some_and(|ttl| now.saturating_duration_since(opened) >= ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn entries_expire_ttl_after_they_were_opened_in_open_order() {
        let start = Instant::now();
        let mut state = KeyedState::new(Some(10 * SECOND), 100);
        state.insert("a".into(), 1, start);
        state.insert("b".into(), 2, start + 3 * SECOND);
        assert_eq!(state.next_expiry(), Some(start + 10 * SECOND));
        let at = start + 10 * SECOND;
        assert!(state.get_mut("a", at).is_none(), "a's time is up");
        assert_eq!(state.get_mut("b", at), Some(&mut 2));
        let expired = state.pop_expired(at).unwrap();
        assert_eq!((expired.key.as_str(), expired.value), ("a", 1));
        assert!(state.pop_expired(at).is_none(), "b has 3 s left");
        assert_eq!(state.next_expiry(), Some(start + 13 * SECOND));
    }

    #[test]
    fn reopening_a_key_restarts_its_time() {
        let start = Instant::now();
        let mut state = KeyedState::new(Some(10 * SECOND), 100);
        state.insert("a".into(), 1, start);
        let previous = state.insert("a".into(), 2, start + 20 * SECOND).unwrap();
        assert_eq!((previous.value, previous.opened), (1, start));
        assert_eq!(state.len(), 1);
        assert_eq!(state.next_expiry(), Some(start + 30 * SECOND));
        assert!(state.pop_expired(start + 29 * SECOND).is_none());
    }

    #[test]
    fn the_cap_evicts_the_first_opened_key() {
        let now = Instant::now();
        let mut state = KeyedState::new(None, 2);
        assert!(state.insert("a".into(), (), now).is_none());
        assert!(state.insert("b".into(), (), now).is_none());
        let evicted = state.insert("c".into(), (), now).unwrap();
        assert_eq!(evicted.key, "a");
        assert_eq!(state.len(), 2);
        assert!(state.next_expiry().is_none(), "no ttl, no expiry");
    }

    #[test]
    fn touching_makes_eviction_least_recently_used() {
        let now = Instant::now();
        let mut state = KeyedState::new(None, 2);
        state.insert("a".into(), (), now);
        state.insert("b".into(), (), now);
        state.touch("a", now);
        assert_eq!(state.insert("c".into(), (), now).unwrap().key, "b");
        let in_order: Vec<&str> = state.entries_mut().iter().map(|(key, ..)| *key).collect();
        assert_eq!(in_order, ["a", "c"]);
    }

    #[test]
    fn a_hot_key_touched_forever_keeps_the_order_small() {
        let now = Instant::now();
        let mut state = KeyedState::new(None, 10);
        state.insert("hot".into(), (), now);
        for _ in 0..10_000 {
            state.touch("hot", now);
        }
        assert!(
            state.order.len() <= 2 * state.len() + 17,
            "{}",
            state.order.len()
        );
    }

    fn in_order<V>(state: &mut KeyedState<V>) -> Vec<String> {
        state
            .entries_mut()
            .into_iter()
            .map(|(key, ..)| key.to_string())
            .collect()
    }

    #[test]
    fn restoring_rebuilds_the_eviction_order_from_last_use_and_applies_the_cap() {
        let start = Instant::now();
        let restored = |key: &str, used_secs: u32| Restored {
            key: key.to_string(),
            value: (),
            opened: start,
            used: start + used_secs * SECOND,
        };
        let mut state = KeyedState::new(None, 2);
        let pushed_out = state.restore(vec![
            restored("recent", 9),
            restored("oldest", 1),
            restored("middle", 5),
        ]);
        let pushed_out: Vec<&str> = pushed_out.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(pushed_out, ["oldest"], "a lower cap keeps the most recent");
        assert_eq!(in_order(&mut state), ["middle", "recent"]);
        let entry = state.entry("middle").unwrap();
        assert_eq!(
            (entry.opened, entry.used),
            (start, start + 5 * SECOND),
            "both times are kept"
        );
    }

    #[test]
    fn remove_expired_finds_expired_entries_anywhere_in_the_order() {
        let start = Instant::now();
        let mut state = KeyedState::new(Some(10 * SECOND), 10);
        state.insert("old".into(), (), start);
        state.insert("new".into(), (), start + 5 * SECOND);
        state.touch("old", start + 6 * SECOND);
        assert_eq!(
            state.remove_expired(start + 10 * SECOND),
            ["old"],
            "a touch does not extend the time"
        );
        assert_eq!(in_order(&mut state), ["new"]);
        assert!(state.entry("old").is_none());
        assert!(
            KeyedState::<()>::new(None, 1)
                .remove_expired(start + 1000 * SECOND)
                .is_empty()
        );
    }
}
