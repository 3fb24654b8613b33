//! Calibrators through a real `BlockList`: docs/algorithm.md §14's calibrator vectors (T1-T4, F1, F2, D1),
//! DMD fits against torch, polynomial exactness, CFG twins, streams, bounded state.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod calib_support;

use cachedit_runtime::{
    CacheConfig, CacheOptions, CalibratorCacheType, CalibratorConfig, CalibratorKind, CfgLayout, ConfigError,
    ParamsModifier, StepsComputationPolicy, Streams, enable_cache_with_options, summary,
};
use calib_support::{Add, Increments, Net, assert_close, from_f64, pattern_of, t, values};

/// docs/algorithm.md §14: W2, R0.1 (or as given), F1 B0.
fn config(warmup: usize) -> CacheConfig {
    CacheConfig {
        fn_compute_blocks: 1,
        bn_compute_blocks: 0,
        max_warmup_steps: warmup,
        residual_diff_threshold: 0.1,
        ..Default::default()
    }
}

/// What a cached call returned: its step and both streams.
struct Forecast {
    step: usize,
    hidden: Vec<f32>,
    encoder: Vec<f32>,
}

/// Runs a two-block Pattern_0 list: block 0 (Fn) turns the input into exactly zero on both
/// streams, so its residual is `probes[s]` and a cached call returns the forecast itself; block
/// 1 (the middle) adds `r(s)` to the hidden stream and `-2 r(s)` to the encoder stream.
fn run(
    net: &Net<Add<0>>,
    probes: &[f32],
    r: impl Fn(usize) -> Vec<f64>,
    shape: &[usize],
) -> (String, Vec<Forecast>) {
    let mut out = Vec::new();
    for (s, &p) in probes.iter().enumerate() {
        let n: usize = shape.iter().product();
        let probe = from_f64(&vec![f64::from(p); n], shape);
        let zero = from_f64(&vec![0.0; n], shape);
        let rs = r(s);
        let neg: Vec<f64> = rs.iter().map(|x| -2.0 * x).collect();
        let args = Increments {
            h: vec![probe.clone(), from_f64(&rs, shape)],
            e: vec![zero.clone(), from_f64(&neg, shape)],
        };
        let input = Streams::new(probe.neg().unwrap(), zero);
        let y = net.blocks.forward(input, &args).unwrap();
        let record = net.blocks.cache_handle().last_call().unwrap();
        if record.cached {
            out.push(Forecast {
                step: s,
                hidden: values(&y.hidden),
                encoder: values(&y.encoder.unwrap()),
            });
        }
    }
    (pattern_of(&net.trace()), out)
}

fn scalar_run(
    calibrator: CalibratorConfig,
    config: CacheConfig,
    probes: &[f32],
    r: impl Fn(usize) -> f64,
) -> (String, Vec<(usize, f64)>) {
    let net = Net::new(vec![Add::<0>, Add::<0>], CfgLayout::None);
    net.enable(config, Some(calibrator));
    let (pattern, forecasts) = run(&net, probes, |s| vec![r(s)], &[1]);
    let out = forecasts
        .into_iter()
        .map(|f| {
            // The encoder stream got -2 r(s): its forecast is exactly -2 times the hidden one.
            assert_eq!(
                f.encoder[0],
                -2.0 * f.hidden[0],
                "encoder twin at step {}",
                f.step
            );
            (f.step, f64::from(f.hidden[0]))
        })
        .collect();
    (pattern, out)
}

fn check(got: &[(usize, f64)], steps: &[usize], want: &[f64]) {
    let got_steps: Vec<usize> = got.iter().map(|g| g.0).collect();
    assert_eq!(got_steps, steps);
    let v: Vec<f32> = got.iter().map(|g| g.1 as f32).collect();
    assert_close(&v, want, 1e-5, "forecasts");
}

const PROBES: [f32; 10] = [1., 1., 1., 1., 2., 2., 2., 4., 4., 4.];

#[test]
fn vector_t1_taylorseer_order_1() {
    let (p, got) = scalar_run(CalibratorConfig::taylorseer(1), config(2), &PROBES, |s| {
        10.0 + s as f64
    });
    assert_eq!(p, "CCSSCSSCSS");
    check(&got, &[2, 3, 5, 6, 8, 9], &[11., 11., 15., 16., 18., 19.]);
}

