//! Non-recoverable translation faults: the reason codes, the 128-bit fault-recording register
//! and primary fault logging (Intel VT-d Architecture Specification rev. 4.1, §7.2.1,
//! §11.4.9 FSTS, §11.4.14 FRCD, Appendix A).
//!
//! A fault is data here, not an error: the translation model hands a [`FaultInfo`] to the
//! [`FaultRecorder`], which answers what the hardware did with it ([`Logged`]).

use crate::regs::{fsts, Bits};
use model_core::Bdf;
use std::fmt;

/// Defines the fault-reason table once: the enum, its codes, short names, `ALL`, `Display`
/// and `TryFrom<u8>` (quinn's `transport_error.rs` pattern). Codes not listed are reserved.
macro_rules! fault_reasons {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $var:ident = $code:literal => $short:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $var, )+
        }

        impl $name {
            /// Every defined reason, in code order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// The FR field value.
            pub const fn code(self) -> u8 {
                match self { $($name::$var => $code),+ }
            }

            /// A short English name (snoopsim's wording, not the specification's).
            pub const fn name(self) -> &'static str {
                match self { $($name::$var => $short),+ }
            }

            /// The reason with FR value `code`, or `None` if that code is reserved.
            pub const fn from_code(code: u8) -> Option<$name> {
                match code { $($code => Some($name::$var),)+ _ => None }
            }
        }
    };
}

