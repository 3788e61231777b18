//! How domains come to span IOMMU units (VT-d remapping units, AMD IOMMUs) as the host
//! attaches devices, and what the domain API makes of it (the hazard of Alex Williamson's review of the no-snoop
//! series: "make a domain that supports iommu_snooping, set enforce_no_snoop = true, then
//! add another DMAR to the domain that may not support iommu_snooping").
//!
//! `attach[]` entries attach in list order. Those without `after_maps` attach first (VFIO
//! attaches the container's first groups, then `enforce_cache_coherency()` and the maps of
//! the guest's memory follow); the `after_maps` entries join once the boot mappings exist
//! (a group added to the container's existing domain later). The order decides what the
//! API decides; the boot's table writes keep their own order (every domain's tables, then
//! the context entries), all of them done before the workload starts.
//!
//! - Before v5.19 nothing refuses the join. `intel_iommu_map` decided SNP per map from the
//!   domain's `iommu_snooping`, which this model computes over the units attached when the
//!   map is made (as kernels that kept it per `domain->iommu_bmp` did, and as the review
//!   feared; Linux 5.x computed it over every active unit, which a single unit without SC
//!   turned off everywhere). A unit without snoop control that joins later walks leaves
//!   with SNP set, a reserved bit for it (fault 0xC), and maps made after it joined drop
//!   SNP, so No Snoop from the first device passes again.
//! - From v5.19 an enforced domain refuses a device behind a unit without ECAP.SC
//!   (9d6ab26a75f4: -EOPNOTSUPP, later -EMEDIUMTYPE, now -EINVAL from
//!   `paging_domain_compatible`). VFIO then keeps the device in a domain of its own,
//!   `<domain>-<device>`, in the same container (same mappings; VFIO type1 reaches the same
//!   end by matching domains on their enforcement flag); enforcement fails there, so KVM
//!   registers non-coherent DMA and emulates WBINVD.
//!
//! On AMD-Vi every attachment is made before the boot mappings and none is refused:
//! `amd_iommu_enforce_cache_coherency` succeeds whichever IOMMUs a domain spans (FC is
//! honoured by each), so the units only route invalidations.

use super::domain_api::{at, k, ApiDomain, DomainApi, Owner};
use super::driver::{Driver, HostError, Invalidation, UnitId};
use crate::scenario::amdvi::AmdUnit;
use crate::scenario::iommu::{MappingSpec, VtdSpec, VtdUnit};
use crate::scenario::{IommuInvalidateOp, IommuSpec, Step};
use model_core::MemWrite;
use std::collections::BTreeSet;
use vtd::entry::PageSize;

/// An IOMMU unit as the domain API sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiUnit {
    /// Its name.
    pub name: String,
    /// VT-d: ECAP.SC. AMD-Vi: always (every IOMMU honours FC, so
    /// `amd_iommu_enforce_cache_coherency` succeeds whatever the IOMMUs a domain spans).
    pub snoop_control: bool,
    /// Its device scope.
    pub devices: Vec<String>,
}

impl From<VtdUnit> for ApiUnit {
    fn from(u: VtdUnit) -> ApiUnit {
        ApiUnit {
            name: u.name,
            snoop_control: u.capabilities.snoop_control,
            devices: u.devices,
        }
    }
}

impl From<AmdUnit> for ApiUnit {
    fn from(u: AmdUnit) -> ApiUnit {
        ApiUnit {
            name: u.name,
            snoop_control: true,
            devices: u.devices,
        }
    }
}

/// Where an attachment of `attach[entry]` goes instead of the domain it names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Redirect {
    /// Index into `attach[]`.
    entry: usize,
    /// `None`: the device's RID domain; `Some(j)`: its `pasids[j]`.
    pasid: Option<usize>,
    /// The domain it goes to.
    domain: String,
}

/// A domain VFIO allocated for a device another domain refused.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Split {
    name: String,
    origin: String,
}

/// The attachments refused and where they went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attachments {
    redirects: Vec<Redirect>,
    splits: Vec<Split>,
}

impl DomainApi {
    /// The unit a device sits behind.
    fn unit_of(&self, device: &str) -> Option<UnitId> {
        let u = self
            .units
            .iter()
            .position(|u| u.devices.iter().any(|d| d == device))?;
        Some(UnitId(u as u8))
    }

