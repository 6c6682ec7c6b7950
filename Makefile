# anonymize: `make demo` runs the main job on a generated sample, `make test`
# runs every test. Both set up what they need first; `make setup` alone is
# idempotent and safe to re-run.

SHELL        := /bin/bash
ORT_VERSION  := 1.24.1
ORT_DIR      := .deps/onnxruntime/$(ORT_VERSION)
ORT_LIB      := $(ORT_DIR)/libonnxruntime.so.1
BIN          := bin/anonymize
GO           ?= go
APT_PACKAGES := libopencv-dev ffmpeg pkg-config debootstrap
SUDO         := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

MODELS_DIR   := testdata/models
DETECTOR     := $(MODELS_DIR)/detr_synthetic.onnx
POSE         := $(MODELS_DIR)/transpose_synthetic.onnx
CLIPS_DIR    := testdata/clips
SAMPLE       := $(CLIPS_DIR)/sample.mp4
PHOTOS_DIR   := testdata/photos
REAL_CLIPS   := $(CLIPS_DIR)/vtest.avi $(CLIPS_DIR)/Megamind.avi
PHOTOS       := $(PHOTOS_DIR)/messi5.jpg $(PHOTOS_DIR)/basketball1.png $(PHOTOS_DIR)/ela_original.jpg $(PHOTOS_DIR)/aloeL.jpg
AUDIT_MODEL  := models/blazeface-back-256.onnx

export ANONYMIZE_ORT_LIB := $(CURDIR)/$(ORT_LIB)

.PHONY: all setup apt ort audit-model build testdata test demo bench clean

all: build

setup: apt ort audit-model

# Install only what is missing, so a configured machine is not touched.
apt:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "apt packages present: $(APT_PACKAGES)"; fi

ort: $(ORT_LIB)

# The face detector of the leak audit (anonymize audit, --audit).
audit-model: $(AUDIT_MODEL)

$(AUDIT_MODEL):
	./scripts/fetch-blazeface.sh models

$(ORT_LIB):
	./scripts/fetch-onnxruntime.sh $(ORT_DIR)

build: ort
	$(GO) build -trimpath -o $(BIN) ./cmd/anonymize
	@mkdir -p bin/lib && cp -f $(ORT_LIB) bin/lib/libonnxruntime.so.1

