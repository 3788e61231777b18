//! Byte vectors derived by hand from PCIe Base Specification 6.0 (Non-Flit Mode), each tested
//! bytes → fields, fields → bytes and truncated. "DW n" is header DWORD n read big-endian;
//! the field positions are those of §2.2.1.1 (DW0), §2.2.7.1 (requests), §2.2.8 (messages),
//! §2.2.9.1 (completions) and §6.20.2.1 (PASID prefix).

use bytes::Bytes;
use model_core::Bdf;
use pcie::wire::{
    decode, remarks, validate, validate_bytes, AddrWidth, AddressType, Attr, CfgType,
    CompletionHeader, CplStatus, DecodeError, MemOp, MsgRouting, PasidPrefix, Remark,
    RequestHeader, TlpKind, TlpPacket, TlpPart, ValidationContext, Violation,
};

/// DWs to wire bytes, each big-endian.
fn dws(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_be_bytes()).collect()
}

fn bdf(raw: u16) -> Bdf {
    Bdf::from_raw(raw)
}

fn req(requester: u16, tag: u16, first_be: u8, last_be: u8) -> RequestHeader {
    RequestHeader {
        requester: bdf(requester),
        tag,
        first_be,
        last_be,
    }
}

fn packet(kind: TlpKind, length_dw: u16, payload: &[u8]) -> TlpPacket {
    TlpPacket {
        pasid: None,
        kind,
        tc: 0,
        attr: Attr::default(),
        th: false,
        ln: false,
        td: false,
        ep: false,
        at: AddressType::Untranslated,
        length_dw,
        payload: Bytes::copy_from_slice(payload),
    }
}

fn mem(op: MemOp, width: AddrWidth, req: RequestHeader, address: u64, ph: u8) -> TlpKind {
    TlpKind::Memory {
        op,
        width,
        req,
        address,
        ph,
    }
}

fn cfg(write: bool, cfg_type: CfgType, req: RequestHeader, target: u16, register: u16) -> TlpKind {
    TlpKind::Config {
        write,
        cfg_type,
        req,
        target: bdf(target),
        register,
        reserved: 0,
    }
}

#[allow(clippy::too_many_arguments)]
fn cpl(
    data: bool,
    locked: bool,
    completer: u16,
    status: CplStatus,
    byte_count: u16,
    requester: u16,
    tag: u16,
    lower_address: u8,
) -> TlpKind {
    TlpKind::Completion {
        data,
        locked,
        cpl: CompletionHeader {
            completer: bdf(completer),
            status,
            bcm: false,
            byte_count,
            requester: bdf(requester),
            tag,
            lower_address,
        },
    }
}

/// bytes → fields, fields → bytes, and truncation at the end of the header and of the TLP.
fn check_vector(bytes: &[u8], tlp: &TlpPacket) {
    let name = tlp.fmt_type().name();
    assert_eq!(decode(bytes).as_ref(), Ok(tlp), "{name}: bytes → fields");
    assert_eq!(&tlp.encode().unwrap()[..], bytes, "{name}: fields → bytes");
    assert_eq!(tlp.wire_len(), bytes.len(), "{name}: wire_len");

    let header_end = if tlp.pasid.is_some() { 4 } else { 0 } + tlp.fmt_type().header_dws() * 4;
    assert_eq!(
        decode(&bytes[..header_end - 1]),
        Err(DecodeError::Truncated {
            part: TlpPart::Header,
            needed: header_end,
            have: header_end - 1
        }),
        "{name}: header cut short"
    );
    let last = if tlp.td {
        TlpPart::Digest
    } else if tlp.fmt_type().has_data() {
        TlpPart::Payload
    } else {
        TlpPart::Header
    };
    assert_eq!(
        decode(&bytes[..bytes.len() - 1]),
        Err(DecodeError::Truncated {
            part: last,
            needed: bytes.len(),
            have: bytes.len() - 1
        }),
        "{name}: last byte missing"
    );
    let mut longer = bytes.to_vec();
    longer.extend_from_slice(&[0; 4]);
    assert_eq!(
        decode(&longer),
        Err(DecodeError::TrailingBytes {
            len: bytes.len(),
            extra: 4
        }),
        "{name}: trailing DW"
    );
}

// ---- Memory requests (§2.2.4.1 Table 2-7, §2.2.7.1 Figures 2-36/2-37) ----

#[test]
fn mrd32_three_dw_header_with_no_snoop() {
    // DW0 = Fmt 000b << 29 | Type 0_0000b << 24 | TC 0 | Attr[0] NS → bit 12 | Length 16
    //     = 0x0000_1010
    // DW1 = Requester 01:00.0 (0x0100) << 16 | Tag 0x2a << 8 | Last BE 1111b << 4 | First BE 1111b
    //     = 0x0100_2aff
    // DW2 = Address[31:2] 0x8000_1000 | PH 00b = 0x8000_1000
    let bytes = dws(&[0x0000_1010, 0x0100_2aff, 0x8000_1000]);
    let mut t = packet(
        mem(
            MemOp::Read,
            AddrWidth::Bits32,
            req(0x0100, 0x2a, 0xf, 0xf),
            0x8000_1000,
            0,
        ),
        16,
        &[],
    );
    t.attr.no_snoop = true;
    check_vector(&bytes, &t);
}

#[test]
fn mrd64_four_dw_header_with_tc_ro_th_and_ph() {
    // DW0 = Fmt 001b << 29 (0x2000_0000) | TC 3 << 20 (0x0030_0000) | TH → bit 16 (0x0001_0000)
    //     | Attr[1] RO → bit 13 (0x2000) | Length 1 = 0x2031_2001
    // DW1 = Requester 03:1f.7 (0x03ff) << 16 | Tag 5 << 8 | Last BE 0000b | First BE 1111b
    //     = 0x03ff_050f
    // DW2 = Address[63:32] = 0x0000_0012; DW3 = Address[31:2] 0x3456_7800 | PH 10b = 0x3456_7802
    let bytes = dws(&[0x2031_2001, 0x03ff_050f, 0x0000_0012, 0x3456_7802]);
    let mut t = packet(
        mem(
            MemOp::Read,
            AddrWidth::Bits64,
            req(0x03ff, 5, 0xf, 0),
            0x12_3456_7800,
            2,
        ),
        1,
        &[],
    );
    t.tc = 3;
    t.th = true;
    t.attr.relaxed_ordering = true;
    check_vector(&bytes, &t);
}

