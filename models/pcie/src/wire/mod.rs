//! Exact TLP wire format: PCI Express Base Specification 6.0, Non-Flit Mode (§2.2), with the
//! PASID End-End TLP Prefix (§6.20.2.1) and the ECRC Digest (§2.7.1).
//!
//! Two layers, as for every wire format in this workspace (smoltcp `src/wire/`):
//! * [`TlpView`]: a length-checked view over bytes with one accessor per field;
//! * [`TlpPacket`]: the typed value, with [`TlpPacket::parse`] / [`decode`] and
//!   [`TlpPacket::emit`] / [`TlpPacket::encode`].
//!
//! Every bit position lives in the private `field` module. Code tables ([`AddressType`],
//! [`CplStatus`], [`MsgRouting`]) are defined once with their codes and names;
//! [`FmtType`] is the typed Fmt/Type pair and rejects Reserved encodings.
//!
//! ```text
//!  [PASID prefix DW] | DW0 | DW1 | DW2 | [DW3] | payload (Length × 4 B, with data) | [ECRC]
//!   Fmt=100b           Fmt/Type, TC, Attr, TH, TD, EP, AT, Length, Tag[9:8]
//! ```
//!
//! Modelled: MRd/MRdLk/MWr (3 and 4 DW), IORd/IOWr, CfgRd0/1, CfgWr0/1, Msg/MsgD (all six
//! routings), Cpl/CplD/CplLk/CplDLk. Not modelled (rejected on decode): AtomicOps, DMWr,
//! Flit Mode, Local and other End-End prefixes.
//!
//! Reserved fields do not stop decoding (receivers ignore them, §2.3): they are carried in
//! the packet so that re-encoding gives the same bytes ([`TlpPacket`] lists where) and
//! reported by [`validate`].
//!
//! [`validate`] reports rule violations (4 KiB crossing, byte enables, completion Length and
//! Byte Count, non-zero Reserved fields, MPS/MRRS, …) as data; [`remarks`] gives informational
//! notes that are not violations (BCM); [`json`] is the serde form the `snoopsim tlp` command
//! speaks.

mod arb;
mod codec;
mod codes;
mod crc;
mod error;
mod field;
mod from_json;
mod header;
pub mod json;
mod prefix;
mod validate;
mod view;

pub use codec::decode;
pub use crc::{crc32, ecrc};
pub use error::{DecodeError, EncodeError, TlpPart};
pub use header::{
    fmt_code, type_code, AddrWidth, AddressType, Attr, CfgType, CompletionHeader, CplStatus,
    FmtType, MemOp, MsgRouting, RequestHeader, TlpKind, TlpPacket, CONFIG_RESERVED_MASK,
    MAX_BYTE_COUNT, MAX_LENGTH_DW, MAX_TAG, MAX_TC,
};
pub use prefix::PasidPrefix;
pub use validate::{remarks, validate, validate_bytes, Remark, ValidationContext, Violation};
pub use view::TlpView;
