//! `model-core`: the vocabulary every snoopsim model shares.
//!
//! * [`time`]: [`Tick`] (a point in simulated time, picoseconds), [`Span`] (a duration),
//!   [`Cycles`] (a count in some clock) and [`ClockDomain`], the one place where cycles
//!   become picoseconds.
//! * [`addr`]: newtypes for every address space and identifier ([`PhysAddr`], [`Iova`],
//!   [`Bdf`], [`LineAddr`]), so a translation signature documents itself.
//! * [`mem`]: sparse, data-carrying byte memory used for DRAM contents and for the coherent
//!   reference memory of the corruption checker.
//! * [`translate`]: the [`TranslationAgent`] interface that the VT-d and AMD-Vi models
//!   implement, and [`IdentityTranslation`] for platforms without an IOMMU.
//!
//! * [`walks`]: [`WalkSlots`] and [`Pending`], the walk-slot, miss-merging and
//!   invalidation-epoch bookkeeping every IOMMU model shares.
//!
//! * [`setassoc`]: [`SetAssoc`], the generic set-associative array with LRU and tree
//!   pseudo-LRU replacement shared by CPU caches, IOTLBs and walk caches.
//!
//! * `testkit` (feature `testkit`, for tests only): the overlay memory, event pump and
//!   randomized-testing helpers the IOMMU models' integration tests share.
//!
//! Nothing in this crate reads a clock, performs I/O or knows about the event engine: models
//! are pure state machines that are handed `now` and return what they emit and when.
#![forbid(unsafe_code)]

pub mod addr;
pub mod mem;
pub mod setassoc;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod time;
pub mod translate;
pub mod walks;

pub use addr::{Bdf, BdfParseError, Iova, LineAddr, PhysAddr};
pub use mem::{MemWrite, PageAllocError, PageAllocator, SparseMemory, TABLE_PAGE_BYTES};
pub use setassoc::{CountedCache, Inserted, Replacement, SetAssoc, SetAssocError, WayMask};
pub use time::{ClockDomain, ClockError, Cycles, Span, Tick};
pub use translate::{
    AccessKind, AgentError, AgentOutput, AgentStats, CacheCounts, IdentityTranslation, Translation,
    TranslationAgent, TranslationFault, TranslationRequest,
};
pub use walks::{Missed, Pending, Slot, Waiter, WalkSlots};
