//! Test harness for the AMD-Vi model: a tiny deterministic system around one [`Amdvi`].
//!
//! * [`Memory`]: DRAM (a [`SparseMemory`]) plus a "CPU cache" overlay holding bytes the CPU
//!   wrote that have not reached DRAM yet. Table updates are applied either flushed (to both,
//!   as after CLFLUSH) or cached (to the overlay only). A snooped read sees the overlay first,
//!   a non-snooped read DRAM only.
//! * [`Sys`]: drives the agent the way `sim/` does. Events are kept in a `BTreeMap` keyed by
//!   `(tick, sequence)`, so equal-tick events run in insertion order and time never goes
//!   backwards (the agent requires a non-decreasing `now`). A `MemRead` is answered
//!   `dram_latency` (80 ns) after it leaves, from the overlay-then-DRAM view when snooped and
//!   from DRAM alone when not; a `MemWrite` is applied at its tick; `Done`s and
//!   `RegisterChanged`s are collected.
//! * Boot follows the Linux amd_iommu driver (`drivers/iommu/amd/init.c`):
//!   `iommu_set_device_table` (DEV_TABLE_BASE = table | (pages − 1)),
//!   `iommu_enable_command_buffer` (CMD_BUF_BASE = buffer | Len 9 << 56, CMD_HEAD = CMD_TAIL
//!   = 0), `iommu_enable_event_buffer` (EVT_LOG_BASE = log | Len << 56, EVT_HEAD = 0), then
//!   CONTROL = IommuEn | EventLogEn | CmdBufEn | Coherent (when the IVHD says coherent).
//!   Linux also writes EVT_TAIL = 0 there; that write is checked on its own in `agent.rs`
//!   (`linux_boot_writes_evt_tail_zero_and_the_unit_accepts_it`).
//! * Commands are written into the command buffer with plain CPU stores (Linux
//!   `copy_cmd_to_buffer`: no flush) and CMD_TAIL is moved past them.
#![allow(dead_code)]

use amdvi::cmd::Command;
use amdvi::dte::{DeviceTableEntry, DteFields};
use amdvi::event::Event as AmdEvent;
use amdvi::pte::{IoPerm, IoPte};
use amdvi::regs::{control, offset, DevTableBase, RingBase};
use amdvi::tables::{DeviceTable, IoPageTable, MemWrite, TableAllocator};
use amdvi::walk::{self, Outcome, ReqInfo, WalkEnv};
use amdvi::{Amdvi, AmdviConfig};
use model_core::{
    AccessKind, AgentOutput, Bdf, CacheCounts, Iova, PhysAddr, Span, SparseMemory, Tick,
    Translation, TranslationAgent, TranslationFault, TranslationRequest,
};
use std::collections::BTreeMap;

/// DRAM read latency used throughout (the figure the latency table is quoted at).
pub const DRAM_NS: u64 = 80;
/// Table region (device table and I/O page-table pages).
pub const TABLE_BASE: u64 = 0x1000_0000;
/// Bytes of the table region: 4096 pages.
pub const TABLE_REGION: u64 = 16 << 20;
/// Last DeviceID the device table covers: 4096 entries × 32 B = 128 KiB = 32 pages.
pub const MAX_DEVICE_ID: u16 = 0x0fff;
/// The command buffer (512 entries × 16 B = 8 KiB, Len = 9 as Linux writes it).
pub const CMD_BASE: u64 = 0x2000_0000;
/// Command buffer entries (L-AMDT `CMD_BUFFER_ENTRIES` 512).
pub const CMD_ENTRIES: u32 = 512;
/// The event log (512 entries by default, L-AMDT `EVT_BUFFER_SIZE` 8192 / 16).
pub const EVT_BASE: u64 = 0x2001_0000;
/// The COMPLETION_WAIT store word (Linux `iommu->cmd_sem`).
pub const SEM_ADDR: u64 = 0x2002_0000;
/// The domain every test device is attached to unless said otherwise.
pub const DOMAIN: u16 = 1;

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

