// The generated impl is for one concrete block type.
#![allow(unused)]
use cachedit_macros::block_adapter;
use candle_core::{Result, Tensor};

pub struct Block<T>(T);

#[block_adapter(pattern = Pattern_3)]
impl<T> Block<T> {
    pub fn forward<U: Into<f64>>(&self, hidden: &Tensor, scale: U) -> Result<Tensor> {
        todo!()
    }
}

fn main() {}
