//! The host software's side of VT-d: what the Linux intel-iommu driver does with the unit.
//!
//! It owns the table builder (`vtd::tables`), turns scenario domains, attachments and
//! run-time map/unmap/invalidate operations into the memory writes and register writes the
//! driver would make, and leaves performing them (CPU stores through the caches, CLFLUSH,
//! MMIO) to the system. Every refusal names the scenario path it came from, so the same
//! code checks a scenario at load time and builds it at run time.
//!
//! A platform may have several units (`vtd_unit`), each with its own root and context
//! tables and invalidation queue. A domain's page tables are shared by every unit its
//! devices sit behind, as Linux's `dmar_domain` is: each unit's context entry for a device
//! points at them, tagged with the domain's id (one DID per unit, the same number in each);
//! an invalidation of a domain goes to each of its units.

use super::driver::{charge_pages, unmap_pages, HostError};
use super::unit_set::UnitSet;
use super::vtd_unit::DmarUnit;
use crate::scenario::iommu::{
    AttachSpec, DomainKind, DomainSpec, FlushPolicy, InvalidationVia, MappingSpec, TableMode,
    VtdSpec,
};
use crate::scenario::Step;
use model_core::{Bdf, PhysAddr};
use std::collections::{BTreeMap, BTreeSet};
use vtd::entry::{
    ContextEntry, ContextFields, FlPerm, PageSize, PasidEntry, PasidFields, Pgtt,
    ScalableContextEntry, ScalableContextFields, SlPerm, TranslationType,
};
use vtd::regs::Capabilities;
use vtd::tables::{ContextTables, FlTables, MemWrite, SlTables, TableAllocator, TableError};

/// PASIDs below this fit a PASID directory of 2^(PDTS + 7) entries of 64 PASIDs each:
/// PDTS = 0 covers PASID 0..8191 (§9.4).
const PASIDS_PER_DIR_ENTRY: u32 = 64;

fn at(steps: Vec<Step>, message: impl Into<String>) -> HostError {
    HostError {
        steps,
        message: message.into(),
    }
}

fn k(s: &str) -> Step {
    Step::Key(s.to_owned())
}

/// Path of `platform.iommu.vtd` plus `rest`.
fn vtd_path(rest: &[Step]) -> Vec<Step> {
    let mut v = vec![k("platform"), k("iommu"), k("vtd")];
    v.extend_from_slice(rest);
    v
}

/// One domain's tables.
#[derive(Debug, Clone)]
pub(super) struct Domain {
    pub(super) id: u16,
    pub(super) kind: DomainKind,
    pub(super) levels: u8,
    pub(super) pgsnp: bool,
    pub(super) sl: Option<SlTables>,
    pub(super) fl: Option<FlTables>,
    /// Nested: the parent's second-level table root and levels.
    pub(super) parent: Option<(PhysAddr, u8)>,
    /// Nested: the parent forces snooping (Linux intel_pasid_setup_nested takes PGSNP from
    /// the second-stage parent's force_snooping).
    parent_pgsnp: bool,
    /// The units its devices sit behind (by RID or PASID), ascending; empty while no
    /// device is attached.
    pub(super) units: Vec<usize>,
    /// A map was ever made in it (Linux `dmar_domain->has_mappings`, never cleared).
    pub(super) has_mappings: bool,
}

/// A device's requests without PASID and the domain they use (its context entry, or its
/// RID_PASID entry in scalable mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RidAttachment {
    pub(super) domain: String,
    pub(super) bdf: Bdf,
    pub(super) fpd: bool,
}

/// The driver state of the platform's VT-d units.
#[derive(Debug, Clone)]
pub struct VtdHost {
    /// The units, in scenario order, and the unit each device sits behind.
    pub(super) units: UnitSet<DmarUnit>,
    pub(super) alloc: TableAllocator,
    pub(super) domains: BTreeMap<String, Domain>,
    /// Each attached device's requests without PASID, by device name.
    pub(super) rid: BTreeMap<String, RidAttachment>,
    /// The domains each device reaches through further PASIDs (scalable mode).
    pub(super) pasid_domains: BTreeMap<String, Vec<String>>,
    /// CLFLUSH every table write.
    pub flush: bool,
    /// Pages mapped so far (bounded by `driver::MAX_MAPPED_PAGES`).
    mapped_pages: u64,
}

