//! The timed agent (`amdvi::Amdvi`): IOTLB, page-directory and DTE caches, walk timing,
//! merging, the command buffer, the event log and walk coherency, driven through
//! `model_core::TranslationAgent` by the harness in `common` (DRAM 80 ns, default
//! `AmdviTiming`: 1 GHz clock, lookup 10 cycles, walk step 4, fault 20, command 200).
//!
//! Timing derivations used below (all in ns):
//! * a request is looked up `lookup` = 10 after it arrives (DTE cache, then IOTLB); a hit
//!   completes then;
//! * each memory read costs DRAM 80 plus `walk_step` 4 before the next read leaves (or the
//!   walk ends): 84 per read;
//! * a cold walk reads the DTE (84), then looks the IOTLB and page-directory caches up
//!   again (10) before the first table read: 10 + 84 + 10 + 84 · levels;
//! * a fault is answered `fault` = 20 after it is decided, and logged then;
//! * commands are fetched one at a time: the fetch leaves when CMD_TAIL is written (or the
//!   previous command completes), its data arrives 80 later, and the command completes 200
//!   after that; a COMPLETION_WAIT store is performed at its completion. Two commands
//!   written at T therefore complete at T + 280 and T + 560.

mod common;

use amdvi::cmd::{Command, ALL_PAGES_ADDRESS};
use amdvi::dte::DteFields;
use amdvi::event::{Event, IoPageFaultFlags};
use amdvi::regs::{offset, status, Capabilities};
use amdvi::tables::IoPageTable;
use amdvi::{AmdviCaches, AmdviConfig};
use common::*;
use model_core::{CacheCounts, PhysAddr, Span, Tick, TranslationAgent};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// A 4 KiB page: L4[0] → L3[1] → L2[0] → L1[0].
const A: u64 = 0x4000_0000;
const PA_A: u64 = 0x7_0000_0000;
/// The next 4 KiB pages under the same level-2 PDE.
const B: u64 = A + 0x1000;
const PA_B: u64 = 0x7_0000_5000;
const C: u64 = A + 0x2000;
const PA_C: u64 = 0x7_0000_9000;
/// Where remapped pages go.
const NEW: u64 = 0x8_8888_8000;

fn cfg() -> AmdviConfig {
    AmdviConfig::default()
}

/// A booted coherent unit whose dev0 is attached (domain 1) to a 4-level domain that
/// `build` fills; every table write is flushed to DRAM.
fn sys_with(c: AmdviConfig, build: impl FnOnce(&mut Tables)) -> (Sys, Tables) {
    let mut t = Tables::new(4);
    t.attach(dev0(), DOMAIN);
    build(&mut t);
    let sys = booted(c, &mut t);
    (sys, t)
}

fn standard(t: &mut Tables) {
    t.map(A, PA_A, 4 * KIB, RW);
}

fn ps(n: u64) -> Span {
    Span::from_ps(n)
}

/// INVALIDATE_IOMMU_PAGES of one 4 KiB page (S = 0).
fn inv_page(iova: u64, pde: bool) -> Command {
    Command::InvalidateIommuPages {
        domain_id: DOMAIN,
        pasid: 0,
        address: iova,
        size: false,
        pde,
        guest: false,
    }
}

// ---------------------------------------------------------------------------------------
// 5. IOTLB
// ---------------------------------------------------------------------------------------

#[test]
fn a_miss_walks_the_dte_and_every_level_and_a_hit_costs_exactly_lookup() {
    let (mut sys, _) = sys_with(cfg(), standard);
    let d1 = sys.translate(at_ns(1000), rd(dev0(), A | 0x40));
    assert_eq!(d1.code(), ok(PA_A | 0x40));
    let s = sys.agent.stats();
    assert_eq!(s.translations, 1);
    assert_eq!(s.iotlb, CacheCounts { hits: 0, misses: 1 });
    assert_eq!(s.walks, 1);
    // 1 DTE + 4 levels.
    assert_eq!(s.walk_memory_reads, 5);
    // 10 + 84 + 10 + 4 × 84 = 440 (module doc).
    assert_eq!(d1.latency(), ns(440));
    // Reads leave at 1010 (DTE), 1104, 1188, 1272, 1356; the DTE read is 32 bytes at
    // DevTabBase + 32 × 0x0300, each table read 8 bytes; all snooped (coherent unit).
    let at: Vec<_> = sys.reads.iter().map(|r| r.at).collect();
    assert_eq!(at, [1010, 1104, 1188, 1272, 1356].map(at_ns));
    assert_eq!(
        (sys.reads[0].pa, sys.reads[0].len),
        (PhysAddr(TABLE_BASE + 32 * 0x0300), 32)
    );
    assert!(sys.reads[1..].iter().all(|r| r.len == 8 && r.snooped));

    let before = sys.reads.len();
    let d2 = sys.translate(at_ns(5000), rd(dev0(), A | 0x80));
    assert_eq!(d2.code(), ok(PA_A | 0x80));
    assert_eq!(sys.reads.len(), before, "a hit reads nothing");
    assert_eq!(d2.latency(), ns(10));
    let s = sys.agent.stats();
    assert_eq!(s.iotlb, CacheCounts { hits: 1, misses: 1 });
    assert_eq!((s.walks, s.walk_memory_reads, s.translations), (1, 5, 2));
}

fn two_entry_iotlb() -> AmdviConfig {
    AmdviConfig {
        caches: AmdviCaches {
            iotlb: (1, 2),
            ..AmdviCaches::default()
        },
        ..AmdviConfig::default()
    }
}

