//! The explorer's view of a state: the oracle that follows the latest value of each line,
//! the canonical key, the data-value invariant on that key, a one-line summary for traces,
//! and the deliberate flaws a checker self-test injects.

use super::setup::MAX_LINES;
use super::{line_name, Flaw, Hazard, Op};
use crate::config::LINE_BYTES;
use crate::effect::{Effect, EffectKind, FlushKind, Observer};
use crate::hierarchy::{key, Hierarchy, PrivLine};
use crate::mesi::LineState;
use model_core::{LineAddr, PhysAddr, Tick, WayMask};
use std::fmt::Write;

/// Added to a line number to get a line of the same set in every array (sets ≤ 2^20) that
/// is never explored: asking where it would go tells the replacement state.
const PROBE: u64 = 1 << 20;

/// Follows the latest value of each explored line and classifies what the hierarchy
/// reports during one step.
#[derive(Debug, Clone)]
pub(crate) struct Oracle {
    bases: [u64; MAX_LINES],
    pub(crate) lines: usize,
    /// The latest version written to each line (0: never written, as DRAM starts).
    pub(crate) latest: [u8; MAX_LINES],
    /// Whether that latest write was a device's.
    pub(crate) dma_last: [bool; MAX_LINES],
    /// Hazard bits seen since [`Oracle::clear`].
    pub(crate) found: u8,
}

