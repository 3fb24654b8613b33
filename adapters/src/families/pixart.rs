//! PixArt-α / PixArt-Σ (`PixArtTransformer2DModel`, docs/families.md §1.21): design D with
//! PixArt's knobs (adaLN-single table + the model's `adaln_single` projection, self-attention,
//! cross-attention to the caption without norm or gate, GELU-tanh FFN), a 2-D sin-cos position
//! table recomputed for the latent's patch grid, the optional T5 `caption_projection`, the
//! optional micro-conditions (resolution and aspect ratio, `added_cond_kwargs`, PixArt-α 1024),
//! and the final `scale_shift_table` modulation. One cached list, `transformer_blocks`
//! (Pattern_3: the caption is an argument of every block, never rewritten).

use cachedit_macros::{CachedTransformer, block_adapter};
use cachedit_runtime::{BlockList, Conditioning, Denoiser, Streams};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::blocks::sequential::{LayerNormSpec, SequentialBlock, SequentialBlockConfig};
use crate::components::ada_norm_single::AdaLayerNormSingle;
use crate::components::embeddings::Mlp2;
use crate::components::linear;
use crate::components::norm::{Norm, NormKind};
use crate::components::patch_embed::PatchEmbed;
use crate::loader::DiffusersConfig;
use crate::sample::{SampleShape, synthetic_text};

/// The diffusers config of `PixArtTransformer2DModel` (and of the `Transformer2DModel` configs
/// the first PixArt-α checkpoints were published with); defaults are diffusers' constructor
/// defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Channels per head.
    pub attention_head_dim: usize,
    /// Latent channels in.
    pub in_channels: usize,
    /// Latent channels out (8 = ε and the learned variance).
    pub out_channels: Option<usize>,
    /// Number of blocks.
    pub num_layers: usize,
    /// Training-time dropout (no effect at inference).
    pub dropout: f64,
    /// Unused by PixArt (a `Transformer2DModel` argument).
    pub norm_num_groups: usize,
    /// Width of the text the cross-attention reads (after `caption_projection`, if any).
    pub cross_attention_dim: Option<usize>,
    /// Bias of the attention projections.
    pub attention_bias: bool,
    /// Latent size the model was trained at (the default sin-cos grid, `base_size`).
    pub sample_size: usize,
    /// Patch size.
    pub patch_size: usize,
    /// FFN activation (`"gelu-approximate"`).
    pub activation_fn: String,
    /// Timestep embeddings of the adaptive norm (no effect on adaLN-single).
    pub num_embeds_ada_norm: Option<usize>,
    /// Attention in f32 for half-precision weights (off in the published configs).
    pub upcast_attention: bool,
    /// `"ada_norm_single"`.
    pub norm_type: String,
    /// LayerNorms with affine parameters (off).
    pub norm_elementwise_affine: bool,
    /// Epsilon of the blocks' LayerNorms.
    pub norm_eps: f64,
    /// Scale of the sin-cos positions (`None`: `max(sample_size / 64, 1)`).
    pub interpolation_scale: Option<f64>,
    /// Resolution and aspect-ratio micro-conditions (`None`: on iff `sample_size == 128`).
    pub use_additional_conditions: Option<bool>,
    /// Width of the T5 caption embeddings (`None`: no `caption_projection`).
    pub caption_channels: Option<usize>,
    /// `"default"`.
    pub attention_type: String,
    /// `Transformer2DModel` configs only: must be false.
    pub double_self_attention: bool,
    /// `Transformer2DModel` configs only: must be false.
    pub only_cross_attention: bool,
    /// `Transformer2DModel` configs only: must be false.
    pub use_linear_projection: bool,
    /// `Transformer2DModel` configs only: must be null (no discrete latents).
    pub num_vector_embeds: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            num_attention_heads: 16,
            attention_head_dim: 72,
            in_channels: 4,
            out_channels: Some(8),
            num_layers: 28,
            dropout: 0.0,
            norm_num_groups: 32,
            cross_attention_dim: Some(1152),
            attention_bias: true,
            sample_size: 128,
            patch_size: 2,
            activation_fn: "gelu-approximate".into(),
            num_embeds_ada_norm: Some(1000),
            upcast_attention: false,
            norm_type: "ada_norm_single".into(),
            norm_elementwise_affine: false,
            norm_eps: 1e-6,
            interpolation_scale: None,
            use_additional_conditions: None,
            caption_channels: None,
            attention_type: "default".into(),
            double_self_attention: false,
            only_cross_attention: false,
            use_linear_projection: false,
            num_vector_embeds: None,
        }
    }
}

