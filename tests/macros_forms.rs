//! What the generated code does at run time, form by form: how each pattern moves the two
//! streams, owned and optional arguments, SD3's missing encoder output, patch functors with
//! per-block logic, and the derive's chained, nested, explicit and overridden lists.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::cell::RefCell;

use cachedit::{
    BlockList, CacheConfig, CacheOptions, CachedBlock, CachedTransformer, CfgLayout, ParamsModifier, Streams,
    block_adapter, enable_cache, enable_cache_with_options, patch_functor, summary,
};
use candle_core::{Device, Result, Tensor};

fn t(x: f32) -> Tensor {
    Tensor::new(&[x], &Device::Cpu).unwrap()
}

fn value(x: &Tensor) -> f32 {
    x.to_vec1::<f32>().unwrap()[0]
}

fn values(s: &Streams) -> (f32, Option<f32>) {
    (value(&s.hidden), s.encoder.as_ref().map(value))
}

// ---- the six patterns: `H + 1` and `E * 2` (or `H * 2` for a new E) ----

struct P0;
#[block_adapter(pattern = Pattern_0)]
impl P0 {
    fn forward(&self, hidden: &Tensor, encoder: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok(((hidden + 1.0)?, (encoder * 2.0)?))
    }
}

struct P1;
#[block_adapter(pattern = Pattern_1)]
impl P1 {
    fn forward(&self, hidden: &Tensor, encoder: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok(((encoder * 2.0)?, (hidden + 1.0)?))
    }
}

struct P2;
#[block_adapter(pattern = Pattern_2)]
impl P2 {
    fn forward(&self, hidden: &Tensor, encoder: &Tensor) -> Result<Tensor> {
        (hidden + (encoder * 0.0)?)? + 1.0
    }
}

struct P3;
#[block_adapter(pattern = Pattern_3)]
impl P3 {
    fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        hidden + 1.0
    }
}

struct P4;
#[block_adapter(pattern = Pattern_4)]
impl P4 {
    fn forward(&self, hidden: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok(((hidden + 1.0)?, (hidden * 2.0)?))
    }
}

struct P5;
#[block_adapter(pattern = Pattern_5)]
impl P5 {
    fn forward(&self, hidden: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok(((hidden * 2.0)?, (hidden + 1.0)?))
    }
}

fn two<B: CachedBlock<Args<'static> = ()>>(make: fn() -> B) -> (f32, Option<f32>) {
    let list = BlockList::new(vec![make(), make()]);
    values(&list.forward(Streams::new(t(1.0), t(10.0)), &()).unwrap())
}

#[test]
fn each_pattern_moves_the_streams_as_cache_dit_does() {
    // Patterns 0/1 feed their E output on; Pattern_2 passes its input E through.
    assert_eq!(two(|| P0), (3.0, Some(40.0)));
    assert_eq!(two(|| P1), (3.0, Some(40.0)));
    assert_eq!(two(|| P2), (3.0, Some(10.0)));
    // Patterns 3-5 ignore the input E; 4/5 return the E of the last block (from its own H).
    assert_eq!(two(|| P3), (3.0, None));
    assert_eq!(two(|| P4), (3.0, Some(4.0)));
    assert_eq!(two(|| P5), (3.0, Some(4.0)));
    let e = BlockList::new(vec![P1])
        .forward(Streams::hidden(t(1.0)), &())
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("P1 is a Pattern_1 block: it needs the encoder stream"),
        "{e}"
    );
}

// ---- argument forms ----

struct Owned;
#[block_adapter(pattern = Pattern_0)]
impl Owned {
    fn forward(
        &self,
        hidden: Tensor,
        encoder: Tensor,
        mask: Option<&Tensor>,
        #[block_index] index: usize,
        offsets: Vec<f64>,
        scale: f64,
    ) -> Result<(Tensor, Tensor)> {
        let hidden = ((hidden + offsets[index])? * scale)?;
        let hidden = match mask {
            Some(mask) => hidden.broadcast_mul(mask)?,
            None => hidden,
        };
        Ok((hidden, encoder))
    }
}

