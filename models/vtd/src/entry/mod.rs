//! Every VT-d translation structure as its exact bit layout (Intel Virtualization Technology
//! for Directed I/O, Architecture Specification rev. 4.1, chapter 9).
//!
//! Each structure is a raw view over its little-endian 64-bit words (`lo`/`hi`, `q[i]` or
//! `.0`) with one accessor per field, a constructor from typed fields, `from_le_bytes` /
//! `to_le_bytes`, and a `reserved_bits(haw)` that returns the reserved bits that are set, so a
//! walker can fault with the structure's reserved-field reason. Multi-word structures return
//! one mask per word (`[u64; N]`, index = word), so `[0; N]` means "nothing reserved is set".
//! `haw` is the host address width in bits (CAP.MGAW + 1); address bits at or above it are
//! reserved everywhere an address is stored.
//!
//! Every bit position is a named mask in [`field`], with the spec section and the public code
//! that confirms it: Linux `drivers/iommu/intel/{iommu.h,iommu.c,pasid.h}` (L-VTDH, L-VTDC,
//! L-PASID), QEMU `hw/i386/intel_iommu_internal.h` (Q-VTD) and VirtualBox
//! `include/VBox/iommu-intel.h` (VBOX-VTD, written "in accordance with the Intel spec").

use model_core::PhysAddr;
use serde::{Deserialize, Serialize};
use std::fmt;

use field::{get, put};

/// Entries per 4 KiB paging-structure page: 512 × 8 B (§3.7 "9-bit stride"; Q-VTD
/// `VTD_SL_PT_ENTRY_NR`).
pub const PTES_PER_TABLE: u64 = 512;
/// Bytes of every table page (root, context, PASID table, paging structure): 4 KiB (L-VTDH
/// `VTD_PAGE_SIZE`).
pub const TABLE_BYTES: u64 = 4096;
/// IOVA bits consumed per paging level (L-VTDH `VTD_STRIDE_SHIFT`).
pub const LEVEL_STRIDE: u32 = 9;
/// Widest host address an entry can hold: address fields end at bit 51 (§9.8; VBOX-VTD
/// `VTD_BF_SLP_ENTRY_ADDR_MASK` 0x000ffffffffff000).
pub const MAX_HAW: u8 = 52;

/// Mask of the address bits below `haw` (Q-VTD `VTD_HAW_MASK(aw)` = `(1 << aw) - 1`).
pub const fn haw_mask(haw: u8) -> u64 {
    if haw >= 64 {
        u64::MAX
    } else {
        (1u64 << haw) - 1
    }
}

/// Address bits at or above `haw`: reserved wherever an address is stored.
const fn above_haw(haw: u8) -> u64 {
    !haw_mask(haw)
}

/// Reads `W` little-endian 64-bit words from `bytes` (which holds at least `8 * W` bytes).
fn le_words<const W: usize>(bytes: &[u8]) -> [u64; W] {
    let mut q = [0u64; W];
    for (w, chunk) in q.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut a = [0u8; 8];
        a.copy_from_slice(chunk);
        *w = u64::from_le_bytes(a);
    }
    q
}

/// Writes `words` little-endian into a `B`-byte array (`B = 8 * words.len()`).
fn le_bytes<const B: usize>(words: &[u64]) -> [u8; B] {
    let mut b = [0u8; B];
    for (chunk, w) in b.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    b
}

/// The page sizes VT-d second- and first-level tables map (CAP.SLLPS bits 34/35 for 2 MiB /
/// 1 GiB; L-VTDH `cap_super_page_val`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PageSize {
    /// 4 KiB, a leaf at level 1.
    Size4K,
    /// 2 MiB, a leaf with PS = 1 at level 2.
    Size2M,
    /// 1 GiB, a leaf with PS = 1 at level 3.
    Size1G,
}

impl PageSize {
    /// All sizes, smallest first.
    pub const ALL: [PageSize; 3] = [PageSize::Size4K, PageSize::Size2M, PageSize::Size1G];

    /// log2 of the size: 12, 21 or 30.
    pub const fn shift(self) -> u32 {
        match self {
            PageSize::Size4K => 12,
            PageSize::Size2M => 21,
            PageSize::Size1G => 30,
        }
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        1 << self.shift()
    }

    /// The paging level whose entry maps a page of this size: 1, 2 or 3.
    pub const fn leaf_level(self) -> u8 {
        match self {
            PageSize::Size4K => 1,
            PageSize::Size2M => 2,
            PageSize::Size1G => 3,
        }
    }