#[test]
fn vector_t2_taylorseer_order_2() {
    let (p, got) = scalar_run(CalibratorConfig::taylorseer(2), config(2), &PROBES, |s| {
        (s * s) as f64
    });
    assert_eq!(p, "CCSSCSSCSS");
    check(&got, &[2, 3, 5, 6, 8, 9], &[1., 1., 21., 26., 61., 75.]);
}

#[test]
fn vector_t3_taylorseer_long_streak() {
    let probes = [1., 1., 1., 1., 1., 2., 2., 2., 2., 2.];
    let (p, got) = scalar_run(CalibratorConfig::taylorseer(1), config(2), &probes, |s| {
        10.0 + s as f64
    });
    assert_eq!(p, "CCSSSCSSSS");
    check(&got, &[2, 3, 4, 6, 7, 8, 9], &[11., 11., 11., 16., 17., 18., 19.]);
}

#[test]
fn vector_t4_taylorseer_warmup_3() {
    let probes = [1., 1., 1., 2., 2., 4., 4., 8., 8., 8.];
    let (p, got) = scalar_run(CalibratorConfig::taylorseer(1), config(3), &probes, |s| {
        10.0 + s as f64
    });
    assert_eq!(p, "CCCCSCSCSS");
    check(&got, &[4, 6, 8, 9], &[14., 16., 18., 19.]);
}

#[test]
fn vector_f1_foca() {
    let (p, got) = scalar_run(CalibratorConfig::foca(), config(2), &PROBES, |s| 10.0 + s as f64);
    assert_eq!(p, "CCSSCSSCSS");
    check(&got, &[2, 3, 5, 6, 8, 9], &[12., 13., 16., 19., 17.5, 20.5]);
}

#[test]
fn vector_f2_foca_damped_beyond_three_steps() {
    let (p, got) = scalar_run(CalibratorConfig::foca(), config(3), &[1.0; 10], |s| {
        10.0 + s as f64
    });
    assert_eq!(p, "CCCSSSSSSS");
    let want = [13., 14., 15., 14.25, 12.225, 11.23125, 12.004018];
    check(&got, &[3, 4, 5, 6, 7, 8, 9], &want);
}

#[test]
fn vector_d1_dmd_taylor_fallback_off_by_one() {
    let (p, got) = scalar_run(CalibratorConfig::dmd(), config(2), &PROBES, |s| 10.0 + s as f64);
    assert_eq!(p, "CCSSCSSCSS");
    check(
        &got,
        &[2, 3, 5, 6, 8, 9],
        &[11., 11., 15.333333, 16.666667, 19., 21.],
    );
}

/// A static step mask forces the computed (`C`) / cached (`S`) pattern regardless of diffs.
fn masked(pattern: &str) -> CacheConfig {
    CacheConfig {
        steps_computation_mask: Some(pattern.chars().map(|c| u8::from(c == 'C')).collect()),
        steps_computation_policy: StepsComputationPolicy::Static,
        ..config(1)
    }
}

fn dmd_case(pattern: &str, shape: &[usize], value: impl Fn(f64) -> Vec<f64>) -> Vec<Forecast> {
    let net = Net::new(vec![Add::<0>, Add::<0>], CfgLayout::None);
    net.enable(masked(pattern), Some(CalibratorConfig::dmd()));
    let (p, out) = run(&net, &vec![1.0; pattern.len()], |s| value(s as f64), shape);
    assert_eq!(p, pattern);
    out
}

fn check_forecasts(got: &[Forecast], want: &[(usize, &[f64])]) {
    assert_eq!(got.len(), want.len());
    for (g, (step, w)) in got.iter().zip(want) {
        assert_eq!(g.step, *step);
        assert_close(&g.hidden, w, 2e-5, &format!("step {step}"));
        let twin: Vec<f64> = w.iter().map(|x| -2.0 * x).collect();
        assert_close(&g.encoder, &twin, 2e-5, &format!("encoder step {step}"));
    }
}

// Expected values: tests/fixtures/calibrator_reference.py (cache-dit's DMDCalibrator, torch).

