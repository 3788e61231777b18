//! Register, fault-record and invalidation-descriptor vectors for `vtd::{regs, fault, qi}`.
//!
//! Expected values are derived by hand from the public code that defines the bits (Linux
//! `drivers/iommu/intel/iommu.h` `cap_*`/`ecap_*`/`QI_*`/`DMA_*` macros and `dmar.c`
//! `dmar_fault`; QEMU `hw/i386/intel_iommu_internal.h` `VTD_*` masks and `intel_iommu.c`
//! `vtd_cap_init`), with the derivation next to each constant. They are not produced by the
//! code under test.

use model_core::Bdf;
use vtd::fault::{FaultInfo, FaultReason, FaultRecorder, Logged};
use vtd::qi::{
    decode_ccmd, decode_iotlb_reg, decode_iotlb_reg_with_iva, encode_ccmd, encode_iotlb_reg,
    iotlb_reg_drains, ContextScope, InvDescriptor, IotlbScope, PasidCacheScope, PasidIotlbScope,
    QiError,
};
use vtd::regs::{Cap, Capabilities, Ecap, Iqa};

// ---------------------------------------------------------------------------------------------
// regs
// ---------------------------------------------------------------------------------------------

/// Every field set to a value unlike its default, and valid.
fn scalable_everything() -> Capabilities {
    Capabilities {
        sagaw_levels: vec![3, 5],
        mgaw: 57,
        haw: 52,
        nd: 4,
        caching_mode: true,
        rwbf: true,
        sllps_2m: true,
        sllps_1g: true,
        fl1gp: true,
        fl5lp: true,
        psi: true,
        mamv: 9,
        nfr: 200,
        coherent: false,
        queued_invalidation: true,
        device_tlb: true,
        pass_through: true,
        snoop_control: true,
        nested: true,
        scalable_mode: true,
        second_level: true,
        first_level: true,
        pasid: true,
        pss: 19,
        smpwc: true,
    }
}

#[test]
fn capabilities_encode_and_decode_back_field_by_field() {
    let caps = scalable_everything();
    assert_eq!(caps.validate(), Ok(()));
    let (cap, ecap) = (caps.cap(), caps.ecap());
    assert_eq!(cap.nd(), 4);
    assert_eq!(cap.domains(), 4096);
    assert!(cap.rwbf() && cap.cm() && cap.psi() && cap.fl1gp() && cap.fl5lp());
    assert_eq!(cap.sagaw(), 0b1010, "bit 1 = 3 levels, bit 3 = 5 levels");
    assert!(cap.supports_levels(3) && !cap.supports_levels(4) && cap.supports_levels(5));
    assert!(!cap.supports_levels(2) && !cap.supports_levels(6) && !cap.supports_levels(0));
    assert_eq!(cap.mgaw(), 57);
    assert_eq!(cap.sllps(), 0b11);
    assert!(cap.supports_2m() && cap.supports_1g());
    assert_eq!(cap.nfr(), 200);
    assert_eq!(cap.mamv(), 9);
    assert!(!cap.zlr());
    assert_eq!(
        cap.frcd_offset(),
        0x220,
        "FRO is QEMU's DMAR_FRCD_REG_OFFSET"
    );
    assert!(!ecap.c() && ecap.qi() && ecap.dt() && ecap.pt() && ecap.sc());
    assert!(ecap.nest() && ecap.smts() && ecap.slts() && ecap.flts() && ecap.smpwc());
    assert!(ecap.pasid() && !ecap.prs());
    assert_eq!(ecap.pss(), 19);
    assert_eq!(ecap.pasid_bits(), 20);
    assert_eq!(
        ecap.iotlb_offset(),
        0xf0,
        "IRO is QEMU's DMAR_IOTLB_REG_OFFSET"
    );

    let legacy = Capabilities::default();
    assert_eq!(legacy.validate(), Ok(()));
    let (cap, ecap) = (legacy.cap(), legacy.ecap());
    assert!(cap.supports_levels(3) && cap.supports_levels(4) && !cap.supports_levels(5));
    assert_eq!(cap.mgaw(), 48);
    assert!(!cap.cm() && !ecap.smts() && !ecap.slts() && !ecap.flts() && !ecap.pasid());
    assert_eq!(ecap.pasid_bits(), 0);
}

/// A CAP bit position and the accessor that reads it.
type CapFlag = (u32, fn(Cap) -> bool);
/// An ECAP bit position and the accessor that reads it.
type EcapFlag = (u32, fn(Ecap) -> bool);

#[test]
fn cap_fields_sit_at_the_linux_macro_positions() {
    // Each (raw value, accessor) pair sets exactly the bits one Linux macro reads.
    assert_eq!(Cap(0x7).nd(), 7); // cap_ndoms: c & 0x7
    assert_eq!(Cap(6).domains(), 65536); // 1 << (4 + 2 * 6)
    assert_eq!(Cap(0).domains(), 16);
    assert!(Cap(1 << 3).afl()); // cap_afl: >> 3
    assert!(Cap(1 << 4).rwbf()); // cap_rwbf: >> 4
    assert!(Cap(1 << 5).plmr() && Cap(1 << 6).phmr()); // cap_plmr >> 5, cap_phmr >> 6
    assert!(Cap(1 << 7).cm()); // cap_caching_mode: >> 7
    assert_eq!(Cap(0x1f << 8).sagaw(), 0x1f); // cap_sagaw: (c >> 8) & 0x1f
    assert_eq!(Cap(0x3f << 16).mgaw(), 64); // cap_mgaw: ((c >> 16) & 0x3f) + 1
    assert_eq!(Cap(0).mgaw(), 1);
    assert!(Cap(1 << 22).zlr()); // cap_zlr: >> 22
    assert_eq!(Cap(0x3ff << 24).fro(), 0x3ff); // cap_fault_reg_offset: (c >> 24) & 0x3ff
    assert_eq!(Cap(0x3ff << 24).frcd_offset(), 0x3ff0);
    assert_eq!(Cap(0xf << 34).sllps(), 0xf); // cap_super_page_val: (c >> 34) & 0xf
    assert!(Cap(1 << 34).supports_2m() && !Cap(1 << 34).supports_1g());
    assert!(Cap(1 << 35).supports_1g() && !Cap(1 << 35).supports_2m());
    assert!(Cap(1 << 39).psi()); // cap_pgsel_inv: >> 39
    assert_eq!(Cap(0xff << 40).nfr(), 256); // cap_num_fault_regs: ((c >> 40) & 0xff) + 1
    assert_eq!(Cap(0).nfr(), 1);
    assert_eq!(Cap(0x3f << 48).mamv(), 63); // cap_max_amask_val: (c >> 48) & 0x3f
    assert!(Cap(1 << 54).dwd() && Cap(1 << 55).drd()); // cap_write_drain, cap_read_drain
    assert!(Cap(1 << 56).fl1gp()); // cap_fl1gp_support: >> 56
    assert!(Cap(1 << 59).pi()); // cap_pi_support: >> 59
    assert!(Cap(1 << 60).fl5lp()); // cap_fl5lp_support: >> 60
    assert!(Cap(1 << 63).esrtps()); // cap_esrtps: >> 63

    // No single-bit accessor reads a neighbour: all other bits set, each reads false.
    let flags: [CapFlag; 15] = [
        (3, Cap::afl),
        (4, Cap::rwbf),
        (5, Cap::plmr),
        (6, Cap::phmr),
        (7, Cap::cm),
        (22, Cap::zlr),
        (34, Cap::supports_2m),
        (35, Cap::supports_1g),
        (39, Cap::psi),
        (54, Cap::dwd),
        (55, Cap::drd),
        (56, Cap::fl1gp),
        (59, Cap::pi),
        (60, Cap::fl5lp),
        (63, Cap::esrtps),
    ];
    for (bit, get) in flags {
        assert!(get(Cap(1 << bit)), "CAP bit {bit}");
        assert!(!get(Cap(!(1 << bit))), "CAP bit {bit} read from elsewhere");
    }
}

