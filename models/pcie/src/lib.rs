//! `pcie`: the PCIe transaction layer and link timing.
//!
//! What this crate owns (PCIe Base Specification 6.0; DESIGN.md "Layout"):
//! * [`wire`]: the exact wire format of every TLP kind the simulator or a user meets
//!   (memory, I/O, configuration, messages, completions; PASID prefix; ECRC), with the
//!   spec's rule checks. [`tlp`] is the simulator's working form of the TLPs it moves,
//!   convertible to [`wire`] for encoding and checking.
//! * [`link`]: link timing — generation, width, line encoding, SKP ordered sets or Gen6
//!   flits, per-TLP framing — and transmitters that send DLLPs (Acks, UpdateFCs) ahead of
//!   waiting TLPs and release TLPs in the order [`ordering`] allows.
//! * [`fc`]: flow-control credits by type: the transmitter's gate, the receiver's returns.
//! * [`ordering`]: the transaction ordering rules (Table 2-42) with RO and IDO.
//! * [`endpoint`]: a descriptor-driven DMA engine that cuts transfers by MPS, MRRS and 4 KiB
//!   boundaries, limits outstanding read tags (8- or 10-bit), reassembles completions and
//!   times reads out.
//! * [`rc`]: the root port's receive side (ingress pipeline, credit returns, Acks) and the
//!   completer side (completion splitting at the RCB, error completions).
//! * [`bandwidth`]: the analytic DMA bandwidth model behind `snoopsim link-model`.
//!
//! ```text
//!   Endpoint ──MWr/MRd──▶ Link (upstream) ──▶ RootComplex ──▶ IOMMU ──▶ memory
//!      ▲                                          │
//!      └────────CplD──── Link (downstream) ◀──────┘
//! ```
//!
//! Call-order contract: every model here is a pure state machine. The engine hands it `now`
//! and an input and gets back outputs with the tick at which they take effect; no model
//! reads a clock, touches the event queue or calls another model.
#![forbid(unsafe_code)]

pub mod bandwidth;
pub mod endpoint;
pub mod fc;
pub mod link;
pub mod ordering;
pub mod port;
pub mod rc;
pub mod tlp;
pub mod wire;

pub use endpoint::{
    Descriptor, DmaDirection, Endpoint, EndpointConfig, EndpointError, EndpointStats, Issued,
    ReadDone,
};
pub use fc::{ClassCredits, Credits, FcClass, FcGate, FcReturn, Need, UpdateFc};
pub use link::{
    AckCounter, DllpPolicy, LinkConfig, LinkDirection, LinkError, LinkGen, LinkStats, Sent,
    Transmission, Transmitter,
};
pub use port::{Accepted, RootPort};
pub use rc::{completions_for, error_completion, RootComplexConfig, RCB_BYTES};
pub use tlp::{Attr, CplStatus, Tlp, TlpKind};
