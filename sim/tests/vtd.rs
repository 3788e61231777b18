//! Intel VT-d end to end: the shipped VT-d scenarios show what snoop control, invalidation,
//! walker coherency and fault recording do, and bad VT-d configurations are refused with
//! the JSON path of the offending value.

mod common;
use common::{load_err, run_file, run_text};
use reports::VariantReport;
use std::path::Path;

#[test]
fn snp_in_the_leaf_forces_the_no_snoop_write_to_be_snooped() {
    let v = run_file("vtd-snp-blocks-no-snoop.json");
    assert_eq!(v[0].corruption.total_events, 0, "SNP = 1: {}", v[0].name);
    // Without SNP the 4 KiB No-Snoop write leaves all 64 cached lines stale.
    assert_eq!(v[1].corruption.stale_cpu_read.events, 64, "{}", v[1].name);
    for r in &v {
        assert_eq!(r.faults.count, 0);
        assert_eq!(r.iommu.kind, "vtd");
        // One walk: root, context, four levels.
        assert_eq!((r.iommu.walks, r.iommu.walk_memory_reads), (1, 6));
    }
}

#[test]
fn a_missing_iotlb_invalidation_misdirects_the_next_dma() {
    let v = run_file("vtd-missing-invalidation.json");
    assert_eq!(v[0].corruption.total_events, 0, "{}", v[0].name);
    assert_eq!(
        v[0].iommu.invalidations, 2,
        "the IOTLB descriptor and the wait"
    );
    let m = &v[1].corruption.misdirected_dma;
    // All four 256-byte writes after the remap went to the old page.
    assert_eq!((m.events, m.bytes), (4, 1024), "{}", v[1].name);
    let e = &m.first[0];
    assert_eq!(e.address, "0x200000");
    assert!(e.summary.contains("0x300000"), "{}", e.summary);
    assert_eq!(v[1].iommu.invalidations, 0);
}

#[test]
fn an_unflushed_pte_update_is_read_stale_by_a_non_coherent_walker() {
    let v = run_file("vtd-noncoherent-walk-stale-pte.json");
    let m = &v[0].corruption.misdirected_dma;
    assert_eq!((m.events, m.bytes), (4, 1024), "{}", v[0].name);
    // The explanation names the CPU's store of the PTE and the walker's stale read of it.
    let chain = &m.first[0].chain;
    assert!(chain[0].actor.starts_with("core"), "{chain:?}");
    assert_eq!(chain[1].actor, "iommu");
    assert!(chain[1].what.contains("no-snoop"), "{chain:?}");
    assert_eq!(v[1].corruption.total_events, 0, "flushed: {}", v[1].name);
}

#[test]
fn the_same_pte_update_is_seen_by_a_coherent_walker_without_flushing() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/vtd-noncoherent-walk-stale-pte.json");
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.replace(r#""coherent": false"#, r#""coherent": true"#);
    let v = run_text(&text);
    for r in &v {
        assert_eq!(r.corruption.total_events, 0, "{}", r.name);
    }
}

#[test]
fn faults_carry_the_vtd_reason_and_what_the_fault_log_did() {
    let v = &run_file("vtd-faults.json")[0];
    let f = &v.faults;
    assert_eq!(f.count, 6);
    let codes: Vec<(String, u32, String)> = f
        .records
        .iter()
        .map(|r| (r.requester.clone(), r.reason_code, r.access.clone()))
        .collect();
    let want = |r: &str, c: u32, a: &str| (r.to_owned(), c, a.to_owned());
    assert!(codes.contains(&want("03:00.0", 0x1, "write")), "{codes:?}");
    assert!(codes.contains(&want("01:00.0", 0x4, "read")), "{codes:?}");
    assert!(codes.contains(&want("01:00.0", 0x5, "write")), "{codes:?}");
    assert!(codes.contains(&want("01:00.0", 0x6, "read")), "{codes:?}");
    assert!(codes.contains(&want("02:00.0", 0x5, "write")), "{codes:?}");
    assert!(codes.contains(&want("04:00.0", 0x5, "write")), "{codes:?}");
    let log = &v.iommu.fault_log;
    assert_eq!(
        (log.logged, log.collapsed, log.overflowed, log.suppressed),
        (2, 2, 1, 1)
    );
    let fpd = f.records.iter().find(|r| r.requester == "02:00.0").unwrap();
    assert!(fpd.logged.contains("FPD"), "{}", fpd.logged);
    let peer = f.records.iter().find(|r| r.requester == "04:00.0").unwrap();
    assert!(peer.logged.contains("PFO"), "{}", peer.logged);
    // Both blocked reads completed with UR; the allowed 256-byte read returned data.
    let nic = &v.pcie.devices[0];
    assert_eq!(nic.error_completions, 2);
    assert_eq!(nic.failed_transfers, 2);
}

