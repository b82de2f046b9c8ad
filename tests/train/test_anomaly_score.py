"""The anomaly score's pooling: a thin crack counts with its length, one hot pixel rejects nothing."""

import pytest
import torch

from train.models.anomaly_net import SurfaceNet, line_kernels


def _score(kind: str, half_res_prob: torch.Tensor) -> float:
    net = SurfaceNet([0.5] * 3, [0.2] * 3, width=8, score=kind).eval()
    logits = torch.logit(half_res_prob.clamp(1e-6, 1 - 1e-6))[None, None]
    net.logits = lambda x: logits  # the map is given; only the pooling into a score is under test
    return float(net(torch.zeros(1, 2 * logits.shape[2], 2 * logits.shape[3], 3, dtype=torch.uint8))[0][0])


def _map_with(draw) -> torch.Tensor:
    prob = torch.full((128, 128), 0.02)
    draw(prob)
    return prob


def test_a_thin_diagonal_crack_scores_near_its_own_value_with_the_line_score():
    def crack(p):
        for i in range(20, 100):
            p[i, i] = p[i, i + 1] = 0.9  # 2 px wide at half resolution, diagonal

    prob = _map_with(crack)
    assert _score("line", prob) > 0.4  # ~ its value over a quarter-res cell (half of it is crack)
    assert _score("box", prob) < 0.25  # a 9x9 box holds ~18 crack pixels of 81
    assert _score("line", prob) > 2 * _score("box", prob)


def test_one_hot_pixel_does_not_dominate_either_score():
    prob = _map_with(lambda p: p.__setitem__((64, 64), 1.0))
    assert _score("line", prob) < 0.1 and _score("box", prob) < 0.1


def test_line_kernels_are_means_along_eight_directions():
    k = line_kernels(11)
    assert k.shape == (8, 1, 11, 11)
    assert torch.allclose(k.sum(dim=(1, 2, 3)), torch.ones(8))
    assert (k[0, 0, 5] > 0).all() and (k[4, 0, :, 5] > 0).all()  # horizontal, vertical


def test_unknown_score_kind_is_refused():
    with pytest.raises(ValueError):
        SurfaceNet([0.5] * 3, [0.2] * 3, score="median")
