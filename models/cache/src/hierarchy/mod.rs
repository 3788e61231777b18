//! The data-carrying MESI hierarchy: per-core private caches, a shared LLC with a directory,
//! DRAM behind it, CPU loads and stores, snooped and no-snoop DMA, flushes and fences.
//!
//! Per core, the outermost private level (L2 if configured, else L1) holds each line's
//! [`LineState`] and bytes; an L1 in front of an L2 is a tag array (L1 ⊆ L2) that decides
//! hit latency only. The LLC holds bytes and a dirty bit. The directory (an exact snoop
//! filter) lists which cores hold each line, whatever the LLC's inclusion policy.
//!
//! Every call performs its data effects at its `now`, in call order, and returns the tick
//! at which the caller may consider it complete. The exception is the weakly ordered
//! clflushopt / clwb: they are *pending* until their own completion tick or until their
//! core's next fence, whichever comes first (see [`Hierarchy::sfence`]).

mod actions;
mod check;
mod dma;
mod flush;
mod home;

use crate::config::{HierarchyConfig, LevelConfig, LINE_BYTES};
use crate::effect::{Effect, EffectKind, FlushKind, NoObserver, Observer, Source, WriteBackCause};
use crate::error::CacheError;
use crate::mesi::{Event, LineState};
use crate::stats::HierarchyStats;
use crate::{ConfigError, Dram};
use model_core::{ClockDomain, Cycles, LineAddr, PhysAddr, SetAssoc, Span, Tick};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// A core, numbered from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CoreId(pub u16);

impl fmt::Display for CoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "core {}", self.0)
    }
}

/// The bytes of one line.
pub(crate) type Line = [u8; LINE_BYTES];

/// A line in a core's outermost private level.
#[derive(Debug, Clone)]
pub(crate) struct PrivLine {
    pub(crate) state: LineState,
    pub(crate) data: Line,
}

/// A line in the LLC.
#[derive(Debug, Clone)]
pub(crate) struct LlcLine {
    pub(crate) dirty: bool,
    pub(crate) data: Line,
}

/// One core's private caches.
#[derive(Debug, Clone)]
pub(crate) struct Core {
    /// Outermost private level: state and bytes.
    pub(crate) outer: SetAssoc<PrivLine>,
    /// L1 tags in front of an L2.
    pub(crate) inner: Option<SetAssoc<()>>,
    /// When the write-backs of this core's already performed weak flushes complete.
    pub(crate) flushes_done: Tick,
}

/// A clflushopt / clwb not performed yet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingFlush {
    pub(crate) core: usize,
    pub(crate) line: LineAddr,
    pub(crate) kind: FlushKind,
}

/// What a private cache asked the home for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    GetS,
    GetM,
    Upgrade,
}

/// The working state of one line's transaction.
#[derive(Debug)]
pub(crate) struct Txn<'a> {
    /// When the transaction is performed.
    pub(crate) now: Tick,
    /// When a flush's write-back may be issued to DRAM.
    pub(crate) wb_at: Tick,
    /// A store's bytes and their offset in the line.
    pub(crate) store: (usize, &'a [u8]),
    /// Dirty data handed over by a snooped core.
    pub(crate) fwd: Option<(usize, Line)>,
    /// Response data for the requester.
    pub(crate) fill: Line,
    /// A request the private cache issued, for the home to serve.
    pub(crate) request: Option<Request>,
    /// Where the requester's data came from.
    pub(crate) source: Source,
    /// Completion on the requester's critical path.
    pub(crate) done: Tick,
    /// Why a `WriteBackToMemory` happens.
    pub(crate) wb_cause: WriteBackCause,
}

impl<'a> Txn<'a> {
    pub(crate) fn new(now: Tick) -> Txn<'a> {
        Txn {
            now,
            wb_at: now,
            store: (0, &[]),
            fwd: None,
            fill: [0; LINE_BYTES],
            request: None,
            source: Source::Dram,
            done: now,
            wb_cause: WriteBackCause::LlcEviction,
        }
    }

    pub(crate) fn finish_by(&mut self, t: Tick) {
        self.done = self.done.max(t);
    }
}

/// The cache hierarchy. `O` receives every performed [`Effect`].
#[derive(Debug)]
pub struct Hierarchy<O: Observer = NoObserver> {
    pub(crate) config: HierarchyConfig,
    pub(crate) clock: ClockDomain,
    pub(crate) cores: Vec<Core>,
    pub(crate) llc: SetAssoc<LlcLine>,
    /// Line number → bit mask of the cores holding it.
    pub(crate) directory: BTreeMap<u64, u64>,
    pub(crate) dram: Dram,
    /// Weak flushes by (completion tick, issue sequence).
    pub(crate) pending: BTreeMap<(Tick, u64), PendingFlush>,
    pub(crate) seq: u64,
    pub(crate) last_now: Tick,
    pub(crate) stats: HierarchyStats,
    pub(crate) observer: O,
}

