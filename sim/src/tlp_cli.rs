//! The library half of `snoopsim tlp decode <hex> [--json]` and `snoopsim tlp encode <json>`:
//! exact PCIe TLP wire bytes to fields and back, with rule warnings (`pcie::wire`).

use pcie::wire::json::{parse_hex, to_hex, TlpJson};
use pcie::wire::{validate, FmtType, TlpPacket, TlpView, ValidationContext, Violation};
use std::fmt::Write as _;

/// Decodes one TLP given as hex (an optional `0x`, spaces, underscores and newlines allowed)
/// and describes every field: aligned text, or pretty JSON with the `pcie::wire::json` names.
/// Rule violations and an ECRC mismatch are listed as warnings; bytes that are not a TLP
/// (truncated, Reserved Fmt/Type, Reserved bits set, …) are an error.
pub fn decode_hex(input: &str, json: bool) -> Result<String, String> {
    let bytes = parse_hex(input).map_err(|e| format!("hex: {e}"))?;
    let view = TlpView::new_checked(&bytes)
        .map_err(|e| format!("cannot decode {} bytes as a TLP: {e}", bytes.len()))?;
    let tlp = TlpPacket::parse(&view)
        .map_err(|e| format!("cannot decode {} bytes as a TLP: {e}", bytes.len()))?;
    let mut warnings = Vec::new();
    if let Some(received) = view.digest_dw() {
        let computed = view.computed_digest_dw();
        if received != computed {
            warnings.push(Violation::EcrcMismatch { computed, received }.to_string());
        }
    }
    warnings.extend(
        validate(&tlp, &ValidationContext::default())
            .iter()
            .map(ToString::to_string),
    );
    let mut j = TlpJson::from_packet(&tlp);
    if json {
        j.warnings = Some(warnings);
        return serde_json::to_string_pretty(&j).map_err(|e| format!("JSON: {e}"));
    }
    Ok(text(&view, &tlp, &j, &warnings))
}

/// Encodes the TLP a JSON object describes; returns lowercase hex, one group per DW.
pub fn encode_json(input: &str) -> Result<String, String> {
    let de = &mut serde_json::Deserializer::from_str(input);
    let j: TlpJson = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            format!("JSON: {inner}")
        } else {
            format!("{path}: {inner}")
        }
    })?;
    let tlp = j.to_packet().map_err(|e| e.to_string())?;
    let bytes = tlp.encode().map_err(|e| e.to_string())?;
    Ok(dw_groups(&bytes))
}

/// Hex grouped by DW.
fn dw_groups(bytes: &[u8]) -> String {
    bytes.chunks(4).map(to_hex).collect::<Vec<_>>().join(" ")
}

fn text(view: &TlpView<'_>, tlp: &TlpPacket, j: &TlpJson, warnings: &[String]) -> String {
    let mut out = String::new();
    let mut line = |name: &str, value: String| {
        let _ = writeln!(out, "{name:<18} {value}");
    };
    let ft = tlp.fmt_type();
    let (fmt, ty) = ft.codes();
    line("kind", format!("{} ({})", ft.name(), describe(ft)));
    line(
        "fmt",
        format!(
            "{fmt:03b}b ({}-DW header, {})",
            ft.header_dws(),
            if ft.has_data() {
                "with data"
            } else {
                "no data"
            }
        ),
    );
    line("type", format!("{}_{:04b}b", ty >> 4, ty & 0xf));
    if let Some(r) = &j.routing {
        line("routing", r.clone());
    }
    line("tc", tlp.tc.to_string());
    line("no_snoop", tlp.attr.no_snoop.to_string());
    line("relaxed_ordering", tlp.attr.relaxed_ordering.to_string());
    line("id_based_ordering", tlp.attr.id_based_ordering.to_string());
    line("th", tlp.th.to_string());
    line("ln", format!("{} (Reserved bit, formerly LN)", tlp.ln));
    line("td", tlp.td.to_string());
    line("ep", tlp.ep.to_string());
    line("at", tlp.at.to_string());
    let length = if ft.length_reserved() {
        "0 (Reserved for this kind)".to_owned()
    } else if view.length_field() == 0 {
        format!("{} (field 0 encodes 1024)", tlp.length_dw)
    } else {
        tlp.length_dw.to_string()
    };
    line("length_dw", length);
    if let Some(r) = j.requester_id {
        line("requester_id", r.to_string());
    }
    let tag = tlp.tag();
    line(
        "tag",
        format!(
            "{tag:#05x} ({tag}; T9 {} T8 {})",
            tag >> 9 & 1,
            tag >> 8 & 1
        ),
    );
    if let (Some(f), Some(l)) = (j.first_be, j.last_be) {
        line("first_be", format!("{f:04b}b"));
        line("last_be", format!("{l:04b}b"));
    }
    if let Some(a) = &j.address {
        line("address", a.clone());
    }
    if let Some(ph) = j.ph {
        line("ph", ph.to_string());
    }
    if let (Some(t), Some(r)) = (j.target_id, j.register) {
        line("target_id", t.to_string());
        line(
            "register",
            format!("{r} (byte offset {:#05x})", u32::from(r) * 4),
        );
    }
    if let Some(c) = j.message_code {
        line("message_code", format!("{c:#04x}"));
    }
    if let Some(f) = &j.message_fields {
        line("message_fields", f.clone());
    }
    if let Some(c) = j.completer_id {
        line("completer_id", c.to_string());
    }
    if let Some(s) = &j.status {
        line("status", s.clone());
    }
    if let Some(b) = j.bcm {
        line("bcm", b.to_string());
    }
    if let Some(b) = j.byte_count {
        let note = if b == 4096 {
            " (field 0 encodes 4096)"
        } else {
            ""
        };
        line("byte_count", format!("{b}{note}"));
    }
    if let Some(l) = j.lower_address {
        line("lower_address", format!("{l:#04x}"));
    }
    line(
        "pasid",
        tlp.pasid
            .map_or_else(|| "none".to_owned(), |p| p.to_string()),
    );
    if ft.has_data() {
        line(
            "payload",
            format!("{} bytes: {}", tlp.payload.len(), dw_groups(&tlp.payload)),
        );
    }
    if let Some(d) = view.digest_dw() {
        let ok = if d == view.computed_digest_dw() {
            "ok"
        } else {
            "MISMATCH"
        };
        line("ecrc", format!("{d:08x} ({ok})"));
    }
    line("header", dw_groups(view.header()));
    if warnings.is_empty() {
        line("warnings", "none".to_owned());
    } else {
        line("warnings", warnings.len().to_string());
        for w in warnings {
            let _ = writeln!(out, "  - {w}");
        }
    }
    out
}

