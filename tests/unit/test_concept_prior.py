"""The "auto" scorer settings decide from the labels whether a concept is rare
or common (scoring/model.py), so a common concept is never scored worse than
the seed scorer because of the pool background (pure numpy)."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from scoring import REFERENCE, FewShotModel, l2_normalize  # noqa: E402
from scoring.model import COMMON_PRIOR, RARE_BACKGROUND_WEIGHT, RARE_UNLESS  # noqa: E402
from scoring.rocchio import sigmoid  # noqa: E402
from test_calibration import _ece  # noqa: E402


def union_concept(rate, n=4000, d=32, members=3, seed=0):
    """A concept made of ``members`` of 8 clusters, ``rate`` of the pool."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(8, d))
    y = rng.random(n) < rate
    c = np.where(y, rng.integers(0, members, n), rng.integers(members, 8, n))
    return l2_normalize(centers[c] + 1.1 * rng.normal(size=(n, d))), y


def ap(scores, truth):
    t = truth[np.argsort(-scores, kind="stable")]
    return float((np.cumsum(t) / np.arange(1, len(t) + 1) * t).sum() / t.sum())


def split(y, k, seed, k_neg=None):
    """``k`` random positives and ``k_neg`` (default ``k``) random negatives,
    and the rest."""
    rng = np.random.default_rng(seed)
    pos = rng.choice(np.flatnonzero(y), k, replace=False)
    neg = rng.choice(np.flatnonzero(~y), k if k_neg is None else k_neg, replace=False)
    return pos, neg, np.setdiff1d(np.arange(len(y)), np.r_[pos, neg])


def digits_pixels():
    """scikit-learn's 8x8 digits (real images), centred pixels as unit vectors."""
    from sklearn.datasets import load_digits

    X, digit = load_digits(return_X_y=True)
    return l2_normalize(X.astype(np.float32) - X.mean(0)), digit


def fitted(X, pos, neg, rest, **settings):
    m = FewShotModel(**settings)
    raw, p = m.fit_score(X[pos], X[neg], X[rest])
    return m, raw, p


def test_auto_calls_a_rare_concept_rare_and_a_common_one_common():
    for rate, want in ((0.04, "rare"), (0.7, "common")):
        X, y = union_concept(rate, seed=1)
        pos, neg, rest = split(y, 10, 0)
        m, _, _ = fitted(X, pos, neg, rest)
        assert m.choice == want, (rate, m.probe_prior)
        assert (m.probe_prior < COMMON_PRIOR) == (want == "rare")
        settings = m.describe()
        assert settings["concept"] == want
        assert settings["background_weight"] == (RARE_BACKGROUND_WEIGHT if want == "rare" else 0.0)
        assert settings["whitened"] == (want == "rare")


def test_a_common_concept_ranks_at_least_as_well_as_the_seed_scorer():
    """With the rare-concept settings forced (the old defaults) a 70% union
    ranks worse than the seed scorer; the auto settings do not."""
    gaps_auto, gaps_forced = [], []
    for seed in range(4):
        X, y = union_concept(0.7, seed=seed)
        pos, neg, rest = split(y, 10, seed)
        t = y[rest]
        _, seed_raw, _ = fitted(X, pos, neg, rest, **REFERENCE)
        _, raw, _ = fitted(X, pos, neg, rest)
        _, forced, _ = fitted(X, pos, neg, rest, whiten=True, background_weight=RARE_BACKGROUND_WEIGHT)
        gaps_auto.append(ap(raw, t) - ap(seed_raw, t))
        gaps_forced.append(ap(forced, t) - ap(seed_raw, t))
    assert np.mean(gaps_auto) >= -0.002, gaps_auto
    assert np.mean(gaps_forced) < np.mean(gaps_auto) - 0.01, (gaps_forced, gaps_auto)


def test_explicit_settings_are_not_overridden():
    X, y = union_concept(0.7, seed=2)
    pos, neg, rest = split(y, 10, 0)
    m, _, _ = fitted(X, pos, neg, rest, whiten=True, background_weight=1.5)
    assert m.choice is None and m.describe()["background_weight"] == 1.5 and m.describe()["whitened"]


