//! `platform.iommu.vtd.units` and `platform.iommu.amdvi.units`: a platform's IOMMU units,
//! each with its own capabilities and device scope, resolved the same way for both vendors.
//!
//! A VT-d platform lists its remapping units in the ACPI DMAR table (one DRHD each, VT-d
//! §8.3), an AMD platform its IOMMUs in the IVRS table (one IVHD each). Every device sits
//! behind exactly one of them. A unit's `capabilities` name only the fields in which it
//! differs from the platform's; they are merged over the platform's field by field and the
//! result is validated as the vendor's capabilities are. Without `units` a platform has one
//! unit with the platform's capabilities and every device.

use super::Step;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Most IOMMU units a platform may have.
pub const MAX_UNITS: usize = 32;

/// One IOMMU unit as a scenario writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitSpec {
    /// Name, for reports ("dmar0", "iommu1", ...).
    pub name: String,
    /// The capability fields in which this unit differs from the platform's
    /// `capabilities` (merged over them, field by field).
    #[serde(default)]
    pub capabilities: Map<String, Value>,
    /// The devices (scenario names) whose requests this unit translates (its device scope).
    #[serde(default)]
    pub devices: Vec<String>,
}

/// A unit with its capabilities resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit<C> {
    /// Name.
    pub name: String,
    /// The unit's capability fields merged over the platform's.
    pub capabilities: C,
    /// Its device scope, by device name.
    pub devices: Vec<String>,
}

/// A problem in `units`, with its path in the scenario.
pub type UnitError = (Vec<Step>, String);

/// A vendor's capabilities, as the units of its platform resolve them.
pub trait UnitCapabilities: Clone + Serialize + DeserializeOwned {
    /// The field at fault and why, when the capabilities describe hardware that cannot
    /// exist or that the model cannot simulate.
    fn check(&self) -> Result<(), (&'static str, String)>;
}

impl UnitCapabilities for vtd::regs::Capabilities {
    fn check(&self) -> Result<(), (&'static str, String)> {
        self.validate().map_err(|e| (e.field, e.message))
    }
}

impl UnitCapabilities for amdvi::regs::Capabilities {
    fn check(&self) -> Result<(), (&'static str, String)> {
        self.validate().map_err(|e| (e.field, e.message))
    }
}

/// What differs between the vendors' unit lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vendor {
    /// The key under `platform.iommu`: "vtd" or "amdvi".
    pub key: &'static str,
    /// The name of the one unit of a platform without `units`.
    pub first: &'static str,
    /// What a unit is called in messages: "remapping unit", "IOMMU".
    pub noun: &'static str,
}

/// Intel VT-d: DMAR remapping units.
pub const VTD: Vendor = Vendor {
    key: "vtd",
    first: "dmar0",
    noun: "remapping unit",
};

/// AMD-Vi: IOMMUs (IVHDs).
pub const AMDVI: Vendor = Vendor {
    key: "amdvi",
    first: "iommu0",
    noun: "IOMMU",
};

fn step(s: &str) -> Step {
    Step::Key(s.to_owned())
}

impl Vendor {
    /// `platform.iommu.<key>` + `rest`.
    pub fn path(&self, rest: &[Step]) -> Vec<Step> {
        let mut v = vec![step("platform"), step("iommu"), step(self.key)];
        v.extend_from_slice(rest);
        v
    }

