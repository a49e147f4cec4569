"""Unit tests of the pool background, calibration and suggestions (pure numpy)."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from scoring import (  # noqa: E402
    REFERENCE, FewShotModel, RocchioScorer, ScoringError, check_model_settings, l2_normalize, sigmoid, suggest,
)
from scoring import calibration  # noqa: E402
from scoring.background import Background  # noqa: E402
from scoring.loo import loo_scores  # noqa: E402


def clusters(n=3000, d=24, rate=0.1, seed=0):
    """Unit vectors: a positive cluster (``rate``) among 4 negative clusters."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(5, d))
    y = rng.random(n) < rate
    c = np.where(y, 0, rng.integers(1, 5, n))
    X = centers[c] + 0.9 * rng.normal(size=(n, d))
    return l2_normalize(X), y


def test_whitened_distances_equal_the_explicit_metric():
    X, _ = clusters(800, d=16)
    bg = Background.fit(X, shrinkage=2.0, rank=16)
    S = np.cov(X.T.astype(np.float64))
    lam = 2.0 * np.trace(S) / 16
    A = lam * np.linalg.inv(S + lam * np.eye(16))
    c = X[:5].mean(0)
    proj, cproj = bg.project(X), c @ bg.vecs
    got = bg.sq_dists(X @ c, proj, c, cproj)
    diff = X - c
    expect = np.einsum("ij,jk,ik->i", diff, A, diff)
    np.testing.assert_allclose(got, expect, rtol=1e-3, atol=1e-5)
    q = X[7]
    np.testing.assert_allclose(bg.inner(X @ q, proj, q @ bg.vecs), X @ A @ q, rtol=1e-3, atol=1e-5)


def test_a_reshrunk_background_equals_a_fit_at_that_shrinkage():
    X, _ = clusters(800, d=16)
    bg = Background.fit(X, shrinkage=100.0, rank=16)
    for s in (2.0, 15.0, 100.0):
        np.testing.assert_allclose(bg.reshrunk(s).coefs, Background.fit(X, shrinkage=s, rank=16).coefs, rtol=1e-6)
    flat = Background.fit(X, whiten=False)
    assert flat.reshrunk(2.0) is flat


def test_background_shrinks_the_negative_prototype_toward_the_pool_mean():
    X, y = clusters()
    bg = Background.fit(X, whiten=False)
    s = RocchioScorer().fit(X[y][:2], X[~y][:1], background=bg, background_weight=3.0)
    np.testing.assert_allclose(s.neg_centroid, (X[~y][0] + 3 * X.mean(0)) / 4, atol=1e-6)


def test_reference_settings_are_the_seed_scorer():
    X, y = clusters()
    pos, neg = X[y][:3], X[~y][:3]
    m = FewShotModel(calibrate=False, whiten=False, background_weight=0, temperature=0.5)
    raw, p = m.fit_score(pos, neg, X)
    seed = RocchioScorer(temperature=0.5).fit(pos, neg)
    np.testing.assert_allclose(raw, seed.raw_scores(X), atol=1e-6)
    np.testing.assert_allclose(p, seed.predict_proba(X), atol=1e-6)


def test_leave_one_out_scores_refit_without_the_item():
    X, y = clusters()
    pos, neg = X[y][:3], X[~y][:4]
    bg = Background.fit(X)
    s = RocchioScorer().fit(pos, neg, background=bg, background_weight=3.0)
    lp, ln = loo_scores(s, pos, neg)
    for i in range(3):
        ref = RocchioScorer().fit(np.delete(pos, i, 0), neg, background=bg, background_weight=3.0)
        assert lp[i] == pytest.approx(ref.raw_scores(pos[i : i + 1], normalized=True)[0], abs=1e-5)
    for i in range(4):
        ref = RocchioScorer().fit(pos, np.delete(neg, i, 0), background=bg, background_weight=3.0)
        assert ln[i] == pytest.approx(ref.raw_scores(neg[i : i + 1], normalized=True)[0], abs=1e-5)
    # the scorer keeps its own prototypes
    np.testing.assert_allclose(s.pos_centroid, pos.mean(0), atol=1e-6)


