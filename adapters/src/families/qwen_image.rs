//! QwenImage (`QwenImageTransformer2DModel`: Qwen-Image, Qwen-Image-Edit/-2509): Design J blocks
//! with diffusers' parameter names, the 3-axis complex rotary table with centred ("scale_rope")
//! image positions and text positions continuing after them, and the text padding mask.
//!
//! cache-dit caches one Pattern_1 list, `transformer_blocks`, with separate CFG calls.

use cachedit_macros::{CachedTransformer, block_adapter};
use cachedit_runtime::{BlockList, ForwardPattern, StaticBlockLists, Streams};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::blocks::joint::{DualStreamJointBlock, JointBlockConfig};
use crate::components::embeddings::{Mlp2, Timesteps};
use crate::components::linear;
use crate::components::modulation::AdaLayerNormContinuous;
use crate::components::norm::{Norm, NormKind};
use crate::components::rope::{RopeStyle, RotaryEmbedding, inverse_frequencies_f32};
use crate::loader::DiffusersConfig;
use crate::sample::{SampleShape, additive};

/// The diffusers config of `QwenImageTransformer2DModel` (`transformer/config.json`); defaults
/// are diffusers' constructor defaults (which are Qwen-Image's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Patch size of the packed latents (2: the pipeline packs 2×2 patches into channels).
    pub patch_size: usize,
    /// Channels of the input tokens (64 = 16 VAE channels × 2×2).
    pub in_channels: usize,
    /// VAE channels of the output (`None`: `in_channels`); the output tokens have
    /// `patch_size² · out_channels` channels.
    pub out_channels: Option<usize>,
    /// Number of dual-stream blocks.
    pub num_layers: usize,
    /// Channels per attention head.
    pub attention_head_dim: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Width of the text embeddings (Qwen2.5-VL-7B: 3584).
    pub joint_attention_dim: usize,
    /// Accepted for config compatibility; diffusers builds no guidance embedder for it (and its
    /// forward cannot take a guidance), so it changes nothing.
    pub guidance_embeds: bool,
    /// Rotary channels of the frame, row and column axes; they sum to `attention_head_dim`.
    pub axes_dims_rope: Vec<usize>,
    /// Written in the published Qwen-Image `config.json` (768) but not a constructor argument:
    /// diffusers ignores it, and so does this model (QwenImage has no pooled text input).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pooled_projection_dim: Option<usize>,
    /// Qwen-Image-Edit-2511's per-token modulation of reference images (not supported).
    pub zero_cond_t: bool,
    /// Qwen-Image-Layered's extra timestep embedding (not supported).
    pub use_additional_t_cond: bool,
    /// Qwen-Image-Layered's layered rotary table (not supported).
    pub use_layer3d_rope: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            patch_size: 2,
            in_channels: 64,
            out_channels: Some(16),
            num_layers: 60,
            attention_head_dim: 128,
            num_attention_heads: 24,
            joint_attention_dim: 3584,
            guidance_embeds: false,
            axes_dims_rope: vec![16, 56, 56],
            pooled_projection_dim: None,
            zero_cond_t: false,
            use_additional_t_cond: false,
            use_layer3d_rope: false,
        }
    }
}

impl Config {
    /// `Qwen/Qwen-Image` (and Qwen-Image-2512): 60 blocks, 24 heads × 128.
    pub fn qwen_image() -> Self {
        Self::default()
    }

    /// `Qwen/Qwen-Image-Edit` and `-Edit-2509`: the same transformer; the reference image's
    /// tokens follow the noise tokens with their own entry in `img_shapes`.
    pub fn qwen_image_edit() -> Self {
        Self::default()
    }

    /// The tiny config of diffusers' unit tests (`test_models_transformer_qwenimage.py`).
    pub fn tiny() -> Self {
        Self {
            patch_size: 2,
            in_channels: 16,
            out_channels: Some(4),
            num_layers: 2,
            attention_head_dim: 16,
            num_attention_heads: 4,
            joint_attention_dim: 16,
            guidance_embeds: false,
            axes_dims_rope: vec![8, 4, 4],
            ..Self::default()
        }
    }

