//! The library half of `snoopsim tlp decode <hex> [--json]` and `snoopsim tlp encode <json>`:
//! exact PCIe TLP wire bytes to fields and back, with the rule checks of `pcie::wire`.
//!
//! Rule violations are errors ("Validation reports rule violations as errors"): both
//! functions return `Err` for a TLP that breaks a rule, so that the command prints `error: …`
//! and exits 2. A decode error still carries the whole field listing, then one
//! `error: <violation>` line per violation, so that the user sees what the bytes say as well as
//! what is wrong with them.

use pcie::wire::json::{parse_hex, to_hex, TlpJson};
use pcie::wire::{
    remarks, validate, FmtType, TlpKind, TlpPacket, TlpView, ValidationContext, Violation,
};
use std::fmt::Write as _;

/// Decodes one TLP given as hex (an optional `0x`, spaces, underscores and newlines allowed)
/// and describes every field: aligned text, or pretty JSON with the `pcie::wire::json` names.
///
/// `Ok(listing)` when the TLP breaks no rule. When it breaks rules (any [`Violation`],
/// an ECRC mismatch or a non-zero Reserved field included), `Err` with a summary line, the
/// same listing, and one `error: <violation>` line per violation. Bytes that are not a TLP
/// (truncated, Reserved Fmt/Type, …) are an `Err` with the reason alone. Non-zero Reserved
/// fields do not stop decoding: receivers ignore them, so they are shown and reported.
pub fn decode_hex(input: &str, json: bool) -> Result<String, String> {
    let bytes = parse_hex(input).map_err(|e| format!("hex: {e}"))?;
    let view = TlpView::new_checked(&bytes)
        .map_err(|e| format!("cannot decode {} bytes as a TLP: {e}", bytes.len()))?;
    let tlp = TlpPacket::parse(&view)
        .map_err(|e| format!("cannot decode {} bytes as a TLP: {e}", bytes.len()))?;
    let mut violations = Vec::new();
    if let Some(received) = view.digest_dw() {
        let computed = view.computed_digest_dw();
        if received != computed {
            violations.push(Violation::EcrcMismatch { computed, received });
        }
    }
    violations.extend(validate(&tlp, &ValidationContext::default()));
    let violations: Vec<String> = violations.iter().map(ToString::to_string).collect();
    let notes: Vec<String> = remarks(&tlp).iter().map(ToString::to_string).collect();
    let mut j = TlpJson::from_packet(&tlp);
    let listing = if json {
        j.violations = Some(violations.clone());
        j.notes = (!notes.is_empty()).then(|| notes.clone());
        let mut out = serde_json::to_string_pretty(&j).map_err(|e| format!("JSON: {e}"))?;
        out.push('\n');
        out
    } else {
        text(&view, &tlp, &j, &violations, &notes)
    };
    if violations.is_empty() {
        return Ok(listing);
    }
    Err(rejected(
        &format!(
            "the {} bytes decode as {} but break {}; the fields, then each rule broken:",
            bytes.len(),
            tlp.fmt_type(),
            rules(violations.len())
        ),
        &listing,
        &violations,
    ))
}

/// Encodes the TLP a JSON object describes; returns lowercase hex, one group per DW.
///
/// A TLP that breaks a rule ([`validate`]) is an `Err` listing every violation, one
/// `error: <violation>` line each, and no bytes, unless the object has
/// `"allow_violations": true`: then the bytes come back alone, as for a valid TLP.
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
    let violations: Vec<String> = validate(&tlp, &ValidationContext::default())
        .iter()
        .map(ToString::to_string)
        .collect();
    if !violations.is_empty() && j.allow_violations != Some(true) {
        return Err(rejected(
            &format!(
                "{} breaks {}, so it is not encoded (\"allow_violations\": true encodes it anyway):",
                tlp.fmt_type(),
                rules(violations.len())
            ),
            "",
            &violations,
        ));
    }
    let bytes = tlp.encode().map_err(|e| e.to_string())?;
    Ok(dw_groups(&bytes))
}

/// "1 rule", "2 rules".
fn rules(n: usize) -> String {
    format!("{n} rule{}", if n == 1 { "" } else { "s" })
}

/// The `Err` of a TLP that breaks rules: `summary`, `listing` (empty, or ending in a newline),
/// then `error: <violation>` per violation. The command prints it after `error: `.
fn rejected(summary: &str, listing: &str, violations: &[String]) -> String {
    let errors: Vec<String> = violations.iter().map(|v| format!("error: {v}")).collect();
    format!("{summary}\n{listing}{}", errors.join("\n"))
}

/// Hex grouped by DW.
fn dw_groups(bytes: &[u8]) -> String {
    bytes.chunks(4).map(to_hex).collect::<Vec<_>>().join(" ")
}

