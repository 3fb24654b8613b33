//! DBPrune: docs/algorithm.md §14 vectors N and N2 (per-block decisions, diffs, dynamic thresholds), and
//! through a real `BlockList` on all six patterns: bit identity at threshold 0, pruning with
//! stored residuals, CFG, protected ids, calibrators, statistics and names.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod calib_support;

use cachedit_runtime::{BlockRecord, PruneCall};
use cachedit_runtime::{
    Branch, CacheConfig, CacheContext, CacheType, CalibratorConfig, CfgLayout, Reason, Streams, summary,
};
use calib_support::{Add, Increments, Mix, Net, assert_close, from_f64, t, values};
use candle_core::{Device, Tensor};

/// Feeds every block its own input, as cache-dit's harness does (with a real list a pruned
/// block's output is its input plus a stored residual, so the inputs of N are not reachable).
fn drive(
    config: CacheConfig,
    blocks: usize,
    steps: usize,
    input: impl Fn(usize, usize) -> f32,
) -> (CacheContext, Vec<String>, Vec<Vec<BlockRecord>>) {
    let config = CacheConfig {
        enable_separate_cfg: Some(false),
        ..config
    };
    let mut ctx = CacheContext::new("blocks", config);
    let (mut patterns, mut records) = (Vec::new(), Vec::new());
    for s in 0..steps {
        let mut call = PruneCall::begin(&mut ctx, blocks);
        for i in 0..blocks {
            call.block(i, Streams::hidden(t(&[input(s, i)])), Ok).unwrap();
        }
        let record = call.finish();
        patterns.push(
            record
                .blocks
                .iter()
                .map(|b| if b.pruned { 'p' } else { 'c' })
                .collect(),
        );
        records.push(record.blocks);
    }
    (ctx, patterns, records)
}

fn prune_config(warmup: usize, threshold: f64) -> CacheConfig {
    CacheConfig {
        fn_compute_blocks: 1,
        bn_compute_blocks: 1,
        max_warmup_steps: warmup,
        residual_diff_threshold: threshold,
        ..CacheConfig::dbprune()
    }
}

#[test]
fn vector_n_blocks_prune_on_their_own_inputs() {
    let input = |s: usize, i: usize| if i == 3 { 1.0 + 0.2 * s as f32 } else { 1.0 };
    let (ctx, patterns, _) = drive(prune_config(2, 0.1), 6, 6, input);
    assert_eq!(
        patterns,
        ["cccccc", "cccccc", "cppcpc", "cppcpc", "cppcpc", "cppcpc"]
    );
    let b = ctx.branch(Branch::NonCfg);
    let step2: Vec<f64> = b.diffs_at(2).collect();
    assert_close(
        &step2.iter().map(|&d| d as f32).collect::<Vec<_>>(),
        &[0.0, 0.0, 0.2 / 1.2, 0.0],
        1e-6,
        "step 2 diffs",
    );
    assert_eq!(b.pruned_blocks, [0, 0, 3, 3, 3, 3]);
    assert_eq!(b.actual_blocks, [6; 6]);
    assert_eq!(
        b.cached_steps,
        [2, 3, 4, 5],
        "a step counts once however many blocks pruned"
    );
    // Diffs are recorded per block and never accumulated under DBPrune.
    assert_eq!(b.accumulated_residual_diff, 0.0);
}

#[test]
fn vector_n2_dynamic_threshold_relaxes_per_block() {
    let rates = [0.0, 0.09, 0.12, 0.15, 0.3, 0.0];
    let config = CacheConfig {
        enable_dynamic_prune_threshold: true,
        ..prune_config(1, 0.1)
    };
    let (_, patterns, records) = drive(config, 6, 5, |s, i| 1.0 + rates[i] * s as f32);
    assert_eq!(patterns, ["cccccc", "cpcccc", "cccpcc", "cppccc", "ccccpc"]);
    let thresholds: Vec<f32> = records[1][1..5].iter().map(|b| b.threshold as f32).collect();
    assert_close(
        &thresholds,
        &[0.1, 0.1125, 0.13125, 0.15],
        1e-6,
        "step-1 thresholds",
    );
    assert_eq!(records[1][0].reason, Reason::NonPruneBlock);
    assert_eq!(records[1][5].reason, Reason::NonPruneBlock);
}

