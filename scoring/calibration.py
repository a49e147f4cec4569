"""Calibrated P(positive) for the prototype scores (pure numpy).

The seed sigmoid ``sigmoid(s / T)`` is neither calibrated nor aware that the
concept is rare in the pool: with 10 + 10 labels it labels ~2.4x as many samples
positive as there are. Here the raw scores are turned into probabilities by a
two-component model of the score distribution, fitted semi-supervised:

- every score is standardized with the pool's median and standard deviation;
- the **pool's** scores (a sample of at most ``MAX_POOL`` of them) are a mixture
  ``pi * N(m1, s1) + (1 - pi) * N(m0, s0)``: the mixing weight ``pi`` is the
  pool's positive rate (the prior correction of Saerens, Latinne &
  Decaestecker, 2002, estimated by EM on the unlabeled scores);
- the **labeled** samples enter with known components, through their
  leave-one-out scores (each scored by prototypes built without it: labeled
  samples built the prototypes and would score optimistically), each weighted
  ``2 * k^2`` times a pool sample (``k`` = number of positive labels) so that
  the labels pin the components' shapes more firmly as they grow;
- ``P(positive | s)`` is the mixture posterior, forced monotone in the score
  (two Gaussians of unequal width have a quadratic log-odds).

With one positive label there is no leave-one-out positive score; 40% of its
own standardized score stands in for one (measured on Fashion-MNIST; its own
score is the most optimistic possible).

When the pool is too small to estimate its positive rate (fewer than
``MIN_POOL`` scores), Platt scaling on the leave-one-out scores is used instead
(slope and bias, Platt's smoothed targets, a weak pull of the slope toward 1).
A mixture that finds almost no positives in the pool is kept: that is its
finding (once the suggestion loop has labeled most of a 1% concept, few are
left), which Platt on the balanced labels cannot know (the earlier fallback to
Platt there predicted 81x the true positives on digits; ECE 0.103 -> 0.026).

A mixture whose positive component ends below the negative one (labeled
positives scoring below labeled negatives; the posterior would fall with the
score) is replaced, when its prior is fixed and ``pool_fallback`` asks for it
(the model: a common concept), by the mixture of the pool's scores alone at
that prior; else, or when that swaps too, by Platt scaling with its intercept
moved to the prior. Platt's slope is kept >= ``MIN_SLOPE``, which is where
contradicting labels leave it: a nearly constant map (P 0.43-0.58; ECE
0.17-0.40 on the four digits trials at k = 5 of ``bench/bench_quality.py``
where it happened, 0.13-0.33 with the pool's mixture; on digits pixels at k =
3-5, 28 of 300 trials changed: 18 better, 10 worse, mean ECE 0.179 -> 0.174).
:func:`match_prior` makes a map label
about as many samples positive as its prior says (used for common concepts).

``prior`` fixes the mixing weight instead (the model passes a shape-free
estimate for a rare concept, where the EM weight runs high: see
:func:`.maps.quantile_prior`).

**Labels picked from the scores** (``recalibrate``): the mixture takes labels
as a random sample of each class, which suggested labels are not (they are the
top-scored and boundary samples, so the labeled negatives crowd the boundary
and the prior runs 6-40x high at a 1-3% concept). A label picked *because of
its score* tells where P(positive | score) lies, so with at least
``SELECTED_MIN`` such labels the calibration's log-odds are shifted by one
constant ``b`` fitted on their leave-one-out scores (Platt's smoothed targets,
``b`` weakly pulled toward 0 by ``SELECTED_REG``; a shift against the labels'
own rate, which the smoothed targets can cause, is dropped); the prior becomes
the mean recalibrated P of the pool. Only the shift: the labels were picked by the
*previous* model's scores, and those at its boundary are the hardest samples
for any model, so a slope fitted on them runs flat. Measured on the suggestion
loop of ``bench/bench_quality.py``: a fitted slope came out 0.3-0.9 where the
pool's own labels wanted 2-4 times the mixture's (Fashion-MNIST, common
concepts). The loop's targets missed (20 trials per cell): 16 with a fitted
slope, 11 with the shift only; F1 at the 10% priors 0.56 -> 0.70-0.73. (The
model shifts :func:`pool_mixture` for a common concept then: see
:class:`.model.FewShotModel`.)

Written labels are "positive" iff P >= 0.5. ``bench/bench_quality.py``
measures F1, ECE and the predicted/true positive ratio against the seed sigmoid.
"""

