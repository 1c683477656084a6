//! The factory state of the simulated device: one list of instances per class, with the keys
//! and values real firmware reports (`docs/wsman.md` section 3.2 and the fixture corpus).
//! Addresses are from the documentation ranges (192.0.2.0/24, 00-00-5E-00-53-xx).

use std::collections::BTreeMap;

use oobkit_wsman::{Epr, Instance, Value};

use crate::DeviceConfig;

fn instance(class: &str, props: &[(&str, &str)]) -> Instance {
    let mut i = Instance::new(class);
    for (name, value) in props {
        i.push(name, *value);
    }
    i
}

fn with_array(mut i: Instance, name: &str, values: &[&str]) -> Instance {
    for v in values {
        i.push(name, *v);
    }
    i
}

/// Properties a Put may change, per class (the rest are read-only and ignored, as AMT does).
pub(crate) fn writable(class: &str) -> &'static [&'static str] {
    match class {
        "AMT_BootSettingData" => &[
            "BIOSPause",
            "BIOSSetup",
            "BootMediaIndex",
            "ConfigurationDataReset",
            "EnforceSecureBoot",
            "FirmwareVerbosity",
            "ForcedProgressEvents",
            "IDERBootDevice",
            "LockKeyboard",
            "LockPowerButton",
            "LockResetButton",
            "LockSleepButton",
            "ReflashBIOS",
            "SecureErase",
            "UseIDER",
            "UseSOL",
            "UseSafeMode",
            "UserPasswordBypass",
        ],
        "AMT_RedirectionService" => &["ListenerEnabled"],
        "IPS_KVMRedirectionSettingData" => &[
            "Is5900PortEnabled",
            "OptInPolicy",
            "OptInPolicyTimeout",
            "SessionTimeout",
            "DefaultScreen",
        ],
        "IPS_OptInService" => &["OptInRequired", "OptInDisplayTimeout"],
        "AMT_GeneralSettings" => &[
            "HostName",
            "DomainName",
            "PingResponseEnabled",
            "RmcpPingResponseEnabled",
            "SharedFQDN",
            "IdleWakeTimeout",
        ],
        "AMT_EthernetPortSettings" => &[
            "DHCPEnabled",
            "IPAddress",
            "SubnetMask",
            "DefaultGateway",
            "PrimaryDNS",
            "SecondaryDNS",
            "IpSyncEnabled",
            "SharedStaticIp",
        ],
        "AMT_TLSSettingData" => &[
            "Enabled",
            "AcceptNonSecureConnections",
            "MutualAuthentication",
        ],
        "AMT_TimeSynchronizationService" => &["LocalTimeSyncEnabled"],
        _ => &[],
    }
}

