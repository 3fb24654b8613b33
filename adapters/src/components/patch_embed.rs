//! diffusers' `PatchEmbed` without SD3's cropping, as PixArt and DiT use it: a patchifying
//! Conv2d plus a 2-D sin-cos position table of the latent's patch grid.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::patchify::pack_latents;

/// diffusers' `get_2d_sincos_pos_embed(dim, (h, w), base_size, interpolation_scale)`: `(h·w,
/// dim)` f32 rows in row-major `(row, col)` order; the first half of the channels encodes the
/// column (`c / (w / base_size) / scale`), the second the row. Positions are f32 like
/// diffusers', the angles f64.
pub fn sincos_2d_grid(
    dim: usize,
    h: usize,
    w: usize,
    base_size: usize,
    interpolation_scale: f64,
) -> Vec<f32> {
    let half = dim / 2;
    let quarter = half / 2;
    let omega: Vec<f64> = (0..quarter)
        .map(|i| 1.0 / 10000f64.powf(i as f64 / (half as f64 / 2.0)))
        .collect();
    let scale = interpolation_scale as f32;
    let pos = |i: usize, n: usize| f64::from(i as f32 / (n as f32 / base_size as f32) / scale);
    let mut out = Vec::with_capacity(h * w * dim);
    for r in 0..h {
        for c in 0..w {
            for p in [pos(c, w), pos(r, h)] {
                out.extend(omega.iter().map(|o| (p * o).sin() as f32));
                out.extend(omega.iter().map(|o| (p * o).cos() as f32));
            }
        }
    }
    out
}

/// diffusers' `PatchEmbed` without cropping (PixArt, DiT): `proj` (Conv2d, kernel = stride =
/// patch) as a linear map over packed patches, plus the sin-cos table of the patch grid (built
/// once for the `sample_size` grid, recomputed for any other, as diffusers does).
#[derive(Debug, Clone)]
pub struct PatchEmbed {
    proj: Linear,
    table: Tensor,
    patch: usize,
    base: usize,
    scale: f64,
}

impl PatchEmbed {
    /// Loads `proj` (`weight` `(dim, C, p, p)`, `bias`) from `vb` and builds the table of the
    /// `sample_size / p` grid (`base_size`) at `interpolation_scale`.
    pub fn new(
        c: usize,
        p: usize,
        d: usize,
        sample_size: usize,
        interpolation_scale: f64,
        vb: VarBuilder,
    ) -> Result<Self> {
        let bound = 1.0 / ((c * p * p) as f64).sqrt();
        let init = candle_nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let w = vb.pp("proj").get_with_hints((d, c, p, p), "weight", init)?;
        let b = vb.pp("proj").get_with_hints(d, "bias", init)?;
        let base = sample_size / p;
        let scale = interpolation_scale;
        Ok(Self {
            proj: Linear::new(w.reshape((d, c * p * p))?, Some(b)),
            table: Self::table(d, base, base, base, scale, vb.device())?,
            patch: p,
            base,
            scale,
        })
    }

    fn table(d: usize, h: usize, w: usize, base: usize, scale: f64, device: &Device) -> Result<Tensor> {
        Tensor::from_vec(sincos_2d_grid(d, h, w, base, scale), (1, h * w, d), device)
    }

    /// `(B, C, H, W)` latents → `(B, (H/p)·(W/p), dim)` tokens with position embeddings.
    pub fn forward(&self, latent: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = latent.dims4()?;
        let (gh, gw) = (h / self.patch, w / self.patch);
        let x = self.proj.forward(&pack_latents(latent, self.patch)?)?;
        let pos = if (gh, gw) == (self.base, self.base) {
            self.table.clone()
        } else {
            let d = self.table.dim(2)?;
            Self::table(d, gh, gw, self.base, self.scale, latent.device())?
        };
        // diffusers adds the f32 table and casts the sum back.
        x.to_dtype(DType::F32)?.broadcast_add(&pos)?.to_dtype(x.dtype())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sincos_grid_matches_the_square_table_on_a_square_grid() {
        let square = crate::families::sd3::sincos_2d_table(8, 3, 2, 1.0);
        assert_eq!(sincos_2d_grid(8, 3, 3, 2, 1.0), square);
    }
}
