//! `vtd`: the Intel VT-d translation agent (Intel Virtualization Technology for Directed
//! I/O, Architecture Specification, rev. 4.1).
//!
//! What this crate will own (VT-d issue): CAP/ECAP registers as typed values; root, context
//! and (scalable mode) PASID tables living in simulated memory with their exact bit layouts;
//! second- and first-level page walks as timed memory reads, snooped only when ECAP.C says
//! walks are coherent; the SNP bit (valid only with ECAP.SC) and the PASID entry's PGSNP bit,
//! which set [`model_core::Translation::forces_snoop`]; IOTLB, context cache and
//! paging-structure caches; register-based and queued invalidation; fault recording with
//! the specification's fault reason codes.
//!
//! Until then a platform without an IOMMU uses [`model_core::IdentityTranslation`]; this crate
//! only names the interface it will implement.
#![forbid(unsafe_code)]

pub mod entry;
pub mod tables;

pub mod fault;
pub mod qi;
pub mod regs;

pub mod caches;
pub mod iommu;
pub mod walk;

pub use caches::{CacheConfig, Geometry};
pub use iommu::{Vtd, VtdConfig, VtdConfigError, VtdTiming};
pub use model_core::TranslationAgent;
