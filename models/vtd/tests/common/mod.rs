//! Test harness for the VT-d model: a tiny deterministic system around one [`Vtd`].
//!
//! * [`Memory`]: DRAM (a [`SparseMemory`]) plus a "CPU cache" overlay holding bytes the CPU
//!   wrote that have not reached DRAM yet. Table updates are applied either flushed (to both,
//!   as after CLFLUSH — what Linux `__iommu_flush_cache` does when ECAP.C = 0) or cached (to
//!   the overlay only). A snooped read sees the overlay first, a non-snooped read DRAM only.
//! * [`Sys`]: drives the agent the way `sim/` does. Events are kept in a `BTreeMap` keyed by
//!   `(tick, sequence)`, so equal-tick events run in insertion order and time never goes
//!   backwards (the agent requires a non-decreasing `now`). A `MemRead` is answered
//!   `dram_latency` after it leaves with the memory contents at that tick; a `MemWrite` is
//!   applied at its tick; `Done`s are collected as [`Done`] records.
//! * Boot follows the Linux intel-iommu driver: RTADDR, GCMD.SRTP, then (queued invalidation)
//!   IQA and GCMD.QIE, then GCMD.TE — each GCMD write carrying the full state the driver keeps
//!   in `iommu->gcmd` (SRTP is a one-shot command, not part of that state).
#![allow(dead_code)]

use model_core::{
    AccessKind, AgentOutput, Bdf, Iova, PhysAddr, Span, SparseMemory, Tick, Translation,
    TranslationAgent, TranslationFault, TranslationRequest,
};
use std::collections::BTreeMap;
use vtd::entry::{
    ContextEntry, ContextFields, PageSize, PasidEntry, PasidFields, Pgtt, ScalableContextEntry,
    ScalableContextFields, SlPerm, SlPte, TranslationType,
};
use vtd::qi::InvDescriptor;
use vtd::regs::{gcmd, offset, rtaddr, Capabilities};
use vtd::tables::{ContextTables, FlTables, MemWrite, SlTables, TableAllocator};
use vtd::walk::{self, Outcome, ReqInfo, WalkEnv};
use vtd::{Vtd, VtdConfig};

/// DRAM read latency used throughout (the figure the latency table is quoted at).
pub const DRAM_NS: u64 = 80;
/// Table region (root, context, PASID and paging-structure pages).
pub const TABLE_BASE: u64 = 0x1000_0000;
/// Bytes of the table region: 4096 pages.
pub const TABLE_REGION: u64 = 16 << 20;
/// The invalidation queue (QS = 0: one 4 KiB page of 256 legacy descriptors).
pub const QUEUE_BASE: u64 = 0x2000_0000;
/// Where invalidation-wait descriptors write their status word.
pub const STATUS_ADDR: u64 = 0x2000_8000;
/// Linux `QI_IN_USE` / `QI_DONE` (enum qi_desc_status in drivers/iommu/intel/iommu.h).
pub const QI_IN_USE: u32 = 1;
/// See [`QI_IN_USE`].
pub const QI_DONE: u32 = 2;

/// Nanoseconds as a span.
pub fn ns(n: u64) -> Span {
    Span::from_ns(n)
}

/// A tick `n` nanoseconds into the run.
pub fn at_ns(n: u64) -> Tick {
    Tick::ZERO + Span::from_ns(n)
}

/// A requester ID.
pub fn dev(bus: u8, device: u8, function: u8) -> Bdf {
    Bdf::new(bus, device, function).expect("valid BDF")
}

/// A plain untranslated request without PASID, snooped (NS = 0), 64 bytes.
pub fn req(bdf: Bdf, iova: u64, access: AccessKind) -> TranslationRequest {
    TranslationRequest {
        requester: bdf,
        iova: Iova(iova),
        len: 64,
        access,
        pasid: None,
        execute: false,
        privileged: false,
        no_snoop: false,
        translated: false,
    }
}

/// A memory read request.
pub fn rd(bdf: Bdf, iova: u64) -> TranslationRequest {
    req(bdf, iova, AccessKind::Read)
}

