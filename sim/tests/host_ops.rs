//! The host-software operations of a CPU program besides map and unmap: `enforce`
//! (`enforce_cache_coherency()` at that point), `attach` / `detach` at run time, and the raw
//! `pte_update`. Each is performed as the kernel does it — table, context, PASID or DTE
//! stores through the caches, CLFLUSHed per the driver's policy, then the invalidation the
//! kernel issues and its wait — and its effect shows in what the devices' DMA does.
//!
//! The numbers: a 4 KiB No-Snoop write over a buffer the CPU holds is 16 TLPs at MPS 256
//! and leaves 64 stale lines when nothing forces snooping; a 256-byte write is one TLP; a
//! 1 KiB write four. A queued invalidation counts its descriptor and its wait.

mod common;
use common::{load_err, run_text};
use reports::VariantReport;

fn host(v: &VariantReport) -> &reports::HostReport {
    v.host.as_ref().expect("a host section")
}

fn stale_reads(v: &VariantReport) -> u64 {
    v.corruption.stale_cpu_read.events
}

fn misdirected(v: &VariantReport) -> u64 {
    v.corruption.misdirected_dma.events
}

/// Requests (`dma_write`) or transfers (`dma_write_transfer`) performed in memory.
fn transfers(v: &VariantReport, class: &str) -> u64 {
    v.latency_ns.get(class).map_or(0, |l| l.count)
}

fn reason_codes(v: &VariantReport) -> Vec<u32> {
    v.faults.records.iter().map(|f| f.reason_code).collect()
}

/// One NIC under `iommu`, v5.19 semantics; the CPU runs the operations `first`, caches the
/// buffer at 0x20_0000, lets the NIC write 4 KiB over it with No Snoop, and reads it back.
fn no_snoop_over_cache(iommu: &str, first: &str) -> String {
    format!(
        r#"{{"name": "ns", "seed": 3,
        "platform": {{"iommu": {iommu}}},
        "software": {{"semantics": "v5_19"}},
        "devices": [{{"name": "nic", "bdf": "01:00.0"}}],
        "workload": {{"program": {{
          "cpus": {{"cpu0": [
            {first}
            {{"load": {{"address": "0x20_0000", "bytes": 4096}}}},
            {{"mmio_write": {{"device": "nic", "offset": "0x0"}}}},
            {{"wait": {{"device": "nic", "transfers": 1}}}},
            {{"load": {{"address": "0x20_0000", "bytes": 4096}}}}]}},
          "devices": {{"nic": [
            {{"wait_doorbell": {{"offset": "0x0"}}}},
            {{"dma_write": {{"address": "0x20_0000", "bytes": 4096, "attrs": {{"no_snoop": true}}}}}}]}}}}}}}}"#
    )
}

/// A VT-d domain "dom" holding `mappings`, with the NIC attached; `caps` its capabilities.
fn vtd(caps: &str, mappings: &str) -> String {
    format!(
        r#"{{"vtd": {{"capabilities": {caps},
            "domains": [{{"name": "dom", "id": 1, "mappings": [{mappings}]}}],
            "attach": [{{"device": "nic", "domain": "dom"}}]}}}}"#
    )
}

const BUFFER: &str = r#"{"iova": "0x20_0000", "pa": "0x20_0000", "bytes": 4096}"#;
const ENFORCE: &str = r#"{"enforce": {"domain": "dom"}},"#;
const MAP_BUFFER: &str = r#"{"iommu_map": {"domain": "dom", "mapping":
    {"iova": "0x20_0000", "pa": "0x20_0000", "bytes": 4096}}},"#;

#[test]
fn enforce_before_the_first_map_gives_later_leaves_snp_and_no_snoop_stays_coherent() {
    // ECAP.SC, no boot mapping: enforcement succeeds and the run-time map's leaf gets SNP,
    // so the No-Snoop write is snooped and the CPU reads it.
    let run = |first: &str| run_text(&no_snoop_over_cache(&vtd("{}", ""), first)).remove(0);
    let v = run(&format!("{ENFORCE}{MAP_BUFFER}"));
    let d = &host(&v).domains[0];
    assert_eq!(d.enforce, "succeeded");
    assert_eq!(d.no_snoop, "blocked: SNP on every leaf");
    assert_eq!(d.enforce_calls.len(), 1);
    assert!(
        d.enforce_calls[0].starts_with("cpu0 at ") && d.enforce_calls[0].ends_with(": succeeded"),
        "{:?}",
        d.enforce_calls
    );
    assert_eq!(stale_reads(&v), 0);
    assert_eq!(v.faults.count, 0);
    // The same map without the call: a DMA-API domain is never enforced, every line stale.
    let v = run(MAP_BUFFER);
    assert_eq!(host(&v).domains[0].enforce, "not called");
    assert_eq!(stale_reads(&v), 64);
}

