//! I/O page-table entries of the host (v1) tables and the level arithmetic (AMD IOMMU
//! Specification pub. 48882 rev. 3.x, §2.2.3 "I/O Page Tables for Host Translations",
//! figures "I/O Page Translation Entry (PTE)" / "I/O Page Directory Entry (PDE)", Table 14
//! "Example Page Size Encodings", Table 15 "Page Table Level Parameters").
//!
//! One 64-bit word serves as PDE or PTE; its Next Level field (bits 11:9) decides:
//!
//! | Next Level | meaning at a table of level L |
//! |---|---|
//! | 0 | leaf mapping the level's natural page, 4 KiB · 512^(L−1) |
//! | 1..=L−1 | PDE: the address is a table of that level; a value below L−1 skips levels |
//! | L..=6 | invalid level encoding (fault) |
//! | 7 | size-encoded leaf: the page size is in the low address bits (Table 14) |
//!
//! Levels are numbered as the DTE Mode numbers them: level 1 holds 4 KiB leaves, a Mode-n
//! table's root is level n. Linux numbers them from 0 (`PM_LEVEL_SHIFT(x) = 12 + 9x`), so
//! level L here is Linux level L − 1.
//!
//! Sources: Linux `amd_iommu_types.h` (L-AMDT: `IOMMU_PTE_*`, `PM_*`, `PAGE_SIZE_PTE`,
//! `PTE_PAGE_SIZE`, `PAGE_SIZE_PTE_COUNT`), `io_pgtable.c` (L-AMDP), the generic page-table
//! format `drivers/iommu/generic_pt/fmt/amdv1.h` (L-PT), VirtualBox `iommu-amd.h`
//! `IOPTE_T` / `IOPDE_T` / `IOMMU_PTE_RSVD_MASK` (VBOX), QEMU `amd_iommu.c` (Q-AMD).

use crate::regs::bits::{flag, get, haw_mask, put};
use model_core::PhysAddr;
use serde::{Deserialize, Serialize};

/// Entries per table page: 512 × 8 B (L-AMDT `PM_LEVEL_INDEX` masks 0x1ff).
pub const ENTRIES_PER_TABLE: u64 = 512;
/// Bytes of a table page (L-PT `PT_TABLEMEM_LG2SZ` 12).
pub const TABLE_BYTES: u64 = 4096;
/// IOVA bits consumed per level (L-AMDT `PM_LEVEL_SHIFT(x)` = 12 + 9x).
pub const LEVEL_STRIDE: u32 = 9;
/// Deepest table (L-AMDT `PAGE_MODE_6_LEVEL`; F-AMD `AMDIOMMU_PGTBL_MAXLVL` 6).
pub const MAX_LEVELS: u8 = 6;
/// Next Level 0: a leaf of the level's natural size (L-PT `AMDV1PT_FMT_NL_DEFAULT`).
pub const NL_LEAF: u8 = 0;
/// Next Level 7: a size-encoded leaf (L-PT `AMDV1PT_FMT_NL_SIZE`; L-AMDT `PAGE_MODE_7_LEVEL`).
pub const NL_SIZED: u8 = 7;
/// Largest page the host tables map: 2^51 B (L-PT `amdv1pt_possible_sizes`:
/// `GENMASK_ULL(min(51, ...))`, "Address bits 51:32 can be used to encode page sizes").
pub const MAX_PAGE_SHIFT: u32 = 51;
/// Deepest level that may hold a leaf: the top-most level (6) cannot (L-PT
/// `amdv1pt_can_have_leaf`: "Table 15: Page Table Level Parameters / The top most level
/// cannot have translation entries").
pub const MAX_LEAF_LEVEL: u8 = 5;

/// Permissions and attributes of a leaf.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IoPerm {
    /// IR: reads allowed.
    pub ir: bool,
    /// IW: writes allowed.
    pub iw: bool,
    /// FC: force coherent (see [`field::FC`]).
    pub fc: bool,
    /// U: untranslated access only (ATS translation requests to the page are refused).
    pub u: bool,
}

impl IoPerm {
    /// Read-write with FC, the leaf Linux writes for every v1 mapping (L-AMDP
    /// `iommu_v1_map_pages`: `IOMMU_PTE_PR | IOMMU_PTE_FC` plus IR/IW from `prot`).
    pub const LINUX_RW: IoPerm = IoPerm {
        ir: true,
        iw: true,
        fc: true,
        u: false,
    };
}

