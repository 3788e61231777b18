//! The IOMMU's MMIO register file: offsets, Control and Status bits, the base-address
//! registers of the device table, command buffer and event log, the Extended Feature
//! Register, and the capabilities a scenario configures (AMD I/O Virtualization Technology
//! (IOMMU) Specification, pub. 48882 rev. 3.x, §3.4 "IOMMU MMIO Registers").
//!
//! Two layers, as for every format in snoopsim: raw 64-bit views ([`DevTableBase`],
//! [`RingBase`], [`ExtFeatures`]) with one accessor per field, and [`Capabilities`], what a
//! scenario writes, in named fields. Every bit position is a named mask in this file with the
//! public code that confirms it: Linux `drivers/iommu/amd/amd_iommu_types.h` (L-AMDT),
//! `init.c` (L-AMDI), QEMU `hw/i386/amd_iommu.h` (Q-AMD), VirtualBox
//! `include/VBox/iommu-amd.h` (VBOX, "in accordance with the AMD spec") and FreeBSD
//! `sys/x86/iommu/amd_reg.h` (F-AMD).

use model_core::PhysAddr;
use std::fmt;

/// Field helpers shared by every format module of this crate: in-place masks, not shifts.
pub mod bits {
    /// The value of the field `mask` in `word`, shifted down to bit 0 (0 for an empty mask).
    pub const fn get(word: u64, mask: u64) -> u64 {
        match (word & mask).checked_shr(mask.trailing_zeros()) {
            Some(v) => v,
            None => 0,
        }
    }

    /// `value` placed in the field `mask`; bits beyond the field are dropped.
    pub const fn put(mask: u64, value: u64) -> u64 {
        match value.checked_shl(mask.trailing_zeros()) {
            Some(v) => v & mask,
            None => 0,
        }
    }

    /// `mask` if `on`, else 0.
    pub const fn flag(mask: u64, on: bool) -> u64 {
        if on {
            mask
        } else {
            0
        }
    }

    /// The address bits below `haw` (`(1 << haw) - 1`, all ones from 64 up).
    pub const fn haw_mask(haw: u8) -> u64 {
        if haw >= 64 {
            u64::MAX
        } else {
            (1u64 << haw) - 1
        }
    }
}

use bits::{get, put};

/// Widest system physical address any AMD-Vi structure holds: address fields end at bit 51
/// (§2.2.2.1, §2.2.3; L-AMDT `IOMMU_OUT_ADDR_BIT_SIZE` 52, `PM_ADDR_MASK`).
pub const MAX_HAW: u8 = 52;
/// Bytes per 4 KiB page, the unit of every base address and of the device-table Size field
/// (Q-AMD `AMDVI_MMIO_DEVTAB_SIZE_UNIT` 4096).
pub const PAGE_BYTES: u64 = 4096;
/// Bytes per device table entry (§2.2.2.1; L-AMDT `DEV_TABLE_ENTRY_SIZE` 32).
pub const DTE_BYTES: u64 = 32;
/// Bytes per command buffer entry (§2.4; Q-AMD `AMDVI_COMMAND_SIZE` 16).
pub const COMMAND_BYTES: u64 = 16;
/// Bytes per event log entry (§2.5; L-AMDT `EVENT_ENTRY_SIZE` 0x10).
pub const EVENT_BYTES: u64 = 16;
/// Smallest ring (command buffer, event log): Len = 8, 256 entries, 4 KiB (§3.4, MMIO
/// 0008h/0010h ComLen/EventLen; F-AMD `AMDIOMMU_EVNTLOG_MIN` 256; OSDev table "0-7 reserved").
pub const RING_MIN_ENTRIES: u32 = 256;
/// Largest ring: Len = 15, 32768 entries, 512 KiB (F-AMD `AMDIOMMU_EVNTLOG_MAX` 32768,
/// `AMDIOMMU_CMDBUF_MAX` 512 KiB).
pub const RING_MAX_ENTRIES: u32 = 32768;
/// Device IDs per PCI segment, the largest device table (§2.2.2; L-AMDT
/// `MAX_DEV_TABLE_ENTRIES` 0xffff is the last DeviceID).
pub const MAX_DEVICE_IDS: u32 = 65536;
/// Domain IDs the 16-bit DTE DomainID field can name (L-AMDT `MAX_DOMAIN_ID` 65536).
pub const MAX_DOMAINS: u32 = 65536;