#[test]
fn ecap_fields_sit_at_the_linux_macro_positions() {
    let flags: [EcapFlag; 14] = [
        (0, Ecap::c),      // ecap_coherent: e & 0x1
        (1, Ecap::qi),     // ecap_qis: e & 0x2
        (2, Ecap::dt),     // ecap_dev_iotlb_support: >> 2
        (3, Ecap::ir),     // ecap_ir_support: >> 3
        (4, Ecap::eim),    // ecap_eim_support: >> 4
        (6, Ecap::pt),     // ecap_pass_through: >> 6
        (7, Ecap::sc),     // ecap_sc_support: >> 7
        (26, Ecap::nest),  // ecap_nest: >> 26
        (29, Ecap::prs),   // ecap_prs: >> 29
        (40, Ecap::pasid), // ecap_pasid: >> 40
        (43, Ecap::smts),  // ecap_smts: >> 43
        (46, Ecap::slts),  // ecap_slts: >> 46
        (47, Ecap::flts),  // ecap_flts: >> 47
        (48, Ecap::smpwc), // ecap_smpwc: >> 48
    ];
    for (bit, get) in flags {
        assert!(get(Ecap(1 << bit)), "ECAP bit {bit}");
        assert!(
            !get(Ecap(!(1 << bit))),
            "ECAP bit {bit} read from elsewhere"
        );
    }
    assert_eq!(Ecap(0x3ff << 8).iro(), 0x3ff); // ecap_iotlb_offset: ((e >> 8) & 0x3ff) * 16
    assert_eq!(Ecap(0x3ff << 8).iotlb_offset(), 0x3ff0);
    assert_eq!(Ecap(0xf << 20).mhmv(), 0xf); // ecap_max_handle_mask: (e >> 20) & 0xf
    assert_eq!(Ecap(0x1f << 35).pss(), 0x1f); // ecap_pss: (e >> 35) & 0x1f
    assert_eq!(
        Ecap(0x1f << 35).pasid_bits(),
        0,
        "PSS is meaningless without PASID"
    );
    assert_eq!(Ecap(1 << 40 | 4 << 35).pasid_bits(), 5);
}

#[test]
fn skylake_sp_register_values_decode_as_the_default_models() {
    // Linux boot log of a Xeon Gold 6146 (Skylake-SP), quoted on linux-iommu:
    // "DMAR: dmar0: reg_base_addr ... ver 1:0 cap 8d2078c106f0466 ecap f020df".
    let cap = Cap(0x08d2_078c_106f_0466);
    let ecap = Ecap(0x00f0_20df);
    // 0x466: ND = 6, PLMR, PHMR; SAGAW = 0x4 (48-bit only).
    assert_eq!(
        (cap.nd(), cap.plmr(), cap.phmr(), cap.sagaw()),
        (6, true, true, 0b100)
    );
    // 0x6f....: MGAW field 0x2f = 47 -> 48 bits, ZLR set.
    assert_eq!((cap.mgaw(), cap.zlr()), (48, true));
    // (cap >> 24) & 0x3ff = 0x10 -> FRCDs at 0x100; SLLPS = 0b11; PSI; NFR 7 + 1; MAMV 18.
    assert_eq!(cap.frcd_offset(), 0x100);
    assert_eq!(
        (cap.sllps(), cap.psi(), cap.nfr(), cap.mamv()),
        (0b11, true, 8, 18)
    );
    assert!(cap.dwd() && cap.drd() && cap.pi() && !cap.cm() && !cap.fl1gp());
    // 0xdf: C, QI, DT, IR, EIM, PT, SC; IRO 0x20 -> IOTLB regs at 0x200; MHMV 0xf.
    assert!(ecap.c() && ecap.qi() && ecap.dt() && ecap.ir() && ecap.eim());
    assert!(ecap.pt() && ecap.sc() && !ecap.smts() && !ecap.nest());
    assert_eq!((ecap.iotlb_offset(), ecap.mhmv()), (0x200, 0xf));

    let d = Capabilities::default();
    let (dc, de) = (d.cap(), d.ecap());
    assert_eq!(
        (dc.nd(), dc.mgaw(), dc.sllps()),
        (cap.nd(), cap.mgaw(), cap.sllps())
    );
    assert_eq!(
        (dc.psi(), dc.nfr(), dc.mamv()),
        (cap.psi(), cap.nfr(), cap.mamv())
    );
    assert_eq!(
        (de.c(), de.qi(), de.dt(), de.pt(), de.sc(), de.smts()),
        (
            ecap.c(),
            ecap.qi(),
            ecap.dt(),
            ecap.pt(),
            ecap.sc(),
            ecap.smts()
        )
    );
    assert_eq!(d.haw, 46, "the same log: 'DMAR: Host address width 46'");
}

