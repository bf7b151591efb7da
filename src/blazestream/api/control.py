"""What the API does to the run: add, remove and list cameras, with the checks and the state file.

Every change goes through here (one at a time), so the persisted set always matches the run.
`admit(camera_id) -> reason | None` is the hook for rules about which cameras this process may take
(sharding): a returned reason refuses the camera (403 with that reason), None admits it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from blazestream.config import CameraConfig
from blazestream.errors import BlazestreamError
from blazestream.pipeline.runner import CameraStatus, Runner
from blazestream.source_spec import parse_source_uri
from blazestream.uris import redact_uri

from .state import write_state

log = logging.getLogger(__name__)

Admit = Callable[[str], "str | None"]


class RefusedError(BlazestreamError):
    """The admission hook said no (the reason is the message)."""


class InvalidCameraError(BlazestreamError):
    """The camera cannot be run as given (no such file, too many poses); the message says why."""


class CameraControl:
    def __init__(
        self,
        runner: Runner,
        cameras: list[CameraConfig],
        *,
        max_poses_limit: int,
        state_file: Path | None = None,
        admit: Admit | None = None,
    ) -> None:
        self.runner = runner
        self.max_poses_limit = max_poses_limit
        """The detector keeps at most this many people per frame (pose.max_poses, fixed at start)."""
        self.state_file = state_file
        self.admit = admit
        self._configs = {c.id: c for c in cameras}
        self._lock = threading.Lock()

    def list(self) -> list[CameraStatus]:
        return [self._redacted(s) for s in self.runner.camera_statuses()]

    def get(self, camera_id: str) -> CameraStatus:
        return self._redacted(self.runner.camera_status(camera_id))

    def add(self, camera: CameraConfig) -> CameraStatus:
        """Start `camera` (already validated: id pattern, URI form); raises a BlazestreamError subclass."""
        spec = parse_source_uri(camera.uri, camera.id)
        if spec.kind == "file" and not Path(spec.location).is_file():
            raise InvalidCameraError(f"uri {redact_uri(camera.uri)!r}: no such file on the server")
        if camera.max_poses is not None and camera.max_poses > self.max_poses_limit:
            raise InvalidCameraError(
                f"max_poses {camera.max_poses} is above this run's pose.max_poses ({self.max_poses_limit}); "
                "restart the run with a higher pose.max_poses to track more people"
            )
        if self.admit is not None:
            reason = self.admit(camera.id)
            if reason:
                raise RefusedError(reason)
        with self._lock:
            status = self.runner.add_camera(spec, camera.max_poses)
            self._configs[camera.id] = camera
            self._persist()
        return self._redacted(status)

    def remove(self, camera_id: str) -> None:
        with self._lock:
            self.runner.remove_camera(camera_id)
            self._configs.pop(camera_id, None)
            self._persist()

    def _persist(self) -> None:
        if self.state_file is None:
            return
        try:
            write_state(self.state_file, list(self._configs.values()))
        except OSError as exc:  # the change is made; say loudly that it will not survive a restart
            log.error(
                "api.state_file %s: cannot write it (%s); the camera set will not survive a restart",
                self.state_file,
                exc,
            )

    @staticmethod
    def _redacted(status: CameraStatus) -> CameraStatus:
        from dataclasses import replace

        return replace(
            status,
            uri=redact_uri(status.uri),
            last_error=redact_uri(status.last_error) if status.last_error else None,
        )
