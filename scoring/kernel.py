"""A soft nearest-neighbour term over the labeled samples (pure numpy).

A prototype is one point per class: a concept made of several kinds of things
("footwear" = sandals + sneakers + boots, "even digits") is poorly summarized by
one mean. The term

    K(x) = log mean_i exp(beta x.p_i) - log mean_j exp(beta x.n_j)

(a log-sum-exp over cosine similarities to the labeled positives ``p_i`` and
negatives ``n_j``; large ``beta`` approaches "nearest positive minus nearest
negative") follows each labeled example. It is the cache of Tip-Adapter
(Zhang et al., ECCV 2022), added to the prototype score after both are
standardized on the pool. ``bench/bench_quality.py`` measured it: +0.02 to +0.05
AP for common (multi-kind) concepts at k = 5..20, +0.01 to +0.02 for rare ones
from 10 positive labels, and a loss for rare ones below that (the model's
``kernel_weight``).

At most ``MAX_LABELS`` labels per side are used (a fixed random subset), so
scoring 1M samples costs at most two 1M x d x 64 products (three with pool rows).

**Pool rows as negatives** (``background``): for a rare concept the pool is
almost all negatives, and ten labeled negatives are a thin cover of it. The
negative side is then a mixture, ``BACKGROUND_SHARE`` of it over up to
``MAX_LABELS`` pool rows (the model passes rows from below the top
``BACKGROUND_TOP_OUT`` of its prototype scores, so that few of the concept's own
samples are among them), the rest over the labeled negatives. A pool row never
counts as its own neighbour (cosine >= ``SELF_COSINE``: the pool is also what
is scored). ``bench/bench_quality.py``, against labeled negatives only: AP at
the 1-10% priors +0.001 to +0.019 with random labels (k = 5/10/20, 10 trials per
cell), on both data sets; with it the term pays from 5 positive labels (the
model's ``KERNEL_POOL_MIN_POS``). Negatives picked by suggestions are another
matter: they are the hard ones, near the top and the boundary, and the pool
rows (mostly easy negatives) diluted them. The share shrinks with theirs
(:func:`pool_share`): held-out AP after 50 suggested labels
(``bench/bench_suggest.py``, 6 seeds) 0.823 -> 0.827 on Fashion-MNIST and
0.896 -> 0.902 on digits; random labels keep the half. With every negative
picked (share 0) the term still starts at 5 positive labels: the picked
negatives stand in for the rows there (no rows in any round of that bench,
from 5 positives: 0.830 and 0.904). (The loop's earlier
+0.007 to +0.017 over labeled negatives only came from starting the term at 5
positive labels: with the rows' share at 0 instead of 0.5 the loop's AP
moved -0.006 to +0.016.) Rows from the whole pool (no top cut) lost 0.005 at
Fashion-MNIST 10%, where 6 of 64 rows were the concept's; cutting the top 30-50%
left easy negatives only and half the gain. Scoring costs one more 64-column
product (about 0.16 s per 100k x 1280 here).
"""

import numpy as np

BETA = 60.0
MAX_LABELS = 64
BACKGROUND_SHARE = 0.5
BACKGROUND_TOP_OUT = 0.1
SELF_COSINE = 0.9999
COMMON_WEIGHT = 1.0  # a common concept's weight up to COMMON_WEIGHT_LABELS labels on the smaller side
COMMON_WEIGHT_LABELS = 10.0
COMMON_WEIGHT_MAX = 2.0


def common_weight(num_pos, num_neg):
    """A common concept's weight of the term: ``COMMON_WEIGHT`` up to
    ``COMMON_WEIGHT_LABELS`` labels on the smaller side, then growing with them
    (labels / ``COMMON_WEIGHT_LABELS``), at most ``COMMON_WEIGHT_MAX``. The more
    labels, the better the nearest ones cover a concept's kinds (Tip-Adapter's
    cache gains with shots). ``bench/bench_quality.py``'s trials, common
    concepts, random labels, AP against weight 1 at the 30-50% priors: digits
    +0.002 to +0.007 at 15 labels per side (1.5), +0.006 to +0.013 at 20-40
    (2); Fashion-MNIST 40% -0.0005 at 15, +0.0015 to +0.002 at 20-40, the
    other priors within 0.0003. Uncapped (3 at 30, 4 at 40) digits gained
    0.001-0.007 more and Fashion-MNIST 0-0.0006 less: capped at 2 until more
    data sets say otherwise. Over 1 at 5-10 labels: digits -0.004 to +0.003,
    Fashion-MNIST 40-50% -0.003 to -0.001. The model passes the labels not
    picked by suggestions: measured on random labels; on the final labels of
    bench_quality.py's suggestion loop on digits (20 trials per cell) the
    growth moved AP by +-0.004 and ECE by -0.004 to +0.013 at the 30-70%
    priors (Fashion-MNIST's loop, 10 trials: within 0.002)."""
    n = min(num_pos, num_neg) / COMMON_WEIGHT_LABELS
    return float(min(max(n, 1.0) * COMMON_WEIGHT, COMMON_WEIGHT_MAX))


