//! Invalidation: queued-invalidation descriptors (Intel VT-d Architecture Specification rev.
//! 4.1, §6.5.2) and the register-based interface (§11.4.7 CCMD, §11.4.8 IOTLB_REG/IVA).
//!
//! Descriptors are 128 bits (two QWs) in legacy mode and 256 bits when IQA.DW is set (scalable
//! mode; Linux `qi_shift`), in which case QW2 and QW3 of the types decoded here are reserved.
//! The type is `Type[3:0]` in bits 3:0 plus `Type[6:4]` in bits 11:9 (rev. 3.0+; QEMU leaves
//! 11:9 out of its PASID-IOTLB reserved mask for that reason). Any [`QiError`] is what makes
//! hardware set FSTS.IQE and stop fetching at the bad descriptor (§6.5.2.10).

use crate::regs::Bits;

/// Bytes per descriptor with IQA.DW = 0 (Linux `DMAR_IQ_SHIFT` = 4).
pub const DESCRIPTOR_BYTES_LEGACY: u64 = 16;
/// Bytes per descriptor with IQA.DW = 1, scalable mode (Linux `qi_shift` = 5 with SMTS).
pub const DESCRIPTOR_BYTES_SCALABLE: u64 = 32;

/// Descriptor type codes (§6.5.2; Linux `QI_*_TYPE`, QEMU `VTD_INV_DESC_*`).
pub mod type_code {
    /// Context-cache invalidate (Linux `QI_CC_TYPE`).
    pub const CONTEXT_CACHE: u8 = 0x1;
    /// IOTLB invalidate (Linux `QI_IOTLB_TYPE`).
    pub const IOTLB: u8 = 0x2;
    /// Device-TLB invalidate (Linux `QI_DIOTLB_TYPE`).
    pub const DEVICE_IOTLB: u8 = 0x3;
    /// Interrupt entry cache invalidate (Linux `QI_IEC_TYPE`).
    pub const IEC: u8 = 0x4;
    /// Invalidation wait (Linux `QI_IWD_TYPE`).
    pub const WAIT: u8 = 0x5;
    /// PASID-based IOTLB invalidate (Linux `QI_EIOTLB_TYPE`).
    pub const PASID_IOTLB: u8 = 0x6;
    /// PASID-cache invalidate (Linux `QI_PC_TYPE`).
    pub const PASID_CACHE: u8 = 0x7;
    /// PASID-based device-TLB invalidate (Linux `QI_DEIOTLB_TYPE`); not modelled.
    pub const PASID_DEVICE_IOTLB: u8 = 0x8;
    /// Page group response (Linux `QI_PGRP_RESP_TYPE`); not modelled.
    pub const PAGE_GROUP_RESPONSE: u8 = 0x9;
}

