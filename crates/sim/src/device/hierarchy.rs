//! Which simulated classes derive from which, for Get and Enumerate of a class that has no
//! instances of its own (an abstract or association parent): firmware answers those with the
//! instances of its subclasses.
//!
//! Evidence, from the firmware corpus (`fixtures/wsman-responses/`): enumerating
//! `CIM_PhysicalPackage` returned `CIM_Card` items, `CIM_ServiceAvailableToElement` returned
//! `CIM_AssociatedPowerManagementService` items (consoles poll the power state that way), and
//! `CIM_SystemPackaging` returned `CIM_ComputerSystemPackage` items: the WS-CIM binding's
//! polymorphism (DMTF DSP0227). But enumerating `CIM_Chip`, which has instances of its own,
//! returned only `CIM_Chip` items, not its subclass `CIM_PhysicalMemory`'s, and likewise
//! `CIM_IEEE8021xSettings`: a class with instances of its own answers with those alone. So the
//! simulator does both, and the abstract `CIM_SettingData` answers with every setting-data
//! class. The parents below are from the DMTF CIM schema and Intel's AMT class reference; only
//! classes the simulator holds are listed.

/// (class, its direct parent).
const PARENTS: &[(&str, &str)] = &[
    // Physical elements.
    ("CIM_Card", "CIM_PhysicalPackage"),
    // CIM_Chassis derives from CIM_PhysicalPackage through CIM_PhysicalFrame in the schema,
    // but firmware's CIM_PhysicalPackage enumeration holds only the CIM_Card: left out.
    ("CIM_PhysicalPackage", "CIM_PhysicalElement"),
    ("CIM_PhysicalMemory", "CIM_Chip"),
    ("CIM_Chip", "CIM_PhysicalComponent"),
    ("CIM_PhysicalComponent", "CIM_PhysicalElement"),
    // Associations.
    ("CIM_ComputerSystemPackage", "CIM_SystemPackaging"),
    (
        "CIM_AssociatedPowerManagementService",
        "CIM_ServiceAvailableToElement",
    ),
    // Setting data.
    ("AMT_BootSettingData", "CIM_BootSettingData"),
    ("CIM_BootSettingData", "CIM_SettingData"),
    ("CIM_BootSourceSetting", "CIM_SettingData"),
    ("CIM_BootConfigSetting", "CIM_SettingData"),
    ("IPS_KVMRedirectionSettingData", "CIM_SettingData"),
    ("AMT_EthernetPortSettings", "CIM_SettingData"),
    ("AMT_TLSSettingData", "CIM_SettingData"),
    ("IPS_ScreenSettingData", "CIM_SettingData"),
    ("AMT_EnvironmentDetectionSettingData", "CIM_SettingData"),
    ("AMT_KerberosSettingData", "CIM_SettingData"),
    ("IPS_IEEE8021xSettings", "CIM_IEEE8021xSettings"),
    ("CIM_IEEE8021xSettings", "CIM_SettingData"),
    ("CIM_WiFiEndpointSettings", "CIM_SettingData"),
];

/// Whether `class` is `ancestor` or derives from it.
pub(crate) fn is_a(class: &str, ancestor: &str) -> bool {
    let mut current = class;
    // The table has no cycles; the bound keeps a mistake in it from looping.
    for _ in 0..=PARENTS.len() {
        if current == ancestor {
            return true;
        }
        match PARENTS.iter().find(|(child, _)| *child == current) {
            Some((_, parent)) => current = parent,
            None => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn ancestry() {
        assert!(super::is_a("CIM_Card", "CIM_PhysicalElement"));
        assert!(!super::is_a("CIM_Chassis", "CIM_PhysicalPackage"));
        assert!(super::is_a("IPS_IEEE8021xSettings", "CIM_SettingData"));
        assert!(!super::is_a("CIM_SettingData", "CIM_BootSourceSetting"));
        assert!(!super::is_a("AMT_GeneralSettings", "CIM_SettingData"));
    }
}
