//! The host software's side of VT-d: what the Linux intel-iommu driver does with the unit.
//!
//! It owns the table builder (`vtd::tables`), turns scenario domains, attachments and
//! run-time map/unmap/invalidate operations into the memory writes and register writes the
//! driver would make, and leaves performing them (CPU stores through the caches, CLFLUSH,
//! MMIO) to the system. Every refusal names the scenario path it came from, so the same
//! code checks a scenario at load time and builds it at run time.

use super::driver::{charge_pages, HostError, Invalidation};
use crate::scenario::iommu::{
    AttachSpec, DomainKind, DomainSpec, FlushPolicy, InvalidationVia, MappingSpec, TableMode,
    VtdSpec,
};
use crate::scenario::{InvalidateWhat, IommuInvalidateOp, Step};
use model_core::{Bdf, PhysAddr};
use std::collections::BTreeMap;
use vtd::entry::{
    ContextEntry, ContextFields, FlPerm, PageSize, PasidEntry, PasidFields, Pgtt,
    ScalableContextEntry, ScalableContextFields, SlPerm, TranslationType,
};
use vtd::qi::{ContextScope, InvDescriptor, IotlbScope, PasidCacheScope, PasidIotlbScope};
use vtd::regs::{gcmd, offset, Capabilities};
use vtd::tables::{ContextTables, FlTables, MemWrite, SlTables, TableAllocator, TableError};

/// PASIDs below this fit a PASID directory of 2^(PDTS + 7) entries of 64 PASIDs each:
/// PDTS = 0 covers PASID 0..8191 (§9.4).
const PASIDS_PER_DIR_ENTRY: u32 = 64;
/// RTADDR.TTM = 01b selects scalable-mode tables (§11.4.6).
const RTADDR_TTM_SCALABLE: u64 = 0b01 << 10;
/// IQA.DW: 256-bit descriptors (§11.4.12), which Linux uses when ECAP.SMTS is set.
const IQA_DW: u64 = 1 << 11;
/// Invalidation queue pages: IQA.QS = 0 is one 4 KiB page (§11.4.12).
const IQ_BYTES: u64 = 4096;

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
struct Domain {
    id: u16,
    kind: DomainKind,
    levels: u8,
    pgsnp: bool,
    sl: Option<SlTables>,
    fl: Option<FlTables>,
    /// Nested: the parent's second-level table root and levels.
    parent: Option<(PhysAddr, u8)>,
    /// Nested: the parent forces snooping (Linux intel_pasid_setup_nested takes PGSNP from
    /// the second-stage parent's force_snooping).
    parent_pgsnp: bool,
}

/// The invalidation queue as the driver keeps it.
#[derive(Debug, Clone, Copy)]
struct Queue {
    base: u64,
    tail: u64,
    wide: bool,
}

/// The driver state of one VT-d unit.
#[derive(Debug, Clone)]
pub struct VtdHost {
    caps: Capabilities,
    alloc: TableAllocator,
    ctx: ContextTables,
    domains: BTreeMap<String, Domain>,
    /// CLFLUSH every table write.
    pub flush: bool,
    via: InvalidationVia,
    queue: Option<Queue>,
    status: PhysAddr,
    seq: u32,
    iotlb_reg: u32,
    iva: u32,
    /// Pages mapped so far (bounded by `driver::MAX_MAPPED_PAGES`).
    mapped_pages: u64,
}