fn describe(ft: FmtType) -> &'static str {
    match ft {
        FmtType::MRd32 | FmtType::MRd64 => "Memory Read Request",
        FmtType::MRdLk32 | FmtType::MRdLk64 => "Memory Read Request-Locked",
        FmtType::MWr32 | FmtType::MWr64 => "Memory Write Request",
        FmtType::IORd => "I/O Read Request",
        FmtType::IOWr => "I/O Write Request",
        FmtType::CfgRd0 => "Type 0 Configuration Read Request",
        FmtType::CfgWr0 => "Type 0 Configuration Write Request",
        FmtType::CfgRd1 => "Type 1 Configuration Read Request",
        FmtType::CfgWr1 => "Type 1 Configuration Write Request",
        FmtType::Msg(_) => "Message Request",
        FmtType::MsgD(_) => "Message Request with data",
        FmtType::Cpl => "Completion without Data",
        FmtType::CplD => "Completion with Data",
        FmtType::CplLk => "Completion for Locked Memory Read without Data",
        FmtType::CplDLk => "Completion for Locked Memory Read",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_round_trips_through_json() {
        let hex = encode_json(
            r#"{"kind":"MWr32","no_snoop":true,"requester_id":"01:00.0","address":"0x1000","payload":"78563412"}"#,
        )
        .unwrap();
        assert_eq!(hex, "40001001 0100000f 00001000 78563412");
        let json = decode_hex(&hex, true).unwrap();
        assert_eq!(encode_json(&json).unwrap(), hex);
        let text = decode_hex(&format!("0x{}", hex.replace(' ', "_")), false).unwrap();
        assert!(text.contains("no_snoop           true"), "{text}");
        assert!(text.contains("warnings           none"), "{text}");
    }

    #[test]
    fn errors_name_the_field() {
        let e = encode_json(r#"{"kind":"MRd32","address":"0x1000","bogus":1}"#).unwrap_err();
        assert!(e.contains("bogus"), "{e}");
        let e = encode_json(r#"{"kind":"MRd32","address":"0x1000","tc":9}"#).unwrap_err();
        assert!(e.starts_with("tc:"), "{e}");
        let e = encode_json(r#"{"kind":"MRd32","address":"0x1000","status":"SC"}"#).unwrap_err();
        assert!(e.starts_with("status:"), "{e}");
        let e =
            encode_json(r#"{"kind":"MRd32","requester_id":"1:2:3","address":"0x0"}"#).unwrap_err();
        assert!(e.starts_with("requester_id"), "{e}");
        assert!(decode_hex("4000100", false)
            .unwrap_err()
            .starts_with("hex:"));
        assert!(decode_hex("40001001", false)
            .unwrap_err()
            .contains("truncated header"));
    }
}
