// The attribute goes on the impl, not the struct.
#![allow(unused)]
use cachedit_macros::block_adapter;

#[block_adapter(pattern = Pattern_3)]
pub struct Block;

fn main() {}
