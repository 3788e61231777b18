//! The domain API at run time: a program's `enforce`, `attach` and `detach`, decided as
//! the kernel decides them, and carried out through the vendor's driver (`vtd_ops.rs`,
//! `amdvi_host/ops.rs`).
//!
//! - `enforce` is `enforce_cache_coherency()` (v5.19 and later; SPEC-NOTES §3.7 "Current",
//!   `intel_iommu_enforce_cache_coherency`): it returns true at once if the domain already
//!   enforces; on VT-d it fails if a unit a device of the domain sits behind lacks ECAP.SC,
//!   or if it is a second-level domain that already has mappings (Lu Baolu, v6.7; the boot
//!   mappings count, and so does a map since unmapped). On success a second-level domain's
//!   later maps get SNP — existing leaves are not rewritten — and a first-level domain's
//!   PASID entries get PGSNP. AMD-Vi returns true (`amd_iommu_enforce_cache_coherency`).
//!   Nested and pass-through domains have no such operation.
//! - `attach` first detaches a device attached elsewhere (Linux's
//!   `device_block_translation` comes first in `intel_iommu_attach_device`), then applies
//!   the attach rules: from v5.19 an enforced domain refuses a device behind a unit without
//!   ECAP.SC (the rule `units.rs` applies to `after_maps` attachments), and a unit whose
//!   capabilities do not fit the domain refuses it. A refused device stays detached (its
//!   DMA faults or is blocked) and the report's `host` section lists the refusal. Before
//!   v5.19 nothing refuses: the domain's snooping is decided again over its units for the
//!   maps that follow (the per-domain rule of `units.rs`).
//! - `detach` blocks the device's requests without PASID.
//!
//! None of them re-registers anything with KVM: the kvm-vfio device re-evaluates the
//! guest's coherency only when a VFIO group is added to it or removed
//! (`kvm_vfio_update_coherency`), so a guest's WBINVD stays what boot made it.

use super::domain_api::{DomainApi, Enforce, Vendor};
use super::driver::{AttachOutcome, Driver, DriverWork, UnitId};
use crate::scenario::software::Semantics;
use model_core::Bdf;

/// How many of a domain's `enforce` calls the report keeps (the last ones).
const ENFORCE_CALLS_KEPT: usize = 16;

/// Where a program's `attach` stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachStep {
    /// The device was attached elsewhere: this detaches it; the attach comes next (the
    /// caller performs this work and asks again).
    Detached(DriverWork),
    /// The attach is done (or refused, leaving the device detached): its work.
    Done(DriverWork),
}

impl DomainApi {
    /// Why an enforced domain refuses `device` behind unit `u`, from v5.19 (9d6ab26a75f4;
    /// today `paging_domain_compatible`): `nic (dmar1: ECAP.SC = 0)`.
    pub(super) fn refusal(&self, domain: &str, device: &str, u: UnitId) -> Option<String> {
        let d = self.domains.get(domain)?;
        let unit = self.units.get(u.index())?;
        (self.semantics() == Semantics::V5_19
            && d.enforce == Enforce::Succeeded
            && !unit.snoop_control)
            .then(|| format!("{device} ({}: ECAP.SC = 0)", unit.name))
    }

    /// A unit's name for a message: "the unit" on a one-unit platform.
    fn unit_name(&self, u: UnitId) -> String {
        match self.units.get(u.index()) {
            Some(unit) if self.units.len() > 1 => unit.name.clone(),
            _ => "the unit".to_owned(),
        }
    }

    /// Why `enforce_cache_coherency()` fails on `domain` now, if it does.
    fn cannot_enforce(&self, driver: &Driver, domain: &str) -> Option<String> {
        let d = self.domains.get(domain)?;
        let pass_through = !d.leaf_bit && !d.pgsnp_domain;
        match self.vendor {
            Vendor::Vtd { .. } if d.parent.is_some() => Some(
                "a nested domain has no enforce_cache_coherency() of its own: it takes PGSNP \
                 from its second-stage parent"
                    .to_owned(),
            ),
            Vendor::Vtd { .. } | Vendor::Amdvi { .. } if pass_through => {
                Some("a pass-through (identity) domain has no enforce_cache_coherency()".to_owned())
            }
            Vendor::Vtd { .. } => {
                // `domain_support_force_snooping`: every attached device's unit.
                let lacking = d.units.iter().find(|u| {
                    self.units
                        .get(u.index())
                        .is_some_and(|unit| !unit.snoop_control)
                });
                if let Some(&u) = lacking {
                    return Some(format!(
                        "{} lacks snoop control (ECAP.SC = 0)",
                        self.unit_name(u)
                    ));
                }
                (d.leaf_bit && driver.has_mappings(domain)).then(|| {
                    "the second-level domain already has mappings, whose leaves lack SNP \
                     (Linux v6.7+: enforce before the first map)"
                        .to_owned()
                })
            }
            Vendor::Amdvi { .. } => None,
            Vendor::None => Some("there is no IOMMU".to_owned()),
        }
    }

