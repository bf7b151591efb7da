"""The ASGI app: /api/* (JSON, OpenAPI at /api/openapi.json), /metrics, /healthz, /readyz and the page at /.

Every error is a JSON body `{"error": CODE, "message": TEXT}` with a documented status; nothing a client
sends can cause a 500 or a traceback in the log. The guard middleware checks the token and bounds the
request body before FastAPI sees the request.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import asdict
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from blazestream import __version__
from blazestream.config import CameraConfig
from blazestream.pipeline.runner import CameraStatus, DuplicateCameraError, RunStoppingError, UnknownCameraError
from blazestream.source_spec import parse_source_uri

from .control import CameraControl, InvalidCameraError, RefusedError
from .live import LiveFrames

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
"""A camera is an id and a URI: anything larger is refused (413) before it is parsed."""
CAMERA_ID = r"^[A-Za-z0-9_.-]{1,64}$"
MAX_URI_LENGTH = 2048
MJPEG_BOUNDARY = "blazestreamframe"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ErrorBody(BaseModel):
    error: str = Field(description="unauthorized, not_found, conflict, forbidden, invalid, too_large, unavailable")
    message: str


class CameraIn(BaseModel):
    """A camera to add: the same fields as an entry of `cameras:` in the config."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(pattern=CAMERA_ID, description="Letters, digits, _ . - (1 to 64).")]
    uri: Annotated[str, Field(max_length=MAX_URI_LENGTH, description="file, rtsp://, v4l2:// or test: source.")]
    max_poses: Annotated[int, Field(ge=1, le=32)] | None = None

    @field_validator("uri")
    @classmethod
    def _check_uri(cls, value: str) -> str:
        parse_source_uri(value)  # ValueError with the accepted forms
        return value


class CameraOut(BaseModel):
    id: str
    uri: str = Field(description="The source, credentials redacted.")
    status: Literal["starting", "up", "reconnecting", "ended", "failed"]
    fps: float = Field(description="Processed frames per second (last 2 s).")
    frames: int = Field(description="Frames processed.")
    poses: int = Field(description="People in the newest processed frame.")
    poses_total: int = Field(description="Poses found in all its frames.")
    last_error: str | None


class CameraList(BaseModel):
    cameras: list[CameraOut]


def _out(status: CameraStatus) -> CameraOut:
    return CameraOut.model_validate(asdict(status))


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid",
    503: "unavailable",
}


