//! AMD-Vi structure layouts checked against vectors derived by hand from the bit positions
//! of the AMD IOMMU Specification (pub. 48882 rev. 3.x) as the Linux, QEMU, VirtualBox and
//! FreeBSD headers spell them (each test's comment shows the derivation), plus the
//! driver-style builder, whose writes are applied to a `SparseMemory` and walked by hand with
//! literal bit positions, not with the crate's accessors.

use amdvi::cmd::*;
use amdvi::dte::*;
use amdvi::event::*;
use amdvi::pte::*;
use amdvi::regs::*;
use amdvi::tables::*;
use model_core::{PhysAddr, SparseMemory};

// ---------------------------------------------------------------------------------------
// Device table entry (§2.2.2.1)
// ---------------------------------------------------------------------------------------

#[test]
fn dte_v_tv_mode4_root_ir_iw_domain7_is_q0_0x6000000012345803_q1_7() {
    // q0 = V (bit 0) 0x1 | TV (bit 1) 0x2 | Mode 4 in bits 11:9 (4 << 9 = 0x800) | root
    // 0x1234_5000 in bits 51:12 | IR (bit 61) 0x2000_0000_0000_0000 | IW (bit 62)
    // 0x4000_0000_0000_0000 = 0x6000_0000_1234_5803. q1 = DomainID 7 in bits 79:64 = 7.
    let e = DeviceTableEntry::new(DteFields {
        v: true,
        tv: true,
        mode: 4,
        pt_root: PhysAddr(0x1234_5000),
        ir: true,
        iw: true,
        domain_id: 7,
        ..DteFields::default()
    });
    assert_eq!(e.q, [0x6000_0000_1234_5803, 7, 0, 0]);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&[0x03, 0x58, 0x34, 0x12, 0, 0, 0, 0x60]);
    bytes[8] = 7;
    assert_eq!(e.to_le_bytes(), bytes);
    let d = DeviceTableEntry::from_le_bytes(&bytes);
    assert_eq!(d, e);
    assert!(d.v() && d.tv() && d.ir() && d.iw());
    assert_eq!((d.mode(), d.domain_id()), (4, 7));
    assert_eq!(d.pt_root(), PhysAddr(0x1234_5000));
    assert!(!d.gv() && !d.guest_translation_requested() && !d.sd());
    assert_eq!(d.reserved_bits(48), [0; 4]);
    assert_eq!(DeviceTableEntry::BYTES, 32);
}

#[test]
fn dte_q1_flags_and_q3_attribute_fields_sit_at_their_bits() {
    // q1: I bit 96 -> q1 bit 32; SE 97 -> 33; SA 98 -> 34; IoCtl 100:99 = 2 -> 0b10 << 35;
    // Cache 101 -> 37; SD 102 -> 38; EX 103 -> 39; SysMgt 105:104 = 3 -> 3 << 40.
    // q3: AttrV 246 -> q3 bit 54; Mode0FC 247 -> 55; SnoopAttr 255:248 = 0xa5 -> 0xa5 << 56.
    let e = DeviceTableEntry::new(DteFields {
        v: true,
        domain_id: 0xbeef,
        i: true,
        se: true,
        sa: true,
        ioctl: 2,
        cache: true,
        sd: true,
        ex: true,
        sysmgt: 3,
        attr_v: true,
        mode0_fc: true,
        snoop_attr: 0xa5,
        ..DteFields::default()
    });
    let q1 = 0xbeef | 1 << 32 | 1 << 33 | 1 << 34 | 2 << 35 | 1 << 37 | 1 << 38 | 1 << 39 | 3 << 40;
    assert_eq!(e.q, [1, q1, 0, 1 << 54 | 1 << 55 | 0xa5 << 56]);
    assert!(e.i() && e.se() && e.sa() && e.cache() && e.sd() && e.ex());
    assert_eq!((e.ioctl(), e.sysmgt(), e.domain_id()), (2, 3, 0xbeef));
    assert!(e.attr_v() && e.mode0_fc());
    assert_eq!(e.snoop_attr(), 0xa5);
    // None of these is reserved.
    assert_eq!(e.reserved_bits(52), [0; 4]);
}

#[test]
fn dte_gcr3_is_assembled_from_three_pieces_and_gv_is_reported() {
    // GCR3 = 0x000a_bcde_f123_4000: [14:12] = 0b100 -> q0 bits 60:58; [30:15] = 0xe246
    // -> q1 bits 31:16; [51:31] = 0x1579b -> q1 bits 63:43 (L-AMDT DTE_GCR3_VAL_A/B/C).
    let gcr3: u64 = 0x000a_bcde_f123_4000;
    let a = (gcr3 >> 12) & 0x7;
    let b = (gcr3 >> 15) & 0xffff;
    let c = (gcr3 >> 31) & 0x1f_ffff;
    assert_eq!((a, b, c), (0b100, 0xe246, 0x1579bd));
    let e = DeviceTableEntry {
        q: [1 | 1 << 55 | 2 << 56 | a << 58, b << 16 | c << 43, 0, 0],
    };
    assert_eq!(e.gcr3(), PhysAddr(gcr3));
    assert!(e.gv() && e.guest_translation_requested());
    assert_eq!(e.glx(), 2);
}

#[test]
fn dte_reserved_bits_follow_qemu_quad_masks_and_haw() {
    // Reserved (Q-AMD after ff3dcb3bf652): q0 6:2 and 63; q1 none; q2 bits 53:52 (DTE
    // 181:180); q3 bits 14:0 and 52:48 (DTE 206:192, 244:240); bit 245 (q3 bit 53) is
    // "not checked" (F-AMD). Plus root bits >= haw and interrupt-root bits >= haw.
    let e = DeviceTableEntry {
        q: [
            1 | 1 << 2 | 1 << 7 | 1 << 63 | 1 << 50 | 0x1000,
            1 << 42, // SATS: not reserved in the current layout
            1 << 52 | 1 << 54 | 1 << 49 | 1 << 59,
            1 | 1 << 14 | 1 << 15 | 1 << 48 | 1 << 52 | 1 << 53 | 1 << 54,
        ],
    };
    assert_eq!(
        e.reserved_bits(48),
        [
            1 << 2 | 1 << 63 | 1 << 50,
            0,
            1 << 52 | 1 << 49,
            1 | 1 << 14 | 1 << 48 | 1 << 52
        ]
    );
    // With haw 52 the address bits are no longer reserved.
    assert_eq!(e.reserved_bits(52)[0], 1 << 2 | 1 << 63);
    assert_eq!(e.reserved_bits(52)[2], 1 << 52);
    // HAD (8:7) is a field, not reserved; mode 7 is an invalid encoding, not a reserved bit.
    let e = DeviceTableEntry {
        q: [1 | 3 << 7 | 7 << 9, 0, 0, 0],
    };
    assert_eq!((e.had(), e.mode()), (3, MODE_RESERVED));
    assert_eq!(e.reserved_bits(48), [0; 4]);
}

