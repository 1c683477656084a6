//! The simulator's KVM screen: RFB behind the redirection handoff, with AMT's constraints
//! (`docs/amt-redirection.md` section 2.4): RFB 3.3, 3.7 and 3.8 clients, security type None
//! (the redirection layer authenticated the user), Raw encoding in tiles of at most 64x64,
//! DesktopSize, and the display-buffer limit: a framebuffer over 9,216,000 bytes in the
//! client's pixel format makes AMT close the session silently, and so does this.
//!
//! The protocol is `oobkit-rfb`'s; this is the IO around it. The picture is its colour-bar test
//! pattern, so a client's capture can be checked pixel by pixel.

use std::time::Instant;

pub use oobkit_rfb::{BARS, pattern};
use oobkit_rfb::{
    ClientMessage, DESKTOP_SIZE, HandshakeEvent, PixelFormat, Security, ServerHandshake,
    ServerInit, decode_client, test_pattern_update,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// AMT's display-buffer limit in bytes.
pub const DISPLAY_BUFFER_LIMIT: u64 = 9_216_000;

/// Why the RFB session ended.
#[derive(Debug)]
pub enum RfbEnd {
    /// The client closed.
    Closed,
    /// The framebuffer in the client's format exceeds the display buffer (AMT closes silently).
    DisplayBufferLimit(u64),
    /// The client spoke something that is not RFB.
    Protocol(String),
}

/// Serves RFB on `stream` (everything after the 0x41 reply), with a `width` x `height` screen.
/// Every write is bounded by `write_timeout`: a viewer that stops reading loses the session
/// (and frees the KVM slot) instead of holding it.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    width: u16,
    height: u16,
    write_timeout: std::time::Duration,
) -> std::io::Result<RfbEnd> {
    async fn write<S: AsyncWrite + Unpin>(
        stream: &mut S,
        bytes: &[u8],
        limit: std::time::Duration,
    ) -> std::io::Result<()> {
        tokio::time::timeout(limit, stream.write_all(bytes))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
    }
    let init = ServerInit::new(width, height, "Intel(r) AMT KVM (oobkit simulator)");
    let mut handshake = ServerHandshake::new(Security::None, init, Instant::now());
    let mut buf = vec![0u8; 16 * 1024];
    let mut pending = loop {
        while let Some(bytes) = handshake.poll_transmit() {
            write(stream, &bytes, write_timeout).await?;
        }
        match handshake.poll_event() {
            Some(HandshakeEvent::Ready { leftover, .. }) => break leftover,
            Some(HandshakeEvent::Failed(why)) => return Ok(RfbEnd::Protocol(why.into())),
            Some(_) => return Ok(RfbEnd::Closed),
            None => {}
        }
        tokio::select! {
            n = stream.read(&mut buf) => match n? {
                0 => return Ok(RfbEnd::Closed),
                n => handshake.handle_input(Instant::now(), &buf[..n]),
            },
            () = oobkit_io::sleep_until(handshake.poll_timeout()) => {
                handshake.handle_timeout(Instant::now());
            }
        }
    };

    let mut format = PixelFormat::DEFAULT;
    let mut desktop_size = false;
    let mut sent_size = false;
    loop {
        let (message, used) = match decode_client(&pending) {
            Ok(Some(decoded)) => decoded,
            Ok(None) => {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    return Ok(RfbEnd::Closed);
                }
                pending.extend_from_slice(&buf[..n]);
                continue;
            }
            Err(e) => return Ok(RfbEnd::Protocol(e.to_string())),
        };
        pending.drain(..used);
        match message {
            ClientMessage::SetPixelFormat(f) => format = f,
            ClientMessage::SetEncodings(list) => desktop_size = list.contains(&DESKTOP_SIZE),
            ClientMessage::FramebufferUpdateRequest { incremental, .. } => {
                let size = u64::from(width) * u64::from(height) * format.bytes_per_pixel() as u64;
                if size > DISPLAY_BUFFER_LIMIT {
                    return Ok(RfbEnd::DisplayBufferLimit(size));
                }
                if incremental && sent_size {
                    // Nothing changes on this screen: answer slowly with an empty update, so
                    // that a polling client neither spins nor waits forever.
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    write(stream, &[0, 0, 0, 0], write_timeout).await?;
                    continue;
                }
                let update =
                    test_pattern_update(width, height, &format, desktop_size && !sent_size);
                sent_size = true;
                write(stream, &update, write_timeout).await?;
            }
            // Input and cut text (AMT's KvmExtCmd rides in it) change nothing here.
            _ => {}
        }
    }
}
