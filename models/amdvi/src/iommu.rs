//! [`Amdvi`]: one AMD IOMMU as a sans-IO translation agent.
//!
//! A request reaches the unit at `now`; after `timing.lookup` the device-table-entry cache
//! and the IOTLB have answered. A miss joins a walk in flight for the same (DeviceID, 4 KiB
//! page, request kind), starts one if a walk slot is free, or waits. A walk reads the DTE
//! and the I/O page table entries through the memory model (snooped when the unit is
//! coherent: IVHD flag and Control.Coherent), and the page-directory cache lets it start
//! below the root. Commands are fetched from the command buffer in memory and each takes
//! `timing.command` to complete; cached translations stay usable until then, and a walk
//! that started before an invalidation completed does not fill the caches. Faults are
//! written to the event log in memory (16-byte entries at the tail), dropped with
//! Status.EventOverflow when it is full.

use crate::caches::{Caches, PDC_LEVELS};
use crate::cmd::Command;
use crate::event::{Event, EventLog};
use crate::regs::{control, offset, status, CapError, Capabilities, DevTableBase, RingBase};
use crate::walk::{reference, Device, Outcome, ReqInfo, Step, Walk, WalkEnv};
use model_core::{
    AgentError, AgentOutput, AgentStats, CacheCounts, ClockDomain, CountedCache, Cycles, Missed,
    Pending, PhysAddr, SetAssocError, Span, Tick, Translation, TranslationAgent, TranslationFault,
    TranslationRequest, Waiter, WalkSlots,
};
use std::collections::{BTreeMap, VecDeque};

/// Read tags with this bit are command fetches; the rest are walks.
const CMD_TAG: u64 = 1 << 63;
/// Bytes of a command or event (§2.4, §2.5).
const ENTRY16: u64 = 16;

/// Latencies in the unit's clock (assumptions: AMD publishes none; same shape as VT-d's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmdviTiming {
    /// The unit's clock.
    pub clock: ClockDomain,
    /// Request arrival to the DTE-cache / IOTLB answer.
    pub lookup: Cycles,
    /// A walk's data arriving to its next read leaving.
    pub walk_step: Cycles,
    /// Deciding a fault to the request being answered.
    pub fault: Cycles,
    /// One command from fetch to completion.
    pub command: Cycles,
}

impl Default for AmdviTiming {
    /// 1 GHz, 10-cycle lookups, 4 cycles per walk step, 20 per fault, 200 per command:
    /// the VT-d defaults, so the two vendors differ only by their architecture.
    fn default() -> AmdviTiming {
        AmdviTiming {
            clock: ClockDomain::ONE_GHZ,
            lookup: Cycles(10),
            walk_step: Cycles(4),
            fault: Cycles(20),
            command: Cycles(200),
        }
    }
}

/// Cache shapes: (sets, ways).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmdviCaches {
    /// IOTLB.
    pub iotlb: (usize, usize),
    /// Device table entry cache.
    pub dte: (usize, usize),
    /// Each level's page-directory cache.
    pub pdc: (usize, usize),
}

impl Default for AmdviCaches {
    /// 64 fully associative IOTLB entries (as the VT-d default); the others assumptions.
    fn default() -> AmdviCaches {
        AmdviCaches {
            iotlb: (1, 64),
            dte: (1, 16),
            pdc: (1, 16),
        }
    }
}

/// One unit's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmdviConfig {
    /// Capabilities.
    pub caps: Capabilities,
    /// Cache shapes.
    pub caches: AmdviCaches,
    /// Latencies.
    pub timing: AmdviTiming,
    /// Walks in flight at once.
    pub max_walks: u16,
}

impl Default for AmdviConfig {
    fn default() -> AmdviConfig {
        AmdviConfig {
            caps: Capabilities::default(),
            caches: AmdviCaches::default(),
            timing: AmdviTiming::default(),
            max_walks: 4,
        }
    }
}

/// A configuration the unit cannot be built with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmdviConfigError {
    /// Unsupported capabilities.
    #[error("capabilities.{0}")]
    Caps(#[from] CapError),
    /// A cache shape the arrays cannot take.
    #[error("caches: {0}")]
    Cache(#[from] SetAssocError),
    /// No walk slots.
    #[error("max_walks must be at least 1")]
    NoWalkSlots,
}

/// Misses that one walk answers: same DeviceID, 4 KiB page and request kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MergeKey {
    device_id: u16,
    page: u64,
    translated: bool,
}