/// A memory write request.
pub fn wr(bdf: Bdf, iova: u64) -> TranslationRequest {
    req(bdf, iova, AccessKind::Write)
}

/// A successful translation without forced snooping.
pub fn ok(pa: u64) -> Result<Translation, u32> {
    Ok(Translation {
        pa: PhysAddr(pa),
        forces_snoop: false,
    })
}

/// Second-level leaf permissions.
pub fn perm(read: bool, write: bool, snp: bool) -> SlPerm {
    SlPerm { read, write, snp }
}

/// Read-write, SNP clear.
pub const RW: SlPerm = SlPerm {
    read: true,
    write: true,
    snp: false,
};

// ---------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------

/// DRAM plus the CPU-cache overlay (bytes written by the CPU, not yet written back).
#[derive(Debug, Clone, Default)]
pub struct Memory {
    /// What a non-snooped read sees.
    pub dram: SparseMemory,
    /// Dirty bytes in the CPU caches, by address.
    pub cache: BTreeMap<u64, u8>,
}

impl Memory {
    /// Writes that reached DRAM (written and flushed): DRAM and the overlay agree afterwards.
    pub fn write_flushed(&mut self, writes: &[MemWrite]) {
        for w in writes {
            self.store_flushed(w.pa, &w.bytes);
        }
    }

    /// Writes that stayed in the CPU caches (no CLFLUSH): DRAM keeps the old bytes.
    pub fn write_cached(&mut self, writes: &[MemWrite]) {
        for w in writes {
            self.store_cached(w.pa, &w.bytes);
        }
    }

    /// Bytes written through to DRAM; any cached copy is updated too.
    pub fn store_flushed(&mut self, pa: PhysAddr, bytes: &[u8]) {
        self.dram.write(pa, bytes);
        for (i, b) in (0u64..).zip(bytes) {
            let a = pa.0.wrapping_add(i);
            if let Some(c) = self.cache.get_mut(&a) {
                *c = *b;
            }
        }
    }

    /// Bytes written into the CPU caches only.
    pub fn store_cached(&mut self, pa: PhysAddr, bytes: &[u8]) {
        for (i, b) in (0u64..).zip(bytes) {
            self.cache.insert(pa.0.wrapping_add(i), *b);
        }
    }

    /// Writes every dirty byte back to DRAM (WBINVD).
    pub fn flush_all(&mut self) {
        for (a, b) in std::mem::take(&mut self.cache) {
            self.dram.write(PhysAddr(a), &[b]);
        }
    }

    /// The CPU's coherent view: overlay first, then DRAM.
    pub fn read_coherent(&self, pa: PhysAddr, buf: &mut [u8]) {
        self.dram.read(pa, buf);
        for (i, b) in (0u64..).zip(buf.iter_mut()) {
            if let Some(c) = self.cache.get(&pa.0.wrapping_add(i)) {
                *b = *c;
            }
        }
    }

    /// What a device or a non-snooping walker reads.
    pub fn read_dram(&self, pa: PhysAddr, buf: &mut [u8]) {
        self.dram.read(pa, buf);
    }

    /// A snooped or non-snooped read.
    pub fn read(&self, pa: PhysAddr, buf: &mut [u8], snooped: bool) {
        if snooped {
            self.read_coherent(pa, buf)
        } else {
            self.read_dram(pa, buf)
        }
    }

    /// A little-endian u64 from the coherent view.
    pub fn u64_coherent(&self, pa: u64) -> u64 {
        let mut b = [0u8; 8];
        self.read_coherent(PhysAddr(pa), &mut b);
        u64::from_le_bytes(b)
    }

    /// A little-endian u32 from the coherent view.
    pub fn u32_coherent(&self, pa: u64) -> u32 {
        let mut b = [0u8; 4];
        self.read_coherent(PhysAddr(pa), &mut b);
        u32::from_le_bytes(b)
    }
}

/// One 64-bit store of `value` at `pa`.
pub fn word(pa: u64, value: u64) -> MemWrite {
    MemWrite {
        pa: PhysAddr(pa),
        bytes: value.to_le_bytes().to_vec(),
    }
}

// ---------------------------------------------------------------------------------------
// The driven system
// ---------------------------------------------------------------------------------------

