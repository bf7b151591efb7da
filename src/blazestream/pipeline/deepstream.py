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

import dataclasses
import itertools
import logging
import math
import queue
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from blazestream.config import AppConfig, RtspOutputConfig, VideoOutputConfig
from blazestream.engines.cupy_api import load_cupy
from blazestream.errors import BlazestreamError
from blazestream.gst import gst, require_elements, rtsp_server
from blazestream.outputs.base import ResultSink
from blazestream.outputs.fanout import SinkFanout
from blazestream.outputs.metrics import Metrics
from blazestream.pipeline.control import RunControl, StreamWatch
from blazestream.pipeline.ds_support import (
    choose_nvenc,
    encoder_description,
    is_video_pad,
    jetson_model,
    uses_new_nvstreammux,
    videotestsrc_description,
)
from blazestream.pipeline.nvinfer_config import DetectorInferConfig, write_detector_config
from blazestream.pipeline.runner import RunSummary
from blazestream.pipeline.stage import PoseStage
from blazestream.results import FrameResult
from blazestream.source_spec import SourceSpec
from blazestream.uris import redact_text

if TYPE_CHECKING:
    from blazestream.pipeline.ds_pose import PoseProbe

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
    ds = cfg.deepstream
    if spec.kind == "test":
        bin_ = Gst.parse_bin_from_description(videotestsrc_description(spec, ds.gpu_id), True)
        bin_.set_name(f"source-{index}")
        return bin_
    element = _make("nvurisrcbin", f"source-{index}", uri=spec.uri, gpu_id=ds.gpu_id)
    if spec.kind == "rtsp":
        src = cfg.sources
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
        if sink_pad.is_linked() or not is_video_pad(pad):
            return
        if pad.link(sink_pad) != Gst.PadLinkReturn.OK:
            log.error("%s: cannot link %s to the muxer", source.get_name(), pad.get_name())

    source.connect("pad-added", on_pad_added)


class _OutputWriter:
    """Writes FrameResults to the sinks from its own thread; a failing sink is switched off, the others go on."""

    def __init__(
        self,
        sinks: Sequence[ResultSink],
        summary: RunSummary,
        metrics: Metrics | None = None,
        watch: StreamWatch | None = None,
    ) -> None:
        on_failure = metrics.output_failed if metrics is not None else None
        self.outputs = SinkFanout(sinks, summary.output_errors, on_failure=on_failure)
        self.summary = summary
        self.metrics = metrics
        self.watch = watch
        self._queue: queue.Queue[list[FrameResult] | None] = queue.Queue(maxsize=256)
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="outputs", daemon=True)
        self._thread.start()

    def publish(self, results: list[FrameResult]) -> None:
        self.summary.count(results)
        for result in results:
            if self.watch is not None:
                self.watch.frame(result.stream)
            if self.metrics is not None:
                self.metrics.frame_in(result.stream)
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


