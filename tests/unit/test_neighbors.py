"""The pool neighbors' smoothing of the scores (scoring/neighbors.py, pure numpy)."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from scoring import REFERENCE, FewShotModel, ScoringError, check_model_settings, l2_normalize  # noqa: E402
from scoring import neighbors  # noqa: E402
from scoring.neighbors import NeighborTerm  # noqa: E402
from test_concept_prior import ap, digits_pixels, split, union_concept  # noqa: E402


def _pool(n=500, d=16, seed=0):
    rng = np.random.default_rng(seed)
    X = l2_normalize(rng.normal(size=(n, d)).astype(np.float32))
    return X, (X @ l2_normalize(rng.normal(size=(1, d)))[0]).astype(np.float32)


def test_only_the_top_is_reordered_and_stays_on_top():
    X, s = _pool()
    term = NeighborTerm(X, s, share=0.3)
    out = term.apply(X, s)
    z = (s - term.center) / term.scale
    top = z >= term.cut
    assert 0.28 <= top.mean() <= 0.32 and len(term.C) == top.sum()
    np.testing.assert_array_equal(out[~top], s[~top])  # below the cut: unchanged
    assert out[top].min() >= out[~top].max()  # above it: still above every one below
    assert not np.array_equal(np.argsort(out[top]), np.argsort(s[top]))  # reordered among themselves


def test_a_score_is_its_own_and_its_neighbors_softmax_mean_without_itself():
    X, s = _pool(seed=1)
    term = NeighborTerm(X, s, share=0.2, weight=0.4)
    out = term.apply(X, s)
    z = (s - term.center) / term.scale
    i = int(np.argmax(s))  # a pool row, one of the rows its neighbors come from
    sims = term.C @ X[i]
    others = sims < neighbors.SELF_COSINE
    assert (~others).sum() == 1  # itself, left out
    a = np.exp(term.beta * (sims[others] - sims[others].max()))
    want = 0.6 * z[i] + 0.4 * (a @ term.zc[others]) / a.sum()
    assert out[i] == pytest.approx(term.center + term.scale * want, rel=1e-5)


def test_scores_do_not_depend_on_the_block_they_are_scored_in(monkeypatch):
    X, s = _pool(seed=2)
    term = NeighborTerm(X, s, share=0.5)
    whole = term.apply(X, s)
    monkeypatch.setattr(neighbors, "CHUNK", 7)
    # (float32 similarities: a block's matrix product may sum in another order, ~1e-7 relative
    # per term; numpy 2.4's OpenBLAS differed by 1.1e-6 at one row of 500)
    np.testing.assert_allclose(term.apply(X, s), whole, rtol=1e-5)
    parts = np.concatenate([term.apply(X[i : i + 33], s[i : i + 33]) for i in range(0, len(s), 33)])
    np.testing.assert_allclose(parts, whole, rtol=1e-5)


def test_pool_rows_are_capped_and_a_row_with_only_itself_keeps_its_score(monkeypatch):
    X, s = _pool(n=300, seed=3)
    monkeypatch.setattr(neighbors, "MAX_ROWS", 10)
    term = NeighborTerm(X, s, share=0.5)
    assert len(term.C) == 10
    one = NeighborTerm(X[:1], s[:1], share=0.5)  # every neighbor is the row itself
    assert one.apply(X[:1], s[:1])[0] == pytest.approx(s[0])


def test_the_share_follows_the_estimated_prior():
    assert neighbors.top_share(0.01) == neighbors.MIN_SHARE
    assert neighbors.top_share(0.1) == pytest.approx(0.2)
    assert neighbors.top_share(0.6) == neighbors.MAX_SHARE
    assert neighbors.top_share(None) == neighbors.DEFAULT_SHARE


def test_the_defaults_smooth_and_the_calibration_sees_the_same_scores():
    X, y = union_concept(0.05, n=3000, members=1, seed=4)
    pos, neg, rest = split(y, 10, 0)
    m = FewShotModel().fit(X[pos], X[neg], X[rest])
    d = m.describe()
    assert d["neighbor_weight"] == neighbors.WEIGHT
    assert d["neighbor_share"] == pytest.approx(neighbors.top_share(m.probe_prior), abs=1e-3)
    # the labels' leave-one-out scores (what the calibration is fitted on) are smoothed as the pool's
    term, m._neighbors = m._neighbors, None
    lp, ln, ip, in_ = m._loo_scores()
    m._neighbors = term
    lp2, ln2, _, _ = m._loo_scores()
    np.testing.assert_allclose(lp2, term.apply(m._pos[ip], lp), rtol=1e-6)
    np.testing.assert_allclose(ln2, term.apply(m._neg[in_], ln), rtol=1e-6)
    assert not np.allclose(lp2, lp)


def test_settings_off_explicit_and_invalid():
    X, y = union_concept(0.05, n=2000, members=1, seed=5)
    pos, neg, rest = split(y, 10, 0)
    assert FewShotModel(neighbor_weight=0).fit(X[pos], X[neg], X[rest]).describe()["neighbor_weight"] == 0.0
    # explicit scorer settings (no rare/common decision): off unless asked for
    explicit = dict(whiten=False, background_weight=0.0)
    assert FewShotModel(**explicit).fit(X[pos], X[neg], X[rest]).describe()["neighbor_weight"] == 0.0
    d = FewShotModel(neighbor_weight=0.3, **explicit).fit(X[pos], X[neg], X[rest]).describe()
    assert d["neighbor_weight"] == 0.3 and d["neighbor_share"] == neighbors.DEFAULT_SHARE
    assert FewShotModel(neighbor_weight=0.3, **explicit).fit(X[pos], X[neg]).describe()["neighbor_weight"] == 0.0
    assert REFERENCE["neighbor_weight"] == 0.0
    assert check_model_settings(neighbor_weight=" Auto ")["neighbor_weight"] == "auto"
    for bad in (-0.1, 1.5, "x", True, float("nan")):
        with pytest.raises(ScoringError, match="neighbor_weight"):
            check_model_settings(neighbor_weight=bad)


def test_smoothing_ranks_a_rare_real_concept_better():
    """scikit-learn's digits (real 8x8 images), one digit subsampled to 5% of
    the pool, 10 + 10 random labels: the defaults against the same model
    without the smoothing, over every digit."""
    X0, digit = digits_pixels()
    gains = []
    for c in range(10):
        rng = np.random.default_rng(c)
        idx = np.r_[np.flatnonzero(digit != c), rng.choice(np.flatnonzero(digit == c), 85, replace=False)]
        X, y = X0[idx], digit[idx] == c
        pos, neg, rest = split(y, 10, c)
        aps = []
        for w in ("auto", 0.0):
            m = FewShotModel(neighbor_weight=w)
            raw, _ = m.fit_score(X[pos], X[neg], X[rest])
            aps.append(ap(raw, y[rest]))
        gains.append(aps[0] - aps[1])
    assert np.mean(gains) > 0.01 and sum(g > 0 for g in gains) >= 7, np.round(gains, 3)


def test_not_while_positive_labels_outnumber_negative_ones():
    """Mostly positive labels (suggestions that come back positive) are a
    common concept taken for rare: no smoothing then, as no pool rows in the
    kernel term."""
    X, y = union_concept(0.05, n=3000, members=1, seed=6)
    for k_neg, want in ((10, neighbors.WEIGHT), (9, 0.0)):
        pos, neg, rest = split(y, 10, 0, k_neg=k_neg)
        m = FewShotModel().fit(X[pos], X[neg], X[rest])
        assert m.choice == "rare" and m.describe()["neighbor_weight"] == want, k_neg


def test_the_calibrations_quantile_prior_is_taken_before_the_smoothing():
    """After the smoothing the shape-free prior ran low at 10% concepts
    (0.65-0.83x the truth); the rare map takes the one of the unsmoothed scores."""
    from scoring.maps import quantile_prior

    X0, digit = digits_pixels()
    y = digit == 3
    pos, neg, rest = split(y, 10, 1)
    m0 = FewShotModel(neighbor_weight=0.0)
    raw0, _ = m0.fit_score(X0[pos], X0[neg], X0[rest])
    m = FewShotModel()
    raw, _ = m.fit_score(X0[pos], X0[neg], X0[rest])
    assert m.choice == "rare" and m.describe()["neighbor_weight"] > 0
    assert m._quantile == pytest.approx(quantile_prior(raw0, m0._loo[1]))
    assert m.calibration.prior_method == "quantile" and m.calibration.prior == pytest.approx(m._quantile)
    # (the smoothed scores' own: 0.083 here, 0.113 before, truth 0.097)
    assert quantile_prior(raw, m._loo[1]) < 0.8 * m._quantile


def test_the_score_is_continuous_at_the_cut():
    """The weight grows from 0 at the cut (a score within rounding of it,
    which differs in its last bits from one block of rows to another, then
    moves by as little instead of jumping by ``weight`` times its gap to the
    neighbors)."""
    X, s = _pool(seed=7)
    term = NeighborTerm(X, s, share=0.1)
    x = X[int(np.argmax(s))][None]
    m = {}
    for dz in (0.0, 1e-7, neighbors.RAMP / 2, 2 * neighbors.RAMP):
        at = term.center + term.scale * (term.cut + dz)
        m[dz] = (term.apply(x, np.array([at]))[0] - term.center) / term.scale - (term.cut + dz)
    assert abs(m[0.0]) < 1e-5 and abs(m[1e-7]) < 1e-4
    assert m[neighbors.RAMP / 2] == pytest.approx(0.5 * (m[2 * neighbors.RAMP]), rel=0.05, abs=1e-4)
    assert abs(m[2 * neighbors.RAMP]) > 0.05  # (full weight: the neighbors' pull)


def test_without_calibration_the_prior_is_not_computed():
    X, y = union_concept(0.05, n=2000, members=1, seed=8)
    pos, neg, rest = split(y, 10, 0)
    m = FewShotModel(calibrate=False, neighbor_weight=0.5).fit(X[pos], X[neg], X[rest])
    assert m.describe()["neighbor_weight"] == 0.5 and m._quantile is None
