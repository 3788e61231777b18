//! A generic set-associative array with replacement: the storage shape shared by CPU caches,
//! IOTLBs, context caches and paging-structure (walk) caches.
//!
//! An entry is keyed by a `u64` whose low `log2(sets)` bits select the set; the whole key is
//! kept as the tag, so two keys never alias. Callers fold whatever identifies an entry into
//! the key and choose which bits index the set: a CPU cache uses the line number
//! (`pa >> 6`); an IOTLB might use `iova >> 12` with the domain id mixed into the high bits.
//!
//! Replacement picks an invalid way first (lowest index), otherwise:
//! * [`Replacement::Lru`]: the least recently used way (true LRU, a timestamp per way).
//! * [`Replacement::PseudoLru`]: tree pseudo-LRU, one bit per inner node of a binary tree
//!   over the ways. A bit of 1 means "the victim lies in the right subtree"; touching a way
//!   points every node on its path away from it. Ways that are not a power of two are padded
//!   to one and the padding leaves are never chosen.
//!
//! Only [`SetAssoc::lookup`], [`SetAssoc::touch`] and the inserts update recency; the `peek`
//! family reads without disturbing it (a snoop or a checker must not change what is evicted
//! next). [`WayMask`] restricts allocation to some ways (Intel DDIO allocates into a few LLC
//! ways only).

use serde::{Deserialize, Serialize};

/// How a victim is chosen among the valid ways of a full set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Replacement {
    /// True least-recently-used.
    Lru,
    /// Tree pseudo-LRU (ways - 1 bits per set).
    PseudoLru,
}

/// Why an array cannot have this shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetAssocError {
    /// Set indexing uses the low key bits, so the set count must be a power of two.
    #[error("a set-associative array needs a power-of-two number of sets, not {sets}")]
    SetsNotPowerOfTwo {
        /// The requested set count.
        sets: usize,
    },
    /// Ways must be 1 ..= 64 (the way masks and PLRU trees are 64-bit words).
    #[error("a set-associative array needs 1 to 64 ways, not {ways}")]
    BadWays {
        /// The requested way count.
        ways: usize,
    },
}

/// A subset of the ways of every set, for restricted allocation (bit `w` = way `w`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WayMask(pub u64);

impl WayMask {
    /// Every way.
    pub const ALL: WayMask = WayMask(u64::MAX);

    /// Ways `0 .. n`.
    pub const fn first(n: u32) -> WayMask {
        if n >= 64 {
            WayMask::ALL
        } else {
            WayMask((1u64 << n) - 1)
        }
    }
}

/// What an insert did to the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted<V> {
    /// The key took a free way.
    Vacant,
    /// The key was already present; its old value is returned.
    Replaced(V),
    /// A valid entry was evicted to make room.
    Evicted {
        /// The victim's key.
        key: u64,
        /// The victim's value.
        value: V,
    },
}

#[derive(Debug, Clone)]
struct Slot<V> {
    key: u64,
    value: V,
}

/// `sets × ways` entries of `V`, keyed by `u64`, with a replacement policy.
#[derive(Debug, Clone)]
pub struct SetAssoc<V> {
    sets: usize,
    ways: usize,
    policy: Replacement,
    slots: Vec<Option<Slot<V>>>,
    /// LRU: per-slot stamp of the last use.
    stamps: Vec<u64>,
    /// PLRU: per-set tree bits (node `i` has children `2i+1`, `2i+2`).
    trees: Vec<u64>,
    clock: u64,
    len: usize,
}

impl<V> SetAssoc<V> {
    /// An empty array of `sets` (a power of two) × `ways` (1 ..= 64).
    pub fn new(sets: usize, ways: usize, policy: Replacement) -> Result<Self, SetAssocError> {
        if sets == 0 || !sets.is_power_of_two() {
            return Err(SetAssocError::SetsNotPowerOfTwo { sets });
        }
        if ways == 0 || ways > 64 {
            return Err(SetAssocError::BadWays { ways });
        }
        Ok(SetAssoc {
            sets,
            ways,
            policy,
            slots: std::iter::repeat_with(|| None).take(sets * ways).collect(),
            stamps: vec![0; sets * ways],
            trees: vec![0; sets],
            clock: 0,
            len: 0,
        })
    }

    /// Number of sets.
    pub fn sets(&self) -> usize {
        self.sets
    }

