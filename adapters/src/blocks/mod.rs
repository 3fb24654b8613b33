//! The shared block designs of docs/families.md §4. Families configure them and wrap them in their
//! own block types (whose `forward` has the family's diffusers signature and forward pattern).
//!
//! - [`joint`]: Design J, the dual-stream joint (MMDiT) block.
//! - [`single`]: Design S, the parallel single-stream block.
//! - [`sequential`]: Design D, the sequential block (self-attention, optional cross-attention, FFN).
//! - [`shared_joint`]: Design X, shared-weight joint attention with expert adaLN.
//! - [`stream`]: one stream of a block (norm, modulation, residual style, FFN), shared by J and
//!   the single-stream sequential blocks of AuraFlow and HiDream.

pub mod joint;
pub mod sequential;
pub mod shared_joint;
pub mod single;
pub mod stream;

use candle_core::{DType, Result, Tensor};

/// diffusers' fp16 guard: `x.clip(-65504, 65504)` when `x` is f16, else `x` unchanged.
pub(crate) fn clip_f16(x: Tensor) -> Result<Tensor> {
    if x.dtype() == DType::F16 {
        x.clamp(-65504f32, 65504f32)
    } else {
        Ok(x)
    }
}
