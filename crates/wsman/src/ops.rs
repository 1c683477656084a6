//! Typed helpers for the operations users need most (`docs/wsman.md` section 3.2, rows 1-22).
//! Each builds a [`Request`]; replies are read through the generic model. Anything else is
//! reachable by class name with [`Request::get`], [`Request::enumerate`], [`Request::put`] and
//! [`Request::invoke`].

use crate::{Epr, Property, Request, Value};

fn arg(name: &str, value: impl Into<Value>) -> Property {
    Property {
        name: name.to_owned(),
        value: value.into(),
    }
}

/// The `ManagedElement` reference every power method takes: the managed computer system.
pub fn managed_system() -> Epr {
    Epr::new(
        "CIM_ComputerSystem",
        [
            ("CreationClassName", "CIM_ComputerSystem"),
            ("Name", "ManagedSystem"),
        ],
    )
}

/// A power action, as `CIM_PowerManagementService.RequestPowerStateChange` states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PowerAction {
    /// 2: power on.
    On,
    /// 4: sleep (deep).
    Sleep,
    /// 5: power cycle (off hard, then on).
    Cycle,
    /// 7: hibernate.
    Hibernate,
    /// 8: power off (hard).
    Off,
    /// 10: master bus reset.
    Reset,
    /// 12: graceful off (soft), through the OS.
    SoftOff,
    /// 14: graceful reset, through the OS.
    SoftReset,
}

impl PowerAction {
    /// Every action, in code order.
    pub const ALL: [Self; 8] = [
        Self::On,
        Self::Sleep,
        Self::Cycle,
        Self::Hibernate,
        Self::Off,
        Self::Reset,
        Self::SoftOff,
        Self::SoftReset,
    ];

    /// The action a PowerState code asks for, if it is one of these.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|action| action.code() == code)
    }

    /// The PowerState code sent.
    pub const fn code(self) -> u32 {
        match self {
            Self::On => 2,
            Self::Sleep => 4,
            Self::Cycle => 5,
            Self::Hibernate => 7,
            Self::Off => 8,
            Self::Reset => 10,
            Self::SoftOff => 12,
            Self::SoftReset => 14,
        }
    }
}

/// Text for a `PowerState` value (`docs/wsman.md` section 3.2, row 1).
pub fn power_state_text(code: u32) -> &'static str {
    match code {
        2 => "on",
        3 => "sleep (light)",
        4 => "sleep (deep)",
        5 => "power cycle (off hard)",
        6 => "power cycle (off soft)",
        7 => "hibernate",
        8 => "off (hard)",
        9 => "off (soft)",
        10 => "master bus reset",
        11 => "diagnostic interrupt (NMI)",
        12 => "off (soft graceful)",
        13 => "off (hard graceful)",
        14 => "master bus reset (graceful)",
        15 => "power cycle (off soft graceful)",
        16 => "power cycle (off hard graceful)",
        _ => "unknown",
    }
}

/// Row 1: request a power state change.
pub fn request_power_state_change(action: PowerAction) -> Request {
    Request::invoke(
        "CIM_PowerManagementService",
        "RequestPowerStateChange",
        vec![
            arg("PowerState", action.code().to_string()),
            arg("ManagedElement", managed_system()),
        ],
    )
}

/// Row 2: the current power state (`PowerState` of the reply).
pub fn get_power_state() -> Request {
    Request::get("CIM_AssociatedPowerManagementService")
}

/// A one-time boot device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BootDevice {
    /// Network (PXE).
    Pxe,
    /// Hard drive.
    Disk,
    /// CD/DVD.
    Cd,
    /// BIOS setup (through `AMT_BootSettingData.BIOSSetup`, not a boot source).
    BiosSetup,
}

impl BootDevice {
    /// The `CIM_BootSourceSetting` InstanceID, if this device is a boot source.
    pub fn source_instance_id(self) -> Option<&'static str> {
        match self {
            Self::Pxe => Some("Intel(r) AMT: Force PXE Boot"),
            Self::Disk => Some("Intel(r) AMT: Force Hard-drive Boot"),
            Self::Cd => Some("Intel(r) AMT: Force CD/DVD Boot"),
            Self::BiosSetup => None,
        }
    }
}

/// InstanceID of the one `CIM_BootConfigSetting`.
pub const BOOT_CONFIG_SETTING: &str = "Intel(r) AMT: Boot Configuration 0";
/// InstanceID of the one `AMT_BootSettingData`.
pub const BOOT_SETTING_DATA: &str = "Intel(r) AMT:BootSettingData 0";

/// Row 5: read the boot settings (Get first, edit, Put the whole instance back).
pub fn get_boot_setting_data() -> Request {
    Request::get("AMT_BootSettingData")
}

