//! Running the MESI table: [`Hierarchy::step`] looks a `(state, event)` pair up in
//! [`crate::mesi::transition`] and performs its actions, one small function each; plus the
//! LLC operations those actions need (insert with victim handling, eviction, DRAM writes).

use super::{cores_in, key, line_of, CoreId, Hierarchy, LlcLine, PrivLine, Request, Txn};
use crate::config::LINE_BYTES;
use crate::effect::{EffectKind, Observer, Source, WriteBackCause};
use crate::error::{CacheError, Invariant};
use crate::mesi::{self, Action, Event, LineState};
use model_core::{LineAddr, PhysAddr, Tick, WayMask};

impl<O: Observer> Hierarchy<O> {
    /// Delivers `event` to `core`'s copy of `line`: the table's actions, then its next state.
    pub(crate) fn step(
        &mut self,
        txn: &mut Txn<'_>,
        core: usize,
        line: LineAddr,
        event: Event,
    ) -> Result<(), CacheError> {
        let state = self.state(core, line);
        let t = mesi::transition(state, event).map_err(|source| CacheError::Protocol {
            core: CoreId(core as u16),
            line,
            source,
        })?;
        for &action in t.actions {
            self.act(txn, core, line, action)?;
        }
        self.set_state(core, line, t.next)
    }

    fn act(
        &mut self,
        txn: &mut Txn<'_>,
        core: usize,
        line: LineAddr,
        action: Action,
    ) -> Result<(), CacheError> {
        match action {
            Action::Hit => self.hit(txn, core, line),
            Action::Allocate => return self.allocate(txn, core, line),
            Action::IssueGetS => txn.request = Some(Request::GetS),
            Action::IssueGetM => txn.request = Some(Request::GetM),
            Action::IssueUpgrade => txn.request = Some(Request::Upgrade),
            Action::Fill => self.block_mut(core, line)?.data = txn.fill,
            Action::WriteData => {
                let (offset, bytes) = txn.store;
                self.block_mut(core, line)?.data[offset..offset + bytes.len()]
                    .copy_from_slice(bytes);
            }
            Action::SendData => {
                txn.fwd = Some((core, self.block_mut(core, line)?.data));
                self.stats.snoops.dirty_forwards += 1;
            }
            Action::WriteBackToLlc => return self.write_back_to_llc(txn, core, line),
            Action::WriteBackToMemory => return self.write_back_to_memory(txn, core, line),
            Action::VictimToLlc => return self.victim_to_llc(txn, core, line),
            Action::Deallocate => self.deallocate(core, line),
        }
        Ok(())
    }

    /// The new state: `I` requires the block gone, any other state requires it present.
    fn set_state(
        &mut self,
        core: usize,
        line: LineAddr,
        next: LineState,
    ) -> Result<(), CacheError> {
        let id = CoreId(core as u16);
        match (self.cores[core].outer.peek_mut(key(line)), next) {
            (None, LineState::I) => Ok(()),
            (Some(b), s) if s != LineState::I => {
                b.state = s;
                Ok(())
            }
            (Some(_), _) => Err(Invariant::StaleListing { core: id, line }.into()),
            (None, _) => Err(Invariant::Unlisted { core: id, line }.into()),
        }
    }

    fn block_mut(&mut self, core: usize, line: LineAddr) -> Result<&mut PrivLine, CacheError> {
        self.cores[core]
            .outer
            .peek_mut(key(line))
            .ok_or(CacheError::Invariant(Invariant::StaleListing {
                core: CoreId(core as u16),
                line,
            }))
    }

    /// A private hit: recency, counters, latency of the level that has it.
    fn hit(&mut self, txn: &mut Txn<'_>, core: usize, line: LineAddr) {
        let k = key(line);
        let c = &mut self.cores[core];
        let l1_hit = match &mut c.inner {
            Some(l1) => {
                let hit = l1.touch(k);
                if !hit {
                    l1.insert(k, ());
                    c.outer.touch(k);
                }
                hit
            }
            None => c.outer.touch(k),
        };
        let (source, cycles) = match (l1_hit, &self.config.l2) {
            (true, _) | (false, None) => (Source::L1, self.config.l1.hit_cycles),
            (false, Some(l2)) => (Source::L2, l2.hit_cycles),
        };
        if source == Source::L1 {
            self.stats.l1.hits += 1;
        } else {
            self.stats.l1.misses += 1;
            self.stats.l2.hits += 1;
        }
        txn.source = source;
        txn.finish_by(txn.now + self.cycles(cycles));
    }

