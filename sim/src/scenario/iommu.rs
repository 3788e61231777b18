//! `platform.iommu.vtd`: an Intel VT-d remapping unit, its tables and who is attached.
//!
//! The unit's capabilities are `vtd::regs::Capabilities` field by field (every field has
//! the default of a Skylake-SP server unit). The host software at boot does what the Linux
//! intel-iommu driver does: it allocates root, context, PASID and page tables from
//! `table_memory`, writes them with ordinary CPU stores (so they sit in the CPU caches),
//! flushes each write when `flush_table_writes` says so (Linux `__iommu_flush_cache`:
//! only when ECAP.C is clear), programs RTADDR, enables queued invalidation and turns
//! translation on. Mappings may change at run time through CPU program operations
//! (`iommu_map`, `iommu_unmap`, `iommu_invalidate`).
//!
//! A platform may have several remapping units (`units`: the DRHD structures of the ACPI
//! DMAR table), each with its own capabilities and device scope; without `units` it has
//! one, "dmar0", with every device behind it.

use super::values::{Bounded, HexAddr};
use serde::{Deserialize, Serialize};

/// An Intel VT-d unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VtdSpec {
    /// CAP/ECAP and the host address width; with `units`, the values each unit's
    /// `capabilities` is merged over.
    #[serde(default)]
    pub capabilities: vtd::regs::Capabilities,
    /// The remapping units (DMAR DRHDs) and the devices behind each (its device scope);
    /// absent: one unit, "dmar0", with `capabilities` and every device. Timing, caches,
    /// walk slots, table mode and invalidation interface are the same for every unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<Vec<UnitSpec>>,
    /// Legacy (root → context → second level) or scalable mode (root → context → PASID
    /// directory → PASID entry → first/second level). Scalable needs
    /// `capabilities.scalable_mode`.
    #[serde(default)]
    pub mode: TableMode,
    /// The unit's latencies.
    #[serde(default)]
    pub timing: VtdTimingSpec,
    /// Cache shapes.
    #[serde(default)]
    pub caches: VtdCachesSpec,
    /// Page walks in flight at once.
    #[serde(default = "default_walks")]
    pub max_walks: Bounded<1, 64>,
    /// Where the host software allocates translation tables and the invalidation queue.
    #[serde(default)]
    pub table_memory: TableMemorySpec,
    /// Whether the host software CLFLUSHes each table write: `auto` (when the walks do not
    /// snoop: ECAP.C clear in legacy mode, ECAP.SMPWC clear in scalable mode, as Linux's
    /// `iommu_paging_structure_coherency` decides), `always`, or `never` (the bug that leaves a non-coherent
    /// walker reading stale entries from DRAM).
    #[serde(default)]
    pub flush_table_writes: FlushPolicy,
    /// How the host software invalidates: `queued` (descriptors + invalidation wait; needs
    /// `capabilities.queued_invalidation`) or `register` (CCMD / IOTLB_REG, polling).
    #[serde(default)]
    pub invalidation: InvalidationVia,
    /// Translation domains: page tables and their mappings.
    #[serde(default)]
    pub domains: Vec<DomainSpec>,
    /// Which device uses which domain.
    #[serde(default)]
    pub attach: Vec<AttachSpec>,
}

fn default_walks() -> Bounded<1, 64> {
    Bounded(4)
}

pub use super::units::{UnitError, UnitSpec, MAX_UNITS};

/// A VT-d unit with its capabilities resolved.
pub type VtdUnit = super::units::Unit<vtd::regs::Capabilities>;

impl VtdSpec {
    /// The units, in order, with their capabilities merged and validated; `devices` are
    /// the scenario's device names in scenario order, each of which must be in exactly one
    /// unit's scope.
    pub fn units(&self, devices: &[&str]) -> Result<Vec<VtdUnit>, UnitError> {
        super::units::VTD.units(&self.capabilities, self.units.as_deref(), devices)
    }
}

/// Table format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableMode {
    /// Legacy root and context entries (§3.4.1).
    #[default]
    Legacy,
    /// Scalable-mode root, context and PASID structures (§3.4.2).
    Scalable,
}

/// When the host software flushes table writes from the CPU caches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlushPolicy {
    /// Only when the walker does not snoop (ECAP.C = 0), like Linux.
    #[default]
    Auto,
    /// After every table write.
    Always,
    /// Never.
    Never,
}

