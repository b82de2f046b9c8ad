"""The augment experiment's report: report.json, report.md (table + verdict) and plot.png."""

from __future__ import annotations

import json
import os
from pathlib import Path

from benchmarks.report import environment_line

_NAMES = {"defect_recall": "defect recall", "false_reject_rate": "false-reject rate", "accuracy": "accuracy"}


def _cell(stat: dict) -> str:
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def markdown(report: dict) -> str:
    s = report["settings"]
    lines = [
        f"# Do GAN defect images help? — {report['data']}",
        "",
        environment_line(report["environment"]),
        "",
        f"Kinds {', '.join(s['kinds'])}; k real defect images per kind; {s['seeds']} seeds (each seed draws its own "
        f"k images, trains its own GANs and classifiers); classifier {s['steps']} steps (every arm alike) at "
        f"{s['image_size']} px; "
        f"{s['synth_count']} extra images per kind (classic: the real ones repeated, so classic, GAN and copy-paste "
        f"train on equal counts); GAN {s['gan_steps']} steps at {s['gan_patch']} px patches, "
        f"width {s['gan_width']}. Total {report['seconds'] / 60:.1f} min.",
        "",
        "Mean ± standard deviation across seeds, on the untouched test set:",
        "",
        "| k | training data | defect recall | false-reject rate | accuracy |",
        "|---:|---|---:|---:|---:|",
    ]
    labels = {"plain": "k real (current training)", "classic": "k real, repeated + classic augmentation",
              "gan": "k real + GAN images", "paste": "k real + copy-paste images",
              "gan_raw": "k real + GAN images, the generator's own colours"}
    for row in report["summary"]:
        lines.append(f"| {row['k']} | {labels.get(row['arm'], row['arm'])} | {_cell(row['defect_recall'])} | "
                     f"{_cell(row['false_reject_rate'])} | {_cell(row['accuracy'])} |")
    lines += ["", "## Verdict", "", *[f"- {v}" for v in report["verdict"]]]
    gans = report.get("gans", [])
    if gans:
        collapsed = [g for g in gans if g["collapse"]["collapsed"]]
        seconds = [g["seconds"] for g in gans]
        lines += ["", "## The GANs", "",
                  f"{len(gans)} GANs trained, {min(seconds):.0f}–{max(seconds):.0f} s each; "
                  f"{len(collapsed)} failed the collapse check"
                  + (": " + ", ".join(f"seed {g['seed']} k {g['k']} {g['kind']}" for g in collapsed) if collapsed else "")
                  + ".", ""]
        with_q = [g for g in gans if "quality" in g]
        if with_q:
            lines += ["Kernel distance (KID, lower is closer) to the kind's test defects, in the features of the "
                      "classic classifier of the same seed and k; `real k` is the k real training images themselves "
                      "(the floor), `good` good images (no defect at all):", ""]
            columns = [("gan", "GAN"), ("gan_raw", "GAN, own colours"), ("paste", "copy-paste"), ("real_train", "real k"),
                       ("good", "good")]
            columns = [(key, title) for key, title in columns if any(key in g["quality"] for g in with_q)]
            lines += ["| seed | k | kind | " + " | ".join(title for _, title in columns) + " |",
                      "|---:|---:|---|" + "---:|" * len(columns)]
            for g in with_q:
                q = g["quality"]
                lines.append(f"| {g['seed']} | {g['k']} | {g['kind']} | "
                             + " | ".join(f"{q[key]['kid']:.3f}" if key in q else "–" for key, _ in columns) + " |")
    lines += ["", "![defect recall, false-reject rate and accuracy against k](plot.png)", ""]
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(_NAMES)
    fig, axes = plt.subplots(1, len(metrics), figsize=(12, 3.6))
    arms = list(dict.fromkeys(r["arm"] for r in report["summary"]))
    for ax, metric in zip(axes, metrics):
        for i, arm in enumerate(arms):
            rows = [r for r in report["summary"] if r["arm"] == arm]
            ks = [r["k"] for r in rows]
            offset = (i - (len(arms) - 1) / 2) * 0.15  # side by side, so error bars do not hide each other
            ax.errorbar([j + offset for j in range(len(ks))], [r[metric]["mean"] for r in rows],
                        yerr=[r[metric]["std"] for r in rows], marker="o", capsize=3, label=arm)
            ax.set_xticks(range(len(ks)), [str(k) for k in ks])
        ax.set_xlabel("real defect images per kind (k)")
        ax.set_title(_NAMES[metric])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"mean ± std over {report['settings']['seeds']} seeds, untouched test set", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_augment_report(report: dict, out: Path) -> None:
    """report.json, report.md and plot.png, each written aside first: a failed write leaves the old report whole."""
    out.mkdir(parents=True, exist_ok=True)
    files = {name: out / f".partial-{name}" for name in ("report.json", "report.md", "plot.png")}
    try:
        files["report.json"].write_text(json.dumps(report, indent=2))
        files["report.md"].write_text(markdown(report))
        plot(report, files["plot.png"])
        for name, partial in files.items():
            os.replace(partial, out / name)
    finally:
        for partial in files.values():
            partial.unlink(missing_ok=True)