def test_a_rare_concepts_prior_is_not_run_up_by_the_negatives_tail():
    """A 2% concept next to a confusable cluster: the mixture's prior runs high;
    for a rare concept the lower shape-free estimate is fixed instead, and the
    estimated rates end closer to the truth than the mixture's (explicit settings
    keep the mixture prior, as before)."""
    auto, em, used = [], [], []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        centers = rng.normal(size=(8, 32))
        centers[1] = centers[0] + 0.6 * rng.normal(size=32)
        y = rng.random(6000) < 0.02
        X = l2_normalize(centers[np.where(y, 0, rng.integers(1, 8, 6000))] + rng.normal(size=(6000, 32)))
        pos, neg, rest = split(y, 10, seed)
        # the kernel term off in both: this measures the prior alone
        m, _, _ = fitted(X, pos, neg, rest, kernel_weight=0.0)
        m2, _, _ = fitted(X, pos, neg, rest, whiten=True, background_weight=RARE_BACKGROUND_WEIGHT,
                          kernel_weight=0.0)
        truth = y[rest].mean()
        assert m.choice == "rare" and m2.calibration.prior_method == "em"
        used.append(m.calibration.prior_method)
        auto.append(abs(np.log(m.calibration.prior / truth)))
        em.append(abs(np.log(m2.calibration.prior / truth)))
    assert "quantile" in used
    assert np.mean(auto) < np.mean(em) - 0.1, (auto, em)


def test_a_common_concepts_prior_is_the_prototypes_boundary_share():
    """With 5 labels per side the mixture's prior of a 50% concept runs low;
    a common concept's calibration fixes it to the share of the pool on the
    prototypes' positive side, which lands closer to the truth."""
    fixed, em = [], []
    for seed in range(6):
        X, y = union_concept(0.5, members=4, seed=seed)
        pos, neg, rest = split(y, 5, seed)
        m, _, _ = fitted(X, pos, neg, rest)
        assert m.choice == "common" and m.calibration.prior_method == "boundary"
        share = np.mean(m.scorer.raw_scores(X[rest], normalized=True) > 0)
        assert m.calibration.prior == pytest.approx(share, abs=1e-9)
        m2, _, _ = fitted(X, pos, neg, rest, whiten=False, background_weight=0.0)  # explicit: EM prior
        # (Platt where the unguided mixture's components swapped)
        assert m2.calibration.prior_method in ("em", "platt")
        truth = y[rest].mean()
        fixed.append(abs(np.log(m.calibration.prior / truth)))
        em.append(abs(np.log(m2.calibration.prior / truth)))
    assert np.mean(fixed) < np.mean(em), (fixed, em)


def test_a_small_pools_platt_calibration_does_not_claim_the_boundary_prior():
    """Under MIN_POOL scores the calibration is Platt with its own prior: the
    summary must not call it the boundary share; its labels still match it."""
    X, y = union_concept(0.5, n=300, members=4, seed=2)
    pos, neg, rest = split(y, 5, 2)
    m, raw, p = fitted(X, pos, neg, rest)
    cal = m.calibration
    assert m.choice == "common" and cal.method == "platt"
    assert cal.prior_method == "platt" and cal.prior != m._fixed_prior[0]
    assert 1 / 1.25 <= np.mean(p >= 0.5) / cal.prior <= 1.25


def test_a_common_concept_whose_negatives_are_one_kind_is_not_taken_for_rare():
    """Real images (scikit-learn's 8x8 digits, pixels as vectors), 5 labels per
    side. "Not a 1" (90%) and "even" (50%): the positives are many kinds of
    things, so a probe fitted on them alone put the pool's positive rate at
    0.17-0.19 and the concept was scored as rare (the pool mean as a negative,
    though it is mostly positives). The negatives, taken as the concept, are
    estimated at 0.06 and 0.54; normalized by them the prior is 0.73 and 0.26:
    common."""
    X, digit = digits_pixels()
    for classes, seed in (([0, 2, 3, 4, 5, 6, 7, 8, 9], 17), ([0, 2, 4, 6, 8], 32)):
        y = np.isin(digit, classes)
        pos, neg, rest = split(y, 5, seed)
        m, _, p = fitted(X, pos, neg, rest)
        assert m.choice == "common", (classes, m.probe_prior)
        assert 0.5 < (p >= 0.5).sum() / y[rest].sum() < 2, (classes, (p >= 0.5).mean())


