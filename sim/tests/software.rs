//! The host software layer end to end: the domain API's two definitions decide the snoop
//! bits, VFIO enforces before mapping, KVM emulates or ignores the guest's WBINVD, and the
//! corruption (or its absence) follows.

mod common;
use common::{load_err, run_file, run_text};
use reports::VariantReport;

fn stale_reads(v: &VariantReport) -> u64 {
    v.corruption.stale_cpu_read.events
}

fn host(v: &VariantReport) -> &reports::HostReport {
    v.host.as_ref().expect("a host section")
}

/// A guest whose NIC writes 4 KiB with No Snoop over a buffer the vCPU has cached, then
/// WBINVD and a read; `iommu` and `software` vary.
fn guest(iommu: &str, software: &str) -> String {
    format!(
        r#"{{"name": "g", "seed": 3,
        "platform": {{"cpu": {{"cores": 2}}, "iommu": {iommu}}},
        "software": {software},
        "devices": [{{"name": "nic", "bdf": "01:00.0"}}],
        "workload": {{"program": {{
          "cpus": {{"cpu0": [
            {{"load": {{"address": "0x20_0000", "bytes": 4096}}}},
            {{"mmio_write": {{"device": "nic", "offset": "0x0"}}}},
            {{"wait": {{"device": "nic", "transfers": 1}}}},
            {{"wbinvd": {{}}}},
            {{"load": {{"address": "0x20_0000", "bytes": 4096}}}}
          ]}},
          "devices": {{"nic": [
            {{"wait_doorbell": {{"offset": "0x0"}}}},
            {{"dma_write": {{"address": "0x20_0000", "bytes": 4096, "attrs": {{"no_snoop": true}}}}}}
          ]}}
        }}}}}}"#
    )
}

fn vtd(sc: bool, mode: &str, kind: &str) -> String {
    let caps = if mode == "scalable" {
        format!(
            r#"{{"snoop_control": {sc}, "scalable_mode": true, "second_level": true,
               "first_level": true, "pasid": true, "pss": 19}}"#
        )
    } else {
        format!(r#"{{"snoop_control": {sc}}}"#)
    };
    format!(
        r#"{{"vtd": {{"capabilities": {caps}, "mode": "{mode}",
            "domains": [{{"name": "guest", "id": 1, "kind": "{kind}", "mappings": [
              {{"iova": "0x20_0000", "pa": "0x20_0000", "bytes": 4096}}]}}],
            "attach": [{{"device": "nic", "domain": "guest"}}]}}}}"#
    )
}

const AMDVI: &str = r#"{"amdvi": {
    "domains": [{"name": "guest", "id": 1, "mappings": [
      {"iova": "0x20_0000", "pa": "0x20_0000", "bytes": 4096}]}],
    "attach": [{"device": "nic", "domain": "guest"}]}}"#;

const VFIO_V5_19: &str = r#"{"semantics": "v5_19", "vfio_domains": ["guest"], "kvm": {}}"#;
const VFIO_PRE: &str = r#"{"semantics": "pre_v5_19", "vfio_domains": ["guest"], "kvm": {}}"#;

#[test]
fn v5_19_vfio_on_a_unit_with_snoop_control_enforces_and_kvm_ignores_wbinvd() {
    let v = run_text(&guest(&vtd(true, "legacy", "second_level"), VFIO_V5_19));
    let h = host(&v[0]);
    assert_eq!(h.domains[0].enforce, "succeeded");
    assert_eq!(h.domains[0].no_snoop, "blocked: SNP on every leaf");
    let kvm = h.kvm.as_ref().unwrap();
    assert!(!kvm.noncoherent_dma);
    assert_eq!(kvm.wbinvd, "no-op");
    assert_eq!(stale_reads(&v[0]), 0);
    assert_eq!((v[0].cpu.wbinvd_ignored, v[0].cpu.wbinvd_emulated), (1, 0));
    // The instruction never ran on a pCPU.
    assert_eq!(v[0].cpu.wbinvd, 0);
}

