"""Where blazestream keeps files, and how it writes them: the platform cache directory, atomic writes.

A leaf module (standard library and platformdirs only): the model cache, the engine cache, the image
command's JSON and the engine sidecars all write through `atomic_write`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

import platformdirs

APP_NAME = "blazestream"


def cache_dir() -> Path:
    """The platform's user cache directory for blazestream ($XDG_CACHE_HOME/blazestream, ~/.cache/blazestream)."""
    return platformdirs.user_cache_path(APP_NAME)


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write a temporary file next to `path`, then `os.replace`: readers never see half a file.

    The temporary name is unique per process and call, so concurrent writers cannot clobber each other;
    the file gets the usual umask permissions (unlike `mkstemp`'s 0600).
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with tmp.open("xb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
