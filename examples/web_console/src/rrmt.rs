//! Shells on hosts behind firewalls, through an RRMT server's admin endpoint (as one of its
//! administrators, HTTP Digest): the console lists the hosts and opens a shell on one as a
//! terminal backend; the server's audit entry names the web user the shell was opened for.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt as _, SinkExt, StreamExt};
use oobkit_io::{Endpoint, WebSocket};
use oobkit_term::CloseCode;
use rrmt::admin::{AdminClient, AdminReply, AdminRequest, HostView, Incoming};
use tokio_tungstenite::tungstenite::Message;

use crate::backend::{InputOverflow, MAX_WAITING_INPUT, OUTPUT_BATCH, Step, TermBackend};

/// The RRMT server the console reaches hosts through.
#[derive(Clone)]
pub struct RrmtConfig {
    /// Its admin endpoint (`wss://HOST:PORT`, TLS pinned or verified).
    pub endpoint: Endpoint,
    /// The administrator the console logs in as.
    pub user: String,
    /// Its password.
    pub password: String,
}

/// Never printed.
impl std::fmt::Debug for RrmtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RrmtConfig")
            .field("endpoint", &self.endpoint)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Time to reach the server and open a shell.
const OPEN_TIMEOUT: Duration = Duration::from_secs(20);

impl RrmtConfig {
    async fn connect(&self) -> Result<AdminClient, String> {
        match tokio::time::timeout(
            OPEN_TIMEOUT,
            AdminClient::connect(&self.endpoint, &self.user, &self.password),
        )
        .await
        {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(format!("the RRMT server: {e}")),
            Err(_) => Err(format!(
                "the RRMT server did not answer within {OPEN_TIMEOUT:?}"
            )),
        }
    }

    /// The hosts and whether their agents are connected.
    pub async fn hosts(&self) -> Result<Vec<HostView>, String> {
        let mut client = self.connect().await?;
        let reply = tokio::time::timeout(OPEN_TIMEOUT, client.call(&AdminRequest::Hosts))
            .await
            .map_err(|_| "the RRMT server did not answer".to_owned())??;
        client.close().await;
        match reply {
            AdminReply::Hosts { hosts } => Ok(hosts),
            AdminReply::Error { message } => Err(message),
            other => Err(format!("unexpected reply: {other:?}")),
        }
    }
}

/// What goes to the server.
enum ToServer {
    Input(bytes::Bytes),
    Resize { cols: u16, rows: u16 },
}

/// A shell on an RRMT host.
pub struct RrmtTerm {
    rx: SplitStream<WebSocket>,
    to_server: tokio::sync::mpsc::Sender<ToServer>,
    writer: tokio::task::JoinHandle<()>,
    waiting: VecDeque<ToServer>,
    waiting_bytes: usize,
    host: String,
    /// A message read after output, handled at the next step.
    held: Option<Option<Result<Message, tokio_tungstenite::tungstenite::Error>>>,
}

impl RrmtTerm {
    fn lost(&self) -> Step {
        Step::Ended {
            code: CloseCode::TargetLost,
            reason: format!("the RRMT server closed the shell on {}", self.host),
        }
    }

    /// Opens a shell on `host` with the page's size, for `person` (named in the audit log).
    pub async fn open(
        config: &RrmtConfig,
        host: &str,
        cols: u16,
        rows: u16,
        person: &str,
    ) -> Result<Self, String> {
        let mut client = config.connect().await?;
        let opened = async {
            client
                .send(&AdminRequest::Shell {
                    host: host.to_owned(),
                    cols,
                    rows,
                    term: "xterm-256color".into(),
                    for_user: Some(person.to_owned()),
                })
                .await?;
            loop {
                match client.next().await? {
                    Incoming::Reply(AdminReply::ShellOpened) => return Ok(()),
                    Incoming::Reply(AdminReply::Error { message }) => return Err(message),
                    Incoming::Reply(_) | Incoming::Data(_) => {}
                    Incoming::Closed => return Err("the RRMT server closed the connection".into()),
                }
            }
        };
        tokio::time::timeout(OPEN_TIMEOUT, opened)
            .await
            .map_err(|_| format!("no shell on {host} within {OPEN_TIMEOUT:?}"))??;
        let (tx, rx) = client.into_websocket().split();
        let (to_server, for_server) = tokio::sync::mpsc::channel(16);
        let writer = tokio::spawn(write_to_server(tx, for_server));
        Ok(Self {
            rx,
            to_server,
            writer,
            waiting: VecDeque::new(),
            waiting_bytes: 0,
            host: host.to_owned(),
            held: None,
        })
    }
}

