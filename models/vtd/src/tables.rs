//! A driver-style builder that lays VT-d translation structures out in simulated physical
//! memory the way the Linux intel-iommu driver does (L-VTDC `iommu_context_addr`,
//! `pfn_to_dma_pte`, `__domain_mapping`; L-PASID `intel_pasid_get_entry`).
//!
//! The builder does not own memory. The simulator's host software writes tables through the
//! CPU caches, so every operation appends the [`MemWrite`]s to perform, in order, and the
//! builder keeps a shadow of what it wrote (the CPU's coherent view, which is what the
//! driver reads back). Table pages come from a [`TableAllocator`] region; a fresh page needs
//! no writes because simulated memory starts zeroed and the allocator never reuses a page.
//!
//! Write order (the IOMMU may walk at any time): a new table is a zeroed page, hence a
//! complete table of not-present entries, before the entry pointing to it is written; the
//! pointer is written next and the leaf last — Linux's order. A failed operation changes
//! nothing and appends nothing.

use crate::entry::{
    field, ContextEntry, FlPerm, FlPte, PageSize, PasidDirEntry, PasidEntry, RootEntry,
    ScalableContextEntry, ScalableRootEntry, SlPerm, SlPte, LEVEL_STRIDE, MAX_HAW, PTES_PER_TABLE,
    TABLE_BYTES,
};
use model_core::{Bdf, PhysAddr};
use std::collections::BTreeMap;
use std::marker::PhantomData;

/// One memory write of one structure (8, 16, 32 or 64 bytes), little-endian.
pub use model_core::MemWrite;

/// Why a table operation was refused. Nothing was changed or emitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// The table region has no free page left.
    #[error("table memory exhausted: the region at {base} has {pages} pages of 4 KiB and this operation needs {needed} more than are free; give the table region more bytes")]
    OutOfTableMemory {
        /// Base of the region.
        base: PhysAddr,
        /// Pages in the region.
        pages: u64,
        /// Pages the refused operation needed beyond those free.
        needed: u64,
    },
    /// An address or size is not aligned as the structure needs.
    #[error("{what} {addr:#x} is not a multiple of {align:#x}")]
    Misaligned {
        /// Which value.
        what: &'static str,
        /// The value.
        addr: u64,
        /// The alignment it needs.
        align: u64,
    },
    /// The IOVA is already covered by a leaf, or by a lower-level table where a large leaf
    /// was asked for.
    #[error("IOVA {iova:#x} is already mapped (by a leaf or a lower-level table); unmap it first")]
    AlreadyMapped {
        /// The IOVA asked for.
        iova: u64,
    },
    /// No leaf of the requested size maps the IOVA.
    #[error("IOVA {iova:#x} is not mapped at the requested page size")]
    NotMapped {
        /// The IOVA asked for.
        iova: u64,
    },
    /// An address does not fit the width the structure can translate or hold.
    #[error("{what} {addr:#x} does not fit in {bits} bits")]
    AddressTooWide {
        /// Which address.
        what: &'static str,
        /// The address.
        addr: u64,
        /// The width available.
        bits: u32,
    },
    /// Not a table depth VT-d supports for this kind of table.
    #[error("{0} paging levels is not a VT-d table depth: second-level tables have 3, 4 or 5 levels (39/48/57-bit), first-level tables 4 or 5")]
    BadLevels(u8),
    /// The page size needs a leaf level above the tables' top level.
    #[error("a {size} page needs a level-{} leaf but these tables have {levels} levels", size.leaf_level())]
    PageSizeUnsupported {
        /// The size asked for.
        size: PageSize,
        /// The tables' depth.
        levels: u8,
    },
    /// The PASID is beyond 20 bits or beyond what the context's PASID directory covers.
    #[error("PASID {pasid:#x} is not below {limit:#x}, the first PASID the directory (PDTS) or the 20-bit PASID space cannot hold")]
    PasidTooLarge {
        /// The PASID asked for.
        pasid: u32,
        /// First PASID out of range.
        limit: u32,
    },
    /// The device has no context entry (or no context table) to use.
    #[error("{bdf} has no context entry here; set its context first")]
    NoContext {
        /// The device.
        bdf: Bdf,
    },
    /// A legacy-mode operation on scalable-mode tables, or the reverse.
    #[error("{op} needs {} tables but these are {}", if *.scalable { "legacy" } else { "scalable-mode" }, if *.scalable { "scalable-mode" } else { "legacy" })]
    WrongMode {
        /// The operation.
        op: &'static str,
        /// Whether the tables are scalable-mode.
        scalable: bool,
    },
}

