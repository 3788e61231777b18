//! Configuration of the cache hierarchy: sizes, associativity, replacement, latencies in
//! core cycles and flush costs, each with its unit in its name or type and its source.
//!
//! Defaults describe a Skylake-SP-like part (AnandTech, "The Intel Skylake-X Review",
//! page 4 "I Keep My Cache Private", 2017: L1D 32 KB 8-way 4 cycles; L2 1 MB 16-way
//! 11–13 cycles; L3 1.375 MB/core 11-way non-inclusive, 77 cycles). Values marked
//! *assumption* have no published source we could check and are to be replaced by
//! measurement (SPEC-NOTES §5: modern flush costs are UNCONFIRMED).

use model_core::{ClockDomain, ClockError, Cycles, Replacement};
use serde::{Deserialize, Serialize};

/// Bytes per cache line (Intel SDM, CPUID.01H:EBX\[15:8\] "CLFLUSH line size" × 8). Fixed:
/// lines carry `[u8; 64]`.
pub const LINE_BYTES: usize = 64;
/// Most cores a hierarchy can have (the directory keeps a 64-bit sharer mask per line).
pub const MAX_CORES: u16 = 64;

/// One set-associative level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelConfig {
    /// Capacity in KiB; `size_kib × 1024 / (ways × 64)` must be a power-of-two set count.
    pub size_kib: u64,
    /// Associativity (1 ..= 64).
    pub ways: usize,
    /// Victim choice in a full set.
    pub replacement: Replacement,
    /// Load-to-use latency of a hit at this level, in core cycles.
    pub hit_cycles: Cycles,
}

impl LevelConfig {
    /// Lines the level holds.
    pub fn lines(&self) -> u64 {
        self.size_kib * 1024 / LINE_BYTES as u64
    }

    fn sets(&self, level: &'static str) -> Result<usize, ConfigError> {
        let bad = || ConfigError::Geometry {
            level,
            size_kib: self.size_kib,
            ways: self.ways,
        };
        if self.ways == 0 || !self.lines().is_multiple_of(self.ways as u64) {
            return Err(bad());
        }
        let sets = usize::try_from(self.lines() / self.ways as u64).map_err(|_| bad())?;
        if sets == 0 || !sets.is_power_of_two() || self.ways > 64 {
            return Err(bad());
        }
        Ok(sets)
    }
}

/// The shared last-level cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlcConfig {
    /// Size, ways, replacement and hit latency.
    pub level: LevelConfig,
    /// Inclusive: every privately cached line is also in the LLC, and an LLC eviction
    /// back-invalidates the private copies. Non-inclusive: the LLC is filled by private
    /// evictions (a victim cache) and by DDIO; a directory tracks private copies.
    pub inclusive: bool,
    /// Ways a snooped DMA write may allocate into when the line is not in the LLC
    /// (Intel DDIO); 0 turns DDIO off (DMA writes then go to DRAM). Default 2: DDIO
    /// allocates into "2 ways in an n-way set-associative cache" (Farshin et al.,
    /// "Reexamining Direct Cache Access…", USENIX ATC 2020, as documented by fastclick's
    /// `DDIOTune`; the ways are set by MSR 0xC8B, `IIO_LLC_WAYS`).
    pub ddio_ways: u32,
}

/// What a `wbinvd` / `wbnoinvd` walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WbinvdScope {
    /// Every core's private caches and the LLC ("the whole hierarchy").
    AllCores,
    /// The issuing core's private caches and the shared LLC (SDM: CPUID.4:EDX\[0\] = 0, the
    /// shared level is written back for all its sharers). Other cores' private copies are
    /// only touched by an inclusive LLC's back-invalidation. This is why KVM runs WBINVD on
    /// every pCPU the vCPU ran on.
    IssuerAndShared,
}

/// Costs of the flush and fence instructions, in core cycles. DRAM time of the write-backs
/// they cause comes from the [`crate::Dram`] model on top of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlushCosts {
    /// clflush / clflushopt / clwb: from issue until the line is gone from (or clean in)
    /// every cache, before any write-back reaches DRAM. *Assumption*: 100 cycles.
    pub flush_line_cycles: Cycles,
    /// clflushopt / clwb: cycles before the issuing core may go on (they are weakly
    /// ordered). *Assumption*: 5 cycles.
    pub flush_issue_cycles: Cycles,
    /// sfence / mfence with nothing outstanding. *Assumption*: 30 cycles.
    pub fence_cycles: Cycles,
    /// wbinvd / wbnoinvd fixed cost. *Assumption*: 2000 cycles, after the only published
    /// figure found, "2000+" clocks on a 486 (qb40.github.io asm-help, WBINVD).
    pub wbinvd_base_cycles: Cycles,
    /// wbinvd / wbnoinvd cost per line of capacity walked (valid or not), so the cost grows
    /// with cache size. *Assumption*: 1 cycle.
    pub wbinvd_cycles_per_line: Cycles,
    /// wbinvd / wbnoinvd extra cost per dirty line written back. *Assumption*: 10 cycles.
    pub wbinvd_cycles_per_dirty_line: Cycles,
}

impl Default for FlushCosts {
    fn default() -> FlushCosts {
        FlushCosts {
            flush_line_cycles: Cycles(100),
            flush_issue_cycles: Cycles(5),
            fence_cycles: Cycles(30),
            wbinvd_base_cycles: Cycles(2_000),
            wbinvd_cycles_per_line: Cycles(1),
            wbinvd_cycles_per_dirty_line: Cycles(10),
        }
    }
}