def test_mixture_estimates_the_pool_rate_and_is_calibrated():
    rng = np.random.default_rng(1)
    n, rate = 20000, 0.1
    y = rng.random(n) < rate
    s = np.where(y, rng.normal(2.5, 0.6, n), rng.normal(0.0, 1.0, n))
    c = calibration.fit(s, rng.normal(2.5, 0.6, 10), rng.normal(0.0, 1.0, 10))
    assert c.method == "mixture"
    assert abs(c.prior - rate) < 0.02
    p = c.predict_proba(s)
    assert _ece(p, y) < 0.03
    order = np.argsort(s)
    assert np.all(np.diff(p[order]) >= -1e-12)  # monotone in the score


def test_small_pool_falls_back_to_platt_and_stays_monotone():
    rng = np.random.default_rng(2)
    s = np.r_[rng.normal(0, 1, 100), rng.normal(3, 0.5, 10)]
    c = calibration.fit(s, rng.normal(3, 0.5, 3), rng.normal(0, 1, 3))
    assert c.method == "platt"
    p = c.predict_proba(np.sort(s))
    assert np.all(np.diff(p) >= 0) and p[0] < 0.5 < p[-1]


def test_default_model_beats_seed_sigmoid_on_clusters():
    X, y = clusters(4000, rate=0.08, seed=3)
    rng = np.random.default_rng(0)
    pos = rng.choice(np.where(y)[0], 10, replace=False)
    neg = rng.choice(np.where(~y)[0], 10, replace=False)
    rest = np.setdiff1d(np.arange(len(y)), np.r_[pos, neg])
    _, p = FewShotModel().fit_score(X[pos], X[neg], X[rest])
    _, p0 = FewShotModel(**REFERENCE).fit_score(X[pos], X[neg], X[rest])
    t = y[rest]
    ratio, ratio0 = (p >= 0.5).sum() / t.sum(), (p0 >= 0.5).sum() / t.sum()
    assert 0.7 < ratio < 1.4 and ratio0 > 2  # the seed sigmoid over-predicts
    assert abs(p.mean() - t.mean()) < 0.03


def test_model_settings_validation():
    assert check_model_settings(calibrate="false")["calibrate"] is False
    assert check_model_settings(background_weight=" Auto ")["background_weight"] == "auto"
    assert check_model_settings(background_weight="1.5")["background_weight"] == 1.5
    assert check_model_settings(whiten=" AUTO")["whiten"] == "auto"
    assert check_model_settings()["shrinkage"] == "auto" and check_model_settings(shrinkage="30")["shrinkage"] == 30.0
    with pytest.raises(ScoringError, match="background_weight"):
        check_model_settings(background_weight=True)
    for kw, msg in (({"whiten": "maybe"}, "whiten"), ({"shrinkage": -1}, "shrinkage"), ({"shrinkage": 0}, "shrinkage"),
                    ({"shrinkage": "strong"}, "shrinkage"),
                    ({"background_weight": float("nan")}, "background_weight"),
                    ({"background_weight": "sometimes"}, "auto or a finite number"),
                    ({"colour": 1}, "Unknown"), ({"mode": "cosine"}, "mode")):
        with pytest.raises(ScoringError, match=msg):
            check_model_settings(**kw)
    with pytest.raises(ScoringError, match="pool"):
        FewShotModel().fit(np.eye(3)[:1], np.eye(3)[1:2], None)


def test_suggest_mixes_top_and_boundary():
    p = np.array([0.9, 0.1, 0.52, 0.99, 0.32, 0.47, 0.7, 0.0])
    idx, n_top, _ = suggest(p, 4, top_fraction=0.5)
    assert n_top == 2 and list(idx) == [3, 0, 2, 5]
    idx, _, _ = suggest(p, 3, top_fraction=0.0)
    assert list(idx) == [2, 5, 4]
    idx, _, _ = suggest(p, 100, top_fraction=1.0)
    assert sorted(idx) == list(range(8)) and len(set(idx)) == 8
    with pytest.raises(ValueError):
        suggest(p, 3, top_fraction=1.5)


