"""`--mqtt mqtt://HOST:PORT/BASE/TOPIC`: every record as JSON to BASE/TOPIC/<record type>.

Verdicts go to `…/verdict`, outages to `…/outage`, the live figures to `…/stats`,
the run's end to `…/summary`. `…/status` holds a retained "online" while the
station runs and "offline" after it stops — also when it dies, through the
broker's last will. Delivery is at least once (QoS 1 by default): a record
stays in the output's bounded queue until the broker has acknowledged it, so a
broker restart loses nothing that fits in the queue; what does not fit is
dropped oldest-first and counted.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import threading
from urllib.parse import unquote, urlparse

import paho.mqtt.client as mqtt

from edge_runtime.errors import ServiceError
from edge_runtime.web import load_credentials

AUTH_FAILURES = ("bad user name or password", "not authorized")


def parse_mqtt_url(url: str) -> tuple[str, int, str, bool]:
    """(host, port, base topic, tls) from mqtt[s]://HOST[:PORT]/BASE."""
    parsed = urlparse(url)
    if parsed.scheme not in ("mqtt", "mqtts") or not parsed.hostname:
        raise ServiceError(f"--mqtt {url!r}: expected mqtt://HOST[:PORT]/BASE, "
                           "e.g. mqtt://broker.plant:1883/lineside/line1/station3")
    tls = parsed.scheme == "mqtts"
    base = unquote(parsed.path).strip("/") or f"lineside/{socket.gethostname()}"
    if any(c in base for c in "#+"):
        raise ServiceError(f"--mqtt {url!r}: the topic may not hold the wildcards # or +")
    try:
        port = parsed.port or (8883 if tls else 1883)
    except ValueError:
        raise ServiceError(f"--mqtt {url!r}: the port must be a number from 1 to 65535") from None
    return parsed.hostname, port, base, tls


def load_mqtt_credentials(path: str | None) -> tuple[str, str] | None:
    """From --mqtt-auth FILE (user:password), else LINESIDE_MQTT_USER / LINESIDE_MQTT_PASSWORD. Never logged."""
    return load_credentials(path, flag="--mqtt-auth", env="LINESIDE_MQTT")


class MqttOutput:
    """The broker connection (paho, reconnecting on its own) and `deliver(record)` for a QueuedSink."""

    def __init__(self, url: str, qos: int = 1, retain: bool = False, credentials=None, ca_file: str | None = None,
                 connect_wait_s: float = 3.0, echo=print):
        self.host, self.port, self.base, tls = parse_mqtt_url(url)
        self.qos, self.retain, self.connect_wait_s, self.echo, self.tls = qos, retain, connect_wait_s, echo, tls
        self.status_topic = f"{self.base}/status"
        self.connected, self.closed = threading.Event(), threading.Event()
        self.refused: str | None = None
        self.reconnects = 0
        self._ever_connected = False
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"lineside-{socket.gethostname()}-{os.getpid()}")
        if credentials:
            self.client.username_pw_set(*credentials)
        if ca_file and not tls:
            raise ServiceError(f"--mqtt-ca is for a TLS broker, and {url} is plain MQTT: write mqtts://"
                               f"{self.host}:8883/... or drop --mqtt-ca")
        if tls:
            try:
                self.client.tls_set(ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED)
            except (OSError, ssl.SSLError) as exc:  # FileNotFoundError names no file; say which
                raise ServiceError(f"--mqtt-ca {ca_file}: cannot load a CA certificate from it "
                                   f"({exc.strerror or exc}): give the broker's CA as a PEM file") from None
        self.client.will_set(self.status_topic, "offline", qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self.refused = str(reason_code)
            return
        self.refused = None
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        client.publish(self.status_topic, "online", qos=1, retain=True)
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.connected.clear()

    def __enter__(self) -> "MqttOutput":
        self.client.connect_async(self.host, self.port, keepalive=15)
        self.client.loop_start()
        self.connected.wait(self.connect_wait_s)
        if self.refused and self.refused.lower() in AUTH_FAILURES:
            self.__exit__()
            raise ServiceError(f"--mqtt broker {self.host}:{self.port} refused the login ({self.refused}): "
                               "check --mqtt-auth or LINESIDE_MQTT_USER/LINESIDE_MQTT_PASSWORD")
        if not self.connected.is_set():
            hint = " (mqtts: check that --mqtt-ca signed the broker's certificate)" if self.tls else ""
            self.echo(f"mqtt: broker {self.host}:{self.port} does not answer yet{hint}; inspecting anyway, records "
                      "are queued and sent when it does")
        return self

    def deliver(self, record: dict) -> None:
        """Publish and wait for the broker's acknowledgement; retried across reconnects until closed."""
        payload = json.dumps(record, separators=(",", ":"))
        topic = f"{self.base}/{record.get('type', 'record')}"
        while not self.closed.is_set():
            if not self.connected.wait(0.2):
                continue
            info = self.client.publish(topic, payload, qos=self.qos, retain=self.retain)
            try:
                info.wait_for_publish(timeout=5.0)
            except (RuntimeError, ValueError):  # not connected any more, or the queue refused it
                continue
            if info.is_published():
                return
        raise RuntimeError("stopped before the broker acknowledged the record")

    def __exit__(self, *exc) -> None:
        self.closed.set()
        if self.connected.is_set():
            self.client.publish(self.status_topic, "offline", qos=1, retain=True).wait_for_publish(timeout=2.0)
        self.client.disconnect()
        self.client.loop_stop()
