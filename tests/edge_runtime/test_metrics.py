"""The evaluation figures against scikit-learn on random data, and the corners an audit found wrong (2026-11-28):
R² of constant targets, F1 without defects, NaN scores and PRO with tied normal pixels."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, mean_absolute_error, r2_score, roc_auc_score

from edge_runtime.anomaly_metrics import auroc, kind_escapes, line_rates, pro_score
from edge_runtime.evaluate_sensor import format_sensor_table
from edge_runtime.metrics import classification_metrics, format_table, regression_metrics, wilson


def test_auroc_rates_and_regression_match_sklearn_on_random_data():
    rng = np.random.default_rng(0)
    for _ in range(50):
        truth = rng.random(60) < 0.3
        scores = np.round(rng.random(60), 1)  # heavy ties
        assert auroc(truth, scores) == pytest.approx(roc_auc_score(truth, scores), abs=1e-12)
        rates = line_rates(truth, scores, 0.5)
        assert rates["f1"] == pytest.approx(f1_score(truth, scores >= 0.5, zero_division=0.0))
        true, pred = rng.normal(size=30), rng.normal(size=30)
        reg = regression_metrics(true, pred)
        assert reg["r2"] == pytest.approx(r2_score(true, pred)) and reg["mae"] == pytest.approx(
            mean_absolute_error(true, pred))


def test_rates_carry_wilson_intervals_that_match_scipy_and_tables_print_them():
    from scipy.stats import binomtest

    for hits, n in ((0, 30), (30, 30), (8, 10), (1, 3), (57, 120)):
        ci = binomtest(hits, n).proportion_ci(method="wilson")
        assert wilson(hits, n) == pytest.approx([ci.low, ci.high], abs=1e-6)
    assert wilson(0, 0) is None
    m = classification_metrics(["good"] * 30 + ["crack"] * 10, ["good"] * 30 + ["crack"] * 9 + ["good"],
                               ["good", "crack"])
    assert m["interval_95"]["escape_rate"] == wilson(1, 10) and m["interval_95"]["false_reject_rate"] == wilson(0, 30)
    assert m["interval_95"]["accuracy"] == wilson(39, 40) and m["per_class"]["crack"]["interval_95"] == wilson(9, 10)
    assert wilson(0, 30)[1] > 0.1  # no false reject in 30 good parts still allows 11 % on the line
    table = format_table(m)
    assert "false reject rate 0.0000 [0.000-0.114]" in table and "crack     0.9000 [0.596-0.982]" in table
    rates = line_rates([0] * 20 + [1] * 5, [0.1] * 19 + [0.9] + [0.9] * 5, 0.5)
    assert rates["interval_95"] == {"false_reject_rate": wilson(1, 20), "escape_rate": wilson(0, 5)}


def test_undefined_figures_are_none_and_tables_say_so():
    assert regression_metrics([0.1] * 3, [0.11] * 3)["r2"] is None  # had been -5e29: rounding left a spread of 1e-33
    assert line_rates([0, 0, 0], [0.1, 0.9, 0.2], 0.5)["f1"] is None  # no defects: nothing to measure, not 0
    table = format_sensor_table({"mae": 0.01, "rmse": 0.01, "r2": None, "count": 3,
                                 "spec_call": {"accuracy": 1.0, "false_reject_rate": 0.0, "escape_rate": None}})
    assert "R² - on 3 parts" in table and "escape -" in table  # every part in spec: this had been a TypeError


def test_a_nan_score_counts_as_rejected_everywhere():
    rates = line_rates([0, 1], [np.nan, np.nan], 0.5)
    assert rates["false_reject_rate"] == 1.0 and rates["escape_rate"] == 0.0  # as the line flags it invalid
    assert auroc([0, 1, 1], [0.2, np.nan, np.nan]) == 1.0 and auroc([0, 1], [np.nan, np.nan]) == 0.5  # NaNs tie
    # -inf too: the rule rejects every non-finite score (no_verdict), so no figure may count it as passed
    assert line_rates([1, 0], [-np.inf, 0.1], 0.5)["escape_rate"] == 0.0 and auroc([1, 0], [-np.inf, 0.3]) == 1.0
    assert kind_escapes(np.array([0.1, 0.9, -np.inf]), 0.5)["escape_rate"] == 1 / 3


def test_a_nan_output_is_decided_as_no_verdict_and_rejected_by_every_task():
    from edge_runtime.decision import NO_VERDICT, decide
    from edge_runtime.metadata import ModelInfo

    probs = np.array([[0.9, 0.1], [np.nan, 0.1], [0.9, np.inf]])  # a NaN hiding in a defect column counts too
    classify = ModelInfo(task="classify", labels=["good", "bad"], threshold=0.5, precision="fp32")
    assert [(d.verdict, d.label) for d in decide(probs, classify)] == [("good", "good")] + [("defect", NO_VERDICT)] * 2
    appliances = ModelInfo(task="sensor_classify", labels=["fan", "lamp"], good_label="", threshold=0.5,
                           precision="fp32")
    assert [d.label for d in decide(probs, appliances)] == ["fan", NO_VERDICT, NO_VERDICT]
    anomaly = ModelInfo(task="anomaly", labels=["good", "anomaly"], threshold=0.5, precision="fp32")
    assert [(d.verdict, d.label) for d in decide(np.array([0.1, np.nan, np.inf, 0.7]), anomaly)] == [
        ("good", "good"), ("defect", NO_VERDICT), ("defect", NO_VERDICT), ("defect", "anomaly")]


def test_pro_of_a_perfect_map_is_one_even_when_normal_pixels_tie_at_the_top():
    masks = np.zeros((2, 16, 16), bool)
    masks[0, 2:6, 2:6] = True
    maps = np.zeros((2, 16, 16))
    maps[0][masks[0]] = 1.0
    maps[1, 0, :10] = 0.5  # ten normal pixels tied just under the defect
    assert pro_score(maps, masks) == pytest.approx(1.0)  # was 0.913: the curve lacked its FPR-0 point


def _pro_at_every_value(maps: np.ndarray, masks: np.ndarray, max_fpr: float = 0.3) -> float:
    """PRO the slow way (MVTec's definition): FPR and mean region overlap at every distinct map value."""
    import cv2

    regions = []
    for i, mask in enumerate(masks):
        count, labelled = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        regions += [(i, labelled == r) for r in range(1, count)]
    fprs, pros = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        fprs.append((maps[~masks] >= t).mean())
        pros.append(np.mean([(maps[i][region] >= t).mean() for i, region in regions]))
    fprs, pros = np.array(fprs), np.array(pros)
    keep = fprs < max_fpr
    fprs, pros = np.r_[fprs[keep], max_fpr], np.r_[pros[keep], np.interp(max_fpr, fprs, pros)]
    return float(np.sum((pros[1:] + pros[:-1]) / 2 * np.diff(fprs)) / max_fpr)


def test_pro_is_exact_at_every_map_value_with_ties_and_many_regions():
    rng = np.random.default_rng(1)
    for quantized in (False, True):
        masks = np.zeros((4, 24, 24), bool)
        for i in range(3):
            y, x = rng.integers(0, 18, 2)
            masks[i, y:y + rng.integers(2, 6), x:x + rng.integers(2, 6)] = True
        masks[0, 20:, 20:] = True  # a second region in one image
        maps = rng.random(masks.shape) + masks * 0.4
        maps = np.round(maps * 8) / 8 if quantized else maps  # ties, as a quantized heat map has
        assert pro_score(maps, masks) == pytest.approx(_pro_at_every_value(maps, masks), abs=1e-12)
