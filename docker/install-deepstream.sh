#!/usr/bin/env bash
# The steps both DeepStream targets share (dGPU and Jetson): one script, so the two cannot drift apart.
# Runs inside nvcr.io/nvidia/deepstream:7.1-* (Ubuntu 22.04, Python 3.10, TensorRT 10.3, CUDA 12.6).
set -euo pipefail

PYDS_VERSION="${PYDS_VERSION:-1.2.0}"
ARCH="$(uname -m)"  # x86_64 or aarch64: the suffix of NVIDIA's pyds wheels
PYDS_WHEEL="https://github.com/NVIDIA-AI-IOT/deepstream_python_apps/releases/download/v${PYDS_VERSION}/pyds-${PYDS_VERSION}-cp310-cp310-linux_${ARCH}.whl"

# Codecs and libraries the DeepStream images leave out for licensing reasons (NVIDIA's documented step).
/opt/nvidia/deepstream/deepstream/user_additional_install.sh

apt-get update
apt-get install -y --no-install-recommends \
    python3-venv python3-gi python3-gst-1.0 gir1.2-gst-rtsp-server-1.0 gstreamer1.0-python3-plugin-loader \
    make ca-certificates
rm -rf /var/lib/apt/lists/*

# System site packages: python3-gi and TensorRT's Python bindings come from the image.
python3 -m venv --system-site-packages /opt/blazestream/.venv
PIP=/opt/blazestream/.venv/bin/pip
"$PIP" install --no-cache-dir "pip==25.1.1"
# NVIDIA's pyds wheel (never PyPI's unrelated `pyds`); pyds 1.2.0 is built against numpy 1.x.
"$PIP" install --no-cache-dir "numpy>=1.24,<2" "$PYDS_WHEEL"
if ! /opt/blazestream/.venv/bin/python -c "import tensorrt" 2>/dev/null; then
    "$PIP" install --no-cache-dir "tensorrt-cu12==${TENSORRT_VERSION:-10.3.0}"
fi
"$PIP" install --no-cache-dir --constraint /dev/stdin "/opt/blazestream[gst,mqtt,redis,gpu]" --group /opt/blazestream/pyproject.toml:dev <<<"numpy<2"
