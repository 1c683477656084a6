//! A byte relay between two streams whose writes are bounded in time: a peer that stops
//! reading is dropped instead of holding the relay (and the session slot it stands for)
//! forever, which `tokio::io::copy_bidirectional` would let it do.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// One of the relay's two streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The first stream given to [`relay_bounded`].
    A,
    /// The second.
    B,
}

/// What ended a relay, and on which side.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndCause {
    /// The side closed its sending direction (end of stream).
    Closed,
    /// Reading from or writing to the side failed.
    Failed(String),
    /// The side took no bytes for the write limit and was dropped.
    StoppedReading,
    /// The side sent nothing for its silence limit (see [`RelayLimits::a_silent`]).
    Silent,
}

/// The time limits of a relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayLimits {
    /// Each write must finish within this: a side that stops reading is dropped.
    pub write: Duration,
    /// When set, `a` (the client) must send something within this, or the relay ends: a
    /// silent client cannot hold what the relay stands for (a device's one KVM session).
    pub a_silent: Option<Duration>,
}

/// How a relay ended: the side that ended it, why, and the bytes moved each way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayEnd {
    /// The side that closed, failed or stopped reading.
    pub side: Side,
    /// What it did.
    pub cause: EndCause,
    /// Bytes written from `a` to `b`.
    pub a_to_b: u64,
    /// Bytes written from `b` to `a`.
    pub b_to_a: u64,
}

/// Copies both ways until either side closes, fails, stops reading or (for `a`, when limited)
/// falls silent. Both sides are shut down (bounded too) before it returns.
pub async fn relay_bounded<A, B>(a: A, b: B, limits: RelayLimits) -> RelayEnd
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut a_read, mut a_write) = tokio::io::split(a);
    let (mut b_read, mut b_write) = tokio::io::split(b);
    let (mut a_to_b, mut b_to_a) = (0u64, 0u64);
    let (side, cause) = {
        let up = pump(
            &mut a_read,
            &mut b_write,
            (limits.write, limits.a_silent),
            &mut a_to_b,
            Side::A,
            Side::B,
        );
        let down = pump(
            &mut b_read,
            &mut a_write,
            (limits.write, None),
            &mut b_to_a,
            Side::B,
            Side::A,
        );
        tokio::select! {
            end = up => end,
            end = down => end,
        }
    };
    // Shutting down is a write too: bounded as well.
    let _ = tokio::time::timeout(limits.write, a_write.shutdown()).await;
    let _ = tokio::time::timeout(limits.write, b_write.shutdown()).await;
    RelayEnd {
        side,
        cause,
        a_to_b,
        b_to_a,
    }
}

/// One direction, `from_side` to `to_side`, until one of them ends it; `(write, silent)` are
/// the write limit and the read one, if any.
async fn pump<R, W>(
    from: &mut R,
    to: &mut W,
    (write_timeout, silent): (Duration, Option<Duration>),
    total: &mut u64,
    from_side: Side,
    to_side: Side,
) -> (Side, EndCause)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = from.read(&mut buf);
        let read = match silent {
            Some(limit) => match tokio::time::timeout(limit, read).await {
                Ok(read) => read,
                Err(_) => return (from_side, EndCause::Silent),
            },
            None => read.await,
        };
        let n = match read {
            Ok(0) => return (from_side, EndCause::Closed),
            Err(e) => return (from_side, EndCause::Failed(e.to_string())),
            Ok(n) => n,
        };
        match tokio::time::timeout(write_timeout, to.write_all(&buf[..n])).await {
            Ok(Ok(())) => *total += n as u64,
            Ok(Err(e)) => return (to_side, EndCause::Failed(e.to_string())),
            Err(_) => return (to_side, EndCause::StoppedReading),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(write_ms: u64, a_silent_ms: Option<u64>) -> RelayLimits {
        RelayLimits {
            write: Duration::from_millis(write_ms),
            a_silent: a_silent_ms.map(Duration::from_millis),
        }
    }

    #[tokio::test]
    async fn a_silent_client_ends_the_relay_when_limited() {
        let (a, _a_far) = tokio::io::duplex(1024);
        let (b, mut b_far) = tokio::io::duplex(1024);
        let relay = tokio::spawn(relay_bounded(a, b, limits(5000, Some(200))));
        // The server side talks; the client says nothing.
        b_far.write_all(b"screen").await.unwrap();
        let end = tokio::time::timeout(Duration::from_secs(10), relay)
            .await
            .expect("the relay must end on the silence limit")
            .unwrap();
        assert_eq!((end.side, end.cause), (Side::A, EndCause::Silent));
    }

    #[tokio::test]
    async fn relays_both_ways_and_ends_when_a_side_closes() {
        let (a, mut a_far) = tokio::io::duplex(1024);
        let (b, mut b_far) = tokio::io::duplex(1024);
        let relay = tokio::spawn(relay_bounded(a, b, limits(5000, None)));
        a_far.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        b_far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        b_far.write_all(b"pong!").await.unwrap();
        let mut got = [0u8; 5];
        a_far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"pong!");
        drop(a_far);
        assert_eq!(
            relay.await.unwrap(),
            RelayEnd {
                side: Side::A,
                cause: EndCause::Closed,
                a_to_b: 4,
                b_to_a: 5
            }
        );
        // The other side was shut down: it reads the end.
        assert_eq!(b_far.read(&mut [0u8; 8]).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_side_that_stops_reading_ends_the_relay() {
        let (a, a_far) = tokio::io::duplex(1024);
        let (b, mut b_far) = tokio::io::duplex(1024);
        let relay = tokio::spawn(relay_bounded(a, b, limits(200, None)));
        // `b` sends far more than the 1 KiB `a`'s far end would buffer, and `a` never reads.
        let flood = tokio::spawn(async move {
            let chunk = [7u8; 4096];
            while b_far.write_all(&chunk).await.is_ok() {}
        });
        let end = tokio::time::timeout(Duration::from_secs(10), relay)
            .await
            .expect("the relay must end on the write limit")
            .unwrap();
        assert_eq!((end.side, end.cause), (Side::A, EndCause::StoppedReading));
        flood.abort();
        drop(a_far);
    }
}
