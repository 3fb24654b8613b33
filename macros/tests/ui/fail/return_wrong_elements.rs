// Pattern_4 returns (H, E): the hidden stream must be a tensor, the encoder a tensor or an Option.
#![allow(unused)]
use cachedit_macros::block_adapter;
use candle_core::{Result, Tensor};

pub struct Block;

#[block_adapter(pattern = Pattern_4)]
impl Block {
    pub fn forward(&self, hidden: &Tensor) -> Result<(Option<Tensor>, Vec<Tensor>)> {
        todo!()
    }
}

fn main() {}
