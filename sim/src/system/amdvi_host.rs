//! The host software's side of AMD-Vi: what the Linux amd_iommu driver does with the
//! platform's IOMMUs — the device tables, v1 I/O page tables (FC on every leaf unless the
//! scenario says otherwise), the command buffers with COMPLETION_WAIT, and the event logs.
//!
//! A platform may have several IOMMUs (`amdvi_unit`), each with its own device table,
//! command buffer, event log and completion-wait store. A domain's page table is shared by
//! every IOMMU its devices sit behind, as Linux's `protection_domain` is: each IOMMU's DTE
//! for a device points at it, with the domain's DomainID; an invalidation of a domain goes
//! to each of its IOMMUs (`amd_iommu_domain_flush_pages` loops over `dev_iommu[]`).

mod ops;

use super::amdvi_unit::AmdIommu;
use super::driver::{charge_pages, unmap_pages, HostError, Invalidation, UnitId};
use super::unit_set::UnitSet;
use crate::scenario::amdvi::{AmdAttachSpec, AmdDomainKind, AmdDomainSpec, AmdviSpec, FcPolicy};
use crate::scenario::iommu::{FlushPolicy, MappingSpec};
use crate::scenario::{InvalidateWhat, IommuInvalidateOp, Step};
use amdvi::cmd::Command;
use amdvi::dte::{DeviceTableEntry, DteFields, MODE_NONE};
use amdvi::pte::IoPerm;
use amdvi::regs::Capabilities;
use amdvi::tables::{IoPageTable, TableAllocator, TableError};
use model_core::{Bdf, MemWrite, PhysAddr};
use std::collections::{BTreeMap, BTreeSet};
use vtd::entry::PageSize;

fn k(s: &str) -> Step {
    Step::Key(s.to_owned())
}

fn path(rest: &[Step]) -> Vec<Step> {
    let mut v = vec![k("platform"), k("iommu"), k("amdvi")];
    v.extend_from_slice(rest);
    v
}

fn at(steps: Vec<Step>, message: impl Into<String>) -> HostError {
    HostError {
        steps,
        message: message.into(),
    }
}

#[derive(Debug, Clone)]
struct Domain {
    id: u16,
    table: Option<IoPageTable>,
    /// The attached devices: the IOMMU each sits behind and its DeviceID, in attach order.
    devices: Vec<(usize, u16)>,
    /// The IOMMUs its devices sit behind, ascending; empty while no device is attached.
    units: Vec<usize>,
}

/// The driver state of the platform's AMD IOMMUs.
#[derive(Debug, Clone)]
pub struct AmdviHost {
    /// The IOMMUs, in scenario order, and the IOMMU each device sits behind.
    pub(super) units: UnitSet<AmdIommu>,
    alloc: TableAllocator,
    domains: BTreeMap<String, Domain>,
    /// CLFLUSH every table write.
    pub flush: bool,
    fc: FcPolicy,
    /// Pages mapped so far (bounded by `driver::MAX_MAPPED_PAGES`).
    mapped_pages: u64,
}

