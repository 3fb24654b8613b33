//! AuraFlow (`AuraFlowTransformer2DModel`, fal's AuraFlow v0.1-0.3): MMDiT joint blocks over
//! `[txt, img]`, then single-stream blocks over the concatenated sequence. The text stream is
//! prefixed with 8 learned register tokens; positions are a learned table cropped around its
//! centre; there is no rotary embedding and no bias anywhere except the patch and timestep
//! embedders.
//!
//! As in cache-dit, only `single_transformer_blocks` is a cached list (Pattern_3); the joint
//! blocks run as a plain loop before it, and the text/image concatenation and split happen at
//! the list boundary (docs/families.md §3).

use cachedit_macros::CachedTransformer;
use cachedit_runtime::{BlockList, Conditioning, Denoiser, Streams};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::auraflow_blocks::{
    AuraFlowJointTransformerBlock, AuraFlowJointTransformerBlockArgs, AuraFlowPatchEmbed,
    AuraFlowPreFinalBlock, AuraFlowSingleTransformerBlock, AuraFlowSingleTransformerBlockArgs,
};
use crate::components::embeddings::{Mlp2, Timesteps};
use crate::components::linear;
use crate::loader::DiffusersConfig;
use crate::sample::SampleShape;
use crate::sample::synthetic_text;

/// Number of learned register tokens prepended to the text stream (fixed in diffusers).
pub const REGISTER_TOKENS: usize = 8;

/// The diffusers config of `AuraFlowTransformer2DModel`; defaults are diffusers' constructor
/// defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Latent size the model was trained at (the pipeline's default resolution / 8).
    pub sample_size: usize,
    /// Patch size.
    pub patch_size: usize,
    /// Latent channels in.
    pub in_channels: usize,
    /// Number of joint (MMDiT) blocks.
    pub num_mmdit_layers: usize,
    /// Number of single-stream blocks.
    pub num_single_dit_layers: usize,
    /// Channels per head.
    pub attention_head_dim: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Width of the text embeddings (Pile-T5-XL / UMT5: 2048).
    pub joint_attention_dim: usize,
    /// Width of the projected text stream (equals `heads × head_dim`).
    pub caption_projection_dim: usize,
    /// Latent channels out.
    pub out_channels: usize,
    /// Entries of the learned position table (a square number: the table is a grid).
    pub pos_embed_max_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            sample_size: 64,
            patch_size: 2,
            in_channels: 4,
            num_mmdit_layers: 4,
            num_single_dit_layers: 32,
            attention_head_dim: 256,
            num_attention_heads: 12,
            joint_attention_dim: 2048,
            caption_projection_dim: 3072,
            out_channels: 4,
            pos_embed_max_size: 1024,
        }
    }
}

impl Config {
    /// `fal/AuraFlow` (v0.1): diffusers' defaults with a 64×64 position grid.
    pub fn v0_1() -> Self {
        Self {
            pos_embed_max_size: 4096,
            ..Self::default()
        }
    }

    /// The tiny config of diffusers' unit tests (`test_models_transformer_aura_flow.py`).
    pub fn tiny() -> Self {
        Self {
            sample_size: 32,
            patch_size: 2,
            in_channels: 4,
            num_mmdit_layers: 1,
            num_single_dit_layers: 1,
            attention_head_dim: 8,
            num_attention_heads: 4,
            joint_attention_dim: 32,
            caption_projection_dim: 32,
            out_channels: 4,
            pos_embed_max_size: 256,
        }
    }

    /// Width of the transformer (`heads × head_dim`).
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }
}

impl DiffusersConfig for Config {
    fn validate(&self) -> std::result::Result<(), String> {
        let positive = [
            ("patch_size", self.patch_size),
            ("in_channels", self.in_channels),
            ("num_single_dit_layers", self.num_single_dit_layers),
            ("attention_head_dim", self.attention_head_dim),
            ("num_attention_heads", self.num_attention_heads),
            ("joint_attention_dim", self.joint_attention_dim),
            ("out_channels", self.out_channels),
            ("pos_embed_max_size", self.pos_embed_max_size),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("`{name}` must be positive"));
        }
        // diffusers builds the text projection with `caption_projection_dim` outputs but the
        // blocks with `heads × head_dim`: any other value fails at the first joint block.
        if self.caption_projection_dim != self.inner_dim() {
            return Err(format!(
                "`caption_projection_dim` {} must equal heads × head_dim {}",
                self.caption_projection_dim,
                self.inner_dim()
            ));
        }
        let side = self.pos_embed_max_size.isqrt();
        if side * side != self.pos_embed_max_size {
            return Err(format!(
                "`pos_embed_max_size` {} must be a square number (the positions form a grid)",
                self.pos_embed_max_size
            ));
        }
        Ok(())
    }
}

