//! The translation walk as a resumable sequence of table reads (VT-d 4.1 §3.4–§3.8).
//!
//! A [`Walk`] never touches memory: each step names the next structure to read
//! ([`Step::Read`]) and is fed the bytes with [`Walk::feed`]. The timed IOMMU
//! ([`crate::Vtd`]) performs each read through the memory model and consults its caches
//! between steps; [`reference()`] drives the same steps straight from a memory closure with
//! no caches, which is what the corruption checker compares a DMA against. Both share
//! every decision, so they can only disagree through caching or stale memory.
//!
//! Faults are first named by what failed ([`WalkFault`]); [`WalkFault::reason`] turns that
//! into the legacy or scalable-mode fault reason code of §7.1.3 (Linux `dmar.c`
//! `dma_remap_fault_reasons` / `dma_remap_sm_fault_reasons`).

use crate::entry::{
    ContextEntry, FlPte, PageSize, PasidDirEntry, PasidEntry, Pgtt, RootEntry,
    ScalableContextEntry, ScalableRootEntry, SlPte, TranslationType, LEVEL_STRIDE,
};
use crate::regs::{Cap, Capabilities, Ecap};
use model_core::{AccessKind, Bdf, PhysAddr, TranslationRequest};

mod fault;
mod types;

pub use fault::WalkFault;
pub use types::{Context, ContextMode, Leaf, Outcome, PasidCtx, Setup, TableKind};

/// Bytes of a legacy root or context entry, and of a scalable-mode root entry (§9.1–§9.3).
const ENTRY16: u32 = 16;
/// Bytes of a scalable-mode context entry (§9.4).
const SM_CONTEXT_BYTES: u32 = 32;
/// Bytes of a PASID directory entry (§9.5) and of a paging entry (§9.7, §9.8).
const ENTRY8: u32 = 8;
/// Bytes of a PASID table entry (§9.6).
const PASID_ENTRY_BYTES: u32 = 64;
/// PASID table entries per PASID table: the low 6 bits of a PASID index the table (§3.4.3).
const PASID_TABLE_SHIFT: u32 = 6;
/// Scalable-mode context entries are 256 bits; devfn 0x00-0x7f use the lower table and
/// 0x80-0xff the upper one (§3.4.2; Linux `iommu_context_addr`).
const SM_DEVFN_SPLIT: u8 = 0x80;
/// Width of a first-level 4-level table walk's input address (IA-32e, 48 bits).
const FL4_WIDTH: u32 = 48;
/// Width of a first-level 5-level table walk's input address (57 bits).
const FL5_WIDTH: u32 = 57;

/// The IOMMU's fixed view of itself that every walk step reads.
#[derive(Debug, Clone)]
pub struct WalkEnv {
    /// The configured capabilities.
    pub caps: Capabilities,
    /// Encoded CAP.
    pub cap: Cap,
    /// Encoded ECAP.
    pub ecap: Ecap,
    /// RTADDR: the root table.
    pub root_table: PhysAddr,
    /// RTADDR.TTM/SMT: scalable-mode tables.
    pub scalable: bool,
}

impl WalkEnv {
    /// The environment of an IOMMU with these capabilities and root table.
    pub fn new(caps: &Capabilities, root_table: PhysAddr, scalable: bool) -> WalkEnv {
        WalkEnv {
            cap: caps.cap(),
            ecap: caps.ecap(),
            caps: caps.clone(),
            root_table,
            scalable,
        }
    }

    /// Root, context and PASID-structure reads snoop iff ECAP.C (§11.4.3: page-walk
    /// coherency; Linux `__iommu_flush_cache` clflushes table updates only when it is 0).
    fn context_reads_snooped(&self) -> bool {
        self.ecap.c()
    }

    fn haw(&self) -> u8 {
        self.caps.haw
    }
}

/// What a walk must do for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReqInfo {
    /// Requester.
    pub sid: Bdf,
    /// Input address.
    pub iova: u64,
    /// PASID of a request-with-PASID.
    pub pasid: Option<u32>,
    /// Write (else read).
    pub write: bool,
    /// PASID prefix Execute Requested.
    pub execute: bool,
    /// PASID prefix Privileged Mode Requested.
    pub privileged: bool,
    /// AT = Translated (an ATS-translated request).
    pub translated: bool,
}

