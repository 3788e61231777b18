//! `platform.iommu.amdvi`: an AMD IOMMU, its device table and I/O page tables, and who is
//! attached.
//!
//! The host software at boot does what the Linux amd_iommu driver does: it allocates the
//! device table (every DeviceID), the command buffer and the event log from
//! `table_memory`, builds each domain's v1 I/O page tables with CPU stores (flushed when
//! `flush_table_writes` says so), writes each attached device's DTE, programs the base
//! registers and sets Control (IommuEn, EventLogEn, CmdBufEn, Coherent when the unit is).
//! Every leaf gets FC when `force_coherent` is `every_mapping`, as Linux's
//! `iommu_v1_map_pages` does for every domain, in-kernel DMA domains included.
//!
//! A platform may have several IOMMUs (`units`: the IVHD blocks of the ACPI IVRS table, one
//! PCI function each), each with its own capabilities and device scope; without `units` it
//! has one, "iommu0", with every device behind it.

use super::iommu::{FlushPolicy, GeometrySpec, MappingSpec, TableMemorySpec};
use super::units::{Unit, UnitError, UnitSpec, AMDVI};
use super::values::Bounded;
use serde::{Deserialize, Serialize};

/// The AMD IOMMUs of a platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmdviSpec {
    /// Capabilities (`amdvi::regs::Capabilities`; defaults: an EPYC-class unit); with
    /// `units`, the values each unit's `capabilities` is merged over.
    #[serde(default)]
    pub capabilities: amdvi::regs::Capabilities,
    /// The IOMMUs (IVHDs) and the devices behind each (its device scope); absent: one
    /// IOMMU, "iommu0", with `capabilities` and every device. Timing, caches and walk slots
    /// are the same for every IOMMU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<Vec<UnitSpec>>,
    /// The unit's latencies.
    #[serde(default)]
    pub timing: AmdviTimingSpec,
    /// Cache shapes.
    #[serde(default)]
    pub caches: AmdviCachesSpec,
    /// Page walks in flight at once.
    #[serde(default = "default_walks")]
    pub max_walks: Bounded<1, 64>,
    /// Where the driver allocates the device table, page tables, command buffer and event
    /// log (the device table alone takes 2 MiB: 65,536 DeviceIDs × 32 bytes).
    #[serde(default)]
    pub table_memory: TableMemorySpec,
    /// Whether the driver CLFLUSHes table writes: `auto` (when an IOMMU's walks do not
    /// snoop: page tables are shared by every IOMMU a domain spans), `always`, `never`.
    #[serde(default)]
    pub flush_table_writes: FlushPolicy,
    /// `every_mapping`: FC on every leaf, as Linux does (so No Snoop never reaches
    /// memory, even for in-kernel drivers that want it); `per_mapping`: each mapping's
    /// `fc` decides.
    #[serde(default)]
    pub force_coherent: FcPolicy,
    /// Domains: I/O page tables and their mappings.
    #[serde(default)]
    pub domains: Vec<AmdDomainSpec>,
    /// Which device uses which domain.
    #[serde(default)]
    pub attach: Vec<AmdAttachSpec>,
}

fn default_walks() -> Bounded<1, 64> {
    Bounded(4)
}

/// An AMD IOMMU with its capabilities resolved.
pub type AmdUnit = Unit<amdvi::regs::Capabilities>;

impl AmdviSpec {
    /// The IOMMUs, in order, with their capabilities merged and validated; `devices` are
    /// the scenario's device names in scenario order, each of which must be in exactly one
    /// IOMMU's scope.
    pub fn units(&self, devices: &[&str]) -> Result<Vec<AmdUnit>, UnitError> {
        AMDVI.units(&self.capabilities, self.units.as_deref(), devices)
    }
}

/// When leaves get FC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FcPolicy {
    /// Every leaf (Linux `iommu_v1_map_pages`: `IOMMU_PTE_PR | IOMMU_PTE_FC`).
    #[default]
    EveryMapping,
    /// The mapping's `fc` field.
    PerMapping,
    /// Only the leaves of domains where `enforce_cache_coherency()` succeeded (what the
    /// comment in Linux's AMD v1 domain allocator calls for: "Someday FORCE_COHERENCE should
    /// be set by amd_iommu_enforce_cache_coherency() like VT-d does"); needs
    /// `software.semantics` `v5_19`.
    EnforcedDomains,
}

/// Latencies in the unit's clock (defaults: `amdvi::AmdviTiming::default`, assumptions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AmdviTimingSpec {
    /// Clock in MHz.
    pub clock_mhz: Bounded<1, 10_000>,
    /// Request arrival to the DTE-cache / IOTLB answer, in cycles.
    pub lookup_cycles: Bounded<0, 100_000>,
    /// A walk's data arriving to its next read, in cycles.
    pub walk_step_cycles: Bounded<0, 100_000>,
    /// Logging a fault, in cycles.
    pub fault_cycles: Bounded<0, 100_000>,
    /// One command from fetch to completion, in cycles.
    pub command_cycles: Bounded<0, 10_000_000>,
}

impl Default for AmdviTimingSpec {
    fn default() -> AmdviTimingSpec {
        let t = amdvi::AmdviTiming::default();
        AmdviTimingSpec {
            clock_mhz: Bounded(t.clock.khz() / 1000),
            lookup_cycles: Bounded(t.lookup.0),
            walk_step_cycles: Bounded(t.walk_step.0),
            fault_cycles: Bounded(t.fault.0),
            command_cycles: Bounded(t.command.0),
        }
    }
}

/// Cache shapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AmdviCachesSpec {
    /// IOTLB.
    pub iotlb: GeometrySpec,
    /// Device table entry cache.
    pub dte: GeometrySpec,
    /// Each level's page-directory cache.
    pub page_directory: GeometrySpec,
}

impl Default for AmdviCachesSpec {
    fn default() -> AmdviCachesSpec {
        let c = amdvi::AmdviCaches::default();
        let g = |(sets, ways): (usize, usize)| GeometrySpec {
            sets: Bounded(sets as u64),
            ways: Bounded(ways as u64),
        };
        AmdviCachesSpec {
            iotlb: g(c.iotlb),
            dte: g(c.dte),
            page_directory: g(c.pdc),
        }
    }
}

/// How a domain translates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmdDomainKind {
    /// I/O page tables (DTE Mode = `levels`).
    #[default]
    Paged,
    /// No translation (DTE Mode 0; IR/IW still apply).
    PassThrough,
}

/// An AMD-Vi domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmdDomainSpec {
    /// Name, for `attach` and CPU operations.
    pub name: String,
    /// DomainID.
    pub id: Bounded<0, 65_535>,
    /// How it translates.
    #[serde(default)]
    pub kind: AmdDomainKind,
    /// Table levels (DTE Mode): 1 to 6 (Linux uses 3 for small apertures, up to 6).
    #[serde(default = "default_levels")]
    pub levels: Bounded<1, 6>,
    /// Mappings made at boot.
    #[serde(default)]
    pub mappings: Vec<MappingSpec>,
}

fn default_levels() -> Bounded<1, 6> {
    Bounded(4)
}

/// A device's attachment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmdAttachSpec {
    /// The device's name.
    pub device: String,
    /// Its domain.
    pub domain: String,
    /// DTE.I: the device may use ATS (translated requests pass).
    #[serde(default)]
    pub ats: bool,
    /// DTE AttrV + Mode0FC (needs `capabilities.snoop_attr`): a Mode-0 device's accesses
    /// are forced coherent.
    #[serde(default)]
    pub mode0_fc: bool,
}
