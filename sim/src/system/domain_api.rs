//! The IOMMU domain API as the host kernel implements it: which leaves get VT-d SNP or
//! AMD-Vi FC, which PASID entries get PGSNP, whether `enforce_cache_coherency()` succeeds,
//! and whether KVM learns that its guest has non-coherent DMA.
//!
//! Two definitions are modelled (`software.semantics`), from the series "Make the iommu
//! driver no-snoop block feature consistent" (v5.19; SPEC-NOTES §3.7, §4.3, §5, §6):
//!
//! - **before v5.19** `intel_iommu_map` set `DMA_PTE_SNP` when the map carried IOMMU_CACHE
//!   and the domain's units had snoop control (ECAP.SC); VFIO type1 added IOMMU_CACHE to
//!   every map when `iommu_capable(IOMMU_CAP_CACHE_COHERENCY)`, and the kvm-vfio device
//!   registered non-coherent DMA with KVM when it did not hold. In scalable mode a VFIO
//!   (unmanaged) domain's PASID entries always got PGSNP, and so in v5.13-v5.18 a unit in
//!   scalable mode counted as snooping whatever its ECAP.SC (commit 6c00612d0cba).
//! - **v5.19 and later** IOMMU_CACHE says only that a device's normal DMA is coherent.
//!   VFIO calls `enforce_cache_coherency()` on a domain before its first map. VT-d succeeds
//!   when every unit behind which the domain's devices sit has ECAP.SC (and, for a
//!   second-level domain, before it has mappings); then every later second-level leaf gets
//!   SNP (`set_pte_snp`) and a first-level domain's PASID entries get PGSNP. AMD-Vi returns
//!   true ("IOMMU_PTE_FC is always set"). A domain where it failed makes KVM register
//!   non-coherent DMA (`kvm_vfio_update_coherency`).
//!
//! KVM turns a guest's WBINVD into a no-op unless non-coherent DMA is registered
//! (`kvm_emulate_wbinvd_noskip`); then it runs WBINVD on every pCPU in the vCPU's
//! `wbinvd_dirty_mask`, by IPI (see `kvm.rs`).
//!
//! **A domain spanning VT-d units** (Alex Williamson's review of the series): a domain's
//! page tables serve every unit its devices sit behind, so what one unit lacks matters to
//! all. `attach[]` entries attach in list order, those without `after_maps` first; the boot
//! mappings are made after them, and the `after_maps` entries join last (`units.rs`).
//! Before v5.19 the SNP decision is taken per map over the units attached at that moment,
//! so a unit without snoop control that joins later walks leaves with SNP set (a reserved
//! bit there: fault 0xC) and the maps made after it joined lack SNP. From v5.19 an enforced
//! domain refuses a device behind a unit without ECAP.SC (9d6ab26a75f4, today's
//! `paging_domain_compatible` -EINVAL); VFIO gives that device a domain of its own (the
//! same mappings, not enforced), and KVM learns of non-coherent DMA.
//!
//! **At run time** a program can call `enforce_cache_coherency()`, attach and detach
//! devices (`api_ops.rs`). KVM's decision is taken once, when the kvm-vfio device learns of
//! the guest's VFIO groups, and none of these changes it.

use super::driver::{HostError, UnitId};
use super::units::{ApiUnit, Attachments};
use crate::scenario::amdvi::{AmdDomainKind, FcPolicy};
use crate::scenario::iommu::{DomainKind, MappingSpec, PageSpec, TableMode};
use crate::scenario::software::{KvmSpec, Semantics};
use crate::scenario::values::{Bounded, HexAddr};
use crate::scenario::{IommuSpec, Scenario, Step};
use reports::{DomainDecision, HostReport, KvmDecision};
use std::collections::{BTreeMap, BTreeSet};

pub(super) fn k(s: &str) -> Step {
    Step::Key(s.to_owned())
}

pub(super) fn at(steps: Vec<Step>, message: impl Into<String>) -> HostError {
    HostError {
        steps,
        message: message.into(),
    }
}

/// Who allocated a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// No domain API: the scenario's bits are the tables' bits.
    Raw,
    /// VFIO, for a device passed through to the guest.
    Vfio,
    /// An in-kernel driver, through the DMA API.
    DmaApi,
}

/// What `enforce_cache_coherency()` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enforce {
    /// Nobody called it.
    NotCalled,
    /// The domain blocks No Snoop from now on.
    Succeeded,
    /// It failed, for this reason.
    Failed(String),
}