    /// The size a leaf at `level` maps; `None` for levels that cannot hold a leaf.
    pub const fn from_level(level: u8) -> Option<PageSize> {
        match level {
            1 => Some(PageSize::Size4K),
            2 => Some(PageSize::Size2M),
            3 => Some(PageSize::Size1G),
            _ => None,
        }
    }
}

impl fmt::Display for PageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PageSize::Size4K => "4 KiB",
            PageSize::Size2M => "2 MiB",
            PageSize::Size1G => "1 GiB",
        })
    }
}

/// Implements `BYTES`, `from_le_bytes` and `to_le_bytes` for a structure of `$words` words,
/// given how to read its words and how to build it from them.
macro_rules! le_codec {
    ($t:ty, $words:literal, |$s:ident| $to:expr, |$q:ident| $from:expr) => {
        impl $t {
            /// Size of the structure in memory, in bytes.
            pub const BYTES: usize = $words * 8;

            /// Decodes the structure from its in-memory (little-endian) bytes.
            pub fn from_le_bytes(bytes: &[u8; $words * 8]) -> Self {
                let $q: [u64; $words] = le_words(bytes);
                $from
            }

            /// Encodes the structure as it lies in memory (little-endian).
            pub fn to_le_bytes(&self) -> [u8; $words * 8] {
                let $s = self;
                le_bytes(&$to)
            }
        }
    };
}

/// Legacy-mode root entry, 128 bits, one per bus in the 4 KiB root table (§9.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RootEntry {
    /// Bits 63:0.
    pub lo: u64,
    /// Bits 127:64 (all reserved in legacy mode).
    pub hi: u64,
}

le_codec!(RootEntry, 2, |s| [s.lo, s.hi], |q| RootEntry {
    lo: q[0],
    hi: q[1]
});

impl RootEntry {
    /// A present entry pointing at the context table `ctp`.
    pub fn new(ctp: PhysAddr) -> RootEntry {
        RootEntry {
            lo: field::root::P | (ctp.0 & field::root::CTP),
            hi: 0,
        }
    }

    /// P: the bus has a context table.
    pub fn present(&self) -> bool {
        self.lo & field::root::P != 0
    }

    /// CTP: the context table's address.
    pub fn ctp(&self) -> PhysAddr {
        PhysAddr(self.lo & field::root::CTP)
    }

    /// Set reserved bits `[lo, hi]`: bits 11:1, CTP bits at or above `haw`, all of `hi`
    /// (Q-VTD `VTD_ROOT_ENTRY_RSVD(aw)` and "re->hi" in `vtd_root_entry_rsvd_bits_check`).
    pub fn reserved_bits(&self, haw: u8) -> [u64; 2] {
        [self.lo & (field::root::RSVD | above_haw(haw)), self.hi]
    }
}

/// Scalable-mode root entry, 128 bits: the lower half serves devfn 0x00-0x7f, the upper half
/// devfn 0x80-0xff (§9.2; L-VTDC `iommu_context_addr`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ScalableRootEntry {
    /// Bits 63:0: LP and LCTP.
    pub lo: u64,
    /// Bits 127:64: UP and UCTP.
    pub hi: u64,
}

le_codec!(ScalableRootEntry, 2, |s| [s.lo, s.hi], |q| {
    ScalableRootEntry { lo: q[0], hi: q[1] }
});

impl ScalableRootEntry {
    /// An entry with each half present iff its context table is given.
    pub fn new(lower: Option<PhysAddr>, upper: Option<PhysAddr>) -> ScalableRootEntry {
        let half = |t: Option<PhysAddr>| t.map_or(0, |t| field::root::P | (t.0 & field::root::CTP));
        ScalableRootEntry {
            lo: half(lower),
            hi: half(upper),
        }
    }

    /// LP: the lower context table (devfn 0x00-0x7f) is present.
    pub fn lower_present(&self) -> bool {
        self.lo & field::root::P != 0
    }

    /// LCTP: the lower context table's address.
    pub fn lower_ctp(&self) -> PhysAddr {
        PhysAddr(self.lo & field::root::CTP)
    }

    /// UP (bit 64): the upper context table (devfn 0x80-0xff) is present.
    pub fn upper_present(&self) -> bool {
        self.hi & field::root::P != 0
    }

    /// UCTP (bits 127:76): the upper context table's address.
    pub fn upper_ctp(&self) -> PhysAddr {
        PhysAddr(self.hi & field::root::CTP)
    }

    /// Set reserved bits `[lo, hi]`: bits 11:1 of each half and pointer bits at or above
    /// `haw` (Q-VTD `vtd_root_entry_rsvd_bits_check`, scalable branch).
    pub fn reserved_bits(&self, haw: u8) -> [u64; 2] {
        let r = field::root::RSVD | above_haw(haw);
        [self.lo & r, self.hi & r]
    }
}

