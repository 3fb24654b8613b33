"""Writes the block-level parity fixtures of designs D and X (`adapters/tests/design_blocks.rs`).

Run from the repository root with the reference environment (diffusers + torch + safetensors):

    /work/venv-ref/bin/python tools/reference/gen_blocks_dx.py            # every case
    /work/venv-ref/bin/python tools/reference/gen_blocks_dx.py pixart wan  # some

Each case builds ONE diffusers block with tiny dimensions, perturbs every parameter by
`0.1 * randn` (fixed seed, so norm scales and tables are not at their init values), runs it on
fixed inputs and writes `adapters/tests/fixtures/blocks_dx/<case>/`:

- `block.safetensors`: the block's `state_dict()` under diffusers' own names (what a family
  loads under `transformer_blocks.{i}.` / `blocks.{i}.`);
- `io.safetensors`: the block's inputs under the forward's argument names (rotary tables as
  `rope_cos`/`rope_sin`, `(S, D)` full width), its outputs (`out.hidden_states`,
  `out.encoder_hidden_states` for the joint blocks) and for DiT the per-block conditioning
  `temb` computed by `norm1.emb`.

The metadata of `io.safetensors` records the diffusers and torch versions. Everything is f32 on
CPU, so rerunning gives the same files for the same versions.
"""

import os
import sys

import torch
from safetensors.torch import save_file

import diffusers
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.embeddings import get_3d_rotary_pos_embed
from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXBlock
from diffusers.models.transformers.transformer_cogview3plus import CogView3PlusTransformerBlock
from diffusers.models.transformers.transformer_cogview4 import (
    CogView4RotaryPosEmbed,
    CogView4TransformerBlock,
)
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed, WanTransformerBlock

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "adapters", "tests", "fixtures", "blocks_dx")

BATCH = 2


def perturbed(block):
    torch.manual_seed(0)
    block = block.eval()
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return block


def randn(*shape, g):
    return torch.randn(*shape, generator=g)


def padding_bias(keep, batch):
    """PixArt's `encoder_attention_mask` as the model hands it to the blocks: `(B, 1, T)`,
    `(1 - mask) * -10000`."""
    mask = torch.tensor(keep, dtype=torch.float32)[None].repeat(batch, 1)
    mask[1, -1] = 1.0  # the two samples differ
    return ((1 - mask) * -10000.0).unsqueeze(1)


def case_pixart(g):
    dim, cross = 8, 12
    block = perturbed(
        BasicTransformerBlock(
            dim,
            num_attention_heads=2,
            attention_head_dim=4,
            cross_attention_dim=cross,
            activation_fn="gelu-approximate",
            num_embeds_ada_norm=8,
            attention_bias=True,
            norm_type="ada_norm_single",
            norm_elementwise_affine=False,
            norm_eps=1e-6,
        )
    )
    inputs = {
        "hidden_states": randn(BATCH, 6, dim, g=g),
        "encoder_hidden_states": randn(BATCH, 5, cross, g=g),
        "encoder_attention_mask": padding_bias([1, 1, 1, 0, 0], BATCH),
        "timestep": randn(BATCH, 6 * dim, g=g),
    }
    with torch.no_grad():
        out = block(
            inputs["hidden_states"],
            encoder_hidden_states=inputs["encoder_hidden_states"],
            encoder_attention_mask=inputs["encoder_attention_mask"],
            timestep=inputs["timestep"],
        )
    return block, inputs, {"out.hidden_states": out}


