"""Assembling a run from the configuration: sources, backend, pose stage, outputs, metrics."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from blazestream.config import AppConfig, DetectionConfig
from blazestream.engines.onnxruntime import OnnxRuntimeEngine, OrtSettings, available_cores
from blazestream.engines.openvino import OpenVinoEngine
from blazestream.estimator import EstimatorSettings, PoseEstimator
from blazestream.outputs.base import ResultSink
from blazestream.outputs.metrics import Metrics
from blazestream.pipeline.runner import Runner
from blazestream.pipeline.stage import PoseStage
from blazestream.pose.windows import WindowSpec
from blazestream.source_spec import SourceSpec, parse_source_uri

log = logging.getLogger(__name__)


def source_specs(cfg: AppConfig) -> list[SourceSpec]:
    return [parse_source_uri(c.uri, c.id) for c in cfg.cameras]


def estimator_settings(cfg: AppConfig) -> EstimatorSettings:
    per_camera = [c.max_poses for c in cfg.cameras if c.max_poses]
    return EstimatorSettings(
        min_detection_confidence=cfg.pose.min_detection_confidence,
        min_presence=cfg.pose.min_presence,
        max_poses=max([cfg.pose.max_poses, *per_camera]),
        heatmap_kernel=cfg.pose.heatmap_kernel,
        windows=window_spec(cfg.pose.detection),
    )


def window_spec(detection: DetectionConfig) -> WindowSpec:
    """The detector windows of the configuration."""
    return WindowSpec(
        scales=tuple(detection.window_scales),
        overlap=detection.window_overlap,
        edge_tolerance=detection.edge_tolerance,
    )


def processing_lanes(cfg: AppConfig, *, cpu: bool, dynamic: bool = False) -> int:
    """`batch.lanes`, or by default one per core (up to one per camera) where the models run on the CPU:
    a CPU model costs the same per crop in any batch, so lanes lose nothing. Always one on a GPU, which
    wants every camera in one batch (and whose engines and streams are not shared between threads)."""
    if not cpu:
        if (cfg.batch.lanes or 1) > 1:
            log.warning("batch.lanes %d ignored: the GPU runs one lane (one batch of every camera)", cfg.batch.lanes)
        return 1
    if cfg.batch.lanes is not None:
        return cfg.batch.lanes
    return available_cores() if dynamic else max(1, min(available_cores(), len(cfg.cameras)))


def ort_settings(cfg: AppConfig, *, dynamic: bool = False) -> OrtSettings:
    """engine.onnxruntime, with its zeros (automatic) resolved for the run's lanes.

    With several lanes a lone crop runs on one thread: intra-op threads would only fight the other lanes.
    A lane's batch is still split into parallel single-threaded runs (one per core): running it whole on
    the lane's own thread saved ~1 ms of CPU per frame at 4 cameras on 2 cores but left the cores idle more
    (1.85-1.88 cores used instead of 1.91-1.92), and lost frames/s in 4 of the last 5 alternating pairs.
    What the config sets, it keeps.
    """
    ort = cfg.engine.onnxruntime
    several = processing_lanes(cfg, cpu=True, dynamic=dynamic) > 1
    return OrtSettings(
        intra_op_threads=ort.intra_op_threads or (1 if several else 0),
        parallel_runs=ort.parallel_runs,
        inter_op_threads=ort.inter_op_threads,
        graph_optimization=ort.graph_optimization,
    )


def create_estimator(cfg: AppConfig, backend: str, *, dynamic: bool = False) -> PoseEstimator:
    """The estimator for a resolved backend ('cpu' or 'tensorrt'); `dynamic` as for build_cpu_runner."""
    from blazestream.gst import preload
    from blazestream.models.cache import default_models_dir

    preload()  # the graph needs GStreamer next: it loads while the engines do
    models_dir = cfg.engine.models_dir or default_models_dir()
    settings = estimator_settings(cfg)
    if backend == "tensorrt":
        from blazestream.gpu_factory import create_tensorrt_estimator

        return create_tensorrt_estimator(models_dir, settings, cfg.engine.tensorrt, segmentation=cfg.pose.segmentation)
    from blazestream.factory import create_cpu_estimator

    return create_cpu_estimator(
        models_dir,
        settings,
        ort_settings(cfg, dynamic=dynamic),
        segmentation=cfg.pose.segmentation,
        precision=cfg.engine.precision,
    )


def create_sinks(cfg: AppConfig, metrics: Metrics, camera_ids: list[str]) -> list[ResultSink]:
    out = cfg.outputs
    sinks: list[ResultSink] = [metrics]
    if out.jsonl is not None:
        from blazestream.outputs.jsonl import JsonlSink

        sinks.append(JsonlSink(out.jsonl))
    if out.mqtt.url:
        from blazestream.outputs.mqtt import MqttSink

        sinks.append(MqttSink(out.mqtt.url, topic_prefix=out.mqtt.topic_prefix, qos=out.mqtt.qos))
    if out.redis.url:
        from blazestream.outputs.redis_streams import RedisStreamSink

        r = out.redis
        sinks.append(
            RedisStreamSink(
                out.redis.url,
                stream_prefix=r.stream_prefix,
                maxlen=r.maxlen,
                buffer=r.buffer,
                flush_timeout_s=r.flush_timeout_s,
                registry=metrics.registry,
            )
        )
    if out.video.path is not None or out.rtsp.port is not None:
        from blazestream.outputs.video import AnnotatedVideoSink

        sinks.append(
            AnnotatedVideoSink(
                camera_ids,
                path=out.video.path,
                rtsp_port=out.rtsp.port,
                rtsp_address=out.rtsp.address,
                rtsp_mount=out.rtsp.mount,
                width=out.video.width,
                height=out.video.height,
                bitrate_kbps=out.video.bitrate_kbps,
                fps_of=metrics.fps,
                failure_of=metrics.failure,
            )
        )
        if out.rtsp.port is not None:
            log.info("annotated video at rtsp://%s:%d%s", out.rtsp.address, out.rtsp.port, out.rtsp.mount)
    return sinks


def build_cpu_runner(
    cfg: AppConfig,
    estimator: PoseEstimator | None = None,
    extra_sinks: Sequence[ResultSink] = (),
    *,
    dynamic: bool = False,
) -> Runner:
    """The CPU graph (and the plain-GStreamer TensorRT graph, given a TensorRT estimator).

    `dynamic`: cameras are added and removed at run time (the HTTP API).
    """
    sources = source_specs(cfg)
    camera_ids = [s.camera_id for s in sources]
    estimator = estimator or create_estimator(cfg, "cpu")
    metrics = Metrics(camera_ids)
    if cfg.outputs.metrics_port is not None:
        metrics.serve(cfg.outputs.metrics_port, cfg.outputs.metrics_address)
        log.info("metrics at http://%s:%d/metrics", cfg.outputs.metrics_address, cfg.outputs.metrics_port)
    sinks = [*create_sinks(cfg, metrics, camera_ids), *extra_sinks]
    stage = PoseStage(
        estimator,
        max_poses={c.id: c.max_poses for c in cfg.cameras if c.max_poses},
        smooth=cfg.pose.smooth,
        timestamps=cfg.pose.timestamps,
        keep_images=any(type(s).__name__ == "AnnotatedVideoSink" or getattr(s, "needs_images", False) for s in sinks),
        redetect_frames=cfg.pose.detection.redetect_frames,
        redetect_s=cfg.pose.detection.redetect_s,
    )
    on_cpu = isinstance(estimator.landmarker, OnnxRuntimeEngine | OpenVinoEngine)
    lanes = processing_lanes(cfg, cpu=on_cpu, dynamic=dynamic)
    return Runner(cfg, sources, stage, sinks, metrics, dynamic=dynamic, lanes=lanes)
