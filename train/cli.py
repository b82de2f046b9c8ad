"""`edge-train`: train lineside models from data in the folder layouts people have."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from edge_runtime.cli_support import Finite, OutPath, run_cli
from edge_runtime.metrics import figure, format_table


def run_folder_options(fn):
    """--out and --overwrite: a run folder that already holds a trained run is replaced only when asked, since
    the run it holds may have taken hours and may be what a line runs."""
    @functools.wraps(fn)
    def checked(*args, overwrite: bool, **kwargs):
        out = Path(kwargs["out"])
        held = [name for name in ("config.json", "model.safetensors") if (out / name).is_file()]
        if held and not overwrite:
            raise click.UsageError(f"{out} already holds a training run ({', '.join(held)}): choose another --out, "
                                   "or add --overwrite to replace it")
        return fn(*args, **kwargs)

    checked = click.option("--overwrite", is_flag=True, help="Replace the run that --out already holds.")(checked)
    return click.option("--out", required=True, type=OutPath(file_okay=False), help="Run folder for the checkpoint.")(
        checked)


def common_options(fn):
    """Options every `edge-train` task takes."""
    fn = run_folder_options(fn)
    for option in reversed([
        click.option("--data", required=True, type=click.Path(), help="Data folder (MVTec layout or class folders)."),
        click.option("--epochs", type=click.IntRange(min=1), default=60, show_default=True),
        click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda, cuda:N."),
    ]):
        fn = option(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def edge_train():
    """Train a lineside model; writes OUT/model.safetensors and OUT/config.json."""


@edge_train.command()
@common_options
@click.option("--image-size", type=click.IntRange(min=32), default=128, show_default=True, help="Model input side (pixels).")
@click.option("--lr", type=Finite(min=0, max=1, min_open=True), default=3e-3, show_default=True)
@click.option("--val-fraction", type=Finite(0.05, 0.5), default=0.2, show_default=True)
@click.option("--threshold", type=Finite(0.0, 1.0), default=0.5, show_default=True,
              help="Reject when P(not good) reaches this.")
def classify(data, out, epochs, batch_size, seed, device, image_size, lr, val_fraction, threshold):
    """Defect classifier (good vs defect kinds) from DATA/train/<class>/ images.

    \b
    Example:
      edge-train classify --data data/demo/brick --out runs/brick --epochs 60
    Scale out (one process per GPU, or CPU processes on the gloo backend):
      torchrun --nproc_per_node 2 -m train.cli classify --data data/demo/brick --out runs/brick
    """
    from train.classify import ClassifyConfig, train_classifier  # torch loads only when training

    cfg = ClassifyConfig(data=data, out=out, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                         device=device, image_size=image_size, val_fraction=val_fraction, threshold=threshold)
    config = train_classifier(cfg, echo=lambda m: click.echo(m, err=True))
    if config is not None:  # None on the other torchrun ranks
        click.echo(format_table(config["metrics"]["validation"]))
        click.echo(f"checkpoint: {Path(out) / 'model.safetensors'} + config.json "
                   f"({config['train']['seconds']} s on {config['train']['device_used']})")


@edge_train.command()
@click.option("--data", required=True, type=click.Path(),
              help="Good images: DATA/train/good (MVTec layout) or images directly in DATA.")
@run_folder_options
@click.option("--steps", type=click.IntRange(min=1), default=1500, show_default=True, help="Training steps.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--image-size", type=click.IntRange(min=32), default=256, show_default=True, help="Model input side (pixels).")
@click.option("--crop", type=click.IntRange(min=32), default=128, show_default=True,
              help="Training crop side; the network is fully convolutional, so it judges whole images.")
@click.option("--lr", type=Finite(min=0, max=1, min_open=True), default=2e-3, show_default=True)
@click.option("--target-frr", type=Finite(0.0, 0.5), default=0.01, show_default=True,
              help="Threshold from the score this share of held-out good images reaches (plus --margin).")
@click.option("--margin", type=Finite(min=0.0), default=2.0, show_default=True,
              help="Threshold = that quantile + MARGIN x (quantile - median of the good scores).")
@click.option("--val-fraction", type=Finite(0.05, 0.5), default=0.2, show_default=True,
              help="Share of good images held out to calibrate the threshold.")
@click.option("--bad", default=None, type=click.Path(file_okay=False), help="Known-bad images, only to report AUROC.")
@click.option("--score", type=click.Choice(["auto", "line", "gauss"]), default="auto", show_default=True,
              help="line: the segmentation map along short lines (any part; INT8); gauss: distance of the first "
                   "features to the good ones' Gaussian at the image's own noise level (textured surfaces: finer "
                   "defects); auto: gauss when position explains little of how the good images look "
                   "(a surface), line otherwise (a part held in place). README.")
@click.option("--init", default=None, type=click.Path(),
              help="Start from these weights: a lineside anomaly run folder (another station, a similar part) or a "
                   ".safetensors file with SurfaceNet's tensor names; matching tensors are loaded.")
@click.option("--compressed", is_flag=True,
              help="The line runs on a compressed stream (an IP camera, a recorded clip) but these images are "
                   "lossless: train with JPEG in the camera variation too, and fit a gauss score's Gaussian on JPEG "
                   "copies of them (README).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda, cuda:N.")
def anomaly(data, out, steps, batch_size, image_size, crop, lr, target_frr, margin, val_fraction, bad, score, init,
            compressed, seed, device):
    """Anomaly model trained on good parts only: a score per image and a heat map per pixel.

    \b
    Example:
      edge-train anomaly --data data/demo/brick --out runs/brick-anomaly
      edge-train anomaly --data photos/good --bad photos/rejects --out runs/part-anomaly
      edge-train anomaly --data station3/good --score line --out runs/part-line
      edge-train anomaly --data station4/good --init runs/part-anomaly --steps 500 --out runs/part4-anomaly
      edge-train anomaly --data station5/stills --compressed --out runs/part5-anomaly
    """
    from train.anomaly import AnomalyConfig, train_anomaly  # torch loads only when training

    if crop > image_size and click.get_current_context().get_parameter_source("crop") != ParameterSource.DEFAULT:
        raise click.BadParameter(f"a {crop}px crop does not fit in a {image_size}px image: give --crop "
                                 f"{image_size} or less, or a larger --image-size", param_hint="--crop")
    cfg = AnomalyConfig(data=data, out=out, steps=steps, batch_size=batch_size, image_size=image_size,
                        crop=min(crop, image_size), lr=lr, target_frr=target_frr, margin=margin,
                        val_fraction=val_fraction, bad=bad, score=score, init=init, compressed=compressed, seed=seed,
                        device=device)
    config = train_anomaly(cfg, echo=lambda m: click.echo(m, err=True))
    _show_anomaly_validation(config)
    click.echo(f"checkpoint: {Path(out) / 'model.safetensors'} + config.json "
               f"({config['train']['seconds']} s on {config['train']['device_used']})")


@edge_train.command()
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--good", default=None, type=click.Path(file_okay=False),
              help="Good images from the real camera (default: the run's held-out good images). Keep them: "
                   "edge-export judges the run on them and fits a --refit run's INT8 on them.")
@click.option("--target-frr", type=Finite(0.0, 0.5), default=0.01, show_default=True)
@click.option("--margin", type=Finite(min=0.0), default=2.0, show_default=True)
@click.option("--bad", default=None, type=click.Path(file_okay=False), help="Known-bad images, only to report AUROC.")
@click.option("--refit", is_flag=True, help="A --score gauss run: fit its Gaussian on the first 4/5 of the --good "
                                           "images (by name) too; the threshold comes from the last fifth.")
def calibrate(run, good, target_frr, margin, bad, refit):
    """New threshold for an anomaly run from good images, without retraining; then edge-export again.

    \b
    Example:
      edge-train calibrate runs/part-anomaly --good station3/good_week1 --target-frr 0.005
      edge-export runs/part-anomaly --out artifacts/part-anomaly
      edge-train calibrate runs/part-gauss --good station3/good_week1 --refit
    """
    from train.anomaly import recalibrate

    config = recalibrate(run, good, target_frr, margin, bad, refit)
    _show_anomaly_validation(config)
    click.echo(f"config: {Path(run) / 'config.json'} updated from {config['calibration']['source']}; "
               "export it again to deploy the new threshold")


def _show_anomaly_validation(config: dict) -> None:
    val = config["metrics"]["validation"]
    choice = config.get("score_choice")
    click.echo(f"score {config['model']['args'].get('score', 'box')}" + (f" (--score auto: {choice['why']})"
                                                                         if choice else ""))
    click.echo(f"threshold {config['threshold']:.4f} ({config['threshold_rule']}); held-out good median "
               f"{val['heldout_good']['median']:.4f}, max {val['heldout_good']['max']:.4f}")
    click.echo(f"synthetic-anomaly AUROC {val['synthetic_auroc']:.4f} (held-out good images with pasted anomalies; "
               "real defects: edge-eval)")
    if "bad_auroc" in val:
        rates = val["bad"]
        click.echo(f"--bad AUROC {figure(val['bad_auroc'])}, false reject {figure(rates['false_reject_rate'], '.3f')}, "
                   f"escape {figure(rates['escape_rate'], '.3f')}")


@edge_train.command()
@click.option("--data", required=True, type=click.Path(),
              help="MVTec-layout folder: train/good, train/<defect>, train_ground_truth/<defect>/*_mask.png.")
@click.option("--defect", required=True, help="Defect kind to learn (a train/<defect> folder).")
@run_folder_options
@click.option("--k", type=click.IntRange(min=1), default=None, help="Use only K real defect images (drawn by --seed).")
@click.option("--steps", type=click.IntRange(min=1), default=1500, show_default=True, help="Training steps.")
@click.option("--batch-size", type=click.IntRange(min=2), default=16, show_default=True)
@click.option("--patch", type=click.IntRange(min=16), default=48, show_default=True,
              help="Patch side the GAN works at (multiple of 8); patches are scaled back to the defect's size.")
@click.option("--width", type=click.IntRange(min=8), default=24, show_default=True, help="Network width.")
@click.option("--sample-every", type=click.IntRange(min=1), default=250, show_default=True,
              help="Write a sample grid to OUT/samples every this many steps.")
@click.option("--judge-steps", type=click.IntRange(min=1), default=150, show_default=True,
              help="Training steps of the small classifier whose features judge the samples (KID, copy check).")
@click.option("--quality-samples", type=click.IntRange(min=2), default=64, show_default=True,
              help="Generated images the quality measures use.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda, cuda:N.")
def gan(data, defect, out, k, steps, batch_size, patch, width, sample_every, judge_steps, quality_samples, seed,
        device):
    """Defect GAN: paints new defects of one kind onto good images, learned from a few real ones with masks.

    Writes OUT/model.safetensors + config.json (with the collapse check and
    quality measures), OUT/bank.safetensors (the real shapes new defects start
    from) and OUT/samples/*.png. Exits non-zero when the generator collapsed.

    \b
    Example:
      edge-train gan --data data/demo/brick --defect crack --k 5 --out runs/gan-crack
      edge-data synth --gan runs/gan-crack --count 200 --out data/demo/brick
    """
    from train.gan.quality import GanCollapsed
    from train.gan.train import GanConfig, train_gan  # torch loads only when training

    if patch % 8:
        raise click.BadParameter(f"{patch} is not a multiple of 8", param_hint="--patch")
    cfg = GanConfig(data=data, defect=defect, out=out, k=k, steps=steps, batch_size=batch_size, patch=patch,
                    width=width, sample_every=sample_every, feature_steps=judge_steps, quality_samples=quality_samples,
                    seed=seed, device=device)
    config = train_gan(cfg, echo=lambda m: click.echo(m, err=True))
    c = config["collapse"]
    click.echo(f"diversity: spread {c['spread_ratio']:.2f}x the real defects', noise effect {c['noise_ratio']:.2f}")
    for name, row in config["quality"]["sets"].items():
        click.echo(f"{name:10s} KID {row['kid']:.4f}  FD {figure(row['frechet'], '.1f')}  nearest-training-defect distance "
                   f"{row['nearest']['ratio']:.2f}x a real one's, near-copies {row['nearest']['copy_share']:.0%}")
    click.echo(f"checkpoint: {Path(out) / 'model.safetensors'} + config.json, samples in {Path(out) / 'samples'} "
               f"({config['train']['seconds']} s on {config['train']['device_used']})")
    sets = config["quality"]["sets"]
    if sets["gan"]["kid"] > sets["good"]["kid"]:
        click.echo("warning: the GAN's images are farther from real defects than good images are (KID); look at "
                   "the samples and train longer before using them", err=True)
    if c["collapsed"]:
        raise GanCollapsed(f"the generator collapsed: {c['reason']}; see {Path(out) / 'samples'}, "
                           "then train longer (--steps) or with more real defect images")


@edge_train.command()
@click.option("--task", type=click.Choice(["classify", "anomaly"]), required=True,
              help="classify: faults from labelled series; anomaly: trained on normal data only.")
@click.option("--data", required=True, type=click.Path(dir_okay=False),
              help="A .ts file, a long CSV (series_id, t, channels..., label) or a wide CSV (one row per sample).")
@run_folder_options
@click.option("--arch", type=click.Choice(["rocket", "cnn", "lstm", "gru"]), default="rocket", show_default=True,
              help="Classifier: random-convolution features + ridge (seconds to fit, no epochs), a 1D-CNN, or a "
                   "2-layer LSTM or GRU behind a strided convolution.")
@click.option("--ignore-offset", is_flag=True,
              help="rocket: features that ignore each channel's offset (a sensor's zero point); costs accuracy "
                   "where the level itself tells the classes apart.")
@click.option("--label-column", default="label", show_default=True, help="CSV column with the class / normal label.")
@click.option("--window", type=click.IntRange(min=1), default=None,
              help="Samples per model input (wide CSV: required; series: default their median length).")
@click.option("--stride", type=click.IntRange(min=1), default=None, help="Samples between windows (default: --window).")
@click.option("--fit", "fit_how", type=click.Choice(["resample", "pad"]), default="resample", show_default=True,
              help="How series of other lengths meet the window: resample, or crop/pad (keeps the time scale).")
@click.option("--good-label", default=None, help="The label that means normal (default: normal/good/ok if present).")
@click.option("--sample-rate", type=Finite(min=0, min_open=True), default=None,
              help="Samples per second of the live source (recorded in the model, for edge-run's gap checks).")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Default: 40, and a cnn/lstm/gru classifier at least 600 optimizer steps (a small set gets more "
                   "epochs).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--lr", type=Finite(min=0, max=1, min_open=True), default=3e-3, show_default=True)
@click.option("--val-fraction", type=Finite(0.05, 0.5), default=0.2, show_default=True)
@click.option("--target-frr", type=Finite(0.0, 0.5), default=0.01, show_default=True,
              help="anomaly: threshold from the score this share of held-out normal windows reaches (+ --margin).")
@click.option("--margin", type=Finite(min=0.0), default=2.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda, cuda:N.")
def sensor(task, data, out, arch, ignore_offset, label_column, window, stride, fit_how, good_label, sample_rate, epochs,
           batch_size, lr, val_fraction, target_frr, margin, seed, device):
    """Sensor-signal models: fault classifier (rocket features, 1D-CNN, LSTM or GRU) or good-only anomaly detector.

    \b
    Example:
      edge-train sensor --task classify --data data/sensor/plaid/PLAID_TRAIN.ts --fit pad --window 512 --out runs/plaid
      edge-train sensor --task classify --arch lstm --data data/sensor/machine/train.csv --out runs/machine-lstm
      edge-train sensor --task anomaly --data data/sensor/water_flow/train.csv --window 24 --stride 1 --out runs/flow
    """
    from train.sensor import SensorConfig, train_sensor_anomaly, train_sensor_classifier

    if task == "classify" and arch == "rocket":
        ctx = click.get_current_context()
        given = [f"--{name.replace('_', '-')}" for name in ("epochs", "batch_size", "lr")
                 if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE]
        if given:
            raise click.BadParameter(f"{', '.join(given)} does not apply to --arch rocket, which is fitted in closed "
                                     "form; drop it, or choose --arch cnn, lstm or gru", param_hint="--arch")
    if ignore_offset and (task != "classify" or arch != "rocket"):
        raise click.BadParameter("applies to --task classify --arch rocket: the cnn, lstm and gru already "
                                 "z-normalise each window, and an anomaly model must see an offset (it is the "
                                 "drift it is there to catch)", param_hint="--ignore-offset")
    cfg = SensorConfig(data=data, out=out, task=task, arch=arch, ignore_offset=ignore_offset, label_column=label_column,
                       window=window, stride=stride, fit=fit_how, good_label=good_label, sample_rate_hz=sample_rate,
                       epochs=epochs, batch_size=batch_size, lr=lr, val_fraction=val_fraction, target_frr=target_frr,
                       margin=margin, seed=seed, device=device)
    echo = lambda m: click.echo(m, err=True)  # noqa: E731
    config = train_sensor_classifier(cfg, echo) if task == "classify" else train_sensor_anomaly(cfg, echo)
    val = config["metrics"]["validation"]
    if task == "classify":
        click.echo(format_table(val))
    else:
        click.echo(f"threshold {config['threshold']:.4f} ({config['threshold_rule']}); held-out normal median "
                   f"{val['heldout_normal']['median']:.4f}, max {val['heldout_normal']['max']:.4f}")
        if "fault_auroc" in val:
            click.echo(f"labelled faults in the training file: AUROC {val['fault_auroc']:.4f}")
    click.echo(f"checkpoint: {Path(out) / 'model.safetensors'} + config.json "
               f"({config['train']['seconds']} s on {config['train']['device_used']})")


@edge_train.command()
@click.option("--data", required=True, type=click.Path(dir_okay=False), help="CSV with one row per part.")
@click.option("--target", required=True, help="Column to predict: a measured value or a pass/fail word.")
@run_folder_options
@click.option("--spec-lower", type=Finite(), default=None, help="Lower spec limit of a measured target.")
@click.option("--spec-upper", type=Finite(), default=None, help="Upper spec limit of a measured target.")
@click.option("--spec", "spec_file", default=None, type=click.Path(dir_okay=False),
              help='spec.json with {"lower": .., "upper": ..} instead of the two flags.')
@click.option("--good-label", default=None, help="Passing value of a word target (default: pass/in_spec/ok/good).")
@click.option("--epochs", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--lr", type=Finite(min=0, max=1, min_open=True), default=3e-3, show_default=True)
@click.option("--val-fraction", type=Finite(0.05, 0.5), default=0.2, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda, cuda:N.")
def quality(data, target, out, spec_lower, spec_upper, spec_file, good_label, epochs, batch_size, lr, val_fraction,
            seed, device):
    """Quality model: an MLP from process parameters (one CSV row per part) to the part's quality.

    \b
    Example:
      edge-train quality --data data/sensor/quality/train.csv --target quality \\
          --spec data/sensor/quality/spec.json --out runs/quality
      edge-train quality --data parts.csv --target pass --out runs/quality-pass
    """
    from train.quality import QualityConfig, spec_from_file, train_quality

    if spec_file:
        spec_lower, spec_upper = spec_from_file(spec_file)
    cfg = QualityConfig(data=data, out=out, target=target, spec_lower=spec_lower, spec_upper=spec_upper,
                        good_label=good_label, epochs=epochs, batch_size=batch_size, lr=lr, val_fraction=val_fraction,
                        seed=seed, device=device)
    config = train_quality(cfg, echo=lambda m: click.echo(m, err=True))
    val = config["metrics"]["validation"]
    if "mae" in val:
        # R² is None when the held-out values happen to be all equal: nothing to explain, not a crash
        r2 = "n/a (held-out values all equal)" if val["r2"] is None else f"{val['r2']:.3f}"
        click.echo(f"validation MAE {val['mae']:.4f}, RMSE {val['rmse']:.4f}, R² {r2}; in/out of spec "
                   f"accuracy {val['spec_call']['accuracy']:.3f}")
        click.echo(format_table(val["spec_call"]))
    else:
        click.echo(format_table(val))
    click.echo(f"checkpoint: {Path(out) / 'model.safetensors'} + config.json "
               f"({config['train']['seconds']} s on {config['train']['device_used']})")


def main() -> None:
    run_cli(edge_train)


if __name__ == "__main__":
    sys.exit(main())
