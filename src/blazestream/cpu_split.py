"""Where the CPU goes in a run: decode, crop, models, the rest (what `blazestream bench` reports).

Two sources, because no single one sees everything:
- Python code that crops or runs a model adds its own thread's CPU time (`measure`), whatever thread
  it runs on (the processing thread, the crop or inference pools);
- threads Python does not know are read from /proc/self/task by a sampler: GStreamer's streaming
  threads and the decoders they start (named after their element, e.g. `qtdemux0:sink`) are decode,
  ONNX Runtime's own intra-op threads (they inherit the process's name) are models. The camera threads
  that copy decoded buffers count as decode too.
The rest is the process's CPU time minus those three. Off unless a `CpuSplit` is active, so runs pay
nothing for it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CATEGORIES = ("decode", "crop", "models", "rest")

_active: CpuSplit | None = None


@contextmanager
def measure(category: str) -> Iterator[None]:
    """Add this block's thread CPU time to `category` of the active split (no-op when none)."""
    split = _active
    if split is None:
        yield
        return
    start = time.thread_time()
    try:
        yield
    finally:
        split.add(category, time.thread_time() - start)


@dataclass(frozen=True)
class SplitResult:
    """CPU seconds per category over a run, and per frame in ms."""

    seconds: dict[str, float]
    frames: int

    def ms_per_frame(self) -> dict[str, float]:
        return {k: v * 1000.0 / self.frames if self.frames else 0.0 for k, v in self.seconds.items()}


class CpuSplit:
    """Active between `start()` and `stop()`; one at a time per process."""

    def __init__(self, interval_s: float = 0.2) -> None:
        self._lock = threading.Lock()
        self._measured = dict.fromkeys(("crop", "models"), 0.0)
        self._interval = interval_s
        self._threads: dict[int, tuple[str, float]] = {}
        """tid -> (category, CPU seconds last seen) of the threads read from /proc."""
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample_loop, name="cpu-split", daemon=True)
        self._cpu0 = 0.0
        self._tick = os.sysconf("SC_CLK_TCK")

    def add(self, category: str, seconds: float) -> None:
        with self._lock:
            self._measured[category] += seconds

    def start(self) -> None:
        global _active
        self._cpu0 = time.process_time()
        self._baseline = self._read_tasks()
        _active = self
        self._sampler.start()

    def stop(self, frames: int) -> SplitResult:
        global _active
        self._stop.set()
        self._sampler.join()
        self._sample()
        _active = None
        total = time.process_time() - self._cpu0
        used = {tid: (cat, cpu - self._baseline.get(tid, (cat, 0.0))[1]) for tid, (cat, cpu) in self._threads.items()}
        decode = sum(cpu for cat, cpu in used.values() if cat == "decode")
        ort = sum(cpu for cat, cpu in used.values() if cat == "models")
        crop, models = self._measured["crop"], self._measured["models"] + ort
        rest = max(0.0, total - decode - crop - models)
        return SplitResult({"decode": decode, "crop": crop, "models": models, "rest": rest}, frames)

    def _sample_loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def _sample(self) -> None:
        for tid, value in self._read_tasks().items():
            self._threads[tid] = value

    def _read_tasks(self) -> dict[int, tuple[str, float]]:
        python = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
        process_name = Path("/proc/self/comm").read_text().strip()
        found: dict[int, tuple[str, float]] = {}
        for task in Path("/proc/self/task").iterdir():
            try:
                tid = int(task.name)
                comm = (task / "comm").read_text().strip()
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, ValueError):
                continue  # the thread ended meanwhile
            cpu = (int(fields[11]) + int(fields[12])) / self._tick
            name = python.get(tid)
            if name is not None:
                category = "decode" if name.startswith("camera-") else "python"
            elif comm == process_name:
                category = "models"  # ONNX Runtime's intra-op threads
            else:
                category = "decode"  # GStreamer streaming threads, the decoders' own threads, GLib
            if category != "python":
                found[tid] = (category, cpu)
        return found
