//! The VT-d driver's run-time host operations — a program's `attach`, `detach`, the PASID
//! entry rewrite of a successful `enforce`, and the raw `pte_update` — as the Linux
//! intel-iommu driver performs them (SPEC-NOTES §3.2, §3.3, §3.6, §3.7):
//!
//! - **detach** (`device_block_translation`): legacy mode clears the context entry, then
//!   a device-selective context-cache invalidation and a domain-selective IOTLB
//!   invalidation of the old DID (`domain_context_clear_one`); scalable mode clears the
//!   RID_PASID entry, then a PASID-selective PASID-cache invalidation and the IOTLB of the
//!   old DID — PASID-based for first-level and pass-through entries, domain-selective
//!   otherwise (`intel_pasid_tear_down_entry`). Each invalidation is its own submission
//!   with its own wait (`qi_submit_sync`). The device's DMA then faults (context or PASID
//!   entry not present).
//! - **attach** (`dmar_domain_attach_device`): writes the context entry (and the root
//!   entry on a bus's first use), or in scalable mode the RID_PASID entry (the context and
//!   PASID directory too when the device never had them). A non-present to present change
//!   is invalidated only under caching mode (`domain_context_mapping_one`,
//!   `pasid_flush_caches`); otherwise the driver flushes the write buffer, which is not
//!   modelled. A unit whose capabilities do not fit the domain refuses it
//!   (`paging_domain_compatible`).
//! - **enforce** of a first-level domain (`domain_set_force_snooping` →
//!   `intel_pasid_setup_page_snoop_control`): PGSNP in the RID_PASID entry of each device
//!   attached by RID, then a PASID-cache and a PASID-based IOTLB invalidation for it.
//!   A second-level domain needs nothing written: later leaves get SNP (`set_pte_snp`).
//! - **pte_update**: one 8-byte store of a leaf; the invalidation is the program's.

use super::driver::{AttachOutcome, DriverWork, Invalidation, UnitId};
use super::vtd_host::{RidAttachment, VtdHost};
use crate::scenario::iommu::{AttachSpec, DomainKind};
use crate::scenario::PteUpdateOp;
use model_core::{Bdf, PhysAddr};
use std::collections::{BTreeMap, BTreeSet};
use vtd::entry::{FlPerm, FlPte, PageSize, PasidEntry, SlPerm, SlPte};
use vtd::qi::{ContextScope, InvDescriptor, IotlbScope, PasidCacheScope, PasidIotlbScope};

/// RID_PASID: the PASID of requests without one in scalable mode (Linux `IOMMU_NO_PASID`).
const RID_PASID: u32 = 0;

/// Physical addresses a leaf can hold (VT-d's widest host address width, 52 bits).
const MAX_PA_BITS: u32 = 52;

fn iotlb_domain(did: u16) -> InvDescriptor {
    InvDescriptor::Iotlb {
        scope: IotlbScope::Domain { did },
        drain_reads: false,
        drain_writes: false,
    }
}

fn pasid_cache(did: u16) -> InvDescriptor {
    InvDescriptor::PasidCache(PasidCacheScope::Pasid {
        did,
        pasid: RID_PASID,
    })
}

fn pasid_iotlb(did: u16) -> InvDescriptor {
    InvDescriptor::PasidIotlb(PasidIotlbScope::Pasid {
        did,
        pasid: RID_PASID,
    })
}

impl VtdHost {
    /// The domain a device's requests without PASID use, if it is attached.
    pub fn attached(&self, device: &str) -> Option<&str> {
        self.rid.get(device).map(|a| a.domain.as_str())
    }

    /// Whether a map was ever made in `domain` (boot mappings count).
    pub fn has_mappings(&self, domain: &str) -> bool {
        self.domains.get(domain).is_some_and(|d| d.has_mappings)
    }

    /// The units a domain spans now.
    pub fn domain_units(&self, domain: &str) -> BTreeSet<UnitId> {
        self.domains.get(domain).map_or_else(BTreeSet::new, |d| {
            d.units.iter().map(|&u| UnitId(u as u8)).collect()
        })
    }

    /// A domain spans the units of the devices attached to it, by RID or by PASID.
    fn resync_units(&mut self, domain: &str) {
        let by_rid = self
            .rid
            .iter()
            .filter(|(_, a)| a.domain == domain)
            .map(|(dev, _)| dev);
        let by_pasid = self
            .pasid_domains
            .iter()
            .filter(|(_, ds)| ds.iter().any(|d| d == domain))
            .map(|(dev, _)| dev);
        let set: BTreeSet<usize> = by_rid
            .chain(by_pasid)
            .filter_map(|dev| self.units.index_of(dev))
            .collect();
        if let Some(d) = self.domains.get_mut(domain) {
            d.units = set.into_iter().collect();
        }
    }

