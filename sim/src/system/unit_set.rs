//! The remapping units of a platform as a host driver keeps them, VT-d's DRHDs and
//! AMD-Vi's IOMMUs alike: the units in scenario order and the unit each device sits behind
//! (its DRHD device scope, its IVHD). What a unit holds and how it is driven stays with the
//! unit (`vtd_unit`, `amdvi_unit`); this is only the bookkeeping both drivers share.

use super::driver::UnitId;
use std::collections::BTreeMap;
use std::ops::{Index, IndexMut};

/// What the driver's set of units needs of one unit.
pub(super) trait HostUnit {
    /// The unit's capabilities (VT-d CAP/ECAP, AMD-Vi's EFR and friends).
    type Caps: Clone;
    /// Its name in the scenario ("dmar0", "iommu0").
    fn name(&self) -> &str;
    /// Its capabilities.
    fn caps(&self) -> &Self::Caps;
    /// The register writes that bring it up, in order: `(offset, value)`.
    fn boot_registers(&self) -> Vec<(u32, u64)>;
}

/// A driver's units, in scenario order, and the unit each device sits behind.
#[derive(Debug, Clone)]
pub(super) struct UnitSet<U> {
    /// The units, in scenario order.
    units: Vec<U>,
    /// The index of the unit each device sits behind, by device name.
    scope: BTreeMap<String, usize>,
}

impl<U: HostUnit> UnitSet<U> {
    /// No units yet, room for `n`.
    pub(super) fn with_capacity(n: usize) -> Self {
        UnitSet {
            units: Vec::with_capacity(n),
            scope: BTreeMap::new(),
        }
    }

    /// Adds the next unit and the devices behind it.
    pub(super) fn push(&mut self, unit: U, devices: &[String]) {
        let u = self.units.len();
        self.units.push(unit);
        self.scope.extend(devices.iter().map(|d| (d.clone(), u)));
    }

    /// The first unit.
    pub(super) fn first(&self) -> Option<&U> {
        self.units.first()
    }

    /// The index of the unit a device sits behind.
    pub(super) fn index_of(&self, device: &str) -> Option<usize> {
        self.scope.get(device).copied()
    }

    /// The unit a device sits behind.
    pub(super) fn unit_of(&self, device: &str) -> Option<UnitId> {
        self.index_of(device).map(|u| UnitId(u as u8))
    }

    /// Every unit's index, ascending.
    pub(super) fn all(&self) -> Vec<usize> {
        (0..self.units.len()).collect()
    }

    /// The units a domain's capabilities are checked against and its invalidations go to:
    /// those it spans (`units`), or every unit while it spans none.
    pub(super) fn units_of(&self, units: &[usize]) -> Vec<usize> {
        if units.is_empty() {
            self.all()
        } else {
            units.to_vec()
        }
    }

    /// A refusal or failure on unit `u`: prefixed with the unit's name when there are
    /// several.
    pub(super) fn qualify(&self, u: usize, message: String) -> String {
        if self.units.len() > 1 {
            format!("{}: {message}", self.units[u].name())
        } else {
            message
        }
    }

    /// The register writes of boot, unit by unit: `(unit, offset, value)`.
    pub(super) fn boot_registers(&self) -> Vec<(UnitId, u32, u64)> {
        let mut v = Vec::new();
        for (u, unit) in self.units.iter().enumerate() {
            let id = UnitId(u as u8);
            v.extend(unit.boot_registers().into_iter().map(|(o, x)| (id, o, x)));
        }
        v
    }

    /// The units' names and capabilities, in order.
    pub(super) fn described(&self) -> Vec<(String, U::Caps)> {
        let named = |u: &U| (u.name().to_owned(), u.caps().clone());
        self.units.iter().map(named).collect()
    }
}

impl<U> Index<usize> for UnitSet<U> {
    type Output = U;

    fn index(&self, u: usize) -> &U {
        &self.units[u]
    }
}

impl<U> IndexMut<usize> for UnitSet<U> {
    fn index_mut(&mut self, u: usize) -> &mut U {
        &mut self.units[u]
    }
}
