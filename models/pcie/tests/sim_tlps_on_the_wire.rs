//! Every TLP the DMA engine and the root complex produce is a legal TLP on the wire: it
//! encodes to exactly the bytes the link model charges for, decodes back to itself, and
//! breaks no rule of PCIe Base 6.0 §2.2 for its MPS and MRRS.

use bytes::Bytes;
use model_core::{Bdf, Tick};
use pcie::tlp::{AddressType, PasidPrefix};
use pcie::wire::{self, ValidationContext};
use pcie::{
    completions_for, Attr, Credits, Descriptor, DmaDirection, Endpoint, EndpointConfig, Tlp,
};
use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

fn check(tlp: &Tlp, ctx: &ValidationContext) {
    let packet = tlp.to_wire();
    let bytes = packet
        .encode()
        .unwrap_or_else(|e| panic!("{} does not encode: {e}", tlp.name()));
    assert_eq!(
        bytes.len() as u64,
        tlp.tlp_bytes(),
        "{}: the link charges for a different size",
        tlp.name()
    );
    assert_eq!(
        wire::decode(&bytes).unwrap(),
        packet,
        "{} round trip",
        tlp.name()
    );
    let v = wire::validate(&packet, ctx);
    assert!(
        v.is_empty(),
        "{} at {:#x} breaks {v:?}",
        tlp.name(),
        tlp.address
    );
}

#[test]
fn random_transfers_produce_only_legal_requests_and_completions() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0x5eed);
    let mut checked = 0;
    for round in 0..300 {
        let mps = 128 << (rng.next_u32() % 6);
        let mrrs = 128 << (rng.next_u32() % 6);
        let ctx = ValidationContext {
            max_payload_bytes: Some(mps),
            max_read_request_bytes: Some(mrrs),
        };
        let mut ep = Endpoint::new(EndpointConfig {
            bdf: Bdf::from_raw(0x0100),
            mps,
            mrrs,
            read_tags: 1024,
            ecrc: round % 3 == 0,
            tx_credits: Credits::INFINITE,
            completion_timeout: model_core::Span::from_ns(50_000),
        });
        let high = rng.next_u32() % 2 == 0;
        let address = u64::from(rng.next_u32()) | if high { 1 << 36 } else { 0 };
        let len = 1 + rng.next_u32() % 9000;
        let direction = if rng.next_u32() % 2 == 0 {
            DmaDirection::Write
        } else {
            DmaDirection::Read
        };
        ep.post(Descriptor {
            id: round,
            direction,
            address,
            len,
            attr: Attr {
                no_snoop: rng.next_u32() % 2 == 0,
                relaxed_ordering: rng.next_u32() % 2 == 0,
                id_based_ordering: false,
            },
            tc: (rng.next_u32() % 8) as u8,
            at: if rng.next_u32() % 4 == 0 {
                AddressType::Translated
            } else {
                AddressType::Untranslated
            },
            pasid: (rng.next_u32() % 2 == 0).then(|| PasidPrefix {
                pasid: rng.next_u32() & 0xf_ffff,
                execute: false,
                privileged: rng.next_u32() % 2 == 0,
            }),
            data: Bytes::from(vec![0xa5; len as usize]),
        });
        while let Some(issued) = ep.poll_transmit(Tick::ZERO) {
            check(&issued.tlp, &ctx);
            checked += 1;
            if direction == DmaDirection::Read {
                let span = Bytes::from(vec![0; issued.tlp.payload_bytes_requested()]);
                for rcb in [64, 128] {
                    for cpl in completions_for(&issued.tlp, Bdf::from_raw(0), mps, rcb, &span) {
                        check(&cpl, &ctx);
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 5_000, "only {checked} TLPs checked");
}
