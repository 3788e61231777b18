//! The scenario file format: what a user writes.
//!
//! Every section is a struct with unit-bearing field names, a doc comment per field and a
//! default, and rejects unknown fields. Choices between kinds (an IOMMU vendor, a workload
//! template) are externally tagged — `{"stream": {...}}` — so that an error deep inside one
//! still carries its full JSON path. New sections and kinds can be added without breaking
//! existing files.

use super::software::Software;
use super::values::{Bounded, GenNumber, HexAddr, Lanes, Nanos, PayloadSize, RcbBytes};
use super::workload::Workload;
use model_core::{Bdf, Cycles};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest single DMA transfer: 64 MiB.
pub const MAX_TRANSFER_BYTES: u64 = 64 << 20;

/// A whole scenario file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name; also the report's file name.
    pub name: String,
    /// One line saying what the scenario shows.
    #[serde(default)]
    pub description: String,
    /// Seed of every random choice (data patterns, random workloads).
    pub seed: u64,
    /// The hardware.
    #[serde(default)]
    pub platform: Platform,
    /// The host software's choices (IOMMU domain API, VFIO, KVM).
    #[serde(default)]
    pub software: Software,
    /// The PCIe endpoints.
    pub devices: Vec<DeviceSpec>,
    /// What runs.
    pub workload: Workload,
    /// When to stop a run that does not finish.
    #[serde(default)]
    pub limits: RunLimits,
    /// What the report keeps.
    #[serde(default)]
    pub report: ReportSpec,
    /// Variants: JSON path → values; the cross-product of all lists is run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<BTreeMap<String, Vec<serde_json::Value>>>,
}

/// What the report keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportSpec {
    /// Explanations (event chains) kept for each corruption class; all events are counted.
    pub explanations_per_class: Bounded<0, 1000>,
}

impl Default for ReportSpec {
    fn default() -> ReportSpec {
        ReportSpec {
            explanations_per_class: Bounded(crate::check::DEFAULT_EXPLANATIONS as u64),
        }
    }
}

/// The hardware platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Platform {
    /// The link between every device and its root port.
    pub pcie: PcieSpec,
    /// The root complex.
    pub root_complex: RootComplexSpec,
    /// The IOMMU between the root complex and memory.
    pub iommu: IommuSpec,
    /// Main memory.
    pub dram: DramSpec,
    /// The CPU cores and their caches.
    pub cpu: CpuSpec,
}

/// The CPU cores and their cache hierarchy (defaults: a Skylake-SP-like part; see
/// `cache::HierarchyConfig::default` for the sources).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CpuSpec {
    /// Cores (each CPU program runs on one, in name order).
    pub cores: Bounded<1, 64>,
    /// Core clock in MHz.
    pub clock_mhz: Bounded<1, 10_000>,
    /// Private L1 data cache size in KiB.
    pub l1_kib: Bounded<1, 65_536>,
    /// L1 ways.
    pub l1_ways: Bounded<1, 64>,
    /// Private L2 size in KiB, 0 for none.
    pub l2_kib: Bounded<0, 1_048_576>,
    /// L2 ways.
    pub l2_ways: Bounded<1, 64>,
    /// Shared last-level cache size in KiB.
    pub llc_kib: Bounded<1, 1_048_576>,
    /// LLC ways.
    pub llc_ways: Bounded<1, 64>,
    /// The LLC holds every line the private caches hold.
    pub llc_inclusive: bool,
    /// LLC ways snooped DMA writes may allocate into (DDIO); 0 sends them to DRAM.
    pub ddio_ways: Bounded<0, 64>,
    /// Costs of flushes, fences and wbinvd, in core cycles (defaults: the cache model's,
    /// which are assumptions until measured; see `cache::FlushCosts`).
    pub flush: FlushSpec,
}

