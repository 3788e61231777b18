//! Bad scenario files: `snoopsim validate` and `snoopsim run` must reject each with exit
//! code 2 and one line `error: <file>:<line>:<col>: at <json.path>: <message>`, never panic,
//! and `run` must write no report.
//!
//! Positions are computed from where each test puts the offending token. A position must
//! point into that token: serde_json reports the token's last character, the checks made
//! after parsing its first, and either is accepted — the `}` after it or the enclosing
//! object is not.
//!
//! The tests at the end pin down bugs found while writing this file (now fixed).

use std::ffi::OsStr;
use std::ops::Range;
use std::path::Path;
use std::process::Command;
use tempfile::TempDir;

/// A valid scenario, pretty-printed, that the tests break one value at a time.
const TEMPLATE: &str = r#"{
  "name": "bad-input",
  "description": "the scenario the bad-input tests break",
  "seed": 7,
  "platform": {
    "pcie": {"gen": 3, "lanes": 8, "mps_bytes": 256, "mrrs_bytes": 512, "ecrc": false},
    "root_complex": {"rcb_bytes": 64, "clock_mhz": 1000},
    "dram": {"latency_ns": 80, "bandwidth_mbps": 25600}
  },
  "devices": [
    {"bdf": "01:00.0", "read_tags": 32, "name": "nic0"},
    {"bdf": "02:00.0", "read_tags": 8, "name": "nvme0"}
  ],
  "workload": {
    "stream": {
      "device": "nic0",
      "direction": "mixed",
      "transfer_bytes": 4096,
      "count": 16,
      "base": "0x1000_0000",
      "stride_bytes": 4096
    }
  }
}
"#;

/// Runs `snoopsim <args>`: (exit code, -1 if killed by a signal; stdout; stderr).
fn snoopsim<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(args: I) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_snoopsim"))
        .args(args)
        .output()
        .expect("snoopsim starts");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

/// 1-based line and column of byte `offset` in `text`; columns count characters.
fn line_col(text: &[u8], offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, col)
}

/// TEMPLATE with `from` (which must occur once) replaced by `to`, and the byte range of
/// `token`, the first occurrence within `to`, in the result.
fn edit(from: &str, to: &str, token: &str) -> (String, Range<usize>) {
    assert_eq!(TEMPLATE.matches(from).count(), 1, "{from:?} occurs once");
    let at = TEMPLATE.find(from).unwrap() + to.find(token).expect("token is in `to`");
    (TEMPLATE.replacen(from, to, 1), at..at + token.len())
}

/// The byte range of `token` where it first follows `before` in `text`.
fn span(text: &str, before: &str, token: &str) -> Range<usize> {
    let at = text
        .find(&format!("{before}{token}"))
        .expect("token is in text")
        + before.len();
    at..at + token.len()
}

/// Runs `validate` and `run --out` on `file` and checks the rejection: exit code 2, no
/// panic, one line naming the file, a position inside the ASCII token `at` of `text` (if
/// given), ": at <path>: " (if given) and `says`; `run` prints the same and writes no
/// report. Returns the line.
fn assert_rejected(
    file: &Path,
    text: &[u8],
    at: Option<Range<usize>>,
    path: Option<&str>,
    says: &str,
) -> String {
    let out = tempfile::tempdir().unwrap();
    let out = out.path().join("reports");
    let (code, _, stderr) = snoopsim([OsStr::new("validate"), file.as_os_str()]);
    let name = file.display().to_string();
    assert_eq!(code, 2, "exit code of validate; stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "one line per bad file:\n{stderr}"
    );
    assert!(stderr.starts_with(&format!("error: {name}")), "{stderr}");
    if let Some(at) = at {
        let want: Vec<String> = [at.start, at.end - 1]
            .iter()
            .map(|&i| line_col(text, i))
            .map(|(l, c)| format!("error: {name}:{l}:{c}: "))
            .collect();
        assert!(
            want.iter().any(|w| stderr.starts_with(w)),
            "expected the position of {:?}, one of {want:?}; got:\n{stderr}",
            String::from_utf8_lossy(text.get(at).unwrap_or_default()),
        );
    }
    if let Some(path) = path {
        assert!(stderr.contains(&format!(": at {path}: ")), "{stderr}");
    }
    assert!(stderr.contains(says), "expected {says:?} in:\n{stderr}");

    let (code, _, run_stderr) = snoopsim([
        OsStr::new("run"),
        file.as_os_str(),
        OsStr::new("--out"),
        out.as_os_str(),
    ]);
    assert_eq!(code, 2, "exit code of run; stderr:\n{run_stderr}");
    assert_eq!(run_stderr, stderr, "run reports like validate");
    assert_no_reports(&out);
    stderr
}

