//! Handlers for the CPUs' programs and the MMIO writes (doorbells) they send downstream.
//!
//! A CPU's uncached store to a device register becomes a posted memory write from the root
//! complex (PCIe Base 6.0 §2.2.7.1) that leaves the root port `mmio_latency` later, queues on
//! the downstream link behind — or, where the ordering rules allow, ahead of — completions,
//! needs the device's posted receive credits, and rings the device's doorbell on arrival.
//!
//! A CPU's `wait` sleeps until a device has completed enough DMA transfers: no event runs
//! for it meanwhile. [`System::transfer_done`] (called where the `*_transfer` latencies are
//! recorded) counts completions and schedules the sleeper's next step for the tick its
//! count is reached; a count never reached leaves the run `stalled`.
//!
//! Host software can owe a CPU *driver jobs* (see `cpu_iommu.rs`): they run between program
//! steps, before the next operation. One comes from an interrupt, the flush-queue timer:
//! a CPU inside an instruction or driver work takes it at its next step (the invalidation
//! path spins with interrupts off), but one in a `delay`, asleep in a `wait`, or done with
//! its program takes it at once — its pending wake-up is marked stale, and when the jobs
//! are done it resumes the rest of the delay, or the wait.

use super::cpu_iommu::DriverJob;
use super::{DownItem, Event, SimError, System, UpItem, HOST_BRIDGE};
use crate::engine::EventQueue;
use crate::scenario::{CpuOp, WaitOp};
use crate::slab::Key;
use bytes::Bytes;
use model_core::{PhysAddr, Span, Tick};
use rand_xoshiro::rand_core::Rng;
use std::collections::VecDeque;

/// Cache line size: range operations proceed a line at a time.
const LINE: u64 = cache::LINE_BYTES as u64;
use pcie::tlp::{dw_span, AddressType, Attr, DW_BYTES};
use pcie::{Need, Tlp, TlpKind, UpdateFc};

/// A CPU asleep in a `wait` operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TransferWait {
    /// The device.
    dev: u16,
    /// Transfers it must have completed.
    target: u64,
    /// When the CPU began to wait (the wait is stall time).
    since: Tick,
    /// When its wake-up is scheduled, once the device has handled enough transfers.
    wake_at: Option<Tick>,
}

/// Where an interrupt found a CPU, to go back to when its driver jobs are done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resume {
    /// The rest of a `delay` (the delay is the program's own work: the handler's time adds
    /// to it).
    Delay(Span),
    /// A `wait` for device transfers, taken up again from the start of its operation.
    Transfers(TransferWait),
}

/// A CPU's driver jobs and what its interrupts need to know.
#[derive(Debug, Clone, Default)]
pub(super) struct CpuDriver {
    /// Driver jobs owed before the next program step, in order.
    pub(super) jobs: VecDeque<DriverJob>,
    /// Where an interrupt left the program.
    resume: Option<Resume>,
    /// The end of the `delay` the CPU is in (its step is due then).
    delay_end: Option<Tick>,
    /// Wake-ups an interrupt superseded: the first step of this CPU at each such tick is
    /// ignored (it was scheduled before any other step at that tick).
    stale: Vec<Tick>,
    /// The program is done and no step is due.
    idle: bool,
    /// KVM's `wbinvd_dirty_mask` of this vCPU, once its first WBINVD was emulated (before
    /// that, the scenario's `ran_on`).
    pub(super) wbinvd_dirty: Option<std::collections::BTreeSet<u16>>,
}