#[test]
fn enforce_after_a_mapping_fails_on_a_second_level_domain_and_no_snoop_goes_stale() {
    // Lu Baolu's rule (v6.7+): the boot mapping already exists without SNP, so
    // enforcement fails rather than leave it so.
    let v = run_text(&no_snoop_over_cache(&vtd("{}", BUFFER), ENFORCE)).remove(0);
    let d = &host(&v).domains[0];
    assert!(
        d.enforce.starts_with("failed: ") && d.enforce.contains("has mappings"),
        "{}",
        d.enforce
    );
    assert_eq!(d.no_snoop, "passes: no SNP");
    assert_eq!(stale_reads(&v), 64);
    // An unmap does not make the domain fresh again (`has_mappings` is never cleared).
    let unmap = r#"{"iommu_unmap": {"domain": "dom", "iova": "0x20_0000", "bytes": 4096}},"#;
    let v = run_text(&no_snoop_over_cache(
        &vtd("{}", ""),
        &format!("{MAP_BUFFER}{unmap}{ENFORCE}{MAP_BUFFER}"),
    ))
    .remove(0);
    assert!(host(&v).domains[0].enforce.contains("has mappings"));
    assert_eq!(stale_reads(&v), 64);
}

#[test]
fn enforce_fails_on_a_unit_without_snoop_control_and_succeeds_on_amdvi() {
    let no_sc = vtd(r#"{"snoop_control": false}"#, "");
    let v = run_text(&no_snoop_over_cache(
        &no_sc,
        &format!("{ENFORCE}{MAP_BUFFER}"),
    ))
    .remove(0);
    assert_eq!(
        host(&v).domains[0].enforce,
        "failed: the unit lacks snoop control (ECAP.SC = 0)"
    );
    assert_eq!(stale_reads(&v), 64);

    // AMD-Vi returns true; with FC only on enforced domains, the call is what puts FC on
    // the map that follows.
    let amdvi = r#"{"amdvi": {"force_coherent": "enforced_domains",
        "domains": [{"name": "dom", "id": 1}],
        "attach": [{"device": "nic", "domain": "dom"}]}}"#;
    let v = run_text(&no_snoop_over_cache(
        amdvi,
        &format!("{ENFORCE}{MAP_BUFFER}"),
    ))
    .remove(0);
    let d = &host(&v).domains[0];
    assert_eq!(d.enforce, "succeeded");
    assert_eq!(d.no_snoop, "blocked: FC on every leaf");
    assert_eq!(stale_reads(&v), 0);
    let v = run_text(&no_snoop_over_cache(amdvi, MAP_BUFFER)).remove(0);
    assert_eq!(stale_reads(&v), 64);
    // A second call returns true at once.
    let twice = format!("{ENFORCE}{ENFORCE}{MAP_BUFFER}");
    let v = run_text(&no_snoop_over_cache(amdvi, &twice)).remove(0);
    let calls = &host(&v).domains[0].enforce_calls;
    assert_eq!(calls.len(), 2);
    assert!(
        calls[1].ends_with(": succeeded (already enforced)"),
        "{calls:?}"
    );
}