/// One I/O page-table word, PDE or PTE by context (§2.2.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IoPte(pub u64);

impl IoPte {
    /// Size of the entry in memory, in bytes.
    pub const BYTES: usize = 8;

    /// A PDE pointing at the table `next_table` of level `next_level` (1..=6): PR, Next Level,
    /// address, IR/IW as given. Linux always sets both IR and IW in PDEs because permissions
    /// are ANDed down the walk (L-AMDT `PM_LEVEL_PDE`; L-PT `amdv1pt_install_table`).
    pub fn pde(next_table: PhysAddr, next_level: u8, ir: bool, iw: bool) -> IoPte {
        use field::*;
        IoPte(
            PR | put(NEXT_LEVEL, u64::from(next_level))
                | (next_table.0 & ADDR)
                | flag(IR, ir)
                | flag(IW, iw),
        )
    }

    /// A Next Level 0 leaf mapping the natural page at `pa`.
    pub fn leaf(pa: PhysAddr, fc: bool, ir: bool, iw: bool, u: bool) -> IoPte {
        use field::*;
        IoPte(PR | (pa.0 & ADDR) | flag(FC, fc) | flag(IR, ir) | flag(IW, iw) | flag(U, u))
    }

    /// A Next Level 7 leaf mapping `page_bytes` at `pa`: the address field is
    /// `PAGE_SIZE_PTE(pa, size) = ((pa | (size − 1)) & !(size >> 1)) & PM_ADDR_MASK`
    /// (L-AMDT), i.e. the bits from 12 up to log2(size) − 2 set and bit log2(size) − 1 clear.
    /// `None` unless `page_bytes` is a power of two from 8 KiB to 2^51 and `pa` is aligned to
    /// it (L-AMDP `iommu_v1_map_pages`: `BUG_ON(!IS_ALIGNED(paddr, pgsize))`).
    pub fn sized_leaf(
        pa: PhysAddr,
        page_bytes: u64,
        fc: bool,
        ir: bool,
        iw: bool,
    ) -> Option<IoPte> {
        use field::*;
        let ok = page_bytes.is_power_of_two()
            && page_bytes > TABLE_BYTES
            && page_bytes.trailing_zeros() <= MAX_PAGE_SHIFT
            && pa.0 & (page_bytes - 1) == 0
            && pa.0 & !ADDR == 0;
        ok.then(|| {
            let addr = ((pa.0 | (page_bytes - 1)) & !(page_bytes >> 1)) & ADDR;
            IoPte(
                PR | put(NEXT_LEVEL, u64::from(NL_SIZED))
                    | addr
                    | flag(FC, fc)
                    | flag(IR, ir)
                    | flag(IW, iw),
            )
        })
    }

    /// PR (bit 0): present.
    pub fn pr(self) -> bool {
        self.0 & field::PR != 0
    }
    /// A (bit 5): accessed.
    pub fn a(self) -> bool {
        self.0 & field::A != 0
    }
    /// D (bit 6): dirty (leaves only).
    pub fn d(self) -> bool {
        self.0 & field::D != 0
    }
    /// Next Level (bits 11:9).
    pub fn next_level(self) -> u8 {
        get(self.0, field::NEXT_LEVEL) as u8
    }
    /// Address field (bits 51:12), raw: a table, a page, or a page with its size encoded.
    pub fn addr(self) -> PhysAddr {
        PhysAddr(self.0 & field::ADDR)
    }
    /// U (bit 59): untranslated access only.
    pub fn u(self) -> bool {
        self.0 & field::U != 0
    }
    /// FC (bit 60): force coherent.
    pub fn fc(self) -> bool {
        self.0 & field::FC != 0
    }
    /// IR (bit 61): reads allowed.
    pub fn ir(self) -> bool {
        self.0 & field::IR != 0
    }
    /// IW (bit 62): writes allowed.
    pub fn iw(self) -> bool {
        self.0 & field::IW != 0
    }

    /// Whether this entry is a leaf (Next Level 0 or 7).
    pub fn is_leaf(self) -> bool {
        matches!(self.next_level(), NL_LEAF | NL_SIZED)
    }

