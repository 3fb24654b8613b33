"""PyTorch + cache-dit side of `cachedit bench`: the same model, inputs and config grid.

    cachedit bench --size large --quick --export DIR --json ours.json
    /work/venv-ref/bin/python tools/reference/bench_torch.py DIR --quick --threads 2 --json torch.json
    /work/venv-ref/bin/python tools/reference/bench_torch.py compare ours.json torch.json

`DIR` is what `cachedit bench --export DIR` writes: a diffusers `FluxTransformer2DModel` folder
(`config.json` + `diffusion_pytorch_model.safetensors`) and `inputs.safetensors` (`latents`,
`encoder_hidden_states`, `pooled_projections`, `img_ids`, `txt_ids`, `sigmas`). This script runs
the transformer alone (no VAE, no text encoders) in an Euler loop over the exported sigmas, in
eager f32 on CPU with `torch.set_num_threads(--threads)`: once without cache (the baseline), once
always-cached (the floor of the overhead model, as `cachedit bench` does) and for every config of
the grid with cache-dit's transformer-only interface (`enable_cache(transformer, ...)` with
`num_inference_steps` set, `disable_cache` between configs). It prints the same table as
`cachedit bench`; the cached steps come from `cache_dit.summary`.

`compare` puts the two JSON files side by side: baseline time ours / torch, and per config
whether the cached-step lists are equal and the PSNR difference (ours - cache-dit's).
"""

import argparse
import json
import logging
import os
import sys
import time

os.environ.setdefault("CACHE_DIT_LOG_LEVEL", "error")  # before cache_dit is imported

import torch
from safetensors.torch import load_file


def grid(steps, quick):
    """The grid of `src/cli/bench.rs` (`grid`): same names, same order."""
    cases = []
    layouts = [(1, 0)] if quick else [(1, 0), (8, 0), (1, 1)]
    thresholds = [0.08, 0.12, 0.2] if quick else [0.05, 0.08, 0.12, 0.2, 0.3]
    orders = [0] if quick else [0, 1, 2]
    for f, b in layouts:
        for r in thresholds:
            for order in orders:
                name = f"F{f}B{b} R{r}" + (f" T{order}" if order > 0 else "")
                cases.append(dict(name=name, fn=f, bn=b, threshold=r, order=order, mask=None))
    cases.append(dict(name="F1B0 R0.12 mask=medium", fn=1, bn=0, threshold=0.12, order=0, mask="medium"))
    return cases


def fidelity(base, x):
    """PSNR over the baseline's range and max abs error, as `cachedit::demo::fidelity`."""
    base, x = base.double(), x.double()
    diff = base - x
    mse = diff.pow(2).mean().item()
    max_err = diff.abs().max().item()
    rng = max(base.max().item() - base.min().item(), sys.float_info.min)
    psnr = float("inf") if mse == 0 else 10.0 * torch.log10(torch.tensor(rng * rng / mse)).item()
    return psnr, max_err


