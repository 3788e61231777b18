//! VT-d structure layouts (spec-derived byte vectors, QEMU reserved masks written out in hex)
//! and the driver-style table builder, checked by applying its writes to a `SparseMemory`
//! and walking that memory by hand with literal bit positions (VT-d 4.1 §9.1-§9.8), not with
//! the crate's own accessors.

use model_core::{Bdf, PhysAddr, SparseMemory};
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use vtd::entry::*;
use vtd::tables::*;

// ---------------------------------------------------------------------------------------
// Entry layouts
// ---------------------------------------------------------------------------------------

#[test]
fn context_entry_tt2_aw2_did5_is_lo_0x1234009_hi_0x502() {
    // Derivation (§9.3): lo = P (bit 0) 0x1 | TT=2 in bits 3:2 (0b10 << 2 = 0x8) | SLPTPTR
    // 0x1234000 in bits 63:12 = 0x1234009. hi = AW=2 in bits 66:64 (hi bits 2:0) | DID=5 in
    // bits 87:72 (hi bits 23:8: 5 << 8 = 0x500) = 0x502.
    let e = ContextEntry::new(ContextFields {
        fpd: false,
        tt: TranslationType::PassThrough,
        slptptr: PhysAddr(0x123_4000),
        aw: 2,
        did: 5,
    });
    assert_eq!((e.lo, e.hi), (0x123_4009, 0x502));
    let bytes = [
        0x09, 0x40, 0x23, 0x01, 0, 0, 0, 0, // lo, little-endian
        0x02, 0x05, 0, 0, 0, 0, 0, 0, // hi
    ];
    assert_eq!(e.to_le_bytes(), bytes);
    let d = ContextEntry::from_le_bytes(&bytes);
    assert_eq!(d, e);
    assert!(d.present() && !d.fpd());
    assert_eq!(d.tt(), TranslationType::PassThrough);
    assert_eq!(d.slptptr(), PhysAddr(0x123_4000));
    assert_eq!((d.aw(), d.levels(), d.did()), (2, 4, 5));
    assert_eq!(ContextEntry::BYTES, 16);
    assert_eq!(d.reserved_bits(39), [0, 0]);
}

#[test]
fn context_entry_reserved_bits_follow_qemu_rsvd_lo_and_hi() {
    // Q-VTD: RSVD_LO(aw) = 0xff0 | bits >= aw; RSVD_HI = 0xffffffffff000080 (bit 71 and
    // bits 127:88). AVAIL (hi bits 6:3) is not reserved.
    let e = ContextEntry {
        lo: 0x1 | 0x10 | (1 << 40),
        hi: 0x78 | 0x80 | (1 << 24),
    };
    assert_eq!(e.reserved_bits(39), [0x10 | (1 << 40), 0x80 | (1 << 24)]);
    assert_eq!(e.reserved_bits(46), [0x10, 0x80 | (1 << 24)]);
    // FPD is bit 1 and TT=3 is an invalid encoding, not a reserved field.
    let e = ContextEntry {
        lo: 0x1 | 0x2 | 0xc,
        hi: 0,
    };
    assert!(e.fpd());
    assert_eq!(e.tt(), TranslationType::Reserved);
    assert_eq!(e.reserved_bits(39), [0, 0]);
}

#[test]
fn translation_type_and_pgtt_codes_cover_their_fields() {
    for c in 0..4u8 {
        assert_eq!(TranslationType::from_code(c).code(), c);
    }
    assert_eq!(TranslationType::from_code(2), TranslationType::PassThrough);
    assert_eq!(TranslationType::from_code(6), TranslationType::PassThrough); // low 2 bits
    for c in 0..8u8 {
        assert_eq!(Pgtt::from_code(c).code(), c);
    }
    assert_eq!(Pgtt::from_code(1), Pgtt::FirstLevel);
    assert_eq!(Pgtt::from_code(2), Pgtt::SecondLevel);
    assert_eq!(Pgtt::from_code(3), Pgtt::Nested);
    assert_eq!(Pgtt::from_code(4), Pgtt::PassThrough);
    assert_eq!(Pgtt::from_code(0), Pgtt::Reserved(0));
    assert_eq!(Pgtt::from_code(7), Pgtt::Reserved(7));
}

#[test]
fn root_entry_is_present_bit_and_context_table_pointer() {
    // §9.1: P bit 0, CTP bits 63:12; lo bits 11:1 and all of hi reserved.
    let e = RootEntry::new(PhysAddr(0x7000));
    assert_eq!((e.lo, e.hi), (0x7001, 0));
    assert_eq!(e.to_le_bytes()[..2], [0x01, 0x70]);
    assert!(e.present());
    assert_eq!(e.ctp(), PhysAddr(0x7000));
    assert_eq!(e.reserved_bits(39), [0, 0]);
    let bad = RootEntry {
        lo: 0x7001 | 0x2 | (1 << 39),
        hi: 0x1,
    };
    assert_eq!(bad.reserved_bits(39), [0x2 | (1 << 39), 0x1]);
    assert_eq!(bad.reserved_bits(46), [0x2, 0x1]);
    assert_eq!(RootEntry::from_le_bytes(&bad.to_le_bytes()), bad);
}

#[test]
fn scalable_root_entry_upper_half_starts_at_bit_64() {
    // §9.2: LP bit 0, LCTP 63:12; UP bit 64 (byte 8 bit 0), UCTP 127:76 (hi bits 63:12).
    let e = ScalableRootEntry::new(Some(PhysAddr(0x3000)), Some(PhysAddr(0x4000)));
    assert_eq!((e.lo, e.hi), (0x3001, 0x4001));
    let b = e.to_le_bytes();
    assert_eq!((b[0], b[1], b[8], b[9]), (0x01, 0x30, 0x01, 0x40));
    assert!(e.lower_present() && e.upper_present());
    assert_eq!(
        (e.lower_ctp(), e.upper_ctp()),
        (PhysAddr(0x3000), PhysAddr(0x4000))
    );
    let only_upper = ScalableRootEntry::new(None, Some(PhysAddr(0x4000)));
    assert_eq!((only_upper.lo, only_upper.hi), (0, 0x4001));
    assert!(!only_upper.lower_present());
    let bad = ScalableRootEntry {
        lo: 0x3001 | 0x800,
        hi: 0x4001 | (1 << 40),
    };
    assert_eq!(bad.reserved_bits(39), [0x800, 1 << 40]);
    assert_eq!(ScalableRootEntry::BYTES, 16);
}

#[test]
fn scalable_context_entry_layout_and_reserved_bits() {
    // §9.4: q0 = P 0x1 | FPD 0x2 | DTE 0x4 | PASIDE 0x8 | PRE 0x10 | PDTS=3 in bits 11:9
    // (3 << 9 = 0x600) | PASIDDIRPTR 0xabc000 = 0xabc61f; q1 = RID_PASID 0x12345 (bits 83:64).
    let e = ScalableContextEntry::new(ScalableContextFields {
        fpd: true,
        dte: true,
        paside: true,
        pre: true,
        pdts: 3,
        pasid_dir_ptr: PhysAddr(0xabc000),
        rid_pasid: 0x12345,
    });
    assert_eq!(e.q, [0xabc61f, 0x12345, 0, 0]);
    assert_eq!(ScalableContextEntry::BYTES, 32);
    let d = ScalableContextEntry::from_le_bytes(&e.to_le_bytes());
    assert_eq!(d, e);
    assert!(d.present() && d.fpd() && d.dte() && d.paside() && d.pre());
    assert_eq!((d.pdts(), d.pasid_dir_entries()), (3, 1024)); // 2^(3+7)
    assert_eq!(d.pasid_dir_ptr(), PhysAddr(0xabc000));
    assert_eq!(d.rid_pasid(), 0x12345);
    assert_eq!(d.reserved_bits(39), [0; 4]);
    // Q-VTD RSVD_VAL0 = 0x1e0 | bits >= aw; RSVD_VAL1 = 0xffffffffffe00000 (so bit 84, the
    // old RID_PRIV, is not reserved); q2 and q3 entirely reserved.
    let bad = ScalableContextEntry {
        q: [
            e.q[0] | 0x20 | (1 << 45),
            e.q[1] | (1 << 20) | (1 << 21),
            1,
            1 << 63,
        ],
    };
    assert_eq!(
        bad.reserved_bits(39),
        [0x20 | (1 << 45), 1 << 21, 1, 1 << 63]
    );
    assert_eq!(bad.reserved_bits(46), [0x20, 1 << 21, 1, 1 << 63]);
}

#[test]
fn pasid_directory_entry_layout() {
    // §9.5: P bit 0, FPD bit 1, bits 11:2 reserved, table pointer 63:12.
    let e = PasidDirEntry::new(PhysAddr(0x5000));
    assert_eq!(e.0, 0x5001);
    assert_eq!(e.to_le_bytes(), [0x01, 0x50, 0, 0, 0, 0, 0, 0]);
    assert!(e.present() && !e.fpd());
    assert_eq!(e.table_ptr(), PhysAddr(0x5000));
    assert_eq!(PasidDirEntry(0x5003).reserved_bits(39), 0);
    assert_eq!(
        PasidDirEntry(0x5005 | (1 << 39)).reserved_bits(39),
        0x4 | (1 << 39)
    );
    assert_eq!(PasidDirEntry::BYTES, 8);
}

