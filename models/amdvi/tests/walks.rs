//! AMD-Vi translation walks, each request answered three ways that must agree
//! (`walk::reference` directly, `Amdvi::reference_translate`, and the timed agent on a freshly
//! booted unit: see `common::three_ways`), with expected values derived from the bit layouts
//! of the AMD IOMMU Specification (pub. 48882 rev. 3.x) as SPEC-NOTES §4 summarises them:
//!
//! * DTE (§2.2.2.1): V bit 0, TV 1, Mode 11:9, root 51:12, GV 55, IR 61, IW 62, DomainID
//!   79:64; reserved q0 6:2 and 63.
//! * PTE/PDE (§2.2.3): PR 0, Next Level 11:9, address 51:12, PTE reserved 58:52, PDE
//!   reserved 60:52 (U 59 and FC 60 are reserved in a PDE), U 59, FC 60, IR 61, IW 62.
//!   Level L indexes IOVA bits 12 + 9(L−1) and up (L-AMDT `PM_LEVEL_SHIFT`: 12, 21, 30,
//!   39, 48, 57); a Next Level 0 leaf at level L maps 2^(12 + 9(L−1)) bytes; a Next Level 7
//!   leaf encodes its size in the address: `PAGE_SIZE_PTE(pa, s) = (pa | (s−1)) & ~(s>>1)`,
//!   read back as `1 << (1 + ffz(pte | 0xfff))`.
//! * Events (§2.5): code 63:60 (1 ILLEGAL_DEV_TABLE_ENTRY, 2 IO_PAGE_FAULT), DeviceID 15:0,
//!   DomainID 47:32, PR 52, RW 53, PE 54, RZ 55, address in QW1.
//!
//! Timed latencies (DRAM 80 ns, default `AmdviTiming`: 1 GHz, lookup 10, walk step 4,
//! fault 20): a cold walk is lookup 10 + DTE read 84 + lookup 10 + 84 per table level.

mod common;

use amdvi::dte::{field as dtef, DeviceTableEntry, DteFields};
use amdvi::event::{Event, IoPageFaultFlags};
use amdvi::pte::{placement, sized_leaf_legal, IoPte};
use amdvi::regs::Capabilities;
use amdvi::tables::TableError;
use amdvi::walk::Outcome;
use amdvi::AmdviConfig;
use common::*;
use model_core::{PhysAddr, Translation, TranslationRequest};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// IOVA bits each level indexes from (L-AMDT `PM_LEVEL_SHIFT(x) = 12 + 9x`, level = x + 1).
const SHIFT: [u32; 7] = [0, 12, 21, 30, 39, 48, 57];

fn cfg() -> AmdviConfig {
    AmdviConfig::default()
}

fn cfg_caps(caps: Capabilities) -> AmdviConfig {
    AmdviConfig {
        caps,
        ..AmdviConfig::default()
    }
}

/// `r` three ways over `t`'s tables with the default configuration.
fn three(t: &Tables, r: TranslationRequest) -> Three {
    three_ways(&cfg(), &t.memory(), t.devtab_reg(), &r)
}

/// The single event the timed run logged, decoded from the event log memory.
fn only_event(th: &Three) -> Event {
    let evs = th.sys.events();
    assert_eq!(evs.len(), 1, "exactly one event logged: {evs:?}");
    evs[0]
}

/// IO_PAGE_FAULT fields: (DeviceID, DomainID, flags, address).
fn iopf(e: Event) -> (u16, u16, IoPageFaultFlags, u64) {
    match e {
        Event::IoPageFault {
            device_id,
            domain_or_pasid,
            pasid_hi,
            flags,
            address,
        } => {
            assert_eq!(pasid_hi, 0);
            (device_id, domain_or_pasid, flags, address)
        }
        other => panic!("expected IO_PAGE_FAULT, got {other:?}"),
    }
}

fn flags(pr: bool, rw: bool, pe: bool, rz: bool) -> IoPageFaultFlags {
    IoPageFaultFlags {
        pr,
        rw,
        pe,
        rz,
        ..IoPageFaultFlags::default()
    }
}

