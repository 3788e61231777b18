//! Platforms with several VT-d remapping units: device scope decides which unit translates
//! a device's requests, a domain's invalidations reach only the units it spans, and a
//! domain spanning a unit with snoop control and one without shows the hazard of Alex
//! Williamson's review of the no-snoop series — before v5.19 it faults or corrupts, from
//! v5.19 it refuses the attach and stays clean.

mod common;
use common::{load_err, run_file, run_text};
use reports::VariantReport;
use snoopsim::scenario;
use std::path::Path;

/// Two devices; `units`, the attachments and the CPU's operations vary. The GPU writes
/// 4 KiB at 0x20_0000 (16 TLPs at MPS 256), the NIC 8 KiB at 0x30_0000 (32); domain d0
/// maps the first, d1 the second, d2 both.
fn two_devices(units: &str, attach: &str, cpu: &str, invalidation: &str) -> String {
    format!(
        r#"{{"name": "u", "seed": 5,
        "platform": {{"iommu": {{"vtd": {{
          "units": {units},
          "invalidation": "{invalidation}",
          "domains": [
            {{"name": "d0", "id": 1, "mappings": [{{"iova": "0x20_0000", "pa": "0x20_0000", "bytes": 4096}}]}},
            {{"name": "d1", "id": 2, "mappings": [{{"iova": "0x30_0000", "pa": "0x30_0000", "bytes": 8192}}]}},
            {{"name": "d2", "id": 3, "mappings": [{{"iova": "0x20_0000", "pa": "0x20_0000", "bytes": 4096}},
                                                 {{"iova": "0x30_0000", "pa": "0x30_0000", "bytes": 8192}}]}}],
          "attach": {attach}}}}}}},
        "devices": [{{"name": "gpu", "bdf": "01:00.0"}}, {{"name": "nic", "bdf": "02:00.0"}}],
        "workload": {{"program": {{
          "cpus": {{"cpu0": [{cpu}]}},
          "devices": {{
            "gpu": [{{"dma_write": {{"address": "0x20_0000", "bytes": 4096}}}}],
            "nic": [{{"dma_write": {{"address": "0x30_0000", "bytes": 8192}}}}]}}}}}}}}"#
    )
}

const SPLIT: &str = r#"[{"name": "dmar0", "devices": ["gpu"]},
                        {"name": "dmar1", "devices": ["nic"]}]"#;

/// Each device in a domain of its own.
const APART: &str = r#"[{"device": "gpu", "domain": "d0"}, {"device": "nic", "domain": "d1"}]"#;

/// Both devices in d2, so d2 spans both units.
const SHARED: &str = r#"[{"device": "gpu", "domain": "d2"}, {"device": "nic", "domain": "d2"}]"#;

const DELAY: &str = r#"{"delay": {"ns": 10}}"#;

