// A patch functor takes the wrapped block first and names the type it generates.
#![allow(unused)]
use cachedit_macros::patch_functor;
use candle_core::{Result, Tensor};

pub struct Inner;

#[patch_functor(pattern = Pattern_3, wrapper = Wrapped)]
fn no_block(hidden: &Tensor) -> Result<Tensor> {
    todo!()
}

#[patch_functor(pattern = Pattern_3)]
fn no_wrapper(block: &Inner, hidden: &Tensor) -> Result<Tensor> {
    todo!()
}

fn main() {}
