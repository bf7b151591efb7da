"""URLs users give (cameras, brokers): parsing that names the input, and credentials kept out of every print.

A leaf module (standard library only) so the config, the outputs, the logs and the HTTP API can all use it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

MQTT_DEFAULT_PORT = 1883
REDIS_DEFAULT_PORT = 6379
REDACTED = "***"

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@\s:\[\]]*)(?::(?P<password>[^/\s]*))?@")
"""`scheme://user[:password]@` anywhere in a text (a URL inside a log line or a GStreamer error)."""


def redact_uri(uri: str) -> str:
    """`rtsp://user:secret@host/x` -> `rtsp://user:***@host/x`; a URL without a password is returned as is.

    Keeps the user name (it says which account is used) and drops only the secret. Also applied to URLs
    embedded in a longer text, so an error message quoting the URL is safe to print.
    """
    return redact_text(uri)


def redact_text(text: str) -> str:
    """Every `scheme://user:password@` in `text` with the password replaced by ***."""

    def hide(match: re.Match[str]) -> str:
        if match.group("password") is None:
            return match.group(0)
        return f"{match.group('scheme')}{match.group('user')}:{REDACTED}@"

    return _USERINFO.sub(hide, text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts credentials in every record's final message (logs name cameras by URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def parse_mqtt_url(url: str) -> tuple[str, int, str | None, str | None]:
    """`mqtt://[user[:password]@]host[:port]` -> (host, port, user, password); ValueError naming the (redacted) URL."""
    shown = redact_uri(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid MQTT URL {shown!r}: {redact_text(str(exc))}") from None
    if parts.scheme != "mqtt" or not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"invalid MQTT URL {shown!r}: expected mqtt://[user:password@]host[:port]")
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return parts.hostname, port if port is not None else MQTT_DEFAULT_PORT, user, password


@dataclass(frozen=True)
class RedisTarget:
    """A parsed `redis://` URL (the password is kept out of `display`)."""

    host: str
    port: int
    db: int
    username: str | None
    password: str | None
    tls: bool

    @property
    def display(self) -> str:
        auth = f"{self.username or ''}:***@" if self.password is not None else ""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{auth}{self.host}:{self.port}/{self.db}"


def parse_redis_url(url: str) -> RedisTarget:
    """`redis://[user:password@]host[:port][/db]` (or `rediss://` for TLS); ValueError names the URL."""
    expected = "expected redis://[user:password@]host[:port][/db]"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid Redis URL {url!r}: {exc}; {expected}") from exc
    if parts.scheme not in ("redis", "rediss") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"invalid Redis URL {url!r}: {expected}")
    db_text = parts.path.lstrip("/")
    if db_text and not db_text.isdigit():
        raise ValueError(f"invalid Redis URL {url!r}: the database must be a number (/0, /1, ...); {expected}")
    return RedisTarget(
        host=parts.hostname,
        port=port if port is not None else REDIS_DEFAULT_PORT,
        db=int(db_text) if db_text else 0,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        tls=parts.scheme == "rediss",
    )
