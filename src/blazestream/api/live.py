"""The newest annotated frame of each camera, as JPEG, for snapshots, MJPEG streams and the web page."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

from blazestream.outputs.annotate import draw_poses
from blazestream.results import FrameResult


@dataclass
class _Latest:
    result: FrameResult
    seq: int
    jpeg: bytes | None = None


class LiveFrames:
    """A ResultSink that keeps a reference to each camera's newest frame (no copy, no work per frame).

    The JPEG is drawn and encoded on demand, once per new frame however many clients ask, and scaled
    down to `max_width` first: a browser grid needs no full-size pictures.
    """

    needs_images = True
    """The pose stage must keep the frames in the results (see graph.build_cpu_runner)."""

    def __init__(self, *, quality: int = 80, max_width: int = 640) -> None:
        self.quality = quality
        self.max_width = max_width
        self._lock = threading.Lock()
        self._latest: dict[str, _Latest] = {}
        self._seq = 0

    def write(self, results: list[FrameResult]) -> None:
        with self._lock:
            for result in results:
                if result.image is not None:
                    self._seq += 1
                    self._latest[result.stream] = _Latest(result, self._seq)

    def remove_camera(self, camera_id: str) -> None:
        with self._lock:
            self._latest.pop(camera_id, None)

    def close(self) -> None:
        pass

    def seq(self, camera_id: str) -> int:
        """Changes whenever the camera has a newer frame (0: none yet)."""
        with self._lock:
            latest = self._latest.get(camera_id)
            return latest.seq if latest is not None else 0

    def jpeg(self, camera_id: str) -> tuple[bytes, int] | None:
        """The newest annotated frame as JPEG with its sequence number; None before the first frame."""
        with self._lock:
            latest = self._latest.get(camera_id)
        if latest is None:
            return None
        if latest.jpeg is None:
            latest.jpeg = self._encode(latest.result)
        return latest.jpeg, latest.seq

    def _encode(self, result: FrameResult) -> bytes:
        image = result.image
        assert image is not None
        height, width = image.shape[:2]
        if width > self.max_width:
            size = (self.max_width, max(1, round(height * self.max_width / width)))
            picture = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)
        else:
            picture = image.copy()  # never draw on the frame other outputs use
        draw_poses(picture, result.poses)
        ok, data = cv2.imencode(
            ".jpg", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, self.quality]
        )
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return data.tobytes()
