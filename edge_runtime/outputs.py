"""Build edge-run's outputs from its options: files, windows, the line's systems (each behind a bounded queue)."""

from __future__ import annotations

import contextlib
import importlib
import threading

import click

from edge_runtime import actions
from edge_runtime.errors import ServiceError
from edge_runtime.prometheus import MetricsSink
from edge_runtime.queued import QueuedSink
from edge_runtime.sinks import DefectSaver, Display, JsonlSink, VideoRecorder
from edge_runtime.web import WebView, load_credentials


def _line_module(name: str, flag: str):
    """edge_line.<name>, which needs the `line` extra; loaded only when its flag is used."""
    try:
        return importlib.import_module(f"edge_line.{name}")
    except ImportError as exc:
        raise ServiceError(f"{flag} needs {exc.name}: pip install 'lineside[line]'") from None


class Failures:
    """Output failures: each output's first one is said on stderr; under --output-failure stop it stops the line."""

    def __init__(self, policy: str, stop: threading.Event):
        self.policy, self.stop, self.first = policy, stop, None
        self.said: set[str] = set()

    def __call__(self, name: str, message: str) -> None:
        if name not in self.said and self.policy == "continue":  # once per output: the summary counts the rest
            self.said.add(name)
            click.echo(f"output {name} failing: {message} (inspection goes on; failures are counted)", err=True)
        if self.policy == "stop" and self.first is None:
            self.first = f"output {name} failed ({message})"
            self.stop.set()


def open_outputs(stack: contextlib.ExitStack, opts: dict, model, roi, stop: threading.Event,
                 failures: Failures, live: bool = True) -> tuple[list, list[QueuedSink]]:
    """Enter every output the options ask for; (sinks in call order, the queued ones for the summary). `live`:
    the source is a camera or stream (a file or folder replayed as fast as it decodes is not)."""
    echo = lambda line: click.echo(line, err=True)  # noqa: E731
    sinks, queues = [], []

    def queued(name, deliver, only=None):
        queue = stack.enter_context(QueuedSink(name, deliver, maxsize=opts["output_queue"], only=only,
                                               on_failure=failures))
        queues.append(queue)
        sinks.append(queue)

    if opts["jsonl"]:
        max_bytes = int(opts["jsonl_max_mb"] * 1e6) if opts["jsonl_max_mb"] else None
        jsonl = stack.enter_context(JsonlSink(opts["jsonl"], max_bytes=max_bytes, backlog=opts["output_queue"],
                                              on_failure=failures))
        sinks.append(jsonl)
        queues.append(jsonl)  # counted in the summary and in /metrics like the queued outputs
    if opts["mqtt"]:
        mqtt = _line_module("mqtt", "--mqtt")
        broker = stack.enter_context(mqtt.MqttOutput(opts["mqtt"], qos=opts["mqtt_qos"], retain=opts["mqtt_retain"],
                                                     credentials=mqtt.load_mqtt_credentials(opts["mqtt_auth"]),
                                                     ca_file=opts["mqtt_ca"], echo=echo))
        queued("mqtt", broker.deliver)
    if opts["modbus_reject"]:
        modbus = _line_module("modbus", "--modbus-reject")
        plc = stack.enter_context(modbus.ModbusReject(opts["modbus_reject"], pulse_ms=opts["modbus_pulse_ms"],
                                                      id_register=opts["modbus_id_register"],
                                                      required=opts["output_failure"] == "stop", echo=echo))
        queued("modbus", plc.deliver, only=actions.is_reject)
    if opts["modbus_serve"]:
        served = stack.enter_context(_line_module("modbus_server", "--modbus-serve").ModbusStatusServer(
            opts["modbus_serve"]))
        sinks.append(served)  # only stores numbers under a lock: no queue needed
        echo(f"modbus: serving the latest decision at {served.host}:{served.port} (holding registers 0-6)")
    if opts["webhook"]:
        queued("webhook", actions.webhook(opts["webhook"]), only=actions.is_reject)
    if opts["on_reject"]:
        queued("command", actions.command(opts["on_reject"]), only=actions.is_reject)
    if opts["save_defects"]:
        sinks.append(stack.enter_context(DefectSaver(opts["save_defects"], roi)))
    if opts["explain_rejects"]:
        from edge_runtime.reject_maps import RejectMaps

        maps = stack.enter_context(RejectMaps(opts["save_defects"], opts["model"], roi, live))
        sinks.append(maps)
        queues.append(maps)
    if opts["record"]:
        sinks.append(stack.enter_context(VideoRecorder(opts["record"], opts["fps"] or 30.0, roi)))
    if opts["show"]:
        sinks.append(stack.enter_context(Display(roi, stop)))
    if opts["web"]:
        view = WebView(opts["web"], roi, model.describe(), load_credentials(opts["web_auth"]))
        sinks.append(stack.enter_context(view))
        echo(f"web view: http://{view.host}:{view.port}/")
    if opts["metrics_port"]:
        metrics = stack.enter_context(MetricsSink(opts["metrics_port"], model.describe(), queues))
        sinks.append(metrics)
        echo(f"metrics: http://{metrics.host}:{metrics.port}/metrics")
    return sinks, queues
