"""The run configuration: pydantic models, strict (unknown keys are rejected with a hint).

`configs/default.yaml` documents every key; a user's YAML is validated against these models, and the
command-line flags override it. Only what can be checked before anything starts is checked here.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from blazestream.errors import ConfigError
from blazestream.precisions import CpuPrecision, TensorRTPrecision
from blazestream.uris import parse_mqtt_url, redact_text

Backend = Literal["auto", "cpu", "tensorrt", "deepstream"]


def _check_mqtt_url(value: str) -> str:
    parse_mqtt_url(value)  # ValueError naming the (redacted) URL
    return value


def _check_output_file(value: Path) -> Path:
    """An output file must be creatable: its directory exists and it is not itself a directory."""
    if str(value) == "-":
        return value
    target = value.expanduser()
    if target.is_dir():
        raise ValueError(f"{value} is a directory; give a file name in it")
    parent = target.parent
    if not parent.is_dir():
        raise ValueError(f"the directory {parent} does not exist; create it first (mkdir -p {parent})")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"the directory {parent} is not writable")
    return target


def check_output_file(option: str, value: str | Path) -> None:
    """ConfigError naming the option and the value when an output file cannot be created there."""
    try:
        _check_output_file(Path(value))
    except ValueError as exc:
        raise ConfigError(f"{option} {value}: {exc}") from None


MqttUrl = Annotated[str, AfterValidator(_check_mqtt_url)]
"""mqtt://[user:password@]host[:port], checked at load."""
OutputFile = Annotated[Path, AfterValidator(_check_output_file)]
"""A file an output writes: its directory must exist (checked at load, so a typo is exit 2, not a traceback)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CameraConfig(_Strict):
    """One camera: an id (used in outputs and metrics) and where its frames come from."""

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    uri: str
    max_poses: Annotated[int, Field(ge=1, le=32)] | None = None

    @field_validator("uri")
    @classmethod
    def _check_uri(cls, value: str) -> str:
        from blazestream.source_spec import parse_source_uri

        parse_source_uri(value)  # raises ValueError with a clear message
        return value


class DetectionConfig(_Strict):
    """Finding several people (only used when max_poses > 1): detector windows and re-detection schedule."""

    window_scales: list[Annotated[float, Field(gt=0.0, le=1.0)]] = [1.0, 0.5]
    """Square windows of this fraction of the frame's short side, besides the whole frame; [] = whole frame."""
    window_overlap: Annotated[float, Field(ge=0.0, le=0.9)] = 0.5
    edge_tolerance: Annotated[float, Field(ge=0.0, le=1.0)] = 0.25
    redetect_frames: Annotated[int, Field(ge=1, le=100_000)] | None = 5
    redetect_s: Annotated[float, Field(gt=0.0, le=3600.0)] | None = None

    @field_validator("window_scales")
    @classmethod
    def _few_scales(cls, value: list[float]) -> list[float]:
        if len(value) > 4:
            raise ValueError("at most 4 window scales (each adds a grid of windows to every detector run)")
        if len(set(value)) != len(value):
            raise ValueError(f"window scales repeat: {value}")
        return value

    @model_validator(mode="after")
    def _some_schedule(self) -> DetectionConfig:
        if self.redetect_frames is None and self.redetect_s is None:
            raise ValueError("redetect_frames and redetect_s are both null: newcomers would never be found")
        return self


class PoseConfig(_Strict):
    """MediaPipe's knobs; the defaults are `mp.solutions.pose.Pose`'s."""

    min_detection_confidence: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    min_presence: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    max_poses: Annotated[int, Field(ge=1, le=32)] = 1
    smooth: bool = True
    heatmap_kernel: Literal[7, 9] = 7
    segmentation: bool = False
    timestamps: Literal["frames", "pts"] = "frames"
    """What the smoothing filters see: 33.333 ms per frame as MediaPipe's Python solution, or media time."""
    detection: DetectionConfig = DetectionConfig()


