//! Human-readable rendering of a [`Report`] for a terminal, and JSON rendering.
//!
//! The text is a pure function of the report: nothing is read from the clock or environment,
//! so the same report always renders to the same bytes. Floating-point values are printed
//! with fixed decimals; ticks are printed in ns with 3 decimals using integer arithmetic.

use std::fmt::Write as _;

use crate::model::{ClassCount, Corruption, LatencySummary, Report, StopReason, VariantReport};
use crate::table::{Align, Table};

/// Fault records printed per variant; the rest are summarised as "... and N more".
const FAULTS_SHOWN: usize = 5;

/// TLP classes compared side by side when a report has several variants (and in the CSV).
pub(crate) const COMPARED_CLASSES: [&str; 2] = ["dma_write", "dma_read"];

/// Placeholder for a value the report does not hold.
const NONE: &str = "-";

/// Renders the report as JSON (pretty-printed, with a trailing newline).
///
/// Serialization of this data model cannot fail (every map key is a string); should it ever,
/// the output is a JSON object `{"render_error": "<message>"}` rather than a panic. Use
/// [`crate::write_report_json`] to have the error returned instead.
pub fn render_json(report: &Report) -> String {
    let mut json = serde_json::to_string_pretty(report).unwrap_or_else(|error| {
        serde_json::json!({ "render_error": error.to_string() }).to_string()
    });
    json.push('\n');
    json
}

/// Renders the report as a plain-text summary for a terminal.
///
/// One section per variant (parameters, stop reason, corruption with the first explanation
/// of each class, faults, latency table, throughput, IOMMU, CPU and engine counters), then,
/// when there are two or more variants, a side-by-side comparison table.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    // `fmt::Write` for `String` never fails, so the results of `writeln!` are ignored.
    let _ = writeln!(
        out,
        "snoopsim report: scenario {:?}, seed {}, snoopsim {}",
        report.scenario, report.seed, report.snoopsim_version
    );
    if !report.description.is_empty() {
        let _ = writeln!(out, "{}", report.description);
    }
    for variant in &report.variants {
        out.push('\n');
        render_variant(&mut out, variant);
    }
    if report.variants.len() >= 2 {
        out.push('\n');
        render_comparison(&mut out, &report.variants);
    }
    out
}

fn render_variant(out: &mut String, v: &VariantReport) {
    let _ = writeln!(out, "== variant {:?} ==", v.name);
    let _ = writeln!(out, "params: {}", params_line(v));
    match v.sim.stop_reason {
        StopReason::Completed => {
            let _ = writeln!(out, "stop: completed");
        }
        reason => {
            let _ = writeln!(out, "{}", stopped_early_line(reason));
        }
    }
    render_corruption(out, v);
    render_faults(out, v);
    render_latency(out, v);
    render_counters(out, v);
    render_host(out, v);
}

/// The host software's decisions: per domain, then KVM's.
fn render_host(out: &mut String, v: &VariantReport) {
    let Some(h) = &v.host else {
        return;
    };
    let _ = writeln!(out, "host software ({} semantics):", h.semantics);
    let mut table = Table::new(&[
        ("domain", Align::Left),
        ("owner", Align::Left),
        ("enforce_cache_coherency()", Align::Left),
        ("No Snoop", Align::Left),
    ]);
    for d in &h.domains {
        table.row(vec![
            d.name.clone(),
            d.owner.clone(),
            d.enforce.clone(),
            d.no_snoop.clone(),
        ]);
    }
    out.push_str(&table.render("  "));
    for d in h.domains.iter().filter(|d| !d.refused.is_empty()) {
        let _ = writeln!(
            out,
            "  {} refused to attach: {}",
            d.name,
            d.refused.join(", ")
        );
    }
    for d in h.domains.iter().filter(|d| !d.enforce_calls.is_empty()) {
        let _ = writeln!(
            out,
            "  {} enforce_cache_coherency() at run time: {}",
            d.name,
            d.enforce_calls.join("; ")
        );
    }
    if let Some(k) = &h.kvm {
        let c = &v.cpu;
        let _ = writeln!(
            out,
            "  kvm: non-coherent DMA {}; guest wbinvd {} ({}); emulated {}, ignored {}, IPIs {}",
            if k.noncoherent_dma {
                "registered"
            } else {
                "not registered"
            },
            k.wbinvd,
            k.reason,
            c.wbinvd_emulated,
            c.wbinvd_ignored,
            c.ipis
        );
    }
}

