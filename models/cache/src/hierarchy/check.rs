//! Invariant checks and an untimed coherent view, for testers and checkers.

use super::{cores_in, key, line_of, CoreId, Hierarchy, Line};
use crate::config::LINE_BYTES;
use crate::effect::Observer;
use crate::error::{CacheError, Invariant};
use crate::mesi::LineState;
use model_core::{LineAddr, PhysAddr};
use std::collections::BTreeSet;

impl<O: Observer> Hierarchy<O> {
    /// Checks the protocol invariants, whatever the traffic (no-snoop DMA included):
    /// every line is in a stable state; the directory lists exactly the holders; single
    /// writer / multiple readers (an E or M copy is the only copy); an inclusive LLC holds
    /// every privately cached line; a core's L1 tags are within its L2.
    pub fn check_invariants(&self) -> Result<(), CacheError> {
        for (c, core) in self.cores.iter().enumerate() {
            let id = CoreId(c as u16);
            for (k, block) in core.outer.iter() {
                let line = line_of(k);
                if !block.state.is_stable() || block.state == LineState::I {
                    let state = block.state;
                    return Err(Invariant::Transient {
                        core: id,
                        line,
                        state,
                    }
                    .into());
                }
                if self.sharers(line) >> c & 1 == 0 {
                    return Err(Invariant::Unlisted { core: id, line }.into());
                }
            }
            for (k, _) in core.inner.iter().flat_map(|l1| l1.iter()) {
                if !core.outer.contains(k) {
                    let line = line_of(k);
                    return Err(Invariant::L1NotInL2 { core: id, line }.into());
                }
            }
        }
        for (&k, &holders) in &self.directory {
            let line = line_of(k);
            for c in cores_in(holders) {
                if c >= self.cores.len() || !self.cores[c].outer.contains(k) {
                    let core = CoreId(c as u16);
                    return Err(Invariant::StaleListing { core, line }.into());
                }
            }
            let exclusive = cores_in(holders).any(|c| self.state(c, line).is_exclusive());
            if holders == 0 || (exclusive && holders.count_ones() > 1) {
                return Err(Invariant::SingleWriter { line, holders }.into());
            }
            if self.config.llc.inclusive && !self.llc.contains(k) {
                return Err(Invariant::NotInclusive { line }.into());
            }
        }
        Ok(())
    }

    /// Checks the data-value invariant, which holds only while every device access is
    /// snooped: without an M copy, every private copy equals the LLC's copy (else DRAM),
    /// and a clean LLC copy equals DRAM.
    pub fn check_data_coherent(&self) -> Result<(), CacheError> {
        let lines: BTreeSet<u64> = self
            .directory
            .keys()
            .copied()
            .chain(self.llc.iter().map(|(k, _)| k))
            .collect();
        for k in lines {
            let line = line_of(k);
            let holders = self.sharers(line);
            if cores_in(holders).any(|c| self.state(c, line) == LineState::M) {
                continue;
            }
            let mut dram = [0; LINE_BYTES];
            self.dram.contents().read(line.base(), &mut dram);
            let llc = self.llc.peek(k);
            let below = llc.map_or(dram, |e| e.data);
            for c in cores_in(holders) {
                let block = self.cores[c].outer.peek(k).expect("listed holders hold it");
                if block.data != below {
                    let copy = format!("core {c}'s {} copy", block.state);
                    return Err(Invariant::Data { line, copy }.into());
                }
            }
            if llc.is_some_and(|e| !e.dirty && e.data != dram) {
                let copy = "DRAM under a clean LLC copy".to_owned();
                return Err(Invariant::Data { line, copy }.into());
            }
        }
        Ok(())
    }

    /// The freshest copy of the line holding `pa`: an M copy, else the LLC's, else DRAM's.
    /// Untimed and side-effect free; with snooped-only traffic it is the coherent value.
    pub fn coherent_line(&self, pa: PhysAddr) -> [u8; LINE_BYTES] {
        let line = LineAddr::containing(pa, LINE_BYTES as u64);
        let k = key(line);
        let owner = cores_in(self.sharers(line)).find(|&c| self.state(c, line) == LineState::M);
        if let Some(c) = owner {
            return self.cores[c].outer.peek(k).expect("owner holds it").data;
        }
        if let Some(e) = self.llc.peek(k) {
            return e.data;
        }
        let mut data: Line = [0; LINE_BYTES];
        self.dram.contents().read(line.base(), &mut data);
        data
    }

    /// Whether the LLC holds the line of `pa`, and if so whether it is dirty (untimed).
    pub fn llc_line(&self, pa: PhysAddr) -> Option<bool> {
        let line = LineAddr::containing(pa, LINE_BYTES as u64);
        self.llc.peek(key(line)).map(|e| e.dirty)
    }
}
