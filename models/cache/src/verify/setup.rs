//! What an exploration covers: the hierarchy shapes, the explored lines and operations,
//! and the deliberate flaws of the checker self-test.

use crate::config::{FlushCosts, HierarchyConfig, LevelConfig, LlcConfig, WbinvdScope};
use model_core::{Cycles, Replacement};
use std::fmt;

/// The deepest exploration supported (the timing argument of the module doc needs
/// `2^depth` ps to stay below a weak flush's delay).
pub const MAX_DEPTH: usize = 40;

/// A weak flush comes due 2^40 cycles (at 1 GHz, 2^40 ns) after issue: far beyond every
/// ordinary step, so only a fence, a wbinvd or an explicit "time passes" performs it.
const FLUSH_LINE_CYCLES: Cycles = Cycles(1 << 40);

/// The first explored line. Its set is 0 in every array of a [`Shape`].
const LINE_A: u64 = 0x1_0000;

/// Most lines an exploration may use.
pub(crate) const MAX_LINES: usize = 2;

/// The shape of one explored hierarchy: 2 cores, a private 1 KiB L1 each, a 1 KiB LLC.
/// The explored lines map to one set of each array (or to neighbouring sets, see
/// [`ExploreConfig::same_set`]), so ways are what matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// L1 ways, 1 or 2.
    pub l1_ways: usize,
    /// LLC ways, 1 or 2.
    pub llc_ways: usize,
    /// Inclusive LLC.
    pub inclusive: bool,
    /// DDIO ways (0: snooped DMA writes go to DRAM).
    pub ddio_ways: u32,
    /// Replacement in every array.
    pub replacement: Replacement,
    /// What wbinvd / wbnoinvd walk.
    pub wbinvd_scope: WbinvdScope,
}

impl Shape {
    /// A shape with LRU replacement and whole-hierarchy wbinvd.
    pub const fn new(l1_ways: usize, llc_ways: usize, inclusive: bool, ddio_ways: u32) -> Shape {
        Shape {
            l1_ways,
            llc_ways,
            inclusive,
            ddio_ways,
            replacement: Replacement::Lru,
            wbinvd_scope: WbinvdScope::AllCores,
        }
    }

    /// The hierarchy configuration (1 GHz; a weak flush is due 2^40 cycles after issue).
    pub fn config(&self) -> HierarchyConfig {
        let level = |ways, hit| LevelConfig {
            size_kib: 1,
            ways,
            replacement: self.replacement,
            hit_cycles: Cycles(hit),
        };
        HierarchyConfig {
            cores: 2,
            core_mhz: 1_000,
            l1: level(self.l1_ways, 4),
            l2: None,
            llc: LlcConfig {
                level: level(self.llc_ways, 40),
                inclusive: self.inclusive,
                ddio_ways: self.ddio_ways,
            },
            snoop_cycles: Cycles(20),
            flush: FlushCosts {
                flush_line_cycles: FLUSH_LINE_CYCLES,
                ..FlushCosts::default()
            },
            wbinvd_scope: self.wbinvd_scope,
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let incl = if self.inclusive {
            "inclusive"
        } else {
            "non-incl."
        };
        write!(
            f,
            "L1 {}w, LLC {}w {incl}, DDIO {}",
            self.l1_ways, self.llc_ways, self.ddio_ways
        )?;
        if self.replacement == Replacement::PseudoLru {
            f.write_str(", PLRU")?;
        }
        if self.wbinvd_scope == WbinvdScope::IssuerAndShared {
            f.write_str(", own wbinvd")?;
        }
        Ok(())
    }
}

/// A deliberate protocol bug, injected by the explorer after an operation, to show that
/// the checks catch it (the hierarchy itself has no fault hooks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// A store's write miss or upgrade leaves the other core's clean copy in place (as S).
    StoreKeepsSharer,
    /// clflush drops a dirty line without writing it back.
    ClflushDropsWriteBack,
}

/// What to explore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExploreConfig {
    /// Hierarchy shapes, each explored from empty.
    pub shapes: Vec<Shape>,
    /// Lines, 1 or 2.
    pub lines: usize,
    /// Whether the 2 lines share a set in every array (they conflict, so a direct-mapped
    /// array evicts), else they sit in neighbouring sets.
    pub same_set: bool,
    /// Most operations per execution (1 ..= [`MAX_DEPTH`]).
    pub depth: usize,
    /// Offer no-snoop DMA reads and writes (then hazards are expected).
    pub no_snoop: bool,
    /// Offer 1-byte DMA writes (merging with a dirty copy) besides whole-line ones.
    pub partial_dma_writes: bool,
    /// Offer "time passes" steps that perform the earliest pending weak flush.
    pub advance: bool,
    /// A core may not issue clflushopt / clwb with this many of its own pending.
    pub max_pending_per_core: usize,
    /// A deliberate bug to inject (checker self-test); `None` explores the real protocol.
    pub flaw: Option<Flaw>,
}

impl Default for ExploreConfig {
    /// 2 conflicting lines, direct-mapped L1s, no-snoop DMA on, 1 pending flush per core;
    /// non-inclusive and inclusive LLCs of 1 way without DDIO and of 2 ways with 1 DDIO way.
    /// Depth 6 takes a few seconds in release; from depth 16 (about 35 s) the exploration is
    /// complete (13 with snooped DMA only, about 6 s).
    fn default() -> ExploreConfig {
        ExploreConfig {
            shapes: vec![
                Shape::new(1, 1, false, 0),
                Shape::new(1, 1, true, 0),
                Shape::new(1, 2, false, 1),
                Shape::new(1, 2, true, 1),
            ],
            lines: 2,
            same_set: true,
            depth: 6,
            no_snoop: true,
            partial_dma_writes: true,
            advance: true,
            max_pending_per_core: 1,
            flaw: None,
        }
    }
}

impl ExploreConfig {
    /// Panics unless the configuration is one the abstraction covers: 1 to 255 shapes of 1
    /// or 2 ways per array, 1 or 2 lines, depth 1 ..= [`MAX_DEPTH`].
    pub(crate) fn validate(&self) {
        let ok_ways = |w: usize| (1..=2).contains(&w);
        assert!(
            !self.shapes.is_empty() && self.shapes.len() < 256,
            "1 to 255 shapes"
        );
        assert!((1..=MAX_LINES).contains(&self.lines), "1 or 2 lines");
        assert!(
            (1..=MAX_DEPTH).contains(&self.depth),
            "depth 1 ..= {MAX_DEPTH}"
        );
        for s in &self.shapes {
            assert!(
                ok_ways(s.l1_ways) && ok_ways(s.llc_ways),
                "{s}: 1 or 2 ways"
            );
        }
    }

    /// The first byte of each explored line: 1 KiB apart (one set of every array) or
    /// neighbours (neighbouring sets).
    pub(crate) fn bases(&self) -> Vec<u64> {
        let step = if self.same_set { 0x400 } else { 0x40 };
        (0..self.lines as u64).map(|i| LINE_A + i * step).collect()
    }
}
