//! The home (LLC and directory) side of a core's miss or upgrade.
//!
//! A read miss snoops a lone holder (it may hold E or M: the directory, like a real snoop
//! filter, cannot see a silent E → M upgrade); with two or more holders all are S and the
//! data comes from the LLC or DRAM. A write miss or upgrade invalidates every other holder.
//! Latency: the LLC lookup, plus a snoop when one was sent, or the DRAM access.

use super::{cores_in, key, Hierarchy, Line, Txn};
use crate::config::LINE_BYTES;
use crate::effect::{Observer, Source};
use crate::error::CacheError;
use crate::mesi::{Event, LineState};
use model_core::{LineAddr, Tick, WayMask};

impl<O: Observer> Hierarchy<O> {
    /// When the LLC answers a request made at `now`.
    pub(crate) fn llc_lookup_done(&self, now: Tick) -> Tick {
        now + self.cycles(self.config.llc.level.hit_cycles)
    }

    /// When a request made at `now` that had to snoop a core completes.
    pub(crate) fn snoop_done(&self, now: Tick) -> Tick {
        self.llc_lookup_done(now) + self.cycles(self.config.snoop_cycles)
    }

    /// The line's bytes from the LLC, else DRAM (an inclusive LLC is filled on the way).
    pub(crate) fn llc_fetch(
        &mut self,
        txn: &mut Txn<'_>,
        line: LineAddr,
    ) -> Result<(Line, Source), CacheError> {
        let lookup = self.llc_lookup_done(txn.now);
        if let Some(e) = self.llc.lookup(key(line)) {
            let data = e.data;
            self.stats.llc.hits += 1;
            txn.finish_by(lookup);
            return Ok((data, Source::Llc));
        }
        self.stats.llc.misses += 1;
        let mut data = [0; LINE_BYTES];
        let done = self.dram.read(lookup, line.base(), &mut data);
        txn.finish_by(done);
        if self.config.llc.inclusive {
            self.llc_insert(txn, line, data, false, WayMask::ALL)?;
        }
        Ok((data, Source::Dram))
    }

    /// Serves `core`'s read miss; the core is in IS_D and gets DataS or DataE.
    pub(crate) fn home_get_s(
        &mut self,
        txn: &mut Txn<'_>,
        core: usize,
        line: LineAddr,
    ) -> Result<(), CacheError> {
        let others = self.sharers(line) & !(1 << core);
        let mut owner = None;
        if others.count_ones() == 1 {
            let o = others.trailing_zeros() as usize;
            self.stats.snoops.fwd_gets += 1;
            if self.state(o, line) == LineState::M {
                owner = Some(o);
            }
            self.step(txn, o, line, Event::FwdGetS)?;
            txn.finish_by(self.snoop_done(txn.now));
        }
        // A dirty owner has just written its data into the LLC.
        let (data, source) = self.llc_fetch(txn, line)?;
        txn.fill = data;
        txn.source = owner.map_or(source, |o| Source::Core(super::CoreId(o as u16)));
        let exclusive = self.sharers(line) & !(1 << core) == 0;
        let response = if exclusive {
            Event::DataE
        } else {
            Event::DataS
        };
        self.step(txn, core, line, response)
    }

    /// Serves `core`'s write miss; the core is in IM_D and gets DataM.
    pub(crate) fn home_get_m(
        &mut self,
        txn: &mut Txn<'_>,
        core: usize,
        line: LineAddr,
    ) -> Result<(), CacheError> {
        let others = self.sharers(line) & !(1 << core);
        for o in cores_in(others) {
            self.stats.snoops.invalidations += 1;
            self.step(txn, o, line, Event::Inv)?;
        }
        if others != 0 {
            txn.finish_by(self.snoop_done(txn.now));
        }
        match txn.fwd.take() {
            Some((o, data)) => {
                txn.fill = data;
                txn.source = Source::Core(super::CoreId(o as u16));
            }
            None => {
                let (data, source) = self.llc_fetch(txn, line)?;
                txn.fill = data;
                txn.source = source;
            }
        }
        self.step(txn, core, line, Event::DataM)
    }

    /// Serves `core`'s upgrade from S; the core is in SM_A and gets UpgradeAck.
    pub(crate) fn home_upgrade(
        &mut self,
        txn: &mut Txn<'_>,
        core: usize,
        line: LineAddr,
    ) -> Result<(), CacheError> {
        self.stats.upgrades += 1;
        let others = self.sharers(line) & !(1 << core);
        for o in cores_in(others) {
            self.stats.snoops.invalidations += 1;
            self.step(txn, o, line, Event::Inv)?;
        }
        let done = match others {
            0 => self.llc_lookup_done(txn.now),
            _ => self.snoop_done(txn.now),
        };
        txn.finish_by(done);
        let k = key(line);
        let c = &mut self.cores[core];
        c.outer.touch(k);
        if let Some(l1) = &mut c.inner {
            l1.insert(k, ());
        }
        self.step(txn, core, line, Event::UpgradeAck)
    }
}