impl ReqInfo {
    /// The walk's view of a request.
    pub fn of(req: &TranslationRequest) -> ReqInfo {
        ReqInfo {
            sid: req.requester,
            iova: req.iova.raw(),
            pasid: req.pasid,
            write: req.access == AccessKind::Write,
            execute: req.execute,
            privileged: req.privileged,
            translated: req.translated,
        }
    }
}

/// The next thing a walk needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Read `len` bytes at `pa` and [`Walk::feed`] them back.
    Read {
        /// First byte.
        pa: PhysAddr,
        /// Bytes.
        len: u32,
        /// Snooped or not.
        snooped: bool,
    },
    /// The context (and PASID entry) are known: look up the IOTLB and paging-structure
    /// caches, then [`Walk::begin_paging`].
    Setup(Setup),
    /// The walk is over.
    Done(Outcome),
}

/// A paging-structure entry a walk went through: what a paging-structure cache holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableStep {
    /// Format.
    pub kind: TableKind,
    /// Level of the entry (2..=5; level-1 entries are leaves).
    pub level: u8,
    /// Input address bits above this entry's coverage (iova >> (12 + 9·(level−1))).
    pub prefix: u64,
    /// The table the entry points to.
    pub next: PhysAddr,
    /// Rights accumulated down to and including this entry.
    pub rights: Rights,
}

/// Rights accumulated over a walk's levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rights {
    /// Read.
    pub read: bool,
    /// Write.
    pub write: bool,
    /// First level: user.
    pub user: bool,
    /// First level: execute.
    pub exec: bool,
}

impl Rights {
    const ALL: Rights = Rights {
        read: true,
        write: true,
        user: true,
        exec: true,
    };
}

/// Where a walk is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    Root,
    Context,
    PasidDir {
        ctx: Context,
        pasid: u32,
    },
    PasidEntry {
        ctx: Context,
        pasid: u32,
        /// The directory entry's FPD (it covers every PASID under it).
        dir_fpd: bool,
    },
    /// Reading a paging entry of `Paging::kind`; a second-level read may be a nested
    /// sub-walk that resumes a first-level walk.
    Paging(Paging, Option<Box<Pending>>),
    Over,
}

/// A paging walk in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Paging {
    setup: Setup,
    kind: TableKind,
    /// The address being translated by this (sub-)walk.
    input: u64,
    level: u8,
    table: PhysAddr,
    rights: Rights,
}

/// What a nested second-level sub-walk resumes when it ends (§3.8).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    /// The guest-physical address of a first-level entry: read the entry at its host
    /// physical address next.
    FlEntry { fl: Paging, entry_gpa: u64 },
    /// The first-level output address: finish with both levels' rights combined.
    FlOutput { leaf: Leaf },
}

/// One request's walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walk {
    req: ReqInfo,
    stage: Stage,
    /// The context the walk resolved (for the context cache).
    pub context: Option<Context>,
    /// The PASID entry the walk resolved (for the PASID cache), with its PASID.
    pub pasid_ctx: Option<(u32, PasidCtx)>,
    /// Paging-structure entries the walk read (for the paging-structure caches).
    pub tables: Vec<TableStep>,
    /// Memory reads issued.
    pub reads: u32,
}

impl Walk {
    /// A walk from the root table.
    pub fn new(env: &WalkEnv, req: ReqInfo) -> (Walk, Step) {
        let mut w = Walk {
            req,
            stage: Stage::Root,
            context: None,
            pasid_ctx: None,
            tables: Vec::new(),
            reads: 0,
        };
        let bus = u64::from(req.sid.raw() >> 8);
        let step = w.read(
            PhysAddr(env.root_table.raw() + bus * u64::from(ENTRY16)),
            ENTRY16,
            env.context_reads_snooped(),
        );
        (w, step)
    }

    /// A walk whose context came from the context cache.
    pub fn from_context(env: &WalkEnv, req: ReqInfo, ctx: Context) -> (Walk, Step) {
        let mut w = Walk {
            req,
            stage: Stage::Over,
            context: None,
            pasid_ctx: None,
            tables: Vec::new(),
            reads: 0,
        };
        let step = w.context_known(env, ctx);
        (w, step)
    }