/// Context-entry translation type, bits 3:2 (§9.3; L-VTDH `CONTEXT_TT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TranslationType {
    /// 0: untranslated requests go through the second-level tables; translated and
    /// translation requests are blocked (`CONTEXT_TT_MULTI_LEVEL`).
    UntranslatedOnly,
    /// 1: as 0, and ATS translation/translated requests are allowed (`CONTEXT_TT_DEV_IOTLB`).
    DeviceTlb,
    /// 2: untranslated requests pass through untouched (`CONTEXT_TT_PASS_THROUGH`).
    PassThrough,
    /// 3: reserved; a walker treats the entry as invalid (fault 0x3).
    Reserved,
}

impl TranslationType {
    /// The 2-bit field value.
    pub const fn code(self) -> u8 {
        match self {
            TranslationType::UntranslatedOnly => 0,
            TranslationType::DeviceTlb => 1,
            TranslationType::PassThrough => 2,
            TranslationType::Reserved => 3,
        }
    }

    /// The type for a field value; only the low 2 bits of `code` are looked at.
    pub const fn from_code(code: u8) -> TranslationType {
        match code & 3 {
            0 => TranslationType::UntranslatedOnly,
            1 => TranslationType::DeviceTlb,
            2 => TranslationType::PassThrough,
            _ => TranslationType::Reserved,
        }
    }
}

/// Field values for [`ContextEntry::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextFields {
    /// FPD: do not record or report faults for this device.
    pub fpd: bool,
    /// TT: translation type.
    pub tt: TranslationType,
    /// SLPTPTR: root of the second-level tables (4 KiB aligned).
    pub slptptr: PhysAddr,
    /// AW: adjusted guest address width code; the tables have `aw + 2` levels.
    pub aw: u8,
    /// DID: domain identifier.
    pub did: u16,
}

/// Legacy-mode context entry, 128 bits, one per devfn in a bus's context table (§9.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ContextEntry {
    /// Bits 63:0: P, FPD, TT, SLPTPTR.
    pub lo: u64,
    /// Bits 127:64: AW, AVAIL, DID.
    pub hi: u64,
}

le_codec!(ContextEntry, 2, |s| [s.lo, s.hi], |q| ContextEntry {
    lo: q[0],
    hi: q[1]
});

impl ContextEntry {
    /// A present entry with the given fields (values wider than their field are truncated).
    pub fn new(f: ContextFields) -> ContextEntry {
        use field::ctx;
        ContextEntry {
            lo: ctx::P
                | put(ctx::FPD, u64::from(f.fpd))
                | put(ctx::TT, u64::from(f.tt.code()))
                | (f.slptptr.0 & ctx::SLPTPTR),
            hi: put(ctx::AW, u64::from(f.aw)) | put(ctx::DID, u64::from(f.did)),
        }
    }

    /// P: the device has a context.
    pub fn present(&self) -> bool {
        self.lo & field::ctx::P != 0
    }

    /// FPD: fault processing disabled.
    pub fn fpd(&self) -> bool {
        self.lo & field::ctx::FPD != 0
    }

    /// TT: translation type.
    pub fn tt(&self) -> TranslationType {
        TranslationType::from_code(get(self.lo, field::ctx::TT) as u8)
    }

    /// SLPTPTR: root of the second-level tables.
    pub fn slptptr(&self) -> PhysAddr {
        PhysAddr(self.lo & field::ctx::SLPTPTR)
    }

    /// AW: the 3-bit AGAW code (levels = aw + 2, width = 30 + 9·aw; L-VTDH `agaw_to_level`).
    pub fn aw(&self) -> u8 {
        get(self.hi, field::ctx::AW) as u8
    }

    /// Paging levels the AW field selects (`aw + 2`).
    pub fn levels(&self) -> u8 {
        self.aw() + 2
    }

    /// DID: domain identifier.
    pub fn did(&self) -> u16 {
        get(self.hi, field::ctx::DID) as u16
    }

    /// Set reserved bits `[lo, hi]` (Q-VTD `VTD_CONTEXT_ENTRY_RSVD_LO(aw)` = 0xff0 | bits ≥
    /// haw, `VTD_CONTEXT_ENTRY_RSVD_HI` = 0xffffffffff000080).
    pub fn reserved_bits(&self, haw: u8) -> [u64; 2] {
        [
            self.lo & (field::ctx::RSVD_LO | above_haw(haw)),
            self.hi & field::ctx::RSVD_HI,
        ]
    }
}

