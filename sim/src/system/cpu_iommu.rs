//! CPU program operations that drive the IOMMU the way its driver does: table writes as
//! ordinary stores (one per step, so DMA and walks interleave with them), CLFLUSH when the
//! driver flushes, MMIO writes to the unit's registers, and waiting for an invalidation to
//! complete — spinning on the invalidation-wait status word (queued) or polling the busy
//! bit (register-based).
//!
//! After an `iommu_unmap` the driver may invalidate on its own (`software.unmap_invalidation`):
//! in strict mode the unmapping CPU invalidates the range before going on; in deferred mode
//! the range joins its domain's flush queue ([`UnmapPolicy`]), which the CPU that fills it
//! flushes at once, and the flush-queue timer otherwise, as an interrupt of the CPU that
//! queued the batch's first range (taken between its program steps; see `cpu.rs`). Either
//! is a *driver job* the CPU owes before its next program step.

use super::cpu::CpuDriver;
use super::driver::{Driver, FlushCause, FlushRecord, Invalidation, UnitId, UnmapPolicy};
use super::{Event, SimError, System};
use crate::engine::EventQueue;
use crate::scenario::software::UnmapInvalidation;
use crate::scenario::values::Bounded;
use crate::scenario::{CpuOp, IommuInvalidateOp};
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
    /// An unmap the policy must follow up once its stores are done.
    unmapped: Option<Unmapped>,
}

/// A range an `iommu_unmap` cleared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Unmapped {
    domain: String,
    iova: u64,
    bytes: Bounded<1, { 1 << 46 }>,
}

/// Driver work a CPU owes before its next program step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DriverJob {
    /// Strict mode: invalidate the range an unmap just cleared (at `unmapped`), and wait.
    Sync { range: Unmapped, unmapped: Tick },
    /// Flush a domain's flush queue, if `batch` is still waiting, and wait.
    Flush {
        domain: String,
        batch: u64,
        cause: FlushCause,
    },
}

/// Host software's invalidation after unmaps: the policy with its flush queues, and the
/// driver jobs and interrupt state of each CPU.
#[derive(Debug, Clone, Default)]
pub(super) struct UnmapWork {
    policy: UnmapPolicy,
    /// By CPU index, grown on first use.
    cpus: Vec<CpuDriver>,
}

impl UnmapWork {
    /// The work `software.unmap_invalidation` asks for (none yet).
    pub(super) fn new(policy: UnmapInvalidation) -> UnmapWork {
        UnmapWork {
            policy: UnmapPolicy::new(policy),
            cpus: Vec::new(),
        }
    }

    /// CPU `cpu`'s state.
    pub(super) fn cpu(&mut self, cpu: u16) -> &mut CpuDriver {
        let i = usize::from(cpu);
        if self.cpus.len() <= i {
            self.cpus.resize_with(i + 1, CpuDriver::default);
        }
        &mut self.cpus[i]
    }

    /// No range waits for a flush and no CPU owes a driver job: the run may end.
    pub(super) fn is_idle(&self) -> bool {
        self.policy.policy() == UnmapInvalidation::Explicit
            || (self.policy.is_empty() && self.cpus.iter().all(|c| c.jobs.is_empty()))
    }
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