    /// A walk whose context and PASID entry came from the caches.
    pub fn from_pasid(
        env: &WalkEnv,
        req: ReqInfo,
        ctx: Context,
        pasid: u32,
        p: PasidCtx,
    ) -> (Walk, Step) {
        let mut w = Walk {
            req,
            stage: Stage::Over,
            context: None,
            pasid_ctx: None,
            tables: Vec::new(),
            reads: 0,
        };
        let step = w.pasid_known(env, ctx, pasid, p);
        (w, step)
    }

    /// The request this walk serves.
    pub fn req(&self) -> &ReqInfo {
        &self.req
    }

    fn read(&mut self, pa: PhysAddr, len: u32, snooped: bool) -> Step {
        self.reads += 1;
        Step::Read { pa, len, snooped }
    }

    fn done(&mut self, o: Outcome) -> Step {
        self.stage = Stage::Over;
        Step::Done(o)
    }

    fn fault(&mut self, fault: WalkFault, fpd: bool) -> Step {
        let not_present = matches!(fault, WalkFault::NotPresent { .. });
        self.done(Outcome::Fault {
            fault,
            fpd,
            not_present,
        })
    }

    /// The bytes of the last [`Step::Read`].
    pub fn feed(&mut self, env: &WalkEnv, data: &[u8]) -> Step {
        match std::mem::replace(&mut self.stage, Stage::Over) {
            Stage::Root => self.root(env, data),
            Stage::Context => self.context_entry(env, data),
            Stage::PasidDir { ctx, pasid } => self.pasid_dir(env, ctx, pasid, data),
            Stage::PasidEntry {
                ctx,
                pasid,
                dir_fpd,
            } => self.pasid_entry(env, ctx, pasid, dir_fpd, data),
            Stage::Paging(p, pending) => self.paging(env, p, pending, data),
            Stage::Over => self.fault(WalkFault::ContextInvalid, false),
        }
    }

    fn root(&mut self, env: &WalkEnv, data: &[u8]) -> Step {
        let Some(b) = bytes16(data) else {
            return self.fault(WalkFault::RootNotPresent, false);
        };
        let devfn = (self.req.sid.raw() & 0xff) as u8;
        let (present, ctp, reserved) = if env.scalable {
            let e = ScalableRootEntry::from_le_bytes(&b);
            let upper = devfn >= SM_DEVFN_SPLIT;
            let (p, t) = if upper {
                (e.upper_present(), e.upper_ctp())
            } else {
                (e.lower_present(), e.lower_ctp())
            };
            (p, t, any(&e.reserved_bits(env.haw())))
        } else {
            let e = RootEntry::from_le_bytes(&b);
            (e.present(), e.ctp(), any(&e.reserved_bits(env.haw())))
        };
        if !present {
            return self.fault(WalkFault::RootNotPresent, false);
        }
        if reserved {
            return self.fault(WalkFault::RootReserved, false);
        }
        self.stage = Stage::Context;
        let (offset, len) = if env.scalable {
            (
                u64::from(devfn & (SM_DEVFN_SPLIT - 1)) * u64::from(SM_CONTEXT_BYTES),
                SM_CONTEXT_BYTES,
            )
        } else {
            (u64::from(devfn) * u64::from(ENTRY16), ENTRY16)
        };
        self.read(
            PhysAddr(ctp.raw() + offset),
            len,
            env.context_reads_snooped(),
        )
    }

