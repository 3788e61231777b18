//! Event log entries, 128 bits each, and the event log ring as hardware appends to it (AMD
//! IOMMU Specification pub. 48882 rev. 3.x, §2.5 "Event Logging"; §3.4 MMIO 2010h/2018h
//! head/tail, 2020h Status).
//!
//! Common layout (VBOX `EVT_GENERIC_T`; L-AMDT `EVENT_*`): QW0 bits 15:0 DeviceID, 19:16
//! PASID\[19:16\] where defined, 47:32 DomainID or PASID\[15:0\], 59:48 flags, 63:60 event code;
//! QW1 the address. An event is data, not an error: the translation model hands an [`Event`]
//! to the [`EventLog`], which answers where its 16 bytes go or that it was dropped.
//!
//! Sources: Linux `amd_iommu_types.h` `EVENT_*` (L-AMDT) and `iommu.c` `iommu_print_event`
//! (L-AMD), VirtualBox `iommu-amd.h` `EVT_*_T` and `DevIommuAmd.c` (VBOX), FreeBSD
//! `amd_reg.h` `struct amdiommu_event_*` (F-AMD), the OSDev wiki "AMD-Vi IOMMU" event list
//! citing rev. 3.11 (OSDEV).

use crate::regs::bits::{flag, get, put};
use crate::regs::EVENT_BYTES;
use model_core::{Bdf, PhysAddr};
use std::fmt;

