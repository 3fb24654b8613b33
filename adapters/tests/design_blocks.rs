//! Block-level parity of designs D (sequential) and X (shared-weight joint) with diffusers (f32)
//! on the fixtures written by `tools/reference/gen_blocks_dx.py`: one diffusers block per case
//! (`block.safetensors`, its own parameter names), its inputs and outputs (`io.safetensors`).

mod harness;

use std::collections::HashMap;

use cachedit_adapters::blocks::sequential::{SequentialBlock, SequentialBlockConfig};
use cachedit_adapters::blocks::shared_joint::{
    SharedJointBlock, SharedJointBlockConfig, cogview4_joint_mask,
};
use cachedit_adapters::components::label_embedding::CombinedTimestepLabelEmbeddings;
use cachedit_adapters::components::rope::{RopeStyle, RotaryEmbedding};
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use harness::{assert_close, fixture, get, io};

/// Relative tolerance (of `max(max |reference|, 1)`): f32 blocks agree to float rounding.
const REL: f32 = 2e-5;

struct Case {
    io: HashMap<String, Tensor>,
    weights: VarBuilder<'static>,
    name: String,
}

fn case(name: &str) -> Result<Case> {
    let name = format!("blocks_dx/{name}");
    let weights = candle_core::safetensors::load(fixture(&name).join("block.safetensors"), &Device::Cpu)?;
    Ok(Case {
        io: io(&name)?,
        weights: VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu),
        name,
    })
}

impl Case {
    fn get(&self, key: &str) -> Result<&Tensor> {
        get(&self.io, key)
    }

    fn check(&self, what: &str, got: &Tensor) -> Result<f32> {
        assert_close(&format!("{} {what}", self.name), got, self.get(what)?, REL)
    }

    /// The rotary table from diffusers' full-width `(S, D)` tables.
    fn rotary(&self, style: RopeStyle) -> Result<RotaryEmbedding> {
        let (cos, sin) = (self.get("rope_cos")?, self.get("rope_sin")?);
        match style {
            RopeStyle::Interleaved => RotaryEmbedding::from_interleaved_full(cos, sin),
            RopeStyle::HalfSplit => {
                let half = cos.dim(1)? / 2;
                RotaryEmbedding::new(cos.narrow(1, 0, half)?, sin.narrow(1, 0, half)?, style)
            }
        }
    }
}

#[test]
fn pixart_ada_norm_single_block() -> Result<()> {
    let c = case("pixart")?;
    let block = SequentialBlock::new(&SequentialBlockConfig::pixart(8, 2, 4, 12), c.weights.clone())?;
    assert!(block.has_cross_attention());
    // The model hands the blocks `(B, 1, T)`; attention broadcasts it over heads and queries.
    let mask = c.get("encoder_attention_mask")?.unsqueeze(1)?;
    let out = block.forward(
        c.get("hidden_states")?,
        Some(c.get("encoder_hidden_states")?),
        c.get("timestep")?,
        None,
        None,
        Some(&mask),
    )?;
    c.check("out.hidden_states", &out)?;
    Ok(())
}

#[test]
fn dit_ada_norm_zero_block_and_its_embedder() -> Result<()> {
    let c = case("dit")?;
    let emb = CombinedTimestepLabelEmbeddings::new(11, 8, c.weights.pp("norm1.emb"))?;
    let temb = emb.forward(c.get("timestep")?, c.get("class_labels")?)?;
    c.check("temb", &temb)?;
    let block = SequentialBlock::new(&SequentialBlockConfig::dit(8, 2, 4, 1e-5), c.weights.clone())?;
    assert!(!block.has_cross_attention());
    let out = block.forward(c.get("hidden_states")?, None, &temb, None, None, None)?;
    c.check("out.hidden_states", &out)?;
    Ok(())
}

fn check_wan(name: &str, cross_attn_norm: bool) -> Result<()> {
    let c = case(name)?;
    let block = SequentialBlock::new(
        &SequentialBlockConfig::wan(24, 2, 32, cross_attn_norm, 1e-6),
        c.weights.clone(),
    )?;
    let out = block.forward(
        c.get("hidden_states")?,
        Some(c.get("encoder_hidden_states")?),
        c.get("temb")?,
        Some(&c.rotary(RopeStyle::Interleaved)?),
        None,
        None,
    )?;
    c.check("out.hidden_states", &out)?;
    Ok(())
}

#[test]
fn wan_block_per_sample_temb_with_cross_norm() -> Result<()> {
    check_wan("wan", true)
}

#[test]
fn wan_block_per_token_temb_without_cross_norm() -> Result<()> {
    check_wan("wan_ti2v", false)
}

#[test]
fn wan_i2v_block_adds_the_image_context_attention() -> Result<()> {
    let c = case("wan_i2v")?;
    let cfg = SequentialBlockConfig::wan(8, 2, 16, true, 1e-6).with_image_context(8, 512);
    let block = SequentialBlock::new(&cfg, c.weights.clone())?;
    let out = block.forward(
        c.get("hidden_states")?,
        Some(c.get("encoder_hidden_states")?),
        c.get("temb")?,
        None,
        None,
        None,
    )?;
    c.check("out.hidden_states", &out)?;
    // Fewer context tokens than the text length is an error, not a silent slice.
    let short = c.get("encoder_hidden_states")?.narrow(1, 0, 100)?;
    assert!(
        block
            .forward(
                c.get("hidden_states")?,
                Some(&short),
                c.get("temb")?,
                None,
                None,
                None
            )
            .is_err()
    );
    Ok(())
}

