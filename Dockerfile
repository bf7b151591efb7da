# syntax=docker/dockerfile:1
# blazestream images (see docs/gpu.md):
#   deepstream  x86_64 + NVIDIA GPU: DeepStream 7.1 (TensorRT 10.3, CUDA 12.6, Python 3.10), pyds 1.2.0, CuPy
#   jetson      Jetson, JetPack 6.1/6.2: the same steps on the Jetson variant of the image (build on the Jetson)
#   cpu         Debian 12, GStreamer and ONNX Runtime: the CPU backend only (what `make setup` installs)
# docker build --target deepstream -t blazestream:ds .
# docker run --gpus all --rm blazestream:ds checks

# Pinned: DeepStream 7.1 is the release pyds 1.2.0 is built for; the multiarch tag covers x86_64 and Jetson.
FROM nvcr.io/nvidia/deepstream:7.1-triton-multiarch AS deepstream
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    BLAZESTREAM_MODELS=/opt/blazestream/models \
    BLAZESTREAM_ENGINES=/var/cache/blazestream/engines \
    BLAZESTREAM_DATA=/opt/blazestream/data \
    PATH=/opt/blazestream/.venv/bin:${PATH}
WORKDIR /opt/blazestream
COPY pyproject.toml README.md ./
COPY src ./src
COPY docker/install-deepstream.sh /tmp/install-deepstream.sh
RUN /tmp/install-deepstream.sh && rm /tmp/install-deepstream.sh
COPY Makefile ./
COPY tools ./tools
COPY configs ./configs
COPY data ./data
COPY tests ./tests
# The models are the same on every GPU: convert them once, in the image. Engines are per GPU: a volume.
RUN blazestream models && mkdir -p /var/cache/blazestream/engines
VOLUME ["/var/cache/blazestream/engines"]
EXPOSE 9108 8554
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/metrics' % os.environ.get('BLAZESTREAM_METRICS_PORT', '9108'), timeout=4)"]
ENTRYPOINT ["blazestream"]
CMD ["checks"]

# Jetson: the same image built on the Jetson itself (the multiarch tag resolves to its arm64 variant and
# install-deepstream.sh picks the aarch64 pyds wheel); builders and engines take longer there.
FROM deepstream AS jetson
RUN [ "$(uname -m)" = aarch64 ] || { echo "build the jetson target on a Jetson (or docker buildx --platform linux/arm64)"; exit 1; }
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/metrics' % os.environ.get('BLAZESTREAM_METRICS_PORT', '9108'), timeout=4)"]

FROM debian:12.11-slim AS cpu
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    BLAZESTREAM_MODELS=/opt/blazestream/models \
    BLAZESTREAM_DATA=/opt/blazestream/data \
    PATH=/opt/blazestream/.venv/bin:${PATH}
WORKDIR /opt/blazestream
# make and Python to run the Makefile, which installs the project's own apt list and venv (`make setup`).
# Package versions are those of the pinned Debian point release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends make python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md Makefile ./
COPY src ./src
COPY tools ./tools
RUN make apt venv PYTHON=python3 && rm -rf /var/lib/apt/lists/* /root/.cache/pip
COPY configs ./configs
COPY data ./data
RUN blazestream models
EXPOSE 9108 8554
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/metrics' % os.environ.get('BLAZESTREAM_METRICS_PORT', '9108'), timeout=4)"]
ENTRYPOINT ["blazestream"]
CMD ["checks"]
