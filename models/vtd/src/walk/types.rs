//! What a walk resolves and produces: a device's context, a PASID entry, the set-up of a
//! paging walk, the page translation an IOTLB entry holds, and how a walk ends.

use super::{ReqInfo, WalkFault};
use crate::entry::{PageSize, Pgtt, TranslationType};
use model_core::{PhysAddr, Translation};

/// A device's context, as a context-cache entry holds it (§6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// Domain id (legacy; scalable-mode domains come from the PASID entry).
    pub did: u16,
    /// Fault Processing Disable.
    pub fpd: bool,
    /// Legacy or scalable contents.
    pub mode: ContextMode,
}

/// The mode-specific part of a [`Context`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextMode {
    /// §9.3.
    Legacy {
        /// Translation type.
        tt: TranslationType,
        /// Second-level table root.
        slptptr: PhysAddr,
        /// Second-level table levels (AW + 2).
        levels: u8,
    },
    /// §9.4.
    Scalable {
        /// PASID directory.
        pasid_dir: PhysAddr,
        /// PASID directory entries: 2^(PDTS+7).
        dir_entries: u32,
        /// PASID used for requests without PASID.
        rid_pasid: u32,
        /// Device-TLB enable: translated requests and translation requests allowed.
        dte: bool,
        /// PASID enable: requests-with-PASID allowed.
        paside: bool,
    },
}

/// A PASID table entry as a PASID-cache entry holds it (§6.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasidCtx {
    /// Domain id.
    pub did: u16,
    /// Fault Processing Disable.
    pub fpd: bool,
    /// PASID-granular translation type.
    pub pgtt: Pgtt,
    /// Second-level table root and levels.
    pub sl_root: PhysAddr,
    /// See `sl_root`.
    pub sl_levels: u8,
    /// First-level table root and levels.
    pub fl_root: PhysAddr,
    /// See `fl_root`.
    pub fl_levels: u8,
    /// Page Snoop: every access through this PASID is snooped.
    pub pgsnp: bool,
    /// Page-Walk Snoop: paging-structure reads are snooped.
    pub pwsnp: bool,
    /// No-execute enable for first-level XD.
    pub nxe: bool,
    /// Write-protect enable: supervisor writes honour first-level R/W.
    pub wpe: bool,
    /// Supervisor requests enable.
    pub sre: bool,
}

/// First- or second-level format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableKind {
    /// §9.8 second-level entries.
    Second,
    /// §9.7 first-level (IA-32e) entries.
    First,
}

/// Everything a paging walk needs once context (and PASID entry) are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    /// Domain id.
    pub did: u16,
    /// The PASID IOTLB entries are tagged with: `Some` for first-level and nested
    /// translations (PASID-granular), `None` for second-level only.
    pub pasid_tag: Option<u32>,
    /// Fault Processing Disable.
    pub fpd: bool,
    /// Table format of the walk.
    pub kind: TableKind,
    /// First table.
    pub root: PhysAddr,
    /// Levels.
    pub levels: u8,
    /// Paging-structure reads snoop.
    pub walk_snooped: bool,
    /// Every access is snooped (PASID PGSNP).
    pub pgsnp: bool,
    /// Nested: first-level table addresses and its output are guest-physical and go
    /// through this second-level table.
    pub nested: Option<(PhysAddr, u8)>,
    /// First-level XD honoured.
    pub nxe: bool,
    /// Supervisor writes honour first-level R/W.
    pub wpe: bool,
    /// Supervisor requests allowed.
    pub sre: bool,
    /// Scalable mode (fault codes).
    pub scalable: bool,
}

/// A page translation: what an IOTLB entry holds (§6.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leaf {
    /// Domain id.
    pub did: u16,
    /// PASID tag (first-level and nested).
    pub pasid_tag: Option<u32>,
    /// Page size.
    pub size: PageSize,
    /// Input page base.
    pub iova_base: u64,
    /// Output page base.
    pub pa_base: u64,
    /// Effective read right (AND over levels).
    pub read: bool,
    /// Effective write right.
    pub write: bool,
    /// First level: user pages (U/S = 1 at every level).
    pub user: bool,
    /// First level: execute allowed (XD clear, or NXE off).
    pub exec: bool,
    /// First level with WPE clear: supervisor writes ignore R/W.
    pub supervisor_writes_any: bool,
    /// The access is snooped whatever its No Snoop attribute (SNP or PGSNP).
    pub forces_snoop: bool,
    /// Table format that produced it (fault codes).
    pub kind: TableKind,
    /// Scalable mode (fault codes).
    pub scalable: bool,
    /// Fault Processing Disable of the context that produced it.
    pub fpd: bool,
}

impl Leaf {
    /// The translation for `req`, or the permission fault it takes (§3.6.1, §3.7.1).
    pub fn apply(&self, req: &ReqInfo) -> Result<Translation, WalkFault> {
        let first = self.kind == TableKind::First;
        if first && req.execute && !self.exec {
            return Err(WalkFault::ExecuteDenied);
        }
        if first && !req.privileged && !self.user {
            return Err(WalkFault::UserDenied);
        }
        let may_write = self.write || (first && req.privileged && self.supervisor_writes_any);
        if req.write && !may_write {
            return Err(WalkFault::WriteDenied { kind: self.kind });
        }
        if !req.write && !self.read {
            return Err(WalkFault::ReadDenied { kind: self.kind });
        }
        let offset = req.iova & (self.size.bytes() - 1);
        Ok(Translation {
            pa: PhysAddr(self.pa_base | offset),
            forces_snoop: self.forces_snoop,
        })
    }

    /// Does this page contain `iova`?
    pub fn covers(&self, iova: u64) -> bool {
        iova & !(self.size.bytes() - 1) == self.iova_base
    }
}

/// What a walk can end in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A page translation (cacheable).
    Leaf(Leaf),
    /// Pass-through: the address is the host physical address (TT = 2 or PGTT = 4, or a
    /// translated request allowed by TT = 1 / DTE).
    PassThrough {
        /// Domain id.
        did: u16,
    },
    /// A fault.
    Fault {
        /// What failed.
        fault: WalkFault,
        /// The context's Fault Processing Disable (faults before the context is read are
        /// always recorded).
        fpd: bool,
        /// The fault is a not-present leaf or table entry: with CAP.CM hardware may cache
        /// it (§6.1).
        not_present: bool,
    },
}
