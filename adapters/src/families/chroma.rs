//! Chroma (`ChromaTransformer2DModel`, Chroma1-HD): FLUX.1-schnell with pruned modulation. No
//! block owns an adaLN linear; a model-level approximator (`distilled_guidance_layer`) turns the
//! timestep and per-vector index embeddings into `3·n_single + 12·n_double + 2` modulation
//! vectors, and the model loop hands each block its slice. That loop-body logic moves into the
//! cached blocks through patch functors (cache-dit's `ChromaPatchFunctor`): double blocks are
//! Pattern_1 on `(hidden, encoder)`, single blocks Pattern_3 on the concatenated `[txt, img]`.

use cachedit_macros::{CachedTransformer, patch_functor};
use cachedit_runtime::{BlockList, Streams};
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::blocks::joint::{DualStreamJointBlock, JointBlockConfig, JointModulation};
use crate::blocks::single::{ParallelSingleStreamBlock, SingleBlockConfig};
use crate::components::embeddings::{Mlp2, Timesteps, timestep_embedding};
use crate::components::linear;
use crate::components::modulation::modulate;
use crate::components::norm::{Norm, NormKind};
use crate::components::rope::{MultiAxisRope, RotaryEmbedding};
use crate::loader::DiffusersConfig;
use crate::sample::txt_img_rotary;

/// The diffusers config of `ChromaTransformer2DModel`; defaults are diffusers' constructor
/// defaults (= Chroma1-HD).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Patch size of the packed latents (1: the pipeline packs 2×2 patches into channels).
    pub patch_size: usize,
    /// Channels of the input tokens (64 = 16 VAE channels × 2×2).
    pub in_channels: usize,
    /// Channels of the output tokens (default `in_channels`).
    pub out_channels: Option<usize>,
    /// Number of dual-stream blocks.
    pub num_layers: usize,
    /// Number of single-stream blocks.
    pub num_single_layers: usize,
    /// Channels per attention head.
    pub attention_head_dim: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Width of the text embeddings (T5-XXL: 4096).
    pub joint_attention_dim: usize,
    /// Rotary channels per position axis; they sum to `attention_head_dim`.
    pub axes_dims_rope: Vec<usize>,
    /// Input width of the approximator (4 × the sinusoidal channels of the timestep).
    pub approximator_num_channels: usize,
    /// Hidden width of the approximator.
    pub approximator_hidden_dim: usize,
    /// Residual MLP layers of the approximator.
    pub approximator_layers: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            patch_size: 1,
            in_channels: 64,
            out_channels: None,
            num_layers: 19,
            num_single_layers: 38,
            attention_head_dim: 128,
            num_attention_heads: 24,
            joint_attention_dim: 4096,
            axes_dims_rope: vec![16, 56, 56],
            approximator_num_channels: 64,
            approximator_hidden_dim: 5120,
            approximator_layers: 5,
        }
    }
}

impl Config {
    /// `lodestones/Chroma1-HD` (also Chroma1-Base / Flash: same architecture).
    pub fn chroma1_hd() -> Self {
        Self::default()
    }

    /// The tiny config of diffusers' unit tests (`test_models_transformer_chroma.py`).
    pub fn tiny() -> Self {
        Self {
            patch_size: 1,
            in_channels: 4,
            out_channels: None,
            num_layers: 1,
            num_single_layers: 1,
            attention_head_dim: 16,
            num_attention_heads: 2,
            joint_attention_dim: 32,
            axes_dims_rope: vec![4, 4, 8],
            approximator_num_channels: 8,
            approximator_hidden_dim: 16,
            approximator_layers: 1,
        }
    }

    /// Width of the transformer (`heads × head_dim`).
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Output channels (`out_channels` or `in_channels`).
    pub fn out_channels(&self) -> usize {
        self.out_channels.unwrap_or(self.in_channels)
    }

    /// Number of modulation vectors the approximator produces.
    pub fn modulation_vectors(&self) -> usize {
        3 * self.num_single_layers + 12 * self.num_layers + 2
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
        "joint_attention_dim",
        "axes_dims_rope",
        "approximator_num_channels",
        "approximator_hidden_dim",
        "approximator_layers",
    ];

