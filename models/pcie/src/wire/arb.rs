//! `arbitrary::Arbitrary` for [`TlpPacket`]: only values that encode (every field in range,
//! payload of `Length × 4` bytes), for property tests and fuzz targets. Lengths favour small
//! payloads; one case in 32 draws from the full 1..=1024 range. One case in 8 sets each
//! Reserved field the packet carries (so that they round-trip too); the rest leave it 0.

use super::header::*;
use super::prefix::PasidPrefix;
use arbitrary::{Arbitrary, Result, Unstructured};
use bytes::Bytes;
use model_core::Bdf;

fn bdf(u: &mut Unstructured<'_>) -> Result<Bdf> {
    Ok(Bdf::from_raw(u.arbitrary()?))
}

/// A Reserved field's value: usually 0, one case in 8 any value within `mask`.
fn reserved(u: &mut Unstructured<'_>, mask: u32) -> Result<u32> {
    Ok(if u.ratio(1u8, 8)? {
        u.arbitrary::<u32>()? & mask
    } else {
        0
    })
}

fn tag(u: &mut Unstructured<'_>) -> Result<u16> {
    u.int_in_range(0..=MAX_TAG)
}

fn request(u: &mut Unstructured<'_>) -> Result<RequestHeader> {
    Ok(RequestHeader {
        requester: bdf(u)?,
        tag: tag(u)?,
        first_be: u.int_in_range(0..=0xf)?,
        last_be: u.int_in_range(0..=0xf)?,
    })
}

fn kind(u: &mut Unstructured<'_>) -> Result<TlpKind> {
    Ok(match u.int_in_range(0..=4u8)? {
        0 => {
            let width: AddrWidth = u.arbitrary()?;
            let address = match width {
                AddrWidth::Bits32 => u64::from(u.arbitrary::<u32>()?),
                AddrWidth::Bits64 => u.arbitrary::<u64>()?,
            } & !0b11;
            TlpKind::Memory {
                op: u.arbitrary()?,
                width,
                req: request(u)?,
                address,
                ph: u.int_in_range(0..=3)?,
            }
        }
        1 => TlpKind::Io {
            write: u.arbitrary()?,
            req: request(u)?,
            address: u.arbitrary::<u32>()? & !0b11,
            reserved: reserved(u, 0b11)? as u8,
        },
        2 => TlpKind::Config {
            write: u.arbitrary()?,
            cfg_type: u.arbitrary()?,
            req: request(u)?,
            target: bdf(u)?,
            register: u.int_in_range(0..=0x3ff)?,
            reserved: reserved(u, CONFIG_RESERVED_MASK.into())? as u16,
        },
        3 => TlpKind::Message {
            data: u.arbitrary()?,
            routing: u.arbitrary()?,
            requester: bdf(u)?,
            tag: tag(u)?,
            code: u.arbitrary()?,
            fields: u.arbitrary()?,
        },
        _ => TlpKind::Completion {
            data: u.arbitrary()?,
            locked: u.arbitrary()?,
            cpl: CompletionHeader {
                completer: bdf(u)?,
                status: u.arbitrary()?,
                bcm: u.arbitrary()?,
                byte_count: u.int_in_range(1..=MAX_BYTE_COUNT)?,
                requester: bdf(u)?,
                tag: tag(u)?,
                lower_address: u.int_in_range(0..=0x7f)? | (reserved(u, 1)? as u8) << 7,
            },
        },
    })
}

impl<'a> Arbitrary<'a> for TlpPacket {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let kind = kind(u)?;
        let ft = kind.fmt_type();
        let length_dw = if ft.length_reserved() {
            reserved(u, 0x3ff)? as u16
        } else if u.ratio(1u8, 32)? {
            u.int_in_range(1..=MAX_LENGTH_DW)?
        } else {
            u.int_in_range(1..=16)?
        };
        let payload = if ft.has_data() {
            let seed: u8 = u.arbitrary()?;
            let n = usize::from(length_dw) * 4;
            Bytes::from_iter((0..n).map(|i| seed.wrapping_add((i as u8).wrapping_mul(37))))
        } else {
            Bytes::new()
        };
        let pasid = if u.arbitrary()? {
            Some(PasidPrefix {
                pasid: u.int_in_range(0..=PasidPrefix::MAX_PASID)?
                    | reserved(u, PasidPrefix::MAX_RAW & !PasidPrefix::MAX_PASID)?,
                execute: u.arbitrary()?,
                privileged: u.arbitrary()?,
            })
        } else {
            None
        };
        Ok(TlpPacket {
            pasid,
            kind,
            tc: u.int_in_range(0..=MAX_TC)?,
            attr: u.arbitrary()?,
            th: u.arbitrary()?,
            ln: u.arbitrary()?,
            td: u.arbitrary()?,
            ep: u.arbitrary()?,
            at: u.arbitrary()?,
            length_dw,
            payload,
        })
    }
}