/// Writes `text` to a scenario file in a temporary directory and checks its rejection;
/// returns the error line.
fn reject(
    text: impl AsRef<[u8]>,
    at: Option<Range<usize>>,
    path: Option<&str>,
    says: &str,
) -> String {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("scenario.json");
    std::fs::write(&file, text.as_ref()).unwrap();
    assert_rejected(&file, text.as_ref(), at, path, says)
}

/// Checks that `out` (which may not exist) holds no `.json` report.
fn assert_no_reports(out: &Path) {
    let reports: Vec<_> = std::fs::read_dir(out)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension() == Some(OsStr::new("json")))
        .map(|e| e.path())
        .collect();
    assert!(reports.is_empty(), "run wrote reports: {reports:?}");
}

#[test]
fn template_scenario_is_valid() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("scenario.json");
    std::fs::write(&file, TEMPLATE).unwrap();
    let (code, stdout, stderr) = snoopsim([OsStr::new("validate"), file.as_os_str()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("ok: "), "{stdout}");
}

#[test]
fn every_scenario_in_the_repository_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension() == Some(OsStr::new("json")))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenarios in {}", dir.display());
    let (code, stdout, stderr) = snoopsim(
        std::iter::once(OsStr::new("validate")).chain(files.iter().map(|f| f.as_os_str())),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for f in &files {
        assert!(
            stdout.contains(&format!("ok: {}", f.display())),
            "{} not validated:\n{stdout}",
            f.display()
        );
    }
}

// ---- Files that are not scenario text ----

#[test]
fn missing_file_is_reported_without_position() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("nope.json");
    let line = assert_rejected(&file, b"", None, None, "cannot read the scenario file");
    assert!(
        line.starts_with(&format!("error: {}: ", file.display())),
        "{line}"
    );
}

#[test]
fn directory_is_not_a_scenario_file() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("looks-like.json");
    std::fs::create_dir(&file).unwrap();
    let line = assert_rejected(&file, b"", None, None, "is a directory");
    assert!(
        line.starts_with(&format!("error: {}: ", file.display())),
        "{line}"
    );
}

#[test]
fn file_over_16_mib_is_refused_unread() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("huge.json");
    let f = std::fs::File::create(&file).unwrap();
    f.set_len((16 << 20) + 1).unwrap(); // sparse: nothing is written
    let line = assert_rejected(&file, b"", None, None, "at most 16777216 bytes");
    assert!(
        line.starts_with(&format!("error: {}: ", file.display())),
        "{line}"
    );
}

#[test]
fn empty_file_is_reported_at_1_1() {
    reject("", Some(0..1), None, "the file is empty");
}

#[test]
fn whitespace_only_file_counts_as_empty() {
    reject(" \n\t\n  ", Some(0..1), None, "the file is empty");
}

#[test]
fn truncated_file_is_reported_at_its_end() {
    let demo = include_str!("../../scenarios/demo-mps-sweep.json");
    let mut cut = demo.len() / 2;
    while !demo.is_char_boundary(cut) {
        cut -= 1;
    }
    let text = demo[..cut].trim_end();
    reject(
        text,
        Some(text.len() - 1..text.len()),
        None,
        "is it truncated?",
    );
}

#[test]
fn non_utf8_byte_is_reported_at_its_line_and_column() {
    let text = b"{\n  \"name\": \"x\",\n  \"description\": \"caf\xff\",\n  \"seed\": 1\n}\n";
    let at = text.iter().position(|&b| b == 0xff).unwrap();
    assert_eq!(line_col(text, at).0, 3);
    reject(text, Some(at..at + 1), None, "not UTF-8");
}

#[test]
fn trailing_garbage_after_the_object_is_reported_where_it_starts() {
    let text = format!("{TEMPLATE}  garbage\n");
    let at = text.find("garbage").unwrap();
    reject(&text, Some(at..at + 7), None, "trailing characters");
}

