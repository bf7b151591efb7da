"""The graph as data: what each source is, parsed once from the user's URI, and the whole run's spec."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from blazestream.uris import redact_uri

SourceKind = Literal["file", "rtsp", "v4l2", "test"]

TEST_PATTERNS = (
    "smpte", "snow", "black", "white", "red", "green", "blue", "checkers-1", "checkers-2", "checkers-4",
    "checkers-8", "circular", "blink", "smpte75", "zone-plate", "gamut", "chroma-zone-plate", "solid-color",
    "ball", "smpte100", "bar", "pinwheel", "spokes", "gradient", "colors", "smpte-rp-219",
)  # fmt: skip
"""videotestsrc's pattern nicks (GStreamer 1.22)."""
TEST_LIMITS = {"width": (16, 7680), "height": (16, 4320), "fps": (1, 240)}

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

    @property
    def display(self) -> str:
        """How logs, summaries and APIs name the source: the URI with any password replaced by ***."""
        return redact_uri(self.uri if self.kind == "test" else self.location)


def parse_source_uri(uri: str, camera_id: str = "cam0") -> SourceSpec:
    """Classify a user-given source; raise ValueError naming the input and the accepted forms."""
    text = uri.strip()
    if not text:
        raise ValueError(f"empty source; use {SUPPORTED}")
    if text.startswith("test:"):
        return SourceSpec(camera_id, "test", "videotestsrc", _test_options(uri, text[5:].lstrip("/").lstrip("?")))
    shown = redact_uri(uri)
    if "://" not in text:
        if ":" in text.split("/")[0] and not Path(text).exists():
            raise ValueError(f"{shown!r}: unsupported or malformed source; use {SUPPORTED}")
        if "\0" in text:
            raise ValueError(f"{shown!r}: a NUL character cannot be in a file name; use {SUPPORTED}")
        return SourceSpec(camera_id, "file", os.path.expanduser(text))  # `~nobody`: left as it is
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if not parts.path:
            raise ValueError(f"{shown!r}: a file URI needs a path, e.g. file:///videos/cam.mp4")
        return SourceSpec(camera_id, "file", parts.path)
    if scheme in ("rtsp", "rtsps", "rtspt"):
        if not parts.hostname:
            raise ValueError(f"{shown!r}: an RTSP URI needs a host, e.g. rtsp://192.0.2.10:554/stream1")
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            raise ValueError(f"{shown!r}: bad port ({redact_uri(str(exc))})") from None
        return SourceSpec(camera_id, "rtsp", text)
    if scheme == "v4l2":
        if parts.netloc or not parts.path.startswith("/dev/"):
            raise ValueError(f"{shown!r}: a V4L2 source is v4l2:///dev/videoN (three slashes)")
        return SourceSpec(camera_id, "v4l2", parts.path)
    raise ValueError(f"{shown!r}: unsupported scheme '{scheme}'; use {SUPPORTED}")


def _test_options(uri: str, query: str) -> tuple[tuple[str, str], ...]:
    """`test:` options checked here, so a typo is a config error at load, not a camera that never starts."""
    import difflib

    options = tuple(parse_qsl(query, keep_blank_values=True)) if query else ()
    allowed = ("pattern", "width", "height", "fps")
    for key, value in options:
        if key not in allowed:
            hint = difflib.get_close_matches(key, allowed, n=1)
            suggestion = f"did you mean '{hint[0]}'? " if hint else ""
            raise ValueError(f"{uri!r}: unknown test source option '{key}'; {suggestion}use {', '.join(allowed)}")
        if key == "pattern":
            if value not in TEST_PATTERNS and not (value.isdigit() and int(value) < len(TEST_PATTERNS)):
                hint = difflib.get_close_matches(value, TEST_PATTERNS, n=1)
                suggestion = f"did you mean '{hint[0]}'? " if hint else ""
                raise ValueError(
                    f"{uri!r}: unknown pattern '{value}'; {suggestion}use one of {', '.join(TEST_PATTERNS)}"
                )
            continue
        low, high = TEST_LIMITS[key]
        if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
            raise ValueError(f"{uri!r}: {key}={value!r} must be a whole number from {low} to {high}")
    keys = [k for k, _ in options]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{uri!r}: an option is given twice")
    if ("width" in keys) != ("height" in keys):
        raise ValueError(f"{uri!r}: give width and height together")
    return options
