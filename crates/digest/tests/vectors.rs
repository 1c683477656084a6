//! Published test vectors: RFC 7616 section 3.9, RFC 2617 section 3.5, and the AMT vectors of
//! the project's docs (`docs/amt-redirection.md` section 3.2, `docs/wsman.md` fixture 4).

use oobkit_digest::{
    Algorithm, Authorization, ChallengeOutcome, Client, DigestChallenge, Exchange, Qop, QopSet,
    Secret, compute_response, ha1, userhash,
};

/// RFC 7616 section 3.9.1: the same request answered with MD5 and with SHA-256.
#[test]
fn rfc7616_3_9_1_md5_and_sha256() {
    let challenges = [
        r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#,
        r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#,
    ];
    let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    // The strongest is chosen: SHA-256.
    let mut client = Client::new("Mufasa", "Circle of Life");
    client.handle_challenge(challenges).unwrap();
    let answer = client
        .authorize("GET", "/dir/index.html", None, cnonce)
        .unwrap();
    assert_eq!(answer.algorithm, Algorithm::Sha256);
    assert_eq!(
        answer.response,
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
    assert_eq!(
        answer.to_header_value().unwrap(),
        r#"Digest username="Mufasa", realm="http-auth@example.org", nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", uri="/dir/index.html", algorithm=SHA-256, response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS", qop=auth, nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ""#
    );

    // The MD5 challenge alone.
    let mut client = Client::new("Mufasa", "Circle of Life");
    client.handle_challenge([challenges[1]]).unwrap();
    let answer = client
        .authorize("GET", "/dir/index.html", None, cnonce)
        .unwrap();
    assert_eq!(answer.response, "8ca523f5e9506fed4657c9700eebdbec");
}

/// RFC 7616 section 3.9.2: SHA-512-256, userhash, and a non-ASCII user name. The values are
/// those of erratum 4897; the RFC's printed userhash and response are wrong.
#[test]
fn rfc7616_3_9_2_userhash_sha512_256() {
    let username = "J\u{e4}s\u{f8}n Doe";
    let realm = "api@example.org";
    assert_eq!(
        userhash(Algorithm::Sha512_256, username, realm),
        "793263caabb707a56211940d90411ea4a575adeccb7e360aeb624ed06ece9b0b"
    );
    let mut client = Client::new(username, "Secret, or not?");
    client
        .handle_challenge([r#"Digest realm="api@example.org", qop="auth", algorithm=SHA-512-256, nonce="5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK", opaque="HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS", charset=UTF-8, userhash=true"#])
        .unwrap();
    let answer = client
        .authorize(
            "GET",
            "/doe.json",
            None,
            "NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v",
        )
        .unwrap();
    assert!(answer.userhash);
    assert_eq!(
        answer.username,
        "793263caabb707a56211940d90411ea4a575adeccb7e360aeb624ed06ece9b0b"
    );
    assert_eq!(
        answer.response,
        "3798d4131c277846293534c3edc11bd8a5e4cdcbff78b05db9d95eeb1cec68a5"
    );

    // Without userhash the name goes as username* (RFC 8187), and parses back.
    let mut client = Client::new(username, "Secret, or not?");
    client
        .handle_challenge([r#"Digest realm="api@example.org", qop="auth", algorithm=SHA-512-256, nonce="5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK", charset=UTF-8"#])
        .unwrap();
    let header = client
        .authorize("GET", "/doe.json", None, "c")
        .unwrap()
        .to_header_value()
        .unwrap();
    assert!(header.contains("username*=UTF-8''J%C3%A4s%C3%B8n%20Doe"));
    assert_eq!(Authorization::parse(&header).unwrap().username, username);
}

/// RFC 2617 section 3.5.
#[test]
fn rfc2617_3_5() {
    let mut client = Client::new("Mufasa", "Circle Of Life");
    client
        .handle_challenge([r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#])
        .unwrap();
    let answer = client
        .authorize("GET", "/dir/index.html", None, "0a4f113b")
        .unwrap();
    assert_eq!(answer.response, "6629fae49393a05397450978507c4ef1");
    // No algorithm in the challenge, none in the answer (curl's and RFC 2617's behaviour).
    assert!(!answer.to_header_value().unwrap().contains("algorithm"));
}

fn amt_exchange<'a>(qop: Option<Qop>) -> Exchange<'a> {
    Exchange {
        algorithm: Algorithm::Md5,
        username: "admin",
        realm: "Digest:A3829B3827DE4D33D4449B366831FD01",
        nonce: "QYePBLMVAAAAAAAAjfXveceOM5bNfu/K",
        method: "POST",
        uri: "/RedirectionService",
        qop,
        nc: "00000002",
        cnonce: "0123456789abcdef0123456789abcdef",
        body: None,
    }
}

/// `docs/amt-redirection.md` section 3.2: the in-band redirection digest, types 4 and 3.
#[test]
fn amt_redirection_vectors() {
    assert_eq!(
        Algorithm::Md5.hash(&[b"POST", b"/RedirectionService"]),
        "63719ae578d1b7ff84edbc5762bd658b"
    );
    // (b) type 4 (RFC 2617) and type 3 (RFC 2069).
    let secret = Secret::Password("P@ssw0rd");
    assert_eq!(
        compute_response(&amt_exchange(Some(Qop::Auth)), secret).unwrap(),
        "4af4ea18084dc3527876314f9c7edf30"
    );
    assert_eq!(
        compute_response(&amt_exchange(None), secret).unwrap(),
        "b739375acf1dfee58fb3e2769743cab5"
    );
    // The same with a stored HA1 (in upper case, which is accepted).
    let stored = ha1(
        Algorithm::Md5,
        "admin",
        "Digest:A3829B3827DE4D33D4449B366831FD01",
        "P@ssw0rd",
    )
    .to_string()
    .to_uppercase();
    assert_eq!(
        compute_response(&amt_exchange(Some(Qop::Auth)), Secret::Ha1(&stored)).unwrap(),
        "4af4ea18084dc3527876314f9c7edf30"
    );
    // (a) the console interceptor test.
    let console = Exchange {
        username: "testuser",
        realm: "testrealm",
        nonce: "noncevalue",
        nc: "00000001",
        cnonce: "c4ed52b07a",
        ..amt_exchange(Some(Qop::Auth))
    };
    assert_eq!(
        compute_response(&console, Secret::Password("testpassword")).unwrap(),
        "1e965f2308c85d55cc1e7b386612e988"
    );
    // (c) QuMesh's RFC 2617 vector with method POST.
    let qumesh = Exchange {
        username: "Mufasa",
        realm: "testrealm@host.com",
        nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        uri: "/dir/index.html",
        nc: "00000001",
        cnonce: "0a4f113b",
        ..amt_exchange(Some(Qop::Auth))
    };
    assert_eq!(
        ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life"
        ),
        "939e7578ed9e3c518a452acee763bce9"
    );
    assert_eq!(
        compute_response(&qumesh, Secret::Password("Circle Of Life")).unwrap(),
        "440c5a7b9ed304fecd2ddd39c9c7b726"
    );
    // A wrong-length HA1 is refused, not hashed.
    assert_eq!(
        compute_response(&qumesh, Secret::Ha1("abc")),
        Err(oobkit_digest::Error::InvalidHa1)
    );
}

/// `docs/wsman.md` fixture 4: a real AMT 16.1 challenge, and a real accepted answer from rpc-go.
#[test]
fn wsman_fixture_4() {
    let challenge = DigestChallenge::select([r#"Digest realm="Digest:2517B2332AFD88353D5F5FD352697901", nonce="QYePBLMVAAAAAAAAjfXveceOM5bNfu/K",stale="false",qop="auth-int, auth""#]).unwrap();
    assert_eq!(challenge.qop, QopSet::BOTH);
    assert_eq!(challenge.algorithm, Algorithm::Md5);
    assert!(!challenge.stale);

    let answer = Authorization::parse(r#"Digest username="admin",realm="Digest:19378AAD19791FD4F68E432AFE6F2483",nonce="AqMsAAAAAAAAAAAAuMwmTgZhbCqJVoSv",uri="/wsman",qop="auth",response="bd17886e871b8108526195d5be3640a8",nc="00000003",cnonce="gn09ha""#).unwrap();
    assert_eq!(answer.realm, "Digest:19378AAD19791FD4F68E432AFE6F2483");
    assert_eq!(answer.nonce, "AqMsAAAAAAAAAAAAuMwmTgZhbCqJVoSv");
    assert_eq!(answer.uri, "/wsman");
    assert_eq!(answer.cnonce.as_deref(), Some("gn09ha"));
    assert_eq!(answer.nc_value(), Some(3));
    assert_eq!(answer.response, "bd17886e871b8108526195d5be3640a8");

    // Our client answers the AMT challenge with auth-int when it has the body, auth without.
    let mut client = Client::new("admin", "P@ssw0rd");
    client.use_challenge(challenge);
    let with_body = client
        .authorize("POST", "/wsman", Some(b"<x/>"), "c")
        .unwrap();
    assert_eq!(with_body.qop, Some(Qop::AuthInt));
    let without = client.authorize("POST", "/wsman", None, "c").unwrap();
    assert_eq!(without.qop, Some(Qop::Auth));
    assert_eq!(without.nc.as_deref(), Some("00000002"));
}

/// Stale handling and wrong-password detection through the client's outcomes.
#[test]
fn client_outcomes() {
    let fresh = r#"Digest realm="r", nonce="n1", qop="auth""#;
    let stale = r#"Digest realm="r", nonce="n2", qop="auth", stale=true"#;
    let again = r#"Digest realm="r", nonce="n3", qop="auth""#;
    let mut client = Client::new("u", "p");
    assert_eq!(
        client.authorize("GET", "/", None, "c"),
        Err(oobkit_digest::Error::NoChallenge)
    );
    assert_eq!(
        client.handle_challenge([fresh]).unwrap(),
        ChallengeOutcome::Fresh
    );
    client.authorize("GET", "/", None, "c").unwrap();
    client.accepted();
    assert_eq!(
        client.handle_challenge([stale]).unwrap(),
        ChallengeOutcome::Stale
    );
    // nc restarts with the new nonce.
    assert_eq!(
        client
            .authorize("GET", "/", None, "c")
            .unwrap()
            .nc
            .as_deref(),
        Some("00000001")
    );
    // Answered n2, never accepted, and a non-stale challenge comes back: wrong password.
    assert_eq!(
        client.handle_challenge([again]).unwrap(),
        ChallengeOutcome::Rejected
    );
}