fn check_joint(
    c: &Case,
    block: &SharedJointBlock,
    temb: &str,
    rotary: Option<&RotaryEmbedding>,
    mask: Option<&Tensor>,
) -> Result<()> {
    let (h, e) = block.forward(
        c.get("hidden_states")?,
        c.get("encoder_hidden_states")?,
        c.get(temb)?,
        rotary,
        mask,
    )?;
    c.check("out.hidden_states", &h)?;
    c.check("out.encoder_hidden_states", &e)?;
    Ok(())
}

#[test]
fn cogvideox_expert_adaln_block() -> Result<()> {
    let c = case("cogvideox")?;
    let block = SharedJointBlock::new(
        &SharedJointBlockConfig::cogvideox(32, 2, 16, 6),
        c.weights.clone(),
    )?;
    check_joint(&c, &block, "temb", Some(&c.rotary(RopeStyle::Interleaved)?), None)
}

#[test]
fn cogview3plus_joint12_stream_major_block() -> Result<()> {
    let c = case("cogview3plus")?;
    let block = SharedJointBlock::new(
        &SharedJointBlockConfig::cogview3plus(8, 2, 4, 8),
        c.weights.clone(),
    )?;
    check_joint(&c, &block, "emb", None, None)
}

#[test]
fn cogview4_joint12_interleaved_block() -> Result<()> {
    let c = case("cogview4")?;
    let block = SharedJointBlock::new(&SharedJointBlockConfig::cogview4(16, 4, 4, 8), c.weights.clone())?;
    check_joint(&c, &block, "temb", Some(&c.rotary(RopeStyle::HalfSplit)?), None)
}

#[test]
fn cogview4_block_with_text_padding_mask() -> Result<()> {
    let c = case("cogview4_masked")?;
    let block = SharedJointBlock::new(&SharedJointBlockConfig::cogview4(16, 4, 4, 8), c.weights.clone())?;
    let image_len = c.get("hidden_states")?.dim(1)?;
    let mask = cogview4_joint_mask(c.get("attention_mask")?, image_len)?;
    let rotary = c.rotary(RopeStyle::HalfSplit)?;
    check_joint(&c, &block, "temb", Some(&rotary), Some(&mask))?;
    // The mask matters: without it the outputs differ from diffusers' masked ones.
    let (h, _) = block.forward(
        c.get("hidden_states")?,
        c.get("encoder_hidden_states")?,
        c.get("temb")?,
        Some(&rotary),
        None,
    )?;
    let (err, _) = harness::max_err(&h, c.get("out.hidden_states")?)?;
    assert!(err > 1e-3, "unmasked output matches the masked one ({err})");
    Ok(())
}

/// The blocks run in bf16 (weights and inputs), return bf16, and stay within bf16 rounding of
/// diffusers' f32 outputs: the mixed-precision paths (Wan's f32 modulation and residuals around
/// bf16 attention and FFN, rotary tables and masks cast to the stream's dtype) fit together.
#[test]
fn blocks_run_in_bf16_near_the_f32_reference() -> Result<()> {
    const BF16_REL: f32 = 5e-2;
    let bf16 = |name: &str| -> Result<Case> {
        let c = case(name)?;
        let weights =
            candle_core::safetensors::load(fixture(&c.name).join("block.safetensors"), &Device::Cpu)?;
        let io =
            c.io.into_iter()
                .map(|(k, v)| {
                    let v = if v.dtype() == DType::F32 && !k.starts_with("out.") {
                        v.to_dtype(DType::BF16)?
                    } else {
                        v
                    };
                    Ok((k, v))
                })
                .collect::<Result<_>>()?;
        Ok(Case {
            io,
            weights: VarBuilder::from_tensors(weights, DType::BF16, &Device::Cpu),
            name: c.name,
        })
    };
    let close = |c: &Case, got: &Tensor, key: &str| -> Result<()> {
        assert_eq!(got.dtype(), DType::BF16, "{} {key}", c.name);
        assert_close(&format!("{} bf16 {key}", c.name), got, c.get(key)?, BF16_REL).map(|_| ())
    };

    let c = bf16("wan")?;
    let block = SequentialBlock::new(
        &SequentialBlockConfig::wan(24, 2, 32, true, 1e-6),
        c.weights.clone(),
    )?;
    let out = block.forward(
        c.get("hidden_states")?,
        Some(c.get("encoder_hidden_states")?),
        c.get("temb")?,
        Some(&c.rotary(RopeStyle::Interleaved)?),
        None,
        None,
    )?;
    close(&c, &out, "out.hidden_states")?;

    let c = bf16("pixart")?;
    let block = SequentialBlock::new(&SequentialBlockConfig::pixart(8, 2, 4, 12), c.weights.clone())?;
    let mask = c.get("encoder_attention_mask")?.unsqueeze(1)?;
    let out = block.forward(
        c.get("hidden_states")?,
        Some(c.get("encoder_hidden_states")?),
        c.get("timestep")?,
        None,
        None,
        Some(&mask),
    )?;
    close(&c, &out, "out.hidden_states")?;

    let c = bf16("cogvideox")?;
    let block = SharedJointBlock::new(
        &SharedJointBlockConfig::cogvideox(32, 2, 16, 6),
        c.weights.clone(),
    )?;
    let (h, e) = block.forward(
        c.get("hidden_states")?,
        c.get("encoder_hidden_states")?,
        c.get("temb")?,
        Some(&c.rotary(RopeStyle::Interleaved)?),
        None,
    )?;
    close(&c, &h, "out.hidden_states")?;
    close(&c, &e, "out.encoder_hidden_states")
}
