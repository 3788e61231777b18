//! `pcie`: the PCIe transaction layer and link timing.
//!
//! What this crate owns (PCIe Base Specification 6.0; DESIGN.md "Layout"):
//! * [`tlp`]: transaction-layer packets as typed values, with the header sizes and byte
//!   enables the wire format dictates. Exact wire encoding and decoding of every TLP type
//!   (with `bytes`) is the PCIe-model issue's work; this slice carries memory reads, writes
//!   and completions with data.
//! * [`link`]: link timing: generation, width, line encoding and per-TLP framing overhead,
//!   with serialisation per direction so back-to-back TLPs queue behind each other.
//!   DLLP traffic and flow-control credits come with the PCIe-model issue.
//! * [`endpoint`]: a descriptor-driven DMA engine that cuts transfers by MPS, MRRS and 4 KiB
//!   boundaries, limits outstanding read tags and reassembles completions.
//! * [`rc`]: the root complex's completer side: fixed latency and completion splitting.
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
pub use rc::{completions_for, Ingress, RootComplexConfig, RootPort, RCB_BYTES};
pub use tlp::{Attr, CplStatus, Tlp, TlpKind};