/// `(H, E)` inputs of step `s` and branch `b` for pattern `p` (E only for Patterns 0-2).
fn mix_input(p: u8, s: usize, b: usize) -> Streams {
    let base = Tensor::arange(0f32, 20., &Device::Cpu)
        .unwrap()
        .reshape((1, 5, 4))
        .unwrap();
    let h = base.affine(0.1, 0.05 * s as f64 + b as f64).unwrap();
    if p <= 2 {
        let e = base
            .narrow(1, 0, 3)
            .unwrap()
            .affine(-0.2, 0.3 * s as f64)
            .unwrap();
        Streams::new(h, e)
    } else {
        Streams::hidden(h)
    }
}

fn assert_bit_identical(a: &Streams, b: &Streams, what: &str) {
    assert_eq!(values(&a.hidden), values(&b.hidden), "{what}: hidden");
    match (&a.encoder, &b.encoder) {
        (Some(x), Some(y)) => assert_eq!(values(x), values(y), "{what}: encoder"),
        (None, None) => {}
        _ => panic!("{what}: encoder presence differs"),
    }
}

fn threshold_zero_is_bit_identical<const P: u8>() {
    let blocks = || {
        (0..6)
            .map(|i| Mix::<P> {
                a: 0.5 + 0.1 * i as f64,
            })
            .collect::<Vec<_>>()
    };
    let plain = Net::new(blocks(), CfgLayout::Separate);
    let pruned = Net::new(blocks(), CfgLayout::Separate);
    pruned.enable(prune_config(1, 0.0), None);
    for s in 0..6 {
        for b in 0..2 {
            let step = 0.1 * s as f64;
            let want = plain.blocks.forward(mix_input(P, s, b), &step).unwrap();
            let got = pruned.blocks.forward(mix_input(P, s, b), &step).unwrap();
            assert_bit_identical(&got, &want, &format!("Pattern_{P}, step {s}, branch {b}"));
        }
    }
    let stats = &summary(&pruned)[0];
    assert_eq!(stats.cache_type, CacheType::DBPrune);
    assert_eq!(stats.pruned_blocks, [0; 6]);
    assert_eq!(stats.cfg_pruned_blocks, [0; 6]);
    assert_eq!(stats.actual_blocks, [6; 6]);
    assert_eq!(stats.pruned_ratio, Some(0.0));
}

#[test]
fn threshold_zero_is_bit_identical_on_all_six_patterns() {
    threshold_zero_is_bit_identical::<0>();
    threshold_zero_is_bit_identical::<1>();
    threshold_zero_is_bit_identical::<2>();
    threshold_zero_is_bit_identical::<3>();
    threshold_zero_is_bit_identical::<4>();
    threshold_zero_is_bit_identical::<5>();
}

/// Four additive blocks (F1 B1): the middle blocks' inputs never change, so from step 1 they
/// are pruned and their step-0 residuals reused, while their own increments keep changing.
fn prunes_with_stored_residuals<const P: u8>() {
    let net = Net::new(vec![Add::<P>, Add::<P>, Add::<P>, Add::<P>], CfgLayout::None);
    net.enable(prune_config(1, 0.5), None);
    for s in 0..4usize {
        let x = s as f32;
        let args = Increments {
            h: vec![t(&[0.5, 0.5]), t(&[1.0 + x, 0.0]), t(&[0.0, -x]), t(&[x, -x])],
            e: vec![t(&[0.25]), t(&[2.0 + x]), t(&[-x]), t(&[3.0 * x])],
        };
        let input = if P <= 2 {
            Streams::new(t(&[1.0, 2.0]), t(&[1.0]))
        } else {
            Streams::hidden(t(&[1.0, 2.0]))
        };
        let y = net.blocks.forward(input, &args).unwrap();
        // Step 0 computes everything; later the middle blocks add their step-0 increments.
        let middle = if s == 0 { 0.0 } else { 1.0 };
        let h1 = [1.0 + x * (1.0 - middle), 0.0];
        let h2 = [0.0, -x * (1.0 - middle)];
        let want_h = [1.5 + h1[0] + h2[0] + x, 2.5 + h1[1] + h2[1] - x];
        assert_eq!(values(&y.hidden), want_h, "Pattern_{P}, step {s}");
        let want_e = match P {
            0 | 1 => Some(1.25 + (2.0 + x * (1.0 - middle)) - x * (1.0 - middle) + 3.0 * x),
            2 => Some(1.0),
            3 => None,
            _ => Some(3.0 * x),
        };
        assert_eq!(
            y.encoder.map(|e| values(&e)[0]),
            want_e,
            "Pattern_{P} encoder, step {s}"
        );
    }
    let stats = &summary(&net)[0];
    assert_eq!(stats.pruned_blocks, [0, 2, 2, 2], "Pattern_{P}");
    assert_eq!(stats.cached_steps, [1, 2, 3]);
    assert_eq!(stats.pruned_ratio, Some(6.0 / 16.0));
    assert_eq!(stats.name(), "DBPrune_F1B1_W1I1M0MC0_R0.5_P37.5_T0O0_S3");
    let rendered = stats.render();
    assert!(rendered.contains("| Pruned Blocks | Diffs P00 |"), "{rendered}");
    assert!(rendered.contains("| 6             | 0.0       |"), "{rendered}");
    assert!(
        rendered.contains("Dynamic Block Prune Ratio: 37.5% (6/16)\n"),
        "{rendered}"
    );
}

