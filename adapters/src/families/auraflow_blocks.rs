//! AuraFlow's blocks and embedders, with diffusers' parameter names: the MMDiT joint block
//! (`AuraFlowJointTransformerBlock`, Pattern_1, not cached upstream), the single-stream block
//! (`AuraFlowSingleTransformerBlock`, Pattern_3, the cached list), the patch embedding with
//! learned positions (`AuraFlowPatchEmbed`) and the final modulation (`AuraFlowPreFinalBlock`).
//!
//! Both blocks are built from the shared components with AuraFlow's knobs: no biases anywhere,
//! every LayerNorm (adaLN, `norm2`, q/k norms) without affine, eps 1e-5 and computed in f32,
//! a SwiGLU FFN with separate `linear_1`/`linear_2` projections. They share one per-stream
//! half ([`StreamHalf`]) that carries the AuraFlow residual quirk (families.md §1.25): the
//! attention output only feeds the FFN input, `h = x + g_mlp·ff(mod(norm2(x + g_msa·attn)))`,
//! it is never added to the residual stream itself.

use cachedit_macros::block_adapter;
use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::components::attention::{Attention, AttentionConfig, JointOrder, QkNorm};
use crate::components::ffn::{Activation, SplitGlu, SplitGluNames, swiglu_width};
use crate::components::linear;
use crate::components::modulation::{AdaLayerNormZero, ZeroMlpModulation, gated_residual, modulate};
use crate::components::norm::Norm;
use crate::components::patchify::pack_latents;

/// Epsilon of every AuraFlow LayerNorm (`nn.LayerNorm`'s default; diffusers passes none).
const NORM_EPS: f64 = 1e-5;

/// AuraFlow's attention: no biases, f32 LayerNorm q/k norms per head, `[txt, img]` joint order
/// (`added`: the joint block's text projections `add_{q,k,v}_proj`, `to_add_out`).
fn attention_config(dim: usize, heads: usize, head_dim: usize, added: bool) -> AttentionConfig {
    AttentionConfig {
        bias: false,
        out_bias: false,
        qk_norm: QkNorm::Fp32LayerNorm { eps: NORM_EPS },
        added_proj_bias: false,
        joint_order: JointOrder::TextFirst,
        ..AttentionConfig::flux(dim, heads, head_dim, added, false, NORM_EPS)
    }
}

/// One stream of an AuraFlow block: its adaLN-zero input norm, its `norm2` and its FFN, with
/// the residual quirk of diffusers' blocks.
#[derive(Debug, Clone)]
struct StreamHalf {
    norm1: AdaLayerNormZero,
    norm2: Norm,
    ff: SplitGlu,
}

impl StreamHalf {
    /// Loads `norm1` (`<norm1>.linear`) and `ff` (`<ff>.{linear_1,linear_2,out_projection}`).
    fn new(dim: usize, norm1: &str, ff: &str, vb: &VarBuilder) -> Result<Self> {
        Ok(Self {
            norm1: AdaLayerNormZero::new(dim, dim, false, NORM_EPS, vb.pp(norm1))?.with_f32_norm()?,
            norm2: Norm::layer_norm_no_affine(dim, NORM_EPS, vb.dtype(), vb.device())?.in_f32()?,
            ff: SplitGlu::new(
                dim,
                dim,
                swiglu_width(4 * dim, 256),
                Activation::SwiGlu,
                false,
                SplitGluNames::AURAFLOW,
                vb.pp(ff),
            )?,
        })
    }

    /// The attention input and the vectors for [`finish`](Self::finish).
    fn start(&self, x: &Tensor, temb: &Tensor) -> Result<(Tensor, ZeroMlpModulation)> {
        self.norm1.forward(x, temb)
    }

    /// `x + g_mlp · ff(norm2(x + g_msa · attn) · (1 + s_mlp) + b_mlp)`.
    fn finish(&self, x: &Tensor, attn: &Tensor, m: &ZeroMlpModulation) -> Result<Tensor> {
        let h = self.norm2.forward(&gated_residual(x, &m.gate_msa, attn)?)?;
        let h = modulate(&h, &m.shift_mlp, &m.scale_mlp)?;
        gated_residual(x, &m.gate_mlp, &self.ff.forward(&h)?)
    }
}

/// diffusers' `AuraFlowJointTransformerBlock`: the SD3-like MMDiT block over `[txt, img]`.
#[derive(Debug, Clone)]
pub struct AuraFlowJointTransformerBlock {
    image: StreamHalf,
    context: StreamHalf,
    attn: Attention,
}

impl AuraFlowJointTransformerBlock {
    /// Loads block `joint_transformer_blocks.{i}` from `vb`.
    pub fn new(dim: usize, heads: usize, head_dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            image: StreamHalf::new(dim, "norm1", "ff", &vb)?,
            context: StreamHalf::new(dim, "norm1_context", "ff_context", &vb)?,
            attn: Attention::new(attention_config(dim, heads, head_dim, true), vb.pp("attn"))?,
        })
    }
}