#[test]
fn v5_19_vfio_without_snoop_control_registers_noncoherent_dma_and_emulates_wbinvd() {
    let v = run_text(&guest(&vtd(false, "legacy", "second_level"), VFIO_V5_19));
    let h = host(&v[0]);
    assert!(h.domains[0].enforce.starts_with("failed"), "{h:?}");
    assert_eq!(h.domains[0].no_snoop, "passes: no SNP");
    assert!(h.kvm.as_ref().unwrap().noncoherent_dma);
    assert_eq!(
        stale_reads(&v[0]),
        0,
        "the emulated WBINVD drops the stale lines"
    );
    assert_eq!((v[0].cpu.wbinvd_ignored, v[0].cpu.wbinvd_emulated), (0, 1));
    assert_eq!(v[0].cpu.wbinvd, 1);
}

#[test]
fn a_vmm_that_does_not_tell_kvm_leaves_wbinvd_a_no_op_and_the_guest_reads_stale_data() {
    let sw = r#"{"semantics": "v5_19", "vfio_domains": ["guest"], "kvm": {"vfio_device": false}}"#;
    let v = run_text(&guest(&vtd(false, "legacy", "second_level"), sw));
    let kvm = host(&v[0]).kvm.clone().unwrap();
    assert!(!kvm.noncoherent_dma);
    assert!(kvm.reason.contains("kvm-vfio"), "{}", kvm.reason);
    // 4 KiB: 64 lines, each read stale.
    assert_eq!(stale_reads(&v[0]), 64);
    assert_eq!(v[0].cpu.wbinvd_ignored, 1);
}

#[test]
fn on_bare_metal_the_same_wbinvd_runs_and_the_read_is_fresh() {
    let sw = r#"{"semantics": "v5_19"}"#;
    let v = run_text(&guest(&vtd(false, "legacy", "second_level"), sw));
    assert_eq!(stale_reads(&v[0]), 0);
    assert_eq!(v[0].cpu.wbinvd, 1);
    assert!(host(&v[0]).kvm.is_none());
    // An in-kernel (DMA API) domain is never enforced.
    assert_eq!(host(&v[0]).domains[0].owner, "dma_api");
    assert_eq!(host(&v[0]).domains[0].enforce, "not called");
}

#[test]
fn before_v5_19_vfio_maps_with_iommu_cache_and_snp_where_the_unit_has_snoop_control() {
    let v = run_text(&guest(&vtd(true, "legacy", "second_level"), VFIO_PRE));
    let h = host(&v[0]);
    assert_eq!(h.semantics, "pre_v5_19");
    assert_eq!(h.domains[0].enforce, "not called");
    assert_eq!(h.domains[0].no_snoop, "blocked: SNP on every leaf");
    assert!(!h.kvm.as_ref().unwrap().noncoherent_dma);
    assert_eq!(stale_reads(&v[0]), 0);
    // Without SC the capability is false: no IOMMU_CACHE, KVM told, WBINVD emulated.
    let v = run_text(&guest(&vtd(false, "legacy", "second_level"), VFIO_PRE));
    let kvm = host(&v[0]).kvm.clone().unwrap();
    assert!(kvm.noncoherent_dma);
    assert!(kvm.reason.contains("IOMMU_CACHE"), "{}", kvm.reason);
    assert_eq!(stale_reads(&v[0]), 0);
}

