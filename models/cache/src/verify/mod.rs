//! Protocol verification of the hierarchy, the way coherence protocols are verified in
//! industry: an exhaustive explicit-state exploration of a small configuration (in the
//! manner of Murphi or TLC: breadth first, with states canonicalised and deduplicated),
//! and a seeded random tester for large runs (after gem5's `memtest`).
//!
//! * [`explore`]: every interleaving of up to [`ExploreConfig::depth`] operations — loads,
//!   stores, clflush, clflushopt, clwb, sfence, wbinvd, wbnoinvd by each of 2 cores on each
//!   of 1–2 lines; snooped and (optionally) no-snoop DMA reads and writes; "time passes",
//!   which lets the earliest pending weak flush perform — from an empty hierarchy of each
//!   [`Shape`]. After every step it checks (a) [`Hierarchy::check_invariants`]
//!   (single-writer/multiple-reader, directory, inclusion, no transient left); (b) while the
//!   execution has used snooped DMA only, the data-value invariant: every load and device
//!   read returns the latest value written, every copy that should be current is, and
//!   [`Hierarchy::check_data_coherent`]; (c) once no-snoop DMA was used, which hazards are
//!   reachable, each with the shortest operation sequence reaching it.
//! * [`random`]: millions of random operations (any length and alignment, several cores,
//!   conflicting lines, snooped DMA, time-triggered weak flushes) on several shapes, checking
//!   the invariants after every operation and the data against a byte-level reference.
//!
//! ## The abstraction (and why deduplication is sound)
//!
//! A written value is a *version*: a store or DMA write puts `latest + 1` (per line) in the
//! line's first byte, the other bytes stay zero. The canonical key of a state keeps, per
//! line: each core's MESI state, way and whether its copy *equals the latest value*; the
//! directory's holders; the LLC copy's presence, dirty bit, way and equality; whether DRAM
//! equals the latest value; whether the latest writer was a device. Per array, the way the
//! next allocation would evict (all ways, and the DDIO ways); the pending weak flushes
//! (core, line, kind) in the order they will perform; the shape; whether no-snoop DMA has
//! been used. Time, counters and the version numbers themselves are dropped.
//!
//! Two states with the same key behave the same from then on, as far as every check can
//! see, because:
//! * versions only grow, so a new write never equals an existing copy: a copy that is not
//!   the latest value stays so until overwritten, and copies move (fills, write-backs,
//!   merges) carrying their equality with them. Every check compares a value with the latest
//!   one (a load, a device read, a write-back over a device's write) or is implied by such
//!   comparisons of the copies that must be current (the data-value invariant below), so
//!   equality with the latest value is all the checks need; equality *between* two stale
//!   copies is dropped, and no check needs it;
//! * which way a fill takes and which line it evicts depend only on which ways are free
//!   and, in a full set, on the replacement state, which for at most 2 ways (all a
//!   [`Shape`] may have) is exactly "which way is evicted next";
//! * nothing but a pending flush depends on time, and the explorer makes its timing
//!   irrelevant: a weak flush takes 2^40 cycles to come due, ordinary steps advance time by
//!   a strictly decreasing power of two of picoseconds (step `d` of at most `D` by
//!   `2^(D-1-d)` ps), so the time left after any step is shorter than the gap between any
//!   two pending flushes: a flush performs only by a fence, a wbinvd, or the explicit
//!   "time passes" step, which performs exactly the earliest one. The explorer checks both
//!   facts at every step and reports a harness violation if either fails.
//!
//! The data-value invariant is checked on the key alone: an M copy equals the latest value;
//! without one, every private copy and the LLC copy do, and so does DRAM unless the LLC
//! holds the line dirty. So a key either satisfies every check or it does not, and
//! exploring one state per key explores them all. When no new key appears before the depth
//! bound the report is *complete*: the reachable abstract state space is exhausted, and the
//! results hold for executions of any length over the same operations (any timing of a
//! concrete run maps to such an execution: a weak flush performed by time becomes a "time
//! passes" step, as all flushes come due in issue order). A unit test walks random paths
//! and checks that every (key, operation) pair always leads to the same next key, hazards
//! and check results, whatever the path, time and versions behind the key.
//!
//! Limits: 2 cores, at most 2 lines and 2 ways per set, no L2, private L1 only; at most
//! [`ExploreConfig::max_pending_per_core`] weak flushes per core; mfence is not a separate
//! step (the model treats it as sfence); accesses are 1 byte at the start of the line (and
//! optionally whole-line DMA writes), so multi-line and unaligned accesses and partial
//! overlaps are left to the random tester, as are time-triggered flushes racing with
//! ordinary steps and latencies.

mod explore;
mod random;
mod report;
mod setup;
mod state;

pub use explore::explore;
pub use random::{random, RandomConfig};
pub use report::{
    ExploreReport, HazardTrace, RandomReport, RandomViolation, ShapeCount, ShapeRun, Trace,
    TraceStep, Violation,
};
pub use setup::{ExploreConfig, Flaw, Shape, MAX_DEPTH};

