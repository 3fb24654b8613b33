//! FLUX.1 in the original single-file BFL layout (`flux1-dev.safetensors`:
//! `double_blocks.N.img_attn.qkv.weight`, `single_blocks.N.linear1`, `final_layer...`), mapped
//! to diffusers names as diffusers' `convert_flux_transformer_checkpoint_to_diffusers` does:
//! fused q/k/v (and single-block q/k/v/mlp) split, the final adaLN's `shift, scale` swapped to
//! `scale, shift`.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::flux::{Config, FluxTransformer2DModel};
use crate::loader::{Checkpoint, DiffusersConfig, LoadError};
use crate::registry::FamilyModel;

/// One entry of the BFL ↔ diffusers mapping.
enum Rule {
    /// A tensor renamed.
    Rename(String, String),
    /// A fused tensor (BFL) split along dim 0 into parts (diffusers) of the given sizes.
    Split(String, Vec<(String, usize)>),
    /// A `[shift | scale]` tensor (BFL) stored as `[scale | shift]` (diffusers).
    Swap(String, String),
}

fn rules(cfg: &Config) -> Vec<Rule> {
    let d = cfg.inner_dim();
    let mut linear: Vec<(String, String)> = vec![
        (
            "time_in.in_layer".into(),
            "time_text_embed.timestep_embedder.linear_1".into(),
        ),
        (
            "time_in.out_layer".into(),
            "time_text_embed.timestep_embedder.linear_2".into(),
        ),
        (
            "vector_in.in_layer".into(),
            "time_text_embed.text_embedder.linear_1".into(),
        ),
        (
            "vector_in.out_layer".into(),
            "time_text_embed.text_embedder.linear_2".into(),
        ),
        ("txt_in".into(), "context_embedder".into()),
        ("img_in".into(), "x_embedder".into()),
        ("final_layer.linear".into(), "proj_out".into()),
    ];
    if cfg.guidance_embeds {
        linear.push((
            "guidance_in.in_layer".into(),
            "time_text_embed.guidance_embedder.linear_1".into(),
        ));
        linear.push((
            "guidance_in.out_layer".into(),
            "time_text_embed.guidance_embedder.linear_2".into(),
        ));
    }
    let mut out = Vec::new();
    let mut fused = Vec::new();
    for i in 0..cfg.num_layers {
        let (b, t) = (format!("double_blocks.{i}"), format!("transformer_blocks.{i}"));
        for (x, y) in [
            ("img_mod.lin", "norm1.linear"),
            ("txt_mod.lin", "norm1_context.linear"),
            ("img_mlp.0", "ff.net.0.proj"),
            ("img_mlp.2", "ff.net.2"),
            ("txt_mlp.0", "ff_context.net.0.proj"),
            ("txt_mlp.2", "ff_context.net.2"),
            ("img_attn.proj", "attn.to_out.0"),
            ("txt_attn.proj", "attn.to_add_out"),
        ] {
            linear.push((format!("{b}.{x}"), format!("{t}.{y}")));
        }
        for (x, y) in [
            ("img_attn.norm.query_norm.scale", "attn.norm_q.weight"),
            ("img_attn.norm.key_norm.scale", "attn.norm_k.weight"),
            ("txt_attn.norm.query_norm.scale", "attn.norm_added_q.weight"),
            ("txt_attn.norm.key_norm.scale", "attn.norm_added_k.weight"),
        ] {
            out.push(Rule::Rename(format!("{b}.{x}"), format!("{t}.{y}")));
        }
        fused.push((
            format!("{b}.img_attn.qkv"),
            vec![("to_q", d), ("to_k", d), ("to_v", d)],
            format!("{t}.attn"),
        ));
        fused.push((
            format!("{b}.txt_attn.qkv"),
            vec![("add_q_proj", d), ("add_k_proj", d), ("add_v_proj", d)],
            format!("{t}.attn"),
        ));
    }
    for i in 0..cfg.num_single_layers {
        let (b, t) = (
            format!("single_blocks.{i}"),
            format!("single_transformer_blocks.{i}"),
        );
        linear.push((format!("{b}.modulation.lin"), format!("{t}.norm.linear")));
        linear.push((format!("{b}.linear2"), format!("{t}.proj_out")));
        out.push(Rule::Rename(
            format!("{b}.norm.query_norm.scale"),
            format!("{t}.attn.norm_q.weight"),
        ));
        out.push(Rule::Rename(
            format!("{b}.norm.key_norm.scale"),
            format!("{t}.attn.norm_k.weight"),
        ));
        fused.push((
            format!("{b}.linear1"),
            vec![
                ("attn.to_q", d),
                ("attn.to_k", d),
                ("attn.to_v", d),
                ("proj_mlp", 4 * d),
            ],
            t,
        ));
    }
    for (x, y) in linear {
        for p in ["weight", "bias"] {
            out.push(Rule::Rename(format!("{x}.{p}"), format!("{y}.{p}")));
        }
    }
    for (x, parts, prefix) in fused {
        for p in ["weight", "bias"] {
            let parts = parts
                .iter()
                .map(|(n, s)| (format!("{prefix}.{n}.{p}"), *s))
                .collect();
            out.push(Rule::Split(format!("{x}.{p}"), parts));
        }
    }
    for p in ["weight", "bias"] {
        out.push(Rule::Swap(
            format!("final_layer.adaLN_modulation.1.{p}"),
            format!("norm_out.linear.{p}"),
        ));
    }
    out
}