#[test]
fn qemu_intel_iommu_default_registers() {
    // QEMU hw/i386/intel_iommu.c @019fbfa4 `vtd_cap_init` with aw-bits=48, dma-drain=on
    // (default), caching-mode=off, intremap=off, device-iotlb=off, pt=on:
    //   VTD_CAP_FRO   = 0x220 << 20              = 0x0000_0000_2200_0000
    //   VTD_CAP_NFR   = (1 - 1) << 40            = 0
    //   VTD_CAP_ND    = ((16 - 4) / 2) & 7       = 0x6
    //   VTD_CAP_MAMV  = 18 << 48                 = 0x0012_0000_0000_0000
    //   VTD_CAP_PSI   = 1 << 39                  = 0x0000_0080_0000_0000
    //   VTD_CAP_SLLPS = 1 << 34 | 1 << 35        = 0x0000_000c_0000_0000
    //   VTD_CAP_MGAW(48) = 47 << 16              = 0x0000_0000_002f_0000
    //   VTD_CAP_DRAIN = 1 << 54 | 1 << 55        = 0x00c0_0000_0000_0000
    //   SAGAW_39bit | SAGAW_48bit = (2 | 4) << 8 = 0x0000_0000_0000_0600
    const QEMU_CAP: u64 = 0x00d2_008c_222f_0606;
    //   VTD_ECAP_QI | VTD_ECAP_IRO (0xf0 << 4) | VTD_ECAP_PT = 0x2 | 0xf00 | 0x40
    const QEMU_ECAP: u64 = 0xf42;
    let cap = Cap(QEMU_CAP);
    assert_eq!((cap.nd(), cap.sagaw(), cap.mgaw()), (6, 0b110, 48));
    assert_eq!(
        (cap.fro(), cap.nfr(), cap.mamv(), cap.sllps()),
        (0x22, 1, 18, 0b11)
    );
    assert!(cap.psi() && cap.dwd() && cap.drd() && !cap.cm());
    assert_eq!(Ecap(QEMU_ECAP).iro(), 0xf);

    let qemu_like = Capabilities {
        sagaw_levels: vec![3, 4],
        mgaw: 48,
        haw: 48,
        nd: 6,
        caching_mode: false,
        rwbf: false,
        sllps_2m: true,
        sllps_1g: true,
        fl1gp: false,
        fl5lp: false,
        psi: true,
        mamv: 18,
        nfr: 1,
        coherent: false,
        queued_invalidation: true,
        device_tlb: false,
        pass_through: true,
        snoop_control: false,
        nested: false,
        scalable_mode: false,
        second_level: false,
        first_level: false,
        pasid: false,
        pss: 0,
        smpwc: false,
    };
    assert_eq!(qemu_like.validate(), Ok(()));
    // Capabilities has no drain fields; everything else matches bit for bit.
    assert_eq!(qemu_like.cap().0 | 1 << 54 | 1 << 55, QEMU_CAP);
    assert_eq!(qemu_like.ecap().0, QEMU_ECAP);
}

#[test]
fn address_widths_follow_agaw() {
    // Linux agaw_to_width: 30 + 9 * agaw, agaw = levels - 2.
    assert_eq!(Capabilities::address_width(3), 39);
    assert_eq!(Capabilities::address_width(4), 48);
    assert_eq!(Capabilities::address_width(5), 57);
    assert_eq!(Capabilities::address_width(0), 30);
    assert_eq!(Capabilities::address_width(255), 255, "saturates");
    assert_eq!(Capabilities::default().max_levels(), 4);
    let mut c = Capabilities::default();
    c.sagaw_levels.clear();
    assert_eq!(c.max_levels(), 0);
}

#[test]
fn iqa_view() {
    // Base 0x1234_5000, DW = 1 (bit 11), QS = 2 -> 16 KiB.
    let iqa = Iqa(0x1234_5000 | 1 << 11 | 2);
    assert_eq!(iqa.base(), 0x1234_5000);
    assert!(iqa.wide_descriptors());
    assert_eq!((iqa.qs(), iqa.size_bytes()), (2, 16384));
}

type Mutate = fn(&mut Capabilities);

fn sm(c: &mut Capabilities) {
    c.scalable_mode = true;
    c.second_level = true;
}

/// Every validate rule: the field it names, a breaking change, and a nearby valid change.
fn rules() -> Vec<(&'static str, &'static str, Mutate, Mutate)> {
    vec![
        (
            "empty SAGAW",
            "sagaw_levels",
            |c| c.sagaw_levels.clear(),
            |c| c.sagaw_levels = vec![4],
        ),
        (
            "2-level table",
            "sagaw_levels",
            |c| c.sagaw_levels = vec![2, 4],
            |c| c.sagaw_levels = vec![4],
        ),
        (
            "6-level table",
            "sagaw_levels",
            |c| c.sagaw_levels = vec![6],
            |c| c.sagaw_levels = vec![5],
        ),
        (
            "duplicate level",
            "sagaw_levels",
            |c| c.sagaw_levels = vec![4, 4],
            |c| c.sagaw_levels = vec![3, 4, 5],
        ),
        ("MGAW below 30", "mgaw", |c| c.mgaw = 29, |c| c.mgaw = 30),
        (
            "MGAW above 57",
            "mgaw",
            |c| {
                c.sagaw_levels = vec![5];
                c.mgaw = 58
            },
            |c| {
                c.sagaw_levels = vec![5];
                c.mgaw = 57
            },
        ),
        (
            "MGAW wider than the deepest table",
            "mgaw",
            |c| c.sagaw_levels = vec![3],
            |c| {
                c.sagaw_levels = vec![3];
                c.mgaw = 39
            },
        ),
        ("HAW below 30", "haw", |c| c.haw = 29, |c| c.haw = 30),
        ("HAW above 52", "haw", |c| c.haw = 53, |c| c.haw = 52),
        ("ND 7", "nd", |c| c.nd = 7, |c| c.nd = 0),
        ("NFR 0", "nfr", |c| c.nfr = 0, |c| c.nfr = 1),
        ("NFR 257", "nfr", |c| c.nfr = 257, |c| c.nfr = 256),
        ("MAMV 64", "mamv", |c| c.mamv = 64, |c| c.mamv = 63),
        (
            "MAMV without PSI",
            "mamv",
            |c| c.psi = false,
            |c| {
                c.psi = false;
                c.mamv = 0
            },
        ),
        (
            "1 GiB without 2 MiB",
            "sllps_1g",
            |c| c.sllps_2m = false,
            |c| {
                c.sllps_2m = false;
                c.sllps_1g = false
            },
        ),
        (
            "FL1GP without first level",
            "fl1gp",
            |c| {
                sm(c);
                c.fl1gp = true
            },
            |c| {
                sm(c);
                c.fl1gp = true;
                c.first_level = true
            },
        ),
        (
            "FL5LP without first level",
            "fl5lp",
            |c| {
                sm(c);
                c.fl5lp = true
            },
            |c| {
                sm(c);
                c.fl5lp = true;
                c.first_level = true
            },
        ),
        (
            "scalable mode without QI",
            "scalable_mode",
            |c| {
                sm(c);
                c.queued_invalidation = false;
                c.device_tlb = false
            },
            sm,
        ),
        (
            "scalable mode without a translation type",
            "scalable_mode",
            |c| {
                c.scalable_mode = true;
                c.pass_through = false
            },
            |c| c.scalable_mode = true, // pass-through alone is enough
        ),
        (
            "second level without scalable mode",
            "second_level",
            |c| c.second_level = true,
            sm,
        ),
        (
            "first level without scalable mode",
            "first_level",
            |c| c.first_level = true,
            |c| {
                c.scalable_mode = true;
                c.first_level = true
            },
        ),
        (
            "nested without scalable mode",
            "nested",
            |c| c.nested = true,
            |c| {
                sm(c);
                c.first_level = true;
                c.nested = true
            },
        ),
        (
            "nested without first level",
            "nested",
            |c| {
                sm(c);
                c.nested = true
            },
            |c| {
                sm(c);
                c.first_level = true;
                c.nested = true
            },
        ),
        (
            "PASID without scalable mode",
            "pasid",
            |c| c.pasid = true,
            |c| {
                sm(c);
                c.pasid = true
            },
        ),
        (
            "SMPWC without scalable mode",
            "smpwc",
            |c| c.smpwc = true,
            |c| {
                sm(c);
                c.smpwc = true
            },
        ),
        (
            "device-TLB without QI",
            "device_tlb",
            |c| c.queued_invalidation = false,
            |c| {
                c.queued_invalidation = false;
                c.device_tlb = false
            },
        ),
        (
            "PSS above 19",
            "pss",
            |c| {
                sm(c);
                c.pasid = true;
                c.pss = 20
            },
            |c| {
                sm(c);
                c.pasid = true;
                c.pss = 19
            },
        ),
        (
            "PSS without PASID",
            "pss",
            |c| c.pss = 4,
            |c| {
                sm(c);
                c.pasid = true;
                c.pss = 4
            },
        ),
    ]
}

