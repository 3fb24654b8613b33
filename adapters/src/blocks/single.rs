//! Design S: the parallel single-stream block. `x = adaLN3(LN(seq))`; `attn(x)` (no output
//! projection) ‖ `act(proj_mlp(x))`; `seq += gate · proj_out(cat(attn, mlp))`.
//!
//! Families: Flux, VisualCloze, Bria, Chroma (external 3-vector modulation, pre-concatenated
//! input, pairwise mask), HunyuanVideo (`[img, txt]`, rotary on the image part, joint padding
//! mask).

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::components::attention::{Attention, AttentionConfig, JointOrder, QkNorm};
use crate::components::ffn::Activation;
use crate::components::linear;
use crate::components::modulation::{ModLayout, ModSource, gated_residual, modulate};
use crate::components::norm::Norm;
use crate::components::rope::RotaryEmbedding;

/// The knobs of a parallel single-stream block.
#[derive(Debug, Clone, PartialEq)]
pub struct SingleBlockConfig {
    /// Width of the stream.
    pub dim: usize,
    /// Attention heads.
    pub heads: usize,
    /// Channels per head.
    pub head_dim: usize,
    /// q/k normalisation.
    pub qk_norm: QkNorm,
    /// Epsilon of the LayerNorm (no affine).
    pub norm_eps: f64,
    /// Width of the MLP branch.
    pub mlp_hidden: usize,
    /// Activation of the MLP branch.
    pub mlp_activation: Activation,
    /// Where the text tokens go when the block concatenates the streams itself.
    pub concat_order: JointOrder,
    /// The modulation: an adaLN-zero-single Linear `norm.linear` (true), or `temb` is the
    /// `(B, 3, D)` stack `shift, scale, gate` handed in by the model (false: Chroma).
    pub ada_ln: bool,
}

impl SingleBlockConfig {
    /// FLUX.1's single block: RMS q/k norms (eps 1e-6), MLP ×4 GELU-tanh, `[txt, img]`.
    pub fn flux(dim: usize, heads: usize, head_dim: usize) -> Self {
        Self {
            dim,
            heads,
            head_dim,
            qk_norm: QkNorm::RmsNorm {
                eps: 1e-6,
                affine: true,
            },
            norm_eps: 1e-6,
            mlp_hidden: 4 * dim,
            mlp_activation: Activation::GeluTanh,
            concat_order: JointOrder::TextFirst,
            ada_ln: true,
        }
    }
}

/// A parallel single-stream block with diffusers' `FluxSingleTransformerBlock` names: `norm`,
/// `proj_mlp`, `attn` (`to_q/k/v`, `norm_q/k`), `proj_out`.
#[derive(Debug, Clone)]
pub struct ParallelSingleStreamBlock {
    modulation: ModSource,
    norm: Norm,
    proj_mlp: Linear,
    mlp_activation: Activation,
    attn: Attention,
    proj_out: Linear,
    concat_order: JointOrder,
}

impl ParallelSingleStreamBlock {
    /// Loads the block from `vb`.
    pub fn new(cfg: &SingleBlockConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.dim;
        let attn_cfg = AttentionConfig {
            qk_norm: cfg.qk_norm,
            ..AttentionConfig::flux(d, cfg.heads, cfg.head_dim, false, true, 1e-6)
        };
        Ok(Self {
            modulation: if cfg.ada_ln {
                ModSource::linear(d, ModLayout::Single3.len(), d, true, vb.pp("norm").pp("linear"))?
            } else {
                ModSource::Vectors
            },
            norm: Norm::layer_norm_no_affine(d, cfg.norm_eps, vb.dtype(), vb.device())?,
            proj_mlp: linear(d, cfg.mlp_hidden, true, vb.pp("proj_mlp"))?,
            mlp_activation: cfg.mlp_activation,
            attn: Attention::new(attn_cfg, vb.pp("attn"))?,
            proj_out: linear(
                cfg.heads * cfg.head_dim + cfg.mlp_hidden,
                d,
                true,
                vb.pp("proj_out"),
            )?,
            concat_order: cfg.concat_order,
        })
    }

    /// The block on an already concatenated sequence `(B, S, dim)`; `rotary` covers `S`.
    pub fn forward_sequence(
        &self,
        x: &Tensor,
        temb: &Tensor,
        rotary: Option<&RotaryEmbedding>,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let [shift, scale, gate] = <[Tensor; 3]>::try_from(self.modulation.vectors(temb, 3)?)
            .map_err(|_| candle_core::Error::msg("single block: expected 3 modulation vectors"))?;
        let norm_x = modulate(&self.norm.forward(x)?, &shift, &scale)?;
        let mlp = self.mlp_activation.apply(&self.proj_mlp.forward(&norm_x)?)?;
        let (attn, _) = self.attn.forward(&norm_x, None, rotary, mask)?;
        let y = self.proj_out.forward(&Tensor::cat(&[&attn, &mlp], D::Minus1)?)?;
        super::clip_f16(gated_residual(x, &gate, &y)?)
    }

    /// The two-stream form: concatenates text and image in `concat_order`, runs the block, and
    /// splits back. Returns `(encoder_hidden_states, hidden_states)` (Pattern_1 order).
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        temb: &Tensor,
        rotary: Option<&RotaryEmbedding>,
        mask: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let t = encoder_hidden_states.dim(1)?;
        let s = hidden_states.dim(1)?;
        let x = match self.concat_order {
            JointOrder::TextFirst => Tensor::cat(&[encoder_hidden_states, hidden_states], 1)?,
            JointOrder::ImageFirst => Tensor::cat(&[hidden_states, encoder_hidden_states], 1)?,
        };
        let y = self.forward_sequence(&x, temb, rotary, mask)?;
        match self.concat_order {
            JointOrder::TextFirst => Ok((y.narrow(1, 0, t)?, y.narrow(1, t, s)?)),
            JointOrder::ImageFirst => Ok((y.narrow(1, s, t)?, y.narrow(1, 0, s)?)),
        }
    }
}
