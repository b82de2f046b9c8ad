"""`edge-run`: judge frames from a camera, stream, video file or image folder, or windows of sensor samples
(CSV replay, UDP, serial, Modbus), with a lineside model.

`edge-run doctor` checks what this machine can do (providers, OpenCV I/O, cameras, a model).
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sys
import threading
from pathlib import Path

import click
from click.core import ParameterSource

from edge_runtime.cli_support import Finite, OutPath, parse_roi, run_cli
from edge_runtime.frame_checks import FrameLimits
from edge_runtime.line_config import load_line_config
from edge_runtime.errors import InputFileError, ServiceError, SourceError
from edge_runtime.model_swap import ModelSwapper, open_model
from edge_runtime.outputs import Failures, open_outputs
from edge_runtime.pipeline import run_pipeline
from edge_runtime.sensor_pipeline import run_sensor_pipeline
from edge_runtime.sensor_sources import open_sensor_source
from edge_runtime.session import DEVICES
from edge_runtime.sources import CaptureSettings, open_source
from edge_runtime.systemd import Watchdog, notify
from edge_runtime.web import parse_address

_CTX = {"help_option_names": ["-h", "--help"]}


@click.command(context_settings=_CTX)
@click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False),
              help="line.yaml with any of these options (flags given here win).")
@click.option("--camera", type=click.IntRange(min=0), default=None, help="Camera device index (0 = first camera).")
@click.option("--source", default=None,
              help="Video file, image folder, rtsp:// or http:// URL, GStreamer pipeline ('... ! appsink'), csi://N.")
@click.option("--sensor", default=None,
              help="Sensor samples for a sensor model: csv:PATH[?rate=HZ|recorded|max], udp://HOST:PORT, "
                   "serial:///dev/ttyX?baud=N, modbus://HOST:PORT?start=N&count=C&rate=HZ.")
@click.option("--model", default=None, type=click.Path(dir_okay=False), help="lineside .onnx artifact.")
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True,
              help="Execution provider; a demanded one that is not active is an error, never a silent fallback.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="ONNX Runtime intra-op threads.")
@click.option("--roi", default=None, help="Inspection window x,y,w,h in frame pixels (default: whole frame).")
@click.option("--threshold", type=Finite(0, 1), default=None, help="Override the model's reject threshold.")
@click.option("--jsonl", default=None, type=OutPath(dir_okay=False), help="Append one JSON record per frame here.")
@click.option("--jsonl-max-mb", type=Finite(min=0.001), default=None, help="Rotate the JSONL at this size.")
@click.option("--save-defects", default=None, type=OutPath(file_okay=False), help="Save each rejected frame here.")
@click.option("--explain-rejects", is_flag=True,
              help="Image classifier: beside each saved reject, a heat map of where it saw the defect (made off the "
                   "frame loop, on one core; skipped and counted when rejects come faster).")
@click.option("--record", default=None, type=OutPath(dir_okay=False), help="Write the annotated video (.mp4).")
@click.option("--show", is_flag=True, help="Show the annotated frames in a window (q quits).")
@click.option("--realtime", is_flag=True, help="Play a video file at its native rate like a camera (newest frame, drops counted).")
@click.option("--loop", is_flag=True, help="Repeat an image folder or a video file forever.")
@click.option("--max-frames", "--max-windows", "max_frames", type=click.IntRange(min=1), default=None,
              help="Stop after this many decisions (frames, or windows with --sensor).")
@click.option("--width", type=click.IntRange(min=1), default=None, help="Camera capture width (csi:// too).")
@click.option("--height", type=click.IntRange(min=1), default=None, help="Camera capture height (csi:// too).")
@click.option("--fps", type=Finite(min=0, min_open=True), default=None, help="Camera capture rate (csi:// too).")
@click.option("--fourcc", default=None, help="Camera pixel format, e.g. MJPG.")
@click.option("--exposure", type=Finite(), default=None, help="Camera exposure, in the driver's units.")
@click.option("--frozen-frames", type=click.IntRange(min=0), default=5, show_default=True,
              help="Flag a frame identical to the previous N (0: off).")
@click.option("--max-age-ms", type=Finite(min=0), default=500, show_default=True,
              help="Flag a frame older than this at decision (0: off).")
@click.option("--reconnect/--no-reconnect", default=True, show_default=True,
              help="Reopen a camera or stream that drops, with backoff.")
@click.option("--max-outage-s", type=Finite(min=0), default=None, help="Give up after this long without frames.")
@click.option("--web", default=None,
              help="Serve the operator's view at [HOST]:PORT (':8080' = localhost only; '0.0.0.0:8080' for the network).")
@click.option("--web-auth", default=None, type=click.Path(dir_okay=False),
              help="File with user:password for the web view (or LINESIDE_WEB_USER/LINESIDE_WEB_PASSWORD).")
@click.option("--mqtt", default=None, help="Publish records to mqtt[s]://HOST:PORT/BASE/TOPIC (needs the line extra).")
@click.option("--mqtt-auth", default=None, type=click.Path(dir_okay=False),
              help="File with user:password for the broker (or LINESIDE_MQTT_USER/LINESIDE_MQTT_PASSWORD).")
@click.option("--mqtt-ca", default=None, type=click.Path(dir_okay=False), help="CA certificate for mqtts://.")
@click.option("--mqtt-qos", type=click.IntRange(0, 2), default=1, show_default=True)
@click.option("--mqtt-retain", is_flag=True, help="Publish records retained.")
@click.option("--modbus-reject", default=None, help="On a reject, pulse this PLC coil: HOST:PORT/COIL.")
@click.option("--modbus-pulse-ms", type=Finite(min=1), default=100, show_default=True)
@click.option("--modbus-id-register", type=click.IntRange(min=0), default=None,
              help="Also write the frame id into this holding register and the next (high word first).")
@click.option("--modbus-serve", default=None,
              help="Serve the latest decision as Modbus holding registers at [HOST:]PORT for the PLC to poll.")
@click.option("--webhook", default=None, help="POST each reject's record as JSON to this http(s) URL.")
@click.option("--on-reject", default=None, help="Run this command on each reject, with VERDICT LABEL SCORE FRAME_ID.")
@click.option("--metrics-port", default=None, help="Serve Prometheus metrics at [HOST:]PORT (default host: localhost).")
@click.option("--output-queue", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Records each line output (MQTT, Modbus, webhook, command) may hold back before dropping.")
@click.option("--output-failure", type=click.Choice(["continue", "stop"]), default="continue", show_default=True,
              help="What a failed output does: keep inspecting (counted), or stop the line (fail-safe).")
@click.option("--watch-model", is_flag=True, help="Swap in a new model file when it changes on disk (SIGHUP too).")
@click.option("--manifest", default=None, type=click.Path(dir_okay=False),
              help="edge-export's manifest.json: refuse a model whose sha256 it does not list.")
@click.option("--model-check-s", type=Finite(min=0.1), default=None,
              help="Load and run each model file (the first and every swapped-in one) in a separate process first; "
                   "refuse it if that takes longer or crashes. For model files that arrive over the network.")
@click.option("--quiet", is_flag=True, help="No live line, only the summary.")
@click.pass_context
def edge_run(ctx, config_path, **options):
    """Judge every frame good / defect and say how long each stage took.

    \b
    Examples:
      edge-run --camera 0 --model part.onnx
      edge-run --source data/demo/line_clip.mp4 --model artifacts/brick/model.int8.onnx \\
               --roi 512,232,256,256 --jsonl verdicts.jsonl --save-defects rejects/
      edge-run --source rtsp://10.0.0.5/stream --model part.onnx --device cuda
      edge-run --source csi://0 --width 1920 --height 1080 --model part.onnx   # Jetson CSI camera
      edge-run --config line.yaml --threads 2
      edge-run --sensor udp://0.0.0.0:9000 --model vibration.onnx --jsonl windows.jsonl   # sensor windows
      edge-run --sensor csv:spindle.csv?rate=max --model vibration.onnx
      edge-run --camera 0 --model part.onnx --web 0.0.0.0:8080    # operator view in a browser
      edge-run --camera 0 --model part.onnx --mqtt mqtt://broker:1883/lineside/line1/st3 \\
               --modbus-reject 192.168.0.10:502/16 --metrics-port 9108 --watch-model
      edge-run install-service --config /srv/lineside/st3/line.yaml
      edge-run doctor --model part.onnx
    """
    opts, roi = _station_options(ctx, config_path, options)
    model = open_model(opts["model"], opts["device"], opts["threads"], opts["manifest"], opts["threshold"],
                       opts["model_check_s"])
    if opts["sensor"] and not model.is_sensor:
        raise SourceError(f"{model.path.name} judges images ({model.info.task} model): run it with --camera or "
                          "--source, not --sensor")
    if model.is_sensor and not opts["sensor"]:
        raise SourceError(f"{model.path.name} judges windows of sensor samples ({model.info.task} model): run it "
                          "with --sensor (csv:PATH, udp://HOST:PORT, serial:///dev/ttyX, modbus://HOST:PORT)")
    if opts["explain_rejects"] and model.info.task != "classify":
        raise click.UsageError(f"--explain-rejects maps where an image classifier saw the defect, and {model.path.name} "
                               f"is a {model.info.task} model" + (" (it saves its own heat map with each reject)"
                                                                  if model.info.task == "anomaly" else "")
                               + ": drop --explain-rejects")
    if opts["sensor"]:
        src = open_sensor_source(opts["sensor"], model.channels, model.info.extra.get("sample_rate_hz"))
    else:
        settings = CaptureSettings(opts["width"], opts["height"], opts["fps"], opts["fourcc"], opts["exposure"])
        src = open_source(opts["camera"], opts["source"], realtime=opts["realtime"], loop=opts["loop"],
                          settings=settings, reconnect=opts["reconnect"], max_outage_s=opts["max_outage_s"])
    limits = FrameLimits(frozen_frames=opts["frozen_frames"], max_age_ms=opts["max_age_ms"])
    stop = threading.Event()

    def announce():  # once the source is open, so that a failure to open stays one line
        click.echo(f"config: {json.dumps({k: v for k, v in opts.items() if v not in (None, False)})}", err=True)
        shape = (f"window {model.window} x {','.join(model.channels)}, stride {model.info.extra.get('stride')}, "
                 if model.is_sensor else "")
        click.echo(f"{src.name} → {model.path.name}: {model.info.task}, {shape}{model.info.precision}, "
                   f"{model.provider}, labels {','.join(model.info.labels)}, threshold {model.info.threshold}", err=True)
        notify("READY=1")  # systemd Type=notify: the station is inspecting

    swapper = ModelSwapper(model, opts["device"], opts["threads"], manifest=opts["manifest"],
                           watch=opts["watch_model"], threshold=opts["threshold"], check_s=opts["model_check_s"])
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())  # finish the frame in flight, flush, summarise
    signal.signal(signal.SIGHUP, lambda *_: swapper.requested.set())  # reload the model between two frames
    live = None if opts["quiet"] else (lambda line: click.echo(line, err=True))
    failures = Failures(opts["output_failure"], stop)
    with contextlib.ExitStack() as stack:
        sinks, queues = open_outputs(stack, opts, model, roi, stop, failures, live=src.live)
        if opts["sensor"]:
            summary = run_sensor_pipeline(src, model, sinks, max_windows=opts["max_frames"], stop=stop, on_live=live,
                                          on_start=announce, on_beat=Watchdog().beat, swapper=swapper,
                                          max_age_ms=opts["max_age_ms"], echo=lambda line: click.echo(line, err=True),
                                          max_outage_s=opts["max_outage_s"])
        else:
            summary = run_pipeline(src, model, sinks, roi=roi, max_frames=opts["max_frames"], stop=stop,
                                   on_live=live, on_start=announce, limits=limits, on_beat=Watchdog().beat,
                                   swapper=swapper)
        notify("STOPPING=1")
        if warning := getattr(getattr(src, "inner", src), "warning", None):  # a video file cut short
            click.echo(warning, err=True)
        record = summary.record()
        record["model_swaps"], record["model_refusals"] = swapper.swaps, swapper.refusals
        for sink in sinks:
            sink(record, None)
    if queues:  # after the outputs drained: what each delivered, dropped, failed
        record["outputs"] = {q.name: q.stats() for q in queues}
    click.echo(json.dumps(record))
    if failure := getattr(src, "failure", None):  # every image of a --source folder unreadable
        raise InputFileError(failure)
    if failures.first:
        raise ServiceError(f"{failures.first}: the line was stopped (--output-failure stop)")


def _station_options(ctx: click.Context, config_path: str | None, options: dict) -> tuple[dict, tuple | None]:
    """The flags merged with --config and checked as a whole (also for install-service, before it writes a
    unit that would only crash-loop); with the parsed ROI."""
    opts, from_config = _merge_config(ctx, config_path, options)
    if not opts["model"]:
        raise click.UsageError("give --model PATH (or model: in --config)")
    given = [flag for flag, on in (("--camera", opts["camera"] is not None), ("--source", opts["source"]),
                                   ("--sensor", opts["sensor"])) if on]
    if len(given) > 1:
        raise click.UsageError(f"give one of --camera, --source or --sensor, not {' and '.join(given)}")
    typed = {n for n in options if ctx.get_parameter_source(n) == ParameterSource.COMMANDLINE}
    # `mqtt_retain: false` in line.yaml asks for nothing
    _check_dependent_options(opts, {n for n in from_config | typed if opts[n] is not False})
    _check_source_options(opts, from_config | typed)
    for name in ("web", "metrics_port", "modbus_serve"):  # addresses: checked here, served only much later
        if opts[name]:
            parse_address(opts[name], f"--{name.replace('_', '-')}")
    return opts, _roi(opts["roi"])


def _roi(value) -> tuple[int, int, int, int] | None:
    """--roi as given on the command line ("x,y,w,h") or in line.yaml ([x, y, w, h])."""
    return parse_roi(",".join(map(str, value)) if isinstance(value, list) else value)


# Options that only tune other outputs: given without any of them, they would do nothing, silently.
_QUEUED = ("jsonl", "mqtt", "modbus_reject", "webhook", "on_reject")  # outputs with a backlog and failures (outputs.py)
_NEEDS = {"web_auth": ("web",), "mqtt_auth": ("mqtt",), "mqtt_ca": ("mqtt",), "mqtt_qos": ("mqtt",),
          "mqtt_retain": ("mqtt",), "modbus_pulse_ms": ("modbus_reject",), "modbus_id_register": ("modbus_reject",),
          "jsonl_max_mb": ("jsonl",), "explain_rejects": ("save_defects",), "output_queue": _QUEUED, "output_failure": _QUEUED}


def _check_dependent_options(opts: dict, given: set[str]) -> None:
    """`given`: the options set on the command line or in line.yaml — one given at its default value counts too
    (`--mqtt-qos 1` without --mqtt had passed, as 1 is the default)."""
    for name, parents in _NEEDS.items():
        if name in given and not any(opts[parent] for parent in parents):
            flag = f"--{name.replace('_', '-')}"
            needed = " or ".join(f"--{n.replace('_', '-')}" for n in parents)
            raise click.UsageError(f"{flag} has no effect without {needed}: add {'one' if len(parents) > 1 else 'it'}, "
                                   f"or drop {flag}")


# Options for frames (camera, video, images); a --sensor run has none, so they would be dropped without a word.
_CAMERA_SETTINGS = ("width", "height", "fps", "fourcc", "exposure")  # passed to a camera (or csi://) only
_FRAME_ONLY = ("roi", "record", "save_defects", "explain_rejects", "show", "realtime", "loop", *_CAMERA_SETTINGS)


def _check_source_options(opts: dict, given: set[str]) -> None:
    """Options the chosen source would ignore without a word are refused (`given`: set on the command line or in
    line.yaml, so an option at its default counts too)."""
    if opts["sensor"]:
        frame_only = [f"--{n.replace('_', '-')}" for n in _FRAME_ONLY if opts[n] not in (None, False)]
        frame_only += ["--frozen-frames"] * ("frozen_frames" in given and opts["frozen_frames"] != 0)  # 0: off
        if frame_only:
            raise click.UsageError(f"{', '.join(frame_only)} {'is' if len(frame_only) == 1 else 'are'} for camera "
                                   f"and video sources, not --sensor: drop {'it' if len(frame_only) == 1 else 'them'}")
        return
    source = opts["source"] or ""
    camera = opts["camera"] is not None or source.startswith("csi://")
    stream = not camera and ("://" in source or " ! " in source)
    folder = not (camera or stream) and Path(source).is_dir()
    video_file = not (camera or stream or folder)
    kind = "a camera" if camera else "a stream" if stream else "an image folder" if folder else "a video file"
    which = f"--camera {opts['camera']}" if opts["camera"] is not None else f"--source {source}"
    # max_outage_s: how long reconnecting goes on, so nothing without --reconnect either
    unused = [name for name, applies in (*((n, camera) for n in _CAMERA_SETTINGS),
                                         ("realtime", video_file), ("loop", folder or video_file),
                                         ("max_outage_s", (camera or stream) and opts["reconnect"]))
              if not applies and name in given and opts[name] is not None and opts[name] is not False]
    if unused:
        flags = ", ".join(f"--{n.replace('_', '-')}" for n in unused)
        raise click.UsageError(f"{flags} {'does' if len(unused) == 1 else 'do'} nothing for {which} ({kind}): "
                               f"drop {'it' if len(unused) == 1 else 'them'}")


def _merge_config(ctx: click.Context, config_path: str | None, options: dict) -> tuple[dict, set[str]]:
    """(options from --config where the command line left them at their defaults, the names the file sets)."""
    if not config_path:
        return options, set()
    params = {p.name: p for p in edge_run.params}
    merged = dict(options)
    config = load_line_config(config_path, set(options))
    for name, value in config.items():
        if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE:
            continue
        param = params[name]
        if name == "roi":  # a list [x, y, w, h] or "x,y,w,h": checked here so the error names the file
            try:
                _roi(value if isinstance(value, list) else str(value))
            except click.BadParameter as exc:
                raise click.UsageError(f"--config {config_path}: roi: {exc.format_message()}") from None
            merged[name] = value
            continue
        try:
            if isinstance(value, list):
                raise click.BadParameter(f"one value, not a list ({value})")
            if isinstance(value, float) and isinstance(param.type, click.types.IntParamType) and not value.is_integer():
                raise click.BadParameter(f"{value} is not a whole number")  # click's int() would cut it to {int(value)}
            if getattr(param, "is_flag", False):  # 1/0, true/false, yes/no, on/off: "no" must not mean yes
                merged[name] = click.BOOL.convert(str(value), param, ctx)
            else:
                merged[name] = param.type.convert(value, param, ctx)
        except click.BadParameter as exc:
            raise click.UsageError(f"--config {config_path}: {name}: {exc.format_message()}") from None
    return merged, set(config)


@click.command(context_settings=_CTX)
@click.option("--model", default=None, type=click.Path(dir_okay=False), help="Check that this model loads.")
@click.option("--device", type=click.Choice(DEVICES), default=None, help="Check that this provider works.")
@click.option("--show", is_flag=True, help="Check that windows can be shown.")
@click.option("--gstreamer", is_flag=True, help="Check GStreamer (csi:// and pipeline sources).")
def doctor(model, device, show, gstreamer):
    """What this machine can run: versions, CPU flags, working providers, OpenCV I/O, cameras, a model.

    \b
    Example:
      edge-run doctor --model part.onnx --device cuda
    """
    from edge_runtime.doctor import run_doctor

    problems = run_doctor(model, device, show, gstreamer)
    sys.exit(1 if problems else 0)


@click.command("install-service", context_settings=_CTX)
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="The station's line.yaml (model, source, outputs).")
@click.option("--name", default=None, help="Unit name (default: lineside-<station>, the config's folder for a "
                                           "line.yaml, else its file name: st3/line.yaml and st3.yaml give lineside-st3).")
@click.option("--user", default="lineside", show_default=True, help="Unprivileged user the service runs as.")
@click.option("--unit-dir", default="/etc/systemd/system", show_default=True, type=click.Path(file_okay=False))
@click.option("--watchdog-s", type=click.IntRange(min=2), default=30, show_default=True,
              help="systemd restarts edge-run when its loop has not turned for this long.")
def install_service(config_path, name, user, unit_dir, watchdog_s):
    """Write a systemd unit that runs `edge-run --config CONFIG` as a hardened, self-restarting service.

    \b
    Example:
      sudo edge-run install-service --config /srv/lineside/st3/line.yaml
      sudo systemctl daemon-reload && sudo systemctl enable --now lineside-st3
    """
    from edge_runtime.systemd import unit_text

    config = Path(config_path)
    if not load_line_config(config, {p.name for p in edge_run.params} - {"config_path"}).get("model"):
        raise ServiceError(f"--config {config} names no model: add `model: /path/part.onnx`")
    # the checks edge-run itself makes on the file, so a unit is written only for a config that starts
    station = edge_run.make_context("edge-run", ["--config", str(config)])
    options, _ = _station_options(station, str(config), {k: v for k, v in station.params.items() if k != "config_path"})
    if not (options["source"] or options["sensor"] or options["camera"] is not None):
        raise ServiceError(f"--config {config} names no source: add `camera: 0`, `source: rtsp://...` or "
                           "`sensor: \"udp://0.0.0.0:9000\"`")
    # every station's file may be called line.yaml: named after it, the second unit would overwrite the first
    derived = f"lineside-{config.resolve().parent.name if config.stem == 'line' else config.stem}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.@-]*", name or derived):
        origin = "" if name else f" (from the config's {'folder' if config.stem == 'line' else 'file'} name)"
        raise click.BadParameter(f"{name or derived!r}{origin} is not a systemd unit name: letters, digits and "
                                 "_ . @ - only; give --name", param_hint="--name")
    name = name or derived
    if not re.fullmatch(r"[a-z_][a-z0-9_-]*", user):
        raise click.BadParameter(f"{user!r} is not a user name: lower-case letters, digits, _ and -",
                                 param_hint="--user")
    path = Path(unit_dir) / f"{name}.service"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(unit_text(config, user, watchdog_s))
    except OSError as exc:
        raise ServiceError(f"cannot write {path}: {exc.strerror} (run it with sudo, or pick --unit-dir)") from None
    click.echo(f"wrote {path}")
    click.echo(f"next: sudo useradd --system --groups video {user} (once), give it {config.parent}, then\n"
               f"      sudo systemctl daemon-reload && sudo systemctl enable --now {name}\n"
               f"      journalctl -u {name} -f")


def main() -> None:
    if sys.argv[1:2] == ["doctor"]:
        run_cli(doctor, sys.argv[2:])
    elif sys.argv[1:2] == ["install-service"]:
        run_cli(install_service, sys.argv[2:])
    else:
        run_cli(edge_run)


if __name__ == "__main__":
    sys.exit(main())