fn take(map: &mut HashMap<String, Tensor>, name: &str) -> Result<Tensor, LoadError> {
    map.remove(name).ok_or_else(|| LoadError::MissingTensor {
        name: name.to_string(),
        file: None,
    })
}

fn swap_halves(t: &Tensor, name: &str) -> Result<Tensor, LoadError> {
    let n = t.dims().first().copied().unwrap_or(0);
    if n % 2 == 1 {
        return Err(LoadError::InvalidConfig {
            path: None,
            reason: format!("`{name}` has an odd first dimension {n}: cannot swap shift and scale"),
        });
    }
    Ok(Tensor::cat(
        &[t.narrow(0, n / 2, n / 2)?, t.narrow(0, 0, n / 2)?],
        0,
    )?)
}

/// Maps BFL tensors to diffusers names for `cfg` (the `model.diffusion_model.` prefix of some
/// exports is stripped). Tensors not in the mapping are dropped with a warning.
pub fn bfl_to_diffusers(
    tensors: HashMap<String, Tensor>,
    cfg: &Config,
) -> Result<HashMap<String, Tensor>, LoadError> {
    let mut src: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, v)| {
            (
                k.strip_prefix("model.diffusion_model.")
                    .map(str::to_string)
                    .unwrap_or(k),
                v,
            )
        })
        .collect();
    let mut out = HashMap::new();
    for rule in rules(cfg) {
        match rule {
            Rule::Rename(b, d) => {
                out.insert(d, take(&mut src, &b)?);
            }
            Rule::Swap(b, d) => {
                let t = take(&mut src, &b)?;
                out.insert(d, swap_halves(&t, &b)?);
            }
            Rule::Split(b, parts) => {
                let t = take(&mut src, &b)?;
                let expected: usize = parts.iter().map(|(_, s)| s).sum();
                let found = t.dims().first().copied().unwrap_or(0);
                if found != expected {
                    let mut exp = t.dims().to_vec();
                    if let Some(first) = exp.first_mut() {
                        *first = expected;
                    }
                    return Err(LoadError::ShapeMismatch {
                        name: b,
                        expected: exp,
                        found: t.dims().to_vec(),
                    });
                }
                let mut start = 0;
                for (name, size) in parts {
                    out.insert(name, t.narrow(0, start, size)?.contiguous()?);
                    start += size;
                }
            }
        }
    }
    if !src.is_empty() {
        tracing::warn!(
            count = src.len(),
            "BFL tensors without a diffusers counterpart were dropped"
        );
    }
    Ok(out)
}

/// The inverse of [`bfl_to_diffusers`]: diffusers tensors to the BFL layout.
pub fn diffusers_to_bfl(
    tensors: &HashMap<String, Tensor>,
    cfg: &Config,
) -> Result<HashMap<String, Tensor>, LoadError> {
    let get = |name: &str| {
        tensors
            .get(name)
            .cloned()
            .ok_or_else(|| LoadError::MissingTensor {
                name: name.to_string(),
                file: None,
            })
    };
    let mut out = HashMap::new();
    for rule in rules(cfg) {
        match rule {
            Rule::Rename(b, d) => {
                out.insert(b, get(&d)?);
            }
            Rule::Swap(b, d) => {
                out.insert(b.clone(), swap_halves(&get(&d)?, &d)?);
            }
            Rule::Split(b, parts) => {
                let ts = parts.iter().map(|(n, _)| get(n)).collect::<Result<Vec<_>, _>>()?;
                out.insert(b, Tensor::cat(&ts, 0)?);
            }
        }
    }
    Ok(out)
}

impl FluxTransformer2DModel {
    /// Loads an original BFL single-file checkpoint (`flux1-dev.safetensors`) for `cfg` (such a
    /// file has no config: use [`Config::dev`], [`Config::schnell`], ...).
    pub fn from_bfl_file(path: &Path, cfg: Config, dtype: DType, device: &Device) -> Result<Self, LoadError> {
        cfg.validate()
            .map_err(|reason| LoadError::InvalidConfig { path: None, reason })?;
        let ckpt = Checkpoint::from_files(&[path.to_path_buf()], dtype, device)?;
        let tensors = bfl_to_diffusers(ckpt.into_tensors(), &cfg)?;
        Self::from_checkpoint(cfg, Checkpoint::from_tensors(tensors), dtype, device)
    }
}
