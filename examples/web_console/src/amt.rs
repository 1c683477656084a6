//! AMT targets: the serial console (SOL) as a terminal backend, KVM as a display (the raw RFB
//! stream after the redirection protocol's handoff, for noVNC), and what the inventory page
//! shows and does (status, power, user consent) over WS-Management.

use std::time::Duration;

use oobkit_io::redirection::{MAX_SEND_BACKLOG, RedirTarget, Session, SolEvent};
use oobkit_io::{CallError, Endpoint, WsmanClient};
use oobkit_redir::codec::SessionKind;
use oobkit_term::CloseCode;
use oobkit_wsman::ops::{self, AmtStatus, PowerAction};

use crate::backend::{InputOverflow, Step, TermBackend};

/// An AMT the console offers, by name.
#[derive(Debug, Clone)]
pub struct AmtTarget {
    /// The name in the page and the API.
    pub name: String,
    /// The web port (WS-Management).
    pub wsman: Endpoint,
    /// Where and how redirection sessions (SOL, KVM) are opened, with the credentials.
    pub redirection: RedirTarget,
}

/// Time to open a redirection session.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(20);

impl AmtTarget {
    fn wsman_client(&self) -> WsmanClient {
        WsmanClient::new(
            self.wsman.clone(),
            &self.redirection.user,
            &self.redirection.password,
        )
    }

    /// The device at a glance.
    pub async fn status(&self) -> Result<AmtStatus, CallError> {
        self.wsman_client().status().await
    }

    /// Asks for a power change.
    pub async fn power(&self, action: PowerAction) -> Result<(), CallError> {
        self.wsman_client()
            .invoke(ops::request_power_state_change(action))
            .await
            .map(drop)
    }

    /// Asks the AMT to show a consent code on the managed screen.
    pub async fn start_consent(&self) -> Result<(), CallError> {
        self.wsman_client()
            .invoke(ops::start_opt_in())
            .await
            .map(drop)
    }

    /// Sends the code the person read on the managed screen.
    pub async fn send_consent_code(&self, code: u32) -> Result<(), CallError> {
        self.wsman_client()
            .invoke(ops::send_opt_in_code(code))
            .await
            .map(drop)
    }

    /// Opens a redirection session of `kind`, bounded by [`OPEN_TIMEOUT`]; the reason for the
    /// page when it fails (busy, consent, disabled, refused).
    pub async fn open(&self, kind: SessionKind) -> Result<Session, String> {
        match tokio::time::timeout(
            OPEN_TIMEOUT,
            oobkit_io::redirection::open_session(&self.redirection, kind),
        )
        .await
        {
            Ok(Ok(session)) => Ok(session),
            Ok(Err(e)) => Err(format!("{}: {e}", self.name)),
            Err(_) => Err(format!(
                "{} did not open the session within {OPEN_TIMEOUT:?}",
                self.name
            )),
        }
    }
}

/// An AMT's serial console as a terminal backend. SOL has no size: resizes are ignored.
pub struct SolTerm {
    session: Session,
    name: String,
}

impl SolTerm {
    /// Opens SOL on `target`.
    pub async fn open(target: &AmtTarget) -> Result<Self, String> {
        Ok(Self {
            session: target.open(SessionKind::Sol).await?,
            name: target.name.clone(),
        })
    }
}

impl TermBackend for SolTerm {
    fn input(&mut self, bytes: bytes::Bytes) -> Result<(), InputOverflow> {
        if self.session.backlog() >= MAX_SEND_BACKLOG {
            return Err(InputOverflow);
        }
        self.session.send(&bytes);
        Ok(())
    }

    fn resize(&mut self, _cols: u16, _rows: u16) {}

    fn has_pending_input(&self) -> bool {
        self.session.backlog() > 0
    }

    async fn step(&mut self, read_output: bool) -> Step {
        let ended = |e: String| Step::Ended {
            code: CloseCode::TargetLost,
            reason: e,
        };
        if !read_output {
            // Only sending: what arrives meanwhile is kept for the next read.
            return match self.session.drain_to(0).await {
                Ok(()) => Step::Progress,
                Err(e) => ended(format!("{}: {e}", self.name)),
            };
        }
        match self.session.wait().await {
            Ok(Some(SolEvent::Data(data))) => Step::Output(data.to_vec()),
            Ok(Some(SolEvent::Closed(reason))) => Step::Ended {
                code: CloseCode::TargetLost,
                reason: format!("{}: the serial console ended: {reason}", self.name),
            },
            Ok(None) => Step::Progress,
            Err(e) => ended(format!("{}: {e}", self.name)),
        }
    }

    async fn close(self) {
        self.session.end().await;
    }
}