/// Field values for [`ScalableContextEntry::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScalableContextFields {
    /// FPD: do not record or report faults for this device.
    pub fpd: bool,
    /// DTE: device-TLB (ATS) enable.
    pub dte: bool,
    /// PASIDE: requests with PASID are allowed.
    pub paside: bool,
    /// PRE: page requests are allowed.
    pub pre: bool,
    /// PDTS: the PASID directory has 2^(pdts + 7) entries (3 bits).
    pub pdts: u8,
    /// PASIDDIRPTR: the PASID directory (4 KiB aligned).
    pub pasid_dir_ptr: PhysAddr,
    /// RID_PASID: PASID used for requests without a PASID (20 bits).
    pub rid_pasid: u32,
}

/// Scalable-mode context entry, 256 bits (§9.4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ScalableContextEntry {
    /// The four 64-bit words, bits 63:0 first.
    pub q: [u64; 4],
}

le_codec!(ScalableContextEntry, 4, |s| s.q, |q| ScalableContextEntry {
    q
});

impl ScalableContextEntry {
    /// A present entry with the given fields (values wider than their field are truncated).
    pub fn new(f: ScalableContextFields) -> ScalableContextEntry {
        use field::sm_ctx;
        ScalableContextEntry {
            q: [
                sm_ctx::P
                    | put(sm_ctx::FPD, u64::from(f.fpd))
                    | put(sm_ctx::DTE, u64::from(f.dte))
                    | put(sm_ctx::PASIDE, u64::from(f.paside))
                    | put(sm_ctx::PRE, u64::from(f.pre))
                    | put(sm_ctx::PDTS, u64::from(f.pdts))
                    | (f.pasid_dir_ptr.0 & sm_ctx::PASIDDIRPTR),
                put(sm_ctx::Q1_RID_PASID, u64::from(f.rid_pasid)),
                0,
                0,
            ],
        }
    }

    /// P: the device has a context.
    pub fn present(&self) -> bool {
        self.q[0] & field::sm_ctx::P != 0
    }

    /// FPD: fault processing disabled.
    pub fn fpd(&self) -> bool {
        self.q[0] & field::sm_ctx::FPD != 0
    }

    /// DTE: device-TLB enable.
    pub fn dte(&self) -> bool {
        self.q[0] & field::sm_ctx::DTE != 0
    }

    /// PASIDE: requests with PASID allowed.
    pub fn paside(&self) -> bool {
        self.q[0] & field::sm_ctx::PASIDE != 0
    }

    /// PRE: page requests allowed.
    pub fn pre(&self) -> bool {
        self.q[0] & field::sm_ctx::PRE != 0
    }

    /// PDTS: directory-size code.
    pub fn pdts(&self) -> u8 {
        get(self.q[0], field::sm_ctx::PDTS) as u8
    }

    /// Entries in the PASID directory: 2^(pdts + 7) (L-PASID `get_pasid_dir_size`).
    pub fn pasid_dir_entries(&self) -> u32 {
        1 << (u32::from(self.pdts()) + 7)
    }

    /// PASIDDIRPTR: the PASID directory's address.
    pub fn pasid_dir_ptr(&self) -> PhysAddr {
        PhysAddr(self.q[0] & field::sm_ctx::PASIDDIRPTR)
    }

    /// RID_PASID (bits 83:64): PASID for requests without one.
    pub fn rid_pasid(&self) -> u32 {
        get(self.q[1], field::sm_ctx::Q1_RID_PASID) as u32
    }

    /// Set reserved bits per word: q0 bits 8:5 and pointer bits ≥ haw, q1 bits 63:21 (Q-VTD
    /// `VTD_SM_CONTEXT_ENTRY_RSVD_VAL0(aw)`, `_VAL1`), all of q2 and q3 (Q-VTD
    /// `vtd_context_entry_rsvd_bits_check`).
    pub fn reserved_bits(&self, haw: u8) -> [u64; 4] {
        [
            self.q[0] & (field::sm_ctx::RSVD_Q0 | above_haw(haw)),
            self.q[1] & field::sm_ctx::RSVD_Q1,
            self.q[2],
            self.q[3],
        ]
    }
}

/// Scalable-mode PASID directory entry, 64 bits, at index `pasid >> 6` (§9.5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PasidDirEntry(pub u64);

le_codec!(PasidDirEntry, 1, |s| [s.0], |q| PasidDirEntry(q[0]));

impl PasidDirEntry {
    /// A present entry pointing at the PASID table `table`.
    pub fn new(table: PhysAddr) -> PasidDirEntry {
        PasidDirEntry(field::pasid_dir::P | (table.0 & field::pasid_dir::TABLE_PTR))
    }

