//! The bookkeeping every IOMMU's page walker shares: a limited number of walks in flight,
//! misses merged into a walk already fetching the same page, a queue for misses that find
//! no free slot, and the invalidation epoch that keeps a walk which started before an
//! invalidation completed from filling the caches (or answering later requests) with what
//! it read.
//!
//! [`WalkSlots`] holds the walks (whatever a vendor's walk state `W` is) and the requests
//! waiting on each; [`Pending`] holds invalidations until their completion tick. The
//! vendor's agent decides what a walk reads and what a cache holds.

use crate::time::Tick;
use crate::translate::TranslationRequest;
use std::collections::{BTreeMap, VecDeque};

/// A request waiting for a walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiter {
    /// The token the system gave with the request.
    pub token: u64,
    /// The request.
    pub req: TranslationRequest,
    /// When its own cache lookup ended: a walk it joins may end earlier, but its answer
    /// cannot leave before this.
    pub ready: Tick,
}

/// One walk, in flight or waiting for a slot.
#[derive(Debug, Clone)]
pub struct Slot<K, W> {
    /// The vendor's walk state.
    pub walk: W,
    /// What makes another miss the same walk.
    key: K,
    /// The requests it answers.
    pub waiters: Vec<Waiter>,
    /// The invalidation epoch when it started.
    epoch: u64,
    /// Not started yet: when it became ready.
    queued: Option<Tick>,
}

/// Walks in flight and queued, with merging and the invalidation epoch.
#[derive(Debug, Clone)]
pub struct WalkSlots<K, W> {
    walks: BTreeMap<u64, Slot<K, W>>,
    queue: VecDeque<u64>,
    in_flight: usize,
    max: usize,
    next: u64,
    epoch: u64,
    started: u64,
    merged: u64,
}

/// What [`WalkSlots::miss`] did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// It joined walk `id`, already in flight or queued.
    Merged,
    /// Walk `id` was created and holds a slot: start it now.
    Start(u64),
    /// Walk `id` was created and waits for a slot.
    Queued(u64),
}

impl<K: PartialEq + Copy, W> WalkSlots<K, W> {
    /// No walks; at most `max` in flight (at least one).
    pub fn new(max: usize) -> WalkSlots<K, W> {
        WalkSlots {
            walks: BTreeMap::new(),
            queue: VecDeque::new(),
            in_flight: 0,
            max: max.max(1),
            next: 0,
            epoch: 0,
            started: 0,
            merged: 0,
        }
    }

    /// A miss for `key`: it joins a walk of the same key that is queued or started after
    /// the latest invalidation, or becomes walk `make()` (started now if a slot is free).
    pub fn miss(&mut self, key: K, w: Waiter, at: Tick, make: impl FnOnce() -> W) -> Missed {
        let epoch = self.epoch;
        if let Some(s) = self
            .walks
            .values_mut()
            .find(|s| s.key == key && (s.queued.is_some() || s.epoch == epoch))
        {
            s.waiters.push(w);
            self.merged += 1;
            return Missed::Merged;
        }
        let id = self.next;
        self.next += 1;
        self.started += 1;
        let start = self.in_flight < self.max;
        self.walks.insert(
            id,
            Slot {
                walk: make(),
                key,
                waiters: vec![w],
                epoch,
                queued: (!start).then_some(at),
            },
        );
        if start {
            self.in_flight += 1;
            Missed::Start(id)
        } else {
            self.queue.push_back(id);
            Missed::Queued(id)
        }
    }

    /// The next queued walk that may start now a slot is free, with the tick it became
    /// ready; it holds the slot from now on (or gives it back with [`WalkSlots::finish`]).
    pub fn next_queued(&mut self) -> Option<(u64, Tick)> {
        while self.in_flight < self.max {
            let id = self.queue.pop_front()?;
            let Some(ready) = self.walks.get_mut(&id).and_then(|s| s.queued.take()) else {
                continue;
            };
            self.in_flight += 1;
            return Some((id, ready));
        }
        None
    }

    /// Restarts walk `id` with new state (after looking the caches up again) in the current
    /// epoch.
    pub fn restart(&mut self, id: u64, walk: W) {
        let epoch = self.epoch;
        if let Some(s) = self.walks.get_mut(&id) {
            s.walk = walk;
            s.epoch = epoch;
        }
    }

