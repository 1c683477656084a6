//! A byte relay between two streams whose writes are bounded in time: a peer that stops
//! reading is dropped instead of holding the relay (and the session slot it stands for)
//! forever, which `tokio::io::copy_bidirectional` would let it do.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How a relay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayEnd {
    /// One side closed (or failed); the other was shut down.
    Closed {
        /// Bytes from `a` to `b`.
        a_to_b: u64,
        /// Bytes from `b` to `a`.
        b_to_a: u64,
    },
    /// A side took no bytes for the write limit and was dropped.
    StoppedReading {
        /// `true` when it was `a` (the first stream) that stopped reading.
        a: bool,
    },
}

/// Copies both ways until either side closes, each write bounded by `write_timeout`.
pub async fn relay_bounded<A, B>(a: A, b: B, write_timeout: Duration) -> RelayEnd
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut a_read, mut a_write) = tokio::io::split(a);
    let (mut b_read, mut b_write) = tokio::io::split(b);
    let mut totals = (0u64, 0u64);
    let end = {
        let a_to_b = pump(&mut a_read, &mut b_write, write_timeout, &mut totals.0);
        let b_to_a = pump(&mut b_read, &mut a_write, write_timeout, &mut totals.1);
        tokio::select! {
            stalled = a_to_b => stalled.then_some(false),
            stalled = b_to_a => stalled.then_some(true),
        }
    };
    // Shutting down is a write too: bounded as well.
    let _ = tokio::time::timeout(write_timeout, a_write.shutdown()).await;
    let _ = tokio::time::timeout(write_timeout, b_write.shutdown()).await;
    match end {
        Some(a) => RelayEnd::StoppedReading { a },
        None => RelayEnd::Closed {
            a_to_b: totals.0,
            b_to_a: totals.1,
        },
    }
}

/// One direction until EOF or an error (`false`) or a write that timed out (`true`).
async fn pump<R, W>(from: &mut R, to: &mut W, write_timeout: Duration, total: &mut u64) -> bool
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        match tokio::time::timeout(write_timeout, to.write_all(&buf[..n])).await {
            Ok(Ok(())) => *total += n as u64,
            Ok(Err(_)) => return false,
            Err(_) => return true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn relays_both_ways_and_ends_when_a_side_closes() {
        let (a, mut a_far) = tokio::io::duplex(1024);
        let (b, mut b_far) = tokio::io::duplex(1024);
        let relay = tokio::spawn(relay_bounded(a, b, Duration::from_secs(5)));
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
            RelayEnd::Closed {
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
        let relay = tokio::spawn(relay_bounded(a, b, Duration::from_millis(200)));
        // `b` sends far more than the 1 KiB `a`'s far end would buffer, and `a` never reads.
        let flood = tokio::spawn(async move {
            let chunk = [7u8; 4096];
            while b_far.write_all(&chunk).await.is_ok() {}
        });
        let end = tokio::time::timeout(Duration::from_secs(10), relay)
            .await
            .expect("the relay must end on the write limit")
            .unwrap();
        assert_eq!(end, RelayEnd::StoppedReading { a: true });
        flood.abort();
        drop(a_far);
    }
}
