// A misspelt argument is named, with the accepted ones.
#![allow(unused)]
use cachedit_macros::block_adapter;
use candle_core::{Result, Tensor};

pub struct Block;

#[block_adapter(patern = Pattern_3)]
impl Block {
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        todo!()
    }
}

fn main() {}
