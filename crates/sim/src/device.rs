//! A simulated Intel AMT device, sans-IO: it answers WS-Management requests from one coherent
//! state, so that a power change shows in the next Get, boot settings persist, and the
//! redirection, KVM and user-consent state gate redirection sessions the way a real AMT does.
//!
//! The state lives in the CIM instances themselves (the power state is the `PowerState` of
//! `CIM_AssociatedPowerManagementService`, SOL is the `EnabledState` of
//! `AMT_RedirectionService`, ...), so what a Get shows and what the device does cannot
//! disagree.
//!
//! ```
//! use oobkit_sim::{Context, Device, DeviceConfig};
//! use oobkit_wsman::{ops, Response, ResponseBody, Style};
//!
//! let mut device = Device::new(DeviceConfig::new("16.1.25", [7; 16]));
//! let ctx = Context { now_unix: 1_700_000_000, random: 42 };
//! let power_off = ops::request_power_state_change(ops::PowerAction::Off).to_xml(Style::Intel)?;
//! let reply = device.handle(&power_off, ctx);
//! assert_eq!(reply.status, 200);
//! let get = ops::get_power_state().to_xml(Style::Intel)?;
//! let reply = device.handle(&get, ctx);
//! let ResponseBody::Instance(state) = Response::parse(&reply.body, reply.status)?.body else { panic!() };
//! assert_eq!(state.text("PowerState"), Some("8"));
//! # Ok::<(), oobkit_wsman::Error>(())
//! ```
mod firmware;
mod hierarchy;
mod model;

use std::collections::{BTreeMap, VecDeque};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use oobkit_wsman::ns::action;
use oobkit_wsman::ops::{AuditRecord, EventRecord, PowerAction};
use oobkit_wsman::{
    Error as WsmanError, Fault, Instance, Operation, Property, Reply, Request, SelectorValue,
    Value, class_name,
};

/// What the device is.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeviceConfig {
    /// Firmware version, `major.minor.micro` (reported by software identity, the HTTP `Server`
    /// header and the redirection session manager).
    pub firmware: String,
    /// Digest realm: `Digest:` and 32 upper-case hex digits, as AMT builds it.
    pub realm: String,
    /// Host name in the general settings.
    pub hostname: String,
    /// Platform UUID.
    pub uuid: [u8; 16],
}

impl DeviceConfig {
    /// A device with `firmware`, its realm and UUID derived from 16 random bytes.
    pub fn new(firmware: impl Into<String>, random: [u8; 16]) -> Self {
        let hex: String = random.iter().map(|b| format!("{b:02X}")).collect();
        Self {
            firmware: firmware.into(),
            realm: format!("Digest:{hex}"),
            hostname: "amt-sim".into(),
            uuid: random,
        }
    }
}

/// What the caller supplies for each request: the time and fresh randomness.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// UNIX seconds.
    pub now_unix: u64,
    /// A fresh random number (used for consent codes and enumeration contexts).
    pub random: u32,
}

/// A reply: HTTP status and SOAP body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsmanReply {
    /// 200, or 400/500 for faults, as AMT sends them.
    pub status: u16,
    /// The SOAP envelope.
    pub body: String,
}

/// Something that happened on the device that its IO driver may want to show.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceEvent {
    /// A user-consent code is "on the screen" of the managed machine.
    ConsentCodeDisplayed(u32),
    /// The power state changed.
    PowerChanged {
        /// Previous `PowerState`.
        from: u32,
        /// New `PowerState`.
        to: u32,
    },
}

/// Most enumeration contexts kept open at once; the oldest is dropped beyond this.
const MAX_ENUMERATIONS: usize = 32;
/// Most audit and event log records kept.
const MAX_LOG: usize = 390;

struct Enumeration {
    id: String,
    remaining: VecDeque<Instance>,
}

