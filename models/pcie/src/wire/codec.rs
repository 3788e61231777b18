//! The typed layer's `parse` and `emit`: [`TlpPacket`] to and from wire bytes
//! (PCIe Base Specification 6.0, Non-Flit Mode, §2.2; ECRC §2.7.1).
//!
//! Wire form: optional PASID prefix DW, 3 or 4 header DWs (each big-endian), the payload
//! (`Length × 4` bytes, TLPs with data only), and the Digest DW when TD is set.
//! Receivers ignore Reserved fields (§2.3), so decoding does not fail on them: configuration
//! DW2 bits 15:12 and 1:0, completion DW2 bit 7, I/O address bits 1:0, memory address bits 1:0
//! without TH, PASID prefix bits 21:20, the Length of Cpl/CplLk/Msg and every DW0 bit
//! (including the formerly-LN bit 17) are carried in the packet (see [`TlpPacket`]), so that
//! `encode(decode(b)) == b` for every `b` that decodes; `validate` reports the non-zero ones.
//! Reserved *encodings* (Fmt/Type, AT = 11b, Completion Status) still fail to decode.

use super::crc;
use super::error::{DecodeError, EncodeError};
use super::field::{address, completion, config, dw0, message, request};
use super::header::*;
use super::prefix::PasidPrefix;
use super::view::TlpView;
use bytes::{BufMut, BytesMut};
use model_core::Bdf;

fn range(field: &'static str, value: u64, min: u64, max: u64) -> Result<(), EncodeError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(EncodeError::OutOfRange {
            field,
            value,
            min,
            max,
        })
    }
}

fn check_request(req: &RequestHeader) -> Result<(), EncodeError> {
    range("tag", req.tag.into(), 0, MAX_TAG.into())?;
    range("first_be", req.first_be.into(), 0, 0xf)?;
    range("last_be", req.last_be.into(), 0, 0xf)
}

fn aligned(address: u64) -> Result<(), EncodeError> {
    if address & 0b11 == 0 {
        Ok(())
    } else {
        Err(EncodeError::Misaligned { address })
    }
}

/// The request DW1: Requester ID, `Tag[7:0]`, Last/First DW BE.
fn request_dw1(req: &RequestHeader) -> u32 {
    let dw = request::REQUESTER_ID.put(0, req.requester.raw().into());
    let dw = request::TAG.put(dw, req.tag.into());
    let dw = request::LAST_BE.put(dw, req.last_be.into());
    request::FIRST_BE.put(dw, req.first_be.into())
}

fn request_header(view: &TlpView<'_>) -> RequestHeader {
    RequestHeader {
        requester: Bdf::from_raw(view.requester_id()),
        tag: view.tag(),
        first_be: view.first_be(),
        last_be: view.last_be(),
    }
}

impl TlpPacket {
    /// Checks every range the types cannot express.
    pub fn check(&self) -> Result<(), EncodeError> {
        let ft = self.fmt_type();
        range("tc", self.tc.into(), 0, MAX_TC.into())?;
        if ft.length_reserved() {
            // The Reserved Length field as sent (§2.2.1.1); `validate` flags non-zero values.
            range(
                "length_dw",
                self.length_dw.into(),
                0,
                dw0::LENGTH.max().into(),
            )?;
        } else {
            range("length_dw", self.length_dw.into(), 1, MAX_LENGTH_DW.into())?;
        }
        let expected = if ft.has_data() {
            usize::from(self.length_dw) * 4
        } else {
            0
        };
        if self.payload.len() != expected {
            return Err(EncodeError::PayloadLength {
                kind: ft.name(),
                length_dw: self.length_dw,
                payload_bytes: self.payload.len(),
                expected,
            });
        }
        if let Some(p) = self.pasid {
            range("pasid", p.pasid.into(), 0, PasidPrefix::MAX_RAW.into())?;
        }
        match &self.kind {
            TlpKind::Memory {
                width,
                req,
                address,
                ph,
                ..
            } => {
                check_request(req)?;
                aligned(*address)?;
                if *width == AddrWidth::Bits32 {
                    range("address", *address, 0, u32::MAX.into())?;
                }
                range("ph", (*ph).into(), 0, address::PH.max().into())
            }
            TlpKind::Io {
                req,
                address,
                reserved,
                ..
            } => {
                check_request(req)?;
                aligned((*address).into())?;
                range("reserved", (*reserved).into(), 0, address::PH.max().into())
            }
            TlpKind::Config {
                req,
                register,
                reserved,
                ..
            } => {
                check_request(req)?;
                range("register", (*register).into(), 0, 0x3ff)?;
                if reserved & !CONFIG_RESERVED_MASK != 0 {
                    return Err(EncodeError::OutOfRange {
                        field: "reserved",
                        value: (*reserved).into(),
                        min: 0,
                        max: CONFIG_RESERVED_MASK.into(),
                    });
                }
                Ok(())
            }
            TlpKind::Message { tag, .. } => range("tag", (*tag).into(), 0, MAX_TAG.into()),
            TlpKind::Completion { cpl, .. } => {
                range("tag", cpl.tag.into(), 0, MAX_TAG.into())?;
                range(
                    "byte_count",
                    cpl.byte_count.into(),
                    1,
                    MAX_BYTE_COUNT.into(),
                )?;
                // Bit 7 carries the Reserved DW2 bit 7 (see `CompletionHeader`): any u8 fits.
                Ok(())
            }
        }
    }

