"""Metrics, label strategies and scorers for ``bench_quality.py``."""

import sys

import numpy as np

import common

sys.path.insert(0, common.REPO)
from scoring import FewShotModel, RocchioScorer, suggest  # noqa: E402
from scoring.background import Background  # noqa: E402
from scoring.power import transform  # noqa: E402
from scoring.model import COMMON_PRIOR, WHITEN_MIN_LABELS  # noqa: E402

DEFAULT_TOP_FRACTION = 0.1  # what suggest_samples uses (operators/params.py)


def average_precision(scores, truth):
    order = np.argsort(-scores, kind="stable")
    t = truth[order]
    if not t.any():
        return 0.0
    precision = np.cumsum(t) / np.arange(1, len(t) + 1)
    return float((precision * t).sum() / t.sum())


def f1(pred, truth):
    tp = (pred & truth).sum()
    return float(2 * tp / max(pred.sum() + truth.sum(), 1))


def ece(p, truth, bins=10):
    b = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for i in range(bins):
        m = b == i
        if m.any():
            total += m.mean() * abs(p[m].mean() - truth[m].mean())
    return float(total)


class Pool(object):
    """One trial's pool: unit rows, truth, and the pool's background (fitted
    once per pool and reused by every fit, as the labeled few barely move it)."""

    def __init__(self, X, truth):
        self.X, self.truth = X, truth
        self._bg = {}

    def background(self, whiten, power=1.0):
        """Fitted on the rows as the model transforms them (``power``, :mod:`scoring.power`)."""
        key = (bool(whiten), float(power))
        if key not in self._bg:
            self._bg[key] = Background.fit(transform(self.X, power), whiten=key[0])
        return self._bg[key]


# --- scorers: fn(pool, pos, neg, unl, selected=None) -> (scores, P or None, estimated prior or None)
# ``selected``: (positive mask, negative mask), True for labels picked by suggestions

def seed(pool, pos, neg, unl, selected=None):
    s = RocchioScorer("distance").fit(pool.X[pos], pool.X[neg])
    return s.raw_scores(pool.X[unl], normalized=True), s.predict_proba(pool.X[unl], True), None


def query(pool, pos, neg, unl, selected=None):
    """FiftyOne's Similarity Search with negatives: normalize(2 mean(pos) - mean(neg))."""
    q = 2 * pool.X[pos].mean(0) - pool.X[neg].mean(0)
    return pool.X[unl] @ (q / np.linalg.norm(q)), None, None


def model(**settings):
    """What ``train_and_label`` writes with these settings."""

    def fn(pool, pos, neg, unl, selected=None):
        m = FewShotModel(**settings)
        m.fit(pool.X[pos], pool.X[neg], pool.X[unl], background=pool.background, selected=selected)
        raw = m.raw_scores(pool.X[unl])
        m.fit_calibration(raw, selected=selected)
        p = m.proba(raw)
        return raw, p, (m.calibration.prior if m.calibration is not None else None)

    return fn


class _TruthDecided(FewShotModel):
    """The model with its rare/common decision replaced by the truth's (after
    the probes ran, so that what the decision feeds, the negatives' probe
    included, is as in the model). A diagnostic bound, never a scorer: it
    reads the truth."""

    truth_choice = None

    def _decide(self, pos, neg, pool_sample, seed, background):
        super()._decide(pos, neg, pool_sample, seed, background)
        if self._forced is None and self.truth_choice is not None:
            self.choice = self.truth_choice


def oracle_decision(pool, pos, neg, unl, selected=None):
    """``train_and_label``'s defaults, deciding rare or common from the
    truth (rare below ``COMMON_PRIOR``): which misses remain with a perfect
    decision (``bench_quality.py --oracle``)."""
    m = _TruthDecided()
    m.truth_choice = "rare" if pool.truth.mean() < COMMON_PRIOR else "common"
    m.fit(pool.X[pos], pool.X[neg], pool.X[unl], background=pool.background, selected=selected)
    raw = m.raw_scores(pool.X[unl])
    m.fit_calibration(raw, selected=selected)
    return raw, m.proba(raw), m.calibration.prior


