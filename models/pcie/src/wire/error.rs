//! Decode and encode errors of the TLP codec. Decode errors cite the rule the bytes break;
//! encode errors name the field (with its JSON name).

use std::fmt;

/// The part of a TLP that a truncated input ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlpPart {
    /// The PASID prefix DW.
    Prefix,
    /// The 3- or 4-DW header.
    Header,
    /// The data payload.
    Payload,
    /// The TLP Digest (ECRC).
    Digest,
}

impl fmt::Display for TlpPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlpPart::Prefix => "prefix",
            TlpPart::Header => "header",
            TlpPart::Payload => "payload",
            TlpPart::Digest => "digest",
        })
    }
}

/// Why bytes are not a TLP this codec decodes. Non-zero Reserved *fields* are not among the
/// reasons: receivers ignore them (§2.3), so the codec carries them and `validate` reports them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ends inside `part`.
    #[error("truncated {part}: the TLP needs {needed} bytes, the input has {have}")]
    Truncated {
        /// Where the input ends.
        part: TlpPart,
        /// Bytes needed up to the end of `part`.
        needed: usize,
        /// Bytes given.
        have: usize,
    },
    /// Bytes follow the Digest (or payload) that Fmt, Length and TD account for.
    #[error("{extra} bytes follow the end of the TLP, which Fmt, Length and TD make {len} bytes")]
    TrailingBytes {
        /// The TLP's length.
        len: usize,
        /// Bytes after it.
        extra: usize,
    },
    /// A Reserved (or unmodelled: AtomicOp, DMWr, TCfgRd) Fmt/Type pair.
    #[error("Fmt {fmt:03b}b / Type {ty:05b}b is Reserved or not modelled (§2.2.1.1, Table 2-3)")]
    ReservedFmtType {
        /// `Fmt[2:0]`.
        fmt: u8,
        /// `Type[4:0]`.
        ty: u8,
    },
    /// A TLP prefix other than the PASID End-End prefix.
    #[error("TLP prefix Type {ty:05b}b is not modelled: only the PASID End-End prefix (1_0001b, §6.20.2.1)")]
    UnsupportedPrefix {
        /// `Type[4:0]` of the prefix.
        ty: u8,
    },
    /// Two PASID prefixes.
    #[error("a TLP may contain at most one PASID TLP Prefix (§6.20.2.1)")]
    DuplicatePasidPrefix,
    /// AT = 11b.
    #[error("AT = 11b is Reserved (§2.2.4.1, Table 10-1)")]
    ReservedAddressType,
    /// A Reserved Completion Status.
    #[error("Completion Status {code:03b}b is Reserved (§2.2.9.1, Table 2-37)")]
    ReservedCplStatus {
        /// `Status[2:0]`.
        code: u8,
    },
    /// The Digest does not match the ECRC.
    #[error(
        "ECRC mismatch: the Digest DW is {received:08x}, the TLP's ECRC is {computed:08x} (§2.7.1)"
    )]
    EcrcMismatch {
        /// The Digest DW computed from the TLP (read big-endian, like the hex of the wire bytes).
        computed: u32,
        /// The Digest DW received.
        received: u32,
    },
}

/// Why a [`TlpPacket`](super::TlpPacket) cannot be encoded. Field names are the JSON names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A value does not fit its field.
    #[error("{field} = {value:#x} is out of range {min:#x}..={max:#x}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The value.
        value: u64,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
    /// An address with bits 1:0 set (the header carries a DW address, §2.2.4.1).
    #[error("address {address:#x} is not DW aligned: bits 1:0 must be 0 (PH has its own field)")]
    Misaligned {
        /// The address.
        address: u64,
    },
    /// The payload does not have `Length × 4` bytes (or is not empty without data).
    #[error(
        "payload is {payload_bytes} bytes, but {kind} with length_dw {length_dw} needs {expected}"
    )]
    PayloadLength {
        /// The kind.
        kind: &'static str,
        /// Length in DW.
        length_dw: u16,
        /// Payload bytes given.
        payload_bytes: usize,
        /// Payload bytes the header implies.
        expected: usize,
    },
}
