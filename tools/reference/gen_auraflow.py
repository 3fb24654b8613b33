"""AuraFlow parity fixture for `adapters/tests/auraflow_parity.rs` (`refgen` writes the files):

    /work/venv-ref/bin/python tools/reference/gen_auraflow.py

`AuraFlowTransformer2DModel` at the tiny config of diffusers' unit tests; inputs `hidden_states`
(B, C, H, W), `encoder_hidden_states`, `timestep` in [0, 1] as `AuraFlowPipeline` passes it; the
first joint block (`joint0.*`) and the first single block (`single0.*`). The latent is 8×12 (a
4×6 patch grid) so the crop of the 16×16 learned position grid is off-centre in both directions.
"""

import torch
from diffusers import AuraFlowTransformer2DModel

import refgen

BATCH, TXT, HW = 2, 8, (8, 12)

# tests/models/transformers/test_models_transformer_aura_flow.py
CONFIGS = {
    "auraflow_tiny": dict(
        config=dict(
            sample_size=32,
            patch_size=2,
            in_channels=4,
            num_mmdit_layers=1,
            num_single_dit_layers=1,
            attention_head_dim=8,
            num_attention_heads=4,
            caption_projection_dim=32,
            joint_attention_dim=32,
            out_channels=4,
            pos_embed_max_size=256,
        )
    ),
}


def inputs(spec, g):
    cfg = spec["config"]
    return {
        "hidden_states": torch.randn(BATCH, cfg["in_channels"], *HW, generator=g),
        "encoder_hidden_states": torch.randn(BATCH, TXT, cfg["joint_attention_dim"], generator=g),
        "timestep": torch.tensor([0.75, 0.3]),
    }


FAMILY = refgen.Family(
    cls=AuraFlowTransformer2DModel,
    configs=CONFIGS,
    inputs=inputs,
    blocks=lambda spec: [
        refgen.Block("joint_transformer_blocks", 0, "joint0"),
        refgen.Block("single_transformer_blocks", 0, "single0", inputs=("hidden_states", "temb")),
    ],
)

if __name__ == "__main__":
    refgen.main(FAMILY)