fault_reasons! {
    /// A VT-d fault reason (§7.1.3 / Appendix A; Linux dmar.c `dma_remap_fault_reasons`,
    /// `irq_remap_fault_reasons` and `dma_remap_sm_fault_reasons`; QEMU `VTDFaultReason`).
    /// Legacy codes 0x1-0xD, interrupt-remapping codes 0x20-0x26 and the scalable-mode codes
    /// 0x30-0x90 that Linux lists. Code 0 (reserved for software) is not a fault.
    pub enum FaultReason {
        /// 0x1: the root entry's P bit is clear.
        RootNotPresent = 0x01 => "root entry not present",
        /// 0x2: the context entry's P bit is clear.
        ContextNotPresent = 0x02 => "context entry not present",
        /// 0x3: the context entry is programmed inconsistently (e.g. AW not in SAGAW).
        ContextInvalid = 0x03 => "context entry invalid",
        /// 0x4: the input address is above 2^MGAW − 1 (or the table's width).
        AddressBeyondMgaw = 0x04 => "address beyond MGAW",
        /// 0x5: a write hit a page whose W bit is clear.
        WriteDenied = 0x05 => "write denied: a second-level entry has W = 0 (or is not present)",
        /// 0x6: a read hit a page whose R bit is clear.
        ReadDenied = 0x06 => "read denied: a second-level entry has R = 0 (or is not present)",
        /// 0x7: reading a second-level paging entry failed.
        PagingEntryAccess = 0x07 => "paging entry unreadable",
        /// 0x8: reading the root entry failed (bad root table address).
        RootTableAccess = 0x08 => "root table unreadable",
        /// 0x9: reading the context entry failed (bad context table pointer).
        ContextTableAccess = 0x09 => "context table unreadable",
        /// 0xA: a present root entry has a reserved bit set.
        RootReserved = 0x0a => "root entry reserved bit set",
        /// 0xB: a present context entry has a reserved bit set.
        ContextReserved = 0x0b => "context entry reserved bit set",
        /// 0xC: a present second-level paging entry has a reserved bit set (e.g. SNP without
        /// ECAP.SC, PS where no large page is supported).
        PagingEntryReserved = 0x0c => "paging entry reserved bit set",
        /// 0xD: the context entry's translation type blocks this kind of request.
        TranslationBlocked = 0x0d => "request blocked by translation type",
        /// 0x20: an interrupt request has a reserved field set.
        IrRequestReserved = 0x20 => "interrupt request reserved field set",
        /// 0x21: the interrupt index is beyond the remapping table.
        IrIndexBeyondTable = 0x21 => "interrupt index beyond table",
        /// 0x22: the IRTE's P bit is clear.
        IrEntryNotPresent = 0x22 => "interrupt remap entry not present",
        /// 0x23: reading the interrupt remapping table failed.
        IrTableAccess = 0x23 => "interrupt remap table unreadable",
        /// 0x24: a present IRTE has a reserved bit set.
        IrEntryReserved = 0x24 => "interrupt remap entry reserved bit set",
        /// 0x25: a compatibility-format interrupt was blocked.
        IrCompatibilityBlocked = 0x25 => "compatibility interrupt blocked",
        /// 0x26: source-id verification blocked an interrupt.
        IrSourceIdBlocked = 0x26 => "interrupt source-id check failed",
        /// 0x30: the root table address is invalid (scalable mode).
        SmRootTableAddressInvalid = 0x30 => "SM: root table address invalid",
        /// 0x31: a request with PASID met a legacy-mode (TTM = 0) root table.
        SmLegacyTableWithPasid = 0x31 => "SM: PASID request with legacy root table",
        /// 0x32: a page group request met a legacy-mode (TTM = 0) root table.
        SmLegacyTablePageRequest = 0x32 => "SM: page request with legacy root table",
        /// 0x38: reading the scalable-mode root entry failed.
        SmRootEntryAccess = 0x38 => "SM: root entry unreadable",
        /// 0x39: the scalable-mode root entry's present bit is clear.
        SmRootEntryNotPresent = 0x39 => "SM: root entry not present",
        /// 0x3A: the scalable-mode root entry has a reserved bit set.
        SmRootEntryReserved = 0x3a => "SM: root entry reserved bit set",
        /// 0x40: reading the scalable-mode context entry failed.
        SmContextEntryAccess = 0x40 => "SM: context entry unreadable",
        /// 0x41: the scalable-mode context entry's P bit is clear.
        SmContextEntryNotPresent = 0x41 => "SM: context entry not present",
        /// 0x42: the scalable-mode context entry has a reserved bit set.
        SmContextEntryReserved = 0x42 => "SM: context entry reserved bit set",
        /// 0x43: the scalable-mode context entry is programmed inconsistently.
        SmContextEntryInvalid = 0x43 => "SM: context entry invalid",
        /// 0x44: a translation request met a context entry with DTE clear.
        SmContextDteClear = 0x44 => "SM: device-TLB disabled in context entry",
        /// 0x45: a request with PASID met a context entry with PASIDE clear.
        SmContextPasidDisabled = 0x45 => "SM: PASID disabled in context entry",
        /// 0x46: the PASID is beyond the PASID directory the context entry sizes (PDTS).
        SmPasidBeyondDirectory = 0x46 => "SM: PASID beyond directory size",
        /// 0x47: a page request met a context entry with PRE clear.
        SmContextPreClear = 0x47 => "SM: page requests disabled in context entry",
        /// 0x48: the context entry's RID_PASID field is in error.
        SmRidPasidError = 0x48 => "SM: RID_PASID error",
        /// 0x50: reading the PASID directory entry failed.
        SmPasidDirAccess = 0x50 => "SM: PASID directory entry unreadable",
        /// 0x51: the PASID directory entry's P bit is clear.
        SmPasidDirNotPresent = 0x51 => "SM: PASID directory entry not present",
        /// 0x52: the PASID directory entry has a reserved bit set.
        SmPasidDirReserved = 0x52 => "SM: PASID directory entry reserved bit set",
        /// 0x58: reading the PASID table entry failed.
        SmPasidEntryAccess = 0x58 => "SM: PASID entry unreadable",
        /// 0x59: the PASID table entry's P bit is clear.
        SmPasidEntryNotPresent = 0x59 => "SM: PASID entry not present",
        /// 0x5A: the PASID table entry has a reserved bit set.
        SmPasidEntryReserved = 0x5a => "SM: PASID entry reserved bit set",
        /// 0x5B: the PASID table entry is programmed inconsistently (e.g. unsupported PGTT).
        SmPasidEntryInvalid = 0x5b => "SM: PASID entry invalid",
        /// 0x5C: an execute request met a PASID entry with ERE clear.
        SmPasidEreClear = 0x5c => "SM: execute requests disabled in PASID entry",
        /// 0x5D: a privileged request met a PASID entry with SRE clear.
        SmPasidSreClear = 0x5d => "SM: supervisor requests disabled in PASID entry",
        /// 0x70: reading a first-level paging entry failed.
        SmFlEntryAccess = 0x70 => "SM: first-level entry unreadable",
        /// 0x71: a first-level paging entry's P bit is clear.
        SmFlEntryNotPresent = 0x71 => "SM: first-level entry not present",
        /// 0x72: a first-level paging entry has a reserved bit set.
        SmFlEntryReserved = 0x72 => "SM: first-level entry reserved bit set",
        /// 0x73: reading the first-level PML4 entry failed (nested).
        SmNestedFlPml4Access = 0x73 => "SM: first-level PML4 entry unreadable",
        /// 0x74: a first-level entry's address is beyond MGAW (nested).
        SmNestedFlAddressBeyondMgaw = 0x74 => "SM: nested first-level address beyond MGAW",
        /// 0x75: the second level denies reading the first-level PML4 entry (nested).
        SmNestedFlPml4ReadDenied = 0x75 => "SM: nested first-level PML4 read denied",
        /// 0x76: the second level denies reading a first-level entry (nested).
        SmNestedFlEntryReadDenied = 0x76 => "SM: nested first-level entry read denied",
        /// 0x77: the second level denies the A/D write to a first-level entry (nested).
        SmNestedFlEntryWriteDenied = 0x77 => "SM: nested first-level entry write denied",
        /// 0x78: reading a second-level paging entry failed.
        SmSlEntryAccess = 0x78 => "SM: second-level entry unreadable",
        /// 0x79: a second-level entry denies the read or write.
        SmSlPermission = 0x79 => "SM: second-level permission denied",
        /// 0x7A: a second-level paging entry has a reserved bit set.
        SmSlEntryReserved = 0x7a => "SM: second-level entry reserved bit set",
        /// 0x7B: the second-level table pointer is invalid.
        SmSlPointerInvalid = 0x7b => "SM: second-level table pointer invalid",
        /// 0x7C: a second-level A/D update is needed while walks are set up not to snoop.
        SmSlAdUpdateNoSnoop = 0x7c => "SM: second-level A/D update without snoop",
        /// 0x80: the first-level input address is not canonical.
        SmFlNonCanonical = 0x80 => "SM: non-canonical first-level address",
        /// 0x81: a user-privilege request met a first-level entry with U/S clear.
        SmFlUserDenied = 0x81 => "SM: first-level user access denied",
        /// 0x82: an execute request (ER = 1) met a no-execute mapping.
        SmExecuteDenied = 0x82 => "SM: execute denied",
        /// 0x83: the address is beyond what the hardware can translate.
        SmAddressBeyondMax = 0x83 => "SM: address beyond hardware maximum",
        /// 0x84: a second-level entry's output address is beyond the maximum.
        SmSlAddressBeyondMax = 0x84 => "SM: second-level address beyond maximum",
        /// 0x85: a write or AtomicOp met a mapping without write permission.
        SmWriteDenied = 0x85 => "SM: write denied",
        /// 0x86: a read or AtomicOp met a mapping without read permission.
        SmReadDenied = 0x86 => "SM: read denied",
        /// 0x87: the translated address falls in the interrupt address range.
        SmInterruptAddress = 0x87 => "SM: address in interrupt range",
        /// 0x90: a first-level A/D update is needed while walks are set up not to snoop.
        SmFlAdUpdateNoSnoop = 0x90 => "SM: first-level A/D update without snoop",
    }
}

