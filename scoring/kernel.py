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
scoring 1M samples costs at most two 1M x d x 64 products.
"""

import numpy as np

BETA = 60.0
MAX_LABELS = 64


def _lse_mean(S, beta):
    """Row-wise ``log mean exp(beta * S)`` (stable)."""
    B = beta * np.asarray(S, np.float64)
    m = B.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(B - m).mean(axis=1, keepdims=True)))[:, 0]


def _subset(n, seed):
    if n <= MAX_LABELS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, MAX_LABELS, replace=False))


class KernelTerm(object):
    """``K(x)`` for unit-norm rows, from unit-norm labeled ``pos`` and ``neg``
    (each at least 2 rows)."""

    def __init__(self, pos, neg, beta=BETA, seed=0):
        self.beta = float(beta)
        self.pi, self.ni = _subset(len(pos), seed), _subset(len(neg), seed + 1)
        self.P = np.asarray(pos, np.float32)[self.pi]
        self.N = np.asarray(neg, np.float32)[self.ni]

    def scores(self, X):
        X = np.asarray(X, np.float32)
        return _lse_mean(X @ self.P.T, self.beta) - _lse_mean(X @ self.N.T, self.beta)

    def loo(self, pos, neg, pos_rows, neg_rows):
        """Leave-one-out ``K`` of the labeled rows ``pos[pos_rows]`` and
        ``neg[neg_rows]``: each without itself on its own side."""
        out = []
        for rows, X, own, side in ((pos_rows, pos, self.pi, 0), (neg_rows, neg, self.ni, 1)):
            rows = np.asarray(rows, np.int64)
            X = np.asarray(X, np.float32)[rows]
            sims = [X @ self.P.T, X @ self.N.T]
            itself = rows[:, None] == own[None, :]  # when in the subset
            sims[side] = np.where(itself, -np.inf, sims[side])
            # the mean over the others: exp(-inf) adds 0, so rescale by how many count
            n = sims[side].shape[1] / np.maximum(sims[side].shape[1] - itself.sum(axis=1), 1)
            out.append(_lse_mean(sims[0], self.beta) - _lse_mean(sims[1], self.beta)
                       + (1 if side == 0 else -1) * np.log(n))
        return out[0], out[1]
