//! The remapping hardware's translation caches (VT-d 4.1 §6.2): context cache, PASID cache,
//! IOTLB and paging-structure caches, each a set-associative array with hit and miss
//! counters, and the invalidation scopes of §6.5 applied to them.
//!
//! Every array is a [`model_core::SetAssoc`] keyed by a `u64` that packs the tags exactly (no hashing,
//! so two translations never alias): the page or prefix number sits in the low bits, which
//! pick the set, and a small interned number stands for the (domain id, PASID) tag.

use crate::entry::PageSize;
use crate::qi::{ContextScope, IotlbScope, PasidCacheScope, PasidIotlbScope};
use crate::walk::{
    level_shift, Context, ContextMode, Leaf, PasidCtx, TableKind, TableStep, WalkFault,
};
use model_core::{CacheCounts, CountedCache, SetAssocError};
use std::collections::BTreeMap;

/// Bits of a page or prefix number in a key: a 57-bit input address has 45 bits above 4 KiB.
const NUMBER_BITS: u32 = 45;
/// Bits of an interned (domain id, PASID) tag.
const TAG_BITS: u32 = 16;
/// Where the page size / table kind sits in a key.
const KIND_SHIFT: u32 = NUMBER_BITS + TAG_BITS;
/// Levels whose entries a paging-structure cache holds: PDE (2) to PML5E (5), §6.2.4.
pub const PSC_LEVELS: [u8; 4] = [2, 3, 4, 5];

/// The shape of one cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Sets (a power of two).
    pub sets: usize,
    /// Ways per set (1..=64).
    pub ways: usize,
}

/// The shapes of all caches of one remapping unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// IOTLB.
    pub iotlb: Geometry,
    /// One IOTLB array per page size (4 KiB, 2 MiB, 1 GiB) each of `iotlb`'s shape, or
    /// one array shared by all sizes.
    pub iotlb_split_by_size: bool,
    /// Context cache.
    pub context: Geometry,
    /// PASID cache (scalable mode).
    pub pasid: Geometry,
    /// Each level's paging-structure cache.
    pub psc: Geometry,
}

impl Default for CacheConfig {
    /// 64 IOTLB entries, fully associative: pcie-bench (Neugebauer et al., SIGCOMM 2018,
    /// §6.4) infers a 64-entry IOTLB on Xeon E5 from the knee of DMA throughput over window
    /// size. The other sizes are assumptions (Intel does not publish them).
    fn default() -> CacheConfig {
        CacheConfig {
            iotlb: Geometry { sets: 1, ways: 64 },
            iotlb_split_by_size: false,
            context: Geometry { sets: 1, ways: 16 },
            pasid: Geometry { sets: 1, ways: 16 },
            psc: Geometry { sets: 1, ways: 16 },
        }
    }
}

/// Interns (domain id, PASID tag) pairs as small numbers for keys.
#[derive(Debug, Clone, Default)]
struct Tags {
    ids: BTreeMap<(u16, Option<u32>), u16>,
    pairs: Vec<(u16, Option<u32>)>,
}

impl Tags {
    /// The number of a tag; `None` once 2^16 distinct tags exist (then nothing more is
    /// cached, which is always allowed).
    fn id(&mut self, did: u16, pasid: Option<u32>) -> Option<u16> {
        if let Some(&id) = self.ids.get(&(did, pasid)) {
            return Some(id);
        }
        let id = u16::try_from(self.pairs.len()).ok()?;
        self.ids.insert((did, pasid), id);
        self.pairs.push((did, pasid));
        Some(id)
    }

    fn find(&self, did: u16, pasid: Option<u32>) -> Option<u16> {
        self.ids.get(&(did, pasid)).copied()
    }

    fn pair(&self, id: u16) -> (u16, Option<u32>) {
        self.pairs
            .get(usize::from(id))
            .copied()
            .unwrap_or((u16::MAX, None))
    }
}

/// What an IOTLB entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IotlbEntry {
    /// A page translation.
    Page(Leaf),
    /// A not-present result: with CAP.CM = 1 hardware may cache it (§6.1), so software
    /// must invalidate after making an entry present.
    NotPresent {
        /// The fault it gave.
        fault: WalkFault,
        /// Fault Processing Disable.
        fpd: bool,
    },
}

