"""The machinery every fixture generator shares: a family generator (`gen_<family>.py`) only
declares a `Family` (the diffusers class, its configurations, how to draw the inputs, which
blocks and modules to capture) and calls `main(FAMILY)`.

For each configuration `generate` writes, under `adapters/tests/fixtures/<name>/`:
- `transformer/`: diffusers `save_pretrained` of the model built with `torch.manual_seed(0)`,
  every parameter then perturbed by `0.1·randn` (default init leaves norm scales at 1, which would
  hide a missing scale), so the Rust loader reads it exactly as a hub `transformer/` folder;
- `io.safetensors`: the inputs (drawn from a generator seeded with 1, stored as f32), the model
  `output`, the inputs and outputs of the captured blocks (`<prefix>.in.<arg>`,
  `<prefix>.out.<name>`), the captured module outputs, and whatever `Family.after` adds; the
  metadata holds the diffusers and torch versions.

The seeds, the order of the random draws and the file layout are those the committed fixtures
were written with, so rerunning a generator with the same torch/diffusers rewrites the same
files; the metadata keys are written in sorted order so that the bytes are reproducible too.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Callable

import torch
from safetensors.torch import load_file, save, save_file

import diffusers

FIXTURES = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "adapters", "tests", "fixtures"))
MODEL_SEED = 0
INPUT_SEED = 1
PERTURB = 0.1


@dataclass
class Block:
    """One block whose inputs and outputs are captured with a forward hook.

    `inputs` are the argument names to store as `<prefix>.in.<name>` (keyword arguments, or the
    positional ones in this order when `positional`); absent or `None` ones are skipped. `rope`
    is the keyword (or positional index) of a `(cos, sin)` pair stored as `in.rope_cos` and
    `in.rope_sin`. `outputs` names the items of a tuple output (`None` items are skipped); a
    single tensor output is `out.hidden_states`. `cast` stores the inputs as f32 (masks).
    """

    module: str
    index: int
    prefix: str
    inputs: tuple = ("hidden_states", "encoder_hidden_states", "temb")
    rope: str | int | None = None
    outputs: tuple = ("encoder_hidden_states", "hidden_states")
    positional: bool = False
    cast: bool = False


@dataclass
class Output:
    """A submodule whose output is stored: `keys` is a name (the whole output) or a
    `{index: name}` map over a tuple output."""

    module: str
    keys: str | dict


@dataclass
class Family:
    """How to write one family's fixtures.

    `configs` maps a fixture name to its spec, a dict with the model's constructor kwargs under
    `config` and any options the callbacks read. `inputs(spec, g)` draws the model's tensor
    inputs from `g` (in a fixed order: the order of the draws is part of the fixture);
    `call_kwargs(spec)` gives non-tensor forward arguments (not stored). `blocks(spec)` and
    `outputs` say what to capture. `after(model, spec, inputs, tensors, g)` runs once the
    hooks are removed and may add tensors (extra runs, rotary tables). `drop_weights` are
    computed buffers left out of the checkpoint (the Rust model builds them).
    """

    cls: type
    configs: dict
    inputs: Callable[[dict, torch.Generator], dict]
    blocks: Callable[[dict], list] = lambda spec: []
    outputs: list = field(default_factory=list)
    call_kwargs: Callable[[dict], dict] = lambda spec: {}
    after: Callable | None = None
    drop_weights: tuple = ()


def fixture_dir(name: str) -> str:
    """`adapters/tests/fixtures/<name>`."""
    return os.path.join(FIXTURES, name)


def seeded_model(cls, config: dict, seed: int = MODEL_SEED, perturb: float = PERTURB):
    """`cls(**config)` in eval mode with every parameter perturbed by `perturb·randn`."""
    torch.manual_seed(seed)
    model = cls(**config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(perturb * torch.randn_like(p))
    return model


def save_transformer(model, out_dir: str, drop: tuple = ()) -> str:
    """`save_pretrained` into `<out_dir>/transformer`, without the `drop` tensors."""
    tdir = os.path.join(out_dir, "transformer")
    model.save_pretrained(tdir, safe_serialization=True)
    if drop:
        path = os.path.join(tdir, "diffusion_pytorch_model.safetensors")
        weights = load_file(path)
        for key in drop:
            weights.pop(key)
        save_file(weights, path, metadata={"format": "pt"})
    return tdir


def image_ids(h: int, w: int) -> torch.Tensor:
    """Flux-style image position ids `(0, row, col)`, `(h·w, 3)`."""
    ids = torch.zeros(h, w, 3)
    ids[..., 1] = torch.arange(h)[:, None]
    ids[..., 2] = torch.arange(w)[None, :]
    return ids.reshape(h * w, 3)


def versions() -> dict:
    """The versions stored in every `io.safetensors`."""
    return {"diffusers": diffusers.__version__, "torch": torch.__version__}


def _sorted_metadata(data: bytes) -> bytes:
    # safetensors writes the metadata map in hash order, which changes from run to run; the
    # header keeps its length when the two keys swap, so the data offsets stay valid.
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= n, "re-serialized header is longer than the original"
    return data[:8] + text.ljust(n, b" ") + data[8 + n :]


def save_io(tensors: dict, path: str, metadata: dict | None = None) -> None:
    """Writes `tensors` (made contiguous) with `metadata` (default: `versions()`)."""
    data = save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata or versions())
    with open(path, "wb") as f:
        f.write(_sorted_metadata(data))


class Capture:
    """Forward hooks that store block inputs/outputs and module outputs into `tensors`."""

    def __init__(self):
        self.tensors: dict = {}
        self.handles: list = []

    def block(self, module, b: Block) -> None:
        """Stores `b`'s inputs and outputs on the next forward of `module`."""

        def hook(mod, args, kwargs, output):
            if b.positional:
                given = dict(zip(b.inputs, args))
            else:
                given = {k: kwargs.get(k) for k in b.inputs}
            for k, v in given.items():
                if v is not None:
                    v = v.detach().clone()
                    self.tensors[f"{b.prefix}.in.{k}"] = v.float() if b.cast else v
            if b.rope is not None:
                cos, sin = args[b.rope] if isinstance(b.rope, int) else kwargs[b.rope]
                self.tensors[f"{b.prefix}.in.rope_cos"] = cos.detach().clone()
                self.tensors[f"{b.prefix}.in.rope_sin"] = sin.detach().clone()
            if isinstance(output, tuple):
                for k, v in zip(b.outputs, output):
                    if v is not None:
                        self.tensors[f"{b.prefix}.out.{k}"] = v.detach().clone()
            else:
                self.tensors[f"{b.prefix}.out.hidden_states"] = output.detach().clone()

        self.handles.append(module.register_forward_hook(hook, with_kwargs=True))

    def output(self, module, o: Output) -> None:
        """Stores `module`'s output (or items of it) on its next forward."""

        def hook(mod, args, output):
            if isinstance(o.keys, str):
                self.tensors[o.keys] = output.detach().clone()
            else:
                for i, k in o.keys.items():
                    self.tensors[k] = output[i].detach().clone()

        self.handles.append(module.register_forward_hook(hook))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()


