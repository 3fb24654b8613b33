// Pattern_3 returns H alone; this forward returns two tensors (it is Pattern_4 or 5).
#![allow(unused)]
use cachedit_macros::block_adapter;
use candle_core::{Result, Tensor};

pub struct Block;

#[block_adapter(pattern = Pattern_3)]
impl Block {
    pub fn forward(&self, hidden: &Tensor, temb: &Tensor) -> Result<(Tensor, Tensor)> {
        todo!()
    }
}

fn main() {}