#[test]
fn every_validate_rule_rejects_and_admits() {
    for (rule, field, breaks, fixes) in rules() {
        let mut bad = Capabilities::default();
        breaks(&mut bad);
        let e = bad.validate().expect_err(rule);
        assert_eq!(e.field, field, "{rule}: {e}");
        assert!(
            e.message.contains('§'),
            "{rule}: message cites no section: {e}"
        );
        assert!(e.to_string().starts_with(field), "{rule}: {e}");

        let mut good = Capabilities::default();
        fixes(&mut good);
        assert_eq!(good.validate(), Ok(()), "{rule}: the nearby valid case");
    }
}

// ---------------------------------------------------------------------------------------------
// fault
// ---------------------------------------------------------------------------------------------

fn bdf(bus: u8, dev: u8, func: u8) -> Bdf {
    Bdf::new(bus, dev, func).expect("valid test BDF")
}

#[test]
fn fault_reason_table_matches_linux_and_qemu() {
    // Linux dmar.c dma_remap_fault_reasons: 14 strings for 0x0-0xD, 0x0 being "Software".
    let legacy: Vec<u8> = (0x1..=0xd).collect();
    // irq_remap_fault_reasons: 7 strings from 0x20.
    let ir: Vec<u8> = (0x20..=0x26).collect();
    // dma_remap_sm_fault_reasons, index = code - 0x30, the entries that are not "Unknown".
    let sm: Vec<u8> = [0x30, 0x31, 0x32, 0x38, 0x39, 0x3a]
        .into_iter()
        .chain(0x40..=0x48)
        .chain(0x50..=0x52)
        .chain(0x58..=0x5d)
        .chain(0x70..=0x7c)
        .chain(0x80..=0x87)
        .chain([0x90])
        .collect();
    let expected: Vec<u8> = legacy.iter().chain(&ir).chain(&sm).copied().collect();
    let table: Vec<u8> = FaultReason::ALL.iter().map(|r| r.code()).collect();
    assert_eq!(table, expected);
    assert_eq!(FaultReason::ALL.len(), 13 + 7 + 46);

    for code in 0..=u8::MAX {
        match FaultReason::from_code(code) {
            Some(r) => {
                assert_eq!(r.code(), code);
                assert_eq!(FaultReason::try_from(code), Ok(r));
                assert_eq!(r.is_scalable_mode(), code >= 0x30);
                assert_eq!(r.is_interrupt_remapping(), (0x20..0x30).contains(&code));
            }
            None => {
                assert!(!expected.contains(&code), "{code:#x} missing");
                assert_eq!(FaultReason::try_from(code), Err(code));
            }
        }
    }
    let mut names: Vec<&str> = FaultReason::ALL.iter().map(|r| r.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), FaultReason::ALL.len(), "names are unique");

    // QEMU VTDFaultReason values the model will raise most.
    assert_eq!(FaultReason::WriteDenied.code(), 0x5); // VTD_FR_WRITE
    assert_eq!(FaultReason::ReadDenied.code(), 0x6); // VTD_FR_READ
    assert_eq!(FaultReason::PagingEntryReserved.code(), 0xc); // VTD_FR_PAGING_ENTRY_RSVD
    assert_eq!(FaultReason::SmPasidEntryAccess.code(), 0x58); // VTD_FR_PASID_TABLE_INV
    assert_eq!(FaultReason::SmSlAdUpdateNoSnoop.code(), 0x7c);
    assert_eq!(FaultReason::SmFlAdUpdateNoSnoop.code(), 0x90);
    assert_eq!(
        FaultReason::ReadDenied.to_string(),
        "0x06 read denied: a second-level entry has R = 0 (or is not present)"
    );
}

/// Linux `dmar_fault` reads the record as dwords: +12 holds F (31), T (30), FR (7:0) and the
/// PASID value ((d >> 8) & 0xfffff); +8 holds SID (15:0) and PP (31); +0 (a qword) holds FI.
fn linux_decode(lo: u64, hi: u64) -> (bool, u32, u8, u32, u16, bool, u64) {
    let d12 = (hi >> 32) as u32;
    let d8 = hi as u32;
    (
        d12 & (1 << 31) != 0,  // DMA_FRCD_F
        (d12 >> 30) & 1,       // dma_frcd_type: 1 = "DMA Read"
        (d12 & 0xff) as u8,    // dma_frcd_fault_reason
        (d12 >> 8) & 0xfffff,  // dma_frcd_pasid_value
        (d8 & 0xffff) as u16,  // dma_frcd_source_id
        (d8 >> 31) & 1 == 1,   // dma_frcd_pasid_present
        lo & (u64::MAX << 12), // dma_frcd_page_addr (4 KiB pages)
    )
}

#[test]
fn frcd_read_fault_without_pasid() {
    // Read of 0x1234_5abc by 02:03.1 (SID 0x0219 = bus 2 << 8 | dev 3 << 3 | fn 1), reason 6.
    let f = FaultInfo {
        reason: FaultReason::ReadDenied,
        source_id: bdf(2, 3, 1),
        address: 0x1234_5abc,
        pasid: None,
        write: false,
        execute: false,
        privileged: false,
    };
    // lo: FI = bits 63:12 of the address.
    // hi: F (bit 63) | T = 1 read (bit 62) | FR 0x06 (39:32) | SID 0x0219 (15:0).
    let (lo, hi) = f.frcd();
    assert_eq!(lo, 0x0000_0000_1234_5000);
    assert_eq!(hi, 0xc000_0006_0000_0219);
    assert_eq!(
        linux_decode(lo, hi),
        (true, 1, 0x06, 0, 0x0219, false, 0x1234_5000)
    );
    let back = FaultInfo::from_frcd(lo, hi).expect("F set, known reason");
    assert_eq!(
        back,
        FaultInfo {
            address: 0x1234_5000,
            ..f
        }
    );
}

