//! Handlers for the host side: the IOMMU and memory.

use super::driver::UnitId;
use super::{
    Event, IommuAccess, RefKey, SimError, System, DMA_WRITE, DMA_WRITE_TRANSFER, TRANSLATION,
};
use crate::check::MisdirectedDma;
use crate::engine::EventQueue;
use crate::slab::Key;
use bytes::Bytes;
use model_core::{
    AccessKind, AgentOutput, Iova, PhysAddr, Tick, Translation, TranslationFault,
    TranslationRequest,
};
use pcie::tlp::AddressType;
use pcie::{CplStatus, TlpKind};
use reports::{hex_address, FaultRecord};

/// Fault records kept per run (all are counted).
const MAX_FAULT_RECORDS: usize = 16;

impl System {
    /// A request reached the IOMMU: hand it to the unit whose device scope holds its device
    /// and act on what the unit says.
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
        r.tr = Some(tr);
        r.at_iommu = now;
        let dev = r.dev;
        let u = self.unit_of(dev);
        self.translations += 1;
        if let Some(unit) = self.units.get_mut(u.index()) {
            unit.translations += 1;
        }
        self.unit(u)?.request(now, u64::from(req.raw()), &tr);
        self.drain_iommu(u, q)
    }

    /// Acts on everything unit `u` has to say: table reads and status writes to perform,
    /// translations to route, registers software may be polling.
    pub(super) fn drain_iommu(
        &mut self,
        u: UnitId,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        while let Some(out) = self.unit(u)?.poll_output() {
            match out {
                AgentOutput::MemRead {
                    tag,
                    pa,
                    len,
                    snooped,
                    at,
                } => {
                    let access = self.iommu_mem.insert(IommuAccess::Read {
                        unit: u,
                        tag,
                        pa,
                        snooped,
                        data: vec![0; len as usize],
                    });
                    q.schedule(at, Event::IommuMem { access })?;
                }
                AgentOutput::MemWrite {
                    pa,
                    value,
                    len,
                    snooped,
                    at,
                } => {
                    let bytes = value.to_le_bytes();
                    let access = self.iommu_mem.insert(IommuAccess::Write {
                        pa,
                        snooped,
                        data: bytes[..(len as usize).min(8)].to_vec(),
                    });
                    q.schedule(at, Event::IommuMem { access })?;
                }
                AgentOutput::Done { token, at, result } => {
                    self.translated(u, token, at, result, q)?
                }
                AgentOutput::RegisterChanged { offset, at } => {
                    q.schedule(at, Event::IommuRegister { unit: u, offset })?;
                }
            }
        }
        Ok(())
    }

    /// Unit `u` decided about a request.
    fn translated(
        &mut self,
        u: UnitId,
        token: u64,
        at: Tick,
        result: Result<Translation, TranslationFault>,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let req = Key::from_raw(token);
        let r = self.reqs.get_mut(req).ok_or(SimError::Invariant(
            "the IOMMU answered a request not in flight",
        ))?;
        if let Some(h) = self.latency.get_mut(TRANSLATION) {
            h.record_ps(at.saturating_since(r.at_iommu).as_ps());
        }
        match result {
            Ok(t) => {
                r.pa = t.pa;
                r.forces_snoop = t.forces_snoop;
                q.schedule(at, Event::MemoryIn { req })?;
            }
            Err(f) => {
                // A blocked request is data, not an error: record it; a write is dropped, a
                // read is answered with Unsupported Request (VT-d spec §7.1, AMD-Vi §2.5).
                self.fault_count += 1;
                if let Some(unit) = self.units.get_mut(u.index()) {
                    unit.faults += 1;
                }
                if self.faults.len() < MAX_FAULT_RECORDS {
                    let requester = match f.pasid {
                        Some(p) => format!("{}/{p:#x}", f.requester),
                        None => f.requester.to_string(),
                    };
                    self.faults.push(FaultRecord {
                        tick_ps: at.as_ps(),
                        requester,
                        address: hex_address(f.iova.raw()),
                        access: match f.access {
                            AccessKind::Read => "read".to_owned(),
                            AccessKind::Write => "write".to_owned(),
                        },
                        reason_code: f.reason_code,
                        reason: f.reason.to_owned(),
                        logged: f.logged,
                    });
                }
                match f.access {
                    AccessKind::Write => {
                        self.reqs.remove(req);
                        self.horizon = self.horizon.max(at);
                    }
                    AccessKind::Read => {
                        r.status = CplStatus::Ur;
                        q.schedule(at + self.rc.completion_latency, Event::CompletionTx { req })?;
                    }
                }
            }
        }
        Ok(())
    }

    /// An IOMMU access to memory starts (reads) or is performed (writes) now.
    pub(super) fn iommu_mem(
        &mut self,
        now: Tick,
        access: Key,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let cache_err = |e: cache::CacheError| SimError::Cache(e.to_string());
        let lost = SimError::Lost(Event::IommuMem { access });
        self.mem.observer_mut().iommu_access = true;
        let result = match self.iommu_mem.get_mut(access).ok_or(lost.clone())? {
            IommuAccess::Read {
                pa, snooped, data, ..
            } => self
                .mem
                .dma_read(now, *pa, data, *snooped)
                .map_err(cache_err)
                .map(Some),
            IommuAccess::Write { pa, snooped, data } => {
                let pa = *pa;
                let done = self.mem.dma_write(now, pa, data, *snooped);
                let done = done.map_err(cache_err);
                if let Ok(t) = done {
                    self.horizon = self.horizon.max(t);
                    self.mem.observer_mut().iommu_access = false;
                    self.wake_memory_pollers(t, pa, q)?;
                }
                done.map(|_| None)
            }
        };
        self.mem.observer_mut().iommu_access = false;
        match result? {
            Some(done) => q.schedule(done, Event::IommuMemDone { access })?,
            None => {
                self.iommu_mem.remove(access).ok_or(lost)?;
            }
        }
        self.arm_mem_wake(q)
    }

    /// The data of an IOMMU read arrived.
    pub(super) fn iommu_mem_done(
        &mut self,
        now: Tick,
        access: Key,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let lost = SimError::Lost(Event::IommuMemDone { access });
        let IommuAccess::Read {
            unit, tag, data, ..
        } = self.iommu_mem.remove(access).ok_or(lost)?
        else {
            return Err(SimError::Invariant("a write awaited its data"));
        };
        self.unit(unit)?
            .memory_read_done(now, tag, &data)
            .map_err(|e| SimError::Iommu(e.to_string()))?;
        self.drain_iommu(unit, q)
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
        self.check_direction(now, req)?;
        let r = self.reqs.get_mut(req).ok_or(lost.clone())?;
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
                    self.transfer_done(r.dev, done, q)?;
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

    /// Compares where the IOMMU sent a request with where the tables, as software last wrote
    /// them, send it (a cache-less walk over the checker's coherent reference memory); a
    /// difference is a misdirected DMA.
    fn check_direction(&mut self, now: Tick, req: Key) -> Result<(), SimError> {
        let r = self
            .reqs
            .get(req)
            .ok_or(SimError::Lost(Event::MemoryIn { req }))?;
        let Some(tr) = r.tr else {
            return Err(SimError::Invariant("a request reached memory untranslated"));
        };
        let dma = MisdirectedDma {
            at: now,
            device: r.tlp.requester,
            iova: r.tlp.address,
            pa: r.pa,
            expected: Err(0),
            bytes: r.tlp.enabled_bytes(),
            write: r.tlp.kind == TlpKind::MemWrite,
        };
        let expected = self.reference_translation(self.unit_of(r.dev), &tr)?;
        if expected.is_ok_and(|t| t.pa == dma.pa) {
            return Ok(());
        }
        let dma = MisdirectedDma {
            expected: expected.map(|t| t.pa),
            ..dma
        };
        self.mem.observer_mut().misdirected(dma);
        Ok(())
    }

    /// Where the tables as software last wrote them send `tr`: a cache-less walk of the
    /// checker's reference memory. The walk is the same for every request to a 4 KiB page
    /// until a translation structure it read changes, so its outcome is kept per (request
    /// kind, page) until a write lands in a frame it read or an IOMMU register is written.
    /// The walk is unit `u`'s: the one whose device scope holds the requester.
    fn reference_translation(
        &mut self,
        u: UnitId,
        tr: &TranslationRequest,
    ) -> Result<Result<Translation, u32>, SimError> {
        let epoch = self.mem.observer().table_epoch();
        if epoch != self.ref_memo.epoch {
            self.ref_memo.outcomes.clear();
            self.ref_memo.epoch = epoch;
        }
        let offset = tr.iova.raw() & 0xfff;
        let key = RefKey::of(tr);
        if let Some(r) = self.ref_memo.outcomes.get(&key) {
            return Ok(r.map(|t| Translation {
                pa: PhysAddr(t.pa.raw() | offset),
                ..t
            }));
        }
        let mut frames = Vec::new();
        let reference = self.mem.observer().reference();
        let page = TranslationRequest {
            iova: Iova(tr.iova.raw() & !0xfff),
            ..*tr
        };
        let unit = self
            .units
            .get(u.index())
            .ok_or(SimError::Invariant("an IOMMU unit the platform lacks"))?;
        let r = unit
            .iommu
            .agent_ref()
            .reference_translate(&page, &mut |pa, buf| {
                frames.push(pa);
                reference.read(pa, buf);
            });
        let checker = self.mem.observer_mut();
        for pa in frames {
            checker.watch(pa);
        }
        self.ref_memo.outcomes.insert(key, r);
        Ok(r.map(|t| Translation {
            pa: PhysAddr(t.pa.raw() | offset),
            ..t
        }))
    }

    /// A unit's register changed by itself: CPUs polling it look again.
    pub(super) fn iommu_register(
        &mut self,
        now: Tick,
        unit: UnitId,
        offset: u32,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        self.wake_register_pollers(now, unit, offset, q)
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
