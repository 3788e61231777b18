//! Rule checks on a TLP (PCIe Base Specification 6.0, Non-Flit Mode). A violation is data,
//! not an error: [`validate`] returns every one it finds, in a fixed order.
//!
//! Checked:
//! * payload size against Length (§2.2.2);
//! * 4 KiB boundary crossing by MRd/MRdLk/MWr: `(address mod 4096) + Length × 4 > 4096`
//!   (§2.2.7.1);
//! * byte enables (§2.2.5.1), skipped for MRd/MRdLk with TH set, whose BE byte carries
//!   `ST[7:0]`: Length = 1 ⇒ Last BE = 0000b; Length > 1 ⇒ First BE ≠ 0 and Last BE ≠ 0;
//!   memory requests of 3+ DW, or of 2 DW not QW aligned, must enable only bytes contiguous
//!   with the inner DWs (First BE ∈ {1111, 1110, 1100, 1000}, Last BE ∈ {0001, 0011, 0111,
//!   1111}); non-contiguous enables stay allowed for 1-DW requests and QW-aligned 2-DW ones;
//! * a 4-DW memory header addressing below 4 GiB ("Requesters must use the 32-bit format",
//!   §2.2.4.1);
//! * I/O and Configuration Requests: TC = 0, `Attr[1:0]` = 0, AT = 0, Length = 1 (§2.2.7.1);
//!   Completions and Messages: AT = 0 (§2.2.9.1, §2.2.8);
//! * `Tag[9:8]` of posted requests (MWr, Msg, MsgD) are Reserved (§2.2.6.2.1);
//! * a PASID prefix on an I/O, Configuration or Completion TLP, or on a Message other than
//!   ATS Invalidate Request, Page Request or PRG Response (§6.20);
//! * Length above Max_Payload_Size for TLPs with data (§2.2.2) and above
//!   Max_Read_Request_Size for memory reads (§2.2.7.1), when a [`ValidationContext`] gives them;
//! * completions (§2.2.9.1, §2.3.1.1):
//!   - CplD/CplDLk with a status other than SC: only Successful read Completions carry data;
//!     the others are Cpl/CplLk (Table 2-3);
//!   - Byte Count within 1..=4096 (only a typed packet can break this; the wire's 0 is 4096);
//!   - the last Completion of a request: with `la` = Lower `Address[1:0]` and `bc` = Byte
//!     Count, a CplD/CplDLk with `bc <= Length × 4 − la` holds every byte still owed, so its
//!     Length must be exactly `⌈(la + bc) / 4⌉` DW. Skipped when BCM is set (Byte Count is then
//!     not the remaining count);
//!   - a Cpl (not CplLk) with status SC can only complete an I/O Write, Configuration Write or
//!     DMWr (Table 2-3), so its Byte Count must be 4 and its Lower Address 0 (§2.2.9.1);
//!   - not checked: Lower Address = 0 for completions of I/O and Configuration *reads*
//!     (a CplD does not say what kind of request it completes), RCB splitting, and anything
//!     else that needs the request;
//! * Reserved fields that are non-zero (§2.2: "filled with all 0's when a TLP is formed";
//!   receivers ignore them, so they do not stop decoding): DW0 bit 17 (formerly LN), Length
//!   of Cpl/CplLk/Msg, TH of completions, address bits 1:0 of memory requests without TH and of
//!   I/O requests, configuration DW2 bits 15:12 and 1:0, completion DW2 bit 7, PASID prefix
//!   bits 21:20;
//! * on raw bytes ([`validate_bytes`]): Reserved Fmt/Type (§2.2.1.1), an ECRC mismatch (§2.7.1)
//!   and any other decode failure.
//!
//! Not violations but worth saying ([`remarks`]): BCM set, which only PCI-X completers do.

use super::error::DecodeError;
use super::header::*;
use super::view::TlpView;

/// Limits the checks depend on. `None` skips the check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ValidationContext {
    /// Max_Payload_Size in bytes (128..=4096).
    pub max_payload_bytes: Option<u32>,
    /// Max_Read_Request_Size in bytes (128..=4096).
    pub max_read_request_bytes: Option<u32>,
}