    /// Width of the transformer (`heads × head_dim`).
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Output VAE channels (`out_channels`, or `in_channels` when unset).
    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    /// Channels of an output token (`patch_size² · out_channels`).
    pub fn out_token_channels(&self) -> usize {
        self.patch_size * self.patch_size * self.out_channels()
    }
}

impl DiffusersConfig for Config {
    const FIELDS: &'static [&'static str] = &[
        "patch_size",
        "in_channels",
        "out_channels",
        "num_layers",
        "attention_head_dim",
        "num_attention_heads",
        "joint_attention_dim",
        "guidance_embeds",
        "axes_dims_rope",
        "pooled_projection_dim",
        "zero_cond_t",
        "use_additional_t_cond",
        "use_layer3d_rope",
    ];

    fn validate(&self) -> std::result::Result<(), String> {
        let positive = [
            ("patch_size", self.patch_size),
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels()),
            ("attention_head_dim", self.attention_head_dim),
            ("num_attention_heads", self.num_attention_heads),
            ("joint_attention_dim", self.joint_attention_dim),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("`{name}` must be positive"));
        }
        // Checked: a value near usize::MAX from config.json would wrap (or panic) in a plain sum.
        let sum = self
            .axes_dims_rope
            .iter()
            .try_fold(0usize, |a, &d| a.checked_add(d));
        if self.axes_dims_rope.len() != 3
            || sum != Some(self.attention_head_dim)
            || self.axes_dims_rope.iter().any(|d| d % 2 == 1)
        {
            return Err(format!(
                "`axes_dims_rope` {:?} must be three even sizes summing to `attention_head_dim` {}",
                self.axes_dims_rope, self.attention_head_dim
            ));
        }
        let unsupported = [
            ("zero_cond_t", self.zero_cond_t),
            ("use_additional_t_cond", self.use_additional_t_cond),
            ("use_layer3d_rope", self.use_layer3d_rope),
        ];
        if let Some((name, _)) = unsupported.iter().find(|(_, on)| *on) {
            return Err(format!(
                "`{name}: true` (Qwen-Image-Edit-2511 / Qwen-Image-Layered) is not supported yet"
            ));
        }
        Ok(())
    }
}

/// diffusers' `QwenEmbedRope(theta, axes_dim, scale_rope)`: one rotary table for the image
/// tokens (frame, row, column axes) and one for the text tokens (the same position on all
/// three axes, continuing after the largest image position), each from torch's f32 tables of
/// positions `-4096..4096`.
#[derive(Debug, Clone, PartialEq)]
pub struct QwenEmbedRope {
    /// Frequency base (10 000).
    pub theta: f32,
    /// Channels of the frame, row and column axes.
    pub axes_dim: [usize; 3],
    /// Centre the row/column positions on 0 (`-⌈h/2⌉..⌊h/2⌋`), as every QwenImage model does.
    pub scale_rope: bool,
}

impl QwenEmbedRope {
    /// Positions the precomputed diffusers tables hold on each side of 0.
    pub const MAX_POSITIONS: usize = 4096;

    fn table(&self, positions: &[[i64; 3]], device: &Device) -> Result<RotaryEmbedding> {
        let inv: Vec<Vec<f32>> = self
            .axes_dim
            .iter()
            .map(|&d| inverse_frequencies_f32(d, self.theta))
            .collect();
        let half: usize = self.axes_dim.iter().map(|d| d / 2).sum();
        let mut cos = Vec::with_capacity(positions.len() * half);
        let mut sin = Vec::with_capacity(positions.len() * half);
        for row in positions {
            for (axis, freqs) in inv.iter().enumerate() {
                // Integer positions are exact in f32 at these magnitudes; the product is
                // rounded once, as torch's f32 `outer` does.
                let p = row[axis] as f32;
                for &f in freqs {
                    let a = p * f;
                    cos.push(a.cos());
                    sin.push(a.sin());
                }
            }
        }
        let n = positions.len();
        RotaryEmbedding::new(
            Tensor::from_vec(cos, (n, half), device)?,
            Tensor::from_vec(sin, (n, half), device)?,
            RopeStyle::Interleaved,
        )
    }