impl Config {
    /// `PixArt-alpha/PixArt-XL-2-1024-MS`: T5-XXL captions, micro-conditions on (sample 128).
    pub fn alpha_1024() -> Self {
        Self {
            caption_channels: Some(4096),
            ..Self::default()
        }
    }

    /// `PixArt-alpha/PixArt-XL-2-512x512`: sample 64, so no micro-conditions.
    pub fn alpha_512() -> Self {
        Self {
            sample_size: 64,
            ..Self::alpha_1024()
        }
    }

    /// `PixArt-alpha/PixArt-Sigma-XL-2-1024-MS`: positions at scale 2, no micro-conditions.
    pub fn sigma_1024() -> Self {
        Self {
            interpolation_scale: Some(2.0),
            use_additional_conditions: Some(false),
            ..Self::alpha_1024()
        }
    }

    /// The tiny config of diffusers' unit tests (`test_models_pixart_transformer2d.py`).
    pub fn tiny() -> Self {
        Self {
            num_attention_heads: 2,
            attention_head_dim: 2,
            in_channels: 4,
            out_channels: Some(8),
            num_layers: 1,
            cross_attention_dim: Some(8),
            sample_size: 8,
            num_embeds_ada_norm: Some(8),
            use_additional_conditions: Some(false),
            caption_channels: None,
            ..Self::default()
        }
    }

    /// Width of the transformer (`heads × head_dim`).
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    /// Whether `adaln_single` embeds resolution and aspect ratio (diffusers' default: on for
    /// a 128 sample size, i.e. PixArt-α 1024).
    pub fn additional_conditions(&self) -> bool {
        self.use_additional_conditions.unwrap_or(self.sample_size == 128)
    }

    /// The sin-cos position scale (diffusers' default: `max(sample_size // 64, 1)`).
    pub fn position_scale(&self) -> f64 {
        self.interpolation_scale
            .unwrap_or_else(|| (self.sample_size / 64).max(1) as f64)
    }

    /// Width of the text the model is given (`caption_channels`, else `cross_attention_dim`).
    pub fn text_width(&self) -> usize {
        self.caption_channels
            .unwrap_or(self.cross_attention_dim.unwrap_or(0))
    }
}

impl DiffusersConfig for Config {
    fn validate(&self) -> std::result::Result<(), String> {
        let positive = [
            ("num_attention_heads", self.num_attention_heads),
            ("attention_head_dim", self.attention_head_dim),
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels()),
            ("num_layers", self.num_layers),
            ("sample_size", self.sample_size),
            ("patch_size", self.patch_size),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("`{name}` must be positive"));
        }
        let expect = [
            ("norm_type", self.norm_type.as_str(), "ada_norm_single"),
            ("activation_fn", self.activation_fn.as_str(), "gelu-approximate"),
            ("attention_type", self.attention_type.as_str(), "default"),
        ];
        if let Some((name, found, want)) = expect.iter().find(|(_, found, want)| found != want) {
            return Err(format!(
                "`{name}` {found:?} is not supported (PixArt uses {want:?})"
            ));
        }
        let off = [
            ("norm_elementwise_affine", self.norm_elementwise_affine),
            ("double_self_attention", self.double_self_attention),
            ("only_cross_attention", self.only_cross_attention),
            ("use_linear_projection", self.use_linear_projection),
        ];
        if let Some((name, _)) = off.iter().find(|(_, on)| *on) {
            return Err(format!("`{name}` = true is not supported by PixArt"));
        }
        if self.num_vector_embeds.is_some() {
            return Err("`num_vector_embeds` (discrete latents) is not supported by PixArt".into());
        }
        let d = self.inner_dim();
        let Some(cross) = self.cross_attention_dim else {
            return Err("`cross_attention_dim` must be set (PixArt's blocks read the caption)".into());
        };
        if self.caption_channels.is_some() && cross != d {
            return Err(format!(
                "`cross_attention_dim` {cross} must equal heads × head_dim {d}: the caption \
                 projection outputs the transformer width"
            ));
        }
        if !d.is_multiple_of(4) {
            return Err(format!(
                "the width {d} must be a multiple of 4 (2-D sin-cos table)"
            ));
        }
        if self.additional_conditions() && !d.is_multiple_of(3) {
            return Err(format!(
                "the width {d} must be a multiple of 3 with `use_additional_conditions` \
                 (resolution and aspect-ratio embeddings of width / 3)"
            ));
        }
        if !(self.position_scale().is_finite() && self.position_scale() > 0.0) {
            return Err("`interpolation_scale` must be a finite number > 0".into());
        }
        Ok(())
    }
}

