// A model without block lists has nothing to cache.
#![allow(unused)]
use cachedit_macros::CachedTransformer;

#[derive(CachedTransformer)]
pub struct Model {
    pub embed: Vec<f32>,
}

fn main() {}