#[test]
fn pgsnp_forces_snooping_of_a_first_level_pasid() {
    let v = run_file("vtd-scalable-pgsnp.json");
    assert_eq!(v[0].corruption.total_events, 0, "{}", v[0].name);
    assert_eq!(v[1].corruption.stale_cpu_read.events, 64, "{}", v[1].name);
    for r in &v {
        assert_eq!(r.faults.count, 0, "{}", r.name);
        // Requests without PASID walk root, context, PASID directory and entry, three
        // second-level levels (2 MiB leaf); PASID 5 reuses the cached context and walks
        // its directory entry, PASID entry and four first-level levels.
        assert_eq!(r.iommu.walk_memory_reads, 7 + 6, "{}", r.name);
    }
}

#[test]
fn large_pages_extend_iotlb_reach() {
    let v = run_file("vtd-iotlb-reach.json");
    let (small, large) = (&v[0], &v[1]);
    // 1024 buffers on distinct 4 KiB pages: each misses once.
    assert!(small.iommu.iotlb_misses >= 1024, "{:?}", small.iommu);
    assert_eq!(small.iommu.walks, 1024);
    // 16 MiB is eight 2 MiB pages.
    assert!(large.iommu.walks <= 16, "{:?}", large.iommu);
    // The misses show in the translation latency (walks read PTEs the LLC still holds,
    // tens of ns each) and, with two read tags, in throughput.
    let p90 = |r: &VariantReport| r.latency_ns["translation"].p90;
    assert!(
        p90(small) > 2.0 * p90(large),
        "{} vs {}",
        p90(small),
        p90(large)
    );
    assert!(large.throughput.gbps > 1.01 * small.throughput.gbps);
}

/// A small legacy-mode scenario: the CPU maps a page after boot and the device writes it.
fn remap_after_boot(caps: &str, invalidation: &str, ops: &str) -> String {
    format!(
        r#"{{"name": "t", "seed": 1,
          "platform": {{"iommu": {{"vtd": {{
            "capabilities": {caps},
            "invalidation": "{invalidation}",
            "domains": [{{"name": "d", "id": 3, "mappings": [
              {{"iova": "0x1_0000", "pa": "0x20_0000", "bytes": 4096}}]}}],
            "attach": [{{"device": "nic", "domain": "d"}}]}}}}}},
          "devices": [{{"name": "nic", "bdf": "01:00.0"}}],
          "workload": {{"program": {{
            "cpus": {{"cpu0": [{ops}, {{"mmio_write": {{"device": "nic", "offset": "0x0"}}}}]}},
            "devices": {{"nic": [
              {{"dma_write": {{"address": "0x1_0000", "bytes": 64}}}},
              {{"dma_write": {{"address": "0x2_0000", "bytes": 64}}}},
              {{"wait_doorbell": {{"offset": "0x0"}}}},
              {{"dma_write": {{"address": "0x1_0000", "bytes": 64}}}},
              {{"dma_write": {{"address": "0x2_0000", "bytes": 64}}}}]}}}}}}}}"#
    )
}

const MAP_2: &str = r#"{"delay": {"ns": 10000}},
  {"iommu_map": {"domain": "d", "mapping": {"iova": "0x2_0000", "pa": "0x30_0000", "bytes": 4096}}}"#;

#[test]
fn caching_mode_keeps_a_not_present_entry_until_it_is_invalidated() {
    // CM = 0: the unit may not cache not-present entries, so mapping is enough.
    let v = &run_text(&remap_after_boot("{}", "queued", MAP_2))[0];
    assert_eq!(v.faults.count, 1, "only the write before the map");
    // CM = 1 (QEMU's caching-mode, used under vIOMMU): the not-present result is cached,
    // and the write after the map still faults.
    let v = &run_text(&remap_after_boot(
        r#"{"caching_mode": true}"#,
        "queued",
        MAP_2,
    ))[0];
    assert_eq!(v.faults.count, 2);
    // ... until the driver invalidates after mapping, as it must with CM = 1.
    let ops = format!(
        r#"{MAP_2}, {{"iommu_invalidate": {{"what": "iotlb", "domain": "d", "iova": "0x2_0000"}}}}"#
    );
    let v = &run_text(&remap_after_boot(
        r#"{"caching_mode": true}"#,
        "queued",
        &ops,
    ))[0];
    assert_eq!(v.faults.count, 1);
    assert_eq!(v.corruption.total_events, 0);
}

