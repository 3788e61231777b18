//! The host software section of a scenario: which definition of the IOMMU domain API's
//! cache-coherency controls the kernel implements, which domains VFIO owns, and the KVM
//! guest those domains' devices are passed through to.
//!
//! The two definitions are the ones before and after Jason Gunthorpe's series "Make the
//! iommu driver no-snoop block feature consistent" (merged in v5.19; see
//! `../shared/seed/no-snoop-series-2022.txt` and SPEC-NOTES §3.7, §5, §6).

use super::values::{Bounded, Nanos};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The host software layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Software {
    /// How the snoop bits of the IOMMU's tables are decided.
    pub semantics: Semantics,
    /// Domains VFIO allocated for devices passed through to the guest (names from
    /// `platform.iommu.*.domains`); every other domain belongs to an in-kernel driver
    /// using the DMA API. Needs `semantics` other than `none`.
    pub vfio_domains: Vec<String>,
    /// The CPU programs are the vCPUs of a KVM guest; `null`: they run on bare metal.
    pub kvm: Option<KvmSpec>,
}

/// Which definition of the domain API's cache-coherency controls the host kernel has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Semantics {
    /// No domain API: every mapping's `snp` / `fc` and every domain's `pgsnp` are written
    /// exactly as the scenario gives them.
    #[default]
    None,
    /// Before v5.19: a mapping gets VT-d SNP when it is made with IOMMU_CACHE and the
    /// domain's units all have snoop control (`intel_iommu_map`:
    /// `(IOMMU_CACHE && dmar_domain->iommu_snooping)`); VFIO maps with IOMMU_CACHE only
    /// when `IOMMU_CAP_CACHE_COHERENCY` holds, and KVM learns of non-coherent DMA when it
    /// does not.
    PreV5_19,
    /// v5.19 and later: IOMMU_CACHE means only that normal DMA is coherent;
    /// `enforce_cache_coherency()` blocks No Snoop for the whole domain (VT-d: SNP on every
    /// later leaf, PGSNP for first-level domains; AMD-Vi: FC); VFIO calls it before the
    /// first map, and a domain where it fails makes KVM register non-coherent DMA.
    V5_19,
}

/// The KVM guest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KvmSpec {
    /// The VMM added the passed-through devices' VFIO files to the kvm-vfio device (QEMU
    /// does), so KVM learns whether their DMA is coherent (`kvm_vfio_update_coherency`).
    /// False: KVM never hears of it and keeps the guest's WBINVD a no-op.
    pub vfio_device: bool,
    /// The physical CPUs each vCPU has run on since its last WBINVD (KVM's
    /// `wbinvd_dirty_mask`), by CPU program name; a vCPU always includes the core it runs
    /// on now. An emulated WBINVD flushes all of them.
    pub ran_on: BTreeMap<String, Vec<Bounded<0, 63>>>,
    /// One VM exit and re-entry, as WBINVD exiting costs (ns).
    pub exit_ns: Nanos,
    /// From sending an IPI to the target pCPU running its handler (ns).
    pub ipi_ns: Nanos,
}

/// An assumption, to be replaced by a measurement: a VM exit plus re-entry costs about
/// 1,000-1,500 cycles on recent Intel cores, so 0.5 µs at 3 GHz is used.
pub const DEFAULT_VM_EXIT_NS: f64 = 500.0;
/// An assumption, to be replaced by a measurement: an IPI reaches another core's handler
/// in about 1 µs on x86 servers.
pub const DEFAULT_IPI_NS: f64 = 1_000.0;

impl Default for KvmSpec {
    fn default() -> KvmSpec {
        KvmSpec {
            vfio_device: true,
            ran_on: BTreeMap::new(),
            exit_ns: Nanos::new(DEFAULT_VM_EXIT_NS),
            ipi_ns: Nanos::new(DEFAULT_IPI_NS),
        }
    }
}
