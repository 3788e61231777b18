//! The remapping unit's register file: offsets, command and status bits, and the capability
//! registers as typed values (Intel VT-d Architecture Specification rev. 4.1, §11.4).
//!
//! Two layers, as for every format in snoopsim: [`Cap`] and [`Ecap`] are raw 64-bit views with
//! one accessor per field; [`Capabilities`] is what a scenario writes, in named fields, and
//! encodes to the two registers. Field positions live in one place, the private `mod field`;
//! each names the public code that confirms it (Linux `drivers/iommu/intel/iommu.h` `cap_*` /
//! `ecap_*` macros, QEMU `hw/i386/intel_iommu_internal.h` `VTD_CAP_*` / `VTD_ECAP_*`).

use std::fmt;

/// A contiguous bit range `[lo, lo + width)` of a 64-bit register or descriptor word.
/// Shared by the register, fault-record and descriptor layouts of this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bits {
    /// Lowest bit of the field.
    pub lo: u32,
    /// Width in bits (1..=64).
    pub width: u32,
}

impl Bits {
    /// The field `[lo, lo + width)`.
    pub(crate) const fn new(lo: u32, width: u32) -> Bits {
        Bits { lo, width }
    }

    /// A one-bit field.
    pub(crate) const fn bit(lo: u32) -> Bits {
        Bits { lo, width: 1 }
    }

    /// The largest value the field holds.
    pub(crate) const fn max(self) -> u64 {
        u64::MAX >> (64 - self.width)
    }

    /// The field's bits in place.
    pub(crate) const fn mask(self) -> u64 {
        self.max() << self.lo
    }

    /// The field's value within `word`.
    pub(crate) const fn get(self, word: u64) -> u64 {
        (word >> self.lo) & self.max()
    }

    /// A one-bit field as a flag.
    pub(crate) const fn flag(self, word: u64) -> bool {
        self.get(word) != 0
    }

    /// `word` with the field set to `value` (bits of `value` beyond the width are dropped).
    pub(crate) const fn put(self, word: u64, value: u64) -> u64 {
        (word & !self.mask()) | ((value & self.max()) << self.lo)
    }

    /// `word` with a one-bit field set or cleared.
    pub(crate) const fn set(self, word: u64, on: bool) -> u64 {
        self.put(word, on as u64)
    }
}

/// Register offsets from the unit's base address (§11.4; Linux `DMAR_*_REG`, QEMU
/// `DMAR_*_REG`).
pub mod offset {
    /// Version register, 32-bit (§11.4.1; Linux `DMAR_VER_REG`).
    pub const VER: u64 = 0x00;
    /// Capability register, 64-bit (§11.4.2; Linux `DMAR_CAP_REG`).
    pub const CAP: u64 = 0x08;
    /// Extended capability register, 64-bit (§11.4.3; Linux `DMAR_ECAP_REG`).
    pub const ECAP: u64 = 0x10;
    /// Global command register, 32-bit (§11.4.4; Linux `DMAR_GCMD_REG`).
    pub const GCMD: u64 = 0x18;
    /// Global status register, 32-bit (§11.4.5; Linux `DMAR_GSTS_REG`).
    pub const GSTS: u64 = 0x1c;
    /// Root table address register, 64-bit (§11.4.6; Linux `DMAR_RTADDR_REG`).
    pub const RTADDR: u64 = 0x20;
    /// Context command register, 64-bit (§11.4.7; Linux `DMAR_CCMD_REG`).
    pub const CCMD: u64 = 0x28;
    /// Fault status register, 32-bit (§11.4.9; Linux `DMAR_FSTS_REG`).
    pub const FSTS: u64 = 0x34;
    /// Fault event control register, 32-bit (§11.4.10; Linux `DMAR_FECTL_REG`).
    pub const FECTL: u64 = 0x38;
    /// Fault event data register, 32-bit (Linux `DMAR_FEDATA_REG`).
    pub const FEDATA: u64 = 0x3c;
    /// Fault event address register, 32-bit (Linux `DMAR_FEADDR_REG`).
    pub const FEADDR: u64 = 0x40;
    /// Fault event upper address register, 32-bit (Linux `DMAR_FEUADDR_REG`).
    pub const FEUADDR: u64 = 0x44;
    /// Invalidation queue head register, 64-bit (Linux `DMAR_IQH_REG`).
    pub const IQH: u64 = 0x80;
    /// Invalidation queue tail register, 64-bit (Linux `DMAR_IQT_REG`).
    pub const IQT: u64 = 0x88;
    /// Invalidation queue address register, 64-bit (Linux `DMAR_IQA_REG`).
    pub const IQA: u64 = 0x90;
    /// Invalidation completion status register, 32-bit (Linux `DMAR_ICS_REG`).
    pub const ICS: u64 = 0x9c;
    /// Invalidation event control register, 32-bit (QEMU `DMAR_IECTL_REG`).
    pub const IECTL: u64 = 0xa0;
    /// Invalidation queue error record register, 64-bit (Linux `DMAR_IQER_REG`).
    pub const IQER: u64 = 0xb0;
    /// Interrupt remapping table address register, 64-bit (Linux `DMAR_IRTA_REG`).
    pub const IRTA: u64 = 0xb8;
}