/// Invalidation interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidationVia {
    /// Queued invalidation.
    #[default]
    Queued,
    /// Register-based invalidation.
    Register,
}

/// The unit's latencies, in its own clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VtdTimingSpec {
    /// The unit's clock in MHz.
    pub clock_mhz: Bounded<1, 10_000>,
    /// Request arrival to the IOTLB / context-cache answer, in cycles.
    pub lookup_cycles: Bounded<0, 100_000>,
    /// Between a walk's table data arriving and its next read, in cycles.
    pub walk_step_cycles: Bounded<0, 100_000>,
    /// Logging a fault, in cycles.
    pub fault_cycles: Bounded<0, 100_000>,
    /// One invalidation from fetch to completion, in cycles.
    pub invalidation_cycles: Bounded<0, 10_000_000>,
}

impl Default for VtdTimingSpec {
    /// `vtd::VtdTiming::default` (assumptions; see there).
    fn default() -> VtdTimingSpec {
        let t = vtd::VtdTiming::default();
        VtdTimingSpec {
            clock_mhz: Bounded(t.clock.khz() / 1000),
            lookup_cycles: Bounded(t.lookup.0),
            walk_step_cycles: Bounded(t.walk_step.0),
            fault_cycles: Bounded(t.fault.0),
            invalidation_cycles: Bounded(t.invalidation.0),
        }
    }
}

/// One cache's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeometrySpec {
    /// Sets (a power of two).
    pub sets: Bounded<1, 65_536>,
    /// Ways per set.
    pub ways: Bounded<1, 64>,
}

impl From<vtd::Geometry> for GeometrySpec {
    fn from(g: vtd::Geometry) -> GeometrySpec {
        GeometrySpec {
            sets: Bounded(g.sets as u64),
            ways: Bounded(g.ways as u64),
        }
    }
}

/// Cache shapes (defaults: `vtd::CacheConfig::default`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VtdCachesSpec {
    /// IOTLB.
    pub iotlb: GeometrySpec,
    /// One IOTLB array per page size instead of one shared array.
    pub iotlb_split_by_size: bool,
    /// Context cache.
    pub context: GeometrySpec,
    /// PASID cache.
    pub pasid: GeometrySpec,
    /// Each level's paging-structure cache.
    pub paging_structure: GeometrySpec,
}

impl Default for VtdCachesSpec {
    fn default() -> VtdCachesSpec {
        let c = vtd::CacheConfig::default();
        VtdCachesSpec {
            iotlb: c.iotlb.into(),
            iotlb_split_by_size: c.iotlb_split_by_size,
            context: c.context.into(),
            pasid: c.pasid.into(),
            paging_structure: c.psc.into(),
        }
    }
}

/// Physical memory the host software takes translation structures from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TableMemorySpec {
    /// First byte (4 KiB aligned).
    pub base: HexAddr,
    /// Bytes (a multiple of 4 KiB).
    pub bytes: Bounded<8192, { 1 << 40 }>,
}

impl Default for TableMemorySpec {
    /// 16 MiB at 3 GiB: out of the way of the small addresses scenarios use for buffers.
    fn default() -> TableMemorySpec {
        TableMemorySpec {
            base: HexAddr(0xc000_0000),
            bytes: Bounded(16 << 20),
        }
    }
}

/// How a domain translates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DomainKind {
    /// Second-level tables (legacy mode, or PGTT = 2).
    #[default]
    SecondLevel,
    /// First-level IA-32e tables (scalable mode, PGTT = 1).
    FirstLevel,
    /// First-level tables whose addresses go through the `parent` domain's second-level
    /// tables (scalable mode, PGTT = 3).
    Nested,
    /// No translation (legacy TT = 2, or PGTT = 4).
    PassThrough,
}

