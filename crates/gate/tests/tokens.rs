//! The gate against tokens from the real minting library (PyPI `lab-orchestrator-lib-auth`
//! 0.0.5 and 2.2.0, in venvs `./test.sh` makes), from openssl (RS256) and ring (ES256, EdDSA),
//! and against every kind of refusal.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use oobkit_gate::testing::{mint_hs256, sign_hs256};
use oobkit_gate::{
    Algorithm, CutReason, Gate, GateConfig, Refusal, Session, SessionEvent, VerifyingKey,
};
use proptest::prelude::*;

const SECRET: &str = "8560e663-lab-secret";

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn hs_gate() -> Gate {
    Gate::new(GateConfig::new(vec![
        VerifyingKey::hs256(SECRET.as_bytes()).unwrap(),
    ]))
}

/// A token minted by the PyPI library itself, as LabOrchestratorLib calls it.
fn pypi_token(version: &str, expires_in: i64, vmis: &[&str], user: &str) -> String {
    let script = format!(
        r#"
import json, sys
from lab_orchestrator_lib_auth.auth import generate_auth_token, LabInstanceTokenParams
params = LabInstanceTokenParams(lab_id=3, lab_instance_id="inst-9", namespace_name="pentest-ubuntu-3-9", allowed_vmi_names={vmis})
kwargs = dict(user_id={user}, lab_instance_token_params=params, secret_key="{SECRET}")
try:
    token = generate_auth_token(expires_in={expires_in}, **kwargs)
except TypeError:
    token = generate_auth_token(**kwargs, expires_in={expires_in})
print(token if isinstance(token, str) else token.decode())
"#,
        vmis = serde_json_list(vmis),
    );
    let out = Command::new(oobkit_testkit::labauth_python(version))
        .args(["-c", &script])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "minting with lab-orchestrator-lib-auth {version} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn serde_json_list(items: &[&str]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[test]
fn tokens_minted_by_the_pypi_library_are_accepted_and_checked() {
    let gate = hs_gate();
    for version in ["0.0.5", "2.2.0"] {
        // Numbers and strings as ids; a float exp.
        for user in ["42", "\"user-42\""] {
            let token = pypi_token(version, 600, &["ubuntu", "kali"], user);
            let admission = gate
                .check(&format!("/{token}/ubuntu"), &[], unix_now())
                .unwrap_or_else(|e| panic!("{version}: {e}"));
            assert_eq!(admission.namespace, "pentest-ubuntu-3-9", "{version}");
            assert_eq!(admission.vmi, "ubuntu");
            assert_eq!(admission.user.as_deref(), Some(user.trim_matches('"')));
            assert_eq!(admission.lab_instance.as_deref(), Some("inst-9"));
            assert!(admission.expires_at.fract() != 0.0, "exp is a float");
            let refused = gate
                .check(&format!("/{token}/debian"), &[], unix_now())
                .unwrap_err();
            assert_eq!(refused.status(), 403, "{version}: {refused}");
        }
        // Expired ten seconds ago: beyond the 5 s leeway.
        let old = pypi_token(version, -10, &["ubuntu"], "1");
        let refused = gate
            .check(&format!("/{old}/ubuntu"), &[], unix_now())
            .unwrap_err();
        assert!(
            matches!(refused, Refusal::Expired(_)),
            "{version}: {refused}"
        );
        // Another secret.
        let other = Gate::new(GateConfig::new(vec![
            VerifyingKey::hs256(b"other").unwrap(),
        ]));
        let token = pypi_token(version, 600, &["ubuntu"], "1");
        assert_eq!(
            other.check(&format!("/{token}/ubuntu"), &[], unix_now()),
            Err(Refusal::BadSignature)
        );
    }
}

#[test]
fn every_refusal_has_its_status_and_never_echoes_the_token() {
    let gate = hs_gate();
    let now = unix_now();
    let good = mint_hs256(SECRET.as_bytes(), now + 60.0, "ns", &["vm"]);
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let claims =
        r#"{"exp":1e12,"lab_instance":{"namespace_name":"ns","allowed_vmi_names":["vm"]}}"#;
    let none = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(claims));
    let cases: Vec<(String, u16, &str)> = vec![
        (format!("/{good}/vm"), 0, "admitted"),
        (format!("/{good}/vm?resize=remote"), 0, "query stripped"),
        (format!("/{good}/other"), 403, "not listed"),
        (format!("/{good}/vm/extra"), 404, "three parts"),
        (format!("/{good}/"), 404, "empty VMI"),
        ("/".into(), 401, "nothing"),
        (format!("/{none}/vm"), 401, "alg none"),
        ("/a.b/vm".into(), 401, "two parts"),
        ("/a.b.c/vm".into(), 401, "not base64 JSON"),
        (
            format!(
                "/{}/vm",
                sign_hs256(
                    SECRET.as_bytes(),
                    r#"{"alg":"HS256"}"#,
                    r#"{"lab_instance":{"namespace_name":"ns","allowed_vmi_names":["vm"]}}"#
                )
            ),
            401,
            "no exp",
        ),
        (
            format!(
                "/{}/vm",
                sign_hs256(
                    SECRET.as_bytes(),
                    r#"{"alg":"HS256"}"#,
                    r#"{"exp":"soon","lab_instance":{}}"#
                )
            ),
            401,
            "exp a string",
        ),
        (
            format!(
                "/{}/vm",
                sign_hs256(
                    SECRET.as_bytes(),
                    r#"{"alg":"HS256"}"#,
                    r#"{"exp":1e12,"lab_instance":{"allowed_vmi_names":["vm"]}}"#
                )
            ),
            401,
            "no namespace",
        ),
        (
            format!(
                "/{}/vm",
                sign_hs256(SECRET.as_bytes(), r#"{"alg":"HS256"}"#, r#"{"exp":1e12}"#)
            ),
            401,
            "no lab_instance",
        ),
        (format!("/{}/vm", "x".repeat(10_000)), 401, "oversized"),
    ];
    for (path, status, what) in cases {
        match gate.check(&path, &[], now) {
            Ok(_) => assert_eq!(status, 0, "{what} was admitted"),
            Err(refusal) => {
                assert_eq!(refusal.status(), status, "{what}: {refusal}");
                let body = refusal.json();
                assert!(
                    !body.contains(&good[..20]),
                    "{what}: the body holds the token"
                );
                assert!(body.len() < 200, "{what}: {body}");
            }
        }
    }
    // With a prefix.
    let mut config = GateConfig::new(vec![VerifyingKey::hs256(SECRET.as_bytes()).unwrap()]);
    config.prefix = Some("vnc".into());
    let prefixed = Gate::new(config);
    assert!(prefixed.check(&format!("/vnc/{good}/vm"), &[], now).is_ok());
    assert_eq!(
        prefixed
            .check(&format!("/{good}/vm"), &[], now)
            .unwrap_err()
            .status(),
        404
    );
}

#[test]
fn a_token_in_the_subprotocols_stays_out_of_the_path() {
    let gate = hs_gate();
    let now = unix_now();
    let token = mint_hs256(SECRET.as_bytes(), now + 60.0, "ns", &["vm"]);
    let carried = format!(
        "{}{}",
        oobkit_gate::BEARER_PROTOCOL_PREFIX,
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&token)
    );
    let admission = gate.check("/vm", &["binary", &carried], now).unwrap();
    assert_eq!(
        admission.subprotocol,
        Some("binary"),
        "a real protocol is echoed"
    );
    let admission = gate
        .check("/vm", &[&carried, "plain.kubevirt.io"], now)
        .unwrap();
    assert_eq!(admission.subprotocol, Some("plain.kubevirt.io"));
    assert_eq!(gate.check("/vm", &["binary"], now), Err(Refusal::NoToken));
}