#[test]
fn frcd_write_fault_with_pasid_exe_priv() {
    // Write by 01:00.0 with PASID 0xabcde, execute and privileged requested, reason 0x79.
    let f = FaultInfo {
        reason: FaultReason::SmSlPermission,
        source_id: bdf(1, 0, 0),
        address: 0xdead_b000,
        pasid: Some(0xa_bcde),
        write: true,
        execute: true,
        privileged: true,
    };
    // hi: F (63) | T = 0 write | PV 0xabcde (59:40) | FR 0x79 (39:32) | PP (31) | EXE (30)
    //     | PRIV (29) | SID 0x0100  =  0x8abc_de79_e000_0100.
    let (lo, hi) = f.frcd();
    assert_eq!((lo, hi), (0xdead_b000, 0x8abc_de79_e000_0100));
    assert_eq!(
        linux_decode(lo, hi),
        (true, 0, 0x79, 0xa_bcde, 0x0100, true, 0xdead_b000)
    );
    assert_eq!(FaultInfo::from_frcd(lo, hi), Some(f));
    assert_eq!(vtd::fault::frcd_address_type(hi), 0);
    assert_eq!(vtd::fault::frcd_address_type(hi | 2 << 60), 2);
}

#[test]
fn frcd_that_is_not_a_modelled_fault_decodes_to_none() {
    let hi = 0xc000_0006_0000_0219u64;
    assert!(FaultInfo::from_frcd(0, hi).is_some());
    assert_eq!(FaultInfo::from_frcd(0, hi & !(1 << 63)), None, "F clear");
    assert_eq!(
        FaultInfo::from_frcd(0, hi | 1 << 28),
        None,
        "T2: page request/AtomicOp"
    );
    let reserved_fr = (hi & !(0xff << 32)) | 0x0e << 32;
    assert_eq!(
        FaultInfo::from_frcd(0, reserved_fr),
        None,
        "FR 0x0e is reserved"
    );
}

fn fault_from(sid: Bdf, address: u64) -> FaultInfo {
    FaultInfo {
        reason: FaultReason::WriteDenied,
        source_id: sid,
        address,
        pasid: None,
        write: true,
        execute: false,
        privileged: false,
    }
}

const PFO: u32 = 1;
const PPF: u32 = 2;

#[test]
fn recorder_uses_registers_circularly() {
    let mut r = FaultRecorder::new(2);
    assert_eq!(r.fsts(), 0);
    assert_eq!(
        r.log(fault_from(bdf(0, 1, 0), 0x1000), false),
        Logged::Recorded { index: 0 }
    );
    assert_eq!(r.fsts(), PPF, "FRI 0, PPF");
    r.clear(0);
    assert_eq!(r.fsts() & PPF, 0, "PPF follows the F bits");
    assert_eq!(
        r.log(fault_from(bdf(0, 2, 0), 0x2000), false),
        Logged::Recorded { index: 1 }
    );
    assert_eq!(
        r.fsts(),
        1 << 8 | PPF,
        "FRI = 1: the first pending fault since PPF was 0"
    );
    r.clear(1);
    assert_eq!(
        r.log(fault_from(bdf(0, 3, 0), 0x3000), false),
        Logged::Recorded { index: 0 }
    );
    assert_eq!(r.fsts(), PPF, "wrapped to register 0, FRI 0");
    assert_eq!(r.logged(), 3);
    let (_, hi1) = r.frcd(1).expect("index 1 exists");
    assert_eq!(hi1 >> 63, 0, "a cleared register keeps its fields, F = 0");
    assert_eq!(hi1 & 0xffff, u64::from(bdf(0, 2, 0).raw()));
}

#[test]
fn recorder_overflows_after_nfr_uncleared_faults() {
    let mut r = FaultRecorder::new(2);
    assert_eq!(
        r.log(fault_from(bdf(0, 1, 0), 0x1000), false),
        Logged::Recorded { index: 0 }
    );
    assert_eq!(
        r.log(fault_from(bdf(0, 2, 0), 0x2000), false),
        Logged::Recorded { index: 1 }
    );
    // Register 0, the next index, still holds F = 1.
    assert_eq!(
        r.log(fault_from(bdf(0, 3, 0), 0x3000), false),
        Logged::Overflow
    );
    assert_eq!(r.fsts(), PPF | PFO);
    // Freeing a register does not resume recording while PFO is set (QEMU).
    r.clear(0);
    assert_eq!(
        r.log(fault_from(bdf(0, 4, 0), 0x4000), false),
        Logged::Overflow
    );
    assert_eq!(r.overflowed(), 2);
    r.clear_overflow();
    assert_eq!(
        r.log(fault_from(bdf(0, 5, 0), 0x5000), false),
        Logged::Recorded { index: 0 }
    );
    let pending: Vec<(u16, u16)> = r.pending().map(|(i, f)| (i, f.source_id.raw())).collect();
    // FRI stayed 0 (PPF never dropped); walk from FRI: register 0 (05.0), then 1 (02.0).
    assert_eq!(
        pending,
        vec![(0, bdf(0, 5, 0).raw()), (1, bdf(0, 2, 0).raw())]
    );
}

#[test]
fn recorder_clearing_frees_a_register() {
    let mut r = FaultRecorder::new(1);
    assert_eq!(r.nfr(), 1);
    assert_eq!(
        r.log(fault_from(bdf(0, 1, 0), 0), false),
        Logged::Recorded { index: 0 }
    );
    assert_eq!(r.log(fault_from(bdf(0, 2, 0), 0), false), Logged::Overflow);
    r.clear(0);
    r.clear_overflow();
    assert_eq!(
        r.log(fault_from(bdf(0, 2, 0), 0), false),
        Logged::Recorded { index: 0 }
    );
    assert_eq!(r.pending().count(), 1);
    r.clear(7); // out of range: ignored
    assert_eq!(r.frcd(1), None);
}

#[test]
fn recorder_fpd_suppresses() {
    let mut r = FaultRecorder::new(4);
    assert_eq!(r.log(fault_from(bdf(0, 1, 0), 0), true), Logged::Suppressed);
    assert_eq!((r.suppressed(), r.logged(), r.fsts()), (1, 0, 0));
    assert_eq!(r.pending().count(), 0);
}

