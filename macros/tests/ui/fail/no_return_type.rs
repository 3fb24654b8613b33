// A forward that returns nothing cannot be a block.
#![allow(unused)]
use cachedit_macros::block_adapter;
use candle_core::Tensor;

pub struct Block;

#[block_adapter(pattern = Pattern_3)]
impl Block {
    pub fn forward(&self, hidden: &Tensor) {}
}

fn main() {}
