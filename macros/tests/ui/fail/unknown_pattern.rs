// There are six patterns, Pattern_0 to Pattern_5.
#![allow(unused)]
use cachedit_macros::block_adapter;
use candle_core::{Result, Tensor};

pub struct Block;

#[block_adapter(pattern = Pattern_9)]
impl Block {
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        todo!()
    }
}

fn main() {
    // The impl is still emitted, so uses of it report nothing more.
    let _ = Block.forward(&Tensor::new(1f32, &candle_core::Device::Cpu).unwrap());
}
