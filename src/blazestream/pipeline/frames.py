"""Decoded frames and the per-camera slots between the decoders and the batcher."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from blazestream.yuv import as_rgb


@dataclass(frozen=True)
class Frame:
    """One decoded frame of one camera: its pixels as the decoder gave them, RGB on demand."""

    camera_id: str
    index: int
    pts: float
    """Seconds, from the buffer timestamp (media time for files, running time for live sources)."""
    pixels: Any
    """A `Yuv420` frame (CPU sources), an (H, W, 3) uint8 RGB array, or a device image (GPU graphs)."""
    arrived: float
    """time.monotonic() when it left the decoder."""
    generation: int
    """Increments each time the camera's pipeline is rebuilt (a reconnect is a discontinuity)."""

    @cached_property
    def image(self) -> npt.NDArray[np.uint8]:
        """The frame in RGB, converted (once) only when asked for: crops read the planes directly."""
        return as_rgb(self.pixels)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) without converting anything."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])


class FrameSlot:
    """Frames of one camera waiting for a batch.

    Live sources keep only the newest frame (the older one is dropped and counted); files block the
    decoder while the slot is full, so nothing is dropped. All slots share the batcher's condition.
    """

    def __init__(self, camera_id: str, *, live: bool, capacity: int, cond: threading.Condition) -> None:
        self.camera_id = camera_id
        self.live = live
        self.capacity = 1 if live else capacity
        self._frames: deque[Frame] = deque()
        self._cond = cond
        self.streaming = False
        """True while frames flow: the batcher waits for this camera's frame before pushing a batch."""
        self.finished = False
        """No more frames will ever come (file ended or failed)."""

    def put(self, frame: Frame, stop: threading.Event) -> int:
        """Queue a frame; returns how many older frames were dropped (live only)."""
        with self._cond:
            dropped = 0
            if self.live:
                dropped = len(self._frames)
                self._frames.clear()
            else:
                while len(self._frames) >= self.capacity and not stop.is_set():
                    self._cond.wait(0.1)
                if stop.is_set():
                    return 0
            self._frames.append(frame)
            self.streaming = True
            self._cond.notify_all()
            return dropped

    def take(self) -> Frame | None:
        """Pop the oldest frame; caller holds the condition."""
        if not self._frames:
            return None
        frame = self._frames.popleft()
        self._cond.notify_all()
        return frame

    def pending(self) -> int:
        return len(self._frames)

    def set_streaming(self, streaming: bool) -> None:
        with self._cond:
            self.streaming = streaming
            self._cond.notify_all()

    def finish(self) -> None:
        with self._cond:
            self.finished = True
            self.streaming = False
            self._cond.notify_all()


class Batcher:
    """Gathers one frame per camera into batches, like nvstreammux.

    A batch is pushed when every streaming camera has a frame waiting, when `max_size` frames are
    waiting, or `timeout` seconds after the first waiting frame arrived (batched-push-timeout), so a
    slow or dead camera never holds the others back.
    """

    def __init__(
        self,
        slots: list[FrameSlot],
        cond: threading.Condition,
        *,
        max_size: int,
        timeout: float,
        persistent: bool = False,
    ) -> None:
        self.slots = slots
        self.cond = cond
        self.max_size = max_size
        self.timeout = timeout
        self.persistent = persistent
        """Keep going when every camera has finished (cameras can still be added at run time)."""
        self._start = 0
        self._stopping = False

    def add_slot(self, slot: FrameSlot, max_size: int | None = None) -> None:
        """A camera joins: its frames are taken from the next batch on."""
        with self.cond:
            self.slots.append(slot)
            if max_size is not None:
                self.max_size = max_size
            self.cond.notify_all()

    def remove_slot(self, slot: FrameSlot, max_size: int | None = None) -> None:
        """A camera leaves: its waiting frames are dropped, no later batch carries it."""
        with self.cond:
            if slot in self.slots:
                self.slots.remove(slot)
            if max_size is not None:
                self.max_size = max_size
            self.cond.notify_all()

    def stop(self) -> None:
        """Deliver what is waiting, then end."""
        with self.cond:
            self._stopping = True
            self.cond.notify_all()

    def next_batch(self) -> list[Frame] | None:
        """Block until a batch is due; None when every camera has finished (or stop() and nothing waits)."""
        with self.cond:
            first_seen: float | None = None
            while True:
                waiting = [s for s in self.slots if s.pending()]
                if not waiting:
                    first_seen = None
                    if self._stopping or (not self.persistent and all(s.finished for s in self.slots)):
                        return None
                    self.cond.wait(0.5)
                    continue
                now = time.monotonic()
                if first_seen is None:
                    first_seen = now
                expected = [s for s in self.slots if s.streaming or s.pending()]
                due = (
                    len(waiting) >= min(self.max_size, len(expected))
                    or now - first_seen >= self.timeout
                    or self._stopping
                )
                if due:
                    return self._take(waiting)
                self.cond.wait(max(0.0, self.timeout - (now - first_seen)))

    def _take(self, waiting: list[FrameSlot]) -> list[Frame]:
        """One frame from each waiting camera, starting after last batch's first camera (fairness)."""
        order = sorted(waiting, key=lambda s: (self.slots.index(s) - self._start) % len(self.slots))
        chosen = order[: self.max_size]
        self._start = (self.slots.index(chosen[0]) + 1) % len(self.slots)
        frames = [s.take() for s in sorted(chosen, key=self.slots.index)]
        return [f for f in frames if f is not None]