/// Field positions, one place for the bits (smoltcp's `mod field`).
mod field {
    use super::Bits;

    /// CAP_REG (§11.4.2; Linux iommu.h `cap_*`, QEMU `VTD_CAP_*`).
    pub mod cap {
        use super::Bits;
        /// ND, number of domains supported, 2:0 (Linux `cap_ndoms`).
        pub const ND: Bits = Bits::new(0, 3);
        /// AFL, advanced fault logging, 3 (Linux `cap_afl`).
        pub const AFL: Bits = Bits::bit(3);
        /// RWBF, required write-buffer flushing, 4 (Linux `cap_rwbf`).
        pub const RWBF: Bits = Bits::bit(4);
        /// PLMR, protected low-memory region, 5 (Linux `cap_plmr`).
        pub const PLMR: Bits = Bits::bit(5);
        /// PHMR, protected high-memory region, 6 (Linux `cap_phmr`).
        pub const PHMR: Bits = Bits::bit(6);
        /// CM, caching mode, 7 (Linux `cap_caching_mode`, QEMU `VTD_CAP_CM`).
        pub const CM: Bits = Bits::bit(7);
        /// SAGAW, supported adjusted guest address widths, 12:8 (Linux `cap_sagaw`).
        pub const SAGAW: Bits = Bits::new(8, 5);
        /// MGAW, maximum guest address width minus one, 21:16 (Linux `cap_mgaw`).
        pub const MGAW: Bits = Bits::new(16, 6);
        /// ZLR, zero-length read, 22 (Linux `cap_zlr`).
        pub const ZLR: Bits = Bits::bit(22);
        /// FRO, fault-recording register offset in 16-byte units, 33:24 (Linux
        /// `cap_fault_reg_offset`).
        pub const FRO: Bits = Bits::new(24, 10);
        /// SLLPS, second-level large page support, 37:34 (Linux `cap_super_page_val`).
        pub const SLLPS: Bits = Bits::new(34, 4);
        /// PSI, page-selective invalidation, 39 (Linux `cap_pgsel_inv`).
        pub const PSI: Bits = Bits::bit(39);
        /// NFR, number of fault-recording registers minus one, 47:40 (Linux
        /// `cap_num_fault_regs`).
        pub const NFR: Bits = Bits::new(40, 8);
        /// MAMV, maximum address mask value, 53:48 (Linux `cap_max_amask_val`).
        pub const MAMV: Bits = Bits::new(48, 6);
        /// DWD, write draining, 54 (Linux `cap_write_drain`).
        pub const DWD: Bits = Bits::bit(54);
        /// DRD, read draining, 55 (Linux `cap_read_drain`).
        pub const DRD: Bits = Bits::bit(55);
        /// FL1GP, first-level 1-GByte page support, 56 (Linux `cap_fl1gp_support`).
        pub const FL1GP: Bits = Bits::bit(56);
        /// PI, posted interrupts, 59 (Linux `cap_pi_support`).
        pub const PI: Bits = Bits::bit(59);
        /// FL5LP, first-level 5-level paging support, 60 (Linux `cap_fl5lp_support`).
        pub const FL5LP: Bits = Bits::bit(60);
        /// ESRTPS, enhanced set root table pointer support, 63 (Linux `cap_esrtps`).
        pub const ESRTPS: Bits = Bits::bit(63);
    }

    /// ECAP_REG (§11.4.3; Linux iommu.h `ecap_*`, QEMU `VTD_ECAP_*`).
    pub mod ecap {
        use super::Bits;
        /// C, page-walk coherency, 0 (Linux `ecap_coherent`).
        pub const C: Bits = Bits::bit(0);
        /// QI, queued invalidation support, 1 (Linux `ecap_qis`).
        pub const QI: Bits = Bits::bit(1);
        /// DT, device-TLB support, 2 (Linux `ecap_dev_iotlb_support`).
        pub const DT: Bits = Bits::bit(2);
        /// IR, interrupt remapping support, 3 (Linux `ecap_ir_support`).
        pub const IR: Bits = Bits::bit(3);
        /// EIM, extended interrupt mode, 4 (Linux `ecap_eim_support`).
        pub const EIM: Bits = Bits::bit(4);
        /// PT, pass-through, 6 (Linux `ecap_pass_through`).
        pub const PT: Bits = Bits::bit(6);
        /// SC, snoop control, 7 (Linux `ecap_sc_support`).
        pub const SC: Bits = Bits::bit(7);
        /// IRO, IOTLB register offset in 16-byte units, 17:8 (Linux `ecap_iotlb_offset`).
        pub const IRO: Bits = Bits::new(8, 10);
        /// MHMV, maximum handle mask value, 23:20 (Linux `ecap_max_handle_mask`).
        pub const MHMV: Bits = Bits::new(20, 4);
        /// NEST, nested translation support, 26 (Linux `ecap_nest`).
        pub const NEST: Bits = Bits::bit(26);
        /// PRS, page request support, 29 (Linux `ecap_prs`).
        pub const PRS: Bits = Bits::bit(29);
        /// PSS, PASID size supported minus one, 39:35 (Linux `ecap_pss`).
        pub const PSS: Bits = Bits::new(35, 5);
        /// PASID support, 40 (Linux `ecap_pasid`).
        pub const PASID: Bits = Bits::bit(40);
        /// SMTS, scalable-mode translation support, 43 (Linux `ecap_smts`).
        pub const SMTS: Bits = Bits::bit(43);
        /// SLTS, second-level translation support, 46 (Linux `ecap_slts`).
        pub const SLTS: Bits = Bits::bit(46);
        /// FLTS, first-level translation support, 47 (Linux `ecap_flts`).
        pub const FLTS: Bits = Bits::bit(47);
        /// SMPWC, scalable-mode page-walk coherency, 48 (Linux `ecap_smpwc`).
        pub const SMPWC: Bits = Bits::bit(48);
    }
}

