//! The report data model: plain serde structs, one JSON object each.
//!
//! Keys are the field names (snake_case). Time is in picoseconds where the field name ends in
//! `_ps` and in nanoseconds where it ends in `_ns`; byte counts are plain bytes.
//!
//! Floating-point fields must be finite: `serde_json` writes NaN and infinities as `null`,
//! which does not read back as `f64`. The constructors here ([`Throughput::new`],
//! [`crate::LatencyHistogram::summary`]) never produce non-finite values.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One simulation run of a scenario: every variant of its sweep, in sweep order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Scenario name (the scenario file's `name`).
    pub scenario: String,
    /// One-paragraph story of the scenario, copied from the scenario file.
    pub description: String,
    /// Seed of the run's only source of randomness.
    pub seed: u64,
    /// Version of the simulator that produced the report (`CARGO_PKG_VERSION` of the binary).
    pub snoopsim_version: String,
    /// Results, one per sweep variant (one entry when the scenario has no sweep).
    pub variants: Vec<VariantReport>,
}

/// Results of one variant (one point of the scenario's sweep matrix).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantReport {
    /// Variant name, unique within the report.
    pub name: String,
    /// The sweep parameters this variant sets, by dotted scenario path (unitless JSON values;
    /// the unit is in the parameter's name).
    pub params: BTreeMap<String, serde_json::Value>,
    /// Data corruption detected, per class.
    pub corruption: Corruption,
    /// Translation faults reported by the IOMMU (blocked DMA; not corruption).
    pub faults: Faults,
    /// Latency percentiles per TLP class (e.g. `dma_read`, `dma_write`), in nanoseconds.
    pub latency_ns: BTreeMap<String, LatencySummary>,
    /// DMA payload throughput against the link's physical limit.
    pub throughput: Throughput,
    /// Per-device PCIe link and DMA-engine counters.
    #[serde(default)]
    pub pcie: PcieStats,
    /// IOMMU translation counters.
    pub iommu: IommuStats,
    /// CPU-side memory and cache-maintenance counters.
    pub cpu: CpuStats,
    /// What the host software decided (present when the scenario uses the domain API or
    /// a KVM guest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostReport>,
    /// Engine counters and the reason the run stopped.
    pub sim: SimStats,
}

/// PCIe counters, one entry per device in scenario order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PcieStats {
    /// The devices.
    pub devices: Vec<DevicePcieStats>,
}

/// One device's link and DMA engine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DevicePcieStats {
    /// Scenario name of the device.
    pub name: String,
    /// Requester ID, `bb:dd.f`.
    pub requester: String,
    /// Device → root port.
    pub up: LinkDirectionStats,
    /// Root port → device.
    pub down: LinkDirectionStats,
    /// Times the DMA engine had a read to send and no free tag.
    pub tag_stalls: u64,
    /// Times the DMA engine had a request to send and not the flow-control credits for it.
    pub credit_stalls: u64,
    /// Reads ended by the Completion Timeout mechanism.
    #[serde(default)]
    pub completion_timeouts: u64,
    /// Completions matching no outstanding read (e.g. after a timeout).
    #[serde(default)]
    pub unexpected_completions: u64,
    /// Reads ended by an error completion (UR, CA, CRS).
    #[serde(default)]
    pub error_completions: u64,
    /// Transfers that failed because one of their reads did.
    #[serde(default)]
    pub failed_transfers: u64,
    /// MMIO writes (doorbells) the device received from CPUs.
    #[serde(default)]
    pub mmio_writes: u64,
}

/// What one direction of a link carried.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkDirectionStats {
    /// TLPs sent.
    pub tlps: u64,
    /// DLLPs sent (Acks, UpdateFCs).
    pub dllps: u64,
    /// Bytes on the wire, framing included.
    pub wire_bytes: u64,
    /// Time the wire was busy, in ns.
    pub busy_ns: f64,
    /// Busy time over the run's simulated time, 0 to 1.
    pub utilisation: f64,
}

/// Corruption counts per class. Class names are the JSON keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Corruption {
    /// CPU read returned data older than the latest DMA write to it.
    pub stale_cpu_read: ClassCount,
    /// Device (DMA read) got data older than the latest CPU write to it.
    pub stale_device_read: ClassCount,
    /// A DMA write was overwritten or dropped before any consumer saw it.
    pub lost_dma_write: ClassCount,
    /// DMA reached a physical address other than the one software mapped for it.
    pub misdirected_dma: ClassCount,
    /// Sum of the four classes' `events` (events; see [`Corruption::recompute_total`]).
    pub total_events: u64,
}