use model_core::mem::{aligned, fits};
/// Hands out zeroed 4 KiB table pages from a region, in address order, never reusing one
/// (model-core's allocator, shared with the other IOMMU's builder).
pub use model_core::PageAllocator as TableAllocator;

impl From<model_core::PageAllocError> for TableError {
    fn from(e: model_core::PageAllocError) -> TableError {
        use model_core::PageAllocError as E;
        match e {
            E::Misaligned { what, addr, align } => TableError::Misaligned { what, addr, align },
            E::TooWide { what, addr, bits } => TableError::AddressTooWide { what, addr, bits },
            E::OutOfMemory {
                base,
                pages,
                needed,
            } => TableError::OutOfTableMemory {
                base,
                pages,
                needed,
            },
        }
    }
}

fn write_words(pa: u64, words: &[u64]) -> MemWrite {
    MemWrite {
        pa: PhysAddr(pa),
        bytes: words.iter().flat_map(|w| w.to_le_bytes()).collect(),
    }
}

/// What the generic radix-table code needs from an entry format.
trait Format {
    /// Supported depths.
    const LEVELS: std::ops::RangeInclusive<u8>;
    /// IOVA bits lost to the top level: 1 for first-level tables, whose IOVAs must be in the
    /// lower canonical half (L-VTDC: the aperture "skip bit [N-1]" for first level).
    const SIGN_BITS: u32;
    /// The non-leaf entry pointing at `next`.
    fn table(next: PhysAddr) -> u64;
    /// The entry's present test.
    fn present(raw: u64) -> bool;
    /// Whether `raw` at `level` is a leaf.
    fn is_leaf(raw: u64, level: u8) -> bool;
    /// The address the entry holds.
    fn addr(raw: u64) -> u64;
}

#[derive(Debug, Clone, Copy)]
struct SlFormat;
impl Format for SlFormat {
    const LEVELS: std::ops::RangeInclusive<u8> = 3..=5;
    const SIGN_BITS: u32 = 0;
    fn table(next: PhysAddr) -> u64 {
        SlPte::table(next).0
    }
    fn present(raw: u64) -> bool {
        SlPte(raw).present()
    }
    fn is_leaf(raw: u64, level: u8) -> bool {
        SlPte(raw).is_leaf(level)
    }
    fn addr(raw: u64) -> u64 {
        SlPte(raw).addr().0
    }
}

#[derive(Debug, Clone, Copy)]
struct FlFormat;
impl Format for FlFormat {
    const LEVELS: std::ops::RangeInclusive<u8> = 4..=5;
    const SIGN_BITS: u32 = 1;
    fn table(next: PhysAddr) -> u64 {
        FlPte::table(next).0
    }
    fn present(raw: u64) -> bool {
        FlPte(raw).present()
    }
    fn is_leaf(raw: u64, level: u8) -> bool {
        FlPte(raw).is_leaf(level)
    }
    fn addr(raw: u64) -> u64 {
        FlPte(raw).addr().0
    }
}

type Page = Box<[u64; PTES_PER_TABLE as usize]>;

/// Radix page tables of one address space with a shadow of every table page written.
#[derive(Debug, Clone)]
struct Radix<F> {
    root: PhysAddr,
    levels: u8,
    /// Table pages this builder allocated, by address, with their entries.
    tables: BTreeMap<u64, Page>,
    format: PhantomData<F>,
}

/// Index of `iova` in a table at `level`.
fn index(iova: u64, level: u8) -> u64 {
    (iova >> (12 + LEVEL_STRIDE * u32::from(level - 1))) & (PTES_PER_TABLE - 1)
}

impl<F: Format> Radix<F> {
    fn new(alloc: &mut TableAllocator, levels: u8) -> Result<Self, TableError> {
        if !F::LEVELS.contains(&levels) {
            return Err(TableError::BadLevels(levels));
        }
        let root = alloc.alloc()?;
        let mut tables = BTreeMap::new();
        tables.insert(root.0, Box::new([0; PTES_PER_TABLE as usize]));
        Ok(Radix {
            root,
            levels,
            tables,
            format: PhantomData,
        })
    }