fn size_code(s: PageSize) -> u64 {
    match s {
        PageSize::Size4K => 0,
        PageSize::Size2M => 1,
        PageSize::Size1G => 2,
    }
}

fn size_of_code(c: u64) -> PageSize {
    match c {
        1 => PageSize::Size2M,
        2 => PageSize::Size1G,
        _ => PageSize::Size4K,
    }
}

fn pack(number: u64, tag: u16, kind: u64) -> u64 {
    (number & ((1 << NUMBER_BITS) - 1)) | (u64::from(tag) << NUMBER_BITS) | (kind << KIND_SHIFT)
}

fn unpack(key: u64) -> (u64, u16, u64) {
    (
        key & ((1 << NUMBER_BITS) - 1),
        ((key >> NUMBER_BITS) & ((1 << TAG_BITS) - 1)) as u16,
        key >> KIND_SHIFT,
    )
}

/// All translation caches of one remapping unit.
#[derive(Debug, Clone)]
pub struct Caches {
    tags: Tags,
    iotlb: Vec<CountedCache<IotlbEntry>>,
    iotlb_counts: CacheCounts,
    context: CountedCache<Context>,
    pasid: CountedCache<PasidCtx>,
    /// One per level of [`PSC_LEVELS`].
    psc: Vec<CountedCache<TableStep>>,
}

impl Caches {
    /// Empty caches of the given shapes.
    pub fn new(c: &CacheConfig) -> Result<Caches, SetAssocError> {
        let arrays = if c.iotlb_split_by_size { 3 } else { 1 };
        Ok(Caches {
            tags: Tags::default(),
            iotlb: (0..arrays)
                .map(|_| CountedCache::new(c.iotlb.sets, c.iotlb.ways))
                .collect::<Result<_, _>>()?,
            iotlb_counts: CacheCounts::default(),
            context: CountedCache::new(c.context.sets, c.context.ways)?,
            pasid: CountedCache::new(c.pasid.sets, c.pasid.ways)?,
            psc: PSC_LEVELS
                .iter()
                .map(|_| CountedCache::new(c.psc.sets, c.psc.ways))
                .collect::<Result<_, _>>()?,
        })
    }

    fn iotlb_array(&mut self, size: PageSize) -> Option<&mut CountedCache<IotlbEntry>> {
        let i = if self.iotlb.len() == 3 {
            size_code(size) as usize
        } else {
            0
        };
        self.iotlb.get_mut(i)
    }

    /// Looks `iova` up for (domain, PASID tag): every page size is probed.
    pub fn iotlb_lookup(&mut self, did: u16, pasid: Option<u32>, iova: u64) -> Option<IotlbEntry> {
        let hit = self.tags.find(did, pasid).and_then(|tag| {
            PageSize::ALL.iter().find_map(|&size| {
                let key = pack(iova >> size.shift(), tag, size_code(size));
                self.iotlb_array(size)?.probe(key)
            })
        });
        match hit {
            Some(_) => self.iotlb_counts.hits += 1,
            None => self.iotlb_counts.misses += 1,
        }
        hit
    }

    /// Caches a page translation.
    pub fn iotlb_fill(&mut self, leaf: &Leaf) {
        if let Some(tag) = self.tags.id(leaf.did, leaf.pasid_tag) {
            let key = pack(
                leaf.iova_base >> leaf.size.shift(),
                tag,
                size_code(leaf.size),
            );
            if let Some(a) = self.iotlb_array(leaf.size) {
                a.insert(key, IotlbEntry::Page(*leaf));
            }
        }
    }

    /// Caches a not-present result for the 4 KiB page of `iova` (caching mode).
    pub fn iotlb_fill_not_present(
        &mut self,
        did: u16,
        pasid: Option<u32>,
        iova: u64,
        fault: WalkFault,
        fpd: bool,
    ) {
        if let Some(tag) = self.tags.id(did, pasid) {
            let size = PageSize::Size4K;
            let key = pack(iova >> size.shift(), tag, size_code(size));
            if let Some(a) = self.iotlb_array(size) {
                a.insert(key, IotlbEntry::NotPresent { fault, fpd });
            }
        }
    }

