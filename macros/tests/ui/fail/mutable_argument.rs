// Arguments are shared by every block of a list: shared state goes through a RefCell or Mutex.
#![allow(unused)]
use cachedit_macros::block_adapter;
use candle_core::{Result, Tensor};

pub struct Block;

#[block_adapter(pattern = Pattern_3)]
impl Block {
    pub fn forward(&self, hidden: &Tensor, skips: &mut Vec<Tensor>) -> Result<Tensor> {
        todo!()
    }
}

fn main() {}