    /// Each descriptor as its own submission and wait on unit `u`, in order (Linux's
    /// `flush_context`, `flush_iotlb`, `qi_flush_pasid_cache`, `qi_flush_piotlb` each call
    /// `qi_submit_sync`).
    fn submit_each(
        &mut self,
        u: usize,
        descs: &[InvDescriptor],
    ) -> Result<Vec<(UnitId, Invalidation)>, String> {
        descs
            .iter()
            .map(|d| {
                Ok((
                    UnitId(u as u8),
                    self.units[u].submit(std::slice::from_ref(d))?,
                ))
            })
            .collect()
    }

    /// Blocks `device`'s requests without PASID: what the driver writes and invalidates.
    /// Nothing for a device that is not attached.
    pub fn detach(&mut self, device: &str) -> Result<DriverWork, String> {
        let Some(a) = self.rid.remove(device) else {
            return Ok(DriverWork::default());
        };
        let u = self
            .units
            .index_of(device)
            .ok_or("the device is in no unit's scope")?;
        let (did, kind) = self
            .domains
            .get(&a.domain)
            .map(|d| (d.id, d.kind))
            .ok_or_else(|| format!("no domain is named \"{}\"", a.domain))?;
        let mut writes = Vec::new();
        let unit = &mut self.units[u];
        let descs = if unit.ctx.scalable() {
            unit.ctx
                .set_pasid_entry(
                    &mut self.alloc,
                    a.bdf,
                    RID_PASID,
                    PasidEntry::default(),
                    &mut writes,
                )
                .map_err(|e| e.to_string())?;
            let iotlb = match kind {
                DomainKind::FirstLevel | DomainKind::PassThrough => pasid_iotlb(did),
                DomainKind::SecondLevel | DomainKind::Nested => iotlb_domain(did),
            };
            vec![pasid_cache(did), iotlb]
        } else {
            unit.ctx
                .clear_context(a.bdf, &mut writes)
                .map_err(|e| e.to_string())?;
            let sid = a.bdf.raw();
            vec![
                InvDescriptor::ContextCache(ContextScope::Device { did, sid, fm: 0 }),
                iotlb_domain(did),
            ]
        };
        self.resync_units(&a.domain);
        let invalidations = self.submit_each(u, &descs)?;
        Ok(DriverWork {
            writes,
            invalidations,
        })
    }

    /// Attaches a detached `device` (`bdf`) to `domain`: its entries and, under caching
    /// mode, their invalidation; or the refusal of a unit the domain does not fit.
    pub fn attach_device(
        &mut self,
        device: &str,
        bdf: Bdf,
        domain: &str,
    ) -> Result<AttachOutcome, String> {
        let d = self
            .domains
            .get(domain)
            .cloned()
            .ok_or_else(|| format!("no domain is named \"{domain}\""))?;
        let u = self
            .units
            .index_of(device)
            .ok_or("the device is in no unit's scope")?;
        let unit = &self.units[u];
        let scalable = unit.ctx.scalable();
        let shape = (u64::from(d.id), d.kind, d.levels);
        if let Err((_, m)) = Self::domain_fits(&unit.caps, shape, scalable) {
            let m = self.units.qualify(u, m);
            return Ok(AttachOutcome::Refused(format!("{device} ({m})")));
        }
        let caching_mode = unit.caps.caching_mode;
        let pwsnp = unit.caps.smpwc;
        // The device had a scalable context and PASID table from an earlier attach: only
        // its RID_PASID entry is written again.
        let has_table = scalable && unit.ctx.pasid_entry_address(bdf, RID_PASID).is_some();
        let mut writes = Vec::new();
        if has_table {
            let entry = Self::pasid_entry(&d, false, pwsnp);
            self.units[u]
                .ctx
                .set_pasid_entry(&mut self.alloc, bdf, RID_PASID, entry, &mut writes)
                .map_err(|e| e.to_string())?;
        } else {
            let spec = AttachSpec {
                device: device.to_owned(),
                domain: domain.to_owned(),
                device_tlb: false,
                fpd: false,
                pasids: Vec::new(),
                after_maps: false,
            };
            if let Err(e) = self.attach(&spec, bdf, scalable, &|_| Vec::new(), &mut writes) {
                self.rid.remove(device);
                return Err(e.message);
            }
        }
        self.rid.insert(
            device.to_owned(),
            RidAttachment {
                domain: domain.to_owned(),
                bdf,
                fpd: false,
            },
        );
        self.resync_units(domain);
        let did = d.id;
        let descs = match (caching_mode, scalable) {
            (false, _) => Vec::new(),
            (true, false) => vec![
                // Non-present entries are cached under domain 0 (domain_context_mapping_one).
                InvDescriptor::ContextCache(ContextScope::Device {
                    did: 0,
                    sid: bdf.raw(),
                    fm: 0,
                }),
                iotlb_domain(did),
            ],
            (true, true) if has_table => vec![pasid_cache(did), pasid_iotlb(did)],
            (true, true) => vec![
                InvDescriptor::ContextCache(ContextScope::Device {
                    did: 0,
                    sid: bdf.raw(),
                    fm: 0,
                }),
                pasid_cache(did),
                pasid_iotlb(did),
            ],
        };
        let invalidations = self.submit_each(u, &descs)?;
        Ok(AttachOutcome::Attached(DriverWork {
            writes,
            invalidations,
        }))
    }

