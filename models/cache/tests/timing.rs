//! Latencies, flush and fence costs, and the call contract's errors.
//!
//! The `small` fixture runs at 1 GHz (1 cycle = 1 ns): L1 4, L2 12, LLC 40 cycles, snoop
//! +20; DRAM 50 ns latency + 1 ns per byte (64 ns per line).

mod common;

use cache::{
    CacheError, CoreId, Dram, DramConfig, EffectKind, EffectLog, FlushKind, Hierarchy,
    HierarchyConfig, LevelConfig,
};
use common::{dram, small, Run, C0, C1};
use model_core::{PhysAddr, Replacement, Span, Tick};

const X: u64 = 0x4000;

fn elapsed_ns(r: &mut Run, f: impl FnOnce(&mut Run)) -> u64 {
    let start = r.now;
    f(r);
    r.now.saturating_since(start).as_ps() / 1_000
}

#[test]
fn each_level_answers_with_its_own_latency() {
    let mut r = Run::new(small(true, true, 0));
    // Miss everywhere: LLC lookup 40 ns, then DRAM 64 + 50 ns.
    assert_eq!(elapsed_ns(&mut r, |r| drop(r.load(C0, X, 8))), 40 + 64 + 50);
    assert_eq!(elapsed_ns(&mut r, |r| drop(r.load(C0, X, 8))), 4, "L1 hit");
    // Two more lines in X's 2-way L1 set (8 sets × 64 B apart = 0x200) push X out of L1
    // but not out of the 4-way L2.
    r.load(C0, X + 0x200, 8);
    r.load(C0, X + 0x400, 8);
    assert_eq!(elapsed_ns(&mut r, |r| drop(r.load(C0, X, 8))), 12, "L2 hit");
    // Core 1 reads it from the inclusive LLC after a snoop of core 0 (a lone E holder).
    assert_eq!(elapsed_ns(&mut r, |r| drop(r.load(C1, X, 8))), 40 + 20);
    assert_eq!(r.h.stats().snoops.fwd_gets, 1);
}

