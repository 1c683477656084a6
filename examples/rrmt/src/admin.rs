//! The administrators' protocol on the server's admin endpoint: a websocket opened at
//! [`ADMIN_PATH`] behind HTTP Digest, then JSON requests and replies in text messages. Command
//! output travels in binary messages: for `exec`, a stream byte (1 stdout, 2 stderr) then the
//! bytes; for `shell`, the terminal's bytes both ways.
//!
//! Several requests may follow one another on one connection; a `shell` takes the connection
//! until it closes.

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;

use crate::registry::{AuditRecord, HostRecord};

/// The websocket path of the admin endpoint.
pub const ADMIN_PATH: &str = "/admin";
/// The websocket path agents connect to.
pub const AGENT_PATH: &str = "/agent";

/// What an administrator asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AdminRequest {
    /// Every host with its connection state.
    Hosts,
    /// Registers a host and returns its new agent token.
    TokenCreate {
        /// The host's name.
        name: String,
    },
    /// Revokes a host's token and disconnects its agent.
    TokenRevoke {
        /// The host's name.
        name: String,
    },
    /// The last entries of the audit log.
    Audit {
        /// How many.
        limit: u32,
    },
    /// Runs a command on a host.
    Exec {
        /// The host's name.
        host: String,
        /// Program and arguments.
        argv: Vec<String>,
        /// Kill after this long (0: the server's default).
        timeout_ms: u32,
        /// Most output bytes (0: the server's default).
        output_cap: u32,
    },
    /// Opens an interactive shell on a host.
    Shell {
        /// The host's name.
        host: String,
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
        /// TERM.
        term: String,
        /// The person the administrator acts for, when a gateway (a web console) opens the
        /// shell on someone's behalf: written in the audit entry.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        for_user: Option<String>,
    },
    /// The terminal of an open shell changed size.
    Resize {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// From another server of the cluster only (see [`crate::peer`]): run `request` (an exec
    /// or a shell) for administrator `user`, who is connected to server `via`.
    Forward {
        /// The administrator.
        user: String,
        /// The administrator's address.
        address: String,
        /// The server the administrator is connected to.
        via: String,
        /// The exec or shell.
        request: Box<Self>,
    },
}

/// A host as `hosts` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostView {
    /// The registry's record.
    #[serde(flatten)]
    pub record: HostRecord,
    /// Whether its agent is connected now.
    pub online: bool,
    /// The server its agent is connected to (the id of one server of the cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
}

/// What the server answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AdminReply {
    /// The request failed.
    Error {
        /// Why, for a person.
        message: String,
    },
    /// Answer to `hosts`.
    Hosts {
        /// Hosts by name.
        hosts: Vec<HostView>,
    },
    /// Answer to `token_create`.
    TokenCreated {
        /// The host's name.
        name: String,
        /// The token (UUID form): shown once, give it to the agent.
        token: String,
        /// The host id.
        host_id: String,
        /// The port agents connect to (the host is the one the administrator reached).
        agent_port: u16,
        /// The server certificate's SHA-256 fingerprint, for the agent's `--fingerprint`.
        fingerprint: String,
    },
    /// Answer to `token_revoke`.
    Revoked {
        /// The host's name.
        name: String,
        /// Whether a live agent was cut off.
        disconnected: bool,
    },
    /// Answer to `audit`.
    Audit {
        /// Oldest first.
        entries: Vec<AuditRecord>,
    },
    /// The end of an `exec` (after its output).
    Exited {
        /// Exit status (-1 when killed or not started).
        exit: i32,
        /// Killed at its timeout.
        timed_out: bool,
        /// Output beyond the cap was dropped.
        truncated: bool,
        /// The program could not be started.
        not_started: bool,
    },
    /// The shell runs: binary messages flow both ways from now on.
    ShellOpened,
    /// The shell ended.
    ShellClosed {
        /// Its exit status (-1 when not known).
        exit: i32,
    },
    /// To a forwarded request only: this server does not hold the agent (any more); the
    /// forwarding server asks the registry where it is now.
    NotHere {
        /// Why, for a person.
        message: String,
    },
}

