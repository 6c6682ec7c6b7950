"""Helpers shared by the export scripts: exporting, checking the exported
file against the contract the Go program enforces, and hashing."""

import hashlib
import inspect
import os
import sys

import numpy as np

from registry import IMAGENET_MEAN, IMAGENET_STD

# Where the program looks first when run from a checkout (see
# models/README.md, "Where the program looks for models").
DEFAULT_OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

DYNAMIC = "dynamic"  # a dimension that must stay symbolic in the export


def fail(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(1)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def normalised_images(batch, height, width, seed):
    """Random RGB images in 0..1, normalised the way the program does it:
    (x - mean) / std per channel, laid out NCHW, float32."""
    rng = np.random.default_rng(seed)
    img = rng.random((batch, height, width, 3), dtype=np.float32)
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)
    std = np.asarray(IMAGENET_STD, dtype=np.float32)
    return np.ascontiguousarray(((img - mean) / std).transpose(0, 3, 1, 2), dtype=np.float32)


def export(module, args, path, input_names, output_names, dynamic_axes, opset):
    """torch.onnx.export with the TorchScript-based exporter.

    Newer PyTorch defaults to the dynamo exporter, which names and shapes
    tensors differently; the program's contract was written against the
    classic exporter's output, so ask for it explicitly where the argument
    exists."""
    import torch

    kwargs = dict(
        export_params=True,
        do_constant_folding=True,
        opset_version=opset,
        input_names=input_names,
        output_names=output_names,
        dynamic_axes=dynamic_axes,
    )
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    with torch.no_grad():
        torch.onnx.export(module, args, path, **kwargs)


ORT_TYPES = {"float32": "tensor(float)", "int64": "tensor(int64)"}


def check_tensors(what, declared, expected):
    """Compare onnxruntime NodeArgs with (name, dtype, dims) triples.

    A fixed expected dimension may be left symbolic by the exporter (the
    program accepts that); a DYNAMIC one must not have been baked into a
    number, or the program could not feed other batch or image sizes."""
    problems = []
    by_name = {d.name: d for d in declared}
    for name, dtype, dims in expected:
        d = by_name.get(name)
        if d is None:
            problems.append(f"{what} {name!r} missing (model declares {sorted(by_name)})")
            continue
        if d.type != ORT_TYPES[dtype]:
            problems.append(f"{what} {name!r} has type {d.type}, want {ORT_TYPES[dtype]}")
        if len(d.shape) != len(dims):
            problems.append(f"{what} {name!r} has shape {d.shape}, want {len(dims)} dimensions")
            continue
        for i, (got, want) in enumerate(zip(d.shape, dims)):
            fixed = isinstance(got, int)
            if want == DYNAMIC and fixed:
                problems.append(f"{what} {name!r} dimension {i} is fixed at {got}, want it dynamic")
            elif want != DYNAMIC and fixed and got != want:
                problems.append(f"{what} {name!r} dimension {i} is {got}, want {want}")
    extra = sorted(set(by_name) - {e[0] for e in expected})
    if what == "input" and extra:
        problems.append(f"unexpected inputs {extra}: the program cannot feed them")
    return problems


def compare(name, got, want, atol):
    if got.shape != want.shape:
        fail(f"{name}: onnxruntime returned shape {got.shape}, PyTorch {want.shape}")
    diff = float(np.max(np.abs(got - want)))
    print(f"  {name}: shape {list(got.shape)}, max |onnxruntime - PyTorch| = {diff:.2e}")
    if not np.isfinite(diff) or diff > atol:
        fail(f"{name} differs from PyTorch by {diff:.2e} (> --atol {atol}); the export is wrong")


def finish(tmp, final):
    """Move a verified export into place and say what to put in a manifest."""
    os.replace(tmp, final)
    digest = sha256_file(final)
    size = os.path.getsize(final)
    print(f"wrote {final}")
    print(f"  size   {size}")
    print(f"  sha256 {digest}")
    print("to host it, run models/export/manifest.py on the folder (see models/README.md)")