#[test]
fn a_two_entry_iotlb_evicts_the_least_recently_used_page() {
    let (mut sys, _) = sys_with(two_entry_iotlb(), |t| {
        t.map(A, PA_A, 4 * KIB, RW);
        t.map(B, PA_B, 4 * KIB, RW);
        t.map(C, PA_C, 4 * KIB, RW);
    });
    let mut t = 1000;
    let mut go = |sys: &mut Sys, iova: u64| {
        t += 1000;
        sys.translate(at_ns(t), rd(dev0(), iova))
    };
    // A, B fill both ways; C evicts A, the least recently used.
    assert_eq!(go(&mut sys, A).code(), ok(PA_A));
    assert_eq!(go(&mut sys, B).code(), ok(PA_B));
    assert_eq!(go(&mut sys, C).code(), ok(PA_C));
    assert_eq!(sys.agent.stats().walks, 3);
    // C and B hit (10 ns, no walk) ...
    assert_eq!(go(&mut sys, C).latency(), ns(10));
    assert_eq!(go(&mut sys, B).latency(), ns(10));
    assert_eq!(sys.agent.stats().walks, 3);
    // ... A was evicted: it walks again (DTE and PDE cached: one read, 94 ns).
    let d = go(&mut sys, A);
    assert_eq!(d.code(), ok(PA_A));
    assert_eq!(d.latency(), ns(94));
    let s = sys.agent.stats();
    assert_eq!(s.walks, 4);
    assert_eq!(s.iotlb, CacheCounts { hits: 2, misses: 4 });
}

#[test]
fn one_2m_iotlb_entry_serves_every_4k_page_inside_it() {
    const L2M: u64 = 0x1_0000_0000;
    const PA2M: u64 = 0x9_0000_0000;
    // Two IOTLB entries only: eight 4K pages could not all hit if they were cached 4K-wise.
    let (mut sys, _) = sys_with(two_entry_iotlb(), |t| t.map(L2M, PA2M, 2 * MIB, RW));
    for k in 0..8u64 {
        let off = k * 0x3_f000 + 0x48;
        let d = sys.translate(at_ns(1000 + 1000 * k), rd(dev0(), L2M + off));
        assert_eq!(d.code(), ok(PA2M + off));
        // The first walks (DTE + L4, L3, L2: 10 + 84 + 10 + 3 × 84 = 356), the rest hit.
        assert_eq!(d.latency(), ns(if k == 0 { 356 } else { 10 }), "page {k}");
    }
    let s = sys.agent.stats();
    assert_eq!((s.walks, s.walk_memory_reads), (1, 4));
    assert_eq!(s.iotlb, CacheCounts { hits: 7, misses: 1 });
}

#[test]
fn a_page_above_2_to_the_54_is_cached_in_the_iotlb_like_any_other() {
    // Mode 6 translates all 64 IOVA bits (level 6 indexes 63:57); a page there is an
    // ordinary page and the second access to it is an IOTLB hit (10 ns, no read).
    const HIGH: u64 = (3 << 57) | 0x4000;
    let mut t = Tables::new(6);
    t.attach(dev0(), DOMAIN);
    t.map(HIGH, PA_A, 4 * KIB, RW);
    let mut sys = booted(cfg(), &mut t);
    assert_eq!(
        sys.translate(at_ns(1000), rd(dev0(), HIGH)).code(),
        ok(PA_A)
    );
    let before = sys.walk_reads();
    let d = sys.translate(at_ns(3000), rd(dev0(), HIGH | 0x40));
    assert_eq!(d.code(), ok(PA_A | 0x40));
    assert_eq!((d.latency(), sys.walk_reads()), (ns(10), before));
}

// ---------------------------------------------------------------------------------------
// 6. Page-directory and DTE caches
// ---------------------------------------------------------------------------------------

#[test]
fn a_second_page_under_the_same_pde_reads_one_entry_after_pdc_and_dte_cache_hits() {
    let (mut sys, t) = sys_with(cfg(), |t| {
        t.map(A, PA_A, 4 * KIB, RW);
        t.map(B, PA_B, 4 * KIB, RW);
    });
    sys.translate(at_ns(1000), rd(dev0(), A));
    // The cold walk probed the level-2, -3 and -4 PDE caches (a 4-level table has no
    // level-5 or -6 PDEs) and missed each; the DTE cache missed once.
    assert_eq!(sys.cache("pdc_l2"), CacheCounts { hits: 0, misses: 1 });
    assert_eq!(sys.cache("dte"), CacheCounts { hits: 0, misses: 1 });
    let before = sys.walk_reads();
    let d = sys.translate(at_ns(3000), rd(dev0(), B | 0x7));
    assert_eq!(d.code(), ok(PA_B | 0x7));
    // DTE cached, IOTLB miss, the level-2 PDE gives the level-1 table: one read, the PTE:
    // 10 + 84 = 94 ns.
    assert_eq!(sys.walk_reads() - before, 1);
    assert_eq!(d.latency(), ns(94));
    assert_eq!(sys.reads.last().unwrap().pa, PhysAddr(t.entry(B, 1)));
    assert_eq!(sys.cache("dte"), CacheCounts { hits: 1, misses: 1 });
    assert_eq!(sys.cache("pdc_l2"), CacheCounts { hits: 1, misses: 1 });
    assert_eq!(sys.cache("pdc_l3"), CacheCounts { hits: 0, misses: 1 });
    assert_eq!(sys.cache("pdc_l4"), CacheCounts { hits: 0, misses: 1 });
    assert_eq!(sys.cache("pdc_l5"), CacheCounts::default());
    assert_eq!(sys.cache("pdc_l6"), CacheCounts::default());
}

