//! The parity harness: a family model against a diffusers fixture.
//!
//! A fixture folder `adapters/tests/fixtures/<name>/` (written by `tools/reference/refgen.py`)
//! holds `transformer/` (a diffusers `save_pretrained` folder) and `io.safetensors` (the inputs,
//! `output`, and per captured block `<prefix>.in.<arg>` / `<prefix>.out.hidden_states` /
//! `<prefix>.out.encoder_hidden_states`). [`Parity::load`] reads both; the family test runs its
//! model on the inputs and hands the results to [`Parity::check`] / [`Parity::output`] /
//! [`Parity::block`], which assert `max |got - reference| <= rel · max(max |reference|, 1)` with
//! the family's `rel` and print the measured error.

use std::collections::HashMap;

use cachedit_adapters::FamilyModel;
use cachedit_adapters::components::rope::RotaryEmbedding;
use cachedit_runtime::{Conditioning, Denoiser};
use candle_core::{DType, Device, Result, Tensor};

use super::{assert_close, fixture, io};

/// One fixture of family `M`: the model loaded from it, its tensors, and the tolerance.
pub struct Parity<M> {
    /// The fixture name (`adapters/tests/fixtures/<name>`), the prefix of every report line.
    pub name: &'static str,
    /// The fixture's `transformer/` loaded through the family's loader.
    pub model: M,
    io: HashMap<String, Tensor>,
    rel: f32,
}

impl<M: FamilyModel> Parity<M> {
    /// Loads fixture `name` in f32; `rel` is the family's tolerance.
    pub fn load(name: &'static str, rel: f32) -> Result<Self> {
        Self::load_as(name, rel, DType::F32)
    }

    /// Loads fixture `name` with the model's weights in `dtype`.
    pub fn load_as(name: &'static str, rel: f32, dtype: DType) -> Result<Self> {
        let model = M::from_pretrained(&fixture(name).join("transformer"), dtype, &Device::Cpu)
            .map_err(candle_core::Error::wrap)?;
        Ok(Self {
            name,
            model,
            io: io(name)?,
            rel,
        })
    }
}

impl<M> Parity<M> {
    /// Fixture tensor `key` (an error naming it if absent).
    pub fn io(&self, key: &str) -> Result<&Tensor> {
        get(&self.io, self.name, key)
    }

    /// Fixture tensor `key` if present (optional inputs: `guidance`, masks).
    pub fn opt(&self, key: &str) -> Option<&Tensor> {
        self.io.get(key)
    }

    /// Fixture tensors `keys`, in order.
    pub fn ios<const N: usize>(&self, keys: [&str; N]) -> Result<[&Tensor; N]> {
        let mut out = Vec::with_capacity(N);
        for key in keys {
            out.push(self.io(key)?);
        }
        out.try_into()
            .map_err(|_| candle_core::Error::msg("fixture tensor count"))
    }

    /// Asserts `got` matches fixture tensor `key` within the family's tolerance.
    pub fn check(&self, what: &str, got: &Tensor, key: &str) -> Result<f32> {
        self.check_within(what, got, key, self.rel)
    }

    /// Asserts `got` matches fixture tensor `key` within `rel` (tables computed in closed form
    /// are held to a tighter bound than the family's; a bf16 run to a looser one).
    pub fn check_within(&self, what: &str, got: &Tensor, key: &str, rel: f32) -> Result<f32> {
        assert_close(&format!("{} {what}", self.name), got, self.io(key)?, rel)
    }

    /// Asserts the model output matches `output`.
    pub fn output(&self, got: &Tensor) -> Result<f32> {
        self.check("output", got, "output")
    }

    /// The conditioning of fixture tensors `keys`, each under its own name (the families'
    /// conditioning names are diffusers' argument names, which `refgen` uses as fixture keys).
    pub fn conditioning(&self, keys: &[&str]) -> Result<Conditioning> {
        keys.iter()
            .try_fold(Conditioning::new(), |c, k| Ok(c.with(*k, self.io(k)?.clone())))
    }

    /// `Denoiser::predict` on the fixture: latents `hidden_states`, timestep `timestep` times
    /// `t_scale` (`predict` takes the scheduler's scale: 1000 where diffusers was given σ) and
    /// the conditioning of `keys`.
    pub fn predict(&self, keys: &[&str], t_scale: f64) -> Result<Tensor>
    where
        M: Denoiser,
    {
        let t = self.io("timestep")?;
        let t = if t_scale == 1.0 { t.clone() } else { (t * t_scale)? };
        self.model
            .predict(self.io("hidden_states")?, &t, &self.conditioning(keys)?)
    }