    fn iova_bits(&self) -> u32 {
        12 + LEVEL_STRIDE * u32::from(self.levels) - F::SIGN_BITS
    }

    fn entry(&self, table: u64, idx: u64) -> u64 {
        self.tables.get(&table).map_or(0, |t| t[idx as usize])
    }

    /// The table `raw` at `level` points to, if it is a present non-leaf entry pointing at a
    /// table of ours.
    fn child(&self, raw: u64, level: u8) -> Option<u64> {
        let next = F::addr(raw);
        (level > 1 && F::present(raw) && !F::is_leaf(raw, level) && self.tables.contains_key(&next))
            .then_some(next)
    }

    /// Checks an operation's IOVA and page size.
    fn check(&self, iova: u64, size: PageSize) -> Result<(), TableError> {
        if size.leaf_level() > self.levels {
            return Err(TableError::PageSizeUnsupported {
                size,
                levels: self.levels,
            });
        }
        aligned("IOVA", iova, size.bytes())?;
        Ok(fits("IOVA", iova, self.iova_bits())?)
    }

    /// The table at `level` on `iova`'s path, if every table above it exists.
    fn table_at(&self, iova: u64, level: u8) -> Option<u64> {
        let mut table = self.root.0;
        for l in (level + 1..=self.levels).rev() {
            table = self.child(self.entry(table, index(iova, l)), l)?;
        }
        Some(table)
    }

    fn set(&mut self, table: u64, idx: u64, raw: u64, out: &mut Vec<MemWrite>) -> PhysAddr {
        if let Some(t) = self.tables.get_mut(&table) {
            t[idx as usize] = raw;
        }
        let pa = table + idx * 8;
        out.push(write_words(pa, &[raw]));
        PhysAddr(pa)
    }

    fn map(
        &mut self,
        alloc: &mut TableAllocator,
        iova: u64,
        pa: PhysAddr,
        size: PageSize,
        leaf: u64,
        out: &mut Vec<MemWrite>,
    ) -> Result<PhysAddr, TableError> {
        self.check(iova, size)?;
        aligned("physical address", pa.0, size.bytes())?;
        fits("physical address", pa.0, u32::from(MAX_HAW))?;
        let leaf_level = size.leaf_level();
        // Dry run: find where the path stops and how many tables it needs.
        let mut table = self.root.0;
        let mut level = self.levels;
        while level > leaf_level {
            let raw = self.entry(table, index(iova, level));
            match self.child(raw, level) {
                Some(next) => table = next,
                None if raw == 0 => break,
                None => return Err(TableError::AlreadyMapped { iova }),
            }
            level -= 1;
        }
        if level == leaf_level && self.entry(table, index(iova, level)) != 0 {
            return Err(TableError::AlreadyMapped { iova });
        }
        alloc.reserve(u64::from(level - leaf_level))?;
        // Build: each new table is a zeroed page before the entry pointing at it is written.
        while level > leaf_level {
            let next = alloc.alloc()?;
            self.tables
                .insert(next.0, Box::new([0; PTES_PER_TABLE as usize]));
            self.set(table, index(iova, level), F::table(next), out);
            table = next.0;
            level -= 1;
        }
        Ok(self.set(table, index(iova, leaf_level), leaf, out))
    }

    /// The leaf slot of `iova` at `size`: its table and index, and the entry there.
    fn leaf_slot(&self, iova: u64, size: PageSize) -> Result<(u64, u64, u64), TableError> {
        self.check(iova, size)?;
        let level = size.leaf_level();
        let table = self
            .table_at(iova, level)
            .ok_or(TableError::NotMapped { iova })?;
        let idx = index(iova, level);
        Ok((table, idx, self.entry(table, idx)))
    }

    fn unmap(
        &mut self,
        iova: u64,
        size: PageSize,
        out: &mut Vec<MemWrite>,
    ) -> Result<PhysAddr, TableError> {
        let (table, idx, raw) = self.leaf_slot(iova, size)?;
        if raw == 0 || self.child(raw, size.leaf_level()).is_some() {
            return Err(TableError::NotMapped { iova });
        }
        Ok(self.set(table, idx, 0, out))
    }