#[test]
fn dmd_fit_matches_torch_on_three_real_modes() {
    let got = dmd_case("CCCCCCCSSS", &[3], |s| {
        let (a, b) = (0.9f64.powf(s), (-0.6f64).powf(s));
        vec![2.0 * a + 0.5 * b, a - b, 3.0 + 0.25 * a]
    });
    check_forecasts(
        &got,
        &[
            (7, &[0.942597032, 0.506290555, 3.11957407]),
            (8, &[0.869332492, 0.413671076, 3.10761642]),
            (9, &[0.769802153, 0.39749822, 3.09685445]),
        ],
    );
}

#[test]
fn dmd_fit_matches_torch_on_a_decaying_rotation() {
    let got = dmd_case("CCCCCCSSSS", &[2], |s| {
        let r = 0.95f64.powf(s);
        vec![r * (0.3 * s).cos(), r * (0.3 * s).sin()]
    });
    check_forecasts(
        &got,
        &[
            (6, &[-0.167014405, 0.71586746]),
            (7, &[-0.352552861, 0.602811277]),
            (8, &[-0.489202023, 0.448116034]),
            (9, &[-0.5697909, 0.269355863]),
        ],
    );
}

#[test]
fn dmd_fit_matches_torch_at_fractional_horizons() {
    let got = dmd_case("CSCSCSCSCSCS", &[3], |s| {
        vec![1.0 + (-0.6f64).powf(s), 2.0 * 0.8f64.powf(s), 0.5]
    });
    check_forecasts(
        &got,
        &[
            (1, &[2.0, 2.0, 0.5]),
            (3, &[1.36000001, 1.27999997, 0.5]),
            (5, &[0.694400072, 0.228799999, 0.5]),
            (7, &[1.02799356, 0.419430405, 0.5]),
            (9, &[1.0100776, 0.268435448, 0.5]),
            (11, &[1.00362802, 0.171798691, 0.5]),
        ],
    );
}

#[test]
fn dmd_fits_each_batch_item_independently() {
    let got = dmd_case("CCCCCSSS", &[2, 4], |s| {
        let (a, b, c, d) = (0.9f64.powf(s), 0.7f64.powf(s), 1.1f64.powf(s), 0.6f64.powf(s));
        vec![a, 2.0 * a + b, 1.0, -b, c, 0.5 * c, 3.0 * d, 0.0]
    });
    let r5 = [
        0.590489924,
        1.34905005,
        1.0,
        -0.168069959,
        1.61050999,
        0.805254996,
        0.233280003,
        0.0,
    ];
    let r6 = [
        0.531440914,
        1.18053114,
        0.99999994,
        -0.117648929,
        1.77156091,
        0.885780454,
        0.139968023,
        0.0,
    ];
    let r7 = [
        0.478296816,
        1.0389483,
        0.99999994,
        -0.082354188,
        1.948717,
        0.974358499,
        0.0839808285,
        0.0,
    ];
    check_forecasts(&got, &[(5, &r5), (6, &r6), (7, &r7)]);
}

#[test]
fn dmd_fit_only_sees_the_last_history_snapshots() {
    let got = dmd_case("CCCCCCCCCCSSCS", &[2], |s| {
        vec![0.9f64.powf(s) + if s >= 4.0 { 0.5 } else { 0.0 }, 0.8f64.powf(s)]
    });
    check_forecasts(
        &got,
        &[
            (10, &[0.847454846, 0.107374184]),
            (11, &[0.810521424, 0.0858993456]),
            (13, &[0.733083606, 0.0357019156]),
        ],
    );
}

#[test]
fn dmd_degenerate_windows_fall_back_without_errors() {
    // All-zero residuals: the fit is degenerate; the forecast is the (zero) newest value.
    let got = dmd_case("CCCCCSS", &[3], |_| vec![0.0; 3]);
    assert!(got.iter().all(|f| f.hidden == [0.0; 3]));
    // A constant residual is forecast as itself.
    let got = dmd_case("CCCCCSS", &[2], |_| vec![1.5, -2.0]);
    for f in &got {
        assert_close(&f.hidden, &[1.5, -2.0], 1e-6, "constant");
    }
}

