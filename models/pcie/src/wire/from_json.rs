//! JSON → [`TlpPacket`]: the rules and defaults listed in the `json` module doc.

use super::error::EncodeError;
use super::header::*;
use super::json::{parse_hex, JsonError, TlpJson};
use super::prefix::PasidPrefix;
use bytes::Bytes;

fn err(field: &'static str, message: impl Into<String>) -> JsonError {
    JsonError {
        field,
        message: message.into(),
    }
}

/// A hex number: an optional `0x`, hex digits, optional `_` separators, at most 64 bits.
fn parse_u64(field: &'static str, s: &str) -> Result<u64, JsonError> {
    let t = s.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    let digits: String = t.chars().filter(|c| *c != '_').collect();
    u64::from_str_radix(&digits, 16)
        .map_err(|e| err(field, format!("{s:?} is not a 64-bit hex number: {e}")))
}

/// The kind named `name`; messages come back routed to the Root Complex.
fn kind_from_name(name: &str) -> Option<FmtType> {
    FmtType::KINDS.into_iter().find(|k| k.name() == name)
}

/// Which class-specific fields each kind takes.
fn allowed(ft: FmtType) -> &'static [&'static str] {
    match ft {
        FmtType::MRd32
        | FmtType::MRd64
        | FmtType::MRdLk32
        | FmtType::MRdLk64
        | FmtType::MWr32
        | FmtType::MWr64 => &[
            "requester_id",
            "tag",
            "first_be",
            "last_be",
            "address",
            "ph",
            "reserved",
        ],
        FmtType::IORd | FmtType::IOWr => &[
            "requester_id",
            "tag",
            "first_be",
            "last_be",
            "address",
            "reserved",
        ],
        FmtType::CfgRd0 | FmtType::CfgWr0 | FmtType::CfgRd1 | FmtType::CfgWr1 => &[
            "requester_id",
            "tag",
            "first_be",
            "last_be",
            "target_id",
            "register",
            "reserved",
        ],
        FmtType::Msg(_) | FmtType::MsgD(_) => &[
            "requester_id",
            "tag",
            "routing",
            "message_code",
            "message_fields",
        ],
        FmtType::Cpl | FmtType::CplD | FmtType::CplLk | FmtType::CplDLk => &[
            "requester_id",
            "tag",
            "completer_id",
            "status",
            "bcm",
            "byte_count",
            "lower_address",
            "reserved",
        ],
    }
}

