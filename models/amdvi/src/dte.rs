//! The Device Table Entry: 256 bits, 32 bytes per DeviceID (AMD IOMMU Specification pub.
//! 48882 rev. 3.x, §2.2.2.1 "Device Table Entry Format").
//!
//! A raw view over four little-endian words (`q[0]` holds DTE bits 63:0, `q[3]` bits
//! 255:192) with one accessor per field, a constructor from typed host-translation fields,
//! `from_le_bytes` / `to_le_bytes`, and [`DeviceTableEntry::reserved_bits`]. Every bit
//! position is a named mask in [`field`]; word `q[i]` holds DTE bits `64·i + 63 .. 64·i`, so
//! `Q1_DOMAIN_ID` (mask `0xffff`) is DTE bits 79:64.
//!
//! Sources: VirtualBox `include/VBox/iommu-amd.h` `DTE_T` (VBOX), Linux
//! `amd_iommu_types.h` `DEV_ENTRY_*` / `DTE_FLAG_*` / `DTE_GCR3_*` (L-AMDT), QEMU
//! `hw/i386/amd_iommu.h` (Q-AMD; reserved masks as updated by commit ff3dcb3bf652 "Update
//! bitmasks representing DTE reserved fields ... according to the latest definition available
//! in ... Section 2.2.2.1"), FreeBSD `sys/x86/iommu/amd_reg.h` `struct amdiommu_dte` (F-AMD).
//!
//! Only host (v1) translation is modelled. Guest translation (GV, GLX, GCR3), PPR, interrupt
//! remapping and the vIOMMU fields are decoded for completeness; a walker rejects GV = 1 via
//! [`DeviceTableEntry::guest_translation_requested`].

use crate::regs::bits::{flag, get, haw_mask, put};
use model_core::PhysAddr;
use serde::{Deserialize, Serialize};

/// Paging mode 0 (DTE Mode, bits 11:9): no translation, DMA passes untranslated (§2.2.2.1;
/// L-AMDT `PAGE_MODE_NONE`).
pub const MODE_NONE: u8 = 0;
/// Deepest defined paging mode: 6 levels (L-AMDT `PAGE_MODE_6_LEVEL`).
pub const MODE_MAX: u8 = 6;
/// Mode 7 is reserved in a DTE; a request through it faults (L-AMDT `PAGE_MODE_7_LEVEL` is
/// used only as the PTE Next Level size encoding; VBOX `kIoPageFaultType_DteRsvdPagingMode`).
pub const MODE_RESERVED: u8 = 7;

/// Host-translation fields for [`DeviceTableEntry::new`]. Values wider than their field are
/// truncated; guest, PPR and interrupt fields stay zero (set `q` directly for those).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DteFields {
    /// V: the entry is valid.
    pub v: bool,
    /// TV: the translation fields (Mode, root, IR/IW, DomainID) are valid.
    pub tv: bool,
    /// Mode: 0 = no translation, 1-6 = levels of the host page table.
    pub mode: u8,
    /// Host Page Table Root Pointer (4 KiB aligned).
    pub pt_root: PhysAddr,
    /// IR: reads allowed.
    pub ir: bool,
    /// IW: writes allowed.
    pub iw: bool,
    /// DomainID: the tag of cached translations.
    pub domain_id: u16,
    /// I: device IOTLB (ATS) enabled.
    pub i: bool,
    /// SE: suppress I/O page fault events.
    pub se: bool,
    /// SA: suppress all I/O page fault events.
    pub sa: bool,
    /// IoCtl: port I/O control, 2 bits.
    pub ioctl: u8,
    /// Cache: IOTLB caching hint.
    pub cache: bool,
    /// SD: snoop disable.
    pub sd: bool,
    /// EX: allow exclusion range.
    pub ex: bool,
    /// SysMgt: system management message handling, 2 bits.
    pub sysmgt: u8,
    /// AttrV: attribute override valid (newer revisions).
    pub attr_v: bool,
    /// Mode0FC: force-coherent value used with Mode 0 (newer revisions).
    pub mode0_fc: bool,
    /// SnoopAttr: 8-bit snoop attribute (newer revisions).
    pub snoop_attr: u8,
}

/// A device table entry, 256 bits (§2.2.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceTableEntry {
    /// The four 64-bit words, DTE bits 63:0 first.
    pub q: [u64; 4],
}

impl DeviceTableEntry {
    /// Size of the entry in memory, in bytes (L-AMDT `DEV_TABLE_ENTRY_SIZE`).
    pub const BYTES: usize = 32;