def test_a_rare_concept_stays_rare_unless_the_negatives_probe_clearly_says_common():
    """Digit 1 (10% of scikit-learn's digits), 10 labels per side: the
    positives' own estimate is 0.18 and the normalized one 0.22, inside the
    band where both kinds of concept fall; rare is kept there (normalized
    alone, it was scored as common: no pool background, 1.5-2x the positives)."""
    X, digit = digits_pixels()
    y = digit == 1
    pos, neg, rest = split(y, 10, 16)
    m, _, _ = fitted(X, pos, neg, rest)
    assert COMMON_PRIOR <= m.probe_prior < RARE_UNLESS, m.probe_prior
    assert m.choice == "rare"


def test_few_negative_labels_do_not_turn_a_rare_concept_common():
    """The probe that takes the negatives as the concept rests on their
    leave-one-out scores: with a single negative label its prior was noise
    (0.0-0.3), and normalized by it a 10% concept was called common and every
    sample labeled positive. Below ``NEGATIVES_PROBE_MIN`` negatives the
    labels' own probe decides alone. (A single positive label leaves that probe
    without a leave-one-out estimate too: not covered here.)"""
    for seed in range(3):
        X, y = union_concept(0.1, n=3000, members=1, seed=seed)
        for kp, kn in ((5, 1), (10, 1), (30, 1), (10, 2), (20, 2), (10, 3)):
            pos, neg, rest = split(y, kp, seed, k_neg=kn)
            m, _, p = fitted(X, pos, neg, rest)
            assert m.choice == "rare", (seed, kp, kn, m.probe_prior)
            assert (p >= 0.5).mean() < 0.3, (seed, kp, kn, (p >= 0.5).mean())


def test_all_but_one_class_takes_its_prior_from_the_negatives_model():
    """"All but digit c" (90%) at 10 labels per side, real images (digits
    pixels): the share of the pool on the prototypes' positive side put the
    pool's positive rate at 0.63-0.87 (median 0.80x the truth over the ten
    classes). The negatives look rare themselves, so 1 - the rare-concept
    model's estimate for them is taken: median within 7% of the truth."""
    X, digit = digits_pixels()
    ratios, methods = [], []
    for c in range(10):
        y = digit != c
        pos, neg, rest = split(y, 10, 0)
        m, raw, p = fitted(X, pos, neg, rest)
        assert m.choice == "common"
        ratios.append(m.calibration.prior / y[rest].mean())
        methods.append(m.calibration.prior_method)
    assert 0.93 <= np.median(ratios) <= 1.07, ratios
    assert methods.count("negatives") >= 8, methods


def test_without_calibration_the_negatives_model_is_not_needed():
    """calibrate=False on the same kind of concept: the prior is only for the
    calibration, so nothing asks the negatives' model for one (it had none:
    the fit raised AttributeError)."""
    X, digit = digits_pixels()
    y = digit != 0
    pos, neg, rest = split(y, 10, 0)
    m, raw, p = fitted(X, pos, neg, rest, calibrate=False)
    assert m.choice == "common" and m.calibration is None
    np.testing.assert_allclose(p, sigmoid(raw.astype(np.float64)), rtol=1e-6)  # the seed's sigmoid(s / 1)


def test_a_common_concept_whose_labels_contradict_the_ranking_gets_the_pools_map():
    """With 3-5 labels per side a common concept's leave-one-out positives can
    score below its negatives and swap the mixture's components; the fallback
    was Platt on those labels, slope at its floor (a nearly flat map). The
    model asks for the pool's own mixture at its fixed prior instead. Digits
    pixels, six of the 28 trials of 300 (k = 3-5, 15 common concepts, 10
    seeds) where it applies; over all 28, 18 were better and 10 worse (mean
    ECE of the 300: 0.179 -> 0.174). Here mean ECE 0.241 before, 0.088."""
    X, digit = digits_pixels()
    cases = [([1, 4, 7, 9], 5, 1), ([1, 4, 7, 9], 5, 9), ([1, 3, 5, 7, 9], 5, 6), ([0, 6, 8], 5, 9),
             ([0, 2, 4, 6, 8], 3, 3), ([1, 3, 5, 7, 9], 3, 1)]
    eces = []
    for cls, k, seed in cases:
        y = np.isin(digit, cls)
        pos, neg, rest = split(y, k, seed)
        m, _, p = fitted(X, pos, neg, rest)
        assert m.choice == "common" and m.calibration.method == "pool mixture", (cls, k, seed)
        eces.append(_ece(p, y[rest]))
    assert np.mean(eces) < 0.15, np.round(eces, 3)


