//! Command buffer entries, 128 bits each (AMD IOMMU Specification pub. 48882 rev. 3.x, §2.4
//! "Commands"): opcode in bits 63:60, two opcode-dependent operands around it.
//!
//! [`Command::decode`] checks the opcode and every reserved bit; any [`CmdError`] is what
//! makes hardware log ILLEGAL_COMMAND_ERROR with the command's address and stop fetching
//! (CmdBufRun = 0) until software restarts the buffer (§2.4; Linux `init.c`
//! `amd_iommu_reset_cmd_buffer`: "resets the command buffer if the IOMMU stopped fetching
//! commands from it").
//!
//! Sources: Linux `amd_iommu_types.h` `CMD_*` (L-AMDT) and `iommu.c` `build_*` (L-AMD),
//! VirtualBox `iommu-amd.h` `CMD_*_T` and their `..._VALID_MASK`s (VBOX), FreeBSD
//! `amd_reg.h` `struct amdiommu_cmd_*` (F-AMD).

use crate::regs::bits::{flag, get, put};
use model_core::PhysAddr;

/// Command opcodes, bits 63:60 of the first quadword (§2.4; L-AMDT `CMD_*`, VBOX
/// `IOMMU_CMD_*`).
pub mod opcode {
    /// COMPLETION_WAIT (L-AMDT `CMD_COMPL_WAIT`).
    pub const COMPLETION_WAIT: u8 = 0x1;
    /// INVALIDATE_DEVTAB_ENTRY (L-AMDT `CMD_INV_DEV_ENTRY`).
    pub const INVALIDATE_DEVTAB_ENTRY: u8 = 0x2;
    /// INVALIDATE_IOMMU_PAGES (L-AMDT `CMD_INV_IOMMU_PAGES`).
    pub const INVALIDATE_IOMMU_PAGES: u8 = 0x3;
    /// INVALIDATE_IOTLB_PAGES (L-AMDT `CMD_INV_IOTLB_PAGES`).
    pub const INVALIDATE_IOTLB_PAGES: u8 = 0x4;
    /// INVALIDATE_INTERRUPT_TABLE (L-AMDT `CMD_INV_IRT`).
    pub const INVALIDATE_INTERRUPT_TABLE: u8 = 0x5;
    /// PREFETCH_IOMMU_PAGES (VBOX `IOMMU_CMD_PREFETCH_IOMMU_PAGES`).
    pub const PREFETCH_IOMMU_PAGES: u8 = 0x6;
    /// COMPLETE_PPR_REQUEST (L-AMDT `CMD_COMPLETE_PPR`).
    pub const COMPLETE_PPR_REQUEST: u8 = 0x7;
    /// INVALIDATE_IOMMU_ALL (L-AMDT `CMD_INV_ALL`).
    pub const INVALIDATE_IOMMU_ALL: u8 = 0x8;
    /// INSERT_GUEST_EVENT, vIOMMU only (F-AMD `AMDIOMMU_CMD_INSERT_GUEST_EVENT`); illegal here.
    pub const INSERT_GUEST_EVENT: u8 = 0x9;
    /// RESET_VMMIO, vIOMMU only (F-AMD `AMDIOMMU_CMD_RESET_VMMIO`); illegal here.
    pub const RESET_VMMIO: u8 = 0xa;
}

/// The "all pages" address of INVALIDATE_IOMMU_PAGES: with S = 1 it covers every address
/// (L-AMDT `CMD_INV_IOMMU_ALL_PAGES_ADDRESS` 0x7fffffffffffffff; bits 11:0 are not part of
/// the field, so the command carries 0x7fff_ffff_ffff_f000).
pub const ALL_PAGES_ADDRESS: u64 = 0x7fff_ffff_ffff_f000;

/// Why a command is illegal. Hardware logs ILLEGAL_COMMAND_ERROR and stops the buffer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdError {
    /// The opcode is not one this IOMMU implements.
    #[error("opcode {opcode:#x} is not a command this IOMMU implements (1..=8; 9 and 0xA are vIOMMU commands, the rest reserved)")]
    IllegalOpcode {
        /// Bits 63:60 of the first quadword.
        opcode: u8,
    },
    /// A reserved bit is set.
    #[error("{name}: reserved bits set, [{:#018x}, {:#018x}] (first, second quadword); the IOMMU rejects the command", .bits[0], .bits[1])]
    ReservedBitsSet {
        /// The command's name.
        name: &'static str,
        /// The reserved bits that are set, per quadword.
        bits: [u64; 2],
    },
}

