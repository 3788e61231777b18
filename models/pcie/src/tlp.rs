//! Transaction-layer packets, as typed values.
//!
//! This slice carries what a DMA engine and a memory completer exchange: memory read and
//! write requests (3DW or 4DW header) and completions with data. Field meanings follow the
//! PCIe Base Specification 6.0 §2.2; sizes follow §2.2.1 (header) and the data-link framing
//! of §3.6 / §4.2 as the pcie-bench model counts it. Exact byte-level encoding of every TLP
//! type is the PCIe-model issue's work.

use crate::wire;
use bytes::Bytes;
use model_core::Bdf;

/// Bytes in one DWORD.
pub const DW_BYTES: u64 = 4;
/// A 3-DW header (memory request below 4 GiB, completion) (PCIe Base 6.0 §2.2.1).
pub const HEADER_3DW_BYTES: u64 = 12;
/// A 4-DW header (memory request with a 64-bit address) (PCIe Base 6.0 §2.2.1).
pub const HEADER_4DW_BYTES: u64 = 16;
/// End-to-end CRC appended when TD is set (PCIe Base 6.0 §2.7.1).
pub const ECRC_BYTES: u64 = 4;
/// An End-End TLP prefix (the PASID prefix) is one DW ahead of the header (§2.2.10).
pub const PREFIX_BYTES: u64 = 4;
/// Requests must not cross a 4 KiB address boundary (PCIe Base 6.0 §2.2.7).
pub const PAGE_BOUNDARY: u64 = 4096;

pub use crate::wire::{AddressType, Attr, CplStatus, PasidPrefix};

/// What a TLP is, with the fields that only its kind has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlpKind {
    /// Memory read request.
    MemRead,
    /// Memory write request; the payload is in [`Tlp::payload`].
    MemWrite,
    /// Completion for the request whose tag it carries: CplD when `length_dw > 0`, Cpl
    /// (no data; Length is Reserved) when it is 0 — as for an error status.
    Completion {
        /// The completer's ID.
        completer: Bdf,
        /// Completion status.
        status: CplStatus,
        /// Bytes left to transfer for the request, this completion included (§2.2.9).
        byte_count: u32,
        /// Low 7 bits of the address of this completion's first byte.
        lower_address: u8,
    },
}

/// A transaction-layer packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlp {
    /// The kind and its own fields.
    pub kind: TlpKind,
    /// Requester ID (for completions: the requester the data goes back to).
    pub requester: Bdf,
    /// Tag (up to 10 bits).
    pub tag: u16,
    /// Traffic class 0..=7.
    pub tc: u8,
    /// Attributes.
    pub attr: Attr,
    /// Address Type (requests; completions carry Untranslated).
    pub at: AddressType,
    /// PASID TLP prefix (requests only, PCIe Base 6.0 §6.20).
    pub pasid: Option<PasidPrefix>,
    /// TD: an ECRC digest follows the TLP.
    pub td: bool,
    /// Requests: the DW-aligned byte address of the first DW (address bits 1:0 are zero).
    /// Completions: unused (zero).
    pub address: u64,
    /// Length in DW (1..=1024).
    pub length_dw: u16,
    /// First DW byte enables (requests).
    pub first_be: u8,
    /// Last DW byte enables (requests; 0 for a 1-DW request).
    pub last_be: u8,
    /// Data payload, `length_dw × 4` bytes (writes and completions with data).
    pub payload: Bytes,
}

/// The DW span of `len` bytes (≥ 1) at byte address `addr`: DW-aligned start address,
/// length in DW, first and last byte enables (PCIe Base 6.0 §2.2.5).
pub fn dw_span(addr: u64, len: u64) -> (u64, u16, u8, u8) {
    let start = addr & !(DW_BYTES - 1);
    let end = addr + len; // exclusive
    let end_dw = end.div_ceil(DW_BYTES) * DW_BYTES;
    let dws = (end_dw - start) / DW_BYTES;
    let first_be = (0xf_u8 << (addr - start)) & 0xf;
    let tail = (end - (end_dw - DW_BYTES)) as u8; // bytes used in the last DW, 1..=4
    let last_mask = (1u8 << tail) - 1;
    if dws == 1 {
        (start, 1, first_be & last_mask, 0)
    } else {
        (start, dws as u16, first_be, last_mask)
    }
}

impl Tlp {
    /// Header bytes: 4 DW for memory requests above 4 GiB, 3 DW otherwise (§2.2.4.1).
    pub fn header_bytes(&self) -> u64 {
        match self.kind {
            TlpKind::MemRead | TlpKind::MemWrite if self.address > u64::from(u32::MAX) => {
                HEADER_4DW_BYTES
            }
            _ => HEADER_3DW_BYTES,
        }
    }

    /// Payload bytes on the wire.
    pub fn payload_bytes(&self) -> u64 {
        match self.kind {
            TlpKind::MemRead => 0,
            TlpKind::MemWrite | TlpKind::Completion { .. } => u64::from(self.length_dw) * DW_BYTES,
        }
    }

    /// Transaction-layer bytes: header, payload and optional ECRC. The link adds its own
    /// framing ([`crate::link::LinkConfig::tlp_wire_bytes`]).
    pub fn tlp_bytes(&self) -> u64 {
        let prefix = if self.pasid.is_some() {
            PREFIX_BYTES
        } else {
            0
        };
        prefix + self.header_bytes() + self.payload_bytes() + if self.td { ECRC_BYTES } else { 0 }
    }

