"""Reduced-precision landmark models for the CPU backend: built once, cached, chosen by measurement.

`engine.precision` (`--precision`) picks fp32 (exact mode, the default), int8 or bf16 for the landmark
model, the one that runs on every frame (the detector runs once per lost track and stays fp32).

Mixed precision by measured sensitivity: every candidate convolution is reduced alone and its landmark
and world-landmark error against fp32 measured on crops that the pipeline itself makes from the
bundled public clips (person crops only; for int8, the half it was not calibrated on); then the least
sensitive layers are reduced together, as many as keep the whole model inside the budget. The rest,
and the heads, stay fp32.

- int8: ONNX Runtime static QDQ (u8 activations, s8 per-channel weights) on pointwise convolutions,
  calibrated once on the other half of the crops. Without VNNI (AVX2) u8 x s8 products saturate, so
  weights keep 7 bits there (reduce_range) and int8 is hardly faster than fp32.
- bf16: ONNX Runtime has no x86 bf16 kernels. On a CPU with bf16 arithmetic (AVX512_BF16, AMX) the
  build uses OpenVINO, whose CPU plugin has them: the chosen convolutions run in bf16, every other one
  is marked to keep fp32, and both the errors and the speed-up are measured with OpenVINO itself on
  this CPU. OpenVINO is kept only if it is inside the budget and faster than ONNX Runtime fp32.
  Otherwise (and on every other CPU) the chosen layers get bf16-rounded weights in ONNX Runtime's fp32
  kernels: bf16's weight error, fp32's speed.

Each build is cached next to the models, keyed by the fp32 model's sha256, the precision, the runtimes'
versions, the recipe version and the CPU class (VNNI, bf16 or neither); its JSON manifest records the
calibration clips (sha256, frames, crops), the runtime, the reduced layers, each layer's sensitivity,
the held-out error and, for bf16, what OpenVINO measured or why it was not used.
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
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, get_args

import numpy as np
import numpy.typing as npt

from blazestream.errors import BlazestreamError
from blazestream.precisions import CPU_PRECISIONS, CpuPrecision

if TYPE_CHECKING:
    from blazestream.engines.openvino import KeepScope

log = logging.getLogger(__name__)

Precision = CpuPrecision
PRECISIONS = CPU_PRECISIONS
RECIPE_VERSION = 2
CALIBRATION_CLIPS = ("messi_moves.mp4", "vtest.avi")
FRAMES_PER_CLIP = 24
LANDMARK_BUDGET_PX = 1.0
"""Mean landmark error against fp32, in pixels of the 256x256 crop, that int8 may add (held-out crops
with a person). 1 px is about 0.5% of the pose diagonal; ±1 grey level of input noise already moves fp32
landmarks by 0.2-0.5 px."""
WORLD_BUDGET_CM = 0.6
"""Mean world-landmark error against fp32 a reduced model may have on held-out crops. The issue's budget is
2 cm in tracking, where ROI differences compound it: 1.0 cm held out measured 1.8-2.2 cm in tracking."""

MIN_OPENVINO_SPEEDUP = 1.1
"""OpenVINO bf16 must beat ONNX Runtime fp32 by this factor (one thread each, batch 1, measured in
alternating rounds at build time) to be used: a smaller gain is within a shared machine's noise and does
not pay for a second runtime in the process (~190 MB)."""

Progress = Callable[[str], None]
Runtime = Literal["auto", "onnxruntime", "openvino"]
"""Which runtime a bf16 build may use: auto tries OpenVINO on CPUs with bf16 arithmetic."""


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
    from blazestream.engines.openvino import INSTALL_HINT, openvino_version

    if cpu.bf16 and openvino_version() is not None:
        return True, "bf16 arithmetic (AVX512_BF16/AMX): OpenVINO's bf16 kernels, where the build measures them faster"
    return False, (
        "ONNX Runtime has no x86 bf16 kernels: bf16 runs fp32 kernels on bf16-rounded weights (no speed-up)"
        + (f"; this CPU has bf16 arithmetic that OpenVINO could use: {INSTALL_HINT}" if cpu.bf16 else "")
    )


def landmark_model(
    models_dir: Path,
    precision: Precision,
    *,
    progress: Progress | None = None,
    candidates: int | None = None,
    runtime: Runtime = "auto",
) -> Path:
    """The landmark model (pruned, no segmentation) for `precision`, built and cached on first use.

    An ONNX file for ONNX Runtime, or an OpenVINO IR (`.xml`) for a bf16 build that measured OpenVINO
    faster. `candidates` limits the layers considered (the first N in graph order; tests use it to stay
    short); `runtime` forces the bf16 build's runtime choice (tests).
    """
    from blazestream.models.cache import load_model_paths

    source = load_model_paths(models_dir).landmark_noseg_onnx
    if precision == "fp32":
        return source
    fast, why = precision_speed(precision)
    if not fast:
        log.warning("--precision %s on this CPU (%s): %s", precision, cpu_features().summary, why)
    key = _cache_key(source, precision, runtime) | {"candidates": candidates}
    manifest_path = _manifest_path(source, precision, models_dir)
    manifest = _read_json(manifest_path)
    target = manifest_path.parent / str(manifest.get("model", ""))
    if manifest.get("key") != key or not target.is_file():
        say = progress or (lambda text: log.info("%s", text))
        say(f"building the {precision} landmark model (once; cached in {manifest_path.parent})")
        manifest_path.parent.mkdir(parents=True, exist_ok=True)
        reduce_range = key["cpu_class"] == "novnni"
        files, details = _build(
            source, precision, reduce_range=reduce_range, say=say, candidates=candidates, runtime=runtime
        )
        for suffix, data in files.items():
            _atomic_write(manifest_path.with_suffix(suffix), data)
        target = manifest_path.with_suffix(next(iter(files)))
        manifest = {"key": key, "model": target.name, **details}
        _atomic_write(manifest_path, json.dumps(manifest, indent=1).encode())
    if fast and precision == "bf16" and manifest.get("runtime") != "openvino":
        reason = manifest.get("openvino", {}).get("reason", "not tried")
        log.warning("--precision bf16 runs on ONNX Runtime (no speed-up): OpenVINO was not kept (%s)", reason)
    return target


def read_manifest(models_dir: Path, precision: Precision) -> dict[str, Any]:
    """The build record of a cached reduced-precision model ({} when none)."""
    from blazestream.models.cache import load_model_paths

    return _read_json(_manifest_path(load_model_paths(models_dir).landmark_noseg_onnx, precision, models_dir))


def _manifest_path(source: Path, precision: Precision, models_dir: Path) -> Path:
    return models_dir / "precision" / f"{source.stem}.{precision}.{_cpu_class(precision)}.json"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return {}


def _cpu_class(precision: Precision) -> str:
    """What decides how a build comes out on this CPU: VNNI for int8, bf16 arithmetic for bf16."""
    cpu = cpu_features()
    if precision == "bf16":
        return "bf16cpu" if cpu.bf16 else "nobf16cpu"
    return "vnni" if cpu.vnni else "novnni"


def _cache_key(source: Path, precision: Precision, runtime: Runtime) -> dict[str, Any]:
    import onnxruntime

    from blazestream.engines.openvino import openvino_version
    from blazestream.models.cache import sha256_of

    return {
        "model_sha256": sha256_of(source),
        "precision": precision,
        "onnxruntime": onnxruntime.__version__,
        "openvino": openvino_version() if precision == "bf16" else None,
        "runtime": runtime,
        "recipe": RECIPE_VERSION,
        "cpu_class": _cpu_class(precision),
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


@dataclass(frozen=True)
class ConvShape:
    """One convolution of the model at batch 1: what decides whether a precision may touch it, and its cost."""

    name: str
    kernel: tuple[int, ...]
    """Weight dims: output channels, input channels per group, kernel height, kernel width."""
    group: int
    output: tuple[int, ...]
    """N, C, H, W."""

    @property
    def macs(self) -> int:
        return int(np.prod(self.output[1:])) * int(np.prod(self.kernel[1:]))


def conv_shapes(model: Any) -> list[ConvShape]:
    """Every convolution with a 4-D output, in graph order (shapes inferred at batch 1)."""
    import onnx
    from onnx import shape_inference

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    fixed = shape_inference.infer_shapes(fixed)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in fixed.graph.value_info}
    weights = {i.name: list(i.dims) for i in fixed.graph.initializer}
    found = []
    for node in fixed.graph.node:
        shape = shapes.get(node.output[0]) if node.op_type == "Conv" else None
        if shape and len(shape) == 4:
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            found.append(ConvShape(node.name, tuple(weights.get(node.input[1], [])), group, tuple(shape)))
    return found


def candidate_convolutions(model: Any, precision: Precision) -> list[str]:
    """Convolutions a precision may touch: int8 the pointwise ones (ONNX Runtime's fast int8 path),
    bf16 every one; the 1x1-output heads stay fp32 in both."""
    return [
        c.name
        for c in conv_shapes(model)
        if c.output[2] > 1 and (precision == "bf16" or (c.group == 1 and c.kernel[2:] == (1, 1)))
    ]


def reduced_share(model: Any, reduced: list[str]) -> float:
    """The share of the model's convolution multiply-adds in the reduced layers: what a speed-up can reach."""
    macs = {c.name: c.macs for c in conv_shapes(model)}
    return sum(macs[name] for name in reduced) / max(1, sum(macs.values()))


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
    # Weights only: bf16 convolution kernels (oneDNN's) take an fp32 bias, and rounding the biases too
    # measured +9.6 cm of world error (one bias, conv_2d_317's, reaching 32, makes most of it).
    weights_of = {n.name: [n.input[1]] for n in base.graph.node if n.op_type == "Conv"}

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


Run = Callable[[bytes, npt.NDArray[np.float32]], list[Any]]
"""Runs a built model on crops and returns OUTPUTS."""


def _ort_run(model: bytes, crops: npt.NDArray[np.float32]) -> list[Any]:
    return list(session(model).run(OUTPUTS, {"input": crops}))


def _select(
    build: Callable[[list[str]], bytes],
    candidates: list[str],
    held_out: npt.NDArray[np.float32],
    reference: list[Any],
    say: Progress,
    run: Run = _ort_run,
) -> tuple[bytes, list[str], dict[str, float], dict[str, dict[str, float]]]:
    """Measure each candidate alone, then take the least sensitive ones while the whole stays in budget.

    The sum of single-layer errors predicts a prefix's error: the longest prefix predicted inside the
    budget is built and checked (shortened until it passes), then longer prefixes are tried by bisection.
    """
    sensitivity: dict[str, dict[str, float]] = {}
    for index, name in enumerate(candidates):
        if index % 10 == 0:
            say(f"measuring sensitivity: layer {index + 1} of {len(candidates)}")
        sensitivity[name] = landmark_errors(reference, run(build([name]), held_out))
    order = sorted(
        candidates,
        key=lambda n: sensitivity[n]["landmark_px"] / LANDMARK_BUDGET_PX + sensitivity[n]["world_cm"] / WORLD_BUDGET_CM,
    )
    px = np.cumsum([sensitivity[n]["landmark_px"] for n in order])
    cm = np.cumsum([sensitivity[n]["world_cm"] for n in order])
    count = max(1, int(np.sum((px <= LANDMARK_BUDGET_PX) & (cm <= WORLD_BUDGET_CM))))

    def trial(count: int) -> tuple[bytes, dict[str, float]] | None:
        model = build(order[:count])
        errors = landmark_errors(reference, run(model, held_out))
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


class _OpenVinoBf16:
    """bf16 trials in OpenVINO on this CPU: the IR with every layer outside the trial kept fp32 (`scope`)."""

    def __init__(self, source: Path, tmp: Path) -> None:
        import openvino as ov

        ov.save_model(ov.Core().read_model(str(source)), str(tmp / "model.xml"), compress_to_fp16=False)
        self.xml = (tmp / "model.xml").read_text()
        self.weights = (tmp / "model.bin").read_bytes()
        self.scope: KeepScope = "significant"

    def build(self, nodes: list[str]) -> bytes:
        from blazestream.engines.openvino import mark_keep_fp32

        return mark_keep_fp32(self.xml, set(nodes), self.scope).encode()

    def compile(self, xml: bytes) -> Any:
        from blazestream.engines.openvino import compile_landmark_model

        return compile_landmark_model((xml, self.weights), "bf16", streams=1)

    def run(self, xml: bytes, crops: npt.NDArray[np.float32]) -> list[Any]:
        from blazestream.engines.openvino import run_one_by_one

        return run_one_by_one(self.compile(xml), crops, OUTPUTS)

    def speedup(self, xml: bytes, source: Path, crops: npt.NDArray[np.float32], rounds: int = 7) -> dict[str, float]:
        """ms per crop of this model in OpenVINO bf16 and of fp32 in ONNX Runtime, one thread each, batch 1,
        measured in alternating rounds (a shared machine drifts); the speed-up is the median round's."""
        import time

        from blazestream.engines.openvino import run_one_by_one

        compiled, fp32 = self.compile(xml), session(source, threads=1)
        sample = crops[:8]
        ours, theirs = [], []
        for _ in range(rounds):
            start = time.perf_counter()
            run_one_by_one(compiled, sample, OUTPUTS)
            ours.append((time.perf_counter() - start) / len(sample))
            start = time.perf_counter()
            for crop in sample:
                fp32.run(OUTPUTS, {"input": crop[None]})
            theirs.append((time.perf_counter() - start) / len(sample))
        ratios = sorted(t / o for o, t in zip(ours, theirs, strict=True))
        return {
            "openvino_bf16_ms": round(float(np.median(ours)) * 1000, 3),
            "onnxruntime_fp32_ms": round(float(np.median(theirs)) * 1000, 3),
            "speedup": round(ratios[len(ratios) // 2], 3),
        }


def _layers_record(source: Path, candidates: list[str], reduced: list[str]) -> dict[str, Any]:
    """What the manifest says about the layers: how many could be reduced, which were, their share of the work."""
    import onnx

    return {
        "candidates": len(candidates),
        "reduced": sorted(reduced),
        "reduced_mac_share": round(reduced_share(onnx.load(str(source)), reduced), 4),
    }


class _Choice(NamedTuple):
    """One way of keeping fp32 that fits the budget, and what it measured."""

    kept: str
    xml: bytes
    chosen: list[str]
    errors: dict[str, float]
    sensitivity: dict[str, dict[str, float]]
    timing: dict[str, float]


def _openvino_bf16(
    source: Path,
    names: list[str],
    held_out: npt.NDArray[np.float32],
    reference: list[Any],
    say: Progress,
    runtime: Runtime,
    tmp: Path,
) -> tuple[dict[str, bytes] | None, dict[str, Any]]:
    """A mixed bf16 IR for OpenVINO, or None and why not (the build then uses ONNX Runtime)."""

    from blazestream.engines.openvino import INSTALL_HINT, KeepScope, compiled_precision, openvino_version

    version = openvino_version()
    if runtime == "onnxruntime":
        return None, {"used": False, "reason": "ONNX Runtime was asked for"}
    if runtime == "auto" and not cpu_features().bf16:
        return None, {"used": False, "reason": "this CPU has no bf16 arithmetic (AVX512_BF16 or AMX)"}
    if version is None:
        return None, {"used": False, "reason": f"OpenVINO is not installed: {INSTALL_HINT}"}
    tried: dict[str, Any] = {}
    best: _Choice | None = None
    try:
        trials = _OpenVinoBf16(source, tmp)
        if (compiled := compiled_precision(trials.compile(trials.build([])))) != "bf16":
            return None, {"used": False, "version": version, "reason": f"OpenVINO compiles bf16 as {compiled} here"}
        # Which layers OpenVINO lowers besides the reduced ones decides both error and speed: try both ways.
        for scope in get_args(KeepScope):
            trials.scope = scope

            def step(text: str, scope: str = scope) -> None:
                say(f"bf16 (OpenVINO, {scope} kept fp32): {text}")

            baseline = landmark_errors(reference, trials.run(trials.build([]), held_out))
            if baseline["landmark_px"] > LANDMARK_BUDGET_PX or baseline["world_cm"] > WORLD_BUDGET_CM:
                tried[scope] = {"baseline_error": baseline, "reason": "over the budget with no layer reduced"}
                step(f"{baseline['landmark_px']:.2f} px, {baseline['world_cm']:.2f} cm with no layer reduced: skipped")
                continue
            try:
                xml, chosen, errors, sensitivity = _select(trials.build, names, held_out, reference, step, trials.run)
            except BlazestreamError as exc:
                tried[scope] = {"baseline_error": baseline, "reason": str(exc)}
                continue
            timing = trials.speedup(xml, source, held_out)
            tried[scope] = {"baseline_error": baseline, "layers": len(chosen), "held_out_error": errors, **timing}
            step(f"{len(chosen)} layers, {timing['speedup']}x ONNX Runtime fp32")
            if best is None or timing["speedup"] > best.timing["speedup"]:
                best = _Choice(scope, xml, chosen, errors, sensitivity, timing)
    except RuntimeError as exc:  # OpenVINO's own errors (reading, compiling, running the IR)
        return None, {"used": False, "version": version, "reason": f"OpenVINO failed: {exc}", "tried": tried}
    if best is None:
        return None, {"used": False, "version": version, "reason": "no layer fits the budget", "tried": tried}
    kept, xml, chosen, errors, sensitivity, timing = best
    say(
        f"bf16 (OpenVINO): {len(chosen)} of {len(names)} layers, {timing['openvino_bf16_ms']} ms per crop against "
        f"ONNX Runtime fp32's {timing['onnxruntime_fp32_ms']} ms ({timing['speedup']}x)"
    )
    record = {
        "version": version,
        "kept_fp32": kept,
        "layers": sorted(chosen),
        "held_out_error": errors,
        "timing": timing,
        "tried": tried,
    }
    if timing["speedup"] < MIN_OPENVINO_SPEEDUP:
        reason = f"{timing['speedup']}x ONNX Runtime fp32, under the {MIN_OPENVINO_SPEEDUP}x it must gain"
        return None, {"used": False, "reason": reason, **record}
    details = {
        "runtime": "openvino",
        "layers": _layers_record(source, names, chosen),
        "held_out_error": errors,
        "sensitivity": sensitivity,
        "openvino": {"used": True, **record},
    }
    return {".xml": xml, ".bin": trials.weights}, details


def _build(
    source: Path,
    precision: Precision,
    *,
    reduce_range: bool,
    say: Progress,
    candidates: int | None = None,
    runtime: Runtime = "auto",
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The model's files by suffix (the model first) and what the manifest records."""
    import onnx

    say(f"{precision}: making calibration crops from the bundled clips")
    crops, provenance = calibration_crops(source.parent)
    # bf16 calibrates nothing, so every crop measures its error (selections made on half of them, 14
    # person crops, overshot the budget on the other half).
    calibrate, held_out = (crops[:0], crops) if precision == "bf16" else (crops[0::2], crops[1::2])
    reference = session(source).run(OUTPUTS, {"input": held_out})
    person = np.asarray(reference[1]).reshape(-1) > 0.5  # errors on crops without a person mean nothing
    if person.any():
        held_out = held_out[person]
        reference = [np.asarray(r)[person] for r in reference]
    names = candidate_convolutions(onnx.load(str(source)), precision)[:candidates]
    common = {
        "calibration": {
            "clips": provenance,
            "crops_calibration": len(calibrate) if precision == "int8" else 0,
            "crops_held_out": len(held_out),
        },
        "reduce_range": reduce_range if precision == "int8" else None,
        "budget": {"landmark_px": LANDMARK_BUDGET_PX, "world_cm": WORLD_BUDGET_CM},
    }
    with tempfile.TemporaryDirectory(prefix=f"blazestream-{precision}-") as tmp:
        openvino: dict[str, Any] = {}
        if precision == "bf16":
            files, details = _openvino_bf16(source, names, held_out, reference, say, runtime, Path(tmp))
            if files is not None:
                return files, common | details
            openvino = {"openvino": details}
            say(f"bf16: ONNX Runtime with bf16-rounded weights ({details['reason']})")
        builder = (
            _bf16_builder(source) if precision == "bf16" else _int8_builder(source, calibrate, reduce_range, Path(tmp))
        )
        model, chosen, errors, sensitivity = _select(
            builder, names, held_out, reference, lambda t: say(f"{precision}: {t}")
        )
    return {".onnx": model}, common | {
        "runtime": "onnxruntime",
        "layers": _layers_record(source, names, chosen),
        "held_out_error": errors,
        "sensitivity": sensitivity,
        **openvino,
    }
