"""MQTT output: one topic per camera carrying the JSON Lines record; a broker that is down never stalls the pipeline.

paho's network thread connects, reconnects (with backoff) and sends; `write` only queues. QoS 0 messages
published while disconnected are dropped by paho, QoS 1/2 ones wait in a bounded queue for the reconnect.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from blazestream.errors import MissingDependencyError
from blazestream.results import FrameResult
from blazestream.uris import MQTT_DEFAULT_PORT, parse_mqtt_url, redact_uri

log = logging.getLogger(__name__)

DEFAULT_PORT = MQTT_DEFAULT_PORT
MAX_QUEUED = 1000
"""QoS>0 messages kept while the broker is away (about 30 s of 1 camera at 30 fps); newer ones are dropped."""
CLOSE_TIMEOUT_S = 5.0


def _paho() -> Any:
    try:
        import paho.mqtt.client as mqtt
    except ImportError as exc:
        raise MissingDependencyError(
            f"the MQTT output needs paho-mqtt 2.x ({exc}); pip install 'blazestream[mqtt]'"
        ) from exc
    if not hasattr(mqtt, "CallbackAPIVersion"):
        raise MissingDependencyError("the MQTT output needs paho-mqtt >= 2.0; pip install 'blazestream[mqtt]'")
    return mqtt


class MqttSink:
    """Publish each FrameResult's JSON record to `<topic_prefix>/<stream>`."""

    name = "mqtt"

    def __init__(
        self,
        url: str,
        topic_prefix: str = "blazestream",
        qos: int = 0,
        client_id: str | None = None,
    ) -> None:
        if qos not in (0, 1, 2):
            raise ValueError(f"MQTT QoS must be 0, 1 or 2, got {qos}")
        host, port, user, password = parse_mqtt_url(url)
        mqtt = _paho()
        self.url = redact_uri(url)
        """The broker URL without its password (for logs)."""
        self.topic_prefix = topic_prefix.rstrip("/")
        self.qos = qos
        self._lock = threading.Lock()
        self._connected = False
        self._warned = False
        self._pending: list[Any] = []
        self._closed = False
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "", protocol=mqtt.MQTTv311)
        if user is not None:
            self._client.username_pw_set(user, password)
        self._client.max_queued_messages_set(MAX_QUEUED)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.connect_async(host, port, keepalive=30)
        self._client.loop_start()

    @property
    def connected(self) -> bool:
        return self._connected

    def _warn(self, what: str) -> None:
        """One warning per outage, not one per retry."""
        with self._lock:
            if self._warned or self._closed:
                return
            self._warned = True
        log.warning(
            "MQTT broker %s %s; retrying in the background (meanwhile QoS 0 results are dropped, QoS 1/2 ones queued)",
            self.url,
            what,
        )

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if getattr(reason_code, "is_failure", False):
            self._warn(f"refused the connection ({reason_code})")
            return
        with self._lock:
            self._connected = True
            self._warned = False
        log.info("MQTT connected to %s", self.url)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self._connected = False
        self._warn(f"disconnected ({reason_code})")

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self._connected = False
        self._warn("is unreachable")

    def topic(self, stream: str) -> str:
        return f"{self.topic_prefix}/{stream}"

    def write(self, results: list[FrameResult]) -> None:
        if self._closed:
            return
        for result in results:
            info = self._client.publish(self.topic(result.stream), result.json_line, qos=self.qos)
            if self.qos > 0:
                self._pending.append(info)
        if len(self._pending) > 2 * MAX_QUEUED:
            self._pending = [i for i in self._pending if not _done(i)]

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Wait (at most `timeout` s) for QoS>0 messages still in flight, then disconnect."""
        if self._closed:
            return
        deadline = time.monotonic() + timeout
        while self._connected and time.monotonic() < deadline:
            self._pending = [i for i in self._pending if not _done(i)]
            if not self._pending:
                break
            time.sleep(0.02)
        if self._pending and any(not _done(i) for i in self._pending):
            log.warning("MQTT: %d message(s) not acknowledged by %s at close", len(self._pending), self.url)
        self._closed = True
        self._client.disconnect()
        self._client.loop_stop()


def _done(info: Any) -> bool:
    """Published, or never going to be (queue full, or an error)."""
    try:
        return bool(info.is_published())
    except (ValueError, RuntimeError):
        return True
