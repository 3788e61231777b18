//! Sparse, data-carrying physical memory.
//!
//! Every byte the simulator moves is real: DRAM holds actual contents, and the corruption
//! checker keeps a second [`SparseMemory`] as the coherent reference. Storage is allocated a
//! 4 KiB frame at a time, on first write; bytes never written read as zero (a run starts
//! from zeroed memory, which the reference memory assumes too).

use crate::addr::PhysAddr;
use std::collections::BTreeMap;

/// Bytes per storage frame (the x86 base page size; any power of two would do).
const FRAME_BYTES: usize = 4096;
const FRAME_MASK: u64 = FRAME_BYTES as u64 - 1;

/// A byte-addressable 64-bit physical address space that stores only what was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SparseMemory {
    frames: BTreeMap<u64, Box<[u8; FRAME_BYTES]>>,
}

impl SparseMemory {
    /// An empty (all-zero) memory.
    pub fn new() -> SparseMemory {
        SparseMemory::default()
    }

    /// Copies `buf.len()` bytes starting at `pa` into `buf`. Addresses wrap at 2^64.
    pub fn read(&self, pa: PhysAddr, buf: &mut [u8]) {
        let mut done = 0;
        while done < buf.len() {
            let addr = pa.0.wrapping_add(done as u64);
            let off = (addr & FRAME_MASK) as usize;
            let n = (FRAME_BYTES - off).min(buf.len() - done);
            match self.frames.get(&(addr >> 12)) {
                Some(frame) => buf[done..done + n].copy_from_slice(&frame[off..off + n]),
                None => buf[done..done + n].fill(0),
            }
            done += n;
        }
    }

    /// Copies `data` into memory starting at `pa`. Addresses wrap at 2^64.
    pub fn write(&mut self, pa: PhysAddr, data: &[u8]) {
        let mut done = 0;
        while done < data.len() {
            let addr = pa.0.wrapping_add(done as u64);
            let off = (addr & FRAME_MASK) as usize;
            let n = (FRAME_BYTES - off).min(data.len() - done);
            let frame = self
                .frames
                .entry(addr >> 12)
                .or_insert_with(|| Box::new([0; FRAME_BYTES]));
            frame[off..off + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
    }

    /// Reads `len` bytes into a new vector.
    pub fn read_vec(&self, pa: PhysAddr, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.read(pa, &mut v);
        v
    }

    /// Bytes of host memory held by the storage frames.
    pub fn resident_bytes(&self) -> usize {
        self.frames.len() * FRAME_BYTES
    }
}

/// A write host software makes to memory — a translation-table entry, a descriptor — in
/// the order it makes them; the system performs it as a CPU store through the caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemWrite {
    /// Where the bytes go.
    pub pa: PhysAddr,
    /// The bytes as they lie in memory (little-endian structures).
    pub bytes: Vec<u8>,
}

/// The widest physical address on x86 (SDM Vol. 3 §4.1.4: MAXPHYADDR ≤ 52).
pub const MAX_PHYS_BITS: u32 = 52;

/// Bytes of a page the IOMMU table allocators hand out: every translation structure is
/// 4 KiB aligned (VT-d §9, AMD IOMMU §2.2.3).
pub const TABLE_PAGE_BYTES: u64 = 4096;

/// Hands out zeroed 4 KiB pages from a region of simulated memory, in address order, never
/// reusing one: how the simulator's IOMMU drivers get table memory (memory starts zeroed,
/// so a fresh page needs no writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageAllocator {
    base: PhysAddr,
    pages: u64,
    used: u64,
}

/// Why a region or an allocation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageAllocError {
    /// The region's base or size is not a multiple of 4 KiB.
    #[error("{what} {addr:#x} is not a multiple of {align:#x}")]
    Misaligned {
        /// Which value.
        what: &'static str,
        /// The value.
        addr: u64,
        /// The alignment it needs.
        align: u64,
    },
    /// The region reaches at or above 2^`bits`.
    #[error("{what} {addr:#x} does not fit in {bits} address bits")]
    TooWide {
        /// Which value.
        what: &'static str,
        /// The value.
        addr: u64,
        /// The address width.
        bits: u32,
    },
    /// Not enough free pages.
    #[error("table memory exhausted: the region at {base} has {pages} pages of 4 KiB and this operation needs {needed} more than are free; give the table region more bytes")]
    OutOfMemory {
        /// Base of the region.
        base: PhysAddr,
        /// Pages in the region.
        pages: u64,
        /// Pages needed beyond those free.
        needed: u64,
    },
}