use field::{cap as c, ecap as e};

/// Global command register bits (§11.4.4; Linux `DMA_GCMD_*`, QEMU `VTD_GCMD_*`).
pub mod gcmd {
    /// TE, translation enable, bit 31 (Linux `DMA_GCMD_TE`).
    pub const TE: u32 = 1 << 31;
    /// SRTP, set root table pointer, bit 30 (Linux `DMA_GCMD_SRTP`).
    pub const SRTP: u32 = 1 << 30;
    /// SFL, set fault log, bit 29 (Linux `DMA_GCMD_SFL`).
    pub const SFL: u32 = 1 << 29;
    /// EAFL, enable advanced fault logging, bit 28 (Linux `DMA_GCMD_EAFL`).
    pub const EAFL: u32 = 1 << 28;
    /// WBF, write buffer flush, bit 27 (Linux `DMA_GCMD_WBF`).
    pub const WBF: u32 = 1 << 27;
    /// QIE, queued invalidation enable, bit 26 (Linux `DMA_GCMD_QIE`).
    pub const QIE: u32 = 1 << 26;
    /// IRE, interrupt remapping enable, bit 25 (Linux `DMA_GCMD_IRE`).
    pub const IRE: u32 = 1 << 25;
    /// SIRTP, set interrupt remap table pointer, bit 24 (Linux `DMA_GCMD_SIRTP`).
    pub const SIRTP: u32 = 1 << 24;
    /// CFI, compatibility format interrupt, bit 23 (Linux `DMA_GCMD_CFI`).
    pub const CFI: u32 = 1 << 23;
}

/// Global status register bits, each the status of the same-position command bit
/// (§11.4.5; Linux `DMA_GSTS_*`, QEMU `VTD_GSTS_*`).
pub mod gsts {
    /// TES, translation enable status, bit 31 (Linux `DMA_GSTS_TES`).
    pub const TES: u32 = 1 << 31;
    /// RTPS, root table pointer status, bit 30 (Linux `DMA_GSTS_RTPS`).
    pub const RTPS: u32 = 1 << 30;
    /// FLS, fault log status, bit 29 (Linux `DMA_GSTS_FLS`).
    pub const FLS: u32 = 1 << 29;
    /// AFLS, advanced fault logging status, bit 28 (Linux `DMA_GSTS_AFLS`).
    pub const AFLS: u32 = 1 << 28;
    /// WBFS, write buffer flush status, bit 27 (Linux `DMA_GSTS_WBFS`).
    pub const WBFS: u32 = 1 << 27;
    /// QIES, queued invalidation enable status, bit 26 (Linux `DMA_GSTS_QIES`).
    pub const QIES: u32 = 1 << 26;
    /// IRES, interrupt remapping enable status, bit 25 (Linux `DMA_GSTS_IRES`).
    pub const IRES: u32 = 1 << 25;
    /// IRTPS, interrupt remap table pointer status, bit 24 (Linux `DMA_GSTS_IRTPS`).
    pub const IRTPS: u32 = 1 << 24;
    /// CFIS, compatibility format interrupt status, bit 23 (Linux `DMA_GSTS_CFIS`).
    pub const CFIS: u32 = 1 << 23;
}

/// Root table address register (§11.4.6; Linux `DMA_RTADDR_SMT`, QEMU `VTD_RTADDR_SMT`).
pub mod rtaddr {
    /// Root table base, bits 63:12 (4 KiB aligned).
    pub const RTA_MASK: u64 = !0xfff;
    /// TTM, translation table mode, bits 11:10 (rev. 3.0+; rev. 2.x called bit 10 SMT).
    pub const TTM_SHIFT: u32 = 10;
    /// TTM field mask in place.
    pub const TTM_MASK: u64 = 0b11 << TTM_SHIFT;
    /// TTM = 00b: legacy mode, 128-bit root and context entries.
    pub const TTM_LEGACY: u64 = 0b00;
    /// TTM = 01b: scalable mode (Linux `DMA_RTADDR_SMT` = bit 10).
    pub const TTM_SCALABLE: u64 = 0b01;
    /// SMT, the scalable-mode bit as Linux and QEMU name it: bit 10 (`DMA_RTADDR_SMT`).
    pub const SMT: u64 = 1 << TTM_SHIFT;
}