    /// The attachments made before the boot mappings: on VT-d those without `after_maps`,
    /// on AMD-Vi every one.
    pub(super) fn attach_first(&mut self, iommu: &IommuSpec) {
        match iommu {
            IommuSpec::Vtd(v) => {
                for a in v.attach.iter().filter(|a| !a.after_maps) {
                    let pasids = a.pasids.iter().map(|p| p.domain.as_str());
                    self.join(&a.device, std::iter::once(a.domain.as_str()).chain(pasids));
                }
            }
            IommuSpec::Amdvi(v) => {
                for a in &v.attach {
                    self.join(&a.device, [a.domain.as_str()]);
                }
            }
            IommuSpec::None { .. } => {}
        }
    }

    /// `device` joins `domains` before their boot mappings are made.
    fn join<'a>(&mut self, device: &str, domains: impl IntoIterator<Item = &'a str>) {
        let Some(u) = self.unit_of(device) else {
            return;
        };
        for name in domains {
            if let Some(d) = self.domains.get_mut(name) {
                d.first_units.insert(u);
                d.units.insert(u);
            }
        }
    }

    /// The attachments made after the boot mappings: each joins its domain, unless the
    /// domain is enforced and the device's unit lacks snoop control.
    pub(super) fn attach_after_maps(&mut self, v: &VtdSpec) -> Result<(), HostError> {
        for (i, a) in v.attach.iter().enumerate().filter(|(_, a)| a.after_maps) {
            let Some(u) = self.unit_of(&a.device) else {
                continue;
            };
            let named = std::iter::once((None, &a.domain)).chain(
                a.pasids
                    .iter()
                    .enumerate()
                    .map(|(j, p)| (Some(j), &p.domain)),
            );
            for (pasid, name) in named {
                if !self.domains.contains_key(name) {
                    continue; // the driver names the unknown domain
                }
                let Some(why) = self.refusal(name, &a.device, u) else {
                    if let Some(d) = self.domains.get_mut(name) {
                        d.units.insert(u);
                    }
                    continue;
                };
                let split = self.split_off(name, &a.device, u).map_err(|m| {
                    let steps = vec![k("platform"), k("iommu"), k("vtd"), k("attach")];
                    at([steps, vec![Step::Index(i), k("device")]].concat(), m)
                })?;
                if let Some(d) = self.domains.get_mut(name) {
                    if !d.refused.contains(&why) {
                        d.refused.push(why);
                    }
                }
                self.attach.redirects.push(Redirect {
                    entry: i,
                    pasid,
                    domain: split,
                });
            }
        }
        Ok(())
    }

    /// The VFIO domain `<origin>-<device>` for a device `origin` refused, behind unit `u`
    /// (allocated once; VFIO calls `enforce_cache_coherency()` on it too).
    fn split_off(&mut self, origin: &str, device: &str, u: UnitId) -> Result<String, String> {
        let name = format!("{origin}-{device}");
        if self.attach.splits.iter().any(|s| s.name == name) {
            return Ok(name);
        }
        if self.domains.contains_key(&name) {
            return Err(format!(
                "\"{origin}\" refuses the device, and the domain VFIO would allocate for it, \
                 \"{name}\", is already a domain of the scenario: rename that domain"
            ));
        }
        let Some(o) = self.domains.get_mut(origin) else {
            return Err(format!("no domain is named \"{origin}\""));
        };
        o.split.push(name.clone());
        let mut d = ApiDomain::new(Owner::Vfio, o.leaf_bit, o.pgsnp_domain);
        d.parent = o.parent.clone();
        d.first_units = BTreeSet::from([u]);
        d.units = d.first_units.clone();
        // Listed after its origin and the domains split off it before.
        let at = self.order.iter().position(|n| n == origin).unwrap_or(0);
        let after = self.domains.get(origin).map_or(0, |o| o.split.len());
        self.order
            .insert((at + after).min(self.order.len()), name.clone());
        self.domains.insert(name.clone(), d);
        self.allocate_vfio_domain(&name);
        self.attach.splits.push(Split {
            name: name.clone(),
            origin: origin.to_owned(),
        });
        Ok(name)
    }

    /// Adds the split domains to the VT-d section, each a copy of its origin (its boot
    /// mappings; the API decides their snoop bits) with the smallest free domain id, and
    /// sends the refused attachments to them.
    pub(super) fn add_split_domains(&self, v: &mut VtdSpec) {
        for s in &self.attach.splits {
            let Some(origin) = v.domains.iter().find(|d| d.name == s.origin) else {
                continue;
            };
            let used: BTreeSet<u64> = v.domains.iter().map(|d| d.id.0).collect();
            let mut d = origin.clone();
            d.name = s.name.clone();
            d.id.0 = (1..).find(|id| !used.contains(id)).unwrap_or(1);
            v.domains.push(d);
        }
        for r in &self.attach.redirects {
            let Some(a) = v.attach.get_mut(r.entry) else {
                continue;
            };
            match r.pasid {
                None => a.domain = r.domain.clone(),
                Some(j) => {
                    if let Some(p) = a.pasids.get_mut(j) {
                        p.domain = r.domain.clone();
                    }
                }
            }
        }
    }

    /// The domains an operation on `domain` reaches: it and the domains VFIO split off it
    /// (one container: `vfio_iommu_map` and `vfio_unmap_unpin` go to each of its domains).
    pub fn container<'a>(&'a self, domain: &'a str) -> Vec<&'a str> {
        let mut v = vec![domain];
        if let Some(d) = self.domains.get(domain) {
            v.extend(d.split.iter().map(String::as_str));
        }
        v
    }

    /// A map call on `domain`, as the host makes it: into each domain of its container,
    /// with the snoop bit the API decides for that domain.
    pub fn map(
        &self,
        driver: &mut Driver,
        domain: &str,
        m: &MappingSpec,
        out: &mut Vec<MemWrite>,
    ) -> Result<(), String> {
        for d in self.container(domain) {
            driver.map(d, &self.mapping(d, m), out)?;
        }
        Ok(())
    }

    /// An unmap call on `domain`: from each domain of its container.
    pub fn unmap(
        &self,
        driver: &mut Driver,
        domain: &str,
        iova: u64,
        bytes: u64,
        size: PageSize,
        out: &mut Vec<MemWrite>,
    ) -> Result<(), String> {
        for d in self.container(domain) {
            driver.unmap(d, iova, bytes, size, out)?;
        }
        Ok(())
    }

    /// An invalidation: of each domain of the container when it names a domain, each to
    /// the units that domain spans; a global one to every unit.
    pub fn invalidate(
        &self,
        driver: &mut Driver,
        op: &IommuInvalidateOp,
    ) -> Result<Vec<(UnitId, Invalidation)>, String> {
        let Some(domain) = op.domain.as_deref() else {
            return driver.invalidate(op);
        };
        let mut v = Vec::new();
        for d in self.container(domain) {
            let op = IommuInvalidateOp {
                domain: Some(d.to_owned()),
                ..op.clone()
            };
            v.extend(driver.invalidate(&op)?);
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_domain_api_sees_the_amd_iommus_a_domain_spans() {
        let text = r#"{"name": "u", "seed": 1,
            "platform": {"iommu": {"amdvi": {
              "units": [{"name": "iommu0", "devices": ["gpu"]},
                        {"name": "iommu1", "devices": ["nic", "fpga"]}],
              "domains": [{"name": "shared", "id": 1}, {"name": "own", "id": 2},
                          {"name": "idle", "id": 3}],
              "attach": [{"device": "gpu", "domain": "shared"},
                         {"device": "nic", "domain": "shared"},
                         {"device": "fpga", "domain": "own"}]}}},
            "devices": [{"name": "gpu", "bdf": "01:00.0"}, {"name": "nic", "bdf": "02:00.0"},
                        {"name": "fpga", "bdf": "03:00.0"}],
            "workload": {"program": {}}}"#;
        let s = crate::scenario::parse(Path::new("<t>"), text)
            .unwrap()
            .scenario;
        let api = DomainApi::new(&s).unwrap();
        let names: Vec<&str> = api.units.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["iommu0", "iommu1"]);
        assert!(api.units.iter().all(|u| u.snoop_control));
        let units = |d: &str| api.domains[d].units.iter().map(|u| u.0).collect::<Vec<_>>();
        assert_eq!(units("shared"), [0, 1]);
        assert_eq!(units("own"), [1]);
        assert!(units("idle").is_empty());
        // Every AMD-Vi attachment is made before the boot mappings.
        assert_eq!(
            api.domains["shared"].first_units,
            api.domains["shared"].units
        );
    }
}