/// Field positions and reserved masks of the descriptors and registers, in one place.
mod field {
    use super::Bits;
    /// `Type[3:0]`, QW0 3:0 (QEMU `VTD_INV_DESC_TYPE`).
    pub const TYPE_LO: Bits = Bits::new(0, 4);
    /// `Type[6:4]`, QW0 11:9 (rev. 3.0+).
    pub const TYPE_HI: Bits = Bits::new(9, 3);
    /// G, granularity, QW0 5:4 (context-cache, IOTLB, PASID-IOTLB, PASID-cache).
    pub const G: Bits = Bits::new(4, 2);
    /// DID, QW0 31:16 (Linux `QI_CC_DID`, `QI_IOTLB_DID`, `QI_EIOTLB_DID`, `QI_PC_DID`).
    pub const DID: Bits = Bits::new(16, 16);
    /// Context-cache SID, QW0 47:32 (Linux `QI_CC_SID`).
    pub const CC_SID: Bits = Bits::new(32, 16);
    /// Context-cache FM, function mask, QW0 49:48 (Linux `QI_CC_FM`).
    pub const CC_FM: Bits = Bits::new(48, 2);
    /// IOTLB DW, drain writes, QW0 6 (Linux `QI_IOTLB_DW`).
    pub const IOTLB_DW: Bits = Bits::bit(6);
    /// IOTLB DR, drain reads, QW0 7 (Linux `QI_IOTLB_DR`).
    pub const IOTLB_DR: Bits = Bits::bit(7);
    /// PASID, QW0 51:32 (Linux `QI_EIOTLB_PASID`, `QI_PC_PASID`).
    pub const PASID: Bits = Bits::new(32, 20);
    /// AM, address mask, QW1 5:0 (Linux `QI_IOTLB_AM`, `QI_EIOTLB_AM`).
    pub const AM: Bits = Bits::new(0, 6);
    /// IH, invalidation hint, QW1 6 (Linux `QI_IOTLB_IH`).
    pub const IH: Bits = Bits::bit(6);
    /// ADDR, QW1 63:12 (Linux `QI_IOTLB_ADDR`).
    pub const ADDR_MASK: u64 = !0xfff;
    /// Wait IF, interrupt flag, QW0 4 (QEMU `VTD_INV_DESC_WAIT_IF`).
    pub const WAIT_IF: Bits = Bits::bit(4);
    /// Wait SW, status write, QW0 5 (Linux `QI_IWD_STATUS_WRITE`).
    pub const WAIT_SW: Bits = Bits::bit(5);
    /// Wait FN, fence, QW0 6 (Linux `QI_IWD_FENCE`).
    pub const WAIT_FN: Bits = Bits::bit(6);
    /// Wait PD, page-request drain, QW0 7 (Linux `QI_IWD_PRQ_DRAIN`).
    pub const WAIT_PD: Bits = Bits::bit(7);
    /// Wait status data, QW0 63:32 (Linux `QI_IWD_STATUS_DATA`).
    pub const WAIT_DATA: Bits = Bits::new(32, 32);
    /// Wait status address, QW1 63:2 (dword aligned; QEMU `VTD_INV_DESC_WAIT_RSVD_HI` = 3).
    pub const WAIT_ADDR_MASK: u64 = !0x3;

    /// Context-cache QW0 reserved: QEMU `VTD_INV_DESC_CC_RSVD` 0xfffc00000000ffc0 without
    /// the `Type[6:4]` bits 11:9.
    pub const CC_RSVD0: u64 = 0xfffc_0000_0000_f1c0;
    /// IOTLB QW0 reserved: QEMU `VTD_INV_DESC_IOTLB_RSVD_LO` 0xffffffff0000ff00 without 11:9.
    pub const IOTLB_RSVD0: u64 = 0xffff_ffff_0000_f100;
    /// IOTLB and PASID-IOTLB QW1 reserved, bits 11:7 (QEMU `VTD_INV_DESC_IOTLB_RSVD_HI`).
    pub const IOTLB_RSVD1: u64 = 0xf80;
    /// PASID-IOTLB and PASID-cache QW0 reserved (QEMU `VTD_INV_DESC_PIOTLB_RSVD_VAL0`,
    /// `VTD_INV_DESC_PASIDC_RSVD_VAL0`).
    pub const PASID_RSVD0: u64 = 0xfff0_0000_0000_f1c0;
    /// Wait QW0 reserved, bits 31:12 and 8: QEMU `VTD_INV_DESC_WAIT_RSVD_LO` 0xffffff80
    /// without PD (bit 7, Linux `QI_IWD_PRQ_DRAIN`) and 11:9.
    pub const WAIT_RSVD0: u64 = 0xffff_f100;
    /// Wait QW1 reserved, bits 1:0 (QEMU `VTD_INV_DESC_WAIT_RSVD_HI`).
    pub const WAIT_RSVD1: u64 = 0x3;