class Guard:
    """Pure ASGI middleware: bearer token on /api/*, bounded bodies, and no 500 with a traceback."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.token is not None and scope["path"].startswith("/api/") and not self._authorized(scope):
            response = _error(
                401,
                "unauthorized",
                "send the API token as 'Authorization: Bearer TOKEN'",
                {"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        body, too_large = await self._read_body(scope, receive)
        if too_large:
            await _error(413, "too_large", f"the request body is limited to {MAX_BODY_BYTES} bytes")(
                scope, receive, send
            )
            return
        started = False

        async def replay() -> Message:
            nonlocal body
            if body is not None:
                chunk, body = body, None
                return {"type": "http.request", "body": chunk, "more_body": False}
            return await receive()

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, replay, tracked_send)
        except Exception as exc:  # a bug of ours: one line in the log, a JSON 500 to the client
            log.error("API %s %s failed: %s: %s", scope["method"], scope["path"], type(exc).__name__, exc)
            if not started:
                await _error(500, "internal", f"internal error: {type(exc).__name__}")(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        assert self.token is not None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, given = bytes(value).partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token)
        return False

    @staticmethod
    async def _read_body(scope: Scope, receive: Receive) -> tuple[bytes | None, bool]:
        """The whole body (None for methods without one), or too_large without reading past the limit."""
        if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return None, False
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    if int(value) > MAX_BODY_BYTES:
                        return None, True
                except ValueError:
                    return None, True
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return None, True
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks), False


_RESPONSES: dict[int | str, dict[str, Any]] = {401: {"model": ErrorBody, "description": "Missing or wrong token."}}


def create_app(
    control: CameraControl,
    live: LiveFrames,
    registry: CollectorRegistry,
    *,
    token: str | None = None,
    stream_fps: float = 5.0,
) -> FastAPI:
    """The app for one run. `stopping` (app.state.stopping, a threading.Event) ends the MJPEG streams."""
    stopping = threading.Event()
    app = FastAPI(
        title="blazestream",
        version=__version__,
        description="Add and remove cameras of a running `blazestream run`, and watch them.",
        openapi_url="/api/openapi.json",
        docs_url=None,  # Swagger UI loads from a CDN; the page must work offline
        redoc_url=None,
    )
    app.state.stopping = stopping

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _CODES.get(exc.status_code, "error")
        return _error(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "invalid", _explain(exc))

    api = APIRouter(prefix="/api", dependencies=[Depends(HTTPBearer(auto_error=False))], responses=_RESPONSES)

    @api.get("/cameras", response_model=CameraList)
    def list_cameras() -> CameraList:
        """Every camera of the run, in the order they joined."""
        return CameraList(cameras=[_out(s) for s in control.list()])

    @api.post(
        "/cameras",
        status_code=201,
        response_model=CameraOut,
        responses={
            403: {"model": ErrorBody, "description": "This process may not take that camera (admission rule)."},
            409: {"model": ErrorBody, "description": "A camera with that id exists."},
            413: {"model": ErrorBody, "description": "Body over 16 KiB."},
            422: {"model": ErrorBody, "description": "Malformed JSON, id or URI; no such file; max_poses too high."},
            503: {"model": ErrorBody, "description": "The run is stopping."},
        },
    )
    def add_camera(camera: CameraIn) -> CameraOut:
        """Start a camera now; the others go on undisturbed. File sources play every frame, then end."""
        try:
            status = control.add(CameraConfig(id=camera.id, uri=camera.uri, max_poses=camera.max_poses))
        except DuplicateCameraError as exc:
            raise StarletteHTTPException(409, str(exc)) from None
        except InvalidCameraError as exc:
            raise StarletteHTTPException(422, str(exc)) from None
        except RefusedError as exc:
            raise StarletteHTTPException(403, str(exc)) from None
        except RunStoppingError as exc:
            raise StarletteHTTPException(503, str(exc)) from None
        return _out(status)

    not_found: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "No camera with that id."}}

    @api.get("/cameras/{camera_id}", response_model=CameraOut, responses=not_found)
    def get_camera(camera_id: str) -> CameraOut:
        return _out(_known(control, camera_id))

    @api.delete("/cameras/{camera_id}", status_code=204, response_class=Response, responses=not_found)
    def remove_camera(camera_id: str) -> Response:
        """Stop the camera: no output gets a row of it once this has answered; its metrics go."""
        try:
            control.remove(camera_id)
        except UnknownCameraError as exc:
            raise StarletteHTTPException(404, str(exc)) from None
        return Response(status_code=204)

    jpeg_responses: dict[int | str, dict[str, Any]] = {
        **not_found,
        200: {"content": {"image/jpeg": {}}},
        503: {"model": ErrorBody, "description": "No frame processed yet."},
    }

    @api.get("/cameras/{camera_id}/snapshot.jpg", response_class=Response, responses=jpeg_responses)
    def snapshot(camera_id: str) -> Response:
        """The newest processed frame with its skeletons, as JPEG."""
        _known(control, camera_id)
        frame = live.jpeg(camera_id)
        if frame is None:
            raise StarletteHTTPException(503, f"camera {camera_id!r} has no processed frame yet", {"Retry-After": "1"})
        return Response(
            frame[0], media_type="image/jpeg", headers={"Cache-Control": "no-store", "X-Frame-Seq": str(frame[1])}
        )

    @api.get("/cameras/{camera_id}/stream.mjpg", response_class=StreamingResponse, responses=not_found)
    async def stream(camera_id: str, request: Request) -> StreamingResponse:
        """The annotated frames as an MJPEG stream (multipart/x-mixed-replace) at api.stream_fps."""
        await run_in_threadpool(_known, control, camera_id)
        return StreamingResponse(
            _mjpeg(control, live, camera_id, request, stopping, 1.0 / stream_fps),
            media_type=f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}",
            headers={"Cache-Control": "no-store"},
        )

    app.include_router(api)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"model": ErrorBody, "description": "Not ready."}})
    def readyz() -> JSONResponse:
        """Models loaded, the run going, and at least one camera up."""
        if not control.runner.running:
            return _error(503, "unavailable", "the run is not going (starting or stopping)")
        up = sum(1 for s in control.runner.camera_statuses() if s.status == "up")
        if not up:
            return _error(503, "unavailable", "no camera is up")
        return JSONResponse({"status": "ready", "cameras_up": up})

    @app.get("/metrics", response_class=PlainTextResponse, include_in_schema=False)
    def metrics() -> PlainTextResponse:
        """Prometheus metrics, as on --metrics-port."""
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    static = resources.files("blazestream.api") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse((static / "index.html").read_text(encoding="utf-8"))

    app.add_middleware(Guard, token=token)
    return app


def _known(control: CameraControl, camera_id: str) -> CameraStatus:
    try:
        return control.get(camera_id)
    except UnknownCameraError as exc:
        raise StarletteHTTPException(404, str(exc)) from None


async def _mjpeg(
    control: CameraControl,
    live: LiveFrames,
    camera_id: str,
    request: Request,
    stopping: threading.Event,
    period: float,
) -> AsyncIterator[bytes]:
    """Parts of the stream; ends when the client leaves, the camera is removed or the server stops."""
    sent = 0
    while not stopping.is_set() and not await request.is_disconnected():
        seq = live.seq(camera_id)
        if seq == 0 and camera_id not in {s.id for s in control.runner.camera_statuses()}:
            return  # removed
        if seq != sent:
            frame = await run_in_threadpool(live.jpeg, camera_id)
            if frame is not None:
                data, sent = frame
                yield (
                    f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                    + data
                    + b"\r\n"
                )
        await asyncio.sleep(period)


def _explain(exc: RequestValidationError) -> str:
    """One line per problem: where, and what is wrong (the offending value is not echoed back)."""
    lines = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            lines.append(f"the body is not valid JSON ({error.get('ctx', {}).get('error', 'syntax error')})")
            continue
        loc = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        message = str(error.get("msg", "invalid"))
        lines.append(f"{loc}: {message.removeprefix('Value error, ')}")
    return "; ".join(lines) or "invalid request"
