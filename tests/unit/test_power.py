"""The power transform of nonnegative embeddings (scoring/power.py): applied
by "auto" only when every vector the fit sees is >= 0, the same for the fit
and for scoring (its ranking gain is measured by bench/bench_quality.py on
Lite0 features; on raw pixel ink it lost AP, on random ReLU features it was
neutral: a property of learned CNN features, not a test's)."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from scoring import FewShotModel, ScoringError, check_model_settings, l2_normalize  # noqa: E402
from scoring.power import AUTO_POWER, choose, transform  # noqa: E402


def ink():
    """scikit-learn's 8x8 digits as raw ink (nonnegative, like pooled ReLU features)."""
    from sklearn.datasets import load_digits

    X, digit = load_digits(return_X_y=True)
    return l2_normalize(X.astype(np.float32)), digit


def test_auto_transforms_only_when_every_vector_is_nonnegative():
    X, _ = ink()
    assert choose("auto", X[:10], X[10:20], X[20:]) == AUTO_POWER
    signed = X.copy()
    signed[25, 3] = -1e-3  # one negative value in the pool sample
    assert choose("auto", X[:10], X[10:20], signed[20:]) == 1.0
    assert choose(0.3, signed) == 0.3 and choose(1.0, X) == 1.0
    m = FewShotModel().fit(X[:10], X[10:20], X[20:])  # the default is auto
    assert m.describe()["power"] == AUTO_POWER == 0.75
    s = FewShotModel().fit(signed[:10], signed[10:20], signed[20:])
    assert s.describe()["power"] == 1.0
    ref = FewShotModel(power=1.0).fit(signed[:10], signed[10:20], signed[20:])
    assert np.array_equal(s.raw_scores(signed[20:]), ref.raw_scores(signed[20:]))


def test_the_fit_and_the_scores_see_the_same_transformed_vectors():
    """power auto on X is the untransformed model on transform(X, 0.75): labels,
    the pool sample, the rare/common probes (and a 90% concept's negatives
    model), leave-one-out scores, kernel term, calibration and scored rows."""
    X, digit = ink()
    T = transform(X, AUTO_POWER)
    assert np.allclose(np.linalg.norm(T, axis=1), 1.0, atol=1e-5)
    assert np.allclose(T, l2_normalize(X ** 0.75), atol=1e-6)
    nines = [0, 1, 2, 4, 5, 6, 7, 8, 9]
    seen = set()
    for cls, k in (([3], 10), ([0, 6, 8], 5), ([0, 2, 4, 6, 8], 20), (nines, 12)):
        y = np.isin(digit, cls)
        rng = np.random.default_rng(k)
        pos = rng.choice(np.flatnonzero(y), k, replace=False)
        neg = rng.choice(np.flatnonzero(~y), k, replace=False)
        rest = np.setdiff1d(np.arange(len(y)), np.r_[pos, neg])
        a, b = FewShotModel(power="auto"), FewShotModel(power=1.0)
        ra, pa = a.fit_score(X[pos], X[neg], X[rest])
        rb, pb = b.fit_score(T[pos], T[neg], T[rest])
        assert a.describe()["power"] == AUTO_POWER and b.describe()["power"] == 1.0
        assert (a.choice, a.probe_prior, a._fixed_prior) == (b.choice, b.probe_prior, b._fixed_prior), cls
        assert np.allclose(ra, rb, atol=1e-5) and np.allclose(pa, pb, atol=1e-6)
        assert [list(s) for s in a.suspects()] == [list(s) for s in b.suspects()]
        seen.add(a.choice if a._fixed_prior is None else a._fixed_prior[1])
    assert seen == {"rare", "boundary", "negatives"}, seen  # every path was compared


@pytest.mark.parametrize("bad", ["strong", 0, -0.5, 1.5, float("nan"), "inf", True, 1e-300, 0.01])
def test_a_bad_power_is_refused(bad):
    with pytest.raises(ScoringError, match="power must be auto or a number from 0.05 to 1"):
        check_model_settings(power=bad)
    assert check_model_settings(power="0.25")["power"] == 0.25
    assert check_model_settings(power=" AUTO ")["power"] == "auto"
    assert check_model_settings(power=" ")["power"] == "auto"  # an emptied field: the default


def test_a_single_vector_is_refused_with_the_scorers_error():
    X, _ = ink()
    m = FewShotModel(power=0.5).fit(X[:10], X[10:20], X[20:])
    with pytest.raises(ScoringError, match="Expected rows of embeddings"):
        m.raw_scores(X[30])


@pytest.mark.parametrize("p", [0.25, 0.5, 0.75, 0.6])
def test_the_square_root_shortcuts_equal_np_power(p):
    X = np.random.default_rng(3).standard_normal((50, 40)).astype(np.float32)
    X[X < 0.3] = 0
    want = np.power(np.abs(X), p)
    want = np.copysign(want, X) / np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(transform(X, p), want, rtol=2e-6, atol=1e-7)


def test_a_fitted_background_is_refused_once_the_vectors_are_transformed():
    """A Background fitted on the untransformed pool would be applied to
    transformed vectors (silently different scores): refused, with what to do."""
    from scoring.background import Background

    X, _ = ink()
    bg = Background.fit(X[20:], whiten=True)
    with pytest.raises(ScoringError, match="pass a function"):
        FewShotModel(whiten=True, background_weight=3).fit(X[:10], X[10:20], X[20:], background=bg)
    m = FewShotModel(whiten=True, background_weight=3, power=1).fit(X[:10], X[10:20], X[20:], background=bg)
    assert m.describe()["power"] == 1.0
    ok = FewShotModel(whiten=True, background_weight=3).fit(
        X[:10], X[10:20], X[20:], background=lambda w, p: Background.fit(transform(X[20:], p), whiten=w))
    assert ok.describe()["power"] == AUTO_POWER