impl FaultReason {
    /// Scalable-mode reasons (0x30 and up).
    pub const fn is_scalable_mode(self) -> bool {
        self.code() >= 0x30
    }

    /// Interrupt-remapping reasons (0x20-0x2F): FI then holds an interrupt index, not a page.
    pub const fn is_interrupt_remapping(self) -> bool {
        matches!(self.code(), 0x20..=0x2f)
    }
}

impl fmt::Display for FaultReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#04x} {}", self.code(), self.name())
    }
}

impl TryFrom<u8> for FaultReason {
    type Error = u8;
    fn try_from(code: u8) -> Result<FaultReason, u8> {
        FaultReason::from_code(code).ok_or(code)
    }
}

/// FRCD field positions (§11.4.14). `lo` is bits 63:0 of the 128-bit register, `hi` bits
/// 127:64; positions below are within each half. Sources: Linux iommu.h `dma_frcd_*`,
/// `DMA_FRCD_F`; QEMU `VTD_FRCD_*`; the T2/EXE/PRIV positions as asterinas
/// `ostd/src/arch/x86/iommu/fault.rs` decodes them (rev. 3.0+ layout).
mod field {
    use super::Bits;
    /// FI, faulting page address, lo 63:12 (Linux `dma_frcd_page_addr`, QEMU `VTD_FRCD_FI`).
    pub const FI: Bits = Bits::new(12, 52);
    /// SID, source identifier, hi 15:0 = bits 79:64 (Linux `dma_frcd_source_id`).
    pub const SID: Bits = Bits::new(0, 16);
    /// T2, type bit 2, hi 28 = bit 92: with T1 it encodes page requests and AtomicOps.
    pub const T2: Bits = Bits::bit(28);
    /// PRIV, privileged mode requested, hi 29 = bit 93.
    pub const PRIV: Bits = Bits::bit(29);
    /// EXE, execute permission requested, hi 30 = bit 94.
    pub const EXE: Bits = Bits::bit(30);
    /// PP, PASID present, hi 31 = bit 95 (Linux `dma_frcd_pasid_present`, QEMU `VTD_FRCD_PP`).
    pub const PP: Bits = Bits::bit(31);
    /// FR, fault reason, hi 39:32 = bits 103:96 (Linux `dma_frcd_fault_reason`).
    pub const FR: Bits = Bits::new(32, 8);
    /// PV, PASID value, hi 59:40 = bits 123:104 (Linux `dma_frcd_pasid_value`).
    pub const PV: Bits = Bits::new(40, 20);
    /// AT, address type of the faulted request, hi 61:60 = bits 125:124.
    pub const AT: Bits = Bits::new(60, 2);
    /// T (T1), type, hi 62 = bit 126: 1 = read, 0 = write (Linux `dma_frcd_type`, printed
    /// `type ? "DMA Read" : "DMA Write"`; QEMU sets `VTD_FRCD_T` when `!is_write`).
    pub const T: Bits = Bits::bit(62);
    /// F, fault, hi 63 = bit 127, RW1C (Linux `DMA_FRCD_F`, QEMU `VTD_FRCD_F`).
    pub const F: Bits = Bits::bit(63);
}

