//! Every bit position of chapter 9, as in-place masks on one 64-bit word (word `q[i]` holds
//! structure bits `64·i + 63 .. 64·i`; a `Qn_` prefix names the word).

/// The value of the field `mask` in `word`, shifted down to bit 0.
pub const fn get(word: u64, mask: u64) -> u64 {
    match (word & mask).checked_shr(mask.trailing_zeros()) {
        Some(v) => v,
        None => 0, // empty mask
    }
}

/// `value` placed in the field `mask` (bits beyond the field are dropped).
pub const fn put(mask: u64, value: u64) -> u64 {
    match value.checked_shl(mask.trailing_zeros()) {
        Some(v) => v & mask,
        None => 0, // empty mask
    }
}

/// Root entries, legacy (§9.1) and each half of a scalable-mode one (§9.2).
pub mod root {
    /// P / LP / UP: present (§9.1; Q-VTD `VTD_ROOT_ENTRY_P`).
    pub const P: u64 = 1 << 0;
    /// Bits 11:1 reserved (§9.1, §9.2; Q-VTD `VTD_ROOT_ENTRY_RSVD` 0xffe).
    pub const RSVD: u64 = 0xffe;
    /// CTP / LCTP / UCTP: context-table pointer, bits 63:12 (Q-VTD `VTD_ROOT_ENTRY_CTP`).
    pub const CTP: u64 = !0xfff;
}

/// Legacy-mode context entry (§9.3; L-VTDH `struct context_entry` comment).
pub mod ctx {
    /// P: present, lo bit 0 (Q-VTD `VTD_CONTEXT_ENTRY_P`).
    pub const P: u64 = 1 << 0;
    /// FPD: fault processing disable, lo bit 1 (Q-VTD `VTD_CONTEXT_ENTRY_FPD`).
    pub const FPD: u64 = 1 << 1;
    /// TT: translation type, lo bits 3:2 (Q-VTD `VTD_CONTEXT_ENTRY_TT`).
    pub const TT: u64 = 3 << 2;
    /// SLPTPTR: second-level table pointer, lo bits 63:12 (Q-VTD `VTD_CONTEXT_ENTRY_SLPTPTR`).
    pub const SLPTPTR: u64 = !0xfff;
    /// Reserved lo bits 11:4 (Q-VTD `VTD_CONTEXT_ENTRY_RSVD_LO` 0xff0).
    pub const RSVD_LO: u64 = 0xff0;
    /// AW: address width, hi bits 2:0 = bits 66:64 (Q-VTD `VTD_CONTEXT_ENTRY_AW`).
    pub const AW: u64 = 0x7;
    /// AVAIL: software-available, hi bits 6:3 = 70:67 (VBOX-VTD `IGN_6_3`).
    pub const AVAIL: u64 = 0xf << 3;
    /// DID: domain id, hi bits 23:8 = 87:72 (Q-VTD `VTD_CONTEXT_ENTRY_DID`).
    pub const DID: u64 = 0xffff << 8;
    /// Reserved hi bits 7 and 63:24 (Q-VTD `VTD_CONTEXT_ENTRY_RSVD_HI`).
    pub const RSVD_HI: u64 = 0xffff_ffff_ff00_0080;
}

/// Scalable-mode context entry (§9.4; L-VTDC `context_set_sm_*`).
pub mod sm_ctx {
    /// P: present, bit 0.
    pub const P: u64 = 1 << 0;
    /// FPD: fault processing disable, bit 1.
    pub const FPD: u64 = 1 << 1;
    /// DTE: device-TLB enable, bit 2 (L-VTDC `context_set_sm_dte`).
    pub const DTE: u64 = 1 << 2;
    /// PASIDE: PASID enable, bit 3 (L-VTDH `CONTEXT_PASIDE`).
    pub const PASIDE: u64 = 1 << 3;
    /// PRE: page request enable, bit 4 (L-VTDC `context_set_sm_pre`).
    pub const PRE: u64 = 1 << 4;
    /// Reserved bits 8:5 (Q-VTD `VTD_SM_CONTEXT_ENTRY_RSVD_VAL0` 0x1e0).
    pub const RSVD_Q0: u64 = 0x1e0;
    /// PDTS: PASID directory size 2^(X+7), bits 11:9 (L-VTDC `context_pdts`).
    pub const PDTS: u64 = 0x7 << 9;
    /// PASIDDIRPTR: PASID directory pointer, bits 63:12 (VBOX-VTD `PASIDDIRPTR`).
    pub const PASIDDIRPTR: u64 = !0xfff;
    /// RID_PASID: bits 83:64 = q1 bits 19:0 (L-VTDC `context_set_sm_rid2pasid`).
    pub const Q1_RID_PASID: u64 = 0xf_ffff;
    /// RID_PRIV: bit 84 = q1 bit 20 (VBOX-VTD `RID_PRIV`; old Linux set it).
    pub const Q1_RID_PRIV: u64 = 1 << 20;
    /// Reserved bits 127:85 = q1 bits 63:21 (Q-VTD `VTD_SM_CONTEXT_ENTRY_RSVD_VAL1`).
    pub const RSVD_Q1: u64 = 0xffff_ffff_ffe0_0000;
}

