#!/usr/bin/env python3
"""Write manifest.json for a folder of exported models, so that the folder
can be served over HTTP(S) as a models server:

  python3 models/export/manifest.py /srv/anonymize-models
  # serve /srv/anonymize-models, then on each user's machine:
  ANONYMIZE_MODELS_URL=https://HOST/anonymize-models anonymize models pull detr-resnet-50

Every *.onnx file in the folder is listed with its sha256 and size. The two
models the program runs are listed under their registry names; any other
file under its name without .onnx. URLs are relative to manifest.json unless
--base-url is given. Only the standard library is needed.

The format is described in models/README.md and models/testdata/manifest.schema.json.
"""

import argparse
import hashlib
import json
import os
import sys

from registry import MODELS


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build(folder, base_url=None):
    names = {file: name for name, file in MODELS.items()}
    files = sorted(
        f
        for f in os.listdir(folder)
        if f.lower().endswith(".onnx") and not f.startswith(".") and os.path.isfile(os.path.join(folder, f))
    )
    # Registry models first, in registry order, then the rest by name.
    order = {file: i for i, file in enumerate(MODELS.values())}
    files.sort(key=lambda f: (order.get(f, len(order)), f))
    entries = []
    for f in files:
        path = os.path.join(folder, f)
        url = f
        if base_url:
            url = base_url.rstrip("/") + "/" + f
        entries.append(
            {
                "name": names.get(f, f[: -len(".onnx")]),
                "file": f,
                "url": url,
                "sha256": sha256_file(path),
                "size": os.path.getsize(path),
            }
        )
    return {"models": entries}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", help="folder holding the exported .onnx files")
    ap.add_argument("--base-url", help="write absolute URLs under this base instead of relative ones")
    ap.add_argument("--out", help="where to write the manifest (default: FOLDER/manifest.json)")
    args = ap.parse_args()

    manifest = build(args.folder, args.base_url)
    if not manifest["models"]:
        print(f"error: no .onnx files in {args.folder}", file=sys.stderr)
        return 1
    listed = {e["file"] for e in manifest["models"]}
    for name, f in MODELS.items():
        if f not in listed:
            print(f"warning: {f} is missing, so `anonymize models pull {name}` will not work", file=sys.stderr)

    out = args.out or os.path.join(args.folder, "manifest.json")
    tmp = out + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(manifest, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, out)
    for e in manifest["models"]:
        print(f"{e['name']:24} {e['size']:>12}  {e['sha256']}  {e['file']}", file=sys.stderr)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
