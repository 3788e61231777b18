//! Workload templates, expanded at load time into the program form they abbreviate.
//!
//! * `buffer_exchange`: a driver and its device passing a buffer back and forth, the way a
//!   NIC's receive and transmit rings do, with a chosen No-Snoop policy and a chosen CPU
//!   flush. It becomes ordinary program steps (loads, stores, flushes, doorbells, `wait`s,
//!   DMA), so it runs through exactly the machinery a hand-written program does, and
//!   [`expand`] shows what it became.
//! * `all`: several workloads at once. Entries that use the same device (or CPU) run one
//!   after another in list order — that device's stream feeds and program steps are
//!   concatenated — and the others run concurrently. Streams stay lazy: a stream entry is
//!   one [`Segment`], never a list of descriptors.
//!
//! `wait` counts are cumulative per device over the whole workload: a `buffer_exchange`
//! waits for its own transfers counting those of every earlier entry on its device. A
//! hand-written program's `wait` is taken literally (transfers since the run started).

use super::values::{Bounded, HexAddr};
use super::workload::{
    CpuOp, DeviceOp, DmaOp, DoorbellOp, Empty, MmioWriteOp, ProgramSpec, RangeOp, RequestAttrs,
    StreamDirection, StreamSpec, WaitOp, Workload, MAX_WORKLOAD_BYTES,
};
use super::{Scenario, Step, MAX_TRANSFER_BYTES};
use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// BAR 0 offset of the receive doorbell (device → CPU buffers).
pub const RX_DOORBELL: u64 = 0x0;
/// BAR 0 offset of the transmit doorbell (CPU → device buffers).
pub const TX_DOORBELL: u64 = 0x8;
/// Most iterations a `buffer_exchange` may run.
pub const MAX_ITERATIONS: u64 = 1_000_000;
/// Where the buffers start unless `buffer` says otherwise.
pub const DEFAULT_BUFFER: u64 = 0x20_0000;
/// With direction `both`, the transmit buffer starts at the first boundary of this many
/// bytes at or after the end of the receive buffer, unless `tx_buffer` says otherwise.
pub const TX_ALIGN: u64 = 4096;

/// A driver and its device exchanging a buffer `iterations` times.
///
/// One iteration `i` (0-based), device → CPU (receive), buffer `B`:
/// CPU [`touch`: load `B`] → CPU `mmio_write` of `i` to the doorbell at BAR offset 0x0 →
/// device `wait_doorbell` 0x0 → device `dma_write` of `B` (No Snoop per `no_snoop`) → CPU
/// `wait` for that transfer → CPU flush of `B` per `flush` → CPU load of `B` (the consumer:
/// the checker compares every byte with the coherent reference).
///
/// CPU → device (transmit): CPU [`touch`: load `B`] → CPU store of `B` → flush per `flush`
/// → doorbell 0x8 → device `wait_doorbell` 0x8 → device `dma_read` of `B` → CPU `wait` for
/// that transfer. With `both`, each iteration receives into the RX buffer, then transmits
/// from the TX buffer.
///
/// What each flush policy does against a No-Snoop transfer:
///
/// | `flush` | device → CPU (NS write to DRAM, the CPU's copy stale) | CPU → device (NS read from DRAM, newer data in a dirty line) |
/// | --- | --- | --- |
/// | `none` | stale CPU reads once `touch` cached the lines | stale device reads |
/// | `clflush` | fixed: the lines are invalidated | fixed: written back before the doorbell |
/// | `clflushopt_sfence` | fixed (CLFLUSHOPT ordered by SFENCE) | fixed |
/// | `clwb` (then SFENCE) | **not fixed**: CLWB keeps the clean, stale line | fixed: written back, kept |
/// | `wbinvd` | fixed (every cache invalidated; a KVM guest's may be a no-op) | fixed |
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferExchangeSpec {
    /// The device's name.
    pub device: String,
    /// The CPU program the driver's side becomes (a name like "cpu0"; CPU programs get
    /// cores in name order).
    pub cpu: String,
    /// Buffers exchanged, 1 to 1,000,000.
    #[serde(default = "one")]
    pub iterations: Bounded<1, MAX_ITERATIONS>,
    /// Which way data moves.
    #[serde(default)]
    pub direction: ExchangeDirection,
    /// The buffer (CPU physical address, used by the device as its DMA address too: map
    /// it 1:1 when there is an IOMMU).
    #[serde(default = "default_buffer")]
    pub buffer: HexAddr,
    /// Bytes per buffer (lines are 64 bytes).
    #[serde(default = "default_bytes")]
    pub bytes: Bounded<1, MAX_TRANSFER_BYTES>,
    /// Direction `both` only: the receive buffer (default `buffer`).
    #[serde(default)]
    pub rx_buffer: Option<HexAddr>,
    /// Direction `both` only: the transmit buffer (default: the first 4 KiB boundary at or
    /// after `buffer + bytes`).
    #[serde(default)]
    pub tx_buffer: Option<HexAddr>,
    /// Which DMA transfers carry the No Snoop attribute.
    #[serde(default)]
    pub no_snoop: NoSnoopPolicy,
    /// What the CPU does to make the buffer coherent with the device.
    #[serde(default)]
    pub flush: FlushPolicy,
    /// The CPU loads the buffer at the start of every iteration (the driver looked at it),
    /// leaving its lines in the caches.
    #[serde(default = "yes")]
    pub touch: bool,
    /// The other attributes of every request (`no_snoop` must stay false here: the
    /// `no_snoop` field decides it per transfer).
    #[serde(default)]
    pub attrs: RequestAttrs,
}

