"""uvicorn in a thread of the run's process, on a socket bound up front (so a taken port is a clear error)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import uvicorn

from blazestream.errors import ConfigError

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 64


def bind(address: str, port: int) -> socket.socket:
    """A listening TCP socket on address:port (0: a free port); ConfigError naming the address otherwise."""
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"api.address {address!r}: not an address of this machine ({exc})") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"API: cannot listen on {address}:{port} ({exc.strerror}); choose another --api-port"
        ) from exc
    return sock


class ApiServer:
    """Serves an ASGI app from a daemon thread until `stop()`."""

    def __init__(self, app: Any, sock: socket.socket) -> None:
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_config=None,  # our logging, not uvicorn's
            access_log=False,
            lifespan="off",
            loop="asyncio",
            limit_concurrency=MAX_CONNECTIONS,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # its start/stop lines say nothing new
        self._thread = threading.Thread(target=self._serve, name="api", daemon=True)

    def _serve(self) -> None:
        try:
            self._server.run(sockets=[self.sock])
        except BaseException as exc:  # uvicorn exits the thread with SystemExit on a failed start-up
            log.error("API server stopped: %s", exc)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(2)
        self.sock.close()