    /// Walk `id`.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut Slot<K, W>> {
        self.walks.get_mut(&id)
    }

    /// Walk `id` is over: its slot is free. Returns it, and whether what it read may fill
    /// the caches (no invalidation completed since it started).
    pub fn finish(&mut self, id: u64) -> Option<(Slot<K, W>, bool)> {
        let s = self.walks.remove(&id)?;
        if s.queued.is_none() {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        let fill = s.epoch == self.epoch;
        Some((s, fill))
    }

    /// An invalidation completed.
    pub fn invalidated(&mut self) {
        self.epoch += 1;
    }

    /// Walks started (merged misses count once).
    pub fn started(&self) -> u64 {
        self.started
    }

    /// Misses that joined a walk.
    pub fn merged(&self) -> u64 {
        self.merged
    }
}

/// Invalidations (or commands) in progress, each applied when its completion tick comes:
/// until then the cached translations they remove stay usable.
#[derive(Debug, Clone)]
pub struct Pending<C> {
    items: Vec<(Tick, C)>,
}

impl<C> Default for Pending<C> {
    fn default() -> Self {
        Pending { items: Vec::new() }
    }
}

impl<C> Pending<C> {
    /// `c` completes at `done`.
    pub fn push(&mut self, done: Tick, c: C) {
        self.items.push((done, c));
    }

    /// Those whose completion tick is at or before `now`, in the order they were pushed.
    pub fn due(&mut self, now: Tick) -> Vec<C> {
        if self.items.iter().all(|(t, _)| *t > now) {
            return Vec::new();
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.items)
            .into_iter()
            .partition(|(t, _)| *t <= now);
        self.items = later;
        due.into_iter().map(|(_, c)| c).collect()
    }

    /// How many are still in progress at `now`.
    pub fn in_progress(&self, now: Tick) -> usize {
        self.items.iter().filter(|(t, _)| *t > now).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{Bdf, Iova};
    use crate::translate::AccessKind;

    fn w(token: u64) -> Waiter {
        Waiter {
            token,
            ready: Tick::ZERO,
            req: TranslationRequest {
                requester: Bdf::default(),
                iova: Iova(0),
                len: 4,
                access: AccessKind::Read,
                pasid: None,
                execute: false,
                privileged: false,
                no_snoop: false,
                translated: false,
            },
        }
    }

    #[test]
    fn misses_merge_queue_and_respect_the_invalidation_epoch() {
        let mut s: WalkSlots<u32, &str> = WalkSlots::new(1);
        let t = Tick::from_ps(5);
        assert_eq!(s.miss(7, w(1), t, || "a"), Missed::Start(0));
        assert_eq!(s.miss(7, w(2), t, || "b"), Missed::Merged);
        assert_eq!(s.miss(8, w(3), t, || "c"), Missed::Queued(1));
        assert_eq!(s.next_queued(), None, "the only slot is taken");
        // An invalidation completes: a new miss for key 7 does not join walk 0 ...
        s.invalidated();
        assert_eq!(s.miss(7, w(4), t, || "d"), Missed::Queued(2));
        // ... and walk 0 may not fill the caches.
        let (slot, fill) = s.finish(0).unwrap();
        assert_eq!((slot.waiters.len(), fill), (2, false));
        assert_eq!(s.next_queued(), Some((1, t)));
        assert_eq!(s.next_queued(), None);
        assert_eq!((s.started(), s.merged()), (3, 1));
    }

    #[test]
    fn pending_items_come_due_in_order() {
        let mut p = Pending::default();
        p.push(Tick::from_ps(10), 'a');
        p.push(Tick::from_ps(5), 'b');
        p.push(Tick::from_ps(20), 'c');
        assert!(p.due(Tick::from_ps(4)).is_empty());
        assert_eq!(p.in_progress(Tick::from_ps(4)), 3);
        assert_eq!(p.due(Tick::from_ps(10)), vec!['a', 'b']);
        assert_eq!(p.due(Tick::from_ps(100)), vec!['c']);
    }
}
