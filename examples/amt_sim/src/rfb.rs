//! The simulator's KVM screen: a small RFB server behind the redirection handoff, with AMT's
//! constraints (`docs/amt-redirection.md` section 2.4): RFB 3.3, 3.7 and 3.8 clients, security type None (the
//! redirection layer authenticated the user), Raw encoding in tiles of at most 64x64,
//! DesktopSize, and the display-buffer limit: a framebuffer over 9,216,000 bytes in the
//! client's pixel format makes AMT close the session silently, and so does this.
//!
//! The picture is a known test pattern (eight colour bars), so a client's capture can be
//! checked pixel by pixel.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// AMT's display-buffer limit in bytes.
pub const DISPLAY_BUFFER_LIMIT: u64 = 9_216_000;

/// The colour bars of the test pattern, left to right: white, yellow, cyan, green, magenta,
/// red, blue, black.
pub const BARS: [[u8; 3]; 8] = [
    [255, 255, 255],
    [255, 255, 0],
    [0, 255, 255],
    [0, 255, 0],
    [255, 0, 255],
    [255, 0, 0],
    [0, 0, 255],
    [0, 0, 0],
];

/// The pattern's colour at column `x` of a `width`-wide screen.
pub fn pattern(x: u16, width: u16) -> [u8; 3] {
    BARS[usize::from(x) * 8 / usize::from(width.max(1))]
}

#[derive(Debug, Clone, Copy)]
struct PixelFormat {
    bpp: u8,
    big_endian: bool,
    max: [u16; 3],
    shift: [u8; 3],
}

impl PixelFormat {
    /// 32 bpp, depth 24, little-endian true colour: what AMT announces.
    const DEFAULT: Self = Self {
        bpp: 32,
        big_endian: false,
        max: [255, 255, 255],
        shift: [16, 8, 0],
    };

