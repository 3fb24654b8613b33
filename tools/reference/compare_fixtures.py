"""Compares regenerated fixtures with the committed ones (`git show HEAD:<path>`).

    /work/venv-ref/bin/python tools/reference/compare_fixtures.py [PATH ...]

Without paths it checks every modified `*.safetensors` under `adapters/tests/fixtures/`. For
each file it says whether the bytes are identical; if not, whether the header differs only in
the order of the metadata keys (safetensors writes them in hash order, `refgen` sorts them),
whether the metadata (versions) differs, and per tensor whether it is bit-equal or its max abs
difference: after a torch/diffusers upgrade the tensors may move within the tests' tolerances.
"""

import json
import struct
import subprocess
import sys

import torch
from safetensors.torch import load


def split(data: bytes) -> tuple:
    """(header without metadata, metadata, data bytes)."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    return header, header.pop("__metadata__", None), data[8 + n :]


def compare(old: bytes, new: bytes) -> str:
    if old == new:
        return "byte-identical"
    notes = []
    (ho, mo, do), (hn, mn, dn) = split(old), split(new)
    if mo != mn:
        notes.append(f"metadata {mo} -> {mn}")
    elif ho == hn and do == dn:
        return "header differs only in metadata key order; data bytes identical"
    to, tn = load(old), load(new)
    if set(to) != set(tn):
        notes.append(f"only committed: {sorted(set(to) - set(tn))}, only new: {sorted(set(tn) - set(to))}")
    differ = []
    for k in sorted(set(to) & set(tn)):
        a, b = to[k], tn[k]
        if a.dtype != b.dtype or a.shape != b.shape:
            differ.append(f"{k}: {a.dtype}{tuple(a.shape)} -> {b.dtype}{tuple(b.shape)}")
        elif not torch.equal(a, b):
            differ.append(f"{k}: max abs diff {(a.float() - b.float()).abs().max().item():.3e}")
    common = len(set(to) & set(tn))
    notes.append(f"{common - len(differ)}/{common} tensors bit-equal")
    return "; ".join(notes + differ)


def main() -> None:
    paths = sys.argv[1:]
    if not paths:
        out = subprocess.run(
            ["git", "diff", "--name-only", "--", "adapters/tests/fixtures"], capture_output=True, text=True, check=True
        ).stdout
        paths = [p for p in out.split() if p.endswith(".safetensors")]
    for path in paths:
        old = subprocess.run(["git", "show", f"HEAD:{path}"], capture_output=True, check=True).stdout
        with open(path, "rb") as f:
            print(f"{path}: {compare(old, f.read())}")


if __name__ == "__main__":
    main()
