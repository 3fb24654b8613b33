//! `Denoiser`: what a pipeline needs from a model family — its latent shape, its conditioning
//! inputs, and one transformer call — so one denoising loop drives every family.

use std::collections::BTreeMap;

use candle_core::{Device, Result, Tensor};

use crate::cache::api::CachedTransformer;

/// Named conditioning tensors of one generation (text embeddings, pooled embeddings, masks,
/// position ids, ...). Each family documents the names its `predict` reads.
#[derive(Debug, Clone, Default)]
pub struct Conditioning {
    tensors: BTreeMap<String, Tensor>,
}

impl Conditioning {
    /// No tensors.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) `name`.
    pub fn insert(&mut self, name: impl Into<String>, t: Tensor) -> &mut Self {
        self.tensors.insert(name.into(), t);
        self
    }

    /// Builder form of `insert`.
    pub fn with(mut self, name: impl Into<String>, t: Tensor) -> Self {
        self.insert(name, t);
        self
    }

    /// The tensor `name`, or an error naming it and the tensors present.
    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.tensors.get(name).ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "conditioning tensor `{name}` is missing (present: {:?})",
                self.tensors.keys().collect::<Vec<_>>()
            ))
        })
    }

    /// The tensor `name`, if present.
    pub fn get_opt(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// The names and tensors, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Tensor)> {
        self.tensors.iter()
    }

    /// Concatenates two conditionings tensor by tensor along the batch dimension (batched CFG).
    /// Tensors without a batch dimension shared by both (e.g. position ids) are taken from `self`.
    pub fn concat_batch(&self, other: &Conditioning) -> Result<Conditioning> {
        let mut out = Conditioning::new();
        for (name, a) in &self.tensors {
            let t = match other.tensors.get(name) {
                Some(b) if is_batched(name, a) => Tensor::cat(&[a, b], 0)?,
                _ => a.clone(),
            };
            out.insert(name.clone(), t);
        }
        Ok(out)
    }
}

/// Position-id style tensors (`*_ids`) are shared across the batch; everything else is batched.
fn is_batched(name: &str, t: &Tensor) -> bool {
    !name.ends_with("_ids") && t.rank() > 0
}

/// A model family as the denoising pipeline sees it.
pub trait Denoiser: CachedTransformer + Send + Sync {
    /// The latent shape for `batch` samples at the family's default resolution (or the one it
    /// was configured with), as `predict` takes it.
    fn latent_shape(&self, batch: usize) -> Vec<usize>;

    /// Seeded synthetic conditioning for `batch` samples: what a text encoder would provide,
    /// for demos and tests. Same seed, same tensors.
    fn synthetic_conditioning(&self, batch: usize, seed: u64, device: &Device) -> Result<Conditioning>;

    /// One transformer call on `latents` at `timestep` (`(B,)`, in the scale the family's
    /// scheduler produces), returning the model output with the latents' shape.
    fn predict(&self, latents: &Tensor, timestep: &Tensor, cond: &Conditioning) -> Result<Tensor>;
}