    fn context_entry(&mut self, env: &WalkEnv, data: &[u8]) -> Step {
        let ctx = if env.scalable {
            let Some(b) = bytes32(data) else {
                return self.fault(WalkFault::ContextNotPresent, false);
            };
            let e = ScalableContextEntry::from_le_bytes(&b);
            if !e.present() {
                return self.fault(WalkFault::ContextNotPresent, false);
            }
            if any(&e.reserved_bits(env.haw())) {
                return self.fault(WalkFault::ContextReserved, e.fpd());
            }
            Context {
                did: 0,
                fpd: e.fpd(),
                mode: ContextMode::Scalable {
                    pasid_dir: e.pasid_dir_ptr(),
                    dir_entries: e.pasid_dir_entries(),
                    rid_pasid: e.rid_pasid(),
                    dte: e.dte(),
                    paside: e.paside(),
                },
            }
        } else {
            let Some(b) = bytes16(data) else {
                return self.fault(WalkFault::ContextNotPresent, false);
            };
            let e = ContextEntry::from_le_bytes(&b);
            if !e.present() {
                return self.fault(WalkFault::ContextNotPresent, false);
            }
            if any(&e.reserved_bits(env.haw())) {
                return self.fault(WalkFault::ContextReserved, e.fpd());
            }
            Context {
                did: e.did(),
                fpd: e.fpd(),
                mode: ContextMode::Legacy {
                    tt: e.tt(),
                    slptptr: e.slptptr(),
                    levels: e.levels(),
                },
            }
        };
        self.context = Some(ctx);
        self.context_known(env, ctx)
    }

    /// Checks a context and goes on to the PASID directory (scalable) or the paging walk.
    fn context_known(&mut self, env: &WalkEnv, ctx: Context) -> Step {
        match ctx.mode {
            ContextMode::Legacy {
                tt,
                slptptr,
                levels,
            } => {
                // §9.3: TT = 1 needs ECAP.DT, TT = 2 needs ECAP.PT, TT = 3 is reserved; AW
                // must be a SAGAW-supported width.
                let tt_ok = match tt {
                    TranslationType::UntranslatedOnly => true,
                    TranslationType::DeviceTlb => env.ecap.dt(),
                    TranslationType::PassThrough => env.ecap.pt(),
                    TranslationType::Reserved => false,
                };
                let aw_ok = tt == TranslationType::PassThrough || env.cap.supports_levels(levels);
                if !tt_ok || !aw_ok {
                    return self.fault(WalkFault::ContextInvalid, ctx.fpd);
                }
                // A request-with-PASID meets legacy tables: a unit that could use scalable
                // mode blocks it with reason 0x31 (QEMU returns VTD_FR_RTADDR_INV_TTM from its
                // PASID lookups when the root table is not scalable); a unit without SMTS
                // predates PASIDs and translates by requester only.
                if self.req.pasid.is_some() && env.ecap.smts() {
                    return self.fault(WalkFault::PasidWithLegacyTables, ctx.fpd);
                }
                // §3.9 / Table 7: translated requests pass untranslated only with TT = 1.
                if self.req.translated {
                    return if tt == TranslationType::DeviceTlb {
                        self.done(Outcome::PassThrough { did: ctx.did })
                    } else {
                        self.fault(WalkFault::TranslationBlocked, ctx.fpd)
                    };
                }
                if tt == TranslationType::PassThrough {
                    return self.done(Outcome::PassThrough { did: ctx.did });
                }
                Step::Setup(Setup {
                    did: ctx.did,
                    pasid_tag: None,
                    fpd: ctx.fpd,
                    kind: TableKind::Second,
                    root: slptptr,
                    levels,
                    walk_snooped: env.ecap.c(),
                    pgsnp: false,
                    nested: None,
                    nxe: false,
                    wpe: false,
                    sre: false,
                    scalable: false,
                })
            }
            ContextMode::Scalable {
                pasid_dir,
                dir_entries,
                rid_pasid: _,
                dte,
                paside,
            } => {
                if self.req.translated {
                    // §9.4: DTE = 1 lets ATS-translated requests through untranslated.
                    return if dte {
                        self.done(Outcome::PassThrough { did: ctx.did })
                    } else {
                        self.fault(WalkFault::TranslationBlocked, ctx.fpd)
                    };
                }
                let pasid = match self.req.pasid {
                    Some(p) if !paside => {
                        let _ = p;
                        return self.fault(WalkFault::PasidDisabled, ctx.fpd);
                    }
                    Some(p) => p,
                    // Requests without PASID use PASID 0 unless ECAP.RPS (not modelled) lets
                    // the context's RID_PASID choose another (§3.4.3).
                    None => 0,
                };
                let dir_index = pasid >> PASID_TABLE_SHIFT;
                if dir_index >= dir_entries {
                    return self.fault(WalkFault::PasidTooLarge, ctx.fpd);
                }
                self.stage = Stage::PasidDir { ctx, pasid };
                self.read(
                    PhysAddr(pasid_dir.raw() + u64::from(dir_index) * u64::from(ENTRY8)),
                    ENTRY8,
                    env.context_reads_snooped(),
                )
            }
        }
    }

