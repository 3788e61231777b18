//! The corruption checker: a coherent reference memory beside the real hierarchy.
//!
//! Every performed write is applied to the reference in simulated order; every performed
//! read is compared with it byte by byte. A mismatch is classified (DESIGN.md "Data is
//! real") and the first few of each class keep an explanation: the chain of events, with
//! ticks, that touched the bytes. In this slice DMA goes straight to DRAM, so the reference
//! and DRAM agree unless the data path itself is broken; the cache issue adds the CPU side
//! (stale CPU reads, lost DMA writes).

use model_core::{Bdf, PhysAddr, SparseMemory, Tick};
use reports::{hex_address, ChainStep, ClassCount, Corruption, Explanation};
use std::collections::BTreeMap;

/// Explanations kept per class unless the scenario says otherwise.
pub const DEFAULT_EXPLANATIONS: usize = 4;

/// Who last wrote a byte range, for explanations.
#[derive(Debug, Clone)]
struct LastWrite {
    tick: Tick,
    actor: String,
    len: usize,
}

/// The reference memory and the tallies of mismatches.
#[derive(Debug, Clone)]
pub struct Checker {
    reference: SparseMemory,
    /// Last write by start address (only for explanations).
    last_writes: BTreeMap<u64, LastWrite>,
    corruption: Corruption,
    keep: usize,
}

impl Checker {
    /// An all-zero reference, keeping `keep` explanations per class.
    pub fn new(keep: usize) -> Checker {
        Checker {
            reference: SparseMemory::new(),
            last_writes: BTreeMap::new(),
            corruption: Corruption::default(),
            keep,
        }
    }

    /// A device's write was performed at `now`.
    pub fn dma_write(&mut self, now: Tick, dev: Bdf, pa: PhysAddr, data: &[u8]) {
        self.reference.write(pa, data);
        self.last_writes.insert(
            pa.raw(),
            LastWrite {
                tick: now,
                actor: format!("device {dev}"),
                len: data.len(),
            },
        );
    }

    /// A device's read was performed at `now` and returned `data`. A mismatch with the
    /// reference is a stale device read: the device got older bytes than were last written.
    pub fn dma_read(&mut self, now: Tick, dev: Bdf, pa: PhysAddr, data: &[u8]) {
        let want = self.reference.read_vec(pa, data.len());
        let stale = want.iter().zip(data).filter(|(w, g)| w != g).count();
        if stale == 0 {
            return;
        }
        let first = want.iter().zip(data).position(|(w, g)| w != g).unwrap_or(0);
        let bad = pa.raw() + first as u64;
        let mut chain: Vec<ChainStep> = self
            .last_writes
            .range(..=bad)
            .rev()
            .find(|(start, w)| **start + w.len as u64 > bad)
            .map(|(start, w)| ChainStep {
                tick_ps: w.tick.as_ps(),
                actor: w.actor.clone(),
                what: format!("wrote {} bytes at {}", w.len, hex_address(*start)),
            })
            .into_iter()
            .collect();
        chain.push(ChainStep {
            tick_ps: now.as_ps(),
            actor: format!("device {dev}"),
            what: format!(
                "read {} bytes at {}: byte {} is {:#04x}, the reference holds {:#04x}",
                data.len(),
                pa,
                hex_address(bad),
                data[first],
                want[first]
            ),
        });
        record(
            &mut self.corruption.stale_device_read,
            self.keep,
            Explanation {
                address: hex_address(bad),
                bytes: stale as u64,
                summary: format!(
                    "device {dev} read {stale} stale bytes: memory did not hold the last value written"
                ),
                chain,
            },
        );
    }

    /// The tallies, with the total filled in.
    pub fn corruption(&self) -> Corruption {
        let mut c = self.corruption.clone();
        c.recompute_total();
        c
    }
}

fn record(class: &mut ClassCount, keep: usize, e: Explanation) {
    class.events += 1;
    class.bytes += e.bytes;
    if class.first.len() < keep {
        class.first.push(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_disagrees_with_the_reference_is_a_stale_device_read() {
        let dev = Bdf::from_raw(0x0100);
        let mut c = Checker::new(1);
        c.dma_write(Tick::from_ps(5), dev, PhysAddr(0x1000), &[1, 2, 3, 4]);
        c.dma_read(Tick::from_ps(9), dev, PhysAddr(0x1000), &[1, 2, 3, 4]);
        assert_eq!(c.corruption().total_events, 0);
        // Two bytes come back old.
        c.dma_read(Tick::from_ps(10), dev, PhysAddr(0x1000), &[1, 0, 0, 4]);
        c.dma_read(Tick::from_ps(11), dev, PhysAddr(0x1002), &[0]);
        let k = c.corruption();
        assert_eq!(k.stale_device_read.events, 2);
        assert_eq!(k.stale_device_read.bytes, 3);
        assert_eq!(k.total_events, 2);
        assert_eq!(k.stale_device_read.first.len(), 1, "keeps only the first");
        let e = &k.stale_device_read.first[0];
        assert_eq!(e.address, "0x1001");
        assert_eq!(e.chain[0].tick_ps, 5, "the chain starts at the write");
        assert_eq!(e.chain[1].tick_ps, 10);
    }
}