fn params_line(v: &VariantReport) -> String {
    if v.params.is_empty() {
        return "(none)".to_owned();
    }
    let parts: Vec<String> = v
        .params
        .iter()
        .map(|(key, value)| match value {
            serde_json::Value::String(s) => format!("{key}={s}"),
            other => format!("{key}={other}"),
        })
        .collect();
    parts.join(", ")
}

fn stopped_early_line(reason: StopReason) -> String {
    if reason == StopReason::Stalled {
        return "STOPPED EARLY: stalled — nothing was left to happen but the workload was not \
                done (an agent waits for something that never comes)"
            .to_owned();
    }
    let limit = match reason {
        StopReason::TimeLimit => "time limit",
        StopReason::EventLimit => "event limit",
        StopReason::Completed | StopReason::Stalled => "no limit",
    };
    format!("STOPPED EARLY: {limit} reached — results cover only part of the workload")
}

fn render_corruption(out: &mut String, v: &VariantReport) {
    let c = &v.corruption;
    let _ = writeln!(out, "corruption: {} events", c.total_events);
    let mut table = Table::new(&[
        ("class", Align::Left),
        ("events", Align::Right),
        ("bytes", Align::Right),
    ]);
    for (name, class) in c.classes() {
        table.row(vec![
            name.to_owned(),
            class.events.to_string(),
            class.bytes.to_string(),
        ]);
    }
    out.push_str(&table.render("  "));
    for (name, class) in c.classes() {
        render_first_explanation(out, name, class);
    }
}

fn render_first_explanation(out: &mut String, name: &str, class: &ClassCount) {
    let Some(first) = class.first.first().filter(|_| class.events > 0) else {
        return;
    };
    let _ = writeln!(
        out,
        "  first {name}: {} ({} bytes): {}",
        first.address, first.bytes, first.summary
    );
    let mut table = Table::new(&[
        ("tick_ns", Align::Right),
        ("actor", Align::Left),
        ("what", Align::Left),
    ]);
    for step in &first.chain {
        table.row(vec![
            ps_as_ns(step.tick_ps),
            step.actor.clone(),
            step.what.clone(),
        ]);
    }
    if !first.chain.is_empty() {
        out.push_str(&table.render("    "));
    }
}

fn render_faults(out: &mut String, v: &VariantReport) {
    let faults = &v.faults;
    let _ = writeln!(out, "faults: {}", faults.count);
    if faults.records.is_empty() {
        return;
    }
    let mut table = Table::new(&[
        ("tick_ns", Align::Right),
        ("requester", Align::Left),
        ("address", Align::Left),
        ("access", Align::Left),
        ("code", Align::Right),
        ("reason", Align::Left),
        ("logged", Align::Left),
    ]);
    for record in faults.records.iter().take(FAULTS_SHOWN) {
        table.row(vec![
            ps_as_ns(record.tick_ps),
            record.requester.clone(),
            record.address.clone(),
            record.access.clone(),
            format!("{:#x}", record.reason_code),
            record.reason.clone(),
            record.logged.clone(),
        ]);
    }
    out.push_str(&table.render("  "));
    let shown = faults.records.len().min(FAULTS_SHOWN) as u64;
    let more = faults.count.max(faults.records.len() as u64) - shown;
    if more > 0 {
        let _ = writeln!(out, "  ... and {more} more");
    }
}

fn render_latency(out: &mut String, v: &VariantReport) {
    if v.latency_ns.is_empty() {
        let _ = writeln!(out, "latency: no samples");
        return;
    }
    let _ = writeln!(out, "latency (ns):");
    let mut table = Table::new(&[
        ("class", Align::Left),
        ("count", Align::Right),
        ("mean", Align::Right),
        ("p50", Align::Right),
        ("p90", Align::Right),
        ("p99", Align::Right),
        ("p99.9", Align::Right),
        ("max", Align::Right),
    ]);
    for (class, s) in &v.latency_ns {
        table.row(vec![
            class.clone(),
            s.count.to_string(),
            ns(s.mean),
            ns(s.p50),
            ns(s.p90),
            ns(s.p99),
            ns(s.p999),
            ns(s.max),
        ]);
    }
    out.push_str(&table.render("  "));
}