    /// Decodes the entry from its in-memory (little-endian) bytes.
    pub fn from_le_bytes(bytes: &[u8; 32]) -> DeviceTableEntry {
        let mut q = [0u64; 4];
        for (w, chunk) in q.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut a = [0u8; 8];
            a.copy_from_slice(chunk);
            *w = u64::from_le_bytes(a);
        }
        DeviceTableEntry { q }
    }

    /// Encodes the entry as it lies in memory (little-endian).
    pub fn to_le_bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for (chunk, w) in b.chunks_exact_mut(8).zip(self.q) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        b
    }

    /// An entry with the given host-translation fields.
    pub fn new(f: DteFields) -> DeviceTableEntry {
        use field::*;
        let q0 = flag(Q0_V, f.v)
            | flag(Q0_TV, f.tv)
            | put(Q0_MODE, u64::from(f.mode))
            | (f.pt_root.0 & Q0_PT_ROOT)
            | flag(Q0_IR, f.ir)
            | flag(Q0_IW, f.iw);
        let q1 = put(Q1_DOMAIN_ID, u64::from(f.domain_id))
            | flag(Q1_I, f.i)
            | flag(Q1_SE, f.se)
            | flag(Q1_SA, f.sa)
            | put(Q1_IOCTL, u64::from(f.ioctl))
            | flag(Q1_CACHE, f.cache)
            | flag(Q1_SD, f.sd)
            | flag(Q1_EX, f.ex)
            | put(Q1_SYSMGT, u64::from(f.sysmgt));
        let q3 = flag(Q3_ATTR_V, f.attr_v)
            | flag(Q3_MODE0_FC, f.mode0_fc)
            | put(Q3_SNOOP_ATTR, u64::from(f.snoop_attr));
        DeviceTableEntry { q: [q0, q1, 0, q3] }
    }

    fn bit(&self, word: usize, mask: u64) -> bool {
        self.q[word] & mask != 0
    }

    /// V (bit 0): the entry is valid; with V = 0 DMA passes untranslated.
    pub fn v(&self) -> bool {
        self.bit(0, field::Q0_V)
    }
    /// TV (bit 1): the translation information is valid.
    pub fn tv(&self) -> bool {
        self.bit(0, field::Q0_TV)
    }
    /// HAD (bits 8:7): host access/dirty update control.
    pub fn had(&self) -> u8 {
        get(self.q[0], field::Q0_HAD) as u8
    }
    /// Mode (bits 11:9): 0 = no translation, 1-6 = table levels, 7 = reserved.
    pub fn mode(&self) -> u8 {
        get(self.q[0], field::Q0_MODE) as u8
    }
    /// Host Page Table Root Pointer (bits 51:12).
    pub fn pt_root(&self) -> PhysAddr {
        PhysAddr(self.q[0] & field::Q0_PT_ROOT)
    }
    /// PPR (bit 52): peripheral page requests enabled.
    pub fn ppr(&self) -> bool {
        self.bit(0, field::Q0_PPR)
    }
    /// GPRP (bit 53): guest PPR responses carry a PASID.
    pub fn gprp(&self) -> bool {
        self.bit(0, field::Q0_GPRP)
    }
    /// GIoV (bit 54): guest I/O protection valid.
    pub fn giov(&self) -> bool {
        self.bit(0, field::Q0_GIOV)
    }
    /// GV (bit 55): guest translation valid.
    pub fn gv(&self) -> bool {
        self.bit(0, field::Q0_GV)
    }
    /// GLX (bits 57:56): levels of the GCR3 table.
    pub fn glx(&self) -> u8 {
        get(self.q[0], field::Q0_GLX) as u8
    }
    /// GCR3 Table Root Pointer, assembled from bits 60:58 (\[14:12\]), 95:80 (\[30:15\]) and
    /// 127:107 (\[51:31\]) (L-AMDT `DTE_GCR3_VAL_A/B/C`, `DTE_GCR3_SHIFT_A/B/C`).
    pub fn gcr3(&self) -> PhysAddr {
        let a = get(self.q[0], field::Q0_GCR3_A) << 12;
        let b = get(self.q[1], field::Q1_GCR3_B) << 15;
        let c = get(self.q[1], field::Q1_GCR3_C) << 31;
        PhysAddr(a | b | c)
    }
    /// IR (bit 61): reads allowed.
    pub fn ir(&self) -> bool {
        self.bit(0, field::Q0_IR)
    }
    /// IW (bit 62): writes allowed.
    pub fn iw(&self) -> bool {
        self.bit(0, field::Q0_IW)
    }
    /// DomainID (bits 79:64).
    pub fn domain_id(&self) -> u16 {
        get(self.q[1], field::Q1_DOMAIN_ID) as u16
    }
    /// I (bit 96): device IOTLB enabled.
    pub fn i(&self) -> bool {
        self.bit(1, field::Q1_I)
    }
    /// SE (bit 97): suppress I/O page fault events.
    pub fn se(&self) -> bool {
        self.bit(1, field::Q1_SE)
    }
    /// SA (bit 98): suppress all I/O page fault events.
    pub fn sa(&self) -> bool {
        self.bit(1, field::Q1_SA)
    }
    /// IoCtl (bits 100:99): port I/O control.
    pub fn ioctl(&self) -> u8 {
        get(self.q[1], field::Q1_IOCTL) as u8
    }
    /// Cache (bit 101): IOTLB caching hint.
    pub fn cache(&self) -> bool {
        self.bit(1, field::Q1_CACHE)
    }
    /// SD (bit 102): snoop disable (see [`field::Q1_SD`] for what is and is not known).
    pub fn sd(&self) -> bool {
        self.bit(1, field::Q1_SD)
    }
    /// EX (bit 103): allow exclusion range.
    pub fn ex(&self) -> bool {
        self.bit(1, field::Q1_EX)
    }
    /// SysMgt (bits 105:104): system management message handling.
    pub fn sysmgt(&self) -> u8 {
        get(self.q[1], field::Q1_SYSMGT) as u8
    }
    /// SATS (bit 106): secure ATS (newer revisions; reserved before).
    pub fn sats(&self) -> bool {
        self.bit(1, field::Q1_SATS)
    }
    /// IV (bit 128): interrupt map valid.
    pub fn iv(&self) -> bool {
        self.bit(2, field::Q2_IV)
    }
    /// IntTabLen (bits 132:129): log2 of the interrupt table entries.
    pub fn int_tab_len(&self) -> u8 {
        get(self.q[2], field::Q2_INT_TAB_LEN) as u8
    }
    /// IG (bit 133): ignore unmapped interrupts.
    pub fn ig(&self) -> bool {
        self.bit(2, field::Q2_IG)
    }
    /// Interrupt Table Root Pointer (bits 179:134, 64-byte granular).
    pub fn int_table_root(&self) -> PhysAddr {
        PhysAddr(self.q[2] & field::Q2_INT_TABLE_ROOT)
    }
    /// IntCtl (bits 189:188): fixed/arbitrated interrupt control.
    pub fn int_ctl(&self) -> u8 {
        get(self.q[2], field::Q2_INT_CTL) as u8
    }
    /// AttrV (bit 246): attribute override valid (see [`field::Q3_ATTR_V`]).
    pub fn attr_v(&self) -> bool {
        self.bit(3, field::Q3_ATTR_V)
    }
    /// Mode0FC (bit 247): the force-coherent value for Mode 0 (see [`field::Q3_MODE0_FC`]).
    pub fn mode0_fc(&self) -> bool {
        self.bit(3, field::Q3_MODE0_FC)
    }
    /// SnoopAttr (bits 255:248), raw (see [`field::Q3_SNOOP_ATTR`]).
    pub fn snoop_attr(&self) -> u8 {
        get(self.q[3], field::Q3_SNOOP_ATTR) as u8
    }

    /// Whether the entry asks for guest (GVA/nested) translation, GV = 1, which snoopsim does
    /// not model: a walker should refuse such an entry with a clear simulator error rather
    /// than translate it as host-only.
    pub fn guest_translation_requested(&self) -> bool {
        self.gv()
    }

    /// Set reserved bits, one mask per word (`[0; 4]` = none). For system address width
    /// `haw`:
    ///
    /// * q0: bits 6:2 and 63 (Q-AMD `AMDVI_DTE_QUAD0_RESERVED` = GENMASK(6,2) | bit 63; VBOX
    ///   `u5Rsvd0`, `u1Rsvd0`), and root-pointer bits at or above `haw`;
    /// * q1: nothing (Q-AMD `AMDVI_DTE_QUAD1_RESERVED` 0; bit 106 is SATS in the current
    ///   layout, F-AMD `sats`, though VBOX still calls it reserved);
    /// * q2: bits 181:180 (Q-AMD `AMDVI_DTE_QUAD2_RESERVED` GENMASK(53,52)) and
    ///   interrupt-table-root bits at or above `haw`;
    /// * q3: bits 206:192 and 244:240 (Q-AMD `AMDVI_DTE_QUAD3_RESERVED` GENMASK(14,0) |
    ///   GENMASK(53,48) without bit 245, which F-AMD marks "Not Checked, sw avail").
    ///
    /// Reserved-bit checks apply to a valid entry; what a walker does with them (log
    /// ILLEGAL_DEV_TABLE_ENTRY with RZ) is the walker's business.
    pub fn reserved_bits(&self, haw: u8) -> [u64; 4] {
        use field::*;
        let above = !haw_mask(haw);
        [
            self.q[0] & (Q0_RSVD | (Q0_PT_ROOT & above)),
            self.q[1] & Q1_RSVD,
            self.q[2] & (Q2_RSVD | (Q2_INT_TABLE_ROOT & above)),
            self.q[3] & Q3_RSVD,
        ]
    }
}