#[test]
fn top_level_must_be_an_object_even_if_deeply_nested() {
    let text = "[".repeat(100_000);
    reject(&text, Some(0..1), None, "expected a JSON object");
}

/// The position is checked by `type_error_on_an_array_points_at_the_array`.
#[test]
fn deep_nesting_where_a_string_belongs_is_a_type_error() {
    let text = format!("{{\"name\": {}", "[".repeat(100_000));
    reject(
        &text,
        None,
        Some("name"),
        "invalid type: sequence, expected a string",
    );
}

#[test]
fn deep_nesting_in_a_sweep_value_stops_at_the_recursion_limit() {
    let (mut text, _) = edit("\n  }\n}\n", "\n  },\n  \"sweep\": {\"seed\": [", "sweep");
    text.push_str(&"[".repeat(100_000));
    // serde_json refuses the bracket that opens the 128th level; the path has an index for
    // each level below the root object, the sweep object and the list.
    const LIMIT: usize = 128;
    let mut depth = 0_usize;
    let at = text
        .bytes()
        .position(|b| {
            match b {
                b'{' | b'[' => depth += 1,
                b'}' | b']' => depth -= 1,
                _ => {}
            }
            depth == LIMIT
        })
        .unwrap();
    let path = format!("sweep.seed{}", "[0]".repeat(LIMIT - 3));
    reject(
        &text,
        Some(at..at + 1),
        Some(&path),
        "recursion limit exceeded",
    );
}

// ---- Types and field names ----

#[test]
fn string_where_a_number_is_expected_is_a_type_error() {
    let (text, at) = edit("\"lanes\": 8", "\"lanes\": \"8\"", "\"8\"");
    reject(&text, Some(at), Some("platform.pcie.lanes"), "expected u32");
}

#[test]
fn number_where_a_string_is_expected_is_a_type_error() {
    let (text, at) = edit("\"bdf\": \"01:00.0\"", "\"bdf\": 256", "256");
    reject(&text, Some(at), Some("devices[0].bdf"), "expected a string");
}

#[test]
fn unknown_top_level_field_is_rejected() {
    let (text, at) = edit("\"seed\": 7,", "\"seed\": 7, \"sed\": 8,", "\"sed\"");
    reject(
        &text,
        Some(at),
        Some("sed"),
        "unknown field `sed`, expected one of",
    );
}

#[test]
fn unknown_nested_field_is_rejected_with_its_full_path() {
    let (text, at) = edit("\"lanes\": 8", "\"lane\": 8", "\"lane\"");
    reject(
        &text,
        Some(at),
        Some("platform.pcie.lane"),
        "unknown field `lane`, expected one of",
    );
}

// ---- Out-of-range values ----

#[test]
fn lanes_must_be_a_pcie_link_width() {
    for bad in ["0", "3"] {
        let (text, at) = edit("\"lanes\": 8", &format!("\"lanes\": {bad}"), bad);
        reject(
            &text,
            Some(at),
            Some("platform.pcie.lanes"),
            "expected one of",
        );
    }
}

#[test]
fn mps_must_be_a_power_of_two_from_128_to_4096() {
    for bad in ["384", "64", "8192"] {
        let (text, at) = edit("\"mps_bytes\": 256", &format!("\"mps_bytes\": {bad}"), bad);
        let says = "expected a power of two from 128 to 4096";
        reject(&text, Some(at), Some("platform.pcie.mps_bytes"), says);
    }
}

#[test]
fn mrrs_must_be_a_power_of_two_from_128_to_4096() {
    let (text, at) = edit("\"mrrs_bytes\": 512", "\"mrrs_bytes\": 100", "100");
    let says = "expected a power of two from 128 to 4096";
    reject(&text, Some(at), Some("platform.pcie.mrrs_bytes"), says);
}

#[test]
fn gen_must_be_1_to_6() {
    for bad in ["0", "7"] {
        let (text, at) = edit("\"gen\": 3", &format!("\"gen\": {bad}"), bad);
        reject(
            &text,
            Some(at),
            Some("platform.pcie.gen"),
            "expected 1 to 6",
        );
    }
}

