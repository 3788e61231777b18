//! The VT-d driver's invalidations: which descriptors an operation stands for (global,
//! domain- or page-selective, with Linux's page-selective rounding and fallbacks), and which
//! units they go to — every unit for a global one, each unit a domain spans for a domain's
//! (Linux flushes every unit in a domain's `iommu_array`), each submission with its own wait.

use super::driver::{Invalidation, UnitId};
use super::vtd_host::VtdHost;
use crate::scenario::{InvalidateWhat, IommuInvalidateOp};
use std::collections::BTreeSet;
use vtd::qi::{ContextScope, InvDescriptor, IotlbScope, PasidCacheScope, PasidIotlbScope};
use vtd::regs::Capabilities;

impl VtdHost {
    /// The DIDs of the nested domains whose second level is `parent`.
    fn nested_children(&self, parent: &str) -> Vec<u16> {
        let Some(root) = self
            .domains
            .get(parent)
            .and_then(|d| d.sl.as_ref())
            .map(|sl| sl.root())
        else {
            return Vec::new();
        };
        self.domains
            .values()
            .filter(|d| d.parent.is_some_and(|(r, _)| r == root))
            .map(|d| d.id)
            .collect()
    }

    /// The descriptors an invalidation operation stands for on a unit with `caps`.
    pub fn descriptors(
        &self,
        op: &IommuInvalidateOp,
        caps: &Capabilities,
    ) -> Result<Vec<InvDescriptor>, String> {
        let did = match &op.domain {
            Some(n) => Some(
                self.domain_id(n)
                    .ok_or_else(|| format!("no domain is named \"{n}\""))?,
            ),
            None => None,
        };
        // The aligned block of 2^AM pages that covers [iova, iova + bytes), as Linux's
        // calculate_psi_aligned_address widens the mask (hardware aligns ADDR down).
        let page = |_did: u16| -> Option<(u64, u8)> {
            let start = op.iova.as_ref()?.0 & !0xfff;
            let end = op
                .iova
                .as_ref()?
                .0
                .saturating_add(op.bytes.map_or(1, |b| b.0));
            let mut am = 0u32;
            while am < 52 {
                let block = 1u64 << (12 + am);
                let base = start & !(block - 1);
                if base.saturating_add(block) >= end {
                    return Some((base, am as u8));
                }
                am += 1;
            }
            None
        };
        let iotlb = |did: Option<u16>| -> Result<InvDescriptor, String> {
            let scope = match did {
                None => IotlbScope::Global,
                Some(did) => match page(did) {
                    // Linux falls back to domain-selective when PSI is missing or the
                    // range exceeds MAMV (`iommu_flush_iotlb_psi`).
                    Some((addr, am)) if caps.psi && am <= caps.mamv => IotlbScope::Page {
                        did,
                        addr,
                        am,
                        ih: op.leaf_only,
                    },
                    _ => IotlbScope::Domain { did },
                },
            };
            Ok(InvDescriptor::Iotlb {
                scope,
                drain_reads: false,
                drain_writes: false,
            })
        };
        Ok(match op.what {
            InvalidateWhat::Iotlb => {
                // Translations of nested domains over this parent are tagged with their own
                // DIDs: flush them too (Linux cache_tag_flush_range, CACHE_TAG_NESTING_IOTLB).
                let mut v = vec![iotlb(did)?];
                if let Some(parent) = op.domain.as_deref() {
                    v.extend(self.nested_children(parent).into_iter().map(|child| {
                        InvDescriptor::Iotlb {
                            scope: IotlbScope::Domain { did: child },
                            drain_reads: false,
                            drain_writes: false,
                        }
                    }));
                }
                v
            }
            InvalidateWhat::Context => vec![InvDescriptor::ContextCache(match did {
                None => ContextScope::Global,
                Some(did) => ContextScope::Domain { did },
            })],
            InvalidateWhat::PasidCache => vec![InvDescriptor::PasidCache(match (did, op.pasid) {
                (Some(did), Some(p)) => PasidCacheScope::Pasid {
                    did,
                    pasid: p.0 as u32,
                },
                (Some(did), None) => PasidCacheScope::Domain { did },
                _ => PasidCacheScope::Global,
            })],
            InvalidateWhat::PasidIotlb => {
                let (Some(did), Some(p)) = (did, op.pasid) else {
                    return Err("pasid_iotlb needs a domain and a pasid".to_owned());
                };
                let pasid = p.0 as u32;
                vec![InvDescriptor::PasidIotlb(match page(did) {
                    Some((addr, am)) => PasidIotlbScope::Page {
                        did,
                        pasid,
                        addr,
                        am,
                        ih: op.leaf_only,
                    },
                    None => PasidIotlbScope::Pasid { did, pasid },
                })]
            }
            InvalidateWhat::All => {
                let mut v = vec![
                    InvDescriptor::ContextCache(ContextScope::Global),
                    iotlb(None)?,
                ];
                if self.units.first().is_some_and(|u| u.ctx.scalable()) {
                    v.push(InvDescriptor::PasidCache(PasidCacheScope::Global));
                }
                v
            }
        })
    }