def test_suggest_random_share_is_drawn_from_the_rest():
    p = np.linspace(0, 1, 200)
    idx, n_top, n_rand = suggest(p, 20, top_fraction=0.2, random_fraction=0.5, seed=1)
    assert n_top == 4 and n_rand == 10 and len(set(idx)) == 20
    top, boundary, rand = idx[:4], idx[4:10], idx[10:]
    assert sorted(top) == [196, 197, 198, 199]
    assert all(abs(p[i] - 0.5) <= 0.02 for i in boundary)
    assert not set(rand) & set(top) | set(rand) & set(boundary)
    assert np.ptp(p[rand]) > 0.3  # spread over the pool, not one band
    assert list(suggest(p, 20, 0.2, 0.5, seed=1)[0]) == list(idx)  # repeatable per seed
    with pytest.raises(ValueError):
        suggest(p, 3, random_fraction=2)


def test_platt_stays_finite_on_separable_labels():
    """Labels far from every pool sample (the mixture finds no positives and
    Platt takes over): uncapped Newton steps threw the intercept to ~1e9, every
    pool sample got P = 1 and every correct negative was flagged mislabeled."""
    rng = np.random.default_rng(0)
    S = l2_normalize(rng.normal(size=(500, 16)))
    P = l2_normalize(S[:1] + 0.01 * rng.normal(size=(5, 16)))
    N = l2_normalize(S[1:2] + 0.01 * rng.normal(size=(5, 16)))
    m = FewShotModel()
    m.fit(P, N, S[100:])
    raw = m.raw_scores(S[100:])
    m.fit_calibration(raw)
    assert m.calibration.method == "platt" and abs(m.calibration.b) < 50
    p = m.proba(raw)
    assert 0.0 < p.mean() < 0.99 and p.min() < 0.5
    sp, sn = m.suspects()
    assert len(sp) == 0 and len(sn) == 0
    a, b = calibration.platt(np.r_[np.full(5, 40.0), np.full(5, -40.0)], np.r_[np.ones(5), np.zeros(5)])
    assert np.isfinite(a) and abs(b) < 50


def _ece(p, t, bins=10):
    b = np.minimum((p * bins).astype(int), bins - 1)
    return sum((b == i).mean() * abs(p[b == i].mean() - t[b == i].mean()) for i in range(bins) if (b == i).any())


def test_labels_picked_by_score_recalibrate_a_wrong_calibration():
    """A label picked because of its score is a sample of P(positive | score):
    a calibration whose prior is 10x off is pulled back by 40 such labels
    (the boundary and the top of its own ranking; 1.1-2.3x off over five
    seeds, this is the worst)."""
    rng = np.random.default_rng(3)
    t = rng.random(20000) < 0.03
    s = np.where(t, rng.normal(2.5, 0.7, len(t)), rng.normal(0.0, 1.0, len(t)))
    lp, ln = s[t][:5], s[~t][:5]
    cal = calibration.fit(s, lp, ln, prior=0.3)  # a prior 10x too high
    p0 = cal.predict_proba(s)
    assert p0.mean() > 5 * t.mean()
    picked = np.r_[np.argsort(np.abs(p0 - 0.5))[:32], np.argsort(-p0)[:8]]
    assert calibration.recalibrate(cal, s[picked], t[picked].astype(float), s)
    p1 = cal.predict_proba(s)
    assert 1 / 2.5 < p1.mean() / t.mean() < 2.5 and abs(cal.prior - p1.mean()) < 1e-9
    assert _ece(p1, t) < 0.25 * _ece(p0, t)
    assert np.all(np.diff(cal.predict_proba(np.sort(s))) >= -1e-12)  # still monotone
    assert cal.to_dict()["recalibrated"]["num_labels"] == 40 and cal.prior_method == "recalibrated"
    # too few picked labels: nothing changes
    cal2 = calibration.fit(s, lp, ln, prior=0.3)
    assert not calibration.recalibrate(cal2, s[picked[:5]], t[picked[:5]].astype(float), s)
    assert cal2.recal is None and np.allclose(cal2.predict_proba(s), p0)


