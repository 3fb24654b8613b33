"""SD3 / SD3.5 parity fixtures for `adapters/tests/sd3_parity.rs` (`refgen` writes the files):

    /work/venv-ref/bin/python tools/reference/gen_sd3.py [sd3_tiny ...]

Inputs `hidden_states` (B, C, H, W), `encoder_hidden_states`, `pooled_projections`, `timestep`
in the scheduler's scale; the first block (`block0.*`) and the last block (`last.*`,
`context_pre_only`: no text output). The latent is 4×6 (8×12 at patch 2) so the centre crop of
the sin-cos table is not symmetric. The computed `pos_embed.pos_embed` buffer (max²·dim floats,
>1 MB) is dropped from the weights: the Rust model builds it.
- `sd3_tiny`: the tiny config of diffusers' unit tests (SD3: 4 layers, no q/k norm).
- `sd35_tiny`: SD3.5-medium-like: RMS q/k norms, MMDiT-X dual attention in layers 0 and 1, patch 2.
"""

import torch
from diffusers import SD3Transformer2DModel

import refgen

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
    "sd3_tiny": dict(config=TINY, hw=(4, 6)),
    "sd35_tiny": dict(
        config=dict(TINY, num_layers=3, patch_size=2, dual_attention_layers=(0, 1), qk_norm="rms_norm"),
        hw=(8, 12),
    ),
}


def inputs(spec, g):
    cfg = spec["config"]
    return {
        "hidden_states": torch.randn(BATCH, cfg["in_channels"], *spec["hw"], generator=g),
        "encoder_hidden_states": torch.randn(BATCH, TXT, cfg["joint_attention_dim"], generator=g),
        "pooled_projections": torch.randn(BATCH, cfg["pooled_projection_dim"], generator=g),
        "timestep": torch.tensor([750.0, 300.0]),
    }


FAMILY = refgen.Family(
    cls=SD3Transformer2DModel,
    configs=CONFIGS,
    inputs=inputs,
    blocks=lambda spec: [
        refgen.Block("transformer_blocks", 0, "block0"),
        refgen.Block("transformer_blocks", -1, "last"),
    ],
    drop_weights=("pos_embed.pos_embed",),
)

if __name__ == "__main__":
    refgen.main(FAMILY)
