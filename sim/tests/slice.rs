//! The first vertical slice end to end: latency composition, limits, data integrity and
//! determinism.

use model_core::PhysAddr;
use snoopsim::engine::{self, EventQueue, Limits};
use snoopsim::run::{run_loaded, run_variant, RunOptions};
use snoopsim::scenario::{self, Loaded};
use snoopsim::system::{Event, System};
use std::path::Path;

fn load(text: &str) -> Loaded {
    scenario::parse(Path::new("<test>"), text).unwrap_or_else(|e| panic!("{e}"))
}

/// A platform with deliberately odd numbers, so that a term dropped or counted twice shows.
/// The request is No Snoop, so memory is DRAM alone (no cache lookup to add).
fn one_op(op: &str, address: &str, bytes: u64) -> String {
    format!(
        r#"{{
  "name": "isolated-{op}", "seed": 7,
  "platform": {{
    "pcie": {{"gen": 3, "lanes": 4, "mps_bytes": 256, "mrrs_bytes": 512, "port_delay_ns": 10}},
    "root_complex": {{"clock_mhz": 800, "request_latency_cycles": 40, "completion_latency_cycles": 30}},
    "iommu": {{"none": {{"latency_ns": 7}}}},
    "dram": {{"latency_ns": 80, "bandwidth_mbps": 25600}}
  }},
  "devices": [{{"name": "d", "bdf": "01:00.0"}}],
  "workload": {{"program": {{"devices": {{"d": [{{"{op}": {{"address": "{address}", "bytes": {bytes},
                                                 "attrs": {{"no_snoop": true}}}}}}]}}}}}}
}}"#
    )
}

/// Serialisation time in ps of `wire` bytes on the configured link, from the PCIe rules:
/// 128b/130b at 8 GT/s is 8 × 130/128 bits of 125 ps per byte and lane, and one SKP block
/// in every 372 leaves 371/372 of the blocks for data; rounded up.
fn serialise_ps(gen_mts: f64, lanes: f64, wire: f64) -> u64 {
    let ps_per_lane_byte = 8.0 * (130.0 / 128.0) * 1e6 / gen_mts * (372.0 / 371.0);
    (wire * ps_per_lane_byte / lanes - 1e-6).ceil() as u64
}

/// Header bytes of a memory request: 3 DW below 4 GiB, else 4 DW (PCIe Base 6.0 §2.2.4.1).
fn header(address: u64) -> u64 {
    if address > u64::from(u32::MAX) {
        16
    } else {
        12
    }
}
/// Per-TLP link overhead at Gen3: a 4-byte STP token carrying the sequence number, and the
/// 4-byte LCRC (PCIe Base 6.0 §4.2.2.3.1, §3.6.2).
const FRAMING: u64 = 8;

fn expected_ps(op: &str, address: u64, bytes: u64) -> u64 {
    let s = &load(&one_op(op, &format!("{address:#x}"), bytes)).scenario;
    let p = &s.platform;
    let mts = [0.0, 2500.0, 5000.0, 8000.0][p.pcie.gen.0 as usize];
    let lanes = f64::from(p.pcie.lanes.0);
    let port = p.pcie.port_delay_ns.span().as_ps();
    let cycle_ps = 1e6 / p.root_complex.clock_mhz.0 as f64;
    let rc_req = (p.root_complex.request_latency_cycles.0 as f64 * cycle_ps) as u64;
    let rc_cpl = (p.root_complex.completion_latency_cycles.0 as f64 * cycle_ps) as u64;
    let snoopsim::scenario::IommuSpec::None { latency_ns } = &p.iommu else {
        panic!("this slice is computed without an IOMMU");
    };
    let iommu = latency_ns.span().as_ps();
    let dram = p.dram.latency_ns.span().as_ps();
    let dram_xfer = (bytes as f64 * 1e6 / p.dram.bandwidth_mbps.0 as f64).ceil() as u64;
    let up_head = header(address);
    match op {
        "dma_write" => {
            serialise_ps(mts, lanes, (up_head + bytes + FRAMING) as f64)
                + port
                + rc_req
                + iommu
                + dram_xfer
                + dram
        }
        _ => {
            // Request up (no payload), completion down (3-DW header + data).
            serialise_ps(mts, lanes, (up_head + FRAMING) as f64)
                + port
                + rc_req
                + iommu
                + dram_xfer
                + dram
                + rc_cpl
                + serialise_ps(mts, lanes, (12 + bytes + FRAMING) as f64)
                + port
        }
    }
}

#[test]
fn an_isolated_tlp_costs_exactly_the_sum_of_its_component_latencies() {
    for (op, class, address) in [
        ("dma_write", "dma_write", 0x1000u64),
        ("dma_read", "dma_read", 0x1000),
        ("dma_write", "dma_write", 0x2_0000_1000), // 4-DW header
        ("dma_read", "dma_read", 0x2_0000_1000),
    ] {
        let want = expected_ps(op, address, 64);
        let loaded = load(&one_op(op, &format!("{address:#x}"), 64));
        let r = run_variant(&loaded.variants[0], RunOptions::default()).unwrap();
        let l = &r.latency_ns[class];
        assert_eq!(l.count, 1, "{op} at {address:#x}");
        let got_ps = (l.max * 1000.0).round() as u64;
        assert_eq!(
            got_ps, want,
            "{op} at {address:#x}: measured vs sum of components"
        );
        assert_eq!((l.mean * 1000.0).round() as u64, want);
        assert_eq!(r.sim.tlps, if op == "dma_read" { 2 } else { 1 });
    }
}

