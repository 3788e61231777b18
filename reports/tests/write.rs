//! Atomic writes: whole new contents or untouched old ones, and no temporary left behind.

mod common;

use std::fs;
use std::path::Path;

use reports::{write_atomic, write_report_json, Report, StopReason, WriteError};

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn replaces_an_existing_file_entirely_and_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.txt");
    fs::write(
        &path,
        "a much longer old content that must disappear completely",
    )
    .unwrap();
    write_atomic(&path, b"new").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"new");
    assert_eq!(entries(dir.path()), ["out.txt"]);
}

#[test]
fn creates_missing_parent_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/out.txt");
    write_atomic(&path, b"x").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"x");
    assert_eq!(entries(&dir.path().join("a/b")), ["out.txt"]);
}

#[test]
fn fails_naming_the_path_when_the_parent_is_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain");
    fs::write(&file, "I am a file").unwrap();
    let err = write_atomic(&file.join("out.txt"), b"x").unwrap_err();
    assert!(matches!(err, WriteError::CreateDir { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&*file.to_string_lossy()), "{message}");
    assert!(message.contains("os error"), "{message}");
    assert_eq!(fs::read(&file).unwrap(), b"I am a file");
    assert_eq!(entries(dir.path()), ["plain"]);
}

#[test]
fn failed_replace_leaves_target_and_no_temporary() {
    // The target is a non-empty directory: the rename fails after the temporary is written.
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("report.json");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("keep"), "kept").unwrap();
    let err = write_atomic(&target, b"x").unwrap_err();
    assert!(matches!(err, WriteError::Replace { .. }), "{err:?}");
    assert!(err.to_string().contains(&*target.to_string_lossy()));
    assert_eq!(entries(dir.path()), ["report.json"]);
    assert_eq!(fs::read(target.join("keep")).unwrap(), b"kept");
}

#[test]
fn report_json_is_written_as_stem_dot_json_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let report = common::report(vec![common::variant("v", StopReason::Completed)]);
    let path = write_report_json(dir.path(), "run1", &report).unwrap();
    assert_eq!(path, dir.path().join("run1.json"));
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text, reports::render_json(&report));
    let back: Report = serde_json::from_str(&text).unwrap();
    assert_eq!(back, report);
    assert_eq!(entries(dir.path()), ["run1.json"]);
}

#[test]
fn report_file_stem_must_be_a_plain_name() {
    let dir = tempfile::tempdir().unwrap();
    let report = common::report(Vec::new());
    for stem in ["", ".", "..", "../escape", "a/b"] {
        let err = write_report_json(dir.path(), stem, &report).unwrap_err();
        assert!(
            matches!(err, WriteError::InvalidFileStem { .. }),
            "{stem:?}"
        );
    }
    assert!(entries(dir.path()).is_empty());
}