#[test]
fn recorder_collapses_faults_from_a_pending_source() {
    let sid = bdf(3, 0, 0);
    let mut r = FaultRecorder::new(4);
    assert_eq!(
        r.log(fault_from(sid, 0x1000), false),
        Logged::Recorded { index: 0 }
    );
    assert_eq!(
        r.log(fault_from(sid, 0x2000), false),
        Logged::Collapsed { index: 0 }
    );
    assert_eq!((r.collapsed(), r.logged()), (1, 1));
    r.clear(0);
    assert_eq!(
        r.log(fault_from(sid, 0x3000), false),
        Logged::Recorded { index: 1 }
    );

    let mut plain = FaultRecorder::new(4).collapsing(false);
    assert_eq!(
        plain.log(fault_from(sid, 0x1000), false),
        Logged::Recorded { index: 0 }
    );
    assert_eq!(
        plain.log(fault_from(sid, 0x2000), false),
        Logged::Recorded { index: 1 }
    );
}

#[test]
fn recorder_clamps_nfr_and_describes_outcomes() {
    assert_eq!(FaultRecorder::new(0).nfr(), 1);
    assert_eq!(FaultRecorder::new(1000).nfr(), 256);
    assert_eq!(
        Logged::Recorded { index: 3 }.to_string(),
        "recorded in FRCD 3"
    );
    assert_eq!(
        Logged::Overflow.to_string(),
        "overflow: PFO set, not recorded"
    );
    assert_eq!(Logged::Suppressed.to_string(), "suppressed by FPD");
}

// ---------------------------------------------------------------------------------------------
// qi
// ---------------------------------------------------------------------------------------------

fn every_descriptor() -> Vec<InvDescriptor> {
    use InvDescriptor as D;
    vec![
        D::ContextCache(ContextScope::Global),
        D::ContextCache(ContextScope::Domain { did: 0xffff }),
        D::ContextCache(ContextScope::Device {
            did: 7,
            sid: 0x0300,
            fm: 3,
        }),
        D::Iotlb {
            scope: IotlbScope::Global,
            drain_reads: true,
            drain_writes: false,
        },
        D::Iotlb {
            scope: IotlbScope::Domain { did: 42 },
            drain_reads: false,
            drain_writes: true,
        },
        D::Iotlb {
            scope: IotlbScope::Page {
                did: 1,
                addr: 0xffff_ffff_ffff_f000,
                am: 63,
                ih: true,
            },
            drain_reads: true,
            drain_writes: true,
        },
        D::PasidIotlb(PasidIotlbScope::Pasid {
            did: 2,
            pasid: 0xf_ffff,
        }),
        D::PasidIotlb(PasidIotlbScope::Page {
            did: 2,
            pasid: 1,
            addr: 0x4000_0000,
            am: 9,
            ih: false,
        }),
        D::PasidCache(PasidCacheScope::Domain { did: 9 }),
        D::PasidCache(PasidCacheScope::Pasid {
            did: 9,
            pasid: 0x12345,
        }),
        D::PasidCache(PasidCacheScope::Global),
        D::Wait {
            interrupt: true,
            status: Some((0x1_0000_0044, 0xdead_beef)),
            fence: true,
            page_drain: true,
        },
        D::Wait {
            interrupt: false,
            status: None,
            fence: false,
            page_drain: false,
        },
        D::DeviceIotlb {
            raw: [0x0000_0300_0000_0003, 0x7f000],
        },
        D::InterruptEntryCache { raw: [0x4, 0] },
    ]
}

#[test]
fn every_descriptor_round_trips_in_128_and_256_bit_form() {
    for d in every_descriptor() {
        let [q0, q1] = d.encode();
        assert_eq!(InvDescriptor::decode(&[q0, q1]), Ok(d), "{d:?}");
        assert_eq!(
            InvDescriptor::decode(&[q0, q1, 0, 0]),
            Ok(d),
            "{d:?} 256-bit"
        );
        assert_eq!(u64::from(d.type_code()), q0 & 0xf, "{d:?}");
    }
}

#[test]
fn linux_qi_vectors_decode() {
    use InvDescriptor as D;
    // qi_flush_iotlb(did 5, addr 0x7f000, size_order 2, DMA_TLB_PSI_FLUSH) on a unit with
    // cap_read_drain and cap_write_drain:
    //   QI_IOTLB_DID(5) = 0x5_0000, QI_IOTLB_DR(1) = 0x80, QI_IOTLB_DW(1) = 0x40,
    //   QI_IOTLB_GRAN(3 << 60) = (3 << 60) >> 56 = 0x30, QI_IOTLB_TYPE = 0x2
    //   QI_IOTLB_ADDR(0x7f000) | QI_IOTLB_IH(0) | QI_IOTLB_AM(2) = 0x7f002
    assert_eq!(
        D::decode(&[0x5_00f2, 0x7f002]),
        Ok(D::Iotlb {
            scope: IotlbScope::Page {
                did: 5,
                addr: 0x7f000,
                am: 2,
                ih: false
            },
            drain_reads: true,
            drain_writes: true,
        })
    );
    // DMA_TLB_DSI_FLUSH, did 0x1234, no drains: 0x1234_0000 | (2 << 60) >> 56 | 0x2.
    assert_eq!(
        D::decode(&[0x1234_0022, 0]),
        Ok(D::Iotlb {
            scope: IotlbScope::Domain { did: 0x1234 },
            drain_reads: false,
            drain_writes: false,
        })
    );
    // qi_flush_context(did 7, sid 0x0300, fm 0, DMA_CCMD_DEVICE_INVL):
    //   QI_CC_SID(0x300) = 0x300 << 32, QI_CC_DID(7) = 0x7_0000,
    //   QI_CC_GRAN(3 << 61) = (3 << 61) >> 57 = 0x30, QI_CC_TYPE = 0x1.
    assert_eq!(
        D::decode(&[0x0000_0300_0007_0031, 0]),
        Ok(D::ContextCache(ContextScope::Device {
            did: 7,
            sid: 0x300,
            fm: 0
        }))
    );
    // DMA_CCMD_GLOBAL_INVL: (1 << 61) >> 57 = 0x10, | QI_CC_TYPE.
    assert_eq!(
        D::decode(&[0x11, 0]),
        Ok(D::ContextCache(ContextScope::Global))
    );
    // qi_flush_piotlb(did 3, pasid 0x12345, addr 0x4000_0000, npages 512, ih 1):
    //   QI_EIOTLB_PASID(0x12345) = 0x12345 << 32, QI_EIOTLB_DID(3) = 0x3_0000,
    //   QI_EIOTLB_GRAN(QI_GRAN_PSI_PASID = 3) = 0x30, QI_EIOTLB_TYPE = 0x6;
    //   QI_EIOTLB_ADDR | QI_EIOTLB_IH(1) = 0x40 | QI_EIOTLB_AM(ilog2(512) = 9).
    assert_eq!(
        D::decode(&[0x0001_2345_0003_0036, 0x4000_0049]),
        Ok(D::PasidIotlb(PasidIotlbScope::Page {
            did: 3,
            pasid: 0x12345,
            addr: 0x4000_0000,
            am: 9,
            ih: true
        }))
    );
    // The whole PASID: QI_GRAN_NONG_PASID = 2 -> 0x20.
    assert_eq!(
        D::decode(&[0x0001_2345_0003_0026, 0]),
        Ok(D::PasidIotlb(PasidIotlbScope::Pasid {
            did: 3,
            pasid: 0x12345
        }))
    );
    // qi_flush_pasid_cache(did 3, QI_PC_PASID_SEL = 1, pasid 0x12345):
    //   QI_PC_PASID | QI_PC_DID(3) | QI_PC_GRAN(1) = 0x10 | QI_PC_TYPE = 0x7.
    assert_eq!(
        D::decode(&[0x0001_2345_0003_0017, 0]),
        Ok(D::PasidCache(PasidCacheScope::Pasid {
            did: 3,
            pasid: 0x12345
        }))
    );
    // QI_PC_ALL_PASIDS = 0 and QI_PC_GLOBAL = 3 (0x30).
    assert_eq!(
        D::decode(&[0x0003_0007, 0]),
        Ok(D::PasidCache(PasidCacheScope::Domain { did: 3 }))
    );
    assert_eq!(
        D::decode(&[0x37, 0]),
        Ok(D::PasidCache(PasidCacheScope::Global))
    );
    // qi_submit_sync's wait: QI_IWD_STATUS_DATA(QI_DONE = 2) = 2 << 32,
    //   QI_IWD_STATUS_WRITE = 0x20, QI_IWD_TYPE = 0x5; QW1 = the status dword's address.
    assert_eq!(
        D::decode(&[0x0000_0002_0000_0025, 0x1_2345_6788]),
        Ok(D::Wait {
            interrupt: false,
            status: Some((0x1_2345_6788, 2)),
            fence: false,
            page_drain: false
        })
    );
    // With QI_IWD_FENCE (0x40) and QI_IWD_PRQ_DRAIN (0x80), no status write.
    assert_eq!(
        D::decode(&[0xc5, 0]),
        Ok(D::Wait {
            interrupt: false,
            status: None,
            fence: true,
            page_drain: true
        })
    );
}

