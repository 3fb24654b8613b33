//! Loading Flux checkpoints: sharded and BFL round trips, dtypes, and one test per error kind.

mod harness;

use std::collections::HashMap;
use std::path::Path;

use cachedit_adapters::FamilyModel;
use cachedit_adapters::families::flux::{Config, FluxTransformer2DModel};
use cachedit_adapters::families::flux_bfl::{bfl_to_diffusers, diffusers_to_bfl};
use cachedit_adapters::init::SeededBackend;
use cachedit_adapters::loader::{self, LoadError, save_config, save_sharded};
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use harness::{assert_bit_identical, assert_close, fixture, get, io};

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn cfg() -> Config {
    Config {
        num_layers: 2,
        num_single_layers: 1,
        ..Config::tiny()
    }
}

/// A seeded model and every tensor it was built from.
fn seeded() -> Result<(FluxTransformer2DModel, HashMap<String, Tensor>)> {
    let (backend, record) = SeededBackend::recording(11);
    let vb = VarBuilder::from_backend(Box::new(backend), DType::F32, Device::Cpu);
    let model = FluxTransformer2DModel::new(cfg(), vb)?;
    let tensors = record.lock().map(|m| m.clone()).unwrap_or_default();
    Ok((model, tensors))
}

/// Runs `model` on the `flux_tiny` fixture inputs (same tiny shapes as `cfg()`).
fn output(model: &FluxTransformer2DModel) -> Result<Tensor> {
    let io = io("flux_tiny")?;
    output_at(model, get(&io, "timestep")?)
}

/// Runs `model` on the `flux_tiny` fixture inputs at `timestep`.
fn output_at(model: &FluxTransformer2DModel, timestep: &Tensor) -> Result<Tensor> {
    let io = io("flux_tiny")?;
    model.forward(
        get(&io, "hidden_states")?,
        get(&io, "encoder_hidden_states")?,
        get(&io, "pooled_projections")?,
        timestep,
        get(&io, "img_ids")?,
        get(&io, "txt_ids")?,
        None,
    )
}

fn write_model(dir: &Path, cfg: &Config, tensors: &HashMap<String, Tensor>, shard: usize) -> Res<()> {
    save_config(cfg, "FluxTransformer2DModel", dir)?;
    save_sharded(tensors, dir, shard)?;
    Ok(())
}

fn load(dir: &Path) -> std::result::Result<FluxTransformer2DModel, LoadError> {
    FluxTransformer2DModel::from_pretrained(dir, DType::F32, &Device::Cpu)
}

#[test]
fn sharded_round_trip_gives_identical_outputs() -> Res<()> {
    let (model, tensors) = seeded()?;
    let dir = tempfile::tempdir()?;
    write_model(dir.path(), model.config(), &tensors, 16 * 1024)?;
    let shards = std::fs::read_dir(dir.path())?
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with("safetensors"))
        })
        .count();
    assert!(shards > 2, "expected several shards, got {shards}");
    let loaded = load(dir.path())?;
    assert_bit_identical("sharded round trip", &output(&loaded)?, &output(&model)?)?;
    Ok(())
}

#[test]
fn bfl_single_file_round_trip_gives_identical_outputs() -> Res<()> {
    let (model, tensors) = seeded()?;
    let bfl = diffusers_to_bfl(&tensors, &cfg())?;
    assert!(bfl.contains_key("double_blocks.1.img_attn.qkv.weight"));
    assert!(bfl.contains_key("single_blocks.0.linear1.bias"));
    // Per double block 6 q/k/v tensors (weights and biases) become 2 fused qkv ones (x2 for the
    // text stream); per single block q/k/v/mlp (8) become linear1 (2).
    let (d, s) = (cfg().num_layers, cfg().num_single_layers);
    assert_eq!(
        bfl.len(),
        tensors.len() - 8 * d - 6 * s,
        "fused tensors replace their parts"
    );
    let back = bfl_to_diffusers(bfl.clone(), &cfg())?;
    assert_eq!(back.len(), tensors.len());
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("flux1-tiny.safetensors");
    let prefixed: HashMap<String, Tensor> = bfl
        .into_iter()
        .map(|(k, v)| (format!("model.diffusion_model.{k}"), v))
        .collect();
    candle_core::safetensors::save(&prefixed, &file)?;
    let loaded = FluxTransformer2DModel::from_bfl_file(&file, cfg(), DType::F32, &Device::Cpu)?;
    assert_bit_identical("BFL round trip", &output(&loaded)?, &output(&model)?)?;
    Ok(())
}