    /// P: the PASID table is present.
    pub fn present(&self) -> bool {
        self.0 & field::pasid_dir::P != 0
    }

    /// FPD: fault processing disabled for the 64 PASIDs of this table.
    pub fn fpd(&self) -> bool {
        self.0 & field::pasid_dir::FPD != 0
    }

    /// SMPTBLPTR: the PASID table's address.
    pub fn table_ptr(&self) -> PhysAddr {
        PhysAddr(self.0 & field::pasid_dir::TABLE_PTR)
    }

    /// Set reserved bits: 11:2 and pointer bits ≥ haw (VBOX-VTD `VTD_BF_SM_PASID_DIR_ENTRY_RSVD_11_2`).
    pub fn reserved_bits(&self, haw: u8) -> u64 {
        self.0 & (field::pasid_dir::RSVD | above_haw(haw))
    }
}

/// PASID-granular translation type, PASID-entry bits 8:6 (§9.6; L-PASID
/// `PASID_ENTRY_PGTT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Pgtt {
    /// 1: first-level only.
    FirstLevel,
    /// 2: second-level only.
    SecondLevel,
    /// 3: nested (first level, then second level).
    Nested,
    /// 4: pass-through.
    PassThrough,
    /// 0, 5, 6, 7: reserved; a walker treats the entry as invalid.
    Reserved(u8),
}

impl Pgtt {
    /// The 3-bit field value.
    pub const fn code(self) -> u8 {
        match self {
            Pgtt::FirstLevel => 1,
            Pgtt::SecondLevel => 2,
            Pgtt::Nested => 3,
            Pgtt::PassThrough => 4,
            Pgtt::Reserved(c) => c & 7,
        }
    }

    /// The type for a field value; only the low 3 bits of `code` are looked at.
    pub const fn from_code(code: u8) -> Pgtt {
        match code & 7 {
            1 => Pgtt::FirstLevel,
            2 => Pgtt::SecondLevel,
            3 => Pgtt::Nested,
            4 => Pgtt::PassThrough,
            c => Pgtt::Reserved(c),
        }
    }
}

/// Field values for [`PasidEntry::new`]; fields not listed are written as 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasidFields {
    /// FPD: do not record or report faults for this PASID.
    pub fpd: bool,
    /// AW: second-level AGAW code (levels = aw + 2).
    pub aw: u8,
    /// PGTT: translation type.
    pub pgtt: Pgtt,
    /// SLPTPTR: second-level table root (PGTT 2 and 3).
    pub slptptr: PhysAddr,
    /// DID: domain identifier.
    pub did: u16,
    /// PWSNP: walks of this PASID's tables snoop (set from ECAP.SMPWC by Linux).
    pub pwsnp: bool,
    /// PGSNP: every access through this PASID snoops, whatever the request's No-Snoop.
    pub pgsnp: bool,
    /// SRE: supervisor requests allowed.
    pub sre: bool,
    /// FLPM: first-level paging mode, 0 = 4-level, 1 = 5-level.
    pub flpm: u8,
    /// WPE: write protect applies to supervisor requests.
    pub wpe: bool,
    /// NXE: XD in first-level entries is honoured (deprecated, see [`field::pasid::Q2_NXE`]).
    pub nxe: bool,
    /// FLPTR: first-level table root (PGTT 1 and 3).
    pub flptr: PhysAddr,
}

/// Scalable-mode PASID table entry, 512 bits, at index `pasid & 0x3f` (§9.6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PasidEntry {
    /// The eight 64-bit words, bits 63:0 first.
    pub q: [u64; 8],
}

le_codec!(PasidEntry, 8, |s| s.q, |q| PasidEntry { q });

impl PasidEntry {
    /// A present entry with the given fields (values wider than their field are truncated).
    pub fn new(f: PasidFields) -> PasidEntry {
        use field::pasid;
        let mut q = [0u64; 8];
        q[0] = pasid::Q0_P
            | put(pasid::Q0_FPD, u64::from(f.fpd))
            | put(pasid::Q0_AW, u64::from(f.aw))
            | put(pasid::Q0_PGTT, u64::from(f.pgtt.code()))
            | (f.slptptr.0 & pasid::Q0_SLPTPTR);
        q[1] = put(pasid::Q1_DID, u64::from(f.did))
            | put(pasid::Q1_PWSNP, u64::from(f.pwsnp))
            | put(pasid::Q1_PGSNP, u64::from(f.pgsnp));
        q[2] = put(pasid::Q2_SRE, u64::from(f.sre))
            | put(pasid::Q2_FLPM, u64::from(f.flpm))
            | put(pasid::Q2_WPE, u64::from(f.wpe))
            | put(pasid::Q2_NXE, u64::from(f.nxe))
            | (f.flptr.0 & pasid::Q2_FLPTR);
        PasidEntry { q }
    }

