"""What every lineside command shares at its edge: user errors become one line and an exit code."""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import click

from edge_runtime.errors import LinesideError


class Finite(click.FloatRange):
    """A float option (optionally bounded) that refuses NaN and infinity, which click's FloatRange lets through:
    every comparison with NaN is False, so `--threshold nan` had passed every part as good."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.min is None and self.max is None:
            self.name = "float"  # help shows FLOAT, not a range with no bounds

    def _describe_range(self) -> str:
        return "" if self.min is None and self.max is None else super()._describe_range()

    def convert(self, value, param, ctx):
        value = super().convert(value, param, ctx)
        if not math.isfinite(value):
            self.fail(f"{value} is not a finite number: give a number", param, ctx)
        return value


class OutPath(click.Path):
    """A path a command will write: one under a file is refused when parsed, not after minutes of work."""

    def convert(self, value, param, ctx):
        value = super().convert(value, param, ctx)
        target = where = Path(value)
        try:
            blocker = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
            if blocker is not None:
                self.fail(f"{blocker} is a file, so {value} cannot be written: choose another path", param, ctx)
            # Try writing where it goes (a read-only mount, permissions: os.access misjudges root and mounts). An
            # existing file (a log to append to, /dev/stdout) needs only itself writable, not its folder.
            if target.exists() and not target.is_dir():
                open(target, "ab").close()  # opened, nothing written: not even its mtime changes
            else:
                where = next(p for p in (target, *target.absolute().parents) if p.is_dir())
                tempfile.TemporaryFile(dir=where).close()
        except OSError as exc:  # also a folder on the way that cannot be entered (exists() raises there)
            self.fail(f"{value} cannot be written ({where}: {exc.strerror}): choose another path", param, ctx)
        return value


def comma_list(text: str, flag: str, items: str) -> list[str]:
    """A comma-list option's items. An empty item (`a,,b`, a trailing comma, "") is a typo, not a shorter list, and a
    repeated one would do the same work twice: both are refused, naming `items` (what the list holds)."""
    values = [v.strip() for v in text.split(",")]
    if "" in values:
        raise click.BadParameter(f"{text!r} has an empty item: give {items} separated by single commas",
                                 param_hint=flag)
    repeated = sorted({v for v in values if values.count(v) > 1}, key=values.index)
    if repeated:
        raise click.BadParameter(f"{text!r} repeats {', '.join(repeated)}: give each once", param_hint=flag)
    return values


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
    except click.UsageError as exc:  # a bad flag value is user input too: one line, not click's three
        hint = f" (see {exc.ctx.command_path} --help)" if exc.ctx else ""
        message = " ".join(exc.format_message().split())  # click lists choices on separate lines
        click.echo(f"error: {message}{hint}", err=True)
        sys.exit(exc.exit_code)
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


def progress(items=None, label: str = "", length: int | None = None, enabled: bool = True):
    """A progress bar on stderr when it is a terminal; in logs, one line when the work is done.

    Use as `with progress(items, "label") as bar: for x in bar: ...` or with
    `length=N` and `bar.update(n)`. `enabled=False` shows nothing (other DDP ranks).
    """
    if enabled and sys.stderr.isatty():
        return click.progressbar(items, length=length, label=label, file=sys.stderr, show_pos=True)
    return _LogProgress(items, label, enabled)


class _LogProgress:
    def __init__(self, items, label: str, enabled: bool):
        self.items, self.label, self.enabled, self.done = items, label, enabled, 0

    def __enter__(self):
        return self

    def __iter__(self):
        for item in self.items:
            yield item
            self.done += 1

    def update(self, n: int) -> None:
        self.done += n

    def __exit__(self, exc_type, *exc):
        if self.enabled and exc_type is None:
            click.echo(f"{self.label}: {self.done} done", err=True)
        return False