/// Register offsets from the IOMMU's MMIO base (§3.4; L-AMDT `MMIO_*_OFFSET`, Q-AMD
/// `AMDVI_MMIO_*`).
pub mod offset {
    /// Device Table Base Address Register, MMIO 0000h (L-AMDT `MMIO_DEV_TABLE_OFFSET`).
    pub const DEV_TABLE_BASE: u64 = 0x0000;
    /// Command Buffer Base Address Register, MMIO 0008h (L-AMDT `MMIO_CMD_BUF_OFFSET`).
    pub const CMD_BUF_BASE: u64 = 0x0008;
    /// Event Log Base Address Register, MMIO 0010h (L-AMDT `MMIO_EVT_BUF_OFFSET`).
    pub const EVT_LOG_BASE: u64 = 0x0010;
    /// IOMMU Control Register, MMIO 0018h (L-AMDT `MMIO_CONTROL_OFFSET`).
    pub const CONTROL: u64 = 0x0018;
    /// IOMMU Exclusion Base Register, MMIO 0020h (L-AMDT `MMIO_EXCL_BASE_OFFSET`).
    pub const EXCL_BASE: u64 = 0x0020;
    /// IOMMU Exclusion Range Limit Register, MMIO 0028h (L-AMDT `MMIO_EXCL_LIMIT_OFFSET`).
    pub const EXCL_LIMIT: u64 = 0x0028;
    /// IOMMU Extended Feature Register, MMIO 0030h (L-AMDT `MMIO_EXT_FEATURES`).
    pub const EXT_FEATURE: u64 = 0x0030;
    /// PPR Log Base Address Register, MMIO 0038h (L-AMDT `MMIO_PPR_LOG_OFFSET`); not modelled.
    pub const PPR_LOG_BASE: u64 = 0x0038;
    /// Command Buffer Head Pointer Register, MMIO 2000h (L-AMDT `MMIO_CMD_HEAD_OFFSET`).
    pub const CMD_HEAD: u64 = 0x2000;
    /// Command Buffer Tail Pointer Register, MMIO 2008h (L-AMDT `MMIO_CMD_TAIL_OFFSET`).
    pub const CMD_TAIL: u64 = 0x2008;
    /// Event Log Head Pointer Register, MMIO 2010h (L-AMDT `MMIO_EVT_HEAD_OFFSET`).
    pub const EVT_HEAD: u64 = 0x2010;
    /// Event Log Tail Pointer Register, MMIO 2018h (L-AMDT `MMIO_EVT_TAIL_OFFSET`).
    pub const EVT_TAIL: u64 = 0x2018;
    /// IOMMU Status Register, MMIO 2020h (L-AMDT `MMIO_STATUS_OFFSET`).
    pub const STATUS: u64 = 0x2020;
}