    /// The units an invalidation goes to: every unit for a global one; for a domain's,
    /// the units it and its nested children are attached to (Linux flushes each unit in a
    /// domain's `iommu_array`), or every unit while it is attached to none.
    fn targets(&self, op: &IommuInvalidateOp) -> Result<Vec<usize>, String> {
        let Some(name) = op.domain.as_deref() else {
            return Ok(self.units.all());
        };
        let d = self
            .domains
            .get(name)
            .ok_or_else(|| format!("no domain is named \"{name}\""))?;
        let mut set: BTreeSet<usize> = d.units.iter().copied().collect();
        if let Some(root) = d.sl.as_ref().map(|sl| sl.root()) {
            for c in self.domains.values() {
                if c.parent.is_some_and(|(r, _)| r == root) {
                    set.extend(c.units.iter().copied());
                }
            }
        }
        Ok(self.units.units_of(&set.into_iter().collect::<Vec<_>>()))
    }

    /// What the driver writes for an invalidation, unit by unit: queued descriptors plus a
    /// wait, or register commands (Linux `qi_submit_sync`, `__iommu_flush_context`,
    /// `__iommu_flush_iotlb`), to each unit the operation concerns.
    pub fn invalidate(
        &mut self,
        op: &IommuInvalidateOp,
    ) -> Result<Vec<(UnitId, Invalidation)>, String> {
        let mut v = Vec::new();
        for u in self.targets(op)? {
            let descs = self.descriptors(op, &self.units[u].caps)?;
            let inv = self.units[u].submit(&descs);
            let inv = inv.map_err(|m| self.units.qualify(u, m))?;
            v.push((UnitId(u as u8), inv));
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::iommu::VtdSpec;

    fn host(domains: &str) -> VtdHost {
        let spec: VtdSpec = serde_json::from_str(&format!(
            r#"{{"capabilities": {{"scalable_mode": true, "second_level": true,
                 "first_level": true, "nested": true, "pasid": true, "pss": 19}},
                 "mode": "scalable", "domains": {domains}}}"#
        ))
        .unwrap();
        VtdHost::boot(&spec, &[]).unwrap().0
    }

    fn op(domain: &str, iova: u64, bytes: u64) -> IommuInvalidateOp {
        IommuInvalidateOp {
            what: InvalidateWhat::Iotlb,
            domain: Some(domain.to_owned()),
            iova: Some(crate::scenario::values::HexAddr(iova)),
            bytes: Some(crate::scenario::values::Bounded(bytes)),
            pasid: None,
            leaf_only: false,
        }
    }

    #[test]
    fn a_page_selective_invalidation_covers_an_unaligned_range_with_an_aligned_block() {
        let h = host(r#"[{"name": "d", "id": 1}]"#);
        // [0x3000, 0x5000) straddles an 8 KiB boundary: the smallest aligned power-of-two
        // block holding it is 32 KiB at 0 (AM = 3), as Linux calculate_psi_aligned_address.
        let d = h
            .descriptors(&op("d", 0x3000, 0x2000), &h.units[0].caps)
            .unwrap();
        let want = InvDescriptor::Iotlb {
            scope: IotlbScope::Page {
                did: 1,
                addr: 0,
                am: 3,
                ih: false,
            },
            drain_reads: false,
            drain_writes: false,
        };
        assert_eq!(d, vec![want]);
        // An aligned single page stays AM = 0.
        let d = h
            .descriptors(&op("d", 0x4000, 0x1000), &h.units[0].caps)
            .unwrap();
        assert!(matches!(
            d[0],
            InvDescriptor::Iotlb {
                scope: IotlbScope::Page {
                    addr: 0x4000,
                    am: 0,
                    ..
                },
                ..
            }
        ));
    }

    #[test]
    fn invalidating_a_parent_domain_also_flushes_its_nested_children() {
        let h = host(
            r#"[{"name": "s2", "id": 1},
                {"name": "guest", "id": 9, "kind": "nested", "parent": "s2"}]"#,
        );
        let d = h
            .descriptors(&op("s2", 0x4000, 0x1000), &h.units[0].caps)
            .unwrap();
        assert_eq!(d.len(), 2);
        assert!(matches!(
            d[1],
            InvDescriptor::Iotlb {
                scope: IotlbScope::Domain { did: 9 },
                ..
            }
        ));
    }
}
