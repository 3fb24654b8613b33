// Every misfit of one forward is reported at once.
#![allow(unused)]
use cachedit_macros::block_adapter;
use candle_core::{Result, Tensor};

pub struct Block;

#[block_adapter(pattern = Pattern_5)]
impl Block {
    pub async fn forward(&self, hidden: usize, (a, b): (f64, f64)) -> Result<Tensor> {
        todo!()
    }
}

fn main() {}
