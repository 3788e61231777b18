//! `snoopsim run` writes a CSV comparison next to the JSON report, and prints it on request.

use std::path::Path;
use std::process::Command;

/// The sweep the tests run: five values of `devices[0].read_tags`.
const SWEEP: &str = "../scenarios/read-tags-sweep.json";
const SWEPT_VALUES: [&str; 5] = ["1", "4", "16", "64", "256"];

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

/// Splits CSV that needs no quoting (checked) into records of fields.
fn records(csv: &str) -> Vec<Vec<&str>> {
    assert!(!csv.contains('"'), "unexpected quoting:\n{csv}");
    assert!(
        csv.ends_with('\n') && !csv.contains('\r'),
        "LF line ends:\n{csv}"
    );
    csv.lines().map(|l| l.split(',').collect()).collect()
}

fn run_sweep(format: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join(SWEEP);
    let (code, stdout, stderr) = snoopsim(&[
        "run",
        scenario.to_str().unwrap(),
        "--out",
        dir.path().to_str().unwrap(),
        "--format",
        format,
    ]);
    assert_eq!(code, 0, "{stderr}");
    (dir, stdout)
}

#[test]
fn run_writes_a_csv_with_one_row_per_variant_and_the_swept_values() {
    let (dir, stdout) = run_sweep("text");
    let csv_path = dir.path().join("read-tags-sweep.csv");
    assert!(dir.path().join("read-tags-sweep.json").is_file());
    assert!(csv_path.is_file(), "no CSV in {}", dir.path().display());
    assert!(
        stdout.contains(&format!("{}", csv_path.display())),
        "{stdout}"
    );
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["read-tags-sweep.csv", "read-tags-sweep.json"],
        "no temporary files left"
    );

    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let records = records(&csv);
    assert_eq!(records.len(), 1 + SWEPT_VALUES.len(), "{csv}");
    let header = &records[0];
    assert!(records.iter().all(|r| r.len() == header.len()), "{csv}");
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no column {name}: {header:?}"))
    };
    let swept = col("devices[0].read_tags");
    let (stop, gbps) = (col("stop_reason"), col("throughput_gbps"));
    for (row, value) in records[1..].iter().zip(SWEPT_VALUES) {
        assert_eq!(row[swept], value, "{csv}");
        assert_eq!(row[col("variant")], format!("devices[0].read_tags={value}"));
        assert_eq!(row[stop], "completed");
        let (whole, decimals) = row[gbps].split_once('.').expect("a decimal point");
        assert!(
            whole.parse::<u64>().is_ok() && decimals.len() == 3,
            "{}",
            row[gbps]
        );
    }
}

#[test]
fn format_csv_prints_the_same_csv_the_run_writes() {
    let (dir, stdout) = run_sweep("csv");
    let written = std::fs::read_to_string(dir.path().join("read-tags-sweep.csv")).unwrap();
    assert_eq!(stdout, written);
    assert!(
        stdout.starts_with("variant,devices[0].read_tags,stop_reason,"),
        "{stdout}"
    );
}