/// One fault as the remapping hardware logs it (§11.4.14 Fault Recording Registers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultInfo {
    /// Why the request faulted.
    pub reason: FaultReason,
    /// The requester ID of the faulting request.
    pub source_id: Bdf,
    /// The faulting address; the record (FI) keeps bits 63:12 only.
    pub address: u64,
    /// The request's PASID (PP = 1, PV = the value), if it had one.
    pub pasid: Option<u32>,
    /// A write (T = 0) rather than a read (T = 1).
    pub write: bool,
    /// Execute permission was requested (EXE).
    pub execute: bool,
    /// Privileged mode was requested (PRIV).
    pub privileged: bool,
}

impl FaultInfo {
    /// The 128-bit FRCD as `(lo, hi)`, F = 1. AT is 0 (untranslated request; snoopsim does not
    /// record the AT of translated requests) and T2 is 0 (only reads and writes are modelled).
    /// A PASID wider than 20 bits is truncated to the PV field.
    pub fn frcd(&self) -> (u64, u64) {
        let lo = self.address & field::FI.mask();
        let mut hi = field::SID.put(0, self.source_id.raw().into());
        hi = field::FR.put(hi, self.reason.code().into());
        if let Some(p) = self.pasid {
            hi = field::PP.set(hi, true);
            hi = field::PV.put(hi, p.into());
        }
        hi = field::EXE.set(hi, self.execute);
        hi = field::PRIV.set(hi, self.privileged);
        hi = field::T.set(hi, !self.write);
        (lo, field::F.set(hi, true))
    }

