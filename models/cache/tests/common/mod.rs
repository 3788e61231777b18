//! Shared test fixtures: a small hierarchy, a coherent reference memory fed by the
//! hierarchy's effects, and a driver that runs operations as one serial program.
#![allow(dead_code)]

use cache::{
    CoreId, Dram, DramConfig, Effect, EffectKind, FlushCosts, Hierarchy, HierarchyConfig,
    LevelConfig, LlcConfig, Observer, WbinvdScope,
};
use model_core::{Cycles, PhysAddr, Replacement, Span, SparseMemory, Tick};
use std::collections::BTreeSet;

/// A coherent reference memory: every performed write is applied in simulated order, every
/// performed read and write-back is compared with it and mismatched bytes are classified
/// (DESIGN.md "Data is real").
#[derive(Debug, Default)]
pub struct Shadow {
    pub reference: SparseMemory,
    /// Bytes whose last writer was a device.
    dma_written: BTreeSet<u64>,
    /// Bytes a CPU load returned that differ from the reference.
    pub stale_cpu_read_bytes: u64,
    /// Bytes a device read returned that differ from the reference.
    pub stale_device_read_bytes: u64,
    /// Device-written bytes a write-back overwrote with other data.
    pub lost_dma_write_bytes: u64,
}

impl Shadow {
    fn differing(&self, pa: PhysAddr, data: &[u8]) -> impl Iterator<Item = u64> + '_ {
        let want = self.reference.read_vec(pa, data.len());
        let data = data.to_vec();
        (0..want.len())
            .filter(move |&i| want[i] != data[i])
            .map(move |i| pa.raw() + i as u64)
    }

    pub fn corrupted(&self) -> u64 {
        self.stale_cpu_read_bytes + self.stale_device_read_bytes + self.lost_dma_write_bytes
    }
}

impl Observer for Shadow {
    fn on_effect(&mut self, e: &Effect<'_>) {
        let range = e.pa.raw()..e.pa.raw() + e.data.len() as u64;
        match e.kind {
            EffectKind::CpuStore { .. } => {
                self.reference.write(e.pa, e.data);
                self.dma_written.retain(|a| !range.contains(a));
            }
            EffectKind::DmaWrite { .. } => {
                self.reference.write(e.pa, e.data);
                self.dma_written.extend(range);
            }
            EffectKind::CpuLoad { .. } => {
                self.stale_cpu_read_bytes += self.differing(e.pa, e.data).count() as u64;
            }
            EffectKind::DmaRead { .. } => {
                self.stale_device_read_bytes += self.differing(e.pa, e.data).count() as u64;
            }
            EffectKind::WriteBack { .. } => {
                let lost: Vec<u64> = self
                    .differing(e.pa, e.data)
                    .filter(|a| self.dma_written.contains(a))
                    .collect();
                self.lost_dma_write_bytes += lost.len() as u64;
            }
            EffectKind::FlushPerformed { .. } => {}
        }
    }
}

/// Two cores, tiny caches (so a few loads evict), a 1 GHz clock (1 cycle = 1 ns), LRU.
/// L1 1 KiB 2-way (8 sets); optional L2 4 KiB 4-way (16 sets); LLC 16 KiB 4-way (64 sets):
/// addresses 4 KiB apart share a set at every level.
pub fn small(inclusive: bool, l2: bool, ddio_ways: u32) -> HierarchyConfig {
    let level = |size_kib, ways, hit| LevelConfig {
        size_kib,
        ways,
        replacement: Replacement::Lru,
        hit_cycles: Cycles(hit),
    };
    HierarchyConfig {
        cores: 2,
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
        wbinvd_scope: WbinvdScope::AllCores,
    }
}

/// DRAM at 50 ns latency and 1000 MB/s (1 ns per byte): easy numbers.
pub fn dram() -> Dram {
    Dram::new(DramConfig::new(Span::from_ns(50), 1_000).unwrap())
}

pub const C0: CoreId = CoreId(0);
pub const C1: CoreId = CoreId(1);

/// A serial program: each operation starts when the previous one returned.
pub struct Run {
    pub h: Hierarchy<Shadow>,
    pub now: Tick,
}

impl Run {
    pub fn new(config: HierarchyConfig) -> Run {
        Run {
            h: Hierarchy::with_observer(config, dram(), Shadow::default()).unwrap(),
            now: Tick::ZERO,
        }
    }

    pub fn shadow(&self) -> &Shadow {
        self.h.observer()
    }

    fn then(&mut self, done: Tick) {
        assert!(done >= self.now);
        self.now = done;
        self.h.check_invariants().unwrap();
    }

    pub fn load(&mut self, core: CoreId, pa: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        let done = self.h.load(self.now, core, PhysAddr(pa), &mut buf).unwrap();
        self.then(done);
        buf
    }

    pub fn store(&mut self, core: CoreId, pa: u64, data: &[u8]) {
        let done = self.h.store(self.now, core, PhysAddr(pa), data).unwrap();
        self.then(done);
    }

    pub fn dma_write(&mut self, pa: u64, data: &[u8], snooped: bool) {
        let done = self
            .h
            .dma_write(self.now, PhysAddr(pa), data, snooped)
            .unwrap();
        self.then(done);
    }

    pub fn dma_read(&mut self, pa: u64, len: usize, snooped: bool) -> Vec<u8> {
        let mut buf = vec![0; len];
        let done = self
            .h
            .dma_read(self.now, PhysAddr(pa), &mut buf, snooped)
            .unwrap();
        self.then(done);
        buf
    }

    pub fn clflush(&mut self, core: CoreId, pa: u64) {
        let done = self.h.clflush(self.now, core, PhysAddr(pa)).unwrap();
        self.then(done);
    }

    pub fn clflushopt(&mut self, core: CoreId, pa: u64) {
        let done = self.h.clflushopt(self.now, core, PhysAddr(pa)).unwrap();
        self.then(done);
    }

    pub fn clwb(&mut self, core: CoreId, pa: u64) {
        let done = self.h.clwb(self.now, core, PhysAddr(pa)).unwrap();
        self.then(done);
    }

    pub fn sfence(&mut self, core: CoreId) {
        let done = self.h.sfence(self.now, core).unwrap();
        self.then(done);
    }

    pub fn wbinvd(&mut self, core: CoreId) {
        let done = self.h.wbinvd(self.now, core).unwrap();
        self.then(done);
    }

    pub fn wait_ns(&mut self, ns: u64) {
        let t = self.now + Span::from_ns(ns);
        self.h.advance(t).unwrap();
        self.then(t);
    }

    /// Loads `n` other lines that share `pa`'s set at every level (4 KiB apart), so that
    /// `pa`'s line is pushed out of the private caches and the LLC.
    pub fn evict_by_conflicts(&mut self, core: CoreId, pa: u64, n: u64) {
        for i in 1..=n {
            self.load(core, pa + i * 0x1_0000, 8);
        }
    }

    /// DRAM's bytes, untimed.
    pub fn dram_bytes(&self, pa: u64, len: usize) -> Vec<u8> {
        self.h.dram().contents().read_vec(PhysAddr(pa), len)
    }
}