/// Asserts `r` is an IO_PAGE_FAULT (code 2) on `t` with these flags, logged with dev0's
/// DeviceID 0x0300, DomainID 1 and the request's full address.
fn assert_iopf(t: &Tables, r: TranslationRequest, want: IoPageFaultFlags, what: &str) {
    let th = three(t, r);
    assert_eq!(th.result, Err(IO_PAGE_FAULT), "{what}");
    let (d, dom, f, a) = iopf(only_event(&th));
    assert_eq!((d, dom, a), (0x0300, DOMAIN, r.iova.0), "{what}");
    assert_eq!(f, want, "{what}");
}

// ---------------------------------------------------------------------------------------
// 1. Modes, page sizes, level skipping
// ---------------------------------------------------------------------------------------

/// An IOVA with index L + 2 at every level L of a mode-`m` table, plus offset 0x5a8.
fn iova_for_mode(m: u8) -> u64 {
    (1..=m).fold(0x5a8, |a, l| {
        a | (u64::from(l) + 2) << SHIFT[usize::from(l)]
    })
}

#[test]
fn every_dte_mode_1_to_6_translates_a_4k_page_to_its_base_or_offset() {
    for m in 1..=6u8 {
        let iova = iova_for_mode(m);
        let pa = 0x7_0000_0000 + (u64::from(m) << 20);
        let mut t = Tables::new(m);
        t.attach(dev0(), DOMAIN);
        t.map(iova & !0xfff, pa, 4 * KIB, RW);
        for r in [rd(dev0(), iova), wr(dev0(), iova)] {
            let th = three(&t, r);
            // PA = page base | IOVA bits 11:0; FC = 1 on every Linux leaf.
            assert_eq!(th.result, ok(pa | 0x5a8), "mode {m}");
            assert_eq!(
                leaf(&th.outcome),
                (4 * KIB, iova & !0xfff, pa, true),
                "mode {m}"
            );
            // The DTE, then one entry per level: 1 + m reads; 10 + 84 + 10 + 84·m ns.
            assert_eq!(th.sys.walk_reads(), 1 + u64::from(m), "mode {m}");
            assert_eq!(th.done.latency(), ns(104 + 84 * u64::from(m)), "mode {m}");
        }
    }
}

#[test]
fn natural_2m_and_1g_leaves_are_next_level_0_at_levels_2_and_3() {
    const L2M: u64 = 0x1_4020_0000; // 2 MiB aligned: L4 0, L3 5, L2 1
    const PA2M: u64 = 0x9_0000_0000;
    const L1G: u64 = 0x80_4000_0000; // 1 GiB aligned: L4 1, L3 1
    const PA1G: u64 = 0x40_0000_0000;
    let mut t = Tables::new(4);
    t.attach(dev0(), DOMAIN);
    t.map(L2M, PA2M, 2 * MIB, RW);
    t.map(L1G, PA1G, GIB, RW);
    // PR (bit 0) | address | FC 60 | IR 61 | IW 62, Next Level (11:9) = 0.
    assert_eq!(shadow_leaf(&t, L2M).0, 0x7000_0009_0000_0001);
    assert_eq!(shadow_leaf(&t, L1G).0, 0x7000_0040_0000_0001);
    for (iova, pa, size, levels_read) in [
        (L2M + 0x1_2345, PA2M + 0x1_2345, 2 * MIB, 3),
        (L1G + 0x2345_6789, PA1G + 0x2345_6789, GIB, 2),
    ] {
        let mut th = three(&t, rd(dev0(), iova));
        assert_eq!(th.result, ok(pa));
        assert_eq!(leaf(&th.outcome).0, size);
        assert_eq!(th.sys.walk_reads(), 1 + levels_read);
        // The whole page is one IOTLB entry: its last 64 bytes hit (10 ns, no read).
        let last = (iova & !(size - 1)) + size - 0x40;
        let before = th.sys.walk_reads();
        let d = th.sys.translate(at_ns(5000), rd(dev0(), last));
        assert_eq!(d.code(), ok((pa & !(size - 1)) + size - 0x40));
        assert_eq!((d.latency(), th.sys.walk_reads()), (ns(10), before));
    }
}

