//! Scenario files: loading, checking, and expanding sweeps into variants.
//!
//! Loading never panics on any input. Every error names the file, the line and column, the
//! JSON path and what was expected ([`ScenarioError`]); the CLI turns it into exit code 2.

pub mod amdvi;
mod check;
pub mod iommu;
mod locate;
pub mod software;
pub mod spec;
pub mod templates;
pub mod units;
pub mod values;
pub mod workload;

use check::check;

pub use locate::{keys_at, line_col, locate, locate_key, Step};
pub use spec::*;
pub use workload::*;

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest scenario file accepted: 16 MiB.
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// Most variants one sweep may expand to.
pub const MAX_VARIANTS: usize = 1024;

/// A scenario that cannot be run, and where the problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line and column, when the problem has a place in the text.
    pub position: Option<(usize, usize)>,
    /// JSON path of the offending value (`platform.pcie.lanes`, `devices[0].bdf`).
    pub path: Option<String>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        if let Some(path) = &self.path {
            write!(f, ": at {path}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ScenarioError {}

/// One runnable variant of a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// "base" without a sweep, else `path=value, ...`.
    pub name: String,
    /// The swept values of this variant, by JSON path.
    pub params: BTreeMap<String, Value>,
    /// The scenario with those values applied.
    pub scenario: Scenario,
}

/// A checked scenario file.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Where it came from.
    pub file: PathBuf,
    /// The scenario as written (defaults applied).
    pub scenario: Scenario,
    /// Its variants, in sweep order (sweep keys sorted, last key varying fastest).
    pub variants: Vec<Variant>,
}

/// Reads, parses and checks a scenario file, and expands its sweep.
pub fn load(file: &Path) -> Result<Loaded, ScenarioError> {
    let err = |position, path: Option<String>, message: String| ScenarioError {
        file: file.to_owned(),
        position,
        path,
        message,
    };
    let meta = std::fs::metadata(file)
        .map_err(|e| err(None, None, format!("cannot read the scenario file: {e}")))?;
    if meta.is_dir() {
        return Err(err(
            None,
            None,
            "is a directory: expected a scenario JSON file".to_owned(),
        ));
    }
    // Read at most one byte past the limit: devices and pipes report no size.
    let too_big = |n: u64| {
        err(
            None,
            None,
            format!("is {n} bytes or more: a scenario file may be at most {MAX_FILE_BYTES} bytes"),
        )
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_big(meta.len()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| err(None, None, format!("cannot read the scenario file: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big(bytes.len() as u64));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let valid = std::str::from_utf8(&e.as_bytes()[..at]).unwrap_or("");
        let seq: Vec<String> = e.as_bytes()[at..]
            .iter()
            .take(e.utf8_error().error_len().unwrap_or(1).max(1))
            .map(|b| format!("{b:#04x}"))
            .collect();
        err(
            Some(line_col(valid, at)),
            None,
            format!(
                "the file is not UTF-8 text: the byte sequence {} is not valid UTF-8 (a Latin-1 \
                 or binary file?); scenario files are JSON, which is UTF-8",
                seq.join(" ")
            ),
        )
    })?;
    parse(file, &text)
}

/// Parses and checks scenario `text` (as if read from `file`), and expands its sweep.
pub fn parse(file: &Path, text: &str) -> Result<Loaded, ScenarioError> {
    let err = |position, path: Option<String>, message: String| ScenarioError {
        file: file.to_owned(),
        position,
        path,
        message,
    };
    if text.trim().is_empty() {
        return Err(err(
            Some((1, 1)),
            None,
            "the file is empty: expected a JSON object with at least \"name\", \"seed\", \
             \"devices\" and \"workload\""
                .to_owned(),
        ));
    }
    // A byte-order mark is not JSON, but editors write one; skip it.
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let skipped = text.len() - body.len();
    if !body.trim_start().starts_with('{') {
        let at = skipped + body.len() - body.trim_start().len();
        return Err(err(
            Some(line_col(text, at)),
            None,
            "expected a JSON object (`{ ... }`) at the top level of a scenario file".to_owned(),
        ));
    }
    let json_err = |steps: Vec<Step>, e: &serde_json::Error| {
        let (position, message) = place_json_error(body, &steps, e);
        // Columns on the first line count the skipped byte-order mark as a character.
        let position = position.map(|(l, c)| (l, if l == 1 && skipped > 0 { c + 1 } else { c }));
        err(
            position,
            (!steps.is_empty()).then(|| render_path(&steps)),
            message,
        )
    };
    let mut de = serde_json::Deserializer::from_str(body);
    let scenario: Scenario = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let mut steps = path_steps(e.path());
        // serde names a repeated field in its message only; put it in the path too.
        let msg = e.inner().to_string();
        if let Some(field) = msg
            .strip_prefix("duplicate field `")
            .and_then(|r| r.split('`').next())
        {
            steps.push(Step::Key(field.to_owned()));
        }
        json_err(steps, e.inner())
    })?;
    de.end().map_err(|e| json_err(Vec::new(), &e))?;
    check(&scenario).map_err(|(steps, msg)| {
        // A value left to its default is not in the text: point at its nearest ancestor.
        let position = (0..=steps.len())
            .rev()
            .find_map(|n| locate(text, &steps[..n]));
        err(position, Some(render_path(&steps)), msg)
    })?;
    let variants = expand_sweep(&scenario).map_err(|e| {
        let position = locate(text, &e.steps).or_else(|| locate(text, &e.steps[..1]));
        err(position, Some(render_path(&e.steps)), e.message)
    })?;
    Ok(Loaded {
        file: file.to_owned(),
        scenario,
        variants,
    })
}