def test_labels_picked_at_the_previous_models_boundary_do_not_flatten_the_map():
    """Suggested labels were picked by the previous model's scores: those at
    its boundary are hard for any model, so a slope fitted on them came out
    0.3-0.75 here and made a good map timid (mean ECE 0.088 over these seeds;
    0.3-0.9 in the suggestion loop of bench_quality.py). The recalibration
    only shifts the log-odds."""
    eces = []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        t = rng.random(20000) < 0.3
        u = np.where(t, 1.5, -1.5)
        s = u + rng.normal(0.0, 1.0, len(t))  # this model's scores
        prev = u + rng.normal(0.0, 2.0, len(t))  # the previous model's: fewer labels, noisier
        cal = calibration.fit(s, s[t][:20], s[~t][:20])
        x0 = calibration._logit(cal.predict_proba(s))
        picked = np.r_[np.argsort(np.abs(prev - np.median(prev)))[:25], np.argsort(-prev)[:5]]
        assert calibration.recalibrate(cal, s[picked], t[picked].astype(float), s)
        p = cal.predict_proba(s)
        shift = calibration._logit(p) - x0
        assert cal.recal[0] == 1.0 and np.ptp(shift[np.abs(x0) < 8]) < 1e-6  # one constant
        eces.append(_ece(p, t))
    assert np.mean(eces) < 0.05, eces


def test_suggested_labels_that_agree_with_a_low_p_never_raise_it():
    """The top of a pool with almost no positives left: suggested samples at
    P ~0.01, all labeled negative. Platt's smoothed target for a negative
    (1 / 12 with 10 of them) is above their P, so the fitted shift raised
    every P (the pool's prior 0.001 -> 0.09). The labels say P is, if
    anything, lower: the map is left as it was."""
    rng = np.random.default_rng(0)
    s = rng.normal(size=5000)
    cal = calibration.fit(s, s[:5] + 4.0, s[5:10] - 2.0)
    before = cal.predict_proba(s)
    top = np.argsort(-s)[:10]
    assert before[top].max() < 0.05
    assert calibration.recalibrate(cal, s[top], np.zeros(10), s)
    after = cal.predict_proba(s)
    assert np.all(after <= np.maximum(before, 1e-6) + 1e-9)  # (the map's log-odds floor at P = 1e-6)
    assert cal.prior < 2 * before.mean() + 1e-6


def test_model_recalibrates_only_on_the_labels_marked_selected():
    X, y = clusters(3000, rate=0.1, seed=4)
    rng = np.random.default_rng(0)
    pos, neg = np.flatnonzero(y)[:12], np.flatnonzero(~y)[:12]
    pool = np.setdiff1d(np.arange(len(y)), np.r_[pos, neg])
    m = FewShotModel().fit(X[pos], X[neg], X[pool])
    raw = m.raw_scores(X[pool])
    base = m.fit_calibration(raw).predict_proba(raw)
    none = (np.zeros(12, bool), np.zeros(12, bool))
    assert np.allclose(m.fit_calibration(raw, selected=none).predict_proba(raw), base)
    assert m.describe()["recalibrated_on"] == 0
    sel = (rng.random(12) < 0.5, np.ones(12, bool))
    m.fit_calibration(raw, selected=sel)
    assert m.describe()["recalibrated_on"] == int(sel[0].sum()) + 12
    assert not np.allclose(m.proba(raw), base)


def test_a_pool_with_almost_no_positives_left_is_not_recalibrated_to_the_labels():
    """The suggestion loop has labeled nearly every positive: the pool holds 1
    in 3,000. The mixture says so; a fallback to Platt on the balanced labels
    (the previous behaviour) called 40+ pool samples positive."""
    rng = np.random.default_rng(0)
    pool = np.r_[rng.normal(0.0, 1.0, 3000), [3.0]]
    lp, ln = rng.normal(3.0, 0.5, 12), rng.normal(1.8, 0.3, 20)  # found positives; boundary negatives
    cal = calibration.fit(pool, lp, ln)
    p = cal.predict_proba(pool)
    assert cal.method == "mixture" and cal.prior < 0.003
    assert (p >= 0.5).sum() <= 3 and p.mean() < 0.005