/// The device.
pub struct Device {
    config: DeviceConfig,
    classes: BTreeMap<String, Vec<Instance>>,
    enumerations: VecDeque<Enumeration>,
    sequence: u64,
    clock_offset: i64,
    consent_code: Option<u32>,
    consent_failures: u8,
    boot_source: Option<String>,
    /// `RFBPassword` of `IPS_KVMRedirectionSettingData`: write-only, as on AMT (a Get shows it
    /// empty), so it lives here and not in the instance.
    rfb_password: Option<String>,
    audit: VecDeque<AuditRecord>,
    events_log: VecDeque<EventRecord>,
    events: VecDeque<DeviceEvent>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("firmware", &self.config.firmware)
            .field("power_state", &self.power_state())
            .finish_non_exhaustive()
    }
}

/// `PowerState` codes (see `oobkit_wsman::ops::power_state_text`).
impl Device {
    /// A device in its factory state: powered on, provisioned (admin control mode), SOL,
    /// IDE-R and KVM enabled, no user consent required.
    pub fn new(config: DeviceConfig) -> Self {
        let classes = model::initial(&config);
        Self {
            config,
            classes,
            enumerations: VecDeque::new(),
            sequence: 0,
            clock_offset: 0,
            consent_code: None,
            consent_failures: 0,
            boot_source: None,
            rfb_password: None,
            audit: VecDeque::new(),
            events_log: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DeviceConfig {
        &self.config
    }

    /// The next event for the IO driver, if any.
    pub fn poll_event(&mut self) -> Option<DeviceEvent> {
        self.events.pop_front()
    }

    fn prop(&self, class: &str, name: &str) -> Option<&str> {
        self.classes.get(class)?.first()?.text(name)
    }

    fn prop_u32(&self, class: &str, name: &str) -> u32 {
        self.prop(class, name)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    fn set_prop(&mut self, class: &str, name: &str, value: impl Into<Value>) {
        if let Some(instance) = self.classes.get_mut(class).and_then(|v| v.first_mut()) {
            instance.set(name, value);
        }
    }

    /// The current `PowerState` (2 on, 8 off, ...).
    pub fn power_state(&self) -> u32 {
        self.prop_u32("CIM_AssociatedPowerManagementService", "PowerState")
    }

    /// Whether the redirection listener is on (all redirection needs it).
    pub fn listener_enabled(&self) -> bool {
        self.prop("AMT_RedirectionService", "ListenerEnabled") == Some("true")
    }

    fn redirection_state(&self) -> u32 {
        self.prop_u32("AMT_RedirectionService", "EnabledState")
    }

    /// Whether SOL sessions are allowed.
    pub fn sol_enabled(&self) -> bool {
        self.listener_enabled() && matches!(self.redirection_state(), 32770 | 32771)
    }

    /// Whether IDE-R sessions are allowed.
    pub fn ider_enabled(&self) -> bool {
        self.listener_enabled() && matches!(self.redirection_state(), 32769 | 32771)
    }

    /// Whether KVM is enabled (`EnabledState` 2, or 6 "enabled but offline").
    pub fn kvm_enabled(&self) -> bool {
        self.listener_enabled()
            && matches!(
                self.prop_u32("CIM_KVMRedirectionSAP", "EnabledState"),
                2 | 6
            )
    }

    /// Whether a KVM session may start now: enabled, and user consent given if required
    /// (`OptInRequired` 1 = KVM only, 0xFFFFFFFF = all; `OptInState` 3 received or 4 in
    /// session).
    pub fn kvm_session_allowed(&self) -> bool {
        self.kvm_enabled() && self.consent_satisfied(true)
    }

    /// The password of standard RFB on port 5900 when that port is open: KVM enabled,
    /// `Is5900PortEnabled` true and an `RFBPassword` set (AMT serves 5900 only with one).
    pub fn port_5900_password(&self) -> Option<&str> {
        let enabled =
            self.prop("IPS_KVMRedirectionSettingData", "Is5900PortEnabled") == Some("true");
        (enabled && self.kvm_enabled())
            .then_some(self.rfb_password.as_deref())
            .flatten()
    }

    /// Whether a SOL or IDE-R session may start now as far as consent goes.
    pub fn consent_satisfied(&self, kvm: bool) -> bool {
        let required = self.prop_u32("IPS_OptInService", "OptInRequired");
        let needed = match required {
            0 => false,
            1 => kvm,
            _ => true,
        };
        !needed || matches!(self.prop_u32("IPS_OptInService", "OptInState"), 3 | 4)
    }

    /// Marks consent as in use by a session (`OptInState` 4), as AMT does when KVM starts.
    pub fn consent_in_session(&mut self) {
        if self.prop_u32("IPS_OptInService", "OptInState") == 3 {
            self.set_prop("IPS_OptInService", "OptInState", "4");
        }
    }

    fn reply<'a>(&mut self, request: &'a Request) -> Reply<'a> {
        self.sequence += 1;
        Reply {
            relates_to: &request.message_id,
            sequence: self.sequence,
            resource_uri: (!request.resource_uri.is_empty())
                .then_some(request.resource_uri.as_str()),
        }
    }

    fn fault(&mut self, relates_to: &str, fault: &Fault) -> WsmanReply {
        self.sequence += 1;
        let body = Reply {
            relates_to,
            sequence: self.sequence,
            resource_uri: None,
        }
        .fault(fault);
        WsmanReply {
            status: fault.http_status,
            body,
        }
    }

    /// Answers one WS-Management request (the HTTP body of a `POST /wsman`).
    pub fn handle(&mut self, request_xml: &str, ctx: Context) -> WsmanReply {
        let request = match Request::parse(request_xml) {
            Ok(r) => r,
            Err(WsmanError::MustUnderstand(_)) => return self.fault("", &Fault::must_understand()),
            Err(WsmanError::UnsupportedAction(_)) => {
                return self.fault("", &Fault::action_not_supported());
            }
            Err(_) => return self.fault("", &Fault::invalid_representation()),
        };
        match self.dispatch(&request, ctx) {
            Ok(reply) => reply,
            Err(fault) => self.fault(&request.message_id, &fault),
        }
    }

    fn dispatch(&mut self, request: &Request, ctx: Context) -> Result<WsmanReply, Box<Fault>> {
        let ok = |body: String| WsmanReply { status: 200, body };
        if request.operation == Operation::Identify {
            let version = self.config.firmware.clone();
            return Ok(ok(self
                .reply(request)
                .identify("Intel Corporation", &version)));
        }
        let class = class_name(&request.resource_uri).to_owned();
        if oobkit_wsman::resource_uri(&class) != request.resource_uri {
            return Err(Box::new(Fault::destination_unreachable()));
        }
        // Get and enumerations are polymorphic, as on AMT (see `hierarchy`); the rest act on
        // the class's own instances.
        let held = self.classes.contains_key(&class);
        let polymorphic = matches!(
            request.operation,
            Operation::Get
                | Operation::Enumerate(_)
                | Operation::Pull { .. }
                | Operation::Release { .. }
        );
        if !held && (!polymorphic || self.instances_of(&class).is_empty()) {
            return Err(Box::new(Fault::destination_unreachable()));
        }
        match &request.operation {
            Operation::Get if !held => {
                // A parent class held only through its subclasses: the first instance.
                let instance = self.instances_of(&class)[0].clone();
                let body = self
                    .reply(request)
                    .instance(action::GET, &instance)
                    .map_err(|_| Box::new(Fault::internal_error()))?;
                Ok(ok(body))
            }
            Operation::Get => {
                let index = self.select(&class, request)?;
                let instance = self.classes[&class][index].clone();
                let body = self
                    .reply(request)
                    .instance(action::GET, &instance)
                    .map_err(|_| Box::new(Fault::internal_error()))?;
                Ok(ok(body))
            }
            Operation::Put(body) => {
                let index = self.select(&class, request)?;
                if body.class != class {
                    return Err(Box::new(Fault::invalid_representation()));
                }
                let writable = model::writable(&class);
                if writable.is_empty() {
                    return Err(Box::new(Fault::action_not_supported()));
                }
                if class == "IPS_KVMRedirectionSettingData"
                    && let Some(password) = body.text("RFBPassword")
                    && !password.is_empty()
                {
                    self.rfb_password = Some(password.to_owned());
                }
                let instance = &mut self.classes.get_mut(&class).expect("checked above")[index];
                for property in &body.properties {
                    if property.name == "RFBPassword" {
                        continue; // write-only: kept above, never shown
                    }
                    if writable.contains(&property.name.as_str()) {
                        instance.set(&property.name, property.value.clone());
                    }
                }
                let updated = instance.clone();
                self.log_audit(19, 1, ctx);
                let body = self
                    .reply(request)
                    .instance(action::PUT, &updated)
                    .map_err(|_| Box::new(Fault::internal_error()))?;
                Ok(ok(body))
            }
            Operation::Enumerate(_) => {
                let id = format!(
                    "{:08X}-0000-0000-0000-{:012X}",
                    ctx.random,
                    self.sequence + 1
                );
                if self.enumerations.len() == MAX_ENUMERATIONS {
                    self.enumerations.pop_front();
                }
                let remaining = self.instances_of(&class).into_iter().cloned().collect();
                self.enumerations.push_back(Enumeration {
                    id: id.clone(),
                    remaining,
                });
                Ok(ok(self.reply(request).enumerate(&id)))
            }
            Operation::Pull {
                context,
                max_elements,
                ..
            } => {
                let pos = self
                    .enumerations
                    .iter()
                    .position(|e| &e.id == context)
                    .ok_or_else(|| Box::new(Fault::invalid_enumeration_context()))?;
                // WS-Enumeration's default is one item per Pull.
                let max = max_elements.unwrap_or(1).max(1) as usize;
                let enumeration = &mut self.enumerations[pos];
                let take = max.min(enumeration.remaining.len());
                let batch: Vec<Instance> = enumeration.remaining.drain(..take).collect();
                let next = if enumeration.remaining.is_empty() {
                    self.enumerations.remove(pos);
                    None
                } else {
                    Some(context.clone())
                };
                let body = self
                    .reply(request)
                    .pull(&batch, next.as_deref())
                    .map_err(|_| Box::new(Fault::internal_error()))?;
                Ok(ok(body))
            }
            Operation::Release { context } => {
                let pos = self
                    .enumerations
                    .iter()
                    .position(|e| &e.id == context)
                    .ok_or_else(|| Box::new(Fault::invalid_enumeration_context()))?;
                self.enumerations.remove(pos);
                Ok(ok(self.reply(request).empty(action::RELEASE)))
            }
            Operation::Invoke { method, arguments } => {
                self.select(&class, request)?;
                let outputs = self.invoke(&class, method, arguments, ctx)?;
                let body = self
                    .reply(request)
                    .output(&request.resource_uri, method, &outputs)
                    .map_err(|_| Box::new(Fault::internal_error()))?;
                Ok(ok(body))
            }
            _ => Err(Box::new(Fault::action_not_supported())),
        }
    }

    /// What Get and Enumerate of `class` answer with: its own instances, or when it has none
    /// (an abstract parent, an association parent) those of the classes derived from it. See
    /// `hierarchy` for the evidence.
    fn instances_of(&self, class: &str) -> Vec<&Instance> {
        if let Some(own) = self.classes.get(class).filter(|own| !own.is_empty()) {
            return own.iter().collect();
        }
        self.classes
            .iter()
            .filter(|(name, _)| name.as_str() != class && hierarchy::is_a(name, class))
            .flat_map(|(_, instances)| instances)
            .collect()
    }

    /// The instance the header selectors name: every selector must be a text key the
    /// instance has, with that value. No selectors picks the first instance (AMT lets clients
    /// omit them on singletons).
    fn select(&self, class: &str, request: &Request) -> Result<usize, Box<Fault>> {
        let instances = &self.classes[class];
        if request.selectors.is_empty() {
            return if instances.is_empty() {
                Err(Box::new(Fault::invalid_selectors()))
            } else {
                Ok(0)
            };
        }
        instances
            .iter()
            .position(|instance| {
                request.selectors.iter().all(|s| match &s.value {
                    SelectorValue::Text(v) => instance.text(&s.name) == Some(v.as_str()),
                    SelectorValue::Epr(_) => false,
                })
            })
            .ok_or_else(|| Box::new(Fault::invalid_selectors()))
    }

    fn invoke(
        &mut self,
        class: &str,
        method: &str,
        arguments: &[Property],
        ctx: Context,
    ) -> Result<Vec<Property>, Box<Fault>> {
        let arg = |name: &str| {
            arguments
                .iter()
                .find(|p| p.name == name)
                .and_then(|p| p.value.as_text())
                .map(str::trim)
        };
        let arg_u32 = |name: &str| arg(name).and_then(|v| v.parse::<u32>().ok());
        let out = |pairs: &[(&str, String)]| -> Vec<Property> {
            pairs
                .iter()
                .map(|(n, v)| Property {
                    name: (*n).to_owned(),
                    value: Value::Text(v.clone()),
                })
                .collect()
        };
        let rv = |code: u32| out(&[("ReturnValue", code.to_string())]);
        // CIM methods answer DMTF codes (5 invalid parameter); AMT/IPS methods PT_STATUS codes
        // (0x24 invalid parameter, 0x10 not permitted).
        const CIM_INVALID: u32 = 5;
        const PT_INVALID: u32 = 0x24;
        const PT_NOT_PERMITTED: u32 = 0x10;
        Ok(match (class, method) {
            ("CIM_PowerManagementService", "RequestPowerStateChange") => {
                let Some(requested) = arg_u32("PowerState") else {
                    return Ok(rv(CIM_INVALID));
                };
                let current = self.power_state();
                let on = current == PowerAction::On.code();
                // What the platform ends up in; `None` is a refused transition (ReturnValue 2,
                // as real devices answer for states they will not enter).
                let next = match PowerAction::from_code(requested) {
                    Some(PowerAction::On) => Some(PowerAction::On),
                    Some(PowerAction::Off) => Some(PowerAction::Off),
                    Some(PowerAction::Cycle | PowerAction::Reset) => Some(PowerAction::On),
                    Some(PowerAction::SoftOff) if on => Some(PowerAction::Off),
                    Some(PowerAction::SoftReset) if on => Some(PowerAction::On),
                    Some(state @ (PowerAction::Sleep | PowerAction::Hibernate)) if on => {
                        Some(state)
                    }
                    _ => None,
                }
                .map(PowerAction::code);
                let Some(next) = next else {
                    return Ok(rv(2));
                };
                self.set_prop(
                    "CIM_AssociatedPowerManagementService",
                    "PowerState",
                    next.to_string(),
                );
                if next == PowerAction::On.code() && (requested != PowerAction::On.code() || !on) {
                    // A boot happened: the one-time boot settings are used up.
                    self.boot_source = None;
                    self.log_event(ctx, 0x0F, 0x6F, 0x01);
                }
                if next != current {
                    self.events.push_back(DeviceEvent::PowerChanged {
                        from: current,
                        to: next,
                    });
                }
                self.log_audit(16, 0, ctx);
                rv(0)
            }
            ("CIM_BootService", "SetBootConfigRole") => {
                if arg("Role").is_none() {
                    return Ok(rv(CIM_INVALID));
                }
                rv(0)
            }
            ("CIM_BootConfigSetting", "ChangeBootOrder") => {
                let source = arguments.iter().find(|p| p.name == "Source");
                match source.map(|p| &p.value) {
                    None => self.boot_source = None,
                    Some(Value::Epr(epr)) => {
                        let id = epr
                            .selectors
                            .iter()
                            .find(|s| s.name == "InstanceID")
                            .and_then(|s| s.text());
                        let known = id.is_some_and(|id| {
                            self.classes["CIM_BootSourceSetting"]
                                .iter()
                                .any(|i| i.text("InstanceID") == Some(id))
                        });
                        if !known {
                            return Ok(rv(CIM_INVALID));
                        }
                        self.boot_source = id.map(str::to_owned);
                    }
                    Some(_) => return Ok(rv(CIM_INVALID)),
                }
                self.log_audit(16, 3, ctx);
                rv(0)
            }
            ("AMT_RedirectionService", "RequestStateChange") => match arg_u32("RequestedState") {
                Some(state @ 32768..=32771) => {
                    self.set_prop("AMT_RedirectionService", "EnabledState", state.to_string());
                    self.log_audit(17, 0, ctx);
                    rv(0)
                }
                _ => rv(PT_INVALID),
            },
            ("CIM_KVMRedirectionSAP", "RequestStateChange") => match arg_u32("RequestedState") {
                Some(state @ (2 | 3)) => {
                    self.set_prop("CIM_KVMRedirectionSAP", "EnabledState", state.to_string());
                    self.set_prop("CIM_KVMRedirectionSAP", "RequestedState", state.to_string());
                    self.log_audit(17, 1, ctx);
                    rv(0)
                }
                _ => rv(CIM_INVALID),
            },
            ("IPS_OptInService", "StartOptIn") => {
                if self.prop_u32("IPS_OptInService", "OptInRequired") == 0 {
                    // Nothing to consent to. The PT_STATUS a real device returns here is not
                    // captured anywhere; NOT_PERMITTED is the closest meaning.
                    return Ok(rv(PT_NOT_PERMITTED));
                }
                let code = ctx.random % 1_000_000;
                self.consent_code = Some(code);
                self.consent_failures = 0;
                self.set_prop("IPS_OptInService", "OptInState", "2");
                self.events
                    .push_back(DeviceEvent::ConsentCodeDisplayed(code));
                rv(0)
            }
            ("IPS_OptInService", "SendOptInCode") => {
                let Some(expected) = self.consent_code else {
                    return Ok(rv(PT_NOT_PERMITTED));
                };
                if arg_u32("OptInCode") == Some(expected) {
                    self.consent_code = None;
                    self.set_prop("IPS_OptInService", "OptInState", "3");
                    rv(0)
                } else {
                    // Three wrong codes end the attempt, as the Intel consent flow describes.
                    self.consent_failures += 1;
                    if self.consent_failures >= 3 {
                        self.consent_code = None;
                        self.set_prop("IPS_OptInService", "OptInState", "0");
                    }
                    rv(PT_INVALID)
                }
            }
            ("IPS_OptInService", "CancelOptIn") => {
                self.consent_code = None;
                self.set_prop("IPS_OptInService", "OptInState", "0");
                rv(0)
            }
            ("AMT_AuditLog", "ReadRecords") => {
                let start = arg_u32("StartIndex").unwrap_or(1).max(1) as usize;
                let total = self.audit.len();
                let mut outputs = out(&[
                    ("TotalRecordCount", total.to_string()),
                    (
                        "RecordsReturned",
                        total.saturating_sub(start - 1).min(10).to_string(),
                    ),
                ]);
                for record in self.audit.iter().skip(start - 1).take(10) {
                    outputs.push(Property {
                        name: "EventRecords".into(),
                        value: Value::Text(BASE64.encode(record.encode())),
                    });
                }
                outputs.push(Property {
                    name: "ReturnValue".into(),
                    value: Value::Text("0".into()),
                });
                outputs
            }
            ("AMT_MessageLog", "PositionToFirstRecord") => out(&[
                ("IterationIdentifier", "1".into()),
                ("ReturnValue", "0".into()),
            ]),
            ("AMT_MessageLog", "GetRecords") => {
                let first: usize = arg("IterationIdentifier")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1)
                    .max(1);
                let max = arg_u32("MaxReadRecords").unwrap_or(390).min(390) as usize;
                let records: Vec<&EventRecord> =
                    self.events_log.iter().skip(first - 1).take(max).collect();
                let next = first + records.len();
                let mut outputs = out(&[
                    ("IterationIdentifier", next.to_string()),
                    ("NoMoreRecords", (next > self.events_log.len()).to_string()),
                ]);
                for record in records {
                    outputs.push(Property {
                        name: "RecordArray".into(),
                        value: Value::Text(BASE64.encode(record.encode())),
                    });
                }
                outputs.push(Property {
                    name: "ReturnValue".into(),
                    value: Value::Text("0".into()),
                });
                outputs
            }
            ("AMT_TimeSynchronizationService", "GetLowAccuracyTimeSynch") => out(&[
                ("Ta0", self.device_time(ctx).to_string()),
                ("ReturnValue", "0".into()),
            ]),
            ("AMT_TimeSynchronizationService", "SetHighAccuracyTimeSynch") => {
                let (Some(_ta0), Some(tm1)) =
                    (arg("Ta0"), arg("Tm1").and_then(|v| v.parse::<i64>().ok()))
                else {
                    return Ok(rv(PT_INVALID));
                };
                self.clock_offset = tm1 - ctx.now_unix as i64;
                self.log_audit(20, 0, ctx);
                rv(0)
            }
            ("AMT_SetupAndConfigurationService", "GetUuid") => out(&[
                ("UUID", BASE64.encode(self.config.uuid)),
                ("ReturnValue", "0".into()),
            ]),
            ("AMT_SetupAndConfigurationService", "CommitChanges") => rv(0),
            _ => return Err(Box::new(Fault::action_not_supported())),
        })
    }