#[test]
fn size_encoded_next_level_7_leaves_translate_with_their_encoded_size() {
    // (IOVA, PA, size, raw leaf, request offset). Raw leaf = 0x7000_0000_0000_0000 (IW | IR |
    // FC) | PAGE_SIZE_PTE(pa, size) | 7 << 9 (0xe00) | PR:
    //   8K:  (pa | 0x1fff) & !0x1000 & PM_ADDR_MASK = pa               (ffz at bit 12)
    //   64K: (pa | 0xffff) & !0x8000 → pa | 0x7000                     (bits 14:12 set)
    //   4M:  (pa | 0x3fffff) & !0x200000 → pa | 0x1f_f000              (bits 20:12 set)
    //   2G:  (pa | 0x7fff_ffff) & !0x4000_0000 → pa | 0x3fff_f000      (bits 29:12 set)
    let cases: [(u64, u64, u64, u64, u64); 4] = [
        (
            0x1000_6000,
            0x9_1000_2000,
            8 * KIB,
            0x7000_0009_1000_2e01,
            0x1abc,
        ),
        (
            0x1001_0000,
            0x9_1001_0000,
            64 * KIB,
            0x7000_0009_1001_7e01,
            0xf123,
        ),
        (
            0x1040_0000,
            0x9_1040_0000,
            4 * MIB,
            0x7000_0009_105f_fe01,
            0x3a_bcde,
        ),
        (
            0x1_0000_0000,
            0x80_0000_0000,
            2 * GIB,
            0x7000_0080_3fff_fe01,
            0x7654_3210,
        ),
    ];
    let mut t = Tables::new(4);
    t.attach(dev0(), DOMAIN);
    for (iova, pa, size, raw, _) in cases {
        t.map(iova, pa, size, RW);
        let l = shadow_leaf(&t, iova);
        assert_eq!(l.0, raw, "{size:#x} leaf");
        assert_eq!(l.encoded_page_size(), Some(size));
    }
    for (iova, pa, size, _, off) in cases {
        // Level holding the leaf: 8K/64K at 1, 4M at 2, 2G at 3 (Linux PAGE_SIZE_LEVEL).
        let level = match size {
            s if s < 2 * MIB => 1,
            s if s < GIB => 2,
            _ => 3,
        };
        assert!(sized_leaf_legal(level, size), "{size:#x} at level {level}");
        let mut th = three(&t, rd(dev0(), iova + off));
        assert_eq!(th.result, ok(pa + off), "{size:#x}");
        assert_eq!(leaf(&th.outcome), (size, iova, pa, true), "{size:#x}");
        assert_eq!(th.sys.walk_reads(), 1 + u64::from(5 - level), "{size:#x}");
        // Every replicated entry maps the same page: the first 64 bytes hit in the IOTLB
        // entry the walk filled.
        let before = th.sys.walk_reads();
        let d = th.sys.translate(at_ns(5000), rd(dev0(), iova));
        assert_eq!(d.code(), ok(pa), "{size:#x}");
        assert_eq!((d.latency(), th.sys.walk_reads()), (ns(10), before));
    }
    // A replicated 64K leaf read through its 8th entry (IOVA + 0x7040) is the same page.
    assert_eq!(three(&t, rd(dev0(), 0x1001_7040)).result, ok(0x9_1001_7040));
}