// ---------------------------------------------------------------------------------------
// I/O page-table entries (§2.2.3)
// ---------------------------------------------------------------------------------------

#[test]
fn pte_leaf_and_pde_vectors() {
    // Leaf (Linux iommu_v1_map_pages, count 1): PR | paddr | FC | IR | IW =
    // 0x1 | 0x1234_5000 | 1 << 60 | 1 << 61 | 1 << 62 = 0x7000_0000_1234_5001.
    let l = IoPte::leaf(PhysAddr(0x1234_5000), true, true, true, false);
    assert_eq!(l.0, 0x7000_0000_1234_5001);
    assert!(l.pr() && l.fc() && l.ir() && l.iw() && !l.u() && l.is_leaf());
    assert_eq!(l.next_level(), 0);
    assert_eq!(l.page_base(), Some(PhysAddr(0x1234_5000)));
    // U is bit 59.
    assert_eq!(
        IoPte::leaf(PhysAddr(0x1000), false, true, false, true).0,
        0x1 | 0x1000 | 1 << 59 | 1 << 61
    );
    // PDE (L-AMDT PM_LEVEL_PDE(3, 0x9000)): 0x9000 | 3 << 9 (0x600) | PR | IR | IW
    // = 0x6000_0000_0000_9601.
    let p = IoPte::pde(PhysAddr(0x9000), 3, true, true);
    assert_eq!(p.0, 0x6000_0000_0000_9601);
    assert_eq!((p.next_level(), p.addr()), (3, PhysAddr(0x9000)));
    assert!(!p.is_leaf() && p.page_base().is_none());
    // A and D are bits 5 and 6.
    assert!(IoPte(0x20).a() && IoPte(0x40).d());
}

#[test]
fn sized_leaf_matches_linux_page_size_pte_for_8k_16k_2m_1g() {
    // PAGE_SIZE_PTE(pa, size) = ((pa | (size-1)) & ~(size >> 1)) & PM_ADDR_MASK, pa = 1 GiB:
    //   8K : (0x4000_0000 | 0x1fff) & ~0x1000           -> 0x4000_0fff -> 0x4000_0000
    //   16K: (0x4000_0000 | 0x3fff) & ~0x2000           -> 0x4000_1fff -> 0x4000_1000
    //   2M : (0x4000_0000 | 0x1f_ffff) & ~0x10_0000      -> 0x400f_ffff -> 0x400f_f000
    //   1G : (0x4000_0000 | 0x3fff_ffff) & ~0x2000_0000  -> 0x5fff_ffff -> 0x5fff_f000
    // Entry = that | PM_LEVEL_ENC(7) (0xe00) | PR | FC | IR | IW (0x7000_0000_0000_0001).
    let pa = PhysAddr(0x4000_0000);
    let cases = [
        (8u64 << 10, 0x7000_0000_4000_0e01u64),
        (16 << 10, 0x7000_0000_4000_1e01),
        (2 << 20, 0x7000_0000_400f_fe01),
        (1 << 30, 0x7000_0000_5fff_fe01),
    ];
    for (size, want) in cases {
        let e = IoPte::sized_leaf(pa, size, true, true, true).expect("valid size");
        assert_eq!(e.0, want, "size {size:#x}");
        assert_eq!(e.next_level(), 7);
        assert_eq!(e.encoded_page_size(), Some(size));
        assert_eq!(e.page_base(), Some(pa));
    }
}

#[test]
fn encoded_page_size_inverts_sized_leaf_for_every_size() {
    // PTE_PAGE_SIZE(pte) = 1 << (1 + ffz(pte | 0xfff)): k ones above bit 11 -> 2^(13 + k).
    for lg2 in 13..=51u32 {
        let size = 1u64 << lg2;
        let e = IoPte::sized_leaf(PhysAddr(0), size, false, true, false).expect("valid");
        assert_eq!(e.encoded_page_size(), Some(size), "2^{lg2}");
        assert_eq!((e.0 >> 12).trailing_ones(), lg2 - 13);
    }
    // Not NL 7, or all 40 address bits set: no size.
    assert_eq!(IoPte(0x1 | 0xfff_f000).encoded_page_size(), None);
    assert_eq!(
        IoPte(0x1 | 0xe00 | 0x000f_ffff_ffff_f000).encoded_page_size(),
        None
    );
    // Refused: 4 KiB (a NL 0 leaf), misaligned pa, not a power of two, beyond 2^51.
    assert!(IoPte::sized_leaf(PhysAddr(0), 4096, false, true, true).is_none());
    assert!(IoPte::sized_leaf(PhysAddr(0x1000), 8192, false, true, true).is_none());
    assert!(IoPte::sized_leaf(PhysAddr(0), 12288, false, true, true).is_none());
    assert!(IoPte::sized_leaf(PhysAddr(0), 1 << 52, false, true, true).is_none());
}

#[test]
fn pte_and_pde_reserved_masks_follow_vbox_and_haw() {
    // VBOX: PTE 58:52 = 0x07f0_0000_0000_0000, PDE 60:52 = 0x1ff0_0000_0000_0000. haw 48 adds
    // address bits 51:48 = 0x000f_0000_0000_0000.
    assert_eq!(IoPte::reserved_mask(false, 52), 0x07f0_0000_0000_0000);
    assert_eq!(IoPte::reserved_mask(true, 52), 0x1ff0_0000_0000_0000);
    assert_eq!(IoPte::reserved_mask(false, 48), 0x07ff_0000_0000_0000);
    assert_eq!(IoPte::reserved_mask(true, 48), 0x1fff_0000_0000_0000);
    // U (59) and FC (60) are reserved only in a PDE.
    let uf = 1u64 << 59 | 1 << 60;
    assert_eq!(IoPte::reserved_mask(false, 52) & uf, 0);
    assert_eq!(IoPte::reserved_mask(true, 52) & uf, uf);
}

