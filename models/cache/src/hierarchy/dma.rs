//! Device accesses: the snooped (coherent) path through the home, and the no-snoop path
//! straight to DRAM that leaves every cache as it was (DESIGN.md "The effective snoop
//! decision"; this model is handed `snooped`, the root complex decides it).

use super::{cores_in, key, segments, Hierarchy, Txn};
use crate::config::LINE_BYTES;
use crate::effect::{DmaTarget, EffectKind, Observer, Source, WriteBackCause};
use crate::error::CacheError;
use crate::mesi::Event;
use model_core::{LineAddr, PhysAddr, Tick, WayMask};

impl<O: Observer> Hierarchy<O> {
    /// A device writes `data` at `pa` (any length and alignment), offered at `now`; returns
    /// when the write is performed.
    ///
    /// * Snooped: every cached copy is invalidated; a partial line merges with a dirty
    ///   owner's (or dirty LLC) data first. With DDIO the line is written into the LLC
    ///   (updated in place, or allocated in the DDIO ways); without, it goes to DRAM.
    /// * Not snooped: straight to DRAM; caches keep whatever they held (the hazard).
    pub fn dma_write(
        &mut self,
        now: Tick,
        pa: PhysAddr,
        data: &[u8],
        snooped: bool,
    ) -> Result<Tick, CacheError> {
        self.advance(now)?;
        let segs = segments(pa, data.len())?;
        if !snooped {
            self.stats.dma.no_snoop_writes += 1;
            let done = self.dram.write(now, pa, data);
            let kind = EffectKind::DmaWrite {
                snooped: false,
                into: DmaTarget::Dram,
            };
            self.emit(now, pa, data, kind);
            return Ok(done);
        }
        self.stats.dma.snooped_writes += 1;
        let mut done = now;
        for seg in segs {
            let bytes = &data[seg.range.clone()];
            done = done.max(self.dma_write_line(now, seg.line, seg.offset, bytes)?);
        }
        Ok(done)
    }

    fn dma_write_line(
        &mut self,
        now: Tick,
        line: LineAddr,
        offset: usize,
        bytes: &[u8],
    ) -> Result<Tick, CacheError> {
        let mut txn = Txn::new(now);
        let holders = self.sharers(line);
        for c in cores_in(holders) {
            self.stats.snoops.dma += 1;
            self.step(&mut txn, c, line, Event::DmaInv)?;
        }
        let lookup = match holders {
            0 => self.llc_lookup_done(now),
            _ => self.snoop_done(now),
        };
        let pa = PhysAddr(line.base().raw() + offset as u64);
        let llc = self.llc.peek(key(line)).map(|e| (e.dirty, e.data));
        let dirty_base = match (txn.fwd.take(), llc) {
            (Some((_, data)), _) | (None, Some((true, data))) => Some(data),
            _ => None,
        };
        let into = if self.config.llc.ddio_ways > 0 {
            let mut line_data = match (dirty_base, llc) {
                (Some(d), _) | (None, Some((_, d))) => d,
                (None, None) if bytes.len() == LINE_BYTES => [0; LINE_BYTES],
                (None, None) => {
                    let mut d = [0; LINE_BYTES];
                    txn.finish_by(self.dram.read(lookup, line.base(), &mut d));
                    d
                }
            };
            line_data[offset..offset + bytes.len()].copy_from_slice(bytes);
            let ways = match llc {
                Some(_) => {
                    self.stats.dma.ddio_updates += 1;
                    self.stats.llc.hits += 1;
                    WayMask::ALL
                }
                None => {
                    self.stats.dma.ddio_allocations += 1;
                    self.stats.llc.misses += 1;
                    WayMask::first(self.config.llc.ddio_ways)
                }
            };
            self.llc_insert(&mut txn, line, line_data, true, ways)?;
            txn.finish_by(lookup);
            DmaTarget::Llc
        } else {
            // The LLC copy goes; its dirty data, or a dirty owner's, is merged and written.
            self.llc.invalidate(key(line));
            let done = match dirty_base {
                Some(old) if bytes.len() < LINE_BYTES => {
                    let mut merged = old;
                    merged[offset..offset + bytes.len()].copy_from_slice(bytes);
                    let cause = WriteBackCause::SnoopedDmaMerge;
                    let kind = EffectKind::WriteBack { cause };
                    self.emit(now, line.base(), &old, kind);
                    self.stats.writebacks_to_dram += 1;
                    self.dram.write(lookup, line.base(), &merged)
                }
                _ => self.dram.write(lookup, pa, bytes),
            };
            txn.finish_by(done);
            DmaTarget::Dram
        };
        let kind = EffectKind::DmaWrite {
            snooped: true,
            into,
        };
        self.emit(now, pa, bytes, kind);
        Ok(txn.done)
    }

    /// A device reads `buf.len()` bytes at `pa`, offered at `now`; returns when the data is
    /// available.
    ///
    /// * Snooped: a lone holder is snooped and supplies its data if dirty (keeping its
    ///   state, like Intel's `SnpCur`: *assumption*); otherwise the LLC, else DRAM.
    /// * Not snooped: DRAM only, whatever the caches hold.
    pub fn dma_read(
        &mut self,
        now: Tick,
        pa: PhysAddr,
        buf: &mut [u8],
        snooped: bool,
    ) -> Result<Tick, CacheError> {
        self.advance(now)?;
        let segs = segments(pa, buf.len())?;
        if !snooped {
            self.stats.dma.no_snoop_reads += 1;
            let done = self.dram.read(now, pa, buf);
            let kind = EffectKind::DmaRead {
                snooped: false,
                from: Source::Dram,
            };
            self.emit(now, pa, buf, kind);
            return Ok(done);
        }
        self.stats.dma.snooped_reads += 1;
        let mut done = now;
        for seg in segs {
            let mut txn = Txn::new(now);
            let holders = self.sharers(seg.line);
            if holders.count_ones() == 1 {
                self.stats.snoops.dma += 1;
                let o = holders.trailing_zeros() as usize;
                self.step(&mut txn, o, seg.line, Event::DmaRead)?;
                txn.finish_by(self.snoop_done(now));
            }
            let (data, from) = match txn.fwd.take() {
                Some((o, data)) => (data, Source::Core(super::CoreId(o as u16))),
                None => self.dma_fetch(&mut txn, seg.line),
            };
            let n = seg.range.len();
            buf[seg.range.clone()].copy_from_slice(&data[seg.offset..seg.offset + n]);
            let at = PhysAddr(seg.line.base().raw() + seg.offset as u64);
            let kind = EffectKind::DmaRead {
                snooped: true,
                from,
            };
            self.emit(now, at, &buf[seg.range], kind);
            done = done.max(txn.done);
        }
        Ok(done)
    }

    /// A snooped read's bytes from the LLC, else DRAM (a device read does not allocate).
    fn dma_fetch(&mut self, txn: &mut Txn<'_>, line: LineAddr) -> ([u8; LINE_BYTES], Source) {
        let lookup = self.llc_lookup_done(txn.now);
        if let Some(e) = self.llc.lookup(key(line)) {
            let data = e.data;
            self.stats.llc.hits += 1;
            txn.finish_by(lookup);
            return (data, Source::Llc);
        }
        self.stats.llc.misses += 1;
        let mut data = [0; LINE_BYTES];
        txn.finish_by(self.dram.read(lookup, line.base(), &mut data));
        (data, Source::Dram)
    }
}
