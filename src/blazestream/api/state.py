"""The camera set kept across restarts (api.state_file): written atomically after each change."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from blazestream.config import CameraConfig
from blazestream.errors import ConfigError

VERSION = 1


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int
    cameras: list[CameraConfig]


def read_state(path: Path) -> list[CameraConfig] | None:
    """The saved cameras, or None when there is no file yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"api.state_file {path}: cannot read it ({exc.strerror})") from exc
    try:
        state = _State.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"api.state_file {path}: not a blazestream camera list ({where}: {first['msg']}); fix or delete it"
        ) from exc
    if state.version != VERSION:
        raise ConfigError(f"api.state_file {path}: version {state.version}, this blazestream reads {VERSION}")
    return state.cameras


def write_state(path: Path, cameras: Sequence[CameraConfig]) -> None:
    """Replace the file in one step (write a temporary file beside it, fsync, rename): never half written.

    It holds the cameras' URIs with their credentials, so it is readable by its owner only.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"version": VERSION, "cameras": [c.model_dump(exclude_none=True) for c in cameras]}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