/// A walk's state: the walk, and the device once its DTE is known.
#[derive(Debug, Clone)]
struct Active {
    walk: Walk,
    device: Option<Device>,
}

enum Lookup {
    /// The caches answer; `bool`: the requester's DTE.SA.
    Hit(Outcome, bool),
    Miss(Box<Walk>, Step),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counters {
    translations: u64,
    walk_reads: u64,
    commands: u64,
}

/// One AMD IOMMU.
#[derive(Debug, Clone)]
pub struct Amdvi {
    cfg: AmdviConfig,
    env: WalkEnv,
    caches: Caches,
    control: u64,
    dev_table_reg: u64,
    cmd_base: u64,
    cmd_head: u64,
    cmd_tail: u64,
    cmd_busy: bool,
    illegal_command: bool,
    events: Option<EventLog>,
    evt_base: u64,
    status: u64,
    /// Commands in progress, applied when their completion tick has come.
    pending: Pending<Command>,
    /// Walks in flight and queued.
    slots: WalkSlots<MergeKey, Active>,
    out: VecDeque<AgentOutput>,
    n: Counters,
    /// Events the log dropped (disabled or full).
    dropped: u64,
    /// IO_PAGE_FAULTs DTE.SA kept out of the log.
    suppressed: u64,
}

impl Amdvi {
    /// A unit after reset (IommuEn clear: requests pass untranslated). Software programs
    /// the device table, command buffer and event log bases and sets Control.
    pub fn new(cfg: AmdviConfig) -> Result<Amdvi, AmdviConfigError> {
        cfg.caps.validate()?;
        if cfg.max_walks == 0 {
            return Err(AmdviConfigError::NoWalkSlots);
        }
        let c = &cfg.caches;
        let caches = Caches {
            dte: CountedCache::new(c.dte.0, c.dte.1)?,
            iotlb: CountedCache::new(c.iotlb.0, c.iotlb.1)?,
            iotlb_counts: CacheCounts::default(),
            sizes: BTreeMap::new(),
            pdc: PDC_LEVELS
                .iter()
                .map(|_| CountedCache::new(c.pdc.0, c.pdc.1))
                .collect::<Result<_, _>>()?,
        };
        Ok(Amdvi {
            env: WalkEnv {
                caps: cfg.caps.clone(),
                dev_table: PhysAddr(0),
                dev_entries: 0,
                coherent: false,
            },
            caches,
            control: 0,
            dev_table_reg: 0,
            cmd_base: 0,
            cmd_head: 0,
            cmd_tail: 0,
            cmd_busy: false,
            illegal_command: false,
            events: None,
            evt_base: 0,
            status: 0,
            pending: Pending::default(),
            slots: WalkSlots::new(usize::from(cfg.max_walks)),
            out: VecDeque::new(),
            n: Counters::default(),
            dropped: 0,
            suppressed: 0,
            cfg,
        })
    }

    fn span(&self, c: Cycles) -> Span {
        self.cfg.timing.clock.span(c)
    }

    fn enabled(&self) -> bool {
        self.control & control::IOMMU_EN != 0
    }

    fn settle(&mut self, now: Tick) {
        for c in self.pending.due(now) {
            self.apply(c);
        }
    }

    fn apply(&mut self, c: Command) {
        // Only commands that change cached state end the epoch of walks in flight.
        if matches!(
            c,
            Command::InvalidateDevtabEntry { .. }
                | Command::InvalidateIommuPages { .. }
                | Command::InvalidateIommuAll
        ) {
            self.slots.invalidated();
        }
        match c {
            // I = 1: Status.ComWaitInt when the wait completes (§2.4.1).
            Command::CompletionWait {
                interrupt: true, ..
            } => self.status |= status::COM_WAIT_INT,
            Command::InvalidateDevtabEntry { device_id } => {
                self.caches.dte.retain(|k, _| k != u64::from(device_id));
            }
            Command::InvalidateIommuPages { domain_id, pde, .. } => {
                if let Some((first, last)) = c.invalidation_range() {
                    self.caches.invalidate_pages(domain_id, first, last, pde);
                }
            }
            Command::InvalidateIommuAll => self.caches.invalidate_all(),
            // COMPLETION_WAIT's store was scheduled when it was fetched; device IOTLBs,
            // interrupt remapping, prefetch and PPR are not modelled and only take time.
            _ => {}
        }
    }