/// `r(s) = Σ c_i s^i`.
fn poly(c: &[f64], s: f64) -> f64 {
    c.iter().rev().fold(0.0, |acc, x| acc * s + x)
}

#[test]
fn corrected_taylorseer_order_k_forecasts_degree_k_polynomials_exactly() {
    // Computed steps 0..=k+1 (warmup), then a mix of cached runs and computed steps with
    // uneven gaps: after warmup the divided differences are exact.
    let pattern = "CCCCCSCSSCSSSCCSSSS";
    let polys: [&[f64]; 3] = [&[3.0, -0.5], &[1.0, 0.5, -0.25], &[2.0, -1.0, 0.5, 0.125]];
    for (k, c) in polys.iter().enumerate().map(|(i, c)| (i + 1, c)) {
        let net = Net::new(vec![Add::<0>, Add::<0>], CfgLayout::None);
        let calibrator = CalibratorConfig::taylorseer(k).corrected();
        net.enable(masked(pattern), Some(calibrator));
        let (p, got) = run(&net, &vec![1.0; pattern.len()], |s| vec![poly(c, s as f64)], &[1]);
        assert_eq!(p, pattern);
        for f in got {
            let want = poly(c, f.step as f64);
            assert_close(&f.hidden, &[want], 1e-5, &format!("order {k}, step {}", f.step));
        }
    }
}

#[test]
fn cache_dit_taylorseer_is_exact_on_lines_and_biased_on_parabolas() {
    // Computed every third step. Once derivatives exist (from the step-3 update), order 1
    // forecasts a line exactly; order 2 on s² gives (t + e)² - w e with w = 3, not (t + e)²:
    // cache-dit's backward differences over the gap w are evaluated as a Taylor series.
    let pattern = "CSSCSSCSSCSS";
    let (_, got) = scalar_run(
        CalibratorConfig::taylorseer(1),
        masked(pattern),
        &[1.0; 12],
        |s| 3.0 - 0.5 * s as f64,
    );
    for (s, v) in got.iter().filter(|g| g.0 > 3) {
        assert!((v - (3.0 - 0.5 * *s as f64)).abs() < 1e-5, "step {s}: {v}");
    }
    let (_, got) = scalar_run(
        CalibratorConfig::taylorseer(2),
        masked(pattern),
        &[1.0; 12],
        |s| (s * s) as f64,
    );
    let tail: Vec<(usize, f64)> = got.into_iter().filter(|g| g.0 > 6).collect();
    let biased = |t: f64, e: f64| (t + e) * (t + e) - 3.0 * e;
    let want = [biased(6., 1.), biased(6., 2.), biased(9., 1.), biased(9., 2.)];
    check(&tail, &[7, 8, 10, 11], &want);
}

#[test]
fn corrected_timing_differentiates_one_step_earlier() {
    // W3: computed 0, 1, 2, cached from 3. cache-dit's state step at the step-2 update is 1, so
    // no derivative yet and step 3 reuses r(2); the corrected state (step 2 > 1) has one.
    let run_with = |c: CalibratorConfig| scalar_run(c, config(3), &[1.0; 5], |s| 10.0 + s as f64).1;
    check(&run_with(CalibratorConfig::taylorseer(1)), &[3, 4], &[12., 12.]);
    check(
        &run_with(CalibratorConfig::taylorseer(1).corrected()),
        &[3, 4],
        &[13., 14.],
    );
    check(
        &run_with(CalibratorConfig::dmd().corrected()),
        &[3, 4],
        &[13., 14.],
    );
}