def run_torch(args):
    import cache_dit
    from cache_dit import DBCacheConfig, TaylorSeerCalibratorConfig
    from diffusers import FluxTransformer2DModel

    logging.getLogger("cache_dit").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = FluxTransformer2DModel.from_pretrained(args.dir, torch_dtype=torch.float32).eval()
    inp = load_file(os.path.join(args.dir, "inputs.safetensors"))
    sigmas = inp["sigmas"].double().tolist()
    steps = len(sigmas) - 1
    n_blocks = model.config.num_layers + model.config.num_single_layers
    hidden = model.config.num_attention_heads * model.config.attention_head_dim

    def generate(n_steps=steps):
        x = inp["latents"].clone()
        with torch.inference_mode():
            start, cpu0 = time.perf_counter(), time.process_time()
            for i in range(n_steps):
                sigma, nxt = sigmas[i], sigmas[i + 1]
                # As `cachedit::denoise`: timestep = f32(sigma * 1000), the model gets it / 1000.
                t = torch.full((x.shape[0],), sigma * 1000.0, dtype=torch.float32) / 1000.0
                v = model(
                    hidden_states=x,
                    encoder_hidden_states=inp["encoder_hidden_states"],
                    pooled_projections=inp["pooled_projections"],
                    timestep=t,
                    img_ids=inp["img_ids"],
                    txt_ids=inp["txt_ids"],
                    return_dict=False,
                )[0]
                x = x + v * (nxt - sigma)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
        return x, (wall, cpu)

    def cached(case, steps_mask=None):
        cache = DBCacheConfig(
            Fn_compute_blocks=case["fn"],
            Bn_compute_blocks=case["bn"],
            residual_diff_threshold=case["threshold"],
            num_inference_steps=steps,
            enable_separate_cfg=False,
            **(dict(max_warmup_steps=case["warmup"]) if "warmup" in case else {}),
            **(dict(steps_computation_mask=steps_mask) if steps_mask is not None else {}),
        )
        calib = TaylorSeerCalibratorConfig(taylorseer_order=case["order"]) if case["order"] > 0 else None
        cache_dit.enable_cache(model, cache_config=cache, calibrator_config=calib)
        x, times = generate()
        stats = cache_dit.summary(model, logging=False)
        cached_steps = sorted(stats[0].cached_steps) if stats else []
        cache_dit.disable_cache(model)
        return x, times, cached_steps

    print(
        f"torch {torch.__version__}, cache-dit {cache_dit.__version__}: hidden {hidden}, "
        f"{model.config.num_layers} double + {model.config.num_single_layers} single blocks, "
        f"{inp['latents'].shape[1]} image + {inp['encoder_hidden_states'].shape[1]} text tokens, "
        f"{steps} steps, {torch.get_num_threads()} threads"
    )
    generate(min(steps, 2))  # warm allocator and kernels with two steps
    base, (t_base, c_base) = generate()
    floor_case = dict(name="floor", fn=1, bn=0, threshold=1.0, order=0, warmup=1)
    _, (t_floor, c_floor), floor_cached = cached(floor_case)
    all_blocks = n_blocks * steps
    floor_blocks = sum(1 if i in floor_cached else n_blocks for i in range(steps))

    def fit(base_t, floor_t):
        b = (base_t - floor_t) / max(all_blocks - floor_blocks, 1)
        return max(base_t - b * all_blocks, 0.0), b

    e, b = fit(t_base, t_floor)
    ec, bc = fit(c_base, c_floor)
    print(f"baseline {t_base:.3f} s (CPU {c_base:.3f} s); per block execution {b * 1e3:.2f} ms; unskippable {e:.3f} s")
    print()
    print("| config                 | time (s) | CPU (s) | speedup | blocks computed | overhead | overhead CPU | PSNR (dB) | max abs err | cached steps |")
    print("|------------------------|----------|---------|---------|-----------------|----------|--------------|-----------|-------------|--------------|")
    rows = []
    for case in grid(steps, args.quick):
        if args.only and case["name"] not in args.only:
            continue
        mask = cache_dit.steps_mask(total_steps=steps, mask_policy=case["mask"]) if case["mask"] else None
        x, (t, c), cached_steps = cached(case, mask)
        fn_bn = case["fn"] + case["bn"]
        ran = sum(fn_bn if i in cached_steps else n_blocks for i in range(steps))
        frac = ran / all_blocks
        overhead, overhead_cpu = t / (e + b * ran), c / (ec + bc * ran)
        psnr, max_err = fidelity(base, x)
        print(
            f"| {case['name']:<22} | {t:>8.3f} | {c:>7.3f} | {t_base / t:>6.2f}x | {frac * 100:>14.1f}% | {overhead:>8.3f} "
            f"| {overhead_cpu:>12.3f} | {psnr:>9.2f} | {max_err:>11.4f} | {len(cached_steps):>12} |"
        )
        rows.append(dict(
            config=case["name"], time_s=t, cpu_s=c, speedup=t_base / t, computed_fraction=frac,
            overhead_ratio=overhead, overhead_ratio_cpu=overhead_cpu, psnr_db=psnr, max_abs_err=max_err,
            cached_steps=cached_steps,
        ))
    if args.json:
        doc = dict(
            torch=torch.__version__, cache_dit=cache_dit.__version__, threads=torch.get_num_threads(),
            baseline_s=t_base, baseline_cpu_s=c_base, floor_s=t_floor, floor_cpu_s=c_floor,
            block_ms=b * 1e3, unskippable_s=e, block_cpu_ms=bc * 1e3, unskippable_cpu_s=ec, steps=steps,
            blocks=n_blocks, runs=rows,
        )
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"wrote {args.json}")


