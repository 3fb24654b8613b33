//! Checked reading of what a user hands to a generation: an `--inputs` safetensors file
//! (latents, conditioning, an optional schedule) and a weights folder. Every tensor is checked
//! against what the family expects before any work starts: float where floats are expected,
//! the family's shape, and finite values, with errors that name the tensor, what was expected
//! and what was found.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use cachedit_runtime::diff::all_finite;
use cachedit_runtime::limits::MAX_STEPS;
use cachedit_runtime::{Conditioning, Denoiser};
use candle_core::{DType, Device, Tensor};

/// An input that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InputsError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a safetensors file, or a tensor that does not decode.
    #[error("{}: not a valid safetensors file: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No `latents` tensor.
    #[error("{}: no `latents` tensor (found: {found})", path.display())]
    MissingLatents {
        /// The file.
        path: PathBuf,
        /// The tensors present.
        found: String,
    },
    /// An integer or boolean tensor where a float one is expected (it would be cast silently).
    #[error("{}: tensor `{name}` is {dtype:?}, expected a float tensor (f16, bf16, f32 or f64)", path.display())]
    NotFloat {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Its dtype.
        dtype: DType,
    },
    /// A tensor holding NaN or infinite values.
    #[error(
        "{}: tensor `{name}` holds NaN or infinite values (pass --no-finite-check to skip this check)",
        path.display()
    )]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
    },
    /// A tensor whose shape does not fit the family.
    #[error("{}: tensor `{name}` has shape {found:?}, expected {expected} ({why})", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The expected shape, `*` for free dimensions.
        expected: String,
        /// The shape found.
        found: Vec<usize>,
        /// Which rule it breaks.
        why: &'static str,
    },
    /// A `sigmas` or `timesteps` tensor that does not fit the run.
    #[error("{}: `{name}` {reason}", path.display())]
    Schedule {
        /// The file.
        path: PathBuf,
        /// `sigmas` or `timesteps`.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// The tensors a family's `predict` reads, as its synthetic conditioning has them at batch 1.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The latent shape at batch 1 and the family's configured size.
    pub latents: Vec<usize>,
    cond: BTreeMap<String, (Vec<usize>, DType)>,
}

impl Expected {
    /// The latent shape and conditioning tensors `model` expects.
    pub fn of<D: Denoiser + ?Sized>(model: &D, device: &Device) -> candle_core::Result<Self> {
        let cond = model
            .synthetic_conditioning(1, 0, device)?
            .iter()
            .map(|(name, t)| (name.clone(), (t.dims().to_vec(), t.dtype())))
            .collect();
        Ok(Self {
            latents: model.latent_shape(1),
            cond,
        })
    }
}

/// What an `--inputs` file holds.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The initial latents, in the run's dtype.
    pub latents: Tensor,
    /// The conditional inputs.
    pub cond: Conditioning,
    /// The unconditional inputs (`uncond.<name>`; tensors shared by both branches filled in),
    /// if any: without them there is no CFG.
    pub uncond: Option<Conditioning>,
    /// `steps + 1` sigmas to use as they are.
    pub sigmas: Option<Vec<f64>>,
    /// `steps` model timesteps to use as they are.
    pub timesteps: Option<Vec<f64>>,
}

/// How an inputs file is checked.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions<'a> {
    /// The family's tensors.
    pub expected: &'a Expected,
    /// The dtype the latents are cast to.
    pub dtype: DType,
    /// The run's steps (`sigmas` must have one more, `timesteps` as many).
    pub steps: usize,
    /// Check every float tensor for NaN and infinities.
    pub check_finite: bool,
}

/// Reads an `--inputs` file.
pub fn read_inputs(path: &Path, opts: ReadOptions<'_>, device: &Device) -> Result<Inputs, InputsError> {
    let bytes = std::fs::read(path).map_err(|source| InputsError::Io {
        path: path.into(),
        source,
    })?;
    read_inputs_bytes(&bytes, path, opts, device)
}

