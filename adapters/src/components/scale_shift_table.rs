//! adaLN-single modulation (PixArt-α's "TablePlusTemb"): the model computes one `timestep`
//! projection `(B, 6·D)` per call, and every block adds its own learned `scale_shift_table`
//! `(6, D)` to it before chunking into `shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp,
//! gate_mlp`. PixArt, Sana, Allegro, LTX, Wan and SkyReelsV2 use it, with the temb shapes below.

use candle_core::{DType, Result, Tensor};
use candle_nn::{Init, VarBuilder};

/// The six modulation vectors of a sequential adaLN block, each broadcastable against the
/// stream `(B, S, D)`: `(B, 1, D)` for one vector per sample, `(B, S, D)` per token.
#[derive(Debug, Clone)]
pub struct Modulation6 {
    /// Shift of the attention input.
    pub shift_msa: Tensor,
    /// Scale of the attention input.
    pub scale_msa: Tensor,
    /// Gate of the attention branch.
    pub gate_msa: Tensor,
    /// Shift of the FFN input.
    pub shift_mlp: Tensor,
    /// Scale of the FFN input.
    pub scale_mlp: Tensor,
    /// Gate of the FFN branch.
    pub gate_mlp: Tensor,
}

impl Modulation6 {
    /// The six vectors from a tensor whose axis `axis` has the six chunks in diffusers' order,
    /// each chunk squeezed to a `(B, 1|S, D)` vector.
    fn from_chunks(t: &Tensor, axis: usize) -> Result<Self> {
        let c = t.chunk(6, axis)?;
        let squeeze = |x: &Tensor| -> Result<Tensor> {
            let x = x.squeeze(axis)?;
            if x.rank() == 2 { x.unsqueeze(1) } else { Ok(x) }
        };
        let [a, b, g, d, e, f] = <[Tensor; 6]>::try_from(c)
            .map_err(|_| candle_core::Error::msg("modulation: expected 6 chunks"))?;
        Ok(Self {
            shift_msa: squeeze(&a)?,
            scale_msa: squeeze(&b)?,
            gate_msa: squeeze(&g)?,
            shift_mlp: squeeze(&d)?,
            scale_mlp: squeeze(&e)?,
            gate_mlp: squeeze(&f)?,
        })
    }
}

/// How the checkpoint stores the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableShape {
    /// `(6, D)`: `BasicTransformerBlock` (PixArt, Allegro, LTX, Sana).
    Flat,
    /// `(1, 6, D)`: Wan, SkyReelsV2.
    Batched,
}

/// A block's `scale_shift_table`, added to the model's timestep projection.
#[derive(Debug, Clone)]
pub struct ScaleShiftTable {
    /// `(6, D)` whatever the stored shape.
    table: Tensor,
    dim: usize,
}

impl ScaleShiftTable {
    /// Loads `scale_shift_table` from `vb` (the block's own prefix).
    pub fn new(dim: usize, shape: TableShape, vb: VarBuilder) -> Result<Self> {
        let init = Init::Randn {
            mean: 0.0,
            stdev: 1.0 / (dim.max(1) as f64).sqrt(),
        };
        let table = match shape {
            TableShape::Flat => vb.get_with_hints((6, dim), "scale_shift_table", init)?,
            TableShape::Batched => vb
                .get_with_hints((1, 6, dim), "scale_shift_table", init)?
                .squeeze(0)?,
        };
        Ok(Self { table, dim })
    }

    /// `table + temb`, chunked. `temb` is the model's projection in one of the shapes the
    /// families pass: `(B, 6·D)` (PixArt, Sana, Allegro), `(B, 6, D)` (Wan 2.1), `(B, S, 6, D)`
    /// (per-token timesteps: Wan 2.2 TI2V). With `dtype` the sum is formed in that dtype (Wan
    /// adds in f32 whatever the model's dtype).
    pub fn forward(&self, temb: &Tensor, dtype: Option<DType>) -> Result<Modulation6> {
        let cast = |t: &Tensor| match dtype {
            Some(d) => t.to_dtype(d),
            None => Ok(t.clone()),
        };
        let (table, temb) = (cast(&self.table)?, cast(temb)?);
        match temb.dims() {
            &[b, six_d] if six_d == 6 * self.dim => {
                let sum = temb
                    .reshape((b, 6, self.dim))?
                    .broadcast_add(&table.unsqueeze(0)?)?;
                Modulation6::from_chunks(&sum, 1)
            }
            &[_, 6, d] if d == self.dim => {
                Modulation6::from_chunks(&temb.broadcast_add(&table.unsqueeze(0)?)?, 1)
            }
            &[_, _, 6, d] if d == self.dim => {
                let table = table.unsqueeze(0)?.unsqueeze(0)?;
                Modulation6::from_chunks(&temb.broadcast_add(&table)?, 2)
            }
            other => candle_core::bail!(
                "scale_shift_table: temb has shape {other:?}; expected (B, {}), (B, 6, {d}) or (B, S, 6, {d})",
                6 * self.dim,
                d = self.dim
            ),
        }
    }
}

/// `x * (1 + scale) + shift` with `shift`, `scale` broadcastable against `x` (`(B, 1, D)` or
/// `(B, S, D)`).
pub fn modulate_broadcast(x: &Tensor, shift: &Tensor, scale: &Tensor) -> Result<Tensor> {
    x.broadcast_mul(&(scale + 1.0)?)?.broadcast_add(shift)
}

/// `x + y * gate` with `gate` broadcastable against `y`.
pub fn gated_residual_broadcast(x: &Tensor, gate: &Tensor, y: &Tensor) -> Result<Tensor> {
    x + y.broadcast_mul(gate)?
}
