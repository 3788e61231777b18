//! Flushes and fences (SPEC-NOTES §5, after the Intel SDM entries for CLFLUSH, CLFLUSHOPT,
//! CLWB, WBINVD, WBNOINVD).
//!
//! * `clflush` is performed at its call: every copy is invalidated, a dirty one written
//!   back. It returns when the write-back is performed (it is ordered with stores and
//!   other clflushes, so a loop of them is serial).
//! * `clflushopt` and `clwb` are weakly ordered: each becomes a *pending* flush due
//!   `flush_line_cycles` after issue, and returns after `flush_issue_cycles`. A pending
//!   flush has no effect at all until it is performed: at its due tick
//!   ([`Hierarchy::advance`], or the first call at or after it), or earlier when its core
//!   executes `sfence` / `mfence` / `wbinvd` / `wbnoinvd`. So a device access between the
//!   issue and the due tick, with no fence, sees the caches as they were.
//! * A fence returns once every flush of its core is performed and its write-back done.
//! * `wbinvd` / `wbnoinvd` are serializing: they first perform the core's pending flushes,
//!   then walk the caches in scope ([`crate::WbinvdScope`]); the issuing core stalls for
//!   `base + per_line × lines walked + per_dirty × dirty lines`, or until the last
//!   write-back is performed in DRAM, whichever is later.

use super::{cores_in, key, line_of, CoreId, Hierarchy, PendingFlush, Txn};
use crate::config::{WbinvdScope, LINE_BYTES};
use crate::effect::{EffectKind, FlushKind, Observer, WriteBackCause};
use crate::error::CacheError;
use crate::mesi::Event;
use model_core::{LineAddr, PhysAddr, Tick};

impl<O: Observer> Hierarchy<O> {
    /// CLFLUSH of the line holding `pa`, issued by `core`; returns when it is performed.
    pub fn clflush(&mut self, now: Tick, core: CoreId, pa: PhysAddr) -> Result<Tick, CacheError> {
        let c = self.core_index(core)?;
        self.advance(now)?;
        self.stats.flushes.clflush += 1;
        let ready = now + self.cycles(self.config.flush.flush_line_cycles);
        let line = LineAddr::containing(pa, LINE_BYTES as u64);
        self.flush_line(now, ready, c, line, FlushKind::Clflush)
    }

    /// CLFLUSHOPT of the line holding `pa`: pending until due or fenced; returns when the
    /// core may go on.
    pub fn clflushopt(
        &mut self,
        now: Tick,
        core: CoreId,
        pa: PhysAddr,
    ) -> Result<Tick, CacheError> {
        self.stats.flushes.clflushopt += 1;
        self.issue_weak(now, core, pa, FlushKind::Clflushopt)
    }

    /// CLWB of the line holding `pa`: write back if dirty, keep a clean (E) copy; weakly
    /// ordered like CLFLUSHOPT.
    pub fn clwb(&mut self, now: Tick, core: CoreId, pa: PhysAddr) -> Result<Tick, CacheError> {
        self.stats.flushes.clwb += 1;
        self.issue_weak(now, core, pa, FlushKind::Clwb)
    }

    fn issue_weak(
        &mut self,
        now: Tick,
        core: CoreId,
        pa: PhysAddr,
        kind: FlushKind,
    ) -> Result<Tick, CacheError> {
        let c = self.core_index(core)?;
        self.advance(now)?;
        let due = now + self.cycles(self.config.flush.flush_line_cycles);
        let line = LineAddr::containing(pa, LINE_BYTES as u64);
        self.seq += 1;
        self.pending.insert(
            (due, self.seq),
            PendingFlush {
                core: c,
                line,
                kind,
            },
        );
        Ok(now + self.cycles(self.config.flush.flush_issue_cycles))
    }

    /// Pending weak flushes of `core` (issued, not yet performed).
    pub fn pending_flushes(&self, core: CoreId) -> usize {
        let c = usize::from(core.0);
        self.pending.values().filter(|p| p.core == c).count()
    }

    /// SFENCE: performs `core`'s pending flushes now and returns when all its flushes'
    /// write-backs are done (at least `fence_cycles` later). Stores need no draining here:
    /// they are performed at their call.
    pub fn sfence(&mut self, now: Tick, core: CoreId) -> Result<Tick, CacheError> {
        self.stats.flushes.sfence += 1;
        self.fence(now, core)
    }

    /// MFENCE: as [`sfence`](Self::sfence) for flushes (loads, too, are performed at their
    /// call, so there is nothing more to order).
    pub fn mfence(&mut self, now: Tick, core: CoreId) -> Result<Tick, CacheError> {
        self.stats.flushes.mfence += 1;
        self.fence(now, core)
    }

    fn fence(&mut self, now: Tick, core: CoreId) -> Result<Tick, CacheError> {
        let c = self.core_index(core)?;
        self.advance(now)?;
        let flushed = self.force_pending(now, c)?;
        let done = flushed.max(now + self.cycles(self.config.flush.fence_cycles));
        self.stats.stall += done.saturating_since(now);
        Ok(done)
    }

