#!/usr/bin/env python3
"""Export the pose estimator, TransPose-H-A4 (256x192, COCO), to ONNX.

The file gets the tensor names, types and shapes the program checks when it
loads a pose model (see models/README.md):

  input    input     float32 [batch, 3, 256, 192]   RGB, ImageNet-normalised
  output   heatmaps  float32 [batch, 17, 64, 48]    COCO keypoint order

Before writing the file into --out, the export is run with onnxruntime on a
batch of another size than it was traced with, and the heatmaps are compared
with PyTorch's.

Needs internet (GitHub, for torch.hub) and the packages in requirements.txt:

  python3 -m venv .venv && .venv/bin/pip install -r models/export/requirements.txt
  .venv/bin/python models/export/export_transpose.py --out models/
"""

import argparse
import contextlib
import os
import sys

import torch

import common
from registry import MODELS, TRANSPOSE

HUB_REPO = "yangsenius/TransPose:main"
HUB_MODEL = "tph_a4_256x192"
HEIGHT, WIDTH = 256, 192
JOINTS = 17


@contextlib.contextmanager
def cpu_torch_load():
    """The hub entry point calls torch.load without map_location; weights
    saved from a GPU would then fail to load on a machine without one."""
    original = torch.load

    def load(*args, **kwargs):
        kwargs.setdefault("map_location", "cpu")
        return original(*args, **kwargs)

    torch.load = load
    try:
        yield
    finally:
        torch.load = original


def load_model(weights):
    with cpu_torch_load():
        if weights is None:
            print(f"loading {HUB_MODEL} from torch.hub {HUB_REPO} with its pretrained weights")
            return torch.hub.load(HUB_REPO, HUB_MODEL, pretrained=True, trust_repo=True)
        print(f"loading {HUB_MODEL} from torch.hub {HUB_REPO}, weights from {weights}")
        model = torch.hub.load(HUB_REPO, HUB_MODEL, pretrained=False, trust_repo=True)
        state = torch.load(weights)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    # Checkpoints saved from nn.DataParallel prefix every key.
    state = {k.removeprefix("module."): v for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--out",
        default=common.DEFAULT_OUT,
        help=f"folder to write {MODELS[TRANSPOSE]} into (default: the models/ folder of this checkout)",
    )
    ap.add_argument(
        "--weights",
        help="a local copy of the TransPose-H-A4 checkpoint (tp_h_48_256x192_enc4_d96_h192_mh1.pth) "
        "instead of the one the hub entry point downloads",
    )
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--atol", type=float, default=1e-3, help="largest accepted |onnxruntime - PyTorch| difference")
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    final = os.path.join(args.out, MODELS[TRANSPOSE])
    # A hidden name without .onnx: the program must never pick up a file
    # that has not passed the checks below.
    tmp = os.path.join(args.out, "." + MODELS[TRANSPOSE] + ".tmp")

    torch.set_grad_enabled(False)
    model = load_model(args.weights).eval()

    # Traced with a batch of 2 so that a batch size baked in by mistake
    # shows when verification runs a batch of 3.
    x = common.normalised_images(2, HEIGHT, WIDTH, seed=0)
    print(f"exporting to ONNX (opset {args.opset})")
    try:
        common.export(
            model,
            (torch.from_numpy(x),),
            tmp,
            input_names=["input"],
            output_names=["heatmaps"],
            dynamic_axes={"input": {0: "batch"}, "heatmaps": {0: "batch"}},
            opset=args.opset,
        )
        verify(tmp, model, args.atol)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    common.finish(tmp, final)


def verify(path, model, atol):
    import onnx
    import onnxruntime as ort

    print("checking the export")
    onnx.checker.check_model(path, full_check=True)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    dyn = common.DYNAMIC
    problems = common.check_tensors("input", sess.get_inputs(), [("input", "float32", [dyn, 3, HEIGHT, WIDTH])])
    problems += common.check_tensors(
        "output", sess.get_outputs(), [("heatmaps", "float32", [dyn, JOINTS, HEIGHT // 4, WIDTH // 4])]
    )
    if problems:
        common.fail("the export does not have the program's contract: " + "; ".join(problems))

    x = common.normalised_images(3, HEIGHT, WIDTH, seed=1)
    (heatmaps,) = sess.run(["heatmaps"], {"input": x})
    want = model(torch.from_numpy(x)).numpy()
    if heatmaps.shape != (3, JOINTS, HEIGHT // 4, WIDTH // 4):
        common.fail(f"heatmaps have shape {heatmaps.shape}, want (3, {JOINTS}, {HEIGHT // 4}, {WIDTH // 4})")
    common.compare("heatmaps", heatmaps, want, atol)


if __name__ == "__main__":
    sys.exit(main())
