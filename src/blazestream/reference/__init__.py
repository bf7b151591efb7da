"""MediaPipe as the numerical reference: a worker script run in MediaPipe's own virtualenv.

`mediapipe==0.10.21` pins numpy<2 and brings OpenCV-contrib and JAX, so it lives in a virtualenv of its
own (`.venv-mediapipe`); tests and `blazestream bench` talk to it through files and a subprocess.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from blazestream import MEDIAPIPE_VERSION
from blazestream.errors import MissingDependencyError

WORKER = Path(__file__).with_name("mediapipe_worker.py")


@functools.lru_cache(maxsize=1)
def mediapipe_python() -> Path:
    """The interpreter that has mediapipe==0.10.21: $BLAZESTREAM_MEDIAPIPE_PYTHON, ./.venv-mediapipe, or ours."""
    candidates = []
    env = os.environ.get("BLAZESTREAM_MEDIAPIPE_PYTHON")
    if env:
        candidates.append(Path(env))
    for base in (Path.cwd(), Path(__file__).resolve().parents[3]):
        candidates.append(base / ".venv-mediapipe" / "bin" / "python")
    candidates.append(Path(sys.executable))
    for python in candidates:
        if python.exists() and _has_mediapipe(python):
            return python
    raise MissingDependencyError(
        f"MediaPipe {MEDIAPIPE_VERSION} (the reference) was not found. Create its virtualenv with "
        f"`make reference` (in the blazestream checkout), or point BLAZESTREAM_MEDIAPIPE_PYTHON at a Python "
        f"that has `mediapipe=={MEDIAPIPE_VERSION}`; `blazestream bench --no-reference` reports our figures alone."
    )


def _has_mediapipe(python: Path) -> bool:
    probe = f"import mediapipe, sys; sys.exit(0 if mediapipe.__version__ == '{MEDIAPIPE_VERSION}' else 3)"
    try:
        done = subprocess.run([str(python), "-c", probe], capture_output=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def run_worker(args: list[str], *, python: Path | None = None, timeout: float | None = None) -> None:
    """Run the worker script with MediaPipe's interpreter; raise with its stderr on failure."""
    interpreter = python or mediapipe_python()
    cmd = [str(interpreter), str(WORKER), *args]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.setdefault("GLOG_minloglevel", "2")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"MediaPipe worker failed ({shutil.which(str(interpreter)) or interpreter}):\n{done.stderr[-4000:]}"
        )