impl AmdviHost {
    /// Builds every IOMMU's device table, command buffer and event log and every domain's
    /// tables for the named devices (in scenario order); returns the driver and the
    /// boot-time memory writes, in order.
    pub fn boot(
        spec: &AmdviSpec,
        devices: &[(String, Bdf)],
    ) -> Result<(AmdviHost, Vec<MemWrite>), HostError> {
        let names: Vec<&str> = devices.iter().map(|(n, _)| n.as_str()).collect();
        let units = spec.units(&names).map_err(|(steps, m)| at(steps, m))?;
        let devices: BTreeMap<&str, Bdf> = devices.iter().map(|(n, b)| (n.as_str(), *b)).collect();
        // Page tables are shared between IOMMUs, so one whose walks do not snoop makes the
        // driver flush every table write.
        let flush = units.iter().any(|u| match spec.flush_table_writes {
            FlushPolicy::Auto => !u.capabilities.coherent,
            FlushPolicy::Always => true,
            FlushPolicy::Never => false,
        });
        let tm = &spec.table_memory;
        let mem_err = |e: TableError| at(path(&[k("table_memory")]), e.to_string());
        let alloc =
            TableAllocator::new(PhysAddr(tm.base.0), tm.bytes.0).map_err(|e| mem_err(e.into()))?;
        let mut host = AmdviHost {
            units: UnitSet::with_capacity(units.len()),
            alloc,
            domains: BTreeMap::new(),
            flush,
            fc: spec.force_coherent,
            mapped_pages: 0,
        };
        // Each IOMMU's device table, command buffer, event log and store, IOMMU by IOMMU.
        for unit in &units {
            let iommu =
                AmdIommu::new(&unit.name, &unit.capabilities, &mut host.alloc).map_err(mem_err)?;
            host.units.push(iommu, &unit.devices);
        }
        let mut out = Vec::new();
        for (i, d) in spec.domains.iter().enumerate() {
            let units = host.planned_units(spec, &d.name);
            host.add_domain(i, d, units, &mut out)?;
        }
        for (i, a) in spec.attach.iter().enumerate() {
            let here = |rest: &[Step]| {
                let mut p = vec![k("attach"), Step::Index(i)];
                p.extend_from_slice(rest);
                path(&p)
            };
            let bdf = *devices.get(a.device.as_str()).ok_or_else(|| {
                at(
                    here(&[k("device")]),
                    format!("no device is named \"{}\"", a.device),
                )
            })?;
            host.attach(a, bdf, &here, &mut out)?;
        }
        Ok((host, out))
    }

    /// The IOMMUs behind which `domain`'s devices will sit, ascending.
    fn planned_units(&self, spec: &AmdviSpec, domain: &str) -> Vec<usize> {
        let set: BTreeSet<usize> = spec
            .attach
            .iter()
            .filter(|a| a.domain == domain)
            .filter_map(|a| self.units.index_of(&a.device))
            .collect();
        set.into_iter().collect()
    }

    /// Whether a domain fits one IOMMU's capabilities; the field and what is wrong if not.
    fn domain_fits(caps: &Capabilities, d: &AmdDomainSpec) -> Result<(), (&'static str, String)> {
        if u64::from(caps.domains) <= d.id.0 {
            return Err((
                "id",
                format!(
                    "DomainID {} is beyond the {} domains of the unit",
                    d.id.0, caps.domains
                ),
            ));
        }
        let levels = d.levels.0 as u8;
        if levels > caps.levels {
            return Err((
                "levels",
                format!(
                    "{levels} levels exceed what the unit walks (capabilities.levels = {}, EFR.HATS)",
                    caps.levels
                ),
            ));
        }
        Ok(())
    }

    fn add_domain(
        &mut self,
        i: usize,
        d: &AmdDomainSpec,
        units: Vec<usize>,
        out: &mut Vec<MemWrite>,
    ) -> Result<(), HostError> {
        let here = |rest: &[Step]| {
            let mut p = vec![k("domains"), Step::Index(i)];
            p.extend_from_slice(rest);
            path(&p)
        };
        if self.domains.contains_key(&d.name) {
            return Err(at(
                here(&[k("name")]),
                format!("domain name \"{}\" is used twice", d.name),
            ));
        }
        for u in self.units.units_of(&units) {
            Self::domain_fits(&self.units[u].caps, d)
                .map_err(|(field, m)| at(here(&[k(field)]), self.units.qualify(u, m)))?;
        }
        let mem_err = |e: TableError| at(path(&[k("table_memory")]), e.to_string());
        let table = match d.kind {
            AmdDomainKind::Paged => {
                Some(IoPageTable::new(&mut self.alloc, d.levels.0 as u8).map_err(mem_err)?)
            }
            AmdDomainKind::PassThrough => None,
        };
        let dom = Domain {
            id: d.id.0 as u16,
            table,
            devices: Vec::new(),
            units,
        };
        self.domains.insert(d.name.clone(), dom);
        for (j, m) in d.mappings.iter().enumerate() {
            self.map(&d.name, m, out)
                .map_err(|msg| at(here(&[k("mappings"), Step::Index(j)]), msg))?;
        }
        Ok(())
    }

