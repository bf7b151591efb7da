"""Redis Streams output: each frame's JSON Lines record is XADDed to `<prefix>:<camera id>`.

`write` only appends to a bounded in-memory buffer; one background thread sends it in order, reconnects
with backoff while the server is away and resumes where it stopped, so a broker outage never stalls the
pipeline and loses nothing unless the buffer overflows (then the oldest records go first, counted).

Entry ids are chosen here (`<ms>-<seq>`, above the stream's last id) rather than by the server: a batch
that was cut off mid-send is resent with the same ids and Redis refuses the entries it already holds,
so a retry neither duplicates nor reorders records.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from blazestream.errors import BlazestreamError, MissingDependencyError
from blazestream.results import FrameResult
from blazestream.uris import parse_redis_url

log = logging.getLogger(__name__)

FIELD = "record"
"""The entry's one field; its value is exactly the JSON Lines record."""
CHUNK = 256
"""Entries per pipelined round trip."""
BACKOFF_INITIAL_S = 0.1
BACKOFF_MAX_S = 2.0
SOCKET_TIMEOUT_S = 5.0
_ID_TOO_SMALL = "equal or smaller"


class OutputLossError(BlazestreamError):
    """Records an output could not deliver (raised from `close`, so the run's summary shows it)."""


def _redis() -> Any:
    try:
        import redis
    except ImportError as exc:
        raise MissingDependencyError(
            f"the Redis output needs the redis client library ({exc}); pip install 'blazestream[redis]'"
        ) from exc
    return redis


@dataclass
class _Entry:
    camera: str
    record: FrameResult | str
    """The result (serialized by the sender thread, off the pipeline's), or its JSON text."""
    entry_id: tuple[int, int] | None = None
    sent: bool = False
    """True once a send of it may have reached the server (its id must not change any more)."""