/// IOMMU Control Register bits, MMIO 0018h (§3.4; L-AMDT `CONTROL_*` bit numbers, VBOX
/// `IOMMU_CTRL_T`, F-AMD `AMDIOMMU_CTRL_*`). Masks in place.
pub mod control {
    /// IommuEn, bit 0: translation and remapping on (L-AMDT `CONTROL_IOMMU_EN` 0).
    pub const IOMMU_EN: u64 = 1 << 0;
    /// HtTunEn, bit 1: HyperTransport tunnel translation (L-AMDT `CONTROL_HT_TUN_EN` 1).
    pub const HT_TUN_EN: u64 = 1 << 1;
    /// EventLogEn, bit 2: event logging on (L-AMDT `CONTROL_EVT_LOG_EN` 2).
    pub const EVT_LOG_EN: u64 = 1 << 2;
    /// EventIntEn, bit 3: interrupt when an event is logged (L-AMDT `CONTROL_EVT_INT_EN` 3).
    pub const EVT_INT_EN: u64 = 1 << 3;
    /// ComWaitIntEn, bit 4: interrupt on COMPLETION_WAIT with I = 1 (L-AMDT
    /// `CONTROL_COMWAIT_EN` 4).
    pub const COM_WAIT_INT_EN: u64 = 1 << 4;
    /// InvTimeOut, bits 7:5: IOTLB invalidation time-out (L-AMDT `CTRL_INV_TO_MASK` 7 << 5).
    pub const INV_TIMEOUT: u64 = 0x7 << 5;
    /// PassPW, bit 8: HyperTransport PassPW for IOMMU reads (L-AMDT `CONTROL_PASSPW_EN` 8).
    pub const PASS_PW: u64 = 1 << 8;
    /// ResPassPW, bit 9 (L-AMDT `CONTROL_RESPASSPW_EN` 9).
    pub const RES_PASS_PW: u64 = 1 << 9;
    /// Coherent, bit 10: the IOMMU's own reads (device table, page tables, command buffer)
    /// are issued as coherent requests (L-AMDT `CONTROL_COHERENT_EN` 10; VBOX "HT read request
    /// packet Coherent bit"; F-AMD "HT Coherent Reads"). Semantics beyond the HT wording are
    /// UNCONFIRMED; snoopsim reads it as "table walks snoop the CPU caches".
    pub const COHERENT: u64 = 1 << 10;
    /// Isoc, bit 11: isochronous IOMMU reads (L-AMDT `CONTROL_ISOC_EN` 11).
    pub const ISOC: u64 = 1 << 11;
    /// CmdBufEn, bit 12: command buffer processing on (L-AMDT `CONTROL_CMDBUF_EN` 12).
    pub const CMD_BUF_EN: u64 = 1 << 12;
    /// PPRLogEn, bit 13 (L-AMDT `CONTROL_PPRLOG_EN` 13); not modelled.
    pub const PPR_LOG_EN: u64 = 1 << 13;
    /// PPRIntEn, bit 14 (L-AMDT `CONTROL_PPRINT_EN` 14); not modelled.
    pub const PPR_INT_EN: u64 = 1 << 14;
    /// PPREn, bit 15 (L-AMDT `CONTROL_PPR_EN` 15); not modelled.
    pub const PPR_EN: u64 = 1 << 15;
    /// GTEn, bit 16: guest translation (L-AMDT `CONTROL_GT_EN` 16); not modelled.
    pub const GT_EN: u64 = 1 << 16;
    /// GAEn, bit 17: guest virtual APIC (L-AMDT `CONTROL_GA_EN` 17); not modelled.
    pub const GA_EN: u64 = 1 << 17;
    /// HADUpdate, bits 47:46: host access/dirty bit updates (VBOX `u2HstAccDirtyBitUpdate`,
    /// F-AMD `AMDIOMMU_CTRL_HADUP_MASK`); not modelled.
    pub const HAD_UPDATE: u64 = 0x3 << 46;
}

/// IOMMU Status Register bits, MMIO 2020h (§3.4; L-AMDT `MMIO_STATUS_*_MASK`, Q-AMD
/// `AMDVI_MMIO_STATUS_*`, VBOX `IOMMU_STATUS_*`).
pub mod status {
    /// EventOverflow, bit 0, RW1C: an event was lost because the log was full (L-AMDT
    /// `MMIO_STATUS_EVT_OVERFLOW_MASK`).
    pub const EVT_OVERFLOW: u64 = 1 << 0;
    /// EventLogInt, bit 1, RW1C: an event was written (L-AMDT `MMIO_STATUS_EVT_INT_MASK`).
    pub const EVT_INT: u64 = 1 << 1;
    /// ComWaitInt, bit 2, RW1C: a COMPLETION_WAIT finished (L-AMDT
    /// `MMIO_STATUS_COM_WAIT_INT_MASK`).
    pub const COM_WAIT_INT: u64 = 1 << 2;
    /// EventLogRun, bit 3, RO: event logging is running (L-AMDT `MMIO_STATUS_EVT_RUN_MASK`).
    pub const EVT_RUN: u64 = 1 << 3;
    /// CmdBufRun, bit 4, RO: the command buffer is being processed (Q-AMD
    /// `AMDVI_MMIO_STATUS_CMDBUF_RUN`).
    pub const CMD_RUN: u64 = 1 << 4;
    /// PprOverflow, bit 5 (L-AMDT `MMIO_STATUS_PPR_OVERFLOW_MASK`); not modelled.
    pub const PPR_OVERFLOW: u64 = 1 << 5;
    /// PprInt, bit 6 (L-AMDT `MMIO_STATUS_PPR_INT_MASK`); not modelled.
    pub const PPR_INT: u64 = 1 << 6;
    /// PprLogRun, bit 7 (L-AMDT `MMIO_STATUS_PPR_RUN_MASK`); not modelled.
    pub const PPR_RUN: u64 = 1 << 7;
    /// The write-1-to-clear bits among 10:0 (VBOX `IOMMU_STATUS_RW1C_MASK` 0x68e67, low
    /// eleven bits: overflow and interrupt flags of the event, PPR and GA logs).
    pub const RW1C: u64 = 0x667;
}

