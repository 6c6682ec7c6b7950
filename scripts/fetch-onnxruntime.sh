#!/usr/bin/env bash
# Fetches the CPU build of ONNX Runtime that onnxruntime_go v1.27.0 is built
# against (C API 24, ORT 1.24.1). The official archives live on GitHub, which
# many build machines cannot reach; the same library ships inside the npm
# package onnxruntime-node, so we take it from there and pin both the package
# and the library by sha256.
set -euo pipefail

ORT_VERSION="${ORT_VERSION:-1.24.1}"
DEST="${1:-.deps/onnxruntime/${ORT_VERSION}}"
PKG_SHA256="57181cf6e6e711b155c5b942d591fd63ded0b5de5c4922d51fd994e7f6ac2772"
LIB_SHA256="53ef1ac028dd1b05554b8da28d9159eb3876f99868193d2aaa6e67f0243c23d4"
LIB="${DEST}/libonnxruntime.so.1"

if [[ "${ORT_VERSION}" != "1.24.1" ]]; then
	echo "fetch-onnxruntime: only 1.24.1 is pinned; set ANONYMIZE_ORT_LIB to use another build" >&2
	exit 2
fi

if [[ -f "${LIB}" ]] && echo "${LIB_SHA256}  ${LIB}" | sha256sum --check --status; then
	echo "ONNX Runtime ${ORT_VERSION} already at ${LIB}"
	exit 0
fi

command -v npm >/dev/null || { echo "fetch-onnxruntime: npm is required (apt-get install npm)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
(cd "${work}" && npm pack --silent "onnxruntime-node@${ORT_VERSION}" >/dev/null)
tgz="${work}/onnxruntime-node-${ORT_VERSION}.tgz"
echo "${PKG_SHA256}  ${tgz}" | sha256sum --check --status || {
	echo "fetch-onnxruntime: onnxruntime-node-${ORT_VERSION}.tgz does not match its pinned sha256" >&2
	exit 1
}
tar -xzf "${tgz}" -C "${work}" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
src="${work}/package/bin/napi-v6/linux/x64/libonnxruntime.so.1"
echo "${LIB_SHA256}  ${src}" | sha256sum --check --status || {
	echo "fetch-onnxruntime: libonnxruntime.so.1 does not match its pinned sha256" >&2
	exit 1
}
mkdir -p "${DEST}"
install -m 0644 "${src}" "${LIB}.tmp"
mv "${LIB}.tmp" "${LIB}"
echo "ONNX Runtime ${ORT_VERSION} installed at ${LIB}"