/// Defines the event-code table once: the enum, its codes, spec names, `ALL` and lookup.
macro_rules! event_codes {
    ($( $(#[$doc:meta])* $var:ident = $code:literal => $name:literal, )+) => {
        /// An event code, bits 63:60 (§2.5; L-AMDT `EVENT_TYPE_*`, OSDEV list for 0xA-0xC).
        /// Code 0 is not an event (an unwritten entry). VBOX numbers EVENT_COUNTER_ZERO and
        /// GUEST_EVENT_FAULT 0x10/0x11, which do not fit the 4-bit field; F-AMD and OSDEV's
        /// order give 0xA and 0xB, used here.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventCode {
            $( $(#[$doc])* $var = $code, )+
        }

        impl EventCode {
            /// Every defined code, in code order.
            pub const ALL: &'static [EventCode] = &[$(EventCode::$var),+];

            /// The 4-bit field value.
            pub const fn code(self) -> u8 {
                self as u8
            }

            /// The specification's name, e.g. `"IO_PAGE_FAULT"`.
            pub const fn name(self) -> &'static str {
                match self { $(EventCode::$var => $name),+ }
            }

            /// The event with field value `code`, or `None` for 0 and undefined values.
            pub const fn from_code(code: u8) -> Option<EventCode> {
                match code { $($code => Some(EventCode::$var),)+ _ => None }
            }
        }
    };
}

event_codes! {
    /// 0x1: a DTE has a reserved bit set or an invalid setting (L-AMDT `EVENT_TYPE_ILL_DEV`).
    IllegalDevTableEntry = 0x1 => "ILLEGAL_DEV_TABLE_ENTRY",
    /// 0x2: translation or permission fault (L-AMDT `EVENT_TYPE_IO_FAULT`).
    IoPageFault = 0x2 => "IO_PAGE_FAULT",
    /// 0x3: reading the device table failed (L-AMDT `EVENT_TYPE_DEV_TAB_ERR`).
    DevTabHardwareError = 0x3 => "DEV_TAB_HARDWARE_ERROR",
    /// 0x4: reading a page table failed (L-AMDT `EVENT_TYPE_PAGE_TAB_ERR`).
    PageTabHardwareError = 0x4 => "PAGE_TAB_HARDWARE_ERROR",
    /// 0x5: an illegal command was fetched (L-AMDT `EVENT_TYPE_ILL_CMD`).
    IllegalCommandError = 0x5 => "ILLEGAL_COMMAND_ERROR",
    /// 0x6: fetching a command failed (L-AMDT `EVENT_TYPE_CMD_HARD_ERR`).
    CommandHardwareError = 0x6 => "COMMAND_HARDWARE_ERROR",
    /// 0x7: a device IOTLB invalidation timed out (L-AMDT `EVENT_TYPE_IOTLB_INV_TO`).
    IotlbInvTimeout = 0x7 => "IOTLB_INV_TIMEOUT",
    /// 0x8: a request the DTE does not allow (L-AMDT `EVENT_TYPE_INV_DEV_REQ`).
    InvalidDeviceRequest = 0x8 => "INVALID_DEVICE_REQUEST",
    /// 0x9: an invalid peripheral page request (L-AMDT `EVENT_TYPE_INV_PPR_REQ`).
    InvalidPprRequest = 0x9 => "INVALID_PPR_REQUEST",
    /// 0xA: a performance counter reached zero (F-AMD `AMDIOMMU_EV_COUNTER_ZERO`).
    EventCounterZero = 0xa => "EVENT_COUNTER_ZERO",
    /// 0xB: a guest event fault, vIOMMU (OSDEV list item 11).
    GuestEventFault = 0xb => "GUEST_EVENT_FAULT",
    /// 0xC: a vIOMMU hardware error (OSDEV list item 12).
    VIommuHardwareError = 0xc => "VIOMMU_HARDWARE_ERROR",
    /// 0xD: an SNP RMP check failed (L-AMDT `EVENT_TYPE_RMP_FAULT`).
    RmpPageFault = 0xd => "RMP_PAGE_FAULT",
    /// 0xE: reading the RMP failed (L-AMDT `EVENT_TYPE_RMP_HW_ERR`).
    RmpHardwareError = 0xe => "RMP_HARDWARE_ERROR",
}

impl fmt::Display for EventCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Field positions within QW0 (§2.5; VBOX `EVT_IO_PAGE_FAULT_T`, F-AMD
/// `amdiommu_event_io_page_fault_entry`).
pub mod field {
    /// DeviceID, bits 15:0 (L-AMDT `EVENT_DEVID_MASK`).
    pub const DEVICE_ID: u64 = 0xffff;
    /// PASID\[19:16\], bits 19:16 (L-AMDT `EVENT_DOMID_MASK_HI` 0xf0000).
    pub const PASID_HI: u64 = 0xf << 16;
    /// DomainID or PASID\[15:0\], bits 47:32 (L-AMDT `EVENT_DOMID_MASK_LO` of `event[1]`).
    pub const DOMAIN_OR_PASID: u64 = 0xffff << 32;
    /// Flags, bits 59:48 (L-AMDT `EVENT_FLAGS_SHIFT` 16 of `event[1]`, `EVENT_FLAGS_MASK`).
    pub const FLAGS: u64 = 0xfff << 48;
    /// Event code, bits 63:60 (L-AMDT `EVENT_TYPE_SHIFT` 28 of `event[1]`).
    pub const CODE: u64 = 0xf << 60;
    /// GN, bit 48: guest (nested) address.
    pub const GN: u64 = 1 << 48;
    /// NX, bit 49: execute request.
    pub const NX: u64 = 1 << 49;
    /// US, bit 50: user request.
    pub const US: u64 = 1 << 50;
    /// I, bit 51: interrupt request, not memory (L-AMDT `EVENT_FLAG_I` 0x008 of the flags).
    pub const I: u64 = 1 << 51;
    /// PR, bit 52: the page was present (the fault is a permission or reserved-bit one).
    pub const PR: u64 = 1 << 52;
    /// RW, bit 53: 1 = write (L-AMDT `EVENT_FLAG_RW` 0x020 of the flags).
    pub const RW: u64 = 1 << 53;
    /// PE, bit 54: permission denied.
    pub const PE: u64 = 1 << 54;
    /// RZ, bit 55: a reserved bit was set or a level encoding was invalid.
    pub const RZ: u64 = 1 << 55;
    /// TN, bit 56 (TR in VBOX): a translation (ATS) request.
    pub const TN: u64 = 1 << 56;
    /// Hardware-error Type, bits 58:57 (VBOX `u2Type` of `EVT_DEV_TAB_HW_ERROR_T`).
    pub const HW_TYPE: u64 = 0x3 << 57;
    /// The IO_PAGE_FAULT flags (bits 56:48).
    pub const IOPF_FLAGS: u64 = GN | NX | US | I | PR | RW | PE | RZ | TN;
    /// The ILLEGAL_DEV_TABLE_ENTRY flags: GN, I, RW, RZ, TN (VBOX `EVT_ILLEGAL_DTE_T`).
    pub const ILL_DTE_FLAGS: u64 = GN | I | RW | RZ | TN;
    /// The PAGE_TAB_HARDWARE_ERROR flags: GN, I, RW, TN (VBOX `EVT_PAGE_TAB_HW_ERR_T`).
    pub const PT_HW_FLAGS: u64 = GN | I | RW | TN;
    /// The DEV_TAB_HARDWARE_ERROR flags: I, RW, TN (VBOX `EVT_DEV_TAB_HW_ERROR_T`).
    pub const DT_HW_FLAGS: u64 = I | RW | TN;
}

/// The flag bits of an event (bits 56:48); which are defined depends on the event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct IoPageFaultFlags {
    /// GN: the address is a guest virtual address.
    pub gn: bool,
    /// NX: execute permission was requested.
    pub nx: bool,
    /// US: user (not supervisor) request.
    pub us: bool,
    /// I: an interrupt request rather than a memory access.
    pub i: bool,
    /// PR: the page was present.
    pub pr: bool,
    /// RW: the request was a write.
    pub rw: bool,
    /// PE: permission denied.
    pub pe: bool,
    /// RZ: reserved bit set / invalid level encoding.
    pub rz: bool,
    /// TN: a translation request.
    pub tn: bool,
}

impl IoPageFaultFlags {
    /// The flags in place in QW0.
    pub fn bits(self) -> u64 {
        use field::*;
        flag(GN, self.gn)
            | flag(NX, self.nx)
            | flag(US, self.us)
            | flag(I, self.i)
            | flag(PR, self.pr)
            | flag(RW, self.rw)
            | flag(PE, self.pe)
            | flag(RZ, self.rz)
            | flag(TN, self.tn)
    }

    /// The flags of QW0.
    pub fn from_bits(qw0: u64) -> IoPageFaultFlags {
        use field::*;
        IoPageFaultFlags {
            gn: qw0 & GN != 0,
            nx: qw0 & NX != 0,
            us: qw0 & US != 0,
            i: qw0 & I != 0,
            pr: qw0 & PR != 0,
            rw: qw0 & RW != 0,
            pe: qw0 & PE != 0,
            rz: qw0 & RZ != 0,
            tn: qw0 & TN != 0,
        }
    }

    /// Keeps only the flags `mask` defines.
    fn masked(self, mask: u64) -> IoPageFaultFlags {
        IoPageFaultFlags::from_bits(self.bits() & mask)
    }

    /// A short description, e.g. "write, not present".
    fn describe(self) -> String {
        let mut parts = vec![if self.rw { "write" } else { "read" }];
        parts.push(if self.pr { "present" } else { "not present" });
        for (on, what) in [
            (self.pe, "permission"),
            (self.rz, "reserved bit"),
            (self.i, "interrupt"),
            (self.tn, "translation request"),
            (self.gn, "guest"),
            (self.us, "user"),
            (self.nx, "execute"),
        ] {
            if on {
                parts.push(what);
            }
        }
        parts.join(", ")
    }
}

/// Hardware-error type of DEV_TAB / PAGE_TAB / COMMAND_HARDWARE_ERROR, bits 58:57 (VBOX
/// `HWEVTTYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HwErrorType {
    /// 0: reserved.
    Reserved,
    /// 1: master abort.
    MasterAbort,
    /// 2: target abort.
    TargetAbort,
    /// 3: data error.
    DataError,
}

impl HwErrorType {
    /// The 2-bit field value.
    pub const fn code(self) -> u8 {
        match self {
            HwErrorType::Reserved => 0,
            HwErrorType::MasterAbort => 1,
            HwErrorType::TargetAbort => 2,
            HwErrorType::DataError => 3,
        }
    }

    /// The type for a field value; only the low 2 bits are looked at.
    pub const fn from_code(code: u8) -> HwErrorType {
        match code & 3 {
            0 => HwErrorType::Reserved,
            1 => HwErrorType::MasterAbort,
            2 => HwErrorType::TargetAbort,
            _ => HwErrorType::DataError,
        }
    }
}

/// One event log entry (§2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// ILLEGAL_DEV_TABLE_ENTRY: `address` is the IOVA of the request that read the DTE.
    IllegalDevTableEntry {
        /// DeviceID of the request.
        device_id: u16,
        /// PASID (20 bits: 19:16 and 47:32).
        pasid: u32,
        /// GN, I, RW, RZ, TN (others dropped on encode).
        flags: IoPageFaultFlags,
        /// The request's address.
        address: u64,
    },
    /// IO_PAGE_FAULT.
    IoPageFault {
        /// DeviceID of the request.
        device_id: u16,
        /// DomainID (GN = 0) or PASID\[15:0\] (GN = 1), bits 47:32.
        domain_or_pasid: u16,
        /// PASID\[19:16\], bits 19:16.
        pasid_hi: u8,
        /// Flags.
        flags: IoPageFaultFlags,
        /// The faulting IOVA.
        address: u64,
    },
    /// DEV_TAB_HARDWARE_ERROR: `address` is the DTE's system address.
    DevTabHardwareError {
        /// DeviceID of the request.
        device_id: u16,
        /// I, RW, TN.
        flags: IoPageFaultFlags,
        /// Type of error.
        kind: HwErrorType,
        /// Address of the access that failed.
        address: u64,
    },
    /// PAGE_TAB_HARDWARE_ERROR: `address` is the page-table entry's system address.
    PageTabHardwareError {
        /// DeviceID of the request.
        device_id: u16,
        /// DomainID or PASID\[15:0\].
        domain_id: u16,
        /// GN, I, RW, TN.
        flags: IoPageFaultFlags,
        /// Type of error.
        kind: HwErrorType,
        /// Address of the access that failed.
        address: u64,
    },
    /// ILLEGAL_COMMAND_ERROR: `address` is the system address of the illegal command.
    IllegalCommandError {
        /// Address of the command.
        address: PhysAddr,
    },
    /// COMMAND_HARDWARE_ERROR.
    CommandHardwareError {
        /// Type of error.
        kind: HwErrorType,
        /// Address of the access that failed.
        address: u64,
    },
    /// Any other defined event, kept raw (not produced by the model).
    Other {
        /// Its code.
        code: EventCode,
        /// The two quadwords.
        raw: [u64; 2],
    },
}

