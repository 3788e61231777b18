//! Translation walks from the specification's side (VT-d rev. 4.1 ch. 3 and 9; fault reasons
//! §7.1.3 as Linux `dmar.c` and QEMU `VTDFaultReason` list them).
//!
//! Every case is decided three ways that must agree ([`common::three_ways`]):
//! `walk::reference` directly, the agent's `reference_translate`, and the timed agent on a
//! freshly booted unit. Expected physical addresses and reason codes are derived in the
//! comments from the bit layouts, never read back from the code under test.

mod common;

use common::*;
use model_core::{PhysAddr, Translation, TranslationRequest};
use vtd::entry::{
    ContextFields, FlPerm, FlPte, PageSize, PasidFields, Pgtt, ScalableContextEntry,
    ScalableContextFields, SlPte, TranslationType,
};
use vtd::regs::Capabilities;
use vtd::tables::{FlTables, TableAllocator};
use vtd::VtdConfig;

/// The device used throughout: bus 3, so its root entry is root table + 3 × 16.
fn dev0() -> model_core::Bdf {
    dev(3, 0, 0)
}
/// Domain id of the main domain.
const DID: u16 = 1;

/// Legacy hardware with 3-, 4- and 5-level tables and a 57-bit MGAW, else the default
/// Skylake-like unit (HAW 46, SLLPS 2M+1G, SC, PT, DT, C).
fn legacy_caps() -> Capabilities {
    Capabilities {
        sagaw_levels: vec![3, 4, 5],
        mgaw: 57,
        ..Capabilities::default()
    }
}

fn cfg(caps: Capabilities) -> VtdConfig {
    VtdConfig {
        caps,
        ..VtdConfig::default()
    }
}

/// Applies the set-up's writes (flushed) to a fresh memory.
fn memory(l: &mut Legacy) -> Memory {
    let mut m = Memory::default();
    m.write_flushed(&l.take());
    m
}

/// `three_ways` over a legacy set-up.
fn legacy_outcome(
    c: &VtdConfig,
    m: &Memory,
    l: &Legacy,
    r: &TranslationRequest,
) -> Result<Translation, u32> {
    three_ways(c, m, l.root(), false, r)
}

fn translation(pa: u64, forces_snoop: bool) -> Result<Translation, u32> {
    Ok(Translation {
        pa: PhysAddr(pa),
        forces_snoop,
    })
}

// ---------------------------------------------------------------------------------------
// 1. Second-level walks of every depth and page size
// ---------------------------------------------------------------------------------------

