//! Each no-snoop hazard from a minimal operation sequence, and each fix making it disappear,
//! judged by a coherent reference memory fed by the hierarchy's effects.
//!
//! Sequences (X = 0x1000, one 64-byte line; `old` = what the CPU put there, `new` = the
//! device's bytes):
//! (a) load X; NS write X; load X            → stale CPU read
//! (b) store X; NS read X                    → stale device read
//! (c) store X; NS write X; evict X          → lost DMA write
//! (d) store X; clflushopt X; NS read X      → stale device read (no sfence)
//! (e) load X; clwb X; sfence; NS write X; load X → stale CPU read (clwb keeps the line)

mod common;

use common::{small, Run, C0, C1};

const X: u64 = 0x1000;
const OLD: [u8; 64] = [0xaa; 64];
const NEW: [u8; 64] = [0x55; 64];

fn configs() -> Vec<(&'static str, cache::HierarchyConfig)> {
    vec![
        ("non-inclusive L1+LLC", small(false, false, 0)),
        ("inclusive L1+L2+LLC", small(true, true, 0)),
        ("non-inclusive L1+L2+LLC, DDIO", small(false, true, 2)),
    ]
}

/// A run where DRAM already holds OLD at X (written by a snooped device, then settled).
fn with_old_in_memory(config: cache::HierarchyConfig) -> Run {
    let mut r = Run::new(config);
    r.dma_write(X, &OLD, true);
    r.wbinvd(C0); // with DDIO the line sits dirty in the LLC; push it to DRAM
    r
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum FixA {
    None,
    ClflushBefore,
    ClflushAfter,
    WbinvdBefore,
    Snooped,
}

fn hazard_a(config: cache::HierarchyConfig, fix: FixA) -> (Vec<u8>, u64) {
    let mut r = with_old_in_memory(config);
    assert_eq!(r.load(C0, X, 64), OLD); // the core caches X clean
    match fix {
        FixA::ClflushBefore => r.clflush(C0, X),
        FixA::WbinvdBefore => r.wbinvd(C0),
        _ => {}
    }
    r.dma_write(X, &NEW, fix == FixA::Snooped);
    if fix == FixA::ClflushAfter {
        r.clflush(C0, X);
    }
    let got = r.load(C0, X, 64);
    (got, r.shadow().stale_cpu_read_bytes)
}

#[test]
fn a_ns_write_under_a_cached_line_gives_a_stale_cpu_read() {
    for (name, config) in configs() {
        let (got, stale) = hazard_a(config, FixA::None);
        assert_eq!(got, OLD, "{name}: the core still reads its cached copy");
        assert_eq!(stale, 64, "{name}");
    }
}

#[test]
fn a_is_fixed_by_clflush_before_or_after_by_wbinvd_or_by_snooping() {
    for (name, config) in configs() {
        for fix in [
            FixA::ClflushBefore,
            FixA::ClflushAfter,
            FixA::WbinvdBefore,
            FixA::Snooped,
        ] {
            let (got, stale) = hazard_a(config, fix);
            assert_eq!(got, NEW, "{name}, {fix:?}");
            assert_eq!(stale, 0, "{name}, {fix:?}");
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum FixB {
    None,
    Clflush,
    ClwbSfence,
    Wbinvd,
    Snooped,
}

fn hazard_b(config: cache::HierarchyConfig, fix: FixB) -> (Vec<u8>, u64) {
    let mut r = Run::new(config);
    r.store(C0, X, &NEW); // dirty in core 0; DRAM still holds zeros
    match fix {
        FixB::Clflush => r.clflush(C0, X),
        FixB::ClwbSfence => {
            r.clwb(C0, X);
            r.sfence(C0);
        }
        FixB::Wbinvd => r.wbinvd(C0),
        _ => {}
    }
    let got = r.dma_read(X, 64, fix == FixB::Snooped);
    (got, r.shadow().stale_device_read_bytes)
}

#[test]
fn b_a_dirty_line_and_an_ns_read_give_a_stale_device_read() {
    for (name, config) in configs() {
        let (got, stale) = hazard_b(config, FixB::None);
        assert_eq!(got, vec![0; 64], "{name}: the device gets DRAM's old bytes");
        assert_eq!(stale, 64, "{name}");
    }
}

#[test]
fn b_is_fixed_by_clflush_by_clwb_and_sfence_by_wbinvd_or_by_snooping() {
    for (name, config) in configs() {
        for fix in [FixB::Clflush, FixB::ClwbSfence, FixB::Wbinvd, FixB::Snooped] {
            let (got, stale) = hazard_b(config, fix);
            assert_eq!(got, NEW, "{name}, {fix:?}");
            assert_eq!(stale, 0, "{name}, {fix:?}");
        }
    }
}

fn hazard_c(config: cache::HierarchyConfig, flush_first: bool) -> Run {
    let mut r = Run::new(config);
    r.store(C0, X, &OLD[..8]); // a partial store: the whole line becomes dirty in core 0
    if flush_first {
        r.clflush(C0, X);
    }
    r.dma_write(X, &NEW, false);
    r.evict_by_conflicts(C0, X, 8);
    r
}

#[test]
fn c_an_ns_write_then_a_dirty_eviction_loses_the_dma_write() {
    for (name, config) in configs() {
        let r = hazard_c(config, false);
        assert_eq!(r.shadow().lost_dma_write_bytes, 64, "{name}");
        let mut want = vec![0; 64];
        want[..8].copy_from_slice(&OLD[..8]);
        assert_eq!(
            r.dram_bytes(X, 64),
            want,
            "{name}: the stale line overwrote NEW"
        );
    }
}

#[test]
fn c_is_fixed_by_flushing_before_the_dma() {
    for (name, config) in configs() {
        let r = hazard_c(config, true);
        assert_eq!(r.shadow().corrupted(), 0, "{name}");
        assert_eq!(r.dram_bytes(X, 64), NEW, "{name}");
    }
}

#[test]
fn c_flushing_after_the_ns_write_is_too_late_for_a_dirty_line() {
    // The flush itself writes the stale dirty line over the device's data.
    for (name, config) in configs() {
        let mut r = Run::new(config);
        r.store(C0, X, &OLD);
        r.dma_write(X, &NEW, false);
        r.clflush(C0, X);
        assert_eq!(r.shadow().lost_dma_write_bytes, 64, "{name}");
        assert_eq!(r.dram_bytes(X, 64), OLD, "{name}");
    }
}

fn hazard_d(config: cache::HierarchyConfig, fence: bool) -> (Vec<u8>, u64, usize) {
    let mut r = Run::new(config);
    r.store(C0, X, &NEW);
    r.clflushopt(C0, X); // returns after the issue cost; the flush is still pending
    if fence {
        r.sfence(C0);
    }
    let pending = r.h.pending_flushes(C0);
    let got = r.dma_read(X, 64, false); // the doorbell went out right away
    (got, r.shadow().stale_device_read_bytes, pending)
}

#[test]
fn d_clflushopt_without_sfence_still_lets_the_device_read_stale_data() {
    for (name, config) in configs() {
        let (got, stale, pending) = hazard_d(config, false);
        assert_eq!(pending, 1, "{name}");
        assert_eq!(got, vec![0; 64], "{name}");
        assert_eq!(stale, 64, "{name}");
    }
}

#[test]
fn d_clflushopt_with_sfence_does_not() {
    for (name, config) in configs() {
        let (got, stale, pending) = hazard_d(config, true);
        assert_eq!(pending, 0, "{name}");
        assert_eq!(got, NEW, "{name}");
        assert_eq!(stale, 0, "{name}");
    }
}

#[test]
fn d_a_pending_clflushopt_is_performed_at_its_own_completion_time() {
    let mut r = Run::new(small(false, false, 0));
    r.store(C0, X, &NEW);
    r.clflushopt(C0, X);
    let due = r.h.next_wakeup().expect("a flush is pending");
    assert!(due > r.now);
    assert_eq!(
        r.h.line_state(C0, model_core::PhysAddr(X)).unwrap(),
        cache::LineState::M
    );
    r.wait_ns(200); // past the due tick: performed without any fence
    assert_eq!(r.h.next_wakeup(), None);
    assert_eq!(
        r.h.line_state(C0, model_core::PhysAddr(X)).unwrap(),
        cache::LineState::I
    );
    assert_eq!(r.dma_read(X, 64, false), NEW);
    assert_eq!(r.h.stats().flushes.weak_performed_on_time, 1);
}

fn hazard_e(config: cache::HierarchyConfig, clflushopt: bool) -> (Vec<u8>, u64) {
    let mut r = with_old_in_memory(config);
    r.load(C0, X, 64);
    if clflushopt {
        r.clflushopt(C0, X);
    } else {
        r.clwb(C0, X);
    }
    r.sfence(C0);
    r.dma_write(X, &NEW, false);
    let got = r.load(C0, X, 64);
    (got, r.shadow().stale_cpu_read_bytes)
}

#[test]
fn e_clwb_before_an_ns_write_does_not_prevent_a_stale_cpu_read() {
    for (name, config) in configs() {
        let (got, stale) = hazard_e(config, false);
        assert_eq!(got, OLD, "{name}: clwb kept the line");
        assert_eq!(stale, 64, "{name}");
        let (got, stale) = hazard_e(config, true);
        assert_eq!(got, NEW, "{name}: clflushopt + sfence dropped it");
        assert_eq!(stale, 0, "{name}");
    }
}

#[test]
fn snooped_dma_reads_a_dirty_line_from_another_cores_cache() {
    let mut r = Run::new(small(true, true, 0));
    r.store(C1, X + 8, &NEW[..8]);
    let got = r.dma_read(X, 16, true);
    assert_eq!(&got[8..], &NEW[..8]);
    assert_eq!(
        r.h.line_state(C1, model_core::PhysAddr(X)).unwrap(),
        cache::LineState::M
    );
    assert_eq!(r.shadow().corrupted(), 0);
}

#[test]
fn a_snooped_partial_dma_write_merges_with_the_dirty_owner() {
    for (name, config) in configs() {
        let mut r = Run::new(config);
        r.store(C1, X, &OLD);
        r.dma_write(X + 4, &NEW[..4], true);
        assert_eq!(
            r.h.line_state(C1, model_core::PhysAddr(X)).unwrap(),
            cache::LineState::I
        );
        let got = r.load(C0, X, 12);
        assert_eq!(got, [&OLD[..4], &NEW[..4], &OLD[..4]].concat(), "{name}");
        r.wbinvd(C0);
        assert_eq!(r.shadow().corrupted(), 0, "{name}");
        assert_eq!(
            r.dram_bytes(X, 64),
            r.shadow().reference.read_vec(model_core::PhysAddr(X), 64)
        );
    }
}
