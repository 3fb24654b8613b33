"""DiT parity fixtures for `adapters/tests/dit_parity.rs` (`refgen` writes the files):

    /work/venv-ref/bin/python tools/reference/gen_dit.py

- `dit_tiny`: `DiTTransformer2DModel` at the tiny config of diffusers' unit tests, on its 8×8
  latent (the training grid);
- `dit_tiny_deep`: the same with two blocks on a 12×12 latent: the sin-cos table is rebuilt for
  a 6×6 patch grid, and each block's own `norm1.emb` (perturbed independently, so the copies
  differ) conditions it, as in diffusers.

Inputs: `hidden_states` (B, C, H, W), `timestep` on the 0-1000 scale, `class_labels` (the second
sample takes the null class `num_embeds_ada_norm`, what `DiTPipeline` feeds the unconditional
branch). Captured: the first block (`block0.*`; `hidden_states` is positional, so a pre-hook
stores it) and block 0's embedder output (`block0.temb`).
"""

import torch
from diffusers import DiTTransformer2DModel

import refgen

BATCH = 2

# tests/models/transformers/test_models_dit_transformer2d.py
TINY = dict(
    in_channels=4,
    out_channels=8,
    activation_fn="gelu-approximate",
    num_attention_heads=2,
    attention_head_dim=4,
    attention_bias=True,
    num_layers=1,
    norm_type="ada_norm_zero",
    num_embeds_ada_norm=8,
    patch_size=2,
    sample_size=8,
)

CONFIGS = {
    "dit_tiny": dict(config=TINY, hw=8),
    "dit_tiny_deep": dict(config=dict(TINY, num_layers=2), hw=12),
}


def inputs(spec, g):
    return {
        "hidden_states": torch.randn(BATCH, 4, spec["hw"], spec["hw"], generator=g),
        "timestep": torch.tensor([999.0, 250.0]),
        "class_labels": torch.tensor([3, 8]),
    }


def after(model, spec, inputs, tensors, g):
    """Reruns the model with hooks on block 0 (its `hidden_states` is positional)."""
    block = model.transformer_blocks[0]
    seen = {}

    def pre(mod, args, kwargs):
        seen["hidden_states"] = args[0].detach().clone()

    def post(mod, args, kwargs, output):
        seen["out"] = output.detach().clone()

    def emb(mod, args, kwargs, output):
        seen["temb"] = output.detach().clone()

    handles = [
        block.register_forward_pre_hook(pre, with_kwargs=True),
        block.register_forward_hook(post, with_kwargs=True),
        block.norm1.emb.register_forward_hook(emb, with_kwargs=True),
    ]
    out = model(**inputs, return_dict=False)[0]
    for h in handles:
        h.remove()
    assert torch.equal(out, tensors["output"])
    tensors["block0.in.hidden_states"] = seen["hidden_states"]
    tensors["block0.out.hidden_states"] = seen["out"]
    tensors["block0.temb"] = seen["temb"]


FAMILY = refgen.Family(cls=DiTTransformer2DModel, configs=CONFIGS, inputs=inputs, after=after)

if __name__ == "__main__":
    refgen.main(FAMILY)