/// Head and tail pointer registers (MMIO 2000h-2018h): a byte offset into the ring in bits
/// 18:4, 16-byte aligned (Q-AMD `AMDVI_MMIO_CMDBUF_HEAD_MASK`, VBOX
/// `IOMMU_CMD_BUF_HEAD_PTR_VALID_MASK` 0x7fff0, F-AMD `AMDIOMMU_CMDPTR_MASK`).
pub const HEAD_TAIL_MASK: u64 = 0x7_fff0;

/// Field positions of the base-address registers and the EFR (§3.4).
mod field {
    /// DevTabBase, bits 51:12 of MMIO 0000h (Q-AMD `AMDVI_MMIO_DEVTAB_BASE_MASK`).
    pub const BASE: u64 = 0x000f_ffff_ffff_f000;
    /// Size, bits 8:0 of MMIO 0000h: table pages minus one (VBOX `DEV_TAB_BAR_T.u9Size`;
    /// L-AMDI `iommu_set_device_table`: `(dev_table_size >> 12) - 1`).
    pub const DEV_TABLE_SIZE: u64 = 0x1ff;
    /// Valid bits of MMIO 0000h (VBOX `IOMMU_DEV_TAB_BAR_VALID_MASK` 0x000ffffffffff1ff).
    pub const DEV_TABLE_VALID: u64 = 0x000f_ffff_ffff_f1ff;
    /// ComLen / EventLen, bits 59:56 of MMIO 0008h/0010h: log2 of the entry count (L-AMDT
    /// `MMIO_CMD_SIZE_SHIFT` 56, `MMIO_CMD_SIZE_512` = 9 << 56).
    pub const RING_LEN: u64 = 0xf << 56;
    /// Valid bits of MMIO 0008h/0010h (VBOX `IOMMU_CMD_BUF_BAR_VALID_MASK` 0x0f0ffffffffff000).
    pub const RING_VALID: u64 = 0x0f0f_ffff_ffff_f000;
}

