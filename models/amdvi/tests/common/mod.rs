//! Test harness for the AMD-Vi model: a tiny deterministic system around one [`Amdvi`].
//!
//! * [`Memory`] (from `model_core::testkit`): DRAM plus a "CPU cache" overlay. Table updates
//!   are applied either flushed (to both, as after CLFLUSH) or cached (to the overlay only).
//! * [`Sys`]: a `model_core::testkit::Pump` around one [`Amdvi`] (it derefs to the pump:
//!   submit, run, translate, register access, the logs; reads answered after 80 ns), plus
//!   the AMD-Vi boot, command buffer and event log.
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
pub use model_core::testkit::*;
use model_core::{Bdf, PhysAddr, Tick, Translation, TranslationRequest};
use std::ops::{Deref, DerefMut};

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

/// The device most tests use: 03:00.0, DeviceID 0x0300.
pub fn dev0() -> Bdf {
    dev(3, 0, 0)
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
// The driven system
// ---------------------------------------------------------------------------------------

/// One AMD-Vi unit, its memory and an event list (derefs to the [`Pump`]).
#[derive(Debug)]
pub struct Sys {
    /// The pump around the unit under test (`agent`).
    pub pump: Pump<Amdvi>,
    /// Event log entries programmed at boot (a power of two, 256..=32768).
    pub evt_entries: u32,
    cmd_tail: u64,
    /// Whether boot set Control.Coherent (commands are then written without a flush).
    coherent_boot: bool,
}

impl Deref for Sys {
    type Target = Pump<Amdvi>;

    fn deref(&self) -> &Pump<Amdvi> {
        &self.pump
    }
}

impl DerefMut for Sys {
    fn deref_mut(&mut self) -> &mut Pump<Amdvi> {
        &mut self.pump
    }
}

impl Sys {
    /// A unit built from `cfg` with empty memory, at tick 0, not yet booted.
    pub fn new(cfg: AmdviConfig) -> Sys {
        Sys {
            pump: Pump::new(Amdvi::new(cfg).expect("valid AmdviConfig")),
            evt_entries: 512,
            cmd_tail: 0,
            coherent_boot: true,
        }
    }

    /// The Event Log Base Address Register value boot writes.
    pub fn evt_log_register(&self) -> RingBase {
        RingBase::new(PhysAddr(EVT_BASE), self.evt_entries).expect("valid event log size")
    }

    /// Linux boot (module doc): device table, command buffer, event log, then Control.
    pub fn boot(&mut self, devtab: DevTableBase, coherent: bool) {
        let t = self.now();
        self.coherent_boot = coherent;
        self.reg_write(t, offset::DEV_TABLE_BASE, devtab.0);
        let cmd = RingBase::new(PhysAddr(CMD_BASE), CMD_ENTRIES).expect("valid command buffer");
        // Len 9 in bits 59:56 (L-AMDT MMIO_CMD_SIZE_512 = 9 << 56).
        assert_eq!(cmd.0, CMD_BASE | 9 << 56);
        self.reg_write(t, offset::CMD_BUF_BASE, cmd.0);
        self.reg_write(t, offset::CMD_HEAD, 0);
        self.reg_write(t, offset::CMD_TAIL, 0);
        let evt = self.evt_log_register().0;
        self.reg_write(t, offset::EVT_LOG_BASE, evt);
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
        let tail = self.cmd_tail;
        self.reg_write(t, offset::CMD_TAIL, tail);
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
        self.last_write_at(PhysAddr(SEM_ADDR))
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
