//! A system assembled from a scenario, and how its events are routed between the models.
//!
//! The path of a device request:
//!
//! ```text
//! UpFree ─link up─▶ RcIngress ─(accept rate)─▶ RcAccept ─(request latency)─▶ IommuIn
//!   ▲  ▲               │ Ack DLLP down           │ UpdateFC down               │ translate
//!   │  └─ UpdateFcIn ◀─┴───── DownFree ◀─────────┘                             ▼
//!   │                            ▲  CompletionTx ◀─(completion latency)── MemoryIn ─ DRAM
//!   └── CompletionIn ◀─link down─┘                                     (writes end here)
//! ```
//!
//! Each link direction is a [`pcie::Transmitter`]: `UpFree` / `DownFree` fire when its wire is
//! free and start the next packet — DLLPs (Acks, UpdateFCs) before waiting TLPs. Upstream
//! TLPs are pulled from the device's DMA engine; downstream ones (completions) are queued.
//!
//! Each handler asks a model what happens and when, then schedules the next event; models
//! never see the queue. Requests in flight live in a slab so events carry a small key.

pub mod amdvi_host;
mod amdvi_unit;
pub mod api_ops;
mod build;
mod cpu;
mod cpu_iommu;
pub mod domain_api;
pub mod driver;
mod host;
mod host_ops;
mod kvm;
mod link;
mod unit_set;
mod units;
pub mod vtd_host;
mod vtd_inval;
mod vtd_ops;
mod vtd_unit;

use crate::check::Checker;
use crate::engine::{EngineError, EventQueue, Handler};
use crate::scenario::CpuOp;
use crate::slab::{Key, Slab};
use crate::workload::DeviceFeed;
use bytes::Bytes;
use cache::Hierarchy;
use model_core::{
    Bdf, IdentityTranslation, PhysAddr, Span, Tick, TranslationAgent, TranslationRequest,
};
use pcie::{
    AckCounter, Endpoint, EndpointError, FcGate, FcReturn, RootComplexConfig, RootPort, Tlp,
    Transmitter, UpdateFc,
};
use reports::LatencyHistogram;
use std::collections::BTreeMap;

/// Requester ID the root complex uses as completer (the host bridge, 00:00.0).
pub(crate) const HOST_BRIDGE: Bdf = Bdf::from_raw(0);

