//! CPU doorbells: downstream MMIO writes gate device DMA, use the device's receive credits,
//! and a device waiting for a doorbell nobody rings stalls the run visibly.

use snoopsim::run::{run_loaded, RunOptions};
use snoopsim::scenario;
use std::path::Path;

fn run(text: &str) -> reports::Report {
    let loaded = scenario::parse(Path::new("<doorbell>"), text).unwrap_or_else(|e| panic!("{e}"));
    run_loaded(&loaded, RunOptions::default()).unwrap()
}

fn program(devices: &str, cpus: &str, rx: &str) -> String {
    format!(
        r#"{{"name": "doorbell", "seed": 1,
  "devices": [{{"name": "nic", "bdf": "01:00.0", "bar0": "0xf000_0000", "rx_credits": {rx}}}],
  "workload": {{"program": {{"devices": {{"nic": {devices}}}, "cpus": {{"cpu0": {cpus}}}}}}}
}}"#
    )
}

#[test]
fn a_device_waits_for_its_doorbell_before_it_starts_dma() {
    let text = program(
        r#"[{"wait_doorbell": {"offset": "0x10"}}, {"dma_read": {"address": "0x1000", "bytes": 4096}}]"#,
        r#"[{"delay": {"ns": 2000}}, {"mmio_write": {"device": "nic", "offset": "0x10", "value": 1}}]"#,
        "{}",
    );
    let r = run(&text);
    let v = &r.variants[0];
    assert_eq!(v.sim.stop_reason, reports::StopReason::Completed);
    assert_eq!(v.cpu.mmio_writes, 1);
    assert_eq!(v.pcie.devices[0].mmio_writes, 1);
    assert_eq!(v.throughput.bytes, 4096);
    // The read cannot have started before the CPU's 2 µs delay plus the 100 ns MMIO path.
    let read = &v.latency_ns["dma_read_transfer"];
    assert!(
        v.sim.sim_time_ns - read.max >= 2_100.0,
        "{} {}",
        v.sim.sim_time_ns,
        read.max
    );
}

#[test]
fn a_doorbell_nobody_rings_stalls_the_run_and_the_report_says_so() {
    let text = program(
        r#"[{"wait_doorbell": {"offset": "0x10"}}, {"dma_read": {"address": "0x1000", "bytes": 64}}]"#,
        r#"[{"mmio_write": {"device": "nic", "offset": "0x20"}}]"#,
        "{}",
    );
    let r = run(&text);
    assert_eq!(r.variants[0].sim.stop_reason, reports::StopReason::Stalled);
    assert_eq!(r.variants[0].throughput.bytes, 0);
    assert!(reports::render_text(&r).contains("STOPPED EARLY: stalled"));
}

#[test]
fn back_to_back_doorbells_wait_for_the_devices_receive_credits() {
    // 20 doorbells, each enabling one 64-byte write; the device buffers one MMIO write.
    let waits: Vec<String> = (0..20)
        .map(|_| r#"{"wait_doorbell": {"offset": "0x0"}}, {"dma_write": {"address": "0x2000", "bytes": 64}}"#.to_owned())
        .collect();
    let rings: Vec<&str> = (0..20)
        .map(|_| r#"{"mmio_write": {"device": "nic", "offset": "0x0", "bytes": 8}}"#)
        .collect();
    let text = program(
        &format!("[{}]", waits.join(", ")),
        &format!("[{}]", rings.join(", ")),
        r#"{"posted_header": 1, "posted_data": 1}"#,
    );
    let r = run(&text);
    let v = &r.variants[0];
    assert_eq!(v.sim.stop_reason, reports::StopReason::Completed);
    assert_eq!(v.pcie.devices[0].mmio_writes, 20);
    assert_eq!(v.throughput.bytes, 20 * 64);
    // One credit: every doorbell after the first waited for an UpdateFC from the device.
    assert!(
        v.pcie.devices[0].up.dllps >= 19,
        "{:?}",
        v.pcie.devices[0].up
    );
    assert_eq!(v.pcie.devices[0].down.tlps, 20);
}

#[test]
fn a_cpu_ringing_an_unknown_device_is_a_scenario_error() {
    let text = program(
        "[]",
        r#"[{"mmio_write": {"device": "gpu", "offset": "0x0"}}]"#,
        "{}",
    );
    let e = scenario::parse(Path::new("<doorbell>"), &text).unwrap_err();
    assert_eq!(
        e.path.as_deref(),
        Some("workload.program.cpus.cpu0[0].mmio_write.device")
    );
    assert!(e.message.contains("no device is named \"gpu\""), "{e}");
}
