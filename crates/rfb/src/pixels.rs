//! Pixel formats and the colour-bar test pattern.

/// The DesktopSize pseudo-encoding.
pub const DESKTOP_SIZE: i32 = -223;

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

/// A true-colour pixel format (colour maps are not offered; neither does AMT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelFormat {
    /// Bits per pixel: 8, 16 or 32.
    pub bits_per_pixel: u8,
    /// Big-endian multi-byte pixels.
    pub big_endian: bool,
    /// Red, green and blue maxima.
    pub max: [u16; 3],
    /// Red, green and blue shifts.
    pub shift: [u8; 3],
}

impl PixelFormat {
    /// 32 bpp, depth 24, little-endian true colour: what AMT announces.
    pub const DEFAULT: Self = Self {
        bits_per_pixel: 32,
        big_endian: false,
        max: [255, 255, 255],
        shift: [16, 8, 0],
    };

    /// The 16 bytes of ServerInit and SetPixelFormat.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0] = self.bits_per_pixel;
        b[1] = if self.bits_per_pixel == 32 {
            24
        } else {
            self.bits_per_pixel
        };
        b[2] = u8::from(self.big_endian);
        b[3] = 1; // true colour
        for i in 0..3 {
            b[4 + 2 * i..6 + 2 * i].copy_from_slice(&self.max[i].to_be_bytes());
            b[10 + i] = self.shift[i];
        }
        b
    }

    /// A format a client asks for, validated as RFC 6143 section 7.4 describes it: 8, 16 or
    /// 32 bits per pixel, depth at most that, true colour, each maximum `2^n - 1` and each
    /// colour (maximum shifted into place) inside the pixel. `None` for what cannot be
    /// served: colour maps, a shift past the pixel, a maximum that is not all ones.
    pub fn from_bytes(b: &[u8; 16]) -> Option<Self> {
        let (bits_per_pixel, depth, true_colour) = (b[0], b[1], b[3] != 0);
        if !matches!(bits_per_pixel, 8 | 16 | 32) || depth > bits_per_pixel || !true_colour {
            return None;
        }
        let max = [
            u16::from_be_bytes([b[4], b[5]]),
            u16::from_be_bytes([b[6], b[7]]),
            u16::from_be_bytes([b[8], b[9]]),
        ];
        let shift = [b[10], b[11], b[12]];
        for (max, shift) in max.iter().zip(shift) {
            let fits = u64::from(*max)
                .checked_shl(u32::from(shift))
                .is_some_and(|top| top < 1u64 << bits_per_pixel);
            let all_ones = *max == u16::MAX || (*max).wrapping_add(1).is_power_of_two();
            if *max == 0 || !all_ones || !fits {
                return None;
            }
        }
        Some(Self {
            bits_per_pixel,
            big_endian: b[2] != 0,
            max,
            shift,
        })
    }

    /// Bytes per pixel.
    pub fn bytes_per_pixel(&self) -> usize {
        usize::from(self.bits_per_pixel / 8)
    }

    /// Appends one pixel of colour `rgb`.
    pub fn encode(&self, rgb: [u8; 3], out: &mut Vec<u8>) {
        let mut value: u32 = 0;
        for ((channel, max), shift) in rgb.iter().zip(self.max).zip(self.shift) {
            // from_bytes guarantees the shifted maximum fits the pixel.
            value |= (u32::from(*channel) * u32::from(max) / 255) << shift;
        }
        let n = self.bytes_per_pixel();
        if self.big_endian {
            out.extend_from_slice(&value.to_be_bytes()[4 - n..]);
        } else {
            out.extend_from_slice(&value.to_le_bytes()[..n]);
        }
    }
}

/// A FramebufferUpdate with the whole test-pattern screen in Raw tiles of at most 64x64 (AMT's
/// tile limit), preceded by a DesktopSize rectangle when `with_size`.
pub fn test_pattern_update(
    width: u16,
    height: u16,
    format: &PixelFormat,
    with_size: bool,
) -> Vec<u8> {
    let tiles_x = width.div_ceil(64);
    let tiles_y = height.div_ceil(64);
    let count = u16::from(with_size).saturating_add(tiles_x.saturating_mul(tiles_y));
    let bpp = format.bytes_per_pixel();
    let mut out = Vec::with_capacity(
        4 + usize::from(width) * usize::from(height) * bpp + usize::from(count) * 12,
    );
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&count.to_be_bytes());
    if with_size {
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&width.to_be_bytes());
        out.extend_from_slice(&height.to_be_bytes());
        out.extend_from_slice(&DESKTOP_SIZE.to_be_bytes());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn format(bpp: u8, depth: u8, max: u16, shifts: [u8; 3]) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0] = bpp;
        b[1] = depth;
        b[3] = 1;
        for i in 0..3 {
            b[4 + 2 * i..6 + 2 * i].copy_from_slice(&max.to_be_bytes());
        }
        b[10..13].copy_from_slice(&shifts);
        b
    }

    #[test]
    fn formats_are_validated_as_rfc_6143_says() {
        assert_eq!(
            PixelFormat::from_bytes(&PixelFormat::DEFAULT.to_bytes()),
            Some(PixelFormat::DEFAULT)
        );
        // RGB565 and RGB332 are fine.
        assert!(PixelFormat::from_bytes(&format(16, 16, 31, [11, 5, 0])).is_some());
        assert!(PixelFormat::from_bytes(&format(8, 8, 7, [5, 2, 0])).is_some());
        // A shift of 40 (the simulator used to panic on it), a colour past the pixel, a
        // maximum that is not all ones, a depth over the pixel, a colour map: refused.
        assert!(PixelFormat::from_bytes(&format(32, 24, 255, [40, 8, 0])).is_none());
        assert!(PixelFormat::from_bytes(&format(16, 16, 255, [16, 8, 0])).is_none());
        assert!(PixelFormat::from_bytes(&format(32, 24, 200, [16, 8, 0])).is_none());
        assert!(PixelFormat::from_bytes(&format(16, 24, 31, [11, 5, 0])).is_none());
        let mut map = PixelFormat::DEFAULT.to_bytes();
        map[3] = 0;
        assert!(PixelFormat::from_bytes(&map).is_none());
    }

    #[test]
    fn any_accepted_format_encodes_without_overflow() {
        for bytes in 0..=255u8 {
            let b = format(8, 8, 7, [bytes % 9, 2, 0]);
            if let Some(f) = PixelFormat::from_bytes(&b) {
                let mut out = Vec::new();
                f.encode([255, 255, 255], &mut out);
                assert_eq!(out.len(), 1);
            }
        }
    }
}
