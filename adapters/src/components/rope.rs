//! Rotary position embeddings: diffusers' `get_1d_rotary_pos_embed`, Flux's multi-axis
//! `FluxPosEmbed`, and their application to `(B, H, S, D)` queries/keys on Candle's fused
//! kernels (`rope_i` for interleaved pairs, `rope` for rotate-half).

use candle_core::{DType, Device, Result, Tensor};

/// How the channels of a head are paired for rotation (diffusers' `use_real_unbind_dim`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Pairs `(x[2i], x[2i+1])` (`use_real_unbind_dim=-1`): Flux, HunyuanVideo, CogVideoX.
    Interleaved,
    /// Pairs `(x[i], x[i + D/2])` (rotate-half, `use_real_unbind_dim=-2`): CogView4, Cosmos.
    HalfSplit,
}

/// A rotary table over a sequence: `cos`/`sin` `(S, D/2)`, one angle per channel pair (the
/// diffusers tables repeat each angle twice; this keeps one copy, which is what the fused
/// kernels read), or `(H, S, D/2)` with one set of angles per head (Mochi's learned
/// frequencies; see [`per_head`](Self::per_head)).
#[derive(Debug, Clone)]
pub struct RotaryEmbedding {
    cos: Tensor,
    sin: Tensor,
    style: RopeStyle,
}

impl RotaryEmbedding {
    /// A table from half-width `cos`/`sin` `(S, D/2)`.
    pub fn new(cos: Tensor, sin: Tensor, style: RopeStyle) -> Result<Self> {
        if cos.shape() != sin.shape() || cos.rank() != 2 {
            candle_core::bail!(
                "rotary table: cos {:?} and sin {:?} must both be (S, D/2)",
                cos.shape(),
                sin.shape()
            );
        }
        Ok(Self {
            cos: cos.contiguous()?,
            sin: sin.contiguous()?,
            style,
        })
    }

    /// A table with its own angles per head: `cos`/`sin` `(H, S, D/2)`, interleaved pairs.
    /// It is applied in f32 with basic ops (Candle's fused kernel takes one table for all
    /// heads), which is also how Mochi rotates.
    pub fn per_head(cos: Tensor, sin: Tensor) -> Result<Self> {
        if cos.shape() != sin.shape() || cos.rank() != 3 {
            candle_core::bail!(
                "per-head rotary table: cos {:?} and sin {:?} must both be (H, S, D/2)",
                cos.shape(),
                sin.shape()
            );
        }
        Ok(Self {
            cos: cos.contiguous()?,
            sin: sin.contiguous()?,
            style: RopeStyle::Interleaved,
        })
    }

    /// The same table followed by `n` identity rows (angle 0): a joint `[img, txt]` sequence
    /// whose text part is not rotated (HunyuanVideo, Mochi).
    pub fn with_identity_rows(&self, n: usize) -> Result<Self> {
        let seq_axis = self.cos.rank() - 2;
        let mut dims = self.cos.dims().to_vec();
        dims[seq_axis] = n;
        let ones = Tensor::ones(dims.as_slice(), self.cos.dtype(), self.cos.device())?;
        let zeros = Tensor::zeros(dims.as_slice(), self.sin.dtype(), self.sin.device())?;
        Ok(Self {
            cos: Tensor::cat(&[&self.cos, &ones], seq_axis)?.contiguous()?,
            sin: Tensor::cat(&[&self.sin, &zeros], seq_axis)?.contiguous()?,
            style: self.style,
        })
    }

    /// A table from diffusers' full-width interleaved tables (`repeat_interleave_real=True`,
    /// `(S, D)` with each angle repeated twice).
    pub fn from_interleaved_full(cos: &Tensor, sin: &Tensor) -> Result<Self> {
        let half = |t: &Tensor| -> Result<Tensor> {
            let (s, d) = t.dims2()?;
            t.reshape((s, d / 2, 2))?.narrow(2, 0, 1)?.reshape((s, d / 2))
        };
        Self::new(half(cos)?, half(sin)?, RopeStyle::Interleaved)
    }

    /// How the channels are paired.
    pub fn style(&self) -> RopeStyle {
        self.style
    }

    /// The sequence length.
    pub fn seq_len(&self) -> usize {
        self.cos.dims()[self.cos.rank() - 2]
    }

    /// The half-width tables `(cos, sin)`.
    pub fn tables(&self) -> (&Tensor, &Tensor) {
        (&self.cos, &self.sin)
    }

