"""The graph as data: what each source is, parsed once from the user's URI, and the whole run's spec."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

SourceKind = Literal["file", "rtsp", "v4l2", "test"]

SUPPORTED = "a file path, file:///path, rtsp://host[:port]/path, v4l2:///dev/videoN or test:[?pattern=ball]"


@dataclass(frozen=True)
class SourceSpec:
    """One camera's source, backend-neutral. `location` is a path, URL, device, or videotestsrc pattern."""

    camera_id: str
    kind: SourceKind
    location: str
    options: tuple[tuple[str, str], ...] = ()

    @property
    def live(self) -> bool:
        """Live sources run until stopped and drop stale frames; files end and drop nothing."""
        return self.kind != "file"

    @property
    def uri(self) -> str:
        if self.kind == "file":
            return Path(self.location).resolve().as_uri()
        if self.kind == "v4l2":
            return f"v4l2://{self.location}"
        if self.kind == "test":
            return "test:" + ("?" + "&".join(f"{k}={v}" for k, v in self.options) if self.options else "")
        return self.location


def parse_source_uri(uri: str, camera_id: str = "cam0") -> SourceSpec:
    """Classify a user-given source; raise ValueError naming the input and the accepted forms."""
    text = uri.strip()
    if not text:
        raise ValueError(f"empty source; use {SUPPORTED}")
    if text.startswith("test:"):
        query = text[5:].lstrip("/").lstrip("?")
        options = tuple(parse_qsl(query, strict_parsing=False)) if query else ()
        allowed = {"pattern", "width", "height", "fps"}
        unknown = [k for k, _ in options if k not in allowed]
        if unknown:
            raise ValueError(f"{uri!r}: unknown test source option(s) {unknown}; use {sorted(allowed)}")
        return SourceSpec(camera_id, "test", "videotestsrc", options)
    if "://" not in text:
        if ":" in text.split("/")[0] and not Path(text).exists():
            raise ValueError(f"{uri!r}: unsupported or malformed source; use {SUPPORTED}")
        return SourceSpec(camera_id, "file", str(Path(text).expanduser()))
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if not parts.path:
            raise ValueError(f"{uri!r}: a file URI needs a path, e.g. file:///videos/cam.mp4")
        return SourceSpec(camera_id, "file", parts.path)
    if scheme in ("rtsp", "rtsps", "rtspt"):
        if not parts.hostname:
            raise ValueError(f"{uri!r}: an RTSP URI needs a host, e.g. rtsp://192.0.2.10:554/stream1")
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            raise ValueError(f"{uri!r}: bad port ({exc})") from exc
        return SourceSpec(camera_id, "rtsp", text)
    if scheme == "v4l2":
        if parts.netloc or not parts.path.startswith("/dev/"):
            raise ValueError(f"{uri!r}: a V4L2 source is v4l2:///dev/videoN (three slashes)")
        return SourceSpec(camera_id, "v4l2", parts.path)
    raise ValueError(f"{uri!r}: unsupported scheme '{scheme}'; use {SUPPORTED}")
