//! Turning a scenario's workload into DMA descriptors, lazily.
//!
//! A stream of a million transfers is never materialised: each device has a feed that
//! produces its next descriptor when the engine tops up the device's queue. A device in
//! several entries of an `all` runs them one after another: its feed holds one source per
//! entry (a stream, or program steps — templates are expanded into steps by
//! [`crate::scenario::templates`]) and moves to the next when one is exhausted. Write data
//! is pseudo-random from the scenario seed (xoshiro256++), so it is real, distinct per
//! buffer and identical from run to run.
//!
//! The feed also counts the device's completed transfers, which CPU `wait` operations
//! wait for.

use crate::scenario::templates::{self, Segment};
use crate::scenario::{DeviceOp, RequestAttrs, Scenario, StreamDirection, StreamSpec};
use bytes::Bytes;
use model_core::Tick;
use pcie::{Descriptor, DmaDirection};
use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::collections::BTreeMap;

/// One DMA transfer before it gets data and an id.
#[derive(Debug, Clone, PartialEq)]
struct Transfer {
    direction: DmaDirection,
    address: u64,
    len: u32,
    attrs: RequestAttrs,
}

#[derive(Debug, Clone)]
enum Source {
    Stream {
        direction: StreamDirection,
        spec: StreamSpec,
        len: u32,
        attrs: RequestAttrs,
        /// Transfers in all (a mixed stream has two per buffer).
        total: u64,
    },
    Program(Vec<Step>),
}

impl Source {
    fn of(segment: Segment) -> Source {
        match segment {
            Segment::Stream(s) => {
                let passes = if s.direction == StreamDirection::Mixed {
                    2
                } else {
                    1
                };
                Source::Stream {
                    direction: s.direction,
                    // The scenario bounds transfers to 64 MiB.
                    len: u32::try_from(s.transfer_bytes).unwrap_or(u32::MAX),
                    attrs: s.attrs.clone(),
                    total: s.count * passes,
                    spec: s,
                }
            }
            Segment::Program(ops) => Source::Program(ops.iter().map(step).collect()),
        }
    }

    /// Steps (program) or transfers (stream) in all.
    fn len(&self) -> u64 {
        match self {
            Source::Stream { total, .. } => *total,
            Source::Program(steps) => steps.len() as u64,
        }
    }
}

/// One step of a device program.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Dma(Transfer),
    /// Wait for a doorbell write to this BAR offset.
    Doorbell(u64),
}

/// Transfers a device has completed, as of any tick.
#[derive(Debug, Clone, Default)]
struct Completions {
    /// Completed at or before the last tick they were looked at.
    settled: u64,
    /// Completing later (a write is performed a little after it is handled), by tick.
    pending: BTreeMap<Tick, u64>,
}

impl Completions {
    fn settle(&mut self, now: Tick) {
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() > now {
                return;
            }
            self.settled += entry.remove();
        }
    }

    /// The earliest tick by which `target` transfers are complete, if as many are known.
    fn reached_at(&self, target: u64) -> Option<Tick> {
        if self.settled >= target {
            return Some(Tick::ZERO);
        }
        let mut n = self.settled;
        self.pending.iter().find_map(|(&t, &k)| {
            n += k;
            (n >= target).then_some(t)
        })
    }
}

/// The descriptors one device will run, produced on demand.
#[derive(Debug, Clone)]
pub struct DeviceFeed {
    /// What the device runs, one after the other.
    sources: Vec<Source>,
    /// Index of the source being run.
    current: usize,
    /// Index of the next step (program) or transfer (stream) of the current source.
    next: u64,
    /// Descriptors handed out, which is also the next descriptor's id.
    issued: u64,
    /// Doorbell writes received and not yet waited for, by BAR offset.
    doorbells: BTreeMap<u64, u64>,
    rng: Xoshiro256PlusPlus,
    completions: Completions,
}

/// SplitMix-style constant to give each device its own data stream from one seed.
const DEVICE_SEED_STRIDE: u64 = 0x9e37_79b9_7f4a_7c15;

impl DeviceFeed {
    /// The feed of the device named `device` (index `index`) in `scenario`.
    pub fn new(scenario: &Scenario, device: &str, index: usize) -> DeviceFeed {
        DeviceFeed {
            sources: templates::device_plan(scenario, device)
                .into_iter()
                .map(Source::of)
                .collect(),
            current: 0,
            next: 0,
            issued: 0,
            doorbells: BTreeMap::new(),
            rng: Xoshiro256PlusPlus::seed_from_u64(
                scenario
                    .seed
                    .wrapping_add(DEVICE_SEED_STRIDE.wrapping_mul(index as u64 + 1)),
            ),
            completions: Completions::default(),
        }
    }

