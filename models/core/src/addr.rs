//! Address spaces and identifiers, one newtype each (after rust-vmm `vm-memory`'s
//! `address.rs`), so that an IOVA can never be passed where a physical address is expected.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! address_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        pub struct $name(pub u64);

        impl $name {
            /// The raw address value.
            pub const fn raw(self) -> u64 {
                self.0
            }

            /// `self + offset`, or `None` on overflow of the 64-bit space.
            pub fn checked_add(self, offset: u64) -> Option<$name> {
                self.0.checked_add(offset).map($name)
            }

            /// The offset of this address within an aligned block of `size` bytes
            /// (`size` must be a power of two).
            pub const fn offset_in(self, size: u64) -> u64 {
                self.0 & (size - 1)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
    };
}

address_newtype!(
    /// A host physical address: what reaches the memory system after translation.
    PhysAddr
);
address_newtype!(
    /// An I/O virtual address: what a device puts in a memory request TLP, before the IOMMU.
    Iova
);

/// Size of a CPU cache line in bytes, the default of every x86 part snoopsim models
/// (Intel SDM Vol. 2, CPUID leaf 01H EBX[15:8] "CLFLUSH line size" = 8 × 8 bytes).
pub const DEFAULT_LINE_BYTES: u64 = 64;

/// The address of a cache line: a physical address with the offset bits dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LineAddr(u64);

impl LineAddr {
    /// The line of `line_bytes` (a power of two) that holds `pa`.
    pub const fn containing(pa: PhysAddr, line_bytes: u64) -> LineAddr {
        LineAddr(pa.0 & !(line_bytes - 1))
    }

    /// The physical address of the first byte of the line.
    pub const fn base(self) -> PhysAddr {
        PhysAddr(self.0)
    }
}

impl fmt::Display for LineAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {:#x}", self.0)
    }
}

/// A PCI requester or completer ID: bus, device, function (PCIe Base Spec 6.0, §2.2.6.2:
/// Bus[15:8], Device[7:3], Function[2:0]).
///
/// Written and parsed as `bb:dd.f` in hex, as `lspci` prints it.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Bdf(u16);

/// Why a `bb:dd.f` string is not a requester ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{input}' is not a PCI requester ID: expected bb:dd.f in hex (bus 00-ff, device 00-1f, function 0-7), {why}")]
pub struct BdfParseError {
    input: String,
    why: &'static str,
}

impl Bdf {
    /// Largest device number (5 bits).
    pub const MAX_DEVICE: u8 = 0x1f;
    /// Largest function number (3 bits, without ARI).
    pub const MAX_FUNCTION: u8 = 0x7;

    /// Builds an ID; `None` if the device or function number does not fit its field.
    pub fn new(bus: u8, device: u8, function: u8) -> Option<Bdf> {
        (device <= Self::MAX_DEVICE && function <= Self::MAX_FUNCTION)
            .then(|| Bdf(u16::from(bus) << 8 | u16::from(device) << 3 | u16::from(function)))
    }

    /// The 16-bit value as it appears in a TLP header.
    pub const fn from_raw(raw: u16) -> Bdf {
        Bdf(raw)
    }

    /// The 16-bit value as it appears in a TLP header.
    pub const fn raw(self) -> u16 {
        self.0
    }

    /// Bus number.
    pub const fn bus(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// Device number.
    pub const fn device(self) -> u8 {
        ((self.0 >> 3) & 0x1f) as u8
    }

    /// Function number.
    pub const fn function(self) -> u8 {
        (self.0 & 0x7) as u8
    }

    /// Device and function together, as the VT-d context table indexes them.
    pub const fn devfn(self) -> u8 {
        (self.0 & 0xff) as u8
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02x}:{:02x}.{:x}",
            self.bus(),
            self.device(),
            self.function()
        )
    }
}

impl FromStr for Bdf {
    type Err = BdfParseError;

    fn from_str(s: &str) -> Result<Bdf, BdfParseError> {
        let err = |why| BdfParseError {
            input: s.to_owned(),
            why,
        };
        let (bus, rest) = s.split_once(':').ok_or_else(|| err("the ':' is missing"))?;
        let (dev, func) = rest
            .split_once('.')
            .ok_or_else(|| err("the '.' is missing"))?;
        let hex = |t: &str, max: u8, why| {
            if t.is_empty() || t.len() > 2 {
                return Err(err(why));
            }
            u8::from_str_radix(t, 16)
                .ok()
                .filter(|v| *v <= max)
                .ok_or_else(|| err(why))
        };
        let bus = hex(bus, 0xff, "bad bus number")?;
        let dev = hex(dev, Self::MAX_DEVICE, "bad device number")?;
        let func = hex(func, Self::MAX_FUNCTION, "bad function number")?;
        Bdf::new(bus, dev, func).ok_or_else(|| err("out of range"))
    }
}

impl TryFrom<String> for Bdf {
    type Error = BdfParseError;
    fn try_from(s: String) -> Result<Bdf, BdfParseError> {
        s.parse()
    }
}

impl From<Bdf> for String {
    fn from(b: Bdf) -> String {
        b.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bdf_layout_follows_pcie_requester_id() {
        // 03:1f.7 → bus 0x03 in [15:8], device 0x1f in [7:3], function 7 in [2:0] = 0x03ff.
        let b: Bdf = "03:1f.7".parse().unwrap();
        assert_eq!(b.raw(), 0x03ff);
        assert_eq!((b.bus(), b.device(), b.function()), (3, 0x1f, 7));
        assert_eq!(b.devfn(), 0xff);
        assert_eq!(b.to_string(), "03:1f.7");
        assert_eq!(Bdf::from_raw(0x0108).to_string(), "01:01.0");
    }

    #[test]
    fn bdf_rejects_fields_that_do_not_fit() {
        for bad in [
            "", "00:20.0", "00:00.8", "100:00.0", "00-00.0", "00:00", "zz:00.0",
        ] {
            assert!(bad.parse::<Bdf>().is_err(), "{bad} should not parse");
        }
        assert!(Bdf::new(0, 0x20, 0).is_none());
    }

    #[test]
    fn line_addr_drops_offset_bits() {
        let l = LineAddr::containing(PhysAddr(0x1234_567f), 64);
        assert_eq!(l.base(), PhysAddr(0x1234_5640));
    }
}
