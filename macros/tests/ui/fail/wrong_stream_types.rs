// The leading parameters must be the pattern's streams, as tensors.
#![allow(unused)]
use cachedit_macros::block_adapter;
use candle_core::{Result, Tensor};

pub struct Block;

#[block_adapter(pattern = Pattern_1)]
impl Block {
    pub fn forward(&self, hidden: &[Tensor], temb_scale: f64) -> Result<(Tensor, Tensor)> {
        todo!()
    }
}

fn main() {}
