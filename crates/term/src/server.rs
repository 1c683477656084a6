//! The server's side of one terminal connection: frames from the page in, events for the
//! driver and frames for the page out, with byte-credit flow control, pings and deadlines.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use oobkit_runloop::TimerTable;

use crate::frame::{CloseCode, Frame};

/// Limits and rhythms of a terminal connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermConfig {
    /// Unacknowledged output at which the driver stops reading the backend. 256 KiB: under
    /// xterm.js's advice of at most 500 KB in flight, so Ctrl-C after `yes` shows at once.
    pub high_water: u64,
    /// Unacknowledged output under which reading resumes. 192 KiB: the page still has that much
    /// to draw while the next batch travels to it, so it never sits idle waiting for data (at
    /// 64 KiB a busy machine drained it: 75-90% of xterm.js's own speed instead of 85-99%).
    pub low_water: u64,
    /// Time the page has to send its size (the first frame) after the upgrade.
    pub start_timeout: Duration,
    /// A ping every this often: proxies cut websockets silent for 60 s.
    pub ping_interval: Duration,
    /// A page that answers nothing for this long after a ping is gone.
    pub pong_timeout: Duration,
    /// No input and no output for this long ends the session (`None`: never).
    pub idle: Option<Duration>,
    /// The largest input frame's payload.
    pub max_input: usize,
}

