//! Workload templates end to end: `buffer_exchange` shows which CPU flush fixes which
//! No-Snoop hazard, the CPU `wait` operation sleeps until a device's transfers complete (and
//! a wait that is never satisfied stalls the run), and `all` runs several workloads, those
//! sharing a device one after another.

use reports::{StopReason, VariantReport};
use snoopsim::run::{run_loaded, RunOptions};
use snoopsim::scenario::templates::{self, Plan, Segment};
use snoopsim::scenario::{self, DeviceOp, Scenario};
use snoopsim::workload::DeviceFeed;
use std::path::Path;

fn load(text: &str) -> Scenario {
    let loaded = scenario::parse(Path::new("<templates>"), text).unwrap_or_else(|e| panic!("{e}"));
    loaded.variants[0].scenario.clone()
}

fn run(text: &str) -> VariantReport {
    let loaded = scenario::parse(Path::new("<templates>"), text).unwrap_or_else(|e| panic!("{e}"));
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

/// One device, the given workload.
fn scenario_with(workload: &str) -> String {
    format!(
        r#"{{"name": "templates", "seed": 11,
  "devices": [{{"name": "nic", "bdf": "01:00.0"}}, {{"name": "nvme", "bdf": "02:00.0"}}],
  "workload": {workload}}}"#
    )
}

/// A buffer exchange of 16 iterations of 4 KiB.
fn exchange(direction: &str, no_snoop: &str, flush: &str) -> String {
    scenario_with(&format!(
        r#"{{"buffer_exchange": {{"device": "nic", "cpu": "cpu0", "iterations": 16,
            "direction": "{direction}", "no_snoop": {no_snoop}, "flush": "{flush}"}}}}"#
    ))
}

const FLUSHES: [&str; 5] = ["none", "clflush", "clflushopt_sfence", "clwb", "wbinvd"];

