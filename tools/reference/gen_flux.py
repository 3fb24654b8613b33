"""Flux parity fixtures for `adapters/tests/flux_parity.rs` (`refgen` writes the files):

    /work/venv-ref/bin/python tools/reference/gen_flux.py [flux_tiny ...]

Inputs `hidden_states`, `encoder_hidden_states`, `pooled_projections`, `timestep`, `img_ids`,
`txt_ids` (non-zero, so the text part of the rotary table is exercised) and `guidance`; the first
double (`double0.*`) and single (`single0.*`) block with their rotary tables.
"""

import torch
from diffusers import FluxTransformer2DModel

import refgen

BATCH, HEIGHT, WIDTH, TXT = 2, 4, 4, 8

# diffusers' own unit-test config (tests/models/transformers/test_models_transformer_flux.py)
TINY = dict(
    patch_size=1,
    in_channels=4,
    num_layers=1,
    num_single_layers=1,
    attention_head_dim=16,
    num_attention_heads=2,
    joint_attention_dim=32,
    pooled_projection_dim=32,
    axes_dims_rope=[4, 4, 8],
)
CONFIGS = {
    "flux_tiny": dict(config=TINY, guidance=False),
    # dev-like (guidance embedder) and Fill-like (in_channels != out_channels), two blocks per list
    "flux_tiny_guidance": dict(
        config=dict(
            TINY,
            in_channels=8,
            out_channels=4,
            num_layers=2,
            num_single_layers=2,
            pooled_projection_dim=16,
            guidance_embeds=True,
        ),
        guidance=True,
    ),
}


def inputs(spec, g):
    cfg = spec["config"]
    x = {
        "hidden_states": torch.randn(BATCH, HEIGHT * WIDTH, cfg["in_channels"], generator=g),
        "encoder_hidden_states": torch.randn(BATCH, TXT, cfg["joint_attention_dim"], generator=g),
        "pooled_projections": torch.randn(BATCH, cfg["pooled_projection_dim"], generator=g),
        "timestep": torch.tensor([0.75, 0.3]),
        "img_ids": refgen.image_ids(HEIGHT, WIDTH),
        "txt_ids": torch.stack([torch.zeros(TXT), torch.arange(TXT) * 0.5, torch.zeros(TXT)], dim=-1),
    }
    if spec["guidance"]:
        x["guidance"] = torch.tensor([3.5, 1.0])
    return x


FAMILY = refgen.Family(
    cls=FluxTransformer2DModel,
    configs=CONFIGS,
    inputs=inputs,
    blocks=lambda spec: [
        refgen.Block("transformer_blocks", 0, "double0", rope="image_rotary_emb"),
        refgen.Block("single_transformer_blocks", 0, "single0", rope="image_rotary_emb"),
    ],
)

if __name__ == "__main__":
    refgen.main(FAMILY)
