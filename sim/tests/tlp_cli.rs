//! `snoopsim tlp decode` and `snoopsim tlp encode` as a user meets them: the real binary, its
//! exit code, stdout and stderr. A TLP that breaks a rule is an error (exit 2), but decode still
//! prints every field before one `error: <violation>` line per violation.

use std::process::Command;

/// Runs `snoopsim tlp <args>`: (exit code, stdout, stderr).
fn tlp(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_snoopsim"))
        .arg("tlp")
        .args(args)
        .output()
        .expect("run snoopsim");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `error: ` lines of `stderr` after the first (which introduces the listing).
fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("error: "))
        .collect()
}

/// MRd32 of 1024 DW at 0xffc, which crosses a 4 KiB boundary (§2.2.7.1).
const CROSSING_MRD: &str =
    r#"{"kind":"MRd32","requester_id":"01:00.0","length_dw":1024,"address":"0xffc"}"#;

#[test]
fn a_valid_tlp_decodes_with_exit_0() {
    // MWr32, No Snoop, 1 DW at 0x1000 from 01:00.0.
    let (code, stdout, stderr) = tlp(&["decode", "40001001 0100000f 00001000 78563412"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert!(stdout.contains("kind               MWr32"), "{stdout}");
    assert!(stdout.contains("violations         none"), "{stdout}");
    // A valid Cpl (UR, Byte Count 4) too.
    let (code, stdout, stderr) = tlp(&["decode", "0a000000 02002004 00001200", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["kind"], "Cpl");
    assert_eq!(v["violations"], serde_json::json!([]));
}

#[test]
fn encode_refuses_a_4_kib_crossing_read_and_names_the_rule() {
    let (code, stdout, stderr) = tlp(&["encode", CROSSING_MRD]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stdout.is_empty(),
        "no bytes for a TLP that breaks a rule: {stdout}"
    );
    assert!(stderr.starts_with("error: "), "{stderr}");
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("crosses a 4 KiB boundary"), "{stderr}");
    assert!(errors[0].contains("§2.2.7.1"), "{stderr}");
    assert!(
        stderr.contains("allow_violations"),
        "says how to encode anyway: {stderr}"
    );
}

#[test]
fn allow_violations_encodes_the_crossing_read_anyway() {
    let json = CROSSING_MRD.replace('}', r#","allow_violations":true}"#);
    let (code, stdout, stderr) = tlp(&["encode", &json]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    // DW0 = MRd32 with Length field 0 (1024 DW); DW1 = 01:00.0, BE 1111b/1111b; DW2 = 0xffc.
    assert_eq!(stdout.trim(), "00000000 010000ff 00000ffc");
    // And what it encodes decodes again, as an error naming the same rule.
    let (code, _, stderr) = tlp(&["decode", stdout.trim()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("crosses a 4 KiB boundary"), "{stderr}");
}

#[test]
fn a_cpld_with_ur_status_is_refused() {
    let (code, stdout, stderr) = tlp(&[
        "encode",
        r#"{"kind":"CplD","status":"UR","requester_id":"01:00.0","payload":"00000000"}"#,
    ]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("Completion Status is UR"), "{stderr}");
    assert!(errors[0].contains("use Cpl"), "{stderr}");
    // Without data it is a proper completion.
    let (code, stdout, stderr) = tlp(&[
        "encode",
        r#"{"kind":"Cpl","status":"UR","requester_id":"01:00.0"}"#,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), "0a000000 00002004 01000000");
}

#[test]
fn decoding_a_cpld_whose_length_disagrees_with_byte_count_exits_2_and_shows_the_fields() {
    // CplD, Length 2, SC, Byte Count 4, Lower Address 0: 4 bytes need 1 DW, not 2 (§2.3.1.1).
    let hex = "4a000002 00000004 01002a00 11111111 22222222";
    let (code, stdout, stderr) = tlp(&["decode", hex]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    for field in [
        "kind               CplD",
        "length_dw          2",
        "byte_count         4",
        "lower_address      0x00",
        "requester_id       01:00.0",
        "payload            8 bytes: 11111111 22222222",
    ] {
        assert!(stderr.contains(field), "missing {field:?}: {stderr}");
    }
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("Length must be ceil((0 + 4) / 4) = 1 DW"),
        "{stderr}"
    );
    // The fields come before the violation.
    assert!(stderr.find("byte_count").unwrap() < stderr.find(errors[0]).unwrap());

    // With --json the listing is JSON: the stderr lines that are not `error:` lines parse.
    let (code, _, stderr) = tlp(&["decode", hex, "--json"]);
    assert_eq!(code, 2);
    let json: String = stderr
        .lines()
        .filter(|l| !l.starts_with("error: "))
        .collect::<Vec<_>>()
        .join("\n");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["kind"], "CplD");
    assert_eq!(v["length_dw"], 2);
    assert_eq!(v["violations"].as_array().unwrap().len(), 1);
    assert_eq!(error_lines(&stderr).len(), 1, "{stderr}");
}

#[test]
fn a_cpl_with_a_non_zero_length_decodes_and_reports_the_reserved_field() {
    // Cpl, UR, Byte Count 4, with the Reserved Length field = 5.
    let hex = "0a000005 02002004 00001200";
    let (code, stdout, stderr) = tlp(&["decode", hex]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(!stderr.contains("cannot decode"), "it decodes: {stderr}");
    for field in [
        "kind               Cpl",
        "length_dw          5 (Reserved for this kind: must be 0)",
        "status             UR",
        "completer_id       02:00.0",
    ] {
        assert!(stderr.contains(field), "missing {field:?}: {stderr}");
    }
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("Reserved field Length is non-zero (0x5)"),
        "{stderr}"
    );

    // The JSON carries the Reserved value, so encoding it (allowed) gives the same bytes.
    let (_, _, stderr) = tlp(&["decode", hex, "--json"]);
    let json: String = stderr
        .lines()
        .filter(|l| !l.starts_with("error: "))
        .collect::<Vec<_>>()
        .join("\n");
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let (code, _, stderr) = tlp(&["encode", &v.to_string()]);
    assert_eq!(code, 2, "refused without allow_violations");
    assert!(stderr.contains("Reserved field Length"), "{stderr}");
    v["allow_violations"] = true.into();
    let (code, stdout, stderr) = tlp(&["encode", &v.to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), hex);
}

#[test]
fn bytes_that_are_not_a_tlp_are_still_a_plain_error() {
    // Fmt 101b is Reserved: no fields to show, just the reason.
    let (code, stdout, stderr) = tlp(&["decode", "a0000001 00000000 00000000"]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("Reserved or not modelled"), "{stderr}");
}