impl Default for TermConfig {
    fn default() -> Self {
        Self {
            high_water: 256 * 1024,
            low_water: 192 * 1024,
            start_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(25),
            pong_timeout: Duration::from_secs(30),
            idle: Some(Duration::from_secs(30 * 60)),
            max_input: 64 * 1024,
        }
    }
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TermEvent {
    /// The page sent its size: open the backend's terminal with it.
    Started {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// Keystrokes (or pasted text) for the backend.
    Input(Vec<u8>),
    /// The page's terminal changed size.
    Resized {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// The session is over: send what is left to transmit, then close the websocket and the
    /// backend.
    Ended {
        /// Why, as the page was told (or told us).
        code: CloseCode,
        /// Said for a person.
        reason: String,
    },
}

oobkit_runloop::timers! {
    /// The connection's deadlines, in handling order.
    enum TermTimer {
        /// The page's size must arrive by then.
        Start,
        /// The page must have answered the last ping by then.
        Pong,
        /// Nothing typed or printed since.
        Idle,
        /// The next ping is due.
        Ping,
    }
}

/// One terminal connection, server side.
#[derive(Debug)]
pub struct TermServer {
    config: TermConfig,
    timers: TimerTable<TermTimer, { TermTimer::COUNT }>,
    started: bool,
    ended: bool,
    unacked: u64,
    paused: bool,
    next_stamp: u64,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<TermEvent>,
}

impl TermServer {
    /// A connection whose websocket was just accepted at `now`.
    pub fn new(now: Instant, config: TermConfig) -> Self {
        let mut timers = TimerTable::new();
        timers.set(TermTimer::Start, now + config.start_timeout);
        timers.set(TermTimer::Ping, now + config.ping_interval);
        Self {
            config,
            timers,
            started: false,
            ended: false,
            unacked: 0,
            paused: false,
            next_stamp: 0,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// One websocket message from the page.
    pub fn handle_input(&mut self, now: Instant, message: &[u8]) {
        if self.ended {
            return;
        }
        // Any frame shows the page is alive.
        self.timers.stop(TermTimer::Pong);
        let frame = match Frame::decode(message) {
            Ok(frame) => frame,
            Err(e) => return self.protocol_error(&e.to_string()),
        };
        match frame {
            Frame::Resize { cols, rows } if !self.started => {
                self.started = true;
                self.timers.stop(TermTimer::Start);
                self.touch(now);
                self.events.push_back(TermEvent::Started { cols, rows });
            }
            Frame::Resize { cols, rows } => {
                self.events.push_back(TermEvent::Resized { cols, rows })
            }
            _ if !self.started => self.protocol_error("the first frame must be the terminal size"),
            Frame::Input(bytes) if bytes.len() > self.config.max_input => {
                let text = format!("an input frame of {} bytes", bytes.len());
                self.protocol_error(&text);
            }
            Frame::Input(bytes) => {
                self.touch(now);
                self.events.push_back(TermEvent::Input(bytes.to_vec()));
            }
            Frame::Ack(n) => {
                if u64::from(n) > self.unacked {
                    let text = format!("{n} bytes acknowledged, {} sent", self.unacked);
                    return self.protocol_error(&text);
                }
                self.unacked -= u64::from(n);
                if self.paused && self.unacked <= self.config.low_water {
                    self.paused = false;
                }
            }
            Frame::Ping(stamp) => self.transmit.push_back(Frame::Pong(stamp).encode()),
            Frame::Pong(_) => {}
            Frame::Close { code, reason } => {
                self.ended = true;
                self.timers.stop_all();
                self.events.push_back(TermEvent::Ended {
                    code,
                    reason: reason.to_owned(),
                });
            }
            Frame::Output(_) => self.protocol_error("output from the page"),
        }
    }

    /// The page's websocket ended without a close frame.
    pub fn handle_eof(&mut self) {
        if !self.ended {
            self.ended = true;
            self.timers.stop_all();
            self.events.push_back(TermEvent::Ended {
                code: CloseCode::Left,
                reason: "the page went away".into(),
            });
        }
    }

    /// Deadlines at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<TermTimer> = self.timers.expire(now).collect();
        for timer in due {
            if self.ended {
                return;
            }
            match timer {
                TermTimer::Start => {
                    self.close_with(CloseCode::ProtocolError, "no terminal size from the page")
                }
                TermTimer::Pong => self.close_with(
                    CloseCode::Unresponsive,
                    &format!(
                        "the page answered no ping for {:?}",
                        self.config.pong_timeout
                    ),
                ),
                TermTimer::Idle => self.close_with(
                    CloseCode::Idle,
                    &format!(
                        "nothing typed or printed for {:?}",
                        self.config.idle.unwrap_or_default()
                    ),
                ),
                TermTimer::Ping => {
                    self.next_stamp += 1;
                    self.transmit
                        .push_back(Frame::Ping(self.next_stamp).encode());
                    self.timers
                        .set(TermTimer::Ping, now + self.config.ping_interval);
                    if self.timers.get(TermTimer::Pong).is_none() {
                        self.timers
                            .set(TermTimer::Pong, now + self.config.pong_timeout);
                    }
                }
            }
        }
    }

    /// Output from the backend for the page. Costs credit: check [`Self::may_read_backend`]
    /// before reading more.
    pub fn send_output(&mut self, now: Instant, bytes: &[u8]) {
        if self.ended || bytes.is_empty() {
            return;
        }
        self.touch(now);
        self.unacked += bytes.len() as u64;
        if self.unacked >= self.config.high_water {
            self.paused = true;
        }
        self.transmit.push_back(Frame::Output(bytes).encode());
    }

    /// Ends the session from the server's side (the shell exited, the target failed): a close
    /// frame for the page, no event.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        if !self.ended {
            self.transmit
                .push_back(Frame::Close { code, reason }.encode());
            self.ended = true;
            self.timers.stop_all();
        }
    }

    /// Whether the driver may read more output from the backend: the page has rendered enough
    /// of what it was sent.
    pub fn may_read_backend(&self) -> bool {
        !self.paused && !self.ended
    }

    /// Output sent and not yet acknowledged, in bytes.
    pub fn unacknowledged(&self) -> u64 {
        self.unacked
    }

    /// Whether the session is over (a close frame may still wait in [`Self::poll_transmit`]).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The next message for the page.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// The next thing for the driver to do.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<TermEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    fn touch(&mut self, now: Instant) {
        if let Some(idle) = self.config.idle {
            self.timers.set(TermTimer::Idle, now + idle);
        }
    }

    fn protocol_error(&mut self, what: &str) {
        self.close_with(CloseCode::ProtocolError, what);
    }

    /// A close frame for the page and the matching event for the driver.
    fn close_with(&mut self, code: CloseCode, reason: &str) {
        self.close(code, reason);
        self.events.push_back(TermEvent::Ended {
            code,
            reason: reason.to_owned(),
        });
    }
}

oobkit_runloop::impl_machine!(TermServer, TermEvent);