class DeepStreamRunner:
    """Owns the DeepStream pipeline and the output writer; the run's control is the CPU runner's (RunControl).

    A bus ERROR from inside camera N's source bin fails camera N only: its source is stopped and its
    muxer pad gets EOS, the others go on. An error anywhere else stops the run with EOS through the graph,
    so the MP4 is finalized. The summary is keyed by camera id, like the CPU runner's.
    """

    def __init__(
        self,
        cfg: AppConfig,
        sources: Sequence[SourceSpec],
        *,
        infer_config: Path,
        probe_factory: Callable[[Callable[[list[FrameResult]], None]], PoseProbe],
        sinks: Sequence[ResultSink],
        metrics: Metrics | None = None,
    ) -> None:
        if not sources:
            raise BlazestreamError("no cameras: give --source URI (or cameras: in the config)")
        self.cfg = cfg
        self.sources = list(sources)
        self.infer_config = infer_config
        self.metrics = metrics
        self.summary = RunSummary(frames={s.camera_id: 0 for s in sources}, poses={s.camera_id: 0 for s in sources})
        self.watch = StreamWatch(
            [s.camera_id for s in sources],
            [s.live for s in sources],
            stall_timeout_s=cfg.sources.stall_timeout_s,
            on_change=metrics.camera_up if metrics is not None else None,
        )
        self.control = RunControl(cfg.duration_s, on_stop=self._on_stop, tick=self.watch.check)
        self.writer = _OutputWriter(sinks, self.summary, metrics, self.watch)
        self.probe: PoseProbe = probe_factory(self.writer.publish)
        self._mux: Gst.Element | None = None
        self.pipeline = self._build()
        self._rtsp: Any = None

    def _build(self) -> Gst.Pipeline:
        cfg, ds = self.cfg, self.cfg.deepstream
        pipeline = Gst.Pipeline.new("blazestream-deepstream")
        mux = _make("nvstreammux", "mux", batch_size=len(self.sources), gpu_id=ds.gpu_id)
        if not uses_new_nvstreammux():  # the new muxer has none of these
            set_props(
                mux,
                width=ds.mux_width,
                height=ds.mux_height,
                batched_push_timeout=int(cfg.batch.timeout_ms * 1000),
                live_source=any(s.live for s in self.sources),
            )
        self._mux = mux
        pipeline.add(mux)
        for index, spec in enumerate(self.sources):
            source = source_element(spec, index, cfg)
            pipeline.add(source)
            _link_to_mux(source, mux, index)
        to_rgba = _make("nvvideoconvert", "to-rgba", gpu_id=ds.gpu_id)
        rgba = _make("capsfilter", "rgba", caps=Gst.Caps.from_string("video/x-raw(memory:NVMM),format=RGBA"))
        infer = _make(
            "nvinfer",
            "pose-detector",
            config_file_path=str(self.infer_config),
            batch_size=len(self.sources),
            gpu_id=ds.gpu_id,
        )
        rows = int(math.sqrt(len(self.sources)))
        columns = math.ceil(len(self.sources) / rows)
        video = cfg.outputs.video
        tiler = _make(
            "nvmultistreamtiler",
            "tiler",
            rows=rows,
            columns=columns,
            width=video.width,
            height=video.height,
            gpu_id=ds.gpu_id,
        )
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
        nvenc = False
        if video.path is not None or cfg.outputs.rtsp.port is not None:
            integrated = bool(getattr(self.probe, "integrated", False))
            nvenc = choose_nvenc(
                ds.gpu_id,
                integrated=integrated,
                element_present=Gst.ElementFactory.find("nvv4l2h264enc") is not None,
                jetson_model=jetson_model() if integrated else "",
            )
            log.info("annotated video encoded with %s", "NVENC" if nvenc else "x264 (this GPU has no NVENC)")

        def encoder(name: str) -> str:
            return encoder_description(name, video.bitrate_kbps, gpu_id=ds.gpu_id, nvenc=nvenc)

        if video.path is not None:
            self._add_branch(
                pipeline,
                tee,
                f'queue ! {encoder("file-encoder")} ! mp4mux ! filesink location="{Path(video.path).resolve()}"',
            )
        if cfg.outputs.rtsp.port is not None:
            self._add_branch(
                pipeline,
                tee,
                f"queue leaky=downstream max-size-buffers=4 ! {encoder('rtsp-encoder')} ! "
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
        if not server.attach(None):
            raise OSError(f"RTSP output: cannot listen on {out.address}:{out.port} (is the port taken?)")
        self._rtsp = server
        log.info("annotated video at rtsp://%s:%d%s", out.address, out.port, out.mount)

    # -- control -------------------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        """EOS through the graph so the MP4 is finalized; quit after a grace period regardless."""
        self.control.stop(reason)

    def _on_stop(self, reason: str) -> None:
        self.summary.stopped_by = reason
        self.pipeline.send_event(Gst.Event.new_eos())
        GLib.timeout_add(int(EOS_GRACE_S * 1000), self._grace_over)

    def _grace_over(self) -> bool:
        log.warning("no EOS within %.0f s of the stop; the video file may be incomplete", EOS_GRACE_S)
        self.control.quit()
        return False

    def _on_message(self, _bus: Gst.Bus, message: Gst.Message) -> None:
        if message.type == Gst.MessageType.EOS:
            for camera_id in self.watch.camera_ids:
                self.watch.end(camera_id)
            self.control.quit()
        elif message.type == Gst.MessageType.ERROR:
            error, debug = message.parse_error()
            log.debug("bus error from %s: %s", message.src.get_name() if message.src else "?", debug)
            self.on_error(message.src, redact_text(str(error.message)))
        elif message.type == Gst.MessageType.WARNING:
            warning, _ = message.parse_warning()
            name = message.src.get_name() if message.src else "pipeline"
            log.warning("%s: %s", name, redact_text(str(warning.message)))

    def on_error(self, element: Any, text: str) -> None:
        """One camera's error fails that camera; any other element's error stops the run (with EOS)."""
        found = self.watch.error(element, text)
        if found is not None:
            index, first = found
            spec = self.sources[index]
            if first:
                log.error("%s (%s): %s; the other cameras go on", spec.camera_id, spec.display, text)
                GLib.idle_add(self._drop_source, index)
            if self.watch.all_done:
                self.control.stop("every camera failed or ended")
            return
        where = element.get_name() if element is not None else "pipeline"
        log.error("%s: %s; stopping", where, text)
        for camera in self.watch.camera_ids:
            self.watch.fail(camera, f"pipeline error in {where}: {text}")
        self.control.stop(f"pipeline error in {where}")

    def _drop_source(self, index: int) -> bool:
        """Stop a failed camera's source and end its muxer stream, so the batch stops waiting for it."""
        source = self.pipeline.get_by_name(f"source-{index}")
        if source is not None:
            source.set_state(Gst.State.NULL)
        sink_pad = self._mux.get_static_pad(f"sink_{index}") if self._mux is not None else None
        if sink_pad is not None:
            sink_pad.send_event(Gst.Event.new_eos())
        return False

    def run(self) -> RunSummary:
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        handler = bus.connect("message", self._on_message)

        def start() -> None:
            self._serve_rtsp()
            if self.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
                for camera in self.watch.camera_ids:
                    self.watch.fail(camera, "the DeepStream pipeline did not start (see the errors above)")
                self.control.quit()

        try:
            self.summary.wall_s = self.control.run(start)
        finally:
            self.pipeline.set_state(Gst.State.NULL)
            bus.disconnect(handler)
            bus.remove_signal_watch()
            self.writer.close()
            self._rtsp = None
            self.probe.stage.estimator.close()
        self.summary.stopped_by = self.control.stopped_by
        for camera_id, why in self.watch.failures().items():
            self.summary.failures.setdefault(camera_id, why)
        return self.summary


def build_deepstream_runner(cfg: AppConfig) -> DeepStreamRunner:
    """Fresh engines, the generated nvinfer config, the probe and the outputs: a runner ready to `run()`.

    Every CUDA object (TensorRT context, crop kernel, CuPy buffers) is made on `deepstream.gpu_id`, and the
    probe runs its batches on that device, like every nv element of the graph.
    """
    from blazestream.engines.tensorrt import TensorRTEngine
    from blazestream.estimator import PoseEstimator
    from blazestream.gpu_factory import fresh_engines
    from blazestream.kernels.cuda_crop import CudaCropper
    from blazestream.models.cache import POSE_DETECTION, default_models_dir
    from blazestream.pipeline.ds_pose import PoseProbe
    from blazestream.pipeline.graph import create_sinks, estimator_settings, source_specs

    require_elements(*REQUIRED_ELEMENTS)
    sources = source_specs(cfg)
    camera_ids = [s.camera_id for s in sources]
    trt_cfg = cfg.engine.tensorrt
    gpu_id = cfg.deepstream.gpu_id
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
            gpu_id=gpu_id,
            disable_output_host_copy=cfg.deepstream.disable_output_host_copy,
            tensor_meta_pool_size=cfg.deepstream.tensor_meta_pool_size,
        ),
    )
    cp = load_cupy()
    with cp.cuda.Device(gpu_id):
        # nvinfer runs the whole-frame detector (no detector windows on this graph): this estimator has
        # no detector of its own, the probe hands the stage its detections.
        settings = dataclasses.replace(estimator_settings(cfg), windows=None)
        estimator = PoseEstimator(None, TensorRTEngine(landmark_plan), settings, CudaCropper())
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

    def make_probe(publish: Callable[[list[FrameResult]], None]) -> PoseProbe:
        return PoseProbe(
            cp=cp,
            stage=stage,
            camera_ids=camera_ids,
            mux_size=(cfg.deepstream.mux_width, cfg.deepstream.mux_height),
            publish=publish,
            draw=cfg.deepstream.draw,
            gpu_id=gpu_id,
            new_mux=uses_new_nvstreammux(),
        )

    return DeepStreamRunner(
        cfg, sources, infer_config=infer_config, probe_factory=make_probe, sinks=sinks, metrics=metrics
    )
