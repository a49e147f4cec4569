"""The nearest-labels (kernel) term of the scorer (scoring/kernel.py, pure numpy)."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from scoring import REFERENCE, FewShotModel, ScoringError, check_model_settings  # noqa: E402
from scoring import calibration, kernel  # noqa: E402
from scoring.kernel import KernelTerm  # noqa: E402
from test_concept_prior import ap, split, union_concept  # noqa: E402


def test_leave_one_out_kernel_is_the_term_without_the_item():
    X, y = union_concept(0.4, n=600)
    pos, neg = X[y][:5], X[~y][:6]
    term = KernelTerm(pos, neg)
    kp, kn = term.loo(pos, neg, np.arange(5), np.arange(6))
    for i in range(5):
        assert kp[i] == pytest.approx(KernelTerm(np.delete(pos, i, 0), neg).scores(pos[i : i + 1])[0], rel=1e-6)
    for i in range(6):
        assert kn[i] == pytest.approx(KernelTerm(pos, np.delete(neg, i, 0)).scores(neg[i : i + 1])[0], rel=1e-6)


def test_leave_one_out_kernel_with_pool_rows_is_the_term_without_the_item():
    X, y = union_concept(0.05, n=600, members=1)
    pos, neg, pool = X[y][:5], X[~y][:6], X[~y][6:70]
    term = KernelTerm(pos, neg, background=pool)
    assert len(term.B) == 64
    kp, kn = term.loo(pos, neg, np.arange(5), np.arange(6))
    for i in range(5):
        want = KernelTerm(np.delete(pos, i, 0), neg, background=pool).scores(pos[i : i + 1])[0]
        assert kp[i] == pytest.approx(want, rel=1e-6)
    for i in range(6):
        want = KernelTerm(pos, np.delete(neg, i, 0), background=pool).scores(neg[i : i + 1])[0]
        assert kn[i] == pytest.approx(want, rel=1e-6)
    # the pool rows move every score (they are half the negative side)
    assert not np.allclose(kp, KernelTerm(pos, neg).loo(pos, neg, np.arange(5), np.arange(6))[0])


def test_a_pool_row_is_not_its_own_neighbour():
    """The pool rows are also scored: one of them must not meet itself on the
    negative side (cosine 1, the largest term by far: it would sink)."""
    X, y = union_concept(0.05, n=600, members=1)
    pos, neg, pool = X[y][:5], X[~y][:6], X[~y][6:40]
    term = KernelTerm(pos, neg, background=pool)
    got = term.scores(pool)
    for i in (0, 7, 33):
        want = KernelTerm(pos, neg, background=np.delete(pool, i, 0)).scores(pool[i : i + 1])[0]
        assert got[i] == pytest.approx(want, rel=1e-5)
    # a row equal to every pool row keeps the labeled negatives alone (no NaN)
    same = np.repeat(pool[:1], 3, axis=0)
    one = KernelTerm(pos, neg, background=same).scores(pool[:1])
    assert np.isfinite(one).all() and one[0] == pytest.approx(KernelTerm(pos, neg).scores(pool[:1])[0], rel=1e-6)


def test_a_rare_concept_takes_pool_rows_below_its_top_scores():
    """Rare (the pool stands in for negatives): the kernel's negative side gets
    pool rows, none from the top ``BACKGROUND_TOP_OUT`` of the prototype
    scores; common: labeled negatives only."""
    X, y = union_concept(0.03, n=5000, members=1)
    pos, neg, rest = split(y, 12, 0)
    m = FewShotModel().fit(X[pos], X[neg], X[rest])
    assert m.choice == "rare" and m.describe()["kernel_weight"] == 0.5
    B = m._kernel[0].B
    assert B is not None and len(B) == kernel.MAX_LABELS
    r = m.scorer.raw_scores(X[rest], normalized=True)
    cut = np.quantile(r, 1 - kernel.BACKGROUND_TOP_OUT)
    assert (m.scorer.raw_scores(B, normalized=True) < cut).all()
    X, y = union_concept(0.4)
    pos, neg, rest = split(y, 10, 0)
    m = FewShotModel().fit(X[pos], X[neg], X[rest])
    assert m.choice == "common" and m._kernel[0].B is None


def test_pool_rows_only_for_a_rare_concept_as_auto_decides_it():
    """Explicit settings may be a common concept's: a pool weight set by hand
    does not make the pool the term's negatives (a 40% concept lost AP)."""
    X, y = union_concept(0.4)
    pos, neg, rest = split(y, 10, 0)
    for settings in ({"background_weight": 3.0}, {"whiten": False, "background_weight": 3.0, "kernel_weight": 1.0}):
        m = FewShotModel(**settings).fit(X[pos], X[neg], X[rest])
        assert m.describe()["kernel_weight"] > 0 and not m.describe()["kernel_pool_rows"], settings