    /// Performs every pending flush of core `c` at `now`; returns when all of the core's
    /// flush write-backs are done.
    fn force_pending(&mut self, now: Tick, c: usize) -> Result<Tick, CacheError> {
        let mine: Vec<_> = self
            .pending
            .iter()
            .filter(|(_, p)| p.core == c)
            .map(|(k, _)| *k)
            .collect();
        let mut done = self.cores[c].flushes_done;
        for k in mine {
            let p = self.pending.remove(&k).expect("listed");
            done = done.max(self.flush_line(now, k.0, c, p.line, p.kind)?);
            self.stats.flushes.weak_performed_by_fence += 1;
        }
        self.cores[c].flushes_done = done;
        Ok(done)
    }

    /// Performs one line flush at `at`: every private copy gets `Flush` (or `Clean` for
    /// clwb), then the LLC copy is written back if dirty and dropped (or kept clean).
    /// Write-backs are issued to DRAM at `ready`; returns when the last is performed.
    pub(crate) fn flush_line(
        &mut self,
        at: Tick,
        ready: Tick,
        c: usize,
        line: LineAddr,
        kind: FlushKind,
    ) -> Result<Tick, CacheError> {
        let core = CoreId(c as u16);
        let cause = WriteBackCause::Flush { core, kind };
        let event = match kind {
            FlushKind::Clwb | FlushKind::Wbnoinvd => Event::Clean,
            _ => Event::Flush,
        };
        let mut txn = Txn::new(at);
        txn.wb_at = ready;
        txn.wb_cause = cause;
        txn.finish_by(ready);
        for o in cores_in(self.sharers(line)) {
            self.step(&mut txn, o, line, event)?;
        }
        self.flush_llc_line(&mut txn, line, event == Event::Flush)?;
        self.emit(
            at,
            line.base(),
            &[],
            EffectKind::FlushPerformed { core, kind },
        );
        Ok(txn.done)
    }

    /// The LLC's part of a flush: write back if dirty; drop (an inclusive LLC
    /// back-invalidates copies outside the flush's scope first) or keep clean.
    fn flush_llc_line(
        &mut self,
        txn: &mut Txn<'_>,
        line: LineAddr,
        invalidate: bool,
    ) -> Result<(), CacheError> {
        let written = if invalidate {
            self.llc_evict(txn, line, txn.wb_cause)?
        } else {
            match self.llc.peek_mut(key(line)) {
                Some(e) if e.dirty => {
                    e.dirty = false;
                    let data = e.data;
                    Some(self.write_dram(txn.now, txn.wb_at, line, &data, txn.wb_cause))
                }
                _ => None,
            }
        };
        if let Some(done) = written {
            txn.finish_by(done);
        }
        Ok(())
    }

    /// WBINVD issued by `core`: write back every modified line in scope and invalidate;
    /// returns when the core may go on.
    pub fn wbinvd(&mut self, now: Tick, core: CoreId) -> Result<Tick, CacheError> {
        self.stats.flushes.wbinvd += 1;
        self.whole_cache(now, core, FlushKind::Wbinvd)
    }

    /// WBNOINVD issued by `core`: write back every modified line in scope, keep the lines
    /// clean (M → E: SPEC-NOTES §5, UNCONFIRMED).
    pub fn wbnoinvd(&mut self, now: Tick, core: CoreId) -> Result<Tick, CacheError> {
        self.stats.flushes.wbnoinvd += 1;
        self.whole_cache(now, core, FlushKind::Wbnoinvd)
    }

    fn whole_cache(
        &mut self,
        now: Tick,
        core: CoreId,
        kind: FlushKind,
    ) -> Result<Tick, CacheError> {
        let c = self.core_index(core)?;
        self.advance(now)?;
        let mut done = self.force_pending(now, c)?;
        let event = match kind {
            FlushKind::Wbinvd => Event::Flush,
            _ => Event::Clean,
        };
        let mut txn = Txn::new(now);
        txn.wb_cause = WriteBackCause::Flush { core, kind };
        let before = self.stats.writebacks_to_dram;
        let scope: Vec<usize> = match self.config.wbinvd_scope {
            WbinvdScope::AllCores => (0..self.cores.len()).collect(),
            WbinvdScope::IssuerAndShared => vec![c],
        };
        let mut walked = self.llc.capacity() as u64;
        for &o in &scope {
            let cache = &self.cores[o];
            walked +=
                (cache.outer.capacity() + cache.inner.as_ref().map_or(0, |a| a.capacity())) as u64;
            for k in cache.outer.keys() {
                self.step(&mut txn, o, line_of(k), event)?;
            }
        }
        for k in self.llc.keys() {
            self.flush_llc_line(&mut txn, line_of(k), event == Event::Flush)?;
        }
        let dirty = self.stats.writebacks_to_dram - before;
        let f = self.config.flush;
        let walk = f.wbinvd_base_cycles.0
            + f.wbinvd_cycles_per_line.0.saturating_mul(walked)
            + f.wbinvd_cycles_per_dirty_line.0.saturating_mul(dirty);
        done = done
            .max(txn.done)
            .max(now + self.cycles(model_core::Cycles(walk)));
        self.stats.flushes.wbinvd_lines_walked += walked;
        self.stats.flushes.wbinvd_dirty_lines += dirty;
        self.stats.stall += done.saturating_since(now);
        Ok(done)
    }
}
