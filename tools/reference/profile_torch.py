"""Per-op CPU profile of the diffusers Flux transformer on an export of `cachedit bench`.

    /work/venv-ref/bin/python tools/reference/profile_torch.py DIR [--steps 1] [--threads 1]

Runs `--steps` transformer calls (after one warm-up call) on the exported weights and inputs
under `torch.profiler` and prints the ops by self CPU time, to set beside `perf` on cachedit
(BENCHMARKS.md).
"""

import argparse
import os

import torch
from safetensors.torch import load_file
from torch.profiler import ProfilerActivity, profile


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rows", type=int, default=25)
    args = p.parse_args()

    from diffusers import FluxTransformer2DModel

    torch.set_num_threads(args.threads)
    model = FluxTransformer2DModel.from_pretrained(args.dir, torch_dtype=torch.float32).eval()
    inp = load_file(os.path.join(args.dir, "inputs.safetensors"))
    sigma = float(inp["sigmas"][0])

    def call():
        return model(
            hidden_states=inp["latents"],
            encoder_hidden_states=inp["encoder_hidden_states"],
            pooled_projections=inp["pooled_projections"],
            timestep=torch.full((1,), sigma, dtype=torch.float32),
            img_ids=inp["img_ids"],
            txt_ids=inp["txt_ids"],
            return_dict=False,
        )[0]

    with torch.inference_mode():
        call()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                call()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} transformer call(s)")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