#[test]
fn mwr32_one_dw_with_no_snoop() {
    // DW0 = Fmt 010b << 29 | Type 0_0000b << 24 | TC 0 | Attr NS → bit 12 | Length 1 = 0x4000_1001
    // DW1 = Requester 01:00.0 << 16 | Tag 0 | Last BE 0000b | First BE 1111b = 0x0100_000f
    // DW2 = Address 0x0000_1000; payload 78 56 34 12 (byte 0 goes to address 0x1000, §2.2.2)
    let mut bytes = dws(&[0x4000_1001, 0x0100_000f, 0x0000_1000]);
    bytes.extend_from_slice(&[0x78, 0x56, 0x34, 0x12]);
    let mut t = packet(
        mem(
            MemOp::Write,
            AddrWidth::Bits32,
            req(0x0100, 0, 0xf, 0),
            0x1000,
            0,
        ),
        1,
        &[0x78, 0x56, 0x34, 0x12],
    );
    t.attr.no_snoop = true;
    check_vector(&bytes, &t);
}

#[test]
fn mwr64_two_dw_with_ido() {
    // DW0 = Fmt 011b << 29 (0x6000_0000) | Attr[2] IDO → bit 18 (0x0004_0000) | Length 2
    //     = 0x6004_0002
    // DW1 = Requester 01:00.1 (0x0101) << 16 | Tag 0 | Last BE 1111b | First BE 1111b = 0x0101_00ff
    // DW2 = 0x0000_0001 (Address[63:32]); DW3 = 0x0000_0000 → address 0x1_0000_0000
    let payload = [0, 1, 2, 3, 4, 5, 6, 7];
    let mut bytes = dws(&[0x6004_0002, 0x0101_00ff, 0x0000_0001, 0x0000_0000]);
    bytes.extend_from_slice(&payload);
    let mut t = packet(
        mem(
            MemOp::Write,
            AddrWidth::Bits64,
            req(0x0101, 0, 0xf, 0xf),
            1 << 32,
            0,
        ),
        2,
        &payload,
    );
    t.attr.id_based_ordering = true;
    check_vector(&bytes, &t);
}

#[test]
fn mrdlk32_locked_read() {
    // DW0 = Fmt 000b | Type 0_0001b << 24 (0x0100_0000) | Length 1 = 0x0100_0001
    // DW1 = Requester 00:00.0 | Tag 7 << 8 | First BE 1111b = 0x0000_070f
    // DW2 = Address 0xfee0_0000
    let bytes = dws(&[0x0100_0001, 0x0000_070f, 0xfee0_0000]);
    let t = packet(
        mem(
            MemOp::ReadLocked,
            AddrWidth::Bits32,
            req(0, 7, 0xf, 0),
            0xfee0_0000,
            0,
        ),
        1,
        &[],
    );
    check_vector(&bytes, &t);
}

#[test]
fn mrdlk64_locked_read() {
    // DW0 = Fmt 001b << 29 | Type 0_0001b << 24 | Length 1 = 0x2100_0001
    // DW1 = Tag 8 << 8 | First BE 1111b = 0x0000_080f
    // DW2/DW3 = 0x0000_0002 / 0x0000_0040 → address 0x2_0000_0040
    let bytes = dws(&[0x2100_0001, 0x0000_080f, 0x0000_0002, 0x0000_0040]);
    let t = packet(
        mem(
            MemOp::ReadLocked,
            AddrWidth::Bits64,
            req(0, 8, 0xf, 0),
            0x2_0000_0040,
            0,
        ),
        1,
        &[],
    );
    check_vector(&bytes, &t);
}

// ---- I/O requests (§2.2.7.1 Figure 2-38) ----

#[test]
fn iord_reads_one_dw() {
    // DW0 = Fmt 000b | Type 0_0010b << 24 | Length 1 = 0x0200_0001
    // DW1 = Requester 00:1f.0 (0x00f8) << 16 | Tag 1 << 8 | Last BE 0000b | First BE 0011b
    //     = 0x00f8_0103
    // DW2 = Address 0x0000_0cf8 (bits 1:0 Reserved)
    let bytes = dws(&[0x0200_0001, 0x00f8_0103, 0x0000_0cf8]);
    let t = packet(
        TlpKind::Io {
            write: false,
            req: req(0x00f8, 1, 0x3, 0),
            address: 0xcf8,
            reserved: 0,
        },
        1,
        &[],
    );
    check_vector(&bytes, &t);
}

#[test]
fn iowr_writes_one_byte() {
    // DW0 = Fmt 010b << 29 | Type 0_0010b << 24 | Length 1 = 0x4200_0001
    // DW1 = Requester 00:1f.0 << 16 | Tag 2 << 8 | First BE 0001b = 0x00f8_0201
    // DW2 = Address 0x0000_0080; payload 55 00 00 00
    let mut bytes = dws(&[0x4200_0001, 0x00f8_0201, 0x0000_0080]);
    bytes.extend_from_slice(&[0x55, 0, 0, 0]);
    let t = packet(
        TlpKind::Io {
            write: true,
            req: req(0x00f8, 2, 0x1, 0),
            address: 0x80,
            reserved: 0,
        },
        1,
        &[0x55, 0, 0, 0],
    );
    check_vector(&bytes, &t);
}

// ---- Configuration requests (§2.2.4.2 Table 2-8, §2.2.7.1 Figure 2-39) ----