#[test]
fn a_cached_level_skipping_pde_still_faults_a_request_with_skipped_bits_set() {
    // Mode 4; the level-4 PDE skips to a level-2 table, so IOVA bits 38:30 must be zero
    // (VBox kIoPageFaultType_SkippedLevelIovaNotZero). X warms the caches; Y = X | 1 << 30
    // shares X's level-4 entry, level-2 and level-1 indexes: the architectural walk faults
    // it RZ, and a cached copy of the same PDE must not change that.
    const X: u64 = 0x80_0000_5000;
    const Y: u64 = X | 1 << 30;
    let mut t = Tables::new(4);
    t.attach(dev0(), DOMAIN);
    t.pt.map_skipping(&mut t.alloc, X, PhysAddr(PA_A), 4, 2, RW, &mut t.out)
        .unwrap();
    let mut sys = booted(cfg(), &mut t);
    assert_eq!(sys.translate(at_ns(1000), rd(dev0(), X)).code(), ok(PA_A));
    assert_eq!(sys.reference(&rd(dev0(), Y)), Err(IO_PAGE_FAULT));
    assert_eq!(
        sys.translate(at_ns(3000), rd(dev0(), Y)).code(),
        Err(IO_PAGE_FAULT),
        "the timed agent must agree with its reference"
    );
}

// ---------------------------------------------------------------------------------------
// 7. Merging and walk slots
// ---------------------------------------------------------------------------------------

#[test]
fn requests_to_one_page_1ns_apart_share_one_walk_and_each_gets_its_own_permission() {
    let (mut sys, _) = sys_with(cfg(), |t| t.map(A, PA_A, 4 * KIB, perm(true, false, true)));
    let t0 = sys.submit(at_ns(1000), rd(dev0(), A | 0x10));
    let t1 = sys.submit(at_ns(1001), rd(dev0(), A | 0x20));
    // A write to the same read-only page joins the same walk and faults on its own.
    let t2 = sys.submit(at_ns(1002), wr(dev0(), A | 0x30));
    sys.run();
    let d = |t| sys.done(t).unwrap().clone();
    let (d0, d1, d2) = (d(t0), d(t1), d(t2));
    assert_eq!(d0.code(), ok(PA_A | 0x10));
    assert_eq!(d1.code(), ok(PA_A | 0x20));
    assert_eq!(d2.code(), Err(IO_PAGE_FAULT));
    // All leave when the single walk ends (1000 + 440); the fault 20 later.
    assert_eq!(
        (d0.at, d1.at, d2.at),
        (at_ns(1440), at_ns(1440), at_ns(1460))
    );
    let s = sys.agent.stats();
    assert_eq!((s.walks, s.merged, s.walk_memory_reads), (1, 2, 5));
}

#[test]
fn with_one_walk_slot_a_miss_to_another_page_waits_for_the_first_walk() {
    const D: u64 = A + 2 * MIB; // another level-2 entry, same level-3 PDE
    let run = |max_walks: u16| {
        let c = AmdviConfig {
            max_walks,
            ..AmdviConfig::default()
        };
        let (mut sys, _) = sys_with(c, |t| {
            t.map(A, PA_A, 4 * KIB, RW);
            t.map(D, PA_B, 4 * KIB, RW);
        });
        let ta = sys.submit(at_ns(1000), rd(dev0(), A));
        let td = sys.submit(at_ns(1001), rd(dev0(), D));
        sys.run();
        let (da, dd) = (sys.done(ta).unwrap().clone(), sys.done(td).unwrap().clone());
        assert_eq!(da.code(), ok(PA_A));
        assert_eq!(dd.code(), ok(PA_B));
        let early = sys.reads.iter().filter(|r| r.at < da.at).count();
        (da, dd, early, sys.agent.stats())
    };
    let (da, dd, early, s) = run(1);
    assert_eq!(da.at, at_ns(1440));
    // D's walk starts when A's ends (1440) with A's DTE and level-3 PDE cached: it reads
    // the level-2 and level-1 entries, 1440 + 2 × 84 = 1608.
    assert_eq!(dd.at, at_ns(1608));
    assert_eq!(early, 5, "no read of D's walk leaves before A's walk ends");
    assert_eq!((s.walks, s.merged), (2, 0));
    // With free slots both walks run at once: D reads its own DTE, 1001 + 440 = 1441.
    let (da4, dd4, early4, _) = run(4);
    assert_eq!((da4.at, dd4.at), (at_ns(1440), at_ns(1441)));
    assert!(
        early4 > 5,
        "walks overlap with 4 slots ({early4} reads before A is done)"
    );
}

// ---------------------------------------------------------------------------------------
// 8. Commands
// ---------------------------------------------------------------------------------------

