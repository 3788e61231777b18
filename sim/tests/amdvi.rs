//! AMD-Vi end to end: FC against No Snoop, the event log, and one workload on both vendors.

mod common;
use common::{load_err, run_file};
use reports::VariantReport;
use snoopsim::run::{run_loaded, RunOptions};
use snoopsim::scenario;
use std::path::Path;

#[test]
fn fc_makes_a_no_snoop_write_coherent_row_by_row() {
    let v = run_file("amdvi-fc-matrix.json");
    assert_eq!(v.len(), 4);
    for r in &v {
        let p = |k: &str| r.params[k].as_bool().unwrap();
        let fc = p("platform.iommu.amdvi.domains[0].mappings[0].fc");
        let ns = p("workload.program.devices.nic[1].dma_write.attrs.no_snoop");
        // snooped = !NS || FC (DESIGN.md's effective snoop decision with AMD-Vi's FC):
        // 1 KiB = 16 cached lines go stale exactly when the write bypassed them.
        let stale = if ns && !fc { 16 } else { 0 };
        assert_eq!(r.corruption.stale_cpu_read.events, stale, "{}", r.name);
        assert_eq!(r.faults.count, 0);
        assert_eq!(r.iommu.kind, "amdvi");
        // One walk: the DTE and four levels.
        assert_eq!((r.iommu.walks, r.iommu.walk_memory_reads), (1, 5));
    }
}

#[test]
fn faults_are_events_in_the_log() {
    let v = &run_file("amdvi-faults.json")[0];
    let f = &v.faults;
    assert_eq!(f.count, 4);
    let by = |addr: &str| f.records.iter().find(|r| r.address == addr).unwrap();
    // IO_PAGE_FAULT (2) for the write to the read-only page, with PE.
    let ro = by("0x10000");
    assert_eq!((ro.reason_code, ro.access.as_str()), (0x2, "write"));
    assert!(ro.logged.contains("permission"), "{}", ro.logged);
    // Not present: an unmapped page and an address beyond a 3-level (39-bit) table.
    for a in ["0x40000", "0x10000000000"] {
        assert_eq!(by(a).reason_code, 0x2);
        assert!(by(a).logged.contains("not present"), "{}", by(a).logged);
    }
    // A translated request while DTE.I = 0: INVALID_DEVICE_REQUEST (8).
    assert_eq!(by("0x11000").reason_code, 0x8);
    // Entries land one after another in the event log.
    let mut at: Vec<&str> = f
        .records
        .iter()
        .map(|r| r.logged.split_whitespace().nth(4).unwrap())
        .collect();
    at.sort();
    at.dedup();
    assert_eq!(at.len(), 4, "{at:?}");
    assert_eq!(v.iommu.fault_log.logged, 4);
    // Two reads faulted (UR); the 256-byte read of the mapped page returned data.
    assert_eq!(v.pcie.devices[0].error_completions, 2);
}

/// The same workload on both vendors, each as Linux programs it by default.
///
/// * Snooping: Linux's VT-d driver sets SNP only for domains whose
///   `enforce_cache_coherency()` succeeded, so a plain DMA domain lets No Snoop through and
///   the reply buffer the driver cached goes stale (64 lines). Linux's AMD-Vi driver sets
///   FC on every leaf of every v1 domain, so the same No-Snoop write is snooped: no
///   corruption, but the device never gets the No-Snoop it asked for.
/// * Walks: a cold VT-d walk reads the root entry, the context entry and four levels (6
///   reads); an AMD-Vi walk reads the 32-byte DTE and four levels (5). With the same
///   caches and timing the difference is one DRAM read per cold walk; later walks start
///   below the root from the paging-structure / page-directory caches on both.
#[test]
fn one_workload_on_vtd_and_amdvi() {
    let v = run_file("iommu-vendors.json");
    let (vtd, amd) = (&v[0], &v[1]);
    assert_eq!(
        (vtd.iommu.kind.as_str(), amd.iommu.kind.as_str()),
        ("vtd", "amdvi")
    );
    assert_eq!(vtd.corruption.stale_cpu_read.events, 64);
    assert_eq!(amd.corruption.total_events, 0);
    // Same misses, same walks. The walks that start before the first one has filled the
    // context / DTE cache — four, the walk slots — read root + context on VT-d where
    // AMD-Vi reads one DTE: one read more each; later walks read the same on both.
    assert_eq!(vtd.iommu.walks, amd.iommu.walks);
    assert_eq!(vtd.iommu.iotlb_misses, amd.iommu.iotlb_misses);
    assert_eq!(vtd.iommu.walk_memory_reads - amd.iommu.walk_memory_reads, 4);
}