/// Costs of the flush and fence instructions, in core cycles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlushSpec {
    /// clflush / clflushopt / clwb: issue until the line is gone from every cache.
    pub flush_line_cycles: Bounded<0, 1_000_000>,
    /// clflushopt / clwb: cycles before the issuing core may go on.
    pub flush_issue_cycles: Bounded<0, 1_000_000>,
    /// sfence / mfence with nothing outstanding.
    pub fence_cycles: Bounded<0, 1_000_000>,
    /// wbinvd / wbnoinvd fixed cost.
    pub wbinvd_base_cycles: Bounded<0, 1_000_000_000>,
    /// wbinvd / wbnoinvd cost per line of cache capacity walked.
    pub wbinvd_cycles_per_line: Bounded<0, 1_000_000>,
    /// wbinvd / wbnoinvd extra cost per dirty line written back.
    pub wbinvd_cycles_per_dirty_line: Bounded<0, 1_000_000>,
    /// Caches a wbinvd reaches: every core's ("all_cores"), or only the issuing core's and
    /// the shared LLC ("issuer_and_shared": other cores' private copies survive, which is
    /// why KVM runs WBINVD on every pCPU a vCPU ran on).
    pub wbinvd_scope: cache::WbinvdScope,
}

impl Default for FlushSpec {
    fn default() -> FlushSpec {
        let f = cache::FlushCosts::default();
        FlushSpec {
            flush_line_cycles: Bounded(f.flush_line_cycles.0),
            flush_issue_cycles: Bounded(f.flush_issue_cycles.0),
            fence_cycles: Bounded(f.fence_cycles.0),
            wbinvd_base_cycles: Bounded(f.wbinvd_base_cycles.0),
            wbinvd_cycles_per_line: Bounded(f.wbinvd_cycles_per_line.0),
            wbinvd_cycles_per_dirty_line: Bounded(f.wbinvd_cycles_per_dirty_line.0),
            wbinvd_scope: cache::HierarchyConfig::default().wbinvd_scope,
        }
    }
}

impl Default for CpuSpec {
    fn default() -> CpuSpec {
        let d = cache::HierarchyConfig::default();
        let l2 = d.l2.unwrap_or(d.l1);
        CpuSpec {
            cores: Bounded(u64::from(d.cores)),
            clock_mhz: Bounded(d.core_mhz),
            l1_kib: Bounded(d.l1.size_kib),
            l1_ways: Bounded(d.l1.ways as u64),
            l2_kib: Bounded(if d.l2.is_some() { l2.size_kib } else { 0 }),
            l2_ways: Bounded(l2.ways as u64),
            llc_kib: Bounded(d.llc.level.size_kib),
            llc_ways: Bounded(d.llc.level.ways as u64),
            llc_inclusive: d.llc.inclusive,
            ddio_ways: Bounded(u64::from(d.llc.ddio_ways)),
            flush: FlushSpec::default(),
        }
    }
}

impl CpuSpec {
    /// The cache model's configuration: these sizes over the model's default latencies.
    pub fn hierarchy(&self) -> cache::HierarchyConfig {
        let d = cache::HierarchyConfig::default();
        let level = |mut l: cache::LevelConfig, kib: u64, ways: u64| {
            l.size_kib = kib;
            l.ways = ways as usize;
            l
        };
        let mut llc = d.llc;
        llc.level = level(llc.level, self.llc_kib.0, self.llc_ways.0);
        llc.inclusive = self.llc_inclusive;
        let mut h = cache::HierarchyConfig {
            cores: self.cores.0 as u16,
            core_mhz: self.clock_mhz.0,
            l1: level(d.l1, self.l1_kib.0, self.l1_ways.0),
            l2: match (self.l2_kib.0, d.l2) {
                (0, _) | (_, None) => None,
                (kib, Some(l2)) => Some(level(l2, kib, self.l2_ways.0)),
            },
            llc,
            flush: cache::FlushCosts {
                flush_line_cycles: Cycles(self.flush.flush_line_cycles.0),
                flush_issue_cycles: Cycles(self.flush.flush_issue_cycles.0),
                fence_cycles: Cycles(self.flush.fence_cycles.0),
                wbinvd_base_cycles: Cycles(self.flush.wbinvd_base_cycles.0),
                wbinvd_cycles_per_line: Cycles(self.flush.wbinvd_cycles_per_line.0),
                wbinvd_cycles_per_dirty_line: Cycles(self.flush.wbinvd_cycles_per_dirty_line.0),
            },
            wbinvd_scope: self.flush.wbinvd_scope,
            ..d
        };
        h.llc.ddio_ways = self.ddio_ways.0 as u32;
        h
    }
}

