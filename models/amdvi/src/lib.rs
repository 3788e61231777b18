//! `amdvi`: the AMD-Vi translation agent (AMD I/O Virtualization Technology (IOMMU)
//! Specification, pub. 48882, rev. 3.x).
//!
//! [`Amdvi`] is one AMD IOMMU as a sans-IO translation agent: the device table (entries
//! indexed by requester ID: V, TV, Mode, page-table root, IR/IW, DomainID), I/O page tables
//! with next-level skipping and size-encoded large pages, the FC (force coherent) PTE bit
//! that sets [`model_core::Translation::forces_snoop`], a DTE cache, IOTLB and
//! page-directory caches, timed walks ([`walk`]), the command buffer
//! (INVALIDATE_DEVTAB_ENTRY, INVALIDATE_IOMMU_PAGES, INVALIDATE_IOMMU_ALL, COMPLETION_WAIT)
//! and the event log in memory (IO_PAGE_FAULT, ILLEGAL_DEV_TABLE_ENTRY, ...).
//!
//! Same scenario, either vendor: it implements the same [`model_core::TranslationAgent`] as
//! the `vtd` crate, so a report can compare the two.
//!
//! Formats (each a raw view with one accessor per field plus typed constructors, every bit
//! a named mask citing the spec section and the public code that confirms it):
//!
//! * [`regs`]: MMIO offsets, Control/Status bits, base-address registers, EFR, and the
//!   scenario's [`regs::Capabilities`] with `validate()`.
//! * [`dte`]: the 256-bit device table entry (§2.2.2.1).
//! * [`pte`]: host (v1) PDE/PTE words, Next Level 0/7 leaves, level arithmetic (§2.2.3).
//! * [`cmd`]: the 128-bit commands (§2.4), decode with reserved-bit checks, encode.
//! * [`event`]: the 128-bit event log entries (§2.5) and the event log ring.
//! * [`tables`]: a Linux-style builder that writes the device table and I/O page tables into
//!   simulated memory as [`tables::MemWrite`]s and keeps a shadow.
//!
//! Public code read (tags used in the docs): Linux `drivers/iommu/amd/amd_iommu_types.h`
//! (L-AMDT), `iommu.c` (L-AMD), `io_pgtable.c` (L-AMDP), `init.c` (L-AMDI),
//! `drivers/iommu/generic_pt/fmt/amdv1.h` (L-PT); QEMU `hw/i386/amd_iommu.h` / `.c` (Q-AMD);
//! VirtualBox `include/VBox/iommu-amd.h` and `DevIommuAmd.c` (VBOX); FreeBSD
//! `sys/x86/iommu/amd_reg.h` (F-AMD); the OSDev wiki "AMD-Vi IOMMU" page (OSDEV).
#![forbid(unsafe_code)]

pub mod cmd;
pub mod dte;
pub mod event;
pub mod pte;
pub mod regs;
pub mod tables;

mod caches;
pub mod iommu;
pub mod walk;

pub use iommu::{Amdvi, AmdviCaches, AmdviConfig, AmdviConfigError, AmdviTiming};
pub use model_core::TranslationAgent;
