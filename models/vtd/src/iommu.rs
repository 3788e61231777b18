//! [`Vtd`]: one DMA-remapping hardware unit (DRHD) as a sans-IO translation agent.
//!
//! A request reaches the unit at `now`. After `timing.lookup` the context cache (and, in
//! scalable mode, the PASID cache) and the IOTLB have answered (§6.2); a hit completes the
//! request. A miss joins a walk already in flight for the same (requester, PASID, 4 KiB
//! page), or starts one if fewer than `max_walks` are in flight, or waits for a walk slot.
//! A walk is a sequence of table reads ([`AgentOutput::MemRead`]), each performed by the
//! system through the memory model — snooped only when ECAP.C (context structures, and
//! legacy paging structures) or the PASID entry's PWSNP (scalable-mode paging structures)
//! says so — with `timing.walk_step` between the data arriving and the next read leaving.
//! The paging-structure caches let a walk start below the top level.
//!
//! Invalidation (§6.5) is register-based (CCMD, IOTLB_REG) or queued (IQA/IQT, descriptors
//! fetched from memory). Each takes `timing.invalidation` to complete, and cached entries
//! stay usable until then; a walk that started before an invalidation completed does not
//! fill the caches with what it read. Faults are recorded in the fault recording registers
//! (§7.2.1) unless the context or PASID entry sets FPD.

use crate::caches::{Caches, IotlbEntry};
use crate::config::{VtdConfig, VtdConfigError};
use crate::fault::{FaultInfo, FaultRecorder, Logged};
use crate::qi::{
    decode_ccmd, decode_iotlb_reg_with_iva, InvDescriptor, DESCRIPTOR_BYTES_LEGACY,
    DESCRIPTOR_BYTES_SCALABLE,
};
use crate::regs::{gcmd, gsts, offset, Iqa};
use crate::walk::{reference, Outcome, ReqInfo, Setup, Step, Walk, WalkEnv, WalkFault};
use model_core::{
    AgentError, AgentOutput, AgentStats, Cycles, Missed, Pending, PhysAddr, Tick, Translation,
    TranslationAgent, TranslationFault, TranslationRequest, Waiter, WalkSlots,
};
use std::collections::VecDeque;

/// Read tags with this bit are invalidation-queue descriptor fetches; the rest are walks.
const QI_TAG: u64 = 1 << 63;
/// CCMD.ICC: invalidate context-cache, busy until done (§11.4.7).
const CCMD_ICC: u64 = 1 << 63;
/// IOTLB_REG.IVT: invalidate IOTLB, busy until done (§11.4.8.1).
const IOTLB_IVT: u64 = 1 << 63;
/// CCMD.CIRG (62:61) → CAIG (60:59): the granularity performed, read back when ICC clears
/// (§11.4.7; Linux `__iommu_flush_context` checks it). Requests are performed as asked.
const CCMD_CIRG_SHIFT: u32 = 61;
/// See [`CCMD_CIRG_SHIFT`].
const CCMD_CAIG_SHIFT: u32 = 59;
/// IOTLB_REG.IIRG (61:60) → IAIG (58:57), read back when IVT clears (§11.4.8.1; Linux
/// `__iommu_flush_iotlb` reports "Flush IOTLB failed" when IAIG is 0).
const IOTLB_IIRG_SHIFT: u32 = 60;
/// See [`IOTLB_IIRG_SHIFT`].
const IOTLB_IAIG_SHIFT: u32 = 57;
/// FSTS.IQE: invalidation queue error (§11.4.9).
const FSTS_IQE: u32 = 1 << 4;
/// FSTS.PFO: primary fault overflow, write 1 to clear (§11.4.9).
const FSTS_PFO: u32 = 1 << 0;
/// FRCD high qword: F, write 1 to clear (§11.4.14).
const FRCD_F: u64 = 1 << 63;
/// F as bit 31 of the FRCD's top dword (+12), how Linux reads and clears it.
const FRCD_F_DWORD: u64 = 1 << 31;
/// ICS.IWC: invalidation wait descriptor complete (§11.4.13).
const ICS_IWC: u32 = 1 << 0;
/// IQT/IQH hold the queue offset in bits 18:4 (§11.4.12).
const IQ_OFFSET_MASK: u64 = 0x7_fff0;