/// Sends input and resizes from their own task (see [`crate::ssh::SshTerm`]: a write awaited in
/// the run loop would stop the reads).
async fn write_to_server(
    mut tx: SplitSink<WebSocket, Message>,
    mut messages: tokio::sync::mpsc::Receiver<ToServer>,
) {
    while let Some(message) = messages.recv().await {
        let message = match message {
            ToServer::Input(bytes) => Message::Binary(bytes),
            ToServer::Resize { cols, rows } => {
                let request = AdminRequest::Resize { cols, rows };
                match serde_json::to_string(&request) {
                    Ok(text) => Message::Text(text.into()),
                    Err(_) => continue,
                }
            }
        };
        if tx.send(message).await.is_err() {
            break;
        }
    }
    let _ = tx.close().await;
}

impl TermBackend for RrmtTerm {
    fn input(&mut self, bytes: bytes::Bytes) -> Result<(), InputOverflow> {
        self.waiting_bytes += bytes.len();
        self.waiting.push_back(ToServer::Input(bytes));
        if self.waiting_bytes > MAX_WAITING_INPUT {
            return Err(InputOverflow);
        }
        Ok(())
    }

    fn resize(&mut self, cols: u16, rows: u16) {
        self.waiting.push_back(ToServer::Resize { cols, rows });
    }

    fn has_pending_input(&self) -> bool {
        !self.waiting.is_empty()
    }

    async fn step(&mut self, read_output: bool) -> Step {
        loop {
            let message = if let Some(held) = self.held.take().filter(|_| read_output) {
                held
            } else {
                tokio::select! {
                    biased;
                    permit = self.to_server.reserve(), if !self.waiting.is_empty() => {
                        let Ok(permit) = permit else { return self.lost() };
                        let message = self.waiting.pop_front().expect("not empty");
                        if let ToServer::Input(bytes) = &message {
                            self.waiting_bytes -= bytes.len();
                        }
                        permit.send(message);
                        return Step::Progress;
                    }
                    message = self.rx.next(), if read_output => message,
                }
            };
            // Terminal bytes already waiting go out as one frame; anything else waits for
            // the next step, after them.
            let mut batch = Vec::new();
            let mut next = Some(message);
            while let Some(message) = next.take() {
                match message {
                    Some(Ok(Message::Binary(data))) => {
                        batch.extend_from_slice(&data);
                        if batch.len() < OUTPUT_BATCH {
                            next = self.rx.next().now_or_never();
                        }
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                        if batch.len() < OUTPUT_BATCH {
                            next = self.rx.next().now_or_never();
                        }
                    }
                    other if !batch.is_empty() => self.held = Some(other),
                    Some(Ok(Message::Text(text))) => {
                        match serde_json::from_str::<AdminReply>(&text) {
                            Ok(AdminReply::ShellClosed { exit }) => {
                                return Step::Ended {
                                    code: CloseCode::Exited,
                                    reason: format!("the shell exited with status {exit}"),
                                };
                            }
                            Ok(AdminReply::Error { message }) => {
                                return Step::Ended {
                                    code: CloseCode::TargetLost,
                                    reason: message,
                                };
                            }
                            _ => {}
                        }
                    }
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return self.lost(),
                }
            }
            if !batch.is_empty() {
                return Step::Output(batch);
            }
        }
    }

    async fn close(self) {
        // Dropping the writer's channel closes the websocket; the server ends the shell.
        drop(self.to_server);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.writer).await;
    }
}
