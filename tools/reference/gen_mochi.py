"""Writes the Mochi parity fixtures used by `adapters/tests/mochi_parity.rs`.

Run from the repository root with the reference environment (diffusers + torch + safetensors):

    /work/venv-ref/bin/python tools/reference/gen_mochi.py

For each tiny configuration it writes, under `adapters/tests/fixtures/<name>/`:
- `transformer/`: a diffusers `save_pretrained` folder (config.json + safetensors);
- `io.safetensors`: the fixed inputs, `temb` and the projected caption, the inputs and outputs of
  the first block and of the last (`context_pre_only`) block, and the model output.

f32 on CPU with fixed seeds.
"""

import os
import sys

import torch
from safetensors.torch import save_file

import diffusers
from diffusers import MochiTransformer3DModel

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "adapters", "tests", "fixtures")

TINY = dict(
    patch_size=2,
    num_attention_heads=2,
    attention_head_dim=8,
    num_layers=2,
    pooled_projection_dim=16,
    in_channels=4,
    out_channels=None,
    qk_norm="rms_norm",
    text_embed_dim=16,
    time_embed_dim=4,
    activation_fn="swiglu",
    max_sequence_length=16,
)

CONFIGS = {
    # diffusers' own unit-test config (tests/models/transformers/test_models_transformer_mochi.py)
    "mochi_tiny": dict(config=TINY),
    # asymmetric streams (image 16, text 24), three blocks, out_channels != in_channels
    "mochi_tiny_asym": dict(config=dict(TINY, num_layers=3, pooled_projection_dim=24, out_channels=3)),
}

BATCH, TXT, FRAMES, SIZE = 2, 6, 2, 4


def generate(name, spec):
    torch.manual_seed(0)
    cfg = spec["config"]
    model = MochiTransformer3DModel(**cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))

    out_dir = os.path.join(ROOT, name)
    model.save_pretrained(os.path.join(out_dir, "transformer"), safe_serialization=True)

    g = torch.Generator().manual_seed(1)
    inputs = {
        "hidden_states": torch.randn(BATCH, cfg["in_channels"], FRAMES, SIZE, SIZE, generator=g),
        "encoder_hidden_states": torch.randn(BATCH, TXT, cfg["text_embed_dim"], generator=g),
        "timestep": torch.tensor([750.0, 300.0]),
        # sample 0 has 4 valid prompt tokens (padding last, as the tokenizer pads), sample 1 all 6
        "encoder_attention_mask": torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool),
    }

    captured = {}

    def hook(prefix):
        def fn(module, args, kwargs, output):
            for n in ["hidden_states", "encoder_hidden_states", "temb"]:
                captured[f"{prefix}.in.{n}"] = kwargs[n].detach().clone()
            cos, sin = kwargs["image_rotary_emb"]
            captured[f"{prefix}.in.rope_cos"] = cos.detach().clone()
            captured[f"{prefix}.in.rope_sin"] = sin.detach().clone()
            captured[f"{prefix}.out.hidden_states"] = output[0].detach().clone()
            captured[f"{prefix}.out.encoder_hidden_states"] = output[1].detach().clone()

        return fn

    def time_embed(module, args, output):
        captured["temb"] = output[0].detach().clone()
        captured["caption_proj"] = output[1].detach().clone()

    model.transformer_blocks[0].register_forward_hook(hook("first"), with_kwargs=True)
    model.transformer_blocks[-1].register_forward_hook(hook("last"), with_kwargs=True)
    model.time_embed.register_forward_hook(time_embed)

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