#[test]
fn level_arithmetic_matches_pm_level_shift_and_page_size_pte_count() {
    // PM_LEVEL_SHIFT(x) = 12 + 9x with Linux's 0-based x = level - 1.
    let shifts: Vec<u32> = (1..=6).map(level_shift).collect();
    assert_eq!(shifts, [12, 21, 30, 39, 48, 57]);
    // Index of 0x0000_7fff_ffff_f000 at level 4 = bits 47:39 = 0xff; at level 1 = 0x1ff.
    assert_eq!(index(0x0000_7fff_ffff_f000, 4), 0xff);
    assert_eq!(index(0x0000_7fff_ffff_f000, 1), 0x1ff);
    // Level 6 indexes bits 63:57 only.
    assert_eq!(index(u64::MAX, 6), 0x7f);
    assert_eq!(natural_page_size(2), Some(2 << 20));
    assert_eq!(natural_page_size(3), Some(1 << 30));
    assert_eq!(iova_bits(3), 39);
    assert_eq!(iova_bits(6), 64);
    // PAGE_SIZE_LEVEL + 1 and PAGE_SIZE_PTE_COUNT: (lg2 - 12) / 9 + 1, 1 << ((lg2 - 12) % 9).
    assert_eq!(placement(4096), Some((1, 1)));
    assert_eq!(placement(8192), Some((1, 2)));
    assert_eq!(placement(64 << 10), Some((1, 16)));
    assert_eq!(placement(1 << 20), Some((1, 256)));
    assert_eq!(placement(2 << 20), Some((2, 1)));
    assert_eq!(placement(512 << 20), Some((2, 256)));
    assert_eq!(placement(1 << 30), Some((3, 1)));
    assert_eq!(placement(1 << 51), Some((5, 8)));
    assert_eq!(placement(1 << 52), None);
    assert_eq!(placement(2048), None);
    // NL 7 legal only above the natural size and below the next level's.
    assert!(sized_leaf_legal(1, 8192) && sized_leaf_legal(1, 1 << 20));
    assert!(!sized_leaf_legal(1, 4096) && !sized_leaf_legal(1, 2 << 20));
    assert!(!sized_leaf_legal(2, 2 << 20) && sized_leaf_legal(2, 4 << 20));
    assert!(sized_leaf_legal(5, 1 << 51) && !sized_leaf_legal(6, 1 << 51));
    // A PDE at level 4 skipping to level 1 skips levels 2 and 3: IOVA bits 38:21.
    assert_eq!(skipped_bits(4, 1), 0x7f_ffe0_0000);
    assert_eq!(skipped_bits(4, 3), 0);
}

// ---------------------------------------------------------------------------------------
// Commands (§2.4)
// ---------------------------------------------------------------------------------------

#[test]
fn completion_wait_carries_store_address_and_data() {
    // Linux build_completion_wait(paddr 0x1234_5678): data[0] = lower32(paddr) | S (0x1),
    // data[1] = upper32(paddr) | 1 << 28 (CMD_SET_TYPE), data[2..3] = the 64-bit data.
    // QW0 = 0x1000_0000_1234_5679.
    let linux = [0x1000_0000_1234_5679, 0xdead_beef_0000_0001];
    let c = Command::decode(linux).expect("legal");
    assert_eq!(
        c,
        Command::CompletionWait {
            store: Some((PhysAddr(0x1234_5678), 0xdead_beef_0000_0001)),
            interrupt: false,
            flush_queue: false,
        }
    );
    assert_eq!(c.encode(), linux);
    // I is bit 1, F bit 2; no store: QW0 = 1 << 60 | 0b110.
    let c = Command::CompletionWait {
        store: None,
        interrupt: true,
        flush_queue: true,
    };
    assert_eq!(c.encode(), [0x1000_0000_0000_0006, 0]);
    assert_eq!(Command::decode(c.encode()), Ok(c));
    assert_eq!(c.opcode(), 1);
    // Bits 59:52 are reserved.
    assert!(matches!(
        Command::decode([0x1010_0000_0000_0001, 0]),
        Err(CmdError::ReservedBitsSet {
            bits: [0x0010_0000_0000_0000, 0],
            ..
        })
    ));
}

#[test]
fn invalidate_devtab_entry_and_interrupt_table_and_all() {
    // DeviceID in bits 15:0, opcode 2 / 5 / 8 in 63:60, everything else reserved.
    let c = Command::InvalidateDevtabEntry { device_id: 0x0100 };
    assert_eq!(c.encode(), [0x2000_0000_0000_0100, 0]);
    assert_eq!(Command::decode(c.encode()), Ok(c));
    let c = Command::InvalidateInterruptTable { device_id: 0x00ff };
    assert_eq!(c.encode(), [0x5000_0000_0000_00ff, 0]);
    assert_eq!(Command::decode(c.encode()), Ok(c));
    assert_eq!(
        Command::InvalidateIommuAll.encode(),
        [0x8000_0000_0000_0000, 0]
    );
    assert_eq!(
        Command::decode([0x8000_0000_0000_0000, 0]),
        Ok(Command::InvalidateIommuAll)
    );
    assert!(matches!(
        Command::decode([0x2000_0000_0000_0100, 1]),
        Err(CmdError::ReservedBitsSet { bits: [0, 1], .. })
    ));
    assert!(Command::decode([0x2000_0000_0001_0000, 0]).is_err());
    assert!(Command::decode([0x8000_0000_0000_0001, 0]).is_err());
}

#[test]
fn invalidate_all_pages_matches_linux_flush_tlb_domid_quadwords() {
    // amd_iommu_flush_tlb_domid(dom 7): build_inv_iommu_pages(0, size
    // CMD_INV_IOMMU_ALL_PAGES_ADDRESS, 7): build_inv_address(0, 0x7fff...ff): msb_diff =
    // fls64(0x7fff_ffff_ffff_fffe) - 1 = 62 > 51 -> address = 0x7fff_ffff_ffff_ffff,
    // & PAGE_MASK, | S -> 0x7fff_ffff_ffff_f001. data[1] = 7 | 3 << 28; data[2] =
    // 0xffff_f001 | PDE (0x2) = 0xffff_f003; data[3] = 0x7fff_ffff.
    // QW0 = 0x3000_0007_0000_0000, QW1 = 0x7fff_ffff_ffff_f003.
    let c = Command::linux_inv_iommu_pages(7, 0, 0x7fff_ffff_ffff_ffff);
    assert_eq!(c.encode(), [0x3000_0007_0000_0000, 0x7fff_ffff_ffff_f003]);
    assert_eq!(
        c,
        Command::InvalidateIommuPages {
            domain_id: 7,
            pasid: 0,
            address: ALL_PAGES_ADDRESS,
            size: true,
            pde: true,
            guest: false,
        }
    );
    assert_eq!(Command::decode(c.encode()), Ok(c));
    assert_eq!(c.invalidation_range(), Some((0, u64::MAX)));
}

