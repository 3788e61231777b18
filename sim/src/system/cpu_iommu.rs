//! CPU program operations that drive the IOMMU the way its driver does: table writes as
//! ordinary stores (one per step, so DMA and walks interleave with them), CLFLUSH when the
//! driver flushes, MMIO writes to the unit's registers, and waiting for an invalidation to
//! complete — spinning on the invalidation-wait status word (queued) or polling the busy
//! bit (register-based).

use super::driver::{Invalidation, UnitId};
use super::{Event, SimError, System};
use crate::engine::EventQueue;
use crate::scenario::CpuOp;
use model_core::MemWrite;
use model_core::{PhysAddr, Tick};
use std::collections::VecDeque;

/// What a CPU waits for before its next operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuWait {
    /// The status word at `pa` to hold `data` in its low `width` bytes.
    Memory {
        /// Status word.
        pa: PhysAddr,
        /// Expected value.
        data: u64,
        /// Bytes compared.
        width: u8,
    },
    /// The driver's invalidation queue lock to be released.
    Lock,
    /// Register `offset` of unit `unit` to read with `busy` clear.
    Register {
        /// The unit.
        unit: UnitId,
        /// Register offset.
        offset: u32,
        /// Busy bit(s).
        busy: u64,
    },
}

/// Driver work in progress on a CPU: table or descriptor stores, then what follows them.
#[derive(Debug, Clone, Default)]
pub struct HostWork {
    writes: VecDeque<MemWrite>,
    flush: bool,
    /// The line just stored, to CLFLUSH next.
    flushing: Option<PhysAddr>,
    fenced: bool,
    /// Register writes to `unit` once the stores are done (and the wait that follows them).
    then: Vec<(u32, u64)>,
    unit: UnitId,
    wait: Option<CpuWait>,
    /// Invalidations for further units, each started when the previous one's wait ends.
    rest: VecDeque<(UnitId, Invalidation)>,
    /// KVM's emulated WBINVD: each pCPU's WBINVD and when it starts, in start order.
    wbinvds: VecDeque<(Tick, cache::CoreId)>,
    /// When the last of them is done.
    until: Tick,
}

impl HostWork {
    /// One unit's invalidation: its descriptor stores, then its doorbell and the wait on
    /// the status word; or its register writes, then polling the busy bit. `rest` follow.
    fn invalidation(
        (unit, inv): (UnitId, Invalidation),
        rest: VecDeque<(UnitId, Invalidation)>,
    ) -> HostWork {
        let mut work = HostWork {
            unit,
            rest,
            ..HostWork::default()
        };
        match inv {
            Invalidation::Queued {
                writes,
                doorbell,
                status,
                data,
                width,
            } => {
                work.writes = writes.into();
                work.then = vec![doorbell];
                work.wait = Some(CpuWait::Memory {
                    pa: status,
                    data,
                    width,
                });
            }
            Invalidation::Register { writes, poll, busy } => {
                work.then = writes;
                work.wait = Some(CpuWait::Register {
                    unit,
                    offset: poll,
                    busy,
                });
            }
        }
        work
    }

    /// WBINVD on each `(start, pCPU)`, in start order; done when all are (as
    /// `wbinvd_on_cpus_mask` waits for every IPI's handler).
    pub(super) fn wbinvds(list: impl IntoIterator<Item = (Tick, cache::CoreId)>) -> HostWork {
        HostWork {
            wbinvds: list.into_iter().collect(),
            ..HostWork::default()
        }
    }
}

impl System {
    /// Performs driver writes at boot, back to back on `core` (nothing else runs yet).
    pub(super) fn host_writes(
        &mut self,
        now: Tick,
        core: cache::CoreId,
        writes: &[MemWrite],
        flush: bool,
    ) -> Result<Tick, SimError> {
        let err = |e: cache::CacheError| SimError::Cache(e.to_string());
        let mut t = now;
        for w in writes {
            t = self.mem.store(t, core, w.pa, &w.bytes).map_err(err)?;
            if flush {
                t = self.mem.clflush(t, core, w.pa).map_err(err)?;
            }
        }
        if flush && !writes.is_empty() {
            t = self.mem.mfence(t, core).map_err(err)?;
        }
        Ok(t)
    }