/// The whole hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HierarchyConfig {
    /// Number of cores (1 ..= 64), each with private caches. *Assumption*: 2.
    pub cores: u16,
    /// Core (and, in this model, uncore) clock in MHz. *Assumption*: 3000 MHz.
    pub core_mhz: u64,
    /// Private first level (Skylake-SP: 32 KiB, 8-way, 4 cycles).
    pub l1: LevelConfig,
    /// Optional private second level, inclusive of L1 (Skylake-SP: 1 MiB, 16-way,
    /// 13 cycles, the top of AnandTech's "11–13").
    pub l2: Option<LevelConfig>,
    /// Shared last level (Skylake-SP: 1.375 MiB per core, 11-way, 77 cycles,
    /// non-inclusive).
    pub llc: LlcConfig,
    /// Extra cycles when the home must snoop another core (cache-to-cache transfer or
    /// invalidation), on top of the LLC lookup. *Assumption*: 30 cycles.
    pub snoop_cycles: Cycles,
    /// Flush and fence costs.
    pub flush: FlushCosts,
    /// What wbinvd / wbnoinvd walk. Default [`WbinvdScope::AllCores`].
    pub wbinvd_scope: WbinvdScope,
}

impl Default for HierarchyConfig {
    fn default() -> HierarchyConfig {
        let pseudo = Replacement::PseudoLru; // assumption: Intel does not document its policy
        HierarchyConfig {
            cores: 2,
            core_mhz: 3_000,
            l1: LevelConfig {
                size_kib: 32,
                ways: 8,
                replacement: pseudo,
                hit_cycles: Cycles(4),
            },
            l2: Some(LevelConfig {
                size_kib: 1024,
                ways: 16,
                replacement: pseudo,
                hit_cycles: Cycles(13),
            }),
            llc: LlcConfig {
                level: LevelConfig {
                    size_kib: 2 * 1408, // 1.375 MiB per core
                    ways: 11,
                    replacement: pseudo,
                    hit_cycles: Cycles(77),
                },
                inclusive: false,
                ddio_ways: 2,
            },
            snoop_cycles: Cycles(30),
            flush: FlushCosts::default(),
            wbinvd_scope: WbinvdScope::AllCores,
        }
    }
}

/// The checked shape derived from a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// L1 sets.
    pub l1_sets: usize,
    /// L2 sets, if there is an L2.
    pub l2_sets: Option<usize>,
    /// LLC sets.
    pub llc_sets: usize,
    /// The core clock.
    pub clock: ClockDomain,
}

/// A configuration the hierarchy cannot have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Core count out of range.
    #[error("a hierarchy needs 1 to {MAX_CORES} cores, not {cores}")]
    Cores {
        /// The requested count.
        cores: u16,
    },
    /// Size and ways do not give a power-of-two number of 64-byte-line sets.
    #[error("{level}: {size_kib} KiB in {ways} ways is not a power-of-two number of 64-byte-line sets (ways must be 1 to 64)")]
    Geometry {
        /// Which level.
        level: &'static str,
        /// Its size.
        size_kib: u64,
        /// Its ways.
        ways: usize,
    },
    /// DDIO cannot use more ways than the LLC has.
    #[error("llc: ddio_ways {ddio_ways} exceeds the LLC's {ways} ways")]
    DdioWays {
        /// Requested DDIO ways.
        ddio_ways: u32,
        /// LLC ways.
        ways: usize,
    },
    /// The core clock is unusable.
    #[error("core_mhz: {0}")]
    Clock(#[from] ClockError),
}

impl HierarchyConfig {
    /// Checks the configuration and derives set counts and the clock.
    pub fn geometry(&self) -> Result<Geometry, ConfigError> {
        if self.cores == 0 || self.cores > MAX_CORES {
            return Err(ConfigError::Cores { cores: self.cores });
        }
        let llc_ways = self.llc.level.ways;
        if self.llc.ddio_ways as usize > llc_ways {
            return Err(ConfigError::DdioWays {
                ddio_ways: self.llc.ddio_ways,
                ways: llc_ways,
            });
        }
        Ok(Geometry {
            l1_sets: self.l1.sets("l1")?,
            l2_sets: self.l2.map(|l2| l2.sets("l2")).transpose()?,
            llc_sets: self.llc.level.sets("llc")?,
            clock: ClockDomain::from_mhz(self.core_mhz)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_a_valid_skylake_sp_like_shape() {
        let g = HierarchyConfig::default().geometry().unwrap();
        // 32 KiB / (8 × 64 B) = 64 sets; 1 MiB / (16 × 64 B) = 1024; 2816 KiB / (11 × 64 B) = 4096.
        assert_eq!((g.l1_sets, g.l2_sets, g.llc_sets), (64, Some(1024), 4096));
    }

    #[test]
    fn bad_shapes_name_the_level() {
        let mut c = HierarchyConfig::default();
        c.l1.size_kib = 48; // 96 sets
        assert!(c.geometry().unwrap_err().to_string().starts_with("l1:"));
        let mut c = HierarchyConfig::default();
        c.llc.ddio_ways = 12;
        assert!(matches!(c.geometry(), Err(ConfigError::DdioWays { .. })));
        let c = HierarchyConfig {
            cores: 0,
            ..HierarchyConfig::default()
        };
        assert!(matches!(c.geometry(), Err(ConfigError::Cores { cores: 0 })));
    }
}