#[test]
fn bad_amdvi_configurations_name_the_json_path() {
    let base = r#"{"name": "t", "seed": 1,
      "platform": {"iommu": {"amdvi": {
        "domains": [{"name": "d", "id": 1, "levels": 4, "mappings": [
          {"iova": "0x1_0000", "pa": "0x20_0000", "bytes": 4096}]}],
        "attach": [{"device": "nic", "domain": "d"}]}}},
      "devices": [{"name": "nic", "bdf": "01:00.0"}],
      "workload": {"stream": {"device": "nic", "direction": "write", "transfer_bytes": 64,
                              "count": 1, "base": "0x1_0000"}}}"#;
    let cases: &[(&str, &str, &str)] = &[
        (
            r#""levels": 4"#,
            r#""levels": 4, "x": 1"#,
            "platform.iommu.amdvi.domains[0]",
        ),
        (
            r#""bytes": 4096}"#,
            r#""bytes": 4096, "snp": true}"#,
            "platform.iommu.amdvi.domains[0].mappings[0]",
        ),
        (
            r#""domain": "d"}"#,
            r#""domain": "e"}"#,
            "platform.iommu.amdvi.attach[0].domain",
        ),
        (
            r#""amdvi": {"#,
            r#""amdvi": {"capabilities": {"levels": 7},"#,
            "platform.iommu.amdvi.capabilities.levels",
        ),
        (
            r#""domain": "d"}"#,
            r#""domain": "d", "mode0_fc": true}"#,
            "platform.iommu.amdvi.attach[0].mode0_fc",
        ),
    ];
    for (from, to, path) in cases {
        assert!(base.contains(from), "{from}");
        let msg = load_err(&base.replacen(from, to, 1));
        assert!(msg.contains(path), "{path}: {msg}");
    }
}

fn run_on_amdvi(vtd_scenario: &str) -> Vec<VariantReport> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(vtd_scenario);
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.replacen(r#""iommu": {"vtd": {"#, r#""iommu": {"amdvi": {"#, 1);
    let loaded = scenario::parse(Path::new("<amdvi>"), &text).unwrap_or_else(|e| panic!("{e}"));
    run_loaded(&loaded, RunOptions::default()).unwrap().variants
}

/// The VT-d invalidation scenario as is, on AMD-Vi: INVALIDATE_IOMMU_PAGES + COMPLETION_WAIT
/// take the stale translation out; without them the IOTLB misdirects the next writes.
#[test]
fn a_missing_invalidate_iommu_pages_misdirects_the_next_dma() {
    let v = run_on_amdvi("vtd-missing-invalidation.json");
    assert_eq!(v[0].iommu.kind, "amdvi");
    assert_eq!(v[0].corruption.total_events, 0, "{}", v[0].name);
    assert_eq!(
        v[0].iommu.invalidations, 2,
        "INVALIDATE_IOMMU_PAGES and COMPLETION_WAIT"
    );
    let m = &v[1].corruption.misdirected_dma;
    assert_eq!((m.events, m.bytes), (4, 1024), "{}", v[1].name);
}

/// The stale-PTE scenario on a non-coherent AMD IOMMU: the walker reads the unflushed
/// PTE's old value from DRAM.
#[test]
fn an_unflushed_pte_is_read_stale_by_a_non_coherent_amd_iommu() {
    let v = run_on_amdvi("vtd-noncoherent-walk-stale-pte.json");
    assert_eq!(v[0].corruption.misdirected_dma.events, 4, "{}", v[0].name);
    assert_eq!(v[1].corruption.total_events, 0, "{}", v[1].name);
}

/// Linux's FC on every mapping against FC only for enforced domains, for an in-kernel
/// driver that flushes its buffers itself: both are clean, and the forced snoops cost
/// DMA latency (the accesses find the flushed lines absent, but each still pays the snoop
/// lookup).
#[test]
fn fc_on_every_mapping_costs_dma_latency_for_a_driver_that_flushes() {
    let v = run_file("amdvi-in-kernel-fc-cost.json");
    let (every, per) = (&v[0], &v[1]);
    assert_eq!(
        every.params["platform.iommu.amdvi.force_coherent"],
        "every_mapping"
    );
    assert_eq!(
        every.corruption.total_events + per.corruption.total_events,
        0
    );
    let p50 = |r: &VariantReport, class: &str| r.latency_ns[class].p50;
    for class in ["dma_write", "dma_read"] {
        assert!(
            p50(every, class) > p50(per, class),
            "{class}: {} vs {}",
            p50(every, class),
            p50(per, class)
        );
    }
    let host = per.host.as_ref().unwrap();
    assert_eq!(host.domains[0].owner, "dma_api");
    assert_eq!(host.domains[0].no_snoop, "passes: no FC");
}

/// Both IOMMU models are deterministic: the vendor sweep gives byte-identical reports on
/// one thread and on four.
#[test]
fn iommu_reports_are_byte_identical_on_any_number_of_threads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/iommu-vendors.json");
    let loaded = scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let opts = RunOptions { reproducible: true };
    let render = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| reports::render_json(&run_loaded(&loaded, opts).unwrap()))
    };
    let one = render(1);
    assert_eq!(one, render(4));
    assert!(one.contains("\"kind\": \"amdvi\"") && one.contains("\"kind\": \"vtd\""));
}
