//! DDIM against diffusers: timesteps, ᾱ and every step's result for the configurations of
//! `tools/reference/ddim.py` (fixture `fixtures/ddim.json`), and a whole denoising loop through
//! `denoise` against diffusers' loop over the same toy model.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // tests fail by panicking

use cachedit_runtime::registry::SchedulerKind;
use cachedit_runtime::{
    BetaSchedule, CachedListInfo, CachedTransformer, Conditioning, Ddim, DdimConfig, DenoiseOptions,
    Denoiser, PredictionType, Scheduler, SchedulerError, TimestepSpacing, denoise,
};
use candle_core::{Device, Result, Tensor};
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/ddim.json")).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn tensor(v: &Value) -> Tensor {
    let v: Vec<f32> = floats(v).into_iter().map(|x| x as f32).collect();
    Tensor::new(v, &Device::Cpu).unwrap()
}

/// The largest `|a - b| / max(1, |b|)`.
fn max_err(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0.0, f64::max)
}

fn config(c: &Value) -> DdimConfig {
    DdimConfig {
        beta_start: c.get("beta_start").and_then(Value::as_f64).unwrap_or(0.0001),
        beta_end: c.get("beta_end").and_then(Value::as_f64).unwrap_or(0.02),
        beta_schedule: match c["beta_schedule"].as_str().unwrap() {
            "linear" => BetaSchedule::Linear,
            "scaled_linear" => BetaSchedule::ScaledLinear,
            "squaredcos_cap_v2" => BetaSchedule::SquaredCosCapV2,
            other => panic!("fixture beta schedule {other}"),
        },
        clip_sample: c["clip_sample"].as_bool().unwrap(),
        set_alpha_to_one: c["set_alpha_to_one"].as_bool().unwrap(),
        steps_offset: c["steps_offset"].as_u64().unwrap() as usize,
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
        rescale_betas_zero_snr: c
            .get("rescale_betas_zero_snr")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        ..DdimConfig::default()
    }
}

#[test]
fn ddim_matches_diffusers() {
    let fx = fixture();
    let (x, v) = (tensor(&fx["sample"]), tensor(&fx["model_output"]));
    let mut report = Vec::new();
    for case in fx["ddim"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let mut s = Ddim::new(config(&case["config"])).unwrap();
        s.set_timesteps(case["steps"].as_u64().unwrap() as usize).unwrap();
        let want: Vec<i64> = case["timesteps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_i64().unwrap())
            .collect();
        assert_eq!(s.int_timesteps(), want.as_slice(), "{name}: timesteps");
        let mut e_alpha = 0.0f64;
        for (i, a) in case["alphas_cumprod"].as_object().unwrap() {
            let got = f64::from(s.alphas_cumprod()[i.parse::<usize>().unwrap()]);
            e_alpha = e_alpha.max((got - a.as_f64().unwrap()).abs());
        }
        let e_final =
            (f64::from(s.final_alpha_cumprod()) - case["final_alpha_cumprod"].as_f64().unwrap()).abs();
        let mut e_step = 0.0f64;
        if let Some(steps) = case.get("step") {
            for (i, want) in steps.as_array().unwrap().iter().enumerate() {
                let got: Vec<f64> = s
                    .step(i, &v, &x)
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
                    .into_iter()
                    .map(f64::from)
                    .collect();
                e_step = e_step.max(max_err(&got, &floats(want)));
            }
        }
        report.push(format!(
            "{name}: alphas_cumprod {e_alpha:.1e} final {e_final:.1e} step {e_step:.1e}"
        ));
        // ᾱ bit-identical (torch's f32 linspace and f64-accumulated cumprod are reproduced),
        // except after the zero-SNR rescale (a few more f32 operations per beta; measured 1e-7,
        // two ulps near 1); steps to f32 rounding.
        let alpha_tol = if s.config().rescale_betas_zero_snr {
            2.4e-7
        } else {
            0.0
        };
        assert!(
            e_alpha <= alpha_tol && e_final <= alpha_tol && e_step <= 1e-6,
            "{}",
            report.join("\n")
        );
    }
    println!("{}", report.join("\n"));
}

/// ε = 0.5·x·(t/1000) + 0.1, as the fixture's loop; no cached lists.
struct Toy;

impl CachedTransformer for Toy {
    fn cached_lists(&self) -> Vec<CachedListInfo<'_>> {
        Vec::new()
    }
}

