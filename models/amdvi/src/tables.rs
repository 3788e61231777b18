//! A driver-style builder that lays the device table and host (v1) I/O page tables out in
//! simulated physical memory the way the Linux amd_iommu driver does (`init.c`
//! `alloc_dev_table` / `iommu_set_device_table`, `io_pgtable.c` `alloc_pte` /
//! `iommu_v1_map_pages` / `iommu_v1_unmap_pages`), plus the level skipping Linux does not
//! use ("No level skipping support yet", `alloc_pte`).
//!
//! The builder does not own memory. The simulator's host software writes tables through the
//! CPU caches, so every operation appends the [`MemWrite`]s to perform, in order, and the
//! builder keeps a shadow of what it wrote (the CPU's coherent view). Table pages come from
//! a [`TableAllocator`] region; a fresh page needs no writes because simulated memory starts
//! zeroed and the allocator never reuses a page.
//!
//! Write order (the IOMMU may walk at any time): a new table is a zeroed page, hence a full
//! table of not-present entries, before the PDE pointing at it is written; PDEs top-down,
//! the leaf (or the run of replicated size-encoded leaves, one write) last — Linux's order.
//! A failed operation changes nothing and appends nothing.

use crate::dte::DeviceTableEntry;
use crate::pte::{
    index, iova_bits, level_shift, natural_page_size, placement, sized_leaf_legal, skipped_bits,
    IoPerm, IoPte, ENTRIES_PER_TABLE, MAX_LEAF_LEVEL, MAX_LEVELS, NL_LEAF, NL_SIZED, TABLE_BYTES,
};
use crate::regs::{DevTableBase, DTE_BYTES, MAX_HAW};
use model_core::PhysAddr;
use std::collections::BTreeMap;

/// One memory write of one structure (a DTE or table entries), little-endian.
pub use model_core::MemWrite;