    fn set_leaf(
        &mut self,
        iova: u64,
        size: PageSize,
        raw: u64,
        out: &mut Vec<MemWrite>,
    ) -> Result<PhysAddr, TableError> {
        let (table, idx, old) = self.leaf_slot(iova, size)?;
        if self.child(old, size.leaf_level()).is_some() {
            return Err(TableError::AlreadyMapped { iova });
        }
        Ok(self.set(table, idx, raw, out))
    }

    fn pte_address(&self, iova: u64, size: PageSize) -> Option<PhysAddr> {
        let level = size.leaf_level();
        if level > self.levels || iova >> self.iova_bits() != 0 {
            return None;
        }
        let table = self.table_at(iova, level)?;
        Some(PhysAddr(table + index(iova, level) * 8))
    }

    /// Walks the shadow as the IOMMU would: the PA of `iova`, the page size and the leaf.
    fn lookup(&self, iova: u64) -> Option<(PhysAddr, PageSize, u64)> {
        if iova >> self.iova_bits() != 0 {
            return None;
        }
        let mut table = self.root.0;
        for level in (1..=self.levels).rev() {
            let raw = self.entry(table, index(iova, level));
            if !F::present(raw) {
                return None;
            }
            if F::is_leaf(raw, level) {
                let size = PageSize::from_level(level)?;
                let offset = iova & (size.bytes() - 1);
                return Some((PhysAddr(F::addr(raw) | offset), size, raw));
            }
            table = F::addr(raw);
            if !self.tables.contains_key(&table) {
                return None;
            }
        }
        None
    }
}

/// Second-level page tables of one domain, 3, 4 or 5 levels (§3.7, §9.8).
#[derive(Debug, Clone)]
pub struct SlTables(Radix<SlFormat>);

impl SlTables {
    /// Empty tables of `levels` (3, 4 or 5) levels; allocates the root page.
    pub fn new(alloc: &mut TableAllocator, levels: u8) -> Result<SlTables, TableError> {
        Radix::new(alloc, levels).map(SlTables)
    }

    /// The top-level table (SLPTPTR).
    pub fn root(&self) -> PhysAddr {
        self.0.root
    }

    /// Paging levels.
    pub fn levels(&self) -> u8 {
        self.0.levels
    }

    /// Table pages allocated so far, the root included.
    pub fn table_pages(&self) -> usize {
        self.0.tables.len()
    }

    /// Maps `iova` to `pa` with a `size` leaf; creates missing intermediate tables. Returns
    /// the leaf entry's address.
    pub fn map(
        &mut self,
        alloc: &mut TableAllocator,
        iova: u64,
        pa: PhysAddr,
        size: PageSize,
        perm: SlPerm,
        out: &mut Vec<MemWrite>,
    ) -> Result<PhysAddr, TableError> {
        let leaf = SlPte::leaf(pa, size, perm).0;
        self.0.map(alloc, iova, pa, size, leaf, out)
    }

    /// Clears the `size` leaf mapping `iova` (writes 0); tables stay. Returns its address.
    pub fn unmap(
        &mut self,
        iova: u64,
        size: PageSize,
        out: &mut Vec<MemWrite>,
    ) -> Result<PhysAddr, TableError> {
        self.0.unmap(iova, size, out)
    }

    /// Writes `pte` as is into the `size` leaf slot of `iova` (to corrupt or update a PTE).
    /// The tables above the slot must exist; the slot must not point at a lower table.
    pub fn set_leaf(
        &mut self,
        iova: u64,
        size: PageSize,
        pte: SlPte,
        out: &mut Vec<MemWrite>,
    ) -> Result<PhysAddr, TableError> {
        self.0.set_leaf(iova, size, pte.0, out)
    }

    /// Address of the `size` leaf slot of `iova`, if the tables above it exist.
    pub fn pte_address(&self, iova: u64, size: PageSize) -> Option<PhysAddr> {
        self.0.pte_address(iova, size)
    }

    /// Walks the shadow: the physical address of `iova`, its page size and its leaf.
    pub fn lookup(&self, iova: u64) -> Option<(PhysAddr, PageSize, SlPte)> {
        self.0.lookup(iova).map(|(pa, s, raw)| (pa, s, SlPte(raw)))
    }
}