    /// Starts an IOMMU operation of CPU `cpu` (the op at its `next`).
    pub(super) fn cpu_iommu_op(
        &mut self,
        now: Tick,
        cpu: u16,
        op: &CpuOp,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        // Invalidations are serialised by the driver's queue lock (Linux qi_submit_sync and
        // iommu_queue_command take a raw spinlock): another CPU's submission spins.
        if matches!(op, CpuOp::IommuInvalidate(_)) {
            match self.invalidation_lock {
                Some(holder) if holder != cpu => {
                    // Spin until the holder releases the lock (woken then, so a holder that
                    // never finishes leaves a stalled run, not an endless spin).
                    let c = &mut self.cpus[usize::from(cpu)];
                    c.wait = Some(CpuWait::Lock);
                    c.wait_since = now;
                    return Ok(());
                }
                _ => self.invalidation_lock = Some(cpu),
            }
        }
        let name = self.cpus[usize::from(cpu)].name.clone();
        let index = self.cpus[usize::from(cpu)].next;
        let fail = |m: String| SimError::Iommu(format!("cpu \"{name}\", operation {index}: {m}"));
        let host = self.driver.as_mut().ok_or_else(|| {
            fail("an IOMMU operation needs platform.iommu.vtd or .amdvi".to_owned())
        })?;
        let mut work = HostWork {
            flush: host.flush(),
            ..HostWork::default()
        };
        let mut writes = Vec::new();
        let api = &self.software;
        match op {
            CpuOp::IommuMap(m) => {
                work.flush = m.flush.unwrap_or(work.flush);
                api.map(host, &m.domain, &m.mapping, &mut writes)
                    .map_err(fail)?
            }
            CpuOp::IommuUnmap(u) => {
                work.flush = u.flush.unwrap_or(work.flush);
                api.unmap(
                    host,
                    &u.domain,
                    u.iova.0,
                    u.bytes.0,
                    u.page.into(),
                    &mut writes,
                )
                .map_err(fail)?
            }
            CpuOp::IommuInvalidate(i) => {
                // One submission per unit, in order, each with its own wait (descriptors
                // are fetched snooped: no flush).
                let mut list: VecDeque<_> = api.invalidate(host, i).map_err(fail)?.into();
                let first = list
                    .pop_front()
                    .ok_or_else(|| fail("the invalidation reaches no unit".to_owned()))?;
                work = HostWork::invalidation(first, list);
                writes = std::mem::take(&mut work.writes).into();
            }
            _ => return Err(fail("not an IOMMU operation".to_owned())),
        }
        work.writes = writes.into();
        let c = &mut self.cpus[usize::from(cpu)];
        c.next += 1;
        c.host = Some(work);
        c.wait_since = now;
        self.host_step(now, cpu, q)
    }

    /// One step of driver work: a store, a CLFLUSH, the fence, or the MMIO writes.
    pub(super) fn host_step(
        &mut self,
        now: Tick,
        cpu: u16,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let err = |e: cache::CacheError| SimError::Cache(e.to_string());
        let c = &mut self.cpus[usize::from(cpu)];
        let core = c.core;
        let Some(work) = c.host.as_mut() else {
            return Ok(());
        };
        let next = if let Some(&(start, pcpu)) = work.wbinvds.front() {
            if now < start {
                start
            } else {
                work.wbinvds.pop_front();
                let done = self.mem.wbinvd(now, pcpu).map_err(err)?;
                work.until = work.until.max(done);
                work.wbinvds
                    .front()
                    .map_or(work.until, |&(start, _)| start.max(now))
            }
        } else if let Some(pa) = work.flushing.take() {
            self.mem.clflush(now, core, pa).map_err(err)?
        } else if let Some(w) = work.writes.pop_front() {
            c.stats.stores += 1;
            if work.flush {
                work.flushing = Some(w.pa);
            }
            self.mem.store(now, core, w.pa, &w.bytes).map_err(err)?
        } else if work.flush && !work.fenced {
            work.fenced = true;
            self.mem.mfence(now, core).map_err(err)?
        } else {
            // Posted MMIO writes to the unit, in order, after the stores.
            let mut work = c.host.take().unwrap_or_default();
            let unit = work.unit;
            for (offset, value) in work.then {
                q.schedule(
                    now + self.mmio_latency,
                    Event::IommuRegWrite {
                        unit,
                        offset,
                        value,
                    },
                )?;
            }
            c.wait = work.wait;
            // The next unit's invalidation starts when this wait ends.
            if let Some(next) = work.rest.pop_front() {
                c.host = Some(HostWork::invalidation(next, work.rest));
            }
            if c.wait.is_none() {
                c.stats.stall += now.saturating_since(c.wait_since);
                q.schedule(now, Event::CpuStep { cpu })?;
            }
            return self.arm_mem_wake(q);
        };
        self.horizon = self.horizon.max(next);
        q.schedule(next, Event::CpuStep { cpu })?;
        self.arm_mem_wake(q)
    }