#[test]
fn next_level_7_is_legal_only_between_a_levels_natural_size_and_the_next_ones() {
    // VBox iommuAmdWalkIoPageTable: "The page size must be larger than the default size
    // and lower than the default size of the higher level"; L-PT amdv1pt_possible_sizes
    // gives one level's range and installs the natural size as NL 0.
    assert_eq!(placement(2 * MIB), Some((2, 1)));
    assert!(!sized_leaf_legal(1, 2 * MIB), "2M is not a level-1 size");
    assert!(
        !sized_leaf_legal(2, 2 * MIB),
        "2M at level 2 is the natural NL 0 leaf"
    );
    assert!(
        !sized_leaf_legal(3, GIB),
        "1G at level 3 is the natural NL 0 leaf"
    );
    assert!(!sized_leaf_legal(2, GIB), "1G is not a level-2 size");
    assert!(sized_leaf_legal(1, 8 * KIB) && sized_leaf_legal(1, MIB));
    assert!(sized_leaf_legal(2, 4 * MIB) && sized_leaf_legal(2, 512 * MIB));
    assert!(sized_leaf_legal(3, 2 * GIB));
    assert!(!sized_leaf_legal(1, 4 * KIB), "4K is NL 0 at level 1");

    // Hand-written illegal NL 7 leaves fault IO_PAGE_FAULT, PR = 1, RZ = 1 (an invalid
    // level encoding; SPEC-NOTES §4.4 "RZ 55 (reserved bit / bad level)").
    const X: u64 = 0x2000_0000; // a 4K page; its level-1 entry becomes a 2M NL 7 leaf
    const Y: u64 = 0x2_0000_0000; // a 1G page; its level-3 entry becomes a 1G NL 7 leaf
    const Z: u64 = 0x3_0000_0000; // a 2M page; its level-2 entry becomes a 1G NL 7 leaf
    let sized = |pa: u64, s: u64| IoPte::sized_leaf(PhysAddr(pa), s, true, true, true).unwrap();
    // PAGE_SIZE_PTE(0xa_0000_0000, 2M): bits 19:12 set → 0x7000_000a_000f_fe01.
    assert_eq!(sized(0xa_0000_0000, 2 * MIB).0, 0x7000_000a_000f_fe01);
    // PAGE_SIZE_PTE(0x40_0000_0000, 1G): bits 28:12 set → 0x7000_0040_1fff_fe01.
    assert_eq!(sized(0x40_0000_0000, GIB).0, 0x7000_0040_1fff_fe01);
    for (iova, level, size) in [(X, 1, 4 * KIB), (Y, 3, GIB), (Z, 2, 2 * MIB)] {
        let mut t = Tables::new(4);
        t.attach(dev0(), DOMAIN);
        t.map(iova, 0xb_0000_0000, size, RW);
        let bad = if level == 1 {
            sized(0xa_0000_0000, 2 * MIB)
        } else {
            sized(0x40_0000_0000, GIB)
        };
        t.patch(iova, level, |_| bad.0);
        assert_iopf(
            &t,
            rd(dev0(), iova + 0x40),
            flags(true, false, false, false),
            &format!("NL 7 {bad:x?} at level {level}"),
        );
    }
}

#[test]
fn level_skipping_translates_with_zero_skipped_bits_and_faults_rz_otherwise() {
    // Mode 4, the level-4 PDE skips to a level-2 table: IOVA bits 38:30 (level 3's index)
    // must be 0. Mode 6, the level-6 PDE skips to level 3: bits 56:39 must be 0.
    for (levels, from, to, iova, bad_bit) in [
        (4u8, 4u8, 2u8, 0x80_0000_5000u64, 30u32),
        (6, 6, 3, (3 << 57) | (2 << 30) | (1 << 21) | 0x7000, 48),
    ] {
        let mut t = Tables::new(levels);
        t.attach(dev0(), DOMAIN);
        let pa = 0x6_0000_0000;
        t.pt.map_skipping(&mut t.alloc, iova, PhysAddr(pa), from, to, RW, &mut t.out)
            .unwrap();
        // The skipping PDE's Next Level field (11:9) holds `to`.
        let pde = t.memory().u64_coherent(t.entry(iova, from));
        assert_eq!((pde >> 9) & 7, u64::from(to));
        let th = three(&t, rd(dev0(), iova | 0x10));
        assert_eq!(th.result, ok(pa | 0x10));
        // DTE, the skipping PDE, then levels `to` down to 1.
        assert_eq!(th.sys.walk_reads(), 2 + u64::from(to));
        // A one in a skipped level's index: IO_PAGE_FAULT with PR = 1 and RZ = 0 (VBox
        // kIoPageFaultType_SkippedLevelIovaNotZero; iommuAmdIoPageFaultEventInit sets RZ
        // only for reserved bits).
        let bad = iova | 1 << bad_bit;
        assert_iopf(
            &t,
            rd(dev0(), bad),
            flags(true, false, false, false),
            "skipped bits",
        );
        // The builder refuses to map such an IOVA with that skip.
        let e =
            t.pt.map_skipping(&mut t.alloc, bad, PhysAddr(pa), from, to, RW, &mut t.out)
                .unwrap_err();
        assert!(matches!(e, TableError::SkippedBitsNotZero { .. }), "{e}");
    }
}