#[test]
fn pasid_entry_second_level_with_pgsnp_sets_bit_88() {
    // §9.6 / L-PASID: q0 = SLPTPTR 0xabc000 | PGTT=2 in bits 8:6 (2 << 6 = 0x80) | AW=2 in
    // bits 4:2 (2 << 2 = 0x8) | P = 0xabc089. q1 = DID 7 (bits 79:64) | PWSNP bit 87 (q1 bit
    // 23 = 0x80_0000) | PGSNP bit 88 (q1 bit 24 = 0x100_0000) = 0x180_0007.
    let e = PasidEntry::new(PasidFields {
        fpd: false,
        aw: 2,
        pgtt: Pgtt::SecondLevel,
        slptptr: PhysAddr(0xabc000),
        did: 7,
        pwsnp: true,
        pgsnp: true,
        sre: false,
        flpm: 0,
        wpe: false,
        nxe: false,
        flptr: PhysAddr(0),
    });
    assert_eq!(e.q, [0xabc089, 0x180_0007, 0, 0, 0, 0, 0, 0]);
    let b = e.to_le_bytes();
    // Bit 87 is byte 10 bit 7; bit 88 is byte 11 bit 0.
    assert_eq!((b[8], b[9], b[10], b[11]), (0x07, 0x00, 0x80, 0x01));
    assert_eq!(PasidEntry::BYTES, 64);
    let d = PasidEntry::from_le_bytes(&b);
    assert_eq!(d, e);
    assert!(d.present() && d.pgsnp() && d.pwsnp() && !d.fpd());
    assert_eq!((d.aw(), d.pgtt(), d.did()), (2, Pgtt::SecondLevel, 7));
    assert_eq!(d.slptptr(), PhysAddr(0xabc000));
    assert_eq!(d.reserved_bits(39), [0; 8]);
}

#[test]
fn pasid_entry_first_level_fields_in_word_2() {
    // q0 = PGTT=1 (0x40) | AW=2 (0x8) | P = 0x49; q1 = DID 9; q2 = FLPTR 0x55000 | SRE bit
    // 128 (0x1) | FLPM=1 in bits 131:130 (0x4) | WPE bit 132 (0x10) | NXE bit 133 (0x20).
    let e = PasidEntry::new(PasidFields {
        fpd: false,
        aw: 2,
        pgtt: Pgtt::FirstLevel,
        slptptr: PhysAddr(0),
        did: 9,
        pwsnp: false,
        pgsnp: false,
        sre: true,
        flpm: 1,
        wpe: true,
        nxe: true,
        flptr: PhysAddr(0x55000),
    });
    assert_eq!(e.q[..3], [0x49, 9, 0x55035]);
    assert!(e.sre() && e.wpe() && e.nxe());
    assert_eq!(
        (e.flpm(), e.flptr(), e.pgtt()),
        (1, PhysAddr(0x55000), Pgtt::FirstLevel)
    );
    // Reserved per VBOX-VTD: q0 11:10, q1 22:16 (86:80), q2 11:8 (139:136); q3..q7; table
    // pointers at or above haw. CD (bit 89) and PAT (q1 63:32) are fields.
    let mut bad = e;
    bad.q[0] |= 0x400;
    bad.q[1] |= (1 << 16) | (1 << 25) | (0xff << 32);
    bad.q[2] |= 0x100 | (1 << 46);
    bad.q[3] = 2;
    bad.q[7] = 1 << 63;
    assert_eq!(
        bad.reserved_bits(39),
        [0x400, 1 << 16, 0x100 | (1 << 46), 2, 0, 0, 0, 1 << 63]
    );
    assert_eq!(
        bad.reserved_bits(48),
        [0x400, 1 << 16, 0x100, 2, 0, 0, 0, 1 << 63]
    );
}

#[test]
fn page_sizes() {
    let t: Vec<_> = PageSize::ALL
        .iter()
        .map(|s| (s.shift(), s.bytes(), s.leaf_level()))
        .collect();
    assert_eq!(
        t,
        [(12, 0x1000, 1), (21, 0x20_0000, 2), (30, 0x4000_0000, 3)]
    );
    for s in PageSize::ALL {
        assert_eq!(PageSize::from_level(s.leaf_level()), Some(s));
    }
    assert_eq!(PageSize::from_level(0), None);
    assert_eq!(PageSize::from_level(4), None);
    assert_eq!(PageSize::Size2M.to_string(), "2 MiB");
}

#[test]
fn second_level_pte_vectors() {
    // §9.8: R bit 0, W bit 1, PS bit 7, SNP bit 11, address 51:12.
    // 4 KiB R|W|SNP at 0x1234_5000: 0x1234_5000 | 0x800 | 0x2 | 0x1 = 0x1234_5803.
    let perm = SlPerm {
        read: true,
        write: true,
        snp: true,
    };
    let l = SlPte::leaf(PhysAddr(0x1234_5000), PageSize::Size4K, perm);
    assert_eq!(l.0, 0x1234_5803);
    assert_eq!(l.to_le_bytes(), [0x03, 0x58, 0x34, 0x12, 0, 0, 0, 0]);
    assert!(l.read() && l.write() && l.snp() && l.present() && !l.ps() && !l.tm());
    // 2 MiB read-only at 0x4020_0000: | PS 0x80 | R = 0x4020_0081.
    let ro = SlPerm {
        read: true,
        ..SlPerm::default()
    };
    assert_eq!(
        SlPte::leaf(PhysAddr(0x4020_0000), PageSize::Size2M, ro).0,
        0x4020_0081
    );
    // 1 GiB write-only at 2^38: 0x40_0000_0000 | PS | W = 0x40_0000_0082.
    let wo = SlPerm {
        write: true,
        ..SlPerm::default()
    };
    assert_eq!(
        SlPte::leaf(PhysAddr(1 << 38), PageSize::Size1G, wo).0,
        0x40_0000_0082
    );
    // Non-leaf: address | R | W, as Linux.
    assert_eq!(SlPte::table(PhysAddr(0x9000)).0, 0x9003);
    // addr() drops ignored 63, 61:52 and TM 62.
    let hi = SlPte(0xfff0_0000_1234_5803);
    assert_eq!(hi.addr(), PhysAddr(0x1234_5000));
    assert!(hi.tm());
    assert!(!SlPte(0x800).present());
    assert!(SlPte(0x2).present());
    // is_leaf: level 1 always; PS counts at levels 2 and 3 only.
    let ps = SlPte(0x83);
    assert!(ps.is_leaf(1) && ps.is_leaf(2) && ps.is_leaf(3) && !ps.is_leaf(4) && !ps.is_leaf(5));
    assert!(SlPte(0x3).is_leaf(1) && !SlPte(0x3).is_leaf(2));
}