#[test]
fn enforcing_a_first_level_domain_rewrites_the_pasid_entry_with_pgsnp_and_invalidates_it() {
    // Scalable mode, a first-level domain with its buffer mapped at boot (the has-mappings
    // rule is for second-level domains only). The NIC writes once before the call, so the
    // unit caches its PASID entry and translation without PGSNP: the call must rewrite the
    // entry and invalidate the PASID cache and the PASID-based IOTLB for the NIC's later
    // No-Snoop write to be snooped.
    let iommu = r#"{"vtd": {"capabilities": {"scalable_mode": true, "second_level": true,
            "first_level": true, "pasid": true, "pss": 19},
        "mode": "scalable",
        "domains": [{"name": "dom", "id": 1, "kind": "first_level", "mappings": [
          {"iova": "0x20_0000", "pa": "0x20_0000", "bytes": 4096}]}],
        "attach": [{"device": "nic", "domain": "dom"}]}}"#;
    let text = |call: &str| {
        format!(
            r#"{{"name": "fl", "seed": 3,
            "platform": {{"iommu": {iommu}}},
            "software": {{"semantics": "v5_19"}},
            "devices": [{{"name": "nic", "bdf": "01:00.0"}}],
            "workload": {{"program": {{
              "cpus": {{"cpu0": [
                {{"wait": {{"device": "nic", "transfers": 1}}}},
                {call}
                {{"load": {{"address": "0x20_0000", "bytes": 4096}}}},
                {{"mmio_write": {{"device": "nic", "offset": "0x0"}}}},
                {{"wait": {{"device": "nic", "transfers": 2}}}},
                {{"load": {{"address": "0x20_0000", "bytes": 4096}}}}]}},
              "devices": {{"nic": [
                {{"dma_write": {{"address": "0x20_0000", "bytes": 256}}}},
                {{"wait_doorbell": {{"offset": "0x0"}}}},
                {{"dma_write": {{"address": "0x20_0000", "bytes": 4096, "attrs": {{"no_snoop": true}}}}}}]}}}}}}}}"#
        )
    };
    let v = run_text(&text(ENFORCE)).remove(0);
    let d = &host(&v).domains[0];
    assert_eq!(d.enforce, "succeeded");
    assert_eq!(d.no_snoop, "blocked: PGSNP in the PASID entry");
    assert_eq!(stale_reads(&v), 0);
    // PASID-cache invalidation + wait, PASID-based IOTLB invalidation + wait.
    assert_eq!(v.iommu.invalidations, 4);
    let v = run_text(&text("")).remove(0);
    assert_eq!(v.iommu.invalidations, 0);
    assert_eq!(stale_reads(&v), 64);
}

/// The NIC, attached to "dom" at boot, writes 256 bytes at 0x20_0000 (so the unit caches
/// its context and translation), then again after each of two doorbells; the CPU runs
/// `before` ahead of the first doorbell and `between` ahead of the second. A write that
/// is blocked never completes, so the CPU waits for two transfers.
fn detach_then_attach(iommu: &str, before: &str, between: &str) -> String {
    format!(
        r#"{{"name": "da", "seed": 3,
        "platform": {{"iommu": {iommu}}},
        "devices": [{{"name": "nic", "bdf": "01:00.0"}}],
        "workload": {{"program": {{
          "cpus": {{"cpu0": [
            {{"wait": {{"device": "nic", "transfers": 1}}}},
            {before}
            {{"mmio_write": {{"device": "nic", "offset": "0x0"}}}},
            {{"delay": {{"ns": 3000}}}},
            {between}
            {{"mmio_write": {{"device": "nic", "offset": "0x8"}}}},
            {{"wait": {{"device": "nic", "transfers": 2}}}}]}},
          "devices": {{"nic": [
            {{"dma_write": {{"address": "0x20_0000", "bytes": 256}}}},
            {{"wait_doorbell": {{"offset": "0x0"}}}},
            {{"dma_write": {{"address": "0x20_0000", "bytes": 256}}}},
            {{"wait_doorbell": {{"offset": "0x8"}}}},
            {{"dma_write": {{"address": "0x20_0000", "bytes": 256}}}}]}}}}}}}}"#
    )
}

const DETACH: &str = r#"{"detach": {"device": "nic"}},"#;
const ATTACH: &str = r#"{"attach": {"device": "nic", "domain": "dom"}},"#;

fn vtd_dom(caps: &str, mode: &str) -> String {
    format!(
        r#"{{"vtd": {{"capabilities": {caps}, "mode": "{mode}",
            "domains": [{{"name": "dom", "id": 1, "mappings": [{BUFFER}]}}],
            "attach": [{{"device": "nic", "domain": "dom"}}]}}}}"#
    )
}