/// A PCIe link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PcieSpec {
    /// Generation, 1 to 6.
    pub gen: GenNumber,
    /// Link width in lanes.
    pub lanes: Lanes,
    /// Max_Payload_Size in bytes.
    pub mps_bytes: PayloadSize,
    /// Max_Read_Request_Size in bytes.
    pub mrrs_bytes: PayloadSize,
    /// Transmit-to-receive delay of a port pair beyond serialisation, in ns.
    pub port_delay_ns: Nanos,
    /// Devices append an ECRC digest (TD = 1) to their requests.
    pub ecrc: bool,
    /// A receiver sends one Ack DLLP per this many TLPs received.
    pub ack_every_tlps: Bounded<1, 1024>,
    /// A root port sends one UpdateFC DLLP per this many TLPs' credits freed (sooner when the
    /// device could otherwise run out).
    pub update_fc_every_tlps: Bounded<1, 1024>,
}

impl Default for PcieSpec {
    fn default() -> PcieSpec {
        PcieSpec {
            gen: GenNumber(3),
            lanes: Lanes(8),
            mps_bytes: PayloadSize(256),
            mrrs_bytes: PayloadSize(512),
            // cocotbext-pcie `SimPort`: 5 ns per port, two ports per link traversal.
            port_delay_ns: Nanos::new(10.0),
            ecrc: false,
            ack_every_tlps: Bounded(pcie::DllpPolicy::default().ack_every.into()),
            update_fc_every_tlps: Bounded(pcie::DllpPolicy::default().update_fc_every.into()),
        }
    }
}

/// The root complex.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RootComplexSpec {
    /// Clock of the root complex's request and completion pipelines, in MHz.
    pub clock_mhz: Bounded<1, 100_000>,
    /// Cycles from a request arriving at the root port to it reaching the IOMMU.
    pub request_latency_cycles: Bounded<0, 1_000_000>,
    /// Cycles from read data returning from memory to the first completion leaving.
    pub completion_latency_cycles: Bounded<0, 1_000_000>,
    /// Read Completion Boundary in bytes, 64 or 128.
    pub rcb_bytes: RcbBytes,
    /// The ingress pipeline accepts one TLP per this many cycles (its throughput limit).
    pub accept_interval_cycles: Bounded<0, 1_000_000>,
    /// Cycles from a CPU's uncached store to the MMIO write leaving the root port.
    pub mmio_latency_cycles: Bounded<0, 1_000_000>,
    /// Reads each root port may have outstanding towards memory (0 = no limit); while
    /// they are in use, later reads wait and posted writes pass them.
    pub max_outstanding_reads: Bounded<0, 4096>,
    /// The platform honours the No Snoop attribute (a request with NS set, not forced
    /// snooped by the IOMMU, bypasses the caches). False: every DMA is snooped.
    pub honours_no_snoop: bool,
    /// Flow-control credits each root port advertises for its device's requests.
    pub credits: CreditsSpec,
}

/// Receive-buffer credits a root port advertises (PCIe Base 6.0 §2.6.1); 0 means infinite.
/// Header credits are one per TLP, data credits 16 bytes each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CreditsSpec {
    /// PH: posted request headers (memory writes).
    pub posted_header: Bounded<0, 127>,
    /// PD: posted data, 16-byte units.
    pub posted_data: Bounded<0, 2047>,
    /// NPH: non-posted request headers (reads).
    pub non_posted_header: Bounded<0, 127>,
    /// NPD: non-posted data, 16-byte units.
    pub non_posted_data: Bounded<0, 2047>,
}

impl Default for CreditsSpec {
    /// An assumption, not a measurement: 64 headers and 16 KiB of posted data, enough that
    /// credits do not limit a single Gen5 x16 stream with the default latencies.
    fn default() -> CreditsSpec {
        CreditsSpec {
            posted_header: Bounded(64),
            posted_data: Bounded(1024),
            non_posted_header: Bounded(64),
            non_posted_data: Bounded(64),
        }
    }
}

impl CreditsSpec {
    /// The advertisement; Endpoints' infinite Completion credits are not the port's to give.
    pub fn credits(&self) -> pcie::Credits {
        let mut c = pcie::Credits::INFINITE;
        c.posted = pcie::ClassCredits {
            header: self.posted_header.0 as u32,
            data: self.posted_data.0 as u32,
        };
        c.non_posted = pcie::ClassCredits {
            header: self.non_posted_header.0 as u32,
            data: self.non_posted_data.0 as u32,
        };
        c
    }
}