impl VtdHost {
    /// Builds every table of `spec` for the named devices; returns the driver and the
    /// memory writes of boot, in order.
    pub fn boot(
        spec: &VtdSpec,
        devices: &BTreeMap<String, Bdf>,
    ) -> Result<(VtdHost, Vec<MemWrite>), HostError> {
        let caps = &spec.capabilities;
        caps.validate()
            .map_err(|e| at(vtd_path(&[k("capabilities"), k(e.field)]), e.message))?;
        let scalable = spec.mode == TableMode::Scalable;
        if scalable && !caps.scalable_mode {
            return Err(at(
                vtd_path(&[k("mode")]),
                "scalable mode needs capabilities.scalable_mode (ECAP.SMTS)",
            ));
        }
        if spec.invalidation == InvalidationVia::Queued && !caps.queued_invalidation {
            return Err(at(
                vtd_path(&[k("invalidation")]),
                "queued invalidation needs capabilities.queued_invalidation (ECAP.QI); use \
                 \"register\"",
            ));
        }
        let tm = &spec.table_memory;
        let mut alloc = TableAllocator::new(PhysAddr(tm.base.0), tm.bytes.0)
            .map_err(|e| at(vtd_path(&[k("table_memory")]), e.to_string()))?;
        let ctx = if scalable {
            ContextTables::new_scalable(&mut alloc)
        } else {
            ContextTables::new_legacy(&mut alloc)
        }
        .map_err(|e| at(vtd_path(&[k("table_memory")]), e.to_string()))?;
        let ecap = caps.ecap();
        let mut host = VtdHost {
            caps: caps.clone(),
            alloc,
            ctx,
            domains: BTreeMap::new(),
            // Linux `iommu_paging_structure_coherency`: ECAP.SMPWC in scalable mode (walks
            // snoop per PASID-entry PWSNP, which the driver sets from it), ECAP.C otherwise.
            flush: match spec.flush_table_writes {
                FlushPolicy::Auto if scalable => !caps.smpwc,
                FlushPolicy::Auto => !caps.coherent,
                FlushPolicy::Always => true,
                FlushPolicy::Never => false,
            },
            via: spec.invalidation,
            queue: None,
            status: PhysAddr(0),
            seq: 0,
            iotlb_reg: (ecap.iotlb_offset() + 8) as u32,
            iva: ecap.iotlb_offset() as u32,
            mapped_pages: 0,
        };
        let mut out = Vec::new();
        let mem_err = |e: TableError| at(vtd_path(&[k("table_memory")]), e.to_string());
        let alloc_err = |e: model_core::PageAllocError| mem_err(e.into());
        if spec.invalidation == InvalidationVia::Queued {
            let base = host.alloc.alloc().map_err(alloc_err)?;
            host.queue = Some(Queue {
                base: base.raw(),
                tail: 0,
                wide: scalable,
            });
        }
        host.status = host.alloc.alloc().map_err(alloc_err)?;
        for (i, d) in spec.domains.iter().enumerate() {
            host.add_domain(spec, i, d, &mut out)?;
        }
        for (i, a) in spec.attach.iter().enumerate() {
            let path = |rest: &[Step]| {
                let mut p = vec![k("attach"), Step::Index(i)];
                p.extend_from_slice(rest);
                vtd_path(&p)
            };
            let bdf = *devices.get(&a.device).ok_or_else(|| {
                at(
                    path(&[k("device")]),
                    format!("no device is named \"{}\"", a.device),
                )
            })?;
            host.attach(a, bdf, scalable, &path, &mut out)?;
        }
        Ok((host, out))
    }