impl VtdHost {
    /// Builds every table of `spec` for the named devices (in scenario order); returns the
    /// driver and the memory writes of boot, in order.
    pub fn boot(
        spec: &VtdSpec,
        devices: &[(String, Bdf)],
    ) -> Result<(VtdHost, Vec<MemWrite>), HostError> {
        let names: Vec<&str> = devices.iter().map(|(n, _)| n.as_str()).collect();
        let units = spec.units(&names).map_err(|(steps, m)| at(steps, m))?;
        let devices: BTreeMap<&str, Bdf> = devices.iter().map(|(n, b)| (n.as_str(), *b)).collect();
        let scalable = spec.mode == TableMode::Scalable;
        let mut flush = false;
        for unit in &units {
            let caps = &unit.capabilities;
            // A unit's name prefixes its refusals when there are several.
            let who = if units.len() > 1 {
                format!("{}: ", unit.name)
            } else {
                String::new()
            };
            if scalable && !caps.scalable_mode {
                return Err(at(
                    vtd_path(&[k("mode")]),
                    format!("{who}scalable mode needs capabilities.scalable_mode (ECAP.SMTS)"),
                ));
            }
            if spec.invalidation == InvalidationVia::Queued && !caps.queued_invalidation {
                return Err(at(
                    vtd_path(&[k("invalidation")]),
                    format!(
                        "{who}queued invalidation needs capabilities.queued_invalidation \
                         (ECAP.QI); use \"register\""
                    ),
                ));
            }
            // Linux `iommu_paging_structure_coherency`: ECAP.SMPWC in scalable mode (walks
            // snoop per PASID-entry PWSNP, which the driver sets from it), ECAP.C otherwise.
            // Page tables are shared between units, so one unit that does not snoop its
            // walks makes the driver flush every table write.
            flush |= match spec.flush_table_writes {
                FlushPolicy::Auto if scalable => !caps.smpwc,
                FlushPolicy::Auto => !caps.coherent,
                FlushPolicy::Always => true,
                FlushPolicy::Never => false,
            };
        }
        let tm = &spec.table_memory;
        let mem_err = |e: TableError| at(vtd_path(&[k("table_memory")]), e.to_string());
        let alloc = TableAllocator::new(PhysAddr(tm.base.0), tm.bytes.0)
            .map_err(|e| at(vtd_path(&[k("table_memory")]), e.to_string()))?;
        let mut host = VtdHost {
            units: UnitSet::with_capacity(units.len()),
            alloc,
            domains: BTreeMap::new(),
            rid: BTreeMap::new(),
            pasid_domains: BTreeMap::new(),
            flush,
            mapped_pages: 0,
        };
        // Each unit's root table, invalidation queue and status word, unit by unit.
        for unit in &units {
            let caps = &unit.capabilities;
            let via = spec.invalidation;
            let dmar =
                DmarUnit::new(&unit.name, caps, scalable, via, &mut host.alloc).map_err(mem_err)?;
            host.units.push(dmar, &unit.devices);
        }
        let mut out = Vec::new();
        for (i, d) in spec.domains.iter().enumerate() {
            let units = host.planned_units(spec, &d.name);
            host.add_domain(spec, i, d, units, &mut out)?;
        }
        for (i, a) in spec.attach.iter().enumerate() {
            let path = |rest: &[Step]| {
                let mut p = vec![k("attach"), Step::Index(i)];
                p.extend_from_slice(rest);
                vtd_path(&p)
            };
            let bdf = *devices.get(a.device.as_str()).ok_or_else(|| {
                at(
                    path(&[k("device")]),
                    format!("no device is named \"{}\"", a.device),
                )
            })?;
            host.attach(a, bdf, scalable, &path, &mut out)?;
        }
        Ok((host, out))
    }