    /// CCMD ICC, invalidate context-cache, 63 (Linux `DMA_CCMD_ICC`).
    pub const CCMD_ICC: Bits = Bits::bit(63);
    /// CCMD CIRG, requested granularity, 62:61 (Linux `DMA_CCMD_*_INVL`).
    pub const CCMD_CIRG: Bits = Bits::new(61, 2);
    /// CCMD FM, 33:32 (Linux `DMA_CCMD_FM`).
    pub const CCMD_FM: Bits = Bits::new(32, 2);
    /// CCMD SID, 31:16 (Linux `DMA_CCMD_SID`).
    pub const CCMD_SID: Bits = Bits::new(16, 16);
    /// CCMD DID, 15:0 (Linux `DMA_CCMD_DID`).
    pub const CCMD_DID: Bits = Bits::new(0, 16);
    /// IOTLB_REG IVT, invalidate IOTLB, 63 (Linux `DMA_TLB_IVT`).
    pub const TLB_IVT: Bits = Bits::bit(63);
    /// IOTLB_REG IIRG, requested granularity, 61:60 (Linux `DMA_TLB_*_FLUSH`).
    pub const TLB_IIRG: Bits = Bits::new(60, 2);
    /// IOTLB_REG DR, 49 (Linux `DMA_TLB_READ_DRAIN`).
    pub const TLB_DR: Bits = Bits::bit(49);
    /// IOTLB_REG DW, 48 (Linux `DMA_TLB_WRITE_DRAIN`).
    pub const TLB_DW: Bits = Bits::bit(48);
    /// IOTLB_REG DID, 47:32 (Linux `DMA_TLB_DID`).
    pub const TLB_DID: Bits = Bits::new(32, 16);
}

/// What a context-cache invalidation covers (§6.5.2.1; CCMD.CIRG, descriptor G).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextScope {
    /// G = 1: every context-cache entry.
    Global,
    /// G = 2: entries of one domain.
    Domain {
        /// Domain ID.
        did: u16,
    },
    /// G = 3: entries of one source-id, with function bits masked by `fm`.
    Device {
        /// Domain ID.
        did: u16,
        /// Source-id (requester ID).
        sid: u16,
        /// Function mask: 0 none, 1 bit 2, 2 bits 2:1, 3 bits 2:0 of the SID.
        fm: u8,
    },
}

impl ContextScope {
    /// Does a context-cache entry of `(did, sid)` fall in this scope? Device scope matches on
    /// the source-id under the function mask only, as QEMU's `vtd_context_device_invalidate`.
    pub fn covers(&self, did: u16, sid: u16) -> bool {
        match *self {
            ContextScope::Global => true,
            ContextScope::Domain { did: d } => d == did,
            ContextScope::Device { sid: s, fm, .. } => {
                let masked: u16 = match fm & 3 {
                    0 => 0,
                    1 => 0b100,
                    2 => 0b110,
                    _ => 0b111,
                };
                (s ^ sid) & !masked == 0
            }
        }
    }
}

/// What an IOTLB invalidation covers (§6.5.2.3; IOTLB_REG.IIRG, descriptor G).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IotlbScope {
    /// G = 1: every IOTLB entry.
    Global,
    /// G = 2: entries of one domain.
    Domain {
        /// Domain ID.
        did: u16,
    },
    /// G = 3: 2^am 4 KiB pages from `addr` of one domain.
    Page {
        /// Domain ID.
        did: u16,
        /// Address (4 KiB aligned; bits below 12 + am are ignored).
        addr: u64,
        /// Address mask: 2^am pages.
        am: u8,
        /// Invalidation hint: only leaf entries changed (paging-structure caches may stay).
        ih: bool,
    },
}

/// Whether a cached page `[iova & !(page_bytes − 1), + page_bytes)` overlaps the 2^(12+am)
/// byte block holding `addr`. `page_bytes` that is not a power of two counts as 4 KiB.
fn page_overlaps(addr: u64, am: u8, iova: u64, page_bytes: u64) -> bool {
    let span = 1u128 << (12 + u32::from(am.min(63)));
    let inv_base = u128::from(addr) & !(span - 1);
    let pb = if page_bytes.is_power_of_two() {
        u128::from(page_bytes)
    } else {
        4096
    };
    let base = u128::from(iova) & !(pb - 1);
    base < inv_base + span && inv_base < base + pb
}