/// The device most tests use: 03:00.0, DeviceID 0x0300.
pub fn dev0() -> Bdf {
    dev(3, 0, 0)
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

/// `r` with the TLP No Snoop attribute set.
pub fn no_snoop(r: TranslationRequest) -> TranslationRequest {
    TranslationRequest {
        no_snoop: true,
        ..r
    }
}

/// A translation through a leaf with FC = 1 (what Linux writes on every v1 leaf).
pub fn ok(pa: u64) -> Result<Translation, u32> {
    Ok(Translation {
        pa: PhysAddr(pa),
        forces_snoop: true,
    })
}

/// A translation that does not force snooping (FC = 0 leaf, or untranslated).
pub fn ok_nofc(pa: u64) -> Result<Translation, u32> {
    Ok(Translation {
        pa: PhysAddr(pa),
        forces_snoop: false,
    })
}

/// Read-write leaf with FC, as Linux `iommu_v1_map_pages` writes it.
pub const RW: IoPerm = IoPerm::LINUX_RW;

/// Leaf permissions.
pub fn perm(ir: bool, iw: bool, fc: bool) -> IoPerm {
    IoPerm {
        ir,
        iw,
        fc,
        u: false,
    }
}

/// Event code ILLEGAL_DEV_TABLE_ENTRY (§2.5; L-AMDT `EVENT_TYPE_ILL_DEV` 0x1).
pub const ILLEGAL_DTE: u32 = 0x1;
/// Event code IO_PAGE_FAULT (§2.5; L-AMDT `EVENT_TYPE_IO_FAULT` 0x2).
pub const IO_PAGE_FAULT: u32 = 0x2;
/// Event code ILLEGAL_COMMAND_ERROR (§2.5; L-AMDT `EVENT_TYPE_ILL_CMD` 0x5).
pub const ILLEGAL_COMMAND: u32 = 0x5;

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
    /// Writes that reached DRAM (written and flushed).
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
            if let Some(c) = self.cache.get_mut(&pa.0.wrapping_add(i)) {
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

    /// What a non-snooping reader sees.
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
    /// The outcome with the fault reduced to its event code.
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

/// A table or command read the agent issued.
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

/// A memory write the agent performed (event log entries, COMPLETION_WAIT stores).
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
enum Ev {
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

/// One AMD-Vi unit, its memory and an event list.
#[derive(Debug)]
pub struct Sys {
    /// The unit under test.
    pub iommu: Amdvi,
    /// DRAM and CPU caches.
    pub mem: Memory,
    /// Issue to data of every memory read.
    pub dram_latency: Span,
    /// Event log entries programmed at boot (a power of two, 256..=32768).
    pub evt_entries: u32,
    now: Tick,
    seq: u64,
    events: BTreeMap<(Tick, u64), Ev>,
    next_token: u64,
    arrivals: BTreeMap<u64, Tick>,
    cmd_tail: u64,
    /// Whether boot set Control.Coherent (commands are then written without a flush).
    coherent_boot: bool,
    /// Every completion, in the order the agent produced them.
    pub dones: Vec<Done>,
    /// Every memory read the agent issued (walks and command fetches).
    pub reads: Vec<Read>,
    /// Every memory write the agent asked for.
    pub agent_writes: Vec<AgentWrite>,
    /// Every `RegisterChanged` (offset, tick).
    pub reg_changes: Vec<(u32, Tick)>,
}

impl Sys {
    /// A unit built from `cfg` with empty memory, at tick 0, not yet booted.
    pub fn new(cfg: AmdviConfig) -> Sys {
        Sys {
            iommu: Amdvi::new(cfg).expect("valid AmdviConfig"),
            mem: Memory::default(),
            dram_latency: ns(DRAM_NS),
            evt_entries: 512,
            now: Tick::ZERO,
            seq: 0,
            events: BTreeMap::new(),
            next_token: 0,
            arrivals: BTreeMap::new(),
            cmd_tail: 0,
            coherent_boot: true,
            dones: Vec::new(),
            reads: Vec::new(),
            agent_writes: Vec::new(),
            reg_changes: Vec::new(),
        }
    }

    /// The current tick (the latest event run or call made).
    pub fn now(&self) -> Tick {
        self.now
    }

    fn schedule(&mut self, at: Tick, ev: Ev) {
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
        while let Some(o) = self.iommu.poll_output() {
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
                        Ev::ReadData {
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
                    self.schedule(at, Ev::Write(w));
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
                    assert!(
                        at >= self.now,
                        "RegisterChanged at {at} before now {}",
                        self.now
                    );
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
            Ev::Request { token, req } => self.iommu.request(t, token, &req),
            Ev::ReadData {
                tag,
                pa,
                len,
                snooped,
            } => {
                let mut buf = vec![0u8; len as usize];
                self.mem.read(pa, &mut buf, snooped);
                self.iommu
                    .memory_read_done(t, tag, &buf)
                    .expect("the agent knows its own read tag");
            }
            Ev::Write(w) => {
                let bytes = &w.value.to_le_bytes()[..w.len as usize];
                if w.snooped {
                    self.mem.store_flushed(w.pa, bytes);
                } else {
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
        self.schedule(at, Ev::Request { token, req });
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

    /// Host software writes a register at `t`; the agent's answer.
    pub fn try_reg_write(
        &mut self,
        t: Tick,
        off: u64,
        value: u64,
    ) -> Result<(), model_core::AgentError> {
        self.run_until(t);
        let r = self.iommu.register_write(t, off as u32, value);
        self.drain();
        r
    }

    /// Host software writes a register at `t`.
    pub fn reg_write(&mut self, t: Tick, off: u64, value: u64) {
        self.try_reg_write(t, off, value)
            .unwrap_or_else(|e| panic!("register write {off:#x} = {value:#x}: {e}"));
    }

    /// Host software reads a register at `t`.
    pub fn reg_read(&mut self, t: Tick, off: u64) -> u64 {
        self.run_until(t);
        let v = self
            .iommu
            .register_read(t, off as u32)
            .unwrap_or_else(|e| panic!("register read {off:#x}: {e}"));
        self.drain();
        v
    }

    /// The agent's cache-less answer from the CPU's coherent view of memory.
    pub fn reference(&self, req: &TranslationRequest) -> Result<Translation, u32> {
        let mem = &self.mem;
        self.iommu
            .reference_translate(req, &mut |pa, buf| mem.read_coherent(pa, buf))
    }

    /// The agent's cache-less answer from DRAM alone.
    pub fn reference_dram(&self, req: &TranslationRequest) -> Result<Translation, u32> {
        let mem = &self.mem;
        self.iommu
            .reference_translate(req, &mut |pa, buf| mem.read_dram(pa, buf))
    }

    /// The Event Log Base Address Register value boot writes.
    pub fn evt_log_register(&self) -> RingBase {
        RingBase::new(PhysAddr(EVT_BASE), self.evt_entries).expect("valid event log size")
    }

    /// Linux boot (module doc): device table, command buffer, event log, then Control.
    pub fn boot(&mut self, devtab: DevTableBase, coherent: bool) {
        let t = self.now;
        self.coherent_boot = coherent;
        self.reg_write(t, offset::DEV_TABLE_BASE, devtab.0);
        let cmd = RingBase::new(PhysAddr(CMD_BASE), CMD_ENTRIES).expect("valid command buffer");
        // Len 9 in bits 59:56 (L-AMDT MMIO_CMD_SIZE_512 = 9 << 56).
        assert_eq!(cmd.0, CMD_BASE | 9 << 56);
        self.reg_write(t, offset::CMD_BUF_BASE, cmd.0);
        self.reg_write(t, offset::CMD_HEAD, 0);
        self.reg_write(t, offset::CMD_TAIL, 0);
        self.reg_write(t, offset::EVT_LOG_BASE, self.evt_log_register().0);
        self.reg_write(t, offset::EVT_HEAD, 0);
        let mut c = control::IOMMU_EN | control::EVT_LOG_EN | control::CMD_BUF_EN;
        if coherent {
            c |= control::COHERENT;
        }
        self.reg_write(t, offset::CONTROL, c);
        self.cmd_tail = 0;
    }

    /// Writes raw 128-bit commands at the tail (plain CPU stores, as Linux
    /// `copy_cmd_to_buffer`; written through to DRAM as well when the unit was booted
    /// non-coherent, so its unsnooped fetches see them) and moves CMD_TAIL past them at `t`.
    pub fn cmd_submit_raw(&mut self, t: Tick, cmds: &[[u64; 2]]) {
        self.run_until(t);
        for [q0, q1] in cmds {
            let mut bytes = q0.to_le_bytes().to_vec();
            bytes.extend_from_slice(&q1.to_le_bytes());
            let pa = PhysAddr(CMD_BASE + self.cmd_tail);
            if self.coherent_boot {
                self.mem.store_cached(pa, &bytes);
            } else {
                self.mem.store_flushed(pa, &bytes);
            }
            self.cmd_tail = (self.cmd_tail + 16) % (u64::from(CMD_ENTRIES) * 16);
        }
        self.reg_write(t, offset::CMD_TAIL, self.cmd_tail);
    }

    /// The driver's view of the command tail goes back to 0 (after a command buffer reset).
    pub fn reset_cmd_tail(&mut self) {
        self.cmd_tail = 0;
    }

    /// [`Sys::cmd_submit_raw`] of encoded commands.
    pub fn cmd_submit(&mut self, t: Tick, cmds: &[Command]) {
        let raw: Vec<[u64; 2]> = cmds.iter().map(Command::encode).collect();
        self.cmd_submit_raw(t, &raw);
    }

    /// The COMPLETION_WAIT Linux appends (`build_completion_wait`): S = 1, store `data` at
    /// [`SEM_ADDR`]. The semaphore word is first set to 0 by the CPU.
    pub fn completion_wait(&mut self, data: u64) -> Command {
        self.mem
            .store_cached(PhysAddr(SEM_ADDR), &0u64.to_le_bytes());
        Command::CompletionWait {
            store: Some((PhysAddr(SEM_ADDR), data)),
            interrupt: false,
            flush_queue: false,
        }
    }

    /// The tick of the agent's latest write to [`SEM_ADDR`], if one was issued.
    pub fn sem_write_tick(&self) -> Option<Tick> {
        self.agent_writes
            .iter()
            .rev()
            .find(|w| w.pa == PhysAddr(SEM_ADDR))
            .map(|w| w.at)
    }

    /// The semaphore word as the CPU sees it.
    pub fn sem(&self) -> u64 {
        self.mem.u64_coherent(SEM_ADDR)
    }

    /// The event log entry in slot `n` as it lies in memory, decoded (None for an empty slot).
    pub fn event_slot(&self, n: u64) -> Option<AmdEvent> {
        let pa = EVT_BASE + 16 * n;
        AmdEvent::decode([self.mem.u64_coherent(pa), self.mem.u64_coherent(pa + 8)])
    }

    /// Every event in memory from slot 0 up to the first empty slot.
    pub fn events(&self) -> Vec<AmdEvent> {
        (0..u64::from(self.evt_entries))
            .map_while(|n| self.event_slot(n))
            .collect()
    }

    /// Walk-read count so far.
    pub fn walk_reads(&self) -> u64 {
        self.iommu.stats().walk_memory_reads
    }

    /// Hits and misses of a named cache (dte, pdc_l2 .. pdc_l6).
    pub fn cache(&self, name: &str) -> CacheCounts {
        self.iommu
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

/// A device table and one domain's I/O page tables, built driver-style.
#[derive(Debug, Clone)]
pub struct Tables {
    /// Table pages.
    pub alloc: TableAllocator,
    /// The device table (DeviceIDs 0..=[`MAX_DEVICE_ID`]).
    pub devtab: DeviceTable,
    /// The domain's I/O page tables.
    pub pt: IoPageTable,
    /// Writes not yet applied.
    pub out: Vec<MemWrite>,
    /// Every write already taken, applied (what the CPU wrote so far, for [`Tables::patch`]).
    seen: Memory,
}

impl Tables {
    /// An empty device table and a `levels`-deep domain.
    pub fn new(levels: u8) -> Tables {
        let mut alloc = TableAllocator::new(PhysAddr(TABLE_BASE), TABLE_REGION).unwrap();
        let devtab = DeviceTable::new(&mut alloc, MAX_DEVICE_ID).unwrap();
        let pt = IoPageTable::new(&mut alloc, levels).unwrap();
        Tables {
            alloc,
            devtab,
            pt,
            out: Vec::new(),
            seen: Memory::default(),
        }
    }

    /// The DTE Linux writes for a v1 paging domain (`set_dte_entry`): V, TV, Mode = levels,
    /// root, IR, IW, DomainID.
    pub fn fields(&self, domain_id: u16) -> DteFields {
        DteFields {
            v: true,
            tv: true,
            mode: self.pt.levels(),
            pt_root: self.pt.root(),
            ir: true,
            iw: true,
            domain_id,
            ..DteFields::default()
        }
    }

    /// Attaches `bdf` to this domain as `domain_id`.
    pub fn attach(&mut self, bdf: Bdf, domain_id: u16) {
        let f = self.fields(domain_id);
        self.set_dte(bdf, f);
    }

    /// Writes `bdf`'s DTE from fields.
    pub fn set_dte(&mut self, bdf: Bdf, f: DteFields) {
        self.set_dte_raw(bdf, DeviceTableEntry::new(f));
    }

    /// Writes `bdf`'s DTE.
    pub fn set_dte_raw(&mut self, bdf: Bdf, e: DeviceTableEntry) {
        self.devtab.set(bdf.raw(), e, &mut self.out).unwrap();
    }

    /// Maps `iova` to `pa` with a page of `bytes`.
    pub fn map(&mut self, iova: u64, pa: u64, bytes: u64, p: IoPerm) {
        self.pt
            .map(&mut self.alloc, iova, PhysAddr(pa), bytes, p, &mut self.out)
            .unwrap();
    }

    /// Rewrites the leaf of `iova` (unmap, then map: two stores to the same entry).
    pub fn remap(&mut self, iova: u64, pa: u64, bytes: u64, p: IoPerm) {
        self.pt.unmap(iova, bytes, &mut self.out).unwrap();
        self.map(iova, pa, bytes, p);
    }

    /// The address of the entry of the level-`level` table on `iova`'s path.
    pub fn entry(&self, iova: u64, level: u8) -> u64 {
        self.pt
            .entry_address(iova, level)
            .unwrap_or_else(|| panic!("no level-{level} table on {iova:#x}'s path"))
            .0
    }

    /// Overwrites the level-`level` entry on `iova`'s path with `f(old)` (a raw store; the
    /// builder's shadow is not told).
    pub fn patch(&mut self, iova: u64, level: u8, f: impl FnOnce(u64) -> u64) -> u64 {
        let pa = self.entry(iova, level);
        let new = f(self.memory().u64_coherent(pa));
        self.out.push(word(pa, new));
        new
    }

    /// The writes not yet taken, taken.
    pub fn take(&mut self) -> Vec<MemWrite> {
        let w = std::mem::take(&mut self.out);
        self.seen.write_flushed(&w);
        w
    }

    /// A fresh memory holding every write so far, taken or not (flushed); the writes not
    /// yet taken stay queued.
    pub fn memory(&self) -> Memory {
        let mut m = self.seen.clone();
        m.write_flushed(&self.out);
        m
    }

    /// The Device Table Base Address Register value.
    pub fn devtab_reg(&self) -> DevTableBase {
        self.devtab.register()
    }
}

/// A booted unit (coherent, Linux boot) whose memory holds every table write of `t`.
pub fn booted(cfg: AmdviConfig, t: &mut Tables) -> Sys {
    let mut sys = Sys::new(cfg);
    sys.mem.write_flushed(&t.take());
    sys.boot(t.devtab_reg(), true);
    sys
}

// ---------------------------------------------------------------------------------------
// Reference agreement
// ---------------------------------------------------------------------------------------

/// The walk environment a booted unit has: capabilities, device table, coherent reads.
pub fn env(cfg: &AmdviConfig, devtab: DevTableBase) -> WalkEnv {
    WalkEnv {
        caps: cfg.caps.clone(),
        dev_table: devtab.base(),
        dev_entries: devtab.entries(),
        coherent: true,
    }
}

/// What one request came to, three ways.
#[derive(Debug)]
pub struct Three {
    /// The agreed answer (PA or event code).
    pub result: Result<Translation, u32>,
    /// `walk::reference`'s outcome (page size, leaf bases).
    pub outcome: Outcome,
    /// The timed run's completion.
    pub done: Done,
    /// The timed unit after the request (event log, stats).
    pub sys: Sys,
}

/// The outcome of `r` three ways, which must agree: `walk::reference` directly over the
/// coherent view of `mem`, the agent's `reference_translate`, and the timed agent on a
/// freshly booted unit (cold caches) at 1000 ns.
pub fn three_ways(
    cfg: &AmdviConfig,
    mem: &Memory,
    devtab: DevTableBase,
    r: &TranslationRequest,
) -> Three {
    let e = env(cfg, devtab);
    let info = ReqInfo::of(r);
    let outcome = walk::reference(&e, info, &mut |pa, buf| mem.read_coherent(pa, buf));
    let direct = outcome
        .apply(&info)
        .map_err(|f| u32::from(f.event(&info).code().code()));
    let mut sys = Sys::new(cfg.clone());
    sys.mem = mem.clone();
    sys.boot(devtab, true);
    let via_agent = sys.reference(r);
    let done = sys.translate(at_ns(1000), *r);
    let timed = done.code();
    assert_eq!(
        direct, via_agent,
        "walk::reference vs reference_translate for {r:?}"
    );
    assert_eq!(
        direct, timed,
        "walk::reference vs the timed agent for {r:?}"
    );
    Three {
        result: direct,
        outcome,
        done,
        sys,
    }
}

/// The leaf `walk::reference` found: (page size, IOVA base, PA base, FC).
pub fn leaf(o: &Outcome) -> (u64, u64, u64, bool) {
    match o {
        Outcome::Leaf(l) => (l.size, l.iova_base, l.pa_base, l.fc),
        other => panic!("expected a leaf, got {other:?}"),
    }
}

/// The raw word of a leaf the builder wrote (its shadow).
pub fn shadow_leaf(t: &Tables, iova: u64) -> IoPte {
    t.pt.lookup(iova).expect("mapped").2
}