import numpy as np

from .rocchio import sigmoid

MAX_POOL = 100000
EM_ITERS = 150
SINGLE_POSITIVE_SHRINK = 0.4
MIN_POOL = 500
LABEL_WEIGHT = 2.0  # x k^2: weight of each labeled score relative to a pool score
SELECTED_MIN = 6  # labels picked from the scores needed to recalibrate
MIN_SLOPE = 0.1  # Platt's slope floor: P never falls as the score rises
MATCH_TOLERANCE = 1.25  # predicted / expected positives a common concept's map may be off (match_prior)
SELECTED_REG = 0.05  # pull of the recalibration's shift toward 0 (0.05: 11 misses, 0.3: 11-16, 1.0: 14)


def _logit(p, eps=1e-6):
    p = np.clip(p, eps, 1.0 - eps)
    return np.log(p) - np.log1p(-p)


def _normal(z, m, s):
    return np.exp(-0.5 * ((z - m) / s) ** 2) / s


class Calibration(object):
    """A fitted score -> P(positive) map (see the module docstring)."""

    method = "mixture"
    prior_method = "em"
    recal = None  # (a, b, number of labels) once recalibrated
    offset = 0.0  # log-odds added last (:func:`match_prior`)

    def __init__(self, center, scale, prior, m1, s1, m0, s0):
        self.center, self.scale = float(center), float(scale)
        self.prior = float(prior)
        self.m1, self.s1, self.m0, self.s0 = float(m1), float(s1), float(m0), float(s0)
        # the posterior on a grid, made monotone (non-decreasing) in the score
        lo = min(self.m0 - 8 * self.s0, self.m1 - 8 * self.s1)
        hi = max(self.m0 + 8 * self.s0, self.m1 + 8 * self.s1)
        self._grid = np.linspace(lo, hi, 4001)
        post = self._posterior(self._grid)
        mid = int(np.searchsorted(self._grid, 0.5 * (self.m0 + self.m1)))
        mid = min(max(mid, 0), len(post) - 1)
        post[mid:] = np.maximum.accumulate(post[mid:])
        post[: mid + 1] = np.minimum.accumulate(post[: mid + 1][::-1])[::-1]
        self._post = post

    def _posterior(self, z):
        l1 = self.prior * _normal(z, self.m1, self.s1)
        l0 = (1.0 - self.prior) * _normal(z, self.m0, self.s0)
        return l1 / np.maximum(l1 + l0, 1e-300)

    def _base_proba(self, z):
        return np.interp(z, self._grid, self._post)

    def predict_proba(self, scores):
        z = (np.asarray(scores, dtype=np.float64) - self.center) / self.scale
        p = self._base_proba(z)
        if self.recal is not None:
            a, b, _ = self.recal
            p = sigmoid(a * _logit(p) + b)
        if self.offset:
            p = sigmoid(_logit(p) + self.offset)
        return p

    def to_dict(self):
        d = {
            "method": self.method, "prior_method": self.prior_method,
            "prior": self.prior, "center": self.center, "scale": self.scale,
            "m1": self.m1, "s1": self.s1, "m0": self.m0, "s0": self.s0,
        }
        if self.offset:
            d["offset"] = self.offset
        if self.recal is not None:
            d["recalibrated"] = {"a": self.recal[0], "b": self.recal[1], "num_labels": self.recal[2]}
        return d


