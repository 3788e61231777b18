//! ECRC, the end-to-end CRC in the TLP Digest (PCIe Base Specification 6.0 §2.7.1).
//!
//! §2.7.1: polynomial 04C1_1DB7h, seed FFFF_FFFFh, bits fed from bit 0 of byte 0 upwards
//! (least significant bit first), result complemented, Variant bits treated as Set (NFM: header
//! `Type[0]` and EP; not those of an End-End prefix), Local prefixes excluded. Table 2-55 maps
//! result bit k (the x^k coefficient) to Digest bit 8⌊k/8⌋ + 7 − k mod 8.
//!
//! That is the common reflected CRC-32 (zlib/Ethernet: reflected polynomial EDB8_8320h, same
//! seed, final XOR FFFF_FFFFh) whose value, written little-endian, gives the four Digest bytes
//! in wire order: a reflected register holds x^(31-i) in bit i, so Table 2-55 puts value bits
//! 7:0 in the first Digest byte. Cross-check: the cyrozap Wireshark PCIe dissector
//! (`proto_pcie.c`, captures from real links) reads the ECRC little-endian and compares it to
//! `crc32_ccitt` over the TLP with DW0 ORed with 0x0100_4000 (`Type[0]`, EP).
//! No captured TLP with a known ECRC was available to test against: the vectors in
//! `tests/wire_vectors.rs` are computed by this algorithm.

use super::field::ECRC_VARIANT_MASK;

/// The reflected form of 04C1_1DB7h.
const POLY_REFLECTED: u32 = 0x04C1_1DB7_u32.reverse_bits();

/// Byte-at-a-time lookup table, built at compile time.
const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// The seed (§2.7.1).
const SEED: u32 = 0xFFFF_FFFF;

fn update(mut crc: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        crc = TABLE[usize::from((crc as u8) ^ b)] ^ (crc >> 8);
    }
    crc
}

/// CRC-32 as §2.7.1 computes it, without Variant-bit handling (exposed for the check value).
pub fn crc32(bytes: &[u8]) -> u32 {
    !update(SEED, bytes)
}

/// The ECRC of a TLP without its Digest. `prefixes` are the End-End prefix bytes, `header_dw0`
/// the header's first DW, `rest` the header's remaining bytes and the payload, in order.
/// Write the result with `to_le_bytes()` to get the Digest bytes in wire order.
pub fn ecrc(prefixes: &[u8], header_dw0: u32, rest: &[&[u8]]) -> u32 {
    let mut crc = update(SEED, prefixes);
    crc = update(crc, &(header_dw0 | ECRC_VARIANT_MASK).to_be_bytes());
    for part in rest {
        crc = update(crc, part);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        // CRC-32 (zlib/Ethernet parameters) of "123456789" is CBF4_3926h.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn variant_bits_do_not_change_the_ecrc() {
        let dw0 = 0x4000_0001; // MWr32, Length 1
        let a = ecrc(&[], dw0, &[&[0; 12]]);
        let b = ecrc(&[], dw0 | ECRC_VARIANT_MASK, &[&[0; 8], &[0; 4]]);
        assert_eq!(a, b);
        assert_ne!(a, ecrc(&[], dw0 | 1 << 12, &[&[0; 12]]), "NS is invariant");
    }
}
