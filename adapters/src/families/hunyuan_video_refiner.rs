//! HunyuanVideo's text path before the cached blocks (`context_embedder`,
//! `HunyuanVideoTokenRefiner`): masked mean pooling → timestep + pooled-text embedding,
//! `proj_in`, then pre-LN self-attention blocks gated by `HunyuanVideoAdaNorm`.

use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::components::attention::{Attention, AttentionConfig, AttentionNames, JointOrder, QkNorm};
use crate::components::embeddings::CombinedTimestepTextProj;
use crate::components::ffn::{Activation, FeedForward};
use crate::components::linear;
use crate::components::norm::{Norm, NormKind};
use crate::sample::additive;

/// diffusers' `HunyuanVideoIndividualTokenRefinerBlock`.
#[derive(Debug, Clone)]
pub struct TokenRefinerBlock {
    norm1: Norm,
    attn: Attention,
    norm2: Norm,
    ff: FeedForward,
    norm_out: Linear,
}

impl TokenRefinerBlock {
    /// Loads the block from `vb` (`token_refiner.refiner_blocks.{i}`).
    pub fn new(heads: usize, head_dim: usize, mlp_ratio: f64, vb: VarBuilder) -> Result<Self> {
        let d = heads * head_dim;
        let ln = |name: &str| {
            Norm::new(
                NormKind::LayerNorm {
                    affine: true,
                    bias: true,
                },
                d,
                1e-6,
                vb.pp(name),
            )
        };
        let attn_cfg = AttentionConfig {
            query_dim: d,
            heads,
            head_dim,
            bias: true,
            out_bias: true,
            qk_norm: QkNorm::None,
            added_kv_proj_dim: None,
            added_proj_bias: true,
            pre_only: false,
            context_pre_only: false,
            fused_qkv: false,
            joint_order: JointOrder::TextFirst,
            names: AttentionNames::DIFFUSERS,
        };
        let inner = (d as f64 * mlp_ratio) as usize;
        Ok(Self {
            norm1: ln("norm1")?,
            attn: Attention::new(attn_cfg, vb.pp("attn"))?,
            norm2: ln("norm2")?,
            ff: FeedForward::new(d, d, inner, Activation::LinearSilu, true, vb.pp("ff"))?,
            norm_out: linear(d, 2 * d, true, vb.pp("norm_out").pp("linear"))?,
        })
    }

    /// One block; `mask` is additive `(B, 1, T, T)`.
    pub fn forward(&self, x: &Tensor, temb: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (attn, _) = self.attn.forward(&self.norm1.forward(x)?, None, None, mask)?;
        let gates = self
            .norm_out
            .forward(&candle_nn::ops::silu(temb)?)?
            .unsqueeze(1)?;
        let d = x.dim(D::Minus1)?;
        let (gate_msa, gate_mlp) = (gates.narrow(2, 0, d)?, gates.narrow(2, d, d)?);
        let x = (x + attn.broadcast_mul(&gate_msa)?)?;
        let ff = self.ff.forward(&self.norm2.forward(&x)?)?;
        x + ff.broadcast_mul(&gate_mlp)?
    }
}

/// diffusers' `HunyuanVideoTokenRefiner` (the model's `context_embedder`).
#[derive(Debug, Clone)]
pub struct HunyuanVideoTokenRefiner {
    time_text_embed: CombinedTimestepTextProj,
    proj_in: Linear,
    blocks: Vec<TokenRefinerBlock>,
}

impl HunyuanVideoTokenRefiner {
    /// Loads the refiner from `vb` (`context_embedder`).
    pub fn new(
        in_channels: usize,
        heads: usize,
        head_dim: usize,
        layers: usize,
        mlp_ratio: f64,
        vb: VarBuilder,
    ) -> Result<Self> {
        let d = heads * head_dim;
        Ok(Self {
            time_text_embed: CombinedTimestepTextProj::new(
                d,
                Some(in_channels),
                false,
                vb.pp("time_text_embed"),
            )?,
            proj_in: linear(in_channels, d, true, vb.pp("proj_in"))?,
            blocks: (0..layers)
                .map(|i| {
                    TokenRefinerBlock::new(
                        heads,
                        head_dim,
                        mlp_ratio,
                        vb.pp("token_refiner").pp("refiner_blocks").pp(i),
                    )
                })
                .collect::<Result<_>>()?,
        })
    }

    /// Refines `text` `(B, T, in_channels)` at `timestep` `(B,)` (scheduler scale); `mask`
    /// `(B, T)` marks the valid prompt tokens (non-zero) or is `None` (all valid).
    pub fn forward(&self, text: &Tensor, timestep: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let dtype = text.dtype();
        let (b, t, _) = text.dims3()?;
        let (pooled, self_mask) = match mask {
            None => (text.mean(1)?, None),
            Some(m) => {
                let m = m.to_dtype(DType::F32)?.ne(0f32)?.to_dtype(DType::F32)?;
                let mf = m.unsqueeze(2)?;
                let pooled = text
                    .to_dtype(DType::F32)?
                    .broadcast_mul(&mf)?
                    .sum(1)?
                    .broadcast_div(&mf.sum(1)?)?
                    .to_dtype(dtype)?;
                // keep(i, j) = m_i · m_j, and every query keeps key 0
                let pair = m
                    .reshape((b, 1, 1, t))?
                    .broadcast_mul(&m.reshape((b, 1, t, 1))?)?;
                let first = Tensor::cat(
                    &[
                        Tensor::ones((b, 1, t, 1), DType::F32, text.device())?,
                        Tensor::zeros((b, 1, t, t - 1), DType::F32, text.device())?,
                    ],
                    3,
                )?;
                (pooled, Some(additive(&pair.maximum(&first)?, dtype)?))
            }
        };
        let temb = self
            .time_text_embed
            .forward(timestep, None, Some(&pooled), dtype)?;
        let mut x = self.proj_in.forward(text)?;
        for block in &self.blocks {
            x = block.forward(&x, &temb, self_mask.as_ref())?;
        }
        Ok(x)
    }
}