    /// A program's `enforce_cache_coherency()` on `domain` (`who`: the CPU and time, for
    /// the report): records the outcome and returns what the driver writes for it.
    pub fn enforce(
        &mut self,
        driver: &mut Driver,
        domain: &str,
        who: &str,
    ) -> Result<DriverWork, String> {
        if self.semantics() != Semantics::V5_19 {
            return Err(
                "enforce_cache_coherency() came with v5.19: set software.semantics to \"v5_19\""
                    .to_owned(),
            );
        }
        let before = self
            .domains
            .get(domain)
            .map(|d| d.enforce.clone())
            .ok_or_else(|| format!("no domain is named \"{domain}\""))?;
        let (outcome, note, work) = if before == Enforce::Succeeded {
            (
                Enforce::Succeeded,
                " (already enforced)",
                DriverWork::default(),
            )
        } else if let Some(why) = self.cannot_enforce(driver, domain) {
            (Enforce::Failed(why), "", DriverWork::default())
        } else {
            (Enforce::Succeeded, "", driver.force_snooping(domain)?)
        };
        let Some(d) = self.domains.get_mut(domain) else {
            return Ok(work);
        };
        d.late |= before != Enforce::Succeeded && outcome == Enforce::Succeeded;
        let said = match &outcome {
            Enforce::Failed(why) => format!("failed: {why}"),
            _ => format!("succeeded{note}"),
        };
        d.enforce_calls.push(format!("{who}: {said}"));
        if d.enforce_calls.len() > ENFORCE_CALLS_KEPT {
            d.enforce_calls.remove(0);
        }
        d.enforce = outcome;
        Ok(work)
    }

    /// A program's `attach` of `device` (requester `bdf`) to `domain`; `who` for the
    /// report's refusal. Attaching a device to the domain it is in does nothing (Linux
    /// returns early when the group already has that domain).
    pub fn attach(
        &mut self,
        driver: &mut Driver,
        device: &str,
        bdf: Bdf,
        domain: &str,
        who: &str,
    ) -> Result<AttachStep, String> {
        if !driver.has_domain(domain) {
            return Err(format!("no domain is named \"{domain}\""));
        }
        match driver.attached(device, bdf) {
            Some(now) if now == domain => return Ok(AttachStep::Done(DriverWork::default())),
            Some(_) => return Ok(AttachStep::Detached(self.detach(driver, device, bdf)?)),
            None => {}
        }
        let refused = match driver.unit_of(device) {
            Some(u) if matches!(self.vendor, Vendor::Vtd { .. }) => self.refusal(domain, device, u),
            _ => None,
        };
        let refused = match refused {
            Some(why) => why,
            None => match driver.attach(device, bdf, domain)? {
                AttachOutcome::Attached(work) => {
                    self.resync_units(driver, domain);
                    return Ok(AttachStep::Done(work));
                }
                AttachOutcome::Refused(why) => why,
            },
        };
        if let Some(d) = self.domains.get_mut(domain) {
            d.refused
                .push(format!("{refused}, by {who}: left detached"));
        }
        Ok(AttachStep::Done(DriverWork::default()))
    }

    /// A program's `detach` of `device`: its DMA is blocked from now on. Nothing happens
    /// to a device that is not attached.
    pub fn detach(
        &mut self,
        driver: &mut Driver,
        device: &str,
        bdf: Bdf,
    ) -> Result<DriverWork, String> {
        let old = driver.attached(device, bdf);
        let work = driver.detach(device, bdf)?;
        if let Some(old) = old {
            self.resync_units(driver, &old);
        }
        Ok(work)
    }

    /// A VT-d domain spans the units of the devices attached to it now.
    fn resync_units(&mut self, driver: &Driver, domain: &str) {
        if !matches!(self.vendor, Vendor::Vtd { .. }) {
            return;
        }
        if let Some(d) = self.domains.get_mut(domain) {
            d.units = driver.domain_units(domain);
        }
    }
}