/// QEMU `vtd_init` masks, written out: `VTD_SPTE_PAGE_L{1..4}_RSVD_MASK(aw, dt)`,
/// `VTD_SPTE_LPAGE_L{2,3}_RSVD_MASK(aw, dt)`, `VTD_SL_IGN_COM` = 0xbff0000000000000,
/// `VTD_SL_TM` = bit 62, `VTD_HAW_MASK(aw)` = (1 << aw) - 1, with 0x800 cleared from the leaf
/// masks when `scalable_mode || snoop_control` (column snp_allowed) and TM left out of the
/// leaf masks when `dt_supported && stale_tm` (column tm_reserved = false). Level 5 (which
/// QEMU does not walk) is the level-4 mask: PS is reserved in a PML5E as in a PML4E.
/// Columns: level, leaf, haw, snp_allowed, tm_reserved, mask.
const SL_MASKS: &[(u8, bool, u8, bool, bool, u64)] = &[
    (1, false, 39, false, true, 0x400f_ff80_0000_0800),
    (1, true, 39, false, true, 0x400f_ff80_0000_0800),
    (2, false, 39, false, true, 0x400f_ff80_0000_0800),
    (2, true, 39, false, true, 0x400f_ff80_001f_f800),
    (3, false, 39, false, true, 0x400f_ff80_0000_0800),
    (3, true, 39, false, true, 0x400f_ff80_3fff_f800),
    (4, false, 39, false, true, 0x400f_ff80_0000_0880),
    (4, true, 39, false, true, 0x400f_ff80_0000_0880),
    (5, false, 39, false, true, 0x400f_ff80_0000_0880),
    (5, true, 39, false, true, 0x400f_ff80_0000_0880),
    (1, true, 39, false, false, 0x000f_ff80_0000_0800),
    (2, false, 39, false, false, 0x400f_ff80_0000_0800),
    (2, true, 39, false, false, 0x000f_ff80_001f_f800),
    (3, false, 39, false, false, 0x400f_ff80_0000_0800),
    (3, true, 39, false, false, 0x000f_ff80_3fff_f800),
    (4, true, 39, false, false, 0x400f_ff80_0000_0880),
    (1, false, 39, true, true, 0x400f_ff80_0000_0000),
    (1, true, 39, true, true, 0x400f_ff80_0000_0000),
    (2, false, 39, true, true, 0x400f_ff80_0000_0800),
    (2, true, 39, true, true, 0x400f_ff80_001f_f000),
    (3, false, 39, true, true, 0x400f_ff80_0000_0800),
    (3, true, 39, true, true, 0x400f_ff80_3fff_f000),
    (4, false, 39, true, true, 0x400f_ff80_0000_0880),
    (4, true, 39, true, true, 0x400f_ff80_0000_0880),
    (5, false, 39, true, true, 0x400f_ff80_0000_0880),
    (5, true, 39, true, true, 0x400f_ff80_0000_0880),
    (1, true, 39, true, false, 0x000f_ff80_0000_0000),
    (2, true, 39, true, false, 0x000f_ff80_001f_f000),
    (3, true, 39, true, false, 0x000f_ff80_3fff_f000),
    (1, false, 46, false, true, 0x400f_c000_0000_0800),
    (1, true, 46, false, true, 0x400f_c000_0000_0800),
    (2, false, 46, false, true, 0x400f_c000_0000_0800),
    (2, true, 46, false, true, 0x400f_c000_001f_f800),
    (3, false, 46, false, true, 0x400f_c000_0000_0800),
    (3, true, 46, false, true, 0x400f_c000_3fff_f800),
    (4, false, 46, false, true, 0x400f_c000_0000_0880),
    (4, true, 46, false, true, 0x400f_c000_0000_0880),
    (5, false, 46, false, true, 0x400f_c000_0000_0880),
    (5, true, 46, false, true, 0x400f_c000_0000_0880),
    (1, true, 46, false, false, 0x000f_c000_0000_0800),
    (2, true, 46, false, false, 0x000f_c000_001f_f800),
    (3, true, 46, false, false, 0x000f_c000_3fff_f800),
    (1, false, 46, true, true, 0x400f_c000_0000_0000),
    (1, true, 46, true, true, 0x400f_c000_0000_0000),
    (2, false, 46, true, true, 0x400f_c000_0000_0800),
    (2, true, 46, true, true, 0x400f_c000_001f_f000),
    (3, false, 46, true, true, 0x400f_c000_0000_0800),
    (3, true, 46, true, true, 0x400f_c000_3fff_f000),
    (4, false, 46, true, true, 0x400f_c000_0000_0880),
    (4, true, 46, true, true, 0x400f_c000_0000_0880),
    (5, false, 46, true, true, 0x400f_c000_0000_0880),
    (5, true, 46, true, true, 0x400f_c000_0000_0880),
    (1, true, 46, true, false, 0x000f_c000_0000_0000),
    (2, true, 46, true, false, 0x000f_c000_001f_f000),
    (3, true, 46, true, false, 0x000f_c000_3fff_f000),
    (1, false, 52, false, true, 0x4000_0000_0000_0800),
    (1, true, 52, false, true, 0x4000_0000_0000_0800),
    (2, false, 52, false, true, 0x4000_0000_0000_0800),
    (2, true, 52, false, true, 0x4000_0000_001f_f800),
    (3, false, 52, false, true, 0x4000_0000_0000_0800),
    (3, true, 52, false, true, 0x4000_0000_3fff_f800),
    (4, false, 52, false, true, 0x4000_0000_0000_0880),
    (4, true, 52, false, true, 0x4000_0000_0000_0880),
    (5, false, 52, false, true, 0x4000_0000_0000_0880),
    (5, true, 52, false, true, 0x4000_0000_0000_0880),
    (1, true, 52, false, false, 0x0000_0000_0000_0800),
    (2, true, 52, false, false, 0x0000_0000_001f_f800),
    (3, true, 52, false, false, 0x0000_0000_3fff_f800),
    (1, false, 52, true, true, 0x4000_0000_0000_0000),
    (1, true, 52, true, true, 0x4000_0000_0000_0000),
    (2, false, 52, true, true, 0x4000_0000_0000_0800),
    (2, true, 52, true, true, 0x4000_0000_001f_f000),
    (3, false, 52, true, true, 0x4000_0000_0000_0800),
    (3, true, 52, true, true, 0x4000_0000_3fff_f000),
    (4, false, 52, true, true, 0x4000_0000_0000_0880),
    (4, true, 52, true, true, 0x4000_0000_0000_0880),
    (5, false, 52, true, true, 0x4000_0000_0000_0880),
    (5, true, 52, true, true, 0x4000_0000_0000_0880),
    (1, true, 52, true, false, 0x0000_0000_0000_0000),
    (2, true, 52, true, false, 0x0000_0000_001f_f000),
    (3, true, 52, true, false, 0x0000_0000_3fff_f000),
];

#[test]
fn second_level_reserved_masks_equal_qemu_vtd_spte_masks() {
    for &(level, leaf, haw, snp_allowed, tm_reserved, mask) in SL_MASKS {
        assert_eq!(
            SlPte::reserved_mask(level, leaf, haw, snp_allowed, tm_reserved),
            mask,
            "level {level} leaf {leaf} haw {haw} snp_allowed {snp_allowed} tm_reserved {tm_reserved}"
        );
    }
    // Non-leaf masks never depend on snp_allowed or tm_reserved.
    for level in 2..=5 {
        for haw in [39, 46, 52] {
            let m = SlPte::reserved_mask(level, false, haw, false, true);
            assert_eq!(SlPte::reserved_mask(level, false, haw, true, false), m);
        }
    }
    // Levels that do not exist: everything reserved (QEMU vtd_spte_rsvd[0] = ~0).
    assert_eq!(SlPte::reserved_mask(0, true, 39, true, true), u64::MAX);
    assert_eq!(SlPte::reserved_mask(6, false, 39, true, true), u64::MAX);
    // A legacy leaf with SNP under SC = 0 hits the mask (fault 0xC); with SC it does not.
    let snp_leaf = SlPte::leaf(
        PhysAddr(0x1000),
        PageSize::Size4K,
        SlPerm {
            read: true,
            write: false,
            snp: true,
        },
    );
    assert_ne!(
        snp_leaf.0 & SlPte::reserved_mask(1, true, 39, false, true),
        0
    );
    assert_eq!(
        snp_leaf.0 & SlPte::reserved_mask(1, true, 39, true, true),
        0
    );
}

/// QEMU stage-1 masks written out (`VTD_FPTE_PAGE_L{1..4}_RSVD_MASK(aw)`,
/// `VTD_FPTE_LPAGE_L{2,3}_RSVD_MASK(aw)`, `VTD_FS_UPPER_IGNORED` = 0xfff0000000000000), which
/// is what [`FlPte::reserved_mask`] gives with `nxe` (bit 63 not reserved) and `fl1gp`.
/// Columns: level, leaf, haw, mask.
const FL_MASKS: &[(u8, bool, u8, u64)] = &[
    (1, true, 39, 0x000f_ff80_0000_0000),
    (2, false, 39, 0x000f_ff80_0000_0000),
    (2, true, 39, 0x000f_ff80_001f_e000),
    (3, false, 39, 0x000f_ff80_0000_0000),
    (3, true, 39, 0x000f_ff80_3fff_e000),
    (4, false, 39, 0x000f_ff80_0000_0080),
    (5, false, 39, 0x000f_ff80_0000_0080),
    (1, true, 46, 0x000f_c000_0000_0000),
    (2, false, 46, 0x000f_c000_0000_0000),
    (2, true, 46, 0x000f_c000_001f_e000),
    (3, false, 46, 0x000f_c000_0000_0000),
    (3, true, 46, 0x000f_c000_3fff_e000),
    (4, false, 46, 0x000f_c000_0000_0080),
    (5, false, 46, 0x000f_c000_0000_0080),
    (1, true, 52, 0x0000_0000_0000_0000),
    (2, false, 52, 0x0000_0000_0000_0000),
    (2, true, 52, 0x0000_0000_001f_e000),
    (3, false, 52, 0x0000_0000_0000_0000),
    (3, true, 52, 0x0000_0000_3fff_e000),
    (4, false, 52, 0x0000_0000_0000_0080),
    (5, false, 52, 0x0000_0000_0000_0080),
];

#[test]
fn first_level_reserved_masks_equal_qemu_vtd_fpte_masks() {
    const XD: u64 = 1 << 63;
    for &(level, leaf, haw, mask) in FL_MASKS {
        let ctx = format!("level {level} leaf {leaf} haw {haw}");
        assert_eq!(
            FlPte::reserved_mask(level, leaf, haw, true, true),
            mask,
            "{ctx}"
        );
        // Without NXE the XD bit is reserved too (§9.7).
        assert_eq!(
            FlPte::reserved_mask(level, leaf, haw, false, true),
            mask | XD,
            "{ctx}"
        );
    }
    // PS at level 4/5 is reserved whatever `leaf` says.
    assert_eq!(
        FlPte::reserved_mask(4, true, 39, true, true),
        0x000f_ff80_0000_0080
    );
    // Without FL1GP a PDPTE with PS = 1 has a reserved bit: PS itself.
    assert_eq!(
        FlPte::reserved_mask(3, true, 46, true, false),
        0x000f_c000_0000_0080
    );
    assert_eq!(FlPte::reserved_mask(0, true, 46, true, true), u64::MAX);
    // Bit 12 of a 2 MiB leaf is PAT, not reserved; bit 13 is.
    let m = FlPte::reserved_mask(2, true, 46, true, true);
    assert_eq!((m & (1 << 12), m & (1 << 13)), (0, 1 << 13));
}