    /// The `(image, text)` tables for the images `img_shapes` (`(frames, rows, columns)` in
    /// patches, one entry per image of a sample: the generated one, then references) and
    /// `text_len` text tokens.
    pub fn forward(
        &self,
        img_shapes: &[(usize, usize, usize)],
        text_len: usize,
        device: &Device,
    ) -> Result<(RotaryEmbedding, RotaryEmbedding)> {
        let max = Self::MAX_POSITIONS;
        let mut img = Vec::new();
        let mut max_vid_index = 0;
        for (idx, &(frames, h, w)) in img_shapes.iter().enumerate() {
            // With scale_rope, rows are `r - ⌈h/2⌉`: diffusers concatenates the last ⌈h/2⌉
            // negative positions with the first ⌊h/2⌋ non-negative ones.
            let (h0, w0) = if self.scale_rope {
                (h - h / 2, w - w / 2)
            } else {
                (0, 0)
            };
            if idx + frames > max || h0.max(h - h0) > max || w0.max(w - w0) > max {
                candle_core::bail!(
                    "image {idx} of {frames}x{h}x{w} patches exceeds the rotary table's {max} positions"
                );
            }
            for f in 0..frames {
                for r in 0..h {
                    for c in 0..w {
                        img.push([(idx + f) as i64, r as i64 - h0 as i64, c as i64 - w0 as i64]);
                    }
                }
            }
            let extent = if self.scale_rope {
                (h / 2).max(w / 2)
            } else {
                h.max(w)
            };
            max_vid_index = max_vid_index.max(extent);
        }
        if max_vid_index + text_len > max {
            candle_core::bail!(
                "{text_len} text tokens after image position {max_vid_index} exceed the rotary table's {max} positions"
            );
        }
        let txt: Vec<[i64; 3]> = (max_vid_index..max_vid_index + text_len)
            .map(|p| [p as i64; 3])
            .collect();
        Ok((self.table(&img, device)?, self.table(&txt, device)?))
    }
}

/// The table of the joint `[txt, img]` sequence: diffusers rotates each stream with its own
/// table before concatenating, which is the same as rotating the concatenation with theirs.
pub fn joint_rotary(image: &RotaryEmbedding, text: &RotaryEmbedding) -> Result<RotaryEmbedding> {
    let ((ic, is), (tc, ts)) = (image.tables(), text.tables());
    RotaryEmbedding::new(
        Tensor::cat(&[tc, ic], 0)?,
        Tensor::cat(&[ts, is], 0)?,
        RopeStyle::Interleaved,
    )
}

/// The additive joint mask `(B, 1, 1, T + S)` of `QwenDoubleStreamAttnProcessor2_0`: the text
/// mask `(B, T)` (non-zero = valid, any pattern) followed by `S` always-valid image keys.
pub fn joint_attention_mask(text_mask: &Tensor, image_len: usize, dtype: DType) -> Result<Tensor> {
    let (b, t) = text_mask.dims2()?;
    let keep = Tensor::cat(
        &[
            &text_mask.to_dtype(DType::F32)?,
            &Tensor::ones((b, image_len), DType::F32, text_mask.device())?,
        ],
        1,
    )?;
    additive(&keep, dtype)?.reshape((b, 1, 1, t + image_len))
}

/// diffusers' `QwenImageTransformerBlock`: Design J with QwenImage's names (`img_mod.1`,
/// `txt_mod.1`, `attn`, `img_mlp`, `txt_mlp`).
#[derive(Debug, Clone)]
pub struct QwenImageTransformerBlock {
    inner: DualStreamJointBlock,
}