    /// Ways per set.
    pub fn ways(&self) -> usize {
        self.ways
    }

    /// Total entries (`sets × ways`).
    pub fn capacity(&self) -> usize {
        self.sets * self.ways
    }

    /// Valid entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No valid entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The replacement policy.
    pub fn replacement(&self) -> Replacement {
        self.policy
    }

    /// The set `key` maps to (its low bits).
    pub fn set_of(&self, key: u64) -> usize {
        (key & (self.sets as u64 - 1)) as usize
    }

    fn slot_range(&self, set: usize) -> std::ops::Range<usize> {
        set * self.ways..(set + 1) * self.ways
    }

    /// The way holding `key`, if any.
    pub fn way_of(&self, key: u64) -> Option<usize> {
        self.slots[self.slot_range(self.set_of(key))]
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.key == key))
    }

    fn index_of(&self, key: u64) -> Option<usize> {
        self.way_of(key).map(|w| self.set_of(key) * self.ways + w)
    }

    /// Whether `key` is present (no recency update).
    pub fn contains(&self, key: u64) -> bool {
        self.way_of(key).is_some()
    }

    /// The value for `key` without updating recency.
    pub fn peek(&self, key: u64) -> Option<&V> {
        let i = self.index_of(key)?;
        self.slots[i].as_ref().map(|s| &s.value)
    }

    /// The value for `key`, mutable, without updating recency.
    pub fn peek_mut(&mut self, key: u64) -> Option<&mut V> {
        let i = self.index_of(key)?;
        self.slots[i].as_mut().map(|s| &mut s.value)
    }

    /// A hit: the value for `key`, marked most recently used.
    pub fn lookup(&mut self, key: u64) -> Option<&mut V> {
        let i = self.index_of(key)?;
        self.mark_used(i);
        self.slots[i].as_mut().map(|s| &mut s.value)
    }

    /// Marks `key` most recently used; `false` if absent.
    pub fn touch(&mut self, key: u64) -> bool {
        match self.index_of(key) {
            Some(i) => {
                self.mark_used(i);
                true
            }
            None => false,
        }
    }

    /// The entry an [`insert`](Self::insert) of `key` would evict, if any (none when `key`
    /// is present or its set has a free way). Lets a caller act on the victim first, e.g.
    /// write back dirty data or back-invalidate inner caches.
    pub fn victim(&self, key: u64) -> Option<(u64, &V)> {
        self.victim_within(key, WayMask::ALL)
    }

    /// As [`victim`](Self::victim), for an insert restricted to `mask`.
    pub fn victim_within(&self, key: u64, mask: WayMask) -> Option<(u64, &V)> {
        if self.contains(key) {
            return None;
        }
        let set = self.set_of(key);
        match self.choose_way(set, mask) {
            Some(way) => self.slots[set * self.ways + way]
                .as_ref()
                .map(|s| (s.key, &s.value)),
            None => None,
        }
    }

    /// Inserts (or replaces) `key`, marking it most recently used; returns what happened to
    /// the set, including the victim when one was evicted.
    pub fn insert(&mut self, key: u64, value: V) -> Inserted<V> {
        self.insert_within(key, value, WayMask::ALL)
    }

    /// As [`insert`](Self::insert), but a new entry may only take a way in `mask` (an entry
    /// already present is replaced where it is). An empty mask, or one naming no existing
    /// way, falls back to every way.
    pub fn insert_within(&mut self, key: u64, value: V, mask: WayMask) -> Inserted<V> {
        if let Some(i) = self.index_of(key) {
            self.mark_used(i);
            let old = self.slots[i].replace(Slot { key, value });
            return Inserted::Replaced(old.map(|s| s.value).expect("index_of found a slot"));
        }
        let set = self.set_of(key);
        let way = self
            .choose_way(set, mask)
            .expect("a set always has at least one allowed way");
        let i = set * self.ways + way;
        let old = self.slots[i].replace(Slot { key, value });
        self.mark_used(i);
        match old {
            Some(s) => Inserted::Evicted {
                key: s.key,
                value: s.value,
            },
            None => {
                self.len += 1;
                Inserted::Vacant
            }
        }
    }

    /// Removes `key`, returning its value.
    pub fn invalidate(&mut self, key: u64) -> Option<V> {
        let i = self.index_of(key)?;
        self.len -= 1;
        self.slots[i].take().map(|s| s.value)
    }

    /// Valid entries in (set, way) order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        self.slots
            .iter()
            .filter_map(|s| s.as_ref().map(|s| (s.key, &s.value)))
    }

    /// Valid entries in (set, way) order, values mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u64, &mut V)> {
        self.slots
            .iter_mut()
            .filter_map(|s| s.as_mut().map(|s| (s.key, &mut s.value)))
    }

    /// The keys of the valid entries, in (set, way) order.
    pub fn keys(&self) -> Vec<u64> {
        self.iter().map(|(k, _)| k).collect()
    }

    /// Removes every entry, returning them in (set, way) order; recency state is reset.
    pub fn drain(&mut self) -> Vec<(u64, V)> {
        self.len = 0;
        self.stamps.fill(0);
        self.trees.fill(0);
        self.slots
            .iter_mut()
            .filter_map(|s| s.take().map(|s| (s.key, s.value)))
            .collect()
    }

    /// The allowed ways of a set as a bit mask of existing ways.
    fn allowed(&self, mask: WayMask) -> u64 {
        let existing = WayMask::first(self.ways as u32).0;
        match mask.0 & existing {
            0 => existing,
            m => m,
        }
    }

    fn choose_way(&self, set: usize, mask: WayMask) -> Option<usize> {
        let allowed = self.allowed(mask);
        let base = set * self.ways;
        let free = (0..self.ways).find(|w| allowed >> w & 1 == 1 && self.slots[base + w].is_none());
        if free.is_some() {
            return free;
        }
        match self.policy {
            Replacement::Lru => (0..self.ways)
                .filter(|w| allowed >> w & 1 == 1)
                .min_by_key(|w| self.stamps[base + w]),
            Replacement::PseudoLru => Some(plru_victim(
                self.trees[set],
                self.ways.next_power_of_two(),
                allowed,
            )),
        }
    }

    fn mark_used(&mut self, slot: usize) {
        self.clock += 1;
        self.stamps[slot] = self.clock;
        let (set, way) = (slot / self.ways, slot % self.ways);
        plru_touch(&mut self.trees[set], self.ways.next_power_of_two(), way);
    }
}

