#!/usr/bin/env bash
# Fetches the CPU build of ONNX Runtime that onnxruntime_go v1.27.0 is built
# against (C API 24, ORT 1.24.1). The official archives live on GitHub, which
# many build machines cannot reach; the same library ships inside the npm
# package onnxruntime-node, so we take it from there and pin both the package
# and the library by sha256.
set -euo pipefail
ORT_VERSION="${ORT_VERSION:-1.24.1}"
DEST="${1:-.deps/onnxruntime/${ORT_VERSION}}"
if [[ "${ORT_VERSION}" != "1.24.1" ]]; then
	echo "fetch-onnxruntime: only 1.24.1 is pinned; set ANONYMIZE_ORT_LIB to use another build" >&2
	exit 2
fi
exec "$(dirname "$0")/npm-file.sh" "onnxruntime-node@${ORT_VERSION}" \
	57181cf6e6e711b155c5b942d591fd63ded0b5de5c4922d51fd994e7f6ac2772 \
	package/bin/napi-v6/linux/x64/libonnxruntime.so.1 \
	53ef1ac028dd1b05554b8da28d9159eb3876f99868193d2aaa6e67f0243c23d4 \
	"${DEST}/libonnxruntime.so.1"