/// Steps of a path recorded by serde_path_to_error; unknown segments (a key cut short by a
/// truncated file) are dropped.
fn path_steps(path: &serde_path_to_error::Path) -> Vec<Step> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|seg| match seg {
            Segment::Seq { index } => Some(Step::Index(*index)),
            Segment::Map { key } => Some(Step::Key(key.clone())),
            Segment::Enum { variant } => Some(Step::Key(variant.clone())),
            Segment::Unknown => None,
        })
        .collect()
}

/// Where to report a parse error, and what to say.
///
/// A value the format rejects (wrong type, out of range, unknown field) is reported at the
/// start of that value, found by its path — serde_json's own position is just past it.
/// Syntax errors keep the parser's position, turned from a byte into a character column.
fn place_json_error(
    text: &str,
    steps: &[Step],
    e: &serde_json::Error,
) -> (Option<(usize, usize)>, String) {
    use serde_json::error::Category;
    let full = e.to_string();
    let tail = format!(" at line {} column {}", e.line(), e.column());
    let msg = full.strip_suffix(&tail).unwrap_or(&full).to_owned();
    let parser_pos = char_position(text, e.line(), e.column());
    match e.classify() {
        Category::Eof => (
            parser_pos,
            format!("the file ends in the middle of the JSON ({msg}): is it truncated?"),
        ),
        Category::Syntax => match serde_json::from_str::<Value>(text) {
            // Valid JSON that does not fit: an object naming no kind, or several.
            Ok(doc) => {
                let value = steps.iter().try_fold(&doc, |v, s| match s {
                    Step::Key(k) => v.get(k),
                    Step::Index(i) => v.get(i),
                });
                match value {
                    Some(Value::Object(m)) if m.len() != 1 => {
                        // Point at the second kind, in document order.
                        let keys = keys_at(text, steps);
                        let names: Vec<String> =
                            keys.iter().map(|(k, _)| format!("\"{k}\"")).collect();
                        let at = keys.get(1).map(|(_, p)| *p).or(locate(text, steps));
                        let message = format!(
                            "expected an object with exactly one key naming its kind, found {} \
                             keys ({})",
                            m.len(),
                            names.join(", ")
                        );
                        (at, message)
                    }
                    _ => (
                        locate(text, steps).or(parser_pos),
                        format!("this value does not fit the scenario format here ({msg})"),
                    ),
                }
            }
            Err(_) => (parser_pos, format!("not valid JSON: {msg}")),
        },
        Category::Io => (parser_pos, format!("cannot read the JSON: {msg}")),
        // A repeated key: the parser stops right after the second one.
        Category::Data if msg.starts_with("duplicate field") => (parser_pos, msg),
        Category::Data if msg.starts_with("unknown field") => {
            (locate_key(text, steps).or(parser_pos), msg)
        }
        Category::Data => (locate(text, steps).or(parser_pos), msg),
    }
}

/// serde_json counts columns in bytes; people count characters.
fn char_position(text: &str, line: usize, byte_col: usize) -> Option<(usize, usize)> {
    if line == 0 {
        return None;
    }
    let src = text.split('\n').nth(line - 1).unwrap_or("");
    let upto = src
        .char_indices()
        .take_while(|(i, _)| *i < byte_col.saturating_sub(1))
        .count();
    Some((line, upto + 1))
}