    /// A run-time host operation's table stores (CLFLUSHed, then fenced, when `flush`),
    /// then each invalidation in turn with its wait.
    pub(super) fn table_writes(
        writes: Vec<MemWrite>,
        flush: bool,
        invalidations: Vec<(UnitId, Invalidation)>,
    ) -> HostWork {
        HostWork {
            flush: flush && !writes.is_empty(),
            writes: writes.into(),
            rest: invalidations.into(),
            ..HostWork::default()
        }
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
        let name = self.cpus[usize::from(cpu)].name.clone();
        let index = self.cpus[usize::from(cpu)].next;
        let fail = |m: String| SimError::Iommu(format!("cpu \"{name}\", operation {index}: {m}"));
        if let CpuOp::IommuInvalidate(i) = op {
            if !self.take_invalidation_lock(now, cpu) {
                return Ok(());
            }
            self.begin_invalidation(now, cpu, i, fail)?;
            self.cpus[usize::from(cpu)].next += 1;
            return self.host_step(now, cpu, q);
        }
        let explicit = self.unmap.policy.policy() == UnmapInvalidation::Explicit;
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
                .map_err(fail)?;
                work.unmapped = (!explicit).then(|| Unmapped {
                    domain: u.domain.clone(),
                    iova: u.iova.0,
                    bytes: u.bytes,
                });
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

    /// Takes the driver's invalidation queue lock for `cpu`, or makes it spin for it: Linux's
    /// qi_submit_sync and iommu_queue_command take a raw spinlock, so another CPU's
    /// submission waits (woken at the release, so a holder that never finishes leaves a
    /// stalled run, not an endless spin). The holder releases it when its wait ends.
    pub(super) fn take_invalidation_lock(&mut self, now: Tick, cpu: u16) -> bool {
        match self.invalidation_lock {
            Some(holder) if holder != cpu => {
                let c = &mut self.cpus[usize::from(cpu)];
                c.wait = Some(CpuWait::Lock);
                c.wait_since = now;
                false
            }
            _ => {
                self.invalidation_lock = Some(cpu);
                true
            }
        }
    }

    /// Makes the invalidation `op` the driver work of `cpu` (which holds the lock): the
    /// descriptor or command stores, the doorbell, the wait.
    fn begin_invalidation(
        &mut self,
        now: Tick,
        cpu: u16,
        op: &IommuInvalidateOp,
        fail: impl Fn(String) -> SimError,
    ) -> Result<(), SimError> {
        let host = self.driver.as_mut().ok_or_else(|| {
            fail("an IOMMU operation needs platform.iommu.vtd or .amdvi".to_owned())
        })?;
        // One submission per unit the domain spans, in order, each with its own wait
        // (descriptors are fetched snooped: no CLFLUSH).
        let mut list: VecDeque<_> = self.software.invalidate(host, op).map_err(&fail)?.into();
        let first = list
            .pop_front()
            .ok_or_else(|| fail("the invalidation reaches no unit".to_owned()))?;
        let work = HostWork::invalidation(first, list);
        let c = &mut self.cpus[usize::from(cpu)];
        c.host = Some(work);
        c.wait_since = now;
        Ok(())
    }

    /// An unmap's stores are done on `cpu`: strict mode owes the range's invalidation
    /// before the CPU goes on; deferred mode queues the range, arms the queue's timer if it
    /// is the batch's first, and owes the flush at once if the queue is full.
    fn unmapped(
        &mut self,
        now: Tick,
        cpu: u16,
        range: Unmapped,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let strict = match self.unmap.policy.policy() {
            UnmapInvalidation::Explicit => return Ok(()),
            UnmapInvalidation::Strict => true,
            // VFIO's domains are never lazy: `vfio_unmap_unpin` syncs the IOTLB before it
            // unpins the pages (only DMA-API domains of type DMA_FQ queue).
            UnmapInvalidation::Deferred(_) => self.software.is_vfio(&range.domain),
        };
        if strict {
            let job = DriverJob::Sync {
                range,
                unmapped: now,
            };
            self.unmap.cpu(cpu).jobs.push_front(job);
            return Ok(());
        }
        let Some(queued) = self.unmap.policy.queue(now, &range.domain, cpu) else {
            return Ok(());
        };
        if let Some((timer, at)) = queued.arm {
            q.schedule(at, Event::FlushQueueTimer { timer })?;
        }
        if queued.full {
            let job = DriverJob::Flush {
                domain: range.domain,
                batch: queued.batch,
                cause: FlushCause::Full,
            };
            self.unmap.cpu(cpu).jobs.push_front(job);
        }
        Ok(())
    }

    /// A flush-queue timer expired: the CPU that queued the batch's first range owes its
    /// flush and takes the interrupt as soon as it is between program steps.
    pub(super) fn flush_queue_timer(
        &mut self,
        now: Tick,
        timer: u64,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let Some((domain, batch, cpu)) = self.unmap.policy.fired(timer) else {
            return Ok(()); // cancelled: a flush emptied the queue first
        };
        self.unmap.cpu(cpu).jobs.push_back(DriverJob::Flush {
            domain,
            batch,
            cause: FlushCause::Timer,
        });
        self.take_interrupt(now, cpu, q)
    }

    /// Starts the first driver job `cpu` owes (between program steps); false when it owes
    /// none. A flush whose batch another flush already took is dropped.
    pub(super) fn start_driver_job(
        &mut self,
        now: Tick,
        cpu: u16,
        q: &mut EventQueue<Event>,
    ) -> Result<bool, SimError> {
        let job = loop {
            let Some(job) = self.unmap.cpu(cpu).jobs.front().cloned() else {
                return Ok(false);
            };
            match &job {
                DriverJob::Flush {
                    domain,
                    batch,
                    cause,
                } if !self.unmap.policy.owes(domain, *batch, *cause) => {
                    self.unmap.cpu(cpu).jobs.pop_front();
                }
                _ => break job,
            }
        };
        if !self.take_invalidation_lock(now, cpu) {
            return Ok(true);
        }
        self.unmap.cpu(cpu).jobs.pop_front();
        let name = self.cpus[usize::from(cpu)].name.clone();
        let policy = &mut self.unmap.policy;
        let (op, what) = match &job {
            DriverJob::Sync { range, unmapped } => {
                policy.synced(now, *unmapped, &range.domain, cpu);
                let driver = self.driver.as_ref().ok_or(SimError::Invariant(
                    "an unmap's invalidation without an IOMMU driver",
                ))?;
                let op = driver.unmap_sync(&range.domain, range.iova, range.bytes);
                (op, "the strict invalidation after an iommu_unmap")
            }
            DriverJob::Flush { domain, cause, .. } => {
                policy.take(now, domain, cpu, *cause);
                (Driver::flush_all(domain), "a flush-queue flush")
            }
        };
        let fail = |m: String| SimError::Iommu(format!("cpu \"{name}\", {what}: {m}"));
        self.begin_invalidation(now, cpu, &op, fail)?;
        self.host_step(now, cpu, q)?;
        Ok(true)
    }

    /// Every invalidation the driver began on its own after unmaps, in order.
    pub fn unmap_flushes(&self) -> &[FlushRecord] {
        self.unmap.policy.log()
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
                let next = work
                    .wbinvds
                    .front()
                    .map_or(work.until, |&(start, _)| start.max(now));
                c.stats.maintenance += next.saturating_since(now);
                next
            }
        } else if let Some(pa) = work.flushing.take() {
            let done = self.mem.clflush(now, core, pa).map_err(err)?;
            c.stats.maintenance += done.saturating_since(now);
            done
        } else if let Some(w) = work.writes.pop_front() {
            c.stats.stores += 1;
            if work.flush {
                work.flushing = Some(w.pa);
            }
            self.mem.store(now, core, w.pa, &w.bytes).map_err(err)?
        } else if work.flush && !work.fenced {
            work.fenced = true;
            let done = self.mem.mfence(now, core).map_err(err)?;
            c.stats.maintenance += done.saturating_since(now);
            done
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
            // The next unit's invalidation starts when this wait ends (or now, after table
            // stores).
            if let Some(next) = work.rest.pop_front() {
                c.host = Some(HostWork::invalidation(next, work.rest));
            }
            if c.wait.is_none() {
                c.stats.stall += now.saturating_since(c.wait_since);
                c.wait_since = now;
                q.schedule(now, Event::CpuStep { cpu })?;
                // A host operation that took the lock and needed no invalidation is done.
                if c.host.is_none() && self.invalidation_lock == Some(cpu) {
                    self.release_invalidation_lock(now, q)?;
                }
            }
            if let Some(range) = work.unmapped {
                self.unmapped(now, cpu, range, q)?;
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
                self.release_invalidation_lock(t, q)?;
            }
            let c = &mut self.cpus[usize::from(cpu)];
            c.wait = None;
            c.stats.stall += t.saturating_since(c.wait_since);
            self.horizon = self.horizon.max(t);
            q.schedule(t, Event::CpuStep { cpu })?;
        }
        self.arm_mem_wake(q)
    }

    /// The holder releases the invalidation queue lock at `t`: spinning CPUs see it then.
    fn release_invalidation_lock(
        &mut self,
        t: Tick,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        self.invalidation_lock = None;
        for (i, c) in self.cpus.iter_mut().enumerate() {
            if c.wait == Some(CpuWait::Lock) {
                c.wait = None;
                c.stats.stall += t.saturating_since(c.wait_since);
                q.schedule(t, Event::CpuStep { cpu: i as u16 })?;
            }
        }
        Ok(())
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