#[test]
fn a_detached_device_faults_on_vtd_and_works_again_once_attached() {
    let legacy = vtd_dom("{}", "legacy");
    let v = run_text(&detach_then_attach(&legacy, DETACH, ATTACH)).remove(0);
    assert_eq!(v.sim.stop_reason, reports::StopReason::Completed);
    // The write after the detach faults on the cleared context entry (reason 0x2) and is
    // dropped; the one after the attach is translated and performed.
    assert_eq!(reason_codes(&v), [0x2]);
    assert_eq!(transfers(&v, "dma_write_transfer"), 2);
    assert_eq!(transfers(&v, "dma_write"), 2);
    // domain_context_clear_one: a device-selective context-cache invalidation and a
    // domain-selective IOTLB one, each with its wait; the attach (no caching mode) needs
    // none. Stores: the cleared entry, four descriptors, the new entry.
    assert_eq!(v.iommu.invalidations, 4);
    assert_eq!(v.cpu.stores, 6);
    let plain = run_text(&detach_then_attach(&legacy, "", "")).remove(0);
    assert_eq!((plain.faults.count, plain.iommu.invalidations), (0, 0));
    assert_eq!(transfers(&plain, "dma_write_transfer"), 3);

    // Caching mode: the attach invalidates too (context cache under domain 0, IOTLB).
    let cm = vtd_dom(r#"{"caching_mode": true}"#, "legacy");
    let v = run_text(&detach_then_attach(&cm, DETACH, ATTACH)).remove(0);
    assert_eq!(reason_codes(&v), [0x2]);
    assert_eq!(v.iommu.invalidations, 8);

    // Scalable mode: the RID_PASID entry is cleared (fault 0x59, PASID entry not present),
    // then the PASID-cache and the IOTLB invalidations.
    let scalable = vtd_dom(
        r#"{"scalable_mode": true, "second_level": true, "pasid": true}"#,
        "scalable",
    );
    let v = run_text(&detach_then_attach(&scalable, DETACH, ATTACH)).remove(0);
    assert_eq!(reason_codes(&v), [0x59]);
    assert_eq!(transfers(&v, "dma_write_transfer"), 2);
    assert_eq!(v.iommu.invalidations, 4);
}

#[test]
fn a_detached_device_is_blocked_on_amdvi_and_works_again_once_attached() {
    let amdvi = format!(
        r#"{{"amdvi": {{"domains": [{{"name": "dom", "id": 1, "mappings": [{BUFFER}]}}],
            "attach": [{{"device": "nic", "domain": "dom"}}]}}}}"#
    );
    let v = run_text(&detach_then_attach(&amdvi, DETACH, ATTACH)).remove(0);
    assert_eq!(v.sim.stop_reason, reports::StopReason::Completed);
    // DTE V = 1, TV = 0 blocks the write: an IO_PAGE_FAULT event.
    assert_eq!(reason_codes(&v), [2]);
    assert_eq!(v.faults.records[0].reason, "IO_PAGE_FAULT");
    assert_eq!(transfers(&v, "dma_write_transfer"), 2);
    // Detach: INVALIDATE_DEVTAB_ENTRY, INVALIDATE_IOMMU_PAGES (the old domain, all
    // pages), COMPLETION_WAIT; attach: INVALIDATE_DEVTAB_ENTRY, COMPLETION_WAIT.
    assert_eq!(v.iommu.invalidations, 5);
    let plain = run_text(&detach_then_attach(&amdvi, "", "")).remove(0);
    assert_eq!((plain.faults.count, plain.iommu.invalidations), (0, 0));
}

#[test]
fn attaching_a_device_to_another_domain_detaches_it_first() {
    // "other" maps 0x20_0000 read-only: once the NIC is moved there, its write faults on
    // the leaf's W bit (reason 0x5), not on a missing context entry.
    let iommu = format!(
        r#"{{"vtd": {{"domains": [
            {{"name": "dom", "id": 1, "mappings": [{BUFFER}]}},
            {{"name": "other", "id": 2, "mappings": [
              {{"iova": "0x20_0000", "pa": "0x20_0000", "bytes": 4096, "write": false}}]}}],
            "attach": [{{"device": "nic", "domain": "dom"}}]}}}}"#
    );
    let to_other = r#"{"attach": {"device": "nic", "domain": "other"}},"#;
    let v = run_text(&detach_then_attach(&iommu, to_other, ATTACH)).remove(0);
    assert_eq!(reason_codes(&v), [0x5]);
    // The detach's two invalidations and waits; the attaches need none.
    assert_eq!(v.iommu.invalidations, 8);
    assert_eq!(transfers(&v, "dma_write_transfer"), 2);
}

