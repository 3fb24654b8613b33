//! AuraFlow's blocks and embedders, with diffusers' parameter names: the MMDiT joint block
//! (`AuraFlowJointTransformerBlock`, Pattern_1, not cached upstream), the single-stream block
//! (`AuraFlowSingleTransformerBlock`, Pattern_3, the cached list), the patch embedding with
//! learned positions (`AuraFlowPatchEmbed`) and the final modulation (`AuraFlowPreFinalBlock`).
//!
//! The joint block is design J and the single block J's image stream around a self-attention
//! ([`SelfAttentionStreamBlock`]), both with AuraFlow's knobs: no biases anywhere, every
//! LayerNorm (adaLN, `norm2`, q/k norms) without affine, eps 1e-5 and computed in f32, a SwiGLU
//! FFN with separate `linear_1`/`linear_2` projections, and the residual quirk of docs/families.md
//! §1.25: the attention output only feeds the FFN input, `h = x + g_mlp·ff(mod(norm2(x +
//! g_msa·attn)))`, it is never added to the residual stream itself.

use cachedit_macros::block_adapter;
use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::blocks::joint::{ClipF16, DualStreamJointBlock, JointBlockConfig, JointModulation};
use crate::blocks::stream::{SelfAttentionStreamBlock, StreamHalf, StreamNorm};
use crate::components::attention::{Attention, AttentionConfig, AttentionExtras, JointOrder, QkNorm};
use crate::components::ffn::{FfnKind, SplitGluNames, swiglu_width};
use crate::components::linear;
use crate::components::modulation::{ModSource, modulate};
use crate::components::patchify::pack_latents;

/// Epsilon of every AuraFlow LayerNorm (`nn.LayerNorm`'s default; diffusers passes none).
const NORM_EPS: f64 = 1e-5;

/// AuraFlow's FFN: `linear_1`/`linear_2`/`out_projection` SwiGLU, `find_multiple(2·4d/3, 256)`.
fn ffn(dim: usize) -> FfnKind {
    FfnKind::SplitGlu {
        names: SplitGluNames::AURAFLOW,
        inner: swiglu_width(4 * dim, 256),
    }
}

/// AuraFlow's design-J knobs (the joint block).
pub fn joint_block_config(dim: usize, heads: usize, head_dim: usize) -> JointBlockConfig {
    JointBlockConfig {
        qk_norm: QkNorm::Fp32LayerNorm { eps: NORM_EPS },
        qkv_bias: false,
        out_bias: false,
        norm: StreamNorm::Fp32LayerNorm { eps: NORM_EPS },
        modulation: JointModulation::AdaLnZero { bias: false },
        ff: ffn(dim),
        ff_context: ffn(dim),
        joint_order: JointOrder::TextFirst,
        clip_f16: ClipF16::None,
        attn_feeds_ffn_only: true,
        ..JointBlockConfig::flux(dim, heads, head_dim)
    }
}

/// diffusers' `AuraFlowJointTransformerBlock`: the SD3-like MMDiT block over `[txt, img]`.
#[derive(Debug, Clone)]
pub struct AuraFlowJointTransformerBlock {
    inner: DualStreamJointBlock,
}

impl AuraFlowJointTransformerBlock {
    /// Loads block `joint_transformer_blocks.{i}` from `vb`.
    pub fn new(dim: usize, heads: usize, head_dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            inner: DualStreamJointBlock::new(&joint_block_config(dim, heads, head_dim), vb)?,
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
        self.inner
            .forward(hidden_states, encoder_hidden_states, temb, None, None)
    }
}

/// diffusers' `AuraFlowSingleTransformerBlock`: the joint block's image stream with
/// self-attention over the concatenated `[txt, img]` sequence.
#[derive(Debug, Clone)]
pub struct AuraFlowSingleTransformerBlock {
    inner: SelfAttentionStreamBlock,
}

impl AuraFlowSingleTransformerBlock {
    /// Loads block `single_transformer_blocks.{i}` from `vb`.
    pub fn new(dim: usize, heads: usize, head_dim: usize, vb: VarBuilder) -> Result<Self> {
        let knobs = joint_block_config(dim, heads, head_dim);
        let attn = AttentionConfig {
            query_dim: dim,
            bias: false,
            out_bias: false,
            qk_norm: knobs.qk_norm,
            ..AttentionConfig::flux(dim, heads, head_dim, false, false, NORM_EPS)
        };
        Ok(Self {
            inner: SelfAttentionStreamBlock::new(
                ModSource::linear(dim, 6, dim, false, vb.pp("norm1.linear"))?,
                StreamHalf::new(dim, knobs.norm, Some(knobs.ff), vb.pp("ff"))?,
                Attention::new(attn, vb.pp("attn"))?,
                true,
            ),
        })
    }
}

#[block_adapter(pattern = Pattern_3)]
impl AuraFlowSingleTransformerBlock {
    /// The block on the concatenated sequence `(B, T + S, dim)`.
    pub fn forward(&self, hidden_states: &Tensor, temb: &Tensor) -> Result<Tensor> {
        self.inner
            .forward(hidden_states, temb, None, AttentionExtras::default())
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