struct OptionalContext;
#[block_adapter(pattern = Pattern_2)]
impl OptionalContext {
    fn forward(&self, hidden: &Tensor, encoder: Option<&Tensor>) -> Result<Tensor> {
        match encoder {
            Some(e) => hidden + e,
            None => hidden + 100.0,
        }
    }
}

#[test]
fn owned_optional_and_index_arguments() {
    let list = BlockList::new(vec![Owned, Owned]);
    let mask = t(3.0);
    let args = OwnedArgs {
        mask: Some(&mask),
        offsets: vec![1.0, 2.0],
        scale: 0.5,
    };
    // ((1 + 1) * 0.5 * 3 + 2) * 0.5 * 3 = 7.5
    assert_eq!(
        values(&list.forward(Streams::new(t(1.0), t(5.0)), &args).unwrap()),
        (7.5, Some(5.0))
    );

    let list = BlockList::new(vec![OptionalContext]);
    assert_eq!(
        values(&list.forward(Streams::new(t(1.0), t(2.0)), &()).unwrap()),
        (3.0, Some(2.0))
    );
    assert_eq!(
        values(&list.forward(Streams::hidden(t(1.0)), &()).unwrap()),
        (101.0, None)
    );
}

/// SD3: the last joint block has no context output (`context_pre_only`).
struct JointBlock {
    context_pre_only: bool,
}

#[block_adapter(pattern = Pattern_1)]
impl JointBlock {
    fn forward(&self, hidden: &Tensor, encoder: &Tensor, temb: &Tensor) -> Result<(Option<Tensor>, Tensor)> {
        let hidden = (hidden + encoder)?.broadcast_add(temb)?;
        let encoder = (!self.context_pre_only).then(|| encoder * 2.0).transpose()?;
        Ok((encoder, hidden))
    }
}

#[test]
fn a_block_may_return_no_encoder_stream() {
    let blocks = [false, false, true].map(|context_pre_only| JointBlock { context_pre_only });
    let list = BlockList::new(blocks.into());
    let temb = t(0.5);
    let out = list
        .forward(Streams::new(t(1.0), t(1.0)), &JointBlockArgs { temb: &temb })
        .unwrap();
    // h: 1 + 1 + .5 = 2.5; 2.5 + 2 + .5 = 5; 5 + 4 + .5 = 9.5
    assert_eq!(values(&out), (9.5, None));
}

// ---- patch functors: per-block logic moved from the model's loop into the block ----

/// A block whose model adds a hook after every `interval`-th block (ConsisID's face perceivers).
struct CogBlock {
    gain: f64,
}

impl CogBlock {
    fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        (hidden * self.gain)?.tanh()? + hidden
    }
}

struct FaceHook {
    perceivers: Vec<Tensor>,
    interval: usize,
}

#[patch_functor(pattern = Pattern_3, wrapper = ConsisIdBlock)]
fn consisid_block(
    block: &CogBlock,
    hidden: &Tensor,
    #[block_index] index: usize,
    hook: &FaceHook,
) -> Result<Tensor> {
    let hidden = block.forward(hidden)?;
    if index.is_multiple_of(hook.interval) {
        hidden.broadcast_add(&hook.perceivers[index / hook.interval])
    } else {
        Ok(hidden)
    }
}

/// HunyuanDiT's long skips: the first half pushes, the second half pops (shared state).
#[patch_functor(pattern = Pattern_3, wrapper = SkipBlock)]
fn skip_block(
    block: &CogBlock,
    hidden: &Tensor,
    #[block_index] index: usize,
    skips: &RefCell<Vec<Tensor>>,
    layers: usize,
) -> Result<Tensor> {
    let hidden = if index > layers / 2 {
        let skip = skips.borrow_mut().pop().expect("a skip per popping block");
        (hidden + skip)?
    } else {
        hidden.clone()
    };
    let hidden = block.forward(&hidden)?;
    if index < layers / 2 - 1 {
        skips.borrow_mut().push(hidden.clone());
    }
    Ok(hidden)
}