// ---------------------------------------------------------------------------------------
// 2. The device table entry
// ---------------------------------------------------------------------------------------

#[test]
fn v_0_passes_requests_untranslated_and_tv_0_blocks_them() {
    let mut t = Tables::new(4);
    t.attach(dev0(), DOMAIN);
    t.map(0x4000_0000, 0x7_0000_0000, 4 * KIB, RW);
    let never_written = dev(3, 1, 0);
    let v0 = dev(3, 2, 0);
    let tv0 = dev(3, 3, 0);
    // V = 0 with garbage in the other fields: nothing else is looked at (§2.2.2; VBox
    // "If the DTE is not valid, addresses are forwarded without translation").
    t.set_dte(
        v0,
        DteFields {
            v: false,
            tv: true,
            mode: 4,
            pt_root: t.pt.root(),
            ..DteFields::default()
        },
    );
    // V = 1, TV = 0: the translation fields (Mode, root, IR/IW) are not valid.
    t.set_dte(
        tv0,
        DteFields {
            v: true,
            tv: false,
            mode: 4,
            pt_root: t.pt.root(),
            domain_id: 5,
            ..DteFields::default()
        },
    );
    // V = 1, TV = 0: no valid page-table root; the request is blocked with IO_PAGE_FAULT,
    // PR = 0 (QEMU amdvi_page_walk ends the walk; VBox kIoPageFaultType_DteTranslationDisabled).
    // Linux writes such a DTE to block a detached device.
    for r in [rd(tv0, 0x4000_0040), wr(tv0, 0x4000_0040)] {
        let th = three(&t, r);
        assert_eq!(th.result, Err(IO_PAGE_FAULT), "TV = 0");
    }
    for bdf in [never_written, v0] {
        for r in [rd(bdf, 0x4000_0040), wr(bdf, 0x4000_0040)] {
            let th = three(&t, r);
            // PA = IOVA, nothing forces a snoop, no event.
            assert_eq!(th.result, ok_nofc(0x4000_0040), "{bdf}");
            assert!(matches!(th.outcome, Outcome::Untranslated { .. }));
            assert!(th.sys.events().is_empty());
            // One read: the DTE.
            assert_eq!(th.sys.walk_reads(), 1);
        }
    }
}

#[test]
fn mode_0_passes_untranslated_under_the_dtes_ir_and_iw() {
    let mut t = Tables::new(4);
    for (bdf, ir, iw) in [
        (dev(3, 0, 0), true, false),
        (dev(3, 0, 1), false, true),
        (dev(3, 0, 2), false, false),
    ] {
        t.set_dte(
            bdf,
            DteFields {
                v: true,
                tv: true,
                mode: 0,
                ir,
                iw,
                domain_id: DOMAIN,
                ..DteFields::default()
            },
        );
        for (r, allowed) in [(rd(bdf, 0x1234_5678), ir), (wr(bdf, 0x1234_5678), iw)] {
            let th = three(&t, r);
            if allowed {
                assert_eq!(th.result, ok_nofc(0x1234_5678));
            } else {
                // IO_PAGE_FAULT with PE (and PR: the DTE is present).
                assert_eq!(th.result, Err(IO_PAGE_FAULT));
                let (d, dom, f, a) = iopf(only_event(&th));
                assert_eq!((d, dom, a), (bdf.raw(), DOMAIN, 0x1234_5678));
                assert_eq!(
                    f,
                    flags(true, r.access == model_core::AccessKind::Write, true, false)
                );
            }
        }
    }
}