#[test]
fn invalidate_iommu_pages_ranges_follow_build_inv_address() {
    // One page: address & PAGE_MASK, S = 0, PDE = 1 -> QW1 = 0x1234_5000 | 0x2.
    let c = Command::linux_inv_iommu_pages(1, 0x1234_5678, 8);
    assert_eq!(c.encode(), [0x3000_0001_0000_0000, 0x1234_5002]);
    assert_eq!(c.invalidation_range(), Some((0x1234_5000, 0x1234_5fff)));
    // 0x1000 + 0x2000: end 0x2fff, msb_diff = fls64(0x3fff) - 1 = 13; address |= 0x1fff,
    // & PAGE_MASK -> 0x1000, | S. Bit 12 set, bit 13 clear: a 16 KiB range at 0.
    let c = Command::linux_inv_iommu_pages(1, 0x1000, 0x2000);
    assert_eq!(c.encode()[1], 0x1003);
    assert_eq!(c.invalidation_range(), Some((0, 0x3fff)));
    // 2 MiB at 2 MiB: msb_diff = 20, address | 0xf_ffff -> 0x2f_f000 | S; ones 12..19 ->
    // 2^21 bytes from 0x20_0000.
    let c = Command::linux_inv_iommu_pages(1, 0x20_0000, 0x20_0000);
    assert_eq!(c.encode()[1], 0x2f_f003);
    assert_eq!(c.invalidation_range(), Some((0x20_0000, 0x3f_ffff)));
    // Field layout: PASID 19:0, DomainID 47:32, S/PDE/GN bits 64/65/66, address 127:76.
    let c = Command::InvalidateIommuPages {
        domain_id: 0xabcd,
        pasid: 0x12345,
        address: 0xffff_8000_0000_0000,
        size: false,
        pde: false,
        guest: true,
    };
    assert_eq!(c.encode(), [0x3000_abcd_0001_2345, 0xffff_8000_0000_0004]);
    assert_eq!(Command::decode(c.encode()), Ok(c));
    // Reserved: QW0 31:20 and 59:48, QW1 11:3.
    for bad in [
        [0x3000_0000_0010_0000u64, 0],
        [0x3001_0000_0000_0000, 0],
        [0x3000_0000_0000_0000, 0x8],
    ] {
        assert!(Command::decode(bad).is_err(), "{bad:x?}");
    }
    assert_eq!(Command::InvalidateIommuAll.invalidation_range(), None);
}

#[test]
fn raw_commands_and_illegal_opcodes() {
    // Linux build_inv_iotlb_pages(devid 0x100, qdep 32, address 0x1000, size 4096): data[0]
    // = 0x100 | 32 << 24, data[1] = 0x100 | 4 << 28, QW1 = 0x1000.
    let iotlb = [0x4000_0100_2000_0100, 0x1000];
    let c = Command::decode(iotlb).expect("legal");
    assert_eq!(c, Command::InvalidateIotlbPages { raw: iotlb });
    assert_eq!(c.encode(), iotlb);
    // build_complete_ppr(devid 5, status 1, tag 3): data[0] = 5, data[1] = 7 << 28,
    // data[3] = 3 | 1 << 12.
    let ppr = [0x7000_0000_0000_0005, 0x0000_1003_0000_0000];
    assert_eq!(
        Command::decode(ppr),
        Ok(Command::CompletePprRequest { raw: ppr })
    );
    let pref = [0x6000_0000_0000_0001, 0x1000];
    assert_eq!(
        Command::decode(pref),
        Ok(Command::PrefetchIommuPages { raw: pref })
    );
    for op in [0u64, 9, 0xa, 0xf] {
        assert_eq!(
            Command::decode([op << 60, 0]),
            Err(CmdError::IllegalOpcode { opcode: op as u8 })
        );
    }
    // IOTLB reserved bits 65 and 67.
    assert!(Command::decode([0x4000_0000_0000_0000, 0x2]).is_err());
}

// ---------------------------------------------------------------------------------------
// Events (§2.5)
// ---------------------------------------------------------------------------------------

#[test]
fn io_page_fault_fields_sit_at_their_bits() {
    // DeviceID 0x0100 (01:00.0) in 15:0; DomainID 1 in 47:32; PR 52, RW 53, PE 54, RZ 55;
    // code 2 in 63:60. QW0 = 0x2000_0000_0000_0000 | 0x00f0_0000_0000_0000 |
    // 0x0000_0001_0000_0000 | 0x0100 = 0x20f0_0001_0000_0100; QW1 = the IOVA.
    let e = Event::IoPageFault {
        device_id: 0x0100,
        domain_or_pasid: 1,
        pasid_hi: 0,
        flags: IoPageFaultFlags {
            pr: true,
            rw: true,
            pe: true,
            rz: true,
            ..IoPageFaultFlags::default()
        },
        address: 0xdead_b000,
    };
    let qw = e.encode();
    assert_eq!(qw, [0x20f0_0001_0000_0100, 0xdead_b000]);
    // Linux's view (iommu_print_event, 32-bit words): event[1] = QW0 >> 32; type = event[1]
    // >> 28 = 2; flags = (event[1] >> 16) & 0xfff = 0x0f0 (EVENT_FLAG_RW 0x020 set,
    // EVENT_FLAG_I 0x008 clear); domain = event[1] & 0xffff = 1.
    let ev1 = (qw[0] >> 32) as u32;
    assert_eq!(
        (ev1 >> 28, (ev1 >> 16) & 0xfff, ev1 & 0xffff),
        (2, 0x0f0, 1)
    );
    assert_eq!(Event::decode(qw), Some(e));
    assert_eq!(e.code(), EventCode::IoPageFault);
    assert_eq!(
        e.describe(),
        "IO_PAGE_FAULT device 01:00.0 domain 1 address 0xdeadb000 (write, present, permission, reserved bit)"
    );
    let nf = Event::IoPageFault {
        device_id: 0x0100,
        domain_or_pasid: 1,
        pasid_hi: 0,
        flags: IoPageFaultFlags {
            rw: true,
            ..IoPageFaultFlags::default()
        },
        address: 0x1000,
    };
    assert_eq!(
        nf.describe(),
        "IO_PAGE_FAULT device 01:00.0 domain 1 address 0x1000 (write, not present)"
    );
    // GN 48, NX 49, US 50, I 51, TN 56; PASID[19:16] in 19:16.
    let all = IoPageFaultFlags {
        gn: true,
        nx: true,
        us: true,
        i: true,
        pr: true,
        rw: true,
        pe: true,
        rz: true,
        tn: true,
    };
    assert_eq!(all.bits(), 0x01ff_0000_0000_0000);
    let e = Event::IoPageFault {
        device_id: 0,
        domain_or_pasid: 0x2345,
        pasid_hi: 1,
        flags: all,
        address: 0,
    };
    assert_eq!(e.encode()[0], 0x21ff_2345_0001_0000);
}

