"""`--modbus-reject HOST:PORT/COIL`: fire the PLC's reject gate over Modbus TCP.

On each reject: optionally the frame id into two holding registers (high word
first), then the coil on for `pulse_ms`, then off again. Runs in its output's
own thread (the pulse blocks that thread, never the line); rejects closer
together than a pulse queue up, bounded and counted.
"""

from __future__ import annotations

import logging
import time

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from edge_runtime.errors import ServiceError

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # our own lines say what failed, once


def parse_target(text: str) -> tuple[str, int, int]:
    """HOST:PORT/COIL → (host, port, coil)."""
    address, _, coil = text.partition("/")
    host, _, port = address.rpartition(":")
    try:
        host, port, coil = host, int(port), int(coil)
    except ValueError:
        raise ServiceError(f"--modbus-reject {text!r}: expected HOST:PORT/COIL, e.g. 192.168.0.10:502/16") from None
    if not host:  # the PLC is another machine: a guessed localhost would only fail later as "refuses connections"
        raise ServiceError(f"--modbus-reject {text!r}: name the PLC's host, e.g. 192.168.0.10:{port}/{coil}")
    if not 0 < port < 65536 or not 0 <= coil < 65536:
        raise ServiceError(f"--modbus-reject {text!r}: the port must be 1-65535 and the coil 0-65535")
    return host, port, coil


class ModbusReject:
    def __init__(self, target: str, pulse_ms: float = 100, device_id: int = 1, id_register: int | None = None,
                 timeout_s: float = 1.0, required: bool = False, echo=print):
        self.host, self.port, self.coil = parse_target(target)
        self.pulse_s, self.device_id, self.id_register, self.echo = pulse_ms / 1e3, device_id, id_register, echo
        self.client = ModbusTcpClient(self.host, port=self.port, timeout=timeout_s, retries=1)
        self.required = required  # --output-failure stop: no inspection without the reject gate
        self.pulses = 0

    def __enter__(self) -> "ModbusReject":
        if not self.client.connect():
            if self.required:
                raise ServiceError(f"--modbus-reject {self.host}:{self.port}/{self.coil}: the PLC refuses "
                                   "connections, and --output-failure stop says not to inspect without the reject gate")
            self.echo(f"modbus: {self.host}:{self.port} refuses connections; inspecting anyway, each reject "
                      "retries it (use --output-failure stop to halt the line instead)")
        return self

    def _check(self, answer, what: str) -> None:
        if answer.isError():
            raise RuntimeError(f"PLC {self.host}:{self.port} refused {what}: {answer}")

    def deliver(self, record: dict) -> None:
        if not self.client.connected and not self.client.connect():
            raise RuntimeError(f"PLC {self.host}:{self.port} refuses connections")
        try:
            if self.id_register is not None:
                frame = int(record.get("frame_id") or 0) & 0xFFFFFFFF
                self._check(self.client.write_registers(self.id_register, [frame >> 16, frame & 0xFFFF],
                                                        device_id=self.device_id), "the frame id")
            self._check(self.client.write_coil(self.coil, True, device_id=self.device_id), "coil on")
            time.sleep(self.pulse_s)
            self._check(self.client.write_coil(self.coil, False, device_id=self.device_id), "coil off")
        except ModbusException as exc:
            self.client.close()  # reconnect on the next reject
            raise RuntimeError(f"PLC {self.host}:{self.port}: {exc}") from None
        self.pulses += 1

    def __exit__(self, *exc) -> None:
        self.client.close()
