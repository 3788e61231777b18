//! Turning a scenario's workload into DMA descriptors, lazily.
//!
//! A stream of a million transfers is never materialised: each device has a feed that
//! produces its next descriptor when the engine tops up the device's queue. Write data is
//! pseudo-random from the scenario seed (xoshiro256++), so it is real, distinct per buffer
//! and identical from run to run.

use crate::scenario::{DeviceOp, RequestAttrs, Scenario, StreamDirection, Workload};
use bytes::Bytes;
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
        base: u64,
        stride: u64,
        len: u32,
        attrs: RequestAttrs,
        /// Transfers in all (a mixed stream has two per buffer).
        total: u64,
    },
    Program(Vec<Step>),
    Idle,
}

/// One step of a device program.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Dma(Transfer),
    /// Wait for a doorbell write to this BAR offset.
    Doorbell(u64),
}

/// The descriptors one device will run, produced on demand.
#[derive(Debug, Clone)]
pub struct DeviceFeed {
    source: Source,
    /// Index of the next step (program) or transfer (stream).
    next: u64,
    /// Descriptors handed out, which is also the next descriptor's id.
    issued: u64,
    /// Doorbell writes received and not yet waited for, by BAR offset.
    doorbells: BTreeMap<u64, u64>,
    rng: Xoshiro256PlusPlus,
}

/// SplitMix-style constant to give each device its own data stream from one seed.
const DEVICE_SEED_STRIDE: u64 = 0x9e37_79b9_7f4a_7c15;

impl DeviceFeed {
    /// The feed of the device named `device` (index `index`) in `scenario`.
    pub fn new(scenario: &Scenario, device: &str, index: usize) -> DeviceFeed {
        let source = match &scenario.workload {
            Workload::Stream(s) if s.device == device => {
                let passes = if s.direction == StreamDirection::Mixed {
                    2
                } else {
                    1
                };
                Source::Stream {
                    direction: s.direction,
                    base: s.base.0,
                    stride: s.stride_bytes,
                    // The scenario bounds transfers to 64 MiB.
                    len: u32::try_from(s.transfer_bytes).unwrap_or(u32::MAX),
                    attrs: s.attrs.clone(),
                    total: s.count * passes,
                }
            }
            Workload::Program(p) => match p.devices.get(device) {
                Some(ops) => Source::Program(ops.iter().map(step).collect()),
                None => Source::Idle,
            },
            Workload::Stream(_) => Source::Idle,
        };
        DeviceFeed {
            source,
            next: 0,
            issued: 0,
            doorbells: BTreeMap::new(),
            rng: Xoshiro256PlusPlus::seed_from_u64(
                scenario
                    .seed
                    .wrapping_add(DEVICE_SEED_STRIDE.wrapping_mul(index as u64 + 1)),
            ),
        }
    }

    fn transfer_at(&self, n: u64) -> Option<Transfer> {
        match &self.source {
            Source::Stream {
                direction,
                base,
                stride,
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
                    address: base.wrapping_add(buffer.wrapping_mul(*stride)),
                    len: *len,
                    attrs: attrs.clone(),
                })
            }
            Source::Program(steps) => match usize::try_from(n).ok().and_then(|i| steps.get(i)) {
                Some(Step::Dma(t)) => Some(t.clone()),
                _ => None,
            },
            Source::Idle => None,
        }
    }

    /// Every step has been taken: nothing more will come, doorbell or not.
    pub fn is_exhausted(&self) -> bool {
        match &self.source {
            Source::Program(steps) => self.next as usize >= steps.len(),
            _ => self.transfer_at(self.next).is_none(),
        }
    }

    /// A CPU wrote to the register at `offset` of the device's BAR 0.
    pub fn doorbell(&mut self, offset: u64) {
        *self.doorbells.entry(offset).or_default() += 1;
    }

    /// Takes the doorbell steps whose doorbell has rung.
    fn pass_doorbells(&mut self) {
        while let Source::Program(steps) = &self.source {
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
        self.pass_doorbells();
        let t = self.transfer_at(self.next)?;
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
