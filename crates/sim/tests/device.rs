//! The device model: state is coherent across operations, and misuse gets AMT's faults.

use base64::Engine as _;
use oobkit_sim::{Context, Device, DeviceConfig, DeviceEvent};
use oobkit_wsman::ops::{self, AuditRecord, BootDevice, PowerAction, redirection_state};
use oobkit_wsman::{Error, Instance, MethodOutput, Request, Response, ResponseBody, Style, ns};

const CTX: Context = Context {
    now_unix: 1_700_000_000,
    random: 123_456_789,
};

fn device() -> Device {
    Device::new(DeviceConfig::new("16.1.25", [0xAB; 16]))
}

fn call(device: &mut Device, request: &Request) -> Result<Response, Error> {
    let reply = device.handle(&request.to_xml(Style::Intel).unwrap(), CTX);
    Response::parse(&reply.body, reply.status)
}

fn get(device: &mut Device, class: &str) -> Instance {
    match call(device, &Request::get(class)).unwrap().body {
        ResponseBody::Instance(i) => i,
        other => panic!("{other:?}"),
    }
}

fn invoke(device: &mut Device, request: &Request) -> MethodOutput {
    match call(device, request).unwrap().body {
        ResponseBody::Output(o) => o,
        other => panic!("{other:?}"),
    }
}

fn fault_name(result: Result<Response, Error>) -> (u16, String) {
    match result {
        Err(Error::Fault(f)) => (f.http_status, f.name().to_owned()),
        other => panic!("expected a fault, got {other:?}"),
    }
}

#[test]
fn power_changes_show_in_the_next_get() {
    let mut d = device();
    assert_eq!(
        get(&mut d, "CIM_AssociatedPowerManagementService").text("PowerState"),
        Some("2")
    );
    let out = invoke(&mut d, &ops::request_power_state_change(PowerAction::Off));
    assert_eq!(out.return_value, Some(0));
    assert_eq!(
        get(&mut d, "CIM_AssociatedPowerManagementService").text("PowerState"),
        Some("8")
    );
    assert_eq!(
        d.poll_event(),
        Some(DeviceEvent::PowerChanged { from: 2, to: 8 })
    );
    // A soft-off of a machine that is off is refused with ReturnValue 2, as real devices do.
    let out = invoke(
        &mut d,
        &ops::request_power_state_change(PowerAction::SoftOff),
    );
    assert_eq!(out.return_value, Some(2));
    let out = invoke(&mut d, &ops::request_power_state_change(PowerAction::On));
    assert_eq!(out.return_value, Some(0));
    assert_eq!(d.power_state(), 2);
}

#[test]
fn boot_settings_persist_and_one_time_boot_is_used_up() {
    let mut d = device();
    let mut settings = get(&mut d, "AMT_BootSettingData");
    settings.set("BIOSSetup", "true");
    settings.set("OptionsCleared", "false"); // read-only: ignored
    let put = call(&mut d, &Request::put(settings)).unwrap();
    let ResponseBody::Instance(updated) = put.body else {
        panic!()
    };
    assert_eq!(updated.text("BIOSSetup"), Some("true"));
    assert_eq!(updated.text("OptionsCleared"), Some("true"));
    assert_eq!(
        get(&mut d, "AMT_BootSettingData").text("BIOSSetup"),
        Some("true")
    );

    assert_eq!(
        invoke(&mut d, &ops::set_boot_config_role()).return_value,
        Some(0)
    );
    assert_eq!(
        invoke(&mut d, &ops::change_boot_order(Some(BootDevice::Pxe))).return_value,
        Some(0)
    );
    assert_eq!(d.boot_source(), Some("Intel(r) AMT: Force PXE Boot"));
    invoke(&mut d, &ops::request_power_state_change(PowerAction::Reset));
    assert_eq!(d.boot_source(), None);
}

#[test]
fn redirection_and_kvm_state_gate_sessions() {
    let mut d = device();
    assert!(d.sol_enabled() && d.ider_enabled() && d.kvm_session_allowed());
    invoke(
        &mut d,
        &ops::redirection_request_state_change(redirection_state::IDER),
    );
    assert!(!d.sol_enabled() && d.ider_enabled());
    assert_eq!(
        get(&mut d, "AMT_RedirectionService").text("EnabledState"),
        Some("32769")
    );
    invoke(&mut d, &ops::kvm_request_state_change(false));
    assert!(!d.kvm_enabled());
    assert_eq!(
        invoke(&mut d, &ops::redirection_request_state_change(5)).return_value,
        Some(0x24)
    );
    // The listener gates everything.
    let mut service = get(&mut d, "AMT_RedirectionService");
    service.set("ListenerEnabled", "false");
    call(&mut d, &Request::put(service)).unwrap();
    invoke(
        &mut d,
        &ops::redirection_request_state_change(redirection_state::BOTH),
    );
    assert!(!d.sol_enabled());
}

#[test]
fn user_consent_flow() {
    let mut d = device();
    assert_eq!(
        invoke(&mut d, &ops::start_opt_in()).return_value,
        Some(0x10)
    );
    let mut optin = get(&mut d, "IPS_OptInService");
    optin.set("OptInRequired", "1");
    call(&mut d, &Request::put(optin)).unwrap();
    assert!(!d.kvm_session_allowed());
    assert!(
        d.consent_satisfied(false),
        "KVM-only consent does not gate SOL"
    );
    assert_eq!(invoke(&mut d, &ops::start_opt_in()).return_value, Some(0));
    let Some(DeviceEvent::ConsentCodeDisplayed(code)) = d.poll_event() else {
        panic!()
    };
    assert_eq!(code, CTX.random % 1_000_000);
    assert_eq!(
        get(&mut d, "IPS_OptInService").text("OptInState"),
        Some("2")
    );
    assert_eq!(
        invoke(&mut d, &ops::send_opt_in_code(code + 1)).return_value,
        Some(0x24)
    );
    assert_eq!(
        invoke(&mut d, &ops::send_opt_in_code(code)).return_value,
        Some(0)
    );
    assert!(d.kvm_session_allowed());
    invoke(&mut d, &ops::cancel_opt_in());
    assert!(!d.kvm_session_allowed());
}

