// Below the facade (the adapters crate) the generated code names `::cachedit_runtime` and
// `::candle_core`, found in this crate's Cargo.toml.
use cachedit_macros::{CachedTransformer, block_adapter, patch_functor};
use cachedit_runtime::{BlockList, CachedTransformer as _, Streams};
use candle_core::{Device, Result, Tensor};

pub struct Joint;

#[block_adapter(pattern = Pattern_1)]
impl Joint {
    pub fn forward(&self, hidden: &Tensor, encoder: &Tensor, temb: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((encoder.clone(), hidden.broadcast_add(temb)?))
    }
}

pub struct Inner;

#[patch_functor(pattern = Pattern_3, wrapper = Single)]
pub fn single(_block: &Inner, hidden: &Tensor, #[block_index] index: usize) -> Result<Tensor> {
    hidden + index as f64
}

#[derive(CachedTransformer)]
#[cached(cfg = Batched)]
pub struct Model {
    pub joint: BlockList<Joint>,
    #[cached(modify(fn_compute_blocks = 1))]
    pub single: BlockList<Single>,
}

fn main() -> Result<()> {
    let model = Model {
        joint: BlockList::new(vec![Joint, Joint]),
        single: BlockList::new(vec![Single(Inner), Inner.into()]),
    };
    let temb = Tensor::new(&[1f32], &Device::Cpu)?;
    let s = Streams::new(Tensor::new(&[0f32], &Device::Cpu)?, temb.clone());
    let s = model.joint.forward(s, &JointArgs { temb: &temb })?;
    let s = model.single.forward(Streams::hidden(s.hidden), &())?;
    assert_eq!(s.hidden.to_vec1::<f32>()?, [3.0]);
    assert_eq!(model.cached_lists().len(), 2);
    Ok(())
}