#[test]
fn first_level_pte_vectors() {
    // §9.7 / Linux: non-leaf = addr | P 0x1 | R/W 0x2 | U/S 0x4 | A 0x20 = addr | 0x27.
    assert_eq!(FlPte::table(PhysAddr(0x9000)).0, 0x9027);
    // 4 KiB writable user leaf: P | R/W | U/S | A | D (0x40) = 0x67.
    let rw = FlPerm {
        writable: true,
        user: true,
        xd: false,
    };
    let l = FlPte::leaf(PhysAddr(0x5000), PageSize::Size4K, rw);
    assert_eq!(l.0, 0x5067);
    assert!(l.present() && l.writable() && l.user() && l.accessed() && l.dirty() && !l.ps());
    // 2 MiB read-only user XD leaf: XD bit 63 | addr | PS 0x80 | A | U/S | P = ..a5.
    let ro = FlPerm {
        writable: false,
        user: true,
        xd: true,
    };
    let l = FlPte::leaf(PhysAddr(0x20_0000), PageSize::Size2M, ro);
    assert_eq!(l.0, 0x8000_0000_0020_00a5);
    assert!(l.xd() && l.ps() && !l.dirty() && !l.writable());
    assert_eq!(l.addr(), PhysAddr(0x20_0000));
    assert!(l.is_leaf(2) && !l.is_leaf(4));
    assert_eq!(FlPte::from_le_bytes(&l.to_le_bytes()), l);
}

#[test]
fn haw_mask_edges() {
    assert_eq!(haw_mask(39), 0x7f_ffff_ffff);
    assert_eq!(haw_mask(52), (1 << 52) - 1);
    assert_eq!(haw_mask(64), u64::MAX);
    assert_eq!(haw_mask(70), u64::MAX);
}

// ---------------------------------------------------------------------------------------
// Hand walker over simulated memory (literal bit positions, §9.1-§9.8)
// ---------------------------------------------------------------------------------------

fn apply(mem: &mut SparseMemory, writes: &[MemWrite]) {
    for w in writes {
        assert!(
            matches!(w.bytes.len(), 8 | 16 | 32 | 64),
            "one structure per write: {w:?}"
        );
        mem.write(w.pa, &w.bytes);
    }
}

fn rd(mem: &SparseMemory, pa: u64) -> u64 {
    let mut b = [0u8; 8];
    mem.read(PhysAddr(pa), &mut b);
    u64::from_le_bytes(b)
}

const ADDR_51_12: u64 = 0x000f_ffff_ffff_f000;

/// A second-level walk: `Ok((pa, leaf level, leaf))` or `Err(level of the not-present entry)`.
/// Present = R|W (bits 1:0); PS = bit 7 at levels 2/3; 9 index bits per level above bit 12.
fn walk_sl(mem: &SparseMemory, root: u64, levels: u8, iova: u64) -> Result<(u64, u8, u64), u8> {
    let mut table = root;
    for level in (1..=levels).rev() {
        let shift = 12 + 9 * u32::from(level - 1);
        let e = rd(mem, table + ((iova >> shift) & 0x1ff) * 8);
        if e & 0x3 == 0 {
            return Err(level);
        }
        if level == 1 || (level <= 3 && e & 0x80 != 0) {
            return Ok(((e & ADDR_51_12) | (iova & ((1 << shift) - 1)), level, e));
        }
        assert_eq!(e & 0xfff, 0x3, "a Linux non-leaf SL entry is addr | R | W");
        table = e & ADDR_51_12;
    }
    unreachable!("level 1 always ends the walk")
}

/// A first-level walk; present = bit 0, PS = bit 7 at levels 2/3.
fn walk_fl(mem: &SparseMemory, root: u64, levels: u8, iova: u64) -> Result<(u64, u8, u64), u8> {
    let mut table = root;
    for level in (1..=levels).rev() {
        let shift = 12 + 9 * u32::from(level - 1);
        let e = rd(mem, table + ((iova >> shift) & 0x1ff) * 8);
        if e & 0x1 == 0 {
            return Err(level);
        }
        if level == 1 || (level <= 3 && e & 0x80 != 0) {
            return Ok(((e & ADDR_51_12) | (iova & ((1 << shift) - 1)), level, e));
        }
        assert_eq!(
            e & 0xfff,
            0x27,
            "a Linux non-leaf FL entry is addr | P | RW | US | A"
        );
        table = e & ADDR_51_12;
    }
    unreachable!("level 1 always ends the walk")
}

/// Legacy root → context walk: (SLPTPTR, levels = AW + 2, DID, TT).
fn walk_legacy_context(mem: &SparseMemory, rtaddr: u64, bdf: Bdf) -> (u64, u8, u16, u64) {
    let root_lo = rd(mem, rtaddr + u64::from(bdf.bus()) * 16);
    assert_eq!(
        rd(mem, rtaddr + u64::from(bdf.bus()) * 16 + 8),
        0,
        "root hi reserved"
    );
    assert_eq!(
        root_lo & 0xfff,
        1,
        "root entry: P and nothing else below bit 12"
    );
    let ce = (root_lo & !0xfff) + u64::from(bdf.devfn()) * 16;
    let (lo, hi) = (rd(mem, ce), rd(mem, ce + 8));
    assert_eq!(lo & 1, 1, "context present");
    (
        lo & !0xfff,
        (hi & 7) as u8 + 2,
        ((hi >> 8) & 0xffff) as u16,
        (lo >> 2) & 3,
    )
}

/// Scalable root → context: the context entry's address (lower/upper half by devfn bit 7).
fn scalable_context_addr(mem: &SparseMemory, rtaddr: u64, bdf: Bdf) -> u64 {
    let devfn = bdf.devfn();
    let half = rtaddr + u64::from(bdf.bus()) * 16 + if devfn >= 0x80 { 8 } else { 0 };
    let e = rd(mem, half);
    assert_eq!(e & 1, 1, "root half present");
    (e & !0xfff) + u64::from(devfn & 0x7f) * 32
}

/// Scalable context → PASID directory → PASID entry: the entry's address.
fn pasid_entry_addr(mem: &SparseMemory, ctx: u64, pasid: u32) -> u64 {
    let q0 = rd(mem, ctx);
    assert_eq!(q0 & 1, 1, "scalable context present");
    let dir_entries = 1u64 << (((q0 >> 9) & 7) + 7);
    assert!(u64::from(pasid >> 6) < dir_entries);
    let de = rd(mem, (q0 & !0xfff) + u64::from(pasid >> 6) * 8);
    assert_eq!(de & 0xfff, 1, "directory entry: P only");
    (de & !0xfff) + u64::from(pasid & 0x3f) * 64
}

fn bdf(bus: u8, dev: u8, func: u8) -> Bdf {
    Bdf::new(bus, dev, func).expect("valid BDF")
}

fn write_at(pa: u64, v: u64) -> MemWrite {
    MemWrite {
        pa: PhysAddr(pa),
        bytes: v.to_le_bytes().to_vec(),
    }
}

const RW_SNP: SlPerm = SlPerm {
    read: true,
    write: true,
    snp: true,
};
const R_ONLY: SlPerm = SlPerm {
    read: true,
    write: false,
    snp: false,
};
const W_SNP: SlPerm = SlPerm {
    read: false,
    write: true,
    snp: true,
};

// ---------------------------------------------------------------------------------------
// Builder
// ---------------------------------------------------------------------------------------

#[test]
fn allocator_hands_out_aligned_pages_in_order_and_refuses_bad_regions() {
    let mut a = TableAllocator::new(PhysAddr(0x10_0000), 0x3000).unwrap();
    assert_eq!(a.alloc(), Ok(PhysAddr(0x10_0000)));
    assert_eq!(a.alloc_pages(2), Ok(PhysAddr(0x10_1000)));
    assert_eq!(a.used_pages(), 3);
    assert!(matches!(
        a.alloc().map_err(TableError::from),
        Err(TableError::OutOfTableMemory {
            pages: 3,
            needed: 1,
            ..
        })
    ));
    assert!(matches!(
        TableAllocator::new(PhysAddr(0x10_0800), 0x1000).map_err(TableError::from),
        Err(TableError::Misaligned {
            addr: 0x10_0800,
            align: 0x1000,
            ..
        })
    ));
    assert!(matches!(
        TableAllocator::new(PhysAddr(0x10_0000), 0x1800).map_err(TableError::from),
        Err(TableError::Misaligned { .. })
    ));
    let mut empty = TableAllocator::new(PhysAddr(0), 0).unwrap();
    assert!(matches!(
        empty.alloc().map_err(TableError::from),
        Err(TableError::OutOfTableMemory {
            pages: 0,
            needed: 1,
            ..
        })
    ));
    assert!(matches!(
        TableAllocator::new(PhysAddr(1 << 52), 0x1000).map_err(TableError::from),
        Err(TableError::AddressTooWide { bits: 52, .. })
    ));
}

