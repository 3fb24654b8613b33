"""Writes runtime/tests/fixtures/ddim.json: diffusers' DDIMScheduler (eta = 0) timesteps,
alphas_cumprod and every step's result for the configurations cachedit's `scheduler::Ddim`
implements, plus one full denoising loop over a fixed toy model for the pipeline test.

    /work/venv-ref/bin/python tools/reference/ddim.py

Configs: the DiT hub config, a PixArt-style linear/linspace config, an SD-style scaled-linear
v-prediction config with `steps_offset`, a trailing-spacing config with `clip_sample`, cosine
(`squaredcos_cap_v2`) betas with x0 prediction, and zero-terminal-SNR rescaled betas. Each
`step` entry applies `scheduler.step(model_output, t, sample)` at every step index to the same
small `sample` / `model_output` vectors, so the Rust tests check every step's coefficients.
"""
import json
import math
import pathlib

import torch
from diffusers import DDIMScheduler

SAMPLE = torch.tensor([1.3 * math.sin(0.7 * k) for k in range(8)], dtype=torch.float32)
MODEL_OUTPUT = torch.tensor([math.cos(0.3 * k) - 0.2 for k in range(8)], dtype=torch.float32)
STEP_COUNTS = (4, 28, 50)
STEP_CHECKS = (4, 28)


def f32(xs):
    return [float(x) for x in xs]


CONFIGS = {
    # facebook/DiT-XL-2-256 scheduler_config.json
    "dit": dict(beta_schedule="linear", beta_start=0.0001, beta_end=0.02, clip_sample=False,
                set_alpha_to_one=True, steps_offset=0, prediction_type="epsilon"),
    # PixArt-style: linear betas, linspace spacing, final alpha from the first train step
    "pixart": dict(beta_schedule="linear", beta_start=0.0001, beta_end=0.02, clip_sample=False,
                   set_alpha_to_one=False, steps_offset=0, prediction_type="epsilon",
                   timestep_spacing="linspace"),
    # SD 2.x-style v-prediction: scaled-linear betas, leading spacing with steps_offset 1
    "scaled_linear_v": dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                            clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                            prediction_type="v_prediction"),
    # trailing spacing with the default clip_sample=True
    "trailing_clip": dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                          clip_sample=True, set_alpha_to_one=False, steps_offset=0,
                          prediction_type="epsilon", timestep_spacing="trailing"),
    # cosine betas, x0 prediction
    "cosine_sample": dict(beta_schedule="squaredcos_cap_v2", clip_sample=False, set_alpha_to_one=True,
                          steps_offset=0, prediction_type="sample"),
    # zero terminal SNR (needs v-prediction: alphas_cumprod[999] = 0) with trailing spacing
    "zero_snr_v": dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                       clip_sample=False, set_alpha_to_one=False, steps_offset=0,
                       prediction_type="v_prediction", timestep_spacing="trailing",
                       rescale_betas_zero_snr=True),
}

cases = []
for name, cfg in CONFIGS.items():
    for steps in STEP_COUNTS:
        s = DDIMScheduler(**cfg)
        s.set_timesteps(steps)
        entry = {"name": f"{name}_{steps}", "config": cfg, "steps": steps,
                 "timesteps": [int(t) for t in s.timesteps],
                 "alphas_cumprod": {str(i): float(s.alphas_cumprod[i]) for i in (0, 1, 250, 500, 998, 999)},
                 "final_alpha_cumprod": float(s.final_alpha_cumprod)}
        if steps in STEP_CHECKS:
            entry["step"] = [f32(s.step(MODEL_OUTPUT, int(t), SAMPLE, eta=0.0, return_dict=False)[0])
                             for t in s.timesteps]
        cases.append(entry)

# A whole loop as a pipeline runs it: eps = toy(x, t) = 0.5 * x * (t / 1000) + 0.1, DiT config,
# 10 steps, starting from SAMPLE (init_noise_sigma is 1).
s = DDIMScheduler(**CONFIGS["dit"])
s.set_timesteps(10)
x = SAMPLE.clone()
for t in s.timesteps:
    eps = 0.5 * x * (float(t) / 1000.0) + 0.1
    x = s.step(eps, int(t), x, eta=0.0, return_dict=False)[0]
loop = {"config": "dit", "steps": 10, "timesteps": [int(t) for t in s.timesteps], "latents": f32(x)}

out = {"sample": f32(SAMPLE), "model_output": f32(MODEL_OUTPUT), "ddim": cases, "loop": loop}
path = pathlib.Path(__file__).resolve().parents[2] / "runtime/tests/fixtures/ddim.json"
path.write_text(json.dumps(out, indent=None, separators=(",", ":")) + "\n")
print(f"wrote {path} ({len(cases)} DDIM schedules and a 10-step loop)")
