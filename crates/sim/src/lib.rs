//! The simulated Intel AMT, sans-IO: what the `amt_sim` program and the launchers' in-process
//! simulator serve, and the referee of every test without hardware.
//!
//! - [`device`]: the device model. It answers WS-Management requests from one coherent state
//!   (power, boot, redirection, KVM, consent, logs, clock) with the faults real firmware sends.
//! - [`gate`]: which redirection sessions may open (feature enabled, listener on, consent,
//!   one session of each type at a time), as firmware decides.
//! - [`web`]: the web port, an HTTP request in and firmware-shaped bytes out: `/wsman` behind
//!   Digest as AMT offers it, and the `/ws-redirection` upgrade.
//! - [`bios`]: the simulated host booting from the IDE-R drives (El Torito CD or floppy boot
//!   sector), hashing every region it reads.
//! - [`console`]: a harmless simulated serial console for SOL (a firmware banner, a login
//!   prompt and a few built-in commands), the default when no real program is asked for.
//!
//! Nothing here opens a socket, reads a clock or draws random numbers: the program passes
//! them in.
#![forbid(unsafe_code)]

pub mod bios;
pub mod console;
pub mod device;
pub mod gate;
pub mod web;

pub use console::SerialConsole;
pub use device::{Context, Device, DeviceConfig, DeviceEvent, WsmanReply};
pub use gate::SessionGate;
pub use web::{WebPort, WebReply};