    fn pasid_dir(&mut self, env: &WalkEnv, ctx: Context, pasid: u32, data: &[u8]) -> Step {
        let Some(b) = bytes8(data) else {
            return self.fault(WalkFault::PasidDirNotPresent, ctx.fpd);
        };
        let e = PasidDirEntry::from_le_bytes(&b);
        if !e.present() {
            return self.fault(WalkFault::PasidDirNotPresent, ctx.fpd || e.fpd());
        }
        if e.reserved_bits(env.haw()) != 0 {
            return self.fault(WalkFault::PasidDirReserved, ctx.fpd || e.fpd());
        }
        let index = u64::from(pasid & ((1 << PASID_TABLE_SHIFT) - 1));
        self.stage = Stage::PasidEntry {
            ctx,
            pasid,
            dir_fpd: e.fpd(),
        };
        self.read(
            PhysAddr(e.table_ptr().raw() + index * u64::from(PASID_ENTRY_BYTES)),
            PASID_ENTRY_BYTES,
            env.context_reads_snooped(),
        )
    }

    fn pasid_entry(
        &mut self,
        env: &WalkEnv,
        ctx: Context,
        pasid: u32,
        dir_fpd: bool,
        data: &[u8],
    ) -> Step {
        let Some(b) = bytes64(data) else {
            return self.fault(WalkFault::PasidEntryNotPresent, ctx.fpd);
        };
        let e = PasidEntry::from_le_bytes(&b);
        let fpd = ctx.fpd || dir_fpd || e.fpd();
        if !e.present() {
            return self.fault(WalkFault::PasidEntryNotPresent, fpd);
        }
        // PWSNP exists only when ECAP.SMPWC reports it (§9.6); otherwise it is reserved.
        if any(&e.reserved_bits(env.haw())) || (e.pwsnp() && !env.ecap.smpwc()) {
            return self.fault(WalkFault::PasidEntryReserved, fpd);
        }
        let p = PasidCtx {
            did: e.did(),
            fpd,
            pgtt: e.pgtt(),
            sl_root: e.slptptr(),
            sl_levels: e.aw() + 2,
            fl_root: e.flptr(),
            // FLPM: 0 = 4-level, 1 = 5-level; 2 and 3 are reserved (§9.6), which the
            // capability check below rejects as an invalid PASID entry (QEMU: 0x5B).
            fl_levels: match e.flpm() {
                0 => 4,
                1 => 5,
                _ => 0,
            },
            pgsnp: e.pgsnp(),
            pwsnp: e.pwsnp(),
            nxe: e.nxe(),
            wpe: e.wpe(),
            sre: e.sre(),
        };
        self.pasid_ctx = Some((pasid, p));
        self.pasid_known(env, ctx, pasid, p)
    }

    /// Checks a PASID entry against the capabilities and sets up its walk (§9.6).
    fn pasid_known(&mut self, env: &WalkEnv, ctx: Context, pasid: u32, p: PasidCtx) -> Step {
        let e = env.ecap;
        let sl_ok = env.cap.supports_levels(p.sl_levels);
        let fl_ok = p.fl_levels == 4 || (p.fl_levels == 5 && env.cap.fl5lp());
        let supported = match p.pgtt {
            Pgtt::FirstLevel => e.flts() && fl_ok,
            Pgtt::SecondLevel => e.slts() && sl_ok,
            Pgtt::Nested => e.nest() && sl_ok && fl_ok,
            Pgtt::PassThrough => e.pt(),
            Pgtt::Reserved(_) => false,
        };
        if !supported {
            return self.fault(WalkFault::PasidEntryInvalid, p.fpd);
        }
        if self.req.privileged && !p.sre && p.pgtt != Pgtt::SecondLevel {
            return self.fault(WalkFault::SupervisorDisabled, p.fpd);
        }
        let _ = ctx;
        let base = Setup {
            did: p.did,
            pasid_tag: None,
            fpd: p.fpd,
            kind: TableKind::Second,
            root: p.sl_root,
            levels: p.sl_levels,
            walk_snooped: p.pwsnp,
            pgsnp: p.pgsnp,
            nested: None,
            nxe: p.nxe,
            wpe: p.wpe,
            sre: p.sre,
            scalable: true,
        };
        match p.pgtt {
            Pgtt::PassThrough => self.done(Outcome::PassThrough { did: p.did }),
            Pgtt::SecondLevel => Step::Setup(base),
            Pgtt::FirstLevel => Step::Setup(Setup {
                pasid_tag: Some(pasid),
                kind: TableKind::First,
                root: p.fl_root,
                levels: p.fl_levels,
                ..base
            }),
            Pgtt::Nested | Pgtt::Reserved(_) => Step::Setup(Setup {
                pasid_tag: Some(pasid),
                kind: TableKind::First,
                root: p.fl_root,
                levels: p.fl_levels,
                nested: Some((p.sl_root, p.sl_levels)),
                ..base
            }),
        }
    }