/// Fault status register bits (§11.4.9; Linux `DMA_FSTS_*`, QEMU `VTD_FSTS_*`).
pub mod fsts {
    /// PFO, primary fault overflow, bit 0, RW1C (Linux `DMA_FSTS_PFO`).
    pub const PFO: u32 = 1 << 0;
    /// PPF, primary pending fault, bit 1, RO: some fault record has F set (Linux `DMA_FSTS_PPF`).
    pub const PPF: u32 = 1 << 1;
    /// IQE, invalidation queue error, bit 4, RW1C (Linux `DMA_FSTS_IQE`).
    pub const IQE: u32 = 1 << 4;
    /// ICE, invalidation completion error, bit 5, RW1C (Linux `DMA_FSTS_ICE`).
    pub const ICE: u32 = 1 << 5;
    /// ITE, invalidation time-out error, bit 6, RW1C (Linux `DMA_FSTS_ITE`).
    pub const ITE: u32 = 1 << 6;
    /// PRO, page request overflow, bit 7 (Linux `DMA_FSTS_PRO`).
    pub const PRO: u32 = 1 << 7;
    /// FRI, fault record index, bits 15:8 (Linux `dma_fsts_fault_record_index`).
    pub const FRI_SHIFT: u32 = 8;
    /// FRI field mask in place (QEMU `VTD_FSTS_FRI_MASK`).
    pub const FRI_MASK: u32 = 0xff << FRI_SHIFT;
}

/// Fault event control register bits (§11.4.10; Linux `DMA_FECTL_IM`, QEMU `VTD_FECTL_*`).
pub mod fectl {
    /// IM, interrupt mask, bit 31.
    pub const IM: u32 = 1 << 31;
    /// IP, interrupt pending, bit 30.
    pub const IP: u32 = 1 << 30;
}

/// Invalidation queue registers (§11.4, IQH/IQT/IQA/ICS/IQER; QEMU `VTD_IQA_*`, `VTD_IQT_*`, `VTD_ICS_*`).
pub mod iq {
    /// IQA: queue base, bits 63:12 (QEMU `VTD_IQA_IQA_MASK`).
    pub const IQA_BASE_MASK: u64 = !0xfff;
    /// IQA: DW, descriptor width, bit 11: 1 = 256-bit descriptors (QEMU `VTD_IQA_DW_MASK`).
    pub const IQA_DW: u64 = 1 << 11;
    /// IQA: QS, queue size, bits 2:0: the queue is 2^QS 4 KiB pages (QEMU `VTD_IQA_QS`).
    pub const IQA_QS_MASK: u64 = 0x7;
    /// IQH/IQT: QH/QT, bits 18:4, in 16-byte units (QEMU `VTD_IQH_QH_MASK`).
    pub const IQ_HEAD_TAIL_MASK: u64 = 0x7fff0;
    /// IQT bit 4 is reserved with 256-bit descriptors (QEMU `VTD_IQT_QT_256_RSV_BIT`).
    pub const IQT_256_RSVD: u64 = 1 << 4;
    /// ICS: IWC, invalidation wait descriptor complete, bit 0 (QEMU `VTD_ICS_IWC`).
    pub const ICS_IWC: u32 = 1;
    /// IQER: IQEI, invalidation queue error info, bits 3:0 (Linux `DMAR_IQER_REG_IQEI`).
    pub const IQER_IQEI_MASK: u64 = 0xf;
}

/// The IOTLB registers' default offset, `ECAP.IRO × 16` (QEMU `DMAR_IOTLB_REG_OFFSET`):
/// IVA at +0, IOTLB_REG at +8 (§11.4.8).
pub const DEFAULT_IOTLB_REG_OFFSET: u64 = 0xf0;
/// The first fault-recording register's default offset, `CAP.FRO × 16` (QEMU
/// `DMAR_FRCD_REG_OFFSET`); registers follow at 16-byte strides (§11.4.14).
pub const DEFAULT_FRCD_REG_OFFSET: u64 = 0x220;
/// Bytes per fault-recording register (§11.4.14; Linux `PRIMARY_FAULT_REG_LEN`).
pub const FRCD_REG_BYTES: u64 = 16;