fn one() -> Bounded<1, MAX_ITERATIONS> {
    Bounded(1)
}
fn default_buffer() -> HexAddr {
    HexAddr(DEFAULT_BUFFER)
}
fn default_bytes() -> Bounded<1, MAX_TRANSFER_BYTES> {
    Bounded(4096)
}
fn yes() -> bool {
    true
}

/// Which way a `buffer_exchange` moves data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExchangeDirection {
    /// The device DMA-writes the buffer, the CPU then reads it (receive).
    #[default]
    DeviceToCpu,
    /// The CPU stores the buffer, the device then DMA-reads it (transmit).
    CpuToDevice,
    /// One of each per iteration, on separate receive and transmit buffers.
    Both,
}

impl ExchangeDirection {
    /// The transfers of one iteration, in order: `true` for device → CPU.
    fn legs(self) -> &'static [bool] {
        match self {
            ExchangeDirection::DeviceToCpu => &[true],
            ExchangeDirection::CpuToDevice => &[false],
            ExchangeDirection::Both => &[true, false],
        }
    }
}

/// Which transfers set No Snoop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum NoSnoopPolicy {
    /// None.
    #[default]
    Never,
    /// Every one.
    Always,
    /// Each independently with probability `p`, drawn from a xoshiro256++ stream seeded
    /// from the scenario's seed and the entry's place in the workload (deterministic).
    Probability(Probability),
}

impl NoSnoopPolicy {
    fn draw(self, rng: &mut Xoshiro256PlusPlus) -> bool {
        match self {
            NoSnoopPolicy::Never => false,
            NoSnoopPolicy::Always => true,
            // 53 random bits, uniform in [0, 1): p = 1 always, p = 0 never.
            NoSnoopPolicy::Probability(p) => ((rng.next_u64() >> 11) as f64) < p.0 * TWO_53,
        }
    }
}

const TWO_53: f64 = (1u64 << 53) as f64;

/// A probability, 0 to 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Probability(pub f64);

impl TryFrom<f64> for Probability {
    type Error = String;
    fn try_from(p: f64) -> Result<Probability, String> {
        if (0.0..=1.0).contains(&p) {
            Ok(Probability(p))
        } else {
            Err(format!("{p} is not a probability: expected 0 to 1"))
        }
    }
}
impl From<Probability> for f64 {
    fn from(p: Probability) -> f64 {
        p.0
    }
}

/// What the CPU does to the buffer between the device's transfer and its own access (device
/// → CPU), or between its stores and the doorbell (CPU → device). See
/// [`BufferExchangeSpec`] for which policy fixes which hazard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlushPolicy {
    /// Nothing.
    #[default]
    None,
    /// CLFLUSH of every line (each waited for).
    Clflush,
    /// CLFLUSHOPT of every line, then SFENCE.
    ClflushoptSfence,
    /// CLWB of every line, then SFENCE: written back, not invalidated.
    Clwb,
    /// WBINVD.
    Wbinvd,
}

