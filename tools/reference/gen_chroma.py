"""Writes the Chroma parity fixtures used by `adapters/tests/chroma_parity.rs`.

Run from the repository root with the reference environment (diffusers + torch + safetensors):

    /work/venv-ref/bin/python tools/reference/gen_chroma.py

For each tiny configuration it writes, under `adapters/tests/fixtures/<name>/`:
- `transformer/`: a diffusers `save_pretrained` folder (config.json + safetensors);
- `io.safetensors`: the fixed inputs, `pooled_temb` (the approximator output), the inputs and
  outputs of the first double and the first single block, and the model output.

f32 on CPU with fixed seeds.
"""

import os
import sys

import torch
from safetensors.torch import save_file

import diffusers
from diffusers import ChromaTransformer2DModel

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "adapters", "tests", "fixtures")

TINY = dict(
    patch_size=1,
    in_channels=4,
    num_layers=1,
    num_single_layers=1,
    attention_head_dim=16,
    num_attention_heads=2,
    joint_attention_dim=32,
    axes_dims_rope=[4, 4, 8],
    approximator_num_channels=8,
    approximator_hidden_dim=16,
    approximator_layers=1,
)

CONFIGS = {
    # diffusers' own unit-test config (tests/models/transformers/test_models_transformer_chroma.py)
    "chroma_tiny": dict(config=TINY, mask=False),
    # two blocks per list, two approximator layers, out_channels != in_channels, T5 padding mask
    "chroma_tiny_mask": dict(
        config=dict(TINY, in_channels=8, out_channels=4, num_layers=2, num_single_layers=2, approximator_layers=2),
        mask=True,
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
    model = ChromaTransformer2DModel(**cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))

    out_dir = os.path.join(ROOT, name)
    model.save_pretrained(os.path.join(out_dir, "transformer"), safe_serialization=True)

    g = torch.Generator().manual_seed(1)
    inputs = {
        "hidden_states": torch.randn(BATCH, HEIGHT * WIDTH, cfg["in_channels"], generator=g),
        "encoder_hidden_states": torch.randn(BATCH, TXT, cfg["joint_attention_dim"], generator=g),
        "timestep": torch.tensor([0.75, 0.3]),
        "img_ids": image_ids(HEIGHT, WIDTH),
        "txt_ids": torch.stack([torch.zeros(TXT), torch.arange(TXT) * 0.5, torch.zeros(TXT)], dim=-1),
    }
    if spec["mask"]:
        # the pipeline's mask: text tokens up to (and including) the first padding token, then
        # the image tokens; float, as `ChromaPipeline` builds it
        lengths = torch.tensor([3, 6])
        txt = (torch.arange(TXT)[None, :] <= lengths[:, None]).float()
        inputs["attention_mask"] = torch.cat([txt, torch.ones(BATCH, HEIGHT * WIDTH)], dim=1)

    captured = {}

    def hook(prefix):
        def fn(module, args, kwargs, output):
            captured[f"{prefix}.in.hidden_states"] = kwargs["hidden_states"].detach().clone()
            if "encoder_hidden_states" in kwargs:
                captured[f"{prefix}.in.encoder_hidden_states"] = kwargs["encoder_hidden_states"].detach().clone()
            captured[f"{prefix}.in.temb"] = kwargs["temb"].detach().clone()
            cos, sin = kwargs["image_rotary_emb"]
            captured[f"{prefix}.in.rope_cos"] = cos.detach().clone()
            captured[f"{prefix}.in.rope_sin"] = sin.detach().clone()
            if isinstance(output, tuple):
                captured[f"{prefix}.out.encoder_hidden_states"] = output[0].detach().clone()
                captured[f"{prefix}.out.hidden_states"] = output[1].detach().clone()
            else:
                captured[f"{prefix}.out.hidden_states"] = output.detach().clone()

        return fn

    def pooled(module, args, output):
        captured["pooled_temb"] = output.detach().clone()

    model.transformer_blocks[0].register_forward_hook(hook("double0"), with_kwargs=True)
    model.single_transformer_blocks[0].register_forward_hook(hook("single0"), with_kwargs=True)
    model.distilled_guidance_layer.register_forward_hook(pooled)

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