impl TlpJson {
    fn present(&self) -> [(&'static str, bool); 17] {
        [
            ("requester_id", self.requester_id.is_some()),
            ("tag", self.tag.is_some()),
            ("first_be", self.first_be.is_some()),
            ("last_be", self.last_be.is_some()),
            ("address", self.address.is_some()),
            ("ph", self.ph.is_some()),
            ("target_id", self.target_id.is_some()),
            ("register", self.register.is_some()),
            ("routing", self.routing.is_some()),
            ("message_code", self.message_code.is_some()),
            ("message_fields", self.message_fields.is_some()),
            ("completer_id", self.completer_id.is_some()),
            ("status", self.status.is_some()),
            ("bcm", self.bcm.is_some()),
            ("byte_count", self.byte_count.is_some()),
            ("lower_address", self.lower_address.is_some()),
            ("reserved", self.reserved.is_some()),
        ]
    }

    fn fmt_type(&self) -> Result<FmtType, JsonError> {
        let names = FmtType::KINDS.map(FmtType::name).join(", ");
        let base = kind_from_name(&self.kind).ok_or_else(|| {
            err(
                "kind",
                format!("unknown kind {:?}; one of {names}", self.kind),
            )
        })?;
        let ft = match base {
            FmtType::Msg(_) | FmtType::MsgD(_) => {
                let from_routing = self.routing.as_deref().map(|r| {
                    MsgRouting::from_short_name(r).ok_or_else(|| {
                        let all: Vec<_> = MsgRouting::ALL.iter().map(|r| r.short_name()).collect();
                        err(
                            "routing",
                            format!("unknown routing {r:?}; one of {}", all.join(", ")),
                        )
                    })
                });
                let routing = match (from_routing, self.type_) {
                    (Some(r), _) => r?,
                    (None, Some(ty)) => MsgRouting::from_code(ty & 0b111)
                        .ok_or_else(|| err("type", format!("{ty:#07b} has Reserved routing")))?,
                    (None, None) => return Err(err("routing", "required for Msg and MsgD")),
                };
                if matches!(base, FmtType::Msg(_)) {
                    FmtType::Msg(routing)
                } else {
                    FmtType::MsgD(routing)
                }
            }
            other => other,
        };
        let (fmt, ty) = ft.codes();
        if let Some(f) = self.fmt.filter(|f| *f != fmt) {
            return Err(err(
                "fmt",
                format!("is {f} but {ft} has Fmt {fmt:03b}b ({fmt})"),
            ));
        }
        if let Some(t) = self.type_.filter(|t| *t != ty) {
            return Err(err(
                "type",
                format!("is {t} but {ft} has Type {ty:05b}b ({ty})"),
            ));
        }
        let allowed = allowed(ft);
        if let Some((name, _)) = self
            .present()
            .into_iter()
            .find(|(name, set)| *set && !allowed.contains(name))
        {
            return Err(err(name, format!("does not apply to {ft}")));
        }
        Ok(ft)
    }

    /// The payload and Length, with the defaults in the module doc.
    fn payload_and_length(&self, ft: FmtType) -> Result<(Bytes, u16), JsonError> {
        let payload = match &self.payload {
            Some(s) => Some(parse_hex(s).map_err(|m| err("payload", m))?),
            None => None,
        };
        if !ft.has_data() {
            if payload.as_ref().is_some_and(|p| !p.is_empty()) {
                return Err(err("payload", format!("{ft} has no data payload")));
            }
            let default = if ft.length_reserved() { 0 } else { 1 };
            return Ok((Bytes::new(), self.length_dw.unwrap_or(default)));
        }
        match payload {
            Some(p) => {
                if p.len() % 4 != 0 {
                    return Err(err(
                        "payload",
                        format!("{} bytes is not whole DWs", p.len()),
                    ));
                }
                let n = u16::try_from(p.len() / 4).unwrap_or(u16::MAX);
                if let Some(len) = self.length_dw.filter(|len| *len != n) {
                    return Err(err(
                        "length_dw",
                        format!("is {len} but the payload has {n} DW"),
                    ));
                }
                Ok((Bytes::from(p), n))
            }
            None => {
                let n = self.length_dw.unwrap_or(1);
                let bytes = usize::from(n.min(MAX_LENGTH_DW)) * 4;
                Ok((Bytes::from(vec![0u8; bytes]), n))
            }
        }
    }

    fn request(&self, length_dw: u16) -> RequestHeader {
        RequestHeader {
            requester: self.requester_id.unwrap_or_default(),
            tag: self.tag.unwrap_or(0),
            first_be: self.first_be.unwrap_or(0xf),
            last_be: self.last_be.unwrap_or(if length_dw > 1 { 0xf } else { 0 }),
        }
    }

    /// `reserved` (0 when absent), which must lie within `mask` for `ft`.
    fn reserved(&self, ft: FmtType, mask: u32, what: &str) -> Result<u32, JsonError> {
        let Some(s) = self.reserved.as_deref() else {
            return Ok(0);
        };
        let v = parse_u64("reserved", s)?;
        if v & !u64::from(mask) != 0 {
            return Err(err(
                "reserved",
                format!("{v:#x} is not within {mask:#x}, the Reserved {what} of {ft}"),
            ));
        }
        Ok(v as u32)
    }

    /// Address bits 1:0 of a memory request: PH with TH set, else Reserved. Without TH a `ph`
    /// is taken as those Reserved bits (what older JSON said), so a non-zero one is a
    /// Reserved-field violation rather than a malformed field.
    fn memory_bits_1_0(&self, ft: FmtType) -> Result<u8, JsonError> {
        if self.th == Some(true) {
            if self.reserved.is_some() {
                return Err(err(
                    "reserved",
                    "with \"th\": true address bits 1:0 are PH: give them as ph",
                ));
            }
            return Ok(self.ph.unwrap_or(0));
        }
        let rsvd = self.reserved(ft, 0b11, "address bits 1:0")? as u8;
        match self.ph {
            Some(ph) if self.reserved.is_some() && ph != rsvd => Err(err(
                "ph",
                format!("is {ph} but reserved is {rsvd:#x}: without TH both are address bits 1:0"),
            )),
            Some(ph) => Ok(ph),
            None => Ok(rsvd),
        }
    }

    fn pasid(&self) -> Result<Option<PasidPrefix>, JsonError> {
        let Some(p) = &self.pasid else {
            return Ok(None);
        };
        if p.pasid > PasidPrefix::MAX_PASID {
            return Err(err(
                "pasid",
                format!(
                    "{:#x} is out of range 0x0..={:#x}",
                    p.pasid,
                    PasidPrefix::MAX_PASID
                ),
            ));
        }
        let rsvd_mask = PasidPrefix::MAX_RAW & !PasidPrefix::MAX_PASID;
        let rsvd = match p.reserved.as_deref() {
            None => 0,
            Some(s) => {
                let v = parse_u64("pasid.reserved", s)?;
                if v & !u64::from(rsvd_mask) != 0 {
                    return Err(err(
                        "pasid.reserved",
                        format!(
                            "{v:#x} is not within {rsvd_mask:#x}, the prefix's Reserved bits 21:20"
                        ),
                    ));
                }
                v as u32
            }
        };
        Ok(Some(PasidPrefix {
            pasid: p.pasid | rsvd,
            execute: p.execute,
            privileged: p.privileged,
        }))
    }

    fn address(&self, ft: FmtType) -> Result<u64, JsonError> {
        let s = self
            .address
            .as_deref()
            .ok_or_else(|| err("address", format!("required for {ft}")))?;
        parse_u64("address", s)
    }

    /// The TLP this JSON describes.
    pub fn to_packet(&self) -> Result<TlpPacket, JsonError> {
        let ft = self.fmt_type()?;
        let (payload, length_dw) = self.payload_and_length(ft)?;
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
                req: self.request(length_dw),
                address: self.address(ft)?,
                ph: self.memory_bits_1_0(ft)?,
            },
            FmtType::IORd | FmtType::IOWr => TlpKind::Io {
                write: ft == FmtType::IOWr,
                req: self.request(length_dw),
                address: u32::try_from(self.address(ft)?)
                    .map_err(|_| err("address", "I/O addresses are 32 bits (§2.2.4.1)"))?,
                reserved: self.reserved(ft, 0b11, "address bits 1:0")? as u8,
            },
            FmtType::CfgRd0 | FmtType::CfgWr0 | FmtType::CfgRd1 | FmtType::CfgWr1 => {
                TlpKind::Config {
                    write: ft.has_data(),
                    cfg_type: if matches!(ft, FmtType::CfgRd0 | FmtType::CfgWr0) {
                        CfgType::Type0
                    } else {
                        CfgType::Type1
                    },
                    req: self.request(length_dw),
                    target: self.target_id.unwrap_or_default(),
                    register: self.register.unwrap_or(0),
                    reserved: self.reserved(
                        ft,
                        CONFIG_RESERVED_MASK.into(),
                        "DW2 bits 15:12 and 1:0",
                    )? as u16,
                }
            }
            FmtType::Msg(routing) | FmtType::MsgD(routing) => TlpKind::Message {
                data: ft.has_data(),
                routing,
                requester: self.requester_id.unwrap_or_default(),
                tag: self.tag.unwrap_or(0),
                code: self
                    .message_code
                    .ok_or_else(|| err("message_code", format!("required for {}", ft.name())))?,
                fields: match &self.message_fields {
                    Some(s) => parse_u64("message_fields", s)?,
                    None => 0,
                },
            },
            FmtType::Cpl | FmtType::CplD | FmtType::CplLk | FmtType::CplDLk => {
                let status = match self.status.as_deref() {
                    None => CplStatus::Sc,
                    Some(s) if s.eq_ignore_ascii_case("RRS") => CplStatus::Crs,
                    Some(s) => CplStatus::from_short_name(s).ok_or_else(|| {
                        err(
                            "status",
                            format!("unknown status {s:?}; one of SC, UR, CRS, CA"),
                        )
                    })?,
                };
                let default_count = if ft.has_data() {
                    (u32::from(length_dw) * 4).min(MAX_BYTE_COUNT.into()) as u16
                } else {
                    4
                };
                let lower_address = self.lower_address.unwrap_or(0);
                if lower_address > 0x7f {
                    return Err(err(
                        "lower_address",
                        format!("{lower_address:#x} is out of range 0x0..=0x7f"),
                    ));
                }
                let bit7 = self.reserved(ft, 0x80, "DW2 bit 7")? as u8;
                TlpKind::Completion {
                    data: ft.has_data(),
                    locked: matches!(ft, FmtType::CplLk | FmtType::CplDLk),
                    cpl: CompletionHeader {
                        completer: self.completer_id.unwrap_or_default(),
                        status,
                        bcm: self.bcm.unwrap_or(false),
                        byte_count: self.byte_count.unwrap_or(default_count),
                        requester: self.requester_id.unwrap_or_default(),
                        tag: self.tag.unwrap_or(0),
                        lower_address: lower_address | bit7,
                    },
                }
            }
        };
        let at = match self.at.as_deref() {
            None => AddressType::Untranslated,
            Some(s) => AddressType::from_short_name(s).ok_or_else(|| {
                err(
                    "at",
                    format!("unknown {s:?}; one of untranslated, translation_request, translated"),
                )
            })?,
        };
        let t = TlpPacket {
            pasid: self.pasid()?,
            kind,
            tc: self.tc.unwrap_or(0),
            attr: Attr {
                no_snoop: self.no_snoop.unwrap_or(false),
                relaxed_ordering: self.relaxed_ordering.unwrap_or(false),
                id_based_ordering: self.id_based_ordering.unwrap_or(false),
            },
            th: self.th.unwrap_or(false),
            ln: self.ln.unwrap_or(false),
            td: self.td.unwrap_or(false),
            ep: self.ep.unwrap_or(false),
            at,
            length_dw,
            payload,
        };
        t.check().map_err(|e| match e {
            EncodeError::OutOfRange {
                field,
                value,
                min,
                max,
            } => err(
                field,
                format!("{value:#x} is out of range {min:#x}..={max:#x}"),
            ),
            EncodeError::Misaligned { .. } => err("address", e.to_string()),
            EncodeError::PayloadLength { .. } => err("length_dw", e.to_string()),
        })?;
        Ok(t)
    }
}