    /// The device clock: the caller's clock plus whatever offset time sync set.
    pub fn device_time(&self, ctx: Context) -> u64 {
        (ctx.now_unix as i64 + self.clock_offset).max(0) as u64
    }

    /// The user-consent code shown on the managed machine's screen, while one is.
    pub fn consent_code_on_screen(&self) -> Option<u32> {
        self.consent_code
    }

    /// The one-time boot source chosen with `ChangeBootOrder`, until the next boot.
    pub fn boot_source(&self) -> Option<&str> {
        self.boot_source.as_deref()
    }

    fn log_audit(&mut self, app_id: u16, event_id: u16, ctx: Context) {
        if self.audit.len() == MAX_LOG {
            self.audit.pop_front();
        }
        self.audit.push_back(AuditRecord {
            app_id,
            event_id,
            initiator: "admin".into(),
            time: self.device_time(ctx) as u32,
        });
        let count = self.audit.len().to_string();
        self.set_prop("AMT_AuditLog", "CurrentNumberOfRecords", count);
    }

    fn log_event(&mut self, ctx: Context, sensor_type: u8, event_type: u8, offset: u8) {
        if self.events_log.len() == MAX_LOG {
            self.events_log.pop_front();
        }
        self.events_log.push_back(EventRecord {
            time: self.device_time(ctx) as u32,
            device_address: 0xFF,
            sensor_type,
            event_type,
            offset,
            source_type: 0x68, // ASF
            severity: 0x08,    // monitor
            sensor_number: 0xFF,
            entity: 0x22, // BIOS
            entity_instance: 0,
            data: [0; 8],
        });
        let count = self.events_log.len().to_string();
        self.set_prop("AMT_MessageLog", "CurrentNumberOfRecords", count);
    }
}
