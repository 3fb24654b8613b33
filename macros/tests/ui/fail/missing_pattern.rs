// The pattern must be named.
#![allow(unused)]
use cachedit_macros::block_adapter;
use candle_core::{Result, Tensor};

pub struct Block;

#[block_adapter]
impl Block {
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        todo!()
    }
}

fn main() {}
