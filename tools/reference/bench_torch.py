"""PyTorch + cache-dit side of `cachedit bench`: the same model, inputs and config grid.

    cachedit bench --size large --quick --export DIR --json ours.json
    /work/venv-ref/bin/python tools/reference/bench_torch.py DIR --quick --threads 2 --json torch.json
    /work/venv-ref/bin/python tools/reference/bench_torch.py compare ours.json torch.json

`DIR` is what `cachedit bench --export DIR` writes: a diffusers `FluxTransformer2DModel` folder
(`config.json` + `diffusion_pytorch_model.safetensors`) and `inputs.safetensors` (`latents`,
`encoder_hidden_states`, `pooled_projections`, `img_ids`, `txt_ids`, `sigmas`). This script runs
the transformer alone (no VAE, no text encoders) in an Euler loop over the exported sigmas, in
eager f32 on CPU with `torch.set_num_threads(--threads)`: once without cache (the baseline), twice
always-cached (the two floors of the overhead model, as `cachedit bench` does) and for every config
of the grid with cache-dit's transformer-only interface (`enable_cache(transformer, ...)` with
`num_inference_steps` set, `disable_cache` between configs). It prints the same table as
`cachedit bench`; the cached steps come from `cache_dit.summary`.

`compare OURS.json [OURS2.json ...] TORCH.json` puts the two sides next to each other: baseline
time ours / torch, and per config whether the cached-step lists are equal and the PSNR difference
(ours - cache-dit's). Several of our files (a grid split over processes with `--only`) are read as
one. `table OURS.json [...]` prints our side alone as the markdown table of BENCHMARKS.md.
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


def executions(cached_steps, fn, bn, n_double, n_single, steps):
    """Double and single block executions of a run: every block on a computed step, the first
    `fn` and last `bn` of the chained list (doubles, then singles) on a cached one."""
    front_d = min(fn, n_double)
    front_s = min(max(fn - n_double, 0), n_single)
    back_s = min(bn, n_single - front_s)
    back_d = min(max(bn - n_single, 0), n_double - front_d)
    cached = set(cached_steps)
    d = sum(front_d + back_d if i in cached else n_double for i in range(steps))
    s = sum(front_s + back_s if i in cached else n_single for i in range(steps))
    return d, s


def fit(refs):
    """(E, b_d, b_s) solving `t = E + b_d*d + b_s*s` on three references [(t, (d, s))]; one
    shared block cost from the first two where the three cannot separate the kinds."""
    import numpy as np

    a = np.array([[1.0, d, s] for _, (d, s) in refs])
    y = np.array([t for t, _ in refs])
    if abs(np.linalg.det(a)) > 1e-9 * max(1.0, abs(a).max()) ** 2:
        return tuple(float(v) for v in np.linalg.solve(a, y))
    (t0, e0), (t1, e1) = refs[0], refs[1]
    b = (t0 - t1) / max(sum(e0) - sum(e1), 1)
    return t0 - b * sum(e0), b, b


def ideal(model, ran):
    return model[0] + model[1] * ran[0] + model[2] * ran[1]


def cost_json(model):
    return dict(unskippable_s=model[0], double_block_ms=model[1] * 1e3, single_block_ms=model[2] * 1e3)


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
    # The cost model of `cachedit bench` (src/cli/cost_model.rs): time = E + b_d*d + b_s*s over
    # the double and single block executions, solved on the baseline and two always-cached
    # floors (Fn = 1, and Fn = every double block).
    n_double, n_single = model.config.num_layers, model.config.num_single_layers
    fn_doubles = max(n_double, 2)
    floors = []
    for fn in (1, fn_doubles):
        _, times, floor_cached = cached(dict(name="floor", fn=fn, bn=0, threshold=1.0, order=0, warmup=1))
        floors.append((times, executions(floor_cached, fn, 0, n_double, n_single, steps)))
    all_ex = (n_double * steps, n_single * steps)
    refs = [((t_base, c_base), all_ex)] + floors
    wall_model = fit([(t[0], ex) for t, ex in refs])
    cpu_model = fit([(t[1], ex) for t, ex in refs])
    print(
        f"baseline {t_base:.3f} s (CPU {c_base:.3f} s); per block execution: double {wall_model[1] * 1e3:.2f} ms, "
        f"single {wall_model[2] * 1e3:.2f} ms; unskippable {wall_model[0]:.3f} s"
    )
    print()
    print("| config                 | time (s) | CPU (s) | speedup | blocks computed | overhead | overhead CPU | PSNR (dB) | max abs err | cached steps |")
    print("|------------------------|----------|---------|---------|-----------------|----------|--------------|-----------|-------------|--------------|")
    rows = []

    def write_json():
        """Rewritten after every config, so that a long run stopped early keeps what it measured."""
        if not args.json:
            return
        doc = dict(
            torch=torch.__version__, cache_dit=cache_dit.__version__, threads=torch.get_num_threads(),
            baseline_s=t_base, baseline_cpu_s=c_base,
            floor=dict(time_s=floors[0][0][0], cpu_s=floors[0][0][1]),
            floor_doubles=dict(time_s=floors[1][0][0], cpu_s=floors[1][0][1]),
            cost_model=cost_json(wall_model), cost_model_cpu=cost_json(cpu_model), steps=steps,
            blocks=n_double + n_single, runs=rows,
        )
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)

    for case in grid(steps, args.quick):
        if args.only and case["name"] not in args.only:
            continue
        mask = cache_dit.steps_mask(total_steps=steps, mask_policy=case["mask"]) if case["mask"] else None
        x, (t, c), cached_steps = cached(case, mask)
        ran = executions(cached_steps, case["fn"], case["bn"], n_double, n_single, steps)
        frac = sum(ran) / sum(all_ex)
        overhead, overhead_cpu = t / ideal(wall_model, ran), c / ideal(cpu_model, ran)
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
        write_json()
    if args.json:
        print(f"wrote {args.json}")


def load_ours(paths):
    """Our bench JSON files as one: the first file's header, every file's runs in grid order."""
    docs = [json.load(open(p)) for p in paths]
    order = {c["name"]: i for i, c in enumerate(grid(docs[0]["steps"], False))}
    runs = sorted((r for d in docs for r in d["runs"]), key=lambda r: order.get(r["config"], len(order)))
    return docs, runs


def table(paths):
    docs, runs = load_ours(paths)
    for p, d in zip(paths, docs):
        m, mc = d["cost_model"], d["cost_model_cpu"]
        print(
            f"{os.path.basename(p)}: baseline {d['baseline_s']:.2f} s (CPU {d['baseline_cpu_s']:.2f} s); "
            f"block: double {m['double_block_ms']:.1f} ms, single {m['single_block_ms']:.1f} ms "
            f"(CPU {mc['double_block_ms']:.1f} / {mc['single_block_ms']:.1f}); unskippable {m['unskippable_s']:.2f} s"
        )
    print()
    # Machine drift: a computed step does the baseline's work (plus the engine's diff and
    # residual store, which `engine ms` counts), so its median against the baseline's step
    # median shows how much faster or slower the machine ran during that config.
    median = lambda xs: sorted(xs)[len(xs) // 2] if len(xs) % 2 else sum(sorted(xs)[len(xs) // 2 - 1:len(xs) // 2 + 1]) / 2
    base_step = {id(d): median(d["baseline"]["step_ms"]) for d in docs}
    src = {id(r): d for d in docs for r in d["runs"]}
    bracketed = all("relative_step_time" in r for r in runs)
    probe_col = " step time vs baseline's (probes, wall / CPU) |" if bracketed else ""
    print(f"| config | time s (CPU s) | speedup | blocks computed | overhead wall / CPU | engine ms | in-run overhead |{probe_col} computed-step median / baseline's | PSNR dB | cached steps |")
    print("|---|---|---|---|---|---|---|---|---|---|" + ("---|" if bracketed else ""))
    for r in runs:
        computed = [t for i, t in enumerate(r["step_ms"]) if i not in set(r["cached_steps"])]
        drift = median(computed) / base_step[id(src[id(r)])] if computed else float("nan")
        r["drift"] = drift
        print(
            f"| {r['config']} | {r['time_s']:.2f} ({r['cpu_s']:.2f}) | {r['speedup']:.2f}x | {r['computed_fraction'] * 100:.1f}% "
            f"| {r['overhead_ratio']:.3f} / {r['overhead_ratio_cpu']:.3f} | {r['engine_s'] * 1e3:.1f} "
            f"| {r['overhead_ratio_in_run']:.4f} |"
            + (f" {r['relative_step_time']:.3f} / {r['relative_step_cpu']:.3f} |" if bracketed else "")
            + f" {drift:.3f} | {r['psnr_db']:.2f} | {','.join(map(str, r['cached_steps']))} |"
        )
    col = lambda k: [r[k] for r in runs]
    print()
    print(f"{len(runs)} configs; in-run overhead max {max(col('overhead_ratio_in_run')):.4f}; "
          f"model overhead wall {min(col('overhead_ratio')):.3f}-{max(col('overhead_ratio')):.3f}, "
          f"CPU {min(col('overhead_ratio_cpu')):.3f}-{max(col('overhead_ratio_cpu')):.3f}")


def compare(ours_paths, torch_path):
    docs, runs = load_ours(ours_paths)
    ours = docs[0]
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
    for side, doc in (("ours", ours), ("torch", ref)):
        m = doc["cost_model"]
        print(
            f"{side}: double block {m['double_block_ms']:.2f} ms, single block {m['single_block_ms']:.2f} ms, "
            f"unskippable {m['unskippable_s']:.3f} s"
        )
    print()
    print("| config                 | overhead ours (wall / CPU / in-run) | overhead cache-dit (wall / CPU) | cached steps equal | PSNR ours | PSNR cache-dit | ΔPSNR (dB) |")
    print("|------------------------|-------------------------------------|---------------------------------|--------------------|-----------|----------------|------------|")
    by_name = {r["config"]: r for r in ref["runs"]}
    mismatches = compared = 0
    for r in runs:
        t = by_name.get(r["config"])
        if t is None:
            continue
        compared += 1
        same = r["cached_steps"] == t["cached_steps"]
        mismatches += not same
        print(
            f"| {r['config']:<22} | {r['overhead_ratio']:>9.3f} / {r['overhead_ratio_cpu']:>6.3f} / {r['overhead_ratio_in_run']:>7.4f} "
            f"| {t['overhead_ratio']:>15.3f} / {t['overhead_ratio_cpu']:>13.3f} "
            f"| {'yes' if same else 'NO':>18} | {r['psnr_db']:>9.2f} | {t['psnr_db']:>14.2f} "
            f"| {r['psnr_db'] - t['psnr_db']:>+10.2f} |"
        )
        if not same:
            print(f"    ours:      {r['cached_steps']}")
            print(f"    cache-dit: {t['cached_steps']}")
    print()
    print(f"{compared} config(s) compared, {mismatches} with different cached-step lists")


def main():
    if len(sys.argv) > 1 and sys.argv[1] in ("compare", "table"):
        p = argparse.ArgumentParser(description="compare cachedit bench JSON with bench_torch JSON, or tabulate ours")
        p.add_argument("cmd", choices=["compare", "table"])
        p.add_argument("files", nargs="+", help="our JSON file(s), then (compare) the torch JSON")
        a = p.parse_args()
        if a.cmd == "table":
            table(a.files)
        elif len(a.files) < 2:
            p.error("compare needs our JSON file(s) and the torch JSON")
        else:
            compare(a.files[:-1], a.files[-1])
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