#[test]
fn other_events_encode_and_decode() {
    // ILLEGAL_DEV_TABLE_ENTRY, PASID 0x12345: 19:16 = 1, 47:32 = 0x2345; RZ 55; code 1.
    let e = Event::IllegalDevTableEntry {
        device_id: 0x00ff,
        pasid: 0x12345,
        flags: IoPageFaultFlags {
            rz: true,
            pe: true, // not defined for this event: dropped
            ..IoPageFaultFlags::default()
        },
        address: 0x4000,
    };
    assert_eq!(e.encode(), [0x1080_2345_0001_00ff, 0x4000]);
    assert!(matches!(
        Event::decode(e.encode()),
        Some(Event::IllegalDevTableEntry {
            pasid: 0x12345,
            flags: IoPageFaultFlags {
                rz: true,
                pe: false,
                ..
            },
            ..
        })
    ));
    // ILLEGAL_COMMAND_ERROR: code 5, address of the command.
    let e = Event::IllegalCommandError {
        address: PhysAddr(0x20_0010),
    };
    assert_eq!(e.encode(), [0x5000_0000_0000_0000, 0x20_0010]);
    assert_eq!(e.describe(), "ILLEGAL_COMMAND_ERROR address 0x200010");
    // PAGE_TAB_HARDWARE_ERROR: Type (58:57) = 2 (target abort), TN 56.
    let e = Event::PageTabHardwareError {
        device_id: 1,
        domain_id: 2,
        flags: IoPageFaultFlags {
            tn: true,
            ..IoPageFaultFlags::default()
        },
        kind: HwErrorType::TargetAbort,
        address: 0x8000,
    };
    assert_eq!(e.encode(), [0x4500_0002_0000_0001, 0x8000]);
    assert_eq!(Event::decode(e.encode()), Some(e));
    // Empty slot and an undefined code decode to nothing; a defined one without a typed
    // variant stays raw.
    assert_eq!(Event::decode([0, 0]), None);
    assert_eq!(Event::decode([0xf << 60, 0]), None);
    assert!(matches!(
        Event::decode([0x7 << 60 | 5, 0x1000]),
        Some(Event::Other {
            code: EventCode::IotlbInvTimeout,
            ..
        })
    ));
}

#[test]
fn event_code_table_is_complete_and_round_trips() {
    let codes: Vec<u8> = EventCode::ALL.iter().map(|c| c.code()).collect();
    assert_eq!(codes, (1..=0xe).collect::<Vec<u8>>());
    for c in EventCode::ALL {
        assert_eq!(EventCode::from_code(c.code()), Some(*c));
    }
    assert_eq!(EventCode::from_code(0), None);
    assert_eq!(EventCode::IoPageFault.name(), "IO_PAGE_FAULT");
    assert_eq!(
        EventCode::from_code(0xd).map(|c| c.name()),
        Some("RMP_PAGE_FAULT")
    );
}

#[test]
fn event_log_overflows_when_tail_would_meet_head_and_halts_until_restarted() {
    // 256 entries of 16 B = 4 KiB at 0x10_0000. The ring holds 255 events: after 255 pushes
    // the tail is at 255 * 16 = 0xff0 and the next one would make it equal to head 0.
    let base = PhysAddr(0x10_0000);
    let mut log = EventLog::new(base, 256);
    let e = Event::IllegalCommandError {
        address: PhysAddr(0x20_0000),
    };
    for i in 0..255u64 {
        let (at, qw) = log.push(&e).expect("space");
        assert_eq!(at, PhysAddr(base.0 + 16 * i));
        assert_eq!(qw, e.encode());
    }
    assert_eq!((log.tail(), log.pending()), (0xff0, 255));
    assert_eq!(log.push(&e), Err(Overflow));
    assert!(log.overflowed());
    // Software consumes 16 entries (head 0x100): logging stays halted until restarted.
    log.set_head(0x100);
    assert_eq!(log.pending(), 239);
    assert_eq!(log.push(&e), Err(Overflow));
    log.clear_overflow();
    // The next event goes to 0xff0 and the tail wraps to 0.
    assert_eq!(log.push(&e).map(|p| p.0), Ok(PhysAddr(base.0 + 0xff0)));
    assert_eq!(log.tail(), 0);
    // 15 more fit (0x000..0x0e0); the 16th would reach head 0x100.
    for i in 0..15u64 {
        assert_eq!(log.push(&e).map(|p| p.0), Ok(PhysAddr(base.0 + 16 * i)));
    }
    assert_eq!(log.push(&e), Err(Overflow));
    assert_eq!((log.logged(), log.dropped()), (271, 3));
    // The head register keeps bits 18:4 only.
    log.set_head(0x10_0000 | 0x20 | 0x7);
    assert_eq!(log.head(), 0x20);
}

// ---------------------------------------------------------------------------------------
// Registers and capabilities (§3.4)
// ---------------------------------------------------------------------------------------

#[test]
fn base_registers_encode_size_and_length() {
    // Linux iommu_set_device_table: base | (size >> 12) - 1. 2 MiB (65536 DTEs) = 512 pages
    // -> Size 0x1ff.
    let r = DevTableBase::new(PhysAddr(0x10_0000), 512).expect("valid");
    assert_eq!(r.0, 0x10_01ff);
    assert_eq!(
        (r.size_field(), r.bytes(), r.entries()),
        (0x1ff, 2 << 20, 65536)
    );
    assert!(DevTableBase::new(PhysAddr(0x10_0000), 513).is_none());
    assert!(DevTableBase::new(PhysAddr(0x10_0800), 1).is_none());
    // Linux: cmd_buf | MMIO_CMD_SIZE_512 (9 << 56) = 0x0900_0000_0020_0000.
    let r = RingBase::new(PhysAddr(0x20_0000), 512).expect("valid");
    assert_eq!(r.0, 0x0900_0000_0020_0000);
    assert_eq!((r.entries(), r.bytes()), (Some(512), Some(8192)));
    assert_eq!(RingBase(0x0700_0000_0000_0000).entries(), None);
    assert!(RingBase::new(PhysAddr(0x20_0000), 128).is_none());
    assert!(RingBase::new(PhysAddr(0x20_0000), 300).is_none());
    assert_eq!(RingBase(1 << 63).reserved_bits(), 1 << 63);
    // Control and status bits at the Linux bit numbers.
    assert_eq!(
        [
            control::IOMMU_EN,
            control::EVT_LOG_EN,
            control::COHERENT,
            control::CMD_BUF_EN
        ],
        [1, 4, 0x400, 0x1000]
    );
    assert_eq!(
        [
            status::EVT_OVERFLOW,
            status::EVT_INT,
            status::COM_WAIT_INT,
            status::EVT_RUN,
            status::CMD_RUN
        ],
        [1, 2, 4, 8, 0x10]
    );
    assert_eq!(
        [
            offset::CONTROL,
            offset::EXT_FEATURE,
            offset::CMD_TAIL,
            offset::STATUS
        ],
        [0x18, 0x30, 0x2008, 0x2020]
    );
}

#[test]
fn capabilities_default_is_valid_and_encodes_hats_6_levels() {
    let c = Capabilities::default();
    assert_eq!(c.validate(), Ok(()));
    // HATS = 6 - 4 = 2 -> bits 11:10 = 0x800; IASup bit 6 = 0x40.
    assert_eq!(c.ext_features().0, 0x840);
    assert_eq!(c.ext_features().max_levels(), Some(6));
    // The EPYC EFR the default is modelled on: HATS 10b, AttrFWSup (bit 51) set.
    let epyc = ExtFeatures(0xa5bf_732f_a229_5afe);
    assert_eq!((epyc.hats(), epyc.max_levels()), (2, Some(6)));
    assert!(epyc.has(efr::ATTR_FW_SUP) && epyc.has(efr::IA_SUP));
    assert_eq!(ExtFeatures(0xc00).max_levels(), None);
}