/// `(valid descriptor, reserved mask of QW0, reserved mask of QW1)` per decoded type. QW0 masks
/// are QEMU's with `Type[6:4]` (bits 11:9, 0xe00) taken out, and the wait mask also without
/// PD (bit 7, Linux `QI_IWD_PRQ_DRAIN`).
fn reserved_cases() -> Vec<(&'static str, [u64; 2], u64, u64)> {
    const TYPE_HI: u64 = 0xe00;
    vec![
        // VTD_INV_DESC_CC_RSVD; QW1 is wholly reserved.
        ("cc", [0x11, 0], 0xfffc_0000_0000_ffc0 & !TYPE_HI, u64::MAX),
        // VTD_INV_DESC_IOTLB_RSVD_LO / _HI.
        (
            "iotlb",
            [0x32, 0x7f000],
            0xffff_ffff_0000_ff00 & !TYPE_HI,
            0xf80,
        ),
        // VTD_INV_DESC_PIOTLB_RSVD_VAL0 / _VAL1.
        ("piotlb", [0x36, 0x4000_0000], 0xfff0_0000_0000_f1c0, 0xf80),
        // VTD_INV_DESC_PASIDC_RSVD_VAL0; QW1 is wholly reserved.
        ("pc", [0x37, 0], 0xfff0_0000_0000_f1c0, u64::MAX),
        // VTD_INV_DESC_WAIT_RSVD_LO 0xffffff80 / _HI 3.
        ("wait", [0x25, 0x1000], 0xffff_ff80 & !TYPE_HI & !0x80, 0x3),
    ]
}

#[test]
fn each_reserved_bit_is_rejected() {
    for (name, [q0, q1], m0, m1) in reserved_cases() {
        assert!(InvDescriptor::decode(&[q0, q1]).is_ok(), "{name} base case");
        for (qw, mask) in [(0, m0), (1, m1)] {
            for bit in (0..64).filter(|b| mask >> b & 1 == 1) {
                let mut d = [q0, q1];
                d[qw] ^= 1 << bit;
                match InvDescriptor::decode(&d) {
                    Err(QiError::Reserved { bits, .. }) => {
                        assert_eq!(bits, 1 << bit, "{name} QW{qw} bit {bit}")
                    }
                    other => panic!("{name} QW{qw} bit {bit}: {other:?}"),
                }
            }
        }
    }
    // The 256-bit form: QW2 and QW3 are reserved for these types.
    for q in [2, 3] {
        let mut d = [0x11, 0, 0, 0];
        d[q] = 1 << 40;
        assert!(matches!(
            InvDescriptor::decode(&d),
            Err(QiError::Reserved {
                bits: 0x100_0000_0000,
                ..
            })
        ));
    }
}

#[test]
fn reserved_granularities_types_and_lengths_are_rejected() {
    let g = |q0: u64| match InvDescriptor::decode(&[q0, 0]) {
        Err(QiError::ReservedGranularity { granularity, .. }) => Some(granularity),
        _ => None,
    };
    assert_eq!(g(0x01), Some(0), "context-cache G = 0");
    assert_eq!(g(0x02), Some(0), "IOTLB G = 0");
    assert_eq!(g(0x06), Some(0), "PASID-IOTLB G = 0");
    assert_eq!(g(0x16), Some(1), "PASID-IOTLB G = 1");
    assert_eq!(g(0x27), Some(2), "PASID-cache G = 2");

    assert_eq!(InvDescriptor::decode(&[0, 0]), Err(QiError::UnknownType(0)));
    for t in 0xa..=0xf {
        assert_eq!(
            InvDescriptor::decode(&[t, 0]),
            Err(QiError::UnknownType(t as u8))
        );
    }
    // Type[6:4] in bits 11:9: 0x201 is type 0x11, not context-cache.
    assert_eq!(
        InvDescriptor::decode(&[0x211, 0]),
        Err(QiError::UnknownType(0x11))
    );
    for t in [8u8, 9] {
        assert!(matches!(
            InvDescriptor::decode(&[t.into(), 0]),
            Err(QiError::Unmodelled { type_code, .. }) if type_code == t
        ));
    }
    for n in [0, 1, 3, 5] {
        assert_eq!(
            InvDescriptor::decode(&vec![0x11; n]),
            Err(QiError::Length(n))
        );
    }
}

