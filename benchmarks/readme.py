"""Copy a benchmark report's table into README.md, so its figures are never typed by hand.

    python -m benchmarks.readme reports/brick
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.report import environment_line, variants_table
from edge_runtime.metrics import figure

START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def render(report_dir: Path) -> str:
    report = json.loads((report_dir / "report.json").read_text())
    lines = [
        f"From `{report_dir}/report.json`, written by `make demo` (`edge-bench model`; accuracy and agreement on "
        "the run's validation images, each as taken, under a 25 % dimmer or brighter lamp and with sigma-8 "
        "sensor noise, as the export gate sees them):",
        "",
        environment_line(report["environment"]),
        "",
        variants_table(report["variants"]),
    ]
    evals = {p: json.loads((report_dir / f"eval.{p}.json").read_text()) for p in ("fp32", "int8")
             if (report_dir / f"eval.{p}.json").is_file()}
    if evals:
        lines += ["", "On the untouched test split (`edge-eval`): " + "; ".join(
            f"{p} accuracy {m['accuracy']:.4f}, false-reject rate {figure(m['false_reject_rate'])}, "
            f"escape rate {figure(m['escape_rate'])}" for p, m in evals.items()) + "."]
    pipeline = report_dir / "pipeline" / "report.md"
    if pipeline.is_file():
        body = pipeline.read_text().split("\n", 2)[2]  # without its title
        lines += ["", f"Pipeline, from `{report_dir}/pipeline/report.json` (`edge-bench pipeline`):", "", body.strip()]
    return "\n".join(lines)


def replace_between(readme: Path, start: str, end: str, text: str) -> None:
    """Put `text` between the `start` and `end` marker lines of the README (what was there goes)."""
    body = readme.read_text()
    head, _, rest = body.partition(start)
    _, _, tail = rest.partition(end)
    readme.write_text(f"{head}{start}\n{text}\n{end}{tail}")


def update(readme: Path, report_dir: Path) -> None:
    replace_between(readme, START, END, render(report_dir))


if __name__ == "__main__":
    update(Path("README.md"), Path(sys.argv[1]))
