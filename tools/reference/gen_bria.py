"""Bria parity fixture for `adapters/tests/bria_parity.rs` (`refgen` writes the files):

    /work/venv-ref/bin/python tools/reference/gen_bria.py

`BriaTransformer2DModel` at the tiny config of diffusers' unit tests with 2 blocks per list; the
same inputs and captures as `gen_flux.py` without pooled projections. The timestep is in the
scheduler's scale (Bria does not rescale it), and `time_theta` is not the default so it matters.
"""

import torch
from diffusers import BriaTransformer2DModel

import refgen

BATCH, HEIGHT, WIDTH, TXT = 2, 4, 4, 8

CONFIGS = {
    "bria_tiny": dict(
        config=dict(
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
    ),
}


def inputs(spec, g):
    cfg = spec["config"]
    return {
        "hidden_states": torch.randn(BATCH, HEIGHT * WIDTH, cfg["in_channels"], generator=g),
        "encoder_hidden_states": torch.randn(BATCH, TXT, cfg["joint_attention_dim"], generator=g),
        "timestep": torch.tensor([750.0, 300.0]),
        "img_ids": refgen.image_ids(HEIGHT, WIDTH),
        "txt_ids": torch.stack([torch.zeros(TXT), torch.arange(TXT) * 0.5, torch.arange(TXT) * 0.25], dim=-1),
    }


FAMILY = refgen.Family(
    cls=BriaTransformer2DModel,
    configs=CONFIGS,
    inputs=inputs,
    blocks=lambda spec: [
        refgen.Block("transformer_blocks", 0, "double0", rope="image_rotary_emb"),
        refgen.Block("single_transformer_blocks", 0, "single0", rope="image_rotary_emb"),
    ],
)

if __name__ == "__main__":
    refgen.main(FAMILY)