impl Corruption {
    /// Names of the classes, in report order; equal to their JSON keys.
    pub const CLASS_NAMES: [&'static str; 4] = [
        "stale_cpu_read",
        "stale_device_read",
        "lost_dma_write",
        "misdirected_dma",
    ];

    /// Sets `total_events` to the sum of the four classes' `events` (saturating).
    pub fn recompute_total(&mut self) {
        self.total_events = self
            .classes()
            .iter()
            .fold(0u64, |sum, (_, class)| sum.saturating_add(class.events));
    }

    /// The classes as `(name, count)` in report order; names equal their JSON keys.
    pub fn classes(&self) -> [(&'static str, &ClassCount); 4] {
        let [a, b, c, d] = Self::CLASS_NAMES;
        [
            (a, &self.stale_cpu_read),
            (b, &self.stale_device_read),
            (c, &self.lost_dma_write),
            (d, &self.misdirected_dma),
        ]
    }
}

/// Events and bytes of one corruption class, with the first few explained.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassCount {
    /// Number of corruption events (events).
    pub events: u64,
    /// Bytes affected, summed over all events (bytes).
    pub bytes: u64,
    /// The first events, in detection order, each with the chain that led to it.
    pub first: Vec<Explanation>,
}

/// Why one corruption event happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// First affected address, lowercase hex with `0x` (see [`hex_address`]).
    pub address: String,
    /// Bytes affected by this event (bytes).
    pub bytes: u64,
    /// One-line description of the event.
    pub summary: String,
    /// The events that led to it, oldest first.
    pub chain: Vec<ChainStep>,
}

/// One event of an explanation chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainStep {
    /// Simulated time of the event (picoseconds since the start of the run).
    pub tick_ps: u64,
    /// Who acted: a model instance name such as `nic0`, `iommu`, `cpu1`, `l2.1`.
    pub actor: String,
    /// What it did, in words.
    pub what: String,
}

/// Translation faults (blocked DMA) reported by the IOMMU.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// Total number of faults (faults), including those not kept in `records`.
    pub count: u64,
    /// The first fault records, in the order the IOMMU reported them.
    pub records: Vec<FaultRecord>,
}

/// One IOMMU fault record (VT-d fault record or AMD-Vi event log entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// Simulated time the fault was recorded (picoseconds since the start of the run).
    pub tick_ps: u64,
    /// Requester, as a PCI `bus:dev.fn` (optionally with `/pasid`).
    pub requester: String,
    /// Faulting I/O virtual address, lowercase hex with `0x`.
    pub address: String,
    /// `read` or `write`.
    pub access: String,
    /// Architectural fault reason or event code (unitless; see `reason`).
    pub reason_code: u32,
    /// The code's name or meaning per the IOMMU specification.
    pub reason: String,
    /// What the IOMMU's fault log did with it (VT-d fault recording register index,
    /// overflow, or suppression by FPD).
    pub logged: String,
}

/// Latency distribution of one TLP class. Every value is in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Number of samples (samples).
    pub count: u64,
    /// Mean latency (ns).
    pub mean: f64,
    /// Median latency (ns).
    pub p50: f64,
    /// 90th percentile (ns).
    pub p90: f64,
    /// 99th percentile (ns).
    pub p99: f64,
    /// 99.9th percentile (ns).
    pub p999: f64,
    /// Largest latency (ns).
    pub max: f64,
}

/// DMA payload throughput against the link's physical limit.
///
/// `gbps` is gigaBYTES per second (10^9 bytes/s) of DMA payload — numerically bytes per
/// nanosecond — not gigabits. TLP headers, DLLPs and framing are not payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// DMA payload moved (bytes).
    pub bytes: u64,
    /// Simulated time the bytes were moved over (ns).
    pub sim_time_ns: f64,
    /// Achieved payload throughput, `bytes / sim_time_ns` (GB/s = bytes/ns).
    pub gbps: f64,
    /// Physical limit of the link after encoding, in the same unit (GB/s = bytes/ns).
    pub link_limit_gbps: f64,
}

