//! The AMD-Vi driver's run-time host operations — a program's `attach`, `detach` and raw
//! `pte_update` — as the Linux amd_iommu driver performs them (SPEC-NOTES §4.1, §4.5):
//!
//! - **attach** (`do_attach` → `amd_iommu_dev_update_dte`): the DTE as boot writes it
//!   (`set_dte_entry`), then INVALIDATE_DEVTAB_ENTRY (`device_flush_dte`) and a
//!   COMPLETION_WAIT (`iommu_completion_wait`).
//! - **detach** (`do_detach`): the DTE cleared to V = 1, TV = 0 (`make_clear_dte`: the
//!   device's DMA is blocked), INVALIDATE_DEVTAB_ENTRY, then the old domain's whole IOTLB
//!   (`amd_iommu_domain_flush_all`: INVALIDATE_IOMMU_PAGES of all pages, PDE set) and one
//!   COMPLETION_WAIT for both.
//! - **pte_update**: one 8-byte store over a natural-size leaf; the invalidation is the
//!   program's. A size-encoded page is replicated over several entries, so it is refused.

use super::AmdviHost;
use crate::scenario::amdvi::AmdAttachSpec;
use crate::scenario::PteUpdateOp;
use crate::system::driver::{DriverWork, UnitId};
use amdvi::cmd::Command;
use amdvi::dte::{DeviceTableEntry, DteFields};
use amdvi::pte::{IoPte, NL_SIZED};
use model_core::{Bdf, MemWrite, PhysAddr};

/// Physical addresses a leaf can hold (address field 51:12).
const MAX_PA_BITS: u32 = 52;

impl AmdviHost {
    /// The domain whose DTE `bdf` holds, if it is attached.
    pub fn attached(&self, bdf: Bdf) -> Option<String> {
        self.domains
            .iter()
            .find(|(_, d)| d.devices.iter().any(|&(_, id)| id == bdf.raw()))
            .map(|(n, _)| n.clone())
    }

    /// Linux's AMD driver has no `has_mappings` rule: enforcement never depends on it.
    pub fn has_mappings(&self, _domain: &str) -> bool {
        false
    }

    /// Attaches a detached device: its DTE in the device table of the IOMMU it sits
    /// behind, that IOMMU's DTE invalidation and the wait.
    pub fn attach_device(
        &mut self,
        device: &str,
        bdf: Bdf,
        domain: &str,
    ) -> Result<DriverWork, String> {
        let a = AmdAttachSpec {
            device: device.to_owned(),
            domain: domain.to_owned(),
            ats: false,
            mode0_fc: false,
        };
        let mut writes = Vec::new();
        self.attach(&a, bdf, &|_| Vec::new(), &mut writes)
            .map_err(|e| e.message)?;
        let u = self.device_unit(device)?;
        if let Some(d) = self.domains.get_mut(domain) {
            if let Err(i) = d.units.binary_search(&u) {
                d.units.insert(i, u);
            }
        }
        let device_id = bdf.raw();
        let inv = self.units[u].submit(vec![Command::InvalidateDevtabEntry { device_id }])?;
        Ok(DriverWork {
            writes,
            invalidations: vec![(UnitId(u as u8), inv)],
        })
    }

    /// Blocks a device: the cleared DTE, then its invalidation and the old domain's IOTLB on
    /// the IOMMU it sits behind, and the wait. Nothing for a device that is not attached.
    pub fn detach(&mut self, device: &str, bdf: Bdf) -> Result<DriverWork, String> {
        let device_id = bdf.raw();
        let u = self.device_unit(device)?;
        let Some(d) = self
            .domains
            .values_mut()
            .find(|d| d.devices.contains(&(u, device_id)))
        else {
            return Ok(DriverWork::default());
        };
        d.devices.retain(|&x| x != (u, device_id));
        // The IOMMUs the domain still spans (none: attached nowhere).
        let mut units: Vec<usize> = d.devices.iter().map(|&(u, _)| u).collect();
        units.sort_unstable();
        units.dedup();
        d.units = units;
        let id = d.id;
        let cleared = DeviceTableEntry::new(DteFields {
            v: true,
            ..DteFields::default()
        });
        let mut writes = Vec::new();
        let unit = &mut self.units[u];
        unit.set_dte(device_id, cleared, &mut writes)
            .map_err(|e| e.to_string())?;
        let mut all = Command::linux_inv_iommu_pages(id, 0, u64::MAX);
        if let Command::InvalidateIommuPages { pde, .. } = &mut all {
            *pde = true;
        }
        let inv = unit.submit(vec![Command::InvalidateDevtabEntry { device_id }, all])?;
        Ok(DriverWork {
            writes,
            invalidations: vec![(UnitId(u as u8), inv)],
        })
    }

    /// The IOMMU whose scope holds `device`.
    fn device_unit(&self, device: &str) -> Result<usize, String> {
        self.units
            .index_of(device)
            .ok_or_else(|| format!("device \"{device}\" is in no IOMMU's scope"))
    }

    /// The store that rewrites the leaf mapping `op.iova`; the error names the field.
    pub fn pte_update(
        &mut self,
        op: &PteUpdateOp,
        writes: &mut Vec<MemWrite>,
    ) -> Result<(), (&'static str, String)> {
        if op.snp.is_some() {
            return Err((
                "snp",
                "snp is VT-d's: an AMD-Vi leaf forces coherency with fc".to_owned(),
            ));
        }
        let d = self.domains.get_mut(&op.domain).ok_or_else(|| {
            let m = format!("no domain is named \"{}\"", op.domain);
            ("domain", m)
        })?;
        let Some(t) = d.table.as_mut() else {
            return Err((
                "domain",
                "a pass-through domain has no page tables".to_owned(),
            ));
        };
        let (iova, pa) = (op.iova.0, op.pa.0);
        let (_, size, old) = t.lookup(iova).ok_or_else(|| {
            let m = format!(
                "IOVA {iova:#x} is not mapped in \"{}\": pte_update rewrites an existing leaf",
                op.domain
            );
            ("iova", m)
        })?;
        if old.next_level() == NL_SIZED {
            return Err((
                "iova",
                format!(
                    "IOVA {iova:#x} is in a size-encoded {size}-byte page, replicated over \
                     several entries: pte_update rewrites one 8-byte entry"
                ),
            ));
        }
        if !iova.is_multiple_of(size) {
            return Err((
                "iova",
                format!("IOVA {iova:#x} is inside a {size}-byte page: give its first IOVA"),
            ));
        }
        if !pa.is_multiple_of(size) || pa >> MAX_PA_BITS != 0 {
            return Err((
                "pa",
                format!("{pa:#x} is not a {size}-byte aligned address below 2^{MAX_PA_BITS}"),
            ));
        }
        let pte = IoPte::leaf(
            PhysAddr(pa),
            op.fc.unwrap_or(old.fc()),
            op.read.unwrap_or(old.ir()),
            op.write.unwrap_or(old.iw()),
            old.u(),
        );
        t.set_leaf(iova, size, pte, writes)
            .map_err(|e| ("iova", e.to_string()))?;
        Ok(())
    }
}
