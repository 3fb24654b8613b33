// Pattern_0 takes H and E first; this forward takes only H.
#![allow(unused)]
use cachedit_macros::block_adapter;
use candle_core::{Result, Tensor};

pub struct Block;

#[block_adapter(pattern = Pattern_0)]
impl Block {
    pub fn forward(&self, hidden: &Tensor) -> Result<(Tensor, Tensor)> {
        todo!()
    }
}

fn main() {}
