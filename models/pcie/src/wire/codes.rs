//! Code tables of the encoded TLP header fields (PCIe Base Specification 6.0, Non-Flit Mode):
//! Fmt/Type (§2.2.1.1, Tables 2-2/2-3), AT (§2.2.4.1), Completion Status (§2.2.9.1,
//! Table 2-37), Message routing (§2.2.8, Table 2-20). Each table is defined once.

use super::field::message;
use std::fmt;

/// Defines a code table once: the enum, its wire codes, short names, `Display` and
/// `TryFrom<u8>` (quinn's `transport_error.rs` pattern). Codes not listed are Reserved.
macro_rules! code_table {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $var:ident = $code:literal => $short:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, arbitrary::Arbitrary)]
        pub enum $name {
            $( $(#[$vmeta])* $var, )+
        }

        impl $name {
            /// Every defined encoding, in code order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// The encoding on the wire.
            pub const fn code(self) -> u8 {
                match self { $($name::$var => $code),+ }
            }

            /// The defined encoding `code`, or `None` if it is Reserved.
            pub const fn from_code(code: u8) -> Option<$name> {
                match code { $($code => Some($name::$var),)+ _ => None }
            }

            /// The short name used in text and JSON.
            pub const fn short_name(self) -> &'static str {
                match self { $($name::$var => $short),+ }
            }

            /// The encoding whose short name is `name` (ASCII case-insensitive).
            pub fn from_short_name(name: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.short_name().eq_ignore_ascii_case(name))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.short_name())
            }
        }

        impl TryFrom<u8> for $name {
            type Error = u8;
            fn try_from(code: u8) -> Result<$name, u8> {
                $name::from_code(code).ok_or(code)
            }
        }
    };
}

code_table! {
    /// `AT[1:0]`, Address Type (§2.2.4.1; PCIe 6.0 Table 10-1). 11b is Reserved.
    pub enum AddressType {
        /// 00b: Untranslated (the default; also what non-memory TLPs carry).
        Untranslated = 0 => "untranslated",
        /// 01b: Translation Request (ATS, §10.2.2).
        TranslationRequest = 1 => "translation_request",
        /// 10b: Translated.
        Translated = 2 => "translated",
    }
}

code_table! {
    /// Completion `Status[2:0]` (§2.2.9.1, Table 2-37). 011b and 101b-111b are Reserved.
    pub enum CplStatus {
        /// 000b: Successful Completion.
        Sc = 0 => "SC",
        /// 001b: Unsupported Request.
        Ur = 1 => "UR",
        /// 010b: Configuration Request Retry Status (named Request Retry Status, RRS, in 6.0).
        Crs = 2 => "CRS",
        /// 100b: Completer Abort.
        Ca = 4 => "CA",
    }
}

code_table! {
    /// Message routing `r[2:0]`, the low bits of a Msg/MsgD Type (§2.2.8, Table 2-20).
    /// 110b and 111b are Reserved.
    pub enum MsgRouting {
        /// 000b: routed to the Root Complex.
        ToRootComplex = 0 => "to_rc",
        /// 001b: routed by address (bytes 8-15 carry it).
        ByAddress = 1 => "by_address",
        /// 010b: routed by ID (bytes 8-9 carry the target ID, §2.2.4.2).
        ById = 2 => "by_id",
        /// 011b: broadcast from the Root Complex.
        Broadcast = 3 => "broadcast",
        /// 100b: local, terminate at receiver.
        Local = 4 => "local",
        /// 101b: gathered and routed to the Root Complex (PME_TO_Ack).
        Gathered = 5 => "gathered",
    }
}