/// `addr` is a multiple of `align` (a power of two), or the [`PageAllocError::Misaligned`]
/// naming `what`.
pub fn aligned(what: &'static str, addr: u64, align: u64) -> Result<(), PageAllocError> {
    if addr & (align - 1) == 0 {
        Ok(())
    } else {
        Err(PageAllocError::Misaligned { what, addr, align })
    }
}

/// `addr` lies below 2^`bits`, or the [`PageAllocError::TooWide`] naming `what`.
pub fn fits(what: &'static str, addr: u64, bits: u32) -> Result<(), PageAllocError> {
    if bits >= 64 || addr >> bits == 0 {
        Ok(())
    } else {
        Err(PageAllocError::TooWide { what, addr, bits })
    }
}

impl PageAllocator {
    /// A region of `bytes` (a multiple of 4 KiB) at `base` (4 KiB aligned) whose last byte
    /// lies below 2^52, the widest physical address x86 defines (SDM Vol. 3 §4.1.4:
    /// MAXPHYADDR is at most 52).
    pub fn new(base: PhysAddr, bytes: u64) -> Result<PageAllocator, PageAllocError> {
        let max_bits = MAX_PHYS_BITS;
        aligned("table region base", base.0, TABLE_PAGE_BYTES)?;
        aligned("table region size", bytes, TABLE_PAGE_BYTES)?;
        let last = base
            .0
            .checked_add(bytes.saturating_sub(1))
            .ok_or(PageAllocError::TooWide {
                what: "table region end",
                addr: base.0,
                bits: 64,
            })?;
        fits("table region end", last, max_bits)?;
        Ok(PageAllocator {
            base,
            pages: bytes / TABLE_PAGE_BYTES,
            used: 0,
        })
    }

    /// A fresh zeroed page.
    pub fn alloc(&mut self) -> Result<PhysAddr, PageAllocError> {
        self.alloc_pages(1)
    }

    /// `n` contiguous fresh pages; the first.
    pub fn alloc_pages(&mut self, n: u64) -> Result<PhysAddr, PageAllocError> {
        self.reserve(n)?;
        let pa = PhysAddr(self.base.0 + self.used * TABLE_PAGE_BYTES);
        self.used += n;
        Ok(pa)
    }

    /// Contiguous fresh pages holding `bytes` (at least one page); the first.
    pub fn alloc_bytes(&mut self, bytes: u64) -> Result<PhysAddr, PageAllocError> {
        self.alloc_pages(bytes.div_ceil(TABLE_PAGE_BYTES).max(1))
    }

    /// Fails unless `n` pages are free (for operations that must change nothing when
    /// refused).
    pub fn reserve(&self, n: u64) -> Result<(), PageAllocError> {
        if n <= self.free_pages() {
            Ok(())
        } else {
            Err(PageAllocError::OutOfMemory {
                base: self.base,
                pages: self.pages,
                needed: n - self.free_pages(),
            })
        }
    }

    /// Pages handed out so far.
    pub fn used_pages(&self) -> u64 {
        self.used
    }

    /// Pages still free.
    pub fn free_pages(&self) -> u64 {
        self.pages - self.used
    }

    /// Base of the region.
    pub fn base(&self) -> PhysAddr {
        self.base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwritten_memory_reads_as_zero() {
        let m = SparseMemory::new();
        assert_eq!(m.read_vec(PhysAddr(0xdead_0000), 16), vec![0; 16]);
        assert_eq!(m.resident_bytes(), 0);
    }

    #[test]
    fn a_write_across_a_frame_boundary_reads_back_whole() {
        let mut m = SparseMemory::new();
        let data: Vec<u8> = (0..=255).collect();
        m.write(PhysAddr(0x1f80), &data);
        assert_eq!(m.read_vec(PhysAddr(0x1f80), 256), data);
        assert_eq!(m.resident_bytes(), 2 * FRAME_BYTES);
        // Bytes around the write are untouched.
        assert_eq!(m.read_vec(PhysAddr(0x1f7f), 1), vec![0]);
        assert_eq!(m.read_vec(PhysAddr(0x2080), 1), vec![0]);
    }

    #[test]
    fn writes_at_the_top_of_the_address_space_wrap_without_panicking() {
        let mut m = SparseMemory::new();
        m.write(PhysAddr(u64::MAX - 1), &[1, 2, 3, 4]);
        assert_eq!(m.read_vec(PhysAddr(u64::MAX - 1), 4), vec![1, 2, 3, 4]);
        assert_eq!(m.read_vec(PhysAddr(0), 2), vec![3, 4]);
    }
}
