//! The typed TLP value ([`TlpPacket`]) and its parts (PCIe Base Specification 6.0,
//! Non-Flit Mode, §2.2). Code tables are in `codes`.
//!
//! Field ranges the types cannot express (TC 3 bits, Tag 10 bits, byte enables 4 bits, …)
//! are checked by [`TlpPacket::check`], which names the field.

pub use super::codes::*;
use super::field::{config, dw0};
use super::prefix::PasidPrefix;
use bytes::Bytes;
use model_core::Bdf;

/// `Attr[2:0]` of the Transaction Descriptor (§2.2.6.3-5). Bits: No Snoop = DW0 bit 12,
/// Relaxed Ordering = bit 13, ID-Based Ordering = bit 18 (see `field::dw0`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, arbitrary::Arbitrary)]
pub struct Attr {
    /// `Attr[0]`, No Snoop: hardware cache coherency not expected (Table 2-13).
    pub no_snoop: bool,
    /// `Attr[1]`, Relaxed Ordering (Table 2-12).
    pub relaxed_ordering: bool,
    /// `Attr[2]`, ID-Based Ordering (Table 2-12).
    pub id_based_ordering: bool,
}

/// Requester ID, Tag and byte enables of Memory, I/O and Configuration Requests (§2.2.7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestHeader {
    /// Requester ID (§2.2.6.2).
    pub requester: Bdf,
    /// `Tag[9:0]`; `Tag[9:8]` travel in DW0 bits 23 and 19 (§2.2.6.2.1).
    pub tag: u16,
    /// First DW `BE[3:0]` (§2.2.5.1).
    pub first_be: u8,
    /// Last DW `BE[3:0]` (§2.2.5.1).
    pub last_be: u8,
}

/// What a memory request does (Table 2-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, arbitrary::Arbitrary)]
pub enum MemOp {
    /// MRd.
    Read,
    /// MRdLk.
    ReadLocked,
    /// MWr.
    Write,
}

/// The header format of a memory request: 32-bit (3 DW) or 64-bit (4 DW) address (§2.2.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, arbitrary::Arbitrary)]
pub enum AddrWidth {
    /// 3-DW header, `Address[31:2]`.
    Bits32,
    /// 4-DW header, `Address[63:2]`.
    Bits64,
}

/// Type 0 or Type 1 configuration request (Table 2-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, arbitrary::Arbitrary)]
pub enum CfgType {
    /// Type 0: the target is on this bus.
    Type0,
    /// Type 1: to be forwarded by a bridge.
    Type1,
}

/// Completion header fields (§2.2.9.1, Figure 2-79).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CompletionHeader {
    /// Completer ID.
    pub completer: Bdf,
    /// Completion Status.
    pub status: CplStatus,
    /// BCM, Byte Count Modified (set only by PCI-X completers).
    pub bcm: bool,
    /// Byte Count, 1..=4096 bytes remaining (4096 travels as 0).
    pub byte_count: u16,
    /// Requester ID of the request being completed.
    pub requester: Bdf,
    /// `Tag[9:0]` of the request being completed.
    pub tag: u16,
    /// Byte 11 of the header: Lower `Address[6:0]` of the first enabled byte in bits 6:0,
    /// and the Reserved bit 7 (DW2 bit 7) as received, 0 in every TLP formed correctly. See
    /// [`CompletionHeader::lower_address_6_0`] and [`CompletionHeader::reserved_bit`].
    pub lower_address: u8,
}

impl CompletionHeader {
    /// Lower `Address[6:0]`, without the Reserved bit carried above it.
    pub const fn lower_address_6_0(&self) -> u8 {
        self.lower_address & 0x7f
    }

    /// The Reserved DW2 bit 7, carried in bit 7 of [`CompletionHeader::lower_address`].
    pub const fn reserved_bit(&self) -> bool {
        self.lower_address & 0x80 != 0
    }
}

