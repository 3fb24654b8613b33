//! Loading real checkpoints: diffusers `transformer/` folders (`config.json` plus one
//! safetensors file or shards with an `*.index.json`), in any float dtype, with typed errors.
//!
//! Tensors are read eagerly, one file at a time (peak memory: the model plus the largest
//! file), converted to the requested dtype, and handed to the model's constructor through a
//! `VarBuilder` that records *why* a lookup failed, so a missing tensor or a shape mismatch
//! comes back as a [`LoadError`] naming the tensor instead of a string.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The weights file of an unsharded diffusers model folder.
pub const WEIGHTS_NAME: &str = "diffusion_pytorch_model.safetensors";
/// The index of a sharded diffusers model folder.
pub const WEIGHTS_INDEX_NAME: &str = "diffusion_pytorch_model.safetensors.index.json";
/// The config of a diffusers model folder.
pub const CONFIG_NAME: &str = "config.json";

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file could not be read (missing, unreadable).
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file is not valid safetensors / JSON.
    #[error("{} is corrupt: {reason}", path.display())]
    CorruptFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A folder holds no weights file.
    #[error("no weights in {}: expected {WEIGHTS_NAME} or {WEIGHTS_INDEX_NAME}", dir.display())]
    NoWeights {
        /// The folder.
        dir: PathBuf,
    },
    /// A config key that is neither a field of the model's config nor `_`-prefixed metadata.
    #[error("{}: unknown config key `{key}` (known keys: {})", path.display(), known.join(", "))]
    UnknownConfigKey {
        /// The config file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The keys the config understands.
        known: Vec<&'static str>,
    },
    /// A config whose values are of the wrong type or inconsistent.
    #[error("invalid config{}: {reason}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    InvalidConfig {
        /// The config file, if the config came from one.
        path: Option<PathBuf>,
        /// What is wrong.
        reason: String,
    },
    /// The model needs a tensor the checkpoint does not have.
    #[error("missing tensor `{name}`{}", file.as_ref().map(|f| format!(" (the index maps it to {f})")).unwrap_or_default())]
    MissingTensor {
        /// The tensor's name.
        name: String,
        /// The shard the index names for it, when an index says where it should be.
        file: Option<String>,
    },
    /// A tensor whose shape differs from what the model (and its config) expects.
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The tensor's name.
        name: String,
        /// The shape the model expects.
        expected: Vec<usize>,
        /// The shape in the checkpoint.
        found: Vec<usize>,
    },
    /// A tensor Candle cannot convert (e.g. an unsupported dtype).
    #[error("tensor `{name}` in {}: {reason}", path.display())]
    UnsupportedTensor {
        /// The tensor's name.
        name: String,
        /// The file.
        path: PathBuf,
        /// Candle's reason.
        reason: String,
    },
    /// Writing a checkpoint failed.
    #[error("cannot write {}: {reason}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Any other failure while building the model.
    #[error("building the model failed: {0}")]
    Model(#[from] candle_core::Error),
}

/// A model config read from a diffusers `config.json`.
pub trait DiffusersConfig: DeserializeOwned + Serialize {
    /// Every key the config understands (its serde field names).
    const FIELDS: &'static [&'static str];

    /// Checks the values for consistency (called after parsing).
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Parses a diffusers config. Keys starting with `_` (`_class_name`, `_diffusers_version`,
/// `_name_or_path`) are metadata and ignored; any other key the config does not know is an
/// error (upstream silently ignores them).
pub fn parse_config<C: DiffusersConfig>(json: &str, path: &Path) -> Result<C, LoadError> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| LoadError::CorruptFile {
        path: path.to_path_buf(),
        reason: format!("invalid JSON: {e}"),
    })?;
    let serde_json::Value::Object(map) = value else {
        return Err(LoadError::InvalidConfig {
            path: Some(path.to_path_buf()),
            reason: "the config is not a JSON object".into(),
        });
    };
    let mut fields = serde_json::Map::new();
    for (key, v) in map {
        if key.starts_with('_') {
            continue;
        }
        if !C::FIELDS.contains(&key.as_str()) {
            return Err(LoadError::UnknownConfigKey {
                path: path.to_path_buf(),
                key,
                known: C::FIELDS.to_vec(),
            });
        }
        if let Some(n) = too_large(&v) {
            return Err(LoadError::InvalidConfig {
                path: Some(path.to_path_buf()),
                reason: format!("`{key}` holds {n}, more than the largest size accepted, {MAX_CONFIG_INT}"),
            });
        }
        fields.insert(key, v);
    }
    let cfg: C =
        serde_json::from_value(serde_json::Value::Object(fields)).map_err(|e| LoadError::InvalidConfig {
            path: Some(path.to_path_buf()),
            reason: e.to_string(),
        })?;
    cfg.validate().map_err(|reason| LoadError::InvalidConfig {
        path: Some(path.to_path_buf()),
        reason,
    })?;
    Ok(cfg)
}

/// The largest integer a `config.json` may hold. Published configs stay far below (sizes in
/// the thousands); bounding every value keeps the sizes and products the families compute from
/// them from overflowing.
pub const MAX_CONFIG_INT: u64 = 1 << 20;