impl IotlbScope {
    /// Does an entry for (did, 4K-aligned iova, page size bytes) fall in this scope? Page scope
    /// covers `[addr & !(2^(12+am) − 1), + 2^(12+am))` and hits any cached page that overlaps
    /// it, so a 2 MiB entry falls to a 4 KiB invalidation inside it (QEMU
    /// `vtd_hash_remove_by_page`). IH does not narrow the IOTLB part.
    pub fn covers(&self, did: u16, iova: u64, page_bytes: u64) -> bool {
        match *self {
            IotlbScope::Global => true,
            IotlbScope::Domain { did: d } => d == did,
            IotlbScope::Page {
                did: d, addr, am, ..
            } => d == did && page_overlaps(addr, am, iova, page_bytes),
        }
    }
}

/// What a PASID-based IOTLB invalidation covers (§6.5.2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasidIotlbScope {
    /// G = 2: every entry of one (domain, PASID).
    Pasid {
        /// Domain ID.
        did: u16,
        /// PASID (20 bits).
        pasid: u32,
    },
    /// G = 3: 2^am 4 KiB pages from `addr` of one (domain, PASID).
    Page {
        /// Domain ID.
        did: u16,
        /// PASID (20 bits).
        pasid: u32,
        /// Address (4 KiB aligned).
        addr: u64,
        /// Address mask: 2^am pages.
        am: u8,
        /// Invalidation hint.
        ih: bool,
    },
}

impl PasidIotlbScope {
    /// Does an entry for (did, pasid, iova, page size bytes) fall in this scope? Pages as in
    /// [`IotlbScope::covers`].
    pub fn covers(&self, did: u16, pasid: u32, iova: u64, page_bytes: u64) -> bool {
        match *self {
            PasidIotlbScope::Pasid { did: d, pasid: p } => d == did && p == pasid,
            PasidIotlbScope::Page {
                did: d,
                pasid: p,
                addr,
                am,
                ..
            } => d == did && p == pasid && page_overlaps(addr, am, iova, page_bytes),
        }
    }
}

/// What a PASID-cache invalidation covers (§6.5.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasidCacheScope {
    /// G = 0: every PASID of one domain.
    Domain {
        /// Domain ID.
        did: u16,
    },
    /// G = 1: one PASID of one domain.
    Pasid {
        /// Domain ID.
        did: u16,
        /// PASID (20 bits).
        pasid: u32,
    },
    /// G = 3: every PASID-cache entry.
    Global,
}

/// One invalidation-queue descriptor (§6.5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvDescriptor {
    /// Type 1, context-cache invalidate.
    ContextCache(ContextScope),
    /// Type 2, IOTLB invalidate.
    Iotlb {
        /// What it covers.
        scope: IotlbScope,
        /// DR: drain reads before completing.
        drain_reads: bool,
        /// DW: drain writes before completing.
        drain_writes: bool,
    },
    /// Type 6, PASID-based IOTLB invalidate.
    PasidIotlb(PasidIotlbScope),
    /// Type 7, PASID-cache invalidate.
    PasidCache(PasidCacheScope),
    /// Type 5, invalidation wait: completes after every earlier descriptor.
    Wait {
        /// IF: set ICS.IWC and raise the invalidation completion event.
        interrupt: bool,
        /// SW: write `data` (32 bits) to `addr` (dword aligned) on completion.
        status: Option<(u64, u32)>,
        /// FN: later descriptors wait for this one.
        fence: bool,
        /// PD: also drain page requests.
        page_drain: bool,
    },
    /// Type 3, device-TLB invalidate, carried undecoded.
    DeviceIotlb {
        /// QW0, QW1.
        raw: [u64; 2],
    },
    /// Type 4, interrupt entry cache invalidate, carried undecoded.
    InterruptEntryCache {
        /// QW0, QW1.
        raw: [u64; 2],
    },
}