/// Extended Feature Register bits, MMIO 0030h (§3.4; L-AMDT `FEATURE_*`, VBOX
/// `IOMMU_EXT_FEAT_BF_*`). Masks in place.
pub mod efr {
    /// PreFSup, bit 0: PREFETCH_IOMMU_PAGES supported (L-AMDT `FEATURE_PREFETCH`).
    pub const PREF_SUP: u64 = 1 << 0;
    /// PPRSup, bit 1 (L-AMDT `FEATURE_PPR`).
    pub const PPR_SUP: u64 = 1 << 1;
    /// XTSup, bit 2: x2APIC (L-AMDT `FEATURE_X2APIC`).
    pub const XT_SUP: u64 = 1 << 2;
    /// NXSup, bit 3 (L-AMDT `FEATURE_NX`).
    pub const NX_SUP: u64 = 1 << 3;
    /// GTSup, bit 4: guest translation (L-AMDT `FEATURE_GT`).
    pub const GT_SUP: u64 = 1 << 4;
    /// IASup, bit 6: INVALIDATE_IOMMU_ALL supported (L-AMDT `FEATURE_IA`).
    pub const IA_SUP: u64 = 1 << 6;
    /// GASup, bit 7 (L-AMDT `FEATURE_GA`).
    pub const GA_SUP: u64 = 1 << 7;
    /// HESup, bit 8 (L-AMDT `FEATURE_HE`).
    pub const HE_SUP: u64 = 1 << 8;
    /// PCSup, bit 9 (L-AMDT `FEATURE_PC`).
    pub const PC_SUP: u64 = 1 << 9;
    /// HATS, bits 11:10: deepest host table, 4 + field levels; 11b reserved (L-AMDT
    /// `FEATURE_HATS`; Linux commit "iommu/amd: Add efr[HATS] max v1 page table level":
    /// `amd_iommu_hpt_level = efr_hats + PAGE_MODE_4_LEVEL`).
    pub const HATS: u64 = 0x3 << 10;
    /// GATS, bits 13:12 (L-AMDT `FEATURE_GATS`).
    pub const GATS: u64 = 0x3 << 12;
    /// GLXSup, bits 15:14 (L-AMDT `FEATURE_GLX`).
    pub const GLX_SUP: u64 = 0x3 << 14;
    /// PASMax, bits 36:32 (L-AMDT `FEATURE_PASMAX`).
    pub const PAS_MAX: u64 = 0x1f << 32;
    /// GIoSup, bit 48 (L-AMDT `FEATURE_GIOSUP`).
    pub const GIO_SUP: u64 = 1 << 48;
    /// HASup, bit 49: host access bit (L-AMDT `FEATURE_HASUP`).
    pub const HA_SUP: u64 = 1 << 49;
    /// EPHSup, bit 50 (L-AMDT `FEATURE_EPHSUP`).
    pub const EPH_SUP: u64 = 1 << 50;
    /// AttrFWSup, bit 51: "Attribute Forward Support" (VBOX `IOMMU_EXT_FEAT_BF_ATTR_FW_SUP`),
    /// which snoopsim takes to gate the DTE AttrV / Mode0FC / SnoopAttr fields (UNCONFIRMED).
    pub const ATTR_FW_SUP: u64 = 1 << 51;
    /// HDSup, bit 52: host dirty bit (L-AMDT `FEATURE_HDSUP`).
    pub const HD_SUP: u64 = 1 << 52;
}

/// Device Table Base Address Register, MMIO 0000h, raw (§3.4; VBOX `DEV_TAB_BAR_T`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DevTableBase(pub u64);

impl DevTableBase {
    /// Largest Size field: 512 pages of 4 KiB hold 65536 entries of 32 B (§3.4).
    pub const MAX_SIZE_FIELD: u64 = field::DEV_TABLE_SIZE;

    /// The register for a table of `pages` 4 KiB pages at `base` (4 KiB aligned), or `None`
    /// if `pages` is not 1..=512 or `base` is misaligned or beyond bit 51.
    pub fn new(base: PhysAddr, pages: u64) -> Option<DevTableBase> {
        let ok = (1..=Self::MAX_SIZE_FIELD + 1).contains(&pages) && base.0 & !field::BASE == 0;
        ok.then(|| DevTableBase(base.0 | (pages - 1)))
    }

    /// DevTabBase: the table's address.
    pub fn base(self) -> PhysAddr {
        PhysAddr(self.0 & field::BASE)
    }

    /// Size: pages minus one.
    pub fn size_field(self) -> u64 {
        self.0 & field::DEV_TABLE_SIZE
    }

    /// Table length in bytes: (Size + 1) × 4 KiB (VBOX `IOMMU_GET_DEV_TAB_LEN`).
    pub fn bytes(self) -> u64 {
        (self.size_field() + 1) * PAGE_BYTES
    }

    /// Device IDs the table covers: bytes / 32. A DeviceID at or above this is an
    /// out-of-table request (the walker's business).
    pub fn entries(self) -> u64 {
        self.bytes() / DTE_BYTES
    }

    /// Bits set outside the defined fields (VBOX `IOMMU_DEV_TAB_BAR_VALID_MASK`).
    pub fn reserved_bits(self) -> u64 {
        self.0 & !field::DEV_TABLE_VALID
    }
}

/// Command Buffer or Event Log Base Address Register, MMIO 0008h / 0010h, raw: base in bits
/// 51:12 and Len = log2(entries) in bits 59:56 (§3.4; VBOX `CMD_BUF_BAR_T`, `EVT_LOG_BAR_T`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RingBase(pub u64);

/// The Command Buffer Base Address Register, MMIO 0008h.
pub type CmdBufBase = RingBase;
/// The Event Log Base Address Register, MMIO 0010h.
pub type EvtLogBase = RingBase;

