//! The corruption checker: a coherent reference memory beside the real hierarchy.
//!
//! It observes every performed memory effect of the cache model ([`cache::Observer`]), in
//! simulated order, and keeps what memory would hold if every write were coherent:
//! * CPU stores and DMA writes update the reference (whatever path they took);
//! * a CPU load that returns other bytes is a **stale CPU read** (e.g. a no-snoop DMA write
//!   went to DRAM under a valid cached copy);
//! * a DMA read that returns other bytes is a **stale device read** (a no-snoop read got
//!   DRAM while a newer dirty line sat in a cache);
//! * a write-back that puts other bytes into DRAM over data a DMA write put there is a
//!   **lost DMA write** (the dirty line was older than the device's data).
//!
//! Each class counts events and bytes and keeps the first few explanations: the last
//! write to the line (who, when, which path) and the access that found it stale.

use cache::{CoreId, DmaTarget, Effect, EffectKind, Observer, WriteBackCause};
use model_core::{Bdf, LineAddr, PhysAddr, SparseMemory, Tick};
use reports::{hex_address, ChainStep, ClassCount, Corruption, Explanation};
use std::collections::{BTreeMap, BTreeSet};

/// Explanations kept per class unless the scenario says otherwise.
pub const DEFAULT_EXPLANATIONS: usize = 4;
/// Line size the checker tracks writers at.
const LINE: u64 = cache::LINE_BYTES as u64;
/// A 4 KiB frame: the granule table pages are watched at.
const FRAME_SHIFT: u32 = 12;
/// Lines per 4 KiB frame of the writer map.
const LINES_PER_FRAME: usize = 64;

/// Who performed a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writer {
    Core(CoreId),
    Device {
        bdf: Bdf,
        snooped: bool,
        into: DmaTarget,
    },
    /// The IOMMU itself (an invalidation-wait status write).
    Iommu {
        snooped: bool,
    },
}

/// The last write to a line, for explanations and for telling DMA data from CPU data.
/// Plain data: it is recorded for every line of every write, and turned into text only
/// when an explanation needs it.
#[derive(Debug, Clone, Copy)]
struct LastWrite {
    tick: Tick,
    pa: PhysAddr,
    len: usize,
    writer: Writer,
}

impl LastWrite {
    fn step(&self) -> ChainStep {
        let (actor, what) = match self.writer {
            Writer::Core(c) => (
                format!("core {}", c.0),
                format!("stored {} bytes at {}", self.len, self.pa),
            ),
            Writer::Device { bdf, snooped, into } => (
                format!("device {bdf}"),
                format!(
                    "wrote {} bytes at {} ({}, into {into:?})",
                    self.len,
                    self.pa,
                    path(snooped)
                ),
            ),
            Writer::Iommu { snooped } => (
                "iommu".to_owned(),
                format!(
                    "wrote {} bytes at {} ({})",
                    self.len,
                    self.pa,
                    path(snooped)
                ),
            ),
        };
        ChainStep {
            tick_ps: self.tick.as_ps(),
            actor,
            what,
        }
    }
}

/// The reference memory and the tallies of mismatches.
#[derive(Debug, Clone)]
pub struct Checker {
    reference: SparseMemory,
    /// Last write per line, grouped by 4 KiB frame (one map entry per 64 lines).
    last_writes: BTreeMap<u64, Box<[Option<LastWrite>; LINES_PER_FRAME]>>,
    corruption: Corruption,
    keep: usize,
    /// Who the next DMA effects belong to (the engine sets it before each device access).
    pub device: Bdf,
    /// The next DMA effects are the IOMMU's own accesses (table walks, descriptor fetches,
    /// status writes) rather than a device's: a stale table read is not a stale device read
    /// but the likely cause of a misdirected DMA, so it is remembered for that explanation.
    pub iommu_access: bool,
    /// The IOMMU's latest read of a table entry that was older than the reference.
    stale_table_read: Vec<ChainStep>,
    /// 4 KiB frames holding translation structures that reference walks have read.
    watched: BTreeSet<u64>,
    /// Bumped whenever a write lands in a watched frame: reference translations computed
    /// before are out of date.
    table_epoch: u64,
}

