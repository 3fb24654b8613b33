//! A PNG of per-step residual diffs against the threshold, cached steps marked: where people
//! would rather look than read.

use anyhow::{Context, Result};
use cachedit::CallRecord;
use image::{Rgb, RgbImage};

const W: u32 = 640;
const H: u32 = 320;
const PAD: u32 = 24;

/// Draws the non-CFG diffs of the first list in `trace` (one point per step; red = cached,
/// blue = computed; grey line = threshold), as PNG bytes.
pub fn diffs_png(trace: &[CallRecord], threshold: f64) -> Result<Vec<u8>> {
    let mut img = RgbImage::from_pixel(W, H, Rgb([255, 255, 255]));
    let first = trace.first().map(|r| r.list.clone()).unwrap_or_default();
    let points: Vec<(usize, f64, bool)> = trace
        .iter()
        .filter(|r| r.list == first && r.branch == cachedit::Branch::NonCfg)
        .map(|r| {
            (
                r.step,
                r.diff.filter(|d| d.is_finite() && *d >= 0.0).unwrap_or(0.0),
                r.cached,
            )
        })
        .collect();
    let steps = points.iter().map(|p| p.0).max().unwrap_or(0).max(1) as f64;
    let top = points.iter().map(|p| p.1).fold(threshold, f64::max).max(1e-6) * 1.1;
    let x = |s: f64| PAD + ((W - 2 * PAD) as f64 * s / steps) as u32;
    let y = |d: f64| H - PAD - ((H - 2 * PAD) as f64 * (d / top).min(1.0)) as u32;
    for px in PAD..W - PAD {
        img.put_pixel(px, H - PAD, Rgb([0, 0, 0]));
        img.put_pixel(px, y(threshold), Rgb([150, 150, 150]));
    }
    for py in PAD..=H - PAD {
        img.put_pixel(PAD, py, Rgb([0, 0, 0]));
    }
    for &(s, d, cached) in &points {
        let colour = if cached {
            Rgb([220, 40, 40])
        } else {
            Rgb([40, 80, 220])
        };
        let (cx, cy) = (x(s as f64) as i64, y(d) as i64);
        for dx in -3i64..=3 {
            for dy in -3i64..=3 {
                let (px, py) = (cx + dx, cy + dy);
                if dx * dx + dy * dy <= 9 && px >= 0 && py >= 0 && (px as u32) < W && (py as u32) < H {
                    img.put_pixel(px as u32, py as u32, colour);
                }
            }
        }
    }
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .context("encoding the plot as PNG")?;
    Ok(png)
}