#[block_adapter(pattern = Pattern_1)]
impl AuraFlowJointTransformerBlock {
    /// Returns `(encoder_hidden_states, hidden_states)`, like diffusers.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        temb: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let (norm_h, m) = self.image.start(hidden_states, temb)?;
        let (norm_e, c) = self.context.start(encoder_hidden_states, temb)?;
        let (attn, ctx) = self.attn.forward(&norm_h, Some(&norm_e), None, None)?;
        let ctx = ctx.ok_or_else(|| candle_core::Error::msg("joint attention returned no text part"))?;
        let h = self.image.finish(hidden_states, &attn, &m)?;
        let e = self.context.finish(encoder_hidden_states, &ctx, &c)?;
        Ok((e, h))
    }
}

/// diffusers' `AuraFlowSingleTransformerBlock`: the same stream half with self-attention over
/// the concatenated `[txt, img]` sequence.
#[derive(Debug, Clone)]
pub struct AuraFlowSingleTransformerBlock {
    stream: StreamHalf,
    attn: Attention,
}

impl AuraFlowSingleTransformerBlock {
    /// Loads block `single_transformer_blocks.{i}` from `vb`.
    pub fn new(dim: usize, heads: usize, head_dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            stream: StreamHalf::new(dim, "norm1", "ff", &vb)?,
            attn: Attention::new(attention_config(dim, heads, head_dim, false), vb.pp("attn"))?,
        })
    }
}

#[block_adapter(pattern = Pattern_3)]
impl AuraFlowSingleTransformerBlock {
    /// The block on the concatenated sequence `(B, T + S, dim)`.
    pub fn forward(&self, hidden_states: &Tensor, temb: &Tensor) -> Result<Tensor> {
        let (norm_x, m) = self.stream.start(hidden_states, temb)?;
        let (attn, _) = self.attn.forward(&norm_x, None, None, None)?;
        self.stream.finish(hidden_states, &attn, &m)
    }
}

/// diffusers' `AuraFlowPatchEmbed`: a Linear over patches packed channel-major (`proj`), plus
/// learned positions (`pos_embed`, `(1, max, dim)`, read as a `√max × √max` grid) cropped
/// around the grid's centre.
#[derive(Debug, Clone)]
pub struct AuraFlowPatchEmbed {
    proj: Linear,
    pos_embed: Tensor,
    patch: usize,
    side: usize,
}

impl AuraFlowPatchEmbed {
    /// Loads `proj` and `pos_embed` from `vb` (`pos_embed`).
    pub fn new(in_channels: usize, patch: usize, dim: usize, max: usize, vb: VarBuilder) -> Result<Self> {
        let pos_embed = vb.get_with_hints(
            (1, max, dim),
            "pos_embed",
            candle_nn::Init::Randn {
                mean: 0.0,
                stdev: 0.1,
            },
        )?;
        Ok(Self {
            proj: linear(patch * patch * in_channels, dim, true, vb.pp("proj"))?,
            pos_embed,
            patch,
            side: max.isqrt(),
        })
    }

    /// The positions of a `gh × gw` patch grid: indices into `pos_embed`, row-major, of the
    /// `gh × gw` window whose top-left corner is `(side/2 - gh/2, side/2 - gw/2)`.
    fn positions(&self, gh: usize, gw: usize) -> Result<Vec<u32>> {
        let side = self.side;
        let (top, left) = match ((side / 2).checked_sub(gh / 2), (side / 2).checked_sub(gw / 2)) {
            (Some(t), Some(l)) if t + gh <= side && l + gw <= side => (t, l),
            _ => candle_core::bail!(
                "a {gh}x{gw} patch grid does not fit the {side}x{side} position grid \
                 (`pos_embed_max_size` {})",
                side * side
            ),
        };
        Ok((top..top + gh)
            .flat_map(|r| (left..left + gw).map(move |c| (r * side + c) as u32))
            .collect())
    }

    /// `(B, C, H, W)` latents → `(B, (H/p)·(W/p), dim)` tokens with their positions.
    pub fn forward(&self, latent: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = latent.dims4()?;
        let p = self.patch;
        let x = self.proj.forward(&pack_latents(latent, p)?)?;
        let idx = self.positions(h / p, w / p)?;
        let n = idx.len();
        let idx = Tensor::from_vec(idx, n, latent.device())?;
        x.broadcast_add(&self.pos_embed.index_select(&idx, 1)?.to_dtype(x.dtype())?)
    }
}

/// diffusers' `AuraFlowPreFinalBlock`: `x · (1 + scale) + shift` from `linear(SiLU(temb))`
/// (chunk order `scale, shift`), with no norm.
#[derive(Debug, Clone)]
pub struct AuraFlowPreFinalBlock {
    linear: Linear,
}

impl AuraFlowPreFinalBlock {
    /// Loads `linear` (no bias) from `vb`.
    pub fn new(dim: usize, cond_dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            linear: linear(cond_dim, 2 * dim, false, vb.pp("linear"))?,
        })
    }

    /// The modulated `x` `(B, S, dim)`.
    pub fn forward(&self, x: &Tensor, temb: &Tensor) -> Result<Tensor> {
        let emb = self
            .linear
            .forward(&candle_nn::ops::silu(temb)?.to_dtype(x.dtype())?)?;
        let c = emb.chunk(2, 1)?;
        modulate(x, &c[1], &c[0])
    }
}
