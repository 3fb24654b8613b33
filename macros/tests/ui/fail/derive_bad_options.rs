// Options name fields that exist, a CFG layout that exists, and known keys.
#![allow(unused)]
use cachedit_macros::CachedTransformer;
use cachedit_runtime::BlockList;
use candle_core::{Result, Tensor};

pub struct Block;

#[cachedit_macros::block_adapter(pattern = Pattern_3)]
impl Block {
    fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(hidden.clone())
    }
}

#[derive(CachedTransformer)]
#[cached(cfg = Seperate, lists(blocks, missing))]
pub struct Model {
    #[cached(chain = singles, skp)]
    pub blocks: BlockList<Block>,
    #[cached(skip, name = "x")]
    pub others: BlockList<Block>,
}

fn main() {}