/// The legacy 4-level domain every builder test starts from: root table at 0x10_0000, SL
/// root at 0x10_1000, then pages in allocation order.
fn legacy_domain() -> (TableAllocator, ContextTables, SlTables) {
    let mut alloc = TableAllocator::new(PhysAddr(0x10_0000), 0x10_0000).unwrap();
    let ctx = ContextTables::new_legacy(&mut alloc).unwrap();
    let sl = SlTables::new(&mut alloc, 4).unwrap();
    assert_eq!(
        (ctx.root_table(), sl.root()),
        (PhysAddr(0x10_0000), PhysAddr(0x10_1000))
    );
    assert!(!ctx.scalable());
    (alloc, ctx, sl)
}

#[test]
fn four_level_map_writes_pointers_before_the_leaf_in_linux_order() {
    let (mut alloc, _ctx, mut sl) = legacy_domain();
    let mut out = Vec::new();
    // IOVA 0x1234_5000: L4 index 0, L3 index 0, L2 index 0x91 (0x1234_5000 >> 21), L1 index
    // 0x145 ((0x1234_5000 >> 12) & 0x1ff). New tables L3 0x10_2000, L2 0x10_3000, PT
    // 0x10_4000, each linked (addr | R | W) before anything is written into it; the leaf
    // (0x8765_4000 | SNP | W | R) comes last.
    let leaf = sl
        .map(
            &mut alloc,
            0x1234_5000,
            PhysAddr(0x8765_4000),
            PageSize::Size4K,
            RW_SNP,
            &mut out,
        )
        .unwrap();
    assert_eq!(leaf, PhysAddr(0x10_4000 + 0x145 * 8));
    assert_eq!(
        out,
        [
            write_at(0x10_1000, 0x10_2003),
            write_at(0x10_2000, 0x10_3003),
            write_at(0x10_3000 + 0x91 * 8, 0x10_4003),
            write_at(0x10_4000 + 0x145 * 8, 0x8765_4803),
        ]
    );
    // Every prefix of the writes walks to "not present" or to the full mapping: the IOMMU
    // never follows a pointer into a table that is not complete.
    for n in 0..=out.len() {
        let mut mem = SparseMemory::new();
        apply(&mut mem, &out[..n]);
        let r = walk_sl(&mem, sl.root().0, 4, 0x1234_5000);
        if n == out.len() {
            assert_eq!(r, Ok((0x8765_4000, 1, 0x8765_4803)));
        } else {
            assert_eq!(r, Err(4 - n as u8), "after {n} writes");
        }
    }
    // 2 MiB at IOVA 0x4020_0000 (L3 index 1, L2 index 1): one new L2 table 0x10_5000.
    out.clear();
    sl.map(
        &mut alloc,
        0x4020_0000,
        PhysAddr(0x1_0000_0000),
        PageSize::Size2M,
        R_ONLY,
        &mut out,
    )
    .unwrap();
    assert_eq!(
        out,
        [
            write_at(0x10_2000 + 8, 0x10_5003),
            write_at(0x10_5000 + 8, 0x1_0000_0081),
        ]
    );
    // 1 GiB at IOVA 2^39 (L4 index 1, L3 index 0): one new L3 table 0x10_6000; leaf =
    // 2^38 | SNP | PS | W = 0x40_0000_0882.
    out.clear();
    sl.map(
        &mut alloc,
        1 << 39,
        PhysAddr(1 << 38),
        PageSize::Size1G,
        W_SNP,
        &mut out,
    )
    .unwrap();
    assert_eq!(
        out,
        [
            write_at(0x10_1000 + 8, 0x10_6003),
            write_at(0x10_6000, 0x40_0000_0882)
        ]
    );
    assert_eq!(alloc.used_pages(), 7);
    assert_eq!(sl.table_pages(), 6);
}

#[test]
fn legacy_domain_walks_by_hand_from_the_root_table_to_each_page() {
    let (mut alloc, mut ctx, mut sl) = legacy_domain();
    let mut out = Vec::new();
    sl.map(
        &mut alloc,
        0x1234_5000,
        PhysAddr(0x8765_4000),
        PageSize::Size4K,
        RW_SNP,
        &mut out,
    )
    .unwrap();
    sl.map(
        &mut alloc,
        0x4020_0000,
        PhysAddr(0x1_0000_0000),
        PageSize::Size2M,
        R_ONLY,
        &mut out,
    )
    .unwrap();
    sl.map(
        &mut alloc,
        1 << 39,
        PhysAddr(1 << 38),
        PageSize::Size1G,
        W_SNP,
        &mut out,
    )
    .unwrap();
    let dev = bdf(3, 2, 1); // devfn 0x11
    let before = out.len();
    let entry = ContextEntry::new(ContextFields {
        fpd: false,
        tt: TranslationType::UntranslatedOnly,
        slptptr: sl.root(),
        aw: 2,
        did: 42,
    });
    let at = ctx.set_context(&mut alloc, dev, entry, &mut out).unwrap();
    // The bus's context table is the next page (0x10_7000); the root entry's low word (bus
    // 3 → +0x30) is written first, as Linux's `*entry = phy_addr | 1`, then the entry at
    // devfn 0x11 × 16.
    assert_eq!(at, PhysAddr(0x10_7000 + 0x110));
    assert_eq!(ctx.context_address(dev), Some(at));
    assert_eq!(out[before], write_at(0x10_0030, 0x10_7001));
    assert_eq!(out[before + 1].pa, at);
    assert_eq!(out[before + 1].bytes, entry.to_le_bytes());

    let mut mem = SparseMemory::new();
    apply(&mut mem, &out);
    let (slptptr, levels, did, tt) = walk_legacy_context(&mem, ctx.root_table().0, dev);
    assert_eq!((slptptr, levels, did, tt), (0x10_1000, 4, 42, 0));
    // Each page: PA, leaf level, R (bit 0), W (bit 1), SNP (bit 11).
    let bits = |e: u64| (e & 1 != 0, e & 2 != 0, e & 0x800 != 0);
    let (pa, lvl, e) = walk_sl(&mem, slptptr, levels, 0x1234_5abc).unwrap();
    assert_eq!((pa, lvl, bits(e)), (0x8765_4abc, 1, (true, true, true)));
    let (pa, lvl, e) = walk_sl(&mem, slptptr, levels, 0x4021_2345).unwrap();
    assert_eq!((pa, lvl, bits(e)), (0x1_0001_2345, 2, (true, false, false)));
    let (pa, lvl, e) = walk_sl(&mem, slptptr, levels, (1 << 39) + 0x1234_5678).unwrap();
    assert_eq!(
        (pa, lvl, bits(e)),
        ((1 << 38) + 0x1234_5678, 3, (false, true, true))
    );
    assert_eq!(walk_sl(&mem, slptptr, levels, 0x1234_6000), Err(1));
    assert_eq!(walk_sl(&mem, slptptr, levels, 0x4040_0000), Err(2));
    assert_eq!(walk_sl(&mem, slptptr, levels, 0x8000_0000), Err(3));
    // The shadow walk agrees.
    let (pa, size, pte) = sl.lookup(0x4021_2345).unwrap();
    assert_eq!(
        (pa, size, pte.0),
        (PhysAddr(0x1_0001_2345), PageSize::Size2M, 0x1_0000_0081)
    );
    assert_eq!(sl.lookup(0x1234_6000), None);
    // Clearing the context writes zeros over its 16 bytes.
    out.clear();
    assert_eq!(ctx.clear_context(dev, &mut out), Ok(at));
    assert_eq!(
        out,
        [MemWrite {
            pa: at,
            bytes: vec![0; 16]
        }]
    );
    assert_eq!(
        ctx.clear_context(bdf(4, 0, 0), &mut out),
        Err(TableError::NoContext { bdf: bdf(4, 0, 0) })
    );
}

#[test]
fn unmap_writes_zero_to_the_leaf_and_keeps_the_tables() {
    let (mut alloc, _ctx, mut sl) = legacy_domain();
    let mut out = Vec::new();
    let leaf = sl
        .map(
            &mut alloc,
            0x1234_5000,
            PhysAddr(0x8765_4000),
            PageSize::Size4K,
            RW_SNP,
            &mut out,
        )
        .unwrap();
    let mut mem = SparseMemory::new();
    apply(&mut mem, &out);
    out.clear();
    assert_eq!(sl.unmap(0x1234_5000, PageSize::Size4K, &mut out), Ok(leaf));
    assert_eq!(
        out,
        [MemWrite {
            pa: leaf,
            bytes: vec![0; 8]
        }]
    );
    apply(&mut mem, &out);
    assert_eq!(walk_sl(&mem, sl.root().0, 4, 0x1234_5000), Err(1));
    assert_eq!(sl.lookup(0x1234_5000), None);
    assert_eq!(sl.pte_address(0x1234_5000, PageSize::Size4K), Some(leaf));
    // Mapping again reuses the tables: one write, no new page.
    out.clear();
    let used = alloc.used_pages();
    sl.map(
        &mut alloc,
        0x1234_5000,
        PhysAddr(0x1000),
        PageSize::Size4K,
        R_ONLY,
        &mut out,
    )
    .unwrap();
    assert_eq!(out, [write_at(leaf.0, 0x1001)]);
    assert_eq!(alloc.used_pages(), used);
}

