"""Writes runtime/tests/fixtures/schedulers.json: diffusers' FlowMatchEulerDiscreteScheduler
sigmas for the configurations cachedit's `FlowMatchEuler` covers, computed the way the
pipelines call it (FluxPipeline: sigmas = linspace(1, 1/N, N) and mu from the image sequence
length; SD3: static shift 3.0).

    /work/venv-ref/bin/python tools/reference/schedulers.py
"""
import json
import pathlib

import numpy as np
from diffusers import FlowMatchEulerDiscreteScheduler


def calculate_shift(seq_len, base_seq_len, max_seq_len, base_shift, max_shift):
    # diffusers.pipelines.flux.pipeline_flux.calculate_shift (copied: importing the pipeline
    # module needs `transformers`).
    m = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    b = base_shift - m * base_seq_len
    return seq_len * m + b

out = []
for steps in (4, 28, 50):
    for seq_len in (256, 4096):
        s = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                            base_image_seq_len=256, max_image_seq_len=4096, shift=3.0)
        mu = calculate_shift(seq_len, 256, 4096, 0.5, 1.15)
        s.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), mu=mu)
        out.append({"name": f"flux_dynamic_{steps}_{seq_len}", "steps": steps, "seq_len": seq_len,
                    "shift": 1.0, "dynamic": True, "sigmas": s.sigmas.tolist(), "timesteps": s.timesteps.tolist()})
    for shift in (1.0, 3.0):
        s = FlowMatchEulerDiscreteScheduler(shift=shift)
        s.set_timesteps(num_inference_steps=steps)
        out.append({"name": f"static_shift{shift}_{steps}", "steps": steps, "seq_len": 0, "shift": shift,
                    "dynamic": False, "sigmas": s.sigmas.tolist(), "timesteps": s.timesteps.tolist()})

path = pathlib.Path(__file__).resolve().parents[2] / "runtime/tests/fixtures/schedulers.json"
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps(out, indent=1))
print(f"wrote {path} ({len(out)} schedules)")
