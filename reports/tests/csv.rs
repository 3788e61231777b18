//! The sweep comparison as a reader sees it: the text tables and the CSV, side by side.

mod common;

use reports::{render_csv, render_text, Report, StopReason};

/// Two variants of a small sweep: snoop control off (stops at the time limit, corrupts,
/// faults) and on (clean, no DMA writes, flushes with CLWB); the flush value holds a comma
/// and quotes so the CSV must quote it.
fn two_variant_sweep() -> Report {
    let mut off = common::variant("snoop_off", StopReason::TimeLimit);
    off.params
        .insert("host.flush".to_owned(), serde_json::json!("none"));
    let mut on = common::variant("snoop_on", StopReason::Completed);
    on.corruption = Default::default();
    on.faults = Default::default();
    on.latency_ns.remove("dma_write");
    on.cpu.clflushopt = 0;
    on.cpu.clwb = 64;
    on.cpu.stall_ns = 98.5;
    on.params
        .insert("iommu.snoop_control".to_owned(), serde_json::json!(true));
    on.params.insert(
        "host.flush".to_owned(),
        serde_json::json!("clwb, then \"sfence\""),
    );
    common::report(vec![off, on])
}

#[test]
fn text_comparison_snapshot() {
    let text = render_text(&two_variant_sweep());
    let comparison = text
        .split_once("== comparison")
        .map(|(_, table)| format!("== comparison{table}"))
        .expect("a two-variant report has a comparison");
    insta::assert_snapshot!(comparison);
}

#[test]
fn csv_snapshot() {
    insta::assert_snapshot!(render_csv(&two_variant_sweep()));
}

#[test]
fn text_comparison_has_a_column_per_corruption_class_and_flush_kind() {
    let text = render_text(&two_variant_sweep());
    let (_, table) = text.split_once("== comparison").unwrap();
    for header in [
        "stale cpu",
        "stale dev",
        "lost wr",
        "misdir",
        "bytes",
        "faults",
        "dma_write p50",
        "dma_read p99",
        "GB/s",
        "stall ns",
        "clflush",
        "clflushopt",
        "clwb",
        "wbinvd",
    ] {
        assert!(table.contains(header), "no {header:?} in\n{table}");
    }
    // The variant that stopped early is marked in every table, and the note explains it.
    let marked = table
        .lines()
        .filter(|l| l.contains("ring_entries=256 *"))
        .count();
    assert_eq!(marked, 3, "{table}");
    assert!(table.contains("* stopped early: results cover only part of the workload"));
}

#[test]
fn csv_has_one_row_per_variant_even_without_a_sweep() {
    let one = render_csv(&common::report(vec![common::variant(
        "only",
        StopReason::Completed,
    )]));
    assert_eq!(one.lines().count(), 2, "{one}");
    let two = render_csv(&two_variant_sweep());
    assert_eq!(two.lines().count(), 3, "{two}");
    assert!(two.ends_with('\n') && !two.contains('\r'));
}

#[test]
fn csv_is_deterministic_and_ignores_wall_time() {
    let report = two_variant_sweep();
    let mut other = report.clone();
    for v in &mut other.variants {
        v.sim.wall_ms = 99_999.0;
    }
    assert_eq!(render_csv(&report), render_csv(&other));
}
