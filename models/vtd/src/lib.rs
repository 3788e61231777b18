//! `vtd`: the Intel VT-d translation agent (Intel Virtualization Technology for Directed
//! I/O, Architecture Specification, rev. 4.x).
//!
//! [`Vtd`] is one DMA-remapping unit as a sans-IO [`model_core::TranslationAgent`]: every
//! translation structure lives in simulated memory in its exact bit layout, every table
//! read is a timed memory access the system performs (snooped only when ECAP.C, or the
//! PASID entry's PWSNP, says walks are coherent), and the SNP / PGSNP bits set
//! [`model_core::Translation::forces_snoop`].
//!
//! * [`regs`]: CAP/ECAP as typed registers built from named [`regs::Capabilities`]
//!   (unsupported combinations refused), register offsets and bits.
//! * [`entry`]: root, context, scalable context, PASID directory and PASID entries,
//!   second- and first-level paging entries, with reserved-bit masks per level.
//! * [`tables`]: a Linux-style builder laying those structures out in memory.
//! * [`walk`]: the walk as resumable reads (legacy, scalable, first level, nested) and the
//!   cache-less reference walk the corruption checker uses.
//! * [`caches`]: IOTLB, context cache, PASID cache and paging-structure caches, with the
//!   invalidation scopes applied to them.
//! * [`qi`]: queued and register-based invalidation encodings.
//! * [`fault`]: fault reason codes and the fault recording registers.
//! * [`iommu`]: the timed unit: lookups, walk slots with merging, invalidation latency,
//!   fault logging, registers.
#![forbid(unsafe_code)]

pub mod entry;
pub mod tables;

pub mod fault;
pub mod qi;
pub mod regs;

pub mod caches;
pub mod config;
pub mod iommu;
pub mod walk;

pub use caches::{CacheConfig, Geometry};
pub use config::{VtdConfig, VtdConfigError, VtdTiming};
pub use iommu::Vtd;
pub use model_core::TranslationAgent;