#[test]
fn hidden_states_cache_type_forecasts_the_middle_output() {
    // Fn output q(s) = 100 + 5 s, middle residual 10 + s: the middle output is 110 + 6 s. A
    // residual forecast is added to the fresh Fn output; a hidden-states forecast replaces it.
    let net = Net::new(vec![Add::<0>, Add::<0>], CfgLayout::None);
    let calibrator = CalibratorConfig {
        calibrator_cache_type: CalibratorCacheType::HiddenStates,
        ..CalibratorConfig::taylorseer(1)
    };
    net.enable(config(2), Some(calibrator));
    let mut got = Vec::new();
    for (s, &p) in PROBES.iter().enumerate() {
        let q = 100.0 + 5.0 * s as f32;
        let args = Increments {
            h: vec![t(&[p]), t(&[10.0 + s as f32])],
            e: vec![t(&[0.0]), t(&[1.0])],
        };
        let y = net
            .blocks
            .forward(Streams::new(t(&[q - p]), t(&[0.0])), &args)
            .unwrap();
        if net.blocks.cache_handle().last_call().unwrap().cached {
            got.push((s, f64::from(values(&y.hidden)[0])));
        }
    }
    check(&got, &[2, 3, 5, 6, 8, 9], &[116., 116., 140., 146., 158., 164.]);
}

#[test]
fn cfg_branches_keep_separate_calibrators() {
    // Separate CFG: calls (cond, uncond) per step. Each branch forecasts its own sequence as if
    // it ran alone.
    let net = Net::new(vec![Add::<0>, Add::<0>], CfgLayout::Separate);
    net.enable(config(2), Some(CalibratorConfig::taylorseer(1)));
    let mut cond = Vec::new();
    let mut uncond = Vec::new();
    for (s, &p) in PROBES.iter().enumerate() {
        for (branch, r) in [(0, 10.0 + s as f32), (1, 100.0 - 3.0 * s as f32)] {
            let args = Increments {
                h: vec![t(&[p]), t(&[r])],
                e: vec![t(&[0.0]), t(&[-2.0 * r])],
            };
            let y = net
                .blocks
                .forward(Streams::new(t(&[-p]), t(&[0.0])), &args)
                .unwrap();
            if net.blocks.cache_handle().last_call().unwrap().cached {
                let v = (s, f64::from(values(&y.hidden)[0]));
                if branch == 0 { cond.push(v) } else { uncond.push(v) }
            }
        }
    }
    check(&cond, &[2, 3, 5, 6, 8, 9], &[11., 11., 15., 16., 18., 19.]);
    check(&uncond, &[2, 3, 5, 6, 8, 9], &[97., 97., 85., 82., 76., 73.]);
}

#[test]
fn encoder_stream_is_plain_residual_without_the_encoder_calibrator() {
    let calibrator = CalibratorConfig {
        enable_encoder_calibrator: false,
        ..CalibratorConfig::taylorseer(1)
    };
    let net = Net::new(vec![Add::<0>, Add::<0>], CfgLayout::None);
    net.enable(config(2), Some(calibrator));
    let (_, got) = run(&net, &PROBES, |s| vec![10.0 + s as f64], &[1]);
    let hidden: Vec<f32> = got.iter().map(|f| f.hidden[0]).collect();
    let encoder: Vec<f32> = got.iter().map(|f| f.encoder[0]).collect();
    assert_close(&hidden, &[11., 11., 15., 16., 18., 19.], 1e-6, "hidden forecast");
    // The encoder reuses the last computed residual -2 r(last computed step): steps 1, 4, 7.
    assert_close(
        &encoder,
        &[-22., -22., -28., -28., -34., -34.],
        1e-6,
        "plain encoder",
    );
}

#[test]
fn calibrator_state_is_bounded_by_the_options() {
    // 300 steps, computed every third; state after warmup is constant in count and size.
    let pattern: String = (0..300)
        .map(|s| if s < 8 || s % 3 == 0 { 'C' } else { 'S' })
        .collect();
    let calibrators = [
        (CalibratorConfig::taylorseer(1), 2 * 2 + 1),
        (CalibratorConfig::taylorseer(3), 2 * 4 + 1),
        (CalibratorConfig::foca(), 2 * 4 + 1),
        (CalibratorConfig::dmd(), 2 * 8 + 1),
    ];
    for (calibrator, bound) in calibrators {
        let name = calibrator.strify();
        let net = Net::new(vec![Add::<0>, Add::<0>], CfgLayout::None);
        net.enable(masked(&pattern), Some(calibrator));
        let mut seen = Vec::new();
        for s in 0..300 {
            let x = from_f64(&[1.0 + (s as f64 * 0.01).sin(); 64], &[64]);
            let args = Increments {
                h: vec![x.clone(), x.clone()],
                e: vec![x.zeros_like().unwrap(), x.clone()],
            };
            net.blocks
                .forward(Streams::new(x.clone(), x.clone()), &args)
                .unwrap();
            seen.push(net.held());
        }
        // Periodic with the schedule (FoCa holds one more tensor on its second cached call),
        // never growing, within the documented bound.
        for s in 53..300 {
            assert_eq!(seen[s], seen[s - 3], "{name}: state changed at step {s}");
        }
        let (count, bytes) = seen[50..].iter().copied().max().unwrap();
        assert!(count <= bound, "{name}: {count} tensors > {bound}");
        assert_eq!(
            bytes,
            count * 64 * 4,
            "{name}: every held tensor is one stream-sized f32"
        );
    }
}