    /// Starts the paging walk of `setup`, at the top or, after a paging-structure cache
    /// hit, below the cached entry `from`.
    pub fn begin_paging(&mut self, env: &WalkEnv, setup: Setup, from: Option<TableStep>) -> Step {
        let iova = self.req.iova;
        let width = match setup.kind {
            TableKind::Second => {
                u32::from(Capabilities::address_width(setup.levels).min(env.cap.mgaw()))
            }
            TableKind::First => {
                if setup.levels == 5 {
                    FL5_WIDTH
                } else {
                    FL4_WIDTH
                }
            }
        };
        match setup.kind {
            TableKind::Second if iova >> width != 0 => {
                return self.fault(WalkFault::AddressBeyondWidth, setup.fpd);
            }
            // IA-32e: bits 63:width-1 are a sign extension (§3.6: canonical addresses).
            TableKind::First if !canonical(iova, width) => {
                return self.fault(WalkFault::NonCanonical, setup.fpd);
            }
            _ => {}
        }
        let p = match from {
            Some(t) => Paging {
                setup,
                kind: setup.kind,
                input: iova,
                level: t.level - 1,
                table: t.next,
                rights: t.rights,
            },
            None => Paging {
                setup,
                kind: setup.kind,
                input: iova,
                level: setup.levels,
                table: setup.root,
                rights: Rights::ALL,
            },
        };
        self.read_entry(env, p)
    }

    /// Reads the entry `p` is at; a nested first-level entry's address is guest-physical
    /// and goes through a second-level sub-walk first (§3.8).
    fn read_entry(&mut self, env: &WalkEnv, p: Paging) -> Step {
        let entry = entry_address(&p);
        if let (TableKind::First, Some(_)) = (p.kind, p.setup.nested) {
            let pending = Pending::FlEntry {
                fl: p,
                entry_gpa: entry,
            };
            return self.nested_sub_walk(env, p, entry, pending);
        }
        self.read_at(p, None, entry)
    }

    /// Starts the second-level walk of guest-physical `gpa` for a nested first-level walk
    /// `fl`, after checking `gpa` against the second level's width (§3.8; fault 0x74).
    fn nested_sub_walk(&mut self, env: &WalkEnv, fl: Paging, gpa: u64, pending: Pending) -> Step {
        let Some((sl_root, sl_levels)) = fl.setup.nested else {
            return self.paging_fault(WalkFault::PasidEntryInvalid, &fl);
        };
        let width = Capabilities::address_width(sl_levels).min(env.cap.mgaw());
        if gpa >> width != 0 {
            return self.paging_fault(WalkFault::NestedAddressBeyondWidth, &fl);
        }
        let sub = Paging {
            kind: TableKind::Second,
            input: gpa,
            level: sl_levels,
            table: sl_root,
            rights: Rights::ALL,
            ..fl
        };
        let pa = entry_address(&sub);
        self.read_at(sub, Some(Box::new(pending)), pa)
    }

    fn read_at(&mut self, p: Paging, pending: Option<Box<Pending>>, pa: u64) -> Step {
        let snooped = p.setup.walk_snooped;
        self.stage = Stage::Paging(p, pending);
        self.read(PhysAddr(pa), ENTRY8, snooped)
    }

