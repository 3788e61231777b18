//! A seeded random tester (after gem5's `memtest`): thousands of loads, stores, flushes,
//! fences, wbinvd and snooped DMA over a few conflicting lines, on several hierarchy
//! shapes. After every operation: the protocol invariants (single writer / multiple
//! readers, directory, inclusion, no transient state left), the data-value invariant, and
//! every value read checked against a reference memory. At the end, after wbinvd, DRAM
//! equals the reference.

mod common;

use cache::{CoreId, Hierarchy, HierarchyConfig, WbinvdScope};
use common::{dram, small, Shadow};
use model_core::{PhysAddr, Replacement, Span, Tick};
use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

const OPS: usize = 4_000;
const CORES: u16 = 3;

/// Lines touched.
const LINES: u64 = 16;

/// 8 groups of 2 consecutive lines, groups 64 KiB apart (same sets at every level), so
/// the 2-way L1 and 4-way LLC sets overflow constantly.
fn line_base(i: u64) -> u64 {
    0x10_0000 + (i / 2) * 0x1_0000 + (i % 2) * 64
}

struct Tester {
    h: Hierarchy<Shadow>,
    rng: Xoshiro256PlusPlus,
    now: Tick,
    /// Half of the device accesses skip the snoop: only protocol invariants then hold.
    no_snoop: bool,
}

impl Tester {
    fn below(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n
    }

    fn addr(&mut self) -> PhysAddr {
        let line = self.below(LINES);
        PhysAddr(line_base(line) + self.below(64))
    }

    fn bytes(&mut self, max: u64) -> Vec<u8> {
        let n = 1 + self.below(max) as usize;
        (0..n).map(|_| self.rng.next_u64() as u8).collect()
    }

    fn core(&mut self) -> CoreId {
        CoreId(self.below(u64::from(CORES)) as u16)
    }

    /// One random operation; returns its name for failure messages.
    fn step(&mut self) -> &'static str {
        let dt = Span::from_ns(self.below(40));
        self.now += dt;
        let (now, core, pa) = (self.now, self.core(), self.addr());
        let dice = self.below(100);
        let len = 1 + self.below(64) as usize;
        let data = self.bytes(if dice < 60 { 64 } else { 200 });
        let snooped = !(self.no_snoop && self.below(2) == 0);
        let h = &mut self.h;
        let mut buf = vec![0; if dice < 60 { len } else { data.len() }];
        match dice {
            0..=29 => h.load(now, core, pa, &mut buf).map(|_| "load"),
            30..=59 => h.store(now, core, pa, &data).map(|_| "store"),
            60..=65 => h.clflush(now, core, pa).map(|_| "clflush"),
            66..=71 => h.clflushopt(now, core, pa).map(|_| "clflushopt"),
            72..=76 => h.clwb(now, core, pa).map(|_| "clwb"),
            77..=80 => h.sfence(now, core).map(|_| "sfence"),
            81..=82 => h.mfence(now, core).map(|_| "mfence"),
            83 => h.wbinvd(now, core).map(|_| "wbinvd"),
            84 => h.wbnoinvd(now, core).map(|_| "wbnoinvd"),
            85..=91 => h.dma_write(now, pa, &data, snooped).map(|_| "dma_write"),
            92..=97 => h.dma_read(now, pa, &mut buf, snooped).map(|_| "dma_read"),
            _ => h.advance(now).map(|_| "advance"),
        }
        .unwrap_or_else(|e| panic!("operation failed at {now}: {e}"))
    }

    fn check(&self, op: &str, i: usize) {
        let at = |e| panic!("after op {i} ({op}): {e}");
        self.h.check_invariants().unwrap_or_else(at);
        if self.no_snoop {
            return;
        }
        self.h.check_data_coherent().unwrap_or_else(at);
        let s = self.h.observer();
        assert_eq!(s.corrupted(), 0, "after op {i} ({op}): a read disagreed");
        for l in 0..LINES {
            let pa = PhysAddr(line_base(l));
            let want = s.reference.read_vec(pa, 64);
            assert_eq!(
                self.h.coherent_line(pa).to_vec(),
                want,
                "op {i} ({op}), line {l}"
            );
        }
    }
}