#[test]
fn rcb_must_be_64_or_128() {
    let (text, at) = edit("\"rcb_bytes\": 64", "\"rcb_bytes\": 96", "96");
    let path = Some("platform.root_complex.rcb_bytes");
    reject(&text, Some(at), path, "expected 64 or 128");
}

#[test]
fn bdf_device_number_must_fit_5_bits() {
    let (text, at) = edit(
        "\"bdf\": \"01:00.0\"",
        "\"bdf\": \"01:20.0\"",
        "\"01:20.0\"",
    );
    reject(&text, Some(at), Some("devices[0].bdf"), "device 00-1f");
}

#[test]
fn address_must_be_hex_with_0x() {
    let (text, at) = edit("\"0x1000_0000\"", "\"1000\"", "\"1000\"");
    reject(
        &text,
        Some(at),
        Some("workload.stream.base"),
        "expected a hex string",
    );
}

#[test]
fn read_tags_must_be_1_to_768() {
    for bad in ["0", "769", "2000"] {
        let (text, at) = edit("\"read_tags\": 32", &format!("\"read_tags\": {bad}"), bad);
        reject(
            &text,
            Some(at),
            Some("devices[0].read_tags"),
            "expected 1 to 768",
        );
    }
}

/// The position is checked by `stream_too_large_error_points_into_the_stream_object`.
#[test]
fn stream_moving_more_than_4_gib_is_rejected_at_workload_stream() {
    let (text, _) = edit(
        "\"transfer_bytes\": 4096,\n      \"count\": 16,",
        "\"transfer_bytes\": 67108864,\n      \"count\": 4000000000,",
        "4000000000",
    );
    reject(
        &text,
        None,
        Some("workload.stream"),
        "lower count or transfer_bytes",
    );
}

// ---- Checks across fields ----

#[test]
fn workload_device_must_exist() {
    let (text, at) = edit("\"device\": \"nic0\"", "\"device\": \"ghost\"", "\"ghost\"");
    let says = "no device is named \"ghost\": expected one of \"nic0\", \"nvme0\"";
    reject(&text, Some(at), Some("workload.stream.device"), says);
}

#[test]
fn device_names_must_be_unique() {
    let (text, at) = edit("\"name\": \"nvme0\"", "\"name\": \"nic0\"", "\"nic0\"");
    let says = "device name \"nic0\" is already used by devices[0]";
    reject(&text, Some(at), Some("devices[1].name"), says);
}

// ---- Sweeps ----

/// TEMPLATE with `"sweep": {sweep}` added, and the range of `token` within `sweep`.
fn with_sweep(sweep: &str, token: &str) -> (String, Range<usize>) {
    edit(
        "\n  }\n}\n",
        &format!("\n  }},\n  \"sweep\": {sweep}\n}}\n"),
        token,
    )
}

