//! The inventory API behind the home page: what the console offers and how each AMT stands
//! (`GET /targets`), power (`POST /targets/NAME/power`) and user consent
//! (`POST /targets/NAME/consent`), each behind the gateway's authentication.

use std::net::SocketAddr;

use oobkit_http1::HttpRequest;
use oobkit_wsman::ops::{self, PowerAction};
use serde::Deserialize;

use super::{Shared, api_prelude, error_json};

fn ok_json(body: &serde_json::Value) -> Vec<u8> {
    oobkit_io::web::json_response(200, "OK", &body.to_string())
}

#[derive(Deserialize)]
struct PowerRequest {
    action: String,
}

#[derive(Deserialize)]
struct ConsentRequest {
    /// Ask the AMT to show a code on the managed screen.
    #[serde(default)]
    start: bool,
    /// The code read on the managed screen.
    code: Option<u32>,
}

/// One request under `/targets`: the answer and the log line.
pub(crate) async fn handle(
    request: &HttpRequest,
    path: &str,
    peer: SocketAddr,
    shared: &Shared,
) -> (Vec<u8>, String) {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["targets"] => {
            let user = match api_prelude(request, peer, shared, "GET") {
                Ok(user) => user,
                Err(answer) => return answer,
            };
            (
                ok_json(&list(shared).await),
                format!("{user}: listed the targets"),
            )
        }
        ["targets", name, action @ ("power" | "consent")] => {
            let user = match api_prelude(request, peer, shared, "POST") {
                Ok(user) => user,
                Err(answer) => return answer,
            };
            let Some(amt) = shared.amts.iter().find(|a| a.name == *name) else {
                return (
                    error_json(404, "Not Found", "no_target", "no such target"),
                    format!("{user}: {action} of an unknown target"),
                );
            };
            let bad = |why: &str| {
                (
                    error_json(400, "Bad Request", "bad_request", why),
                    format!("{user}: bad {action} request for {name}: {why}"),
                )
            };
            let done = if *action == "power" {
                let Ok(PowerRequest { action }) = serde_json::from_slice(&request.body) else {
                    return bad(r#"want {"action": "on" | "off" | "cycle" | "reset"}"#);
                };
                let power = match action.as_str() {
                    "on" => PowerAction::On,
                    "off" => PowerAction::Off,
                    "cycle" => PowerAction::Cycle,
                    "reset" => PowerAction::Reset,
                    _ => return bad("action: on, off, cycle or reset"),
                };
                amt.power(power).await.map(|()| format!("power {action}"))
            } else {
                match serde_json::from_slice(&request.body) {
                    Ok(ConsentRequest {
                        start: true,
                        code: None,
                    }) => amt
                        .start_consent()
                        .await
                        .map(|()| "consent code requested".to_owned()),
                    Ok(ConsentRequest {
                        start: false,
                        code: Some(code),
                    }) if code <= 999_999 => amt
                        .send_consent_code(code)
                        .await
                        .map(|()| "consent code sent".to_owned()),
                    _ => return bad(r#"want {"start": true} or {"code": NNNNNN}"#),
                }
            };
            match done {
                Ok(what) => (
                    ok_json(&serde_json::json!({"ok": true})),
                    format!("{user}: {name}: {what}"),
                ),
                Err(e) => (
                    error_json(502, "Bad Gateway", "device", &e.to_string()),
                    format!("{user}: {name}: {action} failed: {e}"),
                ),
            }
        }
        _ => (
            error_json(404, "Not Found", "not_found", "no such resource"),
            format!("{} {path}: 404", request.method),
        ),
    }
}

/// Every target and how it stands (AMTs are asked now, all at once).
async fn list(shared: &Shared) -> serde_json::Value {
    let asked = futures_util::future::join_all(shared.amts.iter().map(|amt| async move {
        match amt.status().await {
            Ok(status) => serde_json::json!({
                "name": amt.name,
                "kind": "amt",
                "reachable": true,
                "firmware": status.firmware,
                "power_state": status.power_state,
                "power": ops::power_state_text(status.power_state),
                "sol": status.sol,
                "kvm": status.kvm,
                "listener": status.listener,
                "consent": status.consent.text(),
                "consent_for_kvm": status.consent.needed_for(true),
                "consent_for_sol": status.consent.needed_for(false),
                "consent_state": status.consent_state,
            }),
            Err(e) => serde_json::json!({
                "name": amt.name,
                "kind": "amt",
                "reachable": false,
                "error": e.to_string(),
            }),
        }
    }))
    .await;
    let ssh: Vec<String> = shared
        .config
        .targets
        .0
        .iter()
        .map(ToString::to_string)
        .collect();
    let rrmt = match &shared.config.rrmt {
        None => serde_json::Value::Null,
        Some(config) => match config.hosts().await {
            Ok(hosts) => serde_json::json!({
                "reachable": true,
                "hosts": hosts.iter().map(|h| serde_json::json!({
                    "name": h.record.name, "online": h.online,
                    "revoked": h.record.revoked.is_some(),
                })).collect::<Vec<_>>(),
            }),
            Err(e) => serde_json::json!({ "reachable": false, "error": e }),
        },
    };
    let vnc: Vec<&str> = shared.config.vnc.iter().map(|v| v.name.as_str()).collect();
    serde_json::json!({ "amts": asked, "ssh": ssh, "rrmt": rrmt, "vnc": vnc })
}
