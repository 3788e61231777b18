//! The event engine: the only place in snoopsim that knows about time passing.
//!
//! Events are plain values of some type `E` (the system's `Event` enum, dispatched by
//! `match`), kept in a binary heap ordered by `(tick, sequence number)`. The sequence number
//! is the order of scheduling, so events at the same tick run first-scheduled first, and two
//! runs of the same scenario process the same events in the same order (smoltcp's netsim
//! and nexosim's scheduler do the same). Scheduling in the past is an error, not a reorder.

use model_core::{Span, Tick};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A simulator invariant broke while scheduling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// A component asked for an event before the current time.
    #[error("event scheduled in the past: at {at} while the engine is at {now}")]
    InThePast {
        /// The requested tick.
        at: Tick,
        /// The engine's current tick.
        now: Tick,
    },
}

#[derive(Debug)]
struct Entry<E> {
    at: Tick,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest `(tick, seq)` first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Pending events in deterministic order.
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry<E>>,
    now: Tick,
    next_seq: u64,
    processed: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            now: Tick::ZERO,
            next_seq: 0,
            processed: 0,
        }
    }
}

impl<E> EventQueue<E> {
    /// An empty queue at tick zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tick of the event being processed (or of the last one processed).
    pub fn now(&self) -> Tick {
        self.now
    }

    /// Events popped so far.
    pub fn processed(&self) -> u64 {
        self.processed
    }

    /// Events waiting.
    pub fn pending(&self) -> usize {
        self.heap.len()
    }

    /// Schedules `event` at `at`, which must not be before [`Self::now`].
    pub fn schedule(&mut self, at: Tick, event: E) -> Result<(), EngineError> {
        if at < self.now {
            return Err(EngineError::InThePast { at, now: self.now });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Entry { at, seq, event });
        Ok(())
    }

    /// Schedules `event` `delay` after now.
    pub fn schedule_in(&mut self, delay: Span, event: E) {
        let at = self.now + delay;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Entry { at, seq, event });
    }

    /// The tick of the next event, if any.
    pub fn peek_tick(&self) -> Option<Tick> {
        self.heap.peek().map(|e| e.at)
    }

    /// Removes the earliest event and advances time to it.
    pub fn pop(&mut self) -> Option<(Tick, E)> {
        let e = self.heap.pop()?;
        self.now = e.at;
        self.processed += 1;
        Some((e.at, e.event))
    }
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The workload finished and no event is left.
    Completed,
    /// The next event lay beyond the simulated-time limit.
    TimeLimit,
    /// The event limit was reached.
    EventLimit,
    /// No event was left, yet the handler's workload was not finished.
    Stalled,
}

/// Limits that end a run early. Hitting one is reported, never silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// No event at or after this tick is processed.
    pub max_time: Tick,
    /// At most this many events are processed.
    pub max_events: u64,
}

/// Something that reacts to events; the system implements it.
pub trait Handler<E> {
    /// The error a handler can raise (a broken invariant).
    type Error;
    /// Handles one event at `now`, scheduling follow-ups on `queue`.
    fn handle(&mut self, now: Tick, event: E, queue: &mut EventQueue<E>)
        -> Result<(), Self::Error>;

    /// The workload is done: events still queued (timers that can no longer matter) are
    /// not run. Called before every event, so it must be cheap.
    fn finished(&self) -> bool {
        false
    }

    /// Asked when no event is left: whether work remained undone (the run then stalled).
    fn work_remains(&self) -> bool {
        false
    }
}