/// QW0 for `code` with the common fields.
fn qw0(code: EventCode, device_id: u16, domain_or_pasid: u16, flags: u64) -> u64 {
    use field::*;
    put(CODE, u64::from(code.code()))
        | u64::from(device_id)
        | put(DOMAIN_OR_PASID, u64::from(domain_or_pasid))
        | (flags & FLAGS)
}

impl Event {
    /// The event's code.
    pub fn code(&self) -> EventCode {
        match self {
            Event::IllegalDevTableEntry { .. } => EventCode::IllegalDevTableEntry,
            Event::IoPageFault { .. } => EventCode::IoPageFault,
            Event::DevTabHardwareError { .. } => EventCode::DevTabHardwareError,
            Event::PageTabHardwareError { .. } => EventCode::PageTabHardwareError,
            Event::IllegalCommandError { .. } => EventCode::IllegalCommandError,
            Event::CommandHardwareError { .. } => EventCode::CommandHardwareError,
            Event::Other { code, .. } => *code,
        }
    }

    /// The two quadwords as hardware writes them. Flags an event does not define are
    /// dropped; PASIDs are truncated to 20 bits.
    pub fn encode(&self) -> [u64; 2] {
        use field::*;
        let code = self.code();
        match *self {
            Event::IllegalDevTableEntry {
                device_id,
                pasid,
                flags,
                address,
            } => [
                qw0(code, device_id, pasid as u16, flags.bits() & ILL_DTE_FLAGS)
                    | put(PASID_HI, u64::from(pasid >> 16)),
                address,
            ],
            Event::IoPageFault {
                device_id,
                domain_or_pasid,
                pasid_hi,
                flags,
                address,
            } => [
                qw0(code, device_id, domain_or_pasid, flags.bits())
                    | put(PASID_HI, u64::from(pasid_hi)),
                address,
            ],
            Event::DevTabHardwareError {
                device_id,
                flags,
                kind,
                address,
            } => [
                qw0(code, device_id, 0, flags.bits() & DT_HW_FLAGS)
                    | put(HW_TYPE, u64::from(kind.code())),
                address,
            ],
            Event::PageTabHardwareError {
                device_id,
                domain_id,
                flags,
                kind,
                address,
            } => [
                qw0(code, device_id, domain_id, flags.bits() & PT_HW_FLAGS)
                    | put(HW_TYPE, u64::from(kind.code())),
                address,
            ],
            Event::IllegalCommandError { address } => [qw0(code, 0, 0, 0), address.0],
            Event::CommandHardwareError { kind, address } => [
                qw0(code, 0, 0, put(HW_TYPE, u64::from(kind.code()))),
                address,
            ],
            Event::Other { raw, .. } => {
                [(raw[0] & !CODE) | put(CODE, u64::from(code.code())), raw[1]]
            }
        }
    }