/// Reads an `--inputs` file already in memory; `path` names it in errors.
pub fn read_inputs_bytes(
    bytes: &[u8],
    path: &Path,
    opts: ReadOptions<'_>,
    device: &Device,
) -> Result<Inputs, InputsError> {
    let tensors = load(bytes, path, device)?;
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let found = names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ");
    let Some(latents) = tensors.get("latents") else {
        return Err(InputsError::MissingLatents {
            path: path.into(),
            found,
        });
    };
    let batch = check_latents(path, latents, &opts.expected.latents)?;
    let mut cond = Conditioning::new();
    let mut uncond: Option<Conditioning> = None;
    let (mut sigmas, mut timesteps) = (None, None);
    // Sorted, so the first bad tensor reported does not depend on the file's order.
    for name in names {
        let t = &tensors[name];
        if opts.check_finite && t.dtype().is_float() && !all_finite(t)? {
            return Err(InputsError::NonFinite {
                path: path.into(),
                name: name.clone(),
            });
        }
        match name.as_str() {
            "latents" => {}
            "sigmas" => sigmas = Some(schedule(path, "sigmas", t, opts.steps.checked_add(1), false)?),
            "timesteps" => timesteps = Some(schedule(path, "timesteps", t, Some(opts.steps), true)?),
            _ => {
                let base = name.strip_prefix("uncond.").unwrap_or(name);
                if let Some((shape, dtype)) = opts.expected.cond.get(base) {
                    check_cond(path, name, t, shape, *dtype, batch)?;
                }
                match name.strip_prefix("uncond.") {
                    Some(base) => {
                        uncond
                            .get_or_insert_with(Conditioning::new)
                            .insert(base, t.clone());
                    }
                    None => {
                        cond.insert(name.clone(), t.clone());
                    }
                }
            }
        }
    }
    // Tensors shared by both branches (position ids, guidance) need not be repeated.
    if let Some(u) = uncond.as_mut() {
        for (name, t) in cond.iter() {
            if u.get_opt(name).is_none() {
                u.insert(name.clone(), t.clone());
            }
        }
    }
    Ok(Inputs {
        latents: latents.to_dtype(opts.dtype)?,
        cond,
        uncond,
        sigmas,
        timesteps,
    })
}

fn load(bytes: &[u8], path: &Path, device: &Device) -> Result<HashMap<String, Tensor>, InputsError> {
    candle_core::safetensors::load_buffer(bytes, device).map_err(|e| InputsError::Corrupt {
        path: path.into(),
        reason: e.to_string(),
    })
}

fn require_float(path: &Path, name: &str, t: &Tensor) -> Result<(), InputsError> {
    if t.dtype().is_float() {
        return Ok(());
    }
    Err(InputsError::NotFloat {
        path: path.into(),
        name: name.into(),
        dtype: t.dtype(),
    })
}

/// The latents: float, the family's rank, a non-empty batch and no empty dimension. Their
/// size may differ from the configured one (families whose transformer takes its grid from the
/// latents accept other sizes); [`check_latents_size`] is the error when the model refuses
/// them. Returns the batch.
fn check_latents(path: &Path, t: &Tensor, expected: &[usize]) -> Result<usize, InputsError> {
    require_float(path, "latents", t)?;
    let found = t.dims();
    if found.len() != expected.len() || found.contains(&0) {
        check_latents_size(path, found, expected)?;
    }
    Ok(found.first().copied().unwrap_or(1))
}