#[test]
fn half_precision_checkpoints_and_models() -> Res<()> {
    // Timesteps whose `t * 1000` is exact in bf16 and f16 (diffusers rounds `t` to the model
    // dtype before scaling, which moves the sinusoids of e.g. 0.3 * 1000 a long way).
    let t = Tensor::new(&[0.5f32, 0.25], &Device::Cpu)?;
    let dir = fixture("flux_tiny").join("transformer");
    let f32_model = FluxTransformer2DModel::from_pretrained(&dir, DType::F32, &Device::Cpu)?;
    let reference = output_at(&f32_model, &t)?;
    for dtype in [DType::BF16, DType::F16] {
        let model = FluxTransformer2DModel::from_pretrained(&dir, dtype, &Device::Cpu)?;
        let out = output_at(&model, &t)?;
        assert_eq!(out.dtype(), dtype);
        assert_close(&format!("{dtype:?} model vs f32"), &out, &reference, 5e-2)?;
    }
    // A checkpoint stored in bf16, loaded as f32.
    let (model, tensors) = seeded()?;
    let bf16: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.to_dtype(DType::BF16)?)))
        .collect::<Result<_>>()?;
    let tmp = tempfile::tempdir()?;
    write_model(tmp.path(), model.config(), &bf16, usize::MAX)?;
    let loaded = load(tmp.path())?;
    assert_close(
        "bf16 checkpoint as f32",
        &output(&loaded)?,
        &output(&model)?,
        5e-2,
    )?;
    Ok(())
}

