"""The defect GAN: trains and checkpoints safely, synthesises deterministically into a layout the classifier
reads, refuses bad data and collapsed generators in one line, and the augment experiment reports end to end.

Settings are tiny (16 px patches, a few steps): these tests check the plumbing
and the checks, not the GAN's quality — that is the experiment's job.
"""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from clitools import one_line_error, run_cli

TINY = ["--steps", "4", "--batch-size", "4", "--patch", "16", "--width", "8", "--sample-every", "2", "--judge-steps", "3",
        "--quality-samples", "8", "--device", "cpu"]


@pytest.fixture(scope="module")
def gan_run(demo_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("gan") / "crack"
    proc = run_cli("edge-train", "gan", "--data", str(demo_data / "brick"), "--defect", "crack", "--k", "5",
                   "--out", str(out), *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "KID" in proc.stdout and "checkpoint:" in proc.stdout
    return out


def _defect_folder(src, dst, kind="crack", n=4, masks=True):
    """A small MVTec folder: good images and n defect images of one kind (masks optional)."""
    shutil.copytree(src / "train" / "good", dst / "train" / "good")
    (dst / "train" / kind).mkdir(parents=True)
    (dst / "train_ground_truth" / kind).mkdir(parents=True)
    for i in range(n):
        shutil.copy(src / "train" / kind / f"{i:03d}.png", dst / "train" / kind / f"{i:03d}.png")
        if masks:
            shutil.copy(src / "train_ground_truth" / kind / f"{i:03d}_mask.png",
                        dst / "train_ground_truth" / kind / f"{i:03d}_mask.png")
    return dst


def test_run_has_safe_checkpoint_sample_grids_and_measures(gan_run):
    names = {p.name for p in gan_run.iterdir()}
    assert {"config.json", "model.safetensors", "bank.safetensors", "samples"} <= names
    grids = sorted((gan_run / "samples").glob("step_*.png"))
    assert [g.name for g in grids] == ["step_00002.png", "step_00004.png"]
    assert cv2.imread(str(grids[-1])) is not None
    config = json.loads((gan_run / "config.json").read_text())
    assert config["task"] == "gan" and config["defect"] == "crack" and len(config["data"]["defect_files"]) == 5
    assert config["collapse"]["collapsed"] is False
    sets = config["quality"]["sets"]
    assert set(sets) == {"gan", "paste", "good", "real_train"}  # real_train: the 15 crack images --k left out exist
    assert "never saw" in config["quality"]["against"]
    assert all(np.isfinite(row["kid"]) and 0 <= row["nearest"]["copy_share"] <= 1 for row in sets.values())

    from train.gan.synth import load_gan

    G, _, bank = load_gan(gan_run)  # safetensors + JSON only
    assert bank.masks.shape[1:] == (16, 16) and len(bank.masks) == 5


def test_synth_is_byte_identical_for_a_seed_and_classify_trains_on_it(gan_run, demo_data, tmp_path):
    def synth(out, seed, *more):
        proc = run_cli("edge-data", "synth", "--gan", str(gan_run), "--count", "6", "--out", str(out), "--seed", seed,
                       *more)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return sorted(p for p in out.rglob("*.png"))

    a, b, c = synth(tmp_path / "a", "3"), synth(tmp_path / "b", "3"), synth(tmp_path / "c", "4")
    assert len(a) == 12  # 6 images + 6 masks
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert [p.read_bytes() for p in a] != [p.read_bytes() for p in c]
    own = synth(tmp_path / "own", "3", "--colour", "generator")  # same placements and shapes, other colours
    assert [p.read_bytes() for p in a if "mask" in p.name] == [p.read_bytes() for p in own if "mask" in p.name]
    assert [p.read_bytes() for p in a if "mask" not in p.name] != [p.read_bytes() for p in own if "mask" not in p.name]
    assert "real defects' tint" in json.loads((tmp_path / "a" / "synth_crack.json").read_text())["colour"]
    for image_path in (tmp_path / "a" / "train" / "crack").iterdir():
        mask = cv2.imread(str(tmp_path / "a" / "train_ground_truth" / "crack" / f"{image_path.stem}_mask.png"), 0)
        assert mask.shape == cv2.imread(str(image_path)).shape[:2] and set(np.unique(mask)) == {0, 255}

    shutil.copytree(demo_data / "brick" / "train" / "good", tmp_path / "a" / "train" / "good")
    proc = run_cli("edge-train", "classify", "--data", str(tmp_path / "a"), "--out", str(tmp_path / "run"),
                   "--epochs", "1", "--image-size", "64", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"]["counts"] == {"good": 60, "crack": 6}


def test_composite_changes_only_the_pixels_under_the_mask(demo_data):
    from train.gan.compose import composite, place
    from train.gan.data import load_defects, load_good, make_bank

    defects = load_defects(demo_data / "brick", "hole", k=4)
    goods, _ = load_good(demo_data / "brick")
    bank = make_bank(defects, 32)
    rng = np.random.default_rng(0)
    for _ in range(5):
        p = place(bank, len(goods), goods.shape[1:3], rng)
        image, mask = composite(goods[p.image], np.zeros((32, 32, 3), np.uint8), p)
        changed = (image != goods[p.image]).any(-1)
        reach = 2 * int(np.ceil(3 * p.side / 32)) + 1  # the soft edge: ~3 patch pixels, scaled to the image
        near = cv2.dilate(mask, np.ones((reach, reach), np.uint8)) > 0
        assert changed.any() and not (changed & ~near).any()
        assert (image[mask > 0] != goods[p.image][mask > 0]).any(-1).mean() > 0.9  # under the mask: the new layer


@pytest.mark.parametrize("case, expect", [
    ("two_defects", "needs at least 3"),
    ("no_masks", "has no mask: expected"),
    ("wrong_mask_size", "a mask must have its image's size"),
    ("k_too_small", "at least 3 real defect images"),
    ("unknown_kind", "crack"),
    ("good_kind", "'good' is the good parts, not a defect kind: name the defect kind, a train/<defect> folder (crack)"),
    ("a_path", "'../train/good' is a path, not a folder name"),
])
def test_bad_input_is_one_line_with_the_minimum(case, expect, demo_data, tmp_path):
    src, data = demo_data / "brick", tmp_path / "data"
    extra = []
    if case == "two_defects":
        _defect_folder(src, data, n=2)
    elif case == "no_masks":
        _defect_folder(src, data, n=4, masks=False)
    elif case == "wrong_mask_size":
        _defect_folder(src, data, n=4)
        cv2.imwrite(str(data / "train_ground_truth" / "crack" / "002_mask.png"), np.full((40, 128), 255, np.uint8))
    elif case == "k_too_small":
        _defect_folder(src, data, n=4)
        extra = ["--k", "2"]
    else:
        _defect_folder(src, data, n=4)
    defect = {"unknown_kind": "scratch", "good_kind": "good", "a_path": "../train/good"}.get(case, "crack")
    line = one_line_error(run_cli("edge-train", "gan", "--data", str(data), "--defect", defect, "--out",
                                  str(tmp_path / "run"), *extra, *TINY))
    assert expect in line


class _IgnoresNoise(torch.nn.Module):
    """A deliberately collapsed generator: the same painting whatever z is."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.z_dim, self.patch = inner, inner.z_dim, inner.patch

    def forward(self, z, mask, background):
        return self.inner(torch.zeros_like(z), mask, background)


class _Constant(torch.nn.Module):
    """Collapsed the classic way: one flat dark blob for every placement."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.z_dim, self.patch = inner, inner.z_dim, inner.patch

    def forward(self, z, mask, background):
        return torch.full_like(background, -0.8) + 0 * self.inner(z, mask, background)


def test_collapse_is_detected_and_a_collapsed_run_is_refused(gan_run, demo_data, tmp_path):
    from train.gan.data import load_good
    from train.gan.quality import collapse_check
    from train.gan.synth import load_gan

    G, _, bank = load_gan(gan_run)
    goods, _ = load_good(demo_data / "brick")
    healthy = collapse_check(G, bank, goods, np.random.default_rng(0))
    assert not healthy["collapsed"]
    deaf = collapse_check(_IgnoresNoise(G), bank, goods, np.random.default_rng(0))
    assert deaf["collapsed"] and deaf["noise_ratio"] == 0 and "ignores its noise" in deaf["reason"]
    flat = collapse_check(_Constant(G), bank, goods, np.random.default_rng(0))
    assert flat["collapsed"] and "near-identical" in flat["reason"]

    run = tmp_path / "collapsed"
    shutil.copytree(gan_run, run)
    config = json.loads((run / "config.json").read_text())
    config["collapse"] = deaf
    (run / "config.json").write_text(json.dumps(config))
    line = one_line_error(run_cli("edge-data", "synth", "--gan", str(run), "--count", "2", "--out", str(tmp_path / "o")))
    assert "collapsed" in line and "ignores its noise" in line


def test_kernel_distance_and_copy_check_mean_what_they_say():
    from train.gan.quality import kid, nearest

    rng = np.random.default_rng(0)
    real = rng.normal(size=(40, 8))
    assert abs(kid(rng.normal(size=(200, 8)), real)) < kid(rng.normal(1.0, size=(200, 8)), real)
    copies = nearest(real[:10] + 1e-6, real)
    fresh = nearest(rng.normal(size=(40, 8)), real)
    assert copies["copy_share"] == 1.0 and fresh["copy_share"] < 0.3 and fresh["ratio"] > 0.5


def test_augment_experiment_runs_end_to_end(demo_data, tmp_path):
    out = tmp_path / "report"
    proc = run_cli("edge-bench", "augment", "--data", str(demo_data / "brick"), "--out", str(out), "--k", "3",
                   "--seeds", "2", "--kinds", "hole", "--steps", "6", "--image-size", "64",
                   "--synth-count", "4", "--gan-steps", "2", "--gan-patch", "16", "--gan-width", "8",
                   "--arms", "plain,classic,gan,paste,gan_raw", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    arms = ("plain", "classic", "gan", "paste", "gan_raw")
    assert [(r["k"], r["arm"]) for r in report["summary"]] == [(3, a) for a in arms]
    assert len(report["runs"]) == 10 and len(report["gans"]) == 2  # gan and gan_raw: one GAN, two colourings
    arm = {r["arm"]: r for r in report["runs"] if r["seed"] == 0}
    assert arm["gan"]["train_images"] == arm["classic"]["train_images"] == arm["plain"]["train_images"] + 4 == 67
    assert arm["plain"]["steps"] == arm["gan"]["steps"] == 6  # 63 and 67 images: 3 epochs of 2 batches, 2 of 3
    assert all("quality" in g and "gan" in g["quality"] for g in report["gans"])
    assert sorted(p.name for p in out.iterdir() if p.name.startswith((".gans", "gans"))) == ["gans"]
    assert all((Path(g["run"]) / "config.json").is_file() for g in report["gans"])  # where the report says
    md = (out / "report.md").read_text()
    assert "| k | training data | defect recall |" in md and "## Verdict" in md and "k=3, GAN images vs" in md
    assert "the generator's own colours" in md and "| GAN | GAN, own colours | copy-paste | real k | good |" in md
    assert report["environment"]["cpu"]["model"] in md
    assert cv2.imread(str(out / "plot.png")) is not None


def test_augment_refuses_k_beyond_the_data(demo_data, tmp_path):
    line = one_line_error(run_cli("edge-bench", "augment", "--data", str(demo_data / "brick"), "--out",
                                  str(tmp_path / "r"), "--k", "5,50"))
    assert "--k 50" in line


def test_a_residual_generator_paints_over_the_background_not_from_scratch():
    # an untrained residual G returns (nearly) the part itself; the plain one paints an unrelated picture,
    # which is where half-trained GANs' green and white blobs came from
    from train.gan.networks import PatchGenerator

    torch.manual_seed(0)
    background = torch.rand(4, 3, 48, 48) * 2 - 1
    mask, z = torch.ones(4, 1, 48, 48), torch.randn(4, 64)
    with torch.no_grad():
        residual = PatchGenerator(residual=True)(z, mask, background)
        plain = PatchGenerator(residual=False)(z, mask, background)
    near, far = (residual - background).abs().mean(), (plain - background).abs().mean()
    assert near < 0.25 * far and residual.abs().max() < 1


def test_the_generator_paints_brightness_freely_and_colour_scaled_down():
    # the same weights with chroma 1 and 0.1: the brightness part of the painted change is the same, its colour
    # part (the two colour-difference axes) a tenth; older checkpoints (no chroma) paint R, G, B directly
    from train.gan.networks import PatchGenerator, opponent_basis

    torch.manual_seed(0)
    background = torch.rand(2, 3, 48, 48) * 1.6 - 0.8
    mask, z = torch.ones(2, 1, 48, 48), torch.randn(2, 64)
    full = PatchGenerator(residual=True, chroma=1.0)
    scaled = PatchGenerator(residual=True, chroma=0.1)
    scaled.load_state_dict(full.state_dict())  # no basis in the state: checkpoints stay R, G, B-agnostic
    with torch.no_grad():
        change = [torch.atanh(g(z, mask, background)) - torch.atanh(background) for g in (full, scaled)]
    axes = [torch.einsum("nchw,kc->nkhw", c, opponent_basis()) for c in change]
    assert torch.allclose(axes[0][:, 0], axes[1][:, 0], atol=1e-3)
    assert torch.allclose(axes[1][:, 1:], 0.1 * axes[0][:, 1:], atol=1e-3)
    assert PatchGenerator(residual=True).paint_basis is None


def test_the_painted_tint_comes_from_the_real_defects_and_the_shade_from_the_generator():
    # real defects that only darken a brick-coloured surface; a layer that darkens the same way is left as it is,
    # one that also sprays ±40 grey levels of per-channel speckle (the green/magenta cracks of an untuned GAN)
    # loses the speckle and keeps its darkening. A real stain that reddens the surface passes its tint on.
    from train.gan.compose import _log_change, match_tint, tint_reference
    from train.gan.data import Bank

    background = np.full((32, 32, 3), (60, 110, 170), np.float32)  # BGR
    mask = np.zeros((32, 32), np.uint8)
    mask[12:20, 4:28] = 1
    inside = mask > 0
    dark = background.copy()
    dark[inside] *= 0.5
    grey_ref = tint_reference(Bank(dark.astype(np.uint8)[None], mask[None], np.array([32])))
    as_real = match_tint(dark.astype(np.uint8), background.astype(np.uint8), mask.astype(np.float32), grey_ref)
    assert np.abs(as_real[inside].astype(np.float32) - dark[inside]).max() <= 1  # outside: hidden by the alpha

    speckle = dark + np.random.default_rng(0).uniform(-40, 40, dark.shape) * mask[..., None]
    layer = np.clip(speckle + 0.5, 0, 255).astype(np.uint8)
    out = match_tint(layer, background.astype(np.uint8), mask.astype(np.float32), grey_ref)
    shade_in, tint_in = _log_change(layer.astype(np.float32), background)
    shade_out, tint_out = _log_change(out.astype(np.float32), background)
    assert tint_in[inside].std(axis=0).min() > 0.1 and tint_out[inside].std(axis=0).max() < 0.03
    assert np.abs(shade_out[inside] - shade_in[inside]).mean() < 0.01

    red = background.copy()
    red[inside] *= (0.9, 0.9, 1.2)
    red_ref = tint_reference(Bank(np.clip(red, 0, 255).astype(np.uint8)[None], mask[None], np.array([32])))
    reddened = match_tint(dark.astype(np.uint8), background.astype(np.uint8), mask.astype(np.float32), red_ref)
    assert np.allclose(_log_change(reddened.astype(np.float32), background)[1][inside].mean(axis=0), red_ref.mean,
                       atol=0.01)
    assert (reddened[inside][:, 2].astype(float) - dark[inside][:, 2]).mean() > 5  # redder than the grey darkening