impl Oracle {
    pub(crate) fn new(bases: &[u64]) -> Oracle {
        let mut b = [0; MAX_LINES];
        b[..bases.len()].copy_from_slice(bases);
        Oracle {
            bases: b,
            lines: bases.len(),
            latest: [0; MAX_LINES],
            dma_last: [false; MAX_LINES],
            found: 0,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.found = 0;
    }

    pub(crate) fn base(&self, line: u8) -> PhysAddr {
        PhysAddr(self.bases[usize::from(line)])
    }

    pub(crate) fn line_addr(&self, line: u8) -> LineAddr {
        LineAddr::containing(self.base(line), LINE_BYTES as u64)
    }

    /// The version a write to `line` puts now (never equal to an existing copy).
    pub(crate) fn next_version(&self, line: u8) -> u8 {
        let v = self.latest[usize::from(line)];
        v.checked_add(1)
            .expect("depth bound keeps versions below 256")
    }

    fn index(&self, pa: PhysAddr) -> Option<usize> {
        (0..self.lines).find(|&i| (self.bases[i]..self.bases[i] + 64).contains(&pa.raw()))
    }

    fn index_of_key(&self, k: u64) -> Option<u8> {
        (0..self.lines as u8).find(|&i| key(self.line_addr(i)) == k)
    }
}

impl Observer for Oracle {
    fn on_effect(&mut self, e: &Effect<'_>) {
        let Some(i) = self.index(e.pa) else { return };
        // Every explored access starts at the line's first byte, which holds the version.
        let first = e.pa.raw() == self.bases[i];
        let stale = first && e.data.first().is_some_and(|&v| v != self.latest[i]);
        match e.kind {
            EffectKind::CpuStore { .. } | EffectKind::DmaWrite { .. } if first => {
                self.latest[i] = e.data[0];
                self.dma_last[i] = matches!(e.kind, EffectKind::DmaWrite { .. });
            }
            EffectKind::CpuLoad { .. } if stale => self.found |= Hazard::StaleCpuRead.bit(),
            EffectKind::DmaRead { .. } if stale => self.found |= Hazard::StaleDeviceRead.bit(),
            EffectKind::WriteBack { .. } if stale && self.dma_last[i] => {
                self.found |= Hazard::LostDmaWrite.bit();
            }
            _ => {}
        }
    }
}

fn victim_code(o: &Oracle, victim: Option<u64>) -> u8 {
    match victim {
        None => 0xff,
        Some(k) => o.index_of_key(k).unwrap_or(0xfe),
    }
}

fn kind_code(kind: FlushKind) -> u8 {
    kind as u8
}

/// The canonical key of a state (see the module doc for what it keeps and why).
pub(crate) fn canonical_key(h: &Hierarchy<Oracle>, shape: usize, tainted: bool) -> Box<[u8]> {
    let o = h.observer();
    let ddio = WayMask::first(h.config.llc.ddio_ways);
    let mut k = Vec::with_capacity(48);
    k.extend([shape as u8, u8::from(tainted)]);
    for i in 0..o.lines {
        let line = o.line_addr(i as u8);
        let n = key(line);
        let v = o.latest[i];
        k.extend([h.sharers(line) as u8, u8::from(o.dma_last[i])]);
        for core in &h.cores {
            let copy = match (core.outer.peek(n), core.outer.way_of(n)) {
                (Some(b), Some(w)) => {
                    b.state as u8 | u8::from(b.data[0] == v) << 3 | (w as u8) << 4
                }
                _ => 0xff,
            };
            let victim = core.outer.victim(n + PROBE).map(|(vk, _)| vk);
            k.extend([copy, victim_code(o, victim)]);
        }
        let llc = match (h.llc.peek(n), h.llc.way_of(n)) {
            (Some(e), Some(w)) => {
                u8::from(e.dirty) | u8::from(e.data[0] == v) << 1 | (w as u8) << 2
            }
            _ => 0xff,
        };
        let victim = h.llc.victim(n + PROBE).map(|(vk, _)| vk);
        let ddio_victim = h.llc.victim_within(n + PROBE, ddio).map(|(vk, _)| vk);
        k.extend([
            llc,
            victim_code(o, victim),
            victim_code(o, ddio_victim),
            u8::from(dram_version(h, line) == v),
        ]);
    }
    k.push(h.pending.len() as u8);
    for p in h.pending.values() {
        let line = o.index_of_key(key(p.line)).unwrap_or(0xfe);
        k.extend([p.core as u8, line, kind_code(p.kind)]);
    }
    k.into_boxed_slice()
}

fn dram_version(h: &Hierarchy<Oracle>, line: LineAddr) -> u8 {
    let mut b = [0; 1];
    h.dram.contents().read(line.base(), &mut b);
    b[0]
}

/// The data-value invariant of snooped-only executions, on what the key keeps: an M copy
/// holds the latest value; without one, every private copy and the LLC copy do, and so
/// does DRAM unless the LLC holds the line dirty.
pub(crate) fn check_values(h: &Hierarchy<Oracle>) -> Result<(), String> {
    let o = h.observer();
    for i in 0..o.lines as u8 {
        let line = o.line_addr(i);
        let (n, v) = (key(line), o.latest[usize::from(i)]);
        let name = line_name(i);
        let copies = h.cores.iter().enumerate();
        let held: Vec<(usize, &PrivLine)> = copies
            .filter_map(|(c, core)| core.outer.peek(n).map(|b| (c, b)))
            .collect();
        for (c, b) in &held {
            if b.data[0] != v {
                return Err(format!(
                    "{name}: core {c}'s {} copy holds v{} but the latest write was v{v}",
                    b.state, b.data[0]
                ));
            }
        }
        if held.iter().any(|(_, b)| b.state == LineState::M) {
            continue;
        }
        let llc = h.llc.peek(n);
        if let Some(e) = llc.filter(|e| e.data[0] != v) {
            let d = if e.dirty { "dirty" } else { "clean" };
            return Err(format!(
                "{name}: the {d} LLC copy holds v{} but the latest write was v{v}",
                e.data[0]
            ));
        }
        let dram = dram_version(h, line);
        if !llc.is_some_and(|e| e.dirty) && dram != v {
            return Err(format!(
                "{name}: no dirty copy is cached, yet DRAM holds v{dram}, the latest write v{v}"
            ));
        }
    }
    Ok(())
}

/// Where every copy of every line is, with its version ("stale" when not the latest).
pub(crate) fn summary(h: &Hierarchy<Oracle>) -> String {
    let o = h.observer();
    let mut s = String::new();
    for i in 0..o.lines as u8 {
        let line = o.line_addr(i);
        let (n, v) = (key(line), o.latest[usize::from(i)]);
        let ver = |x: u8| format!("v{x}{}", if x == v { "" } else { " stale" });
        if i > 0 {
            s += " | ";
        }
        let _ = write!(s, "{}=v{v}:", line_name(i));
        for (c, core) in h.cores.iter().enumerate() {
            match core.outer.peek(n) {
                Some(b) => _ = write!(s, " c{c} {} {},", b.state, ver(b.data[0])),
                None => _ = write!(s, " c{c} I,"),
            }
        }
        match h.llc.peek(n) {
            Some(e) => {
                let d = if e.dirty { "dirty" } else { "clean" };
                _ = write!(s, " LLC {d} {},", ver(e.data[0]));
            }
            None => s += " LLC -,",
        }
        _ = write!(s, " DRAM {}", ver(dram_version(h, line)));
    }
    for p in h.pending.values() {
        let line = o.index_of_key(key(p.line)).map_or('?', line_name);
        _ = write!(s, " | pending c{} {:?} {line}", p.core, p.kind);
    }
    s
}

/// Breaks the protocol on purpose, after `op` took `before` to `after` (checker self-test).
pub(crate) fn inject(
    flaw: Flaw,
    before: &Hierarchy<Oracle>,
    after: &mut Hierarchy<Oracle>,
    op: Op,
    now: Tick,
) {
    match (flaw, op) {
        (Flaw::StoreKeepsSharer, Op::Store { core, line }) => {
            let o = 1 - usize::from(core.0);
            let n = key(after.observer().line_addr(line));
            let Some(old) = before.cores[o].outer.peek(n) else {
                return;
            };
            if after.cores[o].outer.contains(n) || after.cores[o].outer.victim(n).is_some() {
                return;
            }
            let copy = PrivLine {
                state: LineState::S,
                data: old.data,
            };
            after.cores[o].outer.insert(n, copy);
            *after.directory.entry(n).or_insert(0) |= 1 << o;
        }
        (Flaw::ClflushDropsWriteBack, Op::Clflush { line, .. }) => {
            let base = after.observer().base(line);
            let old = before.dram.contents().read_vec(base, LINE_BYTES);
            after.dram.write(now, base, &old);
        }
        _ => {}
    }
}

/// Runs one operation at `now`; stores and DMA writes put the line's next version.
pub(crate) fn apply(h: &mut Hierarchy<Oracle>, op: Op, now: Tick) -> Result<(), crate::CacheError> {
    let o = h.observer();
    let (base, version) = match op {
        Op::Load { line, .. }
        | Op::Store { line, .. }
        | Op::Clflush { line, .. }
        | Op::Clflushopt { line, .. }
        | Op::Clwb { line, .. }
        | Op::DmaWrite { line, .. }
        | Op::DmaRead { line, .. } => (o.base(line), o.next_version(line)),
        _ => (o.base(0), 0),
    };
    let mut buf = [0; 1];
    let mut whole = [0; crate::LINE_BYTES];
    whole[0] = version;
    match op {
        Op::Load { core, .. } => h.load(now, core, base, &mut buf).map(drop),
        Op::Store { core, .. } => h.store(now, core, base, &[version]).map(drop),
        Op::Clflush { core, .. } => h.clflush(now, core, base).map(drop),
        Op::Clflushopt { core, .. } => h.clflushopt(now, core, base).map(drop),
        Op::Clwb { core, .. } => h.clwb(now, core, base).map(drop),
        Op::Sfence { core } => h.sfence(now, core).map(drop),
        Op::Wbinvd { core } => h.wbinvd(now, core).map(drop),
        Op::Wbnoinvd { core } => h.wbnoinvd(now, core).map(drop),
        Op::DmaWrite {
            snooped, partial, ..
        } => {
            let data: &[u8] = if partial { &whole[..1] } else { &whole };
            h.dma_write(now, base, data, snooped).map(drop)
        }
        Op::DmaRead { snooped, .. } => h.dma_read(now, base, &mut buf, snooped).map(drop),
        Op::Advance => h.advance(now),
    }
}
