"""nvinfer configuration files, generated from the YAML config and the model spec (never edited by hand).

nvinfer reads a GLib key file with a [property] group. For the BlazePose detector it runs our prebuilt
engine with raw tensor output (network-type=100, output-tensor-meta=1): the probe decodes the anchors
with the pose core. Two things nvinfer does differently from MediaPipe, both handled here:

* Scaling: nvinfer resizes the frame (bilinear, scaling-filter=1) into the network input and pads it
  symmetrically with black (maintain-aspect-ratio=1, symmetric-padding=1); MediaPipe warps the padded
  ROI with OpenCV. The letterbox is the same idea, so `nvinfer_letterbox` reproduces nvinfer's integer
  arithmetic and the decoder removes it exactly as it removes MediaPipe's; the resampling differs
  (half-pixel centres vs OpenCV's warp grid), see docs/gpu.md for its measured effect on detections.
* Normalization: y = net-scale-factor * (x - offset), so a model taking [lo, hi] gets
  net-scale-factor = (hi - lo) / 255 and offsets = -lo / net-scale-factor (detector [-1, 1]: 1/127.5 and
  127.5;127.5;127.5).
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from blazestream.models.cache import ModelSpec

NETWORK_MODE = {"fp32": 0, "int8": 1, "fp16": 2}
NETWORK_TYPE_OTHER = 100
"""No built-in parsing: tensors are attached as NvDsInferTensorMeta for our probe."""
DETECTOR_GIE_ID = 1

NVINFER_PROPERTY_KEYS = frozenset(
    {
        # gstnvinfer_property_parser.h of the DeepStream 6.2 sources (NVIDIA's public gst-nvinfer source,
        # mirrored at github.com/hiennguyen9874/deepstream-sources), [property] group; the DeepStream 7.1
        # nvinfer documentation lists the same keys.
        "gie-unique-id", "process-mode", "interval", "labelfile-path", "gpu-id", "secondary-reinfer-interval",
        "output-tensor-meta", "disable-output-host-copy", "enable-dla", "use-dla-core", "batch-size",
        "tensor-meta-pool-size", "network-mode", "model-engine-file", "int8-calib-file", "workspace-size",
        "output-blob-names", "is-classifier", "network-type", "force-implicit-batch-dim", "infer-dims",
        "output-io-formats", "layer-device-precision", "model-color-format", "net-scale-factor", "offsets",
        "mean-file", "maintain-aspect-ratio", "symmetric-padding", "scaling-filter", "scaling-compute-hw",
        "network-input-order", "input-tensor-from-meta", "custom-lib-path", "parse-bbox-func-name",
        "parse-bbox-instance-mask-func-name", "engine-create-func-name", "parse-classifier-func-name",
        "custom-network-config", "model-file", "proto-file", "uff-file", "uff-input-order", "input-dims",
        "uff-input-dims", "uff-input-blob-name", "tlt-encoded-model", "tlt-model-key", "onnx-file",
        "num-detected-classes", "enable-dbscan", "cluster-mode", "crop-objects-to-roi-boundary",
        "classifier-type", "classifier-threshold", "classifier-async-mode", "segmentation-threshold",
        "segmentation-output-order", "output-instance-mask", "input-object-min-width", "input-object-min-height",
        "input-object-max-width", "input-object-max-height", "operate-on-gie-id", "operate-on-class-ids",
        "filter-out-class-ids",
    }
)  # fmt: skip
PATH_KEYS = ("model-engine-file", "onnx-file", "int8-calib-file", "labelfile-path", "custom-lib-path", "mean-file")
REQUIRED_KEYS = ("model-engine-file", "batch-size", "network-type", "output-tensor-meta", "gie-unique-id")


@dataclass(frozen=True)
class DetectorInferConfig:
    """What the detector's nvinfer needs to know."""

    engine: Path
    model: ModelSpec
    batch_size: int
    precision: str
    gpu_id: int = 0
    disable_output_host_copy: bool = True
    """The probe reads the device tensors only; the host copy would be wasted (DeepStream >= 6.2)."""
    tensor_meta_pool_size: int = 6
    """Batches of output tensors in flight; nvinfer stalls when a slow probe holds them all."""


