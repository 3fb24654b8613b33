"""Writes runtime/tests/fixtures/schedulers.json: diffusers' scheduler values for the
configurations cachedit's `scheduler` module covers.

    /work/venv-ref/bin/python tools/reference/schedulers.py

- `flow_match`: FlowMatchEulerDiscreteScheduler sigmas, computed the way the pipelines call it
  (FluxPipeline: sigmas = linspace(1, 1/N, N) and mu from the image sequence length; SD3: static
  shift 3.0).
- `ddim`: DDIMScheduler timesteps, alphas_cumprod (a few indices), final_alpha_cumprod and every
  step's `prev_sample` (eta = 0) for the fixed `sample` / `model_output` vectors, for each beta
  schedule, timestep spacing and prediction type.
- `ddim_pipeline`: a diffusers-style loop (`for t in timesteps: x = step(f(x, t), t, x)`) with the
  toy denoiser `f(x, t) = 0.9 x + 0.05 cos(t / 100)` from seeded latents, for the pipeline test.
"""
import json
import math
import pathlib

import numpy as np
import torch
from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler


def calculate_shift(seq_len, base_seq_len, max_seq_len, base_shift, max_shift):
    # diffusers.pipelines.flux.pipeline_flux.calculate_shift (copied: importing the pipeline
    # module needs `transformers`).
    m = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    b = base_shift - m * base_seq_len
    return seq_len * m + b


def f32(xs):
    return [float(x) for x in xs]


flow = []
for steps in (4, 28, 50):
    for seq_len in (256, 4096):
        s = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                            base_image_seq_len=256, max_image_seq_len=4096, shift=3.0)
        mu = calculate_shift(seq_len, 256, 4096, 0.5, 1.15)
        s.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), mu=mu)
        flow.append({"name": f"flux_dynamic_{steps}_{seq_len}", "steps": steps, "seq_len": seq_len,
                     "shift": 1.0, "dynamic": True, "sigmas": s.sigmas.tolist(), "timesteps": s.timesteps.tolist()})
    for shift in (1.0, 3.0):
        s = FlowMatchEulerDiscreteScheduler(shift=shift)
        s.set_timesteps(num_inference_steps=steps)
        flow.append({"name": f"static_shift{shift}_{steps}", "steps": steps, "seq_len": 0, "shift": shift,
                     "dynamic": False, "sigmas": s.sigmas.tolist(), "timesteps": s.timesteps.tolist()})

SAMPLE = torch.tensor([1.3 * math.sin(0.7 * k) for k in range(8)], dtype=torch.float32)
MODEL_OUTPUT = torch.tensor([math.cos(0.3 * k) - 0.2 for k in range(8)], dtype=torch.float32)

LINEAR = dict(beta_schedule="linear", beta_start=0.0001, beta_end=0.02)
SCALED = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
COSINE = dict(beta_schedule="squaredcos_cap_v2")
DDIM_CONFIGS = {
    # facebook/DiT-XL-2-256 scheduler_config.json
    "dit": dict(LINEAR, clip_sample=False, set_alpha_to_one=True, steps_offset=0, prediction_type="epsilon"),
    # PixArt-style: linear betas, linspace spacing, final alpha from the first train step
    "pixart": dict(LINEAR, clip_sample=False, set_alpha_to_one=False, prediction_type="epsilon",
                   timestep_spacing="linspace"),
    # SD 2.x-style v-prediction: scaled-linear betas, leading spacing with steps_offset 1
    "scaled_linear_v": dict(SCALED, clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                            prediction_type="v_prediction"),
    # trailing spacing with diffusers' default clip_sample=True
    "trailing_clip": dict(SCALED, clip_sample=True, set_alpha_to_one=False, prediction_type="epsilon",
                          timestep_spacing="trailing"),
    # cosine betas, x0 prediction
    "cosine_sample": dict(COSINE, clip_sample=False, prediction_type="sample"),
    # zero terminal SNR (needs v-prediction: alpha_cumprod[999] = 0) with trailing spacing
    "zero_snr_v": dict(SCALED, clip_sample=False, set_alpha_to_one=False, prediction_type="v_prediction",
                       timestep_spacing="trailing", rescale_betas_zero_snr=True),
}

ddim = []
for name, cfg in DDIM_CONFIGS.items():
    for steps in (4, 28, 50):
        s = DDIMScheduler(**cfg)
        s.set_timesteps(steps)
        entry = {"name": f"{name}_{steps}", "config": cfg, "steps": steps,
                 "timesteps": [int(t) for t in s.timesteps],
                 "alphas_cumprod": {str(i): float(s.alphas_cumprod[i]) for i in (0, 1, 250, 500, 998, 999)},
                 "final_alpha_cumprod": float(s.final_alpha_cumprod)}
        if steps in (4, 28):
            entry["step"] = [f32(s.step(MODEL_OUTPUT, int(t), SAMPLE, eta=0.0, return_dict=False)[0])
                             for t in s.timesteps]
        ddim.append(entry)

# The pipeline loop: DiT's config, 10 steps, latents (1, 4, 3) from a fixed generator.
pipe_steps = 10
s = DDIMScheduler(**DDIM_CONFIGS["dit"])
s.set_timesteps(pipe_steps)
x0 = torch.randn((1, 4, 3), generator=torch.Generator().manual_seed(7), dtype=torch.float32)
x = x0 * s.init_noise_sigma
for t in s.timesteps:
    out = 0.9 * x + 0.05 * math.cos(float(t) / 100.0)
    x = s.step(out, t, x, eta=0.0, return_dict=False)[0]
pipeline = {"config": "dit", "steps": pipe_steps, "shape": list(x0.shape), "latents": f32(x0.flatten()),
            "timesteps": [int(t) for t in s.timesteps], "final": f32(x.flatten())}

out = {"flow_match": flow, "sample": f32(SAMPLE), "model_output": f32(MODEL_OUTPUT), "ddim": ddim,
       "ddim_pipeline": pipeline}
path = pathlib.Path(__file__).resolve().parents[2] / "runtime/tests/fixtures/schedulers.json"
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps(out, indent=None, separators=(",", ":")) + "\n")
print(f"wrote {path} ({len(flow)} flow-matching, {len(ddim)} DDIM schedules)")