#[test]
fn cfgrd0_extended_register() {
    // DW0 = Fmt 000b | Type 0_0100b << 24 | Length 1 = 0x0400_0001
    // DW1 = Requester 00:00.0 | Tag 0x10 << 8 | First BE 1111b = 0x0000_100f
    // DW2 = Target 02:00.0 (0x0200) << 16 | Ext Register 1 << 8 | Register 2 << 2 = 0x0200_0108
    //       → register index 1 << 6 | 2 = 66, byte offset 0x108
    let bytes = dws(&[0x0400_0001, 0x0000_100f, 0x0200_0108]);
    let t = packet(
        cfg(false, CfgType::Type0, req(0, 0x10, 0xf, 0), 0x0200, 66),
        1,
        &[],
    );
    check_vector(&bytes, &t);
}

#[test]
fn cfgwr0_command_register() {
    // DW0 = Fmt 010b << 29 | Type 0_0100b << 24 | Length 1 = 0x4400_0001
    // DW1 = Tag 0x11 << 8 | First BE 1111b = 0x0000_110f
    // DW2 = Target 02:00.0 << 16 | Register 1 << 2 (byte 0x004) = 0x0200_0004; payload 06 00 00 00
    let mut bytes = dws(&[0x4400_0001, 0x0000_110f, 0x0200_0004]);
    bytes.extend_from_slice(&[6, 0, 0, 0]);
    let t = packet(
        cfg(true, CfgType::Type0, req(0, 0x11, 0xf, 0), 0x0200, 1),
        1,
        &[6, 0, 0, 0],
    );
    check_vector(&bytes, &t);
}

#[test]
fn cfgrd1_to_a_subordinate_bus() {
    // DW0 = Fmt 000b | Type 0_0101b << 24 | Length 1 = 0x0500_0001
    // DW1 = Tag 0x12 << 8 | First BE 1111b = 0x0000_120f
    // DW2 = Target 05:00.0 (0x0500) << 16 | Register 0 = 0x0500_0000
    let bytes = dws(&[0x0500_0001, 0x0000_120f, 0x0500_0000]);
    let t = packet(
        cfg(false, CfgType::Type1, req(0, 0x12, 0xf, 0), 0x0500, 0),
        1,
        &[],
    );
    check_vector(&bytes, &t);
}

#[test]
fn cfgwr1_two_bytes() {
    // DW0 = Fmt 010b << 29 | Type 0_0101b << 24 | Length 1 = 0x4500_0001
    // DW1 = Tag 0x13 << 8 | First BE 0011b = 0x0000_1303
    // DW2 = Target 05:01.2 (5 << 8 | 1 << 3 | 2 = 0x050a) << 16 | Register 4 << 2 = 0x050a_0010
    let mut bytes = dws(&[0x4500_0001, 0x0000_1303, 0x050a_0010]);
    bytes.extend_from_slice(&[0xff, 0xff, 0, 0]);
    let t = packet(
        cfg(true, CfgType::Type1, req(0, 0x13, 0x3, 0), 0x050a, 4),
        1,
        &[0xff, 0xff, 0, 0],
    );
    check_vector(&bytes, &t);
}

// ---- Messages (§2.2.8, Table 2-20) ----

#[test]
fn msg_assert_inta_is_local() {
    // DW0 = Fmt 001b << 29 | Type 1_0100b (r = 100b, local) << 24 | Length Reserved 0
    //     = 0x2000_0000 | 0x1400_0000 = 0x3400_0000
    // DW1 = Requester 03:00.0 (0x0300) << 16 | Tag 0 | Message Code 0x20 (Assert_INTA, Table 2-21)
    //     = 0x0300_0020
    // DW2, DW3 = bytes 8-15 Reserved = 0
    let bytes = dws(&[0x3400_0000, 0x0300_0020, 0, 0]);
    let t = packet(
        TlpKind::Message {
            data: false,
            routing: MsgRouting::Local,
            requester: bdf(0x0300),
            tag: 0,
            code: 0x20,
            fields: 0,
        },
        0,
        &[],
    );
    check_vector(&bytes, &t);
}

#[test]
fn msgd_vendor_defined_routed_by_id() {
    // DW0 = Fmt 011b << 29 | Type 1_0010b (r = 010b, by ID) << 24 | Length 1
    //     = 0x6000_0000 | 0x1200_0000 | 1 = 0x7200_0001
    // DW1 = Requester 01:00.0 << 16 | Tag 0 | Code 0x7f (Vendor_Defined Type 1) = 0x0100_007f
    // DW2 = target ID 02:00.0 << 16 | Vendor ID 0x1ab4 = 0x0200_1ab4; DW3 = 0xdead_beef
    let mut bytes = dws(&[0x7200_0001, 0x0100_007f, 0x0200_1ab4, 0xdead_beef]);
    bytes.extend_from_slice(&[1, 2, 3, 4]);
    let t = packet(
        TlpKind::Message {
            data: true,
            routing: MsgRouting::ById,
            requester: bdf(0x0100),
            tag: 0,
            code: 0x7f,
            fields: 0x0200_1ab4_dead_beef,
        },
        1,
        &[1, 2, 3, 4],
    );
    check_vector(&bytes, &t);
}

// ---- Completions (§2.2.9.1, Figure 2-79, Table 2-37) ----

#[test]
fn cpl_unsupported_request() {
    // DW0 = Fmt 000b | Type 0_1010b << 24 | Length Reserved 0 = 0x0a00_0000
    // DW1 = Completer 02:00.0 << 16 | Status UR 001b << 13 (0x2000) | BCM 0 | Byte Count 4
    //     = 0x0200_2004
    // DW2 = Requester 00:00.0 << 16 | Tag 0x12 << 8 | Lower Address 0 = 0x0000_1200
    let bytes = dws(&[0x0a00_0000, 0x0200_2004, 0x0000_1200]);
    let t = packet(
        cpl(false, false, 0x0200, CplStatus::Ur, 4, 0, 0x12, 0),
        0,
        &[],
    );
    check_vector(&bytes, &t);
}