    /// The context-cache entry of a requester.
    pub fn context_lookup(&mut self, sid: u16) -> Option<Context> {
        self.context.lookup(u64::from(sid))
    }

    /// Caches a context.
    pub fn context_fill(&mut self, sid: u16, c: Context) {
        self.context.insert(u64::from(sid), c);
    }

    /// The PASID-cache entry of (requester, PASID).
    pub fn pasid_lookup(&mut self, sid: u16, pasid: u32) -> Option<PasidCtx> {
        self.pasid.lookup(pasid_key(sid, pasid))
    }

    /// Caches a PASID entry.
    pub fn pasid_fill(&mut self, sid: u16, pasid: u32, p: PasidCtx) {
        self.pasid.insert(pasid_key(sid, pasid), p);
    }

    /// The lowest cached paging-structure entry on the way to `iova` (PDE first, then
    /// PDPE, PML4E, PML5E), at most `levels` deep. Each level probed counts a lookup.
    pub fn psc_lookup(
        &mut self,
        did: u16,
        pasid: Option<u32>,
        kind: TableKind,
        levels: u8,
        iova: u64,
    ) -> Option<TableStep> {
        let tag = self.tags.find(did, pasid);
        for (i, &level) in PSC_LEVELS.iter().enumerate() {
            if level > levels {
                break;
            }
            let key = tag.map(|t| pack(iova >> level_shift(level), t, kind_code(kind)));
            let hit = match key {
                Some(k) => self.psc[i].lookup(k),
                None => {
                    self.psc[i].count_miss();
                    None
                }
            };
            if hit.is_some() {
                return hit;
            }
        }
        None
    }

    /// Caches the paging-structure entries a walk read.
    pub fn psc_fill(&mut self, did: u16, pasid: Option<u32>, steps: &[TableStep]) {
        let Some(tag) = self.tags.id(did, pasid) else {
            return;
        };
        for s in steps {
            if let Some(i) = PSC_LEVELS.iter().position(|&l| l == s.level) {
                let key = pack(s.prefix, tag, kind_code(s.kind));
                self.psc[i].insert(key, *s);
            }
        }
    }

    /// Applies a context-cache invalidation (§6.5.2.1); returns entries dropped. Device
    /// scope masks function bits under FM ([`ContextScope::covers`]).
    pub fn invalidate_context(&mut self, scope: ContextScope) -> usize {
        self.context.retain(|k, c| match (scope, c.mode) {
            // Scalable-mode context entries carry no domain id; hardware may always
            // invalidate more than asked (§6.5), so a domain-selective request drops them all.
            (ContextScope::Domain { .. }, ContextMode::Scalable { .. }) => false,
            _ => !scope.covers(c.did, k as u16),
        })
    }

    /// Applies a PASID-cache invalidation (§6.5.2.2).
    pub fn invalidate_pasid(&mut self, scope: PasidCacheScope) -> usize {
        match scope {
            PasidCacheScope::Global => self.pasid.retain(|_, _| false),
            PasidCacheScope::Domain { did } => self.pasid.retain(|_, p| p.did != did),
            PasidCacheScope::Pasid { did, pasid } => self
                .pasid
                .retain(|k, p| !(p.did == did && (k & 0xf_ffff) as u32 == pasid)),
        }
    }

    /// Applies an IOTLB invalidation (§6.5.2.3) to the IOTLB and the paging-structure
    /// caches. Domain- and page-selective requests reach every PASID tag of the domain
    /// (over-invalidation is permitted). A page-selective request with IH = 1 keeps the
    /// paging-structure caches (software says only leaves changed).
    pub fn invalidate_iotlb(&mut self, scope: IotlbScope) -> usize {
        let tags = self.tags.clone();
        let hit = |tag: u16, base: u64, bytes: u64| scope.covers(tags.pair(tag).0, base, bytes);
        let keep_psc = matches!(scope, IotlbScope::Page { ih: true, .. });
        let mut n = self.retain_iotlb(|t, b, len| !hit(t, b, len));
        if !keep_psc {
            n += self.retain_psc(|t, b, len| !hit(t, b, len));
        }
        n
    }