/// Whether latents of shape `found` have the family's configured shape `expected` (any
/// batch): the error names the tensor, the expected and the found shape.
pub fn check_latents_size(path: &Path, found: &[usize], expected: &[usize]) -> Result<(), InputsError> {
    let fits = found.len() == expected.len()
        && found.first().is_some_and(|&b| b > 0)
        && found.iter().zip(expected).skip(1).all(|(f, e)| f == e);
    if !fits {
        return Err(InputsError::Shape {
            path: path.into(),
            name: "latents".into(),
            expected: format!(
                "[B, {}]",
                expected
                    .iter()
                    .skip(1)
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            found: found.to_vec(),
            why: "any batch, the family's latent shape at its configured size",
        });
    }
    Ok(())
}

/// A conditioning tensor the family knows: its dtype kind, rank, feature width (last dimension)
/// and batch; sequence lengths are free (a real prompt's length differs from the synthetic one).
fn check_cond(
    path: &Path,
    name: &str,
    t: &Tensor,
    expected: &[usize],
    dtype: DType,
    batch: usize,
) -> Result<(), InputsError> {
    if dtype.is_float() {
        require_float(path, name, t)?;
    }
    let found = t.dims();
    let rank = expected.len();
    let batched = !name.ends_with("_ids") && rank > 0;
    // A mask's last dimension is a sequence length, as free as the sequence it masks.
    let has_width = rank >= 2 && !name.ends_with("mask");
    let last_fits = !has_width || found.last() == expected.last();
    let batch_fits = !batched || found.first() == Some(&batch);
    if found.len() != rank || !last_fits || !batch_fits {
        let parts: Vec<String> = expected
            .iter()
            .enumerate()
            .map(|(i, d)| match i {
                0 if batched => batch.to_string(),
                _ if has_width && i + 1 == rank => d.to_string(),
                _ => "*".into(),
            })
            .collect();
        return Err(InputsError::Shape {
            path: path.into(),
            name: name.into(),
            expected: format!("[{}]", parts.join(", ")),
            found: found.to_vec(),
            why: "the latents' batch, any sequence length, the family's feature width",
        });
    }
    Ok(())
}

/// A schedule tensor: non-empty, at most `MAX_STEPS + 1` values, float (timesteps may be
/// integers: DDIM's training timesteps), `len` values when the run's steps say so.
fn schedule(
    path: &Path,
    name: &'static str,
    t: &Tensor,
    len: Option<usize>,
    integers_ok: bool,
) -> Result<Vec<f64>, InputsError> {
    if !integers_ok {
        require_float(path, name, t)?;
    }
    let bad = |reason: String| InputsError::Schedule {
        path: path.into(),
        name,
        reason,
    };
    let n = t.elem_count();
    if n == 0 {
        return Err(bad("is empty".into()));
    }
    if n > MAX_STEPS + 1 {
        return Err(bad(format!(
            "has {n} values, more than the {} steps supported",
            MAX_STEPS
        )));
    }
    if let Some(len) = len
        && n != len
    {
        let rule = if name == "sigmas" { "steps + 1" } else { "steps" };
        return Err(bad(format!(
            "has {n} values, but --steps {} needs {rule} = {len}",
            if name == "sigmas" { len - 1 } else { len }
        )));
    }
    let values = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    if let Some(v) = values.iter().find(|v| !v.is_finite()) {
        return Err(bad(format!("holds {v}: every value must be finite")));
    }
    Ok(values)
}

/// Checks every tensor of the safetensors files in a weights folder: float, finite. A
/// checkpoint with a NaN would otherwise give an all-NaN image with exit code 0; integer weights
/// would be cast silently.
pub fn check_weights_dir(dir: &Path) -> Result<(), InputsError> {
    let io = |source| InputsError::Io {
        path: dir.into(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors") && p.is_file())
        .collect();
    files.sort();
    for file in files {
        let bytes = std::fs::read(&file).map_err(|source| InputsError::Io {
            path: file.clone(),
            source,
        })?;
        check_weights_bytes(&bytes, &file)?;
    }
    Ok(())
}

/// [`check_weights_dir`] for one file already in memory; `path` names it in errors.
pub fn check_weights_bytes(bytes: &[u8], path: &Path) -> Result<(), InputsError> {
    let tensors = load(bytes, path, &Device::Cpu)?;
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    for name in names {
        let t = &tensors[name];
        require_float(path, name, t)?;
        if !all_finite(t)? {
            return Err(InputsError::NonFinite {
                path: path.into(),
                name: name.clone(),
            });
        }
    }
    Ok(())
}