    /// diffusers-style full-width tables `(S, D)`: each angle repeated twice for
    /// [`RopeStyle::Interleaved`], the halves concatenated for [`RopeStyle::HalfSplit`].
    pub fn full_tables(&self) -> Result<(Tensor, Tensor)> {
        let full = |t: &Tensor| -> Result<Tensor> {
            let (s, h) = t.dims2()?;
            match self.style {
                RopeStyle::Interleaved => t.unsqueeze(2)?.repeat((1, 1, 2))?.reshape((s, 2 * h)),
                RopeStyle::HalfSplit => Tensor::cat(&[t, t], 1),
            }
        };
        Ok((full(&self.cos)?, full(&self.sin)?))
    }

    /// Rows `start..start + len` of the table.
    pub fn narrow(&self, start: usize, len: usize) -> Result<Self> {
        let axis = self.cos.rank() - 2;
        Ok(Self {
            cos: self.cos.narrow(axis, start, len)?.contiguous()?,
            sin: self.sin.narrow(axis, start, len)?.contiguous()?,
            style: self.style,
        })
    }

    /// Rotates `x` `(B, H, S, D)`; the table must cover exactly `S` positions.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, s, _) = x.dims4()?;
        if s != self.seq_len() {
            candle_core::bail!(
                "rotary table covers {} positions but the sequence has {s}",
                self.seq_len()
            );
        }
        if self.cos.rank() == 3 {
            return self.apply_per_head(x);
        }
        let x = x.contiguous()?;
        let (cos, sin) = if self.cos.dtype() == x.dtype() {
            (self.cos.clone(), self.sin.clone())
        } else {
            (self.cos.to_dtype(x.dtype())?, self.sin.to_dtype(x.dtype())?)
        };
        if super::differentiable_ops() {
            return match self.style {
                RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i_slow(&x, &cos, &sin),
                RopeStyle::HalfSplit => candle_nn::rotary_emb::rope_slow(&x, &cos, &sin),
            };
        }
        match self.style {
            RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(&x, &cos, &sin),
            RopeStyle::HalfSplit => candle_nn::rotary_emb::rope(&x, &cos, &sin),
        }
    }
}

impl RotaryEmbedding {
    /// Rotates the interleaved pairs of `x` `(B, H, S, D)` in f32 with per-head angles.
    fn apply_per_head(&self, x: &Tensor) -> Result<Tensor> {
        let (b, h, s, d) = x.dims4()?;
        let pairs = x.to_dtype(DType::F32)?.reshape((b, h, s, d / 2, 2))?;
        let even = pairs.narrow(4, 0, 1)?.squeeze(4)?;
        let odd = pairs.narrow(4, 1, 1)?.squeeze(4)?;
        let cos = self.cos.to_dtype(DType::F32)?.unsqueeze(0)?;
        let sin = self.sin.to_dtype(DType::F32)?.unsqueeze(0)?;
        let re = (even.broadcast_mul(&cos)? - odd.broadcast_mul(&sin)?)?;
        let im = (even.broadcast_mul(&sin)? + odd.broadcast_mul(&cos)?)?;
        Tensor::stack(&[re, im], 4)?
            .reshape((b, h, s, d))?
            .to_dtype(x.dtype())
    }
}

/// diffusers' `get_1d_rotary_pos_embed(dim, pos, theta, use_real=True)` as half-width tables:
/// angles `pos * theta^(-2i/dim)` computed in f64 (as diffusers does for Flux), returned as f32
/// `(cos, sin)`, each `pos.len() × dim/2` row-major.
pub fn rotary_angles_1d(dim: usize, pos: &[f64], theta: f64) -> (Vec<f32>, Vec<f32>) {
    let half = dim / 2;
    let freqs: Vec<f64> = (0..half)
        .map(|i| 1.0 / theta.powf((2 * i) as f64 / dim as f64))
        .collect();
    let mut cos = Vec::with_capacity(pos.len() * half);
    let mut sin = Vec::with_capacity(pos.len() * half);
    for &p in pos {
        for &f in &freqs {
            let a = p * f;
            cos.push(a.cos() as f32);
            sin.push(a.sin() as f32);
        }
    }
    (cos, sin)
}

/// The inverse frequencies `1 / theta^(2i/dim)` of a `dim`-channel axis computed in f32, in
/// torch's operation order (`1.0 / torch.pow(theta, torch.arange(0, dim, 2).float().div(dim))`):
/// the tables QwenImage builds once (`QwenEmbedRope.rope_params`) and rotates with in complex64,
/// so their angles `pos * inv` are f32 products, not f64 ones as in [`rotary_angles_1d`].
pub fn inverse_frequencies_f32(dim: usize, theta: f32) -> Vec<f32> {
    (0..dim / 2)
        .map(|i| 1.0 / theta.powf((2 * i) as f32 / dim as f32))
        .collect()
}