/// dmar0 (snoop control) holds the GPU, dmar1 (none) the NIC. The VFIO domain "guest" has
/// the GPU; the NIC starts in "nic-dom". At run time the CPU moves the NIC into "guest",
/// then the NIC writes 256 bytes at 0x30_0000, which both domains map.
fn nic_joins_guest(semantics: &str) -> VariantReport {
    let text = format!(
        r#"{{"name": "join", "seed": 3,
        "platform": {{"iommu": {{"vtd": {{
          "units": [{{"name": "dmar0", "devices": ["gpu"]}},
                    {{"name": "dmar1", "capabilities": {{"snoop_control": false}}, "devices": ["nic"]}}],
          "domains": [
            {{"name": "guest", "id": 1, "mappings": [{BUFFER},
              {{"iova": "0x30_0000", "pa": "0x30_0000", "bytes": 4096}}]}},
            {{"name": "nic-dom", "id": 2, "mappings": [
              {{"iova": "0x30_0000", "pa": "0x30_0000", "bytes": 4096}}]}}],
          "attach": [{{"device": "gpu", "domain": "guest"}}, {{"device": "nic", "domain": "nic-dom"}}]}}}}}},
        "software": {{"semantics": "{semantics}", "vfio_domains": ["guest"]}},
        "devices": [{{"name": "gpu", "bdf": "01:00.0"}}, {{"name": "nic", "bdf": "02:00.0"}}],
        "workload": {{"program": {{
          "cpus": {{"cpu0": [
            {{"attach": {{"device": "nic", "domain": "guest"}}}},
            {{"mmio_write": {{"device": "nic", "offset": "0x0"}}}},
            {{"delay": {{"ns": 3000}}}}]}},
          "devices": {{"nic": [
            {{"wait_doorbell": {{"offset": "0x0"}}}},
            {{"dma_write": {{"address": "0x30_0000", "bytes": 256}}}}]}}}}}}}}"#
    );
    run_text(&text).remove(0)
}

#[test]
fn from_v5_19_an_enforced_domain_refuses_a_run_time_attach_behind_a_unit_without_snoop_control() {
    let v = nic_joins_guest("v5_19");
    let guest = &host(&v).domains[0];
    assert_eq!(guest.name, "guest");
    assert_eq!(guest.enforce, "succeeded");
    assert_eq!(guest.refused.len(), 1);
    assert!(
        guest.refused[0].starts_with("nic (dmar1: ECAP.SC = 0), by cpu0 at ")
            && guest.refused[0].ends_with(": left detached"),
        "{:?}",
        guest.refused
    );
    // The NIC was detached from nic-dom first (dmar1: context + IOTLB, each with its
    // wait), then refused: it stays detached and its write faults on dmar1.
    assert_eq!(reason_codes(&v), [0x2]);
    assert_eq!(v.iommu.units[1].faults, 1);
    assert_eq!(
        v.iommu
            .units
            .iter()
            .map(|u| u.invalidations)
            .collect::<Vec<_>>(),
        [0, 4]
    );

    // Before v5.19 nothing refuses: the NIC joins, and walks the boot leaves' SNP, a
    // reserved bit on dmar1 (fault 0xC) — the hazard of the per-domain rule.
    let v = nic_joins_guest("pre_v5_19");
    let guest = &host(&v).domains[0];
    assert!(guest.refused.is_empty());
    assert!(guest.no_snoop.starts_with("mixed"), "{}", guest.no_snoop);
    assert_eq!(reason_codes(&v), [0xc]);
}

#[test]
fn a_unit_whose_capabilities_do_not_fit_the_domain_refuses_a_run_time_attach() {
    // Domain id 20 fits dmar0 but not dmar1's 16 domains (CAP.ND = 0): the attach is
    // refused whatever the semantics (`paging_domain_compatible`), the NIC stays without a
    // context entry and its write faults; the refusal is reported even without a domain
    // API.
    let text = r#"{"name": "nd", "seed": 3,
      "platform": {"iommu": {"vtd": {
        "units": [{"name": "dmar0", "devices": ["gpu"]},
                  {"name": "dmar1", "capabilities": {"nd": 0}, "devices": ["nic"]}],
        "domains": [{"name": "big", "id": 20, "mappings": [
          {"iova": "0x30_0000", "pa": "0x30_0000", "bytes": 4096}]}],
        "attach": [{"device": "gpu", "domain": "big"}]}}},
      "devices": [{"name": "gpu", "bdf": "01:00.0"}, {"name": "nic", "bdf": "02:00.0"}],
      "workload": {"program": {
        "cpus": {"cpu0": [
          {"attach": {"device": "nic", "domain": "big"}},
          {"mmio_write": {"device": "nic", "offset": "0x0"}},
          {"delay": {"ns": 3000}}]},
        "devices": {"nic": [{"wait_doorbell": {"offset": "0x0"}},
          {"dma_write": {"address": "0x30_0000", "bytes": 256}}]}}}}"#;
    let v = run_text(text).remove(0);
    let h = host(&v);
    assert_eq!(h.semantics, "none");
    assert_eq!(h.domains[0].refused.len(), 1);
    assert!(
        h.domains[0].refused[0]
            .starts_with("nic (dmar1: domain id 20 is beyond the 16 domains CAP.ND = 0 supports)"),
        "{:?}",
        h.domains[0].refused
    );
    assert_eq!(v.iommu.units[1].faults, 1);
    assert_eq!(transfers(&v, "dma_write_transfer"), 0);
}

