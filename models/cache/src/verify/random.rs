//! The seeded random tester (after gem5's `memtest`): random loads, stores, flushes,
//! fences, wbinvd and snooped DMA of any length and alignment over a few conflicting lines,
//! on several shapes, with the invariants checked after every operation and the data
//! against a byte-level reference memory. Deterministic from the seed; reads no clock (the
//! caller times it).

use crate::config::{HierarchyConfig, LevelConfig, LlcConfig, WbinvdScope, LINE_BYTES};
use crate::effect::{Effect, EffectKind, Observer};
use crate::hierarchy::CoreId;
use crate::{CacheError, Dram, DramConfig, FlushCosts, Hierarchy};
use model_core::{Cycles, PhysAddr, Replacement, Span, SparseMemory, Tick};
use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::collections::BTreeMap;
use std::fmt;

use super::report::{RandomReport, RandomViolation, ShapeRun};

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RandomConfig {
    /// Seed of everything random; each shape runs from its own seed derived from it.
    pub seed: u64,
    /// Operations in all, split evenly among the shapes.
    pub ops: u64,
    /// Hierarchies to run on.
    pub shapes: Vec<HierarchyConfig>,
    /// Lines touched: pairs of neighbouring lines, pairs 64 KiB apart (one set in every
    /// array of [`RandomConfig::small_shapes`], which overflows its ways).
    pub lines: u64,
    /// Every this many operations, every line's coherent value is compared with the
    /// reference (after each operation, only the lines it touched are).
    pub full_check_every: u64,
}

impl RandomConfig {
    /// Small hierarchies of 3 cores that evict constantly: L1 1 KiB 2-way, optional L2
    /// 4 KiB 4-way, LLC 16 KiB 4-way; non-inclusive and inclusive, with and without L2 and
    /// DDIO, LRU with whole-hierarchy wbinvd and pseudo-LRU with issuer-only wbinvd.
    pub fn small_shapes() -> Vec<HierarchyConfig> {
        let mut out = Vec::new();
        for (inclusive, l2, ddio_ways) in [
            (false, false, 0),
            (false, true, 2),
            (true, false, 2),
            (true, true, 0),
        ] {
            for plru in [false, true] {
                let replacement = match plru {
                    false => Replacement::Lru,
                    true => Replacement::PseudoLru,
                };
                let level = |size_kib, ways, hit| LevelConfig {
                    size_kib,
                    ways,
                    replacement,
                    hit_cycles: Cycles(hit),
                };
                out.push(HierarchyConfig {
                    cores: 3,
                    core_mhz: 1_000,
                    l1: level(1, 2, 4),
                    l2: l2.then(|| level(4, 4, 12)),
                    llc: LlcConfig {
                        level: level(16, 4, 40),
                        inclusive,
                        ddio_ways,
                    },
                    snoop_cycles: Cycles(20),
                    flush: FlushCosts::default(),
                    wbinvd_scope: match plru {
                        false => WbinvdScope::AllCores,
                        true => WbinvdScope::IssuerAndShared,
                    },
                });
            }
        }
        out
    }