#[test]
fn an_in_kernel_mapping_without_iommu_cache_gets_no_snp_before_v5_19() {
    let iommu = vtd(true, "legacy", "second_level")
        .replace(r#""bytes": 4096}"#, r#""bytes": 4096, "cache": false}"#);
    let v = run_text(&guest(&iommu, r#"{"semantics": "pre_v5_19"}"#));
    assert_eq!(stale_reads(&v[0]), 0, "bare metal: WBINVD flushes");
    let with_cache = run_text(&guest(
        &vtd(true, "legacy", "second_level"),
        r#"{"semantics": "pre_v5_19"}"#,
    ));
    assert_eq!(
        host(&with_cache[0]).domains[0].no_snoop,
        "blocked on IOMMU_CACHE mappings: SNP"
    );
    // From v5.19 IOMMU_CACHE no longer sets SNP for an in-kernel domain.
    let v = run_text(&guest(
        &vtd(true, "legacy", "second_level"),
        r#"{"semantics": "v5_19"}"#,
    ));
    assert_eq!(host(&v[0]).domains[0].no_snoop, "passes: no SNP");
}

#[test]
fn a_first_level_vfio_domain_is_enforced_with_pgsnp() {
    let v = run_text(&guest(&vtd(true, "scalable", "first_level"), VFIO_V5_19));
    let h = host(&v[0]);
    assert_eq!(h.domains[0].enforce, "succeeded");
    assert_eq!(h.domains[0].no_snoop, "blocked: PGSNP in the PASID entry");
    assert_eq!(stale_reads(&v[0]), 0);
    assert_eq!(v[0].faults.count, 0);
}

#[test]
fn amdvi_enforces_with_fc_and_enforced_domains_policy_leaves_in_kernel_domains_alone() {
    let v = run_text(&guest(AMDVI, VFIO_V5_19));
    assert_eq!(host(&v[0]).domains[0].no_snoop, "blocked: FC on every leaf");
    assert_eq!(stale_reads(&v[0]), 0);
    let fc_enforced = AMDVI.replace(
        r#"{"amdvi": {"#,
        r#"{"amdvi": {"force_coherent": "enforced_domains","#,
    );
    // A DMA-API domain under "enforced_domains": no FC, and the guest-less kernel's
    // WBINVD saves it; in a guest that KVM ignores, it would not.
    let v = run_text(&guest(&fc_enforced, r#"{"semantics": "v5_19"}"#));
    assert_eq!(host(&v[0]).domains[0].no_snoop, "passes: no FC");
    let v = run_text(&guest(&fc_enforced, VFIO_V5_19));
    assert_eq!(host(&v[0]).domains[0].no_snoop, "blocked: FC on every leaf");
}

#[test]
fn the_domain_api_refuses_hand_set_snoop_bits_and_unknown_vfio_domains() {
    let iommu = vtd(true, "legacy", "second_level")
        .replace(r#""bytes": 4096}"#, r#""bytes": 4096, "snp": true}"#);
    let e = load_err(&guest(&iommu, VFIO_V5_19));
    assert!(
        e.contains("platform.iommu.vtd.domains[0].mappings[0].snp"),
        "{e}"
    );
    let sw = r#"{"semantics": "v5_19", "vfio_domains": ["nope"]}"#;
    let e = load_err(&guest(&vtd(true, "legacy", "second_level"), sw));
    assert!(
        e.contains("software.vfio_domains[0]") && e.contains("nope"),
        "{e}"
    );
    let e = load_err(&guest(
        &vtd(true, "legacy", "second_level"),
        r#"{"vfio_domains": ["guest"]}"#,
    ));
    assert!(
        e.contains("software.vfio_domains") && e.contains("semantics"),
        "{e}"
    );
    let sw = r#"{"semantics": "v5_19", "kvm": {"ran_on": {"cpu0": [0, 9]}}}"#;
    let e = load_err(&guest(&vtd(true, "legacy", "second_level"), sw));
    assert!(e.contains("software.kvm.ran_on.cpu0[1]"), "{e}");
    let e = load_err(&guest(
        &AMDVI.replace(
            r#"{"amdvi": {"#,
            r#"{"amdvi": {"force_coherent": "enforced_domains","#,
        ),
        r#"{"semantics": "pre_v5_19"}"#,
    ));
    assert!(e.contains("force_coherent"), "{e}");
}

#[test]
fn an_emulated_wbinvd_flushes_every_pcpu_the_vcpu_ran_on_and_costs_more_for_each() {
    let one = run_text(&guest(&vtd(false, "legacy", "second_level"), VFIO_V5_19));
    let sw = r#"{"semantics": "v5_19", "vfio_domains": ["guest"],
                 "kvm": {"ran_on": {"cpu0": [0, 1]}}}"#;
    let two = run_text(&guest(&vtd(false, "legacy", "second_level"), sw));
    assert_eq!((one[0].cpu.ipis, two[0].cpu.ipis), (0, 1));
    assert_eq!(two[0].cpu.wbinvd, 2, "one WBINVD per pCPU");
    assert_eq!(stale_reads(&two[0]), 0);
    // The remote flush starts an IPI later than the local one: the vCPU stalls longer.
    assert!(
        two[0].cpu.stall_ns > one[0].cpu.stall_ns + 500.0,
        "{} vs {}",
        two[0].cpu.stall_ns,
        one[0].cpu.stall_ns
    );
}

#[test]
fn the_kvm_scenarios_tell_their_story() {
    let nop = run_file("kvm-wbinvd-nop.json");
    assert!(stale_reads(&nop[0]) > 0);
    assert_eq!(nop[0].cpu.wbinvd_ignored, 1);
    let sc = run_file("kvm-vtd-snoop-control.json");
    assert_eq!(sc[0].corruption.total_events, 0);
    assert_eq!(sc[0].cpu.wbinvd_ignored, 1);
    let nsc = run_file("kvm-vtd-no-snoop-control.json");
    for v in &nsc {
        assert_eq!(v.corruption.total_events, 0, "{}", v.name);
        assert_eq!(v.cpu.wbinvd_emulated, 1, "{}", v.name);
    }
    assert!(nsc[1].cpu.stall_ns > nsc[0].cpu.stall_ns);
    assert_eq!(nsc[1].cpu.ipis, 3);
    let amd = run_file("kvm-amdvi-fc.json");
    assert_eq!(amd[0].corruption.total_events, 0);
    assert_eq!(amd[0].cpu.wbinvd_ignored, 1);
}

#[test]
fn kvm_clears_the_dirty_mask_after_an_emulated_wbinvd() {
    let sw = r#"{"semantics": "v5_19", "vfio_domains": ["guest"],
                 "kvm": {"ran_on": {"cpu0": [0, 1]}}}"#;
    let text = guest(&vtd(false, "legacy", "second_level"), sw)
        .replace(r#"{"wbinvd": {}}"#, r#"{"wbinvd": {}}, {"wbinvd": {}}"#);
    let v = run_text(&text);
    assert_eq!(v[0].cpu.wbinvd_emulated, 2);
    // The first flushes pCPUs 0 and 1 (one IPI); the second only the pCPU it runs on.
    assert_eq!((v[0].cpu.wbinvd, v[0].cpu.ipis), (3, 1));
}

#[test]
fn a_nested_domain_inherits_pgsnp_from_its_enforced_second_stage_parent() {
    let iommu = r#"{"vtd": {"capabilities": {"snoop_control": true, "scalable_mode": true,
            "second_level": true, "first_level": true, "nested": true, "pasid": true,
            "pss": 19},
        "mode": "scalable",
        "domains": [
          {"name": "s2", "id": 1, "mappings": [
            {"iova": "0x20_0000", "pa": "0x20_0000", "bytes": 4096}]},
          {"name": "guest", "id": 2, "kind": "nested", "parent": "s2", "mappings": [
            {"iova": "0x20_0000", "pa": "0x20_0000", "bytes": 4096}]}],
        "attach": [{"device": "nic", "domain": "guest"}]}}"#;
    let sw = r#"{"semantics": "v5_19", "vfio_domains": ["s2"], "kvm": {}}"#;
    let v = run_text(&guest(iommu, sw));
    let h = host(&v[0]);
    assert_eq!(h.domains[0].enforce, "succeeded");
    assert_eq!(
        h.domains[1].no_snoop,
        "blocked: PGSNP from the second-stage parent"
    );
    assert_eq!((stale_reads(&v[0]), v[0].faults.count), (0, 0));
    // Nested translation did not exist before v5.19.
    let e = load_err(&guest(
        iommu,
        r#"{"semantics": "pre_v5_19", "vfio_domains": ["s2"]}"#,
    ));
    assert!(e.contains("platform.iommu.vtd.domains[1].kind"), "{e}");
}

#[test]
fn before_v5_19_a_scalable_mode_unit_counts_as_snooping_and_pgsnp_blocks_no_snoop() {
    // v5.13-v5.18: domain_update_iommu_snooping skips scalable-mode units, so VFIO maps
    // with IOMMU_CACHE, KVM is never told, and PGSNP on the unmanaged domain keeps the
    // guest clean although the unit lacks ECAP.SC.
    let v = run_text(&guest(&vtd(false, "scalable", "second_level"), VFIO_PRE));
    let h = host(&v[0]);
    assert_eq!(h.domains[0].no_snoop, "blocked: PGSNP in the PASID entry");
    assert!(!h.kvm.as_ref().unwrap().noncoherent_dma);
    assert_eq!((stale_reads(&v[0]), v[0].faults.count), (0, 0));
}

#[test]
fn amdvi_per_mapping_fc_is_not_a_domain_api_policy() {
    let iommu = AMDVI.replace(
        r#"{"amdvi": {"#,
        r#"{"amdvi": {"force_coherent": "per_mapping","#,
    );
    let e = load_err(&guest(&iommu, VFIO_V5_19));
    assert!(e.contains("platform.iommu.amdvi.force_coherent"), "{e}");
}