    /// P: the PASID is set up.
    pub fn present(&self) -> bool {
        self.q[0] & field::pasid::Q0_P != 0
    }

    /// FPD: fault processing disabled.
    pub fn fpd(&self) -> bool {
        self.q[0] & field::pasid::Q0_FPD != 0
    }

    /// AW: second-level AGAW code.
    pub fn aw(&self) -> u8 {
        get(self.q[0], field::pasid::Q0_AW) as u8
    }

    /// PGTT: translation type.
    pub fn pgtt(&self) -> Pgtt {
        Pgtt::from_code(get(self.q[0], field::pasid::Q0_PGTT) as u8)
    }

    /// SLPTPTR: second-level table root.
    pub fn slptptr(&self) -> PhysAddr {
        PhysAddr(self.q[0] & field::pasid::Q0_SLPTPTR)
    }

    /// DID (bits 79:64): domain identifier.
    pub fn did(&self) -> u16 {
        get(self.q[1], field::pasid::Q1_DID) as u16
    }

    /// PWSNP (bit 87): page walks snoop.
    pub fn pwsnp(&self) -> bool {
        self.q[1] & field::pasid::Q1_PWSNP != 0
    }

    /// PGSNP (bit 88): accesses through this PASID snoop.
    pub fn pgsnp(&self) -> bool {
        self.q[1] & field::pasid::Q1_PGSNP != 0
    }

    /// SRE (bit 128): supervisor requests allowed.
    pub fn sre(&self) -> bool {
        self.q[2] & field::pasid::Q2_SRE != 0
    }

    /// FLPM (bits 131:130): 0 = 4-level, 1 = 5-level first-level paging.
    pub fn flpm(&self) -> u8 {
        get(self.q[2], field::pasid::Q2_FLPM) as u8
    }

    /// WPE (bit 132): write protect enable.
    pub fn wpe(&self) -> bool {
        self.q[2] & field::pasid::Q2_WPE != 0
    }

    /// NXE (bit 133): no-execute enable.
    pub fn nxe(&self) -> bool {
        self.q[2] & field::pasid::Q2_NXE != 0
    }

    /// FLPTR (bits 191:140): first-level table root.
    pub fn flptr(&self) -> PhysAddr {
        PhysAddr(self.q[2] & field::pasid::Q2_FLPTR)
    }

    /// Set reserved bits per word: q0 bits 11:10, q1 bits 22:16 (= 86:80), q2 bits 11:8
    /// (= 139:136) (VBOX-VTD `VTD_BF_{0,1,2}_SM_PASID_TBL_ENTRY_RSVD_*`), both table pointers'
    /// bits ≥ haw, and all of q3..=q7 (VBOX-VTD defines no field there; QEMU checks none of
    /// this — UNCONFIRMED against the rev. 4.1 figure).
    pub fn reserved_bits(&self, haw: u8) -> [u64; 8] {
        use field::pasid;
        let a = above_haw(haw);
        let mut r = self.q;
        r[0] &= pasid::Q0_RSVD | (a & pasid::Q0_SLPTPTR);
        r[1] &= pasid::Q1_RSVD;
        r[2] &= pasid::Q2_RSVD | (a & pasid::Q2_FLPTR);
        r
    }
}

/// Permissions and snoop behaviour of a second-level leaf.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SlPerm {
    /// R: reads allowed.
    pub read: bool,
    /// W: writes allowed.
    pub write: bool,
    /// SNP: accesses snoop even when the request has No-Snoop set (needs ECAP.SC).
    pub snp: bool,
}

/// Second-level (second-stage) paging entry, 64 bits (§9.8; L-VTDH `struct dma_pte`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SlPte(pub u64);

le_codec!(SlPte, 1, |s| [s.0], |q| SlPte(q[0]));

impl SlPte {
    /// A leaf mapping `pa` with `perm`; PS is set for 2 MiB and 1 GiB pages (L-VTDC
    /// `__domain_mapping`: `prot & (READ|WRITE|SNP)`, `DMA_PTE_LARGE_PAGE`). Bits of `pa`
    /// below the page size are kept, so a misaligned `pa` shows up as reserved bits.
    pub fn leaf(pa: PhysAddr, size: PageSize, perm: SlPerm) -> SlPte {
        use field::sl;
        SlPte(
            put(sl::R, u64::from(perm.read))
                | put(sl::W, u64::from(perm.write))
                | put(sl::SNP, u64::from(perm.snp))
                | put(sl::PS, u64::from(size != PageSize::Size4K))
                | (pa.0 & sl::ADDR),
        )
    }

