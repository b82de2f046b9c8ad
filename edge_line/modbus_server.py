"""`--modbus-serve [HOST:]PORT`: a Modbus TCP server the PLC polls for the station's latest decision.

Holding registers (function code 3), refreshed at the moment the PLC reads them:
  0  last verdict: 0 none yet, 1 good, 2 defect, 3 invalid
  1  frame id, high word      2  frame id, low word
  3  rejects since start (mod 65536)   4  decisions since start (mod 65536)
  5  last score × 1000        6  seconds since the last decision (capped at 65535)
Binds to localhost unless a host is given: a PLC on the plant network needs
`--modbus-serve 0.0.0.0:5020` (see README, Security).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge_runtime.errors import ServiceError
from edge_runtime.web import parse_address

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
VERDICT_CODES = {"good": 1, "defect": 2, "invalid": 3}
REGISTERS = 7


class ModbusStatusServer:
    def __init__(self, address: str):
        self.host, self.port = parse_address(address, "--modbus-serve")
        self.lock = threading.Lock()
        self.values = [0] * REGISTERS
        self.rejects = self.decisions = 0
        self.last_decided = None
        self.loop = asyncio.new_event_loop()
        self.server = None

    def __enter__(self) -> "ModbusStatusServer":
        with socket.socket() as probe:  # pymodbus logs a bind failure instead of raising it: look first
            try:
                probe.bind((self.host, self.port))
            except OSError as exc:
                raise ServiceError(f"--modbus-serve {self.host}:{self.port} cannot be served ({exc.strerror}): "
                                   "choose another port") from None
        device = SimDevice(id=0, simdata=[SimData(0, count=REGISTERS, values=0, datatype=DataType.REGISTERS)],
                           action=self._on_request)
        ready = threading.Event()

        async def serve():
            self.server = ModbusTcpServer(device, address=(self.host, self.port))
            ready.set()
            await self.server.serve_forever()

        def run():
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(serve())

        threading.Thread(target=run, name="modbus-serve", daemon=True).start()
        ready.wait(5)
        return self

    async def _on_request(self, function_code, start_address, address, count, current_registers, set_values):
        if set_values is not None:
            return None  # the PLC reads; writes change nothing here
        with self.lock:
            values = list(self.values)
            age = time.monotonic() - self.last_decided if self.last_decided is not None else 65535
        values[6] = min(int(age), 65535)
        for i in range(len(current_registers)):
            if 0 <= start_address + i < REGISTERS:
                current_registers[i] = values[start_address + i]
        return None

    def __call__(self, record: dict, frame=None) -> None:
        if record.get("type") != "verdict":
            return
        with self.lock:
            self.decisions += 1
            self.rejects += record["verdict"] == "defect"
            frame_id = int(record["frame_id"]) & 0xFFFFFFFF
            score = record.get("score")
            self.values[:6] = [VERDICT_CODES.get(record["verdict"], 0), frame_id >> 16, frame_id & 0xFFFF,
                               self.rejects & 0xFFFF, self.decisions & 0xFFFF,
                               0 if score is None else min(int(round(score * 1000)), 65535)]
            self.last_decided = time.monotonic()

    def __exit__(self, *exc) -> None:
        if self.server is not None:
            asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop).result(timeout=5)
