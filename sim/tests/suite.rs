//! The canonical scenario suite: each file in `scenarios/` that tells part of the No-Snoop
//! story has a test here asserting its outcome, and a golden report (insta snapshot of the
//! JSON report without the volatile `sim.wall_ms`) so any change of results shows up in
//! review. Update the goldens with `INSTA_UPDATE=always cargo test -p snoopsim --test suite`
//! and read the diff.

use reports::{Report, VariantReport};
use snoopsim::run::{run_loaded, RunOptions};
use snoopsim::scenario;
use std::path::{Path, PathBuf};

/// The suite, in the order the README's table lists it.
const SUITE: &[&str] = &[
    "coherent-baseline",
    "ns-write-stale-read",
    "ns-read-dirty-line",
    "ns-lost-write",
    "ns-flush-policies",
    "ns-tradeoff",
    "kvm-wbinvd-nop",
    "kvm-vtd-snoop-control",
    "kvm-vtd-no-snoop-control",
    "kvm-amdvi-fc",
    "amdvi-in-kernel-fc-cost",
    "mixed-unit-domain",
    "vtd-noncoherent-walk-stale-pte",
    "deferred-invalidation-window",
    "bench-stream",
];

fn path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.json"))
}

/// Runs a suite scenario, checks its golden report and returns its variants.
fn golden(name: &str) -> Vec<VariantReport> {
    let loaded = scenario::load(&path(name)).unwrap_or_else(|e| panic!("{e}"));
    let report: Report = run_loaded(&loaded, RunOptions { reproducible: true })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut json = serde_json::to_value(&report).unwrap();
    for v in json["variants"].as_array_mut().unwrap() {
        v["sim"].as_object_mut().unwrap().remove("wall_ms");
    }
    insta::assert_snapshot!(name, serde_json::to_string_pretty(&json).unwrap());
    report.variants
}

/// The variant whose swept parameters include every `(path, value)`.
fn variant<'a>(vs: &'a [VariantReport], want: &[(&str, &str)]) -> &'a VariantReport {
    vs.iter()
        .find(|v| {
            want.iter().all(|(k, val)| {
                v.params.get(*k).is_some_and(|p| {
                    p.as_str().map_or_else(|| p.to_string(), str::to_owned) == *val
                })
            })
        })
        .unwrap_or_else(|| panic!("no variant with {want:?}"))
}

fn total(v: &VariantReport) -> u64 {
    v.corruption.total_events
}

#[test]
fn every_suite_scenario_is_a_file_with_a_one_line_description() {
    for name in SUITE {
        let s = scenario::load(&path(name)).unwrap_or_else(|e| panic!("{e}"));
        let d = &s.scenario.description;
        assert!(!d.is_empty() && !d.contains('\n'), "{name}: {d:?}");
        assert_eq!(s.scenario.name, *name);
    }
}

#[test]
fn coherent_baseline() {
    let v = golden("coherent-baseline");
    assert_eq!(total(&v[0]), 0);
}

#[test]
fn ns_write_stale_read() {
    let v = golden("ns-write-stale-read");
    let honoured = variant(&v, &[("platform.root_complex.honours_no_snoop", "true")]);
    assert!(honoured.corruption.stale_cpu_read.events > 0);
    let ignored = variant(&v, &[("platform.root_complex.honours_no_snoop", "false")]);
    assert_eq!(total(ignored), 0);
}

#[test]
fn ns_read_dirty_line() {
    let v = golden("ns-read-dirty-line");
    assert!(
        v[0].corruption.stale_device_read.events > 0,
        "{}",
        v[0].name
    );
    assert_eq!(total(&v[1]), 0, "{}", v[1].name);
}

#[test]
fn ns_lost_write() {
    let v = golden("ns-lost-write");
    assert!(v[0].corruption.lost_dma_write.events > 0);
}