pub(crate) fn initial(config: &DeviceConfig) -> BTreeMap<String, Vec<Instance>> {
    let fw = config.firmware.as_str();
    let build = "1917";
    let mut classes: BTreeMap<String, Vec<Instance>> = BTreeMap::new();
    let mut add = |i: Instance| classes.entry(i.class.clone()).or_default().push(i);

    add(instance(
        "AMT_GeneralSettings",
        &[
            ("AMTNetworkEnabled", "1"),
            ("DDNSPeriodicUpdateInterval", "1440"),
            ("DDNSTTL", "900"),
            ("DDNSUpdateByDHCPServerEnabled", "true"),
            ("DDNSUpdateEnabled", "false"),
            ("DHCPv6ConfigurationTimeout", "0"),
            ("DigestRealm", &config.realm),
            ("DomainName", ""),
            ("ElementName", "Intel(r) AMT: General Settings"),
            ("HostName", &config.hostname),
            ("HostOSFQDN", ""),
            ("IdleWakeTimeout", "65535"),
            ("InstanceID", "Intel(r) AMT: General Settings"),
            ("NetworkInterfaceEnabled", "true"),
            ("PingResponseEnabled", "true"),
            ("PowerSource", "0"),
            ("PreferredAddressFamily", "0"),
            ("PresenceNotificationInterval", "0"),
            ("PrivacyLevel", "0"),
            ("RmcpPingResponseEnabled", "true"),
            ("SharedFQDN", "true"),
            ("WsmanOnlyMode", "false"),
        ],
    ));
    add(instance(
        "AMT_SetupAndConfigurationService",
        &[
            ("CreationClassName", "AMT_SetupAndConfigurationService"),
            (
                "ElementName",
                "Intel(r) AMT Setup and Configuration Service",
            ),
            ("EnabledState", "5"),
            ("Name", "Intel(r) AMT Setup and Configuration Service"),
            ("PasswordModel", "1"),
            ("ProvisioningMode", "1"),
            ("ProvisioningServerOTP", ""),
            ("ProvisioningState", "2"),
            ("RequestedState", "12"),
            ("SystemCreationClassName", "CIM_ComputerSystem"),
            ("SystemName", "Intel(r) AMT"),
            ("ZeroTouchConfigurationEnabled", "false"),
        ],
    ));
    for (id, version) in [
        ("AMT", fw),
        ("Flash", fw),
        ("Netstack", fw),
        ("AMTApps", fw),
        ("Build Number", build),
        ("Recovery Version", fw),
        ("Recovery Build Num", build),
        ("Sku", "16392"),
        ("VendorID", "8086"),
        ("AMT FW Core Version", fw),
    ] {
        add(instance(
            "CIM_SoftwareIdentity",
            &[
                ("InstanceID", id),
                ("IsEntity", "true"),
                ("VersionString", version),
            ],
        ));
    }
    add(instance(
        "CIM_ComputerSystem",
        &[
            ("CreationClassName", "CIM_ComputerSystem"),
            ("ElementName", "Managed System"),
            ("EnabledState", "2"),
            ("Name", "ManagedSystem"),
            ("RequestedState", "0"),
        ],
    ));
    let mut assoc = with_array(
        instance("CIM_AssociatedPowerManagementService", &[]),
        "AvailableRequestedPowerStates",
        &["2", "4", "5", "7", "8", "10", "12", "14"],
    );
    assoc.set("PowerState", "2");
    assoc.set(
        "ServiceProvided",
        Value::from(Epr::new(
            "CIM_PowerManagementService",
            [
                ("CreationClassName", "CIM_PowerManagementService"),
                ("Name", "Intel(r) AMT Power Management Service"),
                ("SystemCreationClassName", "CIM_ComputerSystem"),
                ("SystemName", "Intel(r) AMT"),
            ],
        )),
    );
    assoc.set(
        "UserOfService",
        Value::from(Epr::new(
            "CIM_ComputerSystem",
            [
                ("CreationClassName", "CIM_ComputerSystem"),
                ("Name", "ManagedSystem"),
            ],
        )),
    );
    add(assoc);
    add(instance(
        "CIM_PowerManagementService",
        &[
            ("CreationClassName", "CIM_PowerManagementService"),
            ("ElementName", "Intel(r) AMT Power Management Service"),
            ("EnabledState", "5"),
            ("Name", "Intel(r) AMT Power Management Service"),
            ("RequestedState", "12"),
            ("SystemCreationClassName", "CIM_ComputerSystem"),
            ("SystemName", "Intel(r) AMT"),
        ],
    ));
    add(with_array(
        with_array(
            instance(
                "CIM_PowerManagementCapabilities",
                &[
                    ("ElementName", "Power Management Capabilities"),
                    ("InstanceID", "Intel(r) AMT:PowerManagementCapabilities"),
                ],
            ),
            "PowerChangeCapabilities",
            &["3", "4"],
        ),
        "PowerStatesSupported",
        &["2", "4", "5", "7", "8", "10", "12", "14"],
    ));
    add(instance(
        "AMT_BootSettingData",
        &[
            ("BIOSLastStatus", "2"),
            ("BIOSLastStatus", "0"),
            ("BIOSPause", "false"),
            ("BIOSSetup", "false"),
            ("BootMediaIndex", "0"),
            ("ConfigurationDataReset", "false"),
            ("ElementName", "Intel(r) AMT Boot Configuration Settings"),
            ("EnforceSecureBoot", "false"),
            ("FirmwareVerbosity", "0"),
            ("ForcedProgressEvents", "false"),
            ("IDERBootDevice", "0"),
            ("InstanceID", "Intel(r) AMT:BootSettingData 0"),
            ("LockKeyboard", "false"),
            ("LockPowerButton", "false"),
            ("LockResetButton", "false"),
            ("LockSleepButton", "false"),
            ("OptionsCleared", "true"),
            ("OwningEntity", "Intel(r) AMT"),
            ("ReflashBIOS", "false"),
            ("SecureErase", "false"),
            ("UseIDER", "false"),
            ("UseSOL", "false"),
            ("UseSafeMode", "false"),
            ("UserPasswordBypass", "false"),
        ],
    ));
    add(instance(
        "AMT_BootCapabilities",
        &[
            ("BIOSPause", "true"),
            ("BIOSReflash", "true"),
            ("BIOSSecureBoot", "true"),
            ("BIOSSetup", "true"),
            ("ElementName", "Intel(r) AMT: Boot Capabilities"),
            ("ForceCDorDVDBoot", "true"),
            ("ForceDiagnosticBoot", "false"),
            ("ForceHardDriveBoot", "true"),
            ("ForcePXEBoot", "true"),
            ("IDER", "true"),
            ("InstanceID", "Intel(r) AMT:BootCapabilities 0"),
            ("SOL", "true"),
            ("SecureErase", "false"),
        ],
    ));
    add(instance(
        "CIM_BootConfigSetting",
        &[
            ("ElementName", "Intel(r) AMT: Boot Configuration"),
            ("InstanceID", "Intel(r) AMT: Boot Configuration 0"),
        ],
    ));
    for (id, structured) in [
        ("Intel(r) AMT: Force PXE Boot", "CIM:Network:1"),
        ("Intel(r) AMT: Force Hard-drive Boot", "CIM:Hard-Disk:1"),
        ("Intel(r) AMT: Force CD/DVD Boot", "CIM:CD/DVD:1"),
    ] {
        add(instance(
            "CIM_BootSourceSetting",
            &[
                ("ElementName", id),
                ("InstanceID", id),
                ("StructuredBootString", structured),
            ],
        ));
    }
    add(instance(
        "CIM_BootService",
        &[
            ("CreationClassName", "CIM_BootService"),
            ("ElementName", "Intel(r) AMT Boot Service"),
            ("EnabledState", "32769"),
            ("Name", "Intel(r) AMT Boot Service"),
            ("OperationalStatus", "0"),
            ("RequestedState", "12"),
            ("SystemCreationClassName", "CIM_ComputerSystem"),
            ("SystemName", "Intel(r) AMT"),
        ],
    ));
    add(instance(
        "AMT_RedirectionService",
        &[
            ("CreationClassName", "AMT_RedirectionService"),
            ("ElementName", "Intel(r) AMT Redirection Service"),
            ("EnabledState", "32771"),
            ("ListenerEnabled", "true"),
            ("Name", "Intel(r) AMT Redirection Service"),
            ("SystemCreationClassName", "CIM_ComputerSystem"),
            ("SystemName", "Intel(r) AMT"),
        ],
    ));
    add(instance(
        "CIM_KVMRedirectionSAP",
        &[
            ("CreationClassName", "CIM_KVMRedirectionSAP"),
            ("ElementName", "KVM Redirection Service Access Point"),
            ("EnabledState", "2"),
            ("KVMProtocol", "4"),
            ("Name", "KVM Redirection Service Access Point"),
            ("RequestedState", "2"),
            ("SystemCreationClassName", "CIM_ComputerSystem"),
            ("SystemName", "ManagedSystem"),
        ],
    ));
    add(instance(
        "IPS_KVMRedirectionSettingData",
        &[
            ("BackToBackFbMode", "true"),
            ("DefaultScreen", "0"),
            ("ElementName", "Intel(r) KVM Redirection Settings"),
            ("EnabledByMEBx", "true"),
            ("GreyscalePixelFormatSupported", "true"),
            ("InstanceID", "Intel(r) KVM Redirection Settings"),
            ("InitialDecimationModeForLowRes", "0"),
            ("Is5900PortEnabled", "false"),
            ("OptInPolicy", "false"),
            ("OptInPolicyTimeout", "120"),
            ("SessionTimeout", "3"),
            ("ZlibControlSupported", "true"),
        ],
    ));
    add(instance(
        "IPS_OptInService",
        &[
            ("CanModifyOptInPolicy", "1"),
            ("CreationClassName", "IPS_OptInService"),
            ("ElementName", "Intel(r) AMT OptIn Service"),
            ("Name", "Intel(r) AMT OptIn Service"),
            ("OptInCodeTimeout", "120"),
            ("OptInDisplayTimeout", "300"),
            ("OptInRequired", "0"),
            ("OptInState", "0"),
            ("SystemCreationClassName", "CIM_ComputerSystem"),
            ("SystemName", "Intel(r) AMT"),
        ],
    ));
    let mut audit = instance(
        "AMT_AuditLog",
        &[
            ("AuditState", "16"),
            ("CurrentNumberOfRecords", "0"),
            ("ElementName", "Intel(r) AMT:Audit Log"),
            ("EnabledState", "2"),
            ("MaxAllowedAuditors", "1"),
            ("MaxNumberOfRecords", "0"),
            ("Name", "Intel(r) AMT:Audit Log"),
            ("PercentageFree", "100"),
            ("StoragePolicy", "0"),
        ],
    );
    audit.set(
        "TimeOfLastRecord",
        Value::Datetime("1970-01-01T00:00:00Z".into()),
    );
    add(audit);
    add(instance(
        "AMT_MessageLog",
        &[
            ("CreationClassName", "AMT_MessageLog"),
            ("CurrentNumberOfRecords", "0"),
            ("ElementName", "Intel(r) AMT:MessageLog 1"),
            ("EnabledState", "2"),
            ("IsFrozen", "false"),
            ("MaxNumberOfRecords", "390"),
            ("Name", "Intel(r) AMT:MessageLog 1"),
            ("OverwritePolicy", "2"),
        ],
    ));
    add(instance(
        "AMT_TimeSynchronizationService",
        &[
            ("CreationClassName", "AMT_TimeSynchronizationService"),
            ("ElementName", "Intel(r) AMT Time Synchronization Service"),
            ("EnabledState", "5"),
            ("LocalTimeSyncEnabled", "0"),
            ("Name", "Intel(r) AMT Time Synchronization Service"),
            ("SystemCreationClassName", "CIM_ComputerSystem"),
            ("SystemName", "Intel(r) AMT"),
            ("TimeSource", "1"),
        ],
    ));
    for (n, ip, mac, kind) in [
        ("0", "192.0.2.10", "00-00-5e-00-53-01", "0"),
        ("1", "", "00-00-5e-00-53-02", "3"),
    ] {
        add(with_array(
            instance(
                "AMT_EthernetPortSettings",
                &[
                    ("DHCPEnabled", "true"),
                    (
                        "DefaultGateway",
                        if ip.is_empty() { "" } else { "192.0.2.1" },
                    ),
                    ("ElementName", "Intel(r) AMT Ethernet Port Settings"),
                    ("IPAddress", ip),
                    (
                        "InstanceID",
                        &format!("Intel(r) AMT Ethernet Port Settings {n}"),
                    ),
                    ("IpSyncEnabled", "true"),
                    ("LinkIsUp", if ip.is_empty() { "false" } else { "true" }),
                    ("MACAddress", mac),
                    ("PhysicalConnectionType", kind),
                    ("PrimaryDNS", if ip.is_empty() { "" } else { "192.0.2.53" }),
                    ("SharedDynamicIP", "true"),
                    ("SharedMAC", "true"),
                    ("SharedStaticIp", "false"),
                    (
                        "SubnetMask",
                        if ip.is_empty() { "" } else { "255.255.255.0" },
                    ),
                ],
            ),
            "LinkPolicy",
            &["1", "14"],
        ));
    }
    for id in [
        "Intel(r) AMT 802.3 TLS Settings",
        "Intel(r) AMT LMS TLS Settings",
    ] {
        add(instance(
            "AMT_TLSSettingData",
            &[
                ("AcceptNonSecureConnections", "true"),
                ("ElementName", id),
                ("Enabled", "false"),
                ("InstanceID", id),
                ("MutualAuthentication", "false"),
            ],
        ));
    }
    // Hardware inventory: what MeshCommander reads, for one plain desktop.
    let guid: String = config.uuid.iter().map(|b| format!("{b:02X}")).collect();
    add(instance(
        "CIM_ComputerSystemPackage",
        &[("PlatformGUID", &guid)],
    ));
    add(instance(
        "CIM_Chassis",
        &[
            ("ChassisPackageType", "3"),
            ("CreationClassName", "CIM_Chassis"),
            ("ElementName", "Managed System Chassis"),
            ("Manufacturer", "oobkit"),
            ("Model", "Simulated AMT"),
            ("PackageType", "3"),
            ("SerialNumber", "SIM-0001"),
            ("Tag", "CIM_Chassis"),
            ("Version", "1.0"),
        ],
    ));
    add(instance(
        "CIM_Card",
        &[
            ("CreationClassName", "CIM_Card"),
            ("ElementName", "Managed System Base Board"),
            ("Manufacturer", "oobkit"),
            ("Model", "SIM-BOARD"),
            ("PackageType", "9"),
            ("SerialNumber", "SIM-BB-0001"),
            ("Tag", "CIM_Card"),
            ("Version", "1.0"),
        ],
    ));
    let mut bios = instance(
        "CIM_BIOSElement",
        &[
            ("ElementName", "Primary BIOS"),
            ("Manufacturer", "oobkit"),
            ("Name", "Primary BIOS"),
            ("PrimaryBIOS", "true"),
            ("SoftwareElementID", "SIM.BIOS.0001"),
            ("SoftwareElementState", "2"),
            ("TargetOperatingSystem", "66"),
            ("Version", "SIM.BIOS.0001"),
        ],
    );
    bios.set(
        "ReleaseDate",
        Value::Datetime("2026-01-01T00:00:00Z".into()),
    );
    add(bios);
    add(instance(
        "CIM_Processor",
        &[
            ("CPUStatus", "1"),
            ("CreationClassName", "CIM_Processor"),
            ("CurrentClockSpeed", "3000"),
            ("DeviceID", "CPU 0"),
            ("ElementName", "Managed System CPU"),
            ("EnabledState", "2"),
            ("ExternalBusClockSpeed", "100"),
            ("Family", "205"),
            ("MaxClockSpeed", "4200"),
            ("Stepping", "2"),
            ("SystemCreationClassName", "CIM_ComputerSystem"),
            ("SystemName", "ManagedSystem"),
            ("UpgradeMethod", "52"),
        ],
    ));
    for bank in ["BANK 0", "BANK 1"] {
        add(instance(
            "CIM_PhysicalMemory",
            &[
                ("BankLabel", bank),
                ("Capacity", "8589934592"),
                ("CreationClassName", "CIM_PhysicalMemory"),
                ("ElementName", "Managed System Memory Chip"),
                ("FormFactor", "13"),
                ("Manufacturer", "oobkit"),
                ("MemoryType", "26"),
                ("PartNumber", "SIM-DIMM-8G"),
                ("SerialNumber", "SIM-MEM"),
                ("Speed", "0"),
                ("Tag", bank),
            ],
        ));
    }
    add(instance(
        "CIM_MediaAccessDevice",
        &[
            ("Capabilities", "4"),
            ("CreationClassName", "CIM_MediaAccessDevice"),
            ("DeviceID", "MEDIA DEV 0"),
            ("ElementName", "Managed System Media Access Device"),
            ("EnabledDefault", "2"),
            ("EnabledState", "0"),
            ("MaxMediaSize", "500107862"),
            ("OperationalStatus", "0"),
            ("RequestedState", "12"),
            ("Security", "2"),
            ("SystemCreationClassName", "CIM_ComputerSystem"),
            ("SystemName", "ManagedSystem"),
        ],
    ));
    add(instance(
        "CIM_Chip",
        &[
            ("CanBeFRUed", "true"),
            ("CreationClassName", "CIM_Chip"),
            ("ElementName", "Managed System Processor Chip"),
            ("Manufacturer", "oobkit"),
            ("OperationalStatus", "0"),
            ("Tag", "CPU 0"),
            ("Version", "Simulated CPU"),
        ],
    ));
    // No plain CIM_PhysicalPackage: firmware has none, and enumerating the class answers with
    // its subclasses' instances (the board's CIM_Card, the CIM_Chassis; see `hierarchy`).
    add_from_firmware(&mut classes);
    classes
}