    /// A waiting CPU looks again at what it waits for.
    pub(super) fn cpu_poll(
        &mut self,
        now: Tick,
        cpu: u16,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let c = &mut self.cpus[usize::from(cpu)];
        let core = c.core;
        let Some(wait) = c.wait else {
            return Ok(());
        };
        let seen = match wait {
            // Woken by the release; the lock is taken when the operation starts again.
            CpuWait::Lock => return Ok(()),
            CpuWait::Memory { pa, data, width } => {
                let mut b = [0u8; 8];
                let n = usize::from(width.min(8));
                let t = self
                    .mem
                    .load(now, core, pa, &mut b[..n])
                    .map_err(|e| SimError::Cache(e.to_string()))?;
                c.stats.loads += 1;
                (b[..n] == data.to_le_bytes()[..n]).then_some(t)
            }
            CpuWait::Register { unit, offset, busy } => {
                let v = self
                    .unit(unit)?
                    .register_read(now, offset)
                    .map_err(|e| SimError::Iommu(e.to_string()))?;
                // An uncached read is a round trip to the unit.
                (v & busy == 0).then_some(now + self.mmio_latency + self.mmio_latency)
            }
        };
        if let Some(t) = seen {
            let c = &mut self.cpus[usize::from(cpu)];
            if c.host.is_some() {
                // More units to invalidate: the lock stays held.
                c.wait = None;
                c.stats.stall += t.saturating_since(c.wait_since);
                c.wait_since = t;
                self.horizon = self.horizon.max(t);
                q.schedule(t, Event::CpuStep { cpu })?;
                return self.arm_mem_wake(q);
            }
            if self.invalidation_lock == Some(cpu) {
                self.invalidation_lock = None;
                // Spinning CPUs see the release when the holder's wait ends.
                for (i, c) in self.cpus.iter_mut().enumerate() {
                    if c.wait == Some(CpuWait::Lock) {
                        c.wait = None;
                        c.stats.stall += t.saturating_since(c.wait_since);
                        q.schedule(t, Event::CpuStep { cpu: i as u16 })?;
                    }
                }
            }
            let c = &mut self.cpus[usize::from(cpu)];
            c.wait = None;
            c.stats.stall += t.saturating_since(c.wait_since);
            self.horizon = self.horizon.max(t);
            q.schedule(t, Event::CpuStep { cpu })?;
        }
        self.arm_mem_wake(q)
    }

    /// The IOMMU wrote memory at `pa` at `at`: CPUs spinning on it look again.
    pub(super) fn wake_memory_pollers(
        &mut self,
        at: Tick,
        pa: PhysAddr,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        for (i, c) in self.cpus.iter().enumerate() {
            if matches!(c.wait, Some(CpuWait::Memory { pa: p, .. }) if p == pa) {
                q.schedule(at, Event::CpuStep { cpu: i as u16 })?;
            }
        }
        Ok(())
    }

    /// A unit's register changed: CPUs polling it look again.
    pub(super) fn wake_register_pollers(
        &mut self,
        now: Tick,
        unit: UnitId,
        offset: u32,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        for (i, c) in self.cpus.iter().enumerate() {
            if matches!(c.wait, Some(CpuWait::Register { unit: u, offset: o, .. })
                if u == unit && o == offset)
            {
                q.schedule(now, Event::CpuStep { cpu: i as u16 })?;
            }
        }
        Ok(())
    }

    /// Host software's MMIO write reaches a unit's register.
    pub(super) fn iommu_reg_write(
        &mut self,
        now: Tick,
        unit: UnitId,
        offset: u32,
        value: u64,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        self.unit(unit)?
            .register_write(now, offset, value)
            .map_err(|e| SimError::Iommu(e.to_string()))?;
        // A register write may change what the tables mean (root pointer, enable bits).
        self.ref_memo = Default::default();
        self.drain_iommu(unit, q)
    }
}