/// What makes two misses one walk: the same requester, PASID and 4 KiB page, and the same
/// kind of request (an ATS-translated request and a privileged one take other paths through
/// the context and PASID checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MergeKey {
    sid: u16,
    pasid: Option<u32>,
    page: u64,
    translated: bool,
    privileged: bool,
}

impl MergeKey {
    fn of(r: &ReqInfo) -> MergeKey {
        MergeKey {
            sid: r.sid.raw(),
            pasid: r.pasid,
            page: r.iova >> 12,
            translated: r.translated,
            privileged: r.privileged,
        }
    }
}

/// A walk's state: the walk, and its set-up once context and PASID entry are known.
#[derive(Debug, Clone)]
struct Active {
    walk: Walk,
    setup: Option<Setup>,
}

/// The unit's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counters {
    translations: u64,
    walk_reads: u64,
    invalidations: u64,
}

/// What the caches say about a request.
#[derive(Debug)]
enum Lookup {
    /// They answer it.
    Hit(Outcome),
    /// A walk must fetch what they lack, starting with this step.
    Miss(Box<Walk>, Step),
}

/// One VT-d remapping unit.
#[derive(Debug, Clone)]
pub struct Vtd {
    cfg: VtdConfig,
    env: WalkEnv,
    caches: Caches,
    faults: FaultRecorder,
    gsts: u32,
    rtaddr: u64,
    iqa: u64,
    iqh: u64,
    iqt: u64,
    iqe: bool,
    ics: u32,
    qi_busy: bool,
    iva: u64,
    ccmd_busy_until: Option<Tick>,
    iotlb_busy_until: Option<Tick>,
    /// CCMD / IOTLB_REG as software reads them once the command completed (CAIG / IAIG).
    ccmd_done: u64,
    iotlb_done: u64,
    /// Invalidations in progress: applied when their completion tick has come.
    pending: Pending<InvDescriptor>,
    /// Walks in flight and queued.
    slots: WalkSlots<MergeKey, Active>,
    out: VecDeque<AgentOutput>,
    n: Counters,
}