#[test]
fn cpld_with_no_snoop_copied_from_the_request() {
    // DW0 = Fmt 010b << 29 | Type 0_1010b << 24 | Attr NS → bit 12 | Length 2 = 0x4a00_1002
    // DW1 = Completer 00:00.0 | Status SC 000b | Byte Count 8 = 0x0000_0008
    // DW2 = Requester 01:00.0 << 16 | Tag 0x2a << 8 | Lower Address 0x10 = 0x0100_2a10
    let payload = [0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7];
    let mut bytes = dws(&[0x4a00_1002, 0x0000_0008, 0x0100_2a10]);
    bytes.extend_from_slice(&payload);
    let mut t = packet(
        cpl(true, false, 0, CplStatus::Sc, 8, 0x0100, 0x2a, 0x10),
        2,
        &payload,
    );
    t.attr.no_snoop = true;
    check_vector(&bytes, &t);
}

#[test]
fn cpllk_completer_abort() {
    // DW0 = Fmt 000b | Type 0_1011b << 24 = 0x0b00_0000
    // DW1 = Completer 00:00.0 | Status CA 100b << 13 (0x8000) | Byte Count 4 = 0x0000_8004
    // DW2 = Requester 00:00.0 | Tag 7 << 8 | Lower Address 0 = 0x0000_0700
    let bytes = dws(&[0x0b00_0000, 0x0000_8004, 0x0000_0700]);
    let t = packet(cpl(false, true, 0, CplStatus::Ca, 4, 0, 7, 0), 0, &[]);
    check_vector(&bytes, &t);
}

#[test]
fn cpldlk_locked_read_data() {
    // DW0 = Fmt 010b << 29 | Type 0_1011b << 24 | Length 1 = 0x4b00_0001
    // DW1 = Completer 00:00.0 | Status SC | Byte Count 4 = 0x0000_0004
    // DW2 = Requester 00:00.0 | Tag 8 << 8 | Lower Address 0x40 = 0x0000_0840
    let mut bytes = dws(&[0x4b00_0001, 0x0000_0004, 0x0000_0840]);
    bytes.extend_from_slice(&[9, 8, 7, 6]);
    let t = packet(
        cpl(true, true, 0, CplStatus::Sc, 4, 0, 8, 0x40),
        1,
        &[9, 8, 7, 6],
    );
    check_vector(&bytes, &t);
}

// ---- Encodings that are easy to get wrong ----

#[test]
fn ten_bit_tag_splits_into_t9_t8_and_tag_7_0() {
    // Tag 0x3a5 = 11_1010_0101b: T9 = 1 → DW0 bit 23 (0x0080_0000), T8 = 1 → DW0 bit 19
    // (0x0008_0000), Tag[7:0] = 0xa5 → DW1 bits 15:8 (§2.2.6.2.1).
    // DW0 = MRd32 | Length 1 = 0x0088_0001; DW1 = 0x0100_a50f; DW2 = 0x0000_2000
    let bytes = dws(&[0x0088_0001, 0x0100_a50f, 0x0000_2000]);
    let t = packet(
        mem(
            MemOp::Read,
            AddrWidth::Bits32,
            req(0x0100, 0x3a5, 0xf, 0),
            0x2000,
            0,
        ),
        1,
        &[],
    );
    check_vector(&bytes, &t);
    // In a completion Tag[7:0] sits in DW2 bits 15:8: Tag 0x2c3 → T9 = 1, T8 = 0.
    // DW0 = 0x4a00_0001 | 0x0080_0000 = 0x4a80_0001; DW2 = Requester 01:00.0 | 0xc3 << 8
    let mut bytes = dws(&[0x4a80_0001, 0x0000_0004, 0x0100_c300]);
    bytes.extend_from_slice(&[0; 4]);
    let t = packet(
        cpl(true, false, 0, CplStatus::Sc, 4, 0x0100, 0x2c3, 0),
        1,
        &[0; 4],
    );
    check_vector(&bytes, &t);
}

#[test]
fn length_field_zero_means_1024_dw() {
    // Table 2-4: Length 00_0000_0000b = 1024 DW. MRd32 of 4096 bytes at 0x4000:
    // DW0 = 0x0000_0000; DW1 = Requester 01:00.0 | Last/First BE 1111b = 0x0100_00ff
    let bytes = dws(&[0x0000_0000, 0x0100_00ff, 0x0000_4000]);
    let t = packet(
        mem(
            MemOp::Read,
            AddrWidth::Bits32,
            req(0x0100, 0, 0xf, 0xf),
            0x4000,
            0,
        ),
        1024,
        &[],
    );
    check_vector(&bytes, &t);
    assert!(validate(&t, &ValidationContext::default()).is_empty());
    // And with data: MWr32 with Length field 0 carries 4096 payload bytes.
    let payload = vec![0x5a; 4096];
    let mut bytes = dws(&[0x4000_0000, 0x0100_00ff, 0x0000_4000]);
    bytes.extend_from_slice(&payload);
    let t = packet(
        mem(
            MemOp::Write,
            AddrWidth::Bits32,
            req(0x0100, 0, 0xf, 0xf),
            0x4000,
            0,
        ),
        1024,
        &payload,
    );
    check_vector(&bytes, &t);
}

#[test]
fn byte_count_zero_means_4096_bytes() {
    // §2.2.9.1: Byte Count 0000_0000_0000b = 4096. First CplD of a 4 KiB read, 16 DW:
    // DW0 = 0x4a00_0010; DW1 = Completer 00:00.0 | SC | Byte Count field 0 = 0x0000_0000
    // DW2 = Requester 01:00.0 | Tag 1 << 8 | Lower Address 0 = 0x0100_0100
    let payload = [0x11; 64];
    let mut bytes = dws(&[0x4a00_0010, 0x0000_0000, 0x0100_0100]);
    bytes.extend_from_slice(&payload);
    let t = packet(
        cpl(true, false, 0, CplStatus::Sc, 4096, 0x0100, 1, 0),
        16,
        &payload,
    );
    check_vector(&bytes, &t);
}