/// An integer in `v` (or in its arrays) beyond [`MAX_CONFIG_INT`] either way.
fn too_large(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Number(n) => {
            let big = match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => u > MAX_CONFIG_INT,
                (None, Some(i)) => i.unsigned_abs() > MAX_CONFIG_INT,
                (None, None) => false,
            };
            big.then(|| n.to_string())
        }
        serde_json::Value::Array(items) => items.iter().find_map(too_large),
        _ => None,
    }
}

/// Reads and parses a diffusers `config.json`.
pub fn read_config<C: DiffusersConfig>(path: &Path) -> Result<C, LoadError> {
    let json = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_config(&json, path)
}

/// All tensors of a checkpoint, by name, in one dtype on one device.
#[derive(Debug, Clone, Default)]
pub struct Checkpoint {
    tensors: HashMap<String, Tensor>,
    /// For tensors the index assigns to a shard: the shard's file name (for error messages).
    index: HashMap<String, String>,
}

fn read_file(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })
}

impl Checkpoint {
    /// A checkpoint from tensors already in memory.
    pub fn from_tensors(tensors: HashMap<String, Tensor>) -> Self {
        Self {
            tensors,
            index: HashMap::new(),
        }
    }

    /// Reads the weights of a diffusers model folder: the sharded index if present, else the
    /// single weights file.
    pub fn from_dir(dir: &Path, dtype: DType, device: &Device) -> Result<Self, LoadError> {
        let index = dir.join(WEIGHTS_INDEX_NAME);
        if index.is_file() {
            return Self::from_index(&index, dtype, device);
        }
        let single = dir.join(WEIGHTS_NAME);
        if single.is_file() {
            return Self::from_files(&[single], dtype, device);
        }
        Err(LoadError::NoWeights {
            dir: dir.to_path_buf(),
        })
    }

    /// Reads a sharded checkpoint through its `*.safetensors.index.json`.
    pub fn from_index(index: &Path, dtype: DType, device: &Device) -> Result<Self, LoadError> {
        #[derive(serde::Deserialize)]
        struct Index {
            weight_map: BTreeMap<String, String>,
        }
        let bytes = read_file(index)?;
        let parsed: Index = serde_json::from_slice(&bytes).map_err(|e| LoadError::CorruptFile {
            path: index.to_path_buf(),
            reason: format!("invalid index: {e}"),
        })?;
        let dir = index.parent().unwrap_or_else(|| Path::new("."));
        if let Some(bad) = parsed
            .weight_map
            .values()
            .find(|f| f.contains(['/', '\\']) || f.as_str() == ".." || f.is_empty())
        {
            return Err(LoadError::CorruptFile {
                path: index.to_path_buf(),
                reason: format!("shard name `{bad}` is not a file name in the index's folder"),
            });
        }
        let mut files: Vec<&String> = parsed.weight_map.values().collect();
        files.sort();
        files.dedup();
        let paths: Vec<PathBuf> = files.iter().map(|f| dir.join(f)).collect();
        let mut ckpt = Self::from_files(&paths, dtype, device)?;
        for (name, file) in parsed.weight_map {
            if !ckpt.tensors.contains_key(&name) {
                return Err(LoadError::MissingTensor {
                    name,
                    file: Some(file),
                });
            }
            ckpt.index.insert(name, file);
        }
        Ok(ckpt)
    }

    /// Reads safetensors files (later files win on duplicate names).
    pub fn from_files(paths: &[PathBuf], dtype: DType, device: &Device) -> Result<Self, LoadError> {
        let mut tensors = HashMap::new();
        for path in paths {
            let bytes = read_file(path)?;
            let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| LoadError::CorruptFile {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            for (name, view) in st.tensors() {
                let unsupported = |e: candle_core::Error| LoadError::UnsupportedTensor {
                    name: name.clone(),
                    path: path.clone(),
                    reason: e.to_string(),
                };
                let t = candle_core::safetensors::Load::load(&view, device).map_err(unsupported)?;
                let t = t.to_dtype(dtype).map_err(unsupported)?;
                tensors.insert(name, t);
            }
        }
        Ok(Self::from_tensors(tensors))
    }

    /// The tensors.
    pub fn tensors(&self) -> &HashMap<String, Tensor> {
        &self.tensors
    }

    /// The tensors, by value.
    pub fn into_tensors(self) -> HashMap<String, Tensor> {
        self.tensors
    }

    /// Builds a model with `build` over a `VarBuilder` of these tensors in `dtype` on `device`.
    /// A tensor the model asks for but the checkpoint lacks, or has in another shape, is a
    /// [`LoadError::MissingTensor`] / [`LoadError::ShapeMismatch`]. Tensors the model does not
    /// use are reported with `tracing::warn!`.
    pub fn build<M>(
        self,
        dtype: DType,
        device: &Device,
        build: impl FnOnce(VarBuilder) -> candle_core::Result<M>,
    ) -> Result<M, LoadError> {
        let log = Arc::new(Mutex::new(Log::default()));
        let names: Vec<String> = self.tensors.keys().cloned().collect();
        let backend = StrictBackend {
            tensors: self.tensors,
            index: self.index,
            log: log.clone(),
        };
        let vb = VarBuilder::from_backend(Box::new(backend), dtype, device.clone());
        let result = build(vb);
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(model) => {
                let unused: Vec<&String> = names.iter().filter(|n| !log.used.contains(*n)).collect();
                if !unused.is_empty() {
                    tracing::warn!(count = unused.len(), first = ?unused.iter().take(5).collect::<Vec<_>>(), "checkpoint tensors not used by the model");
                }
                Ok(model)
            }
            Err(e) => Err(log.first_error.take().unwrap_or(LoadError::Model(e))),
        }
    }
}