    fn paging_fault(&mut self, fault: WalkFault, p: &Paging) -> Step {
        self.fault(fault, p.setup.fpd)
    }

    fn paging(
        &mut self,
        env: &WalkEnv,
        mut p: Paging,
        pending: Option<Box<Pending>>,
        data: &[u8],
    ) -> Step {
        let level = p.level;
        let reserved_fault = WalkFault::PagingReserved {
            kind: p.kind,
            level,
        };
        let Some(b) = bytes8(data) else {
            return self.paging_fault(reserved_fault, &p);
        };
        let raw = u64::from_le_bytes(b);
        let (present, leaf, reserved, next, r) = match p.kind {
            TableKind::Second => {
                let e = SlPte(raw);
                let leaf = e.is_leaf(level);
                // SNP in a leaf is defined only with ECAP.SC, or in scalable mode (§9.8;
                // QEMU vtd_init clears bit 11 from the leaf masks in those cases only). TM
                // has been reserved since VT-d 3.2 (QEMU `stale_tm`).
                let snp_allowed = env.ecap.sc() || p.setup.scalable;
                let mask = SlPte::reserved_mask(level, leaf, env.haw(), snp_allowed, true);
                let r = Rights {
                    read: p.rights.read && e.read(),
                    write: p.rights.write && e.write(),
                    user: true,
                    exec: true,
                };
                (e.present(), leaf, raw & mask != 0, e.addr(), r)
            }
            TableKind::First => {
                let e = FlPte(raw);
                let leaf = e.is_leaf(level);
                let mask =
                    FlPte::reserved_mask(level, leaf, env.haw(), p.setup.nxe, env.cap.fl1gp());
                let r = Rights {
                    read: p.rights.read,
                    write: p.rights.write && e.writable(),
                    user: p.rights.user && e.user(),
                    exec: p.rights.exec && !(p.setup.nxe && e.xd()),
                };
                (e.present(), leaf, raw & mask != 0, e.addr(), r)
            }
        };
        if !present {
            let write = self.req.write;
            return self.paging_fault(
                WalkFault::NotPresent {
                    kind: p.kind,
                    level,
                    write,
                },
                &p,
            );
        }
        // Rights are accumulated down the walk and checked once, at the end (Leaf::apply), so
        // one walk serves every access to a page, as merged misses and an IOTLB entry with
        // its rights do. QEMU checks the request's rights at each level before reserved bits
        // (vtd_iova_to_sspte); the two differ only for an entry that both denies the access
        // and has a reserved bit set. A nested sub-walk reading a first-level entry needs
        // read, whatever the request.
        if let Some(Pending::FlEntry { fl, .. }) = pending.as_deref() {
            if p.kind == TableKind::Second && !SlPte(raw).read() {
                let top = fl.level == fl.setup.levels;
                return self.paging_fault(WalkFault::NestedFlEntryReadDenied { top }, &p);
            }
        }
        if reserved {
            return self.paging_fault(reserved_fault, &p);
        }
        // A second-level large leaf needs the CAP.SLLPS bit for its size (§9.8: PS is
        // otherwise reserved).
        if leaf && level > 1 && p.kind == TableKind::Second {
            let ok = match level {
                2 => env.cap.supports_2m(),
                3 => env.cap.supports_1g(),
                _ => false,
            };
            if !ok {
                return self.paging_fault(reserved_fault, &p);
            }
        }
        if !leaf {
            // Paging-structure caches hold the top-level walk's entries, not a nested
            // sub-walk's.
            if pending.is_none() || p.kind == TableKind::First {
                self.tables.push(TableStep {
                    kind: p.kind,
                    level,
                    prefix: p.input >> level_shift(level),
                    next,
                    rights: r,
                });
            }
            p.level -= 1;
            p.table = next;
            p.rights = r;
            return match pending {
                Some(pending) => {
                    let pa = entry_address(&p);
                    self.read_at(p, Some(pending), pa)
                }
                None => self.read_entry(env, p),
            };
        }
        let Some(size) = PageSize::from_level(level) else {
            return self.paging_fault(reserved_fault, &p);
        };
        let mask = size.bytes() - 1;
        let leaf_out = Leaf {
            did: p.setup.did,
            pasid_tag: p.setup.pasid_tag,
            size,
            iova_base: p.input & !mask,
            pa_base: next.raw() & !mask,
            read: r.read,
            write: r.write,
            user: r.user,
            exec: r.exec,
            supervisor_writes_any: !p.setup.wpe,
            forces_snoop: p.setup.pgsnp
                || (p.kind == TableKind::Second && env.ecap.sc() && SlPte(raw).snp()),
            kind: p.kind,
            scalable: p.setup.scalable,
            fpd: p.setup.fpd,
        };
        match pending.map(|b| *b) {
            None => match (p.kind, p.setup.nested) {
                (TableKind::First, Some(_)) => {
                    // Nested: the first-level output is guest-physical.
                    let gpa = leaf_out.pa_base | (self.req.iova & mask);
                    let pending = Pending::FlOutput { leaf: leaf_out };
                    self.nested_sub_walk(env, p, gpa, pending)
                }
                _ => self.done(Outcome::Leaf(leaf_out)),
            },
            Some(Pending::FlEntry { fl, entry_gpa }) => {
                // The first-level entry's guest-physical address is now host-physical.
                if !leaf_out.read {
                    let top = fl.level == fl.setup.levels;
                    return self.paging_fault(WalkFault::NestedFlEntryReadDenied { top }, &p);
                }
                let hpa = leaf_out.pa_base | (entry_gpa & mask);
                self.read_at(fl, None, hpa)
            }
            Some(Pending::FlOutput { leaf: fl_leaf }) => {
                let sl = leaf_out;
                let size = fl_leaf.size.min(sl.size);
                let smask = size.bytes() - 1;
                let hpa = sl.pa_base | (p.input & mask);
                self.done(Outcome::Leaf(Leaf {
                    size,
                    iova_base: self.req.iova & !smask,
                    pa_base: hpa & !smask,
                    read: fl_leaf.read && sl.read,
                    write: fl_leaf.write && sl.write,
                    supervisor_writes_any: fl_leaf.supervisor_writes_any && sl.write,
                    forces_snoop: fl_leaf.forces_snoop || sl.forces_snoop,
                    ..fl_leaf
                }))
            }
        }
    }
}

