"""Writes the Bria parity fixture used by `adapters/tests/bria_parity.rs`.

    /work/venv-ref/bin/python tools/reference/gen_bria.py

`adapters/tests/fixtures/bria_tiny/`: `transformer/` (diffusers `save_pretrained` of
`BriaTransformer2DModel` with the tiny config of diffusers' unit tests, 2 blocks per list, every
parameter perturbed by 0.1·randn) and `io.safetensors` (inputs, output, and the inputs/outputs of
the first double and single blocks, as `gen_flux.py` writes them). The timestep is in the
scheduler's scale (Bria does not rescale it), and `time_theta` is not the default so it matters.
"""

import os

import torch
from safetensors.torch import save_file

import diffusers
from diffusers import BriaTransformer2DModel

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "adapters", "tests", "fixtures")
BATCH, HEIGHT, WIDTH, TXT = 2, 4, 4, 8

CONFIG = dict(
    patch_size=1,
    in_channels=4,
    num_layers=2,
    num_single_layers=2,
    attention_head_dim=8,
    num_attention_heads=2,
    joint_attention_dim=32,
    pooled_projection_dim=None,
    axes_dims_rope=[0, 4, 4],
    time_theta=1000,
)


def image_ids(h, w):
    ids = torch.zeros(h, w, 3)
    ids[..., 1] = torch.arange(h)[:, None]
    ids[..., 2] = torch.arange(w)[None, :]
    return ids.reshape(h * w, 3)


def main():
    torch.manual_seed(0)
    model = BriaTransformer2DModel(**CONFIG).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    out_dir = os.path.join(ROOT, "bria_tiny")
    model.save_pretrained(os.path.join(out_dir, "transformer"), safe_serialization=True)

    g = torch.Generator().manual_seed(1)
    inputs = {
        "hidden_states": torch.randn(BATCH, HEIGHT * WIDTH, CONFIG["in_channels"], generator=g),
        "encoder_hidden_states": torch.randn(BATCH, TXT, CONFIG["joint_attention_dim"], generator=g),
        "timestep": torch.tensor([750.0, 300.0]),
        "img_ids": image_ids(HEIGHT, WIDTH),
        "txt_ids": torch.stack([torch.zeros(TXT), torch.arange(TXT) * 0.5, torch.arange(TXT) * 0.25], dim=-1),
    }
    captured = {}

    def hook(prefix):
        def fn(module, args, kwargs, output):
            for k in ("hidden_states", "encoder_hidden_states", "temb"):
                captured[f"{prefix}.in.{k}"] = kwargs[k].detach().clone()
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
    print(f"bria_tiny: output {tuple(out.shape)} max|out| {out.abs().max().item():.4f}")


if __name__ == "__main__":
    main()