/// First-level (IA-32e) tables of one PASID, 4 or 5 levels (§3.6, §9.7). IOVAs must lie in
/// the lower canonical half (below 2^47 or 2^56), as Linux's first-level aperture.
#[derive(Debug, Clone)]
pub struct FlTables(Radix<FlFormat>);

impl FlTables {
    /// Empty tables of `levels` (4 or 5) levels; allocates the root page.
    pub fn new(alloc: &mut TableAllocator, levels: u8) -> Result<FlTables, TableError> {
        Radix::new(alloc, levels).map(FlTables)
    }

    /// The top-level table (FLPTR).
    pub fn root(&self) -> PhysAddr {
        self.0.root
    }

    /// Paging levels.
    pub fn levels(&self) -> u8 {
        self.0.levels
    }

    /// Table pages allocated so far, the root included.
    pub fn table_pages(&self) -> usize {
        self.0.tables.len()
    }

    /// Maps `iova` to `pa` with a `size` leaf; creates missing intermediate tables. Returns
    /// the leaf entry's address.
    pub fn map(
        &mut self,
        alloc: &mut TableAllocator,
        iova: u64,
        pa: PhysAddr,
        size: PageSize,
        perm: FlPerm,
        out: &mut Vec<MemWrite>,
    ) -> Result<PhysAddr, TableError> {
        let leaf = FlPte::leaf(pa, size, perm).0;
        self.0.map(alloc, iova, pa, size, leaf, out)
    }

    /// Clears the `size` leaf mapping `iova` (writes 0); tables stay. Returns its address.
    pub fn unmap(
        &mut self,
        iova: u64,
        size: PageSize,
        out: &mut Vec<MemWrite>,
    ) -> Result<PhysAddr, TableError> {
        self.0.unmap(iova, size, out)
    }

    /// Writes `pte` as is into the `size` leaf slot of `iova`; see [`SlTables::set_leaf`].
    pub fn set_leaf(
        &mut self,
        iova: u64,
        size: PageSize,
        pte: FlPte,
        out: &mut Vec<MemWrite>,
    ) -> Result<PhysAddr, TableError> {
        self.0.set_leaf(iova, size, pte.0, out)
    }

    /// Address of the `size` leaf slot of `iova`, if the tables above it exist.
    pub fn pte_address(&self, iova: u64, size: PageSize) -> Option<PhysAddr> {
        self.0.pte_address(iova, size)
    }

    /// Walks the shadow: the physical address of `iova`, its page size and its leaf.
    pub fn lookup(&self, iova: u64) -> Option<(PhysAddr, PageSize, FlPte)> {
        self.0.lookup(iova).map(|(pa, s, raw)| (pa, s, FlPte(raw)))
    }
}

/// Root and context tables (legacy, §3.4) or scalable-mode root, context, PASID directory
/// and PASID tables (§3.4.3, §9.2-§9.6) of one IOMMU.
#[derive(Debug, Clone)]
pub struct ContextTables {
    root: PhysAddr,
    scalable: bool,
    /// Context tables by (bus, upper half); legacy tables use the lower half only.
    context_tables: BTreeMap<(u8, bool), PhysAddr>,
    /// Every 64-bit word this builder wrote, by address (unwritten words read as zero).
    shadow: BTreeMap<u64, u64>,
}

/// Bytes of a legacy root or context entry, and of each root-table slot.
const ENTRY16: u64 = 16;
/// Bytes of a scalable-mode context entry.
const SM_CONTEXT_BYTES: u64 = ScalableContextEntry::BYTES as u64;
/// Bytes of a PASID table entry.
const PASID_ENTRY_BYTES: u64 = PasidEntry::BYTES as u64;
/// First devfn served by the upper half of a scalable-mode root entry (L-VTDC
/// `iommu_context_addr`: `devfn >= 0x80`).
const UPPER_DEVFN: u8 = 0x80;

impl ContextTables {
    fn new(alloc: &mut TableAllocator, scalable: bool) -> Result<ContextTables, TableError> {
        Ok(ContextTables {
            root: alloc.alloc()?,
            scalable,
            context_tables: BTreeMap::new(),
            shadow: BTreeMap::new(),
        })
    }

    /// An empty legacy root table (RTADDR.SMT = 0).
    pub fn new_legacy(alloc: &mut TableAllocator) -> Result<ContextTables, TableError> {
        ContextTables::new(alloc, false)
    }