fn render_counters(out: &mut String, v: &VariantReport) {
    let t = &v.throughput;
    let percent = t
        .percent_of_limit()
        .map_or_else(|| NONE.to_owned(), |p| format!("{p:.1}%"));
    let _ = writeln!(
        out,
        "throughput: {:.3} GB/s of {:.3} GB/s link limit ({percent}); {} bytes in {:.3} ns",
        t.gbps, t.link_limit_gbps, t.bytes, t.sim_time_ns
    );
    for d in &v.pcie.devices {
        let dir = |l: &crate::LinkDirectionStats| {
            format!(
                "{} TLPs + {} DLLPs, {:.1}% busy",
                l.tlps,
                l.dllps,
                100.0 * l.utilisation
            )
        };
        let _ = writeln!(
            out,
            "pcie {} ({}): up {}; down {}; tag stalls {}, credit stalls {}, mmio writes in {}",
            d.name,
            d.requester,
            dir(&d.up),
            dir(&d.down),
            d.tag_stalls,
            d.credit_stalls,
            d.mmio_writes
        );
        if d.completion_timeouts + d.unexpected_completions + d.error_completions > 0 {
            let _ = writeln!(
                out,
                "  READ ERRORS: {} completion timeouts, {} error completions, {} unexpected \
                 completions; {} transfers failed",
                d.completion_timeouts,
                d.error_completions,
                d.unexpected_completions,
                d.failed_transfers
            );
        }
    }
    let i = &v.iommu;
    let lookups = i.iotlb_hits.saturating_add(i.iotlb_misses);
    let hit_rate = if lookups == 0 {
        NONE.to_owned()
    } else {
        format!("{:.1}%", 100.0 * i.iotlb_hits as f64 / lookups as f64)
    };
    let _ = writeln!(
        out,
        "iommu ({}): translations {}, iotlb hits {}, misses {} (hit rate {hit_rate}), \
         walks {}, walk memory reads {}",
        i.kind, i.translations, i.iotlb_hits, i.iotlb_misses, i.walks, i.walk_memory_reads
    );
    for u in &i.units {
        let _ = writeln!(
            out,
            "  {}: translations {}, iotlb hits {}, misses {}, walks {}, faults {}, \
             invalidations {}",
            u.name,
            u.translations,
            u.iotlb_hits,
            u.iotlb_misses,
            u.walks,
            u.faults,
            u.invalidations
        );
    }
    if i.merged_walks > 0 || !i.caches.is_empty() {
        let caches: Vec<String> = i
            .caches
            .iter()
            .map(|c| format!("{} {}/{}", c.name, c.hits, c.hits.saturating_add(c.misses)))
            .collect();
        let _ = writeln!(
            out,
            "  merged walks {}; cache hits/lookups: {}",
            i.merged_walks,
            caches.join(", ")
        );
    }
    let f = &i.fault_log;
    if f.logged + f.collapsed + f.overflowed + f.suppressed + i.invalidations > 0 {
        let _ = writeln!(
            out,
            "  fault log: recorded {}, collapsed {}, overflowed {}, suppressed {}; \
             invalidations {}",
            f.logged, f.collapsed, f.overflowed, f.suppressed, i.invalidations
        );
    }
    let c = &v.cpu;
    let _ = writeln!(
        out,
        "cpu: loads {}, stores {}, mmio writes {}, clflush {}, clflushopt {}, clwb {}, wbinvd {}, \
         stall {:.1} ns (cache maintenance {:.1} ns)",
        c.loads,
        c.stores,
        c.mmio_writes,
        c.clflush,
        c.clflushopt,
        c.clwb,
        c.wbinvd,
        c.stall_ns,
        c.flush_ns
    );
    let s = &v.sim;
    let rate = s
        .events_per_wall_second()
        .map_or_else(|| NONE.to_owned(), |r| format!("{r:.0}"));
    let _ = writeln!(
        out,
        "sim: events {}, tlps {}, simulated {:.3} ns, wall {:.1} ms, {rate} events/wall-second",
        s.events, s.tlps, s.sim_time_ns, s.wall_ms
    );
}

