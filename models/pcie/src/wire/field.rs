//! Every bit position the TLP codec reads or writes, in one place (smoltcp's `mod field`).
//!
//! Source: PCI Express Base Specification 6.0, Non-Flit Mode (NFM) TLP formats, §2.2.
//! Convention: "DW n bit b" is bit `b` (LSB = 0) of header DWORD `n` read as a big-endian
//! `u32`, so DW bit 31 is bit 7 of the DW's first byte on the wire (the spec's "byte 4n bit 7").
//! This is how cocotbext-pcie packs headers (`struct.pack('>L', dw)`).

/// A contiguous bit range `[lo, lo + width)` within one big-endian DWORD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bits {
    /// Lowest bit of the field.
    pub lo: u32,
    /// Width in bits (1..=32).
    pub width: u32,
}

impl Bits {
    const fn new(lo: u32, width: u32) -> Bits {
        Bits { lo, width }
    }

    /// The field's bits in place.
    pub const fn mask(self) -> u32 {
        (u32::MAX >> (32 - self.width)) << self.lo
    }

    /// The largest value the field holds.
    pub const fn max(self) -> u32 {
        u32::MAX >> (32 - self.width)
    }

    /// The field's value within `dw`.
    pub const fn get(self, dw: u32) -> u32 {
        (dw & self.mask()) >> self.lo
    }

    /// `dw` with the field set to `value` (bits of `value` beyond the width are dropped).
    pub const fn put(self, dw: u32, value: u32) -> u32 {
        (dw & !self.mask()) | ((value << self.lo) & self.mask())
    }

    /// A one-bit field as a flag.
    pub const fn flag(self, dw: u32) -> bool {
        self.get(dw) != 0
    }
}

/// Bytes in a DWORD.
pub(crate) const DW_BYTES: usize = 4;

/// DW0, common to every TLP header and prefix (§2.2.1.1, Figure 2-4).
pub(crate) mod dw0 {
    use super::Bits;
    /// `Fmt[2:0]`, byte 0 bits 7:5 (§2.2.1.1, Table 2-2).
    pub const FMT: Bits = Bits::new(29, 3);
    /// `Type[4:0]`, byte 0 bits 4:0 (§2.2.1.1, Table 2-3).
    pub const TYPE: Bits = Bits::new(24, 5);
    /// `Tag[9]` (T9), byte 1 bit 7 (§2.2.6.2.1: `Tag[9:8]` not contiguous in NFM).
    pub const T9: Bits = Bits::new(23, 1);
    /// `TC[2:0]`, byte 1 bits 6:4 (§2.2.6.6).
    pub const TC: Bits = Bits::new(20, 3);
    /// `Tag[8]` (T8), byte 1 bit 3 (§2.2.6.2.1).
    pub const T8: Bits = Bits::new(19, 1);
    /// `Attr[2]` (A2), ID-Based Ordering, byte 1 bit 2 (§2.2.1.1, §2.2.6.4).
    pub const ATTR2_IDO: Bits = Bits::new(18, 1);
    /// Byte 1 bit 1: Reserved in 6.0, formerly Lightweight Notification (LN) (§2.2.1.1).
    pub const LN: Bits = Bits::new(17, 1);
    /// TH, TLP Processing Hints present, byte 1 bit 0 (§2.2.1.1, §2.2.7.1.1).
    pub const TH: Bits = Bits::new(16, 1);
    /// TD, TLP Digest (ECRC) present, byte 2 bit 7 (§2.2.1.1, §2.2.3).
    pub const TD: Bits = Bits::new(15, 1);
    /// EP, poisoned, byte 2 bit 6 (§2.2.1.1, §2.7.2).
    pub const EP: Bits = Bits::new(14, 1);
    /// `Attr[1]`, Relaxed Ordering, byte 2 bit 5 (§2.2.1.1, §2.2.6.4 Table 2-12).
    pub const ATTR1_RO: Bits = Bits::new(13, 1);
    /// `Attr[0]`, No Snoop, byte 2 bit 4 (§2.2.1.1, §2.2.6.5 Table 2-13).
    pub const ATTR0_NS: Bits = Bits::new(12, 1);
    /// `AT[1:0]`, Address Type, byte 2 bits 3:2 (§2.2.4.1, Table 10-1).
    pub const AT: Bits = Bits::new(10, 2);
    /// `Length[9:0]` in DW, byte 2 bits 1:0 and byte 3; 0 encodes 1024 (§2.2.1.1, Table 2-4).
    pub const LENGTH: Bits = Bits::new(0, 10);
}

