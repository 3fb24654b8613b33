// The block index is a usize, and there is one.
#![allow(unused)]
use cachedit_macros::block_adapter;
use candle_core::{Result, Tensor};

pub struct Block;

#[block_adapter(pattern = Pattern_3)]
impl Block {
    pub fn forward(&self, hidden: &Tensor, #[block_index] i: u32, #[block_index] j: usize) -> Result<Tensor> {
        todo!()
    }
}

fn main() {}