/// The key of a line in every array and in the directory: its line number.
pub(crate) fn key(line: LineAddr) -> u64 {
    line.base().raw() / LINE_BYTES as u64
}

/// The line with line number `key`.
pub(crate) fn line_of(key: u64) -> LineAddr {
    LineAddr::containing(PhysAddr(key * LINE_BYTES as u64), LINE_BYTES as u64)
}

/// The cores in a bit mask, lowest first.
pub(crate) fn cores_in(mask: u64) -> impl Iterator<Item = usize> {
    (0..64).filter(move |c| mask >> c & 1 == 1)
}

/// One line's share of an access: the line, the offset in it, the range in the caller's
/// buffer.
pub(crate) struct Segment {
    pub(crate) line: LineAddr,
    pub(crate) offset: usize,
    pub(crate) range: std::ops::Range<usize>,
}

/// Cuts `len` bytes at `pa` at line boundaries.
pub(crate) fn segments(pa: PhysAddr, len: usize) -> Result<Vec<Segment>, CacheError> {
    if len > 0 && pa.checked_add(len as u64 - 1).is_none() {
        return Err(CacheError::AddressOverflow { pa, len });
    }
    let mut out = Vec::new();
    let mut done = 0;
    while done < len {
        let addr = PhysAddr(pa.raw() + done as u64);
        let offset = addr.offset_in(LINE_BYTES as u64) as usize;
        let n = (LINE_BYTES - offset).min(len - done);
        out.push(Segment {
            line: LineAddr::containing(addr, LINE_BYTES as u64),
            offset,
            range: done..done + n,
        });
        done += n;
    }
    Ok(out)
}

/// An empty array for one level (the geometry was checked by `HierarchyConfig::geometry`).
fn array<V>(
    sets: usize,
    level: &LevelConfig,
    name: &'static str,
) -> Result<SetAssoc<V>, ConfigError> {
    SetAssoc::new(sets, level.ways, level.replacement).map_err(|_| ConfigError::Geometry {
        level: name,
        size_kib: level.size_kib,
        ways: level.ways,
    })
}

impl Hierarchy<NoObserver> {
    /// An empty hierarchy over `dram`, reporting effects to nobody.
    pub fn new(config: HierarchyConfig, dram: Dram) -> Result<Hierarchy, ConfigError> {
        Hierarchy::with_observer(config, dram, NoObserver)
    }
}

