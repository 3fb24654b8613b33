// An associated function is not a block's forward.
#![allow(unused)]
use cachedit_macros::block_adapter;
use candle_core::{Result, Tensor};

pub struct Block;

#[block_adapter(pattern = Pattern_3)]
impl Block {
    pub fn forward(hidden: &Tensor) -> Result<Tensor> {
        todo!()
    }
}

fn main() {}