    /// A non-leaf entry pointing at the table `next`, with R = W = 1 as Linux writes it
    /// (L-VTDC `pfn_to_dma_pte`: `DMA_PTE_READ | DMA_PTE_WRITE`).
    pub fn table(next: PhysAddr) -> SlPte {
        SlPte(field::sl::R | field::sl::W | (next.0 & field::sl::ADDR))
    }

    /// R: read permission.
    pub fn read(self) -> bool {
        self.0 & field::sl::R != 0
    }

    /// W: write permission.
    pub fn write(self) -> bool {
        self.0 & field::sl::W != 0
    }

    /// Present: R or W set (L-VTDH `dma_pte_present`).
    pub fn present(self) -> bool {
        self.0 & (field::sl::R | field::sl::W) != 0
    }

    /// PS: this level-2/3 entry maps a large page.
    pub fn ps(self) -> bool {
        self.0 & field::sl::PS != 0
    }

    /// SNP: snoop behaviour forced for accesses through this leaf.
    pub fn snp(self) -> bool {
        self.0 & field::sl::SNP != 0
    }

    /// TM: transient mapping (reserved since rev. 3.2, see [`field::sl::TM`]).
    pub fn tm(self) -> bool {
        self.0 & field::sl::TM != 0
    }

    /// Address bits 51:12 (ignored bits 63 and 61:52 and the TM bit 62 are dropped).
    pub fn addr(self) -> PhysAddr {
        PhysAddr(self.0 & field::sl::ADDR)
    }

    /// Whether this entry at `level` is a leaf: always at level 1, with PS at levels 2 and 3.
    pub fn is_leaf(self, level: u8) -> bool {
        level == 1 || (matches!(level, 2 | 3) && self.ps())
    }

    /// Reserved-bit mask for an entry at `level` (1..=5), after Q-VTD `vtd_init`'s
    /// `vtd_spte_rsvd[]` / `vtd_spte_rsvd_large[]`:
    ///
    /// * always: address bits ≥ `haw` and bit 62 (`~(VTD_HAW_MASK | VTD_SL_IGN_COM)`);
    /// * level 1: SNP (0x800) unless `snp_allowed`;
    /// * levels 2/3 non-leaf: SNP (always — QEMU clears 0x800 from leaf masks only);
    /// * level 2 leaf: bits 20:12 and SNP unless `snp_allowed` (`0x1ff800`); level 3 leaf:
    ///   bits 29:12 and SNP unless `snp_allowed` (`0x3ffff800`);
    /// * levels 4/5: SNP and PS (`0x880`), whatever `leaf` says (PS is reserved there);
    /// * leaves (levels 1-3 with `leaf`): TM (bit 62) only if `tm_reserved`.
    ///
    /// `snp_allowed` = ECAP.SC or scalable mode (QEMU clears 0x800 from leaf masks then);
    /// `tm_reserved` = !(ECAP.DT && the pre-3.2 TM behaviour, QEMU `dt_supported &&
    /// stale_tm`). Level 1 is always a leaf; `leaf` is ignored there. Levels outside 1..=5
    /// give `u64::MAX` (QEMU's `vtd_spte_rsvd[0] = ~0`).
    pub fn reserved_mask(
        level: u8,
        leaf: bool,
        haw: u8,
        snp_allowed: bool,
        tm_reserved: bool,
    ) -> u64 {
        use field::sl;
        let base = above_haw(haw) & !sl::IGNORED;
        let snp_leaf = if snp_allowed { 0 } else { sl::SNP };
        let tm_leaf = if tm_reserved { 0 } else { sl::TM };
        match (level, leaf) {
            (1, _) => (base | snp_leaf) & !tm_leaf,
            (2, true) => (base | sl::LARGE_2M_RSVD | snp_leaf) & !tm_leaf,
            (3, true) => (base | sl::LARGE_1G_RSVD | snp_leaf) & !tm_leaf,
            (2 | 3, false) => base | sl::SNP,
            (4 | 5, _) => base | sl::SNP | sl::PS,
            _ => u64::MAX,
        }
    }
}

/// Permissions of a first-level leaf.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FlPerm {
    /// R/W: writes allowed.
    pub writable: bool,
    /// U/S: user-mode (and, for devices, non-privileged) accesses allowed.
    pub user: bool,
    /// XD: instruction fetches disallowed (meaningful only with the PASID entry's NXE).
    pub xd: bool,
}