#[test]
fn a_load_crossing_a_line_boundary_touches_both_lines() {
    let mut r = Run::new(small(false, false, 0));
    r.store(C0, X + 60, &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(r.load(C1, X + 62, 4), vec![3, 4, 5, 6]);
    assert_eq!(r.h.stats().stores, 1);
    assert_eq!(r.h.stats().l1.misses, 4, "two lines for each core");
}

#[test]
fn clflushopt_then_one_sfence_beats_a_clflush_loop() {
    let lines: Vec<u64> = (0..8).map(|i| X + i * 64).collect();
    let dirty = |r: &mut Run| {
        for &pa in &lines {
            r.store(C0, pa, &[1]);
        }
    };
    let mut a = Run::new(small(false, false, 0));
    dirty(&mut a);
    let serial = elapsed_ns(&mut a, |r| lines.iter().for_each(|&pa| r.clflush(C0, pa)));
    let mut b = Run::new(small(false, false, 0));
    dirty(&mut b);
    let weak = elapsed_ns(&mut b, |r| {
        lines.iter().for_each(|&pa| r.clflushopt(C0, pa));
        r.sfence(C0);
    });
    // clflush: each waits for its own write-back (100 ns + 64 + 50 ns) = 8 × 214 ns.
    assert_eq!(serial, 8 * 214);
    // clflushopt: issued 5 ns apart; the sfence (at +40 ns) performs all eight; write-back
    // i is issued at its due tick (+5i + 100 ns) and they queue on the channel: the last
    // transfer ends at 100 + 8 × 64 ns, then 50 ns of latency.
    assert_eq!(weak, 100 + 8 * 64 + 50);
    assert_eq!(b.dram_bytes(X, 1), vec![1]);
    assert_eq!(b.h.stats().flushes.weak_performed_by_fence, 8);
    assert!(b.h.stats().stall > Span::ZERO);
}

#[test]
fn a_fence_waits_for_a_flush_already_performed_but_still_writing_back() {
    let mut r = Run::new(small(false, false, 0));
    r.store(C0, X, &[9]);
    r.clflushopt(C0, X);
    r.wait_ns(101); // performed at issue + 100 ns; its write-back takes 64 + 50 ns more
    assert_eq!(r.h.pending_flushes(C0), 0);
    let waited = elapsed_ns(&mut r, |r| r.sfence(C0));
    assert!(waited > 100, "waited {waited} ns");
}

/// Dirties `n` distinct lines through core 0 and times a wbinvd.
fn wbinvd_ns(config: HierarchyConfig, dram: Dram, n: u64) -> (u64, u64) {
    let mut h = Hierarchy::new(config, dram).unwrap();
    let mut now = Tick::ZERO;
    for i in 0..n {
        now = h
            .store(now, C0, PhysAddr(0x100_0000 + i * 64), &[1])
            .unwrap();
    }
    let done = h.wbinvd(now, C0).unwrap();
    let s = h.stats().flushes;
    assert_eq!(s.wbinvd_dirty_lines, n);
    (
        done.saturating_since(now).as_ps() / 1_000,
        s.wbinvd_lines_walked,
    )
}

#[test]
fn wbinvd_cost_grows_with_dirty_lines_and_with_cache_size() {
    let mut last = 0;
    for n in [0, 8, 64, 256] {
        let (ns, _) = wbinvd_ns(small(false, true, 0), dram(), n);
        assert!(ns > last || n == 0, "{n} dirty lines: {ns} ns");
        last = ns;
    }
    let mut bigger = small(false, true, 0);
    bigger.llc.level.size_kib = 64;
    let (small_ns, small_walk) = wbinvd_ns(small(false, true, 0), dram(), 0);
    let (big_ns, big_walk) = wbinvd_ns(bigger, dram(), 0);
    assert!(big_walk > small_walk && big_ns > small_ns);
}

/// The closing note's table: the Skylake-SP-like defaults, LLC size against dirty lines.
#[test]
fn wbinvd_cost_table_for_the_default_part() {
    println!("wbinvd stall (µs), default costs, 2 cores, 3 GHz, DDR4-3200 channel");
    println!(
        "{:>10} {:>12} {:>10} {:>10} {:>10}",
        "LLC KiB", "lines walked", "0 dirty", "1k dirty", "10k dirty"
    );
    let mut prev = 0;
    for sets in [2048u64, 4096, 16384] {
        let mut c = HierarchyConfig::default();
        c.llc.level = LevelConfig {
            size_kib: sets * 11 * 64 / 1024,
            ways: 11,
            replacement: Replacement::PseudoLru,
            hit_cycles: c.llc.level.hit_cycles,
        };
        let row: Vec<(u64, u64)> = [0, 1_000, 10_000]
            .iter()
            .map(|&n| wbinvd_ns(c, Dram::new(DramConfig::default()), n))
            .collect();
        assert!(row[0].0 < row[1].0 && row[1].0 < row[2].0);
        assert!(row[0].0 > prev);
        prev = row[0].0;
        let us = |ns: u64| ns as f64 / 1_000.0;
        println!(
            "{:>10} {:>12} {:>10.1} {:>10.1} {:>10.1}",
            c.llc.level.size_kib,
            row[0].1,
            us(row[0].0),
            us(row[1].0),
            us(row[2].0)
        );
    }
}

#[test]
fn effects_arrive_in_simulated_order_and_a_pending_flush_is_reported_when_performed() {
    let mut h =
        Hierarchy::with_observer(small(false, false, 0), dram(), EffectLog::default()).unwrap();
    let t = |ns: u64| Tick::from_ps(ns * 1_000);
    h.store(t(0), C0, PhysAddr(X), &[7; 64]).unwrap();
    h.clflushopt(t(10), C0, PhysAddr(X)).unwrap(); // due at 110 ns
    let mut buf = [0; 64];
    h.dma_read(t(20), PhysAddr(X), &mut buf, false).unwrap();
    assert_eq!(h.next_wakeup(), Some(t(110)));
    h.advance(t(500)).unwrap();
    let kinds: Vec<(u64, &str)> = h
        .observer()
        .records
        .iter()
        .map(|r| {
            let k = match r.kind {
                EffectKind::CpuStore { .. } => "store",
                EffectKind::DmaRead { .. } => "ns read",
                EffectKind::WriteBack { .. } => "write-back",
                EffectKind::FlushPerformed {
                    kind: FlushKind::Clflushopt,
                    ..
                } => "flushed",
                _ => "other",
            };
            (r.at.as_ps() / 1_000, k)
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            (0, "store"),
            (20, "ns read"),
            (110, "write-back"),
            (110, "flushed")
        ]
    );
}

#[test]
fn bad_calls_are_errors_that_name_what_was_wrong() {
    let mut h = Hierarchy::new(small(false, false, 0), dram()).unwrap();
    let mut buf = [0; 65];
    let e = h.load(Tick::ZERO, C0, PhysAddr(0), &mut buf).unwrap_err();
    assert_eq!(e, CacheError::BadLength { len: 65 });
    let e = h
        .load(Tick::ZERO, CoreId(7), PhysAddr(0), &mut buf[..1])
        .unwrap_err();
    assert!(e.to_string().contains("core 7 does not exist"), "{e}");
    let e = h
        .store(Tick::ZERO, C0, PhysAddr(u64::MAX), &[1, 2])
        .unwrap_err();
    assert!(matches!(e, CacheError::AddressOverflow { .. }));
    h.advance(Tick::from_ps(10)).unwrap();
    let e = h.sfence(Tick::from_ps(5), C0).unwrap_err();
    assert!(matches!(e, CacheError::TimeWentBackwards { .. }));
}