/// Why a descriptor or register value is invalid. Every variant is an invalidation queue error
/// in hardware: FSTS.IQE is set and the queue head stays on the descriptor (§6.5.2.10).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QiError {
    /// `Type[6:0]` names no descriptor.
    #[error("descriptor type {0:#x} is reserved (§6.5.2)")]
    UnknownType(u8),
    /// A descriptor type that exists but that snoopsim does not model.
    #[error("descriptor type {type_code:#x} ({name}) is not modelled")]
    Unmodelled {
        /// The type code.
        type_code: u8,
        /// Its name.
        name: &'static str,
    },
    /// A reserved bit is set.
    #[error("{descriptor} descriptor: reserved bits {bits:#x} are set (§6.5.2)")]
    Reserved {
        /// Which descriptor and QW.
        descriptor: &'static str,
        /// The offending bits, in place.
        bits: u64,
    },
    /// The granularity field holds a reserved encoding.
    #[error("{descriptor}: granularity {granularity} is reserved (§6.5.2)")]
    ReservedGranularity {
        /// Which descriptor or register.
        descriptor: &'static str,
        /// The G / CIRG / IIRG value.
        granularity: u8,
    },
    /// A descriptor is 2 QWs (128-bit) or 4 QWs (256-bit).
    #[error("a descriptor is 2 or 4 quadwords, not {0}")]
    Length(usize),
    /// A page-selective IOTLB_REG value was decoded without its IVA register.
    #[error("page-selective IOTLB_REG invalidation takes its address from IVA")]
    NeedsIva,
}

fn reserved(descriptor: &'static str, word: u64, mask: u64) -> Result<(), QiError> {
    match word & mask {
        0 => Ok(()),
        bits => Err(QiError::Reserved { descriptor, bits }),
    }
}

fn bad_g(descriptor: &'static str, g: u64) -> QiError {
    QiError::ReservedGranularity {
        descriptor,
        granularity: g as u8,
    }
}

fn decode_cc(q0: u64, q1: u64) -> Result<InvDescriptor, QiError> {
    reserved("context-cache QW0", q0, field::CC_RSVD0)?;
    reserved("context-cache QW1", q1, u64::MAX)?;
    let did = field::DID.get(q0) as u16;
    Ok(InvDescriptor::ContextCache(match field::G.get(q0) {
        1 => ContextScope::Global,
        2 => ContextScope::Domain { did },
        3 => ContextScope::Device {
            did,
            sid: field::CC_SID.get(q0) as u16,
            fm: field::CC_FM.get(q0) as u8,
        },
        g => return Err(bad_g("context-cache", g)),
    }))
}

fn decode_iotlb(q0: u64, q1: u64) -> Result<InvDescriptor, QiError> {
    reserved("IOTLB QW0", q0, field::IOTLB_RSVD0)?;
    reserved("IOTLB QW1", q1, field::IOTLB_RSVD1)?;
    let did = field::DID.get(q0) as u16;
    let scope = match field::G.get(q0) {
        1 => IotlbScope::Global,
        2 => IotlbScope::Domain { did },
        3 => IotlbScope::Page {
            did,
            addr: q1 & field::ADDR_MASK,
            am: field::AM.get(q1) as u8,
            ih: field::IH.flag(q1),
        },
        g => return Err(bad_g("IOTLB", g)),
    };
    Ok(InvDescriptor::Iotlb {
        scope,
        drain_reads: field::IOTLB_DR.flag(q0),
        drain_writes: field::IOTLB_DW.flag(q0),
    })
}

