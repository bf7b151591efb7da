"""JSON Lines output: one compact record per frame, flushed at once so `tail -f` and pipes see it live."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from blazestream.results import FrameResult


class JsonlSink:
    """Write `FrameResult.to_json()` records, one per line, to a file (truncated on open) or stdout ('-')."""

    name = "jsonl"

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._owns = self.path != "-"
        if self._owns:
            target = Path(self.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            self._out: TextIO = target.open("w", encoding="utf-8")
        else:
            self._out = sys.stdout
        self._closed = False

    def write(self, results: list[FrameResult]) -> None:
        if self._closed:
            return
        self._out.write("".join(result.json_line + "\n" for result in results))
        self._out.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns:
            self._out.close()
        else:
            self._out.flush()
