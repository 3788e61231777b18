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
                r.forces_snoop = t.forces_snoop;
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

    /// A translated request reached memory: writes are performed, reads fetch their data,
    /// snooped or not by the effective snoop decision (DESIGN.md):
    /// `snooped = !no_snoop || forces_snoop || !platform.honours_no_snoop`.
    pub(super) fn memory_in(
        &mut self,
        now: Tick,
        req: Key,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let lost = SimError::Lost(Event::MemoryIn { req });
        let r = self.reqs.get_mut(req).ok_or(lost.clone())?;
        let snooped = !r.tlp.attr.no_snoop || r.forces_snoop || !self.honours_no_snoop;
        self.mem.observer_mut().device = r.tlp.requester;
        // Only the enabled bytes are read or written.
        let lead = (r.tlp.first_enabled_address() - r.tlp.address) as usize;
        let n = r.tlp.enabled_bytes() as usize;
        let first = PhysAddr(r.pa.raw() + lead as u64);
        let cache_err = |e: cache::CacheError| SimError::Cache(e.to_string());
        match r.tlp.kind {
            TlpKind::MemWrite => {
                let data = r.tlp.payload.slice(lead..lead + n);
                let done = self
                    .mem
                    .dma_write(now, first, &data, snooped)
                    .map_err(cache_err)?;
                let r = self.reqs.remove(req).ok_or(lost)?;
                self.horizon = self.horizon.max(done);
                self.record(DMA_WRITE, done.saturating_since(r.issued));
                if r.last {
                    self.record(DMA_WRITE_TRANSFER, done.saturating_since(r.started));
                }
            }
            _ => {
                let mut buf = vec![0u8; r.tlp.payload_bytes_requested()];
                let done = if n == 0 {
                    now // a zero-length read touches no memory
                } else {
                    self.mem
                        .dma_read(now, first, &mut buf[lead..lead + n], snooped)
                        .map_err(cache_err)?
                };
                r.data = Bytes::from(buf);
                q.schedule(
                    done + self.rc.completion_latency,
                    Event::CompletionTx { req },
                )?;
            }
        }
        self.arm_mem_wake(q)
    }

    /// Makes sure weakly ordered flushes are performed (and observed) when they are due.
    pub(super) fn arm_mem_wake(&mut self, q: &mut EventQueue<Event>) -> Result<(), SimError> {
        if let Some(due) = self.mem.next_wakeup() {
            if self.mem_wake.is_none_or(|t| due < t) {
                self.mem_wake = Some(due.max(q.now()));
                q.schedule(due.max(q.now()), Event::MemWake)?;
            }
        }
        Ok(())
    }

    /// Pending flushes are due.
    pub(super) fn mem_wake(
        &mut self,
        now: Tick,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        if self.mem_wake != Some(now) {
            return Ok(()); // superseded by an earlier wake-up
        }
        self.mem_wake = None;
        self.mem
            .advance(now)
            .map_err(|e| SimError::Cache(e.to_string()))?;
        self.arm_mem_wake(q)
    }
}