#[test]
fn conflicting_maps_and_missing_unmaps_are_refused_without_writes() {
    let (mut alloc, _ctx, mut sl) = legacy_domain();
    let mut out = Vec::new();
    sl.map(
        &mut alloc,
        0x1234_5000,
        PhysAddr(0x8765_4000),
        PageSize::Size4K,
        RW_SNP,
        &mut out,
    )
    .unwrap();
    sl.map(
        &mut alloc,
        0x4020_0000,
        PhysAddr(0x1_0000_0000),
        PageSize::Size2M,
        R_ONLY,
        &mut out,
    )
    .unwrap();
    out.clear();
    let used = alloc.used_pages();
    let p = PhysAddr(0x4000_0000); // aligned for every size
    let k4 = PageSize::Size4K;
    let m2 = PageSize::Size2M;
    let g1 = PageSize::Size1G;
    let cases: [(u64, PageSize, TableError); 4] = [
        // The same 4 KiB twice.
        (
            0x1234_5000,
            k4,
            TableError::AlreadyMapped { iova: 0x1234_5000 },
        ),
        // 4 KiB inside the 2 MiB leaf.
        (
            0x4021_0000,
            k4,
            TableError::AlreadyMapped { iova: 0x4021_0000 },
        ),
        // 2 MiB where a page table already hangs (IOVA 0x1220_0000 has L2 index 0x91).
        (
            0x1220_0000,
            m2,
            TableError::AlreadyMapped { iova: 0x1220_0000 },
        ),
        // 1 GiB over the L2 table of the first gigabyte.
        (0, g1, TableError::AlreadyMapped { iova: 0 }),
    ];
    for (iova, size, err) in cases {
        assert_eq!(
            sl.map(&mut alloc, iova, p, size, R_ONLY, &mut out),
            Err(err)
        );
    }
    assert_eq!(
        sl.unmap(0x1234_6000, k4, &mut out),
        Err(TableError::NotMapped { iova: 0x1234_6000 })
    );
    assert_eq!(
        sl.unmap(0x1220_0000, m2, &mut out),
        Err(TableError::NotMapped { iova: 0x1220_0000 })
    );
    assert_eq!(
        sl.unmap(0x80_0000_0000, k4, &mut out),
        Err(TableError::NotMapped {
            iova: 0x80_0000_0000
        })
    );
    assert_eq!(
        sl.map(&mut alloc, 0x1001, p, k4, R_ONLY, &mut out),
        Err(TableError::Misaligned {
            what: "IOVA",
            addr: 0x1001,
            align: 0x1000
        })
    );
    assert_eq!(
        sl.map(
            &mut alloc,
            0x60_0000,
            PhysAddr(0x1000),
            m2,
            R_ONLY,
            &mut out
        ),
        Err(TableError::Misaligned {
            what: "physical address",
            addr: 0x1000,
            align: 0x20_0000
        })
    );
    assert_eq!(
        sl.map(&mut alloc, 1 << 48, p, k4, R_ONLY, &mut out),
        Err(TableError::AddressTooWide {
            what: "IOVA",
            addr: 1 << 48,
            bits: 48
        })
    );
    assert_eq!(
        sl.map(&mut alloc, 0x7000, PhysAddr(1 << 52), k4, R_ONLY, &mut out),
        Err(TableError::AddressTooWide {
            what: "physical address",
            addr: 1 << 52,
            bits: 52
        })
    );
    assert!(out.is_empty());
    assert_eq!(alloc.used_pages(), used);
}

#[test]
fn running_out_of_table_memory_mid_map_changes_nothing() {
    // Root page plus one free page: a fresh 4-level 4 KiB map needs three.
    let mut alloc = TableAllocator::new(PhysAddr(0x1000), 0x2000).unwrap();
    let mut sl = SlTables::new(&mut alloc, 4).unwrap();
    let mut out = Vec::new();
    let r = sl.map(
        &mut alloc,
        0x5000,
        PhysAddr(0x9000),
        PageSize::Size4K,
        R_ONLY,
        &mut out,
    );
    assert_eq!(
        r,
        Err(TableError::OutOfTableMemory {
            base: PhysAddr(0x1000),
            pages: 2,
            needed: 2
        })
    );
    assert!(out.is_empty());
    assert_eq!((alloc.used_pages(), sl.table_pages()), (1, 1));
    // A 1 GiB leaf needs one table and fits.
    sl.map(
        &mut alloc,
        0,
        PhysAddr(0x4000_0000),
        PageSize::Size1G,
        R_ONLY,
        &mut out,
    )
    .unwrap();
    assert_eq!(out.len(), 2);
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("give the table region more bytes"), "{msg}");
}

#[test]
fn table_depths_other_than_vtd_ones_are_refused() {
    let mut alloc = TableAllocator::new(PhysAddr(0x1000), 0x10000).unwrap();
    for bad in [0, 1, 2, 6] {
        assert_eq!(
            SlTables::new(&mut alloc, bad).err(),
            Some(TableError::BadLevels(bad))
        );
    }
    for bad in [3, 6] {
        assert_eq!(
            FlTables::new(&mut alloc, bad).err(),
            Some(TableError::BadLevels(bad))
        );
    }
    assert_eq!(alloc.used_pages(), 0);
}

#[test]
fn three_level_domain_is_39_bit_with_1g_leaves_at_the_top() {
    let mut alloc = TableAllocator::new(PhysAddr(0x20_0000), 0x4_0000).unwrap();
    let mut ctx = ContextTables::new_legacy(&mut alloc).unwrap();
    let mut sl = SlTables::new(&mut alloc, 3).unwrap();
    let mut out = Vec::new();
    let top = (1u64 << 39) - 0x1000;
    sl.map(
        &mut alloc,
        top,
        PhysAddr(0x7000),
        PageSize::Size4K,
        RW_SNP,
        &mut out,
    )
    .unwrap();
    sl.map(
        &mut alloc,
        1 << 30,
        PhysAddr(1 << 31),
        PageSize::Size1G,
        R_ONLY,
        &mut out,
    )
    .unwrap();
    assert_eq!(
        sl.map(
            &mut alloc,
            1 << 39,
            PhysAddr(0x7000),
            PageSize::Size4K,
            R_ONLY,
            &mut out
        ),
        Err(TableError::AddressTooWide {
            what: "IOVA",
            addr: 1 << 39,
            bits: 39
        })
    );
    let dev = bdf(0, 3, 0);
    let e = ContextEntry::new(ContextFields {
        fpd: false,
        tt: TranslationType::DeviceTlb,
        slptptr: sl.root(),
        aw: 1, // 39-bit, 3 levels
        did: 1,
    });
    ctx.set_context(&mut alloc, dev, e, &mut out).unwrap();
    let mut mem = SparseMemory::new();
    apply(&mut mem, &out);
    let (root, levels, _, tt) = walk_legacy_context(&mem, ctx.root_table().0, dev);
    assert_eq!((levels, tt), (3, 1));
    assert_eq!(
        walk_sl(&mem, root, levels, top + 0x10).map(|r| r.0),
        Ok(0x7010)
    );
    let (pa, lvl, e) = walk_sl(&mem, root, levels, (1 << 30) + 0x5555).unwrap();
    assert_eq!((pa, lvl, e), ((1 << 31) + 0x5555, 3, (1 << 31) | 0x81));
}

#[test]
fn five_level_domain_uses_iova_bits_56_to_48() {
    let mut alloc = TableAllocator::new(PhysAddr(0x20_0000), 0x4_0000).unwrap();
    let mut ctx = ContextTables::new_legacy(&mut alloc).unwrap();
    let mut sl = SlTables::new(&mut alloc, 5).unwrap();
    let mut out = Vec::new();
    // IOVA 2^48 + 0x3000: L5 index 1, L4..L2 index 0, L1 index 3 → four new tables.
    let iova = (1u64 << 48) + 0x3000;
    sl.map(
        &mut alloc,
        iova,
        PhysAddr(0xabc_d000),
        PageSize::Size4K,
        RW_SNP,
        &mut out,
    )
    .unwrap();
    assert_eq!(out.len(), 5);
    assert_eq!(out[0].pa, PhysAddr(sl.root().0 + 8));
    assert_eq!(
        sl.map(
            &mut alloc,
            1 << 57,
            PhysAddr(0),
            PageSize::Size4K,
            R_ONLY,
            &mut out
        ),
        Err(TableError::AddressTooWide {
            what: "IOVA",
            addr: 1 << 57,
            bits: 57
        })
    );
    let dev = bdf(0x80, 0x1f, 7);
    let e = ContextEntry::new(ContextFields {
        fpd: true,
        tt: TranslationType::UntranslatedOnly,
        slptptr: sl.root(),
        aw: 3, // 57-bit, 5 levels
        did: 0xffff,
    });
    ctx.set_context(&mut alloc, dev, e, &mut out).unwrap();
    let mut mem = SparseMemory::new();
    apply(&mut mem, &out);
    let (root, levels, did, _) = walk_legacy_context(&mem, ctx.root_table().0, dev);
    assert_eq!((levels, did), (5, 0xffff));
    assert_eq!(
        walk_sl(&mem, root, levels, iova + 0x123).map(|r| r.0),
        Ok(0xabc_d123)
    );
    assert_eq!(walk_sl(&mem, root, levels, 0x3000), Err(5));
}