class PlattCalibration(Calibration):
    """``sigmoid(a * z + b)`` on standardized scores."""

    method = "platt"
    prior_method = "platt"

    def __init__(self, center, scale, a, b, prior):
        self.center, self.scale = float(center), float(scale)
        self.a, self.b, self.prior = float(a), float(b), float(prior)
        self.m1 = self.s1 = self.m0 = self.s0 = None

    def _base_proba(self, z):
        return sigmoid(self.a * z + self.b)

    def to_dict(self):
        d = Calibration.to_dict(self)
        d.update(a=self.a, b=self.b)
        return d


def platt(z, t, reg=1.0, max_step=2.0, reg_b=0.0, min_a=None):
    """Platt scaling with smoothed targets; the slope is pulled toward 1.

    Newton steps are capped at ``max_step``: with separable labels every
    sigmoid saturates, the intercept's curvature vanishes and an uncapped step
    threw it to +-1e9 (every sample P = 1 or 0); the smoothed targets keep the
    optimum finite, so capped steps reach it."""
    z, t = np.asarray(z, np.float64), np.asarray(t, np.float64)
    tt = _smoothed(t)
    a, b = 1.0, 0.0
    for _ in range(100):
        p = sigmoid(a * z + b)
        w = p * (1 - p)
        g = np.array([((p - tt) * z).sum() + reg * (a - 1.0), (p - tt).sum() + reg_b * b])
        H = np.array([[(w * z * z).sum() + reg, (w * z).sum()], [(w * z).sum(), w.sum() + reg_b + 1e-6]])
        step = np.linalg.solve(H, g)
        big = np.abs(step).max()
        if big > max_step:
            step = step * (max_step / big)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-9:
            break
    if min_a is not None and a < min_a:
        # convex: the optimum with the slope held at its bound (b alone)
        a = float(min_a)
        b = _intercept(a * z, tt, b, reg_b, max_step)
    return a, b


def _smoothed(t):
    """Platt's smoothed targets for labels ``t`` (1/0)."""
    npos, nneg = t.sum(), (1 - t).sum()
    return np.where(t == 1, (npos + 1) / (npos + 2), 1 / (nneg + 2))


def _intercept(x, tt, b=0.0, reg_b=0.0, max_step=2.0):
    """The ``b`` of ``sigmoid(x + b)`` fitted to targets ``tt`` (a pull
    ``reg_b`` toward 0; Newton steps capped at ``max_step``, see :func:`platt`)."""
    for _ in range(100):
        p = sigmoid(x + b)
        step = ((p - tt).sum() + reg_b * b) / ((p * (1 - p)).sum() + reg_b + 1e-6)
        b -= float(np.clip(step, -max_step, max_step))
        if abs(step) < 1e-9:
            break
    return b


