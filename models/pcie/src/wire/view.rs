//! The raw layer: [`TlpView`], a length-checked view over TLP bytes with one accessor per
//! field (smoltcp's `Packet`). After [`TlpView::new_checked`] succeeds no accessor can panic;
//! all reads go through `slice::get`.

use super::crc;
use super::error::{DecodeError, TlpPart};
use super::field::{address, completion, config, dw0, message, request, DW_BYTES};
use super::header::{fmt_code, FmtType, MAX_BYTE_COUNT, MAX_LENGTH_DW};
use super::prefix::{PasidPrefix, PrefixError};

/// A TLP on the wire: optional PASID prefix, header, payload and optional Digest, exactly.
#[derive(Debug, Clone, Copy)]
pub struct TlpView<'a> {
    buf: &'a [u8],
    /// Byte offset of header DW0 (0, or 4 after a prefix).
    header_at: usize,
    fmt_type: FmtType,
}

/// The big-endian DW at byte `at`, if the buffer holds it.
fn read_dw(buf: &[u8], at: usize) -> Option<u32> {
    let end = at.checked_add(DW_BYTES)?;
    let bytes: [u8; 4] = buf.get(at..end)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

/// `Length[9:0]` as a DW count: 0 means 1024 (Table 2-4).
pub(crate) const fn length_from_field(raw: u32) -> u16 {
    if raw == 0 {
        MAX_LENGTH_DW
    } else {
        raw as u16
    }
}

impl<'a> TlpView<'a> {
    /// Checks that `buf` is exactly one TLP: a known prefix (at most one PASID prefix), a known
    /// Fmt/Type, and as many bytes as Fmt, Length and TD say (§2.2.1.1, §2.2.3).
    pub fn new_checked(buf: &'a [u8]) -> Result<TlpView<'a>, DecodeError> {
        let truncated = |part, needed| DecodeError::Truncated {
            part,
            needed,
            have: buf.len(),
        };
        // Prefixes: Fmt = 100b in byte 0 (§2.2.10.1).
        let mut at = 0;
        let dw0v = loop {
            let is_prefix = buf
                .get(at)
                .is_some_and(|b| u32::from(*b >> 5) == u32::from(fmt_code::PREFIX));
            let part = if is_prefix {
                TlpPart::Prefix
            } else {
                TlpPart::Header
            };
            let dw = read_dw(buf, at).ok_or_else(|| truncated(part, at + DW_BYTES))?;
            if !is_prefix {
                break dw;
            }
            match PasidPrefix::from_dw(dw) {
                Ok(_) if at > 0 => return Err(DecodeError::DuplicatePasidPrefix),
                Ok(_) => {}
                Err(PrefixError::Unsupported { ty }) => {
                    return Err(DecodeError::UnsupportedPrefix { ty })
                }
            }
            at += DW_BYTES;
        };
        let (fmt, ty) = (dw0::FMT.get(dw0v) as u8, dw0::TYPE.get(dw0v) as u8);
        let fmt_type =
            FmtType::from_codes(fmt, ty).ok_or(DecodeError::ReservedFmtType { fmt, ty })?;
        let header_end = at + fmt_type.header_dws() * DW_BYTES;
        if buf.len() < header_end {
            return Err(truncated(TlpPart::Header, header_end));
        }
        let payload = if fmt_type.has_data() {
            usize::from(length_from_field(dw0::LENGTH.get(dw0v))) * DW_BYTES
        } else {
            0
        };
        let payload_end = header_end + payload;
        if buf.len() < payload_end {
            return Err(truncated(TlpPart::Payload, payload_end));
        }
        let end = payload_end + if dw0::TD.flag(dw0v) { DW_BYTES } else { 0 };
        if buf.len() < end {
            return Err(truncated(TlpPart::Digest, end));
        }
        if buf.len() > end {
            return Err(DecodeError::TrailingBytes {
                len: end,
                extra: buf.len() - end,
            });
        }
        Ok(TlpView {
            buf,
            header_at: at,
            fmt_type,
        })
    }

    /// The whole TLP.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// Header DW `i` (0-based), big-endian.
    pub fn header_dw(&self, i: usize) -> u32 {
        read_dw(self.buf, self.header_at + i * DW_BYTES).unwrap_or(0)
    }

    /// The header bytes (3 or 4 DW).
    pub fn header(&self) -> &'a [u8] {
        let end = self.header_at + self.fmt_type.header_dws() * DW_BYTES;
        self.buf.get(self.header_at..end).unwrap_or_default()
    }

    /// The PASID prefix, if present.
    pub fn pasid(&self) -> Option<PasidPrefix> {
        (self.header_at > 0)
            .then(|| read_dw(self.buf, 0).and_then(|dw| PasidPrefix::from_dw(dw).ok()))
            .flatten()
    }

    /// The prefix bytes (empty without a prefix).
    pub fn prefix_bytes(&self) -> &'a [u8] {
        self.buf.get(..self.header_at).unwrap_or_default()
    }

    /// Fmt/Type.
    pub fn fmt_type(&self) -> FmtType {
        self.fmt_type
    }

    fn dw0(&self) -> u32 {
        self.header_dw(0)
    }

    /// `TC[2:0]`.
    pub fn tc(&self) -> u8 {
        dw0::TC.get(self.dw0()) as u8
    }
    /// `Attr[0]`, No Snoop.
    pub fn no_snoop(&self) -> bool {
        dw0::ATTR0_NS.flag(self.dw0())
    }
    /// `Attr[1]`, Relaxed Ordering.
    pub fn relaxed_ordering(&self) -> bool {
        dw0::ATTR1_RO.flag(self.dw0())
    }
    /// `Attr[2]`, ID-Based Ordering.
    pub fn id_based_ordering(&self) -> bool {
        dw0::ATTR2_IDO.flag(self.dw0())
    }
    /// TH.
    pub fn th(&self) -> bool {
        dw0::TH.flag(self.dw0())
    }
    /// DW0 bit 17 (Reserved, formerly LN).
    pub fn ln(&self) -> bool {
        dw0::LN.flag(self.dw0())
    }
    /// TD.
    pub fn td(&self) -> bool {
        dw0::TD.flag(self.dw0())
    }
    /// EP.
    pub fn ep(&self) -> bool {
        dw0::EP.flag(self.dw0())
    }
    /// `AT[1:0]` as sent (3 is Reserved).
    pub fn at_code(&self) -> u8 {
        dw0::AT.get(self.dw0()) as u8
    }
    /// `Length[9:0]` as sent.
    pub fn length_field(&self) -> u16 {
        dw0::LENGTH.get(self.dw0()) as u16
    }
    /// Length in DW (0 means 1024).
    pub fn length_dw(&self) -> u16 {
        length_from_field(dw0::LENGTH.get(self.dw0()))
    }

    /// `Tag[9:0]`: T9, T8 from DW0 and `Tag[7:0]` from DW1 (DW2 for completions).
    pub fn tag(&self) -> u16 {
        let lo = if self.is_completion() {
            completion::TAG.get(self.header_dw(2))
        } else {
            request::TAG.get(self.header_dw(1))
        };
        let d = self.dw0();
        ((dw0::T9.get(d) << 9) | (dw0::T8.get(d) << 8) | lo) as u16
    }

    fn is_completion(&self) -> bool {
        matches!(
            self.fmt_type,
            FmtType::Cpl | FmtType::CplD | FmtType::CplLk | FmtType::CplDLk
        )
    }

    /// Requester ID (DW1 of requests and messages, DW2 of completions).
    pub fn requester_id(&self) -> u16 {
        if self.is_completion() {
            completion::REQUESTER_ID.get(self.header_dw(2)) as u16
        } else {
            request::REQUESTER_ID.get(self.header_dw(1)) as u16
        }
    }
    /// First DW `BE[3:0]` of a request.
    pub fn first_be(&self) -> u8 {
        request::FIRST_BE.get(self.header_dw(1)) as u8
    }
    /// Last DW `BE[3:0]` of a request.
    pub fn last_be(&self) -> u8 {
        request::LAST_BE.get(self.header_dw(1)) as u8
    }

    /// The low address DW of a Memory or I/O request (`Address[31:2]` and PH).
    fn addr_lo_dw(&self) -> u32 {
        if self.fmt_type.header_dws() == 4 {
            self.header_dw(address::DW_ADDR_LO)
        } else {
            self.header_dw(address::DW_ADDR32)
        }
    }
    /// `Address[63:2]` of a Memory or I/O request, bits 1:0 zero.
    pub fn address(&self) -> u64 {
        let lo = u64::from(address::ADDR_LO.get(self.addr_lo_dw()) << address::ADDR_LO.lo);
        if self.fmt_type.header_dws() == 4 {
            (u64::from(self.header_dw(address::DW_ADDR_HI)) << 32) | lo
        } else {
            lo
        }
    }
    /// Address bits 1:0 of a Memory or I/O request: `PH[1:0]` for memory requests with TH
    /// set, Reserved otherwise.
    pub fn ph(&self) -> u8 {
        address::PH.get(self.addr_lo_dw()) as u8
    }

    /// Configuration target ID.
    pub fn cfg_target(&self) -> u16 {
        config::TARGET_ID.get(self.header_dw(config::DW)) as u16
    }
    /// Configuration register DW index: Extended Register Number : Register Number.
    pub fn cfg_register(&self) -> u16 {
        let dw = self.header_dw(config::DW);
        ((config::EXT_REGISTER.get(dw) << config::REGISTER.width) | config::REGISTER.get(dw)) as u16
    }
    /// Reserved bits 15:12 and 1:0 of a configuration DW2, as one mask.
    pub fn cfg_reserved(&self) -> u32 {
        self.header_dw(config::DW) & (config::RSVD_HI.mask() | config::RSVD_LO.mask())
    }

    /// Completer ID.
    pub fn completer_id(&self) -> u16 {
        completion::COMPLETER_ID.get(self.header_dw(1)) as u16
    }
    /// Completion `Status[2:0]` as sent.
    pub fn cpl_status_code(&self) -> u8 {
        completion::STATUS.get(self.header_dw(1)) as u8
    }
    /// BCM.
    pub fn bcm(&self) -> bool {
        completion::BCM.flag(self.header_dw(1))
    }
    /// Byte Count (0 means 4096).
    pub fn byte_count(&self) -> u16 {
        match completion::BYTE_COUNT.get(self.header_dw(1)) {
            0 => MAX_BYTE_COUNT,
            n => n as u16,
        }
    }
    /// Lower `Address[6:0]`.
    pub fn lower_address(&self) -> u8 {
        completion::LOWER_ADDRESS.get(self.header_dw(2)) as u8
    }
    /// The Reserved bit 7 of completion DW2 (1 when set).
    pub fn cpl_reserved(&self) -> u32 {
        completion::RSVD.get(self.header_dw(2))
    }

    /// Message `Code[7:0]`.
    pub fn msg_code(&self) -> u8 {
        message::CODE.get(self.header_dw(1)) as u8
    }
    /// Message header bytes 8-15 as a big-endian u64.
    pub fn msg_fields(&self) -> u64 {
        (u64::from(self.header_dw(2)) << 32) | u64::from(self.header_dw(3))
    }

    /// The data payload (empty for TLPs without data).
    pub fn payload(&self) -> &'a [u8] {
        let start = self.header_at + self.fmt_type.header_dws() * DW_BYTES;
        let end = self
            .buf
            .len()
            .saturating_sub(if self.td() { DW_BYTES } else { 0 });
        self.buf.get(start..end).unwrap_or_default()
    }

    /// The Digest DW as sent (big-endian, as the bytes read), when TD is set.
    pub fn digest_dw(&self) -> Option<u32> {
        self.td()
            .then(|| read_dw(self.buf, self.buf.len().saturating_sub(DW_BYTES)))
            .flatten()
    }

    /// The Digest DW this TLP should carry (§2.7.1), read like [`TlpView::digest_dw`].
    pub fn computed_digest_dw(&self) -> u32 {
        let header = self.header();
        let ecrc = crc::ecrc(
            self.prefix_bytes(),
            self.dw0(),
            &[header.get(DW_BYTES..).unwrap_or_default(), self.payload()],
        );
        u32::from_be_bytes(ecrc.to_le_bytes())
    }
}
