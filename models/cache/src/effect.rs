//! Performed memory effects, for the corruption checker (DESIGN.md "Data is real").
//!
//! The hierarchy reports every effect through an [`Observer`] at the moment it is
//! performed, in simulated order (calls come in non-decreasing `now`; within a call, in
//! the order the data moved). A checker keeps a coherent reference memory:
//!
//! * apply [`EffectKind::CpuStore`] and [`EffectKind::DmaWrite`] bytes to the reference
//!   (each performed write, whatever path it took);
//! * compare [`EffectKind::CpuLoad`] bytes with the reference: a mismatch is a **stale CPU
//!   read** (e.g. a no-snoop DMA write went to DRAM under a valid cached copy);
//! * compare [`EffectKind::DmaRead`] bytes with it: a mismatch is a **stale device read**
//!   (a no-snoop read got DRAM while a newer dirty line sat in a cache);
//! * compare [`EffectKind::WriteBack`] bytes with it: a byte that differs is being
//!   overwritten in DRAM by older data, a **lost DMA write** when the reference got that
//!   byte from a DMA write.
//!
//! [`EffectKind::FlushPerformed`] carries no data; it explains when a weakly ordered flush
//! actually took effect. Effects borrow their bytes, so the default [`NoObserver`] costs
//! nothing; [`EffectLog`] keeps owned copies for tests and explanations.

use crate::hierarchy::CoreId;
use model_core::{PhysAddr, Tick};
use serde::Serialize;

/// Which flush instruction (or whole-cache operation) caused something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlushKind {
    /// CLFLUSH: ordered; invalidates everywhere, writing back if dirty.
    Clflush,
    /// CLFLUSHOPT: as CLFLUSH but weakly ordered (needs SFENCE/MFENCE).
    Clflushopt,
    /// CLWB: writes back if dirty, keeps a clean copy; weakly ordered.
    Clwb,
    /// WBINVD: every modified line written back, everything invalidated.
    Wbinvd,
    /// WBNOINVD: every modified line written back, lines kept clean.
    Wbnoinvd,
}

/// Why a dirty line was written to DRAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteBackCause {
    /// The LLC evicted a dirty line (capacity, conflict, or DDIO allocation).
    LlcEviction,
    /// A flush instruction issued by `core`.
    Flush {
        /// The issuing core.
        core: CoreId,
        /// The instruction.
        kind: FlushKind,
    },
    /// A snooped partial DMA write merged with a dirty copy; the merged line went to DRAM.
    SnoopedDmaMerge,
}

/// Where the bytes of a read came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The reading core's L1.
    L1,
    /// The reading core's L2.
    L2,
    /// The shared LLC.
    Llc,
    /// Another core's private cache (cache-to-cache, or a snooped DMA read of a dirty line).
    Core(CoreId),
    /// DRAM.
    Dram,
}

/// Where a DMA write's bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DmaTarget {
    /// Into the LLC (DDIO write-update or allocation).
    Llc,
    /// Into DRAM.
    Dram,
}

/// What was performed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "effect")]
pub enum EffectKind {
    /// A CPU load returned `data` (one effect per line touched).
    CpuLoad {
        /// The loading core.
        core: CoreId,
        /// Where the line was found.
        from: Source,
    },
    /// A CPU store was performed into `core`'s private cache (one effect per line).
    CpuStore {
        /// The storing core.
        core: CoreId,
    },
    /// A dirty line (`data` = 64 bytes) was written into DRAM.
    WriteBack {
        /// Why.
        cause: WriteBackCause,
    },
    /// A device write was performed (snooped: one effect per line; no-snoop: one for the
    /// whole range).
    DmaWrite {
        /// Whether it went through the coherent path.
        snooped: bool,
        /// Where the bytes went.
        into: DmaTarget,
    },
    /// A device read returned `data` (snooped: one effect per line; no-snoop: one).
    DmaRead {
        /// Whether it went through the coherent path.
        snooped: bool,
        /// Where the bytes came from.
        from: Source,
    },
    /// A flush of the line at `pa` took effect in every cache (`data` is empty). For
    /// clflushopt / clwb this is when the pending flush was performed, not when issued.
    FlushPerformed {
        /// The issuing core.
        core: CoreId,
        /// The instruction.
        kind: FlushKind,
    },
}

/// One performed effect; `data` borrows the bytes moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effect<'a> {
    /// When it was performed.
    pub at: Tick,
    /// First byte affected.
    pub pa: PhysAddr,
    /// The bytes (empty for [`EffectKind::FlushPerformed`]).
    pub data: &'a [u8],
    /// What happened.
    pub kind: EffectKind,
}

/// Receives every performed effect. The default method ignores it.
pub trait Observer {
    /// Called once per effect, in simulated order.
    fn on_effect(&mut self, effect: &Effect<'_>) {
        let _ = effect;
    }
}

/// Ignores every effect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoObserver;

impl Observer for NoObserver {}

/// An owned copy of an [`Effect`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EffectRecord {
    /// When it was performed.
    pub at: Tick,
    /// First byte affected.
    pub pa: PhysAddr,
    /// The bytes.
    pub data: Vec<u8>,
    /// What happened.
    pub kind: EffectKind,
}

impl From<&Effect<'_>> for EffectRecord {
    fn from(e: &Effect<'_>) -> EffectRecord {
        EffectRecord {
            at: e.at,
            pa: e.pa,
            data: e.data.to_vec(),
            kind: e.kind,
        }
    }
}

/// Records every effect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EffectLog {
    /// The effects, in the order performed.
    pub records: Vec<EffectRecord>,
}

impl Observer for EffectLog {
    fn on_effect(&mut self, effect: &Effect<'_>) {
        self.records.push(effect.into());
    }
}
