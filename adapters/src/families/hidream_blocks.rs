//! HiDream-I1's blocks with diffusers' `HiDreamBlock` wrapper names (`*.block.*`): the
//! double-stream block is design J with one `adaLN_modulation` Linear for both streams
//! (Joint12), HiDream's projection names (`to_q`/`to_q_t`, …, `to_out`/`to_out_t`), RMS q/k
//! norms across heads, an image MoE FFN (`ff_i`) and a text SwiGLU (`ff_t`); the single-stream
//! block is J's image stream around a self-attention (6-chunk adaLN, MoE). Both multiply the
//! image keys by the padding mask of non-square latents.

use candle_core::{IndexOp, Result, Tensor};
use candle_nn::VarBuilder;

use crate::blocks::joint::{
    ClipF16, DualStreamJointBlock, JointBlockConfig, JointBlockNames, JointModulation,
};
use crate::blocks::stream::{SelfAttentionStreamBlock, StreamHalf};
use crate::components::attention::{
    Attention, AttentionConfig, AttentionExtras, AttentionNames, JointOrder, QkNorm,
};
use crate::components::ffn::{FfnKind, SplitGluNames, swiglu_width};
use crate::components::modulation::ModSource;
use crate::components::rope::RotaryEmbedding;

/// `HiDreamImageTransformerBlock`'s names under `double_stream_blocks.{i}.block`.
const NAMES: JointBlockNames = JointBlockNames {
    img_mod: "adaLN_modulation.1",
    img_mlp: "ff_i",
    txt_mlp: "ff_t",
    attn: "attn1",
    attn_names: AttentionNames::HIDREAM,
    ..JointBlockNames::FLUX
};

/// HiDream's design-J knobs for `dim` = `heads × head_dim`, `routed` experts (0: a plain
/// SwiGLU image FFN), `top_k` per token.
pub fn joint_block_config(heads: usize, head_dim: usize, routed: usize, top_k: usize) -> JointBlockConfig {
    let dim = heads * head_dim;
    JointBlockConfig {
        qk_norm: QkNorm::RmsAcrossHeads { eps: 1e-5 },
        modulation: JointModulation::Joint12,
        ff: FfnKind::Moe {
            hidden: 4 * dim,
            routed,
            top_k,
        },
        ff_context: FfnKind::SplitGlu {
            names: SplitGluNames::HIDREAM,
            inner: swiglu_width(4 * dim, 256),
        },
        joint_order: JointOrder::ImageFirst,
        names: NAMES,
        clip_f16: ClipF16::None,
        ..JointBlockConfig::flux(dim, heads, head_dim)
    }
}

/// diffusers' `HiDreamImageTransformerBlock` (under `double_stream_blocks.{i}.block`).
#[derive(Debug, Clone)]
pub struct HiDreamImageTransformerBlock {
    inner: DualStreamJointBlock,
}

impl HiDreamImageTransformerBlock {
    /// Loads the block from `vb` (`double_stream_blocks.{i}.block`).
    pub fn new(dim: usize, heads: usize, routed: usize, top_k: usize, vb: VarBuilder) -> Result<Self> {
        let knobs = joint_block_config(heads, dim / heads, routed, top_k);
        Ok(Self {
            inner: DualStreamJointBlock::new(&knobs, vb)?,
        })
    }

    /// Returns `(hidden_states, encoder_hidden_states)`, like diffusers' `HiDreamBlock`.
    /// `hidden_states_masks` `(B, S_img)` (non-square images) multiplies the image keys;
    /// `image_rotary_emb` covers `[img, txt]`.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        hidden_states_masks: Option<&Tensor>,
        encoder_hidden_states: &Tensor,
        temb: &Tensor,
        image_rotary_emb: Option<&RotaryEmbedding>,
    ) -> Result<(Tensor, Tensor)> {
        let extras = AttentionExtras {
            key_scale: hidden_states_masks,
            ..AttentionExtras::default()
        };
        let (e, h) = self.inner.forward_with(
            hidden_states,
            encoder_hidden_states,
            temb,
            image_rotary_emb,
            None,
            extras,
        )?;
        let e = e.ok_or_else(|| candle_core::Error::msg("the double block returned no text stream"))?;
        Ok((h, e))
    }
}

/// diffusers' `HiDreamImageSingleTransformerBlock` (under `single_stream_blocks.{i}.block`).
#[derive(Debug, Clone)]
pub struct HiDreamImageSingleTransformerBlock {
    inner: SelfAttentionStreamBlock,
}

impl HiDreamImageSingleTransformerBlock {
    /// Loads the block from `vb` (`single_stream_blocks.{i}.block`).
    pub fn new(dim: usize, heads: usize, routed: usize, top_k: usize, vb: VarBuilder) -> Result<Self> {
        let knobs = joint_block_config(heads, dim / heads, routed, top_k);
        let attn = AttentionConfig {
            qk_norm: knobs.qk_norm,
            names: AttentionNames::HIDREAM,
            ..AttentionConfig::flux(dim, heads, dim / heads, false, false, 1e-5)
        };
        Ok(Self {
            inner: SelfAttentionStreamBlock::new(
                ModSource::linear(dim, 6, dim, true, vb.pp(NAMES.img_mod))?,
                StreamHalf::new(dim, knobs.norm, Some(knobs.ff), vb.pp(NAMES.img_mlp))?,
                Attention::new(attn, vb.pp(NAMES.attn))?,
                false,
            ),
        })
    }

    /// The block on the whole sequence, like diffusers' `HiDreamBlock`; `hidden_states_masks`
    /// `(B, S)` multiplies the keys.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        hidden_states_masks: Option<&Tensor>,
        temb: &Tensor,
        image_rotary_emb: Option<&RotaryEmbedding>,
    ) -> Result<Tensor> {
        let extras = AttentionExtras {
            key_scale: hidden_states_masks,
            ..AttentionExtras::default()
        };
        self.inner.forward(hidden_states, temb, image_rotary_emb, extras)
    }
}

/// `x[:, ..len]` for `len` ≤ the sequence length.
pub(crate) fn truncate(x: &Tensor, len: usize) -> Result<Tensor> {
    x.i((.., ..len))
}
