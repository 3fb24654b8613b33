// The attribute goes on the impl that holds `forward`.
#![allow(unused)]
use cachedit_macros::block_adapter;
use candle_core::{Result, Tensor};

pub struct Block;

#[block_adapter(pattern = Pattern_3)]
impl Block {
    pub fn new() -> Self {
        Block
    }
}

impl Block {
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(hidden.clone())
    }
}

fn main() {}