/// A translation domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSpec {
    /// Name, for `attach` and CPU operations.
    pub name: String,
    /// Domain id (DID), below the CAP.ND limit.
    pub id: Bounded<0, 65_535>,
    /// How it translates.
    #[serde(default)]
    pub kind: DomainKind,
    /// Table levels: 3, 4 or 5 (second level: a SAGAW level; first level: 4 or 5).
    #[serde(default = "default_levels")]
    pub levels: Bounded<3, 5>,
    /// Scalable mode: the PASID entry's PGSNP (every access snooped).
    #[serde(default)]
    pub pgsnp: bool,
    /// Nested: the second-level domain the first-level output and tables go through.
    #[serde(default)]
    pub parent: Option<String>,
    /// Mappings made at boot.
    #[serde(default)]
    pub mappings: Vec<MappingSpec>,
}

fn default_levels() -> Bounded<3, 5> {
    Bounded(4)
}

/// Page size of a mapping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PageSpec {
    /// 4 KiB.
    #[default]
    #[serde(rename = "4k")]
    Size4K,
    /// 2 MiB (CAP.SLLPS bit 0 / first-level PS at the PDE).
    #[serde(rename = "2m")]
    Size2M,
    /// 1 GiB (CAP.SLLPS bit 1 / CAP.FL1GP).
    #[serde(rename = "1g")]
    Size1G,
}

impl From<PageSpec> for vtd::entry::PageSize {
    fn from(p: PageSpec) -> vtd::entry::PageSize {
        match p {
            PageSpec::Size4K => vtd::entry::PageSize::Size4K,
            PageSpec::Size2M => vtd::entry::PageSize::Size2M,
            PageSpec::Size1G => vtd::entry::PageSize::Size1G,
        }
    }
}

/// A range of IOVA mapped to physical memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingSpec {
    /// First IOVA (page aligned).
    pub iova: HexAddr,
    /// First physical address (page aligned).
    pub pa: HexAddr,
    /// Bytes (a multiple of the page size).
    pub bytes: Bounded<1, { 1 << 46 }>,
    /// Page size.
    #[serde(default)]
    pub page: PageSpec,
    /// Reads allowed.
    #[serde(default = "yes")]
    pub read: bool,
    /// Writes allowed.
    #[serde(default = "yes")]
    pub write: bool,
    /// Second level: the leaf's SNP bit, written as given when `software.semantics` is
    /// `none`; otherwise the domain API decides it.
    #[serde(default)]
    pub snp: bool,
    /// The map call's IOMMU_CACHE: the device's normal DMA is coherent with the CPU caches
    /// (the DMA API sets it for coherent devices, VFIO for every map). Used when
    /// `software.semantics` is not `none`.
    #[serde(default = "yes")]
    pub cache: bool,
    /// First level: user pages (U/S = 1).
    #[serde(default = "yes")]
    pub user: bool,
    /// First level: execute disable (XD).
    #[serde(default)]
    pub xd: bool,
    /// AMD-Vi: the leaf's FC (force coherent), when the platform's `force_coherent` is
    /// `per_mapping`.
    #[serde(default)]
    pub fc: bool,
    /// AMD-Vi: a page size other than 4k/2m/1g (a power of two from 8 KiB, mapped with
    /// size-encoded leaves); overrides `page`.
    #[serde(default)]
    pub page_bytes: Option<Bounded<4096, { 1 << 51 }>>,
}

fn yes() -> bool {
    true
}

/// A device's attachment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachSpec {
    /// The device's name.
    pub device: String,
    /// The domain requests without PASID use.
    pub domain: String,
    /// Legacy mode: also allow ATS-translated requests (context TT = 1, needs
    /// ECAP.DT); scalable mode: the context entry's DTE.
    #[serde(default)]
    pub device_tlb: bool,
    /// Fault Processing Disable: faults are blocked but not recorded.
    #[serde(default)]
    pub fpd: bool,
    /// Scalable mode: further PASIDs and their domains (sets PASIDE).
    #[serde(default)]
    pub pasids: Vec<PasidAttachSpec>,
    /// With `software.semantics`: the device joins its domains after the boot mappings
    /// were made (VFIO attaches a second group to a container's existing domain), so the
    /// domain API decided those mappings without its unit. Entries without it attach
    /// first, in list order, and the boot mappings follow them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after_maps: bool,
}

/// One PASID of a device (scalable mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasidAttachSpec {
    /// The PASID (1 .. 2^20 − 1; 0 is the RID_PASID of requests without PASID).
    pub pasid: Bounded<1, 0xf_ffff>,
    /// Its domain.
    pub domain: String,
}