impl RingBase {
    /// The register for a ring of `entries` (a power of two, 256..=32768) at `base` (4 KiB
    /// aligned, below 2^52), or `None` if either is out of range. Linux writes Len = 9, 512
    /// entries, for both rings (L-AMDT `MMIO_CMD_SIZE_512`, `EVT_LEN_MASK` = 9 << 56).
    pub fn new(base: PhysAddr, entries: u32) -> Option<RingBase> {
        let ok = entries.is_power_of_two()
            && (RING_MIN_ENTRIES..=RING_MAX_ENTRIES).contains(&entries)
            && base.0 & !field::BASE == 0;
        ok.then(|| RingBase(base.0 | put(field::RING_LEN, u64::from(entries.trailing_zeros()))))
    }

    /// ComBase / EventBase: the ring's address.
    pub fn base(self) -> PhysAddr {
        PhysAddr(self.0 & field::BASE)
    }

    /// ComLen / EventLen, 4 bits.
    pub fn len_field(self) -> u8 {
        get(self.0, field::RING_LEN) as u8
    }

    /// Entries: 2^Len, or `None` for the reserved encodings 0-7 (fewer than 256 entries).
    pub fn entries(self) -> Option<u32> {
        let len = self.len_field();
        (len >= RING_MIN_ENTRIES.trailing_zeros() as u8).then(|| 1u32 << len)
    }

    /// Ring length in bytes (16 per entry), or `None` for a reserved Len.
    pub fn bytes(self) -> Option<u64> {
        self.entries().map(|e| u64::from(e) * COMMAND_BYTES)
    }

    /// Bits set outside the defined fields (VBOX `IOMMU_CMD_BUF_BAR_VALID_MASK`).
    pub fn reserved_bits(self) -> u64 {
        self.0 & !field::RING_VALID
    }
}

/// IOMMU Extended Feature Register, MMIO 0030h, raw (§3.4; VBOX `IOMMU_EXT_FEAT_T`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExtFeatures(pub u64);

impl ExtFeatures {
    /// HATS field value (0..=3).
    pub fn hats(self) -> u8 {
        get(self.0, efr::HATS) as u8
    }

    /// Deepest host page table: 4 + HATS, or `None` for the reserved 11b (Linux then
    /// disables host translation, "invalid translation level").
    pub fn max_levels(self) -> Option<u8> {
        let h = self.hats();
        (h != 3).then_some(4 + h)
    }

    /// Whether every bit of `mask` (an [`efr`] constant) is set.
    pub fn has(self, mask: u64) -> bool {
        self.0 & mask == mask
    }
}

impl fmt::Display for ExtFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "efr {:#x}", self.0)
    }
}

/// Why a [`Capabilities`] describes hardware that cannot exist or that snoopsim cannot model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CapError {
    /// The [`Capabilities`] field at fault, by its Rust name (e.g. `"levels"`).
    pub field: &'static str,
    /// What is required and why.
    pub message: String,
}

/// What a scenario configures about the IOMMU, in named fields; [`Capabilities::ext_features`]
/// encodes the EFR part.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Capabilities {
    /// Deepest host page table the walker accepts in DTE Mode: 4, 5 or 6 levels (EFR.HATS =
    /// levels − 4).
    pub levels: u8,
    /// System physical address width, bits (IVRS IVinfo PASize): address bits at or above it
    /// are reserved in every table entry.
    pub haw: u8,
    /// The IOMMU's own reads of the device table, page tables and command buffer snoop the
    /// CPU caches (IVHD flag Coherent, Control.Coherent bit 10).
    pub coherent: bool,
    /// Next Level = 7 size-encoded leaves are accepted (always true of v1 tables in practice;
    /// a switch for experiments).
    pub large_pages: bool,
    /// PDEs may skip levels (Next Level below the level under the PDE); a switch for
    /// experiments.
    pub skip_levels: bool,
    /// The DTE AttrV / Mode0FC / SnoopAttr fields are implemented (EFR.AttrFWSup); without it
    /// their bits are ignored.
    pub snoop_attr: bool,
    /// Event log entries: a power of two, 256..=32768.
    pub event_log_entries: u32,
    /// Command buffer entries: a power of two, 256..=32768.
    pub command_entries: u32,
    /// Domain IDs available, 1..=65536 (the DTE DomainID field is 16 bits).
    pub domains: u32,
}