    /// Applies a PASID-based IOTLB invalidation (§6.5.2.4): first-level and nested entries
    /// of one (domain, PASID).
    pub fn invalidate_pasid_iotlb(&mut self, scope: PasidIotlbScope) -> usize {
        let tags = self.tags.clone();
        let hit = |tag: u16, base: u64, bytes: u64| match tags.pair(tag) {
            (did, Some(pasid)) => scope.covers(did, pasid, base, bytes),
            (_, None) => false,
        };
        let keep_psc = matches!(scope, PasidIotlbScope::Page { ih: true, .. });
        let mut n = self.retain_iotlb(|t, b, len| !hit(t, b, len));
        if !keep_psc {
            n += self.retain_psc(|t, b, len| !hit(t, b, len));
        }
        n
    }

    /// Keeps IOTLB entries for which `keep(tag, page base, page bytes)` holds.
    fn retain_iotlb(&mut self, keep: impl Fn(u16, u64, u64) -> bool) -> usize {
        let tags = self.tags.clone();
        self.iotlb
            .iter_mut()
            .map(|a| {
                a.retain(|k, _| {
                    let (number, tag, size) = unpack(k);
                    let s = size_of_code(size);
                    let first_level = tags.pair(tag).1.is_some();
                    keep(tag, base_of(number, s.shift(), first_level), s.bytes())
                })
            })
            .sum()
    }

    /// Keeps paging-structure entries for which `keep(tag, covered base, covered bytes)`
    /// holds.
    fn retain_psc(&mut self, keep: impl Fn(u16, u64, u64) -> bool) -> usize {
        self.psc
            .iter_mut()
            .zip(PSC_LEVELS)
            .map(|(a, level)| {
                let shift = level_shift(level);
                a.retain(|k, _| {
                    let (number, tag, kind) = unpack(k);
                    let first_level = kind == kind_code(TableKind::First);
                    keep(tag, base_of(number, shift, first_level), 1u64 << shift)
                })
            })
            .sum()
    }

    /// IOTLB hits and misses.
    pub fn iotlb_counts(&self) -> CacheCounts {
        self.iotlb_counts
    }

    /// The other caches' counters, in report order.
    pub fn counts(&self) -> Vec<(&'static str, CacheCounts)> {
        let mut v = vec![
            ("context", self.context.counts()),
            ("pasid", self.pasid.counts()),
        ];
        let names = ["pde", "pdpe", "pml4e", "pml5e"];
        v.extend(names.iter().zip(&self.psc).map(|(n, a)| (*n, a.counts())));
        v
    }
}

/// The input address a key's page or prefix number stands for. Keys keep 45 bits of it
/// (57-bit inputs); first-level inputs are canonical, so the upper half (bit 56 set, as
/// every 4- or 5-level upper-half address has it) is sign-extended back.
fn base_of(number: u64, shift: u32, first_level: bool) -> u64 {
    let base = number << shift;
    let top = NUMBER_BITS + 12 - 1;
    if first_level && shift < 64 && (base >> top) & 1 == 1 {
        base | !((1u64 << top) - 1)
    } else {
        base
    }
}

fn pasid_key(sid: u16, pasid: u32) -> u64 {
    (u64::from(sid) << 20) | u64::from(pasid & 0xf_ffff)
}