/// A completed translation as the system saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// The token given at submission.
    pub token: u64,
    /// When the request arrived at the IOMMU.
    pub arrived: Tick,
    /// When the translated request left the IOMMU.
    pub at: Tick,
    /// The outcome.
    pub result: Result<Translation, TranslationFault>,
}

impl Done {
    /// The outcome with the fault reduced to its reason code.
    pub fn code(&self) -> Result<Translation, u32> {
        self.result.clone().map_err(|f| f.reason_code)
    }

    /// Arrival to completion.
    pub fn latency(&self) -> Span {
        self.at
            .checked_since(self.arrived)
            .expect("a request completes at or after it arrives")
    }
}

/// A table or descriptor read the agent issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    /// The agent's tag.
    pub tag: u64,
    /// First byte.
    pub pa: PhysAddr,
    /// Bytes.
    pub len: u32,
    /// Snooped or not.
    pub snooped: bool,
    /// When it left the agent.
    pub at: Tick,
}

/// A memory write the agent performed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentWrite {
    /// First byte.
    pub pa: PhysAddr,
    /// Little-endian data.
    pub value: u64,
    /// Bytes.
    pub len: u32,
    /// Snooped or not.
    pub snooped: bool,
    /// When it was performed.
    pub at: Tick,
}

#[derive(Debug, Clone)]
enum Event {
    Request {
        token: u64,
        req: TranslationRequest,
    },
    ReadData {
        tag: u64,
        pa: PhysAddr,
        len: u32,
        snooped: bool,
    },
    Write(AgentWrite),
}

/// One VT-d unit, its memory and an event list.
#[derive(Debug)]
pub struct Sys {
    /// The unit under test.
    pub vtd: Vtd,
    /// DRAM and CPU caches.
    pub mem: Memory,
    /// Issue to data of every memory read.
    pub dram_latency: Span,
    now: Tick,
    seq: u64,
    events: BTreeMap<(Tick, u64), Event>,
    next_token: u64,
    arrivals: BTreeMap<u64, Tick>,
    qi_tail: u64,
    /// Every completion, in the order the agent produced them.
    pub dones: Vec<Done>,
    /// Every memory read the agent issued (walks and descriptor fetches).
    pub reads: Vec<Read>,
    /// Every memory write the agent asked for.
    pub agent_writes: Vec<AgentWrite>,
    /// Every `RegisterChanged` (offset, tick).
    pub reg_changes: Vec<(u32, Tick)>,
}

impl Sys {
    /// A unit built from `cfg` with empty memory, at tick 0, translation disabled.
    pub fn new(cfg: VtdConfig) -> Sys {
        Sys {
            vtd: Vtd::new(cfg).expect("valid VtdConfig"),
            mem: Memory::default(),
            dram_latency: ns(DRAM_NS),
            now: Tick::ZERO,
            seq: 0,
            events: BTreeMap::new(),
            next_token: 0,
            arrivals: BTreeMap::new(),
            qi_tail: 0,
            dones: Vec::new(),
            reads: Vec::new(),
            agent_writes: Vec::new(),
            reg_changes: Vec::new(),
        }
    }

    /// A unit with these capabilities and default caches and timing.
    pub fn with_caps(caps: Capabilities) -> Sys {
        Sys::new(VtdConfig {
            caps,
            ..VtdConfig::default()
        })
    }

    /// The current tick (the latest event run or call made).
    pub fn now(&self) -> Tick {
        self.now
    }

    fn schedule(&mut self, at: Tick, ev: Event) {
        assert!(
            at >= self.now,
            "scheduling in the past: {at} < now {}",
            self.now
        );
        self.events.insert((at, self.seq), ev);
        self.seq += 1;
    }

