// A patch functor's misfit is reported once: the wrapper it names is still generated (with a
// stand-in `CachedBlock` impl), so the model and the code using it add no errors.
#![allow(unused)]
use cachedit_macros::{CachedTransformer, patch_functor};
use cachedit_runtime::{BlockList, Streams};
use candle_core::{Result, Tensor};

pub struct Inner;

#[patch_functor(pattern = Pattern_3, wrapper = Single)]
fn single(block: &Inner, hidden: &Tensor, #[block_index] index: u32, scale: f64) -> Result<Tensor> {
    todo!()
}

#[derive(CachedTransformer)]
pub struct Model {
    blocks: BlockList<Single>,
}

fn build() -> Model {
    Model {
        blocks: BlockList::new(vec![Single(Inner), Inner.into()]),
    }
}

fn run(model: &Model, hidden: Tensor) -> Result<Tensor> {
    Ok(model.blocks.forward(Streams::hidden(hidden), &SingleArgs { scale: 0.5 })?.hidden)
}

fn main() {}