/// One command (§2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// COMPLETION_WAIT: once all earlier commands are done, optionally store `data` at
    /// `addr` (S), raise an interrupt (I), and with F wait for earlier invalidations' device
    /// completions too.
    CompletionWait {
        /// S: the store address (8-byte aligned, bits 51:3) and the 64-bit data.
        store: Option<(PhysAddr, u64)>,
        /// I: set Status.ComWaitInt (and interrupt if Control.ComWaitIntEn).
        interrupt: bool,
        /// F: flush queue.
        flush_queue: bool,
    },
    /// INVALIDATE_DEVTAB_ENTRY: drop cached copies of one DTE.
    InvalidateDevtabEntry {
        /// DeviceID, bits 15:0.
        device_id: u16,
    },
    /// INVALIDATE_IOMMU_PAGES: drop cached translations of one domain.
    InvalidateIommuPages {
        /// DomainID, bits 47:32.
        domain_id: u16,
        /// PASID, bits 19:0 (meaningful with GN).
        pasid: u32,
        /// Address bits 63:12 (bits 127:76); bits 11:0 are ignored.
        address: u64,
        /// S, bit 64: the range is size-encoded in the address (see
        /// [`Command::invalidation_range`]).
        size: bool,
        /// PDE, bit 65: page-directory cache entries too.
        pde: bool,
        /// GN, bit 66: guest (GVA) rather than host translations.
        guest: bool,
    },
    /// INVALIDATE_IOTLB_PAGES (device IOTLB, ATS), kept raw: not modelled.
    InvalidateIotlbPages {
        /// The two quadwords.
        raw: [u64; 2],
    },
    /// INVALIDATE_INTERRUPT_TABLE.
    InvalidateInterruptTable {
        /// DeviceID, bits 15:0.
        device_id: u16,
    },
    /// PREFETCH_IOMMU_PAGES, kept raw: not modelled.
    PrefetchIommuPages {
        /// The two quadwords.
        raw: [u64; 2],
    },
    /// COMPLETE_PPR_REQUEST, kept raw: not modelled.
    CompletePprRequest {
        /// The two quadwords.
        raw: [u64; 2],
    },
    /// INVALIDATE_IOMMU_ALL: every cached DTE, translation and interrupt entry.
    InvalidateIommuAll,
}