    fn lookup(&mut self, info: ReqInfo) -> Lookup {
        let (walk, step) = match self.caches.dte.lookup(u64::from(info.device_id)) {
            Some(d) => Walk::from_device(info, d),
            None => Walk::new(&self.env, info),
        };
        let sa = walk.device.is_some_and(|d| d.suppress_faults);
        match step {
            Step::Paged(d) => match self.caches.iotlb_lookup(d.domain, info.iova) {
                Some(leaf) => Lookup::Hit(Outcome::Leaf(leaf.for_device(&d)), d.suppress_faults),
                None => Lookup::Miss(Box::new(walk), step),
            },
            Step::Done(o) => Lookup::Hit(o, sa),
            Step::Read { .. } => Lookup::Miss(Box::new(walk), step),
        }
    }

    /// Starts, joins or queues the walk of a miss.
    fn miss(&mut self, walk: Walk, step: Step, w: Waiter, at: Tick) {
        let r = walk.req();
        let key = MergeKey {
            device_id: r.device_id,
            page: r.iova >> 12,
            translated: r.translated,
        };
        let make = || Active { walk, device: None };
        if let Missed::Start(id) = self.slots.miss(key, w, at, make) {
            let checked = matches!(step, Step::Paged(_));
            self.advance(id, at, step, checked);
        }
    }

    /// Starts queued walks while slots are free, each looking the caches up again.
    fn start_queued(&mut self, now: Tick) {
        while let Some((id, ready)) = self.slots.next_queued() {
            let at = ready.max(now);
            let Some(info) = self.slots.get_mut(id).map(|s| *s.walk.walk.req()) else {
                continue;
            };
            match self.lookup(info) {
                Lookup::Hit(o, sa) => {
                    if let Some((s, _)) = self.slots.finish(id) {
                        for w in s.waiters {
                            self.answer(w, at, o, sa);
                        }
                    }
                }
                Lookup::Miss(walk, step) => {
                    let walk = Active {
                        walk: *walk,
                        device: None,
                    };
                    self.slots.restart(id, walk);
                    let checked = matches!(step, Step::Paged(_));
                    self.advance(id, at, step, checked);
                }
            }
        }
    }

    fn advance(&mut self, id: u64, mut at: Tick, mut step: Step, mut iotlb_checked: bool) {
        loop {
            let Some(a) = self.slots.get_mut(id).map(|s| &mut s.walk) else {
                return;
            };
            match step {
                Step::Read { pa, len, snooped } => {
                    self.n.walk_reads += 1;
                    self.out.push_back(AgentOutput::MemRead {
                        tag: id,
                        pa,
                        len,
                        snooped,
                        at,
                    });
                    return;
                }
                Step::Paged(d) => {
                    a.device = Some(d);
                    let iova = a.walk.req().iova;
                    if !iotlb_checked {
                        iotlb_checked = true;
                        at += self.span(self.cfg.timing.lookup);
                        if let Some(leaf) = self.caches.iotlb_lookup(d.domain, iova) {
                            step = Step::Done(Outcome::Leaf(leaf.for_device(&d)));
                            continue;
                        }
                    }
                    let levels = match d.kind {
                        crate::walk::DeviceKind::Paged { levels, .. } => levels,
                        _ => 0,
                    };
                    let from = self.caches.pdc_lookup(d.domain, levels, iova);
                    step = match self.slots.get_mut(id) {
                        Some(a) => a.walk.walk.begin_paging(&self.env, d, from),
                        None => return,
                    };
                }
                Step::Done(o) => {
                    self.finish(id, at, o);
                    return;
                }
            }
        }
    }

    fn finish(&mut self, id: u64, at: Tick, outcome: Outcome) {
        let Some((slot, fill)) = self.slots.finish(id) else {
            return;
        };
        let a = &slot.walk;
        if fill {
            if let Some(d) = a.walk.device {
                self.caches.dte.insert(u64::from(a.walk.req().device_id), d);
            }
            if let Some(d) = a.device {
                self.caches.pdc_fill(d.domain, &a.walk.tables);
            }
            if let Outcome::Leaf(leaf) = outcome {
                self.caches.iotlb_fill(&leaf);
            }
        }
        let sa = a
            .walk
            .device
            .or(a.device)
            .is_some_and(|d| d.suppress_faults);
        for w in slot.waiters {
            self.answer(w, at, outcome, sa);
        }
        self.start_queued(at);
    }