#[test]
fn pasid_prefix_precedes_the_header() {
    // Prefix DW = Fmt 100b << 29 | Type 1_0001b << 24 (0x9100_0000) | PMR → bit 23 (0x0080_0000)
    //           | ER → bit 22 (0x0040_0000) | PASID 0x12345 = 0x91c1_2345 (§6.20.2.1 Table 6-15)
    // then an MWr32: DW0 = 0x4000_0001, DW1 = 0x0100_000f, DW2 = 0x0000_3000, payload 4 bytes.
    let mut bytes = dws(&[0x91c1_2345, 0x4000_0001, 0x0100_000f, 0x0000_3000]);
    bytes.extend_from_slice(&[1, 2, 3, 4]);
    let mut t = packet(
        mem(
            MemOp::Write,
            AddrWidth::Bits32,
            req(0x0100, 0, 0xf, 0),
            0x3000,
            0,
        ),
        1,
        &[1, 2, 3, 4],
    );
    t.pasid = Some(PasidPrefix {
        pasid: 0x12345,
        execute: true,
        privileged: true,
    });
    check_vector(&bytes, &t);
    assert_eq!(
        decode(&bytes[..3]),
        Err(DecodeError::Truncated {
            part: TlpPart::Prefix,
            needed: 4,
            have: 3
        })
    );
    // Only PASID is modelled: an Extended TPH prefix (Type 1_0000b) and a second PASID fail.
    let mut tph = bytes.clone();
    tph[0] = 0x90;
    assert_eq!(
        decode(&tph),
        Err(DecodeError::UnsupportedPrefix { ty: 0x10 })
    );
    let mut twice = dws(&[0x9100_0001]);
    twice.extend_from_slice(&bytes);
    assert_eq!(decode(&twice), Err(DecodeError::DuplicatePasidPrefix));
}

/// The ECRC computed literally as §2.7.1 describes it: an MSB-first register (bit k holds the
/// x^k coefficient) fed from bit 0 of byte 0, seed all ones, complemented, then mapped with
/// Table 2-55 (result bit k → Digest bit 8⌊k/8⌋ + 7 − k mod 8), Digest bits 31:24 sent first.
fn ecrc_as_the_spec_writes_it(bytes_with_variant_bits_set: &[u8]) -> [u8; 4] {
    let mut r: u32 = 0xffff_ffff;
    for &b in bytes_with_variant_bits_set {
        for i in 0..8 {
            let feedback = (r >> 31) ^ u32::from((b >> i) & 1);
            r <<= 1;
            if feedback == 1 {
                r ^= 0x04c1_1db7;
            }
        }
    }
    let result = !r;
    let mut field = 0u32;
    for k in 0..32 {
        if result >> k & 1 == 1 {
            field |= 1 << (8 * (k / 8) + 7 - k % 8);
        }
    }
    field.to_be_bytes()
}

#[test]
fn ecrc_digest_follows_section_2_7_1() {
    // MWr32 with TD: DW0 = 0x4000_0001 | TD → bit 15 (0x8000) = 0x4000_8001.
    let header = dws(&[0x4000_8001, 0x0100_000f, 0x0000_1000]);
    let payload = [0xde, 0xad, 0xbe, 0xef];
    // Variant bits Set for the calculation: Type[0] (DW0 bit 24) and EP (DW0 bit 14).
    let mut covered = dws(&[0x4000_8001 | 1 << 24 | 1 << 14, 0x0100_000f, 0x0000_1000]);
    covered.extend_from_slice(&payload);
    let digest = ecrc_as_the_spec_writes_it(&covered);
    let mut bytes = header.clone();
    bytes.extend_from_slice(&payload);
    bytes.extend_from_slice(&digest);
    let mut t = packet(
        mem(
            MemOp::Write,
            AddrWidth::Bits32,
            req(0x0100, 0, 0xf, 0),
            0x1000,
            0,
        ),
        1,
        &payload,
    );
    t.td = true;
    check_vector(&bytes, &t);

    // EP is Variant: poisoning a TLP in flight leaves its ECRC valid.
    t.ep = true;
    let poisoned = t.encode().unwrap();
    assert_eq!(poisoned[2] & 0x40, 0x40);
    assert_eq!(poisoned[poisoned.len() - 4..], digest);
    // A flipped payload bit is an ECRC mismatch.
    let mut bad = bytes.clone();
    bad[12] ^= 1;
    assert!(matches!(
        decode(&bad),
        Err(DecodeError::EcrcMismatch { .. })
    ));
    assert!(matches!(
        validate_bytes(&bad, &ValidationContext::default())[..],
        [Violation::EcrcMismatch { .. }]
    ));
}

#[test]
fn ecrc_covers_the_pasid_prefix_but_type_bit_0_of_the_header_is_variant() {
    // CfgRd1 → CfgRd0 conversion by a bridge flips header Type[0]; the ECRC must not change.
    let mut t = packet(
        cfg(false, CfgType::Type1, req(0, 1, 0xf, 0), 0x0500, 0),
        1,
        &[],
    );
    t.td = true;
    let type1 = t.encode().unwrap();
    t.kind = cfg(false, CfgType::Type0, req(0, 1, 0xf, 0), 0x0500, 0);
    let type0 = t.encode().unwrap();
    assert_eq!(type1[12..], type0[12..]);
    // The prefix is End-End and invariant: a different PASID changes the ECRC.
    let mut m = packet(
        mem(MemOp::Read, AddrWidth::Bits32, req(0, 1, 0xf, 0), 0x1000, 0),
        1,
        &[],
    );
    m.td = true;
    m.pasid = Some(PasidPrefix {
        pasid: 1,
        execute: false,
        privileged: false,
    });
    let a = m.encode().unwrap();
    m.pasid = Some(PasidPrefix {
        pasid: 2,
        execute: false,
        privileged: false,
    });
    let b = m.encode().unwrap();
    assert_ne!(a[16..], b[16..]);
    assert_eq!(decode(&b).unwrap(), m);
}