#[test]
fn set_leaf_rewrites_an_existing_slot_raw() {
    let (mut alloc, _ctx, mut sl) = legacy_domain();
    let mut out = Vec::new();
    let leaf = sl
        .map(
            &mut alloc,
            0x4020_0000,
            PhysAddr(0x1_0000_0000),
            PageSize::Size2M,
            RW_SNP,
            &mut out,
        )
        .unwrap();
    out.clear();
    // Drop SNP from the live 2 MiB leaf, as a scenario that "forgets" snoop control would.
    let no_snp = SlPte(0x1_0000_0083);
    assert_eq!(
        sl.set_leaf(0x4020_0000, PageSize::Size2M, no_snp, &mut out),
        Ok(leaf)
    );
    assert_eq!(out, [write_at(leaf.0, 0x1_0000_0083)]);
    assert_eq!(sl.lookup(0x4020_0000).map(|l| l.2), Some(no_snp));
    // A corrupt value (reserved bit 62) is written as is.
    out.clear();
    sl.set_leaf(
        0x4020_0000,
        PageSize::Size2M,
        SlPte(no_snp.0 | 1 << 62),
        &mut out,
    )
    .unwrap();
    assert_eq!(out[0].bytes, (no_snp.0 | 1 << 62).to_le_bytes());
    // No table above the slot: nothing to rewrite.
    assert_eq!(
        sl.set_leaf(0x4040_1000, PageSize::Size4K, no_snp, &mut out),
        Err(TableError::NotMapped { iova: 0x4040_1000 })
    );
    // The slot holds a table pointer: refused.
    sl.map(
        &mut alloc,
        0x1000,
        PhysAddr(0x1000),
        PageSize::Size4K,
        R_ONLY,
        &mut out,
    )
    .unwrap();
    assert_eq!(
        sl.set_leaf(0, PageSize::Size2M, no_snp, &mut out),
        Err(TableError::AlreadyMapped { iova: 0 })
    );
}

#[test]
fn scalable_context_lives_in_the_lower_or_upper_table_by_devfn() {
    let mut alloc = TableAllocator::new(PhysAddr(0x40_0000), 0x8_0000).unwrap();
    let mut ctx = ContextTables::new_scalable(&mut alloc).unwrap();
    assert!(ctx.scalable());
    let dir = ContextTables::alloc_pasid_dir(&mut alloc, 0).unwrap(); // 128 × 8 B: one page
    assert_eq!(
        (ctx.root_table(), dir),
        (PhysAddr(0x40_0000), PhysAddr(0x40_1000))
    );
    let e = ScalableContextEntry::new(ScalableContextFields {
        fpd: false,
        dte: false,
        paside: true,
        pre: false,
        pdts: 0,
        pasid_dir_ptr: dir,
        rid_pasid: 0,
    });
    let mut out = Vec::new();
    // devfn 0x00 → lower table (next page 0x40_2000), offset 0.
    let low = ctx
        .set_scalable_context(&mut alloc, bdf(0, 0, 0), e, &mut out)
        .unwrap();
    assert_eq!(low, PhysAddr(0x40_2000));
    assert_eq!(out[0], write_at(0x40_0000, 0x40_2001)); // root lo = LCTP | LP
    assert_eq!((out[1].pa, out[1].bytes.len()), (low, 32));
    // devfn 0x85 (00:10.5) → upper table (0x40_3000) at (0x85 & 0x7f) × 2 × 16 B = 0xa0;
    // the root entry's high word (byte 8) gets UCTP | UP.
    out.clear();
    let up = ctx
        .set_scalable_context(&mut alloc, bdf(0, 0x10, 5), e, &mut out)
        .unwrap();
    assert_eq!(up, PhysAddr(0x40_3000 + 0xa0));
    assert_eq!(out[0], write_at(0x40_0008, 0x40_3001));
    // A second lower-half device reuses the lower table.
    out.clear();
    let low2 = ctx
        .set_scalable_context(&mut alloc, bdf(0, 0x0f, 7), e, &mut out)
        .unwrap();
    assert_eq!((low2, out.len()), (PhysAddr(0x40_2000 + 0x7f * 32), 1));
    assert_eq!(ctx.context_address(bdf(0, 0x10, 5)), Some(up));
    assert_eq!(ctx.context_address(bdf(1, 0, 0)), None);
    // Legacy operations are refused on scalable tables, and the reverse.
    let legacy = ContextEntry::default();
    assert_eq!(
        ctx.set_context(&mut alloc, bdf(0, 1, 0), legacy, &mut out),
        Err(TableError::WrongMode {
            op: "set_context",
            scalable: true
        })
    );
    let mut lctx = ContextTables::new_legacy(&mut alloc).unwrap();
    let err = lctx
        .set_scalable_context(&mut alloc, bdf(0, 1, 0), e, &mut out)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "set_scalable_context needs scalable-mode tables but these are legacy"
    );
}

#[test]
fn pasid_directory_and_table_indexes_for_pasids_0_63_64_1000() {
    let mut alloc = TableAllocator::new(PhysAddr(0x40_0000), 0x8_0000).unwrap();
    let mut ctx = ContextTables::new_scalable(&mut alloc).unwrap(); // 0x40_0000
    let dir = ContextTables::alloc_pasid_dir(&mut alloc, 0).unwrap(); // 0x40_1000
    let mut sl = SlTables::new(&mut alloc, 4).unwrap(); // 0x40_2000
    let dev = bdf(2, 0, 0);
    let mut out = Vec::new();
    let ce = ScalableContextEntry::new(ScalableContextFields {
        fpd: false,
        dte: true,
        paside: true,
        pre: false,
        pdts: 0,
        pasid_dir_ptr: dir,
        rid_pasid: 0,
    });
    assert_eq!(
        ctx.set_pasid_entry(&mut alloc, dev, 0, PasidEntry::default(), &mut out),
        Err(TableError::NoContext { bdf: dev })
    );
    ctx.set_scalable_context(&mut alloc, dev, ce, &mut out)
        .unwrap(); // ctx table 0x40_3000
    sl.map(
        &mut alloc,
        0x10_0000,
        PhysAddr(0x7700_0000),
        PageSize::Size4K,
        R_ONLY,
        &mut out,
    )
    .unwrap(); // tables 0x40_4000..0x40_6000
    let mut log = out.clone();
    let pe = PasidEntry::new(PasidFields {
        fpd: false,
        aw: 2,
        pgtt: Pgtt::SecondLevel,
        slptptr: sl.root(),
        did: 3,
        pwsnp: false,
        pgsnp: true,
        sre: false,
        flpm: 0,
        wpe: false,
        nxe: false,
        flptr: PhysAddr(0),
    });
    // (pasid, directory index = pasid >> 6, table index = pasid & 0x3f, new table page)
    let cases: [(u32, u64, u64, Option<u64>); 4] = [
        (0, 0, 0, Some(0x40_7000)),
        (63, 0, 63, None),
        (64, 1, 0, Some(0x40_8000)),
        (1000, 15, 40, Some(0x40_9000)),
    ];
    let mut tables = BTreeMap::new();
    for (pasid, dir_idx, idx, new_table) in cases {
        out.clear();
        let at = ctx
            .set_pasid_entry(&mut alloc, dev, pasid, pe, &mut out)
            .unwrap();
        let table = *tables
            .entry(dir_idx)
            .or_insert_with(|| new_table.expect("a new table for a new directory slot"));
        assert_eq!(at, PhysAddr(table + idx * 64), "PASID {pasid}");
        assert_eq!(ctx.pasid_entry_address(dev, pasid), Some(at));
        match new_table {
            Some(t) => {
                // Directory entry (table | P) first, then the 64-byte PASID entry.
                assert_eq!(
                    out[0],
                    write_at(dir.0 + dir_idx * 8, t | 1),
                    "PASID {pasid}"
                );
                assert_eq!(out.len(), 2);
            }
            None => assert_eq!(out.len(), 1),
        }
        assert_eq!(out.last().map(|w| (w.pa, w.bytes.len())), Some((at, 64)));
        log.extend_from_slice(&out);
    }
    assert_eq!(ctx.pasid_entry_address(dev, 200), None); // directory slot 3 empty
                                                         // PDTS 0: 128 directory entries cover PASIDs below 128 × 64 = 8192.
    assert_eq!(
        ctx.set_pasid_entry(&mut alloc, dev, 8192, pe, &mut out),
        Err(TableError::PasidTooLarge {
            pasid: 8192,
            limit: 8192
        })
    );
    assert_eq!(
        ctx.set_pasid_entry(&mut alloc, dev, 1 << 20, pe, &mut out),
        Err(TableError::PasidTooLarge {
            pasid: 1 << 20,
            limit: 1 << 20
        })
    );

    // Walk by hand: root → context → directory → PASID entry 1000 → second-level tables.
    let mut mem = SparseMemory::new();
    apply(&mut mem, &log);
    let ctx_at = scalable_context_addr(&mem, 0x40_0000, dev);
    assert_eq!(ctx_at, 0x40_3000);
    let pe_at = pasid_entry_addr(&mem, ctx_at, 1000);
    let (q0, q1) = (rd(&mem, pe_at), rd(&mem, pe_at + 8));
    assert_eq!((q0 & 1, (q0 >> 6) & 7, (q0 >> 2) & 7), (1, 2, 2)); // P, PGTT 2, AW 2
    assert_eq!((q1 & 0xffff, (q1 >> 24) & 1), (3, 1)); // DID 3, PGSNP
    let r = walk_sl(&mem, q0 & !0xfff, 4, 0x10_0abc);
    assert_eq!(r.map(|r| r.0), Ok(0x7700_0abc));
}

