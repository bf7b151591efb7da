"""The `ResultSink` protocol every output implements; what it receives is `blazestream.results.FrameResult`."""

from __future__ import annotations

from typing import Protocol

from blazestream.results import FrameResult


class ResultSink(Protocol):
    """An output. `write` is called from the processing thread, once per batch, in frame order per camera."""

    def write(self, results: list[FrameResult]) -> None: ...

    def close(self) -> None:
        """Flush and finish (EOS for encoders); called once, also after a SIGINT/SIGTERM."""
        ...