#[test]
fn sweep_key_must_name_a_field() {
    let (text, at) = with_sweep(r#"{"platform.pcie.lane": [4, 8]}"#, "[4, 8]");
    let path = Some(r#"sweep["platform.pcie.lane"]"#);
    reject(&text, Some(at), path, "names no field of this scenario");
}

#[test]
fn sweep_value_out_of_range_points_at_the_value_and_names_the_variant() {
    let (text, at) = with_sweep(r#"{"platform.pcie.lanes": [4, 3, 8]}"#, "3");
    let path = Some(r#"sweep["platform.pcie.lanes"][1]"#);
    let says = "in variant platform.pcie.lanes=3: at platform.pcie.lanes: 3 lanes";
    reject(&text, Some(at), path, says);
}

#[test]
fn sweep_list_must_not_be_empty() {
    let (text, at) = with_sweep(r#"{"platform.pcie.lanes": []}"#, "[]");
    let path = Some(r#"sweep["platform.pcie.lanes"]"#);
    reject(&text, Some(at), path, "expected a non-empty list");
}

// ---- Several files ----

#[test]
fn only_bad_files_are_reported_one_line_each() {
    let dir = TempDir::new().unwrap();
    let write = |name: &str, text: &str| {
        let f = dir.path().join(name);
        std::fs::write(&f, text).unwrap();
        f
    };
    let good1 = write("good1.json", TEMPLATE);
    let bad1 = write(
        "bad1.json",
        &TEMPLATE.replacen("\"lanes\": 8", "\"lanes\": 3", 1),
    );
    let good2 = write("good2.json", TEMPLATE);
    let bad2 = write(
        "bad2.json",
        &TEMPLATE.replacen("\"gen\": 3", "\"gen\": 7", 1),
    );
    let files = [&good1, &bad1, &good2, &bad2];
    let pcie_line = line_col(TEMPLATE.as_bytes(), TEMPLATE.find("\"pcie\"").unwrap()).0;
    let out = dir.path().join("reports");
    let validate = std::iter::once(OsStr::new("validate")).chain(files.map(|f| f.as_os_str()));
    let run = std::iter::once(OsStr::new("run"))
        .chain(files.map(|f| f.as_os_str()))
        .chain([OsStr::new("--out"), out.as_os_str()]);
    for (code, stdout, stderr) in [snoopsim(validate), snoopsim(run)] {
        assert_eq!(code, 2, "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(stderr.lines().count(), 2, "{stderr}");
        let bad1_line = format!("error: {}:{pcie_line}:", bad1.display());
        let bad2_line = format!("error: {}:{pcie_line}:", bad2.display());
        assert!(stderr.contains(&bad1_line), "{stderr}");
        assert!(stderr.contains(&bad2_line), "{stderr}");
        assert!(stderr.contains("at platform.pcie.lanes: "), "{stderr}");
        assert!(stderr.contains("at platform.pcie.gen: "), "{stderr}");
        for good in [&good1, &good2] {
            let name = good.display().to_string();
            assert!(
                !stderr.contains(&name) && !stdout.contains(&name),
                "{stdout}{stderr}"
            );
        }
        assert_no_reports(&out);
    }
}

// ---- Regressions: bugs found while writing these tests ----

#[test]
fn range_error_on_the_last_member_points_at_the_value() {
    let text = TEMPLATE.replacen("\"lanes\": 8, ", "", 1).replacen(
        "\"ecrc\": false}",
        "\"ecrc\": false,\n      \"lanes\": 3\n    }",
        1,
    );
    let at = span(&text, "\"lanes\": ", "3");
    reject(&text, Some(at), Some("platform.pcie.lanes"), "3 lanes");
    let text = TEMPLATE.replacen(
        "{\"bdf\": \"01:00.0\", \"read_tags\": 32, \"name\": \"nic0\"}",
        "{\"name\": \"nic0\", \"bdf\": \"01:20.0\"}",
        1,
    );
    let at = span(&text, "\"bdf\": ", "\"01:20.0\"");
    reject(&text, Some(at), Some("devices[0].bdf"), "device 00-1f");
}

#[test]
fn stream_too_large_error_points_into_the_stream_object() {
    let (text, _) = edit(
        "\"transfer_bytes\": 4096,\n      \"count\": 16,",
        "\"transfer_bytes\": 67108864,\n      \"count\": 4000000000,",
        "4000000000",
    );
    let start = text.find("\"stream\": {").unwrap() + "\"stream\": ".len();
    let end = start + text[start..].find('}').unwrap() + 1;
    reject(
        &text,
        Some(start..end),
        Some("workload.stream"),
        "lower count",
    );
}

#[test]
fn type_error_on_an_array_points_at_the_array() {
    let text = format!("{{\"name\": {}", "[".repeat(100_000));
    let at = text.find('[').unwrap();
    reject(&text, Some(at..at + 1), Some("name"), "expected a string");
    let (text, at) = edit("\"name\": \"nic0\"", "\"name\": [\"nic0\"]", "[\"nic0\"]");
    reject(
        &text,
        Some(at),
        Some("devices[0].name"),
        "expected a string",
    );
}

#[test]
fn sweep_value_making_the_stream_too_large_is_blamed_on_that_value() {
    let (text, _) = with_sweep(r#"{"workload.stream.count": [16, 4000000000]}"#, "16");
    let text = text.replacen(
        "\"transfer_bytes\": 4096",
        "\"transfer_bytes\": 67108864",
        1,
    );
    let at = span(&text, "[16, ", "4000000000");
    let path = Some(r#"sweep["workload.stream.count"][1]"#);
    reject(
        &text,
        Some(at),
        path,
        "in variant workload.stream.count=4000000000",
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    let (text, at) = edit(
        "\"the scenario the bad-input tests break\",",
        "\"µs → ns\", \"note\": 1,",
        "\"note\"",
    );
    reject(&text, Some(at), Some("note"), "unknown field `note`");
}

#[test]
fn duplicate_field_error_names_its_path() {
    let (text, _) = edit("\"seed\": 7,", "\"seed\": 7, \"seed\": 8,", "8");
    let at = span(&text, "7, ", "\"seed\"");
    reject(&text, Some(at), Some("seed"), "duplicate field `seed`");
}

#[test]
fn truncated_file_path_has_no_placeholder_step() {
    let text = &TEMPLATE[..TEMPLATE.find("\"rcb_").unwrap() + 3];
    let line = reject(
        text,
        Some(text.len() - 1..text.len()),
        None,
        "is it truncated?",
    );
    assert!(!line.contains(".?:"), "{line}");
}

#[test]
fn workload_with_two_kinds_is_not_called_invalid_json() {
    let (text, at) = edit(
        "\"stride_bytes\": 4096\n    }",
        "\"stride_bytes\": 4096\n    },\n    \"program\": {\"devices\": {}}",
        "\"program\"",
    );
    // Any wording that does not call valid JSON invalid will do.
    let line = reject(&text, Some(at), Some("workload"), "");
    assert!(!line.contains("not valid JSON"), "{line}");
}

#[test]
fn latin1_byte_message_is_accurate() {
    let mut text = TEMPLATE.replacen("break\"", "caf?\"", 1).into_bytes();
    let at = text.iter().position(|&b| b == b'?').unwrap();
    text[at] = 0xe9; // "café" in Latin-1
    let line = reject(&text, Some(at..at + 1), None, "not UTF-8");
    assert!(!line.contains("cannot start a character"), "{line}");
}

#[test]
fn sweep_entry_type_error_quotes_the_dotted_key() {
    let (text, at) = with_sweep(r#"{"platform.pcie.lanes": 8}"#, "8");
    let path = Some(r#"sweep["platform.pcie.lanes"]"#);
    reject(&text, Some(at), path, "expected a sequence");
}

// ---- Cross-field rules ----

#[test]
fn posted_data_credits_must_hold_one_max_payload_write() {
    // MPS 256 needs 16 data credits; 8 would stall the first write forever.
    let (text, _) = edit(
        "\"root_complex\": {\"rcb_bytes\": 64,",
        "\"root_complex\": {\"credits\": {\"posted_data\": 8}, \"rcb_bytes\": 64,",
        "8",
    );
    let at = span(&text, "\"posted_data\": ", "8");
    reject(
        &text,
        Some(at),
        Some("platform.root_complex.credits.posted_data"),
        "expected at least 16 or 0 (infinite)",
    );
}

#[test]
fn a_stream_of_billions_of_tiny_transfers_is_refused_as_too_long_to_run() {
    // 4 GiB in 1-byte transfers is within the byte budget but needs ~8.6e9 TLPs.
    let (text, at) = edit(
        "\"transfer_bytes\": 4096,\n      \"count\": 16,",
        "\"transfer_bytes\": 1,\n      \"count\": 2000000000,",
        "2000000000",
    );
    reject(
        &text,
        Some(at),
        Some("workload.stream.count"),
        "lower the count",
    );
}

#[test]
fn a_sweep_whose_variants_together_are_too_long_to_run_is_refused() {
    // Each variant: 40 M writes of 64 bytes = 40 M TLPs (under the per-variant cap);
    // 16 seeds of it are 640 M TLPs.
    let (text, _) = edit(
        "\"direction\": \"mixed\",\n      \"transfer_bytes\": 4096,\n      \"count\": 16,",
        "\"direction\": \"write\",\n      \"transfer_bytes\": 64,\n      \"count\": 40000000,",
        "40000000",
    );
    let seeds: Vec<String> = (0..16).map(|i| i.to_string()).collect();
    let text = text.replacen(
        "\"seed\": 7,",
        &format!(
            "\"seed\": 7,\n  \"sweep\": {{\"seed\": [{}]}},",
            seeds.join(", ")
        ),
        1,
    );
    let at = span(&text, "\"sweep\": ", "{");
    reject(&text, Some(at), Some("sweep"), "sweep fewer values");
}