/// One-bit accessors of a raw register view: `name => FIELD` reads `FIELD` of module `m`.
macro_rules! flag_accessors {
    ($ty:ident, $m:ident: $( $(#[$doc:meta])* $name:ident => $f:ident, )*) => {
        impl $ty {
            $( $(#[$doc])* pub fn $name(self) -> bool { $m::$f.flag(self.0) } )*
        }
    };
}

/// Capability register (VT-d §11.4.2), raw 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cap(pub u64);

impl Cap {
    /// ND: encoded number of domain IDs (0..=6 defined).
    pub fn nd(self) -> u8 {
        c::ND.get(self.0) as u8
    }
    /// Domain IDs supported: 2^(4 + 2·ND) (Linux `cap_ndoms`).
    pub fn domains(self) -> u32 {
        1u32 << (4 + 2 * u32::from(self.nd()))
    }
    /// SAGAW: the 5-bit mask of supported second-level table depths (bit n = n + 2 levels).
    pub fn sagaw(self) -> u8 {
        c::SAGAW.get(self.0) as u8
    }
    /// Whether second-level tables of `levels` levels are supported: SAGAW bit `levels − 2`
    /// (QEMU `vtd_is_sl_level_supported`).
    pub fn supports_levels(self, levels: u8) -> bool {
        (2..=6).contains(&levels) && self.sagaw() & (1 << (levels - 2)) != 0
    }
    /// MGAW in bits: the field plus one (Linux `cap_mgaw`).
    pub fn mgaw(self) -> u8 {
        c::MGAW.get(self.0) as u8 + 1
    }
    /// FRO: fault-recording register offset in 16-byte units.
    pub fn fro(self) -> u16 {
        c::FRO.get(self.0) as u16
    }
    /// Byte offset of fault-recording register 0 (Linux `cap_fault_reg_offset`).
    pub fn frcd_offset(self) -> u64 {
        u64::from(self.fro()) * FRCD_REG_BYTES
    }
    /// SLLPS: 4-bit mask of second-level large pages (bit 0 2 MiB, bit 1 1 GiB).
    pub fn sllps(self) -> u8 {
        c::SLLPS.get(self.0) as u8
    }
    /// 2 MiB second-level pages supported (SLLPS bit 0, CAP bit 34).
    pub fn supports_2m(self) -> bool {
        self.sllps() & 0b01 != 0
    }
    /// 1 GiB second-level pages supported (SLLPS bit 1, CAP bit 35).
    pub fn supports_1g(self) -> bool {
        self.sllps() & 0b10 != 0
    }
    /// NFR: number of fault-recording registers, the field plus one (1..=256).
    pub fn nfr(self) -> u16 {
        c::NFR.get(self.0) as u16 + 1
    }
    /// MAMV: largest address mask a page-selective invalidation may use.
    pub fn mamv(self) -> u8 {
        c::MAMV.get(self.0) as u8
    }
}

flag_accessors!(Cap, c:
    /// AFL: advanced fault logging supported.
    afl => AFL,
    /// RWBF: software must flush the write buffer after updating tables.
    rwbf => RWBF,
    /// PLMR: protected low-memory region supported.
    plmr => PLMR,
    /// PHMR: protected high-memory region supported.
    phmr => PHMR,
    /// CM: caching mode, not-present and erroneous entries may be cached.
    cm => CM,
    /// ZLR: zero-length reads are supported.
    zlr => ZLR,
    /// PSI: page-selective IOTLB invalidation supported.
    psi => PSI,
    /// DWD: IOTLB invalidations may drain writes.
    dwd => DWD,
    /// DRD: IOTLB invalidations may drain reads.
    drd => DRD,
    /// FL1GP: first-level 1 GiB pages supported.
    fl1gp => FL1GP,
    /// PI: posted interrupts supported.
    pi => PI,
    /// FL5LP: first-level 5-level paging supported.
    fl5lp => FL5LP,
    /// ESRTPS: SRTP also invalidates the caches.
    esrtps => ESRTPS,
);

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cap {:x}", self.0)
    }
}

/// Extended capability register (VT-d §11.4.3), raw 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ecap(pub u64);

impl Ecap {
    /// IRO: IOTLB register offset in 16-byte units.
    pub fn iro(self) -> u16 {
        e::IRO.get(self.0) as u16
    }
    /// Byte offset of the IVA register; IOTLB_REG is at +8 (Linux `ecap_iotlb_offset`).
    pub fn iotlb_offset(self) -> u64 {
        u64::from(self.iro()) * 16
    }
    /// MHMV: maximum interrupt handle mask value.
    pub fn mhmv(self) -> u8 {
        e::MHMV.get(self.0) as u8
    }
    /// PSS: PASID size supported, minus one (bits).
    pub fn pss(self) -> u8 {
        e::PSS.get(self.0) as u8
    }
    /// PASID width in bits: PSS + 1 when PASID is supported, else 0.
    pub fn pasid_bits(self) -> u8 {
        if self.pasid() {
            self.pss() + 1
        } else {
            0
        }
    }
}

flag_accessors!(Ecap, e:
    /// C: legacy-mode table walks snoop the CPU caches (Linux `ecap_coherent`).
    c => C,
    /// QI: queued invalidation supported.
    qi => QI,
    /// DT: device-TLBs (ATS) supported.
    dt => DT,
    /// IR: interrupt remapping supported.
    ir => IR,
    /// EIM: extended (x2APIC) interrupt mode supported.
    eim => EIM,
    /// PT: pass-through translation supported.
    pt => PT,
    /// SC: snoop control, the second-level SNP bit is honoured.
    sc => SC,
    /// NEST: nested translation supported.
    nest => NEST,
    /// PRS: page requests supported.
    prs => PRS,
    /// PASID: requests with PASID supported.
    pasid => PASID,
    /// SMTS: scalable-mode translation supported.
    smts => SMTS,
    /// SLTS: second-level translation supported in scalable mode.
    slts => SLTS,
    /// FLTS: first-level translation supported in scalable mode.
    flts => FLTS,
    /// SMPWC: scalable-mode table walks may snoop (with the PASID entry's PWSNP).
    smpwc => SMPWC,
);

impl fmt::Display for Ecap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ecap {:x}", self.0)
    }
}