#[test]
fn invalidate_pages_and_completion_wait_end_the_stale_translation_at_completion() {
    let (mut sys, mut t) = sys_with(cfg(), standard);
    assert_eq!(sys.translate(at_ns(1000), rd(dev0(), A)).code(), ok(PA_A));
    // Remap the leaf (written and flushed): the IOTLB still holds the old translation.
    t.remap(A, NEW, 4 * KIB, RW);
    sys.mem.write_flushed(&t.take());
    let stale = sys.translate(at_ns(3000), rd(dev0(), A | 0x44));
    assert_eq!((stale.code(), stale.latency()), (ok(PA_A | 0x44), ns(10)));
    assert_eq!(sys.reference(&rd(dev0(), A | 0x44)), ok(NEW | 0x44));

    // INVALIDATE_IOMMU_PAGES (domain 1, A, S = 0, PDE = 0) + COMPLETION_WAIT (store).
    // QW0 = opcode 3 << 60 | DomainID 1 << 32; QW1 = A (address 63:12), S = PDE = 0.
    assert_eq!(
        inv_page(A, false).encode(),
        [0x3000_0001_0000_0000, 0x4000_0000]
    );
    let t0 = at_ns(4000);
    let cw = sys.completion_wait(0xfeed);
    sys.cmd_submit(t0, &[inv_page(A, false), cw]);
    // Invalidation done at T + 280, store at T + 560 (module doc).
    let early = sys.submit(t0 + ns(1), rd(dev0(), A | 0x44));
    let last_stale = sys.submit(t0 + ns(279), rd(dev0(), A | 0x44));
    let first_new = sys.submit(t0 + ns(280), rd(dev0(), A | 0x44));
    assert_eq!(
        sys.reg_read(t0 + ns(100), offset::CMD_HEAD),
        0,
        "nothing complete"
    );
    assert_eq!(
        sys.reg_read(t0 + ns(280), offset::CMD_HEAD),
        16,
        "invalidation done"
    );
    assert_eq!(sys.reg_read(t0 + ns(559), offset::CMD_HEAD), 16);
    assert_eq!(
        sys.sem(),
        0,
        "store not yet performed 1 ns before completion"
    );
    sys.run_until(t0 + (ns(560) - ps(1)));
    assert_eq!(sys.sem(), 0);
    assert_eq!(
        sys.reg_read(t0 + ns(560), offset::CMD_HEAD),
        32,
        "both done"
    );
    assert_eq!(sys.reg_read(t0 + ns(560), offset::CMD_TAIL), 32);
    assert_eq!(sys.sem(), 0xfeed);
    assert_eq!(sys.sem_write_tick(), Some(t0 + ns(560)));
    sys.run();
    assert_eq!(
        sys.done(early).unwrap().code(),
        ok(PA_A | 0x44),
        "before completion"
    );
    assert_eq!(sys.done(last_stale).unwrap().code(), ok(PA_A | 0x44));
    assert_eq!(
        sys.done(first_new).unwrap().code(),
        ok(NEW | 0x44),
        "at completion"
    );
    let later = sys.translate(at_ns(6000), rd(dev0(), A | 0x44));
    assert_eq!((later.code(), later.latency()), (ok(NEW | 0x44), ns(10)));
    assert_eq!(sys.agent.stats().invalidations, 2);
    // The two command fetches: 16 bytes each at CMD_BASE and CMD_BASE + 16, snooped (the
    // commands sit in the CPU cache only, as Linux writes them).
    let fetches: Vec<_> = sys
        .reads
        .iter()
        .filter(|r| (CMD_BASE..CMD_BASE + 8192).contains(&r.pa.0))
        .map(|r| (r.pa.0, r.len, r.snooped, r.at))
        .collect();
    assert_eq!(
        fetches,
        [
            (CMD_BASE, 16, true, t0),
            (CMD_BASE + 16, 16, true, t0 + ns(280))
        ]
    );
}

#[test]
fn the_linux_all_pages_form_drops_every_page_of_the_domain_and_no_other_domain() {
    const L2M: u64 = 0x1_0000_0000;
    const X: u64 = 0x5000;
    // Linux amd_iommu_domain_flush_all: address 0, size CMD_INV_IOMMU_ALL_PAGES_ADDRESS →
    // msb_diff 62 > 51 → address 0x7fff_ffff_ffff_f000 with S (bit 64) and PDE (bit 65):
    // QW1 = 0x7fff_ffff_ffff_f003.
    let all = Command::linux_inv_iommu_pages(DOMAIN, 0, 0x7fff_ffff_ffff_ffff);
    assert_eq!(all.encode(), [0x3000_0001_0000_0000, 0x7fff_ffff_ffff_f003]);
    assert_eq!(all.encode()[1] & !0xfff, ALL_PAGES_ADDRESS);
    let mut pt2 = None;
    let (mut sys, mut t) = sys_with(cfg(), |t| {
        t.map(A, PA_A, 4 * KIB, RW);
        t.map(L2M, 0x9_0000_0000, 2 * MIB, RW);
        // Device 03:00.1 in domain 2 with its own tables: X → PA_C.
        let mut p = IoPageTable::new(&mut t.alloc, 4).unwrap();
        p.map(&mut t.alloc, X, PhysAddr(PA_C), 4 * KIB, RW, &mut t.out)
            .unwrap();
        let f = DteFields {
            pt_root: p.root(),
            ..t.fields(2)
        };
        t.set_dte(dev(3, 0, 1), f);
        pt2 = Some(p);
    });
    sys.translate(at_ns(1000), rd(dev0(), A));
    sys.translate(at_ns(2000), rd(dev0(), L2M + 0x1000));
    sys.translate(at_ns(3000), rd(dev(3, 0, 1), X));
    t.remap(A, NEW, 4 * KIB, RW);
    t.remap(L2M, 0xa_0000_0000, 2 * MIB, RW);
    sys.mem.write_flushed(&t.take());
    let t0 = at_ns(4000);
    let cw = sys.completion_wait(1);
    sys.cmd_submit(t0, &[all, cw]);
    assert_eq!(
        sys.translate(t0 + ns(279), rd(dev0(), L2M + 0x1000)).code(),
        ok(0x9_0000_1000),
        "stale before completion"
    );
    sys.run();
    assert_eq!(sys.sem_write_tick(), Some(t0 + ns(560)));
    let t1 = at_ns(6000);
    let a = sys.translate(t1, rd(dev0(), A));
    // PDE = 1 dropped the page-directory entries too: DTE cached, 4 table reads, 346 ns.
    assert_eq!((a.code(), a.latency()), (ok(NEW), ns(346)));
    let big = sys.translate(t1 + ns(1000), rd(dev0(), L2M + 0x1000));
    assert_eq!(big.code(), ok(0xa_0000_1000));
    // Domain 2's entry survives: a hit.
    let other = sys.translate(t1 + ns(2000), rd(dev(3, 0, 1), X));
    assert_eq!((other.code(), other.latency()), (ok(PA_C), ns(10)));
}

#[test]
fn pde_1_also_drops_the_page_directory_entries_covering_the_page() {
    for (pde, reads, latency) in [(false, 1, 94), (true, 4, 346)] {
        let (mut sys, _) = sys_with(cfg(), |t| {
            t.map(A, PA_A, 4 * KIB, RW);
            t.map(C, PA_C, 4 * KIB, RW);
        });
        sys.translate(at_ns(1000), rd(dev0(), A));
        let cw = sys.completion_wait(1);
        sys.cmd_submit(at_ns(2000), &[inv_page(A, pde), cw]);
        sys.run();
        let before = sys.walk_reads();
        // C shares A's level-2, -3, -4 PDEs: with PDE = 0 the level-2 PDE is still cached
        // (one read, 94 ns); with PDE = 1 all three are gone (4 reads, 10 + 4 × 84 = 346).
        let d = sys.translate(at_ns(5000), rd(dev0(), C));
        assert_eq!(d.code(), ok(PA_C));
        assert_eq!(
            (sys.walk_reads() - before, d.latency()),
            (reads, ns(latency)),
            "PDE {pde}"
        );
        // A's own IOTLB entry is gone either way (one read: its level-2 PDE came back with C).
        let before = sys.walk_reads();
        assert_eq!(sys.translate(at_ns(6000), rd(dev0(), A)).code(), ok(PA_A));
        assert_eq!(sys.walk_reads() - before, 1, "PDE {pde}");
    }
}

