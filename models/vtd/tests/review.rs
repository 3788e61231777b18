//! Regressions for defects an independent review found in the walk, the caches and the
//! timed unit. Each test fails on the code before its fix.

mod common;

use common::*;
use model_core::{PhysAddr, TranslationAgent, TranslationRequest};
use vtd::entry::{PageSize, Pgtt};
use vtd::qi::PasidIotlbScope;
use vtd::VtdConfig;

fn dev0() -> model_core::Bdf {
    dev(3, 0, 0)
}

fn translated(r: TranslationRequest) -> TranslationRequest {
    TranslationRequest {
        translated: true,
        ..r
    }
}

/// An ATS-translated request is decided by the context's DTE (pass through untranslated),
/// also after an untranslated request warmed the context and PASID caches (the PASID
/// cache must not short-cut the DTE check).
#[test]
fn a_translated_request_passes_through_with_dte_whether_or_not_the_pasid_cache_is_warm() {
    let mut sm = Sm::new();
    sm.context(dev0(), false);
    let mut sl = sm.sl();
    sl.map(
        &mut sm.alloc,
        0x1000,
        PhysAddr(0x5000_0000),
        PageSize::Size4K,
        RW,
        &mut sm.out,
    )
    .unwrap();
    let f = vtd::entry::PasidFields {
        slptptr: sl.root(),
        ..pasid_fields(Pgtt::SecondLevel)
    };
    sm.pasid(dev0(), 0, f);
    let mut sys = Sys::with_caps(sm_caps());
    sys.mem = sm.memory();
    sys.boot(sm.ct.root_table(), true, false);
    // Cold: DTE = 1 passes the translated address through.
    assert_eq!(
        sys.translate_now(translated(rd(dev0(), 0x1000))).code(),
        ok(0x1000)
    );
    // Warm the PASID cache with an untranslated request, then ask again.
    assert_eq!(
        sys.translate_now(rd(dev0(), 0x1000)).code(),
        ok(0x5000_0000)
    );
    assert_eq!(
        sys.translate_now(translated(rd(dev0(), 0x1000))).code(),
        ok(0x1000)
    );
}

/// Nested: a first-level output (guest-physical) beyond the 39-bit width of a 3-level
/// second level faults 0x74 instead of losing its high bits.
#[test]
fn a_nested_guest_physical_address_beyond_the_second_level_width_faults() {
    const IOVA: u64 = 0x4000;
    const GPA_HIGH: u64 = (1 << 40) | 0x5000_0000;
    let mut sm = Sm::new();
    sm.context(dev0(), true);
    let mut sl = vtd::tables::SlTables::new(&mut sm.alloc, 3).unwrap();
    // Identity-map the table memory so the first-level tables' GPAs resolve, and map GPA
    // 0x5000_0000 (what a 40-bit-truncating walk would land on).
    for page in (TABLE_BASE..TABLE_BASE + (1 << 20)).step_by(4096) {
        sl.map(
            &mut sm.alloc,
            page,
            PhysAddr(page),
            PageSize::Size4K,
            RW,
            &mut sm.out,
        )
        .unwrap();
    }
    sl.map(
        &mut sm.alloc,
        0x5000_0000,
        PhysAddr(0x7000_0000),
        PageSize::Size4K,
        RW,
        &mut sm.out,
    )
    .unwrap();
    let mut fl = sm.fl();
    let user = vtd::entry::FlPerm {
        writable: true,
        user: true,
        xd: false,
    };
    fl.map(
        &mut sm.alloc,
        IOVA,
        PhysAddr(GPA_HIGH),
        PageSize::Size4K,
        user,
        &mut sm.out,
    )
    .unwrap();
    let f = vtd::entry::PasidFields {
        aw: 1,
        slptptr: sl.root(),
        flptr: fl.root(),
        ..pasid_fields(Pgtt::Nested)
    };
    sm.pasid(dev0(), 5, f);
    let m = sm.memory();
    let r = with_pasid(rd(dev0(), IOVA), 5);
    let cfg = VtdConfig {
        caps: vtd::regs::Capabilities {
            sagaw_levels: vec![3, 4],
            ..sm_caps()
        },
        ..VtdConfig::default()
    };
    assert_eq!(
        three_ways(&cfg, &m, sm.ct.root_table(), true, &r),
        Err(0x74)
    );
}

/// A page-selective PASID-IOTLB invalidation reaches a cached upper-half (canonical-high)
/// first-level address.
#[test]
fn page_selective_invalidation_reaches_upper_half_first_level_addresses() {
    let mut c = vtd::caches::Caches::new(&vtd::CacheConfig::default()).unwrap();
    let iova = 0xffff_8000_0000_0000u64;
    let leaf = vtd::walk::Leaf {
        did: 7,
        pasid_tag: Some(5),
        size: PageSize::Size4K,
        iova_base: iova,
        pa_base: 0x1000,
        read: true,
        write: true,
        user: true,
        exec: true,
        supervisor_writes_any: false,
        forces_snoop: false,
        kind: vtd::walk::TableKind::First,
        scalable: true,
        fpd: false,
    };
    c.iotlb_fill(&leaf);
    let scope = PasidIotlbScope::Page {
        did: 7,
        pasid: 5,
        addr: iova,
        am: 0,
        ih: false,
    };
    assert_eq!(c.invalidate_pasid_iotlb(scope), 1);
    assert!(c.iotlb_lookup(7, Some(5), iova).is_none());
}

/// Linux reads the top dword of a fault recording register (F at bit 31) and clears it
/// by writing F there (dmar_fault).
#[test]
fn fault_records_read_and_clear_as_linux_does_through_the_top_dword() {
    let mut l = Legacy::new(4);
    l.attach(dev0(), 1);
    let mut sys = Sys::new(VtdConfig::default());
    sys.mem.write_flushed(&l.take());
    sys.boot(l.ctx.root_table(), false, false);
    assert_eq!(sys.translate_now(rd(dev0(), 0x9000)).code(), Err(0x6));
    let top = sys.agent.frcd_offset(0) + 12;
    let t = sys.now();
    let d = sys.reg_read(t, top);
    assert_eq!(d >> 31 & 1, 1, "F");
    assert_eq!(d & 0xff, 0x6, "FR at bits 103:96");
    sys.reg_write(t, top, 1 << 31);
    assert_eq!(sys.reg_read(t, top) >> 31 & 1, 0, "cleared");
    let _ = sys.agent.stats();
}