/// Everything the engine can be asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A device's upstream wire is free: start its next DLLP or request.
    UpFree {
        /// Device index.
        dev: u16,
    },
    /// A device's earliest outstanding read may have timed out.
    EndpointTimer {
        /// Device index.
        dev: u16,
    },
    /// A root port's downstream wire is free: start its next DLLP or completion.
    DownFree {
        /// Device index.
        dev: u16,
    },
    /// Weakly ordered flushes in the caches are due.
    MemWake,
    /// A CPU takes its next program step.
    CpuStep {
        /// CPU index.
        cpu: u16,
    },
    /// A CPU's MMIO write reaches the root port, bound for a device.
    MmioEgress {
        /// Device index.
        dev: u16,
        /// The write, in the downstream slab.
        tlp: Key,
    },
    /// An MMIO write reaches its device.
    MmioIn {
        /// Device index.
        dev: u16,
        /// The write.
        tlp: Key,
    },
    /// An UpdateFC DLLP from a device reaches its root port.
    UpdateFcUpIn {
        /// Device index.
        dev: u16,
        /// The credits it returns to the root port's transmitter.
        update: UpdateFc,
    },
    /// A request's last byte reaches its root port.
    RcIngress {
        /// The request.
        req: Key,
    },
    /// A root port's ingress pipeline may take its next request; credits are freed.
    RcAccept {
        /// Device index.
        dev: u16,
    },
    /// An UpdateFC DLLP reaches a device.
    UpdateFcIn {
        /// Device index.
        dev: u16,
        /// The credits it returns.
        update: UpdateFc,
    },
    /// A request reaches the IOMMU.
    IommuIn {
        /// The request.
        req: Key,
    },
    /// An IOMMU table read starts, or an IOMMU status write is performed.
    IommuMem {
        /// The access, in the IOMMU-access slab.
        access: Key,
    },
    /// An IOMMU table read's data is back at the IOMMU.
    IommuMemDone {
        /// The access.
        access: Key,
    },
    /// Host software's write reaches an IOMMU register.
    IommuRegWrite {
        /// The unit.
        unit: driver::UnitId,
        /// Byte offset in the IOMMU's register space.
        offset: u32,
        /// The value.
        value: u64,
    },
    /// Boot is over: devices and CPUs start.
    Start,
    /// An IOMMU register changed by itself (an invalidation completed).
    IommuRegister {
        /// The unit.
        unit: driver::UnitId,
        /// Byte offset in the IOMMU's register space.
        offset: u32,
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
    /// A flush queue's timer expires (deferred unmap invalidation; ignored when a flush
    /// emptied the queue first).
    FlushQueueTimer {
        /// The timer's id.
        timer: u64,
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
    /// The cache model refused an access (a broken invariant or a bad call).
    #[error("caches: {0}")]
    Cache(String),
    /// The IOMMU refused what the system or host software asked of it.
    #[error("iommu: {0}")]
    Iommu(String),
    /// A model's state contradicts what the engine knows.
    #[error("invariant broken: {0}")]
    Invariant(&'static str),
}

/// One IOMMU unit of the platform, and what it did.
#[derive(Debug, Clone)]
pub struct IommuUnit {
    /// Its name: the VT-d unit's or AMD IOMMU's ("dmar0", "iommu1"), or "none".
    pub name: String,
    /// The unit.
    pub iommu: Iommu,
    /// Translation requests it received.
    pub translations: u64,
    /// Requests it blocked.
    pub faults: u64,
}

impl IommuUnit {
    /// A unit that has done nothing yet.
    pub fn new(name: impl Into<String>, iommu: Iommu) -> IommuUnit {
        IommuUnit {
            name: name.into(),
            iommu,
            translations: 0,
            faults: 0,
        }
    }
}

/// The IOMMU of a platform, dispatched by `match`.
#[derive(Debug, Clone)]
pub enum Iommu {
    /// No IOMMU.
    None(IdentityTranslation),
    /// A test double that blocks part of the address space (until the VT-d and AMD-Vi
    /// models produce real faults).
    /// An Intel VT-d remapping unit.
    Vtd(Box<vtd::Vtd>),
    /// An AMD IOMMU.
    Amdvi(Box<amdvi::Amdvi>),
    #[cfg(test)]
    Blocking(tests::Blocking),
}

impl Iommu {
    pub(crate) fn agent(&mut self) -> &mut dyn TranslationAgent {
        match self {
            Iommu::None(t) => t,
            Iommu::Vtd(t) => t.as_mut(),
            Iommu::Amdvi(t) => t.as_mut(),
            #[cfg(test)]
            Iommu::Blocking(t) => t,
        }
    }

    pub(crate) fn agent_ref(&self) -> &dyn TranslationAgent {
        match self {
            Iommu::None(t) => t,
            Iommu::Vtd(t) => t.as_ref(),
            Iommu::Amdvi(t) => t.as_ref(),
            #[cfg(test)]
            Iommu::Blocking(t) => t,
        }
    }

    /// "none", "vtd" or "amdvi".
    pub fn kind(&self) -> &'static str {
        match self {
            Iommu::None(t) => t.kind(),
            Iommu::Vtd(t) => t.kind(),
            Iommu::Amdvi(t) => t.kind(),
            #[cfg(test)]
            Iommu::Blocking(t) => t.kind(),
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
    /// SC, or the error a read is completed with (UR when the IOMMU blocked it).
    status: pcie::CplStatus,
    /// The IOMMU forces this access to be snooped (VT-d SNP/PGSNP, AMD-Vi FC).
    forces_snoop: bool,
    /// What the IOMMU was asked (kept for the misdirected-DMA check at memory).
    tr: Option<TranslationRequest>,
    /// When it reached the IOMMU.
    at_iommu: Tick,
}

/// What a reference walk depends on besides the tables: the request's kind and its 4 KiB
/// page (every byte of a page translates alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct RefKey {
    requester: u16,
    pasid: Option<u32>,
    write: bool,
    execute: bool,
    privileged: bool,
    translated: bool,
    page: u64,
}

impl RefKey {
    fn of(tr: &TranslationRequest) -> RefKey {
        RefKey {
            requester: tr.requester.raw(),
            pasid: tr.pasid,
            write: tr.access == model_core::AccessKind::Write,
            execute: tr.execute,
            privileged: tr.privileged,
            translated: tr.translated,
            page: tr.iova.raw() >> 12,
        }
    }
}

/// Reference translations already computed, valid while the checker's table epoch holds.
#[derive(Debug, Clone, Default)]
struct RefMemo {
    epoch: u64,
    outcomes: BTreeMap<RefKey, Result<model_core::Translation, u32>>,
}

/// An access the IOMMU itself makes to memory.
#[derive(Debug, Clone)]
enum IommuAccess {
    /// A table or descriptor read: the data goes back to unit `unit` under `tag`.
    Read {
        unit: driver::UnitId,
        tag: u64,
        pa: PhysAddr,
        snooped: bool,
        data: Vec<u8>,
    },
    /// A status write.
    Write {
        pa: PhysAddr,
        snooped: bool,
        data: Vec<u8>,
    },
}

/// What waits on a device's upstream wire (its requests are pulled from the DMA engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpItem {
    /// An Ack for TLPs received.
    Ack,
    /// Credits returned to the root port after MMIO writes.
    UpdateFc(UpdateFc),
}

/// What waits on a root port's downstream wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownItem {
    /// An Ack for requests received.
    Ack,
    /// Credits returned to the device.
    UpdateFc(UpdateFc),
    /// A completion, in the downstream slab.
    Cpl(Key),
    /// A CPU's MMIO write, in the downstream slab.
    Mmio(Key),
}

