"""Models for sensor windows and process parameters: float32 N x T x C in, raw sensor units.

Every model starts with its normalisation (`ChannelNorm`, or `WindowNorm` for the
classifiers), with statistics learnt at training inside the ONNX graph, so the
runtime feeds raw samples.

- `seq_cnn`: a fully convolutional 1D network (the FCN of Wang et al. 2017, a strong
  UCR baseline) with global average and max pooling — fast, and length-agnostic inside.
- `seq_lstm`: a 2-layer LSTM read at its last step plus the mean over time; exports to
  ONNX's LSTM op, which ORT quantizes dynamically.
- `seq_gru`: the same with a GRU (ONNX's GRU op). ORT has no quantized GRU: its INT8
  quantizes the head only and runs no faster, so the export recommends fp32.
- `signal_ae`: a good-only anomaly model: an autoencoder's reconstruction error and the
  window's level and spread, each against the normal training windows, as a 0..1 score.
- `quality_mlp`: process parameters (a window of 1 sample) → a quality value in the
  target's own units, or pass/fail probabilities.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from train.models.registry import register_model


class ChannelNorm(nn.Module):
    """(x - mean) / std per channel, with the statistics of the training data as buffers."""

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class WindowNorm(nn.Module):
    """Each window's shape and its level, separately: (x - window mean) / window std, plus log(window std).

    Signals of one class can differ in amplitude by orders of magnitude (PLAID: a
    laptop charger draws 1/1000 of a heater's current). Global normalisation
    would leave the small ones flat zeros to the network; z-normalising each
    window alone would throw the level away. The level channel keeps it, on a log
    scale relative to the training data's spread. Output: N x 2C x T, channels first
    as the convolution after it wants them, and because ONNX Runtime broadcasts a
    statistic along the last axis far faster than along a middle one (the machine
    LSTM's normalisation and first convolution: 56 → 46 µs per call in ORT).
    """

    def __init__(self, std: list[float]):
        super().__init__()
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2)
        std = self.std[:, None]
        mean = x.mean(dim=2, keepdim=True)
        spread = x.std(dim=2, keepdim=True) + 1e-3 * std
        level = torch.log(spread / std)
        return torch.cat([(x - mean) / spread, level.expand_as(x)], dim=1)


def _block(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm1d(cout),
                         nn.ReLU(inplace=True))


class SeqCNN(nn.Module):
    def __init__(self, channels: int, num_classes: int, mean: list[float], std: list[float], width: int = 64):
        super().__init__()
        self.norm = WindowNorm(std)
        # Three blocks as in the FCN; two more with poolings between (receptive field ~60) did no better on
        # PLAID (test accuracy 0.747 vs 0.767) and ran 1.5x slower.
        self.features = nn.Sequential(_block(2 * channels, width, 7), _block(width, 2 * width, 5),
                                      _block(2 * width, width, 3))
        self.head = nn.Linear(2 * width, num_classes)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(self.norm(x))
        return self.head(torch.cat([f.mean(dim=2), f.amax(dim=2)], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=1)


class SeqRNN(nn.Module):
    """A 2-layer LSTM or GRU behind a strided convolution, read at its last step plus the mean over time."""

    def __init__(self, channels: int, num_classes: int, mean: list[float], std: list[float], hidden: int = 64,
                 stride: int = 1, cell: str = "lstm"):
        super().__init__()
        self.norm = WindowNorm(std)
        # A strided convolution in front shortens long windows (PLAID: 300 samples) before the recurrence,
        # which is sequential and dominates the latency.
        self.reduce = nn.Conv1d(2 * channels, hidden, kernel_size=max(stride, 1), stride=max(stride, 1))
        self.cell = cell
        # the attribute is named after the cell, so LSTM checkpoints keep their keys (lstm.weight_ih_l0, ...)
        setattr(self, cell, {"lstm": nn.LSTM, "gru": nn.GRU}[cell](hidden, hidden, num_layers=2, batch_first=True))
        self.head = nn.Linear(2 * hidden, num_classes)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.relu(self.reduce(self.norm(x))).transpose(1, 2)
        out, _ = getattr(self, self.cell)(z)
        return self.head(torch.cat([out[:, -1], out.mean(dim=1)], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=1)


class SignalAE(nn.Module):
    """Good-only anomaly score of a window, 0..1: how far it is from the normal windows seen in training.

    Two measures, each in units of its own 99th percentile over the normal training
    windows (set by `calibrate`), and the larger one counts:
    - reconstruction error of a dense autoencoder over the whole window (the mean of
      its worst 1 % of samples, so that a few spiking samples are not averaged away) —
      changes of shape;
    - the window's per-channel mean and log spread against their training
      distribution — drift, a stuck or dead channel (which an autoencoder reconstructs
      all too well), a gain change. With a window of 1 sample this is a per-sample
      z-score: the tabular detector.
    score = r / (r + SCORE_SCALE): normal windows stay below ~0.1, one 10x beyond them scores 0.5.
    """

    SCORE_SCALE = 10.0

    def __init__(self, channels: int, window: int, mean: list[float], std: list[float], width: int = 32,
                 code: int = 8):
        super().__init__()
        self.norm = ChannelNorm(mean, std)
        flat = channels * window
        hidden = max(4 * code, min(256, flat))
        self.top = max(1, flat // 100)
        self.encode = nn.Sequential(nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(), nn.Linear(hidden, width),
                                    nn.ReLU(), nn.Linear(width, code))
        self.decode = nn.Sequential(nn.Linear(code, width), nn.ReLU(), nn.Linear(width, hidden), nn.ReLU(),
                                    nn.Linear(hidden, flat))
        # Calibration on the normal training windows (see `calibrate`); the defaults only give shapes.
        self.register_buffer("recon_ref", torch.tensor(1.0))
        self.register_buffer("stats_mean", torch.zeros(2 * channels))
        self.register_buffer("stats_std", torch.ones(2 * channels))
        self.register_buffer("stats_ref", torch.tensor(1.0))

    def errors(self, x: torch.Tensor) -> torch.Tensor:
        z = self.norm(x)
        return (self.decode(self.encode(z)).view_as(z) - z).pow(2).flatten(1)

    def _recon(self, x: torch.Tensor) -> torch.Tensor:
        return torch.topk(self.errors(x), self.top, dim=1).values.mean(dim=1)

    def _stats(self, x: torch.Tensor) -> torch.Tensor:
        z = self.norm(x)
        mean = z.mean(dim=1)
        spread = torch.log((z - mean.unsqueeze(1)).pow(2).mean(dim=1) + 1e-6)
        return torch.cat([mean, spread], dim=1)

    def _stats_deviation(self, x: torch.Tensor) -> torch.Tensor:
        return ((self._stats(x) - self.stats_mean) / self.stats_std).abs().amax(dim=1)

    @torch.no_grad()
    def calibrate(self, x: torch.Tensor) -> None:
        """Set the reference levels from normal windows (after training)."""
        stats = self._stats(x)
        self.stats_mean.copy_(stats.mean(dim=0))
        self.stats_std.copy_(stats.std(dim=0).clamp_min(1e-3))
        self.recon_ref.fill_(float(torch.quantile(self._recon(x), 0.99).clamp_min(1e-8)))
        self.stats_ref.fill_(float(torch.quantile(self._stats_deviation(x), 0.99).clamp_min(1e-3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = torch.maximum(self._recon(x) / self.recon_ref, self._stats_deviation(x) / self.stats_ref)
        return r / (r + self.SCORE_SCALE)


class QualityMLP(nn.Module):
    def __init__(self, channels: int, mean: list[float], std: list[float], outputs: int = 1, target_mean: float = 0.0,
                 target_std: float = 1.0, hidden: int = 64, classes: bool = False):
        super().__init__()
        self.norm = ChannelNorm(mean, std)
        self.classes = classes
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(channels, hidden), nn.SiLU(), nn.Linear(hidden, hidden),
                                 nn.SiLU(), nn.Linear(hidden, outputs))
        self.register_buffer("target_mean", torch.tensor(float(target_mean)))
        self.register_buffer("target_std", torch.tensor(float(target_std)))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, or the value in normalised target units (what the loss sees)."""
        return self.net(self.norm(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.logits(x)
        return torch.softmax(out, dim=1) if self.classes else out * self.target_std + self.target_mean


@register_model("seq_cnn")
def seq_cnn(channels: int, num_classes: int, mean: list[float], std: list[float], width: int = 64) -> SeqCNN:
    return SeqCNN(channels, num_classes, mean, std, width)


@register_model("seq_lstm")
def seq_lstm(channels: int, num_classes: int, mean: list[float], std: list[float], hidden: int = 64,
             stride: int = 1) -> SeqRNN:
    return SeqRNN(channels, num_classes, mean, std, hidden, stride, cell="lstm")


@register_model("seq_gru")
def seq_gru(channels: int, num_classes: int, mean: list[float], std: list[float], hidden: int = 64,
            stride: int = 1) -> SeqRNN:
    return SeqRNN(channels, num_classes, mean, std, hidden, stride, cell="gru")


@register_model("signal_ae")
def signal_ae(channels: int, window: int, mean: list[float], std: list[float], width: int = 32,
              code: int = 8) -> SignalAE:
    return SignalAE(channels, window, mean, std, width, code)


@register_model("quality_mlp")
def quality_mlp(channels: int, mean: list[float], std: list[float], outputs: int = 1, target_mean: float = 0.0,
                target_std: float = 1.0, hidden: int = 64, classes: bool = False) -> QualityMLP:
    return QualityMLP(channels, mean, std, outputs, target_mean, target_std, hidden, classes)
