//! The workload half of the scenario format: what devices (and CPUs) do.

use super::spec::MAX_TRANSFER_BYTES;
use super::values::{Bounded, HexAddr, Nanos};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most payload bytes one variant's workload may move: 4 GiB. At the smallest MPS that is
/// 32 Mi TLPs, a few minutes of simulation; anything larger could never finish usefully.
pub const MAX_WORKLOAD_BYTES: u64 = 4 << 30;

/// What the devices and the CPUs do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Workload {
    /// Back-to-back DMA transfers from one device.
    Stream(StreamSpec),
    /// Explicit per-device and per-CPU operation lists.
    Program(ProgramSpec),
    /// A driver and its device passing a buffer back and forth, expanded into program steps
    /// ([`super::templates`]).
    BufferExchange(super::templates::BufferExchangeSpec),
    /// Several workloads at once. Entries using the same device or CPU run one after
    /// another, in list order; the others run concurrently ([`super::templates`]).
    All(Vec<Workload>),
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
    /// The buffers form a ring of this many bytes from `base`: buffer n starts at
    /// `base + (n × stride) mod wrap_bytes`; `None`: they never wrap.
    pub wrap_bytes: Option<u64>,
    /// Attributes of every request.
    pub attrs: RequestAttrs,
}

impl StreamSpec {
    /// Device address of buffer `n`.
    pub fn address(&self, n: u64) -> u64 {
        let offset = n.wrapping_mul(self.stride_bytes);
        let offset = self.wrap_bytes.map_or(offset, |w| offset % w);
        self.base.0.wrapping_add(offset)
    }
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
    wrap_bytes: Option<Bounded<1, { 1 << 46 }>>,
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
        let wrap = r.wrap_bytes.map(|w| w.0);
        if let Some(w) = wrap {
            if stride == 0 || !w.is_multiple_of(stride) || r.transfer_bytes.0 > stride {
                return Err(format!(
                    "wrap_bytes {w} must be a multiple of the stride ({stride} bytes), and the \
                     transfer ({} bytes) no longer than the stride, so every buffer fits the ring",
                    r.transfer_bytes.0
                ));
            }
        }
        let buffers = wrap.map_or(u128::from(r.count.0), |w| {
            u128::from(r.count.0).min(u128::from(w / stride))
        });
        let span = u128::from(stride) * (buffers - 1) + u128::from(r.transfer_bytes.0);
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
            wrap_bytes: wrap,
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
            wrap_bytes: s.wrap_bytes.map(Bounded),
            attrs: s.attrs,
        }
    }
}

/// Explicit operation lists, one per device and one per CPU, each run in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawProgram", into = "RawProgram")]
pub struct ProgramSpec {
    /// Device name → its operations.
    pub devices: BTreeMap<String, Vec<DeviceOp>>,
    /// CPU name → its operations (the cache issue adds loads, stores and flushes).
    pub cpus: BTreeMap<String, Vec<CpuOp>>,
}

/// The program as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProgram {
    #[serde(default)]
    devices: BTreeMap<String, Vec<DeviceOp>>,
    #[serde(default)]
    cpus: BTreeMap<String, Vec<CpuOp>>,
}

impl TryFrom<RawProgram> for ProgramSpec {
    type Error = String;
    fn try_from(r: RawProgram) -> Result<ProgramSpec, String> {
        let total: u128 = r
            .devices
            .values()
            .flatten()
            .filter_map(|op| op.dma())
            .map(|d| u128::from(d.bytes.0))
            .sum();
        if total > u128::from(MAX_WORKLOAD_BYTES) {
            return Err(format!(
                "the program moves {total} bytes, more than the {MAX_WORKLOAD_BYTES} bytes \
                 (4 GiB) a run can simulate"
            ));
        }
        Ok(ProgramSpec {
            devices: r.devices,
            cpus: r.cpus,
        })
    }
}

impl From<ProgramSpec> for RawProgram {
    fn from(p: ProgramSpec) -> RawProgram {
        RawProgram {
            devices: p.devices,
            cpus: p.cpus,
        }
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
    /// The device starts no further transfer until a CPU has written to this register.
    WaitDoorbell(DoorbellOp),
}

impl DeviceOp {
    /// The transfer this operation describes, if it is one.
    pub fn dma(&self) -> Option<&DmaOp> {
        match self {
            DeviceOp::DmaWrite(d) | DeviceOp::DmaRead(d) => Some(d),
            DeviceOp::WaitDoorbell(_) => None,
        }
    }
}

/// A device register a doorbell write targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoorbellOp {
    /// Byte offset of the register in the device's BAR 0.
    pub offset: HexAddr,
}