fn kind_code(k: TableKind) -> u64 {
    match k {
        TableKind::Second => 0,
        TableKind::First => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::walk::Rights;

    fn leaf(did: u16, iova: u64, size: PageSize) -> Leaf {
        Leaf {
            did,
            pasid_tag: None,
            size,
            iova_base: iova & !(size.bytes() - 1),
            pa_base: 0x4000_0000,
            read: true,
            write: true,
            user: true,
            exec: true,
            supervisor_writes_any: false,
            forces_snoop: false,
            kind: TableKind::Second,
            scalable: false,
            fpd: false,
        }
    }

    fn caches(ways: usize) -> Caches {
        Caches::new(&CacheConfig {
            iotlb: Geometry { sets: 1, ways },
            ..CacheConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn iotlb_hits_any_page_size_and_counts() {
        let mut c = caches(4);
        assert!(c.iotlb_lookup(1, None, 0x20_0000).is_none());
        c.iotlb_fill(&leaf(1, 0x20_0000, PageSize::Size2M));
        assert!(
            c.iotlb_lookup(1, None, 0x3f_f000).is_some(),
            "inside the 2 MiB page"
        );
        assert!(c.iotlb_lookup(1, None, 0x40_0000).is_none(), "next page");
        assert!(c.iotlb_lookup(2, None, 0x20_0000).is_none(), "other domain");
        assert_eq!(c.iotlb_counts(), CacheCounts { hits: 1, misses: 3 });
    }

    #[test]
    fn lru_evicts_the_least_recently_used_page() {
        let mut c = caches(2);
        c.iotlb_fill(&leaf(1, 0x1000, PageSize::Size4K));
        c.iotlb_fill(&leaf(1, 0x2000, PageSize::Size4K));
        assert!(c.iotlb_lookup(1, None, 0x1000).is_some());
        c.iotlb_fill(&leaf(1, 0x3000, PageSize::Size4K));
        assert!(c.iotlb_lookup(1, None, 0x2000).is_none(), "0x2000 was LRU");
        assert!(c.iotlb_lookup(1, None, 0x1000).is_some());
        assert!(c.iotlb_lookup(1, None, 0x3000).is_some());
    }

    #[test]
    fn page_selective_invalidation_drops_exactly_the_overlapping_pages() {
        let mut c = caches(8);
        for iova in [0x0, 0x1000, 0x2000, 0x3000] {
            c.iotlb_fill(&leaf(1, iova, PageSize::Size4K));
        }
        c.iotlb_fill(&leaf(2, 0x1000, PageSize::Size4K));
        // AM = 1: two pages from 0x0 (ADDR 0x1000 is aligned down).
        let scope = IotlbScope::Page {
            did: 1,
            addr: 0x1000,
            am: 1,
            ih: false,
        };
        assert_eq!(c.invalidate_iotlb(scope), 2);
        assert!(c.iotlb_lookup(1, None, 0x0).is_none());
        assert!(c.iotlb_lookup(1, None, 0x1000).is_none());
        assert!(c.iotlb_lookup(1, None, 0x2000).is_some());
        assert!(
            c.iotlb_lookup(2, None, 0x1000).is_some(),
            "other domain kept"
        );
        // A 2 MiB page overlapping a 4 KiB invalidation goes too.
        c.iotlb_fill(&leaf(1, 0x20_0000, PageSize::Size2M));
        let scope = IotlbScope::Page {
            did: 1,
            addr: 0x21_0000,
            am: 0,
            ih: false,
        };
        assert_eq!(c.invalidate_iotlb(scope), 1);
        assert_eq!(c.invalidate_iotlb(IotlbScope::Domain { did: 2 }), 1);
        assert_eq!(c.invalidate_iotlb(IotlbScope::Global), 2);
    }

    #[test]
    fn paging_structure_cache_returns_the_lowest_level_and_honours_ih() {
        let mut c = caches(4);
        let rights = Rights {
            read: true,
            write: true,
            user: true,
            exec: true,
        };
        let step = |level: u8, next: u64| TableStep {
            kind: TableKind::Second,
            level,
            prefix: 0x4020_0000u64 >> level_shift(level),
            next: model_core::PhysAddr(next),
            rights,
        };
        c.psc_fill(
            1,
            None,
            &[step(4, 0x1000), step(3, 0x2000), step(2, 0x3000)],
        );
        let hit = c
            .psc_lookup(1, None, TableKind::Second, 4, 0x4020_1000)
            .unwrap();
        assert_eq!(hit.level, 2);
        assert_eq!(hit.next.raw(), 0x3000);
        // Another 2 MiB region under the same PDPE hits at level 3.
        let hit = c
            .psc_lookup(1, None, TableKind::Second, 4, 0x4060_0000)
            .unwrap();
        assert_eq!(hit.level, 3);
        // IH = 1 keeps the paging-structure caches; IH = 0 drops the covering entries.
        let page = |ih| IotlbScope::Page {
            did: 1,
            addr: 0x4020_0000,
            am: 0,
            ih,
        };
        assert_eq!(c.invalidate_iotlb(page(true)), 0);
        assert_eq!(c.invalidate_iotlb(page(false)), 3);
        assert!(c
            .psc_lookup(1, None, TableKind::Second, 4, 0x4020_1000)
            .is_none());
    }
}
