//! Test harness for the VT-d model: a tiny deterministic system around one [`Vtd`].
//!
//! * [`Memory`] (from `model_core::testkit`): DRAM plus a "CPU cache" overlay. Table updates
//!   are applied either flushed (to both, as after CLFLUSH — what Linux
//!   `__iommu_flush_cache` does when ECAP.C = 0) or cached (to the overlay only).
//! * [`Sys`]: a `model_core::testkit::Pump` around one [`Vtd`] (it derefs to the pump:
//!   submit, run, translate, register access, the logs), plus the VT-d boot and queued
//!   invalidation.
//! * Boot follows the Linux intel-iommu driver: RTADDR, GCMD.SRTP, then (queued invalidation)
//!   IQA and GCMD.QIE, then GCMD.TE — each GCMD write carrying the full state the driver keeps
//!   in `iommu->gcmd` (SRTP is a one-shot command, not part of that state).
#![allow(dead_code)]

pub use model_core::testkit::*;
use model_core::{Bdf, PhysAddr, Tick, Translation, TranslationRequest};
use std::ops::{Deref, DerefMut};
use vtd::entry::{
    ContextEntry, ContextFields, PageSize, PasidEntry, PasidFields, Pgtt, ScalableContextEntry,
    ScalableContextFields, SlPerm, SlPte, TranslationType,
};
use vtd::qi::InvDescriptor;
use vtd::regs::{gcmd, offset, rtaddr, Capabilities};
use vtd::tables::{ContextTables, FlTables, MemWrite, SlTables, TableAllocator};
use vtd::walk::{self, Outcome, ReqInfo, WalkEnv};
use vtd::{Vtd, VtdConfig};

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
// The driven system
// ---------------------------------------------------------------------------------------

/// One VT-d unit, its memory and an event list (derefs to the [`Pump`]).
#[derive(Debug)]
pub struct Sys {
    /// The pump around the unit under test (`agent`).
    pub pump: Pump<Vtd>,
    qi_tail: u64,
}

impl Deref for Sys {
    type Target = Pump<Vtd>;

    fn deref(&self) -> &Pump<Vtd> {
        &self.pump
    }
}

impl DerefMut for Sys {
    fn deref_mut(&mut self) -> &mut Pump<Vtd> {
        &mut self.pump
    }
}

impl Sys {
    /// A unit built from `cfg` with empty memory, at tick 0, translation disabled.
    pub fn new(cfg: VtdConfig) -> Sys {
        Sys {
            pump: Pump::new(Vtd::new(cfg).expect("valid VtdConfig")),
            qi_tail: 0,
        }
    }

    /// A unit with these capabilities and default caches and timing.
    pub fn with_caps(caps: Capabilities) -> Sys {
        Sys::new(VtdConfig {
            caps,
            ..VtdConfig::default()
        })
    }

    /// Linux boot, legacy or scalable root table, with or without queued invalidation:
    /// RTADDR = root | TTM; GCMD = SRTP; [IQA = queue; GCMD = QIE]; GCMD = [QIE |] TE.
    pub fn boot(&mut self, root: PhysAddr, scalable: bool, qi: bool) {
        let t = self.now();
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
            let pa = PhysAddr(QUEUE_BASE + self.qi_tail);
            self.mem.store_cached(pa, &bytes);
            self.qi_tail = (self.qi_tail + 16) % 4096;
        }
        let tail = self.qi_tail;
        self.reg_write(t, offset::IQT, tail);
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
        self.first_write_at(PhysAddr(STATUS_ADDR))
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