    fn validate(&self) -> std::result::Result<(), String> {
        let positive = [
            ("patch_size", self.patch_size),
            ("in_channels", self.in_channels),
            ("attention_head_dim", self.attention_head_dim),
            ("num_attention_heads", self.num_attention_heads),
            ("joint_attention_dim", self.joint_attention_dim),
            ("approximator_hidden_dim", self.approximator_hidden_dim),
            ("out_channels", self.out_channels()),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("`{name}` must be positive"));
        }
        if self.approximator_num_channels == 0 || !self.approximator_num_channels.is_multiple_of(8) {
            return Err("`approximator_num_channels` must be a positive multiple of 8".into());
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

/// Vector `i` of a stack of modulation vectors `(B, n, D)`: `(B, D)`.
fn vector(m: &Tensor, i: usize) -> Result<Tensor> {
    m.narrow(1, i, 1)?.squeeze(1)
}

/// diffusers' `ChromaTransformerBlock`: the Flux double block (design J) with external
/// modulation (`temb` `(B, 12, D)`: six image vectors, then six text vectors).
#[derive(Debug, Clone)]
pub struct ChromaTransformerBlock {
    inner: DualStreamJointBlock,
}

impl ChromaTransformerBlock {
    /// Loads the block from `vb` (`transformer_blocks.{i}`).
    pub fn new(dim: usize, heads: usize, head_dim: usize, vb: VarBuilder) -> Result<Self> {
        let knobs = JointBlockConfig {
            modulation: JointModulation::External,
            ..JointBlockConfig::flux(dim, heads, head_dim)
        };
        Ok(Self {
            inner: DualStreamJointBlock::new(&knobs, vb)?,
        })
    }

    /// Returns `(encoder_hidden_states, hidden_states)`, like diffusers. `attention_mask` is the
    /// pairwise mask `(B, 1, S, S)` added to the attention logits.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        temb: &Tensor,
        image_rotary_emb: Option<&RotaryEmbedding>,
        attention_mask: Option<&Tensor>,
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

/// diffusers' `ChromaSingleTransformerBlock`: the Flux single block (design S) on the
/// concatenated `[txt, img]` sequence with external modulation (`temb` `(B, 3, D)`).
#[derive(Debug, Clone)]
pub struct ChromaSingleTransformerBlock {
    inner: ParallelSingleStreamBlock,
}

impl ChromaSingleTransformerBlock {
    /// Loads the block from `vb` (`single_transformer_blocks.{i}`).
    pub fn new(dim: usize, heads: usize, head_dim: usize, vb: VarBuilder) -> Result<Self> {
        let knobs = SingleBlockConfig {
            ada_ln: false,
            ..SingleBlockConfig::flux(dim, heads, head_dim)
        };
        Ok(Self {
            inner: ParallelSingleStreamBlock::new(&knobs, vb)?,
        })
    }

    /// The block on `[txt, img]` `(B, S, D)`, like diffusers; `attention_mask` as for the
    /// double block.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        temb: &Tensor,
        image_rotary_emb: Option<&RotaryEmbedding>,
        attention_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        self.inner
            .forward_sequence(hidden_states, temb, image_rotary_emb, attention_mask)
    }
}

/// Chroma's double-block loop body: slices block `index`'s twelve modulation vectors out of
/// `pooled_temb` (image at `3·n_single + 6·index`, text `6·n_double` further on).
#[allow(clippy::too_many_arguments)]
#[patch_functor(pattern = Pattern_1, wrapper = ChromaDoubleBlock)]
pub fn chroma_double(
    block: &ChromaTransformerBlock,
    hidden_states: &Tensor,
    encoder_hidden_states: &Tensor,
    #[block_index] index: usize,
    pooled_temb: &Tensor,
    num_layers: usize,
    num_single_layers: usize,
    image_rotary_emb: Option<&RotaryEmbedding>,
    attention_mask: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let img = 3 * num_single_layers + 6 * index;
    let txt = 3 * num_single_layers + 6 * num_layers + 6 * index;
    let temb = Tensor::cat(
        &[pooled_temb.narrow(1, img, 6)?, pooled_temb.narrow(1, txt, 6)?],
        1,
    )?;
    block.forward(
        hidden_states,
        encoder_hidden_states,
        &temb,
        image_rotary_emb,
        attention_mask,
    )
}

/// Chroma's single-block loop body: block `index` reads vectors `3·index .. 3·index + 3`.
#[patch_functor(pattern = Pattern_3, wrapper = ChromaSingleBlock)]
pub fn chroma_single(
    block: &ChromaSingleTransformerBlock,
    hidden_states: &Tensor,
    #[block_index] index: usize,
    pooled_temb: &Tensor,
    image_rotary_emb: Option<&RotaryEmbedding>,
    attention_mask: Option<&Tensor>,
) -> Result<Tensor> {
    let temb = pooled_temb.narrow(1, 3 * index, 3)?;
    block.forward(hidden_states, &temb, image_rotary_emb, attention_mask)
}

/// diffusers' `ChromaApproximator` (`distilled_guidance_layer`): `in_proj`, residual
/// `x + layers[k](norms[k](x))` (RMSNorm with the dtype's epsilon, SiLU MLP), `out_proj`.
#[derive(Debug, Clone)]
pub struct ChromaApproximator {
    in_proj: Linear,
    layers: Vec<Mlp2>,
    norms: Vec<Norm>,
    out_proj: Linear,
}

impl ChromaApproximator {
    /// Loads the approximator from `vb` (`distilled_guidance_layer`).
    pub fn new(
        in_dim: usize,
        out_dim: usize,
        hidden: usize,
        n_layers: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        // `nn.RMSNorm(eps=None)` uses `torch.finfo(dtype).eps`.
        let eps = match vb.dtype() {
            DType::BF16 => 0.0078125,
            DType::F16 => 0.0009765625,
            DType::F64 => f64::EPSILON,
            _ => f64::from(f32::EPSILON),
        };
        Ok(Self {
            in_proj: linear(in_dim, hidden, true, vb.pp("in_proj"))?,
            layers: (0..n_layers)
                .map(|k| Mlp2::silu(hidden, hidden, hidden, vb.pp("layers").pp(k)))
                .collect::<Result<_>>()?,
            norms: (0..n_layers)
                .map(|k| {
                    Norm::new(
                        NormKind::RmsNorm { affine: true },
                        hidden,
                        eps,
                        vb.pp("norms").pp(k),
                    )
                })
                .collect::<Result<_>>()?,
            out_proj: linear(hidden, out_dim, true, vb.pp("out_proj"))?,
        })
    }
}

impl Module for ChromaApproximator {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.in_proj.forward(x)?;
        for (layer, norm) in self.layers.iter().zip(&self.norms) {
            x = (&x + layer.forward(&norm.forward(&x)?)?)?;
        }
        self.out_proj.forward(&x)
    }
}

/// diffusers' `ChromaTransformer2DModel`.
#[derive(Debug, CachedTransformer)]
#[cached(cfg = Separate)]
pub struct ChromaTransformer2DModel {
    cfg: Config,
    dtype: DType,
    pos_embed: MultiAxisRope,
    time_proj: Timesteps,
    mod_proj: Tensor,
    distilled_guidance_layer: ChromaApproximator,
    context_embedder: Linear,
    x_embedder: Linear,
    transformer_blocks: BlockList<ChromaDoubleBlock>,
    single_transformer_blocks: BlockList<ChromaSingleBlock>,
    norm_out: Norm,
    proj_out: Linear,
    sample: crate::sample::SampleShape,
}

impl ChromaTransformer2DModel {
    /// Builds the model from `vb` (diffusers names at the root of `vb`).
    pub fn new(cfg: Config, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::msg)?;
        let d = cfg.inner_dim();
        let (heads, head_dim) = (cfg.num_attention_heads, cfg.attention_head_dim);
        let double = (0..cfg.num_layers)
            .map(|i| {
                ChromaTransformerBlock::new(d, heads, head_dim, vb.pp("transformer_blocks").pp(i))
                    .map(ChromaDoubleBlock)
            })
            .collect::<Result<Vec<_>>>()?;
        let single = (0..cfg.num_single_layers)
            .map(|i| {
                ChromaSingleTransformerBlock::new(
                    d,
                    heads,
                    head_dim,
                    vb.pp("single_transformer_blocks").pp(i),
                )
                .map(ChromaSingleBlock)
            })
            .collect::<Result<Vec<_>>>()?;
        let nc = cfg.approximator_num_channels / 4;
        let n_mod = cfg.modulation_vectors();
        let index = Tensor::arange(0u32, n_mod as u32, vb.device())?.to_dtype(DType::F32)?;
        let mod_proj = timestep_embedding(&(index * 1000.0)?, 2 * nc, true, 0.0, 1.0, 10000.0)?;
        let out = cfg.patch_size * cfg.patch_size * cfg.out_channels();
        Ok(Self {
            dtype: vb.dtype(),
            pos_embed: MultiAxisRope {
                theta: 10000.0,
                axes_dim: cfg.axes_dims_rope.clone(),
            },
            time_proj: Timesteps {
                num_channels: nc,
                flip_sin_to_cos: true,
                downscale_freq_shift: 0.0,
                scale: 1.0,
            },
            mod_proj,
            distilled_guidance_layer: ChromaApproximator::new(
                cfg.approximator_num_channels,
                d,
                cfg.approximator_hidden_dim,
                cfg.approximator_layers,
                vb.pp("distilled_guidance_layer"),
            )?,
            context_embedder: linear(cfg.joint_attention_dim, d, true, vb.pp("context_embedder"))?,
            x_embedder: linear(cfg.in_channels, d, true, vb.pp("x_embedder"))?,
            transformer_blocks: BlockList::new(double),
            single_transformer_blocks: BlockList::new(single),
            norm_out: Norm::layer_norm_no_affine(d, 1e-6, vb.dtype(), vb.device())?,
            proj_out: linear(d, out, true, vb.pp("proj_out"))?,
            sample: Default::default(),
            cfg,
        })
    }