impl Throughput {
    /// Builds a throughput, computing `gbps = bytes / sim_time_ns` (0 when no time passed or
    /// the time is not a positive finite number).
    pub fn new(bytes: u64, sim_time_ns: f64, link_limit_gbps: f64) -> Self {
        let gbps = if sim_time_ns.is_finite() && sim_time_ns > 0.0 {
            bytes as f64 / sim_time_ns
        } else {
            0.0
        };
        Self {
            bytes,
            sim_time_ns,
            gbps,
            link_limit_gbps,
        }
    }

    /// `gbps` as a percentage of `link_limit_gbps`, or `None` when the limit is not positive.
    pub fn percent_of_limit(&self) -> Option<f64> {
        (self.link_limit_gbps.is_finite() && self.link_limit_gbps > 0.0)
            .then(|| 100.0 * self.gbps / self.link_limit_gbps)
    }
}

/// IOMMU translation counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IommuStats {
    /// IOMMU model: `vtd`, `amdvi`, or `none` (passthrough without an IOMMU).
    pub kind: String,
    /// Translation requests handled (requests).
    pub translations: u64,
    /// IOTLB lookups that hit (lookups).
    pub iotlb_hits: u64,
    /// IOTLB lookups that missed (lookups).
    pub iotlb_misses: u64,
    /// Page walks started (walks; merged misses count once).
    pub walks: u64,
    /// Memory reads issued by page walks, after walk caches (reads).
    pub walk_memory_reads: u64,
    /// Misses that joined a walk already in flight for the same page (requests).
    pub merged_walks: u64,
    /// The IOMMU's other caches, in a fixed order: context cache, PASID cache, and the
    /// paging-structure cache of each level (e.g. `sl_pml4e`, `sl_pdpe`, `sl_pde`).
    pub caches: Vec<NamedCacheStats>,
    /// Faults the fault recording registers logged, dropped on overflow (FSTS.PFO), or
    /// suppressed by Fault Processing Disable (faults).
    pub fault_log: FaultLogStats,
    /// Invalidation requests the IOMMU accepted: queued descriptors and commands fetched,
    /// register commands written (requests).
    pub invalidations: u64,
    /// With several remapping units (the counters above are their sums): each unit's own
    /// counters, in platform order; omitted with one unit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub units: Vec<UnitStats>,
}

/// One remapping unit's counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UnitStats {
    /// The unit's name (`dmar0`).
    pub name: String,
    /// Translation requests from the devices in its scope (requests).
    pub translations: u64,
    /// IOTLB lookups that hit (lookups).
    pub iotlb_hits: u64,
    /// IOTLB lookups that missed (lookups).
    pub iotlb_misses: u64,
    /// Page walks started (walks).
    pub walks: u64,
    /// Requests it blocked (requests).
    pub faults: u64,
    /// Invalidation requests it accepted (requests).
    pub invalidations: u64,
}

/// Hits and misses of one named IOMMU cache.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedCacheStats {
    /// The cache.
    pub name: String,
    /// Lookups that hit (lookups).
    pub hits: u64,
    /// Lookups that missed (lookups).
    pub misses: u64,
}

/// What the IOMMU's fault log did with the faults it saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultLogStats {
    /// Recorded in a fault recording register / event log entry (faults).
    pub logged: u64,
    /// Not recorded because a pending record of the same requester stands for it (VT-d
    /// §11.4.14 allows hardware to collapse them) (faults).
    pub collapsed: u64,
    /// Dropped because the log was full (faults).
    pub overflowed: u64,
    /// Not logged because software disabled fault processing for the requester (faults).
    pub suppressed: u64,
}

/// CPU-side memory and cache-maintenance counters, summed over all cores.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuStats {
    /// Load instructions to modelled memory (instructions).
    pub loads: u64,
    /// Store instructions to modelled memory (instructions).
    pub stores: u64,
    /// `CLFLUSH` instructions (instructions).
    pub clflush: u64,
    /// `CLFLUSHOPT` instructions (instructions).
    pub clflushopt: u64,
    /// `CLWB` instructions (instructions).
    pub clwb: u64,
    /// `WBINVD` instructions (instructions).
    pub wbinvd: u64,
    /// Time cores spent stalled, summed over cores (ns): on memory, cache maintenance,
    /// the IOMMU driver's waits and `wait`s for devices; a program's `delay` is not a stall.
    pub stall_ns: f64,
    /// The part of `stall_ns` spent in cache maintenance: CLFLUSH, CLFLUSHOPT and CLWB
    /// issue, fences, WBINVD / WBNOINVD and KVM's emulation of a guest WBINVD (ns).
    #[serde(default)]
    pub flush_ns: f64,
    /// Uncached stores to device registers (MMIO writes, doorbells).
    #[serde(default)]
    pub mmio_writes: u64,
    /// Guest `WBINVD`s KVM emulated by flushing every pCPU the vCPU ran on (instructions).
    #[serde(default)]
    pub wbinvd_emulated: u64,
    /// Guest `WBINVD`s KVM turned into a no-op (instructions).
    #[serde(default)]
    pub wbinvd_ignored: u64,
    /// IPIs sent to run `WBINVD` on other pCPUs (interrupts).
    #[serde(default)]
    pub ipis: u64,
}