/// The address of the entry a paging walk is at.
fn entry_address(p: &Paging) -> u64 {
    let index = (p.input >> level_shift(p.level)) & 0x1ff;
    p.table.raw() + index * u64::from(ENTRY8)
}

/// Bits of input address below a level's entries: 12 + 9·(level − 1).
pub fn level_shift(level: u8) -> u32 {
    12 + LEVEL_STRIDE * u32::from(level.saturating_sub(1))
}

fn canonical(iova: u64, width: u32) -> bool {
    let top = (iova as i64) >> (width - 1);
    top == 0 || top == -1
}

fn any(words: &[u64]) -> bool {
    words.iter().any(|&w| w != 0)
}

fn bytes8(d: &[u8]) -> Option<[u8; 8]> {
    d.get(..8)?.try_into().ok()
}

fn bytes16(d: &[u8]) -> Option<[u8; 16]> {
    d.get(..16)?.try_into().ok()
}

fn bytes32(d: &[u8]) -> Option<[u8; 32]> {
    d.get(..32)?.try_into().ok()
}

fn bytes64(d: &[u8]) -> Option<[u8; 64]> {
    d.get(..64)?.try_into().ok()
}

/// The outcome of a walk over `mem` with no caches: the architectural answer.
pub fn reference(env: &WalkEnv, req: ReqInfo, mem: &mut dyn FnMut(PhysAddr, &mut [u8])) -> Outcome {
    let (mut walk, mut step) = Walk::new(env, req);
    // A walk reads at most root, context, PASID directory and entry, and 5 levels of
    // first-level entries each behind a 5-level second-level walk, plus the output walk.
    for _ in 0..64 {
        step = match step {
            Step::Read { pa, len, .. } => {
                let mut buf = vec![0u8; len as usize];
                mem(pa, &mut buf);
                walk.feed(env, &buf)
            }
            Step::Setup(s) => walk.begin_paging(env, s, None),
            Step::Done(o) => return o,
        };
    }
    Outcome::Fault {
        fault: WalkFault::ContextInvalid,
        fpd: false,
        not_present: false,
    }
}
