//! CSV rendering of a [`Report`]: a sweep's variants side by side, one row each, for
//! spreadsheets and plotting scripts.
//!
//! The format is RFC 4180 with one deliberate choice: lines end in LF (`\n`), not CRLF —
//! every common CSV reader accepts both, and LF keeps the file diffable next to the JSON.
//! Fields are separated by commas; a field containing a comma, a double quote, CR or LF is
//! enclosed in double quotes with each inner double quote doubled. Every line, the last
//! included, ends in LF.
//!
//! One header row, then one row per variant in report order (a report without a sweep has
//! one). The columns, always in this order:
//!
//! - `variant`: the variant's name;
//! - one column per swept JSON path (the path is the header), sorted: the variant's value as
//!   compact JSON, a string without its quotes; empty when the variant does not set it;
//! - `stop_reason`: `completed`, `time_limit`, `event_limit` or `stalled`;
//! - `<class>_events`, `<class>_bytes` for each corruption class, in
//!   [`Corruption::CLASS_NAMES`] order, then `corruption_events`, `corruption_bytes` (sums);
//! - `faults`: IOMMU translation faults;
//! - `dma_write_p50_ns`, `dma_write_p99_ns`, `dma_read_p50_ns`, `dma_read_p99_ns`: latency
//!   percentiles with 1 decimal, empty when the variant has no sample of the class;
//! - `throughput_gbps`: DMA payload GB/s (bytes per ns), 3 decimals;
//! - `cpu_stall_ns`: CPU stall summed over cores, 1 decimal; `cpu_flush_ns`: the part of
//!   it spent in cache maintenance (flushes, fences, WBINVD), 1 decimal;
//! - `clflush`, `clflushopt`, `clwb`, `wbinvd`: cache-maintenance instructions;
//!   `wbinvd_emulated`, `wbinvd_ignored`: guest `WBINVD`s KVM emulated or made no-ops.
//!
//! Numbers are printed by Rust's formatter (no locale: `.` decimal point, no grouping). Like
//! the text, the CSV is a pure function of the report; it leaves out `wall_ms`, so it is
//! identical across runs of the same scenario and seed.

use std::collections::BTreeSet;

use crate::model::{Corruption, Report, VariantReport};
use crate::text::{compared_latency, corruption_bytes, COMPARED_CLASSES};

/// Computes one column's field for a variant.
type Cell = Box<dyn Fn(&VariantReport) -> String>;

/// Renders the report as CSV: a header row and one row per variant (see the module doc for
/// the columns and quoting).
pub fn render_csv(report: &Report) -> String {
    let swept: BTreeSet<&str> = report
        .variants
        .iter()
        .flat_map(|v| v.params.keys().map(String::as_str))
        .collect();
    let metrics = metric_columns();

    let mut out = String::new();
    let header = std::iter::once("variant")
        .chain(swept.iter().copied())
        .chain(metrics.iter().map(|(name, _)| name.as_str()));
    push_record(&mut out, header);
    for v in &report.variants {
        let params = swept
            .iter()
            .map(|key| v.params.get(*key).map(param_text).unwrap_or_default());
        let values = metrics.iter().map(|(_, cell)| cell(v));
        let fields: Vec<String> = std::iter::once(v.name.clone())
            .chain(params)
            .chain(values)
            .collect();
        push_record(&mut out, fields.iter().map(String::as_str));
    }
    out
}