#[test]
fn larger_pdts_directories_span_pages_and_reach_high_pasids() {
    let mut alloc = TableAllocator::new(PhysAddr(0x40_0000), 0x8_0000).unwrap();
    let mut ctx = ContextTables::new_scalable(&mut alloc).unwrap();
    // PDTS 7: 2^14 entries × 8 B = 128 KiB = 32 pages, the whole 20-bit PASID space.
    let dir = ContextTables::alloc_pasid_dir(&mut alloc, 7).unwrap();
    assert_eq!(alloc.used_pages(), 33);
    let dev = bdf(0, 1, 0);
    let mut out = Vec::new();
    let ce = ScalableContextEntry::new(ScalableContextFields {
        fpd: false,
        dte: false,
        paside: true,
        pre: false,
        pdts: 7,
        pasid_dir_ptr: dir,
        rid_pasid: 0,
    });
    ctx.set_scalable_context(&mut alloc, dev, ce, &mut out)
        .unwrap();
    let max = (1u32 << 20) - 1;
    out.clear();
    ctx.set_pasid_entry(&mut alloc, dev, max, PasidEntry::default(), &mut out)
        .unwrap();
    // Directory index 0x3fff lies in the directory's last page.
    assert_eq!(out[0].pa, PhysAddr(dir.0 + 0x3fff * 8));
}

#[test]
fn first_level_tables_walk_by_hand_through_a_pasid_entry() {
    let mut alloc = TableAllocator::new(PhysAddr(0x40_0000), 0x8_0000).unwrap();
    let mut ctx = ContextTables::new_scalable(&mut alloc).unwrap();
    let dir = ContextTables::alloc_pasid_dir(&mut alloc, 1).unwrap();
    let mut fl = FlTables::new(&mut alloc, 4).unwrap();
    assert_eq!(fl.levels(), 4);
    let mut out = Vec::new();
    let rw = FlPerm {
        writable: true,
        user: true,
        xd: false,
    };
    let ro = FlPerm {
        writable: false,
        user: true,
        xd: false,
    };
    fl.map(
        &mut alloc,
        0x7000,
        PhysAddr(0x9000_0000),
        PageSize::Size4K,
        rw,
        &mut out,
    )
    .unwrap();
    fl.map(
        &mut alloc,
        0x20_0000,
        PhysAddr(0xa000_0000),
        PageSize::Size2M,
        ro,
        &mut out,
    )
    .unwrap();
    // First-level IOVAs stay in the lower canonical half: bit 47 is the sign bit.
    assert_eq!(
        fl.map(
            &mut alloc,
            1 << 47,
            PhysAddr(0),
            PageSize::Size4K,
            ro,
            &mut out
        ),
        Err(TableError::AddressTooWide {
            what: "IOVA",
            addr: 1 << 47,
            bits: 47
        })
    );
    let dev = bdf(5, 0, 0);
    let ce = ScalableContextEntry::new(ScalableContextFields {
        fpd: false,
        dte: false,
        paside: true,
        pre: false,
        pdts: 1,
        pasid_dir_ptr: dir,
        rid_pasid: 0,
    });
    ctx.set_scalable_context(&mut alloc, dev, ce, &mut out)
        .unwrap();
    let pe = PasidEntry::new(PasidFields {
        fpd: false,
        aw: 2,
        pgtt: Pgtt::FirstLevel,
        slptptr: PhysAddr(0),
        did: 8,
        pwsnp: true,
        pgsnp: true,
        sre: false,
        flpm: 0,
        wpe: false,
        nxe: false,
        flptr: fl.root(),
    });
    ctx.set_pasid_entry(&mut alloc, dev, 64, pe, &mut out)
        .unwrap();
    let mut mem = SparseMemory::new();
    apply(&mut mem, &out);
    let pe_at = pasid_entry_addr(&mem, scalable_context_addr(&mem, 0x40_0000, dev), 64);
    let (q0, q1, q2) = (rd(&mem, pe_at), rd(&mem, pe_at + 8), rd(&mem, pe_at + 16));
    assert_eq!((q0 >> 6) & 7, 1, "PGTT first-level");
    assert_eq!((q1 >> 23) & 3, 0b11, "PWSNP and PGSNP");
    assert_eq!((q2 >> 2) & 3, 0, "FLPM 4-level");
    let root = q2 & !0xfff;
    assert_eq!(
        walk_fl(&mem, root, 4, 0x7123),
        Ok((0x9000_0123, 1, 0x9000_0067))
    );
    assert_eq!(
        walk_fl(&mem, root, 4, 0x21_0000),
        Ok((0xa001_0000, 2, 0xa000_00a5))
    );
    assert_eq!(walk_fl(&mem, root, 4, 0x8000), Err(1));
    assert_eq!(
        fl.lookup(0x21_0000).map(|l| (l.0, l.1)),
        Some((PhysAddr(0xa001_0000), PageSize::Size2M))
    );
    out.clear();
    let at = fl.unmap(0x7000, PageSize::Size4K, &mut out).unwrap();
    assert_eq!(Some(at), fl.pte_address(0x7000, PageSize::Size4K));
    assert_eq!(
        out,
        [MemWrite {
            pa: at,
            bytes: vec![0; 8]
        }]
    );
}

/// A small deterministic generator (xorshift64*), so the property test needs no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn random_maps_and_unmaps_agree_with_a_model_the_shadow_and_a_hand_walk_of_memory() {
    // Each page size gets its own IOVA area, so the model predicts every result exactly:
    // 4 KiB in [0, 4 MiB), 2 MiB in [1 GiB, 1 GiB + 64 MiB), 1 GiB in [2^39, 2^39 + 8 GiB).
    let area = |s: PageSize| match s {
        PageSize::Size4K => (0u64, 1024u64),
        PageSize::Size2M => (1 << 30, 32),
        PageSize::Size1G => (1 << 39, 8),
    };
    let mut rng = Rng(0x5eed_7ab1_e500_0001);
    let mut alloc = TableAllocator::new(PhysAddr(0x100_0000), 0x100_0000).unwrap();
    let mut sl = SlTables::new(&mut alloc, 4).unwrap();
    let mut mem = SparseMemory::new();
    let mut model: BTreeMap<u64, (PageSize, u64, u64)> = BTreeMap::new(); // iova → (size, pa, pte)
    let mut out = Vec::new();
    let mut refused = 0;
    for step in 0..3000 {
        let size = PageSize::ALL[rng.below(3) as usize];
        let (base, slots) = area(size);
        let iova = base + rng.below(slots) * size.bytes();
        out.clear();
        if rng.below(3) == 0 {
            let r = sl.unmap(iova, size, &mut out);
            match model.remove(&iova) {
                Some(_) => assert_eq!(r.map(|_| out.len()), Ok(1), "step {step}"),
                None => assert_eq!(r, Err(TableError::NotMapped { iova }), "step {step}"),
            }
        } else {
            let pa = rng.below(1 << 20) << size.shift() & ((1 << 52) - 1);
            // Never R = W = 0: such a leaf is not present (and with PA 0, all zero).
            let read = rng.below(2) == 0;
            let perm = SlPerm {
                read,
                write: !read || rng.below(2) == 0,
                snp: rng.below(2) == 0,
            };
            let r = sl.map(&mut alloc, iova, PhysAddr(pa), size, perm, &mut out);
            match model.entry(iova) {
                Entry::Occupied(_) => {
                    assert_eq!(r, Err(TableError::AlreadyMapped { iova }), "step {step}");
                    refused += 1;
                }
                Entry::Vacant(slot) => {
                    let at = r.unwrap_or_else(|e| panic!("step {step}: {e}"));
                    assert_eq!(sl.pte_address(iova, size), Some(at));
                    slot.insert((size, pa, SlPte::leaf(PhysAddr(pa), size, perm).0));
                }
            }
        }
        apply(&mut mem, &out);
        // Probe a few IOVAs in every area: model, shadow walk and memory walk agree.
        for s in PageSize::ALL {
            let (base, slots) = area(s);
            let probe = base + rng.below(slots * s.bytes());
            let expect = model
                .range(..=probe)
                .next_back()
                .filter(|(&i, &(sz, _, _))| probe < i + sz.bytes())
                .map(|(&i, &(sz, pa, pte))| (pa + (probe - i), sz, pte));
            let shadow = sl.lookup(probe);
            assert_eq!(
                shadow.map(|l| (l.0 .0, l.1, l.2 .0)),
                expect,
                "step {step} probe {probe:#x}"
            );
            let walked = walk_sl(&mem, sl.root().0, 4, probe).ok();
            let walked = walked.map(|(pa, lvl, pte)| (pa, PageSize::from_level(lvl).unwrap(), pte));
            assert_eq!(walked, expect, "step {step} probe {probe:#x}: memory");
        }
    }
    assert!(model.len() > 100, "the run kept {} mappings", model.len());
    assert!(refused > 100, "only {refused} double maps were tried");
}
