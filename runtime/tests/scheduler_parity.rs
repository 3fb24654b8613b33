//! The schedulers against diffusers: DDIM's timesteps, ᾱ and every step's result for the
//! configurations of `tools/reference/schedulers.py` (fixture `fixtures/schedulers.json`), and a
//! DDIM `denoise` against the same loop written with diffusers. Flow matching's sigmas are
//! checked by the unit test in `scheduler/flow_match.rs` (same fixture).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // tests fail by panicking

use cachedit_runtime::{
    BetaSchedule, CachedListInfo, CachedTransformer, Conditioning, Ddim, DdimConfig, DenoiseOptions,
    Denoiser, FlowMatchEuler, PredictionType, Scheduler, SchedulerError, SchedulerKind, TimestepSpacing,
    denoise,
};
use candle_core::{Device, Result, Tensor};
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/schedulers.json")).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn max_abs_err(got: &[f64], want: &[f64], what: &str) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}

fn tensor(v: &Value) -> Tensor {
    let v: Vec<f32> = floats(v).into_iter().map(|x| x as f32).collect();
    Tensor::new(v, &Device::Cpu).unwrap()
}

fn to_f64(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

fn ddim_config(c: &Value) -> DdimConfig {
    let f = |k: &str, d: f64| c.get(k).and_then(Value::as_f64).unwrap_or(d);
    let b = |k: &str, d: bool| c.get(k).and_then(Value::as_bool).unwrap_or(d);
    DdimConfig {
        beta_start: f("beta_start", 0.0001),
        beta_end: f("beta_end", 0.02),
        beta_schedule: match c["beta_schedule"].as_str().unwrap() {
            "linear" => BetaSchedule::Linear,
            "scaled_linear" => BetaSchedule::ScaledLinear,
            "squaredcos_cap_v2" => BetaSchedule::SquaredCosCapV2,
            other => panic!("fixture beta schedule {other}"),
        },
        clip_sample: b("clip_sample", true),
        set_alpha_to_one: b("set_alpha_to_one", true),
        steps_offset: c.get("steps_offset").and_then(Value::as_u64).unwrap_or(0) as usize,
        prediction_type: match c["prediction_type"].as_str().unwrap() {
            "epsilon" => PredictionType::Epsilon,
            "v_prediction" => PredictionType::VPrediction,
            "sample" => PredictionType::Sample,
            other => panic!("fixture prediction type {other}"),
        },
        timestep_spacing: match c.get("timestep_spacing").and_then(Value::as_str) {
            None | Some("leading") => TimestepSpacing::Leading,
            Some("trailing") => TimestepSpacing::Trailing,
            Some("linspace") => TimestepSpacing::Linspace,
            Some(other) => panic!("fixture spacing {other}"),
        },
        rescale_betas_zero_snr: b("rescale_betas_zero_snr", false),
        ..DdimConfig::default()
    }
}

/// Timesteps, ᾱ and every step (through the pipeline-facing `Schedule`) of every DDIM
/// configuration of the fixture: each beta schedule, spacing and prediction type.
#[test]
fn ddim_matches_diffusers() {
    let fx = fixture();
    let (x, v) = (tensor(&fx["sample"]), tensor(&fx["model_output"]));
    let mut report = Vec::new();
    for case in fx["ddim"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let steps = case["steps"].as_u64().unwrap() as usize;
        let ddim = Ddim::new(ddim_config(&case["config"])).unwrap();
        let want_ts = ints(&case["timesteps"]);
        assert_eq!(ddim.timesteps(steps).unwrap(), want_ts, "{name}: timesteps");
        let mut e_alpha = 0.0f64;
        for (i, a) in case["alphas_cumprod"].as_object().unwrap() {
            let got = f64::from(ddim.alphas_cumprod()[i.parse::<usize>().unwrap()]);
            e_alpha = e_alpha.max((got - a.as_f64().unwrap()).abs());
        }
        let e_final =
            (f64::from(ddim.final_alpha_cumprod()) - case["final_alpha_cumprod"].as_f64().unwrap()).abs();
        let alpha_tol = if ddim.config().rescale_betas_zero_snr {
            2.4e-7
        } else {
            0.0
        };
        let sched = Scheduler::from(ddim);
        let schedule = sched.schedule(steps, 0).unwrap();
        let model_ts: Vec<f64> = want_ts.iter().map(|&t| t as f64).collect();
        assert_eq!(schedule.timesteps(), model_ts, "{name}: model timesteps");
        let mut e_step = 0.0f64;
        if let Some(want) = case.get("step") {
            for (i, w) in want.as_array().unwrap().iter().enumerate() {
                let got = to_f64(&schedule.step(i, &v, &x).unwrap());
                e_step = e_step.max(max_abs_err(&got, &floats(w), &format!("{name} step {i}")));
            }
        }
        report.push(format!(
            "{name}: alphas_cumprod {e_alpha:.1e} final {e_final:.1e} step {e_step:.1e}"
        ));
        // ᾱ reproduces torch's f32 arithmetic bit for bit, except after the zero-SNR rescale
        // (a few f32 operations per beta, measured 1e-7: two ulps near 1); a step is a few f32
        // operations (measured up to 7e-7).
        assert!(
            e_alpha <= alpha_tol && e_final <= alpha_tol && e_step <= 2e-6,
            "{}",
            report.join("\n")
        );
    }
    println!("{}", report.join("\n"));
}

/// A model with no cached lists predicting `0.9·x + 0.05·cos(t / 100)`: the same function as the
/// fixture's diffusers loop.
struct Toy;

impl CachedTransformer for Toy {
    fn cached_lists(&self) -> Vec<CachedListInfo<'_>> {
        Vec::new()
    }
}