    /// Answers one request; a fault is written to the event log, unless it is an
    /// IO_PAGE_FAULT of a device whose DTE.SA suppresses them.
    fn answer(&mut self, w: Waiter, at: Tick, outcome: Outcome, sa: bool) {
        let info = ReqInfo::of(&w.req);
        // A request that joined a walk cannot be answered before its own lookup ended.
        let at = at.max(w.ready);
        let fault = match outcome.apply(&info) {
            Ok(t) => {
                self.out.push_back(AgentOutput::Done {
                    token: w.token,
                    at,
                    result: Ok(t),
                });
                return;
            }
            Err(f) => f,
        };
        let at = at + self.span(self.cfg.timing.fault);
        let event = fault.event(&info);
        let logged = if sa && fault.is_page_fault() {
            self.suppressed += 1;
            "not logged: DTE.SA suppresses IO_PAGE_FAULT events".to_owned()
        } else {
            self.log(at, &event)
        };
        let code = event.code();
        self.out.push_back(AgentOutput::Done {
            token: w.token,
            at,
            result: Err(TranslationFault {
                requester: w.req.requester,
                iova: w.req.iova,
                access: w.req.access,
                pasid: w.req.pasid,
                reason_code: u32::from(code.code()),
                reason: code.name(),
                logged,
            }),
        });
    }

    /// Appends an event to the log in memory (two 8-byte writes at the tail).
    fn log(&mut self, at: Tick, e: &Event) -> String {
        let Some(log) = self
            .events
            .as_mut()
            .filter(|_| self.control & control::EVT_LOG_EN != 0)
        else {
            self.dropped += 1;
            return "not logged: the event log is disabled".to_owned();
        };
        match log.push(e) {
            Ok((pa, qw)) => {
                for (i, q) in qw.iter().enumerate() {
                    self.out.push_back(AgentOutput::MemWrite {
                        pa: PhysAddr(pa.raw() + 8 * i as u64),
                        value: *q,
                        len: 8,
                        snooped: true,
                        at,
                    });
                }
                // Status.EventLogInt: an entry was written (VirtualBox sets it per entry).
                self.status |= status::EVT_INT;
                self.out.push_back(AgentOutput::RegisterChanged {
                    offset: offset::EVT_TAIL as u32,
                    at,
                });
                format!("event log entry at {pa}: {}", e.describe())
            }
            Err(_) => {
                self.dropped += 1;
                self.status |= status::EVT_OVERFLOW;
                "not logged: event log full (Status.EventOverflow)".to_owned()
            }
        }
    }

    fn cmd_kick(&mut self, at: Tick) {
        if self.cmd_busy
            || self.illegal_command
            || self.control & control::CMD_BUF_EN == 0
            || self.cmd_head == self.cmd_tail
        {
            return;
        }
        self.cmd_busy = true;
        let base = RingBase(self.cmd_base).base().raw();
        // Command fetches always snoop: Linux's iommu_queue_command copies commands into
        // the buffer with plain stores and never flushes them, whatever Control.Coherent
        // says (as the VT-d invalidation queue).
        self.out.push_back(AgentOutput::MemRead {
            tag: CMD_TAG | self.cmd_head,
            pa: PhysAddr(base + self.cmd_head),
            len: ENTRY16 as u32,
            snooped: true,
            at,
        });
    }

    fn cmd_fetched(&mut self, now: Tick, data: &[u8]) {
        self.cmd_busy = false;
        let qw = |i: usize| {
            data.get(8 * i..8 * i + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_le_bytes)
        };
        let cmd = match Command::decode([qw(0), qw(1)]) {
            Ok(c) => c,
            Err(_) => {
                // §2.4: an illegal command stops the command processor and is logged.
                self.illegal_command = true;
                let base = RingBase(self.cmd_base).base().raw();
                let e = Event::IllegalCommandError {
                    address: PhysAddr(base + self.cmd_head),
                };
                self.log(now, &e);
                return;
            }
        };
        let done = now + self.span(self.cfg.timing.command);
        if let Command::CompletionWait {
            store: Some((pa, data)),
            ..
        } = cmd
        {
            self.out.push_back(AgentOutput::MemWrite {
                pa,
                value: data,
                len: 8,
                snooped: true,
                at: done,
            });
        }
        self.pending.push(done, cmd);
        self.n.commands += 1;
        let size = RingBase(self.cmd_base).bytes().unwrap_or(4096).max(ENTRY16);
        self.cmd_head = (self.cmd_head + ENTRY16) % size;
        self.cmd_kick(done);
    }

