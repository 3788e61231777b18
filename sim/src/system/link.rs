//! Handlers for the PCIe side: the two directions of each link and the root port.

use super::{DownItem, Event, InFlight, SimError, System, UpItem, DMA_READ, DMA_READ_TRANSFER};
use crate::engine::EventQueue;
use crate::slab::Key;
use bytes::Bytes;
use model_core::{PhysAddr, Tick};
use pcie::{completions_for, UpdateFc};

/// Descriptors kept queued at each device; the feed tops the queue up to this.
const QUEUE_WINDOW: usize = 8;

impl System {
    /// Makes sure the device's upstream wire will be looked at once it is free.
    pub(super) fn kick_up(&mut self, dev: u16, q: &mut EventQueue<Event>) -> Result<(), SimError> {
        let d = &mut self.devices[usize::from(dev)];
        if !d.up_scheduled {
            d.up_scheduled = true;
            q.schedule(q.now().max(d.up.free_at()), Event::UpFree { dev })?;
        }
        Ok(())
    }

    /// Makes sure the root port's downstream wire will be looked at once it is free.
    pub(super) fn kick_down(
        &mut self,
        dev: u16,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let d = &mut self.devices[usize::from(dev)];
        if !d.down_scheduled {
            d.down_scheduled = true;
            q.schedule(q.now().max(d.down.free_at()), Event::DownFree { dev })?;
        }
        Ok(())
    }

    /// The device's wire is free: an Ack if one waits, else the DMA engine's next request.
    pub(super) fn up_free(
        &mut self,
        now: Tick,
        dev: u16,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let d = &mut self.devices[usize::from(dev)];
        d.up_scheduled = false;
        if d.up.free_at() > now {
            return self.kick_up(dev, q);
        }
        // Only DLLPs queue upstream; requests are pulled from the DMA engine below.
        if let Some(sent) = d.up.next_queued(now, |_| true) {
            if let UpItem::UpdateFc(update) = sent.item {
                q.schedule(sent.at.arrival, Event::UpdateFcUpIn { dev, update })?;
            }
            return self.kick_up(dev, q);
        }
        while d.endpoint.queued() < QUEUE_WINDOW {
            match d.feed.next_descriptor() {
                Some(desc) => d.endpoint.post(desc),
                None => break,
            }
        }
        let Some(issued) = d.endpoint.poll_transmit(now) else {
            return Ok(()); // idle, or waiting for a tag or credits: a later event kicks it
        };
        let Some(tx) = d.up.send_tlp(now, issued.tlp.tlp_bytes()) else {
            return Err(SimError::Invariant(
                "upstream wire busy after it was found free",
            ));
        };
        if issued.tlp.kind == pcie::TlpKind::MemRead {
            self.arm_timer(dev, q)?;
        }
        let req = self.reqs.insert(InFlight {
            dev,
            tlp: issued.tlp,
            issued: now,
            started: issued.started,
            last: issued.last,
            pa: PhysAddr(0),
            data: Bytes::new(),
            status: pcie::CplStatus::Sc,
            forces_snoop: false,
            tr: None,
            at_iommu: Tick::ZERO,
        });
        self.tlps += 1;
        q.schedule(tx.arrival, Event::RcIngress { req })?;
        self.kick_up(dev, q)
    }

    /// Makes sure an `EndpointTimer` is pending no later than the device's next read
    /// deadline (the endpoint says when it next needs attention; stale timers are harmless).
    fn arm_timer(&mut self, dev: u16, q: &mut EventQueue<Event>) -> Result<(), SimError> {
        let d = &mut self.devices[usize::from(dev)];
        if let Some(due) = d.endpoint.next_timeout() {
            if d.timer_at.is_none_or(|t| due < t) {
                d.timer_at = Some(due);
                q.schedule(due, Event::EndpointTimer { dev })?;
            }
        }
        Ok(())
    }

    /// A timer fired: reads past their deadline fail and free their tags.
    pub(super) fn endpoint_timer(
        &mut self,
        now: Tick,
        dev: u16,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let d = &mut self.devices[usize::from(dev)];
        if d.timer_at != Some(now) {
            return Ok(()); // superseded by an earlier timer that has already run
        }
        d.timer_at = None;
        if d.endpoint.handle_timeouts(now) > 0 {
            self.horizon = self.horizon.max(now);
            self.kick_up(dev, q)?;
        }
        self.arm_timer(dev, q)
    }

    /// The port's wire is free: DLLPs first, then completions.
    pub(super) fn down_free(
        &mut self,
        now: Tick,
        dev: u16,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let d = &mut self.devices[usize::from(dev)];
        d.down_scheduled = false;
        if d.down.free_at() > now {
            return self.kick_down(dev, q);
        }
        let gate = &mut d.down_gate;
        let Some(sent) = d.down.next_queued(now, |need| gate.allows(*need)) else {
            return Ok(()); // idle, or waiting for the device's credits
        };
        if let Some(need) = sent.need {
            d.down_gate.consume(need);
        }
        match sent.item {
            DownItem::Ack => {}
            DownItem::UpdateFc(update) => {
                q.schedule(sent.at.arrival, Event::UpdateFcIn { dev, update })?;
            }
            DownItem::Cpl(cpl) => {
                self.tlps += 1;
                q.schedule(sent.at.arrival, Event::CompletionIn { dev, cpl })?;
            }
            DownItem::Mmio(tlp) => {
                self.tlps += 1;
                q.schedule(sent.at.arrival, Event::MmioIn { dev, tlp })?;
            }
        }
        self.kick_down(dev, q)
    }

