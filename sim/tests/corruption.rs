//! No-Snoop hazards end to end: the canonical scenarios show each corruption class, and
//! the fixes — snooping, flushing at the right place — make it disappear.

mod common;
use common::run_file;
use reports::VariantReport;
use snoopsim::run::{run_loaded, RunOptions};
use snoopsim::scenario;
use std::path::Path;

fn run_text(text: &str) -> VariantReport {
    let loaded = scenario::parse(Path::new("<test>"), text).unwrap_or_else(|e| panic!("{e}"));
    run_loaded(&loaded, RunOptions::default())
        .unwrap()
        .variants
        .remove(0)
}

/// (stale CPU reads, stale device reads, lost DMA writes) events.
fn classes(v: &VariantReport) -> (u64, u64, u64) {
    let c = &v.corruption;
    (
        c.stale_cpu_read.events,
        c.stale_device_read.events,
        c.lost_dma_write.events,
    )
}

#[test]
fn coherent_baseline_has_no_corruption() {
    let v = run_file("coherent-baseline.json");
    assert_eq!(classes(&v[0]), (0, 0, 0));
    assert_eq!(v[0].sim.stop_reason, reports::StopReason::Completed);
    assert_eq!(v[0].throughput.bytes, 8192);
}

#[test]
fn ns_write_over_a_cached_buffer_gives_stale_cpu_reads_unless_snooped() {
    let v = run_file("ns-write-stale-read.json");
    // 4 KiB = 64 lines, each loaded stale once.
    assert_eq!(classes(&v[0]), (64, 0, 0), "{}", v[0].name);
    assert!(v[0].corruption.stale_cpu_read.bytes > 4000);
    assert_eq!(classes(&v[1]), (0, 0, 0), "{}", v[1].name);
}

#[test]
fn ns_read_of_dirty_lines_gives_stale_device_reads_unless_snooped() {
    let v = run_file("ns-read-dirty-line.json");
    // 4 KiB read with MRRS 512: 8 requests, each finding stale bytes.
    assert_eq!(classes(&v[0]), (0, 8, 0), "{}", v[0].name);
    assert_eq!(classes(&v[1]), (0, 0, 0), "{}", v[1].name);
}

#[test]
fn a_dirty_line_evicted_after_an_ns_write_loses_the_devices_data() {
    let v = run_file("ns-lost-write.json");
    let (stale_cpu, stale_dev, lost) = classes(&v[0]);
    assert_eq!(lost, 32, "2 KiB = 32 lines written back over the DMA data");
    assert_eq!(stale_cpu, 32, "and the driver then reads the old bytes");
    assert_eq!(stale_dev, 0);
    let e = &v[0].corruption.lost_dma_write.first[0];
    assert!(e.chain[0].what.contains("no-snoop"), "{:?}", e.chain);
}

/// The ns-write-stale-read program with `fix` inserted where the driver waits.
fn write_program(before_load: &str) -> String {
    format!(
        r#"{{"name": "fix", "seed": 2,
  "devices": [{{"name": "nic", "bdf": "01:00.0"}}],
  "workload": {{"program": {{
    "cpus": {{"cpu0": [
      {{"load": {{"address": "0x20_0000", "bytes": 4096}}}},
      {{"mmio_write": {{"device": "nic", "offset": "0x0"}}}},
      {{"delay": {{"ns": 20000}}}},
      {before_load}
      {{"load": {{"address": "0x20_0000", "bytes": 4096}}}}
    ]}},
    "devices": {{"nic": [
      {{"wait_doorbell": {{"offset": "0x0"}}}},
      {{"dma_write": {{"address": "0x20_0000", "bytes": 4096, "attrs": {{"no_snoop": true}}}}}}
    ]}}
  }}}}
}}"#
    )
}

#[test]
fn device_to_cpu_fixes_invalidate_and_clwb_alone_does_not() {
    let cases = [
        (
            r#"{"clflush": {"address": "0x20_0000", "bytes": 4096}},"#,
            0,
        ),
        (
            r#"{"clflushopt": {"address": "0x20_0000", "bytes": 4096}}, {"sfence": {}},"#,
            0,
        ),
        (r#"{"wbinvd": {}},"#, 0),
        // CLWB writes back and keeps the (clean, stale) line: the hazard stays.
        (
            r#"{"clwb": {"address": "0x20_0000", "bytes": 4096}}, {"sfence": {}},"#,
            64,
        ),
        ("", 64),
    ];
    for (fix, stale) in cases {
        let v = run_text(&write_program(fix));
        assert_eq!(classes(&v), (stale, 0, 0), "fix {fix:?}");
    }
}

#[test]
fn cpu_to_device_fixes_write_back_before_the_doorbell() {
    let program = |flush: &str| {
        format!(
            r#"{{"name": "fix", "seed": 3,
  "devices": [{{"name": "nic", "bdf": "01:00.0"}}],
  "workload": {{"program": {{
    "cpus": {{"cpu0": [
      {{"store": {{"address": "0x10_0000", "bytes": 4096}}}},
      {flush}
      {{"mmio_write": {{"device": "nic", "offset": "0x0"}}}}
    ]}},
    "devices": {{"nic": [
      {{"wait_doorbell": {{"offset": "0x0"}}}},
      {{"dma_read": {{"address": "0x10_0000", "bytes": 4096, "attrs": {{"no_snoop": true}}}}}}
    ]}}
  }}}}
}}"#
        )
    };
    for (flush, stale) in [
        (
            r#"{"clflush": {"address": "0x10_0000", "bytes": 4096}},"#,
            0,
        ),
        (
            r#"{"clwb": {"address": "0x10_0000", "bytes": 4096}}, {"sfence": {}},"#,
            0,
        ),
        (r#"{"wbinvd": {}},"#, 0),
        ("", 8),
    ] {
        let v = run_text(&program(flush));
        assert_eq!(classes(&v), (0, stale, 0), "flush {flush:?}");
        assert!(v.cpu.stall_ns > 0.0);
    }
}

#[test]
fn the_number_of_explanations_kept_is_configurable_and_every_event_is_counted() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/ns-write-stale-read.json"),
    )
    .unwrap()
    .replacen(
        "\"seed\": 2,",
        "\"seed\": 2, \"report\": {\"explanations_per_class\": 2},",
        1,
    );
    let v = run_text(&text);
    assert_eq!(v.corruption.stale_cpu_read.events, 64);
    assert_eq!(v.corruption.stale_cpu_read.first.len(), 2);
}

#[test]
fn wbinvd_stalls_the_core_longer_with_more_dirty_lines_and_higher_per_line_costs() {
    let program = |dirty_kib: u64, per_dirty: u64| {
        format!(
            r#"{{"name": "wbinvd", "seed": 5,
  "platform": {{"cpu": {{"flush": {{"wbinvd_cycles_per_dirty_line": {per_dirty}}}}}}},
  "devices": [{{"name": "nic", "bdf": "01:00.0"}}],
  "workload": {{"program": {{"cpus": {{"cpu0": [
    {{"store": {{"address": "0x10_0000", "bytes": {}}}}},
    {{"delay": {{"ns": 1000}}}},
    {{"wbinvd": {{}}}}
  ]}}}}}}
}}"#,
            dirty_kib * 1024
        )
    };
    let stall = |dirty_kib, per| {
        let v = run_text(&program(dirty_kib, per));
        assert_eq!(v.cpu.wbinvd, 1);
        v.cpu.stall_ns
    };
    let (few, many) = (stall(4, 10), stall(64, 10));
    assert!(many > few, "more dirty lines: {many} vs {few}");
    assert!(stall(64, 100) > many, "costlier dirty lines");
}