#[test]
fn enumeration_pages_and_contexts() {
    let mut d = device();
    let ResponseBody::Items { context, items, .. } =
        call(&mut d, &ops::enumerate_software_identity())
            .unwrap()
            .body
    else {
        panic!()
    };
    assert!(items.is_empty());
    let context = context.unwrap();
    let mut pull = Request::pull("CIM_SoftwareIdentity", context.clone());
    if let oobkit_wsman::Operation::Pull { max_elements, .. } = &mut pull.operation {
        *max_elements = Some(4);
    }
    let mut seen = Vec::new();
    loop {
        let ResponseBody::Items {
            context: next,
            items,
            end_of_sequence,
        } = call(&mut d, &pull).unwrap().body
        else {
            panic!()
        };
        seen.extend(items.into_iter().map(|i| i.instance.unwrap()));
        if end_of_sequence {
            assert!(next.is_none());
            break;
        }
    }
    assert_eq!(seen.len(), 10);
    let amt = seen
        .iter()
        .find(|i| i.text("InstanceID") == Some("AMT"))
        .unwrap();
    assert_eq!(amt.text("VersionString"), Some("16.1.25"));
    // The context is gone after the end, and a made-up one is refused.
    assert_eq!(
        fault_name(call(&mut d, &pull)),
        (500, "InvalidEnumerationContext".into())
    );
}

#[test]
fn faults_a_real_amt_sends() {
    let mut d = device();
    assert_eq!(
        fault_name(call(&mut d, &Request::get("IPS_NoSuchClass"))),
        (400, "DestinationUnreachable".into())
    );
    assert_eq!(
        fault_name(call(
            &mut d,
            &Request::get("AMT_EthernetPortSettings").selector("InstanceID", "nope")
        )),
        (400, "InvalidSelectors".into())
    );
    assert_eq!(
        fault_name(call(
            &mut d,
            &Request::invoke("AMT_GeneralSettings", "NoSuchMethod", vec![])
        )),
        (400, "ActionNotSupported".into())
    );
    assert_eq!(
        fault_name(call(&mut d, &Request::delete("AMT_GeneralSettings"))),
        (400, "ActionNotSupported".into())
    );
    // Put of a class with nothing writable.
    let identity = Instance::new("AMT_SetupAndConfigurationService").with("ProvisioningMode", "4");
    assert_eq!(
        fault_name(call(&mut d, &Request::put(identity))),
        (400, "ActionNotSupported".into())
    );
    // Garbage and unsupported mustUnderstand headers.
    let reply = d.handle("<not-xml", CTX);
    assert_eq!(reply.status, 400);
    let reply = d.handle("<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Header><w:OptionSet xmlns:w=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\" s:mustUnderstand=\"true\"/></s:Header><s:Body/></s:Envelope>", CTX);
    let Err(Error::Fault(f)) = Response::parse(&reply.body, reply.status) else {
        panic!()
    };
    assert_eq!(f.code.1, "MustUnderstand");
}

#[test]
fn selectors_pick_instances_and_openwsman_style_works() {
    let mut d = device();
    let request = Request::get("AMT_EthernetPortSettings")
        .selector("InstanceID", "Intel(r) AMT Ethernet Port Settings 1")
        .message_id("uuid:7");
    let reply = d.handle(&request.to_xml(Style::Openwsman).unwrap(), CTX);
    let response = Response::parse(&reply.body, reply.status).unwrap();
    assert_eq!(response.relates_to.as_deref(), Some("uuid:7"));
    let ResponseBody::Instance(port) = response.body else {
        panic!()
    };
    assert_eq!(port.text("PhysicalConnectionType"), Some("3"));
    assert_eq!(
        response.resource_uri.as_deref(),
        Some(ns::resource_uri("AMT_EthernetPortSettings").as_str())
    );
}

#[test]
fn audit_log_time_sync_and_identify() {
    let mut d = device();
    invoke(&mut d, &ops::request_power_state_change(PowerAction::Cycle));
    let out = invoke(&mut d, &ops::read_audit_log(1));
    assert_eq!(out.outputs.text("TotalRecordCount"), Some("1"));
    let record = out.outputs.text("EventRecords").unwrap();
    let record = AuditRecord::decode(
        &base64::engine::general_purpose::STANDARD
            .decode(record)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (record.app_id, record.initiator.as_str(), record.time),
        (16, "admin", CTX.now_unix as u32)
    );

    let ta0: u64 = invoke(&mut d, &ops::get_low_accuracy_time())
        .outputs
        .text("Ta0")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(ta0, CTX.now_unix);
    invoke(
        &mut d,
        &ops::set_high_accuracy_time(ta0, CTX.now_unix + 100),
    );
    assert_eq!(d.device_time(CTX), CTX.now_unix + 100);

    let reply = d.handle(&Request::identify().to_xml(Style::Intel).unwrap(), CTX);
    let ResponseBody::Identify(id) = Response::parse(&reply.body, 200).unwrap().body else {
        panic!()
    };
    assert_eq!(id.text("ProductVendor"), Some("Intel Corporation"));
    assert_eq!(id.text("ProductVersion"), Some("16.1.25"));
}