/// The Fmt/Type of a TLP together with the header fields only that kind has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlpKind {
    /// MRd, MRdLk, MWr (§2.2.7.1, Figures 2-36/2-37).
    Memory {
        /// Read, locked read or write.
        op: MemOp,
        /// 3-DW or 4-DW header.
        width: AddrWidth,
        /// Requester ID, Tag, byte enables.
        req: RequestHeader,
        /// DW-aligned byte address (bits 1:0 zero; below 2³² for [`AddrWidth::Bits32`]).
        address: u64,
        /// Address bits 1:0 as sent: `PH[1:0]`, the processing hint, when TH is set
        /// (§2.2.7.1.1); Reserved when TH is clear (then 0 in a TLP formed correctly).
        ph: u8,
    },
    /// IORd, IOWr (§2.2.7.1, Figure 2-38).
    Io {
        /// IOWr when set.
        write: bool,
        /// Requester ID, Tag, byte enables.
        req: RequestHeader,
        /// DW-aligned 32-bit I/O address (bits 1:0 zero).
        address: u32,
        /// Address bits 1:0, Reserved (0..=3; 0 in a TLP formed correctly).
        reserved: u8,
    },
    /// CfgRd0/1, CfgWr0/1 (§2.2.7.1, Figure 2-39).
    Config {
        /// CfgWr when set.
        write: bool,
        /// Type 0 or Type 1.
        cfg_type: CfgType,
        /// Requester ID, Tag, byte enables.
        req: RequestHeader,
        /// Target Bus/Device/Function (Table 2-8).
        target: Bdf,
        /// Extended Register `Number[3:0]` : Register `Number[5:0]`, a DW index 0..=1023
        /// (byte offset = `register * 4`).
        register: u16,
        /// The Reserved DW2 bits 15:12 and 1:0 in place (within mask [`CONFIG_RESERVED_MASK`];
        /// 0 in a TLP formed correctly).
        reserved: u16,
    },
    /// Msg, MsgD (§2.2.8, Figures 2-49/2-50).
    Message {
        /// MsgD when set.
        data: bool,
        /// `r[2:0]`.
        routing: MsgRouting,
        /// Requester ID.
        requester: Bdf,
        /// `Tag[9:0]` (undefined for posted requests, carried as is, §2.2.6.2.1).
        tag: u16,
        /// Message `Code[7:0]`.
        code: u8,
        /// Header bytes 8-15 as a big-endian u64: the address for [`MsgRouting::ByAddress`],
        /// the target ID in bits 63:48 for [`MsgRouting::ById`], else message-specific or
        /// Reserved (§2.2.8).
        fields: u64,
    },
    /// Cpl, CplD, CplLk, CplDLk (§2.2.9.1).
    Completion {
        /// CplD / CplDLk when set.
        data: bool,
        /// CplLk / CplDLk when set.
        locked: bool,
        /// The completion header.
        cpl: CompletionHeader,
    },
}

impl TlpKind {
    /// The Fmt/Type this kind is sent with.
    pub const fn fmt_type(&self) -> FmtType {
        match *self {
            TlpKind::Memory { op, width, .. } => match (op, width) {
                (MemOp::Read, AddrWidth::Bits32) => FmtType::MRd32,
                (MemOp::Read, AddrWidth::Bits64) => FmtType::MRd64,
                (MemOp::ReadLocked, AddrWidth::Bits32) => FmtType::MRdLk32,
                (MemOp::ReadLocked, AddrWidth::Bits64) => FmtType::MRdLk64,
                (MemOp::Write, AddrWidth::Bits32) => FmtType::MWr32,
                (MemOp::Write, AddrWidth::Bits64) => FmtType::MWr64,
            },
            TlpKind::Io { write: false, .. } => FmtType::IORd,
            TlpKind::Io { write: true, .. } => FmtType::IOWr,
            TlpKind::Config {
                write, cfg_type, ..
            } => match (write, cfg_type) {
                (false, CfgType::Type0) => FmtType::CfgRd0,
                (true, CfgType::Type0) => FmtType::CfgWr0,
                (false, CfgType::Type1) => FmtType::CfgRd1,
                (true, CfgType::Type1) => FmtType::CfgWr1,
            },
            TlpKind::Message {
                data: false,
                routing,
                ..
            } => FmtType::Msg(routing),
            TlpKind::Message {
                data: true,
                routing,
                ..
            } => FmtType::MsgD(routing),
            TlpKind::Completion { data, locked, .. } => match (data, locked) {
                (false, false) => FmtType::Cpl,
                (true, false) => FmtType::CplD,
                (false, true) => FmtType::CplLk,
                (true, true) => FmtType::CplDLk,
            },
        }
    }

    /// The request header of a Memory, I/O or Configuration Request.
    pub const fn request(&self) -> Option<&RequestHeader> {
        match self {
            TlpKind::Memory { req, .. } | TlpKind::Io { req, .. } | TlpKind::Config { req, .. } => {
                Some(req)
            }
            _ => None,
        }
    }
}