    /// A request reached its root port: it queues for the ingress pipeline; an Ack may be due.
    pub(super) fn rc_ingress(
        &mut self,
        req: Key,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let r = self
            .reqs
            .get(req)
            .ok_or(SimError::Lost(Event::RcIngress { req }))?;
        let dev = r.dev;
        let d = &mut self.devices[usize::from(dev)];
        if d.port.arrive(req, &r.tlp) {
            d.down.push_dllp(DownItem::Ack);
            self.kick_down(dev, q)?;
        }
        self.kick_rc(dev, q)
    }

    /// Makes sure the root port's ingress pipeline runs when it next can.
    pub(super) fn kick_rc(&mut self, dev: u16, q: &mut EventQueue<Event>) -> Result<(), SimError> {
        let d = &mut self.devices[usize::from(dev)];
        if !d.rc_scheduled {
            if let Some(at) = d.port.next_accept(q.now()) {
                d.rc_scheduled = true;
                q.schedule(at, Event::RcAccept { dev })?;
            }
        }
        Ok(())
    }

    /// The ingress pipeline takes the next request it may: its credits are freed, it heads
    /// for the IOMMU.
    pub(super) fn rc_accept(
        &mut self,
        now: Tick,
        dev: u16,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let d = &mut self.devices[usize::from(dev)];
        d.rc_scheduled = false;
        let Some(acc) = d.port.accept(now) else {
            // Its interval is not over (kick again), or only reads wait and no tracker is
            // free (next_accept says None until a read is done).
            return self.kick_rc(dev, q);
        };
        if let Some(update) = acc.update {
            d.down.push_dllp(DownItem::UpdateFc(update));
            self.kick_down(dev, q)?;
        }
        q.schedule(
            now + self.rc.request_latency,
            Event::IommuIn { req: acc.item },
        )?;
        self.kick_rc(dev, q)
    }

    /// Credits came back to a device; if it was waiting for them, it may send again.
    pub(super) fn update_fc_in(
        &mut self,
        dev: u16,
        update: UpdateFc,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        if self.devices[usize::from(dev)]
            .endpoint
            .handle_update_fc(update)
        {
            self.kick_up(dev, q)?;
        }
        Ok(())
    }

    /// Read data is back at the root complex: its completions queue for the downstream wire.
    pub(super) fn completion_tx(
        &mut self,
        req: Key,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let r = self
            .reqs
            .remove(req)
            .ok_or(SimError::Lost(Event::CompletionTx { req }))?;
        let mps = self.devices[usize::from(r.dev)].endpoint.config().mps;
        // The read's tracker at the root port is free once its completions exist.
        self.devices[usize::from(r.dev)].port.read_done();
        self.kick_rc(r.dev, q)?;
        let cpls = if r.status == pcie::CplStatus::Sc {
            completions_for(&r.tlp, self.rc.completer, mps, self.rc.rcb, &r.data)
        } else {
            vec![pcie::error_completion(&r.tlp, self.rc.completer, r.status)]
        };
        for cpl in cpls {
            self.devices[usize::from(r.dev)]
                .down
                .push_tlp(DownItem::Cpl(self.cpls.next_key()), &cpl);
            self.cpls.insert(cpl);
        }
        self.kick_down(r.dev, q)
    }

    /// A completion reached its device.
    pub(super) fn completion_in(
        &mut self,
        now: Tick,
        dev: u16,
        cpl: Key,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let tlp = self
            .cpls
            .remove(cpl)
            .ok_or(SimError::Lost(Event::CompletionIn { dev, cpl }))?;
        let d = &mut self.devices[usize::from(dev)];
        if d.acks.received() {
            d.up.push_dllp(UpItem::Ack);
            self.kick_up(dev, q)?;
        }
        let d = &mut self.devices[usize::from(dev)];
        let done = d
            .endpoint
            .handle_completion(now, &tlp)
            .map_err(|error| SimError::Endpoint {
                dev: d.endpoint.config().bdf,
                error,
            })?;
        let Some(done) = done else {
            return Ok(());
        };
        self.horizon = self.horizon.max(now);
        if done.status == pcie::CplStatus::Sc {
            self.record(DMA_READ, now.saturating_since(done.issued));
        }
        if let Some((_, started, _)) = done.descriptor_done {
            self.record(DMA_READ_TRANSFER, now.saturating_since(started));
            self.transfer_done(dev, now, q)?;
        }
        self.kick_up(dev, q) // a tag is free again
    }
}
