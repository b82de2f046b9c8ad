"""`edge-bench augment`: does a defect GAN help the classifier when real defects are scarce?

For each seed and each k, k real defect images per kind are drawn (nested: the
k=5 images are among the k=10 ones of the same seed), and the classifier is
trained by the one training loop `edge-train classify` uses, on all good
images plus, per defect kind:
  plain    the k real defects — the current training as a user would run it
  classic  the k real defects repeated to k + `synth` images: classic augmentation
           draws a new pose, light and noise for every repeat
  gan      the k real defects + `synth` GAN images (one GAN per kind, trained on those k)
  paste    the k real defects + `synth` images where the real defects are moved and
           pasted by the same placement and blending as the GAN's
  gan_raw  (not run by default) the gan arm's images with the generator's own colours
           instead of the real defects' tint (compose.match_tint): does the tint matter?
classic, gan and paste have the same class counts, so the only difference is
what the extra defect images are: the GAN is judged against classic
augmentation of the same images (does it add anything?) and against
copy-paste (does painting beat moving?).
Every model is judged on the same untouched test set (test/*), through the
runtime's decision rule. All real defects go into training: there is no
validation split to spend them on, the test set is the judge.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge_runtime.datasets import GOOD, labeled_images, ordered_labels
from edge_runtime.errors import DatasetLayoutError
from edge_runtime.preprocess import prepare_image

ARMS = ("plain", "classic", "gan", "paste")  # the default run
PAINTED = ("gan", "gan_raw", "paste")  # arms that add synthetic images
GAN_ARMS = ("gan", "gan_raw")
METRICS = ("defect_recall", "false_reject_rate", "accuracy")


@dataclass
class AugmentSettings:
    ks: tuple[int, ...] = (5, 10, 20)
    seeds: int = 3
    arms: tuple[str, ...] = ARMS
    steps: int = 200  # classifier optimizer steps, the same for every arm (epochs follow from the image count)
    batch_size: int = 32
    image_size: int = 128
    synth_count: int = 40  # synthetic images per defect kind
    gan_steps: int = 300
    gan_patch: int = 32
    gan_width: int = 16
    device: str = "auto"
    kinds: tuple[str, ...] = field(default_factory=tuple)  # empty: every train/<defect> folder


def _prepared(images_bgr: np.ndarray, size: int) -> np.ndarray:
    return np.stack([prepare_image(im, (size, size)) for im in images_bgr]) if len(images_bgr) else \
        np.zeros((0, size, size, 3), np.uint8)


def _check(root: Path, settings: AugmentSettings) -> tuple[list[str], list[str]]:
    from edge_runtime.datasets import image_files
    from train.gan.data import MIN_DEFECTS, SYNTH_PREFIX, defect_kinds

    kinds = list(settings.kinds) or defect_kinds(root)
    if not kinds:
        raise DatasetLayoutError(f"{root} has no train/<defect> folders: the experiment needs a few real defects per kind")
    if min(settings.ks) < MIN_DEFECTS:
        raise DatasetLayoutError(f"--k {min(settings.ks)}: the GAN needs at least {MIN_DEFECTS} real defect images")
    for kind in kinds:
        folder = root / "train" / kind
        have = len([p for p in image_files(folder) if not p.stem.startswith(SYNTH_PREFIX)]) if folder.is_dir() else 0
        if have < max(settings.ks):
            raise DatasetLayoutError(f"{root}/train/{kind} has {have} images; --k {max(settings.ks)} needs that many")
    test_labels = {label for _, label in labeled_images(root, "test")}
    missing = sorted({GOOD, *kinds} - test_labels)
    if missing:
        raise DatasetLayoutError(f"{root}/test lacks {', '.join(missing)}: the experiment judges on test/good and "
                                 "test/<defect> for every kind it trains")
    return kinds, ordered_labels({GOOD, *kinds})


def _evaluate(model, test, labels: list[str], threshold: float = 0.5) -> dict:
    from edge_runtime.decision import decide
    from edge_runtime.metadata import ModelInfo
    from edge_runtime.metrics import classification_metrics
    import torch

    info = ModelInfo(task="classify", labels=labels, threshold=threshold, precision="fp32", good_label=GOOD)
    device = next(model.parameters()).device
    model.eval()
    with torch.inference_mode():
        probs = np.concatenate([model(torch.from_numpy(test.images[i : i + 128]).to(device)).float().cpu().numpy()
                                for i in range(0, len(test.images), 128)])
    predicted = [d.label for d in decide(probs, info)]
    truth = [labels[t] for t in test.targets]
    m = classification_metrics(truth, predicted, labels)
    per_kind = {kind: float(np.mean([p != GOOD for t, p in zip(truth, predicted) if t == kind]))
                for kind in labels if kind != GOOD}
    return {"accuracy": m["accuracy"], "false_reject_rate": m["false_reject_rate"],
            "defect_recall": 1.0 - m["escape_rate"], "recall_per_kind": per_kind,
            "confusion_matrix": m["confusion_matrix"]}


def _quality(model, kind_sets: dict[str, np.ndarray], test_defects: np.ndarray) -> dict:
    """KID against the kind's test defects and the copy check against the k training ones, in the features of the
    classic classifier of the same seed and k."""
    from train.gan.quality import distances, embed

    feats = {name: embed(model, imgs) for name, imgs in kind_sets.items() if len(imgs) > 1}
    real = embed(model, test_defects)
    rows = distances(feats, real, feats["real_train"], real, np.concatenate([real, feats["good"]]))
    return {name: {"kid": row["kid"], "nearest_ratio": row["nearest"]["ratio"], "copy_share": row["nearest"]["copy_share"]}
            for name, row in rows.items()}


def _synthetic(root: Path, out: Path, kind: str, k: int, seed: int, goods_bgr: np.ndarray,
               settings: AugmentSettings) -> tuple[dict[str, np.ndarray], dict | None]:
    """GAN and copy-paste images of one kind from the seed's k real ones → ({arm: images}, GAN record).

    The GAN is written under `staging(out)`; its record names where it will be once the experiment is done."""
    from train.gan.data import load_defects, make_bank
    from train.gan.synth import load_gan, synthesize
    from train.gan.train import GanConfig, train_gan

    images, record, G = {}, None, None
    if set(GAN_ARMS) & set(settings.arms):
        name = f"seed{seed}-k{k}-{kind}"
        run_dir = staging(out) / name
        cfg = GanConfig(data=str(root), defect=kind, out=str(run_dir), k=k, steps=settings.gan_steps,
                        patch=settings.gan_patch, width=settings.gan_width, seed=seed, device=settings.device,
                        sample_every=settings.gan_steps, quality_samples=0)  # measured below, on the test set
        config = train_gan(cfg, echo=lambda *_: None)
        G, _, bank = load_gan(run_dir, allow_collapsed=True)  # a collapse is recorded and reported, not hidden
        record = {"seed": seed, "k": k, "kind": kind, "seconds": config["train"]["seconds"],
                  "collapse": config["collapse"], "run": str(out / "gans" / name)}
    else:
        bank = make_bank(load_defects(root, kind, k, seed), settings.gan_patch)
    for arm in PAINTED:
        if arm in settings.arms:  # one seed for all: the same placements, only the painter differs
            images[arm] = synthesize(G, bank, goods_bgr, settings.synth_count, seed=seed * 1000 + k,
                                     method="paste" if arm == "paste" else "gan", real_tint=arm != "gan_raw")[0]
    return images, record


def staging(out: Path) -> Path:
    """Where this process writes its GAN runs until the experiment is done."""
    return out / f".gans.partial-{os.getpid()}"


def run_augment(data: str | Path, out: str | Path, settings: AugmentSettings, echo=print) -> dict:
    """The experiment, its report written to `out`. Its GAN runs are written aside and replace out/gans only once
    the report is written, so out/gans holds the runs its report names (none: an earlier experiment's are removed);
    when it fails or is interrupted they are removed (and out, when it made out), and a previous experiment's
    report and out/gans are left whole: a half-run leaves nothing that looks like one."""
    from benchmarks.augment_report import write_augment_report

    out = Path(out)
    made_out = not out.exists()
    try:
        report = _run_augment(data, out, settings, echo)
        write_augment_report(report, out)
    except BaseException:
        shutil.rmtree(staging(out), ignore_errors=True)
        if made_out:
            with contextlib.suppress(OSError):  # only when nothing else is in it
                out.rmdir()
        raise
    old = out / f".gans.old-{os.getpid()}"
    if (out / "gans").exists():
        (out / "gans").rename(old)
    if staging(out).is_dir():
        staging(out).rename(out / "gans")
    shutil.rmtree(old, ignore_errors=True)
    return report


def _run_augment(data: str | Path, out: Path, settings: AugmentSettings, echo=print) -> dict:
    import torch

    from benchmarks.environment import environment
    from train.classify import ClassifyConfig, fit_classifier
    from train.gan.data import load_defects, load_good
    from train.images import ImageSet, load_image_set

    root, out = Path(data), Path(out)
    kinds, labels = _check(root, settings)
    size = settings.image_size
    goods_bgr, _ = load_good(root)
    goods = _prepared(goods_bgr, size)
    test_pairs = [(p, lbl) for p, lbl in labeled_images(root, "test") if lbl in labels]
    test = load_image_set(test_pairs, labels, (size, size))
    test_bgr = {kind: np.stack([cv2.imread(str(p), cv2.IMREAD_COLOR) for p, lbl in test_pairs if lbl == kind])
                for kind in kinds}
    echo(f"augment experiment on {root}: kinds {', '.join(kinds)}, k {list(settings.ks)}, {settings.seeds} seeds, "
         f"arms {', '.join(settings.arms)}; test set {len(test_pairs)} images")
    started = time.perf_counter()
    runs, gans = [], []
    for seed in range(settings.seeds):
        for k in settings.ks:
            real = {kind: load_defects(root, kind, k, seed).images for kind in kinds}
            synth: dict[str, dict[str, np.ndarray]] = {arm: {} for arm in PAINTED}
            records = {}
            if set(PAINTED) & set(settings.arms):
                for kind in kinds:
                    sets, record = _synthetic(root, out, kind, k, seed, goods_bgr, settings)
                    for arm, images in sets.items():
                        synth[arm][kind] = images
                    if record:
                        records[kind] = record
                        gans.append(record)
                        c = record["collapse"]
                        echo(f"seed {seed} k {k}: {kind} GAN {record['seconds']} s, spread {c['spread_ratio']:.2f}, "
                             f"noise {c['noise_ratio']:.2f}" + (" COLLAPSED" if c["collapsed"] else ""))
            for arm in settings.arms:
                parts = [(goods, GOOD)] + [(_prepared(real[kind], size), kind) for kind in kinds]
                if arm == "classic":  # the real ones again, cycled to the synthetic arms' count
                    parts += [(_prepared(real[kind][np.arange(settings.synth_count) % k], size), kind) for kind in kinds]
                elif arm in synth:
                    parts += [(_prepared(synth[arm][kind], size), kind) for kind in kinds]
                train_set = ImageSet(np.concatenate([x for x, _ in parts]),
                                     np.concatenate([np.full(len(x), labels.index(lbl), np.int64) for x, lbl in parts]),
                                     [], labels)
                # Same number of steps for every arm: more images must not mean more training.
                per_epoch = -(-len(train_set.targets) // settings.batch_size)
                epochs = max(1, round(settings.steps / per_epoch))
                cfg = ClassifyConfig(data=str(root), out="", epochs=epochs, batch_size=settings.batch_size,
                                     seed=seed, device=settings.device, image_size=size)
                model, _, seconds = fit_classifier(train_set, cfg, echo=lambda *_: None)
                metrics = _evaluate(model, test, labels)
                runs.append({"seed": seed, "k": k, "arm": arm, "train_images": len(train_set.targets),
                             "epochs": epochs, "steps": epochs * per_epoch, "seconds": round(seconds, 1), **metrics})
                echo(f"seed {seed} k {k} {arm:7s}: recall {metrics['defect_recall']:.3f}, false reject "
                     f"{metrics['false_reject_rate']:.3f}, accuracy {metrics['accuracy']:.3f} ({seconds:.0f} s)")
                if arm == "classic":  # its features judge the synthetic images of this seed and k
                    for kind, record in records.items():
                        sets = {"real_train": real[kind], "good": goods_bgr[: settings.synth_count],
                                **{arm: synth[arm][kind] for arm in PAINTED if kind in synth[arm]}}
                        record["quality"] = _quality(model, sets, test_bgr[kind])
    report = {
        "kind": "augment",
        "data": str(root.resolve()),
        "settings": {**asdict(settings), "kinds": kinds},
        "environment": environment(torch.get_num_threads()),
        "seconds": round(time.perf_counter() - started, 1),
        "runs": runs,
        "gans": gans,
        "summary": summarise(runs, settings),
    }
    report["verdict"] = verdict(report)
    return report


def _mean_std(values: list[float]) -> dict:
    a = np.array(values, dtype=np.float64)
    return {"mean": round(float(a.mean()), 4), "std": round(float(a.std(ddof=1)) if len(a) > 1 else 0.0, 4),
            "n": len(a)}


def summarise(runs: list[dict], settings: AugmentSettings) -> list[dict]:
    rows = []
    for k in settings.ks:
        for arm in settings.arms:
            mine = [r for r in runs if r["k"] == k and r["arm"] == arm]
            if mine:
                rows.append({"k": k, "arm": arm, **{m: _mean_std([r[m] for r in mine]) for m in METRICS}})
    return rows


def _paired(runs: list[dict], k: int, arm: str, base: str, metric: str) -> np.ndarray:
    """arm − base per seed (same seed = same real images, so the pairs share their luck)."""
    by_seed = lambda a: {r["seed"]: r[metric] for r in runs if r["k"] == k and r["arm"] == a}
    a, b = by_seed(arm), by_seed(base)
    return np.array([a[s] - b[s] for s in sorted(b) if s in a])


def verdict(report: dict) -> list[str]:
    """Per k and comparison: the change in defect recall, false-reject rate and accuracy, mean ± std over seeds
    (paired by seed), called better or worse only with 3 or more seeds and when a paired t-test says so at 95 %."""
    from scipy import stats

    lines, runs, arms = [], report["runs"], report["settings"]["arms"]
    comparisons = [("gan", "classic", "GAN images vs classic augmentation of the same real images"),
                   ("gan", "paste", "GAN images vs copy-paste of the real defects"),
                   ("gan", "gan_raw", "GAN images with the real defects' tint vs the generator's own colours"),
                   ("classic", "plain", "repeating the real defects vs the current training")]
    for k in report["settings"]["ks"]:
        for arm, base, title in comparisons:
            if arm not in arms or base not in arms:
                continue
            parts = []
            for metric, better in (("defect_recall", 1), ("false_reject_rate", -1), ("accuracy", 1)):
                d = _paired(runs, k, arm, base, metric)
                n = len(d)
                spread = float(d.std(ddof=1)) if n > 1 else float("nan")
                if n < 3:  # two seeds can agree by chance (counts are coarse): no call
                    word = f"{n} seed{'s' if n > 1 else ''}: too few to call"
                elif d.mean() == 0:
                    word = "no change"
                else:
                    limit = stats.t.ppf(0.975, n - 1) * spread / np.sqrt(n)
                    word = (("better" if d.mean() * better > 0 else "worse") if abs(d.mean()) > limit
                            else f"not clear at {n} seeds")
                parts.append(f"{metric.replace('_', ' ')} {d.mean():+.3f} ± {spread:.3f} ({word})")
            lines.append(f"k={k}, {title}: " + "; ".join(parts))
    return lines