impl QwenImageTransformerBlock {
    /// Loads the block from `vb` (`transformer_blocks.{i}`).
    pub fn new(dim: usize, heads: usize, head_dim: usize, vb: VarBuilder) -> Result<Self> {
        let cfg = JointBlockConfig::qwen_image(dim, heads, head_dim);
        Ok(Self {
            inner: DualStreamJointBlock::new(&cfg, vb)?,
        })
    }
}

#[block_adapter(pattern = Pattern_1)]
impl QwenImageTransformerBlock {
    /// Returns `(encoder_hidden_states, hidden_states)`, like diffusers. `attention_mask` is
    /// the additive joint mask of [`joint_attention_mask`] (diffusers builds it inside the
    /// attention from `encoder_hidden_states_mask`); `image_rotary_emb` is the joint table of
    /// [`joint_rotary`].
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        attention_mask: Option<&Tensor>,
        temb: &Tensor,
        image_rotary_emb: Option<&RotaryEmbedding>,
    ) -> Result<(Tensor, Tensor)> {
        self.inner.forward(
            hidden_states,
            encoder_hidden_states,
            temb,
            image_rotary_emb,
            attention_mask,
        )
    }
}

/// diffusers' `QwenImageTransformer2DModel` (without the Edit-2511 / Layered options).
#[derive(Debug, CachedTransformer)]
#[cached(cfg = Separate)]
pub struct QwenImageTransformer2DModel {
    cfg: Config,
    dtype: DType,
    pos_embed: QwenEmbedRope,
    time_proj: Timesteps,
    timestep_embedder: Mlp2,
    txt_norm: Norm,
    img_in: Linear,
    txt_in: Linear,
    transformer_blocks: BlockList<QwenImageTransformerBlock>,
    norm_out: AdaLayerNormContinuous,
    proj_out: Linear,
    sample: SampleShape,
}

