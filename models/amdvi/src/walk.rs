//! The AMD-Vi translation walk as resumable reads (AMD IOMMU Specification pub. 48882,
//! §2.2.2 device table, §2.2.3 I/O page tables).
//!
//! A [`Walk`] reads the requester's device table entry, then the I/O page table from the
//! DTE's Mode down, following each PDE's Next Level (which may skip levels) to a leaf:
//! Next Level 0 (the level's natural page) or 7 (a size-encoded page). Each step names the
//! next read ([`Step::Read`]); the timed unit ([`crate::Amdvi`]) performs it through the
//! memory model and consults its caches between steps, and [`reference()`] drives the same
//! steps from a memory closure with no caches for the corruption checker.

use crate::dte::{DeviceTableEntry, MODE_NONE};
use crate::event::{Event, EventCode, IoPageFaultFlags};
use crate::pte::{
    index, level_shift, natural_page_size, sized_leaf_legal, skipped_bits, IoPte, MAX_LEAF_LEVEL,
    NL_LEAF, NL_SIZED,
};
use crate::regs::{Capabilities, DTE_BYTES};
use model_core::{AccessKind, PhysAddr, Translation, TranslationRequest};

/// Bytes of a page-table entry.
const ENTRY_BYTES: u32 = 8;
/// Event code field, bits 63:60 of QW0 (§2.5).
const EVENT_CODE_SHIFT: u32 = 60;

/// What every walk step reads of the unit.
#[derive(Debug, Clone)]
pub struct WalkEnv {
    /// Capabilities.
    pub caps: Capabilities,
    /// Device table base.
    pub dev_table: PhysAddr,
    /// Device table entries.
    pub dev_entries: u64,
    /// Walk reads snoop (IVHD Coherent / Control.Coherent).
    pub coherent: bool,
}

/// What a walk must do for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReqInfo {
    /// DeviceID (the requester ID).
    pub device_id: u16,
    /// Input address.
    pub iova: u64,
    /// Write (else read).
    pub write: bool,
    /// AT = Translated.
    pub translated: bool,
    /// The request carried a PASID.
    pub pasid: Option<u32>,
}

impl ReqInfo {
    /// The walk's view of a request.
    pub fn of(req: &TranslationRequest) -> ReqInfo {
        ReqInfo {
            device_id: req.requester.raw(),
            iova: req.iova.raw(),
            write: req.access == AccessKind::Write,
            translated: req.translated,
            pasid: req.pasid,
        }
    }
}

/// A device table entry as the DTE cache holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Device {
    /// DomainID.
    pub domain: u16,
    /// What the entry says about translation.
    pub kind: DeviceKind,
    /// IR / IW.
    pub read: bool,
    /// See `read`.
    pub write: bool,
    /// DTE.I: ATS-translated requests allowed.
    pub ats: bool,
    /// Mode 0 with AttrV and Mode0FC (and the capability): untranslated accesses are
    /// forced coherent.
    pub mode0_fc: bool,
    /// DTE.SA: IO_PAGE_FAULT events are not logged (VirtualBox `fSuppressEvtLogging`,
    /// Linux `DEV_ENTRY_NO_PAGE_FAULT`).
    pub suppress_faults: bool,
}

/// What a DTE says about translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// V = 0: the entry holds nothing; requests pass untranslated (QEMU and VirtualBox
    /// forward everything for V = 0).
    NotTranslated,
    /// V = 1, TV = 0: no valid page-table root; translation requests fault (QEMU
    /// `amdvi_page_walk` ends the walk; VirtualBox raises IO_PAGE_FAULT, PR = 0). Linux
    /// writes such a DTE to block a detached device.
    Blocked,
    /// Mode 0: translation disabled, IR/IW still apply.
    Mode0,
    /// Mode 1..=6: a page table of that many levels.
    Paged {
        /// Root table.
        root: PhysAddr,
        /// Levels.
        levels: u8,
    },
}

