//! Flow control: credits by type, the transmitter's gate and the receiver's updates.
//!
//! Every TLP needs one header credit and, if it has a payload, one data credit per 16 bytes
//! (4 DW) of its class (PCIe Base 6.0 §2.6.1): Posted (memory writes, messages),
//! Non-Posted (reads, I/O and configuration requests) and Completion. A receiver advertises
//! how many it has buffers for; the transmitter may only send a TLP whose credits fit, and
//! waits otherwise. As the receiver frees buffers it returns credits in UpdateFC DLLPs on the
//! opposite direction. An advertisement of 0 means infinite (§2.6.1); Endpoints advertise
//! infinite Completion credits.
//!
//! The spec's counters are modular (CREDITS_CONSUMED and CREDIT_LIMIT, 8-bit header and
//! 12-bit data fields, §2.6.1.2); here plain counters express the same gate, and an UpdateFC
//! carries the credits freed since the last one rather than the new absolute limit — the
//! transmitter's view after it arrives is the same.

use crate::tlp::{Tlp, TlpKind};
use serde::Serialize;

/// Bytes per data credit: 4 DW (PCIe Base 6.0 §2.6.1).
pub const DATA_CREDIT_BYTES: u64 = 16;
/// Largest header credit advertisement without scaled flow control: 2^(8-1) = 127 in use
/// (§2.6.1.2, the field is 8 bits and at most half its range may be outstanding).
pub const MAX_HEADER_CREDITS: u32 = 127;
/// Largest data credit advertisement without scaled flow control: 2^(12-1) = 2047.
pub const MAX_DATA_CREDITS: u32 = 2047;

/// A flow-control class (PCIe Base 6.0 §2.6.1, Table 2-43).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum FcClass {
    /// Posted requests: memory writes, messages.
    Posted,
    /// Non-posted requests: reads, I/O and configuration, atomics.
    NonPosted,
    /// Completions.
    Completion,
}

/// The credits a TLP consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    /// Its class.
    pub class: FcClass,
    /// Header credits (always 1).
    pub header: u32,
    /// Data credits: payload bytes / 16, rounded up.
    pub data: u32,
}

impl Need {
    /// What `tlp` consumes.
    pub fn of(tlp: &Tlp) -> Need {
        let class = match tlp.kind {
            TlpKind::MemWrite => FcClass::Posted,
            TlpKind::MemRead => FcClass::NonPosted,
            TlpKind::Completion { .. } => FcClass::Completion,
        };
        Need {
            class,
            header: 1,
            data: tlp.payload_bytes().div_ceil(DATA_CREDIT_BYTES) as u32,
        }
    }
}

/// One class's header and data credits; 0 advertised means infinite.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClassCredits {
    /// Header credits.
    pub header: u32,
    /// Data credits (16 bytes each).
    pub data: u32,
}

/// Credits for all three classes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Credits {
    /// PH and PD.
    pub posted: ClassCredits,
    /// NPH and NPD.
    pub non_posted: ClassCredits,
    /// CplH and CplD.
    pub completion: ClassCredits,
}

impl Credits {
    /// Infinite everywhere.
    pub const INFINITE: Credits = Credits {
        posted: ClassCredits { header: 0, data: 0 },
        non_posted: ClassCredits { header: 0, data: 0 },
        completion: ClassCredits { header: 0, data: 0 },
    };

    fn class(&self, c: FcClass) -> &ClassCredits {
        match c {
            FcClass::Posted => &self.posted,
            FcClass::NonPosted => &self.non_posted,
            FcClass::Completion => &self.completion,
        }
    }

    fn class_mut(&mut self, c: FcClass) -> &mut ClassCredits {
        match c {
            FcClass::Posted => &mut self.posted,
            FcClass::NonPosted => &mut self.non_posted,
            FcClass::Completion => &mut self.completion,
        }
    }
}

/// The transmitter's side: what the receiver advertised and what is in use.
#[derive(Debug, Clone)]
pub struct FcGate {
    advertised: Credits,
    in_use: Credits,
}

impl FcGate {
    /// A gate for a receiver that advertised `advertised`.
    pub fn new(advertised: Credits) -> FcGate {
        FcGate {
            advertised,
            in_use: Credits::default(),
        }
    }

    /// Whether a TLP needing `n` may go now.
    pub fn allows(&self, n: Need) -> bool {
        let adv = self.advertised.class(n.class);
        let used = self.in_use.class(n.class);
        let fits = |limit: u32, used: u32, need: u32| limit == 0 || used + need <= limit;
        fits(adv.header, used.header, n.header) && fits(adv.data, used.data, n.data)
    }

    /// Records a TLP sent.
    pub fn consume(&mut self, n: Need) {
        let used = self.in_use.class_mut(n.class);
        used.header += n.header;
        used.data += n.data;
    }

    /// Applies an UpdateFC that returned `header` and `data` credits of `class`.
    pub fn update(&mut self, class: FcClass, header: u32, data: u32) {
        let used = self.in_use.class_mut(class);
        used.header = used.header.saturating_sub(header);
        used.data = used.data.saturating_sub(data);
    }
}

/// An UpdateFC DLLP: credits of one class returned to the transmitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateFc {
    /// The class.
    pub class: FcClass,
    /// Header credits returned.
    pub header: u32,
    /// Data credits returned.
    pub data: u32,
}