/// dev0 in domain 1 (A → PA_A); a second domain's tables (A → NEW) to move it to.
fn two_domains() -> (Sys, Tables, IoPageTable) {
    let (mut sys, mut t) = sys_with(cfg(), standard);
    let mut pt2 = IoPageTable::new(&mut t.alloc, 4).unwrap();
    pt2.map(&mut t.alloc, A, PhysAddr(NEW), 4 * KIB, RW, &mut t.out)
        .unwrap();
    sys.mem.write_flushed(&t.take());
    (sys, t, pt2)
}

#[test]
fn invalidate_devtab_entry_drops_the_cached_dte_of_that_device_only() {
    let (mut sys, mut t, pt2) = two_domains();
    assert_eq!(sys.translate(at_ns(1000), rd(dev0(), A)).code(), ok(PA_A));
    // Move dev0 to domain 2 (new root); written and flushed.
    let f = DteFields {
        pt_root: pt2.root(),
        ..t.fields(2)
    };
    t.set_dte(dev0(), f);
    sys.mem.write_flushed(&t.take());
    // The cached DTE (domain 1) still finds domain 1's IOTLB entry.
    assert_eq!(sys.translate(at_ns(2000), rd(dev0(), A)).code(), ok(PA_A));
    assert_eq!(sys.reference(&rd(dev0(), A)), ok(NEW));
    // Invalidating another DeviceID (0x0301) changes nothing for dev0.
    let inv = |id| Command::InvalidateDevtabEntry { device_id: id };
    // INVALIDATE_DEVTAB_ENTRY: QW0 = opcode 2 << 60 | DeviceID 15:0.
    assert_eq!(inv(0x0300).encode(), [0x2000_0000_0000_0300, 0]);
    let cw = sys.completion_wait(1);
    sys.cmd_submit(at_ns(3000), &[inv(0x0301), cw]);
    sys.run();
    assert_eq!(sys.translate(at_ns(4000), rd(dev0(), A)).code(), ok(PA_A));
    let t0 = at_ns(5000);
    let cw = sys.completion_wait(2);
    sys.cmd_submit(t0, &[inv(0x0300), cw]);
    let before = sys.submit(t0 + ns(279), rd(dev0(), A));
    let after = sys.submit(t0 + ns(280), rd(dev0(), A));
    sys.run();
    assert_eq!(sys.done(before).unwrap().code(), ok(PA_A));
    // From completion: DTE re-read (domain 2, its root), domain 2 has nothing cached:
    // 10 + 84 + 10 + 4 × 84 = 440.
    let d = sys.done(after).unwrap();
    assert_eq!((d.code(), d.latency()), (ok(NEW), ns(440)));
    assert_eq!(sys.sem_write_tick(), Some(t0 + ns(560)));
}

#[test]
fn invalidate_iommu_all_drops_dtes_translations_and_page_directory_entries() {
    let (mut sys, _) = sys_with(cfg(), standard);
    sys.translate(at_ns(1000), rd(dev0(), A));
    // INVALIDATE_IOMMU_ALL: QW0 = opcode 8 << 60, everything else 0.
    assert_eq!(
        Command::InvalidateIommuAll.encode(),
        [0x8000_0000_0000_0000, 0]
    );
    let t0 = at_ns(2000);
    let cw = sys.completion_wait(1);
    sys.cmd_submit(t0, &[Command::InvalidateIommuAll, cw]);
    let stale = sys.submit(t0 + ns(279), rd(dev0(), A));
    let cold = sys.submit(t0 + ns(280), rd(dev0(), A));
    sys.run();
    assert_eq!(
        sys.done(stale).unwrap().latency(),
        ns(10),
        "a hit before completion"
    );
    // A cold walk again: DTE + 4 levels, 440 ns; the DTE cache missed a second time.
    let d = sys.done(cold).unwrap();
    assert_eq!((d.code(), d.latency()), (ok(PA_A), ns(440)));
    assert_eq!(sys.walk_reads(), 10);
    assert_eq!(sys.cache("dte").misses, 2);
}

#[test]
fn an_illegal_command_stops_the_command_processor_and_logs_illegal_command_error() {
    // Opcode 0xB is not a command (1..=8 defined, 9/0xA vIOMMU only); an INVALIDATE_IOMMU_ALL
    // with QW1 bit 0 set has a reserved bit set. Each stops the processor at itself.
    for bad in [[0xb000_0000_0000_0000u64, 0], [0x8000_0000_0000_0000, 1]] {
        let (mut sys, _) = sys_with(cfg(), standard);
        let t0 = at_ns(1000);
        let cw = sys.completion_wait(7).encode();
        sys.cmd_submit_raw(t0, &[bad, cw]);
        sys.run();
        // Fetched at T, data at T + 80: the event is written then. ILLEGAL_COMMAND_ERROR:
        // QW0 = code 5 << 60, QW1 = the command's address.
        assert_eq!(sys.mem.u64_coherent(EVT_BASE), 0x5000_0000_0000_0000);
        assert_eq!(sys.mem.u64_coherent(EVT_BASE + 8), CMD_BASE);
        assert_eq!(
            sys.events(),
            [Event::IllegalCommandError {
                address: PhysAddr(CMD_BASE)
            }]
        );
        assert!(sys
            .reg_changes
            .contains(&(offset::EVT_TAIL as u32, t0 + ns(80))));
        // The COMPLETION_WAIT behind it is never fetched nor performed.
        assert_eq!(sys.sem_write_tick(), None);
        assert_eq!(sys.sem(), 0);
        let fetches = sys.reads.iter().filter(|r| r.pa.0 >= CMD_BASE).count();
        assert_eq!(fetches, 1);
        // CmdBufRun (Status bit 4) is clear; the head still points at the illegal command.
        let st = sys.reg_read(at_ns(2000), offset::STATUS);
        assert_eq!(st & status::CMD_RUN, 0);
        assert_eq!(sys.reg_read(at_ns(2000), offset::CMD_HEAD), 0);
    }
}