impl Checker {
    /// An all-zero reference, keeping `keep` explanations per class.
    pub fn new(keep: usize) -> Checker {
        Checker {
            reference: SparseMemory::new(),
            last_writes: BTreeMap::new(),
            corruption: Corruption::default(),
            keep,
            device: Bdf::default(),
            iommu_access: false,
            stale_table_read: Vec::new(),
            watched: BTreeSet::new(),
            table_epoch: 0,
        }
    }

    /// The tallies, with the total filled in.
    pub fn corruption(&self) -> Corruption {
        let mut c = self.corruption.clone();
        c.recompute_total();
        c
    }

    /// What memory would hold if every access were coherent.
    pub fn reference(&self) -> &SparseMemory {
        &self.reference
    }

    /// Watches the 4 KiB frame holding `pa` (a translation structure a reference walk read).
    pub fn watch(&mut self, pa: PhysAddr) {
        self.watched.insert(pa.raw() >> FRAME_SHIFT);
    }

    /// Changes whenever a write lands in a watched frame.
    pub fn table_epoch(&self) -> u64 {
        self.table_epoch
    }

    fn apply(&mut self, at: Tick, pa: PhysAddr, data: &[u8], writer: Writer) {
        self.reference.write(pa, data);
        if !self.watched.is_empty() && !data.is_empty() {
            let first = pa.raw() >> FRAME_SHIFT;
            let last = pa.raw().saturating_add(data.len() as u64 - 1) >> FRAME_SHIFT;
            if self.watched.range(first..=last).next().is_some() {
                self.table_epoch += 1;
            }
        }
        let w = LastWrite {
            tick: at,
            pa,
            len: data.len(),
            writer,
        };
        let mut line = LineAddr::containing(pa, LINE);
        let end = pa.raw() + data.len() as u64;
        while line.base().raw() < end {
            let (frame, slot) = frame_slot(line);
            self.last_writes
                .entry(frame)
                .or_insert_with(|| Box::new([None; LINES_PER_FRAME]))[slot] = Some(w);
            line = LineAddr::containing(PhysAddr(line.base().raw() + LINE), LINE);
        }
    }

    /// Bytes of `data` at `pa` that differ from the reference, and the first of them.
    fn stale(&self, pa: PhysAddr, data: &[u8]) -> Option<(usize, u64)> {
        let mut want = [0u8; 64];
        let (mut first, mut n) = (None, 0);
        for (i, chunk) in data.chunks(want.len()).enumerate() {
            let at = i * want.len();
            let w = &mut want[..chunk.len()];
            self.reference.read(PhysAddr(pa.raw() + at as u64), w);
            if *w == *chunk {
                continue; // the common case: one memcmp
            }
            for (j, (a, b)) in w.iter().zip(chunk).enumerate() {
                if a != b {
                    n += 1;
                    first.get_or_insert(at + j);
                }
            }
        }
        first.map(|f| (n, pa.raw() + f as u64))
    }

    fn last_write(&self, line: LineAddr) -> Option<&LastWrite> {
        let (frame, slot) = frame_slot(line);
        self.last_writes.get(&frame)?[slot].as_ref()
    }

    fn explain(&self, bad: u64, at: Tick, actor: String, what: String) -> Vec<ChainStep> {
        let line = LineAddr::containing(PhysAddr(bad), LINE);
        let mut chain: Vec<ChainStep> = self
            .last_write(line)
            .map(|w| w.step())
            .into_iter()
            .collect();
        chain.push(ChainStep {
            tick_ps: at.as_ps(),
            actor,
            what,
        });
        chain
    }