    /// Moves every agent output into the event list or the logs.
    fn drain(&mut self) {
        while let Some(o) = self.vtd.poll_output() {
            match o {
                AgentOutput::MemRead {
                    tag,
                    pa,
                    len,
                    snooped,
                    at,
                } => {
                    assert!(at >= self.now, "MemRead at {at} before now {}", self.now);
                    self.reads.push(Read {
                        tag,
                        pa,
                        len,
                        snooped,
                        at,
                    });
                    let done = at + self.dram_latency;
                    self.schedule(
                        done,
                        Event::ReadData {
                            tag,
                            pa,
                            len,
                            snooped,
                        },
                    );
                }
                AgentOutput::MemWrite {
                    pa,
                    value,
                    len,
                    snooped,
                    at,
                } => {
                    let w = AgentWrite {
                        pa,
                        value,
                        len,
                        snooped,
                        at,
                    };
                    self.agent_writes.push(w);
                    self.schedule(at, Event::Write(w));
                }
                AgentOutput::Done { token, at, result } => {
                    assert!(at >= self.now, "Done at {at} before now {}", self.now);
                    let arrived = self.arrivals.get(&token).copied().expect("known token");
                    self.dones.push(Done {
                        token,
                        arrived,
                        at,
                        result,
                    });
                }
                AgentOutput::RegisterChanged { offset, at } => {
                    self.reg_changes.push((offset, at));
                }
            }
        }
    }

    fn step(&mut self) -> bool {
        let Some(((t, _), ev)) = self.events.pop_first() else {
            return false;
        };
        assert!(t >= self.now, "time went backwards");
        self.now = t;
        match ev {
            Event::Request { token, req } => self.vtd.request(t, token, &req),
            Event::ReadData {
                tag,
                pa,
                len,
                snooped,
            } => {
                let mut buf = vec![0u8; len as usize];
                self.mem.read(pa, &mut buf, snooped);
                self.vtd
                    .memory_read_done(t, tag, &buf)
                    .expect("the agent knows its own read tag");
            }
            Event::Write(w) => {
                let bytes = &w.value.to_le_bytes()[..w.len as usize];
                if w.snooped {
                    self.mem.store_flushed(w.pa, bytes);
                } else {
                    // A non-snooped write lands in DRAM; a stale cached copy would hide it
                    // from the CPU, which is what the overlay keeps.
                    self.mem.dram.write(w.pa, bytes);
                }
            }
        }
        self.drain();
        true
    }

    /// Runs every event at or before `t`, then stands at `t`.
    pub fn run_until(&mut self, t: Tick) {
        assert!(t >= self.now, "run_until({t}) before now {}", self.now);
        while self
            .events
            .first_key_value()
            .is_some_and(|((et, _), _)| *et <= t)
        {
            self.step();
        }
        self.now = t;
    }

    /// Runs until nothing is left to do (with a progress watchdog).
    pub fn run(&mut self) {
        for _ in 0..1_000_000 {
            if !self.step() {
                return;
            }
        }
        panic!("no quiescence after 1e6 events: the agent keeps itself busy");
    }

