//! What a terminal session talks to, behind one trait: an SSH shell ([`crate::ssh::SshTerm`]),
//! an AMT's serial console ([`crate::amt::SolTerm`]). The console's run loop drives any of them
//! the same way: input and resizes in, output (batched) and the end out, with the page's credit
//! deciding when output is read.

use std::future::Future;

use bytes::Bytes;
use oobkit_term::CloseCode;

/// The most output handed to the page in one frame: a page parses one large write faster than
/// many small ones.
pub const OUTPUT_BATCH: usize = 64 * 1024;

/// Input the page sent that the backend has not taken yet, at most: a page that sends faster
/// than the target reads is cut instead of filling memory.
pub const MAX_WAITING_INPUT: usize = 1 << 20;

/// What one step of a backend produced.
#[derive(Debug)]
pub enum Step {
    /// Output for the page.
    Output(Vec<u8>),
    /// Input went out; nothing for the page.
    Progress,
    /// The session is over.
    Ended {
        /// Why, as the page is told.
        code: CloseCode,
        /// Said for a person.
        reason: String,
    },
}

/// More input waits than [`MAX_WAITING_INPUT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputOverflow;

/// A terminal behind the console.
pub trait TermBackend: Send {
    /// Queues keystrokes (or a paste) for the target.
    fn input(&mut self, bytes: Bytes) -> Result<(), InputOverflow>;

    /// The page's terminal changed size (backends without a size ignore it).
    fn resize(&mut self, cols: u16, rows: u16);

    /// Whether input waits to be sent.
    fn has_pending_input(&self) -> bool;

    /// Sends waiting input, and reads output only when `read_output` (the page has credit).
    /// Cancel-safe: it stands in the run loop's `select!` beside the page's messages.
    fn step(&mut self, read_output: bool) -> impl Future<Output = Step> + Send;

    /// Ends the session in order (the target is told; nothing more is read).
    fn close(self) -> impl Future<Output = ()> + Send;
}
