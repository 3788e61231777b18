//! The AMD IOMMU's caches: a device-table-entry cache, an IOTLB over every page size a
//! domain uses, and a page-directory cache per level, each a counting set-associative array
//! (AMD IOMMU §2.2 describes what may be cached; the shapes are configuration).

use crate::pte::level_shift;
use crate::walk::{Device, Leaf, TableStep};
use model_core::{CacheCounts, CountedCache};
use std::collections::{BTreeMap, BTreeSet};

/// Page-directory cache levels: PDEs live at levels 2..=6.
pub(crate) const PDC_LEVELS: [u8; 5] = [2, 3, 4, 5, 6];
/// Bits of a page or prefix number in a cache key (the rest holds the DomainID and size).
const NUMBER_BITS: u32 = 42;

/// The unit's caches.
#[derive(Debug, Clone)]
pub(crate) struct Caches {
    pub(crate) dte: CountedCache<Device>,
    pub(crate) iotlb: CountedCache<Leaf>,
    pub(crate) iotlb_counts: CacheCounts,
    /// Page sizes (shifts) present in the IOTLB per domain: the probes a lookup makes.
    pub(crate) sizes: BTreeMap<u16, BTreeSet<u32>>,
    pub(crate) pdc: Vec<CountedCache<TableStep>>,
}

/// A cache key: the page or prefix number's low 42 bits, the DomainID and the page shift.
/// Numbers wider than 42 bits (inputs at or above 2^54) share keys with lower ones; every
/// hit is checked against the full tag, so such a collision is a conflict miss, never a
/// wrong translation.
fn key(number: u64, domain: u16, shift: u32) -> Option<u64> {
    Some(
        (number & ((1 << NUMBER_BITS) - 1))
            | (u64::from(domain) << NUMBER_BITS)
            | (u64::from(shift & 0x3f) << 58),
    )
}

impl Caches {
    pub(crate) fn iotlb_lookup(&mut self, domain: u16, iova: u64) -> Option<Leaf> {
        let shifts: Vec<u32> = self
            .sizes
            .get(&domain)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        let hit = shifts.into_iter().find_map(|shift| {
            let k = key(iova.checked_shr(shift)?, domain, shift)?;
            self.iotlb
                .probe(k)
                .filter(|l| l.domain == domain && iova & !(l.size - 1) == l.iova_base)
        });
        match hit {
            Some(_) => self.iotlb_counts.hits += 1,
            None => self.iotlb_counts.misses += 1,
        }
        hit
    }

    pub(crate) fn iotlb_fill(&mut self, l: &Leaf) {
        let shift = l.size.trailing_zeros();
        if let Some(k) = key(l.iova_base >> shift, l.domain, shift) {
            self.iotlb.insert(k, *l);
            self.sizes.entry(l.domain).or_default().insert(shift);
        }
    }

    pub(crate) fn pdc_lookup(&mut self, domain: u16, levels: u8, iova: u64) -> Option<TableStep> {
        for (i, &level) in PDC_LEVELS.iter().enumerate() {
            if level > levels {
                break;
            }
            let k = iova
                .checked_shr(level_shift(level))
                .and_then(|n| key(n, domain, 0));
            let prefix = iova.checked_shr(level_shift(level));
            let hit = match k {
                Some(k) => match self.pdc[i].probe(k) {
                    Some(t) if Some(t.prefix) == prefix => {
                        self.pdc[i].count_hit();
                        Some(t)
                    }
                    _ => {
                        self.pdc[i].count_miss();
                        None
                    }
                },
                None => {
                    self.pdc[i].count_miss();
                    None
                }
            };
            if hit.is_some() {
                return hit;
            }
        }
        None
    }

    pub(crate) fn pdc_fill(&mut self, domain: u16, steps: &[TableStep]) {
        for s in steps {
            if let (Some(i), Some(k)) = (
                PDC_LEVELS.iter().position(|&l| l == s.level),
                key(s.prefix, domain, 0),
            ) {
                self.pdc[i].insert(k, *s);
            }
        }
    }

    /// INVALIDATE_IOMMU_PAGES (§2.4.3): the domain's IOTLB entries overlapping
    /// `[first, last]`, and with PDE its page-directory entries covering it.
    pub(crate) fn invalidate_pages(&mut self, domain: u16, first: u64, last: u64, pde: bool) {
        let overlaps =
            |base: u64, bytes: u64| base <= last && first <= base.saturating_add(bytes - 1);
        self.iotlb
            .retain(|_, l| !(l.domain == domain && overlaps(l.iova_base, l.size)));
        if pde {
            for (a, level) in self.pdc.iter_mut().zip(PDC_LEVELS) {
                let shift = level_shift(level);
                a.retain(|k, s| {
                    let d = ((k >> NUMBER_BITS) & 0xffff) as u16;
                    let base = s.prefix.checked_shl(shift).unwrap_or(u64::MAX);
                    !(d == domain && overlaps(base, 1u64.checked_shl(shift).unwrap_or(u64::MAX)))
                });
            }
        }
    }

    pub(crate) fn invalidate_all(&mut self) {
        self.dte.retain(|_, _| false);
        self.iotlb.retain(|_, _| false);
        self.sizes.clear();
        for a in &mut self.pdc {
            a.retain(|_, _| false);
        }
    }
}