/// diffusers' `AuraFlowTransformer2DModel`: one cached list, `single_transformer_blocks`
/// (Pattern_3), with batched CFG (`AuraFlowPipeline` concatenates the two branches).
#[derive(Debug, CachedTransformer)]
#[cached(cfg = Batched)]
pub struct AuraFlowTransformer2DModel {
    cfg: Config,
    dtype: DType,
    pos_embed: AuraFlowPatchEmbed,
    context_embedder: Linear,
    time_step_embed: Timesteps,
    time_step_proj: Mlp2,
    /// Not cached by cache-dit: a plain loop before the cached list.
    #[cached(skip)]
    joint_transformer_blocks: BlockList<AuraFlowJointTransformerBlock>,
    single_transformer_blocks: BlockList<AuraFlowSingleTransformerBlock>,
    norm_out: AuraFlowPreFinalBlock,
    proj_out: Linear,
    register_tokens: Tensor,
    sample: SampleShape,
}

impl AuraFlowTransformer2DModel {
    /// Builds the model from `vb` (diffusers names at the root of `vb`).
    pub fn new(cfg: Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::msg)?;
        let (d, heads, head_dim) = (cfg.inner_dim(), cfg.num_attention_heads, cfg.attention_head_dim);
        let joint = (0..cfg.num_mmdit_layers)
            .map(|i| {
                AuraFlowJointTransformerBlock::new(
                    d,
                    heads,
                    head_dim,
                    vb.pp("joint_transformer_blocks").pp(i),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let single = (0..cfg.num_single_dit_layers)
            .map(|i| {
                AuraFlowSingleTransformerBlock::new(
                    d,
                    heads,
                    head_dim,
                    vb.pp("single_transformer_blocks").pp(i),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let p = cfg.patch_size;
        let register_tokens = vb.get_with_hints(
            (1, REGISTER_TOKENS, d),
            "register_tokens",
            candle_nn::Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        )?;
        Ok(Self {
            dtype: vb.dtype(),
            pos_embed: AuraFlowPatchEmbed::new(
                cfg.in_channels,
                p,
                d,
                cfg.pos_embed_max_size,
                vb.pp("pos_embed"),
            )?,
            context_embedder: linear(
                cfg.joint_attention_dim,
                cfg.caption_projection_dim,
                false,
                vb.pp("context_embedder"),
            )?,
            time_step_embed: Timesteps {
                num_channels: 256,
                flip_sin_to_cos: true,
                downscale_freq_shift: 0.0,
                scale: 1000.0,
            },
            time_step_proj: Mlp2::silu(256, d, d, vb.pp("time_step_proj"))?,
            joint_transformer_blocks: BlockList::new(joint),
            single_transformer_blocks: BlockList::new(single),
            norm_out: AuraFlowPreFinalBlock::new(d, d, vb.pp("norm_out"))?,
            proj_out: linear(d, p * p * cfg.out_channels, false, vb.pp("proj_out"))?,
            register_tokens,
            sample: SampleShape::default(),
            cfg,
        })
    }

    /// `temb` `(B, dim)` from `timestep` `(B,)` in `[0, 1]` (the embedder scales it by 1000).
    pub fn conditioning(&self, timestep: &Tensor) -> Result<Tensor> {
        let t = self.time_step_embed.forward(timestep)?.to_dtype(self.dtype)?;
        self.time_step_proj.forward(&t)
    }

    /// Everything before the cached list: patch and text embeddings, register tokens, the joint
    /// blocks, and the `[txt, img]` concatenation. Returns the sequence and the text length
    /// (register tokens included).
    pub fn prepare(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        temb: &Tensor,
    ) -> Result<(Tensor, usize)> {
        let hidden = self.pos_embed.forward(&hidden_states.to_dtype(self.dtype)?)?;
        let encoder = self
            .context_embedder
            .forward(&encoder_hidden_states.to_dtype(self.dtype)?)?;
        let b = encoder.dim(0)?;
        let registers = self.register_tokens.repeat((b, 1, 1))?;
        let encoder = Tensor::cat(&[&registers, &encoder], 1)?;
        let s = self.joint_transformer_blocks.forward(
            Streams::new(hidden, encoder),
            &AuraFlowJointTransformerBlockArgs { temb },
        )?;
        let encoder = s
            .encoder
            .ok_or_else(|| candle_core::Error::msg("the joint blocks returned no text stream"))?;
        let text_len = encoder.dim(1)?;
        Ok((Tensor::cat(&[&encoder, &s.hidden], 1)?, text_len))
    }

    /// Everything after the cached list: drops the text part of `seq`, applies the final
    /// modulation and projection, and unpatchifies to `(B, out_channels, h, w)`.
    pub fn finish(&self, seq: &Tensor, text_len: usize, temb: &Tensor, h: usize, w: usize) -> Result<Tensor> {
        let (b, n, _) = seq.dims3()?;
        let Some(image_len) = n.checked_sub(text_len) else {
            candle_core::bail!("a sequence of {n} tokens has no image part after {text_len} text tokens");
        };
        let hidden = seq.narrow(1, text_len, image_len)?;
        let out = self.proj_out.forward(&self.norm_out.forward(&hidden, temb)?)?;
        let (p, c) = (self.cfg.patch_size, self.cfg.out_channels);
        // (B, h·w, p·p·c) as (h, w, p, q, c) → (B, c, h·p, w·q)
        out.reshape((b, h / p, w / p, p, p, c))?
            .permute((0, 5, 1, 3, 2, 4))?
            .reshape((b, c, h, w))
    }

    /// The transformer: `hidden_states` `(B, C, H, W)` latents, `encoder_hidden_states`
    /// `(B, T, joint_attention_dim)`, `timestep` `(B,)` in `[0, 1]` (the pipeline divides the
    /// scheduler's timestep by 1000). Returns `(B, out_channels, H, W)`.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        timestep: &Tensor,
    ) -> Result<Tensor> {
        let (_, _, h, w) = hidden_states.dims4()?;
        let p = self.cfg.patch_size;
        if !h.is_multiple_of(p) || !w.is_multiple_of(p) {
            candle_core::bail!("latents {h}x{w} are not divisible into {p}x{p} patches");
        }
        let temb = self.conditioning(timestep)?;
        let (seq, text_len) = self.prepare(hidden_states, encoder_hidden_states, &temb)?;
        let seq = self.single_transformer_blocks.forward(
            Streams::hidden(seq),
            &AuraFlowSingleTransformerBlockArgs { temb: &temb },
        )?;
        self.finish(&seq.hidden, text_len, &temb, h, w)
    }
}

/// Conditioning tensor names AuraFlow's `predict` reads.
pub mod names {
    /// `(B, T, joint_attention_dim)` text embeddings (Pile-T5-XL / UMT5).
    pub const ENCODER_HIDDEN_STATES: &str = "encoder_hidden_states";
}

impl Denoiser for AuraFlowTransformer2DModel {
    fn latent_shape(&self, batch: usize) -> Vec<usize> {
        let (s, p) = (self.sample, self.cfg.patch_size);
        vec![batch, self.cfg.in_channels, s.grid_h * p, s.grid_w * p]
    }

    fn synthetic_conditioning(&self, batch: usize, seed: u64, device: &Device) -> Result<Conditioning> {
        let text = synthetic_text(
            batch,
            self.sample.text_len,
            self.cfg.joint_attention_dim,
            seed,
            device,
        )?;
        Ok(Conditioning::new().with(names::ENCODER_HIDDEN_STATES, text))
    }

    /// `timestep` in the flow-matching scheduler's scale (`σ · 1000`), divided by 1000 as
    /// `AuraFlowPipeline` does.
    fn predict(&self, latents: &Tensor, timestep: &Tensor, cond: &Conditioning) -> Result<Tensor> {
        let t = (timestep.to_dtype(DType::F32)? / 1000.0)?;
        self.forward(latents, cond.get(names::ENCODER_HIDDEN_STATES)?, &t)?
            .to_dtype(latents.dtype())
    }
}

crate::family_model!(AuraFlowTransformer2DModel, config = Config, sample = SampleShape);

super::model_accessors!(AuraFlowTransformer2DModel, joint_transformer_blocks: AuraFlowJointTransformerBlock, single_transformer_blocks: AuraFlowSingleTransformerBlock);
