//! `LatencyHistogram`: picoseconds in, nanoseconds out, never a panic.

use reports::{LatencyHistogram, LatencySummary};

fn close(actual: f64, expected: f64, rel: f64) -> bool {
    (actual - expected).abs() <= expected.abs() * rel
}

fn one_to_thousand_ns() -> LatencyHistogram {
    let mut h = LatencyHistogram::new();
    for ns in 1..=1000u64 {
        h.record_ps(ns * 1000);
    }
    h
}

#[test]
fn uniform_1_to_1000_ns_gives_expected_percentiles() {
    let s = one_to_thousand_ns().summary();
    assert_eq!(s.count, 1000);
    assert!(close(s.mean, 500.5, 0.001), "mean {}", s.mean);
    assert!(close(s.p50, 500.0, 0.001), "p50 {}", s.p50);
    assert!(close(s.p90, 900.0, 0.001), "p90 {}", s.p90);
    assert!(close(s.p99, 990.0, 0.001), "p99 {}", s.p99);
    assert!(close(s.p999, 999.0, 0.001), "p999 {}", s.p999);
    assert!(close(s.max, 1000.0, 0.001), "max {}", s.max);
}

#[test]
fn mean_and_max_are_exact() {
    let s = one_to_thousand_ns().summary();
    assert_eq!(s.mean, 500.5);
    assert_eq!(s.max, 1000.0);
    let mut h = LatencyHistogram::new();
    h.record_ps(123_457);
    let s = h.summary();
    assert_eq!((s.mean, s.max), (123.457, 123.457));
    assert!(s.p999 <= s.max && close(s.p999, 123.457, 0.001));
}

#[test]
fn empty_histogram_summarises_to_zeros() {
    let h = LatencyHistogram::default();
    assert!(h.is_empty());
    assert_eq!(h.len(), 0);
    assert_eq!(h.summary(), LatencySummary::default());
    assert_eq!(
        h.summary(),
        LatencySummary {
            count: 0,
            mean: 0.0,
            p50: 0.0,
            p90: 0.0,
            p99: 0.0,
            p999: 0.0,
            max: 0.0
        }
    );
}

#[test]
fn huge_values_do_not_panic_and_are_kept() {
    let mut h = LatencyHistogram::new();
    h.record_ps(1);
    h.record_ps(u64::MAX / 2);
    h.record_ps(u64::MAX);
    h.record_ps(0);
    assert_eq!(h.len(), 4);
    let s = h.summary();
    assert_eq!(s.max, u64::MAX as f64 / 1000.0);
    assert!(
        close(s.p999, u64::MAX as f64 / 1000.0, 0.001),
        "p999 {}",
        s.p999
    );
    assert!(s.mean.is_finite());
}

#[test]
fn values_beyond_the_initial_range_are_not_clamped() {
    // An auto-resizing hdrhistogram starts at 1..=2; a clamping record would report 0.002 ns.
    let mut h = LatencyHistogram::new();
    h.record_ps(5_000_000);
    assert!(close(h.summary().p50, 5000.0, 0.001), "{:?}", h.summary());
}

#[test]
fn merge_equals_recording_everything_in_one() {
    let mut low = LatencyHistogram::new();
    let mut high = LatencyHistogram::new();
    for ns in 1..=1000u64 {
        if ns <= 500 {
            low.record_ps(ns * 1000);
        } else {
            high.record_ps(ns * 1000);
        }
    }
    low.merge(&high);
    low.merge(&LatencyHistogram::new());
    assert_eq!(low.len(), 1000);
    assert_eq!(low.summary(), one_to_thousand_ns().summary());

    let mut empty = LatencyHistogram::new();
    empty.merge(&high);
    assert_eq!(empty.summary(), high.summary());
}