/// Why a [`Capabilities`] describes hardware that cannot exist or that snoopsim cannot model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CapError {
    /// The [`Capabilities`] field at fault, by its Rust name (e.g. `"sagaw_levels"`).
    pub field: &'static str,
    /// What is required and why.
    pub message: String,
}

/// What a scenario configures, in named fields; [`Capabilities::cap`] and
/// [`Capabilities::ecap`] encode it. Fields not listed here (AFL, PLMR/PHMR, ZLR, drains,
/// IR/EIM, PRS, ...) encode as 0; FRO and IRO are [`DEFAULT_FRCD_REG_OFFSET`] and
/// [`DEFAULT_IOTLB_REG_OFFSET`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Capabilities {
    /// Second-level table depths supported, a subset of {3, 4, 5}: 39-, 48-, 57-bit (CAP.SAGAW).
    pub sagaw_levels: Vec<u8>,
    /// Maximum guest address width, bits (CAP.MGAW + 1).
    pub mgaw: u8,
    /// Host address width, bits (ACPI DMAR table, not a CAP field): the widest physical
    /// address a table entry may hold.
    pub haw: u8,
    /// Encoded domain count, 0..=6: 2^(4+2·nd) domain IDs (CAP.ND).
    pub nd: u8,
    /// Caching mode (CAP.CM).
    pub caching_mode: bool,
    /// Required write-buffer flushing (CAP.RWBF).
    pub rwbf: bool,
    /// 2 MiB second-level pages (CAP.SLLPS bit 0).
    pub sllps_2m: bool,
    /// 1 GiB second-level pages (CAP.SLLPS bit 1).
    pub sllps_1g: bool,
    /// First-level 1 GiB pages (CAP.FL1GP).
    pub fl1gp: bool,
    /// First-level 5-level paging (CAP.FL5LP).
    pub fl5lp: bool,
    /// Page-selective invalidation (CAP.PSI).
    pub psi: bool,
    /// Largest page-selective address mask (CAP.MAMV), 0..=63.
    pub mamv: u8,
    /// Fault-recording registers, 1..=256 (CAP.NFR + 1).
    pub nfr: u16,
    /// Legacy-mode walks snoop (ECAP.C).
    pub coherent: bool,
    /// Queued invalidation (ECAP.QI).
    pub queued_invalidation: bool,
    /// Device-TLBs (ECAP.DT).
    pub device_tlb: bool,
    /// Pass-through (ECAP.PT).
    pub pass_through: bool,
    /// Snoop control: the second-level SNP bit is honoured (ECAP.SC).
    pub snoop_control: bool,
    /// Nested translation (ECAP.NEST).
    pub nested: bool,
    /// Scalable-mode translation (ECAP.SMTS).
    pub scalable_mode: bool,
    /// Scalable-mode second-level translation (ECAP.SLTS).
    pub second_level: bool,
    /// Scalable-mode first-level translation (ECAP.FLTS).
    pub first_level: bool,
    /// Requests with PASID (ECAP.PASID).
    pub pasid: bool,
    /// PASID width minus one, 0..=19 (ECAP.PSS).
    pub pss: u8,
    /// Scalable-mode page-walk coherency (ECAP.SMPWC).
    pub smpwc: bool,
}