    /// Decodes a FRCD. `None` if F is clear (nothing logged), FR is a reserved code, or T2 is
    /// set (a page request or AtomicOp, which [`FaultInfo`] cannot describe). AT and the
    /// reserved bits are ignored; `address` is the page address FI holds.
    pub fn from_frcd(lo: u64, hi: u64) -> Option<FaultInfo> {
        if !field::F.flag(hi) || field::T2.flag(hi) {
            return None;
        }
        let reason = FaultReason::from_code(field::FR.get(hi) as u8)?;
        Some(FaultInfo {
            reason,
            source_id: Bdf::from_raw(field::SID.get(hi) as u16),
            address: lo & field::FI.mask(),
            pasid: field::PP.flag(hi).then(|| field::PV.get(hi) as u32),
            write: !field::T.flag(hi),
            execute: field::EXE.flag(hi),
            privileged: field::PRIV.flag(hi),
        })
    }
}

/// The AT (address type) field of a FRCD's high half: 0 untranslated, 1 translation request,
/// 2 translated (§11.4.14). [`FaultInfo`] does not carry it; records written here hold 0.
pub fn frcd_address_type(hi: u64) -> u8 {
    field::AT.get(hi) as u8
}

/// What primary fault logging did with one fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logged {
    /// Written to fault-recording register `index` with F = 1.
    Recorded {
        /// The FRCD index.
        index: u16,
    },
    /// A pending record from the same source-id already exists (at `index`), and the
    /// hardware collapsed this fault into it: not recorded, no overflow (§11.4.14 F: "hardware
    /// may collapse additional faults from the same source-id"; QEMU `vtd_try_collapse_fault`).
    Collapsed {
        /// The pending record with the same source-id.
        index: u16,
    },
    /// Not recorded: the FRCD at the next index still holds F = 1 (FSTS.PFO is set now) or
    /// PFO was already set (QEMU `vtd_report_frcd_fault`). The fault is dropped.
    Overflow,
    /// Not recorded: the context or PASID entry has FPD (fault processing disable) set.
    Suppressed,
}

impl fmt::Display for Logged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Logged::Recorded { index } => write!(f, "recorded in FRCD {index}"),
            Logged::Collapsed { index } => {
                write!(f, "collapsed into pending FRCD {index} (same source-id)")
            }
            Logged::Overflow => f.write_str("overflow: PFO set, not recorded"),
            Logged::Suppressed => f.write_str("suppressed by FPD"),
        }
    }
}

/// Primary fault logging (§7.2.1): NFR recording registers used circularly from an internal
/// next index; FSTS.FRI names the register holding the first pending fault.
///
/// Order of checks for each fault, as QEMU's `vtd_report_frcd_fault` does them: FPD
/// suppresses; PFO set drops; a pending record with the same source-id collapses the fault
/// (optional, on by default, see [`FaultRecorder::collapsing`]); the register at the next index
/// still pending sets PFO and drops; otherwise the fault is written there, FRI is set to that
/// index if no fault was pending (PPF 0 → 1), and the next index advances modulo NFR.
#[derive(Debug, Clone)]
pub struct FaultRecorder {
    /// The registers' contents, `(lo, hi)`; F (hi bit 63) marks a pending fault.
    regs: Vec<(u64, u64)>,
    /// Where the next fault goes (QEMU `next_frcd_reg`; not architecturally visible).
    next: u16,
    /// FSTS.FRI: the register of the first pending fault when PPF last went 0 → 1.
    fri: u16,
    /// FSTS.PFO.
    pfo: bool,
    /// Whether faults from a source-id with a pending record are collapsed.
    collapse: bool,
    logged: u64,
    collapsed: u64,
    overflowed: u64,
    suppressed: u64,
}

impl FaultRecorder {
    /// `nfr` recording registers (CAP.NFR + 1), clamped to 1..=256, all clear.
    pub fn new(nfr: u16) -> Self {
        FaultRecorder {
            regs: vec![(0, 0); usize::from(nfr.clamp(1, 256))],
            next: 0,
            fri: 0,
            pfo: false,
            collapse: true,
            logged: 0,
            collapsed: 0,
            overflowed: 0,
            suppressed: 0,
        }
    }

