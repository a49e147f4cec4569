"""Labels picked by suggestions that come back nearly all positive overrule a
"rare" decision (scoring/decide.py, ``_picked_say_common``; pure numpy)."""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from scoring import FewShotModel, l2_normalize  # noqa: E402
from scoring.decide import PICKED_COMMON_SHARE, PICKED_MIN  # noqa: E402
from test_concept_prior import split, union_concept  # noqa: E402


def one_part_picked(seed, n=4000, d=32):
    """A 75% concept (6 of 8 clusters): 2 random positives, then 30 positives
    "picked" from one of its clusters (the top of one part of it, as the loop's
    suggestions can be), and 2 random negatives. Returns ``(X, y, pos, neg, rest)``."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(8, d))
    c = rng.integers(0, 8, n)
    y = c < 6
    X = l2_normalize(centers[c] + 1.1 * rng.normal(size=(n, d)))
    start = rng.choice(np.flatnonzero(y & (c != 0)), 2, replace=False)
    pos = np.r_[start, rng.choice(np.flatnonzero(c == 0), 30, replace=False)]
    neg = rng.choice(np.flatnonzero(~y), 2, replace=False)
    return X, y, pos, neg, np.setdiff1d(np.arange(n), np.r_[pos, neg])


def scored(X, pos, neg, rest, selected):
    m = FewShotModel().fit(X[pos], X[neg], X[rest], selected=selected)
    raw = m.raw_scores(X[rest])
    m.fit_calibration(raw, selected=selected)
    return m, m.proba(raw) >= 0.5


def f1(pred, truth):
    return 2 * (pred & truth).sum() / max(pred.sum() + truth.sum(), 1)


def test_picked_labels_nearly_all_positive_make_a_concept_common():
    """The probes call this 75% concept rare (its positives of one kind, too
    few negatives for their probe): F1 0.28-0.38 on these seeds (on seeds 2
    and 3 the probes say common themselves). The same labels, known to be
    picked by suggestions: common, F1 0.85-0.97."""
    for seed in (0, 1, 4, 5):
        X, y, pos, neg, rest = one_part_picked(seed)
        unknown, pred0 = scored(X, pos, neg, rest, None)
        assert unknown.choice == "rare", seed  # (what the probes say)
        picked = (np.arange(len(pos)) >= 2, np.zeros(len(neg), bool))
        m, pred = scored(X, pos, neg, rest, picked)
        assert m.choice == "common" and m.describe()["concept"] == "common", seed
        assert m.probe_prior == unknown.probe_prior  # (the probes' estimate is kept, only the decision changes)
        assert f1(pred, y[rest]) > 0.8 > 0.5 > f1(pred0, y[rest]), (seed, f1(pred, y[rest]), f1(pred0, y[rest]))


def test_too_few_or_mixed_picked_labels_keep_the_probes_decision():
    """Below ``PICKED_MIN`` picked labels, or under ``PICKED_COMMON_SHARE`` of
    them positive, the probes decide."""
    X, y, pos, neg, rest = one_part_picked(1)
    few = (np.arange(len(pos)) >= len(pos) - (PICKED_MIN - 1), np.zeros(len(neg), bool))
    assert scored(X, pos, neg, rest, few)[0].choice == "rare"
    # 17 picked positives and 2 picked negatives (0.89 positive; 4 negatives in
    # all, too few for the negatives' probe, as above)
    neg = np.r_[neg, np.random.default_rng(0).choice(np.setdiff1d(np.flatnonzero(~y), neg), 2, replace=False)]
    pos = pos[:19]
    rest = np.setdiff1d(np.arange(len(y)), np.r_[pos, neg])
    mixed = (np.arange(len(pos)) >= 2, np.arange(len(neg)) >= 2)
    assert 17 < PICKED_COMMON_SHARE * 19
    assert scored(X, pos, neg, rest, mixed)[0].choice == "rare"


def test_a_rare_concepts_mixed_suggestions_stay_rare():
    """A 4% concept whose picked labels come back half positive stays rare."""
    X, y = union_concept(0.04, seed=1)
    pos, neg, rest = split(y, 12, 0)
    picked = (np.arange(12) >= 2, np.arange(12) >= 2)  # 10 + 10 picked
    m, _ = scored(X, pos, neg, rest, picked)
    assert m.choice == "rare"
