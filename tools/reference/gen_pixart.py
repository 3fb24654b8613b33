"""PixArt parity fixtures for `adapters/tests/pixart_parity.rs` (`refgen` writes the files):

    /work/venv-ref/bin/python tools/reference/gen_pixart.py

- `pixart_tiny`: `PixArtTransformer2DModel` at the tiny config of diffusers' unit tests (no
  caption projection, no micro-conditions);
- `pixart_tiny_alpha`: the PixArt-α-1024 layout at tiny size: `caption_projection` (T5 width 16
  → 12; the width is a multiple of 3 for the size embeddings and of 4 for the sin-cos table),
  `use_additional_conditions` (resolution and aspect ratio through `added_cond_kwargs`), an
  explicit `interpolation_scale` of 2, two blocks.

Inputs: `hidden_states` (B, C, H, W) with an 8×12 latent (a 4×6 patch grid: the sin-cos table is
recomputed off the square `sample_size` grid), `encoder_hidden_states`, a 2-D
`encoder_attention_mask` with padding (1 keep, 0 drop, as `PixArtAlphaPipeline` passes the T5
mask), `timestep` on the 0-1000 scale. Captured: `adaln_single`'s two outputs, the first block
(`block0.*`: `hidden_states` is passed positionally, the rest by keyword, so a pre-hook stores
both) and, for α, the caption projection.
"""

import torch
from diffusers import PixArtTransformer2DModel

import refgen

BATCH, TXT, HW = 2, 8, (8, 12)

# tests/models/transformers/test_models_pixart_transformer2d.py
TINY = dict(
    sample_size=8,
    num_layers=1,
    patch_size=2,
    attention_head_dim=2,
    num_attention_heads=2,
    in_channels=4,
    cross_attention_dim=8,
    out_channels=8,
    attention_bias=True,
    activation_fn="gelu-approximate",
    num_embeds_ada_norm=8,
    norm_type="ada_norm_single",
    norm_elementwise_affine=False,
    norm_eps=1e-6,
    use_additional_conditions=False,
    caption_channels=None,
)

CONFIGS = {
    "pixart_tiny": dict(config=TINY, text_width=8, added=False),
    "pixart_tiny_alpha": dict(
        config=dict(
            TINY,
            num_layers=2,
            num_attention_heads=3,
            attention_head_dim=4,
            cross_attention_dim=12,
            caption_channels=16,
            use_additional_conditions=True,
            interpolation_scale=2,
        ),
        text_width=16,
        added=True,
    ),
}

# `PixArtAlphaPipeline`: resolution (height, width) in pixels and height / width per sample.
RESOLUTION = torch.tensor([[64.0, 96.0], [128.0, 64.0]])
ASPECT_RATIO = torch.tensor([[64.0 / 96.0], [2.0]])


def inputs(spec, g):
    mask = torch.ones(BATCH, TXT)
    mask[0, 5:] = 0
    mask[1, 7:] = 0
    return {
        "hidden_states": torch.randn(BATCH, 4, *HW, generator=g),
        "encoder_hidden_states": torch.randn(BATCH, TXT, spec["text_width"], generator=g),
        "encoder_attention_mask": mask,
        "timestep": torch.tensor([999.0, 250.0]),
    }


def call_kwargs(spec):
    if not spec["added"]:
        return {}
    return {"added_cond_kwargs": {"resolution": RESOLUTION, "aspect_ratio": ASPECT_RATIO}}


def after(model, spec, inputs, tensors, g):
    """Reruns the model with a pre-hook on block 0 (its `hidden_states` is positional)."""
    block = model.transformer_blocks[0]
    seen = {}

    def pre(mod, args, kwargs):
        seen["hidden_states"] = args[0].detach().clone()
        for k in ("encoder_hidden_states", "encoder_attention_mask", "timestep"):
            seen[k] = kwargs[k].detach().clone()

    def post(mod, args, kwargs, output):
        seen["out"] = output.detach().clone()

    handles = [
        block.register_forward_pre_hook(pre, with_kwargs=True),
        block.register_forward_hook(post, with_kwargs=True),
    ]
    out = model(**inputs, **call_kwargs(spec), return_dict=False)[0]
    for h in handles:
        h.remove()
    assert torch.equal(out, tensors["output"])
    for k in ("hidden_states", "encoder_hidden_states", "encoder_attention_mask", "timestep"):
        tensors[f"block0.in.{k}"] = seen[k]
    tensors["block0.out.hidden_states"] = seen["out"]
    if spec["added"]:
        tensors["resolution"] = RESOLUTION
        tensors["aspect_ratio"] = ASPECT_RATIO


def outputs():
    return [refgen.Output("adaln_single", {0: "adaln.timestep", 1: "adaln.embedded_timestep"})]


FAMILY = refgen.Family(
    cls=PixArtTransformer2DModel,
    configs=CONFIGS,
    inputs=inputs,
    outputs=outputs(),
    call_kwargs=call_kwargs,
    after=after,
)

if __name__ == "__main__":
    refgen.main(FAMILY)