#[test]
fn completion_wait_with_i_sets_status_com_wait_int_at_completion() {
    // §2.4 COMPLETION_WAIT I (bit 1): on completion set Status.ComWaitInt (MMIO 2020h bit 2,
    // L-AMDT MMIO_STATUS_COM_WAIT_INT_MASK; the crate's own cmd.rs doc says the same).
    let (mut sys, _) = sys_with(cfg(), standard);
    let cw = Command::CompletionWait {
        store: None,
        interrupt: true,
        flush_queue: false,
    };
    sys.cmd_submit(at_ns(1000), &[cw]);
    assert_eq!(
        sys.reg_read(at_ns(1279), offset::STATUS) & status::COM_WAIT_INT,
        0
    );
    assert_ne!(
        sys.reg_read(at_ns(1280), offset::STATUS) & status::COM_WAIT_INT,
        0
    );
    // RW1C.
    sys.reg_write(at_ns(1300), offset::STATUS, status::COM_WAIT_INT);
    assert_eq!(
        sys.reg_read(at_ns(1300), offset::STATUS) & status::COM_WAIT_INT,
        0
    );
}

// ---------------------------------------------------------------------------------------
// 9. Event log
// ---------------------------------------------------------------------------------------

#[test]
fn events_land_in_16_byte_slots_from_evt_log_base_and_evt_tail_advances() {
    let (mut sys, _) = sys_with(cfg(), |t| {
        t.map(A, PA_A, 4 * KIB, perm(true, false, true));
    });
    let faults = [
        rd(dev0(), B | 0x8),         // not present
        wr(dev0(), A | 0x10),        // IW = 0
        rd(dev(0x10, 0, 0), 0x2000), // DeviceID beyond the table
    ];
    for (n, r) in faults.iter().enumerate() {
        let d = sys.translate(at_ns(1000 * (n as u64 + 1)), *r);
        assert!(d.result.is_err());
        // EVT_TAIL (MMIO 2018h) = 16 × events written, reported as changed at the fault.
        let tail = sys.reg_read(d.at, offset::EVT_TAIL);
        assert_eq!(tail, 16 * (n as u64 + 1));
        assert!(sys.reg_changes.contains(&(offset::EVT_TAIL as u32, d.at)));
        assert!(d.result.unwrap_err().logged.contains("event log entry"));
    }
    let f = |pr, rw, pe| IoPageFaultFlags {
        pr,
        rw,
        pe,
        ..IoPageFaultFlags::default()
    };
    assert_eq!(
        sys.events(),
        [
            Event::IoPageFault {
                device_id: 0x0300,
                domain_or_pasid: DOMAIN,
                pasid_hi: 0,
                flags: f(false, false, false),
                address: B | 0x8
            },
            Event::IoPageFault {
                device_id: 0x0300,
                domain_or_pasid: DOMAIN,
                pasid_hi: 0,
                flags: f(true, true, true),
                address: A | 0x10
            },
            Event::IllegalDevTableEntry {
                device_id: 0x1000,
                pasid: 0,
                flags: IoPageFaultFlags::default(),
                address: 0x2000
            },
        ]
    );
    assert_eq!(sys.agent.stats().faults_logged, 3);
}

/// A blocked device as Linux leaves unattached ones (V = 1, TV = 1, Mode 0, IR = IW = 0):
/// every access faults IO_PAGE_FAULT (PE) without a table walk once its DTE is cached.
fn blocked(t: &mut Tables) {
    t.set_dte(
        dev(5, 0, 0),
        DteFields {
            v: true,
            tv: true,
            domain_id: 9,
            ..DteFields::default()
        },
    );
}

#[test]
fn a_full_256_entry_log_drops_events_sets_event_overflow_and_counts_them() {
    let mut t = Tables::new(4);
    blocked(&mut t);
    let mut sys = Sys::new(cfg());
    sys.evt_entries = 256; // the smallest log: EventLen = 8
    assert_eq!(sys.evt_log_register().0, EVT_BASE | 8 << 56);
    sys.mem.write_flushed(&t.take());
    sys.boot(t.devtab_reg(), true);
    let fault = |sys: &mut Sys, n: u64| {
        let d = sys.translate(at_ns(1000 * (n + 1)), rd(dev(5, 0, 0), n << 12));
        assert_eq!(d.code(), Err(IO_PAGE_FAULT));
        d
    };
    // The ring holds 255 events: full when the tail would reach the head (0).
    for n in 0..255 {
        fault(&mut sys, n);
    }
    let now = sys.now();
    assert_eq!(sys.reg_read(now, offset::EVT_TAIL), 255 * 16);
    assert_eq!(sys.reg_read(now, offset::STATUS) & status::EVT_OVERFLOW, 0);
    assert_eq!(sys.events().len(), 255);
    assert_eq!(
        sys.event_slot(254).map(|e| e.code().code()),
        Some(IO_PAGE_FAULT as u8)
    );
    let d = fault(&mut sys, 255);
    assert!(d.result.unwrap_err().logged.contains("full"));
    fault(&mut sys, 256);
    let now = sys.now();
    // EventOverflow (Status bit 0); two dropped; the tail did not move; slot 255 empty.
    assert_ne!(sys.reg_read(now, offset::STATUS) & status::EVT_OVERFLOW, 0);
    let s = sys.agent.stats();
    assert_eq!((s.faults_logged, s.faults_overflowed), (255, 2));
    assert_eq!(sys.reg_read(now, offset::EVT_TAIL), 255 * 16);
    assert_eq!(sys.event_slot(255), None);
    // Software drains the log (EVT_HEAD = tail) and clears EventOverflow (RW1C, Linux
    // amd_iommu_restart_log): the next event lands in slot 255 and the tail wraps to 0.
    sys.reg_write(now, offset::EVT_HEAD, 255 * 16);
    sys.reg_write(now, offset::STATUS, status::EVT_OVERFLOW);
    assert_eq!(sys.reg_read(now, offset::STATUS) & status::EVT_OVERFLOW, 0);
    fault(&mut sys, 300);
    let now = sys.now();
    assert_eq!(sys.reg_read(now, offset::EVT_TAIL), 0);
    match sys.event_slot(255) {
        Some(Event::IoPageFault {
            device_id, address, ..
        }) => assert_eq!((device_id, address), (0x0500, 300 << 12)),
        other => panic!("slot 255: {other:?}"),
    }
    assert_eq!(sys.agent.stats().faults_logged, 256);
}

