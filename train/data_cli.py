"""`edge-data`: make the demo and test data sets (no downloads)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.core import ParameterSource

from edge_runtime.cli_support import OutPath, comma_list, progress, run_cli


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def edge_data():
    """Make data sets for lineside's demo and tests."""


@edge_data.command()
@click.option("--out", required=True, type=OutPath(), help="Folder to write into.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--surfaces", default="brick,grass,gravel", show_default=True, help="Comma list of real surfaces.")
@click.option("--train-good", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--train-defect", type=click.IntRange(min=0), default=60, show_default=True, help="Per defect kind.")
@click.option("--test-good", type=click.IntRange(min=1), default=60, show_default=True)
@click.option("--test-defect", type=click.IntRange(min=1), default=30, show_default=True, help="Per defect kind.")
@click.option("--size", type=click.IntRange(min=32, max=2048), default=128, show_default=True,
              help="Part image side (px).")
@click.option("--clip-parts", type=click.IntRange(min=0), default=16, show_default=True, help="Parts in the line clip.")
@click.option("--no-clip", is_flag=True, help="Skip the line clip.")
def demo(out, seed, surfaces, train_good, train_defect, test_good, test_defect, size, clip_parts, no_clip):
    """Real surfaces (scikit-image's brick, grass, gravel) with generated defects, MVTec layout, and a line clip.

    \b
    Example:
      edge-data demo --out data/demo --seed 0
    """
    from train.data.defects import DEFECTS
    from train.data.demo import make_demo
    from train.data.surfaces import SURFACES

    names = tuple(comma_list(surfaces, "--surfaces", f"one or more of {', '.join(SURFACES)}"))
    if no_clip and click.get_current_context().get_parameter_source("clip_parts") != ParameterSource.DEFAULT:
        raise click.BadParameter("there is no clip to put parts in with --no-clip: drop one of the two",
                                 param_hint="--clip-parts")
    clip_parts = 0 if no_clip else clip_parts
    total = len(names) * (train_good + test_good + len(DEFECTS) * (train_defect + test_defect)) + clip_parts
    with progress(label="writing demo data (files)", length=total) as bar:
        summary = make_demo(Path(out), seed=seed, surfaces=names, train_good=train_good, train_defect=train_defect,
                            test_good=test_good, test_defect=test_defect, size=size, clip_parts=clip_parts,
                            progress=bar.update)
    for name in names:
        counts = summary["counts"][name]
        click.echo(f"{Path(out) / name}: train {sum(counts['train'].values())}, test {sum(counts['test'].values())} "
                   f"images ({', '.join(counts['test'])})")
    if "clip" in summary:
        clip = summary["clip"]
        click.echo(f"{Path(out) / 'line_clip.mp4'}: {clip['frames']} frames {clip['width']}x{clip['height']} "
                   f"@ {clip['fps']} fps, ROI {','.join(map(str, clip['roi']))}; truth in line_clip.csv")


@edge_data.command()
@click.option("--out", required=True, type=OutPath(), help="Folder to write into.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same files (byte for byte).")
@click.option("--train-per-class", type=click.IntRange(min=1), default=40, show_default=True,
              help="Machine series per class in machine/train.csv.")
@click.option("--test-per-class", type=click.IntRange(min=1), default=20, show_default=True,
              help="Machine series per class in machine/test.csv.")
def sensor(out, seed, train_per_class, test_per_class):
    """Sensor and process data: PLAID appliance current and a water pipeline (real, from sktime and river),
    machine vibration and moulding quality (generated); what each file is goes to OUT/README.md.

    \b
    Example:
      edge-data sensor --out data/sensor --seed 0
    """
    from train.data.sensor_demo import make_sensor

    summary = make_sensor(Path(out), seed=seed, train_per_class=train_per_class, test_per_class=test_per_class)
    out = Path(out)
    water, machine, quality = summary["water_flow"], summary["machine"], summary["quality"]
    click.echo(f"{out / 'plaid'}: PLAID_TRAIN.ts, PLAID_TEST.ts ({summary['plaid']['source']})")
    click.echo(f"{out / 'water_flow'}: {water['rows']} hourly rows, {len(water['segments'])} anomalous segments, "
               f"{water['train_rows']} normal rows in train.csv ({water['source']})")
    click.echo(f"{out / 'machine'}: train {machine['train']}, test {machine['test']}, "
               f"train_normal {machine['train_normal']} series; stream.csv {machine['stream_seconds']:g} s")
    click.echo(f"{out / 'quality'}: train {quality['train']['parts']}, test {quality['test']['parts']} parts; "
               f"spec.json")
    click.echo(f"what each file is: {out / 'README.md'}")


@edge_data.command()
@click.option("--gan", "run", required=True, type=click.Path(), help="GAN run folder (edge-train gan --out).")
@click.option("--count", required=True, type=click.IntRange(min=1), help="Defect images to write.")
@click.option("--out", required=True, type=OutPath(file_okay=False),
              help="MVTec-layout folder to write train/<defect> and train_ground_truth/<defect> into.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same files (byte for byte).")
@click.option("--background", default=None, type=click.Path(),
              help="Good images to paint on (default: the GAN's training data).")
@click.option("--method", type=click.Choice(["gan", "paste"]), default="gan", show_default=True,
              help="paste: move the real defects instead of painting new ones (the baseline to beat).")
@click.option("--colour", type=click.Choice(["real", "generator"]), default="real", show_default=True,
              help="gan: the real defects' tint over the generator's shade, or the generator's own colours.")
@click.option("--allow-collapsed", is_flag=True, help="Use a run that failed the collapse check.")
def synth(run, count, out, seed, background, method, colour, allow_collapsed):
    """Synthetic defect images + masks from a trained defect GAN, ready for `edge-train classify`.

    Files are named synth_NNNN, so writing into a real data folder adds to it
    without touching the real images (earlier synth_* files of the kind are
    replaced); the manifest is OUT/synth_<defect>.json. `edge-train gan` never
    takes synth_* files for real defects.

    \b
    Example:
      edge-data synth --gan runs/gan-crack --count 200 --out data/demo/brick --seed 0
      edge-train classify --data data/demo/brick --out runs/brick-synth
    """
    from train.gan.data import load_good
    from train.gan.synth import load_gan, synthesize, write_manifest, write_mvtec

    G, config, bank = load_gan(run, allow_collapsed=allow_collapsed)
    goods, _ = load_good(background or config["data"]["root"], tuple(config["image_size"]))
    kind = config["defect"]
    with progress(label=f"painting {kind} defects (images)", length=count) as bar:
        images, masks = synthesize(G, bank, goods, count, seed=seed, method=method, real_tint=colour == "real",
                                   progress=bar.update)
    files = write_mvtec(Path(out), kind, images, masks)
    write_manifest(Path(out), kind, run, config, count, seed, method, colour)
    click.echo(f"{len(files)} {kind} images in {Path(out) / 'train' / kind}, masks in "
               f"{Path(out) / 'train_ground_truth' / kind} ({method}, seed {seed})")


def main() -> None:
    run_cli(edge_data)


if __name__ == "__main__":
    sys.exit(main())