/// diffusers' `BasicTransformerBlock(norm_type="ada_norm_single")` as PixArt builds it: design D
/// with PixArt's knobs and the config's `norm_eps`.
#[derive(Debug, Clone)]
pub struct PixArtTransformerBlock {
    inner: SequentialBlock,
}

impl PixArtTransformerBlock {
    /// The design-D knobs of a PixArt block.
    pub fn knobs(cfg: &Config) -> SequentialBlockConfig {
        let norm = LayerNormSpec::plain(cfg.norm_eps);
        SequentialBlockConfig {
            norm1: norm,
            ff_norm: norm,
            attention_bias: cfg.attention_bias,
            ..SequentialBlockConfig::pixart(
                cfg.inner_dim(),
                cfg.num_attention_heads,
                cfg.attention_head_dim,
                cfg.cross_attention_dim.unwrap_or(cfg.inner_dim()),
            )
        }
    }

    /// Loads block `transformer_blocks.{i}` from `vb`.
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            inner: SequentialBlock::new(&Self::knobs(cfg), vb)?,
        })
    }
}

#[block_adapter(pattern = Pattern_3)]
impl PixArtTransformerBlock {
    /// The block on the image tokens `(B, S, dim)`: `encoder_hidden_states` the (projected)
    /// caption `(B, T, cross_attention_dim)`, `timestep` `adaln_single`'s `(B, 6·dim)`,
    /// `encoder_attention_mask` the additive caption bias `(B, 1, T)` (0 keep, -10000 drop).
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        timestep: &Tensor,
        encoder_attention_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        // (B, 1, T) → (B, 1, 1, T): broadcast over heads and queries.
        let mask = encoder_attention_mask.map(|m| m.unsqueeze(1)).transpose()?;
        self.inner.forward(
            hidden_states,
            Some(encoder_hidden_states),
            timestep,
            None,
            None,
            mask.as_ref(),
        )
    }
}

/// diffusers' `PixArtTransformer2DModel`: one cached list, `transformer_blocks` (Pattern_3),
/// with batched CFG (`PixArtAlphaPipeline` / `PixArtSigmaPipeline` concatenate the branches).
#[derive(Debug, CachedTransformer)]
#[cached(cfg = Batched)]
pub struct PixArtTransformer2DModel {
    #[cached(skip)]
    cfg: Config,
    #[cached(skip)]
    dtype: DType,
    pos_embed: PatchEmbed,
    adaln_single: AdaLayerNormSingle,
    caption_projection: Option<Mlp2>,
    transformer_blocks: BlockList<PixArtTransformerBlock>,
    norm_out: Norm,
    scale_shift_table: Tensor,
    proj_out: Linear,
    sample: SampleShape,
}