impl Vtd {
    /// A unit with translation disabled, as after reset: software programs RTADDR, sets
    /// GCMD.SRTP, optionally enables queued invalidation, and sets GCMD.TE.
    pub fn new(cfg: VtdConfig) -> Result<Vtd, VtdConfigError> {
        cfg.caps.validate()?;
        if cfg.max_walks == 0 {
            return Err(VtdConfigError::NoWalkSlots);
        }
        Ok(Vtd {
            env: WalkEnv::new(&cfg.caps, PhysAddr(0), false),
            caches: Caches::new(&cfg.caches)?,
            faults: FaultRecorder::new(cfg.caps.nfr),
            gsts: 0,
            rtaddr: 0,
            iqa: 0,
            iqh: 0,
            iqt: 0,
            iqe: false,
            ics: 0,
            qi_busy: false,
            iva: 0,
            ccmd_busy_until: None,
            iotlb_busy_until: None,
            ccmd_done: 0,
            iotlb_done: 0,
            pending: Pending::default(),
            slots: WalkSlots::new(usize::from(cfg.max_walks)),
            out: VecDeque::new(),
            n: Counters::default(),
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &VtdConfig {
        &self.cfg
    }

    /// The fault recording registers.
    pub fn fault_recorder(&self) -> &FaultRecorder {
        &self.faults
    }

    /// Byte offset of the IOTLB invalidate register (ECAP.IRO × 16 + 8, §11.4.8).
    pub fn iotlb_reg_offset(&self) -> u64 {
        self.env.ecap.iotlb_offset() + 8
    }

    /// Byte offset of the invalidate address register (ECAP.IRO × 16).
    pub fn iva_offset(&self) -> u64 {
        self.env.ecap.iotlb_offset()
    }

    /// Byte offset of fault recording register `i` (CAP.FRO × 16 + 16·i).
    pub fn frcd_offset(&self, i: u16) -> u64 {
        self.env.cap.frcd_offset() + 16 * u64::from(i)
    }

    fn span(&self, c: Cycles) -> model_core::Span {
        self.cfg.timing.clock.span(c)
    }

    /// Applies every invalidation whose completion tick has come.
    fn settle(&mut self, now: Tick) {
        for d in self.pending.due(now) {
            self.apply(d);
        }
    }

    fn apply(&mut self, d: InvDescriptor) {
        // Only descriptors that change cached state end the epoch of walks in flight (a
        // wait, which Linux appends to every flush, does not).
        if matches!(
            d,
            InvDescriptor::ContextCache(_)
                | InvDescriptor::Iotlb { .. }
                | InvDescriptor::PasidIotlb(_)
                | InvDescriptor::PasidCache(_)
        ) {
            self.slots.invalidated();
        }
        match d {
            InvDescriptor::ContextCache(s) => {
                self.caches.invalidate_context(s);
            }
            InvDescriptor::Iotlb { scope, .. } => {
                self.caches.invalidate_iotlb(scope);
            }
            InvDescriptor::PasidIotlb(s) => {
                self.caches.invalidate_pasid_iotlb(s);
            }
            InvDescriptor::PasidCache(s) => {
                self.caches.invalidate_pasid(s);
            }
            InvDescriptor::Wait { interrupt, .. } => {
                if interrupt {
                    self.ics |= ICS_IWC;
                }
            }
            // No device TLB or interrupt remapping is modelled: these only take their time.
            InvDescriptor::DeviceIotlb { .. } | InvDescriptor::InterruptEntryCache { .. } => {}
        }
    }

    /// Looks a request up in the context, PASID and IOTLB caches: the outcome when they
    /// answer it, or the walk that must fetch what they lack (and its first step).
    fn lookup(&mut self, info: ReqInfo) -> Lookup {
        let sid = info.sid.raw();
        let (walk, step) = match self.caches.context_lookup(sid) {
            None => Walk::new(&self.env, info),
            Some(ctx) => match ctx.mode {
                crate::walk::ContextMode::Scalable {
                    paside, ..
                // An ATS-translated request never reaches the PASID entry: the context's DTE
                // decides (walk from the context).
                } if !info.translated && (info.pasid.is_none() || paside) => {
                    // PASID 0 for requests without PASID (no ECAP.RPS; see walk.rs).
                    let pasid = info.pasid.unwrap_or(0);
                    match self.caches.pasid_lookup(sid, pasid) {
                        Some(p) => Walk::from_pasid(&self.env, info, ctx, pasid, p),
                        None => Walk::from_context(&self.env, info, ctx),
                    }
                }
                _ => Walk::from_context(&self.env, info, ctx),
            },
        };
        match step {
            Step::Setup(s) => match self.caches.iotlb_lookup(s.did, s.pasid_tag, info.iova) {
                Some(IotlbEntry::Page(leaf)) => Lookup::Hit(Outcome::Leaf(leaf)),
                Some(IotlbEntry::NotPresent { fault, fpd }) => Lookup::Hit(Outcome::Fault {
                    fault,
                    fpd,
                    not_present: true,
                }),
                None => Lookup::Miss(Box::new(walk), step),
            },
            Step::Done(o) => Lookup::Hit(o),
            Step::Read { .. } => Lookup::Miss(Box::new(walk), step),
        }
    }

    /// Starts, joins or queues the walk of a miss. Only a walk for the same kind of
    /// request, started after the latest invalidation completed, can answer it.
    fn miss(&mut self, walk: Walk, step: Step, w: Waiter, at: Tick) {
        let key = MergeKey::of(walk.req());
        let make = || Active { walk, setup: None };
        if let Missed::Start(id) = self.slots.miss(key, w, at, make) {
            // A walk whose context came from the cache already missed the IOTLB.
            let checked = matches!(step, Step::Setup(_));
            self.advance(id, at, step, checked);
        }
    }

    /// Starts queued walks while slots are free; the walks they waited for may have
    /// filled the caches, so each looks them up again.
    fn start_queued(&mut self, now: Tick) {
        while let Some((id, ready)) = self.slots.next_queued() {
            let at = ready.max(now);
            let Some(info) = self.slots.get_mut(id).map(|s| *s.walk.walk.req()) else {
                continue;
            };
            match self.lookup(info) {
                Lookup::Hit(outcome) => {
                    if let Some((s, _)) = self.slots.finish(id) {
                        for w in s.waiters {
                            self.answer(w, at, outcome);
                        }
                    }
                }
                Lookup::Miss(walk, step) => {
                    let walk = Active {
                        walk: *walk,
                        setup: None,
                    };
                    self.slots.restart(id, walk);
                    let checked = matches!(step, Step::Setup(_));
                    self.advance(id, at, step, checked);
                }
            }
        }
    }

    /// Drives walk `id` from `step` at `at` until it needs memory or ends.
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
                Step::Setup(s) => {
                    a.setup = Some(s);
                    if !iotlb_checked {
                        iotlb_checked = true;
                        at += self.cfg.timing.clock.span(self.cfg.timing.lookup);
                        match self
                            .caches
                            .iotlb_lookup(s.did, s.pasid_tag, a.walk.req().iova)
                        {
                            Some(IotlbEntry::Page(leaf)) => {
                                step = Step::Done(Outcome::Leaf(leaf));
                                continue;
                            }
                            Some(IotlbEntry::NotPresent { fault, fpd }) => {
                                step = Step::Done(Outcome::Fault {
                                    fault,
                                    fpd,
                                    not_present: false,
                                });
                                continue;
                            }
                            None => {}
                        }
                    }
                    let iova = a.walk.req().iova;
                    let from = self
                        .caches
                        .psc_lookup(s.did, s.pasid_tag, s.kind, s.levels, iova);
                    step = match self.slots.get_mut(id) {
                        Some(a) => a.walk.walk.begin_paging(&self.env, s, from),
                        None => return,
                    };
                }
                Step::Done(outcome) => {
                    self.finish(id, at, outcome);
                    return;
                }
            }
        }
    }

