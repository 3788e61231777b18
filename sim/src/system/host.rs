//! Handlers for the host side: the IOMMU and memory.

use super::{Event, SimError, System, DMA_WRITE, DMA_WRITE_TRANSFER};
use crate::engine::EventQueue;
use crate::slab::Key;
use bytes::Bytes;
use model_core::{AccessKind, Iova, PhysAddr, Tick, TranslationRequest};
use pcie::tlp::AddressType;
use pcie::{CplStatus, TlpKind};
use reports::{hex_address, FaultRecord};

/// Fault records kept per run (all are counted).
const MAX_FAULT_RECORDS: usize = 16;

impl System {
    /// A request reached the IOMMU: translate it.
    pub(super) fn iommu_in(
        &mut self,
        now: Tick,
        req: Key,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let r = self
            .reqs
            .get_mut(req)
            .ok_or(SimError::Lost(Event::IommuIn { req }))?;
        let access = match r.tlp.kind {
            TlpKind::MemWrite => AccessKind::Write,
            _ => AccessKind::Read,
        };
        let tr = TranslationRequest {
            requester: r.tlp.requester,
            iova: Iova(r.tlp.address),
            len: r.tlp.payload_bytes_requested() as u32,
            access,
            pasid: r.tlp.pasid.map(|p| p.pasid),
            execute: r.tlp.pasid.is_some_and(|p| p.execute),
            privileged: r.tlp.pasid.is_some_and(|p| p.privileged),
            no_snoop: r.tlp.attr.no_snoop,
            translated: r.tlp.at == AddressType::Translated,
        };
        self.translations += 1;
        match self.iommu.agent().translate(now, &tr) {
            Ok(t) => {
                r.pa = t.pa;
                q.schedule(now + t.latency, Event::MemoryIn { req })?;
                Ok(())
            }
            Err(f) => {
                // A blocked request is data, not an error: record it; a write is dropped, a
                // read is answered with Unsupported Request (VT-d spec §7.1, AMD-Vi §2.5).
                self.fault_count += 1;
                if self.faults.len() < MAX_FAULT_RECORDS {
                    self.faults.push(FaultRecord {
                        tick_ps: now.as_ps(),
                        requester: f.requester.to_string(),
                        address: hex_address(f.iova.raw()),
                        reason_code: f.reason_code,
                        reason: f.reason.to_owned(),
                    });
                }
                let at = now + f.latency;
                match access {
                    AccessKind::Write => {
                        self.reqs.remove(req);
                        self.horizon = self.horizon.max(at);
                    }
                    AccessKind::Read => {
                        r.status = CplStatus::Ur;
                        q.schedule(at + self.rc.completion_latency, Event::CompletionTx { req })?;
                    }
                }
                Ok(())
            }
        }
    }

    /// A translated request reached memory: writes are performed, reads fetch their data.
    pub(super) fn memory_in(
        &mut self,
        now: Tick,
        req: Key,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let lost = SimError::Lost(Event::MemoryIn { req });
        let r = self.reqs.get_mut(req).ok_or(lost.clone())?;
        let bdf = r.tlp.requester;
        // Only the enabled bytes are read or written.
        let lead = r.tlp.first_enabled_address() - r.tlp.address;
        let n = r.tlp.enabled_bytes() as usize;
        let first = PhysAddr(r.pa.raw() + lead);
        match r.tlp.kind {
            TlpKind::MemWrite => {
                let data = r.tlp.payload.slice(lead as usize..lead as usize + n);
                let done = self.dram.write(now, first, &data);
                self.checker.dma_write(now, bdf, first, &data);
                let r = self.reqs.remove(req).ok_or(lost)?;
                self.horizon = self.horizon.max(done);
                self.record(DMA_WRITE, done.saturating_since(r.issued));
                if r.last {
                    self.record(DMA_WRITE_TRANSFER, done.saturating_since(r.started));
                }
            }
            _ => {
                let mut buf = vec![0u8; r.tlp.payload_bytes_requested()];
                let done = self.dram.read(now, r.pa, &mut buf);
                let lead = lead as usize;
                self.checker.dma_read(now, bdf, first, &buf[lead..lead + n]);
                r.data = Bytes::from(buf);
                q.schedule(
                    done + self.rc.completion_latency,
                    Event::CompletionTx { req },
                )?;
            }
        }
        Ok(())
    }
}
