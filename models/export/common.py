"""Helpers shared by the export scripts: exporting, checking the exported
file against the contract the Go program enforces, and hashing."""

import collections
import hashlib
import inspect
import os
import re
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


def default_cache():
    """Where the export scripts keep downloads: beside the program's own
    cache (see models/README.md)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "anonymize", "export")


def source_sha256(path):
    # CRLF made LF: a Windows checkout of the same commit hashes the same.
    with open(path, "rb") as f:
        return hashlib.sha256(f.read().replace(b"\r\n", b"\n")).hexdigest()


def check_source(root, hashes, commit):
    """What keeps root from holding the pinned commit's files: hashes maps
    each file the export uses (relative to root) to its sha256 there."""
    problems = []
    for rel, want in hashes.items():
        path = os.path.join(root, rel)
        if not os.path.isfile(path):
            problems.append(f"{rel} is missing")
        elif source_sha256(path) != want:
            problems.append(f"{rel} differs from commit {commit[:12]}")
    return problems


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


class Declared(collections.namedtuple("Declared", "name type shape")):
    """A tensor as an ONNX file declares it, spelled the way onnxruntime's
    NodeArg spells it (type "tensor(float)", shape entries int, str or None),
    so that check_tensors takes either."""


def declared_tensors(path):
    """The inputs and outputs the file declares, read with onnx alone, so the
    contract is checked whichever runtime (if any) is available."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    graph = model.graph
    # Older exporters list initializers among the inputs too; the program
    # never feeds them.
    initializers = {t.name for t in graph.initializer}

    def declared(values):
        out = []
        for v in values:
            t = v.type.tensor_type
            dtype = onnx.TensorProto.DataType.Name(t.elem_type).lower()
            dtype = {"float": "float32"}.get(dtype, dtype)
            shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]
            out.append(Declared(v.name, ORT_TYPES.get(dtype, f"tensor({dtype})"), shape))
        return out

    return declared(v for v in graph.input if v.name not in initializers), declared(graph.output)


def check_tensors(what, declared, expected):
    """Compare declared tensors (Declared or onnxruntime NodeArgs) with
    (name, dtype, dims) triples.

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


class Verification:
    """What was checked, so that the end of a run says which checks ran:
    they depend on what the machine has (a runtime, the Go toolchain)."""

    def __init__(self):
        self.done = []

    def note(self, line):
        print(f"  ok: {line}")
        self.done.append(line)

    def summary(self):
        print("verification that ran:")
        for line in self.done:
            print(f"  - {line}")


def add_verify_args(ap):
    ap.add_argument("--atol", type=float, default=1e-3, help="largest accepted |ONNX Runtime - PyTorch| difference")
    ap.add_argument(
        "--ort-lib",
        help="ONNX Runtime's C library (libonnxruntime.so.1) to run the export on when onnxruntime's Python "
        "package is not installed (default: $ANONYMIZE_ORT_LIB, else the copy `make setup` puts in this checkout)",
    )
    ap.add_argument(
        "--program-check",
        choices=("auto", "always", "never"),
        default="auto",
        help="also run `go run ./cmd/anonymize doctor` from this checkout on the export, the program's own "
        "contract check and self-test; auto: when go, ONNX Runtime's library and the synthetic test models "
        "(make testdata) are here",
    )


def check_declared(path, inputs, outputs, v):
    """onnx.checker and the contract's names, types and shapes."""
    import onnx

    onnx.checker.check_model(path, full_check=True)
    v.note(f"onnx.checker (full check, onnx {onnx.__version__})")
    ins, outs = declared_tensors(path)
    problems = check_tensors("input", ins, inputs) + check_tensors("output", outs, outputs)
    if problems:
        fail("the export does not have the program's contract: " + "; ".join(problems))
    v.note("declared tensors: " + "; ".join(f"{d.name} {d.type} {d.shape}" for d in ins + outs))


class Runner:
    """Runs an ONNX file: onnxruntime's Python package where installed, else
    ONNX Runtime's C library through ctypes (see ortlib.py)."""

    def __init__(self, name, run, close):
        self.name = name
        self.run = run  # (output_names, {input name: array}) -> [arrays]
        self.close = close


def open_runner(path, ort_lib=None):
    """A Runner for path, or (None, why not)."""
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    if ort is not None:
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        return Runner(f"onnxruntime {ort.__version__} (Python package)", sess.run, lambda: None), None

    import ortlib

    try:
        lib = ortlib.find_library(ort_lib)
    except ortlib.Error as e:
        return None, str(e)
    if lib is None:
        return None, (
            "onnxruntime's Python package is not installed and no ONNX Runtime library was found "
            "(--ort-lib, $ANONYMIZE_ORT_LIB, or `make setup` in this checkout)"
        )
    try:
        rt = ortlib.Runtime(lib)
        sess = rt.session(path)
    except (OSError, ortlib.Error) as e:
        return None, f"ONNX Runtime library {lib}: {e}"

    def close():
        sess.close()
        rt.close()

    return Runner(f"ONNX Runtime {rt.version} (C library through ctypes)", sess.run, close), None


