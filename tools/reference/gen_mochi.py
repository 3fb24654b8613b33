"""Mochi parity fixtures for `adapters/tests/mochi_parity.rs` (`refgen` writes the files):

    /work/venv-ref/bin/python tools/reference/gen_mochi.py [mochi_tiny ...]

Inputs `hidden_states` (B, C, F, H, W), `encoder_hidden_states` with a padding
`encoder_attention_mask`, `timestep`; `temb` and the projected caption (`caption_proj`), the
first block and the last (`context_pre_only`) block with their rotary tables.
"""

import torch
from diffusers import MochiTransformer3DModel

import refgen

BATCH, TXT, FRAMES, SIZE = 2, 6, 2, 4

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


def inputs(spec, g):
    cfg = spec["config"]
    return {
        "hidden_states": torch.randn(BATCH, cfg["in_channels"], FRAMES, SIZE, SIZE, generator=g),
        "encoder_hidden_states": torch.randn(BATCH, TXT, cfg["text_embed_dim"], generator=g),
        "timestep": torch.tensor([750.0, 300.0]),
        # sample 0 has 4 valid prompt tokens (padding last, as the tokenizer pads), sample 1 all 6
        "encoder_attention_mask": torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool),
    }


OUTPUTS = ("hidden_states", "encoder_hidden_states")

FAMILY = refgen.Family(
    cls=MochiTransformer3DModel,
    configs=CONFIGS,
    inputs=inputs,
    blocks=lambda spec: [
        refgen.Block("transformer_blocks", 0, "first", rope="image_rotary_emb", outputs=OUTPUTS),
        refgen.Block("transformer_blocks", -1, "last", rope="image_rotary_emb", outputs=OUTPUTS),
    ],
    outputs=[refgen.Output("time_embed", {0: "temb", 1: "caption_proj"})],
)

if __name__ == "__main__":
    refgen.main(FAMILY)