/// A page translation: what an IOTLB entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leaf {
    /// DomainID.
    pub domain: u16,
    /// Page size in bytes.
    pub size: u64,
    /// Input page base.
    pub iova_base: u64,
    /// Output page base.
    pub pa_base: u64,
    /// Reads allowed by the tables (IR of the PDEs and the PTE). The IOTLB is tagged by
    /// DomainID only, so the requester's DTE rights are not part of the cached entry.
    pub read: bool,
    /// Writes allowed by the tables.
    pub write: bool,
    /// FC: force coherent.
    pub fc: bool,
    /// The requester's DTE IR / IW, filled in for each answer.
    pub dev_read: bool,
    /// See `dev_read`.
    pub dev_write: bool,
    /// The requester's DTE.SA.
    pub suppress_faults: bool,
}

impl Leaf {
    /// This leaf as seen by device `d` (its DTE rights and SA).
    pub fn for_device(self, d: &Device) -> Leaf {
        Leaf {
            dev_read: d.read,
            dev_write: d.write,
            suppress_faults: d.suppress_faults,
            ..self
        }
    }
}

/// A paging-structure entry a walk went through: what a page-directory cache holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableStep {
    /// Level of the PDE.
    pub level: u8,
    /// Input address bits from this level up: `iova >> level_shift(level)`.
    pub prefix: u64,
    /// The table it points to and that table's level.
    pub next: PhysAddr,
    /// See `next`.
    pub next_level: u8,
    /// Rights accumulated down to here.
    pub read: bool,
    /// See `read`.
    pub write: bool,
}

/// What failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkFault {
    /// DeviceID beyond the device table.
    DeviceIdBeyondTable,
    /// DTE reserved bits, Mode 7, or guest translation (GV) requested — snoopsim does not
    /// model guest (v2) tables, and says so rather than ignoring GV.
    IllegalDte {
        /// Reserved bits or an invalid Mode (RZ).
        reserved: bool,
        /// GV was set.
        guest: bool,
    },
    /// An ATS-translated request from a device whose DTE.I is clear.
    TranslatedNotAllowed,
    /// A page-table entry with PR = 0, or an address beyond the table.
    NotPresent {
        /// Domain.
        domain: u16,
    },
    /// Reserved bits set in a page-table entry (RZ).
    Reserved {
        /// Domain.
        domain: u16,
    },
    /// An invalid Next Level, an illegal size-encoded page, or non-zero address bits of
    /// skipped levels: PR = 1, RZ = 0 (VirtualBox iommuAmdIoPageFaultEventInit: "Pass false
    /// if … invalid level encoding").
    BadLevel {
        /// Domain.
        domain: u16,
    },
    /// IR / IW deny the access (PE).
    Permission {
        /// Domain.
        domain: u16,
    },
}

impl WalkFault {
    /// The event the IOMMU logs for `req` (§2.5).
    pub fn event(self, req: &ReqInfo) -> Event {
        let flags = |pr: bool, pe: bool, rz: bool| IoPageFaultFlags {
            gn: false,
            nx: false,
            us: false,
            i: false,
            pr,
            rw: req.write,
            pe,
            rz,
            tn: false,
        };
        let page_fault = |domain: u16, pr, pe, rz| Event::IoPageFault {
            device_id: req.device_id,
            domain_or_pasid: domain,
            pasid_hi: 0,
            flags: flags(pr, pe, rz),
            address: req.iova,
        };
        match self {
            WalkFault::DeviceIdBeyondTable => Event::IllegalDevTableEntry {
                device_id: req.device_id,
                pasid: 0,
                flags: flags(false, false, false),
                address: req.iova,
            },
            WalkFault::IllegalDte { reserved, guest } => Event::IllegalDevTableEntry {
                device_id: req.device_id,
                pasid: 0,
                flags: flags(false, false, reserved || guest),
                address: req.iova,
            },
            WalkFault::TranslatedNotAllowed => Event::Other {
                code: EventCode::InvalidDeviceRequest,
                raw: [
                    u64::from(req.device_id)
                        | (u64::from(EventCode::InvalidDeviceRequest.code()) << EVENT_CODE_SHIFT),
                    req.iova,
                ],
            },
            WalkFault::NotPresent { domain } => page_fault(domain, false, false, false),
            WalkFault::Reserved { domain } => page_fault(domain, true, false, true),
            WalkFault::BadLevel { domain } => page_fault(domain, true, false, false),
            WalkFault::Permission { domain } => page_fault(domain, true, true, false),
        }
    }

