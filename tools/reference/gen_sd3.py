"""Writes the SD3 parity fixtures used by `adapters/tests/sd3_parity.rs`.

    /work/venv-ref/bin/python tools/reference/gen_sd3.py

For each configuration, `adapters/tests/fixtures/<name>/`: `transformer/` (diffusers
`save_pretrained` of `SD3Transformer2DModel`, every parameter perturbed by 0.1·randn) and
`io.safetensors`: inputs (`hidden_states` (B, C, H, W), `encoder_hidden_states`,
`pooled_projections`, `timestep` in the scheduler's scale), `output`, and for the first block
(`block0.*`) and the last block (`last.*`, `context_pre_only`: no text output) their inputs and
outputs. The latent is 4×6 so the centre crop of the sin-cos table is not symmetric.
- `sd3_tiny`: the tiny config of diffusers' unit tests (SD3: 4 layers, no q/k norm).
- `sd35_tiny`: SD3.5-medium-like: RMS q/k norms, MMDiT-X dual attention in layers 0 and 1, patch 2.
"""

import os

import torch
from safetensors.torch import load_file, save_file

import diffusers
from diffusers import SD3Transformer2DModel

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "adapters", "tests", "fixtures")
BATCH, TXT = 2, 8

TINY = dict(
    sample_size=32,
    patch_size=1,
    in_channels=4,
    num_layers=4,
    attention_head_dim=8,
    num_attention_heads=4,
    caption_projection_dim=32,
    joint_attention_dim=32,
    pooled_projection_dim=64,
    out_channels=4,
    pos_embed_max_size=96,
    dual_attention_layers=(),
    qk_norm=None,
)
CONFIGS = {
    "sd3_tiny": (TINY, (4, 6)),
    "sd35_tiny": (dict(TINY, num_layers=3, patch_size=2, dual_attention_layers=(0, 1), qk_norm="rms_norm"), (8, 12)),
}


def generate(name, cfg, hw):
    torch.manual_seed(0)
    model = SD3Transformer2DModel(**cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    out_dir = os.path.join(ROOT, name)
    tdir = os.path.join(out_dir, "transformer")
    model.save_pretrained(tdir, safe_serialization=True)
    # The persistent sin-cos buffer `pos_embed.pos_embed` (max²·dim floats, >1 MB) is computed,
    # not learned; the Rust model builds it itself, so drop it to keep the fixture small.
    path = os.path.join(tdir, "diffusion_pytorch_model.safetensors")
    weights = load_file(path)
    weights.pop("pos_embed.pos_embed")
    save_file(weights, path, metadata={"format": "pt"})
    g = torch.Generator().manual_seed(1)
    inputs = {
        "hidden_states": torch.randn(BATCH, cfg["in_channels"], *hw, generator=g),
        "encoder_hidden_states": torch.randn(BATCH, TXT, cfg["joint_attention_dim"], generator=g),
        "pooled_projections": torch.randn(BATCH, cfg["pooled_projection_dim"], generator=g),
        "timestep": torch.tensor([750.0, 300.0]),
    }
    captured = {}

    def hook(prefix):
        def fn(module, args, kwargs, output):
            for k in ("hidden_states", "encoder_hidden_states", "temb"):
                captured[f"{prefix}.in.{k}"] = kwargs[k].detach().clone()
            if output[0] is not None:
                captured[f"{prefix}.out.encoder_hidden_states"] = output[0].detach().clone()
            captured[f"{prefix}.out.hidden_states"] = output[1].detach().clone()

        return fn

    model.transformer_blocks[0].register_forward_hook(hook("block0"), with_kwargs=True)
    model.transformer_blocks[-1].register_forward_hook(hook("last"), with_kwargs=True)
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


if __name__ == "__main__":
    for name, (cfg, hw) in CONFIGS.items():
        generate(name, cfg, hw)