/// The Fmt/Type pair of a TLP header (§2.2.1.1, Tables 2-2 and 2-3), for the types this codec
/// models. Every other pair (including AtomicOps, DMWr and the deprecated TCfgRd) is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FmtType {
    /// Memory Read, 3-DW header (Fmt 000b, Type 0_0000b).
    MRd32,
    /// Memory Read, 4-DW header (Fmt 001b, Type 0_0000b).
    MRd64,
    /// Memory Read Locked, 3-DW header (Fmt 000b, Type 0_0001b).
    MRdLk32,
    /// Memory Read Locked, 4-DW header (Fmt 001b, Type 0_0001b).
    MRdLk64,
    /// Memory Write, 3-DW header (Fmt 010b, Type 0_0000b).
    MWr32,
    /// Memory Write, 4-DW header (Fmt 011b, Type 0_0000b).
    MWr64,
    /// I/O Read (Fmt 000b, Type 0_0010b).
    IORd,
    /// I/O Write (Fmt 010b, Type 0_0010b).
    IOWr,
    /// Type 0 Configuration Read (Fmt 000b, Type 0_0100b).
    CfgRd0,
    /// Type 0 Configuration Write (Fmt 010b, Type 0_0100b).
    CfgWr0,
    /// Type 1 Configuration Read (Fmt 000b, Type 0_0101b).
    CfgRd1,
    /// Type 1 Configuration Write (Fmt 010b, Type 0_0101b).
    CfgWr1,
    /// Message without data (Fmt 001b, Type 1_0r₂r₁r₀b).
    Msg(MsgRouting),
    /// Message with data (Fmt 011b, Type 1_0r₂r₁r₀b).
    MsgD(MsgRouting),
    /// Completion without data (Fmt 000b, Type 0_1010b).
    Cpl,
    /// Completion with data (Fmt 010b, Type 0_1010b).
    CplD,
    /// Completion for Locked Memory Read without data (Fmt 000b, Type 0_1011b).
    CplLk,
    /// Completion for Locked Memory Read with data (Fmt 010b, Type 0_1011b).
    CplDLk,
}

/// `Fmt[2:0]` values (§2.2.1.1, Table 2-2).
pub mod fmt_code {
    /// 3-DW header, no data.
    pub const H3: u8 = 0b000;
    /// 4-DW header, no data.
    pub const H4: u8 = 0b001;
    /// 3-DW header, with data.
    pub const H3_DATA: u8 = 0b010;
    /// 4-DW header, with data.
    pub const H4_DATA: u8 = 0b011;
    /// TLP Prefix.
    pub const PREFIX: u8 = 0b100;
}

/// `Type[4:0]` values (§2.2.1.1, Table 2-3; prefixes §2.2.10).
pub mod type_code {
    /// MRd / MWr.
    pub const MEM: u8 = 0b0_0000;
    /// MRdLk.
    pub const MEM_LOCKED: u8 = 0b0_0001;
    /// IORd / IOWr.
    pub const IO: u8 = 0b0_0010;
    /// CfgRd0 / CfgWr0.
    pub const CFG0: u8 = 0b0_0100;
    /// CfgRd1 / CfgWr1.
    pub const CFG1: u8 = 0b0_0101;
    /// Cpl / CplD.
    pub const CPL: u8 = 0b0_1010;
    /// CplLk / CplDLk.
    pub const CPL_LOCKED: u8 = 0b0_1011;
    /// Msg / MsgD: 1_0r₂r₁r₀b.
    pub const MSG_BASE: u8 = 0b1_0000;
    /// `Type[4]` of a prefix: 1 = End-End, 0 = Local (§2.2.10.1).
    pub const PREFIX_END_END: u8 = 0b1_0000;
    /// End-End prefix `E[3:0]` = 0001b: PASID (§2.2.10.4 Table 2-39, §6.20.2.1).
    pub const PREFIX_PASID: u8 = 0b1_0001;
}

impl FmtType {
    /// The 18 kinds (messages shown with routing to the Root Complex).
    pub const KINDS: [FmtType; 18] = [
        FmtType::MRd32,
        FmtType::MRd64,
        FmtType::MWr32,
        FmtType::MWr64,
        FmtType::MRdLk32,
        FmtType::MRdLk64,
        FmtType::IORd,
        FmtType::IOWr,
        FmtType::CfgRd0,
        FmtType::CfgWr0,
        FmtType::CfgRd1,
        FmtType::CfgWr1,
        FmtType::Msg(MsgRouting::ToRootComplex),
        FmtType::MsgD(MsgRouting::ToRootComplex),
        FmtType::Cpl,
        FmtType::CplD,
        FmtType::CplLk,
        FmtType::CplDLk,
    ];