/// The receiver's side: buffers in use, credits freed but not yet returned, and when to
/// send an UpdateFC.
///
/// Credits go back once `every` TLPs of a class have been freed, or at once when what the
/// transmitter can still have (advertised − held − freed) is less than its largest TLP of
/// that class needs — the point where it may be blocked (PCIe Base 6.0 §2.6.1.2 requires an
/// UpdateFC when a transmitter could otherwise stall). Classes advertised as infinite never
/// get updates.
#[derive(Debug, Clone)]
pub struct FcReturn {
    advertised: Credits,
    largest: Credits,
    every: u32,
    held: Credits,
    freed: Credits,
    freed_tlps: [u32; 3],
}

fn idx(c: FcClass) -> usize {
    match c {
        FcClass::Posted => 0,
        FcClass::NonPosted => 1,
        FcClass::Completion => 2,
    }
}

impl FcReturn {
    /// A receiver that advertised `advertised`, whose transmitter's largest TLP of each class
    /// needs `largest`, batching updates `every` TLPs.
    pub fn new(advertised: Credits, largest: Credits, every: u32) -> FcReturn {
        FcReturn {
            advertised,
            largest,
            every: every.max(1),
            held: Credits::default(),
            freed: Credits::default(),
            freed_tlps: [0; 3],
        }
    }

    /// A TLP arrived and occupies buffers.
    pub fn received(&mut self, n: Need) {
        let h = self.held.class_mut(n.class);
        h.header += n.header;
        h.data += n.data;
    }

    /// A TLP left the buffers. Returns the UpdateFC to send now, if one is due.
    pub fn freed(&mut self, n: Need) -> Option<UpdateFc> {
        let h = self.held.class_mut(n.class);
        h.header = h.header.saturating_sub(n.header);
        h.data = h.data.saturating_sub(n.data);
        let held = *h;
        let adv = *self.advertised.class(n.class);
        if adv.header == 0 && adv.data == 0 {
            return None; // infinite: nothing to return
        }
        let f = self.freed.class_mut(n.class);
        f.header += n.header;
        f.data += n.data;
        let want = self.largest.class(n.class);
        let short = |limit: u32, held: u32, freed: u32, need: u32| {
            limit != 0 && limit.saturating_sub(held + freed) < need
        };
        let starving = short(adv.header, held.header, f.header, want.header.max(1))
            || short(adv.data, held.data, f.data, want.data);
        let count = &mut self.freed_tlps[idx(n.class)];
        *count += 1;
        if *count < self.every && !starving {
            return None;
        }
        *count = 0;
        let out = UpdateFc {
            class: n.class,
            header: if adv.header == 0 { 0 } else { f.header },
            data: if adv.data == 0 { 0 } else { f.data },
        };
        *f = ClassCredits::default();
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(class: FcClass, data: u32) -> Need {
        Need {
            class,
            header: 1,
            data,
        }
    }

    #[test]
    fn a_256_byte_write_needs_one_header_and_16_data_credits() {
        use crate::tlp::{dw_span, Attr};
        let (a, dws, f, l) = dw_span(0x1000, 256);
        let t = Tlp {
            kind: TlpKind::MemWrite,
            requester: model_core::Bdf::from_raw(0x100),
            tag: 0,
            tc: 0,
            attr: Attr::default(),
            at: crate::tlp::AddressType::Untranslated,
            pasid: None,
            td: false,
            address: a,
            length_dw: dws,
            first_be: f,
            last_be: l,
            payload: bytes::Bytes::from(vec![0; 256]),
        };
        assert_eq!(Need::of(&t), need(FcClass::Posted, 16));
    }

    #[test]
    fn the_gate_stops_at_the_advertised_credits_and_reopens_on_update() {
        let mut adv = Credits::INFINITE;
        adv.posted = ClassCredits {
            header: 2,
            data: 32,
        };
        let mut g = FcGate::new(adv);
        let w = need(FcClass::Posted, 16);
        assert!(g.allows(w));
        g.consume(w);
        g.consume(w);
        assert!(!g.allows(w), "data credits exhausted");
        assert!(
            g.allows(need(FcClass::NonPosted, 0)),
            "other classes unaffected"
        );
        g.update(FcClass::Posted, 1, 16);
        assert!(g.allows(w));
    }

    #[test]
    fn updates_are_batched_until_the_transmitter_could_be_blocked() {
        let mut adv = Credits::INFINITE;
        adv.posted = ClassCredits {
            header: 16,
            data: 256,
        };
        let mut largest = Credits::INFINITE;
        largest.posted = ClassCredits {
            header: 1,
            data: 16,
        };
        let mut r = FcReturn::new(adv, largest, 4);
        let w = need(FcClass::Posted, 16);
        // Plenty of credits: one update per four freed TLPs.
        r.received(w);
        for _ in 0..3 {
            r.received(w);
            assert_eq!(r.freed(w), None);
        }
        r.received(w);
        let u = r.freed(w).unwrap();
        assert_eq!((u.header, u.data), (4, 64));
        // Fill all 16 buffers and free one: 15 held + 1 freed-but-kept leaves the
        // transmitter no header credit, so the credits go back at once.
        for _ in 0..16 {
            r.received(w);
        }
        let u = r
            .freed(w)
            .expect("starving transmitter gets credits at once");
        assert_eq!((u.header, u.data), (1, 16));
    }

    #[test]
    fn infinite_classes_get_no_updates() {
        let mut r = FcReturn::new(Credits::INFINITE, Credits::INFINITE, 1);
        let w = need(FcClass::NonPosted, 0);
        r.received(w);
        assert_eq!(r.freed(w), None);
    }
}
