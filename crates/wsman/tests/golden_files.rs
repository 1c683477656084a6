//! Byte-exact request envelopes for every operation, in both styles, against committed files
//! in `tests/golden/`. After an intended change, regenerate with `UPDATE_GOLDEN=1 cargo test`
//! and review the diff: the files are what goes on the wire.

use std::path::PathBuf;

use oobkit_wsman::{
    EnumerateOptions, EnumerationMode, Instance, Operation, Request, Style, Subscription, ops,
};

fn operations() -> Vec<(&'static str, Request)> {
    let boot = Instance::new("AMT_BootSettingData")
        .with("BIOSSetup", "true")
        .with("InstanceID", "Intel(r) AMT:BootSettingData 0");
    let mut unsubscribe = Request::new(Operation::Unsubscribe, "CIM_FilterCollectionSubscription");
    unsubscribe.identifier = Some("uuid:6c5b1f0e-0000-0000-0000-000000000001".into());
    vec![
        ("identify", Request::identify()),
        ("get", ops::get_general_settings()),
        (
            "get_selector",
            Request::get("AMT_EthernetPortSettings")
                .selector("InstanceID", "Intel(r) AMT Ethernet Port Settings 0"),
        ),
        ("put", Request::put(boot.clone())),
        (
            "create",
            Request::create(Instance::new("AMT_TLSCredentialContext").with(
                "ElementInContext",
                oobkit_wsman::Epr::new(
                    "AMT_PublicKeyCertificate",
                    [("InstanceID", "Intel(r) AMT Certificate: Handle: 1")],
                ),
            )),
        ),
        (
            "delete",
            Request::delete("AMT_RemoteAccessPolicyRule").selector("PolicyRuleName", "Periodic"),
        ),
        ("enumerate", Request::enumerate("CIM_SoftwareIdentity")),
        (
            "enumerate_optimized_epr",
            Request::new(
                Operation::Enumerate(EnumerateOptions {
                    mode: EnumerationMode::ObjectsAndEprs,
                    optimize: Some(100),
                }),
                "CIM_Processor",
            ),
        ),
        (
            "pull",
            Request::pull(
                "CIM_SoftwareIdentity",
                "14000000-0000-0000-0000-000000000000",
            ),
        ),
        (
            "release",
            Request::release(
                "CIM_SoftwareIdentity",
                "14000000-0000-0000-0000-000000000000",
            ),
        ),
        (
            "invoke_power",
            ops::request_power_state_change(ops::PowerAction::Cycle),
        ),
        (
            "invoke_boot_order",
            ops::change_boot_order(Some(ops::BootDevice::Pxe)),
        ),
        ("invoke_no_arguments", ops::start_opt_in()),
        (
            "subscribe",
            Request::new(
                Operation::Subscribe(Subscription {
                    delivery_mode: oobkit_wsman::PUSH_WITH_ACK.into(),
                    notify_to: "http://192.0.2.1:8080/events".into(),
                    expires: Some("PT3600S".into()),
                }),
                "CIM_FilterCollection",
            )
            .selector("InstanceID", "Intel(r) AMT:All"),
        ),
        ("unsubscribe", unsubscribe),
        (
            "renew",
            Request::new(
                Operation::Renew {
                    expires: Some("PT3600S".into()),
                },
                "CIM_FilterCollectionSubscription",
            ),
        ),
    ]
}

#[test]
fn every_operation_matches_its_golden_envelope() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut checked = 0;
    for (name, request) in operations() {
        for (style, suffix) in [(Style::Intel, "intel"), (Style::Openwsman, "openwsman")] {
            let xml = request.to_xml(style).unwrap();
            let path = dir.join(format!("{name}.{suffix}.xml"));
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &xml).unwrap();
            }
            let expected = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
            assert_eq!(xml, expected, "{}", path.display());
            // And each golden file parses back to its operation.
            assert_eq!(
                Request::parse(&expected).unwrap(),
                request,
                "{}",
                path.display()
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 32);
}