    /// Fills the caches (unless an invalidation completed meanwhile) and answers every
    /// request waiting on walk `id`.
    fn finish(&mut self, id: u64, at: Tick, outcome: Outcome) {
        let Some((slot, fill)) = self.slots.finish(id) else {
            return;
        };
        let a = &slot.walk;
        if fill {
            let sid = a.walk.req().sid.raw();
            if let Some(c) = a.walk.context {
                self.caches.context_fill(sid, c);
            }
            if let Some((pasid, p)) = a.walk.pasid_ctx {
                self.caches.pasid_fill(sid, pasid, p);
            }
            if let Some(s) = a.setup {
                self.caches.psc_fill(s.did, s.pasid_tag, &a.walk.tables);
                match outcome {
                    Outcome::Leaf(leaf) => self.caches.iotlb_fill(&leaf),
                    // Caching mode: not-present results may be cached (§6.1).
                    Outcome::Fault {
                        fault,
                        fpd,
                        not_present: true,
                    } if self.env.cap.cm() => self.caches.iotlb_fill_not_present(
                        s.did,
                        s.pasid_tag,
                        a.walk.req().iova,
                        fault,
                        fpd,
                    ),
                    _ => {}
                }
            }
        }
        for w in slot.waiters {
            self.answer(w, at, outcome);
        }
        self.start_queued(at);
    }

    /// Answers one request from an outcome.
    fn answer(&mut self, w: Waiter, at: Tick, outcome: Outcome) {
        let info = ReqInfo::of(&w.req);
        // A request that joined a walk cannot be answered before its own lookup ended.
        let at = at.max(w.ready);
        let scalable = self.env.scalable;
        let result = match outcome {
            Outcome::Leaf(leaf) => leaf.apply(&info).map_err(|f| (f, leaf.fpd)),
            Outcome::PassThrough { .. } => Ok(Translation {
                pa: PhysAddr(info.iova),
                forces_snoop: false,
            }),
            Outcome::Fault { fault, fpd, .. } => Err((for_access(fault, info.write), fpd)),
        };
        let result = match result {
            Ok(t) => {
                self.out.push_back(AgentOutput::Done {
                    token: w.token,
                    at,
                    result: Ok(t),
                });
                return;
            }
            Err(e) => e,
        };
        let (fault, fpd) = result;
        let reason = fault.reason(scalable);
        let logged = self.faults.log(
            FaultInfo {
                reason,
                source_id: info.sid,
                address: info.iova,
                pasid: info.pasid,
                write: info.write,
                execute: info.execute,
                privileged: info.privileged,
            },
            fpd,
        );
        let logged = match logged {
            Logged::Recorded { index } => format!("recorded in FRCD {index}"),
            Logged::Collapsed { index } => {
                format!("collapsed into the pending FRCD {index} of the same requester")
            }
            Logged::Overflow => "not recorded: fault recording registers full (FSTS.PFO)".into(),
            Logged::Suppressed => "not recorded: fault processing disabled (FPD)".into(),
        };
        self.out.push_back(AgentOutput::Done {
            token: w.token,
            at: at + self.span(self.cfg.timing.fault),
            result: Err(TranslationFault {
                requester: info.sid,
                iova: w.req.iova,
                access: w.req.access,
                pasid: info.pasid,
                reason_code: u32::from(reason.code()),
                reason: reason.name(),
                logged,
            }),
        });
    }