#[test]
fn second_level_walk_gives_page_base_or_offset_for_3_4_5_levels_and_4k_2m_1g_pages() {
    let c = cfg(legacy_caps());
    for levels in [3u8, 4, 5] {
        // AGAW width of the table: 30 + 9·(levels − 2) = 39, 48, 57 bits (§3.6 Table 2).
        let width = 30 + 9 * u32::from(levels - 2);
        for size in PageSize::ALL {
            let mask = size.bytes() - 1;
            // The top IOVA bit of the table's width is set, so every level's index is
            // non-zero somewhere: index(L) = iova bits 12+9(L−1) .. 20+9(L−1).
            let iova_page = ((1u64 << (width - 1)) | 0x15 << 30 | 0x1a3 << 21 | 0xc7 << 12) & !mask;
            let pa_page = 0x12_3456_7000 & !mask;
            // An odd offset inside the page: 0xef1 (4K), 0x1c_def1 (2M), 0x0abc_def1 (1G).
            let offset = 0x0abc_def1 & mask;
            for p in [
                perm(true, true, true),
                perm(true, false, false),
                perm(false, true, false),
            ] {
                let mut l = Legacy::new(levels);
                l.attach(dev0(), DID);
                l.map(iova_page, pa_page, size, p);
                let m = memory(&mut l);
                let what = format!("{levels}-level {size} {p:?}");
                // A leaf maps `pa_page`; the output is page base | offset (§3.7), and the
                // leaf's SNP with ECAP.SC = 1 sets forces_snoop (§9.8 SNP).
                let hit = translation(pa_page | offset, p.snp);
                // Legacy reason 0x6: read of a page with R = 0; 0x5: write with W = 0.
                let read = legacy_outcome(&c, &m, &l, &rd(dev0(), iova_page | offset));
                let write = legacy_outcome(&c, &m, &l, &wr(dev0(), iova_page | offset));
                assert_eq!(read, if p.read { hit } else { Err(0x6) }, "read, {what}");
                assert_eq!(write, if p.write { hit } else { Err(0x5) }, "write, {what}");

                // The cold walk reads the root entry, the context entry, then one entry per
                // level from the top down to the leaf level: 2 + levels − leaf + 1 reads.
                let mut sys = Sys::new(c.clone());
                sys.mem = m.clone();
                sys.boot(l.root(), false, false);
                sys.translate_now(rd(dev0(), iova_page | offset));
                let expected_reads = 2 + u64::from(levels - size.leaf_level() + 1);
                assert_eq!(sys.walk_reads(), expected_reads, "{what}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// 2. Legacy faults
// ---------------------------------------------------------------------------------------

#[test]
fn legacy_permission_and_not_present_faults_are_read_0x6_and_write_0x5_at_every_level() {
    let c = cfg(legacy_caps());
    let mut l = Legacy::new(4);
    l.attach(dev0(), DID);
    // 0x4000_0000: L4[0] → L3[1] → L2[0] → L1[0]; 0x4000_1000 is L1[1] of the same table.
    l.map(
        0x4000_0000,
        0x7_0000_0000,
        PageSize::Size4K,
        perm(true, false, false),
    );
    l.map(
        0x4000_1000,
        0x7_0000_1000,
        PageSize::Size4K,
        perm(false, true, false),
    );
    let m = memory(&mut l);
    let o = |r: TranslationRequest| legacy_outcome(&c, &m, &l, &r);
    // R-only page: reads translate, writes fault 0x5 (W = 0).
    assert_eq!(o(rd(dev0(), 0x4000_0123)), ok(0x7_0000_0123));
    assert_eq!(o(wr(dev0(), 0x4000_0123)), Err(0x5));
    // W-only page: reads fault 0x6 (R = 0), writes translate.
    assert_eq!(o(rd(dev0(), 0x4000_1040)), Err(0x6));
    assert_eq!(o(wr(dev0(), 0x4000_1040)), ok(0x7_0000_1040));
    // A second-level entry is present iff R|W != 0 (Linux dma_pte_present); a not-present
    // entry denies the access it was asked for: 0x6 for reads, 0x5 for writes (QEMU
    // vtd_iova_to_slpte: `is_write ? VTD_FR_WRITE : VTD_FR_READ`), at any level:
    for (iova, level) in [
        (0x4000_2000u64, "L1 leaf"),  // L1[2] is zero
        (0x4020_0000, "L2 entry"),    // L2[1] is zero
        (0x8000_0000, "L3 entry"),    // L3[2] is zero
        (0x80_0000_0000, "L4 entry"), // L4[1] is zero (bit 39)
    ] {
        assert_eq!(o(rd(dev0(), iova)), Err(0x6), "read, not-present {level}");
        assert_eq!(o(wr(dev0(), iova)), Err(0x5), "write, not-present {level}");
    }
}

#[test]
fn addresses_beyond_the_table_width_or_mgaw_fault_0x4() {
    // 4-level table: 48-bit input, so 2^48 is out of range (0x4, address beyond MGAW, QEMU
    // vtd_iova_range_check with limit 1 << min(agaw, aw_bits)), 2^48 − 4 KiB is not.
    let c = cfg(legacy_caps());
    let mut l = Legacy::new(4);
    l.attach(dev0(), DID);
    l.map(0x1000, 0x5000, PageSize::Size4K, RW);
    let m = memory(&mut l);
    assert_eq!(legacy_outcome(&c, &m, &l, &rd(dev0(), 1 << 48)), Err(0x4));
    assert_eq!(legacy_outcome(&c, &m, &l, &wr(dev0(), !0xfffu64)), Err(0x4));
    assert_eq!(
        legacy_outcome(&c, &m, &l, &rd(dev0(), (1 << 48) - 0x1000)),
        Err(0x6)
    );
    // 3-level table: 39-bit input.
    let mut l3 = Legacy::new(3);
    l3.attach(dev0(), DID);
    l3.map(0x1000, 0x5000, PageSize::Size4K, RW);
    let m3 = memory(&mut l3);
    assert_eq!(legacy_outcome(&c, &m3, &l3, &rd(dev0(), 1 << 39)), Err(0x4));
    assert_eq!(
        legacy_outcome(&c, &m3, &l3, &rd(dev0(), (1 << 39) - 0x1000)),
        Err(0x6)
    );
    // MGAW narrower than the table: CAP.MGAW = 39 with a 4-level (48-bit) table limits the
    // input to 39 bits.
    let narrow = cfg(Capabilities {
        mgaw: 39,
        ..Capabilities::default()
    });
    assert_eq!(
        legacy_outcome(&narrow, &m, &l, &rd(dev0(), 1 << 39)),
        Err(0x4)
    );
    assert_eq!(
        legacy_outcome(&narrow, &m, &l, &rd(dev0(), 0x1008)),
        ok(0x5008)
    );
}

#[test]
fn root_and_context_not_present_fault_0x1_and_0x2() {
    let c = cfg(legacy_caps());
    let mut l = Legacy::new(4);
    l.attach(dev0(), DID);
    l.map(0x1000, 0x5000, PageSize::Size4K, RW);
    let m = memory(&mut l);
    // Bus 9 has no context table: root entry 9 has P = 0 → 0x1.
    assert_eq!(
        legacy_outcome(&c, &m, &l, &rd(dev(9, 0, 0), 0x1000)),
        Err(0x1)
    );
    // Bus 3 has one (for 03:00.0) but 03:05.0's context entry is zero: P = 0 → 0x2.
    assert_eq!(
        legacy_outcome(&c, &m, &l, &rd(dev(3, 5, 0), 0x1000)),
        Err(0x2)
    );
    assert_eq!(legacy_outcome(&c, &m, &l, &rd(dev0(), 0x1000)), ok(0x5000));
}

fn with_tt(tt: TranslationType) -> (Legacy, Memory) {
    let mut l = Legacy::new(4);
    l.map(0x1000, 0x5000, PageSize::Size4K, RW);
    let f = ContextFields {
        tt,
        ..l.fields(DID)
    };
    l.set_context(dev0(), f);
    let m = memory(&mut l);
    (l, m)
}

#[test]
fn pass_through_context_gives_pa_equal_iova_with_ecap_pt_and_0x3_without() {
    let (l, m) = with_tt(TranslationType::PassThrough);
    // TT = 2 (§9.3): untranslated requests bypass translation, PA = IOVA, no snoop forcing.
    let pt = cfg(legacy_caps());
    assert_eq!(legacy_outcome(&pt, &m, &l, &rd(dev0(), 0x1000)), ok(0x1000));
    assert_eq!(
        legacy_outcome(&pt, &m, &l, &wr(dev0(), 0xdead_b000)),
        ok(0xdead_b000)
    );
    // Without ECAP.PT, TT = 2 is an unsupported programming of the context: 0x3.
    let no_pt = cfg(Capabilities {
        pass_through: false,
        ..legacy_caps()
    });
    assert_eq!(
        legacy_outcome(&no_pt, &m, &l, &rd(dev0(), 0x1000)),
        Err(0x3)
    );
    // TT = 3 is reserved: 0x3 as well.
    let (l3, m3) = with_tt(TranslationType::Reserved);
    assert_eq!(legacy_outcome(&pt, &m3, &l3, &rd(dev0(), 0x1000)), Err(0x3));
}

#[test]
fn large_leaves_without_the_sllps_bit_for_their_size_fault_0xc() {
    // CAP.SLLPS bit 0 = 2 MiB, bit 1 = 1 GiB second-level pages (§11.4.2); a PS = 1 leaf of
    // a size the hardware does not support has PS as a reserved bit (§9.8): fault 0xC.
    let mut l = Legacy::new(4);
    l.attach(dev0(), DID);
    l.map(0x4000_0000, 0x9_0000_0000, PageSize::Size2M, RW);
    l.map(0x8000_0000, 0x40_0000_0000, PageSize::Size1G, RW);
    let m = memory(&mut l);
    let (r2m, r1g) = (rd(dev0(), 0x4000_1234), rd(dev0(), 0x8765_4321));
    let both = cfg(legacy_caps());
    assert_eq!(legacy_outcome(&both, &m, &l, &r2m), ok(0x9_0000_1234));
    assert_eq!(legacy_outcome(&both, &m, &l, &r1g), ok(0x40_0765_4321));
    let only_2m = cfg(Capabilities {
        sllps_1g: false,
        ..legacy_caps()
    });
    assert_eq!(legacy_outcome(&only_2m, &m, &l, &r2m), ok(0x9_0000_1234));
    assert_eq!(legacy_outcome(&only_2m, &m, &l, &r1g), Err(0xc));
    let none = cfg(Capabilities {
        sllps_2m: false,
        sllps_1g: false,
        ..legacy_caps()
    });
    assert_eq!(legacy_outcome(&none, &m, &l, &r2m), Err(0xc));
    assert_eq!(legacy_outcome(&none, &m, &l, &r1g), Err(0xc));
}

#[test]
fn context_aw_not_in_sagaw_is_an_invalid_context_0x3() {
    // A 5-level table (AW = 3) on hardware reporting SAGAW = {3, 4} levels only.
    let c = cfg(Capabilities::default());
    let mut l = Legacy::new(5);
    l.attach(dev0(), DID);
    l.map(0x1000, 0x5000, PageSize::Size4K, RW);
    let m = memory(&mut l);
    assert_eq!(legacy_outcome(&c, &m, &l, &rd(dev0(), 0x1000)), Err(0x3));
}

#[test]
fn translated_requests_are_blocked_0xd_with_tt0_and_pass_through_with_tt1() {
    let c = cfg(legacy_caps());
    let translated = |iova| TranslationRequest {
        translated: true,
        ..rd(dev0(), iova)
    };
    // TT = 0: "untranslated requests only" — a request with AT = translated is blocked (0xD).
    let (l0, m0) = with_tt(TranslationType::UntranslatedOnly);
    assert_eq!(legacy_outcome(&c, &m0, &l0, &translated(0x5000)), Err(0xd));
    // TT = 1 (device-TLB): the device translated with ATS, the address is already host
    // physical: PA = the request's address, whatever the tables say.
    let (l1, m1) = with_tt(TranslationType::DeviceTlb);
    assert_eq!(
        legacy_outcome(&c, &m1, &l1, &translated(0x5000)),
        ok(0x5000)
    );
    assert_eq!(
        legacy_outcome(&c, &m1, &l1, &translated(0x9_9000)),
        ok(0x9_9000)
    );
    // and untranslated requests still walk the tables.
    assert_eq!(
        legacy_outcome(&c, &m1, &l1, &rd(dev0(), 0x1234)),
        ok(0x5234)
    );
    // TT = 2 pass-through does not allow translated requests either (0xD).
    let (l2, m2) = with_tt(TranslationType::PassThrough);
    assert_eq!(legacy_outcome(&c, &m2, &l2, &translated(0x5000)), Err(0xd));
}

// ---------------------------------------------------------------------------------------
// 3. Reserved bits
// ---------------------------------------------------------------------------------------

/// QEMU's `VTD_SPTE_*_RSVD_MASK(aw)` (hw/i386/intel_iommu_internal.h, `stale_tm` = false,
/// and `vtd_init` clearing 0x800 from the leaf masks when snoop control is on), written out:
/// `~(VTD_HAW_MASK(aw) | VTD_SL_IGN_COM)` with `VTD_SL_IGN_COM` = 0xbff0_0000_0000_0000 is
/// bits aw..51 plus bit 62 (TM) = 0x400f_c000_0000_0000 for aw = 46 and 0x400f_0000_0000_0000
/// for aw = 48; then L1 | 0x800, L2/L3 non-leaf | 0x800, L4 | 0x880, 2 MiB leaf | 0x1ff800,
/// 1 GiB leaf | 0x3ffff800. Columns: haw, SC, [L1, L2, L3, L4, 2M leaf, 1G leaf].
const QEMU_SPTE_MASKS: &[(u8, bool, [u64; 6])] = &[
    (
        46,
        false,
        [
            0x400f_c000_0000_0800,
            0x400f_c000_0000_0800,
            0x400f_c000_0000_0800,
            0x400f_c000_0000_0880,
            0x400f_c000_001f_f800,
            0x400f_c000_3fff_f800,
        ],
    ),
    (
        46,
        true,
        [
            0x400f_c000_0000_0000,
            0x400f_c000_0000_0800,
            0x400f_c000_0000_0800,
            0x400f_c000_0000_0880,
            0x400f_c000_001f_f000,
            0x400f_c000_3fff_f000,
        ],
    ),
    (
        48,
        false,
        [
            0x400f_0000_0000_0800,
            0x400f_0000_0000_0800,
            0x400f_0000_0000_0800,
            0x400f_0000_0000_0880,
            0x400f_0000_001f_f800,
            0x400f_0000_3fff_f800,
        ],
    ),
    (
        48,
        true,
        [
            0x400f_0000_0000_0000,
            0x400f_0000_0000_0800,
            0x400f_0000_0000_0800,
            0x400f_0000_0000_0880,
            0x400f_0000_001f_f000,
            0x400f_0000_3fff_f000,
        ],
    ),
];

/// The address of the level-`level` entry on `iova`'s path, walked by hand over memory
/// (§9.8: index = iova bits 12+9(L−1) upward, 9 wide; next table = entry bits 51:12).
fn sl_entry_addr(m: &Memory, root: u64, levels: u8, iova: u64, level: u8) -> u64 {
    let index = |l: u8| (iova >> (12 + 9 * u32::from(l - 1))) & 0x1ff;
    let mut table = root;
    for l in (level + 1..=levels).rev() {
        table = m.u64_coherent(table + index(l) * 8) & 0x000f_ffff_ffff_f000;
    }
    table + index(level) * 8
}

#[test]
fn every_reserved_bit_of_every_second_level_entry_faults_0xc_and_ignored_bits_do_not() {
    // IOVAs under one PML4 entry: a 4 KiB page, a 2 MiB page, a 1 GiB page.
    const I4K: u64 = 0x1234_5000;
    const I2M: u64 = 0x8060_0000;
    const I1G: u64 = 0x1_4000_0000;
    const P4K: u64 = 0x2_0000_1000;
    const P2M: u64 = 0x3_0020_0000;
    const P1G: u64 = 0x4_4000_0000;
    let mut checked = 0;
    for &(haw, sc, masks) in QEMU_SPTE_MASKS {
        let c = cfg(Capabilities {
            haw,
            snoop_control: sc,
            ..Capabilities::default()
        });
        let mut l = Legacy::new(4);
        l.attach(dev0(), DID);
        l.map(I4K, P4K, PageSize::Size4K, RW);
        l.map(I2M, P2M, PageSize::Size2M, RW);
        l.map(I1G, P1G, PageSize::Size1G, RW);
        let base = memory(&mut l);
        let root = l.sl.root().0;
        // (level, leaf, entry address, a request through it, its PA, QEMU mask)
        let entries = [
            (
                4u8,
                false,
                sl_entry_addr(&base, root, 4, I4K, 4),
                I4K,
                P4K,
                masks[3],
            ),
            (
                3,
                false,
                sl_entry_addr(&base, root, 4, I4K, 3),
                I4K,
                P4K,
                masks[2],
            ),
            (
                2,
                false,
                sl_entry_addr(&base, root, 4, I4K, 2),
                I4K,
                P4K,
                masks[1],
            ),
            (
                1,
                true,
                sl_entry_addr(&base, root, 4, I4K, 1),
                I4K,
                P4K,
                masks[0],
            ),
            (
                2,
                true,
                sl_entry_addr(&base, root, 4, I2M, 2),
                I2M,
                P2M,
                masks[4],
            ),
            (
                3,
                true,
                sl_entry_addr(&base, root, 4, I1G, 3),
                I1G,
                P1G,
                masks[5],
            ),
        ];
        for (level, leaf, addr, iova, pa, mask) in entries {
            let what = format!("haw {haw} SC {sc} level {level} leaf {leaf}");
            // The crate's mask must be QEMU's.
            assert_eq!(
                SlPte::reserved_mask(level, leaf, haw, sc, true),
                mask,
                "reserved_mask, {what}"
            );
            let v = base.u64_coherent(addr);
            assert_eq!(v & mask, 0, "the valid entry has no reserved bit, {what}");
            for bit in 0..64u32 {
                let b = 1u64 << bit;
                let semantic = v & b != 0                       // already set (R, W, PS, address)
                    || (2..=6).contains(&bit)                   // X/EMT/IPAT: not asserted either way
                    || (bit == 7 && !leaf && level < 4)         // PS would turn it into a leaf
                    || ((12..u32::from(haw)).contains(&bit) && mask & b == 0); // address
                if semantic {
                    continue;
                }
                let mut m = base.clone();
                m.write_flushed(&[word(addr, v | b)]);
                let got = legacy_outcome(&c, &m, &l, &rd(dev0(), iova | 0x18));
                let expected = if mask & b != 0 {
                    Err(0xc)
                } else {
                    // Ignored / available bits (8-10, 52-61, 63, and 7 in a 4 KiB leaf) change
                    // nothing, except SNP in a leaf with SC, which forces snooping.
                    translation(pa | 0x18, bit == 11 && leaf && sc)
                };
                assert_eq!(got, expected, "bit {bit}, {what}");
                checked += 1;
            }
        }
    }
    assert!(checked > 4 * 6 * 20, "the sweep covered {checked} cases");
}

#[test]
fn root_entry_reserved_bits_fault_0xa_and_context_entry_reserved_bits_fault_0xb() {
    for haw in [46u8, 48] {
        let c = cfg(Capabilities {
            haw,
            ..Capabilities::default()
        });
        let mut l = Legacy::new(4);
        l.attach(dev0(), DID);
        l.map(0x1000, 0x5000, PageSize::Size4K, RW);
        let base = memory(&mut l);
        let above = !((1u64 << haw) - 1);
        // QEMU VTD_ROOT_ENTRY_RSVD(aw) = 0xffe | ~VTD_HAW_MASK(aw); the high QW is all
        // reserved in legacy mode (vtd_root_entry_rsvd_bits_check: `re->hi || ...`).
        let root_lo_rsvd = 0xffe | above;
        assert_eq!(
            root_lo_rsvd,
            if haw == 46 {
                0xffff_c000_0000_0ffe
            } else {
                0xffff_0000_0000_0ffe
            }
        );
        let root_entry = l.root().0 + 3 * 16;
        // QEMU VTD_CONTEXT_ENTRY_RSVD_LO(aw) = 0xff0 | ~VTD_HAW_MASK(aw),
        // VTD_CONTEXT_ENTRY_RSVD_HI = 0xffff_ffff_ff00_0080 (bit 71 and bits 127:88).
        let ctx_lo_rsvd = 0xff0 | above;
        let ctx_hi_rsvd = 0xffff_ffff_ff00_0080u64;
        let ctx_entry = l.ctx.context_address(dev0()).unwrap().0;
        let cases = [
            // (word address, reserved mask, reason, bits with a meaning to skip)
            (root_entry, root_lo_rsvd, 0xa, 1u64 | (!above & !0xfff)),
            (root_entry + 8, u64::MAX, 0xa, 0),
            // lo: P (0), TT (3:2) and the table pointer; FPD (1) only stops fault recording.
            (ctx_entry, ctx_lo_rsvd, 0xb, 0b1101 | (!above & !0xfff)),
            // hi: AW (66:64) changes the depth; AVAIL (70:67) and DID (87:72) change nothing.
            (ctx_entry + 8, ctx_hi_rsvd, 0xb, 0b111),
        ];
        for (addr, rsvd, reason, skip) in cases {
            let v = base.u64_coherent(addr);
            assert_eq!(v & rsvd, 0);
            for bit in 0..64 {
                let b = 1u64 << bit;
                if (v | skip) & b != 0 {
                    continue;
                }
                let mut m = base.clone();
                m.write_flushed(&[word(addr, v | b)]);
                let got = legacy_outcome(&c, &m, &l, &rd(dev0(), 0x1234));
                let expected = if rsvd & b != 0 {
                    Err(reason)
                } else {
                    ok(0x5234)
                };
                assert_eq!(got, expected, "haw {haw} word {addr:#x} bit {bit}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// 4. SNP × SC × NS
// ---------------------------------------------------------------------------------------

#[test]
fn snp_sc_and_no_snoop_decide_the_effective_snoop_row_by_row() {
    // Expected (§9.8 SNP; QEMU vtd_init: SNP in a leaf is reserved unless SC or scalable
    // mode; DESIGN.md: snooped = !NS || forces_snoop):
    //   SNP SC NS | outcome        forces snooped
    //    1   1  0 | PA               1      1
    //    1   1  1 | PA               1      1   (SNP overrides the TLP's No Snoop)
    //    1   0  * | fault 0xC (SNP is a reserved bit without snoop control)
    //    0   1  0 | PA               0      1
    //    0   1  1 | PA               0      0   (No Snoop honoured)
    //    0   0  0 | PA               0      1
    //    0   0  1 | PA               0      0
    const PA: u64 = 0x6_0000_3000;
    let mut rows = Vec::new();
    for snp in [true, false] {
        for sc in [true, false] {
            let c = cfg(Capabilities {
                snoop_control: sc,
                ..Capabilities::default()
            });
            let mut l = Legacy::new(4);
            l.attach(dev0(), DID);
            l.map(0x3000, PA, PageSize::Size4K, perm(true, true, snp));
            let m = memory(&mut l);
            for ns in [false, true] {
                let r = TranslationRequest {
                    no_snoop: ns,
                    ..rd(dev0(), 0x3040)
                };
                let got = legacy_outcome(&c, &m, &l, &r);
                let expected = match (snp, sc) {
                    (true, false) => Err(0xc),
                    (true, true) => translation(PA | 0x40, true),
                    (false, _) => translation(PA | 0x40, false),
                };
                assert_eq!(got, expected, "SNP {snp} SC {sc} NS {ns}");
                let snooped = got.as_ref().ok().map(|t| !ns || t.forces_snoop);
                let expected_snooped = match (snp, sc) {
                    (true, false) => None,
                    (true, true) => Some(true),
                    (false, _) => Some(!ns),
                };
                assert_eq!(snooped, expected_snooped, "SNP {snp} SC {sc} NS {ns}");
                rows.push((snp, sc, ns, got, snooped));
            }
        }
    }
    assert_eq!(rows.len(), 8);
    println!("\nSNP x SC x NS (legacy mode, 4 KiB leaf, read request)");
    println!("SNP SC NS | outcome               forces_snoop snooped");
    for (snp, sc, ns, got, snooped) in rows {
        let b = |x: bool| u8::from(x);
        let (outcome, forces) = match &got {
            Ok(t) => (format!("PA {:#x}", t.pa.0), b(t.forces_snoop).to_string()),
            Err(code) => (format!("fault {code:#x}"), "-".into()),
        };
        let snooped = snooped.map_or("-".into(), |s| b(s).to_string());
        println!(
            " {}   {}  {} | {outcome:<21} {forces:>12} {snooped:>7}",
            b(snp),
            b(sc),
            b(ns)
        );
    }
}

// ---------------------------------------------------------------------------------------
// 5. Scalable mode
// ---------------------------------------------------------------------------------------

fn sm_outcome(m: &Memory, sm: &Sm, r: &TranslationRequest) -> Result<Translation, u32> {
    three_ways(&cfg(sm_caps()), m, sm.ct.root_table(), true, r)
}

#[test]
fn scalable_second_level_pgsnp_forces_snoop_even_when_the_leaf_snp_is_clear() {
    for (pgsnp, snp, forces) in [
        // PGSNP (PASID entry bit 88) forces snooping of every access through the PASID
        // (Linux pasid_set_pgsnp; §9.6), whatever the leaf says.
        (true, false, true),
        (true, true, true),
        // Without PGSNP the leaf's SNP decides (ECAP.SC = 1 here).
        (false, true, true),
        (false, false, false),
    ] {
        let mut sm = Sm::new();
        sm.context(dev0(), true);
        let mut sl = sm.sl();
        sl.map(
            &mut sm.alloc,
            0x7000,
            PhysAddr(0x9_0000_7000),
            PageSize::Size4K,
            perm(true, true, snp),
            &mut sm.out,
        )
        .unwrap();
        let f = PasidFields {
            slptptr: sl.root(),
            pgsnp,
            ..pasid_fields(Pgtt::SecondLevel)
        };
        sm.pasid(dev0(), 0, f);
        let m = sm.memory();
        let got = sm_outcome(&m, &sm, &rd(dev0(), 0x7abc));
        assert_eq!(
            got,
            translation(0x9_0000_7abc, forces),
            "PGSNP {pgsnp} SNP {snp}"
        );
        // A second-level permission fault in scalable mode is 0x79; not-present likewise.
        assert_eq!(sm_outcome(&m, &sm, &rd(dev0(), 0x8000)), Err(0x79));
    }
}

/// A scalable set-up whose PASID 5 of `DEV` (PASIDE = 1) translates first-level through
/// one 4 KiB leaf `iova → pa` with `p`, and the PASID entry modified by `f`.
fn first_level(
    iova: u64,
    pa: u64,
    p: FlPerm,
    f: impl Fn(PasidFields) -> PasidFields,
) -> (Sm, Memory) {
    let mut sm = Sm::new();
    sm.context(dev0(), true);
    let mut fl = sm.fl();
    fl.map(
        &mut sm.alloc,
        iova,
        PhysAddr(pa),
        PageSize::Size4K,
        p,
        &mut sm.out,
    )
    .unwrap();
    let fields = f(PasidFields {
        flptr: fl.root(),
        ..pasid_fields(Pgtt::FirstLevel)
    });
    sm.pasid(dev0(), 5, fields);
    let m = sm.memory();
    (sm, m)
}

const FL_IOVA: u64 = 0x7f12_3456_7000;
const FL_PA: u64 = 0x5_5555_5000;
const USER_RW: FlPerm = FlPerm {
    writable: true,
    user: true,
    xd: false,
};

#[test]
fn scalable_first_level_translates_through_ia32e_tables() {
    let (sm, m) = first_level(FL_IOVA, FL_PA, USER_RW, |f| f);
    let r = with_pasid(rd(dev0(), FL_IOVA | 0x321), 5);
    // IA-32e 4-level walk: PML4[0xfe] → PDPT[0x48] → PD[0x1a2] → PT[0x167] (index =
    // iova bits 47:39, 38:30, 29:21, 20:12); leaf maps FL_PA; no PGSNP → no forcing.
    assert_eq!(sm_outcome(&m, &sm, &r), ok(FL_PA | 0x321));
    assert_eq!(
        sm_outcome(&m, &sm, &with_pasid(wr(dev0(), FL_IOVA), 5)),
        ok(FL_PA)
    );
    // Not-present first-level entry: 0x71. Non-canonical input (bit 47 set, bits 63:48
    // clear): 0x80.
    assert_eq!(
        sm_outcome(&m, &sm, &with_pasid(rd(dev0(), FL_IOVA + 0x1000), 5)),
        Err(0x71)
    );
    assert_eq!(
        sm_outcome(&m, &sm, &with_pasid(rd(dev0(), 1 << 47), 5)),
        Err(0x80)
    );
}

#[test]
fn first_level_user_supervisor_checks_give_0x81_and_0x5d() {
    let supervisor_only = FlPerm {
        user: false,
        ..USER_RW
    };
    let priv_rd = |iova| TranslationRequest {
        privileged: true,
        ..with_pasid(rd(dev0(), iova), 5)
    };
    // U/S = 0 at the leaf: a user-mode (PR = 0) request faults 0x81.
    let (sm, m) = first_level(FL_IOVA, FL_PA, supervisor_only, |f| f);
    assert_eq!(
        sm_outcome(&m, &sm, &with_pasid(rd(dev0(), FL_IOVA), 5)),
        Err(0x81)
    );
    // A privileged request with the PASID entry's SRE = 0 faults 0x5D ...
    assert_eq!(sm_outcome(&m, &sm, &priv_rd(FL_IOVA)), Err(0x5d));
    // ... and with SRE = 1 reaches the supervisor page.
    let (sm, m) = first_level(FL_IOVA, FL_PA, supervisor_only, |f| PasidFields {
        sre: true,
        ..f
    });
    assert_eq!(sm_outcome(&m, &sm, &priv_rd(FL_IOVA)), ok(FL_PA));
}

#[test]
fn first_level_read_only_pages_fault_writes_0x85_and_wpe_governs_supervisor_writes() {
    let read_only = FlPerm {
        writable: false,
        ..USER_RW
    };
    let user_wr = with_pasid(wr(dev0(), FL_IOVA), 5);
    let priv_wr = TranslationRequest {
        privileged: true,
        ..user_wr
    };
    // R/W = 0: user writes fault 0x85 ("no write permission"), reads pass.
    let (sm, m) = first_level(FL_IOVA, FL_PA, read_only, |f| PasidFields {
        sre: true,
        ..f
    });
    assert_eq!(sm_outcome(&m, &sm, &user_wr), Err(0x85));
    assert_eq!(
        sm_outcome(&m, &sm, &with_pasid(rd(dev0(), FL_IOVA), 5)),
        ok(FL_PA)
    );
    // WPE = 0 (like CR0.WP = 0): supervisor writes ignore R/W.
    assert_eq!(sm_outcome(&m, &sm, &priv_wr), ok(FL_PA));
    // WPE = 1: supervisor writes honour R/W.
    let (sm, m) = first_level(FL_IOVA, FL_PA, read_only, |f| PasidFields {
        sre: true,
        wpe: true,
        ..f
    });
    assert_eq!(sm_outcome(&m, &sm, &priv_wr), Err(0x85));
}

#[test]
fn first_level_xd_with_nxe_denies_execute_0x82_and_is_reserved_without_nxe_0x72() {
    let xd = FlPerm {
        xd: true,
        ..USER_RW
    };
    let exec = TranslationRequest {
        execute: true,
        ..with_pasid(rd(dev0(), FL_IOVA), 5)
    };
    // NXE = 1: XD = 1 refuses execute requests (0x82) and allows plain reads.
    let (sm, m) = first_level(FL_IOVA, FL_PA, xd, |f| PasidFields { nxe: true, ..f });
    assert_eq!(sm_outcome(&m, &sm, &exec), Err(0x82));
    assert_eq!(
        sm_outcome(&m, &sm, &with_pasid(rd(dev0(), FL_IOVA), 5)),
        ok(FL_PA)
    );
    // NXE = 0: XD (bit 63) is a reserved bit (VT-d 3.x §9.7 "If NXE = 0 ... Reserved"), so
    // the walk faults 0x72 (first-level entry reserved) for any request.
    let (sm, m) = first_level(FL_IOVA, FL_PA, xd, |f| f);
    assert_eq!(
        sm_outcome(&m, &sm, &with_pasid(rd(dev0(), FL_IOVA), 5)),
        Err(0x72)
    );
    // Without XD an execute request passes.
    let (sm, m) = first_level(FL_IOVA, FL_PA, USER_RW, |f| PasidFields { nxe: true, ..f });
    assert_eq!(sm_outcome(&m, &sm, &exec), ok(FL_PA));
}

#[test]
fn scalable_pass_through_pasid_entry_state_and_paside_faults() {
    let mut sm = Sm::new();
    sm.context(dev0(), true);
    // PASID 0 (the RID_PASID): PGTT = 4, pass-through.
    sm.pasid(dev0(), 0, pasid_fields(Pgtt::PassThrough));
    // PASID 5 is set; PASID 6 shares its PASID table (both < 64) but is zero.
    sm.pasid(dev0(), 5, pasid_fields(Pgtt::PassThrough));
    // A device whose context has PASIDE = 0.
    let other = dev(3, 1, 0);
    sm.context(other, false);
    sm.pasid(other, 0, pasid_fields(Pgtt::PassThrough));
    let m = sm.memory();
    // PGTT = 4: PA = IOVA.
    assert_eq!(
        sm_outcome(&m, &sm, &rd(dev0(), 0xabcd_e123)),
        ok(0xabcd_e123)
    );
    assert_eq!(
        sm_outcome(&m, &sm, &with_pasid(wr(dev0(), 0x1234), 5)),
        ok(0x1234)
    );
    // PASID table entry with P = 0: 0x59.
    assert_eq!(
        sm_outcome(&m, &sm, &with_pasid(rd(dev0(), 0x1234), 6)),
        Err(0x59)
    );
    // PASID 3 × 64 = 192: its directory entry (index 3) has P = 0: 0x51.
    assert_eq!(
        sm_outcome(&m, &sm, &with_pasid(rd(dev0(), 0x1234), 192)),
        Err(0x51)
    );
    // PDTS = 0: 2^7 directory entries × 64 = PASIDs below 8192; 8192 is beyond: 0x46.
    assert_eq!(
        sm_outcome(&m, &sm, &with_pasid(rd(dev0(), 0x1234), 8192)),
        Err(0x46)
    );
    // A request with PASID to a context with PASIDE = 0: 0x45; without PASID it passes.
    assert_eq!(
        sm_outcome(&m, &sm, &with_pasid(rd(other, 0x1234), 5)),
        Err(0x45)
    );
    assert_eq!(sm_outcome(&m, &sm, &rd(other, 0x1234)), ok(0x1234));
    // Scalable root/context not present: 0x39 (bus 9) and 0x41 (03:02.0).
    assert_eq!(sm_outcome(&m, &sm, &rd(dev(9, 0, 0), 0x1234)), Err(0x39));
    assert_eq!(sm_outcome(&m, &sm, &rd(dev(3, 2, 0), 0x1234)), Err(0x41));
}

#[test]
fn nested_translation_walks_the_first_level_in_guest_physical_space_to_the_host_address() {
    // Guest-physical layout: the first-level table pages live at GPA 0x8000_0000.. (a
    // separate allocator hands them out as the guest driver would), the guest maps
    // IOVA 0x7654_3000 → GPA 0x9000_0000. The second level maps every first-level table
    // page GPA 0x8000_0000 + k·4K → HPA 0x3_0000_0000 + k·4K, and the data page GPA
    // 0x9000_0000 → HPA 0x5_1234_5000. Expected HPA = 0x5_1234_5000 | offset (§3.8: the
    // first-level output is guest-physical and goes through the second level).
    const GPA_TABLES: u64 = 0x8000_0000;
    const HPA_TABLES: u64 = 0x3_0000_0000;
    const IOVA: u64 = 0x7654_3000;
    const GPA_DATA: u64 = 0x9000_0000;
    const HPA_DATA: u64 = 0x5_1234_5000;
    let mut sm = Sm::new();
    sm.context(dev0(), true);
    let mut galloc = TableAllocator::new(PhysAddr(GPA_TABLES), 16 * 4096).unwrap();
    let mut fl = FlTables::new(&mut galloc, 4).unwrap();
    let mut guest = Vec::new();
    fl.map(
        &mut galloc,
        IOVA,
        PhysAddr(GPA_DATA),
        PageSize::Size4K,
        USER_RW,
        &mut guest,
    )
    .unwrap();
    let pages = galloc.used_pages();
    assert_eq!(pages, 4, "PML4, PDPT, PD, PT");
    let mut sl = sm.sl();
    for k in 0..pages {
        sl.map(
            &mut sm.alloc,
            GPA_TABLES + k * 4096,
            PhysAddr(HPA_TABLES + k * 4096),
            PageSize::Size4K,
            RW,
            &mut sm.out,
        )
        .unwrap();
    }
    sl.map(
        &mut sm.alloc,
        GPA_DATA,
        PhysAddr(HPA_DATA),
        PageSize::Size4K,
        RW,
        &mut sm.out,
    )
    .unwrap();
    let f = PasidFields {
        slptptr: sl.root(),
        flptr: fl.root(),
        ..pasid_fields(Pgtt::Nested)
    };
    sm.pasid(dev0(), 5, f);
    let mut m = sm.memory();
    // The guest's first-level writes land at the host pages backing their GPAs.
    for w in guest {
        let hpa = w.pa.0 - GPA_TABLES + HPA_TABLES;
        m.store_flushed(PhysAddr(hpa), &w.bytes);
    }
    let r = with_pasid(rd(dev0(), IOVA | 0x9f8), 5);
    assert_eq!(sm_outcome(&m, &sm, &r), ok(HPA_DATA | 0x9f8));
    // Cold timed walk: root, context, PASID directory entry, PASID entry (4), then for
    // each of the 4 first-level entries a 4-level second-level walk of its GPA plus the
    // entry itself (4 × 5 = 20), then a 4-level walk of the output GPA (4): 28 reads.
    let mut sys = Sys::with_caps(sm_caps());
    sys.mem = m.clone();
    sys.boot(sm.ct.root_table(), true, false);
    assert_eq!(sys.translate_now(r).code(), ok(HPA_DATA | 0x9f8));
    assert_eq!(sys.walk_reads(), 28);
    // A GPA the second level does not map (the data page unmapped): the output walk fails.
    let mut m2 = m.clone();
    let leaf = sl.pte_address(GPA_DATA, PageSize::Size4K).unwrap();
    m2.write_flushed(&[word(leaf.0, 0)]);
    assert!(sm_outcome(&m2, &sm, &r).is_err());
}

#[test]
fn the_first_level_leaf_and_scalable_context_bits_the_tests_rely_on() {
    // The first-level leaf Linux writes is addr | P | R/W | U/S | A | D = addr | 0x67 (§9.7).
    let e = FlPte::leaf(PhysAddr(FL_PA), PageSize::Size4K, USER_RW);
    assert_eq!(e.0, FL_PA | 0x67);
    // A scalable context entry with PASIDE sets bit 3 next to P (§9.4).
    let c = ScalableContextEntry::new(ScalableContextFields {
        fpd: false,
        dte: false,
        paside: true,
        pre: false,
        pdts: 0,
        pasid_dir_ptr: PhysAddr(0x1000),
        rid_pasid: 0,
    });
    assert_eq!(c.q[0], 0x1000 | 0x8 | 0x1);
}

#[test]
fn a_request_with_pasid_under_a_legacy_root_table_faults_0x31() {
    // Reason 0x31, "SM: TTM 0 for request with PASID" (Linux dmar.c
    // dma_remap_sm_fault_reasons[1]; QEMU VTD_FR_RTADDR_INV_TTM, returned by its PASID-entry
    // lookups when !root_scalable): a scalable-capable unit whose software chose legacy
    // tables (RTADDR.TTM = 00b) blocks requests-with-PASID rather than translating them by
    // requester ID.
    let c = cfg(sm_caps());
    let mut l = Legacy::new(4);
    l.attach(dev0(), DID);
    l.map(0x1000, 0x5000, PageSize::Size4K, RW);
    let m = memory(&mut l);
    assert_eq!(legacy_outcome(&c, &m, &l, &rd(dev0(), 0x1000)), ok(0x5000));
    let r = with_pasid(rd(dev0(), 0x1000), 5);
    assert_eq!(legacy_outcome(&c, &m, &l, &r), Err(0x31));
}