#[test]
fn enforcing_at_run_time_does_not_reregister_with_kvm() {
    // A first-level VFIO domain over both units fails enforcement at boot (dmar1 lacks
    // snoop control), so KVM registers non-coherent DMA. Detaching the NIC lets a later
    // call succeed, but kvm-vfio only re-evaluates on group add or del: WBINVD stays
    // emulated.
    let text = r#"{"name": "kvm", "seed": 3,
      "platform": {"cpu": {"cores": 2}, "iommu": {"vtd": {
        "capabilities": {"scalable_mode": true, "second_level": true, "first_level": true,
                         "pasid": true, "pss": 19},
        "mode": "scalable",
        "units": [{"name": "dmar0", "devices": ["gpu"]},
                  {"name": "dmar1", "capabilities": {"snoop_control": false}, "devices": ["nic"]}],
        "domains": [{"name": "guest", "id": 1, "kind": "first_level", "mappings": [
          {"iova": "0x20_0000", "pa": "0x20_0000", "bytes": 4096}]}],
        "attach": [{"device": "gpu", "domain": "guest"}, {"device": "nic", "domain": "guest"}]}}},
      "software": {"semantics": "v5_19", "vfio_domains": ["guest"], "kvm": {}},
      "devices": [{"name": "gpu", "bdf": "01:00.0"}, {"name": "nic", "bdf": "02:00.0"}],
      "workload": {"program": {
        "cpus": {"cpu0": [
          {"enforce": {"domain": "guest"}},
          {"detach": {"device": "nic"}},
          {"enforce": {"domain": "guest"}},
          {"load": {"address": "0x20_0000", "bytes": 4096}},
          {"mmio_write": {"device": "gpu", "offset": "0x0"}},
          {"wait": {"device": "gpu", "transfers": 1}},
          {"wbinvd": {}},
          {"load": {"address": "0x20_0000", "bytes": 4096}}]},
        "devices": {"gpu": [{"wait_doorbell": {"offset": "0x0"}},
          {"dma_write": {"address": "0x20_0000", "bytes": 4096, "attrs": {"no_snoop": true}}}]}}}}"#;
    let v = run_text(text).remove(0);
    let h = host(&v);
    let calls = &h.domains[0].enforce_calls;
    assert_eq!(calls.len(), 2);
    assert!(
        calls[0].ends_with(": failed: dmar1 lacks snoop control (ECAP.SC = 0)"),
        "{calls:?}"
    );
    assert!(calls[1].ends_with(": succeeded"), "{calls:?}");
    assert_eq!(h.domains[0].enforce, "succeeded");
    assert_eq!(h.domains[0].no_snoop, "blocked: PGSNP in the PASID entry");
    let kvm = h.kvm.as_ref().expect("a guest");
    assert!(kvm.noncoherent_dma);
    assert!(kvm.reason.contains("re-evaluates only"), "{}", kvm.reason);
    assert_eq!(v.cpu.wbinvd_emulated, 1);
    assert_eq!(stale_reads(&v), 0);
}

/// The NIC writes 1 KiB at IOVA 0x1_0000 (mapped to 0x20_0000), then, after the CPU's
/// `ops` and a doorbell, again.
fn remap(caps: &str, ops: &str) -> String {
    format!(
        r#"{{"name": "pte", "seed": 6,
        "platform": {{"iommu": {{"vtd": {{"capabilities": {caps},
          "domains": [{{"name": "dom", "id": 1, "mappings": [
            {{"iova": "0x1_0000", "pa": "0x20_0000", "bytes": 4096}}]}}],
          "attach": [{{"device": "nic", "domain": "dom"}}]}}}}}},
        "devices": [{{"name": "nic", "bdf": "01:00.0"}}],
        "workload": {{"program": {{
          "cpus": {{"cpu0": [
            {{"wait": {{"device": "nic", "transfers": 1}}}},
            {ops}
            {{"mmio_write": {{"device": "nic", "offset": "0x0"}}}},
            {{"wait": {{"device": "nic", "transfers": 2}}}}]}},
          "devices": {{"nic": [
            {{"dma_write": {{"address": "0x1_0000", "bytes": 1024}}}},
            {{"wait_doorbell": {{"offset": "0x0"}}}},
            {{"dma_write": {{"address": "0x1_0000", "bytes": 1024}}}}]}}}}}}}}"#
    )
}

fn pte_update(flush: &str) -> String {
    format!(
        r#"{{"pte_update": {{"domain": "dom", "iova": "0x1_0000", "pa": "0x30_0000"{flush}}}}},"#
    )
}