impl System {
    /// A CPU takes its next step: one line of a range operation, or one whole operation.
    /// The core waits for what it must (loads, stores, fences, clflush, wbinvd: their
    /// returned tick) and goes on at once after clflushopt / clwb issue and posted MMIO
    /// writes, so a missing fence is a real bug.
    pub(super) fn cpu_step(
        &mut self,
        now: Tick,
        cpu: u16,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let d = self.unmap.cpu(cpu);
        if let Some(i) = d.stale.iter().position(|&t| t == now) {
            d.stale.swap_remove(i);
            return Ok(());
        }
        d.idle = false;
        if d.delay_end == Some(now) {
            d.delay_end = None;
        }
        let c = &mut self.cpus[usize::from(cpu)];
        if c.wait.is_some() {
            return self.cpu_poll(now, cpu, q);
        }
        if c.host.is_some() {
            return self.host_step(now, cpu, q);
        }
        if self.start_driver_job(now, cpu, q)? {
            return Ok(());
        }
        match self.unmap.cpu(cpu).resume.take() {
            Some(Resume::Delay(rest)) => {
                let end = now + rest;
                self.unmap.cpu(cpu).delay_end = Some(end);
                self.horizon = self.horizon.max(end);
                return Ok(q.schedule(end, Event::CpuStep { cpu })?);
            }
            Some(Resume::Transfers(w)) => {
                self.cpus[usize::from(cpu)].transfers = Some(TransferWait { since: now, ..w });
            }
            None => {}
        }
        let c = &mut self.cpus[usize::from(cpu)];
        let Some(op) = c.ops.get(c.next).cloned() else {
            self.unmap.cpu(cpu).idle = true;
            return Ok(());
        };
        if matches!(
            op,
            CpuOp::IommuMap(_) | CpuOp::IommuUnmap(_) | CpuOp::IommuInvalidate(_)
        ) {
            return self.cpu_iommu_op(now, cpu, &op, q);
        }
        if matches!(
            op,
            CpuOp::Enforce(_) | CpuOp::Attach(_) | CpuOp::Detach(_) | CpuOp::PteUpdate(_)
        ) {
            return self.cpu_host_op(now, cpu, &op, q);
        }
        if let CpuOp::Wait(w) = &op {
            return self.cpu_wait_transfers(now, cpu, w, q);
        }
        let core = c.core;
        let cache_err = |e: cache::CacheError| SimError::Cache(e.to_string());
        // A `delay` is the program's own work, not a stall; flushes, fences and WBINVD are
        // also cache maintenance.
        let stalls = !matches!(op, CpuOp::Delay(_));
        let maintenance = matches!(
            op,
            CpuOp::Clflush(_)
                | CpuOp::Clflushopt(_)
                | CpuOp::Clwb(_)
                | CpuOp::Sfence(_)
                | CpuOp::Mfence(_)
                | CpuOp::Wbinvd(_)
                | CpuOp::Wbnoinvd(_)
        );
        let next = match op {
            CpuOp::Delay(d) => {
                c.next += 1;
                let end = now + d.ns.span();
                self.unmap.cpu(cpu).delay_end = Some(end);
                end
            }
            CpuOp::MmioWrite(w) => {
                c.next += 1;
                c.stats.mmio_writes += 1;
                let dev = *self.device_index.get(&w.device).ok_or(SimError::Invariant(
                    "MMIO write to a device the scenario lacks",
                ))?;
                let bar0 = self.devices[usize::from(dev)].bar0;
                let tlp = mmio_write(bar0.wrapping_add(w.offset.0), w.bytes.0, w.value);
                let key = self.cpls.insert(tlp);
                q.schedule(now + self.mmio_latency, Event::MmioEgress { dev, tlp: key })?;
                now
            }
            CpuOp::Sfence(_) | CpuOp::Mfence(_) | CpuOp::Wbinvd(_) | CpuOp::Wbnoinvd(_) => {
                c.next += 1;
                match op {
                    CpuOp::Sfence(_) => self.mem.sfence(now, core),
                    CpuOp::Mfence(_) => self.mem.mfence(now, core),
                    CpuOp::Wbinvd(_) => self.guest_wbinvd(now, cpu),
                    _ => self.mem.wbnoinvd(now, core),
                }
                .map_err(cache_err)?
            }
            CpuOp::Load(ref r)
            | CpuOp::Store(ref r)
            | CpuOp::Clflush(ref r)
            | CpuOp::Clflushopt(ref r)
            | CpuOp::Clwb(ref r) => {
                // The next piece: up to the end of the line (and of the range).
                let at = r.address.0.wrapping_add(c.done_bytes);
                let room = LINE - at % LINE;
                let len = room.min(r.bytes.0 - c.done_bytes);
                c.done_bytes += len;
                if c.done_bytes >= r.bytes.0 {
                    c.next += 1;
                    c.done_bytes = 0;
                }
                let pa = PhysAddr(at);
                match op {
                    CpuOp::Load(_) => {
                        c.stats.loads += 1;
                        let mut buf = vec![0u8; len as usize];
                        self.mem.load(now, core, pa, &mut buf)
                    }
                    CpuOp::Store(_) => {
                        c.stats.stores += 1;
                        let mut data = vec![0u8; len as usize];
                        c.rng.fill_bytes(&mut data);
                        self.mem.store(now, core, pa, &data)
                    }
                    CpuOp::Clflush(_) => self.mem.clflush(now, core, pa),
                    CpuOp::Clflushopt(_) => self.mem.clflushopt(now, core, pa),
                    _ => self.mem.clwb(now, core, pa),
                }
                .map_err(cache_err)?
            }
            CpuOp::IommuMap(_)
            | CpuOp::IommuUnmap(_)
            | CpuOp::IommuInvalidate(_)
            | CpuOp::Enforce(_)
            | CpuOp::Attach(_)
            | CpuOp::Detach(_)
            | CpuOp::PteUpdate(_)
            | CpuOp::Wait(_) => now,
        };
        let c = &mut self.cpus[usize::from(cpu)];
        let took = next.saturating_since(now);
        if stalls {
            c.stats.stall += took;
        }
        if maintenance {
            c.stats.maintenance += took;
        }
        self.horizon = self.horizon.max(next);
        q.schedule(next, Event::CpuStep { cpu })?;
        self.arm_mem_wake(q)
    }

