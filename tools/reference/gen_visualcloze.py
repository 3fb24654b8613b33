"""VisualCloze parity fixture for `adapters/tests/visualcloze_parity.rs`.

VisualCloze's transformer is diffusers' `FluxTransformer2DModel` with FLUX.1-Fill channels, so
this is `gen_flux.FAMILY` (same inputs and captures) on a tiny Fill-shaped config: the unit-test
geometry with a guidance embedder and `in_channels` 24 (4 latent + 4 masked-image + 16 mask
channels) -> `out_channels` 4. The Rust test splits `hidden_states` into latents and condition.

    /work/venv-ref/bin/python tools/reference/gen_visualcloze.py
"""

import dataclasses

import refgen
from gen_flux import FAMILY as FLUX
from gen_flux import TINY

CONFIGS = {
    "visualcloze_tiny": dict(config=dict(TINY, in_channels=24, out_channels=4, guidance_embeds=True), guidance=True),
}
FAMILY = dataclasses.replace(FLUX, configs=CONFIGS)

if __name__ == "__main__":
    refgen.main(FAMILY)
