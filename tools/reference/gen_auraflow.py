"""Writes the AuraFlow parity fixture used by `adapters/tests/auraflow_parity.rs`.

    /work/venv-ref/bin/python tools/reference/gen_auraflow.py

`adapters/tests/fixtures/auraflow_tiny/`: `transformer/` (diffusers `save_pretrained` of
`AuraFlowTransformer2DModel` at the tiny config of diffusers' unit tests, every parameter
perturbed by 0.1·randn) and `io.safetensors`: inputs (`hidden_states` (B, C, H, W),
`encoder_hidden_states`, `timestep` in [0, 1] as `AuraFlowPipeline` passes it), `output`, and
the inputs and outputs of the first joint block (`joint0.*`) and the first single block
(`single0.*`), captured with forward hooks. The latent is 8×12 (a 4×6 patch grid) so the crop
of the 16×16 learned position grid is off-centre in both directions.
"""

import os

import torch
from safetensors.torch import save_file

import diffusers
from diffusers import AuraFlowTransformer2DModel

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "adapters", "tests", "fixtures")
BATCH, TXT, HW = 2, 8, (8, 12)

# tests/models/transformers/test_models_transformer_aura_flow.py
TINY = dict(
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


def generate(name, cfg):
    torch.manual_seed(0)
    model = AuraFlowTransformer2DModel(**cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    out_dir = os.path.join(ROOT, name)
    model.save_pretrained(os.path.join(out_dir, "transformer"), safe_serialization=True)
    g = torch.Generator().manual_seed(1)
    inputs = {
        "hidden_states": torch.randn(BATCH, cfg["in_channels"], *HW, generator=g),
        "encoder_hidden_states": torch.randn(BATCH, TXT, cfg["joint_attention_dim"], generator=g),
        "timestep": torch.tensor([0.75, 0.3]),
    }
    captured = {}

    def hook(prefix, keys):
        def fn(module, args, kwargs, output):
            for k in keys:
                captured[f"{prefix}.in.{k}"] = kwargs[k].detach().clone()
            if isinstance(output, tuple):
                captured[f"{prefix}.out.encoder_hidden_states"] = output[0].detach().clone()
                captured[f"{prefix}.out.hidden_states"] = output[1].detach().clone()
            else:
                captured[f"{prefix}.out.hidden_states"] = output.detach().clone()

        return fn

    model.joint_transformer_blocks[0].register_forward_hook(
        hook("joint0", ("hidden_states", "encoder_hidden_states", "temb")), with_kwargs=True
    )
    model.single_transformer_blocks[0].register_forward_hook(
        hook("single0", ("hidden_states", "temb")), with_kwargs=True
    )
    with torch.no_grad():
        out = model(**inputs, return_dict=False)[0]
    tensors = {k: v.contiguous().float() for k, v in inputs.items()}
    tensors.update({k: v.contiguous() for k, v in captured.items()})
    tensors["output"] = out.contiguous()
    save_file(
        tensors,
        os.path.join(out_dir, "io.safetensors"),
        metadata={"diffusers": diffusers.__version__, "torch": torch.__version__},
    )
    print(f"{name}: output {tuple(out.shape)} max|out| {out.abs().max().item():.4f}")


if __name__ == "__main__":
    generate("auraflow_tiny", TINY)
