"""The DeepStream graph (backend `deepstream`), built from the same config and SourceSpecs as the CPU graph.

    nvurisrcbin (one per camera: RTSP over TCP with reconnects, files once)
      -> nvstreammux (batch = cameras) -> nvvideoconvert (RGBA) -> nvinfer (BlazePose detector, raw tensors)
      -> [PoseProbe: GPU decode, rotated crops, TensorRT landmarks, object + display meta, FrameResults]
      -> nvmultistreamtiler -> nvvideoconvert -> nvdsosd -> tee -> fakesink (sync=0) | MP4 file | RTSP

FrameResults go to the same outputs as the CPU graph (JSON Lines, MQTT, metrics) from a writer thread,
so a slow output never blocks the probe. `build_deepstream_runner(cfg).run()` returns a RunSummary
like the CPU Runner. Guarded module: it imports pyds through nvds; import it lazily.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from blazestream.config import AppConfig, RtspOutputConfig, VideoOutputConfig
from blazestream.engines.cupy_api import load_cupy
from blazestream.errors import BlazestreamError
from blazestream.outputs.base import FrameResult, ResultSink
from blazestream.outputs.fanout import SinkFanout
from blazestream.outputs.metrics import Metrics
from blazestream.pipeline.ds_pose import NvinferEstimator, PoseProbe
from blazestream.pipeline.gst import gst, require_elements, rtsp_server
from blazestream.pipeline.nvinfer_config import DetectorInferConfig, write_detector_config
from blazestream.pipeline.runner import RunSummary
from blazestream.pipeline.spec import SourceSpec
from blazestream.pipeline.stage import PoseStage

gst()  # gi.require_version and Gst.init, before the typelibs are imported (typed by pygobject-stubs)
from gi.repository import GLib, Gst  # noqa: E402

log = logging.getLogger(__name__)

RTP_TCP_ONLY = 4
"""nvurisrcbin select-rtp-protocol: 4 = TCP only (cameras behind NAT and lossy Wi-Fi)."""
RTSP_UDP_PORT = 5400
EOS_GRACE_S = 10.0
REQUIRED_ELEMENTS = ("nvurisrcbin", "nvstreammux", "nvvideoconvert", "nvinfer", "nvmultistreamtiler", "nvdsosd")


def _make(factory: str, name: str, **props: Any) -> Gst.Element:
    element = Gst.ElementFactory.make(factory, name)
    if element is None:
        raise BlazestreamError(f"cannot create the GStreamer element {factory!r} ({name}): is DeepStream installed?")
    set_props(element, **props)
    return element


def set_props(element: Gst.Element, **props: Any) -> None:
    """Set properties given with underscores; one this DeepStream version lacks is logged, not fatal."""
    for key, value in props.items():
        name = key.replace("_", "-")
        # pygobject-stubs put find_property on ObjectClass only; PyGObject has it on every object.
        if cast(Any, element).find_property(name) is None:
            log.warning("%s has no property %r in this DeepStream version; not set", element.get_name(), name)
            continue
        element.set_property(name, value)


def source_element(spec: SourceSpec, index: int, cfg: AppConfig) -> Gst.Element:
    """The one source builder: nvurisrcbin for files, RTSP and V4L2; a test pattern bin for `test:`."""
    if spec.kind == "test":
        options = dict(spec.options)
        bin_ = Gst.parse_bin_from_description(
            f"videotestsrc is-live=true pattern={options.get('pattern', 'ball')} ! "
            f"video/x-raw,width={options.get('width', 1280)},height={options.get('height', 720)},"
            f"framerate={options.get('fps', 30)}/1 ! nvvideoconvert ! video/x-raw(memory:NVMM),format=NV12",
            True,
        )
        bin_.set_name(f"source-{index}")
        return bin_
    element = _make("nvurisrcbin", f"source-{index}", uri=spec.uri)
    if spec.kind == "rtsp":
        ds, src = cfg.deepstream, cfg.sources
        set_props(
            element,
            rtsp_reconnect_interval=ds.rtsp_reconnect_interval_s,
            rtsp_reconnect_attempts=ds.rtsp_reconnect_attempts,
            latency=src.rtsp_latency_ms,
            drop_on_latency=True,
        )
        if src.rtsp_protocols == "tcp":
            set_props(element, select_rtp_protocol=RTP_TCP_ONLY)
    elif spec.kind == "file":
        set_props(element, file_loop=False)
    return element


def _link_to_mux(source: Gst.Element, mux: Gst.Element, index: int) -> None:
    """Link the source's video pad to the muxer's sink_<index>, now (test bins) or when it appears."""
    sink_pad = mux.request_pad_simple(f"sink_{index}")
    if sink_pad is None:
        raise BlazestreamError(f"nvstreammux refused a sink pad for camera {index}")
    static = source.get_static_pad("src")
    if static is not None:
        static.link(sink_pad)
        return

    def on_pad_added(_element: Gst.Element, pad: Gst.Pad) -> None:
        caps = pad.get_current_caps()  # decodebin's pads carry caps when they are added (as in deepstream-test3)
        if caps is None or not caps.get_structure(0).get_name().startswith("video") or sink_pad.is_linked():
            return
        if pad.link(sink_pad) != Gst.PadLinkReturn.OK:
            log.error("%s: cannot link %s to the muxer", source.get_name(), pad.get_name())

    source.connect("pad-added", on_pad_added)


class _OutputWriter:
    """Writes FrameResults to the sinks from its own thread; a failing sink is switched off, the others go on."""

    def __init__(self, sinks: Sequence[ResultSink], summary: RunSummary) -> None:
        self.outputs = SinkFanout(sinks, summary.output_errors)
        self.summary = summary
        self._queue: queue.Queue[list[FrameResult] | None] = queue.Queue(maxsize=256)
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="outputs", daemon=True)
        self._thread.start()

    def publish(self, results: list[FrameResult]) -> None:
        self.summary.count(results)
        try:
            self._queue.put_nowait(results)
        except queue.Full:  # never block the probe (it holds nvinfer's tensor pool)
            self.dropped += len(results)

    def _run(self) -> None:
        while (results := self._queue.get()) is not None:
            self.outputs.write(results)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)
        if self.dropped:
            self.summary.output_errors.append(f"outputs fell behind: {self.dropped} frame results were not written")
        self.outputs.close()


def _encoder_branch(name: str, bitrate_kbps: int) -> str:
    """H.264 from RGBA NVMM: NVENC where there is one, else x264 (Orin Nano has no NVENC)."""
    if Gst.ElementFactory.find("nvv4l2h264enc") is not None:
        return (
            f"nvvideoconvert ! nvv4l2h264enc name={name} bitrate={bitrate_kbps * 1000} insert-sps-pps=true ! h264parse"
        )
    return (
        "nvvideoconvert ! video/x-raw,format=I420 ! "
        f"x264enc name={name} tune=zerolatency speed-preset=ultrafast bitrate={bitrate_kbps} ! h264parse"
    )


class DeepStreamRunner:
    """Owns the DeepStream pipeline, its main loop, signals and the output writer."""

    def __init__(
        self,
        cfg: AppConfig,
        sources: Sequence[SourceSpec],
        *,
        infer_config: Path,
        probe_factory: Callable[[Callable[[list[FrameResult]], None]], PoseProbe],
        sinks: Sequence[ResultSink],
    ) -> None:
        if not sources:
            raise BlazestreamError("no cameras: give --source URI (or cameras: in the config)")
        self.cfg = cfg
        self.sources = list(sources)
        self.infer_config = infer_config
        self.summary = RunSummary(frames={s.camera_id: 0 for s in sources}, poses={s.camera_id: 0 for s in sources})
        self.writer = _OutputWriter(sinks, self.summary)
        self.probe: PoseProbe = probe_factory(self.writer.publish)
        self.pipeline = self._build()
        self._loop: Any = None
        self._rtsp: Any = None
        self._stopping = False

    def _build(self) -> Gst.Pipeline:
        cfg, ds = self.cfg, self.cfg.deepstream
        pipeline = Gst.Pipeline.new("blazestream-deepstream")
        mux = _make("nvstreammux", "mux", batch_size=len(self.sources), gpu_id=ds.gpu_id)
        if os.environ.get("USE_NEW_NVSTREAMMUX", "").lower() != "yes":  # the new muxer has none of these
            set_props(
                mux,
                width=ds.mux_width,
                height=ds.mux_height,
                batched_push_timeout=int(cfg.batch.timeout_ms * 1000),
                live_source=any(s.live for s in self.sources),
            )
        pipeline.add(mux)
        for index, spec in enumerate(self.sources):
            source = source_element(spec, index, cfg)
            pipeline.add(source)
            _link_to_mux(source, mux, index)
        to_rgba = _make("nvvideoconvert", "to-rgba", gpu_id=ds.gpu_id)
        rgba = _make("capsfilter", "rgba", caps=Gst.Caps.from_string("video/x-raw(memory:NVMM),format=RGBA"))
        infer = _make("nvinfer", "pose-detector", config_file_path=str(self.infer_config), batch_size=len(self.sources))
        rows = int(math.sqrt(len(self.sources)))
        columns = math.ceil(len(self.sources) / rows)
        video = cfg.outputs.video
        tiler = _make("nvmultistreamtiler", "tiler", rows=rows, columns=columns, width=video.width, height=video.height)
        to_osd = _make("nvvideoconvert", "to-osd", gpu_id=ds.gpu_id)
        osd = _make("nvdsosd", "osd", gpu_id=ds.gpu_id)
        tee = _make("tee", "outputs")
        chain = [mux, to_rgba, rgba, infer, tiler, to_osd, osd, tee]
        for element in chain[1:]:
            pipeline.add(element)
        for upstream, downstream in itertools.pairwise(chain):
            if not upstream.link(downstream):
                raise BlazestreamError(f"cannot link {upstream.get_name()} to {downstream.get_name()}")
        infer_src = infer.get_static_pad("src")
        assert infer_src is not None  # nvinfer always has one
        infer_src.add_probe(Gst.PadProbeType.BUFFER, self.probe)
        self._add_branch(pipeline, tee, "queue leaky=downstream max-size-buffers=4 ! fakesink sync=false async=false")
        if video.path is not None:
            self._add_branch(
                pipeline,
                tee,
                f"queue ! {_encoder_branch('file-encoder', video.bitrate_kbps)} ! mp4mux ! "
                f'filesink location="{Path(video.path).resolve()}"',
            )
        if cfg.outputs.rtsp.port is not None:
            self._add_branch(
                pipeline,
                tee,
                f"queue leaky=downstream max-size-buffers=4 ! {_encoder_branch('rtsp-encoder', video.bitrate_kbps)} ! "
                f"rtph264pay config-interval=1 pt=96 ! "
                f"udpsink host=127.0.0.1 port={RTSP_UDP_PORT} sync=false async=false",
            )
        return pipeline

    def _add_branch(self, pipeline: Gst.Pipeline, tee: Gst.Element, description: str) -> None:
        branch = Gst.parse_bin_from_description(description, True)
        pipeline.add(branch)
        tee.link(branch)

    def _serve_rtsp(self) -> None:
        out = self.cfg.outputs.rtsp
        if out.port is None:
            return
        server_module = rtsp_server()
        server = server_module.RTSPServer.new()
        server.set_address(out.address)
        server.set_service(str(out.port))
        factory = server_module.RTSPMediaFactory.new()
        factory.set_launch(
            f'( udpsrc name=pay0 port={RTSP_UDP_PORT} buffer-size=524288 caps="application/x-rtp, media=video, '
            'clock-rate=90000, encoding-name=(string)H264, payload=96" )'
        )
        factory.set_shared(True)
        server.get_mount_points().add_factory(out.mount, factory)
        server.attach(None)
        self._rtsp = server
        log.info("annotated video at rtsp://%s:%d%s", out.address, out.port, out.mount)

    def stop(self, reason: str) -> None:
        """EOS through the graph so the MP4 is finalized; quit after a grace period regardless."""
        if self._stopping:
            return
        self._stopping = True
        self.summary.stopped_by = reason
        log.info("stopping: %s", reason)
        self.pipeline.send_event(Gst.Event.new_eos())
        GLib.timeout_add(int(EOS_GRACE_S * 1000), self._quit)

    def _quit(self) -> bool:
        if self._loop is not None:
            self._loop.quit()
        return False

    def _on_message(self, _bus: Gst.Bus, message: Gst.Message) -> None:
        if message.type == Gst.MessageType.EOS:
            self._quit()
        elif message.type == Gst.MessageType.ERROR:
            error, debug = message.parse_error()
            source = (message.src.get_name() if message.src is not None else None) or "pipeline"
            self.summary.failures[source] = f"{error.message} ({debug})"
            log.error("%s: %s", source, error.message)
            self._quit()
        elif message.type == Gst.MessageType.WARNING:
            warning, _ = message.parse_warning()
            log.warning("%s: %s", message.src.get_name() if message.src else "pipeline", warning.message)

    def run(self) -> RunSummary:
        self._loop = GLib.MainLoop()
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self._on_message)
        handlers = [
            GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, self._on_signal, "SIGINT"),
            GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, self._on_signal, "SIGTERM"),
        ]
        if self.cfg.duration_s:
            handlers.append(GLib.timeout_add(int(self.cfg.duration_s * 1000), self._on_duration))
        self._serve_rtsp()
        start = time.monotonic()
        if self.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            self.summary.failures["pipeline"] = "the DeepStream pipeline did not start (see the errors above)"
        else:
            try:
                self._loop.run()
            finally:
                for handler in handlers:
                    GLib.source_remove(handler)
        self.pipeline.set_state(Gst.State.NULL)
        bus.remove_signal_watch()
        self.writer.close()
        self.summary.wall_s = time.monotonic() - start
        return self.summary

    def _on_signal(self, name: str) -> bool:
        self.stop(f"{name} received")
        return True

    def _on_duration(self) -> bool:
        self.stop(f"--duration {self.cfg.duration_s:g} s reached")
        return False


def build_deepstream_runner(cfg: AppConfig) -> DeepStreamRunner:
    """Fresh engines, the generated nvinfer config, the probe and the outputs: a runner ready to `run()`."""
    from blazestream.engines.cuda_crop import CudaCropper
    from blazestream.engines.gpu_factory import fresh_engines
    from blazestream.engines.models import POSE_DETECTION, default_models_dir
    from blazestream.engines.tensorrt import TensorRTEngine
    from blazestream.estimator import PoseEstimator
    from blazestream.pipeline.ds_pose import NvinferDetector
    from blazestream.pipeline.graph import create_sinks, estimator_settings, source_specs

    require_elements(*REQUIRED_ELEMENTS)
    sources = source_specs(cfg)
    camera_ids = [s.camera_id for s in sources]
    trt_cfg = cfg.engine.tensorrt
    models_dir = cfg.engine.models_dir or default_models_dir()
    (detector_plan, _), (landmark_plan, _) = fresh_engines(
        models_dir, trt_cfg, segmentation=cfg.pose.segmentation, min_batch=len(sources)
    )
    infer_config = write_detector_config(
        detector_plan.with_name(f"{detector_plan.stem}.nvinfer.txt"),
        DetectorInferConfig(
            engine=detector_plan,
            model=POSE_DETECTION,
            batch_size=len(sources),
            precision=trt_cfg.precision,
            gpu_id=cfg.deepstream.gpu_id,
            disable_output_host_copy=cfg.deepstream.disable_output_host_copy,
            tensor_meta_pool_size=cfg.deepstream.tensor_meta_pool_size,
        ),
    )
    base = PoseEstimator(NvinferDetector(), TensorRTEngine(landmark_plan), estimator_settings(cfg), CudaCropper())
    estimator = NvinferEstimator(base)
    metrics = Metrics(camera_ids)
    if cfg.outputs.metrics_port is not None:
        metrics.serve(cfg.outputs.metrics_port, cfg.outputs.metrics_address)
    # Video and RTSP outputs are drawn by nvdsosd inside the graph, not by the CPU AnnotatedVideoSink.
    json_outputs = cfg.model_copy(
        update={"outputs": cfg.outputs.model_copy(update={"video": VideoOutputConfig(), "rtsp": RtspOutputConfig()})}
    )
    sinks = create_sinks(json_outputs, metrics, camera_ids)
    stage = PoseStage(
        estimator,
        max_poses={c.id: c.max_poses for c in cfg.cameras if c.max_poses},
        smooth=cfg.pose.smooth,
        timestamps=cfg.pose.timestamps,
    )
    cp = load_cupy()

    def make_probe(publish: Any) -> PoseProbe:
        return PoseProbe(
            cp=cp,
            estimator=estimator,
            stage=stage,
            camera_ids=camera_ids,
            mux_size=(cfg.deepstream.mux_width, cfg.deepstream.mux_height),
            publish=publish,
            draw=cfg.deepstream.draw,
        )

    return DeepStreamRunner(cfg, sources, infer_config=infer_config, probe_factory=make_probe, sinks=sinks)
