// Two fields chained into one cached list must have the same forward pattern.
#![allow(unused)]
use cachedit_macros::{CachedTransformer, block_adapter};
use cachedit_runtime::BlockList;
use candle_core::{Result, Tensor};

pub struct Double;

#[block_adapter(pattern = Pattern_1)]
impl Double {
    fn forward(&self, hidden: &Tensor, encoder: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((encoder.clone(), hidden.clone()))
    }
}

pub struct Single;

#[block_adapter(pattern = Pattern_3)]
impl Single {
    fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(hidden.clone())
    }
}

#[derive(CachedTransformer)]
pub struct Flux {
    #[cached(chain = single_blocks)]
    pub double_blocks: BlockList<Double>,
    pub single_blocks: BlockList<Single>,
}

fn main() {}
