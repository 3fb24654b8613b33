// A misfit is reported once, at the misfit: the model that lists the block, the call that runs
// the list and the `Args` literal add no errors of their own (a stand-in `CachedBlock` impl
// and `Args` struct are emitted next to the error).
#![allow(unused)]
use cachedit_macros::{CachedTransformer, block_adapter};
use cachedit_runtime::{BlockList, Streams};
use candle_core::{Result, Tensor};

pub struct Joint;

#[block_adapter(pattern = Pattern_1)]
impl Joint {
    pub fn forward(&self, hidden: &Tensor, encoder: &Tensor, temb: &Tensor) -> Result<Tensor> {
        todo!()
    }
}

#[derive(CachedTransformer)]
pub struct Model {
    blocks: BlockList<Joint>,
}

fn run(model: &Model, hidden: Tensor, encoder: Tensor, temb: &Tensor) -> Result<Tensor> {
    let s = model.blocks.forward(Streams::new(hidden, encoder), &JointArgs { temb })?;
    Ok(s.hidden)
}

fn main() {}