const INVALIDATE_PAGE: &str = r#"{"iommu_invalidate": {"what": "iotlb", "domain": "dom",
    "iova": "0x1_0000", "bytes": 4096}},"#;

#[test]
fn a_pte_update_without_its_clflush_on_a_non_coherent_walker_misdirects_the_dma() {
    let walker = r#"{"coherent": false}"#;
    // The new leaf sits dirty in the CPU's cache; the IOTLB is invalidated, the walker
    // reads the old leaf from DRAM and the four TLPs land at 0x20_0000 instead.
    let forgot = format!("{}{INVALIDATE_PAGE}", pte_update(r#", "flush": false"#));
    let v = run_text(&remap(walker, &forgot)).remove(0);
    assert_eq!(misdirected(&v), 4);
    assert_eq!(v.corruption.misdirected_dma.bytes, 1024);
    assert!(
        v.corruption.misdirected_dma.first[0]
            .summary
            .contains("at 0x200000"),
        "{:?}",
        v.corruption.misdirected_dma.first[0].summary
    );
    // With the CLFLUSH (asked for, or the driver's default on this walker) the write lands
    // at the new address, where a cache-less walk of the tables sends it: nothing wrong.
    for flush in [r#", "flush": true"#, ""] {
        let ops = format!("{}{INVALIDATE_PAGE}", pte_update(flush));
        let v = run_text(&remap(walker, &ops)).remove(0);
        assert_eq!(v.corruption.total_events, 0, "{flush}");
        assert_eq!(v.faults.count, 0);
    }
    // The CLFLUSH is the one store's: boot's flushes plus one.
    let with = run_text(&remap(walker, &pte_update(r#", "flush": true"#))).remove(0);
    let without = run_text(&remap(walker, &pte_update(r#", "flush": false"#))).remove(0);
    assert_eq!(with.cpu.clflush, without.cpu.clflush + 1);
}

#[test]
fn a_pte_update_without_invalidation_leaves_the_stale_iotlb_entry_in_use() {
    let v = run_text(&remap("{}", &pte_update(""))).remove(0);
    assert_eq!(misdirected(&v), 4);
    assert_eq!(v.iommu.invalidations, 0);
    let ops = format!("{}{INVALIDATE_PAGE}", pte_update(""));
    let v = run_text(&remap("{}", &ops)).remove(0);
    assert_eq!(misdirected(&v), 0);
    assert_eq!(v.iommu.invalidations, 2);
}

#[test]
fn a_pte_update_writes_the_snoop_bit_it_is_given_bypassing_the_domain_api() {
    // Under v5.19 a DMA-API domain that was never enforced maps without SNP; the raw update
    // sets it anyway, and the No-Snoop write over the cached buffer is snooped.
    let set_snp = r#"{"pte_update": {"domain": "dom", "iova": "0x20_0000", "pa": "0x20_0000",
        "snp": true}},"#;
    let v = run_text(&no_snoop_over_cache(&vtd("{}", BUFFER), set_snp)).remove(0);
    assert_eq!(host(&v).domains[0].enforce, "not called");
    assert_eq!(stale_reads(&v), 0);
    // On a unit without snoop control the bit is reserved: every TLP faults with 0xC.
    let no_sc = vtd(r#"{"snoop_control": false}"#, BUFFER);
    let v = run_text(&no_snoop_over_cache(&no_sc, set_snp)).remove(0);
    assert_eq!(v.faults.count, 16);
    assert!(reason_codes(&v).iter().all(|&c| c == 0xc));
}

#[test]
fn a_pte_update_on_amdvi_rewrites_the_leaf_and_fc() {
    let amdvi = r#"{"amdvi": {"domains": [{"name": "dom", "id": 1, "mappings": [
          {"iova": "0x1_0000", "pa": "0x20_0000", "bytes": 4096}]}],
        "attach": [{"device": "nic", "domain": "dom"}]}}"#;
    let text = |ops: &str| {
        remap("{}", ops).replace(
            r#"{"vtd": {"capabilities": {},
          "domains": [{"name": "dom", "id": 1, "mappings": [
            {"iova": "0x1_0000", "pa": "0x20_0000", "bytes": 4096}]}],
          "attach": [{"device": "nic", "domain": "dom"}]}}"#,
            amdvi,
        )
    };
    assert!(text("").contains("amdvi"));
    let v = run_text(&text(&pte_update(""))).remove(0);
    assert_eq!(misdirected(&v), 4);
    let v = run_text(&text(&format!("{}{INVALIDATE_PAGE}", pte_update("")))).remove(0);
    assert_eq!(v.corruption.total_events, 0);
    assert_eq!(v.faults.count, 0);
}