/// Asserts `r` is ILLEGAL_DEV_TABLE_ENTRY (code 1) on `t`, logged with `bdf` and the
/// request's address; returns the event's RZ flag.
fn assert_illegal_dte(t: &Tables, c: &AmdviConfig, bdf: model_core::Bdf, what: &str) -> bool {
    let r = rd(bdf, 0x4000_0080);
    let th = three_ways(c, &t.memory(), t.devtab_reg(), &r);
    assert_eq!(th.result, Err(ILLEGAL_DTE), "{what}");
    match only_event(&th) {
        Event::IllegalDevTableEntry {
            device_id,
            pasid,
            flags,
            address,
        } => {
            assert_eq!(
                (device_id, pasid, address),
                (bdf.raw(), 0, 0x4000_0080),
                "{what}"
            );
            assert!(!flags.rw && !flags.gn && !flags.tn, "{what}");
            flags.rz
        }
        other => panic!("{what}: expected ILLEGAL_DEV_TABLE_ENTRY, got {other:?}"),
    }
}

#[test]
fn mode_7_reserved_bits_gv_and_a_mode_above_hats_are_illegal_dtes() {
    let mut t = Tables::new(4);
    t.map(0x4000_0000, 0x7_0000_0000, 4 * KIB, RW);
    let base = t.fields(DOMAIN);
    let good = DeviceTableEntry::new(base);
    let cases: [(&str, DeviceTableEntry); 6] = [
        // Mode (11:9) = 7 is reserved in a DTE (L-AMDT PAGE_MODE_7_LEVEL is NL-only).
        (
            "mode 7",
            DeviceTableEntry::new(DteFields { mode: 7, ..base }),
        ),
        // q0 bits 6:2 reserved (Q-AMD AMDVI_DTE_QUAD0_RESERVED): bit 2.
        (
            "q0 bit 2",
            DeviceTableEntry {
                q: [good.q[0] | 1 << 2, good.q[1], 0, 0],
            },
        ),
        // q0 bit 63 reserved.
        (
            "q0 bit 63",
            DeviceTableEntry {
                q: [good.q[0] | 1 << 63, good.q[1], 0, 0],
            },
        ),
        // Root pointer bit 50 with a 48-bit system address width.
        (
            "root bit 50",
            DeviceTableEntry {
                q: [good.q[0] | 1 << 50, good.q[1], 0, 0],
            },
        ),
        // q3 bit 192 (206:192 reserved).
        (
            "q3 bit 192",
            DeviceTableEntry {
                q: [good.q[0], good.q[1], 0, 1],
            },
        ),
        // GV (bit 55): guest translation, not modelled and refused rather than ignored.
        (
            "GV",
            DeviceTableEntry {
                q: [good.q[0] | dtef::Q0_GV, good.q[1], 0, 0],
            },
        ),
    ];
    for (i, (what, e)) in cases.into_iter().enumerate() {
        let bdf = dev(4, i as u8, 0);
        t.set_dte_raw(bdf, e);
        let rz = assert_illegal_dte(&t, &cfg(), bdf, what);
        if what != "GV" {
            // Reserved bit / invalid Mode: RZ (VBox iommuAmdInitIllegalDteEvent fRsvdNotZero).
            assert!(rz, "{what}: RZ");
        }
    }
    // A Mode deeper than EFR.HATS allows (levels 4, Mode 6) is refused the same way.
    let mut t6 = Tables::new(6);
    t6.attach(dev0(), DOMAIN);
    let four = cfg_caps(Capabilities {
        levels: 4,
        ..Capabilities::default()
    });
    assert_illegal_dte(&t6, &four, dev0(), "mode 6 > HATS levels 4");
}

#[test]
fn a_device_id_beyond_the_device_table_is_an_illegal_dte_without_any_read() {
    let t = Tables::new(4);
    // The table covers DeviceIDs 0..=0x0fff: Size = 32 pages − 1 = 31, 32·4096/32 = 4096.
    assert_eq!(t.devtab_reg().size_field(), 31);
    assert_eq!(t.devtab_reg().entries(), 4096);
    let beyond = dev(0x10, 0, 0); // DeviceID 0x1000
    assert_illegal_dte(&t, &cfg(), beyond, "DeviceID 0x1000");
    let th = three(&t, rd(beyond, 0x4000_0080));
    // Decided without reading memory: lookup 10 + fault 20.
    assert_eq!(th.sys.walk_reads(), 0);
    assert_eq!(th.done.latency(), ns(30));
}