fn decode_piotlb(q0: u64, q1: u64) -> Result<InvDescriptor, QiError> {
    reserved("PASID-IOTLB QW0", q0, field::PASID_RSVD0)?;
    reserved("PASID-IOTLB QW1", q1, field::IOTLB_RSVD1)?;
    let did = field::DID.get(q0) as u16;
    let pasid = field::PASID.get(q0) as u32;
    Ok(InvDescriptor::PasidIotlb(match field::G.get(q0) {
        2 => PasidIotlbScope::Pasid { did, pasid },
        3 => PasidIotlbScope::Page {
            did,
            pasid,
            addr: q1 & field::ADDR_MASK,
            am: field::AM.get(q1) as u8,
            ih: field::IH.flag(q1),
        },
        g => return Err(bad_g("PASID-IOTLB", g)),
    }))
}

fn decode_pc(q0: u64, q1: u64) -> Result<InvDescriptor, QiError> {
    reserved("PASID-cache QW0", q0, field::PASID_RSVD0)?;
    reserved("PASID-cache QW1", q1, u64::MAX)?;
    let did = field::DID.get(q0) as u16;
    Ok(InvDescriptor::PasidCache(match field::G.get(q0) {
        0 => PasidCacheScope::Domain { did },
        1 => PasidCacheScope::Pasid {
            did,
            pasid: field::PASID.get(q0) as u32,
        },
        3 => PasidCacheScope::Global,
        g => return Err(bad_g("PASID-cache", g)),
    }))
}

fn decode_wait(q0: u64, q1: u64) -> Result<InvDescriptor, QiError> {
    reserved("invalidation wait QW0", q0, field::WAIT_RSVD0)?;
    reserved("invalidation wait QW1", q1, field::WAIT_RSVD1)?;
    Ok(InvDescriptor::Wait {
        interrupt: field::WAIT_IF.flag(q0),
        status: field::WAIT_SW
            .flag(q0)
            .then(|| (q1 & field::WAIT_ADDR_MASK, field::WAIT_DATA.get(q0) as u32)),
        fence: field::WAIT_FN.flag(q0),
        page_drain: field::WAIT_PD.flag(q0),
    })
}

impl InvDescriptor {
    /// Decodes 2 QWs (128-bit descriptor) or 4 (256-bit, IQA.DW = 1: QW2 and QW3 must be 0).
    /// Checks the type, every reserved bit and every granularity. Fields a granularity does not
    /// use (DID of a global invalidation, ADDR of a domain one, wait status without SW) are
    /// ignored, as hardware ignores them.
    pub fn decode(qw: &[u64]) -> Result<Self, QiError> {
        let (q0, q1) = match *qw {
            [q0, q1] | [q0, q1, _, _] => (q0, q1),
            _ => return Err(QiError::Length(qw.len())),
        };
        let code = (field::TYPE_LO.get(q0) | field::TYPE_HI.get(q0) << 4) as u8;
        let upper = qw.get(2..).map_or(0, |r| r.iter().fold(0, |a, &w| a | w));
        let check_upper = || reserved("256-bit descriptor QW2/QW3", upper, u64::MAX);
        match code {
            type_code::CONTEXT_CACHE => check_upper().and_then(|()| decode_cc(q0, q1)),
            type_code::IOTLB => check_upper().and_then(|()| decode_iotlb(q0, q1)),
            type_code::DEVICE_IOTLB => {
                check_upper().map(|()| InvDescriptor::DeviceIotlb { raw: [q0, q1] })
            }
            type_code::IEC => {
                check_upper().map(|()| InvDescriptor::InterruptEntryCache { raw: [q0, q1] })
            }
            type_code::WAIT => check_upper().and_then(|()| decode_wait(q0, q1)),
            type_code::PASID_IOTLB => check_upper().and_then(|()| decode_piotlb(q0, q1)),
            type_code::PASID_CACHE => check_upper().and_then(|()| decode_pc(q0, q1)),
            type_code::PASID_DEVICE_IOTLB => Err(QiError::Unmodelled {
                type_code: code,
                name: "PASID-based device-TLB invalidate",
            }),
            type_code::PAGE_GROUP_RESPONSE => Err(QiError::Unmodelled {
                type_code: code,
                name: "page group response",
            }),
            _ => Err(QiError::UnknownType(code)),
        }
    }