/// One endpoint, its link and its work.
#[derive(Debug, Clone)]
pub struct Device {
    /// Scenario name.
    pub name: String,
    /// The DMA engine.
    pub endpoint: Endpoint,
    /// Device → root port.
    pub up: Transmitter<UpItem>,
    /// Root port → device.
    pub down: Transmitter<DownItem>,
    /// The root port's receive side.
    pub port: RootPort<Key>,
    rc_scheduled: bool,
    /// The device's Ack schedule for TLPs it receives.
    acks: AckCounter,
    /// The root port's view of the device's receive credits (for MMIO writes).
    down_gate: FcGate,
    /// The device's side of those credits: when to return them.
    rx_credits: FcReturn,
    /// Base of BAR 0.
    bar0: u64,
    /// MMIO writes received.
    pub mmio_writes: u64,
    feed: DeviceFeed,
    up_scheduled: bool,
    down_scheduled: bool,
    /// When the pending `EndpointTimer` event fires, if one is pending.
    timer_at: Option<Tick>,
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
    /// The IOMMU units (one, unless the platform has several VT-d units or AMD IOMMUs).
    pub units: Vec<IommuUnit>,
    /// The unit each device's requests go to, by device index (its device scope).
    scope: Vec<driver::UnitId>,
    /// The IOMMU's driver, when there is an IOMMU.
    pub driver: Option<driver::Driver>,
    /// The host's domain API, VFIO and KVM decisions.
    pub software: domain_api::DomainApi,
    /// When the host software's boot (table writes, IOMMU registers) is done.
    pub boot_done: Tick,
    /// Main memory.
    /// Caches, DRAM behind them, and the corruption checker observing both.
    pub mem: Hierarchy<Checker>,
    /// When the pending `MemWake` fires, if one is pending.
    mem_wake: Option<Tick>,
    /// The platform honours the No Snoop attribute.
    honours_no_snoop: bool,
    /// Latency per class: `dma_write`, `dma_read` per TLP; `*_transfer` per descriptor.
    pub latency: Latencies,
    /// TLPs put on any link.
    pub tlps: u64,
    /// Translations performed.
    pub translations: u64,
    /// Requests the IOMMU blocked.
    pub fault_count: u64,
    /// The first of them.
    pub faults: Vec<reports::FaultRecord>,
    /// The latest tick at which anything was performed.
    pub horizon: Tick,
    /// The CPUs' programs.
    pub cpus: Vec<CpuProgram>,
    /// Device index by scenario name.
    device_index: BTreeMap<String, u16>,
    /// From a CPU's MMIO store to the write leaving the root port.
    mmio_latency: Span,
    reqs: Slab<InFlight>,
    /// Downstream TLPs (completions and MMIO writes) between root port and device.
    cpls: Slab<Tlp>,
    /// The IOMMU's own memory accesses in flight.
    iommu_mem: Slab<IommuAccess>,
    /// Reference translations for the misdirected-DMA check.
    ref_memo: RefMemo,
    /// The CPU holding the driver's invalidation queue lock.
    invalidation_lock: Option<u16>,
    /// What host software owes the IOTLB after unmaps: flush queues, and driver jobs and
    /// interrupts per CPU.
    unmap: cpu_iommu::UnmapWork,
}