/// Bits `lo .. lo + n` set.
fn range_mask(lo: usize, n: usize) -> u64 {
    WayMask::first(n as u32).0 << lo
}

/// Follows the tree bits from the root to a leaf, never entering a subtree with no allowed
/// way (`allowed` must name at least one of the `leaves` leaves).
fn plru_victim(bits: u64, leaves: usize, allowed: u64) -> usize {
    let (mut node, mut lo, mut span) = (0usize, 0usize, leaves);
    while span > 1 {
        let half = span / 2;
        let left_ok = allowed & range_mask(lo, half) != 0;
        let right_ok = allowed & range_mask(lo + half, half) != 0;
        let go_right = match (left_ok, right_ok) {
            (true, true) => bits >> node & 1 == 1,
            (left, _) => !left,
        };
        if go_right {
            node = 2 * node + 2;
            lo += half;
        } else {
            node = 2 * node + 1;
        }
        span = half;
    }
    lo
}

/// Points every node on `way`'s path away from it.
fn plru_touch(bits: &mut u64, leaves: usize, way: usize) {
    let (mut node, mut lo, mut span) = (0usize, 0usize, leaves);
    while span > 1 {
        let half = span / 2;
        if way < lo + half {
            *bits |= 1 << node; // used the left: next victim on the right
            node = 2 * node + 1;
        } else {
            *bits &= !(1 << node);
            node = 2 * node + 2;
            lo += half;
        }
        span = half;
    }
}

/// A [`SetAssoc`] with LRU replacement that counts its lookups: the shape of every IOMMU
/// cache (IOTLB, context / device-table-entry caches, paging-structure caches).
#[derive(Debug, Clone)]
pub struct CountedCache<V> {
    array: SetAssoc<V>,
    counts: crate::translate::CacheCounts,
}

impl<V: Clone> CountedCache<V> {
    /// An empty cache of `sets` (a power of two) × `ways` (1 ..= 64), LRU.
    pub fn new(sets: usize, ways: usize) -> Result<Self, SetAssocError> {
        Ok(CountedCache {
            array: SetAssoc::new(sets, ways, Replacement::Lru)?,
            counts: crate::translate::CacheCounts::default(),
        })
    }