    /// A DMA reached memory at `pa`, but the translation tables as software last wrote them
    /// (read from the reference memory by an IOMMU without caches) send `iova` to
    /// `expected`, or refuse it: the IOMMU used a stale IOTLB entry, a stale walk-cache
    /// entry, or a table entry it read from DRAM before software's update got there.
    pub fn misdirected(&mut self, dma: MisdirectedDma) {
        let should = match dma.expected {
            Ok(pa) => format!("the tables map it to {pa}"),
            Err(code) => format!("the tables refuse it (fault reason {code:#x})"),
        };
        let verb = if dma.write { "wrote" } else { "read" };
        let mut chain = self.stale_table_read.clone();
        chain.push(ChainStep {
            tick_ps: dma.at.as_ps(),
            actor: format!("device {}", dma.device),
            what: format!(
                "{verb} {} bytes at IOVA {:#x}, translated to {}; {should}",
                dma.bytes, dma.iova, dma.pa
            ),
        });
        let e = Explanation {
            address: hex_address(dma.pa.raw()),
            bytes: dma.bytes,
            summary: format!(
                "device {} {verb} {} bytes at {} through a translation software had already \
                 changed ({should}): stale IOTLB, walk-cache or table entry",
                dma.device, dma.bytes, dma.pa
            ),
            chain,
        };
        record(&mut self.corruption.misdirected_dma, self.keep, e);
    }

    fn record(&mut self, class: Class, e: Explanation) {
        let c = match class {
            Class::StaleCpuRead => &mut self.corruption.stale_cpu_read,
            Class::StaleDeviceRead => &mut self.corruption.stale_device_read,
            Class::LostDmaWrite => &mut self.corruption.lost_dma_write,
        };
        record(c, self.keep, e);
    }
}

/// A DMA whose physical address disagrees with the tables in the reference memory.
#[derive(Debug, Clone, Copy)]
pub struct MisdirectedDma {
    /// When it reached memory.
    pub at: Tick,
    /// Its requester.
    pub device: Bdf,
    /// The address in the TLP.
    pub iova: u64,
    /// Where the IOMMU sent it.
    pub pa: PhysAddr,
    /// Where the tables send it, or the fault reason they give.
    pub expected: Result<PhysAddr, u32>,
    /// Bytes read or written.
    pub bytes: u64,
    /// A write (else a read).
    pub write: bool,
}

#[derive(Debug, Clone, Copy)]
enum Class {
    StaleCpuRead,
    StaleDeviceRead,
    LostDmaWrite,
}

fn path(snooped: bool) -> &'static str {
    if snooped {
        "snooped"
    } else {
        "no-snoop"
    }
}

impl Observer for Checker {
    fn on_effect(&mut self, e: &Effect<'_>) {
        let n = e.data.len();
        match e.kind {
            EffectKind::CpuStore { core } => self.apply(e.at, e.pa, e.data, Writer::Core(core)),
            EffectKind::DmaWrite { snooped, into } => {
                let writer = if self.iommu_access {
                    Writer::Iommu { snooped }
                } else {
                    Writer::Device {
                        bdf: self.device,
                        snooped,
                        into,
                    }
                };
                self.apply(e.at, e.pa, e.data, writer);
            }
            EffectKind::CpuLoad { core, from } => {
                if let Some((bytes, bad)) = self.stale(e.pa, e.data) {
                    let actor = format!("core {}", core.0);
                    let what = format!("loaded {n} bytes at {} from {from:?}: {bytes} stale", e.pa);
                    let chain = self.explain(bad, e.at, actor, what);
                    self.record(
                        Class::StaleCpuRead,
                        Explanation {
                            address: hex_address(bad),
                            bytes: bytes as u64,
                            summary: format!(
                                "core {} read {bytes} stale bytes: its cached copy is older than \
                                 the last write to memory",
                                core.0
                            ),
                            chain,
                        },
                    );
                }
            }
            EffectKind::DmaRead { snooped, from } if self.iommu_access => {
                if let Some((bytes, bad)) = self.stale(e.pa, e.data) {
                    let what = format!(
                        "read a table entry at {} ({}, from {from:?}): {bytes} bytes older than \
                         what software wrote",
                        e.pa,
                        path(snooped)
                    );
                    self.stale_table_read = self.explain(bad, e.at, "iommu".to_owned(), what);
                }
            }
            EffectKind::DmaRead { snooped, from } => {
                if let Some((bytes, bad)) = self.stale(e.pa, e.data) {
                    let actor = format!("device {}", self.device);
                    let what = format!(
                        "read {n} bytes at {} ({}, from {from:?}): {bytes} stale",
                        e.pa,
                        path(snooped)
                    );
                    let chain = self.explain(bad, e.at, actor, what);
                    self.record(
                        Class::StaleDeviceRead,
                        Explanation {
                            address: hex_address(bad),
                            bytes: bytes as u64,
                            summary: format!(
                                "device {} read {bytes} stale bytes: a newer dirty line sat in a \
                                 cache",
                                self.device
                            ),
                            chain,
                        },
                    );
                }
            }
            EffectKind::WriteBack { cause } => {
                let line = LineAddr::containing(e.pa, LINE);
                let dma = self
                    .last_write(line)
                    .is_some_and(|w| matches!(w.writer, Writer::Device { .. }));
                if let (true, Some((bytes, bad))) = (dma, self.stale(e.pa, e.data)) {
                    let by = match cause {
                        WriteBackCause::LlcEviction => "an LLC eviction".to_owned(),
                        WriteBackCause::Flush { core, kind } => {
                            format!("{kind:?} on core {}", core.0)
                        }
                        WriteBackCause::SnoopedDmaMerge => "a snooped DMA merge".to_owned(),
                    };
                    let what = format!(
                        "wrote back {n} bytes at {} ({by}) over newer DMA data",
                        e.pa
                    );
                    let chain = self.explain(bad, e.at, "cache".to_owned(), what);
                    self.record(
                        Class::LostDmaWrite,
                        Explanation {
                            address: hex_address(bad),
                            bytes: bytes as u64,
                            summary: format!(
                                "{bytes} bytes a device wrote were overwritten in DRAM by an \
                                 older dirty line ({by})"
                            ),
                            chain,
                        },
                    );
                }
            }
            EffectKind::FlushPerformed { .. } => {}
        }
    }
}