impl FlushPolicy {
    fn ops(self, range: &RangeOp, out: &mut Vec<CpuOp>) {
        match self {
            FlushPolicy::None => {}
            FlushPolicy::Clflush => out.push(CpuOp::Clflush(range.clone())),
            FlushPolicy::ClflushoptSfence => {
                out.push(CpuOp::Clflushopt(range.clone()));
                out.push(CpuOp::Sfence(Empty {}));
            }
            FlushPolicy::Clwb => {
                out.push(CpuOp::Clwb(range.clone()));
                out.push(CpuOp::Sfence(Empty {}));
            }
            FlushPolicy::Wbinvd => out.push(CpuOp::Wbinvd(Empty {})),
        }
    }
}

impl BufferExchangeSpec {
    /// The receive buffer (directions `device_to_cpu` and `both`).
    pub fn rx(&self) -> u64 {
        self.rx_buffer.unwrap_or(self.buffer).0
    }

    /// The transmit buffer (directions `cpu_to_device` and `both`).
    pub fn tx(&self) -> u64 {
        match (self.direction, self.tx_buffer) {
            (ExchangeDirection::Both, Some(a)) => a.0,
            (ExchangeDirection::Both, None) => self
                .buffer
                .0
                .saturating_add(self.bytes.0)
                .div_ceil(TX_ALIGN)
                .saturating_mul(TX_ALIGN),
            _ => self.buffer.0,
        }
    }

    /// DMA transfers the whole exchange makes.
    pub fn transfers(&self) -> u64 {
        self.iterations.0 * self.direction.legs().len() as u64
    }
}

/// Checks a `buffer_exchange` at JSON path `at` beyond what parsing checked.
pub(super) fn check_exchange(
    b: &BufferExchangeSpec,
    at: &[Step],
) -> Result<(), (Vec<Step>, String)> {
    let path = |k: &[&str]| {
        let mut p = at.to_vec();
        p.extend(k.iter().map(|k| Step::Key((*k).to_owned())));
        p
    };
    if b.attrs.no_snoop {
        return Err((
            path(&["attrs", "no_snoop"]),
            "a buffer_exchange sets No Snoop with its `no_snoop` field (\"never\", \"always\" or \
             {\"probability\": p}), not in attrs: remove attrs.no_snoop"
                .to_owned(),
        ));
    }
    if b.cpu.trim().is_empty() {
        return Err((
            path(&["cpu"]),
            "the CPU name is empty: expected a program name like \"cpu0\"".to_owned(),
        ));
    }
    if b.direction != ExchangeDirection::Both {
        for (field, v) in [("rx_buffer", b.rx_buffer), ("tx_buffer", b.tx_buffer)] {
            if v.is_some() {
                return Err((
                    path(&[field]),
                    format!(
                        "{field} is for direction \"both\" (separate receive and transmit \
                         buffers): with one direction, set `buffer`"
                    ),
                ));
            }
        }
    }
    let total = u128::from(b.transfers()) * u128::from(b.bytes.0);
    if total > u128::from(MAX_WORKLOAD_BYTES) {
        return Err((
            path(&["iterations"]),
            format!(
                "this exchange moves {total} bytes (iterations × bytes{}), more than the \
                 {MAX_WORKLOAD_BYTES} bytes (4 GiB) a run can simulate: lower iterations or bytes",
                if b.direction == ExchangeDirection::Both {
                    " × 2"
                } else {
                    ""
                }
            ),
        ));
    }
    let n = u128::from(b.bytes.0);
    let mut buffers = Vec::new();
    let legs = b.direction.legs();
    if legs.contains(&true) {
        let field = if b.rx_buffer.is_some() {
            "rx_buffer"
        } else {
            "buffer"
        };
        buffers.push((field, u128::from(b.rx())));
    }
    if legs.contains(&false) {
        let field = match (b.direction, b.tx_buffer) {
            (ExchangeDirection::Both, Some(_)) => "tx_buffer",
            _ => "buffer",
        };
        buffers.push((field, u128::from(b.tx())));
    }
    for &(field, start) in &buffers {
        if start + n > 1u128 << 64 {
            return Err((
                path(&[field]),
                format!("the buffer runs past the top of the 64-bit address space ({start:#x} + {n} bytes)"),
            ));
        }
    }
    if let [(_, rx), (field, tx)] = buffers[..] {
        if rx < tx + n && tx < rx + n {
            let field = if b.tx_buffer.is_none() {
                "rx_buffer"
            } else {
                field
            };
            return Err((
                path(&[field]),
                format!(
                    "the receive buffer ({rx:#x}) and the transmit buffer ({tx:#x}) overlap \
                     ({n} bytes each): expected separate buffers"
                ),
            ));
        }
    }
    Ok(())
}