    /// Decodes an entry; `None` for code 0 (an unwritten slot) and undefined codes.
    pub fn decode(qw: [u64; 2]) -> Option<Event> {
        use field::*;
        let code = EventCode::from_code(get(qw[0], CODE) as u8)?;
        let device_id = get(qw[0], DEVICE_ID) as u16;
        let low = get(qw[0], DOMAIN_OR_PASID) as u16;
        let flags = IoPageFaultFlags::from_bits(qw[0]);
        let kind = HwErrorType::from_code(get(qw[0], HW_TYPE) as u8);
        let address = qw[1];
        Some(match code {
            EventCode::IllegalDevTableEntry => Event::IllegalDevTableEntry {
                device_id,
                pasid: (get(qw[0], PASID_HI) << 16) as u32 | u32::from(low),
                flags: flags.masked(ILL_DTE_FLAGS),
                address,
            },
            EventCode::IoPageFault => Event::IoPageFault {
                device_id,
                domain_or_pasid: low,
                pasid_hi: get(qw[0], PASID_HI) as u8,
                flags,
                address,
            },
            EventCode::DevTabHardwareError => Event::DevTabHardwareError {
                device_id,
                flags: flags.masked(DT_HW_FLAGS),
                kind,
                address,
            },
            EventCode::PageTabHardwareError => Event::PageTabHardwareError {
                device_id,
                domain_id: low,
                flags: flags.masked(PT_HW_FLAGS),
                kind,
                address,
            },
            EventCode::IllegalCommandError => Event::IllegalCommandError {
                address: PhysAddr(address),
            },
            EventCode::CommandHardwareError => Event::CommandHardwareError { kind, address },
            code => Event::Other { code, raw: qw },
        })
    }