/// One rule a TLP breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// Payload size and Length disagree.
    #[error("payload is {payload_bytes} bytes but {kind} Length is {length_dw} DW (§2.2.2)")]
    PayloadLength {
        /// The kind.
        kind: &'static str,
        /// Length.
        length_dw: u16,
        /// Payload bytes.
        payload_bytes: usize,
    },
    /// The request crosses a 4 KiB boundary.
    #[error("request of {bytes} bytes at {address:#x} crosses a 4 KiB boundary (§2.2.7.1)")]
    Crosses4KiB {
        /// DW-aligned address.
        address: u64,
        /// `Length × 4`.
        bytes: u32,
    },
    /// Length = 1 with a nonzero Last DW BE.
    #[error("Length is 1 DW but Last DW BE is {last_be:04b}b; it must be 0000b (§2.2.5.1)")]
    LastBeNotZero {
        /// Last DW BE.
        last_be: u8,
    },
    /// Length > 1 with First DW BE = 0.
    #[error("Length is {length_dw} DW but First DW BE is 0000b (§2.2.5.1)")]
    FirstBeZero {
        /// Length.
        length_dw: u16,
    },
    /// Length > 1 with Last DW BE = 0.
    #[error("Length is {length_dw} DW but Last DW BE is 0000b (§2.2.5.1)")]
    LastBeZero {
        /// Length.
        length_dw: u16,
    },
    /// Non-contiguous byte enables where they are not allowed.
    #[error("First/Last DW BE {first_be:04b}b/{last_be:04b}b are not contiguous, which only 1-DW and QW-aligned 2-DW requests may use (§2.2.5.1)")]
    NonContiguousBe {
        /// First DW BE.
        first_be: u8,
        /// Last DW BE.
        last_be: u8,
    },
    /// A 4-DW header for an address below 4 GiB.
    #[error("4-DW header for address {address:#x} below 4 GiB: Requesters must use the 32-bit format (§2.2.4.1)")]
    LongHeaderBelow4GiB {
        /// The address.
        address: u64,
    },
    /// A field with a required value has another.
    #[error("{kind}: {field} is {value} but must be {required} ({rule})")]
    FieldMustBe {
        /// The kind.
        kind: &'static str,
        /// The field.
        field: &'static str,
        /// Its value.
        value: u32,
        /// The required value.
        required: u32,
        /// Where the rule is.
        rule: &'static str,
    },
    /// `Tag[9:8]` set on a posted request.
    #[error("{kind} is posted: Tag[9:8] are Reserved in Non-Flit Mode, but Tag is {tag:#x} (§2.2.6.2.1)")]
    PostedTagHighBits {
        /// The kind.
        kind: &'static str,
        /// The tag.
        tag: u16,
    },
    /// A PASID prefix where PASID is not permitted.
    #[error("{kind} carries a PASID prefix; PASID is permitted only on memory requests and ATS messages (§6.20)")]
    PasidNotPermitted {
        /// The kind.
        kind: &'static str,
    },
    /// Length above MPS.
    #[error("{kind} carries {bytes} bytes, above Max_Payload_Size {mps} (§2.2.2)")]
    ExceedsMps {
        /// The kind.
        kind: &'static str,
        /// Payload bytes.
        bytes: u32,
        /// MPS.
        mps: u32,
    },
    /// A read request above MRRS.
    #[error("{kind} requests {bytes} bytes, above Max_Read_Request_Size {mrrs} (§2.2.7.1)")]
    ExceedsMrrs {
        /// The kind.
        kind: &'static str,
        /// Requested bytes.
        bytes: u32,
        /// MRRS.
        mrrs: u32,
    },
    /// A completion with data and a status other than Successful Completion.
    #[error("{kind} carries data but its Completion Status is {status}: only Successful Completions carry data; other statuses use {without} (§2.2.9, Table 2-3)")]
    CompletionDataNotSuccessful {
        /// The kind (CplD or CplDLk).
        kind: &'static str,
        /// The status.
        status: CplStatus,
        /// The kind it should have been (Cpl or CplLk).
        without: &'static str,
    },
    /// The last completion of a request whose Length is not what Byte Count and Lower Address
    /// make it.
    #[error("{kind} Length is {length_dw} DW but Byte Count {byte_count} from Lower Address[1:0] = {la} ends within it, so it is the last Completion of its request and Length must be ceil(({la} + {byte_count}) / 4) = {expected} DW (§2.3.1.1)")]
    CompletionLength {
        /// The kind.
        kind: &'static str,
        /// Length.
        length_dw: u16,
        /// Byte Count.
        byte_count: u16,
        /// Lower `Address[1:0]`.
        la: u8,
        /// The Length Byte Count and Lower Address call for.
        expected: u16,
    },
    /// Byte Count outside 1..=4096 (a typed packet; the wire cannot carry it).
    #[error("{kind} Byte Count is {byte_count}, outside 1..=4096 (§2.2.9.1)")]
    ByteCountOutOfRange {
        /// The kind.
        kind: &'static str,
        /// Byte Count.
        byte_count: u16,
    },
    /// A Reserved field is non-zero.
    #[error("{kind}: Reserved field {field} is non-zero ({value:#x}); transmitters must set it to 0 and receivers ignore it (§2.2, §2.3)")]
    ReservedField {
        /// The kind.
        kind: &'static str,
        /// The field.
        field: &'static str,
        /// Its value, bits in place within the field.
        value: u32,
    },
    /// Reserved Fmt/Type (raw bytes only).
    #[error("Fmt {fmt:03b}b / Type {ty:05b}b is Reserved or not modelled (§2.2.1.1, Table 2-3)")]
    ReservedFmtType {
        /// Fmt.
        fmt: u8,
        /// Type.
        ty: u8,
    },
    /// The Digest does not match (raw bytes only).
    #[error("ECRC mismatch: Digest {received:08x}, computed {computed:08x} (§2.7.1)")]
    EcrcMismatch {
        /// Computed Digest DW.
        computed: u32,
        /// Received Digest DW.
        received: u32,
    },
    /// Any other reason the bytes do not decode.
    #[error("malformed: {0}")]
    Malformed(DecodeError),
}

