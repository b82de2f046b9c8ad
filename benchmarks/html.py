"""report.html: one self-contained page (plots inline as PNG) a line engineer can forward."""

from __future__ import annotations

import base64
import html
import io

import numpy as np


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _figure(width: float = 7.5, height: float = 3.6):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def latency_cdf(variants: list[dict], batch: int) -> str:
    fig, ax = _figure()
    for v in variants:
        if v.get("batch") == batch and v.get("samples_ms"):
            data = np.sort(v["samples_ms"])
            ax.plot(data, np.arange(1, data.size + 1) / data.size, label=v["name"])
    ax.set_xscale("log")
    ax.set_xlabel(f"latency per call, ms (batch {batch}, log scale)")
    ax.set_ylabel("share of calls")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def p50_p99_bars(variants: list[dict], batch: int) -> str:
    rows = [v for v in variants if v.get("batch") == batch and "p50_ms" in v]
    fig, ax = _figure()
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [v["p50_ms"] for v in rows], 0.4, label="p50")
    ax.barh(y + 0.2, [v["p99_ms"] for v in rows], 0.4, label="p99")
    for i, v in enumerate(rows):
        if "speedup_vs_torch" in v:
            ax.text(v["p99_ms"], i, f"  {v['speedup_vs_torch']:.2f}× torch", va="center", fontsize=8)
    ax.set_yticks(y, [v["name"] for v in rows])
    ax.invert_yaxis()
    ax.set_xlabel(f"ms (batch {batch})")
    ax.legend(fontsize=8)
    return _png(fig)


def stage_breakdown(stages: dict[str, dict[str, float]], title: str) -> str:
    names = [s for s in ("capture_wait", "preprocess", "inference", "postprocess", "sink") if s in stages]
    fig, ax = _figure(7.5, 1.8)
    left = 0.0
    for name in names:
        width = stages[name]["p50"]
        ax.barh([0], [width], left=left, label=f"{name} {width:.3f} ms")
        left += width
    ax.set_yticks([])
    ax.set_xlabel(f"{title}: p50 per stage, ms")
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.45))
    return _png(fig)


def page(title: str, environment: str, sections: list[tuple[str, str]]) -> str:
    body = "\n".join(f"<h2>{html.escape(h)}</h2>\n{content}" for h, content in sections)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 7px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}.env{{color:#555;font-size:13px}}</style></head>
<body><h1>{html.escape(title)}</h1><p class="env">{html.escape(environment)}</p>
{body}
</body></html>
"""


def table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in columns)
    out = [f"<table><tr>{head}</tr>"]
    for row in rows:
        cells = []
        for key, _ in columns:
            value = row.get(key, "")
            if isinstance(value, float):
                value = f"{value:.4g}"
            cells.append(f"<td>{html.escape(str(value))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(out) + "</table>"