/// Short headers of the corruption classes in the comparison, in the order of
/// [`Corruption::CLASS_NAMES`].
const CLASS_SHORT_NAMES: [&str; 4] = ["stale cpu", "stale dev", "lost wr", "misdir"];

/// The side-by-side comparison of a sweep's variants: three narrow tables (correctness,
/// performance, CPU cost) rather than one too wide for a terminal, each row labelled by the
/// variant's swept values; a variant that stopped early is marked `*` in every table.
fn render_comparison(out: &mut String, variants: &[VariantReport]) {
    let keys: Vec<&str> = variants
        .iter()
        .flat_map(|v| v.params.keys().map(String::as_str))
        .collect();
    let rows: Vec<(String, &VariantReport)> = variants
        .iter()
        .map(|v| {
            let early = if v.sim.stop_reason.is_early() {
                " *"
            } else {
                ""
            };
            (format!("{}{early}", short_label(v, &keys)), v)
        })
        .collect();
    let _ = writeln!(out, "== comparison ==");
    compare_correctness(out, &rows);
    compare_performance(out, &rows);
    compare_cpu(out, &rows);
    if variants.iter().any(|v| v.sim.stop_reason.is_early()) {
        let _ = writeln!(
            out,
            "  * stopped early: results cover only part of the workload"
        );
    }
}

/// Corruption events per class, corruption bytes and faults, one row per `(label, variant)`.
fn compare_correctness(out: &mut String, rows: &[(String, &VariantReport)]) {
    let _ = writeln!(
        out,
        "corruption events per class, corruption bytes (all classes), IOMMU faults:"
    );
    let mut columns = vec![("variant", Align::Left)];
    columns.extend(CLASS_SHORT_NAMES.iter().map(|&name| (name, Align::Right)));
    columns.extend([("bytes", Align::Right), ("faults", Align::Right)]);
    let mut table = Table::new(&columns);
    for (label, v) in rows {
        let mut row = vec![label.clone()];
        row.extend(v.corruption.classes().map(|(_, c)| c.events.to_string()));
        row.push(corruption_bytes(&v.corruption).to_string());
        row.push(v.faults.count.to_string());
        table.row(row);
    }
    out.push_str(&table.render("  "));
}

/// Latency percentiles of the compared classes and throughput, one row per variant.
fn compare_performance(out: &mut String, rows: &[(String, &VariantReport)]) {
    let _ = writeln!(out, "latency (ns) and DMA throughput:");
    let names: Vec<[String; 2]> = COMPARED_CLASSES
        .iter()
        .map(|class| [format!("{class} p50"), format!("{class} p99")])
        .collect();
    let mut columns = vec![("variant", Align::Left)];
    for [p50, p99] in &names {
        columns.extend([(p50.as_str(), Align::Right), (p99.as_str(), Align::Right)]);
    }
    columns.push(("GB/s", Align::Right));
    let mut table = Table::new(&columns);
    for (label, v) in rows {
        let mut row = vec![label.clone()];
        for class in COMPARED_CLASSES {
            let summary = compared_latency(v, class);
            row.push(summary.map_or_else(|| NONE.to_owned(), |s| ns(s.p50)));
            row.push(summary.map_or_else(|| NONE.to_owned(), |s| ns(s.p99)));
        }
        row.push(format!("{:.3}", v.throughput.gbps));
        table.row(row);
    }
    out.push_str(&table.render("  "));
}