def test_plain_lists_still_fit_with_pool_rows():
    X, y = union_concept(0.03, n=3000, members=1)
    pos, neg, rest = split(y, 6, 0)
    m = FewShotModel()
    raw, p = m.fit_score(X[pos].tolist(), X[neg].tolist(), X[rest].tolist())
    assert m.describe()["kernel_pool_rows"] and np.isfinite(raw).all()
    np.testing.assert_allclose(raw, FewShotModel().fit_score(X[pos], X[neg], X[rest])[0], atol=1e-5)


def test_kernel_uses_a_fixed_subset_of_many_labels(monkeypatch):
    monkeypatch.setattr(kernel, "MAX_LABELS", 8)
    X, y = union_concept(0.4, n=800)
    pos, neg = X[y][:30], X[~y][:30]
    term = KernelTerm(pos, neg)
    assert len(term.P) == 8 and len(term.N) == 8
    np.testing.assert_array_equal(term.pi, KernelTerm(pos, neg).pi)  # the same subset each time
    kp, _ = term.loo(pos, neg, np.arange(30), np.arange(30))
    out = [i for i in range(30) if i not in term.pi]  # not in the subset: nothing to leave out
    # (float32 sums of ~30: 4e-6 apart with numpy 2.4's OpenBLAS, 1.5e-7 relative)
    np.testing.assert_allclose(kp[out], term.scores(pos[out]), rtol=1e-6, atol=1e-6)


def test_a_common_multi_kind_concept_ranks_better_with_the_term():
    """A concept made of 3 of 8 clusters at 40%: one prototype averages the
    kinds away; the term follows each labeled example (auto: weight 1)."""
    gains = []
    for seed in range(4):
        X, y = union_concept(0.4, seed=seed)
        pos, neg, rest = split(y, 10, seed)
        m = FewShotModel().fit(X[pos], X[neg], X[rest])
        m0 = FewShotModel(kernel_weight=0.0).fit(X[pos], X[neg], X[rest])
        assert m.choice == "common" and m.describe()["kernel_weight"] == 1.0
        gains.append(ap(m.raw_scores(X[rest]), y[rest]) - ap(m0.raw_scores(X[rest]), y[rest]))
    assert np.mean(gains) > 0.01 and min(gains) > -0.005, gains


def test_a_common_concepts_term_weighs_more_with_more_labels():
    """auto: 1 up to 10 labels on the smaller side, then labels / 10, at most 2
    (the nearest labels cover the concept's kinds better as labels grow)."""
    X, y = union_concept(0.4, n=1500)
    for kp, kn, want in ((5, 5, 1.0), (10, 10, 1.0), (15, 30, 1.5), (30, 15, 1.5), (20, 20, 2.0), (40, 40, 2.0)):
        pos, neg, rest = split(y, kp, 0, k_neg=kn)
        m = FewShotModel().fit(X[pos], X[neg], X[rest])
        assert m.choice == "common" and m.describe()["kernel_weight"] == want, (kp, kn)
    # an explicit weight is kept whatever the number of labels
    pos, neg, rest = split(y, 20, 0)
    assert FewShotModel(kernel_weight=1.0).fit(X[pos], X[neg], X[rest]).describe()["kernel_weight"] == 1.0
    # labels picked by suggestions do not count (measured on random labels only;
    # with picked ones the growth cost ECE in bench_quality.py's loop)
    for picked, want in ((0, 2.0), (5, 1.5), (10, 1.0), (20, 1.0)):
        sel = (np.arange(20) < picked, np.arange(20) < picked)
        m = FewShotModel().fit(X[pos], X[neg], X[rest], selected=sel)
        assert m.choice == "common" and m.describe()["kernel_weight"] == want, picked