/// Every DTE bit position, as in-place masks on one word (a `Qn_` prefix names the word;
/// word n holds DTE bits 64n+63..64n). §2.2.2.1; each line names its public source.
pub mod field {
    /// V, bit 0 (L-AMDT `DTE_FLAG_V`).
    pub const Q0_V: u64 = 1 << 0;
    /// TV, bit 1 (L-AMDT `DTE_FLAG_TV`).
    pub const Q0_TV: u64 = 1 << 1;
    /// Reserved bits 6:2 and 63 (Q-AMD `AMDVI_DTE_QUAD0_RESERVED`; VBOX
    /// `IOMMU_DTE_QWORD_0_VALID_MASK` 0x7fffffffffffff83).
    pub const Q0_RSVD: u64 = 0x8000_0000_0000_007c;
    /// HAD, bits 8:7 (L-AMDT `DTE_FLAG_HAD` 3 << 7).
    pub const Q0_HAD: u64 = 0x3 << 7;
    /// Mode, bits 11:9 (L-AMDT `DEV_ENTRY_MODE_SHIFT` 9, `DEV_ENTRY_MODE_MASK` 7).
    pub const Q0_MODE: u64 = 0x7 << 9;
    /// Host Page Table Root Pointer, bits 51:12 (Q-AMD `AMDVI_DEV_PT_ROOT_MASK`).
    pub const Q0_PT_ROOT: u64 = 0x000f_ffff_ffff_f000;
    /// PPR, bit 52 (L-AMDT `DEV_ENTRY_PPR` 0x34).
    pub const Q0_PPR: u64 = 1 << 52;
    /// GPRP, bit 53 (VBOX `u1GstPprRespPasid`).
    pub const Q0_GPRP: u64 = 1 << 53;
    /// GIoV, bit 54 (L-AMDT `DTE_FLAG_GIOV`).
    pub const Q0_GIOV: u64 = 1 << 54;
    /// GV, bit 55 (L-AMDT `DTE_FLAG_GV`).
    pub const Q0_GV: u64 = 1 << 55;
    /// GLX, bits 57:56 (L-AMDT `DTE_GLX_SHIFT` 56, `DTE_GLX_MASK` 3).
    pub const Q0_GLX: u64 = 0x3 << 56;
    /// GCR3\[14:12\], bits 60:58 (L-AMDT `DTE_GCR3_SHIFT_A` 58).
    pub const Q0_GCR3_A: u64 = 0x7 << 58;
    /// IR, bit 61 (L-AMDT `DTE_FLAG_IR`).
    pub const Q0_IR: u64 = 1 << 61;
    /// IW, bit 62 (L-AMDT `DTE_FLAG_IW`).
    pub const Q0_IW: u64 = 1 << 62;

