//! Wan 2.1 (`WanTransformer3DModel`): design D with Wan's knobs
//! ([`SequentialBlockConfig::wan`]), one cached list `blocks` (Pattern_2: the block takes the
//! text second and returns the video stream only), separate CFG calls (`WanPipeline` calls the
//! transformer once for the prompt and once for the negative prompt).
//!
//! Around the blocks: a Conv3d patch embedding (kernel = stride = `patch_size`, applied here as
//! a Linear over `(C, pt, ph, pw)` patches), the condition embedder (sinusoidal timestep →
//! `time_embedder` → `temb`; `time_proj(SiLU(temb))` → the blocks' `(B, 6, D)` modulation; the
//! text through `text_embedder`; I2V's CLIP tokens through `image_embedder`, placed before the
//! text), the 3-D rotary table (`d − 4⌊d/6⌋, 2⌊d/6⌋, 2⌊d/6⌋` channels over frames, rows,
//! columns, θ = 1e4, interleaved) and the output adaLN (`scale_shift_table` `(1, 2, D)` + `temb`)
//! before `proj_out` and the unpatchify. A `(B, S)` timestep (Wan 2.2 TI2V's per-token
//! timesteps) gives per-token modulation throughout.

use cachedit_macros::{CachedTransformer, block_adapter};
use cachedit_runtime::{BlockList, Streams};
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::blocks::sequential::{SequentialBlock, SequentialBlockConfig};
use crate::components::embeddings::{Mlp2, Timesteps};
use crate::components::ffn::{Activation, FeedForward};
use crate::components::linear;
use crate::components::norm::{Norm, NormKind};
use crate::components::rope::{RopeStyle, RotaryEmbedding, rotary_angles_1d};
use crate::loader::DiffusersConfig;
use crate::sample::VideoSampleShape;

/// The text length diffusers' I2V cross-attention assumes: the last 512 context tokens are the
/// text, anything before them the image context (`WanAttnProcessor`).
pub const I2V_TEXT_LEN: usize = 512;

/// The diffusers config of `WanTransformer3DModel`; defaults are diffusers' constructor
/// defaults (the 14B layout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Patch size over (frames, rows, columns).
    pub patch_size: [usize; 3],
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Channels per head.
    pub attention_head_dim: usize,
    /// Latent channels in (I2V: the noise plus the image condition).
    pub in_channels: usize,
    /// Latent channels out (`None`: `in_channels`).
    pub out_channels: Option<usize>,
    /// Width of the text-encoder states (UMT5-XXL: 4096).
    pub text_dim: usize,
    /// Sinusoidal channels of the timestep.
    pub freq_dim: usize,
    /// FFN inner width.
    pub ffn_dim: usize,
    /// Blocks.
    pub num_layers: usize,
    /// Whether the blocks have the affine `norm2` before the cross-attention.
    pub cross_attn_norm: bool,
    /// Kept for the config round trip: diffusers' `WanAttention` always normalises q/k with an
    /// RMSNorm across heads, whatever this says.
    pub qk_norm: Option<String>,
    /// Epsilon of the block and output norms.
    pub eps: f64,
    /// Width of the CLIP image tokens (I2V / FLF2V; `None`: text only).
    pub image_dim: Option<usize>,
    /// Width of the image context the cross-attention's `add_k_proj`/`add_v_proj` read.
    pub added_kv_proj_dim: Option<usize>,
    /// Positions of the rotary tables per axis.
    pub rope_max_seq_len: usize,
    /// Learned positions of the image tokens (FLF2V: two images' tokens).
    pub pos_embed_seq_len: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            patch_size: [1, 2, 2],
            num_attention_heads: 40,
            attention_head_dim: 128,
            in_channels: 16,
            out_channels: Some(16),
            text_dim: 4096,
            freq_dim: 256,
            ffn_dim: 13824,
            num_layers: 40,
            cross_attn_norm: true,
            qk_norm: Some("rms_norm_across_heads".into()),
            eps: 1e-6,
            image_dim: None,
            added_kv_proj_dim: None,
            rope_max_seq_len: 1024,
            pos_embed_seq_len: None,
        }
    }
}

