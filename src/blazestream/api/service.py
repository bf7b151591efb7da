"""A run with the HTTP API: settings checked, camera set restored, runner built, port bound, then run."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

from blazestream.config import AppConfig
from blazestream.errors import ConfigError
from blazestream.pipeline.runner import RunSummary

from .control import Admit

log = logging.getLogger(__name__)


def prepare_api_run(cfg: AppConfig, backend: str, admit: Admit | None = None) -> Callable[[], RunSummary]:
    """Everything that can fail on bad settings happens here (ConfigError: exit 2); returns the run.

    Checked before the models load: the token and the bind address, the state file. With a state file
    that exists, its cameras replace the configured ones.
    """
    from .security import check_bind, load_token
    from .server import bind
    from .state import read_state

    api = cfg.api
    assert api.port is not None
    if backend == "deepstream":
        raise ConfigError("the HTTP API (api.port) works with the cpu and tensorrt backends, not deepstream")
    token = load_token(api.token_file)
    check_bind(api.address, token)
    if api.state_file is not None:
        saved = read_state(api.state_file)
        if saved is not None:
            log.info("cameras from %s: %s", api.state_file, ", ".join(c.id for c in saved) or "none")
            cfg = cfg.model_copy(update={"cameras": saved})
    if admit is not None:
        refused = {c.id: why for c in cfg.cameras if (why := admit(c.id))}
        if refused:
            for camera_id, why in refused.items():
                log.warning("camera %s left out: %s", camera_id, why)
            cfg = cfg.model_copy(update={"cameras": [c for c in cfg.cameras if c.id not in refused]})
    sock = bind(api.address, api.port)
    try:
        return _build(cfg, backend, sock, token, admit)
    except BaseException:
        sock.close()
        raise


def _build(
    cfg: AppConfig, backend: str, sock: socket.socket, token: str | None, admit: Admit | None
) -> Callable[[], RunSummary]:
    from blazestream.pipeline.graph import build_cpu_runner, create_estimator

    from .app import create_app
    from .control import CameraControl
    from .live import LiveFrames
    from .server import ApiServer

    api = cfg.api
    live = LiveFrames(quality=api.jpeg_quality, max_width=api.jpeg_width)
    estimator = create_estimator(cfg, backend, dynamic=True)
    runner = build_cpu_runner(cfg, estimator, extra_sinks=[live], dynamic=True)
    control = CameraControl(
        runner,
        list(cfg.cameras),
        max_poses_limit=estimator.settings.max_poses,
        state_file=api.state_file,
        admit=admit,
    )
    app = create_app(control, live, runner.metrics.registry, token=token, stream_fps=api.stream_fps)
    server = ApiServer(app, sock)

    def run() -> RunSummary:
        server.start()
        host = api.address if ":" not in api.address else f"[{api.address}]"
        log.info("API and page at http://%s:%d/ (token %s)", host, server.port, "required" if token else "off")
        try:
            return runner.run()
        finally:
            app.state.stopping.set()
            server.stop()
            estimator.close()

    return run
