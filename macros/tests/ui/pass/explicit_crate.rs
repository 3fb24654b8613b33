// `crate = path` points the generated code at a facade-shaped module (a re-export of cachedit).
use cachedit_runtime::{BlockList, Streams};
use candle_core::{Device, Result, Tensor};

mod my_cachedit {
    #[doc(hidden)]
    pub mod __private {
        pub use cachedit_runtime as runtime;
        pub use candle_core;
    }
}

pub struct Block;

#[cachedit_macros::block_adapter(pattern = Pattern_3, crate = crate::my_cachedit)]
impl Block {
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        hidden + 1.0
    }
}

#[derive(cachedit_macros::CachedTransformer)]
#[cached(crate = crate::my_cachedit)]
pub struct Model {
    pub blocks: BlockList<Block>,
}

fn main() -> Result<()> {
    let model = Model { blocks: BlockList::new(vec![Block]) };
    let out = model.blocks.forward(Streams::hidden(Tensor::new(&[1f32], &Device::Cpu)?), &())?;
    assert_eq!(out.hidden.to_vec1::<f32>()?, [2.0]);
    Ok(())
}