    /// Bytes of the DW-aligned span a request covers (`length_dw × 4`), payload or not.
    pub fn payload_bytes_requested(&self) -> usize {
        usize::from(self.length_dw) * DW_BYTES as usize
    }

    /// Bytes enabled by a request's byte enables (the data it really reads or writes).
    pub fn enabled_bytes(&self) -> u64 {
        let ones = |be: u8| u64::from((be & 0xf).count_ones());
        match self.length_dw {
            0 => 0,
            1 => ones(self.first_be),
            n => ones(self.first_be) + ones(self.last_be) + (u64::from(n) - 2) * DW_BYTES,
        }
    }

    /// The byte address of the first enabled byte of a request.
    pub fn first_enabled_address(&self) -> u64 {
        self.address + u64::from((self.first_be & 0xf).trailing_zeros().min(3))
    }

    /// The exact wire form of this TLP (PCIe Base 6.0 §2.2), for encoding and checking.
    pub fn to_wire(&self) -> wire::TlpPacket {
        let width = if self.header_bytes() == HEADER_4DW_BYTES {
            wire::AddrWidth::Bits64
        } else {
            wire::AddrWidth::Bits32
        };
        let req = wire::RequestHeader {
            requester: self.requester,
            tag: self.tag,
            first_be: self.first_be,
            last_be: self.last_be,
        };
        let kind = match self.kind {
            TlpKind::MemRead | TlpKind::MemWrite => wire::TlpKind::Memory {
                op: if self.kind == TlpKind::MemRead {
                    wire::MemOp::Read
                } else {
                    wire::MemOp::Write
                },
                width,
                req,
                address: self.address,
                ph: 0,
            },
            TlpKind::Completion {
                completer,
                status,
                byte_count,
                lower_address,
            } => wire::TlpKind::Completion {
                data: self.length_dw > 0,
                locked: false,
                cpl: wire::CompletionHeader {
                    completer,
                    status,
                    bcm: false,
                    byte_count: byte_count as u16,
                    requester: self.requester,
                    tag: self.tag,
                    lower_address,
                },
            },
        };
        wire::TlpPacket {
            pasid: self.pasid,
            kind,
            tc: self.tc,
            attr: self.attr,
            th: false,
            ln: false,
            td: self.td,
            ep: false,
            at: self.at,
            length_dw: self.length_dw,
            payload: self.payload.clone(),
        }
    }

    /// A short name for traces and reports.
    pub fn name(&self) -> &'static str {
        let wide = self.header_bytes() == HEADER_4DW_BYTES;
        match (&self.kind, wide) {
            (TlpKind::MemRead, false) => "MRd32",
            (TlpKind::MemRead, true) => "MRd64",
            (TlpKind::MemWrite, false) => "MWr32",
            (TlpKind::MemWrite, true) => "MWr64",
            (TlpKind::Completion { .. }, _) if self.length_dw == 0 => "Cpl",
            (TlpKind::Completion { .. }, _) => "CplD",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(kind: TlpKind, address: u64, length_dw: u16) -> Tlp {
        Tlp {
            kind,
            requester: Bdf::from_raw(0x0100),
            tag: 0,
            tc: 0,
            attr: Attr::default(),
            at: AddressType::Untranslated,
            pasid: None,
            td: false,
            address,
            length_dw,
            first_be: 0xf,
            last_be: 0xf,
            payload: Bytes::new(),
        }
    }

    #[test]
    fn byte_enables_follow_section_2_2_5() {
        // 1 byte at offset 2 of a DW: one DW, First BE = 0100b, Last BE = 0.
        assert_eq!(dw_span(0x1002, 1), (0x1000, 1, 0b0100, 0));
        // 2 bytes at offset 3: crosses into the next DW: First BE 1000b, Last BE 0001b.
        assert_eq!(dw_span(0x1003, 2), (0x1000, 2, 0b1000, 0b0001));
        // 64 aligned bytes: 16 DW, all enabled.
        assert_eq!(dw_span(0x2000, 64), (0x2000, 16, 0xf, 0xf));
        // 6 bytes at offset 1: 2 DW, First BE 1110b, Last BE 0111b.
        assert_eq!(dw_span(0x1001, 6), (0x1000, 2, 0b1110, 0b0111));
    }

    #[test]
    fn tlp_size_counts_header_payload_and_ecrc() {
        // MWr32 with 256 B: 12 + 256 (pcie-bench: TLP_Hdr 12).
        assert_eq!(req(TlpKind::MemWrite, 0x1000, 64).tlp_bytes(), 268);
        // MRd64 (address above 4 GiB): 16, no payload.
        assert_eq!(req(TlpKind::MemRead, 1 << 32, 64).tlp_bytes(), 16);
        let mut t = req(TlpKind::MemRead, 0x1000, 1);
        t.td = true;
        assert_eq!(t.tlp_bytes(), 12 + 4);
        assert_eq!(req(TlpKind::MemRead, 1 << 32, 1).name(), "MRd64");
    }

    #[test]
    fn enabled_bytes_come_from_the_byte_enables() {
        let (addr, dws, fbe, lbe) = dw_span(0x1001, 6);
        let mut t = req(TlpKind::MemWrite, addr, dws);
        t.first_be = fbe;
        t.last_be = lbe;
        assert_eq!(t.enabled_bytes(), 6);
        assert_eq!(t.first_enabled_address(), 0x1001);
    }
}
