//! The round-trip helpers of both sides driven against each other, as an HTTP client and
//! server would use them.

use oobkit_digest::{Client, Request, Secret, Server, ServerConfig, Step, Verdict, VerifyError};

const REALM: &str = "Digest:2517B2332AFD88353D5F5FD352697901";

/// Runs one request to completion; returns the final step and how many sends it took.
fn run(client: &mut Client, server: &mut Server, password: &str, now: u64) -> (Step, usize) {
    let request = Request {
        method: "POST",
        uri: "/wsman",
        body: Some(b"<Envelope/>"),
    };
    let mut round = client.round_trip();
    for sends in 1..=10 {
        let authorization = round
            .authorization("POST", "/wsman", Some(b"<Envelope/>"), "0a4f113b")
            .unwrap();
        let verdict = server
            .authenticate(
                authorization.as_deref(),
                &request,
                now,
                [sends as u8; 8],
                |a| (a.username == "admin").then_some(("admin", Secret::Password(password))),
            )
            .unwrap();
        let (status, challenges) = match verdict {
            Verdict::Authorized(verified) => {
                assert_eq!(verified.username, "admin");
                (200, Vec::new())
            }
            Verdict::Challenge {
                www_authenticate,
                refused,
            } => {
                // The first send carries no answer; a later refusal always says why.
                assert_eq!(refused.is_none(), authorization.is_none());
                (401, www_authenticate)
            }
        };
        let step = round
            .response(status, challenges.iter().map(String::as_str))
            .unwrap();
        if step != Step::Retry {
            return (step, sends);
        }
    }
    panic!("the round trip did not end within 10 sends");
}

fn server(key: u8) -> Server {
    Server::new(ServerConfig::new(REALM, [key; 32]))
}

#[test]
fn first_request_takes_two_sends_then_one() {
    let (mut client, mut server) = (Client::new("admin", "P@ssw0rd"), server(1));
    assert_eq!(
        run(&mut client, &mut server, "P@ssw0rd", 100),
        (Step::Done, 2)
    );
    assert_eq!(
        run(&mut client, &mut server, "P@ssw0rd", 101),
        (Step::Done, 1)
    );
    assert_eq!(
        run(&mut client, &mut server, "P@ssw0rd", 102),
        (Step::Done, 1)
    );
}

#[test]
fn wrong_password_is_rejected_without_a_third_send() {
    let (mut client, mut server) = (Client::new("admin", "wrong"), server(1));
    assert_eq!(
        run(&mut client, &mut server, "P@ssw0rd", 100),
        (Step::Rejected, 2)
    );
}

#[test]
fn a_restarted_server_costs_one_more_send() {
    let mut client = Client::new("admin", "P@ssw0rd");
    assert_eq!(
        run(&mut client, &mut server(1), "P@ssw0rd", 100),
        (Step::Done, 2)
    );
    // A new nonce key: the kept nonce is foreign now; the client answers the new challenge.
    assert_eq!(
        run(&mut client, &mut server(2), "P@ssw0rd", 101),
        (Step::Done, 2)
    );
}

#[test]
fn a_stale_nonce_is_answered_again_and_the_server_says_stale() {
    let (mut client, mut server) = (Client::new("admin", "P@ssw0rd"), server(1));
    assert_eq!(
        run(&mut client, &mut server, "P@ssw0rd", 100),
        (Step::Done, 2)
    );
    let request = Request {
        method: "GET",
        uri: "/",
        body: None,
    };
    let mut round = client.round_trip();
    let old = round.authorization("GET", "/", None, "c").unwrap();
    // Hours later the nonce has expired.
    let verdict = server
        .authenticate(old.as_deref(), &request, 100 + 36_000, [9; 8], |_| {
            Some(("admin", Secret::Password("P@ssw0rd")))
        })
        .unwrap();
    let Verdict::Challenge {
        www_authenticate,
        refused: Some(VerifyError::StaleNonce),
    } = verdict
    else {
        panic!("expected a stale challenge, got {verdict:?}");
    };
    assert!(www_authenticate[0].contains("stale=true"));
    let step = round
        .response(401, www_authenticate.iter().map(String::as_str))
        .unwrap();
    assert_eq!(step, Step::Retry);
}

#[test]
fn a_server_that_always_refuses_ends_after_three_sends() {
    let mut client = Client::new("admin", "P@ssw0rd");
    let mut round = client.round_trip();
    let challenge = format!(r#"Digest realm="{REALM}", nonce="n1", qop="auth", stale=true"#);
    let mut sends = 0;
    loop {
        let _ = round.authorization("GET", "/", None, "c").unwrap();
        sends += 1;
        // "stale" every time with a new nonce (a server whose clock runs wild): never
        // "rejected" by the nonce rule, so only the attempt limit ends it.
        let fresh = challenge.replace("n1", &format!("n{sends}"));
        match round.response(401, [fresh.as_str()]).unwrap() {
            Step::Retry => continue,
            step => {
                assert_eq!(step, Step::Rejected);
                break;
            }
        }
    }
    assert_eq!(sends, oobkit_digest::MAX_ATTEMPTS as usize);
}