#[test]
fn capabilities_validate_names_the_field() {
    type Change = fn(&mut Capabilities);
    let cases: [(Change, &str); 6] = [
        (|c| c.levels = 3, "levels"),
        (|c| c.haw = 53, "haw"),
        (|c| c.event_log_entries = 300, "event_log_entries"),
        (|c| c.event_log_entries = 128, "event_log_entries"),
        (|c| c.command_entries = 65536, "command_entries"),
        (|c| c.domains = 0, "domains"),
    ];
    for (change, field) in cases {
        let mut c = Capabilities::default();
        change(&mut c);
        assert_eq!(c.validate().map_err(|e| e.field), Err(field));
    }
}

#[test]
fn capabilities_deserialize_with_defaults_and_reject_unknown_fields() {
    let c: Capabilities =
        serde_json::from_str(r#"{"levels": 4, "snoop_attr": true}"#).expect("partial config");
    assert_eq!((c.levels, c.snoop_attr, c.haw), (4, true, 48));
    assert!(c.ext_features().has(efr::ATTR_FW_SUP));
    assert!(serde_json::from_str::<Capabilities>(r#"{"level": 4}"#).is_err());
}

// ---------------------------------------------------------------------------------------
// Builder, walked by hand
// ---------------------------------------------------------------------------------------

fn apply(mem: &mut SparseMemory, writes: &[MemWrite]) {
    for w in writes {
        mem.write(w.pa, &w.bytes);
    }
}

fn read_u64(mem: &SparseMemory, pa: u64) -> u64 {
    let mut b = [0u8; 8];
    mem.read(PhysAddr(pa), &mut b);
    u64::from_le_bytes(b)
}

/// The IOMMU's walk with literal bit positions: PR bit 0, Next Level 11:9, address 51:12,
/// a level-L table indexed by IOVA bits 12 + 9(L-1) and up; NL 0 leaf = the natural page,
/// NL 7 = 2^(13 + ones above bit 11); a skipping PDE needs zeros in the skipped index bits.
fn hand_walk(mem: &SparseMemory, root: u64, levels: u32, iova: u64) -> Option<(u64, u64)> {
    let mut table = root;
    let mut level = levels;
    loop {
        let shift = 12 + 9 * (level - 1);
        let e = read_u64(mem, table + ((iova >> shift) & 0x1ff) * 8);
        if e & 1 == 0 {
            return None;
        }
        let nl = ((e >> 9) & 7) as u32;
        let addr = e & 0x000f_ffff_ffff_f000;
        let size = match nl {
            0 => 1u64 << shift,
            7 => 1u64 << (13 + (addr >> 12).trailing_ones()),
            n if n < level => {
                let lo = 12 + 9 * n;
                if shift > lo && (iova >> lo) & ((1 << (shift - lo)) - 1) != 0 {
                    return None;
                }
                table = addr;
                level = n;
                continue;
            }
            _ => return None,
        };
        return Some(((addr & !(size - 1)) | (iova & (size - 1)), size));
    }
}

fn setup(levels: u8) -> (TableAllocator, IoPageTable, SparseMemory) {
    let mut alloc = TableAllocator::new(PhysAddr(0x100_0000), 64 << 12).expect("region");
    let pt = IoPageTable::new(&mut alloc, levels).expect("root");
    (alloc, pt, SparseMemory::new())
}

#[test]
fn device_table_size_field_and_entry_address() {
    let mut alloc = TableAllocator::new(PhysAddr(0x10_0000), 1024 << 12).expect("region");
    // 256 DeviceIDs x 32 B = 8 KiB = 2 pages -> Size 1.
    let mut dt = DeviceTable::new(&mut alloc, 0x00ff).expect("table");
    assert_eq!((dt.base(), dt.size_field()), (PhysAddr(0x10_0000), 1));
    assert_eq!(dt.register().0, 0x10_0001);
    let e = DeviceTableEntry::new(DteFields {
        v: true,
        tv: true,
        mode: 3,
        pt_root: PhysAddr(0x20_0000),
        ir: true,
        iw: true,
        domain_id: 1,
        ..DteFields::default()
    });
    let mut out = Vec::new();
    // DeviceID 0x0100 is beyond a 0x00ff table; 0x00ff is the last entry, at base + 0x1fe0.
    assert!(matches!(
        dt.set(0x0100, e, &mut out),
        Err(TableError::DeviceIdOutOfRange {
            device_id: 0x0100,
            max: 0x00ff
        })
    ));
    assert!(out.is_empty());
    assert_eq!(dt.set(0x00ff, e, &mut out), Ok(PhysAddr(0x10_1fe0)));
    let mut mem = SparseMemory::new();
    apply(&mut mem, &out);
    assert_eq!(
        mem.read_vec(PhysAddr(0x10_1fe0), 32),
        e.to_le_bytes().to_vec()
    );
    assert_eq!(dt.get(0x00ff), e);
    assert_eq!(dt.get(0), DeviceTableEntry::default());
    // The full 16-bit space: 2 MiB, 512 pages, Size 0x1ff.
    let full = DeviceTable::new(&mut alloc, 0xffff).expect("table");
    assert_eq!(full.size_field(), 0x1ff);
    assert_eq!(full.register().entries(), 65536);
}

#[test]
fn map_4k_in_3_level_table_writes_linux_pdes_then_the_leaf() {
    let (mut alloc, mut pt, mut mem) = setup(3);
    let root = pt.root().0;
    let mut out = Vec::new();
    // IOVA 0x4000_3000: level-3 index (bits 38:30) 1, level-2 index (29:21) 0, level-1
    // index (20:12) 3.
    let leaf_at = pt
        .map(
            &mut alloc,
            0x4000_3000,
            PhysAddr(0x8000_5000),
            4096,
            IoPerm::LINUX_RW,
            &mut out,
        )
        .expect("mapped");
    apply(&mut mem, &out);
    assert_eq!(out.len(), 3); // PDE at level 3, PDE at level 2, leaf
    let l3 = read_u64(&mem, root + 8);
    // PM_LEVEL_PDE(2, t2) = t2 | 2 << 9 | PR | IR | IW.
    let t2 = l3 & 0x000f_ffff_ffff_f000;
    assert_eq!(l3, 0x6000_0000_0000_0401 | t2);
    let l2 = read_u64(&mem, t2);
    let t1 = l2 & 0x000f_ffff_ffff_f000;
    assert_eq!(l2, 0x6000_0000_0000_0201 | t1);
    assert_eq!(leaf_at, PhysAddr(t1 + 3 * 8));
    assert_eq!(read_u64(&mem, t1 + 24), 0x7000_0000_8000_5001);
    assert_eq!(
        hand_walk(&mem, root, 3, 0x4000_3abc),
        Some((0x8000_5abc, 4096))
    );
    assert_eq!(
        pt.lookup(0x4000_3abc).map(|(pa, s, _)| (pa.0, s)),
        Some((0x8000_5abc, 4096))
    );
    // The same page again is refused; a 2 MiB page over the same range too.
    let mut again = Vec::new();
    assert!(matches!(
        pt.map(
            &mut alloc,
            0x4000_3000,
            PhysAddr(0x9000_0000),
            4096,
            IoPerm::LINUX_RW,
            &mut again
        ),
        Err(TableError::AlreadyMapped { .. })
    ));
    assert!(pt
        .map(
            &mut alloc,
            0x4000_0000,
            PhysAddr(0x9000_0000),
            2 << 20,
            IoPerm::LINUX_RW,
            &mut again
        )
        .is_err());
    assert!(again.is_empty());
    // An IOVA beyond 39 bits does not fit a 3-level table.
    assert!(matches!(
        pt.map(
            &mut alloc,
            1 << 39,
            PhysAddr(0x1000),
            4096,
            IoPerm::LINUX_RW,
            &mut again
        ),
        Err(TableError::AddressTooWide { bits: 39, .. })
    ));
}

#[test]
fn map_2m_and_1g_as_next_level_0_leaves_at_levels_2_and_3() {
    let (mut alloc, mut pt, mut mem) = setup(4);
    let root = pt.root().0;
    let mut out = Vec::new();
    pt.map(
        &mut alloc,
        0x60_0000,
        PhysAddr(0x1_0020_0000),
        2 << 20,
        IoPerm::LINUX_RW,
        &mut out,
    )
    .expect("2M");
    let at_1g = pt
        .map(
            &mut alloc,
            0x8000_0000,
            PhysAddr(0x4_c000_0000),
            1 << 30,
            IoPerm::LINUX_RW,
            &mut out,
        )
        .expect("1G");
    apply(&mut mem, &out);
    assert_eq!(
        hand_walk(&mem, root, 4, 0x7f_1234),
        Some((0x1_003f_1234, 2 << 20))
    );
    assert_eq!(
        hand_walk(&mem, root, 4, 0xbfff_ffff),
        Some((0x4_ffff_ffff, 1 << 30))
    );
    // The 1 GiB leaf: NL 0 (bits 11:9 clear), index 2 of the level-3 table.
    let leaf = read_u64(&mem, at_1g.0);
    assert_eq!(leaf, 0x7000_0004_c000_0001);
    assert_eq!(at_1g.0 & 0xfff, 2 * 8);
    assert_eq!(
        pt.lookup(0x8000_0000).map(|(_, s, e)| (s, e.0)),
        Some((1 << 30, leaf))
    );
}

#[test]
fn map_64k_writes_16_replicated_next_level_7_leaves() {
    let (mut alloc, mut pt, mut mem) = setup(3);
    let root = pt.root().0;
    let mut out = Vec::new();
    // 64 KiB: PAGE_SIZE_LEVEL 0 (level 1), PAGE_SIZE_PTE_COUNT 16. PAGE_SIZE_PTE(
    // 0x3_0001_0000, 64K) = (pa | 0xffff) & ~0x8000 & PM_ADDR_MASK = 0x3_0001_7000.
    let first = pt
        .map(
            &mut alloc,
            0x1_0000,
            PhysAddr(0x3_0001_0000),
            64 << 10,
            IoPerm::LINUX_RW,
            &mut out,
        )
        .expect("64K");
    assert_eq!(out.last().map(|w| w.bytes.len()), Some(16 * 8));
    apply(&mut mem, &out);
    let want = 0x7000_0003_0001_7e01u64;
    for i in 0..16 {
        assert_eq!(read_u64(&mem, first.0 + 8 * i), want, "entry {i}");
    }
    assert_eq!(first.0 & 0xfff, 16 * 8); // level-1 index of 0x1_0000 is 16
    assert_eq!(read_u64(&mem, first.0 + 16 * 8), 0);
    assert_eq!(
        hand_walk(&mem, root, 3, 0x1_f123),
        Some((0x3_0001_f123, 64 << 10))
    );
    assert_eq!(
        pt.lookup(0x1_f123).map(|(pa, s, _)| (pa.0, s)),
        Some((0x3_0001_f123, 64 << 10))
    );
    // Unmap clears all 16 in one write; a second unmap finds nothing.
    let mut out = Vec::new();
    assert_eq!(pt.unmap(0x1_0000, 64 << 10, &mut out), Ok(first));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].bytes, vec![0; 16 * 8]);
    apply(&mut mem, &out);
    assert_eq!(hand_walk(&mem, root, 3, 0x1_f123), None);
    assert!(pt.lookup(0x1_f123).is_none());
    assert!(matches!(
        pt.unmap(0x1_0000, 64 << 10, &mut Vec::new()),
        Err(TableError::NotMapped { iova: 0x1_0000 })
    ));
    // A 4 KiB unmap of a 2 MiB page is refused (size must match).
    pt.map(
        &mut alloc,
        0x20_0000,
        PhysAddr(0x20_0000),
        2 << 20,
        IoPerm::LINUX_RW,
        &mut Vec::new(),
    )
    .expect("2M");
    assert!(pt.unmap(0x20_0000, 4096, &mut Vec::new()).is_err());
}

#[test]
fn set_leaf_rewrites_one_natural_leaf_in_place_and_refuses_what_is_not_one() {
    let (mut alloc, mut pt, mut mem) = setup(3);
    let root = pt.root().0;
    let mut out = Vec::new();
    let leaf = pt
        .map(
            &mut alloc,
            0x1_0000,
            PhysAddr(0x20_0000),
            4096,
            IoPerm::LINUX_RW,
            &mut out,
        )
        .expect("4K");
    apply(&mut mem, &out);
    // IR | FC, no IW, to 0x30_0000: PR 0, address 51:12, FC 60, IR 61 (SPEC-NOTES §4.2).
    let pte = IoPte::leaf(PhysAddr(0x30_0000), true, true, false, false);
    assert_eq!(pte.0, 0x3000_0000_0030_0001);
    let mut out = Vec::new();
    assert_eq!(pt.set_leaf(0x1_0000, 4096, pte, &mut out), Ok(leaf));
    // One 8-byte store at the leaf's address, nothing else.
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].pa, out[0].bytes.len()), (leaf, 8));
    apply(&mut mem, &out);
    assert_eq!(read_u64(&mem, leaf.0), pte.0);
    assert_eq!(hand_walk(&mem, root, 3, 0x1_0123), Some((0x30_0123, 4096)));
    // Not mapped, the wrong size, or a size-encoded run: refused, nothing written.
    let mut out = Vec::new();
    assert!(matches!(
        pt.set_leaf(0x2_0000, 4096, pte, &mut out),
        Err(TableError::NotMapped { iova: 0x2_0000 })
    ));
    pt.map(
        &mut alloc,
        0x10_0000,
        PhysAddr(0x40_0000),
        64 << 10,
        IoPerm::LINUX_RW,
        &mut Vec::new(),
    )
    .expect("64K");
    assert!(pt.set_leaf(0x10_0000, 64 << 10, pte, &mut out).is_err());
    assert!(pt.set_leaf(0x10_0000, 4096, pte, &mut out).is_err());
    assert!(out.is_empty());
}

