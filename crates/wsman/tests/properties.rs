//! Properties: arbitrary instances survive request and reply round trips in both styles; the
//! HTTP reader gives the same response however the bytes are split; no input panics.

use oobkit_wsman::http::{ReadStatus, ResponseReader};
use oobkit_wsman::{
    Epr, Instance, Property, Reply, Request, Response, ResponseBody, Selector, SelectorValue,
    Style, Value, ns,
};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_]{0,12}"
}

/// Any text, markup characters included; no leading/trailing whitespace-only ambiguity because
/// leaf text is kept verbatim.
fn text() -> impl Strategy<Value = String> {
    "[ -~äß€\u{1F600}]{0,20}"
}

fn epr() -> impl Strategy<Value = Epr> {
    (
        prop::sample::select(vec![
            ns::ADDRESSING.to_owned(),
            ns::ANONYMOUS.to_owned(),
            "/wsman".to_owned(),
        ]),
        name(),
        prop::collection::vec((name(), text()), 0..3),
    )
        .prop_map(|(address, class, selectors)| Epr {
            address,
            resource_uri: format!("{}CIM_{class}", ns::CIM_SCHEMA),
            selectors: selectors
                .into_iter()
                .map(|(n, v)| Selector::new(n, v.trim().to_owned()))
                .collect(),
        })
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => text().prop_map(Value::Text),
        1 => Just(Value::Nil),
        1 => "[0-9T:Z-]{1,20}".prop_map(Value::Datetime),
        1 => epr().prop_map(Value::from),
    ]
}

fn properties() -> impl Strategy<Value = Vec<Property>> {
    prop::collection::vec(
        (name(), value()).prop_map(|(name, value)| Property { name, value }),
        0..8,
    )
}

fn instance() -> impl Strategy<Value = Instance> {
    (name(), properties()).prop_map(|(class, properties)| {
        let mut i = Instance::new(&format!("AMT_{class}"));
        i.properties = properties;
        i
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn put_and_invoke_round_trip(instance in instance(), args in properties(), id in text(), method in name()) {
        for style in [Style::Intel, Style::Openwsman] {
            let put = Request::put(instance.clone()).message_id(id.trim());
            prop_assert_eq!(Request::parse(&put.to_xml(style).unwrap()).unwrap(), put);
            let invoke = Request::invoke("CIM_X", &method, args.clone());
            prop_assert_eq!(Request::parse(&invoke.to_xml(style).unwrap()).unwrap(), invoke);
        }
    }

    #[test]
    fn selector_eprs_round_trip(inner in epr(), key in name()) {
        let mut request = Request::get("CIM_ElementSettingData");
        request.selectors.push(Selector { name: key, value: SelectorValue::Epr(Box::new(inner)) });
        for style in [Style::Intel, Style::Openwsman] {
            prop_assert_eq!(Request::parse(&request.to_xml(style).unwrap()).unwrap(), request.clone());
        }
    }

    #[test]
    fn replies_round_trip(instance in instance(), items in prop::collection::vec(instance(), 0..4), relates in text()) {
        let reply = Reply { relates_to: relates.trim(), sequence: 9, resource_uri: Some(&instance.namespace) };
        let get = Response::parse(&reply.instance(ns::action::GET, &instance).unwrap(), 200).unwrap();
        prop_assert_eq!(get.relates_to.as_deref(), Some(relates.trim()));
        prop_assert_eq!(get.body, ResponseBody::Instance(instance.clone()));
        for next in [None, Some("ctx")] {
            let pull = Response::parse(&reply.pull(&items, next).unwrap(), 200).unwrap();
            let ResponseBody::Items { context, items: got, end_of_sequence } = pull.body else {
                panic!("not items");
            };
            prop_assert_eq!(context.as_deref(), next);
            prop_assert_eq!(end_of_sequence, next.is_none());
            let got: Vec<Instance> = got.into_iter().map(|i| i.instance.unwrap()).collect();
            prop_assert_eq!(&got, &items);
        }
    }

    #[test]
    fn http_reader_is_chunking_invariant(
        body in prop::collection::vec(any::<u8>(), 0..300),
        chunk_sizes in prop::collection::vec(1usize..40, 1..10),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        // Encode with arbitrary chunk sizes, then feed the wire split at arbitrary points.
        let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let mut rest = &body[..];
        let mut sizes = chunk_sizes.iter().cycle();
        while !rest.is_empty() {
            let n = (*sizes.next().unwrap()).min(rest.len());
            wire.extend_from_slice(format!("{n:X}\r\n").as_bytes());
            wire.extend_from_slice(&rest[..n]);
            wire.extend_from_slice(b"\r\n");
            rest = &rest[n..];
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
        points.push(0);
        points.push(wire.len());
        points.sort_unstable();
        let mut reader = ResponseReader::new();
        let mut result = None;
        for pair in points.windows(2) {
            if let ReadStatus::Complete(r) = reader.feed(&wire[pair[0]..pair[1]]).unwrap() {
                result = Some(r);
            }
        }
        prop_assert_eq!(result.expect("complete").body, body);
    }

    #[test]
    fn parsers_never_panic(input in "[<>/a-z:=\" &;#x0-9!-]{0,200}") {
        oobkit_wsman::fuzzing::reply_parser(input.as_bytes());
        oobkit_wsman::fuzzing::request_parser(input.as_bytes());
        oobkit_wsman::http::fuzzing::http_reader(input.as_bytes());
    }
}
