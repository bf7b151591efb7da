"""Rich progress for `build-engines`: a spinner and elapsed time per engine, TensorRT's phases beneath it.

Builds take minutes on a Jetson; without feedback they look hung. TensorRT reports phases from its own
threads (IProgressMonitor), so every method takes a lock. No TensorRT import: tested anywhere.
"""

from __future__ import annotations

import threading
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

MAX_PHASE_DEPTH = 2
"""Phases nested deeper than this are not drawn (TensorRT reports dozens of tiny sub-phases)."""


class Labelled(Protocol):
    @property
    def label(self) -> str: ...


class RichBuildProgress:
    """`BuildListener` drawing on a rich console (stderr by the CLI)."""

    def __init__(self, console: Console, *, transient_phases: bool = True) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self._lock = threading.Lock()
        self._engine_task: TaskID | None = None
        self._phases: dict[str, tuple[TaskID, int]] = {}
        self._transient = transient_phases
        self.finished: list[tuple[str, float, bool]] = []

    def __enter__(self) -> RichBuildProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def engine_started(self, engine: Labelled) -> None:
        with self._lock:
            self._engine_task = self.progress.add_task(f"[bold]{engine.label}[/]", total=None)

    def engine_finished(self, engine: Labelled, seconds: float, *, skipped: bool) -> None:
        with self._lock:
            if self._engine_task is not None:
                state = "up to date" if skipped else f"built in {seconds:.0f} s"
                self.progress.update(
                    self._engine_task, description=f"[bold]{engine.label}[/]: {state}", total=1, completed=1
                )
            for task, _depth in self._phases.values():
                self.progress.remove_task(task)
            self._phases.clear()
            self.finished.append((engine.label, seconds, skipped))

    def phase_start(self, phase: str, parent: str | None, steps: int) -> None:
        with self._lock:
            depth = self._phases[parent][1] + 1 if parent in self._phases else 1
            if depth > MAX_PHASE_DEPTH:
                return
            indent = "  " * depth
            task = self.progress.add_task(f"{indent}{phase}", total=max(steps, 1))
            self._phases[phase] = (task, depth)

    def step_complete(self, phase: str, step: int) -> None:
        with self._lock:
            if phase in self._phases:
                self.progress.update(self._phases[phase][0], completed=step + 1)

    def phase_finish(self, phase: str) -> None:
        with self._lock:
            entry = self._phases.pop(phase, None)
            if entry is not None and self._transient:
                self.progress.remove_task(entry[0])
