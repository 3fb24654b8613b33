//! Small image utilities the demo and the CLI share: an RGB buffer, a dependency-free PNG
//! writer (stored deflate blocks), image grids, a line plot for loss curves, and PSNR.

use std::path::Path;

use candle_core::{DType, Result, Tensor};

/// An 8-bit RGB image, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width × height × 3` bytes.
    pub pixels: Vec<u8>,
}

impl RgbImage {
    /// A `width × height` image filled with `rgb`.
    pub fn filled(width: usize, height: usize, rgb: [u8; 3]) -> Self {
        Self {
            width,
            height,
            pixels: rgb.repeat(width * height),
        }
    }

    /// Sets pixel `(x, y)`; pixels outside the image are ignored.
    pub fn put(&mut self, x: usize, y: usize, rgb: [u8; 3]) {
        if x < self.width && y < self.height {
            let i = (y * self.width + x) * 3;
            self.pixels[i..i + 3].copy_from_slice(&rgb);
        }
    }

    /// Copies `other` with its top-left corner at `(x, y)` (clipped).
    pub fn blit(&mut self, other: &RgbImage, x: usize, y: usize) {
        for oy in 0..other.height {
            for ox in 0..other.width {
                let i = (oy * other.width + ox) * 3;
                let p = [other.pixels[i], other.pixels[i + 1], other.pixels[i + 2]];
                self.put(x + ox, y + oy, p);
            }
        }
    }

    /// Nearest-neighbour upscale by an integer `factor` (at least 1).
    pub fn upscale(&self, factor: usize) -> Self {
        let f = factor.max(1);
        let mut out = Self::filled(self.width * f, self.height * f, [0; 3]);
        for y in 0..out.height {
            for x in 0..out.width {
                let i = ((y / f) * self.width + x / f) * 3;
                out.put(x, y, [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]);
            }
        }
        out
    }

    /// The image as PNG bytes.
    pub fn to_png(&self) -> Vec<u8> {
        encode_png(self.width, self.height, &self.pixels)
    }

    /// Writes the image as a PNG file.
    pub fn save_png(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.to_png())
    }
}

/// Converts images `(B, 3, H, W)` with values in `[-1, 1]` (clamped) to 8-bit RGB images.
pub fn tensor_to_images(images: &Tensor) -> Result<Vec<RgbImage>> {
    let (b, c, h, w) = images.dims4()?;
    if c != 3 {
        candle_core::bail!("expected 3 channels, got {c}");
    }
    let v = images.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let plane = h * w;
    Ok((0..b)
        .map(|i| {
            let base = i * 3 * plane;
            let mut pixels = Vec::with_capacity(plane * 3);
            for p in 0..plane {
                for ch in 0..3 {
                    let x = v[base + ch * plane + p];
                    pixels.push((((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round()) as u8);
                }
            }
            RgbImage {
                width: w,
                height: h,
                pixels,
            }
        })
        .collect())
}

/// Lays `images` out in a grid of `cols` columns, each upscaled by `scale`, with a `gap`-pixel
/// light border. Images of different sizes are placed in cells of the largest size.
pub fn grid(images: &[RgbImage], cols: usize, scale: usize, gap: usize) -> RgbImage {
    let cols = cols.max(1);
    let rows = images.len().div_ceil(cols).max(1);
    let cw = images.iter().map(|i| i.width).max().unwrap_or(1) * scale.max(1);
    let ch = images.iter().map(|i| i.height).max().unwrap_or(1) * scale.max(1);
    let mut out = RgbImage::filled(cols * (cw + gap) + gap, rows * (ch + gap) + gap, [230; 3]);
    for (k, img) in images.iter().enumerate() {
        let (r, c) = (k / cols, k % cols);
        out.blit(&img.upscale(scale), gap + c * (cw + gap), gap + r * (ch + gap));
    }
    out
}

/// A line plot of `values` (e.g. a loss curve) on a log₁₀ y-axis when all values are positive
/// (linear otherwise), `width × height` pixels, with a light grid at each power of ten.
pub fn line_plot(values: &[f32], width: usize, height: usize) -> RgbImage {
    let mut img = RgbImage::filled(width, height, [255; 3]);
    let finite: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.len() < 2 || width < 20 || height < 20 {
        return img;
    }
    let log = finite.iter().all(|v| *v > 0.0);
    let tf = |v: f32| if log { v.log10() } else { v };
    let (mut lo, mut hi) = finite
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| {
            (a.min(tf(*v)), b.max(tf(*v)))
        });
    if hi - lo < 1e-6 {
        lo -= 0.5;
        hi += 0.5;
    }
    let (x0, y0, pw, ph) = (10usize, 10usize, width - 20, height - 20);
    let to_y = |v: f32| y0 + ((hi - tf(v)) / (hi - lo) * (ph - 1) as f32).round() as usize;
    if log {
        let mut d = lo.floor() as i32;
        while d as f32 <= hi {
            if d as f32 >= lo {
                let y = y0 + ((hi - d as f32) / (hi - lo) * (ph - 1) as f32).round() as usize;
                (x0..x0 + pw).for_each(|x| img.put(x, y, [215; 3]));
            }
            d += 1;
        }
    }
    for y in y0..y0 + ph {
        img.put(x0, y, [0; 3]);
    }
    for x in x0..x0 + pw {
        img.put(x, y0 + ph - 1, [0; 3]);
    }
    let n = values.len();
    let mut prev: Option<(usize, usize)> = None;
    for (i, v) in values.iter().enumerate() {
        if !v.is_finite() {
            continue;
        }
        let x = x0 + i * (pw - 1) / (n - 1).max(1);
        let y = to_y(*v).min(y0 + ph - 1);
        if let Some((px, py)) = prev {
            let (a, b) = (py.min(y), py.max(y));
            (a..=b).for_each(|yy| img.put(if yy == py { px } else { x }, yy, [30, 90, 200]));
        }
        img.put(x, y, [30, 90, 200]);
        prev = Some((x, y));
    }
    img
}

/// Peak signal-to-noise ratio in dB between `a` and `b` over `data_range` (2 for `[-1, 1]`,
/// 255 for 8-bit), computed in f64 (cache-dit's helper works on uint8 arrays, where
/// `a - b` wraps around; this one does not). `f64::INFINITY` for identical inputs.
pub fn psnr(a: &[f32], b: &[f32], data_range: f64) -> Option<f64> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    Some(if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (data_range * data_range / mse).log10()
    })
}