#[test]
fn ns_flush_policies() {
    let v = golden("ns-flush-policies");
    let at = |dir: &str, flush: &str| {
        variant(
            &v,
            &[
                ("workload.buffer_exchange.direction", dir),
                ("workload.buffer_exchange.flush", flush),
            ],
        )
    };
    // Receiving: only an invalidating flush makes the device's data visible.
    for flush in ["none", "clwb"] {
        assert!(
            at("device_to_cpu", flush).corruption.stale_cpu_read.events > 0,
            "{flush}"
        );
    }
    for flush in ["clflush", "clflushopt_sfence", "wbinvd"] {
        assert_eq!(total(at("device_to_cpu", flush)), 0, "{flush}");
    }
    // Transmitting: any write-back does.
    assert!(
        at("cpu_to_device", "none")
            .corruption
            .stale_device_read
            .events
            > 0
    );
    for flush in ["clflush", "clflushopt_sfence", "clwb", "wbinvd"] {
        assert_eq!(total(at("cpu_to_device", flush)), 0, "{flush}");
    }
    // What each costs: wbinvd most, clflushopt + sfence less than clflush.
    for dir in ["device_to_cpu", "cpu_to_device"] {
        let stall = |f: &str| at(dir, f).cpu.stall_ns;
        assert!(stall("wbinvd") > stall("clflush"), "{dir}");
        assert!(stall("clflush") > stall("clflushopt_sfence"), "{dir}");
        assert!(stall("clflushopt_sfence") > stall("none"), "{dir}");
    }
}

#[test]
fn ns_tradeoff() {
    let v = golden("ns-tradeoff");
    let at = |ns: &str, flush: &str| {
        variant(
            &v,
            &[
                ("workload.buffer_exchange.no_snoop", ns),
                ("workload.buffer_exchange.flush", flush),
            ],
        )
    };
    let snooped = at("never", "none");
    let ns = at("always", "clflushopt_sfence");
    assert_eq!(total(snooped) + total(ns), 0);
    assert!(total(at("always", "none")) > 0);
    // No Snoop saves DMA latency...
    for class in ["dma_write", "dma_read"] {
        assert!(
            ns.latency_ns[class].p50 < at("never", "clflushopt_sfence").latency_ns[class].p50,
            "{class}"
        );
    }
    assert!(ns.latency_ns["dma_write"].p50 < snooped.latency_ns["dma_write"].p50);
    // ...and the flushes that make it correct cost CPU time.
    assert!(ns.cpu.stall_ns > snooped.cpu.stall_ns);
    assert_eq!(ns.cpu.clflushopt, 32 * 2 * 64);
}

#[test]
fn kvm_wbinvd_nop() {
    let v = golden("kvm-wbinvd-nop");
    assert!(v[0].corruption.stale_cpu_read.events > 0);
    assert_eq!((v[0].cpu.wbinvd_ignored, v[0].cpu.wbinvd), (1, 0));
}

#[test]
fn kvm_vtd_snoop_control() {
    let v = golden("kvm-vtd-snoop-control");
    assert_eq!(total(&v[0]), 0);
    assert_eq!(v[0].host.as_ref().unwrap().domains[0].enforce, "succeeded");
    assert_eq!(v[0].cpu.wbinvd_ignored, 1);
}

#[test]
fn kvm_vtd_no_snoop_control() {
    let v = golden("kvm-vtd-no-snoop-control");
    for r in &v {
        assert_eq!(total(r), 0, "{}", r.name);
        assert_eq!(r.cpu.wbinvd_emulated, 1, "{}", r.name);
        assert!(
            r.host
                .as_ref()
                .unwrap()
                .kvm
                .as_ref()
                .unwrap()
                .noncoherent_dma
        );
    }
    assert_eq!((v[0].cpu.ipis, v[1].cpu.ipis), (0, 3));
    assert!(v[1].cpu.stall_ns > v[0].cpu.stall_ns);
}