    /// The seed shape `shape` runs from.
    pub fn shape_seed(&self, shape: usize) -> u64 {
        self.seed ^ (shape as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

impl Default for RandomConfig {
    fn default() -> RandomConfig {
        RandomConfig {
            seed: 1,
            ops: 100_000,
            shapes: RandomConfig::small_shapes(),
            lines: 16,
            full_check_every: 256,
        }
    }
}

/// The coherent reference: every performed write applied in order, every read compared.
#[derive(Debug, Default)]
struct Reference {
    mem: SparseMemory,
    /// Per line number, the bytes whose latest writer was a device.
    dma_bytes: BTreeMap<u64, u64>,
    mismatch: Option<String>,
}

impl Reference {
    fn mark_dma(&mut self, pa: u64, len: usize, dma: bool) {
        for a in pa..pa + len as u64 {
            let m = self.dma_bytes.entry(a / LINE_BYTES as u64).or_insert(0);
            let bit = 1 << (a % LINE_BYTES as u64);
            *m = if dma { *m | bit } else { *m & !bit };
        }
    }

    fn is_dma(&self, a: u64) -> bool {
        let m = self.dma_bytes.get(&(a / LINE_BYTES as u64));
        m.is_some_and(|m| m >> (a % LINE_BYTES as u64) & 1 == 1)
    }
}

impl Observer for Reference {
    fn on_effect(&mut self, e: &Effect<'_>) {
        let pa = e.pa.raw();
        let want = self.mem.read_vec(e.pa, e.data.len());
        let differs = |i: usize| want[i] != e.data[i];
        let what = match e.kind {
            EffectKind::CpuStore { .. } | EffectKind::DmaWrite { .. } => {
                self.mem.write(e.pa, e.data);
                let dma = matches!(e.kind, EffectKind::DmaWrite { .. });
                self.mark_dma(pa, e.data.len(), dma);
                return;
            }
            EffectKind::CpuLoad { .. } | EffectKind::DmaRead { .. } => {
                match (0..want.len()).find(|&i| differs(i)) {
                    Some(i) => format!("{:?} returned stale byte at {:#x}", e.kind, pa + i as u64),
                    None => return,
                }
            }
            EffectKind::WriteBack { cause } => {
                let lost = (0..want.len()).find(|&i| differs(i) && self.is_dma(pa + i as u64));
                match lost {
                    Some(i) => format!("write-back ({cause:?}) lost DMA byte {:#x}", pa + i as u64),
                    None => return,
                }
            }
            EffectKind::FlushPerformed { .. } => return,
        };
        self.mismatch.get_or_insert(what);
    }
}

const KINDS: [&str; 12] = [
    "load",
    "store",
    "clflush",
    "clflushopt",
    "clwb",
    "sfence",
    "mfence",
    "wbinvd",
    "wbnoinvd",
    "dma_write",
    "dma_read",
    "advance",
];

/// A shape in short: "3 cores, L1 1K 2w, L2 4K 4w, LLC 16K 4w incl., DDIO 2, PLRU, own wbinvd".
fn label(c: &HierarchyConfig) -> String {
    let level = |name, l: &LevelConfig| format!(", {name} {}K {}w", l.size_kib, l.ways);
    let mut s = format!("{} cores{}", c.cores, level("L1", &c.l1));
    if let Some(l2) = &c.l2 {
        s += &level("L2", l2);
    }
    s += &level("LLC", &c.llc.level);
    s += if c.llc.inclusive {
        " incl."
    } else {
        " non-incl."
    };
    s += &format!(", DDIO {}", c.llc.ddio_ways);
    if c.l1.replacement == Replacement::PseudoLru {
        s += ", PLRU";
    }
    if c.wbinvd_scope == WbinvdScope::IssuerAndShared {
        s += ", own wbinvd";
    }
    s
}

/// One drawn operation.
#[derive(Debug, Clone)]
struct Drawn {
    kind: usize,
    now: Tick,
    core: CoreId,
    pa: PhysAddr,
    /// Bytes accessed (loads, stores, DMA).
    len: usize,
}

impl fmt::Display for Drawn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, pa, len) = (KINDS[self.kind], self.pa, self.len);
        write!(
            f,
            "{kind} at {}: {}, {len} byte(s) at {pa}",
            self.now, self.core
        )
    }
}

struct Runner<'a> {
    config: &'a RandomConfig,
    h: Hierarchy<Reference>,
    rng: Xoshiro256PlusPlus,
    now: Tick,
    counts: [u64; KINDS.len()],
}