#[test]
fn register_based_invalidation_works_without_queued_invalidation() {
    let ops = r#"{"delay": {"ns": 10000}},
      {"iommu_unmap": {"domain": "d", "iova": "0x1_0000", "bytes": 4096}},
      {"iommu_map": {"domain": "d", "mapping": {"iova": "0x1_0000", "pa": "0x40_0000", "bytes": 4096}}},
      {"iommu_invalidate": {"what": "iotlb", "domain": "d"}}"#;
    let caps = r#"{"queued_invalidation": false, "device_tlb": false}"#;
    let v = &run_text(&remap_after_boot(caps, "register", ops))[0];
    assert_eq!(v.corruption.total_events, 0);
    assert_eq!(v.iommu.invalidations, 1);
    // The CPU waited for IOTLB_REG.IVT to clear: at least the 200 ns invalidation.
    assert!(v.cpu.stall_ns >= 200.0, "{}", v.cpu.stall_ns);
}

#[test]
fn bad_vtd_configurations_name_the_json_path() {
    let base = remap_after_boot("{}", "queued", r#"{"delay": {"ns": 1}}"#);
    let cases: &[(&str, &str, &str)] = &[
        (
            r#""capabilities": {}"#,
            r#""capabilities": {"scalable_mode": true, "queued_invalidation": false, "device_tlb": false}"#,
            "platform.iommu.vtd.capabilities.scalable_mode",
        ),
        (
            r#""domain": "d"}]"#,
            r#""domain": "nope"}]"#,
            "platform.iommu.vtd.attach[0].domain",
        ),
        (
            r#""pa": "0x20_0000""#,
            r#""pa": "0x20_0800""#,
            "platform.iommu.vtd.domains[0].mappings[0]",
        ),
        (
            r#""capabilities": {}"#,
            r#""capabilities": {"sagaw_levels": [3], "mgaw": 39}"#,
            "platform.iommu.vtd.domains[0].levels",
        ),
        (
            r#""invalidation": "queued""#,
            r#""invalidation": "queued", "mode": "scalable""#,
            "platform.iommu.vtd.mode",
        ),
        (
            r#""capabilities": {}"#,
            r#""capabilities": {"snoop_contrl": true}"#,
            "platform.iommu.vtd.capabilities",
        ),
    ];
    for (from, to, path) in cases {
        assert!(base.contains(from), "{from}");
        let msg = load_err(&base.replacen(from, to, 1));
        assert!(msg.contains(path), "{path}: {msg}");
        // file:line:col of the value, or of its nearest enclosing key when it is a default.
        let pos = msg.split(": at ").next().unwrap_or("");
        assert!(
            pos.starts_with("<test>:") && pos.matches(':').count() == 2,
            "{msg}"
        );
    }
    // CAP.ND = 2 supports 2^(4 + 2·2) = 256 domain ids.
    let msg = load_err(
        &base
            .replacen(r#""capabilities": {}"#, r#""capabilities": {"nd": 2}"#, 1)
            .replacen(r#""id": 3"#, r#""id": 256"#, 1),
    );
    assert!(
        msg.contains("platform.iommu.vtd.domains[0].id") && msg.contains("256 domains"),
        "{msg}"
    );
    // An IOMMU operation on a platform without an IOMMU.
    let no_iommu = r#"{"name": "t", "seed": 1, "devices": [{"name": "nic", "bdf": "01:00.0"}],
      "workload": {"program": {"cpus": {"cpu0": [
        {"iommu_unmap": {"domain": "d", "iova": "0x1000", "bytes": 4096}}]}}}}"#;
    let msg = load_err(no_iommu);
    assert!(
        msg.contains("workload.program.cpus.cpu0[0].iommu_unmap") && msg.contains("needs an IOMMU"),
        "{msg}"
    );
}

#[test]
fn the_effective_snoop_decision_through_vtd_row_by_row() {
    let v = run_file("vtd-snoop-matrix.json");
    assert_eq!(v.len(), 8);
    for r in &v {
        let p = |k: &str| r.params[k].as_bool().unwrap();
        let sc = p("platform.iommu.vtd.capabilities.snoop_control");
        let snp = p("platform.iommu.vtd.domains[0].mappings[0].snp");
        let ns = p("workload.program.devices.nic[1].dma_write.attrs.no_snoop");
        // SNP with SC clear is a reserved bit in a legacy leaf: every write faults (0xC).
        let faults = snp && !sc;
        let snooped = !ns || (snp && sc);
        let want_faults = if faults { 4 } else { 0 };
        assert_eq!(r.faults.count, want_faults, "{}", r.name);
        assert!(r.faults.records.iter().all(|f| f.reason_code == 0xc));
        // 1 KiB = 16 lines, cached by the first load: stale iff the write bypassed them.
        let stale = if !faults && !snooped { 16 } else { 0 };
        assert_eq!(r.corruption.stale_cpu_read.events, stale, "{}", r.name);
    }
}

/// Two CPUs invalidating at once take turns on the driver's queue lock (as Linux's
/// qi_submit_sync does), so neither's descriptors are fetched before they are written and
/// both waits complete.
#[test]
fn concurrent_invalidations_from_two_cpus_both_complete() {
    for vendor in ["vtd", "amdvi"] {
        let text = format!(
            r#"{{"name": "t", "seed": 1,
              "platform": {{"cpu": {{"cores": 2}}, "iommu": {{"{vendor}": {{
                "domains": [{{"name": "d", "id": 1, "mappings": [
                  {{"iova": "0x1_0000", "pa": "0x20_0000", "bytes": 4096}}]}}],
                "attach": [{{"device": "nic", "domain": "d"}}]}}}}}},
              "devices": [{{"name": "nic", "bdf": "01:00.0"}}],
              "workload": {{"program": {{"cpus": {{
                "a": [{{"iommu_invalidate": {{"what": "iotlb", "domain": "d"}}}}],
                "b": [{{"iommu_invalidate": {{"what": "iotlb", "domain": "d"}}}}]}}}}}}}}"#
        );
        let v = &run_text(&text)[0];
        assert_eq!(
            v.sim.stop_reason,
            reports::StopReason::Completed,
            "{vendor}"
        );
        // Each CPU's invalidation and its wait.
        assert_eq!(v.iommu.invalidations, 4, "{vendor}");
    }
}