/// DW1 of Memory, I/O and Configuration Requests (§2.2.7.1, Figures 2-36..2-39).
pub(crate) mod request {
    use super::Bits;
    /// Requester `ID[15:0]`, bytes 4-5 (§2.2.6.2).
    pub const REQUESTER_ID: Bits = Bits::new(16, 16);
    /// `Tag[7:0]`, byte 6 (§2.2.6.2); `ST[7:0]` for a posted request with TH set (Table 2-19).
    pub const TAG: Bits = Bits::new(8, 8);
    /// Last DW `BE[3:0]`, byte 7 bits 7:4 (§2.2.5.1, Table 2-10).
    pub const LAST_BE: Bits = Bits::new(4, 4);
    /// First DW `BE[3:0]`, byte 7 bits 3:0 (§2.2.5.1, Table 2-10).
    pub const FIRST_BE: Bits = Bits::new(0, 4);
}

/// Address words of Memory and I/O Requests (§2.2.4.1, Table 2-7; §2.2.7.1.1, Table 2-17).
pub(crate) mod address {
    use super::Bits;
    /// Header DW holding `Address[31:2]` in a 3-DW header (bytes 8-11).
    pub const DW_ADDR32: usize = 2;
    /// Header DW holding `Address[63:32]` in a 4-DW header (bytes 8-11).
    pub const DW_ADDR_HI: usize = 2;
    /// Header DW holding `Address[31:2]` in a 4-DW header (bytes 12-15).
    pub const DW_ADDR_LO: usize = 3;
    /// `Address[31:2]` in the low address DW (Table 2-7).
    pub const ADDR_LO: Bits = Bits::new(2, 30);
    /// `PH[1:0]`, processing hint, bits 1:0 of byte 11 / 15 (Table 2-17); Reserved for I/O.
    pub const PH: Bits = Bits::new(0, 2);
}

/// DW2 of Configuration Requests (§2.2.4.2 Table 2-8, §2.2.7.1 Figure 2-39).
pub(crate) mod config {
    use super::Bits;
    /// Header DW of the routing ID and register number.
    pub const DW: usize = 2;
    /// Target (Completer) Bus/Device/Function, bytes 8-9 (Table 2-8).
    pub const TARGET_ID: Bits = Bits::new(16, 16);
    /// Reserved, byte 10 bits 7:4.
    pub const RSVD_HI: Bits = Bits::new(12, 4);
    /// Extended Register `Number[3:0]`, byte 10 bits 3:0 (§2.2.7.1).
    pub const EXT_REGISTER: Bits = Bits::new(8, 4);
    /// Register `Number[5:0]`, byte 11 bits 7:2 (§2.2.7.1).
    pub const REGISTER: Bits = Bits::new(2, 6);
    /// Reserved, byte 11 bits 1:0.
    pub const RSVD_LO: Bits = Bits::new(0, 2);
}