fn cog_blocks(n: usize) -> Vec<CogBlock> {
    (0..n)
        .map(|i| CogBlock {
            gain: 0.3 + 0.1 * i as f64,
        })
        .collect()
}

#[test]
fn patch_functors_equal_the_model_loops_they_replace() -> Result<()> {
    let hook = FaceHook {
        perceivers: vec![t(0.25), t(-0.5), t(1.0)],
        interval: 2,
    };
    let mut original = t(0.7);
    for (i, block) in cog_blocks(6).iter().enumerate() {
        original = block.forward(&original)?;
        if i.is_multiple_of(hook.interval) {
            original = original.broadcast_add(&hook.perceivers[i / hook.interval])?;
        }
    }
    let list = BlockList::new(cog_blocks(6).into_iter().map(ConsisIdBlock::from).collect());
    let out = list.forward(Streams::hidden(t(0.7)), &ConsisIdBlockArgs { hook: &hook })?;
    assert_eq!(value(&out.hidden), value(&original));

    let mut skips = Vec::new();
    let mut original = t(0.7);
    for (i, block) in cog_blocks(8).iter().enumerate() {
        if i > 4 {
            original = (original + skips.pop().expect("skip"))?;
        }
        original = block.forward(&original)?;
        if i < 3 {
            skips.push(original.clone());
        }
    }
    let list = BlockList::new(cog_blocks(8).into_iter().map(SkipBlock).collect());
    let args = SkipBlockArgs {
        skips: &RefCell::new(Vec::new()),
        layers: 8,
    };
    assert_eq!(
        value(&list.forward(Streams::hidden(t(0.7)), &args)?.hidden),
        value(&original)
    );
    Ok(())
}

// ---- the derive: chained, nested, explicit and overridden lists ----

/// FLUX.1 as cache-dit caches it: double + single blocks as ONE Pattern_1 list.
#[derive(CachedTransformer)]
struct Flux {
    #[cached(chain = single_transformer_blocks)]
    transformer_blocks: BlockList<P1>,
    single_transformer_blocks: BlockList<P0AsP1>,
}

struct P0AsP1;
#[block_adapter(pattern = Pattern_1)]
impl P0AsP1 {
    fn forward(&self, hidden: &Tensor, encoder: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((encoder.clone(), (hidden * 0.9)?))
    }
}

impl Flux {
    fn forward(&self, x: f32) -> Result<Streams> {
        let s = Streams::new(t(x), t(1.0));
        self.transformer_blocks
            .forward_chained(&(), &self.single_transformer_blocks, &(), s)
    }
}

fn config(fn_compute_blocks: usize) -> CacheConfig {
    CacheConfig {
        fn_compute_blocks,
        max_warmup_steps: 1,
        residual_diff_threshold: 0.1,
        ..Default::default()
    }
}

#[test]
fn a_chained_list_is_one_cached_list_across_both_fields() -> Result<()> {
    let flux = Flux {
        transformer_blocks: BlockList::new(vec![P1, P1]),
        single_transformer_blocks: BlockList::new(vec![P0AsP1, P0AsP1, P0AsP1]),
    };
    let lists = flux.cached_lists();
    assert_eq!(lists.len(), 1);
    assert_eq!((lists[0].name.as_str(), lists[0].len), ("transformer_blocks", 5));
    assert!(std::ptr::eq(
        lists[0].handle,
        flux.transformer_blocks.cache_handle()
    ));
    drop(lists);
    // Fn = 3 reaches into the single blocks: valid only because the list counts 5 blocks.
    enable_cache(&flux, &config(3)).map_err(candle_core::Error::wrap)?;
    for _ in 0..4 {
        flux.forward(1.0)?;
    }
    let stats = summary(&flux);
    assert_eq!((stats.len(), stats[0].cached_steps.clone()), (1, vec![1, 2, 3]));
    Ok(())
}