def fit(pool_scores, loo_pos, loo_neg, own_pos=None, seed=0, prior=None, pool_fallback=False):
    """Fits a :class:`Calibration`.

    Args:
        pool_scores: raw scores of the unlabeled samples being scored
        loo_pos, loo_neg: leave-one-out raw scores of the labeled samples
        own_pos: raw scores of the positives by the full prototypes (used when
            there is a single positive)
        prior: the pool's positive rate, fixed instead of estimated by EM
        pool_fallback: with ``prior``, components that swap fall back to the
            pool's own mixture at that prior instead of Platt (module docstring)
    """
    center, scale, z = _standardized(pool_scores, seed)
    lp = (np.asarray(loo_pos, dtype=np.float64) - center) / scale
    ln = (np.asarray(loo_neg, dtype=np.float64) - center) / scale
    k = max(len(lp), 1)
    if len(lp) == 0:
        own = np.asarray(own_pos if own_pos is not None else [center + scale * np.max(z)], dtype=np.float64)
        lp = SINGLE_POSITIVE_SHRINK * (own - center) / scale
    weight = LABEL_WEIGHT * k * k
    if len(z) < MIN_POOL:
        return _platt(center, scale, lp, ln, z)

    m1 = float(lp.mean())
    s1 = max(float(lp.std()), 0.3) if len(lp) > 1 else 0.5
    m0, s0, pi = float(np.median(z)), float(z.std()) or 1.0, 0.1 if prior is None else float(prior)
    zl = np.concatenate([lp, ln])
    rl = np.concatenate([np.ones(len(lp)), np.zeros(len(ln))])
    pi, m1, s1, m0, s0 = _em(z, zl, rl, weight, (pi, m1, s1, m0, s0), free_prior=prior is None)
    if m1 <= m0 and len(lp) and len(ln):
        # the components swapped (the pool pulled the positive one below the
        # negative; seen at 5 labels per side with a fixed 60% prior): the
        # posterior would fall with the score, a constant once forced monotone
        if prior is not None and pool_fallback:
            cal = _pool_calibration(center, scale, z, prior)
            if cal is not None:
                return cal
        return _platt(center, scale, lp, ln, z, prior=None if prior is None else float(prior))
    return Calibration(center, scale, pi, m1, s1, m0, s0)


def _standardized(pool_scores, seed):
    """``(center, scale, z)``: the pool's scores (at most ``MAX_POOL`` of
    them) standardized with their median and standard deviation."""
    s = np.asarray(pool_scores, dtype=np.float64)
    if len(s) > MAX_POOL:
        s = np.random.default_rng(seed).choice(s, MAX_POOL, replace=False)
    center = float(np.median(s))
    scale = float(s.std()) or 1.0
    return center, scale, (s - center) / scale


def pool_mixture(pool_scores, prior, seed=0):
    """The mixture of the pool's scores alone at a fixed ``prior`` (no labels
    shape its components; see :func:`_pool_mixture`), or None on a pool under
    ``MIN_POOL`` or when its components swap."""
    return _pool_calibration(*_standardized(pool_scores, seed), prior)


def _pool_calibration(center, scale, z, prior):
    pooled = _pool_mixture(z, float(prior)) if len(z) >= MIN_POOL else None
    if pooled is None:
        return None
    cal = Calibration(center, scale, *pooled)
    cal.method = "pool mixture"  # (the run's summary says which map it wrote)
    return cal


def _em(z, zl, rl, weight, start, free_prior=True):
    """EM for ``pi N(m1, s1) + (1 - pi) N(m0, s0)`` on the pool's scores ``z``
    with labeled scores ``zl`` (classes ``rl``, each weighted ``weight``);
    ``start = (pi, m1, s1, m0, s0)``, ``pi`` kept unless ``free_prior``."""
    pi, m1, s1, m0, s0 = start
    Z = np.concatenate([z, zl])
    W = np.concatenate([np.ones(len(z)), np.full(len(zl), weight)])
    for _ in range(EM_ITERS):
        l1 = pi * _normal(z, m1, s1)
        l0 = (1.0 - pi) * _normal(z, m0, s0)
        r = l1 / np.maximum(l1 + l0, 1e-300)
        if free_prior:
            pi = float(np.clip(r.mean(), 1.0 / len(z), 1.0 - 1.0 / len(z)))
        a1 = W * np.concatenate([r, rl])
        a0 = W - a1
        m1 = float((a1 * Z).sum() / a1.sum())
        m0 = float((a0 * Z).sum() / a0.sum())
        s1 = float(np.sqrt((a1 * (Z - m1) ** 2).sum() / a1.sum())) + 1e-6
        s0 = float(np.sqrt((a0 * (Z - m0) ** 2).sum() / a0.sum())) + 1e-6
    return pi, m1, s1, m0, s0