impl Config {
    /// `Wan-AI/Wan2.1-T2V-1.3B-Diffusers`.
    pub fn t2v_1_3b() -> Self {
        Self {
            num_attention_heads: 12,
            ffn_dim: 8960,
            num_layers: 30,
            ..Self::default()
        }
    }

    /// `Wan-AI/Wan2.1-T2V-14B-Diffusers` (also each of Wan 2.2 A14B's two transformers).
    pub fn t2v_14b() -> Self {
        Self::default()
    }

    /// `Wan-AI/Wan2.1-I2V-14B-480P-Diffusers`: 36 input channels (noise + mask + image latent),
    /// CLIP image tokens of width 1280.
    pub fn i2v_14b() -> Self {
        Self {
            in_channels: 36,
            image_dim: Some(1280),
            added_kv_proj_dim: Some(5120),
            ..Self::default()
        }
    }

    /// The tiny config of diffusers' unit tests (`test_models_transformer_wan.py`).
    pub fn tiny() -> Self {
        Self {
            num_attention_heads: 2,
            attention_head_dim: 12,
            in_channels: 4,
            out_channels: Some(4),
            text_dim: 16,
            ffn_dim: 32,
            num_layers: 2,
            rope_max_seq_len: 32,
            ..Self::default()
        }
    }

    /// Width of the stream (`heads × head_dim`).
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Output channels (`out_channels` or `in_channels`).
    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    /// Rotary channels per head of the (frames, rows, columns) axes.
    pub fn rope_axes(&self) -> [usize; 3] {
        let hw = 2 * (self.attention_head_dim / 6);
        [self.attention_head_dim - 2 * hw, hw, hw]
    }

    /// The design-D knobs of this config's blocks.
    pub fn block_config(&self) -> SequentialBlockConfig {
        let cfg = SequentialBlockConfig::wan(
            self.inner_dim(),
            self.num_attention_heads,
            self.ffn_dim,
            self.cross_attn_norm,
            self.eps,
        );
        match self.added_kv_proj_dim {
            Some(dim) => cfg.with_image_context(dim, I2V_TEXT_LEN),
            None => cfg,
        }
    }
}

impl DiffusersConfig for Config {
    fn validate(&self) -> std::result::Result<(), String> {
        let positive = [
            ("num_attention_heads", self.num_attention_heads),
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels()),
            ("text_dim", self.text_dim),
            ("ffn_dim", self.ffn_dim),
            ("num_layers", self.num_layers),
            ("rope_max_seq_len", self.rope_max_seq_len),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("`{name}` must be positive"));
        }
        if self.patch_size.contains(&0) {
            return Err(format!("`patch_size` {:?} must be positive", self.patch_size));
        }
        if self.attention_head_dim < 6 || self.attention_head_dim % 2 == 1 {
            return Err("`attention_head_dim` must be even and at least 6 (three rotary axes)".into());
        }
        if self.freq_dim == 0 || self.freq_dim % 2 == 1 {
            return Err("`freq_dim` must be positive and even".into());
        }
        match (self.image_dim, self.added_kv_proj_dim) {
            (Some(_), Some(kv)) if kv != self.inner_dim() => Err(format!(
                "`added_kv_proj_dim` {kv} must equal the stream width {} (the image embedder's output)",
                self.inner_dim()
            )),
            (Some(_), None) | (None, Some(_)) => {
                Err("`image_dim` and `added_kv_proj_dim` are set together (I2V) or not at all".into())
            }
            _ if self.pos_embed_seq_len.is_some() && self.image_dim.is_none() => {
                Err("`pos_embed_seq_len` needs `image_dim`".into())
            }
            _ => Ok(()),
        }
    }
}

