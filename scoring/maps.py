"""Which calibration map a rare or a common concept gets (pure numpy).

:class:`.model.FewShotModel` decides rare or common; this module turns that
decision, the pool's scores and the labels' leave-one-out scores into the map
(:mod:`.calibration` fits it). Kept apart from the model, which fits the
scorer, so that each file stays readable.

- **Common** (the model fixes the pool's positive rate, ``fixed``): the mixture
  at that rate, made to label about that many samples positive
  (:func:`.calibration.match_prior`); with enough labels picked from the
  scores, the mixture of the pool's scores alone (:func:`common_map`).
- **Rare**: the mixture's own rate, held between a third of and the
  shape-free :func:`quantile_prior` (:func:`rare_map`).
"""

import numpy as np

from . import calibration

POOL_MAP_MIN_SHARE = 0.05  # suggested labels: the smaller class's share of the pool for the pool's own map
# a rare concept's mixture prior below the quantile prior / this is taken for a
# collapse (prior 0.0001-0.003 at true 0.7-2.9%, predicting no positive at all in
# 4 of 160 trials); q / 3 is then fixed (the truth was q / 5 to q / 1.5 there)
QUANTILE_FLOOR = 3.0


def quantile_prior(pool_scores, loo_pos):
    """A shape-free estimate of the pool's positive rate: half the positives
    score above their (leave-one-out) median, so about twice the pool's share
    above it is positive. None with fewer than 2 leave-one-out positives."""
    if len(loo_pos) < 2:
        return None
    return min(1.0, 2.0 * float(np.mean(np.asarray(pool_scores) >= np.median(loo_pos))))


def common_map(pool_scores, lp, ln, own, seed, fixed, fixed_method, picked):
    """A common concept's map at the pool's positive rate ``fixed`` (estimated
    by ``fixed_method``); ``picked``: the leave-one-out scores of the labels
    picked from the scores, ``(positives, negatives)``, or None."""
    # a common concept's mixture prior runs low with few labels (0.4-0.5x at
    # k = 5 on digits); the model's fixed estimate was within 0.7-1.2x
    # (bench_quality.py: ECE and F1 misses 45 -> 35)
    fixed = min(max(fixed, 1e-4), 1 - 1e-4)
    if min(fixed, 1.0 - fixed) >= POOL_MAP_MIN_SHARE and picked is not None \
            and len(picked[0]) + len(picked[1]) >= calibration.SELECTED_MIN:
        # labels picked from the scores crowd the boundary and the top, so
        # with their weight in the mixture its components sat too close
        # together (a timid map); the pool's scores alone shape it then
        # (bench_quality.py's suggestion loop, 20 trials per cell: ECE at
        # the 30-90% priors 0.018-0.121 -> 0.004-0.111, misses 7 -> 4)
        # (not when one class is under 5% of the pool: its component is
        # lost in the other's tail, and the map went flat at a 98-99% concept)
        cal = calibration.pool_mixture(pool_scores, fixed, seed=seed)
        if cal is not None:
            return cal
    cal = calibration.fit(pool_scores, lp, ln, own_pos=own, seed=seed, prior=fixed, pool_fallback=True)
    if cal.prior == fixed:  # (Platt on a pool under MIN_POOL keeps its own)
        cal.prior_method = fixed_method
    calibration.match_prior(cal, pool_scores)
    return cal


def rare_map(pool_scores, lp, ln, own, seed, rare_below, q=None):
    """A rare concept's map: the mixture, its rate refitted when the
    shape-free estimate ``q`` is lower ("quantile") or over ``QUANTILE_FLOOR``
    times higher ("quantile floor"), the latter only while ``q`` itself says
    rare (under ``rare_below``, the model's line between rare and common: with
    leave-one-out positives of two kinds, two high and three near the pool's
    median, ``q`` ran to 0.5+ and a floor at a third of it cost F1 0.89 -> 0.44
    in a review's repro; the collapses had it at 0.01-0.13)."""
    cal = calibration.fit(pool_scores, lp, ln, own_pos=own, seed=seed)
    q = quantile_prior(pool_scores, lp) if q is None else q
    if q is None or cal.method != "mixture":
        return cal
    if q < cal.prior:
        # a rare concept's mixture prior runs high (the negatives' tail is not
        # Gaussian): the lower, shape-free estimate is fixed instead
        cal = calibration.fit(pool_scores, lp, ln, own_pos=own, seed=seed, prior=max(q, 1e-4))
        cal.prior_method = "quantile"
    elif cal.prior < q / QUANTILE_FLOOR and q < rare_below:
        # or it collapsed: tight leave-one-out positives make a narrow positive
        # component that the pool's positives, scoring above them, fall outside
        cal = calibration.fit(pool_scores, lp, ln, own_pos=own, seed=seed, prior=q / QUANTILE_FLOOR)
        cal.prior_method = "quantile floor"
    return cal