    /// An empty scalable-mode root table (RTADDR.SMT = 1).
    pub fn new_scalable(alloc: &mut TableAllocator) -> Result<ContextTables, TableError> {
        ContextTables::new(alloc, true)
    }

    /// Allocates a zeroed PASID directory for a context with this PDTS: 2^(pdts + 7) entries
    /// of 8 B, at least one page (Linux sizes it from the maximum PASID the same way).
    pub fn alloc_pasid_dir(alloc: &mut TableAllocator, pdts: u8) -> Result<PhysAddr, TableError> {
        let bytes = (1u64 << (u32::from(pdts & 7) + 7)) * PasidDirEntry::BYTES as u64;
        Ok(alloc.alloc_pages(bytes.div_ceil(TABLE_BYTES))?)
    }

    /// The root table (RTADDR).
    pub fn root_table(&self) -> PhysAddr {
        self.root
    }

    /// Whether these are scalable-mode tables.
    pub fn scalable(&self) -> bool {
        self.scalable
    }

    fn read(&self, pa: u64) -> u64 {
        self.shadow.get(&pa).copied().unwrap_or(0)
    }

    fn emit(&mut self, pa: u64, words: &[u64], out: &mut Vec<MemWrite>) -> PhysAddr {
        for (i, w) in (0u64..).zip(words) {
            self.shadow.insert(pa + 8 * i, *w);
        }
        out.push(write_words(pa, words));
        PhysAddr(pa)
    }

    fn mode(&self, op: &'static str, scalable: bool) -> Result<(), TableError> {
        if self.scalable == scalable {
            Ok(())
        } else {
            Err(TableError::WrongMode {
                op,
                scalable: self.scalable,
            })
        }
    }

    /// Which context table (bus, upper half) serves `bdf`, and the entry's offset in it.
    fn slot(&self, bdf: Bdf) -> ((u8, bool), u64) {
        let devfn = bdf.devfn();
        if self.scalable {
            let upper = devfn >= UPPER_DEVFN;
            (
                (bdf.bus(), upper),
                u64::from(devfn & 0x7f) * SM_CONTEXT_BYTES,
            )
        } else {
            ((bdf.bus(), false), u64::from(devfn) * ENTRY16)
        }
    }

    /// The context table for `key`, allocating it and writing the root-entry word that points
    /// to it on first use. Linux writes just that 64-bit word (`*entry = phy_addr | 1`).
    fn context_table(
        &mut self,
        alloc: &mut TableAllocator,
        (bus, upper): (u8, bool),
        out: &mut Vec<MemWrite>,
    ) -> Result<u64, TableError> {
        if let Some(t) = self.context_tables.get(&(bus, upper)) {
            return Ok(t.0);
        }
        let table = alloc.alloc()?;
        let slot = self.root.0 + u64::from(bus) * ENTRY16;
        let (pa, word) = match (self.scalable, upper) {
            (false, _) => (slot, RootEntry::new(table).lo),
            (true, false) => (slot, ScalableRootEntry::new(Some(table), None).lo),
            (true, true) => (slot + 8, ScalableRootEntry::new(None, Some(table)).hi),
        };
        self.emit(pa, &[word], out);
        self.context_tables.insert((bus, upper), table);
        Ok(table.0)
    }

    /// Writes the legacy context entry of `bdf`; on the bus's first use allocates its context
    /// table and writes the root entry first. Returns the entry's address.
    pub fn set_context(
        &mut self,
        alloc: &mut TableAllocator,
        bdf: Bdf,
        e: ContextEntry,
        out: &mut Vec<MemWrite>,
    ) -> Result<PhysAddr, TableError> {
        self.mode("set_context", false)?;
        let (key, offset) = self.slot(bdf);
        let table = self.context_table(alloc, key, out)?;
        Ok(self.emit(table + offset, &[e.lo, e.hi], out))
    }