/// The columns after the swept parameters, each with the function filling it; header and
/// rows are built from this one list, so they always have the same columns.
fn metric_columns() -> Vec<(String, Cell)> {
    let mut columns: Vec<(String, Cell)> = vec![(
        "stop_reason".to_owned(),
        Box::new(|v| v.sim.stop_reason.as_str().to_owned()),
    )];
    for (i, name) in Corruption::CLASS_NAMES.iter().enumerate() {
        columns.push((
            format!("{name}_events"),
            Box::new(move |v| v.corruption.classes()[i].1.events.to_string()),
        ));
        columns.push((
            format!("{name}_bytes"),
            Box::new(move |v| v.corruption.classes()[i].1.bytes.to_string()),
        ));
    }
    columns.push((
        "corruption_events".to_owned(),
        Box::new(|v| v.corruption.total_events.to_string()),
    ));
    columns.push((
        "corruption_bytes".to_owned(),
        Box::new(|v| corruption_bytes(&v.corruption).to_string()),
    ));
    columns.push((
        "faults".to_owned(),
        Box::new(|v| v.faults.count.to_string()),
    ));
    for class in COMPARED_CLASSES {
        columns.push((
            format!("{class}_p50_ns"),
            Box::new(move |v| {
                compared_latency(v, class).map_or_else(String::new, |s| fixed(s.p50, 1))
            }),
        ));
        columns.push((
            format!("{class}_p99_ns"),
            Box::new(move |v| {
                compared_latency(v, class).map_or_else(String::new, |s| fixed(s.p99, 1))
            }),
        ));
    }
    columns.push((
        "throughput_gbps".to_owned(),
        Box::new(|v| fixed(v.throughput.gbps, 3)),
    ));
    columns.push((
        "cpu_stall_ns".to_owned(),
        Box::new(|v| fixed(v.cpu.stall_ns, 1)),
    ));
    columns.push((
        "cpu_flush_ns".to_owned(),
        Box::new(|v| fixed(v.cpu.flush_ns, 1)),
    ));
    columns.push((
        "clflush".to_owned(),
        Box::new(|v| v.cpu.clflush.to_string()),
    ));
    columns.push((
        "clflushopt".to_owned(),
        Box::new(|v| v.cpu.clflushopt.to_string()),
    ));
    columns.push(("clwb".to_owned(), Box::new(|v| v.cpu.clwb.to_string())));
    columns.push(("wbinvd".to_owned(), Box::new(|v| v.cpu.wbinvd.to_string())));
    columns.push((
        "wbinvd_emulated".to_owned(),
        Box::new(|v| v.cpu.wbinvd_emulated.to_string()),
    ));
    columns.push((
        "wbinvd_ignored".to_owned(),
        Box::new(|v| v.cpu.wbinvd_ignored.to_string()),
    ));
    columns
}

/// A swept value as compact JSON text; a string without its quotes.
fn param_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `value` with exactly `decimals` decimals; empty if it is not finite (the data model
/// forbids that, and an empty field reads as missing rather than as `NaN`).
fn fixed(value: f64, decimals: usize) -> String {
    if value.is_finite() {
        format!("{value:.decimals$}")
    } else {
        String::new()
    }
}

/// Appends one record: the fields, comma-separated and quoted where needed, then LF.
fn push_record<'a>(out: &mut String, fields: impl Iterator<Item = &'a str>) {
    for (i, field) in fields.enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_field(out, field);
    }
    out.push('\n');
}

