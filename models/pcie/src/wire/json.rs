//! The JSON form of a TLP, as `snoopsim tlp decode --json` prints it and `snoopsim tlp
//! encode` reads it. One flat object; field names are fixed (see [`TlpJson`]).
//!
//! Encoding rules: `kind` is required; fields that do not apply to the kind are rejected, as
//! are unknown fields; `fmt`/`type`, when given, must agree with `kind`; errors name the
//! field. Defaults: TC 0, attributes and flags clear, AT untranslated,
//! requester and completer 00:00.0, tag 0, Length from the payload (else 1 DW, zero-filled;
//! 0 for Cpl, CplLk and Msg), First DW BE 1111b, Last DW BE 1111b when Length > 1 (else
//! 0000b), status SC, Byte Count = payload bytes (4 without data), register/target 0, message
//! fields 0, Reserved bits 0. `address` (memory, I/O) and `message_code` (Msg, MsgD) have no
//! default.
//!
//! Reserved fields: decoding carries non-zero Reserved bits (receivers ignore them), and the
//! JSON shows them so that decode → JSON → encode gives back the same bytes: `reserved` (the
//! header's Reserved bits, in place), `pasid.reserved` (prefix bits 21:20, in place),
//! `length_dw` of Cpl/CplLk/Msg (the Reserved Length field as sent), `ln` (DW0 bit 17) and
//! `th` of completions.
//!
//! Rule violations: `snoopsim tlp encode` refuses a TLP that breaks a rule
//! (`pcie::wire::validate`, non-zero Reserved fields included) unless the object has
//! `"allow_violations": true`, which encodes it anyway, for producing bad TLPs on purpose.
//! `violations` and `notes` are output only (what decode found) and are ignored on input.

use super::header::*;
use model_core::Bdf;
use serde::{Deserialize, Serialize};

/// A TLP as JSON. Integers are JSON numbers; `address`, `message_fields` and `payload` are
/// hex strings; IDs are `bb:dd.f`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlpJson {
    /// `MRd32`, `MRd64`, `MWr32`, `MWr64`, `MRdLk32`, `MRdLk64`, `IORd`, `IOWr`, `CfgRd0`,
    /// `CfgWr0`, `CfgRd1`, `CfgWr1`, `Msg`, `MsgD`, `Cpl`, `CplD`, `CplLk`, `CplDLk`.
    pub kind: String,
    /// `Fmt[2:0]` (output; checked on input).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fmt: Option<u8>,
    /// `Type[4:0]` (output; checked on input; gives a message's routing if `routing` is absent).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<u8>,
    /// Message routing `r[2:0]`: `to_rc`, `by_address`, `by_id`, `broadcast`, `local`, `gathered`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing: Option<String>,
    /// TC 0..=7.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tc: Option<u8>,
    /// `Attr[0]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_snoop: Option<bool>,
    /// `Attr[1]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relaxed_ordering: Option<bool>,
    /// `Attr[2]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_based_ordering: Option<bool>,
    /// TH.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub th: Option<bool>,
    /// DW0 bit 17 (Reserved, formerly LN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ln: Option<bool>,
    /// TD (the encoder computes the ECRC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub td: Option<bool>,
    /// EP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ep: Option<bool>,
    /// AT: `untranslated`, `translation_request`, `translated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// Length in DW, 1..=1024; for Cpl, CplLk and Msg, whose Length is Reserved, the field as
    /// sent, 0..=1023 (0 unless the TLP breaks the rule).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length_dw: Option<u16>,
    /// Requester ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requester_id: Option<Bdf>,
    /// Tag, 0..=1023.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<u16>,
    /// First DW BE, 0..=15.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_be: Option<u8>,
    /// Last DW BE, 0..=15.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_be: Option<u8>,
    /// DW-aligned address, `"0x…"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// `PH[1:0]`, the processing hint in address bits 1:0 of memory requests. Printed only
    /// with `"th": true`; without TH those bits are Reserved (printed as `reserved`), and a
    /// `ph` given on input means them, so a non-zero one is a Reserved-field violation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ph: Option<u8>,
    /// Configuration target ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_id: Option<Bdf>,
    /// Configuration register DW index 0..=1023 (Extended Register Number : Register Number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub register: Option<u16>,
    /// Message Code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_code: Option<u8>,
    /// Message header bytes 8-15, `"0x…"` (16 hex digits on output).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_fields: Option<String>,
    /// Completer ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completer_id: Option<Bdf>,
    /// Completion status: `SC`, `UR`, `CRS` (alias `RRS`), `CA`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// BCM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bcm: Option<bool>,
    /// Byte Count, 1..=4096.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub byte_count: Option<u16>,
    /// Lower Address, 0..=127.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lower_address: Option<u8>,
    /// Non-zero Reserved header bits, in place within their DW, `"0x…"` (output only when
    /// non-zero): address bits 1:0 of I/O requests and of memory requests without TH (`0x1`
    /// ..`0x3`), configuration DW2 bits 15:12 and 1:0 (within `0xf003`), completion DW2 bit 7
    /// (`0x80`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserved: Option<String>,
    /// The PASID prefix, or null.
    pub pasid: Option<PasidJson>,
    /// Payload bytes as hex (TLPs with data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// Rule violations found on decode (output only; ignored on input; `warnings` is accepted
    /// as its former name).
    #[serde(alias = "warnings", skip_serializing_if = "Option::is_none")]
    pub violations: Option<Vec<String>>,
    /// Informational remarks found on decode, such as BCM set (output only; ignored on input).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<Vec<String>>,
    /// Input only: encode even if the TLP breaks rules (see the module doc). Never printed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_violations: Option<bool>,
}