    /// Header DW0.
    fn dw0(&self) -> u32 {
        let (fmt, ty) = self.fmt_type().codes();
        let tag = self.tag();
        let mut dw = dw0::FMT.put(0, fmt.into());
        dw = dw0::TYPE.put(dw, ty.into());
        dw = dw0::T9.put(dw, u32::from(tag >> 9));
        dw = dw0::TC.put(dw, self.tc.into());
        dw = dw0::T8.put(dw, u32::from(tag >> 8));
        dw = dw0::ATTR2_IDO.put(dw, self.attr.id_based_ordering.into());
        dw = dw0::LN.put(dw, self.ln.into());
        dw = dw0::TH.put(dw, self.th.into());
        dw = dw0::TD.put(dw, self.td.into());
        dw = dw0::EP.put(dw, self.ep.into());
        dw = dw0::ATTR1_RO.put(dw, self.attr.relaxed_ordering.into());
        dw = dw0::ATTR0_NS.put(dw, self.attr.no_snoop.into());
        dw = dw0::AT.put(dw, self.at.code().into());
        // 1024 DW travels as 0 (Table 2-4): the field keeps the low 10 bits.
        dw0::LENGTH.put(dw, self.length_dw.into())
    }

    /// Header DWs 1..: up to three.
    fn header_rest(&self) -> ([u32; 3], usize) {
        match &self.kind {
            TlpKind::Memory {
                width,
                req,
                address,
                ph,
                ..
            } => {
                let lo = address::PH.put(*address as u32 & address::ADDR_LO.mask(), (*ph).into());
                match width {
                    AddrWidth::Bits32 => ([request_dw1(req), lo, 0], 2),
                    AddrWidth::Bits64 => ([request_dw1(req), (*address >> 32) as u32, lo], 3),
                }
            }
            TlpKind::Io {
                req,
                address,
                reserved,
                ..
            } => {
                let lo = address::PH.put(*address & address::ADDR_LO.mask(), (*reserved).into());
                ([request_dw1(req), lo, 0], 2)
            }
            TlpKind::Config {
                req,
                target,
                register,
                reserved,
                ..
            } => {
                let dw = config::TARGET_ID.put(0, target.raw().into());
                let reg = u32::from(*register);
                let dw = config::EXT_REGISTER.put(dw, reg >> config::REGISTER.width);
                let dw = config::REGISTER.put(dw, reg) | u32::from(*reserved);
                ([request_dw1(req), dw, 0], 2)
            }
            TlpKind::Message {
                requester,
                tag,
                code,
                fields,
                ..
            } => {
                let dw = message::REQUESTER_ID.put(0, requester.raw().into());
                let dw = message::TAG.put(dw, (*tag).into());
                let dw = message::CODE.put(dw, (*code).into());
                ([dw, (*fields >> 32) as u32, *fields as u32], 3)
            }
            TlpKind::Completion { cpl, .. } => {
                let dw1 = completion::COMPLETER_ID.put(0, cpl.completer.raw().into());
                let dw1 = completion::STATUS.put(dw1, cpl.status.code().into());
                let dw1 = completion::BCM.put(dw1, cpl.bcm.into());
                // 4096 bytes travels as 0 (§2.2.9.1).
                let dw1 = completion::BYTE_COUNT.put(dw1, cpl.byte_count.into());
                let dw2 = completion::REQUESTER_ID.put(0, cpl.requester.raw().into());
                let dw2 = completion::TAG.put(dw2, cpl.tag.into());
                let dw2 = completion::LOWER_ADDRESS.put(dw2, cpl.lower_address_6_0().into());
                let dw2 = completion::RSVD.put(dw2, cpl.reserved_bit().into());
                ([dw1, dw2, 0], 2)
            }
        }
    }

    /// Appends the wire bytes to `buf` (ECRC computed when TD is set).
    pub fn emit(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        self.check()?;
        let prefix = self.pasid.map(|p| p.to_dw().to_be_bytes());
        let prefix: &[u8] = prefix.as_ref().map_or(&[], |p| p);
        let dw0 = self.dw0();
        let (rest, n) = self.header_rest();
        let mut rest_bytes = [0u8; 12];
        for (chunk, dw) in rest_bytes.chunks_exact_mut(4).zip(rest.iter().take(n)) {
            chunk.copy_from_slice(&dw.to_be_bytes());
        }
        let rest_bytes = rest_bytes.get(..n * 4).unwrap_or_default();
        buf.reserve(self.wire_len());
        buf.put_slice(prefix);
        buf.put_u32(dw0);
        buf.put_slice(rest_bytes);
        buf.put_slice(&self.payload);
        if self.td {
            let ecrc = crc::ecrc(prefix, dw0, &[rest_bytes, &self.payload]);
            buf.put_slice(&ecrc.to_le_bytes());
        }
        Ok(())
    }

