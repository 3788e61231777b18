//! A system assembled from a scenario, and how its events are routed between the models.
//!
//! The path of a device request in this slice:
//!
//! ```text
//! DeviceTx ──link up──▶ IommuIn ──translate──▶ MemoryIn ──DRAM──┬─ write performed
//!    ▲   (serialise + port delay + RC request latency)          └─ CompletionTx
//!    │                                                              │ (RC completion latency)
//!    └──── CompletionIn ◀──link down (serialise + port delay)───────┘
//! ```
//!
//! Each handler asks a model what happens and when, then schedules the next event; models
//! never see the queue. Requests in flight live in a slab so events carry a small key.

use crate::check::Checker;
use crate::engine::{EngineError, EventQueue, Handler};
use crate::scenario::{IommuSpec, Scenario};
use crate::slab::{Key, Slab};
use crate::workload::DeviceFeed;
use bytes::Bytes;
use cache::{Dram, DramConfig};
use model_core::{
    AccessKind, Bdf, ClockDomain, Cycles, IdentityTranslation, Iova, PhysAddr, Span, Tick,
    TranslationAgent, TranslationRequest,
};
use pcie::{
    completions_for, Endpoint, EndpointConfig, EndpointError, LinkConfig, LinkDirection, LinkGen,
    RootComplexConfig, Tlp, TlpKind,
};
use reports::LatencyHistogram;
use std::collections::BTreeMap;

/// Descriptors kept queued at each device; the feed tops the queue up to this.
const QUEUE_WINDOW: usize = 8;
/// Requester ID the root complex uses as completer (the host bridge, 00:00.0).
const HOST_BRIDGE: Bdf = Bdf::from_raw(0);

/// Everything the engine can be asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A device may put its next request on its upstream link.
    DeviceTx {
        /// Device index.
        dev: u16,
    },
    /// A request reaches the IOMMU.
    IommuIn {
        /// The request.
        req: Key,
    },
    /// A translated request reaches memory.
    MemoryIn {
        /// The request.
        req: Key,
    },
    /// Read data is back at the root complex; completions go out.
    CompletionTx {
        /// The request.
        req: Key,
    },
    /// A completion reaches its device.
    CompletionIn {
        /// Device index.
        dev: u16,
        /// The completion.
        cpl: Key,
    },
}

/// A broken simulator invariant; the run cannot continue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// A model refused the configuration the scenario gave it.
    #[error("configuration: {0}")]
    Config(String),
    /// The engine refused an event.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A device could not accept a completion.
    #[error("device {dev}: {error}")]
    Endpoint {
        /// The device.
        dev: Bdf,
        /// What it said.
        error: EndpointError,
    },
    /// An event referred to a request no longer in flight.
    #[error("event {0:?} refers to a request that is not in flight")]
    Lost(Event),
    /// The IOMMU refused a request; faults become reportable outputs with the VT-d issue.
    #[error("translation fault for device {dev} at {iova}: {reason} (fault handling is not modelled yet)")]
    Fault {
        /// The requester.
        dev: Bdf,
        /// The address.
        iova: Iova,
        /// The vendor's reason.
        reason: &'static str,
    },
}

/// The IOMMU of a platform, dispatched by `match`.
#[derive(Debug, Clone)]
pub enum Iommu {
    /// No IOMMU.
    None(IdentityTranslation),
}

impl Iommu {
    fn agent(&mut self) -> &mut dyn TranslationAgent {
        match self {
            Iommu::None(t) => t,
        }
    }

    /// "none", "vtd" or "amdvi".
    pub fn kind(&self) -> &'static str {
        match self {
            Iommu::None(t) => t.kind(),
        }
    }
}

/// A request between its device and memory.
#[derive(Debug, Clone)]
struct InFlight {
    dev: u16,
    tlp: Tlp,
    issued: Tick,
    started: Tick,
    last: bool,
    pa: PhysAddr,
    data: Bytes,
}

/// One endpoint, its link and its work.
#[derive(Debug, Clone)]
pub struct Device {
    /// Scenario name.
    pub name: String,
    /// The DMA engine.
    pub endpoint: Endpoint,
    /// Device → root port.
    pub up: LinkDirection,
    /// Root port → device.
    pub down: LinkDirection,
    feed: DeviceFeed,
    tx_scheduled: bool,
}

