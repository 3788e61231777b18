//! The host software's side of AMD-Vi: what the Linux amd_iommu driver does with the unit —
//! the device table, v1 I/O page tables (FC on every leaf unless the scenario says
//! otherwise), the command buffer with COMPLETION_WAIT, and the event log.

use super::driver::{charge_pages, HostError, Invalidation};
use crate::scenario::amdvi::{AmdAttachSpec, AmdDomainKind, AmdviSpec, FcPolicy};
use crate::scenario::iommu::{FlushPolicy, MappingSpec};
use crate::scenario::{InvalidateWhat, IommuInvalidateOp, Step};
use amdvi::cmd::Command;
use amdvi::dte::{DeviceTableEntry, DteFields, MODE_NONE};
use amdvi::pte::IoPerm;
use amdvi::regs::{control, offset, Capabilities, RingBase};
use amdvi::tables::{DeviceTable, IoPageTable, TableAllocator, TableError};
use model_core::{Bdf, MemWrite, PhysAddr};
use std::collections::BTreeMap;
use vtd::entry::PageSize;

mod ops;

/// Every DeviceID has a DTE: Linux sizes the device table for the largest BDF of the
/// segment (`amd_iommu_last_bdf`, 0xffff).
const MAX_DEVICE_ID: u16 = 0xffff;
/// Bytes of a command (§2.4).
const COMMAND_BYTES: u64 = 16;

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
    devices: Vec<u16>,
}

/// The driver state of one AMD IOMMU.
#[derive(Debug, Clone)]
pub struct AmdviHost {
    caps: Capabilities,
    alloc: TableAllocator,
    dev_table: DeviceTable,
    domains: BTreeMap<String, Domain>,
    /// CLFLUSH every table write.
    pub flush: bool,
    fc: FcPolicy,
    cmd_base: PhysAddr,
    cmd_entries: u32,
    cmd_tail: u64,
    evt_base: PhysAddr,
    status: PhysAddr,
    seq: u64,
    /// Pages mapped so far (bounded by `driver::MAX_MAPPED_PAGES`).
    mapped_pages: u64,
}

impl AmdviHost {
    /// Builds the device table and every domain's tables; returns the driver and the
    /// boot-time memory writes, in order.
    pub fn boot(
        spec: &AmdviSpec,
        devices: &BTreeMap<String, Bdf>,
    ) -> Result<(AmdviHost, Vec<MemWrite>), HostError> {
        let caps = &spec.capabilities;
        caps.validate()
            .map_err(|e| at(path(&[k("capabilities"), k(e.field)]), e.message))?;
        let tm = &spec.table_memory;
        let mem_err = |e: TableError| at(path(&[k("table_memory")]), e.to_string());
        let alloc_err = |e: model_core::PageAllocError| mem_err(e.into());
        let mut alloc = TableAllocator::new(PhysAddr(tm.base.0), tm.bytes.0).map_err(alloc_err)?;
        let dev_table = DeviceTable::new(&mut alloc, MAX_DEVICE_ID).map_err(mem_err)?;
        let cmd_bytes = u64::from(caps.command_entries) * COMMAND_BYTES;
        let cmd_base = alloc.alloc_bytes(cmd_bytes).map_err(alloc_err)?;
        let evt_bytes = u64::from(caps.event_log_entries) * COMMAND_BYTES;
        let evt_base = alloc.alloc_bytes(evt_bytes).map_err(alloc_err)?;
        let status = alloc.alloc().map_err(alloc_err)?;
        let mut host = AmdviHost {
            caps: caps.clone(),
            alloc,
            dev_table,
            domains: BTreeMap::new(),
            flush: match spec.flush_table_writes {
                FlushPolicy::Auto => !caps.coherent,
                FlushPolicy::Always => true,
                FlushPolicy::Never => false,
            },
            fc: spec.force_coherent,
            cmd_base,
            cmd_entries: caps.command_entries,
            cmd_tail: 0,
            evt_base,
            status,
            seq: 0,
            mapped_pages: 0,
        };
        let mut out = Vec::new();
        for (i, d) in spec.domains.iter().enumerate() {
            let here = |rest: &[Step]| {
                let mut p = vec![k("domains"), Step::Index(i)];
                p.extend_from_slice(rest);
                path(&p)
            };
            if host.domains.contains_key(&d.name) {
                return Err(at(
                    here(&[k("name")]),
                    format!("domain name \"{}\" is used twice", d.name),
                ));
            }
            if u64::from(caps.domains) <= d.id.0 {
                return Err(at(
                    here(&[k("id")]),
                    format!(
                        "DomainID {} is beyond the {} domains of the unit",
                        d.id.0, caps.domains
                    ),
                ));
            }
            let levels = d.levels.0 as u8;
            if levels > caps.levels {
                return Err(at(
                    here(&[k("levels")]),
                    format!(
                        "{levels} levels exceed what the unit walks (capabilities.levels = {}, EFR.HATS)",
                        caps.levels
                    ),
                ));
            }
            let table = match d.kind {
                AmdDomainKind::Paged => {
                    Some(IoPageTable::new(&mut host.alloc, levels).map_err(mem_err)?)
                }
                AmdDomainKind::PassThrough => None,
            };
            host.domains.insert(
                d.name.clone(),
                Domain {
                    id: d.id.0 as u16,
                    table,
                    devices: Vec::new(),
                },
            );
            for (j, m) in d.mappings.iter().enumerate() {
                host.map(&d.name, m, &mut out)
                    .map_err(|msg| at(here(&[k("mappings"), Step::Index(j)]), msg))?;
            }
        }
        for (i, a) in spec.attach.iter().enumerate() {
            let here = |rest: &[Step]| {
                let mut p = vec![k("attach"), Step::Index(i)];
                p.extend_from_slice(rest);
                path(&p)
            };
            let bdf = *devices.get(&a.device).ok_or_else(|| {
                at(
                    here(&[k("device")]),
                    format!("no device is named \"{}\"", a.device),
                )
            })?;
            host.attach(a, bdf, &here, &mut out)?;
        }
        Ok((host, out))
    }