def _pool_mixture(z, prior):
    """The mixture of the pool's scores alone, its weight fixed to ``prior``
    and its components started from the pool split at its ``1 - prior``
    quantile: ``(pi, m1, s1, m0, s0)``, or None when it still swaps."""
    cut = float(np.quantile(z, 1.0 - prior))
    top, rest = z[z >= cut], z[z < cut]
    if len(top) < 2 or len(rest) < 2:
        return None
    start = (prior, float(top.mean()), float(top.std()) + 1e-6, float(rest.mean()), float(rest.std()) + 1e-6)
    out = _em(z, np.zeros(0), np.zeros(0), 0.0, start, free_prior=False)
    return out if out[1] > out[3] else None


def _platt(center, scale, lp, ln, z, prior=None):
    """Platt on the labels' scores; with ``prior``, its intercept moved from
    the labels' positive rate to that prior (Saerens et al. 2002)."""
    # the slope is kept >= MIN_SLOPE: P falling with the score would contradict
    # the ranking it labels (labeled positives scoring below labeled negatives)
    a, b = platt(np.concatenate([lp, ln]), np.r_[np.ones(len(lp)), np.zeros(len(ln))], min_a=MIN_SLOPE)
    if prior is not None:
        b += float(_logit(prior) - _logit(len(lp) / float(len(lp) + len(ln))))
    return PlattCalibration(center, scale, a, b, float(sigmoid(a * z + b).mean()) if prior is None else prior)


def match_prior(cal, pool_scores, tolerance=MATCH_TOLERANCE):
    """Makes ``cal`` label about as many of ``pool_scores`` positive as its own
    prior says. When the count with P >= 0.5 is off by more than
    ``tolerance`` times (either way), the log-odds are shifted so that P = 0.5
    at the pool's ``1 - prior`` quantile; the map's shape is kept. With 5
    labels per side a common concept's mixture can be so timid that no sample
    reaches 0.5 while it estimates a 40% prior (``bench/bench_quality.py``:
    F1 below the seed scorer's at every common prior). Returns whether it
    shifted."""
    s = np.asarray(pool_scores, np.float64)
    if not len(s) or not 0.0 < cal.prior < 1.0:
        return False
    ratio = float(np.mean(cal.predict_proba(s) >= 0.5)) / cal.prior
    if 1.0 / tolerance <= ratio <= tolerance:
        return False
    at = float(np.quantile(s, 1.0 - cal.prior))
    # + 1e-6: P(at) >= 0.5 despite rounding (a flat stretch of the map, where
    # forcing it monotone cut a falling log-odds, is then labeled as one)
    cal.offset = float(cal.offset - _logit(cal.predict_proba([at]))[0] + 1e-6)
    return True


def recalibrate(cal, scores, labels, pool_scores, reg=SELECTED_REG, min_labels=SELECTED_MIN):
    """Shifts ``cal``'s log-odds to fit labels picked from the scores (module
    docstring): ``scores`` are their leave-one-out raw scores, ``labels`` 1/0.
    Sets ``cal.recal`` (slope 1, the shift, the number of labels) and
    ``cal.prior`` (the mean recalibrated P of ``pool_scores``); returns whether
    it recalibrated (not with fewer than ``min_labels``)."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, np.float64)
    if len(scores) < max(min_labels, 1):
        return False
    cal.recal = None
    x = _logit(cal.predict_proba(scores))
    b = _intercept(x, _smoothed(labels), reg_b=reg)
    if b * (labels.mean() - sigmoid(x).mean()) < 0:
        # Platt's smoothed targets (1 / (n + 2) for a negative) moved P against
        # what the labels say: 10 negatives at P ~0.01 raised every P ~700x
        b = 0.0
    # the map was logit(base) + offset: the offset is folded into the shift
    cal.recal = (1.0, float(b + cal.offset), int(len(scores)))
    cal.offset = 0.0
    cal.prior = float(np.mean(cal.predict_proba(pool_scores)))
    cal.prior_method = "recalibrated"
    return True