impl Default for RootComplexSpec {
    fn default() -> RootComplexSpec {
        // An assumption, not a measurement: 50 ns each way through a 1 GHz root complex.
        RootComplexSpec {
            clock_mhz: Bounded(1_000),
            request_latency_cycles: Bounded(50),
            completion_latency_cycles: Bounded(50),
            rcb_bytes: RcbBytes(64),
            accept_interval_cycles: Bounded(1),
            // An assumption, not a measurement: 100 ns from store to root port.
            mmio_latency_cycles: Bounded(100),
            max_outstanding_reads: Bounded(0),
            honours_no_snoop: true,
            credits: CreditsSpec::default(),
        }
    }
}

/// Which IOMMU sits between the root complex and memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum IommuSpec {
    /// No IOMMU: device addresses are physical addresses.
    None {
        /// Time a request spends where an IOMMU would sit, in ns.
        #[serde(default)]
        latency_ns: Nanos,
    },
    /// An Intel VT-d remapping unit.
    Vtd(Box<super::iommu::VtdSpec>),
    /// An AMD IOMMU.
    Amdvi(Box<super::amdvi::AmdviSpec>),
}

impl Default for IommuSpec {
    fn default() -> IommuSpec {
        IommuSpec::None {
            latency_ns: Nanos::default(),
        }
    }
}

impl Default for Nanos {
    fn default() -> Nanos {
        Nanos::new(0.0)
    }
}

/// Main memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DramSpec {
    /// Access latency after the transfer, in ns.
    pub latency_ns: Nanos,
    /// Channel bandwidth in MB/s (10^6 bytes per second).
    pub bandwidth_mbps: Bounded<1, 10_000_000>,
}

impl Default for DramSpec {
    fn default() -> DramSpec {
        DramSpec {
            latency_ns: Nanos::new(cache::dram::DEFAULT_LATENCY.as_ns_f64()),
            bandwidth_mbps: Bounded(cache::dram::DEFAULT_BANDWIDTH_MBPS),
        }
    }
}

/// A PCIe endpoint with a DMA engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// Name the workload refers to.
    pub name: String,
    /// Requester ID, "bb:dd.f".
    pub bdf: Bdf,
    /// Read requests the DMA engine may have outstanding (tags), 1 to 768: up to 256 use
    /// 8-bit tags, more need 10-bit tags, of which 768 are usable (PCIe Base 6.0 §2.2.6.2).
    #[serde(default = "default_read_tags")]
    pub read_tags: Bounded<1, 768>,
    /// A read with no completion for this long fails, in µs (PCIe Base 6.0 §2.8; the
    /// default range of the Completion Timeout Value is 50 µs to 50 ms, and 50 ms is used).
    #[serde(default = "default_completion_timeout_us")]
    pub completion_timeout_us: Bounded<1, 10_000_000>,
    /// Base address of BAR 0, where CPUs write doorbells; by default 0xfe00_0000 plus
    /// 1 MiB per device in scenario order.
    #[serde(default)]
    pub bar0: Option<HexAddr>,
    /// Receive-buffer credits the device advertises for CPU writes (MMIO) to it.
    #[serde(default = "default_device_credits")]
    pub rx_credits: CreditsSpec,
}

/// BAR 0 of the first device, when the scenario does not place it.
pub const DEFAULT_BAR0: u64 = 0xfe00_0000;
/// Distance between default BARs.
pub const DEFAULT_BAR_STRIDE: u64 = 0x10_0000;

/// An assumption, not a measurement: a small register-write buffer of 8 headers and 8 data
/// credits (128 bytes); reads of device registers are not modelled.
fn default_device_credits() -> CreditsSpec {
    CreditsSpec {
        posted_header: Bounded(8),
        posted_data: Bounded(8),
        non_posted_header: Bounded(8),
        non_posted_data: Bounded(8),
    }
}

fn default_read_tags() -> Bounded<1, 768> {
    Bounded(32)
}

fn default_completion_timeout_us() -> Bounded<1, 10_000_000> {
    Bounded(50_000)
}

/// Limits that end a run early; hitting one is reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunLimits {
    /// Simulated time after which the run stops, in µs (default one second).
    pub max_sim_time_us: Bounded<1, 3_600_000_000>,
    /// Events after which the run stops.
    pub max_events: Bounded<1, 10_000_000_000>,
}

impl Default for RunLimits {
    fn default() -> RunLimits {
        RunLimits {
            max_sim_time_us: Bounded(1_000_000),
            max_events: Bounded(1_000_000_000),
        }
    }
}