#[test]
fn kvm_amdvi_fc() {
    let v = golden("kvm-amdvi-fc");
    assert_eq!(total(&v[0]), 0);
    assert_eq!(v[0].cpu.wbinvd_ignored, 1);
    assert_eq!(
        v[0].host.as_ref().unwrap().domains[0].no_snoop,
        "blocked: FC on every leaf"
    );
}

#[test]
fn amdvi_in_kernel_fc_cost() {
    let v = golden("amdvi-in-kernel-fc-cost");
    let every = variant(
        &v,
        &[("platform.iommu.amdvi.force_coherent", "every_mapping")],
    );
    let enforced = variant(
        &v,
        &[("platform.iommu.amdvi.force_coherent", "enforced_domains")],
    );
    assert_eq!(total(every) + total(enforced), 0);
    for class in ["dma_write", "dma_read"] {
        assert!(
            every.latency_ns[class].p50 > enforced.latency_ns[class].p50,
            "{class}"
        );
    }
}

#[test]
fn mixed_unit_domain() {
    let v = golden("mixed-unit-domain");
    let pre = variant(&v, &[("software.semantics", "pre_v5_19")]);
    // The boot leaves' SNP faults on the unit without snoop control, and the map made
    // after it joined lacks SNP: the other device's No-Snoop write goes stale.
    assert!(pre.faults.count > 0);
    assert!(pre.corruption.stale_cpu_read.events > 0);
    let post = variant(&v, &[("software.semantics", "v5_19")]);
    assert_eq!((total(post), post.faults.count), (0, 0));
    let host = post.host.as_ref().unwrap();
    assert!(
        host.domains.iter().any(|d| !d.refused.is_empty()),
        "{host:?}"
    );
    assert!(host.kvm.as_ref().unwrap().noncoherent_dma);
    assert_eq!(post.cpu.wbinvd_emulated, 1);
}

#[test]
fn vtd_noncoherent_walk_stale_pte() {
    let v = golden("vtd-noncoherent-walk-stale-pte");
    assert!(v[0].corruption.misdirected_dma.events > 0, "{}", v[0].name);
    assert_eq!(total(&v[1]), 0, "{}", v[1].name);
}

#[test]
fn deferred_invalidation_window() {
    let v = golden("deferred-invalidation-window");
    let strict = variant(&v, &[("software.unmap_invalidation", "strict")]);
    assert_eq!(strict.corruption.misdirected_dma.events, 0);
    assert!(strict.faults.count > 0);
    let deferred = v.iter().find(|r| r.name != strict.name).unwrap();
    assert!(deferred.corruption.misdirected_dma.events > 0);
    // After the window the flush queue's invalidation lands: later writes fault.
    assert!(deferred.faults.count > 0);
}

#[test]
fn bench_stream() {
    let v = golden("bench-stream");
    let r = &v[0];
    assert_eq!(r.sim.stop_reason, reports::StopReason::Completed);
    assert_eq!(total(r), 0);
    assert_eq!(r.throughput.bytes, 1_000_000 * 256 + 1_000_000 * 512);
    assert_eq!(r.latency_ns["dma_write"].count, 1_000_000);
    assert_eq!(r.iommu.translations, 2_000_000);
    // Sequential 4 KiB pages: most translations hit the IOTLB.
    let hits = r.iommu.iotlb_hits as f64 / (r.iommu.iotlb_hits + r.iommu.iotlb_misses) as f64;
    assert!(hits > 0.8, "{hits}");
}

/// A sweep's reports, and so the CSV and comparison table, do not depend on how many threads
/// run the variants.
#[test]
fn a_suite_sweep_is_byte_identical_on_one_thread_and_on_four() {
    let loaded = scenario::load(&path("ns-flush-policies")).unwrap_or_else(|e| panic!("{e}"));
    let render = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let r = run_loaded(&loaded, RunOptions { reproducible: true }).unwrap();
            (reports::render_json(&r), reports::render_csv(&r))
        })
    };
    let one = render(1);
    assert_eq!(one, render(4));
    assert_eq!(one.1.lines().count(), 1 + 10, "a header and ten variants");
}
