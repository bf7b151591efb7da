"""The run control every backend shares (RunControl, StreamWatch) and the DeepStream graph's pure decisions
(ds_support), on real GLib/GStreamer where they touch it: no GPU, no DeepStream needed."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from blazestream.gst import gst
from blazestream.pipeline.control import RunControl, StreamWatch, source_index
from blazestream.pipeline.ds_support import (
    choose_nvenc,
    detector_geometry,
    encoder_description,
    frame_sizes,
    has_nvenc,
    is_video_pad,
    label_origin,
    osd_box,
    osd_skeleton,
    use_egl_surfaces,
    uses_new_nvstreammux,
    videotestsrc_description,
)
from blazestream.pipeline.nvinfer_config import nvinfer_letterbox
from blazestream.pose.types import Pose
from blazestream.source_spec import parse_source_uri

pytestmark = pytest.mark.gst


def test_duration_stops_once_and_the_graph_quits_when_drained() -> None:
    reasons: list[str] = []
    ticks = threading.Event()
    control: RunControl

    def on_stop(reason: str) -> None:
        reasons.append(reason)
        control.stop("again")  # idempotent, also from inside on_stop
        threading.Thread(target=control.quit).start()  # the graph drains elsewhere, then quits

    control = RunControl(0.2, on_stop=on_stop, tick=lambda now: ticks.set(), tick_ms=10)
    started = threading.Event()
    wall = control.run(started.set)
    assert started.is_set()
    assert reasons == ["--duration 0.2 s reached"]
    assert control.stopped_by == "--duration 0.2 s reached"
    assert ticks.is_set(), "the watchdog ticked while the loop ran"
    assert wall >= 0.2


def test_quit_before_the_loop_runs_returns_at_once() -> None:
    control = RunControl(None, on_stop=lambda reason: None)
    control.quit()
    assert control.run(lambda: None) >= 0.0
    assert control.stopped_by == "end of input"


def test_a_failing_tick_does_not_stop_the_watchdog() -> None:
    calls: list[float] = []
    control: RunControl

    def tick(now: float) -> None:
        calls.append(now)
        if len(calls) == 3:
            control.quit()
        raise RuntimeError("boom")

    control = RunControl(None, on_stop=lambda reason: None, tick=tick, tick_ms=5)
    control.run(lambda: None)
    assert len(calls) >= 3


def _pipeline_with_cameras() -> object:
    Gst = gst()
    pipeline = Gst.Pipeline.new("graph")
    broken = Gst.parse_bin_from_description("filesrc location=/nonexistent/cam.mp4 ! fakesink", False)
    broken.set_name("source-0")
    fine = Gst.parse_bin_from_description("videotestsrc is-live=true ! fakesink name=inner", False)
    fine.set_name("source-1")
    shared = Gst.ElementFactory.make("fakesink", "shared-sink")
    for element in (broken, fine, shared):
        pipeline.add(element)
    return pipeline


def test_a_camera_error_fails_that_camera_only() -> None:
    """A real GStreamer error from inside source-0 maps to camera cam0; the other camera is untouched."""
    Gst = gst()
    pipeline = _pipeline_with_cameras()
    up: list[tuple[str, bool]] = []
    watch = StreamWatch(["cam0", "cam1"], [False, True], stall_timeout_s=1.0, on_change=lambda c, u: up.append((c, u)))
    pipeline.set_state(Gst.State.PLAYING)  # type: ignore[attr-defined]
    try:
        message = pipeline.get_bus().timed_pop_filtered(5 * Gst.SECOND, Gst.MessageType.ERROR)  # type: ignore[attr-defined]
        assert message is not None
        error, _ = message.parse_error()
        assert watch.error(message.src, error.message) == (0, True)
        assert watch.error(message.src, "again") == (0, False), "a camera fails once"
        shared = pipeline.get_by_name("shared-sink")  # type: ignore[attr-defined]
        assert watch.error(shared, "elsewhere") is None, "not a camera's element: the run's problem"
        assert source_index(pipeline.get_by_name("inner")) == 1  # type: ignore[attr-defined]
    finally:
        pipeline.set_state(Gst.State.NULL)  # type: ignore[attr-defined]
    watch.frame("cam1")
    failures = watch.failures()
    assert set(failures) == {"cam0"}
    assert "cam.mp4" in failures["cam0"] or "resource" in failures["cam0"].lower()
    assert ("cam0", False) in up
    assert ("cam1", True) in up
    assert not watch.all_done
    watch.end("cam1")
    assert watch.all_done


def test_stall_watch_reports_silent_live_cameras_once_and_their_return() -> None:
    changes: list[tuple[str, bool]] = []
    watch = StreamWatch(
        ["live", "file"], [True, False], stall_timeout_s=3.0, on_change=lambda c, u: changes.append((c, u))
    )
    watch.frame("live", now=100.0)
    watch.frame("file", now=100.0)
    assert watch.check(102.0) == []
    assert watch.check(103.5) == ["live"], "files are never stalled: they block, they do not drop"
    assert watch.check(110.0) == [], "reported once per stall"
    watch.frame("live", now=111.0)
    assert changes == [("live", True), ("file", True), ("live", False), ("live", True)]
    assert watch.frames("live") == 2
    assert watch.failures() == {}


def test_a_camera_that_never_delivers_is_a_failure() -> None:
    watch = StreamWatch(["a", "b"], [True, True], stall_timeout_s=1.0)
    watch.frame("a")
    assert watch.failures() == {"b": "never delivered a frame"}


# -- DeepStream graph decisions -----------------------------------------------------------------------------


def test_new_nvstreammux_letterboxes_each_frame_at_its_own_size() -> None:
    infos = [
        {"source_width": 1920, "source_height": 1080},
        {"source_width": 640, "source_height": 480},
        {"source_width": 0, "source_height": 0},
    ]
    assert uses_new_nvstreammux({"USE_NEW_NVSTREAMMUX": "yes"})
    assert not uses_new_nvstreammux({})
    assert frame_sizes(infos, (1280, 720), new_mux=False) == [(1280, 720)] * 3
    sizes = frame_sizes(infos, (1280, 720), new_mux=True)
    assert sizes == [(1920, 1080), (640, 480), (1280, 720)]
    padding, frame_size = detector_geometry(sizes)
    assert padding.shape == (3, 4)
    assert frame_size.tolist() == [[1920, 1080], [640, 480], [1280, 720]]
    for row, (width, height) in zip(padding, sizes, strict=True):
        assert row == pytest.approx(nvinfer_letterbox(width, height, 224, 224))
    assert not np.allclose(padding[0], padding[1]), "16:9 and 4:3 frames have different letterboxes"


def _pose_at(points: list[tuple[float, float]]) -> Pose:
    landmarks = np.zeros((33, 5), np.float32)
    landmarks[:, 3:] = 1.0  # visible, present
    for i, (x, y) in enumerate(points):
        landmarks[i, :2] = (x, y)
    return Pose.from_rows(
        score=0.9,
        presence=0.9,
        roi=[0.02, 0.02, 0.5, 0.5, 0.3],
        landmarks=landmarks,
        world_landmarks=np.zeros((33, 3), np.float32),
    )


def test_osd_coordinates_are_clamped_into_the_frame() -> None:
    """nvdsosd's coordinates are unsigned: a landmark left of or above the frame must not go negative."""
    pose = _pose_at([(-0.2, -0.1), (1.3, 0.5), (0.5, 2.0)])
    lines, points = osd_skeleton(pose, 640, 480)
    assert points[:3] == [(0, 0), (639, 240), (320, 479)]
    assert all(0 <= v < 640 for line in lines for v in line[::2])
    assert all(0 <= v < 480 for line in lines for v in line[1::2])
    assert all(isinstance(v, int) for line in lines for v in line)
    left, top, width, height = osd_box(pose, 640, 480)
    assert min(left, top) >= 0
    assert min(width, height) > 0
    assert label_origin(left, top) == (round(left), 0), "a label above the frame's top edge moves into it"
    assert label_origin(100.0, 200.0) == (100, 200 - 2 * 12 - 4)


