//! The event simulation of a streaming workload agrees with the analytic link model within
//! 2% when nothing but the link limits it (issue 3: link timing).

use pcie::bandwidth::Params;
use pcie::{DllpPolicy, LinkConfig, LinkGen};
use snoopsim::run::{run_loaded, RunOptions};
use snoopsim::scenario;
use std::path::Path;

/// A stream whose only bottleneck is the link: DRAM at 10 TB/s, no root-complex rate limit,
/// ample tags and credits, every transfer starting on a 4 KiB boundary. It runs for about
/// 80 µs of simulated time, so the few hundred ns before the pipeline fills weigh < 0.5%.
fn stream(gen: u32, lanes: u32, mps: u32, mrrs: u32, dir: &str, size: u64, gbps: f64) -> String {
    let total = (gbps * 80_000.0) as u64;
    let count = (total / size).max(64);
    let stride = size.div_ceil(4096) * 4096;
    format!(
        r#"{{"name": "agree", "seed": 1,
  "platform": {{
    "pcie": {{"gen": {gen}, "lanes": {lanes}, "mps_bytes": {mps}, "mrrs_bytes": {mrrs}}},
    "root_complex": {{"accept_interval_cycles": 0,
                      "credits": {{"posted_header": 127, "posted_data": 2047,
                                   "non_posted_header": 127, "non_posted_data": 0}}}},
    "dram": {{"latency_ns": 50, "bandwidth_mbps": 10000000}}
  }},
  "devices": [{{"name": "d", "bdf": "01:00.0", "read_tags": 768}}],
  "workload": {{"stream": {{"device": "d", "direction": "{dir}", "transfer_bytes": {size},
                          "count": {count}, "stride_bytes": {stride}, "base": "0x1000_0000"}}}}
}}"#
    )
}

#[test]
fn simulated_streaming_throughput_matches_the_analytic_model_within_2_percent() {
    let configs = [
        (3, 8, 256, 512),
        (5, 16, 512, 4096),
        (1, 1, 128, 128),
        (6, 16, 256, 512),
    ];
    let sizes = [64, 256, 1500, 4096];
    let mut worst: f64 = 0.0;
    for (gen, lanes, mps, mrrs) in configs {
        let params = Params {
            link: LinkConfig::new(
                LinkGen::from_number(gen).unwrap(),
                lanes,
                model_core::Span::ZERO,
                DllpPolicy::default(),
            )
            .unwrap(),
            mps,
            mrrs,
            addr64: false,
        };
        for size in sizes {
            let row = params.row(size);
            for (dir, want) in [
                ("write", row.write_gbps),
                ("read", row.read_gbps),
                ("mixed", row.mixed_gbps),
            ] {
                let text = stream(gen, lanes, mps, mrrs, dir, size, want);
                let loaded = scenario::parse(Path::new("<agree>"), &text).unwrap();
                let r = run_loaded(&loaded, RunOptions::default()).unwrap();
                let got = r.variants[0].throughput.gbps;
                let err = (got - want).abs() / want;
                worst = worst.max(err);
                eprintln!(
                    "Gen{gen} x{lanes:<2} MPS {mps:<4} MRRS {mrrs:<4} {dir:<5} {size:>5} B: \
                     simulated {got:8.3} GB/s, analytic {want:8.3} GB/s, {:+.2}%",
                    (got - want) / want * 100.0
                );
                assert!(
                    err < 0.02,
                    "Gen{gen} x{lanes} MPS {mps} MRRS {mrrs} {dir} {size} B: simulated \
                     {got:.4} GB/s, analytic {want:.4} GB/s ({:.2}% off)",
                    err * 100.0
                );
            }
        }
    }
    eprintln!("worst disagreement: {:.3}%", worst * 100.0);
}