#[test]
fn byte_enables_confine_an_unaligned_write_and_the_read_back_matches() {
    let text = r#"{
  "name": "unaligned", "seed": 3,
  "devices": [{"name": "d", "bdf": "01:00.0"}],
  "workload": {"program": {"devices": {"d": [
    {"dma_write": {"address": "0x1003", "bytes": 300}},
    {"dma_read": {"address": "0x1003", "bytes": 300}}
  ]}}}
}"#;
    let loaded = load(text);
    let mut system = System::new(&loaded.variants[0].scenario).unwrap();
    let mut q = EventQueue::<Event>::new();
    system.start(&mut q).unwrap();
    let limits = Limits {
        max_time: model_core::Tick::MAX,
        max_events: 1_000_000,
    };
    let stop = engine::run(&mut q, &mut system, limits).unwrap();
    assert_eq!(stop, engine::StopReason::Completed);
    assert_eq!(system.in_flight(), 0);
    let mem = system.mem.observer().reference();
    // The bytes just outside the transfer were never written.
    assert_eq!(mem.read_vec(PhysAddr(0x1000), 3), vec![0, 0, 0]);
    assert_eq!(mem.read_vec(PhysAddr(0x1003 + 300), 5), vec![0; 5]);
    // The 300 bytes are the seeded pattern, not zeros.
    let written = mem.read_vec(PhysAddr(0x1003), 300);
    assert!(written.iter().filter(|b| **b != 0).count() > 250);
    // The read came back equal to the reference.
    assert_eq!(system.mem.observer().corruption().total_events, 0);
    let st = system.devices[0].endpoint.stats();
    assert_eq!((st.bytes_written, st.bytes_read), (300, 300));
}

fn stream_with_limits(limits: &str) -> String {
    format!(
        r#"{{"name": "limited", "seed": 1,
  "devices": [{{"name": "d", "bdf": "01:00.0"}}],
  "workload": {{"stream": {{"device": "d", "direction": "write", "transfer_bytes": 4096,
                          "count": 1000, "base": "0x0"}}}},
  "limits": {limits}}}"#
    )
}

#[test]
fn a_run_that_hits_a_limit_says_which_one() {
    let cases = [
        (r#"{"max_events": 100}"#, reports::StopReason::EventLimit),
        (r#"{"max_sim_time_us": 2}"#, reports::StopReason::TimeLimit),
        ("{}", reports::StopReason::Completed),
    ];
    for (limits, want) in cases {
        let r = run_loaded(&load(&stream_with_limits(limits)), RunOptions::default()).unwrap();
        let v = &r.variants[0];
        assert_eq!(v.sim.stop_reason, want, "{limits}");
        match want {
            reports::StopReason::EventLimit => assert_eq!(v.sim.events, 100),
            reports::StopReason::TimeLimit => assert!(v.sim.sim_time_ns <= 2_000.0 + 1_000.0),
            reports::StopReason::Completed => assert_eq!(v.throughput.bytes, 4096 * 1000),
            other => panic!("unexpected stop: {other}"),
        }
        let text = reports::render_text(&r);
        assert_eq!(
            text.contains("STOPPED EARLY"),
            want != reports::StopReason::Completed
        );
    }
}

#[test]
fn the_same_scenario_gives_byte_identical_reports_on_any_number_of_threads() {
    let demo = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/demo-mps-sweep.json"),
    )
    .unwrap();
    let loaded = load(&demo);
    assert!(loaded.variants.len() > 1, "needs a sweep to exercise rayon");
    let opts = RunOptions { reproducible: true };
    let render = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| reports::render_json(&run_loaded(&loaded, opts).unwrap()))
    };
    let one = render(1);
    assert_eq!(one, render(1), "two runs on one thread differ");
    assert_eq!(one, render(4), "one thread and four threads differ");
    assert!(one.contains("\"wall_ms\": 0.0"));
}

#[test]
fn mps_changes_tlp_count_as_the_splitting_rules_say() {
    let demo = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/demo-mps-sweep.json"),
    )
    .unwrap();
    let r = run_loaded(&load(&demo), RunOptions::default()).unwrap();
    // 2000 buffers of 4 KiB written in MPS-sized TLPs and read with MRRS 512 requests.
    for v in &r.variants {
        let mps = v.params["platform.pcie.mps_bytes"].as_u64().unwrap();
        assert_eq!(v.latency_ns["dma_write"].count, 2000 * 4096 / mps);
        assert_eq!(v.latency_ns["dma_read"].count, 2000 * 4096 / 512);
        assert_eq!(v.corruption.total_events, 0);
        assert!(v.throughput.gbps < v.throughput.link_limit_gbps);
    }
}
