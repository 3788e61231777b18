//! `amdvi`: the AMD-Vi translation agent (AMD I/O Virtualization Technology (IOMMU)
//! Specification, pub. 48882, rev. 3.x).
//!
//! What this crate will own (AMD-Vi issue): device table entries indexed by requester ID
//! (V, TV, Mode, page-table root, IR/IW, domain ID), I/O page tables with next-level skipping
//! and size-encoded large pages, the FC (force coherent) PTE bit that sets
//! [`model_core::Translation::forces_snoop`], IOTLB and page-directory caches, timed walks,
//! the command buffer (INVALIDATE_DEVTAB_ENTRY, INVALIDATE_IOMMU_PAGES, INVALIDATE_IOMMU_ALL,
//! COMPLETION_WAIT) and the event log (IO_PAGE_FAULT, ILLEGAL_DEV_TABLE_ENTRY, ...).
//!
//! Same scenario, either vendor: it implements the same [`model_core::TranslationAgent`] as
//! the `vtd` crate, so a report can compare the two.
#![forbid(unsafe_code)]

pub use model_core::TranslationAgent;