/// diffusers' `WanTransformerBlock`: design D with Wan's knobs.
#[derive(Debug, Clone)]
pub struct WanTransformerBlock {
    inner: SequentialBlock,
}

impl WanTransformerBlock {
    /// Loads the block from `vb` (`blocks.{i}`).
    pub fn new(cfg: &SequentialBlockConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            inner: SequentialBlock::new(cfg, vb)?,
        })
    }
}

#[block_adapter(pattern = Pattern_2)]
impl WanTransformerBlock {
    /// diffusers' signature: the video tokens `(B, S, D)`, the context `(B, T, D)` (already
    /// projected; I2V: image tokens first), `temb` `(B, 6, D)` or `(B, S, 6, D)` and the rotary
    /// table of the self-attention. Returns the video tokens.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        temb: &Tensor,
        rotary_emb: Option<&RotaryEmbedding>,
    ) -> Result<Tensor> {
        self.inner.forward(
            hidden_states,
            Some(encoder_hidden_states),
            temb,
            rotary_emb,
            None,
            None,
        )
    }
}

/// diffusers' `WanImageEmbedding`: FP32 LayerNorm → GELU MLP (`ff`) → FP32 LayerNorm over the
/// CLIP image tokens, with learned positions first when `pos_embed_seq_len` is set (FLF2V).
#[derive(Debug, Clone)]
pub struct WanImageEmbedding {
    norm1: Norm,
    ff: FeedForward,
    norm2: Norm,
    pos_embed: Option<Tensor>,
}

impl WanImageEmbedding {
    /// Loads the embedder from `vb` (`condition_embedder.image_embedder`).
    pub fn new(in_dim: usize, out_dim: usize, pos_len: Option<usize>, vb: VarBuilder) -> Result<Self> {
        let ln = |dim, vb| {
            Norm::new(
                NormKind::LayerNorm {
                    affine: true,
                    bias: true,
                },
                dim,
                1e-5,
                vb,
            )?
            .in_f32()
        };
        Ok(Self {
            norm1: ln(in_dim, vb.pp("norm1"))?,
            ff: FeedForward::new(in_dim, out_dim, in_dim, Activation::Gelu, true, vb.pp("ff"))?,
            norm2: ln(out_dim, vb.pp("norm2"))?,
            pos_embed: pos_len.map(|n| vb.get((1, n, in_dim), "pos_embed")).transpose()?,
        })
    }

    /// `(B, N, image_dim)` → `(B', N', D)` (with positions: pairs of samples joined, as diffusers
    /// views the batch).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = match &self.pos_embed {
            Some(pos) => {
                let (b, n, d) = x.dims3()?;
                if b % 2 == 1 || 2 * n != pos.dim(1)? {
                    candle_core::bail!(
                        "encoder_hidden_states_image {:?}: the learned positions cover pairs of {} tokens",
                        x.dims(),
                        pos.dim(1)? / 2
                    );
                }
                x.reshape((b / 2, 2 * n, d))?.broadcast_add(pos)?
            }
            None => x.clone(),
        };
        self.norm2.forward(&self.ff.forward(&self.norm1.forward(&x)?)?)
    }
}

/// What the condition embedder gives the blocks and the head.
#[derive(Debug, Clone)]
pub struct WanConditioning {
    /// `temb` `(B, D)` or `(B, S, D)`: the head's modulation input.
    pub temb: Tensor,
    /// `timestep_proj` `(B, 6, D)` or `(B, S, 6, D)`: the blocks' modulation.
    pub timestep_proj: Tensor,
    /// The context the cross-attention reads: `[image tokens, text]`, projected to `D`.
    pub context: Tensor,
}

