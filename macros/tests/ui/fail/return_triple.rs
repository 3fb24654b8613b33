// Two streams come back, not three.
#![allow(unused)]
use cachedit_macros::block_adapter;
use candle_core::{Result, Tensor};

pub struct Block;

#[block_adapter(pattern = Pattern_0)]
impl Block {
    pub fn forward(&self, hidden: &Tensor, encoder: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        todo!()
    }
}

fn main() {}