/// `a.b[2].c` from steps.
pub fn render_path(steps: &[Step]) -> String {
    let mut s = String::new();
    for step in steps {
        match step {
            Step::Key(k) if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Step::Key(k) => s.push_str(&format!("[{k:?}]")),
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn key(k: &str) -> Step {
    Step::Key(k.to_owned())
}

/// A sweep problem, located by steps into the original file.
struct SweepError {
    steps: Vec<Step>,
    message: String,
}

/// Splits `platform.pcie.lanes` or `devices[0].read_tags` into steps.
fn parse_sweep_key(k: &str) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    for part in k.split('.') {
        let (name, mut rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        if name.is_empty() {
            return None;
        }
        steps.push(key(name));
        while !rest.is_empty() {
            let (idx, after) = rest.split_once(']')?;
            steps.push(Step::Index(idx.parse().ok()?));
            rest = after.strip_prefix('[').unwrap_or(after);
            if !after.is_empty() && !after.starts_with('[') {
                return None;
            }
        }
    }
    Some(steps)
}

fn slot<'v>(v: &'v mut Value, steps: &[Step]) -> Option<&'v mut Value> {
    steps.iter().try_fold(v, |v, s| match s {
        Step::Key(k) => v.as_object_mut()?.get_mut(k),
        Step::Index(i) => v.as_array_mut()?.get_mut(*i),
    })
}

fn expand_sweep(base: &Scenario) -> Result<Vec<Variant>, SweepError> {
    let Some(sweep) = &base.sweep else {
        return Ok(vec![Variant {
            name: "base".to_owned(),
            params: BTreeMap::new(),
            scenario: base.clone(),
        }]);
    };
    let mut template = base.clone();
    template.sweep = None;
    let template = serde_json::to_value(&template).map_err(|e| SweepError {
        steps: vec![key("sweep")],
        message: format!("internal error: cannot re-encode the scenario: {e}"),
    })?;
    let mut axes = Vec::new();
    let mut combos: usize = 1;
    for (k, values) in sweep {
        let here = vec![key("sweep"), key(k)];
        let steps = parse_sweep_key(k).ok_or_else(|| SweepError {
            steps: here.clone(),
            message: format!("\"{k}\" is not a JSON path: expected dotted keys like \"platform.pcie.lanes\" or \"devices[0].read_tags\""),
        })?;
        if matches!(steps.first(), Some(Step::Key(f)) if f == "sweep" || f == "name") {
            return Err(SweepError {
                steps: here,
                message: format!(
                    "\"{k}\" cannot be swept: the name and the sweep itself are fixed"
                ),
            });
        }
        if slot(&mut template.clone(), &steps).is_none() {
            return Err(SweepError {
                steps: here,
                message: format!("\"{k}\" names no field of this scenario: expected the path of a value present in the scenario (defaults included), like \"platform.pcie.lanes\""),
            });
        }
        if values.is_empty() {
            return Err(SweepError {
                steps: here,
                message: "no values: expected a non-empty list".to_owned(),
            });
        }
        combos = combos.saturating_mul(values.len());
        axes.push((k.clone(), steps, values));
    }
    if combos > MAX_VARIANTS {
        return Err(SweepError {
            steps: vec![key("sweep")],
            message: format!(
                "the sweep expands to {combos} variants: at most {MAX_VARIANTS} are allowed"
            ),
        });
    }
    let mut variants = Vec::with_capacity(combos);
    let mut total_tlps: u128 = 0;
    for n in 0..combos {
        // Mixed-radix digits of n, last axis fastest.
        let mut rest = n;
        let mut pick = vec![0; axes.len()];
        for (i, (_, _, values)) in axes.iter().enumerate().rev() {
            pick[i] = rest % values.len();
            rest /= values.len();
        }
        let mut v = template.clone();
        let mut params = BTreeMap::new();
        for ((k, steps, values), &i) in axes.iter().zip(&pick) {
            if let Some(s) = slot(&mut v, steps) {
                *s = values[i].clone();
            }
            params.insert(k.clone(), values[i].clone());
        }
        let name = params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ");
        // The swept value a problem at `err_path` comes from: the one at that path, inside
        // it, or containing it.
        let blame = |err_path: &str| {
            axes.iter()
                .zip(&pick)
                .find(|((k, _, _), _)| err_path.starts_with(k.as_str()) || k.starts_with(err_path))
                .map(|((k, _, _), &i)| vec![key("sweep"), key(k), Step::Index(i)])
                .unwrap_or_else(|| vec![key("sweep")])
        };
        let scenario: Scenario = serde_path_to_error::deserialize(&v).map_err(|e| {
            let path = render_path(&path_steps(e.path()));
            SweepError {
                steps: blame(&path),
                message: format!("in variant {name}: at {path}: {}", e.inner()),
            }
        })?;
        check(&scenario).map_err(|(steps, msg)| {
            let path = render_path(&steps);
            SweepError {
                steps: blame(&path),
                message: format!("in variant {name}: at {path}: {msg}"),
            }
        })?;
        total_tlps += check::tlp_estimate(&scenario).0;
        variants.push(Variant {
            name,
            params,
            scenario,
        });
    }
    if total_tlps > check::MAX_TLPS_PER_SWEEP {
        return Err(SweepError {
            steps: vec![key("sweep")],
            message: format!(
                "the {} variants need about {total_tlps} TLPs together, more than the {} a sweep \
                 can simulate in reasonable time: sweep fewer values or shrink the workload",
                variants.len(),
                check::MAX_TLPS_PER_SWEEP
            ),
        });
    }
    Ok(variants)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_keys_parse_into_steps() {
        assert_eq!(
            parse_sweep_key("devices[0].read_tags"),
            Some(vec![key("devices"), Step::Index(0), key("read_tags")])
        );
        assert_eq!(
            parse_sweep_key("a[1][2]"),
            Some(vec![key("a"), Step::Index(1), Step::Index(2)])
        );
        for bad in ["", "a..b", "a[x]", "a[1]b", ".a"] {
            assert_eq!(parse_sweep_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn render_path_quotes_keys_that_are_not_identifiers() {
        let p = [key("sweep"), key("platform.pcie.lanes"), Step::Index(2)];
        assert_eq!(render_path(&p), "sweep[\"platform.pcie.lanes\"][2]");
    }
}