    /// Whether this is a not-present fault.
    pub fn not_present(self) -> bool {
        matches!(self, WalkFault::NotPresent { .. })
    }

    /// Whether the event is an IO_PAGE_FAULT (the events DTE.SA suppresses).
    pub fn is_page_fault(self) -> bool {
        matches!(
            self,
            WalkFault::NotPresent { .. }
                | WalkFault::Reserved { .. }
                | WalkFault::BadLevel { .. }
                | WalkFault::Permission { .. }
        )
    }
}

/// How a walk ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A page translation (cacheable).
    Leaf(Leaf),
    /// No translation: the address is the physical address, subject to these rights.
    Untranslated {
        /// Reads allowed.
        read: bool,
        /// Writes allowed.
        write: bool,
        /// Forced coherent (Mode0FC).
        fc: bool,
        /// Domain (for events).
        domain: u16,
    },
    /// A fault.
    Fault(WalkFault),
}

impl Outcome {
    /// The translation for `req`, or its fault: leaf rights are checked per request, so
    /// one walk can answer reads and writes of a page.
    pub fn apply(self, req: &ReqInfo) -> Result<Translation, WalkFault> {
        let (pa, read, write, fc, domain) = match self {
            Outcome::Fault(f) => return Err(f),
            Outcome::Untranslated {
                read,
                write,
                fc,
                domain,
            } => (req.iova, read, write, fc, domain),
            Outcome::Leaf(l) => (
                l.pa_base | (req.iova & (l.size - 1)),
                l.read && l.dev_read,
                l.write && l.dev_write,
                l.fc,
                l.domain,
            ),
        };
        if (req.write && !write) || (!req.write && !read) {
            return Err(WalkFault::Permission { domain });
        }
        Ok(Translation {
            pa: PhysAddr(pa),
            forces_snoop: fc,
        })
    }
}

/// The next thing a walk needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Read `len` bytes at `pa` and feed them back.
    Read {
        /// First byte.
        pa: PhysAddr,
        /// Bytes.
        len: u32,
        /// Snooped.
        snooped: bool,
    },
    /// The device is known and paged: look up the IOTLB and page-directory caches, then
    /// [`Walk::begin_paging`].
    Paged(Device),
    /// Done.
    Done(Outcome),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Dte,
    Paging {
        device: Device,
        level: u8,
        table: PhysAddr,
        read: bool,
        write: bool,
    },
    Over,
}

/// One request's walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walk {
    req: ReqInfo,
    stage: Stage,
    /// The DTE the walk read (for the DTE cache).
    pub device: Option<Device>,
    /// PDEs the walk read (for the page-directory cache).
    pub tables: Vec<TableStep>,
}

impl Walk {
    /// A walk from the device table.
    pub fn new(env: &WalkEnv, req: ReqInfo) -> (Walk, Step) {
        let mut w = Walk {
            req,
            stage: Stage::Dte,
            device: None,
            tables: Vec::new(),
        };
        if u64::from(req.device_id) >= env.dev_entries {
            let step = w.done(Outcome::Fault(WalkFault::DeviceIdBeyondTable));
            return (w, step);
        }
        let pa = PhysAddr(env.dev_table.raw() + u64::from(req.device_id) * DTE_BYTES);
        let step = Step::Read {
            pa,
            len: DTE_BYTES as u32,
            snooped: env.coherent,
        };
        (w, step)
    }

    /// A walk whose DTE came from the DTE cache.
    pub fn from_device(req: ReqInfo, device: Device) -> (Walk, Step) {
        let mut w = Walk {
            req,
            stage: Stage::Over,
            device: Some(device),
            tables: Vec::new(),
        };
        let step = w.device_known(device);
        (w, step)
    }

    /// The request.
    pub fn req(&self) -> &ReqInfo {
        &self.req
    }

    fn done(&mut self, o: Outcome) -> Step {
        self.stage = Stage::Over;
        Step::Done(o)
    }

