"""systemd integration without a dependency: sd_notify over the socket, the watchdog, the unit file.

`Type=notify`: edge-run says READY=1 once the source is open and the model
warmed, then WATCHDOG=1 from the pipeline's loop (which turns at least every
0.5 s, frames or not). If the loop hangs, the pings stop and systemd restarts
the service. Outside systemd (no NOTIFY_SOCKET) all of this does nothing.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path


def notify(state: str) -> bool:
    """Send `state` (e.g. "READY=1") to systemd; False when not run by systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract socket namespace
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(state.encode(), address)
        except OSError:
            return False
    return True


class Watchdog:
    """Pings WATCHDOG=1 at half the interval systemd asked for (WATCHDOG_USEC); a no-op when it asked none."""

    def __init__(self):
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        wanted = usec.isdigit() and (not pid or pid == str(os.getpid()))
        self.every_s = int(usec) / 2e6 if wanted else None
        self._last = 0.0

    def beat(self) -> None:
        if self.every_s is None:
            return
        now = time.monotonic()
        if now - self._last >= self.every_s:
            notify("WATCHDOG=1")
            self._last = now


UNIT = """\
# lineside station: {description}
# Installed by `edge-run install-service`; see README, Running as a service.
[Unit]
Description=lineside edge-run ({description})
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
ExecStart={exec_start}
WorkingDirectory={workdir}
User={user}
Group={user}
# the camera: /dev/video* belong to group video
SupplementaryGroups=video
Restart=on-failure
RestartSec=2
WatchdogSec={watchdog_s}
TimeoutStopSec=15
# SIGTERM: edge-run finishes the frame in flight, flushes and fsyncs the records, exits 0
KillSignal=SIGTERM
StandardOutput=journal
StandardError=journal
# hardening: nothing but the station's own folder is writable
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
ReadWritePaths={workdir}
DevicePolicy=closed
DeviceAllow=char-video4linux rw
DeviceAllow=/dev/nvidia0 rw
DeviceAllow=/dev/nvidiactl rw
DeviceAllow=/dev/nvidia-uvm rw

[Install]
WantedBy=multi-user.target
"""


def unit_text(config: Path, user: str, watchdog_s: int = 30, executable: str | None = None) -> str:
    """The unit for one station, running `edge-run --config CONFIG` from the config's folder."""
    exe = executable or str(Path(sys.argv[0]).resolve())
    config = config.resolve()
    return UNIT.format(description=config.stem, exec_start=f"{exe} --config {config}", workdir=config.parent,
                       user=user, watchdog_s=watchdog_s)