    /// A `wait`: goes on once the device has completed `w.transfers` transfers, else sleeps
    /// until [`System::transfer_done`] wakes it.
    fn cpu_wait_transfers(
        &mut self,
        now: Tick,
        cpu: u16,
        w: &WaitOp,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let dev = *self
            .device_index
            .get(&w.device)
            .ok_or(SimError::Invariant("wait for a device the scenario lacks"))?;
        let reached = self.devices[usize::from(dev)]
            .feed
            .transfers_reached_at(w.transfers.0);
        let c = &mut self.cpus[usize::from(cpu)];
        let mut wait = c.transfers.take().unwrap_or(TransferWait {
            dev,
            target: w.transfers.0,
            since: now,
            wake_at: None,
        });
        match (reached, wait.wake_at) {
            // Woken early by something else: the scheduled wake-up is still to come.
            (_, Some(t)) if now < t => c.transfers = Some(wait),
            (Some(t), _) if t <= now => {
                c.stats.stall += now.saturating_since(wait.since);
                c.next += 1;
                self.horizon = self.horizon.max(now);
                q.schedule(now, Event::CpuStep { cpu })?;
            }
            (Some(t), _) => {
                wait.wake_at = Some(t);
                c.transfers = Some(wait);
                q.schedule(t, Event::CpuStep { cpu })?;
            }
            (None, _) => {
                wait.wake_at = None;
                c.transfers = Some(wait);
            }
        }
        Ok(())
    }

    /// CPU `cpu` owes a driver job from an interrupt. Between program steps with no step due
    /// — in a `delay`, asleep in a `wait`, done with its program — it takes it now; inside an
    /// instruction or driver work, at its next step.
    pub(super) fn take_interrupt(
        &mut self,
        now: Tick,
        cpu: u16,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let c = &mut self.cpus[usize::from(cpu)];
        let d = self.unmap.cpu(cpu);
        if c.wait.is_some() || c.host.is_some() || d.resume.is_some() {
            return Ok(()); // busy in the driver, or already interrupted: a step is due
        }
        if let Some(end) = d.delay_end {
            if end > now {
                d.stale.push(end);
                d.delay_end = None;
                d.resume = Some(Resume::Delay(end.saturating_since(now)));
                q.schedule(now, Event::CpuStep { cpu })?;
            }
            return Ok(());
        }
        if let Some(w) = c.transfers {
            match w.wake_at {
                Some(t) if t <= now => return Ok(()), // its wake-up is due now
                Some(t) => d.stale.push(t),
                None => {}
            }
            // The wait so far is stall time; it goes on from where the handler ends.
            c.stats.stall += now.saturating_since(w.since);
            c.transfers = None;
            d.resume = Some(Resume::Transfers(TransferWait { wake_at: None, ..w }));
            q.schedule(now, Event::CpuStep { cpu })?;
            return Ok(());
        }
        if d.idle {
            d.idle = false;
            q.schedule(now, Event::CpuStep { cpu })?;
        }
        Ok(())
    }