    /// The bytes of the last read.
    pub fn feed(&mut self, env: &WalkEnv, data: &[u8]) -> Step {
        match std::mem::replace(&mut self.stage, Stage::Over) {
            Stage::Dte => self.dte(env, data),
            Stage::Paging {
                device,
                level,
                table,
                read,
                write,
            } => self.paging(env, device, level, table, read, write, data),
            Stage::Over => self.done(Outcome::Fault(WalkFault::DeviceIdBeyondTable)),
        }
    }

    fn dte(&mut self, env: &WalkEnv, data: &[u8]) -> Step {
        let Some(b) = data.get(..32).and_then(|d| <[u8; 32]>::try_from(d).ok()) else {
            return self.done(Outcome::Fault(WalkFault::IllegalDte {
                reserved: true,
                guest: false,
            }));
        };
        let e = DeviceTableEntry::from_le_bytes(&b);
        let untranslated = Device {
            domain: e.domain_id(),
            kind: DeviceKind::NotTranslated,
            read: true,
            write: true,
            ats: true,
            mode0_fc: false,
            suppress_faults: false,
        };
        // §2.2.2: V = 0 — the entry holds nothing; every request passes untranslated.
        if !e.v() {
            self.device = Some(untranslated);
            return self.device_known(untranslated);
        }
        let reserved =
            e.reserved_bits(env.caps.haw).iter().any(|&w| w != 0) || e.mode() > env.caps.levels;
        if reserved || e.guest_translation_requested() {
            return self.done(Outcome::Fault(WalkFault::IllegalDte {
                reserved,
                guest: e.guest_translation_requested(),
            }));
        }
        let kind = match (e.tv(), e.mode()) {
            (false, _) => DeviceKind::Blocked,
            (true, MODE_NONE) => DeviceKind::Mode0,
            (true, levels) => DeviceKind::Paged {
                root: e.pt_root(),
                levels,
            },
        };
        let device = Device {
            domain: e.domain_id(),
            kind,
            read: e.ir(),
            write: e.iw(),
            ats: e.i(),
            suppress_faults: e.sa(),
            // FreeBSD amd_reg.h: Mode0FC "Replace for PTE.FC" under AttrV, honoured only
            // where the unit reports the attribute fields.
            mode0_fc: env.caps.snoop_attr && e.attr_v() && e.mode0_fc(),
        };
        self.device = Some(device);
        self.device_known(device)
    }

    fn device_known(&mut self, d: Device) -> Step {
        if d.kind == DeviceKind::NotTranslated {
            return self.done(Outcome::Untranslated {
                read: true,
                write: true,
                fc: false,
                domain: d.domain,
            });
        }
        if self.req.translated {
            // ATS-translated requests pass untranslated when DTE.I allows the device an
            // IOTLB (§2.2.2 I); otherwise they are invalid device requests.
            return if d.ats {
                self.done(Outcome::Untranslated {
                    read: true,
                    write: true,
                    fc: false,
                    domain: d.domain,
                })
            } else {
                self.done(Outcome::Fault(WalkFault::TranslatedNotAllowed))
            };
        }
        match d.kind {
            DeviceKind::Blocked => {
                self.done(Outcome::Fault(WalkFault::NotPresent { domain: d.domain }))
            }
            DeviceKind::NotTranslated | DeviceKind::Mode0 => self.done(Outcome::Untranslated {
                read: d.read,
                write: d.write,
                fc: d.mode0_fc,
                domain: d.domain,
            }),
            DeviceKind::Paged { .. } => Step::Paged(d),
        }
    }

    /// Starts the page walk at the root, or below the page-directory cache hit `from`.
    pub fn begin_paging(&mut self, env: &WalkEnv, d: Device, from: Option<TableStep>) -> Step {
        let DeviceKind::Paged { root, levels } = d.kind else {
            return self.device_known(d);
        };
        // Address bits above what a `levels`-deep table translates must be zero (§2.2.3).
        let top = level_shift(levels) + 9;
        if top < 64 && self.req.iova >> top != 0 {
            return self.done(Outcome::Fault(WalkFault::NotPresent { domain: d.domain }));
        }
        let (level, table, read, write) = match from {
            // A cached PDE that skips levels answers for addresses whose skipped index bits
            // differ: they must still be zero.
            Some(t) if self.req.iova & skipped_bits(t.level, t.next_level) != 0 => {
                return self.done(Outcome::Fault(WalkFault::BadLevel { domain: d.domain }));
            }
            Some(t) => (t.next_level, t.next, t.read, t.write),
            None => (levels, root, true, true),
        };
        self.read_entry(env, d, level, table, read, write)
    }