/// Row 7: set (or, with `None`, clear) the one-time boot order.
pub fn change_boot_order(device: Option<BootDevice>) -> Request {
    let arguments = device
        .and_then(BootDevice::source_instance_id)
        .map(|id| {
            vec![arg(
                "Source",
                Epr::new("CIM_BootSourceSetting", [("InstanceID", id)]),
            )]
        })
        .unwrap_or_default();
    Request::invoke("CIM_BootConfigSetting", "ChangeBootOrder", arguments)
        .selector("InstanceID", BOOT_CONFIG_SETTING)
}

/// Row 9: make the boot configuration the next single-use one (Role 1, as every client sends).
pub fn set_boot_config_role() -> Request {
    Request::invoke(
        "CIM_BootService",
        "SetBootConfigRole",
        vec![
            arg(
                "BootConfigSetting",
                Epr::new(
                    "CIM_BootConfigSetting",
                    [("InstanceID", BOOT_CONFIG_SETTING)],
                ),
            ),
            arg("Role", "1"),
        ],
    )
}

/// The `AMT_RedirectionService` EnabledState values.
pub mod redirection_state {
    /// IDE-R and SOL disabled.
    pub const NONE: u32 = 32768;
    /// IDE-R enabled.
    pub const IDER: u32 = 32769;
    /// SOL enabled.
    pub const SOL: u32 = 32770;
    /// Both enabled.
    pub const BOTH: u32 = 32771;
}

/// Row 10: the redirection service (SOL and IDE-R state, `ListenerEnabled`).
pub fn get_redirection_service() -> Request {
    Request::get("AMT_RedirectionService")
}

/// Row 10: set SOL / IDE-R ([`redirection_state`]).
pub fn redirection_request_state_change(state: u32) -> Request {
    Request::invoke(
        "AMT_RedirectionService",
        "RequestStateChange",
        vec![arg("RequestedState", state.to_string())],
    )
}

/// Row 11: the KVM service access point (`EnabledState` 2 enabled, 3 disabled, 6 enabled but
/// offline).
pub fn get_kvm_redirection_sap() -> Request {
    Request::get("CIM_KVMRedirectionSAP")
}

/// Row 11: enable or disable KVM.
pub fn kvm_request_state_change(enable: bool) -> Request {
    Request::invoke(
        "CIM_KVMRedirectionSAP",
        "RequestStateChange",
        vec![arg("RequestedState", if enable { "2" } else { "3" })],
    )
}

/// Row 12: KVM settings (`Is5900PortEnabled`, `OptInPolicy`, `SessionTimeout`, ...).
pub fn get_kvm_settings() -> Request {
    Request::get("IPS_KVMRedirectionSettingData")
}

/// Row 13: user consent state (`OptInRequired`, `OptInState`).
pub fn get_opt_in_service() -> Request {
    Request::get("IPS_OptInService")
}

/// Row 13: ask for a consent code to be displayed on the managed machine.
pub fn start_opt_in() -> Request {
    Request::invoke("IPS_OptInService", "StartOptIn", Vec::new())
}

/// Row 13: send the code the user read off the screen.
pub fn send_opt_in_code(code: u32) -> Request {
    Request::invoke(
        "IPS_OptInService",
        "SendOptInCode",
        vec![arg("OptInCode", code.to_string())],
    )
}

/// Row 13: cancel a consent request or session.
pub fn cancel_opt_in() -> Request {
    Request::invoke("IPS_OptInService", "CancelOptIn", Vec::new())
}

/// Row 14: general settings (host name, digest realm, ...).
pub fn get_general_settings() -> Request {
    Request::get("AMT_GeneralSettings")
}

/// Row 15: provisioning mode and state.
pub fn get_setup_and_configuration() -> Request {
    Request::get("AMT_SetupAndConfigurationService")
}

/// Row 16: software identity (firmware version in the `AMT` instance's `VersionString`).
pub fn enumerate_software_identity() -> Request {
    Request::enumerate("CIM_SoftwareIdentity")
}

/// Row 17: the hardware inventory classes MeshCommander reads.
pub const HARDWARE_INVENTORY: [&str; 11] = [
    "CIM_ComputerSystemPackage",
    "CIM_Chassis",
    "CIM_Card",
    "CIM_BIOSElement",
    "CIM_Processor",
    "CIM_PhysicalMemory",
    "CIM_MediaAccessDevice",
    "CIM_Chip",
    "CIM_PhysicalPackage",
    "CIM_SystemPackaging",
    "AMT_AssetTable",
];

/// Row 18: read audit log records from `start_index` (1-based).
pub fn read_audit_log(start_index: u32) -> Request {
    Request::invoke(
        "AMT_AuditLog",
        "ReadRecords",
        vec![arg("StartIndex", start_index.to_string())],
    )
}