impl<O: Observer> Hierarchy<O> {
    /// An empty hierarchy over `dram`, reporting every performed effect to `observer`.
    pub fn with_observer(
        config: HierarchyConfig,
        dram: Dram,
        observer: O,
    ) -> Result<Hierarchy<O>, ConfigError> {
        let g = config.geometry()?;
        let mut cores = Vec::new();
        for _ in 0..config.cores {
            let (outer, inner) = match (&config.l2, g.l2_sets) {
                (Some(l2), Some(sets)) => (
                    array(sets, l2, "l2")?,
                    Some(array(g.l1_sets, &config.l1, "l1")?),
                ),
                _ => (array(g.l1_sets, &config.l1, "l1")?, None),
            };
            cores.push(Core {
                outer,
                inner,
                flushes_done: Tick::ZERO,
            });
        }
        Ok(Hierarchy {
            llc: array(g.llc_sets, &config.llc.level, "llc")?,
            clock: g.clock,
            config,
            cores,
            directory: BTreeMap::new(),
            dram,
            pending: BTreeMap::new(),
            seq: 0,
            last_now: Tick::ZERO,
            stats: HierarchyStats::default(),
            observer,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &HierarchyConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> HierarchyStats {
        self.stats
    }

    /// The DRAM model behind the hierarchy (its counters and, untimed, its bytes).
    pub fn dram(&self) -> &Dram {
        &self.dram
    }

    /// The observer.
    pub fn observer(&self) -> &O {
        &self.observer
    }

    /// The observer, mutable (e.g. to drain an [`crate::EffectLog`]).
    pub fn observer_mut(&mut self) -> &mut O {
        &mut self.observer
    }

    /// `cycles` of the core clock.
    pub(crate) fn cycles(&self, cycles: Cycles) -> Span {
        self.clock.span(cycles)
    }

    pub(crate) fn core_index(&self, core: CoreId) -> Result<usize, CacheError> {
        match usize::from(core.0) < self.cores.len() {
            true => Ok(usize::from(core.0)),
            false => Err(CacheError::UnknownCore {
                core,
                cores: self.config.cores,
            }),
        }
    }

    /// The earliest tick at which pending weak flushes must be performed, if any. The engine
    /// should call [`advance`](Self::advance) then, so that their effects are observed on
    /// time; any other call at or after that tick performs them too.
    pub fn next_wakeup(&self) -> Option<Tick> {
        self.pending.keys().next().map(|(t, _)| *t)
    }

    /// Performs every pending weak flush due at or before `now`, in due order. Every other
    /// call does this first, so calling it is needed only to observe effects on time.
    pub fn advance(&mut self, now: Tick) -> Result<(), CacheError> {
        if now < self.last_now {
            return Err(CacheError::TimeWentBackwards {
                now,
                last: self.last_now,
            });
        }
        self.last_now = now;
        while let Some(entry) = self.pending.first_entry() {
            let due = entry.key().0;
            if due > now {
                break;
            }
            let p = entry.remove();
            let done = self.flush_line(due, due, p.core, p.line, p.kind)?;
            let core = &mut self.cores[p.core];
            core.flushes_done = core.flushes_done.max(done);
            self.stats.flushes.weak_performed_on_time += 1;
        }
        Ok(())
    }

    /// The state of the line holding `pa` in `core`'s private caches (untimed, for tests
    /// and checkers).
    pub fn line_state(&self, core: CoreId, pa: PhysAddr) -> Result<LineState, CacheError> {
        let c = self.core_index(core)?;
        Ok(self.state(c, LineAddr::containing(pa, LINE_BYTES as u64)))
    }

    pub(crate) fn state(&self, core: usize, line: LineAddr) -> LineState {
        self.cores[core]
            .outer
            .peek(key(line))
            .map_or(LineState::I, |b| b.state)
    }

    pub(crate) fn sharers(&self, line: LineAddr) -> u64 {
        self.directory.get(&key(line)).copied().unwrap_or(0)
    }

    pub(crate) fn emit(&mut self, at: Tick, pa: PhysAddr, data: &[u8], kind: EffectKind) {
        self.observer.on_effect(&Effect { at, pa, data, kind });
    }

    /// Loads `buf.len()` (1 ..= 64) bytes at `pa` (any alignment; may cross a line) for
    /// `core`; returns when the data is available. Lines are fetched in parallel.
    pub fn load(
        &mut self,
        now: Tick,
        core: CoreId,
        pa: PhysAddr,
        buf: &mut [u8],
    ) -> Result<Tick, CacheError> {
        let c = self.cpu_access(now, core, buf.len())?;
        self.stats.loads += 1;
        let mut done = now;
        for seg in segments(pa, buf.len())? {
            let mut txn = Txn::new(now);
            self.access_line(&mut txn, c, seg.line, Event::Load)?;
            let block = self.cores[c].outer.peek(key(seg.line)).expect("loaded");
            let n = seg.range.len();
            buf[seg.range.clone()].copy_from_slice(&block.data[seg.offset..seg.offset + n]);
            let at = PhysAddr(seg.line.base().raw() + seg.offset as u64);
            let kind = EffectKind::CpuLoad {
                core,
                from: txn.source,
            };
            self.emit(now, at, &buf[seg.range], kind);
            done = done.max(txn.done);
        }
        Ok(done)
    }

    /// Stores `data` (1 ..= 64 bytes, any alignment; may cross a line) at `pa` for `core`;
    /// returns when the store is performed in the core's cache (ownership obtained).
    pub fn store(
        &mut self,
        now: Tick,
        core: CoreId,
        pa: PhysAddr,
        data: &[u8],
    ) -> Result<Tick, CacheError> {
        let c = self.cpu_access(now, core, data.len())?;
        self.stats.stores += 1;
        let mut done = now;
        for seg in segments(pa, data.len())? {
            let mut txn = Txn::new(now);
            txn.store = (seg.offset, &data[seg.range.clone()]);
            self.access_line(&mut txn, c, seg.line, Event::Store)?;
            let at = PhysAddr(seg.line.base().raw() + seg.offset as u64);
            self.emit(now, at, &data[seg.range], EffectKind::CpuStore { core });
            done = done.max(txn.done);
        }
        Ok(done)
    }

    fn cpu_access(&mut self, now: Tick, core: CoreId, len: usize) -> Result<usize, CacheError> {
        let c = self.core_index(core)?;
        if !(1..=LINE_BYTES).contains(&len) {
            return Err(CacheError::BadLength { len });
        }
        self.advance(now)?;
        Ok(c)
    }

    /// Runs a core request through the table, then the home's side of it, if any.
    fn access_line(
        &mut self,
        txn: &mut Txn<'_>,
        core: usize,
        line: LineAddr,
        event: Event,
    ) -> Result<(), CacheError> {
        self.step(txn, core, line, event)?;
        match txn.request.take() {
            Some(Request::GetS) => self.home_get_s(txn, core, line),
            Some(Request::GetM) => self.home_get_m(txn, core, line),
            Some(Request::Upgrade) => self.home_upgrade(txn, core, line),
            None => Ok(()),
        }
    }
}
