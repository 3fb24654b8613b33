"""HunyuanVideo (1.0) parity fixtures for `adapters/tests/hunyuan_video_parity.rs` (`refgen`
writes the files):

    /work/venv-ref/bin/python tools/reference/gen_hunyuan_video.py [hunyuan_video_tiny ...]

Inputs `hidden_states` (B, C, F, H, W), `timestep`, `encoder_hidden_states` with a padding
`encoder_attention_mask`, `pooled_projections`, `guidance`; the refined text
(`context_embedder` output), `temb`, and the first double and single block (positional
arguments, with the additive-mask input and the rotary tables).
"""

import torch
from diffusers import HunyuanVideoTransformer3DModel

import refgen

BATCH, TXT = 2, 6

TINY = dict(
    in_channels=4,
    out_channels=4,
    num_attention_heads=2,
    attention_head_dim=10,
    num_layers=1,
    num_single_layers=1,
    num_refiner_layers=1,
    patch_size=1,
    patch_size_t=1,
    guidance_embeds=True,
    text_embed_dim=16,
    pooled_projection_dim=8,
    rope_axes_dim=(2, 4, 4),
    image_condition_type=None,
)
CONFIGS = {
    # diffusers' own unit-test config (tests/models/transformers/test_models_transformer_hunyuan_video.py)
    "hunyuan_video_tiny": dict(config=TINY, frames=2, size=4),
    # I2V-like latent_concat (in 9 -> out 4), 2x2 patches, no guidance embedder, two blocks per
    # list and two refiner blocks
    "hunyuan_video_tiny_i2v": dict(
        config=dict(
            TINY,
            in_channels=9,
            num_layers=2,
            num_single_layers=2,
            num_refiner_layers=2,
            patch_size=2,
            guidance_embeds=False,
            image_condition_type="latent_concat",
        ),
        frames=3,
        size=4,
    ),
}


def inputs(spec, g):
    cfg = spec["config"]
    f, s = spec["frames"], spec["size"]
    x = {
        "hidden_states": torch.randn(BATCH, cfg["in_channels"], f, s, s, generator=g),
        "timestep": torch.tensor([750.0, 300.0]),
        "encoder_hidden_states": torch.randn(BATCH, TXT, cfg["text_embed_dim"], generator=g),
        # sample 0 has 4 valid prompt tokens, sample 1 all 6
        "encoder_attention_mask": torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.float32),
        "pooled_projections": torch.randn(BATCH, cfg["pooled_projection_dim"], generator=g),
    }
    if cfg["guidance_embeds"]:
        x["guidance"] = torch.tensor([6000.0, 3500.0])
    return x


def block(module, prefix):
    return refgen.Block(
        module,
        0,
        prefix,
        inputs=("hidden_states", "encoder_hidden_states", "temb", "attention_mask"),
        positional=True,
        cast=True,
        rope=4,
        outputs=("hidden_states", "encoder_hidden_states"),
    )


FAMILY = refgen.Family(
    cls=HunyuanVideoTransformer3DModel,
    configs=CONFIGS,
    inputs=inputs,
    blocks=lambda spec: [block("transformer_blocks", "double0"), block("single_transformer_blocks", "single0")],
    outputs=[
        refgen.Output("context_embedder", "refined_text"),
        refgen.Output("time_text_embed", {0: "temb"}),
    ],
)

if __name__ == "__main__":
    refgen.main(FAMILY)
