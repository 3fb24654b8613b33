"""Wan 2.1 parity fixtures for `adapters/tests/wan_parity.rs` (`refgen` writes the files):

    /work/venv-ref/bin/python tools/reference/gen_wan.py [wan_tiny ...]

Inputs under `WanTransformer3DModel.forward`'s names: `hidden_states` (B, C, F, H, W) on a
non-square grid (so the h/w rotary axes and the unpatchify order are told apart),
`encoder_hidden_states` (B, T, text_dim), `timestep` (B,) on the 0-1000 scale; captured: the
condition embedder (`temb`, `timestep_proj`, projected text), the rotary tables and the first
block with its own inputs.

- `wan_tiny`: diffusers' unit-test config (`test_models_transformer_wan.py`);
- `wan_tiny_ti2v`: the same weights' layout with per-token timesteps `(B, S)` (Wan 2.2 TI2V's
  `expand_timesteps`), no `norm2`, three blocks, a (1, 2, 2) patch over odd frame counts;
- `wan_tiny_i2v`: the image branch (`image_dim`, `added_kv_proj_dim`): CLIP image tokens through
  `condition_embedder.image_embedder`, the text padded to the 512 tokens diffusers slices at.
"""

import torch
from diffusers import WanTransformer3DModel

import refgen

BATCH, TXT, FRAMES, HEIGHT, WIDTH = 2, 5, 2, 4, 6

TINY = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=2,
    attention_head_dim=12,
    in_channels=4,
    out_channels=4,
    text_dim=16,
    freq_dim=256,
    ffn_dim=32,
    num_layers=2,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    rope_max_seq_len=32,
)
CONFIGS = {
    "wan_tiny": dict(config=TINY),
    "wan_tiny_ti2v": dict(
        config=dict(TINY, num_layers=3, cross_attn_norm=False, out_channels=3),
        frames=3,
        per_token=True,
    ),
    "wan_tiny_i2v": dict(
        config=dict(TINY, image_dim=12, added_kv_proj_dim=24),
        txt=512,
        image_tokens=3,
    ),
}


def inputs(spec, g):
    cfg = spec["config"]
    frames = spec.get("frames", FRAMES)
    out = {
        "hidden_states": torch.randn(BATCH, cfg["in_channels"], frames, HEIGHT, WIDTH, generator=g),
        "encoder_hidden_states": torch.randn(BATCH, spec.get("txt", TXT), cfg["text_dim"], generator=g),
    }
    if spec.get("per_token"):
        tokens = frames * (HEIGHT // 2) * (WIDTH // 2)
        # TI2V: the first frame's tokens at 0 (the conditioning image), the rest at the step's t
        t = torch.tensor([750.0, 300.0])[:, None].repeat(1, tokens)
        t[:, : (HEIGHT // 2) * (WIDTH // 2)] = 0.0
        out["timestep"] = t
    else:
        out["timestep"] = torch.tensor([750.0, 300.0])
    if "image_tokens" in spec:
        out["encoder_hidden_states_image"] = torch.randn(
            BATCH, spec["image_tokens"], cfg["image_dim"], generator=g
        )
    return out


FAMILY = refgen.Family(
    cls=WanTransformer3DModel,
    configs=CONFIGS,
    inputs=inputs,
    blocks=lambda spec: [
        refgen.Block(
            "blocks",
            0,
            "block0",
            inputs=("hidden_states", "encoder_hidden_states", "temb"),
            rope=3,
            positional=True,
        ),
    ],
    outputs=[
        refgen.Output("condition_embedder", {0: "temb", 1: "timestep_proj", 2: "encoder_proj"}),
        refgen.Output("rope", {0: "rope_cos", 1: "rope_sin"}),
    ],
)

if __name__ == "__main__":
    refgen.main(FAMILY)