def suggestion_loop(X, y, seed, rounds=3, per_round=10):
    """bench_quality.py's loop: 2 + 2 random labels, then ``rounds`` rounds of
    labeling what ``suggest`` proposes (answered from ``y``); the final model
    knows which labels were suggested. Returns ``(model, P, rest)``."""
    from scoring import suggest

    rng = np.random.default_rng(seed)
    pos = list(rng.choice(np.flatnonzero(y), 2, replace=False))
    neg = list(rng.choice(np.flatnonzero(~y), 2, replace=False))
    for r in range(rounds + 1):
        rest = np.setdiff1d(np.arange(len(y)), np.r_[pos, neg])
        m = FewShotModel().fit(X[pos], X[neg], X[rest])
        raw = m.raw_scores(X[rest])
        m.fit_calibration(raw, selected=(np.arange(len(pos)) >= 2, np.arange(len(neg)) >= 2))
        p = m.proba(raw)
        if r == rounds:
            return m, p, rest
        chosen = rest[suggest(p, per_round, top_fraction=0.1)[0]]
        pos += list(chosen[y[chosen]])
        neg += list(chosen[~y[chosen]])


def test_suggested_labels_do_not_make_a_common_concepts_map_timid():
    """Labels picked from the scores crowd the top and the boundary: in the
    mixture they pulled its components together, and the map came out timid
    for a common concept. Its components come from the pool's scores alone
    then. Digits pixels, 3 common concepts x 5 seeds of the suggestion loop:
    mean ECE 0.089 before, 0.057."""
    X, digit = digits_pixels()
    eces = []
    for cls in ([1, 4, 7, 9], [0, 2, 4, 6, 8], [1, 2, 3, 4, 5, 7, 9]):
        y = np.isin(digit, cls)
        for seed in range(5):
            m, p, rest = suggestion_loop(X, y, seed)
            assert m.choice == "common" and m.describe()["recalibrated_on"] >= 6
            eces.append(_ece(p, y[rest]))
    assert np.mean(eces) < 0.07, np.round(eces, 3)


def test_suggested_labels_at_a_98_percent_concept_keep_the_labels_map():
    """"All but one digit", that digit kept to 30 images (98% of the pool):
    the pool's own mixture at that prior has a component too small to place
    (its map went flat at the top, ECE 0.064-0.066 on these two loops; 0.001
    and 0.003 with the label-weighted mixture), so it is used only while each
    class holds at least 5% of the pool."""
    X0, digit = digits_pixels()
    for c in (0, 3):
        rng = np.random.default_rng(c)
        idx = np.r_[np.flatnonzero(digit != c), rng.choice(np.flatnonzero(digit == c), 30, replace=False)]
        X, y = X0[idx], digit[idx] != c
        m, p, rest = suggestion_loop(X, y, 0)
        assert m.choice == "common" and m.describe()["recalibrated_on"] >= 6
        assert m.calibration.method != "pool mixture" and _ece(p, y[rest]) < 0.03, (c, _ece(p, y[rest]))


def test_every_suggested_label_counts_past_the_leave_one_out_sample():
    """Over MAX_LOO labels on a side, the calibration scores a random sample
    of them; the suggested labels were looked up in that sample, so 10
    suggested among 400 + 400 labels counted as 2-4 (not enough to
    recalibrate). They are scored on their own now."""
    from scoring.loo import MAX_LOO

    X, y = union_concept(0.5, n=3000, seed=2)
    pos, neg, rest = split(y, 400, 0)
    assert len(pos) > MAX_LOO
    m = FewShotModel().fit(X[pos], X[neg], X[rest])
    raw = m.raw_scores(X[rest])
    sel = (np.arange(400) >= 395, np.arange(400) >= 395)  # the last 5 of each side
    m.fit_calibration(raw, selected=sel)
    assert m.describe()["recalibrated_on"] == 10


def rare_digit(X, digit, c, share, seed):
    """Digit ``c`` kept to ``share`` of the pool (the others whole): ``(X, y, rng)``."""
    rng = np.random.default_rng(100 * c + seed)
    neg, pos = np.flatnonzero(digit != c), np.flatnonzero(digit == c)
    rows = np.sort(np.r_[neg, rng.choice(pos, int(round(share / (1 - share) * len(neg))), replace=False)])
    return X[rows], digit[rows] == c, rng