    fn refused(what: impl Into<String>) -> AgentError {
        AgentError::Refused {
            agent: "amdvi",
            what: what.into(),
        }
    }
}

impl TranslationAgent for Amdvi {
    fn kind(&self) -> &'static str {
        "amdvi"
    }

    fn request(&mut self, now: Tick, token: u64, req: &TranslationRequest) {
        self.settle(now);
        self.n.translations += 1;
        let at = now + self.span(self.cfg.timing.lookup);
        let w = Waiter {
            token,
            req: *req,
            ready: at,
        };
        if !self.enabled() {
            // IommuEn clear: the unit passes requests through.
            self.out.push_back(AgentOutput::Done {
                token,
                at,
                result: Ok(Translation {
                    pa: PhysAddr(req.iova.raw()),
                    forces_snoop: false,
                }),
            });
            return;
        }
        match self.lookup(ReqInfo::of(req)) {
            Lookup::Hit(o, sa) => self.answer(w, at, o, sa),
            Lookup::Miss(walk, step) => self.miss(*walk, step, w, at),
        }
    }

    fn memory_read_done(&mut self, now: Tick, tag: u64, data: &[u8]) -> Result<(), AgentError> {
        self.settle(now);
        if tag & CMD_TAG != 0 {
            if !self.cmd_busy {
                return Err(AgentError::UnknownTag(tag));
            }
            self.cmd_fetched(now, data);
            return Ok(());
        }
        let Some(a) = self.slots.get_mut(tag) else {
            return Err(AgentError::UnknownTag(tag));
        };
        let step = a.walk.walk.feed(&self.env, data);
        let at = now + self.span(self.cfg.timing.walk_step);
        self.advance(tag, at, step, false);
        Ok(())
    }

    fn register_write(&mut self, now: Tick, off: u32, value: u64) -> Result<(), AgentError> {
        self.settle(now);
        match u64::from(off) {
            offset::DEV_TABLE_BASE => {
                let r = DevTableBase(value);
                // A new table makes every cached DTE meaningless.
                self.caches.dte.retain(|_, _| false);
                self.dev_table_reg = value;
                self.env.dev_table = r.base();
                self.env.dev_entries = r.entries();
            }
            offset::CMD_BUF_BASE => {
                if RingBase(value).entries().is_none() {
                    return Err(Self::refused(
                        "CmdBufBase Len below 256 entries is reserved",
                    ));
                }
                self.cmd_base = value;
                self.cmd_head = 0;
                self.cmd_tail = 0;
            }
            offset::EVT_LOG_BASE => {
                let r = RingBase(value);
                let entries = r
                    .entries()
                    .ok_or_else(|| Self::refused("EvtLogBase Len below 256 entries is reserved"))?;
                self.evt_base = value;
                self.events = Some(EventLog::new(r.base(), entries));
            }
            offset::CONTROL => {
                // Re-enabling the command buffer restarts a processor an illegal command
                // stopped (Linux amd_iommu_reset_cmd_buffer: CmdBufEn off, head = tail =
                // 0, CmdBufEn on).
                if value & control::CMD_BUF_EN != 0 && self.control & control::CMD_BUF_EN == 0 {
                    self.illegal_command = false;
                }
                self.control = value;
                self.env.coherent = self.cfg.caps.coherent && value & control::COHERENT != 0;
                self.cmd_kick(now);
            }
            offset::CMD_TAIL => {
                self.cmd_tail = value & crate::regs::HEAD_TAIL_MASK;
                self.cmd_kick(now);
            }
            offset::CMD_HEAD => self.cmd_head = value & crate::regs::HEAD_TAIL_MASK,
            offset::EVT_TAIL => {
                // Linux writes 0 at enable (iommu_enable_event_buffer): the tail of an
                // empty log. The hardware owns the tail otherwise.
                let tail = self.events.as_ref().map_or(0, |l| l.tail());
                if value & crate::regs::HEAD_TAIL_MASK != tail {
                    return Err(Self::refused(
                        "EVT_TAIL is written by hardware; software may only reset it to the current tail",
                    ));
                }
            }
            offset::EVT_HEAD => {
                if let Some(log) = self.events.as_mut() {
                    log.set_head(value & crate::regs::HEAD_TAIL_MASK);
                }
            }
            offset::STATUS => {
                // Write 1 to clear (§3.4 MMIO 2020h).
                if value & status::EVT_OVERFLOW != 0 {
                    if let Some(log) = self.events.as_mut() {
                        log.clear_overflow();
                    }
                }
                self.status &= !(value & status::RW1C);
            }
            o => {
                return Err(AgentError::NoRegister {
                    offset: o as u32,
                    agent: "amdvi",
                })
            }
        }
        Ok(())
    }

