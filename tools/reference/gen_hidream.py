"""HiDream-I1 parity fixtures for `adapters/tests/hidream_parity.rs` (`refgen` writes the files):

    /work/venv-ref/bin/python tools/reference/gen_hidream.py [hidream_tiny ...]

Inputs `hidden_states` (B, C, H, W), `timesteps`, the T5 and the stacked Llama hidden states,
`pooled_embeds`; the first double and the first single `HiDreamBlock` (with the image mask of a
padded, non-square latent). Eval mode: MoE inference routing.
"""

import torch
from diffusers import HiDreamImageTransformer2DModel

import refgen

BATCH, T5, LLAMA = 2, 5, 3

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
    # top-2 of 4 routed experts, two heads, two blocks per list, llama layers picked out of order
    # from 5, and a non-square latent (padded to max_seq with an image mask)
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


def inputs(spec, g):
    cfg = spec["config"]
    h, w = spec["size"]
    t5_dim, llama_dim = cfg["caption_channels"]
    return {
        "hidden_states": torch.randn(BATCH, cfg["in_channels"], h, w, generator=g),
        "timesteps": torch.tensor([750.0, 300.0]),
        "encoder_hidden_states_t5": torch.randn(BATCH, T5, t5_dim, generator=g),
        "encoder_hidden_states_llama3": torch.randn(spec["llama_total"], BATCH, LLAMA, llama_dim, generator=g),
        "pooled_embeds": torch.randn(BATCH, cfg["text_emb_dim"], generator=g),
    }


BLOCK_INPUTS = ("hidden_states", "encoder_hidden_states", "temb", "hidden_states_masks")
BLOCK_OUTPUTS = ("hidden_states", "encoder_hidden_states")

FAMILY = refgen.Family(
    cls=HiDreamImageTransformer2DModel,
    configs=CONFIGS,
    inputs=inputs,
    blocks=lambda spec: [
        refgen.Block("double_stream_blocks", 0, "double0", inputs=BLOCK_INPUTS, outputs=BLOCK_OUTPUTS),
        refgen.Block("single_stream_blocks", 0, "single0", inputs=BLOCK_INPUTS, outputs=BLOCK_OUTPUTS),
    ],
)

if __name__ == "__main__":
    refgen.main(FAMILY)
