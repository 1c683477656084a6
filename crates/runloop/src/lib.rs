//! The run-loop contract every oobkit state machine keeps (redirection client and device, RRMT
//! agent and server, and the ones to come), written once.
//!
//! A machine is sans-IO: received bytes, the end of the stream and the time come in through
//! [`Machine::handle_input`], [`Machine::handle_eof`] and [`Machine::handle_timeout`]; bytes to
//! send, events and the next deadline come out of [`Machine::poll_output`]. The contract:
//!
//! 1. After every input, drain [`Machine::poll_output`] until it answers
//!    [`Output::Timeout`]: that answer comes only when nothing is left to send or report, so
//!    "drain every output before the next input" is the shape of the API, not a rule to remember.
//! 2. Call [`Machine::handle_timeout`] when the instant of [`Output::Timeout`] is reached.
//! 3. After `handle_timeout(now)`, the next deadline is `None` or later than `now`: a driver
//!    never spins. Each machine keeps its deadlines in one [`TimerTable`], and every state that
//!    waits for the peer has a deadline of its own. [`check_timeout`] asserts this in tests and
//!    fuzz targets.
//! 4. Polls change nothing but the queues they drain.
//!
//! The whole loop, with a toy machine that says "ping" every second and closes after three:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use oobkit_runloop::{Machine, Output, Timer, TimerTable};
//!
//! #[derive(Debug, Clone, Copy, PartialEq, Eq)]
//! enum PingTimer { Ping }
//! impl Timer for PingTimer {
//!     const ALL: &'static [Self] = &[Self::Ping];
//!     fn index(self) -> usize { self as usize }
//! }
//!
//! struct Pinger { timers: TimerTable<PingTimer, 1>, out: Vec<u8>, sent: u32, closed: bool }
//!
//! impl Machine for Pinger {
//!     type Event = &'static str;
//!     fn handle_input(&mut self, _now: Instant, _bytes: &[u8]) {}
//!     fn handle_eof(&mut self) { self.closed = true; }
//!     fn handle_timeout(&mut self, now: Instant) {
//!         for timer in self.timers.expire(now) {
//!             match timer {
//!                 PingTimer::Ping if self.sent < 3 => {
//!                     self.out.extend_from_slice(b"ping");
//!                     self.sent += 1;
//!                     self.timers.set(PingTimer::Ping, now + Duration::from_secs(1));
//!                 }
//!                 PingTimer::Ping => self.closed = true,
//!             }
//!         }
//!     }
//!     fn poll_transmit(&mut self) -> Option<Vec<u8>> {
//!         (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
//!     }
//!     fn poll_event(&mut self) -> Option<&'static str> {
//!         // Reported once: the timer is already stopped, so this poll changes only the queue.
//!         std::mem::take(&mut self.closed).then_some("closed")
//!     }
//!     fn poll_timeout(&self) -> Option<Instant> { self.timers.next() }
//! }
//!
//! let start = Instant::now();
//! let mut timers = TimerTable::new();
//! timers.set(PingTimer::Ping, start);
//! let mut machine = Pinger { timers, out: Vec::new(), sent: 0, closed: false };
//! let (mut now, mut wire) = (start, Vec::new());
//! loop {
//!     // Drain everything; only then is the deadline known.
//!     let deadline = loop {
//!         match machine.poll_output() {
//!             Output::Transmit(bytes) => wire.extend_from_slice(&bytes),
//!             Output::Event(event) => assert_eq!(event, "closed"),
//!             Output::Timeout(deadline) => break deadline,
//!         }
//!     };
//!     let Some(at) = deadline else { break };
//!     now = now.max(at); // a real driver sleeps until `at`, or reads input meanwhile
//!     oobkit_runloop::check_timeout(&mut machine, now);
//! }
//! assert_eq!(wire, b"pingpingping");
//! ```
#![forbid(unsafe_code)]

use std::time::Instant;

/// One kind of deadline of a machine: an enum whose variants index a [`TimerTable`].
pub trait Timer: Copy + Eq + std::fmt::Debug + 'static {
    /// Every variant, in the order [`TimerTable::expire`] hands them out (put the timers that
    /// end the session first, so an ending session does not also send a keepalive).
    const ALL: &'static [Self];
    /// The variant's slot, below the table's size.
    fn index(self) -> usize;
}

/// Every deadline of a machine in one place (after quinn-proto's `TimerTable`): set, stop, the
/// earliest one, and the ones due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerTable<T: Timer, const N: usize> {
    deadlines: [Option<Instant>; N],
    kind: std::marker::PhantomData<T>,
}

impl<T: Timer, const N: usize> Default for TimerTable<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Timer, const N: usize> TimerTable<T, N> {
    /// A table with no deadline set.
    pub fn new() -> Self {
        assert!(N <= 64, "a timer table holds at most 64 timers");
        debug_assert!(
            T::ALL.iter().all(|t| t.index() < N),
            "timer index out of range"
        );
        Self {
            deadlines: [None; N],
            kind: std::marker::PhantomData,
        }
    }

    /// Sets (or moves) `timer` to `at`.
    pub fn set(&mut self, timer: T, at: Instant) {
        self.deadlines[timer.index()] = Some(at);
    }

    /// Stops `timer`.
    pub fn stop(&mut self, timer: T) {
        self.deadlines[timer.index()] = None;
    }

    /// Stops every timer (the session ended).
    pub fn stop_all(&mut self) {
        self.deadlines = [None; N];
    }