    fn attach(
        &mut self,
        a: &AmdAttachSpec,
        bdf: Bdf,
        here: &dyn Fn(&[Step]) -> Vec<Step>,
        out: &mut Vec<MemWrite>,
    ) -> Result<(), HostError> {
        if a.mode0_fc && !self.caps.snoop_attr {
            return Err(at(
                here(&[k("mode0_fc")]),
                "mode0_fc needs capabilities.snoop_attr (the DTE AttrV/Mode0FC fields)",
            ));
        }
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
        d.devices.push(bdf.raw());
        self.dev_table
            .set(bdf.raw(), e, out)
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
        let page = size.bytes();
        if !iova.is_multiple_of(page) || !bytes.is_multiple_of(page) {
            return Err(format!(
                "iova {iova:#x} and bytes {bytes} must be multiples of the {size} page size"
            ));
        }
        if iova.checked_add(bytes.saturating_sub(1)).is_none() {
            return Err(format!(
                "iova {iova:#x} plus {bytes} bytes runs past the 64-bit address space"
            ));
        }
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

    /// The commands an invalidation operation stands for (Linux amd_iommu: domain flushes
    /// with `build_inv_iommu_pages`, DTE flushes per device, INVALIDATE_IOMMU_ALL).
    pub fn commands(&self, op: &IommuInvalidateOp) -> Result<Vec<Command>, String> {
        let domain = match &op.domain {
            Some(n) => Some(
                self.domains
                    .get(n)
                    .ok_or_else(|| format!("no domain is named \"{n}\""))?,
            ),
            None => None,
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
            (InvalidateWhat::Context, Some(d)) => d
                .devices
                .iter()
                .map(|&device_id| Command::InvalidateDevtabEntry { device_id })
                .collect(),
            (InvalidateWhat::Context, None) => self
                .domains
                .values()
                .flat_map(|d| d.devices.iter())
                .map(|&device_id| Command::InvalidateDevtabEntry { device_id })
                .collect(),
            (InvalidateWhat::Iotlb | InvalidateWhat::All, _) => vec![Command::InvalidateIommuAll],
            (InvalidateWhat::PasidCache | InvalidateWhat::PasidIotlb, _) => {
                return Err("PASID-cache and PASID-IOTLB invalidations are VT-d's".to_owned())
            }
        })
    }

    /// Commands plus a COMPLETION_WAIT that stores a fresh sequence number, and the tail
    /// to write (Linux `iommu_completion_wait`).
    pub fn invalidate(&mut self, op: &IommuInvalidateOp) -> Result<Invalidation, String> {
        let cmds = self.commands(op)?;
        self.submit(cmds)
    }

    /// What the driver writes to submit `cmds` and a COMPLETION_WAIT.
    fn submit(&mut self, mut cmds: Vec<Command>) -> Result<Invalidation, String> {
        // One submission and its COMPLETION_WAIT must fit the ring with a slot to spare
        // (head == tail means empty); the driver waits for each to complete.
        if cmds.len() as u64 + 1 >= u64::from(self.cmd_entries) {
            return Err(format!(
                "{} commands and a COMPLETION_WAIT do not fit the {}-entry command buffer",
                cmds.len(),
                self.cmd_entries
            ));
        }
        self.seq = self.seq.wrapping_add(1);
        cmds.push(Command::CompletionWait {
            store: Some((self.status, self.seq)),
            interrupt: false,
            flush_queue: false,
        });
        let ring = u64::from(self.cmd_entries) * COMMAND_BYTES;
        let mut writes = Vec::new();
        for c in cmds {
            let [a, b] = c.encode();
            let mut bytes = a.to_le_bytes().to_vec();
            bytes.extend_from_slice(&b.to_le_bytes());
            writes.push(MemWrite {
                pa: PhysAddr(self.cmd_base.raw() + self.cmd_tail),
                bytes,
            });
            self.cmd_tail = (self.cmd_tail + COMMAND_BYTES) % ring;
        }
        Ok(Invalidation::Queued {
            writes,
            doorbell: (offset::CMD_TAIL as u32, self.cmd_tail),
            status: self.status,
            data: self.seq,
            width: 8,
        })
    }

    /// Boot register writes (Linux `iommu_init_flags`, `iommu_enable_command_buffer`,
    /// `iommu_enable_event_buffer`, `iommu_enable`).
    pub fn boot_registers(&self) -> Vec<(u32, u64)> {
        let ring = |base, entries| RingBase::new(base, entries).map_or(0, |r| r.0);
        let mut ctrl = control::IOMMU_EN | control::EVT_LOG_EN | control::CMD_BUF_EN;
        if self.caps.coherent {
            ctrl |= control::COHERENT;
        }
        vec![
            (offset::DEV_TABLE_BASE as u32, self.dev_table.register().0),
            (
                offset::CMD_BUF_BASE as u32,
                ring(self.cmd_base, self.cmd_entries),
            ),
            (
                offset::EVT_LOG_BASE as u32,
                ring(self.evt_base, self.caps.event_log_entries),
            ),
            (offset::CONTROL as u32, ctrl),
        ]
    }
}