impl PixArtTransformer2DModel {
    /// Builds the model from `vb` (diffusers names at the root of `vb`).
    pub fn new(cfg: Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::msg)?;
        let (d, p) = (cfg.inner_dim(), cfg.patch_size);
        let blocks = (0..cfg.num_layers)
            .map(|i| PixArtTransformerBlock::new(&cfg, vb.pp("transformer_blocks").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let caption_projection = cfg
            .caption_channels
            .map(|c| Mlp2::gelu_tanh(c, d, d, vb.pp("caption_projection")))
            .transpose()?;
        let no_affine = NormKind::LayerNorm {
            affine: false,
            bias: false,
        };
        let scale_shift_table = vb.get_with_hints(
            (2, d),
            "scale_shift_table",
            candle_nn::Init::Randn {
                mean: 0.0,
                stdev: 1.0 / (d as f64).sqrt(),
            },
        )?;
        Ok(Self {
            dtype: vb.dtype(),
            pos_embed: PatchEmbed::new(
                cfg.in_channels,
                p,
                d,
                cfg.sample_size,
                cfg.position_scale(),
                vb.pp("pos_embed"),
            )?,
            adaln_single: AdaLayerNormSingle::new(d, cfg.additional_conditions(), vb.pp("adaln_single"))?,
            caption_projection,
            transformer_blocks: BlockList::new(blocks),
            norm_out: Norm::new(no_affine, d, 1e-6, vb.pp("norm_out"))?,
            scale_shift_table,
            proj_out: linear(d, p * p * cfg.out_channels(), true, vb.pp("proj_out"))?,
            sample: SampleShape::default(),
            cfg,
        })
    }

    /// The tokens the cached list receives: the patch embedding of `hidden_states` `(B, C, H,
    /// W)` with its positions, `(B, (H/p)·(W/p), dim)`.
    pub fn embed(&self, hidden_states: &Tensor) -> Result<Tensor> {
        self.pos_embed.forward(&hidden_states.to_dtype(self.dtype)?)
    }

    /// `adaln_single` on `timestep` `(B,)` (0-1000) and, with micro-conditions, `(resolution,
    /// aspect_ratio)`: `(timestep (B, 6·dim), embedded_timestep (B, dim))`.
    pub fn conditioning(
        &self,
        timestep: &Tensor,
        sizes: Option<(&Tensor, &Tensor)>,
    ) -> Result<(Tensor, Tensor)> {
        self.adaln_single.forward(timestep, sizes, self.dtype)
    }

    /// The caption the blocks read: `caption_projection` of `encoder_hidden_states` when the
    /// config has one.
    pub fn caption(&self, encoder_hidden_states: &Tensor) -> Result<Tensor> {
        let text = encoder_hidden_states.to_dtype(self.dtype)?;
        match &self.caption_projection {
            Some(proj) => proj.forward(&text),
            None => Ok(text),
        }
    }

    /// diffusers' conversion of a keep/drop mask `(B, T)` into the additive bias `(B, 1, T)`
    /// (`(1 - mask) · -10000`); a 3-D mask is taken as a bias already.
    pub fn mask_bias(&self, encoder_attention_mask: &Tensor) -> Result<Tensor> {
        let m = encoder_attention_mask.to_dtype(self.dtype)?;
        if m.rank() == 3 {
            return Ok(m);
        }
        (m.affine(-1.0, 1.0)? * -10000.0)?.unsqueeze(1)
    }

    /// The final layer: `norm_out`, the `scale_shift_table` modulation with
    /// `embedded_timestep`, `proj_out`, and unpatchify to `(B, out_channels, H, W)`.
    pub fn finish(&self, hidden: &Tensor, embedded_timestep: &Tensor, h: usize, w: usize) -> Result<Tensor> {
        let b = hidden.dim(0)?;
        // (1, 2, D) + (B, 1, D) → shift, scale (B, 1, D).
        let mods = self
            .scale_shift_table
            .unsqueeze(0)?
            .broadcast_add(&embedded_timestep.unsqueeze(1)?)?;
        let (shift, scale) = (mods.narrow(1, 0, 1)?, mods.narrow(1, 1, 1)?);
        let x = self.norm_out.forward(hidden)?;
        let x = x.broadcast_mul(&(scale + 1.0)?)?.broadcast_add(&shift)?;
        let out = self.proj_out.forward(&x)?;
        let (p, c) = (self.cfg.patch_size, self.cfg.out_channels());
        // (B, h·w, p·p·c) as (h, w, p, q, c) → (B, c, h·p, w·q)
        out.reshape((b, h / p, w / p, p, p, c))?
            .permute((0, 5, 1, 3, 2, 4))?
            .reshape((b, c, h, w))
    }

    /// The transformer: `hidden_states` `(B, C, H, W)`, `encoder_hidden_states` `(B, T,
    /// caption_channels or cross_attention_dim)`, `timestep` `(B,)` on the 0-1000 scale, the
    /// caption mask `(B, T)` (1 keep, 0 drop) if any, and `(resolution (B, 2), aspect_ratio (B,
    /// 1))` when the config uses micro-conditions. Returns `(B, out_channels, H, W)`.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        timestep: &Tensor,
        encoder_attention_mask: Option<&Tensor>,
        added_cond: Option<(&Tensor, &Tensor)>,
    ) -> Result<Tensor> {
        let (_, _, h, w) = hidden_states.dims4()?;
        let p = self.cfg.patch_size;
        if !h.is_multiple_of(p) || !w.is_multiple_of(p) {
            candle_core::bail!("latents {h}x{w} are not divisible into {p}x{p} patches");
        }
        let hidden = self.embed(hidden_states)?;
        let (temb, embedded) = self.conditioning(timestep, added_cond)?;
        let caption = self.caption(encoder_hidden_states)?;
        let mask = encoder_attention_mask.map(|m| self.mask_bias(m)).transpose()?;
        let args = PixArtTransformerBlockArgs {
            encoder_hidden_states: &caption,
            timestep: &temb,
            encoder_attention_mask: mask.as_ref(),
        };
        let s = self.transformer_blocks.forward(Streams::hidden(hidden), &args)?;
        self.finish(&s.hidden, &embedded, h, w)
    }
}

