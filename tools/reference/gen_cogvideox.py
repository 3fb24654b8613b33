"""CogVideoX parity fixtures for `adapters/tests/cogvideox_parity.rs` (`refgen` writes the files):

    /work/venv-ref/bin/python tools/reference/gen_cogvideox.py [cogvideox_tiny ...]

Inputs as `CogVideoXPipeline` passes them: `hidden_states` (B, F, C, H, W), `encoder_hidden_states`
(B, max_text_seq_length, text_embed_dim), integer `timestep`s, `ofs` for 1.5-I2V; the rotary
tables come from the pipeline's own `_prepare_rotary_positional_embeddings` arithmetic (captured
as the first block's `rope_cos` / `rope_sin`). Captured: the joint patch embedding, the first
and last blocks.
"""

import torch
from diffusers import CogVideoXTransformer3DModel
from diffusers.models.embeddings import get_3d_rotary_pos_embed
from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid

import refgen

BATCH = 2

# diffusers' unit-test config (tests/models/transformers/test_models_transformer_cogvideox.py)
TINY = dict(
    num_attention_heads=2,
    attention_head_dim=8,
    in_channels=4,
    out_channels=4,
    time_embed_dim=2,
    text_embed_dim=8,
    num_layers=2,
    sample_width=8,
    sample_height=8,
    sample_frames=8,
    patch_size=2,
    patch_size_t=None,
    temporal_compression_ratio=4,
    max_text_seq_length=8,
)
CONFIGS = {
    # CogVideoX-2B style: sin-cos position embedding at patchify, no rotary
    "cogvideox_tiny": dict(config=TINY, frames=2, height=8, width=8),
    # (rotary needs head_dim / 8 even: 16 channels per head)
    # CogVideoX-5B-I2V style: rotary (linspace grid) plus learned positions; a non-square grid
    "cogvideox_tiny_i2v": dict(
        config=dict(
            TINY,
            attention_head_dim=16,
            in_channels=8,
            sample_height=8,
            sample_width=12,
            sample_frames=5,
            use_rotary_positional_embeddings=True,
            use_learned_positional_embeddings=True,
        ),
        frames=2,
        height=8,
        width=12,
        alt_grid=(3, 5),
    ),
    # CogVideoX 1.5 style: temporal patches (`patch_bias` False, which only the 1.0 Conv2d
    # reads), slice-grid rotary, the I2V `ofs`
    "cogvideox1_5_tiny": dict(
        config=dict(
            TINY,
            attention_head_dim=16,
            patch_size_t=2,
            patch_bias=False,
            ofs_embed_dim=2,
            sample_height=10,
            sample_width=12,
            use_rotary_positional_embeddings=True,
        ),
        frames=4,
        height=8,
        width=10,
        ofs=True,
    ),
}


def rotary(cfg: dict, frames: int, grid_h: int, grid_w: int):
    """`CogVideoXPipeline._prepare_rotary_positional_embeddings` for a latent patch grid."""
    p, p_t = cfg["patch_size"], cfg.get("patch_size_t")
    base_w, base_h = cfg["sample_width"] // p, cfg["sample_height"] // p
    if p_t is None:
        crops = get_resize_crop_region_for_grid((grid_h, grid_w), base_w, base_h)
        return get_3d_rotary_pos_embed(
            embed_dim=cfg["attention_head_dim"],
            crops_coords=crops,
            grid_size=(grid_h, grid_w),
            temporal_size=frames,
        )
    return get_3d_rotary_pos_embed(
        embed_dim=cfg["attention_head_dim"],
        crops_coords=None,
        grid_size=(grid_h, grid_w),
        temporal_size=(frames + p_t - 1) // p_t,
        grid_type="slice",
        max_size=(base_h, base_w),
    )


def inputs(spec, g):
    cfg = spec["config"]
    x = {
        "hidden_states": torch.randn(BATCH, spec["frames"], cfg["in_channels"], spec["height"], spec["width"], generator=g),
        "encoder_hidden_states": torch.randn(BATCH, cfg["max_text_seq_length"], cfg["text_embed_dim"], generator=g),
        "timestep": torch.tensor([750, 301], dtype=torch.int64),
    }
    if spec.get("ofs"):
        x["ofs"] = torch.tensor([2.0])
    return x


def call_kwargs(spec):
    cfg = spec["config"]
    if not cfg.get("use_rotary_positional_embeddings"):
        return {}
    p = cfg["patch_size"]
    return {"image_rotary_emb": rotary(cfg, spec["frames"], spec["height"] // p, spec["width"] // p)}


def after(model, spec, inputs, tensors, g):
    # the pipeline's table for a grid smaller than the base size (a centred crop region)
    if "alt_grid" in spec:
        gh, gw = spec["alt_grid"]
        cos, sin = rotary(spec["config"], spec["frames"], gh, gw)
        tensors["alt_rope_cos"], tensors["alt_rope_sin"] = cos, sin


OUTPUTS = ("hidden_states", "encoder_hidden_states")


def blocks(spec):
    rope = "image_rotary_emb" if spec["config"].get("use_rotary_positional_embeddings") else None
    return [
        refgen.Block("transformer_blocks", 0, "first", rope=rope, outputs=OUTPUTS),
        refgen.Block("transformer_blocks", -1, "last", rope=rope, outputs=OUTPUTS),
    ]


FAMILY = refgen.Family(
    cls=CogVideoXTransformer3DModel,
    configs=CONFIGS,
    inputs=inputs,
    call_kwargs=call_kwargs,
    blocks=blocks,
    outputs=[refgen.Output("patch_embed", "patch_embed")],
    after=after,
)

if __name__ == "__main__":
    refgen.main(FAMILY)