/// Payload bytes a workload moves.
pub fn workload_bytes(w: &Workload) -> u128 {
    match w {
        Workload::Stream(s) => {
            let passes = if s.direction == StreamDirection::Mixed {
                2
            } else {
                1
            };
            u128::from(s.transfer_bytes) * u128::from(s.count) * passes
        }
        Workload::Program(p) => p
            .devices
            .values()
            .flatten()
            .filter_map(DeviceOp::dma)
            .map(|d| u128::from(d.bytes.0))
            .sum(),
        Workload::BufferExchange(b) => u128::from(b.transfers()) * u128::from(b.bytes.0),
        Workload::All(list) => list.iter().map(workload_bytes).sum(),
    }
}

/// Every leaf workload (a stream, a program or a template) with the JSON path of its
/// object, in the order they run on a shared device or CPU.
pub fn leaves(w: &Workload) -> Vec<(Vec<Step>, &Workload)> {
    fn walk<'w>(w: &'w Workload, at: Vec<Step>, out: &mut Vec<(Vec<Step>, &'w Workload)>) {
        match w {
            Workload::All(list) => {
                for (i, w) in list.iter().enumerate() {
                    let mut p = at.clone();
                    p.extend([Step::Key("all".to_owned()), Step::Index(i)]);
                    walk(w, p, out);
                }
            }
            _ => out.push((at, w)),
        }
    }
    let mut out = Vec::new();
    walk(w, vec![Step::Key("workload".to_owned())], &mut out);
    out
}

/// One part of what a device runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Segment {
    /// A stream, produced lazily.
    Stream(StreamSpec),
    /// Program steps.
    Program(Vec<DeviceOp>),
}

/// What every device and CPU runs once the templates are expanded: device name → its
/// segments in order, CPU name → its operations (the program form, with streams kept whole).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    /// Device name → what it runs, in order.
    pub devices: BTreeMap<String, Vec<Segment>>,
    /// CPU name → its operations, in order (cores are given in name order).
    pub cpus: BTreeMap<String, Vec<CpuOp>>,
}

/// The whole expansion of a scenario's workload (for showing it; a run builds each
/// device's part and the CPUs' part separately, see [`device_plan`] and [`cpu_plan`]).
pub fn expand(s: &Scenario) -> Plan {
    Expander::run(s, Want::Everything)
}

/// What device `name` runs.
pub fn device_plan(s: &Scenario, name: &str) -> Vec<Segment> {
    Expander::run(s, Want::Device(name))
        .devices
        .remove(name)
        .unwrap_or_default()
}

/// What every CPU runs, by name.
pub fn cpu_plan(s: &Scenario) -> BTreeMap<String, Vec<CpuOp>> {
    Expander::run(s, Want::Cpus).cpus
}

/// The part of a plan being built.
#[derive(Debug, Clone, Copy)]
enum Want<'a> {
    Everything,
    Device(&'a str),
    Cpus,
}

/// SplitMix-style constant separating each template's No-Snoop stream from the others and
/// from the data streams.
const ENTRY_SEED_STRIDE: u64 = 0xbf58_476d_1ce4_e5b9;
/// Distinguishes the No-Snoop draws from the devices' and CPUs' data streams.
const NO_SNOOP_SEED: u64 = 0x6e6f_736e_6f6f_7000;

struct Expander<'a> {
    seed: u64,
    want: Want<'a>,
    plan: Plan,
    /// Transfers each device runs in the entries before the current one.
    transfers: BTreeMap<&'a str, u64>,
    /// Leaf entries seen so far.
    entries: u64,
}