/// Conditioning tensor names PixArt's `predict` reads (diffusers' argument names; the last two
/// are the keys of `added_cond_kwargs`).
pub mod names {
    /// `(B, T, caption_channels)` T5 embeddings (or `cross_attention_dim` wide without a
    /// caption projection).
    pub const ENCODER_HIDDEN_STATES: &str = "encoder_hidden_states";
    /// Optional `(B, T)` caption mask, 1 keep, 0 drop (the pipeline's `prompt_attention_mask`).
    pub const ENCODER_ATTENTION_MASK: &str = "encoder_attention_mask";
    /// `(B, 2)` image height and width in pixels (micro-conditions only).
    pub const RESOLUTION: &str = "resolution";
    /// `(B, 1)` height / width (micro-conditions only).
    pub const ASPECT_RATIO: &str = "aspect_ratio";
}

impl Denoiser for PixArtTransformer2DModel {
    fn latent_shape(&self, batch: usize) -> Vec<usize> {
        let (s, p) = (self.sample, self.cfg.patch_size);
        vec![batch, self.cfg.in_channels, s.grid_h * p, s.grid_w * p]
    }

    /// T5-like states, a caption mask keeping the first three quarters of the tokens (T5
    /// padding), and for micro-conditions the resolution of an 8× VAE and its aspect ratio.
    fn synthetic_conditioning(&self, batch: usize, seed: u64, device: &Device) -> Result<Conditioning> {
        let len = self.sample.text_len;
        let text = synthetic_text(batch, len, self.cfg.text_width(), seed, device)?;
        let keep = (3 * len).div_ceil(4);
        let row: Vec<f32> = (0..len).map(|i| if i < keep { 1.0 } else { 0.0 }).collect();
        let mask = Tensor::from_vec(row, (1, len), device)?.repeat((batch, 1))?;
        let mut cond = Conditioning::new()
            .with(names::ENCODER_HIDDEN_STATES, text)
            .with(names::ENCODER_ATTENTION_MASK, mask);
        if self.adaln_single.uses_additional_conditions() {
            let [h, w] =
                [self.sample.grid_h, self.sample.grid_w].map(|g| (g * self.cfg.patch_size * 8) as f32);
            let res = Tensor::new(&[[h, w]], device)?.repeat((batch, 1))?;
            let ar = Tensor::new(&[[h / w]], device)?.repeat((batch, 1))?;
            cond.insert(names::RESOLUTION, res);
            cond.insert(names::ASPECT_RATIO, ar);
        }
        Ok(cond)
    }

    /// `timestep` on the scheduler's 0-1000 scale, passed as the pipelines pass it. With a
    /// learned variance (`out_channels = 2·in_channels`) the ε half is returned, as the
    /// pipelines keep it before the scheduler step.
    fn predict(&self, latents: &Tensor, timestep: &Tensor, cond: &Conditioning) -> Result<Tensor> {
        let added = match (cond.get_opt(names::RESOLUTION), cond.get_opt(names::ASPECT_RATIO)) {
            (Some(r), Some(a)) => Some((r, a)),
            _ => None,
        };
        let out = self.forward(
            latents,
            cond.get(names::ENCODER_HIDDEN_STATES)?,
            timestep,
            cond.get_opt(names::ENCODER_ATTENTION_MASK),
            added,
        )?;
        let c = self.cfg.in_channels;
        let out = if self.cfg.out_channels() == 2 * c {
            out.narrow(1, 0, c)?
        } else {
            out
        };
        out.contiguous()?.to_dtype(latents.dtype())
    }
}

crate::family_model!(
    PixArtTransformer2DModel,
    config = Config,
    sample = SampleShape,
    tiny_sample = SampleShape {
        grid_h: 4,
        grid_w: 4,
        text_len: 8,
    }
);

super::model_accessors!(PixArtTransformer2DModel, transformer_blocks: PixArtTransformerBlock);