    fn attach(
        &mut self,
        a: &AmdAttachSpec,
        bdf: Bdf,
        here: &dyn Fn(&[Step]) -> Vec<Step>,
        out: &mut Vec<MemWrite>,
    ) -> Result<(), HostError> {
        // Every device is in one IOMMU's scope (checked with the units).
        let u = self
            .units
            .index_of(&a.device)
            .ok_or_else(|| at(here(&[k("device")]), "the device is in no IOMMU's scope"))?;
        if a.mode0_fc && !self.units[u].caps.snoop_attr {
            let m = "mode0_fc needs capabilities.snoop_attr (the DTE AttrV/Mode0FC fields)";
            let m = self.units.qualify(u, m.to_owned());
            return Err(at(here(&[k("mode0_fc")]), m));
        }
        let unit = &mut self.units[u];
        let d = self.domains.get_mut(&a.domain).ok_or_else(|| {
            at(
                here(&[k("domain")]),
                format!("no domain is named \"{}\"", a.domain),
            )
        })?;
        let (mode, root) = match &d.table {
            Some(t) => (t.levels(), t.root()),
            None => (MODE_NONE, PhysAddr(0)),
        };
        // Linux set_dte_entry: V, TV, IR, IW, Mode, root, DomainID; I when ATS is on.
        let e = DeviceTableEntry::new(DteFields {
            v: true,
            tv: true,
            mode,
            pt_root: root,
            ir: true,
            iw: true,
            domain_id: d.id,
            i: a.ats,
            attr_v: a.mode0_fc,
            mode0_fc: a.mode0_fc,
            ..DteFields::default()
        });
        d.devices.push((u, bdf.raw()));
        unit.set_dte(bdf.raw(), e, out)
            .map_err(|e| at(here(&[]), e.to_string()))?;
        Ok(())
    }

