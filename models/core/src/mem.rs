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
