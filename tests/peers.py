"""Real peers that tests start: an MQTT broker (mosquitto), an HTTP receiver, a Modbus TCP PLC (pymodbus)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from clitools import free_port


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    """Wait until a local socket listens on `port`, without connecting to it: a server that takes one client
    only (ffmpeg -listen 1) would spend itself on a probe. Reads the kernel's socket table (Linux)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError), open(table) as rows:
                for row in list(rows)[1:]:
                    fields = row.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                        return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port} after {timeout:g} s")


class Mosquitto:
    """A mosquitto broker on a free loopback port, with persistence so that a restart keeps sessions."""

    def __init__(self, folder: Path, password_file: Path | None = None, tls: tuple[Path, Path, Path] | None = None):
        self.folder, self.port, self.proc = folder, free_port(), None
        folder.mkdir(parents=True, exist_ok=True)
        tls_lines = f"cafile {tls[0]}\ncertfile {tls[1]}\nkeyfile {tls[2]}\n" if tls else ""
        auth = f"password_file {password_file}\nallow_anonymous false\n" if password_file else "allow_anonymous true\n"
        # run as root (CI), mosquitto would drop to its own user, who cannot read pytest's private folders
        user = "user root\n" if os.geteuid() == 0 else ""
        (folder / "mosquitto.conf").write_text(
            f"{user}listener {self.port} 127.0.0.1\n{tls_lines}{auth}persistence true\npersistence_location {folder}/\n"
            f"autosave_interval 1\n")

    def start(self) -> "Mosquitto":
        self.proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c",
                                      str(self.folder / "mosquitto.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # graceful: the broker saves its sessions and queued messages
            self.proc.wait(timeout=10)


def self_signed_tls(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it (openssl): (ca, cert, key)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key, cert, key = (folder / n for n in ("ca.pem", "ca.key", "server.pem", "server.key"))

    def ssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=lineside test CA",
        "-keyout", str(ca_key), "-out", str(ca))
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key),
        "-out", str(folder / "server.csr"))
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", str(folder / "server.csr"), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-days", "2", "-extfile", str(folder / "san.cnf"), "-out", str(cert))
    return ca, cert, key


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or (Path("/usr/sbin/mosquitto").exists() and "/usr/sbin/mosquitto") or None


class Subscriber:
    """A persistent-session MQTT client that keeps every message it receives (topic, payload)."""

    def __init__(self, port: int, topic: str):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{port}",
                                  clean_session=False)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()

    def _on_message(self, client, userdata, message):
        with self.lock:
            self.messages.append((message.topic, message.payload.decode()))

    def records(self, suffix: str) -> list[dict]:
        with self.lock:
            return [json.loads(p) for t, p in self.messages if t.endswith(suffix)]

    def payloads(self, topic: str) -> list[str]:
        with self.lock:
            return [p for t, p in self.messages if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class HttpReceiver:
    """Collects the JSON bodies POSTed to it; `delay_s` makes it a slow receiver."""

    def __init__(self, delay_s: float = 0.0):
        self.bodies: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(delay_s)
                receiver.bodies.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/rejects"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ModbusPlc:
    """A pymodbus TCP server standing in for the PLC; `writes` logs (time, kind, address, values).

    `on_read(address, count, registers)` may change the registers a read is about to return (a live
    sensor block); `port` lets a test start a PLC again where a stopped one listened.
    """

    def __init__(self, port: int | None = None, on_read=None):
        from pymodbus.simulator import DataType, SimData, SimDevice

        self.writes: list[tuple[float, str, int, list]] = []

        async def log_writes(function_code, start_address, address, count, current_registers, set_values):
            if set_values is not None:  # 5/15: coils, 6/16: holding registers
                kind = "coil" if function_code in (5, 15) else "register"
                self.writes.append((time.monotonic(), kind, address, list(set_values)))
            elif on_read is not None:
                on_read(address - start_address, count, current_registers)
            return None

        bits = lambda: [SimData(0, count=200, values=False, datatype=DataType.BITS)]  # noqa: E731
        regs = lambda: [SimData(0, count=200, values=0, datatype=DataType.REGISTERS)]  # noqa: E731
        self.device = SimDevice(id=0, simdata=(bits(), bits(), regs(), regs()), action=log_writes)
        self.port = port or free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        wait_for_port(self.port)

    def _serve(self) -> None:
        from pymodbus.server import ModbusTcpServer

        async def serve():  # pymodbus builds its transport on the running loop
            self.server = ModbusTcpServer(self.device, address=("127.0.0.1", self.port))
            await self.server.serve_forever()

        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(serve())

    def coil_writes(self) -> list[tuple[float, int, bool]]:
        return [(t, a, bool(v[0])) for t, kind, a, v in self.writes if kind == "coil"]

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop).result(timeout=5)
