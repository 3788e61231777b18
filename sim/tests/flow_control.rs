//! A slow root complex back-pressures its device through flow-control credits (issue 3:
//! "credit starvation stalls the sender and resumes on UpdateFC").

use snoopsim::run::{run_loaded, RunOptions};
use snoopsim::scenario;
use std::path::Path;

/// A Gen3 x8 write stream (about 7.3 GB/s of link) into a root complex whose ingress takes
/// one TLP per 100 ns: 256 bytes / 100 ns = 2.56 GB/s.
fn scenario(credits: &str) -> String {
    format!(
        r#"{{"name": "slow-rc", "seed": 1,
  "platform": {{
    "pcie": {{"gen": 3, "lanes": 8, "mps_bytes": 256}},
    "root_complex": {{"clock_mhz": 1000, "accept_interval_cycles": 100, "credits": {credits}}}
  }},
  "devices": [{{"name": "d", "bdf": "01:00.0"}}],
  "workload": {{"stream": {{"device": "d", "direction": "write", "transfer_bytes": 65536,
                          "count": 16, "base": "0x0"}}}}
}}"#
    )
}

fn run(credits: &str) -> reports::VariantReport {
    let loaded = scenario::parse(Path::new("<fc>"), &scenario(credits)).unwrap();
    let mut r = run_loaded(&loaded, RunOptions::default()).unwrap();
    r.variants.remove(0)
}

#[test]
fn finite_credits_stall_the_device_at_the_root_complex_rate_and_updatefc_resumes_it() {
    // Four 256-byte writes' worth of posted credits.
    let v = run(r#"{"posted_header": 4, "posted_data": 64}"#);
    assert_eq!(v.sim.stop_reason, reports::StopReason::Completed);
    assert_eq!(v.throughput.bytes, 16 * 65536, "every byte arrived");
    let dev = &v.pcie.devices[0];
    assert!(
        dev.credit_stalls > 100,
        "stalled {} times",
        dev.credit_stalls
    );
    assert!(dev.down.dllps > 0, "UpdateFC DLLPs went back down");
    // The device runs at the root complex's pace, not the link's.
    let rc_rate = 256.0 / 100.0;
    let err = (v.throughput.gbps - rc_rate).abs() / rc_rate;
    assert!(err < 0.02, "{} GB/s vs {rc_rate} GB/s", v.throughput.gbps);
    // With at most four writes queued, none waits long at the root complex.
    assert!(v.latency_ns["dma_write"].max < 1_000.0);
}

#[test]
fn infinite_credits_never_stall_and_the_queue_grows_at_the_root_complex_instead() {
    let v = run(r#"{"posted_header": 0, "posted_data": 0}"#);
    let dev = &v.pcie.devices[0];
    assert_eq!(dev.credit_stalls, 0);
    // Same end-to-end rate (the root complex is still the bottleneck)...
    assert!((v.throughput.gbps - 2.56).abs() / 2.56 < 0.02);
    // ...but writes queue up in front of it: the last waits for most of the run.
    assert!(v.latency_ns["dma_write"].max > 100_000.0);
}

#[test]
fn reads_slower_than_the_completion_timeout_fail_and_their_late_data_is_unexpected() {
    // DRAM answers after 3 µs; the device gives up on a read after 1 µs.
    let text = r#"{"name": "timeouts", "seed": 1,
  "platform": {"dram": {"latency_ns": 3000}},
  "devices": [{"name": "d", "bdf": "01:00.0", "read_tags": 8, "completion_timeout_us": 1}],
  "workload": {"stream": {"device": "d", "direction": "read", "transfer_bytes": 1024,
                          "count": 4, "base": "0x0"}}
}"#;
    let loaded = scenario::parse(Path::new("<timeouts>"), text).unwrap();
    let r = run_loaded(&loaded, RunOptions::default()).unwrap();
    let v = &r.variants[0];
    assert_eq!(v.sim.stop_reason, reports::StopReason::Completed);
    let d = &v.pcie.devices[0];
    // 4 transfers × 2 requests of MRRS 512: every one times out, every completion is late.
    assert_eq!(d.completion_timeouts, 8);
    assert_eq!(d.failed_transfers, 4);
    assert_eq!(
        d.unexpected_completions,
        8 * 2,
        "two 256-byte completions per request"
    );
    assert_eq!(v.latency_ns["dma_read"].count, 0, "no read succeeded");
    assert!(reports::render_text(&r).contains("READ ERRORS: 8 completion timeouts"));
}

#[test]
fn a3_writes_pass_reads_waiting_for_a_root_port_read_tracker() {
    // One read tracker and 2 µs DRAM: eight reads go to memory one after another (~2 µs
    // each). The eight writes behind them on the link must pass them at the root port.
    let reads: Vec<String> = (0..8)
        .map(|i| {
            format!(
                r#"{{"dma_read": {{"address": "{:#x}", "bytes": 64}}}}"#,
                0x1000 + i * 64
            )
        })
        .collect();
    let writes: Vec<String> = (0..8)
        .map(|i| {
            format!(
                r#"{{"dma_write": {{"address": "{:#x}", "bytes": 64}}}}"#,
                0x8000 + i * 64
            )
        })
        .collect();
    let text = format!(
        r#"{{"name": "a3", "seed": 1,
  "platform": {{"root_complex": {{"max_outstanding_reads": 1}}, "dram": {{"latency_ns": 2000}}}},
  "devices": [{{"name": "d", "bdf": "01:00.0"}}],
  "workload": {{"program": {{"devices": {{"d": [{}, {}]}}}}}}
}}"#,
        reads.join(", "),
        writes.join(", ")
    );
    let loaded = scenario::parse(Path::new("<a3>"), &text).unwrap();
    let r = run_loaded(&loaded, RunOptions::default()).unwrap();
    let v = &r.variants[0];
    assert_eq!(v.sim.stop_reason, reports::StopReason::Completed);
    let reads = &v.latency_ns["dma_read"];
    let writes = &v.latency_ns["dma_write"];
    assert_eq!((reads.count, writes.count), (8, 8));
    assert!(
        reads.max > 14_000.0,
        "reads waited for the tracker: {}",
        reads.max
    );
    assert!(
        writes.max < 3_000.0,
        "writes did not wait behind the reads: {}",
        writes.max
    );
}