#[test]
fn dte_sa_suppresses_io_page_fault_events_but_not_the_fault() {
    // DTE SA (bit 98, L-AMDT DEV_ENTRY_NO_PAGE_FAULT 0x62): "suppress all I/O page fault
    // events" (VBox iommuAmdRaiseIoPageFaultEvent: fSuppressEvtLogging = DTE.SA). The
    // request still fails; nothing is written to the log.
    let (mut sys, _) = sys_with(cfg(), |t| {
        let f = DteFields {
            sa: true,
            ..t.fields(DOMAIN)
        };
        t.set_dte(dev(3, 0, 1), f);
        standard(t);
    });
    let d = sys.translate(at_ns(1000), rd(dev(3, 0, 1), B));
    assert_eq!(d.code(), Err(IO_PAGE_FAULT));
    assert!(sys.events().is_empty(), "{:?}", sys.events());
    assert_eq!(sys.reg_read(d.at, offset::EVT_TAIL), 0);
    let s = sys.agent.stats();
    assert_eq!((s.faults_logged, s.faults_suppressed), (0, 1));
}

#[test]
fn status_event_log_int_is_set_when_an_event_is_written() {
    // MMIO 2020h bit 1 EventLogInt, RW1C (L-AMDT MMIO_STATUS_EVT_INT_MASK): VBox
    // iommuAmdWriteEvtLogEntry sets IOMMU_STATUS_EVT_LOG_INTR on every entry written; Linux
    // amd_iommu_int_thread_evtlog loops while (status & MMIO_STATUS_EVT_INT_MASK).
    let (mut sys, _) = sys_with(cfg(), standard);
    assert_eq!(
        sys.reg_read(at_ns(500), offset::STATUS) & status::EVT_INT,
        0
    );
    let d = sys.translate(at_ns(1000), rd(dev0(), B));
    assert!(d.result.is_err());
    assert_ne!(sys.reg_read(d.at, offset::STATUS) & status::EVT_INT, 0);
    sys.reg_write(d.at, offset::STATUS, status::EVT_INT);
    assert_eq!(sys.reg_read(d.at, offset::STATUS) & status::EVT_INT, 0);
}

#[test]
fn status_reports_event_log_running_until_it_overflows() {
    // MMIO 2020h bit 3 EventLogRun (L-AMDT MMIO_STATUS_EVT_RUN_MASK): Linux
    // amd_iommu_restart_log returns early while it is set.
    let (mut sys, _) = sys_with(cfg(), standard);
    let st = sys.reg_read(at_ns(100), offset::STATUS);
    assert_ne!(st & status::CMD_RUN, 0, "CmdBufRun");
    assert_ne!(st & status::EVT_RUN, 0, "EventLogRun");
}

#[test]
fn linux_boot_writes_evt_tail_zero_and_the_unit_accepts_it() {
    // Linux init.c iommu_enable_event_buffer: "set head and tail to zero manually":
    // writel(0, EVT_HEAD); writel(0, EVT_TAIL).
    let t = Tables::new(4);
    let mut sys = Sys::new(cfg());
    sys.boot(t.devtab_reg(), true);
    let r = sys.try_reg_write(at_ns(10), offset::EVT_TAIL, 0);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(sys.reg_read(at_ns(10), offset::EVT_TAIL), 0);
}

// ---------------------------------------------------------------------------------------
// 10. Walk coherency
// ---------------------------------------------------------------------------------------