fn text(
    view: &TlpView<'_>,
    tlp: &TlpPacket,
    j: &TlpJson,
    violations: &[String],
    notes: &[String],
) -> String {
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
    let th_note = match (&tlp.kind, tlp.th) {
        (TlpKind::Completion { .. }, true) => " (Reserved for completions)",
        _ => "",
    };
    line("th", format!("{}{th_note}", tlp.th));
    line("ln", format!("{} (Reserved bit, formerly LN)", tlp.ln));
    line("td", tlp.td.to_string());
    line("ep", tlp.ep.to_string());
    line("at", tlp.at.to_string());
    let length = if ft.length_reserved() {
        match tlp.length_dw {
            0 => "0 (Reserved for this kind)".to_owned(),
            n => format!("{n} (Reserved for this kind: must be 0)"),
        }
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
        let note = if b {
            " (set only by PCI-X completers)"
        } else {
            ""
        };
        line("bcm", format!("{b}{note}"));
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
    if let Some(r) = &j.reserved {
        let what = match tlp.kind {
            TlpKind::Memory { .. } => "address bits 1:0 (PH only when TH is set)",
            TlpKind::Io { .. } => "address bits 1:0",
            TlpKind::Config { .. } => "DW2 bits 15:12 and 1:0",
            TlpKind::Completion { .. } => "DW2 bit 7",
            TlpKind::Message { .. } => "",
        };
        line("reserved", format!("{r} (Reserved {what}: must be 0)"));
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
    if violations.is_empty() {
        line("violations", "none".to_owned());
    } else {
        line(
            "violations",
            format!("{} (each on an error line below)", violations.len()),
        );
    }
    if !notes.is_empty() {
        line("notes", notes.len().to_string());
        for n in notes {
            let _ = writeln!(out, "  - {n}");
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
        assert!(text.contains("violations         none"), "{text}");
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
        // PH only with TH; Reserved bits only within their field.
        let e = encode_json(r#"{"kind":"MRd32","address":"0x1000","ph":1,"reserved":"0x2"}"#)
            .unwrap_err();
        assert!(e.starts_with("ph:"), "{e}");
        let e = encode_json(r#"{"kind":"MRd32","address":"0x1000","th":true,"reserved":"0x1"}"#)
            .unwrap_err();
        assert!(e.starts_with("reserved:"), "{e}");
        let e = encode_json(r#"{"kind":"IORd","address":"0xcf8","reserved":"0x4"}"#).unwrap_err();
        assert!(e.starts_with("reserved:"), "{e}");
        let e =
            encode_json(r#"{"kind":"Msg","routing":"local","message_code":32,"reserved":"0x1"}"#)
                .unwrap_err();
        assert!(e.starts_with("reserved: does not apply"), "{e}");
    }

    #[test]
    fn rule_violations_are_errors_that_still_show_the_fields() {
        // CplD, Length 2, Byte Count 4: the last Completion, so Length must be 1 (§2.3.1.1).
        let hex = "4a000002 00000004 01002a00 00000000 00000000";
        let e = decode_hex(hex, false).unwrap_err();
        let lines: Vec<&str> = e.lines().collect();
        assert!(lines[0].contains("decode as CplD but break 1 rule"), "{e}");
        assert!(lines[1].starts_with("kind               CplD"), "{e}");
        assert!(e.contains("violations         1"), "{e}");
        assert!(
            lines
                .last()
                .unwrap()
                .starts_with("error: CplD Length is 2 DW"),
            "{e}"
        );
        assert_eq!(e.matches("\nerror: ").count(), 1, "{e}");
        // JSON: the listing between the summary and the error lines is the JSON object.
        let e = decode_hex(hex, true).unwrap_err();
        let body: Vec<&str> = e
            .lines()
            .skip(1)
            .filter(|l| !l.starts_with("error: "))
            .collect();
        let j: TlpJson = serde_json::from_str(&body.join("\n")).unwrap();
        assert_eq!(j.violations.as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn encode_refuses_violations_unless_allowed() {
        let io = r#"{"kind":"IORd","address":"0xcf8","reserved":"0x2"}"#;
        let e = encode_json(io).unwrap_err();
        assert!(e.starts_with("IORd breaks 1 rule"), "{e}");
        assert!(e.ends_with("error: IORd: Reserved field I/O address bits 1:0 is non-zero (0x2); transmitters must set it to 0 and receivers ignore it (§2.2, §2.3)"), "{e}");
        let allowed = io.replace('}', r#","allow_violations":true}"#);
        assert_eq!(encode_json(&allowed).unwrap(), "02000001 0000000f 00000cfa");
        // `"allow_violations": false` is the default.
        let denied = io.replace('}', r#","allow_violations":false}"#);
        assert!(encode_json(&denied).is_err());
        // With TH the same bits are PH, and an MRd's BE byte carries ST[7:0]: no violation.
        let th = encode_json(r#"{"kind":"MRd32","address":"0x1000","th":true,"ph":1}"#).unwrap();
        assert_eq!(th, "00010001 0000000f 00001001");
        let text = decode_hex(&th, false).unwrap();
        assert!(text.contains("ph                 1"), "{text}");
        // Without TH, `ph` means the Reserved bits: a violation, refused unless allowed.
        let e = encode_json(r#"{"kind":"MRd32","address":"0x1000","ph":1}"#).unwrap_err();
        assert!(
            e.contains("Reserved field address bits 1:0 (PH only when TH is set)"),
            "{e}"
        );
        assert!(encode_json(r#"{"kind":"MRd32","address":"0x1000","ph":0}"#).is_ok());
        // Without TH the bits are shown as Reserved, not as PH.
        let e = decode_hex("00000001 0000000f 00001001", false).unwrap_err();
        assert!(!e.contains("\nph "), "{e}");
        assert!(
            e.contains("reserved           0x1 (Reserved address bits 1:0"),
            "{e}"
        );
    }

    #[test]
    fn bcm_is_a_note_not_an_error() {
        // CplD, 1 DW, SC with BCM (DW1 bit 12), Byte Count 4.
        let text = decode_hex("4a000001 00001004 01002a00 00000000", false).unwrap();
        assert!(
            text.contains("bcm                true (set only by PCI-X completers)"),
            "{text}"
        );
        assert!(text.contains("  - BCM is set"), "{text}");
        let json = decode_hex("4a000001 00001004 01002a00 00000000", true).unwrap();
        let j: TlpJson = serde_json::from_str(&json).unwrap();
        assert_eq!(j.notes.map(|n| n.len()), Some(1));
    }
}