    /// DomainID, bits 79:64 (L-AMDT `DEV_DOMID_MASK` 0xffff).
    pub const Q1_DOMAIN_ID: u64 = 0xffff;
    /// GCR3\[30:15\], bits 95:80 (L-AMDT `DTE_GCR3_SHIFT_B` 16 in `data[1]`).
    pub const Q1_GCR3_B: u64 = 0xffff << 16;
    /// I, bit 96: device IOTLB enable (L-AMDT `DTE_FLAG_IOTLB` bit 32 of `data[1]`).
    pub const Q1_I: u64 = 1 << 32;
    /// SE, bit 97 (VBOX `u1SuppressPfEvents`).
    pub const Q1_SE: u64 = 1 << 33;
    /// SA, bit 98 (L-AMDT `DEV_ENTRY_NO_PAGE_FAULT` 0x62).
    pub const Q1_SA: u64 = 1 << 34;
    /// IoCtl, bits 100:99 (VBOX `u2IoCtl`).
    pub const Q1_IOCTL: u64 = 0x3 << 35;
    /// Cache, bit 101 (VBOX `u1Cache`).
    pub const Q1_CACHE: u64 = 1 << 37;
    /// SD, bit 102: "Snoop Disable" (VBOX `u1SnoopDisable`, F-AMD `sd`). What it does is not
    /// in any public source read: no driver sets it (Linux defines no DTE SD flag). It is
    /// taken to be the "global" no-snoop control Gunthorpe alludes to ("AMD also documents
    /// such a HW capability", commit 6043257b1de0) only as a hypothesis: UNCONFIRMED.
    pub const Q1_SD: u64 = 1 << 38;
    /// EX, bit 103 (L-AMDT `DEV_ENTRY_EX` 0x67).
    pub const Q1_EX: u64 = 1 << 39;
    /// SysMgt, bits 105:104 (L-AMDT `DEV_ENTRY_SYSMGT1/2` 0x68/0x69).
    pub const Q1_SYSMGT: u64 = 0x3 << 40;
    /// SATS, bit 106: secure ATS (F-AMD `sats`; OSDev rev 3.11 table). Reserved in older
    /// revisions (VBOX `u1Rsvd1`, `IOMMU_DTE_QWORD_1_VALID_MASK` 0xfffffbffffffffff).
    pub const Q1_SATS: u64 = 1 << 42;
    /// GCR3\[51:31\], bits 127:107 (L-AMDT `DTE_GCR3_SHIFT_C` 43).
    pub const Q1_GCR3_C: u64 = 0x1f_ffff << 43;
    /// Reserved q1 bits: none in the current layout (Q-AMD `AMDVI_DTE_QUAD1_RESERVED` 0).
    pub const Q1_RSVD: u64 = 0;

