#!/usr/bin/env python3
"""Export the pose estimator, TransPose-H-A4 (256x192, COCO), to ONNX.

The file gets the tensor names, types and shapes the program checks when it
loads a pose model (see models/README.md):

  input    input     float32 [batch, 3, 256, 192]   RGB, ImageNet-normalised
  output   heatmaps  float32 [batch, 17, 64, 48]    COCO keypoint order

The model is TransPoseH from yangsenius/TransPose at a pinned commit, built
from the repository's own files (lib/models/transpose_h.py and its
TP_H_w48_256x192_stage3_1_4_d96_h192_relu_enc4_mh1.yaml config; yacs is not
needed): from --source DIR, a checkout of that commit, or else from GitHub's
archive of the commit, downloaded once into --cache. Those files must match
the pinned commit byte for byte.

Weights: --weights FILE, or the checkpoint the upstream torch.hub entry point
tph_a4_256x192 downloads, fetched once into --cache. Its sha256 is recorded
there at the first download and a later download that differs is refused;
--sha256 (or KNOWN_WEIGHTS_SHA256 below, once someone fills it in) pins it.
--random-init builds the same network with seeded random weights instead and
downloads no weights: for testing the export and the program at real size.

Before the file is written into --out it is checked: onnx.checker, the
declared names, types and shapes (batch dynamic), a run on a batch of 3 (it
is traced with 2) compared with PyTorch -- on onnxruntime's Python package,
else on ONNX Runtime's C library through ctypes -- and, from a checkout,
`anonymize doctor` on the file. The end of the output says which of these ran.

Needs PyTorch, onnx, numpy and PyYAML (see requirements.txt), and internet
unless --source and --weights (or --random-init) are given:

  python3 models/export/export_transpose.py --out models/
  python3 models/export/export_transpose.py --random-init --source TransPose/ --out testdata/realarch/
"""

import argparse
import ast
import importlib.util
import inspect
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
import warnings

import torch

import common
from registry import MODELS, TRANSPOSE

UPSTREAM = "yangsenius/TransPose"
PINNED_COMMIT = "5ba5bf3ae01d170fa29158122b47970a518a572e"
SOURCE_ARCHIVE_URL = f"https://github.com/{UPSTREAM}/archive/{PINNED_COMMIT}.tar.gz"

MODEL_CODE = "lib/models/transpose_h.py"
CONFIG_DEFAULTS = "lib/config/default.py"
CONFIG_YAML = "experiments/coco/transpose_h/TP_H_w48_256x192_stage3_1_4_d96_h192_relu_enc4_mh1.yaml"

# The files used, at PINNED_COMMIT, with line endings made LF (a Windows
# checkout may have CRLF). Checked for --source and for the download alike,
# so the network built is the pinned one whichever way the code came.
SOURCE_SHA256 = {
    MODEL_CODE: "14a3e59cfcbf24cd3478d7ca6ceafa182807ce9e933ad0143fd0fee47162d4e0",
    CONFIG_DEFAULTS: "058cb8322c310db0cec2895f63cac2d62aae2e86b0c90f390c95c2b8fde86b91",
    CONFIG_YAML: "e611a933fc89b51453c91a30486570888b6a32d7d4f5877685726be1a9337f1b",
}

# What the upstream hubconf's tph_a4_256x192(pretrained=True) downloads.
WEIGHTS_URL = f"https://github.com/{UPSTREAM}/releases/download/Hub/tp_h_48_256x192_enc4_d96_h192_mh1.pth"
WEIGHTS_FILE = "tp_h_48_256x192_enc4_d96_h192_mh1.pth"
# Not known yet: it was never downloaded where this script was last worked
# on. Whoever first downloads the checkpoint with internet access should put
# the sha256 this script prints here; from then on it is enforced.
KNOWN_WEIGHTS_SHA256 = None

HEIGHT, WIDTH = 256, 192
JOINTS = 17