    /// `Fmt[2:0]` and `Type[4:0]`.
    pub const fn codes(self) -> (u8, u8) {
        use fmt_code::*;
        use type_code::*;
        match self {
            FmtType::MRd32 => (H3, MEM),
            FmtType::MRd64 => (H4, MEM),
            FmtType::MRdLk32 => (H3, MEM_LOCKED),
            FmtType::MRdLk64 => (H4, MEM_LOCKED),
            FmtType::MWr32 => (H3_DATA, MEM),
            FmtType::MWr64 => (H4_DATA, MEM),
            FmtType::IORd => (H3, IO),
            FmtType::IOWr => (H3_DATA, IO),
            FmtType::CfgRd0 => (H3, CFG0),
            FmtType::CfgWr0 => (H3_DATA, CFG0),
            FmtType::CfgRd1 => (H3, CFG1),
            FmtType::CfgWr1 => (H3_DATA, CFG1),
            FmtType::Msg(r) => (H4, MSG_BASE | r.code()),
            FmtType::MsgD(r) => (H4_DATA, MSG_BASE | r.code()),
            FmtType::Cpl => (H3, CPL),
            FmtType::CplD => (H3_DATA, CPL),
            FmtType::CplLk => (H3, CPL_LOCKED),
            FmtType::CplDLk => (H3_DATA, CPL_LOCKED),
        }
    }

    /// The pair for `fmt`/`ty`, or `None` for a Reserved or unmodelled encoding.
    pub const fn from_codes(fmt: u8, ty: u8) -> Option<FmtType> {
        use fmt_code::*;
        use type_code::*;
        if ty & 0b1_1000 == MSG_BASE {
            let Some(r) = MsgRouting::from_code(ty & message::ROUTING.max() as u8) else {
                return None;
            };
            return match fmt {
                H4 => Some(FmtType::Msg(r)),
                H4_DATA => Some(FmtType::MsgD(r)),
                _ => None,
            };
        }
        Some(match (fmt, ty) {
            (H3, MEM) => FmtType::MRd32,
            (H4, MEM) => FmtType::MRd64,
            (H3, MEM_LOCKED) => FmtType::MRdLk32,
            (H4, MEM_LOCKED) => FmtType::MRdLk64,
            (H3_DATA, MEM) => FmtType::MWr32,
            (H4_DATA, MEM) => FmtType::MWr64,
            (H3, IO) => FmtType::IORd,
            (H3_DATA, IO) => FmtType::IOWr,
            (H3, CFG0) => FmtType::CfgRd0,
            (H3_DATA, CFG0) => FmtType::CfgWr0,
            (H3, CFG1) => FmtType::CfgRd1,
            (H3_DATA, CFG1) => FmtType::CfgWr1,
            (H3, CPL) => FmtType::Cpl,
            (H3_DATA, CPL) => FmtType::CplD,
            (H3, CPL_LOCKED) => FmtType::CplLk,
            (H3_DATA, CPL_LOCKED) => FmtType::CplDLk,
            _ => return None,
        })
    }

    /// The kind's name as the CLI and JSON spell it (`"MRd32"`, `"Msg"`, `"CplDLk"`, …).
    pub const fn name(self) -> &'static str {
        match self {
            FmtType::MRd32 => "MRd32",
            FmtType::MRd64 => "MRd64",
            FmtType::MRdLk32 => "MRdLk32",
            FmtType::MRdLk64 => "MRdLk64",
            FmtType::MWr32 => "MWr32",
            FmtType::MWr64 => "MWr64",
            FmtType::IORd => "IORd",
            FmtType::IOWr => "IOWr",
            FmtType::CfgRd0 => "CfgRd0",
            FmtType::CfgWr0 => "CfgWr0",
            FmtType::CfgRd1 => "CfgRd1",
            FmtType::CfgWr1 => "CfgWr1",
            FmtType::Msg(_) => "Msg",
            FmtType::MsgD(_) => "MsgD",
            FmtType::Cpl => "Cpl",
            FmtType::CplD => "CplD",
            FmtType::CplLk => "CplLk",
            FmtType::CplDLk => "CplDLk",
        }
    }

    /// Header size in DW: 3 or 4 (`Fmt[0]`, Table 2-2).
    pub const fn header_dws(self) -> usize {
        if self.codes().0 & 1 == 1 {
            4
        } else {
            3
        }
    }

    /// Whether a data payload follows the header (`Fmt[1]`, Table 2-2).
    pub const fn has_data(self) -> bool {
        self.codes().0 & 0b010 != 0
    }

    /// Whether Length is Reserved for this type: completions and messages without data
    /// (§2.2.1.1: "Reserved for TLPs that do not contain or refer to data payloads").
    pub const fn length_reserved(self) -> bool {
        matches!(self, FmtType::Cpl | FmtType::CplLk | FmtType::Msg(_))
    }
}

impl fmt::Display for FmtType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
