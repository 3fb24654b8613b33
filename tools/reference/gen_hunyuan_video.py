"""Writes the HunyuanVideo (1.0) parity fixtures used by `adapters/tests/hunyuan_video_parity.rs`.

Run from the repository root with the reference environment (diffusers + torch + safetensors):

    /work/venv-ref/bin/python tools/reference/gen_hunyuan_video.py

For each tiny configuration it writes, under `adapters/tests/fixtures/<name>/`:
- `transformer/`: a diffusers `save_pretrained` folder (config.json + safetensors);
- `io.safetensors`: the fixed inputs, the refined text (`context_embedder` output), `temb`, the
  positional inputs and outputs of the first double and the first single block, and the output.

f32 on CPU with fixed seeds.
"""

import os
import sys

import torch
from safetensors.torch import save_file

import diffusers
from diffusers import HunyuanVideoTransformer3DModel

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "adapters", "tests", "fixtures")

TINY = dict(
    in_channels=4,
    out_channels=4,
    num_attention_heads=2,
    attention_head_dim=10,
    num_layers=1,
    num_single_layers=1,
    num_refiner_layers=1,
    patch_size=1,
    patch_size_t=1,
    guidance_embeds=True,
    text_embed_dim=16,
    pooled_projection_dim=8,
    rope_axes_dim=(2, 4, 4),
    image_condition_type=None,
)

CONFIGS = {
    # diffusers' own unit-test config (tests/models/transformers/test_models_transformer_hunyuan_video.py)
    "hunyuan_video_tiny": dict(config=TINY, frames=2, size=4),
    # I2V-like latent_concat (in 9 -> out 4), 2x2 patches, no guidance embedder, two blocks per
    # list and two refiner blocks
    "hunyuan_video_tiny_i2v": dict(
        config=dict(
            TINY,
            in_channels=9,
            num_layers=2,
            num_single_layers=2,
            num_refiner_layers=2,
            patch_size=2,
            guidance_embeds=False,
            image_condition_type="latent_concat",
        ),
        frames=3,
        size=4,
    ),
}

BATCH, TXT = 2, 6


def generate(name, spec):
    torch.manual_seed(0)
    cfg = spec["config"]
    model = HunyuanVideoTransformer3DModel(**cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))

    out_dir = os.path.join(ROOT, name)
    model.save_pretrained(os.path.join(out_dir, "transformer"), safe_serialization=True)

    g = torch.Generator().manual_seed(1)
    f, s = spec["frames"], spec["size"]
    inputs = {
        "hidden_states": torch.randn(BATCH, cfg["in_channels"], f, s, s, generator=g),
        "timestep": torch.tensor([750.0, 300.0]),
        "encoder_hidden_states": torch.randn(BATCH, TXT, cfg["text_embed_dim"], generator=g),
        # sample 0 has 4 valid prompt tokens, sample 1 all 6
        "encoder_attention_mask": torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.float32),
        "pooled_projections": torch.randn(BATCH, cfg["pooled_projection_dim"], generator=g),
    }
    if cfg["guidance_embeds"]:
        inputs["guidance"] = torch.tensor([6000.0, 3500.0])

    captured = {}

    def hook(prefix):
        def fn(module, args, kwargs, output):
            names = ["hidden_states", "encoder_hidden_states", "temb", "attention_mask"]
            for n, a in zip(names, args):
                captured[f"{prefix}.in.{n}"] = a.detach().clone().float()
            cos, sin = args[4]
            captured[f"{prefix}.in.rope_cos"] = cos.detach().clone()
            captured[f"{prefix}.in.rope_sin"] = sin.detach().clone()
            captured[f"{prefix}.out.hidden_states"] = output[0].detach().clone()
            captured[f"{prefix}.out.encoder_hidden_states"] = output[1].detach().clone()

        return fn

    def refined(module, args, output):
        captured["refined_text"] = output.detach().clone()

    def temb(module, args, output):
        captured["temb"] = output[0].detach().clone()

    model.transformer_blocks[0].register_forward_hook(hook("double0"), with_kwargs=True)
    model.single_transformer_blocks[0].register_forward_hook(hook("single0"), with_kwargs=True)
    model.context_embedder.register_forward_hook(refined)
    model.time_text_embed.register_forward_hook(temb)

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
    for name in sys.argv[1:] or list(CONFIGS):
        generate(name, CONFIGS[name])


if __name__ == "__main__":
    main()