// ---------------------------------------------------------------------------------------
// 3. Faults as events
// ---------------------------------------------------------------------------------------

const A: u64 = 0x4000_0000; // L4 0, L3 1, L2 0, L1 0
const PA_A: u64 = 0x7_0000_0000;
const A_RO: u64 = A + 0x1000;
const A_WO: u64 = A + 0x2000;
const B: u64 = A + 0x3000; // same level-1 table, entry 3 never written

/// dev0 in a 4-level domain with A (RW), A_RO (IR only) and A_WO (IW only).
fn fault_tables() -> Tables {
    let mut t = Tables::new(4);
    t.attach(dev0(), DOMAIN);
    t.map(A, PA_A, 4 * KIB, RW);
    t.map(A_RO, PA_A + 0x1000, 4 * KIB, perm(true, false, true));
    t.map(A_WO, PA_A + 0x2000, 4 * KIB, perm(false, true, true));
    t
}

#[test]
fn not_present_and_permission_faults_are_io_page_faults_with_pr_pe_and_rw() {
    let t = fault_tables();
    // PR = 0 entry: PR flag 0 (the page was not present).
    assert_iopf(
        &t,
        rd(dev0(), B | 0x18),
        flags(false, false, false, false),
        "PR=0 read",
    );
    assert_iopf(
        &t,
        wr(dev0(), B | 0x18),
        flags(false, true, false, false),
        "PR=0 write",
    );
    // IR = 0 leaf read, IW = 0 leaf write: PR 1, PE 1.
    assert_iopf(
        &t,
        rd(dev0(), A_WO | 0x20),
        flags(true, false, true, false),
        "IR=0",
    );
    assert_iopf(
        &t,
        wr(dev0(), A_RO | 0x20),
        flags(true, true, true, false),
        "IW=0",
    );
    // The allowed directions work.
    assert_eq!(three(&t, rd(dev0(), A_RO)).result, ok(PA_A + 0x1000));
    assert_eq!(three(&t, wr(dev0(), A_WO)).result, ok(PA_A + 0x2000));
}

#[test]
fn the_event_log_entry_bytes_are_the_spec_layout() {
    // Write to A_RO: QW0 = code 2 << 60 | PE (54) | RW (53) | PR (52) | DomainID 1 << 32 |
    // DeviceID 0x0300 = 0x2070_0001_0000_0300; QW1 = the IOVA 0x4000_1020.
    let t = fault_tables();
    let th = three(&t, wr(dev0(), A_RO | 0x20));
    assert_eq!(th.result, Err(IO_PAGE_FAULT));
    assert_eq!(th.sys.mem.u64_coherent(EVT_BASE), 0x2070_0001_0000_0300);
    assert_eq!(th.sys.mem.u64_coherent(EVT_BASE + 8), 0x4000_1020);
}

#[test]
fn pte_reserved_bits_58_52_fault_rz_and_u_and_fc_are_not_reserved_in_a_pte() {
    for bit in 52..=58u32 {
        let mut t = fault_tables();
        t.patch(A, 1, |e| e | 1 << bit);
        assert_iopf(
            &t,
            rd(dev0(), A),
            flags(true, false, false, true),
            &format!("PTE bit {bit}"),
        );
    }
    // U (59) in a leaf: allowed for untranslated requests; FC (60) is already set.
    let mut t = fault_tables();
    t.patch(A, 1, |e| e | 1 << 59);
    assert_eq!(three(&t, rd(dev0(), A | 8)).result, ok(PA_A | 8));
}

