"""`blazestreampose`: a GStreamer element that finds poses in RGB video and posts them on the bus.

For applications that build their own GStreamer pipelines: put it after `videoconvert !
video/x-raw,format=RGB` and read `blazestream-poses` element messages, each carrying the JSON Lines record
of one frame (`record` field, a JSON string). Buffers pass through unchanged. It tracks people like
`blazestream run` does (detector only when a track is lost) with a CPU estimator from the model cache.

    from blazestream.plugins.pose_element import register
    register()
    pipeline = Gst.parse_launch("filesrc location=clip.mp4 ! decodebin ! videoconvert ! "
                                "video/x-raw,format=RGB ! blazestreampose max-poses=2 ! fakesink")

Inference runs in the element's streaming thread, as in any GStreamer filter; for many cameras at once,
`blazestream run` batches them instead.
"""

from __future__ import annotations

import json
import time
from typing import Any, ClassVar

from blazestream.errors import MissingDependencyError
from blazestream.gst import buffer_to_array, gst

ELEMENT_NAME = "blazestreampose"
MESSAGE_NAME = "blazestream-poses"

_registered: list[Any] = []


def register() -> Any:
    """Register the element with GStreamer in this process (idempotent); returns its class."""
    if _registered:
        return _registered[0]
    Gst = gst()
    import importlib.util

    import gi

    if importlib.util.find_spec("gi.overrides.Gst") is None:
        raise MissingDependencyError(
            "the blazestreampose element needs GStreamer's Python overrides (gst-python): apt-get install "
            "python3-gst-1.0; `make setup` links them into the virtualenv"
        )

    gi.require_version("GstBase", "1.0")
    from gi.repository import GObject, GstBase

    from blazestream.estimator import EstimatorSettings
    from blazestream.factory import create_cpu_estimator
    from blazestream.models.cache import default_models_dir
    from blazestream.pipeline.frames import Frame
    from blazestream.pipeline.stage import PoseStage

    caps = Gst.Caps.from_string("video/x-raw,format=RGB")

    class BlazePoseElement(GstBase.BaseTransform):
        __gstmetadata__ = (
            "BlazePose",
            "Filter/Analyzer/Video",
            "Finds 33-keypoint body poses (MediaPipe BlazePose) and posts them as element messages",
            "blazestream",
        )
        __gsttemplates__ = (
            Gst.PadTemplate.new("sink", Gst.PadDirection.SINK, Gst.PadPresence.ALWAYS, caps),
            Gst.PadTemplate.new("src", Gst.PadDirection.SRC, Gst.PadPresence.ALWAYS, caps),
        )
        __gproperties__: ClassVar[dict[str, tuple[Any, ...]]] = {
            "max-poses": (int, "max poses", "People tracked per stream", 1, 32, 1, GObject.ParamFlags.READWRITE),
            "models-dir": (
                str,
                "models dir",
                "Model cache (default: the user cache)",
                "",
                GObject.ParamFlags.READWRITE,
            ),
        }

        def __init__(self) -> None:
            super().__init__()
            self.set_passthrough(True)
            self.max_poses = 1
            self.models_dir = ""
            self._stage: PoseStage | None = None
            self._caps: Any = None
            self._index = 0

        def do_get_property(self, prop: Any) -> Any:
            return self.max_poses if prop.name == "max-poses" else self.models_dir

        def do_set_property(self, prop: Any, value: Any) -> None:
            if prop.name == "max-poses":
                self.max_poses = int(value)
            else:
                self.models_dir = str(value)

        def do_start(self) -> bool:
            from pathlib import Path

            models = Path(self.models_dir) if self.models_dir else default_models_dir()
            estimator = create_cpu_estimator(models, EstimatorSettings(max_poses=self.max_poses))
            self._stage = PoseStage(estimator)
            self._index = 0
            return True

        def do_set_caps(self, incaps: Any, outcaps: Any) -> bool:
            self._caps = incaps
            return True

        def do_transform_ip(self, buffer: Any) -> Any:
            assert self._stage is not None
            image = buffer_to_array(buffer, self._caps)
            pts = buffer.pts / 1e9 if buffer.pts != Gst.CLOCK_TIME_NONE else float(self._index)
            frame = Frame("stream", self._index, pts, image, time.monotonic(), 1)
            self._index += 1
            (result,) = self._stage.process([frame])
            structure = Gst.Structure.new_empty(MESSAGE_NAME)
            structure.set_value("record", json.dumps(result.to_json(), separators=(",", ":")))
            self.post_message(Gst.Message.new_element(self, structure))
            return Gst.FlowReturn.OK

    GObject.type_register(BlazePoseElement)
    if not Gst.Element.register(None, ELEMENT_NAME, Gst.Rank.NONE, BlazePoseElement):
        raise RuntimeError(f"could not register the {ELEMENT_NAME} element")
    _registered.append(BlazePoseElement)
    return BlazePoseElement
