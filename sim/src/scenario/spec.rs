//! The scenario file format: what a user writes.
//!
//! Every section is a struct with unit-bearing field names, a doc comment per field and a
//! default, and rejects unknown fields. Choices between kinds (an IOMMU vendor, a workload
//! template) are externally tagged — `{"stream": {...}}` — so that an error deep inside one
//! still carries its full JSON path. New sections and kinds can be added without breaking
//! existing files.

use super::values::{Bounded, GenNumber, HexAddr, Lanes, Nanos, PayloadSize, RcbBytes};
use model_core::Bdf;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most payload bytes one variant's workload may move: 4 GiB. At the smallest MPS that is
/// 32 Mi TLPs, a few minutes of simulation; anything larger could never finish usefully.
pub const MAX_WORKLOAD_BYTES: u64 = 4 << 30;
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
    /// The host software's choices (IOMMU domain API, VFIO, KVM); filled by later issues.
    #[serde(default)]
    pub software: Software,
    /// The PCIe endpoints.
    pub devices: Vec<DeviceSpec>,
    /// What runs.
    pub workload: Workload,
    /// When to stop a run that does not finish.
    #[serde(default)]
    pub limits: RunLimits,
    /// Variants: JSON path → values; the cross-product of all lists is run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<BTreeMap<String, Vec<serde_json::Value>>>,
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

/// The host software layer. Empty for now: the host-software issue adds IOMMU domains,
/// VFIO and KVM here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Software {}

/// A PCIe endpoint with a DMA engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// Name the workload refers to.
    pub name: String,
    /// Requester ID, "bb:dd.f".
    pub bdf: Bdf,
    /// Read requests the DMA engine may have outstanding (tags), 1 to 1024.
    #[serde(default = "default_read_tags")]
    pub read_tags: Bounded<1, 1024>,
    /// A read with no completion for this long fails, in µs (PCIe Base 6.0 §2.8; the
    /// default range of the Completion Timeout Value is 50 µs to 50 ms, and 50 ms is used).
    #[serde(default = "default_completion_timeout_us")]
    pub completion_timeout_us: Bounded<1, 10_000_000>,
}

fn default_completion_timeout_us() -> Bounded<1, 10_000_000> {
    Bounded(50_000)
}

/// Per-request attributes shared by every DMA form.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestAttrs {
    /// Attr[0] No Snoop.
    pub no_snoop: bool,
    /// Attr[1] Relaxed Ordering.
    pub relaxed_ordering: bool,
    /// Attr[2] ID-Based Ordering.
    pub id_based_ordering: bool,
    /// Traffic class, 0 to 7.
    pub tc: Bounded<0, 7>,
    /// Address Type: "untranslated" (the IOMMU translates) or "translated" (the device used
    /// ATS beforehand, PCIe Base 6.0 §10.2).
    pub at: AtSpec,
    /// PASID TLP prefix (PCIe Base 6.0 §6.20), or null.
    pub pasid: Option<PasidSpec>,
}

/// Address Type of a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AtSpec {
    /// AT = 00b.
    #[default]
    Untranslated,
    /// AT = 10b.
    Translated,
}

/// A PASID prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasidSpec {
    /// The 20-bit PASID.
    pub pasid: Bounded<0, 0xf_ffff>,
    /// Execute Requested.
    #[serde(default)]
    pub execute: bool,
    /// Privileged Mode Requested.
    #[serde(default)]
    pub privileged: bool,
}

impl RequestAttrs {
    /// The TLP attribute bits.
    pub fn attr(&self) -> pcie::Attr {
        pcie::Attr {
            no_snoop: self.no_snoop,
            relaxed_ordering: self.relaxed_ordering,
            id_based_ordering: self.id_based_ordering,
        }
    }

    /// The Address Type field.
    pub fn address_type(&self) -> pcie::tlp::AddressType {
        match self.at {
            AtSpec::Untranslated => pcie::tlp::AddressType::Untranslated,
            AtSpec::Translated => pcie::tlp::AddressType::Translated,
        }
    }

    /// The PASID prefix.
    pub fn prefix(&self) -> Option<pcie::tlp::PasidPrefix> {
        self.pasid.as_ref().map(|p| pcie::tlp::PasidPrefix {
            pasid: p.pasid.0 as u32,
            execute: p.execute,
            privileged: p.privileged,
        })
    }
}

fn default_read_tags() -> Bounded<1, 1024> {
    Bounded(32)
}

/// What the devices (and later the CPUs) do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Workload {
    /// Back-to-back DMA transfers from one device.
    Stream(StreamSpec),
    /// Explicit per-device operation lists.
    Program(ProgramSpec),
}

/// Which way a stream moves data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamDirection {
    /// Device → memory.
    Write,
    /// Memory → device.
    Read,
    /// Each buffer written, then read back, alternating.
    Mixed,
}

