//! HiDream-I1 (`HiDreamImageTransformer2DModel`): double-stream blocks, then single-stream
//! blocks on `[img, txt]`; every block reads a *different* projected Llama-3.1 hidden layer.
//! That loop-body logic (cache-dit's `HiDreamPatchFunctor`) moves into patch functors: a double
//! block runs on `cat(initial_text, llama[i])` and keeps the first `len(initial_text)` text
//! tokens (Pattern_0); a single block runs on `cat(seq, llama[n_double + i])` and truncates
//! back (Pattern_3).

use cachedit_macros::{CachedTransformer, patch_functor};
use cachedit_runtime::{BlockList, Streams};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::hidream_blocks::{HiDreamImageSingleTransformerBlock, HiDreamImageTransformerBlock, truncate};
use crate::components::embeddings::{Mlp2, Timesteps};
use crate::components::linear;
use crate::components::norm::Norm;
use crate::components::rope::{MultiAxisRope, RotaryEmbedding};
use crate::loader::DiffusersConfig;

/// The diffusers config of `HiDreamImageTransformer2DModel`; defaults are HiDream-I1's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Patch size.
    pub patch_size: usize,
    /// Latent channels in.
    pub in_channels: usize,
    /// Latent channels out (default `in_channels`).
    pub out_channels: Option<usize>,
    /// Double-stream blocks.
    pub num_layers: usize,
    /// Single-stream blocks.
    pub num_single_layers: usize,
    /// Channels per head.
    pub attention_head_dim: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// `[t5_dim, llama_dim]`.
    pub caption_channels: Vec<usize>,
    /// Width of the pooled CLIP-L/G embedding.
    pub text_emb_dim: usize,
    /// Routed experts of the image MoE (0: a plain SwiGLU).
    pub num_routed_experts: usize,
    /// Experts per token.
    pub num_activated_experts: usize,
    /// Rotary channels per position axis; they sum to `attention_head_dim`.
    pub axes_dims_rope: Vec<usize>,
    /// Largest latent `(h, w)`: non-square latents are padded to `h·w / p²` tokens.
    pub max_resolution: Vec<usize>,
    /// Which Llama hidden layer each block reads (one per block, doubles then singles).
    pub llama_layers: Vec<usize>,
    /// Inference routing also in training mode (no effect here).
    pub force_inference_output: bool,
}

impl Default for Config {
    /// HiDream-I1 (Full/Dev/Fast share the architecture). `llama_layers` as in the published
    /// config, layers 0..=31 then 31 repeated up to 48 entries (*unverified* here).
    fn default() -> Self {
        let mut llama_layers: Vec<usize> = (0..32).collect();
        llama_layers.resize(48, 31);
        Self {
            patch_size: 2,
            in_channels: 16,
            out_channels: Some(16),
            num_layers: 16,
            num_single_layers: 32,
            attention_head_dim: 128,
            num_attention_heads: 20,
            caption_channels: vec![4096, 4096],
            text_emb_dim: 2048,
            num_routed_experts: 4,
            num_activated_experts: 2,
            axes_dims_rope: vec![64, 32, 32],
            max_resolution: vec![128, 128],
            llama_layers,
            force_inference_output: false,
        }
    }
}

impl Config {
    /// `HiDream-ai/HiDream-I1-Full` (also Dev and Fast).
    pub fn i1() -> Self {
        Self::default()
    }

    /// The tiny config of diffusers' unit tests (`test_models_transformer_hidream.py`).
    pub fn tiny() -> Self {
        Self {
            patch_size: 2,
            in_channels: 4,
            out_channels: Some(4),
            num_layers: 1,
            num_single_layers: 1,
            attention_head_dim: 8,
            num_attention_heads: 4,
            caption_channels: vec![8, 4],
            text_emb_dim: 8,
            num_routed_experts: 2,
            num_activated_experts: 2,
            axes_dims_rope: vec![4, 2, 2],
            max_resolution: vec![32, 32],
            llama_layers: vec![0, 1],
            force_inference_output: true,
        }
    }

    /// Width of the transformer.
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    /// Image tokens of a padded (non-square) latent.
    pub fn max_seq(&self) -> usize {
        self.max_resolution.iter().product::<usize>() / (self.patch_size * self.patch_size)
    }
}