def case_dit(g):
    dim, classes = 8, 10
    block = perturbed(
        BasicTransformerBlock(
            dim,
            num_attention_heads=2,
            attention_head_dim=4,
            activation_fn="gelu-approximate",
            num_embeds_ada_norm=classes,
            attention_bias=True,
            norm_type="ada_norm_zero",
            norm_elementwise_affine=False,
            norm_eps=1e-5,
        )
    )
    inputs = {
        "hidden_states": randn(BATCH, 6, dim, g=g),
        "timestep": torch.tensor([999.0, 250.0]),
        # the second label is the null class (index `num_classes`) that CFG uses
        "class_labels": torch.tensor([3, classes], dtype=torch.int64),
    }
    with torch.no_grad():
        temb = block.norm1.emb(inputs["timestep"], inputs["class_labels"], hidden_dtype=torch.float32)
        out = block(inputs["hidden_states"], timestep=inputs["timestep"], class_labels=inputs["class_labels"])
    return block, inputs, {"temb": temb, "out.hidden_states": out}


def wan_rope(head_dim, frames, height, width):
    rope = WanRotaryPosEmbed(head_dim, (1, 2, 2), max_seq_len=32)
    cos, sin = rope(torch.zeros(1, 1, frames, 2 * height, 2 * width))
    s = frames * height * width
    return cos.reshape(s, head_dim).float(), sin.reshape(s, head_dim).float()


def case_wan(g, cross_attn_norm=True, per_token_temb=False):
    heads, head_dim = 2, 12
    dim = heads * head_dim
    block = perturbed(
        WanTransformerBlock(
            dim,
            ffn_dim=32,
            num_heads=heads,
            qk_norm="rms_norm_across_heads",
            cross_attn_norm=cross_attn_norm,
            eps=1e-6,
        )
    )
    cos, sin = wan_rope(head_dim, 2, 2, 3)
    s = cos.shape[0]
    temb_shape = (BATCH, s, 6, dim) if per_token_temb else (BATCH, 6, dim)
    inputs = {
        "hidden_states": randn(BATCH, s, dim, g=g),
        "encoder_hidden_states": randn(BATCH, 5, dim, g=g),
        "temb": randn(*temb_shape, g=g),
        "rope_cos": cos,
        "rope_sin": sin,
    }
    with torch.no_grad():
        out = block(
            inputs["hidden_states"],
            inputs["encoder_hidden_states"],
            inputs["temb"],
            (cos[None, :, None, :], sin[None, :, None, :]),
        )
    return block, inputs, {"out.hidden_states": out}


def case_wan_i2v(g):
    """I2V: `added_kv_proj_dim` set; the first `len - 512` context tokens are the image
    context. Small widths keep the 512 text tokens cheap; no rotary table (attn1 takes None)."""
    heads, head_dim = 2, 4
    dim = heads * head_dim
    block = perturbed(
        WanTransformerBlock(
            dim,
            ffn_dim=16,
            num_heads=heads,
            qk_norm="rms_norm_across_heads",
            cross_attn_norm=True,
            eps=1e-6,
            added_kv_proj_dim=dim,
        )
    )
    inputs = {
        "hidden_states": randn(1, 6, dim, g=g),
        "encoder_hidden_states": randn(1, 3 + 512, dim, g=g),
        "temb": randn(1, 6, dim, g=g),
    }
    with torch.no_grad():
        out = block(inputs["hidden_states"], inputs["encoder_hidden_states"], inputs["temb"], None)
    return block, inputs, {"out.hidden_states": out}


def case_cogvideox(g):
    heads, head_dim, temb_dim = 2, 16, 6
    dim = heads * head_dim
    block = perturbed(
        CogVideoXBlock(
            dim,
            num_attention_heads=heads,
            attention_head_dim=head_dim,
            time_embed_dim=temb_dim,
            activation_fn="gelu-approximate",
            attention_bias=True,
            norm_elementwise_affine=True,
            norm_eps=1e-5,
        )
    )
    frames, gh, gw = 2, 2, 3
    cos, sin = get_3d_rotary_pos_embed(head_dim, ((0, 0), (gh, gw)), (gh, gw), frames)
    s = frames * gh * gw
    inputs = {
        "hidden_states": randn(BATCH, s, dim, g=g),
        "encoder_hidden_states": randn(BATCH, 5, dim, g=g),
        "temb": randn(BATCH, temb_dim, g=g),
        "rope_cos": cos.float(),
        "rope_sin": sin.float(),
    }
    with torch.no_grad():
        h, e = block(
            inputs["hidden_states"],
            inputs["encoder_hidden_states"],
            inputs["temb"],
            image_rotary_emb=(cos.float(), sin.float()),
        )
    return block, inputs, {"out.hidden_states": h, "out.encoder_hidden_states": e}


