"""Writes the HiDream-I1 parity fixtures used by `adapters/tests/hidream_parity.rs`.

Run from the repository root with the reference environment (diffusers + torch + safetensors):

    /work/venv-ref/bin/python tools/reference/gen_hidream.py

For each tiny configuration it writes, under `adapters/tests/fixtures/<name>/`:
- `transformer/`: a diffusers `save_pretrained` folder (config.json + safetensors);
- `io.safetensors`: the fixed inputs, the inputs and outputs of the first double and the first
  single block (`HiDreamBlock`), and the model output.

f32 on CPU with fixed seeds, eval mode (MoE inference routing).
"""

import os
import sys

import torch
from safetensors.torch import save_file

import diffusers
from diffusers import HiDreamImageTransformer2DModel

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "adapters", "tests", "fixtures")

TINY = dict(
    patch_size=2,
    in_channels=4,
    out_channels=4,
    num_layers=1,
    num_single_layers=1,
    attention_head_dim=8,
    num_attention_heads=4,
    caption_channels=[8, 4],
    text_emb_dim=8,
    num_routed_experts=2,
    num_activated_experts=2,
    axes_dims_rope=(4, 2, 2),
    max_resolution=(32, 32),
    llama_layers=(0, 1),
    force_inference_output=True,
)

CONFIGS = {
    # diffusers' own unit-test config (tests/models/transformers/test_models_transformer_hidream.py)
    "hidream_tiny": dict(config=TINY, size=(8, 8), llama_total=2),
    # top-2 of 4 routed experts, two heads, two blocks per list, llama layers picked out of order from 5,
    # and a non-square latent (padded to max_seq with an image mask)
    "hidream_tiny_moe": dict(
        config=dict(
            TINY,
            num_layers=2,
            num_single_layers=2,
            num_attention_heads=2,
            num_routed_experts=4,
            max_resolution=(8, 8),
            llama_layers=(4, 0, 2, 1),
        ),
        size=(8, 4),
        llama_total=5,
    ),
}

BATCH, T5, LLAMA = 2, 5, 3


def generate(name, spec):
    torch.manual_seed(0)
    cfg = spec["config"]
    model = HiDreamImageTransformer2DModel(**cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))

    out_dir = os.path.join(ROOT, name)
    model.save_pretrained(os.path.join(out_dir, "transformer"), safe_serialization=True)

    g = torch.Generator().manual_seed(1)
    h, w = spec["size"]
    t5_dim, llama_dim = cfg["caption_channels"]
    inputs = {
        "hidden_states": torch.randn(BATCH, cfg["in_channels"], h, w, generator=g),
        "timesteps": torch.tensor([750.0, 300.0]),
        "encoder_hidden_states_t5": torch.randn(BATCH, T5, t5_dim, generator=g),
        "encoder_hidden_states_llama3": torch.randn(spec["llama_total"], BATCH, LLAMA, llama_dim, generator=g),
        "pooled_embeds": torch.randn(BATCH, cfg["text_emb_dim"], generator=g),
    }

    captured = {}

    def hook(prefix):
        def fn(module, args, kwargs, output):
            for n in ["hidden_states", "encoder_hidden_states", "temb", "hidden_states_masks"]:
                if kwargs.get(n) is not None:
                    captured[f"{prefix}.in.{n}"] = kwargs[n].detach().clone()
            if isinstance(output, tuple):
                captured[f"{prefix}.out.hidden_states"] = output[0].detach().clone()
                captured[f"{prefix}.out.encoder_hidden_states"] = output[1].detach().clone()
            else:
                captured[f"{prefix}.out.hidden_states"] = output.detach().clone()

        return fn

    model.double_stream_blocks[0].register_forward_hook(hook("double0"), with_kwargs=True)
    model.single_stream_blocks[0].register_forward_hook(hook("single0"), with_kwargs=True)

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