#[test]
fn a_non_coherent_walker_reads_a_stale_pte_from_dram_a_coherent_one_snoops_the_new_one() {
    // (capabilities.coherent, Control.Coherent) → walks snoop only when both are set.
    for (cap, ctl) in [(true, false), (false, true), (true, true)] {
        let coherent = cap && ctl;
        let c = AmdviConfig {
            caps: Capabilities {
                coherent: cap,
                ..Capabilities::default()
            },
            ..AmdviConfig::default()
        };
        let mut t = Tables::new(4);
        t.attach(dev0(), DOMAIN);
        standard(&mut t);
        let mut sys = Sys::new(c);
        sys.mem.write_flushed(&t.take());
        sys.boot(t.devtab_reg(), ctl);
        // The driver remaps A and maps B but skips the flush: the new entries sit in the
        // CPU cache only.
        t.remap(A, NEW, 4 * KIB, RW);
        t.map(B, PA_B, 4 * KIB, RW);
        sys.mem.write_cached(&t.take());
        let ra = rd(dev0(), A | 0x8);
        let rb = rd(dev0(), B | 0x8);
        // reference_translate over the overlay-then-DRAM view sees the update; over DRAM
        // alone, the old tables.
        assert_eq!(sys.reference(&ra), ok(NEW | 0x8));
        assert_eq!(sys.reference(&rb), ok(PA_B | 0x8));
        assert_eq!(sys.reference_dram(&ra), ok(PA_A | 0x8));
        assert_eq!(sys.reference_dram(&rb), Err(IO_PAGE_FAULT));
        let da = sys.translate(at_ns(1000), ra).code();
        let db = sys.translate(at_ns(2000), rb).code();
        let what = format!("caps.coherent {cap}, Control.Coherent {ctl}");
        assert!(
            sys.reads.iter().all(|r| r.snooped == coherent),
            "{what}: every DTE and table read"
        );
        if coherent {
            assert_eq!((da, db), (ok(NEW | 0x8), ok(PA_B | 0x8)), "{what}");
        } else {
            assert_eq!(
                (da, db),
                (ok(PA_A | 0x8), Err(IO_PAGE_FAULT)),
                "{what}: stale"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// 11. Latency table
// ---------------------------------------------------------------------------------------

/// One measured case on a fresh unit: a warm-up request (if any) then the measured one.
fn measure(
    levels: u8,
    build: impl FnOnce(&mut Tables),
    warm: Option<u64>,
    iova: u64,
) -> (Span, u64, Result<model_core::Translation, u32>) {
    let mut t = Tables::new(levels);
    t.attach(dev0(), DOMAIN);
    build(&mut t);
    let mut sys = booted(cfg(), &mut t);
    if let Some(w) = warm {
        sys.translate(at_ns(1000), rd(dev0(), w));
    }
    let before = sys.walk_reads();
    let d = sys.translate(at_ns(10_000), rd(dev0(), iova));
    (d.latency(), sys.walk_reads() - before, d.code())
}

#[test]
fn latency_table_for_80ns_dram_and_default_timing() {
    const L2_SIBLING: u64 = A + 0x1000; // same level-1 table
    const L3_SIBLING: u64 = A + 2 * MIB; // another level-2 entry, same level-2 table
    const L4_SIBLING: u64 = A + GIB; // another level-3 entry, same level-3 table
    const FAR: u64 = 0x80_0000_0000; // another level-4 entry
    const L2M: u64 = 0x1_0000_0000;
    const L1G: u64 = 0x2_0000_0000;
    const M6: u64 = (5 << 57) | (4 << 48) | (3 << 39) | (2 << 30) | (1 << 21) | 0x3000;
    let everything = |t: &mut Tables| {
        if t.pt.levels() == 6 {
            t.map(M6, 0x7_1000_0000, 4 * KIB, RW);
            return;
        }
        for (i, iova) in [A, L2_SIBLING, L3_SIBLING, L4_SIBLING, FAR]
            .into_iter()
            .enumerate()
        {
            t.map(iova, 0x7_0000_0000 + 0x1000 * i as u64, 4 * KIB, RW);
        }
        t.map(L2M, 0x9_0000_0000, 2 * MIB, RW);
        t.map(L1G, 0x40_0000_0000, GIB, RW);
    };
    /// (case, mode, warm-up, measured IOVA, expected ns, expected reads); module doc.
    type Case = (&'static str, u8, Option<u64>, u64, u64, u64);
    let cases: [Case; 10] = [
        ("IOTLB hit", 4, Some(A), A, 10, 0),
        // DTE cached; 1, 2, 3 table reads of 84 after the 10 ns lookup
        (
            "PDC hit at level 2 (reads L1)",
            4,
            Some(A),
            L2_SIBLING,
            94,
            1,
        ),
        (
            "PDC hit at level 3 (reads L2, L1)",
            4,
            Some(A),
            L3_SIBLING,
            178,
            2,
        ),
        (
            "PDC hit at level 4 (reads L3..L1)",
            4,
            Some(A),
            L4_SIBLING,
            262,
            3,
        ),
        ("DTE hit, no PDC hit (4 reads)", 4, Some(A), FAR, 346, 4),
        // 10 + 84 (DTE) + 10 + n × 84
        ("cold walk, mode 4, 4K page", 4, None, A, 440, 5),
        ("cold walk, mode 4, 2M page", 4, None, L2M, 356, 4),
        ("cold walk, mode 4, 1G page", 4, None, L1G, 272, 3),
        ("cold walk, mode 6, 4K page", 6, None, M6, 608, 7),
        // a not-present PTE under a cached PDE: 10 + 84 + fault 20
        (
            "not-present PTE, PDC hit at level 2",
            4,
            Some(A),
            A + 0x3000,
            114,
            1,
        ),
    ];
    println!(
        "\nAMD-Vi latency, DRAM 80 ns, default AmdviTiming (1 GHz; lookup 10, walk step 4, fault 20)"
    );
    println!("{:<40} {:>10} {:>10}", "case", "latency_ns", "mem_reads");
    for (name, levels, warm, iova, exp_ns, exp_reads) in cases {
        let (lat, reads, result) = measure(levels, everything, warm, iova);
        println!("{name:<40} {:>10.1} {reads:>10}", lat.as_ns_f64());
        assert_eq!((lat, reads), (ns(exp_ns), exp_reads), "{name}: {result:?}");
        if exp_ns == 114 {
            assert_eq!(result, Err(IO_PAGE_FAULT));
        } else {
            assert!(result.is_ok(), "{name}");
        }
    }
}

#[test]
fn the_unit_passes_requests_through_before_iommu_en() {
    // After reset (Control = 0) the unit translates nothing: PA = IOVA after the lookup.
    let t = Tables::new(4);
    let mut sys = Sys::new(cfg());
    sys.reg_write(Tick::ZERO, offset::DEV_TABLE_BASE, t.devtab_reg().0);
    let d = sys.translate(at_ns(100), rd(dev0(), 0x1234_5000));
    assert_eq!((d.code(), d.latency()), (ok_nofc(0x1234_5000), ns(10)));
    assert!(sys.reads.is_empty());
}