    /// Presents `req` at `at`; returns its token.
    pub fn submit(&mut self, at: Tick, req: TranslationRequest) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        self.arrivals.insert(token, at);
        self.schedule(at, Event::Request { token, req });
        token
    }

    /// The completion of `token`, if it happened.
    pub fn done(&self, token: u64) -> Option<&Done> {
        self.dones.iter().find(|d| d.token == token)
    }

    /// Presents `req` at `at` and runs to quiescence; its completion.
    pub fn translate(&mut self, at: Tick, req: TranslationRequest) -> Done {
        let t = self.submit(at, req);
        self.run();
        self.done(t).cloned().expect("every request completes")
    }

    /// [`Sys::translate`] at the current tick.
    pub fn translate_now(&mut self, req: TranslationRequest) -> Done {
        self.translate(self.now, req)
    }

    /// Host software writes a register at `t`.
    pub fn reg_write(&mut self, t: Tick, off: u64, value: u64) {
        self.run_until(t);
        self.vtd
            .register_write(t, off as u32, value)
            .unwrap_or_else(|e| panic!("register write {off:#x} = {value:#x}: {e}"));
        self.drain();
    }

    /// Host software reads a register at `t`.
    pub fn reg_read(&mut self, t: Tick, off: u64) -> u64 {
        self.run_until(t);
        let v = self
            .vtd
            .register_read(t, off as u32)
            .unwrap_or_else(|e| panic!("register read {off:#x}: {e}"));
        self.drain();
        v
    }

    /// The agent's cache-less answer from the CPU's coherent view of memory.
    pub fn reference(&self, req: &TranslationRequest) -> Result<Translation, u32> {
        let mem = &self.mem;
        self.vtd
            .reference_translate(req, &mut |pa, buf| mem.read_coherent(pa, buf))
    }

    /// The agent's cache-less answer from DRAM alone.
    pub fn reference_dram(&self, req: &TranslationRequest) -> Result<Translation, u32> {
        let mem = &self.mem;
        self.vtd
            .reference_translate(req, &mut |pa, buf| mem.read_dram(pa, buf))
    }

    /// Linux boot, legacy or scalable root table, with or without queued invalidation:
    /// RTADDR = root | TTM; GCMD = SRTP; [IQA = queue; GCMD = QIE]; GCMD = [QIE |] TE.
    pub fn boot(&mut self, root: PhysAddr, scalable: bool, qi: bool) {
        let t = self.now;
        let ttm = if scalable {
            rtaddr::TTM_SCALABLE
        } else {
            rtaddr::TTM_LEGACY
        };
        self.reg_write(t, offset::RTADDR, root.0 | ttm << rtaddr::TTM_SHIFT);
        // iommu->gcmd is 0 here; SRTP is written as gcmd | SRTP (Linux iommu_set_root_entry).
        self.reg_write(t, offset::GCMD, u64::from(gcmd::SRTP));
        let mut state = 0u32;
        if qi {
            // QS = 0 (one page), DW = 0 (128-bit descriptors): Linux dmar_enable_qi with
            // legacy-sized descriptors.
            self.reg_write(t, offset::IQT, 0);
            self.reg_write(t, offset::IQA, QUEUE_BASE);
            state |= gcmd::QIE;
            self.reg_write(t, offset::GCMD, u64::from(state));
        }
        state |= gcmd::TE;
        self.reg_write(t, offset::GCMD, u64::from(state));
        let gsts = self.reg_read(t, offset::GSTS) as u32;
        assert_ne!(gsts & vtd::regs::gsts::TES, 0, "translation enabled");
        assert_ne!(gsts & vtd::regs::gsts::RTPS, 0, "root table latched");
        assert_eq!(gsts & vtd::regs::gsts::QIES != 0, qi);
    }

    /// Writes `descs` into the invalidation queue at the tail (with plain CPU stores, as Linux
    /// `qi_submit_sync` does: no flush, the hardware fetches descriptors snooped) and moves
    /// IQT past them at `t`.
    pub fn qi_submit(&mut self, t: Tick, descs: &[InvDescriptor]) {
        self.run_until(t);
        for d in descs {
            let [q0, q1] = d.encode();
            let mut bytes = q0.to_le_bytes().to_vec();
            bytes.extend_from_slice(&q1.to_le_bytes());
            self.mem
                .store_cached(PhysAddr(QUEUE_BASE + self.qi_tail), &bytes);
            self.qi_tail = (self.qi_tail + 16) % 4096;
        }
        self.reg_write(t, offset::IQT, self.qi_tail);
    }

    /// The invalidation-wait descriptor Linux appends: status write of `QI_DONE` to
    /// [`STATUS_ADDR`], after setting the word to `QI_IN_USE` (Linux `qi_submit_sync`).
    pub fn wait_descriptor(&mut self) -> InvDescriptor {
        self.mem
            .store_cached(PhysAddr(STATUS_ADDR), &QI_IN_USE.to_le_bytes());
        InvDescriptor::Wait {
            interrupt: false,
            status: Some((STATUS_ADDR, QI_DONE)),
            fence: false,
            page_drain: false,
        }
    }

    /// The tick of the agent's write to [`STATUS_ADDR`], if one was issued.
    pub fn status_write_tick(&self) -> Option<Tick> {
        self.agent_writes
            .iter()
            .find(|w| w.pa == PhysAddr(STATUS_ADDR))
            .map(|w| w.at)
    }

    /// Walk-read count so far.
    pub fn walk_reads(&self) -> u64 {
        self.vtd.stats().walk_memory_reads
    }

    /// Hits and misses of a named cache (context, pasid, pde, pdpe, pml4e, pml5e).
    pub fn cache(&self, name: &str) -> model_core::CacheCounts {
        self.vtd
            .stats()
            .caches
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| *c)
            .unwrap_or_else(|| panic!("no cache named {name}"))
    }
}

