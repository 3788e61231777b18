//! `cache`: where DMA meets the CPU's caches, and where corruption happens.
//!
//! What this crate owns (DESIGN.md "Layout"):
//! * [`dram`]: DRAM timing (a latency plus a shared channel whose bandwidth serialises
//!   accesses) holding the real bytes of physical memory. Used alike by CPU misses,
//!   write-backs, DMA and IOMMU page walks.
//! * [`mesi`]: the MESI controller of a private cache as one `(state, event)` table
//!   ([`mesi::transition`], printable with [`mesi::table_text`]).
//! * [`Hierarchy`]: per-core private L1 (and optional L2), a shared LLC (inclusive or not)
//!   with a directory of the cores holding each line, 64-byte lines carrying real bytes,
//!   write-back and write-allocate, DRAM behind. CPU [`load`](Hierarchy::load) /
//!   [`store`](Hierarchy::store); device [`dma_read`](Hierarchy::dma_read) /
//!   [`dma_write`](Hierarchy::dma_write), snooped or not (the root complex decides, this
//!   model is handed `snooped`), with optional DDIO allocation; clflush, clflushopt, clwb,
//!   wbinvd, wbnoinvd, sfence, mfence with their costs and fence ordering.
//! * [`effect`]: every performed memory effect, reported to an [`Observer`], so that a
//!   coherent reference memory can classify stale CPU reads, stale device reads and lost
//!   DMA writes. The reference memory and the classification live with the engine's
//!   checker (`sim/src/check.rs`).
//! * [`config`] (sizes, latencies, costs with sources), [`stats`], [`error`].
//!
//! ```text
//!   core 0 ─ L1 ─ (L2) ─┐
//!   core 1 ─ L1 ─ (L2) ─┼─ directory + LLC (DDIO ways) ─┬─ DRAM channel ─ DRAM bytes
//!   DMA (snooped) ──────┘                               │
//!   DMA (no snoop) ─────────────────────────────────────┘
//! ```
//!
//! Not modelled: store buffers and load speculation (loads and stores are performed at
//! their call), line sizes other than 64 bytes, a finite snoop filter (the directory is
//! exact), an uncore clock apart from the core clock, multiple sockets, INVD, the MESIF /
//! MOESI variants.
//!
//! ## Call-order contract
//!
//! The hierarchy is a pure state machine: it reads no clock and calls nobody but its
//! [`Dram`] and its [`Observer`].
//! * The engine calls every operation with `now` in non-decreasing order across all calls
//!   (an earlier `now` is [`CacheError::TimeWentBackwards`]). Each call performs its data
//!   effects at `now`, reports them to the observer in the order performed, and returns
//!   the tick at which its requester may consider it complete (the data of a load, the
//!   ownership of a store, the write-back of a clflush, the end of a fence's or wbinvd's
//!   stall). Like [`Dram`], bytes move at the call; the returned tick is the latency.
//! * clflushopt and clwb are the exception: they leave a pending flush per core, with no
//!   effect until it is performed, at its due tick or at its core's next sfence / mfence
//!   / wbinvd / wbnoinvd. [`Hierarchy::next_wakeup`] says when the earliest is due; the
//!   engine should schedule a call to [`Hierarchy::advance`] then so that its effects are
//!   observed on time. Every operation first performs what is due at its `now`, so
//!   skipping `advance` never changes the data outcome, only when the observer hears of it.
//! * A core's program must not issue its next instruction before the tick an operation
//!   returned if the ISA makes the core wait (fences, wbinvd, loads it depends on); it
//!   may continue right after clflushopt / clwb returns: that is what makes a missing
//!   fence a real bug.
//! * Errors are simulator errors (a broken invariant, a bad call), never modelled events.
#![forbid(unsafe_code)]

pub mod config;
pub mod dram;
pub mod effect;
pub mod error;
mod hierarchy;
pub mod mesi;
pub mod stats;
pub mod verify;

pub use config::{
    ConfigError, FlushCosts, Geometry, HierarchyConfig, LevelConfig, LlcConfig, WbinvdScope,
    LINE_BYTES, MAX_CORES,
};
pub use dram::{Dram, DramConfig, DramError, DramStats};
pub use effect::{
    DmaTarget, Effect, EffectKind, EffectLog, EffectRecord, FlushKind, NoObserver, Observer,
    Source, WriteBackCause,
};
pub use error::{CacheError, Invariant};
pub use hierarchy::{CoreId, Hierarchy};
pub use mesi::{Event, LineState};
pub use stats::{DmaStats, FlushStats, HierarchyStats, LevelStats, SnoopStats};