impl Default for Capabilities {
    /// A legacy-mode server remapping unit. The reference is a Skylake-SP Xeon (Gold 6146)
    /// whose Linux boot log reads `cap 8d2078c106f0466 ecap f020df`, "Host address width 46"
    /// (quoted in linux-iommu threads): ND 6, MGAW 48, 2 MiB + 1 GiB, PSI, NFR 8, MAMV 18,
    /// C, QI, DT, PT, SC, no SMTS. Departures: SAGAW is {3, 4} (that part reports only 4;
    /// QEMU's `intel-iommu` with aw-bits=48 reports 39 and 48, and both depths are worth
    /// simulating), and RWBF/IR/EIM/PI/drains are left 0 (not modelled).
    fn default() -> Capabilities {
        Capabilities {
            sagaw_levels: vec![3, 4],
            mgaw: 48,
            haw: 46,
            nd: 6,
            caching_mode: false,
            rwbf: false,
            sllps_2m: true,
            sllps_1g: true,
            fl1gp: false,
            fl5lp: false,
            psi: true,
            mamv: 18,
            nfr: 8,
            coherent: true,
            queued_invalidation: true,
            device_tlb: true,
            pass_through: true,
            snoop_control: true,
            nested: false,
            scalable_mode: false,
            second_level: false,
            first_level: false,
            pasid: false,
            pss: 0,
            smpwc: false,
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

impl Capabilities {
    /// Input address width of a `levels`-deep second-level table: 30 + 9·(levels − 2)
    /// (Linux `agaw_to_width` with AGAW = levels − 2). Saturates instead of overflowing.
    pub fn address_width(levels: u8) -> u8 {
        30u8.saturating_add(9u8.saturating_mul(levels.saturating_sub(2)))
    }

    /// The deepest second-level table supported (0 if `sagaw_levels` is empty).
    pub fn max_levels(&self) -> u8 {
        self.sagaw_levels.iter().copied().max().unwrap_or(0)
    }

    /// CAP_REG as this hardware reports it. Encodes the fields as given; call
    /// [`Capabilities::validate`] first (levels outside 2..=6 are dropped, counts saturate).
    pub fn cap(&self) -> Cap {
        let sagaw = self
            .sagaw_levels
            .iter()
            .filter(|l| (2..=6).contains(*l))
            .fold(0u64, |m, l| m | 1u64 << (l - 2));
        let sllps = u64::from(self.sllps_2m) | u64::from(self.sllps_1g) << 1;
        let mut v = c::ND.put(0, self.nd.into());
        v = c::RWBF.set(v, self.rwbf);
        v = c::CM.set(v, self.caching_mode);
        v = c::SAGAW.put(v, sagaw);
        v = c::MGAW.put(v, self.mgaw.saturating_sub(1).into());
        v = c::FRO.put(v, DEFAULT_FRCD_REG_OFFSET / FRCD_REG_BYTES);
        v = c::SLLPS.put(v, sllps);
        v = c::PSI.set(v, self.psi);
        v = c::NFR.put(v, self.nfr.saturating_sub(1).into());
        v = c::MAMV.put(v, self.mamv.into());
        v = c::FL1GP.set(v, self.fl1gp);
        Cap(c::FL5LP.set(v, self.fl5lp))
    }

    /// ECAP_REG as this hardware reports it (see [`Capabilities::cap`]).
    pub fn ecap(&self) -> Ecap {
        let mut v = e::C.set(0, self.coherent);
        v = e::QI.set(v, self.queued_invalidation);
        v = e::DT.set(v, self.device_tlb);
        v = e::PT.set(v, self.pass_through);
        v = e::SC.set(v, self.snoop_control);
        v = e::IRO.put(v, DEFAULT_IOTLB_REG_OFFSET / 16);
        v = e::NEST.set(v, self.nested);
        v = e::PSS.put(v, self.pss.into());
        v = e::PASID.set(v, self.pasid);
        v = e::SMTS.set(v, self.scalable_mode);
        v = e::SLTS.set(v, self.second_level);
        v = e::FLTS.set(v, self.first_level);
        Ecap(e::SMPWC.set(v, self.smpwc))
    }

    /// Rejects combinations the specification forbids or that no consistent driver could use.
    /// The first violated rule is reported, naming the field, what is required and why.
    pub fn validate(&self) -> Result<(), CapError> {
        self.validate_widths()?;
        self.validate_counts()?;
        self.validate_features()
    }

    fn validate_widths(&self) -> Result<(), CapError> {
        if self.sagaw_levels.is_empty() {
            return err(
                "sagaw_levels",
                "at least one of 3, 4, 5 is required: SAGAW = 0 means no second-level table \
                 can be walked (§11.4.2 SAGAW)",
            );
        }
        for (i, &l) in self.sagaw_levels.iter().enumerate() {
            if !(3..=5).contains(&l) {
                return err(
                    "sagaw_levels",
                    format!(
                        "{l} levels is not a defined depth: SAGAW bits 1, 2, 3 are 3-, 4-, \
                         5-level tables (39/48/57-bit); bits 0 and 4 are reserved (§11.4.2)"
                    ),
                );
            }
            if self.sagaw_levels[..i].contains(&l) {
                return err(
                    "sagaw_levels",
                    format!("{l} is listed twice: each depth is one SAGAW bit (§11.4.2)"),
                );
            }
        }
        let widest = Self::address_width(self.max_levels());
        if !(30..=57).contains(&self.mgaw) || self.mgaw > widest {
            return err(
                "mgaw",
                format!(
                    "{} bits: MGAW must be 30..=57 and at most {widest}, the input width of the \
                     deepest supported table ({} levels); wider addresses could never be \
                     walked (§11.4.2 MGAW)",
                    self.mgaw,
                    self.max_levels()
                ),
            );
        }
        if !(30..=52).contains(&self.haw) {
            return err(
                "haw",
                format!(
                    "{} bits: the host address width must be 30..=52, the range of x86 \
                     physical addresses (DMAR table 'Host Address Width', §8.1; Intel \
                     SDM MAXPHYADDR ≤ 52)",
                    self.haw
                ),
            );
        }
        Ok(())
    }

    fn validate_counts(&self) -> Result<(), CapError> {
        if self.nd > 6 {
            return err(
                "nd",
                format!(
                    "{}: ND must be 0..=6 (16 to 65536 domain IDs); domain IDs are 16 bits, \
                     ND = 7 is reserved (§11.4.2 ND)",
                    self.nd
                ),
            );
        }
        if self.nfr == 0 || self.nfr > 256 {
            return err(
                "nfr",
                format!(
                    "{}: 1..=256 fault-recording registers; CAP.NFR is an 8-bit count minus \
                     one (§11.4.2 NFR)",
                    self.nfr
                ),
            );
        }
        if self.mamv > 63 {
            return err(
                "mamv",
                format!(
                    "{}: MAMV is a 6-bit field, 0..=63 (§11.4.2 MAMV)",
                    self.mamv
                ),
            );
        }
        if !self.psi && self.mamv != 0 {
            return err(
                "mamv",
                "must be 0 without psi: the address mask is used only by page-selective \
                 invalidation, and MAMV is valid only when CAP.PSI is set (§11.4.2 MAMV)",
            );
        }
        if self.sllps_1g && !self.sllps_2m {
            return err(
                "sllps_1g",
                "1 GiB pages require 2 MiB pages too: Linux takes the superpage level as \
                 fls(SLLPS) (`iommu_superpage_capability`), so it would map 2 MiB pages \
                 this hardware cannot walk (§11.4.2 SLLPS)",
            );
        }
        if self.pss > 19 {
            return err(
                "pss",
                format!(
                    "{}: PASIDs are at most 20 bits wide, PSS = width − 1 ≤ 19 (§11.4.3 PSS)",
                    self.pss
                ),
            );
        }
        Ok(())
    }

    fn validate_features(&self) -> Result<(), CapError> {
        if (self.fl1gp || self.fl5lp) && !self.first_level {
            let f = if self.fl1gp { "fl1gp" } else { "fl5lp" };
            return err(
                f,
                "requires first_level: FL1GP and FL5LP describe first-level tables, which \
                 exist only with ECAP.FLTS (§11.4.2 FL1GP/FL5LP)",
            );
        }
        let sm_only = [
            ("second_level", self.second_level),
            ("first_level", self.first_level),
            ("nested", self.nested),
            ("pasid", self.pasid),
            ("smpwc", self.smpwc),
        ];
        for (name, on) in sm_only {
            if on && !self.scalable_mode {
                return err(
                    name,
                    "requires scalable_mode: SLTS, FLTS, NEST, PASID and SMPWC are \
                     scalable-mode capabilities, reported only with ECAP.SMTS; legacy \
                     context entries have no PASID table (§3.4, §11.4.3)",
                );
            }
        }
        if self.scalable_mode && !self.queued_invalidation {
            return err(
                "scalable_mode",
                "requires queued_invalidation: scalable-mode caches (PASID cache, PASID-based \
                 IOTLB) are invalidated only by queued descriptors, the register interface is \
                 legacy-mode only (§6.5)",
            );
        }
        if self.scalable_mode && !(self.second_level || self.first_level || self.pass_through) {
            return err(
                "scalable_mode",
                "requires at least one of second_level, first_level, pass_through: every \
                 PASID entry's PGTT must name a supported translation type (§9.6 PGTT)",
            );
        }
        if self.nested && !(self.first_level && self.second_level) {
            return err(
                "nested",
                "requires first_level and second_level: nested translation walks a \
                 first-level table whose addresses are translated by a second-level table \
                 (§3.8, §11.4.3 NEST)",
            );
        }
        if self.device_tlb && !self.queued_invalidation {
            return err(
                "device_tlb",
                "requires queued_invalidation: device-TLB invalidations exist only as queued \
                 descriptors (§6.5.2.5)",
            );
        }
        if self.pss != 0 && !self.pasid {
            return err(
                "pss",
                "must be 0 without pasid: PSS reports the PASID width, meaningful only when \
                 ECAP.PASID is set (§11.4.3 PSS)",
            );
        }
        Ok(())
    }
}

/// The invalidation queue address register, raw 64 bits (Linux `DMAR_IQA_REG`, QEMU `VTD_IQA_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Iqa(pub u64);

impl Iqa {
    /// Queue base address (4 KiB aligned).
    pub fn base(self) -> u64 {
        self.0 & iq::IQA_BASE_MASK
    }
    /// DW: 256-bit descriptors (honoured only with ECAP.SMTS; QEMU `vtd_update_iq_dw`).
    pub fn wide_descriptors(self) -> bool {
        self.0 & iq::IQA_DW != 0
    }
    /// QS: the queue is 2^QS pages of 4 KiB.
    pub fn qs(self) -> u8 {
        (self.0 & iq::IQA_QS_MASK) as u8
    }
    /// Queue size in bytes: 4 KiB × 2^QS.
    pub fn size_bytes(self) -> u64 {
        4096 << self.qs()
    }
}