    /// `enforce_cache_coherency()` succeeded on `domain`: a first-level domain's devices
    /// get PGSNP in their RID_PASID entries (and the domain's later attachments too), each
    /// followed by its PASID-cache and PASID-based IOTLB invalidation.
    pub fn force_snooping(&mut self, domain: &str) -> Result<DriverWork, String> {
        let d = self
            .domains
            .get_mut(domain)
            .ok_or_else(|| format!("no domain is named \"{domain}\""))?;
        if d.kind != DomainKind::FirstLevel {
            return Ok(DriverWork::default());
        }
        d.pgsnp = true;
        let d = d.clone();
        let mut writes = Vec::new();
        let mut per_unit: BTreeMap<usize, Vec<InvDescriptor>> = BTreeMap::new();
        let attached: Vec<(String, RidAttachment)> = self
            .rid
            .iter()
            .filter(|(_, a)| a.domain == domain)
            .map(|(n, a)| (n.clone(), a.clone()))
            .collect();
        for (device, a) in attached {
            let Some(u) = self.units.index_of(&device) else {
                continue;
            };
            let entry = Self::pasid_entry(&d, a.fpd, self.units[u].caps.smpwc);
            self.units[u]
                .ctx
                .set_pasid_entry(&mut self.alloc, a.bdf, RID_PASID, entry, &mut writes)
                .map_err(|e| e.to_string())?;
            per_unit
                .entry(u)
                .or_default()
                .extend([pasid_cache(d.id), pasid_iotlb(d.id)]);
        }
        let mut invalidations = Vec::new();
        for (u, descs) in per_unit {
            invalidations.extend(self.submit_each(u, &descs)?);
        }
        Ok(DriverWork {
            writes,
            invalidations,
        })
    }

    /// The store that rewrites the leaf mapping `op.iova`; the error names the field.
    pub fn pte_update(
        &mut self,
        op: &PteUpdateOp,
        writes: &mut Vec<vtd::tables::MemWrite>,
    ) -> Result<(), (&'static str, String)> {
        let d = self.domains.get_mut(&op.domain).ok_or_else(|| {
            let m = format!("no domain is named \"{}\"", op.domain);
            ("domain", m)
        })?;
        if op.fc.is_some() {
            return Err((
                "fc",
                "fc is AMD-Vi's: a VT-d second-level leaf forces snooping with snp".to_owned(),
            ));
        }
        let (iova, pa) = (op.iova.0, op.pa.0);
        let not_mapped = || {
            let m = format!(
                "IOVA {iova:#x} is not mapped in \"{}\": pte_update rewrites an existing leaf",
                op.domain
            );
            ("iova", m)
        };
        let check = |size: PageSize| {
            if !iova.is_multiple_of(size.bytes()) {
                return Err((
                    "iova",
                    format!("IOVA {iova:#x} is inside a {size} page: give the page's first IOVA"),
                ));
            }
            if !pa.is_multiple_of(size.bytes()) || pa >> MAX_PA_BITS != 0 {
                return Err((
                    "pa",
                    format!("{pa:#x} is not a {size}-aligned address below 2^{MAX_PA_BITS}"),
                ));
            }
            Ok(())
        };
        let table_err = |e: vtd::tables::TableError| ("iova", e.to_string());
        match (d.kind, d.sl.as_mut(), d.fl.as_mut()) {
            (DomainKind::SecondLevel, Some(sl), _) => {
                let (_, size, old) = sl.lookup(iova).ok_or_else(not_mapped)?;
                check(size)?;
                let perm = SlPerm {
                    read: op.read.unwrap_or(old.read()),
                    write: op.write.unwrap_or(old.write()),
                    snp: op.snp.unwrap_or(old.snp()),
                };
                let pte = SlPte::leaf(PhysAddr(pa), size, perm);
                sl.set_leaf(iova, size, pte, writes).map_err(table_err)?;
            }
            (DomainKind::FirstLevel | DomainKind::Nested, _, Some(fl)) => {
                if op.snp == Some(true) {
                    return Err((
                        "snp",
                        "a first-level leaf has no SNP bit (PGSNP in the PASID entry forces \
                         snooping)"
                            .to_owned(),
                    ));
                }
                if op.read == Some(false) {
                    return Err((
                        "read",
                        "a present first-level leaf is always readable: leave read true".to_owned(),
                    ));
                }
                let (_, size, old) = fl.lookup(iova).ok_or_else(not_mapped)?;
                check(size)?;
                let perm = FlPerm {
                    writable: op.write.unwrap_or(old.writable()),
                    user: old.user(),
                    xd: old.xd(),
                };
                let pte = FlPte::leaf(PhysAddr(pa), size, perm);
                fl.set_leaf(iova, size, pte, writes).map_err(table_err)?;
            }
            _ => {
                return Err((
                    "domain",
                    "a pass-through domain has no page tables".to_owned(),
                ))
            }
        }
        Ok(())
    }
}