/// Something about a TLP worth saying that breaks no rule a lone TLP can be held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remark {
    /// BCM is set on a completion.
    BcmSet,
}

impl std::fmt::Display for Remark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Remark::BcmSet => f.write_str(
                "BCM is set: only PCI-X completers set Byte Count Modified, PCI Express completers must not (§2.2.9.1); Byte Count is then not the remaining count, so the Length check of §2.3.1.1 is skipped",
            ),
        }
    }
}

/// The [`Remark`]s on `t`: informational, not rule violations.
pub fn remarks(t: &TlpPacket) -> Vec<Remark> {
    match t.kind {
        TlpKind::Completion { cpl, .. } if cpl.bcm => vec![Remark::BcmSet],
        _ => Vec::new(),
    }
}

/// Completion rules (§2.2.9.1, §2.3.1.1; see the module doc).
fn completion(
    t: &TlpPacket,
    data: bool,
    locked: bool,
    cpl: &CompletionHeader,
    out: &mut Vec<Violation>,
) {
    let kind = t.fmt_type().name();
    if data && cpl.status != CplStatus::Sc {
        out.push(Violation::CompletionDataNotSuccessful {
            kind,
            status: cpl.status,
            without: if locked { "CplLk" } else { "Cpl" },
        });
    }
    let bc = cpl.byte_count;
    if !(1..=MAX_BYTE_COUNT).contains(&bc) {
        out.push(Violation::ByteCountOutOfRange {
            kind,
            byte_count: bc,
        });
        return;
    }
    let la = cpl.lower_address_6_0() & 0b11;
    let carried = (u32::from(t.length_dw) * 4).saturating_sub(la.into());
    if data && !cpl.bcm && u32::from(bc) <= carried {
        let expected = (u16::from(la) + bc).div_ceil(4);
        if t.length_dw != expected {
            out.push(Violation::CompletionLength {
                kind,
                length_dw: t.length_dw,
                byte_count: bc,
                la,
                expected,
            });
        }
    }
    if !data && !locked && cpl.status == CplStatus::Sc {
        let rule =
            "§2.2.9.1: a Cpl with status SC completes an I/O Write, Configuration Write or DMWr";
        for (field, value, required) in [
            ("Byte Count", u32::from(bc), 4),
            ("Lower Address", u32::from(cpl.lower_address_6_0()), 0),
        ] {
            if value != required {
                out.push(Violation::FieldMustBe {
                    kind,
                    field,
                    value,
                    required,
                    rule,
                });
            }
        }
    }
}

