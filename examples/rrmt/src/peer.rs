//! Links between the servers of a cluster: an administrator connected to server A runs an exec
//! or a shell on an agent connected to server B; A finds B in the registry (presence, then B's
//! announcement with its address and certificate fingerprint), opens B's administrators'
//! endpoint over wss pinned to that fingerprint, authenticates as [`PEER_USER`] with the
//! cluster's shared secret (HTTP Digest, as administrators do), and sends the request wrapped
//! in [`AdminRequest::Forward`] naming the administrator it acts for. B runs it as it runs its
//! own administrators' requests and writes the audit entry; A relays the messages both ways.
//!
//! Flow control holds end to end: A reads from one side only once the other side's socket took
//! the previous message, and B grants its agent shell window only as A's link takes output,
//! so a shell flooding through B and A still waits for a slow administrator.
//!
//! Links are kept for reuse after an exec (a few per peer, for a short while): a cross-server
//! exec then costs one request on an open connection, not a TLS and Digest handshake.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::admin::{AdminClient, AdminReply, AdminRequest, Incoming};
use crate::registry::ServerRecord;

/// The Digest user name servers authenticate as on each other's administrators' endpoint
/// (not a name `add-admin` accepts).
pub const PEER_USER: &str = "@peer";

/// How long an idle link is kept for reuse.
const LINK_IDLE: Duration = Duration::from_secs(30);
/// Idle links kept per peer server.
const LINKS_PER_PEER: usize = 8;

/// Idle links to the other servers, by server id.
#[derive(Default)]
pub struct Links(Mutex<HashMap<String, Vec<(Instant, AdminClient)>>>);

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links").finish_non_exhaustive()
    }
}

impl Links {
    fn idle(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<(Instant, AdminClient)>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle link to `server`, or a new one.
    pub async fn take(&self, server: &ServerRecord, secret: &str) -> Result<AdminClient, String> {
        let reused = {
            let mut idle = self.idle();
            let links = idle.entry(server.id.clone()).or_default();
            links.retain(|(since, _)| since.elapsed() < LINK_IDLE);
            links.pop()
        };
        if let Some((_, link)) = reused {
            return Ok(link);
        }
        let policy = oobkit_io::TlsPolicy::from_flags(Some(&server.fingerprint), None, false)?;
        let (endpoint, secure) = crate::endpoint_from_url(&server.admin_url, policy)?;
        if !secure {
            return Err(format!(
                "{} is not a wss:// address; servers link over TLS only",
                server.admin_url
            ));
        }
        AdminClient::connect(&endpoint, PEER_USER, secret)
            .await
            .map_err(|e| e.to_string())
    }

    /// Keeps `link` to `server` for reuse.
    pub fn give_back(&self, server: &str, link: AdminClient) {
        let mut idle = self.idle();
        let links = idle.entry(server.to_owned()).or_default();
        if links.len() < LINKS_PER_PEER {
            links.push((Instant::now(), link));
        }
    }
}

/// What the administrator's side of a relay needs: sends and receives websocket messages.
pub trait AdminSide:
    futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error>
    + futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
    + Unpin
    + Send
{
}

impl<T> AdminSide for T where
    T: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error>
        + futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + Unpin
        + Send
{
}

async fn reply(admin: &mut impl AdminSide, answer: &AdminReply) -> bool {
    admin
        .send(Message::Text(answer.to_json().into()))
        .await
        .is_ok()
}

/// Opens a link to `server` and sends `request` (a [`AdminRequest::Forward`]); the reply to
/// the administrator when that fails.
async fn open(
    links: &Links,
    server: &ServerRecord,
    secret: &str,
    request: &AdminRequest,
) -> Result<AdminClient, AdminReply> {
    let unreachable = |e: String| {
        AdminReply::error(format!(
            "the agent is connected to server {} ({}), which cannot be reached: {e}",
            server.id, server.admin_url
        ))
    };
    let mut link = links.take(server, secret).await.map_err(unreachable)?;
    if link.send(request).await.is_err() {
        // An idle link the peer closed: one fresh attempt (nothing was delivered).
        link = links.take(server, secret).await.map_err(unreachable)?;
        link.send(request).await.map_err(unreachable)?;
    }
    Ok(link)
}

/// How a relayed request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relayed {
    /// Answered (for an exec: whether the administrator is still there).
    Done(bool),
    /// The server does not hold the agent: nothing was run, nothing sent to the administrator.
    NotHere,
}

/// Relays a forwarded exec: its output, then its end.
pub async fn exec(
    admin: &mut impl AdminSide,
    links: &Links,
    server: &ServerRecord,
    secret: &str,
    request: &AdminRequest,
) -> Relayed {
    let mut link = match open(links, server, secret, request).await {
        Ok(link) => link,
        Err(answer) => return Relayed::Done(reply(admin, &answer).await),
    };
    let mut admin_present = true;
    loop {
        match link.next().await {
            Ok(Incoming::Data(data)) => {
                if admin_present {
                    admin_present = admin.send(Message::Binary(data.into())).await.is_ok();
                }
            }
            Ok(Incoming::Reply(AdminReply::NotHere { .. })) => {
                links.give_back(&server.id, link);
                return Relayed::NotHere;
            }
            Ok(Incoming::Reply(answer)) => {
                let done = matches!(answer, AdminReply::Exited { .. } | AdminReply::Error { .. });
                if admin_present {
                    admin_present = reply(admin, &answer).await;
                }
                if done {
                    links.give_back(&server.id, link);
                    return Relayed::Done(admin_present);
                }
            }
            Ok(Incoming::Closed) | Err(_) => {
                let answer = AdminReply::error(format!(
                    "server {} (where the agent is connected) went away during the exec; the \
                     audit log says how it ended",
                    server.id
                ));
                return Relayed::Done(admin_present && reply(admin, &answer).await);
            }
        }
    }
}

/// Relays a forwarded shell until either side ends it.
pub async fn shell(
    admin: &mut impl AdminSide,
    links: &Links,
    server: &ServerRecord,
    secret: &str,
    request: &AdminRequest,
) -> Relayed {
    let mut link = match open(links, server, secret, request).await {
        Ok(link) => link,
        Err(answer) => {
            reply(admin, &answer).await;
            return Relayed::Done(false);
        }
    };
    loop {
        tokio::select! {
            incoming = link.next() => match incoming {
                Ok(Incoming::Data(data)) => {
                    if admin.send(Message::Binary(data.into())).await.is_err() {
                        break;
                    }
                }
                Ok(Incoming::Reply(AdminReply::NotHere { .. })) => {
                    links.give_back(&server.id, link);
                    return Relayed::NotHere;
                }
                Ok(Incoming::Reply(answer)) => {
                    let done =
                        matches!(answer, AdminReply::ShellClosed { .. } | AdminReply::Error { .. });
                    if !reply(admin, &answer).await || done {
                        break;
                    }
                }
                Ok(Incoming::Closed) | Err(_) => {
                    let answer = AdminReply::error(format!(
                        "server {} (where the agent is connected) went away during the shell",
                        server.id
                    ));
                    reply(admin, &answer).await;
                    break;
                }
            },
            message = admin.next() => match message {
                Some(Ok(Message::Binary(data))) => {
                    if link.send_data(&data).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Text(text))) => {
                    if let Ok(resize @ AdminRequest::Resize { .. }) = serde_json::from_str(&text)
                        && link.send(&resize).await.is_err()
                    {
                        break;
                    }
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    link.close().await;
    Relayed::Done(false)
}