def test_egl_surfaces_only_on_integrated_gpus() -> None:
    assert use_egl_surfaces({"integrated": 1, "name": b"Orin"})
    assert not use_egl_surfaces({"integrated": 0, "name": b"NVIDIA GH200 480GB"}), "ARM servers are not Jetsons"
    assert not use_egl_surfaces({})


def test_pad_without_current_caps_is_linked_by_its_queried_caps() -> None:
    """decodebin may add a pad before it has caps: query them (as deepstream-test3) instead of skipping it."""
    Gst = gst()

    def pad(caps: str) -> object:
        template = Gst.PadTemplate.new("src", Gst.PadDirection.SRC, Gst.PadPresence.ALWAYS, Gst.Caps.from_string(caps))
        return Gst.Pad.new_from_template(template, "src")

    video = pad("video/x-raw(memory:NVMM)")
    assert video.get_current_caps() is None  # type: ignore[attr-defined]
    assert is_video_pad(video)
    assert not is_video_pad(pad("audio/x-raw"))


def test_every_nv_element_gets_the_gpu_and_nvenc_is_chosen_by_hardware() -> None:
    spec = parse_source_uri("test:?pattern=snow&width=320&height=240&fps=10")
    assert "nvvideoconvert gpu-id=2" in videotestsrc_description(spec, 2)
    nvenc = encoder_description("enc", 4000, gpu_id=1, nvenc=True)
    assert "nvvideoconvert gpu-id=1" in nvenc
    assert "nvv4l2h264enc name=enc gpu-id=1 bitrate=4000000" in nvenc
    assert "gpu-id" not in encoder_description("enc", 4000, gpu_id=0, nvenc=True, integrated=True).split("!")[1]
    assert "x264enc" in encoder_description("enc", 4000, gpu_id=1, nvenc=False)
    assert not choose_nvenc(0, integrated=True, element_present=True, jetson_model="NVIDIA Jetson Orin Nano 8GB")
    assert choose_nvenc(0, integrated=True, element_present=True, jetson_model="NVIDIA Jetson AGX Orin")
    assert not choose_nvenc(0, integrated=False, element_present=False)
    assert choose_nvenc(0, integrated=False, element_present=True) == has_nvenc(0)
    if not Path("/dev/nvidiactl").exists():
        assert not has_nvenc(0), "no NVIDIA driver here: no NVENC"