    /// For a Next Level 7 entry, the page size it encodes: `1 << (1 + ffz(pte | 0xfff))`
    /// (L-AMDT `PTE_PAGE_SIZE`; Q-AMD `PTE_LARGE_PAGE_SIZE`), i.e. 2^(13 + the number of ones
    /// above bit 11). `None` for other Next Level values and when bits 51:12 are all ones
    /// (Linux would then read the zero in reserved bit 52 and answer 2^53; no valid page
    /// has that encoding).
    pub fn encoded_page_size(self) -> Option<u64> {
        if self.next_level() != NL_SIZED {
            return None;
        }
        let ones = (get(self.0, field::ADDR)).trailing_ones();
        (ones < 40).then(|| 1u64 << (13 + ones))
    }

    /// Page address of a leaf with its size-encoding bits cleared: for NL 7 the address
    /// field under `!(size − 1)`; for NL 0, the address field. `None` for PDEs and malformed
    /// NL 7 entries.
    pub fn page_base(self) -> Option<PhysAddr> {
        match self.next_level() {
            NL_LEAF => Some(self.addr()),
            NL_SIZED => self
                .encoded_page_size()
                .map(|s| PhysAddr(self.addr().0 & !(s - 1))),
            _ => None,
        }
    }

    /// Reserved-bit mask for an entry used as a PDE (Next Level 1..=6) or a PTE (0 or 7),
    /// for system address width `haw`:
    ///
    /// * PTE: bits 58:52 (VBOX `IOMMU_PTE_RSVD_MASK` 0x07f0000000000000, "U, FC bits not
    ///   reserved"); newer revisions define 58:57 as page-migration control (F-AMD
    ///   `AMDIOMMU_PTE_PMC_MASK`), not modelled and kept reserved here;
    /// * PDE: bits 60:52, U and FC included (VBOX `IOMMU_PDE_RSVD_MASK` 0x1ff0000000000000);
    /// * both: address bits 51:`haw`.
    ///
    /// Bits 4:1, 8:7 (8:6 in a PDE) and 63 are ignored, never reserved.
    pub fn reserved_mask(is_pde: bool, haw: u8) -> u64 {
        use field::*;
        let above = ADDR & !haw_mask(haw);
        if is_pde {
            PDE_RSVD | above
        } else {
            PTE_RSVD | above
        }
    }
}

/// Bit position of the lowest IOVA bit a table of `level` indexes: 12 + 9 (level − 1)
/// (L-AMDT `PM_LEVEL_SHIFT(level − 1)`). Level 0 is treated as level 1.
pub const fn level_shift(level: u8) -> u32 {
    12 + LEVEL_STRIDE * (level.saturating_sub(1) as u32)
}

/// Index of `addr` in a table of `level` (L-AMDT `PM_LEVEL_INDEX`). A level-6 table is
/// indexed by bits 63:57 only, 128 entries (L-PT `amdv1pt_num_items_lg2`: "Top entry covers
/// bits \[63:57\] only").
pub const fn index(addr: u64, level: u8) -> u64 {
    match addr.checked_shr(level_shift(level)) {
        Some(v) => v & (ENTRIES_PER_TABLE - 1),
        None => 0,
    }
}

/// The page a Next Level 0 leaf at `level` maps: 4 KiB · 512^(level − 1) (L-AMDT
/// `PTE_LEVEL_PAGE_SIZE(level − 1)`); `None` above 2^63.
pub const fn natural_page_size(level: u8) -> Option<u64> {
    1u64.checked_shl(level_shift(level))
}

/// Bits of IOVA a `levels`-deep table translates: 12 + 9·levels, at most 64.
pub const fn iova_bits(levels: u8) -> u32 {
    let b = level_shift(levels) + LEVEL_STRIDE;
    if b > 64 {
        64
    } else {
        b
    }
}

/// Where a page of `page_bytes` goes: the level whose leaves hold it and how many
/// consecutive entries it fills, `(level, count)` (L-AMDT `PAGE_SIZE_LEVEL` + 1 and
/// `PAGE_SIZE_PTE_COUNT`). Count 1 is a Next Level 0 leaf at its natural level; a larger
/// count is a Next Level 7 leaf replicated over `count` entries, as L-AMDP
/// `iommu_v1_map_pages` writes it. `None` unless `page_bytes` is a power of two from 4 KiB
/// to 2^51.
pub const fn placement(page_bytes: u64) -> Option<(u8, u64)> {
    if !page_bytes.is_power_of_two() || page_bytes < TABLE_BYTES {
        return None;
    }
    let lg2 = page_bytes.trailing_zeros();
    if lg2 > MAX_PAGE_SHIFT {
        return None;
    }
    let level = ((lg2 - 12) / LEVEL_STRIDE) as u8 + 1;
    Some((level, 1u64 << ((lg2 - 12) % LEVEL_STRIDE)))
}