/// Runs events until the workload is done, none is left, or a limit is reached.
pub fn run<E, H: Handler<E>>(
    queue: &mut EventQueue<E>,
    handler: &mut H,
    limits: Limits,
) -> Result<StopReason, H::Error> {
    loop {
        if handler.finished() {
            return Ok(StopReason::Completed);
        }
        let Some(at) = queue.peek_tick() else {
            return Ok(if handler.work_remains() {
                StopReason::Stalled
            } else {
                StopReason::Completed
            });
        };
        if at >= limits.max_time {
            return Ok(StopReason::TimeLimit);
        }
        if queue.processed() >= limits.max_events {
            return Ok(StopReason::EventLimit);
        }
        if let Some((now, event)) = queue.pop() {
            handler.handle(now, event, queue)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_ticks_pop_in_scheduling_order() {
        let mut q = EventQueue::new();
        for (t, name) in [(5, "a"), (3, "b"), (5, "c"), (3, "d"), (5, "e")] {
            q.schedule(Tick::from_ps(t), name).unwrap();
        }
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).map(|(_, n)| n).collect();
        assert_eq!(order, vec!["b", "d", "a", "c", "e"]);
    }

    #[test]
    fn scheduling_in_the_past_is_an_error() {
        let mut q = EventQueue::new();
        q.schedule(Tick::from_ps(10), ()).unwrap();
        q.pop();
        assert_eq!(
            q.schedule(Tick::from_ps(9), ()),
            Err(EngineError::InThePast {
                at: Tick::from_ps(9),
                now: Tick::from_ps(10)
            })
        );
        assert!(
            q.schedule(Tick::from_ps(10), ()).is_ok(),
            "now itself is fine"
        );
    }

    /// A handler that reschedules itself forever: only a limit can stop it.
    struct Forever;
    impl Handler<u32> for Forever {
        type Error = EngineError;
        fn handle(
            &mut self,
            _now: Tick,
            ev: u32,
            q: &mut EventQueue<u32>,
        ) -> Result<(), EngineError> {
            q.schedule_in(Span::from_ns(1), ev + 1);
            Ok(())
        }
    }

    /// Work until `until`, plus a far-off timer that must not hold the run open.
    struct WithTimer {
        until: u32,
        done: bool,
    }
    impl Handler<u32> for WithTimer {
        type Error = EngineError;
        fn handle(
            &mut self,
            _now: Tick,
            ev: u32,
            q: &mut EventQueue<u32>,
        ) -> Result<(), EngineError> {
            if ev == 0 {
                q.schedule_in(Span::from_ns(1_000_000), u32::MAX); // the timer
            }
            if ev < self.until {
                q.schedule_in(Span::from_ns(1), ev + 1);
            } else {
                self.done = true;
            }
            Ok(())
        }
        fn finished(&self) -> bool {
            self.done
        }
    }

    #[test]
    fn a_finished_workload_ends_the_run_without_waiting_for_stale_timers() {
        let mut q = EventQueue::new();
        q.schedule(Tick::ZERO, 0).unwrap();
        let mut h = WithTimer {
            until: 10,
            done: false,
        };
        let limits = Limits {
            max_time: Tick::MAX,
            max_events: u64::MAX,
        };
        assert_eq!(run(&mut q, &mut h, limits), Ok(StopReason::Completed));
        assert_eq!(
            q.now(),
            Tick::from_ps(10_000),
            "stopped at the last real event"
        );
        assert_eq!(q.pending(), 1, "the timer was left unrun");
    }

    #[test]
    fn limits_stop_a_run_that_would_never_end_and_say_which() {
        let mut q = EventQueue::new();
        q.schedule(Tick::ZERO, 0).unwrap();
        let limits = Limits {
            max_time: Tick::from_ps(1_000_000),
            max_events: 100,
        };
        assert_eq!(
            run(&mut q, &mut Forever, limits),
            Ok(StopReason::EventLimit)
        );
        assert_eq!(q.processed(), 100);

        let mut q = EventQueue::new();
        q.schedule(Tick::ZERO, 0).unwrap();
        let limits = Limits {
            max_time: Tick::from_ps(10_500),
            max_events: u64::MAX,
        };
        assert_eq!(run(&mut q, &mut Forever, limits), Ok(StopReason::TimeLimit));
        // Events at 0..=10 ns ran; the one at 11 ns lies beyond the limit.
        assert_eq!(q.processed(), 11);
        assert_eq!(q.now(), Tick::from_ps(10_000));
    }
}