fn run(config: HierarchyConfig, seed: u64) -> cache::HierarchyStats {
    let mut t = Tester {
        h: Hierarchy::with_observer(config, dram(), Shadow::default()).unwrap(),
        rng: Xoshiro256PlusPlus::seed_from_u64(seed),
        now: Tick::ZERO,
        no_snoop: false,
    };
    for i in 0..OPS {
        let op = t.step();
        t.check(op, i);
    }
    // Settle: every core fences and flushes; DRAM must then equal the reference.
    t.now += Span::from_ns(1);
    for c in 0..CORES {
        t.h.wbinvd(t.now, CoreId(c)).unwrap();
    }
    let s = t.h.observer();
    for l in 0..LINES {
        let pa = PhysAddr(line_base(l));
        let dram = t.h.dram().contents().read_vec(pa, 64);
        assert_eq!(dram, s.reference.read_vec(pa, 64), "seed {seed}, line {l}");
    }
    t.h.stats()
}

fn shapes() -> Vec<(&'static str, HierarchyConfig)> {
    let mut out = Vec::new();
    for (inclusive, l2, ddio) in [
        (false, false, 0),
        (false, true, 2),
        (true, false, 2),
        (true, true, 0),
    ] {
        let mut c = small(inclusive, l2, ddio);
        c.cores = CORES;
        out.push(("lru", c));
        let mut p = c;
        p.l1.replacement = Replacement::PseudoLru;
        p.llc.level.replacement = Replacement::PseudoLru;
        if let Some(l2) = &mut p.l2 {
            l2.replacement = Replacement::PseudoLru;
        }
        p.wbinvd_scope = WbinvdScope::IssuerAndShared;
        out.push(("plru, issuer-only wbinvd", p));
    }
    out
}

#[test]
fn random_snooped_traffic_keeps_swmr_and_data_equal_to_the_reference() {
    for (i, (name, config)) in shapes().into_iter().enumerate() {
        let stats = run(config, 0x5eed_0000 + i as u64);
        // The run exercised what it claims to: evictions, snoops, weak flushes.
        assert!(stats.writebacks_to_llc > 0, "{name}: {stats:?}");
        assert!(stats.writebacks_to_dram > 0, "{name}");
        assert!(
            stats.snoops.fwd_gets + stats.snoops.invalidations > 0,
            "{name}"
        );
        assert!(stats.snoops.dirty_forwards > 0, "{name}");
        assert!(stats.upgrades > 0, "{name}");
        assert!(
            stats.flushes.weak_performed_by_fence > 0 && stats.flushes.weak_performed_on_time > 0,
            "{name}: {:?}",
            stats.flushes
        );
        if config.llc.inclusive {
            assert!(stats.snoops.back_invalidations > 0, "{name}");
        }
        if config.llc.ddio_ways > 0 {
            assert!(stats.dma.ddio_allocations > 0, "{name}");
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let c = shapes()[1].1;
    assert_eq!(run(c, 42), run(c, 42));
}

#[test]
fn no_snoop_dma_corrupts_data_but_never_breaks_the_protocol_invariants() {
    for (i, (name, config)) in shapes().into_iter().enumerate() {
        let mut t = Tester {
            h: Hierarchy::with_observer(config, dram(), Shadow::default()).unwrap(),
            rng: Xoshiro256PlusPlus::seed_from_u64(0xbad_0000 + i as u64),
            now: Tick::ZERO,
            no_snoop: true,
        };
        for i in 0..OPS {
            let op = t.step();
            t.check(op, i);
        }
        let s = t.h.observer();
        assert!(s.stale_cpu_read_bytes > 0, "{name}");
        assert!(s.stale_device_read_bytes > 0, "{name}");
        assert!(s.lost_dma_write_bytes > 0, "{name}");
    }
}