/// Every class of the firmware corpus not modelled above gets the instances firmware reported
/// (see `firmware.rs`): consoles query such classes at first contact (host-based setup state,
/// authorization, inventory), and an answer in firmware's own words beats a fault. Classes
/// modelled above keep their coherent, stateful values and gain the properties firmware reports
/// that the model does not set (with firmware's values), so no console finds one missing;
/// properties stay in firmware's (alphabetical) order.
fn add_from_firmware(classes: &mut BTreeMap<String, Vec<Instance>>) {
    use oobkit_wsman::{Response, ResponseBody};
    let modelled: Vec<String> = classes.keys().cloned().collect();
    let mut filled: Vec<String> = Vec::new();
    for (path, xml) in super::firmware::REPLIES {
        // Every corpus file parses (the wsman crate's fixture test); a reply that did not would
        // only leave its class unanswered.
        let Ok(reply) = Response::parse(xml, 200) else {
            debug_assert!(false, "{path} does not parse");
            continue;
        };
        let instances = match reply.body {
            ResponseBody::Instance(instance) => vec![instance],
            ResponseBody::Items { items, .. } => {
                items.into_iter().filter_map(|item| item.instance).collect()
            }
            _ => Vec::new(),
        };
        for instance in instances {
            if !modelled.contains(&instance.class) {
                classes
                    .entry(instance.class.clone())
                    .or_default()
                    .push(instance);
            } else if !filled.contains(&instance.class) {
                filled.push(instance.class.clone());
                for ours in classes.get_mut(&instance.class).into_iter().flatten() {
                    fill_in(ours, &instance);
                }
            }
        }
    }
}

/// Adds to `ours` every property of `firmware` it lacks (all values of an array), then sorts
/// the properties by name, keeping an array's values in order.
fn fill_in(ours: &mut Instance, firmware: &Instance) {
    let lacking: Vec<&str> = firmware
        .properties
        .iter()
        .map(|p| p.name.as_str())
        .filter(|name| ours.get(name).is_none())
        .collect();
    for property in &firmware.properties {
        if lacking.contains(&property.name.as_str()) {
            ours.properties.push(property.clone());
        }
    }
    ours.properties.sort_by(|a, b| a.name.cmp(&b.name));
}