    fn bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0] = self.bpp;
        b[1] = if self.bpp == 32 { 24 } else { self.bpp };
        b[2] = u8::from(self.big_endian);
        b[3] = 1; // true colour
        for i in 0..3 {
            b[4 + 2 * i..6 + 2 * i].copy_from_slice(&self.max[i].to_be_bytes());
            b[10 + i] = self.shift[i];
        }
        b
    }

    fn parse(b: &[u8; 16]) -> Option<Self> {
        // Colour maps (true-colour flag 0) are not offered; neither does AMT.
        if !matches!(b[0], 8 | 16 | 32) || b[3] == 0 {
            return None;
        }
        Some(Self {
            bpp: b[0],
            big_endian: b[2] != 0,
            max: [
                u16::from_be_bytes([b[4], b[5]]),
                u16::from_be_bytes([b[6], b[7]]),
                u16::from_be_bytes([b[8], b[9]]),
            ],
            shift: [b[10], b[11], b[12]],
        })
    }

    fn encode(&self, rgb: [u8; 3], out: &mut Vec<u8>) {
        let mut value: u32 = 0;
        for ((channel, max), shift) in rgb.iter().zip(self.max).zip(self.shift) {
            value |= (u32::from(*channel) * u32::from(max) / 255) << shift;
        }
        let n = usize::from(self.bpp / 8);
        let bytes = if self.big_endian {
            value.to_be_bytes()
        } else {
            value.to_le_bytes()
        };
        if self.big_endian {
            out.extend_from_slice(&bytes[4 - n..]);
        } else {
            out.extend_from_slice(&bytes[..n]);
        }
    }
}

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
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    width: u16,
    height: u16,
) -> std::io::Result<RfbEnd> {
    stream.write_all(b"RFB 003.008\n").await?;
    let mut version = [0u8; 12];
    if stream.read_exact(&mut version).await.is_err() {
        return Ok(RfbEnd::Closed);
    }
    let minor = match &version {
        b"RFB 003.003\n" => 3,
        b"RFB 003.007\n" => 7,
        b"RFB 003.008\n" => 8,
        // Other 3.x versions (3.5, 3.889 from Apple) are treated as 3.3, as the RFB spec says.
        v if v.starts_with(b"RFB 003.") => 3,
        other => {
            return Ok(RfbEnd::Protocol(format!(
                "bad version {:?}",
                String::from_utf8_lossy(other)
            )));
        }
    };
    if minor == 3 {
        stream.write_all(&1u32.to_be_bytes()).await?;
    } else {
        stream.write_all(&[1, 1]).await?;
        let mut choice = [0u8; 1];
        stream.read_exact(&mut choice).await?;
        if choice[0] != 1 {
            return Ok(RfbEnd::Protocol(format!(
                "security type {} not offered",
                choice[0]
            )));
        }
        if minor == 8 {
            stream.write_all(&0u32.to_be_bytes()).await?;
        }
    }
    let mut shared = [0u8; 1];
    stream.read_exact(&mut shared).await?;
    let name = b"Intel(r) AMT KVM (oobkit simulator)";
    let mut init = Vec::with_capacity(24 + name.len());
    init.extend_from_slice(&width.to_be_bytes());
    init.extend_from_slice(&height.to_be_bytes());
    init.extend_from_slice(&PixelFormat::DEFAULT.bytes());
    init.extend_from_slice(&(name.len() as u32).to_be_bytes());
    init.extend_from_slice(name);
    stream.write_all(&init).await?;

    let mut format = PixelFormat::DEFAULT;
    let mut desktop_size = false;
    let mut sent_size = false;
    loop {
        let mut kind = [0u8; 1];
        if stream.read_exact(&mut kind).await.is_err() {
            return Ok(RfbEnd::Closed);
        }
        match kind[0] {
            0 => {
                let mut m = [0u8; 19];
                stream.read_exact(&mut m).await?;
                let pf: [u8; 16] = m[3..19].try_into().expect("16 bytes");
                format = match PixelFormat::parse(&pf) {
                    Some(f) => f,
                    None => return Ok(RfbEnd::Protocol("unsupported pixel format".into())),
                };
            }
            2 => {
                let mut m = [0u8; 3];
                stream.read_exact(&mut m).await?;
                let n = usize::from(u16::from_be_bytes([m[1], m[2]]));
                let mut list = vec![0u8; n * 4];
                stream.read_exact(&mut list).await?;
                desktop_size = list
                    .chunks_exact(4)
                    .any(|e| i32::from_be_bytes([e[0], e[1], e[2], e[3]]) == -223);
            }
            3 => {
                let mut m = [0u8; 9];
                stream.read_exact(&mut m).await?;
                let incremental = m[0] != 0;
                let size = u64::from(width) * u64::from(height) * u64::from(format.bpp / 8);
                if size > DISPLAY_BUFFER_LIMIT {
                    return Ok(RfbEnd::DisplayBufferLimit(size));
                }
                if incremental && sent_size {
                    // Nothing changes on this screen: answer slowly with an empty update, so
                    // that a polling client neither spins nor waits forever.
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    stream.write_all(&[0, 0, 0, 0]).await?;
                    continue;
                }
                let update = full_update(width, height, &format, desktop_size && !sent_size);
                sent_size = true;
                stream.write_all(&update).await?;
            }
            4 => {
                let mut m = [0u8; 7];
                stream.read_exact(&mut m).await?;
            }
            5 => {
                let mut m = [0u8; 5];
                stream.read_exact(&mut m).await?;
            }
            6 => {
                let mut m = [0u8; 7];
                stream.read_exact(&mut m).await?;
                let len = u32::from_be_bytes([m[3], m[4], m[5], m[6]]);
                // Cut text (and AMT's KvmExtCmd extension inside it): read and drop, bounded.
                if len > 1 << 20 {
                    return Ok(RfbEnd::Protocol("cut text over 1 MiB".into()));
                }
                let mut text = vec![0u8; len as usize];
                stream.read_exact(&mut text).await?;
            }
            other => return Ok(RfbEnd::Protocol(format!("unknown client message {other}"))),
        }
    }
}

/// The whole screen in Raw tiles of at most 64x64, preceded by DesktopSize if the client
/// understands it.
fn full_update(width: u16, height: u16, format: &PixelFormat, with_size: bool) -> Vec<u8> {
    let tiles_x = width.div_ceil(64);
    let tiles_y = height.div_ceil(64);
    let count = u16::from(with_size) + tiles_x * tiles_y;
    let bpp = usize::from(format.bpp / 8);
    let mut out = Vec::with_capacity(
        4 + usize::from(width) * usize::from(height) * bpp + usize::from(count) * 12,
    );
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&count.to_be_bytes());
    if with_size {
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&width.to_be_bytes());
        out.extend_from_slice(&height.to_be_bytes());
        out.extend_from_slice(&(-223i32).to_be_bytes());
    }
    for ty in 0..tiles_y {
        for tx in 0..tiles_x {
            let (x0, y0) = (tx * 64, ty * 64);
            let (w, h) = ((width - x0).min(64), (height - y0).min(64));
            for v in [x0, y0, w, h] {
                out.extend_from_slice(&v.to_be_bytes());
            }
            out.extend_from_slice(&0i32.to_be_bytes()); // Raw
            let mut row = Vec::with_capacity(usize::from(w) * bpp);
            for x in x0..x0 + w {
                format.encode(pattern(x, width), &mut row);
            }
            for _ in 0..h {
                out.extend_from_slice(&row);
            }
        }
    }
    out
}