#[test]
fn pde_reserved_bits_60_52_including_fc_and_u_fault_rz() {
    for (level, bit) in (52..=60u32)
        .map(|b| (2u8, b))
        .chain([(4u8, 59u32), (4, 60), (3, 52)])
    {
        let mut t = fault_tables();
        t.patch(A, level, |e| e | 1 << bit);
        assert_iopf(
            &t,
            rd(dev0(), A),
            flags(true, false, false, true),
            &format!("level-{level} PDE bit {bit}"),
        );
    }
}

#[test]
fn address_bits_at_or_above_haw_fault_rz() {
    // Default HAW 48: leaf address bit 48, or PDE address bit 51, is reserved.
    let mut t = fault_tables();
    t.patch(A, 1, |e| e | 1 << 48);
    assert_iopf(
        &t,
        rd(dev0(), A),
        flags(true, false, false, true),
        "leaf bit 48",
    );
    let mut t2 = fault_tables();
    t2.patch(A, 3, |e| e | 1 << 51);
    assert_iopf(
        &t2,
        rd(dev0(), A),
        flags(true, false, false, true),
        "PDE bit 51",
    );
    // HAW 52: the same leaf is a valid address with bit 48.
    let c52 = cfg_caps(Capabilities {
        haw: 52,
        ..Capabilities::default()
    });
    let th = three_ways(&c52, &t.memory(), t.devtab_reg(), &rd(dev0(), A | 0x10));
    assert_eq!(th.result, ok(PA_A | 1 << 48 | 0x10));
}

#[test]
fn a_next_level_at_or_above_the_current_level_is_an_invalid_level_encoding() {
    // Next Level is bits 11:9; a PDE at level L must point below L. VBox reports an
    // invalid level encoding as IO_PAGE_FAULT with PR = 1, RZ = 0 (PteInvalidLvlEncoding).
    for (level, nl) in [(2u8, 2u64), (2, 3), (3, 4), (4, 4), (4, 6)] {
        let mut t = fault_tables();
        t.patch(A, level, |e| (e & !(7 << 9)) | nl << 9);
        assert_iopf(
            &t,
            rd(dev0(), A),
            flags(true, false, false, false),
            &format!("level-{level} PDE with Next Level {nl}"),
        );
    }
}

// ---------------------------------------------------------------------------------------
// 4. FC and the TLP No Snoop attribute
// ---------------------------------------------------------------------------------------

#[test]
fn fc_forces_snoop_and_the_effective_snoop_is_not_ns_or_fc() {
    // FC (PTE bit 60): "a TLP with NS=1 to an FC=1 page is treated as NS=0" (SPEC-NOTES
    // §4.3); model_core: snooped = !tlp.no_snoop || forces_snoop.
    let mut t = Tables::new(4);
    t.attach(dev0(), DOMAIN);
    t.map(A, PA_A, 4 * KIB, perm(true, true, true));
    t.map(A + 0x1000, PA_A + 0x1000, 4 * KIB, perm(true, true, false));
    println!("\nAMD-Vi FC x TLP No Snoop -> effective snoop");
    println!(
        "{:>8} {:>8} {:>14} {:>8}",
        "leaf_FC", "TLP_NS", "forces_snoop", "snooped"
    );
    let expected = [
        (false, false, true),
        (false, true, false),
        (true, false, true),
        (true, true, true),
    ];
    for (fc, ns_attr, want_snooped) in expected {
        let iova = if fc { A } else { A + 0x1000 };
        let mut r = wr(dev0(), iova | 0x80);
        if ns_attr {
            r = no_snoop(r);
        }
        let th = three(&t, r);
        let tr: Translation = th.result.expect("mapped RW");
        assert_eq!(tr.pa, PhysAddr((PA_A + if fc { 0 } else { 0x1000 }) | 0x80));
        assert_eq!(tr.forces_snoop, fc, "forces_snoop = leaf FC");
        let snooped = !r.no_snoop || tr.forces_snoop;
        println!(
            "{:>8} {:>8} {:>14} {:>8}",
            u8::from(fc),
            u8::from(ns_attr),
            u8::from(tr.forces_snoop),
            u8::from(snooped)
        );
        assert_eq!(snooped, want_snooped, "FC {fc} NS {ns_attr}");
    }
}