/// The API's state of one domain.
#[derive(Debug, Clone)]
pub(super) struct ApiDomain {
    pub(super) owner: Owner,
    pub(super) enforce: Enforce,
    /// VFIO's maps carry IOMMU_CACHE (always from v5.19; before, when the capability held).
    vfio_cache: bool,
    /// The leaves of this domain can carry the vendor's snoop bit (second-level VT-d, or
    /// AMD-Vi paged).
    pub(super) leaf_bit: bool,
    /// A first-level or nested VT-d domain: snooping is forced by PGSNP, not by a leaf.
    pub(super) pgsnp_domain: bool,
    /// The parent of a nested domain, whose enforcement its children inherit.
    pub(super) parent: Option<String>,
    /// The units its devices sat behind when its boot mappings were made.
    pub(super) first_units: BTreeSet<UnitId>,
    /// The units its devices sit behind once every attachment is made.
    pub(super) units: BTreeSet<UnitId>,
    /// Devices whose attachment it refused, and why: `nic (dmar1: ECAP.SC = 0)`.
    pub(super) refused: Vec<String>,
    /// The VFIO domains split off it for the devices it refused (same container: VFIO
    /// maps and unmaps in each).
    pub(super) split: Vec<String>,
    /// `enforce` succeeded by a program's call, after boot: a second-level domain's PASID
    /// entries were not rewritten (only later leaves get SNP).
    pub(super) late: bool,
    /// The programs' `enforce` calls on it and their outcomes (`api_ops.rs`).
    pub(super) enforce_calls: Vec<String>,
}

impl ApiDomain {
    pub(super) fn new(owner: Owner, leaf_bit: bool, pgsnp_domain: bool) -> ApiDomain {
        ApiDomain {
            owner,
            enforce: Enforce::NotCalled,
            vfio_cache: true,
            leaf_bit,
            pgsnp_domain,
            parent: None,
            first_units: BTreeSet::new(),
            units: BTreeSet::new(),
            refused: Vec::new(),
            split: Vec::new(),
            late: false,
            enforce_calls: Vec::new(),
        }
    }
}

/// The vendor facts the API's decisions depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Vendor {
    None,
    Vtd { scalable: bool },
    Amdvi { fc: FcPolicy },
}

/// The host's domain API, VFIO and KVM state.
#[derive(Debug, Clone)]
pub struct DomainApi {
    semantics: Semantics,
    pub(super) vendor: Vendor,
    /// The platform's units (VT-d DMAR units or AMD IOMMUs).
    pub(super) units: Vec<ApiUnit>,
    /// By domain name, in scenario order of `order`.
    pub(super) domains: BTreeMap<String, ApiDomain>,
    pub(super) order: Vec<String>,
    /// VT-d: the attachments, in the order they are made, and where refused ones went.
    pub(super) attach: Attachments,
    kvm: Option<KvmSpec>,
    /// What KVM decided when the kvm-vfio device learnt of the guest's VFIO files. It
    /// re-evaluates coherency only when a group is added or removed
    /// (`kvm_vfio_update_coherency`), so the programs' `enforce`, `attach` and `detach`
    /// never change it.
    kvm_decision: Option<KvmDecision>,
}

