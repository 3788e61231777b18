//! Reports of snoopsim runs: what a run found, in a form people and tools can read.
//!
//! This crate is the end of the pipeline. The engine (`sim`) fills in a [`Report`] from the
//! models' statistics; this crate knows nothing about models and depends on none of them.
//! It provides:
//!
//! - **the data model** ([`model`]): plain serde structs forming the report's JSON shape —
//!   per variant: corruption per class with explanations, IOMMU faults, latency percentiles
//!   per TLP class, throughput against the link limit, IOMMU / CPU / engine counters and the
//!   reason the run stopped. Field names carry their unit (`_ps`, `_ns`, `bytes`, `gbps`);
//!   maps are `BTreeMap`s so output order is deterministic;
//! - **latency histograms** ([`LatencyHistogram`]): picosecond samples in, a nanosecond
//!   [`LatencySummary`] (count, mean, p50, p90, p99, p99.9, max) out;
//! - **rendering**: [`render_json`] (the canonical form) and [`render_text`] (a terminal
//!   summary with a side-by-side comparison when a sweep has several variants) and
//!   [`render_csv`] (the same comparison as RFC 4180 CSV, one row per variant). All are pure
//!   functions of the report: same report, same bytes;
//! - **atomic file writing** ([`write_atomic`], [`write_report_json`]): a reader never sees a
//!   half-written report, and a failed write leaves the old file and no temporary behind.
//!
//! The only non-deterministic value a report holds is [`SimStats::wall_ms`]; compare reports
//! for determinism with that field cleared.
//!
//! ```
//! use reports::LatencyHistogram;
//!
//! let mut h = LatencyHistogram::new();
//! h.record_ps(250_000); // 250 ns
//! h.record_ps(750_000);
//! let s = h.summary();
//! assert_eq!((s.count, s.mean, s.max), (2, 500.0, 750.0));
//! ```

mod csv;
mod latency;
pub mod model;
mod table;
mod text;
mod write;

pub use csv::render_csv;
pub use latency::LatencyHistogram;
pub use model::{
    hex_address, ChainStep, ClassCount, Corruption, CpuStats, DevicePcieStats, DomainDecision,
    Explanation, FaultLogStats, FaultRecord, Faults, HostReport, IommuStats, KvmDecision,
    LatencySummary, LinkDirectionStats, NamedCacheStats, PcieStats, Report, SimStats, StopReason,
    Throughput, UnitStats, VariantReport,
};
pub use text::{render_json, render_text};
pub use write::{write_atomic, write_report_json, WriteError};