    fn translation_enabled(&self) -> bool {
        self.gsts & gsts::TES != 0
    }

    fn qi_enabled(&self) -> bool {
        self.gsts & gsts::QIES != 0
    }

    fn descriptor_bytes(&self) -> u64 {
        if self.env.ecap.smts() && Iqa(self.iqa).wide_descriptors() {
            DESCRIPTOR_BYTES_SCALABLE
        } else {
            DESCRIPTOR_BYTES_LEGACY
        }
    }

    /// Fetches the descriptor at the queue head if the queue has work and is not stopped.
    fn qi_kick(&mut self, at: Tick) {
        if self.qi_busy || self.iqe || !self.qi_enabled() || self.iqh == self.iqt {
            return;
        }
        self.qi_busy = true;
        // Descriptor fetches are snooped: Linux's qi_submit_sync writes descriptors with
        // plain stores and no cache flush whatever ECAP.C says.
        self.out.push_back(AgentOutput::MemRead {
            tag: QI_TAG | self.iqh,
            pa: PhysAddr(Iqa(self.iqa).base() + self.iqh),
            len: self.descriptor_bytes() as u32,
            snooped: true,
            at,
        });
    }

    fn qi_fetched(&mut self, now: Tick, data: &[u8]) {
        self.qi_busy = false;
        let qws: Vec<u64> = data
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                u64::from_le_bytes(b)
            })
            .collect();
        let d = match InvDescriptor::decode(&qws) {
            Ok(d) => d,
            Err(_) => {
                // §6.5.2.10: the queue stops at the bad descriptor with FSTS.IQE set.
                self.iqe = true;
                return;
            }
        };
        let done = now + self.span(self.cfg.timing.invalidation);
        if let InvDescriptor::Wait {
            status, interrupt, ..
        } = d
        {
            if let Some((addr, data)) = status {
                self.out.push_back(AgentOutput::MemWrite {
                    pa: PhysAddr(addr),
                    value: u64::from(data),
                    len: 4,
                    snooped: true,
                    at: done,
                });
            }
            // ICS.IWC is set when a wait descriptor with IF completes (§11.4.13).
            if interrupt {
                self.out.push_back(AgentOutput::RegisterChanged {
                    offset: offset::ICS as u32,
                    at: done,
                });
            }
        }
        self.pending.push(done, d);
        self.n.invalidations += 1;
        let size = Iqa(self.iqa).size_bytes();
        self.iqh = (self.iqh + self.descriptor_bytes()) % size;
        self.out.push_back(AgentOutput::RegisterChanged {
            offset: offset::IQH as u32,
            at: done,
        });
        self.qi_kick(done);
    }

    fn refused(&self, what: String) -> AgentError {
        AgentError::Refused { agent: "vtd", what }
    }

    fn write_gcmd(&mut self, value: u32) -> Result<(), AgentError> {
        if value & gcmd::SRTP != 0 {
            // §11.4.4 SRTP: latch RTADDR; TTM (bits 11:10) = 01b selects scalable mode.
            let scalable = (self.rtaddr >> 10) & 0b11 == 0b01;
            if scalable && !self.env.ecap.smts() {
                return Err(
                    self.refused("RTADDR selects scalable mode but ECAP.SMTS is clear".to_owned())
                );
            }
            self.env.root_table = PhysAddr(self.rtaddr & !0xfff);
            self.env.scalable = scalable;
            self.gsts |= gsts::RTPS;
        }
        if value & gcmd::QIE != 0 {
            if !self.env.ecap.qi() {
                return Err(self.refused("GCMD.QIE set but ECAP.QI is clear".to_owned()));
            }
            self.gsts |= gsts::QIES;
        } else {
            // Disabling queued invalidation resets the head (§6.5.2; QEMU
            // vtd_handle_gcmd_qie).
            if self.qi_enabled() {
                self.iqh = 0;
            }
            self.gsts &= !gsts::QIES;
        }
        if value & gcmd::TE != 0 {
            if self.gsts & gsts::RTPS == 0 {
                return Err(self.refused(
                    "GCMD.TE set before a root table pointer was latched with SRTP".to_owned(),
                ));
            }
            self.gsts |= gsts::TES;
        } else {
            self.gsts &= !gsts::TES;
        }
        Ok(())
    }
}