    /// The 128-bit form, `[QW0, QW1]` (a 256-bit queue slot adds two zero QWs). Values wider
    /// than their field are truncated; the raw variants are returned as carried.
    pub fn encode(&self) -> [u64; 2] {
        let ty = Bits::new(0, 4).put(0, self.type_code().into());
        let g = |w: u64, v: u64| field::G.put(w, v);
        match *self {
            InvDescriptor::ContextCache(s) => [
                match s {
                    ContextScope::Global => g(ty, 1),
                    ContextScope::Domain { did } => field::DID.put(g(ty, 2), did.into()),
                    ContextScope::Device { did, sid, fm } => {
                        let w = field::DID.put(g(ty, 3), did.into());
                        field::CC_FM.put(field::CC_SID.put(w, sid.into()), fm.into())
                    }
                },
                0,
            ],
            InvDescriptor::Iotlb {
                scope,
                drain_reads,
                drain_writes,
            } => {
                let w = field::IOTLB_DR.set(ty, drain_reads);
                let w = field::IOTLB_DW.set(w, drain_writes);
                match scope {
                    IotlbScope::Global => [g(w, 1), 0],
                    IotlbScope::Domain { did } => [field::DID.put(g(w, 2), did.into()), 0],
                    IotlbScope::Page { did, addr, am, ih } => {
                        [field::DID.put(g(w, 3), did.into()), page_qw1(addr, am, ih)]
                    }
                }
            }
            InvDescriptor::PasidIotlb(s) => match s {
                PasidIotlbScope::Pasid { did, pasid } => [pasid_qw0(g(ty, 2), did, pasid), 0],
                PasidIotlbScope::Page {
                    did,
                    pasid,
                    addr,
                    am,
                    ih,
                } => [pasid_qw0(g(ty, 3), did, pasid), page_qw1(addr, am, ih)],
            },
            InvDescriptor::PasidCache(s) => [
                match s {
                    PasidCacheScope::Domain { did } => pasid_qw0(g(ty, 0), did, 0),
                    PasidCacheScope::Pasid { did, pasid } => pasid_qw0(g(ty, 1), did, pasid),
                    PasidCacheScope::Global => g(ty, 3),
                },
                0,
            ],
            InvDescriptor::Wait {
                interrupt,
                status,
                fence,
                page_drain,
            } => {
                let w = field::WAIT_IF.set(ty, interrupt);
                let w = field::WAIT_FN.set(w, fence);
                let w = field::WAIT_PD.set(w, page_drain);
                match status {
                    Some((addr, data)) => [
                        field::WAIT_DATA.put(field::WAIT_SW.set(w, true), data.into()),
                        addr & field::WAIT_ADDR_MASK,
                    ],
                    None => [w, 0],
                }
            }
            InvDescriptor::DeviceIotlb { raw } | InvDescriptor::InterruptEntryCache { raw } => raw,
        }
    }

    /// The descriptor's type code (see [`type_code`]).
    pub fn type_code(&self) -> u8 {
        match self {
            InvDescriptor::ContextCache(_) => type_code::CONTEXT_CACHE,
            InvDescriptor::Iotlb { .. } => type_code::IOTLB,
            InvDescriptor::DeviceIotlb { .. } => type_code::DEVICE_IOTLB,
            InvDescriptor::InterruptEntryCache { .. } => type_code::IEC,
            InvDescriptor::Wait { .. } => type_code::WAIT,
            InvDescriptor::PasidIotlb(_) => type_code::PASID_IOTLB,
            InvDescriptor::PasidCache(_) => type_code::PASID_CACHE,
        }
    }
}

fn page_qw1(addr: u64, am: u8, ih: bool) -> u64 {
    field::IH.set(field::AM.put(addr & field::ADDR_MASK, am.into()), ih)
}

