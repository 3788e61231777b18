//! Counters of the cache hierarchy, for reports.

use model_core::Span;
use serde::Serialize;

/// Hits and misses of one level (counted per line accessed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LevelStats {
    /// Accesses that found the line at this level.
    pub hits: u64,
    /// Accesses that looked here and went further.
    pub misses: u64,
}

/// Snoops the home sent to private caches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SnoopStats {
    /// Another core's read miss forwarded to a lone holder.
    pub fwd_gets: u64,
    /// Invalidations for another core's write miss or upgrade.
    pub invalidations: u64,
    /// Snooped DMA reads and writes that reached a private cache.
    pub dma: u64,
    /// Back-invalidations by an inclusive LLC's evictions.
    pub back_invalidations: u64,
    /// Cache-to-cache transfers of dirty data (to a core or a device).
    pub dirty_forwards: u64,
}

/// Flush and fence instructions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FlushStats {
    /// CLFLUSH executed.
    pub clflush: u64,
    /// CLFLUSHOPT issued.
    pub clflushopt: u64,
    /// CLWB issued.
    pub clwb: u64,
    /// WBINVD executed.
    pub wbinvd: u64,
    /// WBNOINVD executed.
    pub wbnoinvd: u64,
    /// SFENCE executed.
    pub sfence: u64,
    /// MFENCE executed.
    pub mfence: u64,
    /// Weakly ordered flushes performed because a fence (or wbinvd) of their core forced them.
    pub weak_performed_by_fence: u64,
    /// Weakly ordered flushes performed at their own completion time.
    pub weak_performed_on_time: u64,
    /// Lines of capacity walked by wbinvd / wbnoinvd.
    pub wbinvd_lines_walked: u64,
    /// Dirty lines wbinvd / wbnoinvd wrote back.
    pub wbinvd_dirty_lines: u64,
}

/// Device accesses by path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DmaStats {
    /// Snooped reads (calls).
    pub snooped_reads: u64,
    /// No-snoop reads (calls).
    pub no_snoop_reads: u64,
    /// Snooped writes (calls).
    pub snooped_writes: u64,
    /// No-snoop writes (calls).
    pub no_snoop_writes: u64,
    /// Snooped write lines that updated a line already in the LLC (DDIO write-update).
    pub ddio_updates: u64,
    /// Snooped write lines allocated into the DDIO ways.
    pub ddio_allocations: u64,
}

/// Everything the hierarchy counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HierarchyStats {
    /// CPU loads (calls).
    pub loads: u64,
    /// CPU stores (calls).
    pub stores: u64,
    /// L1 (all cores).
    pub l1: LevelStats,
    /// L2 (all cores; zero without an L2).
    pub l2: LevelStats,
    /// LLC (CPU misses and snooped DMA lookups).
    pub llc: LevelStats,
    /// S → M upgrades.
    pub upgrades: u64,
    /// Snoops.
    pub snoops: SnoopStats,
    /// Dirty lines written from a private cache into the LLC.
    pub writebacks_to_llc: u64,
    /// Dirty lines written into DRAM (every cause).
    pub writebacks_to_dram: u64,
    /// Flushes and fences.
    pub flushes: FlushStats,
    /// Device accesses.
    pub dma: DmaStats,
    /// Time issuing cores spent stalled in fences and wbinvd / wbnoinvd.
    pub stall: Span,
}