impl<'a> Expander<'a> {
    fn run(s: &'a Scenario, want: Want<'a>) -> Plan {
        let mut e = Expander {
            seed: s.seed,
            want,
            plan: Plan::default(),
            transfers: BTreeMap::new(),
            entries: 0,
        };
        e.walk(&s.workload);
        e.plan
    }

    fn wants_device(&self, name: &str) -> bool {
        match self.want {
            Want::Everything => true,
            Want::Device(d) => d == name,
            Want::Cpus => false,
        }
    }

    fn wants_cpus(&self) -> bool {
        matches!(self.want, Want::Everything | Want::Cpus)
    }

    fn walk(&mut self, w: &'a Workload) {
        self.entries += 1;
        match w {
            Workload::All(list) => list.iter().for_each(|w| self.walk(w)),
            Workload::Stream(st) => {
                let passes = if st.direction == StreamDirection::Mixed {
                    2
                } else {
                    1
                };
                *self.transfers.entry(&st.device).or_default() += st.count * passes;
                if self.wants_device(&st.device) {
                    self.segments(&st.device).push(Segment::Stream(st.clone()));
                }
            }
            Workload::Program(p) => self.program(p),
            Workload::BufferExchange(b) => self.exchange(b),
        }
    }

    fn segments(&mut self, device: &str) -> &mut Vec<Segment> {
        self.plan.devices.entry(device.to_owned()).or_default()
    }

    /// Appends program steps to a device's plan (joining the previous program segment).
    fn steps(&mut self, device: &str, ops: Vec<DeviceOp>) {
        let segments = self.segments(device);
        match segments.last_mut() {
            Some(Segment::Program(steps)) => steps.extend(ops),
            _ => segments.push(Segment::Program(ops)),
        }
    }

    fn program(&mut self, p: &'a ProgramSpec) {
        for (device, ops) in &p.devices {
            let n = ops.iter().filter(|op| op.dma().is_some()).count() as u64;
            *self.transfers.entry(device).or_default() += n;
            if self.wants_device(device) {
                self.steps(device, ops.clone());
            }
        }
        if self.wants_cpus() {
            for (cpu, ops) in &p.cpus {
                self.plan
                    .cpus
                    .entry(cpu.clone())
                    .or_default()
                    .extend(ops.iter().cloned());
            }
        }
    }

    fn exchange(&mut self, b: &'a BufferExchangeSpec) {
        let before = self.transfers.get(b.device.as_str()).copied().unwrap_or(0);
        *self.transfers.entry(&b.device).or_default() += b.transfers();
        let (dev, cpu) = (self.wants_device(&b.device), self.wants_cpus());
        if !dev && !cpu {
            return;
        }
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(
            self.seed ^ NO_SNOOP_SEED ^ self.entries.wrapping_mul(ENTRY_SEED_STRIDE),
        );
        let per = b.direction.legs().len();
        let iterations = usize::try_from(b.iterations.0).unwrap_or(usize::MAX);
        let mut dops = Vec::with_capacity(if dev { iterations * per * 2 } else { 0 });
        let mut cops = Vec::with_capacity(if cpu { iterations * per * 6 } else { 0 });
        let mut done = before;
        for i in 0..b.iterations.0 {
            for &to_cpu in b.direction.legs() {
                done += 1;
                let (buffer, doorbell) = if to_cpu {
                    (b.rx(), RX_DOORBELL)
                } else {
                    (b.tx(), TX_DOORBELL)
                };
                let range = RangeOp {
                    address: HexAddr(buffer),
                    bytes: b.bytes,
                };
                if dev {
                    let dma = DmaOp {
                        address: HexAddr(buffer),
                        bytes: b.bytes,
                        attrs: RequestAttrs {
                            no_snoop: b.no_snoop.draw(&mut rng),
                            ..b.attrs.clone()
                        },
                    };
                    dops.push(DeviceOp::WaitDoorbell(DoorbellOp {
                        offset: HexAddr(doorbell),
                    }));
                    dops.push(if to_cpu {
                        DeviceOp::DmaWrite(dma)
                    } else {
                        DeviceOp::DmaRead(dma)
                    });
                }
                if cpu {
                    iteration_ops(b, i, to_cpu, &range, done, &mut cops);
                }
            }
        }
        if dev {
            self.steps(&b.device, dops);
        }
        if cpu {
            self.plan
                .cpus
                .entry(b.cpu.clone())
                .or_default()
                .extend(cops);
        }
    }
}

