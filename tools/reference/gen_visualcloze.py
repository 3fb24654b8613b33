"""Writes the VisualCloze parity fixture used by `adapters/tests/visualcloze_parity.rs`.

VisualCloze's transformer is diffusers' `FluxTransformer2DModel` with FLUX.1-Fill channels, so
this reuses `gen_flux.generate` (same file layout) on a tiny Fill-shaped config: the unit-test
geometry of `test_models_transformer_flux.py` with a guidance embedder and `in_channels` 24
(4 latent + 4 masked-image + 16 mask channels) -> `out_channels` 4. The Rust test splits the
fixture's `hidden_states` into latents and condition.

    /work/venv-ref/bin/python tools/reference/gen_visualcloze.py
"""

from gen_flux import generate

CONFIG = dict(
    config=dict(
        patch_size=1,
        in_channels=24,
        out_channels=4,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=True,
        axes_dims_rope=[4, 4, 8],
    ),
    guidance=True,
)

if __name__ == "__main__":
    generate("visualcloze_tiny", CONFIG)
