//! The interface between the root complex and an IOMMU.
//!
//! A [`TranslationAgent`] turns the IOVA of an upstream memory request into a host physical
//! address, or refuses it with a [`TranslationFault`]. The result also carries
//! [`Translation::forces_snoop`], the IOMMU's half of the effective snoop decision
//! (DESIGN.md): `snooped = !tlp.no_snoop || forces_snoop || platform.ignores_no_snoop`.
//!
//! Call order: the root complex calls [`TranslationAgent::translate`] once per request, at
//! the tick the request reaches the IOMMU, and schedules the memory access at
//! `now + translation.latency`. The VT-d and AMD-Vi models will add, in their own issues,
//! page walks that are themselves timed memory reads; those extend this interface with a
//! "walk in flight" outcome rather than hiding memory traffic inside `latency`.

use crate::addr::{Bdf, Iova, PhysAddr};
use crate::time::{Span, Tick};
use serde::{Deserialize, Serialize};

/// What an upstream request does to memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessKind {
    /// A memory read request (MRd).
    Read,
    /// A memory write request (MWr).
    Write,
}

/// One request presented to the IOMMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranslationRequest {
    /// The requester ID from the TLP header.
    pub requester: Bdf,
    /// The address from the TLP header.
    pub iova: Iova,
    /// Bytes the request touches (a request never crosses a 4 KiB boundary).
    pub len: u32,
    /// Read or write.
    pub access: AccessKind,
    /// The PASID from the TLP prefix, if any.
    pub pasid: Option<u32>,
    /// The PASID prefix's Execute Requested bit.
    pub execute: bool,
    /// The PASID prefix's Privileged Mode Requested bit.
    pub privileged: bool,
    /// The TLP's No Snoop attribute (Attr[0]): the other half of the snoop decision.
    pub no_snoop: bool,
    /// AT = Translated: the device translated the address itself with ATS, and the IOMMU
    /// decides whether it may (VT-d context entry TT, AMD-Vi DTE I bit).
    pub translated: bool,
}

/// A successful translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// Where the request goes in host physical memory.
    pub pa: PhysAddr,
    /// The IOMMU forces this access to be snooped whatever the TLP's No Snoop attribute says
    /// (VT-d leaf SNP or PASID-entry PGSNP; AMD-Vi PTE FC).
    pub forces_snoop: bool,
    /// Time from the request reaching the IOMMU to the translated request leaving it.
    pub latency: Span,
}

/// A translation the IOMMU refused. Modelled faults are data, not simulator errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslationFault {
    /// The requester ID of the faulting request.
    pub requester: Bdf,
    /// The faulting address.
    pub iova: Iova,
    /// Read or write.
    pub access: AccessKind,
    /// The vendor's fault reason code (VT-d fault reason, AMD-Vi event code).
    pub reason_code: u32,
    /// The vendor's name for the reason.
    pub reason: &'static str,
    /// Time from the request reaching the IOMMU to the fault being raised.
    pub latency: Span,
}

/// An IOMMU (or its absence), as the root complex sees it.
pub trait TranslationAgent {
    /// A short name for reports ("none", "vtd", "amdvi").
    fn kind(&self) -> &'static str;

    /// Translates `req`, which reaches the IOMMU at `now`.
    fn translate(
        &mut self,
        now: Tick,
        req: &TranslationRequest,
    ) -> Result<Translation, TranslationFault>;
}

/// No IOMMU: every IOVA is the physical address (ATS-translated or not), nothing forces
/// snooping, and the only cost is a fixed pass-through latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IdentityTranslation {
    /// Time the request spends crossing where an IOMMU would sit.
    pub latency: Span,
}

impl TranslationAgent for IdentityTranslation {
    fn kind(&self) -> &'static str {
        "none"
    }

    fn translate(
        &mut self,
        _now: Tick,
        req: &TranslationRequest,
    ) -> Result<Translation, TranslationFault> {
        Ok(Translation {
            pa: PhysAddr(req.iova.raw()),
            forces_snoop: false,
            latency: self.latency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_maps_iova_to_the_same_physical_address_and_never_forces_snoop() {
        let mut id = IdentityTranslation {
            latency: Span::from_ns(3),
        };
        let req = TranslationRequest {
            requester: Bdf::new(1, 0, 0).unwrap(),
            iova: Iova(0x1234_5000),
            len: 64,
            access: AccessKind::Write,
            pasid: None,
            execute: false,
            privileged: false,
            no_snoop: true,
            translated: false,
        };
        let t = id.translate(Tick::ZERO, &req).unwrap();
        assert_eq!(t.pa, PhysAddr(0x1234_5000));
        assert!(!t.forces_snoop);
        assert_eq!(t.latency, Span::from_ns(3));
    }
}