def model_source(source, cache):
    """The folder holding the pinned TransPose files: source, or the cache's
    copy of GitHub's archive of PINNED_COMMIT (downloaded when absent)."""
    if source:
        problems = common.check_source(source, SOURCE_SHA256, PINNED_COMMIT)
        if problems:
            common.fail(
                f"--source {source} is not {UPSTREAM} at {PINNED_COMMIT}: " + "; ".join(problems)
                + f" (check out that commit: git -C {source} checkout {PINNED_COMMIT})"
            )
        print(f"model code: {source} (matches {UPSTREAM}@{PINNED_COMMIT[:12]})")
        return source

    root = os.path.join(cache, f"TransPose-{PINNED_COMMIT}")
    if not common.check_source(root, SOURCE_SHA256, PINNED_COMMIT):
        print(f"model code: {root} (cached {UPSTREAM}@{PINNED_COMMIT[:12]})")
        return root
    os.makedirs(cache, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        archive = os.path.join(tmp, "source.tar.gz")
        print(f"downloading {SOURCE_ARCHIVE_URL}")
        torch.hub.download_url_to_file(SOURCE_ARCHIVE_URL, archive, progress=False)
        staging = os.path.join(tmp, "TransPose")
        # Only the files used are taken out, each by its known name: nothing
        # else from the archive lands on disk, and no member can escape.
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                rel = member.name.split("/", 1)[-1]
                if rel in SOURCE_SHA256 and member.isfile():
                    dest = os.path.join(staging, rel)
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                    with tar.extractfile(member) as src, open(dest, "wb") as out:
                        shutil.copyfileobj(src, out)
        problems = common.check_source(staging, SOURCE_SHA256, PINNED_COMMIT)
        if problems:
            common.fail(f"{SOURCE_ARCHIVE_URL} does not hold the pinned files: " + "; ".join(problems))
        shutil.rmtree(root, ignore_errors=True)
        os.replace(staging, root)
    print(f"model code: {root} (downloaded {UPSTREAM}@{PINNED_COMMIT[:12]})")
    return root


class Config(dict):
    """A nested dict that also answers attribute access: all TransPoseH asks
    of yacs' CfgNode (it reads both cfg.MODEL.DIM_MODEL and cfg['MODEL'])."""

    def __init__(self, d):
        super().__init__({k: Config(v) if isinstance(v, dict) else v for k, v in d.items()})

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"the TransPose config has no key {name}") from None


def attribute_chain(node):
    """["_C", "MODEL", "EXTRA"] for the expression _C.MODEL.EXTRA."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id] + names[::-1]
    return []


def read_defaults(path):
    """The defaults lib/config/default.py sets (`_C.MODEL.DIM_MODEL = 256`).

    That file builds yacs nodes, so it cannot be imported without yacs; its
    assignments are plain literals, so they are read from its syntax tree
    instead of running it. `_C.X = CN(...)` starts a sub-node."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    root = {}
    for stmt in tree.body:
        if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1:
            continue
        keys = attribute_chain(stmt.targets[0])
        if len(keys) < 2 or keys[0] != "_C":
            continue
        node = root
        for k in keys[1:-1]:
            node = node.setdefault(k, {})
        if isinstance(stmt.value, ast.Call):
            node.setdefault(keys[-1], {})
        else:
            node[keys[-1]] = ast.literal_eval(stmt.value)
    return root


def yacs_value(v):
    """yacs reads a YAML string that spells a Python literal ("(0,)") as that
    literal; do the same so the config has the values upstream sees."""
    if isinstance(v, str):
        try:
            return ast.literal_eval(v)
        except (ValueError, SyntaxError):
            return v
    return v


def merge(base, override):
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            merge(base[k], v)
        elif isinstance(v, dict):
            base[k] = merge({}, v)
        else:
            base[k] = yacs_value(v)
    return base