#[test]
fn missing_tensor_is_named() -> Res<()> {
    let (model, mut tensors) = seeded()?;
    tensors.remove("transformer_blocks.1.attn.norm_added_k.weight");
    let dir = tempfile::tempdir()?;
    write_model(dir.path(), model.config(), &tensors, usize::MAX)?;
    match load(dir.path()) {
        Err(LoadError::MissingTensor { name, .. }) => {
            assert_eq!(name, "transformer_blocks.1.attn.norm_added_k.weight")
        }
        other => return Err(format!("expected MissingTensor, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn index_naming_a_tensor_its_shard_lacks_is_a_missing_tensor() -> Res<()> {
    let (model, tensors) = seeded()?;
    let dir = tempfile::tempdir()?;
    write_model(dir.path(), model.config(), &tensors, usize::MAX)?;
    let index_path = dir.path().join(loader::WEIGHTS_INDEX_NAME);
    let mut index: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&index_path)?)?;
    index["weight_map"]["ghost.weight"] = index["weight_map"]["proj_out.weight"].clone();
    std::fs::write(&index_path, index.to_string())?;
    match load(dir.path()) {
        Err(LoadError::MissingTensor { name, file: Some(f) }) => {
            assert_eq!(name, "ghost.weight");
            assert!(f.ends_with(".safetensors"));
        }
        other => return Err(format!("expected MissingTensor with a file, got {other:?}").into()),
    }
    // Shard names must stay inside the folder.
    index["weight_map"]["ghost.weight"] = serde_json::Value::String("../elsewhere.safetensors".into());
    std::fs::write(&index_path, index.to_string())?;
    assert!(matches!(load(dir.path()), Err(LoadError::CorruptFile { .. })));
    Ok(())
}

#[test]
fn shape_mismatch_names_tensor_and_shapes() -> Res<()> {
    let (_, tensors) = seeded()?;
    let dir = tempfile::tempdir()?;
    let wrong = Config {
        joint_attention_dim: 16,
        ..cfg()
    };
    write_model(dir.path(), &wrong, &tensors, usize::MAX)?;
    match load(dir.path()) {
        Err(LoadError::ShapeMismatch {
            name,
            expected,
            found,
        }) => {
            assert_eq!(name, "context_embedder.weight");
            assert_eq!(expected, vec![32, 16]);
            assert_eq!(found, vec![32, 32]);
        }
        other => return Err(format!("expected ShapeMismatch, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn missing_files() -> Res<()> {
    let dir = tempfile::tempdir()?;
    assert!(
        matches!(load(dir.path()), Err(LoadError::Io { .. })),
        "no config.json"
    );
    save_config(&cfg(), "FluxTransformer2DModel", dir.path())?;
    assert!(matches!(load(dir.path()), Err(LoadError::NoWeights { .. })));
    let (_, tensors) = seeded()?;
    save_sharded(&tensors, dir.path(), 16 * 1024)?;
    std::fs::remove_file(
        dir.path()
            .join("diffusion_pytorch_model-00002-of-00006.safetensors"),
    )
    .or_else(|_| {
        let victim = std::fs::read_dir(dir.path())?
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().contains("-00002-of-"))
            .ok_or_else(|| std::io::Error::other("no second shard"))?;
        std::fs::remove_file(victim.path())
    })?;
    match load(dir.path()) {
        Err(LoadError::Io { path, .. }) => assert!(path.to_string_lossy().contains("-00002-of-")),
        other => return Err(format!("expected Io for the missing shard, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn corrupt_files() -> Res<()> {
    let dir = tempfile::tempdir()?;
    save_config(&cfg(), "FluxTransformer2DModel", dir.path())?;
    std::fs::write(
        dir.path().join(loader::WEIGHTS_NAME),
        b"\x10\0\0\0\0\0\0\0{not json",
    )?;
    assert!(matches!(load(dir.path()), Err(LoadError::CorruptFile { .. })));
    std::fs::write(dir.path().join(loader::CONFIG_NAME), "{\"num_layers\": ")?;
    assert!(matches!(load(dir.path()), Err(LoadError::CorruptFile { .. })));
    Ok(())
}

#[test]
fn config_keys() -> Res<()> {
    let path = Path::new("config.json");
    let hub = r#"{"_class_name": "FluxTransformer2DModel", "_diffusers_version": "0.30.0.dev0",
        "_name_or_path": "x", "attention_head_dim": 128, "guidance_embeds": true, "in_channels": 64,
        "joint_attention_dim": 4096, "num_attention_heads": 24, "num_layers": 19,
        "num_single_layers": 38, "patch_size": 1, "pooled_projection_dim": 768,
        "axes_dims_rope": [16, 56, 56]}"#;
    let parsed: Config = loader::parse_config(hub, path)?;
    assert_eq!(parsed, Config::dev());
    let unknown = hub.replace("\"patch_size\"", "\"patch_sise\"");
    match loader::parse_config::<Config>(&unknown, path) {
        Err(LoadError::UnknownConfigKey { key, .. }) => assert_eq!(key, "patch_sise"),
        other => return Err(format!("expected UnknownConfigKey, got {other:?}").into()),
    }
    let bad_type = hub.replace("\"num_layers\": 19", "\"num_layers\": \"nineteen\"");
    assert!(matches!(
        loader::parse_config::<Config>(&bad_type, path),
        Err(LoadError::InvalidConfig { .. })
    ));
    let bad_axes = hub.replace("[16, 56, 56]", "[16, 56, 58]");
    assert!(matches!(
        loader::parse_config::<Config>(&bad_axes, path),
        Err(LoadError::InvalidConfig { .. })
    ));
    assert!(matches!(
        loader::parse_config::<Config>("[1, 2]", path),
        Err(LoadError::InvalidConfig { .. })
    ));
    // Every serialised field is a known key, and every known key is serialised.
    let value = serde_json::to_value(Config::dev())?;
    let mut keys: Vec<&str> = value
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    let mut known = <Config as loader::DiffusersConfig>::fields().to_vec();
    known.sort_unstable();
    assert_eq!(keys, known);
    Ok(())
}
