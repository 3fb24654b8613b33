//! CogVideoX's position tables: the 3-D sin-cos table `CogVideoXPatchEmbed` adds (2B) and the
//! 3-D rotary tables `CogVideoXPipeline` builds for the 5B and 1.5 models.

use candle_core::{Device, Result, Tensor};

use crate::components::rope::{RopeStyle, RotaryEmbedding, rotary_angles_1d};

/// diffusers' `get_3d_sincos_pos_embed(dim, (w, h), frames, s, t)`, flattened to
/// `(frames·h·w, dim)` rows in `(frame, row, col)` order: per row `[temporal (dim/4),
/// spatial (3·dim/4)]`, the spatial part `[column half, row half]`, each half `[sin, cos]`.
/// Positions are f32 divisions like diffusers', the angles f64, the result f32.
pub fn sincos_3d_table(
    dim: usize,
    frames: usize,
    h: usize,
    w: usize,
    spatial_scale: f64,
    temporal_scale: f64,
) -> Vec<f32> {
    let sincos = |d: usize, pos: f64, out: &mut Vec<f32>| {
        let half = d / 2;
        let omega = |i: usize| 1.0 / 10000f64.powf(i as f64 / (d as f64 / 2.0));
        out.extend((0..half).map(|i| (pos * omega(i)).sin() as f32));
        out.extend((0..half).map(|i| (pos * omega(i)).cos() as f32));
    };
    let (spatial, temporal) = (3 * dim / 4, dim / 4);
    let pos = |i: usize, scale: f64| f64::from(i as f32 / scale as f32);
    let mut out = Vec::with_capacity(frames * h * w * dim);
    for f in 0..frames {
        for r in 0..h {
            for c in 0..w {
                sincos(temporal, pos(f, temporal_scale), &mut out);
                sincos(spatial / 2, pos(c, spatial_scale), &mut out);
                sincos(spatial / 2, pos(r, spatial_scale), &mut out);
            }
        }
    }
    out
}

/// The pipelines' `get_resize_crop_region_for_grid(src, tgt_width, tgt_height)`: the grid
/// `(h, w)` fitted into the base grid and centred, as `((top, left), (bottom, right))` (Python's
/// `round`, ties to even).
pub fn resize_crop_region(h: usize, w: usize, base_w: usize, base_h: usize) -> ((f64, f64), (f64, f64)) {
    let (h, w, th, tw) = (h as f64, w as f64, base_h as f64, base_w as f64);
    let (rh, rw) = if h / w > th / tw {
        (th, (th / h * w).round_ties_even())
    } else {
        ((tw / w * h).round_ties_even(), tw)
    };
    let top = ((th - rh) / 2.0).round_ties_even();
    let left = ((tw - rw) / 2.0).round_ties_even();
    ((top, left), (top + rh, left + rw))
}

/// torch's `linspace(start, end, n)` (in f64).
fn linspace(start: f64, end: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![start];
    }
    (0..n)
        .map(|i| start + (end - start) * i as f64 / (n - 1) as f64)
        .collect()
}

/// diffusers' `get_3d_rotary_pos_embed(head_dim, …)` from per-axis positions: channels split
/// `t: d/4, h: 3d/8, w: 3d/8`, θ = 10⁴, interleaved, rows in `(frame, row, col)` order.
pub fn rotary_3d(
    head_dim: usize,
    t: &[f64],
    h: &[f64],
    w: &[f64],
    device: &candle_core::Device,
) -> Result<RotaryEmbedding> {
    let (dt, dh) = (head_dim / 4, head_dim / 8 * 3);
    let (tc, ts) = rotary_angles_1d(dt, t, 1e4);
    let (hc, hs) = rotary_angles_1d(dh, h, 1e4);
    let (wc, ws) = rotary_angles_1d(dh, w, 1e4);
    let (qt, qh) = (dt / 2, dh / 2);
    let n = t.len() * h.len() * w.len();
    let (mut cos, mut sin) = (
        Vec::with_capacity(n * head_dim / 2),
        Vec::with_capacity(n * head_dim / 2),
    );
    for f in 0..t.len() {
        for r in 0..h.len() {
            for c in 0..w.len() {
                for (out, (a, b, d)) in [(&mut cos, (&tc, &hc, &wc)), (&mut sin, (&ts, &hs, &ws))] {
                    out.extend_from_slice(&a[f * qt..(f + 1) * qt]);
                    out.extend_from_slice(&b[r * qh..(r + 1) * qh]);
                    out.extend_from_slice(&d[c * qh..(c + 1) * qh]);
                }
            }
        }
    }
    let shape = (n, head_dim / 2);
    RotaryEmbedding::new(
        Tensor::from_vec(cos, shape, device)?,
        Tensor::from_vec(sin, shape, device)?,
        RopeStyle::Interleaved,
    )
}

/// `CogVideoXPipeline._prepare_rotary_positional_embeddings` for `frames` latent frames of a
/// `grid_h × grid_w` patch grid, given the config's `attention_head_dim`, `patch_size_t` and
/// base patch grid `(height, width)`: 1.0 (no `patch_size_t`) fits the grid into the base grid
/// and spreads positions over the crop (linspace); 1.5 counts them from 0 (slice). Takes the
/// config's numbers rather than the config, so this module does not import the model's.
pub fn pipeline_rotary(
    head_dim: usize,
    patch_size_t: Option<usize>,
    (base_h, base_w): (usize, usize),
    (frames, grid_h, grid_w): (usize, usize, usize),
    device: &Device,
) -> Result<RotaryEmbedding> {
    let count = |n: usize| (0..n).map(|i| i as f64).collect::<Vec<_>>();
    let table = match patch_size_t {
        None => {
            let ((top, left), (bottom, right)) = resize_crop_region(grid_h, grid_w, base_w, base_h);
            let (fh, fw, ft) = (grid_h as f64, grid_w as f64, frames as f64);
            rotary_3d(
                head_dim,
                &linspace(0.0, ft * (ft - 1.0) / ft, frames),
                &linspace(top, bottom * (fh - 1.0) / fh, grid_h),
                &linspace(left, right * (fw - 1.0) / fw, grid_w),
                device,
            )?
        }
        Some(pt) => {
            if grid_h > base_h || grid_w > base_w {
                candle_core::bail!(
                    "a {grid_h}x{grid_w} patch grid exceeds the {base_h}x{base_w} grid CogVideoX 1.5's rotary slices"
                );
            }
            rotary_3d(
                head_dim,
                &count(frames.div_ceil(pt)),
                &count(grid_h),
                &count(grid_w),
                device,
            )?
        }
    };
    Ok(table)
}
