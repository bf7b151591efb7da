"""Reduced-precision landmark models for the CPU backend: built once, cached, chosen by measurement.

`engine.precision` (`--precision`) picks fp32 (exact mode, the default), int8 or bf16 for the landmark
model, the one that runs on every frame (the detector runs once per lost track and stays fp32).

Mixed precision by measured sensitivity: every candidate convolution is reduced alone and its landmark
and world-landmark error against fp32 measured on held-out crops that the pipeline itself makes from
the bundled public clips (person crops only); then the least sensitive layers are reduced together,
as many as keep the whole model inside the budget. The rest, and the heads, stay fp32.

- int8: ONNX Runtime static QDQ (u8 activations, s8 per-channel weights) on pointwise convolutions,
  calibrated once on the other half of the crops. Without VNNI (AVX2) u8 x s8 products saturate, so
  weights keep 7 bits there (reduce_range) and int8 is hardly faster than fp32.
- bf16: ONNX Runtime has no x86 bf16 kernels; the chosen layers get bf16-rounded weights in fp32
  kernels (bf16's weight error, fp32's speed). A bf16 runtime would be needed for a speed-up.

Each build is cached next to the models, keyed by the fp32 model's sha256, the precision, ONNX Runtime's
version, the recipe version and the CPU class (VNNI or not); its JSON manifest records the calibration
clips (sha256, frames, crops), the reduced layers, each layer's sensitivity and the held-out error.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from blazestream.errors import BlazestreamError
from blazestream.precisions import CPU_PRECISIONS, CpuPrecision

log = logging.getLogger(__name__)

Precision = CpuPrecision
PRECISIONS = CPU_PRECISIONS
RECIPE_VERSION = 1
CALIBRATION_CLIPS = ("messi_moves.mp4", "vtest.avi")
FRAMES_PER_CLIP = 24
LANDMARK_BUDGET_PX = 1.0
"""Mean landmark error against fp32, in pixels of the 256x256 crop, that int8 may add (held-out crops
with a person). 1 px is about 0.5% of the pose diagonal; ±1 grey level of input noise already moves fp32
landmarks by 0.2-0.5 px."""
WORLD_BUDGET_CM = 0.6
"""Mean world-landmark error against fp32 a reduced model may have on held-out crops. The issue's budget is
2 cm in tracking, where ROI differences compound it: 1.0 cm held out measured 1.8-2.2 cm in tracking."""

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CpuFeatures:
    """The instruction-set extensions that decide which precisions run fast."""

    flags: frozenset[str]

    @property
    def vnni(self) -> bool:
        return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & self.flags)

    @property
    def bf16(self) -> bool:
        return bool({"avx512_bf16", "amx_bf16"} & self.flags)

    @property
    def summary(self) -> str:
        shown = [
            f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")
        ]
        return " ".join(f for f in shown if f in self.flags) or "none of AVX2/AVX-512/AMX"


@functools.cache
def cpu_features() -> CpuFeatures:
    """Flags from /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return CpuFeatures(frozenset())
    for line in text.splitlines():
        if line.startswith("flags"):
            return CpuFeatures(frozenset(line.split(":", 1)[1].split()))
    return CpuFeatures(frozenset())


def precision_speed(precision: Precision, features: CpuFeatures | None = None) -> tuple[bool, str]:
    """(runs fast on this CPU, why): what `checks` prints and what the warning says."""
    cpu = features or cpu_features()
    if precision == "fp32":
        return True, "fp32 kernels (AVX2/FMA or better)"
    if precision == "int8":
        if cpu.vnni:
            return True, "int8 dot products (VNNI/AMX): quantized layers run ~2x faster"
        return False, "no VNNI: int8 convolutions run on AVX2 with 7-bit weights, little faster than fp32"
    return False, (
        "ONNX Runtime has no x86 bf16 kernels: bf16 runs fp32 kernels on bf16-rounded weights (no speed-up)"
        + ("; this CPU has bf16 arithmetic that a bf16 runtime could use" if cpu.bf16 else "")
    )


def landmark_model(
    models_dir: Path, precision: Precision, *, progress: Progress | None = None, candidates: int | None = None
) -> Path:
    """The landmark model (pruned, no segmentation) for `precision`, built and cached on first use.

    `candidates` limits the layers considered (the first N in graph order; tests use it to stay short).
    """
    from blazestream.models.cache import load_model_paths

    source = load_model_paths(models_dir).landmark_noseg_onnx
    if precision == "fp32":
        return source
    fast, why = precision_speed(precision)
    if not fast:
        log.warning("--precision %s on this CPU (%s): %s", precision, cpu_features().summary, why)
    key = _cache_key(source, precision) | {"candidates": candidates}
    target = models_dir / "precision" / f"{source.stem}.{precision}.{key['cpu_class']}.onnx"
    manifest_path = target.with_suffix(".json")
    if target.is_file() and manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            manifest = {}
        if manifest.get("key") == key:
            return target
    say = progress or (lambda text: log.info("%s", text))
    say(f"building the {precision} landmark model (once; cached in {target.parent})")
    target.parent.mkdir(parents=True, exist_ok=True)
    model, details = _build(
        source, precision, reduce_range=key["cpu_class"] == "novnni", say=say, candidates=candidates
    )
    _atomic_write(target, model)
    _atomic_write(manifest_path, json.dumps({"key": key, **details}, indent=1).encode())
    return target