/// Whether a Next Level 7 leaf in a table of `level` may encode `page_bytes`: larger than the
/// level's natural page and smaller than the next level's, i.e. 2^(s+1) ..= 2^(s+8) for
/// s = `level_shift(level)`, capped at 2^51, at levels 1..=5 (L-PT `amdv1pt_possible_sizes`;
/// L-AMDT `PAGE_SIZE_LEVEL`/`PAGE_SIZE_PTE_COUNT` put every such size at that level). The
/// natural size itself is a Next Level 0 leaf. Linux additionally never maps 512 GiB, the
/// natural level-4 page, "due to a hardware bug" (L-AMDT `AMD_IOMMU_PGSIZES`).
pub const fn sized_leaf_legal(level: u8, page_bytes: u64) -> bool {
    match placement(page_bytes) {
        Some((l, count)) => l == level && count > 1 && level <= MAX_LEAF_LEVEL,
        None => false,
    }
}

/// The IOVA bits a PDE at `from_level` with Next Level `to_level` skips: the index bits of
/// levels `to_level + 1 ..= from_level − 1`. They must be zero in the IOVA or the request
/// faults (VBOX `kIoPageFaultType_SkippedLevelIovaNotZero`). 0 when nothing is skipped or
/// the levels are out of order.
pub const fn skipped_bits(from_level: u8, to_level: u8) -> u64 {
    if to_level == 0 || from_level <= to_level + 1 {
        return 0;
    }
    let lo = level_shift(to_level + 1);
    let hi = level_shift(from_level); // first bit of from_level's own index
    let width = hi - lo;
    if width >= 64 {
        u64::MAX
    } else {
        ((1u64 << width) - 1) << lo
    }
}

/// Every PTE/PDE bit position (§2.2.3; L-AMDT `IOMMU_PTE_*`, VBOX `IOPTE_T`/`IOPDE_T`).
pub mod field {
    /// PR, bit 0: present (L-AMDT `IOMMU_PTE_PR`).
    pub const PR: u64 = 1 << 0;
    /// A, bit 5: accessed (VBOX `u1Accessed`).
    pub const A: u64 = 1 << 5;
    /// D, bit 6: dirty, PTE only (L-AMDT `IOMMU_PTE_HD_BIT` 6).
    pub const D: u64 = 1 << 6;
    /// Next Level, bits 11:9 (L-AMDT `PM_PTE_LEVEL`, `PM_LEVEL_ENC`).
    pub const NEXT_LEVEL: u64 = 0x7 << 9;
    /// Address, bits 51:12 (L-AMDT `PM_ADDR_MASK` 0x000ffffffffff000).
    pub const ADDR: u64 = 0x000f_ffff_ffff_f000;
    /// PTE reserved bits 58:52 (VBOX `IOMMU_PTE_RSVD_MASK`).
    pub const PTE_RSVD: u64 = 0x07f0_0000_0000_0000;
    /// PDE reserved bits 60:52, U and FC included (VBOX `IOMMU_PDE_RSVD_MASK`).
    pub const PDE_RSVD: u64 = 0x1ff0_0000_0000_0000;
    /// U, bit 59: untranslated access only, PTE only (L-AMDT `IOMMU_PTE_U`).
    pub const U: u64 = 1 << 59;
    /// FC, bit 60: force coherent, PTE only (L-AMDT `IOMMU_PTE_FC`; VBOX `u1ForceCoherent`).
    /// Linux sets it on every v1 leaf and answers `enforce_cache_coherency` with "IOMMU_PTE_FC
    /// is always set" (L-AMD `amd_iommu_enforce_cache_coherency`); commit 6043257b1de0 says
    /// the bit makes "PCIe TLPs to that IOVA with the no-snoop bit set ... be treated as
    /// though the no-snoop bit was clear". The spec's own wording is UNCONFIRMED.
    pub const FC: u64 = 1 << 60;
    /// IR, bit 61: read permission (L-AMDT `IOMMU_PTE_IR`).
    pub const IR: u64 = 1 << 61;
    /// IW, bit 62: write permission (L-AMDT `IOMMU_PTE_IW`).
    pub const IW: u64 = 1 << 62;
}