/// A CPU running its operation list.
#[derive(Debug, Clone)]
pub struct CpuProgram {
    /// Scenario name.
    pub name: String,
    /// The core it runs on.
    core: cache::CoreId,
    ops: Vec<CpuOp>,
    next: usize,
    /// Bytes of the current range operation already done.
    done_bytes: u64,
    /// Data for its stores.
    rng: rand_xoshiro::Xoshiro256PlusPlus,
    /// What it did.
    pub stats: CpuCounters,
    /// IOMMU driver work in progress.
    host: Option<cpu_iommu::HostWork>,
    /// What it waits for (an invalidation to complete).
    wait: Option<cpu_iommu::CpuWait>,
    /// When its current IOMMU operation began (for stall time).
    wait_since: Tick,
    /// The device transfers a `wait` operation sleeps for.
    transfers: Option<cpu::TransferWait>,
}

/// What a CPU program did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuCounters {
    /// Load instructions (one per line touched).
    pub loads: u64,
    /// Store instructions (one per line touched).
    pub stores: u64,
    /// MMIO writes.
    pub mmio_writes: u64,
    /// Time the core waited for its operations.
    pub stall: Span,
    /// Time in cache maintenance: flushes, fences, WBINVD (KVM's emulation included).
    pub maintenance: Span,
    /// Guest WBINVDs KVM emulated.
    pub wbinvd_emulated: u64,
    /// Guest WBINVDs KVM ignored.
    pub wbinvd_ignored: u64,
    /// IPIs this vCPU's emulated WBINVDs sent.
    pub ipis: u64,
}

/// The largest MMIO write a CPU sends: 8 bytes, one header and one data credit.
fn mmio_largest() -> pcie::Credits {
    let mut c = pcie::Credits::INFINITE;
    c.posted = pcie::ClassCredits { header: 1, data: 1 };
    c
}

/// Latency classes, in report order.
pub const DMA_WRITE: &str = "dma_write";
/// Read request issue to last completion byte.
pub const DMA_READ: &str = "dma_read";
/// Write descriptor: first request issued to last write performed.
pub const DMA_WRITE_TRANSFER: &str = "dma_write_transfer";
/// Read descriptor: first request issued to last completion received.
pub const DMA_READ_TRANSFER: &str = "dma_read_transfer";
/// Latency class: a request reaching the IOMMU to its translation (or fault) leaving it —
/// an IOTLB hit, or the walk it took or joined.
pub const TRANSLATION: &str = "translation";