    /// Writes the scalable-mode context entry of `bdf` in the lower (devfn < 0x80) or upper
    /// context table at `(devfn & 0x7f) * 32` — index `(devfn & 0x7f) * 2` in 16-B units, as
    /// L-VTDC `iommu_context_addr`. Returns the entry's address.
    pub fn set_scalable_context(
        &mut self,
        alloc: &mut TableAllocator,
        bdf: Bdf,
        e: ScalableContextEntry,
        out: &mut Vec<MemWrite>,
    ) -> Result<PhysAddr, TableError> {
        self.mode("set_scalable_context", true)?;
        let (key, offset) = self.slot(bdf);
        let table = self.context_table(alloc, key, out)?;
        Ok(self.emit(table + offset, &e.q, out))
    }

    /// Writes the PASID-table entry of `pasid` for `bdf`, whose scalable context (its
    /// PASIDDIRPTR and PDTS) must be set. On first use of directory slot `pasid >> 6`
    /// allocates that PASID table and writes the directory entry first. Returns the entry's
    /// address.
    pub fn set_pasid_entry(
        &mut self,
        alloc: &mut TableAllocator,
        bdf: Bdf,
        pasid: u32,
        e: PasidEntry,
        out: &mut Vec<MemWrite>,
    ) -> Result<PhysAddr, TableError> {
        self.mode("set_pasid_entry", true)?;
        let (dir_entry, table_offset) = self.pasid_slot(bdf, pasid)?;
        let de = PasidDirEntry(self.read(dir_entry));
        let table = if de.present() {
            de.table_ptr().0
        } else {
            let t = alloc.alloc()?;
            self.emit(dir_entry, &[PasidDirEntry::new(t).0], out);
            t.0
        };
        Ok(self.emit(table + table_offset, &e.q, out))
    }

    /// For `pasid` of `bdf`: the directory entry's address and the entry's offset in its
    /// PASID table.
    fn pasid_slot(&self, bdf: Bdf, pasid: u32) -> Result<(u64, u64), TableError> {
        let limit = 1u32 << field::pasid::PASID_BITS;
        if pasid >= limit {
            return Err(TableError::PasidTooLarge { pasid, limit });
        }
        let ctx = self
            .scalable_context(bdf)
            .filter(ScalableContextEntry::present)
            .ok_or(TableError::NoContext { bdf })?;
        let dir_index = pasid >> field::pasid_dir::PASID_SHIFT;
        if dir_index >= ctx.pasid_dir_entries() {
            return Err(TableError::PasidTooLarge {
                pasid,
                limit: ctx.pasid_dir_entries() << field::pasid_dir::PASID_SHIFT,
            });
        }
        let dir_entry = ctx.pasid_dir_ptr().0 + u64::from(dir_index) * 8;
        let index = pasid % field::pasid::TABLE_ENTRIES;
        Ok((dir_entry, u64::from(index) * PASID_ENTRY_BYTES))
    }

    /// The scalable context entry of `bdf` as written, if its context table exists.
    fn scalable_context(&self, bdf: Bdf) -> Option<ScalableContextEntry> {
        let pa = self.context_address(bdf)?.0;
        Some(ScalableContextEntry {
            q: [0, 1, 2, 3].map(|i| self.read(pa + 8 * i)),
        })
    }

    /// Clears the context entry of `bdf` (writes zeros over it). Returns its address.
    pub fn clear_context(
        &mut self,
        bdf: Bdf,
        out: &mut Vec<MemWrite>,
    ) -> Result<PhysAddr, TableError> {
        let pa = self
            .context_address(bdf)
            .ok_or(TableError::NoContext { bdf })?;
        let words = if self.scalable { 4 } else { 2 };
        Ok(self.emit(pa.0, &[0; 4][..words], out))
    }

    /// Address of `bdf`'s context entry, if the context table holding it exists.
    pub fn context_address(&self, bdf: Bdf) -> Option<PhysAddr> {
        let (key, offset) = self.slot(bdf);
        self.context_tables
            .get(&key)
            .map(|t| PhysAddr(t.0 + offset))
    }

    /// Address of the PASID-table entry of `pasid` for `bdf`, if its context and directory
    /// entry are present.
    pub fn pasid_entry_address(&self, bdf: Bdf, pasid: u32) -> Option<PhysAddr> {
        if !self.scalable {
            return None;
        }
        let (dir_entry, offset) = self.pasid_slot(bdf, pasid).ok()?;
        let de = PasidDirEntry(self.read(dir_entry));
        de.present().then(|| PhysAddr(de.table_ptr().0 + offset))
    }
}