#[test]
fn six_level_table_reaches_the_top_index_bits() {
    let (mut alloc, mut pt, mut mem) = setup(6);
    let root = pt.root().0;
    let mut out = Vec::new();
    // IOVA 0x8100_0000_0000_2000: level-6 index = bits 63:57 = 0x40, level-5 index = bits
    // 56:48 = 0x100 (bit 56), levels 4..2 index 0, level-1 index 2.
    let iova = 0x8100_0000_0000_2000;
    pt.map(
        &mut alloc,
        iova,
        PhysAddr(0x7_0000_0000),
        4096,
        IoPerm::LINUX_RW,
        &mut out,
    )
    .expect("mapped");
    apply(&mut mem, &out);
    assert_eq!(out.len(), 6); // five PDEs and the leaf
    let top = read_u64(&mem, root + 0x40 * 8);
    assert_eq!((top & 1, (top >> 9) & 7), (1, 5));
    assert_eq!(
        hand_walk(&mem, root, 6, iova | 0x123),
        Some((0x7_0000_0123, 4096))
    );
    assert_eq!(pt.table_pages(), 6);
}

#[test]
fn skipped_level_mapping_jumps_from_level_4_to_level_1() {
    let (mut alloc, mut pt, mut mem) = setup(4);
    let root = pt.root().0;
    let mut out = Vec::new();
    // Skip levels 3 and 2: IOVA bits 38:21 must be 0. IOVA = 5 << 39 | 7 << 12.
    let iova = 5u64 << 39 | 7 << 12;
    let at = pt
        .map_skipping(
            &mut alloc,
            iova,
            PhysAddr(0xa000_0000),
            4,
            1,
            IoPerm::LINUX_RW,
            &mut out,
        )
        .expect("mapped");
    apply(&mut mem, &out);
    assert_eq!(out.len(), 2); // the skipping PDE and the leaf
    let pde = read_u64(&mem, root + 5 * 8);
    let t1 = pde & 0x000f_ffff_ffff_f000;
    // PR | NL 1 (0x200) | IR | IW.
    assert_eq!(pde, 0x6000_0000_0000_0201 | t1);
    assert_eq!(at, PhysAddr(t1 + 7 * 8));
    assert_eq!(
        hand_walk(&mem, root, 4, iova | 0xfff),
        Some((0xa000_0fff, 4096))
    );
    assert_eq!(
        pt.lookup(iova | 0xfff).map(|(pa, s, _)| (pa.0, s)),
        Some((0xa000_0fff, 4096))
    );
    // Same level-4 slot with a skipped bit set: the IOMMU would fault; the builder refuses.
    let bad = iova | 1 << 21;
    assert_eq!(hand_walk(&mem, root, 4, bad), None);
    assert!(pt.lookup(bad).is_none());
    assert!(matches!(
        pt.map_skipping(&mut alloc, bad, PhysAddr(0xb000_0000), 4, 1, IoPerm::LINUX_RW, &mut Vec::new()),
        Err(TableError::SkippedBitsNotZero { bits, .. }) if bits == 1 << 21
    ));
    // A normal map through that slot is blocked; a second skipped page beside it reuses the
    // PDE and adds only its leaf.
    assert!(pt
        .map(
            &mut alloc,
            bad,
            PhysAddr(0xb000_0000),
            4096,
            IoPerm::LINUX_RW,
            &mut Vec::new()
        )
        .is_err());
    let mut out = Vec::new();
    pt.map_skipping(
        &mut alloc,
        iova + 0x1000,
        PhysAddr(0xb000_0000),
        4,
        1,
        IoPerm::LINUX_RW,
        &mut out,
    )
    .expect("second page");
    assert_eq!(out.len(), 1);
    // A skip that skips nothing, or beyond the tables, is refused.
    assert!(matches!(
        pt.map_skipping(
            &mut alloc,
            0,
            PhysAddr(0),
            4,
            3,
            IoPerm::LINUX_RW,
            &mut Vec::new()
        ),
        Err(TableError::BadSkip {
            from: 4,
            to: 3,
            levels: 4
        })
    ));
    assert!(pt
        .map_skipping(
            &mut alloc,
            0,
            PhysAddr(0),
            5,
            1,
            IoPerm::LINUX_RW,
            &mut Vec::new()
        )
        .is_err());
}