/// Cache-maintenance instructions and CPU stall, one row per variant.
fn compare_cpu(out: &mut String, rows: &[(String, &VariantReport)]) {
    let _ = writeln!(out, "CPU cache maintenance (instructions) and stall:");
    let mut table = Table::new(&[
        ("variant", Align::Left),
        ("clflush", Align::Right),
        ("clflushopt", Align::Right),
        ("clwb", Align::Right),
        ("wbinvd", Align::Right),
        ("stall ns", Align::Right),
        ("flush ns", Align::Right),
    ]);
    for (label, v) in rows {
        let c = &v.cpu;
        table.row(vec![
            label.clone(),
            c.clflush.to_string(),
            c.clflushopt.to_string(),
            c.clwb.to_string(),
            c.wbinvd.to_string(),
            format!("{:.1}", c.stall_ns),
            format!("{:.1}", c.flush_ns),
        ]);
    }
    out.push_str(&table.render("  "));
}

/// A compared class's latency summary, or `None` when the variant has no sample of it.
pub(crate) fn compared_latency<'v>(
    v: &'v VariantReport,
    class: &str,
) -> Option<&'v LatencySummary> {
    v.latency_ns.get(class).filter(|s| s.count > 0)
}

/// Bytes affected by corruption, summed over the classes (saturating).
pub(crate) fn corruption_bytes(c: &Corruption) -> u64 {
    c.classes()
        .iter()
        .fold(0u64, |sum, (_, class)| sum.saturating_add(class.bytes))
}

/// A variant's parameters with each key cut to its shortest dotted suffix that no other
/// swept key ends with, and long values elided: the comparison table stays readable when
/// sweeps reach deep into the scenario (the full names head each variant's section).
fn short_label(v: &VariantReport, keys: &[&str]) -> String {
    if v.params.is_empty() {
        return v.name.clone();
    }
    let parts: Vec<String> = v
        .params
        .iter()
        .map(|(key, value)| {
            let short = shortest_unique_suffix(key, keys);
            let value = match value {
                serde_json::Value::String(s) => s.clone(),
                // A swept object is named by its single key (`{"vtd": {...}}` → `vtd{…}`).
                serde_json::Value::Object(m) if m.len() == 1 => {
                    m.keys().map(|k| format!("{k}{{…}}")).collect()
                }
                other => other.to_string(),
            };
            let value = if value.chars().count() > MAX_LABEL_VALUE {
                let cut: String = value.chars().take(MAX_LABEL_VALUE - 1).collect();
                format!("{cut}…")
            } else {
                value
            };
            format!("{short}={value}")
        })
        .collect();
    parts.join(", ")
}

/// Longest value shown in a comparison label (characters).
const MAX_LABEL_VALUE: usize = 32;

/// `a.b[0].c` → `c` unless another key also ends in `.c` (then `b[0].c`, and so on).
fn shortest_unique_suffix<'k>(key: &'k str, keys: &[&str]) -> &'k str {
    let cuts = key.match_indices('.').map(|(i, _)| i + 1);
    let mut candidates: Vec<usize> = cuts.collect();
    candidates.reverse();
    for start in candidates {
        let suffix = &key[start..];
        let clash = keys
            .iter()
            .any(|k| *k != key && (*k == suffix || k.ends_with(&format!(".{suffix}"))));
        if !clash {
            return suffix;
        }
    }
    key
}

/// A latency in ns, one decimal (hdrhistogram resolves 3 significant figures).
fn ns(value: f64) -> String {
    format!("{value:.1}")
}

/// Picoseconds printed as nanoseconds with exactly 3 decimals, without floating point.
fn ps_as_ns(ps: u64) -> String {
    format!("{}.{:03}", ps / 1000, ps % 1000)
}

#[cfg(test)]
mod tests {
    use super::shortest_unique_suffix;

    #[test]
    fn a_key_is_cut_to_the_shortest_suffix_no_other_key_shares() {
        let keys = [
            "platform.pcie.lanes",
            "devices[0].read_tags",
            "a.x.snp",
            "b.y.snp",
        ];
        assert_eq!(shortest_unique_suffix(keys[0], &keys), "lanes");
        assert_eq!(shortest_unique_suffix(keys[1], &keys), "read_tags");
        assert_eq!(shortest_unique_suffix(keys[2], &keys), "x.snp");
        assert_eq!(shortest_unique_suffix(keys[3], &keys), "y.snp");
        assert_eq!(shortest_unique_suffix("name", &["name"]), "name");
    }
}
