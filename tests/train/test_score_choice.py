"""--score auto: a surface (it looks alike everywhere in the frame) gets the Gaussian score, a part held in place
gets the line score, decided from the good images alone."""

import json

import cv2
import numpy as np
from skimage import data

from clitools import run_cli
from train.checkpoint import load_checkpoint
from train.data.surfaces import TRAIN_REGION, crop_part, load_surface
from train.score_choice import POSITION_SHARE_MAX, position_share


def _held_part(n: int, size: int, seed: int = 0) -> np.ndarray:
    """A coin from scikit-image's photograph, as a fixed camera sees one part after another: placed within
    3 px, lamp within 10 %, sensor noise σ 3. RGB uint8, n x size x size."""
    coins, rng = data.coins(), np.random.default_rng(seed)
    images = []
    for _ in range(n):
        dx, dy = rng.integers(-3, 4, 2)
        crop = coins[20 + dy : 110 + dy, 20 + dx : 110 + dx].astype(np.float32)
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA) * rng.uniform(0.9, 1.1)
        crop = crop + rng.normal(0.0, 3.0, crop.shape)
        images.append(np.repeat(np.clip(crop, 0, 255).astype(np.uint8)[..., None], 3, axis=-1))
    return np.stack(images)


def _surface(name: str, n: int, size: int) -> np.ndarray:
    """Crops of one of the demo's real surfaces, as edge-data demo cuts its parts. RGB uint8, n x size x size."""
    rng = np.random.default_rng(1)
    return np.stack([crop_part(load_surface(name), rng, TRAIN_REGION, size)[..., ::-1] for _ in range(n)])


def test_position_explains_nothing_on_a_surface_and_much_on_a_part_held_in_place(anomaly_run):
    model, _ = load_checkpoint(anomaly_run)  # a net trained on brick: the measure does not need the part's own
    surfaces = [position_share(model, _surface(s, 60, 128)) for s in ("brick", "grass", "gravel")]
    part = position_share(model, _held_part(60, 128))
    assert max(abs(s) for s in surfaces) < POSITION_SHARE_MAX / 2, surfaces
    assert part > 2 * POSITION_SHARE_MAX, part
    # the halves' own sampling noise does not count: half as many images of a surface still read about 0
    assert abs(position_share(model, _surface("grass", 30, 128))) < POSITION_SHARE_MAX / 2


def test_edge_train_auto_fits_the_gaussian_for_a_surface_and_keeps_the_line_score_for_a_part(demo_data, tmp_path):
    part = tmp_path / "part"
    part.mkdir()
    for i, image in enumerate(_held_part(30, 96)):
        cv2.imwrite(str(part / f"{i:03d}.png"), image[..., ::-1])
    chosen = {}
    for name, folder in (("brick", demo_data / "brick"), ("part", part)):
        run = tmp_path / f"run-{name}"
        proc = run_cli("edge-train", "anomaly", "--data", str(folder), "--out", str(run), "--steps", "3",
                       "--image-size", "64", "--crop", "64", "--device", "cpu")
        assert proc.returncode == 0, proc.stderr[-2000:]
        config = json.loads((run / "config.json").read_text())
        assert config["train"]["score"] == "auto" and "--score auto: position explains" in proc.stdout
        chosen[name] = config["model"]["args"]["score"]
        assert chosen[name] == config["score_choice"]["score"]
        assert ("gaussian" in config) == (chosen[name] == "gauss")
        load_checkpoint(run)  # what was saved loads as what was chosen
    assert chosen == {"brick": "gauss", "part": "line"}
