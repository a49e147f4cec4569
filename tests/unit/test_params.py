"""operators.params and the quality metrics: pure functions."""

import numpy as np
import pytest

from few_shot_learning.operators import params as P
from few_shot_learning.operators.errors import FewShotError
from few_shot_learning.operators.readout import quality_metrics


@pytest.mark.parametrize("value,out", [(None, 0), ("", 0), (0, 0), (5, 5), (5.0, 5), ("12", 12)])
def test_whole_numbers(value, out):
    assert P.whole_number(value, "n", 0, minimum=0) == out


@pytest.mark.parametrize("value", [2.5, "ten", True, [1], "1.5"])
def test_not_whole_numbers(value):
    with pytest.raises(FewShotError, match="must be an integer"):
        P.whole_number(value, "n", 0)


def test_start_params_defaults_and_errors():
    p = P.start_params({"model": " m ", "subset_size": 3.0}, lambda m: m + "_emb")
    assert p == {"model": "m", "embedding_field": "m_emb", "prediction_field": "fewshot_prediction",
                 "subset_size": 3, "randomize_subset": False}
    with pytest.raises(FewShotError, match="subset size must be >= 0"):
        P.start_params({"subset_size": -1})
    with pytest.raises(FewShotError, match="integer"):
        P.start_params({"subset_size": 2.5})


def test_field_names():
    assert P.field_name_error("emb", "x") is None
    for bad in ("", "_x", "a.b", "$a", None, "bad\0name", "tab\tname"):
        assert P.field_name_error(bad, "x")


def test_scorer_and_suggest_params():
    s = P.scorer_params({"mode": "query"}, {"beta": 2.0})
    assert s["mode"] == "query" and s["beta"] == 2.0
    with pytest.raises(FewShotError, match="temperature"):
        P.scorer_params({"temperature": 0})
    assert P.suggest_params({}) == {"num_samples": 20, "top_fraction": P.DEFAULT_TOP_FRACTION,
                                    "random_fraction": P.DEFAULT_RANDOM_FRACTION}
    with pytest.raises(FewShotError):
        P.suggest_params({"top_fraction": 2})
    assert P.suggest_params({"random_fraction": 1.0})["top_fraction"] == 0.0  # top left at its default
    with pytest.raises(FewShotError, match="more than 1"):
        P.suggest_params({"random_fraction": 1.0, "top_fraction": 0.1})
    with pytest.raises(FewShotError):
        P.suggest_params({"num_samples": 0})
    assert P.precision_k({}) == 100
    with pytest.raises(FewShotError):
        P.precision_k({"precision_k": 0})


def test_quality_metrics_hand_computed():
    raw = np.array([0.9, 0.8, 0.7, 0.1])
    truth = np.array([True, False, True, False])
    q = quality_metrics(raw, np.array([0.9, 0.6, 0.4, 0.1]), truth, 2)
    assert q["average_precision"] == round((1 / 1 + 2 / 3) / 2, 4)
    assert q["precision_at_k"] == 0.5 and q["precision"] == 0.5 and q["recall"] == 0.5
    assert q["f1"] == 0.5 and q["num_true_positive"] == 2


def test_quality_metrics_say_na_not_zero_without_positives():
    q = quality_metrics(np.array([0.9, 0.1]), np.array([0.9, 0.1]), np.array([False, False]), 5)
    assert q["average_precision"] is None and q["recall"] is None and q["f1"] is None
    assert q["precision"] == 0.0 and q["num_true_positive"] == 0
    q = quality_metrics(np.array([0.2]), np.array([0.2]), np.array([True]), 5)
    assert q["precision"] is None and q["recall"] == 0.0 and q["f1"] == 0.0
