// A model without block lists has nothing to cache.
#![allow(unused)]
use cachedit_macros::CachedTransformer;

#[derive(CachedTransformer)]
pub struct Model {
    pub embed: Vec<f32>,
}

fn main() {
    // A stand-in impl is emitted with the error, so uses of the model add no errors of their own.
    let lists = cachedit_runtime::summary(&Model { embed: Vec::new() });
}
