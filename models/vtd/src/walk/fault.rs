//! Why a walk failed, by what failed, and the fault reason code each mode gives it
//! (VT-d §7.1.3; Linux `dmar.c` `dma_remap_fault_reasons` / `dma_remap_sm_fault_reasons`).

use super::TableKind;
use crate::fault::FaultReason;

/// What failed, independent of how the mode encodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkFault {
    /// Root entry P = 0.
    RootNotPresent,
    /// Root entry reserved bits set.
    RootReserved,
    /// Context entry P = 0.
    ContextNotPresent,
    /// Context entry reserved bits set.
    ContextReserved,
    /// Context entry programmed with values the hardware does not support.
    ContextInvalid,
    /// Input address beyond what the tables translate (MGAW / AGAW).
    AddressBeyondWidth,
    /// Nested: a guest-physical address (of a first-level entry, or the first-level
    /// output) beyond the second-level tables' width.
    NestedAddressBeyondWidth,
    /// Nested: the second level denies reading a first-level entry (`top`: the first-level
    /// root entry, FL-PML4/PML5).
    NestedFlEntryReadDenied {
        /// The entry is in the first-level root table.
        top: bool,
    },
    /// A translated or translation request the context does not allow.
    TranslationBlocked,
    /// Request-with-PASID while the context has PASIDE = 0.
    PasidDisabled,
    /// Request-with-PASID on a scalable-mode-capable unit that software set up with legacy
    /// tables (RTADDR.TTM = 00b).
    PasidWithLegacyTables,
    /// PASID beyond the PASID directory.
    PasidTooLarge,
    /// PASID directory entry P = 0.
    PasidDirNotPresent,
    /// PASID directory entry reserved bits set.
    PasidDirReserved,
    /// PASID table entry P = 0.
    PasidEntryNotPresent,
    /// PASID table entry reserved bits set.
    PasidEntryReserved,
    /// PASID table entry with a PGTT or widths the hardware does not support.
    PasidEntryInvalid,
    /// Supervisor request while the PASID entry has SRE = 0.
    SupervisorDisabled,
    /// A paging entry is not present (second level: R = W = 0; first level: P = 0).
    NotPresent {
        /// Format.
        kind: TableKind,
        /// Level of the entry (1 = PTE).
        level: u8,
        /// The request was a write.
        write: bool,
    },
    /// A paging entry has reserved bits set.
    PagingReserved {
        /// Format.
        kind: TableKind,
        /// Level.
        level: u8,
    },
    /// Write to a page without write rights.
    WriteDenied {
        /// Format.
        kind: TableKind,
    },
    /// Read of a page without read rights.
    ReadDenied {
        /// Format.
        kind: TableKind,
    },
    /// First-level: non-canonical input address.
    NonCanonical,
    /// First-level: user request to a supervisor page.
    UserDenied,
    /// First-level: execute request to an XD page.
    ExecuteDenied,
}

impl WalkFault {
    /// The architectural fault reason (§7.1.3), by table mode.
    pub fn reason(self, scalable: bool) -> FaultReason {
        use FaultReason as R;
        use WalkFault as W;
        if self == W::PasidWithLegacyTables {
            // §7.1.3 0x31 "TTM 0 for request with PASID", in either mode.
            return R::SmLegacyTableWithPasid;
        }
        if !scalable {
            return match self {
                W::RootNotPresent => R::RootNotPresent,
                W::RootReserved => R::RootReserved,
                W::ContextNotPresent => R::ContextNotPresent,
                W::ContextReserved => R::ContextReserved,
                W::ContextInvalid
                | W::PasidDisabled
                | W::PasidWithLegacyTables
                | W::PasidTooLarge
                | W::PasidDirNotPresent
                | W::PasidDirReserved
                | W::PasidEntryNotPresent
                | W::PasidEntryReserved
                | W::PasidEntryInvalid
                | W::SupervisorDisabled => R::ContextInvalid,
                W::AddressBeyondWidth | W::NonCanonical | W::NestedAddressBeyondWidth => {
                    R::AddressBeyondMgaw
                }
                W::NestedFlEntryReadDenied { .. } => R::ReadDenied,
                W::TranslationBlocked => R::TranslationBlocked,
                W::NotPresent { write: true, .. } | W::WriteDenied { .. } => R::WriteDenied,
                W::NotPresent { write: false, .. }
                | W::ReadDenied { .. }
                | W::UserDenied
                | W::ExecuteDenied => R::ReadDenied,
                W::PagingReserved { .. } => R::PagingEntryReserved,
            };
        }
        match self {
            W::RootNotPresent => R::SmRootEntryNotPresent,
            W::RootReserved => R::SmRootEntryReserved,
            W::ContextNotPresent => R::SmContextEntryNotPresent,
            W::ContextReserved => R::SmContextEntryReserved,
            W::ContextInvalid => R::SmContextEntryInvalid,
            W::TranslationBlocked => R::SmContextDteClear,
            W::PasidDisabled => R::SmContextPasidDisabled,
            W::PasidWithLegacyTables => R::SmLegacyTableWithPasid,
            W::PasidTooLarge => R::SmPasidBeyondDirectory,
            W::PasidDirNotPresent => R::SmPasidDirNotPresent,
            W::PasidDirReserved => R::SmPasidDirReserved,
            W::PasidEntryNotPresent => R::SmPasidEntryNotPresent,
            W::PasidEntryReserved => R::SmPasidEntryReserved,
            W::PasidEntryInvalid => R::SmPasidEntryInvalid,
            W::SupervisorDisabled => R::SmPasidSreClear,
            // 0x83 "address beyond the DMA hardware max" is about the input address; 0x84
            // names a second-level entry's address (Linux dma_remap_sm_fault_reasons).
            W::AddressBeyondWidth => R::SmAddressBeyondMax,
            W::NestedAddressBeyondWidth => R::SmNestedFlAddressBeyondMgaw,
            W::NestedFlEntryReadDenied { top: true } => R::SmNestedFlPml4ReadDenied,
            W::NestedFlEntryReadDenied { top: false } => R::SmNestedFlEntryReadDenied,
            W::NonCanonical => R::SmFlNonCanonical,
            W::UserDenied => R::SmFlUserDenied,
            W::ExecuteDenied => R::SmExecuteDenied,
            W::NotPresent {
                kind: TableKind::Second,
                ..
            }
            | W::WriteDenied {
                kind: TableKind::Second,
            }
            | W::ReadDenied {
                kind: TableKind::Second,
            } => R::SmSlPermission,
            W::PagingReserved {
                kind: TableKind::Second,
                ..
            } => R::SmSlEntryReserved,
            W::NotPresent {
                kind: TableKind::First,
                ..
            } => R::SmFlEntryNotPresent,
            W::PagingReserved {
                kind: TableKind::First,
                ..
            } => R::SmFlEntryReserved,
            W::WriteDenied {
                kind: TableKind::First,
            } => R::SmWriteDenied,
            W::ReadDenied {
                kind: TableKind::First,
            } => R::SmReadDenied,
        }
    }
}
