//! The Non-Flit Mode PASID TLP Prefix (PCIe Base Specification 6.0 §6.20.2.1, Table 6-15),
//! an End-End TLP Prefix (§2.2.10.1, §2.2.10.4) carried in the DW before the header.
//!
//! Layout (DW read big-endian): Fmt = 100b (bits 31:29), Type = 1_0001b (bits 28:24: End-End,
//! `E[3:0]` = PASID), Privileged Mode Requested = bit 23 (byte 1 bit 7), Execute Requested =
//! bit 22 (byte 1 bit 6), bits 21:20 Reserved, `PASID[19:0]` = bits 19:0. Checked against the
//! 6.x spec text of Table 6-15. (One open-source exerciser places ER/PMR at bits 20/21; that
//! disagrees with the table and is not followed here.)

use super::field::{dw0, pasid_prefix};
use super::header::{fmt_code, type_code};
use std::fmt;

/// The PASID TLP Prefix's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PasidPrefix {
    /// `PASID[19:0]` (§6.20.2.2) in bits 19:0. Bits 21:20 carry the prefix DW's Reserved
    /// bits 21:20 as received (0 in every TLP formed correctly); see [`PasidPrefix::id`] and
    /// [`PasidPrefix::reserved`]. At most [`PasidPrefix::MAX_RAW`].
    pub pasid: u32,
    /// Execute Requested (§6.20.2.3).
    pub execute: bool,
    /// Privileged Mode Requested (§6.20.2.4).
    pub privileged: bool,
}

/// Why a prefix DW is not a PASID prefix this codec accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixError {
    /// Another prefix type (Local, ExtTPH, vendor-defined): not modelled.
    Unsupported {
        /// `Type[4:0]` of the prefix.
        ty: u8,
    },
}

impl PasidPrefix {
    /// The largest PASID (20 bits).
    pub const MAX_PASID: u32 = pasid_prefix::PASID.max();
    /// The largest [`PasidPrefix::pasid`]: `PASID[19:0]` with both Reserved bits 21:20 set.
    pub const MAX_RAW: u32 = pasid_prefix::PASID.mask() | pasid_prefix::RSVD.mask();

    /// `PASID[19:0]`, without the Reserved bits carried above it.
    pub const fn id(self) -> u32 {
        pasid_prefix::PASID.get(self.pasid)
    }

    /// The Reserved bits 21:20 of the prefix DW, in place (`0x30_0000` when both are set).
    pub const fn reserved(self) -> u32 {
        self.pasid & pasid_prefix::RSVD.mask()
    }

    /// The prefix DW. `pasid` bits above 21 are dropped; `encode` checks the range first.
    pub const fn to_dw(self) -> u32 {
        let mut dw = dw0::FMT.put(0, fmt_code::PREFIX as u32);
        dw = dw0::TYPE.put(dw, type_code::PREFIX_PASID as u32);
        dw = pasid_prefix::PMR.put(dw, self.privileged as u32);
        dw = pasid_prefix::ER.put(dw, self.execute as u32);
        dw = pasid_prefix::RSVD.put(dw, pasid_prefix::RSVD.get(self.pasid));
        pasid_prefix::PASID.put(dw, self.pasid)
    }

    /// Parses a prefix DW whose Fmt is already known to be 100b. Reserved bits 21:20 are
    /// carried in [`PasidPrefix::pasid`], not refused.
    pub const fn from_dw(dw: u32) -> Result<PasidPrefix, PrefixError> {
        let ty = dw0::TYPE.get(dw) as u8;
        if ty != type_code::PREFIX_PASID {
            return Err(PrefixError::Unsupported { ty });
        }
        Ok(PasidPrefix {
            pasid: dw & (pasid_prefix::PASID.mask() | pasid_prefix::RSVD.mask()),
            execute: pasid_prefix::ER.flag(dw),
            privileged: pasid_prefix::PMR.flag(dw),
        })
    }
}

impl fmt::Display for PasidPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PASID 0x{:05x}{}{}",
            self.id(),
            if self.execute { " ER" } else { "" },
            if self.privileged { " PMR" } else { "" }
        )?;
        match self.reserved() {
            0 => Ok(()),
            r => write!(f, " (Reserved bits 21:20 = {:#x})", r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasid_prefix_follows_table_6_15() {
        // Fmt 100b << 29 | Type 1_0001b << 24 = 0x9100_0000; PMR bit 23, ER bit 22.
        let p = PasidPrefix {
            pasid: 0x1_2345,
            execute: true,
            privileged: true,
        };
        assert_eq!(p.to_dw(), 0x91C1_2345);
        assert_eq!(PasidPrefix::from_dw(0x91C1_2345), Ok(p));
        assert_eq!(
            PasidPrefix::from_dw(0x9000_0000),
            Err(PrefixError::Unsupported { ty: 0x10 })
        );
        // Reserved bits 21:20 are carried, not refused, and re-encode as they came.
        let r = PasidPrefix::from_dw(0x9131_2345).unwrap();
        assert_eq!((r.id(), r.reserved()), (0x1_2345, 0x30_0000));
        assert_eq!(r.to_dw(), 0x9131_2345);
    }
}