def case_cogview4(g, masked=False):
    heads, head_dim, temb_dim = 4, 4, 8
    dim = heads * head_dim
    block = perturbed(CogView4TransformerBlock(dim, heads, head_dim, temb_dim))
    gh, gw = 3, 4
    cos, sin = CogView4RotaryPosEmbed(head_dim, 2, (256, 256))(torch.zeros(1, 1, 2 * gh, 2 * gw))
    inputs = {
        "hidden_states": randn(BATCH, gh * gw, dim, g=g),
        "encoder_hidden_states": randn(BATCH, 5, dim, g=g),
        # the model applies SiLU to temb once, before the blocks
        "temb": randn(BATCH, temb_dim, g=g),
        "rope_cos": cos.float(),
        "rope_sin": sin.float(),
    }
    kwargs = {}
    if masked:
        inputs["attention_mask"] = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], dtype=torch.float32)
        kwargs["attention_mask"] = inputs["attention_mask"]
    with torch.no_grad():
        h, e = block(
            inputs["hidden_states"],
            inputs["encoder_hidden_states"],
            inputs["temb"],
            image_rotary_emb=(cos.float(), sin.float()),
            **kwargs,
        )
    return block, inputs, {"out.hidden_states": h, "out.encoder_hidden_states": e}


def case_cogview3plus(g):
    heads, head_dim, temb_dim = 2, 4, 8
    dim = heads * head_dim
    block = perturbed(CogView3PlusTransformerBlock(dim, heads, head_dim, temb_dim))
    inputs = {
        "hidden_states": randn(BATCH, 6, dim, g=g),
        "encoder_hidden_states": randn(BATCH, 5, dim, g=g),
        "emb": randn(BATCH, temb_dim, g=g),
    }
    with torch.no_grad():
        h, e = block(inputs["hidden_states"], inputs["encoder_hidden_states"], inputs["emb"])
    return block, inputs, {"out.hidden_states": h, "out.encoder_hidden_states": e}


CASES = {
    "pixart": case_pixart,
    "dit": case_dit,
    "wan": case_wan,
    "wan_ti2v": lambda g: case_wan(g, cross_attn_norm=False, per_token_temb=True),
    "wan_i2v": case_wan_i2v,
    "cogvideox": case_cogvideox,
    "cogview4": case_cogview4,
    "cogview4_masked": lambda g: case_cogview4(g, masked=True),
    "cogview3plus": case_cogview3plus,
}


def generate(name):
    g = torch.Generator().manual_seed(1)
    block, inputs, outputs = CASES[name](g)
    out_dir = os.path.join(ROOT, name)
    os.makedirs(out_dir, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in block.state_dict().items()}
    meta = {"diffusers": diffusers.__version__, "torch": torch.__version__, "block": type(block).__name__}
    save_file(state, os.path.join(out_dir, "block.safetensors"), metadata=meta)
    tensors = {k: v.detach().contiguous() for k, v in inputs.items()}
    tensors.update({k: v.detach().contiguous() for k, v in outputs.items()})
    save_file(tensors, os.path.join(out_dir, "io.safetensors"), metadata=meta)
    out = outputs["out.hidden_states"]
    print(f"{name}: {type(block).__name__} out {tuple(out.shape)} max|out| {out.abs().max().item():.4f}")


def main():
    for name in sys.argv[1:] or list(CASES):
        generate(name)


if __name__ == "__main__":
    main()