def pool_share(num_neg, num_picked):
    """The pool rows' share of the negative side: ``BACKGROUND_SHARE`` times
    the share of the ``num_neg`` negative labels that suggestions did not pick
    (``num_picked``). Picked negatives are mostly the top-scored and boundary
    samples, the hard ones (a suggestion's random draws count with them, as
    the plugin records suggestions whole); pool rows, mostly easy negatives,
    diluted them
    (``bench/bench_suggest.py``, 6 seeds, held-out AP after 50 suggested labels:
    share 0.5: 0.823 / 0.896, 0: 0.830 / 0.904 on Fashion-MNIST / digits)."""
    if num_neg <= 0:
        return 0.0
    return BACKGROUND_SHARE * max(num_neg - num_picked, 0) / float(num_neg)


def _lse_mean(S, beta):
    """Row-wise ``log mean exp(beta * S)`` (stable)."""
    B = beta * np.asarray(S, np.float64)
    m = B.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(B - m).mean(axis=1, keepdims=True)))[:, 0]


def _lse_mean_others(S, itself, beta):
    """``_lse_mean`` of ``S`` over the entries not marked ``itself``: exp(-inf)
    adds 0, so the mean is rescaled by how many count (-inf or NaN where none
    do; the caller decides)."""
    S = np.where(itself, -np.inf, S)
    left = S.shape[1] - itself.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _lse_mean(S, beta) + np.log(S.shape[1] / left)


def _mix(a, b, share):
    """``log((1 - share) exp(a) + share exp(b))``, elementwise and stable."""
    m = np.maximum(a, b)
    return m + np.log((1.0 - share) * np.exp(a - m) + share * np.exp(b - m))


def _subset(n, seed):
    if n <= MAX_LABELS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, MAX_LABELS, replace=False))


class KernelTerm(object):
    """``K(x)`` for unit-norm rows, from unit-norm labeled ``pos`` and ``neg``
    (each at least 2 rows) and optionally unit-norm pool rows ``background``
    taken as negatives too, ``share`` of the negative side (module docstring;
    at most ``MAX_LABELS`` of them)."""

    def __init__(self, pos, neg, beta=BETA, seed=0, background=None, share=BACKGROUND_SHARE):
        self.beta = float(beta)
        self.share = float(share)
        self.pi, self.ni = _subset(len(pos), seed), _subset(len(neg), seed + 1)
        self.P = np.asarray(pos, np.float32)[self.pi]
        self.N = np.asarray(neg, np.float32)[self.ni]
        self.B = None
        if background is not None and len(background):
            self.B = np.asarray(background, np.float32)[_subset(len(background), seed + 2)]

    def scores(self, X):
        X = np.asarray(X, np.float32)
        return _lse_mean(X @ self.P.T, self.beta) - self._negative(X, _lse_mean(X @ self.N.T, self.beta))

    def _negative(self, X, labeled):
        """The negative side's log-mean-exp, from the labeled negatives' ``labeled``."""
        if self.B is None:
            return labeled
        S = X @ self.B.T
        pooled = _lse_mean_others(S, S >= SELF_COSINE, self.beta)  # (a pool row scored against itself)
        # a row that is every pool row (all excluded) keeps the labeled side
        with np.errstate(invalid="ignore"):
            return np.where(np.isfinite(pooled), _mix(labeled, pooled, self.share), labeled)

    def loo(self, pos, neg, pos_rows, neg_rows):
        """Leave-one-out ``K`` of the labeled rows ``pos[pos_rows]`` and
        ``neg[neg_rows]``: each without itself on its own side."""
        out = []
        for rows, X, own, side in ((pos_rows, pos, self.pi, 0), (neg_rows, neg, self.ni, 1)):
            rows = np.asarray(rows, np.int64)
            X = np.asarray(X, np.float32)[rows]
            sims = [X @ self.P.T, X @ self.N.T]
            itself = rows[:, None] == own[None, :]  # when in the subset
            # (each side has >= 2 rows: one left out leaves some)
            lse = [_lse_mean_others(S, itself, self.beta) if i == side else _lse_mean(S, self.beta)
                   for i, S in enumerate(sims)]
            out.append(lse[0] - self._negative(X, lse[1]))
        return out[0], out[1]