impl QwenImageTransformer2DModel {
    /// Builds the model from `vb` (diffusers names at the root of `vb`).
    pub fn new(cfg: Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::msg)?;
        let d = cfg.inner_dim();
        let (heads, head_dim) = (cfg.num_attention_heads, cfg.attention_head_dim);
        let blocks = (0..cfg.num_layers)
            .map(|i| QwenImageTransformerBlock::new(d, heads, head_dim, vb.pp("transformer_blocks").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let axes = &cfg.axes_dims_rope;
        Ok(Self {
            dtype: vb.dtype(),
            pos_embed: QwenEmbedRope {
                theta: 10000.0,
                axes_dim: [axes[0], axes[1], axes[2]],
                scale_rope: true,
            },
            time_proj: Timesteps {
                num_channels: 256,
                flip_sin_to_cos: true,
                downscale_freq_shift: 0.0,
                scale: 1000.0,
            },
            timestep_embedder: Mlp2::silu(256, d, d, vb.pp("time_text_embed.timestep_embedder"))?,
            txt_norm: Norm::new(
                NormKind::RmsNorm { affine: true },
                cfg.joint_attention_dim,
                1e-6,
                vb.pp("txt_norm"),
            )?,
            img_in: linear(cfg.in_channels, d, true, vb.pp("img_in"))?,
            txt_in: linear(cfg.joint_attention_dim, d, true, vb.pp("txt_in"))?,
            transformer_blocks: BlockList::new(blocks),
            norm_out: AdaLayerNormContinuous::new(
                d,
                d,
                NormKind::LayerNorm {
                    affine: false,
                    bias: false,
                },
                1e-6,
                true,
                vb.pp("norm_out"),
            )?,
            proj_out: linear(d, cfg.out_token_channels(), true, vb.pp("proj_out"))?,
            sample: SampleShape::default(),
            cfg,
        })
    }

    /// The `(image, text)` rotary tables (`pos_embed`) for `img_shapes` and `text_len` tokens.
    pub fn rotary_embeddings(
        &self,
        img_shapes: &[(usize, usize, usize)],
        text_len: usize,
        device: &Device,
    ) -> Result<(RotaryEmbedding, RotaryEmbedding)> {
        self.pos_embed.forward(img_shapes, text_len, device)
    }

    /// `temb` `(B, inner_dim)` from `timestep` `(B,)` in `[0, 1]` (the pipeline divides the
    /// scheduler's timestep by 1000; `time_proj` scales it back by 1000). The timestep is cast
    /// to the model dtype first, as diffusers does.
    pub fn conditioning(&self, timestep: &Tensor) -> Result<Tensor> {
        let proj = self.time_proj.forward(&timestep.to_dtype(self.dtype)?)?;
        self.timestep_embedder.forward(&proj.to_dtype(self.dtype)?)
    }

    /// The block inputs: `(hidden, encoder, temb)` after `img_in`, `txt_norm` + `txt_in` and the
    /// timestep embedder.
    pub fn embed(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        timestep: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let hidden = self.img_in.forward(&hidden_states.to_dtype(self.dtype)?)?;
        let text = self
            .txt_norm
            .forward(&encoder_hidden_states.to_dtype(self.dtype)?)?;
        Ok((hidden, self.txt_in.forward(&text)?, self.conditioning(timestep)?))
    }

    /// The output head: `proj_out(norm_out(hidden, temb))`.
    pub fn head(&self, hidden: &Tensor, temb: &Tensor) -> Result<Tensor> {
        self.proj_out.forward(&self.norm_out.forward(hidden, temb)?)
    }

    /// The transformer: `hidden_states` `(B, S, in_channels)` packed latents,
    /// `encoder_hidden_states` `(B, T, joint_attention_dim)`, `encoder_hidden_states_mask`
    /// `(B, T)` (non-zero = valid token, any pattern), `timestep` `(B,)` in `[0, 1]`,
    /// `img_shapes` the `(frames, rows, columns)` of each image in the sequence (the same for
    /// every sample, as diffusers assumes). Returns `(B, S, patch_size²·out_channels)`.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        encoder_hidden_states_mask: Option<&Tensor>,
        timestep: &Tensor,
        img_shapes: &[(usize, usize, usize)],
    ) -> Result<Tensor> {
        let (hidden, encoder, temb) = self.embed(hidden_states, encoder_hidden_states, timestep)?;
        let (b, s, _) = hidden.dims3()?;
        let t = encoder.dim(1)?;
        let tokens: usize = img_shapes.iter().map(|(f, h, w)| f * h * w).sum();
        if tokens != s {
            candle_core::bail!(
                "`img_shapes` {img_shapes:?} describe {tokens} image tokens but the latents have {s}"
            );
        }
        let mask = match encoder_hidden_states_mask {
            Some(m) if m.dims() != [b, t] => candle_core::bail!(
                "`encoder_hidden_states_mask` {:?} must be (batch, text tokens) = ({b}, {t})",
                m.dims()
            ),
            Some(m) => Some(joint_attention_mask(m, s, self.dtype)?),
            None => None,
        };
        let (img_rope, txt_rope) = self.rotary_embeddings(img_shapes, t, hidden.device())?;
        let rotary = joint_rotary(&img_rope, &txt_rope)?;
        let args = QwenImageTransformerBlockArgs {
            attention_mask: mask.as_ref(),
            temb: &temb,
            image_rotary_emb: Some(&rotary),
        };
        let out = self
            .transformer_blocks
            .forward(Streams::new(hidden, encoder), &args)?;
        self.head(&out.hidden, &temb)
    }
}

/// One Pattern_1 list, `transformer_blocks`, as in cache-dit.
impl StaticBlockLists for QwenImageTransformer2DModel {
    const BLOCK_LISTS: &'static [(&'static str, ForwardPattern)] =
        &[("transformer_blocks", ForwardPattern::Pattern_1)];
}

crate::family_model!(QwenImageTransformer2DModel, config = Config, sample = SampleShape);

super::model_accessors!(QwenImageTransformer2DModel, transformer_blocks: QwenImageTransformerBlock);