/// The CPU's half of one transfer of iteration `i`; `done` is the device's transfer count
/// once this one has completed.
fn iteration_ops(
    b: &BufferExchangeSpec,
    i: u64,
    to_cpu: bool,
    range: &RangeOp,
    done: u64,
    out: &mut Vec<CpuOp>,
) {
    let doorbell = CpuOp::MmioWrite(MmioWriteOp {
        device: b.device.clone(),
        offset: HexAddr(if to_cpu { RX_DOORBELL } else { TX_DOORBELL }),
        value: i,
        bytes: Bounded(4),
    });
    let wait = CpuOp::Wait(WaitOp {
        device: b.device.clone(),
        transfers: Bounded(done),
    });
    if b.touch {
        out.push(CpuOp::Load(range.clone()));
    }
    if to_cpu {
        out.push(doorbell);
        out.push(wait);
        b.flush.ops(range, out);
        out.push(CpuOp::Load(range.clone()));
    } else {
        out.push(CpuOp::Store(range.clone()));
        b.flush.ops(range, out);
        out.push(doorbell);
        out.push(wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(direction: ExchangeDirection) -> BufferExchangeSpec {
        serde_json::from_value(serde_json::json!({
            "device": "nic", "cpu": "cpu0", "iterations": 2, "direction": direction,
            "flush": "clflushopt_sfence", "no_snoop": "always"
        }))
        .unwrap()
    }

    #[test]
    fn defaults_fill_everything_but_device_and_cpu() {
        let b: BufferExchangeSpec =
            serde_json::from_str(r#"{"device": "nic", "cpu": "cpu0"}"#).unwrap();
        assert_eq!(b.iterations.0, 1);
        assert_eq!(b.direction, ExchangeDirection::DeviceToCpu);
        assert_eq!((b.buffer.0, b.bytes.0), (DEFAULT_BUFFER, 4096));
        assert_eq!(
            (b.no_snoop, b.flush, b.touch),
            (NoSnoopPolicy::Never, FlushPolicy::None, true)
        );
        // Round trip, as a sweep re-encodes the scenario.
        let again: BufferExchangeSpec =
            serde_json::from_value(serde_json::to_value(&b).unwrap()).unwrap();
        assert_eq!(again, b);
    }

    #[test]
    fn both_puts_the_transmit_buffer_on_the_next_4k_boundary() {
        let mut b = spec(ExchangeDirection::Both);
        b.bytes = Bounded(100);
        assert_eq!((b.rx(), b.tx()), (DEFAULT_BUFFER, DEFAULT_BUFFER + 4096));
        assert_eq!(b.transfers(), 4);
        assert!(check_exchange(&b, &[]).is_ok());
        b.tx_buffer = Some(HexAddr(DEFAULT_BUFFER + 50));
        let (path, msg) = check_exchange(&b, &[]).unwrap_err();
        assert_eq!(path, vec![Step::Key("tx_buffer".to_owned())]);
        assert!(msg.contains("overlap"), "{msg}");
    }

    #[test]
    fn one_iteration_of_each_direction_in_the_documented_order() {
        let names = |ops: &[CpuOp]| -> Vec<String> {
            ops.iter()
                .map(|op| {
                    let v = serde_json::to_value(op).unwrap();
                    v.as_object().unwrap().keys().next().unwrap().clone()
                })
                .collect()
        };
        let mut out = Vec::new();
        let b = spec(ExchangeDirection::DeviceToCpu);
        let r = RangeOp {
            address: HexAddr(b.rx()),
            bytes: b.bytes,
        };
        iteration_ops(&b, 0, true, &r, 1, &mut out);
        assert_eq!(
            names(&out),
            ["load", "mmio_write", "wait", "clflushopt", "sfence", "load"]
        );
        out.clear();
        iteration_ops(&b, 0, false, &r, 1, &mut out);
        assert_eq!(
            names(&out),
            [
                "load",
                "store",
                "clflushopt",
                "sfence",
                "mmio_write",
                "wait"
            ]
        );
    }
}