/// The host software's decisions: how each domain treats No Snoop, and what KVM does with
/// the guest's `WBINVD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostReport {
    /// Which definition of the domain API's cache-coherency controls: `none`,
    /// `pre_v5_19` or `v5_19`.
    pub semantics: String,
    /// One entry per domain, in scenario order.
    pub domains: Vec<DomainDecision>,
    /// The KVM guest, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kvm: Option<KvmDecision>,
}

/// How one domain treats No Snoop, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainDecision {
    /// The domain's name.
    pub name: String,
    /// `vfio` (passed through to the guest), `dma_api` (an in-kernel driver) or `raw`
    /// (no domain API: the scenario's bits).
    pub owner: String,
    /// What the last call of `enforce_cache_coherency()` (VFIO's at boot, or a program's)
    /// returned: `succeeded`, `failed: <why>` or `not called`.
    pub enforce: String,
    /// What happens to a request with No Snoop set, and which bit does it.
    pub no_snoop: String,
    /// Devices whose attachment the domain refused, and why (`nic (dmar1: ECAP.SC = 0)`:
    /// an enforced domain and a unit without snoop control); omitted when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<String>,
    /// The `enforce` operations of the CPU programs on this domain, oldest first (at most
    /// the last 16): who called it, when, and what it returned (`cpu0 at 1.250 µs:
    /// succeeded`); `enforce` is the last outcome. Omitted when no program called it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enforce_calls: Vec<String>,
}

/// What KVM knows about the guest's DMA and does with its `WBINVD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvmDecision {
    /// KVM registered non-coherent DMA (`kvm_arch_register_noncoherent_dma`).
    pub noncoherent_dma: bool,
    /// `emulated` (flushed on every pCPU the vCPU ran on) or `no-op`.
    pub wbinvd: String,
    /// Why.
    pub reason: String,
}

/// Engine counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimStats {
    /// Events dispatched by the engine (events).
    pub events: u64,
    /// TLPs that crossed a link (TLPs).
    pub tlps: u64,
    /// Simulated time at the end of the run (ns).
    pub sim_time_ns: f64,
    /// Host wall-clock time the run took (ms). The only non-deterministic field of a report.
    pub wall_ms: f64,
    /// Why the run stopped.
    pub stop_reason: StopReason,
}

impl SimStats {
    /// Events dispatched per wall-clock second, or `None` when `wall_ms` is not positive.
    pub fn events_per_wall_second(&self) -> Option<f64> {
        (self.wall_ms.is_finite() && self.wall_ms > 0.0)
            .then(|| self.events as f64 / (self.wall_ms / 1000.0))
    }
}

/// Why a run stopped. Serialized as `"completed"`, `"time_limit"`, `"event_limit"`,
/// `"stalled"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The workload finished.
    Completed,
    /// The scenario's simulated-time limit was reached first.
    TimeLimit,
    /// The scenario's event-count limit was reached first.
    EventLimit,
    /// Nothing was left to happen but the workload was not done: a deadlock, or an agent
    /// waiting for something that never comes (a doorbell no CPU writes).
    Stalled,
}

impl StopReason {
    /// The serialized name (`completed`, `time_limit`, `event_limit`, `stalled`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::TimeLimit => "time_limit",
            Self::EventLimit => "event_limit",
            Self::Stalled => "stalled",
        }
    }

    /// True when the run did not finish its workload.
    pub fn is_early(self) -> bool {
        self != Self::Completed
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Formats an address the way reports store it: lowercase hex with `0x` (`0x1f000`).
pub fn hex_address(address: u64) -> String {
    format!("{address:#x}")
}