#[test]
fn register_invalidation_vectors() {
    // DMA_CCMD_ICC | DMA_CCMD_GLOBAL_INVL = 1 << 63 | 1 << 61.
    assert_eq!(decode_ccmd(0xa000_0000_0000_0000), Ok(ContextScope::Global));
    assert_eq!(encode_ccmd(ContextScope::Global), 0xa000_0000_0000_0000);
    // ICC | DMA_CCMD_DEVICE_INVL (3 << 61) | DMA_CCMD_FM(1) (1 << 32) | DMA_CCMD_SID(0x300)
    // (0x300 << 16) | DMA_CCMD_DID(7).
    let dev = ContextScope::Device {
        did: 7,
        sid: 0x300,
        fm: 1,
    };
    assert_eq!(encode_ccmd(dev), 0xe000_0001_0300_0007);
    assert_eq!(decode_ccmd(0xe000_0001_0300_0007), Ok(dev));
    let dom = ContextScope::Domain { did: 0xbeef };
    assert_eq!(decode_ccmd(encode_ccmd(dom)), Ok(dom));
    assert!(matches!(
        decode_ccmd(1 << 63),
        Err(QiError::ReservedGranularity { granularity: 0, .. })
    ));

    // DMA_TLB_IVT | DMA_TLB_GLOBAL_FLUSH = 1 << 63 | 1 << 60.
    assert_eq!(
        decode_iotlb_reg(0x9000_0000_0000_0000),
        Ok(IotlbScope::Global)
    );
    // DMA_TLB_IVT | DMA_TLB_DSI_FLUSH | DMA_TLB_DID(5) | READ_DRAIN | WRITE_DRAIN.
    let dsi = 0xa003_0005_0000_0000;
    assert_eq!(decode_iotlb_reg(dsi), Ok(IotlbScope::Domain { did: 5 }));
    assert_eq!(iotlb_reg_drains(dsi), (true, true));
    assert_eq!(
        encode_iotlb_reg(IotlbScope::Domain { did: 5 }),
        (0xa000_0005_0000_0000, 0)
    );
    // DMA_TLB_PSI_FLUSH (3 << 60) takes ADDR | IH (DMA_TLB_IH_NONLEAF, 1 << 6) | AM from IVA.
    let psi = 0xb000_0005_0000_0000;
    assert_eq!(decode_iotlb_reg(psi), Err(QiError::NeedsIva));
    let page = IotlbScope::Page {
        did: 5,
        addr: 0x20_0000,
        am: 9,
        ih: true,
    };
    assert_eq!(decode_iotlb_reg_with_iva(psi, 0x20_0049), Ok(page));
    assert_eq!(encode_iotlb_reg(page), (psi, 0x20_0049));
    assert!(matches!(
        decode_iotlb_reg(1 << 63),
        Err(QiError::ReservedGranularity { granularity: 0, .. })
    ));
}

const K4: u64 = 4096;
const M2: u64 = 2 << 20;
const G1: u64 = 1 << 30;

#[test]
fn iotlb_page_scope_am_0_covers_one_page_and_the_large_pages_holding_it() {
    let s = IotlbScope::Page {
        did: 1,
        addr: 0x5000,
        am: 0,
        ih: false,
    };
    assert!(s.covers(1, 0x5000, K4));
    assert!(!s.covers(1, 0x4000, K4) && !s.covers(1, 0x6000, K4));
    assert!(!s.covers(2, 0x5000, K4), "another domain");
    assert!(s.covers(1, 0, M2), "a 2 MiB entry overlapping the page");
    assert!(s.covers(1, 0x1f_f000, M2), "found from any iova inside it");
    assert!(!s.covers(1, 0x20_0000, M2));
    assert!(s.covers(1, 0, G1));
}

#[test]
fn iotlb_page_scope_am_1_covers_an_aligned_pair() {
    // addr 0x5000 with am 1: the 8 KiB block [0x4000, 0x6000).
    let s = IotlbScope::Page {
        did: 1,
        addr: 0x5000,
        am: 1,
        ih: true,
    };
    assert!(s.covers(1, 0x4000, K4) && s.covers(1, 0x5000, K4));
    assert!(!s.covers(1, 0x3000, K4) && !s.covers(1, 0x6000, K4));
}

#[test]
fn iotlb_page_scope_am_9_covers_2_mib() {
    // addr 0x20_1000 with am 9: [0x20_0000, 0x40_0000).
    let s = IotlbScope::Page {
        did: 3,
        addr: 0x20_1000,
        am: 9,
        ih: false,
    };
    assert!(s.covers(3, 0x20_0000, K4) && s.covers(3, 0x3f_f000, K4));
    assert!(!s.covers(3, 0x1f_f000, K4) && !s.covers(3, 0x40_0000, K4));
    assert!(s.covers(3, 0x20_0000, M2) && !s.covers(3, 0x40_0000, M2));
    assert!(s.covers(3, 0, G1));
    // The widest mask never overflows: everything in the domain.
    let all = IotlbScope::Page {
        did: 3,
        addr: 0,
        am: 63,
        ih: false,
    };
    assert!(all.covers(3, !0xfff, K4) && !all.covers(4, 0, K4));
}

#[test]
fn other_scopes_cover_what_they_name() {
    assert!(IotlbScope::Global.covers(9, 0x1234_5000, K4));
    assert!(IotlbScope::Domain { did: 9 }.covers(9, 0, G1));
    assert!(!IotlbScope::Domain { did: 9 }.covers(8, 0, K4));

    let p = PasidIotlbScope::Page {
        did: 1,
        pasid: 5,
        addr: 0x5000,
        am: 0,
        ih: false,
    };
    assert!(p.covers(1, 5, 0x5000, K4) && !p.covers(1, 6, 0x5000, K4));
    assert!(!p.covers(1, 5, 0x6000, K4));
    let whole = PasidIotlbScope::Pasid { did: 1, pasid: 5 };
    assert!(whole.covers(1, 5, 0xdead_0000, K4) && !whole.covers(2, 5, 0, K4));

    // Function masks: FM 1 masks SID bit 2, FM 2 bits 2:1, FM 3 bits 2:0.
    let dev = |fm| ContextScope::Device {
        did: 0,
        sid: 0x0300,
        fm,
    };
    assert!(dev(0).covers(0, 0x0300) && !dev(0).covers(0, 0x0304));
    assert!(dev(1).covers(0, 0x0304) && !dev(1).covers(0, 0x0302));
    assert!(dev(2).covers(0, 0x0306) && !dev(2).covers(0, 0x0301));
    assert!(dev(3).covers(0, 0x0307) && !dev(3).covers(0, 0x0308));
    assert!(ContextScope::Domain { did: 4 }.covers(4, 0x1234));
    assert!(ContextScope::Global.covers(1, 2));
}