impl DiffusersConfig for Config {
    const FIELDS: &'static [&'static str] = &[
        "patch_size",
        "in_channels",
        "out_channels",
        "num_layers",
        "num_single_layers",
        "attention_head_dim",
        "num_attention_heads",
        "caption_channels",
        "text_emb_dim",
        "num_routed_experts",
        "num_activated_experts",
        "axes_dims_rope",
        "max_resolution",
        "llama_layers",
        "force_inference_output",
    ];

    fn validate(&self) -> std::result::Result<(), String> {
        if [
            self.patch_size,
            self.in_channels,
            self.out_channels(),
            self.num_attention_heads,
            self.text_emb_dim,
        ]
        .contains(&0)
        {
            return Err("sizes must be positive".into());
        }
        if self.caption_channels.len() != 2 || self.max_resolution.len() != 2 {
            return Err("`caption_channels` and `max_resolution` take two values".into());
        }
        if self.llama_layers.len() != self.num_layers + self.num_single_layers {
            return Err(format!(
                "`llama_layers` has {} entries, one per block ({}) needed",
                self.llama_layers.len(),
                self.num_layers + self.num_single_layers
            ));
        }
        if self.num_routed_experts > 0 && !(1..=self.num_routed_experts).contains(&self.num_activated_experts)
        {
            return Err("`num_activated_experts` must be in 1..=num_routed_experts".into());
        }
        // Checked: a value near usize::MAX from config.json would wrap (or panic) in a plain sum.
        let sum = self
            .axes_dims_rope
            .iter()
            .try_fold(0usize, |a, &d| a.checked_add(d));
        if sum != Some(self.attention_head_dim) || self.axes_dims_rope.iter().any(|d| d % 2 == 1) {
            return Err(format!(
                "`axes_dims_rope` {:?} must be even and sum to `attention_head_dim` {}",
                self.axes_dims_rope, self.attention_head_dim
            ));
        }
        Ok(())
    }
}

/// HiDream's double-block loop body: text = `cat(initial, llama[index])`, keep the first
/// `len(initial)` text tokens of the result.
#[allow(clippy::too_many_arguments)]
#[patch_functor(pattern = Pattern_0, wrapper = HiDreamDoubleBlock)]
pub fn hidream_double(
    block: &HiDreamImageTransformerBlock,
    hidden_states: &Tensor,
    encoder_hidden_states: &Tensor,
    #[block_index] index: usize,
    llama_states: &[Tensor],
    hidden_states_masks: Option<&Tensor>,
    temb: &Tensor,
    image_rotary_emb: Option<&RotaryEmbedding>,
) -> Result<(Tensor, Tensor)> {
    let llama = llama_states
        .get(index)
        .ok_or_else(|| candle_core::Error::msg(format!("no Llama states for double block {index}")))?;
    let text_len = encoder_hidden_states.dim(1)?;
    let context = Tensor::cat(&[encoder_hidden_states, llama], 1)?;
    let (hidden, context) = block.forward(
        hidden_states,
        hidden_states_masks,
        &context,
        temb,
        image_rotary_emb,
    )?;
    Ok((hidden, truncate(&context, text_len)?))
}

/// HiDream's single-block loop body: `cat(seq, llama[offset + index])`, then truncate back.
#[allow(clippy::too_many_arguments)]
#[patch_functor(pattern = Pattern_3, wrapper = HiDreamSingleBlock)]
pub fn hidream_single(
    block: &HiDreamImageSingleTransformerBlock,
    hidden_states: &Tensor,
    #[block_index] index: usize,
    llama_states: &[Tensor],
    offset: usize,
    hidden_states_masks: Option<&Tensor>,
    temb: &Tensor,
    image_rotary_emb: Option<&RotaryEmbedding>,
) -> Result<Tensor> {
    let llama = llama_states
        .get(offset + index)
        .ok_or_else(|| candle_core::Error::msg(format!("no Llama states for single block {index}")))?;
    let len = hidden_states.dim(1)?;
    let seq = Tensor::cat(&[hidden_states, llama], 1)?;
    truncate(
        &block.forward(&seq, hidden_states_masks, temb, image_rotary_emb)?,
        len,
    )
}

/// diffusers' `HiDreamImageTransformer2DModel`.
#[derive(Debug, CachedTransformer)]
#[cached(cfg = Batched)]
pub struct HiDreamImageTransformer2DModel {
    cfg: Config,
    dtype: DType,
    time_proj: Timesteps,
    t_embedder: Mlp2,
    p_embedder: Mlp2,
    x_embedder: Linear,
    pe_embedder: MultiAxisRope,
    double_stream_blocks: BlockList<HiDreamDoubleBlock>,
    single_stream_blocks: BlockList<HiDreamSingleBlock>,
    norm_final: Norm,
    final_modulation: Linear,
    final_linear: Linear,
    caption_projection: Vec<Linear>,
    sample: crate::sample::SampleShape,
}