impl System {
    /// Schedules the first event of every device and CPU.
    pub fn start(&mut self, queue: &mut EventQueue<Event>) -> Result<(), SimError> {
        // Whatever the units emitted while the driver programmed them at boot.
        for u in 0..self.units.len() {
            self.drain_iommu(driver::UnitId(u as u8), queue)?;
        }
        if self.boot_done > queue.now() {
            queue.schedule(self.boot_done, Event::Start)?;
            return Ok(());
        }
        self.start_workload(queue)
    }

    /// Devices and CPUs begin.
    fn start_workload(&mut self, queue: &mut EventQueue<Event>) -> Result<(), SimError> {
        let now = queue.now();
        for dev in 0..self.devices.len() {
            self.kick_up(dev as u16, queue)?;
        }
        for cpu in 0..self.cpus.len() {
            queue.schedule(now, Event::CpuStep { cpu: cpu as u16 })?;
        }
        Ok(())
    }

    /// Unit `u`'s translation agent.
    pub(crate) fn unit(
        &mut self,
        u: driver::UnitId,
    ) -> Result<&mut dyn TranslationAgent, SimError> {
        self.units
            .get_mut(u.index())
            .map(|x| x.iommu.agent())
            .ok_or(SimError::Invariant("an IOMMU unit the platform lacks"))
    }

    /// The unit device `dev`'s requests go to.
    pub(crate) fn unit_of(&self, dev: u16) -> driver::UnitId {
        self.scope
            .get(usize::from(dev))
            .copied()
            .unwrap_or_default()
    }