/// DER SubjectPublicKeyInfo prefixes for raw keys.
const ED25519_SPKI: &[u8] = &[
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
const P256_SPKI: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

fn pem(der: &[u8]) -> String {
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    )
}

fn jws(alg: &str, claims: &str, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let signed = format!(
        "{}.{}",
        b64.encode(format!(r#"{{"typ":"JWT","alg":"{alg}"}}"#)),
        b64.encode(claims)
    );
    let signature = sign(signed.as_bytes());
    format!("{signed}.{}", b64.encode(signature))
}

fn claims(exp: f64) -> String {
    format!(
        r#"{{"id":7,"exp":{exp},"lab_instance":{{"lab_id":1,"lab_instance_id":2,"namespace_name":"ns","allowed_vmi_names":["vm"]}}}}"#
    )
}

#[test]
fn public_key_algorithms_verify_and_never_serve_as_hmac_secrets() {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let now = unix_now();
    // EdDSA.
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let ed = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let ed_pem = pem(&[ED25519_SPKI, ed.public_key().as_ref()].concat());
    // ES256.
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let ec =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let ec_pem = pem(&[P256_SPKI, ec.public_key().as_ref()].concat());
    let gate = Gate::new(GateConfig::new(vec![
        VerifyingKey::public_pem(Algorithm::EdDsa, &ed_pem).unwrap(),
        VerifyingKey::public_pem(Algorithm::Es256, &ec_pem).unwrap(),
    ]));
    let ed_token = jws("EdDSA", &claims(now + 60.0), |m| {
        ed.sign(m).as_ref().to_vec()
    });
    let ec_token = jws("ES256", &claims(now + 60.0), |m| {
        ec.sign(&rng, m).unwrap().as_ref().to_vec()
    });
    for token in [&ed_token, &ec_token] {
        let admission = gate.check(&format!("/{token}/vm"), &[], now).unwrap();
        assert_eq!(admission.user.as_deref(), Some("7"));
    }
    // Key confusion: an HS256 token whose secret is the public key's PEM (what a verifier that
    // takes "the key" for any algorithm would accept) is refused by algorithm, not tried.
    let confused = sign_hs256(ed_pem.as_bytes(), r#"{"alg":"HS256"}"#, &claims(now + 60.0));
    assert_eq!(
        gate.check(&format!("/{confused}/vm"), &[], now),
        Err(Refusal::AlgorithmNotAllowed("HS256".into()))
    );
    // An ES256 token signed by another key.
    let other = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let other =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, other.as_ref(), &rng).unwrap();
    let forged = jws("ES256", &claims(now + 60.0), |m| {
        other.sign(&rng, m).unwrap().as_ref().to_vec()
    });
    assert_eq!(
        gate.check(&format!("/{forged}/vm"), &[], now),
        Err(Refusal::BadSignature)
    );
}

#[test]
fn rs256_tokens_signed_by_openssl_verify() {
    let dir = std::env::temp_dir().join(format!("gate-rs256-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("key.pem");
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl runs (./test.sh installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        key.to_str().unwrap(),
    ]);
    let public =
        String::from_utf8(run(&["pkey", "-in", key.to_str().unwrap(), "-pubout"])).unwrap();
    let gate = Gate::new(GateConfig::new(vec![
        VerifyingKey::public_pem(Algorithm::Rs256, &public).unwrap(),
    ]));
    let now = unix_now();
    let token = jws("RS256", &claims(now + 60.0), |message| {
        let input = dir.join("input");
        std::fs::write(&input, message).unwrap();
        run(&[
            "dgst",
            "-sha256",
            "-sign",
            key.to_str().unwrap(),
            input.to_str().unwrap(),
        ])
    });
    assert!(gate.check(&format!("/{token}/vm"), &[], now).is_ok());
    // The RSA public key as an HS256 secret: refused by algorithm.
    let confused = sign_hs256(public.as_bytes(), r#"{"alg":"HS256"}"#, &claims(now + 60.0));
    assert!(matches!(
        gate.check(&format!("/{confused}/vm"), &[], now),
        Err(Refusal::AlgorithmNotAllowed(_))
    ));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sessions_are_cut_at_expiry_or_when_idle() {
    let gate = hs_gate();
    let (now, unix) = (Instant::now(), unix_now());
    let token = mint_hs256(SECRET.as_bytes(), unix + 30.0, "ns", &["vm"]);
    let admission = gate.check(&format!("/{token}/vm"), &[], unix).unwrap();
    // Traffic keeps an idle limit away; the expiry still comes.
    let mut session = Session::new(&admission, now, Some(Duration::from_secs(10)));
    for s in (5..=30).step_by(5) {
        session.handle_input(now + Duration::from_secs(s), b"x");
        oobkit_runloop::check_timeout(&mut session, now + Duration::from_secs(s));
        assert_eq!(session.poll_event(), None, "cut early at {s} s");
    }
    // Traffic at 30 s keeps the idle limit until 40 s; the expiry (35 s) comes first.
    oobkit_runloop::check_timeout(&mut session, now + Duration::from_secs(35));
    assert_eq!(
        session.poll_event(),
        Some(SessionEvent::Cut(CutReason::TokenExpired))
    );
    assert_eq!(session.poll_timeout(), None);
    // Without traffic, the idle limit cuts first.
    let mut session = Session::new(&admission, now, Some(Duration::from_secs(10)));
    oobkit_runloop::check_timeout(&mut session, now + Duration::from_secs(10));
    assert_eq!(
        session.poll_event(),
        Some(SessionEvent::Cut(CutReason::Idle))
    );
    assert_eq!(session.poll_event(), None, "reported once");
    assert_eq!(session.poll_timeout(), None);
    let mut session = Session::new(&admission, now, None);
    let deadline = session.poll_timeout().unwrap();
    assert!(deadline - now > Duration::from_secs(34) && deadline - now <= Duration::from_secs(35));
    oobkit_runloop::check_timeout(&mut session, deadline);
    assert_eq!(
        session.poll_event(),
        Some(SessionEvent::Cut(CutReason::TokenExpired))
    );
}

#[test]
fn fuzz_seeds() {
    oobkit_testkit::replay_seeds("gate_check", oobkit_gate::fuzz_check);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any byte of the token changed to any other byte: refused.
    #[test]
    fn a_tampered_token_is_refused(at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let gate = hs_gate();
        let now = 1_800_000_000.0;
        let token = mint_hs256(SECRET.as_bytes(), now + 60.0, "ns", &["vm"]);
        let mut bytes = token.clone().into_bytes();
        let i = at.index(bytes.len());
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        let tampered = String::from_utf8_lossy(&bytes).into_owned();
        let path = format!("/{tampered}/vm");
        prop_assert!(gate.check(&path, &[], now).is_err());
    }

    /// Any VMI the token does not list: 403.
    #[test]
    fn an_unlisted_vmi_is_forbidden(vmi in "[a-z0-9-]{1,20}") {
        prop_assume!(vmi != "vm-a" && vmi != "vm-b");
        let gate = hs_gate();
        let now = 1_800_000_000.0;
        let token = mint_hs256(SECRET.as_bytes(), now + 60.0, "ns", &["vm-a", "vm-b"]);
        let refused = gate.check(&format!("/{token}/{vmi}"), &[], now).unwrap_err();
        prop_assert_eq!(refused.status(), 403);
    }

    /// Float rounding of Unix times never lets a session outlive `exp` plus the leeway, and
    /// never cuts it more than a millisecond early. (Unix times near 1.8e9 carry rounding of
    /// a few hundred nanoseconds; a session once came out a hair past its expiry.)
    #[test]
    fn validity_never_passes_the_expiry(now in 1.6e9f64..2.0e9, seconds in 1u64..100_000) {
        let gate = hs_gate();
        let token = mint_hs256(SECRET.as_bytes(), now + seconds as f64, "ns", &["vm"]);
        let admission = gate.check(&format!("/{token}/vm"), &[], now).unwrap();
        let exact = Duration::from_secs(seconds + 5);
        prop_assert!(admission.valid_for <= exact, "{:?} > {:?}", admission.valid_for, exact);
        prop_assert!(exact - admission.valid_for < Duration::from_millis(2));
    }
}