/// diffusers' `WanTransformer3DModel`.
#[derive(Debug, CachedTransformer)]
#[cached(cfg = Separate)]
pub struct WanTransformer3DModel {
    cfg: Config,
    dtype: DType,
    patch_embedding: Linear,
    timesteps_proj: Timesteps,
    time_embedder: Mlp2,
    time_proj: Linear,
    text_embedder: Mlp2,
    image_embedder: Option<WanImageEmbedding>,
    blocks: BlockList<WanTransformerBlock>,
    norm_out: Norm,
    proj_out: Linear,
    scale_shift_table: Tensor,
    sample: VideoSampleShape,
}

impl WanTransformer3DModel {
    /// Builds the model from `vb` (diffusers names at the root of `vb`).
    pub fn new(cfg: Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::msg)?;
        let d = cfg.inner_dim();
        let [pt, ph, pw] = cfg.patch_size;
        let patch = cfg.in_channels * pt * ph * pw;
        let conv = vb.pp("patch_embedding");
        let w = conv.get((d, cfg.in_channels, pt, ph, pw), "weight")?;
        let ce = vb.pp("condition_embedder");
        let block_cfg = cfg.block_config();
        let blocks = (0..cfg.num_layers)
            .map(|i| WanTransformerBlock::new(&block_cfg, vb.pp("blocks").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let image_embedder = match cfg.image_dim {
            Some(image_dim) => Some(WanImageEmbedding::new(
                image_dim,
                d,
                cfg.pos_embed_seq_len,
                ce.pp("image_embedder"),
            )?),
            None => None,
        };
        let table_init = candle_nn::Init::Randn {
            mean: 0.0,
            stdev: 1.0 / (d as f64).sqrt(),
        };
        Ok(Self {
            dtype: vb.dtype(),
            patch_embedding: Linear::new(w.reshape((d, patch))?, Some(conv.get(d, "bias")?)),
            timesteps_proj: Timesteps {
                num_channels: cfg.freq_dim,
                flip_sin_to_cos: true,
                downscale_freq_shift: 0.0,
                scale: 1.0,
            },
            time_embedder: Mlp2::silu(cfg.freq_dim, d, d, ce.pp("time_embedder"))?,
            time_proj: linear(d, 6 * d, true, ce.pp("time_proj"))?,
            text_embedder: Mlp2::gelu_tanh(cfg.text_dim, d, d, ce.pp("text_embedder"))?,
            image_embedder,
            blocks: BlockList::new(blocks),
            norm_out: Norm::layer_norm_no_affine(d, cfg.eps, DType::F32, vb.device())?.in_f32()?,
            proj_out: linear(d, cfg.out_channels() * pt * ph * pw, true, vb.pp("proj_out"))?,
            scale_shift_table: vb.get_with_hints((1, 2, d), "scale_shift_table", table_init)?,
            sample: VideoSampleShape {
                frames: 21,
                height: 60,
                width: 104,
                text_len: I2V_TEXT_LEN,
            },
            cfg,
        })
    }

    /// The condition embedder (`WanTimeTextImageEmbedding`) and the context of the
    /// cross-attention: `timestep` `(B,)` or per token `(B, S)` on the 0-1000 scale,
    /// `encoder_hidden_states` `(B, T, text_dim)`, `encoder_hidden_states_image` `(B, N,
    /// image_dim)` for I2V models.
    pub fn conditioning(
        &self,
        timestep: &Tensor,
        encoder_hidden_states: &Tensor,
        encoder_hidden_states_image: Option<&Tensor>,
    ) -> Result<WanConditioning> {
        let per_token = match timestep.dims() {
            [_] => None,
            [b, s] => Some((*b, *s)),
            other => candle_core::bail!("timestep has shape {other:?}; expected (B,) or (B, S)"),
        };
        let t = self.timesteps_proj.forward(&timestep.flatten_all()?)?;
        let t = match per_token {
            Some((b, s)) => t.reshape((b, s, self.cfg.freq_dim))?,
            None => t,
        };
        let temb = self.time_embedder.forward(&t.to_dtype(self.dtype)?)?;
        let proj = self.time_proj.forward(&candle_nn::ops::silu(&temb)?)?;
        let d = self.cfg.inner_dim();
        let timestep_proj = match per_token {
            Some((b, s)) => proj.reshape((b, s, 6, d))?,
            None => proj.reshape(((), 6, d))?,
        };
        let text = self
            .text_embedder
            .forward(&encoder_hidden_states.to_dtype(self.dtype)?)?;
        let context = match (&self.image_embedder, encoder_hidden_states_image) {
            (Some(embedder), Some(image)) => {
                let image = embedder.forward(&image.to_dtype(self.dtype)?)?;
                Tensor::cat(&[&image, &text], 1)?
            }
            (None, None) => text,
            (Some(_), None) => {
                candle_core::bail!("this I2V Wan model needs `encoder_hidden_states_image`")
            }
            (None, Some(_)) => candle_core::bail!(
                "`encoder_hidden_states_image` given to a Wan model without an image embedder \
                 (`image_dim` is not set)"
            ),
        };
        Ok(WanConditioning {
            temb,
            timestep_proj,
            context,
        })
    }

    /// `WanRotaryPosEmbed` for a `frames × rows × columns` patch grid: half-width interleaved
    /// tables `(F·H·W, head_dim / 2)`, the frame, row and column angles side by side.
    pub fn rotary(
        &self,
        frames: usize,
        rows: usize,
        cols: usize,
        device: &candle_core::Device,
    ) -> Result<RotaryEmbedding> {
        let max = self.cfg.rope_max_seq_len;
        if frames.max(rows).max(cols) > max {
            candle_core::bail!(
                "a {frames}x{rows}x{cols} patch grid exceeds the rotary tables' {max} positions \
                 per axis (`rope_max_seq_len`)"
            );
        }
        let axes = self.cfg.rope_axes();
        let tables: Vec<(Vec<f32>, Vec<f32>)> = [frames, rows, cols]
            .iter()
            .zip(axes)
            .map(|(&n, dim)| rotary_angles_1d(dim, &(0..n).map(|p| p as f64).collect::<Vec<_>>(), 1e4))
            .collect();
        let half = self.cfg.attention_head_dim / 2;
        let s = frames * rows * cols;
        let (mut cos, mut sin) = (Vec::with_capacity(s * half), Vec::with_capacity(s * half));
        for f in 0..frames {
            for r in 0..rows {
                for c in 0..cols {
                    for ((tc, ts), (pos, dim)) in tables.iter().zip([f, r, c].into_iter().zip(axes)) {
                        let row = pos * dim / 2..(pos + 1) * dim / 2;
                        cos.extend_from_slice(&tc[row.clone()]);
                        sin.extend_from_slice(&ts[row]);
                    }
                }
            }
        }
        RotaryEmbedding::new(
            Tensor::from_vec(cos, (s, half), device)?,
            Tensor::from_vec(sin, (s, half), device)?,
            RopeStyle::Interleaved,
        )
    }

    /// The transformer: `hidden_states` `(B, C, F, H, W)`, `timestep` `(B,)` or `(B, S)` (0-1000
    /// scale, as the pipeline passes it), `encoder_hidden_states` `(B, T, text_dim)` and, for
    /// I2V models, `encoder_hidden_states_image`. Returns `(B, out_channels, F, H, W)`.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        timestep: &Tensor,
        encoder_hidden_states: &Tensor,
        encoder_hidden_states_image: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (_, _, f, h, w) = hidden_states.dims5()?;
        let [pt, ph, pw] = self.cfg.patch_size;
        let hidden = self.embed_patches(hidden_states)?;
        let rotary = self.rotary(f / pt, h / ph, w / pw, hidden_states.device())?;
        let cond = self.conditioning(timestep, encoder_hidden_states, encoder_hidden_states_image)?;
        let s = self.blocks.forward(
            Streams::new(hidden, cond.context.clone()),
            &WanTransformerBlockArgs {
                temb: &cond.timestep_proj,
                rotary_emb: Some(&rotary),
            },
        )?;
        let out = self.head(&s.hidden, &cond.temb)?;
        self.unpatchify(&out, hidden_states.dims())
    }