    /// The units, in order, with their capabilities merged over `caps` and validated;
    /// `devices` are the scenario's device names in scenario order, each of which must be
    /// in exactly one unit's scope.
    pub fn units<C: UnitCapabilities>(
        &self,
        caps: &C,
        list: Option<&[UnitSpec]>,
        devices: &[&str],
    ) -> Result<Vec<Unit<C>>, UnitError> {
        let Some(list) = list else {
            caps.check()
                .map_err(|(field, m)| (self.path(&[step("capabilities"), step(field)]), m))?;
            return Ok(vec![Unit {
                name: self.first.to_owned(),
                capabilities: caps.clone(),
                devices: devices.iter().map(|d| (*d).to_owned()).collect(),
            }]);
        };
        let here = |i: usize, rest: &[Step]| {
            let mut p = vec![step("units"), Step::Index(i)];
            p.extend_from_slice(rest);
            self.path(&p)
        };
        if list.is_empty() || list.len() > MAX_UNITS {
            return Err((
                self.path(&[step("units")]),
                format!(
                    "{} units: expected 1 to {MAX_UNITS} (or leave units out for one unit with \
                     every device)",
                    list.len()
                ),
            ));
        }
        let mut units: Vec<Unit<C>> = Vec::with_capacity(list.len());
        // Which unit's scope holds each device, and where it is listed.
        let mut scope: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for (i, u) in list.iter().enumerate() {
            if u.name.trim().is_empty() {
                return Err((here(i, &[step("name")]), "the name is empty".to_owned()));
            }
            if let Some(j) = units.iter().position(|v| v.name == u.name) {
                return Err((
                    here(i, &[step("name")]),
                    format!("unit name \"{}\" is already used by units[{j}]", u.name),
                ));
            }
            for (j, d) in u.devices.iter().enumerate() {
                if !devices.contains(&d.as_str()) {
                    return Err((
                        here(i, &[step("devices"), Step::Index(j)]),
                        format!("no device is named \"{d}\""),
                    ));
                }
                if let Some((a, b)) = scope.insert(d.as_str(), (i, j)) {
                    return Err((
                        here(i, &[step("devices"), Step::Index(j)]),
                        format!(
                            "device \"{d}\" is already in the scope of \"{}\" \
                             (units[{a}].devices[{b}]): a device sits behind exactly one unit",
                            list[a].name
                        ),
                    ));
                }
            }
            units.push(Unit {
                name: u.name.clone(),
                capabilities: self.merged(caps, i, u)?,
                devices: u.devices.clone(),
            });
        }
        if let Some(k) = devices.iter().position(|d| !scope.contains_key(d)) {
            let names: Vec<String> = units.iter().map(|u| format!("\"{}\"", u.name)).collect();
            return Err((
                vec![step("devices"), Step::Index(k), step("name")],
                format!(
                    "device \"{}\" is in no {}'s device scope: list it in the devices of one \
                     of platform.iommu.{}.units ({})",
                    devices[k],
                    self.noun,
                    self.key,
                    names.join(", ")
                ),
            ));
        }
        Ok(units)
    }

    /// Unit `i`'s capabilities: its fields over the platform's `caps`, validated. A
    /// refusal is blamed on the unit's field, unless the platform's own value is wrong and
    /// the unit keeps it.
    fn merged<C: UnitCapabilities>(
        &self,
        caps: &C,
        i: usize,
        u: &UnitSpec,
    ) -> Result<C, UnitError> {
        let own = |field: &str| {
            let mut p = vec![step("units"), Step::Index(i), step("capabilities")];
            if !field.is_empty() {
                p.push(step(field));
            }
            self.path(&p)
        };
        let mut merged = match serde_json::to_value(caps) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err((
                    own(""),
                    "internal error: capabilities do not encode".to_owned(),
                ))
            }
        };
        merged.extend(u.capabilities.clone());
        let c: C = serde_path_to_error::deserialize(Value::Object(merged)).map_err(|e| {
            let field = e.path().iter().next().map(|s| s.to_string());
            let msg = e.inner().to_string();
            // An unknown field has no path of its own: serde names it in the message.
            let field = field.or_else(|| {
                msg.strip_prefix("unknown field `")
                    .and_then(|r| r.split('`').next())
                    .map(str::to_owned)
            });
            (own(field.as_deref().unwrap_or("")), msg)
        })?;
        c.check().map_err(|(field, m)| {
            // The platform's value, when it is wrong by itself and the unit keeps it.
            let platform_wrong =
                !u.capabilities.contains_key(field) && caps.check().is_err_and(|(p, _)| p == field);
            let path = if platform_wrong {
                self.path(&[step("capabilities"), step(field)])
            } else {
                own(field)
            };
            (path, format!("{}: {m}", u.name))
        })?;
        Ok(c)
    }
}