#[derive(Default)]
struct Log {
    first_error: Option<LoadError>,
    used: HashSet<String>,
}

struct StrictBackend {
    tensors: HashMap<String, Tensor>,
    index: HashMap<String, String>,
    log: Arc<Mutex<Log>>,
}

impl StrictBackend {
    fn fail(&self, err: LoadError) -> candle_core::Error {
        let msg = err.to_string();
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.first_error.get_or_insert(err);
        candle_core::Error::Msg(msg)
    }
}

impl SimpleBackend for StrictBackend {
    fn get(&self, s: Shape, name: &str, _h: Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let Some(t) = self.tensors.get(name) else {
            return Err(self.fail(LoadError::MissingTensor {
                name: name.to_string(),
                file: self.index.get(name).cloned(),
            }));
        };
        if t.shape() != &s {
            return Err(self.fail(LoadError::ShapeMismatch {
                name: name.to_string(),
                expected: s.dims().to_vec(),
                found: t.dims().to_vec(),
            }));
        }
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .used
            .insert(name.to_string());
        t.to_dtype(dtype)?.to_device(dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        match self.tensors.get(name) {
            Some(t) => {
                self.log
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .used
                    .insert(name.to_string());
                t.to_dtype(dtype)?.to_device(dev)
            }
            None => Err(self.fail(LoadError::MissingTensor {
                name: name.to_string(),
                file: None,
            })),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

/// Writes `tensors` as a sharded diffusers checkpoint in `dir`: shards of at most
/// `max_shard_bytes` (at least one tensor each) named `diffusion_pytorch_model-0000i-of-0000n`
/// and the index. Returns the shard paths.
pub fn save_sharded(
    tensors: &HashMap<String, Tensor>,
    dir: &Path,
    max_shard_bytes: usize,
) -> Result<Vec<PathBuf>, LoadError> {
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let mut shards: Vec<Vec<&String>> = vec![Vec::new()];
    let mut size = 0usize;
    let mut total = 0usize;
    for name in names {
        let t = &tensors[name];
        let bytes = t.elem_count() * t.dtype().size_in_bytes();
        total += bytes;
        if size + bytes > max_shard_bytes && shards.last().is_some_and(|s| !s.is_empty()) {
            shards.push(Vec::new());
            size = 0;
        }
        size += bytes;
        if let Some(last) = shards.last_mut() {
            last.push(name);
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| LoadError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let n = shards.len();
    let mut weight_map = BTreeMap::new();
    let mut paths = Vec::with_capacity(n);
    for (i, shard) in shards.iter().enumerate() {
        let file = format!("diffusion_pytorch_model-{:05}-of-{n:05}.safetensors", i + 1);
        let path = dir.join(&file);
        let map: HashMap<&str, Tensor> = shard.iter().map(|n| (n.as_str(), tensors[*n].clone())).collect();
        candle_core::safetensors::save(&map, &path).map_err(|e| LoadError::Write {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        for name in shard {
            weight_map.insert((*name).clone(), file.clone());
        }
        paths.push(path);
    }
    let index = serde_json::json!({ "metadata": { "total_size": total }, "weight_map": weight_map });
    let index_path = dir.join(WEIGHTS_INDEX_NAME);
    std::fs::write(&index_path, index.to_string()).map_err(|e| LoadError::Write {
        path: index_path,
        reason: e.to_string(),
    })?;
    Ok(paths)
}

/// Writes `cfg` as a diffusers `config.json` in `dir` (with `_class_name`).
pub fn save_config<C: Serialize>(cfg: &C, class_name: &str, dir: &Path) -> Result<(), LoadError> {
    let path = dir.join(CONFIG_NAME);
    let write_err = |reason: String| LoadError::Write {
        path: path.clone(),
        reason,
    };
    let mut value = serde_json::to_value(cfg).map_err(|e| write_err(e.to_string()))?;
    if let serde_json::Value::Object(map) = &mut value {
        map.insert("_class_name".into(), serde_json::Value::String(class_name.into()));
    }
    let text = serde_json::to_string_pretty(&value).map_err(|e| write_err(e.to_string()))?;
    std::fs::create_dir_all(dir).map_err(|source| LoadError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    std::fs::write(&path, text).map_err(|e| write_err(e.to_string()))
}