/// Row 19: start reading the event log.
pub fn event_log_position_to_first() -> Request {
    Request::invoke("AMT_MessageLog", "PositionToFirstRecord", Vec::new())
}

/// Row 19: read up to `max` event log records (AMT returns at most 390).
pub fn event_log_get_records(iteration: &str, max: u32) -> Request {
    Request::invoke(
        "AMT_MessageLog",
        "GetRecords",
        vec![
            arg("IterationIdentifier", iteration),
            arg("MaxReadRecords", max.to_string()),
        ],
    )
}

/// Row 20: read the device clock (`Ta0`).
pub fn get_low_accuracy_time() -> Request {
    Request::invoke(
        "AMT_TimeSynchronizationService",
        "GetLowAccuracyTimeSynch",
        Vec::new(),
    )
}

/// Row 20: set the device clock: `ta0` as just read, `now` the console's UNIX seconds (sent
/// as both Tm1 and Tm2, as MeshCommander does).
pub fn set_high_accuracy_time(ta0: u64, now: u64) -> Request {
    Request::invoke(
        "AMT_TimeSynchronizationService",
        "SetHighAccuracyTimeSynch",
        vec![
            arg("Ta0", ta0.to_string()),
            arg("Tm1", now.to_string()),
            arg("Tm2", now.to_string()),
        ],
    )
}

/// Row 21: network settings of both ports.
pub fn enumerate_ethernet_ports() -> Request {
    Request::enumerate("AMT_EthernetPortSettings")
}

/// Row 22: TLS settings (remote and local).
pub fn enumerate_tls_settings() -> Request {
    Request::enumerate("AMT_TLSSettingData")
}

/// One `AMT_AuditLog` record (the base64 `EventRecords` of `ReadRecords`), in the layout
/// MeshCommander decodes: AuditAppID (u16 BE), EventID (u16 BE), InitiatorType (0 = HTTP
/// digest user, then name length and name), TimeStamp (u32 BE), MCLocationType, NetAddress
/// (length, bytes), ExtendedData (length, bytes). Kerberos and local initiators are carried as
/// an empty name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Application (16 remote control, 17 redirection manager, 19 security admin, 20 time).
    pub app_id: u16,
    /// Event within the application.
    pub event_id: u16,
    /// The digest user who did it.
    pub initiator: String,
    /// Device time, UNIX seconds.
    pub time: u32,
}

impl AuditRecord {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let name = &self.initiator.as_bytes()[..self.initiator.len().min(255)];
        let mut bytes = Vec::with_capacity(13 + name.len());
        bytes.extend_from_slice(&self.app_id.to_be_bytes());
        bytes.extend_from_slice(&self.event_id.to_be_bytes());
        bytes.push(0);
        bytes.push(name.len() as u8);
        bytes.extend_from_slice(name);
        bytes.extend_from_slice(&self.time.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0]);
        bytes
    }

    /// Decodes a record, or `None` if it is truncated.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let app_id = u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]);
        let event_id = u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]);
        let mut at = 5;
        let initiator = if *bytes.get(4)? == 0 {
            let len = usize::from(*bytes.get(5)?);
            at = 6 + len;
            String::from_utf8_lossy(bytes.get(6..at)?).into_owned()
        } else {
            String::new()
        };
        let time = u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?);
        Some(Self {
            app_id,
            event_id,
            initiator,
            time,
        })
    }

    /// A name for the application and event, where known.
    pub fn describe(&self) -> &'static str {
        match (self.app_id, self.event_id) {
            (16, 0) => "remote power control",
            (16, 3) => "boot options changed",
            (17, 0) => "redirection (SOL/IDE-R) state changed",
            (17, 1) => "KVM state changed",
            (19, _) => "settings changed",
            (20, _) => "clock set",
            _ => "event",
        }
    }
}

/// One `AMT_MessageLog` (event log) record: 21 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRecord {
    /// Device time, UNIX seconds (little-endian on the wire).
    pub time: u32,
    /// DeviceAddress.
    pub device_address: u8,
    /// EventSensorType.
    pub sensor_type: u8,
    /// EventType.
    pub event_type: u8,
    /// EventOffset.
    pub offset: u8,
    /// EventSourceType.
    pub source_type: u8,
    /// EventSeverity.
    pub severity: u8,
    /// SensorNumber.
    pub sensor_number: u8,
    /// Entity.
    pub entity: u8,
    /// EntityInstance.
    pub entity_instance: u8,
    /// EventData.
    pub data: [u8; 8],
}

impl EventRecord {
    /// Encodes the 21 bytes.
    pub fn encode(&self) -> [u8; 21] {
        let mut b = [0u8; 21];
        b[..4].copy_from_slice(&self.time.to_le_bytes());
        b[4..13].copy_from_slice(&[
            self.device_address,
            self.sensor_type,
            self.event_type,
            self.offset,
            self.source_type,
            self.severity,
            self.sensor_number,
            self.entity,
            self.entity_instance,
        ]);
        b[13..].copy_from_slice(&self.data);
        b
    }