#[test]
fn failed_operations_change_nothing() {
    // A region of 3 pages: the root plus 2; a 4K map in a 4-level table needs 3 more.
    let mut alloc = TableAllocator::new(PhysAddr(0x100_0000), 3 << 12).expect("region");
    let mut pt = IoPageTable::new(&mut alloc, 4).expect("root");
    let mut out = Vec::new();
    assert!(matches!(
        pt.map(
            &mut alloc,
            0x1000,
            PhysAddr(0x1000),
            4096,
            IoPerm::LINUX_RW,
            &mut out
        ),
        Err(TableError::OutOfTableMemory { needed: 1, .. })
    ));
    assert!(out.is_empty());
    assert_eq!((alloc.used_pages(), pt.table_pages()), (1, 1));
    assert!(pt.lookup(0x1000).is_none());
    // Unsupported sizes and depths.
    assert!(matches!(
        pt.map(
            &mut alloc,
            0,
            PhysAddr(0),
            3 << 12,
            IoPerm::LINUX_RW,
            &mut out
        ),
        Err(TableError::PageSizeUnsupported { .. })
    ));
    assert!(matches!(
        pt.map(
            &mut alloc,
            0,
            PhysAddr(0),
            1 << 48,
            IoPerm::LINUX_RW,
            &mut out
        ),
        Err(TableError::PageSizeUnsupported { .. })
    ));
    assert!(matches!(
        pt.map(
            &mut alloc,
            0x1000,
            PhysAddr(0x800),
            4096,
            IoPerm::LINUX_RW,
            &mut out
        ),
        Err(TableError::Misaligned { .. })
    ));
    assert!(matches!(
        IoPageTable::new(&mut alloc, 7),
        Err(TableError::BadLevels(7))
    ));
    assert!(out.is_empty());
}