def read_manifest(models_dir: Path, precision: Precision) -> dict[str, Any]:
    """The build record of a cached reduced-precision model ({} when none)."""
    from blazestream.models.cache import load_model_paths

    source = load_model_paths(models_dir).landmark_noseg_onnx
    cpu_class = "vnni" if cpu_features().vnni else "novnni"
    path = models_dir / "precision" / f"{source.stem}.{precision}.{cpu_class}.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def _cache_key(source: Path, precision: Precision) -> dict[str, Any]:
    import onnxruntime

    from blazestream.models.cache import sha256_of

    return {
        "model_sha256": sha256_of(source),
        "precision": precision,
        "onnxruntime": onnxruntime.__version__,
        "recipe": RECIPE_VERSION,
        "cpu_class": "vnni" if cpu_features().vnni else "novnni",
    }


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- building: the same measured-sensitivity selection for both precisions ---------------------------


def round_to_bf16(values: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Round float32 to the nearest bfloat16 (ties to even), kept as float32."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return rounded.view(np.float32)


def calibration_crops(
    models_dir: Path, frames_per_clip: int = FRAMES_PER_CLIP
) -> tuple[npt.NDArray[np.float32], list[dict[str, Any]]]:
    """Landmark-model inputs the pipeline makes from the bundled public clips, and their provenance."""
    from blazestream.models.cache import sha256_of
    from blazestream.models.calibration import default_calibration_source, landmark_tensors, sample_frames

    data_dir = default_calibration_source().parent
    crops, provenance = [], []
    for name in CALIBRATION_CLIPS:
        clip = data_dir / name
        if not clip.is_file():
            continue
        frames = sample_frames(clip, frames_per_clip)
        tensors = landmark_tensors(frames, models_dir)
        crops.append(tensors)
        provenance.append({"file": name, "sha256": sha256_of(clip), "frames": len(frames), "crops": len(tensors)})
    if not crops:
        raise BlazestreamError(f"no calibration clip ({', '.join(CALIBRATION_CLIPS)}) in {data_dir}")
    return np.concatenate(crops), provenance


def session(model: Path | bytes, threads: int = 0) -> Any:
    """An ONNX Runtime session for a (possibly partially) quantized model.

    WeightBiasQuantization is disabled: it would silently turn fp32 convolutions that sit between
    dequantize and quantize nodes into per-tensor int8 (55 px of landmark error).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(
        model if isinstance(model, bytes) else str(model),
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=["WeightBiasQuantization"],
    )


OUTPUTS = ["landmarks", "pose_flag", "heatmap", "world_landmarks"]


def landmark_errors(reference: list[Any], outputs: list[Any]) -> dict[str, float]:
    """Mean landmark error in crop pixels (33 landmarks, x/y) and mean world error in cm."""
    lms = [np.asarray(o).reshape(len(o), 39, 5)[:, :33, :2] for o in (reference[0], outputs[0])]
    world = [np.asarray(o).reshape(len(o), 39, 3)[:, :33] for o in (reference[3], outputs[3])]
    return {
        "landmark_px": float(np.linalg.norm(lms[0] - lms[1], axis=-1).mean()),
        "world_cm": float(np.linalg.norm(world[0] - world[1], axis=-1).mean() * 100.0),
    }


def candidate_convolutions(model: Any, precision: Precision) -> list[str]:
    """Convolutions a precision may touch: int8 the pointwise ones (ONNX Runtime's fast int8 path),
    bf16 every one; the 1x1-output heads stay fp32 in both."""
    import onnx
    from onnx import shape_inference

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    fixed = shape_inference.infer_shapes(fixed)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in fixed.graph.value_info}
    weights = {i.name: list(i.dims) for i in fixed.graph.initializer}
    names = []
    for node in fixed.graph.node:
        if node.op_type != "Conv":
            continue
        kernel = weights.get(node.input[1], [])
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        shape = shapes.get(node.output[0])
        if not shape or len(shape) != 4 or shape[2] <= 1:
            continue
        if precision == "bf16" or (group == 1 and kernel[2:] == [1, 1]):
            names.append(node.name)
    return names


class _Reader:
    """CalibrationDataReader over crops, 8 at a time."""

    def __init__(self, crops: npt.NDArray[np.float32]) -> None:
        self._batches: Iterator[npt.NDArray[np.float32]] = iter(np.array_split(crops, max(1, len(crops) // 8)))

    def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
        batch = next(self._batches, None)
        return None if batch is None else {"input": np.ascontiguousarray(batch)}


def _bf16_builder(source: Path) -> Callable[[list[str]], bytes]:
    import onnx
    from onnx import numpy_helper

    base = onnx.load(str(source))
    weights_of = {n.name: [i for i in n.input[1:] if i] for n in base.graph.node}

    def build(nodes: list[str]) -> bytes:
        model = onnx.ModelProto()
        model.CopyFrom(base)
        rounded = {w for n in nodes for w in weights_of[n]}
        for init in model.graph.initializer:
            if init.name in rounded and init.data_type == onnx.TensorProto.FLOAT:
                init.CopyFrom(numpy_helper.from_array(round_to_bf16(numpy_helper.to_array(init)), init.name))
        return bytes(model.SerializeToString())

    return build


def _int8_builder(
    source: Path, calibrate: npt.NDArray[np.float32], reduce_range: bool, tmp: Path
) -> Callable[[list[str]], bytes]:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    cache, out = tmp / "ranges.json", tmp / "q.onnx"

    def build(nodes: list[str]) -> bytes:
        quantize_static(
            str(source),
            str(out),
            _Reader(calibrate),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv"],
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_quantize=nodes,
            calibrate_method=CalibrationMethod.MinMax,
            calibration_cache_path=str(cache),  # calibrated once, reused by every trial
        )
        return out.read_bytes()

    return build


def _select(
    build: Callable[[list[str]], bytes],
    candidates: list[str],
    held_out: npt.NDArray[np.float32],
    reference: list[Any],
    say: Progress,
) -> tuple[bytes, list[str], dict[str, float], dict[str, dict[str, float]]]:
    """Measure each candidate alone, then take the least sensitive ones while the whole stays in budget.

    The sum of single-layer errors predicts a prefix's error: the longest prefix predicted inside the
    budget is built and checked (shortened until it passes), then longer prefixes are tried by bisection.
    """
    sensitivity: dict[str, dict[str, float]] = {}
    for index, name in enumerate(candidates):
        if index % 10 == 0:
            say(f"measuring sensitivity: layer {index + 1} of {len(candidates)}")
        sensitivity[name] = landmark_errors(reference, session(build([name])).run(OUTPUTS, {"input": held_out}))
    order = sorted(
        candidates,
        key=lambda n: sensitivity[n]["landmark_px"] / LANDMARK_BUDGET_PX + sensitivity[n]["world_cm"] / WORLD_BUDGET_CM,
    )
    px = np.cumsum([sensitivity[n]["landmark_px"] for n in order])
    cm = np.cumsum([sensitivity[n]["world_cm"] for n in order])
    count = max(1, int(np.sum((px <= LANDMARK_BUDGET_PX) & (cm <= WORLD_BUDGET_CM))))

    def trial(count: int) -> tuple[bytes, dict[str, float]] | None:
        model = build(order[:count])
        errors = landmark_errors(reference, session(model).run(OUTPUTS, {"input": held_out}))
        say(f"{count} of {len(order)} layers: {errors['landmark_px']:.2f} px, {errors['world_cm']:.2f} cm world")
        ok = errors["landmark_px"] <= LANDMARK_BUDGET_PX and errors["world_cm"] <= WORLD_BUDGET_CM
        return (model, errors) if ok else None

    best = None
    while count > 0 and (best := trial(count)) is None:  # the sum over-predicts less often than it under-predicts
        count = count * 3 // 4
    if best is not None:
        # Errors of separate layers partly cancel: search upwards for the longest prefix that still passes.
        low, high = count, len(order) + 1
        while high - low > max(1, len(order) // 16):
            middle = (low + high) // 2
            if (found := trial(middle)) is not None:
                low, best = middle, found
            else:
                high = middle
        return best[0], order[:low], best[1], sensitivity
    raise BlazestreamError("no layer fits the error budget at this precision; use fp32")


def _build(
    source: Path, precision: Precision, *, reduce_range: bool, say: Progress, candidates: int | None = None
) -> tuple[bytes, dict[str, Any]]:
    import onnx

    say(f"{precision}: making calibration crops from the bundled clips")
    crops, provenance = calibration_crops(source.parent)
    calibrate, held_out = crops[0::2], crops[1::2]
    reference = session(source).run(OUTPUTS, {"input": held_out})
    person = np.asarray(reference[1]).reshape(-1) > 0.5  # errors on crops without a person mean nothing
    if person.any():
        held_out = held_out[person]
        reference = [np.asarray(r)[person] for r in reference]
    names = candidate_convolutions(onnx.load(str(source)), precision)[:candidates]
    with tempfile.TemporaryDirectory(prefix=f"blazestream-{precision}-") as tmp:
        builder = (
            _bf16_builder(source) if precision == "bf16" else _int8_builder(source, calibrate, reduce_range, Path(tmp))
        )
        model, chosen, errors, sensitivity = _select(
            builder, names, held_out, reference, lambda t: say(f"{precision}: {t}")
        )
    return model, {
        "calibration": {
            "clips": provenance,
            "crops_calibration": len(calibrate) if precision == "int8" else 0,
            "crops_held_out": len(held_out),
        },
        "reduce_range": reduce_range if precision == "int8" else None,
        "layers": {"candidates": len(names), "reduced": sorted(chosen)},
        "held_out_error": errors,
        "budget": {"landmark_px": LANDMARK_BUDGET_PX, "world_cm": WORLD_BUDGET_CM},
        "sensitivity": sensitivity,
    }