/// The PASID prefix as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasidJson {
    /// PASID, 0..=0xFFFFF.
    pub pasid: u32,
    /// Execute Requested.
    pub execute: bool,
    /// Privileged Mode Requested.
    pub privileged: bool,
    /// Non-zero Reserved bits 21:20 of the prefix DW, in place (`"0x100000"`..`"0x300000"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserved: Option<String>,
}

/// A JSON field that does not make a TLP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct JsonError {
    /// The JSON field name.
    pub field: &'static str,
    /// What is wrong.
    pub message: String,
}

/// Bytes from hex: an optional `0x`, then hex digits with any spaces, underscores or newlines.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| !matches!(b, b' ' | b'_' | b'\n' | b'\r' | b'\t'))
        .map(|b| match b {
            b'0'..=b'9' => Ok(b - b'0'),
            b'a'..=b'f' => Ok(b - b'a' + 10),
            b'A'..=b'F' => Ok(b - b'A' + 10),
            _ => Err(format!("'{}' is not a hex digit", char::from(b))),
        })
        .collect::<Result<_, _>>()?;
    if !digits.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits ({})", digits.len()));
    }
    Ok(digits.chunks_exact(2).map(|p| p[0] << 4 | p[1]).collect())
}

/// `"0x…"` for a non-zero Reserved value, else nothing.
fn hex_if_set(value: u32) -> Option<String> {
    (value != 0).then(|| format!("{value:#x}"))
}

/// Lowercase hex without separators.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl TlpJson {
    /// The JSON of `t`, with the fields that apply to its kind.
    pub fn from_packet(t: &TlpPacket) -> TlpJson {
        let ft = t.fmt_type();
        let (fmt, ty) = ft.codes();
        let mut j = TlpJson {
            kind: ft.name().to_owned(),
            fmt: Some(fmt),
            type_: Some(ty),
            tc: Some(t.tc),
            no_snoop: Some(t.attr.no_snoop),
            relaxed_ordering: Some(t.attr.relaxed_ordering),
            id_based_ordering: Some(t.attr.id_based_ordering),
            th: Some(t.th),
            ln: Some(t.ln),
            td: Some(t.td),
            ep: Some(t.ep),
            at: Some(t.at.short_name().to_owned()),
            length_dw: Some(t.length_dw),
            tag: Some(t.tag()),
            pasid: t.pasid.map(|p| PasidJson {
                pasid: p.id(),
                execute: p.execute,
                privileged: p.privileged,
                reserved: hex_if_set(p.reserved()),
            }),
            payload: ft.has_data().then(|| to_hex(&t.payload)),
            ..TlpJson::default()
        };
        if let Some(req) = t.kind.request() {
            j.requester_id = Some(req.requester);
            j.first_be = Some(req.first_be);
            j.last_be = Some(req.last_be);
        }
        match t.kind {
            TlpKind::Memory { address, ph, .. } => {
                j.address = Some(format!("{address:#x}"));
                if t.th {
                    j.ph = Some(ph);
                } else {
                    j.reserved = hex_if_set(ph.into());
                }
            }
            TlpKind::Io {
                address, reserved, ..
            } => {
                j.address = Some(format!("{address:#x}"));
                j.reserved = hex_if_set(reserved.into());
            }
            TlpKind::Config {
                target,
                register,
                reserved,
                ..
            } => {
                j.target_id = Some(target);
                j.register = Some(register);
                j.reserved = hex_if_set(reserved.into());
            }
            TlpKind::Message {
                routing,
                requester,
                code,
                fields,
                ..
            } => {
                j.routing = Some(routing.short_name().to_owned());
                j.requester_id = Some(requester);
                j.message_code = Some(code);
                j.message_fields = Some(format!("{fields:#018x}"));
            }
            TlpKind::Completion { cpl, .. } => {
                j.requester_id = Some(cpl.requester);
                j.completer_id = Some(cpl.completer);
                j.status = Some(cpl.status.short_name().to_owned());
                j.bcm = Some(cpl.bcm);
                j.byte_count = Some(cpl.byte_count);
                j.lower_address = Some(cpl.lower_address_6_0());
                j.reserved = hex_if_set(u32::from(cpl.reserved_bit()) << 7);
            }
        }
        j
    }
}