impl DomainApi {
    /// The decisions for a scenario; refuses combinations the kernel does not have.
    pub fn new(s: &Scenario) -> Result<DomainApi, HostError> {
        let sw = &s.software;
        let sw_path = |rest: &[Step]| {
            let mut p = vec![k("software")];
            p.extend_from_slice(rest);
            p
        };
        let semantics = sw.semantics;
        let api = semantics != Semantics::None;
        if !api && !sw.vfio_domains.is_empty() {
            return Err(at(
                sw_path(&[k("vfio_domains")]),
                "VFIO allocates its domains through the domain API: set software.semantics to \
                 \"pre_v5_19\" or \"v5_19\"",
            ));
        }
        let vfio: BTreeSet<&str> = sw.vfio_domains.iter().map(String::as_str).collect();
        let mut domains = BTreeMap::new();
        let mut order = Vec::new();
        let mut units = Vec::new();
        let vendor;
        match &s.platform.iommu {
            IommuSpec::None { .. } => {
                vendor = Vendor::None;
                if !sw.vfio_domains.is_empty() {
                    return Err(at(
                        sw_path(&[k("vfio_domains")]),
                        "VFIO domains need an IOMMU: platform.iommu is \"none\"",
                    ));
                }
            }
            IommuSpec::Vtd(v) => {
                vendor = Vendor::Vtd {
                    scalable: v.mode == TableMode::Scalable,
                };
                let names: Vec<&str> = s.devices.iter().map(|d| d.name.as_str()).collect();
                units = v
                    .units(&names)
                    .map_err(|(steps, m)| at(steps, m))?
                    .into_iter()
                    .map(ApiUnit::from)
                    .collect();
                for (i, d) in v.domains.iter().enumerate() {
                    let here = |rest: &[Step]| {
                        let mut p = vec![
                            k("platform"),
                            k("iommu"),
                            k("vtd"),
                            k("domains"),
                            Step::Index(i),
                        ];
                        p.extend_from_slice(rest);
                        p
                    };
                    let owner = owner(api, vfio.contains(d.name.as_str()));
                    if api && d.pgsnp {
                        return Err(at(
                            here(&[k("pgsnp")]),
                            "with software.semantics set, the domain API decides PGSNP: leave \
                             pgsnp false",
                        ));
                    }
                    if let Some(j) = d.mappings.iter().position(|m| m.snp).filter(|_| api) {
                        return Err(at(
                            here(&[k("mappings"), Step::Index(j), k("snp")]),
                            "with software.semantics set, the domain API decides SNP: leave snp \
                             false and say IOMMU_CACHE with cache",
                        ));
                    }
                    if semantics == Semantics::PreV5_19 && d.kind == DomainKind::Nested {
                        return Err(at(
                            here(&[k("kind")]),
                            "nested translation came with iommufd (v6.7), after v5.19: use \
                             software.semantics \"v5_19\"",
                        ));
                    }
                    if owner == Owner::Vfio && d.kind == DomainKind::PassThrough {
                        return Err(at(
                            here(&[k("kind")]),
                            "VFIO domains are paging domains: a pass-through domain cannot be \
                             a VFIO domain",
                        ));
                    }
                    order.push(d.name.clone());
                    let mut dom = ApiDomain::new(
                        owner,
                        d.kind == DomainKind::SecondLevel,
                        matches!(d.kind, DomainKind::FirstLevel | DomainKind::Nested),
                    );
                    dom.parent = d.parent.clone();
                    domains.insert(d.name.clone(), dom);
                }
            }
            IommuSpec::Amdvi(a) => {
                vendor = Vendor::Amdvi {
                    fc: a.force_coherent,
                };
                if a.force_coherent == FcPolicy::EnforcedDomains && semantics != Semantics::V5_19 {
                    return Err(at(
                        vec![k("platform"), k("iommu"), k("amdvi"), k("force_coherent")],
                        "\"enforced_domains\" sets FC where enforce_cache_coherency() succeeded, \
                         which needs software.semantics \"v5_19\"",
                    ));
                }
                if api && a.force_coherent == FcPolicy::PerMapping {
                    return Err(at(
                        vec![k("platform"), k("iommu"), k("amdvi"), k("force_coherent")],
                        "with the domain API the driver decides FC (Linux: \"every_mapping\"; \
                         \"enforced_domains\" for FC only where enforcement succeeded); \
                         \"per_mapping\" is for scenarios without software.semantics",
                    ));
                }
                for (i, d) in a.domains.iter().enumerate() {
                    let owner = owner(api, vfio.contains(d.name.as_str()));
                    if owner == Owner::Vfio && d.kind == AmdDomainKind::PassThrough {
                        return Err(at(
                            vec![
                                k("platform"),
                                k("iommu"),
                                k("amdvi"),
                                k("domains"),
                                Step::Index(i),
                                k("kind"),
                            ],
                            "VFIO domains are paging domains: a pass-through domain cannot be \
                             a VFIO domain",
                        ));
                    }
                    order.push(d.name.clone());
                    domains.insert(
                        d.name.clone(),
                        ApiDomain::new(owner, d.kind == AmdDomainKind::Paged, false),
                    );
                }
                let names: Vec<&str> = s.devices.iter().map(|d| d.name.as_str()).collect();
                units = a
                    .units(&names)
                    .map_err(|(steps, m)| at(steps, m))?
                    .into_iter()
                    .map(ApiUnit::from)
                    .collect();
            }
        }
        for (i, name) in sw.vfio_domains.iter().enumerate() {
            if !domains.contains_key(name) {
                return Err(at(
                    sw_path(&[k("vfio_domains"), Step::Index(i)]),
                    format!("no domain is named \"{name}\" in platform.iommu"),
                ));
            }
        }
        if let Some(kvm) = &sw.kvm {
            check_kvm(s, kvm)?;
        }
        let mut api = DomainApi {
            semantics,
            vendor,
            units,
            domains,
            order,
            attach: Attachments::default(),
            kvm: sw.kvm.clone(),
            kvm_decision: None,
        };
        api.attach_first(&s.platform.iommu);
        api.allocate_vfio_domains();
        if let IommuSpec::Vtd(v) = &s.platform.iommu {
            api.attach_after_maps(v)?;
        }
        api.kvm_decision = api.kvm_decision();
        Ok(api)
    }

