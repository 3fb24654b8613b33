// The block index cannot stand where the encoder stream belongs.
#![allow(unused)]
use cachedit_macros::block_adapter;
use candle_core::{Result, Tensor};

pub struct Block;

#[block_adapter(pattern = Pattern_2)]
impl Block {
    pub fn forward(&self, hidden: &Tensor, #[block_index] index: usize, encoder: &Tensor) -> Result<Tensor> {
        todo!()
    }
}

fn main() {}