def scale_and_offset(input_range: tuple[float, float]) -> tuple[float, float]:
    """(net-scale-factor, offset) mapping uint8 pixels to the model's input range."""
    low, high = input_range
    scale = (high - low) / 255.0
    return scale, -low / scale


def detector_properties(cfg: DetectorInferConfig) -> dict[str, str]:
    """The [property] group, in the order it is written."""
    scale, offset = scale_and_offset(cfg.model.input_range)
    size = cfg.model.input_size
    return {
        "gpu-id": str(cfg.gpu_id),
        "gie-unique-id": str(DETECTOR_GIE_ID),
        "process-mode": "1",
        "model-engine-file": str(cfg.engine),
        "batch-size": str(cfg.batch_size),
        "network-mode": str(NETWORK_MODE[cfg.precision]),
        "network-type": str(NETWORK_TYPE_OTHER),
        "output-tensor-meta": "1",
        "disable-output-host-copy": "1" if cfg.disable_output_host_copy else "0",
        "tensor-meta-pool-size": str(cfg.tensor_meta_pool_size),
        "output-blob-names": ";".join(name for _, name in cfg.model.outputs),
        "infer-dims": f"3;{size};{size}",
        "network-input-order": "0",
        "model-color-format": "0",
        "net-scale-factor": repr(scale),
        "offsets": ";".join([repr(offset)] * 3),
        "maintain-aspect-ratio": "1",
        "symmetric-padding": "1",
        "scaling-filter": "1",
        "interval": "0",
    }


def render_key_file(groups: Mapping[str, Mapping[str, str]], *, header: str) -> str:
    """GLib key-file text: a comment header, then `[group]` and `key=value` lines."""
    lines = [f"# {line}" for line in header.splitlines()]
    for group, values in groups.items():
        lines += ["", f"[{group}]"]
        lines += [f"{key}={value}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def write_detector_config(path: Path, cfg: DetectorInferConfig) -> Path:
    """Write the detector's nvinfer config; refuses one that `validate` would reject."""
    text = render_key_file(
        {"property": detector_properties(cfg)},
        header="Generated by blazestream from its YAML configuration: edit that, not this file.",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    problems = validate(path)
    if problems:
        raise ValueError(f"generated nvinfer config {path} is invalid: " + "; ".join(problems))
    return path


def parse_key_file(path: Path) -> dict[str, dict[str, str]]:
    """Groups and keys as nvinfer's g_key_file would see them (case-sensitive, no interpolation)."""
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",), comment_prefixes=("#",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return {group: dict(parser.items(group)) for group in parser.sections()}


def validate(path: Path) -> list[str]:
    """Problems of an nvinfer config: unknown groups or keys, missing required keys, missing files."""
    groups = parse_key_file(path)
    problems = []
    if "property" not in groups:
        return [f"{path}: no [property] group"]
    for group in groups:
        if group != "property" and not group.startswith("class-attrs-"):
            problems.append(f"unknown group [{group}]")
    properties = groups["property"]
    problems += [f"unknown key {key!r}" for key in properties if key not in NVINFER_PROPERTY_KEYS]
    problems += [f"missing key {key!r}" for key in REQUIRED_KEYS if key not in properties]
    for key in PATH_KEYS:
        if key in properties and not Path(properties[key]).is_file():
            problems.append(f"{key}={properties[key]} does not exist")
    return problems


def nvinfer_letterbox(
    source_width: int, source_height: int, net_width: int, net_height: int
) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) padding fractions of nvinfer's maintain-aspect-ratio + symmetric-padding.

    gst-nvinfer (get_converted_buffer): the source size is rounded down to even, the scaled size is
    truncated to an integer, and the left/top padding is half the rest, rounded down.
    """
    src_w = source_width - source_width % 2
    src_h = source_height - source_height % 2
    h_dest = net_width * src_h / src_w
    if h_dest <= net_height:
        dest_w, dest_h = net_width, int(h_dest)
    else:
        dest_w, dest_h = int(net_height * src_w / src_h), net_height
    left = (net_width - dest_w) // 2
    top = (net_height - dest_h) // 2
    right = net_width - dest_w - left
    bottom = net_height - dest_h - top
    return left / net_width, top / net_height, right / net_width, bottom / net_height