// ---- Decode errors ----

#[test]
fn reserved_encodings_are_rejected() {
    // Fmt 101b is Reserved (Table 2-2).
    assert_eq!(
        decode(&dws(&[0xa000_0001, 0, 0])),
        Err(DecodeError::ReservedFmtType { fmt: 0b101, ty: 0 })
    );
    // FetchAdd (Fmt 010b, Type 0_1100b) is not modelled; MRdLk with data is Reserved.
    assert_eq!(
        decode(&dws(&[0x4c00_0001, 0, 0, 0])),
        Err(DecodeError::ReservedFmtType {
            fmt: 0b010,
            ty: 0b01100
        })
    );
    assert_eq!(
        decode(&dws(&[0x4100_0001, 0, 0, 0])),
        Err(DecodeError::ReservedFmtType {
            fmt: 0b010,
            ty: 0b00001
        })
    );
    // Msg routing r = 110b is Reserved (Table 2-20).
    assert_eq!(
        decode(&dws(&[0x3600_0000, 0, 0, 0])),
        Err(DecodeError::ReservedFmtType {
            fmt: 0b001,
            ty: 0b10110
        })
    );
    // AT = 11b (DW0 bits 11:10) is Reserved.
    assert_eq!(
        decode(&dws(&[0x0000_0c01, 0x0000_000f, 0x1000])),
        Err(DecodeError::ReservedAddressType)
    );
    // Completion Status 011b is Reserved (Table 2-37).
    assert_eq!(
        decode(&dws(&[0x0a00_0000, 0x0000_6004, 0])),
        Err(DecodeError::ReservedCplStatus { code: 0b011 })
    );
    // Reserved *fields* are not among the reasons: see `reserved_fields_decode_...` below.
    assert_eq!(
        decode(&[]),
        Err(DecodeError::Truncated {
            part: TlpPart::Header,
            needed: 4,
            have: 0
        })
    );
}

// ---- Validation (rule violations are data) ----

fn mrd32(address: u64, length_dw: u16, first_be: u8, last_be: u8) -> TlpPacket {
    packet(
        mem(
            MemOp::Read,
            AddrWidth::Bits32,
            req(0x0100, 0, first_be, last_be),
            address,
            0,
        ),
        length_dw,
        &[],
    )
}

fn none() -> ValidationContext {
    ValidationContext::default()
}

#[test]
fn requests_must_not_cross_4_kib_section_2_2_7_1() {
    assert!(validate(&mrd32(0xff0, 4, 0xf, 0xf), &none()).is_empty());
    assert_eq!(
        validate(&mrd32(0xff8, 4, 0xf, 0xf), &none()),
        [Violation::Crosses4KiB {
            address: 0xff8,
            bytes: 16
        }]
    );
}

#[test]
fn byte_enable_rules_section_2_2_5_1() {
    assert_eq!(
        validate(&mrd32(0x1000, 1, 0xf, 0xf), &none()),
        [Violation::LastBeNotZero { last_be: 0xf }]
    );
    assert_eq!(
        validate(&mrd32(0x1000, 2, 0, 0xf), &none()),
        [Violation::FirstBeZero { length_dw: 2 }]
    );
    assert_eq!(
        validate(&mrd32(0x1000, 2, 0xf, 0), &none()),
        [Violation::LastBeZero { length_dw: 2 }]
    );
    // Non-contiguous enables: fine for 1 DW and for a QW-aligned 2-DW request ...
    assert!(validate(&mrd32(0x1000, 1, 0b0101, 0), &none()).is_empty());
    assert!(validate(&mrd32(0x1000, 2, 0b0101, 0b1010), &none()).is_empty());
    // ... not for a 2-DW request that is not QW aligned, nor for 3 DW or more.
    let nc = Violation::NonContiguousBe {
        first_be: 0b0101,
        last_be: 0b1010,
    };
    assert_eq!(
        validate(&mrd32(0x1004, 2, 0b0101, 0b1010), &none()).as_slice(),
        std::slice::from_ref(&nc)
    );
    assert_eq!(validate(&mrd32(0x1000, 3, 0b0101, 0b1010), &none()), [nc]);
    // Contiguous examples from §2.2.5.1: 1100b/0011b and 1000b/0111b.
    assert!(validate(&mrd32(0x1000, 3, 0b1100, 0b0011), &none()).is_empty());
    assert!(validate(&mrd32(0x1000, 4, 0b1000, 0b0111), &none()).is_empty());
    // With TH set a read's BE byte carries ST[7:0] (§2.2.7.1.1): not checked.
    let mut st = mrd32(0x1000, 1, 0x5, 0xa);
    st.th = true;
    assert!(validate(&st, &none()).is_empty());
}

#[test]
fn four_dw_header_below_4_gib_section_2_2_4_1() {
    let t = packet(
        mem(
            MemOp::Read,
            AddrWidth::Bits64,
            req(0, 0, 0xf, 0),
            0xfff0_0000,
            0,
        ),
        1,
        &[],
    );
    assert_eq!(
        validate(&t, &none()),
        [Violation::LongHeaderBelow4GiB {
            address: 0xfff0_0000
        }]
    );
}

#[test]
fn payload_must_match_length_section_2_2_2() {
    let t = packet(
        mem(
            MemOp::Write,
            AddrWidth::Bits32,
            req(0, 0, 0xf, 0xf),
            0x1000,
            0,
        ),
        2,
        &[0; 4],
    );
    assert_eq!(
        validate(&t, &none()),
        [Violation::PayloadLength {
            kind: "MWr32",
            length_dw: 2,
            payload_bytes: 4
        }]
    );
    assert!(t.encode().is_err(), "such a TLP has no wire form");
}