impl Runner<'_> {
    fn below(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n
    }

    fn line_base(&self, i: u64) -> u64 {
        0x10_0000 + (i / 2) * 0x1_0000 + (i % 2) * LINE_BYTES as u64
    }

    /// Draws and runs one operation.
    fn step(&mut self) -> (Drawn, Result<(), CacheError>) {
        let dt = Span::from_ns(self.below(40));
        self.now += dt;
        let line = self.below(self.config.lines.max(1));
        let pa = PhysAddr(self.line_base(line) + self.below(LINE_BYTES as u64));
        let core = CoreId(self.below(u64::from(self.h.config().cores)) as u16);
        let dice = self.below(100);
        let max = if dice < 60 { LINE_BYTES as u64 } else { 200 };
        let len = 1 + self.below(max) as usize;
        let data: Vec<u8> = (0..len).map(|_| self.rng.next_u64() as u8).collect();
        let mut buf = vec![0; len];
        let (now, h) = (self.now, &mut self.h);
        let (kind, result) = match dice {
            0..=29 => (0, h.load(now, core, pa, &mut buf).map(drop)),
            30..=59 => (1, h.store(now, core, pa, &data).map(drop)),
            60..=65 => (2, h.clflush(now, core, pa).map(drop)),
            66..=71 => (3, h.clflushopt(now, core, pa).map(drop)),
            72..=76 => (4, h.clwb(now, core, pa).map(drop)),
            77..=80 => (5, h.sfence(now, core).map(drop)),
            81..=82 => (6, h.mfence(now, core).map(drop)),
            83 => (7, h.wbinvd(now, core).map(drop)),
            84 => (8, h.wbnoinvd(now, core).map(drop)),
            85..=91 => (9, h.dma_write(now, pa, &data, true).map(drop)),
            92..=97 => (10, h.dma_read(now, pa, &mut buf, true).map(drop)),
            _ => (11, h.advance(now)),
        };
        self.counts[kind] += 1;
        let drawn = Drawn {
            kind,
            now,
            core,
            pa,
            len,
        };
        (drawn, result)
    }

    /// The coherent value of every line in `lines` equals the reference.
    fn compare(&self, lines: impl Iterator<Item = u64>) -> Result<(), String> {
        for l in lines {
            let pa = PhysAddr(l * LINE_BYTES as u64);
            let want = self.h.observer().mem.read_vec(pa, LINE_BYTES);
            if self.h.coherent_line(pa)[..] != want[..] {
                return Err(format!(
                    "the coherent value of line {pa} differs from the reference"
                ));
            }
        }
        Ok(())
    }

    fn check(&mut self, drawn: &Drawn, i: u64) -> Result<(), String> {
        self.h.check_invariants().map_err(|e| e.to_string())?;
        self.h.check_data_coherent().map_err(|e| e.to_string())?;
        if let Some(m) = self.h.observer_mut().mismatch.take() {
            return Err(m);
        }
        let first = drawn.pa.raw() / LINE_BYTES as u64;
        let last = (drawn.pa.raw() + drawn.len as u64 - 1) / LINE_BYTES as u64;
        self.compare(first..=last)?;
        if (i + 1).is_multiple_of(self.config.full_check_every.max(1)) {
            let all: Vec<u64> = (0..self.config.lines)
                .map(|l| self.line_base(l) / LINE_BYTES as u64)
                .collect();
            self.compare(all.into_iter())?;
        }
        Ok(())
    }

    /// Every core runs wbinvd; DRAM must then hold the reference's bytes.
    fn settle(&mut self) -> Result<(), String> {
        self.now += Span::from_ns(1);
        for c in 0..self.h.config().cores {
            self.h
                .wbinvd(self.now, CoreId(c))
                .map_err(|e| e.to_string())?;
        }
        for l in 0..self.config.lines {
            let pa = PhysAddr(self.line_base(l));
            let want = self.h.observer().mem.read_vec(pa, LINE_BYTES);
            if self.h.dram().contents().read_vec(pa, LINE_BYTES) != want {
                return Err(format!("after wbinvd on every core, DRAM at {pa} differs"));
            }
        }
        Ok(())
    }
}

/// Runs `config.ops` random operations, split among the shapes, checking after each.
///
/// # Panics
/// If a shape's configuration is invalid.
pub fn random(config: &RandomConfig) -> RandomReport {
    let mut report = RandomReport {
        seed: config.seed,
        ops: 0,
        per_kind: BTreeMap::new(),
        shapes: Vec::new(),
        violations: Vec::new(),
    };
    let n = config.shapes.len().max(1) as u64;
    for (s, shape) in config.shapes.iter().enumerate() {
        let ops = config.ops / n + u64::from((s as u64) < config.ops % n);
        let h = Hierarchy::with_observer(
            *shape,
            Dram::new(DramConfig::default()),
            Reference::default(),
        )
        .unwrap_or_else(|e| panic!("shape {s}: {e}"));
        let mut r = Runner {
            config,
            h,
            rng: Xoshiro256PlusPlus::seed_from_u64(config.shape_seed(s)),
            now: Tick::ZERO,
            counts: [0; KINDS.len()],
        };
        let mut failed = None;
        let mut done = 0;
        while done < ops && failed.is_none() {
            let (drawn, result) = r.step();
            let checked = result.map_err(|e| e.to_string());
            if let Err(what) = checked.and_then(|()| r.check(&drawn, done)) {
                failed = Some((done, drawn.to_string(), what));
            }
            done += 1;
        }
        if failed.is_none() {
            if let Err(what) = r.settle() {
                failed = Some((done, "final wbinvd on every core".to_owned(), what));
            }
        }
        if let Some((op_index, op, what)) = failed {
            let seed = config.seed;
            report.violations.push(RandomViolation {
                shape: s,
                seed,
                op_index,
                op,
                what,
            });
        }
        report.ops += done;
        for (k, c) in KINDS.iter().zip(r.counts) {
            *report.per_kind.entry(k).or_insert(0) += c;
        }
        report.shapes.push(ShapeRun {
            shape: label(shape),
            ops: done,
            stats: r.h.stats(),
        });
    }
    report
}