/// First-level (first-stage, IA-32e format) paging entry, 64 bits (§9.7; L-VTDH
/// `DMA_FL_PTE_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FlPte(pub u64);

le_codec!(FlPte, 1, |s| [s.0], |q| FlPte(q[0]));

impl FlPte {
    /// A leaf mapping `pa`: P, A, D when writable, PS for 2 MiB / 1 GiB, as Linux writes
    /// first-level leaves (L-VTDC `__domain_mapping`: `PRESENT | US | ACCESS`, `DIRTY` if
    /// writable). Bits of `pa` below the page size are kept.
    pub fn leaf(pa: PhysAddr, size: PageSize, perm: FlPerm) -> FlPte {
        use field::fl;
        FlPte(
            fl::P
                | fl::A
                | put(fl::RW, u64::from(perm.writable))
                | put(fl::D, u64::from(perm.writable))
                | put(fl::US, u64::from(perm.user))
                | put(fl::PS, u64::from(size != PageSize::Size4K))
                | put(fl::XD, u64::from(perm.xd))
                | (pa.0 & fl::ADDR),
        )
    }

    /// A non-leaf entry pointing at `next`: P | R/W | U/S | A, as current Linux writes it
    /// (L-VTDC `pfn_to_dma_pte`; XD was dropped from it in 2024).
    pub fn table(next: PhysAddr) -> FlPte {
        use field::fl;
        FlPte(fl::P | fl::RW | fl::US | fl::A | (next.0 & fl::ADDR))
    }

    /// P: present.
    pub fn present(self) -> bool {
        self.0 & field::fl::P != 0
    }

    /// R/W: writable.
    pub fn writable(self) -> bool {
        self.0 & field::fl::RW != 0
    }

    /// U/S: user accesses allowed.
    pub fn user(self) -> bool {
        self.0 & field::fl::US != 0
    }

    /// A: accessed.
    pub fn accessed(self) -> bool {
        self.0 & field::fl::A != 0
    }

    /// D: dirty (leaves only).
    pub fn dirty(self) -> bool {
        self.0 & field::fl::D != 0
    }

    /// PS: this level-2/3 entry maps a large page (bit 7 is PAT in a level-1 entry).
    pub fn ps(self) -> bool {
        self.0 & field::fl::PS != 0
    }

    /// XD: execute disable.
    pub fn xd(self) -> bool {
        self.0 & field::fl::XD != 0
    }

    /// Address bits 51:12.
    pub fn addr(self) -> PhysAddr {
        PhysAddr(self.0 & field::fl::ADDR)
    }

    /// Whether this entry at `level` is a leaf: always at level 1, with PS at levels 2 and 3.
    pub fn is_leaf(self, level: u8) -> bool {
        level == 1 || (matches!(level, 2 | 3) && self.ps())
    }

    /// Reserved-bit mask for an entry at `level` (1..=5):
    ///
    /// * always: address bits 51:`haw` (Q-VTD `~(VTD_HAW_MASK | VTD_FS_UPPER_IGNORED)`), and
    ///   XD (bit 63) unless `nxe` (§9.7; QEMU ignores bit 63 entirely, which equals `nxe`);
    /// * levels 4/5: PS (Q-VTD `VTD_FPTE_PAGE_L4_RSVD_MASK` 0x80), whatever `leaf` says;
    /// * level 3 leaf: bits 29:13 if `fl1gp` (Q-VTD `VTD_FPTE_LPAGE_L3_RSVD_MASK`
    ///   0x3fffe000), else PS itself (1 GiB pages need CAP.FL1GP);
    /// * level 2 leaf: bits 20:13 (Q-VTD `VTD_FPTE_LPAGE_L2_RSVD_MASK` 0x1fe000);
    ///   bit 12 of a large leaf is PAT.
    ///
    /// Level 1 is always a leaf; `leaf` is ignored there. Levels outside 1..=5 give
    /// `u64::MAX`.
    pub fn reserved_mask(level: u8, leaf: bool, haw: u8, nxe: bool, fl1gp: bool) -> u64 {
        use field::fl;
        let base = (above_haw(haw) & !fl::IGNORED & !fl::XD) | if nxe { 0 } else { fl::XD };
        match (level, leaf) {
            (1, _) | (2 | 3, false) => base,
            (2, true) => base | fl::LARGE_2M_RSVD,
            (3, true) if fl1gp => base | fl::LARGE_1G_RSVD,
            (3, true) => base | fl::PS,
            (4 | 5, _) => base | fl::PS,
            _ => u64::MAX,
        }
    }
}

pub mod field;