class BatchConfig(_Strict):
    """Cross-camera batching, like nvstreammux: one frame per camera per batch."""

    max_size: Annotated[int, Field(ge=1, le=256)] | None = None
    """Frames per batch; default: the number of cameras (of the lane)."""
    timeout_ms: Annotated[float, Field(gt=0, le=10_000)] = 40.0
    """Push a partial batch this long after its first frame arrived (batched-push-timeout)."""
    lanes: Annotated[int, Field(ge=1, le=256)] | None = None
    """Camera groups batched and processed by threads of their own, so one group's tracking and outputs
    overlap another's crops and models; default: one per core on ONNX Runtime; TensorRT always runs one."""


class OnnxRuntimeConfig(_Strict):
    intra_op_threads: Annotated[int, Field(ge=0, le=256)] = 0
    parallel_runs: Annotated[int, Field(ge=0, le=256)] = 0
    inter_op_threads: Annotated[int, Field(ge=1, le=256)] = 1
    graph_optimization: Literal["disable", "basic", "extended", "all"] = "all"


class TensorRTConfig(_Strict):
    precision: TensorRTPrecision = "fp16"
    max_batch: Annotated[int, Field(ge=1, le=256)] = 16
    workspace_mb: Annotated[int, Field(ge=64)] = 1024
    engines_dir: Path | None = None


class DeepStreamConfig(_Strict):
    """The DeepStream graph (backend `deepstream`): muxer, detector nvinfer, RTSP recovery, display."""

    mux_width: Annotated[int, Field(ge=64, le=7680)] = 1920
    """nvstreammux scales every camera to this size: set it to the cameras' resolution (no distortion)."""
    mux_height: Annotated[int, Field(ge=64, le=4320)] = 1080
    gpu_id: Annotated[int, Field(ge=0, le=63)] = 0
    rtsp_reconnect_interval_s: Annotated[int, Field(ge=1, le=3600)] = 5
    rtsp_reconnect_attempts: Annotated[int, Field(ge=-1)] = -1
    """-1: retry forever."""
    disable_output_host_copy: bool = True
    """The probe decodes the detector tensors on the GPU; skip nvinfer's device-to-host copy."""
    tensor_meta_pool_size: Annotated[int, Field(ge=6, le=64)] = 6
    draw: bool = True
    """Skeletons for nvdsosd (display meta); off saves the probe a little time in benchmarks."""


class EngineConfig(_Strict):
    backend: Backend = "auto"
    models_dir: Path | None = None
    onnxruntime: OnnxRuntimeConfig = OnnxRuntimeConfig()
    tensorrt: TensorRTConfig = TensorRTConfig()
    precision: CpuPrecision = "fp32"
    """CPU backend's landmark model precision (engines.precision); TensorRT's is tensorrt.precision."""


class SourceConfig(_Strict):
    """How sources connect and recover."""

    rtsp_protocols: Literal["tcp", "udp", "tcp+udp"] = "tcp"
    rtsp_latency_ms: Annotated[int, Field(ge=0, le=10_000)] = 100
    rtsp_tcp_timeout_s: Annotated[float, Field(gt=0, le=120)] = 3.0
    stall_timeout_s: Annotated[float, Field(gt=0, le=300)] = 3.0
    """A live camera that sends no frame for this long is reconnected (rtspsrc itself may say nothing)."""
    backoff_initial_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    backoff_max_s: Annotated[float, Field(gt=0, le=300)] = 4.0
    file_queue: Annotated[int, Field(ge=1, le=64)] = 4
    """Decoded frames buffered per file source (files block when it is full: nothing is dropped)."""


class VideoOutputConfig(_Strict):
    path: OutputFile | None = None
    width: Annotated[int, Field(ge=64, le=7680)] = 1280
    height: Annotated[int, Field(ge=64, le=4320)] = 720
    bitrate_kbps: Annotated[int, Field(ge=100, le=100_000)] = 4000


class RtspOutputConfig(_Strict):
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    address: str = "127.0.0.1"
    mount: Annotated[str, Field(pattern=r"^/[A-Za-z0-9_./-]*$")] = "/annotated"


class MqttConfig(_Strict):
    url: MqttUrl | None = None
    """mqtt://[user:password@]host[:port]; one topic per camera: <topic_prefix>/<camera id>."""
    topic_prefix: str = "blazestream"
    qos: Literal[0, 1, 2] = 0


