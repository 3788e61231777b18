//! The root complex as a completer of device reads.
//!
//! A read request is answered with one or more completions with data. Each carries at most
//! MPS bytes, and a split happens only at a Read Completion Boundary (PCIe Base 6.0
//! §2.3.1.1): the first completion runs from the request's address to an RCB-aligned
//! address, later ones start on RCB-aligned addresses. Byte Count is what remains of the
//! request including this completion; Lower Address is the low 7 bits of the address of the
//! completion's first enabled byte (§2.2.9). Completions of one request go out in address
//! order (§2.4.1).
//!
//! A request the IOMMU blocked, or the completer cannot serve, is answered with one
//! completion without data carrying the error status ([`error_completion`]).
//!
//! The root port's receive side (queues, credits, Acks) is [`crate::port`].

use crate::fc::Credits;
use crate::tlp::{CplStatus, Tlp, TlpKind, DW_BYTES};
use bytes::Bytes;
use model_core::{Bdf, Span};

/// Read Completion Boundary of a root port: 64 bytes (PCIe Base 6.0 §7.5.3.7, Link Control
/// RCB bit clear; cocotbext-pcie `RootComplex` defaults to 64).
pub const RCB_BYTES: u32 = 64;

/// Lower Address is the low 7 bits of a byte address (PCIe Base 6.0 §2.2.9.1).
const LOWER_ADDRESS_MASK: u64 = 0x7f;

/// Static configuration of the root complex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootComplexConfig {
    /// The completer ID written into completions.
    pub completer: Bdf,
    /// From a request arriving at the root port to it being presented to the IOMMU.
    pub request_latency: Span,
    /// From read data returning from memory to the first completion being offered to the link.
    pub completion_latency: Span,
    /// Read Completion Boundary in bytes (64 or 128).
    pub rcb: u32,
    /// The ingress pipeline accepts one TLP per this interval: its throughput limit, and
    /// what lets a slow root complex back-pressure a device through flow control.
    pub accept_interval: Span,
    /// Credits each root port advertises for requests from its device.
    pub credits: Credits,
    /// Reads a root port may have outstanding towards memory (0 = no limit). While they
    /// are all in use, later reads wait in the ingress queue and writes pass them.
    pub max_outstanding_reads: u32,
}

/// Builds the completions answering `req`.
///
/// `data` holds the `req.length_dw × 4` bytes of the request's DW-aligned span, starting at
/// `req.address`; completions carry zero-copy slices of it. `mps` is the requester's
/// Max_Payload_Size in bytes.
pub fn completions_for(req: &Tlp, completer: Bdf, mps: u32, rcb: u32, data: &Bytes) -> Vec<Tlp> {
    let span = usize::from(req.length_dw) * DW_BYTES as usize;
    // A zero-length read (1 DW, no byte enabled) still gets a 1-DW CplD, with Byte Count 1
    // (PCIe Base 6.0 §2.2.5 zero-length read; the Byte Count value is UNCONFIRMED).
    let mut remaining = (req.enabled_bytes() as u32).max(1);
    let mut out = Vec::with_capacity(span / mps.max(1) as usize + 1);
    let mut offset = 0usize; // within the DW-aligned span
    let mut first_byte = req.first_enabled_address();
    while offset < span {
        let addr = req.address + offset as u64;
        // Up to MPS, ending on an RCB boundary unless the request ends first.
        let room = (mps - (addr % u64::from(rcb)) as u32) as usize;
        let len = room.min(span - offset);
        let payload = data.slice(offset..(offset + len).min(data.len()));
        out.push(Tlp {
            kind: TlpKind::Completion {
                completer,
                status: CplStatus::Sc,
                byte_count: remaining,
                lower_address: (first_byte & LOWER_ADDRESS_MASK) as u8,
            },
            requester: req.requester,
            tag: req.tag,
            tc: req.tc,
            attr: req.attr,
            at: crate::tlp::AddressType::Untranslated,
            pasid: None,
            td: false,
            address: 0,
            length_dw: (len / DW_BYTES as usize) as u16,
            first_be: 0,
            last_be: 0,
            payload,
        });
        // Enabled bytes this completion carried.
        let lead = (first_byte - addr) as u32;
        remaining = remaining.saturating_sub(len as u32 - lead);
        offset += len;
        first_byte = req.address + offset as u64;
    }
    out
}

/// The completion without data that ends `req` with an error `status` (UR for a request the
/// IOMMU blocked, CA for one the completer aborted; PCIe Base 6.0 §2.3.1). Byte Count is
/// what remained of the request; Lower Address is that of its first enabled byte.
pub fn error_completion(req: &Tlp, completer: Bdf, status: CplStatus) -> Tlp {
    Tlp {
        kind: TlpKind::Completion {
            completer,
            status,
            byte_count: (req.enabled_bytes() as u32).max(1),
            lower_address: (req.first_enabled_address() & LOWER_ADDRESS_MASK) as u8,
        },
        requester: req.requester,
        tag: req.tag,
        tc: req.tc,
        attr: req.attr,
        at: crate::tlp::AddressType::Untranslated,
        pasid: None,
        td: false,
        address: 0,
        length_dw: 0,
        first_be: 0,
        last_be: 0,
        payload: Bytes::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlp::{dw_span, Attr};

    fn read(addr: u64, len: u64) -> Tlp {
        let (a, dws, fbe, lbe) = dw_span(addr, len);
        Tlp {
            kind: TlpKind::MemRead,
            requester: Bdf::from_raw(0x0100),
            tag: 3,
            tc: 0,
            attr: Attr::default(),
            at: crate::tlp::AddressType::Untranslated,
            pasid: None,
            td: false,
            address: a,
            length_dw: dws,
            first_be: fbe,
            last_be: lbe,
            payload: Bytes::new(),
        }
    }

    fn fields(c: &Tlp) -> (u32, u8, u16) {
        match c.kind {
            TlpKind::Completion {
                byte_count,
                lower_address,
                ..
            } => (byte_count, lower_address, c.length_dw),
            _ => panic!("not a completion"),
        }
    }

    #[test]
    fn a_512_byte_read_at_0x1020_splits_on_rcb_with_mps_256() {
        // First completion: 0x1020..0x1100 (224 B: MPS 256 minus 32 past the RCB boundary),
        // then 0x1100..0x1200 (256 B), then 0x1200..0x1220 (32 B).
        let req = read(0x1020, 512);
        let data = Bytes::from(vec![0u8; 512]);
        let c = completions_for(&req, Bdf::from_raw(0), 256, 64, &data);
        let f: Vec<_> = c.iter().map(fields).collect();
        assert_eq!(f, vec![(512, 0x20, 56), (288, 0x00, 64), (32, 0x00, 8)]);
        assert!(c.iter().all(|x| x.tag == 3 && x.requester == req.requester));
    }

    #[test]
    fn unaligned_small_read_reports_byte_count_and_lower_address_of_first_enabled_byte() {
        // 6 bytes at 0x1001: one completion of 2 DW, Byte Count 6, Lower Address 0x01.
        let req = read(0x1001, 6);
        let c = completions_for(&req, Bdf::from_raw(0), 128, 64, &Bytes::from(vec![0u8; 8]));
        assert_eq!(c.iter().map(fields).collect::<Vec<_>>(), vec![(6, 0x01, 2)]);
    }
}
