#!/usr/bin/env python3
"""Export the person detector, facebook/detr-resnet-50, to ONNX.

The file gets the tensor names, types and shapes the program checks when it
loads a detector (see models/README.md):

  inputs   pixel_values float32 [batch, 3, height, width]
           pixel_mask   int64   [batch, height, width]
  outputs  logits       float32 [batch, 100, 92]
           pred_boxes   float32 [batch, 100, 4]   (cx, cy, w, h in 0..1)

Before writing the file into --out, the export is run with onnxruntime on a
batch of a different size and resolution than it was traced with, and the
outputs are compared with PyTorch's.

Needs internet (Hugging Face) and the packages in requirements.txt:

  python3 -m venv .venv && .venv/bin/pip install -r models/export/requirements.txt
  .venv/bin/python models/export/export_detr.py --out models/
"""

import argparse
import os
import sys

import numpy as np
import torch

import common
from registry import DETR, MODELS

HF_MODEL = "facebook/detr-resnet-50"


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


def main():
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
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--atol", type=float, default=1e-3, help="largest accepted |onnxruntime - PyTorch| difference")
    args = ap.parse_args()

    from transformers import DetrForObjectDetection

    os.makedirs(args.out, exist_ok=True)
    final = os.path.join(args.out, MODELS[DETR])
    # A hidden name without .onnx: the program must never pick up a file
    # that has not passed the checks below.
    tmp = os.path.join(args.out, "." + MODELS[DETR] + ".tmp")

    torch.set_grad_enabled(False)
    print(f"loading {HF_MODEL} (revision {args.revision})")
    model = DetrForObjectDetection.from_pretrained(HF_MODEL, revision=args.revision)
    model.eval()
    wrapper = DetrONNX(model).eval()

    # Traced at the size the program feeds a 1920x1080 frame (shortest
    # edge 800, longest capped at 1333); every axis but the channels is
    # declared dynamic, and verification uses another size.
    x = common.normalised_images(1, 750, 1333, seed=0)
    mask = np.ones((1, 750, 1333), dtype=np.int64)
    print(f"exporting to ONNX (opset {args.opset})")
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
        verify(tmp, wrapper, args.atol)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    common.finish(tmp, final)


def verify(path, wrapper, atol):
    import onnx
    import onnxruntime as ort

    print("checking the export")
    onnx.checker.check_model(path, full_check=True)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    dyn = common.DYNAMIC
    problems = common.check_tensors(
        "input",
        sess.get_inputs(),
        [("pixel_values", "float32", [dyn, 3, dyn, dyn]), ("pixel_mask", "int64", [dyn, dyn, dyn])],
    )
    problems += common.check_tensors(
        "output",
        sess.get_outputs(),
        [("logits", "float32", [dyn, 100, 92]), ("pred_boxes", "float32", [dyn, 100, 4])],
    )
    if problems:
        common.fail("the export does not have the program's contract: " + "; ".join(problems))

    # Another batch size and a 4:3 frame's size (1440x1080 -> 1066x800).
    x = common.normalised_images(2, 800, 1066, seed=1)
    mask = np.ones((2, 800, 1066), dtype=np.int64)
    logits, boxes = sess.run(["logits", "pred_boxes"], {"pixel_values": x, "pixel_mask": mask})
    want_logits, want_boxes = wrapper(torch.from_numpy(x), torch.from_numpy(mask))
    if logits.shape != (2, 100, 92) or boxes.shape != (2, 100, 4):
        common.fail(f"outputs have shapes {logits.shape} and {boxes.shape}, want (2, 100, 92) and (2, 100, 4)")
    common.compare("logits", logits, want_logits.numpy(), atol)
    common.compare("pred_boxes", boxes, want_boxes.numpy(), atol)
    if boxes.min() < 0 or boxes.max() > 1:
        common.fail("pred_boxes fall outside 0..1; they should be normalised cx, cy, w, h")


if __name__ == "__main__":
    sys.exit(main())