/// One CPU operation. Range operations act line by line, one after the other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CpuOp {
    /// Loads of a range (the data is checked against the reference memory).
    Load(RangeOp),
    /// Stores of pseudo-random data over a range.
    Store(RangeOp),
    /// CLFLUSH of every line of a range.
    Clflush(RangeOp),
    /// CLFLUSHOPT of every line of a range (weakly ordered: needs a fence).
    Clflushopt(RangeOp),
    /// CLWB of every line of a range (weakly ordered: needs a fence).
    Clwb(RangeOp),
    /// SFENCE.
    Sfence(Empty),
    /// MFENCE.
    Mfence(Empty),
    /// WBINVD: write back and invalidate every cache.
    Wbinvd(Empty),
    /// WBNOINVD: write back every cache, keeping the lines.
    Wbnoinvd(Empty),
    /// An uncached store to a device register: a downstream posted memory write (also
    /// spelled `doorbell`).
    #[serde(alias = "doorbell")]
    MmioWrite(MmioWriteOp),
    /// Nothing for a while.
    Delay(DelayOp),
    /// The core sleeps until a device has completed at least `transfers` DMA transfers
    /// since the run started (the driver polling a completion ring or taking an interrupt).
    /// A write transfer completes when its last write is performed in memory, a read when
    /// its last completion reaches the device; a transfer that failed (blocked by the IOMMU,
    /// timed out) never completes, so a CPU waiting for it leaves the run `stalled`.
    Wait(WaitOp),
    /// The IOMMU driver maps a range into a domain: table writes through the caches, each
    /// flushed when the platform's `flush_table_writes` says so. No invalidation is implied
    /// (with CAP.CM = 1 software must follow with `iommu_invalidate`). Also spelled `map`.
    #[serde(alias = "map")]
    IommuMap(IommuMapOp),
    /// The IOMMU driver clears the leaf entries of a range; the invalidation that follows is
    /// `software.unmap_invalidation`'s (none by default: the program invalidates itself).
    /// Also spelled `unmap`.
    #[serde(alias = "unmap")]
    IommuUnmap(IommuUnmapOp),
    /// The IOMMU driver invalidates cached translations and waits for completion (queued:
    /// descriptors + invalidation wait; register-based: command + polling).
    IommuInvalidate(IommuInvalidateOp),
    /// `enforce_cache_coherency()` on a domain, called explicitly at this point (the v5.19
    /// domain API). On success later maps block No Snoop (VT-d second level: SNP on new
    /// leaves only; first level: PGSNP written into the attached devices' PASID entries,
    /// then a PASID-cache invalidation); the outcome is in the report's `host` section.
    Enforce(EnforceOp),
    /// The host attaches a device's requests without PASID to a domain: its context entry
    /// (VT-d legacy), RID_PASID entry (scalable) or DTE (AMD-Vi) is written, then the
    /// invalidation the kernel issues. A device already attached is detached first; the
    /// domain API may refuse the attach, and the device then stays detached.
    Attach(AttachOp),
    /// The host detaches a device (blocks its DMA): the entry is cleared, then the context /
    /// PASID-cache or DTE invalidation and the IOTLB of the device's old domain, with the
    /// wait.
    Detach(DetachOp),
    /// A raw rewrite of the leaf entry mapping `iova`: one CPU store of the 8-byte entry,
    /// CLFLUSHed per `flush`, with no invalidation (the program adds `iommu_invalidate`).
    /// Its snoop bits bypass the domain API on purpose.
    PteUpdate(PteUpdateOp),
}

/// `enforce`: `enforce_cache_coherency()` on a domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnforceOp {
    /// The domain's name.
    pub domain: String,
}

/// `attach`: a device's requests without PASID go to a domain from now on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachOp {
    /// The device's name.
    pub device: String,
    /// The domain's name.
    pub domain: String,
}

/// `detach`: the device's requests without PASID are blocked from now on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetachOp {
    /// The device's name.
    pub device: String,
}

/// `pte_update`: rewrite the leaf that maps `iova` in `domain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PteUpdateOp {
    /// The domain's name.
    pub domain: String,
    /// The IOVA of the page (aligned to the leaf's page size); it must be mapped.
    pub iova: HexAddr,
    /// The physical address the leaf points at from now on (aligned to the page size).
    pub pa: HexAddr,
    /// Read permission (VT-d second level R, AMD-Vi IR; a first-level leaf is readable
    /// when present, so it must stay true there); absent: as the leaf has it.
    #[serde(default)]
    pub read: Option<bool>,
    /// Write permission (VT-d W or first-level R/W, AMD-Vi IW); absent: as the leaf has it.
    #[serde(default)]
    pub write: Option<bool>,
    /// VT-d second-level SNP, written as given whatever the domain API would decide (with
    /// ECAP.SC = 0 it is a reserved bit: fault 0xC); absent: as the leaf has it.
    #[serde(default)]
    pub snp: Option<bool>,
    /// AMD-Vi FC, written as given; absent: as the leaf has it.
    #[serde(default)]
    pub fc: Option<bool>,
    /// CLFLUSH the entry after the store: `null` follows the platform's
    /// `flush_table_writes`; `false` models the forgotten flush on a non-coherent walker.
    #[serde(default)]
    pub flush: Option<bool>,
}

/// `iommu_map`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IommuMapOp {
    /// The domain's name.
    pub domain: String,
    /// What to map.
    pub mapping: super::iommu::MappingSpec,
    /// Overrides the platform's `flush_table_writes` for this operation (`false` models a
    /// driver path that forgets to flush on a non-coherent walker).
    #[serde(default)]
    pub flush: Option<bool>,
}

