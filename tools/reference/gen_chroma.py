"""Chroma parity fixtures for `adapters/tests/chroma_parity.rs` (`refgen` writes the files):

    /work/venv-ref/bin/python tools/reference/gen_chroma.py [chroma_tiny ...]

Flux-like inputs without pooled projections, plus `attention_mask` in `chroma_tiny_mask`;
`pooled_temb` (the approximator output), the first double and the first single block.
"""

import torch
from diffusers import ChromaTransformer2DModel

import refgen

BATCH, HEIGHT, WIDTH, TXT = 2, 4, 4, 8

# diffusers' own unit-test config (tests/models/transformers/test_models_transformer_chroma.py)
TINY = dict(
    patch_size=1,
    in_channels=4,
    num_layers=1,
    num_single_layers=1,
    attention_head_dim=16,
    num_attention_heads=2,
    joint_attention_dim=32,
    axes_dims_rope=[4, 4, 8],
    approximator_num_channels=8,
    approximator_hidden_dim=16,
    approximator_layers=1,
)
CONFIGS = {
    "chroma_tiny": dict(config=TINY, mask=False),
    # two blocks per list, two approximator layers, out_channels != in_channels, T5 padding mask
    "chroma_tiny_mask": dict(
        config=dict(TINY, in_channels=8, out_channels=4, num_layers=2, num_single_layers=2, approximator_layers=2),
        mask=True,
    ),
}


def inputs(spec, g):
    cfg = spec["config"]
    x = {
        "hidden_states": torch.randn(BATCH, HEIGHT * WIDTH, cfg["in_channels"], generator=g),
        "encoder_hidden_states": torch.randn(BATCH, TXT, cfg["joint_attention_dim"], generator=g),
        "timestep": torch.tensor([0.75, 0.3]),
        "img_ids": refgen.image_ids(HEIGHT, WIDTH),
        "txt_ids": torch.stack([torch.zeros(TXT), torch.arange(TXT) * 0.5, torch.zeros(TXT)], dim=-1),
    }
    if spec["mask"]:
        # the pipeline's mask: text tokens up to (and including) the first padding token, then
        # the image tokens; float, as `ChromaPipeline` builds it
        lengths = torch.tensor([3, 6])
        txt = (torch.arange(TXT)[None, :] <= lengths[:, None]).float()
        x["attention_mask"] = torch.cat([txt, torch.ones(BATCH, HEIGHT * WIDTH)], dim=1)
    return x


FAMILY = refgen.Family(
    cls=ChromaTransformer2DModel,
    configs=CONFIGS,
    inputs=inputs,
    blocks=lambda spec: [
        refgen.Block("transformer_blocks", 0, "double0", rope="image_rotary_emb"),
        refgen.Block("single_transformer_blocks", 0, "single0", rope="image_rotary_emb"),
    ],
    outputs=[refgen.Output("distilled_guidance_layer", "pooled_temb")],
)

if __name__ == "__main__":
    refgen.main(FAMILY)