#[test]
fn device_to_cpu_no_snoop_unflushed_reads_stale_data() {
    let v = run(&exchange("device_to_cpu", r#""always""#, "none"));
    assert_eq!(v.sim.stop_reason, StopReason::Completed);
    assert_eq!(v.throughput.bytes, 16 * 4096);
    let (stale_cpu, stale_dev, lost) = classes(&v);
    // From the second iteration on, the touch and the consumer load each find all 64 lines
    // stale: 15 * 64 * 2 + 64 (the first iteration's consumer).
    assert_eq!(stale_cpu, 1984);
    assert_eq!((stale_dev, lost), (0, 0));
    // The CPU waited for the device: stall time is most of the run.
    assert!(v.cpu.stall_ns > 0.5 * v.sim.sim_time_ns, "{:?}", v.cpu);
}

#[test]
fn device_to_cpu_clflush_and_clflushopt_and_wbinvd_make_the_data_visible() {
    for flush in ["clflush", "clflushopt_sfence", "wbinvd"] {
        let v = run(&exchange("device_to_cpu", r#""always""#, flush));
        assert_eq!(v.sim.stop_reason, StopReason::Completed, "{flush}");
        assert_eq!(classes(&v), (0, 0, 0), "{flush}");
        assert_eq!(v.corruption.total_events, 0, "{flush}");
    }
}

#[test]
fn device_to_cpu_clwb_alone_leaves_the_stale_line() {
    let v = run(&exchange("device_to_cpu", r#""always""#, "clwb"));
    let (stale_cpu, _, _) = classes(&v);
    assert_eq!(stale_cpu, 1984, "CLWB keeps the clean, stale copy");
    assert_eq!(v.cpu.clwb, 16 * 64);
}

#[test]
fn cpu_to_device_no_snoop_unflushed_reads_stale_data_and_clwb_fixes_it() {
    let v = run(&exchange("cpu_to_device", r#""always""#, "none"));
    // 4 KiB read with MRRS 512: 8 requests per iteration, each finding dirty lines.
    assert_eq!(classes(&v), (0, 16 * 8, 0));
    for flush in ["clflush", "clflushopt_sfence", "clwb", "wbinvd"] {
        let v = run(&exchange("cpu_to_device", r#""always""#, flush));
        assert_eq!(v.sim.stop_reason, StopReason::Completed, "{flush}");
        assert_eq!(classes(&v), (0, 0, 0), "{flush}");
    }
}

#[test]
fn snooped_exchanges_never_corrupt_whatever_the_flush() {
    for direction in ["device_to_cpu", "cpu_to_device", "both"] {
        for flush in FLUSHES {
            let v = run(&exchange(direction, r#""never""#, flush));
            assert_eq!(
                v.sim.stop_reason,
                StopReason::Completed,
                "{direction} {flush}"
            );
            assert_eq!(v.corruption.total_events, 0, "{direction} {flush}");
            let per = if direction == "both" { 2 } else { 1 };
            assert_eq!(v.throughput.bytes, per * 16 * 4096, "{direction} {flush}");
        }
    }
}

/// The No Snoop bit of each DMA of `device` in a plan.
fn no_snoop_bits(plan: &Plan, device: &str) -> Vec<bool> {
    plan.devices[device]
        .iter()
        .flat_map(|s| match s {
            Segment::Program(ops) => ops.clone(),
            Segment::Stream(_) => Vec::new(),
        })
        .filter_map(|op| op.dma().map(|d| d.attrs.no_snoop))
        .collect()
}

#[test]
fn a_no_snoop_probability_gives_a_deterministic_mix() {
    let plan = |p: &str| templates::expand(&load(&exchange("both", p, "clwb")));
    let half = no_snoop_bits(&plan(r#"{"probability": 0.5}"#), "nic");
    assert_eq!(half.len(), 32);
    assert_eq!(half, no_snoop_bits(&plan(r#"{"probability": 0.5}"#), "nic"));
    let set = half.iter().filter(|b| **b).count();
    assert!((6..=26).contains(&set), "{set} of 32");
    assert_eq!(no_snoop_bits(&plan(r#""always""#), "nic"), vec![true; 32]);
    assert_eq!(no_snoop_bits(&plan(r#""never""#), "nic"), vec![false; 32]);
    assert_eq!(
        no_snoop_bits(&plan(r#"{"probability": 1}"#), "nic"),
        vec![true; 32]
    );
    // The run is the same twice.
    let text = exchange("both", r#"{"probability": 0.5}"#, "none");
    let (a, b) = (run(&text), run(&text));
    assert_eq!(a.corruption, b.corruption);
    assert!(a.corruption.total_events > 0);
}

#[test]
fn the_expansion_is_the_documented_program() {
    let plan = templates::expand(&load(&exchange("device_to_cpu", r#""always""#, "clwb")));
    let dev: Vec<String> = match &plan.devices["nic"][..] {
        [Segment::Program(ops)] => ops.iter().map(|op| op_name(&op_json(op))).collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(dev.len(), 32);
    assert_eq!(&dev[..2], ["wait_doorbell", "dma_write"]);
    let cpu: Vec<serde_json::Value> = plan.cpus["cpu0"].iter().map(op_json).collect();
    let names: Vec<String> = cpu.iter().map(op_name).collect();
    assert_eq!(
        &names[..6],
        ["load", "mmio_write", "wait", "clwb", "sfence", "load"]
    );
    // Transfer counts in waits are cumulative: the second iteration waits for 2.
    assert_eq!(cpu[8]["wait"]["transfers"], 2);
    assert_eq!(cpu[7]["mmio_write"]["value"], 1);
}

fn op_json<T: serde::Serialize>(op: &T) -> serde_json::Value {
    serde_json::to_value(op).unwrap()
}

fn op_name(v: &serde_json::Value) -> String {
    v.as_object().unwrap().keys().next().unwrap().clone()
}

/// A program: the device's steps, cpu0's operations.
fn program(device: &str, cpu: &str) -> String {
    scenario_with(&format!(
        r#"{{"program": {{"devices": {{"nic": {device}}}, "cpus": {{"cpu0": {cpu}}}}}}}"#
    ))
}

#[test]
fn a_wait_for_transfers_that_never_come_stalls_the_run() {
    // The device waits for a doorbell nobody rings, so its transfer never starts.
    let v = run(&program(
        r#"[{"wait_doorbell": {"offset": "0x10"}}, {"dma_write": {"address": "0x1000", "bytes": 64}}]"#,
        r#"[{"wait": {"device": "nic", "transfers": 1}}, {"load": {"address": "0x1000", "bytes": 64}}]"#,
    ));
    assert_eq!(v.sim.stop_reason, StopReason::Stalled);
    assert_eq!(v.cpu.loads, 0);
    // A device with fewer transfers than waited for stalls too.
    let v = run(&program(
        r#"[{"dma_write": {"address": "0x1000", "bytes": 64}}]"#,
        r#"[{"wait": {"device": "nic", "transfers": 2}}]"#,
    ));
    assert_eq!(v.sim.stop_reason, StopReason::Stalled);
}

#[test]
fn a_waiting_cpu_sleeps_until_the_transfer_completes_and_counts_it_as_stall() {
    let writes = r#"[{"dma_write": {"address": "0x1000", "bytes": 4096}},
                     {"dma_read": {"address": "0x8000", "bytes": 4096}},
                     {"dma_write": {"address": "0x2000", "bytes": 4096}}]"#;
    let idle = run(&program(writes, "[]"));
    let waiting = run(&program(
        writes,
        r#"[{"wait": {"device": "nic", "transfers": 3}}, {"load": {"address": "0x2000", "bytes": 64}}]"#,
    ));
    assert_eq!(waiting.sim.stop_reason, StopReason::Completed);
    assert_eq!(waiting.cpu.loads, 1);
    // Sleeping costs no events: two CPU steps (the wait, its wake-up), the load's, a few.
    assert!(
        waiting.sim.events <= idle.sim.events + 4,
        "{} vs {}",
        waiting.sim.events,
        idle.sim.events
    );
    // The CPU waited for the whole of the device's work.
    let end = idle.sim.sim_time_ns;
    assert!(
        waiting.cpu.stall_ns >= end - 1.0,
        "{} < {end}",
        waiting.cpu.stall_ns
    );
    // A count already reached costs no stall, and neither does the delay before it (a
    // delay is the program's own work).
    let v = run(&program(
        r#"[{"dma_write": {"address": "0x1000", "bytes": 64}}]"#,
        r#"[{"delay": {"ns": 50000}}, {"wait": {"device": "nic", "transfers": 1}}]"#,
    ));
    assert_eq!(v.sim.stop_reason, StopReason::Completed);
    assert_eq!(v.cpu.stall_ns, 0.0);
    assert!(v.sim.sim_time_ns >= 50_000.0);
}

/// Two streams on one device: `writes` writes of 256 B, then `reads` reads of 512 B.
fn two_streams(writes: u64, reads: u64) -> String {
    scenario_with(&format!(
        r#"{{"all": [
      {{"stream": {{"device": "nic", "direction": "write", "transfer_bytes": 256, "count": {writes}, "base": "0x1000_0000"}}}},
      {{"stream": {{"device": "nic", "direction": "read", "transfer_bytes": 512, "count": {reads}, "base": "0x2000_0000"}}}}
    ]}}"#
    ))
}

#[test]
fn all_runs_the_streams_of_one_device_one_after_the_other() {
    let s = load(&two_streams(40, 30));
    let mut feed = DeviceFeed::new(&s, "nic", 0);
    let mut seen = Vec::new();
    while let Some(d) = feed.next_descriptor() {
        seen.push((d.direction, d.len));
    }
    assert!(feed.is_exhausted());
    let mut expected = vec![(pcie::DmaDirection::Write, 256); 40];
    expected.extend(vec![(pcie::DmaDirection::Read, 512); 30]);
    assert_eq!(seen, expected);
    let v = run(&two_streams(40, 30));
    assert_eq!(v.sim.stop_reason, StopReason::Completed);
    assert_eq!(v.throughput.bytes, 40 * 256 + 30 * 512);
    assert_eq!(v.latency_ns["dma_write_transfer"].count, 40);
    assert_eq!(v.latency_ns["dma_read_transfer"].count, 30);
}

#[test]
fn a_million_writes_then_a_million_reads_stay_two_lazy_streams() {
    let s = load(&two_streams(1_000_000, 1_000_000));
    let plan = templates::expand(&s);
    match &plan.devices["nic"][..] {
        [Segment::Stream(w), Segment::Stream(r)] => {
            assert_eq!((w.count, w.transfer_bytes), (1_000_000, 256));
            assert_eq!((r.count, r.transfer_bytes), (1_000_000, 512));
        }
        other => panic!("{other:?}"),
    }
    let mut feed = DeviceFeed::new(&s, "nic", 0);
    let first = feed.next_descriptor().unwrap();
    assert_eq!(
        (first.direction, first.len),
        (pcie::DmaDirection::Write, 256)
    );
}

#[test]
fn all_runs_different_devices_concurrently_and_a_template_waits_after_earlier_entries() {
    // nic first streams 8 writes, then exchanges 4 buffers: the exchange's waits count
    // from 9. nvme streams meanwhile.
    let text = scenario_with(
        r#"{"all": [
      {"stream": {"device": "nic", "direction": "write", "transfer_bytes": 4096, "count": 8, "base": "0x1000_0000"}},
      {"stream": {"device": "nvme", "direction": "read", "transfer_bytes": 4096, "count": 8, "base": "0x3000_0000"}},
      {"buffer_exchange": {"device": "nic", "cpu": "cpu0", "iterations": 4, "flush": "clflush", "no_snoop": "always"}}
    ]}"#,
    );
    let plan = templates::expand(&load(&text));
    let waits: Vec<u64> = plan.cpus["cpu0"]
        .iter()
        .filter_map(|op| op_json(op)["wait"]["transfers"].as_u64())
        .collect();
    assert_eq!(waits, [9, 10, 11, 12]);
    assert!(matches!(
        &plan.devices["nic"][..],
        [Segment::Stream(_), Segment::Program(_)]
    ));
    let v = run(&text);
    assert_eq!(v.sim.stop_reason, StopReason::Completed);
    assert_eq!(v.throughput.bytes, (8 + 8 + 4) * 4096);
    assert_eq!(v.corruption.total_events, 0);
    assert_eq!(v.pcie.devices[0].mmio_writes, 4);
}

fn error(text: &str) -> scenario::ScenarioError {
    scenario::parse(Path::new("<templates>"), text).unwrap_err()
}

#[test]
fn bad_templates_are_errors_at_their_json_path() {
    let e = error(&scenario_with(
        r#"{"buffer_exchange": {"device": "gpu", "cpu": "cpu0"}}"#,
    ));
    assert_eq!(e.path.as_deref(), Some("workload.buffer_exchange.device"));
    assert!(e.message.contains("no device is named \"gpu\""), "{e}");
    assert!(e.position.is_some());

    let e = error(&scenario_with(
        r#"{"all": [{"stream": {"device": "nic", "direction": "write", "transfer_bytes": 64, "count": 1, "base": "0x0"}},
                    {"buffer_exchange": {"device": "gpu", "cpu": "cpu0"}}]}"#,
    ));
    assert_eq!(
        e.path.as_deref(),
        Some("workload.all[1].buffer_exchange.device")
    );

    let e = error(&scenario_with(
        r#"{"buffer_exchange": {"device": "nic", "cpu": "cpu0", "attrs": {"no_snoop": true}}}"#,
    ));
    assert_eq!(
        e.path.as_deref(),
        Some("workload.buffer_exchange.attrs.no_snoop")
    );
    assert!(e.message.contains("`no_snoop` field"), "{e}");

    let e = error(&scenario_with(
        r#"{"buffer_exchange": {"device": "nic", "cpu": "cpu0", "no_snoop": {"probability": 1.5}}}"#,
    ));
    assert_eq!(
        e.path.as_deref(),
        Some("workload.buffer_exchange.no_snoop.probability")
    );
    assert!(e.message.contains("expected 0 to 1"), "{e}");

    let e = error(&scenario_with(
        r#"{"buffer_exchange": {"device": "nic", "cpu": "cpu0", "iterations": 1000001}}"#,
    ));
    assert_eq!(
        e.path.as_deref(),
        Some("workload.buffer_exchange.iterations")
    );

    let e = error(&scenario_with(
        r#"{"buffer_exchange": {"device": "nic", "cpu": "cpu0", "flush": "clflushopt"}}"#,
    ));
    assert_eq!(e.path.as_deref(), Some("workload.buffer_exchange.flush"));

    let e = error(&scenario_with(
        r#"{"buffer_exchange": {"device": "nic", "cpu": "cpu0", "tx_buffer": "0x40_0000"}}"#,
    ));
    assert_eq!(
        e.path.as_deref(),
        Some("workload.buffer_exchange.tx_buffer")
    );

    let e = error(&scenario_with(r#"{"all": []}"#));
    assert_eq!(e.path.as_deref(), Some("workload.all"));

    // 3 CPUs on the default 2 cores.
    let e = error(&scenario_with(
        r#"{"all": [{"program": {"cpus": {"a": [], "b": []}}},
                    {"buffer_exchange": {"device": "nic", "cpu": "c"}}]}"#,
    ));
    assert_eq!(
        e.path.as_deref(),
        Some("workload.all[1].buffer_exchange.cpu")
    );
    assert!(e.message.contains("3 CPU programs"), "{e}");

    // 4 GiB over the whole workload.
    let big = r#"{"stream": {"device": "nic", "direction": "write", "transfer_bytes": 67108864, "count": 40, "base": "0x0"}}"#;
    let e = error(&scenario_with(&format!(r#"{{"all": [{big}, {big}]}}"#)));
    assert_eq!(e.path.as_deref(), Some("workload.all"));
    assert!(e.message.contains("4 GiB"), "{e}");
}

#[test]
fn a_wait_for_an_unknown_device_is_an_error_at_its_path() {
    let e = error(&program(
        "[]",
        r#"[{"wait": {"device": "gpu", "transfers": 1}}]"#,
    ));
    assert_eq!(
        e.path.as_deref(),
        Some("workload.program.cpus.cpu0[0].wait.device")
    );
    assert!(e.message.contains("no device is named \"gpu\""), "{e}");
    let e = error(&program(
        "[]",
        r#"[{"wait": {"device": "nic", "transfers": 0}}]"#,
    ));
    assert_eq!(
        e.path.as_deref(),
        Some("workload.program.cpus.cpu0[0].wait.transfers")
    );
}

#[test]
fn a_swept_flush_policy_changes_the_outcome() {
    let text = r#"{"name": "sweep", "seed": 3,
      "devices": [{"name": "nic", "bdf": "01:00.0"}],
      "workload": {"buffer_exchange": {"device": "nic", "cpu": "cpu0", "iterations": 2,
                   "no_snoop": "always"}},
      "sweep": {"workload.buffer_exchange.flush": ["none", "clflush"]}}"#;
    let loaded = scenario::parse(Path::new("<templates>"), text).unwrap_or_else(|e| panic!("{e}"));
    let r = run_loaded(&loaded, RunOptions::default()).unwrap();
    assert!(r.variants[0].corruption.stale_cpu_read.events > 0);
    assert_eq!(r.variants[1].corruption.total_events, 0);
}

#[test]
fn device_ops_of_a_template_are_ordinary_program_steps() {
    let plan = templates::expand(&load(&exchange("cpu_to_device", r#""always""#, "none")));
    let Segment::Program(ops) = &plan.devices["nic"][0] else {
        panic!("{:?}", plan.devices["nic"]);
    };
    assert!(matches!(ops[0], DeviceOp::WaitDoorbell(_)));
    assert!(matches!(&ops[1], DeviceOp::DmaRead(d) if d.attrs.no_snoop && d.bytes.0 == 4096));
}