/// Scalable-mode PASID directory entry (§9.5; VBOX-VTD `VTD_BF_SM_PASID_DIR_ENTRY_*`).
pub mod pasid_dir {
    /// P: present, bit 0 (L-PASID `PASID_PTE_PRESENT`).
    pub const P: u64 = 1 << 0;
    /// FPD: fault processing disable, bit 1 (Q-VTD `VTD_PASID_DIR_FPD`).
    pub const FPD: u64 = 1 << 1;
    /// Reserved bits 11:2 (VBOX-VTD `RSVD_11_2`).
    pub const RSVD: u64 = 0xffc;
    /// SMPTBLPTR: PASID table pointer, bits 63:12 (L-PASID `PDE_PFN_MASK`).
    pub const TABLE_PTR: u64 = !0xfff;
    /// PASID bits below the directory index: 64 entries per PASID table (L-PASID
    /// `PASID_PDE_SHIFT`).
    pub const PASID_SHIFT: u32 = 6;
}

/// Scalable-mode PASID table entry (§9.6; L-PASID setters, VBOX-VTD
/// `VTD_BF_*_SM_PASID_TBL_ENTRY_*`).
pub mod pasid {
    /// P: present, bit 0 (L-PASID `pasid_set_present`).
    pub const Q0_P: u64 = 1 << 0;
    /// FPD: fault processing disable, bit 1 (L-PASID `pasid_set_fault_enable`).
    pub const Q0_FPD: u64 = 1 << 1;
    /// AW: address width, bits 4:2 (L-PASID `pasid_set_address_width`).
    pub const Q0_AW: u64 = 0x7 << 2;
    /// SSEE: second-stage execute enable, bit 5 (VBOX-VTD `SLEE`).
    pub const Q0_SSEE: u64 = 1 << 5;
    /// PGTT: PASID-granular translation type, bits 8:6 (L-PASID `pasid_set_translation_type`).
    pub const Q0_PGTT: u64 = 0x7 << 6;
    /// SSADE: second-stage A/D enable, bit 9 (L-PASID `pasid_set_ssade`).
    pub const Q0_SSADE: u64 = 1 << 9;
    /// Reserved bits 11:10 (VBOX-VTD `RSVD_11_10`).
    pub const Q0_RSVD: u64 = 0xc00;
    /// SLPTPTR: second-level table pointer, bits 63:12 (L-PASID `pasid_set_slptr`).
    pub const Q0_SLPTPTR: u64 = !0xfff;
    /// DID: domain id, bits 79:64 (L-PASID `pasid_set_domain_id`).
    pub const Q1_DID: u64 = 0xffff;
    /// Reserved bits 86:80 (VBOX-VTD `RSVD_22_16`).
    pub const Q1_RSVD: u64 = 0x7f << 16;
    /// PWSNP: page-walk snoop, bit 87 (L-PASID `pasid_set_page_snoop`: `val[1]` bit 23).
    pub const Q1_PWSNP: u64 = 1 << 23;
    /// PGSNP: page snoop, bit 88 (L-PASID `pasid_set_pgsnp`: `val[1]` bit 24).
    pub const Q1_PGSNP: u64 = 1 << 24;
    /// CD: cache disable, bit 89 (VBOX-VTD `CD`).
    pub const Q1_CD: u64 = 1 << 25;
    /// SRE: supervisor request enable, bit 128 (L-PASID `pasid_set_sre`; Q-VTD `SRE_BIT`).
    pub const Q2_SRE: u64 = 1 << 0;
    /// ERE: execute request enable, bit 129 (VBOX-VTD `ERE`; deprecated like NXE).
    pub const Q2_ERE: u64 = 1 << 1;
    /// FLPM: first-level paging mode, bits 131:130 (L-PASID `pasid_set_flpm`).
    pub const Q2_FLPM: u64 = 0x3 << 2;
    /// WPE: write protect enable, bit 132 (L-PASID `pasid_set_wpe`).
    pub const Q2_WPE: u64 = 1 << 4;
    /// NXE: no-execute enable, bit 133 (Linux `pasid_set_nxe`, removed in 2024 as "the
    /// NXE bit ... and XD bit in the first-stage paging entries are deprecated").
    pub const Q2_NXE: u64 = 1 << 5;
    /// EAFE: extended access flag enable, bit 135 (L-PASID `pasid_set_eafe`).
    pub const Q2_EAFE: u64 = 1 << 7;
    /// Reserved bits 139:136 (VBOX-VTD `RSVD_11_8`).
    pub const Q2_RSVD: u64 = 0xf00;
    /// FLPTR: first-level table pointer, bits 191:140 (L-PASID `pasid_set_flptr`).
    pub const Q2_FLPTR: u64 = !0xfff;
    /// PASIDs per PASID table: 64 entries of 64 B (L-PASID `PASID_TBL_ENTRIES`).
    pub const TABLE_ENTRIES: u32 = 64;
    /// PASID width (L-PASID `MAX_NR_PASID_BITS`).
    pub const PASID_BITS: u32 = 20;
}