class RedisConfig(_Strict):
    url: str | None = None
    """redis://[user:password@]host[:port][/db]; one stream per camera: <stream_prefix>:<camera id>."""
    stream_prefix: Annotated[str, Field(min_length=1)] = "blazestream"
    maxlen: Annotated[int, Field(ge=1)] | None = 100_000
    """Approximate cap on entries per stream (XADD MAXLEN ~); null = unbounded."""
    buffer: Annotated[int, Field(ge=1, le=10_000_000)] = 20_000
    """Records held while the server is away; beyond it the oldest are dropped (and counted)."""
    flush_timeout_s: Annotated[float, Field(ge=0, le=3600)] = 5.0

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None:
            from blazestream.uris import parse_redis_url

            parse_redis_url(value)  # raises ValueError naming the URL and the expected form
        return value


class OutputsConfig(_Strict):
    jsonl: OutputFile | None = None
    video: VideoOutputConfig = VideoOutputConfig()
    rtsp: RtspOutputConfig = RtspOutputConfig()
    mqtt: MqttConfig = MqttConfig()
    redis: RedisConfig = RedisConfig()
    metrics_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    metrics_address: str = "127.0.0.1"


class ApiConfig(_Strict):
    """The HTTP API and web page (`blazestream run --api-port`): add and remove cameras while the run goes on."""

    port: Annotated[int, Field(ge=0, le=65535)] | None = None
    """null = off; 0 = a free port (logged)."""
    address: str = "127.0.0.1"
    """Anything but loopback needs a token (BLAZESTREAM_API_TOKEN or token_file)."""
    token_file: Path | None = None
    state_file: Path | None = None
    stream_fps: Annotated[float, Field(gt=0, le=60)] = 5.0
    """Frames per second of each MJPEG stream (stream.mjpg)."""
    jpeg_quality: Annotated[int, Field(ge=10, le=100)] = 80
    jpeg_width: Annotated[int, Field(ge=64, le=7680)] = 640
    """Snapshots and streams are scaled down to at most this width."""


class AppConfig(_Strict):
    """Everything `blazestream run` needs."""

    cameras: list[CameraConfig] = []
    pose: PoseConfig = PoseConfig()
    batch: BatchConfig = BatchConfig()
    engine: EngineConfig = EngineConfig()
    sources: SourceConfig = SourceConfig()
    outputs: OutputsConfig = OutputsConfig()
    deepstream: DeepStreamConfig = DeepStreamConfig()
    api: ApiConfig = ApiConfig()
    duration_s: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _unique_ids(self) -> AppConfig:
        ids = [c.id for c in self.cameras]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"camera ids must be unique; repeated: {', '.join(dupes)}")
        return self


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> AppConfig:
    """Read a YAML config (or start from the defaults) and apply overrides (nested dicts)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: no such config file") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of keys (see configs/default.yaml)")
        data = loaded or {}
    merged = _merge(data, overrides or {})
    try:
        return AppConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, path)) from exc


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _explain(exc: ValidationError, path: Path | None) -> str:
    """One line per problem, with a did-you-mean for unknown keys."""
    where = f"{path}: " if path else ""
    lines = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error["loc"])
        if error["type"] == "extra_forbidden":
            parent = _model_at(error["loc"][:-1])
            key = str(error["loc"][-1])
            known = list(parent.model_fields) if parent else []
            hint = difflib.get_close_matches(key, known, n=1)
            suggestion = f"; did you mean '{hint[0]}'?" if hint else f"; known keys: {', '.join(known)}"
            lines.append(f"{where}unknown key '{loc}'{suggestion}")
        else:
            lines.append(f"{where}{loc}: {_message(error)}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _message(error: Any) -> str:
    """The problem, the value given (credentials redacted) and, for a choice, the closest allowed value."""
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    shown = "" if isinstance(value, dict | list) or value is None else redact_text(repr(value))
    if error["type"] == "literal_error" and isinstance(value, str):
        expected = str(error.get("ctx", {}).get("expected", "")).replace(" or ", ", ")
        allowed = [v.strip("'") for v in expected.split(", ")]
        hint = difflib.get_close_matches(value, allowed, n=1)
        if hint:
            message += f"; did you mean '{hint[0]}'?"
    if shown and error["type"] != "value_error":  # our own messages already quote the value
        return f"{shown}: {redact_text(message)}"
    return redact_text(message)


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = AppConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args]
        nested = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if nested is None:
            return None
        model = nested
    return model
