#!/usr/bin/env bash
# The GPU check, in one command of under 10 minutes on a machine with an
# NVIDIA GPU: builds anonymize, runs `anonymize bench` (the pipeline against
# ffmpeg alone on a generated 1080p clip) on CUDA and on TensorRT while
# sampling the GPU's utilisation and memory through nvidia-smi (NVML), then
# `anonymize doctor` on the device with the same models, and prints it all.
#
#   scripts/gpu-check.sh --ort-lib /path/to/libonnxruntime.so.1 \
#       [--detector-model detr.onnx --pose-model transpose.onnx | --realarch] [--frames N]
#
# The ONNX Runtime library must be a build with the CUDA provider, with
# libonnxruntime_providers_shared.so and libonnxruntime_providers_cuda.so
# beside it, and CUDA 12/13 and cuDNN 9 on LD_LIBRARY_PATH (the CPU library
# `make setup` installs cannot use a GPU). Without models, the null ones
# (near-zero cost) measure the pipeline's own overhead; a real-architecture
# export with random weights is enough for the models' speed.
#
# On a GPU the benchmark runs twice: on CUDA and on TensorRT (fp16). The
# --allow-cpu flag runs everything once on the CPU where there is no GPU, to
# check the script itself.
set -euo pipefail
cd "$(dirname "$0")/.."

ort_lib="${ANONYMIZE_ORT_LIB:-}"
detector="" pose="" frames=600 allow_cpu=0
while [[ $# -gt 0 ]]; do
	case "$1" in
	--ort-lib) ort_lib="$2"; shift 2 ;;
	--detector-model) detector="$2"; shift 2 ;;
	--pose-model) pose="$2"; shift 2 ;;
	--realarch)
		# The real-size random-weight models of `make realarch`.
		detector=testdata/realarch/detr-resnet-50.onnx pose=testdata/realarch/transpose-h-a4-256x192.onnx
		if [[ ! -f ${detector} || ! -f ${pose} ]]; then
			echo "gpu-check: --realarch: run make realarch first (see models/README.md)" >&2
			exit 2
		fi
		shift ;;
	--frames) frames="$2"; shift 2 ;;
	--allow-cpu) allow_cpu=1; shift ;;
	-h|--help) sed -n '2,22p' "$0"; exit 0 ;;
	*) echo "gpu-check: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
if [[ -n "${detector}" && -z "${pose}" ]] || [[ -z "${detector}" && -n "${pose}" ]]; then
	echo "gpu-check: give --detector-model and --pose-model together, or neither for the null models" >&2
	exit 2
fi

device=cuda
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
	if [[ ${allow_cpu} == 0 ]]; then
		echo "gpu-check: no NVIDIA GPU here (nvidia-smi is missing or finds none): nothing to check. --allow-cpu runs the check on the CPU." >&2
		exit 2
	fi
	device=cpu
	echo "== no NVIDIA GPU: running on the CPU (--allow-cpu)"
else
	echo "== GPU"
	nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
fi

echo "== build"
start=$(date +%s)
make -s build >/dev/null
if [[ -z "${ort_lib}" ]]; then
	if [[ ${device} == cuda ]]; then
		echo "gpu-check: pass --ort-lib (or ANONYMIZE_ORT_LIB): an ONNX Runtime build with the CUDA provider" >&2
		exit 2
	fi
	ort_lib="$(ls .deps/onnxruntime/*/libonnxruntime.so.1 | head -1)"
fi
export ANONYMIZE_ORT_LIB="${ort_lib}"
models=()
if [[ -n "${detector}" ]]; then
	models=(--detector-model "${detector}" --pose-model "${pose}")
fi

work="$(mktemp -d)"
trap 'kill ${sampler:-} 2>/dev/null || true; rm -rf "${work}"' EXIT
sampler=""
# CUDA with the detector's pre-processing fused into it (what auto does on
# a GPU), CUDA with it on the CPU (--preprocess cpu, to compare), then
# TensorRT (fp16; its engines are built when the models load, before the
# timed run, and cached for the next time).
runs=("${device}")
if [[ ${device} == cuda ]]; then
	runs=(cuda cuda+cpu-preprocess tensorrt)
fi
for run in "${runs[@]}"; do
	dev="${run%%+*}"
	extra=()
	if [[ ${run} == *+cpu-preprocess ]]; then
		extra=(--preprocess cpu)
	fi
	if [[ ${device} == cuda ]]; then
		nvidia-smi --query-gpu=utilization.gpu,utilization.memory,memory.used --format=csv,noheader,nounits -lms 250 \
			>"${work}/gpu-${run}.csv" 2>/dev/null &
		sampler=$!
	fi
	echo
	echo "== bench (--device ${dev} ${extra[*]}, ${frames} frames of 1080p, audit off)"
	bin/anonymize bench --device "${dev}" "${extra[@]}" --trt-cache "${work}/trt" --frames "${frames}" --audit off \
		--work-dir "${work}/bench" "${models[@]}" 2>&1 |
		grep -v '^anonymize: \(run\|generating\|model loaded\|null model\)' || true
	if [[ -n "${sampler}" ]]; then
		kill "${sampler}" 2>/dev/null || true
		wait "${sampler}" 2>/dev/null || true
		sampler=""
		echo "GPU during the ${run} benchmark (nvidia-smi every 250 ms, over the ffmpeg and anonymize runs):"
		awk -F', *' 'NF >= 3 { n++; u += $1; if ($1 > umax) umax = $1; if ($3 > mmax) mmax = $3 }
			END { if (n == 0) { print "no samples"; exit }
				printf "utilisation: mean %.0f%%, max %d%% over %d samples; memory used: max %d MiB\n", u / n, umax, n, mmax }' \
			"${work}/gpu-${run}.csv"
	fi
done

echo
echo "== doctor (--device ${device})"
if [[ ${#models[@]} -eq 0 ]]; then
	# The null models the benchmark wrote.
	models=(--detector-model "${work}/bench/detr_null.onnx" --pose-model "${work}/bench/transpose_null.onnx")
fi
# doctor exits 1 when a check fails; its output says which.
bin/anonymize doctor --device "${device}" "${models[@]}" || echo "(doctor reported a failed check: see above)"

echo "== gpu-check took $(( $(date +%s) - start )) s"