/// The frame of a line and its slot in that frame.
fn frame_slot(line: LineAddr) -> (u64, usize) {
    let n = line.base().raw() / LINE;
    (
        n / LINES_PER_FRAME as u64,
        (n % LINES_PER_FRAME as u64) as usize,
    )
}

fn record(class: &mut ClassCount, keep: usize, e: Explanation) {
    class.events += 1;
    class.bytes += e.bytes;
    if class.first.len() < keep {
        class.first.push(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cache::Source;

    fn effect(at: u64, pa: u64, data: &[u8], kind: EffectKind) -> Effect<'_> {
        Effect {
            at: Tick::from_ps(at),
            pa: PhysAddr(pa),
            data,
            kind,
        }
    }

    #[test]
    fn each_mismatch_is_classified_and_explained() {
        let mut c = Checker::new(1);
        c.device = Bdf::from_raw(0x0100);
        let dma = EffectKind::DmaWrite {
            snooped: false,
            into: DmaTarget::Dram,
        };
        c.on_effect(&effect(5, 0x1000, &[1; 64], dma));
        // The CPU's cached copy still holds zeros.
        let load = EffectKind::CpuLoad {
            core: CoreId(0),
            from: Source::L1,
        };
        c.on_effect(&effect(9, 0x1000, &[0; 64], load));
        // A device read of DRAM that misses a newer CPU store.
        c.on_effect(&effect(
            10,
            0x2000,
            &[7; 8],
            EffectKind::CpuStore { core: CoreId(1) },
        ));
        let read = EffectKind::DmaRead {
            snooped: false,
            from: Source::Dram,
        };
        c.on_effect(&effect(11, 0x2000, &[0; 8], read));
        // A dirty line of zeros written back over the DMA data.
        let wb = EffectKind::WriteBack {
            cause: WriteBackCause::LlcEviction,
        };
        c.on_effect(&effect(12, 0x1000, &[0; 64], wb));
        let k = c.corruption();
        assert_eq!((k.stale_cpu_read.events, k.stale_cpu_read.bytes), (1, 64));
        assert_eq!(
            (k.stale_device_read.events, k.stale_device_read.bytes),
            (1, 8)
        );
        assert_eq!((k.lost_dma_write.events, k.lost_dma_write.bytes), (1, 64));
        assert_eq!(k.total_events, 3);
        let e = &k.stale_cpu_read.first[0];
        assert_eq!(e.chain[0].tick_ps, 5, "starts at the DMA write");
        assert!(e.chain[0].what.contains("no-snoop"));
        // A write-back of CPU data over CPU data is not a lost DMA write.
        c.on_effect(&effect(13, 0x2000, &[9; 8], wb));
        assert_eq!(c.corruption().lost_dma_write.events, 1);
    }
}
