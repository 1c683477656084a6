//! Driving an `oobkit_redir::Client` over a real connection: open a session (TCP, TLS or the
//! `/ws-redirection` websocket), then exchange SOL data, or take the stream over for RFB.

use std::time::Instant;

use bytes::Bytes;
use oobkit_redir::codec::SessionKind;
use oobkit_redir::{ClientSession, ClientSessionConfig, CloseReason, Event, Transport};
use tokio::io::AsyncWriteExt;

use crate::{Endpoint, Io, IoError, connect, random_hex16, redirection_websocket, sleep_until};

/// Where and as whom.
#[derive(Clone)]
pub struct RedirTarget {
    /// Host, port and TLS policy.
    pub endpoint: Endpoint,
    /// Transport: the redirection port, or `/ws-redirection` on the web port.
    pub transport: Transport,
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

/// The send backlog at which callers stop taking input for the device (see [`Session::send`]).
pub const MAX_SEND_BACKLOG: usize = 256 * 1024;

/// An open session: the connection and the client state machine.
///
/// Writing is part of waiting: [`Session::wait`] sends what the machine has queued while it
/// waits for the device, so nothing depends on the caller remembering a flush, and a device
/// that stops reading cannot stall the reads (or the timers) of the session.
pub struct Session {
    stream: Box<dyn Io>,
    client: ClientSession,
    pending: std::collections::VecDeque<Event>,
    buf: Vec<u8>,
    /// Bytes taken from the machine and not yet written, from `written` on.
    out: Vec<u8>,
    written: usize,
}

/// After a KVM handoff: the raw RFB stream and the RFB bytes already read.
pub struct RfbStream {
    /// The connection, carrying RFB both ways.
    pub stream: Box<dyn Io>,
    /// Bytes of RFB already received (they came in the same read as the 0x41).
    pub early: Vec<u8>,
}

/// Connects and authenticates a session of `kind`; returns once SOL is ready (for KVM, once
/// the device handed the connection over to RFB: see [`Session::into_rfb`]; for IDE-R, once
/// the device answered OPEN: serve the drives with [`crate::ider::serve`]).
pub async fn open_session(target: &RedirTarget, kind: SessionKind) -> Result<Session, RedirError> {
    open_session_with(target, kind, |_| {}).await
}

/// [`open_session`] with the client's settings adjusted by `configure` first (for example
/// [`ClientSessionConfig::ider_start`]).
pub async fn open_session_with(
    target: &RedirTarget,
    kind: SessionKind,
    configure: impl FnOnce(&mut ClientSessionConfig),
) -> Result<Session, RedirError> {
    let stream = match target.transport {
        Transport::AmtWebSocket => {
            redirection_websocket(&target.endpoint, &target.user, &target.password).await?
        }
        _ => connect(&target.endpoint).await?,
    };
    let mut config =
        ClientSessionConfig::new(kind, &target.user, &target.password, &random_hex16());
    config.transport = target.transport;
    configure(&mut config);
    let mut session = Session {
        stream,
        client: ClientSession::new(config, Instant::now()),
        pending: Default::default(),
        buf: vec![0u8; 64 * 1024],
        out: Vec::new(),
        written: 0,
    };
    loop {
        match session.step().await? {
            Some(Event::SolReady) => {
                // Whatever the handshake left queued (keepalive timers start now) goes first.
                session.write_queued().await?;
                return Ok(session);
            }
            Some(event @ (Event::RfbHandoff | Event::IderOpened { .. })) => {
                session.write_queued().await?;
                session.pending.push_back(event);
                return Ok(session);
            }
            Some(Event::Closed(reason)) => return Err(RedirError::Session(reason)),
            Some(event) => tracing::debug!("redirection: {event:?}"),
            None => {}
        }
    }
}

impl Session {
    /// The next event, waiting once for input, a timer or a completed write if none is
    /// queued. Cancel-safe: a write either completed (and is accounted for) or did nothing.
    async fn step(&mut self) -> Result<Option<Event>, RedirError> {
        if let Some(event) = self
            .pending
            .pop_front()
            .or_else(|| self.client.poll_event())
        {
            return Ok(Some(event));
        }
        if let Some(event) = self.turn().await? {
            return Ok(Some(event));
        }
        Ok(self.client.poll_event())
    }