def generate(family: Family, name: str) -> dict:
    """Writes fixture `name` of `family`; returns the tensors written to `io.safetensors`."""
    spec = family.configs[name]
    model = seeded_model(family.cls, spec["config"])
    out_dir = fixture_dir(name)
    save_transformer(model, out_dir, family.drop_weights)

    g = torch.Generator().manual_seed(INPUT_SEED)
    inputs = family.inputs(spec, g)
    capture = Capture()
    for b in family.blocks(spec):
        capture.block(getattr(model, b.module)[b.index], b)
    for o in family.outputs:
        capture.output(getattr(model, o.module), o)
    with torch.no_grad():
        out = model(**inputs, **family.call_kwargs(spec), return_dict=False)[0]
    capture.remove()

    tensors = {k: v.contiguous().float() for k, v in inputs.items()}
    tensors.update(capture.tensors)
    tensors["output"] = out
    if family.after is not None:
        with torch.no_grad():
            family.after(model, spec, inputs, tensors, g)
    save_io(tensors, os.path.join(out_dir, "io.safetensors"))
    print(f"{name}: output {tuple(out.shape)} max|out| {out.abs().max().item():.4f}")
    return tensors


def main(family: Family, argv: list | None = None) -> None:
    """CLI: `gen_<family>.py [NAME ...]` writes the named fixtures (all without names);
    `--list` prints the names."""
    parser = argparse.ArgumentParser(description=f"Writes the {family.cls.__name__} parity fixtures.")
    parser.add_argument("names", nargs="*", help="fixtures to write (default: all)")
    parser.add_argument("--list", action="store_true", help="print the fixture names and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(family.configs))
        return
    unknown = [n for n in args.names if n not in family.configs]
    if unknown:
        parser.error(f"unknown fixture(s) {unknown}; known: {list(family.configs)}")
    for name in args.names or list(family.configs):
        generate(family, name)