def compare(name, got, want, atol):
    """The largest difference between ONNX Runtime's and PyTorch's outputs;
    fails above atol or on NaN."""
    if got.shape != want.shape:
        fail(f"{name}: ONNX Runtime returned shape {got.shape}, PyTorch {want.shape}")
    diff = float(np.max(np.abs(got - want)))
    print(f"  {name}: shape {list(got.shape)}, max |ONNX Runtime - PyTorch| = {diff:.2e}")
    if not np.isfinite(diff) or diff > atol:
        fail(f"{name} differs from PyTorch by {diff:.2e} (> --atol {atol}); the export is wrong")
    return diff


REPO_ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

# The other role's file for `anonymize doctor`, which checks both models:
# the synthetic ones `make testdata` writes.
SYNTHETIC = {
    "pose": ("--detector-model", os.path.join("testdata", "models", "detr_synthetic.onnx")),
    "detector": ("--pose-model", os.path.join("testdata", "models", "transpose_synthetic.onnx")),
}


def program_check(path, role, args, v, required):
    """Run the program's own checks on the export: `anonymize doctor` reads
    its declared tensors, checks them against the contract the program
    enforces and runs a test picture through it.

    required: nothing else has run the file, so not being able to run this
    is an error rather than a note."""
    import ortlib
    import shutil
    import subprocess

    def unavailable(why):
        if required or args.program_check == "always":
            fail(f"cannot run the export to check it: {why}")
        print(f"  skipped: the program's check ({why})")

    if args.program_check == "never":
        if required:
            fail(
                "nothing could run the export: install onnxruntime's Python package, point --ort-lib at "
                "ONNX Runtime's C library, or let the program check it (--program-check auto)"
            )
        print("  skipped: the program's check (--program-check never)")
        return
    if not os.path.isfile(os.path.join(REPO_ROOT, "go.mod")) or shutil.which("go") is None:
        return unavailable("not in a checkout with the Go toolchain on PATH")
    other_flag, other = SYNTHETIC[role]
    if not os.path.isfile(os.path.join(REPO_ROOT, other)):
        return unavailable(f"{other} is missing: run `make testdata`")
    try:
        lib = ortlib.find_library(args.ort_lib)
    except ortlib.Error as e:
        return unavailable(str(e))
    if lib is None:
        return unavailable("no ONNX Runtime library: run `make setup` or set $ANONYMIZE_ORT_LIB")

    cmd = ["go", "run", "./cmd/anonymize", "doctor", "--device", "cpu", f"--{role}-model", os.path.abspath(path),
           other_flag, other]
    print("running the program's check: " + " ".join(cmd[:7] + ["EXPORT", other_flag, other]))
    env = dict(os.environ, ANONYMIZE_ORT_LIB=os.path.abspath(lib))
    res = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if "Models" not in res.stdout.splitlines():
        # The program did not get as far as its report (it did not build,
        # say): that says nothing about the export.
        err = (res.stderr.strip() or res.stdout.strip() or f"exit {res.returncode}").splitlines()
        return unavailable(f"`go run ./cmd/anonymize doctor` did not report: {err[-1]}")
    block = doctor_block(res.stdout, role)
    # doctor also fails for reasons that are not the model's (no ffmpeg,
    # say), so only this model's lines decide: none failed, and at least one
    # check beyond finding the file passed (without a runtime doctor stops
    # at the file's sha256).
    statuses = [line.split()[0] for line in block]
    if "FAIL" in statuses or "ok" not in statuses[1:]:
        fail(
            f"`anonymize doctor` rejects the export (exit {res.returncode}):\n"
            + "\n".join(block or [res.stdout, res.stderr])
        )
    for line in block[1:]:
        print("   " + line)
    v.note(f"anonymize doctor (ONNX Runtime library {os.path.basename(lib)}): the program's {role} contract "
           "check and its self-test on a test picture")


def doctor_block(report, role):
    """The lines `anonymize doctor` prints about the model of role: in its
    Models section, the line whose name column is role and the following
    lines whose name column is blank (the report is a tab-aligned table)."""
    block, col = [], None
    in_models = False
    for line in report.splitlines():
        if not line.startswith(" "):
            in_models = line == "Models"
            continue
        if not in_models:
            continue
        if col is None:
            m = re.match(r"\s+\S+\s+(\S+)\s", line)
            if m and m.group(1) == role:
                col = m.start(1)
                block.append(line.strip())
        elif line[col:col + 1].isspace():
            block.append(line.strip())
        else:
            break
    return block


def finish(tmp, final):
    """Move a verified export into place and say what to put in a manifest."""
    os.replace(tmp, final)
    digest = sha256_file(final)
    size = os.path.getsize(final)
    print(f"wrote {final}")
    print(f"  size   {size}")
    print(f"  sha256 {digest}")
    print("to host it, run models/export/manifest.py on the folder (see models/README.md)")


def add_metadata(path, props):
    """Say in the file where it came from, so a random-weight test model can
    be told from a real one (the program ignores keys it does not know)."""
    import onnx

    model = onnx.load(path)
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(model, path)