impl Default for Capabilities {
    /// An EPYC-class IOMMU. Levels 6: an EPYC boot log (openvelinux/kernel PR #50) reads
    /// "Extended features (0xa5bf732fa2295afe)", whose bits 11:10 (HATS) are 10b = 6 levels,
    /// and QEMU's amd-iommu reports the same (Q-AMD `AMDVI_HATS_MODE` 2 << 10). HAW 48: the
    /// physical address width of Zen 2/3 EPYC without SME (/proc/cpuinfo "48 bits physical");
    /// 52, the architectural limit, is also accepted. Rings of 512 entries as Linux allocates
    /// them (L-AMDT `CMD_BUFFER_ENTRIES`, `EVT_BUFFER_SIZE` 8192), every domain ID, coherent
    /// walks (Linux sets `CONTROL_COHERENT_EN` when the IVHD says so, as on every EPYC board),
    /// large pages and level skipping on, and no AttrV/SnoopAttr (the attribute fields appear
    /// only in newer revisions and nothing public documents their behaviour).
    fn default() -> Capabilities {
        Capabilities {
            levels: 6,
            haw: 48,
            coherent: true,
            large_pages: true,
            skip_levels: true,
            snoop_attr: false,
            event_log_entries: 512,
            command_entries: 512,
            domains: MAX_DOMAINS,
        }
    }
}

/// A validation failure of `field` with `message`.
fn err(field: &'static str, message: impl Into<String>) -> Result<(), CapError> {
    Err(CapError {
        field,
        message: message.into(),
    })
}

/// Checks a ring size field.
fn ring(field: &'static str, entries: u32) -> Result<(), CapError> {
    if entries.is_power_of_two() && (RING_MIN_ENTRIES..=RING_MAX_ENTRIES).contains(&entries) {
        Ok(())
    } else {
        err(
            field,
            format!(
                "{entries}: a power of two from 256 to 32768 is required; the base register \
                 holds log2(entries) in a 4-bit Len field whose values below 8 are reserved \
                 (§3.4, MMIO 0008h/0010h)"
            ),
        )
    }
}

impl Capabilities {
    /// EFR.HATS as this hardware reports it: levels − 4 (0 if `levels` is out of range).
    pub fn hats(&self) -> u8 {
        self.levels.saturating_sub(4).min(2)
    }

    /// The Extended Feature Register: HATS, IASup (INVALIDATE_IOMMU_ALL is modelled),
    /// AttrFWSup iff `snoop_attr`. Everything else reads 0 (not modelled).
    pub fn ext_features(&self) -> ExtFeatures {
        let v = put(efr::HATS, u64::from(self.hats()))
            | efr::IA_SUP
            | bits::flag(efr::ATTR_FW_SUP, self.snoop_attr);
        ExtFeatures(v)
    }

    /// Rejects values no AMD-Vi implementation can report. The first violated rule is
    /// reported, naming the field, what is required and why.
    pub fn validate(&self) -> Result<(), CapError> {
        if !(4..=6).contains(&self.levels) {
            return err(
                "levels",
                format!(
                    "{}: the deepest host table is 4, 5 or 6 levels; EFR.HATS encodes levels − 4 \
                     in two bits and 11b is reserved (§3.4 MMIO 0030h; Linux sets \
                     amd_iommu_hpt_level = HATS + 4)",
                    self.levels
                ),
            );
        }
        if !(32..=MAX_HAW).contains(&self.haw) {
            return err(
                "haw",
                format!(
                    "{} bits: the system physical address width must be 32..=52; every AMD-Vi \
                     address field ends at bit 51 (§2.2.2.1, §2.2.3) and no AMD64 part has \
                     fewer than 32 physical address bits",
                    self.haw
                ),
            );
        }
        ring("event_log_entries", self.event_log_entries)?;
        ring("command_entries", self.command_entries)?;
        if !(1..=MAX_DOMAINS).contains(&self.domains) {
            return err(
                "domains",
                format!(
                    "{}: 1..=65536 domain IDs; the device table entry's DomainID is a 16-bit \
                     field (§2.2.2.1)",
                    self.domains
                ),
            );
        }
        Ok(())
    }
}