fn invalidate(domain: &str) -> String {
    let domain = if domain.is_empty() {
        String::new()
    } else {
        format!(r#", "domain": "{domain}""#)
    };
    format!(r#"{{"iommu_invalidate": {{"what": "iotlb"{domain}}}}}"#)
}

/// Invalidations each unit accepted.
fn per_unit_invalidations(v: &VariantReport) -> Vec<u64> {
    v.iommu.units.iter().map(|u| u.invalidations).collect()
}

#[test]
fn a_devices_requests_are_translated_by_the_unit_whose_scope_holds_it() {
    let v = &run_text(&two_devices(SPLIT, APART, DELAY, "queued"))[0];
    assert_eq!(v.sim.stop_reason, reports::StopReason::Completed);
    assert_eq!(v.faults.count, 0);
    let u = &v.iommu.units;
    assert_eq!(u.len(), 2, "{:?}", v.iommu);
    assert_eq!((u[0].name.as_str(), u[0].translations), ("dmar0", 16));
    assert_eq!((u[1].name.as_str(), u[1].translations), ("dmar1", 32));
    // Each unit walked its own device's tables: one walk each, then IOTLB hits.
    assert_eq!((u[0].walks, u[1].walks), (1, 2));
    // The summed counters keep the one-unit shape.
    assert_eq!(v.iommu.translations, 48);
    assert_eq!(v.iommu.walks, u[0].walks + u[1].walks);
    assert_eq!(
        v.iommu.iotlb_hits + v.iommu.iotlb_misses,
        u.iter().map(|u| u.iotlb_hits + u.iotlb_misses).sum::<u64>()
    );
}

#[test]
fn invalidating_a_domain_sends_descriptors_only_to_the_units_it_spans() {
    // Queued: an IOTLB descriptor and an invalidation wait per unit reached.
    let run = |attach: &str, op: &str| {
        let v = run_text(&two_devices(SPLIT, attach, op, "queued")).remove(0);
        assert_eq!(v.sim.stop_reason, reports::StopReason::Completed, "{op}");
        v
    };
    assert_eq!(
        per_unit_invalidations(&run(APART, &invalidate("d0"))),
        [2, 0]
    );
    assert_eq!(
        per_unit_invalidations(&run(APART, &invalidate("d1"))),
        [0, 2]
    );
    // A domain spanning both units is flushed on each (Linux iommu_flush_iotlb_psi loops
    // over the domain's units), and so is a global invalidation.
    assert_eq!(
        per_unit_invalidations(&run(SHARED, &invalidate("d2"))),
        [2, 2]
    );
    assert_eq!(per_unit_invalidations(&run(APART, &invalidate(""))), [2, 2]);
    // A domain no device is attached to is flushed everywhere.
    assert_eq!(
        per_unit_invalidations(&run(APART, &invalidate("d2"))),
        [2, 2]
    );
    // The CPU waits for each unit's submission in turn: two waits take longer than one.
    let one = run(APART, &invalidate("d0")).cpu.stall_ns;
    let two = run(SHARED, &invalidate("d2")).cpu.stall_ns;
    assert!(two > one, "{two} vs {one}");
}

#[test]
fn register_based_invalidation_polls_each_units_own_register() {
    let v = run_text(&two_devices(SPLIT, SHARED, &invalidate("d2"), "register")).remove(0);
    assert_eq!(v.sim.stop_reason, reports::StopReason::Completed);
    let n = per_unit_invalidations(&v);
    assert!(n[0] > 0 && n[0] == n[1], "{n:?}");
}

#[test]
fn mixed_unit_domain_faults_and_corrupts_before_v5_19_and_refuses_the_attach_from_v5_19() {
    let v = run_file("mixed-unit-domain.json");
    let (pre, post) = (&v[0], &v[1]);
    assert_eq!(pre.params["software.semantics"], "pre_v5_19");
    assert_eq!(post.params["software.semantics"], "v5_19");

    // Before v5.19 both happen. The boot mappings were made with only the GPU attached,
    // behind dmar0 (snoop control), so their leaves carry SNP; the NIC joins afterwards
    // behind dmar1, where SNP is a reserved bit: every one of its No-Snoop writes faults
    // with reason 0xC and is dropped. The run-time map of 0x40_0000 is made once dmar1 is
    // in the domain, so it lacks SNP: the GPU's No-Snoop write there goes around the cache
    // and the guest, whose WBINVD KVM ignores (VFIO still reports the domain coherent),
    // reads its stale cached copy.
    assert!(pre.faults.count > 0);
    assert!(pre
        .faults
        .records
        .iter()
        .all(|f| f.reason_code == 0xc && f.requester == "02:00.0"));
    assert_eq!(pre.iommu.units[1].faults, pre.faults.count);
    assert!(pre.corruption.stale_cpu_read.events > 0);
    assert_eq!(
        pre.corruption.stale_cpu_read.first[0].address, "0x400000",
        "the stale line is the one mapped after dmar1 joined"
    );
    let host = pre.host.as_ref().expect("host section");
    assert!(host.domains[0].no_snoop.starts_with("mixed"), "{host:?}");
    assert_eq!(pre.cpu.wbinvd_ignored, 1);

    // From v5.19 the enforced domain refuses the NIC; VFIO gives it "guest-nic", where
    // enforcement fails, so KVM registers non-coherent DMA and emulates the WBINVD that
    // makes the NIC's No-Snoop write visible. The GPU's writes are snooped (SNP).
    let host = post.host.as_ref().expect("host section");
    assert_eq!(host.domains[0].name, "guest");
    assert_eq!(host.domains[0].enforce, "succeeded");
    assert_eq!(host.domains[0].refused, ["nic (dmar1: ECAP.SC = 0)"]);
    assert_eq!(host.domains[1].name, "guest-nic");
    assert_eq!(host.domains[1].owner, "vfio");
    assert!(host.domains[1]
        .enforce
        .contains("dmar1 lacks snoop control"));
    let kvm = host.kvm.as_ref().expect("a guest");
    assert!(kvm.noncoherent_dma);
    assert_eq!(kvm.wbinvd, "emulated");
    assert_eq!(post.cpu.wbinvd_emulated, 1);
    assert_eq!(post.corruption.total_events, 0);
    assert_eq!(post.faults.count, 0);
    assert_eq!(post.sim.stop_reason, reports::StopReason::Completed);
}

/// The scenario file with both devices attached before the boot mappings.
fn mixed_from_the_start(semantics: &str) -> VariantReport {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/mixed-unit-domain.json");
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.replace(r#", "after_maps": true"#, "").replace(
        r#""sweep": {"software.semantics": ["pre_v5_19", "v5_19"]}"#,
        &format!(r#""sweep": {{"software.semantics": ["{semantics}"]}}"#),
    );
    run_text(&text).remove(0)
}

#[test]
fn a_domain_spanning_a_unit_without_snoop_control_from_its_first_attach_is_not_coherent() {
    // Before v5.19: IOMMU_CAP_CACHE_COHERENCY fails for the domain, VFIO maps without
    // IOMMU_CACHE (no SNP anywhere, so nothing faults) and KVM learns of it.
    let pre = mixed_from_the_start("pre_v5_19");
    assert_eq!(pre.faults.count, 0);
    assert!(
        pre.host
            .as_ref()
            .unwrap()
            .kvm
            .as_ref()
            .unwrap()
            .noncoherent_dma
    );
    assert_eq!(pre.corruption.total_events, 0);
    // From v5.19: enforcement fails, naming the unit; nothing is refused.
    let post = mixed_from_the_start("v5_19");
    let d = &post.host.as_ref().unwrap().domains;
    assert_eq!(d.len(), 1);
    assert_eq!(
        d[0].enforce,
        "failed: dmar1 lacks snoop control (ECAP.SC = 0)"
    );
    assert!(d[0].refused.is_empty());
    assert_eq!(post.corruption.total_events, 0);
    assert_eq!(post.faults.count, 0);
}

#[test]
fn one_explicit_unit_gives_the_report_of_no_units() {
    let implicit = two_devices(SPLIT, APART, &invalidate("d0"), "queued")
        .replace(&format!(r#""units": {SPLIT},"#), "");
    let explicit = implicit.replace(
        r#""invalidation""#,
        r#""units": [{"name": "dmar0", "devices": ["gpu", "nic"]}], "invalidation""#,
    );
    assert_ne!(implicit, explicit);
    let a = serde_json::to_value(&run_text(&implicit)[0]).unwrap();
    let b = serde_json::to_value(&run_text(&explicit)[0]).unwrap();
    assert_eq!(a, b);
    assert!(a["iommu"].get("units").is_none());
}

#[test]
fn shipped_one_unit_scenarios_report_no_units() {
    for file in [
        "vtd-snp-blocks-no-snoop.json",
        "kvm-vtd-no-snoop-control.json",
    ] {
        for v in run_file(file) {
            assert!(v.iommu.units.is_empty(), "{file}: {:?}", v.iommu.units);
            assert!(v
                .host
                .iter()
                .flat_map(|h| &h.domains)
                .all(|d| d.refused.is_empty()));
        }
    }
}

#[test]
fn unit_capabilities_are_merged_over_the_platforms_and_validated_at_their_path() {
    let units = r#"[{"name": "dmar0", "devices": ["gpu"]},
                    {"name": "dmar1", "capabilities": {"nd": 7}, "devices": ["nic"]}]"#;
    let e = load_err(&two_devices(units, APART, DELAY, "queued"));
    assert!(
        e.contains("at platform.iommu.vtd.units[1].capabilities.nd") && e.contains("dmar1"),
        "{e}"
    );
    let units =
        r#"[{"name": "dmar0", "capabilities": {"snoop": true}, "devices": ["gpu", "nic"]}]"#;
    let e = load_err(&two_devices(units, APART, DELAY, "queued"));
    assert!(
        e.contains("at platform.iommu.vtd.units[0].capabilities.snoop") && e.contains("unknown"),
        "{e}"
    );
    // A combination the unit's fields make invalid is blamed on the unit: without queued
    // invalidation it cannot keep the platform's device-TLB support.
    let units = r#"[{"name": "dmar0", "devices": ["gpu"]},
                    {"name": "dmar1", "capabilities": {"queued_invalidation": false}, "devices": ["nic"]}]"#;
    let e = load_err(&two_devices(units, APART, DELAY, "queued"));
    assert!(
        e.contains("at platform.iommu.vtd.units[1].capabilities.device_tlb: dmar1:"),
        "{e}"
    );
    // A unit without queued invalidation refuses the platform's queued interface.
    let units = r#"[{"name": "dmar0", "devices": ["gpu"]},
                    {"name": "dmar1", "capabilities": {"queued_invalidation": false,
                                                        "device_tlb": false}, "devices": ["nic"]}]"#;
    let e = load_err(&two_devices(units, APART, DELAY, "queued"));
    assert!(
        e.contains("at platform.iommu.vtd.invalidation: dmar1: queued"),
        "{e}"
    );
    assert!(scenario::parse(
        Path::new("<t>"),
        &two_devices(units, APART, DELAY, "register")
    )
    .is_ok());
    // The platform's own wrong value, kept by every unit, is blamed where it is written.
    let text = two_devices(SPLIT, APART, DELAY, "queued")
        .replace(r#""units""#, r#""capabilities": {"nd": 9}, "units""#);
    let e = load_err(&text);
    assert!(
        e.contains("at platform.iommu.vtd.capabilities.nd: dmar0:"),
        "{e}"
    );
}

#[test]
fn device_scope_errors_name_their_json_path() {
    let cases = [
        (
            r#"[{"name": "dmar0", "devices": ["gpu"]}]"#,
            "at devices[1].name: device \"nic\" is in no remapping unit's device scope",
        ),
        (
            r#"[{"name": "dmar0", "devices": ["gpu", "nic"]}, {"name": "dmar1", "devices": ["nic"]}]"#,
            "at platform.iommu.vtd.units[1].devices[0]: device \"nic\" is already in the scope",
        ),
        (
            r#"[{"name": "dmar0", "devices": ["gpu", "nic", "fpga"]}]"#,
            "at platform.iommu.vtd.units[0].devices[2]: no device is named \"fpga\"",
        ),
        (
            r#"[{"name": "dmar0", "devices": ["gpu"]}, {"name": "dmar0", "devices": ["nic"]}]"#,
            "at platform.iommu.vtd.units[1].name: unit name \"dmar0\" is already used",
        ),
        ("[]", "at platform.iommu.vtd.units: 0 units"),
    ];
    for (units, want) in cases {
        let e = load_err(&two_devices(units, APART, DELAY, "queued"));
        assert!(e.contains(want), "{units}: {e}");
    }
}

#[test]
fn a_domain_is_checked_against_every_unit_it_spans() {
    // d2 spans both units; dmar1 has no 1 GiB pages, so a 1 GiB map into d2 is refused at
    // load time, while one into d0 (dmar0 only) is accepted.
    let units = r#"[{"name": "dmar0", "devices": ["gpu"]},
                    {"name": "dmar1", "capabilities": {"sllps_1g": false}, "devices": ["nic"]}]"#;
    let map = |d: &str| {
        format!(
            r#"{{"iommu_map": {{"domain": "{d}", "mapping": {{"iova": "0x4000_0000",
                "pa": "0x4000_0000", "bytes": 1073741824, "page": "1g"}}}}}}"#
        )
    };
    let e = load_err(&two_devices(units, SHARED, &map("d2"), "queued"));
    assert!(
        e.contains(
            "at workload.program.cpus.cpu0[0].iommu_map.mapping: 1 GiB pages are not \
                    supported"
        ),
        "{e}"
    );
    let ok = two_devices(units, APART, &map("d0"), "queued");
    assert!(scenario::parse(Path::new("<t>"), &ok).is_ok());
}