    /// The rotary table of `cat(txt_ids, img_ids)` (2-D ids, or 3-D read from batch entry 0).
    pub fn rotary_embedding(&self, img_ids: &Tensor, txt_ids: &Tensor) -> Result<RotaryEmbedding> {
        txt_img_rotary(&self.pos_embed, img_ids, txt_ids)
    }

    /// `pooled_temb` `(B, modulation_vectors, D)`: the approximator on
    /// `[sin(t·1000) | sin(0) | index embedding]` for the raw timestep `t` in `[0, 1]`.
    pub fn pooled_temb(&self, timestep: &Tensor) -> Result<Tensor> {
        let b = timestep.dims1()?;
        let t = (timestep.to_dtype(self.dtype)? * 1000.0)?;
        let t_proj = self.time_proj.forward(&t)?;
        let g_proj = self
            .time_proj
            .forward(&Tensor::zeros(b, DType::F32, t.device())?)?;
        let n = self.mod_proj.dim(0)?;
        let tg = Tensor::cat(&[t_proj, g_proj], 1)?
            .unsqueeze(1)?
            .repeat((1, n, 1))?;
        let mp = self.mod_proj.unsqueeze(0)?.repeat((b, 1, 1))?;
        let input = Tensor::cat(&[tg, mp], 2)?.to_dtype(self.dtype)?;
        self.distilled_guidance_layer.forward(&input)
    }