    pub(crate) fn record(&mut self, class: &'static str, span: Span) {
        if let Some(h) = self.latency.get_mut(class) {
            h.record_ps(span.as_ps());
        }
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
            Event::UpFree { dev } => self.up_free(now, dev, q),
            Event::DownFree { dev } => self.down_free(now, dev, q),
            Event::EndpointTimer { dev } => self.endpoint_timer(now, dev, q),
            Event::CpuStep { cpu } => self.cpu_step(now, cpu, q),
            Event::MemWake => self.mem_wake(now, q),
            Event::MmioEgress { dev, tlp } => self.mmio_egress(dev, tlp, q),
            Event::MmioIn { dev, tlp } => self.mmio_in(now, dev, tlp, q),
            Event::UpdateFcUpIn { dev, update } => self.update_fc_up_in(dev, update, q),
            Event::RcIngress { req } => self.rc_ingress(req, q),
            Event::RcAccept { dev } => self.rc_accept(now, dev, q),
            Event::UpdateFcIn { dev, update } => self.update_fc_in(dev, update, q),
            Event::IommuIn { req } => self.iommu_in(now, req, q),
            Event::IommuMem { access } => self.iommu_mem(now, access, q),
            Event::IommuMemDone { access } => self.iommu_mem_done(now, access, q),
            Event::IommuRegister { unit, offset } => self.iommu_register(now, unit, offset, q),
            Event::IommuRegWrite {
                unit,
                offset,
                value,
            } => self.iommu_reg_write(now, unit, offset, value, q),
            Event::Start => self.start_workload(q),
            Event::MemoryIn { req } => self.memory_in(now, req, q),
            Event::CompletionTx { req } => self.completion_tx(req, q),
            Event::CompletionIn { dev, cpl } => self.completion_in(now, dev, cpl, q),
            Event::FlushQueueTimer { timer } => self.flush_queue_timer(now, timer, q),
        }
    }

    fn work_remains(&self) -> bool {
        !self.finished()
    }

    fn finished(&self) -> bool {
        self.reqs.is_empty()
            && self.cpls.is_empty()
            && self.iommu_mem.is_empty()
            && self.unmap.is_idle()
            && self
                .cpus
                .iter()
                .all(|c| c.next >= c.ops.len() && c.host.is_none() && c.wait.is_none())
            && self
                .devices
                .iter()
                .all(|d| d.endpoint.is_idle() && d.feed.is_exhausted() && d.down.queued() == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{self, Limits, StopReason};
    use model_core::{AgentOutput, AgentStats, Translation, TranslationFault, TranslationRequest};

    /// Refuses every request at or above `from` with the VT-d reason 6 (not present).
    #[derive(Debug, Clone)]
    pub struct Blocking {
        pub from: u64,
        pub out: Vec<AgentOutput>,
    }

    impl TranslationAgent for Blocking {
        fn kind(&self) -> &'static str {
            "test-blocking"
        }
        fn request(&mut self, now: Tick, token: u64, req: &TranslationRequest) {
            let result = self.reference_translate(req, &mut |_, _| {});
            let result = result.map_err(|code| TranslationFault {
                requester: req.requester,
                iova: req.iova,
                access: req.access,
                pasid: req.pasid,
                reason_code: code,
                reason: "test: not present",
                logged: "not logged".to_owned(),
            });
            let at = now + Span::from_ns(5);
            self.out.push(AgentOutput::Done { token, at, result });
        }
        fn poll_output(&mut self) -> Option<AgentOutput> {
            self.out.pop()
        }
        fn reference_translate(
            &self,
            req: &TranslationRequest,
            _mem: &mut dyn FnMut(PhysAddr, &mut [u8]),
        ) -> Result<Translation, u32> {
            if req.iova.raw() >= self.from {
                return Err(6);
            }
            Ok(Translation {
                pa: PhysAddr(req.iova.raw()),
                forces_snoop: false,
            })
        }
        fn stats(&self) -> AgentStats {
            AgentStats::default()
        }
    }

    #[test]
    fn blocked_reads_complete_with_ur_blocked_writes_are_dropped_and_both_are_reported() {
        let text = r#"{"name": "faults", "seed": 1,
          "devices": [{"name": "d", "bdf": "01:00.0"}],
          "workload": {"program": {"devices": {"d": [
            {"dma_write": {"address": "0x1000", "bytes": 256}},
            {"dma_write": {"address": "0x9000", "bytes": 256}},
            {"dma_read": {"address": "0x9000", "bytes": 64}},
            {"dma_read": {"address": "0x1000", "bytes": 64}}
          ]}}}}"#;
        let loaded = crate::scenario::parse(std::path::Path::new("<t>"), text).unwrap();
        let mut system = System::new(&loaded.variants[0].scenario).unwrap();
        system.units[0].iommu = Iommu::Blocking(Blocking {
            from: 0x8000,
            out: Vec::new(),
        });
        let mut q = EventQueue::new();
        system.start(&mut q).unwrap();
        let limits = Limits {
            max_time: Tick::MAX,
            max_events: 1_000_000,
        };
        let stop = engine::run(&mut q, &mut system, limits).unwrap();
        assert_eq!(stop, StopReason::Completed);
        // One write and one read blocked, each recorded with requester and address.
        assert_eq!(system.fault_count, 2);
        assert_eq!(system.faults[0].address, "0x9000");
        assert_eq!(system.faults[0].requester, "01:00.0");
        assert_eq!(system.faults[0].reason_code, 6);
        // The blocked write never reached memory (as the coherent reference sees it); the
        // allowed one did.
        let mem = system.mem.observer().reference();
        assert_eq!(mem.read_vec(PhysAddr(0x9000), 256), vec![0; 256]);
        assert_ne!(mem.read_vec(PhysAddr(0x1000), 256), vec![0; 256]);
        // The blocked read ended with UR; the other completed.
        let st = system.devices[0].endpoint.stats();
        assert_eq!(st.error_completions, 1);
        assert_eq!(st.failed_transfers, 1);
        assert_eq!(st.bytes_read, 64);
        assert_eq!(system.in_flight(), 0);
    }
}
