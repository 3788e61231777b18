//! Text rendering: what a kernel developer sees in the terminal.

mod common;

use reports::{render_text, StopReason};

#[test]
fn time_limit_stop_is_announced_clearly() {
    let text = render_text(&common::report(vec![common::variant(
        "v",
        StopReason::TimeLimit,
    )]));
    assert!(text
        .contains("STOPPED EARLY: time limit reached — results cover only part of the workload"));
}

#[test]
fn event_limit_stop_is_announced_and_completed_is_not() {
    let early = render_text(&common::report(vec![common::variant(
        "v",
        StopReason::EventLimit,
    )]));
    assert!(early.contains("STOPPED EARLY: event limit reached"));
    let done = render_text(&common::report(vec![common::variant(
        "v",
        StopReason::Completed,
    )]));
    assert!(!done.contains("STOPPED EARLY"));
    assert!(done.contains("stop: completed"));
}

#[test]
fn comparison_table_only_with_two_or_more_variants() {
    let one = render_text(&common::report(vec![common::variant(
        "only",
        StopReason::Completed,
    )]));
    assert!(!one.contains("== comparison"));
    let mut on = common::variant("snoop_on", StopReason::Completed);
    on.params
        .insert("iommu.snoop_control".to_owned(), serde_json::json!(true));
    let two = render_text(&common::report(vec![
        common::variant("snoop_off", StopReason::Completed),
        on,
    ]));
    assert!(two.contains("== comparison"));
    let table = two.split("== comparison").nth(1).unwrap();
    assert!(table.contains("dma_write p50") && table.contains("dma_read p99"));
    // Rows are labelled by their parameters, each key cut to its last dotted segment
    // (the fixture sweeps `iommu.snoop_control`; the full names head each variant).
    let rows: Vec<&str> = table.lines().map(str::trim_start).collect();
    assert!(rows.iter().any(|l| l.contains("snoop_control=false")));
    assert!(rows.iter().any(|l| l.contains("snoop_control=true")));
    assert!(!table.contains("iommu.snoop_control"));
    assert!(two.contains("== variant \"snoop_off\""));
}

#[test]
fn ticks_are_nanoseconds_with_three_decimals() {
    let text = render_text(&common::report(vec![common::variant(
        "v",
        StopReason::Completed,
    )]));
    // 123_456 ps and 250_001 ps from the fixture's explanation chain.
    assert!(text.contains("123.456"), "{text}");
    assert!(text.contains("250.001"), "{text}");
}

#[test]
fn faults_show_the_first_few_and_count_the_rest() {
    let text = render_text(&common::report(vec![common::variant(
        "v",
        StopReason::Completed,
    )]));
    assert!(text.contains("faults: 7"));
    assert!(text.contains("0xdead4000") && !text.contains("0xdead5000"));
    assert!(text.contains("... and 2 more"));
}

#[test]
fn rendering_is_deterministic() {
    let report = common::report(vec![
        common::variant("a", StopReason::Completed),
        common::variant("b", StopReason::TimeLimit),
    ]);
    assert_eq!(render_text(&report), render_text(&report.clone()));
}

#[test]
fn two_variant_report_snapshot() {
    let mut on = common::variant("snoop_on", StopReason::Completed);
    on.corruption = Default::default();
    on.faults = Default::default();
    on.params
        .insert("iommu.snoop_control".to_owned(), serde_json::json!(true));
    let report = common::report(vec![
        common::variant("snoop_off", StopReason::TimeLimit),
        on,
    ]);
    insta::assert_snapshot!(render_text(&report));
}

#[test]
fn a_swept_object_is_labelled_by_its_single_key() {
    let with_iommu = |name: &str, iommu: serde_json::Value| {
        let mut v = common::variant(name, StopReason::Completed);
        v.params.clear();
        v.params.insert("platform.iommu".to_owned(), iommu);
        v
    };
    let text = render_text(&common::report(vec![
        with_iommu("a", serde_json::json!({"vtd": {"domains": []}})),
        with_iommu("b", serde_json::json!({"amdvi": {"domains": []}})),
    ]));
    let table = text.split("== comparison").nth(1).unwrap();
    assert!(table.contains("iommu=vtd{…}"), "{table}");
    assert!(table.contains("iommu=amdvi{…}"), "{table}");
}
