//! Helpers the end-to-end test files share: load a scenario (a shipped file or text), run
//! it, or get the message a bad one is refused with.

#![allow(dead_code)] // each test crate uses its own subset

use reports::VariantReport;
use snoopsim::run::{run_loaded, RunOptions};
use snoopsim::scenario;
use std::path::{Path, PathBuf};

/// A shipped scenario's path, from its file name (`"coherent-baseline.json"`).
pub fn scenario_path(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(file)
}

/// Runs a shipped scenario's variants.
pub fn run_file(file: &str) -> Vec<VariantReport> {
    let loaded = scenario::load(&scenario_path(file)).unwrap_or_else(|e| panic!("{e}"));
    run_loaded(&loaded, RunOptions { reproducible: true })
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .variants
}

/// Runs a scenario given as text.
pub fn run_text(text: &str) -> Vec<VariantReport> {
    let loaded = scenario::parse(Path::new("<test>"), text).unwrap_or_else(|e| panic!("{e}"));
    run_loaded(&loaded, RunOptions { reproducible: true })
        .unwrap_or_else(|e| panic!("{e}"))
        .variants
}

/// The message a scenario given as text is refused with; panics if it loads.
pub fn load_err(text: &str) -> String {
    scenario::parse(Path::new("<test>"), text)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_else(|| panic!("loaded: {text}"))
}