impl Denoiser for Toy {
    fn latent_shape(&self, batch: usize) -> Vec<usize> {
        vec![batch, 8]
    }
    fn synthetic_conditioning(&self, _: usize, _: u64, _: &Device) -> Result<Conditioning> {
        Ok(Conditioning::new())
    }
    fn predict(&self, latents: &Tensor, timestep: &Tensor, _: &Conditioning) -> Result<Tensor> {
        let t = f64::from(timestep.to_vec1::<f32>()?[0]);
        latents.affine(0.5 * t / 1000.0, 0.1)
    }
}

#[test]
fn denoise_with_ddim_reproduces_diffusers_loop() {
    let fx = fixture();
    let loop_ = &fx["loop"];
    let steps = loop_["steps"].as_u64().unwrap() as usize;
    let latents = tensor(&fx["sample"]).unsqueeze(0).unwrap();
    let opts = DenoiseOptions {
        steps,
        scheduler: Scheduler::for_kind(SchedulerKind::Ddim),
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
    let want_t: Vec<f64> = floats(&loop_["timesteps"]);
    // The same timesteps given as an override give the same latents.
    let given = DenoiseOptions {
        timesteps: Some(want_t.clone()),
        ..opts.clone()
    };
    let again = denoise(
        &Toy,
        latents.clone(),
        &Conditioning::new(),
        None,
        &given,
        |_, _| {},
    )
    .unwrap();
    assert_eq!(
        again.latents.to_vec2::<f32>().unwrap(),
        out.latents.to_vec2::<f32>().unwrap()
    );
    for bad in [vec![999.0], vec![999.5; 10], vec![1000.0; 10]] {
        let o = DenoiseOptions {
            timesteps: Some(bad.clone()),
            ..opts.clone()
        };
        assert!(
            denoise(&Toy, latents.clone(), &Conditioning::new(), None, &o, |_, _| {}).is_err(),
            "{bad:?}"
        );
    }
    assert_eq!(out.timesteps, want_t);
    assert!(out.sigmas.is_empty());
    let got: Vec<f64> = out
        .latents
        .squeeze(0)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect();
    let e = max_err(&got, &floats(&loop_["latents"]));
    println!("10-step DDIM loop vs diffusers: max error {e:.1e}");
    assert!(e <= 1e-6, "{got:?}");
}

#[test]
fn bad_schedules_are_typed_errors() {
    let ddim = Scheduler::from(DdimConfig::dit());
    assert!(matches!(ddim.plan(0, 1, None), Err(SchedulerError::ZeroSteps)));
    assert!(matches!(
        ddim.plan_timesteps(1, &[999.5]),
        Err(SchedulerError::BadTimesteps { steps: 1, .. })
    ));
    assert!(matches!(
        ddim.plan_timesteps(2, &[999.0]),
        Err(SchedulerError::BadTimesteps { steps: 2, .. })
    ));
    assert!(matches!(
        ddim.plan_timesteps(1, &[1000.0]),
        Err(SchedulerError::TimestepOutOfRange { timestep: 1000, .. })
    ));
    assert_eq!(
        ddim.plan_timesteps(2, &[900.0, 100.0]).unwrap().timesteps(),
        vec![900.0, 100.0]
    );
    // Flow matching: timestep = sigma · 1000, the last step ending at 0.
    let flow = Scheduler::default().plan_timesteps(2, &[1000.0, 500.0]).unwrap();
    assert_eq!(flow.sigmas(), &[1.0, 0.5, 0.0]);
    assert!(matches!(
        ddim.plan(1001, 1, None),
        Err(SchedulerError::TooManySteps { .. })
    ));
    assert!(matches!(
        ddim.plan(4, 1, Some(&[1.0, 0.5, 0.0])),
        Err(SchedulerError::SigmasWithDdim)
    ));
    let flow = Scheduler::default();
    assert!(matches!(
        flow.plan(4, 1, Some(&[1.0, 0.0])),
        Err(SchedulerError::BadSigmas { .. })
    ));
    assert!(matches!(
        flow.plan(1, 1, Some(&[f64::NAN, 0.0])),
        Err(SchedulerError::BadSigmas { .. })
    ));
    let plan = flow.plan(2, 1, Some(&[1.0, 0.5, 0.0])).unwrap();
    assert_eq!(plan.sigmas(), &[1.0, 0.5, 0.0]);
    let x = Tensor::new(&[1.0f32], &Device::Cpu).unwrap();
    assert!(matches!(
        plan.step(2, &x, &x),
        Err(SchedulerError::StepOutOfRange { index: 2, .. })
    ));
}
