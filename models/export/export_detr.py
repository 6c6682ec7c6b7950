#!/usr/bin/env python3
"""Export the person detector, DETR with a ResNet-50 backbone (COCO), to ONNX.

The file gets the tensor names, types and shapes the program checks when it
loads a detector (see models/README.md):

  inputs   pixel_values float32 [batch, 3, height, width]
           pixel_mask   int64   [batch, height, width]    1 on real pixels
  outputs  logits       float32 [batch, 100, 92]
           pred_boxes   float32 [batch, 100, 4]   (cx, cy, w, h in 0..1)

Where the model comes from:

  default        Hugging Face facebook/detr-resnet-50 with transformers
                 (needs internet, transformers; see requirements.txt).
  --source DIR   facebookresearch/detr's own code (hubconf.detr_resnet50) from
                 a checkout of the commit this script pins (29901c51d7fe),
                 with the checkpoint that hubconf names (torch.hub checks its
                 hash). Needs only torch, torchvision, scipy and Pillow
                 besides onnx.

--random-init builds the same network with seeded random weights and
downloads no weights: a real-size test model that finds nobody. Without
--source it needs transformers, which Debian 12 does not package; with
--source it does not.

Before the file is written into --out it is checked: onnx.checker, the
declared names, types and shapes (batch and image size dynamic), a run on a
batch and size other than the traced ones compared with PyTorch -- on
onnxruntime's Python package, else on ONNX Runtime's C library through
ctypes -- and, from a checkout, `anonymize doctor` on the file. The end of the
output says which of these ran.

  python3 models/export/export_detr.py --out models/
  python3 models/export/export_detr.py --random-init --source detr/ --out testdata/realarch/
"""

import argparse
import importlib
import os
import sys
import time

import numpy as np
import torch

import common
from registry import DETR, MODELS

HF_MODEL = "facebook/detr-resnet-50"

UPSTREAM = "facebookresearch/detr"
PINNED_COMMIT = "29901c51d7fe8712168b8d0d64351170bc0f83e0"
# The files hubconf.detr_resnet50 runs, at PINNED_COMMIT (CRLF made LF).
SOURCE_SHA256 = {
    "hubconf.py": "3eacb0064ca6f8097ef13a4351f9a119234e6d33e0d237cd8c7795837c33a98f",
    "models/__init__.py": "5ad1d97529bc1b52a24a8ed7ee5ac19e5ba2742a8385e2dcbff7e86415f85c35",
    "models/backbone.py": "6ee87cdb91ca3df38550336c4f5d5b297a5db8e4be8f6c2c0e96e0d88c96d918",
    "models/detr.py": "b5a584ada4d074d16852f9ad87ebc75bbdc91386b630755f993cb3fbf2290d42",
    "models/matcher.py": "5dc956c06849722bd754806e559e420c13364e286546a5c9c04f8820e9c99b20",
    "models/position_encoding.py": "c50834d862a3f7970a3dee3f71ca70f0455bb7e7e627aa2587d2dc8e8b6bd1c8",
    "models/segmentation.py": "bb9c8094f2c747b15c1c077a2c40f93b07f2fd48f0820f7611dcaadf5d966957",
    "models/transformer.py": "730677b5e9b6127d502e39cf42b0292856e6432815491050dcbaf84b4a6b4f6e",
    "util/__init__.py": "9e535c45af09ac24ef8d5631a151f77febafe72a92ad6bfeb2d941f0c4a54e35",
    "util/box_ops.py": "f0c1c3e27b0f69955e74b09b4ae1898e41e409d1af292c478ba8be71856112fc",
    "util/misc.py": "b56dfabebf8eded2e7dbf359e167bd308d9c75ee0394f63a751cad9eee597f00",
}


