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

clean:
	rm -rf bin out $(MODELS_DIR)/*.onnx $(CLIPS_DIR) $(PHOTOS_DIR) $(AUDIT_MODEL)