/// A stream of DMA transfers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawStream", into = "RawStream")]
pub struct StreamSpec {
    /// The device that moves data.
    pub device: String,
    /// Which way.
    pub direction: StreamDirection,
    /// Bytes per transfer.
    pub transfer_bytes: u64,
    /// Number of buffers (a mixed stream moves each twice).
    pub count: u64,
    /// Device address of the first buffer.
    pub base: HexAddr,
    /// Distance between buffers in bytes (defaults to the transfer size).
    pub stride_bytes: u64,
    /// Attributes of every request.
    pub attrs: RequestAttrs,
}

/// The stream as written, before the checks that involve several fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStream {
    device: String,
    direction: StreamDirection,
    transfer_bytes: Bounded<1, MAX_TRANSFER_BYTES>,
    count: Bounded<1, { u32::MAX as u64 }>,
    base: HexAddr,
    #[serde(default)]
    stride_bytes: Option<u64>,
    #[serde(default)]
    attrs: RequestAttrs,
}

impl TryFrom<RawStream> for StreamSpec {
    type Error = String;
    fn try_from(r: RawStream) -> Result<StreamSpec, String> {
        let passes = if r.direction == StreamDirection::Mixed {
            2
        } else {
            1
        };
        let total = u128::from(r.transfer_bytes.0) * u128::from(r.count.0) * passes;
        if total > u128::from(MAX_WORKLOAD_BYTES) {
            return Err(format!(
                "this stream moves {total} bytes (count × transfer_bytes{}), more than the \
                 {MAX_WORKLOAD_BYTES} bytes (4 GiB) a run can simulate: lower count or transfer_bytes",
                if passes == 2 { " × 2 for mixed" } else { "" }
            ));
        }
        let stride = r.stride_bytes.unwrap_or(r.transfer_bytes.0);
        let span = u128::from(stride) * u128::from(r.count.0 - 1) + u128::from(r.transfer_bytes.0);
        if u128::from(r.base.0) + span > 1u128 << 64 {
            return Err(format!(
                "the buffers run past the top of the 64-bit address space ({} + {span} bytes)",
                r.base
            ));
        }
        Ok(StreamSpec {
            device: r.device,
            direction: r.direction,
            transfer_bytes: r.transfer_bytes.0,
            count: r.count.0,
            base: r.base,
            stride_bytes: stride,
            attrs: r.attrs,
        })
    }
}

impl From<StreamSpec> for RawStream {
    fn from(s: StreamSpec) -> RawStream {
        RawStream {
            device: s.device,
            direction: s.direction,
            transfer_bytes: Bounded(s.transfer_bytes),
            count: Bounded(s.count),
            base: s.base,
            stride_bytes: Some(s.stride_bytes),
            attrs: s.attrs,
        }
    }
}

/// Explicit operation lists, one per device, each run in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawProgram", into = "RawProgram")]
pub struct ProgramSpec {
    /// Device name → its operations.
    pub devices: BTreeMap<String, Vec<DeviceOp>>,
}

/// The program as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProgram {
    devices: BTreeMap<String, Vec<DeviceOp>>,
}

impl TryFrom<RawProgram> for ProgramSpec {
    type Error = String;
    fn try_from(r: RawProgram) -> Result<ProgramSpec, String> {
        let total: u128 = r
            .devices
            .values()
            .flatten()
            .map(|op| u128::from(op.dma().bytes.0))
            .sum();
        if total > u128::from(MAX_WORKLOAD_BYTES) {
            return Err(format!(
                "the program moves {total} bytes, more than the {MAX_WORKLOAD_BYTES} bytes \
                 (4 GiB) a run can simulate"
            ));
        }
        Ok(ProgramSpec { devices: r.devices })
    }
}

impl From<ProgramSpec> for RawProgram {
    fn from(p: ProgramSpec) -> RawProgram {
        RawProgram { devices: p.devices }
    }
}

/// One device operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DeviceOp {
    /// The device writes `bytes` bytes of pseudo-random data at `address`.
    DmaWrite(DmaOp),
    /// The device reads `bytes` bytes at `address`.
    DmaRead(DmaOp),
}

impl DeviceOp {
    /// The transfer this operation describes.
    pub fn dma(&self) -> &DmaOp {
        match self {
            DeviceOp::DmaWrite(d) | DeviceOp::DmaRead(d) => d,
        }
    }
}

/// A DMA transfer's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DmaOp {
    /// Device (IOVA) address of the first byte.
    pub address: HexAddr,
    /// Bytes to move.
    pub bytes: Bounded<1, MAX_TRANSFER_BYTES>,
    /// Attributes of every request.
    #[serde(default)]
    pub attrs: RequestAttrs,
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
