//! A small Candle model with two block lists of different patterns (a Pattern_1 joint list and
//! a Pattern_3 single list), made cacheable by annotation alone, gives the same outputs and the
//! same cached-step lists as the same model with hand-written `CachedBlock` and
//! `CachedTransformer` impls.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use cachedit::{CacheConfig, CacheStats, Streams, enable_cache, summary};
use candle_core::{Device, Result, Tensor};

const DIM: usize = 8;

/// Deterministic weights (the CPU RNG cannot be seeded): a `DIM x DIM` matrix per `seed`.
fn weight(seed: usize) -> Tensor {
    let values = (0..DIM * DIM)
        .map(|i| (((i * 37 + seed * 11) % 23) as f32 - 11.0) / 60.0)
        .collect();
    Tensor::from_vec(values, (DIM, DIM), &Device::Cpu).unwrap()
}

/// The block math, shared by both versions of the model so that only the plumbing differs.
mod math {
    use super::*;

    /// A joint block: both streams attend to each other through their means; the block index
    /// scales the update (per-block data, as Chroma's modulation slices).
    pub fn joint(
        w: &Tensor,
        hidden: &Tensor,
        encoder: &Tensor,
        temb: &Tensor,
        index: usize,
    ) -> Result<(Tensor, Tensor)> {
        let context = encoder.mean_keepdim(1)?;
        let update = hidden.broadcast_add(&context)?.broadcast_matmul(w)?.tanh()?;
        let scale = 0.5 + 0.1 * index as f64;
        let hidden = (hidden + (update * scale)?)?.broadcast_add(temb)?;
        let encoder = (encoder + (encoder.broadcast_matmul(w)?.tanh()? * 0.5)?)?;
        Ok((encoder, hidden))
    }

    /// A single-stream block.
    pub fn single(w: &Tensor, hidden: &Tensor, temb: &Tensor, gate: f64) -> Result<Tensor> {
        let update = hidden.broadcast_matmul(w)?.tanh()?;
        (hidden + (update * gate)?)?.broadcast_add(temb)
    }
}

/// The model written as a model author would: no caching code, only annotations.
mod annotated {
    use super::*;
    use cachedit::{BlockList, CachedTransformer, block_adapter};

    pub struct JointBlock {
        pub w: Tensor,
    }

    #[block_adapter(pattern = Pattern_1)]
    impl JointBlock {
        pub fn forward(
            &self,
            hidden_states: &Tensor,
            encoder_hidden_states: &Tensor,
            temb: &Tensor,
            #[block_index] index: usize,
        ) -> Result<(Tensor, Tensor)> {
            math::joint(&self.w, hidden_states, encoder_hidden_states, temb, index)
        }
    }

    pub struct SingleBlock {
        pub w: Tensor,
    }

    #[block_adapter(pattern = Pattern_3)]
    impl SingleBlock {
        pub fn forward(&self, hidden_states: &Tensor, temb: &Tensor, gate: f64) -> Result<Tensor> {
            math::single(&self.w, hidden_states, temb, gate)
        }
    }

    #[derive(CachedTransformer)]
    pub struct Model {
        pub temb: Tensor,
        pub transformer_blocks: BlockList<JointBlock>,
        pub single_transformer_blocks: BlockList<SingleBlock>,
    }

    impl Model {
        pub fn new(joint: usize, single: usize) -> Self {
            Self {
                temb: (weight(99).mean(0).unwrap() * 0.1).unwrap(),
                transformer_blocks: BlockList::new((0..joint).map(|i| JointBlock { w: weight(i) }).collect()),
                single_transformer_blocks: BlockList::new(
                    (0..single).map(|i| SingleBlock { w: weight(10 + i) }).collect(),
                ),
            }
        }

        pub fn forward(&self, x: &Tensor, context: &Tensor, t: f64) -> Result<Tensor> {
            let temb = (&self.temb * t)?;
            let s = self.transformer_blocks.forward(
                Streams::new(x.clone(), context.clone()),
                &JointBlockArgs { temb: &temb },
            )?;
            let s = self.single_transformer_blocks.forward(
                Streams::hidden(s.hidden),
                &SingleBlockArgs {
                    temb: &temb,
                    gate: 0.3,
                },
            )?;
            Ok(s.hidden)
        }
    }
}

/// The same model with the impls written by hand, as the runtime's own tests do.
mod by_hand {
    use super::*;
    use cachedit::{BlockList, CachedBlock, CachedListInfo, CachedTransformer, ForwardPattern};

    pub struct JointBlock {
        pub w: Tensor,
    }