    /// Looks `key` up, counting a hit or a miss and updating replacement state.
    pub fn lookup(&mut self, key: u64) -> Option<V> {
        let hit = self.array.lookup(key).cloned();
        match hit {
            Some(_) => self.counts.hits += 1,
            None => self.counts.misses += 1,
        }
        hit
    }

    /// Looks `key` up without counting (one probe of a multi-probe lookup).
    pub fn probe(&mut self, key: u64) -> Option<V> {
        self.array.lookup(key).cloned()
    }

    /// Counts a lookup that found nothing without probing (e.g. an untaggable key).
    pub fn count_miss(&mut self) {
        self.counts.misses += 1;
    }

    /// Counts a hit found by [`CountedCache::probe`].
    pub fn count_hit(&mut self) {
        self.counts.hits += 1;
    }

    /// Fills `key`, evicting the LRU way of its set if needed.
    pub fn insert(&mut self, key: u64, value: V) {
        self.array.insert(key, value);
    }

    /// Drops every entry for which `keep(key, value)` is false; returns how many.
    pub fn retain(&mut self, mut keep: impl FnMut(u64, &V) -> bool) -> usize {
        let doomed: Vec<u64> = self
            .array
            .iter()
            .filter(|(k, v)| !keep(*k, v))
            .map(|(k, _)| k)
            .collect();
        for k in &doomed {
            self.array.invalidate(*k);
        }
        doomed.len()
    }