/// A transaction-layer packet as typed fields: optional PASID prefix, header and payload.
///
/// `length_dw` is the decoded Length (1..=1024; the wire's 0 means 1024) for requests and
/// TLPs with data; for Cpl, CplLk and Msg, whose Length is Reserved, it is the 10-bit field as
/// sent (0..=1023, 0 in a TLP formed correctly).
///
/// Reserved fields: transmitters set them to 0 and receivers ignore them (§2.2, §2.3). The
/// codec carries whatever a TLP has in them, so that `encode(decode(b)) == b`, and
/// [`validate`](super::validate()) reports every one that is non-zero. Each travels in the
/// packet as follows (where a type has no field of its own for them, the bits ride in the
/// field next to them on the wire):
///
/// | Reserved field | carried in |
/// | --- | --- |
/// | DW0 bit 17 (formerly LN) | [`TlpPacket::ln`] |
/// | Length of Cpl, CplLk, Msg | [`TlpPacket::length_dw`] (the field as sent) |
/// | TH of completions | [`TlpPacket::th`] |
/// | address bits 1:0 of memory requests without TH | [`TlpKind::Memory`] `ph` |
/// | address bits 1:0 of I/O requests | [`TlpKind::Io`] `reserved` |
/// | configuration DW2 bits 15:12 and 1:0 | [`TlpKind::Config`] `reserved` |
/// | completion DW2 bit 7 | [`CompletionHeader::lower_address`] bit 7 |
/// | PASID prefix bits 21:20 | [`PasidPrefix::pasid`] bits 21:20 |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlpPacket {
    /// The NFM PASID End-End TLP Prefix, if present (§6.20.2.1).
    pub pasid: Option<PasidPrefix>,
    /// Fmt/Type and the kind's own header fields.
    pub kind: TlpKind,
    /// `TC[2:0]`, 0..=7 (§2.2.6.6).
    pub tc: u8,
    /// `Attr[2:0]` (§2.2.6.3).
    pub attr: Attr,
    /// TH: TLP Processing Hints present (§2.2.7.1.1); Reserved for completions (§2.2.9.1).
    pub th: bool,
    /// DW0 bit 17: Reserved in 6.0, formerly LN (Lightweight Notification); carried as is.
    pub ln: bool,
    /// TD: a TLP Digest (ECRC) follows the payload (§2.2.3). The codec computes it.
    pub td: bool,
    /// EP: poisoned data (§2.7.2).
    pub ep: bool,
    /// `AT[1:0]` (§2.2.4.1).
    pub at: AddressType,
    /// Length in DW (see the type's doc for the Reserved case).
    pub length_dw: u16,
    /// The data payload: `length_dw × 4` bytes for TLPs with data, else empty.
    pub payload: Bytes,
}

impl TlpPacket {
    /// The Fmt/Type pair.
    pub const fn fmt_type(&self) -> FmtType {
        self.kind.fmt_type()
    }

    /// Bytes on the wire: prefix, header, payload and digest (no link framing).
    pub fn wire_len(&self) -> usize {
        let dws =
            usize::from(self.pasid.is_some()) + self.fmt_type().header_dws() + usize::from(self.td);
        dws * 4
            + if self.fmt_type().has_data() {
                self.payload.len()
            } else {
                0
            }
    }

    /// `Tag[9:0]` of any kind.
    pub const fn tag(&self) -> u16 {
        match &self.kind {
            TlpKind::Memory { req, .. } | TlpKind::Io { req, .. } | TlpKind::Config { req, .. } => {
                req.tag
            }
            TlpKind::Message { tag, .. } => *tag,
            TlpKind::Completion { cpl, .. } => cpl.tag,
        }
    }
}

/// The largest Tag in Non-Flit Mode (10 bits, §2.2.6.2.1).
pub const MAX_TAG: u16 = (1 << 10) - 1;
/// The largest Length in DW (Table 2-4).
pub const MAX_LENGTH_DW: u16 = 1024;
/// The largest Byte Count (§2.2.9.1).
pub const MAX_BYTE_COUNT: u16 = 4096;
/// The largest TC.
pub const MAX_TC: u8 = dw0::TC.max() as u8;
/// The Reserved bits of a configuration request's DW2, 15:12 and 1:0 (§2.2.7.1, Figure 2-39).
pub const CONFIG_RESERVED_MASK: u16 = (config::RSVD_HI.mask() | config::RSVD_LO.mask()) as u16;
