//! Simulator errors of the cache hierarchy: bad calls and broken invariants. None of them is
//! a modelled event (stale data is an ordinary outcome, reported through effects); after an
//! error the hierarchy's state is unspecified and the run should stop.

use crate::hierarchy::CoreId;
use crate::mesi::{ImpossibleTransition, LineState};
use model_core::{LineAddr, PhysAddr, Tick};

/// A broken coherence invariant, found by [`crate::Hierarchy::check_invariants`] or
/// [`crate::Hierarchy::check_data_coherent`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invariant {
    /// Single writer / multiple readers: a core holds E or M while others hold copies.
    #[error(
        "{line}: single-writer/multiple-reader violated, holders {holders:#x} include an E/M copy"
    )]
    SingleWriter {
        /// The line.
        line: LineAddr,
        /// Bit mask of the cores holding it.
        holders: u64,
    },
    /// A core holds a line the directory does not list for it.
    #[error("{line}: {core} holds it but the directory does not list it")]
    Unlisted {
        /// The core.
        core: CoreId,
        /// The line.
        line: LineAddr,
    },
    /// The directory lists a core that does not hold the line.
    #[error("{line}: the directory lists {core}, which does not hold it")]
    StaleListing {
        /// The core.
        core: CoreId,
        /// The line.
        line: LineAddr,
    },
    /// A transient state outlived the request that created it.
    #[error("{line}: {core} left in transient state {state}")]
    Transient {
        /// The core.
        core: CoreId,
        /// The line.
        line: LineAddr,
        /// The state.
        state: LineState,
    },
    /// An inclusive LLC lacks a privately cached line.
    #[error("{line}: cached by a core but absent from the inclusive LLC")]
    NotInclusive {
        /// The line.
        line: LineAddr,
    },
    /// A line in a core's L1 is missing from its L2 (L2 includes L1).
    #[error("{line}: in {core}'s L1 but not in its L2")]
    L1NotInL2 {
        /// The core.
        core: CoreId,
        /// The line.
        line: LineAddr,
    },
    /// A clean copy differs from the value it should equal (snooped-only traffic).
    #[error("{line}: {copy} differs from the coherent value")]
    Data {
        /// The line.
        line: LineAddr,
        /// Which copy ("core 1's S copy", "the clean LLC copy").
        copy: String,
    },
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// The MESI table has no entry for what happened.
    #[error("{core}, {line}: {source}")]
    Protocol {
        /// The core whose line it is.
        core: CoreId,
        /// The line.
        line: LineAddr,
        /// The pair.
        source: ImpossibleTransition,
    },
    /// A coherence invariant does not hold.
    #[error("invariant broken: {0}")]
    Invariant(#[from] Invariant),
    /// No such core.
    #[error("{core} does not exist (the hierarchy has {cores} cores)")]
    UnknownCore {
        /// The core asked for.
        core: CoreId,
        /// How many there are.
        cores: u16,
    },
    /// A CPU access must be 1 to 64 bytes.
    #[error("a CPU access of {len} bytes: loads and stores are 1 to 64 bytes")]
    BadLength {
        /// The length asked for.
        len: usize,
    },
    /// The access runs past the top of the physical address space.
    #[error("{len} bytes at {pa} run past the end of the 64-bit address space")]
    AddressOverflow {
        /// First byte.
        pa: PhysAddr,
        /// Length.
        len: usize,
    },
    /// Calls must come in non-decreasing `now`.
    #[error("called at {now}, before the previous call at {last}")]
    TimeWentBackwards {
        /// This call's time.
        now: Tick,
        /// The previous call's time.
        last: Tick,
    },
}
