"""A shard that owns no camera: stay up (metrics served, probes answered) instead of exiting.

Under an orchestrator a replica that exits is restarted over and over; with rendezvous hashing a shard
can own nothing (few cameras, many replicas), and that is a valid state, not a fault.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

from blazestream.config import AppConfig
from blazestream.outputs.metrics import Metrics
from blazestream.pipeline.runner import RunSummary

log = logging.getLogger(__name__)


def run_idle(cfg: AppConfig, why: str) -> RunSummary:
    """Wait for SIGINT/SIGTERM (or `duration_s`) with the metrics endpoint up; nothing else runs."""
    log.warning("%s: nothing to run; staying up idle until stopped", why)
    metrics = Metrics()
    if cfg.outputs.metrics_port is not None:
        metrics.serve(cfg.outputs.metrics_port, cfg.outputs.metrics_address)
    summary = RunSummary()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        summary.stopped_by = f"{signal.Signals(signum).name} received"
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    start = time.monotonic()
    try:
        if not stop.wait(cfg.duration_s):
            summary.stopped_by = f"--duration {cfg.duration_s:g} s reached"
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        metrics.close()
    summary.wall_s = time.monotonic() - start
    return summary