/// Why a table operation was refused. Nothing was changed or emitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// The table region has too few free pages.
    #[error("table memory exhausted: the region at {base} has {pages} pages of 4 KiB and this operation needs {needed} more than are free; give the table region more bytes")]
    OutOfTableMemory {
        /// Base of the region.
        base: PhysAddr,
        /// Pages in the region.
        pages: u64,
        /// Pages needed beyond those free.
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
    /// An address does not fit the width the structure can hold or translate.
    #[error("{what} {addr:#x} does not fit in {bits} bits")]
    AddressTooWide {
        /// Which address.
        what: &'static str,
        /// The address.
        addr: u64,
        /// The width available.
        bits: u32,
    },
    /// The IOVA is already mapped, or its path is blocked by a leaf or by a PDE that skips
    /// past the level the new leaf needs or past the IOVA.
    #[error("IOVA {iova:#x} is already mapped, or its path is blocked by a leaf or a level-skipping PDE; unmap it first")]
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
    /// Not a host table depth (DTE Mode 1..=6).
    #[error(
        "{0} paging levels is not a host table depth: DTE Mode holds 1 to 6 levels (§2.2.2.1)"
    )]
    BadLevels(u8),
    /// The page size is not a power of two from 4 KiB to 2^51, or needs a leaf level these
    /// tables do not have.
    #[error("a page of {bytes:#x} bytes cannot be mapped by {levels}-level tables: sizes are powers of two from 4 KiB to 2^51, held at level (log2 − 12) / 9 + 1, and level 6 holds no leaves (§2.2.3, Table 15)")]
    PageSizeUnsupported {
        /// The size asked for.
        bytes: u64,
        /// The tables' depth.
        levels: u8,
    },
    /// The DeviceID is beyond the device table.
    #[error("DeviceID {device_id:#06x} is beyond this device table (last DeviceID {max:#06x}); build the table with a larger max_device_id")]
    DeviceIdOutOfRange {
        /// The DeviceID asked for.
        device_id: u16,
        /// The last DeviceID the table covers.
        max: u16,
    },
    /// A level skip that the tables cannot hold.
    #[error("a PDE at level {from} cannot skip to level {to} in {levels}-level tables: the PDE level must be 3..=levels and the target 1..=level − 2 (a target of level − 1 skips nothing)")]
    BadSkip {
        /// Level of the skipping PDE.
        from: u8,
        /// Its Next Level.
        to: u8,
        /// The tables' depth.
        levels: u8,
    },
    /// The IOVA has ones in the index bits of the skipped levels; the IOMMU would fault it.
    #[error("IOVA {iova:#x} has bits {bits:#x} set in the index of the skipped levels; a skipped level's IOVA bits must be 0 or the request faults (§2.2.3)")]
    SkippedBitsNotZero {
        /// The IOVA asked for.
        iova: u64,
        /// The offending bits.
        bits: u64,
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

/// The device table: 32 bytes per DeviceID from 0 to `max_device_id`, rounded up to whole
/// pages, with a shadow of every entry written (§2.2.2; L-AMDI `alloc_dev_table`, which
/// rounds to a power-of-two page count; the Size field allows any count 1..=512).
#[derive(Debug, Clone)]
pub struct DeviceTable {
    base: PhysAddr,
    pages: u64,
    max_device_id: u16,
    shadow: BTreeMap<u16, DeviceTableEntry>,
}

impl DeviceTable {
    /// A zeroed table covering DeviceIDs 0..=`max_device_id` (all entries V = 0).
    pub fn new(alloc: &mut TableAllocator, max_device_id: u16) -> Result<DeviceTable, TableError> {
        let bytes = (u64::from(max_device_id) + 1) * DTE_BYTES;
        let pages = bytes.div_ceil(TABLE_BYTES);
        Ok(DeviceTable {
            base: alloc.alloc_pages(pages)?,
            pages,
            max_device_id,
            shadow: BTreeMap::new(),
        })
    }

    /// The table's address (DevTabBase).
    pub fn base(&self) -> PhysAddr {
        self.base
    }

    /// The Size field of MMIO 0000h: pages − 1 (L-AMDI `iommu_set_device_table`).
    pub fn size_field(&self) -> u64 {
        self.pages - 1
    }

    /// The Device Table Base Address Register value.
    pub fn register(&self) -> DevTableBase {
        DevTableBase(self.base.0 | self.size_field())
    }

    /// The last DeviceID the table was built for.
    pub fn max_device_id(&self) -> u16 {
        self.max_device_id
    }

    /// Address of `device_id`'s entry: base + 32 × DeviceID.
    pub fn entry_address(&self, device_id: u16) -> Option<PhysAddr> {
        (device_id <= self.max_device_id)
            .then(|| PhysAddr(self.base.0 + u64::from(device_id) * DTE_BYTES))
    }

    /// Writes `device_id`'s entry as one 32-byte write; returns its address. (Linux updates a
    /// live DTE with 128-bit stores, `update_dte256`; the simulator applies one write at
    /// once, so no torn entry is ever visible.)
    pub fn set(
        &mut self,
        device_id: u16,
        e: DeviceTableEntry,
        out: &mut Vec<MemWrite>,
    ) -> Result<PhysAddr, TableError> {
        let pa = self
            .entry_address(device_id)
            .ok_or(TableError::DeviceIdOutOfRange {
                device_id,
                max: self.max_device_id,
            })?;
        self.shadow.insert(device_id, e);
        out.push(write_words(pa.0, &e.q));
        Ok(pa)
    }

    /// The entry as last written (all zeros if never written or out of range).
    pub fn get(&self, device_id: u16) -> DeviceTableEntry {
        self.shadow.get(&device_id).copied().unwrap_or_default()
    }
}

/// A table page of the shadow: its level and entries.
#[derive(Debug, Clone)]
struct Table {
    level: u8,
    entries: Box<[u64; ENTRIES_PER_TABLE as usize]>,
}

/// The host (v1) I/O page tables of one domain, `levels` deep (DTE Mode), with a shadow of
/// every table page written (§2.2.3).
#[derive(Debug, Clone)]
pub struct IoPageTable {
    root: PhysAddr,
    levels: u8,
    tables: BTreeMap<u64, Table>,
}

/// What the walk of an operation found: the table and level where it stopped.
struct Reached {
    table: u64,
    level: u8,
}

impl IoPageTable {
    /// Empty tables of `levels` (1..=6) levels; allocates the root page.
    pub fn new(alloc: &mut TableAllocator, levels: u8) -> Result<IoPageTable, TableError> {
        if !(1..=MAX_LEVELS).contains(&levels) {
            return Err(TableError::BadLevels(levels));
        }
        let root = alloc.alloc()?;
        let mut tables = BTreeMap::new();
        tables.insert(root.0, Self::empty(levels));
        Ok(IoPageTable {
            root,
            levels,
            tables,
        })
    }

    fn empty(level: u8) -> Table {
        Table {
            level,
            entries: Box::new([0; ENTRIES_PER_TABLE as usize]),
        }
    }

    /// The root table (DTE Host Page Table Root Pointer).
    pub fn root(&self) -> PhysAddr {
        self.root
    }

    /// Levels (DTE Mode).
    pub fn levels(&self) -> u8 {
        self.levels
    }

    /// Table pages allocated so far, the root included.
    pub fn table_pages(&self) -> usize {
        self.tables.len()
    }

    fn entry(&self, table: u64, idx: u64) -> u64 {
        self.tables
            .get(&table)
            .and_then(|t| t.entries.get(idx as usize).copied())
            .unwrap_or(0)
    }

    /// The table a present PDE at `level` leads to and its level, if it is one of ours, its
    /// Next Level is below `level` and `iova` has zeros in any skipped index bits.
    fn follow(&self, raw: u64, level: u8, iova: u64) -> Option<(u64, u8)> {
        let e = IoPte(raw);
        let nl = e.next_level();
        let ok = e.pr()
            && !e.is_leaf()
            && nl < level
            && iova & skipped_bits(level, nl) == 0
            && self.tables.get(&e.addr().0).map(|t| t.level) == Some(nl);
        ok.then_some((e.addr().0, nl))
    }

    fn check_iova(&self, iova: u64) -> Result<(), TableError> {
        Ok(fits("IOVA", iova, iova_bits(self.levels))?)
    }

    /// The Next Level a new PDE at `level` gets: `skip`'s target at its level, else
    /// `level − 1`.
    fn next_for(level: u8, skip: Option<(u8, u8)>) -> u8 {
        match skip {
            Some((from, to)) if from == level => to,
            _ => level - 1,
        }
    }

    /// Walks existing tables from the root toward `leaf_level`; stops at the first empty
    /// slot above it. Fails if a leaf, a foreign or mismatching PDE blocks the path.
    fn descend(
        &self,
        iova: u64,
        leaf_level: u8,
        skip: Option<(u8, u8)>,
    ) -> Result<Reached, TableError> {
        let mut table = self.root.0;
        let mut level = self.levels;
        while level > leaf_level {
            let raw = self.entry(table, index(iova, level));
            if raw == 0 {
                break;
            }
            let (next, nl) = self
                .follow(raw, level, iova)
                .ok_or(TableError::AlreadyMapped { iova })?;
            // Blocked if the PDE jumps below the leaf level, or, for a skipping map, if it is
            // the skip level with a different target or jumps over the skip level.
            let wanted = Self::next_for(level, skip);
            let skip_blocked =
                skip.is_some_and(|(f, _)| (f == level && nl != wanted) || (level > f && nl < f));
            if nl < leaf_level || skip_blocked {
                return Err(TableError::AlreadyMapped { iova });
            }
            table = next;
            level = nl;
        }
        Ok(Reached { table, level })
    }

    fn set_run(&mut self, table: u64, idx: u64, raw: u64, count: u64, out: &mut Vec<MemWrite>) {
        if let Some(t) = self.tables.get_mut(&table) {
            if let Some(run) = t.entries.get_mut(idx as usize..(idx + count) as usize) {
                run.fill(raw);
            }
        }
        let words = vec![raw; count as usize];
        out.push(write_words(table + idx * 8, &words));
    }

    #[allow(clippy::too_many_arguments)]
    fn map_inner(
        &mut self,
        alloc: &mut TableAllocator,
        iova: u64,
        pa: PhysAddr,
        page_bytes: u64,
        perm: IoPerm,
        skip: Option<(u8, u8)>,
        out: &mut Vec<MemWrite>,
    ) -> Result<PhysAddr, TableError> {
        let levels = self.levels;
        let unsupported = || TableError::PageSizeUnsupported {
            bytes: page_bytes,
            levels,
        };
        let (leaf_level, count) = placement(page_bytes).ok_or_else(unsupported)?;
        if leaf_level > levels || leaf_level > MAX_LEAF_LEVEL {
            return Err(unsupported());
        }
        aligned("IOVA", iova, page_bytes)?;
        aligned("physical address", pa.0, page_bytes)?;
        fits("physical address", pa.0, u32::from(MAX_HAW))?;
        self.check_iova(iova)?;
        let leaf = if count == 1 {
            IoPte::leaf(pa, perm.fc, perm.ir, perm.iw, perm.u)
        } else {
            let mut l = IoPte::sized_leaf(pa, page_bytes, perm.fc, perm.ir, perm.iw)
                .ok_or_else(unsupported)?;
            if perm.u {
                l.0 |= crate::pte::field::U;
            }
            l
        };
        // Dry run: where the existing path stops and how many tables the rest needs.
        let Reached {
            mut table,
            mut level,
        } = self.descend(iova, leaf_level, skip)?;
        let idx = index(iova, leaf_level);
        if level == leaf_level && (idx..idx + count).any(|i| self.entry(table, i) != 0) {
            return Err(TableError::AlreadyMapped { iova });
        }
        let mut needed = 0;
        let mut l = level;
        while l > leaf_level {
            needed += 1;
            l = Self::next_for(l, skip);
        }
        alloc.reserve(needed)?;
        // Build: each new table is a zeroed page before the PDE pointing at it is written.
        while level > leaf_level {
            let nl = Self::next_for(level, skip);
            let next = alloc.alloc()?;
            self.tables.insert(next.0, Self::empty(nl));
            let pde = IoPte::pde(next, nl, true, true);
            self.set_run(table, index(iova, level), pde.0, 1, out);
            table = next.0;
            level = nl;
        }
        self.set_run(table, idx, leaf.0, count, out);
        Ok(PhysAddr(table + idx * 8))
    }

    /// Maps one page of `page_bytes` at `iova` to `pa`: a power of two from 4 KiB to 2^51.
    /// A natural size (4 KiB, 2 MiB, 1 GiB, ...) is a Next Level 0 leaf at its level; any
    /// other is a Next Level 7 leaf (`PAGE_SIZE_PTE`) at the level below, replicated over the
    /// 2^((log2 − 12) mod 9) entries it covers, as L-AMDP `iommu_v1_map_pages` writes it.
    /// Missing tables are created with PDEs PR | IR | IW, Next Level = the level below
    /// (L-AMDT `PM_LEVEL_PDE`). Returns the address of the first leaf entry.
    pub fn map(
        &mut self,
        alloc: &mut TableAllocator,
        iova: u64,
        pa: PhysAddr,
        page_bytes: u64,
        perm: IoPerm,
        out: &mut Vec<MemWrite>,
    ) -> Result<PhysAddr, TableError> {
        self.map_inner(alloc, iova, pa, page_bytes, perm, None, out)
    }

    /// Maps one 4 KiB page at `iova` with a level-skipping PDE: the PDE at `skip_from` gets
    /// Next Level `skip_to` (< `skip_from` − 1) and points straight at a level-`skip_to`
    /// table; levels in between do not exist for this path (§2.2.3; Linux never does this,
    /// "No level skipping support yet"). The IOVA's index bits of the skipped levels must be
    /// zero, because the IOMMU faults a request that has ones there (VBOX
    /// `kIoPageFaultType_SkippedLevelIovaNotZero`). An existing PDE at `skip_from` is reused
    /// only if it skips to the same level. Returns the address of the leaf entry.
    #[allow(clippy::too_many_arguments)]
    pub fn map_skipping(
        &mut self,
        alloc: &mut TableAllocator,
        iova: u64,
        pa: PhysAddr,
        skip_from: u8,
        skip_to: u8,
        perm: IoPerm,
        out: &mut Vec<MemWrite>,
    ) -> Result<PhysAddr, TableError> {
        if skip_from > self.levels || skip_to == 0 || skip_to + 1 >= skip_from {
            return Err(TableError::BadSkip {
                from: skip_from,
                to: skip_to,
                levels: self.levels,
            });
        }
        let bits = iova & skipped_bits(skip_from, skip_to);
        if bits != 0 {
            return Err(TableError::SkippedBitsNotZero { iova, bits });
        }
        self.map_inner(
            alloc,
            iova,
            pa,
            TABLE_BYTES,
            perm,
            Some((skip_from, skip_to)),
            out,
        )
    }

    /// The table of `level` on `iova`'s path, if every PDE above it exists and leads there.
    fn table_at(&self, iova: u64, level: u8) -> Option<u64> {
        let mut table = self.root.0;
        let mut l = self.levels;
        while l > level {
            let (next, nl) = self.follow(self.entry(table, index(iova, l)), l, iova)?;
            table = next;
            l = nl;
        }
        (l == level).then_some(table)
    }

    /// Clears the leaf (or run of replicated size-encoded leaves) mapping `iova` at exactly
    /// `page_bytes`, writing zeros; tables stay (L-AMDP `iommu_v1_unmap_pages`). Returns the
    /// address of the first cleared entry.
    pub fn unmap(
        &mut self,
        iova: u64,
        page_bytes: u64,
        out: &mut Vec<MemWrite>,
    ) -> Result<PhysAddr, TableError> {
        let not_mapped = || TableError::NotMapped { iova };
        let (level, count) = placement(page_bytes).ok_or_else(not_mapped)?;
        self.check_iova(iova)?;
        aligned("IOVA", iova, page_bytes)?;
        let table = self.table_at(iova, level).ok_or_else(not_mapped)?;
        let idx = index(iova, level);
        let first = IoPte(self.entry(table, idx));
        let matches = first.pr()
            && if count == 1 {
                first.next_level() == NL_LEAF
            } else {
                first.encoded_page_size() == Some(page_bytes)
            }
            && (idx..idx + count).all(|i| self.entry(table, i) == first.0);
        if !matches {
            return Err(not_mapped());
        }
        self.set_run(table, idx, 0, count, out);
        Ok(PhysAddr(table + idx * 8))
    }

    /// Writes `pte` over the natural-size leaf (Next Level 0) mapping `iova` at exactly
    /// `page_bytes`: one 8-byte store, to update or corrupt a PTE in place. Size-encoded
    /// pages, replicated over several entries, are refused. Returns the entry's address.
    pub fn set_leaf(
        &mut self,
        iova: u64,
        page_bytes: u64,
        pte: IoPte,
        out: &mut Vec<MemWrite>,
    ) -> Result<PhysAddr, TableError> {
        let not_mapped = || TableError::NotMapped { iova };
        let (level, count) = placement(page_bytes).ok_or_else(not_mapped)?;
        self.check_iova(iova)?;
        aligned("IOVA", iova, page_bytes)?;
        let table = self.table_at(iova, level).ok_or_else(not_mapped)?;
        let idx = index(iova, level);
        let old = IoPte(self.entry(table, idx));
        if count != 1 || !old.pr() || old.next_level() != NL_LEAF {
            return Err(not_mapped());
        }
        self.set_run(table, idx, pte.0, 1, out);
        Ok(PhysAddr(table + idx * 8))
    }

    /// Address of the entry of a table of `level` on `iova`'s path, if that table exists.
    pub fn entry_address(&self, iova: u64, level: u8) -> Option<PhysAddr> {
        if !(1..=self.levels).contains(&level) || self.check_iova(iova).is_err() {
            return None;
        }
        self.table_at(iova, level)
            .map(|t| PhysAddr(t + index(iova, level) * 8))
    }

    /// Walks the shadow as the IOMMU would, following Next Level (skips included): the
    /// physical address of `iova`, the page size and the leaf. `None` for anything that would
    /// fault (not present, invalid level encoding, skipped bits set, IOVA too wide).
    pub fn lookup(&self, iova: u64) -> Option<(PhysAddr, u64, IoPte)> {
        self.check_iova(iova).ok()?;
        let mut table = self.root.0;
        let mut level = self.levels;
        loop {
            let e = IoPte(self.entry(table, index(iova, level)));
            if !e.pr() {
                return None;
            }
            let size = match e.next_level() {
                NL_LEAF if level <= MAX_LEAF_LEVEL => natural_page_size(level),
                NL_SIZED => e
                    .encoded_page_size()
                    .filter(|&s| sized_leaf_legal(level, s)),
                NL_LEAF => None,
                _ => {
                    let (next, nl) = self.follow(e.0, level, iova)?;
                    table = next;
                    level = nl;
                    continue;
                }
            }?;
            let base = e.page_base()?;
            return Some((PhysAddr(base.0 | (iova & (size - 1))), size, e));
        }
    }

    /// The lowest IOVA bit the root table indexes (for callers that size IOVA spaces).
    pub fn root_shift(&self) -> u32 {
        level_shift(self.levels)
    }
}