/// PSNR between two tensors of the same shape (see [`psnr`]).
pub fn psnr_tensors(a: &Tensor, b: &Tensor, data_range: f64) -> Result<f64> {
    let va = a.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let vb = b.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    psnr(&va, &vb, data_range).ok_or_else(|| candle_core::Error::msg("psnr: shapes differ or empty"))
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in bytes {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend(kind);
    out.extend(data);
    let crc = crc32(&out[start..]);
    out.extend(crc.to_be_bytes());
}

/// Encodes 8-bit RGB `pixels` (`width × height × 3`, row-major) as a PNG: filter 0 on every
/// row, zlib with stored (uncompressed) deflate blocks. Small and dependency-free; the files
/// are about the size of the raw pixels.
pub fn encode_png(width: usize, height: usize, pixels: &[u8]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(height * (width * 3 + 1));
    for y in 0..height {
        raw.push(0);
        let row = pixels.get(y * width * 3..(y + 1) * width * 3).unwrap_or(&[]);
        raw.extend(row);
        raw.resize(raw.len() + width * 3 - row.len(), 0);
    }
    let mut z = vec![0x78, 0x01];
    let mut blocks = raw.chunks(65_535).peekable();
    if blocks.peek().is_none() {
        z.extend([1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        z.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        z.extend(len.to_le_bytes());
        z.extend((!len).to_le_bytes());
        z.extend(block);
    }
    z.extend(adler32(&raw).to_be_bytes());
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend((width as u32).to_be_bytes());
    ihdr.extend((height as u32).to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psnr_is_floating_point_and_symmetric() {
        let a = [0.0f32, 0.5, 1.0, -1.0];
        assert_eq!(psnr(&a, &a, 2.0), Some(f64::INFINITY));
        // MSE 0.01 over a range of 2: 10·log10(4 / 0.01) = 26.02 dB.
        let b = [0.1f32, 0.4, 0.9, -0.9];
        let p = psnr(&a, &b, 2.0).unwrap();
        assert!((p - 26.0206).abs() < 1e-3, "{p}");
        assert_eq!(psnr(&b, &a, 2.0), Some(p));
        // 8-bit values where uint8 subtraction would wrap (3 - 250): no wrap here.
        let p8 = psnr(&[3.0], &[250.0], 255.0).unwrap();
        assert!((p8 - 10.0 * (255.0f64 * 255.0 / (247.0 * 247.0)).log10()).abs() < 1e-9);
        assert_eq!(psnr(&a, &a[..2], 2.0), None);
    }

    #[test]
    fn png_has_valid_structure_and_checksums() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
        let img = grid(&vec![RgbImage::filled(2, 3, [255, 0, 0]); 3], 2, 2, 1);
        assert_eq!((img.width, img.height), (2 * 5 + 1, 2 * 7 + 1));
        let png = img.to_png();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(&png[png.len() - 8..png.len() - 4], b"IEND");
        let plot = line_plot(&[1.0, 0.5, 0.2, 0.1], 64, 48);
        assert_eq!(plot.pixels.len(), 64 * 48 * 3);
        assert!(plot.pixels.chunks(3).any(|p| p == [30, 90, 200]));
    }
}
