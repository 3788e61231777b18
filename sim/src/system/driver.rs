//! The IOMMU driver as the CPU programs see it, whichever vendor's unit sits in the
//! platform: map and unmap a domain's pages, invalidate, and the register writes of boot.
//! Each vendor's driver (`vtd_host`, `amdvi_host`) turns these into its own table writes,
//! descriptors or commands.

use super::amdvi_host::AmdviHost;
use super::vtd_host::VtdHost;
use crate::scenario::iommu::MappingSpec;
use crate::scenario::{IommuInvalidateOp, Step};
use model_core::{MemWrite, PhysAddr};
use vtd::entry::PageSize;

/// Most pages a scenario's drivers map (boot and run time together): each is a table write
/// the CPU performs through the caches, so this bounds the memory and time a scenario can
/// ask for (16 GiB in 4 KiB pages; larger pages go further).
pub const MAX_MAPPED_PAGES: u64 = 1 << 22;

/// Counts `n` more mapped pages against [`MAX_MAPPED_PAGES`].
pub fn charge_pages(mapped: &mut u64, n: u64) -> Result<(), String> {
    let total = mapped.saturating_add(n);
    if total > MAX_MAPPED_PAGES {
        return Err(format!(
            "{total} pages mapped in all: at most {MAX_MAPPED_PAGES} (each is a table write the \
             CPU performs); map with larger pages"
        ));
    }
    *mapped = total;
    Ok(())
}

/// A refusal, located in the scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError {
    /// Path into the scenario.
    pub steps: Vec<Step>,
    /// What is wrong and what was expected.
    pub message: String,
}

/// An IOMMU unit of the platform, by its index: `platform.iommu.vtd.units` order (AMD-Vi
/// and "none" have one unit, 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnitId(pub u8);

impl UnitId {
    /// Index into the platform's units.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// What an invalidation asks of the system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// Queued: write the descriptors or commands (CPU stores), then the tail register;
    /// the unit writes `data` to `status` when they are done (VT-d invalidation wait,
    /// AMD-Vi COMPLETION_WAIT), and the CPU spins on it.
    Queued {
        /// Descriptor writes.
        writes: Vec<MemWrite>,
        /// The tail register and its new value.
        doorbell: (u32, u64),
        /// The status word.
        status: PhysAddr,
        /// The value it will hold (its low `width` bytes).
        data: u64,
        /// Bytes of the status word: 4 (VT-d) or 8 (AMD-Vi).
        width: u8,
    },
    /// Register-based: write these registers in order, then poll `poll` until `busy`
    /// clears.
    Register {
        /// (offset, value) writes.
        writes: Vec<(u32, u64)>,
        /// The register to poll.
        poll: u32,
        /// Its busy bit.
        busy: u64,
    },
}

/// The driver of the platform's IOMMU.
#[derive(Debug, Clone)]
pub enum Driver {
    /// Intel VT-d.
    Vtd(VtdHost),
    /// AMD-Vi.
    Amdvi(AmdviHost),
}

impl Driver {
    /// Whether table writes are CLFLUSHed (the platform's policy).
    pub fn flush(&self) -> bool {
        match self {
            Driver::Vtd(h) => h.flush,
            Driver::Amdvi(h) => h.flush,
        }
    }

    /// Maps a range into a domain.
    pub fn map(
        &mut self,
        domain: &str,
        m: &MappingSpec,
        out: &mut Vec<MemWrite>,
    ) -> Result<(), String> {
        match self {
            Driver::Vtd(h) => h.map(domain, m, out),
            Driver::Amdvi(h) => h.map(domain, m, out),
        }
    }

    /// Unmaps a range of a domain.
    pub fn unmap(
        &mut self,
        domain: &str,
        iova: u64,
        bytes: u64,
        size: PageSize,
        out: &mut Vec<MemWrite>,
    ) -> Result<(), String> {
        match self {
            Driver::Vtd(h) => h.unmap(domain, iova, bytes, size, out),
            Driver::Amdvi(h) => h.unmap(domain, iova, bytes, size, out),
        }
    }

    /// What an invalidation operation writes and waits for, unit by unit: one submission
    /// (and its wait) to each unit the operation's domain is attached to, as Linux's
    /// `iommu_flush_iotlb_psi` loops over a domain's units; a global one goes to every unit.
    pub fn invalidate(
        &mut self,
        op: &IommuInvalidateOp,
    ) -> Result<Vec<(UnitId, Invalidation)>, String> {
        match self {
            Driver::Vtd(h) => h.invalidate(op),
            Driver::Amdvi(h) => Ok(vec![(UnitId(0), h.invalidate(op)?)]),
        }
    }

    /// The register writes of boot, in order: each unit's `(unit, offset, value)`.
    pub fn boot_registers(&self) -> Vec<(UnitId, u32, u64)> {
        match self {
            Driver::Vtd(h) => h.boot_registers(),
            Driver::Amdvi(h) => h
                .boot_registers()
                .into_iter()
                .map(|(o, v)| (UnitId(0), o, v))
                .collect(),
        }
    }

    /// Whether a domain of this name exists.
    pub fn has_domain(&self, name: &str) -> bool {
        match self {
            Driver::Vtd(h) => h.domain_id(name).is_some(),
            Driver::Amdvi(h) => h.has_domain(name),
        }
    }
}
