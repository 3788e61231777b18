//! The driver's state of one VT-d remapping unit (Linux `struct intel_iommu`): its
//! capabilities, its root and context tables, its invalidation queue and status word, and
//! how an invalidation is submitted to it — queued descriptors and a wait (Linux
//! `qi_submit_sync`) or register commands (`__iommu_flush_context`, `__iommu_flush_iotlb`).
//!
//! Domains and their page tables are not here: a domain's tables are shared by every unit
//! its devices sit behind (Linux `struct dmar_domain`), so they live in [`super::vtd_host`].

use super::driver::Invalidation;
use super::unit_set::HostUnit;
use crate::scenario::iommu::InvalidationVia;
use model_core::{MemWrite, PhysAddr};
use vtd::qi::InvDescriptor;
use vtd::regs::{gcmd, offset, Capabilities};
use vtd::tables::{ContextTables, TableAllocator, TableError};

/// RTADDR.TTM = 01b selects scalable-mode tables (§11.4.6).
const RTADDR_TTM_SCALABLE: u64 = 0b01 << 10;
/// IQA.DW: 256-bit descriptors (§11.4.12), which Linux uses when ECAP.SMTS is set.
const IQA_DW: u64 = 1 << 11;
/// Invalidation queue pages: IQA.QS = 0 is one 4 KiB page (§11.4.12).
pub(super) const IQ_BYTES: u64 = 4096;

/// The invalidation queue as the driver keeps it.
#[derive(Debug, Clone, Copy)]
struct Queue {
    base: u64,
    tail: u64,
    wide: bool,
}

/// One unit as its driver sees it.
#[derive(Debug, Clone)]
pub(super) struct DmarUnit {
    /// Its name in the scenario ("dmar0").
    pub name: String,
    /// CAP/ECAP.
    pub caps: Capabilities,
    /// Root and context tables (and, in scalable mode, the devices' PASID tables).
    pub ctx: ContextTables,
    queue: Option<Queue>,
    status: PhysAddr,
    seq: u32,
    iotlb_reg: u32,
    iva: u32,
}

impl DmarUnit {
    /// Allocates the unit's root table, invalidation queue (when `via` is queued) and
    /// status word, in that order.
    pub fn new(
        name: &str,
        caps: &Capabilities,
        scalable: bool,
        via: InvalidationVia,
        alloc: &mut TableAllocator,
    ) -> Result<DmarUnit, TableError> {
        let ctx = if scalable {
            ContextTables::new_scalable(alloc)
        } else {
            ContextTables::new_legacy(alloc)
        }?;
        let queue = match via {
            InvalidationVia::Queued => Some(Queue {
                base: alloc.alloc()?.raw(),
                tail: 0,
                wide: scalable,
            }),
            InvalidationVia::Register => None,
        };
        let status = alloc.alloc()?;
        let ecap = caps.ecap();
        Ok(DmarUnit {
            name: name.to_owned(),
            caps: caps.clone(),
            ctx,
            queue,
            status,
            seq: 0,
            iotlb_reg: (ecap.iotlb_offset() + 8) as u32,
            iva: ecap.iotlb_offset() as u32,
        })
    }

    /// What the driver writes to submit `descs` to this unit: the descriptors and a wait on
    /// its queue, or register commands when it has no queue.
    pub fn submit(&mut self, descs: &[InvDescriptor]) -> Result<Invalidation, String> {
        let Some(q) = self.queue.as_mut() else {
            return self.register_commands(descs);
        };
        let size: usize = if q.wide { 32 } else { 16 };
        // The driver waits for the queue to drain before each submission (the wait), so
        // one submission may use every slot but one (head == tail means empty).
        if ((descs.len() + 1) * size) as u64 >= IQ_BYTES {
            return Err(format!(
                "{} descriptors and a wait do not fit the {IQ_BYTES}-byte invalidation queue",
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

    /// Register-based invalidation: CCMD and IVA + IOTLB_REG writes, then the busy bit of
    /// the last one to poll.
    fn register_commands(&self, descs: &[InvDescriptor]) -> Result<Invalidation, String> {
        let mut writes = Vec::new();
        let (mut poll, mut busy) = (offset::CCMD as u32, 1u64 << 63);
        for d in descs {
            match *d {
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

impl HostUnit for DmarUnit {
    type Caps = Capabilities;

    fn name(&self) -> &str {
        &self.name
    }

    fn caps(&self) -> &Capabilities {
        &self.caps
    }

    /// The register writes of boot, in order: root table, queued invalidation, translation
    /// enable (Linux `iommu_set_root_entry`, `dmar_enable_qi`, `iommu_enable_translation`).
    fn boot_registers(&self) -> Vec<(u32, u64)> {
        let mut rta = self.ctx.root_table().raw();
        if self.ctx.scalable() {
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
}