    /// The units behind which `domain`'s devices will sit (its RID and PASID attachments),
    /// ascending.
    fn planned_units(&self, spec: &VtdSpec, domain: &str) -> Vec<usize> {
        let set: BTreeSet<usize> = spec
            .attach
            .iter()
            .filter(|a| a.domain == domain || a.pasids.iter().any(|p| p.domain == domain))
            .filter_map(|a| self.units.index_of(&a.device))
            .collect();
        set.into_iter().collect()
    }

    /// Whether a domain of this id, kind and levels fits one unit's capabilities (at boot,
    /// and for a run-time attach: Linux `paging_domain_compatible`); the field and what is
    /// wrong if not.
    pub(super) fn domain_fits(
        caps: &Capabilities,
        (id, kind, levels): (u64, DomainKind, u8),
        scalable: bool,
    ) -> Result<(), (&'static str, String)> {
        if u32::from(id as u16) >= caps.cap().domains() || id > u64::from(u16::MAX) {
            return Err((
                "id",
                format!(
                    "domain id {id} is beyond the {} domains CAP.ND = {} supports",
                    caps.cap().domains(),
                    caps.nd
                ),
            ));
        }
        let kind_err = |m: &str| Err(("kind", m.to_owned()));
        match kind {
            DomainKind::FirstLevel | DomainKind::Nested if !scalable => {
                return kind_err("first-level and nested domains need mode \"scalable\"")
            }
            DomainKind::FirstLevel if !caps.first_level => {
                return kind_err("first-level domains need capabilities.first_level (ECAP.FLTS)")
            }
            DomainKind::Nested if !caps.nested => {
                return kind_err("nested domains need capabilities.nested (ECAP.NEST)")
            }
            DomainKind::SecondLevel if scalable && !caps.second_level => {
                return kind_err(
                    "second-level domains in scalable mode need capabilities.second_level \
                     (ECAP.SLTS)",
                )
            }
            DomainKind::PassThrough if !caps.pass_through => {
                return kind_err("pass-through needs capabilities.pass_through (ECAP.PT)")
            }
            _ => {}
        }
        match kind {
            DomainKind::SecondLevel if !caps.sagaw_levels.contains(&levels) => Err((
                "levels",
                format!(
                    "{levels}-level second-level tables are not in capabilities.sagaw_levels \
                     {:?}",
                    caps.sagaw_levels
                ),
            )),
            DomainKind::FirstLevel | DomainKind::Nested
                if !(levels == 4 || (levels == 5 && caps.fl5lp)) =>
            {
                Err((
                    "levels",
                    "first-level tables have 4 levels, or 5 with capabilities.fl5lp".to_owned(),
                ))
            }
            _ => Ok(()),
        }
    }

