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
    /// What the IOMMU driver does about cached translations after `iommu_unmap` clears
    /// a range's PTEs: nothing (`explicit`), a synchronous invalidation (`strict`), or a
    /// flush queue (`deferred`), as Linux's `iommu.strict=1` / lazy DMA domains.
    pub unmap_invalidation: UnmapInvalidation,
}

/// When the IOTLB learns of an unmap (Linux: `iommu.strict`, `CONFIG_IOMMU_DEFAULT_DMA_STRICT`
/// / `_LAZY`, the DMA domain types `IOMMU_DOMAIN_DMA` and `IOMMU_DOMAIN_DMA_FQ`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnmapInvalidation {
    /// `iommu_unmap` only clears PTEs; the program invalidates with `iommu_invalidate` when
    /// it chooses to (or never: the device may go on using the stale IOTLB entry).
    #[default]
    Explicit,
    /// Strict mode: `iommu_unmap` → `iommu_iotlb_sync` before it returns
    /// (drivers/iommu/iommu.c `iommu_unmap`; VT-d `intel_iommu_tlb_sync` →
    /// `cache_tag_flush_range`: a page-selective IOTLB descriptor, IH set as no table was
    /// freed, and an invalidation wait; AMD-Vi `amd_iommu_iotlb_sync` →
    /// `amd_iommu_domain_flush_pages`: INVALIDATE_IOMMU_PAGES and COMPLETION_WAIT). The CPU
    /// that unmaps does it, in the same driver work.
    Strict,
    /// Lazy mode, a flush queue (drivers/iommu/dma-iommu.c `queue_iova`): the unmap clears
    /// PTEs and queues the range; the domain's whole IOTLB is flushed (`fq_flush_iotlb` →
    /// `flush_iotlb_all`) once `entries` ranges are queued, or when the timer started by
    /// the first of them expires (`fq_flush_timeout`). Until then the device can still
    /// reach the unmapped pages through the IOTLB.
    Deferred(FlushQueueSpec),
}

/// Linux's flush-queue size, `IOVA_FQ_SIZE` (renamed `IOVA_DEFAULT_FQ_SIZE` in v6.7),
/// drivers/iommu/dma-iommu.c.
pub const IOVA_FQ_SIZE: u64 = 256;
/// Linux's flush-queue timeout, `IOVA_FQ_TIMEOUT` = 10 ms (`IOVA_DEFAULT_FQ_TIMEOUT` since
/// v6.7), drivers/iommu/dma-iommu.c, in ns.
pub const IOVA_FQ_TIMEOUT_NS: u64 = 10_000_000;
/// The largest queue Linux uses, `IOVA_SINGLE_FQ_SIZE` (one queue shared by all CPUs, for
/// IOMMUs whose invalidation is expensive).
pub const IOVA_SINGLE_FQ_SIZE: u64 = 32_768;
/// The longest timeout Linux uses, `IOVA_SINGLE_FQ_TIMEOUT` = 1000 ms, in ns.
pub const IOVA_SINGLE_FQ_TIMEOUT_NS: u64 = 1_000_000_000;

/// A flush queue's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlushQueueSpec {
    /// From the first range queued to the timer's flush (ns; Linux's `fq_timeout`).
    pub window_ns: Bounded<1, IOVA_SINGLE_FQ_TIMEOUT_NS>,
    /// Ranges queued that make the CPU queueing the last of them flush at once. The model
    /// keeps one queue per domain (Linux's `IOMMU_DMA_OPTS_SINGLE_QUEUE`; its default has
    /// one per CPU, the same with one CPU unmapping) and flushes when it holds `entries`
    /// ranges, so 1 flushes after every unmap, domain-wide.
    pub entries: Bounded<1, IOVA_SINGLE_FQ_SIZE>,
}

impl Default for FlushQueueSpec {
    fn default() -> FlushQueueSpec {
        FlushQueueSpec {
            window_ns: Bounded(IOVA_FQ_TIMEOUT_NS),
            entries: Bounded(IOVA_FQ_SIZE),
        }
    }
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