    /// The definition in force.
    pub(super) fn semantics(&self) -> Semantics {
        self.semantics
    }

    /// VFIO's `vfio_iommu_type1_attach_group` for each of its domains, after its first
    /// devices are attached and before any map.
    fn allocate_vfio_domains(&mut self) {
        let names: Vec<String> = self
            .domains
            .iter()
            .filter(|(_, d)| d.owner == Owner::Vfio)
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            self.allocate_vfio_domain(&name);
        }
    }

    /// VFIO's decisions for one of its domains, over the units attached so far.
    pub(super) fn allocate_vfio_domain(&mut self, name: &str) {
        let Some(d) = self.domains.get(name) else {
            return;
        };
        // IOMMU_CAP_CACHE_COHERENCY before v5.19 (VT-d's `iommu_snooping`, AMD-Vi always);
        // `enforce_cache_coherency()` from v5.19 (VT-d: every unit has ECAP.SC).
        let semantics = self.semantics;
        let lacking = match (self.vendor, semantics) {
            (Vendor::Vtd { .. }, Semantics::PreV5_19) => self.not_snooping(&d.first_units),
            (Vendor::Vtd { .. }, _) => self.lacking_sc(&d.first_units),
            _ => None,
        };
        let Some(d) = self.domains.get_mut(name) else {
            return;
        };
        match semantics {
            Semantics::None => {}
            Semantics::PreV5_19 => d.vfio_cache = lacking.is_none(),
            Semantics::V5_19 => {
                d.enforce = match lacking {
                    Some(who) => {
                        Enforce::Failed(format!("{who} lacks snoop control (ECAP.SC = 0)"))
                    }
                    None => Enforce::Succeeded,
                }
            }
        }
    }

    /// The first unit of `set` (every unit when it is empty: a domain attached nowhere
    /// yet, judged as Linux 5.x judged `iommu_snooping`, over every unit) without snoop
    /// control, named for a message: "the unit" on a one-unit platform.
    pub(super) fn lacking_sc(&self, set: &BTreeSet<UnitId>) -> Option<String> {
        let all: BTreeSet<UnitId> = (0..self.units.len()).map(|u| UnitId(u as u8)).collect();
        let set = if set.is_empty() { &all } else { set };
        let u = set
            .iter()
            .find(|u| self.units.get(u.index()).is_some_and(|u| !u.snoop_control))?;
        Some(if self.units.len() == 1 {
            "the unit".to_owned()
        } else {
            self.units[u.index()].name.clone()
        })
    }

    /// Before v5.19, the first unit of `set` that does not count as snooping for
    /// `iommu_snooping`: in v5.13-v5.18 (`domain_update_iommu_snooping`, commit
    /// 6c00612d0cba) a unit in scalable mode always counts, since the driver sets PGSNP for
    /// unmanaged domains; otherwise one without ECAP.SC.
    fn not_snooping(&self, set: &BTreeSet<UnitId>) -> Option<String> {
        match self.vendor {
            Vendor::Vtd { scalable: true } => None,
            _ => self.lacking_sc(set),
        }
    }

    /// Whether VFIO owns the domain.
    pub fn is_vfio(&self, name: &str) -> bool {
        self.domains
            .get(name)
            .is_some_and(|d| d.owner == Owner::Vfio)
    }

    /// Whether a domain's No Snoop is blocked by the PASID entry's PGSNP.
    fn pgsnp(&self, name: &str) -> bool {
        let Some(d) = self.domains.get(name) else {
            return false;
        };
        let Vendor::Vtd { scalable: true } = self.vendor else {
            return false;
        };
        match self.semantics {
            Semantics::None => false,
            // "we always set PASID-table-entry.PGSNP bit if the domain is managed outside
            // (UNMANAGED)" (intel_pasid_setup_second_level / domain_setup_first_level,
            // v5.13-v5.18, commit 6c00612d0cba).
            Semantics::PreV5_19 => d.owner == Owner::Vfio,
            // A nested domain's PASID entry takes PGSNP from its second-stage parent
            // (`intel_pasid_setup_nested`), which the driver reads from the parent's own
            // flag: its own stays clear.
            Semantics::V5_19 if d.parent.is_some() => false,
            // First-level domains: `domain_setup_first_level` /
            // `intel_pasid_setup_page_snoop_control`; second-level ones in scalable mode as
            // `intel_pasid_setup_second_level` does for a force-snooping domain (so nested
            // children inherit it) — when enforced before their PASID entries were written:
            // a program's late `enforce` only sets `set_pte_snp` on a second-level domain.
            Semantics::V5_19 => d.enforce == Enforce::Succeeded && !(d.late && d.leaf_bit),
        }
    }

    /// The mapping the driver writes for a map call `m` on `domain` at run time (every
    /// attachment made): the snoop bit as the API decides it. Unknown domains pass
    /// unchanged (the driver names them).
    pub fn mapping(&self, domain: &str, m: &MappingSpec) -> MappingSpec {
        self.mapping_over(domain, m, false)
    }

    /// The mapping for a map call on `domain`, made at boot (`boot`: only the first
    /// attachments are made) or at run time.
    fn mapping_over(&self, domain: &str, m: &MappingSpec, boot: bool) -> MappingSpec {
        let mut m = m.clone();
        let Some(d) = self.domains.get(domain) else {
            return m;
        };
        if self.semantics == Semantics::None || !d.leaf_bit {
            return m;
        }
        let cache = if d.owner == Owner::Vfio {
            d.vfio_cache
        } else {
            m.cache
        };
        match self.vendor {
            Vendor::Vtd { .. } => {
                // `intel_iommu_map`: IOMMU_CACHE && the domain's `iommu_snooping`, over the
                // units attached when the map is made.
                let units = if boot { &d.first_units } else { &d.units };
                m.snp = match self.semantics {
                    Semantics::PreV5_19 => cache && self.not_snooping(units).is_none(),
                    _ => d.enforce == Enforce::Succeeded,
                };
            }
            Vendor::Amdvi { fc } => {
                m.fc = match fc {
                    FcPolicy::EveryMapping => true,
                    FcPolicy::PerMapping => m.fc,
                    FcPolicy::EnforcedDomains => d.enforce == Enforce::Succeeded,
                };
            }
            Vendor::None => {}
        }
        m
    }

    /// The IOMMU section with the API's decisions written in: the snoop bit of every boot
    /// mapping and each domain's PGSNP.
    pub fn apply(&self, iommu: &IommuSpec) -> IommuSpec {
        let mut iommu = iommu.clone();
        if self.semantics == Semantics::None {
            return iommu;
        }
        match &mut iommu {
            IommuSpec::Vtd(v) => {
                self.add_split_domains(v);
                for d in &mut v.domains {
                    d.pgsnp = self.pgsnp(&d.name);
                    let name = d.name.clone();
                    for m in &mut d.mappings {
                        *m = self.mapping_over(&name, m, true);
                    }
                }
            }
            IommuSpec::Amdvi(a) => {
                for d in &mut a.domains {
                    let name = d.name.clone();
                    for m in &mut d.mappings {
                        *m = self.mapping(&name, m);
                    }
                }
            }
            IommuSpec::None { .. } => {}
        }
        iommu
    }

    /// KVM emulates the guest's WBINVD (non-coherent DMA is registered).
    pub fn wbinvd_emulated(&self) -> bool {
        self.kvm_decision
            .as_ref()
            .is_some_and(|k| k.noncoherent_dma)
    }

    /// The guest, if there is one.
    pub fn kvm(&self) -> Option<&KvmSpec> {
        self.kvm.as_ref()
    }

    /// Why KVM registered non-coherent DMA for the guest, or `None` when it did not.
    /// `kvm_vfio_update_coherency` asks VFIO whether every domain is coherent
    /// (`VFIO_DMA_CC_IOMMU` before v5.19, `vfio_file_enforced_coherent` after).
    pub fn noncoherent_dma(&self) -> Option<String> {
        let kvm = self.kvm.as_ref()?;
        let culprit = self
            .order
            .iter()
            .filter_map(|n| Some((n, self.domains.get(n)?)))
            .find(|(_, d)| {
                d.owner == Owner::Vfio
                    && match self.semantics {
                        Semantics::PreV5_19 => !d.vfio_cache,
                        _ => d.enforce != Enforce::Succeeded,
                    }
            })?;
        if !kvm.vfio_device {
            return None;
        }
        Some(match self.semantics {
            Semantics::PreV5_19 => format!(
                "VFIO domain \"{}\" maps without IOMMU_CACHE (no IOMMU_CAP_CACHE_COHERENCY), so \
                 VFIO_DMA_CC_IOMMU is false",
                culprit.0
            ),
            _ => format!(
                "enforce_cache_coherency() failed on VFIO domain \"{}\"",
                culprit.0
            ),
        })
    }

    /// Why the guest's WBINVD is a no-op although its DMA may be non-coherent, if it is.
    fn untold(&self) -> Option<String> {
        let kvm = self.kvm.as_ref()?;
        if kvm.vfio_device {
            return None;
        }
        let d = self.order.iter().find(|n| {
            self.domains.get(*n).is_some_and(|d| {
                d.owner == Owner::Vfio
                    && match self.semantics {
                        Semantics::PreV5_19 => !d.vfio_cache,
                        _ => d.enforce != Enforce::Succeeded,
                    }
            })
        })?;
        Some(format!(
            "VFIO domain \"{d}\" is not coherent, but the VMM did not add its device to the \
             kvm-vfio device, so KVM never heard of it"
        ))
    }

    /// Before v5.19: a VFIO domain whose units all had snoop control when VFIO allocated it
    /// (so it maps with IOMMU_CACHE and VFIO_DMA_CC_IOMMU holds) but that a unit without it
    /// joined later — KVM keeps WBINVD a no-op although No Snoop passes there.
    fn outgrown(&self) -> Option<String> {
        if self.semantics != Semantics::PreV5_19 {
            return None;
        }
        self.order.iter().find_map(|n| {
            let d = self.domains.get(n)?;
            let unit = self.lacking_sc(&d.units)?;
            (d.owner == Owner::Vfio && d.vfio_cache).then(|| {
                format!(
                    "VFIO_DMA_CC_IOMMU holds (VFIO domain \"{n}\" had snoop control on every \
                     unit when it was allocated), but {unit} (ECAP.SC = 0) joined it after its \
                     maps, so KVM ignores WBINVD although No Snoop passes there"
                )
            })
        })
    }

    /// The decisions, for the report; `None` when there is neither a domain API nor a guest
    /// (nor an attach a program made that was refused).
    pub fn report(&self) -> Option<HostReport> {
        let refusals = self.domains.values().any(|d| !d.refused.is_empty());
        if self.semantics == Semantics::None && self.kvm.is_none() && !refusals {
            return None;
        }
        let domains = self
            .order
            .iter()
            .filter_map(|n| Some((n, self.domains.get(n)?)))
            .map(|(name, d)| DomainDecision {
                name: name.clone(),
                owner: match d.owner {
                    Owner::Raw => "raw",
                    Owner::Vfio => "vfio",
                    Owner::DmaApi => "dma_api",
                }
                .to_owned(),
                enforce: match &d.enforce {
                    Enforce::NotCalled => "not called".to_owned(),
                    Enforce::Succeeded => "succeeded".to_owned(),
                    Enforce::Failed(why) => format!("failed: {why}"),
                },
                no_snoop: self.no_snoop(name, d),
                refused: d.refused.clone(),
                enforce_calls: d.enforce_calls.clone(),
            })
            .collect();
        Some(HostReport {
            semantics: match self.semantics {
                Semantics::None => "none",
                Semantics::PreV5_19 => "pre_v5_19",
                Semantics::V5_19 => "v5_19",
            }
            .to_owned(),
            domains,
            kvm: self.kvm_decision.clone().map(|mut k| {
                if self.domains.values().any(|d| !d.enforce_calls.is_empty()) {
                    k.reason.push_str(
                        " (decided when the VFIO groups were added: kvm-vfio re-evaluates only \
                         when a group is added or removed, so the programs' enforce calls \
                         leave it)",
                    );
                }
                k
            }),
        })
    }

    /// What KVM does with the guest's WBINVD, and why, from the VFIO domains' state.
    fn kvm_decision(&self) -> Option<KvmDecision> {
        self.kvm.as_ref().map(|_| match self.noncoherent_dma() {
            Some(reason) => KvmDecision {
                noncoherent_dma: true,
                wbinvd: "emulated".to_owned(),
                reason,
            },
            None => KvmDecision {
                noncoherent_dma: false,
                wbinvd: "no-op".to_owned(),
                reason: self
                    .untold()
                    .or_else(|| self.outgrown())
                    .unwrap_or_else(|| {
                        if self.domains.values().any(|d| d.owner == Owner::Vfio) {
                            "every VFIO domain blocks No Snoop, so KVM may ignore WBINVD"
                        } else {
                            "no device is passed through with VFIO: KVM has no non-coherent \
                             DMA to register"
                        }
                        .to_owned()
                    }),
            },
        })
    }

    /// What a No Snoop request through this domain's API-made mappings does.
    fn no_snoop(&self, name: &str, d: &ApiDomain) -> String {
        if self.semantics == Semantics::None {
            return "as the scenario's snp / pgsnp / fc bits say".to_owned();
        }
        if self.pgsnp(name) {
            return "blocked: PGSNP in the PASID entry".to_owned();
        }
        let probe = MappingSpec {
            iova: HexAddr(0),
            pa: HexAddr(0),
            bytes: Bounded(4096),
            page: PageSpec::default(),
            read: true,
            write: true,
            snp: false,
            cache: true,
            user: true,
            xd: false,
            fc: false,
            page_bytes: None,
        };
        let m = self.mapping(name, &probe);
        let boot = self.mapping_over(name, &probe, true);
        let parent_pgsnp = d.parent.as_deref().is_some_and(|p| self.pgsnp(p));
        match self.vendor {
            Vendor::Vtd { .. } if parent_pgsnp => {
                "blocked: PGSNP from the second-stage parent".to_owned()
            }
            Vendor::Vtd { .. } if !d.leaf_bit => "passes: no leaf snoop bit, no PGSNP".to_owned(),
            Vendor::Vtd { .. } if boot.snp && !m.snp => format!(
                "mixed: the boot mappings carry SNP, which {} (ECAP.SC = 0) faults as a reserved \
                 bit (reason 0xC); mappings made after it joined lack SNP, so No Snoop passes",
                self.lacking_sc(&d.units).unwrap_or_default()
            ),
            Vendor::Vtd { .. } if m.snp => match (self.semantics, d.owner) {
                (Semantics::PreV5_19, Owner::DmaApi) => {
                    "blocked on IOMMU_CACHE mappings: SNP".to_owned()
                }
                _ => "blocked: SNP on every leaf".to_owned(),
            },
            Vendor::Vtd { .. } => "passes: no SNP".to_owned(),
            Vendor::Amdvi { .. } if m.fc => "blocked: FC on every leaf".to_owned(),
            Vendor::Amdvi { .. } => "passes: no FC".to_owned(),
            Vendor::None => "passes: no IOMMU".to_owned(),
        }
    }
}