impl AdminReply {
    /// An error reply.
    pub fn error(message: impl Into<String>) -> Self {
        Self::Error {
            message: message.into(),
        }
    }

    /// As a JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!("{{\"reply\":\"error\",\"message\":\"cannot encode reply: {e}\"}}")
        })
    }
}

/// What arrives on an admin connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A JSON reply.
    Reply(AdminReply),
    /// Command output or terminal bytes.
    Data(Vec<u8>),
    /// The server closed the connection.
    Closed,
}

/// A connection to the admin endpoint.
pub struct AdminClient {
    ws: oobkit_io::WebSocket,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient").finish_non_exhaustive()
    }
}

impl AdminClient {
    /// Opens [`ADMIN_PATH`] on `endpoint` as `user` (HTTP Digest).
    pub async fn connect(
        endpoint: &oobkit_io::Endpoint,
        user: &str,
        password: &str,
    ) -> Result<Self, oobkit_io::IoError> {
        let ws =
            oobkit_io::websocket_connect(endpoint, ADMIN_PATH, Some((user, password)), 2 << 20)
                .await?;
        Ok(Self { ws })
    }

    /// Sends a request.
    pub async fn send(&mut self, request: &AdminRequest) -> Result<(), String> {
        let text = serde_json::to_string(request).map_err(|e| e.to_string())?;
        self.ws
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| format!("the server connection failed: {e}"))
    }

    /// Sends terminal input.
    pub async fn send_data(&mut self, data: &[u8]) -> Result<(), String> {
        self.ws
            .send(Message::Binary(data.to_vec().into()))
            .await
            .map_err(|e| format!("the server connection failed: {e}"))
    }

    /// The next reply or data.
    pub async fn next(&mut self) -> Result<Incoming, String> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(&text)
                        .map(Incoming::Reply)
                        .map_err(|e| format!("unexpected reply from the server ({e}): {text}"));
                }
                Some(Ok(Message::Binary(data))) => return Ok(Incoming::Data(data.into())),
                Some(Ok(Message::Close(_))) | None => return Ok(Incoming::Closed),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("the server connection failed: {e}")),
            }
        }
    }

    /// Sends `request` and waits for its one reply (for requests without output).
    pub async fn call(&mut self, request: &AdminRequest) -> Result<AdminReply, String> {
        self.send(request).await?;
        loop {
            match self.next().await? {
                Incoming::Reply(reply) => return Ok(reply),
                Incoming::Data(_) => {}
                Incoming::Closed => return Err("the server closed the connection".into()),
            }
        }
    }

    /// The websocket itself, for a caller that drives a shell's bytes and replies in its own
    /// loop (after `ShellOpened`: binary messages are terminal bytes, text messages replies).
    pub fn into_websocket(self) -> oobkit_io::WebSocket {
        self.ws
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// Stream byte of an exec's standard output in a binary message.
pub const STDOUT: u8 = 1;
/// Stream byte of an exec's standard error.
pub const STDERR: u8 = 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_have_stable_json() {
        let exec = AdminRequest::Exec {
            host: "web1".into(),
            argv: vec!["uname".into(), "-a".into()],
            timeout_ms: 0,
            output_cap: 0,
        };
        let text = serde_json::to_string(&exec).unwrap();
        assert_eq!(
            text,
            r#"{"op":"exec","host":"web1","argv":["uname","-a"],"timeout_ms":0,"output_cap":0}"#
        );
        assert_eq!(serde_json::from_str::<AdminRequest>(&text).unwrap(), exec);
        assert_eq!(
            AdminReply::ShellClosed { exit: 3 }.to_json(),
            r#"{"reply":"shell_closed","exit":3}"#
        );
        assert!(serde_json::from_str::<AdminRequest>(r#"{"op":"format_disk"}"#).is_err());
    }
}