/// DW1 and DW2 of Completions (§2.2.9.1, Figure 2-79).
pub(crate) mod completion {
    use super::Bits;
    /// DW1: Completer `ID[15:0]`, bytes 4-5.
    pub const COMPLETER_ID: Bits = Bits::new(16, 16);
    /// DW1: Completion `Status[2:0]`, byte 6 bits 7:5 (Table 2-37).
    pub const STATUS: Bits = Bits::new(13, 3);
    /// DW1: BCM (Byte Count Modified), byte 6 bit 4.
    pub const BCM: Bits = Bits::new(12, 1);
    /// DW1: Byte `Count[11:0]`, byte 6 bits 3:0 and byte 7; 0 encodes 4096.
    pub const BYTE_COUNT: Bits = Bits::new(0, 12);
    /// DW2: Requester `ID[15:0]`, bytes 8-9.
    pub const REQUESTER_ID: Bits = Bits::new(16, 16);
    /// DW2: `Tag[7:0]`, byte 10.
    pub const TAG: Bits = Bits::new(8, 8);
    /// DW2: Reserved, byte 11 bit 7.
    pub const RSVD: Bits = Bits::new(7, 1);
    /// DW2: Lower `Address[6:0]`, byte 11 bits 6:0.
    pub const LOWER_ADDRESS: Bits = Bits::new(0, 7);
}

/// DW1 of Message Requests (§2.2.8, Figures 2-49/2-50); bytes 8-15 depend on the routing
/// (Table 2-20) and the Message Code.
pub(crate) mod message {
    use super::Bits;
    /// Requester `ID[15:0]`, bytes 4-5.
    pub const REQUESTER_ID: Bits = Bits::new(16, 16);
    /// `Tag[7:0]`, byte 6.
    pub const TAG: Bits = Bits::new(8, 8);
    /// Message `Code[7:0]`, byte 7.
    pub const CODE: Bits = Bits::new(0, 8);
    /// The `r[2:0]` routing sub-field of Type (Table 2-3: Type = 1 0 r2 r1 r0).
    pub const ROUTING: Bits = Bits::new(0, 3);
}

/// The NFM PASID TLP Prefix DW (§6.20.2.1, Table 6-15; End-End prefix per §2.2.10.4).
pub(crate) mod pasid_prefix {
    use super::Bits;
    /// Privileged Mode Requested, byte 1 bit 7.
    pub const PMR: Bits = Bits::new(23, 1);
    /// Execute Requested, byte 1 bit 6.
    pub const ER: Bits = Bits::new(22, 1);
    /// Reserved, byte 1 bits 5:4.
    pub const RSVD: Bits = Bits::new(20, 2);
    /// `PASID[19:0]`, byte 1 bit 3 through byte 3 bit 0.
    pub const PASID: Bits = Bits::new(0, 20);
}

/// ECRC Variant bits of the header DW0, treated as Set for the ECRC (§2.7.1): `Type[0]`
/// (symbol 0 bit 0, changes on Type 1 → Type 0 configuration conversion) and EP (symbol 2
/// bit 6). The same bits of an End-End TLP Prefix are invariant.
pub(crate) const ECRC_VARIANT_MASK: u32 = (1 << dw0::TYPE.lo) | dw0::EP.mask();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_dw0_tile_all_32_bits_once() {
        let all = [
            dw0::FMT,
            dw0::TYPE,
            dw0::T9,
            dw0::TC,
            dw0::T8,
            dw0::ATTR2_IDO,
            dw0::LN,
            dw0::TH,
            dw0::TD,
            dw0::EP,
            dw0::ATTR1_RO,
            dw0::ATTR0_NS,
            dw0::AT,
            dw0::LENGTH,
        ];
        let mut seen = 0u32;
        for f in all {
            assert_eq!(seen & f.mask(), 0, "{f:?} overlaps");
            seen |= f.mask();
        }
        assert_eq!(seen, u32::MAX);
    }

    #[test]
    fn put_and_get_are_inverse_and_mask_excess_bits() {
        let f = Bits::new(4, 4);
        assert_eq!(f.put(0, 0x1f), 0xf0);
        assert_eq!(f.get(f.put(0xffff_ffff, 0x5)), 0x5);
        assert_eq!(Bits::new(0, 32).mask(), u32::MAX);
    }
}