fn owner(api: bool, vfio: bool) -> Owner {
    match (api, vfio) {
        (false, _) => Owner::Raw,
        (true, true) => Owner::Vfio,
        (true, false) => Owner::DmaApi,
    }
}

/// The guest's vCPUs are the CPU programs; what they ran on must exist.
fn check_kvm(s: &Scenario, kvm: &KvmSpec) -> Result<(), HostError> {
    let cores = s.platform.cpu.cores.0;
    let plan = crate::scenario::templates::cpu_plan(s);
    let names: Vec<&String> = plan.keys().collect();
    for (name, pcpus) in &kvm.ran_on {
        let here = |rest: &[Step]| {
            let mut p = vec![k("software"), k("kvm"), k("ran_on"), k(name)];
            p.extend_from_slice(rest);
            p
        };
        if !names.contains(&name) {
            return Err(at(
                here(&[]),
                format!("no CPU program is named \"{name}\" (the vCPUs are the CPU programs)"),
            ));
        }
        if let Some(j) = pcpus.iter().position(|c| c.0 >= cores) {
            return Err(at(
                here(&[Step::Index(j)]),
                format!(
                    "pCPU {} does not exist: platform.cpu.cores is {cores}",
                    pcpus[j].0
                ),
            ));
        }
    }
    Ok(())
}