def test_kernel_weight_auto_rules_and_settings():
    X, y = union_concept(0.03, n=5000, members=1)
    # (positives, negatives) -> weight, pool rows: from 5 positives with the
    # pool's rows, not while positives outnumber negatives (then from 10, without)
    for kp, kn, want, rows in ((4, 4, 0.0, False), (5, 5, 0.5, True), (12, 12, 0.5, True),
                               (8, 5, 0.0, False), (12, 6, 0.5, False)):
        pos, neg, rest = split(y, kp, 0, k_neg=kn)
        m = FewShotModel().fit(X[pos], X[neg], X[rest])
        assert m.choice == "rare" and m.describe()["kernel_weight"] == want, (kp, kn)
        assert (m._kernel is not None and m._kernel[0].B is not None) == rows, (kp, kn)
    # explicit numbers, and the checks
    assert check_model_settings(kernel_weight="0.7")["kernel_weight"] == 0.7
    assert check_model_settings(kernel_weight=" AUTO ")["kernel_weight"] == "auto"
    assert REFERENCE["kernel_weight"] == 0.0
    for bad in (-1, True, "lots", float("nan")):
        with pytest.raises(ScoringError, match="kernel_weight"):
            check_model_settings(kernel_weight=bad)
    # one label on a side: no term, whatever the setting
    pos, neg, rest = split(y, 1, 0)
    assert FewShotModel(kernel_weight=2.0).fit(X[pos], X[neg], X[rest]).describe()["kernel_weight"] == 0.0
    # an explicit weight needs the pool (the scores are standardized on it)
    pos, neg, _ = split(y, 3, 0)
    with pytest.raises(ScoringError, match="pool"):
        FewShotModel(kernel_weight=1.0, whiten=False, background_weight=0).fit(X[pos], X[neg])


def test_calibration_sees_the_same_scores_as_the_ranking():
    """With the term on, the leave-one-out scores the calibration uses include
    it: a labeled positive's leave-one-out score is the combined score of a
    model fitted without it."""
    X, y = union_concept(0.4, seed=1)
    pos, neg, rest = split(y, 6, 1)
    m = FewShotModel(kernel_weight=1.0, whiten=False, background_weight=0).fit(X[pos], X[neg], X[rest])
    m.fit_calibration(m.raw_scores(X[rest]))
    ip, lp = m._loo[0], m._loo[1]
    i = int(ip[0])
    ref = FewShotModel(kernel_weight=1.0, whiten=False, background_weight=0)
    ref.fit(np.delete(X[pos], i, 0), X[neg], X[rest])
    ref._kernel = (ref._kernel[0],) + m._kernel[1:]  # the same standardization
    assert lp[0] == pytest.approx(float(ref.raw_scores(X[pos][i : i + 1])[0]), abs=1e-4)


def test_recalibration_never_inverts_the_ranking():
    """Labels that contradict the scores cannot flip P to decrease with the score."""
    rng = np.random.default_rng(0)
    s = rng.normal(size=5000)
    cal = calibration.fit(s, s[:5] + 2, s[5:10] - 2)
    picked = np.argsort(s)[-20:]
    calibration.recalibrate(cal, s[picked], np.r_[np.zeros(10), np.ones(10)][np.argsort(np.argsort(-s[picked]))], s)
    assert cal.recal[0] >= calibration.MIN_SLOPE
    assert np.all(np.diff(cal.predict_proba(np.sort(s))) >= -1e-12)