/// Wan 2.2: two transformers in one pipeline, each with its own contexts.
#[derive(CachedTransformer)]
struct Wan {
    blocks: BlockList<P2>,
    #[cached(skip)]
    _refiner: BlockList<P3>,
}

#[derive(CachedTransformer)]
#[cached(cfg = Separate)]
struct Wan22 {
    #[cached(nested)]
    transformer: Wan,
    /// The low-noise expert never caches by default (its warmup outlasts the run).
    #[cached(nested, modify(max_warmup_steps = 100))]
    transformer_2: Option<Wan>,
}

fn wan() -> Wan {
    Wan {
        blocks: BlockList::new(vec![P2, P2, P2]),
        _refiner: BlockList::new(vec![P3]),
    }
}

fn run_wan22(model: &Wan22, steps: usize) -> Result<()> {
    for _ in 0..steps {
        for expert in [Some(&model.transformer), model.transformer_2.as_ref()]
            .into_iter()
            .flatten()
        {
            for _branch in ["cond", "uncond"] {
                expert.blocks.forward(Streams::new(t(1.0), t(2.0)), &())?;
            }
        }
    }
    Ok(())
}

#[test]
fn nested_transformers_have_their_own_prefixed_lists_and_overrides() -> Result<()> {
    let model = Wan22 {
        transformer: wan(),
        transformer_2: Some(wan()),
    };
    let names: Vec<String> = model.cached_lists().into_iter().map(|l| l.name).collect();
    assert_eq!(names, ["transformer.blocks", "transformer_2.blocks"]);
    assert_eq!(model.cfg_layout(), CfgLayout::Separate);
    let defaults: Vec<String> = model.default_modifiers().into_iter().map(|m| m.list).collect();
    assert_eq!(defaults, ["transformer_2.blocks"]);

    enable_cache(&model, &config(1)).map_err(candle_core::Error::wrap)?;
    run_wan22(&model, 4)?;
    let stats = summary(&model);
    assert!(stats.iter().all(|s| s.separate_cfg));
    assert_eq!(stats[0].cached_steps, vec![1, 2, 3]);
    assert_eq!(
        stats[1].cached_steps,
        Vec::<usize>::new(),
        "the default override applies"
    );

    // Modifiers given to `enable_cache_with_options` replace the model's defaults.
    let options = CacheOptions {
        cache: config(1),
        calibrator: None,
        modifiers: vec![ParamsModifier::new("transformer.blocks")],
    };
    enable_cache_with_options(&model, &options).map_err(candle_core::Error::wrap)?;
    run_wan22(&model, 4)?;
    assert_eq!(summary(&model)[1].cached_steps, vec![1, 2, 3]);

    let single = Wan22 {
        transformer: wan(),
        transformer_2: None,
    };
    assert_eq!(single.cached_lists().len(), 1);
    Ok(())
}

#[derive(CachedTransformer)]
#[cached(lists(single, double))]
struct Explicit {
    #[cached(name = "transformer_blocks", modify(residual_diff_threshold = 0.5))]
    double: BlockList<P1>,
    single: BlockList<P3>,
    _not_cached: BlockList<P3>,
}

#[test]
fn explicit_lists_are_cached_in_the_order_named() {
    let model = Explicit {
        double: BlockList::new(vec![P1]),
        single: BlockList::new(vec![P3]),
        _not_cached: BlockList::new(vec![P3]),
    };
    let names: Vec<String> = model.cached_lists().into_iter().map(|l| l.name).collect();
    assert_eq!(names, ["single", "transformer_blocks"]);
    let modifiers = model.default_modifiers();
    assert_eq!(modifiers.len(), 1);
    assert_eq!(modifiers[0].list, "transformer_blocks");
    assert_eq!(modifiers[0].cache.residual_diff_threshold, Some(0.5));
    assert_eq!(model.cfg_layout(), CfgLayout::None);
}
