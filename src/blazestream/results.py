"""The result of one processed frame: made by the pose stage, read by every output (JSON, video, API)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from blazestream.pose.types import Pose


@dataclass(frozen=True)
class FrameResult:
    """The poses of one frame of one camera, with what outputs need to place and time them."""

    stream: str
    """Camera id."""
    frame: int
    """0-based index of the frame in its source (gaps mean frames a live source dropped)."""
    pts: float
    """Presentation time in seconds (from the source's buffer timestamps)."""
    width: int
    height: int
    poses: tuple[Pose, ...]
    image: npt.NDArray[np.uint8] | None
    """The RGB frame, kept only when an output draws on it (video, RTSP)."""
    arrived: float
    """time.monotonic() when the frame left its decoder: the start of the end-to-end latency."""
    mask: npt.NDArray[np.uint8] | None = None
    """Instance mask (pixel = index of the pose in `poses` + 1), kept with `image` when segmentation is on."""

    def to_json(self) -> dict[str, Any]:
        """The JSON Lines record (a contract other tools read)."""
        return {
            "stream": self.stream,
            "frame": self.frame,
            "pts": round(self.pts, 6),
            "width": self.width,
            "height": self.height,
            "poses": [p.to_json(self.width, self.height) for p in self.poses],
        }

    @cached_property
    def json_line(self) -> str:
        """`to_json()` as compact JSON text, made once however many outputs send it (orjson: ~10x json.dumps)."""
        return orjson.dumps(self.to_json()).decode()