    /// IV, bit 128 (L-AMDT `DEV_ENTRY_IRQ_TBL_EN` 0x80).
    pub const Q2_IV: u64 = 1 << 0;
    /// IntTabLen, bits 132:129 (L-AMDT `DTE_INTTABLEN_MASK` 0xf << 1).
    pub const Q2_INT_TAB_LEN: u64 = 0xf << 1;
    /// IG, bit 133 (VBOX `IOMMU_DTE_GET_IG`).
    pub const Q2_IG: u64 = 1 << 5;
    /// Interrupt Table Root Pointer, bits 179:134 (L-AMDT `DTE_IRQ_PHYS_ADDR_MASK`
    /// GENMASK(51, 6)).
    pub const Q2_INT_TABLE_ROOT: u64 = 0x000f_ffff_ffff_ffc0;
    /// Reserved bits 181:180 (Q-AMD `AMDVI_DTE_QUAD2_RESERVED` GENMASK(53,52)); 183:182 are
    /// GuestPagingMode and 187 HPTMode in the current layout (F-AMD `gpm`, `hptmode`).
    pub const Q2_RSVD: u64 = 0x3 << 52;
    /// IntCtl, bits 189:188 (L-AMDT `DTE_IRQ_REMAP_INTCTL_MASK` 3 << 60).
    pub const Q2_INT_CTL: u64 = 0x3 << 60;

    /// Reserved bits 206:192 and 244:240 (Q-AMD `AMDVI_DTE_QUAD3_RESERVED` GENMASK(14,0) |
    /// GENMASK(53,48), less bit 245, F-AMD `rsrv5` "Not Checked, sw avail").
    pub const Q3_RSVD: u64 = 0x7fff | (0x1f << 48);
    /// AttrV, bit 246: "Attribute Override" (VBOX `u1AttrOverride`), "Attr Override Valid"
    /// (F-AMD `attrv`). Behaviour: UNCONFIRMED.
    pub const Q3_ATTR_V: u64 = 1 << 54;
    /// Mode0FC, bit 247 (VBOX `u1Mode0FC`), "Replace for PTE.FC" (F-AMD `mode0fc`): read as
    /// the FC value applied when Mode = 0 (no page table to carry FC). UNCONFIRMED.
    pub const Q3_MODE0_FC: u64 = 1 << 55;
    /// SnoopAttr, bits 255:248 (VBOX `u8SnoopAttr`), "GuestPTE.PAT -> ATS.N xlat" (F-AMD
    /// `snoopattr`): a per-PAT-type table of the ATS N (no-snoop) bit. Kept raw: UNCONFIRMED.
    pub const Q3_SNOOP_ATTR: u64 = 0xff << 56;
}