#[test]
fn mps_and_mrrs_limits_apply_when_given() {
    let ctx = ValidationContext {
        max_payload_bytes: Some(128),
        max_read_request_bytes: Some(512),
    };
    let w = packet(
        mem(
            MemOp::Write,
            AddrWidth::Bits32,
            req(0, 0, 0xf, 0xf),
            0x1000,
            0,
        ),
        64,
        &[0; 256],
    );
    assert_eq!(
        validate(&w, &ctx),
        [Violation::ExceedsMps {
            kind: "MWr32",
            bytes: 256,
            mps: 128
        }]
    );
    assert!(validate(&w, &none()).is_empty());
    assert_eq!(
        validate(&mrd32(0x1000, 256, 0xf, 0xf), &ctx),
        [Violation::ExceedsMrrs {
            kind: "MRd32",
            bytes: 1024,
            mrrs: 512
        }]
    );
}

#[test]
fn io_and_config_restrictions_section_2_2_7_1() {
    let mut t = packet(
        cfg(false, CfgType::Type0, req(0, 0, 0xf, 0), 0x0100, 0),
        1,
        &[],
    );
    t.tc = 1;
    t.attr.no_snoop = true;
    assert_eq!(
        validate(&t, &none()),
        [
            Violation::FieldMustBe {
                kind: "CfgRd0",
                field: "TC",
                value: 1,
                required: 0,
                rule: "§2.2.7.1"
            },
            Violation::FieldMustBe {
                kind: "CfgRd0",
                field: "Attr[1:0]",
                value: 1,
                required: 0,
                rule: "§2.2.7.1"
            }
        ]
    );
}

#[test]
fn reserved_fmt_type_is_reported_on_raw_bytes() {
    assert_eq!(
        validate_bytes(&dws(&[0xe000_0000, 0, 0]), &none()),
        [Violation::ReservedFmtType { fmt: 0b111, ty: 0 }]
    );
}

// ---- Reserved fields (§2.2: formed as 0; §2.3: "Values in Reserved fields must be ignored by
// the Receiver") decode, re-encode to the same bytes, and are reported ----

/// Decodes `bytes`, which must re-encode to themselves, and returns the packet.
fn exact(bytes: &[u8]) -> TlpPacket {
    let t = decode(bytes).unwrap_or_else(|e| panic!("{bytes:02x?} does not decode: {e}"));
    assert_eq!(&t.encode().unwrap()[..], bytes, "{t:?}");
    t
}

fn reserved(kind: &'static str, field: &'static str, value: u32) -> Violation {
    Violation::ReservedField { kind, field, value }
}

#[test]
fn reserved_fields_decode_re_encode_exactly_and_are_violations() {
    let cases: [(&[u32], Violation); 10] = [
        // Cpl (UR, Byte Count 4) with Length 5: DW0 = Type 0_1010b << 24 | Length 5.
        (
            &[0x0a00_0005, 0x0200_2004, 0x0000_1200],
            reserved("Cpl", "Length", 5),
        ),
        // CplLk (CA) with Length 3ffh.
        (
            &[0x0b00_03ff, 0x0000_8004, 0x0000_0700],
            reserved("CplLk", "Length", 0x3ff),
        ),
        // Msg Assert_INTA (local) with Length 1.
        (
            &[0x3400_0001, 0x0300_0020, 0, 0],
            reserved("Msg", "Length", 1),
        ),
        // CfgRd0: DW2 = target 02:00.0 | bits 15:12 = 1111b | Ext Register 1 | byte 11 =
        // 0000_1001b (Register 2, bits 1:0 = 01b) → Reserved 0xf001 in place, register 66.
        (
            &[0x0400_0001, 0x0000_100f, 0x0200_f109],
            reserved("CfgRd0", "configuration DW2 bits 15:12 and 1:0", 0xf001),
        ),
        // CplD, 1 DW: DW2 byte 11 = 1000_0000b: Reserved bit 7 set, Lower Address 0.
        (
            &[0x4a00_0001, 0x0000_0004, 0x0100_2a80, 0x1122_3344],
            reserved("CplD", "completion DW2 bit 7", 0x80),
        ),
        // IORd of 0xcf8 with address bits 1:0 = 10b.
        (
            &[0x0200_0001, 0x00f8_0103, 0x0000_0cfa],
            reserved("IORd", "I/O address bits 1:0", 0b10),
        ),
        // MRd32 without TH: address bits 1:0 = 01b are Reserved, not PH (§2.2.7.1.1).
        (
            &[0x0000_0001, 0x0100_000f, 0x0000_1001],
            reserved("MRd32", "address bits 1:0 (PH only when TH is set)", 1),
        ),
        // PASID prefix 0x9110_0001: bits 21:20 = 01b, PASID 1; then an MRd32.
        (
            &[0x9110_0001, 0x0000_0001, 0x0100_000f, 0x0000_1000],
            reserved("MRd32", "PASID prefix bits 21:20", 0x10_0000),
        ),
        // MRd32 with DW0 bit 17 (formerly LN) set.
        (
            &[0x0002_0001, 0x0100_000f, 0x0000_1000],
            reserved("MRd32", "DW0 bit 17 (formerly LN)", 1),
        ),
        // Cpl (UR) with TH (DW0 bit 16), Reserved for completions (§2.2.9.1).
        (
            &[0x0a01_0000, 0x0200_2004, 0x0000_1200],
            reserved("Cpl", "TH (Reserved for completions)", 1),
        ),
    ];
    for (words, want) in cases {
        let bytes = dws(words);
        let t = exact(&bytes);
        assert_eq!(validate(&t, &none()), std::slice::from_ref(&want), "{t:?}");
        assert_eq!(validate_bytes(&bytes, &none()), [want]);
    }
    // What the fields carry.
    let t = exact(&dws(&[0x0400_0001, 0x0000_100f, 0x0200_f109]));
    assert!(matches!(
        t.kind,
        TlpKind::Config {
            register: 66,
            reserved: 0xf001,
            ..
        }
    ));
    let TlpKind::Completion { cpl, .. } =
        exact(&dws(&[0x4a00_0001, 0x0000_0004, 0x0100_2a85, 0x1122_3344])).kind
    else {
        panic!("not a completion");
    };
    assert_eq!((cpl.lower_address_6_0(), cpl.reserved_bit()), (5, true));
    let p = exact(&dws(&[0x9130_0001, 0x0000_0001, 0x0100_000f, 0x0000_1000]))
        .pasid
        .unwrap();
    assert_eq!((p.id(), p.reserved()), (1, 0x30_0000));
    // With TH set the same bits are PH and break no rule (the BE byte then carries ST[7:0]).
    let t = exact(&dws(&[0x0001_0001, 0x0100_000f, 0x0000_1001]));
    assert!(matches!(t.kind, TlpKind::Memory { ph: 1, .. }));
    assert!(validate(&t, &none()).is_empty());
}