impl Denoiser for Toy {
    fn latent_shape(&self, batch: usize) -> Vec<usize> {
        vec![batch, 4, 3]
    }
    fn synthetic_conditioning(&self, _: usize, _: u64, _: &Device) -> Result<Conditioning> {
        Ok(Conditioning::new())
    }
    fn predict(&self, latents: &Tensor, timestep: &Tensor, _: &Conditioning) -> Result<Tensor> {
        let t = f64::from(timestep.to_vec1::<f32>()?[0]);
        latents.affine(0.9, 0.05 * (t / 100.0).cos())
    }
}

#[test]
fn ddim_denoise_matches_a_diffusers_loop() {
    let fx = fixture();
    let p = &fx["ddim_pipeline"];
    let cfg = fx["ddim"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["name"]
                .as_str()
                .unwrap()
                .starts_with(p["config"].as_str().unwrap())
        })
        .unwrap();
    let shape: Vec<usize> = ints(&p["shape"]).iter().map(|&d| d as usize).collect();
    let latents = tensor(&p["latents"]).reshape(shape).unwrap();
    let want = floats(&p["final"]);
    let steps = p["steps"].as_u64().unwrap() as usize;
    let scheduler = Scheduler::from(Ddim::new(ddim_config(&cfg["config"])).unwrap());
    assert_eq!(
        scheduler,
        Scheduler::for_kind(SchedulerKind::Ddim),
        "DiT is DDIM's registry default"
    );
    let opts = DenoiseOptions {
        steps,
        scheduler,
        ..Default::default()
    };
    let out = denoise(
        &Toy,
        latents.clone(),
        &Conditioning::new(),
        None,
        &opts,
        |_, _| {},
    )
    .unwrap();
    let want_ts: Vec<f64> = ints(&p["timesteps"]).iter().map(|&t| t as f64).collect();
    assert_eq!(out.timesteps, want_ts);
    assert!(out.sigmas.is_empty());
    let err = max_abs_err(&to_f64(&out.latents), &want, "final latents");
    println!("DDIM denoise vs diffusers loop: max abs error {err:.1e}");
    assert!(err < 1e-5, "max error {err}");
    // The same loop from the timesteps given as an override.
    let opts = DenoiseOptions {
        timesteps: Some(want_ts),
        ..opts
    };
    let again = denoise(
        &Toy,
        latents.clone(),
        &Conditioning::new(),
        None,
        &opts,
        |_, _| {},
    )
    .unwrap();
    assert_eq!(to_f64(&again.latents), to_f64(&out.latents));
    // Flow matching on the same model moves elsewhere: the scheduler is really switched.
    let flow = DenoiseOptions {
        steps,
        scheduler: FlowMatchEuler::default().into(),
        ..Default::default()
    };
    let f = denoise(&Toy, latents, &Conditioning::new(), None, &flow, |_, _| {}).unwrap();
    assert!(max_abs_err(&to_f64(&f.latents), &want, "flow") > 1e-2);
}

#[test]
fn overrides_are_checked() {
    let ddim: Scheduler = Ddim::new(DdimConfig::dit()).unwrap().into();
    assert!(matches!(
        ddim.schedule_from_sigmas(&[1.0, 0.0]),
        Err(SchedulerError::Unsupported { .. })
    ));
    assert!(matches!(
        ddim.schedule_from_timesteps(&[999.5]),
        Err(SchedulerError::NonIntegerTimestep(_))
    ));
    assert!(matches!(
        ddim.schedule_from_timesteps(&[1000.0]),
        Err(SchedulerError::TimestepOutOfRange { timestep: 1000, .. })
    ));
    let s = ddim.schedule(4, 0).unwrap();
    let x = Tensor::zeros(2, candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        s.step(4, &x, &x),
        Err(SchedulerError::StepOutOfRange { index: 4, steps: 4 })
    ));
    let flow = Scheduler::default();
    let s = flow.schedule_from_timesteps(&[1000.0, 500.0]).unwrap();
    assert_eq!(s.sigmas().unwrap(), &[1.0, 0.5, 0.0]);
    assert_eq!(s.timesteps(), vec![1000.0, 500.0]);
    // The pipeline rejects a schedule whose length disagrees with `steps`.
    let opts = DenoiseOptions {
        steps: 3,
        scheduler: ddim,
        timesteps: Some(vec![999.0, 499.0]),
        ..Default::default()
    };
    let latents = Tensor::zeros((1, 4, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(denoise(&Toy, latents, &Conditioning::new(), None, &opts, |_, _| {}).is_err());
}

/// The registry's `scheduler:` spellings and the CLI's map to the kinds, and each kind's default
/// scheduler is of that kind (flow matching with Flux's shift, DDIM with DiT's config).
#[test]
fn registry_kinds_give_their_default_schedulers() {
    for (name, kind) in [
        ("flow_match_euler", SchedulerKind::FlowMatchEuler),
        ("flow-match", SchedulerKind::FlowMatchEuler),
        ("ddim", SchedulerKind::Ddim),
    ] {
        assert_eq!(SchedulerKind::from_name(name), Some(kind));
        assert_eq!(Scheduler::for_kind(kind).kind(), kind);
    }
    assert_eq!(SchedulerKind::from_name("dpm"), None);
    match Scheduler::for_kind(SchedulerKind::FlowMatchEuler) {
        Scheduler::FlowMatchEuler(f) => assert!(f.dynamic.is_some()),
        other => panic!("{other:?}"),
    }
    match Scheduler::for_kind(SchedulerKind::Ddim) {
        Scheduler::Ddim(d) => assert_eq!(d.config(), &DdimConfig::dit()),
        other => panic!("{other:?}"),
    }
}
