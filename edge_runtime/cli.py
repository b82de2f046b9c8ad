"""`edge-run`: judge frames from a camera, stream, video file or image folder with a lineside model."""

from __future__ import annotations

import json
import signal
import sys
import threading

import click

from edge_runtime.cli_support import parse_roi, run_cli
from edge_runtime.model import EdgeModel
from edge_runtime.pipeline import run_pipeline
from edge_runtime.session import DEVICES
from edge_runtime.sinks import JsonlSink
from edge_runtime.sources import open_source


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--camera", type=int, default=None, help="Camera device index (0 = first camera).")
@click.option("--source", default=None, help="Video file, image folder, or rtsp:// / http:// stream URL.")
@click.option("--model", "model_path", required=True, type=click.Path(dir_okay=False), help="lineside .onnx artifact.")
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True,
              help="Execution provider; a demanded GPU that is not active is an error, never a silent fallback.")
@click.option("--threads", type=int, default=None, help="ONNX Runtime intra-op threads (default: ORT's choice).")
@click.option("--roi", default=None, help="Inspection window x,y,w,h in frame pixels (default: whole frame).")
@click.option("--jsonl", default=None, type=click.Path(dir_okay=False), help="Append one JSON record per frame here.")
@click.option("--realtime", is_flag=True, help="Play a video file at its native rate like a camera (newest frame, drops counted).")
@click.option("--loop", is_flag=True, help="Repeat an image folder forever.")
@click.option("--max-frames", type=int, default=None, help="Stop after this many decisions.")
@click.option("--width", type=int, default=None, help="Camera capture width.")
@click.option("--height", type=int, default=None, help="Camera capture height.")
@click.option("--fps", type=float, default=None, help="Camera capture rate.")
@click.option("--quiet", is_flag=True, help="No live line, only the summary.")
def edge_run(camera, source, model_path, device, threads, roi, jsonl, realtime, loop, max_frames, width, height,
             fps, quiet):
    """Judge every frame good / defect and say how long each stage took.

    \b
    Examples:
      edge-run --camera 0 --model part.onnx
      edge-run --source data/demo/line_clip.mp4 --model artifacts/model.int8.onnx \\
               --roi 512,232,256,256 --jsonl verdicts.jsonl
      edge-run --source rtsp://10.0.0.5/stream --model part.onnx --device cuda
    """
    roi_box = parse_roi(roi)
    model = EdgeModel(model_path, device=device, threads=threads)
    src = open_source(camera, source, realtime=realtime, loop=loop, width=width, height=height, fps=fps)
    announce = lambda: click.echo(  # noqa: E731  (once the source is open: errors stay one line)
        f"{src.name} → {model.path.name}: {model.info.task}, {model.info.precision}, {model.provider}, "
        f"labels {','.join(model.info.labels)}, threshold {model.info.threshold}", err=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())  # finish the frame in flight, flush, summarise
    live = None if quiet else (lambda line: click.echo(line, err=True))
    sinks = []
    jsonl_sink = JsonlSink(jsonl) if jsonl else None
    if jsonl_sink:
        sinks.append(jsonl_sink.__enter__())
    try:
        summary = run_pipeline(src, model, sinks, roi=roi_box, max_frames=max_frames, stop=stop, on_live=live,
                               on_start=announce)
        record = summary.record()
        for sink in sinks:
            sink(record)
    finally:
        if jsonl_sink:
            jsonl_sink.__exit__(None, None, None)
    click.echo(json.dumps(record), err=False)


def main() -> None:
    run_cli(edge_run)


if __name__ == "__main__":
    sys.exit(main())