    /// The wire bytes.
    pub fn encode(&self) -> Result<BytesMut, EncodeError> {
        let mut buf = BytesMut::with_capacity(self.wire_len());
        self.emit(&mut buf)?;
        Ok(buf)
    }

    /// The typed value of a checked view. Does not check the ECRC (see [`decode`]).
    pub fn parse(view: &TlpView<'_>) -> Result<TlpPacket, DecodeError> {
        let ft = view.fmt_type();
        let at = AddressType::from_code(view.at_code()).ok_or(DecodeError::ReservedAddressType)?;
        // Reserved fields are carried, not refused (§2.3: receivers ignore them).
        let length_dw = if ft.length_reserved() {
            view.length_field()
        } else {
            view.length_dw()
        };
        let kind = match ft {
            FmtType::MRd32
            | FmtType::MRd64
            | FmtType::MRdLk32
            | FmtType::MRdLk64
            | FmtType::MWr32
            | FmtType::MWr64 => TlpKind::Memory {
                op: match ft {
                    FmtType::MRd32 | FmtType::MRd64 => MemOp::Read,
                    FmtType::MRdLk32 | FmtType::MRdLk64 => MemOp::ReadLocked,
                    _ => MemOp::Write,
                },
                width: if ft.header_dws() == 4 {
                    AddrWidth::Bits64
                } else {
                    AddrWidth::Bits32
                },
                req: request_header(view),
                address: view.address(),
                ph: view.ph(),
            },
            FmtType::IORd | FmtType::IOWr => TlpKind::Io {
                write: ft == FmtType::IOWr,
                req: request_header(view),
                address: view.address() as u32,
                reserved: view.ph(),
            },
            FmtType::CfgRd0 | FmtType::CfgWr0 | FmtType::CfgRd1 | FmtType::CfgWr1 => {
                TlpKind::Config {
                    write: ft.has_data(),
                    cfg_type: if matches!(ft, FmtType::CfgRd0 | FmtType::CfgWr0) {
                        CfgType::Type0
                    } else {
                        CfgType::Type1
                    },
                    req: request_header(view),
                    target: Bdf::from_raw(view.cfg_target()),
                    register: view.cfg_register(),
                    reserved: view.cfg_reserved() as u16,
                }
            }
            FmtType::Msg(routing) | FmtType::MsgD(routing) => TlpKind::Message {
                data: ft.has_data(),
                routing,
                requester: Bdf::from_raw(view.requester_id()),
                tag: view.tag(),
                code: view.msg_code(),
                fields: view.msg_fields(),
            },
            FmtType::Cpl | FmtType::CplD | FmtType::CplLk | FmtType::CplDLk => {
                let code = view.cpl_status_code();
                TlpKind::Completion {
                    data: ft.has_data(),
                    locked: matches!(ft, FmtType::CplLk | FmtType::CplDLk),
                    cpl: CompletionHeader {
                        completer: Bdf::from_raw(view.completer_id()),
                        status: CplStatus::from_code(code)
                            .ok_or(DecodeError::ReservedCplStatus { code })?,
                        bcm: view.bcm(),
                        byte_count: view.byte_count(),
                        requester: Bdf::from_raw(view.requester_id()),
                        tag: view.tag(),
                        lower_address: view.lower_address() | (view.cpl_reserved() as u8) << 7,
                    },
                }
            }
        };
        Ok(TlpPacket {
            pasid: view.pasid(),
            kind,
            tc: view.tc(),
            attr: Attr {
                no_snoop: view.no_snoop(),
                relaxed_ordering: view.relaxed_ordering(),
                id_based_ordering: view.id_based_ordering(),
            },
            th: view.th(),
            ln: view.ln(),
            td: view.td(),
            ep: view.ep(),
            at,
            length_dw,
            payload: bytes::Bytes::copy_from_slice(view.payload()),
        })
    }
}

/// Decodes exactly one TLP from `bytes`, checking the ECRC when TD is set. Never panics.
pub fn decode(bytes: &[u8]) -> Result<TlpPacket, DecodeError> {
    let view = TlpView::new_checked(bytes)?;
    if let Some(received) = view.digest_dw() {
        let computed = view.computed_digest_dw();
        if received != computed {
            return Err(DecodeError::EcrcMismatch { computed, received });
        }
    }
    TlpPacket::parse(&view)
}