    /// The patch embedding (`patch_embedding`, a Conv3d with kernel = stride = `patch_size`):
    /// `(B, C, F, H, W)` → `(B, F'·H'·W', D)`, tokens in (frame, row, column) order.
    pub fn embed_patches(&self, hidden_states: &Tensor) -> Result<Tensor> {
        let (b, c, f, h, w) = hidden_states.dims5()?;
        let [pt, ph, pw] = self.cfg.patch_size;
        if c != self.cfg.in_channels || f % pt != 0 || h % ph != 0 || w % pw != 0 {
            candle_core::bail!(
                "hidden_states {:?}: expected {} channels and F, H, W divisible by {:?}",
                hidden_states.dims(),
                self.cfg.in_channels,
                self.cfg.patch_size
            );
        }
        let (gf, gh, gw) = (f / pt, h / ph, w / pw);
        let tokens = hidden_states
            .to_dtype(self.dtype)?
            .reshape(vec![b, c, gf, pt, gh, ph, gw, pw])?
            .permute([0, 2, 4, 6, 1, 3, 5, 7])?
            .reshape((b, gf * gh * gw, c * pt * ph * pw))?;
        self.patch_embedding.forward(&tokens)
    }

    /// The head's `(B, S, patch · out)` tokens back to `(B, out_channels, F, H, W)`, where
    /// `input_dims` are the dims of the transformer's `hidden_states`.
    pub fn unpatchify(&self, out: &Tensor, input_dims: &[usize]) -> Result<Tensor> {
        let &[b, _, f, h, w] = input_dims else {
            candle_core::bail!("unpatchify: input dims {input_dims:?} are not (B, C, F, H, W)");
        };
        let [pt, ph, pw] = self.cfg.patch_size;
        let oc = self.cfg.out_channels();
        out.reshape(vec![b, f / pt, h / ph, w / pw, pt, ph, pw, oc])?
            .permute([0, 7, 1, 4, 2, 5, 3, 6])?
            .reshape((b, oc, f, h, w))
    }