    fn add_domain(
        &mut self,
        spec: &VtdSpec,
        i: usize,
        d: &DomainSpec,
        units: Vec<usize>,
        out: &mut Vec<MemWrite>,
    ) -> Result<(), HostError> {
        let path = |rest: &[Step]| {
            let mut p = vec![k("domains"), Step::Index(i)];
            p.extend_from_slice(rest);
            vtd_path(&p)
        };
        if self.domains.contains_key(&d.name) {
            return Err(at(
                path(&[k("name")]),
                format!("domain name \"{}\" is used twice", d.name),
            ));
        }
        let scalable = spec.mode == TableMode::Scalable;
        for u in self.units.units_of(&units) {
            let shape = (d.id.0, d.kind, d.levels.0 as u8);
            Self::domain_fits(&self.units[u].caps, shape, scalable)
                .map_err(|(field, m)| at(path(&[k(field)]), self.units.qualify(u, m)))?;
        }
        let levels = d.levels.0 as u8;
        let mem_err = |e: TableError| at(vtd_path(&[k("table_memory")]), e.to_string());
        let mut dom = Domain {
            id: d.id.0 as u16,
            kind: d.kind,
            levels,
            pgsnp: d.pgsnp,
            sl: None,
            fl: None,
            parent: None,
            parent_pgsnp: false,
            units,
            has_mappings: false,
        };
        match d.kind {
            DomainKind::SecondLevel => {
                dom.sl = Some(SlTables::new(&mut self.alloc, levels).map_err(mem_err)?);
            }
            DomainKind::FirstLevel | DomainKind::Nested => {
                dom.fl = Some(FlTables::new(&mut self.alloc, levels).map_err(mem_err)?);
            }
            DomainKind::PassThrough => {}
        }
        if d.kind == DomainKind::Nested {
            // The table memory is identity-mapped into the parent, page by page.
            charge_pages(&mut self.mapped_pages, spec.table_memory.bytes.0 / 4096)
                .map_err(|m| at(path(&[k("parent")]), m))?;
            let parent = d.parent.as_deref().unwrap_or("");
            let p = self
                .domains
                .get_mut(parent)
                .filter(|p| p.kind == DomainKind::SecondLevel)
                .ok_or_else(|| {
                    at(
                        path(&[k("parent")]),
                        format!(
                            "\"{parent}\" is not a second-level domain listed before this one: \
                             a nested domain needs one"
                        ),
                    )
                })?;
            // The guest's first-level tables live in its own memory, which the parent
            // maps: here the table memory, identity-mapped into the parent.
            let sl =
                p.sl.as_mut()
                    .ok_or_else(|| at(path(&[k("parent")]), "no tables"))?;
            let base = self.alloc.base().raw();
            let end = base + spec.table_memory.bytes.0;
            let perm = SlPerm {
                read: true,
                write: true,
                snp: false,
            };
            for page in (base..end).step_by(4096) {
                sl.map(
                    &mut self.alloc,
                    page,
                    PhysAddr(page),
                    PageSize::Size4K,
                    perm,
                    out,
                )
                .map_err(mem_err)?;
            }
            dom.parent = Some((sl.root(), sl.levels()));
            dom.parent_pgsnp = p.pgsnp;
            p.has_mappings = true;
            if d.pgsnp {
                return Err(at(
                    path(&[k("pgsnp")]),
                    "a nested domain takes PGSNP from its parent (Linux \
                     intel_pasid_setup_nested): set pgsnp on the parent",
                ));
            }
        } else if d.parent.is_some() {
            return Err(at(
                path(&[k("parent")]),
                "only nested domains have a parent",
            ));
        }
        self.domains.insert(d.name.clone(), dom);
        for (j, m) in d.mappings.iter().enumerate() {
            self.map(&d.name, m, out)
                .map_err(|msg| at(path(&[k("mappings"), Step::Index(j)]), msg))?;
        }
        Ok(())
    }