impl HiDreamImageTransformer2DModel {
    /// Builds the model from `vb` (diffusers names at the root of `vb`).
    pub fn new(cfg: Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::msg)?;
        let (d, heads, p) = (cfg.inner_dim(), cfg.num_attention_heads, cfg.patch_size);
        let (routed, top_k) = (cfg.num_routed_experts, cfg.num_activated_experts);
        let double = (0..cfg.num_layers)
            .map(|i| {
                let vb = vb.pp("double_stream_blocks").pp(i).pp("block");
                HiDreamImageTransformerBlock::new(d, heads, routed, top_k, vb).map(HiDreamDoubleBlock)
            })
            .collect::<Result<Vec<_>>>()?;
        let single = (0..cfg.num_single_layers)
            .map(|i| {
                let vb = vb.pp("single_stream_blocks").pp(i).pp("block");
                HiDreamImageSingleTransformerBlock::new(d, heads, routed, top_k, vb).map(HiDreamSingleBlock)
            })
            .collect::<Result<Vec<_>>>()?;
        let n_blocks = cfg.num_layers + cfg.num_single_layers;
        let caption_projection = (0..=n_blocks)
            .map(|i| {
                let c = if i < n_blocks {
                    cfg.caption_channels[1]
                } else {
                    cfg.caption_channels[0]
                };
                linear(c, d, false, vb.pp("caption_projection").pp(i).pp("linear"))
            })
            .collect::<Result<Vec<_>>>()?;
        let fl = vb.pp("final_layer");
        Ok(Self {
            dtype: vb.dtype(),
            time_proj: Timesteps {
                num_channels: 256,
                flip_sin_to_cos: true,
                downscale_freq_shift: 0.0,
                scale: 1.0,
            },
            t_embedder: Mlp2::silu(256, d, d, vb.pp("t_embedder").pp("timestep_embedder"))?,
            p_embedder: Mlp2::silu(cfg.text_emb_dim, d, d, vb.pp("p_embedder").pp("pooled_embedder"))?,
            x_embedder: linear(cfg.in_channels * p * p, d, true, vb.pp("x_embedder").pp("proj"))?,
            pe_embedder: MultiAxisRope {
                theta: 10000.0,
                axes_dim: cfg.axes_dims_rope.clone(),
            },
            double_stream_blocks: BlockList::new(double),
            single_stream_blocks: BlockList::new(single),
            norm_final: Norm::layer_norm_no_affine(d, 1e-6, vb.dtype(), vb.device())?,
            final_modulation: linear(d, 2 * d, true, fl.pp("adaLN_modulation.1"))?,
            final_linear: linear(d, p * p * cfg.out_channels(), true, fl.pp("linear"))?,
            caption_projection,
            sample: Default::default(),
            cfg,
        })
    }

    /// The rotary table of `[img (padded), txt]`: image ids `(0, row, col)` (zeros for padding),
    /// text ids zero.
    pub fn rotary(
        &self,
        ph: usize,
        pw: usize,
        image_tokens: usize,
        text_len: usize,
        device: &Device,
    ) -> Result<RotaryEmbedding> {
        let mut ids = vec![0f32; (image_tokens + text_len) * 3];
        for r in 0..ph {
            for c in 0..pw {
                let t = r * pw + c;
                ids[t * 3 + 1] = r as f32;
                ids[t * 3 + 2] = c as f32;
            }
        }
        let ids = Tensor::from_vec(ids, (image_tokens + text_len, 3), device)?;
        self.pe_embedder.forward(&ids, device)
    }

    /// The transformer: `hidden_states` `(B, C, H, W)`, `timesteps` `(B,)` (scheduler scale),
    /// T5 states `(B, T5, caption_channels[0])`, Llama states `(L, B, Tl, caption_channels[1])`
    /// (all hidden layers; `llama_layers` picks one per block), `pooled_embeds`
    /// `(B, text_emb_dim)`. Non-square latents are padded to `max_seq` tokens with an image
    /// mask, as diffusers does. Returns `(B, out_channels, H, W)`.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        timesteps: &Tensor,
        encoder_hidden_states_t5: &Tensor,
        encoder_hidden_states_llama3: &Tensor,
        pooled_embeds: &Tensor,
    ) -> Result<Tensor> {
        let (b, c, h, w) = hidden_states.dims4()?;
        let p = self.cfg.patch_size;
        if !h.is_multiple_of(p) || !w.is_multiple_of(p) {
            candle_core::bail!("latents {h}x{w} are not divisible into {p}x{p} patches");
        }
        let (ph, pw) = (h / p, w / p);
        let n = ph * pw;
        let tokens = hidden_states
            .to_dtype(self.dtype)?
            .reshape((b, c, ph, p, pw, p))?
            .permute((0, 2, 4, 3, 5, 1))?
            .reshape((b, n, p * p * c))?;
        let (tokens, mask) = if h != w {
            let max_seq = self.cfg.max_seq();
            if n > max_seq {
                candle_core::bail!("{n} image tokens exceed `max_resolution` ({max_seq} tokens)");
            }
            let pad = Tensor::zeros((b, max_seq - n, p * p * c), tokens.dtype(), tokens.device())?;
            let ones = Tensor::ones((b, n), self.dtype, tokens.device())?;
            let zeros = Tensor::zeros((b, max_seq - n), self.dtype, tokens.device())?;
            (
                Tensor::cat(&[&tokens, &pad], 1)?,
                Some(Tensor::cat(&[ones, zeros], 1)?),
            )
        } else {
            (tokens, None)
        };
        let hidden = self.x_embedder.forward(&tokens)?;
        let image_tokens = hidden.dim(1)?;
        let t = self.time_proj.forward(timesteps)?.to_dtype(self.dtype)?;
        let temb = (self.t_embedder.forward(&t)?
            + self.p_embedder.forward(&pooled_embeds.to_dtype(self.dtype)?)?)?;

        let n_blocks = self.cfg.llama_layers.len();
        let llama = self
            .cfg
            .llama_layers
            .iter()
            .enumerate()
            .map(|(i, &k)| {
                let layers = encoder_hidden_states_llama3.dim(0)?;
                if k >= layers {
                    candle_core::bail!("`llama_layers` asks for layer {k} of {layers}");
                }
                let x = encoder_hidden_states_llama3.get(k)?.to_dtype(self.dtype)?;
                self.caption_projection[i].forward(&x)
            })
            .collect::<Result<Vec<_>>>()?;
        let t5 =
            self.caption_projection[n_blocks].forward(&encoder_hidden_states_t5.to_dtype(self.dtype)?)?;
        let last_llama = &llama[n_blocks - 1];
        let initial = Tensor::cat(&[&t5, last_llama], 1)?;
        let text_len = initial.dim(1)? + llama[0].dim(1)?;
        let rotary = self.rotary(ph, pw, image_tokens, text_len, hidden.device())?;

        let s = self.double_stream_blocks.forward(
            Streams::new(hidden, initial),
            &HiDreamDoubleBlockArgs {
                llama_states: &llama,
                hidden_states_masks: mask.as_ref(),
                temb: &temb,
                image_rotary_emb: Some(&rotary),
            },
        )?;
        let initial = s
            .encoder
            .ok_or_else(|| candle_core::Error::msg("the double blocks returned no text stream"))?;
        let seq = Tensor::cat(&[&s.hidden, &initial], 1)?;
        let single_mask = match &mask {
            Some(m) => {
                let ones = Tensor::ones((b, text_len), m.dtype(), m.device())?;
                Some(Tensor::cat(&[m, &ones], 1)?)
            }
            None => None,
        };
        let seq = self.single_stream_blocks.forward(
            Streams::hidden(seq),
            &HiDreamSingleBlockArgs {
                llama_states: &llama,
                offset: self.cfg.num_layers,
                hidden_states_masks: single_mask.as_ref(),
                temb: &temb,
                image_rotary_emb: Some(&rotary),
            },
        )?;
        let x = truncate(&seq.hidden, n)?;
        let m = self
            .final_modulation
            .forward(&candle_nn::ops::silu(&temb)?)?
            .unsqueeze(1)?
            .chunk(2, 2)?;
        let x = self
            .norm_final
            .forward(&x)?
            .broadcast_mul(&(&m[1] + 1.0)?)?
            .broadcast_add(&m[0])?;
        let out = self.final_linear.forward(&x)?;
        let oc = self.cfg.out_channels();
        out.reshape((b, ph, pw, p, p, oc))?
            .permute((0, 5, 1, 3, 2, 4))?
            .reshape((b, oc, h, w))
    }
}

impl cachedit_runtime::StaticBlockLists for HiDreamImageTransformer2DModel {
    const BLOCK_LISTS: &'static [(&'static str, cachedit_runtime::ForwardPattern)] = {
        use cachedit_runtime::ForwardPattern;
        &[
            ("double_stream_blocks", ForwardPattern::Pattern_0),
            ("single_stream_blocks", ForwardPattern::Pattern_3),
        ]
    };
}

crate::family_model!(
    HiDreamImageTransformer2DModel,
    config = Config,
    sample = crate::sample::SampleShape
);

super::model_accessors!(HiDreamImageTransformer2DModel, double_stream_blocks: HiDreamDoubleBlock, single_stream_blocks: HiDreamSingleBlock);
