//! The simulator against the firmware corpus (`fixtures/wsman-responses/`, 297 replies of real
//! AMT): every class there is answered as the corpus shows it (Get where it has a GetResponse,
//! Enumerate/Pull where it has a PullResponse), with the same property names, and the replies
//! have firmware's shape (namespace declarations on the Envelope, bare Pull items, header
//! order), because widely used consoles parse them with hand-written code.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use oobkit_sim::{Context, Device, DeviceConfig};
use oobkit_wsman::{Instance, Request, Response, ResponseBody, Style};

const CTX: Context = Context {
    now_unix: 1_700_000_000,
    random: 7,
};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/wsman-responses")
}

/// Every folder of the corpus holding a `get.xml` or `pull.xml`: (folder, has get, has pull).
fn class_folders() -> Vec<(PathBuf, bool, bool)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, bool, bool)>) {
        let (get, pull) = (dir.join("get.xml").exists(), dir.join("pull.xml").exists());
        if get || pull {
            out.push((dir.to_owned(), get, pull));
        }
        let mut subs: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        subs.sort();
        for sub in subs {
            walk(&sub, out);
        }
    }
    let mut out = Vec::new();
    walk(&corpus(), &mut out);
    out
}

fn parse(xml: &str) -> Response {
    Response::parse(xml, 200).unwrap()
}

fn items(response: Response) -> Vec<Instance> {
    match response.body {
        ResponseBody::Items { items, .. } => items.into_iter().filter_map(|i| i.instance).collect(),
        ResponseBody::Instance(instance) => vec![instance],
        other => panic!("{other:?}"),
    }
}

/// Properties the simulator reports beyond the corpus's device, and why: its device is
/// configured differently or runs older firmware than the one simulated.
const EXTRA: &[(&str, &str, &str)] = &[
    (
        "AMT_EthernetPortSettings",
        "IPAddress",
        "firmware reports the address once it has one; the corpus device had none",
    ),
    (
        "IPS_KVMRedirectionSettingData",
        "GreyscalePixelFormatSupported",
        "reported by AMT 16 (the simulated version), not by the corpus device",
    ),
    (
        "IPS_KVMRedirectionSettingData",
        "InitialDecimationModeForLowRes",
        "reported by AMT 16, not by the corpus device",
    ),
    (
        "IPS_KVMRedirectionSettingData",
        "ZlibControlSupported",
        "reported by AMT 16, not by the corpus device",
    ),
];

fn names(instance: &Instance) -> BTreeSet<&str> {
    instance
        .properties
        .iter()
        .map(|p| p.name.as_str())
        .filter(|name| {
            !EXTRA
                .iter()
                .any(|(class, extra, _)| *class == instance.class && extra == name)
        })
        .collect()
}

/// Sends `request` and returns the raw reply (status 200 asserted).
fn call(device: &mut Device, request: &Request, what: &str) -> String {
    let reply = device.handle(&request.to_xml(Style::Intel).unwrap(), CTX);
    assert_eq!(reply.status, 200, "{what}: {}", reply.body);
    reply.body
}

/// Enumerate, then Pull everything in one batch: the raw PullResponse.
fn enumerate(device: &mut Device, class: &str) -> String {
    let context = match parse(&call(device, &Request::enumerate(class), class)).body {
        ResponseBody::Items {
            context: Some(context),
            ..
        } => context,
        other => panic!("{class}: {other:?}"),
    };
    let mut pull = Request::pull(class, context);
    if let oobkit_wsman::Operation::Pull { max_elements, .. } = &mut pull.operation {
        *max_elements = Some(100);
    }
    call(device, &pull, class)
}

/// The namespace prefixes an Envelope declares, in order, and the tags of the Header's
/// children, without their prefixes' meaning: the parts of the shape consoles' hand-written
/// parsers depend on.
fn shape(xml: &str) -> (Vec<String>, Vec<String>) {
    let envelope_start = xml.find("Envelope").unwrap();
    let envelope_tag =
        &xml[envelope_start..envelope_start + xml[envelope_start..].find('>').unwrap()];
    let prefixes = envelope_tag
        .split("xmlns:")
        .skip(1)
        .map(|d| d.split('=').next().unwrap().to_owned())
        .collect();
    let start = xml.find(":Header>").unwrap() + ":Header>".len();
    // Up to the `<` of the closing tag.
    let end = xml[..start + xml[start..].find(":Header>").unwrap()]
        .rfind('<')
        .unwrap();
    let mut tags = Vec::new();
    let mut depth = 0;
    let mut rest = &xml[start..end];
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let tag_end = rest.find(['>', ' ']).unwrap();
        let tag = &rest[..tag_end];
        if tag.starts_with('/') {
            depth -= 1;
        } else {
            if depth == 0 {
                tags.push(tag.to_owned());
            }
            let self_closing = rest[..rest.find('>').unwrap()].ends_with('/');
            if !self_closing {
                depth += 1;
            }
        }
    }
    (prefixes, tags)
}