class DetrONNX(torch.nn.Module):
    """Returns the two tensors the program reads as a plain tuple: the
    exporter names outputs by position, not by the fields of transformers'
    output dataclass."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values, pixel_mask):
        out = self.model(pixel_values=pixel_values, pixel_mask=pixel_mask, return_dict=True)
        return out.logits, out.pred_boxes


class UpstreamDetrONNX(torch.nn.Module):
    """facebookresearch/detr's model behind the interface the program feeds
    (Hugging Face's): upstream takes a NestedTensor whose mask is True on
    padding, the program's pixel_mask is 1 on real pixels. Getting this
    backwards makes every output NaN, which reads as "nobody here"."""

    def __init__(self, model, nested_tensor):
        super().__init__()
        self.model = model
        self.nested_tensor = nested_tensor

    def forward(self, pixel_values, pixel_mask):
        out = self.model(self.nested_tensor(pixel_values, pixel_mask == 0))
        return out["pred_logits"], out["pred_boxes"]


def load_hf(args):
    try:
        from transformers import DetrConfig, DetrForObjectDetection
    except ImportError:
        what = "--random-init without --source" if args.random_init else "exporting from Hugging Face"
        common.fail(
            f"{what} needs the transformers package (DetrConfig, DetrForObjectDetection), which is not "
            "installed (Debian 12 does not package it): install models/export/requirements.txt in a virtual "
            f"environment, or pass --source DIR, a checkout of {UPSTREAM} at {PINNED_COMMIT}, which needs "
            "only torch and torchvision"
        )
    if args.random_init:
        # The no_timm revision's architecture, built offline: a transformers
        # ResNet-50 backbone, 100 queries, 91 COCO ids plus "no object".
        # Not run where this was written (no transformers there).
        config = DetrConfig(use_timm_backbone=False, use_pretrained_backbone=False, num_queries=100, num_labels=91)
        torch.manual_seed(args.seed)
        model = DetrForObjectDetection(config)
        note = f"random (--random-init, seed {args.seed}), transformers DetrConfig"
    else:
        print(f"loading {HF_MODEL} (revision {args.revision})")
        model = DetrForObjectDetection.from_pretrained(HF_MODEL, revision=args.revision)
        note = f"{HF_MODEL}@{args.revision}"
    return DetrONNX(model.eval()).eval(), note


def load_upstream(args):
    problems = common.check_source(args.source, SOURCE_SHA256, PINNED_COMMIT)
    if problems:
        common.fail(
            f"--source {args.source} is not {UPSTREAM} at {PINNED_COMMIT}: " + "; ".join(problems)
            + f" (check out that commit: git -C {args.source} checkout {PINNED_COMMIT})"
        )
    print(f"model code: {args.source} (matches {UPSTREAM}@{PINNED_COMMIT[:12]})")
    # Upstream imports its own top-level packages, `models` and `util`.
    sys.path.insert(0, os.path.abspath(args.source))
    hubconf = importlib.import_module("hubconf")
    backbone = importlib.import_module("models.backbone")
    misc = importlib.import_module("util.misc")
    # The backbone asks torchvision for ImageNet ResNet-50 weights on the
    # "main process"; the DETR checkpoint (or --random-init) replaces them
    # anyway, so never download them.
    backbone.is_main_process = lambda: False
    if args.random_init:
        torch.manual_seed(args.seed)
        note = f"random (--random-init, seed {args.seed}), {UPSTREAM}@{PINNED_COMMIT}"
    else:
        note = f"{UPSTREAM}@{PINNED_COMMIT} hubconf detr_resnet50 checkpoint"
    # pretrained: the checkpoint URL in hubconf, whose file name carries a
    # hash prefix that torch.hub checks.
    model = hubconf.detr_resnet50(pretrained=not args.random_init)
    return UpstreamDetrONNX(model.eval(), misc.NestedTensor).eval(), note


def main():
    started = time.monotonic()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--out",
        default=common.DEFAULT_OUT,
        help=f"folder to write {MODELS[DETR]} into (default: the models/ folder of this checkout)",
    )
    ap.add_argument(
        "--revision",
        default="no_timm",
        help="Hugging Face revision; the default no_timm holds the same weights with a "
        "transformers ResNet backbone, so timm is not needed (main needs timm)",
    )
    ap.add_argument(
        "--source",
        metavar="DIR",
        help=f"build from a checkout of {UPSTREAM} at {PINNED_COMMIT} instead of Hugging Face",
    )
    ap.add_argument(
        "--random-init",
        action="store_true",
        help="seeded random weights (no weights download); without --source this needs transformers, "
        "which Debian 12 does not package",
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of --random-init (default: %(default)s)")
    ap.add_argument("--opset", type=int, default=17)
    common.add_verify_args(ap)
    args = ap.parse_args()

    torch.set_grad_enabled(False)
    # Load first: a missing package or a wrong --source fails before
    # anything is written.
    wrapper, note = load_upstream(args) if args.source else load_hf(args)

    os.makedirs(args.out, exist_ok=True)
    final = os.path.join(args.out, MODELS[DETR])
    # A hidden name without .onnx: the program must never pick up a file
    # that has not passed the checks below.
    tmp = os.path.join(args.out, "." + MODELS[DETR] + ".tmp")

    # Traced at the size the program feeds a 1920x1080 frame (shortest
    # edge 800, longest capped at 1333); every axis but the channels is
    # declared dynamic, and verification uses another size.
    x = common.normalised_images(1, 750, 1333, seed=0)
    mask = np.ones((1, 750, 1333), dtype=np.int64)
    print(f"exporting to ONNX (opset {args.opset}, torch {torch.__version__})")
    try:
        common.export(
            wrapper,
            (torch.from_numpy(x), torch.from_numpy(mask)),
            tmp,
            input_names=["pixel_values", "pixel_mask"],
            output_names=["logits", "pred_boxes"],
            dynamic_axes={
                "pixel_values": {0: "batch", 2: "height", 3: "width"},
                "pixel_mask": {0: "batch", 1: "height", 2: "width"},
                "logits": {0: "batch"},
                "pred_boxes": {0: "batch"},
            },
            opset=args.opset,
        )
        common.add_metadata(tmp, {"anonymize.weights": note})
        checks = verify(tmp, wrapper, args)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    common.finish(tmp, final)
    checks.summary()
    print(f"took {time.monotonic() - started:.0f} s")


def verify(path, wrapper, args):
    print("checking the export")
    v = common.Verification()
    dyn = common.DYNAMIC
    common.check_declared(
        path,
        [("pixel_values", "float32", [dyn, 3, dyn, dyn]), ("pixel_mask", "int64", [dyn, dyn, dyn])],
        [("logits", "float32", [dyn, 100, 92]), ("pred_boxes", "float32", [dyn, 100, 4])],
        v,
    )

    runner, why_not = common.open_runner(path, args.ort_lib)
    if runner is None:
        print(f"  skipped: comparison with PyTorch ({why_not})")
    else:
        # Another batch size and a 4:3 frame's size (1440x1080 -> 1066x800).
        x = common.normalised_images(2, 800, 1066, seed=1)
        mask = np.ones((2, 800, 1066), dtype=np.int64)
        try:
            logits, boxes = runner.run(["logits", "pred_boxes"], {"pixel_values": x, "pixel_mask": mask})
        finally:
            runner.close()
        want_logits, want_boxes = wrapper(torch.from_numpy(x), torch.from_numpy(mask))
        if logits.shape != (2, 100, 92) or boxes.shape != (2, 100, 4):
            common.fail(f"outputs have shapes {logits.shape} and {boxes.shape}, want (2, 100, 92) and (2, 100, 4)")
        d1 = common.compare("logits", logits, want_logits.numpy(), args.atol)
        d2 = common.compare("pred_boxes", boxes, want_boxes.numpy(), args.atol)
        if boxes.min() < 0 or boxes.max() > 1:
            common.fail("pred_boxes fall outside 0..1; they should be normalised cx, cy, w, h")
        v.note(f"{runner.name}: batch of 2 at 800x1066 (traced with 1 at 750x1333), max |ONNX Runtime - PyTorch| "
               f"= {d1:.2e} (logits), {d2:.2e} (pred_boxes) (--atol {args.atol})")

    common.program_check(path, "detector", args, v, required=runner is None)
    return v


if __name__ == "__main__":
    sys.exit(main())
