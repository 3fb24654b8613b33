//! A library crate outside cachedit that registers its own toy family from its own
//! `registry.yaml`, with the same `register_families!` as cachedit's adapters, without touching
//! cachedit's registry.
//!
//! The block lists are declared once, as the model's `BlockList` field:
//! `#[derive(CachedTransformer)]` turns it into the model's `StaticBlockLists`, and the YAML
//! entry leaves `block_lists` out, so the registration takes them from the model.
//! `register_families!` also generates [`link`], which a program that looks the family up
//! calls (see `../app`).

use cachedit::adapters::FamilyModel;
use cachedit::adapters::loader::DiffusersConfig;
use cachedit::{BlockList, CachedTransformer, Conditioning, Denoiser, Streams, block_adapter, seeded_normal};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

cachedit::register_families!("registry.yaml");

/// The toy model's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToyConfig {
    /// Channels per token.
    pub dim: usize,
    /// Number of blocks.
    pub num_layers: usize,
}

impl ToyConfig {
    /// The test config.
    pub fn tiny() -> Self {
        Self {
            dim: 8,
            num_layers: 3,
        }
    }

    /// A "published" config.
    pub fn large() -> Self {
        Self {
            dim: 64,
            num_layers: 12,
        }
    }
}

impl DiffusersConfig for ToyConfig {}

/// A residual MLP block.
#[derive(Debug)]
pub struct ToyBlock {
    proj: Linear,
}

#[block_adapter(pattern = Pattern_3)]
impl ToyBlock {
    /// `h + tanh(proj(h)) / 4`.
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        hidden + (self.proj.forward(hidden)?.tanh()? * 0.25)?
    }
}

/// A toy transformer: time-shifted tokens through a list of `ToyBlock`s.
#[derive(Debug, CachedTransformer)]
pub struct ToyTransformer {
    cfg: ToyConfig,
    blocks: BlockList<ToyBlock>,
    /// Tokens per generation.
    tokens: usize,
}

impl FamilyModel for ToyTransformer {
    type Config = ToyConfig;
    /// Tokens per generation.
    type SampleShape = usize;
    fn build(cfg: ToyConfig, vb: VarBuilder) -> Result<Self> {
        let blocks = (0..cfg.num_layers)
            .map(|i| {
                Ok(ToyBlock {
                    proj: candle_nn::linear(cfg.dim, cfg.dim, vb.pp("blocks").pp(i).pp("proj"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg,
            blocks: BlockList::new(blocks),
            tokens: 4,
        })
    }
    fn sample_shape(&self) -> usize {
        self.tokens
    }
    fn sample_shape_mut(&mut self) -> &mut usize {
        &mut self.tokens
    }
}

impl Denoiser for ToyTransformer {
    fn latent_shape(&self, batch: usize) -> Vec<usize> {
        vec![batch, self.tokens, self.cfg.dim]
    }

    fn synthetic_conditioning(&self, batch: usize, seed: u64, device: &Device) -> Result<Conditioning> {
        let shift = seeded_normal(&[batch, 1, self.cfg.dim], seed, DType::F32, device)?;
        Ok(Conditioning::new().with("shift", shift))
    }

    fn predict(&self, latents: &Tensor, timestep: &Tensor, cond: &Conditioning) -> Result<Tensor> {
        let t = (timestep.reshape(((), 1, 1))? / 1000.0)?;
        let h = latents.broadcast_add(&cond.get("shift")?.broadcast_mul(&t)?)?;
        Ok(self.blocks.forward(Streams::hidden(h), &())?.hidden)
    }
}