/// Latency histograms by TLP class.
pub type Latencies = BTreeMap<&'static str, LatencyHistogram>;

/// The assembled system: all models, plus the engine-side bookkeeping.
#[derive(Debug)]
pub struct System {
    /// The devices, indexed by `dev` in events.
    pub devices: Vec<Device>,
    /// The root complex's configuration.
    pub rc: RootComplexConfig,
    /// The IOMMU.
    pub iommu: Iommu,
    /// Main memory.
    pub dram: Dram,
    /// The corruption checker.
    pub checker: Checker,
    /// Latency per class: `dma_write`, `dma_read` per TLP; `*_transfer` per descriptor.
    pub latency: Latencies,
    /// TLPs put on any link.
    pub tlps: u64,
    /// Translations performed.
    pub translations: u64,
    /// The latest tick at which anything was performed.
    pub horizon: Tick,
    reqs: Slab<InFlight>,
    cpls: Slab<Tlp>,
}

/// Latency classes, in report order.
pub const DMA_WRITE: &str = "dma_write";
/// Read request issue to last completion byte.
pub const DMA_READ: &str = "dma_read";
/// Write descriptor: first request issued to last write performed.
pub const DMA_WRITE_TRANSFER: &str = "dma_write_transfer";
/// Read descriptor: first request issued to last completion received.
pub const DMA_READ_TRANSFER: &str = "dma_read_transfer";