    /// A transfer of this device completes at `at` (handled at `now`, `at >= now`).
    pub fn transfer_done(&mut self, now: Tick, at: Tick) {
        self.completions.settle(now);
        *self.completions.pending.entry(at).or_default() += 1;
    }

    /// The earliest tick by which the device has completed `target` transfers since the
    /// run started, if that many have been handled.
    pub fn transfers_reached_at(&self, target: u64) -> Option<Tick> {
        self.completions.reached_at(target)
    }

    /// Transfer `n` of the current source, if it is one.
    fn transfer_at(&self, n: u64) -> Option<Transfer> {
        match self.sources.get(self.current)? {
            Source::Stream {
                direction,
                spec,
                len,
                attrs,
                total,
            } => {
                if n >= *total {
                    return None;
                }
                let (buffer, dir) = match direction {
                    StreamDirection::Write => (n, DmaDirection::Write),
                    StreamDirection::Read => (n, DmaDirection::Read),
                    StreamDirection::Mixed if n.is_multiple_of(2) => (n / 2, DmaDirection::Write),
                    StreamDirection::Mixed => (n / 2, DmaDirection::Read),
                };
                Some(Transfer {
                    direction: dir,
                    address: spec.address(buffer),
                    len: *len,
                    attrs: attrs.clone(),
                })
            }
            Source::Program(steps) => match usize::try_from(n).ok().and_then(|i| steps.get(i)) {
                Some(Step::Dma(t)) => Some(t.clone()),
                _ => None,
            },
        }
    }

    /// Every step has been taken: nothing more will come, doorbell or not.
    pub fn is_exhausted(&self) -> bool {
        self.sources
            .iter()
            .enumerate()
            .skip(self.current)
            .all(|(i, s)| s.len() <= if i == self.current { self.next } else { 0 })
    }

    /// A CPU wrote to the register at `offset` of the device's BAR 0.
    pub fn doorbell(&mut self, offset: u64) {
        *self.doorbells.entry(offset).or_default() += 1;
    }

    /// Takes the doorbell steps whose doorbell has rung.
    fn pass_doorbells(&mut self) {
        while let Some(Source::Program(steps)) = self.sources.get(self.current) {
            let Some(Step::Doorbell(offset)) = steps.get(self.next as usize) else {
                return;
            };
            match self.doorbells.get_mut(offset) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    self.next += 1;
                }
                _ => return,
            }
        }
    }

    /// The next descriptor; `None` when the work is all handed out or waits for a doorbell.
    pub fn next_descriptor(&mut self) -> Option<Descriptor> {
        let t = loop {
            self.pass_doorbells();
            if let Some(t) = self.transfer_at(self.next) {
                break t;
            }
            // The current source is done (the next one starts), or waits for a doorbell.
            let source = self.sources.get(self.current)?;
            if self.next < source.len() {
                return None;
            }
            self.current += 1;
            self.next = 0;
        };
        let id = self.issued;
        self.issued += 1;
        self.next += 1;
        let data = match t.direction {
            DmaDirection::Write => {
                let mut buf = vec![0u8; t.len as usize];
                self.rng.fill_bytes(&mut buf);
                Bytes::from(buf)
            }
            DmaDirection::Read => Bytes::new(),
        };
        Some(Descriptor {
            id,
            direction: t.direction,
            address: t.address,
            len: t.len,
            attr: t.attrs.attr(),
            tc: t.attrs.tc.0 as u8,
            at: t.attrs.address_type(),
            pasid: t.attrs.prefix(),
            data,
        })
    }
}

fn step(op: &DeviceOp) -> Step {
    let (direction, d) = match op {
        DeviceOp::DmaWrite(d) => (DmaDirection::Write, d),
        DeviceOp::DmaRead(d) => (DmaDirection::Read, d),
        DeviceOp::WaitDoorbell(w) => return Step::Doorbell(w.offset.0),
    };
    Step::Dma(Transfer {
        direction,
        address: d.address.0,
        // The scenario bounds transfers to 64 MiB.
        len: u32::try_from(d.bytes.0).unwrap_or(u32::MAX),
        attrs: d.attrs.clone(),
    })
}