def before(pool, pos, neg, unl, selected=None):
    """The previous defaults: pool background (3) and whitening from 5 positive
    labels whatever the prior, mixture prior by EM (explicit settings); it did
    not know which labels were suggested."""
    return model(background_weight=3.0, whiten=len(pos) >= WHITEN_MIN_LABELS, kernel_weight=0.0,
                 shrinkage=100.0, power=1.0)(pool, pos, neg, unl)


# --- label strategies: -> (pos, neg) positions in the pool

def random_labels(pool, k, rng):
    t = pool.truth
    return (rng.choice(np.flatnonzero(t), k, replace=False),
            rng.choice(np.flatnonzero(~t), k, replace=False))


def suggested_labels(pool, rng, fit=None, start=2, rounds=3, per_round=10,
                     top_fraction=DEFAULT_TOP_FRACTION):
    """``start`` + ``start`` random labels, then ``rounds`` rounds of labeling
    what ``suggest`` proposes (answered from the truth). Returns ``(pos, neg,
    selected)``: ``selected`` marks the suggested labels, as the plugin knows
    them (``suggest_samples`` records what it suggested)."""
    fit = fit or model()
    pos, neg = random_labels(pool, start, rng)
    for _ in range(rounds):
        lab = np.concatenate([pos, neg])
        unl = np.setdiff1d(np.arange(len(pool.truth)), lab)
        _, p, _ = fit(pool, pos, neg, unl, selected=_selected(pos, neg, start))
        idx, _, _ = suggest(p, per_round, top_fraction=top_fraction)
        chosen = unl[idx]
        pos = np.concatenate([pos, chosen[pool.truth[chosen]]])
        neg = np.concatenate([neg, chosen[~pool.truth[chosen]]])
    return pos, neg, _selected(pos, neg, start)


def _selected(pos, neg, start):
    return np.arange(len(pos)) >= start, np.arange(len(neg)) >= start


def evaluate(pool, pos, neg, fn, selected=None):
    """(AP, F1, ECE, predicted/true positives, estimated/true prior) over the
    unlabeled rest; NaN where the scorer gives no probabilities."""
    unl = np.setdiff1d(np.arange(len(pool.truth)), np.concatenate([pos, neg]))
    truth = pool.truth[unl]
    score, p, prior = fn(pool, pos, neg, unl, selected=selected)
    out = [average_precision(np.asarray(score), truth)]
    if p is None:
        return out + [np.nan] * 4
    pred = p >= 0.5
    out += [f1(pred, truth), ece(p, truth), pred.sum() / max(truth.sum(), 1)]
    # (undefined once every positive is labeled: the suggestion loop can label all of a 1% concept)
    out.append(prior / truth.mean() if prior is not None and truth.any() else np.nan)
    return out


def noise_trial(pool, k, rng):
    """One of ``k`` positive labels flipped (a random negative labeled positive,
    last): ``(AP clean, AP noisy, flipped one flagged, false flags)`` of the
    default model over the same unlabeled samples."""
    pos, neg = random_labels(pool, k, rng)
    bad = rng.choice(np.setdiff1d(np.flatnonzero(~pool.truth), neg))
    noisy = np.concatenate([pos[:-1], [bad]])
    unl = np.setdiff1d(np.arange(len(pool.truth)), np.concatenate([pos, neg, [bad]]))
    aps = []
    for P in (pos, noisy):
        m = FewShotModel()
        m.fit(pool.X[P], pool.X[neg], pool.X[unl], background=pool.background)
        raw = m.raw_scores(pool.X[unl])
        m.fit_calibration(raw)
        aps.append(average_precision(raw, pool.truth[unl]))
    sp, sn = m.suspects()
    hit = k - 1 in sp
    return aps[0], aps[1], float(hit), float(len(sp) - hit + len(sn))