    /// The output adaLN and projection: `norm_out(h)·(1 + scale) + shift` in f32 with
    /// `(shift, scale)` = `scale_shift_table + temb`, then `proj_out` → `(B, S, patch · out)`.
    pub fn head(&self, hidden: &Tensor, temb: &Tensor) -> Result<Tensor> {
        let table = self.scale_shift_table.to_dtype(DType::F32)?;
        let temb = temb.to_dtype(DType::F32)?;
        // (B, 1, D) per sample or (B, S, D) per token, against the (1, 2, D) table.
        let mods = match temb.rank() {
            2 => table.broadcast_add(&temb.unsqueeze(1)?)?.unsqueeze(1)?,
            _ => table.unsqueeze(0)?.broadcast_add(&temb.unsqueeze(2)?)?,
        };
        let shift = mods.narrow(2, 0, 1)?.squeeze(2)?;
        let scale = mods.narrow(2, 1, 1)?.squeeze(2)?;
        let x = self
            .norm_out
            .forward(&hidden.to_dtype(DType::F32)?)?
            .broadcast_mul(&(scale + 1.0)?)?
            .broadcast_add(&shift)?;
        self.proj_out.forward(&x.to_dtype(hidden.dtype())?)
    }
}

crate::family_model!(
    WanTransformer3DModel,
    config = Config,
    sample = VideoSampleShape,
    tiny_sample = VideoSampleShape {
        frames: 2,
        height: 4,
        width: 6,
        text_len: 8,
    }
);

super::model_accessors!(WanTransformer3DModel, blocks: WanTransformerBlock);