class RedisStreamSink:
    """Append each FrameResult's JSON record to the stream `<stream_prefix>:<camera id>`."""

    def __init__(
        self,
        url: str,
        *,
        stream_prefix: str = "blazestream",
        maxlen: int | None = 100_000,
        buffer: int = 20_000,
        flush_timeout_s: float = 5.0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if buffer < 1:
            raise ValueError(f"the Redis buffer must hold at least 1 record, got {buffer}")
        self.target = parse_redis_url(url)
        redis = _redis()
        self._errors = redis.exceptions
        self.url = self.target.display
        self.stream_prefix = stream_prefix
        self.maxlen = maxlen
        self.capacity = buffer
        self.flush_timeout_s = flush_timeout_s
        self._client = redis.Redis(
            host=self.target.host,
            port=self.target.port,
            db=self.target.db,
            username=self.target.username,
            password=self.target.password,
            ssl=self.target.tls,
            socket_connect_timeout=2.0,
            socket_timeout=SOCKET_TIMEOUT_S,
            retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),  # the sender thread does the retrying
            client_name="blazestream",
        )
        self._cond = threading.Condition()
        self._queue: deque[_Entry] = deque()
        self._top: dict[str, tuple[int, int]] = {}
        """Per camera: the highest entry id the stream holds or that was given out (valid while connected)."""
        self._closing = False
        self._deadline: float | None = None
        self._in_flight = 0
        self._connected = False
        self._outage_logged = False
        self._failures_logged: set[str] = set()
        self.delivered: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        """Per camera: records lost (buffer overflow, refused by the server, or still queued at close)."""
        self._metrics = _RedisMetrics(registry or CollectorRegistry())
        self._thread = threading.Thread(target=self._send_loop, name="redis-output", daemon=True)
        self._thread.start()

    # -- pipeline side -----------------------------------------------------------------------------

    @property
    def _overflow_reason(self) -> str:
        return f"the buffer of {self.capacity} records was full while {self.url} was away"

    def key(self, camera: str) -> str:
        return f"{self.stream_prefix}:{camera}"

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def buffered(self) -> int:
        with self._cond:
            return len(self._queue)

    def write(self, results: list[FrameResult]) -> None:
        """Queue the records; never waits for the server."""
        entries = [_Entry(r.stream, r if r.image is None else replace(r, image=None)) for r in results]
        overflow: list[_Entry] = []
        with self._cond:
            if self._closing:
                return
            self._queue.extend(entries)
            while self._queue and len(self._queue) + self._in_flight > self.capacity:
                overflow.append(self._queue.popleft())
            self._cond.notify()
        if overflow:
            self._lose(overflow, self._overflow_reason)

    def close(self) -> None:
        """Send what is queued (for at most `flush_timeout_s`), stop the thread, and report any loss."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._deadline = time.monotonic() + self.flush_timeout_s
            self._cond.notify_all()
        self._thread.join(timeout=self.flush_timeout_s + SOCKET_TIMEOUT_S + 1.0)
        with self._cond:
            left = list(self._queue)
            self._queue.clear()
        if left:
            self._lose(left, f"not delivered to {self.url} within {self.flush_timeout_s:g} s of the end")
        self._client.close()
        self._report()

    # -- accounting: the one place that decides what counts as lost ------------------------------

    def _lose(self, entries: Iterable[_Entry], why: str) -> None:
        counts: dict[str, int] = {}
        for entry in entries:
            counts[entry.camera] = counts.get(entry.camera, 0) + 1
        with self._cond:
            for camera, n in counts.items():
                self.dropped[camera] = self.dropped.get(camera, 0) + n
                self._metrics.dropped.labels(camera).inc(n)
            first = why not in self._failures_logged
            self._failures_logged.add(why)
        if first:
            log.error("Redis output: records dropped: %s (counted in blazestream_redis_dropped_total)", why)

    def _report(self) -> None:
        if self.dropped:
            per_camera = ", ".join(f"{camera}: {n}" for camera, n in sorted(self.dropped.items()))
            total = sum(self.dropped.values())
            raise OutputLossError(f"{self.url}: {total} record(s) not delivered ({per_camera})")

    # -- sender thread -----------------------------------------------------------------------------

    def _send_loop(self) -> None:
        backoff = BACKOFF_INITIAL_S
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue or (self._deadline is not None and time.monotonic() >= self._deadline):
                    return  # closing: all sent, or out of time (close() counts what is left)
            chunk: list[_Entry] = []
            try:
                if not self._connected:
                    self._client.ping()  # while the server is away, records stay queued (and trimmable)
                with self._cond:
                    chunk = [self._queue.popleft() for _ in range(min(CHUNK, len(self._queue)))]
                    self._in_flight = len(chunk)
                retry = self._send(chunk)
            except (self._errors.ConnectionError, self._errors.TimeoutError, OSError) as exc:
                retry = chunk
                self._went_away(exc)
            except Exception as exc:  # e.g. WRONGTYPE: a key of that name that is not a stream
                retry = []
                self._lose(chunk, f"sending to {self.url} failed ({type(exc).__name__}: {exc})")
            else:
                self._came_back()
                backoff = BACKOFF_INITIAL_S
            with self._cond:
                self._in_flight = 0
                self._queue.extendleft(reversed(retry))
                overflow = [self._queue.popleft() for _ in range(max(0, len(self._queue) - self.capacity))]
                self._metrics.buffered.set(len(self._queue))
                if not self._connected and not self._closing:
                    self._cond.wait(backoff)  # wakes at once when closing starts
            if overflow:
                self._lose(overflow, self._overflow_reason)
            if not self._connected:
                if self._closing:
                    time.sleep(min(backoff, BACKOFF_INITIAL_S))
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _send(self, chunk: list[_Entry]) -> list[_Entry]:
        """One pipelined round trip; returns the entries to try again (kept in order)."""
        for camera in {e.camera for e in chunk if e.camera not in self._top}:
            try:
                last = self._client.xrevrange(self.key(camera), count=1)
            except self._errors.ResponseError:
                last = []  # not a stream: its XADDs are refused one by one below, other cameras go on
            self._top[camera] = _parse_id(last[0][0]) if last else (0, 0)
        now_ms = int(time.time() * 1000)
        resent = [entry.sent for entry in chunk]
        pipe = self._client.pipeline(transaction=False)
        for entry in chunk:
            top = self._top[entry.camera]
            if entry.entry_id is None:
                entry.entry_id = (now_ms, 0) if now_ms > top[0] else (top[0], top[1] + 1)
            self._top[entry.camera] = max(top, entry.entry_id)
            entry.sent = True
            pipe.xadd(
                self.key(entry.camera),
                {FIELD: entry.record if isinstance(entry.record, str) else entry.record.json_line},
                id=f"{entry.entry_id[0]}-{entry.entry_id[1]}",
                maxlen=self.maxlen,
                approximate=True,
            )
        replies = pipe.execute(raise_on_error=False)
        retry: list[_Entry] = []
        refused: list[tuple[_Entry, Exception]] = []
        for entry, was_sent, reply in zip(chunk, resent, replies, strict=True):
            if not isinstance(reply, Exception) or (was_sent and _ID_TOO_SMALL in str(reply)):
                # (a resent entry refused for its id is one an earlier, cut-off send already stored)
                self.delivered[entry.camera] = self.delivered.get(entry.camera, 0) + 1
            elif _ID_TOO_SMALL in str(reply):
                # another writer moved the stream past the id just given out: re-read it, new id
                self._top.pop(entry.camera, None)
                entry.entry_id, entry.sent = None, False
                retry.append(entry)
            else:
                refused.append((entry, reply))
        if refused:
            self._lose([e for e, _ in refused], f"{self.url} refused the entries ({refused[0][1]})")
        return retry

    def _went_away(self, exc: BaseException) -> None:
        self._top.clear()  # re-read after reconnecting: the server may have lost or kept anything
        self._connected = False
        self._metrics.connected.set(0)
        if not self._outage_logged:
            self._outage_logged = True
            what = "refused the credentials" if isinstance(exc, self._errors.AuthenticationError) else "is unreachable"
            log.warning(
                "Redis %s %s (%s); buffering up to %d records and retrying in the background",
                self.url,
                what,
                exc,
                self.capacity,
            )

    def _came_back(self) -> None:
        if not self._connected:
            self._connected = True
            self._metrics.connected.set(1)
            if self._outage_logged:
                log.info("Redis %s is back; sending the buffered records", self.url)
            self._outage_logged = False


def _parse_id(raw: bytes | str) -> tuple[int, int]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


class _RedisMetrics:
    """The output's own series, on the run's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.dropped = Counter(
            "blazestream_redis_dropped",
            "Records the Redis output lost (buffer full during an outage, refused, or unsent at exit).",
            ["camera"],
            registry=registry,
        )
        self.buffered = Gauge("blazestream_redis_buffered", "Records waiting for the Redis server.", registry=registry)
        self.connected = Gauge(
            "blazestream_redis_connected", "1 while the last send to Redis succeeded.", registry=registry
        )
