"""Writes the Flux parity fixtures used by `adapters/tests/flux_parity.rs`.

Run from the repository root with the reference environment (diffusers + torch + safetensors):

    /work/venv-ref/bin/python tools/reference/gen_flux.py

For each tiny configuration it writes, under `adapters/tests/fixtures/<name>/`:
- `transformer/` : a diffusers `save_pretrained` folder (config.json + safetensors), loaded by
  the Rust loader exactly as a hub `transformer/` folder;
- `io.safetensors`: the fixed inputs, the intermediate tensors fed to the first double and the
  first single block (so each block is checked on its own), their outputs, and the model output.

Everything is f32 on CPU with fixed seeds, so rerunning gives the same files (up to torch/diffusers
version changes in the random init, which the tests do not depend on: they read the weights).
"""

import json
import os
import sys

import torch
from safetensors.torch import save_file

import diffusers
from diffusers import FluxTransformer2DModel

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "adapters", "tests", "fixtures")

CONFIGS = {
    # diffusers' own unit-test config (tests/models/transformers/test_models_transformer_flux.py)
    "flux_tiny": dict(
        config=dict(
            patch_size=1,
            in_channels=4,
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=32,
            pooled_projection_dim=32,
            axes_dims_rope=[4, 4, 8],
        ),
        guidance=False,
    ),
    # dev-like (guidance embedder) and Fill-like (in_channels != out_channels), two blocks per list
    "flux_tiny_guidance": dict(
        config=dict(
            patch_size=1,
            in_channels=8,
            out_channels=4,
            num_layers=2,
            num_single_layers=2,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=32,
            pooled_projection_dim=16,
            guidance_embeds=True,
            axes_dims_rope=[4, 4, 8],
        ),
        guidance=True,
    ),
}

BATCH, HEIGHT, WIDTH, TXT = 2, 4, 4, 8


def image_ids(h, w):
    ids = torch.zeros(h, w, 3)
    ids[..., 1] = torch.arange(h)[:, None]
    ids[..., 2] = torch.arange(w)[None, :]
    return ids.reshape(h * w, 3)


def generate(name, spec):
    torch.manual_seed(0)
    cfg = spec["config"]
    model = FluxTransformer2DModel(**cfg).eval()
    # Default init leaves every norm scale at 1; perturb all parameters so that each one matters.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))

    out_dir = os.path.join(ROOT, name)
    model.save_pretrained(os.path.join(out_dir, "transformer"), safe_serialization=True)

    g = torch.Generator().manual_seed(1)
    inner = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    inputs = {
        "hidden_states": torch.randn(BATCH, HEIGHT * WIDTH, cfg["in_channels"], generator=g),
        "encoder_hidden_states": torch.randn(BATCH, TXT, cfg["joint_attention_dim"], generator=g),
        "pooled_projections": torch.randn(BATCH, cfg["pooled_projection_dim"], generator=g),
        "timestep": torch.tensor([0.75, 0.3]),
        "img_ids": image_ids(HEIGHT, WIDTH),
        # non-zero text ids so the rotary table of the text part is exercised as well
        "txt_ids": torch.stack([torch.zeros(TXT), torch.arange(TXT) * 0.5, torch.zeros(TXT)], dim=-1),
    }
    if spec["guidance"]:
        inputs["guidance"] = torch.tensor([3.5, 1.0])

    captured = {}

    def hook(prefix):
        def fn(module, args, kwargs, output):
            captured[f"{prefix}.in.hidden_states"] = kwargs["hidden_states"].detach().clone()
            captured[f"{prefix}.in.encoder_hidden_states"] = kwargs["encoder_hidden_states"].detach().clone()
            captured[f"{prefix}.in.temb"] = kwargs["temb"].detach().clone()
            cos, sin = kwargs["image_rotary_emb"]
            captured[f"{prefix}.in.rope_cos"] = cos.detach().clone()
            captured[f"{prefix}.in.rope_sin"] = sin.detach().clone()
            captured[f"{prefix}.out.encoder_hidden_states"] = output[0].detach().clone()
            captured[f"{prefix}.out.hidden_states"] = output[1].detach().clone()

        return fn

    model.transformer_blocks[0].register_forward_hook(hook("double0"), with_kwargs=True)
    model.single_transformer_blocks[0].register_forward_hook(hook("single0"), with_kwargs=True)

    with torch.no_grad():
        out = model(**inputs, return_dict=False)[0]

    tensors = {k: v.contiguous().float() for k, v in inputs.items()}
    tensors.update({k: v.contiguous() for k, v in captured.items()})
    tensors["output"] = out.contiguous()
    save_file(
        tensors,
        os.path.join(out_dir, "io.safetensors"),
        metadata={"diffusers": diffusers.__version__, "torch": torch.__version__},
    )
    print(f"{name}: output {tuple(out.shape)} max|out| {out.abs().max().item():.4f}")


def main():
    names = sys.argv[1:] or list(CONFIGS)
    for name in names:
        generate(name, CONFIGS[name])


if __name__ == "__main__":
    main()