def compare(ours_path, torch_path):
    ours = json.load(open(ours_path))
    ref = json.load(open(torch_path))
    print(
        f"baseline: ours {ours['baseline_s']:.3f} s ({ours.get('threads')} threads), "
        f"torch {ref['baseline_s']:.3f} s ({ref['threads']} threads): ratio ours/torch "
        f"{ours['baseline_s'] / ref['baseline_s']:.3f}"
    )
    if ref.get("baseline_cpu_s") and ours.get("baseline_cpu_s"):
        print(
            f"baseline CPU time: ours {ours['baseline_cpu_s']:.3f} s, torch {ref['baseline_cpu_s']:.3f} s: "
            f"ratio ours/torch {ours['baseline_cpu_s'] / ref['baseline_cpu_s']:.3f}"
        )
    print(
        f"per block execution: ours {ours['block_ms']:.2f} ms, torch {ref['block_ms']:.2f} ms "
        f"(ratio {ours['block_ms'] / ref['block_ms']:.3f}); unskippable: ours {ours['unskippable_s']:.3f} s, "
        f"torch {ref['unskippable_s']:.3f} s"
    )
    print()
    print("| config                 | overhead ours (wall / CPU) | overhead cache-dit (wall / CPU) | cached steps equal | PSNR ours | PSNR cache-dit | ΔPSNR (dB) |")
    print("|------------------------|----------------------------|---------------------------------|--------------------|-----------|----------------|------------|")
    by_name = {r["config"]: r for r in ref["runs"]}
    mismatches = 0
    for r in ours["runs"]:
        t = by_name.get(r["config"])
        if t is None:
            continue
        same = r["cached_steps"] == t["cached_steps"]
        mismatches += not same
        print(
            f"| {r['config']:<22} | {r['overhead_ratio']:>12.3f} / {r.get('overhead_ratio_cpu', float('nan')):>11.3f} "
            f"| {t['overhead_ratio']:>15.3f} / {t.get('overhead_ratio_cpu', float('nan')):>13.3f} "
            f"| {'yes' if same else 'NO':>18} | {r['psnr_db']:>9.2f} | {t['psnr_db']:>14.2f} "
            f"| {r['psnr_db'] - t['psnr_db']:>+10.2f} |"
        )
        if not same:
            print(f"    ours:      {r['cached_steps']}")
            print(f"    cache-dit: {t['cached_steps']}")
    print()
    print(f"{mismatches} config(s) with different cached-step lists")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "compare":
        p = argparse.ArgumentParser(description="compare cachedit bench JSON with bench_torch JSON")
        p.add_argument("cmd")
        p.add_argument("ours")
        p.add_argument("torch")
        a = p.parse_args()
        compare(a.ours, a.torch)
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dir", help="folder written by `cachedit bench --export`")
    p.add_argument("--json", help="also write the results as JSON here")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--quick", action="store_true", help="only F1B0 at three thresholds + the mask")
    p.add_argument("--only", action="append", default=[], help="run only the grid config of this name (repeatable)")
    run_torch(p.parse_args())


if __name__ == "__main__":
    main()