// ---- Completion rules (§2.2.9.1, Table 2-3; §2.3.1.1) ----

#[test]
fn completions_with_data_must_be_successful_table_2_3() {
    // CplD, 1 DW, status UR (001b << 13 = 0x2000), Byte Count 4: UR completions carry no data.
    let t = exact(&dws(&[0x4a00_0001, 0x0000_2004, 0x0100_2a00, 0]));
    assert_eq!(
        validate(&t, &none()),
        [Violation::CompletionDataNotSuccessful {
            kind: "CplD",
            status: CplStatus::Ur,
            without: "Cpl"
        }]
    );
    // CplDLk with CA (100b << 13 = 0x8000): should have been CplLk.
    let t = exact(&dws(&[0x4b00_0001, 0x0000_8004, 0x0000_0800, 0]));
    assert_eq!(
        validate(&t, &none()),
        [Violation::CompletionDataNotSuccessful {
            kind: "CplDLk",
            status: CplStatus::Ca,
            without: "CplLk"
        }]
    );
    // The same statuses without data are fine (`cpl_unsupported_request`, `cpllk_completer_abort`).
    let ur = exact(&dws(&[0x0a00_0000, 0x0200_2004, 0x0000_1200]));
    assert!(validate(&ur, &none()).is_empty());
}

#[test]
fn the_last_completion_has_exactly_the_length_its_byte_count_needs_section_2_3_1_1() {
    let cpld = |length: u16, dw1: u32, lower: u32| {
        let mut words = vec![0x4a00_0000 | u32::from(length), dw1, 0x0100_2a00 | lower];
        words.extend(std::iter::repeat_n(0, length.into()));
        exact(&dws(&words))
    };
    // Byte Count 4 from Lower Address[1:0] = 0 fits in 1 DW, but Length says 2.
    assert_eq!(
        validate(&cpld(2, 4, 0x00), &none()),
        [Violation::CompletionLength {
            kind: "CplD",
            length_dw: 2,
            byte_count: 4,
            la: 0,
            expected: 1
        }]
    );
    // 2 bytes from Lower Address 0x03: bytes 3 and 4 span 2 DW, not 3.
    assert_eq!(
        validate(&cpld(3, 2, 0x03), &none()),
        [Violation::CompletionLength {
            kind: "CplD",
            length_dw: 3,
            byte_count: 2,
            la: 3,
            expected: 2
        }]
    );
    assert!(validate(&cpld(2, 2, 0x03), &none()).is_empty());
    // Byte Count 4 from Lower Address[1:0] = 2 does not fit in 1 DW: a first, partial
    // Completion, which Length alone cannot fault.
    assert!(validate(&cpld(1, 4, 0x02), &none()).is_empty());
    // With BCM (DW1 bit 12) Byte Count is not the remaining count: no Length check, and BCM
    // itself is only remarked on (PCI-X completers may set it, §2.2.9.1).
    let bcm = cpld(2, 0x1000 | 4, 0x00);
    assert!(validate(&bcm, &none()).is_empty());
    assert_eq!(remarks(&bcm), [Remark::BcmSet]);
    assert!(remarks(&cpld(1, 4, 0)).is_empty());
    // Lower Address must be 0 in I/O and Configuration read completions, but a CplD does not
    // say what it completes: not checked.
    assert!(validate(&cpld(1, 4, 0x0c), &none()).is_empty());
}

#[test]
fn byte_count_is_1_to_4096_section_2_2_9_1() {
    for byte_count in [0, 4097] {
        let t = packet(
            cpl(true, false, 0, CplStatus::Sc, byte_count, 0x0100, 1, 0),
            1,
            &[0; 4],
        );
        assert_eq!(
            validate(&t, &none()),
            [Violation::ByteCountOutOfRange {
                kind: "CplD",
                byte_count
            }]
        );
        assert!(t.encode().is_err(), "the wire has no such Byte Count");
    }
}

#[test]
fn a_successful_cpl_completes_a_write_byte_count_4_lower_address_0() {
    // Cpl with SC completes an I/O Write, Configuration Write or DMWr (Table 2-3), whose Byte
    // Count is 4 and Lower Address 0 (§2.2.9.1). DW1 = SC | Byte Count 8; DW2 = Lower Address 4.
    let t = exact(&dws(&[0x0a00_0000, 0x0200_0008, 0x0000_1204]));
    let v = validate(&t, &none());
    assert!(
        matches!(
            &v[..],
            [
                Violation::FieldMustBe {
                    kind: "Cpl",
                    field: "Byte Count",
                    value: 8,
                    required: 4,
                    ..
                },
                Violation::FieldMustBe {
                    kind: "Cpl",
                    field: "Lower Address",
                    value: 4,
                    required: 0,
                    ..
                }
            ]
        ),
        "{v:?}"
    );
    let ok = exact(&dws(&[0x0a00_0000, 0x0200_0004, 0x0000_1200]));
    assert!(validate(&ok, &none()).is_empty());
}