#[test]
fn a_shape_change_restarts_the_forecast_without_errors() {
    let net = Net::new(vec![Add::<0>, Add::<0>], CfgLayout::None);
    net.enable(config(2), Some(CalibratorConfig::taylorseer(1)));
    let mut outputs = Vec::new();
    for s in 0..10usize {
        let n = if s < 5 { 1 } else { 2 };
        let args = Increments {
            h: vec![
                from_f64(&vec![1.0; n], &[n]),
                from_f64(&vec![10.0 + s as f64; n], &[n]),
            ],
            e: vec![from_f64(&vec![0.0; n], &[n]), from_f64(&vec![0.0; n], &[n])],
        };
        let input = Streams::new(from_f64(&vec![-1.0; n], &[n]), from_f64(&vec![0.0; n], &[n]));
        let y = net.blocks.forward(input, &args).unwrap();
        outputs.push(values(&y.hidden));
    }
    assert_eq!(pattern_of(&net.trace()), "CCSSSCSSSS");
    // After the change at step 5 only the new shape's values count: no derivative from one
    // update, so steps 6.. reuse r(5) = 15 until a derivative exists.
    assert_eq!(outputs[6], vec![15.0, 15.0]);
    assert_eq!(outputs[9], vec![15.0, 15.0]);
}

#[test]
fn invalid_calibrators_are_rejected_when_enabling() {
    let net = Net::new(vec![Add::<0>, Add::<0>], CfgLayout::None);
    let dmd = |history: usize, precision: &str| CalibratorConfig {
        kind: CalibratorKind::Dmd {
            dmd_history: history,
            dmd_rank: 0,
            dmd_ridge: 1e-8,
            dmd_svd_precision: precision.into(),
        },
        ..CalibratorConfig::dmd()
    };
    let enable = |c: CalibratorConfig| {
        let options = CacheOptions {
            cache: config(2),
            calibrator: Some(c),
            modifiers: Vec::new(),
        };
        enable_cache_with_options(&net, &options)
    };
    assert_eq!(
        enable(dmd(1, "medium")),
        Err(ConfigError::DmdHistoryTooShort { found: 1 })
    );
    assert!(matches!(
        enable(dmd(6, "fast")),
        Err(ConfigError::UnknownSvdPrecision { .. })
    ));
    assert!(
        !net.blocks.cache_handle().is_enabled(),
        "nothing attached on error"
    );
    assert!(enable(dmd(6, "high")).is_ok());
}

#[test]
fn names_carry_the_calibrator_and_modifiers_override_it() {
    let net = Net::new(vec![Add::<0>, Add::<0>], CfgLayout::None);
    let mut modifier = ParamsModifier::new("blocks");
    modifier.calibrator = Some(CalibratorConfig::foca());
    let options = CacheOptions {
        cache: config(2),
        calibrator: Some(CalibratorConfig::taylorseer(1)),
        modifiers: vec![modifier],
    };
    enable_cache_with_options(&net, &options).unwrap();
    run(&net, &PROBES, |s| vec![10.0 + s as f64], &[1]);
    let stats = summary(&net);
    assert_eq!(stats[0].name(), "DBCache_F1B0_W2I1M0MC0_R0.1_CFG0_FoCa_S6");
    let rendered = stats[0].render();
    assert!(rendered.contains("Cache buffers: "), "{rendered}");
    assert!(rendered.contains("(calibrator FoCa)"), "{rendered}");
}