/// The tags of the Pull items (`h:AMT_...`), which must carry no namespace declaration.
fn item_tags(xml: &str) -> Vec<String> {
    let start = xml.find(":Items>").map(|i| i + ":Items>".len()).unwrap();
    let end = xml[..start + xml[start..].find(":Items>").unwrap()]
        .rfind('<')
        .unwrap();
    let body = &xml[start..end];
    let mut tags = Vec::new();
    let mut depth = 0i32;
    let mut rest = body;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let tag_end = rest.find('>').unwrap();
        let tag = &rest[..tag_end];
        if tag.starts_with('/') {
            depth -= 1;
        } else {
            if depth == 0 {
                tags.push(tag.to_owned());
            }
            if !tag.ends_with('/') {
                depth += 1;
            }
        }
    }
    tags
}

/// Enumerating an abstract parent answers with its subclasses' instances, as firmware does.
#[test]
fn enumeration_is_polymorphic() {
    let mut device = Device::new(DeviceConfig::new("16.1.25", [0xAB; 16]));
    let classes: BTreeSet<String> = items(parse(&enumerate(&mut device, "CIM_SettingData")))
        .into_iter()
        .map(|i| i.class)
        .collect();
    for expected in [
        "AMT_BootSettingData",
        "CIM_BootSourceSetting",
        "IPS_KVMRedirectionSettingData",
        "AMT_EthernetPortSettings",
    ] {
        assert!(classes.contains(expected), "{expected} in {classes:?}");
    }
    assert!(!classes.contains("AMT_GeneralSettings"));
    // Put on the abstract class has nothing to act on.
    let put = Request::put(Instance::new("CIM_SettingData").with("ElementName", "x"));
    let reply = device.handle(&put.to_xml(Style::Intel).unwrap(), CTX);
    assert_eq!(reply.status, 400, "{}", reply.body);
}

#[test]
fn every_corpus_class_is_answered_with_firmwares_property_names() {
    let folders = class_folders();
    assert!(folders.len() >= 75, "only {} class folders", folders.len());
    let mut device = Device::new(DeviceConfig::new("16.1.25", [0xAB; 16]));
    let mut failures = Vec::new();
    for (folder, has_get, has_pull) in &folders {
        let rel = folder.strip_prefix(corpus()).unwrap().display().to_string();
        let file = if *has_pull { "pull.xml" } else { "get.xml" };
        let fixture = std::fs::read_to_string(folder.join(file)).unwrap();
        let reply = parse(&fixture);
        // The class asked for: the ResourceURI's, which may be a parent of the items' class
        // (firmware enumerates polymorphically).
        let class =
            oobkit_wsman::class_name(reply.resource_uri.as_deref().unwrap_or_default()).to_owned();
        let expected = items(reply);
        let Some(first) = expected.first() else {
            continue; // an empty enumeration in the corpus: nothing to compare
        };
        if *has_get {
            let raw = call(&mut device, &Request::get(&class), &rel);
            let fixture_get = std::fs::read_to_string(folder.join("get.xml")).unwrap();
            if let Some(differs) = shape_differs(&raw, &fixture_get) {
                failures.push(format!("{rel} Get {class}: {differs}"));
            }
            let got = items(parse(&raw));
            if let Some(differs) = instance_differs(&got[0], first) {
                failures.push(format!("{rel} Get {class}: {differs}"));
            }
        }
        if *has_pull {
            let raw = enumerate(&mut device, &class);
            let got = items(parse(&raw));
            if got.is_empty() {
                failures.push(format!("{rel} Pull {class}: no items"));
                continue;
            }
            if let Some(differs) = instance_differs(&got[0], first) {
                failures.push(format!("{rel} Pull {class}: {differs}"));
            }
            // Firmware's shape: bare items in the class prefix declared on the Envelope.
            for tag in item_tags(&raw) {
                if tag.contains("xmlns") {
                    failures.push(format!(
                        "{rel} Pull {class}: item declares a namespace: <{tag}>"
                    ));
                    break;
                }
            }
            if let Some(differs) = shape_differs(&raw, &fixture) {
                failures.push(format!("{rel} Pull {class}: {differs}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// How our first instance differs from firmware's: another class, or other property names.
fn instance_differs(ours: &Instance, firmware: &Instance) -> Option<String> {
    let (got, expected) = (names(ours), names(firmware));
    (ours.class != firmware.class || got != expected).then(|| {
        format!(
            "{} (firmware {}) missing {:?}, extra {:?}",
            ours.class,
            firmware.class,
            expected.difference(&got).collect::<Vec<_>>(),
            got.difference(&expected).collect::<Vec<_>>()
        )
    })
}

/// How `ours` differs from `firmware` in shape: fewer namespaces declared on the Envelope, or
/// the Header's children in another order.
fn shape_differs(ours: &str, firmware: &str) -> Option<String> {
    let (prefixes, header) = shape(ours);
    let (firmware_prefixes, firmware_header) = shape(firmware);
    let locals = |tags: &[String]| tags.iter().map(|t| local(t).to_owned()).collect::<Vec<_>>();
    (prefixes.len() < firmware_prefixes.len() || locals(&header) != locals(&firmware_header)).then(
        || {
            format!(
                "envelope {prefixes:?} header {header:?}, firmware {firmware_prefixes:?} {firmware_header:?}"
            )
        },
    )
}

fn local(tag: &str) -> &str {
    tag.rsplit(':').next().unwrap()
}