fn pasid_qw0(w: u64, did: u16, pasid: u32) -> u64 {
    field::PASID.put(field::DID.put(w, did.into()), pasid.into())
}

/// Register-based context-cache invalidation (§11.4.7 CCMD): the scope software requested.
/// ICC, the read-only CAIG and reserved bits are not checked (hardware ignores writes to them).
pub fn decode_ccmd(v: u64) -> Result<ContextScope, QiError> {
    let did = field::CCMD_DID.get(v) as u16;
    Ok(match field::CCMD_CIRG.get(v) {
        1 => ContextScope::Global,
        2 => ContextScope::Domain { did },
        3 => ContextScope::Device {
            did,
            sid: field::CCMD_SID.get(v) as u16,
            fm: field::CCMD_FM.get(v) as u8,
        },
        g => return Err(bad_g("CCMD", g)),
    })
}

/// The CCMD value that requests `s`, with ICC set (Linux `__iommu_flush_context`).
pub fn encode_ccmd(s: ContextScope) -> u64 {
    let v = field::CCMD_ICC.set(0, true);
    match s {
        ContextScope::Global => field::CCMD_CIRG.put(v, 1),
        ContextScope::Domain { did } => field::CCMD_DID.put(field::CCMD_CIRG.put(v, 2), did.into()),
        ContextScope::Device { did, sid, fm } => {
            let v = field::CCMD_DID.put(field::CCMD_CIRG.put(v, 3), did.into());
            field::CCMD_FM.put(field::CCMD_SID.put(v, sid.into()), fm.into())
        }
    }
}

/// Register-based IOTLB invalidation (§11.4.8 IOTLB_REG) for global and domain scope; page
/// scope takes addr/am/ih from the IVA register, so it is [`QiError::NeedsIva`] here (use
/// [`decode_iotlb_reg_with_iva`]).
pub fn decode_iotlb_reg(v: u64) -> Result<IotlbScope, QiError> {
    match field::TLB_IIRG.get(v) {
        3 => Err(QiError::NeedsIva),
        _ => decode_iotlb_reg_with_iva(v, 0),
    }
}

/// Register-based IOTLB invalidation with the IVA register's value (ADDR 63:12, IH 6,
/// AM 5:0; QEMU `VTD_IVA_ADDR`, `VTD_IVA_AM`). IVT and DR/DW are not part of the scope
/// (see [`iotlb_reg_drains`]).
pub fn decode_iotlb_reg_with_iva(v: u64, iva: u64) -> Result<IotlbScope, QiError> {
    let did = field::TLB_DID.get(v) as u16;
    Ok(match field::TLB_IIRG.get(v) {
        1 => IotlbScope::Global,
        2 => IotlbScope::Domain { did },
        3 => IotlbScope::Page {
            did,
            addr: iva & field::ADDR_MASK,
            am: field::AM.get(iva) as u8,
            ih: field::IH.flag(iva),
        },
        g => return Err(bad_g("IOTLB_REG", g)),
    })
}

/// IOTLB_REG's drain requests: `(DR, DW)`.
pub fn iotlb_reg_drains(v: u64) -> (bool, bool) {
    (field::TLB_DR.flag(v), field::TLB_DW.flag(v))
}

/// The `(IOTLB_REG, IVA)` values that request `s`, IVT set (Linux `__iommu_flush_iotlb`);
/// IVA is 0 unless the scope is a page range.
pub fn encode_iotlb_reg(s: IotlbScope) -> (u64, u64) {
    let v = field::TLB_IVT.set(0, true);
    match s {
        IotlbScope::Global => (field::TLB_IIRG.put(v, 1), 0),
        IotlbScope::Domain { did } => {
            (field::TLB_DID.put(field::TLB_IIRG.put(v, 2), did.into()), 0)
        }
        IotlbScope::Page { did, addr, am, ih } => (
            field::TLB_DID.put(field::TLB_IIRG.put(v, 3), did.into()),
            page_qw1(addr, am, ih),
        ),
    }
}