    /// Maps a range into a domain.
    pub fn map(
        &mut self,
        domain: &str,
        m: &MappingSpec,
        out: &mut Vec<MemWrite>,
    ) -> Result<(), String> {
        let fc = match self.fc {
            FcPolicy::EveryMapping => true,
            // The domain API decided FC for these (`domain_api`).
            FcPolicy::PerMapping | FcPolicy::EnforcedDomains => m.fc,
        };
        if m.snp {
            return Err("snp is VT-d's; an AMD-Vi mapping forces coherency with fc".to_owned());
        }
        let d = self
            .domains
            .get_mut(domain)
            .ok_or_else(|| format!("no domain is named \"{domain}\""))?;
        let Some(t) = d.table.as_mut() else {
            return Err("a pass-through domain has no page tables to map".to_owned());
        };
        let page = match m.page_bytes {
            Some(b) if b.0.is_power_of_two() => b.0,
            Some(b) => return Err(format!("page_bytes {} is not a power of two", b.0)),
            None => PageSize::from(m.page).bytes(),
        };
        if !m.iova.0.is_multiple_of(page)
            || !m.pa.0.is_multiple_of(page)
            || !m.bytes.0.is_multiple_of(page)
        {
            return Err(format!(
                "iova {}, pa {} and bytes {} must be multiples of the {page}-byte page",
                m.iova, m.pa, m.bytes.0
            ));
        }
        if !m.read && !m.write {
            // Linux iommu_v1_map_pages: -EINVAL without IOMMU_READ or IOMMU_WRITE.
            return Err("a mapping needs read or write permission".to_owned());
        }
        let last = |base: u64| base.checked_add(m.bytes.0 - 1);
        if last(m.iova.0).is_none() || last(m.pa.0).is_none() {
            return Err(format!(
                "iova {} or pa {} plus {} bytes runs past the 64-bit address space",
                m.iova, m.pa, m.bytes.0
            ));
        }
        let perm = IoPerm {
            ir: m.read,
            iw: m.write,
            fc,
            u: false,
        };
        charge_pages(&mut self.mapped_pages, m.bytes.0 / page)?;
        for n in 0..m.bytes.0 / page {
            t.map(
                &mut self.alloc,
                m.iova.0 + n * page,
                PhysAddr(m.pa.0 + n * page),
                page,
                perm,
                out,
            )
            .map_err(|e| e.to_string())?;
        }
        Ok(())
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
        let d = self
            .domains
            .get_mut(domain)
            .ok_or_else(|| format!("no domain is named \"{domain}\""))?;
        let Some(t) = d.table.as_mut() else {
            return Err("a pass-through domain has no page tables".to_owned());
        };
        let page = unmap_pages(iova, bytes, size)?;
        for n in 0..bytes / page {
            t.unmap(iova + n * page, page, out)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Whether a domain exists.
    pub fn has_domain(&self, name: &str) -> bool {
        self.domains.contains_key(name)
    }

    /// The commands an invalidation operation stands for on IOMMU `u` (Linux amd_iommu:
    /// domain flushes with `build_inv_iommu_pages`, DTE flushes for the devices behind
    /// `u`, INVALIDATE_IOMMU_ALL).
    pub fn commands(&self, op: &IommuInvalidateOp, u: usize) -> Result<Vec<Command>, String> {
        let domain = match &op.domain {
            Some(n) => Some(
                self.domains
                    .get(n)
                    .ok_or_else(|| format!("no domain is named \"{n}\""))?,
            ),
            None => None,
        };
        let devtab = |d: &Domain| {
            d.devices
                .iter()
                .filter(|&&(unit, _)| unit == u)
                .map(|&(_, device_id)| Command::InvalidateDevtabEntry { device_id })
                .collect::<Vec<_>>()
        };
        Ok(match (op.what, domain) {
            (InvalidateWhat::Iotlb, Some(d)) => {
                let (address, size) = match op.iova {
                    Some(a) => (a.0, op.bytes.map_or(4096, |b| b.0)),
                    None => (0, u64::MAX),
                };
                let mut c = Command::linux_inv_iommu_pages(d.id, address, size);
                if let Command::InvalidateIommuPages { pde, .. } = &mut c {
                    *pde = !op.leaf_only;
                }
                vec![c]
            }
            (InvalidateWhat::Context, Some(d)) => devtab(d),
            (InvalidateWhat::Context, None) => self.domains.values().flat_map(devtab).collect(),
            (InvalidateWhat::Iotlb | InvalidateWhat::All, _) => vec![Command::InvalidateIommuAll],
            (InvalidateWhat::PasidCache | InvalidateWhat::PasidIotlb, _) => {
                return Err("PASID-cache and PASID-IOTLB invalidations are VT-d's".to_owned())
            }
        })
    }

    /// The IOMMUs an invalidation goes to: every IOMMU for a global one; for a domain's,
    /// the IOMMUs it is attached to (Linux `amd_iommu_domain_flush_pages` loops over the
    /// domain's `dev_iommu[]`), or every IOMMU while it is attached to none.
    fn targets(&self, op: &IommuInvalidateOp) -> Result<Vec<usize>, String> {
        let Some(name) = op.domain.as_deref() else {
            return Ok(self.units.all());
        };
        let d = self
            .domains
            .get(name)
            .ok_or_else(|| format!("no domain is named \"{name}\""))?;
        Ok(self.units.units_of(&d.units))
    }

    /// What the driver writes for an invalidation, IOMMU by IOMMU: the commands and a
    /// COMPLETION_WAIT on each IOMMU the operation concerns, each with its own tail
    /// doorbell and store.
    pub fn invalidate(
        &mut self,
        op: &IommuInvalidateOp,
    ) -> Result<Vec<(UnitId, Invalidation)>, String> {
        let mut v = Vec::new();
        for u in self.targets(op)? {
            let cmds = self.commands(op, u)?;
            let inv = self.units[u].submit(cmds);
            let inv = inv.map_err(|m| self.units.qualify(u, m))?;
            v.push((UnitId(u as u8), inv));
        }
        Ok(v)
    }
}
