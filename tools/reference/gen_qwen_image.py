"""Writes the QwenImage parity fixture used by `adapters/tests/qwen_image_parity.rs`.

    /work/venv-ref/bin/python tools/reference/gen_qwen_image.py

`adapters/tests/fixtures/qwen_image_tiny/`: `transformer/` (diffusers `save_pretrained` of
`QwenImageTransformer2DModel` with the tiny config of diffusers' unit tests, narrowed to 2 heads
so the folder stays small, every parameter perturbed by 0.1·randn) and `io.safetensors`:

- the inputs (`hidden_states`, `encoder_hidden_states`, `encoder_hidden_states_mask` with
  sample 0 padded and sample 1 holding a hole, `timestep` in `[0, 1]` as the pipeline passes it,
  `img_shapes` `(n, 3)`), the model `output`, and `temb`;
- the rotary tables (`rope.img_cos`, `rope.img_sin`, `rope.txt_cos`, `rope.txt_sin`, the real
  and imaginary parts of diffusers' complex tables, `(S, head_dim/2)`);
- the first block's inputs and outputs (`block0.in.*`, `block0.out.*`), captured with a hook;
- `output_bf16`: the model cast to bf16 on the same inputs (as f32 values);
- `edit.*`: the same model on an Edit-style sequence of two images (`img_shapes` (1, 3, 4) then
  (1, 2, 2)), which moves the frame axis and the text offset.

The image grid is 3×4 patches, so the centred (`scale_rope`) rows run over an odd count.
"""

import os

import torch
from safetensors.torch import save_file

import diffusers
from diffusers import QwenImageTransformer2DModel

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "adapters", "tests", "fixtures")
BATCH, TXT = 2, 7
SHAPES = [(1, 3, 4)]
EDIT_SHAPES = [(1, 3, 4), (1, 2, 2)]

CONFIG = dict(
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


def main():
    torch.manual_seed(0)
    model = QwenImageTransformer2DModel(**CONFIG).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    out_dir = os.path.join(ROOT, "qwen_image_tiny")
    model.save_pretrained(os.path.join(out_dir, "transformer"), safe_serialization=True)

    g = torch.Generator().manual_seed(1)
    tokens = sum(f * h * w for f, h, w in SHAPES)
    mask = torch.ones(BATCH, TXT)
    mask[0, 5:] = 0
    mask[1, 2] = 0
    inputs = {
        "hidden_states": torch.randn(BATCH, tokens, CONFIG["in_channels"], generator=g),
        "encoder_hidden_states": torch.randn(BATCH, TXT, CONFIG["joint_attention_dim"], generator=g),
        "encoder_hidden_states_mask": mask,
        "timestep": torch.tensor([0.75, 0.3]),
    }
    captured = {}

    def hook(module, args, kwargs, output):
        for k in ("hidden_states", "encoder_hidden_states", "encoder_hidden_states_mask", "temb"):
            captured[f"block0.in.{k}"] = kwargs[k].detach().clone().float()
        captured["block0.out.encoder_hidden_states"] = output[0].detach().clone()
        captured["block0.out.hidden_states"] = output[1].detach().clone()

    handle = model.transformer_blocks[0].register_forward_hook(hook, with_kwargs=True)
    with torch.no_grad():
        out = model(**inputs, img_shapes=[SHAPES] * BATCH, return_dict=False)[0]
        img, txt = model.pos_embed([SHAPES] * BATCH, max_txt_seq_len=TXT, device=torch.device("cpu"))
    handle.remove()
    tensors = {k: v.contiguous().float() for k, v in inputs.items()}
    tensors["img_shapes"] = torch.tensor(SHAPES, dtype=torch.float32)
    tensors.update({k: v.contiguous() for k, v in captured.items()})
    tensors["temb"] = captured["block0.in.temb"].clone()
    tensors["output"] = out.contiguous()
    tensors["rope.img_cos"] = img.real.contiguous()
    tensors["rope.img_sin"] = img.imag.contiguous()
    tensors["rope.txt_cos"] = txt.real.contiguous()
    tensors["rope.txt_sin"] = txt.imag.contiguous()

    edit_tokens = sum(f * h * w for f, h, w in EDIT_SHAPES)
    edit_hidden = torch.randn(BATCH, edit_tokens, CONFIG["in_channels"], generator=g)
    with torch.no_grad():
        edit_out = model(
            hidden_states=edit_hidden,
            encoder_hidden_states=inputs["encoder_hidden_states"],
            encoder_hidden_states_mask=None,
            timestep=inputs["timestep"],
            img_shapes=[EDIT_SHAPES] * BATCH,
            return_dict=False,
        )[0]
    tensors["edit.hidden_states"] = edit_hidden
    tensors["edit.img_shapes"] = torch.tensor(EDIT_SHAPES, dtype=torch.float32)
    tensors["edit.output"] = edit_out.contiguous()
    # The whole model in bf16, as diffusers runs it (timestep cast to bf16 before the sinusoids).
    model_bf16 = model.to(torch.bfloat16)
    with torch.no_grad():
        out_bf16 = model_bf16(
            hidden_states=inputs["hidden_states"].bfloat16(),
            encoder_hidden_states=inputs["encoder_hidden_states"].bfloat16(),
            encoder_hidden_states_mask=mask,
            timestep=inputs["timestep"],
            img_shapes=[SHAPES] * BATCH,
            return_dict=False,
        )[0]
    tensors["output_bf16"] = out_bf16.float().contiguous()
    save_file(
        tensors,
        os.path.join(out_dir, "io.safetensors"),
        metadata={"diffusers": diffusers.__version__, "torch": torch.__version__},
    )
    print(f"qwen_image_tiny: output {tuple(out.shape)} max|out| {out.abs().max().item():.4f}")


if __name__ == "__main__":
    main()
