"""Compare two benchmark reports variant by variant; regressions beyond a tolerance fail."""

from __future__ import annotations

import json
import math
from pathlib import Path

from edge_runtime.errors import InputFileError


def load_report(path: str | Path) -> dict:
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not text at all (UnicodeDecodeError)
        raise InputFileError(f"cannot read benchmark report {path}: {exc}") from exc
    kind = report.get("kind") if isinstance(report, dict) else None
    if kind not in (None, "model"):  # sweep, pipeline, sensor_stream, augment reports have no variants to compare
        raise InputFileError(f"{path} is an `edge-bench {str(kind).replace('_', '-')}` report; compare reads the "
                             "report.json of `edge-bench model`")
    if not isinstance(report, dict) or "variants" not in report:
        raise InputFileError(f"{path} is not an edge-bench report.json (no 'variants'): compare reads the "
                             "report.json of `edge-bench model`")
    variants = report["variants"]
    if not isinstance(variants, list) or not all(_is_variant(v) for v in variants):
        raise InputFileError(f"{path}: 'variants' is not a list of rows with name, batch and numeric p50_ms and "
                             "agreement (or why it was skipped): give a report.json as `edge-bench model` wrote it")
    return report


def _is_variant(row) -> bool:
    """A timed row (name, batch, p50_ms, agreement), or a skipped or failed one (a name and why)."""
    if not isinstance(row, dict) or "name" not in row:
        return False
    if "p50_ms" not in row:
        return True
    numbers = [row.get(k) for k in ("p50_ms", "agreement")]
    return "batch" in row and all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers) \
        and row["p50_ms"] > 0  # a ratio is taken of it


def check_comparable(old: dict, new: dict, old_path, new_path) -> list[str]:
    """Timings of different models say nothing about a regression: the reports must judge the same task on inputs
    of the same shape (what `edge-bench model` records). Returns warnings for what could not be checked: a report
    written before these fields were recorded."""
    unchecked = []
    for what, read in (("task", lambda r: r.get("task")),
                       ("input shape", lambda r: (r.get("inputs") or {}).get("shape"))):
        a, b = read(old), read(new)
        if a is not None and b is not None and a != b:
            raise InputFileError(f"{old_path} and {new_path} benchmark different models ({what} {a} vs {b}): "
                                 "compare two reports of the same model")
        if a is None or b is None:
            unchecked.append(what)
    if not unchecked:
        return []
    older = " and ".join(str(path) for path, r in ((old_path, old), (new_path, new))
                         if r.get("task") is None or (r.get("inputs") or {}).get("shape") is None)
    return [f"warning: {older} records no {' or '.join(unchecked)} (written by an older edge-bench), so whether "
            "both reports benchmark the same model was not checked"]


def compare_reports(old: dict, new: dict, tolerance: float) -> list[dict]:
    """One row per (variant, batch) timed in the old report: p50 change and whether it regressed. A variant the new
    report lacks, or skipped or failed, is a row marked missing: an INT8 that no longer builds must not pass."""
    after = {(v.get("name"), v.get("batch")): v for v in new["variants"] if "p50_ms" in v}
    rows = []
    for v in old["variants"]:
        key = (v.get("name"), v.get("batch"))
        if "p50_ms" not in v:
            continue
        if key not in after:
            rows.append({"name": key[0], "batch": key[1], "old_p50_ms": v["p50_ms"], "missing": True,
                         "regressed": True})
            continue
        ratio = after[key]["p50_ms"] / v["p50_ms"]
        agreement_drop = v["agreement"] - after[key]["agreement"]
        rows.append({"name": key[0], "batch": key[1], "old_p50_ms": v["p50_ms"], "new_p50_ms": after[key]["p50_ms"],
                     "ratio": round(ratio, 3), "agreement_drop": round(agreement_drop, 6),
                     "regressed": ratio > 1 + tolerance or agreement_drop > 0})
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = ["| variant | batch | old p50 ms | new p50 ms | change | |", "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        if r.get("missing"):
            lines.append(f"| {r['name']} | {r['batch']} | {r['old_p50_ms']:.3f} | - | - | MISSING |")
            continue
        lines.append(f"| {r['name']} | {r['batch']} | {r['old_p50_ms']:.3f} | {r['new_p50_ms']:.3f} | "
                     f"{(r['ratio'] - 1):+.1%} | {'REGRESSED' if r['regressed'] else 'ok'} |")
    return "\n".join(lines)