impl System {
    /// Builds the system a scenario describes. Scenario values are range-checked when they
    /// are parsed; a model that still refuses one is reported, never replaced by a default.
    pub fn new(s: &Scenario) -> Result<System, SimError> {
        let p = &s.platform;
        let gen =
            LinkGen::from_number(p.pcie.gen.0).map_err(|e| SimError::Config(e.to_string()))?;
        let link = LinkConfig::new(gen, p.pcie.lanes.0, p.pcie.port_delay_ns.span())
            .map_err(|e| SimError::Config(e.to_string()))?;
        let rc_clock = ClockDomain::from_mhz(p.root_complex.clock_mhz.0)
            .map_err(|e| SimError::Config(format!("root complex: {e}")))?;
        let rc = RootComplexConfig {
            completer: HOST_BRIDGE,
            request_latency: rc_clock.span(Cycles(p.root_complex.request_latency_cycles.0)),
            completion_latency: rc_clock.span(Cycles(p.root_complex.completion_latency_cycles.0)),
            rcb: p.root_complex.rcb_bytes.0,
        };
        let iommu = match &p.iommu {
            IommuSpec::None { latency_ns } => Iommu::None(IdentityTranslation {
                latency: latency_ns.span(),
            }),
        };
        let dram = Dram::new(
            DramConfig::new(p.dram.latency_ns.span(), p.dram.bandwidth_mbps.0)
                .map_err(|e| SimError::Config(e.to_string()))?,
        );
        let devices = s
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| Device {
                name: d.name.clone(),
                endpoint: Endpoint::new(EndpointConfig {
                    bdf: d.bdf,
                    mps: p.pcie.mps_bytes.0,
                    mrrs: p.pcie.mrrs_bytes.0,
                    read_tags: d.read_tags.0 as u16,
                    ecrc: p.pcie.ecrc,
                }),
                up: LinkDirection::new(link),
                down: LinkDirection::new(link),
                feed: DeviceFeed::new(s, &d.name, i),
                tx_scheduled: false,
            })
            .collect();
        Ok(System {
            devices,
            rc,
            iommu,
            dram,
            checker: Checker::new(crate::check::DEFAULT_EXPLANATIONS),
            latency: [DMA_WRITE, DMA_READ, DMA_WRITE_TRANSFER, DMA_READ_TRANSFER]
                .into_iter()
                .map(|k| (k, LatencyHistogram::new()))
                .collect(),
            tlps: 0,
            translations: 0,
            horizon: Tick::ZERO,
            reqs: Slab::default(),
            cpls: Slab::default(),
        })
    }

    /// Schedules the first event of every device.
    pub fn start(&mut self, queue: &mut EventQueue<Event>) -> Result<(), SimError> {
        for (i, d) in self.devices.iter_mut().enumerate() {
            d.tx_scheduled = true;
            queue.schedule(Tick::ZERO, Event::DeviceTx { dev: i as u16 })?;
        }
        Ok(())
    }

    fn record(&mut self, class: &'static str, span: Span) {
        if let Some(h) = self.latency.get_mut(class) {
            h.record_ps(span.as_ps());
        }
    }

    fn device_tx(
        &mut self,
        now: Tick,
        dev: u16,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let d = &mut self.devices[usize::from(dev)];
        d.tx_scheduled = false;
        while d.endpoint.queued() < QUEUE_WINDOW {
            match d.feed.next_descriptor() {
                Some(desc) => d.endpoint.post(desc),
                None => break,
            }
        }
        if d.up.free_at() > now {
            d.tx_scheduled = true;
            return Ok(q.schedule(d.up.free_at(), Event::DeviceTx { dev })?);
        }
        let Some(issued) = d.endpoint.poll_transmit(now) else {
            return Ok(()); // idle, or waiting for a tag: a completion wakes it
        };
        let tx = d.up.transmit(now, issued.tlp.wire_bytes());
        d.tx_scheduled = true;
        q.schedule(tx.end, Event::DeviceTx { dev })?;
        let req = self.reqs.insert(InFlight {
            dev,
            tlp: issued.tlp,
            issued: now,
            started: issued.started,
            last: issued.last,
            pa: PhysAddr(0),
            data: Bytes::new(),
        });
        self.tlps += 1;
        q.schedule(tx.arrival + self.rc.request_latency, Event::IommuIn { req })?;
        Ok(())
    }

    fn iommu_in(&mut self, now: Tick, req: Key, q: &mut EventQueue<Event>) -> Result<(), SimError> {
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
            pasid: None,
        };
        self.translations += 1;
        match self.iommu.agent().translate(now, &tr) {
            Ok(t) => {
                r.pa = t.pa;
                q.schedule(now + t.latency, Event::MemoryIn { req })?;
                Ok(())
            }
            Err(f) => Err(SimError::Fault {
                dev: f.requester,
                iova: f.iova,
                reason: f.reason,
            }),
        }
    }

    fn memory_in(
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

    fn completion_tx(
        &mut self,
        now: Tick,
        req: Key,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        let r = self
            .reqs
            .remove(req)
            .ok_or(SimError::Lost(Event::CompletionTx { req }))?;
        let d = &mut self.devices[usize::from(r.dev)];
        let mps = d.endpoint.config().mps;
        for cpl in completions_for(&r.tlp, self.rc.completer, mps, self.rc.rcb, &r.data) {
            let tx = d.down.transmit(now, cpl.wire_bytes());
            let cpl = self.cpls.insert(cpl);
            self.tlps += 1;
            q.schedule(tx.arrival, Event::CompletionIn { dev: r.dev, cpl })?;
        }
        Ok(())
    }

    fn completion_in(
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
        if !d.tx_scheduled {
            d.tx_scheduled = true;
            q.schedule(now.max(d.up.free_at()), Event::DeviceTx { dev })?;
        }
        self.horizon = self.horizon.max(now);
        self.record(DMA_READ, now.saturating_since(done.issued));
        if let Some((_, started, _)) = done.descriptor_done {
            self.record(DMA_READ_TRANSFER, now.saturating_since(started));
        }
        Ok(())
    }

    /// Requests and completions still in flight (zero after a completed run).
    pub fn in_flight(&self) -> usize {
        self.reqs.len() + self.cpls.len()
    }
}

impl Handler<Event> for System {
    type Error = SimError;

    fn handle(
        &mut self,
        now: Tick,
        event: Event,
        q: &mut EventQueue<Event>,
    ) -> Result<(), SimError> {
        match event {
            Event::DeviceTx { dev } => self.device_tx(now, dev, q),
            Event::IommuIn { req } => self.iommu_in(now, req, q),
            Event::MemoryIn { req } => self.memory_in(now, req, q),
            Event::CompletionTx { req } => self.completion_tx(now, req, q),
            Event::CompletionIn { dev, cpl } => self.completion_in(now, dev, cpl, q),
        }
    }
}