    /// A transfer of device `dev` completes at `at` (its last write performed, or its last
    /// completion received): CPUs waiting for it are woken when their count is reached.
    pub(super) fn transfer_done(
        &mut self,
        dev: u16,
        at: Tick,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let now = q.now();
        let feed = &mut self.devices[usize::from(dev)].feed;
        feed.transfer_done(now, at);
        for (i, c) in self.cpus.iter_mut().enumerate() {
            let Some(w) = c.transfers.as_mut() else {
                continue;
            };
            if w.dev != dev || w.wake_at.is_some() {
                continue;
            }
            if let Some(t) = feed.transfers_reached_at(w.target) {
                let t = t.max(now);
                w.wake_at = Some(t);
                q.schedule(t, Event::CpuStep { cpu: i as u16 })?;
            }
        }
        Ok(())
    }

    /// The write reaches the root port and queues for the downstream link.
    pub(super) fn mmio_egress(
        &mut self,
        dev: u16,
        key: Key,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let tlp = self
            .cpls
            .get(key)
            .ok_or(SimError::Lost(Event::MmioEgress { dev, tlp: key }))?;
        self.devices[usize::from(dev)]
            .down
            .push_tlp(DownItem::Mmio(key), tlp);
        self.kick_down(dev, q)
    }

    /// The write reaches the device: the register is written, the buffer freed.
    pub(super) fn mmio_in(
        &mut self,
        now: Tick,
        dev: u16,
        key: Key,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let tlp = self
            .cpls
            .remove(key)
            .ok_or(SimError::Lost(Event::MmioIn { dev, tlp: key }))?;
        let d = &mut self.devices[usize::from(dev)];
        d.mmio_writes += 1;
        if d.acks.received() {
            d.up.push_dllp(UpItem::Ack);
        }
        d.feed
            .doorbell(tlp.first_enabled_address().wrapping_sub(d.bar0));
        let need = Need::of(&tlp);
        d.rx_credits.received(need);
        if let Some(update) = d.rx_credits.freed(need) {
            d.up.push_dllp(UpItem::UpdateFc(update));
        }
        self.horizon = self.horizon.max(now);
        self.kick_up(dev, q) // DLLPs to send, and the DMA engine may go on
    }

    /// The device returned credits to its root port.
    pub(super) fn update_fc_up_in(
        &mut self,
        dev: u16,
        update: UpdateFc,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let d = &mut self.devices[usize::from(dev)];
        d.down_gate.update(update.class, update.header, update.data);
        self.kick_down(dev, q)
    }
}

/// The posted write a CPU's `bytes`-byte store of `value` (little-endian) at `address` is.
fn mmio_write(address: u64, bytes: u64, value: u64) -> Tlp {
    let (dw_addr, length_dw, first_be, last_be) = dw_span(address, bytes);
    let mut payload = vec![0u8; usize::from(length_dw) * DW_BYTES as usize];
    let lead = (address - dw_addr) as usize;
    let le = value.to_le_bytes();
    payload[lead..lead + bytes as usize].copy_from_slice(&le[..bytes as usize]);
    Tlp {
        kind: TlpKind::MemWrite,
        requester: HOST_BRIDGE,
        tag: 0,
        tc: 0,
        attr: Attr::default(),
        at: AddressType::Untranslated,
        pasid: None,
        td: false,
        address: dw_addr,
        length_dw,
        first_be,
        last_be,
        payload: Bytes::from(payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mmio_write_is_a_legal_posted_write_with_the_value_little_endian() {
        let t = mmio_write(0xfe00_0012, 4, 0x1122_3344);
        // 4 bytes at offset 2 of a DW: two DWs, First BE 1100b, Last BE 0011b.
        assert_eq!(
            (t.address, t.length_dw, t.first_be, t.last_be),
            (0xfe00_0010, 2, 0b1100, 0b0011)
        );
        assert_eq!(&t.payload[2..6], &[0x44, 0x33, 0x22, 0x11]);
        assert_eq!(t.first_enabled_address(), 0xfe00_0012);
        let v = pcie::wire::validate(&t.to_wire(), &pcie::wire::ValidationContext::default());
        assert!(v.is_empty(), "{v:?}");
    }
}
