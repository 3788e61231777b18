//! Platforms with several AMD IOMMUs (`platform.iommu.amdvi.units`): device scope decides
//! which IOMMU translates a device's requests, a domain's page table is shared by the
//! IOMMUs it spans while each has its own device table and command buffer, and a domain's
//! invalidation reaches exactly those IOMMUs (Linux `amd_iommu_domain_flush_pages` loops
//! over the domain's `dev_iommu[]`).

mod common;
use common::{load_err, run_file};
use reports::{StopReason, VariantReport};
use snoopsim::scenario;
use std::path::Path;

fn run_text(text: &str) -> VariantReport {
    let v = common::run_text(text).remove(0);
    assert_eq!(v.sim.stop_reason, StopReason::Completed);
    v
}

/// Two devices; `extra` (fields of `amdvi`, each followed by a comma), the attachments and
/// the CPU's operations vary. The GPU writes 4 KiB at 0x20_0000 (16 TLPs at MPS 256), the
/// NIC 8 KiB at 0x30_0000 (32); domain d0 maps the first, d1 the second, d2 both.
fn two_devices(extra: &str, attach: &str, cpu: &str) -> String {
    format!(
        r#"{{"name": "u", "seed": 5,
        "platform": {{"iommu": {{"amdvi": {{
          {extra}
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

/// The GPU behind iommu0, the NIC behind iommu1.
const SPLIT: &str = r#""units": [{"name": "iommu0", "devices": ["gpu"]},
                                 {"name": "iommu1", "devices": ["nic"]}],"#;

/// Each device in a domain of its own.
const APART: &str = r#"[{"device": "gpu", "domain": "d0"}, {"device": "nic", "domain": "d1"}]"#;

/// Both devices in d2, so d2 spans both IOMMUs.
const SHARED: &str = r#"[{"device": "gpu", "domain": "d2"}, {"device": "nic", "domain": "d2"}]"#;

const DELAY: &str = r#"{"delay": {"ns": 10}}"#;

fn invalidate(what: &str, domain: &str) -> String {
    let domain = if domain.is_empty() {
        String::new()
    } else {
        format!(r#", "domain": "{domain}""#)
    };
    format!(r#"{{"iommu_invalidate": {{"what": "{what}"{domain}}}}}"#)
}

/// Commands each IOMMU fetched (a COMPLETION_WAIT included).
fn per_unit_invalidations(v: &VariantReport) -> Vec<u64> {
    v.iommu.units.iter().map(|u| u.invalidations).collect()
}

#[test]
fn a_devices_requests_are_translated_by_the_iommu_whose_scope_holds_it() {
    let v = run_text(&two_devices(SPLIT, APART, DELAY));
    assert_eq!(v.faults.count, 0);
    assert_eq!(v.iommu.kind, "amdvi");
    let u = &v.iommu.units;
    assert_eq!(u.len(), 2, "{:?}", v.iommu);
    assert_eq!((u[0].name.as_str(), u[0].translations), ("iommu0", 16));
    assert_eq!((u[1].name.as_str(), u[1].translations), ("iommu1", 32));
    // Each IOMMU walked its own device's DTE and table: neither saw the other's device.
    assert!(u[0].walks > 0 && u[1].walks > 0, "{u:?}");
    // The summed counters keep the one-unit shape.
    assert_eq!(v.iommu.translations, 48);
    assert_eq!(v.iommu.walks, u[0].walks + u[1].walks);
    assert_eq!(
        v.iommu.iotlb_hits + v.iommu.iotlb_misses,
        u.iter().map(|u| u.iotlb_hits + u.iotlb_misses).sum::<u64>()
    );
}

#[test]
fn a_fault_is_logged_by_the_iommu_the_device_sits_behind() {
    // The NIC's domain d0 does not map 0x30_0000: IO_PAGE_FAULT in iommu1's event log.
    let attach = r#"[{"device": "gpu", "domain": "d0"}, {"device": "nic", "domain": "d0"}]"#;
    let v = run_text(&two_devices(SPLIT, attach, DELAY));
    assert!(v.faults.count > 0);
    assert!(v
        .faults
        .records
        .iter()
        .all(|f| f.requester == "02:00.0" && f.reason_code == 0x2));
    assert_eq!(v.iommu.units[0].faults, 0);
    assert_eq!(v.iommu.units[1].faults, v.faults.count);
}

#[test]
fn invalidating_a_domain_sends_commands_only_to_the_iommus_it_spans() {
    // Each IOMMU reached fetches the domain's INVALIDATE_IOMMU_PAGES and a COMPLETION_WAIT.
    let run = |attach: &str, op: &str| run_text(&two_devices(SPLIT, attach, op));
    let iotlb = |d: &str| invalidate("iotlb", d);
    assert_eq!(per_unit_invalidations(&run(APART, &iotlb("d0"))), [2, 0]);
    assert_eq!(per_unit_invalidations(&run(APART, &iotlb("d1"))), [0, 2]);
    // A domain spanning both IOMMUs is flushed on each, and so is a global invalidation
    // (INVALIDATE_IOMMU_ALL).
    assert_eq!(per_unit_invalidations(&run(SHARED, &iotlb("d2"))), [2, 2]);
    assert_eq!(per_unit_invalidations(&run(APART, &iotlb(""))), [2, 2]);
    // A domain no device is attached to is flushed everywhere.
    assert_eq!(per_unit_invalidations(&run(APART, &iotlb("d2"))), [2, 2]);
    // The CPU waits for each IOMMU's COMPLETION_WAIT in turn: two take longer than one.
    let one = run(APART, &iotlb("d0")).cpu.stall_ns;
    let two = run(SHARED, &iotlb("d2")).cpu.stall_ns;
    assert!(two > one, "{two} vs {one}");
}

#[test]
fn a_context_invalidation_flushes_each_dte_on_the_iommu_that_holds_it() {
    let run = |attach: &str, op: &str| run_text(&two_devices(SPLIT, attach, op));
    // d2's devices sit behind both IOMMUs: each gets INVALIDATE_DEVTAB_ENTRY for its own
    // device, then a COMPLETION_WAIT.
    let ctx = |d: &str| invalidate("context", d);
    assert_eq!(per_unit_invalidations(&run(SHARED, &ctx("d2"))), [2, 2]);
    assert_eq!(per_unit_invalidations(&run(APART, &ctx("d1"))), [0, 2]);
    // Global: every IOMMU, each with the DTEs of the devices behind it.
    assert_eq!(per_unit_invalidations(&run(APART, &ctx(""))), [2, 2]);
}

#[test]
fn amdvi_two_iommus_one_domain_invalidation_reaches_both_iommus() {
    let v = run_file("amdvi-two-iommus.json");
    let (with, without) = (&v[0], &v[1]);
    assert!(with.name.contains("iommu_invalidate"), "{}", with.name);
    // INVALIDATE_IOMMU_PAGES + COMPLETION_WAIT on each IOMMU: both devices' next writes
    // land in the new buffer.
    assert_eq!(per_unit_invalidations(with), [2, 2]);
    assert_eq!(with.corruption.total_events, 0);
    assert_eq!(with.faults.count, 0);
    // Without it both IOMMUs keep the old translation: each device's 1 KiB goes to the
    // old buffer.
    assert_eq!(per_unit_invalidations(without), [0, 0]);
    let m = &without.corruption.misdirected_dma;
    assert_eq!(m.bytes, 2048);
    // iommu1's walks do not snoop: every table write was flushed, in both variants.
    assert!(with.cpu.clflush > 0 && without.cpu.clflush > 0);
    for v in &v {
        assert_eq!(v.iommu.units[0].translations, v.iommu.units[1].translations);
    }
}

#[test]
fn device_scope_errors_name_their_json_path() {
    let cases = [
        (
            r#""units": [{"name": "iommu0", "devices": ["gpu"]}],"#,
            "at devices[1].name: device \"nic\" is in no IOMMU's device scope: list it in the \
             devices of one of platform.iommu.amdvi.units (\"iommu0\")",
        ),
        (
            r#""units": [{"name": "iommu0", "devices": ["gpu", "nic"]}, {"name": "iommu1", "devices": ["nic"]}],"#,
            "at platform.iommu.amdvi.units[1].devices[0]: device \"nic\" is already in the scope",
        ),
        (
            r#""units": [{"name": "iommu0", "devices": ["gpu", "nic", "fpga"]}],"#,
            "at platform.iommu.amdvi.units[0].devices[2]: no device is named \"fpga\"",
        ),
        (
            r#""units": [{"name": "iommu0", "devices": ["gpu"]}, {"name": "iommu0", "devices": ["nic"]}],"#,
            "at platform.iommu.amdvi.units[1].name: unit name \"iommu0\" is already used",
        ),
        (r#""units": [],"#, "at platform.iommu.amdvi.units: 0 units"),
    ];
    for (units, want) in cases {
        let e = load_err(&two_devices(units, APART, DELAY));
        assert!(e.contains(want), "{units}: {e}");
    }
}

#[test]
fn iommu_capabilities_are_merged_over_the_platforms_and_validated_at_their_path() {
    let units = r#""units": [{"name": "iommu0", "devices": ["gpu"]},
                              {"name": "iommu1", "capabilities": {"levels": 7}, "devices": ["nic"]}],"#;
    let e = load_err(&two_devices(units, APART, DELAY));
    assert!(
        e.contains("at platform.iommu.amdvi.units[1].capabilities.levels: iommu1: 7"),
        "{e}"
    );
    let units = r#""units": [{"name": "iommu0", "capabilities": {"snoop": true}, "devices": ["gpu", "nic"]}],"#;
    let e = load_err(&two_devices(units, APART, DELAY));
    assert!(
        e.contains("at platform.iommu.amdvi.units[0].capabilities.snoop") && e.contains("unknown"),
        "{e}"
    );
    // The platform's own wrong value, kept by every IOMMU, is blamed where it is written.
    let text = two_devices(SPLIT, APART, DELAY).replace(
        r#""units""#,
        r#""capabilities": {"command_entries": 100}, "units""#,
    );
    let e = load_err(&text);
    assert!(
        e.contains("at platform.iommu.amdvi.capabilities.command_entries: iommu0:"),
        "{e}"
    );
}

#[test]
fn a_domain_is_checked_against_every_iommu_it_spans() {
    // iommu1 walks at most 4 levels. A 5-level domain spanning it is refused at load time,
    // naming it; one behind iommu0 alone is accepted.
    let units = r#""units": [{"name": "iommu0", "devices": ["gpu"]},
                              {"name": "iommu1", "capabilities": {"levels": 4}, "devices": ["nic"]}],"#;
    let five = |attach: &str| {
        two_devices(units, attach, DELAY).replace(
            r#"{"name": "d2", "id": 3,"#,
            r#"{"name": "d2", "id": 3, "levels": 5,"#,
        )
    };
    let e = load_err(&five(SHARED));
    assert!(
        e.contains("at platform.iommu.amdvi.domains[2].levels: iommu1: 5 levels exceed"),
        "{e}"
    );
    let alone = r#"[{"device": "gpu", "domain": "d2"}, {"device": "nic", "domain": "d1"}]"#;
    assert!(scenario::parse(Path::new("<t>"), &five(alone)).is_ok());
    // A DTE attribute override needs the capability on the device's own IOMMU.
    let units = r#""units": [{"name": "iommu0", "capabilities": {"snoop_attr": true}, "devices": ["gpu"]},
                              {"name": "iommu1", "devices": ["nic"]}],"#;
    let mode0 = |device: &str| {
        let attach = format!(r#"[{{"device": "{device}", "domain": "d2", "mode0_fc": true}}]"#);
        two_devices(units, &attach, DELAY)
    };
    assert!(scenario::parse(Path::new("<t>"), &mode0("gpu")).is_ok());
    let e = load_err(&mode0("nic"));
    assert!(
        e.contains("at platform.iommu.amdvi.attach[0].mode0_fc: iommu1: mode0_fc needs"),
        "{e}"
    );
}

#[test]
fn one_explicit_iommu_gives_the_report_of_no_units() {
    let implicit = two_devices("", APART, &invalidate("iotlb", "d0"));
    let explicit = two_devices(
        r#""units": [{"name": "iommu0", "devices": ["gpu", "nic"]}],"#,
        APART,
        &invalidate("iotlb", "d0"),
    );
    assert_ne!(implicit, explicit);
    let a = serde_json::to_value(run_text(&implicit)).unwrap();
    let b = serde_json::to_value(run_text(&explicit)).unwrap();
    assert_eq!(a, b);
    assert!(a["iommu"].get("units").is_none());
}

#[test]
fn one_iommu_whose_walks_do_not_snoop_makes_every_table_write_flushed() {
    // Page tables are shared by the IOMMUs a domain spans, and the driver flushes its
    // table writes when any IOMMU's walks do not snoop.
    let coherent = run_text(&two_devices(SPLIT, SHARED, DELAY));
    assert_eq!(coherent.cpu.clflush, 0);
    let units = r#""units": [{"name": "iommu0", "devices": ["gpu"]},
                              {"name": "iommu1", "capabilities": {"coherent": false}, "devices": ["nic"]}],"#;
    let mixed = run_text(&two_devices(units, SHARED, DELAY));
    assert!(mixed.cpu.clflush > 0, "{:?}", mixed.cpu);
    assert_eq!(mixed.corruption.total_events, 0);
    // `never` keeps the bug available.
    let never = format!(r#"{units} "flush_table_writes": "never","#);
    assert_eq!(run_text(&two_devices(&never, SHARED, DELAY)).cpu.clflush, 0);
}

#[test]
fn an_enforced_domain_spanning_two_iommus_refuses_nothing() {
    // From v5.19 VFIO enforces coherency on its domain: AMD-Vi succeeds whichever IOMMUs
    // the domain spans (FC on every leaf), so both devices join and KVM has no
    // non-coherent DMA to register.
    let text = two_devices(SPLIT, SHARED, DELAY).replace(
        r#""devices": [{"name": "gpu""#,
        r#""software": {"semantics": "v5_19", "vfio_domains": ["d2"], "kvm": {}},
           "devices": [{"name": "gpu""#,
    );
    let v = run_text(&text);
    let host = v.host.as_ref().expect("host section");
    let d2 = host.domains.iter().find(|d| d.name == "d2").unwrap();
    assert_eq!(d2.enforce, "succeeded");
    assert!(d2.refused.is_empty());
    assert_eq!(d2.no_snoop, "blocked: FC on every leaf");
    assert!(!host.kvm.as_ref().unwrap().noncoherent_dma);
    assert_eq!(per_unit_invalidations(&v), [0, 0]);
}

/// A run-time detach goes to the IOMMU the device sits behind: its DTE is cleared there and
/// only that IOMMU fetches the DTE and page invalidations; the device's next write is
/// blocked while the other device, behind the other IOMMU, keeps translating.
#[test]
fn a_run_time_detach_reaches_only_the_iommu_the_device_sits_behind() {
    let text = std::fs::read_to_string(common::scenario_path("amdvi-two-iommus.json")).unwrap();
    let mut s: serde_json::Value = serde_json::from_str(&text).unwrap();
    s.as_object_mut().unwrap().remove("sweep");
    s["workload"]["program"]["cpus"]["cpu0"] = serde_json::json!([
        {"delay": {"ns": 15000}},
        {"detach": {"device": "nic"}},
        {"mmio_write": {"device": "gpu", "offset": "0x0"}},
        {"mmio_write": {"device": "nic", "offset": "0x0"}}
    ]);
    let v = run_text(&s.to_string());
    // DTE invalidation, the domain's pages and the COMPLETION_WAIT: all on iommu1.
    assert_eq!(per_unit_invalidations(&v), [0, 3]);
    assert_eq!(
        v.faults.count, 4,
        "the NIC's second 1 KiB write: 4 TLPs blocked"
    );
    assert!(v.faults.records.iter().all(|f| f.requester == "02:00.0"));
    assert_eq!(v.corruption.total_events, 0);
}
