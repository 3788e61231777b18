//! The command line as a user meets it.

use std::process::Command;

fn snoopsim(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_snoopsim"))
        .args(args)
        .output()
        .expect("run snoopsim");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn demo_runs_with_no_arguments_and_writes_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let (code, stdout, stderr) = snoopsim(&["demo", "--out", out]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("== comparison"), "{stdout}");
    assert!(stdout.contains("stop: completed"));
    assert!(dir.path().join("demo-mps-sweep.json").is_file());
}

#[test]
fn link_model_json_has_the_documented_keys_and_the_hand_calculated_figure() {
    let (code, stdout, _) = snoopsim(&[
        "link-model",
        "--gen",
        "3",
        "--lanes",
        "8",
        "--mps",
        "256",
        "--mrrs",
        "512",
        "--sizes",
        "64,4096",
        "--json",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for k in ["gen", "lanes", "mps", "mrrs", "raw_gbps", "rows"] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for k in ["size", "write_gbps", "read_gbps", "mixed_gbps"] {
        assert!(rows[1].get(k).is_some(), "row missing {k}");
    }
    // 16 MWr of 276 wire bytes per 4 KiB at 7.877 GB/s × 371/372 (see pcie::bandwidth).
    let want = 4096.0 / (4416.0 / (8.0 * 8.0 * 128.0 / 130.0 / 8.0 * 371.0 / 372.0));
    let got = rows[1]["write_gbps"].as_f64().unwrap();
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
}

#[test]
fn link_model_rejects_impossible_links_with_exit_code_2() {
    for args in [
        ["link-model", "--gen", "7", "--lanes", "8"],
        ["link-model", "--gen", "3", "--lanes", "3"],
    ] {
        let (code, _, stderr) = snoopsim(&args);
        assert_eq!(code, 2, "{args:?}");
        assert!(stderr.contains("expected"), "{stderr}");
    }
}

#[test]
fn version_and_help_with_examples() {
    let (code, stdout, _) = snoopsim(&["--version"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("snoopsim "));
    let (code, stdout, _) = snoopsim(&["--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("Examples:") && stdout.contains("snoopsim demo"));
}

#[test]
fn run_writes_json_atomically_and_format_json_prints_the_same_report() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scenarios/stream-write-gen3x8.json"
    );
    let out = dir.path().to_str().unwrap();
    let (code, stdout, stderr) = snoopsim(&[
        "run",
        scenario,
        "--out",
        out,
        "--format",
        "json",
        "--reproducible",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let file = std::fs::read_to_string(dir.path().join("stream-write-gen3x8.json")).unwrap();
    assert_eq!(stdout, file);
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["stream-write-gen3x8.csv", "stream-write-gen3x8.json"],
        "no temporary files left"
    );
}

#[test]
fn tlp_decode_json_feeds_back_into_encode() {
    // MWr32, No Snoop, 1 DW at 0x1000 from 01:00.0 (PCIe Base 6.0 §2.2.7.1):
    // DW0 = Fmt 010b | Type 0 | Attr[0] (bit 12) | Length 1 = 0x40001001.
    let hex = "40001001 0100000f 00001000 78563412";
    let (code, json, stderr) = snoopsim(&["tlp", "decode", hex, "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["kind"], "MWr32");
    assert_eq!(v["no_snoop"], true);
    assert_eq!(v["address"], "0x1000");
    let (code, bytes, stderr) = snoopsim(&["tlp", "encode", &json]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(bytes.trim(), hex);
}

#[test]
fn tlp_decode_of_garbage_is_an_error_not_a_panic() {
    for bad in ["zz", "4000", "", "ffffffff ffffffff ffffffff"] {
        let (code, _, stderr) = snoopsim(&["tlp", "decode", bad]);
        assert_eq!(code, 2, "{bad:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(!stderr.contains("panicked"));
    }
}

#[test]
fn verify_explores_the_protocol_and_finds_hazards_only_with_no_snoop() {
    let (code, out, err) = snoopsim(&["verify", "--depth", "3", "--random-ops", "2000"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("invariant violations  0"), "{out}");
    assert!(out.contains("lost DMA write") && out.contains("stale device read"));
    let (code, out, err) = snoopsim(&[
        "verify",
        "--depth",
        "3",
        "--snooped-only",
        "--random-ops",
        "0",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("reachable in"), "{out}");
}