def load_config(root):
    """What the upstream hubconf's update_config makes: default.py's
    defaults with the experiment's YAML merged over them."""
    import yaml

    cfg = read_defaults(os.path.join(root, CONFIG_DEFAULTS))
    with open(os.path.join(root, CONFIG_YAML), encoding="utf-8") as f:
        merge(cfg, yaml.safe_load(f))
    cfg = Config(cfg)
    # The contract is fixed by these; a config that disagrees is not the
    # model the program expects.
    m = cfg.MODEL
    if list(m.IMAGE_SIZE) != [WIDTH, HEIGHT] or list(m.HEATMAP_SIZE) != [WIDTH // 4, HEIGHT // 4]:
        common.fail(f"{CONFIG_YAML}: image size {m.IMAGE_SIZE} and heatmap size {m.HEATMAP_SIZE}, "
                    f"want [{WIDTH}, {HEIGHT}] and [{WIDTH // 4}, {HEIGHT // 4}]")
    if m.NUM_JOINTS != JOINTS:
        common.fail(f"{CONFIG_YAML}: {m.NUM_JOINTS} joints, want {JOINTS}")
    return cfg


def build_model(root):
    """TransPoseH from its own file, without importing the repository's
    packages (lib/models/__init__.py imports transpose_r too, and lib/config
    needs yacs)."""
    spec = importlib.util.spec_from_file_location("transpose_h", os.path.join(root, MODEL_CODE))
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        # Upstream compares a string with `is`; harmless, and not ours to fix.
        warnings.simplefilter("ignore", SyntaxWarning)
        spec.loader.exec_module(module)
    return module.TransPoseH(load_config(root))


def weights_file(args, cache):
    """The checkpoint to load and its sha256: --weights, else the cached
    download of WEIGHTS_URL.

    The expected sha256 is --sha256, else KNOWN_WEIGHTS_SHA256, else the one
    recorded at the first download (trust on first use: the release asset
    is not pinned by anything else)."""
    pinned = (args.sha256 or KNOWN_WEIGHTS_SHA256 or "").lower() or None
    pin_source = "--sha256" if args.sha256 else "KNOWN_WEIGHTS_SHA256 in export_transpose.py"

    if args.weights:
        digest = common.sha256_file(args.weights)
        if pinned and digest != pinned:
            hint = ("is it the file you meant?" if args.sha256 else
                    "to export another checkpoint deliberately, pass --sha256 with the file's sha256")
            common.fail(f"--weights {args.weights} has sha256 {digest}, but {pin_source} says {pinned}: {hint}")
        return args.weights, digest

    os.makedirs(cache, exist_ok=True)
    path = os.path.join(cache, WEIGHTS_FILE)
    record = path + ".sha256.json"
    recorded = None
    if os.path.isfile(record):
        with open(record) as f:
            recorded = json.load(f).get("sha256")
    want, want_source = (pinned, pin_source) if pinned else (recorded, f"{record} (recorded at the first download)")

    if os.path.isfile(path):
        digest = common.sha256_file(path)
        if want and digest != want:
            common.fail(f"the cached {path} has sha256 {digest}, but {want_source} says {want}; "
                        "delete the file to download it again")
        print(f"weights: {path} (cached)")
    else:
        tmp = path + ".part"
        print(f"downloading {WEIGHTS_URL}")
        # Progress only on a terminal: in a log it is thousands of lines.
        torch.hub.download_url_to_file(WEIGHTS_URL, tmp, progress=sys.stderr.isatty())
        digest = common.sha256_file(tmp)
        if want and digest != want:
            os.remove(tmp)
            common.fail(
                f"refusing the weights downloaded from {WEIGHTS_URL}: their sha256 is {digest}, but "
                f"{want_source} says {want}. The release file has changed or the download was "
                "tampered with. If the change is expected, check it, then pass --sha256 with the new "
                f"value or delete {record}."
            )
        os.replace(tmp, path)
        print(f"weights: {path} (downloaded)")

    if recorded != digest:
        if recorded:
            print(f"note: {record} said {recorded}; replacing it with the pinned {digest}")
        else:
            print(f"recorded sha256 {digest} in {record}: later downloads must match it")
        with open(record, "w") as f:
            json.dump({"url": WEIGHTS_URL, "sha256": digest}, f, indent=2)
            f.write("\n")
    if KNOWN_WEIGHTS_SHA256 is None:
        print(f"note: KNOWN_WEIGHTS_SHA256 in export_transpose.py is not set; the weights used have sha256 {digest}")
    return path, digest


def load_weights(model, path):
    kwargs = {"map_location": "cpu"}
    # A checkpoint is a pickle: where torch can, load tensors only, so the
    # file cannot run code.
    if "weights_only" in inspect.signature(torch.load).parameters:
        kwargs["weights_only"] = True
    state = torch.load(path, **kwargs)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    # Checkpoints saved from nn.DataParallel prefix every key.
    state = {k.removeprefix("module."): v for k, v in state.items()}
    model.load_state_dict(state, strict=True)


def main():
    started = time.monotonic()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--out",
        default=common.DEFAULT_OUT,
        help=f"folder to write {MODELS[TRANSPOSE]} into (default: the models/ folder of this checkout)",
    )
    ap.add_argument(
        "--source",
        metavar="DIR",
        help=f"a checkout of {UPSTREAM} at {PINNED_COMMIT} (default: download that commit's archive into --cache)",
    )
    ap.add_argument("--cache", default=common.default_cache(), help="where downloads are kept (default: %(default)s)")
    weights = ap.add_mutually_exclusive_group()
    weights.add_argument("--weights", metavar="FILE", help=f"a local copy of the checkpoint ({WEIGHTS_FILE})")
    weights.add_argument(
        "--random-init",
        action="store_true",
        help="seeded random weights instead of the checkpoint (no weights download): a real-size test model "
        "that finds nobody",
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of --random-init (default: %(default)s)")
    ap.add_argument("--sha256", help="the checkpoint's expected sha256 (overrides KNOWN_WEIGHTS_SHA256)")
    ap.add_argument("--opset", type=int, default=17)
    common.add_verify_args(ap)
    args = ap.parse_args()
    if args.random_init and args.sha256:
        ap.error("--sha256 is about the checkpoint; --random-init uses none")

    os.makedirs(args.out, exist_ok=True)
    final = os.path.join(args.out, MODELS[TRANSPOSE])
    # A hidden name without .onnx: the program must never pick up a file
    # that has not passed the checks below.
    tmp = os.path.join(args.out, "." + MODELS[TRANSPOSE] + ".tmp")

    torch.set_grad_enabled(False)
    root = model_source(args.source, args.cache)
    if args.random_init:
        # The same seed gives the same weights, hence the same file.
        torch.manual_seed(args.seed)
        model = build_model(root)
        weights_note = f"random (--random-init, seed {args.seed})"
        print(f"weights: {weights_note}")
    else:
        path, digest = weights_file(args, args.cache)
        model = build_model(root)
        load_weights(model, path)
        weights_note = f"sha256:{digest}"
    model.eval()

    # Traced with a batch of 2 so that a batch size baked in by mistake
    # shows when verification runs a batch of 3.
    x = common.normalised_images(2, HEIGHT, WIDTH, seed=0)
    print(f"exporting to ONNX (opset {args.opset}, torch {torch.__version__})")
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
        common.add_metadata(tmp, {"anonymize.upstream": f"{UPSTREAM}@{PINNED_COMMIT}", "anonymize.weights": weights_note})
        checks = verify(tmp, model, args)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    common.finish(tmp, final)
    checks.summary()
    print(f"took {time.monotonic() - started:.0f} s")


def verify(path, model, args):
    print("checking the export")
    v = common.Verification()
    dyn = common.DYNAMIC
    common.check_declared(
        path,
        [("input", "float32", [dyn, 3, HEIGHT, WIDTH])],
        [("heatmaps", "float32", [dyn, JOINTS, HEIGHT // 4, WIDTH // 4])],
        v,
    )

    runner, why_not = common.open_runner(path, args.ort_lib)
    if runner is None:
        print(f"  skipped: comparison with PyTorch ({why_not})")
    else:
        try:
            x = common.normalised_images(3, HEIGHT, WIDTH, seed=1)
            (heatmaps,) = runner.run(["heatmaps"], {"input": x})
        finally:
            runner.close()
        want = model(torch.from_numpy(x)).numpy()
        if heatmaps.shape != (3, JOINTS, HEIGHT // 4, WIDTH // 4):
            common.fail(f"heatmaps have shape {heatmaps.shape}, want (3, {JOINTS}, {HEIGHT // 4}, {WIDTH // 4})")
        diff = common.compare("heatmaps", heatmaps, want, args.atol)
        v.note(f"{runner.name}: batch of 3 (traced with 2), max |ONNX Runtime - PyTorch| = {diff:.2e} "
               f"(--atol {args.atol}; PyTorch's heatmaps reach {float(abs(want).max()):.2e})")

    common.program_check(path, "pose", args, v, required=runner is None)
    return v


if __name__ == "__main__":
    sys.exit(main())