/// Field positions and reserved masks (valid-mask complements from VBOX where it defines
/// them, else its structure layouts).
mod field {
    /// Opcode, bits 63:60 of QW0 (VBOX `CMD_GENERIC_T.u4Opcode`).
    pub const OPCODE: u64 = 0xf << 60;
    /// COMPLETION_WAIT S, QW0 bit 0 (L-AMDT `CMD_COMPL_WAIT_STORE_MASK`).
    pub const CW_S: u64 = 1 << 0;
    /// COMPLETION_WAIT I, QW0 bit 1 (L-AMDT `CMD_COMPL_WAIT_INT_MASK`).
    pub const CW_I: u64 = 1 << 1;
    /// COMPLETION_WAIT F, QW0 bit 2 (VBOX `u1Flush`).
    pub const CW_F: u64 = 1 << 2;
    /// COMPLETION_WAIT store address, QW0 bits 51:3 (VBOX `u29StoreAddrLo`/`u20StoreAddrHi`).
    pub const CW_ADDR: u64 = 0x000f_ffff_ffff_fff8;
    /// COMPLETION_WAIT reserved, QW0 59:52 (VBOX `IOMMU_CMD_COM_WAIT_QWORD_0_VALID_MASK`).
    pub const CW_RSVD0: u64 = 0x0ff0_0000_0000_0000;
    /// DeviceID, QW0 bits 15:0 (VBOX `u16DevId`).
    pub const DEVICE_ID: u64 = 0xffff;
    /// INVALIDATE_DEVTAB_ENTRY / INTERRUPT_TABLE reserved QW0 59:16 (VBOX
    /// `IOMMU_CMD_INV_DTE_QWORD_0_VALID_MASK` 0xf00000000000ffff); QW1 all reserved.
    pub const DEV_RSVD0: u64 = 0x0fff_ffff_ffff_0000;
    /// INVALIDATE_IOMMU_PAGES PASID, QW0 19:0 (VBOX `u20Pasid`).
    pub const PAGES_PASID: u64 = 0xf_ffff;
    /// INVALIDATE_IOMMU_PAGES DomainID, QW0 47:32 (L-AMD `build_inv_iommu_pages`:
    /// `data[1] |= domid`).
    pub const PAGES_DOMAIN: u64 = 0xffff << 32;
    /// INVALIDATE_IOMMU_PAGES reserved QW0 31:20 and 59:48 (VBOX valid mask
    /// 0xf000ffff000fffff).
    pub const PAGES_RSVD0: u64 = 0x0fff_0000_fff0_0000;
    /// S, QW1 bit 0 (L-AMDT `CMD_INV_IOMMU_PAGES_SIZE_MASK`).
    pub const PAGES_S: u64 = 1 << 0;
    /// PDE, QW1 bit 1 (L-AMDT `CMD_INV_IOMMU_PAGES_PDE_MASK`).
    pub const PAGES_PDE: u64 = 1 << 1;
    /// GN, QW1 bit 2 (L-AMDT `CMD_INV_IOMMU_PAGES_GN_MASK`).
    pub const PAGES_GN: u64 = 1 << 2;
    /// Address\[63:12\], QW1 63:12 (F-AMD `address:52 /* Address 63:12 */`).
    pub const PAGES_ADDR: u64 = !0xfff;
    /// INVALIDATE_IOMMU_PAGES reserved QW1 11:3 (VBOX valid mask 0xfffffffffffff007).
    pub const PAGES_RSVD1: u64 = 0xff8;
    /// INVALIDATE_IOTLB_PAGES reserved QW1 bits 65, 67, 75:70 (VBOX `CMD_INV_IOTLB_PAGES_T`
    /// `u1Rsvd0`, `u1Rsvd1`, `u6Rsvd0`); QW0 59:0 are all fields.
    pub const IOTLB_RSVD1: u64 = 0xfca;
    /// PREFETCH_IOMMU_PAGES reserved QW0 23:16, 59:52 (VBOX `CMD_PREF_IOMMU_PAGES_T`).
    pub const PREF_RSVD0: u64 = 0x0ff0_0000_00ff_0000;
    /// PREFETCH_IOMMU_PAGES reserved QW1 bits 65, 67, 75:69 (VBOX valid mask
    /// 0xfffffffffffff015).
    pub const PREF_RSVD1: u64 = 0xfea;
    /// COMPLETE_PPR_REQUEST reserved QW0 31:16, 59:52 (VBOX `CMD_COMPLETE_PPR_REQ_T`).
    pub const PPR_RSVD0: u64 = 0x0ff0_0000_ffff_0000;
    /// COMPLETE_PPR_REQUEST reserved QW1 65:64, 95:67, 127:112 (VBOX).
    pub const PPR_RSVD1: u64 = 0xffff_0000_ffff_fffb;
    /// INVALIDATE_IOMMU_ALL reserved QW0 59:0 (VBOX valid mask 0xf000000000000000).
    pub const ALL_RSVD0: u64 = !OPCODE;
}

/// Fails with the reserved bits of `qw` under `rsvd`, if any.
fn check(name: &'static str, qw: [u64; 2], rsvd: [u64; 2]) -> Result<(), CmdError> {
    let bits = [qw[0] & rsvd[0], qw[1] & rsvd[1]];
    if bits == [0, 0] {
        Ok(())
    } else {
        Err(CmdError::ReservedBitsSet { name, bits })
    }
}