    pub(super) fn attach(
        &mut self,
        a: &AttachSpec,
        bdf: Bdf,
        scalable: bool,
        path: &dyn Fn(&[Step]) -> Vec<Step>,
        out: &mut Vec<MemWrite>,
    ) -> Result<(), HostError> {
        let domain = |name: &str, p: Vec<Step>| {
            self.domains
                .get(name)
                .cloned()
                .ok_or_else(|| at(p, format!("no domain is named \"{name}\"")))
        };
        let d = domain(&a.domain, path(&[k("domain")]))?;
        // Every device is in one unit's scope (checked with the units).
        let u = self
            .units
            .index_of(&a.device)
            .ok_or_else(|| at(path(&[k("device")]), "the device is in no unit's scope"))?;
        self.rid.insert(
            a.device.clone(),
            RidAttachment {
                domain: a.domain.clone(),
                bdf,
                fpd: a.fpd,
            },
        );
        if !a.pasids.is_empty() {
            let domains = a.pasids.iter().map(|p| p.domain.clone()).collect();
            self.pasid_domains.insert(a.device.clone(), domains);
        }
        let unit = &mut self.units[u];
        let caps = &unit.caps;
        let mem_err = |e: TableError| at(path(&[]), e.to_string());
        if a.device_tlb && !caps.device_tlb {
            return Err(at(
                path(&[k("device_tlb")]),
                "device_tlb needs capabilities.device_tlb (ECAP.DT)",
            ));
        }
        if !scalable {
            if !a.pasids.is_empty() {
                return Err(at(
                    path(&[k("pasids")]),
                    "PASIDs need mode \"scalable\" (legacy context entries have no PASID table)",
                ));
            }
            let tt = match (d.kind, a.device_tlb) {
                (DomainKind::PassThrough, _) => TranslationType::PassThrough,
                (_, true) => TranslationType::DeviceTlb,
                (_, false) => TranslationType::UntranslatedOnly,
            };
            let (slptptr, levels) =
                d.sl.as_ref()
                    .map_or((PhysAddr(0), 4), |s| (s.root(), s.levels()));
            let e = ContextEntry::new(ContextFields {
                fpd: a.fpd,
                tt,
                slptptr,
                aw: levels - 2,
                did: d.id,
            });
            unit.ctx
                .set_context(&mut self.alloc, bdf, e, out)
                .map_err(mem_err)?;
            return Ok(());
        }
        let max_pasid = a.pasids.iter().map(|p| p.pasid.0 as u32).max().unwrap_or(0);
        let mut pdts = 0u8;
        while (max_pasid / PASIDS_PER_DIR_ENTRY) >= (1u32 << (pdts + 7)) {
            pdts += 1;
        }
        if let Some(bits) = Some(caps.ecap().pasid_bits()).filter(|_| !a.pasids.is_empty()) {
            if u64::from(max_pasid) >> bits != 0 {
                return Err(at(
                    path(&[k("pasids")]),
                    format!("PASID {max_pasid:#x} is wider than the {bits} bits ECAP.PSS allows"),
                ));
            }
        }
        let dir = ContextTables::alloc_pasid_dir(&mut self.alloc, pdts).map_err(mem_err)?;
        let e = ScalableContextEntry::new(ScalableContextFields {
            fpd: a.fpd,
            dte: a.device_tlb,
            paside: !a.pasids.is_empty(),
            pre: false,
            pdts,
            pasid_dir_ptr: dir,
            rid_pasid: 0,
        });
        unit.ctx
            .set_scalable_context(&mut self.alloc, bdf, e, out)
            .map_err(mem_err)?;
        let pwsnp = unit.caps.smpwc;
        let entry = Self::pasid_entry(&d, a.fpd, pwsnp);
        unit.ctx
            .set_pasid_entry(&mut self.alloc, bdf, 0, entry, out)
            .map_err(mem_err)?;
        for (j, p) in a.pasids.iter().enumerate() {
            let d = self.domains.get(&p.domain).cloned().ok_or_else(|| {
                at(
                    path(&[k("pasids"), Step::Index(j), k("domain")]),
                    format!("no domain is named \"{}\"", p.domain),
                )
            })?;
            let entry = Self::pasid_entry(&d, a.fpd, pwsnp);
            self.units[u]
                .ctx
                .set_pasid_entry(&mut self.alloc, bdf, p.pasid.0 as u32, entry, out)
                .map_err(mem_err)?;
        }
        Ok(())
    }

    /// The PASID entry Linux writes for a domain (`intel_pasid_setup_second_level`,
    /// `_first_level`, `_nested`, `_pass_through`): PWSNP from the unit's ECAP.SMPWC,
    /// PGSNP when the domain forces snooping.
    pub(super) fn pasid_entry(d: &Domain, fpd: bool, pwsnp: bool) -> PasidEntry {
        let (pgtt, sl, sl_levels) = match d.kind {
            DomainKind::SecondLevel => (
                Pgtt::SecondLevel,
                d.sl.as_ref().map_or(PhysAddr(0), |s| s.root()),
                d.levels,
            ),
            DomainKind::FirstLevel => (Pgtt::FirstLevel, PhysAddr(0), 4),
            DomainKind::Nested => {
                let (root, levels) = d.parent.unwrap_or((PhysAddr(0), 4));
                (Pgtt::Nested, root, levels)
            }
            DomainKind::PassThrough => (Pgtt::PassThrough, PhysAddr(0), 4),
        };
        let fl = d.fl.as_ref();
        PasidEntry::new(PasidFields {
            fpd,
            aw: sl_levels - 2,
            pgtt,
            slptptr: sl,
            did: d.id,
            pwsnp,
            pgsnp: if d.kind == DomainKind::Nested {
                d.parent_pgsnp
            } else {
                d.pgsnp
            },
            sre: false,
            flpm: u8::from(fl.is_some_and(|f| f.levels() == 5)),
            wpe: false,
            nxe: false,
            flptr: fl.map_or(PhysAddr(0), |f| f.root()),
        })
    }

