"""What every lineside command shares at its edge: user errors become one line and an exit code."""

from __future__ import annotations

import sys

import click

from edge_runtime.errors import LinesideError


def run_cli(command: click.Command, args: list[str] | None = None) -> None:
    """Invoke a click command; a LinesideError prints `error: …` on one line and exits non-zero."""
    try:
        command.main(args=args, standalone_mode=False)
    except LinesideError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


def parse_roi(text: str | None) -> tuple[int, int, int, int] | None:
    """`x,y,w,h` → a tuple; None passes through."""
    if text is None:
        return None
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not x,y,w,h in pixels (e.g. 512,232,256,256)") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise click.BadParameter(f"{text!r}: width and height must be positive, x and y not negative")
    return x, y, w, h


def progress(items, label: str, enabled: bool = True):
    """A click progress bar over `items` on stderr, or the plain items when disabled (other DDP ranks)."""
    if not enabled:
        return _Plain(items)
    return click.progressbar(items, label=label, file=sys.stderr, show_pos=True)


class _Plain:
    def __init__(self, items):
        self.items = items

    def __enter__(self):
        return iter(self.items)

    def __exit__(self, *exc):
        return False