/// What the driver would refuse mid-run is refused when the scenario is loaded, at the
/// operation's JSON path; a mapping too large to build is refused too.
#[test]
fn iommu_operations_the_driver_refuses_are_load_time_errors() {
    let base = remap_after_boot("{}", "queued", r#"{"delay": {"ns": 1}}"#);
    let cases: &[(&str, &str)] = &[
        (
            r#"{"iommu_map": {"domain": "d", "mapping": {"iova": "0x1_0800", "pa": "0x0", "bytes": 4096}}}"#,
            "workload.program.cpus.cpu0[0].iommu_map.mapping",
        ),
        (
            r#"{"iommu_map": {"domain": "d", "mapping": {"iova": "0x1_0000", "pa": "0x0", "bytes": 4096}}}"#,
            "workload.program.cpus.cpu0[0].iommu_map.mapping",
        ),
        (
            r#"{"iommu_unmap": {"domain": "d", "iova": "0x9_0000", "bytes": 4096}}"#,
            "workload.program.cpus.cpu0[0].iommu_unmap",
        ),
        (
            r#"{"iommu_invalidate": {"what": "pasid_iotlb", "domain": "d"}}"#,
            "workload.program.cpus.cpu0[0].iommu_invalidate",
        ),
    ];
    for (op, path) in cases {
        let text = base.replacen(r#"{"delay": {"ns": 1}}"#, op, 1);
        let msg = load_err(&text);
        assert!(msg.contains(path), "{path}: {msg}");
    }
    // 2^23 pages of 4 KiB: over the limit on pages a scenario maps.
    let big = base.replacen(r#""bytes": 4096}]}],"#, r#""bytes": 34359738368}]}],"#, 1);
    let msg = load_err(&big);
    assert!(msg.contains("pages mapped in all"), "{msg}");
}
