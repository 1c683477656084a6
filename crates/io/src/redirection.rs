//! Driving an `oobkit_redir::Client` over a real connection: open a session (TCP, TLS or the
//! `/ws-redirection` websocket), then exchange SOL data, or take the stream over for RFB.

use std::time::Instant;

use bytes::Bytes;
use oobkit_redir::codec::SessionKind;
use oobkit_redir::{Client, ClientConfig, CloseReason, Event, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Endpoint, Io, IoError, connect, random_hex16, redirection_websocket};

/// How to reach the redirection service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirTransport {
    /// The redirection port (16994, or 16995 with TLS): in-band authentication.
    Tcp,
    /// `/ws-redirection` on the HTTP(S) port: HTTP Digest, then empty Kerberos.
    WebSocket,
}

/// Where and as whom.
#[derive(Clone)]
pub struct RedirTarget {
    /// Host, port and TLS policy.
    pub endpoint: Endpoint,
    /// Transport.
    pub transport: RedirTransport,
    /// User.
    pub user: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for RedirTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedirTarget")
            .field("endpoint", &self.endpoint)
            .field("transport", &self.transport)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Why a redirection session could not be opened or ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedirError {
    /// Connecting (TCP, TLS, websocket upgrade) failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The session failed or ended, with the protocol's reason.
    #[error("{0}")]
    Session(CloseReason),
    /// The connection failed after the session started.
    #[error("connection failed: {0}")]
    Stream(#[from] std::io::Error),
}

/// An open session: the connection and the client state machine.
pub struct Session {
    stream: Box<dyn Io>,
    client: Client,
    pending: std::collections::VecDeque<Event>,
    buf: Vec<u8>,
}

/// After a KVM handoff: the raw RFB stream and the RFB bytes already read.
pub struct RfbStream {
    /// The connection, carrying RFB both ways.
    pub stream: Box<dyn Io>,
    /// Bytes of RFB already received (they came in the same read as the 0x41).
    pub early: Vec<u8>,
}

/// Connects and authenticates a session of `kind`; returns once SOL is ready (or, for KVM,
/// once the device handed the connection over to RFB: see [`Session::into_rfb`]).
pub async fn open_session(target: &RedirTarget, kind: SessionKind) -> Result<Session, RedirError> {
    let (stream, transport) = match target.transport {
        RedirTransport::Tcp => (connect(&target.endpoint).await?, Transport::Tcp),
        RedirTransport::WebSocket => (
            redirection_websocket(&target.endpoint, &target.user, &target.password).await?,
            Transport::AmtWebSocket,
        ),
    };
    let mut config = ClientConfig::new(kind, &target.user, &target.password, &random_hex16());
    config.transport = transport;
    let mut session = Session {
        stream,
        client: Client::new(config, Instant::now()),
        pending: Default::default(),
        buf: vec![0u8; 64 * 1024],
    };
    loop {
        session.flush().await?;
        match session.step().await? {
            Some(Event::SolReady) => return Ok(session),
            Some(Event::RfbHandoff) => {
                session.pending.push_back(Event::RfbHandoff);
                return Ok(session);
            }
            Some(Event::Closed(reason)) => return Err(RedirError::Session(reason)),
            Some(event) => tracing::debug!("redirection: {event:?}"),
            None => {}
        }
    }
}

impl Session {
    /// The next event, waiting once for input or a timer if none is queued. Writes nothing,
    /// so it is cancel-safe inside `select!`; call [`Session::flush`] between calls.
    async fn step(&mut self) -> Result<Option<Event>, RedirError> {
        if let Some(event) = self
            .pending
            .pop_front()
            .or_else(|| self.client.poll_event())
        {
            return Ok(Some(event));
        }
        if self.client.is_closed() {
            return Ok(Some(Event::Closed(CloseReason::Ended)));
        }
        let deadline = self.client.poll_timeout();
        tokio::select! {
            n = self.stream.read(&mut self.buf) => match n? {
                0 => self.client.handle_eof(),
                n => self.client.handle_input(Instant::now(), &self.buf[..n]),
            },
            () = sleep_until(deadline) => self.client.handle_timeout(Instant::now()),
        }
        Ok(self.client.poll_event())
    }

    /// Waits once for something from the device (or a timer). Cancel-safe: use it in
    /// `select!`, and call [`Session::flush`] outside the `select!` on every turn, so
    /// keepalives and heartbeat echoes go out.
    pub async fn wait(&mut self) -> Result<Option<SolEvent>, RedirError> {
        Ok(match self.step().await? {
            Some(Event::SolData(bytes)) => Some(SolEvent::Data(bytes)),
            Some(Event::Closed(reason)) => Some(SolEvent::Closed(reason)),
            _ => None,
        })
    }

    /// The next SOL data or the end (flushing as it goes). Not for use inside `select!`.
    pub async fn next(&mut self) -> Result<SolEvent, RedirError> {
        loop {
            self.flush().await?;
            if let Some(event) = self.wait().await? {
                return Ok(event);
            }
        }
    }

    /// Queues serial bytes for the host (split to the device's MaxTxBuffer); they go out on
    /// the next [`Session::flush`].
    pub fn send(&mut self, data: &[u8]) {
        self.client.send_sol(data);
    }

    /// Writes what is queued.
    pub async fn flush(&mut self) -> Result<(), RedirError> {
        while let Some(bytes) = self.client.poll_transmit() {
            self.stream.write_all(&bytes).await?;
        }
        Ok(())
    }

    /// Ends the session in order (SOL end, then session end) and waits briefly for the
    /// device to confirm.
    pub async fn end(mut self) {
        self.client.end();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
            loop {
                if self.flush().await.is_err() {
                    break;
                }
                if matches!(self.step().await, Ok(Some(Event::Closed(_))) | Err(_)) {
                    break;
                }
            }
        })
        .await;
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }

    /// After a KVM session opened: the raw RFB connection.
    pub fn into_rfb(mut self) -> RfbStream {
        let mut early = Vec::new();
        while let Some(event) = self.client.poll_event() {
            if let Event::Rfb(bytes) = event {
                early.extend_from_slice(&bytes);
            }
        }
        RfbStream {
            stream: self.stream,
            early,
        }
    }
}

/// What a SOL session delivers.
#[derive(Debug)]
pub enum SolEvent {
    /// Serial bytes from the host.
    Data(Bytes),
    /// The session ended.
    Closed(CloseReason),
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