// ---------------------------------------------------------------------------------------
// Table set-ups
// ---------------------------------------------------------------------------------------

/// A legacy-mode root/context table and one second-level domain, built driver-style.
#[derive(Debug, Clone)]
pub struct Legacy {
    /// Table pages.
    pub alloc: TableAllocator,
    /// Root and context tables.
    pub ctx: ContextTables,
    /// The domain's second-level tables.
    pub sl: SlTables,
    /// Writes not yet applied.
    pub out: Vec<MemWrite>,
}

impl Legacy {
    /// Empty tables with a `levels`-deep domain.
    pub fn new(levels: u8) -> Legacy {
        let mut alloc = TableAllocator::new(PhysAddr(TABLE_BASE), TABLE_REGION).unwrap();
        let ctx = ContextTables::new_legacy(&mut alloc).unwrap();
        let sl = SlTables::new(&mut alloc, levels).unwrap();
        Legacy {
            alloc,
            ctx,
            sl,
            out: Vec::new(),
        }
    }

    /// The context fields pointing `did` at this domain's tables (TT = 0, AW = levels − 2).
    pub fn fields(&self, did: u16) -> ContextFields {
        ContextFields {
            fpd: false,
            tt: TranslationType::UntranslatedOnly,
            slptptr: self.sl.root(),
            aw: self.sl.levels() - 2,
            did,
        }
    }

    /// Attaches `bdf` to the domain with domain id `did`.
    pub fn attach(&mut self, bdf: Bdf, did: u16) {
        let f = self.fields(did);
        self.set_context(bdf, f);
    }

    /// Writes `bdf`'s context entry.
    pub fn set_context(&mut self, bdf: Bdf, f: ContextFields) {
        self.ctx
            .set_context(&mut self.alloc, bdf, ContextEntry::new(f), &mut self.out)
            .unwrap();
    }

    /// Maps `iova` to `pa`.
    pub fn map(&mut self, iova: u64, pa: u64, size: PageSize, p: SlPerm) {
        self.sl
            .map(&mut self.alloc, iova, PhysAddr(pa), size, p, &mut self.out)
            .unwrap();
    }

    /// Rewrites the leaf of `iova` (size `size`) to map `pa` with `p`.
    pub fn remap(&mut self, iova: u64, pa: u64, size: PageSize, p: SlPerm) {
        let pte = SlPte::leaf(PhysAddr(pa), size, p);
        self.sl.set_leaf(iova, size, pte, &mut self.out).unwrap();
    }

    /// The writes so far, taken.
    pub fn take(&mut self) -> Vec<MemWrite> {
        std::mem::take(&mut self.out)
    }

    /// The root table.
    pub fn root(&self) -> PhysAddr {
        self.ctx.root_table()
    }
}

/// The architectural answer from `walk::reference` over the coherent view of `mem`, with
/// the reason code of the mode (no agent involved).
pub fn walk_reference(
    env: &WalkEnv,
    mem: &Memory,
    r: &TranslationRequest,
) -> Result<Translation, u32> {
    let info = ReqInfo::of(r);
    let code = |f: walk::WalkFault| u32::from(f.reason(env.scalable).code());
    match walk::reference(env, info, &mut |pa, buf| mem.read_coherent(pa, buf)) {
        Outcome::Leaf(leaf) => leaf.apply(&info).map_err(code),
        Outcome::PassThrough { .. } => ok(info.iova),
        Outcome::Fault { fault, .. } => Err(code(fault)),
    }
}