    /// Runs one block on diffusers' own inputs for it (`<prefix>.in.*`) and asserts its hidden
    /// output matches `<prefix>.out.hidden_states` and its text output
    /// `<prefix>.out.encoder_hidden_states`; a block without a text output must have none in the
    /// fixture either. Checking blocks on their own inputs locates an error in one block.
    pub fn block(&self, prefix: &str, run: impl FnOnce(&M, &BlockIo) -> Result<BlockOut>) -> Result<()> {
        let b = BlockIo {
            fixture: self.name,
            prefix,
            io: &self.io,
        };
        let out = run(&self.model, &b)?;
        self.check(
            &format!("{prefix} hidden"),
            &out.hidden,
            &b.key("out.hidden_states"),
        )?;
        let key = b.key("out.encoder_hidden_states");
        match (&out.encoder, self.io.get(&key)) {
            (Some(got), Some(_)) => {
                self.check(&format!("{prefix} encoder"), got, &key)?;
            }
            (None, None) => {}
            (got, want) => candle_core::bail!(
                "{} {prefix}: block returned a text output: {}, fixture has one: {}",
                self.name,
                got.is_some(),
                want.is_some()
            ),
        }
        Ok(())
    }
}

/// The captured inputs of one block: `<prefix>.in.<arg>`.
pub struct BlockIo<'a> {
    fixture: &'static str,
    prefix: &'a str,
    io: &'a HashMap<String, Tensor>,
}

impl BlockIo<'_> {
    /// The block's prefix in the fixture (`double0`, `last`, ...).
    pub fn prefix(&self) -> &str {
        self.prefix
    }

    fn key(&self, s: &str) -> String {
        format!("{}.{s}", self.prefix)
    }

    /// Captured input `arg` (`<prefix>.in.<arg>`).
    pub fn input(&self, arg: &str) -> Result<&Tensor> {
        get(self.io, self.fixture, &self.key(&format!("in.{arg}")))
    }

    /// Captured input `arg` if the block received one (optional masks).
    pub fn opt_input(&self, arg: &str) -> Option<&Tensor> {
        self.io.get(&self.key(&format!("in.{arg}")))
    }

    /// `in.hidden_states`.
    pub fn hidden(&self) -> Result<&Tensor> {
        self.input("hidden_states")
    }

    /// `in.encoder_hidden_states`.
    pub fn encoder(&self) -> Result<&Tensor> {
        self.input("encoder_hidden_states")
    }

    /// `in.temb`.
    pub fn temb(&self) -> Result<&Tensor> {
        self.input("temb")
    }

    /// The rotary table diffusers passed as `(cos, sin)` with interleaved pairs
    /// (`in.rope_cos`, `in.rope_sin`).
    pub fn rope(&self) -> Result<RotaryEmbedding> {
        RotaryEmbedding::from_interleaved_full(self.input("rope_cos")?, self.input("rope_sin")?)
    }
}

/// What a block returned: the image (or joint) stream and, for dual-stream blocks, the text one.
pub struct BlockOut {
    hidden: Tensor,
    encoder: Option<Tensor>,
}

impl BlockOut {
    /// A dual-stream block's outputs.
    pub fn joint(hidden: Tensor, encoder: Tensor) -> Self {
        Self {
            hidden,
            encoder: Some(encoder),
        }
    }

    /// A dual-stream block that returns `(encoder, hidden)` (diffusers' Flux/SD3 order).
    pub fn enc_hid((encoder, hidden): (Tensor, Tensor)) -> Self {
        Self::joint(hidden, encoder)
    }

    /// A dual-stream block that returns `(hidden, encoder)`.
    pub fn hid_enc((hidden, encoder): (Tensor, Tensor)) -> Self {
        Self::joint(hidden, encoder)
    }

    /// A single-stream block's output.
    pub fn single(hidden: Tensor) -> Self {
        Self {
            hidden,
            encoder: None,
        }
    }

    /// A block whose text output depends on its place (`context_pre_only` last blocks).
    pub fn maybe_joint(hidden: Tensor, encoder: Option<Tensor>) -> Self {
        Self { hidden, encoder }
    }
}

fn get<'a>(io: &'a HashMap<String, Tensor>, fixture: &str, key: &str) -> Result<&'a Tensor> {
    io.get(key)
        .ok_or_else(|| candle_core::Error::msg(format!("fixture {fixture} has no `{key}`")))
}