def test_a_mixture_whose_components_swap_falls_back_to_a_rising_map():
    """Labeled positives that score below the labeled negatives pull the
    mixture's positive component under the negative one with a fixed 60%
    prior: its posterior fell with the score, a constant once forced monotone
    (every sample labeled alike). It falls back to the pool's own mixture at
    that prior (components started from the pool split at its 40% quantile)."""
    rng = np.random.default_rng(3)
    pool = np.r_[rng.normal(1.0, 0.6, 1200), rng.normal(-1.0, 0.6, 800)]
    lp, ln = rng.normal(-0.8, 0.3, 5), rng.normal(0.6, 0.3, 5)
    cal = calibration.fit(pool, lp, ln, prior=0.6, pool_fallback=True)
    p = cal.predict_proba(np.sort(pool))
    assert np.all(np.diff(p) >= -1e-12)
    assert p[-1] > p[0] + 0.05, (p[0], p[-1])  # not a constant
    assert cal.method == "pool mixture" and cal.prior == pytest.approx(0.6)


def test_swapped_components_with_a_fixed_prior_keep_the_pool_calibrated():
    """The swapped case above fell back to Platt on the contradicting labels,
    whose slope sat at MIN_SLOPE: every P within 0.43-0.58 on a pool whose two
    modes are cleanly apart (ECE 0.17-0.40 on four digits trials at k = 5 in
    ``bench_quality.py``). The pool's own mixture at the fixed prior is
    calibrated on it (the truth here: which mode a score came from)."""
    rng = np.random.default_rng(5)
    pool = np.r_[rng.normal(1.5, 0.5, 1200), rng.normal(-1.0, 0.5, 800)]
    truth = np.r_[np.ones(1200, bool), np.zeros(800, bool)]
    lp, ln = rng.normal(-0.8, 0.3, 5), rng.normal(0.6, 0.3, 5)
    p = calibration.fit(pool, lp, ln, prior=0.6, pool_fallback=True).predict_proba(pool)
    assert _ece(p, truth) < 0.05, _ece(p, truth)


def test_platt_never_falls_with_the_score():
    z = np.r_[np.linspace(-2, -1, 5), np.linspace(1, 2, 5)]
    t = np.r_[np.ones(5), np.zeros(5)]  # positives below negatives
    a, _ = calibration.platt(z, t, min_a=calibration.MIN_SLOPE)
    assert a == pytest.approx(calibration.MIN_SLOPE)
    cal = calibration._platt(0.0, 1.0, z[:5], z[5:], np.linspace(-3, 3, 50))
    assert cal.a >= calibration.MIN_SLOPE


def test_a_map_that_labels_far_fewer_positives_than_its_prior_is_shifted_to_it():
    """A timid map (heavily overlapping components) with a 40% prior labels
    almost nothing positive; match_prior moves its 0.5 crossing to the pool's
    60% quantile and keeps the ranking; a consistent map is left alone."""
    pool = np.random.default_rng(0).normal(0.0, 1.0, 5000)
    cal = calibration.Calibration(0.0, 1.0, 0.4, 0.2, 1.0, 0.0, 1.0)
    before = cal.predict_proba(pool)
    assert (before >= 0.5).mean() < 0.05
    assert calibration.match_prior(cal, pool)
    after = cal.predict_proba(pool)
    assert (after >= 0.5).mean() == pytest.approx(0.4, abs=0.01)
    order = np.argsort(pool)
    assert np.all(np.diff(after[order]) >= -1e-12)
    assert cal.to_dict()["offset"] == cal.offset != 0
    ok = calibration.Calibration(0.0, 1.0, 0.5, 1.0, 0.6, -1.0, 0.6)
    assert not calibration.match_prior(ok, pool) and ok.offset == 0.0