impl Command {
    /// Decodes a command from its two quadwords (QW0 = bytes 0..8 of the entry). A
    /// COMPLETION_WAIT with S = 0 keeps neither its store address nor its data (they are
    /// not used and not checked), so it re-encodes with those fields zero.
    pub fn decode(qw: [u64; 2]) -> Result<Command, CmdError> {
        use field::*;
        let op = get(qw[0], OPCODE) as u8;
        match op {
            opcode::COMPLETION_WAIT => {
                check("COMPLETION_WAIT", qw, [CW_RSVD0, 0])?;
                let store = (qw[0] & CW_S != 0).then_some((PhysAddr(qw[0] & CW_ADDR), qw[1]));
                Ok(Command::CompletionWait {
                    store,
                    interrupt: qw[0] & CW_I != 0,
                    flush_queue: qw[0] & CW_F != 0,
                })
            }
            opcode::INVALIDATE_DEVTAB_ENTRY => {
                check("INVALIDATE_DEVTAB_ENTRY", qw, [DEV_RSVD0, u64::MAX])?;
                Ok(Command::InvalidateDevtabEntry {
                    device_id: get(qw[0], DEVICE_ID) as u16,
                })
            }
            opcode::INVALIDATE_IOMMU_PAGES => {
                check("INVALIDATE_IOMMU_PAGES", qw, [PAGES_RSVD0, PAGES_RSVD1])?;
                Ok(Command::InvalidateIommuPages {
                    domain_id: get(qw[0], PAGES_DOMAIN) as u16,
                    pasid: get(qw[0], PAGES_PASID) as u32,
                    address: qw[1] & PAGES_ADDR,
                    size: qw[1] & PAGES_S != 0,
                    pde: qw[1] & PAGES_PDE != 0,
                    guest: qw[1] & PAGES_GN != 0,
                })
            }
            opcode::INVALIDATE_IOTLB_PAGES => {
                check("INVALIDATE_IOTLB_PAGES", qw, [0, IOTLB_RSVD1])?;
                Ok(Command::InvalidateIotlbPages { raw: qw })
            }
            opcode::INVALIDATE_INTERRUPT_TABLE => {
                check("INVALIDATE_INTERRUPT_TABLE", qw, [DEV_RSVD0, u64::MAX])?;
                Ok(Command::InvalidateInterruptTable {
                    device_id: get(qw[0], DEVICE_ID) as u16,
                })
            }
            opcode::PREFETCH_IOMMU_PAGES => {
                check("PREFETCH_IOMMU_PAGES", qw, [PREF_RSVD0, PREF_RSVD1])?;
                Ok(Command::PrefetchIommuPages { raw: qw })
            }
            opcode::COMPLETE_PPR_REQUEST => {
                check("COMPLETE_PPR_REQUEST", qw, [PPR_RSVD0, PPR_RSVD1])?;
                Ok(Command::CompletePprRequest { raw: qw })
            }
            opcode::INVALIDATE_IOMMU_ALL => {
                check("INVALIDATE_IOMMU_ALL", qw, [ALL_RSVD0, u64::MAX])?;
                Ok(Command::InvalidateIommuAll)
            }
            _ => Err(CmdError::IllegalOpcode { opcode: op }),
        }
    }

    /// The opcode (bits 63:60).
    pub fn opcode(&self) -> u8 {
        match self {
            Command::CompletionWait { .. } => opcode::COMPLETION_WAIT,
            Command::InvalidateDevtabEntry { .. } => opcode::INVALIDATE_DEVTAB_ENTRY,
            Command::InvalidateIommuPages { .. } => opcode::INVALIDATE_IOMMU_PAGES,
            Command::InvalidateIotlbPages { .. } => opcode::INVALIDATE_IOTLB_PAGES,
            Command::InvalidateInterruptTable { .. } => opcode::INVALIDATE_INTERRUPT_TABLE,
            Command::PrefetchIommuPages { .. } => opcode::PREFETCH_IOMMU_PAGES,
            Command::CompletePprRequest { .. } => opcode::COMPLETE_PPR_REQUEST,
            Command::InvalidateIommuAll => opcode::INVALIDATE_IOMMU_ALL,
        }
    }