    /// Makes room (the victim goes through `Replace`), inserts an empty block, lists the core.
    fn allocate(
        &mut self,
        txn: &mut Txn<'_>,
        core: usize,
        line: LineAddr,
    ) -> Result<(), CacheError> {
        let k = key(line);
        self.stats.l1.misses += 1;
        if self.config.l2.is_some() {
            self.stats.l2.misses += 1;
        }
        if let Some((victim, _)) = self.cores[core].outer.victim(k) {
            self.step(txn, core, line_of(victim), Event::Replace)?;
        }
        let block = PrivLine {
            state: LineState::I,
            data: [0; LINE_BYTES],
        };
        let c = &mut self.cores[core];
        c.outer.insert(k, block);
        if let Some(l1) = &mut c.inner {
            l1.insert(k, ()); // an L1 victim is just dropped: its data lives in L2
        }
        *self.directory.entry(k).or_insert(0) |= 1 << core;
        Ok(())
    }

    /// Frees the block in every private level and unlists the core.
    fn deallocate(&mut self, core: usize, line: LineAddr) {
        let k = key(line);
        let c = &mut self.cores[core];
        c.outer.invalidate(k);
        if let Some(l1) = &mut c.inner {
            l1.invalidate(k);
        }
        if let Some(mask) = self.directory.get_mut(&k) {
            *mask &= !(1 << core);
            if *mask == 0 {
                self.directory.remove(&k);
            }
        }
    }

    fn write_back_to_llc(
        &mut self,
        txn: &mut Txn<'_>,
        core: usize,
        line: LineAddr,
    ) -> Result<(), CacheError> {
        let data = self.block_mut(core, line)?.data;
        if self.config.llc.inclusive && !self.llc.contains(key(line)) {
            return Err(Invariant::NotInclusive { line }.into());
        }
        self.stats.writebacks_to_llc += 1;
        self.llc_insert(txn, line, data, true, WayMask::ALL)
    }

    /// Dirty data to DRAM (at `txn.wb_at`); an LLC copy takes the data and becomes clean.
    fn write_back_to_memory(
        &mut self,
        txn: &mut Txn<'_>,
        core: usize,
        line: LineAddr,
    ) -> Result<(), CacheError> {
        let data = self.block_mut(core, line)?.data;
        if let Some(e) = self.llc.peek_mut(key(line)) {
            *e = LlcLine { dirty: false, data };
        }
        let done = self.write_dram(txn.now, txn.wb_at, line, &data, txn.wb_cause);
        txn.finish_by(done);
        Ok(())
    }

    /// A clean victim of a non-inclusive LLC's private level fills the LLC if absent.
    fn victim_to_llc(
        &mut self,
        txn: &mut Txn<'_>,
        core: usize,
        line: LineAddr,
    ) -> Result<(), CacheError> {
        if self.config.llc.inclusive || self.llc.contains(key(line)) {
            return Ok(());
        }
        let data = self.block_mut(core, line)?.data;
        self.llc_insert(txn, line, data, false, WayMask::ALL)
    }

    /// Puts `data` in the LLC: updates a present line (dirty is sticky), or allocates in
    /// `ways`, evicting a victim first.
    pub(crate) fn llc_insert(
        &mut self,
        txn: &mut Txn<'_>,
        line: LineAddr,
        data: [u8; LINE_BYTES],
        dirty: bool,
        ways: WayMask,
    ) -> Result<(), CacheError> {
        let k = key(line);
        if let Some(e) = self.llc.peek_mut(k) {
            e.data = data;
            e.dirty |= dirty;
            self.llc.touch(k);
            return Ok(());
        }
        if let Some((victim, _)) = self.llc.victim_within(k, ways) {
            self.llc_evict(txn, line_of(victim), WriteBackCause::LlcEviction)?;
        }
        self.llc.insert_within(k, LlcLine { dirty, data }, ways);
        Ok(())
    }

    /// Removes `line` from the LLC: an inclusive LLC first back-invalidates the private
    /// copies (a dirty one is written back into it); then dirty data goes to DRAM, issued
    /// at `txn.wb_at`. Returns when that write is performed, if there was one.
    pub(crate) fn llc_evict(
        &mut self,
        txn: &mut Txn<'_>,
        line: LineAddr,
        cause: WriteBackCause,
    ) -> Result<Option<Tick>, CacheError> {
        if self.config.llc.inclusive {
            for c in cores_in(self.sharers(line)) {
                self.stats.snoops.back_invalidations += 1;
                self.step(txn, c, line, Event::BackInv)?;
            }
        }
        Ok(match self.llc.invalidate(key(line)) {
            Some(e) if e.dirty => Some(self.write_dram(txn.now, txn.wb_at, line, &e.data, cause)),
            _ => None,
        })
    }

    /// Writes a whole dirty line into DRAM (data moves now; the channel is asked at
    /// `issue`) and reports it. Returns when the write is performed.
    pub(crate) fn write_dram(
        &mut self,
        now: Tick,
        issue: Tick,
        line: LineAddr,
        data: &[u8; LINE_BYTES],
        cause: WriteBackCause,
    ) -> Tick {
        self.stats.writebacks_to_dram += 1;
        let done = self.dram.write(issue, line.base(), data);
        let pa: PhysAddr = line.base();
        self.emit(now, pa, data, EffectKind::WriteBack { cause });
        done
    }
}