    /// Decodes 21 bytes, or `None` if there are fewer.
    pub fn decode(b: &[u8]) -> Option<Self> {
        let b: &[u8; 21] = b.get(..21)?.try_into().ok()?;
        Some(Self {
            time: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            device_address: b[4],
            sensor_type: b[5],
            event_type: b[6],
            offset: b[7],
            source_type: b[8],
            severity: b[9],
            sensor_number: b[10],
            entity: b[11],
            entity_instance: b[12],
            data: b[13..21].try_into().ok()?,
        })
    }
}

/// What a console shows about an AMT at a glance, read from the replies of
/// [`get_setup_and_configuration`], [`get_power_state`], [`get_redirection_service`],
/// [`get_kvm_redirection_sap`] and [`get_opt_in_service`], and the firmware's
/// `CIM_SoftwareIdentity` instances.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AmtStatus {
    /// The firmware version (`VersionString` of the `AMT` software identity), if given.
    pub firmware: Option<String>,
    /// `ProvisioningState` in words: pre-provisioning, in provisioning, provisioned.
    pub provisioning_state: &'static str,
    /// `ProvisioningMode` in words: admin control mode (ACM), client control mode (CCM).
    pub provisioning_mode: &'static str,
    /// `PowerState` (CIM codes: 2 on, 8 off...).
    pub power_state: u32,
    /// The redirection listener is on.
    pub listener: bool,
    /// SOL is enabled (and the listener on).
    pub sol: bool,
    /// IDE-R is enabled (and the listener on).
    pub ider: bool,
    /// KVM is enabled.
    pub kvm: bool,
    /// `OptInRequired`: what user consent is needed for.
    pub consent: ConsentRequired,
    /// `OptInState`: where consent stands (0 not started, 1 requested, 2 code displayed, 3
    /// received, 4 in session).
    pub consent_state: u32,
}

/// What user consent (`IPS_OptInService.OptInRequired`) is required for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConsentRequired {
    /// Nothing.
    None,
    /// KVM sessions.
    Kvm,
    /// Every redirection session (SOL, IDE-R, KVM).
    All,
    /// A value this version does not know.
    Unknown,
}

impl ConsentRequired {
    /// In words.
    pub fn text(self) -> &'static str {
        match self {
            Self::None => "not required",
            Self::Kvm => "required for KVM",
            Self::All => "required for all redirection",
            Self::Unknown => "unknown",
        }
    }

    /// Whether a session of this kind needs consent first.
    pub fn needed_for(self, kvm: bool) -> bool {
        matches!(self, Self::All) || (kvm && matches!(self, Self::Kvm))
    }
}

impl AmtStatus {
    /// Reads the replies' instances.
    pub fn from_instances(
        software: &[crate::Instance],
        setup: &crate::Instance,
        power: &crate::Instance,
        redirection: &crate::Instance,
        kvm: &crate::Instance,
        opt_in: &crate::Instance,
    ) -> Self {
        let number = |i: &crate::Instance, name: &str| -> u32 {
            i.text(name).and_then(|v| v.parse().ok()).unwrap_or(0)
        };
        let redirection_state = number(redirection, "EnabledState");
        let listener = redirection.text("ListenerEnabled") == Some("true");
        Self {
            firmware: software
                .iter()
                .find(|i| i.text("InstanceID") == Some("AMT"))
                .and_then(|i| i.text("VersionString"))
                .map(str::to_owned),
            provisioning_state: match setup.text("ProvisioningState") {
                Some("0") => "pre-provisioning",
                Some("1") => "in provisioning",
                Some("2") => "provisioned",
                _ => "unknown",
            },
            provisioning_mode: match setup.text("ProvisioningMode") {
                Some("1") => "admin control mode (ACM)",
                Some("4") => "client control mode (CCM)",
                _ => "unknown mode",
            },
            power_state: number(power, "PowerState"),
            listener,
            // AMT_RedirectionService.EnabledState: 32769 IDE-R, 32770 SOL, 32771 both.
            sol: listener && matches!(redirection_state, 32770 | 32771),
            ider: listener && matches!(redirection_state, 32769 | 32771),
            // CIM_KVMRedirectionSAP.EnabledState: 2 enabled, 6 enabled but offline.
            kvm: matches!(kvm.text("EnabledState"), Some("2" | "6")),
            consent: match opt_in.text("OptInRequired") {
                Some("0") => ConsentRequired::None,
                Some("1") => ConsentRequired::Kvm,
                Some("4294967295") => ConsentRequired::All,
                _ => ConsentRequired::Unknown,
            },
            consent_state: number(opt_in, "OptInState"),
        }
    }
}