    pub struct JointArgs<'a> {
        pub temb: &'a Tensor,
    }

    impl CachedBlock for JointBlock {
        const PATTERN: ForwardPattern = ForwardPattern::Pattern_1;
        type Args<'a> = JointArgs<'a>;
        fn forward_streams(&self, s: Streams, args: &JointArgs<'_>, index: usize) -> Result<Streams> {
            let encoder = s.encoder.expect("Pattern_1 needs E");
            let (encoder, hidden) = math::joint(&self.w, &s.hidden, &encoder, args.temb, index)?;
            Ok(Streams::new(hidden, encoder))
        }
    }

    pub struct SingleBlock {
        pub w: Tensor,
    }

    pub struct SingleArgs<'a> {
        pub temb: &'a Tensor,
        pub gate: f64,
    }

    impl CachedBlock for SingleBlock {
        const PATTERN: ForwardPattern = ForwardPattern::Pattern_3;
        type Args<'a> = SingleArgs<'a>;
        fn forward_streams(&self, s: Streams, args: &SingleArgs<'_>, _index: usize) -> Result<Streams> {
            Ok(Streams::hidden(math::single(
                &self.w, &s.hidden, args.temb, args.gate,
            )?))
        }
    }

    pub struct Model {
        pub temb: Tensor,
        pub transformer_blocks: BlockList<JointBlock>,
        pub single_transformer_blocks: BlockList<SingleBlock>,
    }

    impl CachedTransformer for Model {
        fn cached_lists(&self) -> Vec<CachedListInfo<'_>> {
            vec![
                CachedListInfo::of("transformer_blocks", &self.transformer_blocks),
                CachedListInfo::of("single_transformer_blocks", &self.single_transformer_blocks),
            ]
        }
    }

    impl Model {
        pub fn new(joint: usize, single: usize) -> Self {
            Self {
                temb: (weight(99).mean(0).unwrap() * 0.1).unwrap(),
                transformer_blocks: BlockList::new((0..joint).map(|i| JointBlock { w: weight(i) }).collect()),
                single_transformer_blocks: BlockList::new(
                    (0..single).map(|i| SingleBlock { w: weight(10 + i) }).collect(),
                ),
            }
        }

        pub fn forward(&self, x: &Tensor, context: &Tensor, t: f64) -> Result<Tensor> {
            let temb = (&self.temb * t)?;
            let s = self.transformer_blocks.forward(
                Streams::new(x.clone(), context.clone()),
                &JointArgs { temb: &temb },
            )?;
            let args = SingleArgs {
                temb: &temb,
                gate: 0.3,
            };
            Ok(self
                .single_transformer_blocks
                .forward(Streams::hidden(s.hidden), &args)?
                .hidden)
        }
    }
}

/// A denoising-like loop: `steps` calls whose inputs drift slowly, so some calls are cached.
fn run(forward: impl Fn(&Tensor, &Tensor, f64) -> Result<Tensor>, steps: usize) -> Result<Vec<Vec<f32>>> {
    let x0: Vec<f32> = (0..4 * DIM).map(|i| ((i * 7 % 13) as f32 - 6.0) / 6.0).collect();
    let mut x = Tensor::from_vec(x0, (1, 4, DIM), &Device::Cpu)?;
    let c: Vec<f32> = (0..3 * DIM).map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0).collect();
    let context = Tensor::from_vec(c, (1, 3, DIM), &Device::Cpu)?;
    let mut outputs = Vec::new();
    for step in 0..steps {
        let t = 1.0 - step as f64 / steps as f64;
        let out = forward(&x, &context, t)?;
        outputs.push(out.flatten_all()?.to_vec1::<f32>()?);
        x = (&x - (out * 0.05)?)?;
    }
    Ok(outputs)
}

fn config() -> CacheConfig {
    CacheConfig {
        fn_compute_blocks: 1,
        bn_compute_blocks: 1,
        max_warmup_steps: 2,
        residual_diff_threshold: 0.12,
        ..Default::default()
    }
}

fn cached_steps(stats: &[CacheStats]) -> Vec<(String, Vec<usize>)> {
    stats
        .iter()
        .map(|s| (s.list.clone(), s.cached_steps.clone()))
        .collect()
}

#[test]
fn annotated_model_matches_the_hand_written_one() -> Result<()> {
    const STEPS: usize = 12;
    let (annotated, by_hand) = (annotated::Model::new(4, 4), by_hand::Model::new(4, 4));

    // Uncached, both are the plain loops.
    let plain = run(|x, c, t| annotated.forward(x, c, t), STEPS)?;
    assert_eq!(plain, run(|x, c, t| by_hand.forward(x, c, t), STEPS)?);

    enable_cache(&annotated, &config()).map_err(candle_core::Error::wrap)?;
    enable_cache(&by_hand, &config()).map_err(candle_core::Error::wrap)?;
    let cached = run(|x, c, t| annotated.forward(x, c, t), STEPS)?;
    assert_eq!(cached, run(|x, c, t| by_hand.forward(x, c, t), STEPS)?);

    let (a, b) = (summary(&annotated), summary(&by_hand));
    assert_eq!(cached_steps(&a), cached_steps(&b));
    let names: Vec<&str> = a.iter().map(|s| s.list.as_str()).collect();
    assert_eq!(names, ["transformer_blocks", "single_transformer_blocks"]);
    assert_eq!(
        (a[0].block_type.as_str(), a[1].block_type.as_str()),
        ("JointBlock", "SingleBlock")
    );
    assert_eq!(
        a.iter().map(|s| &s.residual_diffs).collect::<Vec<_>>(),
        b.iter().map(|s| &s.residual_diffs).collect::<Vec<_>>(),
    );
    // The cache did engage, on both lists, and changed the output of the cached steps.
    assert!(
        a.iter().all(|s| !s.cached_steps.is_empty()),
        "{:?}",
        cached_steps(&a)
    );
    assert_ne!(cached, plain);
    Ok(())
}
