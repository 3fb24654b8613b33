// An override names a field of the cache config; rustc points at the misspelt one.
#![allow(unused)]
use cachedit_macros::{CachedTransformer, block_adapter};
use cachedit_runtime::BlockList;
use candle_core::{Result, Tensor};

pub struct Block;

#[block_adapter(pattern = Pattern_3)]
impl Block {
    fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(hidden.clone())
    }
}

#[derive(CachedTransformer)]
pub struct Model {
    #[cached(modify(fn_compute_block = 1))]
    pub blocks: BlockList<Block>,
}

fn main() {}