    fn add_domain(
        &mut self,
        spec: &VtdSpec,
        i: usize,
        d: &DomainSpec,
        out: &mut Vec<MemWrite>,
    ) -> Result<(), HostError> {
        let path = |rest: &[Step]| {
            let mut p = vec![k("domains"), Step::Index(i)];
            p.extend_from_slice(rest);
            vtd_path(&p)
        };
        let caps = &self.caps;
        if self.domains.contains_key(&d.name) {
            return Err(at(
                path(&[k("name")]),
                format!("domain name \"{}\" is used twice", d.name),
            ));
        }
        if u32::from(d.id.0 as u16) >= caps.cap().domains() || d.id.0 > u64::from(u16::MAX) {
            return Err(at(
                path(&[k("id")]),
                format!(
                    "domain id {} is beyond the {} domains CAP.ND = {} supports",
                    d.id.0,
                    caps.cap().domains(),
                    caps.nd
                ),
            ));
        }
        let scalable = spec.mode == TableMode::Scalable;
        let levels = d.levels.0 as u8;
        let kind_err = |m: &str| Err(at(path(&[k("kind")]), m.to_owned()));
        match d.kind {
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
        let sl_levels_ok = caps.sagaw_levels.contains(&levels);
        let fl_levels_ok = levels == 4 || (levels == 5 && caps.fl5lp);
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
        };
        match d.kind {
            DomainKind::SecondLevel => {
                if !sl_levels_ok {
                    return Err(at(
                        path(&[k("levels")]),
                        format!(
                            "{levels}-level second-level tables are not in \
                             capabilities.sagaw_levels {:?}",
                            caps.sagaw_levels
                        ),
                    ));
                }
                dom.sl = Some(SlTables::new(&mut self.alloc, levels).map_err(mem_err)?);
            }
            DomainKind::FirstLevel | DomainKind::Nested => {
                if !fl_levels_ok {
                    return Err(at(
                        path(&[k("levels")]),
                        "first-level tables have 4 levels, or 5 with capabilities.fl5lp",
                    ));
                }
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

    fn attach(
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
        let caps = &self.caps;
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
            self.ctx
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
        self.ctx
            .set_scalable_context(&mut self.alloc, bdf, e, out)
            .map_err(mem_err)?;
        let entry = self.pasid_entry(&d, a.fpd);
        self.ctx
            .set_pasid_entry(&mut self.alloc, bdf, 0, entry, out)
            .map_err(mem_err)?;
        for (j, p) in a.pasids.iter().enumerate() {
            let d = domain(&p.domain, path(&[k("pasids"), Step::Index(j), k("domain")]))?;
            let entry = self.pasid_entry(&d, a.fpd);
            self.ctx
                .set_pasid_entry(&mut self.alloc, bdf, p.pasid.0 as u32, entry, out)
                .map_err(mem_err)?;
        }
        Ok(())
    }

    /// The PASID entry Linux writes for a domain (`intel_pasid_setup_second_level`,
    /// `_first_level`, `_nested`, `_pass_through`): PWSNP from ECAP.SMPWC, PGSNP when the
    /// domain forces snooping.
    fn pasid_entry(&self, d: &Domain, fpd: bool) -> PasidEntry {
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
            pwsnp: self.caps.smpwc,
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
        let caps = self.caps.clone();
        let d = self
            .domains
            .get_mut(domain)
            .ok_or_else(|| format!("no domain is named \"{domain}\""))?;
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
            (PageSize::Size2M, DomainKind::SecondLevel) => caps.sllps_2m,
            (PageSize::Size1G, DomainKind::SecondLevel) => caps.sllps_1g,
            (PageSize::Size2M, _) => true,
            (PageSize::Size1G, _) => caps.fl1gp,
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
        let step = size.bytes();
        if !iova.is_multiple_of(step) || !bytes.is_multiple_of(step) {
            return Err(format!(
                "iova {iova:#x} and bytes {bytes} must be multiples of the {size} page size"
            ));
        }
        if iova.checked_add(bytes.saturating_sub(1)).is_none() {
            return Err(format!(
                "iova {iova:#x} plus {bytes} bytes runs past the 64-bit address space"
            ));
        }
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

    /// The DIDs of the nested domains whose second level is `parent`.
    fn nested_children(&self, parent: &str) -> Vec<u16> {
        let Some(root) = self
            .domains
            .get(parent)
            .and_then(|d| d.sl.as_ref())
            .map(|sl| sl.root())
        else {
            return Vec::new();
        };
        self.domains
            .values()
            .filter(|d| d.parent.is_some_and(|(r, _)| r == root))
            .map(|d| d.id)
            .collect()
    }

    /// The domain id of a domain name.
    pub fn domain_id(&self, name: &str) -> Option<u16> {
        self.domains.get(name).map(|d| d.id)
    }

    /// The register writes of boot, in order: root table, queued invalidation, translation
    /// enable (Linux `iommu_set_root_entry`, `dmar_enable_qi`, `iommu_enable_translation`).
    pub fn boot_registers(&self) -> Vec<(u32, u64)> {
        let scalable = self.ctx.scalable();
        let mut rta = self.ctx.root_table().raw();
        if scalable {
            rta |= RTADDR_TTM_SCALABLE;
        }
        let mut v = vec![
            (offset::RTADDR as u32, rta),
            (offset::GCMD as u32, u64::from(gcmd::SRTP)),
        ];
        let mut state = 0u64;
        if let Some(q) = self.queue {
            let dw = if q.wide { IQA_DW } else { 0 };
            v.push((offset::IQT as u32, 0));
            v.push((offset::IQA as u32, q.base | dw));
            state |= u64::from(gcmd::QIE);
            v.push((offset::GCMD as u32, state));
        }
        state |= u64::from(gcmd::TE);
        v.push((offset::GCMD as u32, state));
        v
    }

    /// The descriptors an invalidation operation stands for.
    pub fn descriptors(&self, op: &IommuInvalidateOp) -> Result<Vec<InvDescriptor>, String> {
        let did = match &op.domain {
            Some(n) => Some(
                self.domain_id(n)
                    .ok_or_else(|| format!("no domain is named \"{n}\""))?,
            ),
            None => None,
        };
        // The aligned block of 2^AM pages that covers [iova, iova + bytes), as Linux's
        // calculate_psi_aligned_address widens the mask (hardware aligns ADDR down).
        let page = |_did: u16| -> Option<(u64, u8)> {
            let start = op.iova.as_ref()?.0 & !0xfff;
            let end = op
                .iova
                .as_ref()?
                .0
                .saturating_add(op.bytes.map_or(1, |b| b.0));
            let mut am = 0u32;
            while am < 52 {
                let block = 1u64 << (12 + am);
                let base = start & !(block - 1);
                if base.saturating_add(block) >= end {
                    return Some((base, am as u8));
                }
                am += 1;
            }
            None
        };
        let iotlb = |did: Option<u16>| -> Result<InvDescriptor, String> {
            let scope = match did {
                None => IotlbScope::Global,
                Some(did) => match page(did) {
                    // Linux falls back to domain-selective when PSI is missing or the
                    // range exceeds MAMV (`iommu_flush_iotlb_psi`).
                    Some((addr, am)) if self.caps.psi && am <= self.caps.mamv => IotlbScope::Page {
                        did,
                        addr,
                        am,
                        ih: op.leaf_only,
                    },
                    _ => IotlbScope::Domain { did },
                },
            };
            Ok(InvDescriptor::Iotlb {
                scope,
                drain_reads: false,
                drain_writes: false,
            })
        };
        Ok(match op.what {
            InvalidateWhat::Iotlb => {
                // Translations of nested domains over this parent are tagged with their own
                // DIDs: flush them too (Linux cache_tag_flush_range, CACHE_TAG_NESTING_IOTLB).
                let mut v = vec![iotlb(did)?];
                if let Some(parent) = op.domain.as_deref() {
                    v.extend(self.nested_children(parent).into_iter().map(|child| {
                        InvDescriptor::Iotlb {
                            scope: IotlbScope::Domain { did: child },
                            drain_reads: false,
                            drain_writes: false,
                        }
                    }));
                }
                v
            }
            InvalidateWhat::Context => vec![InvDescriptor::ContextCache(match did {
                None => ContextScope::Global,
                Some(did) => ContextScope::Domain { did },
            })],
            InvalidateWhat::PasidCache => vec![InvDescriptor::PasidCache(match (did, op.pasid) {
                (Some(did), Some(p)) => PasidCacheScope::Pasid {
                    did,
                    pasid: p.0 as u32,
                },
                (Some(did), None) => PasidCacheScope::Domain { did },
                _ => PasidCacheScope::Global,
            })],
            InvalidateWhat::PasidIotlb => {
                let (Some(did), Some(p)) = (did, op.pasid) else {
                    return Err("pasid_iotlb needs a domain and a pasid".to_owned());
                };
                let pasid = p.0 as u32;
                vec![InvDescriptor::PasidIotlb(match page(did) {
                    Some((addr, am)) => PasidIotlbScope::Page {
                        did,
                        pasid,
                        addr,
                        am,
                        ih: op.leaf_only,
                    },
                    None => PasidIotlbScope::Pasid { did, pasid },
                })]
            }
            InvalidateWhat::All => {
                let mut v = vec![
                    InvDescriptor::ContextCache(ContextScope::Global),
                    iotlb(None)?,
                ];
                if self.ctx.scalable() {
                    v.push(InvDescriptor::PasidCache(PasidCacheScope::Global));
                }
                v
            }
        })
    }

    /// What the driver writes for an invalidation: queued descriptors plus a wait, or
    /// register commands (Linux `qi_submit_sync`, `__iommu_flush_context`,
    /// `__iommu_flush_iotlb`).
    pub fn invalidate(&mut self, op: &IommuInvalidateOp) -> Result<Invalidation, String> {
        let descs = self.descriptors(op)?;
        match (self.via, self.queue.as_mut()) {
            (InvalidationVia::Queued, Some(q)) => {
                let size: usize = if q.wide { 32 } else { 16 };
                // The driver waits for the queue to drain before each submission (the
                // wait), so one submission may use every slot but one (head == tail means
                // empty).
                if ((descs.len() + 1) * size) as u64 >= IQ_BYTES {
                    return Err(format!(
                        "{} descriptors and a wait do not fit the {IQ_BYTES}-byte invalidation \
                         queue",
                        descs.len()
                    ));
                }
                self.seq = self.seq.wrapping_add(1);
                let data = self.seq;
                let wait = InvDescriptor::Wait {
                    interrupt: false,
                    status: Some((self.status.raw(), data)),
                    fence: true,
                    page_drain: false,
                };
                let mut writes = Vec::new();
                for d in descs.iter().chain(std::iter::once(&wait)) {
                    let [a, b] = d.encode();
                    let mut bytes = Vec::with_capacity(size);
                    bytes.extend_from_slice(&a.to_le_bytes());
                    bytes.extend_from_slice(&b.to_le_bytes());
                    bytes.resize(size, 0);
                    writes.push(MemWrite {
                        pa: PhysAddr(q.base + q.tail),
                        bytes,
                    });
                    q.tail = (q.tail + size as u64) % IQ_BYTES;
                }
                Ok(Invalidation::Queued {
                    writes,
                    doorbell: (offset::IQT as u32, q.tail),
                    status: self.status,
                    data: u64::from(data),
                    width: 4,
                })
            }
            _ => {
                let mut writes = Vec::new();
                let (mut poll, mut busy) = (offset::CCMD as u32, 1u64 << 63);
                for d in descs {
                    match d {
                        InvDescriptor::ContextCache(s) => {
                            writes.push((offset::CCMD as u32, vtd::qi::encode_ccmd(s)));
                            (poll, busy) = (offset::CCMD as u32, 1 << 63);
                        }
                        InvDescriptor::Iotlb { scope, .. } => {
                            let (reg, iva) = vtd::qi::encode_iotlb_reg(scope);
                            writes.push((self.iva, iva));
                            writes.push((self.iotlb_reg, reg));
                            (poll, busy) = (self.iotlb_reg, 1 << 63);
                        }
                        _ => {
                            return Err(
                                "PASID-cache and PASID-IOTLB invalidations exist only as queued \
                                 descriptors (§6.5.2)"
                                    .to_owned(),
                            )
                        }
                    }
                }
                Ok(Invalidation::Register { writes, poll, busy })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(domains: &str) -> VtdHost {
        let spec: VtdSpec = serde_json::from_str(&format!(
            r#"{{"capabilities": {{"scalable_mode": true, "second_level": true,
                 "first_level": true, "nested": true, "pasid": true, "pss": 19}},
                 "mode": "scalable", "domains": {domains}}}"#
        ))
        .unwrap();
        VtdHost::boot(&spec, &BTreeMap::new()).unwrap().0
    }

    fn op(domain: &str, iova: u64, bytes: u64) -> IommuInvalidateOp {
        IommuInvalidateOp {
            what: InvalidateWhat::Iotlb,
            domain: Some(domain.to_owned()),
            iova: Some(crate::scenario::values::HexAddr(iova)),
            bytes: Some(crate::scenario::values::Bounded(bytes)),
            pasid: None,
            leaf_only: false,
        }
    }

    #[test]
    fn a_page_selective_invalidation_covers_an_unaligned_range_with_an_aligned_block() {
        let h = host(r#"[{"name": "d", "id": 1}]"#);
        // [0x3000, 0x5000) straddles an 8 KiB boundary: the smallest aligned power-of-two
        // block holding it is 32 KiB at 0 (AM = 3), as Linux calculate_psi_aligned_address.
        let d = h.descriptors(&op("d", 0x3000, 0x2000)).unwrap();
        let want = InvDescriptor::Iotlb {
            scope: IotlbScope::Page {
                did: 1,
                addr: 0,
                am: 3,
                ih: false,
            },
            drain_reads: false,
            drain_writes: false,
        };
        assert_eq!(d, vec![want]);
        // An aligned single page stays AM = 0.
        let d = h.descriptors(&op("d", 0x4000, 0x1000)).unwrap();
        assert!(matches!(
            d[0],
            InvDescriptor::Iotlb {
                scope: IotlbScope::Page {
                    addr: 0x4000,
                    am: 0,
                    ..
                },
                ..
            }
        ));
    }

    #[test]
    fn invalidating_a_parent_domain_also_flushes_its_nested_children() {
        let h = host(
            r#"[{"name": "s2", "id": 1},
                {"name": "guest", "id": 9, "kind": "nested", "parent": "s2"}]"#,
        );
        let d = h.descriptors(&op("s2", 0x4000, 0x1000)).unwrap();
        assert_eq!(d.len(), 2);
        assert!(matches!(
            d[1],
            InvDescriptor::Iotlb {
                scope: IotlbScope::Domain { did: 9 },
                ..
            }
        ));
    }
}