    /// Hits and misses so far.
    pub fn counts(&self) -> crate::translate::CacheCounts {
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-set array, so every key competes for the same ways.
    fn one_set(ways: usize, policy: Replacement) -> SetAssoc<char> {
        SetAssoc::new(1, ways, policy).unwrap()
    }

    fn evicted(i: Inserted<char>) -> Option<u64> {
        match i {
            Inserted::Evicted { key, .. } => Some(key),
            _ => None,
        }
    }

    #[test]
    fn shape_is_checked() {
        assert!(SetAssoc::<()>::new(3, 4, Replacement::Lru).is_err());
        assert!(SetAssoc::<()>::new(0, 4, Replacement::Lru).is_err());
        assert!(SetAssoc::<()>::new(4, 0, Replacement::Lru).is_err());
        assert!(SetAssoc::<()>::new(4, 65, Replacement::Lru).is_err());
        let a = SetAssoc::<()>::new(4, 11, Replacement::PseudoLru).unwrap();
        assert_eq!((a.sets(), a.ways(), a.capacity()), (4, 11, 44));
    }

    #[test]
    fn low_key_bits_select_the_set_and_the_whole_key_is_the_tag() {
        let mut a = SetAssoc::new(4, 1, Replacement::Lru).unwrap();
        assert_eq!(a.insert(0x10, 'a'), Inserted::Vacant); // set 0
        assert_eq!(a.insert(0x11, 'b'), Inserted::Vacant); // set 1
        assert_eq!(a.peek(0x10), Some(&'a'));
        assert_eq!(a.peek(0x20), None, "same set, different tag");
        assert_eq!(evicted(a.insert(0x20, 'c')), Some(0x10));
        assert_eq!(a.insert(0x20, 'd'), Inserted::Replaced('c'));
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn lru_evicts_the_least_recently_used_and_peek_does_not_count_as_use() {
        let mut a = one_set(4, Replacement::Lru);
        for k in 0..4 {
            a.insert(k, 'x');
        }
        a.lookup(0); // order of use now 1, 2, 3, 0
        let _ = a.peek(1); // a peek is not a use
        assert_eq!(a.victim(9).map(|(k, _)| k), Some(1));
        assert_eq!(evicted(a.insert(9, 'y')), Some(1));
        assert_eq!(evicted(a.insert(10, 'y')), Some(2));
    }

    /// Hand derivation, 4 ways, tree nodes n0 (root), n1 (ways 0-1), n2 (ways 2-3);
    /// bit 1 = victim on the right. Fill ways 0, 1, 2, 3 in order:
    ///   use 0: n0=1 n1=1 · use 1: n0=1 n1=0 · use 2: n0=0 n2=1 · use 3: n0=0 n2=0.
    /// Victim: n0=0 → left, n1=0 → way 0. Using way 0 sets n0=1 n1=1.
    /// Victim: n0=1 → right, n2=0 → way 2. Using way 2 sets n0=0 n2=1.
    /// Victim: n0=0 → left, n1=1 → way 1. Using way 1 sets n0=1 n1=0.
    /// Victim: n0=1 → right, n2=1 → way 3.
    /// So PLRU evicts ways 0, 2, 1, 3 where true LRU would evict 0, 1, 2, 3.
    #[test]
    fn plru_victim_order_matches_the_hand_derived_tree_walk() {
        let mut a = one_set(4, Replacement::PseudoLru);
        for k in 0..4 {
            a.insert(k, 'x'); // key k lands in way k
        }
        let mut order = Vec::new();
        for k in 10..14 {
            order.push(evicted(a.insert(k, 'y')).unwrap());
        }
        assert_eq!(order, vec![0, 2, 1, 3]);

        let mut lru = one_set(4, Replacement::Lru);
        for k in 0..4 {
            lru.insert(k, 'x');
        }
        let order: Vec<u64> = (10..14)
            .map(|k| evicted(lru.insert(k, 'y')).unwrap())
            .collect();
        assert_eq!(order, vec![0, 1, 2, 3]);
    }

    /// 3 ways pad to a 4-leaf tree; leaf 3 does not exist. After using 0, 1, 2:
    /// n0=0 (last use was on the right), n1=0, n2=1 (would point at the missing leaf 3).
    /// Victim: n0=0 → left, n1=0 → way 0; the missing leaf is never chosen.
    #[test]
    fn plru_with_ways_not_a_power_of_two_never_picks_a_padding_leaf() {
        let mut a = one_set(3, Replacement::PseudoLru);
        for k in 0..3 {
            a.insert(k, 'x');
        }
        assert_eq!(a.victim(7).map(|(k, _)| k), Some(0));
        a.lookup(0); // n0=1, n1=1: the preferred subtree (right) only has way 2
        assert_eq!(a.victim(7).map(|(k, _)| k), Some(2));
        for k in 100..200 {
            a.insert(k, 'z');
            assert!(a.way_of(k).unwrap() < 3);
        }
    }

    #[test]
    fn restricted_insert_only_takes_allowed_ways() {
        for policy in [Replacement::Lru, Replacement::PseudoLru] {
            let mut a = one_set(8, policy);
            for k in 0..8 {
                a.insert(k, 'x');
            }
            // Ways 0-1 only, like DDIO with 2 I/O ways.
            for k in 100..110 {
                let v = evicted(a.insert_within(k, 'd', WayMask::first(2))).unwrap();
                assert!(
                    !(2..100).contains(&v),
                    "{policy:?} evicted key {v} outside ways 0-1"
                );
                assert!(a.way_of(k).unwrap() < 2);
            }
            // Keys 2..8 were never disturbed.
            assert!((2..8).all(|k| a.contains(k)));
            // A key already present is updated in place, whatever the mask.
            assert_eq!(
                a.insert_within(5, 'q', WayMask::first(2)),
                Inserted::Replaced('x')
            );
            assert_eq!(a.way_of(5), Some(5));
        }
    }

    #[test]
    fn invalid_ways_are_filled_before_anything_is_evicted() {
        let mut a = one_set(4, Replacement::PseudoLru);
        for k in 0..4 {
            a.insert(k, 'x');
        }
        assert_eq!(a.invalidate(2), Some('x'));
        assert_eq!(a.victim(50), None);
        assert_eq!(a.insert(50, 'n'), Inserted::Vacant);
        assert_eq!(a.way_of(50), Some(2));
        assert_eq!(a.len(), 4);
    }

    #[test]
    fn iteration_and_drain_visit_valid_entries_in_set_way_order() {
        let mut a = SetAssoc::new(2, 2, Replacement::Lru).unwrap();
        a.insert(3, 'c'); // set 1 way 0
        a.insert(2, 'b'); // set 0 way 0
        a.insert(5, 'e'); // set 1 way 1
        assert_eq!(a.keys(), vec![2, 3, 5]);
        for (_, v) in a.iter_mut() {
            *v = v.to_ascii_uppercase();
        }
        assert_eq!(a.drain(), vec![(2, 'B'), (3, 'C'), (5, 'E')]);
        assert!(a.is_empty());
        assert_eq!(a.iter().count(), 0);
    }
}