    /// One line, in the spirit of Linux's `iommu_print_event`, e.g. `IO_PAGE_FAULT device
    /// 01:00.0 domain 1 address 0x1000 (write, not present)`.
    pub fn describe(&self) -> String {
        let name = self.code().name();
        let dev = |d: u16| Bdf::from_raw(d);
        match *self {
            Event::IllegalDevTableEntry {
                device_id,
                pasid,
                flags,
                address,
            } => format!(
                "{name} device {} pasid {pasid:#x} address {address:#x} ({})",
                dev(device_id),
                flags.describe()
            ),
            Event::IoPageFault {
                device_id,
                domain_or_pasid,
                flags,
                address,
                ..
            } => format!(
                "{name} device {} {} {domain_or_pasid} address {address:#x} ({})",
                dev(device_id),
                if flags.gn { "pasid" } else { "domain" },
                flags.describe()
            ),
            Event::DevTabHardwareError {
                device_id,
                kind,
                address,
                ..
            } => format!(
                "{name} device {} address {address:#x} ({kind:?})",
                dev(device_id)
            ),
            Event::PageTabHardwareError {
                device_id,
                domain_id,
                kind,
                address,
                ..
            } => format!(
                "{name} device {} domain {domain_id} address {address:#x} ({kind:?})",
                dev(device_id)
            ),
            Event::IllegalCommandError { address } => format!("{name} address {address}"),
            Event::CommandHardwareError { kind, address } => {
                format!("{name} address {address:#x} ({kind:?})")
            }
            Event::Other { raw, .. } => format!("{name} [{:#018x}, {:#018x}]", raw[0], raw[1]),
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// An event was dropped: the log was full, or had overflowed and not been restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("event log full: the event was dropped and Status.EventOverflow is set; software must drain the log (advance the head) and restart logging")]
pub struct Overflow;

/// The event log as hardware appends to it: a ring of `entries` 16-byte slots at `base`,
/// head (software's next read) and tail (hardware's next write) as byte offsets, the values
/// of MMIO 2010h/2018h.
///
/// The ring holds at most `entries − 1` events: it is full when advancing the tail would
/// make it equal to the head (VBOX `DevIommuAmd.c`: `if (cEvts + 1 < cMaxEvts)` write, else
/// set `IOMMU_STATUS_EVT_LOG_OVERFLOW`). On overflow the event is dropped, EventOverflow is
/// set and logging halts (EventLogRun = 0) until software restarts it; Linux
/// `amd_iommu_restart_log` restarts only when the run bit is clear, and its fix "or the IOMMU
/// won't actually resume logging events" (commit by L. Buytenhek) implies the halt. Whether
/// hardware halts or keeps logging once space frees is therefore UNCONFIRMED from spec text;
/// snoopsim halts until [`EventLog::clear_overflow`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLog {
    base: PhysAddr,
    bytes: u64,
    head: u64,
    tail: u64,
    overflowed: bool,
    logged: u64,
    dropped: u64,
}

impl EventLog {
    /// An empty log of `entries` slots at `base`. The register encoding requires a power of
    /// two from 256 to 32768 ([`crate::regs::RingBase::new`]); the ring logic works for any
    /// count, and a log of fewer than 2 slots can hold nothing.
    pub fn new(base: PhysAddr, entries: u32) -> EventLog {
        EventLog {
            base,
            bytes: u64::from(entries.max(1)) * EVENT_BYTES,
            head: 0,
            tail: 0,
            overflowed: false,
            logged: 0,
            dropped: 0,
        }
    }

    /// Appends `e`: the system address to write its 16 bytes to and the bytes as two
    /// quadwords, advancing the tail; or [`Overflow`] if the event was dropped.
    pub fn push(&mut self, e: &Event) -> Result<(PhysAddr, [u64; 2]), Overflow> {
        let next = (self.tail + EVENT_BYTES) % self.bytes;
        if self.overflowed || next == self.head {
            self.overflowed = true;
            self.dropped += 1;
            return Err(Overflow);
        }
        let at = PhysAddr(self.base.0.wrapping_add(self.tail));
        self.tail = next;
        self.logged += 1;
        Ok((at, e.encode()))
    }

    /// Software wrote the head pointer (MMIO 2010h): bits 18:4 as a byte offset, wrapped into
    /// the ring.
    pub fn set_head(&mut self, head: u64) {
        self.head = (head & crate::regs::HEAD_TAIL_MASK) % self.bytes;
    }

    /// The head pointer (byte offset).
    pub fn head(&self) -> u64 {
        self.head
    }

    /// The tail pointer (byte offset), MMIO 2018h.
    pub fn tail(&self) -> u64 {
        self.tail
    }

    /// Events waiting for software: (tail − head) / 16 modulo the ring.
    pub fn pending(&self) -> u64 {
        ((self.tail + self.bytes - self.head) % self.bytes) / EVENT_BYTES
    }

    /// Status.EventOverflow: an event was dropped and logging is halted.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Software cleared EventOverflow and restarted logging (Linux `amd_iommu_restart_log`:
    /// disable EventLogEn, write 1 to EventOverflow, enable EventLogEn).
    pub fn clear_overflow(&mut self) {
        self.overflowed = false;
    }

    /// Events written so far.
    pub fn logged(&self) -> u64 {
        self.logged
    }

    /// Events dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Base address of the ring.
    pub fn base(&self) -> PhysAddr {
        self.base
    }
}