def test_match_prior_after_a_recalibration_and_a_recalibration_after_it():
    """The offset is added last, so it matches the prior whatever the
    recalibration's slope; a recalibration fitted afterwards folds it in."""
    rng = np.random.default_rng(1)
    pool = rng.normal(0.0, 1.0, 4000)
    cal = calibration.Calibration(0.0, 1.0, 0.3, 1.0, 0.8, -0.5, 0.8)
    cal.recal = (0.3, -1.5, 10)  # a timid refit: few samples reach 0.5
    cal.prior = float(np.mean(cal.predict_proba(pool)))
    assert calibration.match_prior(cal, pool)
    assert (cal.predict_proba(pool) >= 0.5).mean() == pytest.approx(cal.prior, abs=0.01)
    cal2 = calibration.Calibration(0.0, 1.0, 0.4, 0.2, 1.0, 0.0, 1.0)
    assert calibration.match_prior(cal2, pool)
    s = rng.normal(0.0, 1.0, 40)
    y = (rng.random(40) < sigmoid(2 * s)).astype(float)
    x = calibration._logit(cal2.predict_proba(s))
    b = calibration._intercept(x, calibration._smoothed(y), reg_b=calibration.SELECTED_REG)
    assert calibration.recalibrate(cal2, s, y, pool)
    np.testing.assert_allclose(cal2.predict_proba(s), sigmoid(x + b), atol=1e-4)
    assert cal2.offset == 0.0


def test_a_collapsed_rare_prior_is_raised_to_a_third_of_the_quantile_estimate():
    """Tight leave-one-out positives (5 labels, all close together) below the
    pool's positives: the mixture's positive component is too narrow to hold
    them and its weight collapses to ~0, so no sample reached P 0.5 (seen
    with the nearest-labels term at k = 5, digits 1-3%). The shape-free
    estimate's third is fixed then, and the pool's positives are found."""
    from scoring.maps import QUANTILE_FLOOR, quantile_prior

    rng = np.random.default_rng(0)
    pool = np.r_[rng.normal(0, 1, 19500), rng.normal(4.5, 0.8, 500)]
    truth = np.r_[np.zeros(19500, bool), np.ones(500, bool)]
    lp, ln = 2.5 + 0.05 * np.arange(-2, 3), rng.normal(0, 1, 5)
    assert calibration.fit(pool, lp, ln, own_pos=lp + 0.5).prior < 1e-3  # the collapse
    m = FewShotModel()
    m.choice, m._fixed_prior = "rare", None
    cal = m._base_calibration(pool, lp, ln, lp + 0.5, 0, None)
    assert cal.prior_method == "quantile floor"
    assert cal.prior == pytest.approx(quantile_prior(pool, lp) / QUANTILE_FLOOR)
    pred = cal.predict_proba(pool) >= 0.5
    assert 2 * (pred & truth).sum() / (pred.sum() + truth.sum()) > 0.8


def test_the_floor_waits_for_an_estimate_that_says_rare():
    """Leave-one-out positives of two kinds (two high, three near the pool's
    median) put the quantile estimate at 0.5+: a third of it is no floor for
    a rare concept, whose mixture found the right rate (a review's repro)."""
    rng = np.random.default_rng(1)
    pool = np.r_[rng.normal(0, 1, 19800), rng.normal(4.0, 0.6, 200)]
    truth = np.r_[np.zeros(19800, bool), np.ones(200, bool)]
    lp, ln = np.array([4.2, 3.9, 0.1, 0.3, 0.6]), rng.normal(0, 1, 5)
    m = FewShotModel()
    m.choice, m._fixed_prior = "rare", None
    cal = m._base_calibration(pool, lp, ln, lp + 0.5, 0, None)
    assert cal.prior_method != "quantile floor" and cal.prior < 0.05, cal.to_dict()
    pred = cal.predict_proba(pool) >= 0.5
    assert 2 * (pred & truth).sum() / (pred.sum() + truth.sum()) > 0.8
