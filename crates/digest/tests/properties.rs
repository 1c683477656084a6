//! Properties: every honest answer verifies, every altered one fails; rendering and parsing are
//! inverse; no input panics the parsers.

use oobkit_digest::{
    Algorithm, Authorization, Client, DigestChallenge, Qop, QopSet, Request, Secret, Server,
    ServerConfig, VerifyError, parse_challenges,
};
use proptest::prelude::*;

/// Printable text with quotes, backslashes, commas and non-ASCII, but no control characters.
fn text() -> impl Strategy<Value = String> {
    "[ -~äöü€ø日本\\\\\"]{1,24}"
}

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop::sample::select(Algorithm::ALL.to_vec())
}

#[derive(Debug, Clone)]
enum Alteration {
    Response,
    Username,
    Realm,
    Nonce,
    Uri,
    Cnonce,
    Nc,
    Qop,
    Method,
    Body,
}

fn alteration() -> impl Strategy<Value = Alteration> {
    prop_oneof![
        Just(Alteration::Response),
        Just(Alteration::Username),
        Just(Alteration::Realm),
        Just(Alteration::Nonce),
        Just(Alteration::Uri),
        Just(Alteration::Cnonce),
        Just(Alteration::Nc),
        Just(Alteration::Qop),
        Just(Alteration::Method),
        Just(Alteration::Body),
    ]
}

struct Setup {
    server: Server,
    answer: Authorization,
    body: Vec<u8>,
    uri: String,
}

fn setup(
    alg: Algorithm,
    user: &str,
    password: &str,
    uri: &str,
    body: &[u8],
    auth_int: bool,
) -> Setup {
    let mut config = ServerConfig::new("realm of \"tests\"", [3; 32]);
    config.algorithms = vec![alg];
    let server = Server::new(config);
    let mut client = Client::new(user, password).prefer_auth_int(auth_int);
    let challenges = server.challenges(100, [5; 8], false).unwrap();
    client
        .handle_challenge(challenges.iter().map(String::as_str))
        .unwrap();
    let answer = client.authorize("POST", uri, Some(body), "cn0nce").unwrap();
    Setup {
        server,
        answer,
        body: body.to_vec(),
        uri: uri.to_owned(),
    }
}

fn verify(
    server: &mut Server,
    header: &str,
    method: &str,
    uri: &str,
    body: &[u8],
    user: &str,
    password: &str,
) -> Result<(), VerifyError> {
    let request = Request {
        method,
        uri,
        body: Some(body),
    };
    server
        .verify(header, &request, 101, |a| {
            (a.username == user).then_some((user, Secret::Password(password)))
        })
        .map(|_| ())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn honest_answers_verify(
        alg in algorithm(),
        user in text(),
        password in text(),
        uri in text(),
        body in prop::collection::vec(any::<u8>(), 0..64),
        auth_int in any::<bool>(),
    ) {
        let mut s = setup(alg, &user, &password, &uri, &body, auth_int);
        let header = s.answer.to_header_value().unwrap();
        prop_assert_eq!(s.answer.qop, Some(if auth_int { Qop::AuthInt } else { Qop::Auth }));
        let result = verify(&mut s.server, &header, "POST", &s.uri, &s.body, &user, &password);
        prop_assert_eq!(result, Ok(()));
    }

    #[test]
    fn altered_answers_fail(
        alg in algorithm(),
        user in text(),
        password in text(),
        uri in text(),
        body in prop::collection::vec(any::<u8>(), 0..64),
        change in alteration(),
    ) {
        let mut s = setup(alg, &user, &password, &uri, &body, true);
        let mut answer = s.answer.clone();
        let mut method = "POST";
        let mut request_body = s.body.clone();
        let mut request_uri = s.uri.clone();
        match change {
            Alteration::Response => {
                let flipped = if answer.response.starts_with('0') { "1" } else { "0" };
                answer.response.replace_range(0..1, flipped);
            }
            Alteration::Username => answer.username.push('x'),
            Alteration::Realm => answer.realm.push('x'),
            Alteration::Nonce => answer.nonce.replace_range(0..1, if answer.nonce.starts_with('A') { "B" } else { "A" }),
            Alteration::Uri => { answer.uri.push('x'); request_uri.push('x'); }
            Alteration::Cnonce => answer.cnonce.as_mut().unwrap().push('x'),
            Alteration::Nc => answer.nc = Some("00000002".into()),
            Alteration::Qop => answer.qop = Some(Qop::Auth),
            Alteration::Method => method = "GET",
            Alteration::Body => request_body.push(0),
        }
        let header = answer.to_header_value().unwrap();
        let result = verify(&mut s.server, &header, method, &request_uri, &request_body, &user, &password);
        prop_assert!(result.is_err(), "{:?} accepted after {:?}", header, change);
    }

    #[test]
    fn challenge_render_parse_round_trip(
        realm in text(),
        nonce in text(),
        opaque in prop::option::of(text()),
        alg in algorithm(),
        qop in prop::sample::select(vec![QopSet::default(), QopSet::AUTH, QopSet::BOTH, QopSet { auth: false, auth_int: true }]),
        stale in any::<bool>(),
        userhash in any::<bool>(),
    ) {
        let mut c = DigestChallenge::new(realm, nonce);
        c.opaque = opaque;
        c.algorithm = alg;
        c.qop = qop;
        c.stale = stale;
        c.userhash = userhash;
        let rendered = c.to_header_value().unwrap();
        prop_assert_eq!(DigestChallenge::select([rendered.as_str()]).unwrap(), c);
    }

    #[test]
    fn authorization_render_parse_round_trip(
        user in text(),
        uri in text(),
        alg in algorithm(),
        nc in 1u32..,
        qop in prop::option::of(prop_oneof![Just(Qop::Auth), Just(Qop::AuthInt)]),
    ) {
        let mut c = DigestChallenge::new("r", "n");
        c.algorithm = alg;
        c.qop = if qop.is_some() { QopSet::BOTH } else { QopSet::default() };
        let mut client = Client::new(user, "p").prefer_auth_int(qop == Some(Qop::AuthInt));
        client.use_challenge(c);
        let mut answer = client.authorize("GET", &uri, Some(b""), "c").unwrap();
        if answer.qop.is_some() {
            answer.nc = Some(format!("{nc:08x}"));
        }
        let parsed = Authorization::parse(&answer.to_header_value().unwrap()).unwrap();
        prop_assert_eq!(parsed, answer);
    }

    #[test]
    fn parsers_never_panic(input in ".{0,200}") {
        let _ = parse_challenges(&input);
        let _ = DigestChallenge::select([input.as_str()]);
        let _ = Authorization::parse(&input);
    }

    #[test]
    fn parsers_never_panic_on_header_like_input(
        input in r#"(Digest|Basic|,| |=|"|\\|realm|nonce|qop|auth|username\*?|[a-z0-9]{1,4}|UTF-8''|%[0-9A-F]{2}|ä)*"#,
    ) {
        oobkit_digest::fuzzing::challenge_parser(input.as_bytes());
        oobkit_digest::fuzzing::authorization_parser(input.as_bytes());
    }
}