/// The path and message of a scenario the loader refuses.
fn refused(text: &str) -> String {
    load_err(text)
}

#[test]
fn bad_host_operations_are_load_errors_at_the_operations_path() {
    let op = |first: &str, semantics: &str| {
        no_snoop_over_cache(&vtd("{}", BUFFER), first).replace(
            r#""semantics": "v5_19""#,
            &format!(r#""semantics": "{semantics}""#),
        )
    };
    let at = |e: &str, path: &str| {
        assert!(e.contains(&format!("at {path}: ")), "{path}: {e}");
    };
    // enforce_cache_coherency() exists from v5.19 only.
    let e = refused(&op(ENFORCE, "pre_v5_19"));
    at(&e, "workload.program.cpus.cpu0[0].enforce");
    assert!(e.contains("v5_19"), "{e}");
    at(
        &refused(&op(ENFORCE, "none")),
        "workload.program.cpus.cpu0[0].enforce",
    );
    // Unknown domains and devices.
    let e = refused(&op(r#"{"enforce": {"domain": "nope"}},"#, "v5_19"));
    at(&e, "workload.program.cpus.cpu0[0].enforce.domain");
    assert!(e.contains("no domain is named \"nope\""), "{e}");
    let e = refused(&op(
        r#"{"attach": {"device": "nic", "domain": "nope"}},"#,
        "v5_19",
    ));
    at(&e, "workload.program.cpus.cpu0[0].attach.domain");
    let e = refused(&op(
        r#"{"attach": {"device": "gpu", "domain": "dom"}},"#,
        "v5_19",
    ));
    at(&e, "workload.program.cpus.cpu0[0].attach.device");
    assert!(e.contains("no device is named \"gpu\""), "{e}");
    let e = refused(&op(r#"{"detach": {"device": "gpu"}},"#, "v5_19"));
    at(&e, "workload.program.cpus.cpu0[0].detach.device");
    let e = refused(&op(
        r#"{"pte_update": {"domain": "nope", "iova": "0x20_0000", "pa": "0x0"}},"#,
        "v5_19",
    ));
    at(&e, "workload.program.cpus.cpu0[0].pte_update.domain");
    // pte_update rewrites an existing leaf: an unmapped IOVA, one inside a page, a
    // misaligned address or the other vendor's bit are refused at their field.
    let e = refused(&op(
        r#"{"pte_update": {"domain": "dom", "iova": "0x40_0000", "pa": "0x0"}},"#,
        "v5_19",
    ));
    at(&e, "workload.program.cpus.cpu0[0].pte_update.iova");
    assert!(e.contains("not mapped"), "{e}");
    let e = refused(&op(
        r#"{"pte_update": {"domain": "dom", "iova": "0x20_0800", "pa": "0x0"}},"#,
        "v5_19",
    ));
    at(&e, "workload.program.cpus.cpu0[0].pte_update.iova");
    let e = refused(&op(
        r#"{"pte_update": {"domain": "dom", "iova": "0x20_0000", "pa": "0x30_0800"}},"#,
        "v5_19",
    ));
    at(&e, "workload.program.cpus.cpu0[0].pte_update.pa");
    let e = refused(&op(
        r#"{"pte_update": {"domain": "dom", "iova": "0x20_0000", "pa": "0x0", "fc": true}},"#,
        "v5_19",
    ));
    at(&e, "workload.program.cpus.cpu0[0].pte_update.fc");
    // A leaf unmapped earlier in the same program is no longer there.
    let e = refused(&op(
        r#"{"iommu_unmap": {"domain": "dom", "iova": "0x20_0000", "bytes": 4096}},
           {"pte_update": {"domain": "dom", "iova": "0x20_0000", "pa": "0x0"}},"#,
        "v5_19",
    ));
    at(&e, "workload.program.cpus.cpu0[1].pte_update.iova");
    // Unknown fields are refused by the format itself.
    let e = refused(&op(
        r#"{"detach": {"device": "nic", "domain": "dom"}},"#,
        "v5_19",
    ));
    assert!(e.contains("unknown field `domain`"), "{e}");
    // Without an IOMMU there is nothing to attach to.
    let none = op(r#"{"detach": {"device": "nic"}},"#, "none")
        .replace(&vtd("{}", BUFFER), r#"{"none": {}}"#);
    let e = refused(&none);
    at(&e, "workload.program.cpus.cpu0[0].detach");
    assert!(e.contains("needs an IOMMU"), "{e}");
}