#[test]
fn prunes_with_stored_residuals_on_all_six_patterns() {
    prunes_with_stored_residuals::<0>();
    prunes_with_stored_residuals::<1>();
    prunes_with_stored_residuals::<2>();
    prunes_with_stored_residuals::<3>();
    prunes_with_stored_residuals::<4>();
    prunes_with_stored_residuals::<5>();
}

fn additive_step(net: &Net<Add<0>>, h: [f32; 5], x0: f32) -> Streams {
    let args = Increments {
        h: h.iter().map(|v| t(&[*v])).collect(),
        e: vec![t(&[0.0]); 5],
    };
    net.blocks
        .forward(Streams::new(t(&[x0]), t(&[0.0])), &args)
        .unwrap()
}

#[test]
fn non_prune_block_ids_are_always_computed() {
    let net = Net::new(vec![Add::<0>; 5], CfgLayout::None);
    let config = CacheConfig {
        non_prune_block_ids: vec![2, 40],
        ..prune_config(1, 0.5)
    };
    net.enable(config, None);
    for _ in 0..4 {
        additive_step(&net, [1.0; 5], 1.0);
    }
    let trace = net.trace();
    let pruned: Vec<Vec<usize>> = trace
        .iter()
        .map(|r| r.blocks.iter().filter(|b| b.pruned).map(|b| b.index).collect())
        .collect();
    assert_eq!(pruned, [vec![], vec![1, 3], vec![1, 3], vec![1, 3]]);
}

#[test]
fn separate_cfg_branches_prune_independently_or_share_diffs() {
    // The unconditional call's block inputs change a lot; the conditional's do not.
    let run = |share: bool| {
        let net = Net::new(vec![Add::<0>; 5], CfgLayout::Separate);
        let config = CacheConfig {
            cfg_diff_compute_separate: !share,
            ..prune_config(1, 0.1)
        };
        net.enable(config, None);
        for s in 0..4 {
            additive_step(&net, [1.0; 5], 1.0);
            additive_step(&net, [1.0; 5], 1.0 + s as f32);
        }
        summary(&net).remove(0)
    };
    let separate = run(false);
    assert_eq!(separate.pruned_blocks, [0, 3, 3, 3]);
    assert_eq!(separate.cfg_pruned_blocks, [0, 0, 0, 0]);
    // cfg_diff_compute_separate = false: the CFG call reuses the conditional call's diff of the
    // same block (cache-dit raises here).
    let shared = run(true);
    assert_eq!(shared.cfg_pruned_blocks, [0, 3, 3, 3]);
    let cond: Vec<f64> = shared.residual_diffs.iter().map(|d| d.1).collect();
    let cfg: Vec<f64> = shared.cfg_residual_diffs.iter().map(|d| d.1).collect();
    assert_eq!(cond, cfg);
    assert!(
        shared
            .render()
            .contains("CFG Dynamic Block Prune Ratio: 45.0% (9/20)")
    );
}