def test_a_rare_concept_whitens_harder_with_more_positive_labels():
    """The whitening's shrinkage falls as positive labels grow (auto: 3000 /
    k^2 within [10, 100]; the probes deciding rare or common keep 100). Digits
    pixels, each digit kept to 3% of the pool, 20 labels per side: AP over a
    fixed shrinkage of 100 +0.018 on average, better in 24 of 30 trials (the
    bench on Lite0 features: +0.003 to +0.078 at the 1-10% priors, k = 20)."""
    X0, digit = digits_pixels()
    gains = []
    for c in range(10):
        for seed in range(3):
            X, y, rng = rare_digit(X0, digit, c, 0.03, seed)
            pos = rng.choice(np.flatnonzero(y), 20, replace=False)
            neg = rng.choice(np.flatnonzero(~y), 20, replace=False)
            rest = np.setdiff1d(np.arange(len(y)), np.r_[pos, neg])
            m, raw, _ = fitted(X, pos, neg, rest)
            fixed, raw100, _ = fitted(X, pos, neg, rest, shrinkage=100)
            assert m.probe_prior == fixed.probe_prior and m.choice == fixed.choice  # the same decision
            if m.choice == "rare":
                assert m.describe()["shrinkage"] == 10.0 and fixed.describe()["shrinkage"] == 100.0
            gains.append(ap(raw, y[rest]) - ap(raw100, y[rest]))
    assert np.mean(gains) > 0.008 and np.mean(np.array(gains) > 0) >= 0.65, np.round(gains, 3)


def test_positive_labels_picked_by_suggestions_do_not_lower_the_shrinkage():
    """Suggested positives are top-scored samples, close to the direction the
    model already has: only the others count toward the auto shrinkage
    (counted, bench_quality.py's suggestion loop missed more targets)."""
    X0, digit = digits_pixels()
    X, y, rng = rare_digit(X0, digit, 3, 0.03, 0)
    pos = rng.choice(np.flatnonzero(y), 20, replace=False)
    neg = rng.choice(np.flatnonzero(~y), 20, replace=False)
    rest = np.setdiff1d(np.arange(len(y)), np.r_[pos, neg])
    picked = (np.arange(20) >= 8, np.arange(20) >= 8)  # 12 of each side from suggestions
    m = FewShotModel().fit(X[pos], X[neg], X[rest], selected=picked)
    assert m.choice == "rare" and m.describe()["shrinkage"] == 3000.0 / 8 ** 2
    assert FewShotModel().fit(X[pos], X[neg], X[rest]).describe()["shrinkage"] == 10.0


def test_a_rare_concepts_first_suggestions_coming_back_positive_keep_it_rare():
    """A rare model fitted on 2 + 2 labels can put its P = 0.5 boundary inside
    the concept, so the first round's suggestions (mostly boundary samples)
    come back nearly all positive. That is no sign of a common concept: a rule
    that read it as one (90% of 10 or more picked labels positive -> common)
    decided 4 of these 10 one-vs-rest digits common after round 1 and cost
    mean F1 0.695 -> 0.529 (a review's repro; it fired on 40 of 40 picks too)."""
    from scoring import suggest

    X, digit = digits_pixels()
    f1s = []
    for d in range(10):
        y = digit == d
        pos, neg, rest = split(y, 2, d)
        m = FewShotModel().fit(X[pos], X[neg], X[rest])
        raw = m.raw_scores(X[rest])
        m.fit_calibration(raw)
        new = rest[suggest(m.proba(raw), 10, 0.1)[0]]
        picked = (np.r_[np.zeros(2, bool), np.ones(y[new].sum(), bool)],
                  np.r_[np.zeros(2, bool), np.ones((~y[new]).sum(), bool)])
        pos, neg = np.r_[pos, new[y[new]]], np.r_[neg, new[~y[new]]]
        rest = np.setdiff1d(rest, new)
        m = FewShotModel().fit(X[pos], X[neg], X[rest], selected=picked)
        raw = m.raw_scores(X[rest])
        m.fit_calibration(raw, selected=picked)
        assert m.choice == "rare", d
        f1s.append(f1_score(m.proba(raw) >= 0.5, y[rest]))
    assert np.mean(f1s) > 0.65, np.round(f1s, 3)


def f1_score(pred, truth):
    return 2 * (pred & truth).sum() / max(pred.sum() + truth.sum(), 1)