    fn read_entry(
        &mut self,
        env: &WalkEnv,
        device: Device,
        level: u8,
        table: PhysAddr,
        read: bool,
        write: bool,
    ) -> Step {
        self.stage = Stage::Paging {
            device,
            level,
            table,
            read,
            write,
        };
        Step::Read {
            pa: PhysAddr(table.raw() + index(self.req.iova, level) * u64::from(ENTRY_BYTES)),
            len: ENTRY_BYTES,
            snooped: env.coherent,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn paging(
        &mut self,
        env: &WalkEnv,
        device: Device,
        level: u8,
        _table: PhysAddr,
        read: bool,
        write: bool,
        data: &[u8],
    ) -> Step {
        let domain = device.domain;
        let Some(b) = data.get(..8).and_then(|d| <[u8; 8]>::try_from(d).ok()) else {
            return self.done(Outcome::Fault(WalkFault::Reserved { domain }));
        };
        let e = IoPte(u64::from_le_bytes(b));
        if !e.pr() {
            return self.done(Outcome::Fault(WalkFault::NotPresent { domain }));
        }
        let nl = e.next_level();
        let is_pde = !matches!(nl, NL_LEAF | NL_SIZED);
        let rz = || Outcome::Fault(WalkFault::Reserved { domain });
        if e.0 & IoPte::reserved_mask(is_pde, env.caps.haw) != 0 {
            return self.done(rz());
        }
        let (read, write) = (read && e.ir(), write && e.iw());
        if is_pde {
            // A PDE points to a lower level; skipping levels needs the capability, and the
            // skipped levels' index bits of the address must be zero (VirtualBox
            // kIoPageFaultType_SkippedLevelIovaNotZero).
            let bad = || Outcome::Fault(WalkFault::BadLevel { domain });
            if nl >= level || (nl + 1 < level && !env.caps.skip_levels) {
                return self.done(bad());
            }
            if self.req.iova & skipped_bits(level, nl) != 0 {
                return self.done(bad());
            }
            self.tables.push(TableStep {
                level,
                prefix: self.req.iova >> level_shift(level),
                next: e.addr(),
                next_level: nl,
                read,
                write,
            });
            return self.read_entry(env, device, nl, e.addr(), read, write);
        }
        let bad = || Outcome::Fault(WalkFault::BadLevel { domain });
        let size = if nl == NL_SIZED {
            match e.encoded_page_size() {
                Some(s) if env.caps.large_pages && sized_leaf_legal(level, s) => s,
                _ => return self.done(bad()),
            }
        } else {
            match natural_page_size(level) {
                Some(s) if level <= MAX_LEAF_LEVEL => s,
                _ => return self.done(bad()),
            }
        };
        let Some(base) = e.page_base() else {
            return self.done(rz());
        };
        self.done(Outcome::Leaf(Leaf {
            domain,
            size,
            iova_base: self.req.iova & !(size - 1),
            pa_base: base.raw() & !(size - 1),
            read,
            write,
            fc: e.fc(),
            dev_read: device.read,
            dev_write: device.write,
            suppress_faults: device.suppress_faults,
        }))
    }
}

/// The outcome of a walk over `mem` with no caches: the architectural answer.
pub fn reference(env: &WalkEnv, req: ReqInfo, mem: &mut dyn FnMut(PhysAddr, &mut [u8])) -> Outcome {
    let (mut walk, mut step) = Walk::new(env, req);
    // A DTE and at most six levels.
    for _ in 0..16 {
        step = match step {
            Step::Read { pa, len, .. } => {
                let mut buf = vec![0u8; len as usize];
                mem(pa, &mut buf);
                walk.feed(env, &buf)
            }
            Step::Paged(d) => walk.begin_paging(env, d, None),
            Step::Done(o) => return o,
        };
    }
    Outcome::Fault(WalkFault::IllegalDte {
        reserved: true,
        guest: false,
    })
}
