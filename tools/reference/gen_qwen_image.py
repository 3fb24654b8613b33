"""QwenImage parity fixture for `adapters/tests/qwen_image_parity.rs` (`refgen` writes the files):

    /work/venv-ref/bin/python tools/reference/gen_qwen_image.py

`QwenImageTransformer2DModel` at the tiny config of diffusers' unit tests, narrowed to 2 heads so
the folder stays small. `io.safetensors` holds:
- the inputs (`hidden_states`, `encoder_hidden_states`, `encoder_hidden_states_mask` with
  sample 0 padded and sample 1 holding a hole, `timestep` in `[0, 1]` as the pipeline passes it,
  `img_shapes` `(n, 3)`), the model `output`, and `temb`;
- the rotary tables (`rope.img_cos`, `rope.img_sin`, `rope.txt_cos`, `rope.txt_sin`, the real
  and imaginary parts of diffusers' complex tables, `(S, head_dim/2)`);
- the first block's inputs and outputs (`block0.in.*`, `block0.out.*`);
- `output_bf16`: the model cast to bf16 on the same inputs (as f32 values);
- `edit.*`: the same model on an Edit-style sequence of two images (`img_shapes` (1, 3, 4) then
  (1, 2, 2)), which moves the frame axis and the text offset.

The image grid is 3×4 patches, so the centred (`scale_rope`) rows run over an odd count.
"""

import torch
from diffusers import QwenImageTransformer2DModel

import refgen

BATCH, TXT = 2, 7
SHAPES = [(1, 3, 4)]
EDIT_SHAPES = [(1, 3, 4), (1, 2, 2)]

CONFIGS = {
    "qwen_image_tiny": dict(
        config=dict(
            patch_size=2,
            in_channels=16,
            out_channels=4,
            num_layers=2,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=16,
            guidance_embeds=False,
            axes_dims_rope=(8, 4, 4),
        )
    ),
}


def inputs(spec, g):
    cfg = spec["config"]
    tokens = sum(f * h * w for f, h, w in SHAPES)
    mask = torch.ones(BATCH, TXT)
    mask[0, 5:] = 0
    mask[1, 2] = 0
    return {
        "hidden_states": torch.randn(BATCH, tokens, cfg["in_channels"], generator=g),
        "encoder_hidden_states": torch.randn(BATCH, TXT, cfg["joint_attention_dim"], generator=g),
        "encoder_hidden_states_mask": mask,
        "timestep": torch.tensor([0.75, 0.3]),
    }


def after(model, spec, inputs, tensors, g):
    """Rotary tables, the Edit-style run, and the bf16 run (last: it casts the model)."""
    img, txt = model.pos_embed([SHAPES] * BATCH, max_txt_seq_len=TXT, device=torch.device("cpu"))
    tensors["img_shapes"] = torch.tensor(SHAPES, dtype=torch.float32)
    tensors["temb"] = tensors["block0.in.temb"].clone()
    tensors["rope.img_cos"] = img.real
    tensors["rope.img_sin"] = img.imag
    tensors["rope.txt_cos"] = txt.real
    tensors["rope.txt_sin"] = txt.imag

    edit_tokens = sum(f * h * w for f, h, w in EDIT_SHAPES)
    edit_hidden = torch.randn(BATCH, edit_tokens, spec["config"]["in_channels"], generator=g)
    tensors["edit.hidden_states"] = edit_hidden
    tensors["edit.img_shapes"] = torch.tensor(EDIT_SHAPES, dtype=torch.float32)
    tensors["edit.output"] = model(
        hidden_states=edit_hidden,
        encoder_hidden_states=inputs["encoder_hidden_states"],
        encoder_hidden_states_mask=None,
        timestep=inputs["timestep"],
        img_shapes=[EDIT_SHAPES] * BATCH,
        return_dict=False,
    )[0]
    # The whole model in bf16, as diffusers runs it (timestep cast to bf16 before the sinusoids).
    bf16 = model.to(torch.bfloat16)
    tensors["output_bf16"] = bf16(
        hidden_states=inputs["hidden_states"].bfloat16(),
        encoder_hidden_states=inputs["encoder_hidden_states"].bfloat16(),
        encoder_hidden_states_mask=inputs["encoder_hidden_states_mask"],
        timestep=inputs["timestep"],
        img_shapes=[SHAPES] * BATCH,
        return_dict=False,
    )[0].float()


FAMILY = refgen.Family(
    cls=QwenImageTransformer2DModel,
    configs=CONFIGS,
    inputs=inputs,
    call_kwargs=lambda spec: {"img_shapes": [SHAPES] * BATCH},
    blocks=lambda spec: [
        refgen.Block(
            "transformer_blocks",
            0,
            "block0",
            inputs=("hidden_states", "encoder_hidden_states", "encoder_hidden_states_mask", "temb"),
            cast=True,
        )
    ],
    after=after,
)

if __name__ == "__main__":
    refgen.main(FAMILY)