GEN_MODELS_SRC := $(filter-out %_test.go,$(wildcard models/synthetic/*.go models/synthetic/cmd/gen-models/*.go models/onnxgraph/*.go))
GEN_CLIP_SRC   := $(filter-out %_test.go,$(wildcard internal/synthclip/*.go internal/synthclip/cmd/gen-clip/*.go))

$(DETECTOR) $(POSE) &: $(GEN_MODELS_SRC)
	$(GO) run ./models/synthetic/cmd/gen-models -out $(MODELS_DIR)

$(SAMPLE): $(GEN_CLIP_SRC)
	@mkdir -p $(CLIPS_DIR)
	$(GO) run ./internal/synthclip/cmd/gen-clip -out $@ -width 640 -height 360 -frames 150

# Real footage of pedestrians (and a clip with AC3 audio), and photographs
# with and without faces, from Debian's opencv-doc package.
$(REAL_CLIPS) $(PHOTOS) &:
	@mkdir -p $(CLIPS_DIR) $(PHOTOS_DIR)
	./scripts/fetch-real-clips.sh $(CLIPS_DIR) $(PHOTOS_DIR)

testdata: $(DETECTOR) $(POSE) $(SAMPLE) $(REAL_CLIPS) $(PHOTOS)

# The second run counts gocv Mats (matprofile) to catch leaks and double
# frees on every path the pipeline stages can end by.
# The timeout leaves room for deploy's first builds of the Collector,
# Jaeger and Prometheus (about 20 minutes on 2 cores; cached after).
test: setup testdata
	ANONYMIZE_TEST_REQUIRE=1 $(GO) test -count=1 -timeout 60m ./...
	ANONYMIZE_TEST_REQUIRE=1 $(GO) test -count=1 -tags matprofile -run 'LeavesNoMat' ./pipeline ./audit

demo: setup build testdata
	@mkdir -p out
	@echo
	@echo "== Demo: anonymizing $(SAMPLE) with the SYNTHETIC demo models."
	@echo "   These tiny models only understand the generated test scene (flat-coloured figures);"
	@echo "   they do not detect real people. For real footage export or pull the real models:"
	@echo "   see models/README.md (anonymize models pull detr-resnet-50 / transpose-h-a4)."
	@echo
	$(BIN) video --overwrite --device auto \
		--detector-model $(DETECTOR) --pose-model $(POSE) \
		$(SAMPLE) out/demo.mp4
	@echo
	@echo "== Wrote out/demo.mp4 (input: $(SAMPLE)). Debug view with boxes and skeletons:"
	$(BIN) video --overwrite --quiet --draw \
		--detector-model $(DETECTOR) --pose-model $(POSE) \
		$(SAMPLE) out/demo-draw.mp4
	@echo "   out/demo-draw.mp4"

# The pipeline against ffmpeg alone on a generated 1080p clip, with null
# models: what the pipeline itself costs (see README, "Measuring speed").
bench: setup build
	$(BIN) bench --device auto

# Real-size models with random weights in $(REALARCH_DIR): the real DETR and
# TransPose architectures, untrained (they find nobody), for measuring speed
# and checking the program against what real exports look like without the
# published weights. Not part of `make test`. TRANSPOSE_SRC and DETR_SRC name
# checkouts of yangsenius/TransPose and facebookresearch/detr at the commits
# the export scripts pin (see models/README.md, "Real-size test models");
# without TRANSPOSE_SRC the pinned TransPose commit is downloaded, without
# DETR_SRC DETR is built with transformers if installed, else skipped.
# EXPORT_PYTHON defaults to the first of python3 and /usr/bin/python3 that
# has PyTorch, onnx and PyYAML.
REALARCH_DIR  := testdata/realarch
TRANSPOSE_SRC ?=
DETR_SRC      ?=
EXPORT_PYTHON ?=

.PHONY: realarch
realarch: ort $(DETECTOR) $(POSE)
	@set -e; py="$(EXPORT_PYTHON)"; \
	if [ -z "$$py" ]; then for p in python3 /usr/bin/python3; do \
		if $$p -c 'import torch, onnx, yaml' 2>/dev/null; then py=$$p; break; fi; \
	done; fi; \
	if [ -z "$$py" ]; then echo "realarch: no Python with torch, onnx and PyYAML; set EXPORT_PYTHON (see models/README.md)" >&2; exit 1; fi; \
	mkdir -p $(REALARCH_DIR); \
	echo "$$py models/export/export_transpose.py --random-init $(if $(TRANSPOSE_SRC),--source $(TRANSPOSE_SRC)) --out $(REALARCH_DIR)"; \
	$$py models/export/export_transpose.py --random-init $(if $(TRANSPOSE_SRC),--source $(TRANSPOSE_SRC)) --out $(REALARCH_DIR); \
	if [ -n "$(DETR_SRC)" ] || $$py -c 'import transformers' 2>/dev/null; then \
		echo "$$py models/export/export_detr.py --random-init $(if $(DETR_SRC),--source $(DETR_SRC)) --out $(REALARCH_DIR)"; \
		$$py models/export/export_detr.py --random-init $(if $(DETR_SRC),--source $(DETR_SRC)) --out $(REALARCH_DIR); \
	else \
		echo "realarch: skipping DETR: set DETR_SRC to a checkout of facebookresearch/detr at the commit models/export/export_detr.py pins, or install transformers"; \
	fi

# The benchmark with the real-size models of `make realarch` (the models'
# own cost: about 1.3 s a frame for DETR on 2 CPU cores).
.PHONY: bench-realarch
bench-realarch: setup build
	@test -f $(REALARCH_DIR)/detr-resnet-50.onnx -a -f $(REALARCH_DIR)/transpose-h-a4-256x192.onnx || \
		{ echo "bench-realarch: run make realarch first (see models/README.md)" >&2; exit 1; }
	$(BIN) bench --device auto --detector-model $(REALARCH_DIR)/detr-resnet-50.onnx \
		--pose-model $(REALARCH_DIR)/transpose-h-a4-256x192.onnx

clean:
	rm -rf bin out $(MODELS_DIR)/*.onnx $(CLIPS_DIR) $(PHOTOS_DIR) $(AUDIT_MODEL) $(REALARCH_DIR)