    /// Whether to collapse faults from a source-id that already has a pending record (the
    /// specification allows it, QEMU does it; default on).
    pub fn collapsing(mut self, on: bool) -> Self {
        self.collapse = on;
        self
    }

    /// Number of recording registers.
    pub fn nfr(&self) -> u16 {
        self.regs.len() as u16
    }

    fn is_pending(&self, index: u16) -> bool {
        self.regs
            .get(usize::from(index))
            .is_some_and(|&(_, hi)| field::F.flag(hi))
    }

    fn any_pending(&self) -> bool {
        self.regs.iter().any(|&(_, hi)| field::F.flag(hi))
    }

    /// Logs one fault. `fault_processing_disabled` is the FPD bit of the context (or PASID)
    /// entry that governs the request.
    pub fn log(&mut self, f: FaultInfo, fault_processing_disabled: bool) -> Logged {
        if fault_processing_disabled {
            self.suppressed += 1;
            return Logged::Suppressed;
        }
        if self.pfo {
            self.overflowed += 1;
            return Logged::Overflow;
        }
        if self.collapse {
            let sid = u64::from(f.source_id.raw());
            let same = self
                .regs
                .iter()
                .position(|&(_, hi)| field::F.flag(hi) && field::SID.get(hi) == sid);
            if let Some(i) = same {
                self.collapsed += 1;
                return Logged::Collapsed { index: i as u16 };
            }
        }
        let index = self.next;
        if self.is_pending(index) {
            self.pfo = true;
            self.overflowed += 1;
            return Logged::Overflow;
        }
        let was_pending = self.any_pending();
        if let Some(slot) = self.regs.get_mut(usize::from(index)) {
            *slot = f.frcd();
        }
        if !was_pending {
            self.fri = index;
        }
        self.next = (index + 1) % self.nfr();
        self.logged += 1;
        Logged::Recorded { index }
    }

    /// FSTS as software reads its fault-logging part: PFO bit 0, PPF bit 1, FRI 15:8.
    pub fn fsts(&self) -> u32 {
        let mut v = (u32::from(self.fri) << fsts::FRI_SHIFT) & fsts::FRI_MASK;
        if self.pfo {
            v |= fsts::PFO;
        }
        if self.any_pending() {
            v |= fsts::PPF;
        }
        v
    }

    /// The register `index` as `(lo, hi)`: `(0, 0)` if never written, F clear once software
    /// cleared it; `None` if `index` ≥ NFR.
    pub fn frcd(&self, index: u16) -> Option<(u64, u64)> {
        self.regs.get(usize::from(index)).copied()
    }

    /// Software writes 1 to F of register `index` (RW1C): the register is free again. Other
    /// fields keep their values, as in hardware. Out-of-range indices are ignored.
    pub fn clear(&mut self, index: u16) {
        if let Some((_, hi)) = self.regs.get_mut(usize::from(index)) {
            *hi = field::F.set(*hi, false);
        }
    }

    /// Software writes 1 to FSTS.PFO (RW1C): recording resumes.
    pub fn clear_overflow(&mut self) {
        self.pfo = false;
    }

    /// Faults written to a register so far.
    pub fn logged(&self) -> u64 {
        self.logged
    }

    /// Faults collapsed into a pending record of the same source-id.
    pub fn collapsed(&self) -> u64 {
        self.collapsed
    }

    /// Faults dropped for overflow.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }

    /// Faults suppressed by FPD.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }

    /// Every pending record (F = 1), starting at FRI and wrapping, the order in which Linux
    /// `dmar_fault` services them (it walks from FRI while F is set).
    pub fn pending(&self) -> impl Iterator<Item = (u16, FaultInfo)> + '_ {
        let n = self.nfr();
        (0..n)
            .map(move |k| (self.fri + k) % n)
            .filter_map(move |i| {
                let (lo, hi) = self.frcd(i)?;
                FaultInfo::from_frcd(lo, hi).map(|f| (i, f))
            })
    }
}
