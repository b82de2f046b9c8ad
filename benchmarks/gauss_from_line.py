"""The README's --score gauss figures: a line-score anomaly run's weights with the Gaussian fitted on, as
`edge-train anomaly --score gauss` does after its training loop (the score does not enter the loss).

    python -m benchmarks.gauss_from_line runs/grass-anomaly runs/grass-gauss
    edge-export runs/grass-gauss --out artifacts/grass-gauss && edge-eval --model ... --perturb all
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from train.anomaly import GOOD, _scores, calibrate, good_images, validate
from train.checkpoint import load_checkpoint, save_checkpoint
from train.images import load_image_set
from train.models import create_model
from train.models.anomaly_net import NOISE_LEVELS, fit_gaussian


def main(run: str, out: str) -> None:
    line_model, config = load_checkpoint(run)
    args = {**config["model"]["args"], "score": "gauss", "noise_levels": list(NOISE_LEVELS)}
    model = create_model("surfacenet", **args)
    model.load_state_dict(line_model.state_dict(), strict=False)  # the Gaussian's buffers are fitted below
    root, size = Path(config["data"]["root"]), tuple(config["preprocess"]["input_size"])
    held_out = {root / f for f in config["validation_files"]}
    train = sorted(f for f in good_images(root) if f not in held_out)
    load = lambda files: load_image_set([(f, GOOD) for f in files], [GOOD], size).images  # noqa: E731
    held_images = load(sorted(held_out))
    config["gaussian"] = fit_gaussian(model, load(train))
    threshold, rule = calibrate(_scores(model, held_images, torch.device("cpu")), config["train"]["target_frr"],
                                config["train"]["margin"])
    config.update(threshold=threshold, threshold_rule=rule)
    config["model"]["args"], config["train"]["score"] = args, "gauss"
    config["metrics"]["validation"] = validate(model, held_images, threshold, config["validation_synthetic_seed"], None)
    save_checkpoint(Path(out), model, config)
    print(f"{out}: Gaussian {config['gaussian']}, threshold {threshold:.4f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