/// The outcome of `r` three ways, which must agree: `walk::reference` directly, the agent's
/// `reference_translate`, and the timed agent on a freshly booted unit (cold caches).
pub fn three_ways(
    cfg: &VtdConfig,
    mem: &Memory,
    root: PhysAddr,
    scalable: bool,
    r: &TranslationRequest,
) -> Result<Translation, u32> {
    let env = WalkEnv::new(&cfg.caps, root, scalable);
    let direct = walk_reference(&env, mem, r);
    let mut sys = Sys::new(cfg.clone());
    sys.mem = mem.clone();
    sys.boot(root, scalable, false);
    let via_agent = sys.reference(r);
    let timed = sys.translate_now(*r).code();
    assert_eq!(
        direct, via_agent,
        "walk::reference vs reference_translate for {r:?}"
    );
    assert_eq!(
        direct, timed,
        "walk::reference vs the timed agent for {r:?}"
    );
    direct
}

// ---------------------------------------------------------------------------------------
// Scalable mode
// ---------------------------------------------------------------------------------------

/// A scalable-mode unit with first-level, second-level, nested and pass-through support.
pub fn sm_caps() -> Capabilities {
    Capabilities {
        scalable_mode: true,
        second_level: true,
        first_level: true,
        nested: true,
        pasid: true,
        pss: 19,
        smpwc: true,
        fl1gp: true,
        ..Capabilities::default()
    }
}

/// Scalable-mode root/context/PASID tables.
#[derive(Debug)]
pub struct Sm {
    /// Table pages.
    pub alloc: TableAllocator,
    /// Root, context and PASID tables.
    pub ct: ContextTables,
    /// Writes not yet applied.
    pub out: Vec<MemWrite>,
}

impl Sm {
    /// Empty scalable-mode root table.
    pub fn new() -> Sm {
        let mut alloc = TableAllocator::new(PhysAddr(TABLE_BASE), TABLE_REGION).unwrap();
        let ct = ContextTables::new_scalable(&mut alloc).unwrap();
        Sm {
            alloc,
            ct,
            out: Vec::new(),
        }
    }

    /// A context for `bdf` with its own PASID directory (PDTS = 0: 128 entries, PASIDs
    /// below 8192), RID_PASID = 0.
    pub fn context(&mut self, bdf: Bdf, paside: bool) {
        let dir = ContextTables::alloc_pasid_dir(&mut self.alloc, 0).unwrap();
        let e = ScalableContextEntry::new(ScalableContextFields {
            fpd: false,
            dte: true,
            paside,
            pre: false,
            pdts: 0,
            pasid_dir_ptr: dir,
            rid_pasid: 0,
        });
        self.ct
            .set_scalable_context(&mut self.alloc, bdf, e, &mut self.out)
            .unwrap();
    }

    /// Writes PASID-table entry `pasid` of `bdf`.
    pub fn pasid(&mut self, bdf: Bdf, pasid: u32, f: PasidFields) {
        self.ct
            .set_pasid_entry(
                &mut self.alloc,
                bdf,
                pasid,
                PasidEntry::new(f),
                &mut self.out,
            )
            .unwrap();
    }

    /// New 4-level second-level tables.
    pub fn sl(&mut self) -> SlTables {
        SlTables::new(&mut self.alloc, 4).unwrap()
    }

    /// New 4-level first-level tables.
    pub fn fl(&mut self) -> FlTables {
        FlTables::new(&mut self.alloc, 4).unwrap()
    }

    /// A memory holding every write so far (flushed); the writes stay queued.
    pub fn memory_snapshot(&self) -> Memory {
        let mut m = Memory::default();
        m.write_flushed(&self.out);
        m
    }

    /// A fresh memory holding every write so far (flushed).
    pub fn memory(&mut self) -> Memory {
        let mut m = Memory::default();
        m.write_flushed(&std::mem::take(&mut self.out));
        m
    }
}

/// PASID-entry fields: DID 7, AW 2 (4-level), PWSNP, everything else clear.
pub fn pasid_fields(pgtt: Pgtt) -> PasidFields {
    PasidFields {
        fpd: false,
        aw: 2,
        pgtt,
        slptptr: PhysAddr(0),
        did: 7,
        pwsnp: true,
        pgsnp: false,
        sre: false,
        flpm: 0,
        wpe: false,
        nxe: false,
        flptr: PhysAddr(0),
    }
}

/// `r` as a request-with-PASID.
pub fn with_pasid(r: TranslationRequest, pasid: u32) -> TranslationRequest {
    TranslationRequest {
        pasid: Some(pasid),
        ..r
    }
}