    /// When `timer` falls due, if set.
    pub fn get(&self, timer: T) -> Option<Instant> {
        self.deadlines[timer.index()]
    }

    /// The earliest deadline: what the machine's `poll_timeout` answers.
    pub fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// The timers due at `now`, stopped before they are handed out (in [`Timer::ALL`] order),
    /// so a handler that does nothing cannot leave a deadline in the past behind.
    pub fn expire(&mut self, now: Instant) -> impl Iterator<Item = T> + use<T, N> {
        let mut due = 0u64;
        for timer in T::ALL {
            let slot = &mut self.deadlines[timer.index()];
            if slot.is_some_and(|at| at <= now) {
                *slot = None;
                due |= 1 << timer.index();
            }
        }
        T::ALL
            .iter()
            .copied()
            .filter(move |t| due & (1 << t.index()) != 0)
    }
}

/// What a machine has for its driver, in the order a driver must take it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "drain every output before the next input"]
pub enum Output<E> {
    /// Bytes to write to the peer.
    Transmit(Vec<u8>),
    /// Something happened.
    Event(E),
    /// Nothing more until input arrives or this instant is reached (`None`: no deadline).
    Timeout(Option<Instant>),
}

/// A sans-IO state machine under the run-loop contract (see the crate documentation).
pub trait Machine {
    /// What the machine reports.
    type Event;

    /// Bytes received from the peer.
    fn handle_input(&mut self, now: Instant, bytes: &[u8]);

    /// The peer closed the stream.
    fn handle_eof(&mut self);

    /// The time is `now`; deadlines at or before it are handled.
    fn handle_timeout(&mut self, now: Instant);

    /// Bytes to send, if any.
    #[must_use]
    fn poll_transmit(&mut self) -> Option<Vec<u8>>;

    /// The next event, if any.
    #[must_use]
    fn poll_event(&mut self) -> Option<Self::Event>;

    /// The next deadline: when [`Machine::handle_timeout`] must be called.
    #[must_use]
    fn poll_timeout(&self) -> Option<Instant>;

    /// Bytes, then events, then (only when both are drained) the next deadline.
    fn poll_output(&mut self) -> Output<Self::Event> {
        if let Some(bytes) = self.poll_transmit() {
            return Output::Transmit(bytes);
        }
        if let Some(event) = self.poll_event() {
            return Output::Event(event);
        }
        Output::Timeout(self.poll_timeout())
    }
}

/// Calls `handle_timeout(now)` and asserts the contract: afterwards the next deadline is
/// `None` or later than `now`. For tests and fuzz targets; panics with the deadline on a
/// violation (a driver would spin on it).
pub fn check_timeout<M: Machine + ?Sized>(machine: &mut M, now: Instant) {
    machine.handle_timeout(now);
    if let Some(at) = machine.poll_timeout() {
        assert!(
            at > now,
            "run-loop contract: after handle_timeout(now) the next deadline is {:?} before or at now",
            now.saturating_duration_since(at)
        );
    }
}

/// Lets time run from `now` to each next deadline, up to `steps` of them, draining every output
/// and asserting the contract of [`check_timeout`] at each; returns the time reached. For
/// tests and fuzz targets: a machine left alone must end, or at least never spin.
pub fn check_run_down<M: Machine + ?Sized>(
    machine: &mut M,
    mut now: Instant,
    steps: usize,
) -> Instant {
    for _ in 0..steps {
        let Some(at) = machine.poll_timeout() else {
            break;
        };
        now = now.max(at);
        check_timeout(machine, now);
        while machine.poll_transmit().is_some() {}
        while machine.poll_event().is_some() {}
    }
    now
}

/// Declares a machine's timer enum: the variants in handling order (the ones that end the
/// session first), with [`Timer`] and a `COUNT` for the table's size:
/// `TimerTable<MyTimer, { MyTimer::COUNT }>`.
#[macro_export]
macro_rules! timers {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// How many timers there are.
            $vis const COUNT: usize = [$(stringify!($variant)),+].len();
        }

        impl $crate::Timer for $name {
            const ALL: &'static [Self] = &[$(Self::$variant),+];
            fn index(self) -> usize {
                self as usize
            }
        }
    };
}

/// Implements [`Machine`] for a type whose inherent methods of the same names already exist
/// (`handle_input`, `handle_eof`, `handle_timeout`, `poll_transmit`, `poll_event`,
/// `poll_timeout`), so callers can use either without importing the trait.
#[macro_export]
macro_rules! impl_machine {
    ($machine:ty, $event:ty) => {
        impl $crate::Machine for $machine {
            type Event = $event;
            fn handle_input(&mut self, now: ::std::time::Instant, bytes: &[u8]) {
                <$machine>::handle_input(self, now, bytes);
            }
            fn handle_eof(&mut self) {
                <$machine>::handle_eof(self);
            }
            fn handle_timeout(&mut self, now: ::std::time::Instant) {
                <$machine>::handle_timeout(self, now);
            }
            fn poll_transmit(&mut self) -> ::std::option::Option<::std::vec::Vec<u8>> {
                <$machine>::poll_transmit(self)
            }
            fn poll_event(&mut self) -> ::std::option::Option<$event> {
                <$machine>::poll_event(self)
            }
            fn poll_timeout(&self) -> ::std::option::Option<::std::time::Instant> {
                <$machine>::poll_timeout(self)
            }
        }
    };
}