    /// One turn of the connection: a read, a completed write or a timer. `Some` only for the
    /// end once the machine closed and everything queued was written.
    async fn turn(&mut self) -> Result<Option<Event>, RedirError> {
        // Forget what was written: at once when all of it was, else once it is most of the
        // buffer, so a device that never quite catches up cannot grow it.
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
        } else if self.written >= 64 * 1024 && self.written * 2 >= self.out.len() {
            self.out.drain(..self.written);
            self.written = 0;
        }
        while let Some(bytes) = self.client.poll_transmit() {
            self.out.extend_from_slice(&bytes);
        }
        if self.client.is_closed() && self.out.is_empty() {
            return Ok(Some(Event::Closed(CloseReason::Ended)));
        }
        let deadline = self.client.poll_timeout();
        let Self {
            stream,
            buf,
            out,
            written,
            ..
        } = self;
        // One future polls the write (while bytes are queued) and the read on the same stream;
        // each poll either completes or does nothing, so dropping it loses nothing.
        let io = std::future::poll_fn(|cx| {
            use std::pin::Pin;
            use std::task::Poll;
            if *written < out.len()
                && let Poll::Ready(result) =
                    Pin::new(&mut **stream).poll_write(cx, &out[*written..])
            {
                return Poll::Ready(Progress::Wrote(result));
            }
            let mut read = tokio::io::ReadBuf::new(buf);
            match Pin::new(&mut **stream).poll_read(cx, &mut read) {
                Poll::Ready(result) => {
                    Poll::Ready(Progress::Read(result.map(|()| read.filled().len())))
                }
                Poll::Pending => Poll::Pending,
            }
        });
        tokio::select! {
            progress = io => match progress {
                Progress::Read(n) => match n? {
                    0 => self.client.handle_eof(),
                    n => self.client.handle_input(Instant::now(), &self.buf[..n]),
                },
                Progress::Wrote(n) => match n? {
                    0 => return Err(RedirError::Stream(std::io::ErrorKind::WriteZero.into())),
                    n => self.written += n,
                },
            },
            () = sleep_until(deadline) => self.client.handle_timeout(Instant::now()),
        }
        Ok(None)
    }

    /// Waits once for something from the device, a timer, or progress in sending what is
    /// queued. Cancel-safe: use it in `select!`.
    pub async fn wait(&mut self) -> Result<Option<SolEvent>, RedirError> {
        Ok(match self.step().await? {
            Some(Event::SolData(bytes)) => Some(SolEvent::Data(bytes)),
            Some(Event::Closed(reason)) => Some(SolEvent::Closed(reason)),
            _ => None,
        })
    }

    /// The next SOL data or the end.
    pub async fn next(&mut self) -> Result<SolEvent, RedirError> {
        loop {
            if let Some(event) = self.wait().await? {
                return Ok(event);
            }
        }
    }

    /// The next event of any kind, sending what is queued meanwhile. Cancel-safe.
    pub async fn event(&mut self) -> Result<Event, RedirError> {
        loop {
            if let Some(event) = self.step().await? {
                return Ok(event);
            }
        }
    }

    /// Works on the client state machine directly (for example to answer IDE-R drive
    /// commands); whatever it queues to send goes out with the next wait.
    pub fn with_client<R>(&mut self, f: impl FnOnce(&mut ClientSession) -> R) -> R {
        let result = f(&mut self.client);
        while let Some(bytes) = self.client.poll_transmit() {
            self.out.extend_from_slice(&bytes);
        }
        result
    }

    /// Waits until fewer than `limit` bytes are queued for the device, reading meanwhile (what
    /// arrives is kept for [`Session::event`]), so a sender of bulk data cannot outrun the
    /// device. Cancel-safe.
    pub async fn drain_to(&mut self, limit: usize) -> Result<(), RedirError> {
        while self.backlog() >= limit {
            if let Some(end) = self.turn().await? {
                self.pending.push_back(end);
                break;
            }
            while let Some(event) = self.client.poll_event() {
                let closed = matches!(event, Event::Closed(_));
                self.pending.push_back(event);
                if closed {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Queues serial bytes for the host (split to the device's MaxTxBuffer); the next
    /// [`Session::wait`] sends them. Callers stop reading their source while
    /// [`Session::backlog`] is at [`MAX_SEND_BACKLOG`] or more, so a device that reads slowly
    /// (or not at all) pushes back instead of filling memory.
    pub fn send(&mut self, data: &[u8]) {
        self.client.send_sol(data);
        while let Some(bytes) = self.client.poll_transmit() {
            self.out.extend_from_slice(&bytes);
        }
    }

    /// Bytes queued for the device and not yet written.
    pub fn backlog(&self) -> usize {
        self.out.len() - self.written
    }

    /// Writes everything queued, outside any `select!`.
    async fn write_queued(&mut self) -> Result<(), RedirError> {
        while let Some(bytes) = self.client.poll_transmit() {
            self.out.extend_from_slice(&bytes);
        }
        self.stream.write_all(&self.out[self.written..]).await?;
        self.out.clear();
        self.written = 0;
        Ok(())
    }

    /// Ends the session in order (SOL end, then session end). The client closes by itself if
    /// the device does not confirm within [`oobkit_redir::client::END_CONFIRM_TIMEOUT`].
    pub async fn end(mut self) {
        self.client.end(Instant::now());
        loop {
            match self.step().await {
                Ok(Some(Event::Closed(_))) | Err(_) => break,
                _ => {}
            }
        }
        // A device that stopped reading gets no longer than it had to confirm.
        let timeout = oobkit_redir::client::END_CONFIRM_TIMEOUT;
        let _ = tokio::time::timeout(timeout, async {
            let _ = self.write_queued().await;
            let _ = self.stream.shutdown().await;
        })
        .await;
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

/// What one turn of the connection did.
enum Progress {
    Read(std::io::Result<usize>),
    Wrote(std::io::Result<usize>),
}

/// What a SOL session delivers.
#[derive(Debug)]
pub enum SolEvent {
    /// Serial bytes from the host.
    Data(Bytes),
    /// The session ended.
    Closed(CloseReason),
}