/// Non-zero Reserved fields (see the module doc and [`TlpPacket`] for where each is carried).
fn reserved_fields(t: &TlpPacket, out: &mut Vec<Violation>) {
    let kind = t.fmt_type().name();
    let mut flag = |field, value: u32| {
        if value != 0 {
            out.push(Violation::ReservedField { kind, field, value });
        }
    };
    flag("DW0 bit 17 (formerly LN)", t.ln.into());
    if t.fmt_type().length_reserved() {
        flag("Length", t.length_dw.into());
    }
    match &t.kind {
        TlpKind::Memory { ph, .. } if !t.th => {
            flag("address bits 1:0 (PH only when TH is set)", (*ph).into())
        }
        TlpKind::Io { reserved, .. } => flag("I/O address bits 1:0", (*reserved).into()),
        TlpKind::Config { reserved, .. } => {
            flag("configuration DW2 bits 15:12 and 1:0", (*reserved).into())
        }
        TlpKind::Completion { cpl, .. } => {
            flag("TH (Reserved for completions)", t.th.into());
            flag("completion DW2 bit 7", u32::from(cpl.reserved_bit()) << 7);
        }
        _ => {}
    }
    if let Some(p) = t.pasid {
        flag("PASID prefix bits 21:20", p.reserved());
    }
}

/// Message codes that may carry a PASID: ATS Invalidate Request (01h), Page Request (04h),
/// PRG Response (05h) (§6.20; codes as cocotbext-pcie `MsgType`).
const PASID_MESSAGE_CODES: [u8; 3] = [0x01, 0x04, 0x05];

/// First DW BE values contiguous with the DWs after them (§2.2.5.1).
const fn first_be_contiguous(be: u8) -> bool {
    matches!(be, 0b1111 | 0b1110 | 0b1100 | 0b1000)
}

/// Last DW BE values contiguous with the DWs before them (§2.2.5.1).
const fn last_be_contiguous(be: u8) -> bool {
    matches!(be, 0b0001 | 0b0011 | 0b0111 | 0b1111)
}

fn byte_enables(t: &TlpPacket, req: &RequestHeader, out: &mut Vec<Violation>) {
    let n = t.length_dw;
    let (first, last) = (req.first_be, req.last_be);
    if n == 1 {
        if last != 0 {
            out.push(Violation::LastBeNotZero { last_be: last });
        }
        return;
    }
    if first == 0 {
        out.push(Violation::FirstBeZero { length_dw: n });
    }
    if last == 0 {
        out.push(Violation::LastBeZero { length_dw: n });
    }
    let TlpKind::Memory { address, .. } = t.kind else {
        return;
    };
    let qw_aligned_pair = n == 2 && address % 8 == 0;
    if first != 0
        && last != 0
        && !qw_aligned_pair
        && !(first_be_contiguous(first) && last_be_contiguous(last))
    {
        out.push(Violation::NonContiguousBe {
            first_be: first,
            last_be: last,
        });
    }
}