/// diffusers' `FluxPosEmbed(theta, axes_dim)`: one 1-D rotary table per id axis, concatenated
/// along the channels (interleaved pairs).
#[derive(Debug, Clone, PartialEq)]
pub struct MultiAxisRope {
    /// Base of the frequencies (Flux: 10 000; HunyuanVideo: 256).
    pub theta: f64,
    /// Channels per axis; they sum to the head dimension.
    pub axes_dim: Vec<usize>,
}

impl MultiAxisRope {
    /// The table for `ids` `(S, n_axes)` (any float or integer dtype; read as f32 like
    /// diffusers' `ids.float()`).
    pub fn forward(&self, ids: &Tensor, device: &Device) -> Result<RotaryEmbedding> {
        let (s, n_axes) = ids.dims2()?;
        if n_axes != self.axes_dim.len() {
            candle_core::bail!(
                "position ids have {n_axes} axes but the rotary embedding has {}",
                self.axes_dim.len()
            );
        }
        let ids = ids.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        let half: usize = self.axes_dim.iter().map(|d| d / 2).sum();
        let mut cos = vec![0f32; s * half];
        let mut sin = vec![0f32; s * half];
        let mut offset = 0;
        for (axis, &dim) in self.axes_dim.iter().enumerate() {
            let pos: Vec<f64> = ids.iter().map(|row| f64::from(row[axis])).collect();
            let (c, sn) = rotary_angles_1d(dim, &pos, self.theta);
            let h = dim / 2;
            for row in 0..s {
                let dst = row * half + offset;
                cos[dst..dst + h].copy_from_slice(&c[row * h..(row + 1) * h]);
                sin[dst..dst + h].copy_from_slice(&sn[row * h..(row + 1) * h]);
            }
            offset += h;
        }
        RotaryEmbedding::new(
            Tensor::from_vec(cos, (s, half), device)?,
            Tensor::from_vec(sin, (s, half), device)?,
            RopeStyle::Interleaved,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both styles against the textbook formulas on a small input.
    #[test]
    fn interleaved_and_half_split_rotate_the_right_pairs() -> Result<()> {
        let dev = Device::Cpu;
        let (cos, sin) = rotary_angles_1d(4, &[0.0, 1.0, 2.0], 10.0);
        let x: Vec<f32> = (0..12).map(|i| i as f32 * 0.1 - 0.5).collect();
        let xt = Tensor::from_vec(x.clone(), (1, 1, 3, 4), &dev)?;
        let mk = |style| {
            RotaryEmbedding::new(
                Tensor::from_vec(cos.clone(), (3, 2), &dev)?,
                Tensor::from_vec(sin.clone(), (3, 2), &dev)?,
                style,
            )
        };
        let inter = mk(RopeStyle::Interleaved)?
            .apply(&xt)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let half = mk(RopeStyle::HalfSplit)?
            .apply(&xt)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        for s in 0..3 {
            let r = &x[s * 4..s * 4 + 4];
            for i in 0..2 {
                let (c, sn) = (cos[s * 2 + i], sin[s * 2 + i]);
                let (a, b) = (r[2 * i], r[2 * i + 1]);
                assert!((inter[s * 4 + 2 * i] - (a * c - b * sn)).abs() < 1e-6);
                assert!((inter[s * 4 + 2 * i + 1] - (b * c + a * sn)).abs() < 1e-6);
                let (a, b) = (r[i], r[i + 2]);
                assert!((half[s * 4 + i] - (a * c - b * sn)).abs() < 1e-6);
                assert!((half[s * 4 + i + 2] - (b * c + a * sn)).abs() < 1e-6);
            }
        }
        let table = mk(RopeStyle::Interleaved)?;
        let (fc, fs) = table.full_tables()?;
        let again = RotaryEmbedding::from_interleaved_full(&fc, &fs)?;
        assert_eq!(
            again.tables().0.to_vec2::<f32>()?,
            table.tables().0.to_vec2::<f32>()?
        );
        assert!(
            table
                .apply(&Tensor::zeros((1, 1, 2, 4), DType::F32, &dev)?)
                .is_err()
        );
        Ok(())
    }

    #[test]
    fn multi_axis_table_concatenates_axes() -> Result<()> {
        let dev = Device::Cpu;
        let rope = MultiAxisRope {
            theta: 10000.0,
            axes_dim: vec![2, 4],
        };
        let ids = Tensor::new(&[[0f32, 3.0], [1.0, 5.0]], &dev)?;
        let t = rope.forward(&ids, &dev)?;
        let cos = t.tables().0.to_vec2::<f32>()?;
        assert_eq!(cos[1][0], 1f32.cos());
        assert_eq!(cos[1][1], 5f32.cos());
        assert_eq!(cos[1][2], (5.0f64 / 100.0).cos() as f32);
        assert!(
            rope.forward(&Tensor::zeros((2, 3), DType::F32, &dev)?, &dev)
                .is_err()
        );
        Ok(())
    }
}