use crate::hierarchy::CoreId;
use crate::{Hierarchy, Observer};
use serde::Serialize;
use std::fmt;

/// What no-snoop DMA can do to data (the checker's classes, DESIGN.md "Data is real").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Hazard {
    /// A CPU load returned a value older than the latest write.
    StaleCpuRead,
    /// A device read returned a value older than the latest write.
    StaleDeviceRead,
    /// A write-back put older data over a device's write in DRAM.
    LostDmaWrite,
}

impl Hazard {
    /// Every hazard.
    pub const ALL: [Hazard; 3] = [
        Hazard::StaleCpuRead,
        Hazard::StaleDeviceRead,
        Hazard::LostDmaWrite,
    ];

    pub(crate) fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Hazard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hazard::StaleCpuRead => "stale CPU read",
            Hazard::StaleDeviceRead => "stale device read",
            Hazard::LostDmaWrite => "lost DMA write",
        })
    }
}

/// One step of an explored execution. Lines are numbered from 0 (printed A, B); a store or
/// DMA write puts the line's next version in its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Op {
    /// A 1-byte load at the start of the line.
    Load {
        /// The core.
        core: CoreId,
        /// The line.
        line: u8,
    },
    /// A 1-byte store of the next version.
    Store {
        /// The core.
        core: CoreId,
        /// The line.
        line: u8,
    },
    /// CLFLUSH.
    Clflush {
        /// The core.
        core: CoreId,
        /// The line.
        line: u8,
    },
    /// CLFLUSHOPT (pending until fenced or time passes).
    Clflushopt {
        /// The core.
        core: CoreId,
        /// The line.
        line: u8,
    },
    /// CLWB (pending until fenced or time passes).
    Clwb {
        /// The core.
        core: CoreId,
        /// The line.
        line: u8,
    },
    /// SFENCE (performs the core's pending flushes).
    Sfence {
        /// The core.
        core: CoreId,
    },
    /// WBINVD.
    Wbinvd {
        /// The core.
        core: CoreId,
    },
    /// WBNOINVD.
    Wbnoinvd {
        /// The core.
        core: CoreId,
    },
    /// A device writes the next version: the whole line, or only its first byte.
    DmaWrite {
        /// The line.
        line: u8,
        /// Through the coherent path.
        snooped: bool,
        /// 1 byte rather than 64.
        partial: bool,
    },
    /// A device reads the first byte.
    DmaRead {
        /// The line.
        line: u8,
        /// Through the coherent path.
        snooped: bool,
    },
    /// Time passes until the earliest pending weak flush performs.
    Advance,
}

impl Op {
    /// A device access that skips the snoop.
    pub fn is_no_snoop(self) -> bool {
        matches!(
            self,
            Op::DmaWrite { snooped: false, .. } | Op::DmaRead { snooped: false, .. }
        )
    }
}

/// `A`, `B`, … for line indices.
pub(crate) fn line_name(line: u8) -> char {
    char::from(b'A' + line)
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = |snooped| if snooped { "snooped" } else { "no-snoop" };
        match *self {
            Op::Load { core, line } => write!(f, "{core} load {}", line_name(line)),
            Op::Store { core, line } => write!(f, "{core} store {}", line_name(line)),
            Op::Clflush { core, line } => write!(f, "{core} clflush {}", line_name(line)),
            Op::Clflushopt { core, line } => write!(f, "{core} clflushopt {}", line_name(line)),
            Op::Clwb { core, line } => write!(f, "{core} clwb {}", line_name(line)),
            Op::Sfence { core } => write!(f, "{core} sfence"),
            Op::Wbinvd { core } => write!(f, "{core} wbinvd"),
            Op::Wbnoinvd { core } => write!(f, "{core} wbnoinvd"),
            Op::DmaWrite {
                line,
                snooped,
                partial,
            } => {
                let size = if partial { " (1 byte)" } else { "" };
                write!(f, "DMA {} write {}{size}", path(snooped), line_name(line))
            }
            Op::DmaRead { line, snooped } => {
                write!(f, "DMA {} read {}", path(snooped), line_name(line))
            }
            Op::Advance => f.write_str("time passes: the earliest weak flush performs"),
        }
    }
}

/// A copy of the whole hierarchy, observer included (the explorer's successor states).
/// Spelled out field by field so that a new field is a compile error here, not a silently
/// shared one.
pub(crate) fn fork<O: Observer + Clone>(h: &Hierarchy<O>) -> Hierarchy<O> {
    Hierarchy {
        config: h.config,
        clock: h.clock,
        cores: h.cores.clone(),
        llc: h.llc.clone(),
        directory: h.directory.clone(),
        dram: h.dram.clone(),
        pending: h.pending.clone(),
        seq: h.seq,
        last_now: h.last_now,
        stats: h.stats,
        observer: h.observer.clone(),
    }
}