    /// The command's name as the specification spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Command::CompletionWait { .. } => "COMPLETION_WAIT",
            Command::InvalidateDevtabEntry { .. } => "INVALIDATE_DEVTAB_ENTRY",
            Command::InvalidateIommuPages { .. } => "INVALIDATE_IOMMU_PAGES",
            Command::InvalidateIotlbPages { .. } => "INVALIDATE_IOTLB_PAGES",
            Command::InvalidateInterruptTable { .. } => "INVALIDATE_INTERRUPT_TABLE",
            Command::PrefetchIommuPages { .. } => "PREFETCH_IOMMU_PAGES",
            Command::CompletePprRequest { .. } => "COMPLETE_PPR_REQUEST",
            Command::InvalidateIommuAll => "INVALIDATE_IOMMU_ALL",
        }
    }

    /// Encodes the command as its two quadwords. Fields wider than their slot are truncated:
    /// a COMPLETION_WAIT store address loses bits 2:0 and 63:52, an invalidation address its
    /// bits 11:0. Raw variants keep their bits with the opcode field forced to theirs.
    pub fn encode(&self) -> [u64; 2] {
        use field::*;
        let op = put(OPCODE, u64::from(self.opcode()));
        match *self {
            Command::CompletionWait {
                store,
                interrupt,
                flush_queue,
            } => {
                let (s, addr, data) = match store {
                    Some((a, d)) => (CW_S, a.0 & CW_ADDR, d),
                    None => (0, 0, 0),
                };
                [
                    op | s | flag(CW_I, interrupt) | flag(CW_F, flush_queue) | addr,
                    data,
                ]
            }
            Command::InvalidateDevtabEntry { device_id }
            | Command::InvalidateInterruptTable { device_id } => [op | u64::from(device_id), 0],
            Command::InvalidateIommuPages {
                domain_id,
                pasid,
                address,
                size,
                pde,
                guest,
            } => [
                op | put(PAGES_DOMAIN, u64::from(domain_id)) | put(PAGES_PASID, u64::from(pasid)),
                (address & PAGES_ADDR)
                    | flag(PAGES_S, size)
                    | flag(PAGES_PDE, pde)
                    | flag(PAGES_GN, guest),
            ],
            Command::InvalidateIotlbPages { raw }
            | Command::PrefetchIommuPages { raw }
            | Command::CompletePprRequest { raw } => [(raw[0] & !OPCODE) | op, raw[1]],
            Command::InvalidateIommuAll => [op, 0],
        }
    }

    /// INVALIDATE_IOMMU_PAGES of `size` bytes from `address` for a host (v1) domain, exactly
    /// as Linux builds it (L-AMD `build_inv_iommu_pages` with `build_inv_address`, PDE always
    /// set, no PASID): one page → that page with S = 0; more → S = 1 and the address with
    /// every bit below the highest bit that differs between first and last byte set; a range
    /// reaching past bit 51 → [`ALL_PAGES_ADDRESS`]. `size` 0 is treated as one byte.
    pub fn linux_inv_iommu_pages(domain_id: u16, address: u64, size: u64) -> Command {
        let last = address.saturating_add(size.max(1) - 1);
        let one_page = address >> 12 == last >> 12;
        let (address, s) = if one_page {
            (address & !0xfff, false)
        } else {
            let msb_diff = 63 - (last ^ address).leading_zeros();
            let a = if msb_diff > 51 {
                ALL_PAGES_ADDRESS
            } else {
                address | ((1u64 << msb_diff) - 1)
            };
            (a & !0xfff, true)
        };
        Command::InvalidateIommuPages {
            domain_id,
            pasid: 0,
            address,
            size: s,
            pde: true,
            guest: false,
        }
    }

    /// For INVALIDATE_IOMMU_PAGES, the bytes it covers as `(first, last)`, inclusive (a
    /// whole-space range has no exclusive end in 64 bits). S = 0: the 4 KiB page at
    /// `address`. S = 1: the size is encoded in the address as in a Next Level 7 PTE — the
    /// run of ones from bit 12 up ends at bit n − 2 and bit n − 1 is 0 for a 2^n-byte range
    /// — so the range is 2^(13 + ones) bytes aligned down; [`ALL_PAGES_ADDRESS`] (ones up to
    /// bit 62) covers everything. `None` for other commands.
    pub fn invalidation_range(&self) -> Option<(u64, u64)> {
        let Command::InvalidateIommuPages { address, size, .. } = *self else {
            return None;
        };
        let address = address & !0xfff;
        if !size {
            return Some((address, address | 0xfff));
        }
        let ones = (address >> 12).trailing_ones();
        let shift = 13 + ones;
        if shift >= 64 {
            return Some((0, u64::MAX));
        }
        let mask = (1u64 << shift) - 1;
        Some((address & !mask, address | mask))
    }
}