/// `iommu_unmap`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IommuUnmapOp {
    /// The domain's name.
    pub domain: String,
    /// First IOVA.
    pub iova: HexAddr,
    /// Bytes.
    pub bytes: Bounded<1, { 1 << 46 }>,
    /// The page size the range was mapped with.
    #[serde(default)]
    pub page: super::iommu::PageSpec,
    /// Overrides the platform's `flush_table_writes` for this operation.
    #[serde(default)]
    pub flush: Option<bool>,
}

/// Which caches an invalidation reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidateWhat {
    /// IOTLB (and paging-structure caches): global, domain (`domain`) or page-selective
    /// (`domain` + `iova` + `bytes`).
    Iotlb,
    /// Context cache: global, or domain-selective with `domain`.
    Context,
    /// PASID cache (scalable mode): global, per `domain`, or per `domain` + `pasid`.
    PasidCache,
    /// PASID-based IOTLB (scalable mode): `domain` + `pasid` (+ `iova` + `bytes`).
    PasidIotlb,
    /// Context cache, IOTLB (and PASID cache in scalable mode), globally.
    All,
}

/// `iommu_invalidate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IommuInvalidateOp {
    /// Which caches.
    pub what: InvalidateWhat,
    /// Domain-selective (and page-selective with `iova`).
    #[serde(default)]
    pub domain: Option<String>,
    /// Page-selective: the first IOVA.
    #[serde(default)]
    pub iova: Option<HexAddr>,
    /// Page-selective: bytes (rounded up to a power-of-two number of pages, AM).
    #[serde(default)]
    pub bytes: Option<Bounded<1, { 1 << 46 }>>,
    /// PASID-selective.
    #[serde(default)]
    pub pasid: Option<Bounded<0, 0xf_ffff>>,
    /// IH: only leaf entries changed, keep the paging-structure caches.
    #[serde(default)]
    pub leaf_only: bool,
}

/// A physical address range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeOp {
    /// First byte.
    pub address: HexAddr,
    /// Bytes.
    pub bytes: Bounded<1, MAX_TRANSFER_BYTES>,
}

/// An operation without parameters: `{}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// An MMIO write (a doorbell, typically).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MmioWriteOp {
    /// The target device's name.
    pub device: String,
    /// Byte offset in the device's BAR 0.
    pub offset: HexAddr,
    /// The value written, little-endian.
    #[serde(default)]
    pub value: u64,
    /// Bytes written: 1, 2, 4 or 8.
    #[serde(default = "default_mmio_bytes")]
    pub bytes: Bounded<1, 8>,
}

fn default_mmio_bytes() -> Bounded<1, 8> {
    Bounded(4)
}

/// A pause in a CPU program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelayOp {
    /// How long, in ns.
    pub ns: Nanos,
}

/// `wait`: sleep until a device has completed this many transfers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitOp {
    /// The device's name.
    pub device: String,
    /// Transfers (descriptors) completed by the device since the run started, cumulative
    /// over the whole workload.
    pub transfers: Bounded<1, { u64::MAX }>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(extra: &str) -> Result<StreamSpec, String> {
        serde_json::from_str::<StreamSpec>(&format!(
            r#"{{"device": "d", "direction": "write", "transfer_bytes": 256, "count": 10,
                "base": "0x1000"{extra}}}"#
        ))
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_wrapped_stream_cycles_through_its_ring() {
        let s = stream(r#", "wrap_bytes": 1024"#).unwrap();
        let at: Vec<u64> = (0..6).map(|n| s.address(n)).collect();
        assert_eq!(at, [0x1000, 0x1100, 0x1200, 0x1300, 0x1000, 0x1100]);
        let s = stream("").unwrap();
        assert_eq!(s.address(9), 0x1000 + 9 * 256);
    }

    #[test]
    fn a_ring_must_hold_whole_buffers() {
        let e = stream(r#", "wrap_bytes": 1000"#).unwrap_err();
        assert!(e.contains("multiple of the stride"), "{e}");
        let e = stream(r#", "stride_bytes": 128, "wrap_bytes": 1024"#).unwrap_err();
        assert!(e.contains("no longer than the stride"), "{e}");
    }

    #[test]
    fn the_issue_s_operation_names_are_accepted_as_aliases() {
        let op: CpuOp =
            serde_json::from_str(r#"{"doorbell": {"device": "nic", "offset": "0x8"}}"#).unwrap();
        assert!(matches!(op, CpuOp::MmioWrite(ref w) if w.offset.0 == 8));
        // Written back under the canonical name.
        assert!(serde_json::to_string(&op)
            .unwrap()
            .starts_with(r#"{"mmio_write""#));
        let op: CpuOp =
            serde_json::from_str(r#"{"unmap": {"domain": "d", "iova": "0x1000", "bytes": 4096}}"#)
                .unwrap();
        assert!(matches!(op, CpuOp::IommuUnmap(_)));
    }
}