    /// The transformer: `hidden_states` `(B, S, in_channels)` packed latents,
    /// `encoder_hidden_states` `(B, T, joint_attention_dim)`, `timestep` `(B,)` in `[0, 1]`,
    /// `img_ids` `(S, 3)`, `txt_ids` `(T, 3)`, and the pipeline's optional `attention_mask`
    /// `(B, T + S)` over `[txt, img]`. As in diffusers, the blocks add the pairwise product
    /// `m_i · m_j` to the attention logits (the pipeline's mask is a float tensor).
    /// Returns `(B, S, p²·out_channels)`.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        timestep: &Tensor,
        img_ids: &Tensor,
        txt_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let hidden = self.x_embedder.forward(&hidden_states.to_dtype(self.dtype)?)?;
        let pooled = self.pooled_temb(timestep)?;
        let encoder = self
            .context_embedder
            .forward(&encoder_hidden_states.to_dtype(self.dtype)?)?;
        let rotary = self.rotary_embedding(img_ids, txt_ids)?;
        let mask = match attention_mask {
            Some(m) => {
                let m = m.to_dtype(self.dtype)?;
                Some(
                    m.unsqueeze(1)?
                        .unsqueeze(1)?
                        .broadcast_mul(&m.unsqueeze(1)?.unsqueeze(3)?)?,
                )
            }
            None => None,
        };
        let t = encoder.dim(1)?;
        let s = self.transformer_blocks.forward(
            Streams::new(hidden, encoder),
            &ChromaDoubleBlockArgs {
                pooled_temb: &pooled,
                num_layers: self.cfg.num_layers,
                num_single_layers: self.cfg.num_single_layers,
                image_rotary_emb: Some(&rotary),
                attention_mask: mask.as_ref(),
            },
        )?;
        let encoder = s
            .encoder
            .ok_or_else(|| candle_core::Error::msg("the double blocks returned no text stream"))?;
        let joint = Tensor::cat(&[&encoder, &s.hidden], 1)?;
        let joint = self.single_transformer_blocks.forward(
            Streams::hidden(joint),
            &ChromaSingleBlockArgs {
                pooled_temb: &pooled,
                image_rotary_emb: Some(&rotary),
                attention_mask: mask.as_ref(),
            },
        )?;
        let len = joint.hidden.dim(1)? - t;
        let hidden = joint.hidden.narrow(1, t, len)?;
        let n = pooled.dim(1)?;
        let (shift, scale) = (vector(&pooled, n - 2)?, vector(&pooled, n - 1)?);
        let hidden = modulate(&self.norm_out.forward(&hidden)?, &shift, &scale)?;
        self.proj_out.forward(&hidden)
    }
}

impl cachedit_runtime::StaticBlockLists for ChromaTransformer2DModel {
    const BLOCK_LISTS: &'static [(&'static str, cachedit_runtime::ForwardPattern)] = {
        use cachedit_runtime::ForwardPattern;
        &[
            ("transformer_blocks", ForwardPattern::Pattern_1),
            ("single_transformer_blocks", ForwardPattern::Pattern_3),
        ]
    };
}

crate::family_model!(
    ChromaTransformer2DModel,
    config = Config,
    sample = crate::sample::SampleShape
);

super::model_accessors!(ChromaTransformer2DModel, transformer_blocks: ChromaDoubleBlock, single_transformer_blocks: ChromaSingleBlock);
