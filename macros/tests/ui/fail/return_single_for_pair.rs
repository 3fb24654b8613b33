// Pattern_1 returns (E, H); this forward returns H alone (it is a Pattern_3 block).
#![allow(unused)]
use cachedit_macros::block_adapter;
use candle_core::{Result, Tensor};

pub struct Block;

#[block_adapter(pattern = Pattern_1)]
impl Block {
    pub fn forward(&self, hidden: &Tensor, encoder: &Tensor) -> Result<Tensor> {
        todo!()
    }
}

fn main() {}
