//! `cache`: where DMA meets the CPU's caches, and where corruption happens.
//!
//! What this crate owns (DESIGN.md "Layout"; the cache issue fills most of it):
//! * [`dram`]: DRAM timing (a latency plus a shared channel whose bandwidth serialises
//!   accesses) holding the real bytes of physical memory. Used alike by CPU misses,
//!   write-backs, DMA and IOMMU page walks.
//! * To come: MESI private caches and a shared LLC with data-carrying lines, a snoop filter,
//!   the snooped and no-snoop DMA paths (this model takes `snooped: bool`; the decision lives
//!   with the root complex), clflush / clflushopt / clwb / wbinvd / wbnoinvd with their costs
//!   and fence ordering, and the coherent reference memory used to classify corruption.
//!
//! ```text
//!   core 0 ─ L1 ─┐
//!   core 1 ─ L1 ─┼─ LLC / snoop filter ─┬─ DRAM channel ─ DRAM bytes
//!   DMA (snooped) ──────────┘           │
//!   DMA (no snoop) ─────────────────────┘
//! ```
//!
//! Call order: the engine calls [`dram::Dram::read`] / [`dram::Dram::write`] with `now`; each
//! returns the tick at which the access is performed. Data moves at call time in call order,
//! which the engine guarantees is simulated-time order.
#![forbid(unsafe_code)]

pub mod dram;

pub use dram::{Dram, DramConfig, DramError, DramStats};