def test_pool_rows_give_way_to_negatives_picked_by_suggestions():
    """Negatives that suggestions picked are the hard ones near the top and the
    boundary: the pool rows' share of the negative side shrinks with their
    share of the negative labels, and is 0 when suggestions picked all."""
    assert kernel.pool_share(10, 0) == kernel.BACKGROUND_SHARE
    assert kernel.pool_share(10, 5) == pytest.approx(kernel.BACKGROUND_SHARE / 2)
    assert kernel.pool_share(10, 10) == 0.0 and kernel.pool_share(0, 0) == 0.0
    X, y = union_concept(0.03, n=5000, members=1)
    pos, neg, rest = split(y, 12, 0)
    fits = {}
    for picked in (0, 6, 12):
        sel = (np.zeros(len(pos), bool), np.arange(len(neg)) < picked)
        fits[picked] = m = FewShotModel().fit(X[pos], X[neg], X[rest], selected=sel)
        assert m.choice == "rare" and m.describe()["kernel_weight"] == 0.5
    assert fits[0]._kernel[0].share == kernel.BACKGROUND_SHARE and fits[6]._kernel[0].share == pytest.approx(0.25)
    assert fits[12].describe()["kernel_pool_rows"] is False
    # all picked: the labeled negatives alone, as a term without pool rows scores
    plain = KernelTerm(fits[12]._pos, fits[12]._neg).scores(X[rest])
    np.testing.assert_allclose(fits[12]._kernel[0].scores(X[rest]), plain, atol=1e-5)
    # the share is what the negative side mixes: a quarter moves the scores off both ends
    half, quarter = fits[0]._kernel[0].scores(X[rest]), fits[6]._kernel[0].scores(X[rest])
    assert not np.allclose(quarter, half, atol=1e-4) and not np.allclose(quarter, plain, atol=1e-4)
    term = KernelTerm(fits[6]._pos, fits[6]._neg, background=fits[0]._kernel[0].B, share=0.25)
    np.testing.assert_allclose(quarter, term.scores(X[rest]), atol=1e-5)


def test_masks_of_picked_labels_are_checked():
    """One true/false flag per label, per side; None for a side: none picked
    (a Python API caller's masks that do not fit raise instead of miscounting)."""
    from scoring.settings import picked_counts

    assert picked_counts(None, 3, 4) == [0, 0]
    assert picked_counts(([True, False, True], None), 3, 4) == [2, 0]
    assert picked_counts((np.array([1, 0, 0]), np.ones(4, bool)), 3, 4) == [1, 4]
    for bad in ((np.ones(3, bool), np.ones(5, bool)), (np.ones(2, bool), None), (np.array([5, 7, 0]), None)):
        with pytest.raises(ScoringError, match="one true/false flag per label"):
            picked_counts(bad, 3, 4)
    for bad in (np.ones(3, bool), (np.ones(3, bool),)):
        with pytest.raises(ScoringError, match="two masks"):
            picked_counts(bad, 3, 4)
    X, y = union_concept(0.03, n=3000, members=1)
    pos, neg, rest = split(y, 6, 0)
    m = FewShotModel().fit(X[pos], X[neg], X[rest], selected=(np.ones(6, bool), None))
    assert m.describe()["kernel_pool_share"] == kernel.BACKGROUND_SHARE
    with pytest.raises(ScoringError, match="one true/false flag"):
        FewShotModel().fit(X[pos], X[neg], X[rest], selected=(np.ones(6, bool), np.ones(7, bool)))
    m.fit_calibration(m.raw_scores(X[rest]), selected=(np.ones(6, bool), None))
    with pytest.raises(ScoringError, match="one true/false flag"):
        m.fit_calibration(m.raw_scores(X[rest]), selected=(np.ones(6, bool), np.ones(7, bool)))
