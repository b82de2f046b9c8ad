"""An anomaly run's weights under the other score, for the README's line-vs-gauss figures: the score does not
enter training, so `edge-train anomaly` would have produced exactly this run had it chosen (or been told) the
other score. The threshold is calibrated again on the run's held-out good images, by the run's rule.

    python -m benchmarks.rescore runs/grass-anomaly runs/grass-line --score line
    edge-export runs/grass-line --out artifacts/grass-line && edge-eval --model ... --perturb all
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from train.anomaly import GOOD, _scores, calibrate, gauss_fitted, good_images, validate
from train.checkpoint import load_checkpoint, save_checkpoint
from train.images import load_image_set
from train.models import create_model


def main(run: str, out: str, score: str) -> None:
    model, config = load_checkpoint(run)
    root, size = Path(config["data"]["root"]), tuple(config["preprocess"]["input_size"])
    held_out = {root / f for f in config["validation_files"]}
    load = lambda files: load_image_set([(f, GOOD) for f in files], [GOOD], size).images  # noqa: E731
    held_images = load(sorted(held_out))
    args = {k: v for k, v in config["model"]["args"].items() if k != "noise_levels"}
    config.pop("gaussian", None)
    config.pop("calibration", None)  # calibrated again below, by the run's own rule
    if score == "gauss":
        train = sorted(f for f in good_images(root) if f not in held_out)
        model, args, config["gaussian"] = gauss_fitted(model, args, train, load(train),
                                                       config["train"].get("compressed", False))
    else:
        args["score"] = score
        line = create_model("surfacenet", **args)
        line.load_state_dict(model.state_dict(), strict=False)  # a gauss run's Gaussian buffers are dropped
        model = line.eval()
    threshold, rule = calibrate(_scores(model, held_images, torch.device("cpu")), config["train"]["target_frr"],
                                config["train"]["margin"])
    config.update(threshold=threshold, threshold_rule=rule, rescored={"from": str(run), "score": score})
    config["model"]["args"] = args
    config["metrics"]["validation"] = validate(model, held_images, threshold, config["validation_synthetic_seed"], None)
    save_checkpoint(Path(out), model, config)
    print(f"{out}: score {score}, threshold {threshold:.4f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("out")
    parser.add_argument("--score", choices=["line", "gauss"], required=True)
    options = parser.parse_args()
    main(options.run, options.out, options.score)