#[test]
fn each_block_forecasts_with_its_own_calibrator() {
    // One prunable block (block 1) whose input never changes and whose increment is 10 + s; a
    // streak limit of 2 makes it compute at steps 0, 1, 4, 7, 10 (docs/algorithm.md §14 vector B2's pattern).
    let net = Net::new(vec![Add::<0>; 3], CfgLayout::None);
    let config = CacheConfig {
        max_warmup_steps: 2,
        max_continuous_cached_steps: 2,
        ..prune_config(2, 0.1)
    };
    net.enable(config, Some(CalibratorConfig::taylorseer(1)));
    let mut got = Vec::new();
    for s in 0..12usize {
        let x = s as f32;
        let args = Increments {
            h: vec![t(&[1.0]), t(&[10.0 + x]), t(&[0.0])],
            e: vec![t(&[0.0]), t(&[-(10.0 + x)]), t(&[0.0])],
        };
        let y = net
            .blocks
            .forward(Streams::new(t(&[0.0]), t(&[0.0])), &args)
            .unwrap();
        got.push((values(&y.hidden)[0] - 1.0, values(&y.encoder.unwrap())[0]));
    }
    let pattern: String = net
        .trace()
        .iter()
        .map(|r| if r.cached { 'S' } else { 'C' })
        .collect();
    assert_eq!(pattern, "CCSSCSSCSSCS");
    // TaylorSeer order 1 as in vector T1, on the block's residual: exact values on computed
    // steps, forecasts on pruned ones.
    let want = [10., 11., 11., 11., 14., 15., 16., 17., 18., 19., 20., 21.];
    let hidden: Vec<f32> = got.iter().map(|g| g.0).collect();
    assert_close(&hidden, &want, 1e-6, "block forecasts");
    let encoder: Vec<f32> = got.iter().map(|g| -g.1).collect();
    assert_close(&encoder, &want, 1e-6, "encoder forecasts");
}

#[test]
fn force_reduce_calibrator_vram_strides_the_block_inputs() {
    let held = |reduce: bool| {
        let net = Net::new(vec![Add::<3>; 4], CfgLayout::None);
        let config = CacheConfig {
            force_reduce_calibrator_vram: reduce,
            ..prune_config(1, 0.5)
        };
        net.enable(config, Some(CalibratorConfig::taylorseer(1)));
        for s in 0..3 {
            let row: Vec<f64> = (0..8).map(|j| 1.0 + j as f64).collect();
            let h = from_f64(&row, &[1, 8]);
            let args = Increments {
                h: vec![h.clone(); 4],
                e: vec![h.clone(); 4],
            };
            let input = Streams::hidden(h.affine(1.0, s as f64 * 1e-3).unwrap());
            net.blocks.forward(input, &args).unwrap();
        }
        (net.held(), summary(&net).remove(0).pruned_blocks)
    };
    let ((full_count, full_bytes), full_pruned) = held(false);
    let ((count, bytes), pruned) = held(true);
    assert_eq!(pruned, full_pruned);
    assert_eq!(pruned, [0, 2, 2]);
    assert_eq!(count, full_count);
    // Two prunable blocks keep their input probe as x[..., ::4]: 2 of 8 values.
    assert_eq!(full_bytes - bytes, 2 * (8 - 2) * 4);
}

#[test]
fn per_block_calibrators_count_steps_from_the_first_call() {
    // Blocks get their state when first reached, during the first call: with the corrected
    // timing the state must still count that call (W3: computed 0-2, then pruned; the corrected
    // state has a derivative from the step-2 update, cache-dit's does not).
    let forecast = |calibrator: CalibratorConfig| {
        let net = Net::new(vec![Add::<0>; 3], CfgLayout::None);
        net.enable(prune_config(3, 0.1), Some(calibrator));
        let mut out = Vec::new();
        for s in 0..5usize {
            let args = Increments {
                h: vec![t(&[1.0]), t(&[10.0 + s as f32]), t(&[0.0])],
                e: vec![t(&[0.0]); 3],
            };
            let y = net
                .blocks
                .forward(Streams::new(t(&[0.0]), t(&[0.0])), &args)
                .unwrap();
            out.push(values(&y.hidden)[0] - 1.0);
        }
        out
    };
    assert_eq!(
        forecast(CalibratorConfig::taylorseer(1)),
        [10., 11., 12., 12., 12.]
    );
    assert_eq!(
        forecast(CalibratorConfig::taylorseer(1).corrected()),
        [10., 11., 12., 13., 14.]
    );
}
