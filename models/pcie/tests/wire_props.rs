//! Property tests of the TLP codec with a fixed seed (deterministic, fast in debug builds):
//! every valid `TlpPacket` survives encode → decode, and no byte string makes `decode` panic;
//! whatever decodes (non-zero Reserved fields included: receivers ignore them, §2.3)
//! re-encodes to the same bytes, also by way of its JSON form.

use arbitrary::{Arbitrary, Unstructured};
use pcie::wire::json::TlpJson;
use pcie::wire::{
    decode, validate, validate_bytes, DecodeError, TlpPacket, TlpView, ValidationContext, Violation,
};
use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

const CASES: usize = 20_000;
const SEED: u64 = 0x5eed_71b0_0000_0001;

/// A valid TLP drawn from `rng` through `arbitrary`.
fn arbitrary_tlp(rng: &mut Xoshiro256PlusPlus, scratch: &mut [u8]) -> TlpPacket {
    rng.fill_bytes(scratch);
    let mut u = Unstructured::new(scratch);
    TlpPacket::arbitrary(&mut u).expect("the scratch buffer is large enough")
}

#[test]
fn every_valid_tlp_round_trips_through_the_wire() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED);
    let mut scratch = [0u8; 256];
    let mut kinds = std::collections::BTreeSet::new();
    let mut with_reserved = 0;
    for case in 0..CASES {
        let t = arbitrary_tlp(&mut rng, &mut scratch);
        kinds.insert(t.fmt_type().name());
        with_reserved += usize::from(
            validate(&t, &ValidationContext::default())
                .iter()
                .any(|v| matches!(v, Violation::ReservedField { .. })),
        );
        let bytes = t
            .encode()
            .unwrap_or_else(|e| panic!("case {case}: {t:?} does not encode: {e}"));
        assert_eq!(bytes.len(), t.wire_len(), "case {case}");
        assert_eq!(decode(&bytes).as_ref(), Ok(&t), "case {case}: {bytes:02x?}");
        // The raw view agrees with the typed value.
        let view = TlpView::new_checked(&bytes).unwrap();
        assert_eq!(view.fmt_type(), t.fmt_type());
        assert_eq!(view.tag(), t.tag());
        assert_eq!(view.payload(), &t.payload[..]);
        // Rule checks on the bytes never report a decoding problem for a valid TLP.
        assert!(
            !validate_bytes(&bytes, &ValidationContext::default())
                .iter()
                .any(|v| matches!(
                    v,
                    Violation::Malformed(_)
                        | Violation::EcrcMismatch { .. }
                        | Violation::ReservedFmtType { .. }
                )),
            "case {case}"
        );
        // The JSON form carries every field.
        let json = TlpJson::from_packet(&t);
        assert_eq!(json.to_packet().as_ref(), Ok(&t), "case {case}: {json:?}");
    }
    assert_eq!(kinds.len(), 18, "all kinds drawn: {kinds:?}");
    assert!(
        with_reserved > CASES / 10,
        "only {with_reserved} TLPs with Reserved bits set"
    );
}

/// Decodes `bytes`; if they decode, re-encoding must give them back, directly and through the
/// JSON form. Returns whether they did.
fn decode_is_exact(bytes: &[u8]) -> bool {
    match decode(bytes) {
        Ok(t) => {
            let again = t.encode().expect("a decoded TLP encodes");
            assert_eq!(&again[..], bytes, "{t:?}");
            let json = TlpJson::from_packet(&t);
            assert_eq!(json.to_packet().as_ref(), Ok(&t), "{json:?}");
            true
        }
        Err(_) => false,
    }
}

#[test]
fn random_bytes_never_panic_and_what_decodes_re_encodes_exactly() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED ^ 1);
    let mut decoded = 0;
    for _ in 0..CASES {
        let len = (rng.next_u32() % 97) as usize;
        let mut bytes = vec![0u8; len];
        rng.fill_bytes(&mut bytes);
        decoded += usize::from(decode_is_exact(&bytes));
        let _ = validate_bytes(&bytes, &ValidationContext::default());
        // Half the time, steer DW0 towards modelled encodings (Fmt 0xx, TD and AT clear) and
        // then fit the length to what the header asks for, so more inputs get past the framing.
        if len < 4 || rng.next_u32() % 2 == 0 {
            continue;
        }
        bytes[0] &= 0x7f;
        bytes[2] &= 0x73;
        for _ in 0..3 {
            match decode(&bytes) {
                Err(DecodeError::Truncated { needed, .. }) => {
                    let old = bytes.len();
                    bytes.resize(needed, 0);
                    rng.fill_bytes(&mut bytes[old..]);
                }
                Err(DecodeError::TrailingBytes { len, .. }) => bytes.truncate(len),
                _ => break,
            }
        }
        decoded += usize::from(decode_is_exact(&bytes));
    }
    assert!(decoded > CASES / 40, "only {decoded} random inputs decoded");
}

#[test]
fn mutated_encodings_never_panic_and_what_decodes_re_encodes_exactly() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED ^ 2);
    let mut scratch = [0u8; 256];
    let mut decoded = 0;
    for _ in 0..CASES {
        let t = arbitrary_tlp(&mut rng, &mut scratch);
        let mut bytes = t.encode().unwrap().to_vec();
        for _ in 0..=rng.next_u32() % 3 {
            let r = rng.next_u64();
            let at = (r >> 8) as usize % bytes.len().max(1);
            match r % 5 {
                0 => {
                    if let Some(b) = bytes.get_mut(at) {
                        *b ^= 1 << ((r >> 40) % 8);
                    }
                }
                1 => bytes.truncate(at),
                2 => bytes.extend_from_slice(&(r as u32).to_be_bytes()),
                3 => {
                    if let Some(b) = bytes.get_mut(at % 16) {
                        *b = (r >> 32) as u8;
                    }
                }
                _ => {}
            }
        }
        decoded += usize::from(decode_is_exact(&bytes));
        let _ = validate_bytes(&bytes, &ValidationContext::default());
    }
    assert!(
        decoded > CASES / 20,
        "only {decoded} mutated inputs decoded"
    );
}