    fn register_read(&mut self, now: Tick, off: u32) -> Result<u64, AgentError> {
        self.settle(now);
        Ok(match u64::from(off) {
            offset::DEV_TABLE_BASE => self.dev_table_reg,
            offset::CMD_BUF_BASE => self.cmd_base,
            offset::EVT_LOG_BASE => self.evt_base,
            offset::CONTROL => self.control,
            offset::EXT_FEATURE => self.cfg.caps.ext_features().0,
            offset::CMD_HEAD => {
                // The head moves when each command completes.
                let waiting = self.pending.in_progress(now) as u64;
                let size = RingBase(self.cmd_base).bytes().unwrap_or(4096).max(ENTRY16);
                (self.cmd_head + size - (waiting * ENTRY16) % size) % size
            }
            offset::CMD_TAIL => self.cmd_tail,
            offset::EVT_HEAD => self.events.as_ref().map_or(0, |l| l.head()),
            offset::EVT_TAIL => self.events.as_ref().map_or(0, |l| l.tail()),
            offset::STATUS => {
                let overflow = self.events.as_ref().is_some_and(|l| l.overflowed());
                let logging = self.control & control::EVT_LOG_EN != 0 && !overflow;
                self.status
                    | if overflow { status::EVT_OVERFLOW } else { 0 }
                    | if logging { status::EVT_RUN } else { 0 }
                    | if self.control & control::CMD_BUF_EN != 0 && !self.illegal_command {
                        status::CMD_RUN
                    } else {
                        0
                    }
            }
            o => {
                return Err(AgentError::NoRegister {
                    offset: o as u32,
                    agent: "amdvi",
                })
            }
        })
    }

    fn poll_output(&mut self) -> Option<AgentOutput> {
        self.out.pop_front()
    }

    fn reference_translate(
        &self,
        req: &TranslationRequest,
        mem: &mut dyn FnMut(PhysAddr, &mut [u8]),
    ) -> Result<Translation, u32> {
        if !self.enabled() {
            return Ok(Translation {
                pa: PhysAddr(req.iova.raw()),
                forces_snoop: false,
            });
        }
        let info = ReqInfo::of(req);
        reference(&self.env, info, mem)
            .apply(&info)
            .map_err(|f| u32::from(f.event(&info).code().code()))
    }

    fn stats(&self) -> AgentStats {
        let logged = self.events.as_ref().map_or(0, |l| l.logged());
        let overflowed = self.events.as_ref().map_or(0, |l| l.dropped());
        let mut caches = vec![("dte", self.caches.dte.counts())];
        let names = ["pdc_l2", "pdc_l3", "pdc_l4", "pdc_l5", "pdc_l6"];
        caches.extend(
            names
                .iter()
                .zip(&self.caches.pdc)
                .map(|(n, a)| (*n, a.counts())),
        );
        AgentStats {
            translations: self.n.translations,
            iotlb: self.caches.iotlb_counts,
            walks: self.slots.started(),
            merged: self.slots.merged(),
            walk_memory_reads: self.n.walk_reads,
            caches,
            faults_logged: logged,
            faults_collapsed: 0,
            faults_overflowed: overflowed,
            faults_suppressed: self.suppressed + self.dropped.saturating_sub(overflowed),
            invalidations: self.n.commands,
        }
    }
}