/// Second-level paging entry (§9.8; L-VTDH `DMA_PTE_*`, Q-VTD `VTD_SL_*`, `VTD_SPTE_*`).
pub mod sl {
    /// R: read, bit 0 (L-VTDH `DMA_PTE_READ`).
    pub const R: u64 = 1 << 0;
    /// W: write, bit 1 (L-VTDH `DMA_PTE_WRITE`).
    pub const W: u64 = 1 << 1;
    /// X: execute, bit 2 (VBOX-VTD `VTD_BF_SLP_ENTRY_X`).
    pub const X: u64 = 1 << 2;
    /// PS: page size, bit 7 (L-VTDH `DMA_PTE_LARGE_PAGE`; Q-VTD `VTD_SL_PT_PAGE_SIZE_MASK`).
    pub const PS: u64 = 1 << 7;
    /// A: accessed, bit 8 (VBOX-VTD `VTD_BF_SLP_ENTRY_A`).
    pub const A: u64 = 1 << 8;
    /// D: dirty, bit 9 (Linux `DMA_SL_PTE_DIRTY_BIT`).
    pub const D: u64 = 1 << 9;
    /// SNP: snoop, bit 11 (L-VTDH `DMA_PTE_SNP`; Q-VTD `VTD_SPTE_SNP`).
    pub const SNP: u64 = 1 << 11;
    /// Address, bits 51:12 (VBOX-VTD `VTD_BF_SLP_ENTRY_ADDR_MASK`).
    pub const ADDR: u64 = 0x000f_ffff_ffff_f000;
    /// Ignored bits 63 and 61:52 (Q-VTD `VTD_SL_IGN_COM`).
    pub const IGNORED: u64 = 0xbff0_0000_0000_0000;
    /// TM: transient mapping, bit 62, "Reserved(0) since VTD spec revision 3.2" (Q-VTD
    /// `VTD_SL_TM`, stale-TM patch).
    pub const TM: u64 = 1 << 62;
    /// Reserved low bits of a 2 MiB leaf, 20:12 (Q-VTD `VTD_SPTE_LPAGE_L2_RSVD_MASK` 0x1ff800
    /// without the SNP bit).
    pub const LARGE_2M_RSVD: u64 = 0x1f_f000;
    /// Reserved low bits of a 1 GiB leaf, 29:12 (Q-VTD `VTD_SPTE_LPAGE_L3_RSVD_MASK`
    /// 0x3ffff800 without the SNP bit).
    pub const LARGE_1G_RSVD: u64 = 0x3fff_f000;
}

/// First-level (IA-32e) paging entry (§9.7; L-VTDH `DMA_FL_PTE_*`, VBOX-VTD
/// `VTD_BF_FLP_ENTRY_*`, Q-VTD `VTD_FPTE_*`).
pub mod fl {
    /// P: present, bit 0 (L-VTDH `DMA_FL_PTE_PRESENT`).
    pub const P: u64 = 1 << 0;
    /// R/W: writable, bit 1 (Q-VTD `VTD_FL_RW`).
    pub const RW: u64 = 1 << 1;
    /// U/S: user, bit 2 (L-VTDH `DMA_FL_PTE_US`).
    pub const US: u64 = 1 << 2;
    /// A: accessed, bit 5 (L-VTDH `DMA_FL_PTE_ACCESS`).
    pub const A: u64 = 1 << 5;
    /// D: dirty, bit 6 (L-VTDH `DMA_FL_PTE_DIRTY`).
    pub const D: u64 = 1 << 6;
    /// PS: page size at levels 2/3 (PAT at level 1), bit 7 (VBOX-VTD `RSVD_7` for non-leaves).
    pub const PS: u64 = 1 << 7;
    /// EA: extended accessed, bit 10 (VBOX-VTD `VTD_BF_FLP_ENTRY_EA`).
    pub const EA: u64 = 1 << 10;
    /// Address, bits 51:12 (VBOX-VTD `VTD_BF_FLP_ENTRY_ADDR_MASK`).
    pub const ADDR: u64 = 0x000f_ffff_ffff_f000;
    /// Ignored bits 62:52 (VBOX-VTD `IGN_62_52`).
    pub const IGNORED: u64 = 0x7ff0_0000_0000_0000;
    /// XD: execute disable, bit 63 (L-VTDH `DMA_FL_PTE_XD`).
    pub const XD: u64 = 1 << 63;
    /// Reserved low bits of a 2 MiB leaf, 20:13 (Q-VTD `VTD_FPTE_LPAGE_L2_RSVD_MASK`).
    pub const LARGE_2M_RSVD: u64 = 0x1f_e000;
    /// Reserved low bits of a 1 GiB leaf, 29:13 (Q-VTD `VTD_FPTE_LPAGE_L3_RSVD_MASK`).
    pub const LARGE_1G_RSVD: u64 = 0x3fff_e000;
}