/// Appends one field, quoted (inner quotes doubled) if it holds a comma, quote, CR or LF.
fn push_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits CSV text into records of fields per RFC 4180 (quoted fields may hold commas,
    /// doubled quotes and line breaks): an independent reader to check the writer against.
    fn parse(text: &str) -> Vec<Vec<String>> {
        let mut records = Vec::new();
        let mut record = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => field.push(c),
                (false, '"') => quoted = true,
                (false, ',') => record.push(std::mem::take(&mut field)),
                (false, '\n') => {
                    record.push(std::mem::take(&mut field));
                    records.push(std::mem::take(&mut record));
                }
                (false, c) => field.push(c),
            }
        }
        assert!(field.is_empty() && record.is_empty(), "text must end in LF");
        records
    }

    fn variant(name: &str) -> VariantReport {
        serde_json::from_value(serde_json::json!({
            "name": name,
            "params": {},
            "corruption": {
                "stale_cpu_read": {"events": 0, "bytes": 0, "first": []},
                "stale_device_read": {"events": 0, "bytes": 0, "first": []},
                "lost_dma_write": {"events": 0, "bytes": 0, "first": []},
                "misdirected_dma": {"events": 0, "bytes": 0, "first": []},
                "total_events": 0
            },
            "faults": {"count": 0, "records": []},
            "latency_ns": {},
            "throughput": {"bytes": 0, "sim_time_ns": 0.0, "gbps": 0.0, "link_limit_gbps": 0.0},
            "iommu": {"kind": "none", "translations": 0, "iotlb_hits": 0, "iotlb_misses": 0,
                      "walks": 0, "walk_memory_reads": 0, "merged_walks": 0, "caches": [],
                      "fault_log": {"logged": 0, "collapsed": 0, "overflowed": 0, "suppressed": 0},
                      "invalidations": 0},
            "cpu": {"loads": 0, "stores": 0, "clflush": 0, "clflushopt": 0, "clwb": 0,
                    "wbinvd": 0, "stall_ns": 0.0},
            "sim": {"events": 0, "tlps": 0, "sim_time_ns": 0.0, "wall_ms": 0.0,
                    "stop_reason": "completed"}
        }))
        .expect("a minimal variant deserializes")
    }

    fn report(variants: Vec<VariantReport>) -> Report {
        Report {
            scenario: "s".to_owned(),
            description: String::new(),
            seed: 1,
            snoopsim_version: "0".to_owned(),
            variants,
        }
    }

    fn column(records: &[Vec<String>], name: &str) -> usize {
        records[0]
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", records[0]))
    }

    #[test]
    fn a_field_with_a_comma_or_quote_is_quoted_with_the_quote_doubled() {
        let mut out = String::new();
        push_field(&mut out, r#"a,"b""#);
        assert_eq!(out, r#""a,""b""""#);
        let mut plain = String::new();
        push_field(&mut plain, "dma_read p99");
        assert_eq!(plain, "dma_read p99");
        let mut lines = String::new();
        push_field(&mut lines, "a\r\nb");
        assert_eq!(lines, "\"a\r\nb\"");

        let csv = render_csv(&report(vec![variant(r#"say "hi", twice"#)]));
        let row = csv.lines().nth(1).unwrap();
        assert!(row.starts_with(r#""say ""hi"", twice","#), "{row}");
        assert_eq!(parse(&csv)[1][0], r#"say "hi", twice"#);
    }

    #[test]
    fn header_and_every_row_have_the_same_number_of_columns() {
        let mut a = variant("a");
        a.params.insert("x.y".to_owned(), serde_json::json!(1));
        let mut b = variant("b, with comma");
        b.params
            .insert("z".to_owned(), serde_json::json!({"k": [1, "v"]}));
        let records = parse(&render_csv(&report(vec![a, b])));
        assert_eq!(records.len(), 3);
        let width = records[0].len();
        assert!(width > 20, "{:?}", records[0]);
        assert!(records.iter().all(|r| r.len() == width), "{records:?}");
        // A path one variant does not sweep is empty in its row.
        assert_eq!(records[1][column(&records, "z")], "");
        assert_eq!(records[2][column(&records, "z")], r#"{"k":[1,"v"]}"#);
    }

    #[test]
    fn two_variants_give_two_rows_with_their_swept_values_in_their_columns() {
        let mut a = variant("mps=128");
        a.params
            .insert("platform.pcie.mps_bytes".to_owned(), serde_json::json!(128));
        a.params
            .insert("host.flush".to_owned(), serde_json::json!("clwb"));
        a.sim.stop_reason = crate::StopReason::TimeLimit;
        let mut b = variant("mps=256");
        b.params
            .insert("platform.pcie.mps_bytes".to_owned(), serde_json::json!(256));
        b.params
            .insert("host.flush".to_owned(), serde_json::json!("none"));
        b.corruption.lost_dma_write.events = 2;
        b.corruption.lost_dma_write.bytes = 128;
        b.corruption.recompute_total();
        let csv = render_csv(&report(vec![a, b]));
        let records = parse(&csv);
        assert_eq!(records.len(), 3, "{csv}");
        assert_eq!(
            &records[0][..4],
            [
                "variant",
                "host.flush",
                "platform.pcie.mps_bytes",
                "stop_reason"
            ]
        );
        let mps = column(&records, "platform.pcie.mps_bytes");
        let flush = column(&records, "host.flush");
        assert_eq!(
            (records[1][mps].as_str(), records[1][flush].as_str()),
            ("128", "clwb")
        );
        assert_eq!(
            (records[2][mps].as_str(), records[2][flush].as_str()),
            ("256", "none")
        );
        assert_eq!(records[1][column(&records, "stop_reason")], "time_limit");
        assert_eq!(records[2][column(&records, "lost_dma_write_bytes")], "128");
        assert_eq!(records[2][column(&records, "corruption_events")], "2");
        assert_eq!(records[1][column(&records, "variant")], "mps=128");
    }

    #[test]
    fn a_single_variant_report_has_a_header_and_one_row() {
        let records = parse(&render_csv(&report(vec![variant("only")])));
        assert_eq!(records.len(), 2);
        assert_eq!(records[1][0], "only");
    }

    #[test]
    fn numbers_have_fixed_decimals_and_missing_latency_is_empty() {
        let mut v = variant("v");
        v.throughput.gbps = 25.5512;
        v.cpu.stall_ns = 12.0;
        v.latency_ns.insert(
            "dma_read".to_owned(),
            crate::LatencySummary {
                count: 3,
                p50: 264.26,
                p99: 1000.0,
                ..Default::default()
            },
        );
        let records = parse(&render_csv(&report(vec![v])));
        let cell = |name: &str| records[1][column(&records, name)].clone();
        assert_eq!(cell("throughput_gbps"), "25.551");
        assert_eq!(cell("cpu_stall_ns"), "12.0");
        assert_eq!(cell("dma_read_p50_ns"), "264.3");
        assert_eq!(cell("dma_read_p99_ns"), "1000.0");
        assert_eq!(cell("dma_write_p50_ns"), "");
    }
}
