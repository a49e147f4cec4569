"""Unit tests of scoring/ (pure numpy) against hand-computed values."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from scoring import RocchioScorer, ScoringError, check_settings, l2_normalize, sigmoid, valid_rows  # noqa: E402


def sig(z):
    return 1.0 / (1.0 + math.exp(-z))


def test_importable_without_fiftyone():
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = "import sys, scoring; assert 'fiftyone' not in sys.modules; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=repo, check=True)


def test_distance_mode_hand_computed():
    # positives (unnormalized) normalize to e1 and e1; negatives to e2
    pos = np.array([[2.0, 0.0], [5.0, 0.0]])
    neg = np.array([[0.0, 3.0]])
    s = RocchioScorer(mode="distance").fit(pos, neg)
    np.testing.assert_allclose(s.pos_centroid, [1, 0], atol=1e-7)
    np.testing.assert_allclose(s.neg_centroid, [0, 1], atol=1e-7)
    x = np.array([[1.0, 1.0]])  # -> (0.7071, 0.7071), equidistant
    assert s.predict_proba(x)[0] == pytest.approx(0.5, abs=1e-6)
    x = np.array([[1.0, 0.0]])  # at p: d_p = 0, d_n = sqrt(2)
    assert s.raw_scores(x)[0] == pytest.approx(math.sqrt(2), abs=1e-6)
    assert s.predict_proba(x)[0] == pytest.approx(sig(math.sqrt(2)), abs=1e-6)


def test_distance_mode_weights_and_temperature():
    pos = np.array([[1.0, 0.0], [0.0, 1.0]])  # centroid (0.5, 0.5)
    neg = np.array([[-1.0, 0.0]])  # centroid (-1, 0)
    s = RocchioScorer(mode="distance", beta=2.0, gamma=0.5, temperature=0.25).fit(pos, neg)
    x = np.array([[0.0, 1.0]])
    dp = math.sqrt(0.5 ** 2 + 0.5 ** 2)  # |(0,1) - (0.5,0.5)|
    dn = math.sqrt(1 + 1)  # |(0,1) - (-1,0)|
    raw = 0.5 * dn - 2.0 * dp
    assert s.raw_scores(x)[0] == pytest.approx(raw, abs=1e-6)
    assert s.predict_proba(x)[0] == pytest.approx(sig(raw / 0.25), abs=1e-6)


def test_query_mode_hand_computed():
    pos = np.array([[3.0, 4.0]])  # -> (0.6, 0.8)
    neg = np.array([[1.0, 0.0], [0.0, -2.0]])  # -> mean (0.5, -0.5)
    s = RocchioScorer(mode="query", beta=1.0, gamma=0.5, temperature=2.0).fit(pos, neg)
    q = np.array([0.6 - 0.25, 0.8 + 0.25])
    x = np.array([[0.0, 10.0]])  # -> (0, 1)
    assert s.raw_scores(x)[0] == pytest.approx(q[1], abs=1e-6)
    assert s.predict_proba(x)[0] == pytest.approx(sig(q[1] / 2.0), abs=1e-6)


def test_query_and_squared_distance_rank_alike_with_beta_eq_gamma():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 16))
    s = RocchioScorer(mode="query").fit(X[:5], X[5:10])
    Xn = l2_normalize(X)
    p, n = s.pos_centroid, s.neg_centroid
    d2 = ((Xn - n) ** 2).sum(1) - ((Xn - p) ** 2).sum(1)
    assert np.array_equal(np.argsort(d2), np.argsort(s.raw_scores(X)))


def test_probabilities_in_unit_interval_and_monotone_in_score():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 8))
    for mode in ("distance", "query"):
        s = RocchioScorer(mode=mode, temperature=0.01).fit(X[:3], X[3:6])
        p = s.predict_proba(X)
        assert np.all((p >= 0) & (p <= 1)) and np.isfinite(p).all()
        order = np.argsort(s.raw_scores(X))
        assert np.all(np.diff(p[order]) >= 0)


def test_invalid_rows_and_fit_errors():
    X = np.array([[1.0, 0.0], [0.0, 0.0], [np.nan, 1.0], [np.inf, 0.0]])
    assert valid_rows(X).tolist() == [True, False, False, False]
    with pytest.raises(ScoringError, match="all-zero"):
        RocchioScorer().fit(X[:2], np.array([[0.0, 1.0]]))
    with pytest.raises(ScoringError, match="negative"):
        RocchioScorer().fit(np.array([[1.0, 0.0]]), np.zeros((0, 2)))
    with pytest.raises(ScoringError, match="positive"):
        RocchioScorer().fit(np.zeros((0, 2)), np.array([[1.0, 0.0]]))
    with pytest.raises(ScoringError, match="dimension"):
        RocchioScorer().fit(np.ones((1, 2)), np.ones((1, 3)))
    with pytest.raises(ScoringError, match="not fitted"):
        RocchioScorer().predict_proba(np.ones((1, 2)))


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"mode": "cosine"}, "Unknown scoring mode"),
        ({"temperature": 0}, "temperature"),
        ({"beta": -1}, ">= 0"),
        ({"beta": 0, "gamma": 0}, "both be 0"),
        ({"gamma": "x"}, "numbers"),
        ({"beta": float("nan")}, "finite"),
    ],
)
def test_settings_validation(kw, msg):
    with pytest.raises(ScoringError, match=msg):
        check_settings(**kw)


def test_sigmoid_is_stable_for_large_inputs():
    out = sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_allclose(out, [0.0, 0.5, 1.0])