/// A not-present fault's reason depends on the access (legacy 0x5 / 0x6), so merged
/// requests each get their own.
fn for_access(f: WalkFault, write: bool) -> WalkFault {
    match f {
        WalkFault::NotPresent { kind, level, .. } => WalkFault::NotPresent { kind, level, write },
        other => other,
    }
}

impl TranslationAgent for Vtd {
    fn kind(&self) -> &'static str {
        "vtd"
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
        if !self.translation_enabled() {
            // §3.1: with GSTS.TES clear, DMA addresses are host physical addresses.
            self.answer(w, at, Outcome::PassThrough { did: 0 });
            return;
        }
        match self.lookup(ReqInfo::of(req)) {
            Lookup::Hit(o) => self.answer(w, at, o),
            Lookup::Miss(walk, step) => self.miss(*walk, step, w, at),
        }
    }

    fn memory_read_done(&mut self, now: Tick, tag: u64, data: &[u8]) -> Result<(), AgentError> {
        self.settle(now);
        if tag & QI_TAG != 0 {
            if !self.qi_busy {
                return Err(AgentError::UnknownTag(tag));
            }
            self.qi_fetched(now, data);
            return Ok(());
        }
        let Some(a) = self.slots.get_mut(tag) else {
            return Err(AgentError::UnknownTag(tag));
        };
        let step = a.walk.walk.feed(&self.env, data);
        let at = now + self.cfg.timing.clock.span(self.cfg.timing.walk_step);
        self.advance(tag, at, step, false);
        Ok(())
    }

    fn register_write(&mut self, now: Tick, off: u32, value: u64) -> Result<(), AgentError> {
        self.settle(now);
        let off = u64::from(off);
        let done = now + self.span(self.cfg.timing.invalidation);
        match off {
            offset::GCMD => self.write_gcmd(value as u32)?,
            offset::RTADDR => self.rtaddr = value,
            offset::CCMD => {
                if value & CCMD_ICC != 0 {
                    if self.qi_enabled() {
                        return Err(self.refused(
                            "register-based invalidation while queued invalidation is enabled \
                             (§6.5.1)"
                                .to_owned(),
                        ));
                    }
                    let scope = decode_ccmd(value).map_err(|e| self.refused(e.to_string()))?;
                    self.pending.push(done, InvDescriptor::ContextCache(scope));
                    self.n.invalidations += 1;
                    self.ccmd_busy_until = Some(done);
                    self.ccmd_done = ((value >> CCMD_CIRG_SHIFT) & 0b11) << CCMD_CAIG_SHIFT;
                    self.out.push_back(AgentOutput::RegisterChanged {
                        offset: offset::CCMD as u32,
                        at: done,
                    });
                }
            }
            o if o == self.iva_offset() => self.iva = value,
            o if o == self.iotlb_reg_offset() => {
                if value & IOTLB_IVT != 0 {
                    if self.qi_enabled() {
                        return Err(self.refused(
                            "register-based invalidation while queued invalidation is enabled \
                             (§6.5.1)"
                                .to_owned(),
                        ));
                    }
                    let scope = decode_iotlb_reg_with_iva(value, self.iva)
                        .map_err(|e| self.refused(e.to_string()))?;
                    self.pending.push(
                        done,
                        InvDescriptor::Iotlb {
                            scope,
                            drain_reads: false,
                            drain_writes: false,
                        },
                    );
                    self.n.invalidations += 1;
                    self.iotlb_busy_until = Some(done);
                    self.iotlb_done = ((value >> IOTLB_IIRG_SHIFT) & 0b11) << IOTLB_IAIG_SHIFT;
                    self.out.push_back(AgentOutput::RegisterChanged {
                        offset: o as u32,
                        at: done,
                    });
                }
            }
            offset::IQA => self.iqa = value,
            offset::IQT => {
                self.iqt = value & IQ_OFFSET_MASK;
                // With 256-bit descriptors a tail on a 128-bit boundary is an invalidation
                // queue error (§11.4.9 IQE).
                if !self.iqt.is_multiple_of(self.descriptor_bytes()) {
                    self.iqe = true;
                }
                self.qi_kick(now);
            }
            offset::FSTS => {
                let v = value as u32;
                if v & FSTS_PFO != 0 {
                    self.faults.clear_overflow();
                }
                if v & FSTS_IQE != 0 {
                    // Software fixed the queue: fetching resumes at the head.
                    self.iqe = false;
                    self.qi_kick(now);
                }
            }
            offset::ICS => {
                if value as u32 & ICS_IWC != 0 {
                    self.ics &= !ICS_IWC;
                }
            }
            o => {
                let fro = self.env.cap.frcd_offset();
                let nfr = u64::from(self.env.cap.nfr());
                // F is bit 127: bit 63 of the qword at +8, or bit 31 of the dword at +12
                // (Linux dmar_fault: `writel(DMA_FRCD_F, reg + 12)`).
                let rel = o.wrapping_sub(fro);
                let f_set = match rel % 16 {
                    8 => value & FRCD_F != 0,
                    12 => value & FRCD_F_DWORD != 0,
                    _ => false,
                };
                if (fro..fro + 16 * nfr).contains(&o) && matches!(rel % 16, 8 | 12) {
                    if f_set {
                        self.faults.clear((rel / 16) as u16);
                    }
                } else {
                    return Err(AgentError::NoRegister {
                        offset: o as u32,
                        agent: "vtd",
                    });
                }
            }
        }
        Ok(())
    }

    fn register_read(&mut self, now: Tick, off: u32) -> Result<u64, AgentError> {
        self.settle(now);
        let off = u64::from(off);
        let busy = |until: Option<Tick>, bit: u64, done: u64| match until {
            Some(t) if t > now => bit,
            _ => done,
        };
        Ok(match off {
            offset::CAP => self.env.cap.0,
            offset::ECAP => self.env.ecap.0,
            offset::GSTS => u64::from(self.gsts),
            offset::RTADDR => self.rtaddr,
            offset::CCMD => busy(self.ccmd_busy_until, CCMD_ICC, self.ccmd_done),
            o if o == self.iotlb_reg_offset() => {
                busy(self.iotlb_busy_until, IOTLB_IVT, self.iotlb_done)
            }
            o if o == self.iva_offset() => self.iva,
            offset::IQA => self.iqa,
            offset::IQT => self.iqt,
            offset::IQH => {
                // The head moves when each descriptor completes.
                let pending_bytes = self.pending.in_progress(now) as u64 * self.descriptor_bytes();
                let size = Iqa(self.iqa).size_bytes().max(1);
                (self.iqh + size - pending_bytes % size) % size
            }
            offset::FSTS => {
                u64::from(self.faults.fsts()) | if self.iqe { u64::from(FSTS_IQE) } else { 0 }
            }
            offset::ICS => u64::from(self.ics),
            o => {
                let fro = self.env.cap.frcd_offset();
                let nfr = u64::from(self.env.cap.nfr());
                if (fro..fro + 16 * nfr).contains(&o) {
                    let (lo, hi) = self
                        .faults
                        .frcd(((o - fro) / 16) as u16)
                        .unwrap_or_default();
                    match (o - fro) % 16 {
                        0 => lo,
                        4 => lo >> 32,
                        8 => hi,
                        _ => hi >> 32,
                    }
                } else {
                    return Err(AgentError::NoRegister {
                        offset: o as u32,
                        agent: "vtd",
                    });
                }
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
        let info = ReqInfo::of(req);
        let identity = Translation {
            pa: PhysAddr(info.iova),
            forces_snoop: false,
        };
        if !self.translation_enabled() {
            return Ok(identity);
        }
        let scalable = self.env.scalable;
        let code = |f: WalkFault| u32::from(f.reason(scalable).code());
        match reference(&self.env, info, mem) {
            Outcome::Leaf(leaf) => leaf.apply(&info).map_err(code),
            Outcome::PassThrough { .. } => Ok(identity),
            Outcome::Fault { fault, .. } => Err(code(for_access(fault, info.write))),
        }
    }

    fn stats(&self) -> AgentStats {
        AgentStats {
            translations: self.n.translations,
            iotlb: self.caches.iotlb_counts(),
            walks: self.slots.started(),
            merged: self.slots.merged(),
            walk_memory_reads: self.n.walk_reads,
            caches: self.caches.counts(),
            faults_logged: self.faults.logged(),
            faults_collapsed: self.faults.collapsed(),
            faults_overflowed: self.faults.overflowed(),
            faults_suppressed: self.faults.suppressed(),
            invalidations: self.n.invalidations,
        }
    }
}