/// Every rule `t` breaks (see the module doc), given the limits in `ctx`.
pub fn validate(t: &TlpPacket, ctx: &ValidationContext) -> Vec<Violation> {
    let mut out = Vec::new();
    let ft = t.fmt_type();
    let kind = ft.name();
    let expected = if ft.has_data() {
        usize::from(t.length_dw) * 4
    } else {
        0
    };
    if t.payload.len() != expected {
        out.push(Violation::PayloadLength {
            kind,
            length_dw: t.length_dw,
            payload_bytes: t.payload.len(),
        });
    }
    let bytes = u32::from(t.length_dw) * 4;
    let mut must_be = |field, value: u32, required: u32, rule| {
        if value != required {
            out.push(Violation::FieldMustBe {
                kind,
                field,
                value,
                required,
                rule,
            });
        }
    };
    match &t.kind {
        TlpKind::Io { .. } | TlpKind::Config { .. } => {
            let rule = "§2.2.7.1";
            must_be("TC", t.tc.into(), 0, rule);
            let attr10 = u32::from(t.attr.no_snoop) | u32::from(t.attr.relaxed_ordering) << 1;
            must_be("Attr[1:0]", attr10, 0, rule);
            must_be("AT", t.at.code().into(), 0, rule);
            must_be("Length", t.length_dw.into(), 1, rule);
        }
        TlpKind::Completion { .. } => must_be("AT", t.at.code().into(), 0, "§2.2.9.1"),
        TlpKind::Message { .. } => must_be("AT", t.at.code().into(), 0, "§2.2.8"),
        TlpKind::Memory { .. } => {}
    }
    match &t.kind {
        TlpKind::Memory {
            op,
            width,
            req,
            address,
            ..
        } => {
            if (address % 4096) + u64::from(bytes) > 4096 {
                out.push(Violation::Crosses4KiB {
                    address: *address,
                    bytes,
                });
            }
            let ph_carries_st = t.th && *op != MemOp::Write;
            if !ph_carries_st {
                byte_enables(t, req, &mut out);
            }
            if *width == AddrWidth::Bits64 && *address <= u64::from(u32::MAX) {
                out.push(Violation::LongHeaderBelow4GiB { address: *address });
            }
            if *op == MemOp::Write && t.tag() > 0xff {
                out.push(Violation::PostedTagHighBits { kind, tag: t.tag() });
            }
            if let (MemOp::Read | MemOp::ReadLocked, Some(mrrs)) = (op, ctx.max_read_request_bytes)
            {
                if bytes > mrrs {
                    out.push(Violation::ExceedsMrrs { kind, bytes, mrrs });
                }
            }
        }
        TlpKind::Io { req, .. } | TlpKind::Config { req, .. } => byte_enables(t, req, &mut out),
        TlpKind::Message { code, tag, .. } => {
            if *tag > 0xff {
                out.push(Violation::PostedTagHighBits { kind, tag: *tag });
            }
            if t.pasid.is_some() && !PASID_MESSAGE_CODES.contains(code) {
                out.push(Violation::PasidNotPermitted { kind });
            }
        }
        TlpKind::Completion { data, locked, cpl } => completion(t, *data, *locked, cpl, &mut out),
    }
    if t.pasid.is_some()
        && matches!(
            t.kind,
            TlpKind::Io { .. } | TlpKind::Config { .. } | TlpKind::Completion { .. }
        )
    {
        out.push(Violation::PasidNotPermitted { kind });
    }
    if let (true, Some(mps)) = (ft.has_data(), ctx.max_payload_bytes) {
        if bytes > mps {
            out.push(Violation::ExceedsMps { kind, bytes, mps });
        }
    }
    reserved_fields(t, &mut out);
    out
}

/// Every rule the bytes break: decode failures (Reserved Fmt/Type, ECRC mismatch, others)
/// and, when they decode, everything [`validate`] finds.
pub fn validate_bytes(bytes: &[u8], ctx: &ValidationContext) -> Vec<Violation> {
    let view = match TlpView::new_checked(bytes) {
        Ok(v) => v,
        Err(DecodeError::ReservedFmtType { fmt, ty }) => {
            return vec![Violation::ReservedFmtType { fmt, ty }]
        }
        Err(e) => return vec![Violation::Malformed(e)],
    };
    let mut out = Vec::new();
    if let Some(received) = view.digest_dw() {
        let computed = view.computed_digest_dw();
        if received != computed {
            out.push(Violation::EcrcMismatch { computed, received });
        }
    }
    match TlpPacket::parse(&view) {
        Ok(t) => out.extend(validate(&t, ctx)),
        Err(e) => out.push(Violation::Malformed(e)),
    }
    out
}