    /// Maps a range into a domain; the message says what is wrong.
    pub fn map(
        &mut self,
        domain: &str,
        m: &MappingSpec,
        out: &mut Vec<MemWrite>,
    ) -> Result<(), String> {
        let units = self.units.units_of(
            &self
                .domains
                .get(domain)
                .ok_or_else(|| format!("no domain is named \"{domain}\""))?
                .units,
        );
        // A page size every unit the domain spans can walk (Linux keeps the smallest
        // `iommu_superpage` of a domain's units).
        let every = |f: fn(&Capabilities) -> bool| units.iter().all(|&u| f(&self.units[u].caps));
        let (sllps_2m, sllps_1g, fl1gp) = (
            every(|c| c.sllps_2m),
            every(|c| c.sllps_1g),
            every(|c| c.fl1gp),
        );
        let Some(d) = self.domains.get_mut(domain) else {
            return Err(format!("no domain is named \"{domain}\""));
        };
        if m.fc || m.page_bytes.is_some() {
            return Err(
                "fc and page_bytes are AMD-Vi mapping fields: VT-d forces snooping with snp \
                 and maps 4k, 2m or 1g pages"
                    .to_owned(),
            );
        }
        let size: PageSize = m.page.into();
        let supported = match (size, d.kind) {
            (PageSize::Size4K, _) => true,
            (PageSize::Size2M, DomainKind::SecondLevel) => sllps_2m,
            (PageSize::Size1G, DomainKind::SecondLevel) => sllps_1g,
            (PageSize::Size2M, _) => true,
            (PageSize::Size1G, _) => fl1gp,
        };
        if !supported {
            return Err(format!(
                "{size} pages are not supported: CAP.SLLPS / FL1GP does not report them"
            ));
        }
        let bytes = size.bytes();
        if !m.iova.0.is_multiple_of(bytes)
            || !m.pa.0.is_multiple_of(bytes)
            || !m.bytes.0.is_multiple_of(bytes)
        {
            return Err(format!(
                "iova {}, pa {} and bytes {} must be multiples of the {size} page size",
                m.iova, m.pa, m.bytes.0
            ));
        }
        if m.iova.0.checked_add(m.bytes.0 - 1).is_none()
            || m.pa.0.checked_add(m.bytes.0 - 1).is_none()
        {
            return Err(format!(
                "iova {} or pa {} plus {} bytes runs past the 64-bit address space",
                m.iova, m.pa, m.bytes.0
            ));
        }
        charge_pages(&mut self.mapped_pages, m.bytes.0 / bytes)?;
        d.has_mappings = true;
        for n in 0..m.bytes.0 / bytes {
            let iova = m.iova.0 + n * bytes;
            let pa = PhysAddr(m.pa.0 + n * bytes);
            let r = match (d.kind, d.sl.as_mut(), d.fl.as_mut()) {
                (DomainKind::SecondLevel, Some(sl), _) => {
                    let perm = SlPerm {
                        read: m.read,
                        write: m.write,
                        snp: m.snp,
                    };
                    sl.map(&mut self.alloc, iova, pa, size, perm, out)
                }
                (DomainKind::FirstLevel | DomainKind::Nested, _, Some(fl)) => {
                    let perm = FlPerm {
                        writable: m.write,
                        user: m.user,
                        xd: m.xd,
                    };
                    fl.map(&mut self.alloc, iova, pa, size, perm, out)
                }
                _ => return Err("a pass-through domain has no page tables to map".to_owned()),
            };
            r.map_err(|e| e.to_string())?;
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
        let step = unmap_pages(iova, bytes, size)?;
        for n in 0..bytes / step {
            let a = iova + n * step;
            let r = match (d.sl.as_mut(), d.fl.as_mut()) {
                (Some(sl), _) => sl.unmap(a, size, out),
                (_, Some(fl)) => fl.unmap(a, size, out),
                _ => return Err("a pass-through domain has no page tables".to_owned()),
            };
            r.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The domain id of a domain name.
    pub fn domain_id(&self, name: &str) -> Option<u16> {
        self.domains.get(name).map(|d| d.id)
    }
}
